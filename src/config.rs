//! Configuration from the environment (and an optional `.env` file), validated once at start-up.
//!
//! Every variable has a default that suits `wxauth dev`; a value that is present but wrong stops the
//! process with one line naming the variable and what was expected ([`ConfigError`]).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use url::Url;

pub use crate::config_error::{ConfigError, number_in};
use crate::secret::Secret;
use crate::vault::MasterKey;

/// Defaults, also listed in `.env.example`.
pub mod defaults {
    pub const LISTEN: &str = "127.0.0.1:8080";
    pub const DATABASE_URL: &str = "sqlite://wxauth.db?mode=rwc";
    pub const WECHAT_API_BASE: &str = "https://api.weixin.qq.com";
    pub const WECHAT_OPEN_BASE: &str = "https://open.weixin.qq.com";
    pub const MASTER_KEY_FILE: &str = "wxauth.key";
    pub const JWT_ALG: &str = "ES256";
    pub const AUDIT_RETENTION_DAYS: i64 = 180;
    pub const HEADER_READ_TIMEOUT_SECS: u64 = 10;
    pub const REQUEST_TIMEOUT_SECS: u64 = 30;
    pub const MAX_CONNECTIONS: usize = 1024;
    pub const MAX_REQUESTS: usize = 256;
    /// A rotated-out client secret keeps working for a day.
    pub const CLIENT_SECRET_OVERLAP_SECS: i64 = 24 * 3600;
    /// A new signing key is published ten minutes before it signs.
    pub const KEY_ACTIVATION_DELAY_SECS: i64 = 600;
}

/// The longest a rotated-out client secret may keep working (seconds): 30 days.
pub const MAX_SECRET_OVERLAP: i64 = 30 * 24 * 3600;
/// How long resource servers may cache the JWKS (the `max-age` of `/.well-known/jwks.json`):
/// a staged key waits at least this long by default before it signs.
pub const JWKS_MAX_AGE_SECS: i64 = 300;
/// The longest a staged key may wait before it signs (seconds): one week.
pub const MAX_ACTIVATION_DELAY: i64 = 7 * 24 * 3600;

/// What happens when a login brings a unionid that another account already owns (the accounts
/// turned out to be one person: a Mini Program used before its Open Platform binding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergePolicy {
    /// Merge at once into the older account (the default).
    #[default]
    Auto,
    /// Queue the merge for an administrator (console or admin API); until then the two
    /// accounts stay apart.
    Queue,
}

impl MergePolicy {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "queue" => Some(Self::Queue),
            _ => None,
        }
    }
}

/// Which algorithm signs access tokens and id_tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlg {
    Es256,
    EdDsa,
    Rs256,
    Hs256,
}

impl JwtAlg {
    /// The JOSE name (`ES256`, `EdDSA`, `RS256`, `HS256`).
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlg::Es256 => "ES256",
            JwtAlg::EdDsa => "EdDSA",
            JwtAlg::Rs256 => "RS256",
            JwtAlg::Hs256 => "HS256",
        }
    }

    /// Parse a JOSE name, case-insensitively.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_uppercase().as_str() {
            "ES256" => Some(JwtAlg::Es256),
            "EDDSA" | "ED25519" => Some(JwtAlg::EdDsa),
            "RS256" => Some(JwtAlg::Rs256),
            "HS256" => Some(JwtAlg::Hs256),
            _ => None,
        }
    }
}

/// Where the master key comes from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// `WXAUTH_MASTER_KEY` held the key.
    Inline(MasterKey),
    /// Read from this file, creating it with a fresh key when missing.
    File(PathBuf),
}

/// The Mini Program whose code the device verification page shows (issue 18 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMiniProgram {
    /// `WXAUTH_DEVICE_MINI_PROGRAM`: a registered Mini Program's appid.
    pub appid: String,
    /// `WXAUTH_DEVICE_MINI_PROGRAM_PAGE`: the page the code opens, without a leading `/`
    /// (default `pages/device/approve`); it gets the user code as its `scene`.
    pub page: String,
    /// `WXAUTH_DEVICE_MINI_PROGRAM_VERSION`: `release` (default), `trial` or `develop`.
    pub version: String,
}

