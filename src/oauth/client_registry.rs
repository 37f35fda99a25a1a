//! The registry of OAuth2 clients: creation and administration (used by the CLI and `dev`), and
//! authentication of a client by id and secret (used by every endpoint that takes client
//! credentials). Secrets are stored as keyed SHA-256 fingerprints and compared in constant time:
//! server-generated secrets carry 256 bits, so a slow password hash buys nothing and would cost
//! ~300 ms per token request (oxide-auth's default Argon2 policy).
//!
//! Authentication reads the client's record through a short-lived in-process cache
//! ([`CLIENT_CACHE_TTL`]): the secret is still fingerprinted and compared in constant time on
//! every request, only the database read is saved. Rotating a secret, setting one or deleting a
//! client through this registry takes effect on this instance at once; another instance (or a
//! `wxauth client …` command, which is another process) sees the change within the TTL.

use std::sync::Arc;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait, QueryOrder,
};

use entity::oauth_client;

use crate::clock::SharedClock;
use crate::config::JwtAlg;
use crate::oauth::allowed_origins::AllowedOrigins;
use crate::oauth::grant_type::GrantType;
use crate::secret::Secret;
use crate::ttl_cache::TtlCache;
use crate::vault::{Vault, random_token};

/// How long (seconds) an instance authenticates a client against a record it read, before
/// reading it again: the longest another instance keeps accepting a rotated secret or a deleted
/// client.
pub const CLIENT_CACHE_TTL: i64 = crate::oauth::allowed_origins::ORIGIN_CACHE_TTL;

/// Default access-token lifetime (seconds).
pub const DEFAULT_ACCESS_TTL: i64 = 3600;
/// Default refresh-token lifetime (seconds).
pub const DEFAULT_REFRESH_TTL: i64 = 30 * 24 * 3600;
/// Default absolute lifetime of a refresh-token family (seconds): rotation never carries a
/// family past it.
pub const DEFAULT_FAMILY_TTL: i64 = 30 * 24 * 3600;
/// The longest access-token lifetime (seconds): one day (retired signing keys stay published
/// this long).
pub const MAX_ACCESS_TTL: i64 = crate::oauth::keys::MAX_TOKEN_TTL;
/// The longest refresh-token lifetime (seconds): one year.
pub const MAX_REFRESH_TTL: i64 = 365 * 24 * 3600;
/// The longest refresh-token family lifetime (seconds): one year.
pub const MAX_FAMILY_TTL: i64 = 365 * 24 * 3600;
/// The longest a rotated-out secret may keep working (seconds): 30 days.
pub use crate::config::MAX_SECRET_OVERLAP;
/// The shortest secret accepted when an operator imports one.
pub const MIN_IMPORTED_SECRET_LEN: usize = 16;

/// The algorithms a client may register for its ID tokens (`id_token_signed_response_alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenAlg {
    Es256,
    Rs256,
}

impl IdTokenAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        self.jwt_alg().as_str()
    }

    /// `ES256` or `RS256` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match JwtAlg::parse(text)? {
            JwtAlg::Es256 => Some(Self::Es256),
            JwtAlg::Rs256 => Some(Self::Rs256),
            _ => None,
        }
    }

    pub fn jwt_alg(self) -> JwtAlg {
        match self {
            Self::Es256 => JwtAlg::Es256,
            Self::Rs256 => JwtAlg::Rs256,
        }
    }
}

/// Whether the `flow` grant demands a login ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowTicketPolicy {
    /// A single-use login ticket minted by wxauth is required (the default).
    Required,
    /// The seed's bare request (unionId + appId + openId) is accepted; for migration only.
    Optional,
}

impl FlowTicketPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Optional => "optional",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "required" => Some(Self::Required),
            "optional" => Some(Self::Optional),
            _ => None,
        }
    }
}

