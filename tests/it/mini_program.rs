//! Mini Program login through the simulator: the session (new and returning users), saving the
//! profile, the phone number both ways, `getUserByUnionid`, the flow grant with the session's
//! ticket, the one-shot `mini_program` grant, WeChat faults, and that no answer ever carries a
//! session_key.

use sea_orm::EntityTrait;
use serde_json::{Value, json};
use wxauth::oauth::{FlowTicketPolicy, NewClient};
use wxauth::secret::Secret;
use wxauth::simulator::demo::{MINI_PROGRAM_APPID as MP, users};
use wxauth::wechat::SessionKey;
use wxauth::wechat::crypto::encrypt_mini_program_data;

use crate::backend_tests;
use crate::harness::{Options, TestApp};
use crate::oauth::{basic, verify_with_jwks};

pub(crate) const SECRET: &str = "a-long-client-secret-for-mini-program-tests";

pub(crate) async fn client(app: &TestApp, id: &str, grants: &[&str]) -> String {
    app.state
        .clients
        .create(NewClient {
            client_id: id.into(),
            secret: Some(Secret::new(SECRET)),
            grant_types: grants.iter().map(|g| g.to_string()).collect(),
            scopes: vec!["flow".into(), "api".into()],
            redirect_uris: vec![],
            public: false,
            first_party: false,
            access_token_ttl: 600,
            refresh_token_ttl: 3600,
            flow_ticket: FlowTicketPolicy::Required,
            ..NewClient::default()
        })
        .await
        .unwrap();
    basic(id, SECRET)
}

/// Every session_key the simulator has handed out so far.
fn session_keys(app: &TestApp) -> Vec<String> {
    users()
        .iter()
        .filter_map(|u| app.sim.session_key(MP, &u.id))
        .collect()
}

/// A body must never carry a session_key: not by name, not by value.
pub(crate) fn assert_no_session_key(app: &TestApp, body: &str) {
    assert!(
        !body.contains("session_key") && !body.contains("sessionKey"),
        "{body}"
    );
    for key in session_keys(app) {
        assert!(!body.contains(&key), "a session_key leaked: {body}");
    }
}

