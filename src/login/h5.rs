//! The Official Account H5 two-hop authorization (the seed's `MpComponentCommonController`),
//! done safely. No HTTP here: [`H5Login`] takes the request's parameters and returns typed
//! results; `http::h5` turns them into JSON, redirects and pages.
//!
//! 1. [`H5Login::entry_build_url`]: `next` is checked against the allowlist, a fresh `state` is
//!    stored (hashed, single use, [`STATE_TTL`]) and the entry account's silent (`snsapi_base`)
//!    authorize URL is built — through its component when it has one, else directly.
//! 2. [`H5Login::entry_callback`]: the state is spent, the code exchanged for the entry openid,
//!    the entry identity saved, and the browser sent on to the base account (`snsapi_userinfo`)
//!    with a new state that carries the entry identity *server-side* (the seed put a wx_user row
//!    id in the URL, which anyone could change).
//! 3. [`H5Login::base_callback`]: the state is spent, the code exchanged, the unionid and profile
//!    fetched, the follower status of the base account asked (`cgi-bin/user/info`, see
//!    [`super::followers`]; its failure never fails the sign-in), both identities saved and linked to the unionid's account, a login ticket minted
//!    for the entry identity, and `next` gets `appId`, `openId`, `unionId` and `ticket` merged
//!    into its own query string.
//!
//! A callback's `next` and `appid` parameters must match what its state recorded; the stored
//! values are the ones used.
//!
//! The browser that starts a sign-in finishes it: the entry callback (the first top-level
//! navigation on our origin; `entryBuildUrl` is fetched cross-origin by the seed's pages) hands
//! the browser a fresh binding value for an HttpOnly cookie, and the base state stores only its
//! keyed hash. A base callback from a browser without that cookie is refused without spending
//! the state, so the rightful browser can still finish, and nothing of the identity is handed
//! out ([`H5Error::OtherBrowser`]). A base hop whose unionid differs from the one already
//! recorded on the entry identity is refused too ([`H5Error::Relink`]); both are audited as
//! `h5_binding_refused`.
//!
//! The page may pass its own `nonce` (returned unchanged in the final redirect, so it can refuse
//! a result it did not ask for) and the `clientId` whose `flow` grant will redeem the ticket
//! (the ticket is then refused for any other client); both travel server-side with the states.

use std::sync::Arc;

use sea_orm::DbErr;
use serde::Deserialize;
use url::Url;

use entity::auth_state;

use super::followers::FollowerSync;
use super::redirect::{RedirectError, RedirectPolicy, merge_query};
use super::states::{AuthStates, NewState};
use crate::app_registry::{AppKind, AppRegistry, AppRegistryError};
use crate::audit::{Audit, AuditEvent, AuditKind, Outcome, SignInChannel};
use crate::clock::SharedClock;
use crate::oauth::login_tickets::LoginTickets;
use crate::users::{IdentityKey, Profile, RepoError, UserRepo};
use crate::vault::random_token;
use crate::wechat::official_account::WebAccessToken;
use crate::wechat::{AppId, Scope, WeChat, WeChatError};

/// How long each hop's `state` lives (seconds): time enough to read WeChat's consent page.
pub const STATE_TTL: i64 = 600;

/// Where a page asks for the entry hop's URL (the path the system wxauth replaces used).
pub const ENTRY_BUILD_PATH: &str = "/api/wechat/component/mp/common/entryBuildUrl";
/// Where WeChat sends the browser back after the entry hop.
pub const ENTRY_CALLBACK_PATH: &str = "/api/wechat/component/mp/common/entryCallback";
/// Where WeChat sends the browser back after the base hop.
pub const BASE_CALLBACK_PATH: &str = "/api/wechat/component/mp/common/baseCallback";

/// The longest `nonce` a page may pass to `entryBuildUrl` (printable ASCII).
pub const NONCE_MAX_LEN: usize = 128;

/// What the page asks of a sign-in besides where it returns to.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignInRequest<'a> {
    /// The client that will redeem the login ticket; the ticket is refused for any other.
    pub client_id: Option<&'a str>,
    /// The page's own value, returned unchanged in the final redirect.
    pub nonce: Option<&'a str>,
}

/// The entry hop's outcome: where the browser goes next, and the binding value it must carry
/// (as an HttpOnly cookie) to the base callback.
#[derive(Debug, Clone)]
pub struct EntryHop {
    /// The base account's `snsapi_userinfo` authorize URL.
    pub authorize_url: String,
    /// The cookie value (set it, never log it); the base state holds its keyed hash.
    pub binding: String,
}

