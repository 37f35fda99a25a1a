//! Mini Program login (the seed's WxUserController, done safely): a `wx.login` code becomes a
//! stored WeChat identity, a server-side session holding the session_key, and a login ticket for
//! the `flow` grant; the session then lets the page save the user's profile and phone number.
//!
//! The session_key never leaves this module in clear: it is sealed in `mini_session` and only
//! opened here to decrypt data the Mini Program sends. The page holds an opaque `sessionId`
//! (256 random bits; only its keyed hash is stored). A new `wx.login` for the same identity
//! replaces its earlier sessions, as WeChat replaces the session_key.
//!
//! Data the page relays under the session_key (`encryptedData`, `rawData` + `signature`) is
//! AES-CBC without a MAC, so it is treated as what it is: a claim that a few failed attempts
//! must not be able to forge. Every failure gets one answer, failures are capped per session
//! ([`DECRYPT_FAILURE_CAP`]), and the identity (openId, unionId) never comes from it: it comes
//! from `jscode2session`, and relayed data naming another one is refused.

use std::sync::Arc;

use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use entity::mini_session;

use super::error::LoginError;
use super::session_writes::{SessionWrite, SessionWrites};
use crate::app_registry::{AppKind, AppRegistry};
use crate::audit::{Audit, AuditEvent, AuditKind, Outcome, SignInChannel};
use crate::clock::SharedClock;
use crate::fault::Fault;
use crate::oauth::login_tickets::LoginTickets;
use crate::oauth::mini_program_sign_in::{MiniProgramSignIn, MiniProgramSignedIn};
use crate::store::Store;
use crate::users::{Account, IdentityKey, PhoneSource, Profile, UserRepo, WeChatIdentity};
use crate::vault::{SealedAt, Vault, random_token};
use crate::wechat::crypto::verify_raw_data_signature;
use crate::wechat::mini_program::{decrypt_phone_number, decrypt_user_info};
use crate::wechat::{AppId, SessionKey, UnionId, WeChat};

/// How long a Mini Program session lasts (seconds). WeChat does not publish the session_key's
/// lifetime; a day covers a page that asks for the phone number well after login.
pub const SESSION_TTL: i64 = 24 * 3600;

/// How many decryptions of relayed data may fail under one session_key before the session is
/// ended. `encryptedData` is AES-CBC without a MAC: with unlimited failures, a padding oracle
/// forges data under a key it never sees in some 10⁴ requests; this cap leaves it 5.
pub const DECRYPT_FAILURE_CAP: i32 = 5;

/// The outcome of a code exchange.
#[derive(Debug, Clone)]
pub struct MiniProgramSession {
    /// Who the session is: the identity WeChat vouched for, with the unionid it has now (the
    /// one recorded earlier when WeChat gave none this time).
    pub identity: IdentityKey,
    /// True the first time wxauth sees this identity.
    pub is_new: bool,
    /// The opaque handle of the server-side session (shown once).
    pub session_id: String,
    /// The account the identity belongs to.
    pub account: Account,
}

pub use crate::users::PhoneNumber;

/// The phone number `/ma/phone` answers: where it came from, when WeChat verified it, and
/// whether it was handed out again instead of paying for another exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedPhone {
    pub phone: PhoneNumber,
    pub source: PhoneSource,
    pub verified_at: i64,
    pub reused: bool,
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
    identity: IdentityKey,
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
    /// The sign-ins' session writes, batched under load.
    session_writes: SessionWrites,
    wechat: Arc<WeChat>,
    audit: Audit,
    /// How long a number verified through the code API may be handed out again (seconds; 0:
    /// never, every request pays for an exchange).
    phone_reuse_secs: i64,
}

impl MiniProgramLogin {
    pub fn new(
        store: Store,
        apps: AppRegistry,
        users: Arc<dyn UserRepo>,
        tickets: LoginTickets,
        wechat: Arc<WeChat>,
        audit: Audit,
        phone_reuse_secs: i64,
    ) -> Self {
        Self {
            session_writes: SessionWrites::new(store.db.clone()),
            db: store.db,
            vault: store.vault,
            clock: store.clock,
            apps,
            users,
            tickets,
            wechat,
            audit,
            phone_reuse_secs,
        }
    }

    /// Exchange a `wx.login` code: record the identity WeChat vouches for, link it to its
    /// account and open a server-side session for it.
    pub async fn sign_in(&self, appid: &str, code: &str) -> Result<MiniProgramSession, LoginError> {
        Ok(self.sign_in_minting(appid, code, None).await?.0)
    }

