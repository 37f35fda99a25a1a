//! The WeChat applications wxauth knows (`wx_app`): Mini Programs, Official Accounts, Open
//! Platform components and website apps, with their secrets sealed at rest. Used by the CLI
//! (`wxauth app …`), by `wxauth dev`, and by the WeChat adapter to find credentials.
//!
//! [`AppRegistry::exists`] and [`AppRegistry::kind`], on the `flow` grant's and every login's
//! path, remember registered appids and their kinds for [`APP_CACHE_TTL`] seconds. Secrets are
//! read fresh by [`AppRegistry::get`], with one exception: a Mini Program login's
//! `jscode2session` takes the app secret from [`AppRegistry::login_secret`], which keeps it
//! sealed for the same TTL (one statement fewer per login). One registry is shared by the whole
//! process; removing an app or replacing its secrets through it forgets them at once, and another
//! instance (or the CLI, another process) sees a change within the TTL. A secret reset elsewhere
//! costs no login: WeChat refuses the stale one (40125), the adapter asks
//! [`AppRegistry::fresh_login_secret`] and, if the stored one differs, calls again.

use std::fmt;
use std::sync::Arc;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, TransactionTrait,
};

use entity::wx_app;

use crate::clock::SharedClock;
use crate::secret::Secret;
use crate::ttl_cache::TtlCache;
use crate::vault::{SealedAt, Vault, VaultError};

/// How long (seconds) an instance trusts that an appid it found is still registered.
pub const APP_CACHE_TTL: i64 = 5;

/// What kind of WeChat application an appid is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    MiniProgram,
    OfficialAccount,
    Component,
    Website,
}

impl AppKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MiniProgram => "mini_program",
            Self::OfficialAccount => "official_account",
            Self::Component => "component",
            Self::Website => "website",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "mini_program" => Some(Self::MiniProgram),
            "official_account" => Some(Self::OfficialAccount),
            "component" => Some(Self::Component),
            "website" => Some(Self::Website),
            _ => None,
        }
    }
}

impl fmt::Display for AppKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an app's sealed `column` is stored.
fn sealed_at<'a>(column: &'static str, appid: &'a str) -> SealedAt<'a> {
    SealedAt::new("wx_app", column, appid)
}

/// Where a message token and an EncodingAESKey belong.
const MESSAGE_KEYS_APPLY: &str = "applies to components and to official accounts that are not \
     under a component (those receive messages through their component's keys)";

/// Whether an app of `kind` (under `component`, if any) has a message token and EncodingAESKey
/// of its own: components (for their pushes) and official accounts with their own message URL.
fn takes_message_keys(kind: AppKind, component: Option<&str>) -> bool {
    match kind {
        AppKind::Component => true,
        AppKind::OfficialAccount => component.is_none(),
        _ => false,
    }
}

/// Whether `appid` has WeChat's shape: `wx` followed by 16 hex digits (the same check as
/// [`crate::ids::AppId::parse`]).
pub use crate::ids::is_valid_appid;

/// What an operator registers.
#[derive(Debug, Clone)]
pub struct NewApp {
    pub appid: String,
    pub kind: AppKind,
    pub secret: Option<Secret>,
    pub component_appid: Option<String>,
    pub is_base: bool,
    /// The message token (components: for `msg_signature`; official accounts not under a
    /// component: for their message URL, `/api/wechat/mp/{appid}/events`).
    pub token: Option<Secret>,
    /// The EncodingAESKey (components: for WXBizMsgCrypt).
    pub aes_key: Option<Secret>,
}

/// A registered app with its secrets opened, for the adapter. `Debug` hides the secrets.
#[derive(Debug, Clone)]
pub struct RegisteredApp {
    pub appid: String,
    pub kind: AppKind,
    pub secret: Option<Secret>,
    pub component_appid: Option<String>,
    pub is_base: bool,
    pub token: Option<Secret>,
    pub aes_key: Option<Secret>,
    pub authorizer_refresh_token: Option<Secret>,
}

