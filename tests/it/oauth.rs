//! The OAuth 2.0 core through its HTTP face: every grant's success and errors, JWTs checked
//! against the published JWKS, refresh rotation and reuse detection, introspection and
//! revocation — partly driven by an independent client (the `oauth2` crate).

use base64::Engine;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, ClientSecret, IntrospectionUrl, RefreshToken, RevocationUrl, Scope,
    TokenIntrospectionResponse, TokenResponse, TokenUrl,
};
use serde_json::Value;
use wxauth::oauth::FlowTicketPolicy;
use wxauth::secret::Secret;
use wxauth::users::IdentityKey;

use crate::backend_tests;
use crate::harness::{ClientFixture, TestApp};

const SECRET: &str = "a-long-client-secret-for-tests";
use crate::harness::{SEED_APPID as APPID, SEED_OPENID as OPENID, SEED_UNIONID as UNIONID};

async fn client(app: &TestApp, id: &str, grants: &[&str], flow_ticket: FlowTicketPolicy) {
    ClientFixture::new(id, SECRET, grants)
        .scopes(&["flow", "api"])
        .flow_ticket(flow_ticket)
        .register(app)
        .await;
}

async fn ticket(app: &TestApp) -> String {
    app.state
        .tickets
        .mint(&IdentityKey::new(
            APPID.parse().unwrap(),
            OPENID,
            Some(UNIONID),
        ))
        .await
        .unwrap()
}

pub(crate) fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

