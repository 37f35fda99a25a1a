//! The WeChat credential broker, over HTTP against the simulator: a client with the
//! `wechat:credentials` scope and the appid on its list gets the very token wxauth uses (the
//! simulator says it is valid and whose it is) with its remaining lifetime; strangers, clients
//! without the scope and clients asking for another app get nothing; `force` refreshes at most
//! once a minute per app, and two instances racing on every backend refetch once; every
//! hand-out is audited per client and counted; the client's appids are set through the admin
//! API.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Barrier;
use wxauth::audit::{AuditFilter, AuditKind};
use wxauth::oauth::NewClient;
use wxauth::secret::Secret;
use wxauth::simulator::demo;
use wxauth::wechat::AppId;

use crate::harness::{Options, TestApp};
use crate::jssdk::authorize_entry_account;
use crate::oauth::basic;

const PATH: &str = "/api/wechat/credentials";
const SECRET: &str = "a-long-billing-client-secret";
const MP: &str = demo::MINI_PROGRAM_APPID;

/// A confidential client, with `scopes` and the broker's `appids`.
async fn client(app: &TestApp, id: &str, scopes: &[&str], appids: &[&str]) {
    app.state
        .clients
        .create(NewClient {
            client_id: id.into(),
            secret: Some(Secret::new(SECRET)),
            grant_types: vec!["client_credentials".into()],
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            wechat_appids: appids.iter().map(|s| s.to_string()).collect(),
            ..NewClient::default()
        })
        .await
        .unwrap();
}

