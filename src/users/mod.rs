//! Users: the account (`flow_user`, one person) and their WeChat identities (`wx_user`, one openid
//! under one app), behind the [`UserRepo`] trait so that the OAuth core and the login flows do not
//! depend on how they are stored; [`followers`]: the Official Account follower status of
//! identities.

pub mod avatars;
pub mod followers;
pub mod merge;
mod sea;

pub use avatars::{AvatarStore, SeaAvatarStore};
pub use followers::{FollowerStatus, FollowerStore, QrSceneValue, Receipt, StatusChange};
pub use sea::SeaUserRepo;

use async_trait::async_trait;

use crate::ids::{AppId, InvalidAppId, OpenId, UnionId};

/// One account: the seed's flowUser. `id` is the `flow_user_id` of the tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub union_id: Option<String>,
    pub nick_name: Option<String>,
    /// How WeChat's content check of a nickname the user typed fared, when not a plain pass:
    /// `review` (flagged for a human look) or `pending` (to be checked again).
    pub nick_name_status: Option<String>,
    pub avatar: Option<String>,
    pub mobile: Option<String>,
    /// Where `mobile` came from, and when it was verified (unix seconds).
    pub mobile_source: Option<PhoneSource>,
    pub mobile_verified_at: Option<i64>,
    /// `mobile` without its country code, and the code (stored since numbers may be reused).
    pub mobile_pure: Option<String>,
    pub mobile_country_code: Option<String>,
    /// When an administrator disabled the account: it gets no tokens while this is set.
    pub disabled_at: Option<i64>,
}

impl Account {
    /// The phone number WeChat's code API verified at or after `since` (unix seconds), with
    /// when: what may be handed out again instead of paying for another exchange. Numbers from
    /// relayed encrypted data, and numbers stored without their parts, never are.
    pub fn phone_verified_since(&self, since: i64) -> Option<(PhoneNumber, i64)> {
        let verified_at = self.mobile_verified_at.filter(|at| *at >= since)?;
        if self.mobile_source != Some(PhoneSource::CodeApi) {
            return None;
        }
        Some((
            PhoneNumber {
                phone_number: self.mobile.clone()?,
                pure_phone_number: self.mobile_pure.clone()?,
                country_code: self.mobile_country_code.clone()?,
            },
            verified_at,
        ))
    }

    /// Whether an administrator disabled the account.
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

/// One WeChat identity: the seed's wxuser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeChatIdentity {
    pub id: i64,
    pub appid: String,
    pub open_id: String,
    pub union_id: Option<String>,
    pub account_id: Option<i64>,
    pub nick_name: Option<String>,
    pub avatar_url: Option<String>,
    pub sex: Option<i32>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub country: Option<String>,
    pub language: Option<String>,
    pub mobile: Option<String>,
    /// Where `mobile` came from, and when it was verified (unix seconds).
    pub mobile_source: Option<PhoneSource>,
    pub mobile_verified_at: Option<i64>,
}

/// A phone number as WeChat reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    /// With the country code for numbers outside mainland China.
    pub phone_number: String,
    pub pure_phone_number: String,
    pub country_code: String,
}

/// How a phone number was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneSource {
    /// WeChat's server answered `getuserphonenumber` for the button's code (the current API).
    CodeApi,
    /// Decrypted from `encryptedData` the Mini Program relayed (the older API): AES-CBC without
    /// a MAC, so it is only as good as the cap on failed decryptions makes forgery hard.
    EncryptedData,
}

impl PhoneSource {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CodeApi => "code_api",
            Self::EncryptedData => "encrypted_data",
        }
    }

    /// The source stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "code_api" => Some(Self::CodeApi),
            "encrypted_data" => Some(Self::EncryptedData),
            _ => None,
        }
    }
}

/// A profile as WeChat reported it (sns/userinfo or decrypted Mini Program user info).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub nick_name: Option<String>,
    pub avatar_url: Option<String>,
    pub sex: Option<i32>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub country: Option<String>,
    pub language: Option<String>,
}

/// Who WeChat says a user is in one app: the key an identity is recorded under (with the profile
/// beside it when WeChat gave one) and a login ticket vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityKey {
    pub appid: AppId,
    pub open_id: OpenId,
    pub union_id: Option<UnionId>,
}

impl IdentityKey {
    /// The key of `open_id` under `appid`, with the unionid WeChat gave (if any).
    pub fn new(
        appid: AppId,
        open_id: impl Into<OpenId>,
        union_id: Option<impl Into<UnionId>>,
    ) -> Self {
        Self {
            appid,
            open_id: open_id.into(),
            union_id: union_id.map(Into::into),
        }
    }

    /// The key as stored in a row's `appid`, `open_id` and `union_id` columns; an appid that is
    /// not one is refused.
    pub fn from_stored(
        appid: &str,
        open_id: String,
        union_id: Option<String>,
    ) -> Result<Self, InvalidAppId> {
        Ok(Self::new(AppId::parse_exact(appid)?, open_id, union_id))
    }

