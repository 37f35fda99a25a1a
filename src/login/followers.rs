//! Official Account follower status (issue 17 §3): kept current from two sources.
//!
//! - **At sign-in.** The H5 base hop asks `cgi-bin/user/info` ([`FollowerSync::look_up`]) and
//!   records what it says ([`FollowerSync::record_lookup`]). WeChat failing here never fails the
//!   sign-in: the lookup is bounded by [`LOOKUP_TIMEOUT`], and a failure is logged and counted
//!   (`wxauth_follower_sync_total{source="sign_in"}`).
//! - **From pushes.** WeChat pushes `subscribe`, `unsubscribe` and `SCAN` events to the account's
//!   message URL ([`FollowerSync::receive`]). The signature is verified before anything of the
//!   body is read; a push signed more than [`PUSH_FRESHNESS`] seconds from now is refused (a
//!   captured request cannot be replayed later); each message is applied once, its receipt
//!   inserted in the same transaction as the change (WeChat retries three times when it has no
//!   answer within 5 s). In safe mode (WXBizMsgCrypt) the event itself is signed and is
//!   believed. In plain mode the signature covers no body, so the event only says *whom* to look
//!   at: the status recorded is the one `cgi-bin/user/info` gives (identity only from WeChat's
//!   servers).
//!
//! Each change of status is audited once (`follower.subscribed`, `follower.unsubscribed`).

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{Audit, AuditEvent, AuditKind, Outcome};
use crate::clock::SharedClock;
use crate::fault::Fault;
use crate::metrics::FOLLOWER_SYNC;
use crate::users::{FollowerStatus, FollowerStore, QrSceneValue, Receipt, StatusChange};
use crate::wechat::account_messages::{
    AccountMessage, MessageKind, MessageMode, MessageQuery, QrScene,
};
use crate::wechat::official_account::FollowerInfo;
use crate::wechat::{AppId, OpenId, WeChat, WeChatError};

/// How long a sign-in waits for `cgi-bin/user/info` before going on without it.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// How far (seconds) a push's signed timestamp may be from our clock.
pub const PUSH_FRESHNESS: i64 = 300;
/// How long (seconds) a push's receipt is kept to recognise WeChat's retries of it (WeChat
/// retries within a minute; a day covers a queue that drained late).
pub const RECEIPT_TTL: i64 = 24 * 3600;

/// Why a request to a message URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum FollowerError {
    /// Unknown account, a signature that does not verify, a stale timestamp, a body that does
    /// not decrypt or parse: one answer for all (the detail goes to the debug log).
    #[error("refused: {0}")]
    Refused(String),
    /// Our storage failed.
    #[error("store: {0}")]
    Store(String),
}

impl FollowerError {
    /// Whose fault this is. A refusal says nothing of which check failed.
    pub fn fault(&self) -> Fault {
        match self {
            Self::Refused(_) => Fault::Caller(
                "message refused: the account, signature, timestamp or message does not verify"
                    .to_owned(),
            ),
            Self::Store(message) => Fault::Internal(message.clone()),
        }
    }
}

impl From<sea_orm::DbErr> for FollowerError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Store(error.to_string())
    }
}

/// What became of a push (the answer to WeChat is `success` in every case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A follower event, applied now.
    Applied(StatusChange),
    /// WeChat's retry of a message already applied.
    Duplicate,
    /// A message or event wxauth does not act upon.
    Ignored,
    /// A plain-mode event whose status `cgi-bin/user/info` could not confirm now.
    Unconfirmed,
}

/// Follower status, from sign-ins and pushes.
#[derive(Clone)]
pub struct FollowerSync {
    pub wechat: Arc<WeChat>,
    pub store: FollowerStore,
    pub clock: SharedClock,
    pub audit: Audit,
}

fn count(source: &'static str, outcome: &'static str) {
    metrics::counter!(FOLLOWER_SYNC, "source" => source, "outcome" => outcome).increment(1);
}

