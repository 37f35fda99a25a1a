//! A real browser walks the H5 sign-in: headless Chromium, driven over WebDriver (fantoccini and
//! a chromedriver this test starts on a free port), opens the `entryBuildUrl` link (for the
//! landing page's client, so only it can redeem the ticket) as a newcomer would, picks the
//! simulated WeChat user on the simulator's authorize page, follows both hops (the binding
//! cookie set by the first kept by the browser for the second) and lands on `/m/flow_landing`,
//! whose script redeems the ticket and shows the user, and asks for its JS-SDK configuration,
//! whose signature the simulator checks as WeChat's JS bridge would.
//!
//! Runs on [`crate::browser`] (skipped unless Chromium is installed or
//! `WXAUTH_TEST_REQUIRE_BROWSER=1`). The landing page's server ([`landing_server`]) is shared
//! with the pages' tour.

use wxauth::http::h5::LandingClient;
use wxauth::oauth::{FlowTicketPolicy, NewClient};
use wxauth::secret::Secret;
use wxauth::simulator::demo;
use wxauth::simulator::jssdk::WxConfig;

use crate::browser::{Chromedriver, Chromium, serve_site};
use crate::harness::{Backend, TestApp};

const BUILD: &str = "/api/wechat/component/mp/common/entryBuildUrl";
/// What WeChat's in-app browser calls itself.
const WECHAT_USER_AGENT: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36 MicroMessenger/8.0.50.2701 \
     NetType/WIFI Language/zh_CN";
/// The landing page signs in with this client (as `wxauth dev` arranges).
pub(crate) async fn landing_server(app: &TestApp) -> String {
    let secret = "a-long-landing-client-secret";
    app.state
        .clients
        .create(NewClient {
            client_id: "landing".into(),
            secret: Some(Secret::new(secret)),
            grant_types: vec!["flow".into()],
            scopes: vec!["flow".into()],
            redirect_uris: vec![],
            public: false,
            first_party: true,
            access_token_ttl: 600,
            refresh_token_ttl: 3600,
            flow_ticket: FlowTicketPolicy::Required,
            ..NewClient::default()
        })
        .await
        .unwrap();
    let router = wxauth::app(app.state.clone()).layer(axum::Extension(LandingClient {
        client_id: "landing".into(),
        client_secret: Secret::new(secret),
        entry_appid: demo::ENTRY_ACCOUNT_APPID.into(),
    }));
    serve_site(router).await
}

/// The walk; an `Err` carries what the browser was showing.
async fn walk(chromium: &Chromium, app: &TestApp, landing_base: &str) -> Result<(), String> {
    let landing = format!("{landing_base}/m/flow_landing");
    let link = format!(
        "{landing_base}{BUILD}?appId={}&next={}&clientId=landing&redirect=1",
        demo::ENTRY_ACCOUNT_APPID,
        url::form_urlencoded::byte_serialize(landing.as_bytes()).collect::<String>()
    );
    chromium.goto(&link).await?;

    // The simulator's authorize page asks who is signing in.
    chromium
        .click("a[href*='user=alice']")
        .await
        .map_err(|e| format!("no user chooser: {e}"))?;

    // Both hops run by redirects; the landing page then redeems the ticket.
    chromium
        .wait_for("#user:not([hidden])")
        .await
        .map_err(|e| format!("the landing page did not show a user: {e}"))?;

    let nick = chromium.text_of("#nick-name").await?;
    let union_id = chromium.text_of("#union-id").await?;
    let open_id = chromium.text_of("#open-id").await?;
    let claims = chromium.text_of("#claims").await?;
    let status = chromium.text_of("#status").await?;
    let url = chromium.url().await?;
    chromium
        .wait_for("#jssdk:not([hidden])")
        .await
        .map_err(|e| format!("the landing page showed no JS-SDK configuration: {e}"))?;
    let jssdk_status = chromium.text_of("#jssdk-status").await?;
    let signed = WxConfig {
        app_id: demo::ENTRY_ACCOUNT_APPID.into(),
        url: chromium.text_of("#jssdk-url").await?,
        timestamp: chromium
            .text_of("#jssdk-timestamp")
            .await?
            .parse()
            .map_err(|e| format!("timestamp: {e}"))?,
        nonce_str: chromium.text_of("#jssdk-nonce").await?,
        signature: chromium.text_of("#jssdk-signature").await?,
    };
    chromium.screenshot("h5-landing.png").await;
    // And the JS-SDK section, further down the page.
    let _ = chromium
        .execute(
            "document.getElementById('jssdk').scrollIntoView()",
            Vec::new(),
        )
        .await;
    chromium.screenshot("h5-landing-jssdk.png").await;

    // Checked without panicking, so that the browser session is always closed.
    let checks = [
        (nick == "Alice 爱丽丝", format!("nick name {nick:?}")),
        (
            Some(&union_id) == app.sim.unionid(demo::BASE_ACCOUNT_APPID, "alice").as_ref(),
            format!("unionId {union_id:?}"),
        ),
        (
            open_id == app.sim.openid(demo::ENTRY_ACCOUNT_APPID, "alice"),
            format!("openId {open_id:?}"),
        ),
        (status.contains("Signed in"), format!("status {status:?}")),
        (
            claims.contains("\"flow_user_id\"")
                && claims.contains(&format!("\"iss\": \"{}\"", app.base)),
            format!("claims {claims}"),
        ),
        (url.path() == "/m/flow_landing", format!("page {url}")),
        (
            !url.as_str().contains("ticket="),
            format!("the spent ticket stays in the address bar: {url}"),
        ),
        (
            jssdk_status.contains("wx.config"),
            format!("JS-SDK status {jssdk_status:?}"),
        ),
        // Signed for the page as it is, without the spent ticket.
        (
            signed.url == url.as_str().split('#').next().unwrap_or_default(),
            format!("JS-SDK url {:?} for page {url}", signed.url),
        ),
        (
            app.sim.verify_wx_config(&signed),
            format!("a wx.config WeChat refuses: {signed:?}"),
        ),
    ];
    for (ok, what) in checks {
        if !ok {
            return Err(format!("unexpected {what}"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_walks_the_h5_sign_in_to_the_landing_page() {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    // The entry account has authorized the component: its JS-SDK ticket comes with the
    // authorizer token.
    crate::jssdk::authorize_entry_account(&app).await;
    let landing_base = landing_server(&app).await;
    let chromium = driver.session(WECHAT_USER_AGENT, (390, 844)).open().await;

    let outcome = walk(&chromium, &app, &landing_base).await;
    chromium.finish(outcome).await;
}