    /// Whether a row's `appid`, `open_id` and `union_id` columns hold exactly this key.
    pub fn is_stored_as(&self, appid: &str, open_id: &str, union_id: Option<&str>) -> bool {
        self.appid.as_str() == appid
            && self.open_id.as_str() == open_id
            && self.union_id.as_ref().map(UnionId::as_str) == union_id
    }
}

/// How WeChat's content security check of a nickname the user typed came out, as the account
/// keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NickNameStatus {
    /// WeChat found nothing wrong.
    Passed,
    /// WeChat asked for a human look: shown, and flagged for the administrators.
    Review,
    /// WeChat could not be asked: shown for now, asked again later.
    Pending,
}

impl NickNameStatus {
    /// The stored name (`None` for a plain pass).
    pub fn stored(self) -> Option<&'static str> {
        match self {
            Self::Passed => None,
            Self::Review => Some("review"),
            Self::Pending => Some("pending"),
        }
    }

    /// The name shown to callers.
    pub fn as_str(self) -> &'static str {
        self.stored().unwrap_or("passed")
    }
}

/// What a person chose in the Mini Program's profile pickers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChosenProfile {
    /// The nickname from `<input type="nickname">`, with how its content check fared.
    pub nick_name: Option<(String, NickNameStatus)>,
    /// The URL at which wxauth serves the avatar from `chooseAvatar`.
    pub avatar: Option<String>,
}

/// A repository failure.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("no such identity")]
    NotFound,
}

/// Storage of accounts and identities.
#[async_trait]
pub trait UserRepo: Send + Sync {
    /// The identity of `open_id` under `appid`, if wxauth has seen it.
    async fn find_identity(
        &self,
        appid: &str,
        open_id: &str,
    ) -> Result<Option<WeChatIdentity>, RepoError>;

    /// Record what WeChat vouched for: create or update the identity, keep its unionid (a known
    /// unionid is never replaced by none), apply the profile, link it to the account of its
    /// unionid (created when missing) and stamp the login time. Returns the identity, its account
    /// and whether the identity was seen for the first time.
    async fn record_identity(
        &self,
        vouched: &IdentityKey,
        profile: Option<&Profile>,
        now: i64,
    ) -> Result<(WeChatIdentity, Account, bool), RepoError>;

    /// An account by id.
    async fn account(&self, id: i64) -> Result<Option<Account>, RepoError>;

    /// The identity of `open_id` under `appid` and the account it signs in as (on the token
    /// path: a store that can join them reads both at once).
    async fn find_identity_with_account(
        &self,
        appid: &str,
        open_id: &str,
    ) -> Result<Option<(WeChatIdentity, Option<Account>)>, RepoError> {
        let Some(identity) = self.find_identity(appid, open_id).await? else {
            return Ok(None);
        };
        let account = match identity.account_id {
            Some(id) => self.account(id).await?,
            None => None,
        };
        Ok(Some((identity, account)))
    }

    /// Whether any account has this unionid.
    async fn union_exists(&self, union_id: &str) -> Result<bool, RepoError>;

    /// Store what the person chose on their account; returns the account as it now is.
    async fn set_chosen_profile(
        &self,
        account_id: i64,
        chosen: &ChosenProfile,
        now: i64,
    ) -> Result<Account, RepoError>;

    /// A pending nickname check came back: when the account still shows `nick_name` awaiting
    /// its check, mark it `settled` (`None`: WeChat refused it, and it is removed). Returns
    /// whether the account changed.
    async fn settle_nick_name(
        &self,
        account_id: i64,
        nick_name: &str,
        settled: Option<NickNameStatus>,
        now: i64,
    ) -> Result<bool, RepoError>;

    /// Whether account `account_id` follows the base official account, as last recorded
    /// (`None`: no status recorded, or no base account).
    async fn follows_base_account(&self, account_id: i64) -> Result<Option<bool>, RepoError>;

    /// Store a verified phone number on the identity and its account, with where it came from;
    /// `now` is when it was verified.
    async fn set_mobile(
        &self,
        appid: &str,
        open_id: &str,
        phone: &PhoneNumber,
        source: PhoneSource,
        now: i64,
    ) -> Result<(), RepoError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_matches_its_stored_columns_exactly() {
        let key = IdentityKey::from_stored("wx4f4bc4dec97d474b", "o-1".into(), Some("u-1".into()))
            .unwrap();
        assert!(key.is_stored_as("wx4f4bc4dec97d474b", "o-1", Some("u-1")));
        assert!(!key.is_stored_as("wx4f4bc4dec97d474b", "o-1", None));
        assert!(!key.is_stored_as("wx4f4bc4dec97d474B", "o-1", Some("u-1")));
        assert!(IdentityKey::from_stored("wx", "o-1".into(), None).is_err());
    }
}