impl DeviceMiniProgram {
    fn from_lookup(
        var: &impl Fn(&'static str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(appid) = var("WXAUTH_DEVICE_MINI_PROGRAM").map(|a| a.trim().to_owned()) else {
            return Ok(None);
        };
        let appid_shaped = appid.len() == 18
            && appid.starts_with("wx")
            && appid[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if !appid_shaped {
            return Err(ConfigError::new(
                "WXAUTH_DEVICE_MINI_PROGRAM",
                "expected a Mini Program appid (wx followed by 16 hex digits)",
            ));
        }
        let page = var("WXAUTH_DEVICE_MINI_PROGRAM_PAGE")
            .map(|p| p.trim().to_owned())
            .unwrap_or_else(|| "pages/device/approve".to_owned());
        if page.is_empty()
            || page.starts_with('/')
            || page.len() > 128
            || !page
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.'))
        {
            return Err(ConfigError::new(
                "WXAUTH_DEVICE_MINI_PROGRAM_PAGE",
                "expected a page path of the Mini Program without a leading / (pages/device/approve)",
            ));
        }
        let version = var("WXAUTH_DEVICE_MINI_PROGRAM_VERSION")
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| "release".to_owned());
        if !matches!(version.as_str(), "release" | "trial" | "develop") {
            return Err(ConfigError::new(
                "WXAUTH_DEVICE_MINI_PROGRAM_VERSION",
                "expected release, trial or develop",
            ));
        }
        Ok(Some(Self {
            appid,
            page,
            version,
        }))
    }
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Our own base URL, as browsers and clients reach it; also the token issuer (`iss`).
    pub public_url: Url,
    /// Whether `WXAUTH_PUBLIC_URL` was set (otherwise `public_url` was derived from `listen`).
    pub public_url_is_set: bool,
    pub database_url: Secret,
    pub wechat_api_base: Url,
    pub wechat_open_base: Url,
    /// Hosts (lower-case, optionally `host:port`) a login may return the browser to.
    pub redirect_allowlist: Vec<String>,
    pub admin_token: Option<Secret>,
    /// How long a rotated-out client secret keeps working (seconds,
    /// `WXAUTH_CLIENT_SECRET_OVERLAP_SECS`).
    pub client_secret_overlap_secs: i64,
    /// How long a new signing key is published before it signs (seconds,
    /// `WXAUTH_KEY_ACTIVATION_DELAY_SECS`); at least the JWKS cache time.
    pub key_activation_delay_secs: i64,
    /// How many days a phone number WeChat's code API verified may be handed out again at
    /// `/api/wechat/ma/phone` with `reuse: true` (`WXAUTH_PHONE_REUSE_DAYS`; 0, the default: never).
    pub phone_reuse_days: i64,
    /// The Mini Program that approves device sign-ins (`WXAUTH_DEVICE_MINI_PROGRAM` and its
    /// page and version); `None`: the verification page shows no Mini Program code.
    pub device_mini_program: Option<DeviceMiniProgram>,
    /// What happens when a login brings a unionid another account already owns
    /// (`WXAUTH_MERGE_POLICY`).
    pub merge_policy: MergePolicy,
    pub jwt_alg: JwtAlg,
    pub jwt_hs256_secret: Option<Secret>,
    pub master_key: MasterKeySource,
    /// How long audit events are kept (days).
    pub audit_retention_days: i64,
    /// Where `/metrics` is served when not on the public listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Timeouts and caps of the HTTP server.
    pub server: ServerLimits,
    /// Rate limits, the client-authentication throttle and the cap on live sign-in states.
    pub limits: crate::limits::LimitsConfig,
    /// Redis, for rate-limit counters shared by every instance (`WXAUTH_REDIS_URL`).
    pub redis_url: Option<Secret>,
    /// Where operators' own page templates and stylesheet live (`WXAUTH_TEMPLATES_DIR`); a file
    /// there replaces the embedded one of the same name, the others stay.
    pub templates_dir: Option<PathBuf>,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` headers name the client
    /// (`WXAUTH_TRUSTED_PROXIES`, CIDRs).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// What the HTTP server allows a connection and a request (see [`crate::server`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// A connection must finish sending a request's headers within this; the same timer closes
    /// a kept-alive connection that sends no new request (`WXAUTH_HEADER_READ_TIMEOUT_SECS`).
    pub header_read_timeout: std::time::Duration,
    /// A whole request, body and handler included (`WXAUTH_REQUEST_TIMEOUT_SECS`).
    pub request_timeout: std::time::Duration,
    /// Open connections at once; more are answered 503 and closed (`WXAUTH_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Requests in progress at once; more are answered 503 (`WXAUTH_MAX_REQUESTS`).
    pub max_requests: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: std::time::Duration::from_secs(defaults::HEADER_READ_TIMEOUT_SECS),
            request_timeout: std::time::Duration::from_secs(defaults::REQUEST_TIMEOUT_SECS),
            max_connections: defaults::MAX_CONNECTIONS,
            max_requests: defaults::MAX_REQUESTS,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url.as_str())
            .field(
                "database",
                &redacted_database_url(self.database_url.expose()),
            )
            .field("wechat_api_base", &self.wechat_api_base.as_str())
            .field("wechat_open_base", &self.wechat_open_base.as_str())
            .field("redirect_allowlist", &self.redirect_allowlist)
            .field("admin_token", &self.admin_token)
            .field("jwt_alg", &self.jwt_alg)
            .field("jwt_hs256_secret", &self.jwt_hs256_secret)
            .finish_non_exhaustive()
    }
}