fn scene_value(scene: &Option<QrScene>) -> Option<QrSceneValue> {
    match scene {
        Some(QrScene::Id(id)) => Some(QrSceneValue::Id(*id)),
        Some(QrScene::Str(s)) => Some(QrSceneValue::Str(s.clone())),
        None => None,
    }
}

/// The status `cgi-bin/user/info` gave (a `qr_scene` of 0 and an empty `qr_scene_str` are none).
pub fn status_of(info: &FollowerInfo) -> FollowerStatus {
    let qr_scene = match (&info.qr_scene_str, info.qr_scene) {
        (Some(s), _) if !s.is_empty() => Some(QrSceneValue::Str(s.chars().take(64).collect())),
        (_, Some(id)) if id != 0 => Some(QrSceneValue::Id(id)),
        _ => None,
    };
    FollowerStatus {
        subscribed: info.follows(),
        subscribe_time: info.subscribe_time.filter(|_| info.follows()),
        subscribe_scene: info
            .subscribe_scene
            .clone()
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(64).collect()),
        qr_scene,
        tagid_list: info.tagid_list.clone().filter(|_| info.follows()),
        complete: true,
    }
}

/// The status a verified (safe-mode) event states; `None` for messages that change nothing.
fn status_from_event(message: &AccountMessage) -> Option<FollowerStatus> {
    match &message.kind {
        MessageKind::Subscribe { scene } => Some(FollowerStatus {
            subscribed: true,
            subscribe_time: Some(message.create_time),
            subscribe_scene: Some(
                if scene.is_some() {
                    "ADD_SCENE_QR_CODE"
                } else {
                    "ADD_SCENE_OTHERS"
                }
                .to_owned(),
            ),
            qr_scene: scene_value(scene),
            tagid_list: None,
            complete: false,
        }),
        MessageKind::Unsubscribe => Some(FollowerStatus {
            subscribed: false,
            ..FollowerStatus::default()
        }),
        MessageKind::Scan { scene } => Some(FollowerStatus {
            subscribed: true,
            qr_scene: scene_value(scene),
            ..FollowerStatus::default()
        }),
        MessageKind::Other => None,
    }
}

/// A push or check that did not verify. An account without a message token is refused like a
/// bad signature (logged at `warn` by the handler, with the reason): the sender learns nothing.
fn refused(error: WeChatError) -> FollowerError {
    match error {
        WeChatError::Store(message) | WeChatError::StoreBusy(message) => {
            FollowerError::Store(message)
        }
        other => FollowerError::Refused(other.to_string()),
    }
}

