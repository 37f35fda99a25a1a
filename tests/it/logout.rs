//! Logout (issue 16 §2): OpenID Connect RP-Initiated Logout 1.0 at `/oauth/logout` — after a
//! full sign-in through the simulator, the client's `id_token_hint` ends the browser session,
//! revokes that client's refresh tokens and returns to a registered `post_logout_redirect_uri`
//! with `state`; unregistered redirects, hints for other clients and forged hints are refused
//! with a page; without a hint the person confirms with a CSRF-protected form — and Back-Channel
//! Logout 1.0: a local receiver checks the signed logout token against the JWKS and proves the
//! retries. The sign-out and confirmation pages are screenshotted in Chromium.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;
use wxauth::oauth::{ClientLogout, FlowTicketPolicy, NewClient};
use wxauth::secret::Secret;
use wxauth::simulator::demo;

use crate::backend_tests;
use crate::harness::{Backend, TestApp};
use crate::oauth::{basic, verify_jwt};
use crate::oidc::{
    Browser, DESKTOP, REDIRECT, SECRET, account_of, authorize_url, code_for, exchange,
    hidden_fields, pkce, query, verify_id_token,
};

const CHROMIUM_REDIRECT: &str = "http://127.0.0.1:9/cb";
const LOGGED_OUT: &str = "https://app.example.com/logged-out";

/// A confidential first-party OIDC client with logout settings.
async fn logout_client(app: &TestApp, id: &str, logout: ClientLogout) {
    app.state
        .clients
        .create(NewClient {
            client_id: id.into(),
            secret: Some(Secret::new(SECRET)),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["openid".into(), "profile".into()],
            redirect_uris: vec![REDIRECT.into()],
            first_party: true,
            access_token_ttl: 600,
            refresh_token_ttl: 3600,
            flow_ticket: FlowTicketPolicy::Required,
            logout,
            ..NewClient::default()
        })
        .await
        .unwrap();
}

fn returns_to(uris: &[&str]) -> ClientLogout {
    ClientLogout {
        post_logout_redirect_uris: uris.iter().map(|u| u.to_string()).collect(),
        ..ClientLogout::default()
    }
}

