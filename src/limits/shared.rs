//! Counters shared by every instance, in Redis (`WXAUTH_REDIS_URL`): each decision is one atomic
//! Lua script run with the `redis` crate's connection manager, timed by Redis's own clock
//! (`TIME`) so that instances with skewed clocks still agree.
//!
//! - rate limits: GCRA (the "theoretical arrival time" of the next request, one key per counter).
//!   A call takes a *lease* of as many requests as this instance admitted for the key in about
//!   the last [`LEASE_TTL`], between 1 and [`lease_size`] (1/16 of the bucket, at most
//!   [`LEASE_MAX`]), which the instance then admits without asking Redis for [`LEASE_TTL`]: a
//!   busy key costs one Redis call per lease instead of one per request, and a quiet one leases
//!   a request at a time, exactly as without leases. Leased requests are taken from the shared
//!   bucket when leased, so N instances together never admit more than the limit; a lease that
//!   expires unspent only admits less: what that instance leased in its last second and did not
//!   use, at most what it admitted the second before (times the requests that missed the lease
//!   at the same moment, each of which takes its own). Small limits (under 32 requests per
//!   period) always lease one request;
//! - the guessing throttle: a hash of (failures, blocked-until) per (client_id, IP); the block
//!   it reports is mirrored in each instance's memory, which answers "is this pair blocked?".
//!
//! When Redis does not answer within [`CALL_TIMEOUT`], every method returns `None` and the caller
//! decides in process. The outage is logged once when it starts and once when it ends; while it
//! lasts Redis is tried again at most once per [`PROBE_INTERVAL`], so requests do not each wait
//! for a dead server.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{Limit, Rate, Refused, ThrottleConfig};
use crate::config_error::ConfigError;

/// The longest a request waits for Redis before deciding in process.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// During an outage, how often Redis is tried again.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// A lease holds at most this many requests (see [`lease_size`]).
pub const LEASE_MAX: u32 = 32;
/// A lease's requests not admitted within this time are dropped (they stay spent in Redis).
pub const LEASE_TTL: Duration = Duration::from_secs(1);
/// Past this many leased keys, expired and spent leases are swept before another is added (at
/// most once per [`LEASE_TTL`], so that many keys cannot make every request sweep); at twice it,
/// a new lease is not kept (its first request is admitted, the rest are dropped).
const LEASE_SWEEP_AT: usize = 10_000;

/// The most requests one Redis call leases for a limit of `count` per period: 1/16 of the
/// bucket, between 1 and [`LEASE_MAX`].
pub fn lease_size(count: u32) -> u32 {
    (count / 16).clamp(1, LEASE_MAX)
}

/// GCRA, leasing: KEYS[1] holds the theoretical arrival time (µs, Redis clock). ARGV[1] is the
/// emission interval and ARGV[2] the burst tolerance, both in µs; ARGV[3] how many requests to
/// lease. Leases as many as fit now (at least 1, at most ARGV[3]) and returns {leased, 0}, or
/// {0, µs to wait} when not even one fits.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
if tat - now > tolerance then
  return {0, tat - now - tolerance}
end
local leased = math.min(wanted, math.floor((tolerance - (tat - now)) / interval) + 1)
local new_tat = tat + leased * interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {leased, 0}
";

/// Per Redis key: requests leased from Redis and not yet admitted, and how many this instance
/// admitted lately (which sizes its next lease).
#[derive(Debug, Default)]
struct Leases {
    by_key: HashMap<String, Lease>,
    /// Not before this is the map swept again.
    next_sweep: Option<Instant>,
}

#[derive(Debug)]
struct Lease {
    left: u32,
    until: Instant,
    /// Requests admitted for the key since `window_start` ...
    window_start: Instant,
    in_window: u32,
    /// ... and in the window before, when that one ended less than [`LEASE_TTL`] ago.
    previous_window: u32,
}

impl Lease {
    fn new(now: Instant) -> Self {
        Self {
            left: 0,
            until: now,
            window_start: now,
            in_window: 0,
            previous_window: 0,
        }
    }

    /// Count one admitted request.
    fn admitted(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= LEASE_TTL {
            self.previous_window = if elapsed < 2 * LEASE_TTL {
                self.in_window
            } else {
                0
            };
            self.in_window = 0;
            self.window_start = now;
        }
        self.in_window = self.in_window.saturating_add(1);
    }

