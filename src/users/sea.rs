//! [`UserRepo`] over sea-orm, for SQLite, PostgreSQL and MySQL alike.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::{Expr, ExprTrait, Func, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QuerySelect, QueryTrait, SelectTwoModel, SelectorTrait, SqlErr, TransactionTrait,
};

use entity::{flow_user, wx_user};

use crate::config::MergePolicy;
use crate::group_commit::GroupCommit;
use crate::webhooks::{self, WebhookEvent};

use super::merge::{self, MergeError};
use super::{
    Account, ChosenProfile, IdentityKey, NickNameStatus, PhoneNumber, PhoneSource, Profile,
    RepoError, UserRepo, WeChatIdentity,
};

/// The (appid, openid) pair of an identity: what its recording lock is held under, and what the
/// token path reads it by.
type LockKey = (String, String);

/// An identity as stored, with its account (`None`: the identity is linked to none).
type IdentityRow = (wx_user::Model, Option<flow_user::Model>);

/// The column of the returning login's read that says whether its update recorded the login.
const RECORDED: &str = "recorded";

/// At most this many identities are read in one statement (their bound values stay well under
/// every backend's limit).
const READ_BATCH: usize = 64;

/// Identity reads queued before a caller waits for room.
const READS_QUEUED: usize = 1024;

/// The sea-orm user repository.
#[derive(Clone)]
pub struct SeaUserRepo {
    db: DatabaseConnection,
    /// One recording at a time per identity in this process: parallel logins of one user queue
    /// here instead of holding pool connections while they wait on each other's row locks.
    recording: Arc<Mutex<HashMap<LockKey, Arc<tokio::sync::Mutex<()>>>>>,
    /// What a login does when it finds two accounts to be one person.
    merge_policy: MergePolicy,
    /// The token path's identity reads: under load, one statement reads every identity queued
    /// while the previous read was in flight ([`crate::group_commit`]).
    identity_reads: GroupCommit<LockKey, Result<Option<IdentityRow>, String>>,
}

impl SeaUserRepo {
    /// The repository; its identity reader runs on the current Tokio runtime, if there is one
    /// (outside one, every read is its own statement).
    pub fn new(db: DatabaseConnection) -> Self {
        let reader = db.clone();
        Self {
            db,
            recording: Arc::default(),
            merge_policy: MergePolicy::Auto,
            identity_reads: GroupCommit::start(READ_BATCH, READS_QUEUED, move |keys| {
                read_identities(reader.clone(), keys)
            }),
        }
    }

    /// The repository, merging accounts found to be one person as `policy` says.
    pub fn with_merge_policy(mut self, policy: MergePolicy) -> Self {
        self.merge_policy = policy;
        self
    }

    fn identity_lock(&self, appid: &str, open_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .recording
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if locks.len() > 1024 {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks
            .entry((appid.to_owned(), open_id.to_owned()))
            .or_default()
            .clone()
    }

    /// The account of `union_id`, created when missing. Insert (a unique-key conflict means another
    /// first login won), then read by the unique unionid: two first logins at once both end with
    /// the one row, on every backend, with no read-back of "the row just inserted" (sea-orm's
    /// `ActiveModel::insert`, which raced on MySQL).
    async fn account_for_union(
        &self,
        union_id: &str,
        now: i64,
    ) -> Result<flow_user::Model, RepoError> {
        if let Some(a) = self.find_account_by_union(union_id).await? {
            return Ok(a);
        }
        let row = flow_user::ActiveModel {
            id: NotSet,
            union_id: Set(Some(union_id.to_string())),
            nick_name: Set(None),
            nick_name_status: Set(None),
            avatar: Set(None),
            mobile: Set(None),
            mobile_source: Set(None),
            mobile_verified_at: Set(None),
            mobile_pure: Set(None),
            mobile_country_code: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            disabled_at: Set(None),
        };
        // The account and its `user.created` webhook are one transaction.
        let txn = self.db.begin().await?;
        match flow_user::Entity::insert(row).exec(&txn).await {
            Ok(inserted) => {
                let created = WebhookEvent::UserCreated {
                    account_id: inserted.last_insert_id,
                };
                webhooks::enqueue(&txn, &created, now).await?;
                txn.commit().await?;
            }
            // Another first login created it meanwhile: the unique index decided.
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                txn.rollback().await?;
            }
            Err(e) => return Err(e.into()),
        }
        self.find_account_by_union(union_id)
            .await?
            .ok_or(RepoError::NotFound)
    }

