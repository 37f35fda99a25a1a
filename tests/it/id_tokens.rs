//! ID tokens every relying party can verify (issue 16 §3): signed with a published asymmetric key
//! even when access tokens are HS256; RS256 for clients that register it; a fresh ID token on
//! refresh; `iss` in every authorization response (RFC 9207); a sign-in cancelled at WeChat tells
//! the client `access_denied` with its `state`, in the browser that started it only. Checked with
//! `jsonwebtoken` against the JWKS and, where Python's Authlib is installed, by the Authlib relying
//! party of `tests/oidc/authlib_client.py`.

use std::collections::HashMap;

use serde_json::{Value, json};
use url::Url;
use wxauth::oauth::client_registry::IdTokenAlg;
use wxauth::oauth::{ClientChanges, NewClient};
use wxauth::secret::Secret;
use wxauth::simulator::demo;

use crate::backend_tests;
use crate::harness::{Backend, Options, TestApp};
use crate::oauth::{basic, verify_jwt};
use crate::oidc::{
    Browser, DESKTOP, REDIRECT, SECRET, Step, account_of, authorize_url, exchange, oidc_client,
    pkce,
};

const HS256_SECRET: &str = "a-shared-secret-of-at-least-32-chars!!";

fn hs256() -> Options {
    Options {
        env: vec![
            ("WXAUTH_JWT_ALG".into(), "HS256".into()),
            ("WXAUTH_JWT_HS256_SECRET".into(), HS256_SECRET.into()),
        ],
        ..Options::default()
    }
}

fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

