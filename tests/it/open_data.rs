//! Mini Program open data (`encryptedData` a page relays to `/api/wechat/ma/user` and
//! `/ma/phone`) attacked the way the review did: AES-CBC without a MAC, so an answer that tells a
//! padding failure from a parse failure is a padding oracle, and with it an attacker encrypts
//! anything under a session_key they never see. Proven here:
//! - every failure gets byte-for-byte the same answer;
//! - five failed decryptions end the session, even under a burst of parallel requests;
//! - a unionId (or openId) in relayed data is never adopted: the forged-unionId takeover fails
//!   end to end, and the attacker's next `wx.login` is still their own account;
//! - a padding-oracle probe for a forged phone number dies at the cap, and the forgery it was
//!   after is refused;
//! - a stored phone number says where it came from.
//!
//! Where a test needs what the oracle would have produced, it encrypts with the session_key the
//! simulator knows: the stand-in for the attacker's 10⁴ oracle queries.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use wxauth::app_registry::{AppKind, NewApp};
use wxauth::clock::Clock;
use wxauth::login::mini_program::DECRYPT_FAILURE_CAP;
use wxauth::secret::Secret;
use wxauth::simulator::demo::MINI_PROGRAM_APPID as MP;
use wxauth::simulator::{SimApp, SimAppKind};
use wxauth::users::PhoneSource;
use wxauth::wechat::crypto::{CryptoError, decrypt_mini_program_data, encrypt_mini_program_data};
use wxauth::wechat::{AppId, SessionKey};

use crate::backend_tests;
use crate::harness::{Options, TestApp};
use crate::mini_program::{assert_no_session_key, client, token};

const USER: &str = "/api/wechat/ma/user";
const PHONE: &str = "/api/wechat/ma/phone";

/// A Mini Program bound to no Open Platform: `jscode2session` gives no unionid.
const UNBOUND: &str = "wxd0000000000000b1";
const UNBOUND_SECRET: &str = "d00000000000000000000000000000b1";

async fn register_unbound_mini_program(app: &TestApp) {
    app.sim.register_app(SimApp {
        appid: UNBOUND.into(),
        secret: UNBOUND_SECRET.into(),
        kind: SimAppKind::MiniProgram,
        open_platform: None,
        component_appid: None,
        component: None,
    });
    app.state
        .apps
        .add(NewApp {
            appid: UNBOUND.into(),
            kind: AppKind::MiniProgram,
            secret: Some(Secret::new(UNBOUND_SECRET)),
            component_appid: None,
            is_base: false,
            token: None,
            aes_key: None,
        })
        .await
        .unwrap();
}

/// POST JSON; the status and the body exactly as sent (never carrying a session_key).
async fn post_raw(app: &TestApp, path: &str, body: &Value) -> (u16, String) {
    let response = app
        .http
        .post(app.url(path))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_no_session_key(app, &text);
    (status, text)
}

