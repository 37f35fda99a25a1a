//! The console's sign-in and sessions (`/admin`), written once here and used by
//! `http::console`. Admins sign in to this wxauth with WeChat through its own authorization-code
//! flow with PKCE, as the built-in public client [`CONSOLE_CLIENT_ID`] (registered on first use,
//! redirecting to `/admin/callback`); only accounts holding the admin role get in. The bearer of
//! `WXAUTH_ADMIN_TOKEN` may sign in with it as break-glass (throttled like the API's token).
//! The request says `prompt=login`, and the ID token's `auth_time` must be after the sign-in
//! started: an admin always signs in with WeChat again, even when the browser is still signed
//! in to wxauth.
//!
//! A console session is a value sealed by the vault (authenticated encryption under the master
//! key): the actor, its account, its expiry and its CSRF token. It lives
//! [`SESSION_TTL_SECS`]; an account session is also re-checked against the admin role and the
//! account's state on every request, so revoking the role or disabling the account ends it.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::audit::{AuditEvent, AuditKind, Outcome};
use crate::oauth::client_registry::{DEFAULT_ACCESS_TTL, DEFAULT_REFRESH_TTL};
use crate::oauth::id_token::{ID_TOKEN_TYP, IdTokenClaims};
use crate::oauth::params::Params;
use crate::oauth::{ClientChanges, FlowTicketPolicy, NewClient};
use crate::vault::{SealedAt, random_token};

use super::{AccessRefused, Actor, Admin, AdminError};

/// The console's own OAuth client (public, PKCE, first party: no consent page).
pub const CONSOLE_CLIENT_ID: &str = "wxauth-console";
/// Where the console's sign-in comes back.
pub const CALLBACK_PATH: &str = "/admin/callback";
/// How long a console session lives.
pub const SESSION_TTL_SECS: i64 = 30 * 60;
/// How long a sign-in may take (QR scan included).
pub const SIGN_IN_TTL_SECS: i64 = 10 * 60;

const SESSION_AT: (&str, &str, &str) = ("console", "session", "v1");
const SIGN_IN_AT: (&str, &str, &str) = ("console", "sign_in", "v1");

/// A signed-in admin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConsoleSession {
    /// The actor the audit trail names (`console:account:ID` or `console:admin-token`).
    pub actor: String,
    /// The admin's account; `None` for the break-glass token.
    pub account_id: Option<i64>,
    /// Unix seconds.
    pub expires_at: i64,
    /// Every change must carry this.
    pub csrf: String,
}

impl ConsoleSession {
    pub fn actor(&self) -> Actor {
        Actor::from_stored(&self.actor)
    }

    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        !presented.is_empty() && bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// A sign-in in progress: what the browser keeps (sealed) until the callback.
#[derive(Debug, Serialize, Deserialize)]
struct SignInState {
    state: String,
    verifier: String,
    expires_at: i64,
}

/// Where to send the browser, and the sealed value it must bring back.
#[derive(Debug)]
pub struct SignInStart {
    pub authorize_url: String,
    pub sealed_state: String,
}

/// Why a console sign-in was refused (one answer per reason a person can act on).
#[derive(Debug, thiserror::Error)]
pub enum SignInRefused {
    /// The sign-in expired, came back to another browser, or its code was refused.
    #[error("the sign-in could not be completed; please start again")]
    Failed,
    /// The WeChat account is not an admin (or is disabled).
    #[error("this WeChat account is not an administrator of this wxauth")]
    NotAdmin,
    /// A wrong break-glass token.
    #[error("wrong admin token")]
    WrongToken,
    /// Too many wrong tokens from this address.
    #[error("too many failed attempts; try again in {0} s")]
    Throttled(u64),
    #[error(transparent)]
    Admin(#[from] AdminError),
}

impl Admin {
    fn seal_json(&self, value: &impl Serialize, at: (&'static str, &'static str, &str)) -> String {
        let text = serde_json::to_string(value).unwrap_or_default();
        self.vault.seal(&text, SealedAt::new(at.0, at.1, at.2))
    }

