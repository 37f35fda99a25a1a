//! The admin console at `/admin` in a real browser, and its refusals over HTTP.
//!
//! Headless Chromium signs in through the simulator's QR page: first as Alice before she is an
//! admin (refused), then, with the role granted, as the admin. It creates a client and sees its
//! secret once, rotates the secret (both work during the overlap), finds Bob by nickname,
//! disables him (his refresh fails), exports and deletes him, adds a WeChat app (its secret never
//! shown again); the main pages are screenshotted
//! in Chinese and English into `target/tmp/console-*.png`.
//!
//! Over HTTP: a change without the CSRF token is refused, a wrong break-glass token is refused
//! and then throttled, and the session cookie is HttpOnly and SameSite=Strict.

use std::path::PathBuf;

use fantoccini::Locator;
use serde_json::Value;
use wxauth::admin::Admin;
use wxauth::admin::roles::AccountRef;
use wxauth::simulator::demo;
use wxauth::users::{IdentityKey, Profile};

use crate::browser::{Chromedriver, Chromium, DESKTOP_USER_AGENT, screenshot_path};
use crate::console::spawn;
use crate::harness::TestApp;
use crate::mini_program::{client as mp_client, sign_in, token};
use crate::oauth::basic;

/// The app the admin adds in the console, and its secret.
const NEW_APPID: &str = "wx00000000000000c0";
const NEW_APP_SECRET: &str = "a-secret-typed-into-the-console-01";

fn shot_path(name: &str) -> PathBuf {
    screenshot_path(&format!("console-{name}.png"))
}

/// A screenshot of the console's page, as `console-<name>.png`.
pub(crate) async fn shot(chromium: &Chromium, name: &str) {
    chromium.screenshot(&format!("console-{name}.png")).await;
}

async fn client_credentials(app: &TestApp, id: &str, secret: &str) -> u16 {
    token(
        app,
        &basic(id, secret),
        &[("grant_type", "client_credentials")],
    )
    .await
    .0
}

