//! A browser app on another origin uses wxauth (issue 16 §1): headless Chromium opens a
//! single-page app served by a second local server (another port than wxauth's, so another
//! origin), which runs `oauth4webapi` from the npm install in tests/spa (`npm ci` there; never a
//! CDN). From the page it does discovery, sends the browser to sign in with code + PKCE (the
//! simulator's QR page is "scanned" as alice, our consent page approved), then — all cross-origin
//! `fetch` calls — exchanges the code, reads UserInfo, refreshes, revokes, and sees the revoked
//! tokens refused. The test reads each step off the page and keeps a screenshot
//! (`spa-cross-origin.png` under the test target directory).
//!
//! Skipped unless Chromium and the npm install are there; `WXAUTH_TEST_REQUIRE_BROWSER=1` and
//! `WXAUTH_TEST_REQUIRE_NODE=1` (as in CI) turn their absence into a failure.

use std::path::{Path, PathBuf};

use axum::http::header;
use axum::response::{Html, IntoResponse};
use serde_json::{Value, json};
use wxauth::oauth::NewClient;
use wxauth::simulator::demo;

use crate::browser::{Chromedriver, Chromium, DESKTOP_USER_AGENT, serve_site};
use crate::harness::{Backend, TestApp};
use crate::oidc::account_of;

const CLIENT: &str = "spa-elsewhere";

fn spa_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spa")
}

/// oauth4webapi as `npm ci` in tests/spa installed it; `None` (after saying so) to skip.
fn oauth4webapi() -> Option<PathBuf> {
    let module = spa_dir().join("node_modules/oauth4webapi/build/index.js");
    if module.is_file() {
        return Some(module);
    }
    assert!(
        std::env::var("WXAUTH_TEST_REQUIRE_NODE").as_deref() != Ok("1"),
        "WXAUTH_TEST_REQUIRE_NODE=1 but {} is missing: run `npm ci` in tests/spa",
        module.display()
    );
    eprintln!("skipping the cross-origin SPA test: run `npm ci` in tests/spa first");
    None
}

/// The single-page app's own server, on a port of its own: `/app.html` (the page, told the
/// issuer and its client id), `/app.js`, and `/vendor/oauth4webapi.js` from the npm install.
async fn spa_server(issuer: &str, module: PathBuf) -> String {
    let read = |path: PathBuf| std::fs::read_to_string(&path).expect("tests/spa file");
    let config = json!({ "issuer": issuer, "client_id": CLIENT }).to_string();
    let page = read(spa_dir().join("index.html")).replace("__CONFIG__", &config);
    let script = read(spa_dir().join("app.js"));
    let library = read(module);
    let javascript = |text: String| {
        move || async move { ([(header::CONTENT_TYPE, "text/javascript")], text).into_response() }
    };
    let router = axum::Router::new()
        .route(
            "/app.html",
            axum::routing::get(move || async move { Html(page) }),
        )
        .route("/app.js", axum::routing::get(javascript(script)))
        .route(
            "/vendor/oauth4webapi.js",
            axum::routing::get(javascript(library)),
        );
    serve_site(router).await
}

/// What the page shows for one step (`<pre id=STEP>`), as JSON where it wrote JSON.
async fn step(chromium: &Chromium, id: &str) -> Result<Value, String> {
    let text = chromium.text_of(&format!("#{id}")).await?;
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// `Err` with what the app shows in `#error` (the step and why), if anything.
async fn failure(chromium: &Chromium) -> Result<(), String> {
    let error = chromium.text_of("#error").await?;
    if error.is_empty() {
        Ok(())
    } else {
        Err(format!("the app failed at {error}"))
    }
}

/// The browser's part: every step's result, by step.
async fn walk(
    chromium: &Chromium,
    app: &TestApp,
    spa: &str,
) -> Result<Vec<(String, Value)>, String> {
    chromium.goto(&format!("{spa}/app.html")).await?;
    // Discovery runs cross-origin before the button shows.
    chromium
        .wait_for("#sign-in:not([hidden]), #error:not(:empty)")
        .await?;
    failure(chromium).await?;
    chromium.click("#sign-in").await?;
    chromium.scan_the_qr_page(&app.sim_base, "alice").await?;
    chromium.click("#approve").await?;
    // Back on the app: it runs every step, then shows `#done`, or `#error` on the first failure.
    chromium
        .wait_for("#done:not([hidden]), #error:not(:empty)")
        .await?;
    chromium.screenshot("spa-cross-origin.png").await;
    failure(chromium).await?;
    let url = chromium.url().await?;
    if url.as_str() != format!("{spa}/app.html") {
        return Err(format!(
            "the app should be back on its page without the code: {url}"
        ));
    }
    let mut steps = Vec::new();
    for id in [
        "origin",
        "discovery",
        "token",
        "userinfo",
        "refresh",
        "revoke",
        "after-revoke",
    ] {
        steps.push((id.to_owned(), step(chromium, id).await?));
    }
    Ok(steps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_page_app_on_another_origin_signs_in_refreshes_and_revokes() {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let Some(module) = oauth4webapi() else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let spa = spa_server(&app.base, module).await;
    assert_ne!(spa, app.base, "the app lives on another origin");
    app.state
        .clients
        .create(NewClient {
            client_id: CLIENT.into(),
            public: true,
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["openid".into(), "profile".into()],
            // Its origin is allowed because it is its redirect URI's.
            redirect_uris: vec![format!("{spa}/app.html")],
            access_token_ttl: 600,
            refresh_token_ttl: 3600,
            ..NewClient::default()
        })
        .await
        .unwrap();

    let chromium = driver
        .session(DESKTOP_USER_AGENT, (1100, 1000))
        .open()
        .await;
    let outcome = walk(&chromium, &app, &spa).await;
    let steps: serde_json::Map<String, Value> =
        chromium.finish(outcome).await.into_iter().collect();

    let sub = account_of(&app, demo::WEBSITE_APPID, "alice")
        .await
        .to_string();
    assert_eq!(steps["origin"], spa.as_str());
    assert_eq!(steps["discovery"]["issuer"], app.base.as_str());
    assert_eq!(
        steps["discovery"]["token_endpoint"],
        app.url("/oauth/token").as_str()
    );
    let token = &steps["token"];
    assert_eq!(token["token_type"], "bearer", "{token}");
    assert_eq!(token["refresh_token"], true, "{token}");
    assert_eq!(token["sub"], sub.as_str(), "{token}");
    assert_eq!(token["nonce_matches"], true, "{token}");
    assert_eq!(
        steps["userinfo"],
        json!({ "sub": sub, "name": "Alice 爱丽丝" })
    );
    assert_eq!(
        steps["refresh"],
        json!({ "new_access_token": true, "new_refresh_token": true })
    );
    assert_eq!(steps["revoke"], "revoked");
    let after = &steps["after-revoke"];
    assert!(
        after["refresh"]
            .as_str()
            .is_some_and(|s| s.starts_with("invalid_grant")),
        "the revoked refresh token is refused: {after}"
    );
    assert!(
        after["userinfo"]
            .as_str()
            .is_some_and(|s| s.contains("invalid_token")),
        "the revoked family's access token is refused, and the page can read why: {after}"
    );
}
