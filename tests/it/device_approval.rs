//! The Mini Program approves sign-ins elsewhere (issue 18 §4), over HTTP against the simulator:
//! a TV starts the device flow (RFC 8628); its verification page shows the Mini Program code
//! `wxa/getwxacodeunlimit` drew for the user code (cached per user code); the simulator "scans"
//! it and gives the scene; the Mini Program (with its session) asks what the device wants and
//! approves or denies; the TV's poll then gets tokens for that user (with `oa_subscribed` under
//! `wechat_follow`), or `access_denied`. Then what must be refused: an unknown session, guessed
//! user codes (one answer, then 429), the same code approved by two people at the same instant,
//! and WeChat refusing to draw. The JS helper does the Mini Program's part under Node, and
//! headless Chromium screenshots the page with the code.

use std::path::PathBuf;
use std::sync::Arc;

use fantoccini::Locator;
use serde_json::{Value, json};
use tokio::sync::Barrier;
use wxauth::oauth::{FlowTicketPolicy, NewClient};
use wxauth::secret::Secret;
use wxauth::simulator::demo;
use wxauth::simulator::followers::SimQrScene;

use crate::backend_tests;
use crate::browser::{Chromedriver, Chromium};
use crate::h5::{NEXT, walk};
use crate::harness::{Backend, Options, TestApp};
use crate::oidc::{DESKTOP, exchange, verify_id_token};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const TV: &str = "tv";
const TV_NAME: &str = "客厅电视 Living-room TV";
const MP: &str = demo::MINI_PROGRAM_APPID;
const PAGE: &str = "pages/device/approve";
const MP_CLIENT: &str = "mp-approver";
const MP_SECRET: &str = "a-long-client-secret-for-the-mini-program";
const TRIALS: usize = 10;

fn options(extra: &[(&str, &str)]) -> Options {
    let mut env = vec![("WXAUTH_DEVICE_MINI_PROGRAM".to_owned(), MP.to_owned())];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Options {
        env,
        ..Options::default()
    }
}

/// The public TV client, and the Mini Program's own client (for the JS helper's login).
async fn clients(app: &TestApp) {
    for new in [
        NewClient {
            client_id: TV.into(),
            public: true,
            grant_types: vec![DEVICE_GRANT.into()],
            scopes: vec!["openid".into(), "profile".into(), "wechat_follow".into()],
            display_name: Some(TV_NAME.into()),
            access_token_ttl: 600,
            refresh_token_ttl: 3600,
            flow_ticket: FlowTicketPolicy::Required,
            ..NewClient::default()
        },
        NewClient {
            client_id: MP_CLIENT.into(),
            secret: Some(Secret::new(MP_SECRET)),
            grant_types: vec!["flow".into()],
            scopes: vec!["flow".into()],
            access_token_ttl: 600,
            refresh_token_ttl: 3600,
            flow_ticket: FlowTicketPolicy::Required,
            ..NewClient::default()
        },
    ] {
        app.state.clients.create(new).await.unwrap();
    }
}

