//! Silent sign-in for the pages a Mini Program opens in its `<web-view>`: a web-view ticket
//! minted from a live Mini Program session, redeemed once, within 60 seconds, by the client it
//! names: with the `flow` grant (the ticket alone), or as the `login_hint` of an authorization
//! request, which signs the browser in with no WeChat hop and no consent page for a first-party
//! client. Two redemptions released at the same instant: exactly one wins, every time, on every
//! backend. And a headless Chromium walks it: the web-view page gets the ticket in its URL,
//! starts the authorization request with it and lands back at its client with a code.

use std::sync::Arc;

use axum::extract::RawQuery;
use axum::response::Html;
use serde_json::{Value, json};
use tokio::sync::Barrier;
use url::Url;
use wxauth::simulator::demo::MINI_PROGRAM_APPID as MP;

use crate::backend_tests;
use crate::harness::{Backend, ClientFixture, TestApp};
use crate::mini_program::{post, sign_in};
use crate::oauth::basic;
use crate::oidc::{Browser, REDIRECT, Step, pkce, query, verify_id_token};

const SECRET: &str = "a-long-client-secret-for-web-view-tests";
const TRIALS: usize = 20;
/// What a page in a Mini Program's `<web-view>` calls itself.
const WEB_VIEW_USER_AGENT: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) \
     AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50 \
     NetType/WIFI Language/zh_CN miniProgram/wx0000000000000001";

/// `page-a` and `page-b`: first-party clients with the flow grant and the code flow.
async fn clients(app: &TestApp, redirect: &str) {
    for id in ["page-a", "page-b"] {
        ClientFixture::new(id, SECRET, &["flow", "authorization_code"])
            .scopes(&["openid", "profile", "flow"])
            .redirect_uris(&[REDIRECT, redirect])
            .first_party(true)
            .register(app)
            .await;
    }
}

/// A web-view ticket for the Mini Program session `session_id`, for `client_id`.
pub(crate) async fn mint(app: &TestApp, session_id: &str, client_id: &str) -> (u16, Value) {
    post(
        app,
        "/api/wechat/ma/webview-ticket",
        json!({ "sessionId": session_id, "clientId": client_id }),
    )
    .await
}

