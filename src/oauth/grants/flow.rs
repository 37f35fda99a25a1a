//! `grant_type=flow`: the seed's grant (unionId + appId + openId, client Basic auth), made safe.
//!
//! The identity must be one wxauth obtained from WeChat itself (a stored wx_user of a registered
//! app, with the same unionid), and — unless the client was created with `--flow-ticket optional`
//! to migrate the seed's front ends — the request must carry the single-use login ticket wxauth
//! minted when WeChat vouched for that identity. A ticket minted for a client (`clientId` at
//! `/api/wechat/ma/session` or `entryBuildUrl`) is redeemed only by that client; one minted for
//! none, by any client with this grant. Every refusal is the same `invalid_grant`, and every
//! refused ticket (and a missing one where it is required) is audited as `ticket_refused`.

use oxide_auth::primitives::grant::{Extensions, Grant};
use oxide_auth_async::primitives::Issuer;

use super::{GrantRequest, effective_scope};
use crate::audit::{AuditEvent, AuditKind, Outcome};
use crate::login::{Redeemed, TicketIdentity};
use crate::oauth::OAuthError;
use crate::oauth::OAuthServices;
use crate::oauth::client_registry::FlowTicketPolicy;
use crate::oauth::token_issuer::{Issued, NO_REDIRECT, SubjectKind, mark_subject};
use crate::users::Account;

fn refused() -> OAuthError {
    OAuthError::invalid_grant("the WeChat identity or login ticket is not valid")
}

/// Find the account a verified identity signs in as.
pub(crate) async fn account_for(
    services: &OAuthServices,
    appid: &str,
    open_id: &str,
    union_id: Option<&str>,
) -> Result<Account, OAuthError> {
    let internal = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "flow grant lookup");
        OAuthError::server_error()
    };
    match services.apps.exists(appid).await {
        Ok(true) => {}
        Ok(false) => return Err(refused()),
        Err(e) => return Err(internal(&e)),
    }
    let (identity, account) = services
        .users
        .find_identity_with_account(appid, open_id)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(refused)?;
    if identity.union_id.as_deref() != union_id {
        return Err(refused());
    }
    account.ok_or_else(refused)
}

pub async fn grant(
    services: &OAuthServices,
    request: &GrantRequest<'_>,
) -> Result<Issued, OAuthError> {
    let params = request.params;
    let (Some(appid), Some(open_id)) = (params.get("appId"), params.get("openId")) else {
        return Err(OAuthError::invalid_request("appId and openId are required"));
    };
    let union_id = params.get("unionId").filter(|u| !u.is_empty());
    let scope = effective_scope(request.client, params.get("scope"))?;

    let client_id = request.client.client_id.as_str();
    match (params.get("ticket"), request.client.flow_ticket) {
        (Some(ticket), _) => {
            let identity = TicketIdentity {
                appid: appid.to_string(),
                open_id: open_id.to_string(),
                union_id: union_id.map(str::to_string),
            };
            let redeemed = services
                .tickets
                .redeem(ticket, &identity, client_id)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "consuming login ticket");
                    OAuthError::server_error()
                })?;
            if redeemed != Redeemed::Accepted {
                ticket_refused(services, client_id, appid, redeemed.as_str()).await;
                return Err(refused());
            }
        }
        (None, FlowTicketPolicy::Optional) => {}
        (None, FlowTicketPolicy::Required) => {
            ticket_refused(services, client_id, appid, "missing").await;
            return Err(refused());
        }
    }

    let account = account_for(services, appid, open_id, union_id).await?;
    issue_for_account(services, request, &account, &scope).await
}

/// Audit a refused ticket: the client, the app and why (never the ticket itself).
async fn ticket_refused(services: &OAuthServices, client_id: &str, appid: &str, reason: &str) {
    services
        .audit
        .record(
            AuditEvent::new(AuditKind::TicketRefused, Outcome::Refused)
                .client(client_id)
                .detail("appid", appid)
                .detail("reason", reason),
        )
        .await;
}

/// Issue tokens for a user account through the shared issuer.
pub(crate) async fn issue_for_account(
    services: &OAuthServices,
    request: &GrantRequest<'_>,
    account: &Account,
    scope: &str,
) -> Result<Issued, OAuthError> {
    if account.is_disabled() {
        return Err(OAuthError::invalid_grant("the account is disabled"));
    }
    let with_refresh = request.client.allows_grant("refresh_token");
    let mut issuer = services
        .tokens
        .for_client(request.client, with_refresh)
        .with_account(account.clone());
    let mut extensions = Extensions::new();
    mark_subject(&mut extensions, SubjectKind::User);
    let grant = Grant {
        owner_id: account.id.to_string(),
        client_id: request.client.client_id.clone(),
        scope: scope
            .parse()
            .map_err(|_| OAuthError::invalid_scope("malformed scope"))?,
        redirect_uri: NO_REDIRECT
            .parse()
            .map_err(|_| OAuthError::server_error())?,
        until: chrono::Utc::now(),
        extensions,
    };
    issuer
        .issue(grant)
        .await
        .map_err(|()| OAuthError::server_error())?;
    issuer.take_issued().ok_or_else(OAuthError::server_error)
}
