//! The Mini Program's profile pickers (头像昵称填写能力): since 2022 `wx.getUserProfile` gives a
//! grey avatar and "微信用户", so a page asks the person with `<input type="nickname">` and
//! `<button open-type="chooseAvatar">` and sends both here with its session.
//!
//! - **The nickname** is checked with WeChat's content security API (`msg_sec_check` v2, the
//!   user's openid, scene 1) because the page's own check can be skipped by calling wxauth
//!   directly: `risky` is refused and audited; `review` is stored and flagged; when WeChat
//!   cannot be asked, the nickname is stored as `pending` and queued in `nickname_check`, which
//!   [`MiniProgramProfiles::recheck_pending`] (run by the janitor) works off.
//! - **The avatar** is decoded, squared, shrunk and re-encoded ([`crate::users::avatars`]),
//!   kept in the [`AvatarStore`] under the hash of its bytes and served at
//!   `{issuer}/avatars/{hash}.jpg`, which becomes the account's `avatar` (and so the `picture`
//!   claim).
//!
//! Each Mini Program user may save a few profiles an hour ([`Limit::MaProfileUser`]), counted
//! per identity rather than per session, so that a new `wx.login` does not reset the count.

use std::sync::Arc;

use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use entity::nickname_check;

use super::error::LoginError;
use super::mini_program::MiniProgramLogin;
use crate::audit::{Audit, AuditEvent, AuditKind, Outcome};
use crate::clock::SharedClock;
use crate::fault::Fault;
use crate::limits::Limit;
use crate::users::avatars::{AvatarRefused, encode_avatar};
use crate::users::{Account, AvatarStore, ChosenProfile, NickNameStatus, UserRepo};
use crate::wechat::content_security::{Suggestion, TextVerdict};
use crate::wechat::{AppId, WeChat};

/// Where avatars are served, under the issuer: `{AVATAR_PATH}/{hash}.jpg`.
pub const AVATAR_PATH: &str = "/avatars";
/// The longest nickname (characters; WeChat's nickname input allows fewer).
pub const MAX_NICK_NAME_CHARS: usize = 64;
/// Pending nickname checks asked again per janitor run.
const RECHECK_BATCH: u64 = 100;
/// The pause before a pending check is tried again, doubling per attempt up to a day.
const RECHECK_BACKOFF_SECS: i64 = 60;
/// After this many attempts, a pending nickname stays pending and is left to an administrator.
const RECHECK_ATTEMPTS: i32 = 20;

/// What a page sends: either part may be missing, not both.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpload {
    pub nick_name: Option<String>,
    /// The chosen avatar file's bytes.
    pub avatar: Option<Vec<u8>>,
}

/// What was saved.
#[derive(Debug, Clone)]
pub struct SavedProfile {
    pub account: Account,
    /// How the nickname's content check fared, when one was sent.
    pub nick_name_status: Option<NickNameStatus>,
    /// Where the new avatar is served, when one was sent.
    pub avatar_url: Option<String>,
}

/// Why a profile was not saved.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(transparent)]
    Login(#[from] LoginError),
    /// WeChat's content check found the nickname risky.
    #[error("this nickname cannot be used: choose another one")]
    NickNameRefused,
    #[error("{0}")]
    Avatar(#[from] AvatarRefused),
    /// This user saved too many profiles lately.
    #[error("too many profile changes; try again later")]
    TooMany { retry_after_secs: u64 },
}

impl ProfileError {
    /// Whose fault the failure is ([`ProfileError::TooMany`] is the caller's; see
    /// [`ProfileError::retry_after_secs`]).
    pub fn fault(&self) -> Fault {
        match self {
            Self::Login(error) => error.fault(),
            other => Fault::Caller(other.to_string()),
        }
    }

    /// For a refusal that passes with time: after how long to try again.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::TooMany { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

impl From<sea_orm::DbErr> for ProfileError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Login(error.into())
    }
}

impl From<crate::users::RepoError> for ProfileError {
    fn from(error: crate::users::RepoError) -> Self {
        Self::Login(error.into())
    }
}

/// The profile pickers' service.
#[derive(Clone)]
pub struct MiniProgramProfiles {
    pub(crate) login: MiniProgramLogin,
    pub(crate) users: Arc<dyn UserRepo>,
    pub(crate) avatars: Arc<dyn AvatarStore>,
    pub(crate) wechat: Arc<WeChat>,
    pub(crate) db: DatabaseConnection,
    pub(crate) clock: SharedClock,
    pub(crate) audit: Audit,
    /// `{issuer}{AVATAR_PATH}`.
    pub(crate) avatar_base: String,
}