    fn open_json<T: for<'de> Deserialize<'de>>(
        &self,
        sealed: &str,
        at: (&'static str, &'static str, &str),
    ) -> Option<T> {
        let text = self
            .vault
            .open(sealed, SealedAt::new(at.0, at.1, at.2))
            .ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The console client, registered (or repointed at this issuer) when needed.
    async fn ensure_console_client(&self, redirect_uri: &str) -> Result<(), AdminError> {
        match self.clients.get(CONSOLE_CLIENT_ID).await? {
            Some(client) if client.redirect_uris == [redirect_uri] => Ok(()),
            Some(_) => {
                self.clients
                    .update(
                        CONSOLE_CLIENT_ID,
                        ClientChanges {
                            redirect_uris: Some(vec![redirect_uri.to_owned()]),
                            ..ClientChanges::default()
                        },
                    )
                    .await?;
                Ok(())
            }
            None => {
                self.clients
                    .create(NewClient {
                        client_id: CONSOLE_CLIENT_ID.into(),
                        secret: None,
                        grant_types: vec!["authorization_code".into()],
                        scopes: vec!["openid".into()],
                        redirect_uris: vec![redirect_uri.to_owned()],
                        public: true,
                        first_party: true,
                        access_token_ttl: DEFAULT_ACCESS_TTL,
                        refresh_token_ttl: DEFAULT_REFRESH_TTL,
                        flow_ticket: FlowTicketPolicy::Required,
                        display_name: Some("wxauth 控制台 · console".into()),
                        ..NewClient::default()
                    })
                    .await?;
                Ok(())
            }
        }
    }

    /// Start a WeChat sign-in to the console: an authorization request of the console client
    /// with PKCE, and the sealed state the browser keeps until the callback.
    pub async fn start_console_sign_in(&self, issuer: &str) -> Result<SignInStart, AdminError> {
        let redirect_uri = format!("{issuer}{CALLBACK_PATH}");
        self.ensure_console_client(&redirect_uri).await?;
        let verifier = random_token(32);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = random_token(16);
        let mut url = url::Url::parse(&format!("{issuer}/oauth/authorize"))
            .map_err(|e| AdminError::Internal(format!("issuer URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", CONSOLE_CLIENT_ID)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("scope", "openid")
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            // Always a fresh WeChat sign-in: a browser session left signed in to wxauth (a
            // shared computer) must not open the console by itself.
            .append_pair("prompt", "login");
        let sealed_state = self.seal_json(
            &SignInState {
                state,
                verifier,
                expires_at: self.clock.now() + SIGN_IN_TTL_SECS,
            },
            SIGN_IN_AT,
        );
        Ok(SignInStart {
            authorize_url: url.into(),
            sealed_state,
        })
    }

    /// Finish a WeChat sign-in: the code is redeemed at our own token endpoint (PKCE), and the
    /// account it names gets a console session if it is an active admin.
    pub async fn finish_console_sign_in(
        &self,
        issuer: &str,
        sealed_state: Option<&str>,
        state: &str,
        code: &str,
    ) -> Result<(ConsoleSession, String), SignInRefused> {
        let kept: SignInState = sealed_state
            .and_then(|s| self.open_json(s, SIGN_IN_AT))
            .ok_or(SignInRefused::Failed)?;
        let same_state = bool::from(kept.state.as_bytes().ct_eq(state.as_bytes()));
        if !same_state || kept.expires_at < self.clock.now() {
            return Err(SignInRefused::Failed);
        }
        let redirect_uri = format!("{issuer}{CALLBACK_PATH}");
        let body = [
            ("grant_type", "authorization_code"),
            ("client_id", CONSOLE_CLIENT_ID),
            ("code", code),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", kept.verifier.as_str()),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let params = Params::merge(Vec::new(), body).map_err(|_| SignInRefused::Failed)?;
        let tokens = crate::oauth::token_endpoint::exchange(&self.oauth, None, params)
            .await
            .map_err(|e| {
                tracing::debug!(error = ?e, "console sign-in: code refused");
                SignInRefused::Failed
            })?;
        let account_id: i64 = tokens
            .flow_user_id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .ok_or(SignInRefused::Failed)?;
        // `prompt=login` is in the request, but the request passed through the browser: the
        // ID token's auth_time must show a WeChat sign-in made after this one started.
        let started_at = kept.expires_at - SIGN_IN_TTL_SECS;
        let auth_time = match tokens.id_token.as_deref() {
            Some(id_token) => self
                .tokens
                .keys()
                .verify::<IdTokenClaims>(id_token, ID_TOKEN_TYP)
                .await
                .ok()
                .and_then(|claims| claims.auth_time),
            None => None,
        };
        if auth_time.is_none_or(|t| t < started_at) {
            tracing::debug!(
                ?auth_time,
                started_at,
                "console sign-in: no fresh WeChat sign-in"
            );
            return Err(SignInRefused::Failed);
        }
        if !self.is_active_admin(account_id).await? {
            self.audit
                .record(
                    AuditEvent::new(AuditKind::SignIn, Outcome::Refused)
                        .account(account_id)
                        .subject("console")
                        .detail("reason", "not_admin"),
                )
                .await;
            return Err(SignInRefused::NotAdmin);
        }
        let actor = Actor::console_account(account_id);
        self.audit
            .record(
                AuditEvent::new(AuditKind::SignIn, Outcome::Ok)
                    .account(account_id)
                    .subject("console")
                    .actor(actor.as_str()),
            )
            .await;
        Ok(self.new_session(actor, Some(account_id)))
    }

    /// Break-glass: sign in to the console with `WXAUTH_ADMIN_TOKEN` (throttled per address
    /// like the API's bearer token).
    pub async fn console_token_sign_in(
        &self,
        presented: &str,
        ip: Option<IpAddr>,
    ) -> Result<(ConsoleSession, String), SignInRefused> {
        let presented = Some(presented).filter(|p| !p.is_empty());
        match self.authenticate(presented, ip).await {
            Ok(_) => {}
            Err(AccessRefused::Unauthorized) => return Err(SignInRefused::WrongToken),
            Err(AccessRefused::Throttled { retry_after_secs }) => {
                return Err(SignInRefused::Throttled(retry_after_secs));
            }
        }
        let actor = Actor::console_token();
        self.audit
            .record(
                AuditEvent::new(AuditKind::SignIn, Outcome::Ok)
                    .subject("console")
                    .actor(actor.as_str()),
            )
            .await;
        Ok(self.new_session(actor, None))
    }

    /// A fresh session and its sealed cookie value.
    fn new_session(&self, actor: Actor, account_id: Option<i64>) -> (ConsoleSession, String) {
        let session = ConsoleSession {
            actor: actor.as_str().to_owned(),
            account_id,
            expires_at: self.clock.now() + SESSION_TTL_SECS,
            csrf: random_token(24),
        };
        let sealed = self.seal_json(&session, SESSION_AT);
        (session, sealed)
    }

    /// The session a cookie holds, if it is genuine, unexpired, and (for an account) the
    /// account is still an active admin.
    pub async fn console_session(
        &self,
        sealed: &str,
    ) -> Result<Option<ConsoleSession>, AdminError> {
        let Some(session) = self.open_json::<ConsoleSession>(sealed, SESSION_AT) else {
            return Ok(None);
        };
        if session.expires_at < self.clock.now() {
            return Ok(None);
        }
        if let Some(account_id) = session.account_id
            && !self.is_active_admin(account_id).await?
        {
            return Ok(None);
        }
        Ok(Some(session))
    }
}
