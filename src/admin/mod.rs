//! Administration: the operations behind the admin API (`/admin/api/v1`) and the `wxauth user`,
//! `client`, `app`, `resource`, `keys` and `audit` commands, written once here. Users (find, show,
//! disable and enable, revoke, export, delete), clients (with secret rotation that overlaps), WeChat
//! apps (write-only secrets, upstream token state, calls today), resources (RFC 8707), signing
//! keys (staged rotation, retirement), the admin role, the audit trail, webhook endpoints and
//! their deliveries, and account merges (dry run, queued merges approved or rejected).
//!
//! Every change is written to the audit trail with the [`Actor`] that made it. Errors are
//! [`AdminError`]s that name the field and the reason; they know nothing of HTTP.

pub mod apps;
pub mod clients;
pub mod console;
pub mod keys;
pub mod merges;
pub mod resources;
pub mod roles;
pub mod users;
pub mod webhooks;

use std::net::IpAddr;

use sea_orm::{DatabaseConnection, DbErr};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::audit::{Audit, AuditCursor, AuditEvent, AuditFilter, StoredEvent};
use crate::clock::SharedClock;
use crate::limits::Limits;
use crate::oauth::ClientRegistry;
use crate::oauth::token_service::TokenService;
use crate::secret::Secret;

/// The throttle key of failed admin-token checks (beside client ids in the guessing throttle).
const ADMIN_THROTTLE_KEY: &str = "admin-api";

/// Why a caller was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessRefused {
    /// No token, a wrong token, or no token configured: one answer for all.
    Unauthorized,
    /// Too many failures from this address: try again after this many seconds.
    Throttled { retry_after_secs: u64 },
}

/// Whether `presented` is `configured`, compared in constant time: both are hashed first, so
/// neither the content nor the length of the configured token shows in the timing.
pub fn token_matches(configured: &Secret, presented: &str) -> bool {
    let want = Sha256::digest(configured.expose().as_bytes());
    let got = Sha256::digest(presented.as_bytes());
    bool::from(want.ct_eq(&got))
}

/// The most events (or users) one page returns.
pub const MAX_PAGE: u64 = 500;

/// A page of the audit trail, newest first.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// The cursor (`after`) of the newer page, if there is one.
    pub newer: Option<i64>,
    /// The cursor (`before`) of the older page, if there is one.
    pub older: Option<i64>,
}

/// Who makes a change, as the audit trail names them: `admin-token` for the API's bearer
/// token, `cli:USER` for a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    /// The bearer of `WXAUTH_ADMIN_TOKEN`.
    pub fn admin_token() -> Self {
        Self("admin-token".into())
    }

    /// An operator at the command line.
    pub fn cli(user: &str) -> Self {
        Self(format!("cli:{user}"))
    }

    /// An admin signed in to the console with WeChat.
    pub fn console_account(account_id: i64) -> Self {
        Self(format!("console:account:{account_id}"))
    }

    /// The console's break-glass sign-in with `WXAUTH_ADMIN_TOKEN`.
    pub fn console_token() -> Self {
        Self("console:admin-token".into())
    }

    /// An actor as stored (a console session carries it between requests).
    pub fn from_stored(text: &str) -> Self {
        Self(text.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why an administrative operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A value was refused: which field, and why. Nothing was written.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change contradicts the current state (an existing id, the signing key).
    #[error("{0}")]
    Conflict(String),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("{0}")]
    Internal(String),
}

impl AdminError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// The administration services, built from the application state (cheap: everything is
/// shared).
#[derive(Clone)]
pub struct Admin {
    pub(crate) db: DatabaseConnection,
    pub(crate) clock: SharedClock,
    pub(crate) audit: Audit,
    pub(crate) clients: ClientRegistry,
    pub(crate) tokens: TokenService,
    pub(crate) client_secret_overlap: i64,
    pub(crate) key_activation_delay: i64,
    pub(crate) admin_token: Option<Secret>,
    pub(crate) limits: Limits,
    pub(crate) vault: std::sync::Arc<crate::vault::Vault>,
    pub(crate) oauth: crate::oauth::OAuthServices,
    pub(crate) apps: crate::app_registry::AppRegistry,
    pub(crate) wechat: std::sync::Arc<crate::wechat::WeChat>,
}

impl Admin {
    /// Let in the bearer of `WXAUTH_ADMIN_TOKEN`. Failures from one address are throttled like
    /// failed client authentication; no configured token lets nobody in.
    pub async fn authenticate(
        &self,
        presented: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<Actor, AccessRefused> {
        if let Some(ip) = ip
            && let Some(refused) = self.limits.client_auth_blocked(ADMIN_THROTTLE_KEY, ip)
        {
            return Err(AccessRefused::Throttled {
                retry_after_secs: refused.retry_after_secs(),
            });
        }
        let ok = match (&self.admin_token, presented) {
            (Some(configured), Some(presented)) => token_matches(configured, presented),
            _ => false,
        };
        // A request without a token guesses nothing; a wrong token counts as a failure.
        match (ok, ip) {
            (true, Some(ip)) => {
                self.limits
                    .client_auth_succeeded(ADMIN_THROTTLE_KEY, ip)
                    .await
            }
            (false, Some(ip)) if presented.is_some() => {
                self.limits.client_auth_failed(ADMIN_THROTTLE_KEY, ip).await
            }
            _ => {}
        }
        if ok {
            Ok(Actor::admin_token())
        } else {
            Err(AccessRefused::Unauthorized)
        }
    }

    /// Record a change `actor` made: `event` names what changed, `action` how.
    async fn record(&self, actor: &Actor, event: AuditEvent, action: &str) {
        self.audit
            .record(event.actor(actor.as_str()).detail("action", action))
            .await;
    }

    /// Audit events matching `filter`, newest first (at most [`MAX_PAGE`]).
    pub async fn events(&self, filter: &AuditFilter) -> Result<Vec<StoredEvent>, AdminError> {
        Ok(self.events_page(filter, AuditCursor::Newest).await?.events)
    }

    /// One page of the audit events matching `filter` from `cursor`, newest first (at most
    /// `filter.limit`, itself at most [`MAX_PAGE`]), with the cursors of the pages beside it.
    pub async fn events_page(
        &self,
        filter: &AuditFilter,
        cursor: AuditCursor,
    ) -> Result<EventPage, AdminError> {
        if !(1..=MAX_PAGE).contains(&filter.limit) {
            return Err(AdminError::invalid(
                "limit",
                format!("must be from 1 to {MAX_PAGE}"),
            ));
        }
        // One more than asked says whether there is a page beyond.
        let probe = AuditFilter {
            limit: filter.limit + 1,
            ..filter.clone()
        };
        let mut events = self.audit.list_from(&probe, cursor).await?;
        let beyond = events.len() as u64 > filter.limit;
        if beyond {
            match cursor {
                // Newest first: the extra one is the oldest (last) or, going back, the newest.
                AuditCursor::After(_) => {
                    events.remove(0);
                }
                _ => {
                    events.pop();
                }
            }
        }
        let (has_newer, has_older) = match cursor {
            AuditCursor::Newest => (false, beyond),
            AuditCursor::Before(_) => (true, beyond),
            AuditCursor::After(_) => (beyond, true),
        };
        Ok(EventPage {
            newer: events.first().map(|e| e.id).filter(|_| has_newer),
            older: events.last().map(|e| e.id).filter(|_| has_older),
            events,
        })
    }
}
