//! Official Account follower status (issue 17 §3), over HTTP against the simulator: the H5 base
//! hop asks `cgi-bin/user/info` and stores what it says (and a WeChat that cannot answer does not
//! stop the sign-in); the message URL `/api/wechat/mp/{appId}/events` answers WeChat's `echostr`
//! check, takes `subscribe` / `unsubscribe` / `SCAN` pushes in plain and safe mode and through a
//! component, applies each once however often WeChat retries (also at the same instant), and
//! refuses forged, tampered and stale pushes; the admin API shows the status.

use std::sync::Arc;

use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::Value;
use tokio::sync::Barrier;
use wxauth::app_registry::{AppKind, NewApp};
use wxauth::audit::{AuditFilter, AuditKind};
use wxauth::clock::Clock;
use wxauth::secret::Secret;
use wxauth::simulator::followers::SimQrScene;
use wxauth::simulator::{SimApp, SimAppKind, demo};
use wxauth::wechat::AppId;
use wxauth::wechat::crypto::{MessageCrypt, url_signature};

use crate::backend_tests;
use crate::h5::{Browser, NEXT, start, walk};
use crate::harness::TestApp;

/// An official account with its own message URL (no component).
const DIRECT: &str = "wxd0000000000000f1";
const DIRECT_SECRET: &str = "d00000000000000000000000000000f1";
const MESSAGE_TOKEN: &str = "followers-message-token";
const AES_KEY: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
const ROUNDS: usize = 5;
const AT_ONCE: usize = 8;

fn events_path(appid: &str) -> String {
    format!("/api/wechat/mp/{appid}/events")
}

/// Register the direct account on both sides; `safe`: with an EncodingAESKey, and WeChat set
/// to safe mode.
async fn direct_account(app: &TestApp, safe: bool) {
    app.sim.register_app(SimApp {
        appid: DIRECT.into(),
        secret: DIRECT_SECRET.into(),
        kind: SimAppKind::OfficialAccount,
        open_platform: Some(demo::DEMO_OPEN_PLATFORM.into()),
        component_appid: None,
        component: None,
    });
    app.state
        .apps
        .add(NewApp {
            appid: DIRECT.into(),
            kind: AppKind::OfficialAccount,
            secret: Some(Secret::new(DIRECT_SECRET)),
            component_appid: None,
            is_base: false,
            token: Some(Secret::new(MESSAGE_TOKEN)),
            aes_key: safe.then(|| Secret::new(AES_KEY)),
        })
        .await
        .unwrap();
    app.sim
        .set_message_endpoint(
            DIRECT,
            &app.url(&events_path(DIRECT)),
            Some(MESSAGE_TOKEN),
            safe.then_some(AES_KEY),
        )
        .unwrap();
}

/// The stored identity row of `user` in `appid`.
async fn row(app: &TestApp, appid: &str, user: &str) -> Option<entity::wx_user::Model> {
    entity::wx_user::Entity::find()
        .filter(entity::wx_user::Column::Appid.eq(appid))
        .filter(entity::wx_user::Column::OpenId.eq(app.sim.openid(appid, user)))
        .one(&app.state.db)
        .await
        .unwrap()
}

async fn audited(app: &TestApp, kind: AuditKind) -> usize {
    app.state
        .audit
        .list(&AuditFilter {
            kind: Some(kind),
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .len()
}

/// The base account authorized to the demo component (so wxauth holds its authorizer token).
async fn authorize_base(app: &TestApp) {
    app.push_component_ticket().await;
    let code = app
        .sim
        .authorize_component(demo::COMPONENT_APPID, demo::BASE_ACCOUNT_APPID)
        .unwrap();
    let component = AppId::parse(demo::COMPONENT_APPID).unwrap();
    app.state
        .wechat
        .query_auth(&component, &code)
        .await
        .unwrap();
}

/// A push as WeChat would send it in plain mode, signed with `token` at `timestamp`.
async fn plain_push(
    app: &TestApp,
    appid: &str,
    token: &str,
    timestamp: i64,
    body: &str,
) -> (u16, String) {
    let timestamp = timestamp.to_string();
    let response = app
        .http
        .post(app.url(&events_path(appid)))
        .query(&[
            (
                "signature",
                url_signature(token, &timestamp, "nonce1").as_str(),
            ),
            ("timestamp", timestamp.as_str()),
            ("nonce", "nonce1"),
        ])
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn event_xml(open_id: &str, create_time: i64, event: &str, key: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{open_id}]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{key}]]></EventKey></xml>"
    )
}