async fn post_token(
    app: &TestApp,
    auth: Option<&str>,
    query: &str,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = app.http.post(app.url(&format!("/oauth/token{query}")));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if !form.is_empty() {
        req = req.form(form);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

/// Verify a JWT against the published JWKS, the way a resource server or relying party would:
/// signature by `kid`, `iss` = the issuer, `aud` = `audience`. Returns the header and claims.
pub(crate) async fn verify_jwt(
    app: &TestApp,
    token: &str,
    audience: &str,
) -> (jsonwebtoken::Header, Value) {
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.clone().unwrap();
    let jwk = jwks.find(&kid).expect("kid published in JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[app.base.as_str()]);
    validation.set_audience(&[audience]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap()
        .claims;
    (header, claims)
}

/// Verify an access token (RFC 9068: `typ` at+jwt, `aud` the issuer) against the JWKS.
pub(crate) async fn verify_with_jwks(app: &TestApp, token: &str) -> Value {
    let (header, claims) = verify_jwt(app, token, &app.base).await;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    claims
}

async fn revoke(app: &TestApp, token: &str) {
    let resp = app
        .http
        .post(app.url("/oauth/revoke"))
        .header("authorization", basic("web", SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// oauth2's HTTP hook, over this crate's reqwest.
pub(crate) async fn http(
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let response = client
        .request(request.method().clone(), request.uri().to_string())
        .headers(request.headers().clone())
        .body(request.body().clone())
        .send()
        .await?;
    let mut out = oauth2::http::Response::builder().status(response.status());
    for (k, v) in response.headers() {
        out = out.header(k, v);
    }
    Ok(out.body(response.bytes().await?.to_vec()).unwrap())
}

backend_tests! {
    async fn client_credentials_with_the_oauth2_crate(app: TestApp) {
        client(&app, "svc", &["client_credentials"], FlowTicketPolicy::Required).await;
        let oauth = BasicClient::new(ClientId::new("svc".into()))
            .set_client_secret(ClientSecret::new(SECRET.into()))
            .set_token_uri(TokenUrl::new(app.url("/oauth/token")).unwrap());
        let token = oauth
            .exchange_client_credentials()
            .add_scope(Scope::new("api".into()))
            .request_async(&http)
            .await
            .unwrap();
        assert!(token.refresh_token().is_none(), "client_credentials gives no refresh token");
        let claims = verify_with_jwks(&app, token.access_token().secret()).await;
        assert_eq!(claims["sub"], "client:svc", "a client subject never looks like an account id");
        assert_eq!(claims["client_id"], "svc");
        assert_eq!(claims["scope"], "api");
        assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
        assert!(claims.get("flow_user_id").is_none());

        // client_secret_post works the same way.
        let post = BasicClient::new(ClientId::new("svc".into()))
            .set_client_secret(ClientSecret::new(SECRET.into()))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(TokenUrl::new(app.url("/oauth/token")).unwrap());
        assert!(post.exchange_client_credentials().request_async(&http).await.is_ok());
    }

    async fn token_errors_follow_rfc_6749(app: TestApp) {
        client(&app, "svc", &["client_credentials"], FlowTicketPolicy::Required).await;
        let good = basic("svc", SECRET);

        let (status, headers, body) = post_token(&app, Some(&basic("svc", "wrong-secret-xxxxxxxx")), "", &[("grant_type", "client_credentials")]).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(headers["www-authenticate"], "Basic realm=\"wxauth\"");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["pragma"], "no-cache");

        let (status, _, body) = post_token(&app, None, "", &[("grant_type", "client_credentials")]).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));

        let (status, _, body) = post_token(&app, Some(&basic("nobody", SECRET)), "", &[("grant_type", "client_credentials")]).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));

        let (status, _, body) = post_token(&app, Some(&good), "", &[]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));

        let (status, _, body) = post_token(&app, Some(&good), "", &[("grant_type", "password")]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("unsupported_grant_type")));

        let (status, _, body) = post_token(&app, Some(&good), "", &[("grant_type", "flow")]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));

        let (status, _, body) = post_token(&app, Some(&good), "", &[("grant_type", "client_credentials"), ("scope", "admin")]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")));
        assert!(body["error_description"].is_string());

        let (status, _, body) = post_token(&app, Some(&good), "?grant_type=client_credentials", &[("grant_type", "client_credentials")]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "repeated parameter");

        let (status, headers, _) = post_token(&app, Some(&good), "", &[("grant_type", "client_credentials")]).await;
        assert_eq!(status, 200);
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["pragma"], "no-cache");
    }

    async fn the_seed_flow_request_with_a_ticket(app: TestApp) {
        client(&app, "xiaozao_flow", &["flow", "refresh_token"], FlowTicketPolicy::Required).await;
        let account_id = crate::harness::seed_identity(&app).await;
        let t = ticket(&app).await;
        // Exactly the seed's request shape: everything in the query string of a POST.
        let query = format!("?unionId={UNIONID}&grant_type=flow&scope=flow&appId={APPID}&openId={OPENID}&ticket={t}");
        let seed_url = app.url(&format!("/api/auth/oauth/token{query}"));
        let resp = app.http.post(&seed_url).header("authorization", basic("xiaozao_flow", SECRET)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["user_name"], UNIONID);
        assert_eq!(body["account"], UNIONID);
        assert_eq!(body["flow_user_id"], account_id.to_string());
        assert_eq!(body["client_id"], "xiaozao_flow");
        assert_eq!(body["scope"], "flow");
        assert!(body["refresh_token"].is_string());
        let claims = verify_with_jwks(&app, body["access_token"].as_str().unwrap()).await;
        assert_eq!(claims["sub"], account_id.to_string());
        assert_eq!(claims["flow_user_id"], account_id.to_string());
        assert_eq!(claims["jti"], body["jti"]);

        // The ticket is spent: the same request again is refused.
        let again = app.http.post(&seed_url).header("authorization", basic("xiaozao_flow", SECRET)).send().await.unwrap();
        assert_eq!(again.status(), 400);
        let body: Value = again.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant");
    }

    async fn flow_refusals_are_all_invalid_grant(app: TestApp) {
        client(&app, "strict", &["flow"], FlowTicketPolicy::Required).await;
        crate::harness::seed_identity(&app).await;
        let auth = basic("strict", SECRET);
        let base = [("grant_type", "flow"), ("appId", APPID), ("openId", OPENID), ("unionId", UNIONID)];

        // No ticket.
        let (s, _, b) = post_token(&app, Some(&auth), "", &base).await;
        assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
        // A forged ticket.
        let mut forged = base.to_vec();
        forged.push(("ticket", "forged-ticket"));
        let (s, _, b) = post_token(&app, Some(&auth), "", &forged).await;
        assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
        // A real ticket presented for another identity is refused and spent.
        let t = ticket(&app).await;
        let other = [("grant_type", "flow"), ("appId", APPID), ("openId", "someone-else"), ("unionId", UNIONID), ("ticket", t.as_str())];
        let (s, _, b) = post_token(&app, Some(&auth), "", &other).await;
        assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
        let mut right = base.to_vec();
        right.push(("ticket", t.as_str()));
        let (s, _, _) = post_token(&app, Some(&auth), "", &right).await;
        assert_eq!(s, 400, "a ticket tried against the wrong identity is gone");
        // An expired ticket.
        let t = ticket(&app).await;
        app.clock.advance(301);
        let mut late = base.to_vec();
        late.push(("ticket", t.as_str()));
        let (s, _, b) = post_token(&app, Some(&auth), "", &late).await;
        assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
    }

    async fn optional_ticket_clients_accept_the_bare_seed_request_for_known_identities_only(app: TestApp) {
        client(&app, "legacy", &["flow"], FlowTicketPolicy::Optional).await;
        crate::harness::seed_identity(&app).await;
        let auth = basic("legacy", SECRET);
        let (s, _, b) = post_token(&app, Some(&auth), &format!("?grant_type=flow&scope=flow&appId={APPID}&openId={OPENID}&unionId={UNIONID}"), &[]).await;
        assert_eq!(s, 200, "{b}");
        assert!(b.get("refresh_token").is_none(), "no refresh_token grant, no refresh token");
        // A unionId that does not match, an unknown app or an unknown openId: invalid_grant.
        for q in [
            format!("?grant_type=flow&appId={APPID}&openId={OPENID}&unionId=another"),
            format!("?grant_type=flow&appId=wx0000000000000000&openId={OPENID}&unionId={UNIONID}"),
            format!("?grant_type=flow&appId={APPID}&openId=unknown&unionId={UNIONID}"),
        ] {
            let (s, _, b) = post_token(&app, Some(&auth), &q, &[]).await;
            assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")), "{q}");
        }
    }

    async fn refresh_rotates_and_reuse_revokes_the_family(app: TestApp) {
        client(&app, "web", &["flow", "refresh_token"], FlowTicketPolicy::Required).await;
        crate::harness::seed_identity(&app).await;
        let t = ticket(&app).await;
        let auth = basic("web", SECRET);
        let (_, _, first) = post_token(&app, Some(&auth), "", &[("grant_type", "flow"), ("appId", APPID), ("openId", OPENID), ("unionId", UNIONID), ("ticket", &t)]).await;
        let r1 = first["refresh_token"].as_str().unwrap().to_string();

        let oauth = BasicClient::new(ClientId::new("web".into()))
            .set_client_secret(ClientSecret::new(SECRET.into()))
            .set_token_uri(TokenUrl::new(app.url("/oauth/token")).unwrap())
            .set_introspection_url(IntrospectionUrl::new(app.url("/oauth/introspect")).unwrap())
            .set_revocation_url(RevocationUrl::new(app.url("/oauth/revoke")).unwrap());
        let second = oauth.exchange_refresh_token(&RefreshToken::new(r1.clone())).request_async(&http).await.unwrap();
        let r2 = second.refresh_token().unwrap().secret().clone();
        assert_ne!(r1, r2, "refresh tokens rotate");
        let claims = verify_with_jwks(&app, second.access_token().secret()).await;
        assert_eq!(claims["account"], UNIONID);

        // The spent r1 comes back: refused, and r2 (same family) dies with it.
        let (s, _, b) = post_token(&app, Some(&auth), "", &[("grant_type", "refresh_token"), ("refresh_token", &r1)]).await;
        assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
        let (s, _, b) = post_token(&app, Some(&auth), "", &[("grant_type", "refresh_token"), ("refresh_token", &r2)]).await;
        assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")), "family revoked");
        let intro = oauth.introspect(&oauth2::AccessToken::new(r2.clone())).request_async(&http).await.unwrap();
        assert!(!intro.active());
    }

    async fn refresh_tokens_of_both_formats_refresh_and_a_borrowed_start_finds_nothing(app: TestApp) {
        // Refresh tokens start with their issue time, which keys their rows in time order; one
        // minted before that format (keyed by its hash alone) still refreshes, and a made-up
        // token with another token's start finds nothing.
        use entity::refresh_token::{Column, Entity};
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        client(&app, "web", &["flow", "refresh_token"], FlowTicketPolicy::Required).await;
        crate::harness::seed_identity(&app).await;
        let auth = basic("web", SECRET);
        let t = ticket(&app).await;
        let (s, _, first) = post_token(&app, Some(&auth), "", &[("grant_type", "flow"), ("appId", APPID), ("openId", OPENID), ("unionId", UNIONID), ("ticket", &t)]).await;
        assert_eq!(s, 200, "{first}");
        let new_format = first["refresh_token"].as_str().unwrap().to_owned();
        let (time, rest) = new_format.split_at(13);
        assert!(time.ends_with('.') && time[..12].bytes().all(|b| b.is_ascii_hexdigit()), "{new_format}");
        assert_eq!(rest.len(), 43, "32 random bytes follow: {new_format}");

        // Another token's issue time in front of a random part: nothing.
        let forged = format!("{time}{}", "A".repeat(43));
        let (s, _, b) = post_token(&app, Some(&auth), "", &[("grant_type", "refresh_token"), ("refresh_token", &forged)]).await;
        assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")), "{b}");

        // A token of the earlier format: its row is keyed by its hash alone.
        let t = ticket(&app).await;
        let (_, _, second) = post_token(&app, Some(&auth), "", &[("grant_type", "flow"), ("appId", APPID), ("openId", OPENID), ("unionId", UNIONID), ("ticket", &t)]).await;
        let second = second["refresh_token"].as_str().unwrap().to_owned();
        let old_format = wxauth::vault::random_token(32);
        let stored_key = format!("{}{}", &second[..13], app.state.vault.fingerprint(&second));
        let moved = Entity::update_many()
            .col_expr(Column::TokenHash, Expr::value(app.state.vault.fingerprint(&old_format)))
            .filter(Column::TokenHash.eq(stored_key))
            .exec(&app.state.db)
            .await
            .unwrap();
        assert_eq!(moved.rows_affected, 1, "the new token's row is keyed by its time and hash");
        let (s, _, b) = post_token(&app, Some(&auth), "", &[("grant_type", "refresh_token"), ("refresh_token", &old_format)]).await;
        assert_eq!(s, 200, "{b}");
        assert!(b["refresh_token"].as_str().is_some_and(|r| r.as_bytes()[12] == b'.'), "{b}");
        // The first token (the new format) refreshes too.
        let (s, _, b) = post_token(&app, Some(&auth), "", &[("grant_type", "refresh_token"), ("refresh_token", &new_format)]).await;
        assert_eq!(s, 200, "{b}");
    }

    async fn introspection_and_revocation_with_the_oauth2_crate(app: TestApp) {
        client(&app, "web", &["flow", "refresh_token", "client_credentials"], FlowTicketPolicy::Required).await;
        crate::harness::seed_identity(&app).await;
        let t = ticket(&app).await;
        let (_, _, tokens) = post_token(&app, Some(&basic("web", SECRET)), "", &[("grant_type", "flow"), ("appId", APPID), ("openId", OPENID), ("unionId", UNIONID), ("ticket", &t)]).await;
        let access = oauth2::AccessToken::new(tokens["access_token"].as_str().unwrap().into());
        let refresh = RefreshToken::new(tokens["refresh_token"].as_str().unwrap().into());
        let oauth = BasicClient::new(ClientId::new("web".into()))
            .set_client_secret(ClientSecret::new(SECRET.into()))
            .set_token_uri(TokenUrl::new(app.url("/oauth/token")).unwrap())
            .set_introspection_url(IntrospectionUrl::new(app.url("/oauth/introspect")).unwrap())
            .set_revocation_url(RevocationUrl::new(app.url("/oauth/revoke")).unwrap());

        let intro = oauth.introspect(&access).request_async(&http).await.unwrap();
        assert!(intro.active());
        assert_eq!(intro.client_id().map(|c| c.as_str()), Some("web"));
        let intro = oauth.introspect(&oauth2::AccessToken::new("garbage".into())).request_async(&http).await.unwrap();
        assert!(!intro.active());

        // oauth2 only revokes over https, so revocation is a plain RFC 7009 POST.
        revoke(&app, access.secret()).await;
        let intro = oauth.introspect(&access).request_async(&http).await.unwrap();
        assert!(!intro.active(), "a revoked access token is inactive");

        revoke(&app, refresh.secret()).await;
        assert!(oauth.exchange_refresh_token(&refresh).request_async(&http).await.is_err());

        // Unknown tokens revoke with 200; introspection needs client authentication.
        revoke(&app, "nope").await;
        let anon = app.http.post(app.url("/oauth/introspect")).form(&[("token", access.secret().as_str())]).send().await.unwrap();
        assert_eq!(anon.status(), 401);

        // An expired access token is inactive.
        let (_, _, cc) = post_token(&app, Some(&basic("web", SECRET)), "", &[("grant_type", "client_credentials")]).await;
        app.clock.advance(601);
        let expired = oauth2::AccessToken::new(cc["access_token"].as_str().unwrap().into());
        assert!(!oauth.introspect(&expired).request_async(&http).await.unwrap().active());
    }

    async fn metadata_lists_the_endpoints_and_keys_rotate(app: TestApp) {
        let meta: Value = app.http.get(app.url("/.well-known/oauth-authorization-server")).send().await.unwrap().json().await.unwrap();
        assert_eq!(meta["issuer"], app.base);
        assert_eq!(meta["token_endpoint"], app.url("/oauth/token"));
        assert_eq!(meta["jwks_uri"], app.url("/.well-known/jwks.json"));
        assert!(meta["grant_types_supported"].as_array().unwrap().iter().any(|g| g == "flow"));

        client(&app, "svc", &["client_credentials"], FlowTicketPolicy::Required).await;
        let (_, _, before) = post_token(&app, Some(&basic("svc", SECRET)), "", &[("grant_type", "client_credentials")]).await;
        let old = before["access_token"].as_str().unwrap().to_string();
        let new_kid = app.state.oauth.tokens.keys().rotate().await.unwrap();
        let (_, _, after) = post_token(&app, Some(&basic("svc", SECRET)), "", &[("grant_type", "client_credentials")]).await;
        let new = after["access_token"].as_str().unwrap();
        assert_eq!(jsonwebtoken::decode_header(new).unwrap().kid.as_deref(), Some(new_kid.as_str()));
        // Both the old and the new token verify against the published JWKS.
        verify_with_jwks(&app, &old).await;
        verify_with_jwks(&app, new).await;
    }
}

