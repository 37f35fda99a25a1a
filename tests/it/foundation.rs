//! The foundation: health endpoints, storage on every backend, and secrets at rest.

use sea_orm::{ConnectionTrait, EntityTrait, Statement};
use serde_json::Value;
use wxauth::app_registry::{AppKind, NewApp};
use wxauth::secret::Secret;

use crate::backend_tests;
use crate::harness::TestApp;

backend_tests! {
    async fn health_endpoints_answer(app: TestApp) {
        let live = app.http.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(live.status(), 200);
        let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        let body: Value = ready.json().await.unwrap();
        assert_eq!(body["status"], "ready");
    }

    async fn readiness_fails_when_the_database_is_gone(app: TestApp) {
        app.state.db.clone().close().await.unwrap();
        let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 503);
        // Liveness does not depend on the database.
        let live = app.http.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(live.status(), 200);
    }

    async fn migrations_are_idempotent(app: TestApp) {
        wxauth::db::migrate(&app.state.db).await.unwrap();
        wxauth::db::migrate(&app.state.db).await.unwrap();
        // Every table the later capabilities rely on exists; only the first signing key, made
        // at start-up, and the demo apps the harness registers are in them.
        for table in [
            "oauth_client", "wx_app", "flow_user", "wx_user", "mini_session",
            "login_ticket", "refresh_token", "revoked_access_token", "wechat_token",
            "wechat_component_ticket", "audit_event",
        ] {
            let backend = app.state.db.get_database_backend();
            let row = app
                .state
                .db
                .query_one_raw(Statement::from_string(backend, format!("SELECT COUNT(*) AS n FROM {table}")))
                .await
                .unwrap_or_else(|e| panic!("{table}: {e}"))
                .unwrap();
            let n: i64 = row.try_get("", "n").unwrap();
            let expected = if table == "wx_app" {
                wxauth::simulator::demo::registry_apps().len() as i64
            } else {
                0
            };
            assert_eq!(n, expected, "{table}");
        }
        // One key per algorithm in use: ES256 signs access and ID tokens, RS256 the ID tokens of
        // clients that ask for it.
        let keys = entity::signing_key::Entity::find().all(&app.state.db).await.unwrap();
        let mut algs: Vec<&str> = keys.iter().map(|k| k.alg.as_str()).collect();
        algs.sort_unstable();
        assert_eq!(algs, ["ES256", "RS256"]);
    }

    async fn app_secrets_are_sealed_at_rest(app: TestApp) {
        app.state
            .apps
            .add(NewApp {
                appid: "wx4f4bc4dec97d474b".into(),
                kind: AppKind::MiniProgram,
                secret: Some(Secret::new("plain-app-secret-value")),
                component_appid: None,
                is_base: false,
                token: None,
                aes_key: None,
            })
            .await
            .unwrap();
        let row = entity::wx_app::Entity::find_by_id("wx4f4bc4dec97d474b".to_string())
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap();
        let stored = row.secret_enc.unwrap();
        assert!(!stored.contains("plain-app-secret-value"));
        let opened = app.state.apps.get("wx4f4bc4dec97d474b").await.unwrap().unwrap();
        assert_eq!(opened.secret.unwrap().expose(), "plain-app-secret-value");
    }

    async fn a_wechat_identity_is_unique_per_app_and_openid(app: TestApp) {
        use sea_orm::ActiveValue::Set;
        let row = |open_id: &str| entity::wx_user::ActiveModel {
            appid: Set("wx4f4bc4dec97d474b".into()),
            open_id: Set(open_id.into()),
            create_time: Set(0),
            update_time: Set(0),
            del_flag: Set(false),
            ..Default::default()
        };
        entity::wx_user::Entity::insert(row("o1")).exec(&app.state.db).await.unwrap();
        entity::wx_user::Entity::insert(row("o2")).exec(&app.state.db).await.unwrap();
        let dup = entity::wx_user::Entity::insert(row("o1")).exec(&app.state.db).await;
        assert!(dup.is_err(), "a second (appid, openid) row must be refused");
    }
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_foreign_keys() {
    let app = TestApp::spawn(crate::harness::Backend::Sqlite)
        .await
        .unwrap();
    let backend = app.state.db.get_database_backend();
    let mode = app
        .state
        .db
        .query_one_raw(Statement::from_string(
            backend,
            "PRAGMA journal_mode".to_string(),
        ))
        .await
        .unwrap()
        .unwrap();
    let mode: String = mode.try_get_by_index(0).unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    let fk = app
        .state
        .db
        .query_one_raw(Statement::from_string(
            backend,
            "PRAGMA foreign_keys".to_string(),
        ))
        .await
        .unwrap()
        .unwrap();
    let fk: i64 = fk.try_get_by_index(0).unwrap();
    assert_eq!(fk, 1);
}