    async fn find_account_by_union(
        &self,
        union_id: &str,
    ) -> Result<Option<flow_user::Model>, RepoError> {
        Ok(flow_user::Entity::find()
            .filter(flow_user::Column::UnionId.eq(union_id))
            .one(&self.db)
            .await?)
    }

    /// When account `id` has no unionid and no account has `union_id`, give it `union_id` (the
    /// identity's first unionid keeps its account). `None` when that does not apply.
    async fn adopt_union(
        &self,
        id: i64,
        union_id: &str,
        now: i64,
    ) -> Result<Option<flow_user::Model>, RepoError> {
        let Some(account) = flow_user::Entity::find_by_id(id).one(&self.db).await? else {
            return Ok(None);
        };
        if account.union_id.as_deref() == Some(union_id) {
            return Ok(Some(account));
        }
        if account.union_id.is_some() || self.find_account_by_union(union_id).await?.is_some() {
            return Ok(None);
        }
        let mut row: flow_user::ActiveModel = account.into();
        row.union_id = Set(Some(union_id.to_string()));
        row.updated_at = Set(now);
        match row.update(&self.db).await {
            Ok(adopted) => Ok(Some(adopted)),
            // Another request gave the unionid to another account first.
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Remove account `id` if it has no unionid and no identity points to it any more.
    async fn drop_if_orphaned(&self, id: i64) -> Result<(), RepoError> {
        let in_use = wx_user::Entity::find()
            .filter(wx_user::Column::FlowUserId.eq(id))
            .one(&self.db)
            .await?
            .is_some();
        if !in_use {
            flow_user::Entity::delete_many()
                .filter(flow_user::Column::Id.eq(id))
                .filter(flow_user::Column::UnionId.is_null())
                .exec(&self.db)
                .await?;
        }
        Ok(())
    }

    /// A new account without a unionid: its id from the insert itself, then read by that key.
    async fn new_account(&self, now: i64) -> Result<flow_user::Model, RepoError> {
        // The account and its `user.created` webhook are one transaction.
        let txn = self.db.begin().await?;
        let inserted = flow_user::Entity::insert(flow_user::ActiveModel {
            id: NotSet,
            union_id: Set(None),
            nick_name: Set(None),
            nick_name_status: Set(None),
            avatar: Set(None),
            mobile: Set(None),
            mobile_source: Set(None),
            mobile_verified_at: Set(None),
            mobile_pure: Set(None),
            mobile_country_code: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            disabled_at: Set(None),
        })
        .exec(&txn)
        .await?;
        let created = WebhookEvent::UserCreated {
            account_id: inserted.last_insert_id,
        };
        webhooks::enqueue(&txn, &created, now).await?;
        txn.commit().await?;
        flow_user::Entity::find_by_id(inserted.last_insert_id)
            .one(&self.db)
            .await?
            .ok_or(RepoError::NotFound)
    }

    /// The identity row of (appid, open_id), deleted or not.
    async fn identity_row(
        &self,
        appid: &str,
        open_id: &str,
    ) -> Result<Option<wx_user::Model>, RepoError> {
        Ok(wx_user::Entity::find()
            .filter(wx_user::Column::Appid.eq(appid))
            .filter(wx_user::Column::OpenId.eq(open_id))
            .one(&self.db)
            .await?)
    }

    /// The common login, with the identity's lock held: an identity seen before, linked to an
    /// account that exists; when WeChat gave a unionid, the identity records it already and the
    /// account holds it. One conditional update and the joined read after it, in one round trip
    /// where the backend allows ([`crate::round_trip::write_then_read`]), instead of the five
    /// statements of [`Self::record_identity_now`]. The update checks the link, the unionid and
    /// the account in its `WHERE`, so a new identity, a merge, a deletion or a unionid arriving
    /// makes it match nothing; then, as for every other case, the answer is `None` and the
    /// caller takes the full path.
    async fn record_returning(
        &self,
        vouched: &IdentityKey,
        now: i64,
    ) -> Result<Option<(WeChatIdentity, Account)>, RepoError> {
        let (appid, open_id) = (vouched.appid.as_str(), vouched.open_id.as_str());
        let backend = self.db.get_database_backend();
        // The unionid WeChat gave, else the one recorded; the account must hold it already.
        let union_id = || {
            Func::coalesce([
                Expr::val(vouched.union_id.clone().map(String::from)),
                Expr::col((wx_user::Entity, wx_user::Column::UnionId)),
            ])
        };
        let account_holds_union = Query::select()
            .expr(Expr::val(1))
            .from(flow_user::Entity)
            .and_where(
                Expr::col((flow_user::Entity, flow_user::Column::Id))
                    .equals((wx_user::Entity, wx_user::Column::FlowUserId)),
            )
            .cond_where(
                Condition::any()
                    .add(union_id().is_null())
                    .add(Expr::col((flow_user::Entity, flow_user::Column::UnionId)).eq(union_id())),
            )
            .to_owned();
        // The unionid is not set here: a column in the `SET` list has its index entry rewritten
        // even when the value stays (on SQLite a page of `ix_wx_user_union` written to the WAL on
        // every login, ~5 % of a login's frames). An identity whose recorded unionid is not the
        // one WeChat gave now takes the full path, which records it.
        let mut record = Query::update()
            .table(wx_user::Entity)
            .value(wx_user::Column::LastLoginTime, now)
            .value(wx_user::Column::UpdateTime, now)
            .value(wx_user::Column::DelFlag, false)
            .and_where(Expr::col(wx_user::Column::Appid).eq(appid))
            .and_where(Expr::col(wx_user::Column::OpenId).eq(open_id))
            .and_where(Expr::exists(account_holds_union))
            .to_owned();
        if let Some(given) = &vouched.union_id {
            record.and_where(Expr::col(wx_user::Column::UnionId).eq(given.as_str()));
        }
        let rows =
            crate::round_trip::write_then_read(&self.db, backend.build(&record), |written| {
                wx_user::Entity::find()
                    .filter(wx_user::Column::Appid.eq(appid))
                    .filter(wx_user::Column::OpenId.eq(open_id))
                    .find_also_related(flow_user::Entity)
                    .expr_as(written, RECORDED)
                    .build(backend)
            })
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        if row.try_get::<i64>("", RECORDED)? != 1 {
            return Ok(None);
        }
        let (mut identity, account) =
            SelectTwoModel::<wx_user::Model, flow_user::Model>::from_raw_query_result(row)?;
        let Some(account) = account else {
            return Ok(None);
        };
        // What the update set (PostgreSQL's read sees the row as it was before it).
        identity.union_id = vouched
            .union_id
            .clone()
            .map(Into::into)
            .or(identity.union_id);
        identity.last_login_time = Some(now);
        identity.update_time = now;
        identity.del_flag = false;
        Ok(Some((to_identity(identity), to_account(account))))
    }

    /// [`UserRepo::record_identity`], with the identity's lock held.
    async fn record_identity_now(
        &self,
        vouched: &IdentityKey,
        profile: Option<&Profile>,
        now: i64,
    ) -> Result<(WeChatIdentity, Account, bool), RepoError> {
        let (appid, open_id) = (vouched.appid.as_str(), vouched.open_id.as_str());
        let existing = self.identity_row(appid, open_id).await?;
        let union_id: Option<String> = vouched
            .union_id
            .clone()
            .map(Into::into)
            .or_else(|| existing.as_ref().and_then(|e| e.union_id.clone()));

        // The account: by unionid when there is one, else the identity's own. An identity whose
        // account had no unionid yet brings that account along (it becomes the unionid's) when
        // no account has the unionid; otherwise it joins the unionid's account, and its old
        // account, left with no identity, is removed (see `drop_if_orphaned`).
        let previous = existing.as_ref().and_then(|e| e.flow_user_id);
        let mut account = match (&union_id, previous) {
            (Some(u), Some(id)) => match self.adopt_union(id, u, now).await? {
                Some(adopted) => adopted,
                None => self.account_for_union(u, now).await?,
            },
            (Some(u), None) => self.account_for_union(u, now).await?,
            (None, Some(id)) => match flow_user::Entity::find_by_id(id).one(&self.db).await? {
                Some(a) => a,
                None => self.new_account(now).await?,
            },
            (None, None) => self.new_account(now).await?,
        };
        // The identity's account had no unionid and another account has it: one person with
        // two accounts. Merge them (into the older), or queue the merge for an administrator
        // and leave the identity where it was.
        if let (Some(_), Some(previous)) = (&union_id, previous)
            && previous != account.id
            && let Some(old) = flow_user::Entity::find_by_id(previous)
                .one(&self.db)
                .await?
            && old.union_id.is_none()
        {
            let merging = match self.merge_policy {
                MergePolicy::Auto => merge::merge(&self.db, previous, account.id, now, "login")
                    .await
                    .map(|plan| plan.survivor_id),
                MergePolicy::Queue => merge::queue(&self.db, previous, account.id, now)
                    .await
                    .map(|_| previous),
            };
            let keep = match merging {
                Ok(keep) => keep,
                // One of the two went meanwhile (a merge or a deletion racing this login):
                // read everything again.
                Err(MergeError::NotFound(_)) => {
                    return Box::pin(self.record_identity_now(vouched, profile, now)).await;
                }
                Err(MergeError::Db(e)) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(error = %e, "accounts not merged");
                    account.id
                }
            };
            account = flow_user::Entity::find_by_id(keep)
                .one(&self.db)
                .await?
                .ok_or(RepoError::NotFound)?;
        }

        let is_new = existing.is_none();
        let mut row: wx_user::ActiveModel = match existing {
            Some(m) => m.into(),
            None => wx_user::ActiveModel {
                id: NotSet,
                appid: Set(appid.to_owned()),
                open_id: Set(open_id.to_owned()),
                create_time: Set(now),
                del_flag: Set(false),
                ..Default::default()
            },
        };
        row.union_id = Set(union_id);
        row.flow_user_id = Set(Some(account.id));
        row.last_login_time = Set(Some(now));
        row.update_time = Set(now);
        row.del_flag = Set(false);
        if let Some(p) = profile {
            row.nick_name = Set(p.nick_name.clone());
            row.avatar_url = Set(p.avatar_url.clone());
            row.sex = Set(p.sex);
            row.city = Set(p.city.clone());
            row.province = Set(p.province.clone());
            row.country = Set(p.country.clone());
            row.language = Set(p.language.clone());
        }
        if is_new {
            // Insert, then read by the unique (appid, open_id). A conflict on that key is the
            // other first login's row. (Not `ON CONFLICT DO NOTHING` and its row count: MySQL
            // counts a duplicate that changed nothing as one row.)
            let inserted = wx_user::Entity::insert(row).exec(&self.db).await;
            if let Err(e) = inserted {
                if !matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
                    return Err(e.into());
                }
                // Two first logins of one identity at once: the other insert won. An account
                // made for this attempt alone is left without identities: remove it, then
                // record the login again as a returning one.
                if previous.is_none() && account.union_id.is_none() {
                    self.drop_if_orphaned(account.id).await?;
                }
                return Box::pin(self.record_identity_now(vouched, profile, now))
                    .await
                    .map(|(i, a, _)| (i, a, false));
            }
        } else {
            row.update(&self.db).await?;
        }
        let saved = self
            .identity_row(appid, open_id)
            .await?
            .ok_or(RepoError::NotFound)?;
        // A merge may have removed the account between the read above and this write (it
        // moves identities first, and this write may have come after): read the account after
        // the write, and record the login again if it is gone.
        if flow_user::Entity::find_by_id(account.id)
            .one(&self.db)
            .await?
            .is_none()
        {
            return Box::pin(self.record_identity_now(vouched, profile, now))
                .await
                .map(|(i, a, _)| (i, a, is_new));
        }
        if let Some(previous) = previous
            && previous != account.id
        {
            self.drop_if_orphaned(previous).await?;
        }

        // The account shows the freshest profile WeChat gave.
        let account = if let Some(p) = profile {
            let mut a: flow_user::ActiveModel = account.into();
            if p.nick_name.is_some() {
                // A nickname WeChat itself reported needs no content check of ours.
                a.nick_name = Set(p.nick_name.clone());
                a.nick_name_status = Set(None);
            }
            if p.avatar_url.is_some() {
                a.avatar = Set(p.avatar_url.clone());
            }
            a.updated_at = Set(now);
            a.update(&self.db).await?
        } else {
            account
        };
        Ok((to_identity(saved), to_account(account), is_new))
    }
}

