//! The `wxauth` command line: `serve`, `dev`, `migrate`, `simulator`, `keys`, `client`, `app`,
//! `user`, `audit`, `healthcheck`. Every change a command makes is written to the audit trail with
//! the actor `cli:USER`. `user`, `keys` and `client` go through the same core functions as the
//! admin API ([`crate::admin`]).
//!
//! Every command reads the same configuration as the server. Failures print one line to stderr
//! and exit with status 2 (configuration) or 1 (anything else); nothing panics. Logs go to stderr
//! in the format `WXAUTH_LOG_FORMAT` selects (JSON unless stderr is a terminal).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod resource;
mod webhook;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::admin::apps::AppSecrets;
use crate::admin::roles::AccountRef;
use crate::admin::users::UserQuery;
use crate::admin::{Actor, Admin, AdminError};
use crate::app_registry::{AppKind, NewApp};
use crate::audit::{AuditFilter, AuditKind, StoredEvent};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, LogFormat};
use crate::oauth::GrantType;
use crate::oauth::client_registry::IdTokenAlg;
use crate::oauth::client_registry::{
    CLIENT_CACHE_TTL, DEFAULT_ACCESS_TTL, DEFAULT_FAMILY_TTL, DEFAULT_REFRESH_TTL,
};
use crate::oauth::keys::KeyInfo;
use crate::oauth::{ClientChanges, ClientLogout, FlowTicketPolicy, NewClient, RegisteredClient};
use crate::secret::Secret;
use crate::state::{AppState, StartError};

