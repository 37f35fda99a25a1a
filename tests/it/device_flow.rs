//! The device authorization grant (RFC 8628), walked over HTTP: a device (the `oauth2` crate's
//! device flow, or plain requests) asks `/oauth/device_authorization` for codes and polls the
//! token endpoint, while a person opens `/device`, signs in with WeChat through the simulator,
//! confirms the user code and approves or denies on the consent page. Then what must be refused:
//! each polling answer of RFC 8628 §3.5, expiry (on the test clock), user-code guessing (per IP
//! and globally), the same user code approved from two browsers at the same instant, and the
//! same device code polled twice at once. One headless Chromium walk screenshots the pages.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    ClientId, DeviceAuthorizationUrl, Scope, StandardDeviceAuthorizationResponse, TokenResponse,
    TokenUrl,
};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::Value;
use tokio::sync::Barrier;
use wxauth::oauth::{FlowTicketPolicy, NewClient};
use wxauth::secret::Secret;
use wxauth::simulator::demo;

use crate::backend_tests;
use crate::browser::{Chromedriver, Chromium};
use crate::harness::{Backend, Options, TestApp};
use crate::oauth::{basic, http};
use crate::oidc::{Browser, DESKTOP, Step, account_of, exchange, hidden_fields, verify_id_token};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const TV: &str = "tv";
const TV_NAME: &str = "客厅电视 Living-room TV";
const BOX: &str = "set-top-box";
const SECRET: &str = "a-long-client-secret-for-device-tests";
const WECHAT_UA: &str = "Mozilla/5.0 (iPhone) AppleWebKit Mobile MicroMessenger/8.0.49";
const TRIALS: usize = 20;
/// What the page says to every refused user code.
const REFUSED: &str = "这个代码无效、已过期或已经用过";

fn client(id: &str, secret: Option<&str>, grants: &[&str], name: Option<&str>) -> NewClient {
    NewClient {
        client_id: id.into(),
        secret: secret.map(Secret::new),
        public: secret.is_none(),
        grant_types: grants.iter().map(|g| g.to_string()).collect(),
        scopes: vec!["openid".into(), "profile".into()],
        display_name: name.map(str::to_owned),
        access_token_ttl: 600,
        refresh_token_ttl: 3600,
        flow_ticket: FlowTicketPolicy::Required,
        ..NewClient::default()
    }
}

/// The public TV client (device grant and refresh), `tv`, alone.
pub(crate) async fn tv_client(app: &TestApp) {
    let tv = client(TV, None, &[DEVICE_GRANT, "refresh_token"], Some(TV_NAME));
    app.state.clients.create(tv).await.unwrap();
}

/// The public TV client (device grant and refresh) and a confidential set-top box.
async fn clients(app: &TestApp) {
    tv_client(app).await;
    for new in [
        client(BOX, Some(SECRET), &[DEVICE_GRANT], None),
        client("web", Some(SECRET), &["client_credentials"], None),
    ] {
        app.state.clients.create(new).await.unwrap();
    }
}