    /// [`Self::sign_in`]; with `ticket_for: Some(client)`, also a login ticket for the session's
    /// identity (bound to `client` when it names one), written in the same round trip as the
    /// session ([`SessionWrites`]).
    async fn sign_in_minting(
        &self,
        appid: &str,
        code: &str,
        ticket_for: Option<Option<&str>>,
    ) -> Result<(MiniProgramSession, Option<String>), LoginError> {
        let appid = self.mini_program(appid).await?;
        let code = code.trim();
        if code.is_empty() {
            return Err(LoginError::invalid("code is required"));
        }
        let session = self.wechat.code_to_session(&appid, code).await?;
        let now = self.clock.now();
        let vouched = IdentityKey::new(appid, session.openid, session.unionid);
        let (recorded, account, is_new) = self.users.record_identity(&vouched, None, now).await?;
        let identity = IdentityKey {
            union_id: recorded.union_id.map(UnionId::from),
            ..vouched
        };

        // WeChat replaced the session_key: earlier sessions of this identity holding another key
        // are dead. Those holding this one (the answers to a repeated code) stay usable.
        let key_hash = self.vault.fingerprint(&format!(
            "mini_session_key\n{}",
            session.session_key.expose()
        ));
        let session_id = random_token(32);
        let session_row = mini_session::ActiveModel {
            id_hash: Set(self.vault.fingerprint(&session_id)),
            appid: Set(identity.appid.clone().into()),
            open_id: Set(identity.open_id.clone().into()),
            union_id: Set(identity.union_id.clone().map(Into::into)),
            session_key_enc: Set(self.vault.seal(
                session.session_key.expose(),
                SealedAt::new(
                    "mini_session",
                    "session_key_enc",
                    &self.vault.fingerprint(&session_id),
                ),
            )),
            session_key_hash: Set(Some(key_hash.clone())),
            expires_at: Set(now + SESSION_TTL),
            created_at: Set(now),
            decrypt_failures: Set(0),
            decrypt_pending: Set(0),
        };
        let (ticket, ticket_row) = match ticket_for {
            Some(client_id) => {
                let (ticket, row) = self.tickets.prepare(&identity, client_id);
                (Some(ticket), Some(row))
            }
            None => (None, None),
        };
        // The earlier sessions end, the new one and the ticket are stored, in one round trip
        // shared with the sign-ins queued meanwhile ([`SessionWrites`]). Outside a transaction,
        // so that a write the database ends to settle a deadlock (a parallel sign-in of the same
        // person on MariaDB or PostgreSQL) is sent again rather than answered 503.
        self.session_writes
            .write(SessionWrite {
                appid: identity.appid.clone().into(),
                open_id: identity.open_id.clone().into(),
                key_hash,
                expires_at: now + SESSION_TTL,
                session: session_row,
                ticket: ticket_row,
            })
            .await?;
        self.audit
            .record(
                AuditEvent::sign_in(SignInChannel::MiniProgram, account.id)
                    .detail("appid", identity.appid.as_str()),
            )
            .await;
        Ok((
            MiniProgramSession {
                identity,
                is_new,
                session_id,
                account,
            },
            ticket,
        ))
    }

    /// getSessionResult: [`Self::sign_in`], plus a single-use login ticket for the `flow` grant
    /// bound to the session's identity and, when `client_id` names one, to that client (checked
    /// before the code is spent: it must exist and have the `flow` grant).
    pub async fn start_session(
        &self,
        appid: &str,
        code: &str,
        client_id: Option<&str>,
    ) -> Result<(MiniProgramSession, String), LoginError> {
        let client_id = client_id.map(str::trim).filter(|c| !c.is_empty());
        if let Some(client) = client_id
            && !self.tickets.client_may_redeem(client).await?
        {
            return Err(LoginError::invalid(
                "clientId is not a client that can redeem login tickets (it needs the flow grant)",
            ));
        }
        match self.sign_in_minting(appid, code, Some(client_id)).await? {
            (session, Some(ticket)) => Ok((session, ticket)),
            (_, None) => Err(LoginError::Storage(
                "a sign-in asked for a ticket came back without one".to_owned(),
            )),
        }
    }

