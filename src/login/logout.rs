//! Signing out at the end-session endpoint (OpenID Connect RP-Initiated Logout 1.0): validate the
//! request ([`crate::oauth::end_session`]), then, for the browser session the cookie names:
//!
//! - without an `id_token_hint` naming this session's user, ask the person first (§2: the OP
//!   SHOULD ask): a confirmation form carrying the session's CSRF token, so that a page elsewhere
//!   cannot sign people out (logout CSRF);
//! - else end the session, revoke the asking client's refresh-token families for the account,
//!   send back-channel logout tokens to the account's clients that registered for them
//!   ([`crate::oauth::backchannel`]), and audit it.
//!
//! Afterwards the browser goes to the registered `post_logout_redirect_uri` (with `state`), or
//! sees the signed-out page.

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbErr};
use url::Url;

use crate::audit::{Audit, AuditEvent, AuditKind, Outcome};
use crate::login::browser_session::BrowserSessions;
use crate::oauth::backchannel::{self, EndedSession};
use crate::oauth::client_registry::ClientRegistry;
use crate::oauth::end_session::{self, EndSessionError, EndSessionParams, EndSessionRequest};
use crate::oauth::token_service::TokenService;
use crate::users::{RepoError, UserRepo};

/// The end-session endpoint's service (built once, in the application state).
#[derive(Clone)]
pub struct Logout {
    db: DatabaseConnection,
    sessions: BrowserSessions,
    clients: ClientRegistry,
    tokens: TokenService,
    users: Arc<dyn UserRepo>,
    audit: Audit,
}

/// What happens next.
#[derive(Debug)]
pub enum LogoutStep {
    /// Ask the person: a form posting the request back with this CSRF token.
    Confirm {
        csrf_token: String,
        /// The name of who is signed in (their WeChat nickname), when known.
        user_name: Option<String>,
        request: Box<EndSessionRequest>,
    },
    /// Done (`ended`: a session was ended): send the browser to `redirect`, or show the
    /// signed-out page.
    Done { redirect: Option<Url>, ended: bool },
}

/// Why signing out failed.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    /// The request is refused (a bad hint, an unregistered redirect, …): a page, never a redirect.
    #[error(transparent)]
    Refused(EndSessionError),
    /// Storage failed (the text of the storage error).
    #[error("storage: {0}")]
    Storage(String),
}

impl From<EndSessionError> for LogoutError {
    fn from(e: EndSessionError) -> Self {
        match e {
            EndSessionError::Db(e) => e.into(),
            e => LogoutError::Refused(e),
        }
    }
}

impl From<DbErr> for LogoutError {
    fn from(e: DbErr) -> Self {
        LogoutError::Storage(e.to_string())
    }
}

impl From<RepoError> for LogoutError {
    fn from(e: RepoError) -> Self {
        LogoutError::Storage(e.to_string())
    }
}

impl Logout {
    pub fn new(
        db: DatabaseConnection,
        sessions: BrowserSessions,
        clients: ClientRegistry,
        tokens: TokenService,
        users: Arc<dyn UserRepo>,
        audit: Audit,
    ) -> Self {
        Self {
            db,
            sessions,
            clients,
            tokens,
            users,
            audit,
        }
    }

    /// Handle an end-session request from the browser holding `cookie`; `confirmation` is the
    /// CSRF token of the confirmation form, when it is its answer.
    pub async fn end_session(
        &self,
        cookie: Option<&str>,
        params: &EndSessionParams,
        confirmation: Option<&str>,
    ) -> Result<LogoutStep, LogoutError> {
        let request = end_session::validate(&self.clients, &self.tokens, params).await?;
        let session = match cookie {
            Some(cookie) => self
                .sessions
                .current(cookie)
                .await?
                .map(|session| (cookie, session)),
            None => None,
        };
        let Some((cookie, session)) = session else {
            // Nothing to end here: the browser is signed out already.
            return Ok(LogoutStep::Done {
                redirect: request.redirect,
                ended: false,
            });
        };
        let hint_names_user = request
            .hint
            .as_ref()
            .is_some_and(|hint| hint.sub == session.account_id.to_string());
        let confirmed =
            confirmation.is_some_and(|token| self.sessions.csrf_matches(&session, token));
        if !hint_names_user && !confirmed {
            let user_name = self
                .users
                .account(session.account_id)
                .await?
                .and_then(|account| account.nick_name);
            return Ok(LogoutStep::Confirm {
                csrf_token: self.sessions.csrf_token(&session),
                user_name,
                request: Box::new(request),
            });
        }
        self.sessions.end(cookie).await?;
        let revoked = match &request.client {
            Some(client) => {
                end_session::revoke_client_grants(
                    &self.db,
                    &self.tokens,
                    &client.client_id,
                    session.account_id,
                )
                .await?
            }
            None => 0,
        };
        let to_notify =
            backchannel::clients_to_notify(&self.db, &self.clients, session.account_id).await?;
        let notified = backchannel::notify(
            &self.tokens,
            to_notify,
            EndedSession {
                account_id: session.account_id,
                sid: Some(self.sessions.sid(&session)),
            },
        )
        .await;
        let mut event = AuditEvent::new(AuditKind::SignOut, Outcome::Ok)
            .account(session.account_id)
            .detail("revoked_families", revoked)
            .detail("backchannel_clients", notified)
            .detail(
                "confirmed_by",
                if hint_names_user {
                    "id_token_hint"
                } else {
                    "form"
                },
            );
        if let Some(client) = &request.client {
            event = event.client(client.client_id.clone());
        }
        self.audit.record(event).await;
        Ok(LogoutStep::Done {
            redirect: request.redirect,
            ended: true,
        })
    }
}