/// A safe-mode push of `inner` to the direct account: the query and the body.
fn safe_push(inner: &str, timestamp: i64) -> (Vec<(String, String)>, String) {
    let crypt = MessageCrypt::new(MESSAGE_TOKEN, AES_KEY, DIRECT).unwrap();
    let encrypt = crypt.encrypt(inner);
    let timestamp = timestamp.to_string();
    let query = vec![
        (
            "signature".into(),
            url_signature(MESSAGE_TOKEN, &timestamp, "n2"),
        ),
        ("timestamp".into(), timestamp.clone()),
        ("nonce".into(), "n2".into()),
        ("encrypt_type".into(), "aes".into()),
        (
            "msg_signature".into(),
            crypt.signature(&timestamp, "n2", &encrypt),
        ),
    ];
    (
        query,
        format!(
            "<xml><ToUserName>gh_test</ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        ),
    )
}

backend_tests! {
    async fn the_base_hop_records_whether_the_user_follows(app: TestApp) {
        authorize_base(&app).await;
        app.sim.set_follower(demo::BASE_ACCOUNT_APPID, "alice", Some(SimQrScene::Id(12345)));

        let walked = walk(&app, demo::ENTRY_ACCOUNT_APPID, NEXT, "alice").await;
        assert!(walked.landing.contains("ticket="), "{}", walked.landing);
        let alice = row(&app, demo::BASE_ACCOUNT_APPID, "alice").await.unwrap();
        assert_eq!(alice.subscribe_flag, Some(1));
        assert_eq!(alice.subscribe_scene.as_deref(), Some("ADD_SCENE_QR_CODE"));
        assert_eq!(alice.qr_scene, Some(12345));
        assert_eq!(alice.tagid_list.as_deref(), Some("[2]"));
        assert!(alice.subscribe_time.is_some());
        assert_eq!(audited(&app, AuditKind::FollowerSubscribed).await, 1);

        // Bob does not follow: WeChat says only that.
        walk(&app, demo::ENTRY_ACCOUNT_APPID, NEXT, "bob").await;
        let bob = row(&app, demo::BASE_ACCOUNT_APPID, "bob").await.unwrap();
        assert_eq!(bob.subscribe_flag, Some(0));
        assert_eq!(bob.qr_scene, None);
        assert_eq!(app.sim.calls("/cgi-bin/user/info"), 2);

        // Alice signs in again: no second "subscribed".
        walk(&app, demo::ENTRY_ACCOUNT_APPID, NEXT, "alice").await;
        assert_eq!(audited(&app, AuditKind::FollowerSubscribed).await, 1);
    }

    async fn a_wechat_that_cannot_say_does_not_stop_the_sign_in(app: TestApp) {
        // The component never got the base account's authorization: no authorizer token.
        app.push_component_ticket().await;
        app.sim.set_follower(demo::BASE_ACCOUNT_APPID, "alice", None);
        let walked = walk(&app, demo::ENTRY_ACCOUNT_APPID, NEXT, "alice").await;
        assert!(walked.landing.starts_with("https://app.example.com/"), "{}", walked.landing);
        assert!(walked.landing.contains("ticket="), "{}", walked.landing);
        let alice = row(&app, demo::BASE_ACCOUNT_APPID, "alice").await.unwrap();
        assert_eq!(alice.subscribe_flag, None, "nothing is known, nothing is stored");

        // Authorized, but WeChat holds the authorizer token fetch that user/info needs: the
        // sign-in goes on without the status after the lookup's time bound.
        authorize_base(&app).await;
        let phone = Browser::new(&app, "bob");
        let entry_callback = phone.hop(&start(&app, demo::ENTRY_ACCOUNT_APPID, NEXT).await).await;
        let base_authorize = phone.hop(&entry_callback).await;
        let base_callback = phone.hop(&base_authorize).await;
        app.sim.hold_token_fetches();
        let landing = phone.hop(&base_callback).await;
        app.sim.release_token_fetches();
        assert!(landing.contains("ticket="), "{landing}");
        assert_eq!(row(&app, demo::BASE_ACCOUNT_APPID, "bob").await.unwrap().subscribe_flag, None);
    }

    async fn the_message_url_answers_wechats_echostr_check(app: TestApp) {
        direct_account(&app, false).await;
        let now = app.clock.now().to_string();
        let check = |token: &str| {
            let signature = url_signature(token, &now, "abc");
            app.http
                .get(app.url(&events_path(DIRECT)))
                .query(&[("signature", signature.as_str()), ("timestamp", now.as_str()), ("nonce", "abc"), ("echostr", "7349385683627384")])
                .send()
        };
        let ok = check(MESSAGE_TOKEN).await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.text().await.unwrap(), "7349385683627384");
        let forged = check("a-guessed-token").await.unwrap();
        assert_eq!(forged.status(), 400);
        let text = forged.text().await.unwrap();
        assert!(!text.contains("7349385683627384"), "{text}");
        // An account wxauth does not know gets the same answer.
        let unknown = app
            .http
            .get(app.url(&events_path("wxd0000000000000ff")))
            .query(&[("signature", "x"), ("timestamp", now.as_str()), ("nonce", "abc"), ("echostr", "1")])
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 400);
        assert_eq!(unknown.text().await.unwrap(), text);
    }

    async fn plain_mode_pushes_update_the_status_from_wechats_own_word(app: TestApp) {
        direct_account(&app, false).await;
        let deliveries = app.sim.follow(DIRECT, "alice", Some(SimQrScene::Id(777)), 1).await.unwrap();
        assert!(deliveries.iter().all(|d| d.accepted()), "{deliveries:?}");
        assert_eq!(deliveries[0].answer, "success");
        let alice = row(&app, DIRECT, "alice").await.unwrap();
        assert_eq!((alice.subscribe_flag, alice.qr_scene), (Some(1), Some(777)));
        assert_eq!(alice.flow_user_id, None, "a follower who never signed in has no account");
        assert_eq!(audited(&app, AuditKind::FollowerSubscribed).await, 1);

        // WeChat retries the unsubscribe three times: applied once, answered every time.
        let deliveries = app.sim.unfollow(DIRECT, "alice", 3).await.unwrap();
        assert_eq!(deliveries.len(), 3);
        assert!(deliveries.iter().all(|d| d.accepted()), "{deliveries:?}");
        assert_eq!(row(&app, DIRECT, "alice").await.unwrap().subscribe_flag, Some(0));
        assert_eq!(audited(&app, AuditKind::FollowerUnsubscribed).await, 1);

        // A SCAN by someone who follows again.
        app.sim.follow(DIRECT, "alice", None, 1).await.unwrap();
        app.sim.scan_qr(DIRECT, "alice", SimQrScene::Str("shop-7".into()), 1).await.unwrap();
        assert_eq!(row(&app, DIRECT, "alice").await.unwrap().subscribe_flag, Some(1));
    }

    async fn a_plain_push_is_believed_only_as_far_as_wechat_confirms_it(app: TestApp) {
        direct_account(&app, false).await;
        app.sim.follow(DIRECT, "alice", None, 1).await.unwrap();
        let open_id = app.sim.openid(DIRECT, "alice");
        let now = app.clock.now();

        // Plain mode signs the query only: a request with a valid signature (captured, or a
        // leaked token) and a body of the sender's choosing says alice left. WeChat says not.
        let forged = event_xml(&open_id, now, "unsubscribe", "");
        let (status, body) = plain_push(&app, DIRECT, MESSAGE_TOKEN, now, &forged).await;
        assert_eq!((status, body.as_str()), (200, "success"));
        assert_eq!(row(&app, DIRECT, "alice").await.unwrap().subscribe_flag, Some(1));
        assert_eq!(audited(&app, AuditKind::FollowerUnsubscribed).await, 0);

        // Without the token: refused before the body is read, nothing stored.
        let bob = app.sim.openid(DIRECT, "bob");
        let (status, _) = plain_push(&app, DIRECT, "not-the-token", now, &event_xml(&bob, now, "subscribe", "")).await;
        assert_eq!(status, 400);
        assert!(row(&app, DIRECT, "bob").await.is_none());

        // A genuine request signed ten minutes ago (replayed): refused.
        let (status, _) = plain_push(&app, DIRECT, MESSAGE_TOKEN, now - 600, &event_xml(&open_id, now - 600, "unsubscribe", "")).await;
        assert_eq!(status, 400);
    }

    async fn safe_mode_pushes_are_verified_decrypted_and_believed(app: TestApp) {
        direct_account(&app, true).await;
        let lookups = app.sim.calls("/cgi-bin/user/info");
        let deliveries = app.sim.follow(DIRECT, "bob", Some(SimQrScene::Str("promo".into())), 1).await.unwrap();
        assert!(deliveries[0].accepted(), "{deliveries:?}");
        let bob = row(&app, DIRECT, "bob").await.unwrap();
        assert_eq!(bob.subscribe_flag, Some(1));
        assert_eq!(bob.qr_scene_str.as_deref(), Some("promo"));
        assert_eq!(bob.subscribe_scene.as_deref(), Some("ADD_SCENE_QR_CODE"));
        assert_eq!(app.sim.calls("/cgi-bin/user/info"), lookups, "the signed event needs no lookup");

        // SCAN fills the scene, leaves the follow.
        app.sim.scan_qr(DIRECT, "bob", SimQrScene::Id(42), 1).await.unwrap();
        let bob = row(&app, DIRECT, "bob").await.unwrap();
        assert_eq!((bob.subscribe_flag, bob.qr_scene), (Some(1), Some(42)));

        // A ciphertext whose msg_signature does not match: refused, nothing changes.
        let open_id = app.sim.openid(DIRECT, "bob");
        let (mut query, body) = safe_push(&event_xml(&open_id, app.clock.now(), "unsubscribe", ""), app.clock.now());
        query[4].1 = "0".repeat(40);
        let response = app.http.post(app.url(&events_path(DIRECT))).query(&query).body(body).send().await.unwrap();
        assert_eq!(response.status(), 400);
        assert_eq!(row(&app, DIRECT, "bob").await.unwrap().subscribe_flag, Some(1));
        // A plain push to an account in safe mode still needs the token's signature.
        let (status, _) = plain_push(&app, DIRECT, "guess", app.clock.now(), &event_xml(&open_id, app.clock.now(), "unsubscribe", "")).await;
        assert_eq!(status, 400);

        let deliveries = app.sim.unfollow(DIRECT, "bob", 1).await.unwrap();
        assert!(deliveries[0].accepted());
        assert_eq!(row(&app, DIRECT, "bob").await.unwrap().subscribe_flag, Some(0));
    }

    async fn a_component_authorized_accounts_pushes_come_through_the_component(app: TestApp) {
        // The demo entry account is under the component: WeChat seals its pushes with the
        // component's keys and posts them to the component's message URL.
        app.sim
            .set_message_endpoint(demo::ENTRY_ACCOUNT_APPID, &app.url(&events_path(demo::ENTRY_ACCOUNT_APPID)), None, None)
            .unwrap();
        let deliveries = app.sim.follow(demo::ENTRY_ACCOUNT_APPID, "alice", Some(SimQrScene::Id(5)), 1).await.unwrap();
        assert!(deliveries[0].accepted(), "{deliveries:?}");
        let alice = row(&app, demo::ENTRY_ACCOUNT_APPID, "alice").await.unwrap();
        assert_eq!((alice.subscribe_flag, alice.qr_scene), (Some(1), Some(5)));

        // A plain push for it (signed with the component's token) is refused: WeChat sends
        // component-authorized accounts' messages in safe mode only.
        let open_id = app.sim.openid(demo::ENTRY_ACCOUNT_APPID, "alice");
        let now = app.clock.now();
        let (status, _) = plain_push(&app, demo::ENTRY_ACCOUNT_APPID, demo::COMPONENT_TOKEN, now, &event_xml(&open_id, now, "unsubscribe", "")).await;
        assert_eq!(status, 400);
        assert_eq!(row(&app, demo::ENTRY_ACCOUNT_APPID, "alice").await.unwrap().subscribe_flag, Some(1));
    }

    async fn retries_arriving_at_the_same_instant_apply_once(app: TestApp) {
        direct_account(&app, true).await;
        let open_id = app.sim.openid(DIRECT, "alice");
        let base = app.clock.now();
        for round in 0..ROUNDS {
            // Alternate: subscribe, unsubscribe, … each its own message.
            let event = if round % 2 == 0 { "subscribe" } else { "unsubscribe" };
            let (query, body) = safe_push(&event_xml(&open_id, base + round as i64, event, ""), base);
            let barrier = Arc::new(Barrier::new(AT_ONCE));
            let mut tasks = Vec::new();
            for _ in 0..AT_ONCE {
                let (http, url, query, body, barrier) = (app.http.clone(), app.url(&events_path(DIRECT)), query.clone(), body.clone(), barrier.clone());
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    let response = http.post(url).query(&query).body(body).send().await.unwrap();
                    (response.status().as_u16(), response.text().await.unwrap())
                }));
            }
            for task in tasks {
                assert_eq!(task.await.unwrap(), (200, "success".to_owned()), "round {round}");
            }
            let receipts = entity::wechat_message_receipt::Entity::find().count(&app.state.db).await.unwrap();
            assert_eq!(receipts as usize, round + 1, "round {round}");
        }
        assert_eq!(audited(&app, AuditKind::FollowerSubscribed).await, ROUNDS.div_ceil(2));
        assert_eq!(audited(&app, AuditKind::FollowerUnsubscribed).await, ROUNDS / 2);
    }
}