    /// Decrypt and store the user's profile (the seed's saveMaUser). Nothing is stored unless
    /// the data decrypts with the session's key, carries this app's watermark, names the
    /// session's openId (when it names one) and no unionId but the one WeChat's server gave the
    /// session, and, when a signature is given, matches it. The identity stays what
    /// `jscode2session` said: a unionId in the data is checked, never adopted.
    pub async fn save_user(
        &self,
        session_id: &str,
        info: &EncryptedUserInfo,
    ) -> Result<WeChatIdentity, LoginError> {
        if info.raw_data.is_some() != info.signature.is_some() {
            return Err(LoginError::invalid(
                "rawData and signature go together: give both or neither",
            ));
        }
        let (session, data) = self
            .verify_open_data(session_id, |session| {
                if let (Some(raw), Some(signature)) = (&info.raw_data, &info.signature) {
                    verify_raw_data_signature(raw, signature, &session.session_key)
                        .map_err(|e| e.to_string())?;
                }
                let identity = &session.identity;
                let data = decrypt_user_info(
                    &session.session_key,
                    &info.encrypted_data,
                    &info.iv,
                    &identity.appid,
                )
                .map_err(|e| e.to_string())?;
                if let Some(open_id) = &data.open_id
                    && open_id != identity.open_id.as_str()
                {
                    return Err("openId is not the session's".to_owned());
                }
                if let Some(union_id) = &data.union_id {
                    match &identity.union_id {
                        Some(known) if union_id == known.as_str() => {}
                        Some(_) => return Err("unionId is not the session's".to_owned()),
                        None => return Err("unionId given for a session without one".to_owned()),
                    }
                }
                Ok(data)
            })
            .await?;
        let profile = Profile {
            nick_name: data.nick_name,
            avatar_url: data.avatar_url,
            sex: data.gender,
            city: data.city,
            province: data.province,
            country: data.country,
            language: data.language,
        };
        // The unionid is what jscode2session said, never what the page relayed.
        let (identity, _, _) = self
            .users
            .record_identity(&session.identity, Some(&profile), self.clock.now())
            .await?;
        Ok(identity)
    }

    /// The number the session's account may have handed out again (`/ma/phone/known`): when
    /// WeChat's code API verified it, if reuse is on and that was recent enough.
    pub async fn known_phone(&self, session_id: &str) -> Result<Option<i64>, LoginError> {
        let session = self.open_session(session_id).await?;
        Ok(self
            .reusable_phone(&session)
            .await?
            .map(|(_, verified_at)| verified_at))
    }

    /// The session's account's phone number that may be handed out again, if any.
    async fn reusable_phone(
        &self,
        session: &OpenSession,
    ) -> Result<Option<(PhoneNumber, i64)>, LoginError> {
        if self.phone_reuse_secs <= 0 {
            return Ok(None);
        }
        let since = self.clock.now() - self.phone_reuse_secs;
        let found = self
            .users
            .find_identity_with_account(
                session.identity.appid.as_str(),
                session.identity.open_id.as_str(),
            )
            .await?;
        Ok(found
            .and_then(|(_, account)| account)
            .and_then(|account| account.phone_verified_since(since)))
    }

