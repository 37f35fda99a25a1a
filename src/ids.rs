//! The ids WeChat gives apps and users: [`AppId`], [`OpenId`] and [`UnionId`]. Newtypes, so that
//! an openid can never be passed where an appid is expected. They sit below both the WeChat adapter
//! (which re-exports them from `wechat::types`) and the user store (which keys identities by them
//! and keeps them as strings in its columns), so neither has to import the other.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid WeChat appid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid WeChat appid: expected \"wx\" followed by 16 hex digits")]
pub struct InvalidAppId;

/// Whether `value` is a WeChat appid as it stands: `wx` followed by 16 hex digits.
pub fn is_valid_appid(value: &str) -> bool {
    value.len() == 18
        && value.starts_with("wx")
        && value[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// A WeChat application id: `wx` followed by 16 lowercase or uppercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AppId(String);

impl AppId {
    /// Validates and wraps an appid (surrounding whitespace is dropped).
    pub fn parse(value: &str) -> Result<Self, InvalidAppId> {
        let value = value.trim();
        if is_valid_appid(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidAppId)
        }
    }

    /// `value` as an appid only when it is one exactly as given (no whitespace to drop): for a
    /// value that must equal a stored appid to the letter.
    pub fn parse_exact(value: &str) -> Result<Self, InvalidAppId> {
        if is_valid_appid(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidAppId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
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

impl From<AppId> for String {
    fn from(id: AppId) -> Self {
        id.0
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

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
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
    fn exact_appids_keep_no_whitespace() {
        assert!(AppId::parse(" wx4f4bc4dec97d474b ").is_ok());
        assert_eq!(AppId::parse_exact(" wx4f4bc4dec97d474b"), Err(InvalidAppId));
    }
}