/// Which hop a state belongs to; a state is only accepted by its own callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    Entry,
    Base,
}

impl Hop {
    pub fn as_str(self) -> &'static str {
        match self {
            Hop::Entry => "entry",
            Hop::Base => "base",
        }
    }
}

/// What WeChat appends to our callback URL (`next` is ours, echoed back).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub appid: Option<String>,
    pub next: Option<String>,
}

/// The end of a successful sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// `next` with `appId`, `openId`, `unionId`, `ticket` (and the page's `nonce`, if it gave
    /// one) merged into its query.
    pub redirect: Url,
    /// The entry account's appid.
    pub entry_appid: String,
    /// The account (flow_user) the entry identity belongs to.
    pub account_id: i64,
}

/// Why a step failed. Messages are for the person in front of the phone: no codes, tokens or
/// internal details.
#[derive(Debug, thiserror::Error)]
pub enum H5Error {
    /// A missing or malformed parameter, or an appid that is not a registered official account.
    #[error("{0}")]
    BadRequest(String),
    /// `next` is not an allowed redirect target.
    #[error(transparent)]
    Next(#[from] RedirectError),
    /// WeChat came back without a code: the person cancelled, or the link is incomplete.
    #[error("WeChat sent no code: the sign-in was cancelled or the link is incomplete")]
    Cancelled,
    /// The state is unknown, already used, expired or belongs to the other hop.
    #[error("this sign-in link has expired or was already used; please start again")]
    UnknownState,
    /// A callback's `appid` or `next` differs from what its state recorded.
    #[error("{0}")]
    Mismatch(&'static str),
    /// The base callback came from a browser that did not start this sign-in (or that does not
    /// keep cookies): nothing is handed out, and the state stays for the browser that did.
    #[error(
        "this sign-in was started in another browser, or this browser does not keep cookies; \
         please start again here"
    )]
    OtherBrowser,
    /// The base hop's unionid differs from the one already recorded on the entry identity:
    /// linking it would move that identity to another person's account.
    #[error(
        "this WeChat user does not match the account this page's sign-in belongs to; \
         please start again"
    )]
    Relink,
    /// WeChat refused the code or could not be reached.
    #[error(transparent)]
    WeChat(#[from] WeChatError),
    /// The server lacks something it needs (no base account, no unionid from it).
    #[error("{0}")]
    NotConfigured(String),
    /// Our database failed.
    #[error("store: {0}")]
    Store(String),
}

impl From<DbErr> for H5Error {
    fn from(e: DbErr) -> Self {
        H5Error::Store(e.to_string())
    }
}

impl From<RepoError> for H5Error {
    fn from(e: RepoError) -> Self {
        H5Error::Store(e.to_string())
    }
}

impl From<AppRegistryError> for H5Error {
    fn from(e: AppRegistryError) -> Self {
        H5Error::Store(e.to_string())
    }
}

/// A failed step, and where the user can start over when the failure happened after the state
/// was spent (the URL of `entryBuildUrl` in its redirect form, for the verified appid and next).
#[derive(Debug)]
pub struct H5Failure {
    pub error: H5Error,
    pub start_over: Option<Url>,
}

impl From<H5Error> for H5Failure {
    fn from(error: H5Error) -> Self {
        Self {
            error,
            start_over: None,
        }
    }
}

impl From<RedirectError> for H5Failure {
    fn from(error: RedirectError) -> Self {
        H5Error::from(error).into()
    }
}

/// Our own URLs the flow sends WeChat and the browser to.
#[derive(Debug, Clone)]
pub struct H5Urls {
    pub entry_callback: Url,
    pub base_callback: Url,
    /// `entryBuildUrl`, for "start again" links.
    pub entry_build: Url,
}

impl H5Urls {
    /// The flow's URLs under `issuer` (this server's public URL, perhaps with a path).
    pub fn under(issuer: &str) -> Result<Self, url::ParseError> {
        let url = |path: &str| Url::parse(&format!("{issuer}{path}"));
        Ok(Self {
            entry_callback: url(ENTRY_CALLBACK_PATH)?,
            base_callback: url(BASE_CALLBACK_PATH)?,
            entry_build: url(ENTRY_BUILD_PATH)?,
        })
    }
}