/// `wx.login` for `user` in `appid`, then `/api/wechat/ma/session`.
async fn session_on(app: &TestApp, appid: &str, user: &str) -> Value {
    let code = app.sim.mint_js_code(appid, user).unwrap();
    let (status, body) = post_raw(
        app,
        "/api/wechat/ma/session",
        &json!({ "appId": appid, "code": code }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

/// `plain` encrypted under `user`'s current session_key in `appid`: what a padding oracle
/// would let an attacker produce. Returns (encryptedData, iv).
fn forge(app: &TestApp, appid: &str, user: &str, plain: &str) -> (String, String) {
    let key = SessionKey::new(app.sim.session_key(appid, user).unwrap());
    let iv = random_bytes::<16>();
    let data = encrypt_mini_program_data(&key, plain, &iv).unwrap();
    (data, STANDARD.encode(iv))
}

fn relayed(session: &Value, (encrypted_data, iv): (String, String)) -> Value {
    json!({ "sessionId": session["sessionId"], "encryptedData": encrypted_data, "iv": iv })
}

/// Random ciphertext: fails at the padding (or, 1 time in ~256, at the JSON).
fn garbage(session: &Value) -> Value {
    json!({
        "sessionId": session["sessionId"],
        "encryptedData": STANDARD.encode(random_bytes::<32>()),
        "iv": STANDARD.encode(random_bytes::<16>()),
    })
}

/// The answer every failed decryption gets, and the one a spent or unknown session gets.
async fn answers(app: &TestApp) -> ((u16, String), (u16, String)) {
    let throwaway = session_on(app, MP, "bob").await;
    let failure = post_raw(app, USER, &garbage(&throwaway)).await;
    let unknown = post_raw(
        app,
        USER,
        &json!({ "sessionId": "no-such-session", "encryptedData": "AAAA", "iv": "AAAA" }),
    )
    .await;
    assert_eq!(failure.0, 400, "{}", failure.1);
    assert_eq!(unknown.0, 400, "{}", unknown.1);
    assert_ne!(failure.1, unknown.1);
    (failure, unknown)
}

async fn audit_count(app: &TestApp, kind: &str) -> u64 {
    entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::Kind.eq(kind))
        .count(&app.state.db)
        .await
        .unwrap()
}

async fn sessions_of(app: &TestApp, appid: &str, user: &str) -> u64 {
    entity::mini_session::Entity::find()
        .filter(entity::mini_session::Column::Appid.eq(appid))
        .filter(entity::mini_session::Column::OpenId.eq(app.sim.openid(appid, user)))
        .count(&app.state.db)
        .await
        .unwrap()
}

async fn identity(app: &TestApp, appid: &str, user: &str) -> wxauth::users::WeChatIdentity {
    app.state
        .users
        .find_identity(appid, &app.sim.openid(appid, user))
        .await
        .unwrap()
        .unwrap()
}

/// Open the database pool's connections before a burst. On this shared 2-core machine a new
/// PostgreSQL connection (TLS included) can take long enough that a cold pool makes a 50-way
/// burst wait past the 5 s acquire timeout, whatever the endpoint; the burst is about the cap,
/// not about connecting.
async fn warm_pool(app: &TestApp, parallel: usize) {
    use sea_orm::ConnectionTrait;
    for _ in 0..10 {
        let opened = futures::future::join_all(
            (0..parallel).map(|_| app.state.db.execute_unprepared("SELECT 1")),
        )
        .await;
        if opened.iter().all(Result::is_ok) {
            return;
        }
    }
}

/// `body` at `path` must get exactly the answer every failure gets.
async fn expect_failure(
    app: &TestApp,
    failure: &(u16, String),
    kind: &str,
    path: &str,
    body: Value,
) {
    let answer = post_raw(app, path, &body).await;
    assert_eq!(&answer, failure, "{kind}: a different answer is an oracle");
}

fn watermark(appid: &str) -> Value {
    json!({ "appid": appid, "timestamp": 1_700_000_000 })
}

backend_tests! {
    async fn every_failure_of_relayed_data_gets_one_identical_answer(app: TestApp) {
        register_unbound_mini_program(&app).await;
        let (failure, _) = answers(&app).await;
        let alice_open_id = app.sim.openid(MP, "alice");
        let alice_union_id = app.sim.unionid(MP, "alice").unwrap();
        let bob_union_id = app.sim.unionid(MP, "bob").unwrap();
        let profile = |extra: Value| {
            let mut data = json!({ "openId": alice_open_id, "unionId": alice_union_id,
                                   "nickName": "Mallory", "watermark": watermark(MP) });
            for (k, v) in extra.as_object().unwrap() {
                if v.is_null() { data.as_object_mut().unwrap().remove(k); } else { data[k] = v.clone(); }
            }
            data.to_string()
        };

        // Each kind on a fresh session (a new wx.login ends the previous one), so that the cap
        // plays no part.
        let s = session_on(&app, MP, "alice").await;
        expect_failure(&app, &failure, "bad padding", USER, garbage(&s)).await;
        let s = session_on(&app, MP, "alice").await;
        expect_failure(&app, &failure, "not JSON", USER, relayed(&s, forge(&app, MP, "alice", "this is not JSON"))).await;
        let s = session_on(&app, MP, "alice").await;
        expect_failure(&app, &failure, "no watermark", USER, relayed(&s, forge(&app, MP, "alice", &profile(json!({ "watermark": null }))))).await;
        let s = session_on(&app, MP, "alice").await;
        expect_failure(&app, &failure, "another app's watermark", USER, relayed(&s, forge(&app, MP, "alice", &profile(json!({ "watermark": watermark("wxd0000000000000ff") }))))).await;
        let s = session_on(&app, MP, "alice").await;
        expect_failure(&app, &failure, "another user's openId", USER, relayed(&s, forge(&app, MP, "alice", &profile(json!({ "openId": app.sim.openid(MP, "bob") }))))).await;
        let s = session_on(&app, MP, "alice").await;
        expect_failure(&app, &failure, "another user's unionId", USER, relayed(&s, forge(&app, MP, "alice", &profile(json!({ "unionId": bob_union_id }))))).await;
        let s = session_on(&app, UNBOUND, "alice").await;
        let unbound = json!({ "openId": app.sim.openid(UNBOUND, "alice"), "unionId": alice_union_id,
                              "watermark": watermark(UNBOUND) }).to_string();
        expect_failure(&app, &failure, "a unionId for a session without one", USER, relayed(&s, forge(&app, UNBOUND, "alice", &unbound))).await;
        let s = session_on(&app, MP, "alice").await;
        let genuine = app.sim.mini_program_user_info(MP, "alice").unwrap();
        expect_failure(&app, &failure, "a wrong signature", USER, json!({ "sessionId": s["sessionId"], "encryptedData": genuine.encrypted_data,
            "iv": genuine.iv, "rawData": genuine.raw_data, "signature": "0".repeat(40) })).await;
        let s = session_on(&app, MP, "alice").await;
        expect_failure(&app, &failure, "not base64", USER, json!({ "sessionId": s["sessionId"], "encryptedData": "%%%", "iv": "%%%" })).await;
        let s = session_on(&app, MP, "alice").await;
        expect_failure(&app, &failure, "a short iv", USER, json!({ "sessionId": s["sessionId"], "encryptedData": STANDARD.encode([0u8; 32]), "iv": "AAAA" })).await;
        let s = session_on(&app, MP, "alice").await;
        expect_failure(&app, &failure, "phone: bad padding", PHONE, garbage(&s)).await;
        let s = session_on(&app, MP, "alice").await;
        let no_number = json!({ "countryCode": "86", "watermark": watermark(MP) }).to_string();
        expect_failure(&app, &failure, "phone: no phone number", PHONE, relayed(&s, forge(&app, MP, "alice", &no_number))).await;
        let s = session_on(&app, MP, "alice").await;
        let foreign = json!({ "phoneNumber": "13999999999", "purePhoneNumber": "13999999999", "countryCode": "86",
                              "watermark": watermark("wxd0000000000000ff") }).to_string();
        expect_failure(&app, &failure, "phone: another app's watermark", PHONE, relayed(&s, forge(&app, MP, "alice", &foreign))).await;

        // Nothing was stored by any of them.
        assert_eq!(identity(&app, MP, "alice").await.nick_name, None);
        assert_eq!(identity(&app, MP, "alice").await.mobile, None);
        assert_eq!(identity(&app, UNBOUND, "alice").await.union_id, None);
    }

    async fn five_failed_decryptions_end_the_session(app: TestApp) {
        let (failure, unknown) = answers(&app).await;
        let session = session_on(&app, MP, "alice").await;
        let account = identity(&app, MP, "alice").await.account_id.unwrap();

        // Four failures, then genuine data: accepted (a success is not a failure).
        for _ in 1..DECRYPT_FAILURE_CAP {
            assert_eq!(post_raw(&app, USER, &garbage(&session)).await, failure);
        }
        let genuine = app.sim.mini_program_user_info(MP, "alice").unwrap();
        let genuine = json!({ "sessionId": session["sessionId"], "encryptedData": genuine.encrypted_data, "iv": genuine.iv });
        let (status, body) = post_raw(&app, USER, &genuine).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(audit_count(&app, "decrypt_cap_reached").await, 0);

        // The fifth failure ends the session: it is deleted, and nothing works with it any more,
        // not genuine data and not the phone code API.
        assert_eq!(post_raw(&app, USER, &garbage(&session)).await, failure);
        assert_eq!(sessions_of(&app, MP, "alice").await, 0);
        assert_eq!(post_raw(&app, USER, &genuine).await, unknown);
        let code = app.sim.mint_phone_code(MP, "alice").unwrap();
        let (status, _) = post_raw(&app, PHONE, &json!({ "sessionId": session["sessionId"], "code": code })).await;
        assert_eq!(status, 400);
        assert!(identity(&app, MP, "alice").await.mobile.is_none());

        // Audited once, with the account and nothing secret.
        let events = entity::audit_event::Entity::find()
            .filter(entity::audit_event::Column::Kind.eq("decrypt_cap_reached"))
            .all(&app.state.db).await.unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].outcome, "refused");
        assert_eq!(events[0].account_id, Some(account));
        assert_eq!(events[0].ip.as_deref(), Some("127.0.0.1"));
        let seen = format!("{events:?}");
        assert!(!seen.contains(session["sessionId"].as_str().unwrap()), "{seen}");
        assert!(!seen.contains(&app.sim.session_key(MP, "alice").unwrap()), "{seen}");

        // wx.login again: a new session that works.
        let again = session_on(&app, MP, "alice").await;
        let genuine = app.sim.mini_program_user_info(MP, "alice").unwrap();
        let (status, body) = post_raw(&app, USER, &json!({ "sessionId": again["sessionId"],
            "encryptedData": genuine.encrypted_data, "iv": genuine.iv })).await;
        assert_eq!(status, 200, "{body}");
    }

    async fn a_forged_unionid_cannot_take_over_an_account(app: TestApp) {
        // The victim: Alice, with an account under her unionid.
        let victim = session_on(&app, MP, "alice").await;
        let victim_union_id = victim["unionId"].as_str().unwrap().to_owned();
        let victim_account = identity(&app, MP, "alice").await.account_id.unwrap();

        // The attacker: Mallory (the simulator's bob) on a Mini Program with no Open Platform
        // binding, holding only their own sessionId.
        register_unbound_mini_program(&app).await;
        let mallory = session_on(&app, UNBOUND, "bob").await;
        assert_eq!(mallory["unionId"], Value::Null);
        let mallory_open_id = mallory["openId"].as_str().unwrap().to_owned();
        let (failure, _) = answers(&app).await;

        // What the oracle would have produced: the victim's unionId, under Mallory's key.
        let forged = json!({ "openId": mallory_open_id, "unionId": victim_union_id,
                             "nickName": "Mallory", "watermark": watermark(UNBOUND) }).to_string();
        assert_eq!(post_raw(&app, USER, &relayed(&mallory, forge(&app, UNBOUND, "bob", &forged))).await, failure);
        let only_union = json!({ "unionId": victim_union_id, "watermark": watermark(UNBOUND) }).to_string();
        assert_eq!(post_raw(&app, USER, &relayed(&mallory, forge(&app, UNBOUND, "bob", &only_union))).await, failure);

        // Nothing was adopted.
        let stored = identity(&app, UNBOUND, "bob").await;
        assert_eq!(stored.union_id, None);
        assert_ne!(stored.account_id, Some(victim_account));
        assert_eq!(stored.nick_name, None);

        // Mallory's next wx.login is Mallory's own account, and so are the tokens.
        let auth = client(&app, "front", &["flow"]).await;
        let next = session_on(&app, UNBOUND, "bob").await;
        assert_eq!(next["unionId"], Value::Null);
        let (status, tokens) = token(&app, &auth, &[
            ("grant_type", "flow"), ("appId", UNBOUND),
            ("openId", next["openId"].as_str().unwrap()),
            ("ticket", next["ticket"].as_str().unwrap()),
        ]).await;
        assert_eq!(status, 200, "{tokens}");
        assert_ne!(tokens["flow_user_id"], victim_account.to_string());
        assert_eq!(tokens["flow_user_id"], stored.account_id.unwrap().to_string());
        assert_ne!(tokens["account"], victim_union_id.as_str());
        // And the victim's unionId with Mallory's openId is no identity at all.
        let (status, refused) = token(&app, &auth, &[
            ("grant_type", "flow"), ("appId", UNBOUND), ("openId", mallory_open_id.as_str()),
            ("unionId", victim_union_id.as_str()), ("ticket", next["ticket"].as_str().unwrap()),
        ]).await;
        assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_grant")));
    }

    async fn a_stored_phone_number_says_where_it_came_from(app: TestApp) {
        // The clock follows the wall clock: a request may cross a second.
        let within = |at: Option<i64>, since: i64| at.is_some_and(|at| (since..=app.clock.now()).contains(&at));
        // The code API: WeChat's server answered.
        let alice = session_on(&app, MP, "alice").await;
        let since = app.clock.now();
        let code = app.sim.mint_phone_code(MP, "alice").unwrap();
        let (status, body) = post_raw(&app, PHONE, &json!({ "sessionId": alice["sessionId"], "code": code })).await;
        assert_eq!(status, 200, "{body}");
        let stored = identity(&app, MP, "alice").await;
        assert_eq!(stored.mobile.as_deref(), Some("13800000001"));
        assert_eq!(stored.mobile_source, Some(PhoneSource::CodeApi));
        assert!(within(stored.mobile_verified_at, since), "{:?}", stored.mobile_verified_at);
        let account = app.state.users.account(stored.account_id.unwrap()).await.unwrap().unwrap();
        assert_eq!(account.mobile_source, Some(PhoneSource::CodeApi));
        assert!(within(account.mobile_verified_at, since), "{:?}", account.mobile_verified_at);

        // The older encrypted form, later: recorded as such.
        app.clock.advance(60);
        let bob = session_on(&app, MP, "bob").await;
        let data = app.sim.mini_program_phone_data(MP, "bob").unwrap();
        let since = app.clock.now();
        let (status, body) = post_raw(&app, PHONE, &json!({ "sessionId": bob["sessionId"],
            "encryptedData": data.encrypted_data, "iv": data.iv })).await;
        assert_eq!(status, 200, "{body}");
        let stored = identity(&app, MP, "bob").await;
        assert_eq!(stored.mobile.as_deref(), Some("13800000002"));
        assert_eq!(stored.mobile_source, Some(PhoneSource::EncryptedData));
        assert!(within(stored.mobile_verified_at, since), "{:?}", stored.mobile_verified_at);
        let account = app.state.users.account(stored.account_id.unwrap()).await.unwrap().unwrap();
        assert_eq!(account.mobile_source, Some(PhoneSource::EncryptedData));
    }
}