/// POST JSON to wxauth; returns status and body, checking the body for session keys.
pub(crate) async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_no_session_key(app, &text);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `wx.login` for `user`, then `/api/wechat/ma/session`.
pub(crate) async fn sign_in(app: &TestApp, user: &str) -> Value {
    let code = app.sim.mint_js_code(MP, user).unwrap();
    let (status, body) = post(
        app,
        "/api/wechat/ma/session",
        json!({ "appId": MP, "code": code }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

pub(crate) async fn token<V: serde::Serialize>(
    app: &TestApp,
    auth: &str,
    form: &[(&str, V)],
) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .header("authorization", auth)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_no_session_key(app, &text);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn stored_nick_name(app: &TestApp, user: &str) -> Option<String> {
    app.state
        .users
        .find_identity(MP, &app.sim.openid(MP, user))
        .await
        .unwrap()
        .unwrap()
        .nick_name
}

backend_tests! {
    async fn a_new_user_then_a_returning_user(app: TestApp) {
        let first = sign_in(&app, "alice").await;
        assert_eq!(first["openId"], app.sim.openid(MP, "alice"));
        assert_eq!(first["unionId"].as_str(), app.sim.unionid(MP, "alice").as_deref());
        assert_eq!(first["isNew"], true);
        assert!(first["sessionId"].as_str().unwrap().len() >= 43, "256-bit session id");
        assert!(!first["ticket"].as_str().unwrap().is_empty());

        let again = sign_in(&app, "alice").await;
        assert_eq!(again["isNew"], false);
        assert_eq!(again["openId"], first["openId"]);
        assert_ne!(again["sessionId"], first["sessionId"]);
        // WeChat replaced the session_key, so the first session is gone.
        let (status, body) = post(&app, "/api/wechat/ma/phone", json!({
            "sessionId": first["sessionId"], "code": app.sim.mint_phone_code(MP, "alice").unwrap(),
        })).await;
        assert_eq!(status, 400, "{body}");

        // The session_key is sealed at rest: not in the table in clear.
        let key = app.sim.session_key(MP, "alice").unwrap();
        let rows = entity::mini_session::Entity::find().all(&app.state.db).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert!(!rows[0].session_key_enc.contains(&key));
        assert_ne!(rows[0].id_hash, again["sessionId"].as_str().unwrap(), "only a hash of the id");
    }

    async fn a_session_from_before_current_keys_were_kept_lives_until_the_next_sign_in(app: TestApp) {
        // An upgrade finds sessions and no current keys: they stay usable, and the person's
        // next sign-in replaces them as any other.
        let phone = |session: &Value| post(&app, "/api/wechat/ma/phone", json!({
            "sessionId": session["sessionId"], "code": app.sim.mint_phone_code(MP, "alice").unwrap(),
        }));
        let before = sign_in(&app, "alice").await;
        entity::mini_current_key::Entity::delete_many().exec(&app.state.db).await.unwrap();
        let (status, body) = phone(&before).await;
        assert_eq!(status, 200, "{body}");
        let after = sign_in(&app, "alice").await;
        assert_eq!(phone(&before).await.0, 400);
        let (status, body) = phone(&after).await;
        assert_eq!(status, 200, "{body}");
    }

    async fn the_flow_grant_takes_the_session_ticket_once_and_for_its_identity_only(app: TestApp) {
        let auth = client(&app, "front", &["flow"]).await;
        let alice = sign_in(&app, "alice").await;
        let bob = sign_in(&app, "bob").await;
        let flow = |who: &Value, ticket: &Value| {
            [
                ("grant_type", "flow".to_string()),
                ("appId", MP.to_string()),
                ("openId", who["openId"].as_str().unwrap().to_string()),
                ("unionId", who["unionId"].as_str().unwrap().to_string()),
                ("ticket", ticket.as_str().unwrap().to_string()),
            ]
        };

        // Bob's ticket presented for Alice: refused (and spent).
        let (status, body) = token(&app, &auth, &flow(&alice, &bob["ticket"])).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

        let good = flow(&alice, &alice["ticket"]);
        let (status, body) = token(&app, &auth, &good).await;
        assert_eq!(status, 200, "{body}");
        let claims = verify_with_jwks(&app, body["access_token"].as_str().unwrap()).await;
        assert_eq!(claims["flow_user_id"], body["flow_user_id"]);

        // Replay.
        let (status, body) = token(&app, &auth, &good).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    }

    async fn saving_the_profile_decrypts_checks_and_stores_it(app: TestApp) {
        let auth = client(&app, "front", &["flow"]).await;
        let session = sign_in(&app, "alice").await;
        let sid = session["sessionId"].clone();
        assert_eq!(stored_nick_name(&app, "alice").await, None);
        let data = app.sim.mini_program_user_info(MP, "alice").unwrap();

        // Tampered ciphertext, a wrong signature, half a signature, an unknown session: 400, and
        // nothing stored.
        let mut tampered = data.encrypted_data.clone().into_bytes();
        tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
        let refusals = [
            json!({ "sessionId": sid, "encryptedData": String::from_utf8(tampered).unwrap(), "iv": data.iv }),
            json!({ "sessionId": sid, "encryptedData": data.encrypted_data, "iv": data.iv,
                    "rawData": data.raw_data, "signature": "0".repeat(40) }),
            json!({ "sessionId": sid, "encryptedData": data.encrypted_data, "iv": data.iv,
                    "rawData": data.raw_data }),
            json!({ "sessionId": "not-a-session", "encryptedData": data.encrypted_data, "iv": data.iv }),
            json!({ "sessionId": sid, "encryptedData": "%%%", "iv": data.iv }),
            json!({ "sessionId": sid }),
        ];
        for body in refusals {
            let (status, answer) = post(&app, "/api/wechat/ma/user", body.clone()).await;
            assert_eq!(status, 400, "{body} → {answer}");
            assert!(!answer["error_description"].as_str().unwrap_or_default().is_empty(), "{answer}");
        }
        assert_eq!(stored_nick_name(&app, "alice").await, None);

        // Data for another mini program (right key, foreign watermark) is refused.
        let key = SessionKey::new(app.sim.session_key(MP, "alice").unwrap());
        let foreign = json!({ "openId": session["openId"], "nickName": "Mallory",
                              "watermark": { "appid": "wxd0000000000000ff", "timestamp": 0 } });
        let iv = [7u8; 16];
        let forged = encrypt_mini_program_data(&key, &foreign.to_string(), &iv).unwrap();
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, iv);
        let (status, _) = post(&app, "/api/wechat/ma/user", json!({ "sessionId": sid, "encryptedData": forged, "iv": b64 })).await;
        assert_eq!(status, 400);
        // Right key and watermark, but another user's openId.
        let other = json!({ "openId": app.sim.openid(MP, "bob"), "nickName": "Mallory",
                            "watermark": { "appid": MP, "timestamp": 0 } });
        let forged = encrypt_mini_program_data(&key, &other.to_string(), &iv).unwrap();
        let (status, _) = post(&app, "/api/wechat/ma/user", json!({ "sessionId": sid, "encryptedData": forged, "iv": b64 })).await;
        assert_eq!(status, 400);
        assert_eq!(stored_nick_name(&app, "alice").await, None);

        // Those were five failed decryptions: the session is spent, even for genuine data.
        let (status, answer) = post(&app, "/api/wechat/ma/user", json!({
            "sessionId": sid, "encryptedData": data.encrypted_data, "iv": data.iv,
        })).await;
        assert_eq!(status, 400);
        assert!(answer["error_description"].as_str().unwrap().contains("wx.login"), "{answer}");
        assert_eq!(stored_nick_name(&app, "alice").await, None);

        // The real thing, signed, after a new wx.login.
        let session = sign_in(&app, "alice").await;
        let sid = session["sessionId"].clone();
        let data = app.sim.mini_program_user_info(MP, "alice").unwrap();
        let (status, user) = post(&app, "/api/wechat/ma/user", json!({
            "sessionId": sid, "encryptedData": data.encrypted_data, "iv": data.iv,
            "rawData": data.raw_data, "signature": data.signature,
        })).await;
        assert_eq!(status, 200, "{user}");
        assert_eq!(user["nickName"], "Alice 爱丽丝");
        assert_eq!(user["sex"], 2);
        assert_eq!(user["city"], "Guangzhou");
        assert_eq!(user["language"], "zh_CN");
        assert_eq!(user["openId"], session["openId"]);
        assert_eq!(user["unionId"], session["unionId"]);
        assert_eq!(stored_nick_name(&app, "alice").await.as_deref(), Some("Alice 爱丽丝"));

        // The account shows the profile: the next token carries the nick name.
        let ticket = sign_in(&app, "alice").await;
        let (status, body) = token(&app, &auth, &[
            ("grant_type", "flow"), ("appId", MP),
            ("openId", ticket["openId"].as_str().unwrap()),
            ("unionId", ticket["unionId"].as_str().unwrap()),
            ("ticket", ticket["ticket"].as_str().unwrap()),
        ]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["nick_name"], "Alice 爱丽丝");

        // An expired session is refused.
        app.clock.advance(wxauth::login::mini_program::SESSION_TTL + 1);
        let data = app.sim.mini_program_user_info(MP, "alice").unwrap();
        let (status, answer) = post(&app, "/api/wechat/ma/user", json!({
            "sessionId": ticket["sessionId"], "encryptedData": data.encrypted_data, "iv": data.iv,
        })).await;
        assert_eq!(status, 400);
        assert!(answer["error_description"].as_str().unwrap().contains("session"), "{answer}");
    }

    async fn the_phone_number_both_ways(app: TestApp) {
        let session = sign_in(&app, "alice").await;
        let sid = session["sessionId"].clone();

        // The current API: getPhoneNumber's code.
        let code = app.sim.mint_phone_code(MP, "alice").unwrap();
        let (status, phone) = post(&app, "/api/wechat/ma/phone", json!({ "sessionId": sid, "code": code })).await;
        assert_eq!(status, 200, "{phone}");
        assert_eq!(phone["verifiedAt"].as_i64().map(|at| (app.state.clock.now() - at).abs() <= 2), Some(true), "{phone}");
        assert_eq!(phone, json!({
            "phoneNumber": "13800000001", "purePhoneNumber": "13800000001", "countryCode": "86",
            "source": "code_api", "verifiedAt": phone["verifiedAt"], "reused": false,
        }));
        let identity = app.state.users.find_identity(MP, session["openId"].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!(identity.mobile.as_deref(), Some("13800000001"));
        let account = app.state.users.account(identity.account_id.unwrap()).await.unwrap().unwrap();
        assert_eq!(account.mobile.as_deref(), Some("13800000001"));
        // The code is single use.
        let (status, _) = post(&app, "/api/wechat/ma/phone", json!({ "sessionId": sid, "code": code })).await;
        assert_eq!(status, 400);

        // The older API: encrypted with the session_key.
        let bob = sign_in(&app, "bob").await;
        let data = app.sim.mini_program_phone_data(MP, "bob").unwrap();
        let (status, phone) = post(&app, "/api/wechat/ma/phone", json!({
            "sessionId": bob["sessionId"], "encryptedData": data.encrypted_data, "iv": data.iv,
        })).await;
        assert_eq!(status, 200, "{phone}");
        assert_eq!(phone["phoneNumber"], "13800000002");
        let identity = app.state.users.find_identity(MP, bob["openId"].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!(identity.mobile.as_deref(), Some("13800000002"));
        // Bob's encrypted phone under Alice's session does not decrypt.
        let (status, _) = post(&app, "/api/wechat/ma/phone", json!({
            "sessionId": sid, "encryptedData": data.encrypted_data, "iv": data.iv,
        })).await;
        assert_eq!(status, 400);

        // Neither proof, or both: 400 naming what to send.
        for body in [json!({ "sessionId": sid }), json!({ "sessionId": sid, "code": "x", "encryptedData": "y", "iv": "z" })] {
            let (status, answer) = post(&app, "/api/wechat/ma/phone", body).await;
            assert_eq!(status, 400);
            assert!(answer["error_description"].as_str().unwrap().contains("code"), "{answer}");
        }
    }

    async fn by_unionid_needs_a_client_and_tells_whether_the_user_exists(app: TestApp) {
        // A resource server (`client create --introspect`): other clients may not ask.
        app.state.clients.create(NewClient {
            client_id: "backend".into(),
            secret: Some(Secret::new(SECRET)),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["api".into()],
            introspect: true,
            ..NewClient::default()
        }).await.unwrap();
        let auth = basic("backend", SECRET);
        let union = app.sim.unionid(MP, "alice").unwrap();
        let url = app.url(&format!("/api/wechat/user/by-unionid?unionId={union}"));

        let anonymous = app.http.get(&url).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        assert!(anonymous.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
        let wrong = app.http.get(&url).header("authorization", basic("backend", "wrong-secret-but-long-enough")).send().await.unwrap();
        assert_eq!(wrong.status(), 401);

        let ask = || async {
            let r = app.http.get(&url).header("authorization", &auth).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        };
        assert_eq!(ask().await, json!({ "exists": false }));
        sign_in(&app, "alice").await;
        assert_eq!(ask().await, json!({ "exists": true }));

        let missing = app.http.get(app.url("/api/wechat/user/by-unionid")).header("authorization", &auth).send().await.unwrap();
        assert_eq!(missing.status(), 400);
    }

    async fn the_one_shot_mini_program_grant(app: TestApp) {
        let auth = client(&app, "mp", &["mini_program", "refresh_token"]).await;
        let code = app.sim.mint_js_code(MP, "alice").unwrap();
        let (status, body) = token(&app, &auth, &[("grant_type", "mini_program"), ("appId", MP), ("code", &code), ("scope", "flow")]).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["refresh_token"].is_string());
        let claims = verify_with_jwks(&app, body["access_token"].as_str().unwrap()).await;
        let identity = app.state.users.find_identity(MP, &app.sim.openid(MP, "alice")).await.unwrap().unwrap();
        assert_eq!(claims["sub"], identity.account_id.unwrap().to_string());
        assert_eq!(claims["scope"], "flow");

        // The session it opened works for the profile.
        let data = app.sim.mini_program_user_info(MP, "alice").unwrap();
        let (status, user) = post(&app, "/api/wechat/ma/user", json!({
            "sessionId": body["session_id"], "encryptedData": data.encrypted_data, "iv": data.iv,
        })).await;
        assert_eq!(status, 200, "{user}");

        // The code is single use; an unknown app and a non-mini-program app are invalid_grant.
        let (status, again) = token(&app, &auth, &[("grant_type", "mini_program"), ("appId", MP), ("code", &code)]).await;
        assert_eq!((status, again["error"].as_str()), (400, Some("invalid_grant")), "{again}");
        let fresh = app.sim.mint_js_code(MP, "bob").unwrap();
        for appid in ["wxd0000000000000ff", wxauth::simulator::demo::BASE_ACCOUNT_APPID, "nonsense"] {
            let (status, body) = token(&app, &auth, &[("grant_type", "mini_program"), ("appId", appid), ("code", &fresh)]).await;
            assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{appid}: {body}");
        }
        // Missing parameters.
        let (status, body) = token(&app, &auth, &[("grant_type", "mini_program"), ("appId", MP)]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));

        // A client without the grant.
        let other = client(&app, "flow-only", &["flow"]).await;
        let (status, body) = token(&app, &other, &[("grant_type", "mini_program"), ("appId", MP), ("code", &fresh)]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));

        // The grant is advertised.
        let meta: Value = app.http.get(app.url("/.well-known/oauth-authorization-server")).send().await.unwrap().json().await.unwrap();
        assert!(meta["grant_types_supported"].as_array().unwrap().iter().any(|g| g == "mini_program"));
    }

    async fn an_app_secret_reset_costs_no_login_on_any_instance(app: TestApp) {
        let second = TestApp::spawn_with(app.backend, Options { share: Some(app.sharing()), ..Default::default() })
            .await
            .unwrap();
        let exchanges = || app.sim.calls("/sns/jscode2session");
        let reset_in_wechat = |secret: &str| {
            let mut mp = app.sim.apps().into_iter().find(|a| a.appid == MP).unwrap();
            mp.secret = secret.to_owned();
            app.sim.register_app(mp);
        };
        // A login on each instance: both now hold the app's secret.
        sign_in(&app, "alice").await;
        sign_in(&second, "alice").await;
        assert_eq!(exchanges(), 2);

        // The secret is reset in WeChat's console and stored through the second instance. The
        // first still holds the old one: WeChat refuses it once, the first reads the stored one
        // and exchanges the same code again. The user notices nothing.
        reset_in_wechat("the-reset-mini-program-secret-01");
        second.state.apps.update_secrets(MP, Some(&Secret::new("the-reset-mini-program-secret-01")), None, None).await.unwrap();
        let body = sign_in(&app, "bob").await;
        assert_eq!(body["openId"], app.sim.openid(MP, "bob"));
        assert_eq!(exchanges(), 4, "one refused exchange, then one with the stored secret");
        // The second instance forgot its copy when it stored the new secret.
        sign_in(&second, "bob").await;
        sign_in(&app, "alice").await;
        assert_eq!(exchanges(), 6);

        // Reset in WeChat but not yet in wxauth: each login fails after one exchange (the stored
        // secret is the one refused, so there is nothing to try again with).
        reset_in_wechat("the-reset-mini-program-secret-02");
        for expected in [7, 8] {
            let code = app.sim.mint_js_code(MP, "alice").unwrap();
            let (status, body) = post(&app, "/api/wechat/ma/session", json!({ "appId": MP, "code": code })).await;
            assert_eq!((status, exchanges()), (503, expected), "{body}");
        }

        // Stored through this instance: used at once, nothing refused.
        app.state.apps.update_secrets(MP, Some(&Secret::new("the-reset-mini-program-secret-02")), None, None).await.unwrap();
        sign_in(&app, "alice").await;
        assert_eq!(exchanges(), 9);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_busy_is_retried_and_wechat_down_is_503() {
    let app = TestApp::spawn(crate::harness::Backend::Sqlite)
        .await
        .unwrap();
    let auth = client(&app, "mp", &["mini_program"]).await;

    // Busy twice, then fine: the caller never notices.
    let code = app.sim.mint_js_code(MP, "alice").unwrap();
    app.sim.fail_busy(2);
    let (status, body) = post(
        &app,
        "/api/wechat/ma/session",
        json!({ "appId": MP, "code": code }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.sim.calls("/sns/jscode2session"), 3);

    // Down (HTTP 503 on every call): 503 temporarily_unavailable, nothing stored.
    app.sim.fail_http(1000);
    let code = app.sim.mint_js_code(MP, "bob").unwrap();
    let (status, body) = post(
        &app,
        "/api/wechat/ma/session",
        json!({ "appId": MP, "code": code }),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    let (status, body) = token(
        &app,
        &auth,
        &[
            ("grant_type", "mini_program"),
            ("appId", MP),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "{body}"
    );
    assert!(
        app.state
            .users
            .find_identity(MP, &app.sim.openid(MP, "bob"))
            .await
            .unwrap()
            .is_none()
    );

    // Bad JSON and a bad code: 400 with a message.
    app.sim.clear_faults();
    let response = app
        .http
        .post(app.url("/api/wechat/ma/session"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let (status, body) = post(
        &app,
        "/api/wechat/ma/session",
        json!({ "appId": MP, "code": "made-up" }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error_description"].as_str().unwrap().contains("code"),
        "{body}"
    );
    let (status, _) = post(
        &app,
        "/api/wechat/ma/session",
        json!({ "appId": "wxd0000000000000ff", "code": code }),
    )
    .await;
    assert_eq!(status, 400);
}

/// The documented JavaScript helper (static/wxauth-miniprogram.js), run by Node with a `wx`
/// that talks to the simulator, signs in, saves the profile and both kinds of phone number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_helper_signs_in_end_to_end() {
    let has_node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_node {
        assert!(
            std::env::var("WXAUTH_TEST_REQUIRE_NODE").as_deref() != Ok("1"),
            "WXAUTH_TEST_REQUIRE_NODE=1 but node is not installed"
        );
        eprintln!("skipping the JavaScript helper test: node is not installed");
        return;
    }
    let app = TestApp::spawn(crate::harness::Backend::Sqlite)
        .await
        .unwrap();
    client(&app, "mp-page", &["flow", "mini_program"]).await;
    let avatar_file = std::env::temp_dir().join(format!(
        "wxauth-avatar-{}.png",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(
        &avatar_file,
        crate::profile::picture(200, 300, image::ImageFormat::Png),
    )
    .unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/js/miniprogram_helper.cjs"
    );
    let output = tokio::process::Command::new("node")
        .args([
            script,
            &app.base,
            &app.sim_base,
            MP,
            "mp-page",
            SECRET,
            "alice",
            avatar_file.to_str().unwrap(),
        ])
        .output()
        .await
        .expect("node is installed");
    let _ = std::fs::remove_file(&avatar_file);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_no_session_key(&app, &stdout);
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    let claims = verify_with_jwks(&app, seen["tokens"]["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["flow_user_id"], seen["tokens"]["flow_user_id"]);
    assert_eq!(seen["firstUser"]["openId"], app.sim.openid(MP, "alice"));
    assert_eq!(seen["firstUser"]["isNew"], true);
    assert_eq!(seen["profile"]["nickName"], "Alice 爱丽丝");
    assert_eq!(seen["phone"]["phoneNumber"], "13800000001");
    assert_eq!(seen["oldPhone"]["phoneNumber"], "13800000001");
    assert_eq!(
        seen["oneShot"]["flow_user_id"],
        seen["tokens"]["flow_user_id"]
    );
    assert_eq!(
        seen["refused"],
        json!({ "status": 400, "error": "invalid_grant" })
    );
    // The profile pickers: a nickname checked by WeChat and an uploaded avatar, served by us.
    assert_eq!(seen["chosen"]["nickName"], "小爱 Ai");
    assert_eq!(seen["chosen"]["nickNameStatus"], "passed");
    let avatar = seen["chosen"]["avatarUrl"].as_str().unwrap();
    let served = app.http.get(avatar).send().await.unwrap();
    assert_eq!(served.status(), 200);
    let decoded = image::load_from_memory(&served.bytes().await.unwrap()).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (200, 200));
    assert_eq!(seen["nicknameOnly"]["nickName"], "小爱");
    assert_eq!(seen["nicknameOnly"]["avatarUrl"], avatar);
    // The web-view ticket redeems once, for this client.
    let ticket = seen["webViewTicket"].as_str().unwrap();
    let auth = basic("mp-page", SECRET);
    let (status, tokens) = token(&app, &auth, &[("grant_type", "flow"), ("ticket", ticket)]).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["flow_user_id"], seen["tokens"]["flow_user_id"]);
}
