//! The authorization endpoint's core (RFC 6749 §4.1, RFC 7636, OpenID Connect Core §3.1.2), on
//! oxide-auth's authorization-code state machine with our registrar, PKCE extension and
//! [`CodeStore`].
//!
//! Order of checks: a request that names no known client or no exactly registered redirect_uri
//! is never redirected (RFC 6749 §4.1.2.1: an error page instead); everything after that is
//! reported to the client at its redirect_uri with `error` and `state`. Public clients must use
//! PKCE with S256; `plain` is refused for everyone. Then the caller decides, from the browser
//! session, whether the user must sign in, consent, or is sent back with a code at once.

use std::borrow::Cow;
use std::sync::Arc;

use oxide_auth::code_grant::authorization::{Error as FlowError, Request};
use oxide_auth::code_grant::error::AuthorizationErrorType;
use oxide_auth::code_grant::extensions::Pkce;
use oxide_auth::primitives::grant::{Extensions, Value};
use oxide_auth::primitives::registrar::{
    BoundClient, ClientUrl, PreGrant, RegisteredUrl, RegistrarError,
};
use oxide_auth::primitives::scope::Scope;
use oxide_auth_async::code_grant::authorization::{
    Endpoint, Extension, Pending, authorization_code,
};
use oxide_auth_async::primitives::{Authorizer, Registrar};
use sea_orm::DatabaseConnection;
use url::Url;

use crate::clock::SharedClock;
use crate::oauth::GrantType;
use crate::oauth::authenticated_client::negotiate_scope;
use crate::oauth::client_registry::{ClientRegistry, RegisteredClient};
use crate::oauth::codes::{CodeStore, NONCE_EXTENSION};
use crate::oauth::consent::Consents;
use crate::oauth::params::Params;
use crate::oauth::resources::{Resource, ResourceRegistry};
use crate::oauth::token_issuer::{mark_resources, mark_subject};
use crate::oauth::token_service::SubjectKind;
use crate::vault::Vault;

/// The parameters an authorization request may carry (RFC 6749 §4.1.1, RFC 7636, OpenID Connect
/// Core §3.1.2.1) and the longest value wxauth accepts for each. Anything else is dropped before
/// the request is looked at or stored (RFC 6749 §3.1: unknown parameters are ignored).
pub const AUTHORIZATION_PARAMETERS: &[(&str, usize)] = &[
    ("client_id", 128),
    ("redirect_uri", 2048),
    ("response_type", 64),
    ("response_mode", 32),
    ("scope", 1024),
    ("state", 1024),
    ("code_challenge", 128),
    ("code_challenge_method", 16),
    ("nonce", 255),
    ("prompt", 64),
    ("max_age", 16),
    ("display", 16),
    ("login_hint", 256),
    ("ui_locales", 128),
    ("acr_values", 256),
    ("resource", 255),
];

/// Keep the known authorization parameters (and `extra`, with their caps), dropping the rest;
/// `Err` names a known parameter that is longer than its cap.
pub fn known_parameters(
    pairs: Vec<(String, String)>,
    extra: &[(&str, usize)],
) -> Result<Vec<(String, String)>, String> {
    let mut kept = Vec::new();
    for (name, value) in pairs {
        let Some((_, cap)) = AUTHORIZATION_PARAMETERS
            .iter()
            .chain(extra)
            .find(|(known, _)| *known == name)
        else {
            continue;
        };
        if value.len() > *cap {
            return Err(format!(
                "the {name} parameter is too long (at most {cap} bytes)"
            ));
        }
        kept.push((name, value));
    }
    Ok(kept)
}

/// Why an authorization request cannot go on.
#[derive(Debug)]
pub enum AuthorizeError {
    /// Not safe to redirect (no such client, redirect_uri not registered): show this message.
    Page(String),
    /// Tell the client: redirect here (it carries `error`, `error_description` and `state`).
    Redirect(Url),
    /// Our own failure (logged; the user sees a generic page).
    Internal(String),
}

/// What `prompt` asked for (OIDC Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// A valid authorization request, not yet bound to a user.
pub struct ValidatedRequest {
    pub client: RegisteredClient,
    /// The negotiated scope.
    pub scope: Vec<String>,
    /// The resources (RFC 8707) the code will be bound to.
    pub resources: Vec<Resource>,
    pub prompt: Prompt,
    /// OIDC `max_age` in seconds.
    pub max_age: Option<i64>,
    redirect_uri: Url,
    state: Option<String>,
    /// Our issuer, named in every authorization response (RFC 9207).
    issuer: String,
    pending: Pending,
}

