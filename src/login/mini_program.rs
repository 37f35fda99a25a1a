//! Mini Program login (the seed's WxUserController, done safely): a `wx.login` code becomes a
//! stored WeChat identity, a server-side session holding the session_key, and a login ticket for
//! the `flow` grant; the session then lets the page save the user's profile and phone number.
//!
//! The session_key never leaves this module in clear: it is sealed in `mini_session` and only
//! opened here to decrypt data the Mini Program sends. The page holds an opaque `sessionId`
//! (256 random bits; only its keyed hash is stored). A new `wx.login` for the same identity
//! replaces its earlier sessions, as WeChat replaces the session_key.

use std::sync::Arc;

use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::Value;

use entity::mini_session;

use super::error::LoginError;
use super::ticket::{LoginTickets, TicketIdentity};
use crate::app_registry::{AppKind, AppRegistry};
use crate::audit::{Audit, AuditEvent, SignInChannel};
use crate::clock::SharedClock;
use crate::store::Store;
use crate::users::{Account, Profile, UserRepo, VouchedIdentity, WeChatIdentity};
use crate::vault::{SealedAt, Vault, random_token};
use crate::wechat::crypto::{decrypt_mini_program_data, verify_raw_data_signature};
use crate::wechat::{AppId, SessionKey, WeChat};

/// How long a Mini Program session lasts (seconds). WeChat does not publish the session_key's
/// lifetime; a day covers a page that asks for the phone number well after login.
pub const SESSION_TTL: i64 = 24 * 3600;

/// The outcome of a code exchange.
#[derive(Debug, Clone)]
pub struct MiniProgramSession {
    pub appid: String,
    pub open_id: String,
    pub union_id: Option<String>,
    /// True the first time wxauth sees this identity.
    pub is_new: bool,
    /// The opaque handle of the server-side session (shown once).
    pub session_id: String,
    /// The account the identity belongs to.
    pub account: Account,
}

/// A phone number as WeChat reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    /// With the country code for numbers outside mainland China.
    pub phone_number: String,
    pub pure_phone_number: String,
    pub country_code: String,
}

/// How the page proves the phone number.
#[derive(Debug, Clone)]
pub enum PhoneProof {
    /// The current API: the `code` of the getPhoneNumber button.
    Code(String),
    /// The older API: data encrypted with the session_key.
    Encrypted { encrypted_data: String, iv: String },
}

/// What the page sends to save the user's profile.
#[derive(Debug, Clone)]
pub struct EncryptedUserInfo {
    pub encrypted_data: String,
    pub iv: String,
    pub raw_data: Option<String>,
    pub signature: Option<String>,
}

/// A live session, its session_key opened.
struct OpenSession {
    appid: AppId,
    open_id: String,
    union_id: Option<String>,
    session_key: SessionKey,
}

/// Mini Program login.
#[derive(Clone)]
pub struct MiniProgramLogin {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
    apps: AppRegistry,
    users: Arc<dyn UserRepo>,
    tickets: LoginTickets,
    wechat: Arc<WeChat>,
    audit: Audit,
}

impl MiniProgramLogin {
    pub fn new(
        store: Store,
        apps: AppRegistry,
        users: Arc<dyn UserRepo>,
        tickets: LoginTickets,
        wechat: Arc<WeChat>,
        audit: Audit,
    ) -> Self {
        Self {
            db: store.db,
            vault: store.vault,
            clock: store.clock,
            apps,
            users,
            tickets,
            wechat,
            audit,
        }
    }

    /// Exchange a `wx.login` code: record the identity WeChat vouches for, link it to its
    /// account and open a server-side session for it.
    pub async fn sign_in(&self, appid: &str, code: &str) -> Result<MiniProgramSession, LoginError> {
        let appid = self.mini_program(appid).await?;
        let code = code.trim();
        if code.is_empty() {
            return Err(LoginError::invalid("code is required"));
        }
        let session = self.wechat.code_to_session(&appid, code).await?;
        let now = self.clock.now();
        let vouched = VouchedIdentity {
            appid: appid.as_str().to_owned(),
            open_id: session.openid.as_str().to_owned(),
            union_id: session.unionid.as_ref().map(|u| u.as_str().to_owned()),
            profile: None,
        };
        let (identity, account, is_new) = self.users.record_identity(&vouched, now).await?;

        // WeChat replaced the session_key: earlier sessions of this identity are dead.
        mini_session::Entity::delete_many()
            .filter(mini_session::Column::Appid.eq(identity.appid.as_str()))
            .filter(mini_session::Column::OpenId.eq(identity.open_id.as_str()))
            .exec(&self.db)
            .await?;
        let session_id = random_token(32);
        mini_session::ActiveModel {
            id_hash: Set(self.vault.fingerprint(&session_id)),
            appid: Set(identity.appid.clone()),
            open_id: Set(identity.open_id.clone()),
            union_id: Set(identity.union_id.clone()),
            session_key_enc: Set(self.vault.seal(
                session.session_key.expose(),
                SealedAt::new(
                    "mini_session",
                    "session_key_enc",
                    &self.vault.fingerprint(&session_id),
                ),
            )),
            expires_at: Set(now + SESSION_TTL),
            created_at: Set(now),
        }
        .insert(&self.db)
        .await?;
        self.audit
            .record(
                AuditEvent::sign_in(SignInChannel::MiniProgram, account.id)
                    .detail("appid", identity.appid.as_str()),
            )
            .await;
        Ok(MiniProgramSession {
            appid: identity.appid,
            open_id: identity.open_id,
            union_id: identity.union_id,
            is_new,
            session_id,
            account,
        })
    }