mod admin_view {
    use super::*;
    use crate::harness::Options;

    const ADMIN_TOKEN: &str = "admin-token-for-the-follower-tests";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follows_and_unfollows_are_webhook_events_written_with_the_change() {
        let app = TestApp::spawn_with(
            crate::harness::Backend::Sqlite,
            Options {
                env: vec![("WXAUTH_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned())],
                ..Options::default()
            },
        )
        .await
        .unwrap();
        let (status, created) = crate::admin_api::call_as(
            &app,
            Some(ADMIN_TOKEN),
            Method::POST,
            "/webhooks",
            Some(serde_json::json!({
                "url": "http://127.0.0.1:9/crm",
                "events": ["follower.subscribed", "follower.unsubscribed"],
            })),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        direct_account(&app, true).await;
        let events = || async {
            entity::webhook_delivery::Entity::find()
                .all(&app.state.db)
                .await
                .unwrap()
                .into_iter()
                .map(|d| {
                    (
                        d.event_type,
                        serde_json::from_str::<Value>(&d.payload).unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let deliveries = app.sim.follow(DIRECT, "bob", None, 1).await.unwrap();
        assert!(deliveries[0].accepted(), "{deliveries:?}");
        // A SCAN by a follower changes no status: no event.
        app.sim
            .scan_qr(DIRECT, "bob", SimQrScene::Id(42), 1)
            .await
            .unwrap();
        let after_follow = events().await;
        assert_eq!(after_follow.len(), 1, "{after_follow:?}");
        assert_eq!(after_follow[0].0, "follower.subscribed");
        let open_id = app.sim.openid(DIRECT, "bob");
        assert!(
            after_follow[0].1.to_string().contains(&open_id),
            "{:?}",
            after_follow[0].1
        );
        let deliveries = app.sim.unfollow(DIRECT, "bob", 2).await.unwrap();
        assert!(deliveries.iter().any(|d| d.accepted()), "{deliveries:?}");
        let kinds: Vec<String> = events().await.into_iter().map(|(kind, _)| kind).collect();
        // WeChat's retry of the unfollow is the same message: one event.
        assert_eq!(kinds, ["follower.subscribed", "follower.unsubscribed"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_admin_api_shows_whether_a_user_follows() {
        let app = TestApp::spawn_with(
            crate::harness::Backend::Sqlite,
            Options {
                env: vec![("WXAUTH_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned())],
                ..Options::default()
            },
        )
        .await
        .unwrap();
        authorize_base(&app).await;
        app.sim.set_follower(
            demo::BASE_ACCOUNT_APPID,
            "alice",
            Some(SimQrScene::Str("poster-3".into())),
        );
        walk(&app, demo::ENTRY_ACCOUNT_APPID, NEXT, "alice").await;
        let account = row(&app, demo::BASE_ACCOUNT_APPID, "alice")
            .await
            .unwrap()
            .flow_user_id
            .unwrap();
        let (status, user) = crate::admin_api::call_as(
            &app,
            Some(ADMIN_TOKEN),
            Method::GET,
            &format!("/users/{account}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{user}");
        let identities = user["identities"].as_array().unwrap();
        let base = identities
            .iter()
            .find(|i| i["appid"] == demo::BASE_ACCOUNT_APPID)
            .unwrap();
        assert_eq!(base["follower"]["subscribed"], true, "{base}");
        assert_eq!(base["follower"]["qr_scene_str"], "poster-3");
        assert_eq!(base["follower"]["tagid_list"], serde_json::json!([2]));
        let entry = identities
            .iter()
            .find(|i| i["appid"] == demo::ENTRY_ACCOUNT_APPID)
            .unwrap();
        assert_eq!(
            entry["follower"],
            Value::Null,
            "nobody asked the entry account"
        );
    }
}
