//! [`WeChat`]: the adapter the rest of wxauth calls. It joins the raw calls of [`WeChatClient`]
//! with the credentials stored in `wx_app` (through [`AppRegistry`]), the shared upstream
//! [`TokenCache`], the token-invalid rule (on 40001/42001/40014 drop the cached token and retry
//! once), and one exchange per `wx.login` code ([`CodeExchanges`]). The same cache holds the
//! official accounts' jsapi_tickets and hands every credential to the credential broker.

use std::sync::Arc;

use entity::wechat_component_ticket;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};
use subtle::ConstantTimeEq;
use url::Url;

use super::account_messages::{AccountMessage, MessageKeys, MessageQuery};
use super::call_ledger::CallLedger;
use super::client::{Image, WeChatClient};
use super::code_exchange::CodeExchanges;
use super::crypto::{MessageCrypt, xml_text};
use super::error::WeChatError;
use super::mini_program::{CodeSession, PhoneInfo};
use super::mini_program_code::CodeRequest;
use super::official_account::{
    AuthorizeRequest, AuthorizeUrlError, FollowerInfo, WebAccessToken, WebUserInfo,
};
use super::token_cache::{HeldToken, TokenCache, TokenCacheConfig, UpstreamToken};
use super::types::{AccessToken, AppId, AppSecret, OpenId, RefreshToken, TokenKind};
use crate::app_registry::{AppKind, AppRegistry, RegisteredApp};
use crate::clock::SharedClock;
use crate::secret::Secret;
use crate::vault::{SealedAt, Vault};

/// The query parameters WeChat adds to a push (`?timestamp=…&nonce=…&msg_signature=…`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PushParams {
    pub timestamp: String,
    pub nonce: String,
    pub msg_signature: String,
}

/// A decrypted Open Platform push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentPush {
    /// A new component_verify_ticket, now stored.
    VerifyTicket { component_appid: String },
    /// Another event (authorized, unauthorized, updateauthorized …), not acted upon here.
    Other {
        component_appid: String,
        info_type: String,
    },
}

/// The WeChat adapter: share it as `Arc<WeChat>`.
pub struct WeChat {
    client: WeChatClient,
    apps: AppRegistry,
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
    tokens: TokenCache,
    /// Calls per app and day, for the admin's view.
    calls: CallLedger,
    /// One exchange per `wx.login` code, in process and across instances.
    code_exchanges: CodeExchanges,
}

impl std::fmt::Debug for WeChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeChat")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// The longest lifetime (seconds) believed of an upstream token; WeChat's live 7200 s.
const MAX_UPSTREAM_TOKEN_TTL: i64 = 24 * 3600;

/// WeChat's `expires_in`, bounded: a negative or absurd value cannot push an expiry past the
/// clock or into the past.
fn upstream_lifetime(expires_in: i64) -> i64 {
    expires_in.clamp(0, MAX_UPSTREAM_TOKEN_TTL)
}

/// Where a component's verify ticket is sealed.
fn ticket_sealed_at(component_appid: &AppId) -> SealedAt<'_> {
    SealedAt::new(
        "wechat_component_ticket",
        "ticket_enc",
        component_appid.as_str(),
    )
}

fn registry_error(error: crate::app_registry::AppRegistryError) -> WeChatError {
    match error {
        // A secret that does not open (another master key, or moved from another row) is a
        // configuration to repair, answered 503 like a missing one, never a 500.
        crate::app_registry::AppRegistryError::Sealed(_) => {
            WeChatError::NotConfigured(format!("wx_app: {error}"))
        }
        crate::app_registry::AppRegistryError::Db(error) => WeChatError::store("wx_app", &error),
        error => WeChatError::Store(format!("wx_app: {error}")),
    }
}

impl WeChat {
    /// The facade over `client`, reading credentials from `apps` (the process's one registry).
    pub fn new(
        client: WeChatClient,
        apps: AppRegistry,
        db: DatabaseConnection,
        vault: Arc<Vault>,
        clock: SharedClock,
    ) -> Self {
        Self::with_token_cache_config(client, apps, db, vault, clock, TokenCacheConfig::default())
    }

