//! Official Account follower status on the identity (`wx_user`: the seed's `subscribeFlag`,
//! `subscribeTime`, `subscribeScene`, `qrScene`, `qrSceneStr`, `tagidList`): what WeChat's
//! `cgi-bin/user/info` or a pushed event said, stored so that each change of status is seen by
//! exactly one writer (a conditional UPDATE flips the flag), and each pushed message is applied
//! once (its receipt is inserted in the same transaction; a retry is a unique-key conflict).

use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    SqlErr, TransactionTrait,
};

use entity::{wechat_message_receipt, wx_user};

use crate::webhooks::WebhookEvent;

/// Which parametric QR code a user followed through, or scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QrSceneValue {
    Id(i64),
    Str(String),
}

/// What is known of a user's follower status in one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowerStatus {
    pub subscribed: bool,
    /// Unix seconds of the last follow.
    pub subscribe_time: Option<i64>,
    /// `ADD_SCENE_QR_CODE`, `ADD_SCENE_SEARCH`, ….
    pub subscribe_scene: Option<String>,
    pub qr_scene: Option<QrSceneValue>,
    /// `None`: leave the stored tags as they are (events do not carry them).
    pub tagid_list: Option<Vec<i64>>,
    /// The whole status (`cgi-bin/user/info`): absent details are cleared. Otherwise (an
    /// event) only the details given are written.
    pub complete: bool,
}

/// What a recording changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    /// The user follows now and did not before (as far as wxauth knew).
    Subscribed,
    /// The user followed and does not any more.
    Unsubscribed,
    /// The status is as it was (details may have been refreshed).
    Unchanged,
}

/// What became of a pushed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// Applied now, with this change.
    Applied(StatusChange),
    /// WeChat's retry of a message already applied: nothing was done.
    Duplicate,
}

/// The follower status of identities, over sea-orm.
#[derive(Clone)]
pub struct FollowerStore {
    db: DatabaseConnection,
}

/// How a follower's scene columns are written.
fn scene_columns(scene: &Option<QrSceneValue>) -> (Option<i64>, Option<String>) {
    match scene {
        Some(QrSceneValue::Id(id)) => (Some(*id), None),
        Some(QrSceneValue::Str(s)) => (None, Some(s.clone())),
        None => (None, None),
    }
}

impl FollowerStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Record `status` (from `cgi-bin/user/info`) for `open_id` in `appid`.
    pub async fn record(
        &self,
        appid: &str,
        open_id: &str,
        status: &FollowerStatus,
        now: i64,
    ) -> Result<StatusChange, DbErr> {
        let txn = self.db.begin().await?;
        let change = apply(&txn, appid, open_id, status, now).await?;
        announce(&txn, appid, open_id, change, now).await?;
        txn.commit().await?;
        Ok(change)
    }

    /// Apply a pushed message once: its receipt (`{appid}:{retry_key}`, kept until
    /// `keep_until`) and the status change are written in one transaction, so of WeChat's
    /// retries (or two instances receiving one push) exactly one applies it.
    pub async fn record_pushed(
        &self,
        appid: &str,
        retry_key: &str,
        open_id: &str,
        status: Option<&FollowerStatus>,
        now: i64,
        keep_until: i64,
    ) -> Result<Receipt, DbErr> {
        let txn = self.db.begin().await?;
        let receipt = wechat_message_receipt::ActiveModel {
            receipt_key: Set(receipt_key(appid, retry_key)),
            appid: Set(appid.to_owned()),
            received_at: Set(now),
            expires_at: Set(keep_until),
        };
        match wechat_message_receipt::Entity::insert(receipt)
            .exec_without_returning(&txn)
            .await
        {
            Ok(_) => {}
            Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                txn.rollback().await?;
                return Ok(Receipt::Duplicate);
            }
            Err(error) => return Err(error),
        }
        let change = match status {
            Some(status) => apply(&txn, appid, open_id, status, now).await?,
            None => StatusChange::Unchanged,
        };
        announce(&txn, appid, open_id, change, now).await?;
        txn.commit().await?;
        Ok(Receipt::Applied(change))
    }

    /// Whether `open_id` follows `appid`, as last recorded (`None`: never recorded).
    pub async fn subscribed(&self, appid: &str, open_id: &str) -> Result<Option<bool>, DbErr> {
        Ok(wx_user::Entity::find()
            .filter(wx_user::Column::Appid.eq(appid))
            .filter(wx_user::Column::OpenId.eq(open_id))
            .all(&self.db)
            .await?
            .into_iter()
            .next()
            .and_then(|row| row.subscribe_flag)
            .map(|flag| flag == 1))
    }

    /// Whether any identity of account `account_id` in `appid` follows it (`None`: no status
    /// recorded for any).
    pub async fn account_subscribed(
        &self,
        account_id: i64,
        appid: &str,
    ) -> Result<Option<bool>, DbErr> {
        let flags: Vec<Option<i32>> = wx_user::Entity::find()
            .filter(wx_user::Column::FlowUserId.eq(account_id))
            .filter(wx_user::Column::Appid.eq(appid))
            .filter(wx_user::Column::DelFlag.eq(false))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| row.subscribe_flag)
            .collect();
        if flags.iter().all(Option::is_none) {
            return Ok(None);
        }
        Ok(Some(flags.contains(&Some(1))))
    }
}

