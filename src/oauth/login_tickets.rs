//! Login tickets: single-use, 5-minute proofs that WeChat vouched for an identity moments ago.
//! They are the `flow` grant's proof, so they live on the OAuth side: the login side mints one
//! when a code exchange succeeds; the `flow` grant consumes it. Only the keyed
//! hash is stored, and consumption is one conditional UPDATE, so a ticket works once even under
//! concurrent use. On SQLite and PostgreSQL that UPDATE is a group commit
//! ([`crate::group_commit`]): under load one statement spends the tickets of every request that
//! arrived while the previous one was being written, `RETURNING` the rows, and each row goes to
//! the first request in the batch that presented it (a second presentation of the same ticket
//! in the batch finds it spent, as it would a statement later).
//!
//! A ticket may name the client that can redeem it (`clientId` on `/api/wechat/ma/session` and
//! on `entryBuildUrl`); any other client is refused. A ticket minted without one (the seed's
//! front ends name no client) can be redeemed by any client allowed the `flow` grant.
//!
//! **Web-view tickets** are a second kind, for the H5 page a Mini Program opens in its
//! `<web-view>`: minted from a live Mini Program session for one client, they live
//! [`WEB_VIEW_TICKET_TTL`] seconds and are redeemed with the ticket alone (the page does not
//! know, and should not carry, the openid): by the `flow` grant, or as the `login_hint` of an
//! authorization request. They start with [`WEB_VIEW_TICKET_PREFIX`], so that a `login_hint`
//! can be told apart from an ordinary hint. Neither kind is accepted where the other is.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter,
};

use entity::login_ticket;

use crate::clock::SharedClock;
use crate::db_error::SharedDbErr;
use crate::group_commit::{GroupCommit, write_through};
use crate::oauth::ClientRegistry;
use crate::oauth::GrantType;
use crate::users::IdentityKey;
use crate::vault::{Vault, random_token};

/// How long a ticket lives (seconds).
pub const TICKET_TTL: i64 = 300;
/// How long a web-view ticket lives (seconds): the Mini Program opens the page at once.
pub const WEB_VIEW_TICKET_TTL: i64 = 60;
/// What every web-view ticket starts with.
pub const WEB_VIEW_TICKET_PREFIX: &str = "wvt.";
/// The stored kinds.
const KIND_LOGIN: &str = "login";
const KIND_WEB_VIEW: &str = "web_view";

/// Whether `value` has the shape of a web-view ticket (say, a `login_hint` that is one).
pub fn is_web_view_ticket(value: &str) -> bool {
    value.starts_with(WEB_VIEW_TICKET_PREFIX)
}

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

/// A ticket presented for spending: its keyed hash, its kind, and when.
struct Presented {
    hash: String,
    kind: &'static str,
    now: i64,
}

/// The row a presented ticket spent, if it did.
type Spent = Result<Option<login_ticket::Model>, SharedDbErr>;

/// At most this many tickets are spent by one statement.
const SPENT_PER_STATEMENT: usize = 64;
/// Presented tickets queued for the group commit before a request waits for room.
const SPENDS_QUEUED: usize = 1024;

/// Mints and consumes login tickets.
#[derive(Clone)]
pub struct LoginTickets {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
    clients: ClientRegistry,
    /// The group commit of spends (`None` on MySQL, which has no `RETURNING`).
    spends: Option<GroupCommit<Presented, Spent>>,
}