/// A device authorization for the TV.
async fn start_device(app: &TestApp, scope: &str) -> Value {
    let response = app
        .http
        .post(app.url("/oauth/device_authorization"))
        .form(&[("client_id", TV), ("scope", scope)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn poll(app: &TestApp, device: &Value) -> (u16, Value) {
    exchange(
        app,
        None,
        &[
            ("grant_type", DEVICE_GRANT),
            ("client_id", TV),
            ("device_code", device["device_code"].as_str().unwrap()),
        ],
    )
    .await
}

/// `user` signs in to the Mini Program: its session id.
async fn mini_program_session(app: &TestApp, user: &str) -> String {
    let code = app.sim.mint_js_code(MP, user).unwrap();
    let response = app
        .http
        .post(app.url("/api/wechat/ma/session"))
        .json(&json!({ "appId": MP, "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["sessionId"].as_str().unwrap().to_owned()
}

/// POST the Mini Program's request to `path`.
async fn ma(app: &TestApp, path: &str, body: Value) -> (u16, Value, Option<String>) {
    let response = app
        .http
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, response.json().await.unwrap_or(Value::Null), retry)
}

async fn answer(app: &TestApp, session: &str, code: &str, decision: &str) -> (u16, Value) {
    let (status, body, _) = ma(
        app,
        "/api/wechat/ma/device/approve",
        json!({ "sessionId": session, "userCode": code, "decision": decision }),
    )
    .await;
    (status, body)
}

/// The verification page's Mini Program code for `code`: status, content type, bytes.
async fn code_image(app: &TestApp, code: &str) -> (u16, String, Vec<u8>) {
    let response = app
        .http
        .get(app.url("/device/wxacode"))
        .query(&[("user_code", code)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.bytes().await.unwrap().to_vec())
}

/// What the simulator's WeChat opens for a scanned image.
async fn scan(app: &TestApp, image: &[u8]) -> Value {
    let response = app
        .http
        .post(format!("{}/__sim/wxacode/scan", app.sim_base))
        .body(image.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

backend_tests! {
    options: options(&[]);

    async fn the_mini_program_approves_a_device_and_the_device_gets_the_users_tokens(app: TestApp) {
        clients(&app).await;
        let device = start_device(&app, "openid profile").await;
        let code = device["user_code"].as_str().unwrap();

        // The page the device points at shows the Mini Program code.
        let page = app.http.get(device["verification_uri_complete"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("id=\"wxacode\""), "{html}");
        assert!(html.contains(&format!("wxacode?user_code={code}\"")), "{html}");
        assert!(html.contains(&format!("device?user_code={code}\"")), "the browser sign-in stays offered");

        let (status, kind, image) = code_image(&app, code).await;
        assert_eq!((status, kind.as_str()), (200, "image/png"));
        let opened = scan(&app, &image).await;
        assert_eq!(opened, json!({ "appid": MP, "page": PAGE, "scene": code.replace('-', "") }));
        // Drawn once per user code.
        code_image(&app, code).await;
        assert_eq!(app.sim.calls("/wxa/getwxacodeunlimit"), 1);

        // The Mini Program page: what asks, then approve, as alice.
        let session = mini_program_session(&app, "alice").await;
        let scene = opened["scene"].as_str().unwrap();
        let (status, asked, _) = ma(&app, "/api/wechat/ma/device", json!({ "sessionId": session, "userCode": scene })).await;
        assert_eq!(status, 200, "{asked}");
        assert_eq!((asked["clientId"].as_str(), asked["clientName"].as_str()), (Some(TV), Some(TV_NAME)));
        assert_eq!(asked["scope"], "openid profile");
        assert_eq!(poll(&app, &device).await.1["error"], "authorization_pending");
        let (status, body) = answer(&app, &session, scene, "approve").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["clientId"], TV);

        // The device's poll: alice's tokens (after the polling interval).
        app.clock.advance(6);
        let (status, tokens) = poll(&app, &device).await;
        assert_eq!(status, 200, "{tokens}");
        let claims = verify_id_token(&app, tokens["id_token"].as_str().unwrap(), TV).await;
        let alice = app.state.users.find_identity(MP, &app.sim.openid(MP, "alice")).await.unwrap().unwrap();
        assert_eq!(claims["sub"], alice.account_id.unwrap().to_string());
        assert!(tokens["scope"] == "openid profile" || tokens["scope"] == "profile openid", "{tokens}");

        // The code is spent: a second answer gets the one refusal.
        let (status, again) = answer(&app, &session, scene, "approve").await;
        assert_eq!(status, 400, "{again}");
        let (status, _, _) = code_image(&app, code).await;
        assert_eq!(status, 400, "no code for a spent user code");
    }

    async fn a_denial_in_the_mini_program_is_access_denied_on_the_device(app: TestApp) {
        clients(&app).await;
        let device = start_device(&app, "openid").await;
        let session = mini_program_session(&app, "bob").await;
        let (status, _) = answer(&app, &session, device["user_code"].as_str().unwrap(), "deny").await;
        assert_eq!(status, 200);
        let (status, body) = poll(&app, &device).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("access_denied")));
    }

    async fn only_a_live_mini_program_session_answers(app: TestApp) {
        clients(&app).await;
        let device = start_device(&app, "openid").await;
        let code = device["user_code"].as_str().unwrap();
        for session in ["", "a-session-id-nobody-was-given"] {
            let (status, body) = answer(&app, session, code, "approve").await;
            assert_eq!(status, 400, "{body}");
        }
        let (status, body) = answer(&app, "x", code, "maybe").await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(poll(&app, &device).await.1["error"], "authorization_pending");
        // The code is still there for the rightful person.
        let session = mini_program_session(&app, "alice").await;
        assert_eq!(answer(&app, &session, code, "approve").await.0, 200);
    }

    async fn wechat_refusing_to_draw_the_code_is_a_503_not_a_broken_page(app: TestApp) {
        clients(&app).await;
        let device = start_device(&app, "openid").await;
        let code = device["user_code"].as_str().unwrap();
        // The page is not in the Mini Program's released version: WeChat answers 41030.
        app.sim.set_mini_program_pages(MP, vec!["pages/index/index".into()]);
        let response = app.http.get(app.url("/device/wxacode")).query(&[("user_code", code)]).send().await.unwrap();
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        // Released: drawn.
        app.sim.set_mini_program_pages(MP, vec![PAGE.into()]);
        assert_eq!(code_image(&app, code).await.0, 200);
    }
}

backend_tests! {
    options: options(&[("WXAUTH_LIMIT_DEVICE_USER_CODE", "1000/min")]);

    async fn one_of_two_people_approving_one_code_at_once_wins(app: TestApp) {
        clients(&app).await;
        let alice = mini_program_session(&app, "alice").await;
        let bob = mini_program_session(&app, "bob").await;
        for trial in 0..TRIALS {
            let device = start_device(&app, "openid").await;
            let code = device["user_code"].as_str().unwrap().to_owned();
            let barrier = Arc::new(Barrier::new(2));
            let mut tasks = Vec::new();
            for session in [alice.clone(), bob.clone()] {
                let (http, url, barrier, code) = (app.http.clone(), app.url("/api/wechat/ma/device/approve"), barrier.clone(), code.clone());
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    http.post(url)
                        .json(&json!({ "sessionId": session, "userCode": code, "decision": "approve" }))
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .as_u16()
                }));
            }
            let mut statuses = Vec::new();
            for task in tasks {
                statuses.push(task.await.unwrap());
            }
            statuses.sort_unstable();
            assert_eq!(statuses, [200, 400], "trial {trial}");
        }
    }
}

backend_tests! {
    options: options(&[("WXAUTH_LIMIT_DEVICE_USER_CODE", "4/min")]);

    async fn guessed_user_codes_get_one_answer_then_429(app: TestApp) {
        clients(&app).await;
        start_device(&app, "openid").await;
        let session = mini_program_session(&app, "alice").await;
        let mut refusals = Vec::new();
        for guess in ["BCDF-GHJK", "ZZZZ-ZZZZ", "not a code", "BCDF-GHJL"] {
            let (status, body) = answer(&app, &session, guess, "approve").await;
            assert_eq!(status, 400, "{body}");
            refusals.push(body);
        }
        assert!(refusals.windows(2).all(|w| w[0] == w[1]), "one answer for every refusal: {refusals:?}");
        let (status, body, retry) = ma(
            &app,
            "/api/wechat/ma/device/approve",
            json!({ "sessionId": session, "userCode": "CDFG-HJKL", "decision": "approve" }),
        )
        .await;
        assert_eq!(status, 429, "{body}");
        assert!(retry.is_some());
        // The image counts as a try too.
        assert_eq!(code_image(&app, "DFGH-JKLM").await.0, 429);
    }
}

backend_tests! {
    async fn without_a_mini_program_the_verification_page_is_the_browser_sign_in(app: TestApp) {
        clients(&app).await;
        let device = start_device(&app, "openid").await;
        let response = app.http.get(device["verification_uri_complete"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(response.status(), 302);
        assert!(response.headers()["location"].to_str().unwrap().starts_with("/oauth/device?user_code="));
        let session = mini_program_session(&app, "alice").await;
        let (status, body) = answer(&app, &session, device["user_code"].as_str().unwrap(), "approve").await;
        assert_eq!(status, 503, "{body}");
    }
}

/// The follower claim end to end: alice follows the base account (seen at her H5 sign-in), then
/// approves a TV in the Mini Program; the TV asked `wechat_follow`, and both its ID token and
/// userinfo say `oa_subscribed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_asking_wechat_follow_learns_that_the_user_follows() {
    let app = TestApp::spawn_with(Backend::Sqlite, options(&[]))
        .await
        .unwrap();
    clients(&app).await;
    app.push_component_ticket().await;
    let code = app
        .sim
        .authorize_component(demo::COMPONENT_APPID, demo::BASE_ACCOUNT_APPID)
        .unwrap();
    let component = wxauth::wechat::AppId::parse(demo::COMPONENT_APPID).unwrap();
    app.state
        .wechat
        .query_auth(&component, &code)
        .await
        .unwrap();
    app.sim
        .set_follower(demo::BASE_ACCOUNT_APPID, "alice", Some(SimQrScene::Id(9)));
    walk(&app, demo::ENTRY_ACCOUNT_APPID, NEXT, "alice").await;

    for (scope, expected) in [
        ("openid wechat_follow", json!(true)),
        ("openid", Value::Null),
    ] {
        let device = start_device(&app, scope).await;
        let session = mini_program_session(&app, "alice").await;
        let (status, _) = answer(
            &app,
            &session,
            device["user_code"].as_str().unwrap(),
            "approve",
        )
        .await;
        assert_eq!(status, 200);
        let (status, tokens) = poll(&app, &device).await;
        assert_eq!(status, 200, "{tokens}");
        let claims = verify_id_token(&app, tokens["id_token"].as_str().unwrap(), TV).await;
        assert_eq!(claims["oa_subscribed"], expected, "{scope}: {claims}");
        let info: Value = app
            .http
            .get(app.url("/oauth/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["oa_subscribed"], expected, "{scope}: {info}");
    }
}

/// The Mini Program helper's `describeDevice` and `approveDevice`, run under Node as a page
/// would run them, against the simulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_helper_approves_a_device() {
    let app = TestApp::spawn_with(Backend::Sqlite, options(&[]))
        .await
        .unwrap();
    clients(&app).await;
    let device = start_device(&app, "openid").await;
    let (_, _, image) = code_image(&app, device["user_code"].as_str().unwrap()).await;
    let scene = scan(&app, &image).await["scene"]
        .as_str()
        .unwrap()
        .to_owned();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/js/miniprogram_device.cjs"
    );
    let output = tokio::process::Command::new("node")
        .args([
            script,
            &app.base,
            &app.sim_base,
            MP,
            MP_CLIENT,
            MP_SECRET,
            "alice",
            &scene,
        ])
        .output()
        .await
        .expect("node is installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(seen["asked"]["clientName"], TV_NAME);
    assert_eq!(seen["approved"]["decision"], "approve");
    assert_eq!(
        seen["again"],
        json!({ "status": 400, "error": "invalid_request" })
    );
    app.clock.advance(6);
    let (status, tokens) = poll(&app, &device).await;
    assert_eq!(status, 200, "{tokens}");
}

/// The page a desktop browser opens from the device's link: the code, the Mini Program code
/// (loaded: it has a natural size), and the way to sign in here instead.
async fn look(chromium: &Chromium, complete: &str, code: &str) -> Result<PathBuf, String> {
    chromium.goto(complete).await?;
    chromium.wait_for("#wxacode").await?;
    let shown = chromium.text_of("#user-code-shown").await?;
    if shown != code {
        return Err(format!("the page shows {shown:?}, not {code}"));
    }
    let mut width = None;
    for _ in 0..100 {
        width = chromium
            .execute(
                "return document.getElementById('wxacode').naturalWidth",
                Vec::new(),
            )
            .await
            .map_err(|e| e.to_string())?
            .as_u64()
            .filter(|w| *w > 0);
        if width.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if width.is_none() {
        return Err("the Mini Program code did not load".into());
    }
    chromium
        .find(Locator::Css("#sign-in-here"))
        .await
        .map_err(|e| format!("no browser sign-in link: {e}"))?;
    chromium.try_screenshot("device-wxacode.png").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verification_page_shows_the_mini_program_code() {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let app = TestApp::spawn_with(Backend::Sqlite, options(&[]))
        .await
        .unwrap();
    clients(&app).await;
    let device = start_device(&app, "openid").await;
    let chromium = driver
        .session(DESKTOP, (1000, 900))
        .language("zh-CN,zh,en")
        .open()
        .await;
    let outcome = look(
        &chromium,
        device["verification_uri_complete"].as_str().unwrap(),
        device["user_code"].as_str().unwrap(),
    )
    .await;
    let path = chromium.finish(outcome).await;
    assert!(path.is_file());
    assert_eq!(app.sim.calls("/wxa/getwxacodeunlimit"), 1);
}