    /// The user's phone number: with `reuse`, the number WeChat's code API verified for this
    /// account within `WXAUTH_PHONE_REUSE_DAYS`, without paying for another exchange. Otherwise
    /// (or when there is none) by the proof, stored on the identity and its account with its
    /// provenance: `code_api` when WeChat's server answered for the button's code (the current
    /// API, recommended), `encrypted_data` when the page relayed the older encrypted form, whose
    /// failures count toward the session's cap like the profile's.
    pub async fn save_phone(
        &self,
        session_id: &str,
        proof: Option<&PhoneProof>,
        reuse: bool,
    ) -> Result<SavedPhone, LoginError> {
        if reuse {
            let session = self.open_session(session_id).await?;
            if let Some((phone, verified_at)) = self.reusable_phone(&session).await? {
                metrics::counter!(
                    crate::metrics::PHONE_NUMBERS,
                    "appid" => session.identity.appid.to_string(),
                    "outcome" => "reused"
                )
                .increment(1);
                return Ok(SavedPhone {
                    phone,
                    source: PhoneSource::CodeApi,
                    verified_at,
                    reused: true,
                });
            }
        }
        let Some(proof) = proof else {
            return Err(LoginError::invalid(
                "no phone number to reuse: send getPhoneNumber's code",
            ));
        };
        let (identity, phone, source) = match proof {
            PhoneProof::Code(code) => {
                let session = self.open_session(session_id).await?;
                let code = code.trim();
                if code.is_empty() {
                    return Err(LoginError::invalid("code is required"));
                }
                let info = self
                    .wechat
                    .user_phone_number(&session.identity.appid, code)
                    .await?;
                metrics::counter!(
                    crate::metrics::PHONE_NUMBERS,
                    "appid" => session.identity.appid.to_string(),
                    "outcome" => "exchanged"
                )
                .increment(1);
                let phone = PhoneNumber {
                    phone_number: info.phone_number,
                    pure_phone_number: info.pure_phone_number,
                    country_code: info.country_code,
                };
                (session.identity, phone, PhoneSource::CodeApi)
            }
            PhoneProof::Encrypted { encrypted_data, iv } => {
                let (session, phone) = self
                    .verify_open_data(session_id, |session| {
                        let data = decrypt_phone_number(
                            &session.session_key,
                            encrypted_data,
                            iv,
                            &session.identity.appid,
                        )
                        .map_err(|e| e.to_string())?;
                        Ok(PhoneNumber {
                            phone_number: data.phone_number,
                            pure_phone_number: data.pure_phone_number,
                            country_code: data.country_code,
                        })
                    })
                    .await?;
                (session.identity, phone, PhoneSource::EncryptedData)
            }
        };
        if phone.phone_number.is_empty() {
            return Err(LoginError::invalid("WeChat returned no phone number"));
        }
        let now = self.clock.now();
        self.users
            .set_mobile(
                identity.appid.as_str(),
                identity.open_id.as_str(),
                &phone,
                source,
                now,
            )
            .await?;
        Ok(SavedPhone {
            phone,
            source,
            verified_at: now,
            reused: false,
        })
    }

    /// Run `check` on data the page relayed under the session's key, within the session's cap
    /// of failed decryptions.
    ///
    /// An attempt is reserved first, by one conditional UPDATE that succeeds only while the
    /// failures so far plus the attempts under way are below [`DECRYPT_FAILURE_CAP`]; so however
    /// many requests arrive at once, at most that many decryptions can fail. A success gives its
    /// attempt back. A failure is counted, and the failure that reaches the cap deletes the
    /// session (one conditional DELETE: only one request sees it go, and audits it). Every
    /// failure is [`LoginError::OpenDataRefused`], the same answer whatever went wrong; what went
    /// wrong goes to the debug log, without key material.
    async fn verify_open_data<T>(
        &self,
        session_id: &str,
        check: impl FnOnce(&OpenSession) -> Result<T, String>,
    ) -> Result<(OpenSession, T), LoginError> {
        let id_hash = self.vault.fingerprint(session_id.trim());
        let reserved = mini_session::Entity::update_many()
            .col_expr(
                mini_session::Column::DecryptPending,
                Expr::col(mini_session::Column::DecryptPending).add(1),
            )
            .filter(mini_session::Column::IdHash.eq(id_hash.as_str()))
            .filter(crate::db::mini_sessions::live_at(self.clock.now()))
            .filter(
                Expr::col(mini_session::Column::DecryptFailures)
                    .add(Expr::col(mini_session::Column::DecryptPending))
                    .lt(DECRYPT_FAILURE_CAP),
            )
            .exec(&self.db)
            .await?;
        if reserved.rows_affected != 1 {
            return Err(LoginError::SessionUnknown);
        }
        let session = match self.find_session(&id_hash).await {
            Ok(session) => session,
            Err(error) => {
                self.release_attempt(&id_hash).await?;
                return Err(error);
            }
        };
        match check(&session) {
            Ok(value) => {
                self.release_attempt(&id_hash).await?;
                Ok((session, value))
            }
            Err(reason) => {
                tracing::debug!(appid = %session.identity.appid, %reason, "Mini Program open data refused");
                self.count_failure(&id_hash, &session).await?;
                Err(LoginError::OpenDataRefused)
            }
        }
    }

