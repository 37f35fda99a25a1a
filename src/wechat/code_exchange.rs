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
//! janitor removes rows once they expire. Claims and verdicts go through two group commits
//! ([`crate::group_commit`]): under load one statement claims the codes of every login that
//! arrived while the previous claim was being written (one `INSERT`, `RETURNING` the rows), and
//! one `UPDATE` stores the verdicts of every exchange that finished meanwhile. Each request goes
//! on once its own is written. Not on MySQL/MariaDB: measured there with bench/, the batches
//! cost a fifth to a quarter of the logins per second and nearly tripled the p99, and saved no
//! CPU, so each exchange writes its own rows as before.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::sea_query::{CaseStatement, Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
};
use serde::{Deserialize, Serialize};

use entity::wechat_code_exchange;

use super::error::WeChatError;
use super::mini_program::CodeSession;
use super::types::{AppId, OpenId, SessionKey, UnionId};
use crate::clock::SharedClock;
use crate::db_error::SharedDbErr;
use crate::group_commit::{GroupCommit, write_through};
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

/// A code's row to insert, naming the exchange (`owner`) that will call WeChat if it wins.
struct Claim {
    key: String,
    owner: String,
    now: i64,
}

/// A verdict sealed for its row, which only the exchange that claimed it (`owner`) may fill.
struct Verdict {
    key: String,
    owner: String,
    sealed: String,
}

/// The row a claim's code has after the claims' statement (`None`: it was removed meanwhile).
type Claimed = Result<Option<wechat_code_exchange::Model>, SharedDbErr>;
type Stored = Result<(), SharedDbErr>;

/// At most this many claims, and this many verdicts, go into one statement.
const PER_STATEMENT: usize = 64;
/// Claims, and verdicts, queued for their group commit before an exchange waits for room.
const QUEUED: usize = 1024;