/// A database URL with any password removed, for messages and logs.
pub fn redacted_database_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable>".to_string(),
    }
}

impl Config {
    /// Read the process environment (after loading `.env` if present).
    pub fn from_env() -> Result<Self, ConfigError> {
        load_dotenv()?;
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Build from any variable lookup (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &'static str| get(name).filter(|v| !v.trim().is_empty());

        let listen = listen_from_lookup(&get)?;

        // Unset: where we listen (an unspecified address reads as loopback).
        let public_url_is_set = var("WXAUTH_PUBLIC_URL").is_some();
        let public_url = http_url(
            "WXAUTH_PUBLIC_URL",
            var("WXAUTH_PUBLIC_URL").unwrap_or_else(|| {
                let host = if listen.ip().is_unspecified() {
                    SocketAddr::from(([127, 0, 0, 1], listen.port()))
                } else {
                    listen
                };
                format!("http://{host}")
            }),
        )?;

        let database_url = var("DATABASE_URL").unwrap_or_else(|| defaults::DATABASE_URL.into());
        validate_database_url(&database_url)?;

        let wechat_api_base = http_url(
            "WXAUTH_WECHAT_API_BASE",
            var("WXAUTH_WECHAT_API_BASE").unwrap_or_else(|| defaults::WECHAT_API_BASE.into()),
        )?;
        let wechat_open_base = http_url(
            "WXAUTH_WECHAT_OPEN_BASE",
            var("WXAUTH_WECHAT_OPEN_BASE").unwrap_or_else(|| defaults::WECHAT_OPEN_BASE.into()),
        )?;

        let redirect_allowlist = match var("WXAUTH_REDIRECT_ALLOWLIST") {
            None => Vec::new(),
            Some(list) => parse_allowlist(&list)?,
        };

        let admin_token = var("WXAUTH_ADMIN_TOKEN").map(Secret::new);
        if let Some(token) = &admin_token
            && token.expose().len() < 16
        {
            return Err(ConfigError::new(
                "WXAUTH_ADMIN_TOKEN",
                "must be at least 16 characters (use a long random value)",
            ));
        }

        let client_secret_overlap_secs = number_in(
            &var,
            "WXAUTH_CLIENT_SECRET_OVERLAP_SECS",
            0..=MAX_SECRET_OVERLAP,
            defaults::CLIENT_SECRET_OVERLAP_SECS,
        )?;
        let phone_reuse_days = number_in(&var, "WXAUTH_PHONE_REUSE_DAYS", 0..=365, 0)?;
        let device_mini_program = DeviceMiniProgram::from_lookup(&var)?;
        let merge_policy = match var("WXAUTH_MERGE_POLICY") {
            None => MergePolicy::Auto,
            Some(text) => MergePolicy::parse(&text).ok_or_else(|| {
                ConfigError::new(
                    "WXAUTH_MERGE_POLICY",
                    format!("expected auto or queue, got {:?}", text.trim()),
                )
            })?,
        };
        let key_activation_delay_secs = number_in(
            &var,
            "WXAUTH_KEY_ACTIVATION_DELAY_SECS",
            JWKS_MAX_AGE_SECS..=MAX_ACTIVATION_DELAY,
            defaults::KEY_ACTIVATION_DELAY_SECS,
        )?;

        let alg_text = var("WXAUTH_JWT_ALG").unwrap_or_else(|| defaults::JWT_ALG.into());
        let jwt_alg = JwtAlg::parse(&alg_text).ok_or_else(|| {
            ConfigError::new(
                "WXAUTH_JWT_ALG",
                format!("expected one of ES256, EdDSA, RS256, HS256, got {alg_text:?}"),
            )
        })?;
        let jwt_hs256_secret = var("WXAUTH_JWT_HS256_SECRET").map(Secret::new);
        match (&jwt_alg, &jwt_hs256_secret) {
            (JwtAlg::Hs256, None) => {
                return Err(ConfigError::new(
                    "WXAUTH_JWT_HS256_SECRET",
                    "is required when WXAUTH_JWT_ALG=HS256 (at least 32 characters)",
                ));
            }
            (JwtAlg::Hs256, Some(s)) if s.expose().len() < 32 => {
                return Err(ConfigError::new(
                    "WXAUTH_JWT_HS256_SECRET",
                    "must be at least 32 characters",
                ));
            }
            _ => {}
        }

        let master_key = match var("WXAUTH_MASTER_KEY") {
            Some(text) => MasterKeySource::Inline(MasterKey::parse(&text).ok_or_else(|| {
                ConfigError::new(
                    "WXAUTH_MASTER_KEY",
                    "expected 32 bytes as base64 or 64 hex digits (e.g. `openssl rand -base64 32`)",
                )
            })?),
            None => MasterKeySource::File(PathBuf::from(
                var("WXAUTH_MASTER_KEY_FILE").unwrap_or_else(|| defaults::MASTER_KEY_FILE.into()),
            )),
        };

        let audit_retention_days = match var("WXAUTH_AUDIT_RETENTION_DAYS") {
            None => defaults::AUDIT_RETENTION_DAYS,
            Some(text) => text
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|days| (1..=36_500).contains(days))
                .ok_or_else(|| {
                    ConfigError::new(
                        "WXAUTH_AUDIT_RETENTION_DAYS",
                        format!("expected a number of days from 1 to 36500, got {text:?}"),
                    )
                })?,
        };

        let metrics_listen = match var("WXAUTH_METRICS_LISTEN") {
            None => None,
            Some(text) => Some(text.trim().parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(
                    "WXAUTH_METRICS_LISTEN",
                    format!("expected an IP address and port such as 127.0.0.1:9100, got {text:?}"),
                )
            })?),
        };
        let server = ServerLimits {
            header_read_timeout: std::time::Duration::from_secs(number_in(
                &var,
                "WXAUTH_HEADER_READ_TIMEOUT_SECS",
                1..=600,
                defaults::HEADER_READ_TIMEOUT_SECS,
            )?),
            request_timeout: std::time::Duration::from_secs(number_in(
                &var,
                "WXAUTH_REQUEST_TIMEOUT_SECS",
                1..=3600,
                defaults::REQUEST_TIMEOUT_SECS,
            )?),
            max_connections: number_in(
                &var,
                "WXAUTH_MAX_CONNECTIONS",
                1..=1_000_000,
                defaults::MAX_CONNECTIONS,
            )?,
            max_requests: number_in(
                &var,
                "WXAUTH_MAX_REQUESTS",
                1..=1_000_000,
                defaults::MAX_REQUESTS,
            )?,
        };
        let limits = crate::limits::LimitsConfig::from_lookup(&var)?;
        let templates_dir = match var("WXAUTH_TEMPLATES_DIR") {
            None => None,
            Some(dir) => {
                let path = PathBuf::from(dir.trim());
                if !path.is_dir() {
                    return Err(ConfigError::new(
                        "WXAUTH_TEMPLATES_DIR",
                        format!(
                            "{} is not a directory: name the directory holding your base.html, error.html, consent.html, home.html or wxauth.css (any of them; the rest stay built in), or unset it",
                            path.display()
                        ),
                    ));
                }
                Some(path)
            }
        };
        let redis_url = match var("WXAUTH_REDIS_URL") {
            None => None,
            Some(text) => {
                let ok = Url::parse(text.trim())
                    .is_ok_and(|u| matches!(u.scheme(), "redis" | "rediss" | "redis+unix"));
                if !ok {
                    return Err(ConfigError::new(
                        "WXAUTH_REDIS_URL",
                        "expected a redis:// URL such as redis://127.0.0.1:6379/0",
                    ));
                }
                Some(Secret::new(text.trim()))
            }
        };
        let trusted_proxies = match var("WXAUTH_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => parse_cidrs(&list)?,
        };

        Ok(Self {
            server,
            limits,
            redis_url,
            templates_dir,
            trusted_proxies,
            listen,
            public_url,
            public_url_is_set,
            database_url: Secret::new(database_url),
            wechat_api_base,
            wechat_open_base,
            redirect_allowlist,
            admin_token,
            client_secret_overlap_secs,
            key_activation_delay_secs,
            phone_reuse_days,
            device_mini_program,
            merge_policy,
            jwt_alg,
            jwt_hs256_secret,
            master_key,
            audit_retention_days,
            metrics_listen,
        })
    }

    /// `serve`'s rule for the public URL. A listener on a non-loopback address is meant to be
    /// reached from other machines, under a name (and usually through a TLS proxy) that cannot be
    /// guessed from the listen address; the issuer derived from it would be wrong, and instances
    /// would reject each other's tokens. So there `WXAUTH_PUBLIC_URL` is required. On loopback the
    /// derived URL works for a single local instance, and [`Config::public_url_warning`] says so.
    pub fn require_public_url_for_listener(&self) -> Result<(), ConfigError> {
        if self.public_url_is_set || self.listen.ip().is_loopback() {
            return Ok(());
        }
        Err(ConfigError::new(
            "WXAUTH_PUBLIC_URL",
            format!(
                "is required when WXAUTH_LISTEN ({}) is not a loopback address: set the URL browsers and clients reach wxauth at, e.g. https://auth.example.com",
                self.listen
            ),
        ))
    }

    /// What `serve` warns about when `WXAUTH_PUBLIC_URL` is unset (`None` when it is set).
    pub fn public_url_warning(&self) -> Option<String> {
        (!self.public_url_is_set).then(|| {
            format!(
                "WXAUTH_PUBLIC_URL is unset, so the issuer is {} (from WXAUTH_LISTEN): instances with other listen addresses reject each other's tokens; set it in production",
                self.issuer()
            )
        })
    }

    /// The issuer identifier: the public URL without a trailing slash.
    pub fn issuer(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_string()
    }

    /// Our own absolute URL for a path such as `/oauth/token`.
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{}", self.issuer(), path)
    }

    /// Load (or, from a key file that does not exist yet, create) the master key.
    pub fn load_master_key(&self) -> Result<MasterKey, ConfigError> {
        match &self.master_key {
            MasterKeySource::Inline(key) => Ok(key.clone()),
            MasterKeySource::File(path) => load_or_create_key_file(path),
        }
    }
}

