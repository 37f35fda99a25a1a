//! One exchange per `wx.login` code. WeChat clients retry, so the same `js_code` can arrive twice
//! at the same moment; WeChat answers the second exchange 40163 ("code been used"), which the
//! user would see as a failed login. Instead the second request gets the first one's answer:
//!
//! 1. **in process**, requests with the same code queue on one async mutex and the first one's
//!    outcome is handed to those that arrived while it was under way (a replay after it finished
//!    goes to WeChat and is refused there: the code stays single-use);
//! 2. **across instances**, the first request inserts a `wechat_code_exchange` row keyed by the
//!    code's keyed hash (`INSERT … ON CONFLICT DO NOTHING`: one winner, on every backend), calls
//!    WeChat, and stores the sealed outcome in the row with the time it finished; a request on
//!    another instance that lost the insert polls the row for the outcome, for at most [`WAIT`],
//!    and shares it if it arrived before the exchange finished (its arrival time, not when its
//!    statements reached a busy database, decides; instances compare wall clocks, so keep them
//!    in sync with NTP). The row lives [`REPLAY_WINDOW_SECS`].
//!
//! Only WeChat's verdicts are shared across instances (a session, or an errcode such as 40029);
//! a transient failure (timeout, HTTP error) removes the row, so a retry tries again. The code
//! itself is never stored, only its keyed hash; the session key is sealed by the vault, and the
//! janitor removes rows once they expire.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
};
use serde::{Deserialize, Serialize};

use entity::wechat_code_exchange;

use super::error::WeChatError;
use super::mini_program::CodeSession;
use super::types::{AppId, OpenId, SessionKey, UnionId};
use crate::clock::SharedClock;
use crate::vault::{SealedAt, Vault};

/// How long an exchange's outcome answers a repeat of its code (seconds).
pub const REPLAY_WINDOW_SECS: i64 = 30;
/// The longest a repeat waits for the first exchange (within the 15 s upstream bound).
pub const WAIT: Duration = Duration::from_secs(12);
/// How often a waiting instance reads the row.
const POLL: Duration = Duration::from_millis(50);
/// Where a sealed outcome lives (the AES-GCM associated data names it, with the row's key).
const TABLE: &str = "wechat_code_exchange";
const OUTCOME_COLUMN: &str = "outcome_enc";

/// An exchange's outcome, as shared.
#[derive(Clone, Serialize, Deserialize)]
enum Outcome {
    Session {
        openid: OpenId,
        session_key: String,
        unionid: Option<UnionId>,
    },
    /// WeChat's errcode for this code.
    Refused { errcode: i64 },
    /// No verdict (WeChat unreachable, slow, HTTP error): shared in process only.
    Unavailable { message: String },
}

impl Outcome {
    fn of(result: &Result<CodeSession, WeChatError>) -> Self {
        match result {
            Ok(session) => Outcome::Session {
                openid: session.openid.clone(),
                session_key: session.session_key.expose().to_owned(),
                unionid: session.unionid.clone(),
            },
            Err(error) => match error.errcode() {
                Some(errcode) if !error.is_transient() => Outcome::Refused { errcode },
                _ => Outcome::Unavailable {
                    message: error.to_string(),
                },
            },
        }
    }

    fn into_result(self) -> Result<CodeSession, WeChatError> {
        match self {
            Outcome::Session {
                openid,
                session_key,
                unionid,
            } => Ok(CodeSession {
                openid,
                session_key: SessionKey::new(session_key),
                unionid,
            }),
            Outcome::Refused { errcode } => Err(WeChatError::from_errcode(errcode, "")),
            Outcome::Unavailable { message } => Err(WeChatError::Unreachable(message)),
        }
    }

    fn is_verdict(&self) -> bool {
        !matches!(self, Outcome::Unavailable { .. })
    }
}

/// An outcome as stored in the row, with when the exchange finished (unix milliseconds).
#[derive(Serialize, Deserialize)]
struct Published {
    finished_ms: i64,
    outcome: Outcome,
}

/// The last outcome exchanged in this process for a code, with when it finished: the wall clock
/// (unix ms, compared with a request's arrival) and this process's monotonic clock (compared with
/// when a request began waiting for the slot, which a millisecond cannot tell apart).
type Slot = Arc<tokio::sync::Mutex<Option<(i64, Instant, Outcome)>>>;

