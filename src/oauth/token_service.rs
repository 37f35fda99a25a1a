//! Token issuance, the service: JWT access tokens (RFC 9068) signed and verified, opaque refresh
//! tokens kept in families for rotation and reuse detection (RFC 9700 §4.14), revocation and the
//! access-token denylist. The grants that issue for a person directly (`flow`, `mini_program`,
//! `device_code`) call [`TokenService::issue_for_user`]; the grants oxide-auth drives
//! (authorization_code, refresh_token, client_credentials) go through its adapter,
//! `oauth::token_issuer`.
//!
//! Families are rows of their own (`refresh_token_family`): an absolute expiry that rotation never
//! carries a family past, and a revoked mark. Two requests may arrive at the same instant, so:
//! - what an issuance will produce (the access token's `jti` and expiry, the family) is chosen
//!   first, in a [`Plan`], and recorded before any token is handed out: each refresh-token row
//!   names the access token issued with it, and an authorization code records both in the
//!   statement that spends it (see `oauth::codes`);
//! - rotation is one transaction: lock the family row if it is live, spend the old token with a
//!   conditional UPDATE that checks the family again, insert the new token;
//! - revocation is one transaction too, starting with the family row, so it runs before or after
//!   a rotation of the same family, never in between: the family is marked, its tokens are
//!   revoked and the `jti`s of every access token it produced go on the denylist.

use std::sync::Arc;

use oxide_auth::primitives::scope::Scope;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use entity::{audit_event, refresh_token, refresh_token_family, revoked_access_token};

use crate::audit::{Audit, AuditEvent, AuditKind, Outcome};
use crate::clock::SharedClock;
use crate::db::revocation::{self, Families};
use crate::oauth::client_registry::RegisteredClient;
use crate::oauth::error::OAuthError;
use crate::oauth::grant_type::GrantType;
use crate::oauth::issuance_writer::{IssuanceRows, IssuanceWriter};
use crate::oauth::keys::SigningKeys;
use crate::oauth::resources::{Resource, ResourceRegistry, narrow_scope};
use crate::users::{Account, RepoError, UserRepo};
use crate::vault::{Vault, random_token};

/// The `typ` of our access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// The `sub` of a token about a client itself is this prefix and the client id, so that it can
/// never equal an account's `sub` (a number): a client called `1` is not account 1.
pub const CLIENT_SUBJECT_PREFIX: &str = "client:";

/// Who a token is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    /// A person: the owner id is a flow_user id.
    User,
    /// The client itself (client_credentials): the owner id is the client id.
    Client,
}

impl SubjectKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Client => "client",
        }
    }

    /// The `sub` claim for owner `owner_id`.
    pub fn subject(self, owner_id: &str) -> String {
        match self {
            Self::User => owner_id.to_owned(),
            Self::Client => format!("{CLIENT_SUBJECT_PREFIX}{owner_id}"),
        }
    }
}

/// The `aud` claim: one identifier, or several when a token is for several resources (RFC 7519
/// §4.1.3, RFC 8707 §2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// The issuer, or the identifiers of `resources` when there are any.
    pub fn for_resources(issuer: &str, resources: &[Resource]) -> Self {
        match resources {
            [] => Self::One(issuer.to_owned()),
            [one] => Self::One(one.identifier.clone()),
            many => Self::Many(many.iter().map(|r| r.identifier.clone()).collect()),
        }
    }

    /// Whether `audience` is one of the token's audiences.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

impl From<String> for Audience {
    fn from(audience: String) -> Self {
        Self::One(audience)
    }
}

/// The claims of an access token (RFC 9068 §2.2 plus the seed's user fields).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub client_id: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

/// What the last issuance produced, for building the token response.
#[derive(Debug, Clone)]
pub struct Issued {
    pub claims: AccessClaims,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: i64,
    /// The issuance's `token_issued` audit event was written with it (our own grants); the
    /// token endpoint records it otherwise.
    pub audited: bool,
}

/// A lifetime added to now went past what an `i64` holds (a misconfigured lifetime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a token lifetime overflows the clock")]
pub struct LifetimeOverflow;

/// `now + ttl`, refusing to wrap.
pub fn expiry(now: i64, ttl: i64) -> Result<i64, LifetimeOverflow> {
    now.checked_add(ttl).ok_or(LifetimeOverflow)
}