/// What an operator asks for when creating a client.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub client_id: String,
    /// An imported secret; `None` to have one generated (confidential clients).
    pub secret: Option<Secret>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    pub first_party: bool,
    pub access_token_ttl: i64,
    pub refresh_token_ttl: i64,
    pub flow_ticket: FlowTicketPolicy,
    /// A resource server: may introspect other clients' tokens (`--introspect`).
    pub introspect: bool,
    /// Absolute lifetime of this client's refresh-token families (seconds).
    pub refresh_family_ttl: i64,
    /// The name and logo people see on the consent page.
    pub display_name: Option<String>,
    pub logo_url: Option<String>,
    /// Identifiers of the resources (RFC 8707) the client may ask tokens for.
    pub resources: Vec<String>,
    /// The algorithm of this client's ID tokens; `None`: the server's default.
    pub id_token_alg: Option<IdTokenAlg>,
    /// The token response also carries the seed's user fields (`--seed-fields`).
    pub seed_fields: bool,
    /// Web origins, beyond those of the redirect URIs, whose pages may call the token,
    /// userinfo and revocation endpoints (CORS; `--allowed-origin`).
    pub allowed_origins: Vec<String>,
    /// Logout: where RP-initiated logout may return to, and the back-channel endpoint.
    pub logout: ClientLogout,
    /// The WeChat apps whose upstream credentials the client may fetch from the credential
    /// broker (with the `wechat:credentials` scope; `--wechat-appid`).
    pub wechat_appids: Vec<String>,
}

/// What a client registers for logout (OIDC RP-Initiated and Back-Channel Logout 1.0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientLogout {
    /// Where the end-session endpoint may send the browser back (exact match).
    pub post_logout_redirect_uris: Vec<String>,
    /// Where logout tokens are POSTed when a session ends.
    pub backchannel_logout_uri: Option<String>,
    /// Whether the client needs `sid` in its logout tokens.
    pub backchannel_logout_session_required: bool,
}

impl Default for NewClient {
    /// A confidential client with no grants, no scopes and the default lifetimes.
    fn default() -> Self {
        Self {
            client_id: String::new(),
            secret: None,
            grant_types: Vec::new(),
            scopes: Vec::new(),
            redirect_uris: Vec::new(),
            public: false,
            first_party: false,
            access_token_ttl: DEFAULT_ACCESS_TTL,
            refresh_token_ttl: DEFAULT_REFRESH_TTL,
            flow_ticket: FlowTicketPolicy::Required,
            introspect: false,
            refresh_family_ttl: DEFAULT_FAMILY_TTL,
            display_name: None,
            logo_url: None,
            resources: Vec::new(),
            id_token_alg: None,
            seed_fields: false,
            logout: ClientLogout::default(),
            allowed_origins: Vec::new(),
            wechat_appids: Vec::new(),
        }
    }
}

/// A client as the rest of the server sees it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredClient {
    pub client_id: String,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    pub first_party: bool,
    pub access_token_ttl: i64,
    pub refresh_token_ttl: i64,
    pub flow_ticket: FlowTicketPolicy,
    /// A resource server: may introspect other clients' tokens and look up unionids.
    pub introspect: bool,
    /// Absolute lifetime of this client's refresh-token families (seconds).
    pub refresh_family_ttl: i64,
    /// The name and logo people see instead of the client id.
    pub display_name: Option<String>,
    pub logo_url: Option<String>,
    /// Identifiers of the resources (RFC 8707) the client may ask tokens for.
    pub resources: Vec<String>,
    /// After a secret rotation: until when (unix seconds) the previous secret still works.
    pub previous_secret_until: Option<i64>,
    /// The algorithm of this client's ID tokens; `None`: the server's default.
    pub id_token_alg: Option<IdTokenAlg>,
    /// The token response also carries the seed's user fields.
    pub seed_fields: bool,
    /// Web origins allowed by CORS beyond those of the redirect URIs (serialized).
    pub allowed_origins: Vec<String>,
    pub logout: ClientLogout,
    /// The WeChat apps whose credentials the broker hands this client.
    pub wechat_appids: Vec<String>,
}

/// A change to a client's settings: `None` leaves a setting as it is. The type (public or
/// confidential) and the id never change; the secret changes only by rotation.
#[derive(Debug, Clone, Default)]
pub struct ClientChanges {
    /// `Some(None)` removes the display name.
    pub display_name: Option<Option<String>>,
    /// `Some(None)` removes the logo.
    pub logo_url: Option<Option<String>>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub redirect_uris: Option<Vec<String>>,
    pub first_party: Option<bool>,
    pub access_token_ttl: Option<i64>,
    pub refresh_token_ttl: Option<i64>,
    pub refresh_family_ttl: Option<i64>,
    pub flow_ticket: Option<FlowTicketPolicy>,
    pub introspect: Option<bool>,
    /// The resources the client may ask tokens for (replacing the list).
    pub resources: Option<Vec<String>>,
    pub id_token_alg: Option<IdTokenAlg>,
    pub seed_fields: Option<bool>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// `Some(None)` removes the back-channel logout URI.
    pub backchannel_logout_uri: Option<Option<String>>,
    pub backchannel_logout_session_required: Option<bool>,
    pub allowed_origins: Option<Vec<String>>,
    /// The WeChat apps whose credentials the broker hands out (replacing the list).
    pub wechat_appids: Option<Vec<String>>,
}

