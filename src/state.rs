//! The application state shared by every handler: configuration, database, vault, clock and the
//! core services built on them. Cheap to clone (everything inside is shared).

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::app_registry::AppRegistry;
use crate::audit::Audit;
use crate::clock::SharedClock;
use crate::config::{Config, ConfigError};
use crate::credential_broker::CredentialBroker;
use crate::health::Health;
use crate::limits::{Limits, SharedCounters};
use crate::login::logout::Logout;
use crate::login::{
    AuthStates, BrowserSessions, DeviceApproval, FollowerSync, H5Login, H5Urls, JsSdk,
    MiniProgramLogin, MiniProgramProfiles, RedirectPolicy, WeChatSignIn, WebViewSignIn,
};
use crate::oauth::authorize::AuthorizationService;
use crate::oauth::consent::Consents;
use crate::oauth::keys::{KeyError, SigningKeys};
use crate::oauth::token_service::TokenService;
use crate::oauth::{ClientRegistry, LoginTickets, OAuthServices};
use crate::store::Store;
use crate::users::{AvatarStore, FollowerStore, SeaAvatarStore, SeaUserRepo, UserRepo};
use crate::vault::Vault;
use crate::wechat::{WeChat, WeChatClient, WeChatClientConfig};

/// Why the server could not start. Its `Display` is the one line printed before exiting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("{0}")]
    Other(String),
}

/// Everything a request handler may need: one allocation behind an `Arc`, so that the clone every
/// extractor and middleware makes is a reference count, not a copy of every service (a copy and
/// drop of all of them was a quarter of `/healthz`'s CPU time).
#[derive(Clone)]
pub struct AppState(Arc<AppServices>);

impl std::ops::Deref for AppState {
    type Target = AppServices;

    fn deref(&self) -> &AppServices {
        &self.0
    }
}

/// The services themselves (see [`AppState`]).
pub struct AppServices {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    pub vault: Arc<Vault>,
    pub clock: SharedClock,
    pub clients: ClientRegistry,
    pub apps: AppRegistry,
    pub users: Arc<dyn UserRepo>,
    pub tickets: LoginTickets,
    pub mini_program: MiniProgramLogin,
    /// The Mini Program's nickname and avatar pickers.
    pub profiles: MiniProgramProfiles,
    /// Web-view tickets: silent sign-in for the pages a Mini Program opens.
    pub web_view: WebViewSignIn,
    /// Where chosen avatars are kept.
    pub avatars: Arc<dyn AvatarStore>,
    /// Browser sessions at the authorization endpoint.
    pub sessions: BrowserSessions,
    /// WeChat sign-in for the authorization endpoint.
    pub sign_in: WeChatSignIn,
    /// Signing out at the end-session endpoint.
    pub logout: Logout,
    /// The H5 two-hop sign-in.
    pub h5: Arc<H5Login>,
    /// Official Account follower status (the base hop's lookup, the message URL's pushes).
    pub followers: FollowerSync,
    /// The Mini Program approving device sign-ins (its code on the verification page).
    pub device_approval: DeviceApproval,
    pub oauth: OAuthServices,
    pub wechat: Arc<WeChat>,
    /// The audit trail.
    pub audit: Audit,
    /// Rate limits and the client-authentication throttle (shared through Redis when set).
    pub limits: Limits,
    /// The JS-SDK configuration of official-account H5 pages.
    pub jssdk: JsSdk,
    /// The WeChat credential broker for the company's other services.
    pub credential_broker: CredentialBroker,
    /// Whether the database answers, and the metrics scrape.
    pub health: Health,
}

impl AppState {
    /// Connect to the database, apply migrations and assemble the services. A missing SQLite
    /// file, master key file or schema is created (`serve`, `dev`, `migrate`).
    pub async fn build(config: Config, clock: SharedClock) -> Result<Self, StartError> {
        Self::assemble(config, clock, true).await
    }

    /// Like [`AppState::build`], for commands that work on an existing installation: a missing
    /// SQLite file, master key file or schema is refused with one line naming what was looked
    /// for ([`Config::require_existing_files`]), never created.
    pub async fn open_existing(config: Config, clock: SharedClock) -> Result<Self, StartError> {
        config.require_existing_files()?;
        Self::assemble(config, clock, false).await
    }

