//! The audit trail: one `audit_event` row for every security-relevant event — each sign-in by
//! channel, each token issuance by grant, the refusals that look like attacks (refresh reuse, code
//! replay, refused tickets, the decryption cap, a refused browser binding, throttled guessing) and
//! every administrative change — with the time, the client, the account, the caller's IP address,
//! the outcome and, for changes, the actor. Nothing in it is a secret: no token, code, ticket,
//! session key or query string ever goes into `detail`.
//!
//! Recording never fails the request that caused it: a write that fails is logged instead. Events
//! that stand alone go through a group commit (see [`Audit`]): many requests' rows in one insert,
//! each request answered only once its row is written. The
//! caller's IP comes from the [`request_context`](crate::request_context) of the request being
//! served. The janitor trims rows older than the retention (`WXAUTH_AUDIT_RETENTION_DAYS`).

use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, TransactionTrait,
};
use serde_json::{Map, Value};

use entity::audit_event;

use crate::clock::SharedClock;
use crate::db_error::SharedDbErr;
use crate::group_commit::GroupCommit;
use crate::metrics::{
    ADMIN_CHANGES, FOLLOWER_CHANGES, REFUSALS, SIGN_INS, SIGN_OUTS, TOKENS_ISSUED,
    WECHAT_CREDENTIALS,
};
use crate::request_context;
use crate::webhooks::WebhookEvent;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// A person signed in (`subject` names the channel, see [`SignInChannel`]).
    SignIn,
    /// Tokens were issued (`detail.grant` names the grant).
    TokenIssued,
    /// A spent refresh token came back; its family was revoked.
    RefreshReuse,
    /// A spent authorization code came back; what it produced was revoked.
    CodeReplay,
    /// A login ticket was refused at the `flow` grant.
    TicketRefused,
    /// A Mini Program session reached its cap of failed decryptions and was ended.
    DecryptCapReached,
    /// An H5 sign-in hop came from another browser, or would have relinked an identity.
    H5BindingRefused,
    /// Failed client authentication from one address was throttled.
    ClientAuthThrottled,
    /// A client was created, updated, had its secret rotated, or was deleted.
    ClientChanged,
    /// A WeChat app was added, updated or removed.
    AppChanged,
    /// A signing key was added, activated or retired.
    KeyChanged,
    /// An administrator disabled, enabled, revoked, exported or deleted an account
    /// (`detail.action`); after a deletion only this event (with no personal data) remains.
    AccountChanged,
    /// A resource (RFC 8707) was registered, updated or removed.
    ResourceChanged,
    /// A person approved or denied a device at `/device` (`detail.decision`; RFC 8628).
    DeviceDecision,
    /// A browser session ended at the end-session endpoint (`detail.revoked_families`,
    /// `detail.backchannel_clients`).
    SignOut,
    /// The credential broker handed a client a WeChat credential (`subject`: the appid,
    /// `detail.kind`, `detail.force`, `detail.refreshed`), or refused one (`detail.reason`).
    WeChatCredential,
    /// WeChat's content security check refused a nickname a user typed in the Mini Program
    /// (`detail.label`, `detail.trace_id`; `detail.when`: `saving` or `recheck`).
    NicknameRefused,
    /// A user followed an Official Account (`detail.appid`, `detail.open_id`; from a pushed
    /// `subscribe` event or a `cgi-bin/user/info` that changed the status).
    FollowerSubscribed,
    /// A user stopped following an Official Account (`detail.appid`, `detail.open_id`).
    FollowerUnsubscribed,
    /// Two accounts were merged (a unionid arrived late): `account_id` is the survivor,
    /// `detail.merged_account_id` the account merged into it (`detail.action`: `merged`,
    /// `queued` for an administrator, `rejected`).
    AccountMerged,
    /// A webhook endpoint was registered or removed, or a dead delivery retried.
    WebhookChanged,
}