/// `POST /oauth/device_authorization`: status, body, and the Cache-Control header.
async fn start_raw(app: &TestApp, auth: Option<&str>, form: &[(&str, &str)]) -> (u16, Value) {
    let mut request = app
        .http
        .post(app.url("/oauth/device_authorization"))
        .form(form);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A device authorization for the TV.
pub(crate) async fn start(app: &TestApp, scope: &str) -> Value {
    let (status, body) = start_raw(app, None, &[("client_id", TV), ("scope", scope)]).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// One poll by the TV: status and `error` (or the tokens).
pub(crate) async fn poll(app: &TestApp, device: &Value) -> (u16, Value) {
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

fn error(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["error"].as_str())
}

/// Open `url` (the verification URI), signing in through the QR page if needed: the code form.
pub(crate) async fn code_form(browser: &mut Browser<'_>, url: &str) -> String {
    match browser.walk(url).await {
        Step::Page(200, page) if page.contains("name=\"user_code\"") => page,
        other => panic!("no code form at {url}: {other:?}"),
    }
}

/// POST the device form with `fields`.
async fn post(browser: &mut Browser<'_>, fields: &[(String, String)]) -> (u16, String) {
    let url = browser.app.url("/oauth/device");
    let response = browser
        .send(browser.app.http.post(&url).form(fields), &url)
        .await;
    let status = response.status().as_u16();
    if status == 429 {
        assert!(response.headers().contains_key("retry-after"));
    }
    (status, response.text().await.unwrap())
}

/// Submit `code` on the code form `page`.
pub(crate) async fn enter(browser: &mut Browser<'_>, page: &str, code: &str) -> (u16, String) {
    let mut fields: Vec<_> = hidden_fields(page)
        .into_iter()
        .filter(|(k, _)| k == "csrf_token")
        .collect();
    fields.push(("user_code".into(), code.into()));
    post(browser, &fields).await
}

/// Answer the consent page `page` with `decision`.
async fn decide(browser: &mut Browser<'_>, page: &str, decision: &str) -> (u16, String) {
    let mut fields = hidden_fields(page);
    fields.push(("decision".into(), decision.into()));
    post(browser, &fields).await
}

/// The one error paragraph of a code form.
fn error_shown(page: &str) -> &str {
    page.split("id=\"error\">")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_else(|| panic!("no error shown: {page}"))
}

/// A person signs in at `/device` with the QR page and confirms `device`'s code, answering
/// `decision`.
pub(crate) async fn person_answers(
    browser: &mut Browser<'_>,
    device: &Value,
    decision: &str,
) -> String {
    let form = code_form(browser, &browser.app.url("/device")).await;
    let code = device["user_code"].as_str().unwrap();
    let (status, consent) = enter(browser, &form, code).await;
    assert_eq!(status, 200, "{consent}");
    assert!(
        consent.contains(TV_NAME) && consent.contains(code),
        "{consent}"
    );
    let (status, done) = decide(browser, &consent, decision).await;
    assert_eq!(status, 200, "{done}");
    done
}

backend_tests! {
    async fn the_oauth2_crate_signs_in_a_device_while_a_person_approves_at_device(app: TestApp) {
        clients(&app).await;
        let meta: Value = app.http.get(app.url("/.well-known/openid-configuration"))
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(meta["device_authorization_endpoint"], app.url("/oauth/device_authorization"));
        assert!(meta["grant_types_supported"].as_array().unwrap().iter().any(|g| g == DEVICE_GRANT), "{meta}");

        let device = BasicClient::new(ClientId::new(TV.into()))
            .set_device_authorization_url(DeviceAuthorizationUrl::new(
                meta["device_authorization_endpoint"].as_str().unwrap().into()).unwrap())
            .set_token_uri(TokenUrl::new(meta["token_endpoint"].as_str().unwrap().into()).unwrap());
        let details: StandardDeviceAuthorizationResponse = device
            .exchange_device_code()
            .add_scope(Scope::new("openid".into()))
            .add_scope(Scope::new("profile".into()))
            .request_async(&http)
            .await
            .unwrap();
        let user_code = details.user_code().secret().clone();
        assert_eq!(user_code.len(), 9, "{user_code}");
        assert_eq!(&user_code[4..5], "-");
        assert!(user_code.chars().filter(|c| *c != '-').all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c)), "{user_code}");
        assert_eq!(details.verification_uri().as_str(), app.url("/device"));
        assert_eq!(details.interval(), Duration::from_secs(5));
        assert_eq!(details.expires_in(), Duration::from_secs(600));
        let complete = details.verification_uri_complete().unwrap().secret().clone();
        assert_eq!(complete, format!("{}?user_code={user_code}", app.url("/device")));

        // The device polls; each wait moves the test clock by the interval (no real waiting).
        let polls = AtomicUsize::new(0);
        let clock = app.clock.clone();
        let sleep = |wait: Duration| {
            polls.fetch_add(1, Ordering::SeqCst);
            clock.advance(wait.as_secs() as i64);
            tokio::time::sleep(Duration::from_millis(100))
        };
        let polling = device.exchange_device_access_token(&details).request_async(&http, sleep, None);

        let person = async {
            let mut browser = Browser::new(&app, DESKTOP, "alice");
            // Not signed in: /device sends the browser to WeChat's QR page, then back.
            let first = browser.send(app.http.get(&complete), &complete).await;
            assert_eq!(first.status(), 302);
            let next = first.headers()["location"].to_str().unwrap().to_owned();
            assert_eq!(next, format!("/oauth/device?user_code={user_code}"));
            let wechat = browser.send(app.http.get(app.url(&next)), &app.url(&next)).await;
            assert!(wechat.headers()["location"].to_str().unwrap().contains("/connect/qrconnect"));
            let form = code_form(&mut browser, &complete).await;
            // The link only fills the code in: the person still confirms it.
            assert!(form.contains(&format!("value=\"{user_code}\"")), "{form}");
            assert!(!form.contains(TV_NAME));
            let (status, consent) = enter(&mut browser, &form, &user_code).await;
            assert_eq!(status, 200, "{consent}");
            assert!(consent.contains(TV_NAME), "the client's display name: {consent}");
            assert!(consent.contains("Alice 爱丽丝") && consent.contains("data-scope=\"profile\""), "{consent}");
            let (status, done) = decide(&mut browser, &consent, "approve").await;
            assert_eq!(status, 200, "{done}");
            assert!(done.contains("设备已登录") && done.contains("Your device is signed in"), "{done}");
        };
        let (token, ()) = tokio::join!(polling, person);
        let token = token.expect("the crate gets tokens once the person approved");
        assert!(polls.load(Ordering::SeqCst) >= 1, "the device was told to wait at least once");
        assert!(token.refresh_token().is_some());

        let alice = account_of(&app, demo::WEBSITE_APPID, "alice").await;
        let info: Value = app.http.get(app.url("/oauth/userinfo"))
            .bearer_auth(token.access_token().secret())
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(info["sub"], alice.to_string());
        assert_eq!(info["name"], "Alice 爱丽丝");

        // The device code worked once.
        let again = exchange(&app, None, &[
            ("grant_type", DEVICE_GRANT), ("client_id", TV),
            ("device_code", details.device_code().secret()),
        ]).await;
        assert_eq!(error(&again), (400, Some("invalid_grant")), "{}", again.1);
    }

    async fn each_polling_answer_follows_rfc_8628(app: TestApp) {
        clients(&app).await;
        // Who may ask for a device code.
        let (status, body) = start_raw(&app, None, &[("client_id", "nobody")]).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
        let (status, body) = start_raw(&app, Some(&basic("web", SECRET)), &[]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")), "{body}");
        let (status, body) = start_raw(&app, None, &[("client_id", BOX)]).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "a confidential client must authenticate: {body}");
        let (status, body) = start_raw(&app, Some(&basic(BOX, SECRET)), &[("scope", "openid")]).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = start_raw(&app, None, &[("client_id", TV), ("scope", "admin")]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")), "{body}");

        let device = start(&app, "openid profile").await;
        assert_eq!(device["interval"], 5);
        assert_eq!(device["expires_in"], 600);
        assert_eq!(error(&poll(&app, &device).await), (400, Some("authorization_pending")));
        // Polling again at once: slow down (the interval grows to 10 s).
        assert_eq!(error(&poll(&app, &device).await), (400, Some("slow_down")));
        app.clock.advance(5);
        assert_eq!(error(&poll(&app, &device).await), (400, Some("slow_down")), "5 s is no longer enough (now 15 s)");
        app.clock.advance(15);
        assert_eq!(error(&poll(&app, &device).await), (400, Some("authorization_pending")));
        // Another client's device code, and one never issued.
        let other = exchange(&app, Some(&basic(BOX, SECRET)), &[
            ("grant_type", DEVICE_GRANT), ("device_code", device["device_code"].as_str().unwrap()),
        ]).await;
        assert_eq!(error(&other), (400, Some("invalid_grant")), "{}", other.1);
        let bogus = exchange(&app, None, &[
            ("grant_type", DEVICE_GRANT), ("client_id", TV), ("device_code", "not-a-device-code"),
        ]).await;
        assert_eq!(error(&bogus), (400, Some("invalid_grant")));
        let missing = exchange(&app, None, &[("grant_type", DEVICE_GRANT), ("client_id", TV)]).await;
        assert_eq!(error(&missing), (400, Some("invalid_request")));

        // The person denies: access_denied, and the code cannot be answered again.
        let mut browser = Browser::new(&app, DESKTOP, "alice");
        let done = person_answers(&mut browser, &device, "deny").await;
        assert!(done.contains("已拒绝") && done.contains("Access denied"), "{done}");
        app.clock.advance(20);
        assert_eq!(error(&poll(&app, &device).await), (400, Some("access_denied")));
        let form = code_form(&mut browser, &app.url("/device")).await;
        let (status, page) = enter(&mut browser, &form, device["user_code"].as_str().unwrap()).await;
        assert_eq!(status, 400);
        assert!(error_shown(&page).contains(REFUSED), "{page}");
        // Nor can a decision be sent for it straight away: the denial stands.
        let mut fields = hidden_fields(&form);
        fields.push(("user_code".into(), device["user_code"].as_str().unwrap().into()));
        fields.push(("decision".into(), "approve".into()));
        let (status, page) = post(&mut browser, &fields).await;
        assert_eq!(status, 400);
        assert!(error_shown(&page).contains(REFUSED), "{page}");
        app.clock.advance(20);
        assert_eq!(error(&poll(&app, &device).await), (400, Some("access_denied")));

        // Expiry, on the test clock: expired_token, and the page refuses the code.
        let late = start(&app, "openid").await;
        app.clock.advance(601);
        assert_eq!(error(&poll(&app, &late).await), (400, Some("expired_token")));
        let (status, page) = enter(&mut browser, &form, late["user_code"].as_str().unwrap()).await;
        assert_eq!(status, 400);
        assert!(error_shown(&page).contains(REFUSED), "{page}");

        // Approved (already signed in: no WeChat this time): tokens and an ID token, once.
        let approved = start(&app, "openid profile").await;
        assert_eq!(error(&poll(&app, &approved).await), (400, Some("authorization_pending")));
        person_answers(&mut browser, &approved, "approve").await;
        let (status, tokens) = poll(&app, &approved).await;
        assert_eq!(status, 200, "{tokens}");
        assert!(tokens["refresh_token"].is_string());
        let id = verify_id_token(&app, tokens["id_token"].as_str().unwrap(), TV).await;
        assert_eq!(id["sub"], account_of(&app, demo::WEBSITE_APPID, "alice").await.to_string());
        assert!(id["auth_time"].is_i64(), "{id}");
        assert_eq!(error(&poll(&app, &approved).await), (400, Some("invalid_grant")));
        // The refresh token works like any other.
        let (status, refreshed) = exchange(&app, None, &[
            ("grant_type", "refresh_token"), ("client_id", TV),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ]).await;
        assert_eq!(status, 200, "{refreshed}");
    }

    async fn inside_wechat_the_device_page_signs_in_with_the_official_account(app: TestApp) {
        clients(&app).await;
        // The base official account is authorised through the demo component.
        app.push_component_ticket().await;
        let device = start(&app, "openid").await;
        let mut browser = Browser::new(&app, WECHAT_UA, "bob");
        let url = app.url("/oauth/device");
        let first = browser.send(app.http.get(&url), &url).await;
        let wechat = first.headers()["location"].to_str().unwrap().to_owned();
        assert!(wechat.contains("/connect/oauth2/authorize") && wechat.contains("snsapi_userinfo"), "{wechat}");
        person_answers(&mut browser, &device, "approve").await;
        let (status, tokens) = poll(&app, &device).await;
        assert_eq!(status, 200, "{tokens}");
        let id = verify_id_token(&app, tokens["id_token"].as_str().unwrap(), TV).await;
        assert_eq!(id["sub"], account_of(&app, demo::BASE_ACCOUNT_APPID, "bob").await.to_string());
    }

    async fn forms_without_the_session_csrf_token_are_refused(app: TestApp) {
        clients(&app).await;
        let device = start(&app, "openid").await;
        let mut browser = Browser::new(&app, DESKTOP, "alice");
        let form = code_form(&mut browser, &app.url("/device")).await;
        let code = device["user_code"].as_str().unwrap();
        let forged = vec![("csrf_token".to_owned(), "forged".to_owned()), ("user_code".to_owned(), code.to_owned())];
        assert_eq!(post(&mut browser, &forged).await.0, 400);
        let (_, consent) = enter(&mut browser, &form, code).await;
        let mut forged = hidden_fields(&consent);
        for field in &mut forged {
            if field.0 == "csrf_token" {
                field.1 = "forged".into();
            }
        }
        forged.push(("decision".into(), "approve".into()));
        assert_eq!(post(&mut browser, &forged).await.0, 400);
        assert_eq!(error(&poll(&app, &device).await), (400, Some("authorization_pending")), "nothing was approved");
    }

    async fn the_janitor_sweeps_expired_device_authorizations(app: TestApp) {
        clients(&app).await;
        start(&app, "openid").await;
        app.clock.advance(601);
        start(&app, "openid").await;
        let rows = || entity::device_authorization::Entity::find().count(&app.state.db);
        assert_eq!(rows().await.unwrap(), 2);
        wxauth::janitor::sweep(&app.state.db, app.state.clock.now(), 180 * 86_400).await.unwrap();
        assert_eq!(rows().await.unwrap(), 1, "the expired one went, the live one stayed");
    }
}

backend_tests! {
    options: Options {
        // Alice's 2 answers, bob's 4 guesses and 1 guessed decision; the 8th try is refused
        // (every browser here comes from 127.0.0.1).
        env: vec![("WXAUTH_LIMIT_DEVICE_USER_CODE".into(), "7/h".into())],
        ..Options::default()
    };
    async fn guessing_user_codes_is_limited_per_address_and_every_failure_looks_alike(app: TestApp) {
        clients(&app).await;
        let device = start(&app, "openid").await;
        let code = device["user_code"].as_str().unwrap();
        let mut browser = Browser::new(&app, DESKTOP, "bob");
        let form = code_form(&mut browser, &app.url("/device")).await;
        let spent = start(&app, "openid").await;
        let mut other = Browser::new(&app, DESKTOP, "alice");
        person_answers(&mut other, &spent, "deny").await;

        // Malformed, unknown, spent: one answer.
        let mut shown = Vec::new();
        for guess in ["hello", "BCDF-GHJK", "ZZZZ-ZZZZ", spent["user_code"].as_str().unwrap()] {
            let (status, page) = enter(&mut browser, &form, guess).await;
            assert_eq!(status, 400, "{guess}: {page}");
            shown.push(error_shown(&page).to_owned());
        }
        assert!(shown.iter().all(|s| s == &shown[0] && s.contains(REFUSED)), "{shown:?}");
        // A decision with a guessed code counts too.
        let mut fields = hidden_fields(&form);
        fields.push(("user_code".into(), "BCDF-GHJL".into()));
        fields.push(("decision".into(), "approve".into()));
        assert_eq!(post(&mut browser, &fields).await.0, 400);
        // The eighth try from this address is refused before the code is looked at, even the
        // right one.
        let (status, page) = enter(&mut browser, &form, code).await;
        assert_eq!(status, 429, "{page}");
        assert!(!page.contains(TV_NAME));
        assert_eq!(error(&poll(&app, &device).await), (400, Some("authorization_pending")));
    }
}

backend_tests! {
    options: Options {
        env: vec![
            ("WXAUTH_LIMIT_DEVICE_USER_CODE".into(), "off".into()),
            ("WXAUTH_LIMIT_DEVICE_USER_CODE_GLOBAL".into(), "3/h".into()),
        ],
        ..Options::default()
    };
    async fn guessing_user_codes_is_limited_globally(app: TestApp) {
        clients(&app).await;
        let device = start(&app, "openid").await;
        let mut browser = Browser::new(&app, DESKTOP, "bob");
        let form = code_form(&mut browser, &app.url("/device")).await;
        for guess in ["BCDF-GHJK", "BCDF-GHJL", "BCDF-GHJM"] {
            assert_eq!(enter(&mut browser, &form, guess).await.0, 400);
        }
        let (status, _) = enter(&mut browser, &form, device["user_code"].as_str().unwrap()).await;
        assert_eq!(status, 429);
    }
}

backend_tests! {
    options: Options {
        env: vec![
            ("WXAUTH_LIMIT_DEVICE_USER_CODE".into(), "off".into()),
            ("WXAUTH_LIMIT_DEVICE_USER_CODE_GLOBAL".into(), "off".into()),
            ("WXAUTH_LIMIT_DEVICE_AUTHORIZATION".into(), "off".into()),
        ],
        ..Options::default()
    };
    async fn a_user_code_approved_from_two_browsers_at_once_is_spent_once(app: TestApp) {
        clients(&app).await;
        let mut alice = Browser::new(&app, DESKTOP, "alice");
        let mut bob = Browser::new(&app, DESKTOP, "bob");
        let alice_form = code_form(&mut alice, &app.url("/device")).await;
        let bob_form = code_form(&mut bob, &app.url("/device")).await;
        let accounts = [
            account_of(&app, demo::WEBSITE_APPID, "alice").await.to_string(),
            account_of(&app, demo::WEBSITE_APPID, "bob").await.to_string(),
        ];
        for trial in 0..TRIALS {
            let device = start(&app, "openid").await;
            let code = device["user_code"].as_str().unwrap();
            let answer = |form: &str| {
                let mut fields = hidden_fields(form);
                fields.push(("user_code".into(), code.into()));
                fields.push(("decision".into(), "approve".into()));
                fields
            };
            let (alice_fields, bob_fields) = (answer(&alice_form), answer(&bob_form));
            let barrier = Arc::new(Barrier::new(2));
            let (a, b) = tokio::join!(
                async { barrier.wait().await; post(&mut alice, &alice_fields).await.0 },
                async { barrier.wait().await; post(&mut bob, &bob_fields).await.0 },
            );
            let mut statuses = [a, b];
            statuses.sort_unstable();
            assert_eq!(statuses, [200, 400], "trial {trial}: one approval wins");
            let winner = if a == 200 { &accounts[0] } else { &accounts[1] };

            // The device polls twice at the same instant: tokens once.
            let barrier = Arc::new(Barrier::new(2));
            let (first, second) = tokio::join!(
                async { barrier.wait().await; poll(&app, &device).await },
                async { barrier.wait().await; poll(&app, &device).await },
            );
            let (won, lost) = if first.0 == 200 { (first, second) } else { (second, first) };
            assert_eq!(won.0, 200, "trial {trial}: {}", won.1);
            assert_eq!(error(&lost), (400, Some("invalid_grant")), "trial {trial}: {}", lost.1);
            let id = verify_id_token(&app, won.1["id_token"].as_str().unwrap(), TV).await;
            assert_eq!(&id["sub"], winner.as_str(), "trial {trial}: the tokens are the winner's");
        }
    }
}

/// The browser's part: the complete verification URI, the QR page, the code form (prefilled),
/// the consent page, approval.
async fn walk(
    chromium: &Chromium,
    app: &TestApp,
    complete: &str,
    code: &str,
) -> Result<(), String> {
    chromium.goto(complete).await?;
    chromium.click("#scan-alice").await?;
    let field = chromium.wait_for("#user-code").await?;
    let prefilled = field.prop("value").await.map_err(|e| e.to_string())?;
    if prefilled.as_deref() != Some(code) {
        return Err(format!(
            "code form prefilled with {prefilled:?}, not {code}"
        ));
    }
    chromium.screenshot("device-code.png").await;
    chromium.click("#continue").await?;
    let shown = chromium.text_of("#device-code").await?;
    let name = chromium.text_of("#client-name").await?;
    chromium.screenshot("device-consent.png").await;
    if shown != code || name != TV_NAME {
        return Err(format!("consent page shows {shown:?} for {name:?}"));
    }
    chromium.click("#approve").await?;
    let message =
        chromium.text_of("#message").await? + &chromium.text_of("#message-second").await?;
    chromium.screenshot("device-done.png").await;
    if !message.contains("回到设备") {
        return Err(format!("done page says {message:?} ({})", app.base));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_browser_approves_a_device_on_the_device_page() {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    clients(&app).await;
    let device = start(&app, "openid profile").await;
    // At a phone's width, for someone who reads Chinese first (`Accept-Language`).
    let chromium = driver
        .session(DESKTOP, (420, 860))
        .language("zh-CN,zh,en")
        .open()
        .await;
    let outcome = walk(
        &chromium,
        &app,
        device["verification_uri_complete"].as_str().unwrap(),
        device["user_code"].as_str().unwrap(),
    )
    .await;
    chromium.finish(outcome).await;
    let (status, tokens) = poll(&app, &device).await;
    assert_eq!(status, 200, "{tokens}");
}

/// The operator's way in: `wxauth client create` takes the device grant for a public client (the
/// README's example), and `client show` lists it.
#[test]
fn the_command_line_registers_a_device_client() {
    let dir = crate::harness::TempDir::new();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wxauth"))
            .args(args)
            .current_dir(&dir.0)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .env("WXAUTH_MASTER_KEY", "ab".repeat(32))
            .env(
                "DATABASE_URL",
                format!("sqlite://{}?mode=rwc", dir.0.join("cli.db").display()),
            )
            .output()
            .expect("run wxauth")
    };
    assert!(run(&["migrate"]).status.success());
    let grants = format!("{DEVICE_GRANT},refresh_token");
    let out = run(&[
        "client",
        "create",
        "--client-id",
        TV,
        "--public",
        "--display-name",
        TV_NAME,
        "--grant-types",
        &grants,
        "--scopes",
        "openid,profile",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&run(&["client", "show", TV]).stdout).into_owned();
    assert!(shown.contains(&grants), "{shown}");
}
