//! Signing a person in with WeChat at the authorization endpoint: inside WeChat by the base
//! official account's web authorization (`snsapi_userinfo`), elsewhere by the Open Platform
//! website QR login (`connect/qrconnect`, `snsapi_login`). WeChat's answer becomes a recorded
//! identity (unionid, profile), its account, and a browser session; the browser then returns to
//! the authorization request it came from, which wxauth kept server-side with the `state`.

use std::sync::Arc;

use url::Url;

use super::browser_session::{BrowserSession, BrowserSessions, SignInMethod};
use super::error::LoginError;
use super::states::{AuthStates, NewState};
use crate::app_registry::{AppKind, AppRegistry};
use crate::audit::{Audit, AuditEvent, SignInChannel};
use crate::clock::SharedClock;
use crate::store::Store;
use crate::users::{IdentityKey, Profile, UserRepo};
use crate::wechat::{AppId, Scope, WeChat};

/// The kind of state this flow spends.
pub const STATE_KIND: &str = "oauth";
/// How long the user has to sign in at WeChat (seconds).
pub const SIGN_IN_TTL: i64 = 600;
/// Where a sign-in returns to: the authorization endpoint ...
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
/// ... or the device verification page (RFC 8628), under `/oauth` where the session cookie is.
pub const DEVICE_VERIFICATION_PATH: &str = "/oauth/device";

/// Whether a sign-in may return to `path` (one of the two pages above, with its query).
fn may_return_to(path: &str) -> bool {
    [AUTHORIZE_PATH, DEVICE_VERIFICATION_PATH]
        .iter()
        .any(|page| {
            path.strip_prefix(page)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('?'))
        })
}
/// Where WeChat sends the browser back after sign-in.
pub const WECHAT_CALLBACK_PATH: &str = "/oauth/callback/wechat";

/// A finished sign-in.
#[derive(Debug)]
pub struct SignedInBrowser {
    /// The session cookie's value (set it, never log it).
    pub cookie: String,
    pub session: BrowserSession,
    /// The authorization request to resume (a path with its query).
    pub return_to: String,
}

/// WeChat sign-in for the authorization endpoint.
#[derive(Clone)]
pub struct WeChatSignIn {
    apps: AppRegistry,
    wechat: Arc<WeChat>,
    users: Arc<dyn UserRepo>,
    sessions: BrowserSessions,
    states: AuthStates,
    clock: SharedClock,
    /// Our callback, `{issuer}/oauth/callback/wechat`.
    callback: Url,
    audit: Audit,
}

impl WeChatSignIn {
    pub fn new(
        store: &Store,
        apps: AppRegistry,
        wechat: Arc<WeChat>,
        users: Arc<dyn UserRepo>,
        sessions: BrowserSessions,
        callback: Url,
        audit: Audit,
    ) -> Self {
        Self {
            apps,
            wechat,
            users,
            sessions,
            states: AuthStates::new(store.db.clone(), store.vault.clone(), store.clock.clone()),
            clock: store.clock.clone(),
            callback,
            audit,
        }
    }

    /// Where to send the browser to sign in, coming back to `return_to` (a path under
    /// [`AUTHORIZE_PATH`] or [`DEVICE_VERIFICATION_PATH`]). `in_wechat`: the browser is WeChat's own. `browser`: a value the
    /// browser holds (a cookie) and must show again at the callback.
    pub async fn start(
        &self,
        in_wechat: bool,
        return_to: &str,
        browser: &str,
    ) -> Result<String, LoginError> {
        if !may_return_to(return_to) {
            return Err(LoginError::invalid(
                "a sign-in can only return to the authorization endpoint or the device page",
            ));
        }
        let appid = if in_wechat {
            self.apps
                .base_account()
                .await
                .map_err(|e| LoginError::Storage(e.to_string()))?
                .map(|app| app.appid)
                .ok_or_else(|| {
                    LoginError::Unavailable(
                        "no base official account is registered (wxauth app add --base)".into(),
                    )
                })?
        } else {
            self.apps
                .first_of_kind(AppKind::Website)
                .await?
                .ok_or_else(|| {
                    LoginError::Unavailable(
                        "no website app is registered for QR sign-in: open this page in WeChat"
                            .into(),
                    )
                })?
        };
        let appid = AppId::parse(&appid)
            .map_err(|_| LoginError::Storage(format!("registered appid {appid:?}")))?;
        let state = self
            .states
            .mint(NewState {
                kind: STATE_KIND,
                appid: appid.as_str(),
                next: return_to,
                entry: None,
                ttl: SIGN_IN_TTL,
                browser: Some(browser),
                client_id: None,
                nonce: None,
            })
            .await?;
        let url = if in_wechat {
            self.wechat
                .authorize_url(&appid, &self.callback, Scope::SnsapiUserinfo, &state)
                .await?
        } else {
            self.wechat
                .qrconnect_url(&appid, &self.callback, &state)
                .await?
        };
        Ok(url)
    }

