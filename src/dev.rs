//! `wxauth dev`: the real server on embedded defaults for a first look — a SQLite file in the
//! working directory, the WeChat simulator in-process with demo apps registered on both sides, a
//! demo client whose fresh secret is printed, the H5 landing page with a flow-only client of its
//! own, and a list of things to try (among them a link that walks the H5 two-hop sign-in). It
//! listens on loopback only: the simulator's control API would let anyone mint codes.

use std::net::SocketAddr;

use axum::Extension;

use crate::app_registry::AppRegistryError;
use crate::clock::SharedClock;
use crate::config::{Config, ConfigError};
use crate::http::h5::{ENTRY_BUILD_PATH, LANDING_PATH, LandingClient};
use crate::http::pages::DevDemo;
use crate::http::pages::OIDC_DEMO_PATH;
use crate::oauth::client_registry::{ClientRegistry, DEFAULT_ACCESS_TTL, DEFAULT_REFRESH_TTL};
use crate::oauth::{FlowTicketPolicy, NewClient};
use crate::simulator::{Simulator, SimulatorConfig, demo};
use crate::state::{AppState, StartError};

/// The demo client's id.
pub const DEMO_CLIENT_ID: &str = "demo";
/// The flow-only client of the landing page `/m/flow_landing`.
pub const LANDING_CLIENT_ID: &str = "demo-landing";
/// The public client of the OpenID Connect demo page `/m/oidc_demo`.
pub const SPA_CLIENT_ID: &str = "demo-spa";

/// Set to `1` by compose.dev.yaml: `wxauth dev` runs in a container whose ports are published on
/// the host's loopback only, so it may listen on the container's unspecified address.
pub const IN_CONTAINER_VAR: &str = "WXAUTH_DEV_IN_CONTAINER";

/// Why `wxauth dev` stopped: the one line printed, and the exit status (2 for configuration, 1
/// otherwise).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DevError {
    pub status: u8,
    pub message: String,
}

impl DevError {
    fn new(status: u8, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<ConfigError> for DevError {
    fn from(error: ConfigError) -> Self {
        Self::new(2, error.to_string())
    }
}

impl From<StartError> for DevError {
    fn from(error: StartError) -> Self {
        let status = if matches!(error, StartError::Config(_)) {
            2
        } else {
            1
        };
        Self::new(status, error.to_string())
    }
}

/// Run the dev server until ctrl-c.
pub async fn run(clock: SharedClock) -> Result<(), DevError> {
    let mut config = Config::from_env()?;
    let listen = config.listen;
    // Inside a container, "all interfaces" are the container's own: the operator publishes them on
    // the host's loopback (compose.dev.yaml) and says so with WXAUTH_DEV_IN_CONTAINER=1.
    let in_container = std::env::var(IN_CONTAINER_VAR).is_ok_and(|v| v.trim() == "1");
    let allowed = listen.ip().is_loopback() || (in_container && listen.ip().is_unspecified());
    if !allowed {
        // The simulator's control API mints anyone's codes: it must not be reachable from
        // another machine.
        return Err(DevError::new(
            2,
            format!(
                "WXAUTH_LISTEN: wxauth dev listens on loopback only (127.0.0.1 or [::1]), since it serves the WeChat simulator's control API; got {listen} (in a container whose ports are published on the host's loopback, set {IN_CONTAINER_VAR}=1 to listen on 0.0.0.0)"
            ),
        ));
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| DevError::new(2, format!("WXAUTH_LISTEN: cannot listen on {listen}: {e}")))?;

    // The simulator stands in for WeChat on the next port (or any free one).
    let issuer = config.issuer();
    let simulator = Simulator::new(SimulatorConfig::demo(Some(format!(
        "{issuer}/api/wechat/component/ticket"
    ))));
    let preferred = SocketAddr::new(listen.ip(), listen.port().wrapping_add(1));
    let (sim_addr, _sim_task) = match simulator.spawn(preferred).await {
        Ok(bound) => bound,
        Err(_) => simulator
            .spawn(SocketAddr::new(listen.ip(), 0))
            .await
            .map_err(|e| DevError::new(1, format!("cannot start the WeChat simulator: {e}")))?,
    };
    // Browsers follow this address to the simulator's sign-in pages: on an unspecified listen
    // address (0.0.0.0 in a container) name it by loopback, which the container publishes.
    let sim_addr = if sim_addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), sim_addr.port())
    } else {
        sim_addr
    };
    let sim_base = format!("http://{sim_addr}");
    let sim_url = url::Url::parse(&sim_base)
        .map_err(|e| DevError::new(1, format!("simulator address: {e}")))?;
    config.wechat_api_base = sim_url.clone();
    config.wechat_open_base = sim_url;
    if let Some(host) = config.public_url.host_str() {
        let host = match config.public_url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        if !config.redirect_allowlist.contains(&host) {
            config.redirect_allowlist.push(host);
        }
    }

    let state = AppState::build(config, clock).await?;
    for app in demo::registry_apps() {
        match state.apps.add(app).await {
            Ok(()) | Err(AppRegistryError::AlreadyExists(_)) => {}
            Err(e) => return Err(DevError::new(1, format!("registering demo apps: {e}"))),
        }
    }
    let _pusher = simulator.spawn_ticket_pusher();
    let _authorizations = tokio::spawn(authorize_demo_accounts(state.clone(), simulator.clone()));
    let secret = ensure_client(&state.clients, demo_client(&issuer)).await?;
    let landing = LandingClient {
        client_id: LANDING_CLIENT_ID.into(),
        client_secret: ensure_client(&state.clients, landing_client()).await?,
        entry_appid: demo::ENTRY_ACCOUNT_APPID.into(),
    };
    ensure_spa_client(&state.clients, &issuer).await?;
    ensure_demo_admin(&state, &simulator).await?;
    print_welcome(&state, secret.expose(), &sim_base);
    // The landing page signs in with the flow-only landing client (see `http::h5`).
    let router = crate::app(state.clone())
        .layer(Extension(landing))
        .layer(Extension(dev_demo(&issuer, &sim_base)));
    crate::serve_router(listener, state, router, crate::shutdown_signal())
        .await
        .map_err(|e| DevError::new(1, format!("server error: {e}")))
}