/// The longest display name (characters).
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;

impl RegisteredClient {
    pub fn allows_grant(&self, grant_type: GrantType) -> bool {
        self.grant_types.iter().any(|g| g == grant_type.as_str())
    }

    pub fn allows_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether the credential broker may hand this client `appid`'s WeChat credentials.
    pub fn allows_wechat_app(&self, appid: &str) -> bool {
        self.wechat_appids.iter().any(|a| a == appid)
    }
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientRegistryError {
    #[error("client id must be 1-128 characters of letters, digits, '-', '_' or '.'")]
    InvalidClientId,
    #[error("an imported secret must be at least {MIN_IMPORTED_SECRET_LEN} characters")]
    SecretTooShort,
    #[error("a public client has no secret")]
    PublicWithSecret,
    #[error("unknown grant type {0:?} (known: {known})", known = GrantType::names().join(", "))]
    UnknownGrantType(String),
    #[error("scope {0:?} is not a valid scope token")]
    InvalidScope(String),
    #[error("redirect URI {0:?} must be an absolute URL without a fragment")]
    InvalidRedirectUri(String),
    #[error(
        "authorization_code needs at least one redirect URI: the authorization endpoint sends the code only to a registered one"
    )]
    CodeWithoutRedirectUri,
    #[error(
        "a public client cannot have client_credentials: it holds no secret, so anyone knowing its id could obtain its tokens"
    )]
    PublicClientCredentials,
    #[error("{option} must be from 1 to {max} seconds, got {value}")]
    InvalidTtl {
        /// The command-line option that sets it.
        option: &'static str,
        max: i64,
        value: i64,
    },
    #[error(
        "display name must be 1-{MAX_DISPLAY_NAME_CHARS} characters without control characters"
    )]
    InvalidDisplayName,
    #[error("logo URL {0:?} must be an absolute https URL (http only on localhost)")]
    InvalidLogoUrl(String),
    #[error("post-logout redirect URI {0:?} must be an absolute URL without a fragment")]
    InvalidPostLogoutRedirectUri(String),
    #[error(
        "back-channel logout URI {0:?} must be an absolute https URL without a fragment (http only on localhost)"
    )]
    InvalidBackchannelLogoutUri(String),
    #[error("the secret overlap must be from 0 to {max} seconds, got {value}")]
    InvalidOverlap { max: i64, value: i64 },
    #[error(
        "allowed origin {0:?} must be an http(s) origin: scheme, host and optional port, no path"
    )]
    InvalidOrigin(String),
    #[error("WeChat appid {0:?} must be wx followed by 16 hexadecimal digits")]
    InvalidWeChatAppId(String),
    #[error("client {0:?} already exists")]
    AlreadyExists(String),
    #[error("no client {0:?}")]
    NotFound(String),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// Why client authentication failed. Callers answer `invalid_client` for all of them alike.
#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    #[error("unknown client or bad secret")]
    BadCredentials,
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// What authentication needs of a stored client: its secret's fingerprint and the client.
#[derive(Clone)]
struct StoredClient {
    secret_hash: Option<String>,
    /// The previous secret's fingerprint and when it stops working.
    previous_secret: Option<(String, i64)>,
    client: RegisteredClient,
}

/// Reads and writes `oauth_client`. Clones share one cache.
#[derive(Clone)]
pub struct ClientRegistry {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
    cache: Arc<TtlCache<StoredClient>>,
    origins: Arc<AllowedOrigins>,
}