impl std::fmt::Debug for ValidatedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidatedRequest")
            .field("client", &self.client.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl ValidatedRequest {
    /// The client's redirect with `error` (RFC 6749 §4.1.2.1).
    pub fn error_redirect(&self, error: &str, description: &str) -> Url {
        error_redirect(
            &self.redirect_uri,
            self.state.as_deref(),
            &self.issuer,
            error,
            description,
        )
    }
}

/// The signed-in user, as the authorization endpoint needs them.
#[derive(Debug, Clone)]
pub struct SignedInUser {
    pub account_id: i64,
    pub auth_time: i64,
    /// The browser session's id for OIDC `sid` (Back-Channel Logout 1.0 §2.1).
    pub sid: Option<String>,
}

/// What to do with a valid request.
#[derive(Debug)]
pub enum NextStep {
    /// Sign the user in with WeChat, then come back.
    SignIn,
    /// Ask the user to consent.
    Consent,
    /// Send the browser here (a code, or an error such as `login_required`).
    Redirect(Url),
}

/// The `error_description` of a refusal oxide-auth made without one.
fn refusal_description(kind: AuthorizationErrorType) -> &'static str {
    match kind {
        AuthorizationErrorType::UnsupportedResponseType => {
            "response_type must be code (the only response type this server supports)"
        }
        AuthorizationErrorType::InvalidScope => {
            "the requested scope is unknown or not allowed for this client"
        }
        AuthorizationErrorType::UnauthorizedClient => {
            "this client may not use the authorization code flow"
        }
        AuthorizationErrorType::AccessDenied => "the request was denied",
        AuthorizationErrorType::InvalidRequest => "the authorization request is malformed",
        AuthorizationErrorType::ServerError | AuthorizationErrorType::TemporarilyUnavailable => {
            "the server cannot answer this request now; try again"
        }
    }
}

fn error_redirect(
    redirect_uri: &Url,
    state: Option<&str>,
    issuer: &str,
    error: &str,
    description: &str,
) -> Url {
    let mut url = redirect_uri.clone();
    {
        let mut pairs = url.query_pairs_mut();
        pairs.append_pair("error", error);
        pairs.append_pair("error_description", description);
        if let Some(state) = state {
            pairs.append_pair("state", state);
        }
        pairs.append_pair("iss", issuer);
    }
    url
}

/// Name the issuer in an authorization response (RFC 9207 §2), unless it already does.
fn with_issuer(mut url: Url, issuer: &str) -> Url {
    if !url.query_pairs().any(|(k, _)| k == "iss") {
        url.query_pairs_mut().append_pair("iss", issuer);
    }
    url
}

/// Authorization requests: validation, decision, codes.
#[derive(Clone)]
pub struct AuthorizationService {
    clients: ClientRegistry,
    consents: Consents,
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
    /// Named as `iss` in every authorization response (RFC 9207).
    issuer: String,
}

impl AuthorizationService {
    pub fn new(
        clients: ClientRegistry,
        consents: Consents,
        db: DatabaseConnection,
        vault: Arc<Vault>,
        clock: SharedClock,
    ) -> Self {
        Self {
            clients,
            consents,
            db,
            vault,
            clock,
            issuer: String::new(),
        }
    }

    /// The issuer to name in authorization responses (RFC 9207 `iss`).
    pub fn with_issuer(mut self, issuer: String) -> Self {
        self.issuer = issuer;
        self
    }

    /// A code store for one request.
    pub fn code_store(&self) -> CodeStore {
        CodeStore::new(self.db.clone(), self.vault.clone(), self.clock.clone())
    }

