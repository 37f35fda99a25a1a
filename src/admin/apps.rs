//! WeChat apps as administrators change them: the [`AppRegistry`](crate::app_registry) with
//! every change audited (`app_changed`, naming the actor) and every refusal naming its field.
//! The admin API, the console and `wxauth app …` all call these.
//!
//! Secrets, message tokens and EncodingAESKeys are write-only: an [`AppView`] says whether one
//! is stored, never what it is. Each view carries the app's upstream token state (expiry and
//! last refresh, from the shared token cache; never the token) and its calls and errors today
//! (see [`call_ledger`](crate::wechat::call_ledger)).

use std::collections::HashMap;

use serde::Serialize;

use crate::app_registry::{AppKind, AppRegistryError, NewApp};
use crate::audit::{AuditEvent, AuditKind, Outcome};
use crate::secret::Secret;
use crate::wechat::call_ledger::{Tally, day_of};
use crate::wechat::token_cache::TokenState;

use super::{Actor, Admin, AdminError};

impl From<AppRegistryError> for AdminError {
    fn from(e: AppRegistryError) -> Self {
        match e {
            AppRegistryError::InvalidAppId(_) => AdminError::invalid("appid", e.to_string()),
            AppRegistryError::Invalid { field, reason } => AdminError::invalid(field, reason),
            AppRegistryError::UnknownComponent(_) => {
                AdminError::invalid("component_appid", e.to_string())
            }
            AppRegistryError::AlreadyExists(_)
            | AppRegistryError::BaseTaken { .. }
            | AppRegistryError::InUse { .. } => AdminError::Conflict(e.to_string()),
            AppRegistryError::NotFound(_) => AdminError::NotFound(e.to_string()),
            AppRegistryError::Sealed(_) => AdminError::Internal(e.to_string()),
            AppRegistryError::Db(e) => AdminError::Db(e),
        }
    }
}

/// An upstream token as an admin sees it (never the token).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct UpstreamTokenView {
    /// `access_token`, `component_access_token` or `authorizer_access_token`.
    pub kind: String,
    /// Unix seconds; absent when none was fetched yet or it was dropped as invalid.
    pub expires_at: Option<i64>,
    /// Unix seconds of the last successful fetch.
    pub refreshed_at: Option<i64>,
}

/// Calls wxauth made to WeChat for an app today (Beijing time, when WeChat's daily quotas
/// reset), over every instance.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CallsToday {
    /// The Beijing-time date, `2026-12-03`.
    pub date: String,
    pub calls: i64,
    /// Calls that failed (an errcode, an HTTP error, no answer).
    pub errors: i64,
}

/// A WeChat app as the admin API and the console show it: secrets only as "stored or not".
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AppView {
    pub appid: String,
    /// `mini_program`, `official_account`, `component` or `website`.
    pub kind: String,
    /// The Open Platform component an official account is authorized to.
    pub component_appid: Option<String>,
    /// The base account (snsapi_userinfo, gives the unionid; every H5 sign-in goes through it).
    pub base: bool,
    pub has_secret: bool,
    /// Components and official accounts with their own message URL: the message token is
    /// stored.
    pub has_token: bool,
    /// Components and official accounts in safe mode: the EncodingAESKey is stored.
    pub has_aes_key: bool,
    /// Official accounts under a component: an authorizer refresh token is stored.
    pub authorized: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    pub upstream_tokens: Vec<UpstreamTokenView>,
    pub calls_today: CallsToday,
}

/// New values for an app's write-only fields; absent ones are kept.
#[derive(Debug, Clone, Default)]
pub struct AppSecrets {
    pub secret: Option<Secret>,
    pub token: Option<Secret>,
    pub aes_key: Option<Secret>,
}

fn app_changed(appid: &str) -> AuditEvent {
    AuditEvent::new(AuditKind::AppChanged, Outcome::Ok).subject(appid)
}

