//! Starts the real wxauth application on 127.0.0.1:0 against a fresh database and gives tests a
//! client, the shared state and a clock they can move.
//!
//! Backends: every test written with [`backend_tests!`] runs once per database. SQLite always
//! runs (a file in a temporary directory); PostgreSQL and MariaDB run when
//! `WXAUTH_TEST_POSTGRES_URL` / `WXAUTH_TEST_MYSQL_URL` are set, each test in a database of its own
//! that is dropped afterwards. With `WXAUTH_TEST_REQUIRE_ALL_DBS=1` (set by .ci/run) a missing URL
//! fails the test instead of skipping it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use sea_orm::{ConnectionTrait, Database};
use tokio::task::JoinHandle;
use wxauth::clock::{ManualClock, SharedClock};
use wxauth::config::Config;
use wxauth::simulator::{Simulator, SimulatorConfig, demo};
use wxauth::state::AppState;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

/// A test database and how to get rid of it.
pub struct TestDb {
    pub url: String,
    cleanup: Option<(String, String)>, // (server url, database name)
    _dir: Option<TempDir>,
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("wxauth-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn server_url(backend: Backend) -> Option<String> {
    let var = match backend {
        Backend::Sqlite => return Some(String::new()),
        Backend::Postgres => "WXAUTH_TEST_POSTGRES_URL",
        Backend::MySql => "WXAUTH_TEST_MYSQL_URL",
    };
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("WXAUTH_TEST_REQUIRE_ALL_DBS").as_deref() == Ok("1") {
                panic!("{var} is not set but WXAUTH_TEST_REQUIRE_ALL_DBS=1");
            }
            None
        }
    }
}

