//! The admin role: which accounts may sign in to the console at `/admin`. Granted and revoked by
//! the `wxauth admin` commands, the admin API and the console itself, each change audited as
//! `account_changed` (action `grant_admin` / `revoke_admin`) naming the actor. A disabled
//! account keeps its role but is not let in while disabled.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::Serialize;

use entity::{admin_role, flow_user};

use crate::audit::{AuditEvent, AuditKind, Outcome};

use super::{Actor, Admin, AdminError};

/// Which account: by its number or by its WeChat unionid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountRef {
    Id(i64),
    UnionId(String),
}

/// An account holding the admin role.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AdminView {
    pub account_id: i64,
    pub union_id: Option<String>,
    pub nick_name: Option<String>,
    /// Unix seconds.
    pub granted_at: i64,
    /// Who granted it (`cli:USER`, `admin-token`, `console:account:ID`, ...).
    pub granted_by: String,
    /// A disabled admin cannot sign in to the console.
    pub disabled: bool,
}

fn admin_view(role: admin_role::Model, account: Option<&flow_user::Model>) -> AdminView {
    AdminView {
        account_id: role.account_id,
        union_id: account.and_then(|a| a.union_id.clone()),
        nick_name: account.and_then(|a| a.nick_name.clone()),
        granted_at: role.granted_at,
        granted_by: role.granted_by,
        disabled: account.is_some_and(|a| a.disabled_at.is_some()),
    }
}

impl Admin {
    /// The account `which` names.
    async fn resolve(&self, which: &AccountRef) -> Result<flow_user::Model, AdminError> {
        let found = match which {
            AccountRef::Id(id) => flow_user::Entity::find_by_id(*id).one(&self.db).await?,
            AccountRef::UnionId(union_id) => {
                let union_id = union_id.trim();
                if union_id.is_empty() || union_id.chars().count() > 128 {
                    return Err(AdminError::invalid("union_id", "must be 1-128 characters"));
                }
                flow_user::Entity::find()
                    .filter(flow_user::Column::UnionId.eq(union_id))
                    .one(&self.db)
                    .await?
            }
        };
        found.ok_or_else(|| match which {
            AccountRef::Id(id) => AdminError::NotFound(format!("no account {id}")),
            AccountRef::UnionId(u) => {
                AdminError::NotFound(format!("no account with unionid {u:?}"))
            }
        })
    }

    /// Every admin, by account number.
    pub async fn admins(&self) -> Result<Vec<AdminView>, AdminError> {
        let roles = admin_role::Entity::find()
            .order_by_asc(admin_role::Column::AccountId)
            .all(&self.db)
            .await?;
        let ids: Vec<i64> = roles.iter().map(|r| r.account_id).collect();
        let accounts = flow_user::Entity::find()
            .filter(flow_user::Column::Id.is_in(ids))
            .all(&self.db)
            .await?;
        Ok(roles
            .into_iter()
            .map(|role| {
                let account = accounts.iter().find(|a| a.id == role.account_id);
                admin_view(role, account)
            })
            .collect())
    }

    /// Give an account the admin role (granting it again changes nothing and is not audited).
    pub async fn grant_admin(
        &self,
        actor: &Actor,
        which: &AccountRef,
    ) -> Result<AdminView, AdminError> {
        let account = self.resolve(which).await?;
        if let Some(role) = admin_role::Entity::find_by_id(account.id)
            .one(&self.db)
            .await?
        {
            return Ok(admin_view(role, Some(&account)));
        }
        let row = admin_role::ActiveModel {
            account_id: Set(account.id),
            granted_at: Set(self.clock.now()),
            granted_by: Set(actor.as_str().to_owned()),
        };
        // Two grants at once leave one row, the first one's (the other inserts nothing).
        admin_role::Entity::insert(row)
            .on_conflict_do_nothing_on([admin_role::Column::AccountId])
            .exec_without_returning(&self.db)
            .await?;
        self.record(
            actor,
            AuditEvent::new(AuditKind::AccountChanged, Outcome::Ok).account(account.id),
            "grant_admin",
        )
        .await;
        let role = admin_role::Entity::find_by_id(account.id)
            .one(&self.db)
            .await?
            .ok_or_else(|| AdminError::Internal("the granted role is gone".into()))?;
        Ok(admin_view(role, Some(&account)))
    }

    /// Take the admin role from an account; its console sessions end at their next request.
    pub async fn revoke_admin(&self, actor: &Actor, which: &AccountRef) -> Result<(), AdminError> {
        let account = self.resolve(which).await?;
        let deleted = admin_role::Entity::delete_by_id(account.id)
            .exec(&self.db)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(AdminError::NotFound(format!(
                "account {} is not an admin",
                account.id
            )));
        }
        self.record(
            actor,
            AuditEvent::new(AuditKind::AccountChanged, Outcome::Ok).account(account.id),
            "revoke_admin",
        )
        .await;
        Ok(())
    }

    /// Whether `account_id` may use the console now: it holds the role and is not disabled.
    pub async fn is_active_admin(&self, account_id: i64) -> Result<bool, AdminError> {
        let Some(_) = admin_role::Entity::find_by_id(account_id)
            .one(&self.db)
            .await?
        else {
            return Ok(false);
        };
        Ok(flow_user::Entity::find_by_id(account_id)
            .one(&self.db)
            .await?
            .is_some_and(|a| a.disabled_at.is_none()))
    }
}