/// The account's stored nickname as the person typed it, trimmed; `Err` says what is wrong.
fn clean_nick_name(nick_name: &str) -> Result<String, LoginError> {
    let nick_name = nick_name.trim();
    if nick_name.is_empty() {
        return Err(LoginError::invalid("nickname is empty"));
    }
    if nick_name.chars().count() > MAX_NICK_NAME_CHARS {
        return Err(LoginError::invalid(format!(
            "nickname is longer than {MAX_NICK_NAME_CHARS} characters"
        )));
    }
    if nick_name.chars().any(char::is_control) {
        return Err(LoginError::invalid("nickname contains control characters"));
    }
    Ok(nick_name.to_owned())
}

impl MiniProgramProfiles {
    /// Save what the session's user chose: see the module documentation.
    pub async fn save(
        &self,
        session_id: &str,
        upload: ProfileUpload,
    ) -> Result<SavedProfile, ProfileError> {
        let nick_name = upload
            .nick_name
            .as_deref()
            .map(clean_nick_name)
            .transpose()?;
        if nick_name.is_none() && upload.avatar.is_none() {
            return Err(LoginError::invalid("send a nickname, an avatar or both").into());
        }
        let identity = self.login.session_identity(session_id).await?;
        let account = self
            .users
            .find_identity_with_account(identity.appid.as_str(), identity.open_id.as_str())
            .await?
            .and_then(|(_, account)| account)
            .ok_or(LoginError::SessionUnknown)?;
        if let Some(limits) = crate::limits::current()
            && let Err(refused) = limits
                .check(
                    Limit::MaProfileUser,
                    &format!("{}:{}", identity.appid, identity.open_id),
                )
                .await
        {
            return Err(ProfileError::TooMany {
                retry_after_secs: refused.retry_after_secs(),
            });
        }
        // The picture first: a refused one stops the request before WeChat is asked anything.
        let avatar = match upload.avatar {
            Some(bytes) => Some(
                tokio::task::spawn_blocking(move || encode_avatar(&bytes))
                    .await
                    .map_err(|e| LoginError::Storage(format!("encoding an avatar: {e}")))??,
            ),
            None => None,
        };
        let checked = match nick_name {
            Some(nick_name) => {
                let status = self
                    .check_nick_name(
                        &identity.appid,
                        identity.open_id.as_str(),
                        &nick_name,
                        account.id,
                    )
                    .await?;
                Some((nick_name, status))
            }
            None => None,
        };
        let now = self.clock.now();
        let avatar_url = match &avatar {
            Some(avatar) => {
                self.avatars.put(avatar, now).await?;
                Some(format!("{}/{}.jpg", self.avatar_base, avatar.content_hash))
            }
            None => None,
        };
        let nick_name_status = checked.as_ref().map(|(_, status)| *status);
        let account = self
            .users
            .set_chosen_profile(
                account.id,
                &ChosenProfile {
                    nick_name: checked.clone(),
                    avatar: avatar_url.clone(),
                },
                now,
            )
            .await?;
        match &checked {
            Some((nick_name, NickNameStatus::Pending)) => {
                self.queue_check(
                    account.id,
                    &identity.appid,
                    identity.open_id.as_str(),
                    nick_name,
                    now,
                )
                .await?;
            }
            // A checked nickname replaces any check still waiting for an older one.
            Some(_) => {
                nickname_check::Entity::delete_by_id(account.id)
                    .exec(&self.db)
                    .await?;
            }
            None => {}
        }
        Ok(SavedProfile {
            account,
            nick_name_status,
            avatar_url,
        })
    }

    /// Ask WeChat about `nick_name`: refused when risky (audited), else how it is to be stored.
    async fn check_nick_name(
        &self,
        appid: &AppId,
        open_id: &str,
        nick_name: &str,
        account_id: i64,
    ) -> Result<NickNameStatus, ProfileError> {
        match self
            .wechat
            .check_profile_text(appid, open_id, nick_name)
            .await
        {
            Ok(verdict) => match verdict.suggestion {
                Suggestion::Pass => Ok(NickNameStatus::Passed),
                Suggestion::Review => Ok(NickNameStatus::Review),
                Suggestion::Risky => {
                    self.audit_refusal(account_id, appid, &verdict, "saving")
                        .await;
                    Err(ProfileError::NickNameRefused)
                }
            },
            Err(error) => {
                tracing::warn!(%error, appid = %appid, "nickname check unavailable; stored as pending");
                Ok(NickNameStatus::Pending)
            }
        }
    }

