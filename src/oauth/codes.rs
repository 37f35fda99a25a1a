//! Authorization codes over sea-orm: oxide-auth's `Authorizer` for the authorization-code flow.
//!
//! A code is 256 random bits, stored as a keyed hash with its grant (client, redirect URI, scope,
//! and the grant extensions: PKCE challenge, nonce, auth_time). It lives [`CODE_TTL`] seconds on
//! our clock and is consumed by one conditional UPDATE, so it works once even under concurrent
//! use. That same UPDATE records what the exchange will issue (the access token's `jti` and
//! expiry, the refresh-token family, chosen beforehand in a [`Plan`]) and the family's row is
//! written in the same transaction: a replay, even one arriving while the winner is still
//! signing, always finds them and revokes them (RFC 6749 §4.1.2).

use std::sync::Arc;

use oxide_auth::primitives::grant::{Extensions, Grant, Value};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use entity::{authorization_code, refresh_token_family};

use crate::clock::SharedClock;
use crate::oauth::token_service::{Plan, family_row};
use crate::vault::{Vault, random_token};

/// How long an authorization code lives (seconds).
pub const CODE_TTL: i64 = 60;

/// The grant extension holding the time the user signed in (OIDC `auth_time`).
pub const AUTH_TIME_EXTENSION: &str = "wxauth/auth_time";
/// The grant extension holding the browser session's OIDC `sid`.
pub const SID_EXTENSION: &str = "wxauth/sid";
/// The grant extension holding the OIDC `nonce`.
pub const NONCE_EXTENSION: &str = "wxauth/nonce";

/// What happened to the last code presented to [`CodeStore::extract`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeOutcome {
    /// Not asked yet.
    Untouched,
    /// Consumed now; its grant was handed out.
    Consumed,
    /// Unknown or expired.
    Invalid,
    /// Spent before: a replay. Holds the tokens issued from it, to revoke, and whose they are.
    Replayed {
        family_id: Option<String>,
        jti: Option<(String, i64)>,
        owner_id: String,
    },
    /// Spending failed (logged). `worth_retrying` when the database was busy, locked, out of
    /// reach or deadlocked ([`crate::db_error::is_worth_retrying`]): the spend's transaction was
    /// rolled back and the code is still unspent. Otherwise (a stored grant that does not parse
    /// after the commit, say) the code may be spent.
    Failed { worth_retrying: bool },
}

/// Grant extensions as stored (JSON).
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredExtensions {
    public: BTreeMap<String, Option<String>>,
    private: BTreeMap<String, Option<String>>,
}

impl StoredExtensions {
    fn from_extensions(extensions: &Extensions) -> Self {
        Self {
            public: extensions
                .public()
                .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
                .collect(),
            private: extensions
                .private()
                .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
                .collect(),
        }
    }

    fn into_extensions(self) -> Extensions {
        let mut extensions = Extensions::new();
        for (k, v) in self.public {
            extensions.set_raw(k, Value::public(v));
        }
        for (k, v) in self.private {
            extensions.set_raw(k, Value::private(v));
        }
        extensions
    }
}

/// The value of a public extension.
pub fn public_extension<'a>(extensions: &'a Extensions, key: &str) -> Option<&'a str> {
    extensions
        .public()
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v)
}

/// Makes codes; one per request (it remembers the outcome of the last extraction).
pub struct CodeStore {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
    /// Added to the grant of the next code made (the user's sign-in time).
    pub auth_time: Option<i64>,
    /// Added to the grant of the next code made (the browser session's `sid`).
    pub sid: Option<String>,
    /// What the last `extract` found.
    pub outcome: CodeOutcome,
    /// What the exchange will issue, recorded by the statement that spends the code.
    pub plan: Option<Plan>,
}

impl CodeStore {
    pub fn new(db: DatabaseConnection, vault: Arc<Vault>, clock: SharedClock) -> Self {
        Self {
            db,
            vault,
            clock,
            auth_time: None,
            sid: None,
            outcome: CodeOutcome::Untouched,
            plan: None,
        }
    }