    async fn assemble(
        config: Config,
        clock: SharedClock,
        create: bool,
    ) -> Result<Self, StartError> {
        // Counting starts now: without a recorder the metrics facade drops what it is given.
        crate::metrics::handle();
        let db = crate::db::connect(config.database_url.expose()).await?;
        if !create && !crate::db::is_installed(&db).await {
            return Err(StartError::Config(ConfigError::new(
                "DATABASE_URL",
                format!(
                    "the database {} holds no wxauth tables; only serve, dev and migrate create them: point DATABASE_URL at the server's database",
                    crate::config::redacted_database_url(config.database_url.expose())
                ),
            )));
        }
        let master_key = config.load_master_key()?;
        crate::db::migrate(&db)
            .await
            .map_err(|e| StartError::Migration(e.to_string()))?;
        let vault = Arc::new(Vault::new(&master_key));
        crate::db::reseal::reseal_unbound(&db, &vault)
            .await
            .map_err(|e| StartError::Migration(format!("re-sealing stored secrets: {e}")))?;
        let keys = SigningKeys::load(
            db.clone(),
            vault.clone(),
            clock.clone(),
            config.jwt_alg,
            config.jwt_hs256_secret.clone(),
        )
        .await
        .map_err(|e| match e {
            KeyError::WrongMasterKey { kid } => StartError::Config(ConfigError::new(
                config.master_key_variable(),
                format!(
                    "the signing key {kid} stored in the database does not open with the master key {}; the master key is WXAUTH_MASTER_KEY when set, else the file WXAUTH_MASTER_KEY_FILE names (default wxauth.key): use the one this database was created with",
                    config.master_key_origin()
                ),
            )),
            e => StartError::Other(format!("signing keys: {e}")),
        })?;
        let users: Arc<dyn UserRepo> =
            Arc::new(SeaUserRepo::new(db.clone()).with_merge_policy(config.merge_policy));
        let audit = Audit::new(db.clone(), clock.clone());
        let shared_counters = match &config.redis_url {
            Some(url) => Some(SharedCounters::connect(
                url.expose(),
                &config.limits.redis_prefix,
            )?),
            None => None,
        };
        let limits = Limits::new(config.limits.clone(), shared_counters, Some(audit.clone()));
        let clients = ClientRegistry::new(db.clone(), vault.clone(), clock.clone());
        let apps = AppRegistry::new(db.clone(), vault.clone(), clock.clone());
        let tickets = LoginTickets::new(db.clone(), vault.clone(), clock.clone(), clients.clone());
        let tokens = TokenService::new(
            db.clone(),
            vault.clone(),
            clock.clone(),
            keys,
            users.clone(),
            audit.clone(),
            config.issuer(),
        );
        let client = WeChatClient::new(WeChatClientConfig::new(
            config.wechat_api_base.clone(),
            config.wechat_open_base.clone(),
        ))
        .map_err(|e| StartError::Other(format!("WeChat client: {e}")))?;
        let wechat = Arc::new(WeChat::new(
            client,
            apps.clone(),
            db.clone(),
            vault.clone(),
            clock.clone(),
        ));
        let authorization = AuthorizationService::new(
            clients.clone(),
            Consents::new(db.clone(), clock.clone()),
            db.clone(),
            vault.clone(),
            clock.clone(),
        )
        .with_issuer(config.issuer());
        let sessions = BrowserSessions::new(db.clone(), vault.clone(), clock.clone());
        let callback =
            url::Url::parse(&config.url_for(crate::login::web_sign_in::WECHAT_CALLBACK_PATH))
                .map_err(|e| StartError::Other(format!("WXAUTH_PUBLIC_URL: {e}")))?;
        let store = Store::new(db.clone(), vault.clone(), clock.clone());
        let sign_in = WeChatSignIn::new(
            &store,
            apps.clone(),
            wechat.clone(),
            users.clone(),
            sessions.clone(),
            callback,
            audit.clone(),
        );
        let followers = FollowerSync {
            wechat: wechat.clone(),
            store: FollowerStore::new(db.clone()),
            clock: clock.clone(),
            audit: audit.clone(),
        };
        let h5 = Arc::new(H5Login {
            states: AuthStates::new(db.clone(), vault.clone(), clock.clone()),
            clock: clock.clone(),
            wechat: wechat.clone(),
            apps: apps.clone(),
            users: users.clone(),
            tickets: tickets.clone(),
            policy: RedirectPolicy::new(&config.redirect_allowlist),
            urls: H5Urls::under(&config.issuer())
                .map_err(|e| StartError::Other(format!("WXAUTH_PUBLIC_URL: {e}")))?,
            audit: audit.clone(),
            followers: followers.clone(),
        });
        let jssdk = JsSdk::new(
            wechat.clone(),
            apps.clone(),
            RedirectPolicy::new(&config.redirect_allowlist),
            clock.clone(),
        );
        let credential_broker = CredentialBroker::new(
            clients.clone(),
            apps.clone(),
            wechat.clone(),
            audit.clone(),
            clock.clone(),
        );
        let mini_program = MiniProgramLogin::new(
            store,
            apps.clone(),
            users.clone(),
            tickets.clone(),
            wechat.clone(),
            audit.clone(),
            config.phone_reuse_days * 86_400,
        );
        let avatars: Arc<dyn AvatarStore> = Arc::new(SeaAvatarStore::new(db.clone()));
        let profiles = MiniProgramProfiles {
            login: mini_program.clone(),
            users: users.clone(),
            avatars: avatars.clone(),
            wechat: wechat.clone(),
            db: db.clone(),
            clock: clock.clone(),
            audit: audit.clone(),
            avatar_base: config.url_for(crate::login::profile::AVATAR_PATH),
        };
        let web_view = WebViewSignIn {
            login: mini_program.clone(),
            tickets: tickets.clone(),
            users: users.clone(),
            sessions: sessions.clone(),
            audit: audit.clone(),
        };
        let devices = crate::oauth::device::DeviceAuthorizations::new(
            db.clone(),
            vault.clone(),
            clock.clone(),
            audit.clone(),
        );
        let device_approval = DeviceApproval::new(
            config.device_mini_program.clone(),
            wechat.clone(),
            devices.clone(),
            mini_program.clone(),
            clock.clone(),
        );
        let logout = Logout::new(
            db.clone(),
            sessions.clone(),
            clients.clone(),
            tokens.clone(),
            users.clone(),
            audit.clone(),
        );
        Ok(Self(Arc::new(AppServices {
            oauth: OAuthServices {
                clients: clients.clone(),
                apps: apps.clone(),
                users: users.clone(),
                tickets: tickets.clone(),
                tokens,
                mini_program: Arc::new(mini_program.clone()),
                authorization,
                audit: audit.clone(),
                devices,
            },
            mini_program,
            profiles,
            web_view,
            avatars,
            sessions,
            sign_in,
            logout,
            h5,
            followers,
            device_approval,
            clients,
            apps,
            users,
            tickets,
            wechat,
            audit,
            limits,
            jssdk,
            credential_broker,
            health: Health::new(db.clone()),
            config: Arc::new(config),
            db,
            vault,
            clock,
        })))
    }
}

