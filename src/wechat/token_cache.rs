//! Upstream token cache: app access tokens, component access tokens, authorizer tokens and
//! official accounts' jsapi_tickets.
//!
//! WeChat invalidates the previous token (after a 5-minute overlap) whenever a new one is fetched,
//! and counts fetches against a daily quota, so several instances refreshing at once is the
//! classic production failure. The cache therefore fetches **once per expiry across every task and
//! every instance sharing the database**:
//!
//! 1. each process keeps the last token in memory and answers from it while it is fresh;
//! 2. within a process, one task per (kind, appid) goes to the database (a per-key async mutex);
//! 3. across processes, the `wechat_token` row carries a lease. A refresher takes it with one
//!    atomic conditional `UPDATE … SET lease_owner = me, lease_until = now + lease WHERE kind = ?
//!    AND appid = ? AND (lease_owner IS NULL OR lease_until < now)`; whoever sees
//!    `rows_affected == 1` fetches, stores the sealed token and releases the lease. Everyone else
//!    keeps using the still-valid old token, or polls the row until the winner's token appears.
//!    The row is created first with `INSERT … ON CONFLICT DO NOTHING` (MySQL: `ON DUPLICATE KEY
//!    UPDATE id = id`), so this works the same on SQLite, PostgreSQL and MySQL.
//!
//! Tokens are refreshed `refresh_ahead_secs` before they expire and are stored sealed by the vault.
//!
//! **Every caller gets its answer within `wait_timeout` (15 s) of asking**, whatever the queue: the
//! wait for the in-process flight, the wait for another instance's lease and the upstream fetch
//! itself all run against one deadline per call, and a fetch that failed is shared with the
//! callers that were waiting for it instead of being tried again by each of them in turn.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use entity::wechat_token;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
};

use super::error::WeChatError;
use super::types::{AccessToken, AppId, TokenKind};
use crate::clock::SharedClock;
use crate::vault::{SealedAt, Vault};

/// Timing of the token cache.
#[derive(Clone, Debug)]
pub struct TokenCacheConfig {
    /// Refresh this many seconds before expiry (WeChat tokens live 7200 s).
    pub refresh_ahead_secs: i64,
    /// A token closer than this to expiry is not handed out while a refresh is under way.
    pub min_remaining_secs: i64,
    /// How long a refresher may hold the lease before others may take it over.
    pub lease_secs: i64,
    /// How often a waiting instance re-reads the row.
    pub poll_interval: Duration,
    /// The longest any caller waits for a token, its own fetch included, before giving up
    /// with 503.
    pub wait_timeout: Duration,
}

impl Default for TokenCacheConfig {
    fn default() -> Self {
        Self {
            refresh_ahead_secs: 300,
            min_remaining_secs: 30,
            lease_secs: 30,
            poll_interval: Duration::from_millis(100),
            wait_timeout: Duration::from_secs(15),
        }
    }
}

/// A token as handed out: the value and when it expires (unix seconds).
#[derive(Debug, Clone)]
pub struct HeldToken {
    pub token: AccessToken,
    pub expires_at: i64,
}

/// A token as fetched from WeChat: the value and its lifetime in seconds.
#[derive(Debug, Clone)]
pub struct UpstreamToken {
    pub token: AccessToken,
    pub expires_in: i64,
}

#[derive(Clone)]
struct CachedToken {
    token: AccessToken,
    /// The sealed form as stored, to invalidate exactly this token and no newer one.
    sealed: String,
    expires_at: i64,
}

impl CachedToken {
    fn held(&self) -> HeldToken {
        HeldToken {
            token: self.token.clone(),
            expires_at: self.expires_at,
        }
    }
}

type Key = (TokenKind, String);

/// What an admin may see of a stored upstream token: never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenState {
    pub appid: String,
    /// `access_token`, `component_access_token`, `authorizer_access_token` or `jsapi_ticket`.
    pub kind: String,
    /// Unix seconds; `None` when no token was fetched yet or it was dropped as invalid.
    pub expires_at: Option<i64>,
    /// Unix seconds of the last successful fetch, if any.
    pub refreshed_at: Option<i64>,
}

