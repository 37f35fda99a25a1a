//! OpenID Connect Back-Channel Logout 1.0: when a browser session ends, every client of the
//! account that registered a `backchannel_logout_uri` gets a signed logout token (§2.4: `typ`
//! `logout+jwt`; `iss`, `aud`, `iat`, `exp`, `jti`, `sub` and `sid`, the back-channel logout
//! event, never a `nonce`) POSTed as the form field `logout_token` (§2.5).
//!
//! Delivery runs in a spawned task, never in the user's response: each client gets up to
//! [`ATTEMPTS`] tries, each bounded by [`ATTEMPT_TIMEOUT`], with a doubling pause from
//! [`FIRST_RETRY_PAUSE`] between them; a 2xx ends it, a 4xx other than 408/429 (the client
//! refuses the token: sending it again would not help) ends it too. Redirects are not followed.
//! A delivery still pending when the process stops is lost: the spec asks the OP to try, and
//! the tokens live [`LOGOUT_TOKEN_TTL`] seconds, so a queue that outlives a restart would mostly
//! deliver expired tokens. The token itself is never logged.

use std::sync::LazyLock;
use std::time::Duration;

use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};
use serde::Serialize;
use serde_json::{Value, json};

use entity::{consent, refresh_token_family};

use crate::oauth::client_registry::IdTokenAlg;
use crate::oauth::client_registry::{ClientRegistry, RegisteredClient};
use crate::oauth::token_service::TokenService;
use crate::vault::random_token;

/// The `typ` of a logout token's header (§2.4).
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";
/// The event a logout token carries (§2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long a logout token is valid (seconds).
pub const LOGOUT_TOKEN_TTL: i64 = 120;
/// Tries per client.
pub const ATTEMPTS: u32 = 3;
/// The longest one try may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause before the second try; it doubles before each later one.
pub const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The claims of a logout token.
#[derive(Debug, Serialize)]
pub struct LogoutTokenClaims {
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub events: Value,
}

/// The session that ended: whose, and its `sid` if it was a browser session.
#[derive(Debug, Clone)]
pub struct EndedSession {
    pub account_id: i64,
    pub sid: Option<String>,
}

/// The clients of `account_id` that registered a back-channel logout URI: those it consented to
/// and those holding refresh-token families for it.
pub async fn clients_to_notify(
    db: &DatabaseConnection,
    clients: &ClientRegistry,
    account_id: i64,
) -> Result<Vec<RegisteredClient>, DbErr> {
    let mut ids: Vec<String> = consent::Entity::find()
        .select_only()
        .column(consent::Column::ClientId)
        .filter(consent::Column::AccountId.eq(account_id))
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    let held: Vec<String> = refresh_token_family::Entity::find()
        .select_only()
        .column(refresh_token_family::Column::ClientId)
        .filter(refresh_token_family::Column::OwnerId.eq(account_id.to_string()))
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    ids.extend(held);
    ids.sort();
    ids.dedup();
    let mut found = Vec::new();
    for id in ids {
        if let Some(client) = clients.get(&id).await?
            && client.logout.backchannel_logout_uri.is_some()
        {
            found.push(client);
        }
    }
    Ok(found)
}

/// Sign a logout token for `client` about `session`.
pub async fn logout_token(
    tokens: &TokenService,
    client: &RegisteredClient,
    session: &EndedSession,
) -> Result<String, crate::oauth::keys::KeyError> {
    let now = tokens.now();
    let claims = LogoutTokenClaims {
        iss: tokens.issuer().to_owned(),
        aud: client.client_id.clone(),
        iat: now,
        exp: now.saturating_add(LOGOUT_TOKEN_TTL),
        jti: random_token(16),
        sub: session.account_id.to_string(),
        sid: session.sid.clone(),
        events: json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
    };
    // Signed like the client's ID tokens: with a published asymmetric key, whatever signs access
    // tokens (an HS256 server's own secret would leave the client nothing to verify with).
    let keys = tokens.keys();
    let alg = client
        .id_token_alg
        .map_or_else(|| keys.default_id_token_alg(), IdTokenAlg::jwt_alg);
    keys.sign_with(alg, LOGOUT_TOKEN_TYP, &claims).await
}

/// The HTTP client deliveries use: no redirects, bounded time.
static DELIVERY_CLIENT: LazyLock<Option<reqwest::Client>> = LazyLock::new(|| {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(ATTEMPT_TIMEOUT)
        .build()
        .map_err(|error| tracing::error!(%error, "back-channel logout HTTP client"))
        .ok()
});

/// Sign a logout token for each client and deliver them in the background; returns the ids of
/// the clients a delivery was started for.
pub async fn notify(
    tokens: &TokenService,
    clients: Vec<RegisteredClient>,
    session: EndedSession,
) -> Vec<String> {
    let mut started = Vec::new();
    for client in clients {
        let Some(uri) = client.logout.backchannel_logout_uri.clone() else {
            continue;
        };
        if client.logout.backchannel_logout_session_required && session.sid.is_none() {
            // The client needs a sid and this session had none: a token would be refused.
            continue;
        }
        let token = match logout_token(tokens, &client, &session).await {
            Ok(token) => token,
            Err(error) => {
                tracing::error!(client_id = %client.client_id, %error, "signing a logout token");
                continue;
            }
        };
        let client_id = client.client_id.clone();
        tokio::spawn(deliver(client_id.clone(), uri, token));
        started.push(client_id);
    }
    started
}

/// Whether a delivery answered with `status` is worth trying again.
fn worth_retrying(status: reqwest::StatusCode) -> bool {
    status.is_server_error()
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
}

/// POST `logout_token` to `uri`, up to [`ATTEMPTS`] times.
async fn deliver(client_id: String, uri: String, token: String) {
    let Some(http) = DELIVERY_CLIENT.as_ref() else {
        return;
    };
    let mut pause = FIRST_RETRY_PAUSE;
    for attempt in 1..=ATTEMPTS {
        let result = http
            .post(&uri)
            .header(reqwest::header::CACHE_CONTROL, "no-store")
            .form(&[("logout_token", token.as_str())])
            .send()
            .await;
        let retry = match result {
            Ok(response) if response.status().is_success() => {
                tracing::info!(%client_id, attempt, "back-channel logout delivered");
                metrics::counter!(crate::metrics::BACKCHANNEL_LOGOUTS, "outcome" => "delivered")
                    .increment(1);
                return;
            }
            Ok(response) => {
                let status = response.status();
                tracing::warn!(%client_id, attempt, status = status.as_u16(), "back-channel logout refused");
                worth_retrying(status)
            }
            Err(error) => {
                // The error's text may carry the URL, never the token (it is in the body).
                tracing::warn!(%client_id, attempt, error = %error.without_url(), "back-channel logout failed");
                true
            }
        };
        if !retry || attempt == ATTEMPTS {
            break;
        }
        tokio::time::sleep(pause).await;
        pause = pause.saturating_mul(2);
    }
    metrics::counter!(crate::metrics::BACKCHANNEL_LOGOUTS, "outcome" => "failed").increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_answers_are_retried() {
        assert!(worth_retrying(reqwest::StatusCode::SERVICE_UNAVAILABLE));
        assert!(worth_retrying(reqwest::StatusCode::TOO_MANY_REQUESTS));
        assert!(!worth_retrying(reqwest::StatusCode::BAD_REQUEST));
        assert!(!worth_retrying(reqwest::StatusCode::NOT_FOUND));
    }
}
