//! Signed webhooks (issue 17 §4), as a receiver sees them: a POST of JSON signed with
//! HMAC-SHA256 over `timestamp.body` in `Wxauth-Signature`, verified here with nothing but the
//! documented recipe; retries after a receiver's 500 with the same event id; dead after 24 hours
//! of failures (the harness's clock), visible in the admin API and the console; never a secret
//! or a token in what receivers get. And the proof of the outbox: the real `wxauth serve` is
//! killed between the commit and the delivery, and after a restart the event arrives.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use reqwest::Method;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use sha2::Sha256;
use wxauth::clock::Clock;

use crate::admin_api::call_as;
use crate::backend_tests;
use crate::cli::{Cli, Server, text};
use crate::harness::{ClientFixture, Options, SEED_APPID, SEED_OPENID, SEED_UNIONID, TestApp};
use crate::oauth::basic;
use crate::races::token;

const ADMIN_TOKEN: &str = "webhook-admin-token-0123456789abcdef";
const SECRET: &str = "a-long-client-secret-for-webhooks";

/// One POST a receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: String,
}

/// A receiver: records every POST, answers the queued statuses first, then 200.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
    always: Arc<Mutex<Option<u16>>>,
}

impl Receiver {
    async fn start(self, addr: SocketAddr) -> (Self, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url_addr = listener.local_addr().unwrap();
        let state = self.clone();
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    state.got.lock().unwrap().push(Received { headers, body });
                    let status = state
                        .answers
                        .lock()
                        .unwrap()
                        .pop_front()
                        .or(*state.always.lock().unwrap())
                        .unwrap_or(200);
                    StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let _ = url_addr;
        (self, task)
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Wait until `n` POSTs arrived (a guard against a worker that never delivers, not a
    /// timing assertion).
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..600 {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the receiver got {} of {n} deliveries", self.got().len());
    }
}

async fn receiver() -> (Receiver, String, tokio::task::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (receiver, task) = Receiver::default().start(addr).await;
    (receiver, format!("http://{addr}/hook"), task)
}

/// The recipe README gives receivers: HMAC-SHA256 keyed with the secret over `t.body`, hex,
/// compared with `v1`; `t` within five minutes of `now`.
fn verifies(secret: &str, received: &Received, now: i64) -> bool {
    let header = received.headers["wxauth-signature"].to_str().unwrap();
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_owned()),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", received.body).as_bytes());
    let fresh = (now - t.parse::<i64>().unwrap()).abs() <= 300;
    fresh && mac.verify_slice(&hex::decode(v1).unwrap()).is_ok()
}

fn options() -> Options {
    Options {
        env: vec![("WXAUTH_ADMIN_TOKEN".into(), ADMIN_TOKEN.into())],
        ..Options::default()
    }
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    call_as(app, Some(ADMIN_TOKEN), method, path, body).await
}

/// Register `url` for `events` through the admin API; returns (id, secret).
async fn register(app: &TestApp, url: &str, events: Value) -> (i64, String) {
    let (status, created) = admin(
        app,
        Method::POST,
        "/webhooks",
        Some(json!({ "url": url, "events": events, "description": "CRM" })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    (created["id"].as_i64().unwrap(), secret)
}

async fn deliveries(app: &TestApp, status: &str) -> Vec<Value> {
    let (code, list) = admin(
        app,
        Method::GET,
        &format!("/webhooks/deliveries?status={status}"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{list}");
    list.as_array().unwrap().clone()
}

/// Wait until the delivery of the only event is in `status` (see [`Receiver::wait_for`]).
async fn wait_for_status(app: &TestApp, status: &str) -> Value {
    for _ in 0..600 {
        if let Some(d) = deliveries(app, status).await.into_iter().next() {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no delivery became {status}");
}

backend_tests! {
    options: options();

    async fn deliveries_are_signed_retried_with_one_event_id_and_carry_no_secret(app: TestApp) {
        let (hook, url, _task) = receiver().await;
        let (_, secret) = register(&app, &url, json!(["user.disabled"])).await;
        // The secret is shown once: never in the list.
        let (_, listed) = admin(&app, Method::GET, "/webhooks", None).await;
        assert_eq!(listed[0]["url"], url);
        assert!(!listed.to_string().contains(&secret), "{listed}");

        // Tokens issued, then the account disabled; the receiver fails twice first.
        hook.answers.lock().unwrap().extend([500, 500]);
        ClientFixture::new("web", SECRET, &["flow", "refresh_token"]).scopes(&["flow"]).register(&app).await;
        let account = crate::harness::seed_identity(&app).await;
        let (_, tokens) = token(&app, &basic("web", SECRET), &[("grant_type", "flow"), ("appId", SEED_APPID), ("openId", SEED_OPENID), ("unionId", SEED_UNIONID), ("ticket", &app.state.tickets.mint(&wxauth::users::IdentityKey::new(SEED_APPID.parse().unwrap(), SEED_OPENID, Some(SEED_UNIONID))).await.unwrap())]).await;
        let (status, _) = admin(&app, Method::POST, &format!("/users/{account}/disable"), None).await;
        assert_eq!(status, 200);

        // The first attempt fails at once; the retry waits 10 s, the next 20 s.
        let first = hook.wait_for(1).await;
        let pending = wait_for_status(&app, "pending").await;
        assert_eq!(pending["event_type"], "user.disabled");
        app.clock.advance(10);
        hook.wait_for(2).await;
        app.clock.advance(20);
        let got = hook.wait_for(3).await;
        let delivered = wait_for_status(&app, "delivered").await;
        assert_eq!(delivered["attempts"], 3, "{delivered}");
        assert_eq!(delivered["last_status"], 200);

        let event_id = first[0].headers["wxauth-event-id"].to_str().unwrap().to_owned();
        for r in &got {
            assert!(verifies(&secret, r, app.clock.now()), "the documented recipe verifies {r:?}");
            assert!(!verifies("whsec_wrong", r, app.clock.now()));
            assert_eq!(r.headers["wxauth-event-id"], event_id.as_str(), "one event id across retries");
            assert_eq!(r.headers["content-type"], "application/json");
            let body: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(body["id"], event_id.as_str());
            assert_eq!(body["type"], "user.disabled");
            assert_eq!(body["data"]["account_id"], account);
            // Never a secret or a token.
            for secret_thing in [secret.as_str(), ADMIN_TOKEN, SECRET, tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap()] {
                assert!(!r.body.contains(secret_thing) && !format!("{:?}", r.headers).contains(secret_thing));
            }
        }
        // A body changed in transit fails the recipe.
        let mut forged = got[2].clone();
        forged.body = forged.body.replace(&account.to_string(), "999999");
        assert!(!verifies(&secret, &forged, app.clock.now()));
    }

    async fn a_mini_program_sign_in_is_a_created_and_a_signed_in_event(app: TestApp) {
        let (hook, url, _task) = receiver().await;
        let (_, secret) = register(&app, &url, json!(["user.created", "user.signed_in"])).await;
        let signed = crate::mini_program::sign_in(&app, "alice").await;
        let got = hook.wait_for(2).await;
        let bodies: Vec<Value> = got.iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect();
        let types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
        assert!(types.contains(&"user.created") && types.contains(&"user.signed_in"), "{types:?}");
        let signed_in = bodies.iter().find(|b| b["type"] == "user.signed_in").unwrap();
        assert_eq!(signed_in["data"]["channel"], "mini_program");
        let created = bodies.iter().find(|b| b["type"] == "user.created").unwrap();
        assert_eq!(signed_in["data"]["account_id"], created["data"]["account_id"]);
        assert_ne!(bodies[0]["id"], bodies[1]["id"], "one id per event");
        for r in &got {
            assert!(verifies(&secret, r, app.clock.now()));
            crate::mini_program::assert_no_session_key(&app, &r.body);
            for field in ["ticket", "sessionId"] {
                if let Some(value) = signed[field].as_str() {
                    assert!(!r.body.contains(value), "the {field} leaked: {}", r.body);
                }
            }
        }
    }

    async fn a_sign_in_reaches_exactly_the_endpoints_subscribed_to_it(app: TestApp) {
        // The sign-in's outbox insert picks the endpoints in SQL (no read first): the event's
        // type as the only, first, middle or last word, or `*`; never a neighbour's type.
        let url = "http://127.0.0.1:9/hook";
        let mut wanting = Vec::new();
        for events in [json!(["user.signed_in"]), json!(["user.signed_in", "user.created"]), json!(["user.created", "user.signed_in", "user.merged"]), json!(["user.created", "user.signed_in"]), json!(["*"]), json!(["user.merged", "*"])] {
            wanting.push(register(&app, url, events).await.0);
        }
        let mut not_wanting = Vec::new();
        for events in [json!(["user.created"]), json!(["user.disabled", "user.deleted", "user.merged"]), json!(["follower.subscribed", "follower.unsubscribed"])] {
            not_wanting.push(register(&app, url, events).await.0);
        }
        for round in 0..2 {
            crate::mini_program::sign_in(&app, "alice").await;
            let deliveries = entity::webhook_delivery::Entity::find().all(&app.state.db).await.unwrap();
            let mut reached: Vec<i64> = deliveries.iter().filter(|d| d.event_type == "user.signed_in").map(|d| d.endpoint_id).collect();
            reached.sort_unstable();
            let mut expected: Vec<i64> = wanting.iter().flat_map(|&id| vec![id; round + 1]).collect();
            expected.sort_unstable();
            assert_eq!(reached, expected, "sign-in {round}: the endpoints reached");
            assert!(deliveries.iter().all(|d| d.event_type != "user.signed_in" || !not_wanting.contains(&d.endpoint_id)));
        }
    }

    async fn a_delivery_failing_for_24_hours_is_dead_and_shown(app: TestApp) {
        let (hook, url, _task) = receiver().await;
        *hook.always.lock().unwrap() = Some(500);
        let (endpoint, _) = register(&app, &url, json!(["*"])).await;
        let account = crate::harness::seed_identity(&app).await;
        // Created with the account above: a user.created event; then the disable.
        let (status, _) = admin(&app, Method::POST, &format!("/users/{account}/disable"), None).await;
        assert_eq!(status, 200);
        hook.wait_for(2).await;
        let mut pending = Vec::new();
        for _ in 0..600 {
            pending = deliveries(&app, "pending").await;
            if pending.len() == 2 && pending.iter().all(|d| d["attempts"] == 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(pending.iter().all(|d| d["attempts"] == 1 && d["last_status"] == 500), "{pending:?}");
        assert!(deliveries(&app, "dead").await.is_empty(), "not dead within the window");
        // A day later both fail once more and are given up.
        app.clock.advance(86_400);
        let mut dead = Vec::new();
        for _ in 0..600 {
            dead = deliveries(&app, "dead").await;
            if dead.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(dead.len(), 2, "{dead:?}");
        let types: Vec<&str> = dead.iter().map(|d| d["event_type"].as_str().unwrap()).collect();
        assert!(types.contains(&"user.created") && types.contains(&"user.disabled"), "{types:?}");
        assert!(dead.iter().all(|d| d["last_status"] == 500 && d["attempts"] == 2));
        let (_, listed) = admin(&app, Method::GET, "/webhooks", None).await;
        assert_eq!((listed[0]["id"].as_i64(), listed[0]["dead"].as_i64(), listed[0]["pending"].as_i64()), (Some(endpoint), Some(2), Some(0)));
        // Dead stays dead: no more attempts.
        let attempts = hook.got().len();
        app.clock.advance(86_400);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(hook.got().len(), attempts);
    }
}

/// `wxauth serve` from `cli` on a loopback port; returns it with its address once it listens.
fn serve(cli: &Cli) -> (Server, String) {
    let mut child = cli
        .command(
            &["serve"],
            &[
                ("WXAUTH_LISTEN", "127.0.0.1:0"),
                ("RUST_LOG", "info"),
                ("WXAUTH_ADMIN_TOKEN", ADMIN_TOKEN),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wxauth serve");
    let stderr = child.stderr.take().expect("stderr");
    let server = Server(child);
    let mut lines = BufReader::new(stderr).lines();
    let listen = loop {
        let line = lines.next().expect("a `wxauth listening` line").unwrap();
        let event: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if event["message"] == "wxauth listening" {
            break event["listen"].as_str().unwrap().to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (server, listen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_before_the_server_is_killed_is_delivered_after_the_restart() {
    let cli = Cli::installed();
    // An account to disable (no sign-in needed: a row as a login would leave it).
    let db = wxauth::db::connect(&format!(
        "sqlite://{}?mode=rwc",
        cli.dir.0.join("cli.db").display()
    ))
    .await
    .unwrap();
    entity::flow_user::Entity::insert(entity::flow_user::ActiveModel {
        union_id: sea_orm::Set(Some("u-killed".into())),
        created_at: sea_orm::Set(1),
        updated_at: sea_orm::Set(1),
        ..Default::default()
    })
    .exec(&db)
    .await
    .unwrap();
    drop(db);
    // The receiver's port, with nobody listening yet: the receiver is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{port}/hook");
    let out = cli.run(
        &["webhook", "add", "--url", &url, "--events", "user.disabled"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let secret = stdout
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .expect("the secret, once")
        .trim()
        .to_owned();

    // The server commits the change and its event, tries the receiver (down), and is killed.
    let (mut server, listen) = serve(&cli);
    let http = reqwest::Client::new();
    let response = http
        .post(format!("http://{listen}/admin/api/v1/users/1/disable"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    drop(server);
    let out = cli.run(&["webhook", "deliveries"], &[]);
    let waiting: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(waiting[0]["status"], "pending", "{waiting}");

    // The receiver comes up; the server restarts; the event arrives, signed.
    let (hook, _task) = Receiver::default().start(port).await;
    let (_server, _) = serve(&cli);
    let got = hook.wait_for(1).await;
    let now = chrono::Utc::now().timestamp();
    assert!(verifies(&secret, &got[0], now), "{got:?}");
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(
        (body["type"].as_str(), body["data"]["account_id"].as_i64()),
        (Some("user.disabled"), Some(1))
    );
    assert_eq!(body["id"], waiting[0]["event_id"]);
}

/// The console's Webhooks page (a dead delivery with the receiver's last answer) and Merges page
/// (a queued merge, approved there), in a real browser; screenshots in
/// `target/tmp/console-webhooks-zh.png` and `console-merges-en.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_dead_deliveries_and_queued_merges() {
    use crate::browser::{Chromedriver, DESKTOP_USER_AGENT};
    use crate::console_browser::shot;
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let app = crate::console::spawn(None).await;
    let admin = wxauth::admin::Admin::new(&app.state);
    let actor = wxauth::admin::Actor::cli("test");
    admin
        .create_webhook(
            &actor,
            wxauth::admin::webhooks::NewWebhook {
                url: "https://crm.example.com/wxauth".into(),
                events: vec!["*".into()],
                description: Some("CRM 客户系统".into()),
            },
        )
        .await
        .unwrap();
    let now = app.clock.now();
    let users = &app.state.users;
    let (_, older, _) = users
        .record_identity(
            &wxauth::users::IdentityKey::new(
                "wxd000000000000001".parse().unwrap(),
                "o-mp-console",
                None::<String>,
            ),
            None,
            now,
        )
        .await
        .unwrap();
    app.clock.advance(60);
    let (_, newer, _) = users
        .record_identity(
            &wxauth::users::IdentityKey::new(
                SEED_APPID.parse().unwrap(),
                "o-oa-console",
                Some("u-console"),
            ),
            None,
            app.clock.now(),
        )
        .await
        .unwrap();
    wxauth::users::merge::queue(&app.state.db, older.id, newer.id, app.clock.now())
        .await
        .unwrap();
    // Both account creations are events for the endpoint; a day of failures later, dead.
    entity::webhook_delivery::Entity::update_many()
        .col_expr(
            entity::webhook_delivery::Column::DeadAt,
            sea_orm::sea_query::Expr::value(app.clock.now()),
        )
        .col_expr(
            entity::webhook_delivery::Column::Attempts,
            sea_orm::sea_query::Expr::value(19),
        )
        .col_expr(
            entity::webhook_delivery::Column::LastStatus,
            sea_orm::sea_query::Expr::value(502),
        )
        .exec(&app.state.db)
        .await
        .ok();
    let dead = wxauth::admin::Admin::new(&app.state)
        .webhook_deliveries(Some(wxauth::admin::webhooks::DeliveryStatus::Dead), 10)
        .await
        .unwrap();
    let chromium = driver.session(DESKTOP_USER_AGENT, (1280, 860)).open().await;
    let walk = async {
        chromium.goto(&app.url("/admin/login?lang=zh")).await?;
        chromium.click("details summary").await?;
        chromium.fill("#token", crate::console::ADMIN_TOKEN).await?;
        chromium.click("#token-sign-in").await?;
        chromium.wait_for("#users").await?;
        chromium.click("#nav-webhooks").await?;
        chromium.wait_for("#dead-deliveries").await?;
        let page = chromium.source().await?;
        for wanted in [
            "投递失败",
            "HTTP 502",
            "crm.example.com",
            dead[0].event_id.as_str(),
        ] {
            if !page.contains(wanted) {
                return Err(format!("the webhooks page lacks {wanted:?}"));
            }
        }
        shot(&chromium, "webhooks-zh").await;
        chromium.goto(&app.url("/admin/merges?lang=en")).await?;
        chromium.wait_for("#merges").await?;
        if !chromium.source().await?.contains("o-oa-console") {
            return Err("the merges page lacks the identity that would move".into());
        }
        shot(&chromium, "merges-en").await;
        chromium.click("#merges button.button").await?;
        chromium.wait_for("main").await?;
        chromium.source().await
    }
    .await;
    let after = chromium.finish(walk).await;
    assert!(after.contains("The accounts are merged."), "{after}");
    assert_eq!(
        users
            .find_identity(SEED_APPID, "o-oa-console")
            .await
            .unwrap()
            .unwrap()
            .account_id,
        Some(older.id)
    );
}
