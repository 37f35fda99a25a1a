//! End-to-end checks of `Verifier` and the axum extractors against a JWKS served by a tiny
//! in-test axum server on 127.0.0.1:0, with keys generated in the test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use rand_core::OsRng;
use serde_json::{Value, json};
use tower::ServiceExt;
use wxauth_resource::{Bearer, ScopeRequirement, Scoped, StandardClaims, Verifier, VerifyError};

/// A signing key with its public JWK.
struct TestKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

impl TestKey {
    fn es256(kid: &str) -> Self {
        let secret = p256::SecretKey::random(&mut OsRng);
        let point = secret.public_key().to_encoded_point(false);
        let der = secret.to_pkcs8_der().unwrap();
        TestKey {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
                "x": B64.encode(point.x().unwrap()), "y": B64.encode(point.y().unwrap()),
            }),
        }
    }

    fn eddsa(kid: &str) -> Self {
        let signing = ed25519_dalek::SigningKey::generate(&mut OsRng);
        let der = signing.to_pkcs8_der().unwrap();
        TestKey {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            jwk: json!({
                "kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig",
                "x": B64.encode(signing.verifying_key().as_bytes()),
            }),
        }
    }

    fn rs256(kid: &str) -> Self {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        // 1024 bits keeps key generation fast in debug builds; size is not under test.
        let private = rsa::RsaPrivateKey::new(&mut OsRng, 1024).unwrap();
        let der = private.to_pkcs1_der().unwrap();
        TestKey {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk: json!({
                "kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
                "n": B64.encode(private.n().to_bytes_be()),
                "e": B64.encode(private.e().to_bytes_be()),
            }),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.typ = Some("at+jwt".into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A user token as wxauth issues it.
fn user_claims(issuer: &str) -> Value {
    json!({
        "iss": issuer, "sub": "42", "aud": issuer, "client_id": "web", "scope": "flow profile",
        "iat": now(), "exp": now() + 600, "jti": "jti-1",
        "user_name": "wx_42", "account": "union-1", "flow_user_id": "42", "nick_name": "Ada",
    })
}

/// A JWKS server whose key list the test can change, counting GETs of the JWKS.
struct JwksServer {
    issuer: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (k, f, iss) = (keys.clone(), fetches.clone(), issuer.clone());
        let app = Router::new()
            .route(
                "/.well-known/jwks.json",
                get(move || {
                    let (k, f) = (k.clone(), f.clone());
                    async move {
                        f.fetch_add(1, Ordering::SeqCst);
                        Json(json!({ "keys": *k.lock().unwrap() }))
                    }
                }),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                get(move || {
                    let iss = iss.clone();
                    async move {
                        Json(json!({
                            "issuer": iss,
                            "jwks_uri": format!("{iss}/.well-known/jwks.json"),
                        }))
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        JwksServer {
            issuer,
            keys,
            fetches,
        }
    }

    fn set_keys(&self, keys: Vec<Value>) {
        *self.keys.lock().unwrap() = keys;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn verifier(issuer: &str) -> Verifier {
    Verifier::builder(issuer).build().unwrap()
}

#[tokio::test]
async fn good_tokens_of_every_public_key_alg_are_accepted() {
    let keys = [
        TestKey::es256("ec-1"),
        TestKey::eddsa("ed-1"),
        TestKey::rs256("rsa-1"),
    ];
    let server = JwksServer::start(keys.iter().map(|k| k.jwk.clone()).collect()).await;
    let v = verifier(&server.issuer);
    for key in &keys {
        let verified = v
            .verify(&key.sign(&user_claims(&server.issuer)))
            .await
            .unwrap();
        assert_eq!(verified.claims.sub, "42");
        assert_eq!(verified.claims.flow_user_id.as_deref(), Some("42"));
        assert_eq!(verified.claims.account.as_deref(), Some("union-1"));
        assert_eq!(verified.header.kid.as_deref(), Some(key.kid.as_str()));
        assert!(verified.has_scope("flow"));
    }
    assert_eq!(server.fetches(), 1, "one fetch serves every key");
}

#[tokio::test]
async fn discovery_finds_the_jwks() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(vec![key.jwk.clone()]).await;
    let v = Verifier::builder(&server.issuer)
        .discover()
        .build()
        .unwrap();
    assert!(
        v.verify(&key.sign(&user_claims(&server.issuer)))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn client_credentials_token_is_accepted() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(vec![key.jwk.clone()]).await;
    let iss = &server.issuer;
    let claims = json!({
        "iss": iss, "sub": "client:bench-cc", "aud": iss, "client_id": "bench-cc", "scope": "api",
        "iat": now(), "exp": now() + 60, "jti": "j",
    });
    let verified = verifier(iss).verify(&key.sign(&claims)).await.unwrap();
    assert!(!verified.claims.is_user());
    assert!(verified.claims.is_client());
}

#[tokio::test]
async fn wrong_claims_are_refused() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(vec![key.jwk.clone()]).await;
    let iss = server.issuer.clone();
    let v = verifier(&iss);
    let with = |k: &str, val: Value| {
        let mut c = user_claims(&iss);
        c[k] = val;
        key.sign(&c)
    };
    let cases = [
        (
            with("iss", json!("http://evil.example")),
            VerifyError::WrongIssuer,
        ),
        (
            with("iss", json!(format!("{iss}/"))),
            VerifyError::WrongIssuer,
        ),
        (
            with("aud", json!("https://another-api")),
            VerifyError::WrongAudience,
        ),
        (with("exp", json!(now() - 120)), VerifyError::Expired),
        (with("nbf", json!(now() + 120)), VerifyError::NotYetValid),
    ];
    for (token, expected) in cases {
        assert_eq!(v.verify(&token).await.unwrap_err(), expected);
    }
    // Within the leeway, a just-expired token still passes.
    assert!(v.verify(&with("exp", json!(now() - 5))).await.is_ok());
    // A missing aud is refused while the audience is checked.
    let mut no_aud = user_claims(&iss);
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        v.verify(&key.sign(&no_aud)).await.unwrap_err(),
        VerifyError::MissingClaim("aud".into())
    );
    // A configured audience replaces the default.
    let api = Verifier::builder(&iss)
        .audience("https://api")
        .build()
        .unwrap();
    assert_eq!(
        api.verify(&key.sign(&user_claims(&iss))).await.unwrap_err(),
        VerifyError::WrongAudience
    );
    assert!(
        api.verify(&with("aud", json!(["x", "https://api"])))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn wrong_typ_is_refused() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(vec![key.jwk.clone()]).await;
    let v = verifier(&server.issuer);
    for typ in [Some("JWT"), None, Some("id_token+jwt")] {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = typ.map(str::to_string);
        header.kid = Some("ec-1".into());
        let token =
            jsonwebtoken::encode(&header, &user_claims(&server.issuer), &key.encoding).unwrap();
        assert_eq!(
            v.verify(&token).await.unwrap_err(),
            VerifyError::WrongType,
            "{typ:?}"
        );
    }
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("application/AT+JWT".into());
    header.kid = Some("ec-1".into());
    let token = jsonwebtoken::encode(&header, &user_claims(&server.issuer), &key.encoding).unwrap();
    assert!(v.verify(&token).await.is_ok(), "media type form, any case");
}

#[tokio::test]
async fn tampered_tokens_are_refused() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(vec![key.jwk.clone()]).await;
    let v = verifier(&server.issuer);
    let token = key.sign(&user_claims(&server.issuer));
    let parts: Vec<&str> = token.split('.').collect();

    // Payload swapped for one granting more: the signature no longer matches.
    let mut claims = user_claims(&server.issuer);
    claims["scope"] = json!("admin");
    let forged_payload = B64.encode(claims.to_string());
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(
        v.verify(&forged).await.unwrap_err(),
        VerifyError::BadSignature
    );

    // One signature byte flipped.
    let mut sig = B64.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], B64.encode(sig));
    assert_eq!(
        v.verify(&flipped).await.unwrap_err(),
        VerifyError::BadSignature
    );

    // Signed by a key that is not the published one, under the published kid.
    let impostor = TestKey::es256("ec-1");
    assert_eq!(
        v.verify(&impostor.sign(&user_claims(&server.issuer)))
            .await
            .unwrap_err(),
        VerifyError::BadSignature
    );

    assert_eq!(
        v.verify("not-a-jwt").await.unwrap_err(),
        VerifyError::Malformed
    );
}

#[tokio::test]
async fn alg_confusion_is_refused() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(vec![key.jwk.clone()]).await;
    let v = verifier(&server.issuer);
    // The classic attack: HS256 "signed" with the public key's bytes, which anyone can read.
    let x = B64.decode(key.jwk["x"].as_str().unwrap()).unwrap();
    let y = B64.decode(key.jwk["y"].as_str().unwrap()).unwrap();
    let sec1 = [&[4u8][..], &x, &y].concat();
    let jwk_bytes = key.jwk.to_string().into_bytes();
    for secret in [sec1, jwk_bytes] {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some("ec-1".into());
        let token = jsonwebtoken::encode(
            &header,
            &user_claims(&server.issuer),
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert_eq!(
            v.verify(&token).await.unwrap_err(),
            VerifyError::AlgorithmNotAccepted(Algorithm::HS256)
        );
    }
    // A token claiming EdDSA under the EC key's kid is refused as well.
    let ed = TestKey::eddsa("ec-1");
    assert_eq!(
        v.verify(&ed.sign(&user_claims(&server.issuer)))
            .await
            .unwrap_err(),
        VerifyError::AlgorithmNotAccepted(Algorithm::EdDSA)
    );
    // alg "none" does not even parse as a header we accept.
    let header = B64.encode(r#"{"alg":"none","typ":"at+jwt","kid":"ec-1"}"#);
    let payload = B64.encode(user_claims(&server.issuer).to_string());
    assert!(v.verify(&format!("{header}.{payload}.")).await.is_err());
}

#[tokio::test]
async fn key_rotation_is_picked_up_by_a_rate_limited_refetch() {
    let old = TestKey::es256("k-old");
    let server = JwksServer::start(vec![old.jwk.clone()]).await;
    let iss = server.issuer.clone();
    let v = verifier(&iss);
    assert!(v.verify(&old.sign(&user_claims(&iss))).await.is_ok());
    assert_eq!(server.fetches(), 1);

    // The issuer rotates: the new key is published, tokens are signed with it.
    let new = TestKey::eddsa("k-new");
    server.set_keys(vec![old.jwk.clone(), new.jwk.clone()]);
    assert!(v.verify(&new.sign(&user_claims(&iss))).await.is_ok());
    assert_eq!(server.fetches(), 2, "the unknown kid caused one refetch");
    assert!(v.verify(&old.sign(&user_claims(&iss))).await.is_ok());
    assert!(v.verify(&new.sign(&user_claims(&iss))).await.is_ok());
    assert_eq!(server.fetches(), 2, "known kids come from the cache");

    // Invented kids do not make us refetch again within the cooldown.
    let stranger = TestKey::es256("k-unknown");
    for _ in 0..5 {
        assert_eq!(
            v.verify(&stranger.sign(&user_claims(&iss)))
                .await
                .unwrap_err(),
            VerifyError::UnknownKey
        );
    }
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn unknown_kid_refetches_again_after_the_cooldown() {
    let old = TestKey::es256("k-old");
    let server = JwksServer::start(vec![old.jwk.clone()]).await;
    let iss = server.issuer.clone();
    let v = Verifier::builder(&iss)
        .refetch_cooldown(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(v.verify(&old.sign(&user_claims(&iss))).await.is_ok());
    let a = TestKey::es256("a");
    assert_eq!(
        v.verify(&a.sign(&user_claims(&iss))).await.unwrap_err(),
        VerifyError::UnknownKey
    );
    assert_eq!(server.fetches(), 2);
    server.set_keys(vec![old.jwk.clone(), a.jwk.clone()]);
    assert_eq!(
        v.verify(&a.sign(&user_claims(&iss))).await.unwrap_err(),
        VerifyError::UnknownKey
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(v.verify(&a.sign(&user_claims(&iss))).await.is_ok());
    assert_eq!(server.fetches(), 3);
}

#[tokio::test]
async fn retired_keys_disappear_after_the_cache_ttl() {
    let old = TestKey::es256("k-old");
    let server = JwksServer::start(vec![old.jwk.clone()]).await;
    let iss = server.issuer.clone();
    let v = Verifier::builder(&iss)
        .cache_ttl(Duration::from_millis(100))
        .build()
        .unwrap();
    assert!(v.verify(&old.sign(&user_claims(&iss))).await.is_ok());
    server.set_keys(vec![TestKey::es256("k-new").jwk]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        v.verify(&old.sign(&user_claims(&iss))).await.unwrap_err(),
        VerifyError::UnknownKey
    );
}

#[tokio::test]
async fn unreachable_jwks_is_keys_unavailable() {
    // Bind then drop, so the port is (almost certainly) closed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let v = verifier(&issuer);
    let token = TestKey::es256("k").sign(&user_claims(&issuer));
    let err = v.verify(&token).await.unwrap_err();
    assert!(matches!(err, VerifyError::KeysUnavailable(_)), "{err:?}");
    assert_eq!(err.status(), 503);
    assert!(v.refresh_keys().await.is_err());
}

#[tokio::test]
async fn stale_keys_are_used_while_the_issuer_is_down() {
    let key = TestKey::es256("k");
    let server = JwksServer::start(vec![key.jwk.clone()]).await;
    let iss = server.issuer.clone();
    let v = Verifier::builder(&iss)
        .cache_ttl(Duration::from_millis(50))
        .build()
        .unwrap();
    assert_eq!(v.refresh_keys().await.unwrap(), 1);
    server.set_keys(vec![json!("garbage")]); // the issuer now serves nothing usable
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(v.verify(&key.sign(&user_claims(&iss))).await.is_ok());
}

#[tokio::test]
async fn hs256_only_with_an_explicit_shared_secret() {
    let secret = b"an-hs256-secret-of-at-least-32-bytes!";
    let iss = "http://127.0.0.1:1";
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    let token = jsonwebtoken::encode(
        &header,
        &user_claims(iss),
        &EncodingKey::from_secret(secret),
    )
    .unwrap();
    let shared = Verifier::builder(iss).hs256_secret(secret).build().unwrap();
    assert_eq!(shared.verify(&token).await.unwrap().claims.sub, "42");

    let other = Verifier::builder(iss)
        .hs256_secret(b"another-secret-of-at-least-32-bytes!!")
        .build()
        .unwrap();
    assert_eq!(
        other.verify(&token).await.unwrap_err(),
        VerifyError::BadSignature
    );
    // And the shared-secret verifier refuses public-key tokens.
    let ec = TestKey::es256("k").sign(&user_claims(iss));
    assert_eq!(
        shared.verify(&ec).await.unwrap_err(),
        VerifyError::AlgorithmNotAccepted(Algorithm::ES256)
    );
}

#[tokio::test]
async fn required_scopes_on_the_verifier() {
    let key = TestKey::es256("k");
    let server = JwksServer::start(vec![key.jwk.clone()]).await;
    let v = Verifier::builder(&server.issuer)
        .require_scopes(["profile", "admin"])
        .build()
        .unwrap();
    let err = v
        .verify(&key.sign(&user_claims(&server.issuer)))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::InsufficientScope {
            required: vec!["profile".into(), "admin".into()]
        }
    );
}

// ---- the axum extractors ----

struct Admin;
impl ScopeRequirement for Admin {
    const SCOPES: &'static [&'static str] = &["admin"];
}

fn app(verifier: Verifier) -> Router {
    async fn me(Bearer(claims): Bearer) -> Json<StandardClaims> {
        Json(claims)
    }
    async fn admin(token: Scoped<Admin>) -> String {
        format!("hello admin {}", token.sub)
    }
    Router::new()
        .route("/me", get(me))
        .route("/admin", get(admin))
        .with_state(verifier)
}

async fn call(
    app: &Router,
    path: &str,
    auth: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let mut request = Request::builder().uri(path);
    if let Some(auth) = auth {
        request = request.header(header::AUTHORIZATION, auth);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_string());
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, challenge, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn extractor_answers_per_rfc6750() {
    let key = TestKey::es256("k");
    let server = JwksServer::start(vec![key.jwk.clone()]).await;
    let iss = server.issuer.clone();
    let app = app(verifier(&iss));

    let token = key.sign(&user_claims(&iss));
    let (status, _, body) = call(&app, "/me", Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["flow_user_id"],
        "42"
    );

    let (status, challenge, _) = call(&app, "/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some("Bearer"));

    let mut expired = user_claims(&iss);
    expired["exp"] = json!(now() - 3600);
    let (status, challenge, body) =
        call(&app, "/me", Some(&format!("Bearer {}", key.sign(&expired)))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Bearer error="invalid_token", error_description="token has expired""#)
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "invalid_token"
    );

    let (status, challenge, _) = call(&app, "/admin", Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.unwrap().contains(r#"error="insufficient_scope""#));

    let mut admin = user_claims(&iss);
    admin["scope"] = json!("flow admin");
    let (status, _, body) = call(
        &app,
        "/admin",
        Some(&format!("Bearer {}", key.sign(&admin))),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello admin 42"));

    let (status, _, _) = call(&app, "/me", Some("Bearer")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn extractor_answers_503_when_keys_are_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let app = app(verifier(&issuer));
    let token = TestKey::es256("k").sign(&user_claims(&issuer));
    let (status, challenge, _) = call(&app, "/me", Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(challenge.is_none());
}