/// The live identities (not marked deleted) named by `keys`, with their accounts, in one
/// statement; one answer per key, in order. A key matches only the row stored with exactly that
/// appid and openid (MySQL's case-insensitive comparison may return others; they are not taken).
async fn read_identities(
    db: DatabaseConnection,
    keys: Vec<LockKey>,
) -> Vec<Result<Option<IdentityRow>, String>> {
    let mut distinct: Vec<&LockKey> = keys.iter().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let named = distinct
        .into_iter()
        .fold(Condition::any(), |any, (appid, open_id)| {
            any.add(
                Condition::all()
                    .add(wx_user::Column::Appid.eq(appid.as_str()))
                    .add(wx_user::Column::OpenId.eq(open_id.as_str())),
            )
        });
    let rows = wx_user::Entity::find()
        .filter(wx_user::Column::DelFlag.eq(false))
        .filter(named)
        .find_also_related(flow_user::Entity)
        .all(&db)
        .await;
    match rows {
        Ok(rows) => {
            let found: HashMap<LockKey, IdentityRow> = rows
                .into_iter()
                .map(|(identity, account)| {
                    (
                        (identity.appid.clone(), identity.open_id.clone()),
                        (identity, account),
                    )
                })
                .collect();
            keys.iter().map(|key| Ok(found.get(key).cloned())).collect()
        }
        Err(e) => {
            let e = e.to_string();
            keys.iter().map(|_| Err(e.clone())).collect()
        }
    }
}

