//! Official-account web authorization (网页授权): the authorize and qrconnect URL builders and
//! `sns/oauth2/access_token`, `sns/oauth2/refresh_token`, `sns/userinfo`; and the follower
//! status of a user (`cgi-bin/user/info`, with the account's own access token).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use url::Url;

use super::client::{Replay, WeChatClient};
use super::error::WeChatError;
use super::types::{AccessToken, AppId, AppSecret, OpenId, RefreshToken, Scope, UnionId};

/// Everything but RFC 3986 unreserved characters is percent-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why an authorize URL could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeUrlError {
    #[error("state must be 1 to 128 characters of a-z, A-Z, 0-9")]
    InvalidState,
    #[error("redirect_uri must be an absolute http(s) URL")]
    InvalidRedirectUri,
    #[error("scope {0} is not valid here")]
    InvalidScope(&'static str),
}

/// The parameters of a `connect/oauth2/authorize` URL.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest<'a> {
    pub appid: &'a AppId,
    pub redirect_uri: &'a Url,
    pub scope: Scope,
    /// Opaque, at most 128 characters of `[A-Za-z0-9]` (WeChat's documented limit).
    pub state: &'a str,
    /// Set when a third-party platform authorizes on the official account's behalf.
    pub component_appid: Option<&'a AppId>,
}

fn check_state(state: &str) -> Result<(), AuthorizeUrlError> {
    if state.is_empty() || state.len() > 128 || !state.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(AuthorizeUrlError::InvalidState);
    }
    Ok(())
}

fn check_redirect(redirect_uri: &Url) -> Result<(), AuthorizeUrlError> {
    if matches!(redirect_uri.scheme(), "http" | "https") && redirect_uri.host().is_some() {
        Ok(())
    } else {
        Err(AuthorizeUrlError::InvalidRedirectUri)
    }
}

fn encode(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Builds `{open_base}/connect/oauth2/authorize?appid=…&redirect_uri=…&response_type=code&scope=…
/// &state=…[&component_appid=…]#wechat_redirect`, parameters in WeChat's documented order.
pub fn authorize_url(
    open_base: &Url,
    request: &AuthorizeRequest<'_>,
) -> Result<String, AuthorizeUrlError> {
    check_state(request.state)?;
    check_redirect(request.redirect_uri)?;
    if request.scope == Scope::SnsapiLogin {
        return Err(AuthorizeUrlError::InvalidScope("snsapi_login"));
    }
    let mut url = format!(
        "{}/connect/oauth2/authorize?appid={}&redirect_uri={}&response_type=code&scope={}&state={}",
        open_base.as_str().trim_end_matches('/'),
        encode(request.appid.as_str()),
        encode(request.redirect_uri.as_str()),
        request.scope.as_str(),
        request.state,
    );
    if let Some(component_appid) = request.component_appid {
        url.push_str("&component_appid=");
        url.push_str(&encode(component_appid.as_str()));
    }
    url.push_str("#wechat_redirect");
    Ok(url)
}

/// Builds the website QR-code login URL `{open_base}/connect/qrconnect?appid=…&redirect_uri=…
/// &response_type=code&scope=snsapi_login&state=…#wechat_redirect`.
pub fn qrconnect_url(
    open_base: &Url,
    appid: &AppId,
    redirect_uri: &Url,
    state: &str,
) -> Result<String, AuthorizeUrlError> {
    check_state(state)?;
    check_redirect(redirect_uri)?;
    Ok(format!(
        "{}/connect/qrconnect?appid={}&redirect_uri={}&response_type=code&scope=snsapi_login&state={}#wechat_redirect",
        open_base.as_str().trim_end_matches('/'),
        encode(appid.as_str()),
        encode(redirect_uri.as_str()),
        state,
    ))
}

/// What `sns/oauth2/access_token` (and its component and refresh variants) return.
#[derive(Debug, Clone, Deserialize)]
pub struct WebAccessToken {
    pub access_token: AccessToken,
    pub expires_in: i64,
    pub refresh_token: RefreshToken,
    pub openid: OpenId,
    pub scope: String,
    /// Only with `snsapi_userinfo` on an app bound to an Open Platform account.
    #[serde(default)]
    pub unionid: Option<UnionId>,
    /// 1 when the user is browsing a "snapshot" page and has not really authorized.
    #[serde(default)]
    pub is_snapshotuser: Option<i64>,
}

impl WebAccessToken {
    /// The scope WeChat granted, if recognised.
    pub fn granted_scope(&self) -> Option<Scope> {
        Scope::parse(&self.scope)
    }
}

/// The profile `sns/userinfo` returns (needs `snsapi_userinfo`).
#[derive(Debug, Clone, Deserialize)]
pub struct WebUserInfo {
    pub openid: OpenId,
    #[serde(default)]
    pub nickname: String,
    #[serde(default)]
    pub sex: i64,
    #[serde(default)]
    pub province: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub headimgurl: String,
    #[serde(default)]
    pub privilege: Vec<String>,
    #[serde(default)]
    pub unionid: Option<UnionId>,
}

/// What `cgi-bin/user/info` says of a user of the account. A user who does not follow answers
/// only `subscribe: 0`, the openid and (on an Open Platform) the unionid; since 2021-12-27 WeChat
/// gives no nickname or avatar here.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct FollowerInfo {
    /// 1 when the user follows the account.
    pub subscribe: i64,
    pub openid: OpenId,
    #[serde(default)]
    pub unionid: Option<UnionId>,
    /// When the user last followed (unix seconds).
    #[serde(default)]
    pub subscribe_time: Option<i64>,
    /// How: `ADD_SCENE_SEARCH`, `ADD_SCENE_QR_CODE`, `ADD_SCENE_PROFILE_CARD`, ….
    #[serde(default)]
    pub subscribe_scene: Option<String>,
    /// The numeric scene of the parametric QR code followed through (0: none).
    #[serde(default)]
    pub qr_scene: Option<i64>,
    /// The string scene of the parametric QR code followed through (empty: none).
    #[serde(default)]
    pub qr_scene_str: Option<String>,
    #[serde(default)]
    pub tagid_list: Option<Vec<i64>>,
}

