//! The oxide-auth adapter of the [`TokenService`]: [`TokenIssuer`] is the per-request
//! oxide-auth `Issuer` that the grant state machines of authorization_code, refresh_token and
//! client_credentials drive. It plans, stores and signs through the service; what it issued, and
//! why a refresh was refused, it keeps for the grant to read afterwards.

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use oxide_auth::primitives::grant::{Extensions, Grant, Value as ExtValue};
use oxide_auth::primitives::issuer::{IssuedToken, RefreshedToken, TokenType};
use oxide_auth::primitives::scope::Scope;
use sea_orm::DbErr;

use crate::oauth::client_registry::RegisteredClient;
use crate::oauth::codes::{AUTH_TIME_EXTENSION, public_extension};
use crate::oauth::resources::Resource;
use crate::oauth::token_service::{
    IssueFailed, Issued, NewRefresh, Plan, PlannedAccess, PlannedFamily, RefreshRefusal,
    StoredRefresh, SubjectKind, TokenService,
};

/// Grant extension naming what kind of subject the owner id is.
const SUBJECT_EXTENSION: &str = "wxauth/subject";
/// Grant extension naming the resources (RFC 8707) bound to the grant, newline-separated.
pub const RESOURCES_EXTENSION: &str = "wxauth/resources";
/// Where oxide-auth wants a redirect URI but a grant has none.
pub const NO_REDIRECT: &str = "urn:ietf:wg:oauth:2.0:oob";

/// Mark a grant's subject kind.
pub fn mark_subject(extensions: &mut Extensions, kind: SubjectKind) {
    extensions.set_raw(
        SUBJECT_EXTENSION.to_string(),
        ExtValue::public(Some(kind.as_str().to_string())),
    );
}

/// When the person signed in, as the code (or the refresh token) of a grant recorded it.
fn auth_time_of(extensions: &Extensions) -> Option<i64> {
    public_extension(extensions, AUTH_TIME_EXTENSION).and_then(|t| t.parse().ok())
}

/// Bind `resources` to a grant.
pub fn mark_resources(extensions: &mut Extensions, resources: &[Resource]) {
    if resources.is_empty() {
        return;
    }
    let ids: Vec<&str> = resources.iter().map(|r| r.identifier.as_str()).collect();
    extensions.set_raw(
        RESOURCES_EXTENSION.to_string(),
        ExtValue::public(Some(ids.join("\n"))),
    );
}

/// The resources bound to a grant.
fn bound_resources(extensions: &Extensions) -> Vec<String> {
    extensions
        .public()
        .find(|(k, _)| *k == RESOURCES_EXTENSION)
        .and_then(|(_, v)| v)
        .map(|v| {
            v.split('\n')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
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

impl TokenService {
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
            requested: Vec::new(),
            plan: None,
            presented: None,
            issued: None,
            refused: None,
            target_refused: false,
            granted_scope: None,
            failed: None,
        }
    }
}

/// oxide-auth's `Issuer` for one request.
pub struct TokenIssuer<'a> {
    service: &'a TokenService,
    client: &'a RegisteredClient,
    with_refresh: bool,
    /// The resources (RFC 8707) the request named; they must be bound to the grant.
    requested: Vec<Resource>,
    /// What to issue, when the grant chose it beforehand.
    plan: Option<Plan>,
    /// The refresh token being exchanged, as `recover_refresh` found it.
    presented: Option<StoredRefresh>,
    issued: Option<Issued>,
    refused: Option<RefreshRefusal>,
    /// A requested resource was not bound to the grant, or a bound one is gone.
    target_refused: bool,
    /// The scope of the grant last issued from (the access token's may be narrower).
    granted_scope: Option<String>,
    /// Why a step failed that was no refusal, as far as the request is concerned: oxide-auth
    /// hears only `Err(())`, so the grant reads it here to tell "try again" (a busy, locked,
    /// unreachable or deadlocked database) from a fault.
    failed: Option<IssueFailed>,
}

