//! Rate limits and the client-authentication throttle: what a stranger may try, and how often.
//!
//! - **Per-key rate limits** ([`Limit`]): a bucket of `count` requests refilled over `period`
//!   (GCRA), per client IP on the anonymous endpoints and per client on the token endpoint.
//! - **The guessing throttle**: failed client authentications per (client_id, IP). The first
//!   [`ThrottleConfig::free_failures`] cost nothing; each further one blocks that pair for a
//!   doubling time (1 s, 2 s, 4 s … up to [`ThrottleConfig::max_backoff`]), answered 429 with
//!   `Retry-After` without the secret being checked. A success from that address forgets its
//!   failures. Other addresses are never blocked by it, so the rightful client keeps working.
//!
//! Counters live in-process ([`governor`] for the rate limits) unless `WXAUTH_REDIS_URL` is set;
//! then they live in Redis ([`shared`]: one atomic Lua script per decision), so N instances
//! enforce one limit. If Redis cannot be reached, decisions fall back to the in-process counters
//! (logged once when the outage starts and once when it ends) and requests are still answered.

pub mod shared;

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::audit::{Audit, AuditEvent, AuditKind, Outcome};
use crate::config_error::{ConfigError, number_in};

pub use shared::SharedCounters;

tokio::task_local! {
    static CURRENT: Limits;
}

/// Run `future` with `limits` in force: the HTTP layer opens this scope for each request, beside
/// the [`request_context`](crate::request_context) scope.
pub async fn scope<F: std::future::Future>(limits: Limits, future: F) -> F::Output {
    CURRENT.scope(limits, future).await
}

/// The limits in force for the current request (none outside a request: nothing is limited).
pub fn current() -> Option<Limits> {
    CURRENT.try_with(Limits::clone).ok()
}

/// The rate-limited operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `/oauth/authorize` (GET and the consent form), per IP.
    Authorize,
    /// The H5 `entryBuildUrl`, per IP.
    H5Entry,
    /// WeChat's redirects back: the H5 `entryCallback` / `baseCallback` and
    /// `/oauth/callback/wechat`, per IP.
    Callback,
    /// `/api/wechat/ma/session`, per IP.
    MaSession,
    /// `/api/wechat/ma/user`, per IP.
    MaUser,
    /// `/api/wechat/ma/phone`, per IP.
    MaPhone,
    /// `/oauth/userinfo`, per IP.
    Userinfo,
    /// `/oauth/introspect` and `/oauth/revoke`, per IP.
    Introspection,
    /// The component push endpoint, per IP.
    ComponentPush,
    /// The token endpoint, per authenticated client.
    TokenClient,
    /// `/oauth/device_authorization` (RFC 8628), per IP.
    DeviceAuthorization,
    /// User codes tried at `/device`, per IP.
    DeviceUserCode,
    /// User codes tried at `/device`, by everyone together (one key): what bounds guessing
    /// from many addresses.
    DeviceUserCodeGlobal,
    /// `/api/wechat/jssdk/config`, per IP.
    JssdkConfig,
    /// `/api/wechat/ma/profile`, per IP.
    MaProfile,
    /// `/api/wechat/ma/profile`, per Mini Program user (appid and openid, so that a new
    /// session does not start the count again): each save may ask WeChat's content check.
    MaProfileUser,
    /// `/api/wechat/ma/webview-ticket`, per IP.
    MaWebViewTicket,
    /// An Official Account's message URL (`/api/wechat/mp/{appid}/events`), per IP: WeChat
    /// pushes every follower's events from a few addresses, so the default is high.
    MpEvents,
    /// `/api/wechat/ma/device/approve` and the verification page's Mini Program code, per IP
    /// (the user codes tried there count against the device limits too).
    MaDeviceApprove,
}

impl Limit {
    pub const ALL: [Limit; 19] = [
        Limit::Authorize,
        Limit::H5Entry,
        Limit::Callback,
        Limit::MaSession,
        Limit::MaUser,
        Limit::MaPhone,
        Limit::Userinfo,
        Limit::Introspection,
        Limit::ComponentPush,
        Limit::TokenClient,
        Limit::DeviceAuthorization,
        Limit::DeviceUserCode,
        Limit::DeviceUserCodeGlobal,
        Limit::JssdkConfig,
        Limit::MaProfile,
        Limit::MaProfileUser,
        Limit::MaWebViewTicket,
        Limit::MpEvents,
        Limit::MaDeviceApprove,
    ];