fn to_identity(m: wx_user::Model) -> WeChatIdentity {
    WeChatIdentity {
        id: m.id,
        appid: m.appid,
        open_id: m.open_id,
        union_id: m.union_id,
        account_id: m.flow_user_id,
        nick_name: m.nick_name,
        avatar_url: m.avatar_url,
        sex: m.sex,
        city: m.city,
        province: m.province,
        country: m.country,
        language: m.language,
        mobile: m.mobile,
        mobile_source: m.mobile_source.as_deref().and_then(PhoneSource::parse),
        mobile_verified_at: m.mobile_verified_at,
    }
}

fn to_account(m: flow_user::Model) -> Account {
    Account {
        id: m.id,
        union_id: m.union_id,
        nick_name: m.nick_name,
        nick_name_status: m.nick_name_status,
        avatar: m.avatar,
        mobile: m.mobile,
        mobile_source: m.mobile_source.as_deref().and_then(PhoneSource::parse),
        mobile_verified_at: m.mobile_verified_at,
        mobile_pure: m.mobile_pure,
        mobile_country_code: m.mobile_country_code,
        disabled_at: m.disabled_at,
    }
}

#[async_trait]
impl UserRepo for SeaUserRepo {
    async fn find_identity(
        &self,
        appid: &str,
        open_id: &str,
    ) -> Result<Option<WeChatIdentity>, RepoError> {
        // (appid, open_id) is unique: no LIMIT needed (see `db::find_unique`).
        let select = wx_user::Entity::find()
            .filter(wx_user::Column::Appid.eq(appid))
            .filter(wx_user::Column::OpenId.eq(open_id))
            .filter(wx_user::Column::DelFlag.eq(false));
        Ok(crate::db::find_unique(select, &self.db)
            .await?
            .map(to_identity))
    }

