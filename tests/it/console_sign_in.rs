//! `prompt=login` at the authorization endpoint, and the console's sign-in that relies on it: a
//! browser already signed in to wxauth is sent to WeChat again when a request says
//! `prompt=login`, and the console (whose request always says it) refuses a code that came
//! from an older sign-in, as it would if someone at a signed-in browser stripped `prompt=login`
//! from the console's request.

use reqwest::Url;
use wxauth::admin::roles::AccountRef;
use wxauth::admin::{Actor, Admin};
use wxauth::simulator::demo;

use crate::harness::{Backend, TestApp};
use crate::oauth::basic;
use crate::oidc::{
    Browser, DESKTOP, REDIRECT, Step, account_of, authorize_url, exchange, oidc_client, pkce,
    verify_id_token,
};

fn code_of(back: &Url) -> String {
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    back.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code: {back}"))
}

/// Alice signs in to wxauth through the first-party client `web`: the browser has a session.
async fn signed_in_browser(app: &TestApp) -> Browser<'_> {
    oidc_client(app, "web", false, true).await;
    let mut browser = Browser::new(app, DESKTOP, "alice");
    let step = browser
        .walk(&authorize_url(app, "web", &[("scope", "openid")]))
        .await;
    let Step::Left(back) = step else {
        panic!("not signed in: {step:?}")
    };
    code_of(&back);
    assert!(browser.session().is_some());
    browser
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_login_asks_wechat_again_though_the_browser_is_signed_in() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let mut browser = signed_in_browser(&app).await;
    // Without prompt=login the session is enough: straight back with a code.
    let url = authorize_url(&app, "web", &[("scope", "openid")]);
    let silent = browser.send(app.http.get(&url), &url).await;
    assert!(
        silent.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(REDIRECT)
    );

    app.clock.advance(120);
    let asked_at = app.state.clock.now();
    let (verifier, challenge) = pkce();
    let url = authorize_url(
        &app,
        "web",
        &[
            ("scope", "openid"),
            ("prompt", "login"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let first = browser.send(app.http.get(&url), &url).await;
    assert_eq!(first.status(), 302);
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/connect/qrconnect?", app.sim_base)),
        "not sent to WeChat: {location}"
    );
    let calls_before = app.sim.calls("/sns/oauth2/access_token");
    let Step::Left(back) = browser.walk(&url).await else {
        panic!("no code after signing in again")
    };
    assert_eq!(
        app.sim.calls("/sns/oauth2/access_token"),
        calls_before + 1,
        "a fresh WeChat sign-in"
    );
    let code = code_of(&back);
    let (status, tokens) = exchange(
        &app,
        Some(&basic("web", crate::oidc::SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let id = verify_id_token(&app, tokens["id_token"].as_str().unwrap(), "web").await;
    let auth_time = id["auth_time"].as_i64().unwrap();
    assert!(
        auth_time >= asked_at,
        "auth_time is the new sign-in, not the first: {id}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_asks_wechat_again_and_refuses_a_code_of_an_older_sign_in() {
    let app = crate::console::spawn(Some("1000")).await;
    let mut browser = signed_in_browser(&app).await;
    let alice = account_of(&app, demo::WEBSITE_APPID, "alice").await;
    Admin::new(&app.state)
        .grant_admin(&Actor::cli("test"), &AccountRef::Id(alice))
        .await
        .unwrap();
    // Later, someone at the still signed-in browser opens the console.
    app.clock.advance(600);
    let start_url = app.url("/admin/login/wechat");
    let start = browser.send(app.http.get(&start_url), &start_url).await;
    let authorize = start.headers()["location"].to_str().unwrap().to_owned();
    assert!(authorize.contains("prompt=login"), "{authorize}");

    // The attack: the console's own request without prompt=login, so the live session would
    // answer at once. The code comes back, and the console refuses it.
    let stripped = authorize.replace("&prompt=login", "");
    assert_ne!(stripped, authorize);
    let step = browser.walk(&stripped).await;
    let Step::Page(status, page) = step else {
        panic!("{step:?}")
    };
    assert_eq!(status, 400, "a console session from an old sign-in: {page}");
    assert!(
        !browser.cookies.contains_key("wxauth_console"),
        "no console session"
    );

    // As the console sends it: WeChat again, then the console.
    let start = browser.send(app.http.get(&start_url), &start_url).await;
    let authorize = start.headers()["location"].to_str().unwrap().to_owned();
    let first = browser.send(app.http.get(&authorize), &authorize).await;
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/connect/qrconnect?", app.sim_base)),
        "not sent to WeChat: {location}"
    );
    let step = browser.walk(&authorize).await;
    let Step::Page(status, page) = step else {
        panic!("{step:?}")
    };
    assert_eq!(status, 200, "{page}");
    assert!(
        browser.cookies.contains_key("wxauth_console"),
        "signed in to the console"
    );
}