/// The H5 two-hop authorization.
#[derive(Clone)]
pub struct H5Login {
    pub states: AuthStates,
    pub clock: SharedClock,
    pub wechat: Arc<WeChat>,
    pub apps: AppRegistry,
    pub users: Arc<dyn UserRepo>,
    pub tickets: LoginTickets,
    pub policy: RedirectPolicy,
    pub urls: H5Urls,
    pub audit: Audit,
    /// The base account's follower status, asked at the base hop.
    pub followers: FollowerSync,
}

/// `callback?next=…`
fn with_next(callback: &Url, next: &Url) -> Url {
    let mut url = callback.clone();
    url.query_pairs_mut().append_pair("next", next.as_str());
    url
}

fn stored_appid(text: &str) -> Result<AppId, H5Error> {
    AppId::parse(text).map_err(|_| H5Error::Store(format!("auth_state holds a bad appid {text:?}")))
}

/// WeChat's "snapshot page" mode gives a placeholder openid and no real consent.
fn refuse_snapshot(token: &WebAccessToken) -> Result<(), H5Error> {
    if token.is_snapshotuser == Some(1) {
        return Err(H5Error::BadRequest(
            "open the page in WeChat (not as a snapshot preview) to sign in".to_owned(),
        ));
    }
    Ok(())
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// The page's `nonce`, if it gave one: printable ASCII, at most [`NONCE_MAX_LEN`] characters.
fn checked_nonce(nonce: Option<&str>) -> Result<Option<&str>, H5Error> {
    match nonce {
        None | Some("") => Ok(None),
        Some(n) if n.len() <= NONCE_MAX_LEN && n.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(n))
        }
        Some(_) => Err(H5Error::BadRequest(format!(
            "nonce must be 1 to {NONCE_MAX_LEN} printable ASCII characters without spaces"
        ))),
    }
}

/// What a hop passes on to the next state.
#[derive(Debug, Clone, Copy)]
struct Carried<'a> {
    entry: Option<(&'a str, &'a str)>,
    browser: Option<&'a str>,
    client_id: Option<&'a str>,
    nonce: Option<&'a str>,
}

impl H5Login {
    /// Step 1: the entry account's silent authorize URL for a sign-in that returns to `next`.
    pub async fn entry_build_url(
        &self,
        appid: &str,
        next: &str,
        request: SignInRequest<'_>,
    ) -> Result<String, H5Failure> {
        let appid = self.official_account(appid).await?;
        let next = self.policy.check(next)?;
        let nonce = checked_nonce(request.nonce)?;
        let client_id = request.client_id.map(str::trim).filter(|c| !c.is_empty());
        if let Some(client) = client_id
            && !self
                .tickets
                .client_may_redeem(client)
                .await
                .map_err(H5Error::from)?
        {
            return Err(H5Error::BadRequest(
                "clientId is not a client that can redeem login tickets (it needs the flow grant)"
                    .to_owned(),
            )
            .into());
        }
        let carried = Carried {
            entry: None,
            // Not bound to a browser: the seed's front ends call entryBuildUrl cross-origin.
            // The binding starts at the entry callback, the first page on our origin.
            browser: None,
            client_id,
            nonce,
        };
        let state = self
            .mint_state(Hop::Entry, &appid, &next, carried)
            .await
            .map_err(H5Error::from)?;
        let redirect = with_next(&self.urls.entry_callback, &next);
        Ok(self
            .wechat
            .authorize_url(&appid, &redirect, Scope::SnsapiBase, &state)
            .await
            .map_err(H5Error::from)?)
    }

    /// Step 2: WeChat came back from the entry account; returns the base account's authorize
    /// URL to redirect to, and the binding value the browser must bring to the base callback.
    pub async fn entry_callback(&self, params: &CallbackParams) -> Result<EntryHop, H5Failure> {
        let (code, state) = required(params)?;
        let row = match self.consume(Hop::Entry, state, None).await {
            Ok(row) => row,
            Err(H5Error::UnknownState) => {
                return Err(H5Failure {
                    error: H5Error::UnknownState,
                    start_over: self.start_over_from_link(params, Hop::Entry).await,
                });
            }
            Err(error) => return Err(error.into()),
        };
        let start_over = Some(self.start_over(&row.appid, &row.next_url, row.client_id.as_deref()));
        self.entry_hop(params, code, &row)
            .await
            .map_err(|error| H5Failure { error, start_over })
    }