impl LoginTickets {
    pub fn new(
        db: DatabaseConnection,
        vault: Arc<Vault>,
        clock: SharedClock,
        clients: ClientRegistry,
    ) -> Self {
        let writer = db.clone();
        let spends = db.support_returning().then(|| {
            GroupCommit::start(SPENT_PER_STATEMENT, SPENDS_QUEUED, move |batch| {
                spend_batch(writer.clone(), batch)
            })
        });
        Self {
            db,
            vault,
            clock,
            clients,
            spends,
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
        self.store(self.row(&ticket, identity, client_id, KIND_LOGIN, TICKET_TTL))
            .await?;
        Ok(ticket)
    }

    /// Whether `client_id` names a client that can redeem web-view tickets: it exists and has
    /// the `flow` grant or the authorization code flow (`login_hint`).
    pub async fn client_may_redeem_web_view(&self, client_id: &str) -> Result<bool, DbErr> {
        Ok(self.clients.get(client_id).await?.is_some_and(|c| {
            c.allows_grant(GrantType::Flow) || c.allows_grant(GrantType::AuthorizationCode)
        }))
    }

    /// A new web-view ticket for `identity`, redeemable only by `client_id`, for
    /// [`WEB_VIEW_TICKET_TTL`] seconds (shown once; stored hashed).
    pub async fn mint_web_view(
        &self,
        identity: &IdentityKey,
        client_id: &str,
    ) -> Result<String, DbErr> {
        let ticket = format!("{WEB_VIEW_TICKET_PREFIX}{}", random_token(32));
        let row = self.row(
            &ticket,
            identity,
            Some(client_id),
            KIND_WEB_VIEW,
            WEB_VIEW_TICKET_TTL,
        );
        self.store(row).await?;
        Ok(ticket)
    }

    /// A login ticket for `identity` (bound to `client_id` when given), not yet stored: the
    /// ticket, and the row that stores it, for a caller that writes it with its own rows in one
    /// round trip. The ticket is valid once that row is written.
    pub fn prepare(
        &self,
        identity: &IdentityKey,
        client_id: Option<&str>,
    ) -> (String, login_ticket::ActiveModel) {
        let ticket = random_token(32);
        let row = self.row(&ticket, identity, client_id, KIND_LOGIN, TICKET_TTL);
        (ticket, row)
    }

    /// Store a ticket's row ([`Self::row`]).
    async fn store(&self, row: login_ticket::ActiveModel) -> Result<(), DbErr> {
        login_ticket::Entity::insert(row)
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// The row that stores `ticket`.
    fn row(
        &self,
        ticket: &str,
        identity: &IdentityKey,
        client_id: Option<&str>,
        kind: &str,
        ttl: i64,
    ) -> login_ticket::ActiveModel {
        let now = self.clock.now();
        login_ticket::ActiveModel {
            ticket_hash: Set(self.vault.fingerprint(ticket)),
            appid: Set(identity.appid.clone().into()),
            open_id: Set(identity.open_id.clone().into()),
            union_id: Set(identity.union_id.clone().map(Into::into)),
            expires_at: Set(now + ttl),
            used_at: Set(None),
            created_at: Set(now),
            client_id: Set(client_id.map(str::to_owned)),
            kind: Set(kind.to_owned()),
        }
    }

    /// Spend web-view ticket `ticket` for `client_id`: the identity it was minted for, or why
    /// not. Spent in one conditional UPDATE, so that of two redemptions at the same instant
    /// exactly one gets the identity; a ticket presented by another client is spent all the
    /// same (a leaked ticket tried elsewhere is dead for everyone).
    pub async fn redeem_web_view(
        &self,
        ticket: &str,
        client_id: &str,
    ) -> Result<Result<IdentityKey, Redeemed>, DbErr> {
        if !is_web_view_ticket(ticket) {
            return Ok(Err(Redeemed::NotLive));
        }
        let Some(row) = self.spend_row(ticket, KIND_WEB_VIEW).await? else {
            return Ok(Err(Redeemed::NotLive));
        };
        if row.client_id.as_deref() != Some(client_id) {
            return Ok(Err(Redeemed::OtherClient));
        }
        let identity = IdentityKey::from_stored(&row.appid, row.open_id, row.union_id)
            .map_err(|_| DbErr::Custom(format!("login_ticket holds appid {:?}", row.appid)))?;
        Ok(Ok(identity))
    }

    /// Mark the live ticket of `kind` whose hash `ticket` has as used, in one conditional
    /// UPDATE (through the group commit where there is one); the row when this call spent it.
    async fn spend_row(
        &self,
        ticket: &str,
        kind: &'static str,
    ) -> Result<Option<login_ticket::Model>, DbErr> {
        let presented = Presented {
            hash: self.vault.fingerprint(ticket),
            kind,
            now: self.clock.now(),
        };
        match write_through(self.spends.as_ref(), presented, |alone| {
            self.spend_alone(alone)
        })
        .await
        {
            Some(spent) => spent.map_err(DbErr::from),
            None => Err(DbErr::Custom("the ticket writer stopped".into())),
        }
    }

    /// Spend each of `presented` in a statement of its own (MySQL has no `RETURNING` to batch
    /// with; elsewhere, when there is no group-commit task to take it).
    async fn spend_alone(&self, presented: Vec<Presented>) -> Vec<Spent> {
        let mut spent = Vec::with_capacity(presented.len());
        for Presented { hash, kind, now } in presented {
            spent.push(
                self.spend_one(hash, kind, now)
                    .await
                    .map_err(|e| SharedDbErr::from(&e)),
            );
        }
        spent
    }

    async fn spend_one(
        &self,
        hash: String,
        kind: &'static str,
        now: i64,
    ) -> Result<Option<login_ticket::Model>, DbErr> {
        let update = login_ticket::Entity::update_many()
            .col_expr(login_ticket::Column::UsedAt, Expr::value(now))
            .filter(login_ticket::Column::TicketHash.eq(hash.as_str()))
            .filter(login_ticket::Column::UsedAt.is_null())
            .filter(login_ticket::Column::ExpiresAt.gt(now))
            .filter(login_ticket::Column::Kind.eq(kind));
        crate::db::spend_once(&self.db, update, login_ticket::Entity::find_by_id(hash)).await
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

    /// Spend `ticket` presented for an identity no ticket is minted for (the request named an
    /// appid that is not one): refused as minted for another identity, and spent all the same,
    /// as [`Self::redeem`] does.
    pub async fn refuse(&self, ticket: &str) -> Result<Redeemed, DbErr> {
        Ok(match self.spend_row(ticket, KIND_LOGIN).await? {
            Some(_) => Redeemed::OtherIdentity,
            None => Redeemed::NotLive,
        })
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
        let Some(row) = self.spend_row(ticket, KIND_LOGIN).await? else {
            return Ok(Redeemed::NotLive);
        };
        if !identity.is_stored_as(&row.appid, &row.open_id, row.union_id.as_deref()) {
            return Ok(Redeemed::OtherIdentity);
        }
        match (row.client_id.as_deref(), client_id) {
            (None, _) => Ok(Redeemed::Accepted),
            (Some(minted_for), Some(redeemer)) if minted_for == redeemer => Ok(Redeemed::Accepted),
            _ => Ok(Redeemed::OtherClient),
        }
    }
}

/// Spend a batch of presented tickets in one `UPDATE … RETURNING` (SQLite and PostgreSQL): every
/// live ticket whose hash and kind a presentation names. Each spent row goes to the first
/// presentation of it in the batch; a later one of the same ticket gets nothing, as if its
/// statement had come after. The batch's latest time decides what is still live.
async fn spend_batch(db: DatabaseConnection, batch: Vec<Presented>) -> Vec<Spent> {
    use login_ticket::Column;
    let now = batch.iter().map(|p| p.now).max().unwrap_or_default();
    let presented = batch.iter().fold(Condition::any(), |any, p| {
        any.add(
            Condition::all()
                .add(Column::TicketHash.eq(p.hash.as_str()))
                .add(Column::Kind.eq(p.kind)),
        )
    });
    let spent = login_ticket::Entity::update_many()
        .col_expr(Column::UsedAt, Expr::value(now))
        .filter(presented)
        .filter(Column::UsedAt.is_null())
        .filter(Column::ExpiresAt.gt(now))
        .exec_with_returning(&db)
        .await;
    match spent {
        Ok(rows) => {
            let mut spent: HashMap<String, login_ticket::Model> = rows
                .into_iter()
                .map(|row| (row.ticket_hash.clone(), row))
                .collect();
            batch
                .iter()
                .map(|p| {
                    let theirs = spent.get(&p.hash).is_some_and(|row| row.kind == p.kind);
                    Ok(if theirs { spent.remove(&p.hash) } else { None })
                })
                .collect()
        }
        Err(error) => {
            vec![Err(SharedDbErr::from(&error)); batch.len()]
        }
    }
}