    /// Check an authorization request.
    pub async fn validate(&self, params: &Params) -> Result<ValidatedRequest, AuthorizeError> {
        for (name, value) in params.pairs() {
            if let Some((_, cap)) = AUTHORIZATION_PARAMETERS.iter().find(|(n, _)| *n == name)
                && value.len() > *cap
            {
                return Err(AuthorizeError::Page(format!(
                    "the {name} parameter is too long (at most {cap} bytes)"
                )));
            }
        }
        let client_id = params
            .get("client_id")
            .ok_or_else(|| AuthorizeError::Page("client_id is missing".into()))?;
        let client = self
            .clients
            .get(client_id)
            .await
            .map_err(|e| AuthorizeError::Internal(format!("loading client: {e}")))?
            .ok_or_else(|| AuthorizeError::Page(format!("unknown client {client_id:?}")))?;
        let given = params.get("redirect_uri").ok_or_else(|| {
            AuthorizeError::Page("redirect_uri is missing (it is required)".into())
        })?;
        if !client.redirect_uris.iter().any(|r| r == given) {
            return Err(AuthorizeError::Page(
                "redirect_uri is not registered for this client (exact match required)".into(),
            ));
        }
        let redirect_uri = Url::parse(given)
            .map_err(|_| AuthorizeError::Page("redirect_uri is not a URL".into()))?;
        let state = params.get("state").map(str::to_owned);
        let refuse = |error: &str, description: &str| {
            AuthorizeError::Redirect(error_redirect(
                &redirect_uri,
                state.as_deref(),
                &self.issuer,
                error,
                description,
            ))
        };
        if !client.allows_grant(GrantType::AuthorizationCode) {
            return Err(refuse(
                "unauthorized_client",
                "this client may not use the authorization code flow",
            ));
        }
        let prompt =
            parse_prompt(params.get("prompt")).map_err(|m| refuse("invalid_request", &m))?;
        let max_age = match params.get("max_age") {
            None => None,
            Some(v) => Some(v.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
                refuse("invalid_request", "max_age must be a non-negative integer")
            })?),
        };

        // RFC 8707: the resources named are bound to the code; the token request may then ask
        // for these or fewer.
        let resources = ResourceRegistry::new(self.db.clone())
            .resolve(&client, &params.all("resource"))
            .await
            .map_err(|e| {
                refuse(
                    e.code.as_str(),
                    e.description.as_deref().unwrap_or("invalid resource"),
                )
            })?;
        let mut endpoint = AuthorizeEndpoint {
            registrar: RequestedClient { client: &client },
            codes: self.code_store(),
            extension: AuthorizeExtension {
                public_client: client.public,
                failure: None,
                resources: resources.clone(),
            },
        };
        let request = AuthorizeRequest(params);
        let pending = match authorization_code(&mut endpoint, &request).await {
            Ok(pending) => pending,
            Err(FlowError::Redirect(mut error)) => {
                // Rebuilt with RFC 6749 §4.1.2.1's names: oxide-auth writes `description` and
                // `uri` where the RFC (and every client library) reads `error_description`.
                let refusal = error.description();
                let kind = refusal.kind();
                let code = refusal
                    .iter()
                    .find(|(key, _)| *key == "error")
                    .map(|(_, code)| code.into_owned())
                    .unwrap_or_else(|| "invalid_request".to_owned());
                let description = endpoint
                    .extension
                    .failure
                    .unwrap_or_else(|| refusal_description(kind));
                return Err(refuse(&code, description));
            }
            Err(FlowError::Ignore) => {
                return Err(AuthorizeError::Page(
                    "malformed authorization request".into(),
                ));
            }
            Err(FlowError::PrimitiveError) => {
                return Err(AuthorizeError::Internal(
                    "authorization request primitives".into(),
                ));
            }
        };
        let scope = pending
            .pre_grant()
            .scope
            .iter()
            .map(str::to_owned)
            .collect();
        Ok(ValidatedRequest {
            client,
            scope,
            resources,
            prompt,
            max_age,
            redirect_uri,
            state,
            issuer: self.issuer.clone(),
            pending,
        })
    }

    /// Decide what happens next for this user (if any is signed in).
    pub async fn next_step(
        &self,
        request: &ValidatedRequest,
        user: Option<SignedInUser>,
    ) -> Result<NextStep, AuthorizeError> {
        let now = self.clock.now();
        let fresh_enough = |u: &SignedInUser| match request.max_age {
            Some(max_age) => now - u.auth_time <= max_age,
            None => true,
        };
        let user = match user.filter(|u| fresh_enough(u) && !request.prompt.login) {
            Some(user) => user,
            None if request.prompt.none => {
                return Ok(NextStep::Redirect(
                    request.error_redirect("login_required", "the user is not signed in"),
                ));
            }
            None => return Ok(NextStep::SignIn),
        };
        let consented = request.client.first_party
            || self
                .consents
                .covers(user.account_id, &request.client.client_id, &request.scope)
                .await
                .map_err(|e| AuthorizeError::Internal(format!("reading consent: {e}")))?;
        if consented && !request.prompt.consent {
            return self.approve(request, user).await.map(NextStep::Redirect);
        }
        if request.prompt.none {
            return Ok(NextStep::Redirect(request.error_redirect(
                "consent_required",
                "the user has not consented to this client",
            )));
        }
        Ok(NextStep::Consent)
    }

    /// The user agreed: remember it and send a code.
    pub async fn approve(
        &self,
        request: &ValidatedRequest,
        user: SignedInUser,
    ) -> Result<Url, AuthorizeError> {
        if !request.client.first_party {
            self.consents
                .remember(user.account_id, &request.client.client_id, &request.scope)
                .await
                .map_err(|e| AuthorizeError::Internal(format!("storing consent: {e}")))?;
        }
        let mut codes = self.code_store();
        codes.auth_time = Some(user.auth_time);
        codes.sid = user.sid.clone();
        let mut endpoint = AuthorizeEndpoint {
            registrar: RequestedClient {
                client: &request.client,
            },
            codes,
            extension: AuthorizeExtension {
                public_client: request.client.public,
                failure: None,
                resources: request.resources.clone(),
            },
        };
        request
            .pending
            .clone()
            .authorize(&mut endpoint, Cow::Owned(user.account_id.to_string()))
            .await
            .map(|url| with_issuer(url, &self.issuer))
            .map_err(|_| AuthorizeError::Internal("issuing an authorization code".into()))
    }

    /// The user said no (RFC 6749 §4.1.2.1 `access_denied`).
    pub fn deny(&self, request: &ValidatedRequest) -> Url {
        request.error_redirect("access_denied", "the user denied the request")
    }

    /// The user cancelled the sign-in at WeChat: tell the client of the authorization request
    /// `params` (the one the sign-in was to resume) `access_denied`, with its `state`. A request
    /// that is no longer valid (its client changed meanwhile) gets the error it would get now.
    pub async fn sign_in_cancelled(&self, params: &Params) -> Result<Url, AuthorizeError> {
        let request = self.validate(params).await?;
        Ok(request.error_redirect("access_denied", "the user cancelled the sign-in at WeChat"))
    }
}