    /// The short name used in counter keys and logs.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Authorize => "authorize",
            Limit::H5Entry => "h5_entry",
            Limit::Callback => "callback",
            Limit::MaSession => "ma_session",
            Limit::MaUser => "ma_user",
            Limit::MaPhone => "ma_phone",
            Limit::Userinfo => "userinfo",
            Limit::Introspection => "introspection",
            Limit::ComponentPush => "component_push",
            Limit::TokenClient => "token_client",
            Limit::DeviceAuthorization => "device_authorization",
            Limit::DeviceUserCode => "device_user_code",
            Limit::DeviceUserCodeGlobal => "device_user_code_global",
            Limit::JssdkConfig => "jssdk_config",
            Limit::MaProfile => "ma_profile",
            Limit::MaProfileUser => "ma_profile_user",
            Limit::MaWebViewTicket => "ma_webview_ticket",
            Limit::MpEvents => "mp_events",
            Limit::MaDeviceApprove => "ma_device_approve",
        }
    }

    /// The environment variable that sets it.
    pub fn variable(self) -> &'static str {
        match self {
            Limit::Authorize => "WXAUTH_LIMIT_AUTHORIZE",
            Limit::H5Entry => "WXAUTH_LIMIT_H5_ENTRY",
            Limit::Callback => "WXAUTH_LIMIT_CALLBACK",
            Limit::MaSession => "WXAUTH_LIMIT_MA_SESSION",
            Limit::MaUser => "WXAUTH_LIMIT_MA_USER",
            Limit::MaPhone => "WXAUTH_LIMIT_MA_PHONE",
            Limit::Userinfo => "WXAUTH_LIMIT_USERINFO",
            Limit::Introspection => "WXAUTH_LIMIT_INTROSPECTION",
            Limit::ComponentPush => "WXAUTH_LIMIT_COMPONENT_PUSH",
            Limit::TokenClient => "WXAUTH_LIMIT_TOKEN_CLIENT",
            Limit::DeviceAuthorization => "WXAUTH_LIMIT_DEVICE_AUTHORIZATION",
            Limit::DeviceUserCode => "WXAUTH_LIMIT_DEVICE_USER_CODE",
            Limit::DeviceUserCodeGlobal => "WXAUTH_LIMIT_DEVICE_USER_CODE_GLOBAL",
            Limit::JssdkConfig => "WXAUTH_LIMIT_JSSDK_CONFIG",
            Limit::MaProfile => "WXAUTH_LIMIT_MA_PROFILE",
            Limit::MaProfileUser => "WXAUTH_LIMIT_MA_PROFILE_USER",
            Limit::MaWebViewTicket => "WXAUTH_LIMIT_MA_WEBVIEW_TICKET",
            Limit::MpEvents => "WXAUTH_LIMIT_MP_EVENTS",
            Limit::MaDeviceApprove => "WXAUTH_LIMIT_MA_DEVICE_APPROVE",
        }
    }

    /// The default: generous enough for many users behind one carrier NAT, low enough that one
    /// address cannot fill the tables or run up WeChat calls.
    pub fn default_rate(self) -> Rate {
        let per_minute = |count| Rate {
            count,
            period: Duration::from_secs(60),
        };
        match self {
            Limit::Authorize | Limit::H5Entry | Limit::Callback | Limit::MaSession => {
                per_minute(120)
            }
            Limit::MaUser | Limit::MaPhone => per_minute(60),
            Limit::Userinfo => per_minute(600),
            Limit::Introspection => per_minute(1200),
            Limit::ComponentPush => per_minute(30),
            Limit::TokenClient => per_minute(6000),
            Limit::DeviceAuthorization => per_minute(30),
            // A person mistypes a few times; a guesser needs billions of tries (20^8 codes).
            Limit::DeviceUserCode => per_minute(10),
            Limit::DeviceUserCodeGlobal => per_minute(600),
            // A page asks once per load (and again on each in-page navigation).
            Limit::JssdkConfig => per_minute(120),
            Limit::MaProfile => per_minute(60),
            // A person changes their nickname and avatar a few times, not dozens.
            Limit::MaProfileUser => Rate {
                count: 10,
                period: Duration::from_secs(3600),
            },
            Limit::MaWebViewTicket => per_minute(120),
            Limit::MpEvents => per_minute(3000),
            Limit::MaDeviceApprove => per_minute(60),
        }
    }
}

/// `count` requests per `period`, at most `count` at once (a bucket of `count` refilled evenly
/// over `period`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

/// A rate that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidRate;