/// What the front page shows under `wxauth dev`: the walks the banner prints.
pub fn dev_demo(issuer: &str, sim_base: &str) -> DevDemo {
    DevDemo {
        h5_walk: h5_demo_link(issuer),
        oidc_demo: format!("{issuer}{OIDC_DEMO_PATH}"),
        simulator: sim_base.to_owned(),
        mini_program_appid: demo::MINI_PROGRAM_APPID.into(),
        demo_client_id: DEMO_CLIENT_ID.into(),
    }
}

/// The demo client: every grant, for trying things with curl.
fn demo_client(issuer: &str) -> NewClient {
    NewClient {
        client_id: DEMO_CLIENT_ID.into(),
        secret: None,
        grant_types: [
            "client_credentials",
            "refresh_token",
            "flow",
            "mini_program",
            "authorization_code",
        ]
        .map(String::from)
        .to_vec(),
        scopes: ["flow", "openid", "profile", "api"]
            .map(String::from)
            .to_vec(),
        redirect_uris: vec![format!("{issuer}{LANDING_PATH}")],
        public: false,
        first_party: true,
        access_token_ttl: DEFAULT_ACCESS_TTL,
        refresh_token_ttl: DEFAULT_REFRESH_TTL,
        flow_ticket: FlowTicketPolicy::Required,
        ..NewClient::default()
    }
}

/// The client `/m/flow_landing` signs in with: its secret is handed to the browser, so it can do
/// nothing but redeem login tickets (`flow`, tickets required, no refresh tokens).
fn landing_client() -> NewClient {
    NewClient {
        client_id: LANDING_CLIENT_ID.into(),
        secret: None,
        grant_types: vec!["flow".into()],
        scopes: vec!["flow".into()],
        redirect_uris: vec![],
        public: false,
        first_party: true,
        access_token_ttl: DEFAULT_ACCESS_TTL,
        refresh_token_ttl: DEFAULT_REFRESH_TTL,
        flow_ticket: FlowTicketPolicy::Required,
        ..NewClient::default()
    }
}

/// The OpenID Connect demo page's client: public (PKCE), asks for consent, and redirects to this
/// run's own address (made afresh on every start, as the address may have changed).
async fn ensure_spa_client(clients: &ClientRegistry, issuer: &str) -> Result<(), DevError> {
    let fail =
        |e: crate::oauth::client_registry::ClientRegistryError| DevError::new(1, e.to_string());
    if clients
        .get(SPA_CLIENT_ID)
        .await
        .map_err(|e| DevError::new(1, e.to_string()))?
        .is_some()
    {
        clients.delete(SPA_CLIENT_ID).await.map_err(fail)?;
    }
    clients
        .create(NewClient {
            client_id: SPA_CLIENT_ID.into(),
            secret: None,
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["openid".into(), "profile".into()],
            redirect_uris: vec![format!("{issuer}{OIDC_DEMO_PATH}")],
            public: true,
            first_party: false,
            access_token_ttl: DEFAULT_ACCESS_TTL,
            refresh_token_ttl: DEFAULT_REFRESH_TTL,
            flow_ticket: FlowTicketPolicy::Required,
            ..NewClient::default()
        })
        .await
        .map_err(fail)?;
    Ok(())
}

/// Create `new` if needed and give it a fresh secret (secrets are stored hashed, so the only way
/// to show one is to make a new one).
async fn ensure_client(
    clients: &ClientRegistry,
    new: NewClient,
) -> Result<crate::secret::Secret, DevError> {
    let fail =
        |e: crate::oauth::client_registry::ClientRegistryError| DevError::new(1, e.to_string());
    let secret = ClientRegistry::generate_secret();
    let client_id = new.client_id.clone();
    if clients
        .get(&client_id)
        .await
        .map_err(|e| DevError::new(1, e.to_string()))?
        .is_none()
    {
        clients
            .create(NewClient {
                secret: Some(secret.clone()),
                ..new
            })
            .await
            .map_err(fail)?;
    } else {
        clients
            .set_secret(&client_id, &secret)
            .await
            .map_err(fail)?;
    }
    Ok(secret)
}

