//! The claims wxauth puts in its access tokens (RFC 9068 §2.2 plus the seed's user fields).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The start of `sub` in tokens about a client itself (`client_credentials`).
pub const CLIENT_SUBJECT_PREFIX: &str = "client:";

/// The claim set of a wxauth access token.
///
/// `sub` is the flow user's id (a number) for user tokens and `client:` followed by the client id
/// for `client_credentials` tokens, so the two never collide (a client called `1` is not user
/// 1); the user fields (`user_name`, `account`, `flow_user_id`, …) are present only in user
/// tokens. Claims this struct does not name are kept in [`extra`](Self::extra).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandardClaims {
    /// The issuer: wxauth's public URL, without a trailing slash.
    pub iss: String,
    /// The subject: a flow user id, or `client:` and the client id for client-credentials tokens.
    pub sub: String,
    /// The audience (wxauth puts its issuer URL here unless configured otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated (RFC 9068 §2.2.3).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Issued at (seconds since the Unix epoch).
    pub iat: i64,
    /// Expires at (seconds since the Unix epoch).
    pub exp: i64,
    /// Not before (seconds since the Unix epoch), when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The token's unique id.
    pub jti: String,
    /// The seed's `user_name` (user tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// The seed's `account`: the WeChat unionid, when the user has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The flow user's id (user tokens). Accepted as a JSON string or number.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "string_or_number"
    )]
    pub flow_user_id: Option<String>,
    /// The user's WeChat nickname, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick_name: Option<String>,
    /// The user's avatar URL, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// Every other claim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl StandardClaims {
    /// The granted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_whitespace()
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// Whether the token stands for a user (as opposed to a client acting for itself).
    pub fn is_user(&self) -> bool {
        self.flow_user_id.is_some() && !self.is_client()
    }

    /// Whether the token stands for a client acting for itself (`client_credentials`): its
    /// `sub` is [`CLIENT_SUBJECT_PREFIX`] and the client id.
    pub fn is_client(&self) -> bool {
        self.sub.starts_with(CLIENT_SUBJECT_PREFIX)
    }
}

/// The `aud` claim: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `audience` is among the values.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(a) => a == audience,
            Audience::Many(list) => list.iter().any(|a| a == audience),
        }
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(serde::de::Error::custom(
            "flow_user_id must be a string or a number",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_token_claims_parse() {
        let claims: StandardClaims = serde_json::from_value(json!({
            "iss": "http://127.0.0.1:8080", "sub": "42", "aud": "http://127.0.0.1:8080",
            "client_id": "web", "scope": "flow admin", "iat": 1, "exp": 2, "jti": "j",
            "user_name": "u", "account": "union", "flow_user_id": 42, "custom": true
        }))
        .unwrap();
        assert_eq!(claims.flow_user_id.as_deref(), Some("42"));
        assert!(claims.has_scope("admin") && !claims.has_scope("adm"));
        assert!(claims.is_user());
        assert!(claims.aud.unwrap().contains("http://127.0.0.1:8080"));
        assert_eq!(claims.extra.get("custom"), Some(&json!(true)));
    }

    #[test]
    fn client_token_claims_parse() {
        let claims: StandardClaims = serde_json::from_value(json!({
            "iss": "i", "sub": "client:bench-cc", "aud": ["a", "b"], "client_id": "bench-cc",
            "scope": "api", "iat": 1, "exp": 2, "jti": "j"
        }))
        .unwrap();
        assert!(!claims.is_user());
        assert!(claims.is_client());
        assert!(claims.aud.unwrap().contains("b"));
    }
}
