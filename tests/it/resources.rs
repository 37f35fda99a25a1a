//! Resource indicators (RFC 8707): registered APIs, clients allowed some of them, the `resource`
//! parameter at the token and authorization endpoints setting the access token's `aud`, and
//! `invalid_target` for anything else; the code binds its resources and a refresh stays within
//! them; the `wxauth-resource` crate refuses a token meant for another API; resources managed
//! from the command line and the admin API.

use std::process::{Command, Output};

use axum::Router;
use axum::routing::get;
use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};
use url::Url;
use wxauth::oauth::NewClient;
use wxauth::oauth::resources::NewResource;
use wxauth::secret::Secret;
use wxauth_resource::{Bearer, Verifier, VerifyError};

use crate::admin_api::call_as as admin;
use crate::backend_tests;
use crate::harness::{Options, TempDir, TestApp};
use crate::oauth::basic;
use crate::oidc::{Browser, DESKTOP, REDIRECT, Step, authorize_url, exchange, pkce};

const SECRET: &str = "a-long-client-secret-for-resource-tests";
const ORDERS: &str = "https://orders.example.com";
const BILLING: &str = "https://billing.example.com/api";
const ADMIN_TOKEN: &str = "admin-token-for-the-resource-tests";

/// Two resources: orders (orders:read, orders:write) and billing (billing).
async fn register_resources(app: &TestApp) {
    let registry = app.state.oauth.tokens.resources();
    for (id, scopes) in [
        (ORDERS, vec!["orders:read", "orders:write"]),
        (BILLING, vec!["billing"]),
    ] {
        registry
            .create(
                NewResource {
                    identifier: id.into(),
                    display_name: None,
                    scopes: scopes.into_iter().map(String::from).collect(),
                },
                app.state.clock.now(),
            )
            .await
            .unwrap();
    }
}

async fn register_client(app: &TestApp, id: &str, grants: &[&str], resources: &[&str]) {
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    app.state
        .clients
        .create(NewClient {
            client_id: id.into(),
            secret: Some(Secret::new(SECRET)),
            grant_types: strings(grants),
            scopes: strings(&["openid", "profile", "orders:read", "billing"]),
            redirect_uris: strings(&[REDIRECT]),
            first_party: true,
            access_token_ttl: 600,
            refresh_token_ttl: 3600,
            resources: strings(resources),
            ..NewClient::default()
        })
        .await
        .unwrap();
}

/// The claims of a JWT, unverified (the tests below verify where it matters).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

async fn client_credentials(app: &TestApp, id: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    exchange(app, Some(&basic(id, SECRET)), &form).await
}