#[derive(Parser, Debug)]
#[command(
    name = "wxauth",
    version,
    about = "OAuth2 / OpenID Connect for WeChat sign-in"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (configuration from the environment / .env).
    Serve,
    /// Run the server on embedded defaults with demo data, for a first look.
    Dev,
    /// Apply database migrations and exit.
    Migrate,
    /// Run the janitor's sweep once now (expired rows and old audit events) and exit.
    Janitor,
    /// Run the WeChat simulator alone (for tests and demos).
    Simulator {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: std::net::SocketAddr,
        /// Where to push component_verify_ticket (e.g. http://127.0.0.1:8080/api/wechat/component/ticket).
        #[arg(long)]
        push_ticket_to: Option<String>,
    },
    /// Manage JWT signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage OAuth2 clients.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Manage the resources (APIs, RFC 8707) access tokens may be issued for.
    Resource {
        #[command(subcommand)]
        command: resource::ResourceCommand,
    },
    /// Manage the WeChat apps wxauth talks to.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Find, inspect, disable, export or delete users (accounts and their WeChat identities).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Register and remove signed-webhook endpoints; show their deliveries.
    Webhook {
        #[command(subcommand)]
        command: webhook::WebhookCommand,
    },
    /// Grant, revoke and list the admin role (who may sign in to the console at /admin).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Show the audit trail, newest first.
    Audit(AuditArgs),
    /// Exit 0 when the local server answers `GET /healthz` with 200, 1 otherwise (for container
    /// health checks: the image has no curl).
    Healthcheck {
        /// The URL to probe; default: /healthz at WXAUTH_LISTEN (an unspecified address is
        /// probed on loopback).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Args, Debug)]
struct AuditArgs {
    /// Only events about this account (flow_user id).
    #[arg(long)]
    account: Option<i64>,
    /// Only events of this client.
    #[arg(long)]
    client: Option<String>,
    /// Only events of this kind (sign_in, token_issued, refresh_reuse, code_replay, …).
    #[arg(long)]
    kind: Option<String>,
    /// Only events since: unix seconds, an RFC 3339 time, a date (2026-12-01), or an age
    /// (30m, 24h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// At most this many events (1 to 100000).
    #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
    limit: i64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// List signing keys and their state (pending, active, retiring, expired).
    List,
    /// Add a new signing key, published at once, signing after --activate-after seconds
    /// (default WXAUTH_KEY_ACTIVATION_DELAY_SECS); the current key retires then and stays
    /// published until its tokens expire.
    Rotate {
        #[arg(long, allow_negative_numbers = true)]
        activate_after: Option<i64>,
    },
    /// Retire a key that does not sign now (a pending one: its rotation is called off).
    Retire { kid: String },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Find accounts (every criterion given must match); prints JSON.
    Find {
        #[arg(long)]
        account: Option<i64>,
        #[arg(long)]
        unionid: Option<String>,
        #[arg(long)]
        openid: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        /// A substring of the nickname.
        #[arg(long)]
        nickname: Option<String>,
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        page: i64,
        #[arg(long, default_value_t = 50, allow_negative_numbers = true)]
        per_page: i64,
    },
    /// Show an account: identities, consents, sessions, refresh-token families, recent events.
    Show { account: i64 },
    /// Disable an account: no new tokens, and everything it holds is revoked.
    Disable { account: i64 },
    /// Enable a disabled account.
    Enable { account: i64 },
    /// Revoke every session and token of an account.
    Revoke { account: i64 },
    /// Print everything held about an account as JSON (PIPL: the right to access).
    Export { account: i64 },
    /// Delete an account and everything about it; one tombstone audit event stays.
    Delete {
        account: i64,
        /// Required: deletion cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Merge two accounts of one person into the older one (identities, consents, phone,
    /// profile); the other's tokens and sessions are revoked. Prints what moved, as JSON.
    Merge {
        a: i64,
        b: i64,
        /// Only print what would move; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List merges waiting for a decision (WXAUTH_MERGE_POLICY=queue), as JSON.
    Merges,
    /// Carry out a queued merge.
    ApproveMerge { id: i64 },
    /// Refuse a queued merge: the accounts stay apart.
    RejectMerge { id: i64 },
}

/// Which account an `admin` command means: exactly one of --account or --unionid.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct AccountArg {
    /// The account number (flow_user id).
    #[arg(long)]
    account: Option<i64>,
    /// The account's WeChat unionid.
    #[arg(long)]
    unionid: Option<String>,
}

impl AccountArg {
    fn account_ref(self) -> AccountRef {
        match (self.account, self.unionid) {
            (Some(id), _) => AccountRef::Id(id),
            (None, Some(union_id)) => AccountRef::UnionId(union_id),
            // clap requires one of the two.
            (None, None) => AccountRef::Id(0),
        }
    }
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Give an account the admin role: it may sign in to the console with WeChat.
    Grant(AccountArg),
    /// Take the admin role from an account; its console sessions end at their next request.
    Revoke(AccountArg),
    /// List the accounts holding the admin role (JSON).
    List,
}

#[derive(Subcommand, Debug)]
enum ClientCommand {
    /// Register a client (prints a generated secret once when --secret is absent).
    Create(Box<CreateClientArgs>),
    /// List clients.
    List,
    /// Show one client.
    Show { client_id: String },
    /// Change a client's settings (only the options given).
    Update(Box<UpdateClientArgs>),
    /// Replace a client's secret (printed once); the old one keeps working for --overlap
    /// seconds (default WXAUTH_CLIENT_SECRET_OVERLAP_SECS; 0 stops it at once).
    RotateSecret {
        client_id: String,
        #[arg(long, allow_negative_numbers = true)]
        overlap: Option<i64>,
    },
    /// Delete a client.
    Delete { client_id: String },
}

#[derive(Args, Debug)]
struct CreateClientArgs {
    #[arg(long)]
    client_id: String,
    /// Import a secret (at least 16 characters); omit to have a 256-bit one generated.
    #[arg(long)]
    secret: Option<String>,
    /// Comma-separated: authorization_code, client_credentials, refresh_token, flow, mini_program.
    #[arg(long, value_delimiter = ',', required = true)]
    grant_types: Vec<String>,
    /// Comma-separated scopes the client may request.
    #[arg(long, value_delimiter = ',', required = true)]
    scopes: Vec<String>,
    /// An exact redirect URI (repeatable).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE required for authorization_code).
    #[arg(long)]
    public: bool,
    /// Skip the consent page (your own applications).
    #[arg(long)]
    first_party: bool,
    /// Access-token lifetime in seconds (at most 86400).
    #[arg(long, default_value_t = DEFAULT_ACCESS_TTL, allow_negative_numbers = true)]
    access_token_ttl: i64,
    /// Refresh-token lifetime in seconds (at most one year); a token never outlives its family.
    #[arg(long, default_value_t = DEFAULT_REFRESH_TTL, allow_negative_numbers = true)]
    refresh_token_ttl: i64,
    /// Absolute lifetime of a refresh-token family in seconds (at most one year): rotation
    /// never carries a sign-in past it.
    #[arg(long, default_value_t = DEFAULT_FAMILY_TTL, allow_negative_numbers = true)]
    refresh_family_ttl: i64,
    /// A resource server: may introspect other clients' tokens and use
    /// /api/wechat/user/by-unionid.
    #[arg(long)]
    introspect: bool,
    /// Whether the flow grant demands a login ticket.
    #[arg(long, value_enum, default_value_t = FlowTicketArg::Required)]
    flow_ticket: FlowTicketArg,
    /// The name people see on the consent page.
    #[arg(long)]
    display_name: Option<String>,
    /// The logo people see on the consent page (https).
    #[arg(long)]
    logo_url: Option<String>,
    /// A resource (RFC 8707) the client may ask tokens for (repeatable; `wxauth resource add`).
    #[arg(long = "resource")]
    resources: Vec<String>,
    /// A web origin (`https://app.example.com`) whose pages may call the token, userinfo and
    /// revocation endpoints (CORS), beyond the redirect URIs' own origins (repeatable).
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
    /// A WeChat app whose upstream credentials (access token, jsapi_ticket …) the client may
    /// fetch from the credential broker, `POST /api/wechat/credentials`; needs the
    /// `wechat:credentials` scope (repeatable).
    #[arg(long = "wechat-appid")]
    wechat_appids: Vec<String>,
    /// The algorithm of the client's ID tokens (`id_token_signed_response_alg`); default ES256
    /// (RS256 where WXAUTH_JWT_ALG=RS256).
    #[arg(long, value_enum, ignore_case = true)]
    id_token_alg: Option<IdTokenAlgArg>,
    /// The token response also carries the seed's user fields (tenant_id, teacher_id, …), for
    /// front ends that read them.
    #[arg(long)]
    seed_fields: bool,
    #[command(flatten)]
    logout: CreateLogoutArgs,
}

/// `id_token_signed_response_alg`.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum IdTokenAlgArg {
    #[value(name = "ES256")]
    Es256,
    #[value(name = "RS256")]
    Rs256,
}

impl From<IdTokenAlgArg> for IdTokenAlg {
    fn from(arg: IdTokenAlgArg) -> Self {
        match arg {
            IdTokenAlgArg::Es256 => IdTokenAlg::Es256,
            IdTokenAlgArg::Rs256 => IdTokenAlg::Rs256,
        }
    }
}

/// Logout settings of `client create` (OIDC RP-Initiated and Back-Channel Logout).
#[derive(Args, Debug)]
struct CreateLogoutArgs {
    /// An exact URI the end-session endpoint may send the browser back to (repeatable).
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// Where logout tokens are POSTed when a session ends (https; http only on localhost).
    #[arg(long)]
    backchannel_logout_uri: Option<String>,
    /// The client needs `sid` in its logout tokens.
    #[arg(long)]
    backchannel_logout_session_required: bool,
}

/// Logout settings of `client update`.
#[derive(Args, Debug)]
struct UpdateLogoutArgs {
    /// Replaces the post-logout redirect URIs (repeatable).
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Option<Vec<String>>,
    /// Removes every post-logout redirect URI.
    #[arg(long, conflicts_with = "post_logout_redirect_uris")]
    clear_post_logout_redirect_uris: bool,
    #[arg(long)]
    backchannel_logout_uri: Option<String>,
    #[arg(long, conflicts_with = "backchannel_logout_uri")]
    clear_backchannel_logout_uri: bool,
    #[arg(long)]
    backchannel_logout_session_required: Option<bool>,
}

#[derive(Args, Debug)]
struct UpdateClientArgs {
    client_id: String,
    #[arg(long)]
    display_name: Option<String>,
    #[arg(long, conflicts_with = "display_name")]
    clear_display_name: bool,
    #[arg(long)]
    logo_url: Option<String>,
    #[arg(long, conflicts_with = "logo_url")]
    clear_logo_url: bool,
    /// Comma-separated; replaces the grant types.
    #[arg(long, value_delimiter = ',')]
    grant_types: Option<Vec<String>>,
    /// Comma-separated; replaces the scopes.
    #[arg(long, value_delimiter = ',')]
    scopes: Option<Vec<String>>,
    /// Replaces the redirect URIs (repeatable).
    #[arg(long = "redirect-uri")]
    redirect_uris: Option<Vec<String>>,
    #[arg(long)]
    first_party: Option<bool>,
    #[arg(long, allow_negative_numbers = true)]
    access_token_ttl: Option<i64>,
    #[arg(long, allow_negative_numbers = true)]
    refresh_token_ttl: Option<i64>,
    #[arg(long, allow_negative_numbers = true)]
    refresh_family_ttl: Option<i64>,
    #[arg(long, value_enum)]
    flow_ticket: Option<FlowTicketArg>,
    #[arg(long)]
    introspect: Option<bool>,
    /// Replaces the resources the client may ask tokens for (repeatable).
    #[arg(long = "resource")]
    resources: Option<Vec<String>>,
    /// Allow the client no resource.
    #[arg(long, conflicts_with = "resources")]
    clear_resources: bool,
    /// Replaces the allowed web origins (CORS; repeatable).
    #[arg(long = "allowed-origin")]
    allowed_origins: Option<Vec<String>>,
    /// Removes every allowed web origin (the redirect URIs' own origins stay allowed).
    #[arg(long, conflicts_with = "allowed_origins")]
    clear_allowed_origins: bool,
    /// Replaces the WeChat apps whose credentials the broker hands the client (repeatable).
    #[arg(long = "wechat-appid")]
    wechat_appids: Option<Vec<String>>,
    /// Removes every WeChat app from the client's credential-broker list.
    #[arg(long, conflicts_with = "wechat_appids")]
    clear_wechat_appids: bool,
    /// ES256 or RS256: the algorithm of the client's ID tokens.
    #[arg(long, value_enum, ignore_case = true)]
    id_token_alg: Option<IdTokenAlgArg>,
    /// true or false: the token response also carries the seed's user fields.
    #[arg(long)]
    seed_fields: Option<bool>,
    #[command(flatten)]
    logout: UpdateLogoutArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum FlowTicketArg {
    Required,
    Optional,
}

#[derive(Subcommand, Debug)]
enum AppCommand {
    /// Register a WeChat app.
    Add(AddAppArgs),
    /// Replace an app's secret (or the message token and EncodingAESKey of a component or of an
    /// official account with its own message URL) after it was reset in WeChat's console; the
    /// app and the accounts under it stay registered.
    Update {
        appid: String,
        #[arg(long, required_unless_present_any = ["token", "aes_key"])]
        secret: Option<String>,
        /// Message token (components; official accounts not under a component).
        #[arg(long)]
        token: Option<String>,
        /// EncodingAESKey, 43 characters (components; official accounts in safe mode).
        #[arg(long)]
        aes_key: Option<String>,
    },
    /// List apps (secrets are never shown).
    List,
    /// Remove an app (a component only once no official account uses it).
    Remove { appid: String },
}

#[derive(Args, Debug)]
struct AddAppArgs {
    #[arg(long)]
    appid: String,
    #[arg(long, value_enum)]
    kind: AppKindArg,
    #[arg(long)]
    secret: Option<String>,
    /// The Open Platform component this official account is authorized to.
    #[arg(long)]
    component_appid: Option<String>,
    /// This official account is the base account (snsapi_userinfo, gives the unionid). There is
    /// one: a second is refused unless --replace says it takes the current one's place.
    #[arg(long)]
    base: bool,
    /// With --base: make this the base account in place of the current one (which stays
    /// registered, no longer the base). Every H5 sign-in then goes through this one.
    #[arg(long, requires = "base")]
    replace: bool,
    /// Message token: a component's, or an official account's own (not under a component) for
    /// its message URL `/api/wechat/mp/{appid}/events`.
    #[arg(long)]
    token: Option<String>,
    /// EncodingAESKey, 43 characters: a component's, or an official account's in safe mode.
    #[arg(long, requires = "token")]
    aes_key: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
#[value(rename_all = "snake_case")]
enum AppKindArg {
    MiniProgram,
    OfficialAccount,
    Component,
    Website,
}

impl From<AppKindArg> for AppKind {
    fn from(k: AppKindArg) -> Self {
        match k {
            AppKindArg::MiniProgram => AppKind::MiniProgram,
            AppKindArg::OfficialAccount => AppKind::OfficialAccount,
            AppKindArg::Component => AppKind::Component,
            AppKindArg::Website => AppKind::Website,
        }
    }
}

/// A command failure: the one line printed, and the exit status.
#[derive(Debug)]
pub struct CliError {
    message: String,
    status: u8,
}

impl CliError {
    /// A failure with an exit status (2 for configuration, 1 otherwise).
    pub fn new(status: u8, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            status,
        }
    }

    fn failed(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            status: 1,
        }
    }
}

impl From<StartError> for CliError {
    fn from(e: StartError) -> Self {
        let status = if matches!(e, StartError::Config(_)) {
            2
        } else {
            1
        };
        Self {
            message: e.to_string(),
            status,
        }
    }
}

impl From<crate::dev::DevError> for CliError {
    fn from(e: crate::dev::DevError) -> Self {
        Self::new(e.status, e.message)
    }
}

impl From<crate::config::ConfigError> for CliError {
    fn from(e: crate::config::ConfigError) -> Self {
        StartError::Config(e).into()
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = crate::config::load_dotenv().and_then(|()| {
        LogFormat::from_lookup(
            |name| std::env::var(name).ok(),
            std::io::stderr().is_terminal(),
        )
    });
    match log_format {
        Ok(format) => init_tracing(format),
        Err(e) => {
            eprintln!("wxauth: {e}");
            return ExitCode::from(2);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wxauth: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wxauth: {}", e.message);
            ExitCode::from(e.status)
        }
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // One object per line; the event's fields sit beside `message` rather than under
        // `fields`, so collectors can index them directly.
        LogFormat::Json => logs.json().flatten_event(true).try_init(),
        LogFormat::Text { ansi } => logs.with_ansi(ansi).try_init(),
    };
}

async fn run(command: Command) -> Result<(), CliError> {
    let clock: SharedClock = Arc::new(SystemClock);
    match command {
        Command::Serve => {
            let config = Config::from_env()?;
            serve(config, clock).await
        }
        Command::Dev => Ok(crate::dev::run(clock).await?),
        Command::Migrate => {
            let config = Config::from_env()?;
            AppState::build(config, clock).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Janitor => {
            let config = Config::from_env()?;
            let state = AppState::open_existing(config, clock).await?;
            let retention = state.config.audit_retention_days.saturating_mul(86_400);
            let gone = crate::janitor::sweep(&state.db, state.clock.now(), retention)
                .await
                .map_err(|e| CliError::new(1, format!("janitor: {e}")))?;
            println!("janitor: {gone} rows deleted");
            let rechecked = state
                .profiles
                .recheck_pending()
                .await
                .map_err(|e| CliError::new(1, format!("janitor: nickname rechecks: {e}")))?;
            println!("janitor: {rechecked} pending nicknames checked");
            Ok(())
        }
        Command::Simulator {
            listen,
            push_ticket_to,
        } => crate::simulator::run(
            listen,
            crate::simulator::SimulatorConfig::demo(push_ticket_to),
        )
        .await
        .map_err(|e| CliError::new(2, format!("--listen: cannot serve on {listen}: {e}"))),
        Command::Keys { command } => {
            let state = AppState::open_existing(Config::from_env()?, clock).await?;
            keys_command(&Admin::new(&state), command).await
        }
        Command::User { command } => {
            let state = AppState::open_existing(Config::from_env()?, clock).await?;
            user_command(&Admin::new(&state), command).await
        }
        Command::Admin { command } => {
            let state = AppState::open_existing(Config::from_env()?, clock).await?;
            admin_command(&Admin::new(&state), command).await
        }
        Command::Client { command } => {
            let state = AppState::open_existing(Config::from_env()?, clock).await?;
            client_command(&state, command).await
        }
        Command::Resource { command } => {
            let state = AppState::open_existing(Config::from_env()?, clock).await?;
            resource::run(&Admin::new(&state), &cli_actor(), command)
                .await
                .map_err(CliError::failed)
        }
        Command::App { command } => {
            let state = AppState::open_existing(Config::from_env()?, clock).await?;
            app_command(&state, command).await
        }
        Command::Webhook { command } => {
            let state = AppState::open_existing(Config::from_env()?, clock).await?;
            webhook::run(&Admin::new(&state), &cli_actor(), command)
                .await
                .map_err(CliError::failed)
        }
        Command::Audit(args) => {
            let filter = audit_filter(&args, clock.now())?;
            let state = AppState::open_existing(Config::from_env()?, clock).await?;
            let events = state
                .audit
                .list(&filter)
                .await
                .map_err(|e| CliError::failed(format!("reading the audit trail: {e}")))?;
            for event in &events {
                println!("{}", audit_line(event, args.json));
            }
            Ok(())
        }
        Command::Healthcheck { url } => healthcheck(url).await,
    }
}

/// How long `wxauth healthcheck` waits for the whole answer.
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// `wxauth healthcheck`: GET the health URL once; one line either way.
async fn healthcheck(url: Option<String>) -> Result<(), CliError> {
    let url = match url {
        Some(text) => url::Url::parse(&text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                CliError::new(2, format!("--url: expected an http(s) URL, got {text:?}"))
            })?,
        None => {
            let listen = crate::config::listen_from_lookup(|name| std::env::var(name).ok())?;
            local_health_url(listen).map_err(|e| CliError::new(2, format!("WXAUTH_LISTEN: {e}")))?
        }
    };
    // No proxy: the server is local, and an HTTP(S)_PROXY in the environment must not answer for it.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(HEALTHCHECK_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| CliError::failed(format!("healthcheck: {e}")))?;
    let target = url.as_str().to_owned();
    match client.get(url).send().await {
        Ok(response) if response.status().is_success() => {
            println!("{target}: {}", response.status());
            Ok(())
        }
        Ok(response) => Err(CliError::failed(format!(
            "healthcheck: {target} answered {}",
            response.status()
        ))),
        Err(e) => Err(CliError::failed(format!(
            "healthcheck: {target}: {}",
            if e.is_timeout() {
                format!("no answer within {}s", HEALTHCHECK_TIMEOUT.as_secs())
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                "no valid HTTP answer".to_owned()
            }
        ))),
    }
}

/// `/healthz` at the address the server listens on; an unspecified address (0.0.0.0, [::]) is
/// probed on the loopback address of its family.
fn local_health_url(listen: std::net::SocketAddr) -> Result<url::Url, url::ParseError> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    url::Url::parse(&format!(
        "http://{}/healthz",
        std::net::SocketAddr::new(ip, listen.port())
    ))
}

/// Who a command acts as in the audit trail: `cli:` and the OS user.
fn cli_actor() -> Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    Actor::cli(&user)
}