    pub fn with_token_cache_config(
        mut client: WeChatClient,
        apps: AppRegistry,
        db: DatabaseConnection,
        vault: Arc<Vault>,
        clock: SharedClock,
        config: TokenCacheConfig,
    ) -> Self {
        let calls = CallLedger::new(db.clone(), clock.clone());
        client.count_into(calls.counts().clone());
        Self {
            apps,
            calls,
            tokens: TokenCache::new(db.clone(), vault.clone(), clock.clone(), config),
            code_exchanges: CodeExchanges::new(db.clone(), vault.clone(), clock.clone()),
            client,
            db,
            vault,
            clock,
        }
    }

    pub fn client(&self) -> &WeChatClient {
        &self.client
    }

    pub fn tokens(&self) -> &TokenCache {
        &self.tokens
    }

    /// Calls to WeChat per app and day.
    pub fn calls(&self) -> &CallLedger {
        &self.calls
    }

    async fn app(&self, appid: &AppId) -> Result<RegisteredApp, WeChatError> {
        self.apps
            .get(appid.as_str())
            .await
            .map_err(registry_error)?
            .ok_or_else(|| WeChatError::NotConfigured(format!("app {appid} is not registered")))
    }

    fn secret_of(app: &RegisteredApp) -> Result<AppSecret, WeChatError> {
        app.secret
            .as_ref()
            .map(|secret| AppSecret::new(secret.expose()))
            .ok_or_else(|| WeChatError::NotConfigured(format!("app {} has no secret", app.appid)))
    }

    fn component_of(app: &RegisteredApp) -> Result<Option<AppId>, WeChatError> {
        app.component_appid
            .as_deref()
            .map(|c| {
                AppId::parse(c)
                    .map_err(|_| WeChatError::NotConfigured(format!("bad component appid {c}")))
            })
            .transpose()
    }

    // ---- mini program ----

    /// `wx.login` code → openid, unionid (if bound to an Open Platform) and session key. The same
    /// code sent twice at once is exchanged once and both get the answer (see [`CodeExchanges`]).
    ///
    /// The app secret comes from the registry's short cache ([`AppRegistry::login_secret`]). If
    /// WeChat refuses it (40125) and the stored one differs (reset meanwhile by another instance
    /// or the CLI), the code is exchanged again with the stored one: WeChat checks the secret
    /// before it spends the code, so the code is still good.
    pub async fn code_to_session(
        &self,
        appid: &AppId,
        js_code: &str,
    ) -> Result<CodeSession, WeChatError> {
        let secret = self.login_secret(appid, false).await?;
        self.code_exchanges
            .exchange(appid, js_code, || async {
                let refused = match self.client.jscode2session(appid, &secret, js_code).await {
                    Err(WeChatError::InvalidAppSecret) => WeChatError::InvalidAppSecret,
                    answered => return answered,
                };
                let stored = self.login_secret(appid, true).await?;
                if bool::from(stored.expose().as_bytes().ct_eq(secret.expose().as_bytes())) {
                    return Err(refused);
                }
                self.client.jscode2session(appid, &stored, js_code).await
            })
            .await
    }

    /// `appid`'s secret for `jscode2session`, from the registry's cache unless `fresh`.
    async fn login_secret(&self, appid: &AppId, fresh: bool) -> Result<AppSecret, WeChatError> {
        let found = if fresh {
            self.apps.fresh_login_secret(appid.as_str()).await
        } else {
            self.apps.login_secret(appid.as_str()).await
        };
        found
            .map_err(registry_error)?
            .map(|secret| AppSecret::new(secret.expose()))
            .ok_or_else(|| {
                WeChatError::NotConfigured(format!(
                    "app {appid} is not registered or has no secret"
                ))
            })
    }

    /// `getPhoneNumber` code → phone number, checked against the app's watermark.
    pub async fn user_phone_number(
        &self,
        appid: &AppId,
        code: &str,
    ) -> Result<PhoneInfo, WeChatError> {
        let phone = self
            .with_token(TokenOf::App, appid, |token| async move {
                self.client.user_phone_number(appid, &token, code).await
            })
            .await?;
        if phone.watermark.appid != appid.as_str() {
            return Err(super::crypto::CryptoError::WatermarkMismatch.into());
        }
        Ok(phone)
    }

