//! Merging two accounts that turned out to be one person. A Mini Program used before its Open
//! Platform binding has openid-only accounts; when WeChat later gives one of their identities a
//! unionid another account already owns, the two become one.
//!
//! The older account survives and receives the other's identities, consents, phone number and
//! profile fields (where it has none of its own); the other account's refresh tokens (with the
//! access tokens they produced) are revoked, its browser sessions and unspent codes end, and
//! the account itself is removed. All of it, with the `account_merged` audit event and the
//! `user.merged` webhook, is one transaction. [`plan`] says what a merge would move without
//! moving it (`wxauth user merge --dry-run`).

use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, TransactionTrait,
};
use serde::Serialize;

use entity::{
    account_merge, admin_role, authorization_code, browser_session, consent, flow_user,
    refresh_token_family, wx_user,
};

use crate::audit::{AuditEvent, AuditKind, Outcome};
use crate::db::revocation::{self, Families};
use crate::webhooks::{self, WebhookEvent};

/// `account_merge.status` of a merge waiting for an administrator.
pub const PENDING: &str = "pending";
/// `account_merge.status` of a merge carried out.
pub const MERGED: &str = "merged";
/// `account_merge.status` of a merge an administrator refused.
pub const REJECTED: &str = "rejected";

/// Why a merge could not be planned or carried out.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no account {0}")]
    NotFound(i64),
    #[error("an account cannot be merged with itself")]
    SameAccount,
    /// Both accounts have a unionid, and they differ: two people, not one.
    #[error("accounts {0} and {1} have different unionids: they are two people")]
    DifferentPeople(i64, i64),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// What a merge moves (or would move): ids, counts and field names, never a secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct MergePlan {
    /// The older account, which keeps everything.
    pub survivor_id: i64,
    /// The account merged into it and then removed.
    pub merged_id: i64,
    /// The unionid the survivor ends with.
    pub union_id: Option<String>,
    /// The identities (`appid/openid`) that move to the survivor.
    pub identities: Vec<String>,
    /// The consents (`client_id scope`) that move to the survivor.
    pub consents: Vec<String>,
    /// The account fields the survivor takes from the merged account (it had none of its own).
    pub fields: Vec<String>,
    /// Live refresh-token families of the merged account that are revoked.
    pub revoked_families: u64,
    /// Live browser sessions of the merged account that end.
    pub ended_sessions: u64,
}

/// The survivor of `a` and `b`: the older (created first; the smaller id on a tie).
fn survivor_first(
    a: flow_user::Model,
    b: flow_user::Model,
) -> (flow_user::Model, flow_user::Model) {
    if (a.created_at, a.id) <= (b.created_at, b.id) {
        (a, b)
    } else {
        (b, a)
    }
}

async fn account<C: ConnectionTrait>(conn: &C, id: i64) -> Result<flow_user::Model, MergeError> {
    flow_user::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(MergeError::NotFound(id))
}