    /// About how many requests this instance admitted for the key in the last [`LEASE_TTL`].
    fn recent(&self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= 2 * LEASE_TTL {
            0
        } else if elapsed >= LEASE_TTL {
            self.in_window
        } else {
            self.in_window.max(self.previous_window)
        }
    }

    /// Whether the entry still holds anything: requests to admit, or a recent demand.
    fn live(&self, now: Instant) -> bool {
        (self.left > 0 && now < self.until) || self.recent(now) > 0
    }
}

impl Leases {
    /// Admit one request from `key`'s lease, if it has one left.
    fn take(&mut self, key: &str, now: Instant) -> bool {
        match self.by_key.get_mut(key) {
            Some(lease) if lease.left > 0 && now < lease.until => {
                lease.left -= 1;
                lease.admitted(now);
                true
            }
            _ => false,
        }
    }

    /// How many requests to lease for `key`: as many as this instance admitted for it in about
    /// the last [`LEASE_TTL`] (what it can expect to use before the lease expires), between 1
    /// and `max`. A key that is not busy here leases one request at a time: exact.
    fn wanted(&self, key: &str, now: Instant, max: u32) -> u32 {
        self.by_key
            .get(key)
            .map_or(0, |lease| lease.recent(now))
            .clamp(1, max.max(1))
    }

    /// Count the request Redis admitted for `key`, and keep the `extra` requests leased with it
    /// (added to what its lease has left: requests that missed the lease together each bring
    /// theirs).
    fn keep(&mut self, key: String, extra: u32, now: Instant) {
        if self.by_key.len() >= LEASE_SWEEP_AT && self.next_sweep.is_none_or(|at| now >= at) {
            self.by_key.retain(|_, lease| lease.live(now));
            self.next_sweep = Some(now + LEASE_TTL);
        }
        if self.by_key.len() >= 2 * LEASE_SWEEP_AT && !self.by_key.contains_key(&key) {
            return;
        }
        let lease = self.by_key.entry(key).or_insert_with(|| Lease::new(now));
        lease.admitted(now);
        if now >= lease.until {
            lease.left = 0;
        }
        if extra > 0 {
            lease.left = lease.left.saturating_add(extra);
            lease.until = now + LEASE_TTL;
        }
    }
}

/// One failed authentication: KEYS[1] is the pair's hash. ARGV: free failures, max back-off (s),
/// memory (s). Returns {failures, block seconds}.
const THROTTLE_FAILED: &str = r"
local now = tonumber(redis.call('TIME')[1])
local free = tonumber(ARGV[1])
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local wait = 0
if n > free then
  wait = math.min(2 ^ math.min(n - free - 1, 30), tonumber(ARGV[2]))
  redis.call('HSET', KEYS[1], 'until', now + wait)
end
redis.call('EXPIRE', KEYS[1], math.max(tonumber(ARGV[3]), wait))
return {n, wait}
";

#[derive(Debug, Default)]
struct Health {
    /// When the current outage started (logged then), if Redis is down.
    down_since: Option<Instant>,
    /// During an outage: not before this is Redis tried again.
    next_probe: Option<Instant>,
}

/// Redis-backed counters.
pub struct SharedCounters {
    connection: ConnectionManager,
    prefix: String,
    gcra: Script,
    failed: Script,
    health: Mutex<Health>,
    leases: Mutex<Leases>,
}

