//! The JS-SDK configuration of official-account H5 pages, over HTTP against the simulator:
//! the signature WeChat's JS bridge accepts (the simulator checks it against the tickets it
//! issued), one `getticket` per expiry, the authorizer token for component-authorized accounts
//! and the account's own token otherwise, the ticket refetched once after the token is refused,
//! pages on hosts outside the allowlist refused, CORS for the clients' origins, a per-IP limit
//! and a 503 with `Retry-After` when WeChat is down.

use serde_json::Value;
use wxauth::app_registry::{AppKind, NewApp};
use wxauth::secret::Secret;
use wxauth::simulator::jssdk::WxConfig;
use wxauth::simulator::{SimApp, SimAppKind, demo};
use wxauth::wechat::AppId;

use crate::harness::{ClientFixture, Options, TestApp};

const CONFIG: &str = "/api/wechat/jssdk/config";
/// An official account with its own secret (not under the component).
const OWN_ACCOUNT: &str = "wxe000000000000001";
const OWN_SECRET: &str = "e0000000000000000000000000000001";

/// The entry account under the demo component, with its authorizer refresh token stored (as
/// after the account's owner authorized the component).
pub(crate) async fn authorize_entry_account(app: &TestApp) {
    app.push_component_ticket().await;
    let code = app
        .sim
        .authorize_component(demo::COMPONENT_APPID, demo::ENTRY_ACCOUNT_APPID)
        .unwrap();
    let component = AppId::parse(demo::COMPONENT_APPID).unwrap();
    app.state
        .wechat
        .query_auth(&component, &code)
        .await
        .unwrap();
}

/// An official account with its own secret, on both sides.
pub(crate) async fn own_account(app: &TestApp) {
    app.sim.register_app(SimApp {
        appid: OWN_ACCOUNT.into(),
        secret: OWN_SECRET.into(),
        kind: SimAppKind::OfficialAccount,
        open_platform: None,
        component_appid: None,
        component: None,
    });
    app.state
        .apps
        .add(NewApp {
            appid: OWN_ACCOUNT.into(),
            kind: AppKind::OfficialAccount,
            secret: Some(Secret::new(OWN_SECRET)),
            component_appid: None,
            is_base: false,
            token: None,
            aes_key: None,
        })
        .await
        .unwrap();
}

