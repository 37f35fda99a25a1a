//! The API documentation as a developer finds it: the admin API's OpenAPI 3.1 document at
//! `/admin/api/openapi.json` lists every route the admin router serves, with the bearer scheme;
//! the public document describes the endpoints people call most; both validate with Python's
//! `openapi-spec-validator`; and `/api/doc.html` is an interactive page whose every script and
//! stylesheet wxauth serves itself (no CDN), under a Content-Security-Policy.
//!
//! The validator needs `python3 -m pip install -r tests/oidc/requirements.txt` (.ci/run does
//! it). Without it that test is skipped with a message, unless `WXAUTH_TEST_REQUIRE_PYTHON=1`
//! (set by .ci/run), which makes its absence a failure.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::harness::{Backend, TestApp};

const ADMIN_TOKEN: &str = "admin-token-for-the-openapi-tests";

/// Every route of `/admin/api/v1`, as the router in src/http/admin.rs serves it.
const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("get", "/admin/api/v1/users"),
    ("get", "/admin/api/v1/users/{id}"),
    ("delete", "/admin/api/v1/users/{id}"),
    ("post", "/admin/api/v1/users/{id}/disable"),
    ("post", "/admin/api/v1/users/{id}/enable"),
    ("post", "/admin/api/v1/users/{id}/revoke"),
    ("get", "/admin/api/v1/users/{id}/export"),
    ("get", "/admin/api/v1/clients"),
    ("post", "/admin/api/v1/clients"),
    ("get", "/admin/api/v1/clients/{id}"),
    ("patch", "/admin/api/v1/clients/{id}"),
    ("delete", "/admin/api/v1/clients/{id}"),
    ("post", "/admin/api/v1/clients/{id}/secret"),
    ("get", "/admin/api/v1/apps"),
    ("post", "/admin/api/v1/apps"),
    ("get", "/admin/api/v1/apps/{appid}"),
    ("patch", "/admin/api/v1/apps/{appid}"),
    ("delete", "/admin/api/v1/apps/{appid}"),
    ("get", "/admin/api/v1/keys"),
    ("post", "/admin/api/v1/keys"),
    ("post", "/admin/api/v1/keys/{kid}/retire"),
    ("get", "/admin/api/v1/audit"),
    ("get", "/admin/api/v1/admins"),
    ("post", "/admin/api/v1/admins"),
    ("delete", "/admin/api/v1/admins/{id}"),
    ("get", "/admin/api/v1/resources"),
    ("post", "/admin/api/v1/resources"),
    ("get", "/admin/api/v1/resources/{id}"),
    ("patch", "/admin/api/v1/resources/{id}"),
    ("delete", "/admin/api/v1/resources/{id}"),
    ("get", "/admin/api/v1/webhooks"),
    ("post", "/admin/api/v1/webhooks"),
    ("delete", "/admin/api/v1/webhooks/{id}"),
    ("get", "/admin/api/v1/webhooks/deliveries"),
    ("get", "/admin/api/v1/merges"),
    ("post", "/admin/api/v1/merges"),
    ("post", "/admin/api/v1/merges/{id}/approve"),
    ("post", "/admin/api/v1/merges/{id}/reject"),
];

