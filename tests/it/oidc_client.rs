//! An independent OpenID Connect client, the `openidconnect` crate, signs in with wxauth the way
//! a relying party would: discovery → authorization URL (PKCE S256, nonce, openid profile) → the
//! simulator's QR page and our consent page → code → tokens → ID token verified by the crate
//! against the discovered JWKS → userinfo → refresh. Then, still through the crate, what the
//! RFCs say must be refused: a PKCE downgrade and a wrong verifier, a replayed code, a
//! redirect_uri that is not registered, and a client that is not the code's.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreIdTokenVerifier,
    CoreProviderMetadata, CoreTokenResponse, CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, StandardErrorResponse, TokenResponse,
    UserInfoError,
};
use url::Url;
use wxauth::simulator::demo;

use crate::harness::{Backend, TestApp};
use crate::oauth::http;
use crate::oidc::{Browser, DESKTOP, REDIRECT, SECRET, Step, account_of, oidc_client};

/// The crate's client as built from discovery.
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

type TokenError = RequestTokenError<reqwest::Error, StandardErrorResponse<CoreErrorResponseType>>;

async fn discover(app: &TestApp) -> CoreProviderMetadata {
    CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
        .await
        .expect("discovery")
}

fn client(
    metadata: &CoreProviderMetadata,
    id: &str,
    secret: Option<&str>,
    redirect: &str,
) -> Client {
    CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(id.into()),
        secret.map(|s| ClientSecret::new(s.into())),
    )
    .set_redirect_uri(RedirectUrl::new(redirect.into()).unwrap())
}

/// What the browser came back with, and what the client must remember to check it.
struct Authorized {
    back: Url,
    state: CsrfToken,
    nonce: Nonce,
    verifier: Option<PkceCodeVerifier>,
}

impl Authorized {
    fn param(&self, key: &str) -> Option<String> {
        self.back
            .query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    /// The code, after checking that the state came back unchanged.
    fn code(&self) -> AuthorizationCode {
        assert_eq!(
            self.param("state").as_deref(),
            Some(self.state.secret().as_str())
        );
        AuthorizationCode::new(
            self.param("code")
                .unwrap_or_else(|| panic!("no code: {}", self.back)),
        )
    }
}

/// The crate's authorization URL, walked by `browser` (QR page, consent approved if asked) back
/// to the client.
async fn authorize(browser: &mut Browser<'_>, client: &Client, pkce: bool) -> Authorized {
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()));
    let mut verifier = None;
    if pkce {
        let (challenge, secret) = PkceCodeChallenge::new_random_sha256();
        request = request.set_pkce_challenge(challenge);
        verifier = Some(secret);
    }
    let (url, state, nonce) = request.url();
    let mut step = browser.walk(url.as_str()).await;
    if let Step::Page(200, page) = &step
        && page.contains("csrf_token")
    {
        step = browser.answer_consent(&page.clone(), "approve").await;
    }
    let Step::Left(back) = step else {
        panic!("expected a redirect to the client: {step:?}")
    };
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    Authorized {
        back,
        state,
        nonce,
        verifier,
    }
}

async fn exchange(
    client: &Client,
    code: AuthorizationCode,
    verifier: Option<PkceCodeVerifier>,
) -> Result<CoreTokenResponse, TokenError> {
    let mut request = client.exchange_code(code).unwrap();
    if let Some(verifier) = verifier {
        request = request.set_pkce_verifier(verifier);
    }
    request.request_async(&http).await
}

/// The OAuth `error` of a refused token request.
fn error_code(result: Result<CoreTokenResponse, TokenError>) -> CoreErrorResponseType {
    match result {
        Err(RequestTokenError::ServerResponse(response)) => response.error().clone(),
        Err(other) => panic!("not an OAuth error response: {other:?}"),
        Ok(_) => panic!("the token request succeeded"),
    }
}

