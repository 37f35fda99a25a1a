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

use fantoccini::{Client, Locator};
use serde_json::Value;
use wxauth::admin::Admin;
use wxauth::admin::roles::AccountRef;
use wxauth::simulator::demo;
use wxauth::users::{IdentityKey, Profile};

use crate::console::spawn;
use crate::h5_browser::{Driver, WAIT, browser, chromedriver, close_and_unwrap};
use crate::harness::TestApp;
use crate::mini_program::{client as mp_client, sign_in, token};
use crate::oauth::basic;

pub(crate) const DESKTOP_USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/130.0 Safari/537.36";

/// The app the admin adds in the console, and its secret.
const NEW_APPID: &str = "wx00000000000000c0";
const NEW_APP_SECRET: &str = "a-secret-typed-into-the-console-01";

fn shot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("console-{name}.png"))
}

pub(crate) async fn shot(client: &Client, name: &str) {
    if let Ok(png) = client.screenshot().await {
        let _ = std::fs::write(shot_path(name), png);
    }
}

pub(crate) async fn find(
    client: &Client,
    css: &str,
) -> Result<fantoccini::elements::Element, String> {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .map_err(|e| format!("{css}: {e}"))
}

async fn text(client: &Client, css: &str) -> Result<String, String> {
    find(client, css)
        .await?
        .text()
        .await
        .map_err(|e| format!("{css}: {e}"))
}

pub(crate) async fn click(client: &Client, css: &str) -> Result<(), String> {
    find(client, css)
        .await?
        .click()
        .await
        .map_err(|e| format!("clicking {css}: {e}"))
}

pub(crate) async fn fill(client: &Client, css: &str, value: &str) -> Result<(), String> {
    let field = find(client, css).await?;
    field.clear().await.map_err(|e| format!("{css}: {e}"))?;
    field
        .send_keys(value)
        .await
        .map_err(|e| format!("{css}: {e}"))
}

