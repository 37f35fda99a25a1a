//! Token issuance: JWT access tokens (RFC 9068) and opaque refresh tokens kept in families for
//! rotation and reuse detection (RFC 9700 §4.14). [`TokenService`] holds what is shared;
//! [`TokenIssuer`] is the per-request oxide-auth `Issuer` the grant state machines drive.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use oxide_auth::primitives::grant::{Extensions, Grant, Value as ExtValue};
use oxide_auth::primitives::issuer::{IssuedToken, RefreshedToken, TokenType};
use oxide_auth::primitives::scope::Scope;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};

use entity::{refresh_token, revoked_access_token};

use crate::clock::SharedClock;
use crate::oauth::client_registry::RegisteredClient;
use crate::oauth::keys::SigningKeys;
use crate::users::{Account, UserRepo};
use crate::vault::{Vault, random_token};

/// The `typ` of our access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Grant extension naming what kind of subject the owner id is.
const SUBJECT_EXTENSION: &str = "wxauth/subject";
/// Where oxide-auth wants a redirect URI but a grant has none.
pub const NO_REDIRECT: &str = "urn:ietf:wg:oauth:2.0:oob";

/// Who a token is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    /// A person: the owner id is a flow_user id.
    User,
    /// The client itself (client_credentials): the owner id is the client id.
    Client,
}

impl SubjectKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Client => "client",
        }
    }
}

/// Mark a grant's subject kind.
pub fn mark_subject(extensions: &mut Extensions, kind: SubjectKind) {
    extensions.set_raw(
        SUBJECT_EXTENSION.to_string(),
        ExtValue::public(Some(kind.as_str().to_string())),
    );
}

fn subject_of(extensions: &Extensions) -> SubjectKind {
    let user = extensions
        .public()
        .any(|(k, v)| k == SUBJECT_EXTENSION && v == Some("user"));
    if user {
        SubjectKind::User
    } else {
        SubjectKind::Client
    }
}

/// The claims of an access token (RFC 9068 §2.2 plus the seed's user fields).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
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
}

/// Shared token machinery.
#[derive(Clone)]
pub struct TokenService {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
    keys: SigningKeys,
    users: Arc<dyn UserRepo>,
    issuer: String,
}