impl AuditKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "sign_in",
            Self::TokenIssued => "token_issued",
            Self::RefreshReuse => "refresh_reuse",
            Self::CodeReplay => "code_replay",
            Self::TicketRefused => "ticket_refused",
            Self::DecryptCapReached => "decrypt_cap_reached",
            Self::H5BindingRefused => "h5_binding_refused",
            Self::ClientAuthThrottled => "client_auth_throttled",
            Self::ClientChanged => "client_changed",
            Self::AppChanged => "app_changed",
            Self::KeyChanged => "key_changed",
            Self::AccountChanged => "account_changed",
            Self::ResourceChanged => "resource_changed",
            Self::DeviceDecision => "device_decision",
            Self::SignOut => "sign_out",
            Self::WeChatCredential => "wechat_credential",
            Self::NicknameRefused => "nickname_refused",
            Self::FollowerSubscribed => "follower.subscribed",
            Self::FollowerUnsubscribed => "follower.unsubscribed",
            Self::AccountMerged => "account_merged",
            Self::WebhookChanged => "webhook_changed",
        }
    }

    /// Which metric counts events of this kind.
    fn metric(self) -> &'static str {
        match self {
            // Approving a device signs it in.
            Self::SignIn | Self::DeviceDecision => SIGN_INS,
            Self::SignOut => SIGN_OUTS,
            Self::WeChatCredential => WECHAT_CREDENTIALS,
            Self::FollowerSubscribed | Self::FollowerUnsubscribed => FOLLOWER_CHANGES,
            Self::TokenIssued => TOKENS_ISSUED,
            Self::RefreshReuse
            | Self::CodeReplay
            | Self::TicketRefused
            | Self::DecryptCapReached
            | Self::H5BindingRefused
            | Self::ClientAuthThrottled
            | Self::NicknameRefused => REFUSALS,
            Self::ClientChanged
            | Self::AppChanged
            | Self::KeyChanged
            | Self::AccountChanged
            | Self::ResourceChanged
            | Self::AccountMerged
            | Self::WebhookChanged => ADMIN_CHANGES,
        }
    }

    /// Every kind, for help texts and validation of `--kind`.
    pub const ALL: &'static [AuditKind] = &[
        Self::SignIn,
        Self::TokenIssued,
        Self::RefreshReuse,
        Self::CodeReplay,
        Self::TicketRefused,
        Self::DecryptCapReached,
        Self::H5BindingRefused,
        Self::ClientAuthThrottled,
        Self::ClientChanged,
        Self::AppChanged,
        Self::KeyChanged,
        Self::AccountChanged,
        Self::ResourceChanged,
        Self::DeviceDecision,
        Self::SignOut,
        Self::WeChatCredential,
        Self::NicknameRefused,
        Self::FollowerSubscribed,
        Self::FollowerUnsubscribed,
        Self::AccountMerged,
        Self::WebhookChanged,
    ];

    /// The kind stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == name)
    }
}

/// How a sign-in reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInChannel {
    /// `wx.login` in a Mini Program.
    MiniProgram,
    /// The official-account H5 two-hop.
    H5,
    /// The website app's QR code, at the authorization endpoint.
    Qr,
    /// The base official account's web authorization inside WeChat, at the authorization endpoint.
    WeChatOAuth,
    /// A page in a Mini Program's `<web-view>`, with a web-view ticket the Mini Program's
    /// session minted.
    MiniProgramWebView,
}

impl SignInChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MiniProgram => "mini_program",
            Self::H5 => "h5",
            Self::Qr => "qr",
            Self::WeChatOAuth => "wechat_oauth",
            Self::MiniProgramWebView => "mini_program_web_view",
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It happened.
    Ok,
    /// We refused it.
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
        }
    }
}

/// One event to record. Build it with [`AuditEvent::new`] and the setters.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub kind: AuditKind,
    pub outcome: Outcome,
    pub client_id: Option<String>,
    pub account_id: Option<i64>,
    pub subject: Option<String>,
    pub actor: Option<String>,
    pub detail: Map<String, Value>,
}

impl AuditEvent {
    pub fn new(kind: AuditKind, outcome: Outcome) -> Self {
        Self {
            kind,
            outcome,
            client_id: None,
            account_id: None,
            subject: None,
            actor: None,
            detail: Map::new(),
        }
    }

