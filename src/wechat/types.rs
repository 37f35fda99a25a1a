//! Typed identifiers and secrets exchanged with WeChat.
//!
//! The ids ([`AppId`], [`OpenId`], [`UnionId`]) are defined in [`crate::ids`], which the user
//! store shares, and re-exported here. Secrets have a redacted `Debug` (and no `Display`) so that
//! a stray `{:?}` in a log line prints `***` instead of an app secret, a session key or an access
//! token.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::ids::{AppId, InvalidAppId, OpenId, UnionId};

macro_rules! secret {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret itself, for the one place that must send or store it.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "(***)"))
            }
        }
    };
}

secret!(
    /// An app's AppSecret (or a component's component_appsecret).
    AppSecret
);
secret!(
    /// The mini-program session key returned by `jscode2session`; the AES key of `encryptedData`.
    SessionKey
);
secret!(
    /// Any WeChat access token: app, component, authorizer or user (web auth) token.
    AccessToken
);
secret!(
    /// A web-auth refresh token or an authorizer refresh token.
    RefreshToken
);

/// The `scope` of a WeChat web authorization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Silent: gives the openid only.
    #[serde(rename = "snsapi_base")]
    SnsapiBase,
    /// Asks the user: gives the profile and the unionid.
    #[serde(rename = "snsapi_userinfo")]
    SnsapiUserinfo,
    /// Website QR-code login (`connect/qrconnect`).
    #[serde(rename = "snsapi_login")]
    SnsapiLogin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::SnsapiBase => "snsapi_base",
            Scope::SnsapiUserinfo => "snsapi_userinfo",
            Scope::SnsapiLogin => "snsapi_login",
        }
    }

    /// Parses one scope; WeChat may echo several separated by commas, the first one counts.
    pub fn parse(value: &str) -> Option<Self> {
        match value.split(',').next().map(str::trim) {
            Some("snsapi_base") => Some(Scope::SnsapiBase),
            Some("snsapi_userinfo") => Some(Scope::SnsapiUserinfo),
            Some("snsapi_login") => Some(Scope::SnsapiLogin),
            _ => None,
        }
    }
}

/// The kinds of upstream token wxauth caches, as stored in `wechat_token.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// An app's own `access_token` (stable_token / cgi-bin/token).
    AccessToken,
    /// An Open Platform component's `component_access_token`.
    ComponentAccessToken,
    /// An authorizer's token obtained through a component (`api_authorizer_token`).
    AuthorizerAccessToken,
    /// An official account's JS-SDK ticket (`cgi-bin/ticket/getticket?type=jsapi`).
    JsapiTicket,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::AccessToken => "access_token",
            TokenKind::ComponentAccessToken => "component_access_token",
            TokenKind::AuthorizerAccessToken => "authorizer_access_token",
            TokenKind::JsapiTicket => "jsapi_ticket",
        }
    }

    /// Every kind.
    pub const ALL: [TokenKind; 4] = [
        TokenKind::AccessToken,
        TokenKind::ComponentAccessToken,
        TokenKind::AuthorizerAccessToken,
        TokenKind::JsapiTicket,
    ];

    /// The kind stored (and asked for) as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug() {
        let rendered = format!(
            "{:?} {:?} {:?} {:?}",
            AppSecret::new("s3cr3t"),
            SessionKey::new("tiihtNczf5v6AKRyjwEUhQ=="),
            AccessToken::new("ACCESS"),
            RefreshToken::new("REFRESH")
        );
        assert!(!rendered.contains("s3cr3t"));
        assert!(!rendered.contains("tiiht"));
        assert!(!rendered.contains("ACCESS"));
        assert!(!rendered.contains("REFRESH"));
        assert!(rendered.contains("***"));
    }

    #[test]
    fn scope_round_trips() {
        for scope in [Scope::SnsapiBase, Scope::SnsapiUserinfo, Scope::SnsapiLogin] {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(
            Scope::parse("snsapi_userinfo,snsapi_base"),
            Some(Scope::SnsapiUserinfo)
        );
        assert_eq!(Scope::parse("nope"), None);
    }
}