impl TokenService {
    pub fn new(
        db: DatabaseConnection,
        vault: Arc<Vault>,
        clock: SharedClock,
        keys: SigningKeys,
        users: Arc<dyn UserRepo>,
        issuer: String,
    ) -> Self {
        Self {
            db,
            vault,
            clock,
            keys,
            users,
            issuer,
        }
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

    /// An issuer for one request by `client`; `with_refresh` says whether a refresh token
    /// accompanies the access token.
    pub fn for_client<'a>(
        &'a self,
        client: &'a RegisteredClient,
        with_refresh: bool,
    ) -> TokenIssuer<'a> {
        TokenIssuer {
            service: self,
            client,
            with_refresh,
            account: None,
            issued: None,
            reuse_detected: false,
        }
    }

    async fn user_claims(&self, owner_id: &str) -> Result<Option<Account>, ()> {
        let id: i64 = owner_id.parse().map_err(|_| ())?;
        self.users.account(id).await.map_err(|e| {
            tracing::error!(error = %e, "loading account for token");
        })
    }

    /// `known_account` is the subject's account when the grant has just read it.
    async fn access_token(
        &self,
        client: &RegisteredClient,
        owner_id: &str,
        subject: SubjectKind,
        scope: &str,
        known_account: Option<&Account>,
    ) -> Result<(AccessClaims, String), ()> {
        let now = self.clock.now();
        let mut claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: owner_id.to_string(),
            aud: self.issuer.clone(),
            client_id: client.client_id.clone(),
            scope: scope.to_string(),
            iat: now,
            exp: now + client.access_token_ttl,
            jti: uuid::Uuid::new_v4().to_string(),
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
                None => self.user_claims(owner_id).await?.ok_or(())?,
            };
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
            .map_err(|e| tracing::error!(error = %e, "signing access token"))?;
        Ok((claims, token))
    }

    async fn store_refresh(
        &self,
        client: &RegisteredClient,
        family: &str,
        owner_id: &str,
        subject: SubjectKind,
        scope: &str,
    ) -> Result<String, DbErr> {
        let token = random_token(32);
        let now = self.clock.now();
        let row = refresh_token::ActiveModel {
            token_hash: Set(self.vault.fingerprint(&token)),
            family_id: Set(family.to_string()),
            client_id: Set(client.client_id.clone()),
            owner_id: Set(owner_id.to_string()),
            scope: Set(scope.to_string()),
            extensions: Set(serde_json::json!({ "subject": subject.as_str() }).to_string()),
            expires_at: Set(now + client.refresh_token_ttl),
            created_at: Set(now),
            rotated_at: Set(None),
            revoked_at: Set(None),
        };
        // One statement: `ActiveModel::insert` reads the row back afterwards (SQLite without
        // RETURNING), a second round trip on every token request that issues a refresh token.
        refresh_token::Entity::insert(row)
            .exec_without_returning(&self.db)
            .await?;
        Ok(token)
    }

    /// Revoke every refresh token of a family.
    pub async fn revoke_family(&self, family: &str) -> Result<u64, DbErr> {
        let now = self.clock.now();
        let r = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
            .filter(refresh_token::Column::FamilyId.eq(family))
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected)
    }

    /// The stored row of a refresh token.
    pub async fn find_refresh(&self, token: &str) -> Result<Option<refresh_token::Model>, DbErr> {
        crate::db::find_unique(
            refresh_token::Entity::find_by_id(self.vault.fingerprint(token)),
            &self.db,
        )
        .await
    }

    /// Whether a refresh token row can still be used.
    pub fn refresh_is_live(&self, row: &refresh_token::Model) -> bool {
        row.rotated_at.is_none() && row.revoked_at.is_none() && row.expires_at > self.clock.now()
    }

    /// Put an access token's id on the denylist until it would have expired.
    pub async fn deny_access_token(&self, jti: &str, exp: i64) -> Result<(), DbErr> {
        let row = revoked_access_token::ActiveModel {
            jti: Set(jti.to_string()),
            expires_at: Set(exp),
            revoked_at: Set(self.clock.now()),
        };
        match revoked_access_token::Entity::insert(row)
            .on_conflict_do_nothing()
            .exec_without_returning(&self.db)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
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

/// oxide-auth's `Issuer` for one request.
pub struct TokenIssuer<'a> {
    service: &'a TokenService,
    client: &'a RegisteredClient,
    with_refresh: bool,
    /// The subject's account, when the grant has already read it (saves reading it again).
    account: Option<Account>,
    issued: Option<Issued>,
    reuse_detected: bool,
}

impl TokenIssuer<'_> {
    /// Use `account` for the user claims of a grant whose owner it is, instead of reading it.
    pub fn with_account(mut self, account: Account) -> Self {
        self.account = Some(account);
        self
    }

    /// What was issued, once a flow has succeeded.
    pub fn take_issued(&mut self) -> Option<Issued> {
        self.issued.take()
    }

    /// Whether a spent refresh token was presented (its family is now revoked).
    pub fn reuse_detected(&self) -> bool {
        self.reuse_detected
    }

    async fn issue_for(
        &mut self,
        owner_id: &str,
        subject: SubjectKind,
        scope: &str,
        family: Option<&str>,
    ) -> Result<Issued, ()> {
        let (claims, access_token) = self
            .service
            .access_token(self.client, owner_id, subject, scope, self.account.as_ref())
            .await?;
        let refresh_token = match (self.with_refresh, family) {
            (false, _) => None,
            (true, family) => {
                let family = family
                    .map(str::to_string)
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                Some(
                    self.service
                        .store_refresh(self.client, &family, owner_id, subject, scope)
                        .await
                        .map_err(|e| tracing::error!(error = %e, "storing refresh token"))?,
                )
            }
        };
        let issued = Issued {
            expires_in: claims.exp - claims.iat,
            claims,
            access_token,
            refresh_token,
        };
        self.issued = Some(issued.clone());
        Ok(issued)
    }
}