/// An administrative failure, naming the option of a refused value. A value out of range is a
/// usage error (2), like one clap refuses; a client's refused names, grants, scopes, URIs and
/// secrets stay failures (1), as `client create` always answered them.
fn admin_failed(e: AdminError) -> CliError {
    match e {
        AdminError::Invalid { field, reason } => {
            let option = match field {
                "overlap_secs" => "overlap".to_owned(),
                "redirect_uris" => "redirect-uri".to_owned(),
                "post_logout_redirect_uris" => "post-logout-redirect-uri".to_owned(),
                "resources" => "resource".to_owned(),
                "allowed_origins" => "allowed-origin".to_owned(),
                "wechat_appids" => "wechat-appid".to_owned(),
                "union_id" => "unionid".to_owned(),
                field => field.replace('_', "-"),
            };
            let status = match field {
                "client_id"
                | "secret"
                | "grant_types"
                | "scopes"
                | "redirect_uris"
                | "display_name"
                | "logo_url"
                | "allowed_origins"
                | "wechat_appids"
                | "post_logout_redirect_uris"
                | "backchannel_logout_uri"
                | "resources" => 1,
                _ => 2,
            };
            CliError::new(status, format!("--{option}: {reason}"))
        }
        e => CliError::failed(e.to_string()),
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::failed(format!("writing JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

async fn keys_command(admin: &Admin, command: KeysCommand) -> Result<(), CliError> {
    let actor = cli_actor();
    let line = |k: &KeyInfo| {
        let at = |t: Option<i64>| t.map_or("-".to_owned(), |t| t.to_string());
        format!(
            "{}\t{}\t{}\tcreated={}\tactivates={}\tretired={}",
            k.kid,
            k.alg,
            k.state.as_str(),
            k.created_at,
            at(k.activates_at),
            at(k.retired_at)
        )
    };
    match command {
        KeysCommand::List => {
            for key in admin.keys().await.map_err(admin_failed)? {
                println!("{}", line(&key));
            }
        }
        KeysCommand::Rotate { activate_after } => {
            let key = admin
                .rotate_key(&actor, activate_after)
                .await
                .map_err(admin_failed)?;
            println!("{}", line(&key));
            println!(
                "new signing key {}: published now, signs from {}; older keys stay in the JWKS until their tokens expire",
                key.kid,
                key.activates_at.unwrap_or(key.created_at)
            );
        }
        KeysCommand::Retire { kid } => {
            let key = admin.retire_key(&actor, &kid).await.map_err(admin_failed)?;
            println!("{}", line(&key));
        }
    }
    Ok(())
}

async fn admin_command(admin: &Admin, command: AdminCommand) -> Result<(), CliError> {
    let actor = cli_actor();
    match command {
        AdminCommand::Grant(which) => print_json(
            &admin
                .grant_admin(&actor, &which.account_ref())
                .await
                .map_err(admin_failed)?,
        ),
        AdminCommand::Revoke(which) => {
            let which = which.account_ref();
            admin
                .revoke_admin(&actor, &which)
                .await
                .map_err(admin_failed)?;
            println!("revoked the admin role");
            Ok(())
        }
        AdminCommand::List => print_json(&admin.admins().await.map_err(admin_failed)?),
    }
}

async fn user_command(admin: &Admin, command: UserCommand) -> Result<(), CliError> {
    let actor = cli_actor();
    match command {
        UserCommand::Find {
            account,
            unionid,
            openid,
            phone,
            nickname,
            page,
            per_page,
        } => print_json(
            &admin
                .find_users(&UserQuery {
                    account_id: account,
                    union_id: unionid,
                    open_id: openid,
                    phone,
                    nickname,
                    // A negative number is refused with the bound, as 0 is.
                    page: u64::try_from(page).unwrap_or(0),
                    per_page: u64::try_from(per_page).unwrap_or(0),
                })
                .await
                .map_err(admin_failed)?,
        ),
        UserCommand::Show { account } => {
            print_json(&admin.show_user(account).await.map_err(admin_failed)?)
        }
        UserCommand::Disable { account } => print_json(
            &admin
                .disable_user(&actor, account)
                .await
                .map_err(admin_failed)?,
        ),
        UserCommand::Enable { account } => print_json(
            &admin
                .enable_user(&actor, account)
                .await
                .map_err(admin_failed)?,
        ),
        UserCommand::Revoke { account } => print_json(
            &admin
                .revoke_user(&actor, account)
                .await
                .map_err(admin_failed)?,
        ),
        UserCommand::Export { account } => print_json(
            &admin
                .export_user(&actor, account)
                .await
                .map_err(admin_failed)?,
        ),
        UserCommand::Delete { account, yes } => {
            if !yes {
                return Err(CliError::new(
                    2,
                    "--yes: deleting an account cannot be undone; add --yes to go ahead",
                ));
            }
            admin
                .delete_user(&actor, account)
                .await
                .map_err(admin_failed)?;
            println!("deleted account {account}");
            Ok(())
        }
        UserCommand::Merge { a, b, dry_run } => {
            let plan = if dry_run {
                admin.plan_merge(a, b).await
            } else {
                admin.merge_users(&actor, a, b).await
            };
            print_json(&plan.map_err(admin_failed)?)
        }
        UserCommand::Merges => print_json(&admin.pending_merges().await.map_err(admin_failed)?),
        UserCommand::ApproveMerge { id } => print_json(
            &admin
                .approve_merge(&actor, id)
                .await
                .map_err(admin_failed)?,
        ),
        UserCommand::RejectMerge { id } => {
            admin.reject_merge(&actor, id).await.map_err(admin_failed)?;
            println!("merge {id} rejected");
            Ok(())
        }
    }
}

/// The most events `wxauth audit` prints at once.
const MAX_AUDIT_LINES: u64 = 100_000;

fn audit_filter(args: &AuditArgs, now: i64) -> Result<AuditFilter, CliError> {
    let kind = match &args.kind {
        None => None,
        Some(name) => Some(AuditKind::parse(name).ok_or_else(|| {
            let known: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
            CliError::new(
                2,
                format!("--kind: unknown kind {name:?}; one of {}", known.join(", ")),
            )
        })?),
    };
    let since = match &args.since {
        None => None,
        Some(text) => Some(parse_since(text, now).ok_or_else(|| {
            CliError::new(
                2,
                format!(
                    "--since: expected unix seconds, an RFC 3339 time, a date (2026-12-01) or an age (30m, 24h, 7d), got {text:?}"
                ),
            )
        })?),
    };
    let limit = u64::try_from(args.limit)
        .ok()
        .filter(|n| (1..=MAX_AUDIT_LINES).contains(n))
        .ok_or_else(|| {
            CliError::new(
                2,
                format!(
                    "--limit: must be from 1 to {MAX_AUDIT_LINES}, got {}",
                    args.limit
                ),
            )
        })?;
    Ok(AuditFilter {
        account_id: args.account,
        client_id: args.client.clone(),
        kind,
        since,
        limit,
    })
}

/// `--since`: unix seconds, RFC 3339, a date (midnight UTC), or an age before `now`.
fn parse_since(text: &str, now: i64) -> Option<i64> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Some(secs);
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp());
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp());
    }
    let unit = match text.chars().last()? {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let amount: i64 = text[..text.len() - 1].parse().ok()?;
    now.checked_sub(amount.checked_mul(unit)?)
}

/// One event as a line of the table, or as JSON.
fn audit_line(e: &StoredEvent, json: bool) -> String {
    let at = chrono::DateTime::from_timestamp(e.at, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| e.at.to_string());
    let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
    if json {
        return serde_json::json!({
            "id": e.id,
            "at": at,
            "kind": e.kind,
            "outcome": e.outcome,
            "client_id": e.client_id,
            "account_id": e.account_id,
            "subject": e.subject,
            "ip": e.ip,
            "actor": e.actor,
            "detail": detail,
        })
        .to_string();
    }
    let dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    format!(
        "{at}  {:<22} {:<8} client={} account={} subject={} ip={} actor={} {}",
        e.kind,
        e.outcome,
        dash(e.client_id.as_deref()),
        e.account_id.map_or("-".into(), |a| a.to_string()),
        dash(e.subject.as_deref()),
        dash(e.ip.as_deref()),
        dash(e.actor.as_deref()),
        detail,
    )
}

/// Bind, build the state and serve until ctrl-c / SIGTERM.
pub(crate) async fn serve(config: Config, clock: SharedClock) -> Result<(), CliError> {
    config.require_public_url_for_listener()?;
    let listen = config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CliError {
            message: format!("WXAUTH_LISTEN: cannot listen on {listen}: {e}"),
            status: 2,
        })?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| CliError {
                    message: format!("WXAUTH_METRICS_LISTEN: cannot listen on {addr}: {e}"),
                    status: 2,
                })?,
        ),
        None => None,
    };
    // The address actually bound (port 0 picks one).
    let listen = listener.local_addr().unwrap_or(listen);
    if let Some(warning) = config.public_url_warning() {
        tracing::warn!("{warning}");
    }
    let state = AppState::build(config, clock).await?;
    if let Some(listener) = metrics_listener {
        let db = state.db.clone();
        tokio::spawn(async move {
            if let Err(error) = crate::serve_metrics(listener, db, crate::shutdown_signal()).await {
                tracing::error!(%error, "the metrics listener stopped");
            }
        });
    }
    tracing::info!(%listen, issuer = %state.config.issuer(), "wxauth listening");
    crate::serve(listener, state, crate::shutdown_signal())
        .await
        .map_err(|e| CliError::failed(format!("server error: {e}")))
}

