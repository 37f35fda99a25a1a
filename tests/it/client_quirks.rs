//! What real clients send that the RFCs did not quite foresee (issue 16 §6): Basic credentials
//! without form-encoding (`curl -u`, requests' `HTTPBasicAuth`), a `Content-Type` in mixed case,
//! and the seed's front ends that read the seed's extra user fields in the token response.

use base64::Engine;
use serde_json::{Value, json};
use wxauth::oauth::{FlowTicketPolicy, NewClient};
use wxauth::secret::Secret;

use crate::backend_tests;
use crate::harness::{Backend, TestApp};

/// A secret with `+` (a space when form-decoded) and `%2B`-looking text.
const PLUS_SECRET: &str = "plus+secret+0123456789%2Bx";
use crate::harness::{SEED_APPID as APPID, SEED_OPENID as OPENID, SEED_UNIONID as UNIONID};

fn basic_raw(id: &str, secret: &str) -> String {
    let pair = format!("{id}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// RFC 6749 §2.3.1: each part form-url-encoded before Basic.
fn basic_encoded(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    basic_raw(&enc(id), &enc(secret))
}

async fn service_client(app: &TestApp, id: &str, secret: &str) {
    app.state
        .clients
        .create(NewClient {
            client_id: id.into(),
            secret: Some(Secret::new(secret)),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["api".into()],
            ..NewClient::default()
        })
        .await
        .unwrap();
}

async fn token(app: &TestApp, authorization: &str) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .header("authorization", authorization)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_with_plus_works_sent_as_curl_and_as_rfc_6749() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    service_client(&app, "svc", PLUS_SECRET).await;
    // `curl -u svc:SECRET` / requests' HTTPBasicAuth: not form-encoded.
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("svc", Some(PLUS_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "sent raw: {body}");
    assert!(body["access_token"].is_string());
    // RFC 6749 §2.3.1: form-encoded.
    let (status, body) = token(&app, &basic_encoded("svc", PLUS_SECRET)).await;
    assert_eq!(status, 200, "sent encoded: {body}");
    // client_secret_post decodes the form as always.
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "svc"),
            ("client_secret", PLUS_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_gets_one_answer_and_both_tries_count_against_the_throttle() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    service_client(&app, "svc", PLUS_SECRET).await;
    service_client(&app, "other", PLUS_SECRET).await;
    // The same answer whether one try was made or two, and whatever the secret looks like.
    let (plain_status, plain) = token(&app, &basic_raw("other", "wrong-secret-0123456789")).await;
    let (plus_status, plus) = token(&app, &basic_raw("other", "wrong+secret+0123456789")).await;
    assert_eq!((plain_status, plus_status), (401, 401));
    assert_eq!(plain, plus);
    assert_eq!(plain["error"], "invalid_client");

    // Five failures are free and the sixth blocks; a wrong secret with `+` is tried twice
    // (decoded, then as sent), so the fourth request is already refused.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            token(&app, &basic_raw("svc", "wrong+secret+0123456789"))
                .await
                .0,
        );
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    // The right secret from this address waits out the block too.
    assert_eq!(token(&app, &basic_raw("svc", PLUS_SECRET)).await.0, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_types_are_case_insensitive() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    service_client(&app, "svc", PLUS_SECRET).await;
    let post = |path: &str, content_type: &'static str, body: String| {
        app.http
            .post(app.url(path))
            .basic_auth("svc", Some(PLUS_SECRET))
            .header("content-type", content_type)
            .body(body)
    };
    let response = post(
        "/oauth/token",
        "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
        "grant_type=client_credentials".into(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let response = post(
        "/oauth/revoke",
        "APPLICATION/x-www-form-urlencoded",
        format!("token={access}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    // Another media type is still refused.
    let response = post(
        "/oauth/token",
        "text/plain",
        "grant_type=client_credentials".into(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}

const SEED_FIELDS: [&str; 9] = [
    "tenant_id",
    "teacher_id",
    "student_id",
    "real_name",
    "role_name",
    "license",
    "user_id",
    "role_id",
    "dept_id",
];

backend_tests! {
    async fn the_seed_fields_come_only_with_the_flag(app: TestApp) {
        crate::harness::seed_identity(&app).await;
        for (id, seed_fields) in [("legacy", true), ("modern", false)] {
            app.state.clients.create(NewClient {
                client_id: id.into(),
                secret: Some(Secret::new(PLUS_SECRET)),
                grant_types: vec!["flow".into(), "client_credentials".into()],
                scopes: vec!["flow".into()],
                flow_ticket: FlowTicketPolicy::Optional,
                seed_fields,
                ..NewClient::default()
            }).await.unwrap();
        }
        let seed_request = |id: &'static str| {
            let url = app.url(&format!(
                "/oauth/token?unionId={UNIONID}&grant_type=flow&scope=flow&appId={APPID}&openId={OPENID}"
            ));
            let request = app.http.post(url).basic_auth(id, Some(PLUS_SECRET));
            async move {
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.json::<Value>().await.unwrap()
            }
        };
        let legacy = seed_request("legacy").await;
        for field in SEED_FIELDS {
            let expected = if field == "license" { json!("powered by xiaozao") } else { json!("") };
            assert_eq!(legacy[field], expected, "{field}: {legacy}");
        }
        // The seed's other fields are there as always.
        assert!(legacy["flow_user_id"].is_string() && legacy["user_name"] == UNIONID, "{legacy}");
        let modern = seed_request("modern").await;
        for field in SEED_FIELDS {
            assert!(modern.get(field).is_none(), "{field} without --seed-fields: {modern}");
        }
        // A token about the client itself has no user fields at all.
        let (status, own) = token(&app, &basic_raw("legacy", PLUS_SECRET)).await;
        assert_eq!(status, 200, "{own}");
        assert!(own.get("tenant_id").is_none(), "{own}");
        // The flag is stored and can be changed.
        let changed = app.state.clients.update("modern", wxauth::oauth::ClientChanges {
            seed_fields: Some(true),
            ..Default::default()
        }).await.unwrap();
        assert!(changed.seed_fields);
        assert_eq!(seed_request("modern").await["tenant_id"], "");
    }
}
