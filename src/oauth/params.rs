//! Request parameters of the OAuth endpoints, each present at most once (RFC 6749 §3.2) except
//! [`REPEATABLE`] ones (RFC 8707's `resource`): merged
//! from the query string and the form body, with the token endpoint's secrets ([`BODY_ONLY`])
//! refused in the URL, where proxies and access logs would keep them.

use std::collections::HashMap;

use crate::oauth::error::OAuthError;

/// Parameters refused in the query string of the token endpoint: a client secret (RFC 6749
/// §2.3.1), and the refresh token, code and PKCE verifier that stand for a user. The seed's
/// `grant_type=flow` request carries none of them there.
pub const BODY_ONLY: &[&str] = &["client_secret", "refresh_token", "code", "code_verifier"];

/// Parameters that may be given more than once: `resource` (RFC 8707 §2).
pub const REPEATABLE: &[&str] = &["resource"];

/// Request parameters, each present at most once (RFC 6749 §3.2) except [`REPEATABLE`] ones.
#[derive(Debug, Default, Clone)]
pub struct Params {
    single: HashMap<String, String>,
    /// The values of [`REPEATABLE`] parameters, in the order given.
    repeated: Vec<(String, String)>,
}

impl Params {
    /// Merge the query-string and body parameters; a parameter given twice is `invalid_request`.
    pub fn merge(
        query: Vec<(String, String)>,
        body: Vec<(String, String)>,
    ) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        let mut repeated = Vec::new();
        for (k, v) in query.into_iter().chain(body) {
            if REPEATABLE.contains(&k.as_str()) {
                repeated.push((k, v));
                continue;
            }
            if map.insert(k.clone(), v).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {k:?} is repeated"
                )));
            }
        }
        Ok(Self {
            single: map,
            repeated,
        })
    }

    /// The token endpoint's parameters: [`Params::merge`], refusing [`BODY_ONLY`] parameters
    /// in the query string with `invalid_request`.
    pub fn for_token_endpoint(
        query: Vec<(String, String)>,
        body: Vec<(String, String)>,
    ) -> Result<Self, OAuthError> {
        if let Some((name, _)) = query.iter().find(|(k, _)| BODY_ONLY.contains(&k.as_str())) {
            return Err(OAuthError::invalid_request(format!(
                "{name} must be sent in the form body, never in the URL"
            )));
        }
        Self::merge(query, body)
    }

    /// A parameter given once (never a [`REPEATABLE`] one: see [`Params::all`]).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.single.get(key).map(String::as_str)
    }

    /// Every value of a [`REPEATABLE`] parameter, in the order given.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.repeated
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The `token` parameter of introspection and revocation, required and non-empty.
    pub fn token(&self) -> Result<&str, OAuthError> {
        self.get("token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::invalid_request("token is required"))
    }

    /// Remove a parameter and return its value.
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.single.remove(key)
    }

    /// Every parameter (each value of a repeated one), in no particular order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.single
            .iter()
            .chain(self.repeated.iter().map(|(k, v)| (k, v)))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let pairs = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::merge(pairs, Vec::new()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        let q = vec![("grant_type".to_string(), "flow".to_string())];
        let b = vec![("grant_type".to_string(), "client_credentials".to_string())];
        assert!(Params::merge(q, b).is_err());
        let p = Params::from_pairs(&[("a", "1")]);
        assert_eq!(p.get("a"), Some("1"));
        let p = Params::from_pairs(&[("resource", "https://a"), ("resource", "https://b")]);
        assert_eq!(p.all("resource"), vec!["https://a", "https://b"]);
        assert_eq!(p.pairs().count(), 2);
    }

    #[test]
    fn secrets_are_refused_in_the_query_string_only() {
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        for name in BODY_ONLY {
            let err = Params::for_token_endpoint(vec![pair(name, "x")], vec![]).err();
            assert_eq!(
                err.map(|e| e.code),
                Some(crate::oauth::OAuthErrorCode::InvalidRequest),
                "{name}"
            );
            assert!(Params::for_token_endpoint(vec![], vec![pair(name, "x")]).is_ok());
        }
        let seed = [
            "grant_type",
            "scope",
            "unionId",
            "appId",
            "openId",
            "ticket",
        ]
        .map(|k| pair(k, "x"))
        .to_vec();
        assert!(Params::for_token_endpoint(seed, vec![]).is_ok());
    }
}