fn parse_prompt(value: Option<&str>) -> Result<Prompt, String> {
    let mut prompt = Prompt::default();
    for word in value
        .unwrap_or_default()
        .split(' ')
        .filter(|w| !w.is_empty())
    {
        match word {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            "select_account" => {}
            other => return Err(format!("prompt {other:?} is not supported")),
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        return Err("prompt=none cannot be combined with other values".into());
    }
    Ok(prompt)
}

/// An authorization request's parameters, for oxide-auth.
struct AuthorizeRequest<'a>(&'a Params);

impl Request for AuthorizeRequest<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn client_id(&self) -> Option<Cow<'_, str>> {
        self.0.get("client_id").map(Cow::Borrowed)
    }
    fn scope(&self) -> Option<Cow<'_, str>> {
        self.0
            .get("scope")
            .filter(|s| !s.trim().is_empty())
            .map(Cow::Borrowed)
    }
    fn redirect_uri(&self) -> Option<Cow<'_, str>> {
        self.0.get("redirect_uri").map(Cow::Borrowed)
    }
    fn state(&self) -> Option<Cow<'_, str>> {
        self.0.get("state").map(Cow::Borrowed)
    }
    fn response_type(&self) -> Option<Cow<'_, str>> {
        self.0.get("response_type").map(Cow::Borrowed)
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        self.0.get(key).map(Cow::Borrowed)
    }
}

/// The registrar for the client named in the request (already loaded).
struct RequestedClient<'a> {
    client: &'a RegisteredClient,
}

#[async_trait::async_trait]
impl Registrar for RequestedClient<'_> {
    async fn bound_redirect<'b>(
        &self,
        bound: ClientUrl<'b>,
    ) -> Result<BoundClient<'b>, RegistrarError> {
        if bound.client_id != self.client.client_id {
            return Err(RegistrarError::Unspecified);
        }
        let given = bound.redirect_uri.ok_or(RegistrarError::Unspecified)?;
        if !self
            .client
            .redirect_uris
            .iter()
            .any(|r| r == given.as_str())
        {
            return Err(RegistrarError::Unspecified);
        }
        Ok(BoundClient {
            client_id: bound.client_id,
            redirect_uri: Cow::Owned(RegisteredUrl::Exact(given.into_owned())),
        })
    }

    async fn negotiate<'b>(
        &self,
        bound: BoundClient<'b>,
        scope: Option<Scope>,
    ) -> Result<PreGrant, RegistrarError> {
        negotiate_scope(self.client, bound, scope)
    }

    async fn check(&self, client_id: &str, _: Option<&[u8]>) -> Result<(), RegistrarError> {
        if client_id == self.client.client_id {
            Ok(())
        } else {
            Err(RegistrarError::Unspecified)
        }
    }
}

