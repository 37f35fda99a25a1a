//! Silent sign-in for the H5 pages a Mini Program opens in its `<web-view>`: the Mini Program,
//! whose user has a live session, asks for a web-view ticket for one client
//! ([`WebViewSignIn::mint`]) and puts it in the page's URL; the page redeems it, with the
//! `flow` grant (in `oauth`) or as the `login_hint` of an authorization request
//! ([`WebViewSignIn::redeem`]), which signs the browser that redeems it in with no official
//! account hop. The ticket lives 60 seconds, works once (one conditional UPDATE), and only for
//! the client it was minted for.

use std::sync::Arc;

use super::browser_session::{BrowserSession, BrowserSessions, SignInMethod};
use super::error::LoginError;
use super::mini_program::MiniProgramLogin;
use crate::audit::{Audit, AuditEvent, AuditKind, Outcome, SignInChannel};
use crate::oauth::LoginTickets;
use crate::users::UserRepo;

/// Web-view tickets: minted from Mini Program sessions, redeemed at the authorization endpoint.
#[derive(Clone)]
pub struct WebViewSignIn {
    pub(crate) login: MiniProgramLogin,
    pub(crate) tickets: LoginTickets,
    pub(crate) users: Arc<dyn UserRepo>,
    pub(crate) sessions: BrowserSessions,
    pub(crate) audit: Audit,
}

/// A browser signed in by a web-view ticket.
#[derive(Debug)]
pub struct WebViewSignedIn {
    /// The session cookie's value (set it, never log it).
    pub cookie: String,
    pub session: BrowserSession,
}

impl WebViewSignIn {
    /// A web-view ticket for the user of Mini Program session `session_id`, redeemable by
    /// `client_id` alone (which must exist and have the `flow` grant or the authorization code
    /// flow).
    pub async fn mint(&self, session_id: &str, client_id: &str) -> Result<String, LoginError> {
        let client_id = client_id.trim();
        if client_id.is_empty() {
            return Err(LoginError::invalid(
                "clientId is required: the client whose page redeems the ticket",
            ));
        }
        if !self.tickets.client_may_redeem_web_view(client_id).await? {
            return Err(LoginError::invalid(
                "clientId is not a client that can redeem web-view tickets (it needs the flow grant or authorization_code)",
            ));
        }
        let identity = self.login.session_identity(session_id).await?;
        Ok(self.tickets.mint_web_view(&identity, client_id).await?)
    }

    /// Spend `ticket` for `client_id` and start a browser session for its user. `None` when the
    /// ticket is unknown, spent, expired, minted for another client, or its account is gone or
    /// disabled: one answer for all of them (the reason is audited).
    pub async fn redeem(
        &self,
        ticket: &str,
        client_id: &str,
    ) -> Result<Option<WebViewSignedIn>, LoginError> {
        let identity = match self.tickets.redeem_web_view(ticket, client_id).await? {
            Ok(identity) => identity,
            Err(reason) => {
                self.refused(client_id, reason.as_str()).await;
                return Ok(None);
            }
        };
        let account = self
            .users
            .find_identity_with_account(identity.appid.as_str(), identity.open_id.as_str())
            .await?
            .and_then(|(_, account)| account)
            .filter(|account| !account.is_disabled());
        let Some(account) = account else {
            self.refused(client_id, "no_account").await;
            return Ok(None);
        };
        let (cookie, session) = self
            .sessions
            .start(account.id, SignInMethod::MiniProgramWebView)
            .await?;
        self.audit
            .record(
                AuditEvent::sign_in(SignInChannel::MiniProgramWebView, account.id)
                    .client(client_id)
                    .detail("appid", identity.appid.as_str()),
            )
            .await;
        Ok(Some(WebViewSignedIn { cookie, session }))
    }

    async fn refused(&self, client_id: &str, reason: &str) {
        self.audit
            .record(
                AuditEvent::new(AuditKind::TicketRefused, Outcome::Refused)
                    .client(client_id)
                    .detail("ticket", "web_view")
                    .detail("reason", reason),
            )
            .await;
    }
}
