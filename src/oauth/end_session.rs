//! The request side of OpenID Connect RP-Initiated Logout 1.0: which client asks, for whom, and
//! where the browser may go afterwards.
//!
//! - `id_token_hint` must be an ID token we signed (signature with our keys, `typ`, our issuer);
//!   an expired one is accepted (§2: the RP may send one whose session ended long ago).
//! - `client_id`, when sent with a hint, must be the hint's audience.
//! - `post_logout_redirect_uri` must be one the client registered, compared exactly; without a
//!   client (no hint, no `client_id`) no redirect is possible. A refused redirect is never
//!   followed: the caller shows a page (no open redirect).
//!
//! And the effect on the client's grants: [`revoke_client_grants`] revokes the refresh-token
//! families a client holds for an account.

use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use entity::refresh_token_family;

use crate::oauth::client_registry::{ClientRegistry, RegisteredClient};
use crate::oauth::id_token::ID_TOKEN_TYP;
use crate::oauth::token_service::TokenService;

/// The longest parameter value we look at (an ID token is far shorter).
pub const MAX_PARAM_LEN: usize = 8 * 1024;

/// The parameters of an end-session request (RP-Initiated Logout 1.0 §2).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EndSessionParams {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    /// Accepted; the pages follow the browser's `Accept-Language`.
    pub ui_locales: Option<String>,
}

/// What a valid hint says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// The account id.
    pub sub: String,
    /// The browser session the ID token was issued in, if any.
    pub sid: Option<String>,
}

/// A validated end-session request.
#[derive(Debug, Clone)]
pub struct EndSessionRequest {
    /// The client that asks (the hint's audience or `client_id`).
    pub client: Option<RegisteredClient>,
    pub hint: Option<Hint>,
    /// Where to send the browser afterwards: a registered URI with `state` added.
    pub redirect: Option<Url>,
}

/// Why an end-session request is refused. Each becomes the same page for the person; the detail
/// goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum EndSessionError {
    #[error("id_token_hint is not an ID token this server issued")]
    BadHint,
    #[error("client_id is not the audience of id_token_hint")]
    ClientMismatch,
    #[error("unknown client")]
    UnknownClient,
    #[error("post_logout_redirect_uri is not registered for the client")]
    RedirectNotRegistered,
    #[error("post_logout_redirect_uri needs id_token_hint or client_id")]
    RedirectWithoutClient,
    #[error("a parameter is too long")]
    TooLong,
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// The claims of a hint we read: `aud` may be a string or an array (Core §2).
#[derive(Deserialize)]
struct HintClaims {
    iss: String,
    sub: String,
    aud: Value,
    azp: Option<String>,
    sid: Option<String>,
}

impl HintClaims {
    /// The client the ID token was issued to: `azp` if present, else the single audience.
    fn client_id(&self) -> Option<String> {
        if let Some(azp) = &self.azp {
            return Some(azp.clone());
        }
        match &self.aud {
            Value::String(aud) => Some(aud.clone()),
            Value::Array(auds) if auds.len() == 1 => auds[0].as_str().map(str::to_owned),
            _ => None,
        }
    }

    fn has_audience(&self, client_id: &str) -> bool {
        match &self.aud {
            Value::String(aud) => aud == client_id,
            Value::Array(auds) => auds.iter().any(|a| a.as_str() == Some(client_id)),
            _ => false,
        }
    }
}

/// A parameter sent empty counts as absent.
fn empty_as_none(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

fn too_long(value: &Option<String>) -> bool {
    value.as_ref().is_some_and(|v| v.len() > MAX_PARAM_LEN)
}

/// Validate an end-session request.
pub async fn validate(
    clients: &ClientRegistry,
    tokens: &TokenService,
    params: &EndSessionParams,
) -> Result<EndSessionRequest, EndSessionError> {
    if [
        &params.id_token_hint,
        &params.client_id,
        &params.post_logout_redirect_uri,
        &params.state,
        &params.ui_locales,
    ]
    .into_iter()
    .any(too_long)
    {
        return Err(EndSessionError::TooLong);
    }
    let mut client_id = empty_as_none(&params.client_id).map(str::to_owned);
    let hint = match empty_as_none(&params.id_token_hint) {
        Some(token) => {
            // Signature, typ and issuer; not expiry (§2: an expired hint is fine).
            let claims: HintClaims = tokens
                .keys()
                .verify(token, ID_TOKEN_TYP)
                .await
                .map_err(|_| EndSessionError::BadHint)?;
            if claims.iss != tokens.issuer() {
                return Err(EndSessionError::BadHint);
            }
            match &client_id {
                Some(id) if !claims.has_audience(id) => {
                    return Err(EndSessionError::ClientMismatch);
                }
                Some(_) => {}
                None => client_id = Some(claims.client_id().ok_or(EndSessionError::BadHint)?),
            }
            Some(Hint {
                sub: claims.sub,
                sid: claims.sid,
            })
        }
        None => None,
    };
    let client = match &client_id {
        Some(id) => Some(
            clients
                .get(id)
                .await?
                .ok_or(EndSessionError::UnknownClient)?,
        ),
        None => None,
    };
    let redirect = match (empty_as_none(&params.post_logout_redirect_uri), &client) {
        (None, _) => None,
        (Some(_), None) => return Err(EndSessionError::RedirectWithoutClient),
        (Some(uri), Some(client)) => {
            if !client
                .logout
                .post_logout_redirect_uris
                .iter()
                .any(|registered| registered == uri)
            {
                return Err(EndSessionError::RedirectNotRegistered);
            }
            let mut url = Url::parse(uri).map_err(|_| EndSessionError::RedirectNotRegistered)?;
            if let Some(state) = empty_as_none(&params.state) {
                url.query_pairs_mut().append_pair("state", state);
            }
            Some(url)
        }
    };
    Ok(EndSessionRequest {
        client,
        hint,
        redirect,
    })
}

/// Revoke every live refresh-token family `client_id` holds for `account_id` (and the access
/// tokens they produced); returns how many.
pub async fn revoke_client_grants(
    db: &DatabaseConnection,
    tokens: &TokenService,
    client_id: &str,
    account_id: i64,
) -> Result<u64, DbErr> {
    let families: Vec<String> = refresh_token_family::Entity::find()
        .select_only()
        .column(refresh_token_family::Column::FamilyId)
        .filter(refresh_token_family::Column::ClientId.eq(client_id))
        .filter(refresh_token_family::Column::OwnerId.eq(account_id.to_string()))
        .filter(refresh_token_family::Column::RevokedAt.is_null())
        .into_tuple()
        .all(db)
        .await?;
    for family in &families {
        tokens.revoke_family(family).await?;
    }
    Ok(families.len() as u64)
}
