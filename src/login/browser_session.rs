//! Browser sessions: after a WeChat sign-in at the authorization endpoint, the browser holds an
//! opaque cookie (256 random bits; only its keyed hash is stored) naming a server-side session,
//! so that the next authorization is silent. `POST /oauth/logout` ends it.

use std::sync::Arc;

use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use entity::browser_session;

use crate::clock::SharedClock;
use crate::oauth::authorize::SignedInUser;
use crate::vault::{Vault, random_token};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "wxauth_session";
/// How long a browser session lasts (seconds) from sign-in.
pub const BROWSER_SESSION_TTL: i64 = 8 * 3600;

/// How the user signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    /// Official-account web authorization inside WeChat (`snsapi_userinfo`).
    WeChatWeb,
    /// Open Platform website QR login (`snsapi_login`).
    WeChatQr,
    /// A web-view ticket a Mini Program session minted, redeemed by the page in its `<web-view>`.
    MiniProgramWebView,
}

impl SignInMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WeChatWeb => "wechat_web",
            Self::WeChatQr => "wechat_qr",
            Self::MiniProgramWebView => "mini_program_web_view",
        }
    }
}

/// A live browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    /// The keyed hash of the cookie (also what CSRF tokens are bound to).
    pub id_hash: String,
    pub account_id: i64,
    pub auth_time: i64,
    pub expires_at: i64,
}

/// Browser session storage.
#[derive(Clone)]
pub struct BrowserSessions {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
}

impl BrowserSessions {
    pub fn new(db: DatabaseConnection, vault: Arc<Vault>, clock: SharedClock) -> Self {
        Self { db, vault, clock }
    }

    /// Start a session for `account_id`; returns the cookie value (shown once) and the session.
    pub async fn start(
        &self,
        account_id: i64,
        method: SignInMethod,
    ) -> Result<(String, BrowserSession), DbErr> {
        let cookie = random_token(32);
        let now = self.clock.now();
        let session = BrowserSession {
            id_hash: self.vault.fingerprint(&cookie),
            account_id,
            auth_time: now,
            expires_at: now.saturating_add(BROWSER_SESSION_TTL),
        };
        browser_session::ActiveModel {
            id_hash: Set(session.id_hash.clone()),
            account_id: Set(account_id),
            method: Set(method.as_str().to_owned()),
            auth_time: Set(now),
            expires_at: Set(session.expires_at),
            created_at: Set(now),
        }
        .insert(&self.db)
        .await?;
        Ok((cookie, session))
    }

    /// The live session a cookie names.
    pub async fn current(&self, cookie: &str) -> Result<Option<BrowserSession>, DbErr> {
        Ok(crate::db::find_unique(
            browser_session::Entity::find_by_id(self.vault.fingerprint(cookie))
                .filter(browser_session::Column::ExpiresAt.gt(self.clock.now())),
            &self.db,
        )
        .await?
        .map(|row| BrowserSession {
            id_hash: row.id_hash,
            account_id: row.account_id,
            auth_time: row.auth_time,
            expires_at: row.expires_at,
        }))
    }

    /// End the session a cookie names (nothing happens for an unknown cookie).
    pub async fn end(&self, cookie: &str) -> Result<(), DbErr> {
        browser_session::Entity::delete_by_id(self.vault.fingerprint(cookie))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The session's OIDC `sid` (Front-/Back-Channel Logout): a keyed hash of the session, so
    /// that it names the session without revealing anything that opens it.
    pub fn sid(&self, session: &BrowserSession) -> String {
        self.vault.fingerprint(&format!("sid:{}", session.id_hash))
    }

    /// The session's user, as the authorization endpoint's core sees it.
    pub fn signed_in_user(&self, session: &BrowserSession) -> SignedInUser {
        SignedInUser {
            account_id: session.account_id,
            auth_time: session.auth_time,
            sid: Some(self.sid(session)),
        }
    }

    /// A CSRF token for forms shown to this session (a keyed hash of the session).
    pub fn csrf_token(&self, session: &BrowserSession) -> String {
        self.vault.fingerprint(&format!("csrf:{}", session.id_hash))
    }

    /// Whether `token` is this session's CSRF token (constant-time).
    pub fn csrf_matches(&self, session: &BrowserSession, token: &str) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.csrf_token(session);
        expected.len() == token.len() && bool::from(expected.as_bytes().ct_eq(token.as_bytes()))
    }
}
