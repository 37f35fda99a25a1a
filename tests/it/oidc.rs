//! The authorization-code flow with PKCE and OpenID Connect, walked over real HTTP through the
//! simulator's WeChat sign-in (QR page outside WeChat, official-account authorization inside),
//! the consent page and the token endpoint; then the refusals the RFCs ask for. Independent
//! clients walk the same flow in `oidc_client` (the `openidconnect` crate), `oidc_python`
//! (Authlib) and `oidc_browser` (headless Chromium).

use std::collections::HashMap;

use base64::Engine;
use serde_json::Value;
use sha2::Digest;
use url::Url;
use wxauth::simulator::demo;

use crate::backend_tests;
use crate::harness::{ClientFixture, TestApp};
use crate::oauth::{basic, verify_jwt};

pub const SECRET: &str = "a-long-client-secret-for-oidc-tests";
pub const REDIRECT: &str = "https://app.example.com/cb";
pub const DESKTOP: &str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/130";
const WECHAT: &str = "Mozilla/5.0 (iPhone) AppleWebKit Mobile MicroMessenger/8.0.49";

pub async fn oidc_client(app: &TestApp, id: &str, public: bool, first_party: bool) {
    let mut client = ClientFixture::new(id, SECRET, &["authorization_code", "refresh_token"])
        .scopes(&["openid", "profile", "flow"])
        .redirect_uris(&[REDIRECT, "http://127.0.0.1:9/cb"])
        .first_party(first_party);
    if public {
        client = client.public();
    }
    client.register(app).await;
}

/// A PKCE pair (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = format!("v{}", uuid::Uuid::new_v4().simple()).repeat(2);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn html_unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The hidden fields of the consent form.
pub fn hidden_fields(page: &str) -> Vec<(String, String)> {
    page.split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|tail| {
            let name = tail.strip_prefix("name=\"")?.split('"').next()?;
            let value = tail.split("value=\"").nth(1)?.split('"').next()?;
            Some((html_unescape(name), html_unescape(value)))
        })
        .collect()
}

/// Where a walk ended.
#[derive(Debug)]
pub enum Step {
    /// A page (status, body) served by wxauth or the simulator.
    Page(u16, String),
    /// A redirect out to the client (or anywhere that is neither wxauth nor the simulator).
    Left(Url),
}

/// A browser: cookies for wxauth and the simulator, a User-Agent, no automatic redirects.
pub struct Browser<'a> {
    pub app: &'a TestApp,
    /// Cookies wxauth set (name → value).
    pub cookies: HashMap<String, String>,
    pub ua: &'static str,
    pub sim_user: &'static str,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp, ua: &'static str, sim_user: &'static str) -> Self {
        Self {
            app,
            cookies: HashMap::new(),
            ua,
            sim_user,
        }
    }

    /// The browser session cookie, if signed in.
    pub fn session(&self) -> Option<&String> {
        self.cookies.get("wxauth_session")
    }

    pub async fn send(&mut self, request: reqwest::RequestBuilder, url: &str) -> reqwest::Response {
        let mut request = request.header("user-agent", self.ua);
        if url.starts_with(&self.app.base) {
            if !self.cookies.is_empty() {
                let jar: Vec<String> = self
                    .cookies
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                request = request.header("cookie", jar.join("; "));
            }
        } else if url.starts_with(&self.app.sim_base) {
            request = request.header("cookie", format!("wxsim_user={}", self.sim_user));
        }
        let response = request.send().await.unwrap();
        if url.starts_with(&self.app.base) {
            for value in response.headers().get_all("set-cookie") {
                let pair = value.to_str().unwrap().split(';').next().unwrap();
                let (name, v) = pair.split_once('=').unwrap();
                if v.is_empty() {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), v.to_owned());
                }
            }
        }
        response
    }

    /// GET `url` and follow redirects within wxauth and the simulator.
    pub async fn walk(&mut self, url: &str) -> Step {
        let mut url = url.to_owned();
        for _ in 0..10 {
            let response = self.send(self.app.http.get(&url), &url).await;
            let status = response.status().as_u16();
            if status == 302 || status == 303 {
                let location = response.headers()["location"].to_str().unwrap().to_owned();
                let next = Url::parse(&url).unwrap().join(&location).unwrap();
                let next = next
                    .as_str()
                    .trim_end_matches("#wechat_redirect")
                    .to_owned();
                if !next.starts_with(&self.app.base) && !next.starts_with(&self.app.sim_base) {
                    return Step::Left(Url::parse(&next).unwrap());
                }
                url = next;
                continue;
            }
            return Step::Page(status, response.text().await.unwrap());
        }
        panic!("redirect loop at {url}");
    }

    /// Answer the consent page with `decision`.
    pub async fn answer_consent(&mut self, page: &str, decision: &str) -> Step {
        let mut form = hidden_fields(page);
        form.push(("decision".into(), decision.into()));
        let url = self.app.url("/oauth/authorize");
        let response = self.send(self.app.http.post(&url).form(&form), &url).await;
        let status = response.status().as_u16();
        if status == 302 {
            let location = response.headers()["location"].to_str().unwrap();
            return Step::Left(Url::parse(location).unwrap());
        }
        Step::Page(status, response.text().await.unwrap())
    }
}