    /// Step 3: WeChat came back from the base account; returns where the browser goes now.
    /// `browser` is the binding cookie the request carried: the state is spent only together
    /// with the binding the entry callback gave the browser that started the sign-in.
    pub async fn base_callback(
        &self,
        params: &CallbackParams,
        browser: Option<&str>,
    ) -> Result<SignedIn, H5Failure> {
        let (code, state) = required(params)?;
        let row = match browser.filter(|b| !b.is_empty()) {
            Some(browser) => self.consume(Hop::Base, state, Some(browser)).await,
            None => Err(H5Error::UnknownState),
        };
        let row = match row {
            Ok(row) => row,
            Err(H5Error::UnknownState) => {
                let mut failure = self.refused_base_state(state, browser).await;
                if matches!(failure.error, H5Error::UnknownState) {
                    failure.start_over = self.start_over_from_link(params, Hop::Base).await;
                }
                return Err(failure);
            }
            Err(error) => return Err(error.into()),
        };
        let start_over = row
            .entry_appid
            .as_deref()
            .map(|entry| self.start_over(entry, &row.next_url, row.client_id.as_deref()));
        self.base_hop(params, code, &row)
            .await
            .map_err(|error| H5Failure { error, start_over })
    }

    /// A base state this browser could not spend: when it is still pending it belongs to
    /// another browser (or this one lost its cookie). Audited, and answered with a way to start
    /// again here; the state is left for its own browser.
    async fn refused_base_state(&self, state: &str, browser: Option<&str>) -> H5Failure {
        let row = match self.states.pending(Hop::Base.as_str(), state).await {
            Ok(Some(row)) => row,
            Ok(None) => return H5Error::UnknownState.into(),
            Err(error) => return H5Error::from(error).into(),
        };
        let (Some(entry_appid), Some(entry_open_id)) = (&row.entry_appid, &row.entry_open_id)
        else {
            return H5Error::Store("base-hop auth_state without its entry identity".to_owned())
                .into();
        };
        let reason = if browser.is_some_and(|b| !b.is_empty()) {
            "other_browser"
        } else {
            "no_binding_cookie"
        };
        self.audit_refusal(entry_appid, entry_open_id, reason, row.client_id.as_deref())
            .await;
        H5Failure {
            error: H5Error::OtherBrowser,
            start_over: Some(self.start_over(entry_appid, &row.next_url, row.client_id.as_deref())),
        }
    }

    /// Record an `h5_binding_refused` event for the sign-in of entry identity
    /// (`appid`, `open_id`), naming that identity's account when it has one.
    async fn audit_refusal(&self, appid: &str, open_id: &str, reason: &str, client: Option<&str>) {
        let account = match self.users.find_identity(appid, open_id).await {
            Ok(identity) => identity.and_then(|i| i.account_id),
            Err(error) => {
                tracing::error!(%error, "reading the identity of a refused H5 sign-in");
                None
            }
        };
        let mut event = AuditEvent::new(AuditKind::H5BindingRefused, Outcome::Refused)
            .detail("appid", appid)
            .detail("reason", reason);
        if let Some(account) = account {
            event = event.account(account);
        }
        if let Some(client) = client {
            event = event.client(client);
        }
        self.audit.record(event).await;
    }

    /// Refuse to give identity (`appid`, `open_id`) a unionid other than the one it has: that
    /// would move it to another person's account.
    async fn refuse_relink(
        &self,
        appid: &str,
        open_id: &str,
        union_id: &str,
        client: Option<&str>,
    ) -> Result<(), H5Error> {
        let known = self
            .users
            .find_identity(appid, open_id)
            .await?
            .and_then(|identity| identity.union_id);
        match known {
            Some(known) if known != union_id => {
                self.audit_refusal(appid, open_id, "relink", client).await;
                Err(H5Error::Relink)
            }
            _ => Ok(()),
        }
    }

    async fn official_account(&self, appid: &str) -> Result<AppId, H5Error> {
        let parsed = AppId::parse(appid).map_err(|_| {
            H5Error::BadRequest("appId must be a WeChat appid (wx and 16 hex digits)".to_owned())
        })?;
        match self.apps.get(parsed.as_str()).await? {
            Some(app) if app.kind == AppKind::OfficialAccount => Ok(parsed),
            _ => Err(H5Error::BadRequest(format!(
                "appId {parsed} is not a registered official account"
            ))),
        }
    }

