//! The smaller takeover paths of issue 11 §4, each performed through HTTP the way an attacker
//! would: secrets in the query string, introspection and `by-unionid` by clients that are not
//! resource servers, public clients signing out, a client whose subject collides with an
//! account's, absurd lifetimes, floods of unknown key ids, sealed values swapped between rows,
//! planted sign-in cookies, and `__Host-` cookies on https.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};
use url::Url;
use wxauth::simulator::demo;
use wxauth::users::IdentityKey;

use crate::backend_tests;
use crate::harness::{Backend, ClientFixture, Options, TestApp};
use crate::oauth::basic;
use crate::oidc::{Browser, DESKTOP, REDIRECT, Step, authorize_url, oidc_client, pkce};

const SECRET: &str = "a-long-client-secret-for-hardening";
use crate::harness::{SEED_APPID as APPID, SEED_OPENID as OPENID, SEED_UNIONID as UNIONID};

async fn client(app: &TestApp, id: &str, grants: &[&str], introspect: bool) {
    ClientFixture::new(id, SECRET, grants)
        .scopes(&["flow", "api", "openid"])
        .introspect(introspect)
        .register(app)
        .await;
}

/// Tokens for the identity through the `flow` grant with a fresh ticket.
async fn flow_tokens(app: &TestApp, client_id: &str) -> Value {
    let ticket = app
        .state
        .tickets
        .mint(&IdentityKey::new(
            APPID.parse().unwrap(),
            OPENID,
            Some(UNIONID),
        ))
        .await
        .unwrap();
    let (status, body) = post(
        app,
        "/oauth/token",
        Some(&basic(client_id, SECRET)),
        &[
            ("grant_type", "flow"),
            ("appId", APPID),
            ("openId", OPENID),
            ("unionId", UNIONID),
            ("ticket", &ticket),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn post(
    app: &TestApp,
    path: &str,
    auth: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = app.http.post(app.url(path)).form(form);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `active` as `client_id` sees `token` at introspection (with an optional hint).
async fn active(app: &TestApp, client_id: &str, token: &str, hint: Option<&str>) -> bool {
    let mut form = vec![("token", token)];
    if let Some(hint) = hint {
        form.push(("token_type_hint", hint));
    }
    let (status, body) = post(
        app,
        "/oauth/introspect",
        Some(&basic(client_id, SECRET)),
        &form,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["active"] == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_the_token_endpoint_query_string_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    client(
        &app,
        "web",
        &["flow", "refresh_token", "client_credentials"],
        false,
    )
    .await;
    crate::harness::seed_identity(&app).await;
    let tokens = flow_tokens(&app, "web").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    // What a proxy or access log would keep: each of these in the URL is refused.
    for query in [
        format!("?grant_type=client_credentials&client_id=web&client_secret={SECRET}"),
        format!("?grant_type=refresh_token&refresh_token={refresh}"),
        "?grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb"
            .into(),
        "?grant_type=authorization_code&code_verifier=abc".into(),
    ] {
        for path in ["/oauth/token", "/api/auth/oauth/token"] {
            let response = app
                .http
                .post(app.url(&format!("{path}{query}")))
                .header("authorization", basic("web", SECRET))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{path}{query}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "invalid_request", "{path}{query}");
        }
    }
    // The refresh token sent in the URL was not spent: it still works from the body.
    let (status, body) = post(
        &app,
        "/oauth/token",
        Some(&basic("web", SECRET)),
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The seed's flow request keeps its query-string shape.
    let ticket = app
        .state
        .tickets
        .mint(&IdentityKey::new(
            APPID.parse().unwrap(),
            OPENID,
            Some(UNIONID),
        ))
        .await
        .unwrap();
    let seed = format!(
        "/api/auth/oauth/token?grant_type=flow&scope=flow&unionId={UNIONID}&appId={APPID}&openId={OPENID}&ticket={ticket}"
    );
    let response = app
        .http
        .post(app.url(&seed))
        .header("authorization", basic("web", SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

backend_tests! {
    async fn only_resource_servers_introspect_other_clients_tokens(app: TestApp) {
        client(&app, "web", &["flow", "refresh_token"], false).await;
        // A Mini Program's client: its secret ships in public code.
        client(&app, "mp", &["flow"], false).await;
        client(&app, "api-gateway", &["client_credentials"], true).await;
        crate::harness::seed_identity(&app).await;
        let tokens = flow_tokens(&app, "web").await;
        let access = tokens["access_token"].as_str().unwrap();
        let refresh = tokens["refresh_token"].as_str().unwrap();

        // Another client, not a resource server: as if the tokens did not exist.
        let (status, body) = post(&app, "/oauth/introspect", Some(&basic("mp", SECRET)), &[("token", access)]).await;
        assert_eq!((status, body.clone()), (200, json!({ "active": false })), "{body}");
        assert!(!active(&app, "mp", refresh, None).await);
        // The client itself, and a resource server, see them.
        assert!(active(&app, "web", access, None).await);
        assert!(active(&app, "web", refresh, None).await);
        assert!(active(&app, "api-gateway", access, None).await);
        assert!(active(&app, "api-gateway", refresh, None).await);
        // The hint is only where to look first (RFC 7662 §2.1).
        assert!(active(&app, "web", access, Some("refresh_token")).await);
        assert!(active(&app, "web", refresh, Some("access_token")).await);
        assert!(active(&app, "api-gateway", access, Some("refresh_token")).await);
        assert!(active(&app, "web", access, Some("something_else")).await);

        // by-unionid: the same rule.
        let lookup = |client: &'static str| {
            let request = app.http.get(app.url(&format!("/api/wechat/user/by-unionid?unionId={UNIONID}")));
            async move {
                let request = if client.is_empty() { request } else { request.header("authorization", basic(client, SECRET)) };
                let response = request.send().await.unwrap();
                (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let (status, body) = lookup("mp").await;
        assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")), "{body}");
        assert!(body.get("exists").is_none());
        let (status, _) = lookup("").await;
        assert_eq!(status, 401);
        let (status, body) = lookup("api-gateway").await;
        assert_eq!((status, body["exists"].as_bool()), (200, Some(true)), "{body}");
    }

    async fn another_clients_refresh_token_is_refused_without_effect(app: TestApp) {
        client(&app, "web", &["flow", "refresh_token"], false).await;
        client(&app, "mallory", &["refresh_token", "client_credentials"], false).await;
        crate::harness::seed_identity(&app).await;
        let first = flow_tokens(&app, "web").await;
        let refresh = |client_id: &'static str, token: String| {
            let app = &app;
            async move {
                post(app, "/oauth/token", Some(&basic(client_id, SECRET)), &[("grant_type", "refresh_token"), ("refresh_token", &token)]).await
            }
        };
        let old = first["refresh_token"].as_str().unwrap().to_owned();
        // Another client presenting the token: refused, and the token is not spent.
        let (status, body) = refresh("mallory", old.clone()).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        let (status, second) = refresh("web", old.clone()).await;
        assert_eq!(status, 200, "{second}");
        // Nor can it set off reuse detection with a spent token to revoke someone's family.
        let (status, _) = refresh("mallory", old).await;
        assert_eq!(status, 400);
        let (status, third) = refresh("web", second["refresh_token"].as_str().unwrap().to_owned()).await;
        assert_eq!(status, 200, "the family is still alive: {third}");
    }

    async fn a_public_client_signs_out_by_revoking_its_own_tokens(app: TestApp) {
        oidc_client(&app, "spa", true, true).await;
        oidc_client(&app, "other-spa", true, true).await;
        let mut browser = Browser::new(&app, DESKTOP, "alice");
        let (verifier, challenge) = pkce();
        let url = authorize_url(&app, "spa", &[("scope", "openid"), ("code_challenge", &challenge), ("code_challenge_method", "S256")]);
        let Step::Left(back) = browser.walk(&url).await else { panic!("no code") };
        let code = back.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
        let (status, tokens) = post(&app, "/oauth/token", None, &[
            ("grant_type", "authorization_code"), ("client_id", "spa"), ("code", &code),
            ("redirect_uri", REDIRECT), ("code_verifier", &verifier),
        ]).await;
        assert_eq!(status, 200, "{tokens}");
        let access = tokens["access_token"].as_str().unwrap();
        let refresh = tokens["refresh_token"].as_str().unwrap();

        // Another public client naming itself cannot revoke them (200, nothing happens).
        let (status, _) = post(&app, "/oauth/revoke", None, &[("client_id", "other-spa"), ("token", refresh)]).await;
        assert_eq!(status, 200);
        let userinfo = |token: String| {
            let request = app.http.get(app.url("/oauth/userinfo")).bearer_auth(token);
            async move { request.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(userinfo(access.to_owned()).await, 200);

        // The browser app signs out: client_id and no secret (RFC 7009 §2.1).
        let (status, body) = post(&app, "/oauth/revoke", None, &[("client_id", "spa"), ("token", refresh)]).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = post(&app, "/oauth/token", None, &[("grant_type", "refresh_token"), ("client_id", "spa"), ("refresh_token", refresh)]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        // Revoking the refresh token revoked what its family produced.
        assert_eq!(userinfo(access.to_owned()).await, 401);
        // An unknown public client is still invalid_client.
        let (status, body) = post(&app, "/oauth/revoke", None, &[("client_id", "nobody"), ("token", refresh)]).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    }

    async fn a_client_named_like_an_account_gets_a_subject_of_its_own(app: TestApp) {
        let account = crate::harness::seed_identity(&app).await;
        let name = account.to_string();
        client(&app, &name, &["client_credentials"], false).await;
        client(&app, "web", &["flow"], false).await;
        let (status, cc) = post(&app, "/oauth/token", Some(&basic(&name, SECRET)), &[("grant_type", "client_credentials"), ("scope", "openid api")]).await;
        assert_eq!(status, 200, "{cc}");
        let claims = crate::oauth::verify_with_jwks(&app, cc["access_token"].as_str().unwrap()).await;
        assert_eq!(claims["sub"], format!("client:{name}"));
        assert_eq!(claims["client_id"], name.as_str());
        let user = flow_tokens(&app, "web").await;
        let user_claims = crate::oauth::verify_with_jwks(&app, user["access_token"].as_str().unwrap()).await;
        assert_eq!(user_claims["sub"], name.as_str(), "the account's own subject");
        assert_ne!(claims["sub"], user_claims["sub"]);
        // The client's token is nobody's at userinfo.
        let response = app.http.get(app.url("/oauth/userinfo")).bearer_auth(cc["access_token"].as_str().unwrap()).send().await.unwrap();
        assert_ne!(response.status(), 200);

        // A resource server built on the resource crate tells them apart.
        let verifier = wxauth_resource::Verifier::builder(app.base.clone()).build().unwrap();
        let client_token = verifier.verify(cc["access_token"].as_str().unwrap()).await.unwrap();
        assert!(client_token.claims.is_client() && !client_token.claims.is_user());
        assert_eq!(client_token.claims.sub, format!("{}{name}", wxauth_resource::CLIENT_SUBJECT_PREFIX));
        let user_token = verifier.verify(user["access_token"].as_str().unwrap()).await.unwrap();
        assert!(user_token.claims.is_user() && !user_token.claims.is_client());
        assert_eq!(user_token.claims.flow_user_id.as_deref(), Some(name.as_str()));
    }

    async fn a_stored_lifetime_past_the_bounds_cannot_overflow_into_the_past(app: TestApp) {
        crate::harness::seed_identity(&app).await;
        // A client row written before lifetimes were bounded.
        let now = app.state.clock.now();
        entity::oauth_client::ActiveModel {
            client_id: Set("old".into()),
            secret_hash: Set(Some(app.state.vault.fingerprint(SECRET))),
            grant_types: Set("flow,refresh_token".into()),
            scopes: Set("flow".into()),
            redirect_uris: Set(String::new()),
            is_public: Set(false),
            first_party: Set(false),
            access_token_ttl: Set(i64::MAX),
            refresh_token_ttl: Set(i64::MAX),
            flow_ticket: Set("required".into()),
            introspect: Set(false),
            refresh_family_ttl: Set(i64::MAX),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&app.state.db)
        .await
        .unwrap();
        let tokens = flow_tokens(&app, "old").await;
        let claims = crate::oauth::verify_with_jwks(&app, tokens["access_token"].as_str().unwrap()).await;
        let exp = claims["exp"].as_i64().unwrap();
        assert!(exp > now && exp <= now + 86_400 + 5, "exp {exp} for now {now}");
        let (_, intro) = post(&app, "/oauth/introspect", Some(&basic("old", SECRET)), &[("token", tokens["refresh_token"].as_str().unwrap())]).await;
        assert_eq!(intro["active"], true, "{intro}");
        let exp = intro["exp"].as_i64().unwrap();
        assert!(exp > now && exp <= now + 365 * 86_400 + 5, "refresh exp {exp} for now {now}");
    }

    async fn sealed_secrets_swapped_between_rows_do_not_open(app: TestApp) {
        // Someone who can write the database, but not read the master key, swaps two apps'
        // sealed secrets, hoping to make wxauth use one app's secret for another.
        let (mp, web) = (demo::MINI_PROGRAM_APPID, demo::WEBSITE_APPID);
        assert!(app.state.apps.get(mp).await.unwrap().unwrap().secret.is_some());
        let sealed = |appid: &'static str| {
            let db = app.state.db.clone();
            async move { entity::wx_app::Entity::find_by_id(appid.to_owned()).one(&db).await.unwrap().unwrap().secret_enc.unwrap() }
        };
        let (a, b) = (sealed(mp).await, sealed(web).await);
        assert!(a.starts_with("v2.") && b.starts_with("v2."));
        for (appid, value) in [(mp, &b), (web, &a)] {
            let mut row: entity::wx_app::ActiveModel = entity::wx_app::Entity::find_by_id(appid.to_owned()).one(&app.state.db).await.unwrap().unwrap().into();
            row.secret_enc = Set(Some(value.clone()));
            row.update(&app.state.db).await.unwrap();
        }
        assert!(app.state.apps.get(mp).await.is_err(), "a value from another row does not open");
        assert!(app.state.apps.get(web).await.is_err(), "a value from another row does not open");
        // The requests that need them fail cleanly: 503, nothing about the cause, no secret.
        let code = app.sim.mint_js_code(mp, "alice").unwrap();
        let response = app.http.post(app.url("/api/wechat/ma/session")).json(&json!({ "appId": mp, "code": code })).send().await.unwrap();
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        let text = response.text().await.unwrap();
        for leak in ["seal", "vault", "master", "wx_app", "open", demo::MINI_PROGRAM_SECRET, demo::WEBSITE_SECRET] {
            assert!(!text.to_lowercase().contains(&leak.to_lowercase()), "{leak} in {text}");
        }
        assert_eq!(app.sim.calls("/sns/jscode2session"), 0, "no secret was sent to WeChat");
    }
}

/// A forged access token naming key id `kid`.
fn forged(kid: &str) -> String {
    let header =
        URL_SAFE_NO_PAD.encode(json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid }).to_string());
    let claims = URL_SAFE_NO_PAD.encode(json!({ "sub": "1", "scope": "openid" }).to_string());
    format!("{header}.{claims}.{}", URL_SAFE_NO_PAD.encode([7u8; 64]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_key_ids_reads_the_key_table_at_most_every_30_seconds() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let keys = app.state.oauth.tokens.keys().clone();
    let flood = |round: usize| {
        let app = &app;
        futures::future::join_all((0..100).map(move |i| async move {
            let response = app
                .http
                .get(app.url("/oauth/userinfo"))
                .bearer_auth(forged(&format!("made-up-{round}-{i}")))
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }))
    };
    let before = keys.table_reads();
    let statuses = flood(0).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let after_first = keys.table_reads();
    assert!(
        after_first - before <= 1,
        "{} reads for 100 unknown kids",
        after_first - before
    );
    // Still within 30 s: no read at all.
    app.clock.advance(25);
    flood(1).await;
    assert_eq!(
        keys.table_reads(),
        after_first,
        "unknown kids within 30 s of a read read nothing"
    );

    // A key another instance added: picked up once 30 s have passed since the last read.
    let elsewhere = wxauth::oauth::keys::SigningKeys::load(
        app.state.db.clone(),
        app.state.vault.clone(),
        app.state.clock.clone(),
        wxauth::config::JwtAlg::Es256,
        None,
    )
    .await
    .unwrap();
    elsewhere.rotate().await.unwrap();
    app.clock.advance(5);
    client(&app, "svc", &["client_credentials"], true).await;
    let now = app.state.clock.now();
    let claims = wxauth::oauth::token_service::AccessClaims {
        iss: app.base.clone(),
        sub: "client:svc".into(),
        aud: app.base.clone().into(),
        client_id: "svc".into(),
        scope: "api".into(),
        iat: now,
        exp: now + 60,
        jti: "rotated-elsewhere".into(),
        user_name: None,
        account: None,
        flow_user_id: None,
        nick_name: None,
        avatar: None,
    };
    let token = elsewhere
        .sign(wxauth::oauth::token_service::ACCESS_TOKEN_TYP, &claims)
        .await
        .unwrap();
    assert!(
        active(&app, "svc", &token, None).await,
        "a key rotated elsewhere verifies"
    );
    assert_eq!(keys.table_reads(), after_first + 1);
    flood(2).await;
    assert_eq!(
        keys.table_reads(),
        after_first + 1,
        "and the flood goes on reading nothing"
    );
}

/// Follow a sign-in to WeChat and back, stopping at the redirect to wxauth's callback.
async fn callback_url(browser: &mut Browser<'_>, authorize: &str) -> String {
    let app = browser.app;
    let first = browser.send(app.http.get(authorize), authorize).await;
    assert_eq!(first.status(), 302);
    let wechat = first.headers()["location"]
        .to_str()
        .unwrap()
        .trim_end_matches("#wechat_redirect")
        .to_owned();
    let to_us = browser.send(app.http.get(&wechat), &wechat).await;
    to_us.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_sign_in_cookie_is_never_adopted() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    oidc_client(&app, "web", false, true).await;
    let url = authorize_url(&app, "web", &[("scope", "openid")]);
    // The attacker starts a sign-in of their own to learn a binding value...
    let mut attacker = Browser::new(&app, DESKTOP, "bob");
    let _ = callback_url(&mut attacker, &url).await;
    let planted = attacker.cookies["wxauth_signin"].clone();
    // ...plants it in the victim's browser (a cookie set from a sibling subdomain), and later
    // gets hold of the victim's callback link (a log, a Referer, a shoulder).
    let mut victim = Browser::new(&app, DESKTOP, "alice");
    victim
        .cookies
        .insert("wxauth_signin".into(), planted.clone());
    let callback = callback_url(&mut victim, &url).await;
    assert!(
        callback.starts_with(&app.url("/oauth/callback/wechat")),
        "{callback}"
    );
    let held = victim.cookies["wxauth_signin"].clone();
    assert_ne!(held, planted, "a fresh binding was minted");
    // The attacker's browser, holding the planted value, cannot finish the victim's sign-in.
    let stolen = attacker.send(app.http.get(&callback), &callback).await;
    assert_eq!(stolen.status(), 400);
    assert!(
        attacker.session().is_none(),
        "the attacker did not get the victim's session"
    );
    // The victim's browser can.
    let Step::Left(back) = victim.walk(&callback).await else {
        panic!("the victim's own sign-in failed")
    };
    assert!(back.query_pairs().any(|(k, _)| k == "code"));
    assert!(victim.session().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_in_several_tabs_all_finish() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    oidc_client(&app, "web", false, true).await;
    let mut browser = Browser::new(&app, DESKTOP, "alice");
    let tabs: Vec<String> = {
        let mut urls = Vec::new();
        for state in ["tab-1", "tab-2", "tab-3"] {
            let mut url = Url::parse(&app.url("/oauth/authorize")).unwrap();
            url.query_pairs_mut()
                .append_pair("response_type", "code")
                .append_pair("client_id", "web")
                .append_pair("redirect_uri", REDIRECT)
                .append_pair("scope", "openid")
                .append_pair("state", state);
            // The binding cookie must come back to the authorization endpoint, which carries the
            // other tabs' bindings along (a browser sends a cookie only under its Path).
            let response = browser.send(app.http.get(url.as_str()), url.as_str()).await;
            let set = response.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .to_owned();
            let path = set
                .split("; ")
                .find_map(|a| a.strip_prefix("Path="))
                .unwrap();
            assert!(
                "/oauth/authorize".starts_with(path) && "/oauth/callback/wechat".starts_with(path),
                "{set}"
            );
            let wechat = response.headers()["location"]
                .to_str()
                .unwrap()
                .trim_end_matches("#wechat_redirect")
                .to_owned();
            let to_us = browser.send(app.http.get(&wechat), &wechat).await;
            urls.push(to_us.headers()["location"].to_str().unwrap().to_owned());
        }
        urls
    };
    for (i, callback) in tabs.iter().enumerate() {
        let Step::Left(back) = browser.walk(callback).await else {
            panic!("tab {} failed", i + 1)
        };
        assert!(
            back.query_pairs()
                .any(|(k, v)| k == "state" && v == format!("tab-{}", i + 1)),
            "{back}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_https_every_cookie_is_host_prefixed_and_a_bare_one_is_ignored() {
    // Served behind TLS: the public URL is https (the test talks to the plain listener).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let public = format!("https://127.0.0.1:{port}");
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            env: vec![("WXAUTH_PUBLIC_URL".into(), public.clone())],
            ..Options::default()
        },
    )
    .await
    .unwrap();
    oidc_client(&app, "web", false, true).await;
    let url = authorize_url(&app, "web", &[("scope", "openid")]);
    let first = app
        .http
        .get(&url)
        .header("user-agent", DESKTOP)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 302);
    let set = first.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("__Host-wxauth_signin="), "{set}");
    let attributes: Vec<&str> = set.split("; ").skip(1).collect();
    assert!(
        attributes.contains(&"Path=/") && attributes.contains(&"Secure") && !set.contains("Domain"),
        "{set}"
    );
    let binding = set
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let wechat = first.headers()["location"]
        .to_str()
        .unwrap()
        .trim_end_matches("#wechat_redirect")
        .to_owned();
    let to_us = app
        .http
        .get(&wechat)
        .header("cookie", "wxsim_user=alice")
        .send()
        .await
        .unwrap();
    let callback = to_us.headers()["location"]
        .to_str()
        .unwrap()
        .replacen(&public, &app.base, 1);
    // The same value under the bare name (what a subdomain could set) does not count.
    let bare = app
        .http
        .get(&callback)
        .header("cookie", format!("wxauth_signin={binding}"))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 400);
    // Under its __Host- name it does, and the session cookie is __Host- too.
    let done = app
        .http
        .get(&callback)
        .header("cookie", format!("__Host-wxauth_signin={binding}"))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 302);
    let session = done.headers()["set-cookie"].to_str().unwrap();
    let attributes: Vec<&str> = session.split("; ").skip(1).collect();
    assert!(
        session.starts_with("__Host-wxauth_session=")
            && attributes.contains(&"Path=/")
            && attributes.contains(&"Secure"),
        "{session}"
    );
}
