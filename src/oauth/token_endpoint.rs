//! The token endpoint (RFC 6749 §3.2): its parameters ([`Params`], from the form body or, as the
//! seed's clients send them, the query string of the POST — except the secrets); client
//! authentication; the per-client rate limit; dispatch on
//! `grant_type`.

use serde::Serialize;

use crate::limits::Limit;
use crate::oauth::OAuthServices;
use crate::oauth::client_auth::authenticate_request;
use crate::oauth::error::OAuthError;
use crate::oauth::grant_type::GrantType;
use crate::oauth::grants::authorization_code::AuthorizationCodeParams;
use crate::oauth::grants::client_credentials::ClientCredentialsParams;
use crate::oauth::grants::device_code::DeviceCodeParams;
use crate::oauth::grants::flow::FlowParams;
use crate::oauth::grants::mini_program::MiniProgramParams;
use crate::oauth::grants::refresh_token::RefreshTokenParams;
use crate::oauth::grants::{self, GrantRequest};
use crate::oauth::params::Params;
use crate::oauth::seed_fields::SeedFields;
use crate::oauth::token_service::{Audience, Issued, issued_event};

/// A successful token response: the standard fields plus the seed's user fields.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub client_id: String,
    pub jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nick_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// `mini_program` grant only: the Mini Program session for `/api/wechat/ma/user` and
    /// `/api/wechat/ma/phone`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The access token's audience, for the audit trail (not sent).
    #[serde(skip)]
    pub audience: String,
    /// The issuance's audit event is written already (not sent).
    #[serde(skip)]
    pub audited: bool,
    /// Clients registered with `--seed-fields`, tokens for a person: the seed's user fields.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub seed: Option<SeedFields>,
}

impl From<Issued> for TokenResponse {
    fn from(issued: Issued) -> Self {
        let c = issued.claims;
        Self {
            access_token: issued.access_token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            refresh_token: issued.refresh_token,
            scope: c.scope,
            id_token: None,
            client_id: c.client_id,
            jti: c.jti,
            user_name: c.user_name,
            account: c.account,
            flow_user_id: c.flow_user_id,
            nick_name: c.nick_name,
            avatar: c.avatar,
            session_id: None,
            audience: match c.aud {
                Audience::One(one) => one,
                Audience::Many(many) => many.join(" "),
            },
            audited: issued.audited,
            seed: None,
        }
    }
}

/// Handle one token request.
pub async fn exchange(
    services: &OAuthServices,
    authorization: Option<&str>,
    params: Params,
) -> Result<TokenResponse, OAuthError> {
    let requested = params
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let (client, credentials) =
        authenticate_request(&services.clients, authorization, &params).await?;
    if let Some(limits) = crate::limits::current()
        && let Err(refused) = limits.check(Limit::TokenClient, &client.client_id).await
    {
        return Err(OAuthError::too_many_requests(
            refused.retry_after_secs(),
            "this client is sending too many token requests; retry later",
        ));
    }
    let grant_type = GrantType::parse(requested);
    if client.public && !grant_type.is_some_and(GrantType::open_to_public_clients) {
        return Err(OAuthError::invalid_client(
            "this grant requires a confidential client",
        ));
    }
    let grant_type = grant_type.ok_or_else(|| {
        OAuthError::unsupported_grant_type(format!("grant_type {requested:?} is not supported"))
    })?;
    if !client.allows_grant(grant_type) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client may not use grant_type {grant_type}"
        )));
    }
    // RFC 8707: every `resource` named must be registered and allowed to the client; the
    // grants that continue an earlier one (code, refresh) also keep it within that grant's.
    let resources = services
        .tokens
        .resources()
        .resolve(&client, &params.all("resource"))
        .await?;
    let request = GrantRequest {
        client: &client,
        credentials: &credentials,
        resources: &resources,
    };
    let response: TokenResponse = match grant_type {
        GrantType::ClientCredentials => grants::client_credentials::grant(
            services,
            &request,
            ClientCredentialsParams::parse(&params),
        )
        .await?
        .into(),
        GrantType::RefreshToken => {
            let (issued, id_token) = grants::refresh_token::grant(
                services,
                &request,
                RefreshTokenParams::parse(&params)?,
            )
            .await?;
            TokenResponse {
                id_token,
                ..issued.into()
            }
        }
        GrantType::Flow => grants::flow::grant(services, &request, FlowParams::parse(&params)?)
            .await?
            .into(),
        GrantType::AuthorizationCode => {
            let (issued, id_token) = grants::authorization_code::grant(
                services,
                &request,
                AuthorizationCodeParams::parse(&params)?,
            )
            .await?;
            TokenResponse {
                id_token,
                ..issued.into()
            }
        }
        GrantType::DeviceCode => {
            let (issued, id_token) =
                grants::device_code::grant(services, &request, DeviceCodeParams::parse(&params)?)
                    .await?;
            TokenResponse {
                id_token,
                ..issued.into()
            }
        }
        GrantType::MiniProgram => {
            let (issued, session_id) =
                grants::mini_program::grant(services, &request, MiniProgramParams::parse(&params)?)
                    .await?;
            TokenResponse {
                session_id: Some(session_id),
                ..issued.into()
            }
        }
    };
    let response = if client.seed_fields && response.flow_user_id.is_some() {
        TokenResponse {
            seed: Some(SeedFields::seed_defaults()),
            ..response
        }
    } else {
        response
    };
    if !response.audited {
        let account = response
            .flow_user_id
            .as_deref()
            .and_then(|id| id.parse().ok());
        let event = issued_event(
            grant_type,
            &client.client_id,
            &response.scope,
            &response.audience,
            &response.jti,
            account,
        );
        // No token goes out that the audit trail does not name: when its event cannot be
        // written, the token is not sent (503 when the database is only "not now").
        services
            .audit
            .record_or_fail(event)
            .await
            .map_err(|error| OAuthError::from_database(&error))?;
    }
    Ok(response)
}
