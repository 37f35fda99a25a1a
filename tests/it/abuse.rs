//! Holding up under abuse and load, attacked through HTTP the way a stranger would: slow clients,
//! too many connections and requests, upstream tokens that hang, online guessing of client
//! secrets, per-IP limits (in process, shared through Redis, and with Redis stopped mid-test),
//! oversized authorization requests, a large janitor sweep, parallel first logins and repeated
//! `wx.login` codes; and a database that cannot answer now (SQLite's lock held from outside, a lost
//! deadlock, failing inserts): 503 only when the same request sent again can succeed.
//!
//! Redis: the shared-limit tests use `WXAUTH_TEST_REDIS_URL` (set by .ci/run) and are skipped
//! without it unless `WXAUTH_TEST_REQUIRE_REDIS=1`; the outage test starts a throwaway
//! `redis-server` of its own on a free port.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use wxauth::simulator::SimUser;
use wxauth::simulator::demo::MINI_PROGRAM_APPID as MP;

use crate::backend_tests;
use crate::harness::{Backend, ClientFixture, Options, TestApp};
use crate::oauth::basic;

const SECRET: &str = "a-long-client-secret-for-abuse-tests";

fn options(pairs: &[(&str, &str)]) -> Options {
    Options {
        env: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

async fn sqlite(pairs: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, options(pairs))
        .await
        .expect("sqlite always runs")
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Read what the server sends until it closes the connection; `None` if it is still open when
/// `guard` runs out (a guard against hanging the suite, not a measurement).
async fn read_until_closed(stream: &mut TcpStream, guard: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(guard, read_all).await.ok()?;
    Some(String::from_utf8_lossy(&seen).into_owned())
}

async fn confidential_client(app: &TestApp, id: &str, grants: &[&str], redirect: &[&str]) {
    ClientFixture::new(id, SECRET, grants)
        .scopes(&["openid", "flow", "api"])
        .redirect_uris(redirect)
        .register(app)
        .await;
}

async fn session(app: &TestApp, code: &str, from: Option<&str>) -> (u16, Value) {
    let mut request = app
        .http
        .post(app.url("/api/wechat/ma/session"))
        .json(&json!({ "appId": MP, "code": code }));
    if let Some(ip) = from {
        request = request.header("x-forwarded-for", ip);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

// ---------- 1. connections ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_disconnected() {
    let app = sqlite(&[
        ("WXAUTH_HEADER_READ_TIMEOUT_SECS", "1"),
        ("WXAUTH_REQUEST_TIMEOUT_SECS", "2"),
    ])
    .await;
    let guard = Duration::from_secs(20);

    // Headers never finished: closed.
    let mut headers = TcpStream::connect(addr(&app)).await.unwrap();
    headers
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // Body never finished: 408 and closed.
    let mut body = TcpStream::connect(addr(&app)).await.unwrap();
    body.write_all(
        b"POST /api/wechat/ma/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"appId\":",
    )
    .await
    .unwrap();
    // Idle keep-alive after one answered request: closed.
    let mut idle = TcpStream::connect(addr(&app)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    assert!(
        read_until_closed(&mut headers, guard).await.is_some(),
        "a connection that never finished its headers is still open"
    );
    let answered = read_until_closed(&mut body, guard)
        .await
        .expect("a connection that never finished its body is still open");
    assert!(answered.starts_with("HTTP/1.1 408"), "{answered}");
    assert!(answered.contains("\"error\""), "{answered}");
    let answered = read_until_closed(&mut idle, guard)
        .await
        .expect("an idle kept-alive connection is still open");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_requests_over_the_caps_are_shed_with_503() {
    let app = sqlite(&[
        ("WXAUTH_MAX_CONNECTIONS", "2"),
        ("WXAUTH_MAX_REQUESTS", "1"),
        ("WXAUTH_HEADER_READ_TIMEOUT_SECS", "30"),
    ])
    .await;
    // One request in progress (its body never comes) holds the only request slot…
    let mut busy = TcpStream::connect(addr(&app)).await.unwrap();
    busy.write_all(
        b"POST /api/wechat/ma/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // …so a second connection's request is shed…
    let mut second = TcpStream::connect(addr(&app)).await.unwrap();
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut second, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after:"),
        "{answer}"
    );
    // …and, with two connections open, a third is answered 503 and closed.
    let _held = TcpStream::connect(addr(&app)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut third = TcpStream::connect(addr(&app)).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut third, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_waiters_on_a_held_token_fetch_are_all_answered_within_the_bound() {
    let app = sqlite(&[]).await;
    let code = app.sim.mint_js_code(MP, "alice").unwrap();
    let (status, signed_in) = session(&app, &code, None).await;
    assert_eq!(status, 200, "{signed_in}");
    let session_id = signed_in["sessionId"].as_str().unwrap().to_owned();

    app.sim.hold_token_fetches();
    let barrier = Arc::new(Barrier::new(10));
    // The documented bound is 15 s; a request not answered within 20 s has hung.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut waiters = Vec::new();
    for _ in 0..10 {
        let (barrier, http, url) = (
            barrier.clone(),
            http.clone(),
            app.url("/api/wechat/ma/phone"),
        );
        let body = json!({ "sessionId": session_id, "code": app.sim.mint_phone_code(MP, "alice").unwrap() });
        waiters.push(tokio::spawn(async move {
            barrier.wait().await;
            let response = http.post(url).json(&body).send().await;
            response.map(|r| {
                (
                    r.status().as_u16(),
                    r.headers().get("retry-after").is_some(),
                )
            })
        }));
    }
    for waiter in waiters {
        let answer = waiter.await.unwrap();
        assert!(
            matches!(answer, Ok((503, true))),
            "a waiter was not answered 503 with Retry-After within the bound: {answer:?}"
        );
    }
    app.sim.release_token_fetches();
}

// ---------- 2. limits and the throttle ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_is_throttled_while_the_rightful_client_keeps_getting_tokens() {
    let app = sqlite(&[("WXAUTH_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    confidential_client(&app, "svc", &["client_credentials"], &[]).await;
    let token = |auth: String, from: &'static str| {
        let request = app
            .http
            .post(app.url("/oauth/token"))
            .header("authorization", auth)
            .header("x-forwarded-for", from)
            .form(&[("grant_type", "client_credentials"), ("scope", "api")]);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let retry = response.headers().get("retry-after").cloned();
            (
                status,
                retry,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let mut throttled = None;
    for attempt in 1..=20 {
        let guess = basic("svc", &format!("guess-{attempt}"));
        let (status, retry, body) = token(guess, "203.0.113.66").await;
        match status {
            401 => continue,
            429 => {
                throttled = Some((attempt, retry, body));
                break;
            }
            other => panic!("guess {attempt}: {other} {body}"),
        }
    }
    let (attempt, retry, body) = throttled.expect("20 wrong secrets and no 429");
    assert!(attempt <= 8, "first 429 only at try {attempt}");
    assert!(retry.is_some(), "429 without Retry-After");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    // Even the right secret from the guessing address waits out the block…
    let (status, _, _) = token(basic("svc", SECRET), "203.0.113.66").await;
    assert_eq!(status, 429);
    // …while the rightful client, elsewhere, is never locked out.
    for _ in 0..3 {
        let (status, _, body) = token(basic("svc", SECRET), "198.51.100.7").await;
        assert_eq!(status, 200, "{body}");
        assert!(body["access_token"].is_string());
    }
    let throttles = wxauth::audit::AuditFilter {
        kind: Some(wxauth::audit::AuditKind::ClientAuthThrottled),
        limit: 10,
        ..Default::default()
    };
    let events = app.state.audit.list(&throttles).await.unwrap();
    assert!(!events.is_empty(), "no client_auth_throttled audit event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_endpoints_are_limited_per_client_ip() {
    let app = sqlite(&[
        ("WXAUTH_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("WXAUTH_LIMIT_MA_SESSION", "3/h"),
        ("WXAUTH_LIMIT_COMPONENT_PUSH", "2/h"),
    ])
    .await;
    for _ in 0..3 {
        let (status, _) = session(&app, "not-a-code", Some("203.0.113.5")).await;
        assert_eq!(status, 400);
    }
    let response = app
        .http
        .post(app.url("/api/wechat/ma/session"))
        .header("x-forwarded-for", "203.0.113.5")
        .json(&json!({ "appId": MP, "code": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().get("retry-after").is_some());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    // Another address is unaffected.
    let code = app.sim.mint_js_code(MP, "alice").unwrap();
    let (status, body) = session(&app, &code, Some("198.51.100.9")).await;
    assert_eq!(status, 200, "{body}");

    // Refused component pushes are limited too.
    let push = |n: u32| {
        app.http
            .post(app.url(&format!(
                "/api/wechat/component/ticket?timestamp=1&nonce={n}&msg_signature=bad"
            )))
            .header("x-forwarded-for", "203.0.113.77")
            .body("<xml><AppId>wxd000000000000004</AppId><Encrypt>bm9wZQ==</Encrypt></xml>")
            .send()
    };
    assert_eq!(push(1).await.unwrap().status().as_u16(), 400);
    assert_eq!(push(2).await.unwrap().status().as_u16(), 400);
    assert_eq!(push(3).await.unwrap().status().as_u16(), 429);
}

/// The Redis the shared-limit tests use, or `None` to skip them.
pub(crate) fn test_redis() -> Option<String> {
    match std::env::var("WXAUTH_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("WXAUTH_TEST_REQUIRE_REDIS").as_deref() != Ok("1"),
                "WXAUTH_TEST_REDIS_URL is not set but WXAUTH_TEST_REQUIRE_REDIS=1"
            );
            None
        }
    }
}

pub(crate) fn fresh_prefix() -> String {
    format!("wxauth-test-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_enforce_one_limit() {
    let Some(redis) = test_redis() else { return };
    let prefix = fresh_prefix();
    let settings = [
        ("WXAUTH_REDIS_URL", redis.as_str()),
        ("WXAUTH_REDIS_PREFIX", prefix.as_str()),
        ("WXAUTH_LIMIT_MA_SESSION", "4/h"),
    ];
    let first = sqlite(&settings).await;
    let second = sqlite(&settings).await;
    let mut statuses = Vec::new();
    for n in 0..6 {
        let app = if n % 2 == 0 { &first } else { &second };
        statuses.push(session(app, "not-a-code", None).await.0);
    }
    // Four in all, not four per instance.
    assert_eq!(statuses, [400, 400, 400, 400, 429, 429]);
}

/// A throwaway redis-server on a free port, killed on drop.
struct ThrowawayRedis {
    child: std::process::Child,
    url: String,
}

impl ThrowawayRedis {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) => {
                assert!(
                    std::env::var("WXAUTH_TEST_REQUIRE_REDIS").as_deref() != Ok("1"),
                    "redis-server cannot be started: {error}"
                );
                return None;
            }
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self {
            child,
            url: format!("redis://127.0.0.1:{port}/0"),
        })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_mid_test_requests_are_still_answered() {
    let Some(mut redis) = ThrowawayRedis::start() else {
        return;
    };
    let app = sqlite(&[
        ("WXAUTH_REDIS_URL", redis.url.as_str()),
        ("WXAUTH_LIMIT_MA_SESSION", "3/h"),
    ])
    .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ask = || {
        http.post(app.url("/api/wechat/ma/session"))
            .json(&json!({ "appId": MP, "code": "not-a-code" }))
            .send()
    };
    assert_eq!(ask().await.unwrap().status().as_u16(), 400);
    redis.stop();
    // Answered without Redis, and still limited (by this instance's own counters).
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(ask().await.expect("answered").status().as_u16());
    }
    // This instance's own counters start empty: three more pass, then the limit holds.
    assert_eq!(statuses, [400, 400, 400, 429, 429]);
    let code = app.sim.mint_js_code(MP, "alice").unwrap();
    let (status, _) = session(&app, &code, None).await;
    assert!(status == 429 || status == 200);
}

// ---------- 3. bounded state ----------

const REDIRECT: &str = "https://app.example.com/cb";

fn authorize_url(app: &TestApp, extra: &str) -> String {
    app.url(&format!(
        "/oauth/authorize?response_type=code&client_id=web&redirect_uri={}&scope=openid&state=s1{extra}",
        urlencode(REDIRECT)
    ))
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn stored_states(app: &TestApp) -> Vec<entity::auth_state::Model> {
    use sea_orm::EntityTrait;
    entity::auth_state::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_authorization_requests_are_refused_and_never_stored() {
    let app = sqlite(&[]).await;
    confidential_client(&app, "web", &["authorization_code"], &[REDIRECT]).await;

    // Unknown parameters are dropped before anything is stored.
    let junk = "j".repeat(6000);
    let response = app
        .http
        .get(authorize_url(&app, &format!("&utm_junk={junk}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 302);
    let states = stored_states(&app).await;
    assert_eq!(states.len(), 1);
    assert!(
        !states[0].next_url.contains("utm_junk"),
        "{}",
        states[0].next_url
    );
    assert!(states[0].next_url.len() < 1000);

    // A known parameter over its cap (a 2 kB login_hint: under the URI cap, over the hint's
    // 256 B, and checked nowhere else): an error page, nothing stored.
    let response = app
        .http
        .get(authorize_url(
            &app,
            &format!("&login_hint={}", "h".repeat(2000)),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(stored_states(&app).await.len(), 1);
    // Twenty 60 kB requests: each refused with a page (414), none stored.
    for _ in 0..20 {
        let response = app
            .http
            .get(authorize_url(
                &app,
                &format!("&state2={}", "x".repeat(60_000)),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 414);
        let page = response.text().await.unwrap();
        assert!(
            page.contains("<html") || page.contains("<!doctype"),
            "{page}"
        );
    }
    assert_eq!(stored_states(&app).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sign_in_states_are_capped_per_ip() {
    let app = sqlite(&[("WXAUTH_LIVE_STATES_PER_IP", "3")]).await;
    confidential_client(&app, "web", &["authorization_code"], &[REDIRECT]).await;
    for _ in 0..3 {
        let response = app.http.get(authorize_url(&app, "")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 302);
    }
    let response = app.http.get(authorize_url(&app, "")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().get("retry-after").is_some());
    assert_eq!(stored_states(&app).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_refusals_have_the_callers_shape() {
    let app = sqlite(&[]).await;
    let json_of = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.text().await.unwrap();
        (status, kind, body)
    };
    // 413 on the token endpoint: JSON.
    let (status, kind, body) = json_of(
        app.http
            .post(app.url("/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&pad={}",
                "p".repeat(70_000)
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 413);
    assert!(
        kind.starts_with("application/json") && body.contains("invalid_request"),
        "{kind} {body}"
    );
    // 414 on an API path: JSON; on a page path: HTML.
    let long = "q".repeat(10_000);
    let (status, kind, _) = json_of(
        app.http
            .get(app.url(&format!("/api/wechat/user/by-unionid?unionId={long}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, kind.starts_with("application/json")), (414, true));
    let (status, kind, _) = json_of(
        app.http
            .get(app.url(&format!("/oauth/authorize?client_id={long}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, kind.starts_with("text/html")), (414, true));
    // 431: JSON.
    let (status, kind, _) = json_of(
        app.http
            .get(app.url("/oauth/userinfo"))
            .header("x-padding", "h".repeat(20_000))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, kind.starts_with("application/json")), (431, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoints_503_says_when_to_retry() {
    let app = sqlite(&[]).await;
    confidential_client(&app, "mp", &["mini_program"], &[]).await;
    let code = app.sim.mint_js_code(MP, "alice").unwrap();
    app.sim.fail_http(10);
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .header("authorization", basic("mp", SECRET))
        .form(&[
            ("grant_type", "mini_program"),
            ("appId", MP),
            ("code", &code),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().get("retry-after").is_some());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
}

/// The seed's identity, and a client `flow` that may present a ticket or not and refreshes.
async fn flow_client_and_identity(app: &TestApp) {
    crate::harness::seed_identity(app).await;
    ClientFixture::new("flow", SECRET, &["flow", "refresh_token"])
        .scopes(&["flow"])
        .flow_ticket(wxauth::oauth::FlowTicketPolicy::Optional)
        .register(app)
        .await;
}

/// Take SQLite's write lock from outside the app, as a `sqlite3` shell left in a transaction
/// would; `ROLLBACK` on the connection returned lets it go. One connection, so that the lock is
/// taken and let go on the same one.
async fn hold_write_lock(app: &TestApp) -> sea_orm::DatabaseConnection {
    use sea_orm::{ConnectOptions, ConnectionTrait, Database};
    let mut options = ConnectOptions::new(app.database_url().to_owned());
    options.max_connections(1).sqlx_logging(false);
    let holder = Database::connect(options).await.unwrap();
    holder.execute_unprepared("BEGIN IMMEDIATE").await.unwrap();
    holder
}

/// A page's answer to a request that met SQLite's lock held past a writer's wait: it came after
/// that wait (9–18 s), and it is a 503 page that says when to try again.
fn assert_a_503_page_after_the_wait(response: &reqwest::Response, took: Duration) {
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(18)).contains(&took),
        "answered after {took:?}"
    );
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

/// A token request's answer: status, whether it says when to retry, and the body.
async fn token_answer(
    app: &TestApp,
    auth: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, bool, Value) {
    let mut request = app.http.post(app.url("/oauth/token")).form(form);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Someone else holds SQLite's write lock longer than a writer waits for it (10 s): a `sqlite3`
/// shell left in a transaction, a backup tool. A `flow` grant (its refresh token), a Mini
/// Program sign-in (its session), a `client_credentials` grant (its audit event) and a
/// revocation (its family) cannot be written: each says 503 with `Retry-After`, not 500 (nor a
/// token the audit trail does not name), and each works again once the lock is let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_locked_longer_than_a_writer_waits_is_a_503_not_a_500() {
    use crate::harness::{SEED_APPID, SEED_OPENID, SEED_UNIONID};
    use sea_orm::ConnectionTrait;
    let app = sqlite(&[]).await;
    flow_client_and_identity(&app).await;
    let flow = || {
        app.http
            .post(app.url("/oauth/token"))
            .header("authorization", basic("flow", SECRET))
            .form(&[
                ("grant_type", "flow"),
                ("appId", SEED_APPID),
                ("openId", SEED_OPENID),
                ("unionId", SEED_UNIONID),
            ])
            .send()
    };
    let sign_in = || {
        let code = app.sim.mint_js_code(MP, "alice").unwrap();
        app.http
            .post(app.url("/api/wechat/ma/session"))
            .json(&json!({ "appId": MP, "code": code }))
            .send()
    };
    confidential_client(&app, "svc", &["client_credentials"], &[]).await;
    let client_credentials = || {
        app.http
            .post(app.url("/oauth/token"))
            .header("authorization", basic("svc", SECRET))
            .form(&[("grant_type", "client_credentials"), ("scope", "api")])
            .send()
    };
    let issued: Value = flow().await.unwrap().json().await.unwrap();
    let refresh_token = issued["refresh_token"].as_str().unwrap().to_owned();
    let revoke = || {
        app.http
            .post(app.url("/oauth/revoke"))
            .header("authorization", basic("flow", SECRET))
            .form(&[("token", refresh_token.as_str())])
            .send()
    };
    let session = sign_in().await.unwrap();
    assert_eq!(session.status().as_u16(), 200);
    let session: Value = session.json().await.unwrap();
    let redeem = |ticket: &str| {
        app.http
            .post(app.url("/oauth/token"))
            .header("authorization", basic("flow", SECRET))
            .form(&[
                ("grant_type", "flow"),
                ("appId", MP),
                ("openId", session["openId"].as_str().unwrap()),
                ("unionId", session["unionId"].as_str().unwrap_or_default()),
                ("ticket", ticket),
            ])
            .send()
    };
    let ticket = session["ticket"].as_str().unwrap();
    assert_eq!(client_credentials().await.unwrap().status().as_u16(), 200);

    let holder = hold_write_lock(&app).await;
    let started = Instant::now();
    let timed = |request| async move {
        let answer = request.await;
        (answer, started.elapsed())
    };
    let (
        (flow_answer, flow_took),
        (sign_in_answer, sign_in_took),
        (cc_answer, cc_took),
        (revoke_answer, revoke_took),
        (ticket_answer, ticket_took),
        (wrong_ticket_answer, wrong_ticket_took),
    ) = tokio::join!(
        timed(flow()),
        timed(sign_in()),
        timed(client_credentials()),
        timed(revoke()),
        timed(redeem(ticket)),
        timed(redeem("a-ticket-never-minted"))
    );
    holder.execute_unprepared("ROLLBACK").await.unwrap();
    // client_credentials writes nothing but its audit event: a token whose event cannot be
    // written is not sent. A ticket cannot be spent, right or wrong: both get the same 503, so
    // the lock tells a guesser nothing.
    // The lock's wait once: not again for each write retried after it (that was 20 s). The two
    // ticket spends share one group commit: one that reaches it after the other's batch started
    // (the machine is busy) waits for its own batch, which meets the lock again.
    let once = Duration::from_secs(9)..Duration::from_secs(18);
    let at_most_twice = Duration::from_secs(9)..Duration::from_secs(28);
    for (what, response, took, bound) in [
        ("flow", flow_answer, flow_took, &once),
        ("sign-in", sign_in_answer, sign_in_took, &once),
        ("client_credentials", cc_answer, cc_took, &once),
        ("revocation", revoke_answer, revoke_took, &once),
        (
            "flow with its ticket",
            ticket_answer,
            ticket_took,
            &at_most_twice,
        ),
        (
            "flow with a wrong ticket",
            wrong_ticket_answer,
            wrong_ticket_took,
            &at_most_twice,
        ),
    ] {
        assert!(bound.contains(&took), "{what} answered after {took:?}");
        let response = response.unwrap();
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 503, "{what}: {body}");
        assert!(retry_after.is_some(), "{what}: 503 without Retry-After");
        assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
    }

    // Everything works again; the ticket was not spent by the attempt the lock refused.
    for (what, response) in [
        ("flow", flow().await),
        ("sign-in", sign_in().await),
        ("revocation", revoke().await),
        ("client_credentials", client_credentials().await),
        ("the ticket", redeem(ticket).await),
    ] {
        let status = response.unwrap().status().as_u16();
        assert_eq!(status, 200, "{what} after the lock");
    }
}

/// A token request to send, perhaps more than once: what it is, its client's authorization
/// (none for a public client) and its form.
struct TokenRequest {
    what: &'static str,
    auth: Option<String>,
    form: Vec<(&'static str, String)>,
}

impl TokenRequest {
    fn new(what: &'static str, auth: Option<&str>, form: &[(&'static str, &str)]) -> Self {
        Self {
            what,
            auth: auth.map(str::to_owned),
            form: form.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }

    async fn send(&self, app: &TestApp) -> (u16, bool, Value) {
        let form: Vec<(&str, &str)> = self.form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        token_answer(app, self.auth.as_deref(), &form).await
    }
}

/// One request of each grant that spends what it is given, besides `flow`: a refresh of the
/// `web` client's refresh token, the exchange of a code not exchanged yet, and the first poll of
/// a device (`tv`) its person approved.
async fn spending_grant_requests(app: &TestApp) -> [TokenRequest; 3] {
    use crate::oidc::{Browser, DESKTOP, REDIRECT, SECRET as OIDC_SECRET, oidc_client, pkce};
    oidc_client(app, "web", false, true).await;
    crate::device_flow::tv_client(app).await;
    let web = basic("web", OIDC_SECRET);
    let mut browser = Browser::new(app, DESKTOP, "alice");
    let mut code_exchange = async || {
        let (verifier, challenge) = pkce();
        let code = crate::races::code(&mut browser, &challenge).await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ];
        TokenRequest::new("authorization_code", Some(&web), &form)
    };
    let (status, _, issued) = code_exchange().await.send(app).await;
    assert_eq!(status, 200, "{issued}");
    let refresh = TokenRequest::new(
        "refresh_token",
        Some(&web),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", issued["refresh_token"].as_str().unwrap()),
        ],
    );
    let exchange = code_exchange().await;
    let device = crate::device_flow::start(app, "openid").await;
    crate::device_flow::person_answers(&mut browser, &device, "approve").await;
    let poll = TokenRequest::new(
        "device_code",
        None,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", "tv"),
            ("device_code", device["device_code"].as_str().unwrap()),
        ],
    );
    [refresh, exchange, poll]
}

/// A person approving a device while SQLite's write lock stays taken past a writer's wait: the
/// consent form's answer must record the approval, so it cannot go on. It answers a page, 503
/// with `Retry-After` (never a 500), and loses nothing: the device still waits, and the same
/// consent form sent again after the lock approves it, so the device's next poll gets tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_approval_meeting_a_locked_database_gets_a_503_page_and_works_after() {
    use crate::device_flow::{code_form, enter, poll, start, tv_client};
    use crate::oidc::{Browser, DESKTOP, hidden_fields};
    use sea_orm::ConnectionTrait;
    let app = sqlite(&[]).await;
    tv_client(&app).await;
    let device = start(&app, "openid").await;
    let mut browser = Browser::new(&app, DESKTOP, "alice");
    let form = code_form(&mut browser, &app.url("/device")).await;
    let (status, consent) = enter(&mut browser, &form, device["user_code"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{consent}");
    let mut approval = hidden_fields(&consent);
    approval.push(("decision".into(), "approve".into()));
    let url = app.url("/oauth/device");

    let holder = hold_write_lock(&app).await;
    let started = Instant::now();
    let response = browser
        .send(app.http.post(&url).form(&approval), &url)
        .await;
    let took = started.elapsed();
    holder.execute_unprepared("ROLLBACK").await.unwrap();
    assert_a_503_page_after_the_wait(&response, took);
    let (status, body) = poll(&app, &device).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("authorization_pending")),
        "{body}"
    );

    let response = browser
        .send(app.http.post(&url).form(&approval), &url)
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Your device is signed in")
    );
    app.clock.advance(5);
    let (status, body) = poll(&app, &device).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string(), "{body}");
}

/// oxide-auth's refresh and code grants hear only `Err(())` from their primitives; the token
/// issuer and the code store keep why a statement failed. While SQLite's write lock stays taken
/// past a writer's wait, a refresh (its rotation), a code exchange (its spend) and an approved
/// device's first poll (its spend) each answer 503 with `Retry-After`, not 500, and spend
/// nothing: after the lock the same refresh token, code and device code each get tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_a_code_and_a_device_poll_answer_a_locked_database_503_and_spend_nothing() {
    use sea_orm::ConnectionTrait;
    let app = sqlite(&[]).await;
    let requests = spending_grant_requests(&app).await;

    let holder = hold_write_lock(&app).await;
    let started = Instant::now();
    let timed = |request: &'static str, answer| async move {
        let answer = answer.await;
        (request, answer, started.elapsed())
    };
    let [refresh, exchange, poll] = &requests;
    let answers = tokio::join!(
        timed(refresh.what, refresh.send(&app)),
        timed(exchange.what, exchange.send(&app)),
        timed(poll.what, poll.send(&app)),
    );
    holder.execute_unprepared("ROLLBACK").await.unwrap();
    for (what, (status, retry_after, body), took) in [answers.0, answers.1, answers.2] {
        assert!(
            (Duration::from_secs(9)..Duration::from_secs(18)).contains(&took),
            "{what} answered after {took:?}"
        );
        assert_eq!(status, 503, "{what}: {body}");
        assert!(retry_after, "{what}: 503 without Retry-After");
        assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
    }

    // Nothing was spent by the refused attempts: the same requests now get tokens.
    for request in &requests {
        let (status, _, body) = request.send(&app).await;
        assert_eq!(status, 200, "{} after the lock: {body}", request.what);
        assert!(body["access_token"].is_string(), "{}: {body}", request.what);
    }
}

/// A refresh whose rotation has committed cannot be retried: the presented token is spent, so
/// sent again it is a reuse, which revokes the family. When the database stops answering right
/// after the rotation (on PostgreSQL a trigger on the rotation's insert puts a view in place of
/// the accounts table that fails as a lost conflict, SQLSTATE `40001`, on the account read that
/// signing the access token makes), the answer is 500 `server_error` without `Retry-After`, not
/// a 503 that tells the client to send the spent token again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_failing_after_its_rotation_committed_answers_500_not_503() {
    use sea_orm::{ConnectionTrait, Database};
    let Some(app) = TestApp::spawn_with(Backend::Postgres, Options::default()).await else {
        return;
    };
    let [refresh, _, _] = spending_grant_requests(&app).await;
    let db = Database::connect(app.database_url()).await.unwrap();
    for statement in [
        "CREATE FUNCTION conflict_now() RETURNS boolean LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'staged' USING ERRCODE = 'serialization_failure'; END $$",
        "CREATE FUNCTION accounts_stop_answering() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           ALTER TABLE flow_user RENAME TO flow_user_real; \
           CREATE VIEW flow_user AS SELECT * FROM flow_user_real WHERE conflict_now(); \
           RETURN NULL; END $$",
        "CREATE TRIGGER staged_after_rotation AFTER INSERT ON refresh_token \
         FOR EACH ROW EXECUTE FUNCTION accounts_stop_answering()",
    ] {
        db.execute_unprepared(statement).await.unwrap();
    }
    let (status, retry_after, body) = refresh.send(&app).await;
    for statement in [
        "DROP TRIGGER staged_after_rotation ON refresh_token",
        "DROP VIEW IF EXISTS flow_user",
        "ALTER TABLE IF EXISTS flow_user_real RENAME TO flow_user",
    ] {
        db.execute_unprepared(statement).await.unwrap();
    }
    assert_eq!(
        (status, retry_after, &body["error"]),
        (500, false, &json!("server_error")),
        "{body}"
    );
    assert!(body.get("refresh_token").is_none(), "{body}");

    // Sent again, the spent token is refused.
    let (status, _, body) = refresh.send(&app).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_grant")),
        "{body}"
    );
}

/// A page that must write while SQLite's write lock stays taken past a writer's wait: the
/// authorization request of a browser not signed in stores its sign-in state, so it cannot go
/// on. It answers a page, 503 with `Retry-After` (never a 500, never a redirect to the client),
/// stores nothing, and the same request works once the lock is let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_request_meeting_a_locked_database_gets_a_503_page_and_works_after() {
    use sea_orm::ConnectionTrait;
    let app = sqlite(&[]).await;
    confidential_client(&app, "web", &["authorization_code"], &[REDIRECT]).await;

    let holder = hold_write_lock(&app).await;
    let started = Instant::now();
    let response = app.http.get(authorize_url(&app, "")).send().await.unwrap();
    let took = started.elapsed();
    holder.execute_unprepared("ROLLBACK").await.unwrap();
    assert_a_503_page_after_the_wait(&response, took);
    assert!(stored_states(&app).await.is_empty());

    let response = app.http.get(authorize_url(&app, "")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 302);
    assert_eq!(stored_states(&app).await.len(), 1);
}

/// A grant says "try again" (503) only when sending the same request again can succeed. On
/// PostgreSQL a trigger makes every refresh-token insert fail as a serialization failure (SQLSTATE
/// `40001`, what a lost conflict looks like). A `flow` grant without a ticket and a refresh (its
/// rotation rolls back) spent nothing: 503, and they work once the trigger is gone. A `flow` grant
/// with a login ticket or a web-view ticket, a code exchange and an approved device's poll fail
/// after spending their ticket, code or device code: 500, since sent again they are refused as
/// replays (and a client obeying a `Retry-After` would be audited as replaying a ticket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_answers_503_only_when_sending_it_again_can_succeed() {
    use crate::harness::{SEED_APPID, SEED_OPENID, SEED_UNIONID};
    use sea_orm::{ConnectionTrait, Database};
    let Some(app) = TestApp::spawn_with(Backend::Postgres, Options::default()).await else {
        return;
    };
    flow_client_and_identity(&app).await;
    let flow = TokenRequest::new(
        "flow without a ticket",
        Some(&basic("flow", SECRET)),
        &[
            ("grant_type", "flow"),
            ("appId", SEED_APPID),
            ("openId", SEED_OPENID),
            ("unionId", SEED_UNIONID),
        ],
    );
    let front = crate::mini_program::client(&app, "front", &["flow", "refresh_token"]).await;
    let alice = crate::mini_program::sign_in(&app, "alice").await;
    let with_ticket = TokenRequest::new(
        "flow with a ticket",
        Some(&front),
        &[
            ("grant_type", "flow"),
            ("appId", MP),
            ("openId", alice["openId"].as_str().unwrap()),
            ("unionId", alice["unionId"].as_str().unwrap_or_default()),
            ("ticket", alice["ticket"].as_str().unwrap()),
        ],
    );
    // A web-view ticket from the same Mini Program session, for the same client.
    let web_view_ticket =
        crate::web_view::ticket(&app, alice["sessionId"].as_str().unwrap(), "front").await;
    let with_web_view_ticket = TokenRequest::new(
        "flow with a web-view ticket",
        Some(&front),
        &[("grant_type", "flow"), ("ticket", web_view_ticket.as_str())],
    );
    let [refresh, exchange, poll] = spending_grant_requests(&app).await;
    let unavailable = (503, true, json!("temporarily_unavailable"));
    let failed = (500, false, json!("server_error"));
    // Each request, what it answers while the inserts fail, and its status afterwards.
    let cases = [
        (flow, &unavailable, 200),
        (refresh, &unavailable, 200),
        (with_ticket, &failed, 400),
        (with_web_view_ticket, &failed, 400),
        (exchange, &failed, 400),
        (poll, &failed, 400),
    ];

    let db = Database::connect(app.database_url()).await.unwrap();
    db.execute_unprepared(
        "CREATE FUNCTION fail_as_a_conflict() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'staged' USING ERRCODE = 'serialization_failure'; END $$",
    )
    .await
    .unwrap();
    db.execute_unprepared(
        "CREATE TRIGGER staged_conflict BEFORE INSERT ON refresh_token \
         FOR EACH ROW EXECUTE FUNCTION fail_as_a_conflict()",
    )
    .await
    .unwrap();
    let mut answers = Vec::new();
    for (request, _, _) in &cases {
        let (status, retry_after, body) = request.send(&app).await;
        answers.push((status, retry_after, body["error"].clone()));
    }
    db.execute_unprepared("DROP TRIGGER staged_conflict ON refresh_token")
        .await
        .unwrap();
    for ((request, expected, _), answer) in cases.iter().zip(&answers) {
        assert_eq!(answer, *expected, "{}", request.what);
    }

    // What was not spent works now; what was spent is refused.
    for (request, _, after) in &cases {
        let (status, _, body) = request.send(&app).await;
        assert_eq!(status, *after, "{} after: {body}", request.what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_300k_row_janitor_sweep_leaves_requests_flowing() {
    use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait};
    // Limits off: the probing requests below are failed authentications from one address.
    let app = sqlite(&[("WXAUTH_LIMITS", "off")]).await;
    app.state
        .db
        .execute_unprepared(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)
             INSERT INTO refresh_token (token_hash, family_id, client_id, owner_id, scope, extensions, expires_at, created_at)
             SELECT printf('h%d', i), printf('f%d', i), 'c', 's', 'flow', '{}', 1, 0 FROM n",
        )
        .await
        .unwrap();
    let db = app.state.db.clone();
    let sweep = tokio::spawn(async move { wxauth::janitor::sweep(&db, 1_000_000, 86_400).await });
    // Requests that write (an audit row each) while the sweep runs.
    let mut latencies = Vec::new();
    while !sweep.is_finished() && latencies.len() < 2000 {
        let started = Instant::now();
        let status = app
            .http
            .post(app.url("/oauth/token"))
            .header("authorization", basic("nobody", "wrong-secret-0123456789"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 401);
        latencies.push(started.elapsed());
    }
    let gone = sweep.await.unwrap().unwrap();
    assert!(gone >= 300_000, "{gone}");
    let left = entity::refresh_token::Entity::find()
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(left, 0);
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    // A loose bound (the figure itself belongs in bench/): one 300k-row DELETE stalled writers
    // for seconds.
    assert!(
        p99 < Duration::from_secs(2),
        "p99 {p99:?} during the sweep ({} requests)",
        latencies.len()
    );
}

// ---------- 4. parallel first logins, repeated codes ----------

backend_tests! {
    async fn a_hundred_parallel_first_logins_of_one_user_never_fail(app: TestApp) {
        app.sim.add_user(SimUser::new("newcomer", "Newcomer"));
        let barrier = Arc::new(Barrier::new(100));
        let mut logins = Vec::new();
        for _ in 0..100 {
            let code = app.sim.mint_js_code(MP, "newcomer").unwrap();
            let (barrier, http, url) = (barrier.clone(), app.http.clone(), app.url("/api/wechat/ma/session"));
            logins.push(tokio::spawn(async move {
                barrier.wait().await;
                let response = http.post(url).json(&json!({ "appId": MP, "code": code })).send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap_or(Value::Null))
            }));
        }
        let mut open_ids = std::collections::BTreeSet::new();
        let mut new = 0;
        for login in logins {
            let (status, body) = login.await.unwrap();
            assert_eq!(status, 200, "{body}");
            open_ids.insert(body["openId"].as_str().unwrap().to_owned());
            new += usize::from(body["isNew"] == true);
        }
        assert_eq!(open_ids.len(), 1);
        assert_eq!(new, 1, "exactly one login is the first");
    }

    async fn the_same_js_code_twice_at_once_gets_the_same_answer(app: TestApp) {
        let second = TestApp::spawn_with(app.backend, Options { share: Some(app.sharing()), ..Default::default() })
            .await
            .unwrap();
        // WeChat's own latency keeps the first exchange under way while the others arrive.
        app.sim.set_latency(Duration::from_millis(300));
        for round in 0..5 {
            let code = app.sim.mint_js_code(MP, "alice").unwrap();
            let barrier = Arc::new(Barrier::new(4));
            let mut tries = Vec::new();
            // Twice on each instance.
            for url in [app.url("/api/wechat/ma/session"), app.url("/api/wechat/ma/session"),
                        second.url("/api/wechat/ma/session"), second.url("/api/wechat/ma/session")] {
                let (barrier, http, code) = (barrier.clone(), app.http.clone(), code.clone());
                tries.push(tokio::spawn(async move {
                    barrier.wait().await;
                    let response = http.post(url).json(&json!({ "appId": MP, "code": code })).send().await.unwrap();
                    let status = response.status().as_u16();
                    (status, response.json::<Value>().await.unwrap_or(Value::Null))
                }));
            }
            let mut sessions = Vec::new();
            for attempt in tries {
                let (status, body) = attempt.await.unwrap();
                assert_eq!(status, 200, "round {round}: {body}");
                assert_eq!(body["openId"], app.sim.openid(MP, "alice"));
                sessions.push(body["sessionId"].clone());
            }
            // Every answer is usable: a repeat of the code does not end the sessions the other
            // answers opened (they hold the same session_key).
            for session in sessions {
                let response = app.http.post(app.url("/api/wechat/ma/phone"))
                    .json(&json!({ "sessionId": session, "code": app.sim.mint_phone_code(MP, "alice").unwrap() }))
                    .send().await.unwrap();
                let status = response.status().as_u16();
                assert_eq!(status, 200, "round {round}: {}", response.text().await.unwrap_or_default());
            }
        }
        // One exchange per code reached WeChat.
        assert_eq!(app.sim.calls("/sns/jscode2session"), 5);
    }

    async fn repeats_of_many_codes_at_once_each_get_their_own_answer(app: TestApp) {
        let second = TestApp::spawn_with(app.backend, Options { share: Some(app.sharing()), ..Default::default() })
            .await
            .unwrap();
        // The exchanges finish together, so their verdicts are stored together (one statement
        // per instance), and each repeat on the other instance must find its own code's.
        app.sim.set_latency(Duration::from_millis(300));
        let people: Vec<String> = (0..8).map(|i| format!("crowd-{i}")).collect();
        for person in &people {
            app.sim.add_user(SimUser::new(person, person));
        }
        for round in 0..3 {
            let barrier = Arc::new(Barrier::new(2 * people.len()));
            let mut tries = Vec::new();
            for person in &people {
                let code = app.sim.mint_js_code(MP, person).unwrap();
                for url in [app.url("/api/wechat/ma/session"), second.url("/api/wechat/ma/session")] {
                    let (barrier, http, code, person) = (barrier.clone(), app.http.clone(), code.clone(), person.clone());
                    tries.push(tokio::spawn(async move {
                        barrier.wait().await;
                        let response = http.post(url).json(&json!({ "appId": MP, "code": code })).send().await.unwrap();
                        let status = response.status().as_u16();
                        (person, status, response.json::<Value>().await.unwrap_or(Value::Null))
                    }));
                }
            }
            for attempt in tries {
                let (person, status, body) = attempt.await.unwrap();
                assert_eq!(status, 200, "round {round}, {person}: {body}");
                assert_eq!(body["openId"], app.sim.openid(MP, &person), "round {round}: {person} got another's answer");
            }
            assert_eq!(app.sim.calls("/sns/jscode2session"), (round + 1) * people.len() as u64, "one exchange per code");
        }
    }
}

/// On MariaDB a sign-in's statement can be chosen as a deadlock's victim (bench/ met one in
/// 3,650 logins of one person at 32 connections: a 500). Staged here: another transaction holds
/// the person's session row, the sign-in's `DELETE` of replaced sessions waits for it while
/// holding the identity index's entry, and that transaction then asks for the entry. The database
/// ends the sign-in's statement (the lighter of the two), which changed nothing; the sign-in
/// sends it again, and once the other transaction ends, the person is signed in: 200, not a 503
/// to retry by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_chosen_as_a_deadlock_victim_sends_its_write_again_and_succeeds() {
    use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, TransactionTrait};
    let Some(app) = TestApp::spawn_with(Backend::MySql, Options::default()).await else {
        return;
    };
    let sign_in = |user: &str| {
        let code = app.sim.mint_js_code(MP, user).unwrap();
        app.http
            .post(app.url("/api/wechat/ma/session"))
            .json(&json!({ "appId": MP, "code": code }))
            .send()
    };
    let first: Value = sign_in("alice").await.unwrap().json().await.unwrap();
    let open_id = first["openId"].as_str().unwrap().to_owned();

    let other = Database::connect(app.database_url()).await.unwrap();
    let statement = |sql: &str, values: Vec<sea_orm::Value>| {
        Statement::from_sql_and_values(DbBackend::MySql, sql, values)
    };
    other
        .execute_unprepared("CREATE TABLE IF NOT EXISTS deadlock_ballast (n INT)")
        .await
        .unwrap();
    let session = other
        .query_one_raw(statement(
            "SELECT id_hash FROM mini_session WHERE appid = ? AND open_id = ?",
            vec![MP.into(), open_id.clone().into()],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<String>("", "id_hash")
        .unwrap();
    let holder = other.begin().await.unwrap();
    // Rows of its own, so that the database ends the sign-in's statement, not this one.
    holder
        .execute_unprepared(
            "INSERT INTO deadlock_ballast (n) WITH RECURSIVE s(n) AS \
             (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 200) SELECT n FROM s",
        )
        .await
        .unwrap();
    holder
        .execute_raw(statement(
            "UPDATE mini_session SET decrypt_failures = decrypt_failures + 1 WHERE id_hash = ?",
            vec![session.into()],
        ))
        .await
        .unwrap();

    let deadlocks = || async {
        other
            .query_one_raw(statement(
                "SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'",
                vec![],
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<String>("", "Value")
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let deadlocks_before = deadlocks().await;
    let retries = [("backend", "mysql")];
    let metrics_before = crate::metrics::scrape(&app).await;
    let waiting = tokio::spawn(sign_in("alice"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waits = other
            .query_all_raw(statement(
                "SELECT trx_state FROM information_schema.INNODB_TRX",
                vec![],
            ))
            .await
            .unwrap()
            .iter()
            .filter(|row| {
                row.try_get::<String>("", "trx_state")
                    .is_ok_and(|state| state == "LOCK WAIT")
            })
            .count();
        if waits > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline && !waiting.is_finished(),
            "the sign-in never waited for the row"
        );
        // The table is a cache that InnoDB refreshes only when it was not read for 100 ms.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    holder
        .execute_raw(statement(
            "SELECT id_hash FROM mini_session WHERE appid = ? AND open_id = ? FOR UPDATE",
            vec![MP.into(), open_id.clone().into()],
        ))
        .await
        .unwrap();
    // The deadlock happened (the sign-in's statement was its victim); the sign-in, sending its
    // write again, now waits for the row as before.
    assert_eq!(
        deadlocks().await,
        deadlocks_before + 1,
        "no deadlock was staged"
    );
    holder.rollback().await.unwrap();
    let response = waiting.await.unwrap().unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["openId"], open_id.as_str());
    assert!(body["sessionId"].is_string(), "{body}");
    // Operators see it: the retry is counted (at least this one; other tests share the recorder).
    let metrics_after = crate::metrics::scrape(&app).await;
    let counted =
        |scrape: &str| crate::metrics::series(scrape, "wxauth_db_deadlock_retries_total", &retries);
    assert!(
        counted(&metrics_after) >= counted(&metrics_before) + 1.0,
        "the retry was not counted"
    );
    other
        .execute_unprepared("DROP TABLE deadlock_ballast")
        .await
        .unwrap();
}

/// What PostgreSQL and MariaDB answer the loser of a real deadlock (two transactions updating
/// two rows in opposite orders) is told apart as worth retrying, and a broken statement is not:
/// the classification the 503 above rests on, on both servers that have deadlocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_is_told_apart_on_both_servers() {
    use sea_orm::{ConnectionTrait, Database, DbErr, TransactionTrait};
    use wxauth::db_error::{is_deadlock, is_unavailable, is_worth_retrying};
    for backend in [Backend::Postgres, Backend::MySql] {
        let Some(app) = TestApp::spawn_with(backend, Options::default()).await else {
            continue;
        };
        let db = Database::connect(app.database_url()).await.unwrap();
        db.execute_unprepared("CREATE TABLE deadlock_pair (id INT PRIMARY KEY, v INT)")
            .await
            .unwrap();
        db.execute_unprepared("INSERT INTO deadlock_pair (id, v) VALUES (1, 0), (2, 0)")
            .await
            .unwrap();
        let (first, second) = (db.begin().await.unwrap(), db.begin().await.unwrap());
        let update = |id: i32| format!("UPDATE deadlock_pair SET v = v + 1 WHERE id = {id}");
        first.execute_unprepared(&update(1)).await.unwrap();
        second.execute_unprepared(&update(2)).await.unwrap();
        let (second_row, first_row) = (update(2), update(1));
        let (a, b) = tokio::join!(first.execute_unprepared(&second_row), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            second.execute_unprepared(&first_row).await
        });
        let errors: Vec<DbErr> = [a.err(), b.err()].into_iter().flatten().collect();
        assert_eq!(errors.len(), 1, "{backend:?}: one loser, {errors:?}");
        assert!(is_deadlock(&errors[0]), "{backend:?}: {}", errors[0]);
        assert!(is_worth_retrying(&errors[0]) && !is_unavailable(&errors[0]));
        let _ = first.rollback().await;
        let _ = second.rollback().await;

        let broken = db
            .execute_unprepared("INSERT INTO deadlock_pair (id, v) VALUES (1, 0)")
            .await
            .unwrap_err();
        assert!(!is_worth_retrying(&broken), "{backend:?}: {broken}");
        db.execute_unprepared("DROP TABLE deadlock_pair")
            .await
            .unwrap();
    }
}