impl Rate {
    /// Parse `120/min`, `10/s`, `1000/h`; `off` or `0` turns the limit off (`None`).
    pub fn parse(text: &str) -> Result<Option<Rate>, InvalidRate> {
        let text = text.trim().to_ascii_lowercase();
        if text == "off" || text == "0" {
            return Ok(None);
        }
        let (count, unit) = text.split_once('/').ok_or(InvalidRate)?;
        let count: u32 = count.trim().parse().map_err(|_| InvalidRate)?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(InvalidRate),
        };
        if count == 0 {
            return Ok(None);
        }
        Ok(Some(Rate { count, period }))
    }

    /// The time between two requests at the sustained rate.
    pub fn interval(self) -> Duration {
        self.period / self.count.max(1)
    }

    fn quota(self) -> Option<Quota> {
        let burst = NonZeroU32::new(self.count)?;
        Quota::with_period(self.interval().max(Duration::from_nanos(1)))
            .map(|q| q.allow_burst(burst))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// The guessing throttle's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures from one (client_id, IP) before the back-off starts
    /// (`WXAUTH_CLIENT_AUTH_FREE_FAILURES`, default 5).
    pub free_failures: u32,
    /// The longest block (`WXAUTH_CLIENT_AUTH_MAX_BACKOFF_SECS`, default 900).
    pub max_backoff: Duration,
    /// Failures are forgotten after this long without a new one (1 hour).
    pub memory: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            free_failures: 5,
            max_backoff: Duration::from_secs(900),
            memory: Duration::from_secs(3600),
        }
    }
}

impl ThrottleConfig {
    /// How long the `failures`-th failure blocks the pair (zero while failures are free).
    pub fn backoff(&self, failures: u32) -> Duration {
        if failures <= self.free_failures {
            return Duration::ZERO;
        }
        let exponent = (failures - self.free_failures - 1).min(30);
        Duration::from_secs(1u64 << exponent).min(self.max_backoff)
    }
}

/// Every limit's setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// `WXAUTH_LIMITS=off` turns every rate limit and the throttle off (benchmarks only).
    pub enabled: bool,
    rates: HashMap<Limit, Option<Rate>>,
    pub throttle: ThrottleConfig,
    /// Unspent, unexpired sign-in states one IP may hold (`WXAUTH_LIVE_STATES_PER_IP`, 50).
    pub live_states_per_ip: u64,
    /// Prefix of every Redis key (`WXAUTH_REDIS_PREFIX`, `wxauth`).
    pub redis_prefix: String,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rates: Limit::ALL
                .iter()
                .map(|l| (*l, Some(l.default_rate())))
                .collect(),
            throttle: ThrottleConfig::default(),
            live_states_per_ip: 50,
            redis_prefix: "wxauth".into(),
        }
    }
}

impl LimitsConfig {
    /// Read the `WXAUTH_LIMIT*`, `WXAUTH_CLIENT_AUTH_*`, `WXAUTH_LIVE_STATES_PER_IP` and
    /// `WXAUTH_REDIS_PREFIX` variables.
    pub fn from_lookup(var: &dyn Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some(text) = var("WXAUTH_LIMITS") {
            config.enabled = match text.trim().to_ascii_lowercase().as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => {
                    return Err(ConfigError::new(
                        "WXAUTH_LIMITS",
                        format!("expected on or off, got {text:?}"),
                    ));
                }
            };
        }
        for limit in Limit::ALL {
            if let Some(text) = var(limit.variable()) {
                let rate = Rate::parse(&text).map_err(|_| {
                    ConfigError::new(
                        limit.variable(),
                        format!(
                            "expected a rate such as 120/min, 10/s or 1000/h, or off; got {text:?}"
                        ),
                    )
                })?;
                config.rates.insert(limit, rate);
            }
        }
        config.throttle.free_failures = number_in(
            var,
            "WXAUTH_CLIENT_AUTH_FREE_FAILURES",
            0..=1000,
            config.throttle.free_failures,
        )?;
        config.throttle.max_backoff = Duration::from_secs(number_in(
            var,
            "WXAUTH_CLIENT_AUTH_MAX_BACKOFF_SECS",
            1..=86_400,
            config.throttle.max_backoff.as_secs(),
        )?);
        config.live_states_per_ip = number_in(
            var,
            "WXAUTH_LIVE_STATES_PER_IP",
            1..=1_000_000,
            config.live_states_per_ip,
        )?;
        if let Some(prefix) = var("WXAUTH_REDIS_PREFIX") {
            config.redis_prefix = prefix.trim().to_owned();
        }
        Ok(config)
    }

    /// The rate of `limit`, `None` when it is off.
    pub fn rate(&self, limit: Limit) -> Option<Rate> {
        if !self.enabled {
            return None;
        }
        self.rates.get(&limit).copied().flatten()
    }
}