async fn userinfo(client: &Client, token: &AccessToken) -> Result<CoreUserInfoClaims, String> {
    client
        .user_info(token.clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .map_err(|e| match e {
            UserInfoError::Response(status, body, _) => {
                format!("{status}: {}", String::from_utf8_lossy(&body))
            }
            other => format!("{other:?}"),
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openidconnect_crate_signs_in_end_to_end() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    oidc_client(&app, "web", false, false).await;
    let metadata = discover(&app).await;
    assert_eq!(metadata.issuer().as_str(), app.base);
    let web = client(&metadata, "web", Some(SECRET), REDIRECT);

    let mut browser = Browser::new(&app, DESKTOP, "alice");
    let authorized = authorize(&mut browser, &web, true).await;
    let tokens = exchange(&web, authorized.code(), authorized.verifier)
        .await
        .expect("the code is exchanged");
    assert_eq!(tokens.token_type().as_ref(), "bearer");
    let scopes: Vec<&str> = tokens
        .scopes()
        .map(|s| s.iter().map(|s| s.as_str()).collect())
        .unwrap_or_default();
    assert!(
        scopes.contains(&"openid") && scopes.contains(&"profile"),
        "{scopes:?}"
    );

    // The crate checks signature (ES256 key from the JWKS), iss, aud, exp, iat and the nonce.
    let id_token = tokens.id_token().expect("an id_token for scope openid");
    let claims = id_token
        .claims(&web.id_token_verifier(), &authorized.nonce)
        .expect("the crate accepts the ID token");
    let alice = account_of(&app, demo::WEBSITE_APPID, "alice").await;
    assert_eq!(claims.subject().as_str(), alice.to_string());
    let name = claims.name().and_then(|n| n.get(None)).map(|n| n.as_str());
    assert_eq!(name, Some("Alice 爱丽丝"));
    assert!(claims.auth_time().is_some());
    // The same ID token is not accepted for another nonce or by another client.
    assert!(
        id_token
            .claims(&web.id_token_verifier(), &Nonce::new("another".into()))
            .is_err()
    );
    let other = CoreIdTokenVerifier::new_confidential_client(
        ClientId::new("other".into()),
        ClientSecret::new(SECRET.into()),
        metadata.issuer().clone(),
        metadata.jwks().clone(),
    );
    assert!(id_token.claims(&other, &authorized.nonce).is_err());

    // Userinfo, checked by the crate against the ID token's subject.
    let info: CoreUserInfoClaims = web
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(
        info.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        Some("Alice 爱丽丝")
    );

    // Refresh: a new access token (and a rotated refresh token) that works at userinfo.
    let refresh = tokens.refresh_token().expect("a refresh token");
    let refreshed = web
        .exchange_refresh_token(refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("refresh");
    assert_ne!(
        refreshed.access_token().secret(),
        tokens.access_token().secret()
    );
    if let Some(rotated) = refreshed.refresh_token() {
        assert_ne!(rotated.secret(), refresh.secret());
    }
    let again = userinfo(&web, refreshed.access_token()).await.unwrap();
    assert_eq!(again.subject(), claims.subject());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openidconnect_crate_sees_the_rfc_refusals() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    oidc_client(&app, "spa", true, true).await;
    oidc_client(&app, "web", false, true).await;
    oidc_client(&app, "other", false, true).await;
    let metadata = discover(&app).await;
    let spa = client(&metadata, "spa", None, REDIRECT);
    let web = client(&metadata, "web", Some(SECRET), REDIRECT);
    let mut browser = Browser::new(&app, DESKTOP, "bob");

    // PKCE downgrade, at the authorization endpoint: a public client without a challenge is
    // sent back with invalid_request (RFC 7636 §4.4.1), no code.
    let refused = authorize(&mut browser, &spa, false).await;
    assert_eq!(refused.param("error").as_deref(), Some("invalid_request"));
    assert_eq!(
        refused.param("state").as_deref(),
        Some(refused.state.secret().as_str())
    );
    assert_eq!(refused.param("code"), None);

    // A wrong verifier is invalid_grant (RFC 7636 §4.6), and the public client's code is spent.
    let authorized = authorize(&mut browser, &spa, true).await;
    let code = authorized.code();
    let wrong = PkceCodeVerifier::new("w".repeat(43));
    assert_eq!(
        error_code(exchange(&spa, code.clone(), Some(wrong)).await),
        CoreErrorResponseType::InvalidGrant
    );
    assert_eq!(
        error_code(exchange(&spa, code, authorized.verifier).await),
        CoreErrorResponseType::InvalidGrant
    );
    // No verifier at all for a code with a challenge.
    let authorized = authorize(&mut browser, &spa, true).await;
    assert_eq!(
        error_code(exchange(&spa, authorized.code(), None).await),
        CoreErrorResponseType::InvalidGrant
    );

    // PKCE downgrade, at the token endpoint: a confidential client's code made without a
    // challenge, redeemed with a verifier (RFC 9700 §4.8.2).
    let authorized = authorize(&mut browser, &web, false).await;
    let (_, verifier) = PkceCodeChallenge::new_random_sha256();
    assert_eq!(
        error_code(exchange(&web, authorized.code(), Some(verifier)).await),
        CoreErrorResponseType::InvalidGrant
    );

    // Code replay: refused, and the tokens the code gave are revoked (RFC 6749 §4.1.2).
    let authorized = authorize(&mut browser, &web, true).await;
    let code = authorized.code();
    let verifier = authorized
        .verifier
        .as_ref()
        .map(|v| PkceCodeVerifier::new(v.secret().clone()));
    let tokens = exchange(&web, code.clone(), authorized.verifier)
        .await
        .unwrap();
    assert!(userinfo(&web, tokens.access_token()).await.is_ok());
    assert_eq!(
        error_code(exchange(&web, code, verifier).await),
        CoreErrorResponseType::InvalidGrant
    );
    let revoked = userinfo(&web, tokens.access_token()).await.unwrap_err();
    assert!(revoked.starts_with("401"), "{revoked}");
    let refresh = tokens.refresh_token().unwrap();
    let refused = web
        .exchange_refresh_token(refresh)
        .unwrap()
        .request_async(&http)
        .await;
    assert_eq!(error_code(refused), CoreErrorResponseType::InvalidGrant);

    // redirect_uri mismatch: an unregistered URI gets an error page, never a redirect
    // (RFC 6749 §4.1.2.1).
    let elsewhere = client(
        &metadata,
        "web",
        Some(SECRET),
        "https://app.example.com/elsewhere",
    );
    let (url, _, _) = elsewhere
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .url();
    let Step::Page(400, page) = browser.walk(url.as_str()).await else {
        panic!("an unregistered redirect_uri must not be redirected to")
    };
    assert!(page.contains("<html"));
    // At the token endpoint, another registered redirect_uri than the code's is invalid_grant
    // (RFC 6749 §4.1.3).
    let authorized = authorize(&mut browser, &web, true).await;
    let registered_other = client(&metadata, "web", Some(SECRET), "http://127.0.0.1:9/cb");
    assert_eq!(
        error_code(exchange(&registered_other, authorized.code(), authorized.verifier).await),
        CoreErrorResponseType::InvalidGrant
    );

    // A wrong client: another registered client cannot redeem the code (invalid_grant); a wrong
    // secret or an unknown client is invalid_client (RFC 6749 §5.2).
    let authorized = authorize(&mut browser, &web, true).await;
    let code = authorized.code();
    let verifier = authorized.verifier.unwrap();
    let copy = || PkceCodeVerifier::new(verifier.secret().clone());
    let other = client(&metadata, "other", Some(SECRET), REDIRECT);
    assert_eq!(
        error_code(exchange(&other, code.clone(), Some(copy())).await),
        CoreErrorResponseType::InvalidGrant
    );
    let authorized = authorize(&mut browser, &web, true).await;
    let code = authorized.code();
    let verifier = authorized.verifier.unwrap();
    let copy = || PkceCodeVerifier::new(verifier.secret().clone());
    let bad_secret = client(&metadata, "web", Some("not-the-secret-at-all"), REDIRECT);
    assert_eq!(
        error_code(exchange(&bad_secret, code.clone(), Some(copy())).await),
        CoreErrorResponseType::InvalidClient
    );
    let nobody = client(&metadata, "nobody", Some(SECRET), REDIRECT);
    assert_eq!(
        error_code(exchange(&nobody, code.clone(), Some(copy())).await),
        CoreErrorResponseType::InvalidClient
    );
    // Neither attempt spent the code: the right client still redeems it.
    assert!(exchange(&web, code, Some(copy())).await.is_ok());
}