async fn json_of(app: &TestApp, path: &str) -> Value {
    app.http
        .get(app.url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Sign `browser` in through the QR page (first-party client: no consent) and return the code;
/// the authorization response must name the issuer.
async fn code(browser: &mut Browser<'_>, client_id: &str, extra: &[(&str, &str)]) -> String {
    let url = authorize_url(browser.app, client_id, extra);
    let step = browser.walk(&url).await;
    let Step::Left(back) = step else {
        panic!("expected a redirect to the client: {step:?}")
    };
    let q = query(&back);
    assert_eq!(q.get("state").map(String::as_str), Some("st-123"), "{back}");
    assert_eq!(
        q.get("iss").map(String::as_str),
        Some(browser.app.base.as_str()),
        "RFC 9207: the response names the issuer: {back}"
    );
    q["code"].clone()
}

/// Code → tokens with PKCE.
async fn tokens(app: &TestApp, client_id: &str, nonce: Option<&str>) -> Value {
    let (verifier, challenge) = pkce();
    let mut extra = vec![
        ("scope", "openid profile"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    if let Some(nonce) = nonce {
        extra.push(("nonce", nonce));
    }
    let mut browser = Browser::new(app, DESKTOP, "alice");
    let code = code(&mut browser, client_id, &extra).await;
    let (status, body) = exchange(
        app,
        Some(&basic(client_id, SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn alg_of(jwt: &str) -> String {
    format!("{:?}", jsonwebtoken::decode_header(jwt).unwrap().alg)
}

backend_tests! {
    options: hs256();

    async fn with_hs256_access_tokens_id_tokens_are_es256_and_verify_against_the_jwks(app: TestApp) {
        oidc_client(&app, "web", false, true).await;
        let body = tokens(&app, "web", Some("n-1")).await;
        assert_eq!(alg_of(body["access_token"].as_str().unwrap()), "HS256");
        let id_token = body["id_token"].as_str().unwrap();
        assert_eq!(alg_of(id_token), "ES256");
        let (_, claims) = verify_jwt(&app, id_token, "web").await;
        let alice = account_of(&app, demo::WEBSITE_APPID, "alice").await.to_string();
        assert_eq!(claims["sub"], alice.as_str());
        assert_eq!(claims["nonce"], "n-1");
        let auth_time = claims["auth_time"].as_i64().expect("auth_time");

        // The JWKS publishes both ID-token keys and never the shared secret.
        let jwks = json_of(&app, "/.well-known/jwks.json").await;
        let mut kinds: Vec<(String, String)> = jwks["keys"].as_array().unwrap().iter()
            .map(|k| (k["kty"].as_str().unwrap().to_owned(), k["alg"].as_str().unwrap().to_owned()))
            .collect();
        kinds.sort();
        assert_eq!(kinds, [("EC".into(), "ES256".into()), ("RSA".into(), "RS256".into())], "{jwks}");
        let meta = json_of(&app, "/.well-known/openid-configuration").await;
        assert_eq!(meta["id_token_signing_alg_values_supported"], json!(["ES256", "RS256"]));
        assert_eq!(meta["authorization_response_iss_parameter_supported"], true);

        // A refresh with scope openid: a fresh ID token, same person and audience, the sign-in's
        // auth_time, no nonce.
        app.clock.advance(60);
        let (status, refreshed) = exchange(&app, Some(&basic("web", SECRET)), &[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
        ]).await;
        assert_eq!(status, 200, "{refreshed}");
        let new_id = refreshed["id_token"].as_str().expect("a refresh with openid gives an ID token");
        assert_ne!(new_id, id_token);
        let (_, new_claims) = verify_jwt(&app, new_id, "web").await;
        assert_eq!(new_claims["sub"], alice.as_str());
        assert_eq!(new_claims["aud"], "web");
        assert_eq!(new_claims["auth_time"].as_i64(), Some(auth_time));
        assert!(new_claims["iat"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
        assert!(new_claims.get("nonce").is_none(), "{new_claims}");

        // Narrowed to a scope without openid: no ID token.
        let (status, narrowed) = exchange(&app, Some(&basic("web", SECRET)), &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refreshed["refresh_token"].as_str().unwrap()),
            ("scope", "profile"),
        ]).await;
        assert_eq!(status, 200, "{narrowed}");
        assert!(narrowed.get("id_token").is_none(), "{narrowed}");
    }

    async fn a_sign_in_cancelled_at_wechat_tells_the_client_access_denied_with_its_state(app: TestApp) {
        oidc_client(&app, "web", false, true).await;
        // No simulated user has scanned: the simulator shows its QR page, with a cancel link.
        let mut browser = Browser::new(&app, DESKTOP, "");
        let url = authorize_url(&app, "web", &[("scope", "openid")]);
        let Step::Page(200, qr) = browser.walk(&url).await else { panic!("no QR page") };
        let cancel = cancel_link(&qr);
        let Step::Left(back) = browser.walk(&cancel).await else { panic!("not sent back to the client") };
        assert!(back.as_str().starts_with(REDIRECT), "{back}");
        let q = query(&back);
        assert_eq!(q.get("error").map(String::as_str), Some("access_denied"), "{back}");
        assert_eq!(q.get("state").map(String::as_str), Some("st-123"));
        assert_eq!(q.get("iss").map(String::as_str), Some(app.base.as_str()));
        assert!(!q.contains_key("code"));
        assert!(browser.session().is_none(), "a cancelled sign-in starts no session");
        // The sign-in's state is spent: the same cancel again is refused.
        assert!(matches!(browser.walk(&cancel).await, Step::Page(400, _)));
    }
}

/// The simulator's cancel link on its QR page.
fn cancel_link(page: &str) -> String {
    let href = page
        .split("id=\"cancel\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no cancel link: {page}"));
    href.replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_in_another_browser_does_not_reach_the_client() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    oidc_client(&app, "web", false, true).await;
    // The attacker starts a sign-in and takes WeChat's "cancelled" answer to it.
    let mut attacker = Browser::new(&app, DESKTOP, "");
    let url = authorize_url(&app, "web", &[("scope", "openid")]);
    let Step::Page(200, qr) = attacker.walk(&url).await else {
        panic!("no QR page")
    };
    let cancel = cancel_link(&qr);
    // WeChat would send the browser to wxauth's callback with the state only.
    assert!(cancel.starts_with(&app.url("/oauth/callback/wechat?state=")));

    // A victim without the sign-in's binding cookie, and one with a sign-in of their own under
    // way: an error page, never a redirect to the client.
    let mut stranger = Browser::new(&app, DESKTOP, "");
    assert!(matches!(stranger.walk(&cancel).await, Step::Page(400, _)));
    let mut victim = Browser::new(&app, DESKTOP, "");
    let own = victim.send(app.http.get(&url), &url).await;
    assert_eq!(own.status(), 302);
    assert!(victim.cookies.contains_key("wxauth_signin"));
    assert!(matches!(victim.walk(&cancel).await, Step::Page(400, _)));
    // The state was not spent by them: the browser that started the sign-in still hears of it.
    let Step::Left(back) = attacker.walk(&cancel).await else {
        panic!("own browser refused")
    };
    assert_eq!(query(&back)["error"], "access_denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_redirects_name_the_issuer() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    oidc_client(&app, "web", false, false).await;
    // prompt=none without a session: login_required.
    let mut browser = Browser::new(&app, DESKTOP, "alice");
    let url = authorize_url(&app, "web", &[("scope", "openid"), ("prompt", "none")]);
    let Step::Left(back) = browser.walk(&url).await else {
        panic!("no error redirect")
    };
    let q = query(&back);
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["iss"], app.base);
    // Denied on the consent page.
    let url = authorize_url(&app, "web", &[("scope", "openid")]);
    let Step::Page(200, consent) = browser.walk(&url).await else {
        panic!("no consent page")
    };
    let Step::Left(back) = browser.answer_consent(&consent, "deny").await else {
        panic!("no redirect")
    };
    let q = query(&back);
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("access_denied", "st-123")
    );
    assert_eq!(q["iss"], app.base);
    // Approved: the code comes with iss too.
    let Step::Page(200, consent) = browser.walk(&url).await else {
        panic!("no consent page")
    };
    let Step::Left(back) = browser.answer_consent(&consent, "approve").await else {
        panic!("no redirect")
    };
    let q = query(&back);
    assert!(q.contains_key("code"));
    assert_eq!(q["iss"], app.base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_register_rs256_get_rs256_id_tokens() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    oidc_client(&app, "es", false, true).await;
    oidc_client(&app, "rs", false, true).await;
    let changed = app
        .state
        .clients
        .update(
            "rs",
            ClientChanges {
                id_token_alg: Some(IdTokenAlg::Rs256),
                ..ClientChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.id_token_alg, Some(IdTokenAlg::Rs256));

    let es = tokens(&app, "es", None).await;
    assert_eq!(alg_of(es["id_token"].as_str().unwrap()), "ES256");
    let rs = tokens(&app, "rs", None).await;
    let id_token = rs["id_token"].as_str().unwrap();
    assert_eq!(alg_of(id_token), "RS256");
    let (_, claims) = verify_jwt(&app, id_token, "rs").await;
    assert_eq!(claims["aud"], "rs");
    // Access tokens stay on the server's algorithm.
    assert_eq!(alg_of(rs["access_token"].as_str().unwrap()), "ES256");
    // The refresh keeps the client's algorithm.
    let (status, refreshed) = exchange(
        &app,
        Some(&basic("rs", SECRET)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rs["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(alg_of(refreshed["id_token"].as_str().unwrap()), "RS256");
}

/// A staged rotation replaces the ES256 and the RS256 key alike: both new keys are published at
/// once and sign only from their activation; the old ones keep verifying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_rotation_rotates_both_id_token_keys() {
    let app = TestApp::spawn_with(Backend::Sqlite, hs256()).await.unwrap();
    oidc_client(&app, "es", false, true).await;
    oidc_client(&app, "rs", false, true).await;
    app.state
        .clients
        .update(
            "rs",
            ClientChanges {
                id_token_alg: Some(IdTokenAlg::Rs256),
                ..ClientChanges::default()
            },
        )
        .await
        .unwrap();
    let kid = |jwt: &str| jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap();
    let old_es = kid(tokens(&app, "es", None).await["id_token"].as_str().unwrap());
    let old_rs = kid(tokens(&app, "rs", None).await["id_token"].as_str().unwrap());

    let keys = app.state.oauth.tokens.keys();
    let (new_kids, _) = keys.rotate_staged_all(300).await.unwrap();
    assert_eq!(
        new_kids.len(),
        2,
        "HS256 mode: the two ID-token keys rotate"
    );
    let jwks = json_of(&app, "/.well-known/jwks.json").await;
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    for k in new_kids.iter().chain([&old_es, &old_rs]) {
        assert!(published.contains(&k.as_str()), "{k} not published: {jwks}");
    }
    // Before activation the old keys sign.
    let es = tokens(&app, "es", None).await;
    assert_eq!(kid(es["id_token"].as_str().unwrap()), old_es);
    app.clock.advance(301);
    let es = tokens(&app, "es", None).await;
    let rs = tokens(&app, "rs", None).await;
    let (es_kid, rs_kid) = (
        kid(es["id_token"].as_str().unwrap()),
        kid(rs["id_token"].as_str().unwrap()),
    );
    assert!(new_kids.contains(&es_kid) && new_kids.contains(&rs_kid));
    assert_ne!((es_kid, rs_kid), (old_es, old_rs));
    verify_jwt(&app, rs["id_token"].as_str().unwrap(), "rs").await;
}

async fn authlib_installed() -> bool {
    tokio::process::Command::new("python3")
        .args(["-c", "import authlib, joserfc, requests"])
        .output()
        .await
        .is_ok_and(|out| out.status.success())
}

/// Run the Authlib relying party against `client_id`; what it saw.
async fn authlib(app: &TestApp, client_id: &str) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/authlib_client.py");
    let output = tokio::process::Command::new("python3")
        .args([script, &app.base, client_id, SECRET, REDIRECT, "alice"])
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the Authlib client failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

/// An independent library (Authlib with joserfc, configured from discovery and the JWKS) accepts
/// the ID tokens of an HS256 server, ES256 by default and RS256 for a client that registered it,
/// on the code exchange and on refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_verifies_the_id_tokens_of_an_hs256_server() {
    if !authlib_installed().await {
        assert!(
            std::env::var("WXAUTH_TEST_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "WXAUTH_TEST_REQUIRE_PYTHON=1 but python3 with Authlib is missing"
        );
        eprintln!(
            "skipping the Authlib test: python3 -m pip install -r tests/oidc/requirements.txt"
        );
        return;
    }
    let app = TestApp::spawn_with(Backend::Sqlite, hs256()).await.unwrap();
    oidc_client(&app, "py-es", false, false).await;
    app.state
        .clients
        .create(NewClient {
            client_id: "py-rs".into(),
            secret: Some(Secret::new(SECRET)),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["openid".into(), "profile".into()],
            redirect_uris: vec![REDIRECT.into()],
            id_token_alg: Some(IdTokenAlg::Rs256),
            ..NewClient::default()
        })
        .await
        .unwrap();
    for (client_id, alg) in [("py-es", "ES256"), ("py-rs", "RS256")] {
        let seen = authlib(&app, client_id).await;
        assert_eq!(seen["alg"], alg, "{seen}");
        assert_eq!(seen["id_token"]["aud"], client_id);
        let alice = account_of(&app, demo::WEBSITE_APPID, "alice").await;
        assert_eq!(seen["id_token"]["sub"], alice.to_string());
        let refreshed = &seen["refreshed_id_token"];
        assert_eq!(refreshed["sub"], seen["id_token"]["sub"]);
        assert_eq!(refreshed["auth_time"], seen["id_token"]["auth_time"]);
        assert!(refreshed.get("nonce").is_none(), "{refreshed}");
    }
}
