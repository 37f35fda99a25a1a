//! The WeChat credential broker: the company's other services fetch an app's upstream
//! credentials (access token, jsapi_ticket, authorizer or component access token) from wxauth
//! instead of calling `cgi-bin/token` themselves.
//!
//! Every service that fetches its own token invalidates everybody else's (40001 five minutes
//! later) and spends the daily quota; through the broker there is one token per app, fetched
//! once per expiry across every wxauth instance by the shared [`TokenCache`] lease, and handed
//! to every service with its remaining lifetime.
//!
//! - **Access**: an authenticated confidential client (the token endpoint's client
//!   authentication and its guessing throttle), holding the [`SCOPE`] scope, asking for an app on
//!   its own list (`client create --wechat-appid`, the admin API's `wechat_appids`).
//! - **Force-refresh**: a service that saw 40001 with a handed-out token asks with
//!   `force: true`. The stored token is dropped at most once per [`FORCE_INTERVAL_SECS`] per app
//!   and kind, decided by one conditional `UPDATE` on the `wechat_token` row, so any number of
//!   such requests on any number of instances cause one refetch; the others get the token that
//!   refetch stores (`refreshed: false`). The access token is refetched with `stable_token`
//!   in its normal mode, which hands out the current token and never cuts other holders off.
//! - **Accounting**: every hand-out and every refusal is an audit event
//!   ([`AuditKind::WeChatCredential`], per client) and counted in
//!   `wxauth_wechat_credentials_total`.
//!
//! [`TokenCache`]: crate::wechat::TokenCache

use std::sync::Arc;

use crate::app_registry::{AppKind, AppRegistry, RegisteredApp};
use crate::audit::{Audit, AuditEvent, AuditKind, Outcome};
use crate::clock::SharedClock;
use crate::fault::Fault;
use crate::oauth::client_auth;
use crate::oauth::{ClientRegistry, OAuthError, RegisteredClient};
use crate::wechat::types::TokenKind;
use crate::wechat::{AccessToken, AppId, WeChat, WeChatError};

/// The scope a client needs to fetch WeChat credentials.
pub const SCOPE: &str = "wechat:credentials";

/// At most one forced refresh per app and kind in this many seconds.
pub const FORCE_INTERVAL_SECS: i64 = 60;

/// What a service asks for.
#[derive(Debug, Clone)]
pub struct CredentialRequest {
    pub appid: String,
    /// `access_token`, `jsapi_ticket`, `authorizer_access_token` or `component_access_token`.
    pub kind: String,
    /// The service saw this credential refused (40001): refresh it, if none was refreshed in
    /// the last minute.
    pub force: bool,
}

/// What the broker hands out.
#[derive(Debug, Clone)]
pub struct HandedOut {
    pub appid: String,
    pub kind: TokenKind,
    pub credential: AccessToken,
    /// Seconds the credential has left.
    pub expires_in: i64,
    /// Whether this request's `force` dropped the stored credential (and so caused a refetch).
    pub refreshed: bool,
}

/// Why nothing was handed out.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Client authentication failed or is throttled (the token endpoint's answer).
    #[error("client authentication: {0:?}")]
    Client(OAuthError),
    #[error("the client lacks the wechat:credentials scope")]
    ScopeMissing,
    #[error("the client may not fetch this app's credentials")]
    AppNotAllowed,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    WeChat(#[from] WeChatError),
}

impl BrokerError {
    /// Whose fault it is, for every error but the client's authentication and permissions.
    pub fn fault(&self) -> Fault {
        match self {
            BrokerError::WeChat(error) => error.fault(),
            other => Fault::Caller(other.to_string()),
        }
    }
}

/// Whether `app` has a credential of `kind`, and if not, why.
fn check_kind(app: &RegisteredApp, kind: TokenKind) -> Result<(), String> {
    let appid = &app.appid;
    let ok = match kind {
        TokenKind::AccessToken => app.secret.is_some() && app.kind != AppKind::Component,
        TokenKind::JsapiTicket => app.kind == AppKind::OfficialAccount,
        TokenKind::AuthorizerAccessToken => app.component_appid.is_some(),
        TokenKind::ComponentAccessToken => app.kind == AppKind::Component,
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        TokenKind::AccessToken => format!(
            "{appid} has no access_token of its own (a component-authorized account uses authorizer_access_token; a component, component_access_token)"
        ),
        TokenKind::JsapiTicket => format!("{appid} is not an official account"),
        TokenKind::AuthorizerAccessToken => {
            format!("{appid} is not authorized to a component")
        }
        TokenKind::ComponentAccessToken => format!("{appid} is not a component"),
    })
}