impl std::fmt::Debug for SharedCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCounters")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl SharedCounters {
    /// Counters in the Redis at `url`, keys starting with `prefix:`. Connects lazily: a Redis
    /// that is down at start is an outage like any other, not a reason not to start.
    pub fn connect(url: &str, prefix: &str) -> Result<Self, ConfigError> {
        let bad = |e: redis::RedisError| {
            ConfigError::new("WXAUTH_REDIS_URL", format!("cannot be used: {e}"))
        };
        let client = redis::Client::open(url).map_err(bad)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(PROBE_INTERVAL);
        let connection = ConnectionManager::new_lazy_with_config(client, config).map_err(bad)?;
        Ok(Self {
            connection,
            prefix: prefix.to_owned(),
            gcra: Script::new(GCRA),
            failed: Script::new(THROTTLE_FAILED),
            health: Mutex::new(Health::default()),
            leases: Mutex::new(Leases::default()),
        })
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, Leases> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether to try Redis now (always, unless an outage is on and the next probe is not due).
    fn worth_trying(&self) -> bool {
        let mut health = self.health();
        match health.next_probe {
            Some(at) if Instant::now() < at => false,
            Some(_) => {
                // This caller probes; the others keep deciding in process meanwhile.
                health.next_probe = Some(Instant::now() + PROBE_INTERVAL);
                true
            }
            None => true,
        }
    }

    fn mark(&self, ok: bool, error: Option<&str>) {
        let mut health = self.health();
        match (ok, health.down_since) {
            (true, Some(since)) => {
                tracing::info!(
                    outage_secs = since.elapsed().as_secs(),
                    "Redis is reachable again; rate limits are shared across instances again"
                );
                *health = Health::default();
            }
            (false, None) => {
                tracing::warn!(
                    error = error.unwrap_or("timeout"),
                    "Redis is unreachable; rate limits fall back to this instance's own counters"
                );
                health.down_since = Some(Instant::now());
                health.next_probe = Some(Instant::now() + PROBE_INTERVAL);
            }
            _ => {}
        }
    }

    /// Run one Redis call with the timeout and outage bookkeeping; `None` when Redis failed.
    async fn call<T, F, Fut>(&self, call: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.worth_trying() {
            return None;
        }
        match tokio::time::timeout(CALL_TIMEOUT, call(self.connection.clone())).await {
            Ok(Ok(value)) => {
                self.mark(true, None);
                Some(value)
            }
            Ok(Err(error)) => {
                self.mark(false, Some(&error.to_string()));
                None
            }
            Err(_) => {
                self.mark(false, None);
                None
            }
        }
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    /// One request against `limit` for `key`: from this instance's lease when it has one, else
    /// from Redis, leasing more; `None` when Redis could not decide.
    pub async fn check_rate(
        &self,
        limit: Limit,
        key: &str,
        rate: Rate,
    ) -> Option<Result<(), Refused>> {
        let redis_key = self.key(&["rate", limit.name(), key]);
        // Limits too small to lease keep no entries: every request asks Redis.
        let leasing = lease_size(rate.count) > 1;
        let now = Instant::now();
        if leasing && self.leases().take(&redis_key, now) {
            return Some(Ok(()));
        }
        let interval = u64::try_from(rate.interval().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let tolerance = interval.saturating_mul(u64::from(rate.count.saturating_sub(1)));
        let wanted = if leasing {
            self.leases()
                .wanted(&redis_key, now, lease_size(rate.count))
        } else {
            1
        };
        let lease_key = redis_key.clone();
        let (leased, wait_us): (i64, i64) = self
            .call(|mut connection| async move {
                self.gcra
                    .key(redis_key)
                    .arg(interval)
                    .arg(tolerance)
                    .arg(wanted)
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        Some(if leased > 0 {
            // This request takes one; the rest wait in the lease for the next ones.
            if leasing {
                let extra = u32::try_from(leased - 1).unwrap_or(0).min(wanted);
                self.leases().keep(lease_key, extra, Instant::now());
            }
            Ok(())
        } else {
            Err(Refused {
                retry_after: Duration::from_micros(wait_us.unsigned_abs()),
            })
        })
    }

    fn pair_key(&self, client_id: &str, ip: IpAddr) -> String {
        self.key(&["authfail", client_id, &ip.to_string()])
    }

    /// Record a failure: (failures so far, block it started), or `None` when Redis failed.
    pub async fn throttle_failed(
        &self,
        client_id: &str,
        ip: IpAddr,
        throttle: &ThrottleConfig,
    ) -> Option<(u32, Duration)> {
        let key = self.pair_key(client_id, ip);
        let (failures, wait): (i64, i64) = self
            .call(|mut connection| async move {
                self.failed
                    .key(key)
                    .arg(throttle.free_failures)
                    .arg(throttle.max_backoff.as_secs())
                    .arg(throttle.memory.as_secs())
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        Some((
            u32::try_from(failures).unwrap_or(u32::MAX),
            Duration::from_secs(wait.unsigned_abs()),
        ))
    }

    /// Forget the pair's failures.
    pub async fn throttle_reset(&self, client_id: &str, ip: IpAddr) {
        let key = self.pair_key(client_id, ip);
        let _: Option<i64> = self
            .call(|mut connection| async move { connection.del(key).await })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_a_sixteenth_of_the_bucket_between_one_and_the_cap() {
        assert_eq!(lease_size(0), 1);
        assert_eq!(lease_size(6), 1);
        assert_eq!(lease_size(31), 1);
        assert_eq!(lease_size(32), 2);
        assert_eq!(lease_size(120), 7);
        assert_eq!(lease_size(6000), LEASE_MAX);
    }

    #[test]
    fn a_lease_admits_what_it_holds_until_it_expires() {
        let mut leases = Leases::default();
        let now = Instant::now();
        assert!(!leases.take("k", now), "no lease yet");
        leases.keep("k".into(), 2, now);
        // Two requests that missed the lease together each bring theirs: they add up.
        leases.keep("k".into(), 1, now);
        assert!(leases.take("k", now));
        assert!(leases.take("k", now));
        assert!(leases.take("k", now));
        assert!(!leases.take("k", now), "spent");
        assert!(!leases.take("other", now));

        leases.keep("k".into(), 5, now);
        assert!(!leases.take("k", now + LEASE_TTL), "expired");
        // An expired lease's leftovers do not come back with the next one.
        leases.keep("k".into(), 1, now + LEASE_TTL);
        assert!(leases.take("k", now + LEASE_TTL));
        assert!(!leases.take("k", now + LEASE_TTL));
    }

    #[test]
    fn the_next_lease_is_what_this_instance_admitted_lately() {
        let mut leases = Leases::default();
        let t = Instant::now();
        assert_eq!(leases.wanted("k", t, 7), 1, "a key not seen leases one");
        // A trickle, one request every 1.2 s on this instance: one at a time, nothing left over
        // to expire unspent.
        for n in 0..5 {
            let at = t + LEASE_TTL * 6 / 5 * n;
            assert_eq!(leases.wanted("k", at, 7), 1, "request {n} of the trickle");
            leases.keep("k".into(), 0, at);
        }
        // Busy: ten admitted within a second, counting those from the lease.
        let busy = t + LEASE_TTL * 10;
        leases.keep("b".into(), 3, busy);
        for _ in 0..3 {
            assert!(leases.take("b", busy));
        }
        for _ in 0..6 {
            leases.keep("b".into(), 0, busy);
        }
        assert_eq!(leases.wanted("b", busy, 32), 10);
        assert_eq!(leases.wanted("b", busy, 7), 7, "never past the cap");
        // The demand of the last second still counts in the next one, not after.
        assert_eq!(leases.wanted("b", busy + LEASE_TTL * 3 / 2, 32), 10);
        assert_eq!(leases.wanted("b", busy + LEASE_TTL * 2, 32), 1);
    }

    #[test]
    fn idle_keys_are_swept_before_the_map_grows_past_its_bound() {
        let mut leases = Leases::default();
        let t = Instant::now();
        let at = |tenths: u32| t + LEASE_TTL * tenths / 10;
        for n in 0..LEASE_SWEEP_AT - 1 {
            leases.keep(format!("a{n}"), 1, t);
        }
        leases.keep("b".into(), 1, at(15));
        assert_eq!(leases.by_key.len(), LEASE_SWEEP_AT);
        // At the bound: swept, but what was admitted within the last second stays (its demand
        // sizes the next lease).
        leases.keep("c".into(), 1, at(15));
        assert_eq!(leases.by_key.len(), LEASE_SWEEP_AT + 1);
        // The "a" keys are idle now, but the map is swept at most once per LEASE_TTL.
        leases.keep("d".into(), 1, at(20));
        assert_eq!(
            leases.by_key.len(),
            LEASE_SWEEP_AT + 2,
            "swept again within the second"
        );
        leases.keep("e".into(), 1, at(25));
        assert_eq!(leases.by_key.len(), 4, "the idle keys went");
        assert!(leases.take("e", at(25)));

        // Nothing new past twice the bound; a key already there is still served.
        for n in 0..2 * LEASE_SWEEP_AT - 4 {
            leases.keep(format!("f{n}"), 1, at(25));
        }
        assert_eq!(leases.by_key.len(), 2 * LEASE_SWEEP_AT);
        leases.keep("over".into(), 1, at(25));
        assert!(!leases.take("over", at(25)), "kept past twice the bound");
        leases.keep("d".into(), 1, at(25));
        assert!(leases.take("d", at(25)));
    }
}