    /// A sign-in through `channel` to `account_id`.
    pub fn sign_in(channel: SignInChannel, account_id: i64) -> Self {
        Self::new(AuditKind::SignIn, Outcome::Ok)
            .account(account_id)
            .subject(channel.as_str())
    }

    pub fn client(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    pub fn account(mut self, account_id: i64) -> Self {
        self.account_id = Some(account_id);
        self
    }

    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Add `key: value` to the detail. Never pass a secret.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_owned(), value.into());
        self
    }
}

/// Count `event` in its metric, with bounded labels only: the channel of a sign-in, the grant and
/// client of an issuance, the kind of a refusal or change. Never an account or an address.
fn count(event: &AuditEvent) {
    let metric = event.kind.metric();
    match event.kind {
        AuditKind::SignIn => metrics::counter!(
            metric,
            "channel" => event.subject.clone().unwrap_or_default(),
            "outcome" => event.outcome.as_str()
        )
        .increment(1),
        AuditKind::TokenIssued => metrics::counter!(
            metric,
            "grant" => event.detail.get("grant").and_then(Value::as_str).unwrap_or_default().to_owned(),
            "client" => event.client_id.clone().unwrap_or_default()
        )
        .increment(1),
        AuditKind::WeChatCredential => metrics::counter!(
            metric,
            "client" => event.client_id.clone().unwrap_or_default(),
            "appid" => event.subject.clone().unwrap_or_default(),
            "kind" => event.detail.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned(),
            "outcome" => event.outcome.as_str()
        )
        .increment(1),
        kind if metric == REFUSALS => {
            metrics::counter!(metric, "reason" => kind.as_str()).increment(1)
        }
        kind => metrics::counter!(metric, "kind" => kind.as_str()).increment(1),
    }
}

/// Write `event` at `now` on `conn`, stamped with the current request's IP address and request
/// id: for changes that record their audit row in their own transaction (an account merge).
/// Not counted in the metrics: call [`count_event`] once the transaction is committed.
pub async fn record_in<C: ConnectionTrait>(
    conn: &C,
    event: AuditEvent,
    now: i64,
) -> Result<(), DbErr> {
    audit_event::Entity::insert(row_for(event, now))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// The row of `event` at `now`, stamped with the current request's IP address and request id.
fn row_for(mut event: AuditEvent, now: i64) -> audit_event::ActiveModel {
    let ip = request_context::client_ip().map(|ip| ip.to_string());
    if let Some(id) = request_context::request_id() {
        event.detail.insert("request_id".into(), Value::String(id));
    }
    audit_event::ActiveModel {
        id: NotSet,
        at: Set(now),
        kind: Set(event.kind.as_str().to_owned()),
        outcome: Set(event.outcome.as_str().to_owned()),
        client_id: Set(event.client_id),
        account_id: Set(event.account_id),
        subject: Set(event.subject),
        ip: Set(ip),
        actor: Set(event.actor),
        detail: Set(Value::Object(event.detail).to_string()),
    }
}

/// Count an event written with [`record_in`] in its metric.
pub fn count_event(event: &AuditEvent) {
    count(event);
}

/// A row waiting for the group commit, with the webhook event to be written with it (a
/// sign-in's `user.signed_in`) and that event's time.
#[derive(Clone)]
struct Queued {
    row: audit_event::ActiveModel,
    webhook: Option<(WebhookEvent, i64)>,
}

/// What the group commit answers each queued row.
type Written = Result<(), SharedDbErr>;

/// The group commit's write: the batch at once, or, when the database refuses it, each row
/// alone, so that one row it refuses costs no other request its event. Not when the database
/// could not be reached in time (a locked SQLite, no free connection): each row would wait as
/// long again, so all share that answer.
async fn insert_batch(db: DatabaseConnection, batch: Vec<Queued>) -> Vec<Written> {
    let count = batch.len();
    match insert_rows(&db, batch.clone()).await {
        Ok(()) => return vec![Ok(()); count],
        Err(e) if crate::db_error::is_unavailable(&e) => {
            return vec![Err(SharedDbErr::from(&e)); count];
        }
        Err(_) => {}
    }
    let mut answers = Vec::with_capacity(count);
    for queued in batch {
        answers.push(
            insert_rows(&db, vec![queued])
                .await
                .map_err(|e| SharedDbErr::from(&e)),
        );
    }
    answers
}

/// Write `batch` (at least one row): the rows in one insert; when some carry a webhook event,
/// that insert and one outbox insert per event ([`crate::webhooks::enqueue_statement`], which
/// writes nothing when no endpoint wants the event) commit together: one statement on
/// PostgreSQL, one transaction elsewhere.
async fn insert_rows(db: &DatabaseConnection, batch: Vec<Queued>) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let mut rows = Vec::with_capacity(batch.len());
    let mut statements = Vec::new();
    for queued in batch {
        if let Some((event, at)) = &queued.webhook {
            statements.push(crate::webhooks::enqueue_statement(event, *at, backend)?);
        }
        rows.push(queued.row);
    }
    let insert = audit_event::Entity::insert_many(rows).build(backend);
    if statements.is_empty() {
        db.execute_raw(insert).await?;
        return Ok(());
    }
    statements.insert(0, insert);
    if backend == DbBackend::Postgres {
        return crate::round_trip::write_together(db, statements).await;
    }
    let txn = db.begin().await?;
    crate::round_trip::write_together(&txn, statements).await?;
    txn.commit().await
}