/// The broker.
#[derive(Clone)]
pub struct CredentialBroker {
    clients: ClientRegistry,
    apps: AppRegistry,
    wechat: Arc<WeChat>,
    audit: Audit,
    clock: SharedClock,
}

impl CredentialBroker {
    pub fn new(
        clients: ClientRegistry,
        apps: AppRegistry,
        wechat: Arc<WeChat>,
        audit: Audit,
        clock: SharedClock,
    ) -> Self {
        Self {
            clients,
            apps,
            wechat,
            audit,
            clock,
        }
    }

    /// Authenticate the client (`authorization`: its `Authorization` header), check what it may
    /// fetch, and hand out the credential every instance shares.
    pub async fn hand_out(
        &self,
        authorization: Option<&str>,
        request: CredentialRequest,
    ) -> Result<HandedOut, BrokerError> {
        let credentials = client_auth::credentials_from(authorization, None, None)
            .map_err(BrokerError::Client)?;
        let (client, _) = client_auth::authenticate(&self.clients, credentials.as_ref())
            .await
            .map_err(BrokerError::Client)?;
        crate::request_context::note_client(&client.client_id);
        if !client.allows_scope(SCOPE) {
            self.refused(&client, &request, "scope_missing").await;
            return Err(BrokerError::ScopeMissing);
        }
        let kind = TokenKind::parse(request.kind.trim()).ok_or_else(|| {
            BrokerError::BadRequest(
                "kind must be access_token, jsapi_ticket, authorizer_access_token or component_access_token"
                    .to_owned(),
            )
        })?;
        let appid = AppId::parse(request.appid.trim()).map_err(|_| {
            BrokerError::BadRequest(
                "appId must be a WeChat appid (wx followed by 16 hexadecimal digits)".to_owned(),
            )
        })?;
        if !client.allows_wechat_app(appid.as_str()) {
            self.refused(&client, &request, "app_not_allowed").await;
            return Err(BrokerError::AppNotAllowed);
        }
        let app = self
            .apps
            .get(appid.as_str())
            .await
            .map_err(|e| WeChatError::Store(format!("wx_app: {e}")))?
            .ok_or_else(|| BrokerError::BadRequest(format!("{appid} is not registered")))?;
        check_kind(&app, kind).map_err(BrokerError::BadRequest)?;
        let refreshed = request.force
            && self
                .wechat
                .force_credential_refresh(kind, &appid, FORCE_INTERVAL_SECS)
                .await?;
        let held = self.wechat.shared_credential(kind, &appid).await?;
        let expires_in = held.expires_at.saturating_sub(self.clock.now()).max(0);
        self.audit
            .record(
                AuditEvent::new(AuditKind::WeChatCredential, Outcome::Ok)
                    .client(&client.client_id)
                    .subject(appid.as_str())
                    .detail("kind", kind.as_str())
                    .detail("force", request.force)
                    .detail("refreshed", refreshed),
            )
            .await;
        Ok(HandedOut {
            appid: appid.to_string(),
            kind,
            credential: held.token,
            expires_in,
            refreshed,
        })
    }

    async fn refused(&self, client: &RegisteredClient, request: &CredentialRequest, reason: &str) {
        let mut event = AuditEvent::new(AuditKind::WeChatCredential, Outcome::Refused)
            .client(&client.client_id)
            .detail("reason", reason);
        // Only a well-formed appid is recorded: the request is the client's word.
        if let Ok(appid) = AppId::parse(request.appid.trim()) {
            event = event.detail("appid", appid.as_str());
        }
        if let Some(kind) = TokenKind::parse(request.kind.trim()) {
            event = event.detail("kind", kind.as_str());
        }
        self.audit.record(event).await;
    }
}
