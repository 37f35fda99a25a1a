//! The application state shared by every handler: configuration, database, vault, clock and the
//! core services built on them. Cheap to clone (everything inside is shared).

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::app_registry::AppRegistry;
use crate::audit::Audit;
use crate::clock::SharedClock;
use crate::config::{Config, ConfigError};
use crate::limits::{Limits, SharedCounters};
use crate::login::{
    AuthStates, BrowserSessions, H5Login, H5Urls, MiniProgramLogin, RedirectPolicy, WeChatSignIn,
};
use crate::oauth::authorize::AuthorizationService;
use crate::oauth::consent::Consents;
use crate::oauth::keys::{KeyError, SigningKeys};
use crate::oauth::token_service::TokenService;
use crate::oauth::{ClientRegistry, LoginTickets, OAuthServices};
use crate::store::Store;
use crate::users::{SeaUserRepo, UserRepo};
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
    /// Browser sessions at the authorization endpoint.
    pub sessions: BrowserSessions,
    /// WeChat sign-in for the authorization endpoint.
    pub sign_in: WeChatSignIn,
    /// The H5 two-hop sign-in.
    pub h5: Arc<H5Login>,
    pub oauth: OAuthServices,
    pub wechat: Arc<WeChat>,
    /// The audit trail.
    pub audit: Audit,
    /// Rate limits and the client-authentication throttle (shared through Redis when set).
    pub limits: Limits,
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
        });
        let mini_program = MiniProgramLogin::new(
            store,
            apps.clone(),
            users.clone(),
            tickets.clone(),
            wechat.clone(),
            audit.clone(),
            config.phone_reuse_days * 86_400,
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
                devices: crate::oauth::device::DeviceAuthorizations::new(
                    db.clone(),
                    vault.clone(),
                    clock.clone(),
                    audit.clone(),
                ),
            },
            mini_program,
            sessions,
            sign_in,
            h5,
            clients,
            apps,
            users,
            tickets,
            wechat,
            audit,
            limits,
            config: Arc::new(config),
            db,
            vault,
            clock,
        })))
    }
}

/// The administration core is wired from the state (its constructor lives here, so `admin/` does
/// not import the state that holds it).
/// The sub-states handlers take (`State<MiniProgramLogin>` and the like) instead of the whole
/// state: each handler names the one service it calls.
macro_rules! sub_states {
    ($($service:ty => $field:ident),* $(,)?) => {$(
        impl axum::extract::FromRef<AppState> for $service {
            fn from_ref(state: &AppState) -> Self {
                state.$field.clone()
            }
        }
    )*};
}

sub_states! {
    MiniProgramLogin => mini_program,
    Arc<H5Login> => h5,
    Arc<WeChat> => wechat,
    ClientRegistry => clients,
    Arc<dyn UserRepo> => users,
    OAuthServices => oauth,
    Arc<Config> => config,
}

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