#[tokio::test]
async fn eddsa_and_hs256_can_be_chosen() {
    for (alg, extra) in [
        ("EdDSA", None),
        ("HS256", Some("a-shared-secret-of-at-least-32-chars!!")),
    ] {
        let mut env = vec![("WXAUTH_JWT_ALG".to_string(), alg.to_string())];
        if let Some(s) = extra {
            env.push(("WXAUTH_JWT_HS256_SECRET".into(), s.into()));
        }
        let app = TestApp::spawn_with(
            crate::harness::Backend::Sqlite,
            crate::harness::Options {
                env,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        client(
            &app,
            "svc",
            &["client_credentials"],
            FlowTicketPolicy::Required,
        )
        .await;
        let (s, _, body) = post_token(
            &app,
            Some(&basic("svc", SECRET)),
            "",
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(s, 200);
        let token = body["access_token"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(format!("{:?}", header.alg), alg);
        if alg == "HS256" {
            let jwks: Value = app
                .http
                .get(app.url("/.well-known/jwks.json"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            // The shared secret is never published; only the ID-token keys are.
            let algs: Vec<&str> = jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["alg"].as_str().unwrap())
                .collect();
            assert_eq!(algs.len(), 2, "{jwks}");
            assert!(!algs.contains(&"HS256"), "a shared key is never published");
            assert!(
                jwks["keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|k| k["kty"] != "oct"),
                "{jwks}"
            );
            let key = jsonwebtoken::DecodingKey::from_secret(extra.unwrap().as_bytes());
            let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
            v.set_audience(&[app.base.as_str()]);
            assert!(jsonwebtoken::decode::<Value>(token, &key, &v).is_ok());
        } else {
            verify_with_jwks(&app, token).await;
        }
    }
}

/// A client_credentials request by `id` with `secret`: its HTTP status.
async fn cc_status(app: &TestApp, id: &str, secret: &str) -> u16 {
    let (status, _, _) = post_token(
        app,
        Some(&basic(id, secret)),
        "",
        &[("grant_type", "client_credentials")],
    )
    .await;
    status
}

// Client records and registered appids are cached for a few seconds on the token path; changes
// made through this instance must take effect at once, changes made elsewhere within the TTL.
backend_tests! {
    async fn a_rotated_secret_is_refused_at_once_on_this_instance(app: TestApp) {
        client(&app, "svc", &["client_credentials"], FlowTicketPolicy::Required).await;
        assert_eq!(cc_status(&app, "svc", SECRET).await, 200, "the record is now cached");
        let new_secret = app.state.clients.rotate_secret("svc").await.unwrap();
        assert_eq!(cc_status(&app, "svc", SECRET).await, 401);
        assert_eq!(cc_status(&app, "svc", new_secret.expose()).await, 200);

        let set = Secret::new("another-long-secret-for-tests");
        app.state.clients.set_secret("svc", &set).await.unwrap();
        assert_eq!(cc_status(&app, "svc", new_secret.expose()).await, 401);
        assert_eq!(cc_status(&app, "svc", set.expose()).await, 200);
    }

    async fn a_deleted_client_is_refused_at_once_on_this_instance(app: TestApp) {
        client(&app, "svc", &["client_credentials"], FlowTicketPolicy::Required).await;
        assert_eq!(cc_status(&app, "svc", SECRET).await, 200, "the record is now cached");
        app.state.clients.delete("svc").await.unwrap();
        assert_eq!(cc_status(&app, "svc", SECRET).await, 401);
        // Recreated under the same id: its own secret, not the cached one.
        client(&app, "svc", &["client_credentials"], FlowTicketPolicy::Required).await;
        assert_eq!(cc_status(&app, "svc", SECRET).await, 200);
        assert_eq!(cc_status(&app, "svc", "a-wrong-secret-of-some-length").await, 401);
    }

    async fn a_rotation_on_another_instance_is_seen_within_the_cache_ttl(app: TestApp) {
        use wxauth::oauth::client_registry::{CLIENT_CACHE_TTL, ClientRegistry};
        client(&app, "svc", &["client_credentials"], FlowTicketPolicy::Required).await;
        assert_eq!(cc_status(&app, "svc", SECRET).await, 200, "the record is now cached");
        // Another instance (or the CLI) on the same database and master key.
        let elsewhere = ClientRegistry::new(
            app.state.db.clone(),
            app.state.vault.clone(),
            app.state.clock.clone(),
        );
        let new_secret = elsewhere.rotate_secret("svc").await.unwrap();
        // The documented window: this instance still knows the old record...
        assert_eq!(cc_status(&app, "svc", SECRET).await, 200);
        // ...until its entry expires.
        app.clock.advance(CLIENT_CACHE_TTL);
        assert_eq!(cc_status(&app, "svc", SECRET).await, 401);
        assert_eq!(cc_status(&app, "svc", new_secret.expose()).await, 200);
        // Deletion elsewhere, likewise.
        elsewhere.delete("svc").await.unwrap();
        app.clock.advance(CLIENT_CACHE_TTL);
        assert_eq!(cc_status(&app, "svc", new_secret.expose()).await, 401);
    }

    async fn a_removed_app_stops_the_flow_grant_at_once_on_this_instance(app: TestApp) {
        client(&app, "legacy", &["flow"], FlowTicketPolicy::Optional).await;
        crate::harness::seed_identity(&app).await;
        let auth = basic("legacy", SECRET);
        let query = format!("?grant_type=flow&scope=flow&appId={APPID}&openId={OPENID}&unionId={UNIONID}");
        let (s, _, b) = post_token(&app, Some(&auth), &query, &[]).await;
        assert_eq!(s, 200, "{b}");
        app.state.apps.remove(APPID).await.unwrap();
        let (s, _, b) = post_token(&app, Some(&auth), &query, &[]).await;
        assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
    }
}