pub fn authorize_url(app: &TestApp, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut url = Url::parse(&app.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "st-123")
        .extend_pairs(extra);
    url.to_string()
}

pub(crate) fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

pub(crate) async fn exchange(
    app: &TestApp,
    auth: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = app.http.post(app.url("/oauth/token")).form(form);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Decode and verify an ID token against the JWKS.
pub(crate) async fn verify_id_token(app: &TestApp, token: &str, audience: &str) -> Value {
    verify_jwt(app, token, audience).await.1
}

/// The account a simulated WeChat user signed in as through `appid`.
pub(crate) async fn account_of(app: &TestApp, appid: &str, user: &str) -> i64 {
    app.state
        .users
        .find_identity(appid, &app.sim.openid(appid, user))
        .await
        .unwrap()
        .expect("the user signed in through this app")
        .account_id
        .expect("an identity belongs to an account")
}

/// Sign in with the QR page, consent, and return the code.
pub(crate) async fn code_for(
    browser: &mut Browser<'_>,
    client_id: &str,
    extra: &[(&str, &str)],
) -> String {
    let url = authorize_url(browser.app, client_id, extra);
    let mut step = browser.walk(&url).await;
    if let Step::Page(200, page) = &step
        && page.contains("csrf_token")
    {
        step = browser.answer_consent(&page.clone(), "approve").await;
    }
    let Step::Left(back) = step else {
        panic!("expected a redirect to the client: {step:?}")
    };
    let q = query(&back);
    assert_eq!(q.get("state").map(String::as_str), Some("st-123"), "{back}");
    q.get("code")
        .unwrap_or_else(|| panic!("no code: {back}"))
        .clone()
}

backend_tests! {
    async fn sign_in_with_the_qr_page_consent_code_tokens_id_token_userinfo(app: TestApp) {
        oidc_client(&app, "web", false, false).await;
        let auth = basic("web", SECRET);
        let (verifier, challenge) = pkce();
        let mut browser = Browser::new(&app, DESKTOP, "alice");

        // Not signed in, outside WeChat: the website QR login.
        let url = authorize_url(&app, "web", &[
            ("scope", "openid profile"), ("nonce", "n-0S6"),
            ("code_challenge", &challenge), ("code_challenge_method", "S256"),
        ]);
        let first = browser.send(app.http.get(&url), &url).await;
        assert_eq!(first.status(), 302);
        let wechat = first.headers()["location"].to_str().unwrap().to_owned();
        assert!(wechat.starts_with(&format!("{}/connect/qrconnect?", app.sim_base)), "{wechat}");
        assert!(wechat.contains(demo::WEBSITE_APPID) && wechat.contains("scope=snsapi_login"));
        // The simulator shows the QR page to a browser that has not scanned yet.
        let qr = app.http.get(wechat.trim_end_matches("#wechat_redirect")).send().await.unwrap();
        assert!(qr.text().await.unwrap().contains("id=\"qrcode\""));

        // Scanned: back at wxauth, signed in, asked for consent.
        let step = browser.walk(&wechat).await;
        let Step::Page(200, consent) = step else { panic!("no consent page: {step:?}") };
        assert!(browser.session().is_some(), "a browser session cookie");
        assert!(consent.contains("Alice 爱丽丝") && consent.contains("data-scope=\"profile\""), "{consent}");
        // A forged CSRF token is refused.
        let forged = consent.replace(&hidden_fields(&consent).iter().find(|(k, _)| k == "csrf_token").unwrap().1, "forged");
        assert!(matches!(browser.answer_consent(&forged, "approve").await, Step::Page(400, _)));

        let Step::Left(back) = browser.answer_consent(&consent, "approve").await else { panic!() };
        assert!(back.as_str().starts_with(REDIRECT));
        let q = query(&back);
        assert_eq!(q["state"], "st-123");
        let code = q["code"].clone();

        let (status, tokens) = exchange(&app, Some(&auth), &[
            ("grant_type", "authorization_code"), ("code", &code),
            ("redirect_uri", REDIRECT), ("code_verifier", &verifier),
        ]).await;
        assert_eq!(status, 200, "{tokens}");
        assert!(tokens["refresh_token"].is_string());
        let id = verify_id_token(&app, tokens["id_token"].as_str().unwrap(), "web").await;
        let alice = app.state.users.find_identity(demo::WEBSITE_APPID, &app.sim.openid(demo::WEBSITE_APPID, "alice")).await.unwrap().unwrap();
        assert_eq!(id["sub"], account_of(&app, demo::WEBSITE_APPID, "alice").await.to_string());
        assert_eq!(id["nonce"], "n-0S6");
        assert_eq!(id["name"], "Alice 爱丽丝");
        assert!(id["auth_time"].as_i64().unwrap() <= id["iat"].as_i64().unwrap());
        // One person across apps: the website identity joined alice's unionid account.
        assert_eq!(alice.union_id, app.sim.unionid(demo::MINI_PROGRAM_APPID, "alice"));

        let info: Value = app.http.get(app.url("/oauth/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(info["sub"], id["sub"]);
        assert_eq!(info["name"], "Alice 爱丽丝");
        // Two Authorization headers are ambiguous: refused, not judged by the first.
        let doubled = app.http.get(app.url("/oauth/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .header("authorization", "Bearer someone-elses")
            .send().await.unwrap();
        assert_eq!(doubled.status(), 400);
        let body: Value = doubled.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{body}");

        // The second authorization is silent: signed in and consented.
        let (verifier2, challenge2) = pkce();
        let url = authorize_url(&app, "web", &[("scope", "openid"), ("code_challenge", &challenge2), ("code_challenge_method", "S256")]);
        let Step::Left(back) = browser.walk(&url).await else { panic!("not silent") };
        let code2 = query(&back)["code"].clone();
        let (status, _) = exchange(&app, Some(&auth), &[
            ("grant_type", "authorization_code"), ("code", &code2),
            ("redirect_uri", REDIRECT), ("code_verifier", &verifier2),
        ]).await;
        assert_eq!(status, 200);

        // Replaying the first code is refused and revokes what it gave.
        let (status, body) = exchange(&app, Some(&auth), &[
            ("grant_type", "authorization_code"), ("code", &code),
            ("redirect_uri", REDIRECT), ("code_verifier", &verifier),
        ]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        let (status, body) = exchange(&app, Some(&auth), &[
            ("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "refresh token of a replayed code: {body}");
        let revoked = app.http.get(app.url("/oauth/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(revoked.status(), 401);
        assert!(revoked.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));

        // Logging out ends the session (the person confirms: there is no id_token_hint): the
        // next authorization asks WeChat again.
        let logout = app.url("/oauth/logout");
        let ask = browser.send(app.http.post(&logout), &logout).await;
        assert_eq!(ask.status(), 200);
        let form = hidden_fields(&ask.text().await.unwrap());
        let out = browser.send(app.http.post(&logout).form(&form), &logout).await;
        assert_eq!(out.status(), 200);
        assert!(browser.session().is_none());
        let again = browser.send(app.http.get(&url), &url).await;
        assert!(again.headers()["location"].to_str().unwrap().contains("/connect/qrconnect"));
    }

    async fn pkce_redirect_uri_client_and_prompt_refusals(app: TestApp) {
        oidc_client(&app, "spa", true, true).await;
        oidc_client(&app, "web", false, true).await;
        oidc_client(&app, "other", false, true).await;
        let mut browser = Browser::new(&app, DESKTOP, "bob");

        // Unknown client, unregistered redirect_uri, missing redirect_uri: a page, never a redirect.
        for url in [
            authorize_url(&app, "nobody", &[("code_challenge", &pkce().1), ("code_challenge_method", "S256")]),
            authorize_url(&app, "spa", &[("code_challenge", &pkce().1), ("code_challenge_method", "S256")]).replace("app.example.com", "evil.example.com"),
            authorize_url(&app, "spa", &[]).replace("redirect_uri=", "redirect=") ,
            authorize_url(&app, "spa", &[]).replace("%2Fcb", "%2Fcb%2F"),
        ] {
            let response = browser.send(app.http.get(&url), &url).await;
            assert_eq!(response.status(), 400, "{url}");
            assert!(response.headers().get("location").is_none());
            assert!(response.text().await.unwrap().contains("<html"));
        }

        // A public client: no challenge, or plain, is refused at the redirect_uri.
        for extra in [
            vec![],
            vec![("code_challenge", "a".repeat(43)), ("code_challenge_method", "plain".to_string())],
            vec![("code_challenge", "a".repeat(43))],
        ] {
            let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let Step::Left(back) = browser.walk(&authorize_url(&app, "spa", &extra)).await else { panic!() };
            let q = query(&back);
            assert_eq!(q["error"], "invalid_request", "{back}");
            assert_eq!(q["state"], "st-123");
        }
        // Unsupported response_type and an unknown scope, at the redirect_uri too.
        let url = authorize_url(&app, "web", &[]).replace("response_type=code", "response_type=token");
        let Step::Left(back) = browser.walk(&url).await else { panic!() };
        assert_eq!(query(&back)["error"], "unsupported_response_type");
        let Step::Left(back) = browser.walk(&authorize_url(&app, "web", &[("scope", "openid admin")])).await else { panic!() };
        assert_eq!(query(&back)["error"], "invalid_scope");
        // prompt=none without a session.
        let Step::Left(back) = browser.walk(&authorize_url(&app, "web", &[("prompt", "none")])).await else { panic!() };
        assert_eq!(query(&back)["error"], "login_required");

        // The public client's flow works with S256, first-party: no consent page.
        let (verifier, challenge) = pkce();
        let code = code_for(&mut browser, "spa", &[("scope", "openid"), ("code_challenge", &challenge), ("code_challenge_method", "S256")]).await;
        // A wrong verifier is invalid_grant, and the code is spent.
        let (status, body) = exchange(&app, None, &[
            ("grant_type", "authorization_code"), ("client_id", "spa"), ("code", &code),
            ("redirect_uri", REDIRECT), ("code_verifier", &"x".repeat(43)),
        ]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        let (status, _) = exchange(&app, None, &[
            ("grant_type", "authorization_code"), ("client_id", "spa"), ("code", &code),
            ("redirect_uri", REDIRECT), ("code_verifier", &verifier),
        ]).await;
        assert_eq!(status, 400, "a code is spent by a failed attempt too");

        // Without a verifier.
        let (_, challenge) = pkce();
        let code = code_for(&mut browser, "spa", &[("code_challenge", &challenge), ("code_challenge_method", "S256")]).await;
        let (status, body) = exchange(&app, None, &[
            ("grant_type", "authorization_code"), ("client_id", "spa"), ("code", &code), ("redirect_uri", REDIRECT),
        ]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

        // Downgrade: a confidential client's code made without a challenge, redeemed with a verifier.
        let code = code_for(&mut browser, "web", &[]).await;
        let (status, body) = exchange(&app, Some(&basic("web", SECRET)), &[
            ("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT), ("code_verifier", &pkce().0),
        ]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

        // Another client, or another redirect_uri, cannot redeem a code.
        let code = code_for(&mut browser, "web", &[]).await;
        let (status, body) = exchange(&app, Some(&basic("other", SECRET)), &[
            ("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT),
        ]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        let code = code_for(&mut browser, "web", &[]).await;
        let (status, body) = exchange(&app, Some(&basic("web", SECRET)), &[
            ("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "http://127.0.0.1:9/cb"),
        ]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        // A wrong secret is invalid_client.
        let (status, body) = exchange(&app, Some(&basic("web", "not-the-secret-at-all")), &[
            ("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", REDIRECT),
        ]).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));

        // Codes live 60 seconds.
        let code = code_for(&mut browser, "web", &[]).await;
        app.clock.advance(61);
        let (status, body) = exchange(&app, Some(&basic("web", SECRET)), &[
            ("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT),
        ]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_wechat_the_base_account_signs_the_user_in_and_deny_is_access_denied() {
    let app = TestApp::spawn(crate::harness::Backend::Sqlite)
        .await
        .unwrap();
    oidc_client(&app, "web", false, false).await;
    app.push_component_ticket().await;
    let mut browser = Browser::new(&app, WECHAT, "alice");
    let url = authorize_url(&app, "web", &[("scope", "openid profile")]);
    let first = browser.send(app.http.get(&url), &url).await;
    let wechat = first.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        wechat.starts_with(&format!("{}/connect/oauth2/authorize?", app.sim_base)),
        "{wechat}"
    );
    assert!(wechat.contains(demo::BASE_ACCOUNT_APPID) && wechat.contains("snsapi_userinfo"));

    let Step::Page(200, consent) = browser.walk(&wechat).await else {
        panic!()
    };
    let Step::Left(back) = browser.answer_consent(&consent, "deny").await else {
        panic!()
    };
    let q = query(&back);
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("access_denied", "st-123")
    );
    assert!(!q.contains_key("code"));

    // The sign-in's state is single use: replaying WeChat's redirect is refused with a page.
    let Step::Page(200, _) = browser.walk(&url).await else {
        panic!("consent again")
    };
    let identity = app
        .state
        .users
        .find_identity(
            demo::BASE_ACCOUNT_APPID,
            &app.sim.openid(demo::BASE_ACCOUNT_APPID, "alice"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.nick_name.as_deref(), Some("Alice 爱丽丝"));

    // WeChat down during the sign-in: a 503 page, no session.
    let mut fresh = Browser::new(&app, WECHAT, "bob");
    let first = fresh.send(app.http.get(&url), &url).await;
    let wechat = first.headers()["location"]
        .to_str()
        .unwrap()
        .trim_end_matches("#wechat_redirect")
        .to_owned();
    let to_callback = fresh.send(app.http.get(&wechat), &wechat).await;
    let callback = to_callback.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    app.sim.fail_http(1000);
    let down = fresh.send(app.http.get(&callback), &callback).await;
    assert_eq!(down.status(), 503);
    assert!(fresh.session().is_none());
    app.sim.clear_faults();
    let replay = fresh.send(app.http.get(&callback), &callback).await;
    assert_eq!(
        replay.status(),
        400,
        "the state was spent by the failed attempt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_callback_only_works_in_the_browser_that_started_it() {
    let app = TestApp::spawn(crate::harness::Backend::Sqlite)
        .await
        .unwrap();
    oidc_client(&app, "web", false, true).await;
    // The attacker starts a sign-in and stops at WeChat's redirect back to wxauth.
    let mut attacker = Browser::new(&app, DESKTOP, "bob");
    let url = authorize_url(&app, "web", &[("scope", "openid")]);
    let first = attacker.send(app.http.get(&url), &url).await;
    let wechat = first.headers()["location"]
        .to_str()
        .unwrap()
        .trim_end_matches("#wechat_redirect")
        .to_owned();
    let to_us = attacker.send(app.http.get(&wechat), &wechat).await;
    let callback = to_us.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&app.url("/oauth/callback/wechat")));

    // The victim, who has a sign-in of their own under way, is lured to it: refused, and not
    // signed in as the attacker.
    let mut victim = Browser::new(&app, DESKTOP, "alice");
    let own = victim.send(app.http.get(&url), &url).await;
    assert_eq!(own.status(), 302);
    assert!(victim.cookies.contains_key("wxauth_signin"));
    let lured = victim.send(app.http.get(&callback), &callback).await;
    assert_eq!(lured.status(), 400);
    assert!(victim.session().is_none());

    // The state was not spent by the wrong browser: its own browser still completes.
    let Step::Left(back) = attacker.walk(&callback).await else {
        panic!("own browser refused")
    };
    assert!(query(&back).contains_key("code"));
    assert!(attacker.session().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_documents_describe_the_endpoints() {
    let app = TestApp::spawn(crate::harness::Backend::Sqlite)
        .await
        .unwrap();
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let doc: Value = app
            .http
            .get(app.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["issuer"], app.base.as_str());
        assert_eq!(doc["authorization_endpoint"], app.url("/oauth/authorize"));
        assert_eq!(doc["userinfo_endpoint"], app.url("/oauth/userinfo"));
        assert_eq!(
            doc["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert!(
            doc["grant_types_supported"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g == "authorization_code")
        );
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            serde_json::json!(["ES256", "RS256"])
        );
    }
}

backend_tests! {
    async fn first_consents_given_at_once_are_all_remembered(app: TestApp) {
        let consents = wxauth::oauth::consent::Consents::new(app.state.db.clone(), app.state.clock.clone());
        let scopes: Vec<String> = ["openid", "profile", "flow", "a", "b", "c"].map(String::from).to_vec();
        let results = futures::future::join_all(
            scopes.iter().map(|s| consents.remember(7, "web", std::slice::from_ref(s))),
        )
        .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert!(consents.covers(7, "web", &scopes).await.unwrap());
        assert!(!consents.covers(7, "other", &scopes[..1]).await.unwrap());
    }
}