impl FollowerSync {
    /// `cgi-bin/user/info` for `open_id` in `appid`, within [`LOOKUP_TIMEOUT`]; `None` (logged
    /// and counted) when WeChat cannot say now.
    pub async fn look_up(&self, appid: &AppId, open_id: &OpenId) -> Option<FollowerInfo> {
        let lookup = self.wechat.follower_info(appid, open_id);
        match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
            Ok(Ok(info)) if info.openid == *open_id => Some(info),
            Ok(Ok(_)) => {
                tracing::warn!(appid = %appid, "user/info answered for another openid");
                count("sign_in", "wechat_failed");
                None
            }
            Ok(Err(error)) => {
                tracing::warn!(appid = %appid, %error, "follower status lookup failed");
                count("sign_in", "wechat_failed");
                None
            }
            Err(_) => {
                tracing::warn!(appid = %appid, "follower status lookup timed out");
                count("sign_in", "wechat_failed");
                None
            }
        }
    }

    /// Record what [`look_up`](Self::look_up) found. A storage failure is logged and counted,
    /// never returned: the sign-in goes on.
    pub async fn record_lookup(&self, appid: &AppId, info: &FollowerInfo) {
        let now = self.clock.now();
        match self
            .store
            .record(appid.as_str(), info.openid.as_str(), &status_of(info), now)
            .await
        {
            Ok(change) => {
                count("sign_in", "recorded");
                self.audit_change(appid, &info.openid, change, "user_info")
                    .await;
            }
            Err(error) => {
                tracing::error!(appid = %appid, %error, "storing follower status");
                count("sign_in", "store_failed");
            }
        }
    }

    /// The `echostr` check of `GET /api/wechat/mp/{appid}/events`.
    pub async fn echo(&self, appid: &str, query: &MessageQuery) -> Result<String, FollowerError> {
        let appid = AppId::parse(appid)
            .map_err(|_| FollowerError::Refused("malformed appid".to_owned()))?;
        self.wechat
            .verify_message_echo(&appid, query)
            .await
            .map_err(refused)
    }

    /// A push to `POST /api/wechat/mp/{appid}/events`.
    pub async fn receive(
        &self,
        appid: &str,
        query: &MessageQuery,
        body: &str,
    ) -> Result<Received, FollowerError> {
        let appid = AppId::parse(appid)
            .map_err(|_| FollowerError::Refused("malformed appid".to_owned()))?;
        let (message, signed_at) = self
            .wechat
            .open_account_message(&appid, query, body)
            .await
            .map_err(refused)?;
        let now = self.clock.now();
        if (now - signed_at).abs() > PUSH_FRESHNESS {
            return Err(FollowerError::Refused(format!(
                "push signed {}s from now",
                now - signed_at
            )));
        }
        let status = match (&message.kind, message.mode) {
            (MessageKind::Other, _) => {
                count("push", "ignored");
                return Ok(Received::Ignored);
            }
            (_, MessageMode::Safe) => status_from_event(&message),
            // The body is not signed: ask WeChat's server about this openid.
            (_, MessageMode::Plain) => match self.look_up(&appid, &message.open_id).await {
                Some(info) => Some(status_of(&info)),
                None => {
                    count("push", "wechat_failed");
                    return Ok(Received::Unconfirmed);
                }
            },
        };
        let receipt = self
            .store
            .record_pushed(
                appid.as_str(),
                &message.retry_key,
                message.open_id.as_str(),
                status.as_ref(),
                now,
                now.saturating_add(RECEIPT_TTL),
            )
            .await?;
        // Webhooks: when an outbox exists, the follower.* events are to be written inside
        // `record_pushed`'s transaction (see README, "Follower status").
        match receipt {
            Receipt::Duplicate => {
                count("push", "duplicate");
                Ok(Received::Duplicate)
            }
            Receipt::Applied(change) => {
                count("push", "recorded");
                self.audit_change(&appid, &message.open_id, change, message.mode.as_str())
                    .await;
                Ok(Received::Applied(change))
            }
        }
    }

    async fn audit_change(
        &self,
        appid: &AppId,
        open_id: &OpenId,
        change: StatusChange,
        source: &str,
    ) {
        let kind = match change {
            StatusChange::Subscribed => AuditKind::FollowerSubscribed,
            StatusChange::Unsubscribed => AuditKind::FollowerUnsubscribed,
            StatusChange::Unchanged => return,
        };
        self.audit
            .record(
                AuditEvent::new(kind, Outcome::Ok)
                    .subject(open_id.as_str())
                    .detail("appid", appid.as_str())
                    .detail("open_id", open_id.as_str())
                    .detail("source", source),
            )
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(json: serde_json::Value) -> FollowerInfo {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_follower_through_a_qr_code() {
        let status = status_of(&info(serde_json::json!({
            "subscribe": 1, "openid": "o1", "subscribe_time": 1700000000,
            "subscribe_scene": "ADD_SCENE_QR_CODE", "qr_scene": 98765, "qr_scene_str": "",
            "tagid_list": [2, 101]
        })));
        assert!(status.subscribed);
        assert_eq!(status.qr_scene, Some(QrSceneValue::Id(98765)));
        assert_eq!(status.tagid_list, Some(vec![2, 101]));
        assert!(status.complete);
    }

    #[test]
    fn someone_who_does_not_follow() {
        let status = status_of(&info(serde_json::json!({
            "subscribe": 0, "openid": "o1", "unionid": "u1"
        })));
        assert!(!status.subscribed);
        assert_eq!(status.subscribe_time, None);
        assert_eq!(status.qr_scene, None);
    }
}