/// The sub-states handlers take (`State<MiniProgramLogin>` and the like) instead of the whole
/// state: each handler names the services it calls (a field, or a field of a field).
macro_rules! sub_states {
    ($($service:ty => $($field:ident).+),* $(,)?) => {$(
        impl axum::extract::FromRef<AppState> for $service {
            fn from_ref(state: &AppState) -> Self {
                state.$($field).+.clone()
            }
        }
    )*};
}

sub_states! {
    MiniProgramLogin => mini_program,
    MiniProgramProfiles => profiles,
    WebViewSignIn => web_view,
    Arc<dyn AvatarStore> => avatars,
    Arc<H5Login> => h5,
    FollowerSync => followers,
    DeviceApproval => device_approval,
    Arc<WeChat> => wechat,
    ClientRegistry => clients,
    Arc<dyn UserRepo> => users,
    OAuthServices => oauth,
    Arc<Config> => config,
    JsSdk => jssdk,
    CredentialBroker => credential_broker,
    Health => health,
    TokenService => oauth.tokens,
    Logout => logout,
    BrowserSessions => sessions,
    WeChatSignIn => sign_in,
    AuthorizationService => oauth.authorization,
    crate::oauth::device::DeviceAuthorizations => oauth.devices,
}

/// The administration core as a sub-state, wired from the state's services on each use.
impl axum::extract::FromRef<AppState> for crate::admin::Admin {
    fn from_ref(state: &AppState) -> Self {
        Self::new(state)
    }
}

/// The administration core is wired from the state (its constructor lives here, so `admin/` does
/// not import the state that holds it).
impl crate::admin::Admin {
    /// The operations behind the admin API, the console and the CLI, over `state`'s services.
    pub fn new(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            clock: state.clock.clone(),
            audit: state.audit.clone(),
            clients: state.clients.clone(),
            tokens: state.oauth.tokens.clone(),
            client_secret_overlap: state.config.client_secret_overlap_secs,
            key_activation_delay: state.config.key_activation_delay_secs,
            admin_token: state.config.admin_token.clone(),
            limits: state.limits.clone(),
            vault: state.vault.clone(),
            oauth: state.oauth.clone(),
            apps: state.apps.clone(),
            wechat: state.wechat.clone(),
        }
    }
}