pub(crate) async fn ticket(app: &TestApp, session_id: &str, client_id: &str) -> String {
    let (status, body) = mint(app, session_id, client_id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expiresIn"], 60);
    body["ticket"].as_str().unwrap().to_owned()
}

/// The `flow` grant with the ticket alone.
async fn redeem(app: &TestApp, client_id: &str, ticket: &str) -> (u16, Value) {
    crate::mini_program::token(
        app,
        &basic(client_id, SECRET),
        &[("grant_type", "flow"), ("ticket", ticket)],
    )
    .await
}

/// The authorization request a web-view page starts with the ticket as its `login_hint`.
fn authorize_url(
    app: &TestApp,
    client_id: &str,
    redirect: &str,
    ticket: &str,
    challenge: &str,
) -> String {
    let mut url = Url::parse(&app.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "openid profile")
        .append_pair("state", "st-web-view")
        .append_pair("nonce", "n-web-view")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("login_hint", ticket);
    url.into()
}

/// Alice's account (she signed in to the Mini Program).
async fn alice(app: &TestApp) -> i64 {
    crate::oidc::account_of(app, MP, "alice").await
}

backend_tests! {
    async fn the_flow_grant_redeems_a_web_view_ticket_once_for_its_client_only(app: TestApp) {
        clients(&app, REDIRECT).await;
        let session = sign_in(&app, "alice").await;
        let session_id = session["sessionId"].as_str().unwrap();

        let first = ticket(&app, session_id, "page-a").await;
        assert!(first.starts_with("wvt."), "{first}");
        // Another client cannot redeem it, and having tried, the ticket is dead for everyone.
        let (status, body) = redeem(&app, "page-b", &first).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        let (status, _) = redeem(&app, "page-a", &first).await;
        assert_eq!(status, 400);

        let second = ticket(&app, session_id, "page-a").await;
        let (status, tokens) = redeem(&app, "page-a", &second).await;
        assert_eq!(status, 200, "{tokens}");
        assert_eq!(tokens["flow_user_id"].as_str(), Some(alice(&app).await.to_string().as_str()));
        let (status, again) = redeem(&app, "page-a", &second).await;
        assert_eq!((status, again["error"].as_str()), (400, Some("invalid_grant")), "{again}");

        // 60 seconds, not more.
        let late = ticket(&app, session_id, "page-a").await;
        app.clock.advance(61);
        let (status, _) = redeem(&app, "page-a", &late).await;
        assert_eq!(status, 400);

        // Neither kind works where the other does: a login ticket alone is no web-view ticket,
        // and a web-view ticket with the identity beside it is no login ticket.
        let fresh = sign_in(&app, "alice").await;
        let (status, body) = redeem(&app, "page-a", fresh["ticket"].as_str().unwrap()).await;
        assert_eq!(status, 400, "{body}");
        let fresh_id = fresh["sessionId"].as_str().unwrap();
        let web_view = ticket(&app, fresh_id, "page-a").await;
        let (status, _) = crate::mini_program::token(&app, &basic("page-a", SECRET), &[
            ("grant_type", "flow"), ("appId", MP),
            ("openId", fresh["openId"].as_str().unwrap()),
            ("unionId", fresh["unionId"].as_str().unwrap_or("")),
            ("ticket", web_view.as_str()),
        ]).await;
        assert_eq!(status, 400);

        // Minting needs a live session and a client that can redeem.
        let (status, body) = mint(&app, "no-such-session", "page-a").await;
        assert_eq!(status, 400, "{body}");
        let (status, body) = mint(&app, fresh_id, "no-such-client").await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error_description"].as_str().unwrap().contains("clientId"), "{body}");
    }

    async fn login_hint_signs_the_browser_in_with_no_wechat_hop_and_no_consent(app: TestApp) {
        clients(&app, REDIRECT).await;
        let session = sign_in(&app, "alice").await;
        let session_id = session["sessionId"].as_str().unwrap();
        let (verifier, challenge) = pkce();
        let ticket = ticket(&app, session_id, "page-a").await;
        let mut browser = Browser::new(&app, WEB_VIEW_USER_AGENT, "alice");
        let Step::Left(back) = browser.walk(&authorize_url(&app, "page-a", REDIRECT, &ticket, &challenge)).await else {
            panic!("expected the client's redirect")
        };
        assert_eq!(app.sim.calls("/connect/oauth2/authorize"), 0, "a WeChat hop happened");
        assert!(browser.session().is_some(), "the redeeming browser holds the session");
        let q = query(&back);
        assert_eq!(q.get("state").map(String::as_str), Some("st-web-view"), "{back}");
        let (status, tokens) = crate::oidc::exchange(&app, Some(&basic("page-a", SECRET)), &[
            ("grant_type", "authorization_code"),
            ("code", q["code"].as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ]).await;
        assert_eq!(status, 200, "{tokens}");
        let claims = verify_id_token(&app, tokens["id_token"].as_str().unwrap(), "page-a").await;
        assert_eq!(claims["sub"], alice(&app).await.to_string());

        // The same ticket again (a replayed URL), or one for another client: login_required,
        // in another browser that holds no session.
        let mut other = Browser::new(&app, WEB_VIEW_USER_AGENT, "bob");
        for (client, ticket) in [
            ("page-a", ticket.clone()),
            ("page-b", self::ticket(&app, session_id, "page-a").await),
        ] {
            let Step::Left(back) = other.walk(&authorize_url(&app, client, REDIRECT, &ticket, &challenge)).await else {
                panic!("expected the client's redirect")
            };
            let q = query(&back);
            assert_eq!(q.get("error").map(String::as_str), Some("login_required"), "{back}");
            assert!(!q.contains_key("code"));
            assert!(other.session().is_none());
        }
    }

    async fn two_redemptions_at_the_same_instant_exactly_one_wins(app: TestApp) {
        clients(&app, REDIRECT).await;
        let session = sign_in(&app, "alice").await;
        let session_id = session["sessionId"].as_str().unwrap().to_owned();
        let (_, challenge) = pkce();
        for trial in 0..TRIALS {
            let ticket = ticket(&app, &session_id, "page-a").await;
            let barrier = Arc::new(Barrier::new(2));
            // Odd trials race the flow grant against the authorization endpoint.
            let flow = |barrier: Arc<Barrier>| {
                let request = app.http.post(app.url("/oauth/token"))
                    .header("authorization", basic("page-a", SECRET))
                    .form(&[("grant_type", "flow"), ("ticket", ticket.as_str())]);
                tokio::spawn(async move {
                    barrier.wait().await;
                    request.send().await.unwrap().status().as_u16() == 200
                })
            };
            let authorize = |barrier: Arc<Barrier>| {
                let request = app.http.get(authorize_url(&app, "page-a", REDIRECT, &ticket, &challenge));
                tokio::spawn(async move {
                    barrier.wait().await;
                    let response = request.send().await.unwrap();
                    let location = response.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned();
                    location.contains("code=")
                })
            };
            let (a, b) = if trial % 2 == 0 {
                tokio::join!(flow(barrier.clone()), flow(barrier))
            } else {
                tokio::join!(flow(barrier.clone()), authorize(barrier))
            };
            let winners = [a.unwrap(), b.unwrap()].iter().filter(|won| **won).count();
            assert_eq!(winners, 1, "trial {trial}: one ticket, {winners} sign-ins");
        }
    }
}

/// The client's web-view site: `/page` reads `ticket` from its own URL and starts the
/// authorization request with it as `login_hint` (`authorize(base)` gives the request without
/// the hint); `/cb` shows what came back. Returns the site's base URL.
async fn web_view_site(authorize: impl FnOnce(&str) -> String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let page = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>Shop</title><p id=\"status\">signing in…</p>\
         <script>const t = new URLSearchParams(location.search).get('ticket');\
         location.replace({:?} + '&login_hint=' + encodeURIComponent(t));</script>",
        authorize(&base)
    );
    let router = axum::Router::new()
        .route("/page", axum::routing::get(move || async move { Html(page) }))
        .route(
            "/cb",
            axum::routing::get(|RawQuery(query): RawQuery| async move {
                let q: std::collections::HashMap<String, String> =
                    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                        .into_owned()
                        .collect();
                let shown = |k: &str| q.get(k).cloned().unwrap_or_default().replace('<', "&lt;");
                Html(format!(
                    "<!doctype html><meta charset=\"utf-8\"><title>Shop</title>\
                     <h1>Welcome back</h1><dl><dt>code</dt><dd id=\"code\">{}</dd>\
                     <dt>state</dt><dd id=\"state\">{}</dd><dt>error</dt><dd id=\"error\">{}</dd></dl>",
                    shown("code"),
                    shown("state"),
                    shown("error"),
                ))
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    base
}

/// Headless Chromium as the Mini Program's `<web-view>`: the Mini Program (here, the test)
/// signs in with `wx.login`, mints a web-view ticket and opens the page with it in the URL; the
/// page starts the authorization request with the ticket and comes back with a code, with no
/// WeChat page and no consent page on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_view_page_signs_in_silently_in_a_real_browser() {
    let Some(driver) = crate::browser::Chromedriver::start().await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let (verifier, challenge) = pkce();
    let site = web_view_site(|base| {
        authorize_url(&app, "page-a", &format!("{base}/cb"), "", &challenge)
            .trim_end_matches("&login_hint=")
            .to_owned()
    })
    .await;
    clients(&app, &format!("{site}/cb")).await;
    let redirect = format!("{site}/cb");
    let session = sign_in(&app, "alice").await;
    let session_id = session["sessionId"].as_str().unwrap();
    // The person chose a nickname and an avatar in the Mini Program first.
    let avatar = crate::profile::picture(300, 200, image::ImageFormat::Png);
    let (status, saved) =
        crate::profile::save(&app, session_id, Some("小爱"), Some(("tmp.png", &avatar))).await;
    assert_eq!(status, 200, "{saved}");
    let ticket = ticket(&app, session_id, "page-a").await;

    let chromium = driver.session(WEB_VIEW_USER_AGENT, (390, 844)).open().await;
    let outcome = async {
        chromium
            .goto(&format!("{site}/page?ticket={ticket}"))
            .await?;
        let code = chromium.text_of("#code").await?;
        let state = chromium.text_of("#state").await?;
        chromium.screenshot("web-view-signed-in.png").await;
        if code.is_empty() || state != "st-web-view" {
            return Err(format!(
                "no code at the site: code {code:?}, state {state:?}"
            ));
        }
        Ok(code)
    }
    .await;
    let code = chromium.finish(outcome).await;
    assert_eq!(
        app.sim.calls("/connect/oauth2/authorize"),
        0,
        "a WeChat hop happened"
    );
    let (status, tokens) = crate::oidc::exchange(
        &app,
        Some(&basic("page-a", SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("code_verifier", verifier.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let claims = verify_id_token(&app, tokens["id_token"].as_str().unwrap(), "page-a").await;
    assert_eq!(claims["sub"], alice(&app).await.to_string());
    assert_eq!(claims["name"], "小爱");
    assert_eq!(claims["picture"], saved["avatarUrl"]);
}
