//! `grant_type=flow`: the seed's grant (unionId + appId + openId, client Basic auth), made safe.
//!
//! The identity must be one wxauth obtained from WeChat itself (a stored wx_user of a registered
//! app, with the same unionid), and — unless the client was created with `--flow-ticket optional`
//! to migrate the seed's front ends — the request must carry the single-use login ticket wxauth
//! minted when WeChat vouched for that identity. A ticket minted for a client (`clientId` at
//! `/api/wechat/ma/session` or `entryBuildUrl`) is redeemed only by that client; one minted for
//! none, by any client with this grant. Every refusal is the same `invalid_grant`, and every
//! refused ticket (and a missing one where it is required) is audited as `ticket_refused`.
//!
//! A web-view ticket (`/api/wechat/ma/webview-ticket`) is redeemed alone, with no appId or
//! openId: the identity is the one it was minted for, and only its client may redeem it.

use super::{GrantRequest, after_spending, effective_scope, issue_for_account, optional};
use crate::audit::{AuditEvent, AuditKind, Outcome};
use crate::ids::{AppId, UnionId};
use crate::oauth::GrantType;
use crate::oauth::OAuthError;
use crate::oauth::OAuthServices;
use crate::oauth::client_registry::FlowTicketPolicy;
use crate::oauth::login_tickets::{Redeemed, is_web_view_ticket};
use crate::oauth::params::Params;
use crate::oauth::token_service::Issued;
use crate::users::Account;
use crate::users::IdentityKey;
use crate::users::RepoError;

fn refused() -> OAuthError {
    OAuthError::invalid_grant("the WeChat identity or login ticket is not valid")
}

/// Find the account a verified identity signs in as.
pub(crate) async fn account_for(
    services: &OAuthServices,
    key: &IdentityKey,
) -> Result<Account, OAuthError> {
    let internal = |e: &sea_orm::DbErr| {
        tracing::error!(error = %e, "flow grant lookup");
        OAuthError::from_database(e)
    };
    match services.apps.exists(key.appid.as_str()).await {
        Ok(true) => {}
        Ok(false) => return Err(refused()),
        Err(e) => return Err(internal(&e)),
    }
    let (identity, account) = services
        .users
        .find_identity_with_account(key.appid.as_str(), key.open_id.as_str())
        .await
        .map_err(|e| match e {
            RepoError::Db(e) => internal(&e),
            other => {
                tracing::error!(error = %other, "flow grant lookup");
                OAuthError::server_error()
            }
        })?
        .ok_or_else(refused)?;
    if identity.union_id.as_deref() != key.union_id.as_ref().map(UnionId::as_str) {
        return Err(refused());
    }
    account.ok_or_else(refused)
}

/// The parameters of a `flow` request.
pub struct FlowParams {
    /// The identity named (`None` for a web-view ticket, which carries its own).
    pub identity: Option<NamedIdentity>,
    pub ticket: Option<String>,
    pub scope: Option<String>,
}

/// The identity a seed-style `flow` request names.
pub struct NamedIdentity {
    /// `appId` as given (the audit trail names it when a ticket is refused).
    pub app_id: String,
    /// The identity, when `appId` is an appid exactly as given (`None`: it names no identity
    /// wxauth knows, and is refused like any unknown one). The unionid is absent when `unionId`
    /// is absent or empty: the app is bound to no Open Platform account.
    pub key: Option<IdentityKey>,
}

impl FlowParams {
    pub fn parse(params: &Params) -> Result<Self, OAuthError> {
        let ticket = optional(params, "ticket");
        let scope = optional(params, "scope");
        let identity = match (optional(params, "appId"), optional(params, "openId")) {
            (Some(app_id), Some(open_id)) => Some(NamedIdentity {
                key: AppId::parse_exact(&app_id).ok().map(|appid| {
                    IdentityKey::new(
                        appid,
                        open_id,
                        optional(params, "unionId").filter(|u| !u.is_empty()),
                    )
                }),
                app_id,
            }),
            (None, None) if ticket.as_deref().is_some_and(is_web_view_ticket) => None,
            _ => {
                return Err(OAuthError::invalid_request(
                    "appId and openId are required (or a web-view ticket alone)",
                ));
            }
        };
        Ok(Self {
            identity,
            ticket,
            scope,
        })
    }
}

pub async fn grant(
    services: &OAuthServices,
    request: &GrantRequest<'_>,
    params: FlowParams,
) -> Result<Issued, OAuthError> {
    let scope = effective_scope(request.client, params.scope.as_deref())?;
    let client_id = request.client.client_id.as_str();
    let Some(named) = &params.identity else {
        return web_view_grant(services, request, params.ticket.as_deref(), &scope).await;
    };
    let appid = named.app_id.as_str();

    let spent = match (params.ticket.as_deref(), request.client.flow_ticket) {
        (Some(ticket), _) => {
            let redeemed = match &named.key {
                Some(key) => services.tickets.redeem(ticket, key, client_id).await,
                None => services.tickets.refuse(ticket).await,
            }
            .map_err(|e| {
                tracing::error!(error = %e, "consuming login ticket");
                OAuthError::from_database(&e)
            })?;
            if redeemed != Redeemed::Accepted {
                ticket_refused(services, client_id, Some(appid), redeemed.as_str()).await;
                return Err(refused());
            }
            true
        }
        (None, FlowTicketPolicy::Optional) => false,
        (None, FlowTicketPolicy::Required) => {
            ticket_refused(services, client_id, Some(appid), "missing").await;
            return Err(refused());
        }
    };

    let issued = async {
        let key = named.key.as_ref().ok_or_else(refused)?;
        let account = account_for(services, key).await?;
        issue_for_account(services, request, GrantType::Flow, &account, &scope).await
    }
    .await;
    if spent {
        issued.map_err(after_spending)
    } else {
        issued
    }
}

/// A web-view ticket alone: spend it for this client, then issue for the identity it names.
async fn web_view_grant(
    services: &OAuthServices,
    request: &GrantRequest<'_>,
    ticket: Option<&str>,
    scope: &str,
) -> Result<Issued, OAuthError> {
    let client_id = request.client.client_id.as_str();
    let redeemed = services
        .tickets
        .redeem_web_view(ticket.unwrap_or_default(), client_id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "consuming web-view ticket");
            OAuthError::from_database(&e)
        })?;
    let identity = match redeemed {
        Ok(identity) => identity,
        Err(reason) => {
            ticket_refused(services, client_id, None, reason.as_str()).await;
            return Err(refused());
        }
    };
    let issued = async {
        let account = account_for(services, &identity).await?;
        issue_for_account(services, request, GrantType::Flow, &account, scope).await
    }
    .await;
    issued.map_err(after_spending)
}

/// Audit a refused ticket: the client, the app (when the request named one) and why (never
/// the ticket itself).
async fn ticket_refused(
    services: &OAuthServices,
    client_id: &str,
    appid: Option<&str>,
    reason: &str,
) {
    let mut event = AuditEvent::new(AuditKind::TicketRefused, Outcome::Refused)
        .client(client_id)
        .detail("reason", reason);
    match appid {
        Some(appid) => event = event.detail("appid", appid),
        None => event = event.detail("ticket", "web_view"),
    }
    services.audit.record(event).await;
}