fn with_database(server: &str, name: &str) -> String {
    let mut url = url::Url::parse(server).expect("database server URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

impl TestDb {
    /// A fresh, empty database, or `None` when the backend is not configured (test skipped).
    pub async fn create(backend: Backend) -> Option<Self> {
        let server = server_url(backend)?;
        match backend {
            Backend::Sqlite => {
                let dir = TempDir::new();
                let url = format!("sqlite://{}?mode=rwc", dir.0.join("wxauth.db").display());
                Some(Self {
                    url,
                    cleanup: None,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres | Backend::MySql => {
                let name = format!("wxt_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(server.as_str())
                    .await
                    .expect("connect to test server");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                admin.close().await.ok();
                Some(Self {
                    url: with_database(&server, &name),
                    cleanup: Some((server, name)),
                    _dir: None,
                })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((server, name)) = self.cleanup.take() {
            // Drop the database from a thread of its own: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    if let Ok(admin) = Database::connect(server.as_str()).await {
                        let force = if server.starts_with("postgres") {
                            " WITH (FORCE)"
                        } else {
                            ""
                        };
                        let _ = admin
                            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}{force}"))
                            .await;
                        admin.close().await.ok();
                    }
                });
            })
            .join();
        }
    }
}

/// A running wxauth, wired to its own WeChat simulator (demo apps and users registered on both
/// sides, ticket pushes aimed at this wxauth's `/api/wechat/component/ticket`).
pub struct TestApp {
    pub base: String,
    pub state: AppState,
    /// The WeChat this wxauth talks to.
    pub sim: Simulator,
    /// The simulator's base URL (`http://127.0.0.1:PORT`).
    pub sim_base: String,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    pub backend: Backend,
    master_key: String,
    server: JoinHandle<()>,
    sim_server: JoinHandle<()>,
    db: TestDb,
}

/// Options for [`TestApp::spawn_with`].
#[derive(Default, Clone)]
pub struct Options {
    /// Extra environment-style settings (e.g. `WXAUTH_JWT_ALG`).
    pub env: Vec<(String, String)>,
    /// Run as a second instance of another test app: its database and its simulator.
    pub share: Option<SharedWith>,
    /// Serve what `wxauth dev` adds (the demo section of the front page, `/m/oidc_demo`).
    pub dev_demo: bool,
}

/// What a second instance shares with the first ([`TestApp::sharing`]).
#[derive(Clone)]
pub struct SharedWith {
    pub database_url: String,
    /// Every instance has the same master key, as in production.
    pub master_key: String,
    pub sim: Simulator,
    pub sim_base: String,
    /// One clock, as instances on hosts with synchronised clocks share the wall clock.
    pub clock: Arc<ManualClock>,
}

impl TestApp {
    /// Start wxauth on `backend`; `None` when the backend is not configured.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, Options::default()).await
    }

    pub async fn spawn_with(backend: Backend, options: Options) -> Option<Self> {
        // `WXAUTH_TEST_LOG=warn` (an EnvFilter) shows the server's log while debugging a test.
        if let Ok(filter) = std::env::var("WXAUTH_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let db = match &options.share {
            Some(shared) => TestDb {
                url: shared.database_url.clone(),
                cleanup: None,
                _dir: None,
            },
            None => TestDb::create(backend).await?,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let (sim, sim_base, sim_server) = match &options.share {
            Some(shared) => (
                shared.sim.clone(),
                shared.sim_base.clone(),
                tokio::spawn(async {}),
            ),
            None => {
                let sim = Simulator::new(SimulatorConfig::demo(Some(format!(
                    "{base}/api/wechat/component/ticket"
                ))));
                let (sim_addr, sim_server) = sim
                    .spawn("127.0.0.1:0".parse().expect("addr"))
                    .await
                    .expect("start simulator");
                (sim, format!("http://{sim_addr}"), sim_server)
            }
        };
        let mut vars: HashMap<String, String> = HashMap::new();
        vars.insert("WXAUTH_LISTEN".into(), addr.to_string());
        vars.insert("WXAUTH_PUBLIC_URL".into(), base.clone());
        vars.insert("DATABASE_URL".into(), db.url.clone());
        let master_key = match &options.share {
            Some(shared) => shared.master_key.clone(),
            None => wxauth::vault::MasterKey::generate().to_base64(),
        };
        vars.insert("WXAUTH_MASTER_KEY".into(), master_key.clone());
        vars.insert(
            "WXAUTH_REDIRECT_ALLOWLIST".into(),
            "app.example.com,127.0.0.1".into(),
        );
        vars.insert("WXAUTH_WECHAT_API_BASE".into(), sim_base.clone());
        vars.insert("WXAUTH_WECHAT_OPEN_BASE".into(), sim_base.clone());
        for (k, v) in options.env {
            vars.insert(k, v);
        }
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config");
        let clock = match &options.share {
            Some(shared) => shared.clock.clone(),
            None => Arc::new(ManualClock::default()),
        };
        let shared: SharedClock = clock.clone();
        let state = AppState::build(config, shared).await.expect("build state");
        if options.share.is_none() {
            for app in demo::registry_apps() {
                state.apps.add(app).await.expect("register demo app");
            }
        }
        let server_state = state.clone();
        let mut router = wxauth::app(state.clone());
        if options.dev_demo {
            router = router.layer(axum::Extension(wxauth::dev::dev_demo(&base, &sim_base)));
        }
        let server = tokio::spawn(async move {
            let _ =
                wxauth::serve_router(listener, server_state, router, std::future::pending()).await;
        });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        Some(Self {
            base,
            state,
            sim,
            sim_base,
            clock,
            http,
            backend,
            master_key,
            server,
            sim_server,
            db,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Deliver a fresh component_verify_ticket for the demo component to this wxauth, signed
    /// and encrypted as WeChat does, and wait until it is stored.
    pub async fn push_component_ticket(&self) -> String {
        self.sim
            .push_component_ticket(demo::COMPONENT_APPID)
            .await
            .expect("ticket push accepted")
    }

    pub fn database_url(&self) -> &str {
        &self.db.url
    }

    /// What a second instance needs to share this one's database and simulator.
    pub fn sharing(&self) -> SharedWith {
        SharedWith {
            database_url: self.db.url.clone(),
            master_key: self.master_key.clone(),
            sim: self.sim.clone(),
            sim_base: self.sim_base.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        self.sim_server.abort();
    }
}

/// Write each test once; get one `#[tokio::test]` per backend (`<name>::sqlite`, `::postgres`,
/// `::mysql`). The body receives a started [`TestApp`]; with a leading `options: EXPR;` every app
/// is started with those [`Options`].
#[macro_export]
macro_rules! backend_tests {
    (options: $options:expr; $(async fn $name:ident($app:ident: TestApp) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn body($app: $crate::harness::TestApp) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(app) = $crate::harness::TestApp::spawn_with($crate::harness::Backend::Sqlite, $options).await {
                        body(app).await
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = $crate::harness::TestApp::spawn_with($crate::harness::Backend::Postgres, $options).await {
                        body(app).await
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mysql() {
                    if let Some(app) = $crate::harness::TestApp::spawn_with($crate::harness::Backend::MySql, $options).await {
                        body(app).await
                    }
                }
            }
        )*
    };
    ($(async fn $name:ident($app:ident: TestApp) $body:block)*) => {
        $crate::backend_tests! {
            options: $crate::harness::Options::default();
            $(async fn $name($app: TestApp) $body)*
        }
    };
}

/// A client registered straight through the registry, the way most tests need one: confidential
/// with the given secret, 600 s access and 3600 s refresh tokens, tickets required; each method
/// changes one thing.
pub struct ClientFixture(wxauth::oauth::NewClient);

impl ClientFixture {
    pub fn new(id: &str, secret: &str, grants: &[&str]) -> Self {
        Self(wxauth::oauth::NewClient {
            client_id: id.into(),
            secret: Some(wxauth::secret::Secret::new(secret)),
            grant_types: grants.iter().map(|g| g.to_string()).collect(),
            access_token_ttl: 600,
            refresh_token_ttl: 3600,
            flow_ticket: wxauth::oauth::FlowTicketPolicy::Required,
            ..wxauth::oauth::NewClient::default()
        })
    }

    pub fn scopes(mut self, scopes: &[&str]) -> Self {
        self.0.scopes = scopes.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn redirect_uris(mut self, uris: &[&str]) -> Self {
        self.0.redirect_uris = uris.iter().map(|u| u.to_string()).collect();
        self
    }

    /// No secret: the client names itself and proves itself with PKCE.
    pub fn public(mut self) -> Self {
        self.0.public = true;
        self.0.secret = None;
        self
    }

    pub fn first_party(mut self, first_party: bool) -> Self {
        self.0.first_party = first_party;
        self
    }

    pub fn flow_ticket(mut self, policy: wxauth::oauth::FlowTicketPolicy) -> Self {
        self.0.flow_ticket = policy;
        self
    }

    pub fn introspect(mut self, allowed: bool) -> Self {
        self.0.introspect = allowed;
        self
    }

    pub async fn register(self, app: &TestApp) {
        app.state.clients.create(self.0).await.unwrap();
    }
}

/// The seed example's official account and the identity of its example user.
pub const SEED_APPID: &str = "wxf6ea2272a8e77b2f";
pub const SEED_OPENID: &str = "o9fv7jpEvoKClBOB4uAi827ziSS8";
pub const SEED_UNIONID: &str = "oKUtLw254UHAui910x77zMGA1uLM";

/// The seed's official account registered and its example user's identity recorded, as if
/// WeChat had vouched for it (for the seed's bare `flow` request); returns the account id.
pub async fn seed_identity(app: &TestApp) -> i64 {
    seed_app(app).await;
    let (_, account, _) = app
        .state
        .users
        .record_identity(
            &wxauth::users::IdentityKey::new(
                SEED_APPID.parse().unwrap(),
                SEED_OPENID,
                Some(SEED_UNIONID),
            ),
            None,
            app.state.clock.now(),
        )
        .await
        .unwrap();
    account.id
}

/// The seed's official account registered (tickets for its identities are then redeemable).
pub async fn seed_app(app: &TestApp) {
    use wxauth::app_registry::{AppKind, NewApp};
    app.state
        .apps
        .add(NewApp {
            appid: SEED_APPID.into(),
            kind: AppKind::OfficialAccount,
            secret: Some(wxauth::secret::Secret::new("app-secret-0123456789")),
            component_appid: None,
            is_base: false,
            token: None,
            aes_key: None,
        })
        .await
        .unwrap();
}