    async fn record_identity(
        &self,
        vouched: &IdentityKey,
        profile: Option<&Profile>,
        now: i64,
    ) -> Result<(WeChatIdentity, Account, bool), RepoError> {
        let lock = self.identity_lock(vouched.appid.as_str(), vouched.open_id.as_str());
        let _recording = lock.lock().await;
        if profile.is_none()
            && let Some((identity, account)) = self.record_returning(vouched, now).await?
        {
            return Ok((identity, account, false));
        }
        self.record_identity_now(vouched, profile, now).await
    }

    async fn find_identity_with_account(
        &self,
        appid: &str,
        open_id: &str,
    ) -> Result<Option<(WeChatIdentity, Option<Account>)>, RepoError> {
        // One joined read instead of two (each statement is a round trip to the pool), shared
        // with the other token requests queued meanwhile.
        let key = (appid.to_owned(), open_id.to_owned());
        let found = match self.identity_reads.submit(key).await {
            Ok(Some(answer)) => answer,
            Ok(None) => Err("the identity reader stopped".to_owned()),
            Err(key) => read_identities(self.db.clone(), vec![key])
                .await
                .pop()
                .unwrap_or_else(|| Err("nothing was read".to_owned())),
        };
        Ok(found
            .map_err(|e| RepoError::Db(DbErr::Custom(e)))?
            .map(|(identity, account)| (to_identity(identity), account.map(to_account))))
    }