impl TokenIssuer<'_> {
    /// The request named these resources (RFC 8707): the access token is for them, and each
    /// must be bound to the grant.
    pub fn with_resources(mut self, requested: &[Resource]) -> Self {
        self.requested = requested.to_vec();
        self
    }

    /// The scope of the grant issued from; the access token's is narrower when it is for
    /// resources that accept fewer scopes.
    pub fn granted_scope(&self) -> Option<&str> {
        self.granted_scope.as_deref()
    }

    /// Whether the issuance was refused for its resources (`invalid_target`).
    pub fn target_refused(&self) -> bool {
        self.target_refused
    }

    /// The audience of this issuance: the requested resources, which must be bound to the
    /// grant, or else every resource bound to it (each still registered and allowed); none for
    /// a grant without resources.
    async fn audience(&mut self, bound: &[String]) -> Result<Vec<Resource>, ()> {
        if !self.requested.is_empty() {
            if self
                .requested
                .iter()
                .any(|r| !bound.contains(&r.identifier))
            {
                self.target_refused = true;
                return Err(());
            }
            return Ok(self.requested.clone());
        }
        if bound.is_empty() {
            return Ok(Vec::new());
        }
        let found = match self.service.resources().get_many(bound).await {
            Ok(found) => found,
            Err(e) => {
                self.database_failed("loading bound resources", &e);
                return Err(());
            }
        };
        let usable = found.len() == bound.len()
            && found
                .iter()
                .all(|r| self.client.resources.contains(&r.identifier));
        if !usable {
            self.target_refused = true;
            return Err(());
        }
        Ok(found)
    }

    /// Issue exactly what `plan` says (its `jti`, expiry and family).
    pub fn with_plan(mut self, plan: Plan) -> Self {
        self.plan = Some(plan);
        self
    }

    /// What was issued, once a flow has succeeded.
    pub fn take_issued(&mut self) -> Option<Issued> {
        self.issued.take()
    }

    /// Whether a spent refresh token was presented (its family is now revoked).
    pub fn reuse_detected(&self) -> bool {
        self.refused == Some(RefreshRefusal::Reused)
    }

    /// The refresh token presented to a refresh grant, as it was found.
    pub fn presented(&self) -> Option<&StoredRefresh> {
        self.presented.as_ref()
    }

    /// Whether the planned family was revoked before its first token joined it.
    pub fn family_revoked_meanwhile(&self) -> bool {
        self.refused == Some(RefreshRefusal::Invalid)
    }

    /// Why the issuance failed when it was no refusal: the grant answers it with
    /// [`OAuthError::failed`](crate::oauth::OAuthError::failed), 503 when worth retrying.
    pub fn failure(&self) -> IssueFailed {
        self.failed.unwrap_or_default()
    }

    /// Note why a step failed, for [`TokenIssuer::failure`]; what oxide-auth hears is `Err(())`.
    fn fail(&mut self, failed: IssueFailed) {
        self.failed = Some(failed);
    }

    /// Log a failed statement and note whether it is worth retrying.
    fn database_failed(&mut self, context: &str, error: &DbErr) {
        tracing::error!(error = %error, "{context}");
        self.fail(IssueFailed::database(error));
    }

    fn take_plan(&mut self) -> Result<Plan, ()> {
        match self.plan.take() {
            Some(plan) => Ok(plan),
            None => self
                .service
                .plan(self.client, self.with_refresh)
                .map_err(|e| tracing::error!(error = %e, client_id = %self.client.client_id)),
        }
    }

    async fn sign(
        &mut self,
        owner_id: &str,
        subject: SubjectKind,
        scope: &str,
        access: &PlannedAccess,
        refresh_token: Option<String>,
        audience: &[Resource],
    ) -> Result<Issued, ()> {
        let service = self.service;
        let signed = service
            .access_token(
                self.client,
                owner_id,
                subject,
                scope,
                access,
                None,
                audience,
            )
            .await
            .map_err(|failed| self.fail(failed))?;
        let (claims, access_token) = signed.ok_or_else(|| {
            // A disabled account: the grant answers invalid_grant, as for a revoked family.
            self.refused = Some(RefreshRefusal::Invalid);
        })?;
        let issued = Issued {
            expires_in: claims.exp - claims.iat,
            claims,
            access_token,
            refresh_token,
            audited: false,
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
        let scope = grant.scope.to_string();
        let bound = bound_resources(&grant.extensions);
        let audience = self.audience(&bound).await?;
        self.granted_scope = Some(scope.clone());
        let plan = self.take_plan()?;
        let refresh_token = match (&plan.family, self.with_refresh) {
            (Some(family), true) => {
                let new = NewRefresh {
                    client: self.client,
                    family,
                    owner_id: &grant.owner_id,
                    subject,
                    scope: &scope,
                    access: &plan.access,
                    auth_time: auth_time_of(&grant.extensions),
                    resources: &bound,
                };
                let service = self.service;
                let stored = service
                    .store_first_refresh(&new, plan.family_stored)
                    .await
                    .map_err(|failed| self.fail(failed))?;
                match stored {
                    Some(token) => Some(token),
                    None => {
                        self.refused = Some(RefreshRefusal::Invalid);
                        return Err(());
                    }
                }
            }
            _ => None,
        };
        let issued = self
            .sign(
                &grant.owner_id,
                subject,
                &scope,
                &plan.access,
                refresh_token,
                &audience,
            )
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
        let presented = match self.presented.take() {
            Some(p) if p.token.token_hash == service.fingerprint(refresh) => p,
            _ => return Err(()),
        };
        self.with_refresh = true;
        let subject = subject_of(&grant.extensions);
        let scope = grant.scope.to_string();
        self.granted_scope = Some(scope.clone());
        // Checked before the token is spent: a refusal leaves it usable (RFC 8707 downscoping).
        let bound = bound_resources(&grant.extensions);
        let audience = match self.audience(&bound).await {
            Ok(audience) => audience,
            Err(()) => {
                self.presented = Some(presented);
                return Err(());
            }
        };
        let access = service
            .plan(self.client, false)
            .map_err(|e| tracing::error!(error = %e, client_id = %self.client.client_id))?
            .access;
        let family = PlannedFamily {
            id: presented.token.family_id.clone(),
            expires_at: presented.family.as_ref().map_or(0, |f| f.expires_at),
        };
        let new = NewRefresh {
            client: self.client,
            family: &family,
            owner_id: &grant.owner_id,
            subject,
            scope: &scope,
            access: &access,
            auth_time: auth_time_of(&grant.extensions),
            resources: &bound,
        };
        let rotated = match service.rotate(&presented, &new).await {
            Ok(rotated) => rotated,
            Err(e) => {
                // Rolled back: the presented token is not spent and may be presented again.
                self.database_failed("rotating a refresh token", &e);
                return Err(());
            }
        };
        self.presented = Some(presented);
        let token = match rotated {
            Ok(token) => token,
            Err(refusal) => {
                if refusal == RefreshRefusal::Reused {
                    tracing::warn!(client_id = %self.client.client_id, "refresh token reused; family revoked");
                }
                self.refused = Some(refusal);
                return Err(());
            }
        };
        let signed = self
            .sign(
                &grant.owner_id,
                subject,
                &scope,
                &access,
                Some(token),
                &audience,
            )
            .await;
        let Ok(issued) = signed else {
            // The presented token is spent now: sent again it would be a reuse, which revokes
            // the family. So nothing here is worth retrying, however busy the database was.
            if self.failed.is_some() {
                self.fail(IssueFailed::default());
            }
            return Err(());
        };
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
        let stored = match service.find_refresh(token).await {
            Ok(stored) => stored,
            Err(e) => {
                self.database_failed("loading a refresh token", &e);
                return Err(());
            }
        };
        let Some(stored) = stored else {
            return Ok(None);
        };
        if stored.token.client_id != self.client.client_id {
            // Another client's token is refused without spending it or revoking anything.
            return Ok(None);
        }
        if stored.token.rotated_at.is_some() && stored.token.revoked_at.is_none() {
            // A spent token came back: whoever holds it may be an attacker (RFC 9700 §4.14.2).
            if let Err(e) = service.revoke_family(&stored.token.family_id).await {
                self.database_failed("revoking a family", &e);
                return Err(());
            }
            tracing::warn!(client_id = %stored.token.client_id, "refresh token reused; family revoked");
            self.refused = Some(RefreshRefusal::Reused);
            self.presented = Some(stored);
            return Ok(None);
        }
        if !stored.is_live(service.now()) {
            return Ok(None);
        }
        let scope: Scope = stored.token.scope.parse().map_err(|_| ())?;
        let mut extensions = Extensions::new();
        mark_subject(&mut extensions, stored.subject());
        if let Some(auth_time) = stored.auth_time() {
            extensions.set_raw(
                AUTH_TIME_EXTENSION.to_string(),
                ExtValue::public(Some(auth_time.to_string())),
            );
        }
        let bound = stored.bound_resources();
        if !bound.is_empty() {
            extensions.set_raw(
                RESOURCES_EXTENSION.to_string(),
                ExtValue::public(Some(bound.join("\n"))),
            );
        }
        let grant = Grant {
            owner_id: stored.token.owner_id.clone(),
            client_id: stored.token.client_id.clone(),
            scope,
            redirect_uri: NO_REDIRECT.parse().map_err(|_| ())?,
            until: until(stored.token.expires_at),
            extensions,
        };
        self.presented = Some(stored);
        Ok(Some(grant))
    }
}
