//! The WeChat adapter against the simulator on 127.0.0.1:0: code exchanges (single use, expiry,
//! `+ / =` codes), retries on busy, WeChat down or hanging → 503, quota, token invalidation, web
//! auth through a component, ticket pushes, and the token cache's single flight within one
//! instance and across two instances sharing one database (SQLite always; PostgreSQL and MariaDB
//! when `WXAUTH_TEST_POSTGRES_URL` / `WXAUTH_TEST_MYSQL_URL` are set).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use wxauth::app_registry::AppRegistry;
use wxauth::clock::{ManualClock, SharedClock};
use wxauth::error::AppError;
use wxauth::simulator::{Simulator, SimulatorConfig, demo};
use wxauth::vault::{MasterKey, Vault};
use wxauth::wechat::{
    AppId, RetryPolicy, Scope, TokenCacheConfig, WeChat, WeChatClient, WeChatClientConfig,
    WeChatError,
};

use crate::harness::{Backend, TestDb};

fn appid(value: &str) -> AppId {
    AppId::parse(value).unwrap()
}

fn client_config(base: &str) -> WeChatClientConfig {
    let base = url::Url::parse(base).unwrap();
    let mut config = WeChatClientConfig::new(base.clone(), base);
    config.request_timeout = Duration::from_millis(700);
    config.connect_timeout = Duration::from_millis(500);
    config.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        budget: Duration::from_secs(5),
    };
    config
}

fn fast_cache() -> TokenCacheConfig {
    TokenCacheConfig {
        poll_interval: Duration::from_millis(20),
        ..TokenCacheConfig::default()
    }
}

/// Registers the demo apps in wxauth's `wx_app`, as `wxauth dev` does.
async fn register_demo_apps(db: &DatabaseConnection, vault: Arc<Vault>, clock: SharedClock) {
    let registry = AppRegistry::new(db.clone(), vault, clock);
    for app in demo::registry_apps() {
        registry.add(app).await.unwrap();
    }
}

/// A simulator, a database with the demo apps, and one adapter instance.
struct Rig {
    sim: Simulator,
    sim_base: String,
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: Arc<ManualClock>,
    wechat: Arc<WeChat>,
    _db: TestDb,
}

impl Rig {
    async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, SimulatorConfig::demo(None)).await
    }

    async fn start_with(backend: Backend, config: SimulatorConfig) -> Option<Self> {
        let test_db = TestDb::create(backend).await?;
        let db = wxauth::db::connect(&test_db.url).await.unwrap();
        wxauth::db::migrate(&db).await.unwrap();
        let sim = Simulator::new(config);
        let (addr, _server) = sim.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let sim_base = format!("http://{addr}");
        let vault = Arc::new(Vault::new(&MasterKey::generate()));
        let clock = Arc::new(ManualClock::default());
        register_demo_apps(&db, vault.clone(), clock.clone()).await;
        let wechat = Arc::new(Self::instance(&sim_base, &db, &vault, &clock).await);
        Some(Self {
            sim,
            sim_base,
            db,
            vault,
            clock,
            wechat,
            _db: test_db,
        })
    }

    /// Another adapter instance (its own memory cache and instance id) on the same database.
    async fn instance(
        sim_base: &str,
        db: &DatabaseConnection,
        vault: &Arc<Vault>,
        clock: &Arc<ManualClock>,
    ) -> WeChat {
        let client = WeChatClient::new(client_config(sim_base)).unwrap();
        // Each instance stands for a process of its own, with its own registry.
        let apps = AppRegistry::new(db.clone(), vault.clone(), clock.clone());
        WeChat::with_token_cache_config(
            client,
            apps,
            db.clone(),
            vault.clone(),
            clock.clone(),
            fast_cache(),
        )
    }
}

fn mini() -> AppId {
    appid(demo::MINI_PROGRAM_APPID)
}

fn into_status(error: WeChatError) -> (u16, String) {
    match AppError::from(error) {
        AppError::BadRequest(m) => (400, m),
        AppError::TemporarilyUnavailable(m) => (503, m),
        AppError::Internal(m) => (500, m),
        other => (0, other.to_string()),
    }
}