/// A stored event, as `wxauth audit` and the admin API show it.
pub type StoredEvent = audit_event::Model;

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub account_id: Option<i64>,
    pub client_id: Option<String>,
    pub kind: Option<AuditKind>,
    /// Unix seconds; events at or after.
    pub since: Option<i64>,
    /// At most this many, newest first.
    pub limit: u64,
}

/// Where a page of the audit trail starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditCursor {
    /// The newest events.
    #[default]
    Newest,
    /// Events older than this id.
    Before(i64),
    /// Events newer than this id (the page before, going back).
    After(i64),
}

/// At most this many rows go into one group-commit insert.
const GROUP_COMMIT_ROWS: usize = 256;

/// Rows queued for the group commit before a caller waits for room.
const GROUP_COMMIT_QUEUE: usize = 4096;

/// Writes and reads the audit trail.
///
/// Events that stand alone (not written with the change they describe) are written by one
/// group-commit task per state: each caller queues its row and waits until it is in the
/// database, and the task writes every row queued while its previous insert was in flight as one
/// multi-row insert. Under load that is one round trip for many requests instead of one each
/// (a `client_credentials` issuance's only statement); alone, it is one insert as before. Nothing
/// is acknowledged before it is written, so a crash loses no event a response was sent for. A
/// successful sign-in's row carries its `user.signed_in` webhook event: the batch's rows and the
/// outbox inserts of its events commit together, and the outbox insert selects the subscribed
/// endpoints itself, so a sign-in reads nothing first.
#[derive(Clone)]
pub struct Audit {
    db: DatabaseConnection,
    clock: SharedClock,
    /// The group commit of stand-alone rows.
    rows: GroupCommit<Queued, Written>,
}

impl Audit {
    /// The audit trail on `db`; inside a Tokio runtime this starts its group-commit task, which
    /// ends when the last clone of this `Audit` is dropped.
    pub fn new(db: DatabaseConnection, clock: SharedClock) -> Self {
        let writer = db.clone();
        let rows = GroupCommit::start(GROUP_COMMIT_ROWS, GROUP_COMMIT_QUEUE, move |rows| {
            insert_batch(writer.clone(), rows)
        });
        Self { db, clock, rows }
    }

    /// Record `event`, stamped with the time, the current request's IP address and request id,
    /// and count it in the metrics. A failed write is logged, never returned: the audit trail
    /// must not turn a sign-in into an error.
    pub async fn record(&self, event: AuditEvent) {
        count(&event);
        let kind = event.kind.as_str();
        if let Err(error) = self.insert(event).await {
            tracing::error!(kind, %error, "writing an audit event failed");
        }
    }

    /// Like [`record`](Self::record), for an event without which the request must not succeed
    /// (a token issued): the failure is logged and returned.
    pub async fn record_or_fail(&self, event: AuditEvent) -> Result<(), DbErr> {
        count(&event);
        let kind = event.kind.as_str();
        self.insert(event).await.inspect_err(|error| {
            tracing::error!(kind, %error, "writing an audit event failed");
        })
    }