/// A scope claim's words, sorted.
fn words(scope: &Value) -> String {
    let mut words: Vec<&str> = scope.as_str().unwrap_or_default().split(' ').collect();
    words.sort_unstable();
    words.join(" ")
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

/// Sign in (first-party: no consent) and return the code the client received.
async fn code(browser: &mut Browser<'_>, client_id: &str, extra: &[(&str, &str)]) -> Url {
    let url = authorize_url(browser.app, client_id, extra);
    match browser.walk(&url).await {
        Step::Left(back) => back,
        step => panic!("expected a redirect to the client: {step:?}"),
    }
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

backend_tests! {
    async fn a_token_for_a_resource_names_it_and_other_resources_are_invalid_target(app: TestApp) {
        register_resources(&app).await;
        register_client(&app, "svc", &["client_credentials"], &[ORDERS]).await;

        // Allowed: aud is the resource, and the scope keeps what the resource accepts.
        let (status, body) = client_credentials(&app, "svc", &[("resource", ORDERS)]).await;
        assert_eq!(status, 200, "{body}");
        let token = body["access_token"].as_str().unwrap();
        let (_, verified) = crate::oauth::verify_jwt(&app, token, ORDERS).await;
        assert_eq!(verified["aud"], ORDERS);
        assert_eq!(verified["scope"], "orders:read");
        assert_eq!(body["scope"], "orders:read");

        // Not allowed to this client, unknown, or not an absolute URI without a fragment.
        for refused in [BILLING, "https://unknown.example.com", "/orders", "https://orders.example.com#x"] {
            let (status, body) = client_credentials(&app, "svc", &[("resource", refused)]).await;
            assert_eq!((status, error_of(&body)), (400, "invalid_target"), "{refused}: {body}");
        }
        // One refused resource among allowed ones refuses the request.
        let (status, body) =
            client_credentials(&app, "svc", &[("resource", ORDERS), ("resource", BILLING)]).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_target"), "{body}");

        // Without `resource`, nothing changed: aud is the issuer and the scope is whole.
        let (status, body) = client_credentials(&app, "svc", &[]).await;
        assert_eq!(status, 200, "{body}");
        let plain = claims(body["access_token"].as_str().unwrap());
        assert_eq!(plain["aud"], app.base.as_str());
        assert_eq!(words(&plain["scope"]), "billing openid orders:read profile");

        // A client allowed both gets both audiences.
        register_client(&app, "both", &["client_credentials"], &[ORDERS, BILLING]).await;
        let (status, body) =
            client_credentials(&app, "both", &[("resource", ORDERS), ("resource", BILLING)]).await;
        assert_eq!(status, 200, "{body}");
        let both = claims(body["access_token"].as_str().unwrap());
        assert_eq!(both["aud"], json!([ORDERS, BILLING]));
        assert_eq!(words(&both["scope"]), "billing orders:read");

        // Introspection reports the audience.
        let response = app
            .http
            .post(app.url("/oauth/introspect"))
            .header("authorization", basic("svc", SECRET))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        let introspected: Value = response.json().await.unwrap();
        assert_eq!(introspected["active"], true, "{introspected}");
        assert_eq!(introspected["aud"], ORDERS);

        // The issuance is audited with its audience.
        let events = app.state.audit.list(&wxauth::audit::AuditFilter {
            client_id: Some("svc".into()),
            limit: 100,
            ..wxauth::audit::AuditFilter::default()
        }).await.unwrap();
        assert!(events.iter().any(|e| e.detail.contains(&format!("\"aud\":\"{ORDERS}\""))), "{events:?}");
    }

    async fn the_code_binds_its_resources_and_a_refresh_stays_within_them(app: TestApp) {
        register_resources(&app).await;
        register_client(&app, "web", &["authorization_code", "refresh_token"], &[ORDERS, BILLING]).await;
        let auth = basic("web", SECRET);
        let mut browser = Browser::new(&app, DESKTOP, "alice");
        let scope = ("scope", "openid orders:read billing");

        // Bound to orders: the token request without `resource` gets a token for orders.
        let (verifier, challenge) = pkce();
        let pkce_params = [("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")];
        let mut extra = vec![scope, ("resource", ORDERS)];
        extra.extend_from_slice(&pkce_params);
        let back = code(&mut browser, "web", &extra).await;
        let code_value = param(&back, "code").unwrap_or_else(|| panic!("no code: {back}"));
        let (status, tokens) = exchange(&app, Some(&auth), &[
            ("grant_type", "authorization_code"), ("code", &code_value),
            ("redirect_uri", REDIRECT), ("code_verifier", &verifier),
        ]).await;
        assert_eq!(status, 200, "{tokens}");
        let access = claims(tokens["access_token"].as_str().unwrap());
        assert_eq!(access["aud"], ORDERS);
        assert_eq!(access["scope"], "orders:read");
        // The grant had openid: the ID token is there even though the access token is narrower.
        assert!(tokens["id_token"].is_string(), "{tokens}");
        // A token for orders is not for the issuer's own userinfo.
        let userinfo = app.http.get(app.url("/oauth/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(userinfo.status(), 401);

        // Refreshing for billing, outside the grant, is refused and spends nothing.
        let refresh = tokens["refresh_token"].as_str().unwrap();
        let (status, body) = exchange(&app, Some(&auth), &[
            ("grant_type", "refresh_token"), ("refresh_token", refresh), ("resource", BILLING),
        ]).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_target"), "{body}");
        let (status, body) = exchange(&app, Some(&auth), &[
            ("grant_type", "refresh_token"), ("refresh_token", refresh), ("resource", ORDERS),
        ]).await;
        assert_eq!(status, 200, "the refused refresh did not spend the token: {body}");
        assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], ORDERS);
        // The rotated token keeps the binding.
        let (status, body) = exchange(&app, Some(&auth), &[
            ("grant_type", "refresh_token"), ("refresh_token", body["refresh_token"].as_str().unwrap()),
        ]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], ORDERS);

        // A code bound to orders cannot be exchanged for billing.
        let back = code(&mut browser, "web", &[scope, ("resource", ORDERS)]).await;
        let (status, body) = exchange(&app, Some(&auth), &[
            ("grant_type", "authorization_code"), ("code", &param(&back, "code").unwrap()),
            ("redirect_uri", REDIRECT), ("resource", BILLING),
        ]).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_target"), "{body}");

        // A code bound to nothing gives tokens for the issuer, and none for a resource.
        let back = code(&mut browser, "web", &[scope]).await;
        let (status, body) = exchange(&app, Some(&auth), &[
            ("grant_type", "authorization_code"), ("code", &param(&back, "code").unwrap()),
            ("redirect_uri", REDIRECT), ("resource", ORDERS),
        ]).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_target"), "{body}");
        let back = code(&mut browser, "web", &[scope]).await;
        let (status, body) = exchange(&app, Some(&auth), &[
            ("grant_type", "authorization_code"), ("code", &param(&back, "code").unwrap()),
            ("redirect_uri", REDIRECT),
        ]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], app.base.as_str());

        // Bound to both: the token request picks one, a refresh picks the other (downscoping).
        let back = code(&mut browser, "web", &[scope, ("resource", ORDERS), ("resource", BILLING)]).await;
        let (status, body) = exchange(&app, Some(&auth), &[
            ("grant_type", "authorization_code"), ("code", &param(&back, "code").unwrap()),
            ("redirect_uri", REDIRECT), ("resource", ORDERS),
        ]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], ORDERS);
        let (status, body) = exchange(&app, Some(&auth), &[
            ("grant_type", "refresh_token"), ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ("resource", BILLING),
        ]).await;
        assert_eq!(status, 200, "{body}");
        let billing = claims(body["access_token"].as_str().unwrap());
        assert_eq!((billing["aud"].as_str(), billing["scope"].as_str()), (Some(BILLING), Some("billing")));

        // At the authorization endpoint, an unknown resource goes back to the client as
        // invalid_target with its state, before any sign-in.
        let mut stranger = Browser::new(&app, DESKTOP, "bob");
        let url = authorize_url(&app, "web", &[scope, ("resource", "https://unknown.example.com")]);
        let Step::Left(back) = stranger.walk(&url).await else { panic!("not sent back") };
        assert_eq!(param(&back, "error").as_deref(), Some("invalid_target"), "{back}");
        assert_eq!(param(&back, "state").as_deref(), Some("st-123"));
        assert!(stranger.session().is_none());
    }

    async fn a_client_not_allowed_a_resource_cannot_have_it_bound_to_a_code(app: TestApp) {
        register_resources(&app).await;
        register_client(&app, "web", &["authorization_code"], &[ORDERS]).await;
        let mut browser = Browser::new(&app, DESKTOP, "alice");
        let back = code(&mut browser, "web", &[("scope", "openid"), ("resource", BILLING)]).await;
        assert_eq!(param(&back, "error").as_deref(), Some("invalid_target"), "{back}");
        assert!(param(&back, "code").is_none());
    }

    async fn the_flow_grant_takes_a_resource_and_its_refresh_tokens_stay_bound(app: TestApp) {
        register_resources(&app).await;
        const FLOW_API: &str = "https://flow-api.example.com";
        app.state.oauth.tokens.resources().create(NewResource {
            identifier: FLOW_API.into(), display_name: None, scopes: vec!["api".into()],
        }, app.state.clock.now()).await.unwrap();
        let auth = crate::mini_program::client(&app, "front", &["flow", "refresh_token"]).await;
        let allow = |resources: &[&str]| wxauth::oauth::ClientChanges {
            resources: Some(resources.iter().map(|r| r.to_string()).collect()),
            ..Default::default()
        };
        app.state.clients.update("front", allow(&[FLOW_API])).await.unwrap();
        let alice = crate::mini_program::sign_in(&app, "alice").await;
        let form = |resource: &str| vec![
            ("grant_type", "flow".to_string()),
            ("appId", wxauth::simulator::demo::MINI_PROGRAM_APPID.to_string()),
            ("openId", alice["openId"].as_str().unwrap().to_string()),
            ("unionId", alice["unionId"].as_str().unwrap().to_string()),
            ("ticket", alice["ticket"].as_str().unwrap().to_string()),
            ("resource", resource.to_string()),
        ];
        let (status, body) = crate::mini_program::token(&app, &auth, &form(ORDERS)).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_target"), "not allowed: {body}");
        let (status, body) = crate::mini_program::token(&app, &auth, &form(FLOW_API)).await;
        assert_eq!(status, 200, "{body}");
        let access = claims(body["access_token"].as_str().unwrap());
        assert_eq!((access["aud"].as_str(), access["scope"].as_str()), (Some(FLOW_API), Some("api")));

        // Refreshes stay with the bound resource, even once the client may have another.
        app.state.clients.update("front", allow(&[FLOW_API, ORDERS])).await.unwrap();
        let refresh = body["refresh_token"].as_str().unwrap().to_owned();
        let (status, body) = crate::mini_program::token(&app, &auth, &[
            ("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("resource", ORDERS),
        ]).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_target"), "{body}");
        let (status, body) = crate::mini_program::token(&app, &auth, &[
            ("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()),
        ]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], FLOW_API);
    }

    async fn the_resource_crate_refuses_a_token_for_another_api(app: TestApp) {
        register_resources(&app).await;
        register_client(&app, "svc", &["client_credentials"], &[ORDERS]).await;
        let (_, body) = client_credentials(&app, "svc", &[("resource", ORDERS)]).await;
        let token = body["access_token"].as_str().unwrap().to_owned();

        // The verifier configured for billing refuses it; the one for orders accepts it; the
        // default one (the issuer's audience) refuses it too.
        let for_billing = Verifier::builder(&app.base).audience(BILLING).build().unwrap();
        assert!(matches!(for_billing.verify(&token).await, Err(VerifyError::WrongAudience)));
        let for_orders = Verifier::builder(&app.base).audience(ORDERS).build().unwrap();
        assert_eq!(for_orders.verify(&token).await.unwrap().claims.client_id, "svc");
        let default = Verifier::builder(&app.base).build().unwrap();
        assert!(matches!(default.verify(&token).await, Err(VerifyError::WrongAudience)));

        // The same through the axum extractor, as an API serves it: 401 for billing's API.
        async fn me(Bearer(claims): Bearer) -> String {
            claims.client_id
        }
        for (verifier, expected) in [(for_billing, 401), (for_orders, 200)] {
            let api = Router::new().route("/me", get(me)).with_state(verifier);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move { axum::serve(listener, api).await });
            let response = app.http.get(format!("http://{addr}/me")).bearer_auth(&token).send().await.unwrap();
            assert_eq!(response.status().as_u16(), expected);
            if expected == 401 {
                let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
                assert!(challenge.contains("invalid_token"), "{challenge}");
            }
            server.abort();
        }
    }
}

