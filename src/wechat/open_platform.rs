//! Open Platform third-party platform ("component") calls: `api_component_token`,
//! `api_query_auth`, `api_authorizer_token` and web auth on an authorizer's behalf
//! (`sns/oauth2/component/access_token`).

use serde::{Deserialize, Serialize};

use super::client::{Replay, WeChatClient};
use super::error::WeChatError;
use super::official_account::WebAccessToken;
use super::types::{AccessToken, AppId, AppSecret, RefreshToken};

/// `api_component_token`'s answer.
#[derive(Debug, Clone, Deserialize)]
pub struct ComponentToken {
    pub component_access_token: AccessToken,
    pub expires_in: i64,
}

/// An authorizer's tokens, from `api_query_auth` or `api_authorizer_token`.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthorizerTokens {
    #[serde(default)]
    pub authorizer_appid: Option<String>,
    pub authorizer_access_token: AccessToken,
    pub expires_in: i64,
    pub authorizer_refresh_token: RefreshToken,
}

#[derive(Deserialize)]
struct QueryAuthResponse {
    authorization_info: AuthorizerTokens,
}

#[derive(Serialize)]
struct ComponentTokenRequest<'a> {
    component_appid: &'a str,
    component_appsecret: &'a str,
    component_verify_ticket: &'a str,
}

#[derive(Serialize)]
struct QueryAuthRequest<'a> {
    component_appid: &'a str,
    authorization_code: &'a str,
}

#[derive(Serialize)]
struct AuthorizerTokenRequest<'a> {
    component_appid: &'a str,
    authorizer_appid: &'a str,
    authorizer_refresh_token: &'a str,
}

impl WeChatClient {
    /// Fetches a component_access_token with the last pushed component_verify_ticket.
    pub async fn component_token(
        &self,
        component_appid: &AppId,
        component_secret: &AppSecret,
        component_verify_ticket: &str,
    ) -> Result<ComponentToken, WeChatError> {
        let body = ComponentTokenRequest {
            component_appid: component_appid.as_str(),
            component_appsecret: component_secret.expose(),
            component_verify_ticket,
        };
        self.post_json(
            "cgi-bin/component/api_component_token",
            component_appid.as_str(),
            &[],
            &body,
            Replay::Safe,
        )
        .await
    }

    /// Exchanges the authorization code of an authorizer's consent for its tokens.
    pub async fn query_auth(
        &self,
        component_access_token: &AccessToken,
        component_appid: &AppId,
        authorization_code: &str,
    ) -> Result<AuthorizerTokens, WeChatError> {
        let body = QueryAuthRequest {
            component_appid: component_appid.as_str(),
            authorization_code,
        };
        let response: QueryAuthResponse = self
            .post_json(
                "cgi-bin/component/api_query_auth",
                component_appid.as_str(),
                &[("component_access_token", component_access_token.expose())],
                &body,
                Replay::OnlyIfNotDelivered,
            )
            .await?;
        Ok(response.authorization_info)
    }

    /// Refreshes an authorizer's access token with its refresh token.
    pub async fn authorizer_token(
        &self,
        component_access_token: &AccessToken,
        component_appid: &AppId,
        authorizer_appid: &AppId,
        authorizer_refresh_token: &RefreshToken,
    ) -> Result<AuthorizerTokens, WeChatError> {
        let body = AuthorizerTokenRequest {
            component_appid: component_appid.as_str(),
            authorizer_appid: authorizer_appid.as_str(),
            authorizer_refresh_token: authorizer_refresh_token.expose(),
        };
        self.post_json(
            "cgi-bin/component/api_authorizer_token",
            authorizer_appid.as_str(),
            &[("component_access_token", component_access_token.expose())],
            &body,
            Replay::Safe,
        )
        .await
    }

    /// Exchanges a web-auth code obtained with `component_appid` on the authorizer's behalf.
    pub async fn component_web_access_token(
        &self,
        appid: &AppId,
        code: &str,
        component_appid: &AppId,
        component_access_token: &AccessToken,
    ) -> Result<WebAccessToken, WeChatError> {
        self.get(
            "sns/oauth2/component/access_token",
            appid.as_str(),
            &[
                ("appid", appid.as_str()),
                ("code", code),
                ("grant_type", "authorization_code"),
                ("component_appid", component_appid.as_str()),
                ("component_access_token", component_access_token.expose()),
            ],
            Replay::OnlyIfNotDelivered,
        )
        .await
    }
}