    /// WeChat's verdict on `content` that `openid` typed into Mini Program `appid`'s profile
    /// (`msg_sec_check` v2, scene 1), with the app's access token from the shared cache.
    pub async fn check_profile_text(
        &self,
        appid: &AppId,
        openid: &str,
        content: &str,
    ) -> Result<super::content_security::TextVerdict, WeChatError> {
        use super::content_security::SCENE_PROFILE;
        self.with_token(TokenOf::App, appid, |token| async move {
            self.client
                .msg_sec_check(appid, &token, openid, content, SCENE_PROFILE)
                .await
        })
        .await
    }

    /// A Mini Program code (`wxa/getwxacodeunlimit`) drawn with the app's access token.
    pub async fn mini_program_code(
        &self,
        appid: &AppId,
        request: &CodeRequest<'_>,
    ) -> Result<Image, WeChatError> {
        self.with_token(TokenOf::App, appid, |token| async move {
            self.client.mini_program_code(appid, &token, request).await
        })
        .await
    }

    // ---- official account followers ----

    /// `cgi-bin/user/info`: whether `openid` follows official account `appid`, since when and
    /// through which QR code (with the token refetched once when WeChat says it is invalid).
    pub async fn follower_info(
        &self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<FollowerInfo, WeChatError> {
        self.with_token(TokenOf::Account, appid, |token| async move {
            self.client.follower_info(appid, &token, openid).await
        })
        .await
    }

    /// The message token and EncodingAESKey an official account's pushes are verified with: its
    /// own, or its component's when a component manages it (WeChat then pushes to the
    /// component's message URL, in safe mode, sealed for the component).
    async fn message_secrets(
        &self,
        appid: &AppId,
    ) -> Result<(Secret, Option<(Secret, String)>, bool), WeChatError> {
        let app = self.app(appid).await?;
        if app.kind != AppKind::OfficialAccount {
            return Err(WeChatError::NotConfigured(format!(
                "{appid} is not an official account"
            )));
        }
        let (holder, safe_only) = match Self::component_of(&app)? {
            Some(component) => (self.app(&component).await?, true),
            None => (app, false),
        };
        let token = holder.token.clone().ok_or_else(|| {
            WeChatError::NotConfigured(format!("{} has no message token", holder.appid))
        })?;
        let aes = holder
            .aes_key
            .clone()
            .map(|key| (key, holder.appid.clone()));
        Ok((token, aes, safe_only))
    }

    /// The `echostr` check of an official account's message URL: the echo when the signature
    /// verifies with the account's message token.
    pub async fn verify_message_echo(
        &self,
        appid: &AppId,
        query: &MessageQuery,
    ) -> Result<String, WeChatError> {
        let (token, aes, safe_only) = self.message_secrets(appid).await?;
        super::account_messages::verify_echo(&message_keys(&token, aes.as_ref(), safe_only), query)
    }

    /// A push to an official account's message URL: signature verified before anything of the
    /// body is read, decrypted in safe mode, typed. Returns the message and the timestamp WeChat
    /// signed.
    pub async fn open_account_message(
        &self,
        appid: &AppId,
        query: &MessageQuery,
        body: &str,
    ) -> Result<(AccountMessage, i64), WeChatError> {
        let (token, aes, safe_only) = self.message_secrets(appid).await?;
        super::account_messages::open_push(
            &message_keys(&token, aes.as_ref(), safe_only),
            query,
            body,
        )
    }

    // ---- upstream tokens ----

    /// The app's own access token (via `stable_token`), cached and shared across instances.
    pub async fn app_access_token(&self, appid: &AppId) -> Result<AccessToken, WeChatError> {
        self.tokens
            .get(TokenKind::AccessToken, appid, || {
                self.fetch_app_token(appid)
            })
            .await
    }

    /// A component's component_access_token, fetched with the last pushed ticket.
    pub async fn component_access_token(
        &self,
        component_appid: &AppId,
    ) -> Result<AccessToken, WeChatError> {
        self.tokens
            .get(TokenKind::ComponentAccessToken, component_appid, || {
                self.fetch_component_token(component_appid)
            })
            .await
    }

    /// An authorizer's access token through its component, using the stored authorizer
    /// refresh token (and storing the new one WeChat may return).
    pub async fn authorizer_access_token(
        &self,
        authorizer_appid: &AppId,
    ) -> Result<AccessToken, WeChatError> {
        self.tokens
            .get(TokenKind::AuthorizerAccessToken, authorizer_appid, || {
                self.fetch_authorizer_token(authorizer_appid)
            })
            .await
    }

    /// Call WeChat with `source`'s token for `appid`; a token WeChat calls invalid
    /// (40001/42001/40014) is dropped from the cache and the call made once more with a fresh one.
    async fn with_token<T, F, Fut>(
        &self,
        source: TokenOf,
        appid: &AppId,
        call: F,
    ) -> Result<T, WeChatError>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: Future<Output = Result<T, WeChatError>>,
    {
        let (kind, token) = self.token_of(source, appid).await?;
        match call(token.clone()).await {
            Err(error) if error.is_token_invalid() => {
                self.tokens.invalidate(kind, appid, &token).await?;
                let (_, token) = self.token_of(source, appid).await?;
                call(token).await
            }
            other => other,
        }
    }

    async fn token_of(
        &self,
        source: TokenOf,
        appid: &AppId,
    ) -> Result<(TokenKind, AccessToken), WeChatError> {
        match source {
            TokenOf::App => Ok((TokenKind::AccessToken, self.app_access_token(appid).await?)),
            TokenOf::Account => self.account_access_token(appid).await,
        }
    }

    /// An official account's access token for its own APIs: the authorizer token when a
    /// component manages the account, else its own; with the kind it is cached under.
    pub async fn account_access_token(
        &self,
        appid: &AppId,
    ) -> Result<(TokenKind, AccessToken), WeChatError> {
        let app = self.app(appid).await?;
        match Self::component_of(&app)? {
            Some(_) => Ok((
                TokenKind::AuthorizerAccessToken,
                self.authorizer_access_token(appid).await?,
            )),
            None => Ok((TokenKind::AccessToken, self.app_access_token(appid).await?)),
        }
    }

    /// An official account's jsapi_ticket (for JS-SDK signatures), cached and shared across
    /// instances like the access tokens, with its expiry.
    pub async fn jsapi_ticket(&self, appid: &AppId) -> Result<HeldToken, WeChatError> {
        self.tokens
            .get_held(TokenKind::JsapiTicket, appid, || {
                self.fetch_jsapi_ticket(appid)
            })
            .await
    }

    /// The upstream credential of `kind` for `appid` as every instance shares it now (read
    /// from the database, not this process's memory), fetched once across instances when it is
    /// not fresh: what the credential broker hands out.
    pub async fn shared_credential(
        &self,
        kind: TokenKind,
        appid: &AppId,
    ) -> Result<HeldToken, WeChatError> {
        self.tokens
            .get_shared_now(kind, appid, || self.fetch_upstream(kind, appid))
            .await
    }

    /// Drops the shared credential of `kind` for `appid` so that the next
    /// [`WeChat::shared_credential`] refetches it, unless a forced refresh happened in the last
    /// `min_interval_secs` (on any instance); `true` when this call dropped it.
    pub async fn force_credential_refresh(
        &self,
        kind: TokenKind,
        appid: &AppId,
        min_interval_secs: i64,
    ) -> Result<bool, WeChatError> {
        self.tokens
            .force_expire(kind, appid, min_interval_secs)
            .await
    }

    /// A fresh credential of `kind` from WeChat.
    async fn fetch_upstream(
        &self,
        kind: TokenKind,
        appid: &AppId,
    ) -> Result<UpstreamToken, WeChatError> {
        match kind {
            TokenKind::AccessToken => self.fetch_app_token(appid).await,
            TokenKind::ComponentAccessToken => self.fetch_component_token(appid).await,
            TokenKind::AuthorizerAccessToken => self.fetch_authorizer_token(appid).await,
            TokenKind::JsapiTicket => self.fetch_jsapi_ticket(appid).await,
        }
    }

    /// `stable_token` without forcing: the current token, so that other holders of the
    /// account's token are not cut off.
    async fn fetch_app_token(&self, appid: &AppId) -> Result<UpstreamToken, WeChatError> {
        let app = self.app(appid).await?;
        let secret = Self::secret_of(&app)?;
        let fetched = self.client.stable_token(appid, &secret, false).await?;
        Ok(UpstreamToken {
            token: fetched.access_token,
            expires_in: upstream_lifetime(fetched.expires_in),
        })
    }

    async fn fetch_component_token(
        &self,
        component_appid: &AppId,
    ) -> Result<UpstreamToken, WeChatError> {
        let app = self.app(component_appid).await?;
        if app.kind != AppKind::Component {
            return Err(WeChatError::NotConfigured(format!(
                "{component_appid} is not a component"
            )));
        }
        let secret = Self::secret_of(&app)?;
        let ticket = self.component_ticket(component_appid).await?;
        let fetched = self
            .client
            .component_token(component_appid, &secret, &ticket)
            .await?;
        Ok(UpstreamToken {
            token: fetched.component_access_token,
            expires_in: upstream_lifetime(fetched.expires_in),
        })
    }

    async fn fetch_authorizer_token(
        &self,
        authorizer_appid: &AppId,
    ) -> Result<UpstreamToken, WeChatError> {
        let app = self.app(authorizer_appid).await?;
        let component_appid = Self::component_of(&app)?.ok_or_else(|| {
            WeChatError::NotConfigured(format!("{authorizer_appid} has no component"))
        })?;
        let refresh = app
            .authorizer_refresh_token
            .as_ref()
            .map(|t| RefreshToken::new(t.expose()))
            .ok_or_else(|| {
                WeChatError::NotConfigured(format!(
                    "{authorizer_appid} has no authorizer refresh token"
                ))
            })?;
        let component_token = self.component_access_token(&component_appid).await?;
        let tokens = self
            .client
            .authorizer_token(
                &component_token,
                &component_appid,
                authorizer_appid,
                &refresh,
            )
            .await?;
        if tokens.authorizer_refresh_token != refresh {
            self.apps
                .set_authorizer_refresh_token(
                    authorizer_appid.as_str(),
                    &Secret::new(tokens.authorizer_refresh_token.expose()),
                )
                .await
                .map_err(registry_error)?;
        }
        Ok(UpstreamToken {
            token: tokens.authorizer_access_token,
            expires_in: upstream_lifetime(tokens.expires_in),
        })
    }

    /// `getticket` with the account's token; a token WeChat calls invalid (40001/42001/40014)
    /// is dropped and the ticket asked for once more with a fresh one.
    async fn fetch_jsapi_ticket(&self, appid: &AppId) -> Result<UpstreamToken, WeChatError> {
        let fetched = self
            .with_token(TokenOf::Account, appid, |token| async move {
                self.client.jsapi_ticket(appid, &token).await
            })
            .await?;
        Ok(UpstreamToken {
            token: fetched.ticket,
            expires_in: upstream_lifetime(fetched.expires_in),
        })
    }

    // ---- web authorization ----

    /// The `connect/oauth2/authorize` URL for `appid`, adding `component_appid` when the app is
    /// managed by a component.
    pub async fn authorize_url(
        &self,
        appid: &AppId,
        redirect_uri: &Url,
        scope: super::types::Scope,
        state: &str,
    ) -> Result<String, WeChatError> {
        let app = self.app(appid).await?;
        let component = Self::component_of(&app)?;
        self.client
            .authorize_url(&AuthorizeRequest {
                appid,
                redirect_uri,
                scope,
                state,
                component_appid: component.as_ref(),
            })
            .map_err(|e: AuthorizeUrlError| WeChatError::NotConfigured(e.to_string()))
    }

    /// The Open Platform website QR login URL (`connect/qrconnect`, `snsapi_login`) for a website
    /// app.
    pub async fn qrconnect_url(
        &self,
        appid: &AppId,
        redirect_uri: &Url,
        state: &str,
    ) -> Result<String, WeChatError> {
        let app = self.app(appid).await?;
        if app.kind != crate::app_registry::AppKind::Website {
            return Err(WeChatError::NotConfigured(format!(
                "app {appid} is not a website app"
            )));
        }
        self.client
            .qrconnect_url(appid, redirect_uri, state)
            .map_err(|e: AuthorizeUrlError| WeChatError::NotConfigured(e.to_string()))
    }

    /// Exchanges a web-auth code: with the component's token when the app is managed by a
    /// component, with the app's own secret otherwise.
    pub async fn web_access_token(
        &self,
        appid: &AppId,
        code: &str,
    ) -> Result<WebAccessToken, WeChatError> {
        let app = self.app(appid).await?;
        match Self::component_of(&app)? {
            None => {
                let secret = Self::secret_of(&app)?;
                self.client.web_access_token(appid, &secret, code).await
            }
            Some(component_appid) => {
                let token = self.component_access_token(&component_appid).await?;
                match self
                    .client
                    .component_web_access_token(appid, code, &component_appid, &token)
                    .await
                {
                    Err(error) if error.is_token_invalid() => {
                        self.tokens
                            .invalidate(TokenKind::ComponentAccessToken, &component_appid, &token)
                            .await?;
                        let token = self.component_access_token(&component_appid).await?;
                        self.client
                            .component_web_access_token(appid, code, &component_appid, &token)
                            .await
                    }
                    other => other,
                }
            }
        }
    }

    /// The user's profile with a web-auth token from `snsapi_userinfo` of `appid`.
    pub async fn web_user_info(
        &self,
        appid: &AppId,
        access_token: &AccessToken,
        openid: &OpenId,
    ) -> Result<WebUserInfo, WeChatError> {
        self.client.web_user_info(appid, access_token, openid).await
    }

    // ---- open platform ----

    /// Stores a component_verify_ticket (sealed), replacing the previous one.
    pub async fn store_component_ticket(
        &self,
        component_appid: &AppId,
        ticket: &str,
    ) -> Result<(), WeChatError> {
        let row = wechat_component_ticket::ActiveModel {
            component_appid: Set(component_appid.as_str().to_owned()),
            ticket_enc: Set(self.vault.seal(ticket, ticket_sealed_at(component_appid))),
            received_at: Set(self.clock.now()),
        };
        wechat_component_ticket::Entity::insert(row)
            .on_conflict(
                OnConflict::column(wechat_component_ticket::Column::ComponentAppid)
                    .update_columns([
                        wechat_component_ticket::Column::TicketEnc,
                        wechat_component_ticket::Column::ReceivedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map_err(|e| WeChatError::Store(format!("wechat_component_ticket: {e}")))?;
        Ok(())
    }

    async fn component_ticket(&self, component_appid: &AppId) -> Result<String, WeChatError> {
        let row = wechat_component_ticket::Entity::find_by_id(component_appid.as_str().to_owned())
            .one(&self.db)
            .await
            .map_err(|e| WeChatError::Store(format!("wechat_component_ticket: {e}")))?
            .ok_or_else(|| {
                WeChatError::NotConfigured(format!(
                    "no component_verify_ticket received yet for {component_appid}"
                ))
            })?;
        self.vault
            .open(&row.ticket_enc, ticket_sealed_at(component_appid))
            .map_err(|e| WeChatError::NotConfigured(format!("wechat_component_ticket: {e}")))
    }

    /// Verifies, decrypts and handles a push to the component's message URL (the body is
    /// WeChat's XML with `<AppId>` and `<Encrypt>`). Answer WeChat `success` when this is `Ok`.
    pub async fn receive_component_push(
        &self,
        params: &PushParams,
        body: &str,
    ) -> Result<ComponentPush, WeChatError> {
        let outer_appid = xml_text(body, "AppId")
            .ok_or_else(|| WeChatError::Decode("push without AppId".to_owned()))?;
        let encrypt = xml_text(body, "Encrypt")
            .ok_or_else(|| WeChatError::Decode("push without Encrypt".to_owned()))?;
        let component_appid = AppId::parse(&outer_appid)
            .map_err(|_| WeChatError::Decode("push with a malformed AppId".to_owned()))?;
        let app = self.app(&component_appid).await?;
        if app.kind != AppKind::Component {
            return Err(WeChatError::NotConfigured(format!(
                "{component_appid} is not a component"
            )));
        }
        let (Some(token), Some(aes_key)) = (&app.token, &app.aes_key) else {
            return Err(WeChatError::NotConfigured(format!(
                "{component_appid} has no message token or EncodingAESKey"
            )));
        };
        let crypt = MessageCrypt::new(token.expose(), aes_key.expose(), component_appid.as_str())?;
        let message = crypt.decrypt_verified(
            &params.msg_signature,
            &params.timestamp,
            &params.nonce,
            &encrypt,
        )?;
        // The ciphertext's appid trailer was checked by `decrypt_verified`; the message's own
        // AppId must name the same component.
        if xml_text(&message, "AppId").is_some_and(|inner| inner != component_appid.as_str()) {
            return Err(WeChatError::Decode(
                "push whose message names another component".to_owned(),
            ));
        }
        let info_type = xml_text(&message, "InfoType").unwrap_or_default();
        if info_type == "component_verify_ticket" {
            let ticket = xml_text(&message, "ComponentVerifyTicket")
                .filter(|t| !t.is_empty())
                .ok_or_else(|| WeChatError::Decode("ticket push without a ticket".to_owned()))?;
            self.store_component_ticket(&component_appid, &ticket)
                .await?;
            tracing::info!(component_appid = %component_appid, "stored component_verify_ticket");
            return Ok(ComponentPush::VerifyTicket {
                component_appid: component_appid.to_string(),
            });
        }
        if matches!(
            info_type.as_str(),
            "authorized" | "unauthorized" | "updateauthorized"
        ) {
            tracing::info!(
                component_appid = %component_appid,
                info_type = %info_type,
                authorizer_appid = %xml_text(&message, "AuthorizerAppid").unwrap_or_default(),
                "component authorization notice"
            );
        }
        Ok(ComponentPush::Other {
            component_appid: component_appid.to_string(),
            info_type,
        })
    }

    /// Exchanges an authorizer's consent code (`api_query_auth`) and stores its refresh token
    /// on the authorizer's `wx_app` row (which must exist). Returns the authorizer's appid.
    pub async fn query_auth(
        &self,
        component_appid: &AppId,
        authorization_code: &str,
    ) -> Result<AppId, WeChatError> {
        let token = self.component_access_token(component_appid).await?;
        let info = self
            .client
            .query_auth(&token, component_appid, authorization_code)
            .await?;
        let authorizer = info
            .authorizer_appid
            .as_deref()
            .and_then(|a| AppId::parse(a).ok())
            .ok_or_else(|| WeChatError::Decode("api_query_auth without authorizer_appid".into()))?;
        self.apps
            .set_authorizer_refresh_token(
                authorizer.as_str(),
                &Secret::new(info.authorizer_refresh_token.expose()),
            )
            .await
            .map_err(registry_error)?;
        Ok(authorizer)
    }
}

/// Whose access token a WeChat call takes.
#[derive(Debug, Clone, Copy)]
enum TokenOf {
    /// The app's own (`stable_token`).
    App,
    /// An official account's: the authorizer token when a component manages it.
    Account,
}

/// The keys an official account's pushes are verified with, borrowed for one check.
fn message_keys<'a>(
    token: &'a Secret,
    aes: Option<&'a (Secret, String)>,
    safe_only: bool,
) -> MessageKeys<'a> {
    MessageKeys {
        token: token.expose(),
        aes: aes.map(|(key, owner)| (key.expose(), owner.as_str())),
        safe_only,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_lifetimes_are_bounded() {
        assert_eq!(upstream_lifetime(7200), 7200);
        assert_eq!(upstream_lifetime(-5), 0);
        assert_eq!(upstream_lifetime(i64::MAX), MAX_UPSTREAM_TOKEN_TTL);
    }
}