/// `2026-12-03` for a day number of [`day_of`].
fn date_of_day(day: i64) -> String {
    chrono::DateTime::from_timestamp(day.saturating_mul(86_400), 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

impl Admin {
    /// Every app, by appid, with its token state and today's calls.
    pub async fn apps(&self) -> Result<Vec<AppView>, AdminError> {
        let rows = self.apps.list().await?;
        self.views(rows).await
    }

    /// One app.
    pub async fn app(&self, appid: &str) -> Result<AppView, AdminError> {
        let rows: Vec<_> = self
            .apps
            .list()
            .await?
            .into_iter()
            .filter(|m| m.appid == appid)
            .collect();
        self.views(rows)
            .await?
            .pop()
            .ok_or_else(|| AdminError::NotFound(format!("no app {appid}")))
    }

    async fn views(&self, rows: Vec<entity::wx_app::Model>) -> Result<Vec<AppView>, AdminError> {
        let appids: Vec<String> = rows.iter().map(|m| m.appid.clone()).collect();
        let mut tokens: HashMap<String, Vec<UpstreamTokenView>> = HashMap::new();
        for TokenState {
            appid,
            kind,
            expires_at,
            refreshed_at,
        } in self.wechat.tokens().states(&appids).await?
        {
            tokens.entry(appid).or_default().push(UpstreamTokenView {
                kind,
                expires_at,
                refreshed_at,
            });
        }
        let today = self.wechat.calls().today(&appids).await?;
        let date = date_of_day(day_of(self.clock.now()));
        Ok(rows
            .into_iter()
            .map(|m| {
                let mut upstream_tokens = tokens.remove(&m.appid).unwrap_or_default();
                upstream_tokens.sort_by(|a, b| a.kind.cmp(&b.kind));
                let Tally { calls, errors } = today.get(&m.appid).copied().unwrap_or_default();
                AppView {
                    has_secret: m.secret_enc.is_some(),
                    has_token: m.token_enc.is_some(),
                    has_aes_key: m.aes_key_enc.is_some(),
                    authorized: m.authorizer_refresh_token_enc.is_some(),
                    appid: m.appid,
                    kind: m.kind,
                    component_appid: m.component_appid,
                    base: m.is_base,
                    created_at: m.created_at,
                    updated_at: m.updated_at,
                    upstream_tokens,
                    calls_today: CallsToday {
                        date: date.clone(),
                        calls,
                        errors,
                    },
                }
            })
            .collect())
    }

    /// Register an app. A second base account is refused unless `replace_base` says it takes
    /// the current one's place (which stays registered, no longer the base; audited too).
    /// Returns the app and the base account it replaced.
    pub async fn add_app(
        &self,
        actor: &Actor,
        new: NewApp,
        replace_base: bool,
    ) -> Result<(AppView, Option<String>), AdminError> {
        if replace_base && !new.is_base {
            return Err(AdminError::invalid(
                "replace",
                "applies only to a new base account (base)",
            ));
        }
        let appid = new.appid.clone();
        let previous_base = if replace_base {
            self.apps.base_appid().await?
        } else {
            None
        };
        if replace_base {
            self.apps.add_replacing_base(new).await?;
        } else {
            self.apps.add(new).await?;
        }
        self.record(actor, app_changed(&appid), "add").await;
        let replaced = previous_base.filter(|p| *p != appid);
        if let Some(previous) = &replaced {
            self.record(actor, app_changed(previous), "no_longer_base")
                .await;
        }
        Ok((self.app(&appid).await?, replaced))
    }

    /// Store a secret (or a component's message token or EncodingAESKey) reset in WeChat's
    /// console; the app and the accounts under it stay registered.
    pub async fn update_app(
        &self,
        actor: &Actor,
        appid: &str,
        new: AppSecrets,
    ) -> Result<AppView, AdminError> {
        if new.secret.is_none() && new.token.is_none() && new.aes_key.is_none() {
            return Err(AdminError::invalid(
                "secret",
                "give at least one of secret, token and aes_key",
            ));
        }
        self.apps
            .update_secrets(
                appid,
                new.secret.as_ref(),
                new.token.as_ref(),
                new.aes_key.as_ref(),
            )
            .await?;
        let changed: Vec<&str> = [
            ("secret", new.secret.is_some()),
            ("token", new.token.is_some()),
            ("aes_key", new.aes_key.is_some()),
        ]
        .iter()
        .filter(|(_, given)| *given)
        .map(|(name, _)| *name)
        .collect();
        self.record(
            actor,
            app_changed(appid).detail("replaced", changed.join(",")),
            "update",
        )
        .await;
        self.app(appid).await
    }

    /// Remove an app; a component official accounts still use is refused, naming them.
    pub async fn remove_app(&self, actor: &Actor, appid: &str) -> Result<(), AdminError> {
        self.apps.remove(appid).await?;
        self.record(actor, app_changed(appid), "remove").await;
        Ok(())
    }
}

/// An app kind from its name, refused naming the field.
pub fn app_kind(text: &str) -> Result<AppKind, AdminError> {
    AppKind::parse(text).ok_or_else(|| {
        AdminError::invalid(
            "kind",
            "must be mini_program, official_account, component or website",
        )
    })
}