fn print_client(c: &RegisteredClient) {
    println!("client_id:         {}", c.client_id);
    println!(
        "type:              {}",
        if c.public { "public" } else { "confidential" }
    );
    println!("grant_types:       {}", c.grant_types.join(","));
    println!("scopes:            {}", c.scopes.join(","));
    println!("redirect_uris:     {}", c.redirect_uris.join(" "));
    println!("first_party:       {}", c.first_party);
    println!("access_token_ttl:  {}", c.access_token_ttl);
    println!("refresh_token_ttl: {}", c.refresh_token_ttl);
    println!("refresh_family_ttl: {}", c.refresh_family_ttl);
    println!("flow_ticket:       {}", c.flow_ticket.as_str());
    println!("introspect:        {}", c.introspect);
    println!(
        "id_token_alg:      {}",
        c.id_token_alg.map_or("default", IdTokenAlg::as_str)
    );
    println!("seed_fields:       {}", c.seed_fields);
    println!(
        "display_name:      {}",
        c.display_name.as_deref().unwrap_or("-")
    );
    println!(
        "logo_url:          {}",
        c.logo_url.as_deref().unwrap_or("-")
    );
    if !c.resources.is_empty() {
        println!("resources:         {}", c.resources.join(" "));
    }
    println!(
        "allowed_origins:   {}",
        if c.allowed_origins.is_empty() {
            "-".to_owned()
        } else {
            c.allowed_origins.join(" ")
        }
    );
    if !c.wechat_appids.is_empty() {
        println!("wechat_appids:     {}", c.wechat_appids.join(" "));
    }
    println!(
        "post_logout_redirect_uris: {}",
        c.logout.post_logout_redirect_uris.join(" ")
    );
    println!(
        "backchannel_logout_uri: {}{}",
        c.logout.backchannel_logout_uri.as_deref().unwrap_or("-"),
        if c.logout.backchannel_logout_session_required {
            " (sid required)"
        } else {
            ""
        }
    );
    if let Some(until) = c.previous_secret_until {
        println!("previous secret valid until: {until}");
    }
}

