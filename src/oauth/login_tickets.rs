//! Login tickets: single-use, 5-minute proofs that WeChat vouched for an identity moments ago.
//! They are the `flow` grant's proof, so they live on the OAuth side: the login side mints one
//! when a code exchange succeeds; the `flow` grant consumes it. Only the keyed
//! hash is stored, and consumption is one conditional UPDATE, so a ticket works once even under
//! concurrent use.
//!
//! A ticket may name the client that can redeem it (`clientId` on `/api/wechat/ma/session` and
//! on `entryBuildUrl`); any other client is refused. A ticket minted without one (the seed's
//! front ends name no client) can be redeemed by any client allowed the `flow` grant.

use std::sync::Arc;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter,
};

use entity::login_ticket;

use crate::clock::SharedClock;
use crate::oauth::ClientRegistry;
use crate::oauth::GrantType;
use crate::users::IdentityKey;
use crate::vault::{Vault, random_token};

/// How long a ticket lives (seconds).
pub const TICKET_TTL: i64 = 300;

/// What redeeming a ticket found. Everything but [`Redeemed::Accepted`] is a refusal, and the
/// ticket is spent in every case where it existed and was live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeemed {
    Accepted,
    /// Unknown, already used or expired.
    NotLive,
    /// Minted for another identity.
    OtherIdentity,
    /// Minted for another client.
    OtherClient,
}

impl Redeemed {
    /// A name for the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::NotLive => "unknown_used_or_expired",
            Self::OtherIdentity => "other_identity",
            Self::OtherClient => "other_client",
        }
    }
}

/// Mints and consumes login tickets.
#[derive(Clone)]
pub struct LoginTickets {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
    clients: ClientRegistry,
}

impl LoginTickets {
    pub fn new(
        db: DatabaseConnection,
        vault: Arc<Vault>,
        clock: SharedClock,
        clients: ClientRegistry,
    ) -> Self {
        Self {
            db,
            vault,
            clock,
            clients,
        }
    }

    /// Whether `client_id` names a client that can redeem login tickets (it exists and has the
    /// `flow` grant): checked before a sign-in starts, so that a typo fails at once rather than
    /// after the user went through WeChat.
    pub async fn client_may_redeem(&self, client_id: &str) -> Result<bool, DbErr> {
        Ok(self
            .clients
            .get(client_id)
            .await?
            .is_some_and(|c| c.allows_grant(GrantType::Flow)))
    }

    /// A new ticket for `identity` that any client allowed the `flow` grant may redeem.
    pub async fn mint(&self, identity: &IdentityKey) -> Result<String, DbErr> {
        self.mint_for(identity, None).await
    }

    /// A new ticket for `identity`, redeemable only by `client_id` when given (shown once;
    /// stored hashed).
    pub async fn mint_for(
        &self,
        identity: &IdentityKey,
        client_id: Option<&str>,
    ) -> Result<String, DbErr> {
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
            client_id: Set(client_id.map(str::to_owned)),
        }
        .insert(&self.db)
        .await?;
        Ok(ticket)
    }

    /// Spend `ticket` for exactly `identity`, redeemed by `client_id`. A ticket presented for
    /// the wrong identity or by the wrong client is spent all the same, so that guessing gives
    /// no second try (and a leaked ticket tried by a foreign client is dead for everyone).
    pub async fn redeem(
        &self,
        ticket: &str,
        identity: &IdentityKey,
        client_id: &str,
    ) -> Result<Redeemed, DbErr> {
        self.spend(ticket, identity, Some(client_id)).await
    }

    /// Spend `ticket` for exactly `identity` with no client named: only a ticket minted for no
    /// client is accepted.
    pub async fn consume(&self, ticket: &str, identity: &IdentityKey) -> Result<bool, DbErr> {
        Ok(self.spend(ticket, identity, None).await? == Redeemed::Accepted)
    }

    async fn spend(
        &self,
        ticket: &str,
        identity: &IdentityKey,
        client_id: Option<&str>,
    ) -> Result<Redeemed, DbErr> {
        let now = self.clock.now();
        let hash = self.vault.fingerprint(ticket);
        let update = login_ticket::Entity::update_many()
            .col_expr(login_ticket::Column::UsedAt, Expr::value(now))
            .filter(login_ticket::Column::TicketHash.eq(hash.as_str()))
            .filter(login_ticket::Column::UsedAt.is_null())
            .filter(login_ticket::Column::ExpiresAt.gt(now));
        let Some(row) =
            crate::db::spend_once(&self.db, update, login_ticket::Entity::find_by_id(hash)).await?
        else {
            return Ok(Redeemed::NotLive);
        };
        if row.appid != identity.appid
            || row.open_id != identity.open_id
            || row.union_id != identity.union_id
        {
            return Ok(Redeemed::OtherIdentity);
        }
        match (row.client_id.as_deref(), client_id) {
            (None, _) => Ok(Redeemed::Accepted),
            (Some(minted_for), Some(redeemer)) if minted_for == redeemer => Ok(Redeemed::Accepted),
            _ => Ok(Redeemed::OtherClient),
        }
    }
}
