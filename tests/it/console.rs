//! The console's refusals over HTTP: a change without the session's CSRF token is refused and
//! changes nothing; a wrong break-glass token is refused with the same page each time and then
//! throttled like other guessing; pages without a session send the browser to sign in; the
//! session cookie is HttpOnly and SameSite=Strict.

use crate::harness::{Backend, Options, TestApp};

/// The break-glass token the console tests sign in with.
pub const ADMIN_TOKEN: &str = "console-break-glass-token-for-http-tests";

/// An app on SQLite with the break-glass token set (and, when given, the free failures of the
/// guessing throttle).
pub async fn spawn(free_failures: Option<&str>) -> TestApp {
    let mut env = vec![("WXAUTH_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned())];
    if let Some(n) = free_failures {
        env.push(("WXAUTH_CLIENT_AUTH_FREE_FAILURES".to_owned(), n.to_owned()));
    }
    TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            env,
            ..Options::default()
        },
    )
    .await
    .expect("sqlite always runs")
}

async fn token_sign_in(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .post(app.url("/admin/login/token"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

/// Sign in with the break-glass token: the session cookie (`name=value`) and its CSRF token.
async fn session(app: &TestApp) -> (String, String) {
    let response = token_sign_in(app, ADMIN_TOKEN).await;
    assert_eq!(response.status(), 200);
    let set = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set.starts_with("wxauth_console="), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = app
        .http
        .get(app.url("/admin/clients/new"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF field")
        .to_owned();
    (cookie, csrf)
}

async fn create_shop(app: &TestApp, cookie: &str, csrf: Option<&str>) -> (u16, String) {
    let mut form = vec![
        ("client_id", "shop"),
        ("grant_types", "client_credentials"),
        ("scopes", "api"),
    ];
    if let Some(csrf) = csrf {
        form.push(("csrf", csrf));
    }
    let response = app
        .http
        .post(app.url("/admin/clients"))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_without_the_csrf_token_is_refused() {
    let app = spawn(Some("1000")).await;
    let (cookie, csrf) = session(&app).await;
    for presented in [None, Some(""), Some("forged")] {
        let (status, body) = create_shop(&app, &cookie, presented).await;
        assert_eq!(status, 403, "{presented:?}: {body}");
        assert!(app.state.clients.get("shop").await.unwrap().is_none());
    }
    // Another session's token does not count either.
    let (_, other_csrf) = session(&app).await;
    assert_eq!(create_shop(&app, &cookie, Some(&other_csrf)).await.0, 403);
    assert!(app.state.clients.get("shop").await.unwrap().is_none());

    let (status, body) = create_shop(&app, &cookie, Some(&csrf)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("id=\"client-secret\""), "{body}");
    assert!(app.state.clients.get("shop").await.unwrap().is_some());
    let events = app
        .state
        .audit
        .list(&wxauth::audit::AuditFilter {
            client_id: Some("shop".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor.as_deref(), Some("console:admin-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_without_a_session_go_to_sign_in_and_a_forged_cookie_is_no_session() {
    let app = spawn(Some("1000")).await;
    for path in [
        "/admin/users",
        "/admin/clients",
        "/admin/keys",
        "/admin/audit",
        "/admin/admins",
    ] {
        for cookie in [None, Some("wxauth_console=v2.forged")] {
            let mut request = app.http.get(app.url(path));
            if let Some(c) = cookie {
                request = request.header("cookie", c);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 303, "{path}");
            assert_eq!(response.headers()["location"], "/admin/login", "{path}");
        }
    }
    // A change without a session changes nothing.
    let (status, _) = create_shop(&app, "", Some("x")).await;
    assert_eq!(status, 303);
    assert!(app.state.clients.get("shop").await.unwrap().is_none());
    // The sign-in page has a strict CSP and no scripts.
    let response = app.http.get(app.url("/admin/login")).send().await.unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let body = response.text().await.unwrap();
    assert!(!body.contains("<script"), "{body}");
    assert!(body.contains("使用微信登录"), "Chinese by default");
    let english = app
        .http
        .get(app.url("/admin/login"))
        .header("accept-language", "en-US,en;q=0.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(english.contains("Sign in with WeChat"), "{english}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_break_glass_token_is_refused_and_then_throttled() {
    let app = spawn(None).await;
    let mut statuses = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..8 {
        let response = token_sign_in(&app, "console-guess").await;
        statuses.push(response.status().as_u16());
        assert!(response.headers().get("set-cookie").is_none());
        bodies.push(response.text().await.unwrap());
    }
    assert_eq!(&statuses[..6], [401; 6], "{statuses:?}");
    assert_eq!(statuses[7], 429, "{statuses:?}");
    assert_eq!(bodies[0], bodies[5], "one answer for every wrong token");
    // While blocked, even the right token waits.
    let response = token_sign_in(&app, ADMIN_TOKEN).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("set-cookie").is_none());
}