fn until(ts: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(ts, 0).single().unwrap_or_else(Utc::now)
}

#[async_trait]
impl oxide_auth_async::primitives::Issuer for TokenIssuer<'_> {
    async fn issue(&mut self, grant: Grant) -> Result<IssuedToken, ()> {
        let subject = subject_of(&grant.extensions);
        let issued = self
            .issue_for(&grant.owner_id, subject, &grant.scope.to_string(), None)
            .await?;
        Ok(IssuedToken {
            token: issued.access_token,
            refresh: issued.refresh_token,
            until: until(issued.claims.exp),
            token_type: TokenType::Bearer,
        })
    }

    async fn refresh(&mut self, refresh: &str, grant: Grant) -> Result<RefreshedToken, ()> {
        let service = self.service;
        let now = service.clock.now();
        let hash = service.vault.fingerprint(refresh);
        let row =
            crate::db::find_unique(refresh_token::Entity::find_by_id(hash.clone()), &service.db)
                .await
                .map_err(|e| tracing::error!(error = %e, "loading refresh token"))?
                .ok_or(())?;
        // Spend the presented token in one conditional statement: of two concurrent uses only
        // one can win, and the loser is a reuse.
        let spent = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RotatedAt, Expr::value(now))
            .filter(refresh_token::Column::TokenHash.eq(hash.as_str()))
            .filter(refresh_token::Column::RotatedAt.is_null())
            .filter(refresh_token::Column::RevokedAt.is_null())
            .filter(refresh_token::Column::ExpiresAt.gt(now))
            .exec(&service.db)
            .await
            .map_err(|e| tracing::error!(error = %e, "rotating refresh token"))?;
        if spent.rows_affected != 1 {
            self.reuse_detected = true;
            let _ = service.revoke_family(&row.family_id).await;
            tracing::warn!(client_id = %row.client_id, "refresh token reused; family revoked");
            return Err(());
        }
        self.with_refresh = true;
        let subject = subject_of(&grant.extensions);
        let issued = self
            .issue_for(
                &grant.owner_id,
                subject,
                &grant.scope.to_string(),
                Some(&row.family_id),
            )
            .await?;
        Ok(RefreshedToken {
            token: issued.access_token,
            refresh: issued.refresh_token,
            until: until(issued.claims.exp),
            token_type: TokenType::Bearer,
        })
    }

    async fn recover_token(&mut self, _: &str) -> Result<Option<Grant>, ()> {
        // Access tokens are self-contained JWTs; they are verified, not recovered.
        Ok(None)
    }

    async fn recover_refresh(&mut self, token: &str) -> Result<Option<Grant>, ()> {
        let service = self.service;
        let row = service
            .find_refresh(token)
            .await
            .map_err(|e| tracing::error!(error = %e, "loading refresh token"))?;
        let Some(row) = row else { return Ok(None) };
        if row.rotated_at.is_some() && row.revoked_at.is_none() {
            // A spent token came back: whoever holds it may be an attacker (RFC 9700 §4.14.2).
            self.reuse_detected = true;
            let _ = service.revoke_family(&row.family_id).await;
            tracing::warn!(client_id = %row.client_id, "refresh token reused; family revoked");
            return Ok(None);
        }
        if !service.refresh_is_live(&row) {
            return Ok(None);
        }
        let scope: Scope = row.scope.parse().map_err(|_| ())?;
        let mut extensions = Extensions::new();
        let subject: serde_json::Value = serde_json::from_str(&row.extensions).unwrap_or_default();
        let kind = if subject["subject"] == "user" {
            SubjectKind::User
        } else {
            SubjectKind::Client
        };
        mark_subject(&mut extensions, kind);
        Ok(Some(Grant {
            owner_id: row.owner_id,
            client_id: row.client_id,
            scope,
            redirect_uri: NO_REDIRECT.parse().map_err(|_| ())?,
            until: until(row.expires_at),
            extensions,
        }))
    }
}