// ---- administration ----------------------------------------------------------------------------

fn with_admin_token() -> Options {
    Options {
        env: vec![("WXAUTH_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned())],
        ..Options::default()
    }
}

/// A path segment for an identifier.
fn encoded(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

backend_tests! {
    options: with_admin_token();

    async fn resources_are_managed_through_the_admin_api(app: TestApp) {
        let token = Some(ADMIN_TOKEN);
        let orders = format!("/resources/{}", encoded(ORDERS));

        // No token and a wrong token: 401 alike, nothing written.
        let create = json!({"id": ORDERS, "name": "Orders", "scopes": ["orders:read", "orders:write"]});
        for bearer in [None, Some("wrong-token")] {
            let (status, _) = admin(&app, bearer, Method::POST, "/resources", Some(create.clone())).await;
            assert_eq!(status, 401);
            let (status, _) = admin(&app, bearer, Method::GET, "/resources", None).await;
            assert_eq!(status, 401);
        }
        assert_eq!(admin(&app, token, Method::GET, &orders, None).await.0, 404);

        let (status, created) = admin(&app, token, Method::POST, "/resources", Some(create.clone())).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["id"], ORDERS);
        assert_eq!(created["scopes"], json!(["orders:read", "orders:write"]));
        assert_eq!(admin(&app, token, Method::POST, "/resources", Some(create)).await.0, 409);

        // Refused values name their field.
        for (body, field) in [
            (json!({"id": "orders", "scopes": ["a"]}), "identifier"),
            (json!({"id": "https://x.example/#frag", "scopes": ["a"]}), "identifier"),
            (json!({"id": "https://x.example", "scopes": []}), "scopes"),
            (json!({"id": "https://x.example", "scopes": ["a b"]}), "scopes"),
            (json!({"id": "https://x.example", "scopes": ["a"], "name": ""}), "display_name"),
        ] {
            let (status, refused) = admin(&app, token, Method::POST, "/resources", Some(body.clone())).await;
            assert_eq!((status, refused["field"].as_str()), (400, Some(field)), "{body}: {refused}");
        }

        let (status, shown) = admin(&app, token, Method::GET, &orders, None).await;
        assert_eq!((status, &shown["name"]), (200, &json!("Orders")), "{shown}");
        let (status, changed) = admin(&app, token, Method::PATCH, &orders, Some(json!({"scopes": ["orders:read"], "name": null}))).await;
        assert_eq!(status, 200, "{changed}");
        assert_eq!((&changed["scopes"], &changed["name"]), (&json!(["orders:read"]), &Value::Null));
        let (_, listed) = admin(&app, token, Method::GET, "/resources", None).await;
        assert_eq!(listed["resources"].as_array().unwrap().len(), 1, "{listed}");

        // A client may be allowed registered resources only.
        let (status, refused) = admin(&app, token, Method::POST, "/clients", Some(json!({
            "client_id": "svc", "grant_types": ["client_credentials"], "scopes": ["orders:read"],
            "resources": ["https://unknown.example.com"],
        }))).await;
        assert_eq!((status, refused["field"].as_str()), (400, Some("resources")), "{refused}");
        let (status, client) = admin(&app, token, Method::POST, "/clients", Some(json!({
            "client_id": "svc", "grant_types": ["client_credentials"], "scopes": ["orders:read"],
            "resources": [ORDERS],
        }))).await;
        assert_eq!(status, 201, "{client}");
        assert_eq!(client["resources"], json!([ORDERS]));
        let secret = client["client_secret"].as_str().unwrap().to_owned();
        let (status, body) = exchange(&app, Some(&basic("svc", &secret)), &[
            ("grant_type", "client_credentials"), ("resource", ORDERS),
        ]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], ORDERS);

        // Removal waits until no client is allowed it.
        assert_eq!(admin(&app, token, Method::DELETE, &orders, None).await.0, 409);
        let (status, _) = admin(&app, token, Method::PATCH, "/clients/svc", Some(json!({"resources": []}))).await;
        assert_eq!(status, 200);
        let (status, body) = exchange(&app, Some(&basic("svc", &secret)), &[
            ("grant_type", "client_credentials"), ("resource", ORDERS),
        ]).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_target"), "no longer allowed: {body}");
        assert_eq!(admin(&app, token, Method::DELETE, &orders, None).await.0, 204);
        assert_eq!(admin(&app, token, Method::GET, &orders, None).await.0, 404);
        assert_eq!(admin(&app, token, Method::DELETE, &orders, None).await.0, 404);

        // Every change is audited with the actor.
        let (_, events) = admin(&app, token, Method::GET, "/audit?kind=resource_changed", None).await;
        let events = events["events"].as_array().unwrap().clone();
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(events.iter().all(|e| e["actor"] == "admin-token"), "{events:?}");
    }
}

// ---- the command line ----------------------------------------------------------------------------

fn wxauth(dir: &TempDir, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wxauth"))
        .args(args)
        .current_dir(&dir.0)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("USER", "operator")
        .env("WXAUTH_MASTER_KEY", "ab".repeat(32))
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.0.join("cli.db").display()),
        )
        .output()
        .expect("run wxauth")
}