/// The single-flight of code exchanges.
pub struct CodeExchanges {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
    flights: Mutex<Flights>,
}

/// The slots of the codes exchanged in the last [`REPLAY_WINDOW_SECS`], by key, and when the
/// expired ones were last dropped.
struct Flights {
    slots: HashMap<String, (Instant, Slot)>,
    swept: Instant,
}

/// How often the slots are swept: a sweep visits every slot (at a few hundred logins a second,
/// the window holds thousands), so not on every exchange.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

fn store_error(error: sea_orm::DbErr) -> WeChatError {
    WeChatError::store("wechat_code_exchange", &error)
}

impl CodeExchanges {
    pub fn new(db: DatabaseConnection, vault: Arc<Vault>, clock: SharedClock) -> Self {
        Self {
            db,
            vault,
            clock,
            flights: Mutex::new(Flights {
                slots: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    fn slot(&self, key: &str) -> Slot {
        let window = Duration::from_secs(REPLAY_WINDOW_SECS.unsigned_abs());
        let now = Instant::now();
        let mut flights = self
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.duration_since(flights.swept) >= SWEEP_EVERY {
            flights.swept = now;
            flights.slots.retain(|_, (created, slot)| {
                now.duration_since(*created) < window || Arc::strong_count(slot) > 1
            });
        }
        flights
            .slots
            .entry(key.to_owned())
            .or_insert_with(|| (now, Slot::default()))
            .1
            .clone()
    }

    /// Exchange `js_code` of `appid` with `call` at most once, however many requests carry it.
    pub async fn exchange<F, Fut>(
        &self,
        appid: &AppId,
        js_code: &str,
        call: F,
    ) -> Result<CodeSession, WeChatError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CodeSession, WeChatError>>,
    {
        // When the request arrived, not when it got here: its earlier work may have waited on a
        // busy pool while the first exchange of the code was already under way.
        let arrived_ms =
            crate::request_context::arrived_ms().unwrap_or_else(|| self.clock.now_millis());
        let key = self
            .vault
            .fingerprint(&format!("jscode2session\n{}\n{js_code}", appid.as_str()));
        let queued = Instant::now();
        let slot = self.slot(&key);
        let Ok(mut shared) = tokio::time::timeout(WAIT, slot.lock()).await else {
            return Err(WeChatError::Unreachable(
                "the first exchange of this code did not finish in time".into(),
            ));
        };
        // Only a request that arrived while the exchange was under way shares its answer; a
        // later replay of the code goes to WeChat (and is told 40163), as the code is single-use.
        if let Some((completed_ms, completed, outcome)) = shared.as_ref()
            && (*completed_ms > arrived_ms || *completed > queued)
        {
            return outcome.clone().into_result();
        }
        let (outcome, own) = self.exchange_once(&key, arrived_ms, call).await?;
        *shared = Some((self.clock.now_millis(), Instant::now(), outcome.clone()));
        own.unwrap_or_else(|| outcome.into_result())
    }

    /// The cross-instance part: win the row and call WeChat, or wait for the winner's outcome.
    /// `arrived_ms` is when this request arrived (wall clock, the one time instances share): it
    /// shares a published outcome only if it arrived before the exchange finished, however long
    /// its own statements took to reach the database. Returns the outcome to share and, when this
    /// request called WeChat, its own result.
    async fn exchange_once<F, Fut>(
        &self,
        key: &str,
        arrived_ms: i64,
        call: F,
    ) -> Result<(Outcome, Option<Result<CodeSession, WeChatError>>), WeChatError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CodeSession, WeChatError>>,
    {
        let started = Instant::now();
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let mut call = Some(call);
        loop {
            let now = self.clock.now();
            let row = self.claim(key, &owner, now).await?;
            let mine = row.as_ref().is_some_and(|r| r.owner == owner);
            if mine && let Some(call) = call.take() {
                let result = call().await;
                let outcome = Outcome::of(&result);
                self.publish(key, &owner, &outcome).await?;
                return Ok((outcome, Some(result)));
            }
            // Someone else is exchanging this code (or has): wait for their outcome.
            match row {
                Some(row) if row.expires_at <= now => {
                    // A winner that died: clear its row and try to win it.
                    wechat_code_exchange::Entity::delete_many()
                        .filter(wechat_code_exchange::Column::CodeHash.eq(key))
                        .filter(wechat_code_exchange::Column::ExpiresAt.lte(now))
                        .exec(&self.db)
                        .await
                        .map_err(store_error)?;
                    continue;
                }
                Some(row) => {
                    if let Some(sealed) = row.outcome_enc {
                        let published = self.open(key, &sealed)?;
                        if published.finished_ms > arrived_ms {
                            return Ok((published.outcome, None));
                        }
                        // A replay that arrived after the exchange finished: WeChat's to answer
                        // (the code is single-use, and WeChat says so).
                        if let Some(call) = call.take() {
                            let result = call().await;
                            return Ok((Outcome::of(&result), Some(result)));
                        }
                    }
                }
                // The winner gave up without a verdict: try again ourselves.
                None => continue,
            }
            if started.elapsed() >= WAIT {
                let outcome = Outcome::Unavailable {
                    message: "the first exchange of this code did not finish in time".into(),
                };
                return Ok((outcome, None));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Insert the code's row naming `owner`, unless a row is there already, and return the row
    /// that is there now: whoever's `owner` it holds calls WeChat. On SQLite and PostgreSQL one
    /// statement (an upsert whose update changes nothing, `RETURNING` the row); on MySQL, which
    /// has no `RETURNING`, an insert-or-ignore and a read. (Not the row count: MySQL counts a
    /// duplicate that changed nothing as one row.)
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        now: i64,
    ) -> Result<Option<wechat_code_exchange::Model>, WeChatError> {
        let insert = wechat_code_exchange::Entity::insert(wechat_code_exchange::ActiveModel {
            code_hash: Set(key.to_owned()),
            owner: Set(owner.to_owned()),
            outcome_enc: Set(None),
            created_at: Set(now),
            expires_at: Set(now + REPLAY_WINDOW_SECS),
        });
        if self.db.support_returning() {
            let existing_row_unchanged = OnConflict::column(wechat_code_exchange::Column::CodeHash)
                .update_column(wechat_code_exchange::Column::CodeHash)
                .to_owned();
            return insert
                .on_conflict(existing_row_unchanged)
                .exec_with_returning(&self.db)
                .await
                .map(Some)
                .map_err(store_error);
        }
        insert
            .on_conflict_do_nothing_on([wechat_code_exchange::Column::CodeHash])
            .exec_without_returning(&self.db)
            .await
            .map_err(store_error)?;
        crate::db::find_unique(
            wechat_code_exchange::Entity::find_by_id(key.to_owned()),
            &self.db,
        )
        .await
        .map_err(store_error)
    }

    fn open(&self, key: &str, sealed: &str) -> Result<Published, WeChatError> {
        let json = self
            .vault
            .open(sealed, SealedAt::new(TABLE, OUTCOME_COLUMN, key))
            .map_err(|e| WeChatError::Store(format!("wechat_code_exchange: {e}")))?;
        serde_json::from_str(&json)
            .map_err(|e| WeChatError::Store(format!("wechat_code_exchange: {e}")))
    }

    /// Store a verdict in the row for the other instances; remove the row otherwise.
    async fn publish(&self, key: &str, owner: &str, outcome: &Outcome) -> Result<(), WeChatError> {
        let mine = || {
            sea_orm::Condition::all()
                .add(wechat_code_exchange::Column::CodeHash.eq(key))
                .add(wechat_code_exchange::Column::Owner.eq(owner))
        };
        if outcome.is_verdict() {
            let published = Published {
                finished_ms: self.clock.now_millis(),
                outcome: outcome.clone(),
            };
            let json = serde_json::to_string(&published)
                .map_err(|e| WeChatError::Store(format!("wechat_code_exchange: {e}")))?;
            wechat_code_exchange::Entity::update_many()
                .col_expr(
                    wechat_code_exchange::Column::OutcomeEnc,
                    Expr::value(
                        self.vault
                            .seal(&json, SealedAt::new(TABLE, OUTCOME_COLUMN, key)),
                    ),
                )
                .filter(mine())
                .exec(&self.db)
                .await
                .map_err(store_error)?;
        } else {
            wechat_code_exchange::Entity::delete_many()
                .filter(mine())
                .exec(&self.db)
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }
}