impl FollowerInfo {
    pub fn follows(&self) -> bool {
        self.subscribe == 1
    }
}

impl WeChatClient {
    /// A user's follower status in the account whose (own or authorizer) access token this is.
    pub async fn follower_info(
        &self,
        appid: &AppId,
        access_token: &AccessToken,
        openid: &OpenId,
    ) -> Result<FollowerInfo, WeChatError> {
        self.get(
            "cgi-bin/user/info",
            appid.as_str(),
            &[
                ("access_token", access_token.expose()),
                ("openid", openid.as_str()),
                ("lang", "zh_CN"),
            ],
            Replay::Safe,
        )
        .await
    }

    /// [`authorize_url`] against this client's open base.
    pub fn authorize_url(
        &self,
        request: &AuthorizeRequest<'_>,
    ) -> Result<String, AuthorizeUrlError> {
        authorize_url(self.open_base(), request)
    }

    /// [`qrconnect_url`] against this client's open base.
    pub fn qrconnect_url(
        &self,
        appid: &AppId,
        redirect_uri: &Url,
        state: &str,
    ) -> Result<String, AuthorizeUrlError> {
        qrconnect_url(self.open_base(), appid, redirect_uri, state)
    }

    /// Exchanges a web-auth code with the app's own secret.
    pub async fn web_access_token(
        &self,
        appid: &AppId,
        secret: &AppSecret,
        code: &str,
    ) -> Result<WebAccessToken, WeChatError> {
        self.get(
            "sns/oauth2/access_token",
            appid.as_str(),
            &[
                ("appid", appid.as_str()),
                ("secret", secret.expose()),
                ("code", code),
                ("grant_type", "authorization_code"),
            ],
            Replay::OnlyIfNotDelivered,
        )
        .await
    }

