//! Account merges as administrators see them: what a merge of two accounts would move (the
//! dry run), merging them, and the merges a login queued under `WXAUTH_MERGE_POLICY=queue`,
//! approved or rejected here. The merge itself is [`crate::users::merge`].

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;

use entity::account_merge;

use crate::audit::{AuditEvent, AuditKind, Outcome};
use crate::users::merge::{self, MergeError, MergePlan, PENDING, REJECTED};

use super::{Actor, Admin, AdminError};

/// A merge waiting for an administrator, with what it would move now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PendingMerge {
    pub id: i64,
    pub requested_at: i64,
    pub union_id: String,
    pub plan: MergePlan,
}

impl From<MergeError> for AdminError {
    fn from(e: MergeError) -> Self {
        match e {
            MergeError::NotFound(id) => AdminError::NotFound(format!("no account {id}")),
            e @ (MergeError::SameAccount | MergeError::DifferentPeople(..)) => {
                AdminError::Conflict(e.to_string())
            }
            MergeError::Db(e) => AdminError::Db(e),
        }
    }
}

impl Admin {
    /// What merging accounts `a` and `b` would move; changes nothing.
    pub async fn plan_merge(&self, a: i64, b: i64) -> Result<MergePlan, AdminError> {
        Ok(merge::plan(&self.db, a, b, self.clock.now()).await?)
    }

    /// Merge accounts `a` and `b` into the older of the two.
    pub async fn merge_users(
        &self,
        actor: &Actor,
        a: i64,
        b: i64,
    ) -> Result<MergePlan, AdminError> {
        Ok(merge::merge(&self.db, a, b, self.clock.now(), actor.as_str()).await?)
    }

    /// The merges waiting for a decision, oldest first.
    pub async fn pending_merges(&self) -> Result<Vec<PendingMerge>, AdminError> {
        let rows = account_merge::Entity::find()
            .filter(account_merge::Column::Status.eq(PENDING))
            .order_by_asc(account_merge::Column::Id)
            .all(&self.db)
            .await?;
        let now = self.clock.now();
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            // A merge one of whose accounts went meanwhile is left out (it can only be
            // rejected).
            if let Ok(plan) = merge::plan(&self.db, row.survivor_id, row.merged_id, now).await {
                pending.push(PendingMerge {
                    id: row.id,
                    requested_at: row.requested_at,
                    union_id: row.union_id,
                    plan,
                });
            }
        }
        Ok(pending)
    }

    async fn pending_merge(&self, id: i64) -> Result<account_merge::Model, AdminError> {
        account_merge::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .filter(|m| m.status == PENDING)
            .ok_or_else(|| AdminError::NotFound(format!("no pending merge {id}")))
    }

    /// Carry out a queued merge.
    pub async fn approve_merge(&self, actor: &Actor, id: i64) -> Result<MergePlan, AdminError> {
        let pending = self.pending_merge(id).await?;
        self.merge_users(actor, pending.survivor_id, pending.merged_id)
            .await
    }

    /// Refuse a queued merge: the two accounts stay apart, and logins do not queue it again.
    pub async fn reject_merge(&self, actor: &Actor, id: i64) -> Result<(), AdminError> {
        let pending = self.pending_merge(id).await?;
        let now = self.clock.now();
        let decided = account_merge::Entity::update_many()
            .col_expr(account_merge::Column::Status, Expr::value(REJECTED))
            .col_expr(account_merge::Column::DecidedAt, Expr::value(now))
            .col_expr(
                account_merge::Column::DecidedBy,
                Expr::value(actor.as_str()),
            )
            .filter(account_merge::Column::Id.eq(id))
            .filter(account_merge::Column::Status.eq(PENDING))
            .exec(&self.db)
            .await?;
        if decided.rows_affected == 0 {
            return Err(AdminError::NotFound(format!("no pending merge {id}")));
        }
        self.record(
            actor,
            AuditEvent::new(AuditKind::AccountMerged, Outcome::Refused)
                .account(pending.survivor_id)
                .subject(pending.merged_id.to_string())
                .detail("merged_account_id", pending.merged_id),
            "rejected",
        )
        .await;
        Ok(())
    }
}