async fn config(app: &TestApp, appid: &str, url: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = app
        .http
        .get(app.url(CONFIG))
        .query(&[("appId", appid), ("url", url)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

/// Whether WeChat's JS bridge accepts `answer` as the `wx.config` of the page at `url`.
fn wechat_accepts(app: &TestApp, answer: &Value, url: &str) -> bool {
    app.sim.verify_wx_config(&WxConfig {
        app_id: answer["appId"].as_str().unwrap_or_default().into(),
        url: url.into(),
        timestamp: answer["timestamp"].as_i64().unwrap_or_default(),
        nonce_str: answer["nonceStr"].as_str().unwrap_or_default().into(),
        signature: answer["signature"].as_str().unwrap_or_default().into(),
    })
}

crate::backend_tests! {
    async fn a_page_of_a_component_authorized_account_gets_a_signature_wechat_accepts(app: TestApp) {
        authorize_entry_account(&app).await;
        let page = "http://127.0.0.1:9000/shop/item?id=7&from=share#/detail";
        let before = app.state.clock.now();
        let (status, answer, headers) = config(&app, demo::ENTRY_ACCOUNT_APPID, page).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(answer["appId"], demo::ENTRY_ACCOUNT_APPID);
        let timestamp = answer["timestamp"].as_i64().unwrap();
        assert!((before..=app.state.clock.now()).contains(&timestamp), "{answer}");
        assert_eq!(answer["nonceStr"].as_str().map(str::len), Some(16), "{answer}");
        assert!(wechat_accepts(&app, &answer, page), "{answer}");
        // The fragment is not signed: the page's URL without it verifies the same.
        assert!(wechat_accepts(&app, &answer, "http://127.0.0.1:9000/shop/item?id=7&from=share"));
        // Another page's URL does not.
        assert!(!wechat_accepts(&app, &answer, "http://127.0.0.1:9000/shop/item?id=8"));
        // The ticket was fetched with the authorizer token, once; the next pages reuse it.
        for n in 0..3 {
            let (status, again, _) =
                config(&app, demo::ENTRY_ACCOUNT_APPID, &format!("http://127.0.0.1:9000/p{n}")).await;
            assert_eq!(status, 200, "{again}");
            assert_ne!(again["nonceStr"], answer["nonceStr"]);
        }
        assert_eq!(app.sim.calls("/cgi-bin/ticket/getticket"), 1);
        assert_eq!(app.sim.calls("/cgi-bin/stable_token"), 0);
        // Past the ticket's expiry a new one is fetched, and signatures follow it.
        app.clock.advance(7200);
        app.sim.advance_clock(7200);
        let (status, later, _) = config(&app, demo::ENTRY_ACCOUNT_APPID, page).await;
        assert_eq!(status, 200, "{later}");
        assert!(wechat_accepts(&app, &later, page), "{later}");
        assert_eq!(app.sim.calls("/cgi-bin/ticket/getticket"), 2);
    }

    async fn a_ticket_refused_for_a_replaced_token_is_fetched_again_with_a_fresh_token(app: TestApp) {
        own_account(&app).await;
        let appid = AppId::parse(OWN_ACCOUNT).unwrap();
        // wxauth holds the account's access token …
        let ours = app.state.wechat.app_access_token(&appid).await.unwrap();
        // … and another service fetches one itself: WeChat retires ours 5 minutes later.
        let rogue: Value = app
            .http
            .get(format!("{}/cgi-bin/token", app.sim_base))
            .query(&[("grant_type", "client_credential"), ("appid", OWN_ACCOUNT), ("secret", OWN_SECRET)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        app.clock.advance(301);
        app.sim.advance_clock(301);
        assert!(!app.sim.check_credential(ours.expose()).valid);
        let page = "http://127.0.0.1/pay";
        let (status, answer, _) = config(&app, OWN_ACCOUNT, page).await;
        assert_eq!(status, 200, "{answer}");
        assert!(wechat_accepts(&app, &answer, page), "{answer}");
        // Refused once (42001), the token dropped and fetched again, the ticket asked once more.
        assert_eq!(app.sim.calls("/cgi-bin/ticket/getticket"), 2);
        assert_eq!(app.sim.calls("/cgi-bin/stable_token"), 2);
        let now_held = app.state.wechat.app_access_token(&appid).await.unwrap();
        assert_eq!(Some(now_held.expose()), rogue["access_token"].as_str());
    }

    async fn pages_on_hosts_outside_the_allowlist_get_no_signature(app: TestApp) {
        authorize_entry_account(&app).await;
        for page in [
            "https://evil.example/phish",
            "https://app.example.com.evil.com/",
            "https://evil-app.example.com/",
            "javascript:alert(1)//app.example.com",
            "//app.example.com/x",
            "https://user@app.example.com/",
            "",
        ] {
            let (status, answer, _) = config(&app, demo::ENTRY_ACCOUNT_APPID, page).await;
            assert_eq!(status, 400, "{page}: {answer}");
            assert_eq!(answer["error"], "invalid_request", "{page}");
            assert!(answer.get("signature").is_none(), "{page}: {answer}");
            assert!(answer["error_description"].as_str().unwrap().contains("url"), "{answer}");
        }
        let (status, answer, _) = config(&app, demo::ENTRY_ACCOUNT_APPID, "https://evil.example/").await;
        assert!(answer["error_description"].as_str().unwrap().contains("WXAUTH_REDIRECT_ALLOWLIST"), "{status} {answer}");
        // Not an official account wxauth serves, or not an appid at all.
        for appid in [demo::MINI_PROGRAM_APPID, "wx0123456789abcdef", "nope"] {
            let (status, answer, _) = config(&app, appid, "https://app.example.com/").await;
            assert_eq!(status, 400, "{appid}: {answer}");
        }
        assert_eq!(app.sim.calls("/cgi-bin/ticket/getticket"), 0);
    }

    async fn wechat_down_is_a_503_with_retry_after(app: TestApp) {
        authorize_entry_account(&app).await;
        app.sim.fail_http(20);
        let (status, answer, headers) =
            config(&app, demo::ENTRY_ACCOUNT_APPID, "https://app.example.com/").await;
        assert_eq!(status, 503, "{answer}");
        assert_eq!(answer["error"], "temporarily_unavailable");
        assert!(headers.get("retry-after").is_some(), "{headers:?}");
        app.sim.clear_faults();
        let (status, answer, _) =
            config(&app, demo::ENTRY_ACCOUNT_APPID, "https://app.example.com/").await;
        assert_eq!(status, 200, "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_clients_origins_may_call_it_from_a_browser() {
    let app = TestApp::spawn(crate::harness::Backend::Sqlite)
        .await
        .unwrap();
    authorize_entry_account(&app).await;
    ClientFixture::new("shop", "a-long-shop-client-secret", &["authorization_code"])
        .scopes(&["openid"])
        .redirect_uris(&["https://app.example.com/callback"])
        .register(&app)
        .await;
    let ask = |origin: &'static str| {
        app.http
            .get(app.url(CONFIG))
            .query(&[
                ("appId", demo::ENTRY_ACCOUNT_APPID),
                ("url", "https://app.example.com/"),
            ])
            .header("origin", origin)
            .send()
    };
    let allowed = ask("https://app.example.com").await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(
        allowed
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let stranger = ask("https://evil.example").await.unwrap();
    assert!(
        stranger
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "{:?}",
        stranger.headers()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_asking_too_often_is_told_to_wait() {
    let app = TestApp::spawn_with(
        crate::harness::Backend::Sqlite,
        Options {
            env: vec![("WXAUTH_LIMIT_JSSDK_CONFIG".into(), "3/min".into())],
            ..Options::default()
        },
    )
    .await
    .unwrap();
    authorize_entry_account(&app).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let (status, _, headers) =
            config(&app, demo::ENTRY_ACCOUNT_APPID, "https://app.example.com/").await;
        statuses.push(status);
        retry_after = retry_after.or(headers.get("retry-after").cloned());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert!(retry_after.is_some());
    assert_eq!(app.sim.calls("/cgi-bin/ticket/getticket"), 1);
}
