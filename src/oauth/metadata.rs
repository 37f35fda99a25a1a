//! Authorization server metadata (RFC 8414).

use serde_json::{Value, json};

use crate::config::JwtAlg;

/// The metadata document for `issuer`.
pub fn document(issuer: &str, alg: JwtAlg) -> Value {
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "grant_types_supported": ["client_credentials", "refresh_token", "flow", "mini_program"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "token_endpoint_auth_signing_alg_values_supported": [alg.as_str()],
        "access_token_signing_alg_values_supported": [alg.as_str()],
        "response_types_supported": [],
        "scopes_supported": ["flow"],
    })
}