async fn spawn() -> TestApp {
    TestApp::spawn_with(
        Backend::Sqlite,
        crate::harness::Options {
            env: vec![("WXAUTH_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned())],
            ..Default::default()
        },
    )
    .await
    .expect("sqlite always runs")
}

async fn document(app: &TestApp, path: &str) -> Value {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{path}"
    );
    response.json().await.unwrap()
}

/// The (method, path) pairs a document describes.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                .map(|method| (method.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_document_is_openapi_3_1_and_lists_every_admin_route() {
    let app = spawn().await;
    let doc = document(&app, "/admin/api/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");

    let listed = operations(&doc);
    let served: BTreeSet<(String, String)> = ADMIN_ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(listed, served);

    // The bearer scheme is declared and required everywhere.
    let scheme = &doc["components"]["securitySchemes"]["admin_token"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    assert_eq!(doc["security"][0]["admin_token"], serde_json::json!([]));

    // The list above is what the router serves: with the token, each route reaches its handler
    // (an unknown route gets the fallback's "no such admin resource", a wrong method 405).
    for (method, path) in ADMIN_ROUTES {
        let url = app.url(
            &path
                .replace("{id}", "999999")
                .replace("{kid}", "no-such-key"),
        );
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = app
            .http
            .request(method.clone(), &url)
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(
            !body.contains("no such admin resource"),
            "{method} {path} is not served: {body}"
        );
    }

    // A documented response shape is the one served: the error body of a refusal.
    let refused = app
        .http
        .get(app.url("/admin/api/v1/users/not-a-number"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    let error_schema = &doc["components"]["schemas"]["ApiErrorBody"]["properties"];
    for field in body.as_object().unwrap().keys() {
        assert!(
            error_schema.get(field).is_some(),
            "{field} not in {error_schema}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_document_describes_the_endpoints_people_call_most() {
    let app = spawn().await;
    let doc = document(&app, "/api/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    let listed = operations(&doc);
    for wanted in [
        ("post", "/oauth/token"),
        ("get", "/.well-known/openid-configuration"),
        ("get", "/.well-known/jwks.json"),
        ("post", "/api/wechat/ma/session"),
    ] {
        assert!(
            listed.contains(&(wanted.0.to_owned(), wanted.1.to_owned())),
            "{wanted:?} not in {listed:?}"
        );
    }
    let session = &doc["components"]["schemas"]["SessionRequest"]["properties"];
    assert!(session.get("appId").is_some(), "{session}");
}

async fn validator_installed() -> bool {
    tokio::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .await
        .is_ok_and(|out| out.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_documents_validate_with_openapi_spec_validator() {
    if !validator_installed().await {
        assert!(
            std::env::var("WXAUTH_TEST_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "WXAUTH_TEST_REQUIRE_PYTHON=1 but python3 with openapi-spec-validator is missing \
             (python3 -m pip install -r tests/oidc/requirements.txt)"
        );
        eprintln!(
            "skipping the OpenAPI validation: python3 -m pip install -r tests/oidc/requirements.txt"
        );
        return;
    }
    let app = spawn().await;
    let dir = crate::harness::TempDir::new();
    for path in ["/admin/api/openapi.json", "/api/openapi.json"] {
        let doc = document(&app, path).await;
        let file = dir.0.join("openapi.json");
        std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
        let output = tokio::process::Command::new("python3")
            .args([
                "-c",
                "import json, sys\n\
                 from openapi_spec_validator import validate\n\
                 from openapi_spec_validator.validation import OpenAPIV31SpecValidator\n\
                 validate(json.load(open(sys.argv[1])), cls=OpenAPIV31SpecValidator)\n\
                 print('valid')",
            ])
            .arg(&file)
            .output()
            .await
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "{path} does not validate: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "valid");
    }
}

/// Every `src="…"` and `href="…"` on a page.
fn asset_urls(body: &str) -> Vec<String> {
    ["src=\"", "href=\""]
        .iter()
        .flat_map(|attr| {
            body.split(attr)
                .skip(1)
                .filter_map(|rest| rest.split('"').next())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doc_page_is_served_with_its_assets_by_wxauth_under_a_csp() {
    let app = spawn().await;
    let response = app.http.get(app.url("/api/doc.html")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(!csp.contains("https:"), "{csp}");
    let body = response.text().await.unwrap();
    assert!(body.contains("id=\"swagger-ui\""), "{body}");
    // No inline script: every <script> loads a file.
    assert_eq!(
        body.matches("<script").count(),
        body.matches("<script src=\"/").count(),
        "{body}"
    );

    let assets = asset_urls(&body);
    assert!(assets.len() >= 4, "{assets:?}");
    for asset in &assets {
        assert!(asset.starts_with('/'), "{asset} is not served by wxauth");
        let response = app.http.get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }

    // The initializer points Swagger UI at both documents.
    let init = app
        .http
        .get(app.url("/api/doc/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/admin/api/openapi.json"), "{init}");
    assert!(init.contains("/api/openapi.json"), "{init}");
    assert!(!init.contains("petstore"), "{init}");

    let missing = app
        .http
        .get(app.url("/api/doc/no-such-file.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