    /// Give back an attempt that did not fail.
    async fn release_attempt(&self, id_hash: &str) -> Result<(), LoginError> {
        mini_session::Entity::update_many()
            .col_expr(
                mini_session::Column::DecryptPending,
                Expr::col(mini_session::Column::DecryptPending).sub(1),
            )
            .filter(mini_session::Column::IdHash.eq(id_hash))
            .filter(mini_session::Column::DecryptPending.gt(0))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Count a failed decryption; the one that reaches the cap ends the session.
    async fn count_failure(&self, id_hash: &str, session: &OpenSession) -> Result<(), LoginError> {
        mini_session::Entity::update_many()
            .col_expr(
                mini_session::Column::DecryptFailures,
                Expr::col(mini_session::Column::DecryptFailures).add(1),
            )
            .col_expr(
                mini_session::Column::DecryptPending,
                Expr::col(mini_session::Column::DecryptPending).sub(1),
            )
            .filter(mini_session::Column::IdHash.eq(id_hash))
            .exec(&self.db)
            .await?;
        let ended = mini_session::Entity::delete_many()
            .filter(mini_session::Column::IdHash.eq(id_hash))
            .filter(mini_session::Column::DecryptFailures.gte(DECRYPT_FAILURE_CAP))
            .exec(&self.db)
            .await?;
        if ended.rows_affected == 1 {
            let identity = &session.identity;
            tracing::warn!(
                appid = %identity.appid,
                "a Mini Program session reached its cap of failed decryptions and was ended"
            );
            let account = self
                .users
                .find_identity(identity.appid.as_str(), identity.open_id.as_str())
                .await?
                .and_then(|identity| identity.account_id);
            let mut event = AuditEvent::new(AuditKind::DecryptCapReached, Outcome::Refused)
                .detail("appid", identity.appid.as_str())
                .detail("failures", DECRYPT_FAILURE_CAP);
            if let Some(account) = account {
                event = event.account(account);
            }
            self.audit.record(event).await;
        }
        Ok(())
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

    /// Who the live session `session_id` is: the identity `jscode2session` vouched for.
    pub async fn session_identity(&self, session_id: &str) -> Result<IdentityKey, LoginError> {
        Ok(self.open_session(session_id).await?.identity)
    }

    /// The live session of `session_id` with its session_key opened.
    /// Who a live session belongs to (its session_key stays sealed): the identity, its account
    /// and when the session began (the sign-in time of what it approves).
    pub async fn session_account(
        &self,
        session_id: &str,
    ) -> Result<(WeChatIdentity, Account, i64), LoginError> {
        let row = crate::db::find_unique(
            mini_session::Entity::find_by_id(self.vault.fingerprint(session_id.trim()))
                .filter(crate::db::mini_sessions::live_at(self.clock.now())),
            &self.db,
        )
        .await?
        .ok_or(LoginError::SessionUnknown)?;
        let (identity, account) = self
            .users
            .find_identity_with_account(&row.appid, &row.open_id)
            .await?
            .and_then(|(identity, account)| account.map(|a| (identity, a)))
            .ok_or(LoginError::SessionUnknown)?;
        Ok((identity, account, row.created_at))
    }

    async fn open_session(&self, session_id: &str) -> Result<OpenSession, LoginError> {
        self.find_session(&self.vault.fingerprint(session_id.trim()))
            .await
    }

    /// The live session whose id hashes to `id_hash`, its session_key opened.
    async fn find_session(&self, id_hash: &str) -> Result<OpenSession, LoginError> {
        let row = crate::db::find_unique(
            mini_session::Entity::find_by_id(id_hash)
                .filter(crate::db::mini_sessions::live_at(self.clock.now())),
            &self.db,
        )
        .await?
        .ok_or(LoginError::SessionUnknown)?;
        let session_key = self
            .vault
            .open(
                &row.session_key_enc,
                SealedAt::new("mini_session", "session_key_enc", &row.id_hash),
            )
            .map_err(|e| LoginError::Storage(format!("opening a session key: {e}")))?;
        let identity = IdentityKey::from_stored(&row.appid, row.open_id, row.union_id)
            .map_err(|_| LoginError::Storage(format!("stored appid {:?}", row.appid)))?;
        Ok(OpenSession {
            identity,
            session_key: SessionKey::new(session_key),
        })
    }
}

/// The `mini_program` grant's way in: [`MiniProgramLogin::sign_in`], its failure classified.
#[async_trait::async_trait]
impl MiniProgramSignIn for MiniProgramLogin {
    async fn sign_in(&self, appid: &str, code: &str) -> Result<MiniProgramSignedIn, Fault> {
        let session = MiniProgramLogin::sign_in(self, appid, code)
            .await
            .map_err(|error| error.fault())?;
        Ok(MiniProgramSignedIn {
            account: session.account,
            session_id: session.session_id,
        })
    }
}
