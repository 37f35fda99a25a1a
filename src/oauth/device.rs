//! The device authorization grant (RFC 8628) for TVs, CLIs and kiosks: a device asks
//! `POST /oauth/device_authorization` for a device code and a user code, shows the user code,
//! and polls the token endpoint while its user approves at `/device` on a phone or computer.
//!
//! - **Codes.** The device code is 256 random bits; the user code is 8 letters of an alphabet
//!   without vowels or look-alikes ([`USER_CODE_ALPHABET`], 20⁸ ≈ 2.6·10¹⁰ codes), shown
//!   `XXXX-XXXX`. Both are stored as keyed hashes only.
//! - **User codes are single-use**: the user's decision spends it in one conditional UPDATE
//!   (`pending` → `approved`/`denied`), so of two browsers answering at the same instant one wins.
//!   Every code tried counts against a per-IP and a global limit, and every failure (malformed,
//!   unknown, expired, spent) gets the same answer.
//! - **Polling** answers `authorization_pending`, `slow_down` (a poll sooner than the interval
//!   after the last one; the interval then grows by 5 s), `expired_token`, `access_denied`, or
//!   tokens once: the device code is spent (`approved` → `issued`) by one conditional UPDATE, and
//!   a later poll gets `invalid_grant`.

use std::sync::Arc;

use rand::Rng;
use rand::rngs::OsRng;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    SqlErr,
};
use serde::Serialize;

use entity::device_authorization;

use crate::audit::{Audit, AuditEvent, AuditKind, Outcome};
use crate::clock::SharedClock;
use crate::limits::Limit;
use crate::oauth::OAuthServices;
use crate::oauth::client_auth::authenticate_request;
use crate::oauth::error::OAuthError;
use crate::oauth::grant_type::GrantType;
use crate::oauth::grants::effective_scope;
use crate::oauth::params::Params;
use crate::vault::{Vault, random_token};

/// How long a device authorization lives (seconds).
pub const DEVICE_CODE_TTL: i64 = 600;
/// The polling interval a device starts with (seconds).
pub const POLL_INTERVAL: i32 = 5;
/// How much a `slow_down` adds to the interval (seconds; RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: i32 = 5;
/// The letters of a user code: consonants only (no words), without look-alikes.
pub const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code.
pub const USER_CODE_LEN: usize = 8;
/// The verification page, as the device shows it.
pub const VERIFICATION_PATH: &str = "/device";

const PENDING: &str = "pending";
const APPROVED: &str = "approved";
const DENIED: &str = "denied";
const ISSUED: &str = "issued";

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeviceAuthorizationResponse {
    pub device_code: String,
    /// `XXXX-XXXX`.
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i32,
}

/// What a poll of the token endpoint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// The user has not answered.
    Pending,
    /// Too soon after the last poll; the interval grew.
    SlowDown,
    /// The device authorization expired.
    Expired,
    /// The user said no.
    Denied,
    /// Unknown, another client's, or already used.
    Invalid,
    /// The user approved; this poll spent the device code.
    Approved {
        account_id: i64,
        auth_time: Option<i64>,
        scope: String,
    },
}

/// A device waiting for its user, as the verification page shows it.
#[derive(Debug, Clone)]
pub struct PendingDevice {
    pub client_id: String,
    pub scope: Vec<String>,
    /// The user code, `XXXX-XXXX`.
    pub user_code: String,
}

/// The user's answer at the verification page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

/// Why a user code was not accepted.
#[derive(Debug)]
pub enum UserCodeError {
    /// Malformed, unknown, expired or already used: one answer for all.
    Refused,
    /// Too many codes tried; retry after this many seconds.
    TooMany { retry_after_secs: u64 },
    /// Our storage failed.
    Storage(DbErr),
}

impl From<DbErr> for UserCodeError {
    fn from(error: DbErr) -> Self {
        Self::Storage(error)
    }
}

/// The user code as typed, reduced to its letters (`abcd-efgh`, `ABCD EFGH` → `ABCDEFGH`);
/// `None` unless exactly [`USER_CODE_LEN`] letters of the alphabet remain.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let letters: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (letters.len() == USER_CODE_LEN && letters.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(letters)
}

/// `ABCDEFGH` → `ABCD-EFGH`.
pub fn display_user_code(code: &str) -> String {
    let (head, tail) = code.split_at(code.len().min(USER_CODE_LEN / 2));
    format!("{head}-{tail}")
}

fn new_user_code() -> String {
    let mut rng = OsRng;
    (0..USER_CODE_LEN)
        .map(|_| char::from(USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())]))
        .collect()
}

/// Count one user code tried from this request's address, and by everyone.
async fn count_user_code_try() -> Result<(), UserCodeError> {
    let Some(limits) = crate::limits::current() else {
        return Ok(());
    };
    let ip = crate::request_context::client_ip()
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    for (limit, key) in [
        (Limit::DeviceUserCode, ip.as_str()),
        (Limit::DeviceUserCodeGlobal, "all"),
    ] {
        if let Err(refused) = limits.check(limit, key).await {
            tracing::warn!(limit = limit.name(), "device user code tries rate-limited");
            return Err(UserCodeError::TooMany {
                retry_after_secs: refused.retry_after_secs(),
            });
        }
    }
    Ok(())
}