#[tokio::test]
async fn code_exchange_keeps_plus_slash_equals_and_is_single_use() {
    let rig = Rig::start(Backend::Sqlite).await.unwrap();
    let code = rig
        .sim
        .mint_js_code(demo::MINI_PROGRAM_APPID, "alice")
        .unwrap();
    assert!(code.contains('+') && code.contains('/') && code.contains('='));
    let session = rig.wechat.code_to_session(&mini(), &code).await.unwrap();
    assert_eq!(
        session.openid.as_str(),
        rig.sim.openid(demo::MINI_PROGRAM_APPID, "alice")
    );
    assert_eq!(
        session.unionid.as_ref().map(|u| u.as_str().to_owned()),
        rig.sim.unionid(demo::MINI_PROGRAM_APPID, "alice")
    );
    assert!(!format!("{session:?}").contains(session.session_key.expose()));

    let again = rig
        .wechat
        .code_to_session(&mini(), &code)
        .await
        .unwrap_err();
    assert!(matches!(again, WeChatError::CodeUsed), "{again:?}");
    let (status, message) = into_status(again);
    assert_eq!(status, 400);
    assert!(message.contains("already used"));
}

#[tokio::test]
async fn code_expires_after_five_minutes() {
    let rig = Rig::start(Backend::Sqlite).await.unwrap();
    let code = rig
        .sim
        .mint_js_code(demo::MINI_PROGRAM_APPID, "bob")
        .unwrap();
    rig.sim.advance_clock(301);
    let error = rig
        .wechat
        .code_to_session(&mini(), &code)
        .await
        .unwrap_err();
    assert!(matches!(error, WeChatError::InvalidCode { errcode: 40029 }));
    assert_eq!(into_status(error).0, 400);
}

#[tokio::test]
async fn busy_is_retried_then_succeeds() {
    let rig = Rig::start(Backend::Sqlite).await.unwrap();
    let code = rig
        .sim
        .mint_js_code(demo::MINI_PROGRAM_APPID, "alice")
        .unwrap();
    rig.sim.fail_busy(2);
    rig.wechat.code_to_session(&mini(), &code).await.unwrap();
    assert_eq!(rig.sim.calls("/sns/jscode2session"), 3);
}

#[tokio::test]
async fn busy_after_retries_is_temporarily_unavailable() {
    let rig = Rig::start(Backend::Sqlite).await.unwrap();
    let code = rig
        .sim
        .mint_js_code(demo::MINI_PROGRAM_APPID, "alice")
        .unwrap();
    rig.sim.fail_busy(100);
    let started = Instant::now();
    let error = rig
        .wechat
        .code_to_session(&mini(), &code)
        .await
        .unwrap_err();
    assert!(matches!(error, WeChatError::Busy));
    assert_eq!(rig.sim.calls("/sns/jscode2session"), 3);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(into_status(error).0, 503);
}

#[tokio::test]
async fn http_errors_are_retried_for_token_fetches() {
    let rig = Rig::start(Backend::Sqlite).await.unwrap();
    rig.sim.fail_http(2);
    rig.wechat.app_access_token(&mini()).await.unwrap();
    assert_eq!(rig.sim.calls("/cgi-bin/stable_token"), 3);
}

#[tokio::test]
async fn wechat_down_is_unavailable_quickly() {
    let rig = Rig::start(Backend::Sqlite).await.unwrap();
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let down = Rig::instance(&dead_base, &rig.db, &rig.vault, &rig.clock).await;
    let started = Instant::now();
    let error = down.code_to_session(&mini(), "whatever").await.unwrap_err();
    assert!(matches!(error, WeChatError::Unreachable(_)), "{error:?}");
    assert!(!error.to_string().contains("secret"), "{error}");
    assert!(!error.to_string().contains(demo::MINI_PROGRAM_SECRET));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(into_status(error).0, 503);
}

