//! The pages a person reads (issue 20): messages from the catalogue in the browser's language
//! with a reference instead of developer detail, a way back from every page a person can recover
//! from, operators' own templates, the consent page, the dev-only demo, described authorization
//! refusals, the token endpoint while the database is gone — and screenshots of every page in
//! Chinese and English on a phone and a desktop, taken in a real browser.

use serde_json::json;
use url::Url;
use wxauth::oauth::{FlowTicketPolicy, NewClient};
use wxauth::secret::Secret;
use wxauth::simulator::demo;

use crate::backend_tests;
use crate::browser::{Chromedriver, Chromium};
use crate::h5::{Browser, NEXT, page, query, start};
use crate::h5_browser::landing_server;
use crate::harness::{Backend, Options, TestApp};

const ENTRY_CB: &str = "/api/wechat/component/mp/common/entryCallback";

async fn sqlite() -> TestApp {
    TestApp::spawn(Backend::Sqlite).await.unwrap()
}

async fn sqlite_with(options: Options) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, options).await.unwrap()
}

fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/").replace("&amp;", "&")
}

/// The `href` of the element with `id` on an HTML page.
fn href_of(body: &str, id: &str) -> Option<String> {
    body.split(&format!("id=\"{id}\" href=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(unescape)
}

async fn get_page(app: &TestApp, url: &str, language: Option<&str>) -> (u16, String) {
    let mut request = app.http.get(url);
    if let Some(language) = language {
        request = request.header("accept-language", language);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn error_pages_speak_the_browsers_language_and_keep_developer_detail_in_the_log() {
    let app = sqlite().await;
    let url = app.url("/oauth/authorize?response_type=code&client_id=nope&redirect_uri=https%3A%2F%2Fx.example%2Fcb");

    // No Accept-Language: Chinese first, English beside it.
    let (status, zh) = get_page(&app, &url, None).await;
    assert_eq!(status, 400);
    assert!(zh.contains("<html lang=\"zh-CN\">"), "{zh}");
    let first = zh.split("id=\"message\">").nth(1).unwrap();
    assert!(first.starts_with("把你带到这里的应用"), "{zh}");
    assert!(zh.contains("The app that sent you here"), "{zh}");

    // An English browser: English first, Chinese beside it.
    let (_, en) = get_page(&app, &url, Some("en-US,en;q=0.9,zh;q=0.5")).await;
    assert!(en.contains("<html lang=\"en\">"), "{en}");
    let first = en.split("id=\"message\">").nth(1).unwrap();
    assert!(first.starts_with("The app that sent you here"), "{en}");
    assert!(en.contains("把你带到这里的应用"), "{en}");
    let (_, zh_first) = get_page(&app, &url, Some("zh-CN,en;q=0.8")).await;
    assert!(zh_first.contains("<html lang=\"zh-CN\">"));

    // The detail is for the log: neither the client id nor the reason is on the page, but a
    // reference an operator can search for is.
    for body in [&zh, &en] {
        assert!(
            !body.contains("nope") && !body.contains("unknown client"),
            "{body}"
        );
        let reference = body
            .split("id=\"reference\">")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .expect("a reference on the page");
        assert!(reference.starts_with("OA-REQUEST-"), "{reference}");
        assert_eq!(reference.len(), "OA-REQUEST-".len() + 8, "{reference}");
    }

    // A refusal at the edge (a URL too long for a page) speaks the same way.
    let long = "x".repeat(10_000);
    let (status, body) = get_page(
        &app,
        &app.url(&format!("/oauth/authorize?client_id={long}")),
        Some("en"),
    )
    .await;
    assert_eq!(status, 414);
    assert!(
        body.contains("This request cannot be handled") && body.contains("EDGE-REQUEST-"),
        "{body}"
    );

    // The front page too.
    let (_, home) = get_page(&app, &app.url("/"), Some("en")).await;
    let home = unescape(&home);
    let (english, chinese) = (
        home.find("An OAuth 2.0 / OpenID Connect authorization server")
            .unwrap(),
        home.find("用微信登录").unwrap(),
    );
    assert!(
        home.contains("<html lang=\"en\">") && english < chinese,
        "{home}"
    );
    let (_, home) = get_page(&app, &app.url("/"), None).await;
    let home = unescape(&home);
    assert!(home.find("用微信登录").unwrap() < home.find("An OAuth 2.0").unwrap());

    // The next points to a host that is not allowed: the person reads what to do, not the
    // variable's name.
    let (status, body) = get_page(
        &app,
        &format!(
            "{}?appId={}&next=https%3A%2F%2Fevil.example%2F&redirect=1",
            app.url(crate::h5::BUILD),
            demo::ENTRY_ACCOUNT_APPID
        ),
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert!(!body.contains("WXAUTH_"), "{body}");
    assert!(body.contains("H5-NEXT-"), "{body}");
}

#[tokio::test]
async fn a_spent_or_expired_h5_link_offers_a_fresh_start_that_works() {
    let app = sqlite().await;
    app.push_component_ticket().await;
    let alice = Browser::new(&app, "alice");
    let entry_authorize = start(&app, demo::ENTRY_ACCOUNT_APPID, NEXT).await;
    let entry_callback = alice.hop(&entry_authorize).await;
    let _base_authorize = alice.hop(&entry_callback).await;

    // Replayed: the page explains and links to a fresh sign-in for the same account and page.
    let replayed = page(&app, &entry_callback).await;
    assert_eq!(replayed.status, 400);
    assert!(replayed.body.contains("expired or was already used"));
    let again = href_of(&replayed.body, "start-over").expect("a start-again link");
    let q = query(&again);
    assert_eq!(q["appId"], demo::ENTRY_ACCOUNT_APPID);
    assert_eq!(q["next"], NEXT);
    assert_eq!(q["redirect"], "1");
    let onwards = alice.hop(&again).await;
    assert!(
        onwards.starts_with(&format!("{}/connect/oauth2/authorize?", app.sim_base)),
        "{onwards}"
    );

    // Expired: the same.
    let entry_authorize = start(&app, demo::ENTRY_ACCOUNT_APPID, NEXT).await;
    let entry_callback = alice.hop(&entry_authorize).await;
    app.clock.advance(601);
    let expired = page(&app, &entry_callback).await;
    assert_eq!(expired.status, 400);
    assert!(
        href_of(&expired.body, "start-over").is_some(),
        "{}",
        expired.body
    );

    // A forged link whose next is not allowed gets no link to it.
    let forged = format!(
        "{}?next=https%3A%2F%2Fevil.example%2F&code=c&state={}&appid={}",
        app.url(ENTRY_CB),
        "a".repeat(64),
        demo::ENTRY_ACCOUNT_APPID
    );
    let forged = page(&app, &forged).await;
    assert_eq!(forged.status, 400);
    assert!(!forged.body.contains("evil.example"), "{}", forged.body);
}

#[tokio::test]
async fn operators_templates_and_stylesheet_replace_the_embedded_ones_and_missing_files_fall_back()
{
    let dir = crate::harness::TempDir::new();
    std::fs::write(
        dir.0.join("error.html"),
        "{% extends \"base.html\" %}{% block content %}<h1 id=\"brand\">ACME 登录</h1>\
         <p id=\"message\">{{ message.first }}</p>{% endblock %}",
    )
    .unwrap();
    std::fs::write(dir.0.join("wxauth.css"), "body { background: #123456; }").unwrap();
    let app = sqlite_with(Options {
        env: vec![("WXAUTH_TEMPLATES_DIR".into(), dir.0.display().to_string())],
        ..Default::default()
    })
    .await;
    let (status, body) = get_page(&app, &app.url("/oauth/authorize?client_id=nope"), None).await;
    assert_eq!(status, 400);
    assert!(body.contains("<h1 id=\"brand\">ACME 登录</h1>"), "{body}");
    // base.html is not in the directory: the embedded one frames the page.
    assert!(body.contains("width=device-width"), "{body}");
    let css = app
        .http
        .get(app.url("/static/wxauth.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.text().await.unwrap(), "body { background: #123456; }");
    // home.html is not there either: the embedded front page.
    let (status, home) = get_page(&app, &app.url("/"), None).await;
    assert_eq!(status, 200);
    assert!(home.contains("id=\"issuer\""), "{home}");

    // Without the variable, the embedded pages.
    let plain = sqlite().await;
    let (_, body) = get_page(&plain, &plain.url("/oauth/authorize?client_id=nope"), None).await;
    assert!(!body.contains("ACME"), "{body}");
    let css = plain
        .http
        .get(plain.url("/static/wxauth.css"))
        .send()
        .await
        .unwrap();
    assert!(css.text().await.unwrap().contains("--accent"));

    // A directory that does not exist is refused at start-up, naming the variable.
    let refused = wxauth::config::Config::from_lookup(|k| match k {
        "WXAUTH_TEMPLATES_DIR" => Some("/nonexistent/wxauth-templates".into()),
        _ => None,
    });
    let Err(error) = refused else {
        panic!("a templates directory that does not exist is accepted");
    };
    assert_eq!(error.variable, "WXAUTH_TEMPLATES_DIR");
}

#[tokio::test]
async fn the_oidc_demo_page_is_served_only_under_dev() {
    let app = sqlite().await;
    let response = app.http.get(app.url("/m/oidc_demo")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let dev = sqlite_with(Options {
        dev_demo: true,
        ..Default::default()
    })
    .await;
    let response = dev.http.get(dev.url("/m/oidc_demo")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

async fn web_client(app: &TestApp, redirect: &str, scopes: &[&str]) {
    app.state
        .clients
        .create(NewClient {
            client_id: "shop-web".into(),
            secret: Some(Secret::new("a-long-secret-for-the-shop-web-client")),
            grant_types: vec!["authorization_code".into()],
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            redirect_uris: vec![redirect.to_owned()],
            flow_ticket: FlowTicketPolicy::Required,
            display_name: Some("示例商城 Example Shop".into()),
            logo_url: Some(format!(
                "http://127.0.0.1:{}/__sim/avatar/alice",
                Url::parse(&app.sim_base).unwrap().port().unwrap()
            )),
            ..NewClient::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn authorization_refusals_redirect_with_a_description() {
    let app = sqlite().await;
    let redirect = "https://shop.example.com:8443/cb";
    web_client(&app, redirect, &["openid", "profile"]).await;
    for (extra, error) in [
        (
            "response_type=token&scope=openid",
            "unsupported_response_type",
        ),
        ("response_type=code&scope=openid%20admin", "invalid_scope"),
    ] {
        let url = app.url(&format!(
            "/oauth/authorize?client_id=shop-web&redirect_uri={}&state=s1&{extra}",
            crate::h5::urlencode(redirect)
        ));
        let response = app.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 302, "{error}");
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with(redirect), "{location}");
        let q = query(&location);
        assert_eq!(q["error"], error, "{location}");
        assert!(
            q.get("error_description").is_some_and(|d| d.len() > 10),
            "{location}"
        );
        assert_eq!(q["state"], "s1");
    }
}

backend_tests! {
    options: Options::default();

    async fn the_token_endpoint_answers_503_while_the_database_is_gone(app: TestApp) {
        let response = app
            .http
            .post(app.url("/oauth/token"))
            .basic_auth("nobody", Some("x"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        // The database goes away under the running server: every connection of its pool closes.
        app.state.db.clone().close().await.unwrap();
        let response = app
            .http
            .post(app.url("/oauth/token"))
            .basic_auth("nobody", Some("x"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "5");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    }
}

// ---- in a browser: every page, Chinese and English, phone and desktop ----

const PHONE_USER_AGENT: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36 MicroMessenger/8.0.49";
pub(crate) const DESKTOP_USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0";

/// A screenshot of the page, as `page-<name>.png`.
pub(crate) async fn shot(chromium: &Chromium, name: &str) {
    chromium.screenshot(&format!("page-{name}.png")).await;
}

/// Every page a person meets, screenshotted as `page-<name>-<variant>.png`; the links that lead
/// back are clicked.
async fn tour(
    chromium: &Chromium,
    app: &TestApp,
    landing_base: &str,
    variant: &str,
    english: bool,
) -> Result<(), String> {
    // The front page, with its dev demo section.
    chromium.goto(&app.url("/")).await?;
    chromium.wait_for("#demo").await?;
    shot(chromium, &format!("front-{variant}")).await;

    // A spent H5 link: the message in the browser's language, and the start-again link, which
    // leads to WeChat's (the simulator's) sign-in.
    let alice = Browser::new(app, "alice");
    let entry_authorize = start(app, demo::ENTRY_ACCOUNT_APPID, NEXT).await;
    let entry_callback = alice.hop(&entry_authorize).await;
    let _ = alice.hop(&entry_callback).await;
    chromium.goto(&entry_callback).await?;
    let message = chromium.text_of("#message").await?;
    if english != message.starts_with("This sign-in link has expired") {
        return Err(format!("message in the wrong language: {message:?}"));
    }
    shot(chromium, &format!("error-spent-{variant}")).await;
    chromium.click("#start-over").await?;
    chromium.wait_for("a[href*='user=alice']").await?;
    shot(chromium, &format!("simulator-chooser-{variant}")).await;

    // A page the app's request cannot start.
    chromium
        .goto(&app.url("/oauth/authorize?client_id=nope"))
        .await?;
    chromium.wait_for("#reference").await?;
    shot(chromium, &format!("error-request-{variant}")).await;

    // The consent page of a client with a name, a logo and a scope of its own, reached through
    // the QR sign-in on a desktop or WeChat's on a phone.
    let redirect = "http://127.0.0.1:9/cb";
    chromium.goto(&app.url(&format!(
        "/oauth/authorize?response_type=code&client_id=shop-web&redirect_uri={}&scope=orders%20profile%20openid&state=s",
        crate::h5::urlencode(redirect)
    )))
    .await?;
    // WeChat's page asks who signs in, unless the simulated WeChat remembers alice already.
    let next = chromium
        .wait_for("#scan-alice, a[href*='user=alice'], #approve")
        .await
        .map_err(|e| format!("no WeChat sign-in page: {e}"))?;
    if next.attr("id").await.map_err(|e| e.to_string())?.as_deref() != Some("approve") {
        shot(chromium, &format!("simulator-signin-{variant}")).await;
        next.click().await.map_err(|e| e.to_string())?;
    }
    chromium.wait_for("#approve").await?;
    let scopes = chromium.text_of("#scopes").await?;
    let name = chromium.text_of("#client-name").await?;
    let host = chromium.text_of("#redirect-host").await?;
    shot(chromium, &format!("consent-{variant}")).await;
    let order: Vec<usize> = ["微信身份", "昵称", "orders"]
        .iter()
        .filter_map(|w| scopes.find(w))
        .collect();
    if order.len() != 3 || !order.is_sorted() {
        return Err(format!("scopes out of order: {scopes}"));
    }
    if name != "示例商城 Example Shop" || host != "127.0.0.1:9" {
        return Err(format!("consent shows {name:?} returning to {host:?}"));
    }
    // The landing page without a sign-in result offers to sign in, and the link works.
    chromium
        .goto(&format!("{landing_base}/m/flow_landing"))
        .await?;
    let again = chromium
        .wait_for("#again:not([hidden]) #again-link")
        .await?;
    shot(chromium, &format!("landing-empty-{variant}")).await;
    again.click().await.map_err(|e| e.to_string())?;
    // WeChat asks who signs in, unless the simulated WeChat remembers alice from the consent
    // walk above.
    let next = chromium
        .wait_for("a[href*='user=alice'], #user:not([hidden])")
        .await?;
    if next.attr("id").await.map_err(|e| e.to_string())?.as_deref() != Some("user") {
        next.click().await.map_err(|e| e.to_string())?;
    }
    chromium.wait_for("#user:not([hidden])").await?;
    let avatar = chromium.wait_for("#avatar").await?;
    let loaded = chromium
        .execute(
            "return arguments[0].complete && arguments[0].naturalWidth > 0",
            vec![serde_json::to_value(&avatar).map_err(|e| e.to_string())?],
        )
        .await
        .map_err(|e| e.to_string())?;
    if loaded != json!(true) {
        return Err("the avatar on the landing page did not load".into());
    }
    shot(chromium, &format!("landing-{variant}")).await;

    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_in_chinese_and_english_on_a_phone_and_a_desktop() {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let app = sqlite_with(Options {
        dev_demo: true,
        ..Default::default()
    })
    .await;
    app.push_component_ticket().await;
    web_client(
        &app,
        "http://127.0.0.1:9/cb",
        &["openid", "profile", "orders"],
    )
    .await;
    let landing_base = landing_server(&app).await;
    for (variant, user_agent, size, language) in [
        ("zh-phone", PHONE_USER_AGENT, (390, 844), "zh-CN"),
        ("en-phone", PHONE_USER_AGENT, (390, 844), "en-US"),
        ("zh-desktop", DESKTOP_USER_AGENT, (1280, 900), "zh-CN"),
        ("en-desktop", DESKTOP_USER_AGENT, (1280, 900), "en-US"),
    ] {
        let chromium = driver
            .session(user_agent, size)
            .language(language)
            .open()
            .await;
        let outcome = tour(&chromium, &app, &landing_base, variant, language == "en-US").await;
        chromium.finish(outcome).await;
    }
}