/// The file a SQLite `DATABASE_URL` names (`sqlite://wxauth.db?mode=rwc`, `sqlite:///abs.db`,
/// `sqlite:wxauth.db`), or `None` for another database or an in-memory one.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory =
        path.is_empty() || path == ":memory:" || query.split('&').any(|pair| pair == "mode=memory");
    (!in_memory).then(|| PathBuf::from(path))
}

/// `path` as an operator reads it in a message: absolute (from the working directory).
fn shown_path(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

impl Config {
    /// Where the master key comes from, for messages: `WXAUTH_MASTER_KEY`, or the key file.
    pub fn master_key_origin(&self) -> String {
        match &self.master_key {
            MasterKeySource::Inline(_) => "from WXAUTH_MASTER_KEY".to_owned(),
            MasterKeySource::File(path) => {
                format!("in {} (WXAUTH_MASTER_KEY_FILE)", shown_path(path))
            }
        }
    }

    /// The variable that chose the master key.
    pub fn master_key_variable(&self) -> &'static str {
        match &self.master_key {
            MasterKeySource::Inline(_) => "WXAUTH_MASTER_KEY",
            MasterKeySource::File(_) => "WXAUTH_MASTER_KEY_FILE",
        }
    }

    /// For commands that work on an existing installation (every one but `serve`, `dev` and
    /// `migrate`): the SQLite file and the master key file must already exist. Run in the wrong
    /// directory, such a command would otherwise create an empty database and a new master key
    /// and report on them as if they were the real ones. The line names both places looked at.
    pub fn require_existing_files(&self) -> Result<(), ConfigError> {
        let database = sqlite_file(self.database_url.expose());
        let database_missing = database.as_ref().is_some_and(|path| !path.exists());
        let key_missing = matches!(&self.master_key, MasterKeySource::File(path) if !path.exists());
        if !database_missing && !key_missing {
            return Ok(());
        }
        let state = |missing: bool| if missing { "missing" } else { "found" };
        let database_text = match &database {
            Some(path) => format!(
                "the database {} ({})",
                shown_path(path),
                state(database_missing)
            ),
            None => format!(
                "the database {}",
                redacted_database_url(self.database_url.expose())
            ),
        };
        let key_text = match &self.master_key {
            MasterKeySource::Inline(_) => "the master key from WXAUTH_MASTER_KEY".to_owned(),
            MasterKeySource::File(path) => {
                format!(
                    "the master key file {} ({})",
                    shown_path(path),
                    state(key_missing)
                )
            }
        };
        Err(ConfigError::new(
            if database_missing {
                "DATABASE_URL"
            } else {
                "WXAUTH_MASTER_KEY_FILE"
            },
            format!(
                "looked for {database_text} and {key_text}; only serve, dev and migrate create them: run this command where the server runs, or set DATABASE_URL and WXAUTH_MASTER_KEY (or WXAUTH_MASTER_KEY_FILE) to the server's"
            ),
        ))
    }
}