#[tokio::test]
async fn hanging_wechat_times_out_and_code_calls_are_not_replayed() {
    let rig = Rig::start(Backend::Sqlite).await.unwrap();
    let code = rig
        .sim
        .mint_js_code(demo::MINI_PROGRAM_APPID, "alice")
        .unwrap();
    rig.sim.hang(1);
    let started = Instant::now();
    let error = rig
        .wechat
        .code_to_session(&mini(), &code)
        .await
        .unwrap_err();
    assert!(matches!(error, WeChatError::Unreachable(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The code may have been consumed by the request that timed out: not replayed.
    assert_eq!(rig.sim.calls("/sns/jscode2session"), 1);
    assert_eq!(into_status(error).0, 503);

    // A token fetch is safe to replay: one hang, then success.
    rig.sim.hang(1);
    rig.wechat.app_access_token(&mini()).await.unwrap();
    assert_eq!(rig.sim.calls("/cgi-bin/stable_token"), 2);
}

#[tokio::test]
async fn quota_exhausted_is_unavailable() {
    let rig = Rig::start(Backend::Sqlite).await.unwrap();
    rig.sim.exhaust_quota(demo::MINI_PROGRAM_APPID);
    let error = rig.wechat.app_access_token(&mini()).await.unwrap_err();
    assert!(
        matches!(error, WeChatError::DailyQuotaExceeded),
        "{error:?}"
    );
    let (status, message) = into_status(error);
    assert_eq!(status, 503);
    assert!(message.contains("quota"));
    rig.sim.clear_faults();
    rig.wechat.app_access_token(&mini()).await.unwrap();
}

#[tokio::test]
async fn daily_quota_counts_token_fetches() {
    let mut config = SimulatorConfig::demo(None);
    config.rules.daily_token_quota = 2;
    let rig = Rig::start_with(Backend::Sqlite, config).await.unwrap();
    let secret = wxauth::wechat::AppSecret::new(demo::MINI_PROGRAM_SECRET);
    let client = rig.wechat.client();
    client.legacy_token(&mini(), &secret).await.unwrap();
    client.stable_token(&mini(), &secret, true).await.unwrap();
    let error = client.legacy_token(&mini(), &secret).await.unwrap_err();
    assert!(matches!(error, WeChatError::DailyQuotaExceeded));
}

#[tokio::test]
async fn wrong_secret_is_a_configuration_error_not_a_500() {
    let rig = Rig::start(Backend::Sqlite).await.unwrap();
    let secret = wxauth::wechat::AppSecret::new("wrong");
    let error = rig
        .wechat
        .client()
        .stable_token(&mini(), &secret, false)
        .await
        .unwrap_err();
    assert!(matches!(error, WeChatError::InvalidAppSecret));
    assert_eq!(into_status(error).0, 503);
}

#[tokio::test]
async fn invalid_token_is_dropped_and_the_call_retried_once() {
    let rig = Rig::start(Backend::Sqlite).await.unwrap();
    rig.wechat.app_access_token(&mini()).await.unwrap();
    // WeChat's token expires while wxauth still thinks it fresh (e.g. another party forced a
    // refresh): the next call sees 42001, refetches and succeeds.
    rig.sim.advance_clock(7201);
    let code = rig
        .sim
        .mint_phone_code(demo::MINI_PROGRAM_APPID, "alice")
        .unwrap();
    let phone = rig.wechat.user_phone_number(&mini(), &code).await.unwrap();
    assert_eq!(phone.phone_number, "13800000001");
    assert_eq!(phone.watermark.appid, demo::MINI_PROGRAM_APPID);
    assert_eq!(rig.sim.calls("/cgi-bin/stable_token"), 2);
    assert_eq!(rig.sim.calls("/wxa/business/getuserphonenumber"), 2);
}

#[tokio::test]
async fn token_cache_single_flight_under_50_concurrent_callers() {
    let rig = Rig::start(Backend::Sqlite).await.unwrap();
    rig.sim.set_latency(Duration::from_millis(100));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let wechat = rig.wechat.clone();
        tasks.push(tokio::spawn(async move {
            wechat.app_access_token(&mini()).await
        }));
    }
    let mut tokens = std::collections::HashSet::new();
    for task in tasks {
        tokens.insert(task.await.unwrap().unwrap().expose().to_owned());
    }
    assert_eq!(tokens.len(), 1);
    assert_eq!(rig.sim.calls("/cgi-bin/stable_token"), 1);
}

#[tokio::test]
async fn token_is_refreshed_ahead_of_expiry() {
    let rig = Rig::start(Backend::Sqlite).await.unwrap();
    rig.wechat.app_access_token(&mini()).await.unwrap();
    rig.clock.advance(7200 - 600);
    rig.wechat.app_access_token(&mini()).await.unwrap();
    assert_eq!(rig.sim.calls("/cgi-bin/stable_token"), 1);
    rig.clock.advance(301); // now inside the 300 s refresh-ahead window
    rig.wechat.app_access_token(&mini()).await.unwrap();
    assert_eq!(rig.sim.calls("/cgi-bin/stable_token"), 2);
}

/// Two adapter instances sharing one database, 50 concurrent callers each: one upstream fetch
/// per expiry.
async fn two_instances_fetch_once_per_expiry(backend: Backend) {
    let Some(rig) = Rig::start(backend).await else {
        eprintln!("skipping {backend:?}: no database URL configured");
        return;
    };
    let other = Arc::new(Rig::instance(&rig.sim_base, &rig.db, &rig.vault, &rig.clock).await);
    // A separate connection pool too, as a second server would have.
    rig.sim.set_latency(Duration::from_millis(150));
    for round in 1..=2u64 {
        let mut tasks = Vec::new();
        for i in 0..100 {
            let wechat = if i % 2 == 0 {
                rig.wechat.clone()
            } else {
                other.clone()
            };
            tasks.push(tokio::spawn(async move {
                wechat.app_access_token(&mini()).await
            }));
        }
        let mut tokens = std::collections::HashSet::new();
        for task in tasks {
            tokens.insert(task.await.unwrap().unwrap().expose().to_owned());
        }
        assert_eq!(
            tokens.len(),
            1,
            "{backend:?}: every caller got the same token"
        );
        assert_eq!(rig.sim.calls("/cgi-bin/stable_token"), round, "{backend:?}");
        // Past expiry for the next round.
        rig.clock.advance(7200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_sqlite() {
    two_instances_fetch_once_per_expiry(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_postgres() {
    two_instances_fetch_once_per_expiry(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_mysql() {
    two_instances_fetch_once_per_expiry(Backend::MySql).await;
}

/// Follows the simulator's authorize page for `user` and returns the redirect's query.
async fn authorize_as(url: &str, user: &str) -> std::collections::HashMap<String, String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http
        .get(url)
        .header("cookie", format!("wxsim_user={user}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302, "{:?}", response.text().await);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

#[tokio::test]
async fn two_hop_web_auth_through_the_component() {
    let rig = Rig::start(Backend::Sqlite).await.unwrap();
    let component = appid(demo::COMPONENT_APPID);
    let ticket = rig.sim.issue_component_ticket(demo::COMPONENT_APPID);
    rig.wechat
        .store_component_ticket(&component, &ticket)
        .await
        .unwrap();
    let redirect = url::Url::parse("https://app.example.com/cb?x=1").unwrap();

    // Hop 1: entry account, silent.
    let entry = appid(demo::ENTRY_ACCOUNT_APPID);
    let url = rig
        .wechat
        .authorize_url(&entry, &redirect, Scope::SnsapiBase, "st4te1")
        .await
        .unwrap();
    assert!(url.contains("component_appid=") && url.ends_with("#wechat_redirect"));
    let query = authorize_as(&url, "alice").await;
    assert_eq!(query["state"], "st4te1");
    assert_eq!(query["appid"], demo::ENTRY_ACCOUNT_APPID);
    assert_eq!(query["x"], "1");
    let token = rig
        .wechat
        .web_access_token(&entry, &query["code"])
        .await
        .unwrap();
    assert_eq!(
        token.openid.as_str(),
        rig.sim.openid(demo::ENTRY_ACCOUNT_APPID, "alice")
    );
    assert!(token.unionid.is_none());
    assert_eq!(token.granted_scope(), Some(Scope::SnsapiBase));

    // Hop 2: base account, userinfo: unionid and profile.
    let base = appid(demo::BASE_ACCOUNT_APPID);
    let url = rig
        .wechat
        .authorize_url(&base, &redirect, Scope::SnsapiUserinfo, "st4te2")
        .await
        .unwrap();
    let query = authorize_as(&url, "alice").await;
    let token = rig
        .wechat
        .web_access_token(&base, &query["code"])
        .await
        .unwrap();
    let unionid = token.unionid.clone().unwrap();
    assert_eq!(
        Some(unionid.as_str().to_owned()),
        rig.sim.unionid(demo::MINI_PROGRAM_APPID, "alice"),
        "same Open Platform, same unionid"
    );
    let info = rig
        .wechat
        .web_user_info(&base, &token.access_token, &token.openid)
        .await
        .unwrap();
    assert_eq!(info.nickname, "Alice 爱丽丝");
    assert_eq!(info.unionid, Some(unionid));
    assert_eq!(rig.sim.calls("/cgi-bin/component/api_component_token"), 1);

    // The code of hop 2 is single use.
    let again = rig
        .wechat
        .web_access_token(&base, &query["code"])
        .await
        .unwrap_err();
    assert!(matches!(again, WeChatError::CodeUsed));
}

#[tokio::test]
async fn component_token_without_ticket_is_not_configured() {
    let rig = Rig::start(Backend::Sqlite).await.unwrap();
    let error = rig
        .wechat
        .component_access_token(&appid(demo::COMPONENT_APPID))
        .await
        .unwrap_err();
    assert!(matches!(error, WeChatError::NotConfigured(_)), "{error:?}");
    assert_eq!(into_status(error).0, 503);
    // A ticket WeChat never issued is refused upstream with 61006.
    rig.wechat
        .store_component_ticket(&appid(demo::COMPONENT_APPID), "ticket@@@forged")
        .await
        .unwrap();
    let error = rig
        .wechat
        .component_access_token(&appid(demo::COMPONENT_APPID))
        .await
        .unwrap_err();
    assert!(matches!(error, WeChatError::ComponentTicketInvalid));
}

#[tokio::test]
async fn ticket_push_is_received_verified_and_used() {
    // A receiver standing in for wxauth's /api/wechat/component/ticket.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_addr = listener.local_addr().unwrap();
    let mut config = SimulatorConfig::demo(Some(format!(
        "http://{receiver_addr}/api/wechat/component/ticket"
    )));
    config.ticket_push_interval = Duration::from_secs(3600);
    let rig = Rig::start_with(Backend::Sqlite, config).await.unwrap();
    let wechat = rig.wechat.clone();
    let app = axum::Router::new().route(
        "/api/wechat/component/ticket",
        axum::routing::post(
            move |axum::extract::Query(params): axum::extract::Query<
                wxauth::wechat::PushParams,
            >,
                  body: String| {
                let wechat = wechat.clone();
                async move {
                    match wechat.receive_component_push(&params, &body).await {
                        Ok(_) => "success".to_owned(),
                        Err(error) => format!("error: {error}"),
                    }
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let ticket = rig
        .sim
        .push_component_ticket(demo::COMPONENT_APPID)
        .await
        .unwrap();
    assert!(ticket.starts_with("ticket@@@"));
    rig.wechat
        .component_access_token(&appid(demo::COMPONENT_APPID))
        .await
        .unwrap();
    assert_eq!(rig.sim.calls("/cgi-bin/component/api_component_token"), 1);

    // The background pusher pushes at start too.
    let pusher = rig.sim.spawn_ticket_pusher();
    let deadline = Instant::now() + Duration::from_secs(5);
    while rig.sim.current_component_ticket(demo::COMPONENT_APPID) == Some(ticket.clone()) {
        assert!(Instant::now() < deadline, "pusher did not push");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pusher.abort();
}

#[tokio::test]
async fn authorizer_tokens_via_query_auth_and_refresh() {
    let rig = Rig::start(Backend::Sqlite).await.unwrap();
    let component = appid(demo::COMPONENT_APPID);
    let ticket = rig.sim.issue_component_ticket(demo::COMPONENT_APPID);
    rig.wechat
        .store_component_ticket(&component, &ticket)
        .await
        .unwrap();
    let code = rig
        .sim
        .authorize_component(demo::COMPONENT_APPID, demo::BASE_ACCOUNT_APPID)
        .unwrap();
    let authorizer = rig.wechat.query_auth(&component, &code).await.unwrap();
    assert_eq!(authorizer.as_str(), demo::BASE_ACCOUNT_APPID);
    rig.wechat
        .authorizer_access_token(&authorizer)
        .await
        .unwrap();
    assert_eq!(rig.sim.calls("/cgi-bin/component/api_authorizer_token"), 1);
    // Cached.
    rig.wechat
        .authorizer_access_token(&authorizer)
        .await
        .unwrap();
    assert_eq!(rig.sim.calls("/cgi-bin/component/api_authorizer_token"), 1);
}
