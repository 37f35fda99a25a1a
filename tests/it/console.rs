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

/// POST a console form as the signed-in admin: (status, page).
async fn post_form(
    app: &TestApp,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    let response = app
        .http
        .post(app.url(path))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn get_page(app: &TestApp, cookie: &str, path: &str) -> (u16, String) {
    let response = app
        .http
        .get(app.url(path))
        .header("cookie", cookie)
        .header("accept-language", "en")
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_form_sets_and_clears_the_ticket_policy_introspection_and_first_party() {
    let app = spawn(Some("1000")).await;
    let (cookie, csrf) = session(&app).await;
    let (_, form) = get_page(&app, &cookie, "/admin/clients/new").await;
    assert!(
        form.contains("name=\"flow_ticket\"")
            && form.contains("name=\"introspect\"")
            && form.contains("name=\"first_party\""),
        "{form}"
    );
    let (status, body) = post_form(
        &app,
        &cookie,
        "/admin/clients",
        &[
            ("csrf", &csrf),
            ("client_id", "legacy"),
            ("grant_types", "flow refresh_token"),
            ("scopes", "api"),
            ("flow_ticket", "optional"),
            ("introspect", "yes"),
            ("first_party", "yes"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let client = app.state.clients.get("legacy").await.unwrap().unwrap();
    assert_eq!(
        client.flow_ticket,
        wxauth::oauth::FlowTicketPolicy::Optional
    );
    assert!(client.introspect && client.first_party);
    // The edit page shows them as set.
    let (_, edit) = get_page(&app, &cookie, "/admin/clients/legacy").await;
    assert!(edit.contains("value=\"optional\" selected"), "{edit}");
    assert!(
        edit.contains("id=\"f-introspect\" checked")
            && edit.contains("id=\"f-first-party\" checked"),
        "{edit}"
    );
    // Saved with the boxes unticked and the ticket required: all three change back.
    let (status, body) = post_form(
        &app,
        &cookie,
        "/admin/clients/legacy",
        &[
            ("csrf", &csrf),
            ("grant_types", "flow refresh_token"),
            ("scopes", "api"),
            ("flow_ticket", "required"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let client = app.state.clients.get("legacy").await.unwrap().unwrap();
    assert_eq!(
        client.flow_ticket,
        wxauth::oauth::FlowTicketPolicy::Required
    );
    assert!(!client.introspect && !client.first_party);
    // A made-up policy is refused, naming the field.
    let (status, body) = post_form(
        &app,
        &cookie,
        "/admin/clients/legacy",
        &[
            ("csrf", &csrf),
            ("grant_types", "flow"),
            ("flow_ticket", "whatever"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("flow_ticket"), "{body}");
}

/// The hrefs of the audit pager's links, by id.
fn pager_link(page: &str, id: &str) -> Option<String> {
    let tail = page.split(&format!("id=\"{id}\"")).next()?;
    let href = tail.rsplit("href=\"").next()?.split('"').next()?;
    page.contains(&format!("id=\"{id}\""))
        .then(|| href.replace("&amp;", "&").replace("&#x2f;", "/"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_page_is_paged_with_its_filters_kept() {
    let app = spawn(Some("1000")).await;
    let (cookie, _) = session(&app).await;
    let admin = wxauth::admin::Admin::new(&app.state);
    let actor = wxauth::admin::Actor::cli("test");
    // Between 101 and 150 key changes among other events: three pages of key_changed at 50 a
    // page. (A rotation stages a key per signing algorithm, each audited.)
    let key_changes = || async {
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        entity::audit_event::Entity::find()
            .filter(entity::audit_event::Column::Kind.eq("key_changed"))
            .count(&app.state.db)
            .await
            .unwrap()
    };
    while key_changes().await < 120 {
        let staged = admin.rotate_key(&actor, Some(3600)).await.unwrap();
        admin.retire_key(&actor, &staged.kid).await.unwrap();
    }
    let total = key_changes().await;
    assert!((101..=150).contains(&total), "{total} key changes");
    let rows = |page: &str| page.matches("<td>key_changed</td>").count();
    let (status, first) = get_page(&app, &cookie, "/admin/audit?kind=key_changed").await;
    assert_eq!(status, 200);
    assert_eq!(rows(&first), 50);
    assert!(
        pager_link(&first, "audit-newer").is_none(),
        "the newest page has no newer page"
    );
    let older = pager_link(&first, "audit-older").expect("an older page");
    assert!(
        older.contains("kind=key_changed") && older.contains("before="),
        "{older}"
    );
    let (_, second) = get_page(&app, &cookie, &older).await;
    assert_eq!(rows(&second), 50);
    assert!(
        !second.contains("<td>sign_in</td>"),
        "the filter is kept: {second}"
    );
    let (_, third) = get_page(&app, &cookie, &pager_link(&second, "audit-older").unwrap()).await;
    assert_eq!(rows(&third) as u64, total - 100, "the last page");
    assert!(pager_link(&third, "audit-older").is_none());
    // Back: the newer page of the third is the second, row for row.
    let newer = pager_link(&third, "audit-newer").unwrap();
    assert!(
        newer.contains("kind=key_changed") && newer.contains("after="),
        "{newer}"
    );
    let (_, back) = get_page(&app, &cookie, &newer).await;
    let events = |page: &str| {
        page.split("<tbody>")
            .nth(1)
            .unwrap()
            .split("</tbody>")
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(events(&back), events(&second));
    // The events on separate pages are distinct (keyset, no overlap).
    let (_, all) = get_page(&app, &cookie, "/admin/audit").await;
    assert_eq!(
        all.matches("<tr><td>").count(),
        50,
        "an unfiltered page is 50 events too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_pages_add_update_and_remove_an_app_and_never_show_a_secret() {
    let app = spawn(Some("1000")).await;
    let (cookie, csrf) = session(&app).await;
    let secret = "console-added-app-secret-0123456";
    let reset = "console-reset-app-secret-6543210";
    let appid = "wx00000000000000ee";
    let (status, list) = get_page(&app, &cookie, "/admin/apps").await;
    assert_eq!(status, 200);
    assert!(
        list.contains(wxauth::simulator::demo::MINI_PROGRAM_APPID) && list.contains("Calls today"),
        "{list}"
    );
    assert!(!list.contains(wxauth::simulator::demo::MINI_PROGRAM_SECRET));
    // Without the CSRF token nothing is added.
    let add = |csrf: &str| {
        vec![
            ("csrf".to_owned(), csrf.to_owned()),
            ("appid".to_owned(), appid.to_owned()),
            ("kind".to_owned(), "mini_program".to_owned()),
            ("secret".to_owned(), secret.to_owned()),
        ]
    };
    let response = app
        .http
        .post(app.url("/admin/apps"))
        .header("cookie", &cookie)
        .form(&add("forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(app.state.apps.get(appid).await.unwrap().is_none());
    let response = app
        .http
        .post(app.url("/admin/apps"))
        .header("cookie", &cookie)
        .form(&add(&csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(!body.contains(secret), "{body}");
    assert_eq!(
        app.state
            .apps
            .get(appid)
            .await
            .unwrap()
            .unwrap()
            .secret
            .unwrap()
            .expose(),
        secret
    );
    let (status, page) = get_page(&app, &cookie, &format!("/admin/apps/{appid}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("id=\"app-id\"") && page.contains("stored") && !page.contains(secret),
        "{page}"
    );
    // Update: a new secret, not shown.
    let (status, body) = post_form(
        &app,
        &cookie,
        &format!("/admin/apps/{appid}"),
        &[("csrf", &csrf), ("secret", reset)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(reset));
    assert_eq!(
        app.state
            .apps
            .get(appid)
            .await
            .unwrap()
            .unwrap()
            .secret
            .unwrap()
            .expose(),
        reset
    );
    // An empty update is refused, naming the field.
    let (status, body) = post_form(
        &app,
        &cookie,
        &format!("/admin/apps/{appid}"),
        &[("csrf", &csrf), ("secret", "")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // The demo component is used by two accounts: its removal is refused and says why.
    let component = wxauth::simulator::demo::COMPONENT_APPID;
    let (status, body) = post_form(
        &app,
        &cookie,
        &format!("/admin/apps/{component}/delete"),
        &[("csrf", &csrf), ("confirm", "yes")],
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("still used by official account(s)"), "{body}");
    // Removal needs the box ticked.
    let (status, _) = post_form(
        &app,
        &cookie,
        &format!("/admin/apps/{appid}/delete"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 400);
    assert!(app.state.apps.get(appid).await.unwrap().is_some());
    let (status, _) = post_form(
        &app,
        &cookie,
        &format!("/admin/apps/{appid}/delete"),
        &[("csrf", &csrf), ("confirm", "yes")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(app.state.apps.get(appid).await.unwrap().is_none());
    let events = app
        .state
        .audit
        .list(&wxauth::audit::AuditFilter {
            kind: Some(wxauth::audit::AuditKind::AppChanged),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 3, "add, update, remove: {events:?}");
    assert!(
        events
            .iter()
            .all(|e| e.actor.as_deref() == Some("console:admin-token"))
    );
}