/// The receipt of `retry_key` in `appid` (bounded to the column's 191 characters).
fn receipt_key(appid: &str, retry_key: &str) -> String {
    format!("{appid}:{retry_key}").chars().take(191).collect()
}

/// Make sure the identity row exists (a follower wxauth never saw sign in gets one, with no
/// account), flip the flag with a conditional UPDATE (whoever flips it reports the change), then
/// write the details.
async fn apply(
    conn: &impl ConnectionTrait,
    appid: &str,
    open_id: &str,
    status: &FollowerStatus,
    now: i64,
) -> Result<StatusChange, DbErr> {
    let this = || {
        wx_user::Entity::update_many()
            .filter(wx_user::Column::Appid.eq(appid))
            .filter(wx_user::Column::OpenId.eq(open_id))
    };
    let exists = wx_user::Entity::find()
        .filter(wx_user::Column::Appid.eq(appid))
        .filter(wx_user::Column::OpenId.eq(open_id))
        .all(conn)
        .await?
        .into_iter()
        .next()
        .is_some();
    if !exists {
        let row = wx_user::ActiveModel {
            appid: Set(appid.to_owned()),
            open_id: Set(open_id.to_owned()),
            create_time: Set(now),
            update_time: Set(now),
            del_flag: Set(false),
            ..Default::default()
        };
        match wx_user::Entity::insert(row)
            .exec_without_returning(conn)
            .await
        {
            Ok(_) => {}
            // A sign-in recorded the identity meanwhile.
            Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            }
            Err(error) => return Err(error),
        }
    }
    let flag = i32::from(status.subscribed);
    let flip = if status.subscribed {
        Condition::any()
            .add(wx_user::Column::SubscribeFlag.is_null())
            .add(wx_user::Column::SubscribeFlag.ne(1))
    } else {
        Condition::all().add(wx_user::Column::SubscribeFlag.eq(1))
    };
    let flipped = this()
        .col_expr(wx_user::Column::SubscribeFlag, Expr::value(flag))
        .filter(flip)
        .exec(conn)
        .await?
        .rows_affected
        == 1;
    let (qr_scene, qr_scene_str) = scene_columns(&status.qr_scene);
    let mut details = this()
        .col_expr(wx_user::Column::SubscribeFlag, Expr::value(flag))
        .col_expr(wx_user::Column::UpdateTime, Expr::value(now));
    if status.complete || status.subscribe_time.is_some() {
        details = details.col_expr(
            wx_user::Column::SubscribeTime,
            Expr::value(status.subscribe_time),
        );
    }
    if status.complete || status.subscribe_scene.is_some() {
        details = details.col_expr(
            wx_user::Column::SubscribeScene,
            Expr::value(status.subscribe_scene.clone()),
        );
    }
    if status.complete || status.qr_scene.is_some() {
        details = details
            .col_expr(wx_user::Column::QrScene, Expr::value(qr_scene))
            .col_expr(wx_user::Column::QrSceneStr, Expr::value(qr_scene_str));
    }
    if let Some(tags) = &status.tagid_list {
        let text = serde_json::to_string(tags).unwrap_or_else(|_| "[]".to_owned());
        details = details.col_expr(wx_user::Column::TagidList, Expr::value(text));
    }
    details.exec(conn).await?;
    Ok(match (flipped, status.subscribed) {
        (true, true) => StatusChange::Subscribed,
        (true, false) => StatusChange::Unsubscribed,
        (false, _) => StatusChange::Unchanged,
    })
}

/// The `follower.subscribed` / `follower.unsubscribed` webhook of `change`, written in the
/// transaction `txn` that made it (with the account, when the identity has signed in).
async fn announce<C: ConnectionTrait>(
    txn: &C,
    appid: &str,
    open_id: &str,
    change: StatusChange,
    now: i64,
) -> Result<(), DbErr> {
    if change == StatusChange::Unchanged {
        return Ok(());
    }
    let account_id = wx_user::Entity::find()
        .filter(wx_user::Column::Appid.eq(appid))
        .filter(wx_user::Column::OpenId.eq(open_id))
        .all(txn)
        .await?
        .into_iter()
        .find_map(|identity| identity.flow_user_id);
    let (appid, open_id) = (appid.to_owned(), open_id.to_owned());
    let event = match change {
        StatusChange::Subscribed => WebhookEvent::FollowerSubscribed {
            appid,
            open_id,
            account_id,
        },
        _ => WebhookEvent::FollowerUnsubscribed {
            appid,
            open_id,
            account_id,
        },
    };
    crate::webhooks::enqueue(txn, &event, now).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_keys_name_the_account_and_fit_the_column() {
        assert_eq!(receipt_key("wx1", "msg:42"), "wx1:msg:42");
        assert_eq!(receipt_key("wx1", &"x".repeat(500)).chars().count(), 191);
    }
}
