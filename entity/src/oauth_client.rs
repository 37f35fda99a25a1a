//! A registered OAuth2 client.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_client")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub client_id: String,
    /// Keyed SHA-256 of the secret (hex); `None` for public clients.
    pub secret_hash: Option<String>,
    /// Comma-separated grant types.
    pub grant_types: String,
    /// Space-separated scopes the client may ask for.
    pub scopes: String,
    /// Newline-separated redirect URIs (exact match).
    #[sea_orm(column_type = "Text")]
    pub redirect_uris: String,
    pub is_public: bool,
    pub first_party: bool,
    pub access_token_ttl: i64,
    pub refresh_token_ttl: i64,
    /// `required` or `optional`.
    pub flow_ticket: String,
    /// A resource server: may introspect other clients' tokens and look up unionids.
    pub introspect: bool,
    /// The absolute lifetime (seconds) of the refresh-token families issued to this client.
    pub refresh_family_ttl: i64,
    /// After a rotation: the fingerprint of the previous secret, accepted until
    /// `previous_secret_expires_at` (unix seconds).
    pub previous_secret_hash: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    /// The name people see on the consent page.
    pub display_name: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub logo_url: Option<String>,
    /// Newline-separated identifiers of the resources (RFC 8707) the client may ask tokens for.
    #[sea_orm(column_type = "Text", nullable)]
    pub resources: Option<String>,
    /// Newline-separated web origins allowed to call the token endpoints from a browser (CORS),
    /// beyond those of the redirect URIs; `None` for none.
    #[sea_orm(column_type = "Text", nullable)]
    pub allowed_origins: Option<String>,
    /// Newline-separated post-logout redirect URIs (exact match); `None` for none.
    #[sea_orm(column_type = "Text", nullable)]
    pub post_logout_redirect_uris: Option<String>,
    /// Where back-channel logout tokens are POSTed (OIDC Back-Channel Logout 1.0).
    #[sea_orm(column_type = "Text", nullable)]
    pub backchannel_logout_uri: Option<String>,
    /// Whether the client needs `sid` in its logout tokens.
    pub backchannel_logout_session_required: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// `ES256` or `RS256`: the algorithm of this client's ID tokens; `None`: the server's default.
    pub id_token_signed_response_alg: Option<String>,
    /// The token response also carries the seed's user fields (`tenant_id`, …).
    pub seed_fields: bool,
    /// Newline-separated appids whose WeChat credentials the client may fetch from the broker
    /// (`POST /api/wechat/credentials`); `None` for none.
    #[sea_orm(column_type = "Text", nullable)]
    pub wechat_appids: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