// These flood one session from one address: the per-address limits on the open-data endpoints
// (WXAUTH_LIMIT_MA_USER / _PHONE, proven in abuse.rs) are off, so that what stops the flood here
// is the per-session decryption cap alone.
fn without_address_limits() -> Options {
    Options {
        env: vec![
            ("WXAUTH_LIMIT_MA_USER".into(), "off".into()),
            ("WXAUTH_LIMIT_MA_PHONE".into(), "off".into()),
        ],
        ..Options::default()
    }
}

backend_tests! {
    options: without_address_limits();
    async fn a_burst_of_bad_requests_cannot_fail_more_than_five_decryptions(app: TestApp) {
        const PARALLEL: usize = 50;
        const ROUNDS: u64 = 5;
        let (failure, unknown) = answers(&app).await;
        warm_pool(&app, PARALLEL).await;
        let app = Arc::new(app);
        for round in 1..=ROUNDS {
            let session = session_on(&app, MP, "alice").await;
            let barrier = Arc::new(Barrier::new(PARALLEL));
            let mut tasks = Vec::new();
            for _ in 0..PARALLEL {
                let (app, barrier, body) = (app.clone(), barrier.clone(), garbage(&session));
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    post_raw(&app, USER, &body).await
                }));
            }
            let mut failed = 0;
            for task in tasks {
                let answer = task.await.unwrap();
                if answer == failure {
                    failed += 1;
                } else {
                    assert_eq!(answer, unknown, "round {round}");
                }
            }
            assert_eq!(failed, DECRYPT_FAILURE_CAP, "round {round}: decryptions that failed");
            assert_eq!(sessions_of(&app, MP, "alice").await, 0, "round {round}");
            assert_eq!(audit_count(&app, "decrypt_cap_reached").await, round, "round {round}");
        }
    }

    async fn a_padding_oracle_probe_for_a_forged_phone_number_dies_at_the_cap(app: TestApp) {
        let (failure, unknown) = answers(&app).await;
        let mallory = session_on(&app, MP, "bob").await;
        let key = SessionKey::new(app.sim.session_key(MP, "bob").unwrap());
        let appid = AppId::parse(MP).unwrap();

        // The first step of a CBC padding-oracle attack: one target block, and an IV whose last
        // byte runs through all 256 values until the server says "padding fine". Order the
        // guesses so that a guess with valid padding comes fifth, before the cap.
        let block = random_bytes::<16>();
        let guess = |g: u8| {
            let mut iv = [0u8; 16];
            iv[15] = g;
            (STANDARD.encode(block), STANDARD.encode(iv))
        };
        let (valid, invalid): (Vec<u8>, Vec<u8>) = (0..=255u8).partition(|g| {
            let (data, iv) = guess(*g);
            decrypt_mini_program_data(&key, &data, &iv, &appid) != Err(CryptoError::Padding)
        });
        assert!(!valid.is_empty() && invalid.len() >= 4);
        let mut probe: Vec<u8> = invalid[..4].to_vec();
        probe.push(valid[0]);
        probe.extend(invalid[4..].iter().chain(&valid[1..]));

        let mut answers_seen = Vec::new();
        for g in probe {
            answers_seen.push(post_raw(&app, PHONE, &relayed(&mallory, guess(g))).await);
        }
        let cap = DECRYPT_FAILURE_CAP as usize;
        assert!(answers_seen[..cap].iter().all(|a| *a == failure), "valid padding answered differently");
        assert!(answers_seen[cap..].iter().all(|a| *a == unknown), "the probe outlived the cap");
        assert_eq!(audit_count(&app, "decrypt_cap_reached").await, 1);

        // The forgery the probe was after (a phone number under Mallory's key) is refused:
        // the session is gone ...
        let forged = json!({ "phoneNumber": "13999999999", "purePhoneNumber": "13999999999",
                             "countryCode": "86", "watermark": watermark(MP) }).to_string();
        let forged = forge(&app, MP, "bob", &forged);
        assert_eq!(post_raw(&app, PHONE, &relayed(&mallory, forged.clone())).await, unknown);
        // ... and a new wx.login brings a new session_key, under which it does not decrypt.
        let again = session_on(&app, MP, "bob").await;
        assert_ne!(app.sim.session_key(MP, "bob").unwrap(), key.expose());
        assert_eq!(post_raw(&app, PHONE, &relayed(&again, forged)).await, failure);
        assert_eq!(identity(&app, MP, "bob").await.mobile, None);
        let account = identity(&app, MP, "bob").await.account_id.unwrap();
        assert_eq!(app.state.users.account(account).await.unwrap().unwrap().mobile, None);
    }
}
