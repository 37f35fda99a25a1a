//! `grant_type=mini_program`: one round trip from a `wx.login` code to tokens, for new Mini
//! Program front ends (`appId` and `code`, with client authentication). The code exchange is the
//! proof, so no login ticket is involved; the response also carries `session_id`, the handle of
//! the server-side session that `/api/wechat/ma/user` and `/ma/phone` take.

use super::{GrantRequest, effective_scope, issue_for_account, optional};
use crate::oauth::GrantType;
use crate::oauth::OAuthError;
use crate::oauth::OAuthServices;
use crate::oauth::params::Params;
use crate::oauth::token_service::Issued;

/// The parameters of a `mini_program` request.
pub struct MiniProgramParams {
    pub app_id: String,
    /// The `wx.login` code.
    pub code: String,
    pub scope: Option<String>,
}

impl MiniProgramParams {
    pub fn parse(params: &Params) -> Result<Self, OAuthError> {
        let (Some(app_id), Some(code)) = (optional(params, "appId"), optional(params, "code"))
        else {
            return Err(OAuthError::invalid_request("appId and code are required"));
        };
        Ok(Self {
            app_id,
            code,
            scope: optional(params, "scope"),
        })
    }
}

/// Exchange the code, record the identity, issue tokens for its account; returns what was issued
/// and the Mini Program session id.
pub async fn grant(
    services: &OAuthServices,
    request: &GrantRequest<'_>,
    params: MiniProgramParams,
) -> Result<(Issued, String), OAuthError> {
    let scope = effective_scope(request.client, params.scope.as_deref())?;
    let session = services
        .mini_program
        .sign_in(&params.app_id, &params.code)
        .await
        .map_err(OAuthError::from)?;
    let issued = issue_for_account(
        services,
        request,
        GrantType::MiniProgram,
        &session.account,
        &scope,
    )
    .await?;
    Ok((issued, session.session_id))
}