/// Why an app operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AppRegistryError {
    #[error("appid {0:?} is not a WeChat appid (expected \"wx\" followed by 16 hex digits)")]
    InvalidAppId(String),
    /// A value that does not fit: the field (as the API names it; the CLI's option is the
    /// same with dashes) and why.
    #[error("--{} {reason}", field.replace('_', "-"))]
    Invalid { field: &'static str, reason: String },
    #[error("app {0} is already registered")]
    AlreadyExists(String),
    #[error(
        "component {0} is not registered: add it first (wxauth app add --appid {0} --kind component …)"
    )]
    UnknownComponent(String),
    #[error(
        "{current} is already the base account and every H5 sign-in goes through it; add --replace (API: \"replace\": true) to make {new} the base account instead"
    )]
    BaseTaken { current: String, new: String },
    #[error(
        "component {component} is still used by official account(s) {}: remove them first (wxauth app remove APPID)",
        dependants.join(", ")
    )]
    InUse {
        component: String,
        dependants: Vec<String>,
    },
    #[error("no app {0}")]
    NotFound(String),
    #[error("stored secret cannot be opened: {0} (was WXAUTH_MASTER_KEY changed?)")]
    Sealed(#[from] VaultError),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> AppRegistryError {
    AppRegistryError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Reads and writes `wx_app`. Clones share one cache.
#[derive(Clone)]
pub struct AppRegistry {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
    /// Appids found registered, with their kinds (unknown ones are not remembered).
    known: Arc<TtlCache<Option<AppKind>>>,
    /// Apps' secrets as stored (sealed), for [`AppRegistry::login_secret`]; opened per use.
    sealed_secrets: Arc<TtlCache<String>>,
}

impl AppRegistry {
    pub fn new(db: DatabaseConnection, vault: Arc<Vault>, clock: SharedClock) -> Self {
        Self {
            db,
            vault,
            clock,
            known: Arc::new(TtlCache::new(APP_CACHE_TTL)),
            sealed_secrets: Arc::new(TtlCache::new(APP_CACHE_TTL)),
        }
    }

    /// Register an app after checking that its fields fit its kind and that the component it
    /// names is registered. A second base account is refused ([`AppRegistryError::BaseTaken`]):
    /// every H5 sign-in goes through the one base account, so a new one would silently take
    /// them all over; [`AppRegistry::add_replacing_base`] says that this is meant.
    pub async fn add(&self, new: NewApp) -> Result<(), AppRegistryError> {
        self.insert(new, false).await
    }

    /// Like [`AppRegistry::add`]; a base account takes the place of the current one (which
    /// stays registered, no longer the base), in one transaction.
    pub async fn add_replacing_base(&self, new: NewApp) -> Result<(), AppRegistryError> {
        self.insert(new, true).await
    }

    async fn insert(&self, new: NewApp, replace_base: bool) -> Result<(), AppRegistryError> {
        if !is_valid_appid(&new.appid) {
            return Err(AppRegistryError::InvalidAppId(new.appid));
        }
        if let Some(c) = &new.component_appid {
            if !is_valid_appid(c) {
                return Err(AppRegistryError::InvalidAppId(c.clone()));
            }
            if new.kind != AppKind::OfficialAccount {
                return Err(invalid(
                    "component_appid",
                    "applies to official accounts only",
                ));
            }
        }
        if new.is_base && new.kind != AppKind::OfficialAccount {
            return Err(invalid("base", "applies to official accounts only"));
        }
        let needs_secret = new.component_appid.is_none();
        if needs_secret && new.secret.is_none() {
            return Err(invalid(
                "secret",
                format!(
                    "is needed for a {} (unless it is an official account under a component)",
                    new.kind
                ),
            ));
        }
        if (new.token.is_some() || new.aes_key.is_some())
            && !takes_message_keys(new.kind, new.component_appid.as_deref())
        {
            let field = if new.token.is_some() {
                "token"
            } else {
                "aes_key"
            };
            return Err(invalid(field, MESSAGE_KEYS_APPLY));
        }
        if new.kind == AppKind::Component && (new.token.is_none() || new.aes_key.is_none()) {
            let field = if new.token.is_none() {
                "token"
            } else {
                "aes_key"
            };
            return Err(invalid(
                field,
                "is needed for a component (its message token and its EncodingAESKey)",
            ));
        }
        if let Some(k) = &new.aes_key
            && k.expose().len() != 43
        {
            return Err(invalid(
                "aes_key",
                "must be the 43-character EncodingAESKey",
            ));
        }
        if wx_app::Entity::find_by_id(new.appid.clone())
            .one(&self.db)
            .await?
            .is_some()
        {
            return Err(AppRegistryError::AlreadyExists(new.appid));
        }
        if let Some(component) = &new.component_appid
            && self.kind(component).await? != Some(AppKind::Component)
        {
            return Err(AppRegistryError::UnknownComponent(component.clone()));
        }
        let txn = self.db.begin().await?;
        if new.is_base {
            let current = wx_app::Entity::find()
                .filter(wx_app::Column::IsBase.eq(true))
                .order_by_asc(wx_app::Column::Appid)
                .all(&txn)
                .await?;
            if let Some(current) = current.first()
                && !replace_base
            {
                return Err(AppRegistryError::BaseTaken {
                    current: current.appid.clone(),
                    new: new.appid,
                });
            }
            wx_app::Entity::update_many()
                .col_expr(wx_app::Column::IsBase, Expr::value(false))
                .col_expr(wx_app::Column::UpdatedAt, Expr::value(self.clock.now()))
                .filter(wx_app::Column::IsBase.eq(true))
                .exec(&txn)
                .await?;
        }
        let seal = |s: &Option<Secret>, column| {
            s.as_ref()
                .map(|s| self.vault.seal(s.expose(), sealed_at(column, &new.appid)))
        };
        let now = self.clock.now();
        wx_app::ActiveModel {
            secret_enc: Set(seal(&new.secret, "secret_enc")),
            token_enc: Set(seal(&new.token, "token_enc")),
            aes_key_enc: Set(seal(&new.aes_key, "aes_key_enc")),
            appid: Set(new.appid),
            kind: Set(new.kind.as_str().to_string()),
            component_appid: Set(new.component_appid),
            is_base: Set(new.is_base),
            authorizer_refresh_token_enc: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// `appid`'s app secret for a login's `jscode2session`: from a cache of [`APP_CACHE_TTL`]
    /// seconds (sealed, opened per call), else read (and remembered). `None` when the app is not
    /// registered or has no secret. Anything else that needs a secret uses [`AppRegistry::get`].
    pub async fn login_secret(&self, appid: &str) -> Result<Option<Secret>, AppRegistryError> {
        if let Some(sealed) = self.sealed_secrets.get(appid, self.clock.now()) {
            return Ok(Some(self.open_secret(appid, &sealed)?));
        }
        self.fresh_login_secret(appid).await
    }

    /// [`AppRegistry::login_secret`] read from `wx_app` now, for when WeChat refused the cached
    /// one: the secret may have been reset by another instance or the CLI.
    pub async fn fresh_login_secret(
        &self,
        appid: &str,
    ) -> Result<Option<Secret>, AppRegistryError> {
        self.sealed_secrets.invalidate(appid);
        let generation = self.sealed_secrets.generation();
        let read_at = self.clock.now();
        let found =
            crate::db::find_unique(wx_app::Entity::find_by_id(appid.to_string()), &self.db).await?;
        let Some(sealed) = found.and_then(|m| m.secret_enc) else {
            return Ok(None);
        };
        let secret = self.open_secret(appid, &sealed)?;
        self.sealed_secrets
            .insert(appid, sealed, read_at, generation);
        Ok(Some(secret))
    }

    fn open_secret(&self, appid: &str, sealed: &str) -> Result<Secret, AppRegistryError> {
        Ok(Secret::new(
            self.vault.open(sealed, sealed_at("secret_enc", appid))?,
        ))
    }

    /// Every app (secrets not opened).
    pub async fn list(&self) -> Result<Vec<wx_app::Model>, DbErr> {
        wx_app::Entity::find()
            .order_by_asc(wx_app::Column::Appid)
            .all(&self.db)
            .await
    }

    /// Whether `appid` is registered (no secret is opened: this is on the token hot path).
    pub async fn exists(&self, appid: &str) -> Result<bool, DbErr> {
        Ok(self.registered(appid).await?.is_some())
    }

    /// What kind of app `appid` is, if registered (no secret is opened).
    pub async fn kind(&self, appid: &str) -> Result<Option<AppKind>, DbErr> {
        Ok(self.registered(appid).await?.flatten())
    }

    /// `Some(kind)` when `appid` is registered (the kind `None` if the stored one is unknown),
    /// from the cache or one read.
    async fn registered(&self, appid: &str) -> Result<Option<Option<AppKind>>, DbErr> {
        let now = self.clock.now();
        if let Some(kind) = self.known.get(appid, now) {
            return Ok(Some(kind));
        }
        let generation = self.known.generation();
        let found =
            crate::db::find_unique(wx_app::Entity::find_by_id(appid.to_string()), &self.db).await?;
        let kind = found.map(|row| AppKind::parse(&row.kind));
        if let Some(kind) = kind {
            self.known.insert(appid, kind, now, generation);
        }
        Ok(kind)
    }

    /// One app with its secrets opened.
    pub async fn get(&self, appid: &str) -> Result<Option<RegisteredApp>, AppRegistryError> {
        let Some(m) =
            crate::db::find_unique(wx_app::Entity::find_by_id(appid.to_string()), &self.db).await?
        else {
            return Ok(None);
        };
        let open = |s: &Option<String>, column| -> Result<Option<Secret>, VaultError> {
            s.as_deref()
                .map(|s| {
                    self.vault
                        .open(s, sealed_at(column, &m.appid))
                        .map(Secret::new)
                })
                .transpose()
        };
        Ok(Some(RegisteredApp {
            kind: AppKind::parse(&m.kind)
                .ok_or_else(|| invalid("kind", format!("{:?} is not a known kind", m.kind)))?,
            secret: open(&m.secret_enc, "secret_enc")?,
            token: open(&m.token_enc, "token_enc")?,
            aes_key: open(&m.aes_key_enc, "aes_key_enc")?,
            authorizer_refresh_token: open(
                &m.authorizer_refresh_token_enc,
                "authorizer_refresh_token_enc",
            )?,
            component_appid: m.component_appid,
            is_base: m.is_base,
            appid: m.appid,
        }))
    }

    /// The first registered app of `kind`, by appid (no secret is opened).
    pub async fn first_of_kind(&self, kind: AppKind) -> Result<Option<String>, DbErr> {
        Ok(wx_app::Entity::find()
            .filter(wx_app::Column::Kind.eq(kind.as_str()))
            .order_by_asc(wx_app::Column::Appid)
            .one(&self.db)
            .await?
            .map(|row| row.appid))
    }

    /// The appid of the base account, if one is registered (no secret is opened).
    pub async fn base_appid(&self) -> Result<Option<String>, DbErr> {
        Ok(wx_app::Entity::find()
            .filter(wx_app::Column::IsBase.eq(true))
            .order_by_asc(wx_app::Column::Appid)
            .one(&self.db)
            .await?
            .map(|m| m.appid))
    }

    /// The official account registered with `--base` (the one that yields unionids).
    pub async fn base_account(&self) -> Result<Option<RegisteredApp>, AppRegistryError> {
        let base = self
            .list()
            .await?
            .into_iter()
            .find(|m| m.is_base && m.kind == AppKind::OfficialAccount.as_str());
        match base {
            Some(m) => self.get(&m.appid).await,
            None => Ok(None),
        }
    }

    /// Replace an app's secret, message token or EncodingAESKey (those given), after WeChat's
    /// console reset one: the app keeps its row, so the accounts under a component keep theirs.
    pub async fn update_secrets(
        &self,
        appid: &str,
        secret: Option<&Secret>,
        token: Option<&Secret>,
        aes_key: Option<&Secret>,
    ) -> Result<(), AppRegistryError> {
        let m = wx_app::Entity::find_by_id(appid.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| AppRegistryError::NotFound(appid.to_string()))?;
        let kind = AppKind::parse(&m.kind).unwrap_or(AppKind::MiniProgram);
        if (token.is_some() || aes_key.is_some())
            && !takes_message_keys(kind, m.component_appid.as_deref())
        {
            let field = if token.is_some() { "token" } else { "aes_key" };
            return Err(invalid(field, MESSAGE_KEYS_APPLY));
        }
        if let Some(k) = aes_key
            && k.expose().len() != 43
        {
            return Err(invalid(
                "aes_key",
                "must be the 43-character EncodingAESKey",
            ));
        }
        let seal = |s: &Secret, column| self.vault.seal(s.expose(), sealed_at(column, appid));
        let mut active: wx_app::ActiveModel = m.into();
        if let Some(s) = secret {
            active.secret_enc = Set(Some(seal(s, "secret_enc")));
        }
        if let Some(s) = token {
            active.token_enc = Set(Some(seal(s, "token_enc")));
        }
        if let Some(s) = aes_key {
            active.aes_key_enc = Set(Some(seal(s, "aes_key_enc")));
        }
        active.updated_at = Set(self.clock.now());
        active.update(&self.db).await?;
        self.sealed_secrets.invalidate(appid);
        Ok(())
    }

    /// Store the authorizer refresh token a component obtained for an account.
    pub async fn set_authorizer_refresh_token(
        &self,
        appid: &str,
        token: &Secret,
    ) -> Result<(), AppRegistryError> {
        let m = wx_app::Entity::find_by_id(appid.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| AppRegistryError::NotFound(appid.to_string()))?;
        let mut active: wx_app::ActiveModel = m.into();
        active.authorizer_refresh_token_enc = Set(Some(self.vault.seal(
            token.expose(),
            sealed_at("authorizer_refresh_token_enc", appid),
        )));
        active.updated_at = Set(self.clock.now());
        active.update(&self.db).await?;
        Ok(())
    }

    /// Remove an app. A component that official accounts are still authorized to is refused,
    /// naming them: they would lose their only way to WeChat.
    pub async fn remove(&self, appid: &str) -> Result<(), AppRegistryError> {
        let dependants: Vec<String> = wx_app::Entity::find()
            .filter(wx_app::Column::ComponentAppid.eq(appid))
            .order_by_asc(wx_app::Column::Appid)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| m.appid)
            .collect();
        if !dependants.is_empty() {
            return Err(AppRegistryError::InUse {
                component: appid.to_owned(),
                dependants,
            });
        }
        let r = wx_app::Entity::delete_by_id(appid.to_string())
            .exec(&self.db)
            .await?;
        self.known.invalidate(appid);
        self.sealed_secrets.invalidate(appid);
        if r.rows_affected == 0 {
            return Err(AppRegistryError::NotFound(appid.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appid_shape() {
        assert!(is_valid_appid("wx4f4bc4dec97d474b"));
        assert!(!is_valid_appid("wx4f4bc4dec97d474"));
        assert!(!is_valid_appid("xx4f4bc4dec97d474b"));
        assert!(!is_valid_appid("wx4f4bc4dec97d474z"));
        assert!(!is_valid_appid("wx4f4bc4dec97d474b0"));
    }
}