    async fn audit_refusal(
        &self,
        account_id: i64,
        appid: &AppId,
        verdict: &TextVerdict,
        when: &str,
    ) {
        self.audit
            .record(
                AuditEvent::new(AuditKind::NicknameRefused, Outcome::Refused)
                    .account(account_id)
                    .detail("appid", appid.as_str())
                    .detail("label", verdict.label)
                    .detail("trace_id", verdict.trace_id.as_str())
                    .detail("when", when),
            )
            .await;
    }

    /// Queue (or replace) the account's pending check.
    async fn queue_check(
        &self,
        account_id: i64,
        appid: &AppId,
        open_id: &str,
        nick_name: &str,
        now: i64,
    ) -> Result<(), ProfileError> {
        let row = nickname_check::ActiveModel {
            account_id: Set(account_id),
            appid: Set(appid.clone().into()),
            open_id: Set(open_id.to_owned()),
            nick_name: Set(nick_name.to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(now + RECHECK_BACKOFF_SECS),
            created_at: Set(now),
        };
        nickname_check::Entity::insert(row)
            .on_conflict(
                OnConflict::column(nickname_check::Column::AccountId)
                    .update_columns([
                        nickname_check::Column::Appid,
                        nickname_check::Column::OpenId,
                        nickname_check::Column::NickName,
                        nickname_check::Column::Attempts,
                        nickname_check::Column::NextAttemptAt,
                        nickname_check::Column::CreatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// Ask WeChat again about the nicknames whose check is due: a pass clears the flag, a
    /// review keeps it flagged, a risky verdict removes the nickname (audited). A check that
    /// fails again is retried later, with a doubling pause. Returns how many were settled.
    pub async fn recheck_pending(&self) -> Result<u64, LoginError> {
        let now = self.clock.now();
        let due = nickname_check::Entity::find()
            .filter(nickname_check::Column::NextAttemptAt.lte(now))
            .filter(nickname_check::Column::Attempts.lt(RECHECK_ATTEMPTS))
            .order_by_asc(nickname_check::Column::NextAttemptAt)
            .limit(RECHECK_BATCH)
            .all(&self.db)
            .await?;
        let mut settled = 0;
        for check in due {
            let Ok(appid) = AppId::parse(&check.appid) else {
                tracing::warn!(appid = %check.appid, "pending nickname check for a bad appid");
                continue;
            };
            let verdict = match self
                .wechat
                .check_profile_text(&appid, &check.open_id, &check.nick_name)
                .await
            {
                Ok(verdict) => verdict,
                Err(error) => {
                    tracing::info!(%error, appid = %appid, "nickname recheck still unavailable");
                    let pause = Ord::min(
                        RECHECK_BACKOFF_SECS.saturating_mul(1 << check.attempts.clamp(0, 10)),
                        86_400,
                    );
                    nickname_check::Entity::update_many()
                        .col_expr(
                            nickname_check::Column::Attempts,
                            Expr::col(nickname_check::Column::Attempts).add(1),
                        )
                        .col_expr(
                            nickname_check::Column::NextAttemptAt,
                            Expr::value(now + pause),
                        )
                        .filter(nickname_check::Column::AccountId.eq(check.account_id))
                        .filter(nickname_check::Column::NickName.eq(check.nick_name.as_str()))
                        .exec(&self.db)
                        .await?;
                    continue;
                }
            };
            let outcome = match verdict.suggestion {
                Suggestion::Pass => Some(NickNameStatus::Passed),
                Suggestion::Review => Some(NickNameStatus::Review),
                Suggestion::Risky => None,
            };
            let changed = self
                .users
                .settle_nick_name(check.account_id, &check.nick_name, outcome, now)
                .await?;
            if changed && outcome.is_none() {
                self.audit_refusal(check.account_id, &appid, &verdict, "recheck")
                    .await;
            }
            // Only this check goes: a newer nickname queued meanwhile waits for its own.
            nickname_check::Entity::delete_many()
                .filter(nickname_check::Column::AccountId.eq(check.account_id))
                .filter(nickname_check::Column::NickName.eq(check.nick_name.as_str()))
                .exec(&self.db)
                .await?;
            settled += 1;
        }
        Ok(settled)
    }
}

/// The janitor's way in: each sweep asks WeChat about the pending nicknames that are due.
#[async_trait::async_trait]
impl crate::janitor::Chore for MiniProgramProfiles {
    fn name(&self) -> &'static str {
        "nickname rechecks"
    }

    async fn run(&self) -> Result<u64, String> {
        self.recheck_pending().await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames_are_trimmed_and_bounded() {
        assert_eq!(clean_nick_name("  小明 ").unwrap(), "小明");
        assert!(clean_nick_name("   ").is_err());
        assert!(clean_nick_name(&"名".repeat(MAX_NICK_NAME_CHARS + 1)).is_err());
        assert!(clean_nick_name("a\u{0}b").is_err());
    }
}
