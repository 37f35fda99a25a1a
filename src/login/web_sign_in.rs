//! Signing a person in with WeChat at the authorization endpoint: inside WeChat by the base
//! official account's web authorization (`snsapi_userinfo`), elsewhere by the Open Platform
//! website QR login (`connect/qrconnect`, `snsapi_login`). WeChat's answer becomes a recorded
//! identity (unionid, profile), its account, and a browser session; the browser then returns to
//! the authorization request it came from, which wxauth kept server-side with the `state`.
//!
//! Each sign-in is bound to the browser that started it (against login CSRF) by a value minted
//! for it and kept in the browser's binding cookie, with the bindings of the browser's other
//! sign-ins in progress (tabs; the newest [`PARALLEL_SIGN_INS`]). This module decides the
//! cookie's value; the HTTP side only reads and writes it.

use std::sync::Arc;

use url::Url;

use super::browser_session::{BrowserSession, BrowserSessions, SignInMethod};
use super::error::LoginError;
use super::states::{AuthStates, NewState};
use crate::app_registry::{AppKind, AppRegistry};
use crate::audit::{Audit, AuditEvent, SignInChannel};
use crate::clock::SharedClock;
use crate::store::Store;
use crate::users::{IdentityKey, Profile, RepoError, UserRepo};
use crate::vault::random_token;
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

/// How many sign-ins one browser may have in progress at once (tabs); the oldest drops out.
pub const PARALLEL_SIGN_INS: usize = 5;
/// Separates the bindings in the binding cookie's value (random tokens never contain it).
const BINDING_SEPARATOR: char = '.';

/// A started sign-in: where to send the browser, and what its binding cookie holds from now on.
#[derive(Debug)]
pub struct StartedSignIn {
    /// WeChat's sign-in (the QR page, or the official account's authorization inside WeChat).
    pub url: String,
    /// The binding cookie's new value: this sign-in's binding, with those of the browser's other
    /// sign-ins in progress (set it, never log it).
    pub bindings: String,
}

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
    /// [`AUTHORIZE_PATH`] or [`DEVICE_VERIFICATION_PATH`]). `in_wechat`: the browser is WeChat's
    /// own. `held`: the binding cookie the browser brought, if any. The sign-in is bound to a
    /// value the browser must show again at the callback, in the returned cookie value.
    pub async fn start(
        &self,
        in_wechat: bool,
        return_to: &str,
        held: Option<&str>,
    ) -> Result<StartedSignIn, LoginError> {
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
        // A binding minted here for this sign-in only: a value the browser brought is never
        // bound to anything (it may have been planted). The cookie keeps the bindings of the
        // browser's other sign-ins in progress, so that sign-ins in several tabs coexist.
        let binding = random_token(32);
        let state = self
            .states
            .mint(NewState {
                kind: STATE_KIND,
                appid: appid.as_str(),
                next: return_to,
                entry: None,
                ttl: SIGN_IN_TTL,
                browser: Some(&binding),
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
        Ok(StartedSignIn {
            url,
            bindings: with_value(held, &binding, PARALLEL_SIGN_INS),
        })
    }

    /// The name the consent page shows for the signed-in `account_id` (the WeChat nickname),
    /// when known.
    pub async fn account_name(&self, account_id: i64) -> Result<Option<String>, RepoError> {
        Ok(self
            .users
            .account(account_id)
            .await?
            .and_then(|account| account.nick_name))
    }

    /// WeChat sent the browser back without a code: the user cancelled (WeChat "仅会带上state参数").
    /// Spend the state, only for the browser that started the sign-in (as [`Self::finish`]
    /// does), and return the authorization request it was to resume, whose client is to hear of
    /// it. Anything else (no binding, unknown or spent state) is refused.
    pub async fn cancelled(
        &self,
        state: Option<&str>,
        held: Option<&str>,
    ) -> Result<String, LoginError> {
        let browsers = held_bindings(held);
        if browsers.is_empty() {
            return Err(LoginError::invalid(
                "WeChat sent no code: the sign-in was cancelled",
            ));
        }
        let row = self
            .states
            .consume_from_any(STATE_KIND, state.unwrap_or_default(), &browsers)
            .await?
            .ok_or_else(|| LoginError::invalid("WeChat sent no code: the sign-in was cancelled"))?;
        Ok(row.next_url)
    }

    /// WeChat sent the browser back: spend the state (only for the browser that started the
    /// sign-in: `held` is its binding cookie, one binding per sign-in it has in progress),
    /// exchange the code, record who it is and start a browser session.
    pub async fn finish(
        &self,
        code: Option<&str>,
        state: Option<&str>,
        held: Option<&str>,
    ) -> Result<SignedInBrowser, LoginError> {
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| LoginError::invalid("WeChat sent no code: the sign-in was cancelled"))?;
        let browsers = held_bindings(held);
        if browsers.is_empty() {
            return Err(LoginError::invalid(
                "this browser did not start this sign-in (is it blocking cookies?)",
            ));
        }
        let row = self
            .states
            .consume_from_any(STATE_KIND, state.unwrap_or_default(), &browsers)
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

/// The bindings a binding cookie holds, the newest [`PARALLEL_SIGN_INS`] only: a cookie stuffed
/// with values buys nothing but work.
fn held_bindings(cookie: Option<&str>) -> Vec<&str> {
    let mut bindings = values(cookie);
    bindings.drain(..bindings.len().saturating_sub(PARALLEL_SIGN_INS));
    bindings
}

/// The values of a cookie that holds several.
fn values(cookie: Option<&str>) -> Vec<&str> {
    cookie
        .map(|c| {
            c.split(BINDING_SEPARATOR)
                .filter(|v| !v.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// A cookie value holding `fresh` and at most `keep - 1` of the `existing` values (the newest).
/// `fresh` is what counts: the existing values are only carried along for the other sign-ins
/// this browser has in progress, never bound to anything new.
fn with_value(existing: Option<&str>, fresh: &str, keep: usize) -> String {
    let earlier = values(existing);
    let skip = earlier.len().saturating_sub(keep.saturating_sub(1));
    let mut all: Vec<&str> = earlier.into_iter().skip(skip).collect();
    all.push(fresh);
    all.join(&BINDING_SEPARATOR.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_value_cookie_keeps_the_newest() {
        assert_eq!(with_value(None, "c", 3), "c");
        assert_eq!(with_value(Some("a.b"), "c", 3), "a.b.c");
        assert_eq!(with_value(Some("a.b.c"), "d", 3), "b.c.d");
        assert_eq!(values(Some("b.c.d")), vec!["b", "c", "d"]);
        assert!(values(None).is_empty());
    }
}