/// The demo admin of the console: Alice's account (made now, as her first QR sign-in would
/// make it) holds the admin role, so that scanning as Alice at `/admin` signs in.
/// The demo accounts authorize the demo component, as their owners would on the component's
/// authorization page: wxauth stores their authorizer refresh tokens, so their own APIs (the
/// JS-SDK's jsapi_ticket, the credential broker) work under `wxauth dev`. The exchange needs the
/// component's token, hence a pushed ticket: tried until the first push has arrived.
async fn authorize_demo_accounts(state: AppState, simulator: Simulator) {
    let Ok(component) = crate::wechat::AppId::parse(demo::COMPONENT_APPID) else {
        return;
    };
    for account in [demo::ENTRY_ACCOUNT_APPID, demo::BASE_ACCOUNT_APPID] {
        let code = match simulator.authorize_component(demo::COMPONENT_APPID, account) {
            Ok(code) => code,
            Err(error) => {
                tracing::warn!(%error, account, "demo account did not authorize the component");
                continue;
            }
        };
        for _ in 0..120 {
            match state.wechat.query_auth(&component, &code).await {
                Ok(_) => break,
                Err(error) => {
                    tracing::debug!(%error, account, "demo authorization not stored yet");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        }
    }
}

async fn ensure_demo_admin(state: &AppState, simulator: &Simulator) -> Result<(), DevError> {
    let appid = demo::WEBSITE_APPID;
    let app = crate::wechat::AppId::parse(appid)
        .map_err(|e| DevError::new(1, format!("the demo website's appid: {e}")))?;
    let vouched = crate::users::IdentityKey::new(
        app,
        simulator.openid(appid, DEMO_ADMIN),
        simulator.unionid(appid, DEMO_ADMIN),
    );
    let (_, account, _) = state
        .users
        .record_identity(&vouched, None, state.clock.now())
        .await
        .map_err(|e| DevError::new(1, format!("the demo admin's account: {e}")))?;
    crate::admin::Admin::new(state)
        .grant_admin(
            &crate::admin::Actor::cli("wxauth-dev"),
            &crate::admin::roles::AccountRef::Id(account.id),
        )
        .await
        .map_err(|e| DevError::new(1, format!("the demo admin's role: {e}")))?;
    Ok(())
}

/// The simulator user who is the console's demo admin.
pub const DEMO_ADMIN: &str = "alice";

/// The link that starts an H5 sign-in on the demo entry account and ends on the landing page,
/// with a login ticket only the landing page's client can redeem.
pub fn h5_demo_link(issuer: &str) -> String {
    let mut link = match url::Url::parse(&format!("{issuer}{ENTRY_BUILD_PATH}")) {
        Ok(link) => link,
        Err(_) => return format!("{issuer}{ENTRY_BUILD_PATH}"),
    };
    link.query_pairs_mut()
        .append_pair("appId", demo::ENTRY_ACCOUNT_APPID)
        .append_pair("next", &format!("{issuer}{LANDING_PATH}"))
        .append_pair("clientId", LANDING_CLIENT_ID)
        .append_pair("redirect", "1");
    link.to_string()
}

fn print_welcome(state: &AppState, secret: &str, sim_base: &str) {
    let base = state.config.issuer();
    let mp = demo::MINI_PROGRAM_APPID;
    println!();
    println!("wxauth dev is running at {base}  (WeChat simulator at {sim_base})");
    println!();
    println!("  front page:   open {base}/");
    println!("  demo client:  {DEMO_CLIENT_ID} / {secret}   (a new secret on every start)");
    println!("  health:       curl {base}/healthz");
    println!("  metadata:     curl {base}/.well-known/oauth-authorization-server");
    println!("  keys:         curl {base}/.well-known/jwks.json");
    println!(
        "  a token:      curl -u {DEMO_CLIENT_ID}:{secret} -d grant_type=client_credentials -d scope=api {base}/oauth/token"
    );
    println!(
        "  wx.login:     curl -H 'content-type: application/json' -d '{{\"appid\":\"{mp}\",\"user\":\"alice\"}}' {sim_base}/__sim/codes/js"
    );
    println!("  H5 sign-in:   open {}", h5_demo_link(&base));
    println!(
        "                (entry account -> base account -> {base}{LANDING_PATH}, in a browser)"
    );
    println!(
        "  OpenID:       open {base}{OIDC_DEMO_PATH}   (a single-page app signing in with WeChat)"
    );
    println!(
        "  console:      open {base}/admin   (scan the QR code as {DEMO_ADMIN}, the demo admin; or type WXAUTH_ADMIN_TOKEN if set)"
    );
    println!(
        "  mini program: curl -H 'content-type: application/json' -d '{{\"appId\":\"{mp}\",\"code\":\"CODE\"}}' {base}/api/wechat/ma/session"
    );
    println!();
    println!("Press ctrl-c to stop.");
}