/// PKCE (S256 only; required for public clients), the OIDC nonce, and the user subject marker.
struct AuthorizeExtension {
    public_client: bool,
    /// Why the request was refused, for `error_description`.
    failure: Option<&'static str>,
    /// The resources (RFC 8707) to bind to the code.
    resources: Vec<Resource>,
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn well_formed_challenge(challenge: &str) -> bool {
    (43..=128).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

#[async_trait::async_trait]
impl Extension for AuthorizeExtension {
    async fn extend(&mut self, request: &(dyn Request + Sync)) -> Result<Extensions, ()> {
        let pkce = if self.public_client {
            Pkce::required()
        } else {
            Pkce::optional()
        };
        let challenge = request.extension("code_challenge");
        let method = request.extension("code_challenge_method");
        if let Some(c) = &challenge
            && !well_formed_challenge(c)
        {
            self.failure = Some("code_challenge must be 43 to 128 URL-safe characters");
            return Err(());
        }
        let encoded = match pkce.challenge(method.clone(), challenge.clone()) {
            Ok(encoded) => encoded,
            Err(()) => {
                self.failure = Some(match (challenge, method.as_deref()) {
                    (None, _) => "PKCE is required: send code_challenge with S256",
                    (Some(_), Some("S256")) => "malformed code_challenge",
                    (Some(_), _) => "only code_challenge_method=S256 is supported",
                });
                return Err(());
            }
        };
        let mut extensions = Extensions::new();
        if let Some(encoded) = encoded {
            extensions.set(&pkce, encoded);
        }
        if let Some(nonce) = request.extension("nonce") {
            if nonce.len() > 255 {
                self.failure = Some("nonce is longer than 255 characters");
                return Err(());
            }
            extensions.set_raw(
                NONCE_EXTENSION.to_owned(),
                Value::public(Some(nonce.into_owned())),
            );
        }
        mark_subject(&mut extensions, SubjectKind::User);
        mark_resources(&mut extensions, &self.resources);
        Ok(extensions)
    }
}

struct AuthorizeEndpoint<'a> {
    registrar: RequestedClient<'a>,
    codes: CodeStore,
    extension: AuthorizeExtension,
}

impl Endpoint for AuthorizeEndpoint<'_> {
    fn registrar(&self) -> &(dyn Registrar + Sync) {
        &self.registrar
    }
    fn authorizer(&mut self) -> &mut (dyn Authorizer + Send) {
        &mut self.codes
    }
    fn extension(&mut self) -> &mut (dyn Extension + Send) {
        &mut self.extension
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_parameters_within_their_caps_are_kept() {
        let pairs = vec![
            ("client_id".to_string(), "app".to_string()),
            ("utm_source".to_string(), "x".repeat(60_000)),
            ("state".to_string(), "s".to_string()),
        ];
        assert_eq!(
            known_parameters(pairs, &[]),
            Ok(vec![
                ("client_id".to_string(), "app".to_string()),
                ("state".to_string(), "s".to_string())
            ])
        );
        let long = vec![("state".to_string(), "s".repeat(1025))];
        assert!(known_parameters(long, &[]).is_err());
    }

    #[test]
    fn prompt_values() {
        assert_eq!(parse_prompt(None), Ok(Prompt::default()));
        assert!(parse_prompt(Some("none")).is_ok_and(|p| p.none));
        assert!(parse_prompt(Some("login consent")).is_ok_and(|p| p.login && p.consent));
        assert!(parse_prompt(Some("none login")).is_err());
        assert!(parse_prompt(Some("bogus")).is_err());
    }

    #[test]
    fn challenges_are_checked_for_shape() {
        assert!(well_formed_challenge(&"a".repeat(43)));
        assert!(!well_formed_challenge(&"a".repeat(42)));
        assert!(!well_formed_challenge(&"a".repeat(129)));
        assert!(!well_formed_challenge(&format!("{}+", "a".repeat(43))));
    }
}