    /// WeChat sent the browser back without a code: the user cancelled (WeChat "仅会带上state参数").
    /// Spend the state, only for the browser that started the sign-in (as [`Self::finish`]
    /// does), and return the authorization request it was to resume, whose client is to hear of
    /// it. Anything else (no binding, unknown or spent state) is refused.
    pub async fn cancelled(
        &self,
        state: Option<&str>,
        browsers: &[&str],
    ) -> Result<String, LoginError> {
        if browsers.is_empty() {
            return Err(LoginError::invalid(
                "WeChat sent no code: the sign-in was cancelled",
            ));
        }
        let row = self
            .states
            .consume_from_any(STATE_KIND, state.unwrap_or_default(), browsers)
            .await?
            .ok_or_else(|| LoginError::invalid("WeChat sent no code: the sign-in was cancelled"))?;
        Ok(row.next_url)
    }

    /// WeChat sent the browser back: spend the state (only for the browser that started the
    /// sign-in: `browsers` are the bindings it holds, one per sign-in it has in progress),
    /// exchange the code, record who it is and start a browser session.
    pub async fn finish(
        &self,
        code: Option<&str>,
        state: Option<&str>,
        browsers: &[&str],
    ) -> Result<SignedInBrowser, LoginError> {
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| LoginError::invalid("WeChat sent no code: the sign-in was cancelled"))?;
        if browsers.is_empty() {
            return Err(LoginError::invalid(
                "this browser did not start this sign-in (is it blocking cookies?)",
            ));
        }
        let row = self
            .states
            .consume_from_any(STATE_KIND, state.unwrap_or_default(), browsers)
            .await?
            .ok_or_else(|| {
                LoginError::invalid(
                    "this sign-in link is unknown, expired, already used or from another browser",
                )
            })?;
        let appid = AppId::parse(&row.appid)
            .map_err(|_| LoginError::Storage(format!("auth_state appid {:?}", row.appid)))?;
        let method = match self.apps.kind(appid.as_str()).await? {
            Some(AppKind::Website) => SignInMethod::WeChatQr,
            _ => SignInMethod::WeChatWeb,
        };
        let token = self.wechat.web_access_token(&appid, code).await?;
        if token.is_snapshotuser == Some(1) {
            return Err(LoginError::invalid(
                "open the page in WeChat (not as a snapshot preview) to sign in",
            ));
        }
        let info = self
            .wechat
            .web_user_info(&appid, &token.access_token, &token.openid)
            .await?;
        let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let vouched = IdentityKey::new(appid.clone(), token.openid, token.unionid.or(info.unionid));
        let profile = Profile {
            nick_name: text(&info.nickname),
            avatar_url: text(&info.headimgurl),
            sex: i32::try_from(info.sex).ok(),
            city: text(&info.city),
            province: text(&info.province),
            country: text(&info.country),
            language: None,
        };
        let (_, account, _) = self
            .users
            .record_identity(&vouched, Some(&profile), self.clock.now())
            .await?;
        let (cookie, session) = self.sessions.start(account.id, method).await?;
        let channel = match method {
            SignInMethod::WeChatQr => SignInChannel::Qr,
            SignInMethod::WeChatWeb => SignInChannel::WeChatOAuth,
            SignInMethod::MiniProgramWebView => SignInChannel::MiniProgramWebView,
        };
        self.audit
            .record(AuditEvent::sign_in(channel, account.id).detail("appid", appid.as_str()))
            .await;
        Ok(SignedInBrowser {
            cookie,
            session,
            return_to: row.next_url,
        })
    }
}