/// Load `.env` from the working directory into the environment (variables already set win).
/// A missing file is normal; a broken one is reported.
pub fn load_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(ConfigError::new(".env", format!("cannot be read: {e}"))),
    }
}

/// `WXAUTH_LISTEN` alone (also read by `wxauth healthcheck`, which needs nothing else).
pub fn listen_from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<SocketAddr, ConfigError> {
    let text = get("WXAUTH_LISTEN")
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| defaults::LISTEN.into());
    text.trim().parse::<SocketAddr>().map_err(|_| {
        ConfigError::new(
            "WXAUTH_LISTEN",
            format!("expected an IP address and port such as 127.0.0.1:8080, got {text:?}"),
        )
    })
}

/// How log lines are written (`WXAUTH_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines; `ansi` colours them (only ever on a terminal).
    Text { ansi: bool },
}

impl LogFormat {
    /// `WXAUTH_LOG_FORMAT` (`json` or `text`); unset, JSON unless stderr is a terminal. Colours
    /// only on a terminal, and not when `NO_COLOR` is set (<https://no-color.org>).
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        stderr_is_terminal: bool,
    ) -> Result<Self, ConfigError> {
        let ansi = stderr_is_terminal && get("NO_COLOR").is_none_or(|v| v.is_empty());
        let text = get("WXAUTH_LOG_FORMAT").filter(|v| !v.trim().is_empty());
        match text.as_deref().map(|v| v.trim().to_ascii_lowercase()) {
            None if stderr_is_terminal => Ok(LogFormat::Text { ansi }),
            None => Ok(LogFormat::Json),
            Some(v) if v == "json" => Ok(LogFormat::Json),
            Some(v) if v == "text" => Ok(LogFormat::Text { ansi }),
            Some(_) => Err(ConfigError::new(
                "WXAUTH_LOG_FORMAT",
                format!("expected json or text, got {:?}", text.unwrap_or_default()),
            )),
        }
    }
}