/// The shared, database-backed upstream token cache.
pub struct TokenCache {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
    instance_id: String,
    config: TokenCacheConfig,
    local: Mutex<HashMap<Key, CachedToken>>,
    flights: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    /// When each key's last fetch failed: callers that waited for that fetch share its failure.
    failures: Mutex<HashMap<Key, Instant>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("instance_id", &self.instance_id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn store_error(error: sea_orm::DbErr) -> WeChatError {
    WeChatError::store("wechat_token", &error)
}

impl TokenCache {
    pub fn new(
        db: DatabaseConnection,
        vault: Arc<Vault>,
        clock: SharedClock,
        config: TokenCacheConfig,
    ) -> Self {
        Self {
            db,
            vault,
            clock,
            instance_id: uuid::Uuid::new_v4().simple().to_string(),
            config,
            local: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    fn is_fresh(&self, expires_at: i64, now: i64) -> bool {
        expires_at - self.config.refresh_ahead_secs > now
    }

    fn is_usable(&self, expires_at: i64, now: i64) -> bool {
        expires_at - self.config.min_remaining_secs > now
    }

    fn local_get(&self, key: &Key) -> Option<CachedToken> {
        self.local.lock().ok().and_then(|map| map.get(key).cloned())
    }

    fn local_put(&self, key: Key, cached: CachedToken) {
        if let Ok(mut map) = self.local.lock() {
            map.insert(key, cached);
        }
    }

    fn flight(&self, key: &Key) -> Arc<tokio::sync::Mutex<()>> {
        match self.flights.lock() {
            Ok(mut map) => map.entry(key.clone()).or_default().clone(),
            // A poisoned map only loses in-process deduplication; the lease still holds.
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn failed_since(&self, key: &Key, since: Instant) -> bool {
        self.failures
            .lock()
            .ok()
            .and_then(|map| map.get(key).copied())
            .is_some_and(|at| at >= since)
    }

    fn record_failure(&self, key: &Key) {
        if let Ok(mut map) = self.failures.lock() {
            map.insert(key.clone(), Instant::now());
        }
    }

    /// The current token for (kind, appid), calling `fetch` at most once per expiry across all
    /// tasks and instances; an error within `wait_timeout` at the latest.
    pub async fn get<F, Fut>(
        &self,
        kind: TokenKind,
        appid: &AppId,
        fetch: F,
    ) -> Result<AccessToken, WeChatError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<UpstreamToken, WeChatError>>,
    {
        self.get_held(kind, appid, fetch)
            .await
            .map(|held| held.token)
    }

    /// Like [`TokenCache::get`], with the token's expiry.
    pub async fn get_held<F, Fut>(
        &self,
        kind: TokenKind,
        appid: &AppId,
        fetch: F,
    ) -> Result<HeldToken, WeChatError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<UpstreamToken, WeChatError>>,
    {
        let key: Key = (kind, appid.as_str().to_owned());
        let asked = Instant::now();
        let deadline = tokio::time::Instant::from_std(asked + self.config.wait_timeout);
        let now = self.now();
        let cached = self.local_get(&key);
        if let Some(cached) = &cached
            && self.is_fresh(cached.expires_at, now)
        {
            return Ok(cached.held());
        }
        let flight = self.flight(&key);
        let _guard = match flight.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Someone in this process is already refreshing; a still-valid token will do.
                if let Some(cached) = &cached
                    && self.is_usable(cached.expires_at, now)
                {
                    return Ok(cached.held());
                }
                match tokio::time::timeout_at(deadline, flight.lock()).await {
                    Ok(guard) => guard,
                    Err(_) => return Err(WeChatError::TokenRefreshTimeout),
                }
            }
        };
        if let Some(cached) = self.local_get(&key)
            && self.is_fresh(cached.expires_at, self.now())
        {
            return Ok(cached.held());
        }
        // The fetch this caller waited for failed: share that answer rather than queue another.
        if self.failed_since(&key, asked) {
            return Err(WeChatError::TokenRefreshTimeout);
        }
        self.get_shared(kind, appid, key, fetch, deadline).await
    }

    /// The cross-instance part: read the row, take the lease or wait for its holder.
    async fn get_shared<F, Fut>(
        &self,
        kind: TokenKind,
        appid: &AppId,
        key: Key,
        fetch: F,
        deadline: tokio::time::Instant,
    ) -> Result<HeldToken, WeChatError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<UpstreamToken, WeChatError>>,
    {
        let mut fetch = Some(fetch);
        let mut waited = false;
        self.ensure_row(kind, appid).await?;
        loop {
            let now = self.now();
            let stored = self.read_row(kind, appid).await?;
            if let Some(stored) = &stored
                && self.is_fresh(stored.expires_at, now)
            {
                self.local_put(key, stored.clone());
                return Ok(stored.held());
            }
            let owner = format!("{}:{}", self.instance_id, uuid::Uuid::new_v4().simple());
            if self.try_lease(kind, appid, &owner, now).await? {
                // The row was read before the lease was taken: another instance may have stored
                // a fresh token and released its lease in between. Look again before fetching.
                if let Some(fresh) = self.read_row(kind, appid).await?
                    && self.is_fresh(fresh.expires_at, self.now())
                {
                    self.release_lease(kind, appid, &owner).await?;
                    self.local_put(key, fresh.clone());
                    return Ok(fresh.held());
                }
                let Some(fetch) = fetch.take() else {
                    self.release_lease(kind, appid, &owner).await?;
                    return Err(WeChatError::TokenRefreshTimeout);
                };
                return self
                    .refresh_as_leaseholder(kind, appid, key, &owner, stored, fetch, deadline)
                    .await;
            }
            // Another instance holds the lease: serve the old token while it is valid.
            if let Some(stored) = &stored
                && self.is_usable(stored.expires_at, now)
            {
                return Ok(stored.held());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(WeChatError::TokenRefreshTimeout);
            }
            if !waited {
                waited = true;
                metrics::counter!(crate::metrics::WECHAT_LEASE_WAITS, "kind" => kind.as_str())
                    .increment(1);
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn refresh_as_leaseholder<F, Fut>(
        &self,
        kind: TokenKind,
        appid: &AppId,
        key: Key,
        owner: &str,
        stored: Option<CachedToken>,
        fetch: F,
        deadline: tokio::time::Instant,
    ) -> Result<HeldToken, WeChatError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<UpstreamToken, WeChatError>>,
    {
        let fetched = tokio::time::timeout_at(deadline, fetch())
            .await
            .unwrap_or(Err(WeChatError::TokenRefreshTimeout));
        metrics::counter!(
            crate::metrics::WECHAT_TOKEN_REFRESHES,
            "kind" => kind.as_str(),
            "appid" => appid.as_str().to_owned(),
            "outcome" => if fetched.is_ok() { "ok" } else { "failed" }
        )
        .increment(1);
        if fetched.is_err() {
            self.record_failure(&key);
        }
        match fetched {
            Ok(upstream) => {
                let now = self.now();
                let row = crate::db::reseal::wechat_token_row(kind.as_str(), appid.as_str());
                let sealed = self.vault.seal(
                    upstream.token.expose(),
                    SealedAt::new("wechat_token", "value_enc", &row),
                );
                let expires_at = now.saturating_add(upstream.expires_in.max(0));
                let stored = wechat_token::Entity::update_many()
                    .col_expr(wechat_token::Column::ValueEnc, Expr::value(sealed.clone()))
                    .col_expr(wechat_token::Column::ExpiresAt, Expr::value(expires_at))
                    .col_expr(
                        wechat_token::Column::LeaseOwner,
                        Expr::value(Option::<String>::None),
                    )
                    .col_expr(wechat_token::Column::LeaseUntil, Expr::value(0i64))
                    .col_expr(wechat_token::Column::UpdatedAt, Expr::value(now))
                    .filter(wechat_token::Column::Kind.eq(kind.as_str()))
                    .filter(wechat_token::Column::Appid.eq(appid.as_str()))
                    .filter(wechat_token::Column::LeaseOwner.eq(owner))
                    .exec(&self.db)
                    .await
                    .map_err(store_error)?;
                if stored.rows_affected != 1 {
                    tracing::warn!(
                        kind = kind.as_str(),
                        appid = %appid,
                        "token lease lost before the refreshed token was stored"
                    );
                }
                tracing::info!(kind = kind.as_str(), appid = %appid, expires_at, "refreshed WeChat token");
                self.local_put(
                    key,
                    CachedToken {
                        token: upstream.token.clone(),
                        sealed,
                        expires_at,
                    },
                );
                Ok(HeldToken {
                    token: upstream.token,
                    expires_at,
                })
            }
            Err(error) => {
                self.release_lease(kind, appid, owner).await?;
                match stored {
                    Some(stored) if self.is_usable(stored.expires_at, self.now()) => {
                        tracing::warn!(
                            kind = kind.as_str(),
                            appid = %appid,
                            error = %error,
                            "token refresh failed; using the current token until it expires"
                        );
                        Ok(stored.held())
                    }
                    _ => Err(error),
                }
            }
        }
    }

    /// The token every instance shares now, read from the database rather than this process's
    /// memory (a forced refresh on another instance shows at once), fetching it as [`get`]
    /// does when the stored one is not fresh.
    ///
    /// [`get`]: TokenCache::get
    pub async fn get_shared_now<F, Fut>(
        &self,
        kind: TokenKind,
        appid: &AppId,
        fetch: F,
    ) -> Result<HeldToken, WeChatError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<UpstreamToken, WeChatError>>,
    {
        let key: Key = (kind, appid.as_str().to_owned());
        if let Some(stored) = self.read_row(kind, appid).await?
            && self.is_fresh(stored.expires_at, self.now())
        {
            self.local_put(key, stored.clone());
            return Ok(stored.held());
        }
        if let Ok(mut map) = self.local.lock() {
            map.remove(&key);
        }
        self.get_held(kind, appid, fetch).await
    }

    /// Drops the stored token of (kind, appid) for a forced refresh, unless one was forced in
    /// the last `min_interval_secs`: one atomic conditional `UPDATE … SET expires_at = 0,
    /// forced_at = now WHERE … AND forced_at <= now - interval`, so of any number of requests
    /// on any number of instances exactly one a minute gets through. `true` when this call
    /// dropped it (the next [`get_shared_now`] refetches, once, through the lease).
    ///
    /// [`get_shared_now`]: TokenCache::get_shared_now
    pub async fn force_expire(
        &self,
        kind: TokenKind,
        appid: &AppId,
        min_interval_secs: i64,
    ) -> Result<bool, WeChatError> {
        self.ensure_row(kind, appid).await?;
        let now = self.now();
        let dropped = wechat_token::Entity::update_many()
            .col_expr(wechat_token::Column::ExpiresAt, Expr::value(0i64))
            .col_expr(wechat_token::Column::ForcedAt, Expr::value(now))
            .filter(wechat_token::Column::Kind.eq(kind.as_str()))
            .filter(wechat_token::Column::Appid.eq(appid.as_str()))
            .filter(wechat_token::Column::ForcedAt.lte(now.saturating_sub(min_interval_secs)))
            .exec(&self.db)
            .await
            .map_err(store_error)?
            .rows_affected
            == 1;
        if dropped {
            if let Ok(mut map) = self.local.lock() {
                map.remove(&(kind, appid.as_str().to_owned()));
            }
            tracing::info!(kind = kind.as_str(), appid = %appid, "forced refresh of a WeChat token");
        }
        Ok(dropped)
    }

    /// Drops `token` (rejected by WeChat with 40001/40014/42001) so the next `get` refetches.
    /// A newer token stored meanwhile by another instance is left alone.
    pub async fn invalidate(
        &self,
        kind: TokenKind,
        appid: &AppId,
        token: &AccessToken,
    ) -> Result<(), WeChatError> {
        let key: Key = (kind, appid.as_str().to_owned());
        let removed = match self.local.lock() {
            Ok(mut map) => match map.get(&key) {
                Some(cached) if cached.token == *token => map.remove(&key),
                _ => None,
            },
            Err(_) => None,
        };
        if let Some(removed) = removed {
            wechat_token::Entity::update_many()
                .col_expr(wechat_token::Column::ExpiresAt, Expr::value(0i64))
                .filter(wechat_token::Column::Kind.eq(kind.as_str()))
                .filter(wechat_token::Column::Appid.eq(appid.as_str()))
                .filter(wechat_token::Column::ValueEnc.eq(removed.sealed))
                .exec(&self.db)
                .await
                .map_err(store_error)?;
            tracing::info!(kind = kind.as_str(), appid = %appid, "invalidated WeChat token");
        }
        Ok(())
    }

    /// The stored tokens of `appids` as an admin sees them (no value is opened).
    pub async fn states(&self, appids: &[String]) -> Result<Vec<TokenState>, sea_orm::DbErr> {
        let rows = wechat_token::Entity::find()
            .filter(wechat_token::Column::Appid.is_in(appids.iter().cloned()))
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                // A row is created before its first fetch; `updated_at` moves only when a
                // fetched token is stored.
                let fetched = row.value_enc.is_some();
                TokenState {
                    appid: row.appid,
                    kind: row.kind,
                    expires_at: (fetched && row.expires_at > 0).then_some(row.expires_at),
                    refreshed_at: fetched.then_some(row.updated_at),
                }
            })
            .collect())
    }

    async fn ensure_row(&self, kind: TokenKind, appid: &AppId) -> Result<(), WeChatError> {
        let row = wechat_token::ActiveModel {
            id: NotSet,
            kind: Set(kind.as_str().to_owned()),
            appid: Set(appid.as_str().to_owned()),
            value_enc: Set(None),
            expires_at: Set(0),
            lease_owner: Set(None),
            lease_until: Set(0),
            updated_at: Set(self.now()),
            forced_at: Set(0),
        };
        wechat_token::Entity::insert(row)
            .on_conflict_do_nothing_on([wechat_token::Column::Kind, wechat_token::Column::Appid])
            .exec_without_returning(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn read_row(
        &self,
        kind: TokenKind,
        appid: &AppId,
    ) -> Result<Option<CachedToken>, WeChatError> {
        let row = wechat_token::Entity::find()
            .filter(wechat_token::Column::Kind.eq(kind.as_str()))
            .filter(wechat_token::Column::Appid.eq(appid.as_str()))
            .one(&self.db)
            .await
            .map_err(store_error)?;
        let Some(row) = row else { return Ok(None) };
        let Some(sealed) = row.value_enc else {
            return Ok(None);
        };
        let at = crate::db::reseal::wechat_token_row(kind.as_str(), appid.as_str());
        match self
            .vault
            .open(&sealed, SealedAt::new("wechat_token", "value_enc", &at))
        {
            Ok(token) => Ok(Some(CachedToken {
                token: AccessToken::new(token),
                sealed,
                expires_at: row.expires_at,
            })),
            Err(error) => {
                // Sealed under another master key: treat as absent and refetch.
                tracing::warn!(kind = kind.as_str(), appid = %appid, error = %error, "stored WeChat token does not open");
                Ok(None)
            }
        }
    }

    async fn try_lease(
        &self,
        kind: TokenKind,
        appid: &AppId,
        owner: &str,
        now: i64,
    ) -> Result<bool, WeChatError> {
        let result = wechat_token::Entity::update_many()
            .col_expr(wechat_token::Column::LeaseOwner, Expr::value(owner))
            .col_expr(
                wechat_token::Column::LeaseUntil,
                Expr::value(now + self.config.lease_secs),
            )
            .filter(wechat_token::Column::Kind.eq(kind.as_str()))
            .filter(wechat_token::Column::Appid.eq(appid.as_str()))
            .filter(
                Condition::any()
                    .add(wechat_token::Column::LeaseOwner.is_null())
                    .add(wechat_token::Column::LeaseUntil.lt(now)),
            )
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected == 1)
    }

    async fn release_lease(
        &self,
        kind: TokenKind,
        appid: &AppId,
        owner: &str,
    ) -> Result<(), WeChatError> {
        wechat_token::Entity::update_many()
            .col_expr(
                wechat_token::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(wechat_token::Column::LeaseUntil, Expr::value(0i64))
            .filter(wechat_token::Column::Kind.eq(kind.as_str()))
            .filter(wechat_token::Column::Appid.eq(appid.as_str()))
            .filter(wechat_token::Column::LeaseOwner.eq(owner))
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