async fn client_command(state: &AppState, command: ClientCommand) -> Result<(), CliError> {
    let admin = Admin::new(state);
    let actor = cli_actor();
    match command {
        ClientCommand::Create(args) => {
            let flow_ticket = match args.flow_ticket {
                FlowTicketArg::Required => FlowTicketPolicy::Required,
                FlowTicketArg::Optional => FlowTicketPolicy::Optional,
            };
            let (client, secret) = admin
                .create_client(
                    &actor,
                    NewClient {
                        client_id: args.client_id,
                        secret: args.secret.map(Secret::new),
                        grant_types: args.grant_types,
                        scopes: args.scopes,
                        redirect_uris: args.redirect_uris,
                        public: args.public,
                        first_party: args.first_party,
                        access_token_ttl: args.access_token_ttl,
                        refresh_token_ttl: args.refresh_token_ttl,
                        flow_ticket,
                        introspect: args.introspect,
                        refresh_family_ttl: args.refresh_family_ttl,
                        display_name: args.display_name,
                        logo_url: args.logo_url,
                        resources: args.resources,
                        allowed_origins: args.allowed_origins,
                        id_token_alg: args.id_token_alg.map(IdTokenAlg::from),
                        seed_fields: args.seed_fields,
                        logout: ClientLogout {
                            post_logout_redirect_uris: args.logout.post_logout_redirect_uris,
                            backchannel_logout_uri: args.logout.backchannel_logout_uri,
                            backchannel_logout_session_required: args
                                .logout
                                .backchannel_logout_session_required,
                        },
                        wechat_appids: args.wechat_appids,
                    },
                )
                .await
                .map_err(admin_failed)?;
            print_client(&client);
            if let Some(secret) = secret {
                println!("client_secret:     {}", secret.expose());
                println!("(store the secret now: it is not kept and will not be shown again)");
            }
            if flow_ticket == FlowTicketPolicy::Optional && client.allows_grant(GrantType::Flow) {
                eprintln!(
                    "warning: --flow-ticket optional lets anyone who knows a unionId/openId pair obtain tokens for it; use it only to migrate existing front ends"
                );
            }
            Ok(())
        }
        ClientCommand::List => {
            for c in state
                .clients
                .list()
                .await
                .map_err(|e| CliError::failed(e.to_string()))?
            {
                println!(
                    "{}\t{}\t{}\t{}",
                    c.client_id,
                    if c.public { "public" } else { "confidential" },
                    c.grant_types.join(","),
                    c.scopes.join(",")
                );
            }
            Ok(())
        }
        ClientCommand::Show { client_id } => {
            match state
                .clients
                .get(&client_id)
                .await
                .map_err(|e| CliError::failed(e.to_string()))?
            {
                Some(c) => {
                    print_client(&c);
                    Ok(())
                }
                None => Err(CliError::failed(format!("no client {client_id:?}"))),
            }
        }
        ClientCommand::Update(args) => {
            let flow_ticket = args.flow_ticket.map(|f| match f {
                FlowTicketArg::Required => FlowTicketPolicy::Required,
                FlowTicketArg::Optional => FlowTicketPolicy::Optional,
            });
            let clear_or = |clear: bool, value: Option<String>| {
                if clear { Some(None) } else { value.map(Some) }
            };
            let changes = ClientChanges {
                display_name: clear_or(args.clear_display_name, args.display_name),
                logo_url: clear_or(args.clear_logo_url, args.logo_url),
                grant_types: args.grant_types,
                scopes: args.scopes,
                redirect_uris: args.redirect_uris,
                first_party: args.first_party,
                access_token_ttl: args.access_token_ttl,
                refresh_token_ttl: args.refresh_token_ttl,
                refresh_family_ttl: args.refresh_family_ttl,
                flow_ticket,
                introspect: args.introspect,
                resources: if args.clear_resources {
                    Some(Vec::new())
                } else {
                    args.resources
                },
                allowed_origins: if args.clear_allowed_origins {
                    Some(Vec::new())
                } else {
                    args.allowed_origins
                },
                id_token_alg: args.id_token_alg.map(IdTokenAlg::from),
                seed_fields: args.seed_fields,
                post_logout_redirect_uris: if args.logout.clear_post_logout_redirect_uris {
                    Some(Vec::new())
                } else {
                    args.logout.post_logout_redirect_uris
                },
                backchannel_logout_uri: clear_or(
                    args.logout.clear_backchannel_logout_uri,
                    args.logout.backchannel_logout_uri,
                ),
                backchannel_logout_session_required: args
                    .logout
                    .backchannel_logout_session_required,
                wechat_appids: if args.clear_wechat_appids {
                    Some(Vec::new())
                } else {
                    args.wechat_appids
                },
            };
            let client = admin
                .update_client(&actor, &args.client_id, changes)
                .await
                .map_err(admin_failed)?;
            print_client(&client);
            Ok(())
        }
        ClientCommand::RotateSecret { client_id, overlap } => {
            let rotated = admin
                .rotate_client_secret(&actor, &client_id, overlap)
                .await
                .map_err(admin_failed)?;
            println!("client_secret: {}", rotated.secret.expose());
            println!("({})", rotation_notice(rotated.previous_valid_until));
            Ok(())
        }
        ClientCommand::Delete { client_id } => {
            admin
                .delete_client(&actor, &client_id)
                .await
                .map_err(admin_failed)?;
            println!("deleted client {client_id}");
            Ok(())
        }
    }
}

