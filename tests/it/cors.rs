//! Cross-origin requests (issue 16 §1) as a browser makes them, over HTTP: a preflight from a
//! registered client's origin is answered with that origin and no credentials; an unknown origin
//! (a look-alike host, another scheme or port, `null`) gets no `Access-Control-Allow-Origin` at
//! all; discovery and the JWKS answer `*` without credentials; paths without CORS keep refusing
//! preflights; `--allowed-origin` (CLI and admin API) adds an origin beyond the redirect URIs';
//! and a deleted or changed client's origin stops being allowed — at once on the instance that
//! made the change, within the cache TTL on another one.

use std::process::Command;

use reqwest::{Method, Response};
use serde_json::{Value, json};
use wxauth::oauth::allowed_origins::ORIGIN_CACHE_TTL;
use wxauth::oauth::{ClientChanges, NewClient};
use wxauth::secret::Secret;

use crate::harness::{Backend, Options, TestApp};
use crate::oauth::basic;

/// The origin of the SPA client's redirect URI.
const SPA_ORIGIN: &str = "https://spa.example.com";
/// The origin the confidential client names with `--allowed-origin`.
const EXTRA_ORIGIN: &str = "https://console.example.org:8443";
const SECRET: &str = "cors-test-secret-0123456789";
const ADMIN_TOKEN: &str = "admin-token-for-the-cors-tests";

/// Every endpoint a browser app on another origin calls, with the method it uses.
const CLIENT_ENDPOINTS: &[(&str, &str)] = &[
    ("/oauth/token", "POST"),
    ("/api/auth/oauth/token", "POST"),
    ("/oauth/userinfo", "GET"),
    ("/oauth/revoke", "POST"),
    ("/api/wechat/ma/session", "POST"),
    ("/api/wechat/ma/user", "POST"),
    ("/api/wechat/ma/phone", "POST"),
    (wxauth::http::h5::ENTRY_BUILD_PATH, "GET"),
];

const PUBLIC_METADATA: &[&str] = &[
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
    "/.well-known/jwks.json",
];

async fn register(app: &TestApp) {
    app.state
        .clients
        .create(NewClient {
            client_id: "spa".into(),
            public: true,
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["openid".into(), "profile".into()],
            redirect_uris: vec![format!("{SPA_ORIGIN}/callback")],
            ..NewClient::default()
        })
        .await
        .unwrap();
    app.state
        .clients
        .create(NewClient {
            client_id: "backoffice".into(),
            secret: Some(Secret::new(SECRET)),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["api".into()],
            allowed_origins: vec![format!("{EXTRA_ORIGIN}/")],
            ..NewClient::default()
        })
        .await
        .unwrap();
}

