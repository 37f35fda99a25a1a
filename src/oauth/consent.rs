//! Remembered consents: which scopes an account let a (third-party) client have, so that the next
//! authorization for the same or fewer scopes is silent. One row per scope: remembering only
//! inserts (duplicates ignored), so consents given at once in two tabs never overwrite each other.

use std::collections::BTreeSet;

use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use entity::consent;

use crate::clock::SharedClock;

/// Consent storage.
#[derive(Clone)]
pub struct Consents {
    db: DatabaseConnection,
    clock: SharedClock,
}

impl Consents {
    pub fn new(db: DatabaseConnection, clock: SharedClock) -> Self {
        Self { db, clock }
    }

    /// Whether the account already let the client have every scope in `scope`.
    pub async fn covers(
        &self,
        account_id: i64,
        client_id: &str,
        scope: &[String],
    ) -> Result<bool, DbErr> {
        let granted: BTreeSet<String> = consent::Entity::find()
            .filter(consent::Column::AccountId.eq(account_id))
            .filter(consent::Column::ClientId.eq(client_id))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| row.scope)
            .collect();
        Ok(scope.iter().all(|s| granted.contains(s)))
    }

    /// Add `scope` to what the account let the client have.
    pub async fn remember(
        &self,
        account_id: i64,
        client_id: &str,
        scope: &[String],
    ) -> Result<(), DbErr> {
        let now = self.clock.now();
        let rows: Vec<consent::ActiveModel> = scope
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|s| consent::ActiveModel {
                account_id: Set(account_id),
                client_id: Set(client_id.to_owned()),
                scope: Set(s.clone()),
                granted_at: Set(now),
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        consent::Entity::insert_many(rows)
            .on_conflict_do_nothing()
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }
}
