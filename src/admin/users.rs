//! Users as administrators see them: an account (`flow_user`) with its WeChat identities
//! (`wx_user`), consents, sessions and refresh-token families. Find, show, disable and enable,
//! revoke everything, export (PIPL: the right to access) and delete (PIPL: the right to
//! deletion, leaving one `account_changed` tombstone with no personal data).
//!
//! A disabled account gets no new tokens at any grant (see `oauth::grants::flow` and the token
//! issuer); disabling also revokes what it holds, so its refresh tokens fail at once.

use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};
use serde::Serialize;
use serde_json::{Value, json};

use entity::{
    admin_role, audit_event, authorization_code, browser_session, consent, flow_user, login_ticket,
    mini_current_key, mini_session, refresh_token, refresh_token_family, wx_user,
};

use crate::audit::{AuditEvent, AuditFilter, AuditKind, Outcome, StoredEvent};
use crate::webhooks::{self, WebhookEvent};

use super::{Actor, Admin, AdminError, MAX_PAGE};

/// How many recent audit events `show` includes.
pub const RECENT_EVENTS: u64 = 20;

/// What to look for; every criterion given must match. Text criteria are exact except
/// `nickname`, a substring of the account's or any identity's nickname.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub account_id: Option<i64>,
    pub union_id: Option<String>,
    pub open_id: Option<String>,
    pub phone: Option<String>,
    pub nickname: Option<String>,
    /// 1-based.
    pub page: u64,
    pub per_page: u64,
}

/// An account in a list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct UserSummary {
    pub id: i64,
    pub union_id: Option<String>,
    pub nick_name: Option<String>,
    pub mobile: Option<String>,
    pub disabled: bool,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
}

/// One page of accounts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserPage {
    pub users: Vec<UserSummary>,
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
}

/// A WeChat identity of an account (one openid under one app).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IdentityView {
    pub appid: String,
    pub open_id: String,
    pub union_id: Option<String>,
    pub nick_name: Option<String>,
    pub mobile: Option<String>,
    pub last_login_time: Option<i64>,
    pub created_at: i64,
    /// Official accounts: the follower status last recorded (`None`: never asked or pushed).
    pub follower: Option<FollowerView>,
}

/// Whether a WeChat identity follows its official account, as last recorded (from
/// `cgi-bin/user/info` at sign-in, or the account's pushed events).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FollowerView {
    pub subscribed: bool,
    /// Unix seconds of the last follow.
    pub subscribe_time: Option<i64>,
    /// `ADD_SCENE_QR_CODE`, `ADD_SCENE_SEARCH`, ….
    pub subscribe_scene: Option<String>,
    pub qr_scene: Option<i64>,
    pub qr_scene_str: Option<String>,
    /// The account's tag ids on the follower.
    pub tagid_list: Option<Vec<i64>>,
}

/// The scopes an account let a client have.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsentView {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub granted_at: i64,
}

/// A live session: a signed-in browser, or a Mini Program session of one identity.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// `browser` or `mini_program`.
    pub kind: &'static str,
    /// How the browser signed in, or the Mini Program's appid.
    pub detail: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A refresh-token family (never a token).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FamilyView {
    pub family_id: String,
    pub client_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_rotated_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Everything about one account an administrator needs to answer a request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserDetail {
    pub account: UserSummary,
    pub identities: Vec<IdentityView>,
    pub consents: Vec<ConsentView>,
    pub sessions: Vec<SessionView>,
    pub refresh_families: Vec<FamilyView>,
    pub recent_events: Vec<Value>,
}

/// What a revocation ended.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Revoked {
    pub refresh_families: u64,
    pub sessions: u64,
}

/// An audit event as the API and exports show it.
pub fn event_json(e: &StoredEvent) -> Value {
    json!({
        "id": e.id,
        "at": e.at,
        "kind": e.kind,
        "outcome": e.outcome,
        "client_id": e.client_id,
        "account_id": e.account_id,
        "subject": e.subject,
        "ip": e.ip,
        "actor": e.actor,
        "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::Null),
    })
}

fn summary(m: &flow_user::Model) -> UserSummary {
    UserSummary {
        id: m.id,
        union_id: m.union_id.clone(),
        nick_name: m.nick_name.clone(),
        mobile: m.mobile.clone(),
        disabled: m.disabled_at.is_some(),
        disabled_at: m.disabled_at,
        created_at: m.created_at,
    }
}