async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> Response {
    app.http
        .request(Method::OPTIONS, app.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A header's comma-separated values, lower-cased.
fn values(response: &Response, name: &str) -> Vec<String> {
    response
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect()
}

/// What a browser needs to let a page of `origin` read the answer, and nothing that would let
/// it send cookies.
fn assert_allowed(response: &Response, origin: &str, what: &str) {
    assert_eq!(
        header(response, "access-control-allow-origin"),
        Some(origin),
        "{what}: {:?}",
        response.headers()
    );
    assert_eq!(
        header(response, "access-control-allow-credentials"),
        None,
        "{what}: never credentials"
    );
    assert!(
        values(response, "vary").contains(&"origin".to_owned()),
        "{what}: the answer depends on Origin: {:?}",
        response.headers()
    );
}

fn assert_refused(response: &Response, what: &str) {
    assert_eq!(
        header(response, "access-control-allow-origin"),
        None,
        "{what}: {:?}",
        response.headers()
    );
    assert_eq!(
        header(response, "access-control-allow-credentials"),
        None,
        "{what}"
    );
}

async fn client_credentials(app: &TestApp, origin: &str, secret: &str) -> Response {
    app.http
        .post(app.url("/oauth/token"))
        .header("Origin", origin)
        .header("Authorization", basic("backoffice", secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "api")])
        .send()
        .await
        .unwrap()
}

crate::backend_tests! {
    async fn a_registered_origin_passes_the_preflight_and_reads_the_answer(app: TestApp) {
        register(&app).await;
        for origin in [SPA_ORIGIN, EXTRA_ORIGIN] {
            for (path, method) in CLIENT_ENDPOINTS {
                let response = preflight(&app, path, origin, method).await;
                let what = format!("preflight {method} {path} from {origin}");
                assert!(response.status().is_success(), "{what}: {}", response.status());
                assert_allowed(&response, origin, &what);
                let methods = values(&response, "access-control-allow-methods");
                assert!(methods.contains(&method.to_ascii_lowercase()), "{what}: {methods:?}");
                let headers = values(&response, "access-control-allow-headers");
                for needed in ["authorization", "content-type"] {
                    assert!(headers.contains(&needed.to_owned()), "{what}: {headers:?}");
                }
                assert_eq!(header(&response, "access-control-max-age"), Some("600"), "{what}");
            }
        }

        // The actual request: tokens, and a refusal the page can read too.
        let granted = client_credentials(&app, EXTRA_ORIGIN, SECRET).await;
        assert_eq!(granted.status(), 200);
        assert_allowed(&granted, EXTRA_ORIGIN, "token response");
        let exposed = values(&granted, "access-control-expose-headers");
        assert!(exposed.contains(&"www-authenticate".to_owned()), "{exposed:?}");
        assert!(granted.json::<Value>().await.unwrap()["access_token"].is_string());
        let refused = client_credentials(&app, EXTRA_ORIGIN, "not-the-secret-at-all").await;
        assert_eq!(refused.status(), 401);
        assert_allowed(&refused, EXTRA_ORIGIN, "invalid_client response");
        assert_eq!(refused.json::<Value>().await.unwrap()["error"], "invalid_client");
    }

    async fn an_unknown_origin_gets_no_cors_headers(app: TestApp) {
        register(&app).await;
        for origin in [
            "https://evil.example",
            // Look-alikes of the registered ones: another scheme, port, host or a suffix.
            "http://spa.example.com",
            "https://spa.example.com:8443",
            "https://spa.example.com.evil.example",
            "https://evil-spa.example.com",
            "https://console.example.org",
            // Sandboxed frames and file:// pages send `null`.
            "null",
        ] {
            for (path, method) in CLIENT_ENDPOINTS {
                let response = preflight(&app, path, origin, method).await;
                assert_refused(&response, &format!("preflight {path} from {origin}"));
            }
            let response = client_credentials(&app, origin, SECRET).await;
            assert_eq!(response.status(), 200, "the server still answers");
            assert_refused(&response, &format!("token response to {origin}"));
        }
    }

    async fn discovery_and_the_jwks_answer_any_origin_without_credentials(app: TestApp) {
        for path in PUBLIC_METADATA {
            let response = preflight(&app, path, "https://anyone.example", "GET").await;
            assert!(response.status().is_success(), "{path}: {}", response.status());
            assert_eq!(header(&response, "access-control-allow-origin"), Some("*"), "{path}");
            assert_eq!(header(&response, "access-control-allow-credentials"), None, "{path}");
            let response = app
                .http
                .get(app.url(path))
                .header("Origin", "https://anyone.example")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(header(&response, "access-control-allow-origin"), Some("*"), "{path}");
            assert_eq!(header(&response, "access-control-allow-credentials"), None, "{path}");
        }
        // Paths a page on another origin has no business calling keep refusing preflights.
        register(&app).await;
        for path in ["/oauth/introspect", "/oauth/authorize", "/admin/api/v1/clients"] {
            let response = preflight(&app, path, SPA_ORIGIN, "POST").await;
            assert_eq!(response.status(), 405, "{path}");
            assert_refused(&response, path);
        }
    }

    async fn a_deleted_or_changed_client_stops_its_origins(app: TestApp) {
        register(&app).await;
        let allowed = |origin: &'static str| {
            let app = &app;
            async move {
                header(&preflight(app, "/oauth/token", origin, "POST").await,
                    "access-control-allow-origin") == Some(origin)
            }
        };
        assert!(allowed(SPA_ORIGIN).await && allowed(EXTRA_ORIGIN).await);

        // Through this instance's registry (admin API, console, dev): at once.
        app.state.clients.update("backoffice", ClientChanges {
            allowed_origins: Some(vec!["https://new.example.org".into()]),
            ..ClientChanges::default()
        }).await.unwrap();
        assert!(!allowed(EXTRA_ORIGIN).await, "a replaced origin is refused at once");
        assert!(allowed("https://new.example.org").await);
        app.state.clients.delete("spa").await.unwrap();
        assert!(!allowed(SPA_ORIGIN).await, "a deleted client's origin is refused at once");

        // Through another instance on the same database: within the cache's TTL.
        let other = TestApp::spawn_with(app.backend, Options {
            share: Some(app.sharing()),
            ..Options::default()
        }).await.unwrap();
        other.state.clients.update("backoffice", ClientChanges {
            allowed_origins: Some(vec![]),
            ..ClientChanges::default()
        }).await.unwrap();
        assert!(allowed("https://new.example.org").await, "still cached here");
        app.clock.advance(ORIGIN_CACHE_TTL);
        assert!(!allowed("https://new.example.org").await, "refused once the cache expired");
    }
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .http
        .request(method, app.url(&format!("/admin/api/v1{path}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_sets_and_refuses_allowed_origins() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            env: vec![("WXAUTH_ADMIN_TOKEN".into(), ADMIN_TOKEN.into())],
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let origin = "https://partner.example.net";
    let (status, body) = admin(
        &app,
        Method::POST,
        "/clients",
        json!({"client_id": "partner", "grant_types": ["client_credentials"], "scopes": ["api"],
               "allowed_origins": ["https://Partner.example.net:443/"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["allowed_origins"],
        json!([origin]),
        "stored serialized"
    );
    let response = preflight(&app, "/oauth/token", origin, "POST").await;
    assert_allowed(&response, origin, "an origin set through the admin API");

    for bad in [
        "*",
        "null",
        "https://partner.example.net/app",
        "partner.example.net",
    ] {
        let (status, body) = admin(
            &app,
            Method::PATCH,
            "/clients/partner",
            json!({"allowed_origins": [bad]}),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body.to_string().contains("allowed_origins"),
            "{bad}: {body}"
        );
    }
    let (status, body) = admin(
        &app,
        Method::PATCH,
        "/clients/partner",
        json!({"allowed_origins": []}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["allowed_origins"], json!([]));
    assert_refused(
        &preflight(&app, "/oauth/token", origin, "POST").await,
        "an origin removed through the admin API",
    );
}

/// `wxauth client create|update --allowed-origin`, another process on the server's database:
/// the running server sees it within the cache TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allowed_origin_flag_of_the_command_line() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let master_key = app.sharing().master_key;
    let wxauth = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wxauth"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .env("DATABASE_URL", app.database_url())
            .env("WXAUTH_MASTER_KEY", &master_key)
            .output()
            .expect("run wxauth");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let first = "https://one.example.com";
    let second = "http://localhost:5173";
    // The server has read the (empty) set: the new client is seen when its cache expires.
    assert_refused(
        &preflight(&app, "/oauth/token", first, "POST").await,
        "before",
    );
    let (code, stdout, stderr) = wxauth(&[
        "client",
        "create",
        "--client-id",
        "web",
        "--public",
        "--grant-types",
        "authorization_code",
        "--scopes",
        "openid",
        "--redirect-uri",
        "https://app.example.com/cb",
        "--allowed-origin",
        first,
        "--allowed-origin",
        second,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("allowed_origins:   {first} {second}")),
        "{stdout}"
    );
    app.clock.advance(ORIGIN_CACHE_TTL);
    for origin in [first, second, "https://app.example.com"] {
        assert_allowed(
            &preflight(&app, "/oauth/token", origin, "POST").await,
            origin,
            "set from the command line",
        );
    }

    let (code, _, stderr) = wxauth(&["client", "update", "web", "--allowed-origin", "ftp://x"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--allowed-origin"), "{stderr}");
    let (code, stdout, stderr) = wxauth(&["client", "update", "web", "--clear-allowed-origins"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("allowed_origins:   -"), "{stdout}");
    app.clock.advance(ORIGIN_CACHE_TTL);
    assert_refused(
        &preflight(&app, "/oauth/token", first, "POST").await,
        "cleared from the command line",
    );
    assert_allowed(
        &preflight(&app, "/oauth/token", "https://app.example.com", "POST").await,
        "https://app.example.com",
        "the redirect URI's origin stays",
    );
}