/// What merging `a` and `b` would do, read on `conn`; changes nothing.
pub async fn plan<C: ConnectionTrait>(
    conn: &C,
    a: i64,
    b: i64,
    now: i64,
) -> Result<MergePlan, MergeError> {
    let (survivor, merged) = pair(conn, a, b).await?;
    let identities = wx_user::Entity::find()
        .filter(wx_user::Column::FlowUserId.eq(merged.id))
        .order_by_asc(wx_user::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(|i| format!("{}/{}", i.appid, i.open_id))
        .collect();
    let consents = consent::Entity::find()
        .filter(consent::Column::AccountId.eq(merged.id))
        .order_by_asc(consent::Column::ClientId)
        .order_by_asc(consent::Column::Scope)
        .all(conn)
        .await?
        .into_iter()
        .map(|c| format!("{} {}", c.client_id, c.scope))
        .collect();
    let revoked_families = refresh_token_family::Entity::find()
        .filter(refresh_token_family::Column::OwnerId.eq(merged.id.to_string()))
        .filter(refresh_token_family::Column::RevokedAt.is_null())
        .filter(refresh_token_family::Column::ExpiresAt.gt(now))
        .count(conn)
        .await?;
    let ended_sessions = browser_session::Entity::find()
        .filter(browser_session::Column::AccountId.eq(merged.id))
        .filter(browser_session::Column::ExpiresAt.gt(now))
        .count(conn)
        .await?;
    let (_, fields) = merged_fields(&survivor, &merged);
    Ok(MergePlan {
        survivor_id: survivor.id,
        merged_id: merged.id,
        union_id: survivor.union_id.clone().or(merged.union_id.clone()),
        identities,
        consents,
        fields,
        revoked_families,
        ended_sessions,
    })
}

/// The two accounts, survivor first; refused when they are one, or two people.
async fn pair<C: ConnectionTrait>(
    conn: &C,
    a: i64,
    b: i64,
) -> Result<(flow_user::Model, flow_user::Model), MergeError> {
    if a == b {
        return Err(MergeError::SameAccount);
    }
    let (a, b) = (account(conn, a).await?, account(conn, b).await?);
    if let (Some(ua), Some(ub)) = (&a.union_id, &b.union_id)
        && ua != ub
    {
        return Err(MergeError::DifferentPeople(a.id, b.id));
    }
    Ok(survivor_first(a, b))
}

/// The survivor's row with what it takes from `merged`, and the names of the fields taken.
fn merged_fields(
    survivor: &flow_user::Model,
    merged: &flow_user::Model,
) -> (flow_user::ActiveModel, Vec<String>) {
    let mut row = flow_user::ActiveModel {
        id: Set(survivor.id),
        ..Default::default()
    };
    let mut fields = Vec::new();
    if survivor.union_id.is_none() && merged.union_id.is_some() {
        row.union_id = Set(merged.union_id.clone());
        fields.push("union_id".to_owned());
    }
    if survivor.nick_name.is_none() && merged.nick_name.is_some() {
        row.nick_name = Set(merged.nick_name.clone());
        fields.push("nick_name".to_owned());
    }
    if survivor.avatar.is_none() && merged.avatar.is_some() {
        row.avatar = Set(merged.avatar.clone());
        fields.push("avatar".to_owned());
    }
    // The phone moves as a whole: number, parts, source and when it was verified.
    if survivor.mobile.is_none() && merged.mobile.is_some() {
        row.mobile = Set(merged.mobile.clone());
        row.mobile_source = Set(merged.mobile_source.clone());
        row.mobile_verified_at = Set(merged.mobile_verified_at);
        row.mobile_pure = Set(merged.mobile_pure.clone());
        row.mobile_country_code = Set(merged.mobile_country_code.clone());
        fields.push("mobile".to_owned());
    }
    (row, fields)
}

/// Merge accounts `a` and `b` (in either order: the older survives) in one transaction, as
/// `actor` (`login` when a sign-in found them to be one person). Returns what moved.
pub async fn merge(
    db: &DatabaseConnection,
    a: i64,
    b: i64,
    now: i64,
    actor: &str,
) -> Result<MergePlan, MergeError> {
    let txn = db.begin().await?;
    lock_accounts(&txn, a, b, now).await?;
    let plan = plan(&txn, a, b, now).await?;
    let survivor = account(&txn, plan.survivor_id).await?;
    let merged = account(&txn, plan.merged_id).await?;
    wx_user::Entity::update_many()
        .col_expr(wx_user::Column::FlowUserId, Expr::value(survivor.id))
        .col_expr(wx_user::Column::UpdateTime, Expr::value(now))
        .filter(wx_user::Column::FlowUserId.eq(merged.id))
        .exec(&txn)
        .await?;
    let consents = consent::Entity::find()
        .filter(consent::Column::AccountId.eq(merged.id))
        .all(&txn)
        .await?;
    if !consents.is_empty() {
        consent::Entity::insert_many(consents.into_iter().map(|c| consent::ActiveModel {
            account_id: Set(survivor.id),
            client_id: Set(c.client_id),
            scope: Set(c.scope),
            granted_at: Set(c.granted_at),
        }))
        .on_conflict_do_nothing()
        .exec_without_returning(&txn)
        .await?;
        consent::Entity::delete_many()
            .filter(consent::Column::AccountId.eq(merged.id))
            .exec(&txn)
            .await?;
    }
    // Everything that points at the merged account has moved (rows that reference it may be
    // removed with it); now it goes, and its unionid is free for the survivor.
    let gone = flow_user::Entity::delete_many()
        .filter(flow_user::Column::Id.eq(merged.id))
        .exec(&txn)
        .await?;
    if gone.rows_affected != 1 {
        txn.rollback().await?;
        return Err(MergeError::NotFound(merged.id));
    }
    let (mut row, _) = merged_fields(&survivor, &merged);
    row.updated_at = Set(now);
    flow_user::Entity::update(row).exec(&txn).await?;
    revoke_owner(&txn, merged.id, now).await?;
    browser_session::Entity::delete_many()
        .filter(browser_session::Column::AccountId.eq(merged.id))
        .exec(&txn)
        .await?;
    authorization_code::Entity::delete_many()
        .filter(authorization_code::Column::OwnerId.eq(merged.id.to_string()))
        .filter(authorization_code::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    admin_role::Entity::delete_by_id(merged.id)
        .exec(&txn)
        .await?;
    // Any merge of these two waiting for an administrator is now done.
    account_merge::Entity::update_many()
        .col_expr(account_merge::Column::Status, Expr::value(MERGED))
        .col_expr(account_merge::Column::DecidedAt, Expr::value(now))
        .col_expr(account_merge::Column::DecidedBy, Expr::value(actor))
        .filter(account_merge::Column::Status.eq(PENDING))
        .filter(
            sea_orm::Condition::any()
                .add(account_merge::Column::MergedId.eq(merged.id))
                .add(account_merge::Column::SurvivorId.eq(merged.id)),
        )
        .exec(&txn)
        .await?;
    let event = merge_event(&plan, actor, "merged");
    crate::audit::record_in(&txn, event.clone(), now).await?;
    webhooks::enqueue(
        &txn,
        &WebhookEvent::UserMerged {
            survivor_id: survivor.id,
            merged_id: merged.id,
        },
        now,
    )
    .await?;
    txn.commit().await?;
    crate::audit::count_event(&event);
    // A token issuance that read the merged account before the commit may have written its
    // family after the revocation above: sweep once more now that the account is gone (the
    // issuer checks the account after its write, so one of the two sees the other).
    revoke_owner(db, merged.id, now).await?;
    Ok(plan)
}

fn merge_event(plan: &MergePlan, actor: &str, action: &str) -> AuditEvent {
    AuditEvent::new(AuditKind::AccountMerged, Outcome::Ok)
        .account(plan.survivor_id)
        .subject(plan.merged_id.to_string())
        .actor(actor)
        .detail("action", action)
        .detail("survivor_account_id", plan.survivor_id)
        .detail("merged_account_id", plan.merged_id)
        .detail("identities", plan.identities.len())
        .detail("revoked_families", plan.revoked_families)
}

/// Queue the merge of `a` and `b` for an administrator (unless it is queued already, or an
/// administrator refused it). Returns the plan as it stands now.
pub async fn queue(
    db: &DatabaseConnection,
    a: i64,
    b: i64,
    now: i64,
) -> Result<MergePlan, MergeError> {
    let txn = db.begin().await?;
    lock_accounts(&txn, a, b, now).await?;
    let plan = plan(&txn, a, b, now).await?;
    let waiting = account_merge::Entity::find()
        .filter(account_merge::Column::SurvivorId.eq(plan.survivor_id))
        .filter(account_merge::Column::MergedId.eq(plan.merged_id))
        .filter(account_merge::Column::Status.is_in([PENDING, REJECTED]))
        .count(&txn)
        .await?;
    if waiting == 0 {
        account_merge::Entity::insert(account_merge::ActiveModel {
            id: NotSet,
            survivor_id: Set(plan.survivor_id),
            merged_id: Set(plan.merged_id),
            union_id: Set(plan.union_id.clone().unwrap_or_default()),
            status: Set(PENDING.to_owned()),
            requested_at: Set(now),
            decided_at: Set(None),
            decided_by: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        let event = merge_event(&plan, "login", "queued");
        crate::audit::record_in(&txn, event.clone(), now).await?;
        txn.commit().await?;
        crate::audit::count_event(&event);
    } else {
        txn.rollback().await?;
    }
    Ok(plan)
}

/// Begin `txn` with a write to both accounts' rows: the transaction holds the write lock (SQLite)
/// or the rows (PostgreSQL, MySQL) before it reads anything, so a merge, a queueing and a
/// disable of the same accounts take turns, and SQLite never has to upgrade a stale read
/// snapshot (which fails at once with `SQLITE_BUSY_SNAPSHOT`).
async fn lock_accounts<C: ConnectionTrait>(
    conn: &C,
    a: i64,
    b: i64,
    now: i64,
) -> Result<(), DbErr> {
    flow_user::Entity::update_many()
        .col_expr(flow_user::Column::UpdatedAt, Expr::value(now))
        .filter(flow_user::Column::Id.is_in([a, b]))
        .exec(conn)
        .await?;
    Ok(())
}

/// Revoke every refresh-token family of account `owner` on `conn`, with the access tokens they
/// produced that are still live.
async fn revoke_owner<C: ConnectionTrait>(conn: &C, owner: i64, now: i64) -> Result<(), DbErr> {
    let owner = owner.to_string();
    revocation::revoke_families(conn, Families::OfOwner(&owner), now).await
}