    async fn account(&self, id: i64) -> Result<Option<Account>, RepoError> {
        Ok(
            crate::db::find_unique(flow_user::Entity::find_by_id(id), &self.db)
                .await?
                .map(to_account),
        )
    }

    async fn follows_base_account(&self, account_id: i64) -> Result<Option<bool>, RepoError> {
        let base = entity::wx_app::Entity::find()
            .filter(entity::wx_app::Column::IsBase.eq(true))
            .all(&self.db)
            .await?
            .into_iter()
            .next();
        let Some(base) = base else {
            return Ok(None);
        };
        Ok(super::FollowerStore::new(self.db.clone())
            .account_subscribed(account_id, &base.appid)
            .await?)
    }

    async fn union_exists(&self, union_id: &str) -> Result<bool, RepoError> {
        Ok(self.find_account_by_union(union_id).await?.is_some())
    }

    async fn set_chosen_profile(
        &self,
        account_id: i64,
        chosen: &ChosenProfile,
        now: i64,
    ) -> Result<Account, RepoError> {
        let mut update = flow_user::Entity::update_many()
            .col_expr(flow_user::Column::UpdatedAt, Expr::value(now))
            .filter(flow_user::Column::Id.eq(account_id));
        if let Some((nick_name, status)) = &chosen.nick_name {
            update = update
                .col_expr(flow_user::Column::NickName, Expr::value(nick_name.clone()))
                .col_expr(
                    flow_user::Column::NickNameStatus,
                    Expr::value(status.stored().map(str::to_owned)),
                );
        }
        if let Some(avatar) = &chosen.avatar {
            update = update.col_expr(flow_user::Column::Avatar, Expr::value(avatar.clone()));
        }
        update.exec(&self.db).await?;
        self.account(account_id).await?.ok_or(RepoError::NotFound)
    }

    async fn settle_nick_name(
        &self,
        account_id: i64,
        nick_name: &str,
        settled: Option<NickNameStatus>,
        now: i64,
    ) -> Result<bool, RepoError> {
        let update = flow_user::Entity::update_many()
            .col_expr(flow_user::Column::UpdatedAt, Expr::value(now))
            .col_expr(
                flow_user::Column::NickNameStatus,
                Expr::value(settled.and_then(NickNameStatus::stored).map(str::to_owned)),
            );
        let update = match settled {
            Some(_) => update,
            None => update.col_expr(flow_user::Column::NickName, Expr::value(None::<String>)),
        };
        let changed = update
            .filter(flow_user::Column::Id.eq(account_id))
            .filter(flow_user::Column::NickName.eq(nick_name))
            .filter(flow_user::Column::NickNameStatus.eq(NickNameStatus::Pending.as_str()))
            .exec(&self.db)
            .await?;
        Ok(changed.rows_affected == 1)
    }

    async fn set_mobile(
        &self,
        appid: &str,
        open_id: &str,
        phone: &PhoneNumber,
        source: PhoneSource,
        now: i64,
    ) -> Result<(), RepoError> {
        let identity = wx_user::Entity::find()
            .filter(wx_user::Column::Appid.eq(appid))
            .filter(wx_user::Column::OpenId.eq(open_id))
            .one(&self.db)
            .await?
            .ok_or(RepoError::NotFound)?;
        let account_id = identity.flow_user_id;
        let mut row: wx_user::ActiveModel = identity.into();
        let mobile = &phone.phone_number;
        row.mobile = Set(Some(mobile.to_string()));
        row.mobile_source = Set(Some(source.as_str().to_owned()));
        row.mobile_verified_at = Set(Some(now));
        row.update_time = Set(now);
        row.update(&self.db).await?;
        if let Some(id) = account_id
            && let Some(a) = flow_user::Entity::find_by_id(id).one(&self.db).await?
        {
            let mut a: flow_user::ActiveModel = a.into();
            a.mobile = Set(Some(mobile.to_string()));
            a.mobile_source = Set(Some(source.as_str().to_owned()));
            a.mobile_verified_at = Set(Some(now));
            a.mobile_pure = Set(Some(phone.pure_phone_number.clone()));
            a.mobile_country_code = Set(Some(phone.country_code.clone()));
            a.updated_at = Set(now);
            a.update(&self.db).await?;
        }
        Ok(())
    }
}