async fn ask(app: &TestApp, auth: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = app.http.post(app.url(PATH)).json(&body);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn events(app: &TestApp, client_id: &str) -> Vec<wxauth::audit::StoredEvent> {
    app.state
        .audit
        .list(&AuditFilter {
            client_id: Some(client_id.into()),
            kind: Some(AuditKind::WeChatCredential),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
}

/// Another service fetching the app's token itself, forcing a new one: WeChat retires the
/// previous token 5 minutes later.
async fn rogue_refresh(app: &TestApp) -> String {
    let answer: Value = app
        .http
        .post(format!("{}/cgi-bin/stable_token", app.sim_base))
        .json(&json!({
            "grant_type": "client_credential",
            "appid": MP,
            "secret": demo::MINI_PROGRAM_SECRET,
            "force_refresh": true
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

fn advance(app: &TestApp, secs: i64) {
    app.clock.advance(secs);
    app.sim.advance_clock(secs);
}

crate::backend_tests! {
    async fn a_client_gets_the_token_wxauth_itself_uses(app: TestApp) {
        client(&app, "billing", &["wechat:credentials"], &[MP]).await;
        let auth = basic("billing", SECRET);
        let (status, answer) = ask(&app, Some(&auth), json!({ "appId": MP, "kind": "access_token" })).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["appId"], MP);
        assert_eq!(answer["kind"], "access_token");
        // The test clock follows the wall clock (plus what `advance` adds): a second may tick
        // between the fetch and the answer.
        let fresh_for = answer["expires_in"].as_i64().unwrap();
        assert!((7199..=7200).contains(&fresh_for), "{answer}");
        assert_eq!(answer["refreshed"], false);
        let token = answer["token"].as_str().unwrap();
        // WeChat accepts it as the app's access token …
        let check = app.sim.check_credential(token);
        assert!(check.valid, "{check:?}");
        assert_eq!(check.kind.as_deref(), Some("app"));
        assert_eq!(check.appid.as_deref(), Some(MP));
        // … and it is the one wxauth itself uses: fetched once for both.
        let used = app.state.wechat.app_access_token(&AppId::parse(MP).unwrap()).await.unwrap();
        assert_eq!(used.expose(), token);
        assert_eq!(app.sim.calls("/cgi-bin/stable_token"), 1);
        // Later the remaining lifetime shrinks and the token stays the same.
        advance(&app, 1000);
        let (status, later) = ask(&app, Some(&auth), json!({ "appId": MP, "kind": "access_token" })).await;
        assert_eq!(status, 200, "{later}");
        assert_eq!(later["token"].as_str(), Some(token));
        let later_for = later["expires_in"].as_i64().unwrap();
        assert!((fresh_for - 1001..=fresh_for - 1000).contains(&later_for), "{later}");
        assert_eq!(app.sim.calls("/cgi-bin/stable_token"), 1);
        // Each hand-out is audited for the client (never the token) and counted.
        let handed = events(&app, "billing").await;
        assert_eq!(handed.len(), 2);
        assert!(handed.iter().all(|e| e.outcome == "ok" && e.subject.as_deref() == Some(MP)));
        assert!(handed.iter().all(|e| !e.detail.contains(token)));
        let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        // At least this test's two: under `cargo test` every backend's run shares the process's
        // metrics recorder (and this client id).
        assert!(
            metrics.lines().any(|l| l.starts_with("wxauth_wechat_credentials_total{")
                && l.contains("client=\"billing\"")
                && l.contains(&format!("appid=\"{MP}\""))
                && l.contains("outcome=\"ok\"")
                && l
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n >= 2)),
            "{metrics}"
        );
    }

    async fn every_kind_is_the_real_credential_of_its_app(app: TestApp) {
        authorize_entry_account(&app).await;
        client(&app, "wechat-ops", &["wechat:credentials"], &[demo::ENTRY_ACCOUNT_APPID, demo::COMPONENT_APPID]).await;
        let auth = basic("wechat-ops", SECRET);
        for (appid, kind, wechat_kind) in [
            (demo::ENTRY_ACCOUNT_APPID, "authorizer_access_token", "authorizer"),
            (demo::ENTRY_ACCOUNT_APPID, "jsapi_ticket", "jsapi_ticket"),
            (demo::COMPONENT_APPID, "component_access_token", "component"),
        ] {
            let (status, answer) = ask(&app, Some(&auth), json!({ "appId": appid, "kind": kind })).await;
            assert_eq!(status, 200, "{kind}: {answer}");
            let check = app.sim.check_credential(answer["token"].as_str().unwrap());
            assert!(check.valid, "{kind}: {check:?}");
            assert_eq!(check.kind.as_deref(), Some(wechat_kind));
            assert_eq!(check.appid.as_deref(), Some(appid));
            assert!(answer["expires_in"].as_i64().unwrap() > 7000, "{answer}");
        }
        // A kind the app does not have is the caller's mistake, not an outage.
        for (appid, kind) in [
            (demo::ENTRY_ACCOUNT_APPID, "access_token"),
            (demo::COMPONENT_APPID, "jsapi_ticket"),
            (demo::ENTRY_ACCOUNT_APPID, "session_key"),
        ] {
            let (status, answer) = ask(&app, Some(&auth), json!({ "appId": appid, "kind": kind })).await;
            assert_eq!(status, 400, "{kind}: {answer}");
            assert!(answer.get("token").is_none());
        }
    }

    async fn strangers_and_clients_without_the_scope_or_the_app_get_nothing(app: TestApp) {
        client(&app, "billing", &["wechat:credentials"], &[MP]).await;
        client(&app, "no-scope", &["openid"], &[MP]).await;
        client(&app, "other-app", &["wechat:credentials"], &[demo::BASE_ACCOUNT_APPID]).await;
        let body = json!({ "appId": MP, "kind": "access_token" });
        let (status, answer) = ask(&app, None, body.clone()).await;
        assert_eq!((status, answer["error"].as_str()), (401, Some("invalid_client")), "{answer}");
        let (status, answer) = ask(&app, Some(&basic("billing", "a-wrong-secret-of-some-length")), body.clone()).await;
        assert_eq!((status, answer["error"].as_str()), (401, Some("invalid_client")), "{answer}");
        let (status, answer) = ask(&app, Some(&basic("nobody", SECRET)), body.clone()).await;
        assert_eq!((status, answer["error"].as_str()), (401, Some("invalid_client")), "{answer}");
        let (status, answer) = ask(&app, Some(&basic("no-scope", SECRET)), body.clone()).await;
        assert_eq!((status, answer["error"].as_str()), (403, Some("access_denied")), "{answer}");
        assert!(answer["error_description"].as_str().unwrap().contains("wechat:credentials"));
        let (status, answer) = ask(&app, Some(&basic("other-app", SECRET)), body.clone()).await;
        assert_eq!((status, answer["error"].as_str()), (403, Some("access_denied")), "{answer}");
        // An appid that is not even registered gets the same answer: the list decides first.
        let (status, _) = ask(&app, Some(&basic("other-app", SECRET)), json!({ "appId": "wx0123456789abcdef", "kind": "access_token" })).await;
        assert_eq!(status, 403);
        // Nothing was fetched from WeChat for any of them, and the refusals are audited.
        assert_eq!(app.sim.calls("/cgi-bin/stable_token"), 0);
        for id in ["no-scope", "other-app"] {
            let refused = events(&app, id).await;
            assert!(!refused.is_empty() && refused.iter().all(|e| e.outcome == "refused"), "{id}: {refused:?}");
        }
        // The rightful client still gets it.
        let (status, answer) = ask(&app, Some(&basic("billing", SECRET)), body).await;
        assert_eq!(status, 200, "{answer}");
    }

    async fn force_refreshes_at_most_once_a_minute(app: TestApp) {
        client(&app, "billing", &["wechat:credentials"], &[MP]).await;
        let auth = basic("billing", SECRET);
        let body = json!({ "appId": MP, "kind": "access_token" });
        let forced = json!({ "appId": MP, "kind": "access_token", "force": true });
        let (_, first) = ask(&app, Some(&auth), body.clone()).await;
        let first = first["token"].as_str().unwrap().to_owned();
        // Another service forced a new token; five minutes on, WeChat refuses ours.
        let rogue = rogue_refresh(&app).await;
        advance(&app, 301);
        assert!(!app.sim.check_credential(&first).valid);
        let (_, cached) = ask(&app, Some(&auth), body.clone()).await;
        assert_eq!(cached["token"].as_str(), Some(first.as_str()), "without force the cached token stays");
        // A service that saw the refusal asks with force: the token WeChat accepts comes back.
        let before = app.sim.calls("/cgi-bin/stable_token");
        let (status, refreshed) = ask(&app, Some(&auth), forced.clone()).await;
        assert_eq!(status, 200, "{refreshed}");
        assert_eq!(refreshed["refreshed"], true);
        assert_eq!(refreshed["token"].as_str(), Some(rogue.as_str()));
        assert!(app.sim.check_credential(&rogue).valid);
        assert_eq!(app.sim.calls("/cgi-bin/stable_token"), before + 1);
        // Within the minute, force changes nothing and costs WeChat nothing.
        for _ in 0..3 {
            advance(&app, 10);
            let (status, again) = ask(&app, Some(&auth), forced.clone()).await;
            assert_eq!(status, 200, "{again}");
            assert_eq!(again["refreshed"], false);
            assert_eq!(again["token"].as_str(), Some(rogue.as_str()));
        }
        assert_eq!(app.sim.calls("/cgi-bin/stable_token"), before + 1);
        // A minute after the last forced refresh, force works again.
        advance(&app, 31);
        let (_, later) = ask(&app, Some(&auth), forced).await;
        assert_eq!(later["refreshed"], true, "{later}");
        assert_eq!(app.sim.calls("/cgi-bin/stable_token"), before + 2);
        let audited = events(&app, "billing").await;
        assert_eq!(audited.iter().filter(|e| e.detail.contains("\"refreshed\":true")).count(), 2);
    }

    async fn two_instances_racing_to_force_refetch_once(app: TestApp) {
        client(&app, "billing", &["wechat:credentials"], &[MP]).await;
        let second = TestApp::spawn_with(
            app.backend,
            Options { share: Some(app.sharing()), ..Options::default() },
        )
        .await
        .expect("a second instance on the same database");
        let apps = Arc::new([app, second]);
        let auth = basic("billing", SECRET);
        let plain = json!({ "appId": MP, "kind": "access_token" });
        const PER_INSTANCE: usize = 4;
        for round in 0..5 {
            // Both instances hold the current token …
            let mut held = Vec::new();
            for instance in apps.iter() {
                let (status, answer) = ask(instance, Some(&auth), plain.clone()).await;
                assert_eq!(status, 200, "round {round}: {answer}");
                held.push(answer["token"].as_str().unwrap().to_owned());
            }
            assert_eq!(held[0], held[1]);
            // … which WeChat stops accepting: another service forced a new one, 5 minutes ago
            // (and more than a minute passed since the last forced refresh).
            let current = rogue_refresh(&apps[0]).await;
            advance(&apps[0], 301);
            assert!(!apps[0].sim.check_credential(&held[0]).valid);
            let before = apps[0].sim.calls("/cgi-bin/stable_token");
            let barrier = Arc::new(Barrier::new(2 * PER_INSTANCE));
            let mut tasks = Vec::new();
            for n in 0..2 * PER_INSTANCE {
                let (apps, barrier, auth) = (apps.clone(), barrier.clone(), auth.clone());
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    ask(&apps[n % 2], Some(&auth), json!({ "appId": MP, "kind": "access_token", "force": true })).await
                }));
            }
            let mut answers = Vec::new();
            for task in tasks {
                let (status, answer) = task.await.unwrap();
                assert_eq!(status, 200, "round {round}: {answer}");
                answers.push(answer);
            }
            let refreshed = answers.iter().filter(|a| a["refreshed"] == true).count();
            assert_eq!(refreshed, 1, "round {round}: {answers:?}");
            assert_eq!(apps[0].sim.calls("/cgi-bin/stable_token") - before, 1, "round {round}");
            // Every caller, on either instance, gets the token WeChat accepts now.
            assert!(
                answers.iter().all(|a| a["token"].as_str() == Some(current.as_str())),
                "round {round}: {answers:?}"
            );
            assert!(apps[0].sim.check_credential(&current).valid);
            // And so does a plain request on the other instance afterwards.
            let (_, after) = ask(&apps[1], Some(&auth), plain.clone()).await;
            assert_eq!(after["token"].as_str(), Some(current.as_str()), "round {round}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_sets_which_apps_a_client_may_fetch() {
    const ADMIN_TOKEN: &str = "admin-token-for-the-credential-tests";
    let app = TestApp::spawn_with(
        crate::harness::Backend::Sqlite,
        Options {
            env: vec![("WXAUTH_ADMIN_TOKEN".into(), ADMIN_TOKEN.into())],
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let admin = |method: Method, path: &'static str, body: Value| {
        crate::admin_api::call_as(&app, Some(ADMIN_TOKEN), method, path, Some(body))
    };
    let (status, created) = admin(
        Method::POST,
        "/clients",
        json!({
            "client_id": "billing",
            "grant_types": ["client_credentials"],
            "scopes": ["wechat:credentials"],
            "wechat_appids": [MP]
        }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["wechat_appids"], json!([MP]));
    let auth = basic("billing", created["client_secret"].as_str().unwrap());
    let body = json!({ "appId": MP, "kind": "access_token" });
    let (status, answer) = ask(&app, Some(&auth), body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let (status, bad) = admin(
        Method::PATCH,
        "/clients/billing",
        json!({ "wechat_appids": ["not-an-appid"] }),
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    let (status, changed) = admin(
        Method::PATCH,
        "/clients/billing",
        json!({ "wechat_appids": [] }),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["wechat_appids"], json!([]));
    // The registry's cache holds a client a few seconds; past it the change is in force.
    app.clock
        .advance(wxauth::oauth::client_registry::CLIENT_CACHE_TTL + 1);
    let (status, answer) = ask(&app, Some(&auth), body).await;
    assert_eq!(status, 403, "{answer}");
}
