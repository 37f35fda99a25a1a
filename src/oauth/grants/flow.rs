//! `grant_type=flow`: the seed's grant (unionId + appId + openId, client Basic auth), made safe.
//!
//! The identity must be one wxauth obtained from WeChat itself (a stored wx_user of a registered
//! app, with the same unionid), and — unless the client was created with `--flow-ticket optional`
//! to migrate the seed's front ends — the request must carry the single-use login ticket wxauth
//! minted when WeChat vouched for that identity. A ticket minted for a client (`clientId` at
//! `/api/wechat/ma/session` or `entryBuildUrl`) is redeemed only by that client; one minted for
//! none, by any client with this grant. Every refusal is the same `invalid_grant`, and every
//! refused ticket (and a missing one where it is required) is audited as `ticket_refused`.

use super::{GrantRequest, effective_scope, issue_for_account, optional};
use crate::audit::{AuditEvent, AuditKind, Outcome};
use crate::oauth::GrantType;
use crate::oauth::OAuthError;
use crate::oauth::OAuthServices;
use crate::oauth::client_registry::FlowTicketPolicy;
use crate::oauth::login_tickets::Redeemed;
use crate::oauth::params::Params;
use crate::oauth::token_service::Issued;
use crate::users::Account;
use crate::users::IdentityKey;

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

/// The parameters of a `flow` request.
pub struct FlowParams {
    pub app_id: String,
    pub open_id: String,
    /// Absent or empty when the app is bound to no Open Platform account.
    pub union_id: Option<String>,
    pub ticket: Option<String>,
    pub scope: Option<String>,
}

impl FlowParams {
    pub fn parse(params: &Params) -> Result<Self, OAuthError> {
        let (Some(app_id), Some(open_id)) = (optional(params, "appId"), optional(params, "openId"))
        else {
            return Err(OAuthError::invalid_request("appId and openId are required"));
        };
        Ok(Self {
            app_id,
            open_id,
            union_id: optional(params, "unionId").filter(|u| !u.is_empty()),
            ticket: optional(params, "ticket"),
            scope: optional(params, "scope"),
        })
    }
}

pub async fn grant(
    services: &OAuthServices,
    request: &GrantRequest<'_>,
    params: FlowParams,
) -> Result<Issued, OAuthError> {
    let appid = params.app_id.as_str();
    let open_id = params.open_id.as_str();
    let union_id = params.union_id.as_deref();
    let scope = effective_scope(request.client, params.scope.as_deref())?;

    let client_id = request.client.client_id.as_str();
    match (params.ticket.as_deref(), request.client.flow_ticket) {
        (Some(ticket), _) => {
            let identity = IdentityKey::new(appid.to_string(), open_id, union_id);
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
    issue_for_account(services, request, GrantType::Flow, &account, &scope).await
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