fn identity_view(m: &wx_user::Model) -> IdentityView {
    IdentityView {
        appid: m.appid.clone(),
        open_id: m.open_id.clone(),
        union_id: m.union_id.clone(),
        nick_name: m.nick_name.clone(),
        mobile: m.mobile.clone(),
        last_login_time: m.last_login_time,
        created_at: m.create_time,
        follower: m.subscribe_flag.map(|flag| FollowerView {
            subscribed: flag == 1,
            subscribe_time: m.subscribe_time,
            subscribe_scene: m.subscribe_scene.clone(),
            qr_scene: m.qr_scene,
            qr_scene_str: m.qr_scene_str.clone(),
            tagid_list: m
                .tagid_list
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok()),
        }),
    }
}

/// `%text%` for LIKE, with the wildcards in `text` taken literally.
fn contains_pattern(text: &str) -> LikeExpr {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    LikeExpr::new(format!("%{escaped}%")).escape('\\')
}

/// A text criterion must be 1-128 characters.
fn criterion(field: &'static str, value: &Option<String>) -> Result<Option<String>, AdminError> {
    match value.as_deref().map(str::trim) {
        None => Ok(None),
        Some(v) if v.is_empty() || v.chars().count() > 128 => {
            Err(AdminError::invalid(field, "must be 1-128 characters"))
        }
        Some(v) => Ok(Some(v.to_owned())),
    }
}

/// Accounts having an identity that matches `condition`.
fn with_identity(condition: Condition) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(wx_user::Column::FlowUserId)
        .from(wx_user::Entity)
        .cond_where(condition)
        .and_where(Expr::col(wx_user::Column::FlowUserId).is_not_null())
        .to_owned()
}

impl Admin {
    /// Accounts matching `query`, newest first, one page.
    pub async fn find_users(&self, query: &UserQuery) -> Result<UserPage, AdminError> {
        if query.page < 1 {
            return Err(AdminError::invalid("page", "must be at least 1"));
        }
        if !(1..=MAX_PAGE).contains(&query.per_page) {
            return Err(AdminError::invalid(
                "per_page",
                format!("must be from 1 to {MAX_PAGE}"),
            ));
        }
        let union_id = criterion("union_id", &query.union_id)?;
        let open_id = criterion("open_id", &query.open_id)?;
        let phone = criterion("phone", &query.phone)?;
        let nickname = criterion("nickname", &query.nickname)?;

        let mut select = flow_user::Entity::find();
        if let Some(id) = query.account_id {
            select = select.filter(flow_user::Column::Id.eq(id));
        }
        if let Some(union_id) = union_id {
            select = select.filter(flow_user::Column::UnionId.eq(union_id));
        }
        if let Some(open_id) = open_id {
            select = select.filter(flow_user::Column::Id.in_subquery(with_identity(
                Condition::all().add(wx_user::Column::OpenId.eq(open_id)),
            )));
        }
        if let Some(phone) = phone {
            select = select.filter(
                Condition::any()
                    .add(flow_user::Column::Mobile.eq(phone.as_str()))
                    .add(flow_user::Column::Id.in_subquery(with_identity(
                        Condition::all().add(wx_user::Column::Mobile.eq(phone.as_str())),
                    ))),
            );
        }
        if let Some(nickname) = nickname {
            select = select.filter(
                Condition::any()
                    .add(flow_user::Column::NickName.like(contains_pattern(&nickname)))
                    .add(
                        flow_user::Column::Id.in_subquery(with_identity(
                            Condition::all()
                                .add(wx_user::Column::NickName.like(contains_pattern(&nickname))),
                        )),
                    ),
            );
        }
        let paginator = select
            .order_by_desc(flow_user::Column::Id)
            .paginate(&self.db, query.per_page);
        let total = paginator.num_items().await?;
        let users = paginator.fetch_page(query.page - 1).await?;
        Ok(UserPage {
            users: users.iter().map(summary).collect(),
            page: query.page,
            per_page: query.per_page,
            total,
        })
    }

