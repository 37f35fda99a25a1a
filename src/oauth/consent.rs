//! Remembered consents: which scopes an account let a (third-party) client have, so that the next
//! authorization for the same or fewer scopes is silent.

use std::collections::BTreeSet;

use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, DatabaseConnection, DbErr, EntityTrait};

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

    async fn granted(
        &self,
        account_id: i64,
        client_id: &str,
    ) -> Result<Option<consent::Model>, DbErr> {
        consent::Entity::find_by_id((account_id, client_id.to_owned()))
            .one(&self.db)
            .await
    }

    /// Whether the account already let the client have every scope in `scope`.
    pub async fn covers(
        &self,
        account_id: i64,
        client_id: &str,
        scope: &[String],
    ) -> Result<bool, DbErr> {
        Ok(match self.granted(account_id, client_id).await? {
            Some(row) => {
                let granted: BTreeSet<&str> = row.scope.split(' ').collect();
                scope.iter().all(|s| granted.contains(s.as_str()))
            }
            None => false,
        })
    }

    /// Add `scope` to what the account let the client have.
    pub async fn remember(
        &self,
        account_id: i64,
        client_id: &str,
        scope: &[String],
    ) -> Result<(), DbErr> {
        let now = self.clock.now();
        match self.granted(account_id, client_id).await? {
            Some(row) => {
                let mut all: BTreeSet<String> = row
                    .scope
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                all.extend(scope.iter().cloned());
                let mut row: consent::ActiveModel = row.into();
                row.scope = Set(all.into_iter().collect::<Vec<_>>().join(" "));
                row.granted_at = Set(now);
                row.update(&self.db).await?;
            }
            None => {
                let all: BTreeSet<&String> = scope.iter().collect();
                consent::ActiveModel {
                    account_id: Set(account_id),
                    client_id: Set(client_id.to_owned()),
                    scope: Set(all.into_iter().cloned().collect::<Vec<_>>().join(" ")),
                    granted_at: Set(now),
                }
                .insert(&self.db)
                .await?;
            }
        }
        Ok(())
    }
}
