//! A real browser signs in to a relying party with wxauth: headless Chromium with a desktop
//! User-Agent opens the client's authorization URL, gets the simulator's WeChat QR page, "scans"
//! it as alice (`#scan-alice`), approves on our consent page (`#approve`) and lands on a tiny
//! relying-party server this test starts (`/cb`, which shows the query it got). The test then
//! exchanges the code and verifies the ID token. In the same browser a second authorization is
//! silent: no QR page, no consent page, straight back to `/cb`.
//!
//! Runs on [`crate::browser`] (skipped unless Chromium is installed or
//! `WXAUTH_TEST_REQUIRE_BROWSER=1`).

use axum::extract::RawQuery;
use axum::response::Html;
use serde_json::Value;
use url::Url;
use wxauth::oauth::{FlowTicketPolicy, NewClient};
use wxauth::secret::Secret;
use wxauth::simulator::demo;

use crate::browser::{Chromedriver, Chromium, DESKTOP_USER_AGENT, serve_site};
use crate::harness::{Backend, TestApp};
use crate::oauth::basic;
use crate::oidc::{SECRET, account_of, exchange, pkce, verify_id_token};

const CLIENT: &str = "rp-web";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The relying party: `GET /cb` shows each query parameter as `<dd id="NAME">VALUE</dd>`.
async fn relying_party() -> String {
    let router = axum::Router::new().route(
        "/cb",
        axum::routing::get(|RawQuery(query): RawQuery| async move {
            let mut body = String::from(
                "<!doctype html><meta charset=\"utf-8\"><title>Relying party</title><dl id=\"query\">",
            );
            for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
                body.push_str(&format!(
                    "<dt>{k}</dt><dd id=\"{k}\">{v}</dd>",
                    k = escape(&k),
                    v = escape(&v)
                ));
            }
            body.push_str("</dl>");
            Html(body)
        }),
    );
    serve_site(router).await
}

/// One authorization request: its URL, and what the client keeps to finish it.
struct Request {
    url: String,
    state: String,
    nonce: String,
    verifier: String,
}

fn request(app: &TestApp, redirect: &str, n: u32) -> Request {
    let (verifier, challenge) = pkce();
    let state = format!("state-{n}-{}", uuid::Uuid::new_v4().simple());
    let nonce = format!("nonce-{n}-{}", uuid::Uuid::new_v4().simple());
    let mut url = Url::parse(&app.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "openid profile")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    Request {
        url: url.into(),
        state,
        nonce,
        verifier,
    }
}

/// Click `css`, a `what` the walk expects to find.
async fn click(chromium: &Chromium, css: &str, what: &str) -> Result<(), String> {
    chromium
        .click(css)
        .await
        .map_err(|e| format!("no {what}: {e}"))
}

/// The code the relying party got, after checking the page is `/cb` with the request's state.
async fn code_at_relying_party(
    chromium: &Chromium,
    rp: &str,
    request: &Request,
) -> Result<String, String> {
    let state = chromium.text_of("#query #state").await?;
    chromium
        .expect_at(&format!("{rp}/cb?"), "at the relying party")
        .await?;
    if state != request.state {
        return Err(format!("state {state:?}, sent {:?}", request.state));
    }
    chromium.text_of("#query #code").await
}

/// The browser's part; an `Err` carries what went wrong.
async fn walk(
    chromium: &Chromium,
    app: &TestApp,
    rp: &str,
    first: &Request,
    second: &Request,
) -> Result<(String, String), String> {
    chromium.goto(&first.url).await?;

    // Outside WeChat: the simulator's website QR page; alice's phone scans it.
    chromium.scan_the_qr_page(&app.sim_base, "alice").await?;

    // Signed in with WeChat; our consent page names the user and the client.
    let user = chromium.text_of("#user-name").await?;
    let shown_client = chromium.text_of("#client-name").await?;
    chromium.screenshot("oidc-consent.png").await;
    if user != "Alice 爱丽丝" || !shown_client.contains(CLIENT) {
        return Err(format!("consent page for {user:?} and {shown_client:?}"));
    }
    click(chromium, "#approve", "consent button").await?;
    let first_code = code_at_relying_party(chromium, rp, first).await?;

    // Signed in and consented: the second authorization goes straight back to the client.
    chromium.goto(&second.url).await?;
    let second_code = code_at_relying_party(chromium, rp, second).await?;
    if first_code == second_code {
        return Err("the same code twice".into());
    }
    Ok((first_code, second_code))
}