/// Sign in (or reuse the session) for `client_id` and exchange the code: the token response.
async fn tokens_for(browser: &mut Browser<'_>, client_id: &str) -> Value {
    let (verifier, challenge) = pkce();
    let code = code_for(
        browser,
        client_id,
        &[
            ("scope", "openid profile"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    let (status, tokens) = exchange(
        browser.app,
        Some(&basic(client_id, SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

async fn refresh(app: &TestApp, client_id: &str, tokens: &Value) -> (u16, Value) {
    exchange(
        app,
        Some(&basic(client_id, SECRET)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await
}

fn end_session_url(app: &TestApp, params: &[(&str, &str)]) -> String {
    let mut url = Url::parse(&app.url("/oauth/logout")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

/// Whether the browser's next authorization for `client_id` is silent (signed in).
async fn still_signed_in(browser: &mut Browser<'_>, client_id: &str) -> bool {
    let url = authorize_url(
        browser.app,
        client_id,
        &[
            ("scope", "openid"),
            ("code_challenge", &pkce().1),
            ("code_challenge_method", "S256"),
        ],
    );
    let response = browser.send(browser.app.http.get(&url), &url).await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    if location.contains("/connect/qrconnect") {
        return false;
    }
    assert!(location.starts_with(REDIRECT), "{location}");
    true
}

backend_tests! {
    async fn a_hint_and_a_registered_redirect_end_the_session_and_the_clients_grants(app: TestApp) {
        logout_client(&app, "web", returns_to(&[LOGGED_OUT])).await;
        logout_client(&app, "other", returns_to(&[])).await;
        let mut browser = Browser::new(&app, DESKTOP, "alice");
        let web = tokens_for(&mut browser, "web").await;
        let other = tokens_for(&mut browser, "other").await;

        // Discovery names the endpoint that answers, and what it supports.
        let discovery: Value = app.http.get(app.url("/.well-known/openid-configuration"))
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(discovery["end_session_endpoint"], app.url("/oauth/logout"));
        assert_eq!(discovery["backchannel_logout_supported"], true);
        assert_eq!(discovery["backchannel_logout_session_supported"], true);
        // The ID tokens of one browser session carry the same sid.
        let id_token = web["id_token"].as_str().unwrap();
        let claims = verify_id_token(&app, id_token, "web").await;
        let sid = claims["sid"].as_str().expect("a sid claim").to_owned();
        let other_claims = verify_id_token(&app, other["id_token"].as_str().unwrap(), "other").await;
        assert_eq!(other_claims["sid"], sid.as_str());

        // The end-session request, from the client's page: back to the client with its state.
        let url = end_session_url(&app, &[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", LOGGED_OUT),
            ("state", "bye-1"),
            ("ui_locales", "zh-CN en"),
        ]);
        let out = browser.send(app.http.get(&url), &url).await;
        assert_eq!(out.status(), 302);
        let back = Url::parse(out.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(format!("{}://{}{}", back.scheme(), back.host_str().unwrap(), back.path()), LOGGED_OUT);
        assert_eq!(query(&back)["state"], "bye-1");
        assert!(browser.session().is_none(), "the session cookie is cleared");

        // The client's refresh token is dead; the other client's still works.
        let (status, body) = refresh(&app, "web", &web).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        let revoked = app.http.get(app.url("/oauth/userinfo"))
            .bearer_auth(web["access_token"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(revoked.status(), 401, "the access token the family produced is denied");
        let (status, body) = refresh(&app, "other", &other).await;
        assert_eq!(status, 200, "{body}");

        // The browser session is over on the server too: an old cookie brings nothing back.
        assert!(!still_signed_in(&mut browser, "web").await, "a new authorization asks WeChat again");
        let events = app.state.audit.list(&wxauth::audit::AuditFilter {
            kind: Some(wxauth::audit::AuditKind::SignOut),
            limit: 10,
            ..Default::default()
        }).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].client_id.as_deref(), Some("web"));
        assert_eq!(events[0].account_id, Some(account_of(&app, demo::WEBSITE_APPID, "alice").await));
        assert!(!events[0].detail.contains(id_token));
    }

    async fn refused_requests_show_a_page_and_change_nothing(app: TestApp) {
        logout_client(&app, "web", returns_to(&[LOGGED_OUT])).await;
        logout_client(&app, "other", returns_to(&["https://other.example.com/bye"])).await;
        let mut browser = Browser::new(&app, DESKTOP, "bob");
        let web = tokens_for(&mut browser, "web").await;
        let hint = web["id_token"].as_str().unwrap();
        let mut forged = hint.to_owned();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });

        for (what, params) in [
            // No open redirect: a URI nobody registered, a near miss, another client's.
            ("unregistered", vec![("id_token_hint", hint), ("post_logout_redirect_uri", "https://evil.example.com/")]),
            ("near miss", vec![("id_token_hint", hint), ("post_logout_redirect_uri", "https://app.example.com/logged-out/")]),
            ("another client's", vec![("id_token_hint", hint), ("post_logout_redirect_uri", "https://other.example.com/bye")]),
            ("without a client", vec![("post_logout_redirect_uri", LOGGED_OUT)]),
            // A hint for one client with another's id, and a hint we did not sign.
            ("client mismatch", vec![("id_token_hint", hint), ("client_id", "other"), ("post_logout_redirect_uri", "https://other.example.com/bye")]),
            ("forged hint", vec![("id_token_hint", forged.as_str()), ("post_logout_redirect_uri", LOGGED_OUT)]),
            ("unknown client", vec![("client_id", "nobody")]),
        ] {
            let url = end_session_url(&app, &params);
            let response = browser.send(app.http.get(&url), &url).await;
            assert_eq!(response.status(), 400, "{what}");
            assert!(response.headers().get("location").is_none(), "{what}");
            let body = response.text().await.unwrap();
            assert!(body.contains("OA-LOGOUT") && !body.contains("evil.example.com"), "{what}: {body}");
            // POST answers the same.
            let url = app.url("/oauth/logout");
            let response = browser.send(app.http.post(&url).form(&params), &url).await;
            assert_eq!(response.status(), 400, "{what} (POST)");
            assert!(response.headers().get("location").is_none(), "{what} (POST)");
        }
        assert!(still_signed_in(&mut browser, "web").await, "nothing was ended");
        let (status, _) = refresh(&app, "web", &web).await;
        assert_eq!(status, 200, "nothing was revoked");
    }

    async fn without_a_hint_the_person_confirms_with_a_csrf_protected_form(app: TestApp) {
        logout_client(&app, "web", returns_to(&[LOGGED_OUT])).await;
        let mut browser = Browser::new(&app, DESKTOP, "alice");
        let web = tokens_for(&mut browser, "web").await;

        // A link from anywhere (logout CSRF) only shows the question.
        let url = end_session_url(&app, &[("client_id", "web"), ("post_logout_redirect_uri", LOGGED_OUT), ("state", "s-2")]);
        let response = browser.send(app.http.get(&url), &url).await;
        assert_eq!(response.status(), 200);
        let csp = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("form-action 'self' https://app.example.com"), "{csp}");
        let page = response.text().await.unwrap();
        assert!(page.contains("id=\"confirm\"") && page.contains("Alice 爱丽丝"), "{page}");
        assert!(still_signed_in(&mut browser, "web").await);

        // A forged answer asks again; the real one signs out.
        let mut form = hidden_fields(&page);
        let logout = app.url("/oauth/logout");
        let mut forged = form.clone();
        forged.iter_mut().find(|(k, _)| k == "csrf_token").unwrap().1 = "forged".into();
        let response = browser.send(app.http.post(&logout).form(&forged), &logout).await;
        assert_eq!(response.status(), 200);
        assert!(response.text().await.unwrap().contains("id=\"confirm\""));
        assert!(still_signed_in(&mut browser, "web").await, "a forged confirmation ends nothing");

        form.retain(|(k, _)| k != "ui_locales");
        let response = browser.send(app.http.post(&logout).form(&form), &logout).await;
        assert_eq!(response.status(), 302);
        let back = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(query(&back)["state"], "s-2");
        assert!(back.as_str().starts_with(LOGGED_OUT));
        assert!(!still_signed_in(&mut browser, "web").await);
        let (status, _) = refresh(&app, "web", &web).await;
        assert_eq!(status, 400, "the client's grants went with the session");

        // Signed out already, with no redirect: the plain signed-out page, not an error.
        let response = browser.send(app.http.get(&logout), &logout).await;
        assert_eq!(response.status(), 200);
        let page = response.text().await.unwrap();
        assert!(page.contains("你已退出登录") && page.contains("You are signed out") && !page.contains("class=\"error\""), "{page}");
    }

    async fn a_form_post_from_the_clients_site_is_carried_to_the_session(app: TestApp) {
        logout_client(&app, "web", returns_to(&[LOGGED_OUT])).await;
        let mut browser = Browser::new(&app, DESKTOP, "alice");
        let web = tokens_for(&mut browser, "web").await;
        let params = [
            ("id_token_hint", web["id_token"].as_str().unwrap()),
            ("post_logout_redirect_uri", LOGGED_OUT),
            ("state", "p-3"),
        ];
        // A cross-site POST carries no SameSite=Lax cookie: on to GET, which does.
        let response = app.http.post(app.url("/oauth/logout")).form(&params).send().await.unwrap();
        assert_eq!(response.status(), 303);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with("/oauth/logout?"), "{location}");
        assert!(still_signed_in(&mut browser, "web").await, "nothing ended without the cookie");
        let next = app.url(&location);
        let response = browser.send(app.http.get(&next), &next).await;
        assert_eq!(response.status(), 302);
        assert_eq!(response.headers()["location"], format!("{LOGGED_OUT}?state=p-3"));
        assert!(!still_signed_in(&mut browser, "web").await);
    }

    async fn an_expired_hint_still_signs_out(app: TestApp) {
        logout_client(&app, "web", returns_to(&[LOGGED_OUT])).await;
        let mut browser = Browser::new(&app, DESKTOP, "alice");
        let web = tokens_for(&mut browser, "web").await;
        // The ID token (600 s) expires; the browser session (8 h) lives on.
        app.clock.advance(3000);
        let url = end_session_url(&app, &[("id_token_hint", web["id_token"].as_str().unwrap()), ("post_logout_redirect_uri", LOGGED_OUT)]);
        let response = browser.send(app.http.get(&url), &url).await;
        assert_eq!(response.status(), 302);
        assert_eq!(response.headers()["location"], LOGGED_OUT);
        assert!(!still_signed_in(&mut browser, "web").await);
    }

    async fn back_channel_logout_tokens_are_signed_and_retried(app: TestApp) {
        // Three receivers: one fails twice then accepts, one always fails, one accepts at once.
        let flaky = Receiver::start(2).await;
        let down = Receiver::start(u32::MAX).await;
        let fine = Receiver::start(0).await;
        for (id, receiver, required) in [("flaky", &flaky, true), ("down", &down, false), ("fine", &fine, false)] {
            logout_client(&app, id, ClientLogout {
                post_logout_redirect_uris: vec![LOGGED_OUT.into()],
                backchannel_logout_uri: Some(receiver.url.clone()),
                backchannel_logout_session_required: required,
            }).await;
        }
        // A client of someone else hears nothing.
        let bystander = Receiver::start(0).await;
        logout_client(&app, "bystander", ClientLogout {
            backchannel_logout_uri: Some(bystander.url.clone()),
            ..ClientLogout::default()
        }).await;
        let mut bob = Browser::new(&app, DESKTOP, "bob");
        tokens_for(&mut bob, "bystander").await;

        let mut browser = Browser::new(&app, DESKTOP, "alice");
        let flaky_tokens = tokens_for(&mut browser, "flaky").await;
        tokens_for(&mut browser, "down").await;
        tokens_for(&mut browser, "fine").await;
        let id_token = flaky_tokens["id_token"].as_str().unwrap();
        let sid = verify_id_token(&app, id_token, "flaky").await["sid"].as_str().unwrap().to_owned();

        let url = end_session_url(&app, &[("id_token_hint", id_token), ("post_logout_redirect_uri", LOGGED_OUT)]);
        let response = browser.send(app.http.get(&url), &url).await;
        assert_eq!(response.status(), 302);
        // The user's answer did not wait for the retries (the third try comes ≥ 1.5 s later).
        assert_eq!(flaky.accepted().await.len(), 0, "the response waited for delivery");

        let deadline = Instant::now() + Duration::from_secs(20);
        while (flaky.accepted().await.is_empty() || fine.accepted().await.is_empty() || down.attempts().await < 3)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(flaky.attempts().await, 3, "two failures, then delivered");
        assert_eq!(fine.attempts().await, 1);
        // Bounded: the receiver that always fails got three tries and no more.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(down.attempts().await, 3);
        assert_eq!(bystander.attempts().await, 0, "another account's client is not told");

        let account = account_of(&app, demo::WEBSITE_APPID, "alice").await.to_string();
        for (client_id, receiver) in [("flaky", &flaky), ("fine", &fine)] {
            let tokens = receiver.accepted().await;
            let (header, claims) = verify_jwt(&app, &tokens[0], client_id).await;
            assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
            assert_eq!(claims["sub"], account.as_str());
            assert_eq!(claims["sid"], sid.as_str(), "the sid of the ID tokens");
            assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object(), "{claims}");
            assert!(claims.get("nonce").is_none());
            assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
            assert!(claims["iat"].as_i64().unwrap() < claims["exp"].as_i64().unwrap());
        }
        // Each try of a delivery carries the same token; the clients get different ones.
        let flaky_bodies = flaky.bodies().await;
        assert!(flaky_bodies.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(flaky.accepted().await[0], fine.accepted().await[0]);
    }
}

/// On a server whose access tokens are HS256 (the server's own secret), logout tokens are still
/// signed with a key the JWKS publishes, like the client's ID tokens, so the client can verify
/// them.
#[tokio::test]
async fn an_hs256_servers_logout_tokens_verify_against_the_jwks() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        crate::harness::Options {
            env: vec![
                ("WXAUTH_JWT_ALG".to_owned(), "HS256".to_owned()),
                (
                    "WXAUTH_JWT_HS256_SECRET".to_owned(),
                    "a-test-secret-of-at-least-32-characters".to_owned(),
                ),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let receiver = Receiver::start(0).await;
    logout_client(
        &app,
        "web",
        ClientLogout {
            post_logout_redirect_uris: vec![LOGGED_OUT.into()],
            backchannel_logout_uri: Some(receiver.url.clone()),
            backchannel_logout_session_required: true,
        },
    )
    .await;
    let mut browser = Browser::new(&app, DESKTOP, "alice");
    let tokens = tokens_for(&mut browser, "web").await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let url = end_session_url(
        &app,
        &[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", LOGGED_OUT),
        ],
    );
    assert_eq!(browser.send(app.http.get(&url), &url).await.status(), 302);
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.accepted().await.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = receiver.accepted().await;
    assert_eq!(delivered.len(), 1, "one logout token delivered");
    let (header, claims) = verify_jwt(&app, &delivered[0], "web").await;
    assert_eq!(
        (header.alg, header.typ.as_deref()),
        (jsonwebtoken::Algorithm::ES256, Some("logout+jwt"))
    );
    assert!(claims["sid"].is_string(), "{claims}");
}

/// Every POST a receiver got: the `logout_token` and whether it was accepted.
type Deliveries = Arc<Mutex<Vec<(String, bool)>>>;

/// The admin API registers and shows the logout settings.
#[tokio::test]
async fn the_admin_api_takes_the_logout_settings() {
    let token = "admin-token-for-the-logout-tests";
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        crate::harness::Options {
            env: vec![("WXAUTH_ADMIN_TOKEN".to_owned(), token.to_owned())],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let created = app
        .http
        .post(app.url("/admin/api/v1/clients"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "client_id": "console",
            "grant_types": ["authorization_code"],
            "scopes": ["openid"],
            "redirect_uris": ["https://console.example.com/cb"],
            "post_logout_redirect_uris": ["https://console.example.com/bye"],
            "backchannel_logout_uri": "https://console.example.com/bcl",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.unwrap();
    assert_eq!(
        body["post_logout_redirect_uris"][0], "https://console.example.com/bye",
        "{body}"
    );
    assert_eq!(
        body["backchannel_logout_uri"],
        "https://console.example.com/bcl"
    );
    let changed = app
        .http
        .patch(app.url("/admin/api/v1/clients/console"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "backchannel_logout_uri": "ftp://x", }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 400);
    let body: Value = changed.json().await.unwrap();
    assert!(
        body.to_string().contains("backchannel_logout_uri"),
        "{body}"
    );
    let changed: Value = app
        .http
        .patch(app.url("/admin/api/v1/clients/console"))
        .bearer_auth(token)
        .json(
            &serde_json::json!({ "backchannel_logout_uri": null, "post_logout_redirect_uris": [] }),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(changed["backchannel_logout_uri"], Value::Null, "{changed}");
    assert_eq!(changed["post_logout_redirect_uris"], serde_json::json!([]));
}

/// A client's back-channel logout endpoint: records every POST's `logout_token`, answering 503
/// to the first `failures` and 200 after.
struct Receiver {
    url: String,
    seen: Deliveries,
}

impl Receiver {
    async fn start(failures: u32) -> Self {
        let seen: Deliveries = Arc::default();
        let router = axum::Router::new()
            .route(
                "/backchannel",
                axum::routing::post(
                    move |State(seen): State<Deliveries>,
                          axum::Form(form): axum::Form<
                        std::collections::HashMap<String, String>,
                    >| async move {
                        let mut seen = seen.lock().await;
                        let accept = seen.len() as u32 >= failures;
                        seen.push((
                            form.get("logout_token").cloned().unwrap_or_default(),
                            accept,
                        ));
                        if accept {
                            StatusCode::OK
                        } else {
                            StatusCode::SERVICE_UNAVAILABLE
                        }
                    },
                ),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/backchannel", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, seen }
    }

    async fn attempts(&self) -> usize {
        self.seen.lock().await.len()
    }

    async fn bodies(&self) -> Vec<String> {
        self.seen
            .lock()
            .await
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }

    async fn accepted(&self) -> Vec<String> {
        self.seen
            .lock()
            .await
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(t, _)| t.clone())
            .collect()
    }
}

/// The confirmation and signed-out pages in a real browser: signed in through the simulator's QR
/// page, a link to the end-session endpoint asks, the button signs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_out_pages_in_chromium() {
    use crate::browser::Chromedriver;
    use crate::pages::{DESKTOP_USER_AGENT, shot};
    use fantoccini::Locator;

    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    logout_client(&app, "web", returns_to(&[])).await;
    app.state
        .clients
        .update(
            "web",
            wxauth::oauth::ClientChanges {
                redirect_uris: Some(vec![CHROMIUM_REDIRECT.into()]),
                ..Default::default()
            },
        )
        .await
        .ok();
    for (variant, language) in [("zh", "zh-CN"), ("en", "en-US")] {
        let chromium = driver
            .session(DESKTOP_USER_AGENT, (900, 700))
            .language(language)
            .open()
            .await;
        let outcome: Result<(), String> = async {
            // Sign in: the simulator's QR page, alice scans; the client's address is unreachable.
            let mut url = Url::parse(&app.url("/oauth/authorize")).unwrap();
            url.query_pairs_mut()
                .append_pair("response_type", "code")
                .append_pair("client_id", "web")
                .append_pair("redirect_uri", CHROMIUM_REDIRECT)
                .append_pair("scope", "openid")
                .append_pair("code_challenge", &pkce().1)
                .append_pair("code_challenge_method", "S256");
            chromium.goto(url.as_str()).await?;
            chromium.click("#scan-alice, a[href*='user=alice']").await?;
            // Signed in once the end-session endpoint asks rather than saying signed out.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                chromium
                    .goto(&app.url("/oauth/logout?client_id=web"))
                    .await?;
                if chromium.find(Locator::Css("#confirm")).await.is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err("never signed in".into());
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let confirm = chromium.wait_for("#confirm").await?;
            shot(&chromium, &format!("logout-confirm-{variant}")).await;
            let question = chromium.text_of("#message").await?;
            if (language == "en-US") != question.starts_with("Sign out of this browser") {
                return Err(format!("question in the wrong language: {question}"));
            }
            confirm.click().await.map_err(|e| e.to_string())?;
            chromium.wait_for("#close-hint").await?;
            shot(&chromium, &format!("signed-out-{variant}")).await;
            let source = chromium.source().await?;
            if source.contains("class=\"error\"")
                || !source.contains("已退出")
                || !source.contains("Signed out")
            {
                return Err("the signed-out page is not the plain page".into());
            }
            Ok(())
        }
        .await;
        chromium.finish(outcome).await;
    }
}