/// Device authorizations over sea-orm.
#[derive(Clone)]
pub struct DeviceAuthorizations {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
    audit: Audit,
}

impl DeviceAuthorizations {
    pub fn new(
        db: DatabaseConnection,
        vault: Arc<Vault>,
        clock: SharedClock,
        audit: Audit,
    ) -> Self {
        Self {
            db,
            vault,
            clock,
            audit,
        }
    }

    /// Store a new device authorization; returns (device code, user code).
    pub async fn start(&self, client_id: &str, scope: &str) -> Result<(String, String), DbErr> {
        let now = self.clock.now();
        let device_code = random_token(32);
        let mut attempt = 0;
        loop {
            let user_code = new_user_code();
            let row = device_authorization::ActiveModel {
                device_code_hash: Set(self.vault.fingerprint(&device_code)),
                user_code_hash: Set(self.vault.fingerprint(&user_code)),
                client_id: Set(client_id.to_owned()),
                scope: Set(scope.to_owned()),
                status: Set(PENDING.to_owned()),
                account_id: Set(None),
                auth_time: Set(None),
                poll_interval: Set(POLL_INTERVAL),
                last_polled_at: Set(None),
                decided_at: Set(None),
                expires_at: Set(now.saturating_add(DEVICE_CODE_TTL)),
                created_at: Set(now),
            };
            match row.insert(&self.db).await {
                Ok(_) => return Ok((device_code, user_code)),
                // Two live user codes alike (the unique index): draw another.
                Err(error)
                    if attempt < 3
                        && matches!(
                            error.sql_err(),
                            Some(SqlErr::UniqueConstraintViolation(_))
                        ) =>
                {
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The device waiting for `typed` (a user code as the person typed it). Counts against the
    /// user-code limits.
    pub async fn pending(&self, typed: &str) -> Result<PendingDevice, UserCodeError> {
        count_user_code_try().await?;
        let code = normalize_user_code(typed).ok_or(UserCodeError::Refused)?;
        let row = device_authorization::Entity::find()
            .filter(device_authorization::Column::UserCodeHash.eq(self.vault.fingerprint(&code)))
            .filter(device_authorization::Column::Status.eq(PENDING))
            .filter(device_authorization::Column::ExpiresAt.gt(self.clock.now()))
            .all(&self.db)
            .await?
            .into_iter()
            .next()
            .ok_or(UserCodeError::Refused)?;
        Ok(PendingDevice {
            client_id: row.client_id,
            scope: row
                .scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            user_code: display_user_code(&code),
        })
    }

    /// The person's answer: spends the user code in one conditional UPDATE (the first answer
    /// wins; a second, even at the same instant, is refused like an unknown code). Counts
    /// against the user-code limits. Returns the client the answer was for.
    pub async fn decide(
        &self,
        typed: &str,
        account_id: i64,
        auth_time: i64,
        decision: Decision,
    ) -> Result<String, UserCodeError> {
        count_user_code_try().await?;
        let code = normalize_user_code(typed).ok_or(UserCodeError::Refused)?;
        let now = self.clock.now();
        let hash = self.vault.fingerprint(&code);
        let status = match decision {
            Decision::Approve => APPROVED,
            Decision::Deny => DENIED,
        };
        let spend = device_authorization::Entity::update_many()
            .col_expr(device_authorization::Column::Status, Expr::value(status))
            .col_expr(
                device_authorization::Column::AccountId,
                Expr::value(account_id),
            )
            .col_expr(
                device_authorization::Column::AuthTime,
                Expr::value(auth_time),
            )
            .col_expr(device_authorization::Column::DecidedAt, Expr::value(now))
            .filter(device_authorization::Column::UserCodeHash.eq(hash.as_str()))
            .filter(device_authorization::Column::Status.eq(PENDING))
            .filter(device_authorization::Column::ExpiresAt.gt(now));
        let find = device_authorization::Entity::find()
            .filter(device_authorization::Column::UserCodeHash.eq(hash.as_str()));
        let row = crate::db::spend_once(&self.db, spend, find)
            .await?
            .ok_or(UserCodeError::Refused)?;
        self.audit
            .record(
                AuditEvent::new(
                    AuditKind::DeviceDecision,
                    match decision {
                        Decision::Approve => Outcome::Ok,
                        Decision::Deny => Outcome::Refused,
                    },
                )
                .client(row.client_id.as_str())
                .account(account_id)
                .detail("decision", status),
            )
            .await;
        Ok(row.client_id)
    }

    /// A poll of the token endpoint by `client_id` with `device_code`.
    pub async fn poll(&self, client_id: &str, device_code: &str) -> Result<PollOutcome, DbErr> {
        let now = self.clock.now();
        let hash = self.vault.fingerprint(device_code);
        let Some(row) = crate::db::find_unique(
            device_authorization::Entity::find_by_id(hash.clone()),
            &self.db,
        )
        .await?
        .filter(|row| row.client_id == client_id) else {
            return Ok(PollOutcome::Invalid);
        };
        if row.status == ISSUED {
            return Ok(PollOutcome::Invalid);
        }
        if row.expires_at <= now {
            return Ok(PollOutcome::Expired);
        }
        let this = || {
            device_authorization::Entity::update_many()
                .filter(device_authorization::Column::DeviceCodeHash.eq(hash.as_str()))
        };
        match row.status.as_str() {
            DENIED => Ok(PollOutcome::Denied),
            APPROVED => {
                let spend = this()
                    .col_expr(device_authorization::Column::Status, Expr::value(ISSUED))
                    .col_expr(device_authorization::Column::LastPolledAt, Expr::value(now))
                    .filter(device_authorization::Column::Status.eq(APPROVED))
                    .filter(device_authorization::Column::ExpiresAt.gt(now));
                if !crate::db::spend(&self.db, spend).await? {
                    return Ok(PollOutcome::Invalid);
                }
                let Some(account_id) = row.account_id else {
                    return Err(DbErr::Custom("an approved device has no account".into()));
                };
                Ok(PollOutcome::Approved {
                    account_id,
                    auth_time: row.auth_time,
                    scope: row.scope,
                })
            }
            _ => {
                // On time: no poll yet, or the last one at least an interval ago. Counted in one
                // conditional UPDATE, so of two polls at the same instant one is early.
                let on_time = Condition::any()
                    .add(device_authorization::Column::LastPolledAt.is_null())
                    .add(
                        Expr::col(device_authorization::Column::LastPolledAt)
                            .add(Expr::col(device_authorization::Column::PollInterval))
                            .lte(now),
                    );
                let counted = this()
                    .col_expr(device_authorization::Column::LastPolledAt, Expr::value(now))
                    .filter(device_authorization::Column::Status.eq(PENDING))
                    .filter(on_time);
                if crate::db::spend(&self.db, counted).await? {
                    return Ok(PollOutcome::Pending);
                }
                let slower = this()
                    .col_expr(
                        device_authorization::Column::PollInterval,
                        Expr::col(device_authorization::Column::PollInterval).add(SLOW_DOWN_STEP),
                    )
                    .col_expr(device_authorization::Column::LastPolledAt, Expr::value(now))
                    .filter(device_authorization::Column::Status.eq(PENDING));
                slower.exec(&self.db).await?;
                Ok(PollOutcome::SlowDown)
            }
        }
    }
}

/// `POST /oauth/device_authorization` (RFC 8628 §3.1–3.2): authenticate the client as the token
/// endpoint does (a public client names itself), check that it may use the device grant and the
/// scope, and start a device authorization. `issuer` is where `/device` is served.
pub async fn authorize_device(
    services: &OAuthServices,
    authorization: Option<&str>,
    params: Params,
    issuer: &str,
) -> Result<DeviceAuthorizationResponse, OAuthError> {
    let (client, _) = authenticate_request(&services.clients, authorization, &params).await?;
    if let Some(limits) = crate::limits::current()
        && let Err(refused) = limits.check(Limit::TokenClient, &client.client_id).await
    {
        return Err(OAuthError::too_many_requests(
            refused.retry_after_secs(),
            "this client is sending too many requests; retry later",
        ));
    }
    if !client.allows_grant(GrantType::DeviceCode) {
        return Err(OAuthError::unauthorized_client(
            "this client may not use the device authorization grant",
        ));
    }
    let scope = effective_scope(&client, params.get("scope"))?;
    let (device_code, user_code) = services
        .devices
        .start(&client.client_id, &scope)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "storing a device authorization");
            OAuthError::server_error()
        })?;
    let verification_uri = format!("{issuer}{VERIFICATION_PATH}");
    let user_code = display_user_code(&user_code);
    Ok(DeviceAuthorizationResponse {
        device_code,
        verification_uri_complete: format!("{verification_uri}?user_code={user_code}"),
        verification_uri,
        user_code,
        expires_in: DEVICE_CODE_TTL,
        interval: POLL_INTERVAL,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_typed_forgivingly_and_checked_strictly() {
        assert_eq!(
            normalize_user_code("bcdf-ghjk").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(
            normalize_user_code(" BCDF GHJK ").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(normalize_user_code("BCDF-GHJ"), None);
        assert_eq!(
            normalize_user_code("ABCD-EFGH"),
            None,
            "vowels are not in the alphabet"
        );
        assert_eq!(normalize_user_code("BCDF-GHJK-L"), None);
        assert_eq!(display_user_code("BCDFGHJK"), "BCDF-GHJK");
    }

    #[test]
    fn new_user_codes_use_the_alphabet() {
        for _ in 0..100 {
            let code = new_user_code();
            assert_eq!(normalize_user_code(&code).as_deref(), Some(code.as_str()));
        }
    }
}