/// The single-flight of code exchanges.
pub struct CodeExchanges {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
    flights: Mutex<Flights>,
    /// The group commits of claims and of verdicts (`None` on MySQL: see the module's doc).
    claims: Option<GroupCommit<Claim, Claimed>>,
    verdicts: Option<GroupCommit<Verdict, Stored>>,
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
    /// The single-flight on `db`; inside a Tokio runtime and not on MySQL, this starts the
    /// tasks that write claims and verdicts, which end when these exchanges are dropped.
    pub fn new(db: DatabaseConnection, vault: Arc<Vault>, clock: SharedClock) -> Self {
        let batched = db.support_returning();
        let writer = db.clone();
        let claims = batched.then(|| {
            GroupCommit::start(PER_STATEMENT, QUEUED, move |batch| {
                insert_claims(writer.clone(), batch)
            })
        });
        let writer = db.clone();
        let verdicts = batched.then(|| {
            GroupCommit::start(PER_STATEMENT, QUEUED, move |batch| {
                store_verdicts(writer.clone(), batch)
            })
        });
        Self {
            db,
            vault,
            clock,
            flights: Mutex::new(Flights {
                slots: HashMap::new(),
                swept: Instant::now(),
            }),
            claims,
            verdicts,
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
    /// that is there now: whoever's `owner` it holds calls WeChat. Through the claims' group
    /// commit ([`insert_claims`]).
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        now: i64,
    ) -> Result<Option<wechat_code_exchange::Model>, WeChatError> {
        let claim = Claim {
            key: key.to_owned(),
            owner: owner.to_owned(),
            now,
        };
        match write_through(self.claims.as_ref(), claim, |claims| {
            insert_claims(self.db.clone(), claims)
        })
        .await
        {
            Some(claimed) => claimed.map_err(|e| store_error(e.into())),
            None => Err(WeChatError::Store(format!(
                "{TABLE}: the claim writer stopped"
            ))),
        }
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
            let verdict = Verdict {
                key: key.to_owned(),
                owner: owner.to_owned(),
                sealed: self
                    .vault
                    .seal(&json, SealedAt::new(TABLE, OUTCOME_COLUMN, key)),
            };
            match write_through(self.verdicts.as_ref(), verdict, |verdicts| {
                store_verdicts(self.db.clone(), verdicts)
            })
            .await
            {
                Some(stored) => stored.map_err(|e| store_error(e.into()))?,
                None => {
                    return Err(WeChatError::Store(format!(
                        "{TABLE}: the verdict writer stopped"
                    )));
                }
            }
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

/// Store `batch`'s verdicts in one `UPDATE`: each row whose key and owner a verdict names gets
/// its sealed outcome (a row another exchange has claimed since is left alone). One answer per
/// verdict, all the same.
async fn store_verdicts(db: DatabaseConnection, batch: Vec<Verdict>) -> Vec<Stored> {
    use wechat_code_exchange::Column;
    let count = batch.len();
    let mut outcome = CaseStatement::new();
    let mut claimed_by_them = sea_orm::Condition::any();
    for verdict in batch {
        outcome = outcome.case(Column::CodeHash.eq(verdict.key.as_str()), verdict.sealed);
        claimed_by_them = claimed_by_them.add(
            sea_orm::Condition::all()
                .add(Column::CodeHash.eq(verdict.key))
                .add(Column::Owner.eq(verdict.owner)),
        );
    }
    let written = wechat_code_exchange::Entity::update_many()
        .col_expr(
            Column::OutcomeEnc,
            outcome.finally(Expr::col(Column::OutcomeEnc)).into(),
        )
        .filter(claimed_by_them)
        .exec(&db)
        .await
        .map(|_| ())
        .map_err(|e| SharedDbErr::from(&e));
    vec![written; count]
}

/// Insert a row for each claim whose code has none, and answer each claim with the row its
/// code has now. On SQLite and PostgreSQL one statement: an upsert whose update changes nothing,
/// `RETURNING` the rows. On MySQL, which has no `RETURNING`, an insert-or-ignore and a read
/// (not the row count: MySQL counts a duplicate that changed nothing as one row). One process
/// never has two claims of one code in a batch (its single-flight queues them); should it, the
/// first one's row is inserted and both are answered with it, as a statement cannot touch a
/// row twice.
async fn insert_claims(db: DatabaseConnection, batch: Vec<Claim>) -> Vec<Claimed> {
    use wechat_code_exchange::Column;
    let keys: Vec<String> = batch.iter().map(|c| c.key.clone()).collect();
    let mut seen = HashSet::new();
    let rows: Vec<_> = batch
        .into_iter()
        .filter(|claim| seen.insert(claim.key.clone()))
        .map(|claim| wechat_code_exchange::ActiveModel {
            code_hash: Set(claim.key),
            owner: Set(claim.owner),
            outcome_enc: Set(None),
            created_at: Set(claim.now),
            expires_at: Set(claim.now + REPLAY_WINDOW_SECS),
        })
        .collect();
    let insert = wechat_code_exchange::Entity::insert_many(rows);
    let found = if db.support_returning() {
        let existing_rows_unchanged = OnConflict::column(Column::CodeHash)
            .update_column(Column::CodeHash)
            .to_owned();
        insert
            .on_conflict(existing_rows_unchanged)
            .exec_with_returning(&db)
            .await
    } else {
        match insert
            .on_conflict_do_nothing_on([Column::CodeHash])
            .exec_without_returning(&db)
            .await
        {
            Ok(_) => {
                wechat_code_exchange::Entity::find()
                    .filter(Column::CodeHash.is_in(keys.iter().map(String::as_str)))
                    .all(&db)
                    .await
            }
            Err(error) => Err(error),
        }
    };
    match found {
        Ok(rows) => {
            let by_key: HashMap<String, wechat_code_exchange::Model> = rows
                .into_iter()
                .map(|row| (row.code_hash.clone(), row))
                .collect();
            keys.iter()
                .map(|key| Ok(by_key.get(key).cloned()))
                .collect()
        }
        Err(error) => vec![Err(SharedDbErr::from(&error)); keys.len()],
    }
}