/// What a rotation really does, said once after the new secret: the old secret's end, and
/// the seconds (the client cache, [`CLIENT_CACHE_TTL`]) running servers take to see the change.
fn rotation_notice(previous_valid_until: Option<i64>) -> String {
    let shown_once = "store the new secret now: it will not be shown again";
    match previous_valid_until {
        Some(until) => {
            let at = chrono::DateTime::from_timestamp(until, 0)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| until.to_string());
            format!(
                "the old secret keeps working until {at} (unix {until}); running servers accept the new one within {CLIENT_CACHE_TTL} s; {shown_once}"
            )
        }
        None => format!(
            "the old secret stops now: running servers refuse it, and accept the new one, within {CLIENT_CACHE_TTL} s; {shown_once}"
        ),
    }
}

/// An app command's refusal: status 1, the option named as the command line spells it.
fn app_failed(e: AdminError) -> CliError {
    match e {
        AdminError::Invalid { field, reason } => {
            CliError::failed(format!("--{} {reason}", field.replace('_', "-")))
        }
        e => CliError::failed(e.to_string()),
    }
}

async fn app_command(state: &AppState, command: AppCommand) -> Result<(), CliError> {
    let admin = Admin::new(state);
    let actor = cli_actor();
    match command {
        AppCommand::Add(args) => {
            let appid = args.appid.clone();
            let new = NewApp {
                appid: args.appid,
                kind: args.kind.into(),
                secret: args.secret.map(Secret::new),
                component_appid: args.component_appid,
                is_base: args.base,
                token: args.token.map(Secret::new),
                aes_key: args.aes_key.map(Secret::new),
            };
            let (_, replaced) = admin
                .add_app(&actor, new, args.replace)
                .await
                .map_err(app_failed)?;
            println!("added app {appid}");
            if let Some(previous) = replaced {
                println!("{appid} is now the base account in place of {previous}");
            }
            Ok(())
        }
        AppCommand::List => {
            for app in admin.apps().await.map_err(app_failed)? {
                println!(
                    "{}\t{}\t{}{}",
                    app.appid,
                    app.kind,
                    app.component_appid
                        .map(|c| format!("component={c}"))
                        .unwrap_or_else(|| "direct".into()),
                    if app.base { "\tbase" } else { "" }
                );
            }
            Ok(())
        }
        AppCommand::Update {
            appid,
            secret,
            token,
            aes_key,
        } => {
            let [secret, token, aes_key] = [secret, token, aes_key].map(|s| s.map(Secret::new));
            let secrets = AppSecrets {
                secret,
                token,
                aes_key,
            };
            admin
                .update_app(&actor, &appid, secrets)
                .await
                .map_err(app_failed)?;
            println!("updated app {appid}");
            Ok(())
        }
        AppCommand::Remove { appid } => {
            admin.remove_app(&actor, &appid).await.map_err(app_failed)?;
            println!("removed app {appid}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthcheck_probes_loopback_for_an_unspecified_listener() {
        let url = |listen: &str| {
            listen
                .parse()
                .ok()
                .and_then(|addr| local_health_url(addr).ok())
                .map(|u| u.to_string())
        };
        assert_eq!(
            url("0.0.0.0:8080").as_deref(),
            Some("http://127.0.0.1:8080/healthz")
        );
        assert_eq!(url("[::]:80").as_deref(), Some("http://[::1]/healthz"));
        assert_eq!(
            url("10.0.0.5:9000").as_deref(),
            Some("http://10.0.0.5:9000/healthz")
        );
    }

    #[test]
    fn since_takes_seconds_times_dates_and_ages() {
        let now = 1_800_000_000;
        assert_eq!(parse_since("1700000000", now), Some(1_700_000_000));
        assert_eq!(parse_since("2026-12-01", now), Some(1_796_083_200));
        assert_eq!(
            parse_since("2026-12-01T08:00:00+08:00", now),
            Some(1_796_083_200)
        );
        assert_eq!(parse_since("30m", now), Some(now - 1800));
        assert_eq!(parse_since("7d", now), Some(now - 7 * 86_400));
        assert_eq!(parse_since("yesterday", now), None);
        assert_eq!(parse_since("9999999999999999d", now), None);
    }
}