fn load_or_create_key_file(path: &PathBuf) -> Result<MasterKey, ConfigError> {
    const VAR: &str = "WXAUTH_MASTER_KEY_FILE";
    match std::fs::read_to_string(path) {
        Ok(text) => MasterKey::parse(&text).ok_or_else(|| {
            ConfigError::new(
                VAR,
                format!("{} does not hold a 32-byte base64 key", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate();
            write_private_file(path, &key.to_base64()).map_err(|e| {
                ConfigError::new(VAR, format!("cannot create {}: {e}", path.display()))
            })?;
            tracing::warn!(
                path = %path.display(),
                "generated a new master key file; set WXAUTH_MASTER_KEY (shared by every instance) in production"
            );
            Ok(key)
        }
        Err(e) => Err(ConfigError::new(
            VAR,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

fn write_private_file(path: &PathBuf, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")
}

fn http_url(variable: &'static str, text: String) -> Result<Url, ConfigError> {
    let url = Url::parse(text.trim()).map_err(|e| {
        ConfigError::new(
            variable,
            format!("expected an absolute http(s) URL, got {text:?} ({e})"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(
            variable,
            format!("expected an absolute http(s) URL, got {text:?}"),
        ));
    }
    Ok(url)
}

fn validate_database_url(text: &str) -> Result<(), ConfigError> {
    let scheme = text.split("://").next().unwrap_or_default();
    let known = matches!(
        scheme,
        "sqlite" | "postgres" | "postgresql" | "mysql" | "mariadb"
    ) || text.starts_with("sqlite:");
    if !known || !text.contains(':') {
        return Err(ConfigError::new(
            "DATABASE_URL",
            format!(
                "expected a sqlite://, postgres:// or mysql:// URL, got {:?}",
                redacted_database_url(text)
            ),
        ));
    }
    Ok(())
}

/// `WXAUTH_TRUSTED_PROXIES`: comma-separated CIDRs or single addresses.
fn parse_cidrs(list: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::new(
                        "WXAUTH_TRUSTED_PROXIES",
                        format!("expected comma-separated CIDRs such as 10.0.0.0/8, got {entry:?}"),
                    )
                })
        })
        .collect()
}

/// `WXAUTH_REDIRECT_ALLOWLIST`: comma-separated `host`, `host:port`, `*.domain` or
/// `*.domain:port`. A leading `*.` allows any subdomain of `domain` (never `domain` itself) and
/// needs a domain of at least two labels (`*.com` would allow half the web); a `*` anywhere
/// else is refused rather than kept as an entry that never matches.
fn parse_allowlist(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut hosts = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let refuse = |why: &str| {
            ConfigError::new("WXAUTH_REDIRECT_ALLOWLIST", format!("{why}, got {entry:?}"))
        };
        let (wildcard, rest) = match entry.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, entry),
        };
        if rest.contains('*') {
            return Err(refuse(
                "a wildcard may only be a leading \"*.\" (any subdomain, e.g. *.example.com)",
            ));
        }
        // Validate each entry the way the URL parser will see hosts later.
        let probe = Url::parse(&format!("http://{rest}/"));
        let ok = matches!(&probe, Ok(u) if u.host_str().is_some() && u.path() == "/" && u.username().is_empty());
        if !ok || rest.contains('/') || rest.contains('@') {
            return Err(refuse(
                "expected comma-separated host names (optionally host:port, or *.domain for its subdomains)",
            ));
        }
        if wildcard {
            let domain = match probe.as_ref().ok().and_then(Url::host) {
                Some(url::Host::Domain(domain)) => domain.to_owned(),
                _ => return Err(refuse("*. needs a domain name, not an IP address")),
            };
            if domain.ends_with('.') || domain.split('.').filter(|l| !l.is_empty()).count() < 2 {
                return Err(refuse(
                    "*. needs a domain of at least two labels (*.example.com, not *.com)",
                ));
            }
        }
        hosts.push(entry.to_ascii_lowercase());
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn the_public_url_follows_the_listen_address_unless_set() {
        let issuer = |vars: &[(&str, &str)]| config(vars).ok().map(|c| c.issuer());
        assert_eq!(
            issuer(&[("WXAUTH_LISTEN", "127.0.0.1:18080")]).as_deref(),
            Some("http://127.0.0.1:18080")
        );
        assert_eq!(
            issuer(&[("WXAUTH_LISTEN", "0.0.0.0:9000")]).as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            issuer(&[
                ("WXAUTH_LISTEN", "0.0.0.0:9000"),
                ("WXAUTH_PUBLIC_URL", "https://auth.example.com")
            ])
            .as_deref(),
            Some("https://auth.example.com")
        );
    }

    #[test]
    fn defaults_are_usable() {
        let c = config(&[]).ok();
        let c = c.as_ref();
        assert_eq!(
            c.map(|c| c.listen.to_string()).as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            c.map(|c| c.issuer()).as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(c.map(|c| c.jwt_alg), Some(JwtAlg::Es256));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("WXAUTH_LISTEN", "not-an-address"),
            ("WXAUTH_PUBLIC_URL", "ftp://x"),
            ("DATABASE_URL", "oracle://db"),
            ("WXAUTH_WECHAT_API_BASE", "nope"),
            ("WXAUTH_REDIRECT_ALLOWLIST", "good.com,evil.com/path"),
            ("WXAUTH_JWT_ALG", "none"),
            ("WXAUTH_MASTER_KEY", "too-short"),
            ("WXAUTH_ADMIN_TOKEN", "short"),
            ("WXAUTH_AUDIT_RETENTION_DAYS", "0"),
            ("WXAUTH_METRICS_LISTEN", "everywhere"),
            ("WXAUTH_AUDIT_RETENTION_DAYS", "forever"),
            ("WXAUTH_HEADER_READ_TIMEOUT_SECS", "0"),
            ("WXAUTH_MAX_CONNECTIONS", "many"),
            ("WXAUTH_REDIS_URL", "http://cache"),
            ("WXAUTH_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("WXAUTH_LIMIT_AUTHORIZE", "fast"),
            ("WXAUTH_LIMITS", "maybe"),
        ] {
            let err = config(&[(var, value)]).err();
            assert_eq!(err.as_ref().map(|e| e.variable), Some(var), "{var}={value}");
            let line = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(line.starts_with(var) && !line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn a_public_listener_needs_a_public_url() {
        let check = |vars: &[(&str, &str)]| {
            config(vars)
                .and_then(|c| c.require_public_url_for_listener())
                .map_err(|e| e.variable)
        };
        assert_eq!(check(&[]), Ok(()));
        assert_eq!(check(&[("WXAUTH_LISTEN", "[::1]:8080")]), Ok(()));
        assert_eq!(
            check(&[("WXAUTH_LISTEN", "0.0.0.0:8080")]),
            Err("WXAUTH_PUBLIC_URL")
        );
        assert_eq!(
            check(&[("WXAUTH_LISTEN", "10.1.2.3:8080")]),
            Err("WXAUTH_PUBLIC_URL")
        );
        assert_eq!(
            check(&[
                ("WXAUTH_LISTEN", "0.0.0.0:8080"),
                ("WXAUTH_PUBLIC_URL", "https://auth.example.com")
            ]),
            Ok(())
        );
        let warning =
            |vars: &[(&str, &str)]| config(vars).ok().and_then(|c| c.public_url_warning());
        assert!(warning(&[]).is_some_and(|w| w.contains("WXAUTH_PUBLIC_URL")));
        assert_eq!(
            warning(&[("WXAUTH_PUBLIC_URL", "https://auth.example.com")]),
            None
        );
    }

    #[test]
    fn log_format_is_json_off_a_terminal_and_colour_only_on_one() {
        let format = |vars: &[(&str, &str)], terminal: bool| {
            let map: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            LogFormat::from_lookup(|name| map.get(name).cloned(), terminal)
        };
        assert_eq!(format(&[], false), Ok(LogFormat::Json));
        assert_eq!(format(&[], true), Ok(LogFormat::Text { ansi: true }));
        assert_eq!(
            format(&[("NO_COLOR", "1")], true),
            Ok(LogFormat::Text { ansi: false })
        );
        assert_eq!(
            format(&[("WXAUTH_LOG_FORMAT", "text")], false),
            Ok(LogFormat::Text { ansi: false })
        );
        assert_eq!(
            format(&[("WXAUTH_LOG_FORMAT", "JSON")], true),
            Ok(LogFormat::Json)
        );
        let err = format(&[("WXAUTH_LOG_FORMAT", "xml")], false).err();
        assert_eq!(err.map(|e| e.variable), Some("WXAUTH_LOG_FORMAT"));
    }

    #[test]
    fn trusted_proxies_take_cidrs_and_addresses() {
        let c = config(&[("WXAUTH_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1, ::1")]).ok();
        let nets: Vec<String> = c
            .map(|c| c.trusted_proxies.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default();
        assert_eq!(nets, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);
    }

    #[test]
    fn hs256_needs_a_long_secret() {
        let err = config(&[("WXAUTH_JWT_ALG", "HS256")]).err();
        assert_eq!(err.map(|e| e.variable), Some("WXAUTH_JWT_HS256_SECRET"));
    }

    #[test]
    fn secrets_do_not_appear_in_debug() {
        let c = config(&[
            ("WXAUTH_ADMIN_TOKEN", "admin-token-1234567890"),
            ("DATABASE_URL", "postgres://u:pa55word@db/wx"),
        ]);
        let text = format!("{c:?}");
        assert!(!text.contains("admin-token-1234567890"));
        assert!(!text.contains("pa55word"));
    }

    #[test]
    fn allowlist_wildcards_are_leading_and_need_a_real_domain() {
        let c = config(&[(
            "WXAUTH_REDIRECT_ALLOWLIST",
            "*.Example.com, *.shop.example.com:8443",
        )])
        .ok();
        assert_eq!(
            c.map(|c| c.redirect_allowlist),
            Some(vec![
                "*.example.com".to_string(),
                "*.shop.example.com:8443".to_string()
            ])
        );
        for bad in [
            "*.com",
            "*example.com",
            "a.*.example.com",
            "*.*.example.com",
            "*",
            "*.127.0.0.1",
            "*.[::1]",
            "example.*",
        ] {
            let err = config(&[("WXAUTH_REDIRECT_ALLOWLIST", bad)]).err();
            assert_eq!(
                err.as_ref().map(|e| e.variable),
                Some("WXAUTH_REDIRECT_ALLOWLIST"),
                "{bad}"
            );
            let line = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(line.contains(bad) && !line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn allowlist_is_lower_cased() {
        let c = config(&[("WXAUTH_REDIRECT_ALLOWLIST", "Example.COM, localhost:3000")]).ok();
        assert_eq!(
            c.map(|c| c.redirect_allowlist),
            Some(vec![
                "example.com".to_string(),
                "localhost:3000".to_string()
            ])
        );
    }
}
