//! `/metrics` as Prometheus scrapes it: a Mini Program sign-in and a flow grant move the
//! sign-in, token, WeChat-call and HTTP series; no user, openid, ticket or token is ever a label;
//! `WXAUTH_METRICS_LISTEN` takes the scrape off the public listener.

use wxauth::simulator::demo::MINI_PROGRAM_APPID as MP;

use crate::backend_tests;
use crate::harness::{Options, TestApp};
use crate::mini_program::{client, sign_in, token};

/// The value of the series `name{labels}` whose labels include every `label="value"` given.
pub(crate) fn series(scrape: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub(crate) async fn scrape(app: &TestApp) -> String {
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        response.headers()
    );
    response.text().await.unwrap()
}

backend_tests! {
    async fn a_sign_in_and_a_flow_grant_move_the_counters(app: TestApp) {
        // The recorder is the process's: other tests count too, so this test's client is unique
        // and the shared series are compared before and after.
        let client_id = format!("metrics-{}", uuid::Uuid::new_v4().simple());
        let auth = client(&app, &client_id, &["flow"]).await;
        let before = scrape(&app).await;
        let alice = sign_in(&app, "alice").await;
        let form = [
            ("grant_type", "flow".to_string()),
            ("appId", MP.to_string()),
            ("openId", alice["openId"].as_str().unwrap().to_string()),
            ("unionId", alice["unionId"].as_str().unwrap().to_string()),
            ("ticket", alice["ticket"].as_str().unwrap().to_string()),
        ];
        let (status, body) = token(&app, &auth, &form).await;
        assert_eq!(status, 200, "{body}");
        let after = scrape(&app).await;

        let tokens = [("grant", "flow"), ("client", client_id.as_str())];
        assert_eq!(series(&before, "wxauth_tokens_issued_total", &tokens), 0.0);
        assert_eq!(series(&after, "wxauth_tokens_issued_total", &tokens), 1.0, "{after}");
        let moved = |name: &str, labels: &[(&str, &str)]| {
            series(&after, name, labels) - series(&before, name, labels)
        };
        assert!(moved("wxauth_sign_ins_total", &[("channel", "mini_program"), ("outcome", "ok")]) >= 1.0);
        assert!(moved("wxauth_wechat_calls_total", &[("api", "sns/jscode2session"), ("appid", MP), ("errcode", "0")]) >= 1.0);
        assert!(moved("wxauth_http_requests_total", &[("method", "POST"), ("route", "/oauth/token"), ("status", "200")]) >= 1.0);
        assert!(moved("wxauth_http_request_duration_seconds_count", &[("route", "/api/wechat/ma/session")]) >= 1.0);
        assert!(series(&after, "wxauth_db_pool_connections", &[("state", "idle")]) >= 0.0);
        assert!(after.contains("wxauth_db_pool_connections{state=\"in_use\"}"), "{after}");

        for (what, secret) in [
            ("openid", alice["openId"].as_str().unwrap()),
            ("unionid", alice["unionId"].as_str().unwrap()),
            ("session id", alice["sessionId"].as_str().unwrap()),
            ("ticket", alice["ticket"].as_str().unwrap()),
            ("access token", body["access_token"].as_str().unwrap()),
        ] {
            assert!(!after.contains(secret), "the {what} is in a label: {after}");
        }
        // Only label names whose values come from fixed or registered sets.
        let allowed = [
            "method", "route", "status", "grant", "client", "channel", "outcome", "reason",
            "kind", "api", "appid", "errcode", "state", "table", "limit", "le", "quantile",
            "source", "backend",
        ];
        for line in after.lines().filter(|l| !l.starts_with('#')) {
            let Some((_, labels)) = line.split_once('{') else { continue };
            let labels = labels.split('}').next().unwrap();
            for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                let name = pair.split('=').next().unwrap().trim_start_matches(',');
                assert!(allowed.contains(&name), "label {name:?} is not bounded: {line}");
            }
        }
    }
}

#[tokio::test]
async fn a_metrics_listener_of_its_own_takes_the_scrape_off_the_public_one() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = listener.local_addr().unwrap();
    let app = TestApp::spawn_with(
        crate::harness::Backend::Sqlite,
        Options {
            env: vec![("WXAUTH_METRICS_LISTEN".into(), metrics_addr.to_string())],
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let db = app.state.db.clone();
    tokio::spawn(wxauth::serve_metrics(listener, db, std::future::pending()));
    let public = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    let private = app
        .http
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(private.status(), 200);
    assert!(
        private
            .text()
            .await
            .unwrap()
            .contains("wxauth_db_pool_connections")
    );
}

#[tokio::test]
async fn rate_limit_refusals_and_janitor_deletions_are_counted() {
    let app = TestApp::spawn_with(
        crate::harness::Backend::Sqlite,
        Options {
            env: vec![("WXAUTH_LIMIT_MA_SESSION".into(), "2/min".into())],
            ..Options::default()
        },
    )
    .await
    .expect("sqlite always runs");
    let before = scrape(&app).await;

    // Two logins pass; the third from the same address is refused by the limit.
    sign_in(&app, "alice").await;
    sign_in(&app, "bob").await;
    let code = app.sim.mint_js_code(MP, "alice").unwrap();
    let refused = app
        .http
        .post(app.url("/api/wechat/ma/session"))
        .json(&serde_json::json!({ "appId": MP, "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);

    // A day later the two sessions have expired; the janitor deletes them.
    app.clock
        .advance(wxauth::login::mini_program::SESSION_TTL + 60);
    let gone = wxauth::janitor::sweep(&app.state.db, app.state.clock.now(), 180 * 86_400)
        .await
        .unwrap();
    assert!(gone >= 2, "{gone}");
    let after = scrape(&app).await;

    let moved = |name: &str, labels: &[(&str, &str)]| {
        series(&after, name, labels) - series(&before, name, labels)
    };
    assert!(
        moved(
            "wxauth_rate_limit_rejections_total",
            &[("limit", "ma_session")]
        ) >= 1.0,
        "{after}"
    );
    assert!(
        moved(
            "wxauth_janitor_deleted_rows_total",
            &[("table", "mini_session")]
        ) >= 2.0,
        "{after}"
    );
}