    async fn entry_hop(
        &self,
        params: &CallbackParams,
        code: &str,
        row: &auth_state::Model,
    ) -> Result<EntryHop, H5Error> {
        let next = self.verify_echo(params, row)?;
        let entry = stored_appid(&row.appid)?;
        let token = self.wechat.web_access_token(&entry, code).await?;
        refuse_snapshot(&token)?;
        if let Some(union_id) = &token.unionid {
            self.refuse_relink(
                entry.as_str(),
                token.openid.as_str(),
                union_id.as_str(),
                row.client_id.as_deref(),
            )
            .await?;
        }
        let now = self.clock.now();
        self.users
            .record_identity(
                &IdentityKey::new(entry.clone(), token.openid.clone(), token.unionid.clone()),
                None,
                now,
            )
            .await?;
        let base = self.apps.base_account().await?.ok_or_else(|| {
            H5Error::NotConfigured(
                "sign-in is not set up on this server: no base official account is registered"
                    .to_owned(),
            )
        })?;
        let base = stored_appid(&base.appid)?;
        // A fresh binding for every sign-in: never one the browser brought.
        let binding = random_token(32);
        let carried = Carried {
            entry: Some((entry.as_str(), token.openid.as_str())),
            browser: Some(&binding),
            client_id: row.client_id.as_deref(),
            nonce: row.nonce.as_deref(),
        };
        let state = self.mint_state(Hop::Base, &base, &next, carried).await?;
        let redirect = with_next(&self.urls.base_callback, &next);
        let authorize_url = self
            .wechat
            .authorize_url(&base, &redirect, Scope::SnsapiUserinfo, &state)
            .await?;
        Ok(EntryHop {
            authorize_url,
            binding,
        })
    }

    async fn base_hop(
        &self,
        params: &CallbackParams,
        code: &str,
        row: &auth_state::Model,
    ) -> Result<SignedIn, H5Error> {
        let next = self.verify_echo(params, row)?;
        let (Some(entry_appid), Some(entry_open_id)) = (&row.entry_appid, &row.entry_open_id)
        else {
            return Err(H5Error::Store(
                "base-hop auth_state without its entry identity".to_owned(),
            ));
        };
        let entry = stored_appid(entry_appid)?;
        let base = stored_appid(&row.appid)?;
        let token = self.wechat.web_access_token(&base, code).await?;
        refuse_snapshot(&token)?;
        let info = self
            .wechat
            .web_user_info(&base, &token.access_token, &token.openid)
            .await?;
        // Whether the user follows the base account (never fails the sign-in).
        let follower = self.followers.look_up(&base, &token.openid).await;
        let union_id = info
            .unionid
            .clone()
            .or_else(|| token.unionid.clone())
            .or_else(|| follower.as_ref().and_then(|f| f.unionid.clone()))
            .ok_or_else(|| {
                tracing::error!(base = %base, "the base account returned no unionid");
                H5Error::NotConfigured(
                    "sign-in is not set up on this server: the base account gives no unionid"
                        .to_owned(),
                )
            })?;
        let client_id = row.client_id.as_deref();
        self.refuse_relink(entry_appid, entry_open_id, union_id.as_str(), client_id)
            .await?;
        let profile = Profile {
            nick_name: non_empty(info.nickname),
            avatar_url: non_empty(info.headimgurl),
            sex: i32::try_from(info.sex).ok().filter(|s| *s != 0),
            city: non_empty(info.city),
            province: non_empty(info.province),
            country: non_empty(info.country),
            language: None,
        };
        let now = self.clock.now();
        // The entry identity first: a new user's entry account (made by the silent hop, without
        // a unionid yet) becomes the unionid's account instead of being left behind.
        let entry_key = IdentityKey::new(entry, entry_open_id.as_str(), Some(union_id.clone()));
        let (_, account, _) = self.users.record_identity(&entry_key, None, now).await?;
        self.users
            .record_identity(
                &IdentityKey::new(base.clone(), token.openid, Some(union_id.clone())),
                Some(&profile),
                now,
            )
            .await?;
        if let Some(follower) = &follower {
            self.followers.record_lookup(&base, follower).await;
        }
        let ticket = self.tickets.mint_for(&entry_key, client_id).await?;
        let mut event = AuditEvent::sign_in(SignInChannel::H5, account.id)
            .detail("appid", entry_appid.as_str());
        if let Some(client) = client_id {
            event = event.client(client);
        }
        self.audit.record(event).await;
        let mut result = vec![
            ("appId", entry_appid.as_str()),
            ("openId", entry_open_id.as_str()),
            ("unionId", union_id.as_str()),
            ("ticket", ticket.as_str()),
        ];
        if let Some(nonce) = row.nonce.as_deref() {
            result.push(("nonce", nonce));
        }
        let redirect = merge_query(&next, &result);
        Ok(SignedIn {
            redirect,
            entry_appid: entry_appid.clone(),
            account_id: account.id,
        })
    }