#[tokio::test]
async fn sqlite_copies_each_write_into_the_database_file_in_the_background() {
    // A sign-in writes a few pages, far fewer than the 20,000 after which a commit would
    // checkpoint by itself: the server's checkpoint task copies them into the database file,
    // where a copy of that file alone (no -wal beside it) finds them within seconds.
    let app = TestApp::spawn(crate::harness::Backend::Sqlite)
        .await
        .unwrap();
    let pages: i64 = app
        .state
        .db
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "PRAGMA wal_autocheckpoint",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    assert_eq!(pages, 20_000);
    let file = app
        .database_url()
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    crate::mini_program::sign_in(&app, "alice").await;
    let copies = crate::harness::TempDir::new();
    let mut sessions_in_file = 0;
    for attempt in 0..50 {
        let copy = copies.0.join(format!("copy-{attempt}.db"));
        std::fs::copy(&file, &copy).unwrap();
        let db = sea_orm::Database::connect(format!("sqlite://{}?mode=rwc", copy.display()))
            .await
            .unwrap();
        sessions_in_file = entity::mini_session::Entity::find()
            .all(&db)
            .await
            .map_or(0, |rows| rows.len());
        db.close().await.unwrap();
        if sessions_in_file == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        sessions_in_file, 1,
        "the session is in the database file itself"
    );
}

backend_tests! {
    async fn the_janitor_sweeps_expired_rows_and_keeps_live_ones(app: TestApp) {
        use sea_orm::PaginatorTrait;
        use wxauth::users::IdentityKey;
        let identity = IdentityKey::new("wxd000000000000001".parse().unwrap(), "o-1", None::<String>);
        let old = app.state.tickets.mint(&identity).await.unwrap();
        let (old_cookie, _) = app.state.sessions.start(1, wxauth::login::SignInMethod::WeChatQr).await.unwrap();
        app.clock.advance(wxauth::login::browser_session::BROWSER_SESSION_TTL + 1);
        let fresh = app.state.tickets.mint(&identity).await.unwrap();
        let (fresh_cookie, _) = app.state.sessions.start(1, wxauth::login::SignInMethod::WeChatQr).await.unwrap();

        let gone = wxauth::janitor::sweep(&app.state.db, app.state.clock.now(), 180 * 86_400).await.unwrap();
        assert_eq!(gone, 2, "the old ticket and the old session");
        assert_eq!(entity::login_ticket::Entity::find().count(&app.state.db).await.unwrap(), 1);
        assert!(app.state.sessions.current(&old_cookie).await.unwrap().is_none());
        assert!(app.state.sessions.current(&fresh_cookie).await.unwrap().is_some());
        assert!(app.state.tickets.consume(&fresh, &identity).await.unwrap());
        assert!(!app.state.tickets.consume(&old, &identity).await.unwrap());
    }

    async fn the_janitor_sweeps_a_persons_current_session_key_an_hour_after_their_sessions(app: TestApp) {
        use sea_orm::PaginatorTrait;
        use entity::{mini_current_key, mini_session};
        // Alice signs in twice (the second replaces the first's key); a day later Bob signs in.
        let first = crate::mini_program::sign_in(&app, "alice").await;
        crate::mini_program::sign_in(&app, "alice").await;
        assert_eq!(mini_current_key::Entity::find().count(&app.state.db).await.unwrap(), 1);
        app.clock.advance(wxauth::login::mini_program::SESSION_TTL + 1);
        let bob = crate::mini_program::sign_in(&app, "bob").await;
        let sweep = || wxauth::janitor::sweep(&app.state.db, app.state.clock.now(), 180 * 86_400);

        // Alice's session has ended; her current key stays for the hour's grace.
        sweep().await.unwrap();
        assert_eq!(mini_session::Entity::find().count(&app.state.db).await.unwrap(), 1, "Bob's session");
        assert_eq!(mini_current_key::Entity::find().count(&app.state.db).await.unwrap(), 2);
        app.clock.advance(wxauth::janitor::CURRENT_KEY_GRACE);
        sweep().await.unwrap();
        let left = mini_current_key::Entity::find().all(&app.state.db).await.unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].open_id, bob["openId"].as_str().unwrap());
        assert_ne!(left[0].open_id, first["openId"].as_str().unwrap());
        // Bob's session is still live.
        crate::mini_program::client(&app, "front", &["flow"]).await;
        let (status, body) = crate::web_view::mint(&app, bob["sessionId"].as_str().unwrap(), "front").await;
        assert_eq!(status, 200, "{body}");
    }

    async fn the_janitor_deletes_refresh_families_past_their_absolute_end(app: TestApp) {
        use sea_orm::{ActiveModelTrait, PaginatorTrait, Set};
        use entity::refresh_token_family::{ActiveModel, Entity};
        let now = app.state.clock.now();
        for (id, expires_at) in [("ended", now - 1), ("live", now + 3600)] {
            ActiveModel {
                family_id: Set(id.into()),
                client_id: Set("c".into()),
                owner_id: Set("1".into()),
                created_at: Set(now - 7200),
                expires_at: Set(expires_at),
                last_rotated_at: Set(None),
                revoked_at: Set(None),
            }
            .insert(&app.state.db)
            .await
            .unwrap();
        }
        let gone = wxauth::janitor::sweep(&app.state.db, now, 180 * 86_400).await.unwrap();
        assert_eq!(gone, 1);
        assert_eq!(Entity::find().count(&app.state.db).await.unwrap(), 1);
        assert!(Entity::find_by_id("live").one(&app.state.db).await.unwrap().is_some());
    }
}
