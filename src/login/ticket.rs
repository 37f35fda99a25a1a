//! Login tickets: single-use, 5-minute proofs that WeChat vouched for an identity moments ago.
//! wxauth mints one when a code exchange succeeds; the `flow` grant consumes it. Only the keyed
//! hash is stored, and consumption is one conditional UPDATE, so a ticket works once even under
//! concurrent use.

use std::sync::Arc;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter,
};

use entity::login_ticket;

use crate::clock::SharedClock;
use crate::vault::{Vault, random_token};

/// How long a ticket lives (seconds).
pub const TICKET_TTL: i64 = 300;

/// The identity a ticket vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketIdentity {
    pub appid: String,
    pub open_id: String,
    pub union_id: Option<String>,
}

/// Mints and consumes login tickets.
#[derive(Clone)]
pub struct LoginTickets {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
}

impl LoginTickets {
    pub fn new(db: DatabaseConnection, vault: Arc<Vault>, clock: SharedClock) -> Self {
        Self { db, vault, clock }
    }

    /// A new ticket for `identity` (shown once; stored hashed).
    pub async fn mint(&self, identity: &TicketIdentity) -> Result<String, DbErr> {
        let ticket = random_token(32);
        let now = self.clock.now();
        login_ticket::ActiveModel {
            ticket_hash: Set(self.vault.fingerprint(&ticket)),
            appid: Set(identity.appid.clone()),
            open_id: Set(identity.open_id.clone()),
            union_id: Set(identity.union_id.clone()),
            expires_at: Set(now + TICKET_TTL),
            used_at: Set(None),
            created_at: Set(now),
        }
        .insert(&self.db)
        .await?;
        Ok(ticket)
    }

    /// Spend `ticket` for exactly `identity`. `false` when it is unknown, used, expired or bound
    /// to another identity; a ticket presented for the wrong identity is spent all the same, so
    /// that guessing the identity gives no second try.
    pub async fn consume(&self, ticket: &str, identity: &TicketIdentity) -> Result<bool, DbErr> {
        let now = self.clock.now();
        let hash = self.vault.fingerprint(ticket);
        let spent = login_ticket::Entity::update_many()
            .col_expr(login_ticket::Column::UsedAt, Expr::value(now))
            .filter(login_ticket::Column::TicketHash.eq(hash.as_str()))
            .filter(login_ticket::Column::UsedAt.is_null())
            .filter(login_ticket::Column::ExpiresAt.gt(now))
            .exec(&self.db)
            .await?;
        if spent.rows_affected != 1 {
            return Ok(false);
        }
        let row = crate::db::find_unique(login_ticket::Entity::find_by_id(hash), &self.db).await?;
        Ok(row.is_some_and(|r| {
            r.appid == identity.appid
                && r.open_id == identity.open_id
                && r.union_id == identity.union_id
        }))
    }
}