fn split_list(text: &str, sep: char) -> Vec<String> {
    text.split(sep)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn to_registered(m: oauth_client::Model) -> RegisteredClient {
    RegisteredClient {
        grant_types: split_list(&m.grant_types, ','),
        scopes: split_list(&m.scopes, ' '),
        redirect_uris: split_list(&m.redirect_uris, '\n'),
        public: m.is_public,
        first_party: m.first_party,
        // Rows written before lifetimes were bounded are held to the bounds.
        access_token_ttl: m.access_token_ttl.clamp(1, MAX_ACCESS_TTL),
        refresh_token_ttl: m.refresh_token_ttl.clamp(1, MAX_REFRESH_TTL),
        flow_ticket: FlowTicketPolicy::parse(&m.flow_ticket).unwrap_or(FlowTicketPolicy::Required),
        introspect: m.introspect,
        refresh_family_ttl: m.refresh_family_ttl.clamp(1, MAX_FAMILY_TTL),
        display_name: m.display_name,
        logo_url: m.logo_url,
        resources: m
            .resources
            .as_deref()
            .map(|r| split_list(r, '\n'))
            .unwrap_or_default(),
        logout: ClientLogout {
            post_logout_redirect_uris: split_list(
                m.post_logout_redirect_uris.as_deref().unwrap_or_default(),
                '\n',
            ),
            backchannel_logout_uri: m.backchannel_logout_uri,
            backchannel_logout_session_required: m.backchannel_logout_session_required,
        },
        allowed_origins: m
            .allowed_origins
            .as_deref()
            .map(|text| split_list(text, '\n'))
            .unwrap_or_default(),
        wechat_appids: m
            .wechat_appids
            .as_deref()
            .map(|text| split_list(text, '\n'))
            .unwrap_or_default(),
        previous_secret_until: m
            .previous_secret_hash
            .as_ref()
            .and(m.previous_secret_expires_at),
        id_token_alg: m
            .id_token_signed_response_alg
            .as_deref()
            .and_then(IdTokenAlg::parse),
        seed_fields: m.seed_fields,
        client_id: m.client_id,
    }
}

/// Grant types, scopes and redirect URIs must be known, valid tokens and exact absolute URLs.
fn check_lists(
    grant_types: &[String],
    scopes: &[String],
    redirect_uris: &[String],
) -> Result<(), ClientRegistryError> {
    for g in grant_types {
        if GrantType::parse(g).is_none() {
            return Err(ClientRegistryError::UnknownGrantType(g.clone()));
        }
    }
    if let Some(s) = scopes.iter().find(|s| !valid_scope_token(s)) {
        return Err(ClientRegistryError::InvalidScope(s.clone()));
    }
    for uri in redirect_uris {
        let ok = url::Url::parse(uri)
            .map(|u| u.fragment().is_none() && u.has_host())
            .unwrap_or(false);
        if !ok {
            return Err(ClientRegistryError::InvalidRedirectUri(uri.clone()));
        }
    }
    Ok(())
}

/// Post-logout redirect URIs are exact absolute URLs like redirect URIs; the back-channel URI is
/// an https URL (http only on a loopback host, for development) without a fragment (Back-Channel
/// Logout 1.0 §2.2).
fn check_logout(
    post_logout_redirect_uris: &[String],
    backchannel_logout_uri: Option<&str>,
) -> Result<(), ClientRegistryError> {
    for uri in post_logout_redirect_uris {
        let ok = url::Url::parse(uri)
            .map(|u| u.fragment().is_none() && u.has_host())
            .unwrap_or(false);
        if !ok {
            return Err(ClientRegistryError::InvalidPostLogoutRedirectUri(
                uri.clone(),
            ));
        }
    }
    if let Some(uri) = backchannel_logout_uri {
        let ok = url::Url::parse(uri).is_ok_and(|u| {
            u.fragment().is_none()
                && match u.scheme() {
                    "https" => u.has_host(),
                    "http" => matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
                    _ => false,
                }
        });
        if !ok || uri.len() > 2048 {
            return Err(ClientRegistryError::InvalidBackchannelLogoutUri(
                uri.to_owned(),
            ));
        }
    }
    Ok(())
}

/// A client must be able to use what it is given: `authorization_code` returns codes only to
/// registered redirect URIs, and `client_credentials` authenticates with a secret a public
/// client does not have.
fn check_usable(
    public: bool,
    grant_types: &[String],
    redirect_uris: &[String],
) -> Result<(), ClientRegistryError> {
    let has = |grant: &str| grant_types.iter().any(|g| g == grant);
    if has("authorization_code") && redirect_uris.is_empty() {
        return Err(ClientRegistryError::CodeWithoutRedirectUri);
    }
    if public && has("client_credentials") {
        return Err(ClientRegistryError::PublicClientCredentials);
    }
    Ok(())
}

/// Allowed origins, each an http(s) origin, serialized as browsers send them; `None` in the
/// column for none.
fn normalized_origins(origins: &[String]) -> Result<Option<String>, ClientRegistryError> {
    let mut normalized: Vec<String> = Vec::with_capacity(origins.len());
    for text in origins {
        let origin = crate::oauth::allowed_origins::parse_origin(text)
            .ok_or_else(|| ClientRegistryError::InvalidOrigin(text.clone()))?;
        if !normalized.contains(&origin) {
            normalized.push(origin);
        }
    }
    Ok((!normalized.is_empty()).then(|| normalized.join("\n")))
}

fn check_display_name(name: &str) -> Result<(), ClientRegistryError> {
    let chars = name.chars().count();
    if (1..=MAX_DISPLAY_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(ClientRegistryError::InvalidDisplayName)
    }
}

/// A logo is shown on the consent page: https, or http on a loopback host (development).
fn check_logo_url(text: &str) -> Result<(), ClientRegistryError> {
    let ok = url::Url::parse(text).is_ok_and(|u| match u.scheme() {
        "https" => u.has_host(),
        "http" => matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
        _ => false,
    });
    if ok && text.len() <= 2048 {
        Ok(())
    } else {
        Err(ClientRegistryError::InvalidLogoUrl(text.to_owned()))
    }
}

/// A lifetime set by `option` must be from 1 to `max` seconds.
fn check_ttl(option: &'static str, value: i64, max: i64) -> Result<(), ClientRegistryError> {
    if (1..=max).contains(&value) {
        Ok(())
    } else {
        Err(ClientRegistryError::InvalidTtl { option, max, value })
    }
}

/// A list stored one per line; `None` when empty.
fn joined_lines(items: &[String]) -> Option<String> {
    (!items.is_empty()).then(|| items.join("\n"))
}

fn valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(crate) fn valid_scope_token(scope: &str) -> bool {
    // RFC 6749 §3.3: NQCHAR without space, quote or backslash.
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// The `resources` column: newline-separated identifiers, NULL for none.
/// WeChat appids, each checked, without repeats, as stored (`None` for none).
fn stored_wechat_appids(appids: &[String]) -> Result<Option<String>, ClientRegistryError> {
    let mut list: Vec<String> = Vec::new();
    for appid in appids {
        let parsed = crate::ids::AppId::parse(appid.trim())
            .map_err(|_| ClientRegistryError::InvalidWeChatAppId(appid.clone()))?;
        if !list.iter().any(|a| a == parsed.as_str()) {
            list.push(parsed.as_str().to_owned());
        }
    }
    Ok(joined_lines(&list))
}

fn stored_resources(resources: &[String]) -> Option<String> {
    let mut list: Vec<&str> = resources.iter().map(String::as_str).collect();
    list.dedup();
    (!list.is_empty()).then(|| list.join("\n"))
}

impl ClientRegistry {
    pub fn new(db: DatabaseConnection, vault: Arc<Vault>, clock: SharedClock) -> Self {
        Self {
            cache: Arc::new(TtlCache::new(CLIENT_CACHE_TTL)),
            origins: Arc::new(AllowedOrigins::new(db.clone(), clock.clone())),
            db,
            vault,
            clock,
        }
    }

    /// The web origins allowed to call the client-facing endpoints (CORS), cached; this
    /// registry invalidates it on every change it makes.
    pub fn allowed_origins(&self) -> Arc<AllowedOrigins> {
        self.origins.clone()
    }

    /// A fresh client secret with 256 bits of entropy.
    pub fn generate_secret() -> Secret {
        Secret::new(random_token(32))
    }

    /// Register a client. Returns the client and, when the server generated it, the secret (to
    /// be shown once).
    pub async fn create(
        &self,
        new: NewClient,
    ) -> Result<(RegisteredClient, Option<Secret>), ClientRegistryError> {
        if !valid_client_id(&new.client_id) {
            return Err(ClientRegistryError::InvalidClientId);
        }
        check_lists(&new.grant_types, &new.scopes, &new.redirect_uris)?;
        check_usable(new.public, &new.grant_types, &new.redirect_uris)?;
        check_logout(
            &new.logout.post_logout_redirect_uris,
            new.logout.backchannel_logout_uri.as_deref(),
        )?;
        if let Some(name) = &new.display_name {
            check_display_name(name)?;
        }
        if let Some(logo) = &new.logo_url {
            check_logo_url(logo)?;
        }
        let allowed_origins = normalized_origins(&new.allowed_origins)?;
        let wechat_appids = stored_wechat_appids(&new.wechat_appids)?;
        check_ttl("--access-token-ttl", new.access_token_ttl, MAX_ACCESS_TTL)?;
        check_ttl(
            "--refresh-token-ttl",
            new.refresh_token_ttl,
            MAX_REFRESH_TTL,
        )?;
        check_ttl(
            "--refresh-family-ttl",
            new.refresh_family_ttl,
            MAX_FAMILY_TTL,
        )?;
        let (secret_hash, shown_secret) = match (new.public, new.secret) {
            (true, Some(_)) => return Err(ClientRegistryError::PublicWithSecret),
            (true, None) => (None, None),
            (false, Some(secret)) => {
                if secret.expose().chars().count() < MIN_IMPORTED_SECRET_LEN {
                    return Err(ClientRegistryError::SecretTooShort);
                }
                (Some(self.vault.fingerprint(secret.expose())), None)
            }
            (false, None) => {
                let secret = Self::generate_secret();
                (Some(self.vault.fingerprint(secret.expose())), Some(secret))
            }
        };
        if oauth_client::Entity::find_by_id(new.client_id.clone())
            .one(&self.db)
            .await?
            .is_some()
        {
            return Err(ClientRegistryError::AlreadyExists(new.client_id));
        }
        let now = self.clock.now();
        let model = oauth_client::ActiveModel {
            client_id: Set(new.client_id.clone()),
            secret_hash: Set(secret_hash),
            grant_types: Set(new.grant_types.join(",")),
            scopes: Set(new.scopes.join(" ")),
            redirect_uris: Set(new.redirect_uris.join("\n")),
            is_public: Set(new.public),
            first_party: Set(new.first_party),
            access_token_ttl: Set(new.access_token_ttl),
            refresh_token_ttl: Set(new.refresh_token_ttl),
            flow_ticket: Set(new.flow_ticket.as_str().to_string()),
            introspect: Set(new.introspect),
            refresh_family_ttl: Set(new.refresh_family_ttl),
            previous_secret_hash: Set(None),
            previous_secret_expires_at: Set(None),
            display_name: Set(new.display_name.clone()),
            logo_url: Set(new.logo_url.clone()),
            resources: Set(stored_resources(&new.resources)),
            post_logout_redirect_uris: Set(joined_lines(&new.logout.post_logout_redirect_uris)),
            backchannel_logout_uri: Set(new.logout.backchannel_logout_uri.clone()),
            backchannel_logout_session_required: Set(new
                .logout
                .backchannel_logout_session_required),
            allowed_origins: Set(allowed_origins),
            created_at: Set(now),
            updated_at: Set(now),
            id_token_signed_response_alg: Set(new.id_token_alg.map(|a| a.as_str().to_owned())),
            seed_fields: Set(new.seed_fields),
            wechat_appids: Set(wechat_appids),
        }
        .insert(&self.db)
        .await
        .map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                ClientRegistryError::AlreadyExists(new.client_id.clone())
            }
            _ => ClientRegistryError::Db(e),
        })?;
        self.origins.invalidate();
        Ok((to_registered(model), shown_secret))
    }

    /// Every client, by id.
    pub async fn list(&self) -> Result<Vec<RegisteredClient>, DbErr> {
        Ok(oauth_client::Entity::find()
            .order_by_asc(oauth_client::Column::ClientId)
            .all(&self.db)
            .await?
            .into_iter()
            .map(to_registered)
            .collect())
    }

    /// One client.
    pub async fn get(&self, client_id: &str) -> Result<Option<RegisteredClient>, DbErr> {
        Ok(oauth_client::Entity::find_by_id(client_id.to_string())
            .one(&self.db)
            .await?
            .map(to_registered))
    }

    /// Replace a confidential client's secret with a fresh one, returned once.
    pub async fn rotate_secret(&self, client_id: &str) -> Result<Secret, ClientRegistryError> {
        let model = oauth_client::Entity::find_by_id(client_id.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| ClientRegistryError::NotFound(client_id.to_string()))?;
        if model.is_public {
            return Err(ClientRegistryError::PublicWithSecret);
        }
        let secret = Self::generate_secret();
        let mut active: oauth_client::ActiveModel = model.into();
        active.secret_hash = Set(Some(self.vault.fingerprint(secret.expose())));
        active.updated_at = Set(self.clock.now());
        active.update(&self.db).await?;
        self.cache.invalidate(client_id);
        Ok(secret)
    }

    /// Set a confidential client's secret to a known value (used by `wxauth dev`).
    pub async fn set_secret(
        &self,
        client_id: &str,
        secret: &Secret,
    ) -> Result<(), ClientRegistryError> {
        let model = oauth_client::Entity::find_by_id(client_id.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| ClientRegistryError::NotFound(client_id.to_string()))?;
        let mut active: oauth_client::ActiveModel = model.into();
        active.secret_hash = Set(Some(self.vault.fingerprint(secret.expose())));
        active.updated_at = Set(self.clock.now());
        active.update(&self.db).await?;
        self.cache.invalidate(client_id);
        Ok(())
    }

    /// Remove a client.
    pub async fn delete(&self, client_id: &str) -> Result<(), ClientRegistryError> {
        let result = oauth_client::Entity::delete_by_id(client_id.to_string())
            .exec(&self.db)
            .await?;
        self.cache.invalidate(client_id);
        self.origins.invalidate();
        if result.rows_affected == 0 {
            return Err(ClientRegistryError::NotFound(client_id.to_string()));
        }
        Ok(())
    }

    /// Replace a confidential client's secret with a fresh one, returned once; the current
    /// secret keeps working for `overlap` seconds more (0: it stops at once). A secret that was
    /// still overlapping from an earlier rotation stops now. Returns the new secret and when the
    /// old one stops.
    pub async fn rotate_secret_with_overlap(
        &self,
        client_id: &str,
        overlap: i64,
    ) -> Result<(Secret, Option<i64>), ClientRegistryError> {
        if !(0..=MAX_SECRET_OVERLAP).contains(&overlap) {
            return Err(ClientRegistryError::InvalidOverlap {
                max: MAX_SECRET_OVERLAP,
                value: overlap,
            });
        }
        let model = oauth_client::Entity::find_by_id(client_id.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| ClientRegistryError::NotFound(client_id.to_string()))?;
        if model.is_public {
            return Err(ClientRegistryError::PublicWithSecret);
        }
        let now = self.clock.now();
        let until = (overlap > 0).then(|| now.saturating_add(overlap));
        let previous = model.secret_hash.clone().filter(|_| until.is_some());
        let secret = Self::generate_secret();
        let mut active: oauth_client::ActiveModel = model.into();
        active.secret_hash = Set(Some(self.vault.fingerprint(secret.expose())));
        active.previous_secret_expires_at = Set(previous.as_ref().and(until));
        active.previous_secret_hash = Set(previous);
        active.updated_at = Set(now);
        active.update(&self.db).await?;
        self.cache.invalidate(client_id);
        Ok((secret, until))
    }

    /// Change a client's settings, validated like [`ClientRegistry::create`]; nothing is
    /// written when a value is refused. Returns the client as it now is.
    pub async fn update(
        &self,
        client_id: &str,
        changes: ClientChanges,
    ) -> Result<RegisteredClient, ClientRegistryError> {
        let model = oauth_client::Entity::find_by_id(client_id.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| ClientRegistryError::NotFound(client_id.to_string()))?;
        let current = to_registered(model.clone());
        check_lists(
            changes.grant_types.as_deref().unwrap_or_default(),
            changes.scopes.as_deref().unwrap_or_default(),
            changes.redirect_uris.as_deref().unwrap_or_default(),
        )?;
        check_usable(
            current.public,
            changes
                .grant_types
                .as_deref()
                .unwrap_or(&current.grant_types),
            changes
                .redirect_uris
                .as_deref()
                .unwrap_or(&current.redirect_uris),
        )?;
        if let Some(Some(name)) = &changes.display_name {
            check_display_name(name)?;
        }
        if let Some(Some(logo)) = &changes.logo_url {
            check_logo_url(logo)?;
        }
        check_logout(
            changes
                .post_logout_redirect_uris
                .as_deref()
                .unwrap_or_default(),
            changes.backchannel_logout_uri.clone().flatten().as_deref(),
        )?;
        let allowed_origins = changes
            .allowed_origins
            .as_deref()
            .map(normalized_origins)
            .transpose()?;
        let wechat_appids = changes
            .wechat_appids
            .as_deref()
            .map(stored_wechat_appids)
            .transpose()?;
        check_ttl(
            "--access-token-ttl",
            changes.access_token_ttl.unwrap_or(current.access_token_ttl),
            MAX_ACCESS_TTL,
        )?;
        check_ttl(
            "--refresh-token-ttl",
            changes
                .refresh_token_ttl
                .unwrap_or(current.refresh_token_ttl),
            MAX_REFRESH_TTL,
        )?;
        check_ttl(
            "--refresh-family-ttl",
            changes
                .refresh_family_ttl
                .unwrap_or(current.refresh_family_ttl),
            MAX_FAMILY_TTL,
        )?;
        let mut active: oauth_client::ActiveModel = model.into();
        if let Some(name) = changes.display_name {
            active.display_name = Set(name);
        }
        if let Some(logo) = changes.logo_url {
            active.logo_url = Set(logo);
        }
        if let Some(grants) = changes.grant_types {
            active.grant_types = Set(grants.join(","));
        }
        if let Some(scopes) = changes.scopes {
            active.scopes = Set(scopes.join(" "));
        }
        if let Some(uris) = changes.redirect_uris {
            active.redirect_uris = Set(uris.join("\n"));
        }
        if let Some(first_party) = changes.first_party {
            active.first_party = Set(first_party);
        }
        if let Some(ttl) = changes.access_token_ttl {
            active.access_token_ttl = Set(ttl);
        }
        if let Some(ttl) = changes.refresh_token_ttl {
            active.refresh_token_ttl = Set(ttl);
        }
        if let Some(ttl) = changes.refresh_family_ttl {
            active.refresh_family_ttl = Set(ttl);
        }
        if let Some(policy) = changes.flow_ticket {
            active.flow_ticket = Set(policy.as_str().to_owned());
        }
        if let Some(introspect) = changes.introspect {
            active.introspect = Set(introspect);
        }
        if let Some(uris) = changes.post_logout_redirect_uris {
            active.post_logout_redirect_uris = Set(joined_lines(&uris));
        }
        if let Some(uri) = changes.backchannel_logout_uri {
            active.backchannel_logout_uri = Set(uri);
        }
        if let Some(required) = changes.backchannel_logout_session_required {
            active.backchannel_logout_session_required = Set(required);
        }
        if let Some(resources) = &changes.resources {
            active.resources = Set(stored_resources(resources));
        }
        if let Some(origins) = allowed_origins {
            active.allowed_origins = Set(origins);
        }
        if let Some(appids) = wechat_appids {
            active.wechat_appids = Set(appids);
        }
        if let Some(alg) = changes.id_token_alg {
            active.id_token_signed_response_alg = Set(Some(alg.as_str().to_owned()));
        }
        if let Some(seed_fields) = changes.seed_fields {
            active.seed_fields = Set(seed_fields);
        }
        active.updated_at = Set(self.clock.now());
        let updated = active.update(&self.db).await?;
        self.cache.invalidate(client_id);
        self.origins.invalidate();
        Ok(to_registered(updated))
    }

    /// The stored client, from the cache while its entry is fresh, else from the database.
    /// Unknown ids are not cached: they always cost a read.
    async fn stored(&self, client_id: &str) -> Result<Option<StoredClient>, DbErr> {
        let now = self.clock.now();
        if let Some(stored) = self.cache.get(client_id, now) {
            return Ok(Some(stored));
        }
        let generation = self.cache.generation();
        let model = crate::db::find_unique(
            oauth_client::Entity::find_by_id(client_id.to_string()),
            &self.db,
        )
        .await?;
        Ok(model.map(|m| {
            let stored = StoredClient {
                secret_hash: m.secret_hash.clone(),
                previous_secret: m
                    .previous_secret_hash
                    .clone()
                    .zip(m.previous_secret_expires_at),
                client: to_registered(m),
            };
            self.cache
                .insert(client_id, stored.clone(), now, generation);
            stored
        }))
    }

    /// Authenticate a client. `secret` is `None` for a public client; a confidential client must
    /// present its secret, a public one must not claim one.
    pub async fn authenticate(
        &self,
        client_id: &str,
        secret: Option<&str>,
    ) -> Result<RegisteredClient, ClientAuthError> {
        let Some(stored) = self.stored(client_id).await? else {
            // Spend the same work as a real check so that timing does not reveal valid ids.
            let _ = self.vault.fingerprint(secret.unwrap_or_default());
            return Err(ClientAuthError::BadCredentials);
        };
        let ok = match (&stored.secret_hash, secret) {
            (Some(hash), Some(given)) => {
                // Both compares always run (constant time, whichever matches): the current
                // secret, and the previous one while its overlap lasts.
                let current = self.vault.matches_fingerprint(given, hash);
                let previous = stored.previous_secret.as_ref().is_some_and(|(old, until)| {
                    self.vault.matches_fingerprint(given, old) & (self.clock.now() < *until)
                });
                current | previous
            }
            (None, None) => stored.client.public,
            _ => false,
        };
        if ok {
            Ok(stored.client)
        } else {
            Err(ClientAuthError::BadCredentials)
        }
    }
}