    async fn account_row(&self, id: i64) -> Result<flow_user::Model, AdminError> {
        flow_user::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("no account {id}")))
    }

    async fn identities(&self, id: i64) -> Result<Vec<wx_user::Model>, AdminError> {
        Ok(wx_user::Entity::find()
            .filter(wx_user::Column::FlowUserId.eq(id))
            .order_by_asc(wx_user::Column::Id)
            .all(&self.db)
            .await?)
    }

    async fn consents(&self, id: i64) -> Result<Vec<ConsentView>, AdminError> {
        let rows = consent::Entity::find()
            .filter(consent::Column::AccountId.eq(id))
            .order_by_asc(consent::Column::ClientId)
            .order_by_asc(consent::Column::Scope)
            .all(&self.db)
            .await?;
        let mut views: Vec<ConsentView> = Vec::new();
        for row in rows {
            match views.last_mut() {
                Some(last) if last.client_id == row.client_id => {
                    last.scopes.push(row.scope);
                    last.granted_at = std::cmp::max(last.granted_at, row.granted_at);
                }
                _ => views.push(ConsentView {
                    client_id: row.client_id,
                    scopes: vec![row.scope],
                    granted_at: row.granted_at,
                }),
            }
        }
        Ok(views)
    }

    /// Live browser and Mini Program sessions of the account and its identities.
    async fn sessions(
        &self,
        id: i64,
        identities: &[wx_user::Model],
    ) -> Result<Vec<SessionView>, AdminError> {
        let now = self.clock.now();
        let mut views: Vec<SessionView> = browser_session::Entity::find()
            .filter(browser_session::Column::AccountId.eq(id))
            .filter(browser_session::Column::ExpiresAt.gt(now))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|s| SessionView {
                kind: "browser",
                detail: s.method,
                created_at: s.created_at,
                expires_at: s.expires_at,
            })
            .collect();
        if let Some(of_identities) = identity_condition(
            identities,
            mini_session::Column::Appid,
            mini_session::Column::OpenId,
        ) {
            let mini = mini_session::Entity::find()
                .filter(of_identities)
                .filter(crate::db::mini_sessions::live_at(now))
                .all(&self.db)
                .await?;
            views.extend(mini.into_iter().map(|s| SessionView {
                kind: "mini_program",
                detail: s.appid,
                created_at: s.created_at,
                expires_at: s.expires_at,
            }));
        }
        views.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(views)
    }

    /// The account's refresh-token families, newest first (`live_only`: not revoked, not
    /// expired).
    async fn families(
        &self,
        id: i64,
        live_only: bool,
    ) -> Result<Vec<refresh_token_family::Model>, AdminError> {
        let mut select = refresh_token_family::Entity::find()
            .filter(refresh_token_family::Column::OwnerId.eq(id.to_string()));
        if live_only {
            select = select
                .filter(refresh_token_family::Column::RevokedAt.is_null())
                .filter(refresh_token_family::Column::ExpiresAt.gt(self.clock.now()));
        }
        Ok(select
            .order_by_desc(refresh_token_family::Column::CreatedAt)
            .all(&self.db)
            .await?)
    }

    async fn account_events(&self, id: i64, limit: u64) -> Result<Vec<Value>, AdminError> {
        let filter = AuditFilter {
            account_id: Some(id),
            limit,
            ..AuditFilter::default()
        };
        Ok(self
            .audit
            .list(&filter)
            .await?
            .iter()
            .map(event_json)
            .collect())
    }

    /// One account with its identities, consents, live sessions, refresh-token families and
    /// recent audit events.
    pub async fn show_user(&self, id: i64) -> Result<UserDetail, AdminError> {
        let account = self.account_row(id).await?;
        let identities = self.identities(id).await?;
        Ok(UserDetail {
            account: summary(&account),
            consents: self.consents(id).await?,
            sessions: self.sessions(id, &identities).await?,
            refresh_families: self
                .families(id, false)
                .await?
                .into_iter()
                .map(family_view)
                .collect(),
            recent_events: self.account_events(id, RECENT_EVENTS).await?,
            identities: identities.iter().map(identity_view).collect(),
        })
    }

    /// Disable an account: it gets no new tokens, and what it holds is revoked now.
    pub async fn disable_user(&self, actor: &Actor, id: i64) -> Result<UserSummary, AdminError> {
        let account = self.account_row(id).await?;
        if account.disabled_at.is_none() {
            // The change and its `user.disabled` webhook are one transaction.
            let now = self.clock.now();
            let txn = self.db.begin().await?;
            let changed = flow_user::Entity::update_many()
                .col_expr(flow_user::Column::DisabledAt, Expr::value(now))
                .col_expr(flow_user::Column::UpdatedAt, Expr::value(now))
                .filter(flow_user::Column::Id.eq(id))
                .filter(flow_user::Column::DisabledAt.is_null())
                .exec(&txn)
                .await?;
            if changed.rows_affected == 1 {
                webhooks::enqueue(&txn, &WebhookEvent::UserDisabled { account_id: id }, now)
                    .await?;
            }
            txn.commit().await?;
        }
        let revoked = self.revoke_everything(id).await?;
        self.record(actor, account_changed(id, revoked), "disable")
            .await;
        Ok(summary(&self.account_row(id).await?))
    }

    /// Enable a disabled account again (it signs in afresh: nothing revoked comes back).
    pub async fn enable_user(&self, actor: &Actor, id: i64) -> Result<UserSummary, AdminError> {
        self.account_row(id).await?;
        flow_user::Entity::update_many()
            .col_expr(
                flow_user::Column::DisabledAt,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(flow_user::Column::UpdatedAt, Expr::value(self.clock.now()))
            .filter(flow_user::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        self.record(
            actor,
            AuditEvent::new(AuditKind::AccountChanged, Outcome::Ok).account(id),
            "enable",
        )
        .await;
        Ok(summary(&self.account_row(id).await?))
    }

    /// Revoke every session and token of an account: its refresh-token families (and the
    /// access tokens they produced), its browser and Mini Program sessions, its unspent login
    /// tickets and authorization codes.
    pub async fn revoke_user(&self, actor: &Actor, id: i64) -> Result<Revoked, AdminError> {
        self.account_row(id).await?;
        let revoked = self.revoke_everything(id).await?;
        self.record(actor, account_changed(id, revoked), "revoke")
            .await;
        Ok(revoked)
    }

    async fn revoke_everything(&self, id: i64) -> Result<Revoked, AdminError> {
        let families = self.families(id, true).await?;
        for family in &families {
            self.tokens.revoke_family(&family.family_id).await?;
        }
        let identities = self.identities(id).await?;
        let txn = self.db.begin().await?;
        let mut sessions = browser_session::Entity::delete_many()
            .filter(browser_session::Column::AccountId.eq(id))
            .exec(&txn)
            .await?
            .rows_affected;
        sessions += delete_of_identities::<mini_session::Entity>(
            &txn,
            &identities,
            mini_session::Column::Appid,
            mini_session::Column::OpenId,
        )
        .await?;
        delete_of_identities::<login_ticket::Entity>(
            &txn,
            &identities,
            login_ticket::Column::Appid,
            login_ticket::Column::OpenId,
        )
        .await?;
        authorization_code::Entity::delete_many()
            .filter(authorization_code::Column::OwnerId.eq(id.to_string()))
            .filter(authorization_code::Column::UsedAt.is_null())
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(Revoked {
            refresh_families: families.len() as u64,
            sessions,
        })
    }

    /// Everything wxauth holds about one account, as JSON (PIPL: the right to access). The
    /// export itself is audited.
    pub async fn export_user(&self, actor: &Actor, id: i64) -> Result<Value, AdminError> {
        let account = self.account_row(id).await?;
        let identities = self.identities(id).await?;
        let export = json!({
            "exported_at": self.clock.now(),
            "account": {
                "id": account.id,
                "union_id": account.union_id,
                "nick_name": account.nick_name,
                "avatar": account.avatar,
                "mobile": account.mobile,
                "mobile_source": account.mobile_source,
                "mobile_verified_at": account.mobile_verified_at,
                "created_at": account.created_at,
                "updated_at": account.updated_at,
                "disabled_at": account.disabled_at,
            },
            "identities": identities.iter().map(|i| json!({
                "appid": i.appid,
                "open_id": i.open_id,
                "union_id": i.union_id,
                "nick_name": i.nick_name,
                "avatar_url": i.avatar_url,
                "sex": i.sex,
                "city": i.city,
                "province": i.province,
                "country": i.country,
                "language": i.language,
                "mobile": i.mobile,
                "mobile_source": i.mobile_source,
                "mobile_verified_at": i.mobile_verified_at,
                "subscribe_flag": i.subscribe_flag,
                "subscribe_time": i.subscribe_time,
                "qr_scene": i.qr_scene,
                "qr_scene_str": i.qr_scene_str,
                "tagid_list": i.tagid_list,
                "last_login_time": i.last_login_time,
                "created_at": i.create_time,
                "updated_at": i.update_time,
            })).collect::<Vec<_>>(),
            "consents": self.consents(id).await?,
            "sessions": self.sessions(id, &identities).await?,
            "refresh_families": self
                .families(id, false)
                .await?
                .into_iter()
                .map(family_view)
                .collect::<Vec<_>>(),
            // Every event (sqlx binds at most i64::MAX on SQLite).
            "audit_events": self.account_events(id, i64::MAX as u64).await?,
        });
        self.record(
            actor,
            AuditEvent::new(AuditKind::AccountChanged, Outcome::Ok).account(id),
            "export",
        )
        .await;
        Ok(export)
    }

    /// Delete an account (PIPL: the right to deletion): its tokens are revoked, then the
    /// account, its identities, sessions, consents, tokens, codes, tickets and the audit events
    /// about it go, in one transaction. One `account_changed` event with the action `delete`
    /// and the bare account number stays, with no personal data.
    pub async fn delete_user(&self, actor: &Actor, id: i64) -> Result<(), AdminError> {
        self.account_row(id).await?;
        // Deny the access tokens the families produced before their rows go.
        self.revoke_everything(id).await?;
        let identities = self.identities(id).await?;
        let owner = id.to_string();
        let txn = self.db.begin().await?;
        consent::Entity::delete_many()
            .filter(consent::Column::AccountId.eq(id))
            .exec(&txn)
            .await?;
        browser_session::Entity::delete_many()
            .filter(browser_session::Column::AccountId.eq(id))
            .exec(&txn)
            .await?;
        delete_of_identities::<mini_session::Entity>(
            &txn,
            &identities,
            mini_session::Column::Appid,
            mini_session::Column::OpenId,
        )
        .await?;
        delete_of_identities::<mini_current_key::Entity>(
            &txn,
            &identities,
            mini_current_key::Column::Appid,
            mini_current_key::Column::OpenId,
        )
        .await?;
        delete_of_identities::<login_ticket::Entity>(
            &txn,
            &identities,
            login_ticket::Column::Appid,
            login_ticket::Column::OpenId,
        )
        .await?;
        authorization_code::Entity::delete_many()
            .filter(authorization_code::Column::OwnerId.eq(owner.as_str()))
            .exec(&txn)
            .await?;
        refresh_token::Entity::delete_many()
            .filter(refresh_token::Column::OwnerId.eq(owner.as_str()))
            .exec(&txn)
            .await?;
        refresh_token_family::Entity::delete_many()
            .filter(refresh_token_family::Column::OwnerId.eq(owner.as_str()))
            .exec(&txn)
            .await?;
        audit_event::Entity::delete_many()
            .filter(audit_event::Column::AccountId.eq(id))
            .exec(&txn)
            .await?;
        wx_user::Entity::delete_many()
            .filter(wx_user::Column::FlowUserId.eq(id))
            .exec(&txn)
            .await?;
        admin_role::Entity::delete_by_id(id).exec(&txn).await?;
        flow_user::Entity::delete_by_id(id).exec(&txn).await?;
        webhooks::enqueue(
            &txn,
            &WebhookEvent::UserDeleted { account_id: id },
            self.clock.now(),
        )
        .await?;
        txn.commit().await?;
        self.record(
            actor,
            AuditEvent::new(AuditKind::AccountChanged, Outcome::Ok)
                .account(id)
                .detail("identities", identities.len()),
            "delete",
        )
        .await;
        Ok(())
    }
}

fn family_view(f: refresh_token_family::Model) -> FamilyView {
    FamilyView {
        family_id: f.family_id,
        client_id: f.client_id,
        created_at: f.created_at,
        expires_at: f.expires_at,
        last_rotated_at: f.last_rotated_at,
        revoked_at: f.revoked_at,
    }
}

fn account_changed(id: i64, revoked: Revoked) -> AuditEvent {
    AuditEvent::new(AuditKind::AccountChanged, Outcome::Ok)
        .account(id)
        .detail("revoked_families", revoked.refresh_families)
        .detail("ended_sessions", revoked.sessions)
}

/// Delete the rows of `E` that belong to `identities` (by its appid and openid columns); how
/// many went.
async fn delete_of_identities<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    identities: &[wx_user::Model],
    appid: E::Column,
    open_id: E::Column,
) -> Result<u64, DbErr> {
    let Some(of_identities) = identity_condition(identities, appid, open_id) else {
        return Ok(0);
    };
    Ok(E::delete_many()
        .filter(of_identities)
        .exec(conn)
        .await?
        .rows_affected)
}

/// Rows of any of `identities`, by their (appid, openid) columns; `None` when there are none.
fn identity_condition<C: ColumnTrait>(
    identities: &[wx_user::Model],
    appid: C,
    open_id: C,
) -> Option<Condition> {
    if identities.is_empty() {
        return None;
    }
    Some(identities.iter().fold(Condition::any(), |any, i| {
        any.add(
            Condition::all()
                .add(appid.eq(i.appid.as_str()))
                .add(open_id.eq(i.open_id.as_str())),
        )
    }))
}