fn out(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn err(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn resources_are_managed_from_the_command_line() {
    let dir = TempDir::new();
    assert!(wxauth(&dir, &["migrate"]).status.success());

    let added = wxauth(
        &dir,
        &[
            "resource",
            "add",
            "--id",
            ORDERS,
            "--scopes",
            "orders:read,orders:write",
            "--name",
            "Orders",
        ],
    );
    assert!(added.status.success(), "{}", err(&added));
    assert!(out(&added).contains("orders:read,orders:write"));
    let list = out(&wxauth(&dir, &["resource", "list"]));
    assert_eq!(
        list,
        format!("{ORDERS}\torders:read,orders:write\tOrders\n")
    );

    // Refusals: one line naming the option.
    for (args, says) in [
        (
            vec!["resource", "add", "--id", ORDERS, "--scopes", "a"],
            "already exists",
        ),
        (
            vec!["resource", "add", "--id", "orders", "--scopes", "a"],
            "--id:",
        ),
        (
            vec![
                "resource",
                "add",
                "--id",
                "https://x.example/#f",
                "--scopes",
                "a",
            ],
            "--id:",
        ),
        (
            vec!["resource", "show", "https://nothing.example"],
            "no resource",
        ),
        (
            vec![
                "client",
                "create",
                "--client-id",
                "svc",
                "--grant-types",
                "client_credentials",
                "--scopes",
                "orders:read",
                "--resource",
                "https://nothing.example",
            ],
            "--resource:",
        ),
    ] {
        let refused = wxauth(&dir, &args);
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        assert!(err(&refused).contains(says), "{args:?}: {}", err(&refused));
        assert_eq!(err(&refused).lines().count(), 1, "{}", err(&refused));
    }

    let created = wxauth(
        &dir,
        &[
            "client",
            "create",
            "--client-id",
            "svc",
            "--grant-types",
            "client_credentials",
            "--scopes",
            "orders:read",
            "--resource",
            ORDERS,
        ],
    );
    assert!(created.status.success(), "{}", err(&created));
    assert!(
        out(&wxauth(&dir, &["client", "show", "svc"]))
            .contains(&format!("resources:         {ORDERS}"))
    );

    let removal = wxauth(&dir, &["resource", "remove", ORDERS]);
    assert_eq!(removal.status.code(), Some(1));
    assert!(err(&removal).contains("svc"), "{}", err(&removal));
    assert!(
        wxauth(&dir, &["client", "update", "svc", "--clear-resources"])
            .status
            .success()
    );
    assert!(!out(&wxauth(&dir, &["client", "show", "svc"])).contains("resources:"));
    let updated = wxauth(
        &dir,
        &[
            "resource",
            "update",
            ORDERS,
            "--scopes",
            "orders:read",
            "--clear-name",
        ],
    );
    assert!(updated.status.success(), "{}", err(&updated));
    assert!(out(&updated).contains("name:   -"));
    assert!(
        wxauth(&dir, &["resource", "remove", ORDERS])
            .status
            .success()
    );
    assert_eq!(out(&wxauth(&dir, &["resource", "list"])), "");

    let trail = out(&wxauth(&dir, &["audit", "--kind", "resource_changed"]));
    assert_eq!(trail.lines().count(), 3, "{trail}");
    assert!(trail.lines().all(|l| l.contains("cli:operator")), "{trail}");
}