    async fn store(&self, grant: Grant) -> Result<String, DbErr> {
        let code = random_token(32);
        let now = self.clock.now();
        let mut extensions = grant.extensions;
        if let Some(auth_time) = self.auth_time {
            extensions.set_raw(
                AUTH_TIME_EXTENSION.to_owned(),
                Value::public(Some(auth_time.to_string())),
            );
        }
        if let Some(sid) = &self.sid {
            extensions.set_raw(SID_EXTENSION.to_owned(), Value::public(Some(sid.clone())));
        }
        let stored = serde_json::to_string(&StoredExtensions::from_extensions(&extensions))
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        authorization_code::ActiveModel {
            code_hash: Set(self.vault.fingerprint(&code)),
            client_id: Set(grant.client_id),
            owner_id: Set(grant.owner_id),
            redirect_uri: Set(grant.redirect_uri.to_string()),
            scope: Set(grant.scope.to_string()),
            extensions: Set(stored),
            expires_at: Set(crate::oauth::token_service::expiry(now, CODE_TTL)
                .map_err(|e| DbErr::Custom(e.to_string()))?),
            used_at: Set(None),
            issued_family_id: Set(None),
            issued_jti: Set(None),
            issued_jti_exp: Set(None),
            created_at: Set(now),
        }
        .insert(&self.db)
        .await?;
        Ok(code)
    }

    async fn consume(&mut self, code: &str) -> Result<Option<Grant>, DbErr> {
        let now = self.clock.now();
        let hash = self.vault.fingerprint(code);
        let txn = self.db.begin().await?;
        let mut spend = authorization_code::Entity::update_many()
            .col_expr(authorization_code::Column::UsedAt, Expr::value(now));
        if let Some(plan) = &self.plan {
            spend = spend
                .col_expr(
                    authorization_code::Column::IssuedFamilyId,
                    Expr::value(plan.family.as_ref().map(|f| f.id.clone())),
                )
                .col_expr(
                    authorization_code::Column::IssuedJti,
                    Expr::value(plan.access.jti.clone()),
                )
                .col_expr(
                    authorization_code::Column::IssuedJtiExp,
                    Expr::value(plan.access.exp),
                );
        }
        let spend = spend
            .filter(authorization_code::Column::CodeHash.eq(hash.as_str()))
            .filter(authorization_code::Column::UsedAt.is_null())
            .filter(authorization_code::Column::ExpiresAt.gt(now));
        let find = authorization_code::Entity::find_by_id(hash.clone());
        let Some(row) = crate::db::spend_once(&txn, spend, find).await? else {
            txn.rollback().await?;
            let row = authorization_code::Entity::find_by_id(hash)
                .one(&self.db)
                .await?;
            self.outcome = match row {
                Some(row) if row.used_at.is_some() => CodeOutcome::Replayed {
                    family_id: row.issued_family_id,
                    jti: row.issued_jti.zip(row.issued_jti_exp),
                    owner_id: row.owner_id,
                },
                _ => CodeOutcome::Invalid,
            };
            return Ok(None);
        };
        if let Some(family) = self.plan.as_ref().and_then(|p| p.family.as_ref()) {
            refresh_token_family::Entity::insert(family_row(
                family,
                &row.client_id,
                &row.owner_id,
                now,
            ))
            .exec_without_returning(&txn)
            .await?;
        }
        txn.commit().await?;
        let extensions: StoredExtensions = serde_json::from_str(&row.extensions)
            .map_err(|e| DbErr::Custom(format!("stored grant extensions: {e}")))?;
        let grant = Grant {
            owner_id: row.owner_id,
            client_id: row.client_id,
            scope: row
                .scope
                .parse()
                .map_err(|_| DbErr::Custom("stored scope".into()))?,
            redirect_uri: row
                .redirect_uri
                .parse()
                .map_err(|_| DbErr::Custom("stored redirect_uri".into()))?,
            // Expiry was checked above on our clock; oxide-auth checks `until` on the wall clock.
            until: chrono::Utc::now() + chrono::Duration::seconds(CODE_TTL),
            extensions: extensions.into_extensions(),
        };
        self.outcome = CodeOutcome::Consumed;
        Ok(Some(grant))
    }
}

#[async_trait::async_trait]
impl oxide_auth_async::primitives::Authorizer for CodeStore {
    async fn authorize(&mut self, grant: Grant) -> Result<String, ()> {
        self.store(grant).await.map_err(|e| {
            tracing::error!(error = %e, "storing an authorization code");
        })
    }

    async fn extract(&mut self, code: &str) -> Result<Option<Grant>, ()> {
        self.consume(code).await.map_err(|e| {
            tracing::error!(error = %e, "consuming an authorization code");
            self.outcome = CodeOutcome::Failed {
                worth_retrying: crate::db_error::is_worth_retrying(&e),
            };
        })
    }
}
