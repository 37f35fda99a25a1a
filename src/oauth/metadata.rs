//! Authorization server metadata (RFC 8414) and OpenID Connect discovery (Discovery 1.0 §3): one
//! document, served at both well-known paths.

use serde_json::{Value, json};

use crate::config::JwtAlg;
use crate::oauth::grant_type::GrantType;

/// The metadata document for `issuer`.
pub fn document(issuer: &str, alg: JwtAlg) -> Value {
    let client_auth = ["client_secret_basic", "client_secret_post"];
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "device_authorization_endpoint": format!("{issuer}/oauth/device_authorization"),
        "grant_types_supported": GrantType::names(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": client_auth,
        // A public client revokes its own tokens by naming itself (RFC 7009 §2.1).
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "access_token_signing_alg_values_supported": [alg.as_str()],
        // ID tokens are always signed with a published key: ES256, or RS256 for clients that
        // register it (OIDC Discovery §3 requires RS256), whatever signs access tokens.
        "id_token_signing_alg_values_supported": crate::oauth::keys::ID_TOKEN_ALGS.map(JwtAlg::as_str),
        // Authorization responses carry `iss` (RFC 9207).
        "authorization_response_iss_parameter_supported": true,
        "subject_types_supported": ["public"],
        "scopes_supported": ["openid", "profile", "flow", "wechat_follow"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "name", "picture", "oa_subscribed"],
        "prompt_values_supported": ["none", "login", "consent"],
        // OpenID Connect RP-Initiated Logout 1.0 and Back-Channel Logout 1.0.
        "end_session_endpoint": format!("{issuer}/oauth/logout"),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    })
}