/// Wait until the browser has navigated to a URL containing `part` (a form's answer replaces a
/// page that may hold the same elements, so waiting for an element is not enough).
async fn wait_for_url(client: &Client, part: &str) -> Result<(), String> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let url = client.current_url().await.map_err(|e| e.to_string())?;
        if url.as_str().contains(part) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("never reached a URL with {part:?}; at {url}"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

pub(crate) async fn goto(client: &Client, url: &str) -> Result<(), String> {
    client.goto(url).await.map_err(|e| format!("{url}: {e}"))
}

pub(crate) async fn source(client: &Client) -> Result<String, String> {
    client.source().await.map_err(|e| e.to_string())
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
async fn walk(client: &Client, app: &TestApp, bob: i64) -> Result<(Value, String, String), String> {
    // Sign-in page, both languages.
    goto(client, &app.url("/admin/login?lang=en")).await?;
    find(client, "#wechat-sign-in").await?;
    shot(client, "login-en").await;
    goto(client, &app.url("/admin/login?lang=zh")).await?;
    let zh = source(client).await?;
    if !zh.contains("使用微信登录") {
        return Err("the sign-in page is not in Chinese".into());
    }
    shot(client, "login-zh").await;

    // Alice signs in with WeChat before she is an admin: refused.
    click(client, "#wechat-sign-in").await?;
    let at = client.current_url().await.map_err(|e| e.to_string())?;
    if !at
        .as_str()
        .starts_with(&format!("{}/connect/qrconnect", app.sim_base))
    {
        return Err(format!("not the QR page: {at}"));
    }
    click(client, "#scan-alice").await?;
    let refused = text(client, "#error").await?;
    if !refused.contains("不是本 wxauth 的管理员") {
        return Err(format!("a non-admin was not refused: {refused}"));
    }
    if goto(client, &app.url("/admin/users")).await.is_ok()
        && !client
            .current_url()
            .await
            .map_err(|e| e.to_string())?
            .path()
            .ends_with("/admin/login")
    {
        return Err("a non-admin reached the users page".into());
    }

    // The role is granted (as `wxauth admin grant` would); she signs in again.
    let alice = crate::oidc::account_of(app, demo::WEBSITE_APPID, "alice").await;
    Admin::new(&app.state)
        .grant_admin(&wxauth::admin::Actor::cli("test"), &AccountRef::Id(alice))
        .await
        .map_err(|e| e.to_string())?;
    goto(client, &app.url("/admin/login?lang=zh")).await?;
    // Still signed in to wxauth, yet the console asks WeChat again (prompt=login): a fresh
    // code exchange with WeChat (the simulator remembers the scan, or shows the QR again).
    let exchanges = app.sim.calls("/sns/oauth2/access_token");
    click(client, "#wechat-sign-in").await?;
    if client
        .current_url()
        .await
        .map_err(|e| e.to_string())?
        .as_str()
        .contains("/connect/qrconnect")
    {
        click(client, "#scan-alice").await?;
    }
    find(client, "#users").await?;
    if app.sim.calls("/sns/oauth2/access_token") != exchanges + 1 {
        return Err("the console's sign-in did not ask WeChat again".into());
    }
    let who = text(client, "#who").await?;
    if who != format!("console:account:{alice}") {
        return Err(format!("signed in as {who:?}"));
    }
    shot(client, "users-zh").await;

    // A client: created, its secret shown once.
    goto(client, &app.url("/admin/clients/new?lang=en")).await?;
    fill(client, "#f-client-id", "shop").await?;
    fill(client, "#f-display-name", "Shop 商城").await?;
    fill(client, "#f-grants", "client_credentials").await?;
    fill(client, "#f-scopes", "api").await?;
    shot(client, "client-new-en").await;
    click(client, "#save-client").await?;
    let first = text(client, "#client-secret").await?;
    shot(client, "secret-en").await;
    click(client, "#to-client").await?;
    find(client, "#client-form").await?;
    if source(client).await?.contains(&first) {
        return Err("the secret was shown again".into());
    }
    shot(client, "client-en").await;
    if client_credentials(app, "shop", &first).await != 200 {
        return Err("the new secret does not work".into());
    }

    // Rotated: both secrets work during the overlap.
    click(client, "#rotate-secret").await?;
    let second = text(client, "#client-secret").await?;
    find(client, "#overlap").await?;
    if second == first {
        return Err("rotation gave the same secret".into());
    }

    // A WeChat app: added in the form, its secret never shown again.
    goto(client, &app.url("/admin/apps/new?lang=en")).await?;
    fill(client, "#f-appid", NEW_APPID).await?;
    fill(client, "#f-secret", NEW_APP_SECRET).await?;
    shot(client, "app-new-en").await;
    click(client, "#save-app").await?;
    find(client, "#message").await?;
    goto(
        client,
        &app.url(&format!("/admin/apps/{NEW_APPID}?lang=en")),
    )
    .await?;
    find(client, "#app-state").await?;
    shot(client, "app-en").await;
    goto(client, &app.url("/admin/apps?lang=en")).await?;
    find(client, "#apps").await?;
    let apps = source(client).await?;
    if !apps.contains(NEW_APPID) || apps.contains(NEW_APP_SECRET) {
        return Err("the apps page lacks the new app or shows its secret".into());
    }
    shot(client, "apps-en").await;
    goto(client, &app.url("/admin/apps?lang=zh")).await?;
    find(client, "#apps").await?;
    shot(client, "apps-zh").await;

    goto(client, &app.url("/admin/clients?lang=en")).await?;
    find(client, "#clients").await?;
    shot(client, "clients-en").await;
    goto(client, &app.url("/admin/clients?lang=zh")).await?;
    shot(client, "clients-zh").await;

    // Bob, found by a piece of his nickname, disabled.
    goto(client, &app.url("/admin/users?lang=en")).await?;
    fill(client, "#q-nickname", "鲍").await?;
    click(client, "#search").await?;
    wait_for_url(client, "nickname=").await?;
    let rows = client
        .find_all(Locator::Css("#users .user-link"))
        .await
        .map_err(|e| e.to_string())?;
    if rows.len() != 1 {
        return Err(format!("{} users match the nickname", rows.len()));
    }
    shot(client, "users-search-en").await;
    rows[0].clone().click().await.map_err(|e| e.to_string())?;
    let state = text(client, "#state").await?;
    if !client
        .current_url()
        .await
        .map_err(|e| e.to_string())?
        .path()
        .ends_with(&format!("/admin/users/{bob}"))
    {
        return Err(format!("not Bob's page (state {state})"));
    }
    shot(client, "user-en").await;
    click(client, "#disable").await?;
    find(client, "#message").await?;
    goto(client, &app.url(&format!("/admin/users/{bob}?lang=zh"))).await?;
    let state = text(client, "#state").await?;
    if state != "已停用" {
        return Err(format!("Bob is {state:?}"));
    }
    shot(client, "user-zh").await;

    // Exported: the form's POST, as the download button sends it.
    let script = r#"
        const done = arguments[arguments.length - 1];
        const form = document.querySelector('form[action$="/export"]');
        fetch(form.action, { method: 'POST', body: new URLSearchParams(new FormData(form)) })
            .then(r => r.text().then(t => done([r.status, r.headers.get('content-disposition'), t])))
            .catch(e => done([0, null, String(e)]));
    "#;
    let answer = client
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
    click(client, "#confirm-delete-user").await?;
    click(client, "#delete-user").await?;
    find(client, "#message").await?;

    goto(client, &app.url("/admin/keys?lang=en")).await?;
    find(client, "#keys").await?;
    shot(client, "keys-en").await;
    goto(client, &app.url("/admin/audit?lang=en")).await?;
    find(client, "#events").await?;
    shot(client, "audit-en").await;
    goto(client, &app.url("/admin/audit?lang=zh")).await?;
    shot(client, "audit-zh").await;
    goto(client, &app.url("/admin/admins?lang=zh")).await?;
    find(client, "#admins").await?;
    shot(client, "admins-zh").await;
    Ok((export, first, second))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_signs_in_with_the_qr_page_and_manages_clients_and_users() {
    let Some(chromedriver) = chromedriver() else {
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

    let driver = Driver::start(&chromedriver).await;
    let client = browser(&driver, DESKTOP_USER_AGENT, (1280, 860)).await;
    let outcome = walk(&client, &app, bob).await;
    let (export, first, second) = close_and_unwrap(client, outcome).await;

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