/// A refusal: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
}

impl Refused {
    /// Whole seconds for `Retry-After` (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        if self.retry_after.subsec_nanos() > 0 || secs == 0 {
            secs + 1
        } else {
            secs
        }
    }
}

/// One pair's failed authentications, in process.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    blocked_until: Instant,
    last: Instant,
}

/// The in-process counters (also the fallback while Redis is unreachable).
struct LocalCounters {
    rates: HashMap<Limit, DefaultKeyedRateLimiter<String>>,
    failures: Mutex<HashMap<(String, IpAddr), Failures>>,
    checks: AtomicU64,
}

/// How many checks between two prunings of idle in-process keys.
const PRUNE_EVERY: u64 = 8192;
/// In-process throttle entries kept before the oldest idle ones are dropped.
const MAX_FAILURE_ENTRIES: usize = 100_000;

impl LocalCounters {
    fn new(config: &LimitsConfig) -> Self {
        let rates = Limit::ALL
            .iter()
            .filter_map(|l| Some((*l, RateLimiter::keyed(config.rate(*l)?.quota()?))))
            .collect();
        Self {
            rates,
            failures: Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
        }
    }

    fn check(&self, limit: Limit, key: &str) -> Result<(), Refused> {
        let Some(limiter) = self.rates.get(&limit) else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            for limiter in self.rates.values() {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
        limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| Refused {
                retry_after: not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                )),
            })
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<(String, IpAddr), Failures>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn blocked(&self, client_id: &str, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        self.failures()
            .get(&(client_id.to_owned(), ip))
            .and_then(|f| f.blocked_until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    fn failed(&self, throttle: &ThrottleConfig, client_id: &str, ip: IpAddr) -> (u32, Duration) {
        let now = Instant::now();
        let mut map = self.failures();
        if map.len() >= MAX_FAILURE_ENTRIES {
            map.retain(|_, f| now.duration_since(f.last) < throttle.memory);
        }
        let entry = map.entry((client_id.to_owned(), ip)).or_insert(Failures {
            count: 0,
            blocked_until: now,
            last: now,
        });
        if now.duration_since(entry.last) >= throttle.memory {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        let wait = throttle.backoff(entry.count);
        if !wait.is_zero() {
            entry.blocked_until = now + wait;
        }
        (entry.count, wait)
    }

    /// Forget the pair; whether there was anything to forget.
    fn succeeded(&self, client_id: &str, ip: IpAddr) -> bool {
        self.failures()
            .remove(&(client_id.to_owned(), ip))
            .is_some()
    }

    /// Take over what Redis counted for the pair.
    fn mirror(&self, client_id: &str, ip: IpAddr, count: u32, wait: Duration) {
        let now = Instant::now();
        self.failures().insert(
            (client_id.to_owned(), ip),
            Failures {
                count,
                blocked_until: now + wait,
                last: now,
            },
        );
    }
}

struct Inner {
    config: LimitsConfig,
    local: LocalCounters,
    shared: Option<SharedCounters>,
    audit: Option<Audit>,
}

/// The rate limits and throttle of one process (shared through Redis when configured). Cheap to
/// clone.
#[derive(Clone)]
pub struct Limits(Arc<Inner>);

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("enabled", &self.0.config.enabled)
            .field("shared", &self.0.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl Limits {
    /// Limits as configured; counters in `shared` (Redis) when given, else in process.
    pub fn new(config: LimitsConfig, shared: Option<SharedCounters>, audit: Option<Audit>) -> Self {
        Self(Arc::new(Inner {
            local: LocalCounters::new(&config),
            config,
            shared,
            audit,
        }))
    }

    /// No limits at all.
    pub fn off() -> Self {
        Self::new(
            LimitsConfig {
                enabled: false,
                ..LimitsConfig::default()
            },
            None,
            None,
        )
    }

    pub fn config(&self) -> &LimitsConfig {
        &self.0.config
    }

    /// Count one request of `limit` for `key` (an IP address or a client id).
    pub async fn check(&self, limit: Limit, key: &str) -> Result<(), Refused> {
        let Some(rate) = self.0.config.rate(limit) else {
            return Ok(());
        };
        let decision = match &self.0.shared {
            Some(shared) => match shared.check_rate(limit, key, rate).await {
                Some(decision) => decision,
                None => self.0.local.check(limit, key),
            },
            None => self.0.local.check(limit, key),
        };
        if decision.is_err() {
            metrics::counter!(crate::metrics::RATE_LIMITED, "limit" => limit.name()).increment(1);
        }
        decision
    }

    /// Whether (client_id, ip) is blocked by earlier failures: how long, if so. Answered from
    /// this instance's memory, which mirrors every block Redis reports (see
    /// [`Limits::client_auth_failed`]), so a successful authentication costs no Redis call.
    pub fn client_auth_blocked(&self, client_id: &str, ip: IpAddr) -> Option<Refused> {
        if !self.0.config.enabled {
            return None;
        }
        let blocked = self.0.local.blocked(client_id, ip)?;
        metrics::counter!(crate::metrics::RATE_LIMITED, "limit" => "client_auth_throttle")
            .increment(1);
        Some(Refused {
            retry_after: blocked,
        })
    }

    /// Record a failed authentication of `client_id` from `ip` (in Redis when configured, so
    /// failures spread over instances add up). When it starts a block, the block is logged and
    /// audited.
    pub async fn client_auth_failed(&self, client_id: &str, ip: IpAddr) {
        if !self.0.config.enabled {
            return;
        }
        let throttle = &self.0.config.throttle;
        let shared = match &self.0.shared {
            Some(shared) => shared.throttle_failed(client_id, ip, throttle).await,
            None => None,
        };
        let (failures, wait) = match shared {
            Some((failures, wait)) => {
                self.0.local.mirror(client_id, ip, failures, wait);
                (failures, wait)
            }
            None => self.0.local.failed(throttle, client_id, ip),
        };
        if wait.is_zero() {
            return;
        }
        tracing::warn!(
            client_id,
            ip = %ip,
            failures,
            block_secs = wait.as_secs(),
            "client authentication throttled"
        );
        if let Some(audit) = &self.0.audit {
            audit
                .record(
                    AuditEvent::new(AuditKind::ClientAuthThrottled, Outcome::Refused)
                        .client(client_id)
                        .detail("failures", failures)
                        .detail("block_secs", wait.as_secs()),
                )
                .await;
        }
    }

    /// A successful authentication from `ip` forgets that address's failures (only when this
    /// instance saw some: the common case costs nothing).
    pub async fn client_auth_succeeded(&self, client_id: &str, ip: IpAddr) {
        if !self.0.config.enabled || !self.0.local.succeeded(client_id, ip) {
            return;
        }
        if let Some(shared) = &self.0.shared {
            shared.throttle_reset(client_id, ip).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(
            Rate::parse("120/min"),
            Ok(Some(Rate {
                count: 120,
                period: Duration::from_secs(60)
            }))
        );
        assert_eq!(Rate::parse("off"), Ok(None));
        assert_eq!(Rate::parse("0"), Ok(None));
        assert!(Rate::parse("fast").is_err());
        assert!(Rate::parse("10/day").is_err());
    }

    #[test]
    fn backoff_doubles_after_the_free_failures_up_to_the_cap() {
        let t = ThrottleConfig::default();
        let secs: Vec<u64> = (1..=17).map(|n| t.backoff(n).as_secs()).collect();
        assert_eq!(
            secs,
            [
                0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900
            ]
        );
    }

    #[tokio::test]
    async fn a_bucket_empties_and_another_key_is_unaffected() {
        let mut config = LimitsConfig::default();
        config.rates.insert(
            Limit::MaSession,
            Some(Rate {
                count: 3,
                period: Duration::from_secs(3600),
            }),
        );
        let limits = Limits::new(config, None, None);
        for _ in 0..3 {
            assert!(limits.check(Limit::MaSession, "192.0.2.1").await.is_ok());
        }
        let refused = limits.check(Limit::MaSession, "192.0.2.1").await.err();
        assert!(refused.is_some_and(|r| r.retry_after_secs() >= 1));
        assert!(limits.check(Limit::MaSession, "192.0.2.2").await.is_ok());
        assert!(Limits::off().check(Limit::MaSession, "x").await.is_ok());
    }

    #[tokio::test]
    async fn the_throttle_blocks_one_pair_and_forgets_on_success() {
        let limits = Limits::new(LimitsConfig::default(), None, None);
        let guesser: IpAddr = [192, 0, 2, 66].into();
        let rightful: IpAddr = [198, 51, 100, 7].into();
        for _ in 0..6 {
            limits.client_auth_failed("app", guesser).await;
        }
        assert!(limits.client_auth_blocked("app", guesser).is_some());
        assert!(limits.client_auth_blocked("app", rightful).is_none());
        assert!(limits.client_auth_blocked("other", guesser).is_none());
        limits.client_auth_succeeded("app", guesser).await;
        assert!(limits.client_auth_blocked("app", guesser).is_none());
    }
}