/// The code exchanged (client_secret_basic, PKCE verifier); the verified ID token's claims.
async fn redeem(app: &TestApp, redirect: &str, request: &Request, code: &str) -> Value {
    let (status, tokens) = exchange(
        app,
        Some(&basic(CLIENT, SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", &request.verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let claims = verify_id_token(app, tokens["id_token"].as_str().unwrap(), CLIENT).await;
    assert_eq!(claims["nonce"], request.nonce.as_str());
    claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_browser_signs_in_with_the_qr_page_and_consent() {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let rp = relying_party().await;
    let redirect = format!("{rp}/cb");
    app.state
        .clients
        .create(NewClient {
            client_id: CLIENT.into(),
            secret: Some(Secret::new(SECRET)),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["openid".into(), "profile".into()],
            redirect_uris: vec![redirect.clone()],
            public: false,
            first_party: false,
            access_token_ttl: 600,
            refresh_token_ttl: 3600,
            flow_ticket: FlowTicketPolicy::Required,
            ..NewClient::default()
        })
        .await
        .unwrap();
    let first = request(&app, &redirect, 1);
    let second = request(&app, &redirect, 2);

    let chromium = driver.session(DESKTOP_USER_AGENT, (1280, 800)).open().await;
    let outcome = walk(&chromium, &app, &rp, &first, &second).await;
    let (first_code, second_code) = chromium.finish(outcome).await;

    let sub = account_of(&app, demo::WEBSITE_APPID, "alice")
        .await
        .to_string();
    let claims = redeem(&app, &redirect, &first, &first_code).await;
    assert_eq!(claims["sub"], sub.as_str());
    assert_eq!(claims["name"], "Alice 爱丽丝");
    // The silent one is the same sign-in: same user, same auth_time.
    let again = redeem(&app, &redirect, &second, &second_code).await;
    assert_eq!(again["sub"], sub.as_str());
    assert_eq!(again["auth_time"], claims["auth_time"]);
}

/// The demo single-page app of `wxauth dev` (`/m/oidc_demo`, public client `demo-spa`, PKCE in
/// the browser): sign in, consent, and the page shows the user from the ID token and UserInfo.
async fn walk_the_demo_page(chromium: &Chromium, app: &TestApp) -> Result<(), String> {
    chromium.goto(&app.url("/m/oidc_demo")).await?;
    click(chromium, "#sign-in", "sign-in button").await?;
    click(chromium, "#scan-alice", "QR page").await?;
    click(chromium, "#approve", "consent page").await?;
    chromium
        .wait_for("#user:not([hidden])")
        .await
        .map_err(|e| format!("the demo page did not show a user: {e}"))?;
    let name = chromium.text_of("#name").await?;
    let id_token = chromium.text_of("#id-token").await?;
    let url = chromium.url().await?;
    if name != "Alice 爱丽丝" {
        return Err(format!("name {name:?}"));
    }
    if !id_token.contains("\"nonce\"") || !id_token.contains(&format!("\"iss\": \"{}\"", app.base))
    {
        return Err(format!("ID token claims {id_token}"));
    }
    if url.query().is_some() {
        return Err(format!("the code stays in the address bar: {url}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_demo_single_page_app_signs_in_with_pkce() {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        crate::harness::Options {
            dev_demo: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    app.state
        .clients
        .create(NewClient {
            client_id: wxauth::dev::SPA_CLIENT_ID.into(),
            secret: None,
            grant_types: vec!["authorization_code".into()],
            scopes: vec!["openid".into(), "profile".into()],
            redirect_uris: vec![app.url("/m/oidc_demo")],
            public: true,
            first_party: false,
            access_token_ttl: 600,
            refresh_token_ttl: 3600,
            flow_ticket: FlowTicketPolicy::Required,
            ..NewClient::default()
        })
        .await
        .unwrap();
    let chromium = driver.session(DESKTOP_USER_AGENT, (1280, 800)).open().await;
    let outcome = walk_the_demo_page(&chromium, &app).await;
    chromium.finish(outcome).await;
}