    /// Write a row from [`prepare`](Self::prepare); a failure is logged and returned.
    pub async fn write(&self, row: audit_event::ActiveModel) -> Result<(), DbErr> {
        let kind = row.kind.try_as_ref().cloned().unwrap_or_default();
        self.commit(row).await.inspect_err(|error| {
            tracing::error!(kind, %error, "writing an audit event failed");
        })
    }

    /// The row [`record`](Self::record) would write for `event`, stamped and counted the same
    /// way, for a caller that writes it together with the change it describes (one round trip
    /// instead of two: see `TokenService::issue_for_user`). The caller must insert it.
    pub fn prepare(&self, event: AuditEvent) -> audit_event::ActiveModel {
        count(&event);
        row_for(event, self.clock.now())
    }

    /// Write `row` through the group commit, and return once it is in the database.
    async fn commit(&self, row: audit_event::ActiveModel) -> Result<(), DbErr> {
        self.commit_queued(Queued { row, webhook: None }).await
    }

    /// Write `queued` through the group commit, and return once it is in the database.
    async fn commit_queued(&self, queued: Queued) -> Result<(), DbErr> {
        match self.rows.submit(queued).await {
            Ok(Some(written)) => written.map_err(DbErr::from),
            Ok(None) => Err(DbErr::Custom("the audit writer stopped".to_owned())),
            // No task to take it (its runtime is shutting down): write it here.
            Err(queued) => insert_rows(&self.db, vec![queued]).await,
        }
    }

    async fn insert(&self, event: AuditEvent) -> Result<(), DbErr> {
        let now = self.clock.now();
        // A sign-in is also a `user.signed_in` webhook, written with its audit row.
        let webhook = match (event.kind, event.outcome, event.account_id) {
            (AuditKind::SignIn, Outcome::Ok, Some(account_id)) => Some((
                WebhookEvent::UserSignedIn {
                    account_id,
                    channel: event.subject.clone().unwrap_or_default(),
                },
                now,
            )),
            _ => None,
        };
        self.commit_queued(Queued {
            row: row_for(event, now),
            webhook,
        })
        .await
    }

    /// Events matching `filter`, newest first.
    pub async fn list(&self, filter: &AuditFilter) -> Result<Vec<StoredEvent>, DbErr> {
        self.list_from(filter, AuditCursor::Newest).await
    }

    /// Events matching `filter` on one side of `cursor` (keyset paging on the id, so a page
    /// costs the same deep in the trail), newest first, at most `filter.limit`.
    pub async fn list_from(
        &self,
        filter: &AuditFilter,
        cursor: AuditCursor,
    ) -> Result<Vec<StoredEvent>, DbErr> {
        let mut select = audit_event::Entity::find();
        match cursor {
            AuditCursor::Newest => {}
            AuditCursor::Before(id) => select = select.filter(audit_event::Column::Id.lt(id)),
            AuditCursor::After(id) => select = select.filter(audit_event::Column::Id.gt(id)),
        }
        if let Some(account) = filter.account_id {
            select = select.filter(audit_event::Column::AccountId.eq(account));
        }
        if let Some(client) = &filter.client_id {
            select = select.filter(audit_event::Column::ClientId.eq(client.as_str()));
        }
        if let Some(kind) = filter.kind {
            select = select.filter(audit_event::Column::Kind.eq(kind.as_str()));
        }
        if let Some(since) = filter.since {
            select = select.filter(audit_event::Column::At.gte(since));
        }
        let select = select.limit(filter.limit.max(1));
        if let AuditCursor::After(_) = cursor {
            // The oldest events newer than the cursor, then newest first like every page.
            let mut events = select
                .order_by_asc(audit_event::Column::Id)
                .all(&self.db)
                .await?;
            events.reverse();
            Ok(events)
        } else {
            select
                .order_by_desc(audit_event::Column::Id)
                .all(&self.db)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_name() {
        for kind in AuditKind::ALL {
            assert_eq!(AuditKind::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(AuditKind::parse("nope"), None);
    }
}