    /// The callback's own `appid` and `next`, when present, must be the ones the state recorded.
    fn verify_echo(
        &self,
        params: &CallbackParams,
        row: &auth_state::Model,
    ) -> Result<Url, H5Error> {
        let stored = Url::parse(&row.next_url)
            .map_err(|e| H5Error::Store(format!("auth_state holds a bad next URL: {e}")))?;
        if let Some(appid) = params.appid.as_deref().filter(|a| !a.is_empty())
            && appid != row.appid
        {
            return Err(H5Error::Mismatch(
                "WeChat answered for another account than this sign-in started with",
            ));
        }
        if let Some(next) = params.next.as_deref()
            && self.policy.check(next).ok().as_ref() != Some(&stored)
        {
            return Err(H5Error::Mismatch(
                "next does not match the page this sign-in started from",
            ));
        }
        Ok(stored)
    }

    async fn mint_state(
        &self,
        hop: Hop,
        appid: &AppId,
        next: &Url,
        carried: Carried<'_>,
    ) -> Result<String, DbErr> {
        self.states
            .mint(NewState {
                kind: hop.as_str(),
                appid: appid.as_str(),
                next: next.as_str(),
                entry: carried.entry,
                ttl: STATE_TTL,
                browser: carried.browser,
                client_id: carried.client_id,
                nonce: carried.nonce,
            })
            .await
    }

    /// Spend `state` for `hop` from `browser` (the binding it was minted with, `None` for the
    /// unbound entry state): only the caller whose conditional UPDATE flips it gets the row.
    async fn consume(
        &self,
        hop: Hop,
        state: &str,
        browser: Option<&str>,
    ) -> Result<auth_state::Model, H5Error> {
        self.states
            .consume(hop.as_str(), state, browser)
            .await?
            .ok_or(H5Error::UnknownState)
    }

    /// A way to start again after a spent, expired or unknown state, from what the callback's
    /// own link says (nothing of it is trusted: the link only leads to a fresh start): at the
    /// entry hop, `entryBuildUrl` for the link's `appid` and `next` when the account is a
    /// registered official account and `next` is allowed; at the base hop (whose `appid` is the
    /// base account) or failing that, `next` itself when allowed — the page starts its own
    /// sign-in.
    async fn start_over_from_link(&self, params: &CallbackParams, hop: Hop) -> Option<Url> {
        let next = self.policy.check(params.next.as_deref()?).ok()?;
        if hop == Hop::Entry
            && let Some(appid) = params.appid.as_deref()
            && let Ok(appid) = self.official_account(appid).await
        {
            return Some(self.start_over(appid.as_str(), next.as_str(), None));
        }
        Some(next)
    }

    /// `entryBuildUrl` as a link, for the same account, `next` and client. Not the nonce: it
    /// belongs to the page's attempt, and a page that sent one starts its own next attempt.
    fn start_over(&self, entry_appid: &str, next: &str, client_id: Option<&str>) -> Url {
        let mut url = self.urls.entry_build.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("appId", entry_appid)
                .append_pair("next", next);
            if let Some(client) = client_id {
                query.append_pair("clientId", client);
            }
            query.append_pair("redirect", "1");
        }
        url
    }
}

fn required(params: &CallbackParams) -> Result<(&str, &str), H5Error> {
    let code = params
        .code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or(H5Error::Cancelled)?;
    let state = params
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or(H5Error::UnknownState)?;
    Ok((code, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_carry_next_in_their_query() {
        let cb = Url::parse("http://auth.test/api/cb").unwrap();
        let next = Url::parse("https://app.example.com/m?appId=wx1&x=a b").unwrap();
        let url = with_next(&cb, &next);
        let echoed: Vec<_> = url.query_pairs().into_owned().collect();
        assert_eq!(echoed, vec![("next".to_owned(), next.to_string())]);
    }
}