    /// A single-use login ticket for the `flow` grant, bound to the session's identity.
    pub async fn ticket_for(&self, session: &MiniProgramSession) -> Result<String, LoginError> {
        Ok(self
            .tickets
            .mint(&TicketIdentity {
                appid: session.appid.clone(),
                open_id: session.open_id.clone(),
                union_id: session.union_id.clone(),
            })
            .await?)
    }

    /// Decrypt and store the user's profile (the seed's saveMaUser). Nothing is stored unless
    /// the data decrypts with the session's key, carries this app's watermark, belongs to the
    /// session's user and, when a signature is given, matches it.
    pub async fn save_user(
        &self,
        session_id: &str,
        info: &EncryptedUserInfo,
    ) -> Result<WeChatIdentity, LoginError> {
        let session = self.open_session(session_id).await?;
        match (&info.raw_data, &info.signature) {
            (Some(raw), Some(signature)) => {
                verify_raw_data_signature(raw, signature, &session.session_key)
                    .map_err(|_| LoginError::invalid("signature does not match rawData"))?;
            }
            (None, None) => {}
            _ => {
                return Err(LoginError::invalid(
                    "rawData and signature go together: give both or neither",
                ));
            }
        }
        let data = decrypt_mini_program_data(
            &session.session_key,
            &info.encrypted_data,
            &info.iv,
            &session.appid,
        )
        .map_err(|e| LoginError::invalid(format!("encryptedData rejected: {e}")))?;
        if let Some(open_id) = data.get("openId").and_then(Value::as_str)
            && open_id != session.open_id
        {
            return Err(LoginError::invalid("encryptedData belongs to another user"));
        }
        let union_id = match (
            session.union_id,
            data.get("unionId").and_then(Value::as_str),
        ) {
            (Some(known), Some(given)) if known != given => {
                return Err(LoginError::invalid("encryptedData carries another unionId"));
            }
            (known, given) => known.or_else(|| given.map(str::to_owned)),
        };
        let text = |key: &str| {
            data.get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .filter(|s| !s.is_empty())
        };
        let profile = Profile {
            nick_name: text("nickName"),
            avatar_url: text("avatarUrl"),
            sex: data
                .get("gender")
                .and_then(Value::as_i64)
                .and_then(|g| i32::try_from(g).ok()),
            city: text("city"),
            province: text("province"),
            country: text("country"),
            language: text("language"),
        };
        let vouched = VouchedIdentity {
            appid: session.appid.as_str().to_owned(),
            open_id: session.open_id,
            union_id,
            profile: Some(profile),
        };
        let (identity, _, _) = self
            .users
            .record_identity(&vouched, self.clock.now())
            .await?;
        Ok(identity)
    }

    /// Get the user's phone number from WeChat and store it on the identity and its account.
    pub async fn save_phone(
        &self,
        session_id: &str,
        proof: &PhoneProof,
    ) -> Result<PhoneNumber, LoginError> {
        let session = self.open_session(session_id).await?;
        let phone = match proof {
            PhoneProof::Code(code) => {
                let code = code.trim();
                if code.is_empty() {
                    return Err(LoginError::invalid("code is required"));
                }
                let info = self.wechat.user_phone_number(&session.appid, code).await?;
                PhoneNumber {
                    phone_number: info.phone_number,
                    pure_phone_number: info.pure_phone_number,
                    country_code: info.country_code,
                }
            }
            PhoneProof::Encrypted { encrypted_data, iv } => {
                let data = decrypt_mini_program_data(
                    &session.session_key,
                    encrypted_data,
                    iv,
                    &session.appid,
                )
                .map_err(|e| LoginError::invalid(format!("encryptedData rejected: {e}")))?;
                let field = |key: &str| {
                    data.get(key)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| LoginError::invalid(format!("encryptedData has no {key}")))
                };
                PhoneNumber {
                    phone_number: field("phoneNumber")?,
                    pure_phone_number: field("purePhoneNumber")?,
                    country_code: field("countryCode")?,
                }
            }
        };
        if phone.phone_number.is_empty() {
            return Err(LoginError::invalid("WeChat returned no phone number"));
        }
        self.users
            .set_mobile(
                session.appid.as_str(),
                &session.open_id,
                &phone.phone_number,
                self.clock.now(),
            )
            .await?;
        Ok(phone)
    }

    /// `appid` as a registered Mini Program, else a 400 naming it.
    async fn mini_program(&self, appid: &str) -> Result<AppId, LoginError> {
        let parsed = AppId::parse(appid.trim())
            .map_err(|_| LoginError::invalid("appId is not a WeChat appid"))?;
        match self.apps.kind(parsed.as_str()).await? {
            Some(AppKind::MiniProgram) => Ok(parsed),
            _ => Err(LoginError::invalid(format!(
                "appId {parsed} is not a registered Mini Program"
            ))),
        }
    }

    /// The live session of `session_id` with its session_key opened.
    async fn open_session(&self, session_id: &str) -> Result<OpenSession, LoginError> {
        let row = mini_session::Entity::find_by_id(self.vault.fingerprint(session_id.trim()))
            .filter(mini_session::Column::ExpiresAt.gt(self.clock.now()))
            .one(&self.db)
            .await?
            .ok_or(LoginError::SessionUnknown)?;
        let session_key = self
            .vault
            .open(
                &row.session_key_enc,
                SealedAt::new("mini_session", "session_key_enc", &row.id_hash),
            )
            .map_err(|e| LoginError::Storage(format!("opening a session key: {e}")))?;
        let appid = AppId::parse(&row.appid)
            .map_err(|_| LoginError::Storage(format!("stored appid {:?}", row.appid)))?;
        Ok(OpenSession {
            appid,
            open_id: row.open_id,
            union_id: row.union_id,
            session_key: SessionKey::new(session_key),
        })
    }
}
