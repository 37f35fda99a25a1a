//! Typed identifiers and secrets exchanged with WeChat.
//!
//! Ids are newtypes so an openid can never be passed where an appid is expected; secrets have a
//! redacted `Debug` (and no `Display`) so that a stray `{:?}` in a log line prints `***` instead of
//! an app secret, a session key or an access token.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid WeChat appid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid WeChat appid: expected \"wx\" followed by 16 hex digits")]
pub struct InvalidAppId;

/// A WeChat application id: `wx` followed by 16 lowercase or uppercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AppId(String);

impl AppId {
    /// Validates and wraps an appid.
    pub fn parse(value: &str) -> Result<Self, InvalidAppId> {
        let value = value.trim();
        let valid = value.len() == 18
            && value.starts_with("wx")
            && value[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidAppId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppId({})", self.0)
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for AppId {
    type Err = InvalidAppId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for AppId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

macro_rules! plain_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

plain_id!(
    /// A user's id within one app (mini program, official account or website app).
    OpenId
);
plain_id!(
    /// A user's id across every app bound to one Open Platform account.
    UnionId
);

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
    fn appid_accepts_wx_and_16_hex() {
        assert!(AppId::parse("wx4f4bc4dec97d474b").is_ok());
        assert!(AppId::parse("wx4F4BC4DEC97D474B").is_ok());
    }

    #[test]
    fn appid_rejects_malformed() {
        for bad in [
            "",
            "wx",
            "xx4f4bc4dec97d474b",
            "wx4f4bc4dec97d474",
            "wx4f4bc4dec97d474bb",
            "wx4f4bc4dec97d474g",
            "wx4f4bc4dec97d47/b",
        ] {
            assert_eq!(AppId::parse(bad), Err(InvalidAppId), "{bad}");
        }
    }

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