    /// Refreshes a web-auth access token.
    pub async fn web_refresh_token(
        &self,
        appid: &AppId,
        refresh_token: &RefreshToken,
    ) -> Result<WebAccessToken, WeChatError> {
        self.get(
            "sns/oauth2/refresh_token",
            appid.as_str(),
            &[
                ("appid", appid.as_str()),
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose()),
            ],
            Replay::Safe,
        )
        .await
    }

    /// The user's profile; requires a token obtained with `snsapi_userinfo`.
    pub async fn web_user_info(
        &self,
        appid: &AppId,
        access_token: &AccessToken,
        openid: &OpenId,
    ) -> Result<WebUserInfo, WeChatError> {
        self.get(
            "sns/userinfo",
            appid.as_str(),
            &[
                ("access_token", access_token.expose()),
                ("openid", openid.as_str()),
                ("lang", "zh_CN"),
            ],
            Replay::Safe,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_base() -> Url {
        Url::parse("https://open.weixin.qq.com").unwrap()
    }

    #[test]
    fn authorize_url_has_documented_order_and_fragment() {
        let appid = AppId::parse("wx520c15f417810387").unwrap();
        let redirect = Url::parse("https://auth.example.com/cb?next=a b&x=1").unwrap();
        let url = authorize_url(
            &open_base(),
            &AuthorizeRequest {
                appid: &appid,
                redirect_uri: &redirect,
                scope: Scope::SnsapiBase,
                state: "abc123",
                component_appid: None,
            },
        )
        .unwrap();
        assert_eq!(
            url,
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx520c15f417810387\
             &redirect_uri=https%3A%2F%2Fauth.example.com%2Fcb%3Fnext%3Da%2520b%26x%3D1\
             &response_type=code&scope=snsapi_base&state=abc123#wechat_redirect"
        );
    }

    #[test]
    fn authorize_url_with_component() {
        let appid = AppId::parse("wx520c15f417810387").unwrap();
        let component = AppId::parse("wx0123456789abcdef").unwrap();
        let redirect = Url::parse("https://auth.example.com/cb").unwrap();
        let url = authorize_url(
            &open_base(),
            &AuthorizeRequest {
                appid: &appid,
                redirect_uri: &redirect,
                scope: Scope::SnsapiUserinfo,
                state: "S",
                component_appid: Some(&component),
            },
        )
        .unwrap();
        assert!(url.ends_with(
            "&scope=snsapi_userinfo&state=S&component_appid=wx0123456789abcdef#wechat_redirect"
        ));
    }

    #[test]
    fn authorize_url_rejects_bad_state_scope_and_redirect() {
        let appid = AppId::parse("wx520c15f417810387").unwrap();
        let redirect = Url::parse("https://auth.example.com/cb").unwrap();
        let request = |state: &'static str, scope| AuthorizeRequest {
            appid: &appid,
            redirect_uri: &redirect,
            scope,
            state,
            component_appid: None,
        };
        for bad_state in ["", "a&b", "a b", "é", &"x".repeat(129).leak()[..]] {
            assert_eq!(
                authorize_url(&open_base(), &request(bad_state, Scope::SnsapiBase)),
                Err(AuthorizeUrlError::InvalidState)
            );
        }
        assert!(authorize_url(&open_base(), &request("ok", Scope::SnsapiLogin)).is_err());
        let ftp = Url::parse("ftp://x/y").unwrap();
        assert_eq!(
            qrconnect_url(&open_base(), &appid, &ftp, "ok"),
            Err(AuthorizeUrlError::InvalidRedirectUri)
        );
    }

    #[test]
    fn qrconnect_url_for_website_login() {
        let appid = AppId::parse("wx520c15f417810387").unwrap();
        let redirect = Url::parse("https://auth.example.com/web/cb").unwrap();
        assert_eq!(
            qrconnect_url(&open_base(), &appid, &redirect, "xyz").unwrap(),
            "https://open.weixin.qq.com/connect/qrconnect?appid=wx520c15f417810387\
             &redirect_uri=https%3A%2F%2Fauth.example.com%2Fweb%2Fcb&response_type=code\
             &scope=snsapi_login&state=xyz#wechat_redirect"
        );
    }
}