/// The access token an issuance will sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedAccess {
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

/// The family an issuance will put its refresh token in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFamily {
    pub id: String,
    /// The family's absolute end.
    pub expires_at: i64,
}

/// What an issuance will produce, chosen before anything is stored or handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub access: PlannedAccess,
    /// The new family, when a refresh token comes with the access token.
    pub family: Option<PlannedFamily>,
    /// The family's row was stored by the caller (the statement that spent a code).
    pub(super) family_stored: bool,
}

impl Plan {
    /// Say that the family's row already exists: the issuance adds its token to it.
    pub fn family_stored(mut self) -> Self {
        self.family_stored = true;
        self
    }
}

/// Why a refresh token could not be exchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRefusal {
    /// Unknown, expired, revoked, or its family ended.
    Invalid,
    /// Spent before: presented again, so its family is now revoked.
    Reused,
}

/// A refresh token with its family.
#[derive(Debug, Clone)]
pub struct StoredRefresh {
    pub token: refresh_token::Model,
    pub family: Option<refresh_token_family::Model>,
}

impl StoredRefresh {
    /// Whether the token and its family can still be used at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        let token = &self.token;
        let family_live = self
            .family
            .as_ref()
            .is_some_and(|f| f.revoked_at.is_none() && f.expires_at > now);
        family_live
            && token.rotated_at.is_none()
            && token.revoked_at.is_none()
            && token.expires_at > now
    }

    /// When the person signed in, if the sign-in that began the family said so.
    pub fn auth_time(&self) -> Option<i64> {
        let extensions: serde_json::Value =
            serde_json::from_str(&self.token.extensions).unwrap_or_default();
        extensions["auth_time"].as_i64()
    }

    /// What kind of subject the token is about.
    pub fn subject(&self) -> SubjectKind {
        let extensions: serde_json::Value =
            serde_json::from_str(&self.token.extensions).unwrap_or_default();
        if extensions["subject"] == "user" {
            SubjectKind::User
        } else {
            SubjectKind::Client
        }
    }

    /// The resources (RFC 8707) bound to the grant this token continues.
    pub fn bound_resources(&self) -> Vec<String> {
        let extensions: serde_json::Value =
            serde_json::from_str(&self.token.extensions).unwrap_or_default();
        extensions["resources"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Hex digits of a refresh token's issue time (unix milliseconds) at its start.
const ISSUE_TIME_DIGITS: usize = 12;

/// A new refresh token: its issue time (`ISSUE_TIME_DIGITS` lowercase hex digits of unix
/// milliseconds), a dot, then 32 random bytes (URL-safe base64). The time is no secret (the
/// access token says when it was issued); the random part is what makes the token unguessable.
fn new_refresh_token(now_ms: i64) -> String {
    format!(
        "{:0width$x}.{}",
        now_ms.max(0),
        random_token(32),
        width = ISSUE_TIME_DIGITS
    )
}

/// The issue-time start of a token made by [`new_refresh_token`], dot included. Tokens of the
/// earlier format (43 base64url characters, which has no dot) never have one.
fn issue_time_prefix(token: &str) -> Option<&str> {
    let prefix = token.get(..=ISSUE_TIME_DIGITS)?;
    let (digits, dot) = prefix.split_at(ISSUE_TIME_DIGITS);
    (dot == "."
        && digits
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    .then_some(prefix)
}

/// The row of a new family of `client_id` about `owner_id`, begun at `now`.
pub fn family_row(
    family: &PlannedFamily,
    client_id: &str,
    owner_id: &str,
    now: i64,
) -> refresh_token_family::ActiveModel {
    refresh_token_family::ActiveModel {
        family_id: Set(family.id.clone()),
        client_id: Set(client_id.to_owned()),
        owner_id: Set(owner_id.to_owned()),
        created_at: Set(now),
        expires_at: Set(family.expires_at),
        last_rotated_at: Set(None),
        revoked_at: Set(None),
    }
}

/// The `extensions` of a refresh-token row: the subject kind, and the resources bound to the
/// grant when there are any.
fn refresh_extensions(new: &NewRefresh<'_>) -> String {
    let mut extensions = serde_json::json!({ "subject": new.subject.as_str() });
    if let Some(auth_time) = new.auth_time {
        extensions["auth_time"] = serde_json::json!(auth_time);
    }
    if !new.resources.is_empty() {
        extensions["resources"] = serde_json::json!(new.resources);
    }
    extensions.to_string()
}

/// Tokens could not be issued; why was logged where it happened. `worth_retrying` when a
/// database write met a busy, locked or deadlocked database
/// ([`crate::db_error::is_worth_retrying`]): the same request sent again may succeed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, thiserror::Error)]
#[error("tokens could not be issued")]
pub struct IssueFailed {
    pub worth_retrying: bool,
}

impl IssueFailed {
    /// A failed database statement, which the caller logged.
    pub(crate) fn database(error: &DbErr) -> Self {
        Self {
            worth_retrying: crate::db_error::is_worth_retrying(error),
        }
    }

    /// A failed read of the user repository, which the caller logged.
    fn repo(error: &RepoError) -> Self {
        match error {
            RepoError::Db(error) => Self::database(error),
            RepoError::NotFound => Self::default(),
        }
    }
}

impl From<IssueFailed> for OAuthError {
    fn from(failed: IssueFailed) -> Self {
        OAuthError::failed(failed.worth_retrying)
    }
}

/// Shared token machinery.
#[derive(Clone)]
pub struct TokenService {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
    keys: SigningKeys,
    users: Arc<dyn UserRepo>,
    audit: Audit,
    issuer: String,
    /// The group commit of `issue_for_user`'s writes.
    issuances: IssuanceWriter,
}

/// The `token_issued` audit event of an issuance by `grant`: the client, the scope and audience
/// granted and the access token's `jti` (never a token), and the account when there is one.
pub fn issued_event(
    grant: GrantType,
    client_id: &str,
    scope: &str,
    audience: &str,
    jti: &str,
    account: Option<i64>,
) -> AuditEvent {
    let event = AuditEvent::new(AuditKind::TokenIssued, Outcome::Ok)
        .client(client_id)
        .detail("grant", grant.as_str())
        .detail("scope", scope)
        .detail("aud", audience)
        .detail("jti", jti);
    match account {
        Some(account) => event.account(account),
        None => event,
    }
}

/// A refresh-token row for `token` in `family`, issued beside the access token `access`.
pub(super) struct NewRefresh<'a> {
    pub client: &'a RegisteredClient,
    pub family: &'a PlannedFamily,
    pub owner_id: &'a str,
    pub subject: SubjectKind,
    pub scope: &'a str,
    pub access: &'a PlannedAccess,
    /// When the person signed in (OIDC `auth_time`), kept for the ID tokens of later refreshes.
    pub auth_time: Option<i64>,
    /// The resources bound to the grant (RFC 8707), for the tokens of later refreshes.
    pub resources: &'a [String],
}

impl TokenService {
    pub fn new(
        db: DatabaseConnection,
        vault: Arc<Vault>,
        clock: SharedClock,
        keys: SigningKeys,
        users: Arc<dyn UserRepo>,
        audit: Audit,
        issuer: String,
    ) -> Self {
        Self {
            issuances: IssuanceWriter::new(db.clone()),
            db,
            vault,
            clock,
            keys,
            users,
            audit,
            issuer,
        }
    }

    /// The registered resources (RFC 8707).
    pub fn resources(&self) -> ResourceRegistry {
        ResourceRegistry::new(self.db.clone())
    }

    pub fn keys(&self) -> &SigningKeys {
        &self.keys
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The key a refresh token's row is stored under: its keyed hash, after the issue time the
    /// token starts with ([`new_refresh_token`]), so that the tokens of one moment land on the
    /// same index pages instead of each on a page of its own. A token that does not start so
    /// (minted before this format) is keyed by its hash alone, as it was stored. A made-up
    /// token with a well-formed start gets a key no row has: the hash still has to match.
    pub(super) fn fingerprint(&self, token: &str) -> String {
        let hash = self.vault.fingerprint(token);
        match issue_time_prefix(token) {
            Some(prefix) => format!("{prefix}{hash}"),
            None => hash,
        }
    }

    /// Issue tokens for a person's `account` to `client` by `grant`: an access token for `scope`
    /// and, with `with_refresh`, the first refresh token of a new family. The issuance path of
    /// our own grants (`flow`, `mini_program`, `device_code`), which have no oxide-auth state
    /// machine to drive. `resources` (RFC 8707, already checked) are the access token's audience
    /// and are bound to the refresh token.
    ///
    /// The access token is signed first; then the family, its token and the `token_issued`
    /// audit event are written in one round trip ([`crate::round_trip::write_together`]; the hot
    /// path of every sign-in, where each statement's hand-off to the database cost more than the
    /// statement). So no refresh token is handed out without its audit event, and a failed write
    /// hands out nothing.
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_for_user(
        &self,
        client: &RegisteredClient,
        account: &Account,
        scope: &Scope,
        with_refresh: bool,
        resources: &[Resource],
        grant: GrantType,
    ) -> Result<Issued, IssueFailed> {
        let owner_id = account.id.to_string();
        let scope = scope.to_string();
        let plan = self.plan(client, with_refresh).map_err(|e| {
            tracing::error!(error = %e, client_id = %client.client_id);
            IssueFailed::default()
        })?;
        let (claims, access_token) = self
            .access_token(
                client,
                &owner_id,
                SubjectKind::User,
                &scope,
                &plan.access,
                Some(account),
                resources,
            )
            .await?
            // The grant checked the account first; a disable since then is a failed issuance.
            .ok_or_else(IssueFailed::default)?;
        let audience = match &claims.aud {
            Audience::One(one) => one.clone(),
            Audience::Many(many) => many.join(" "),
        };
        let event = self.audit.prepare(issued_event(
            grant,
            &client.client_id,
            &claims.scope,
            &audience,
            &claims.jti,
            Some(account.id),
        ));
        let refresh_token = match &plan.family {
            Some(family) => {
                let bound: Vec<String> = resources.iter().map(|r| r.identifier.clone()).collect();
                let new = NewRefresh {
                    client,
                    family,
                    owner_id: &owner_id,
                    subject: SubjectKind::User,
                    scope: &scope,
                    access: &plan.access,
                    auth_time: None,
                    resources: &bound,
                };
                Some(self.store_new_family(&new, event).await?)
            }
            None => {
                // No token goes out that the audit trail does not name.
                self.audit
                    .write(event)
                    .await
                    .map_err(|e| IssueFailed::database(&e))?;
                None
            }
        };
        Ok(Issued {
            expires_in: claims.exp - claims.iat,
            claims,
            access_token,
            refresh_token,
            audited: true,
        })
    }

    /// Write a new family, its first refresh token and the issuance's audit event together
    /// (through the group commit, [`IssuanceWriter`]), then make sure the account may still hold
    /// them: an account merged away (or disabled) meanwhile may have had its families revoked
    /// before this one was written, so it is read after the write, and the family revoked.
    async fn store_new_family(
        &self,
        new: &NewRefresh<'_>,
        event: audit_event::ActiveModel,
    ) -> Result<String, IssueFailed> {
        let (token, row) = self.refresh_row(new).map_err(|()| IssueFailed::default())?;
        let account_id: i64 = new.owner_id.parse().map_err(|_| IssueFailed::default())?;
        let rows = IssuanceRows {
            family: family_row(
                new.family,
                &new.client.client_id,
                new.owner_id,
                self.clock.now(),
            ),
            token: row,
            event,
            account_id,
        };
        let may_hold = self.issuances.write(rows).await.map_err(|error| {
            tracing::error!(%error, "storing a refresh token");
            IssueFailed::database(&error)
        })?;
        if !may_hold {
            if let Err(e) = self.revoke_family(&new.family.id).await {
                tracing::error!(error = %e, "revoking the family of a vanished account");
            }
            return Err(IssueFailed::default());
        }
        Ok(token)
    }

    /// Choose what an issuance for `client` will produce: a fresh `jti` and expiry, and with
    /// `with_refresh` a new family ending after the client's family lifetime.
    pub fn plan(
        &self,
        client: &RegisteredClient,
        with_refresh: bool,
    ) -> Result<Plan, LifetimeOverflow> {
        let now = self.clock.now();
        let access = PlannedAccess {
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            exp: expiry(now, client.access_token_ttl)?,
        };
        let family = if with_refresh {
            Some(PlannedFamily {
                // Time-ordered (UUIDv7): a family's id is a key of two indexes (the family's own
                // and its tokens'), and ids made in the same moment land on the same pages, where
                // random ones put every new family on a page of its own.
                id: uuid::Uuid::now_v7().to_string(),
                expires_at: expiry(now, client.refresh_family_ttl)?,
            })
        } else {
            None
        };
        Ok(Plan {
            access,
            family,
            family_stored: false,
        })
    }

    async fn user_claims(&self, owner_id: &str) -> Result<Option<Account>, IssueFailed> {
        let id: i64 = owner_id.parse().map_err(|_| IssueFailed::default())?;
        self.users.account(id).await.map_err(|e| {
            tracing::error!(error = %e, "loading account for token");
            IssueFailed::repo(&e)
        })
    }

    /// Sign the planned access token. `known_account` is the subject's account when the grant
    /// has just read it. `None` when the subject's account is disabled: it gets no tokens.
    /// With `resources` (RFC 8707), `aud` names them and `scope` keeps only the scopes at least
    /// one of them accepts; without, `aud` is the issuer.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn access_token(
        &self,
        client: &RegisteredClient,
        owner_id: &str,
        subject: SubjectKind,
        scope: &str,
        planned: &PlannedAccess,
        known_account: Option<&Account>,
        resources: &[Resource],
    ) -> Result<Option<(AccessClaims, String)>, IssueFailed> {
        let mut claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: subject.subject(owner_id),
            aud: Audience::for_resources(&self.issuer, resources),
            client_id: client.client_id.clone(),
            scope: narrow_scope(scope, resources),
            iat: planned.iat,
            exp: planned.exp,
            jti: planned.jti.clone(),
            user_name: None,
            account: None,
            flow_user_id: None,
            nick_name: None,
            avatar: None,
        };
        if subject == SubjectKind::User {
            let known = known_account.filter(|a| a.id.to_string() == owner_id);
            let account = match known {
                Some(account) => account.clone(),
                None => self
                    .user_claims(owner_id)
                    .await?
                    .ok_or_else(IssueFailed::default)?,
            };
            if account.is_disabled() {
                return Ok(None);
            }
            let name = account
                .union_id
                .clone()
                .unwrap_or_else(|| format!("user{}", account.id));
            claims.user_name = Some(name.clone());
            claims.account = Some(name);
            claims.flow_user_id = Some(account.id.to_string());
            claims.nick_name = account.nick_name;
            claims.avatar = account.avatar;
        }
        let token = self
            .keys
            .sign(ACCESS_TOKEN_TYP, &claims)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "signing access token");
                IssueFailed::default()
            })?;
        Ok(Some((claims, token)))
    }

    /// A refresh-token row and the token it stands for.
    fn refresh_row(
        &self,
        new: &NewRefresh<'_>,
    ) -> Result<(String, refresh_token::ActiveModel), ()> {
        let token = new_refresh_token(self.clock.now_millis());
        let now = self.clock.now();
        // A token never outlives its family.
        let expires_at = expiry(now, new.client.refresh_token_ttl)
            .map_err(|e| tracing::error!(error = %e, "refresh token lifetime"))?
            .min(new.family.expires_at);
        let row = refresh_token::ActiveModel {
            token_hash: Set(self.fingerprint(&token)),
            family_id: Set(new.family.id.clone()),
            client_id: Set(new.client.client_id.clone()),
            owner_id: Set(new.owner_id.to_string()),
            scope: Set(new.scope.to_string()),
            extensions: Set(refresh_extensions(new)),
            expires_at: Set(expires_at),
            created_at: Set(now),
            rotated_at: Set(None),
            revoked_at: Set(None),
            access_jti: Set(Some(new.access.jti.clone())),
            access_expires_at: Set(Some(new.access.exp)),
        };
        Ok((token, row))
    }

    /// Lock `family` for the rest of `txn` if it is live (not revoked, not ended): one
    /// conditional UPDATE of its row. Rotations and the family's revocation thereby take turns.
    async fn lock_live_family<C: ConnectionTrait>(
        &self,
        txn: &C,
        family_id: &str,
        now: i64,
    ) -> Result<bool, DbErr> {
        let locked = refresh_token_family::Entity::update_many()
            .col_expr(
                refresh_token_family::Column::LastRotatedAt,
                Expr::value(now),
            )
            .filter(refresh_token_family::Column::FamilyId.eq(family_id))
            .filter(refresh_token_family::Column::RevokedAt.is_null())
            .filter(refresh_token_family::Column::ExpiresAt.gt(now))
            .exec(txn)
            .await?;
        Ok(locked.rows_affected == 1)
    }

    /// Store the first refresh token of a grant and, unless the plan says its row exists, its
    /// family. `None` when the family was revoked before the token could join it (a code
    /// replayed meanwhile).
    pub(super) async fn store_first_refresh(
        &self,
        new: &NewRefresh<'_>,
        family_stored: bool,
    ) -> Result<Option<String>, IssueFailed> {
        let log = |e: DbErr| {
            tracing::error!(error = %e, "storing a refresh token");
            IssueFailed::database(&e)
        };
        let (token, row) = self.refresh_row(new).map_err(|()| IssueFailed::default())?;
        if family_stored {
            // The family's revocation and this token take turns on the family row.
            let txn = self.db.begin().await.map_err(log)?;
            if !self
                .lock_live_family(&txn, &new.family.id, self.clock.now())
                .await
                .map_err(log)?
            {
                txn.rollback().await.map_err(log)?;
                return Ok(None);
            }
            refresh_token::Entity::insert(row)
                .exec_without_returning(&txn)
                .await
                .map_err(log)?;
            txn.commit().await.map_err(log)?;
        } else {
            // A family nobody else knows of yet needs no transaction (the hot path of every
            // sign-in): the family first, then its token; a token without its family row would
            // be refused, a family without a token is harmless and expires.
            refresh_token_family::Entity::insert(family_row(
                new.family,
                &new.client.client_id,
                new.owner_id,
                self.clock.now(),
            ))
            .exec_without_returning(&self.db)
            .await
            .map_err(log)?;
            // One statement: `ActiveModel::insert` reads the row back afterwards (SQLite without
            // RETURNING), a second round trip on every token request that issues a refresh token.
            refresh_token::Entity::insert(row)
                .exec_without_returning(&self.db)
                .await
                .map_err(log)?;
        }
        // The account may have been merged away (or disabled) while this issuance ran, and its
        // revocation may have missed this family, written after it. Read the account after the
        // write: of the two, one sees the other.
        if new.subject == SubjectKind::User && !self.owner_may_hold_tokens(new.owner_id).await? {
            self.revoke_family(&new.family.id).await.map_err(log)?;
            return Ok(None);
        }
        Ok(Some(token))
    }

    /// Whether the account `owner_id` still exists and is enabled.
    async fn owner_may_hold_tokens(&self, owner_id: &str) -> Result<bool, IssueFailed> {
        Ok(self
            .user_claims(owner_id)
            .await?
            .is_some_and(|account| !account.is_disabled()))
    }

    /// Exchange `presented` for a new token of the same family, in one transaction: lock the
    /// live family, spend the presented token by a conditional UPDATE that checks the family
    /// again, insert the new token. A token that was spent before is a reuse: its family is
    /// revoked.
    pub(super) async fn rotate(
        &self,
        presented: &StoredRefresh,
        new: &NewRefresh<'_>,
    ) -> Result<Result<String, RefreshRefusal>, DbErr> {
        let now = self.clock.now();
        let hash = presented.token.token_hash.as_str();
        let family_id = presented.token.family_id.as_str();
        let (token, row) = self
            .refresh_row(new)
            .map_err(|()| DbErr::Custom("refresh token lifetime overflows".into()))?;
        let txn = self.db.begin().await?;
        let spent = if self.lock_live_family(&txn, family_id, now).await? {
            let live_family = Query::select()
                .column(refresh_token_family::Column::FamilyId)
                .from(refresh_token_family::Entity)
                .and_where(refresh_token_family::Column::FamilyId.eq(family_id))
                .and_where(refresh_token_family::Column::RevokedAt.is_null())
                .and_where(refresh_token_family::Column::ExpiresAt.gt(now))
                .to_owned();
            let update = refresh_token::Entity::update_many()
                .col_expr(refresh_token::Column::RotatedAt, Expr::value(now))
                .filter(refresh_token::Column::TokenHash.eq(hash))
                .filter(refresh_token::Column::RotatedAt.is_null())
                .filter(refresh_token::Column::RevokedAt.is_null())
                .filter(refresh_token::Column::ExpiresAt.gt(now))
                .filter(refresh_token::Column::FamilyId.in_subquery(live_family));
            // The presented row is already in hand: nothing to read back.
            crate::db::spend(&txn, update).await?
        } else {
            false
        };
        if !spent {
            txn.rollback().await?;
            // Spent by someone else (perhaps a moment ago, by a request racing this one): a
            // reuse. Anything else (expired, revoked, family ended) is merely invalid.
            let now_stored = self.find_refresh_by_hash(hash).await?;
            let reused = now_stored
                .as_ref()
                .is_some_and(|s| s.token.rotated_at.is_some() && s.token.revoked_at.is_none());
            if reused {
                self.revoke_family(family_id).await?;
                return Ok(Err(RefreshRefusal::Reused));
            }
            return Ok(Err(RefreshRefusal::Invalid));
        }
        refresh_token::Entity::insert(row)
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await?;
        Ok(Ok(token))
    }

    /// Revoke a family: mark it, revoke its tokens, and deny every unexpired access token it
    /// produced. One transaction that starts with the family row, so a rotation of the family
    /// is either wholly before it (and its tokens are revoked here) or after it (and refused).
    /// A family with no row yet (a code spent a moment ago) gets none: the code's replay
    /// denies its access token itself, and the family's row, when written, is refused to.
    pub async fn revoke_family(&self, family: &str) -> Result<(), DbErr> {
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        revocation::revoke_families(&txn, Families::Id(family), now).await?;
        txn.commit().await
    }

    /// The token and its family, in one query.
    async fn find_refresh_by_hash(&self, hash: &str) -> Result<Option<StoredRefresh>, DbErr> {
        Ok(refresh_token::Entity::find_by_id(hash.to_owned())
            .find_also_related(refresh_token_family::Entity)
            .all(&self.db)
            .await?
            .into_iter()
            .next()
            .map(|(token, family)| StoredRefresh { token, family }))
    }

    /// The stored refresh token and its family.
    pub async fn find_refresh(&self, token: &str) -> Result<Option<StoredRefresh>, DbErr> {
        self.find_refresh_by_hash(&self.fingerprint(token)).await
    }

    /// Put an access token's id on the denylist until it would have expired.
    pub async fn deny_access_token(&self, jti: &str, exp: i64) -> Result<(), DbErr> {
        revocation::deny_access_tokens(&self.db, [(jti.to_owned(), exp)], self.clock.now()).await
    }

    /// Whether an access token id is on the denylist.
    pub async fn is_denied(&self, jti: &str) -> Result<bool, DbErr> {
        Ok(crate::db::find_unique(
            revoked_access_token::Entity::find_by_id(jti.to_string()),
            &self.db,
        )
        .await?
        .is_some())
    }

    /// Verify one of our access tokens: signature, `typ`, issuer, expiry and the denylist.
    pub async fn verify_access_token(&self, token: &str) -> Option<AccessClaims> {
        let claims: AccessClaims = self.keys.verify(token, ACCESS_TOKEN_TYP).await.ok()?;
        if claims.iss != self.issuer || claims.exp <= self.clock.now() {
            return None;
        }
        match self.is_denied(&claims.jti).await {
            Ok(false) => Some(claims),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_subjects_never_look_like_accounts() {
        assert_eq!(SubjectKind::User.subject("1"), "1");
        assert_eq!(SubjectKind::Client.subject("1"), "client:1");
        assert_ne!(
            SubjectKind::Client.subject("1"),
            SubjectKind::User.subject("1")
        );
    }

    #[test]
    fn refresh_tokens_start_with_their_issue_time_and_only_such_a_start_counts() {
        let token = new_refresh_token(1_764_720_000_123);
        assert_eq!(issue_time_prefix(&token), Some("019ae1823c7b."));
        assert_eq!(token.len(), 13 + 43, "{token}");
        assert!(
            new_refresh_token(1_764_720_000_124) > token,
            "later tokens sort after"
        );
        // Tokens of the earlier format (43 base64url characters) and near misses have none.
        for other in [
            "q9XsY2b1Pm0e3vVn5rHk8dWcL4tA7uJ6fZpG1oBxRiS",
            "019ae2a9cc7b",
            "019ae2a9cc7b-rest",
            "019AE2A9CC7B.rest",
            "019ae2a9cc7.brest",
            "",
        ] {
            assert_eq!(issue_time_prefix(other), None, "{other}");
        }
    }

    #[test]
    fn lifetimes_past_the_clock_are_refused() {
        assert_eq!(expiry(1_800_000_000, 3600), Ok(1_800_003_600));
        assert_eq!(expiry(1_800_000_000, i64::MAX), Err(LifetimeOverflow));
    }
}
