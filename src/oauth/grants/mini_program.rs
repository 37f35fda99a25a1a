//! `grant_type=mini_program`: one round trip from a `wx.login` code to tokens, for new Mini
//! Program front ends (`appId` and `code`, with client authentication). The code exchange is the
//! proof, so no login ticket is involved; the response also carries `session_id`, the handle of
//! the server-side session that `/api/wechat/ma/user` and `/ma/phone` take.

use super::{GrantRequest, effective_scope, issue_for_account};
use crate::oauth::OAuthError;
use crate::oauth::OAuthServices;
use crate::oauth::token_service::Issued;

/// Exchange the code, record the identity, issue tokens for its account; returns what was issued
/// and the Mini Program session id.
pub async fn grant(
    services: &OAuthServices,
    request: &GrantRequest<'_>,
) -> Result<(Issued, String), OAuthError> {
    let params = request.params;
    let (Some(appid), Some(code)) = (params.get("appId"), params.get("code")) else {
        return Err(OAuthError::invalid_request("appId and code are required"));
    };
    let scope = effective_scope(request.client, params.get("scope"))?;
    let session = services
        .mini_program
        .sign_in(appid, code)
        .await
        .map_err(OAuthError::from)?;
    let issued = issue_for_account(services, request, &session.account, &scope).await?;
    Ok((issued, session.session_id))
}