/// The browser's part; returns (Bob's export, the two secrets).
async fn walk(
    chromium: &Chromium,
    app: &TestApp,
    bob: i64,
) -> Result<(Value, String, String), String> {
    // Sign-in page, both languages.
    chromium.goto(&app.url("/admin/login?lang=en")).await?;
    chromium.wait_for("#wechat-sign-in").await?;
    shot(chromium, "login-en").await;
    chromium.goto(&app.url("/admin/login?lang=zh")).await?;
    let zh = chromium.source().await?;
    if !zh.contains("使用微信登录") {
        return Err("the sign-in page is not in Chinese".into());
    }
    shot(chromium, "login-zh").await;

    // Alice signs in with WeChat before she is an admin: refused.
    chromium.click("#wechat-sign-in").await?;
    chromium.scan_the_qr_page(&app.sim_base, "alice").await?;
    let refused = chromium.text_of("#error").await?;
    if !refused.contains("不是本 wxauth 的管理员") {
        return Err(format!("a non-admin was not refused: {refused}"));
    }
    if chromium.goto(&app.url("/admin/users")).await.is_ok()
        && !chromium.url().await?.path().ends_with("/admin/login")
    {
        return Err("a non-admin reached the users page".into());
    }

    // The role is granted (as `wxauth admin grant` would); she signs in again.
    let alice = crate::oidc::account_of(app, demo::WEBSITE_APPID, "alice").await;
    Admin::new(&app.state)
        .grant_admin(&wxauth::admin::Actor::cli("test"), &AccountRef::Id(alice))
        .await
        .map_err(|e| e.to_string())?;
    chromium.goto(&app.url("/admin/login?lang=zh")).await?;
    // Still signed in to wxauth, yet the console asks WeChat again (prompt=login): a fresh
    // code exchange with WeChat (the simulator remembers the scan, or shows the QR again).
    let exchanges = app.sim.calls("/sns/oauth2/access_token");
    chromium.click("#wechat-sign-in").await?;
    if chromium
        .url()
        .await?
        .as_str()
        .contains("/connect/qrconnect")
    {
        chromium.click("#scan-alice").await?;
    }
    chromium.wait_for("#users").await?;
    if app.sim.calls("/sns/oauth2/access_token") != exchanges + 1 {
        return Err("the console's sign-in did not ask WeChat again".into());
    }
    let who = chromium.text_of("#who").await?;
    if who != format!("console:account:{alice}") {
        return Err(format!("signed in as {who:?}"));
    }
    shot(chromium, "users-zh").await;

    // A client: created, its secret shown once.
    chromium
        .goto(&app.url("/admin/clients/new?lang=en"))
        .await?;
    chromium.fill("#f-client-id", "shop").await?;
    chromium.fill("#f-display-name", "Shop 商城").await?;
    chromium.fill("#f-grants", "client_credentials").await?;
    chromium.fill("#f-scopes", "api").await?;
    shot(chromium, "client-new-en").await;
    chromium.click("#save-client").await?;
    let first = chromium.text_of("#client-secret").await?;
    shot(chromium, "secret-en").await;
    chromium.click("#to-client").await?;
    chromium.wait_for("#client-form").await?;
    if chromium.source().await?.contains(&first) {
        return Err("the secret was shown again".into());
    }
    shot(chromium, "client-en").await;
    if client_credentials(app, "shop", &first).await != 200 {
        return Err("the new secret does not work".into());
    }

    // Rotated: both secrets work during the overlap.
    chromium.click("#rotate-secret").await?;
    let second = chromium.text_of("#client-secret").await?;
    chromium.wait_for("#overlap").await?;
    if second == first {
        return Err("rotation gave the same secret".into());
    }

    // A WeChat app: added in the form, its secret never shown again.
    chromium.goto(&app.url("/admin/apps/new?lang=en")).await?;
    chromium.fill("#f-appid", NEW_APPID).await?;
    chromium.fill("#f-secret", NEW_APP_SECRET).await?;
    shot(chromium, "app-new-en").await;
    chromium.click("#save-app").await?;
    chromium.wait_for("#message").await?;
    chromium
        .goto(&app.url(&format!("/admin/apps/{NEW_APPID}?lang=en")))
        .await?;
    chromium.wait_for("#app-state").await?;
    shot(chromium, "app-en").await;
    chromium.goto(&app.url("/admin/apps?lang=en")).await?;
    chromium.wait_for("#apps").await?;
    let apps = chromium.source().await?;
    if !apps.contains(NEW_APPID) || apps.contains(NEW_APP_SECRET) {
        return Err("the apps page lacks the new app or shows its secret".into());
    }
    shot(chromium, "apps-en").await;
    chromium.goto(&app.url("/admin/apps?lang=zh")).await?;
    chromium.wait_for("#apps").await?;
    shot(chromium, "apps-zh").await;

    chromium.goto(&app.url("/admin/clients?lang=en")).await?;
    chromium.wait_for("#clients").await?;
    shot(chromium, "clients-en").await;
    chromium.goto(&app.url("/admin/clients?lang=zh")).await?;
    shot(chromium, "clients-zh").await;

    // Bob, found by a piece of his nickname, disabled.
    chromium.goto(&app.url("/admin/users?lang=en")).await?;
    chromium.fill("#q-nickname", "鲍").await?;
    chromium.click("#search").await?;
    chromium.wait_for_url("nickname=").await?;
    let rows = chromium
        .find_all(Locator::Css("#users .user-link"))
        .await
        .map_err(|e| e.to_string())?;
    if rows.len() != 1 {
        return Err(format!("{} users match the nickname", rows.len()));
    }
    shot(chromium, "users-search-en").await;
    rows[0].clone().click().await.map_err(|e| e.to_string())?;
    let state = chromium.text_of("#state").await?;
    if !chromium
        .url()
        .await?
        .path()
        .ends_with(&format!("/admin/users/{bob}"))
    {
        return Err(format!("not Bob's page (state {state})"));
    }
    shot(chromium, "user-en").await;
    chromium.click("#disable").await?;
    chromium.wait_for("#message").await?;
    chromium
        .goto(&app.url(&format!("/admin/users/{bob}?lang=zh")))
        .await?;
    let state = chromium.text_of("#state").await?;
    if state != "已停用" {
        return Err(format!("Bob is {state:?}"));
    }
    shot(chromium, "user-zh").await;

    // Exported: the form's POST, as the download button sends it.
    let script = r#"
        const done = arguments[arguments.length - 1];
        const form = document.querySelector('form[action$="/export"]');
        fetch(form.action, { method: 'POST', body: new URLSearchParams(new FormData(form)) })
            .then(r => r.text().then(t => done([r.status, r.headers.get('content-disposition'), t])))
            .catch(e => done([0, null, String(e)]));
    "#;
    let answer = chromium
        .execute_async(script, vec![])
        .await
        .map_err(|e| e.to_string())?;
    if answer[0] != 200
        || !answer[1]
            .as_str()
            .unwrap_or_default()
            .starts_with("attachment")
    {
        return Err(format!("export: {answer}"));
    }
    let export: Value = serde_json::from_str(answer[2].as_str().unwrap_or_default())
        .map_err(|e| format!("export is not JSON: {e}"))?;

    // Deleted.
    chromium.click("#confirm-delete-user").await?;
    chromium.click("#delete-user").await?;
    chromium.wait_for("#message").await?;

    chromium.goto(&app.url("/admin/keys?lang=en")).await?;
    chromium.wait_for("#keys").await?;
    shot(chromium, "keys-en").await;
    chromium.goto(&app.url("/admin/audit?lang=en")).await?;
    chromium.wait_for("#events").await?;
    shot(chromium, "audit-en").await;
    chromium.goto(&app.url("/admin/audit?lang=zh")).await?;
    shot(chromium, "audit-zh").await;
    chromium.goto(&app.url("/admin/admins?lang=zh")).await?;
    chromium.wait_for("#admins").await?;
    shot(chromium, "admins-zh").await;
    Ok((export, first, second))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_signs_in_with_the_qr_page_and_manages_clients_and_users() {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let app = spawn(None).await;
    // Bob, with a nickname, signed in to a Mini Program and holding a refresh token.
    let auth = mp_client(&app, "front", &["flow", "refresh_token"]).await;
    let signed = sign_in(&app, "bob").await;
    let open_id = signed["openId"].as_str().unwrap().to_owned();
    app.state
        .users
        .record_identity(
            &IdentityKey::new(
                demo::MINI_PROGRAM_APPID.parse().unwrap(),
                open_id.clone(),
                signed["unionId"].as_str().map(str::to_owned),
            ),
            Some(&Profile {
                nick_name: Some("Bob 鲍勃".into()),
                ..Profile::default()
            }),
            app.state.clock.now(),
        )
        .await
        .unwrap();
    let form = [
        ("grant_type", "flow".to_string()),
        ("appId", demo::MINI_PROGRAM_APPID.to_string()),
        ("openId", open_id),
        ("unionId", signed["unionId"].as_str().unwrap().to_string()),
        ("ticket", signed["ticket"].as_str().unwrap().to_string()),
    ];
    let (status, tokens) = token(&app, &auth, &form).await;
    assert_eq!(status, 200, "{tokens}");
    let bob: i64 = tokens["flow_user_id"].as_str().unwrap().parse().unwrap();
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();

    // The Mini Program's upstream token, fetched after one failed attempt: the apps page
    // shows its expiry and today's calls and errors.
    app.sim.fail_http(1);
    let mp = wxauth::wechat::AppId::parse(demo::MINI_PROGRAM_APPID).unwrap();
    app.state.wechat.app_access_token(&mp).await.unwrap();

    let chromium = driver.session(DESKTOP_USER_AGENT, (1280, 860)).open().await;
    let outcome = walk(&chromium, &app, bob).await;
    let (export, first, second) = chromium.finish(outcome).await;

    // Both secrets work during the overlap.
    assert_eq!(client_credentials(&app, "shop", &first).await, 200);
    assert_eq!(client_credentials(&app, "shop", &second).await, 200);
    // Bob's refresh failed once he was disabled (and he is gone now).
    let (status, body) = token(
        &app,
        &auth,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(export["account"]["id"], bob, "{export}");
    assert_eq!(export["account"]["nick_name"], "Bob 鲍勃", "{export}");
    let gone = Admin::new(&app.state).show_user(bob).await;
    assert!(gone.is_err(), "Bob is still there");
    // Every change named the admin.
    let alice = crate::oidc::account_of(&app, demo::WEBSITE_APPID, "alice").await;
    let events = app
        .state
        .audit
        .list(&wxauth::audit::AuditFilter {
            limit: 200,
            ..Default::default()
        })
        .await
        .unwrap();
    let actor = format!("console:account:{alice}");
    for (kind, action) in [
        ("client_changed", "create"),
        ("client_changed", "rotate_secret"),
        // (Bob's disable and export events went with his account: only the tombstone stays.)
        ("account_changed", "delete"),
    ] {
        assert!(
            events.iter().any(|e| e.kind == kind
                && e.actor.as_deref() == Some(actor.as_str())
                && e.detail.contains(&format!("\"action\":\"{action}\""))),
            "no {kind}/{action} by {actor}"
        );
    }
    for name in [
        "login-zh",
        "login-en",
        "users-zh",
        "clients-en",
        "secret-en",
        "user-en",
        "user-zh",
        "audit-en",
        "apps-en",
        "apps-zh",
    ] {
        assert!(shot_path(name).exists(), "{name}");
    }
    let added = app
        .state
        .apps
        .get(NEW_APPID)
        .await
        .unwrap()
        .expect("the app added in the console");
    assert_eq!(added.secret.unwrap().expose(), NEW_APP_SECRET);
    assert!(events.iter().any(|e| e.kind == "app_changed"
        && e.subject.as_deref() == Some(NEW_APPID)
        && e.actor.as_deref() == Some(actor.as_str())));
}
