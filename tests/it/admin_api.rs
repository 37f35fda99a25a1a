//! The admin API, `/admin/api/v1`, as an administrator's script uses it: users (find, show,
//! disable and enable, revoke, export, delete), clients (with a secret rotation whose old secret
//! keeps working for the overlap), staged signing keys and the audit trail. Every resource
//! refuses a request without a token and one with a wrong token alike; wrong tokens from one
//! address are throttled.

use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use wxauth::simulator::demo;
use wxauth::simulator::demo::MINI_PROGRAM_APPID as MP;
use wxauth::users::{IdentityKey, Profile};

use crate::harness::{Options, TestApp};
use crate::mini_program::{SECRET, client, sign_in, token};
use crate::oauth::basic;

const ADMIN_TOKEN: &str = "admin-token-for-the-admin-api-tests";

/// Start wxauth with the admin token set; `throttle`: the default guessing throttle, else one
/// generous enough for the refusal sweeps.
async fn spawn(backend: crate::harness::Backend, throttle: bool) -> Option<TestApp> {
    let mut env = vec![("WXAUTH_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned())];
    if !throttle {
        env.push((
            "WXAUTH_CLIENT_AUTH_FREE_FAILURES".to_owned(),
            "1000".to_owned(),
        ));
    }
    TestApp::spawn_with(
        backend,
        Options {
            env,
            ..Options::default()
        },
    )
    .await
}

/// Like `backend_tests!`, with the admin token configured.
macro_rules! admin_tests {
    ($(async fn $name:ident($app:ident: TestApp) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn body($app: TestApp) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(app) = spawn($crate::harness::Backend::Sqlite, false).await {
                        body(app).await
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = spawn($crate::harness::Backend::Postgres, false).await {
                        body(app).await
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mysql() {
                    if let Some(app) = spawn($crate::harness::Backend::MySql, false).await {
                        body(app).await
                    }
                }
            }
        )*
    };
}

/// Call the admin API with `bearer` (None: no Authorization header).
pub(crate) async fn call_as(
    app: &TestApp,
    bearer: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .http
        .request(method, app.url(&format!("/admin/api/v1{path}")));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    call_as(app, Some(ADMIN_TOKEN), method, path, body).await
}

/// Alice signs in with the Mini Program and gets tokens through the flow grant of `front`.
/// Returns her account id and the token response.
async fn alice_with_tokens(app: &TestApp, auth: &str) -> (i64, Value) {
    let alice = sign_in(app, "alice").await;
    let form = [
        ("grant_type", "flow".to_string()),
        ("appId", MP.to_string()),
        ("openId", alice["openId"].as_str().unwrap().to_string()),
        ("unionId", alice["unionId"].as_str().unwrap().to_string()),
        ("ticket", alice["ticket"].as_str().unwrap().to_string()),
    ];
    let (status, body) = token(app, auth, &form).await;
    assert_eq!(status, 200, "{body}");
    (
        body["flow_user_id"].as_str().unwrap().parse().unwrap(),
        body,
    )
}

async fn refresh(app: &TestApp, auth: &str, refresh_token: &str) -> (u16, Value) {
    token(
        app,
        auth,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

async fn client_credentials(app: &TestApp, id: &str, secret: &str) -> (u16, Value) {
    token(
        app,
        &basic(id, secret),
        &[("grant_type", "client_credentials")],
    )
    .await
}

fn kid_of(jwt: &str) -> String {
    jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap()
}

/// The demo Mini Program in the API (`MP`).
const MP_PATH: &str = "/apps/wxd000000000000001";
/// An appid no test app registers.
const NEW_MP: &str = "wx00000000000000aa";

/// Every route of the API, with a plausible body.
fn every_route() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/users?nickname=a", None),
        (Method::GET, "/users/1", None),
        (Method::POST, "/users/1/disable", None),
        (Method::POST, "/users/1/enable", None),
        (Method::POST, "/users/1/revoke", None),
        (Method::GET, "/users/1/export", None),
        (Method::DELETE, "/users/1", None),
        (Method::GET, "/clients", None),
        (
            Method::POST,
            "/clients",
            Some(json!({"client_id": "sneaky", "grant_types": ["client_credentials"]})),
        ),
        (Method::GET, "/clients/front", None),
        (
            Method::PATCH,
            "/clients/front",
            Some(json!({"display_name": "x"})),
        ),
        (Method::DELETE, "/clients/front", None),
        (Method::POST, "/clients/front/secret", None),
        (Method::GET, "/apps", None),
        (
            Method::POST,
            "/apps",
            Some(json!({"appid": NEW_MP, "kind": "mini_program", "secret": "s"})),
        ),
        (Method::GET, MP_PATH, None),
        (Method::PATCH, MP_PATH, Some(json!({"secret": "stolen"}))),
        (Method::DELETE, MP_PATH, None),
        (Method::GET, "/keys", None),
        (Method::POST, "/keys", Some(json!({"activate_after": 0}))),
        (Method::POST, "/keys/k/retire", None),
        (Method::GET, "/audit", None),
        (Method::GET, "/admins", None),
        (Method::POST, "/admins", Some(json!({"account_id": 1}))),
        (Method::DELETE, "/admins/1", None),
        (Method::GET, "/resources", None),
        (
            Method::POST,
            "/resources",
            Some(json!({"id": "https://sneaky.example", "scopes": ["x"]})),
        ),
        (
            Method::GET,
            "/resources/https%3A%2F%2Fapi.example.com",
            None,
        ),
        (
            Method::PATCH,
            "/resources/https%3A%2F%2Fapi.example.com",
            Some(json!({"scopes": ["x"]})),
        ),
        (
            Method::DELETE,
            "/resources/https%3A%2F%2Fapi.example.com",
            None,
        ),
        (Method::GET, "/nothing-here", None),
    ]
}

admin_tests! {
    async fn every_resource_refuses_no_token_and_a_wrong_token_alike(app: TestApp) {
        let auth = client(&app, "front", &["flow", "refresh_token"]).await;
        let (account, _) = alice_with_tokens(&app, &auth).await;
        let before = entity::audit_event::Entity::find().count(&app.state.db).await.unwrap();
        let wrong = format!("{ADMIN_TOKEN}x");
        for (method, path, body) in every_route() {
            let path = path
                .replace("/users/1", &format!("/users/{account}"))
                .replace("/admins/1", &format!("/admins/{account}"));
            let (none_status, none_body) =
                call_as(&app, None, method.clone(), &path, body.clone()).await;
            let (wrong_status, wrong_body) =
                call_as(&app, Some(&wrong), method.clone(), &path, body.clone()).await;
            let (short_status, short_body) =
                call_as(&app, Some("admin"), method.clone(), &path, body.clone()).await;
            assert_eq!(none_status, 401, "{method} {path}: {none_body}");
            assert_eq!((wrong_status, &wrong_body), (401, &none_body), "{method} {path}");
            assert_eq!((short_status, &short_body), (401, &none_body), "{method} {path}");
        }
        // Nothing changed: Alice is still enabled, the client and its key are still there, and
        // nothing was recorded as a change.
        let (status, shown) = call(&app, Method::GET, &format!("/users/{account}"), None).await;
        assert_eq!((status, &shown["account"]["disabled"]), (200, &json!(false)));
        assert_eq!(call(&app, Method::GET, "/clients/front", None).await.0, 200);
        assert_eq!(call(&app, Method::GET, "/clients/sneaky", None).await.0, 404);
        assert_eq!(call(&app, Method::GET, &format!("/apps/{NEW_MP}"), None).await.0, 404);
        let mp = app.state.apps.get(MP).await.unwrap().expect("the Mini Program is still registered");
        assert_eq!(mp.secret.unwrap().expose(), demo::MINI_PROGRAM_SECRET, "a refused PATCH changed the secret");
        let (_, keys) = call(&app, Method::GET, "/keys", None).await;
        // The access tokens' ES256 key and the RS256 key for ID tokens.
        assert_eq!(keys["keys"].as_array().unwrap().len(), 2, "{keys}");
        let after = entity::audit_event::Entity::find().count(&app.state.db).await.unwrap();
        assert_eq!(before, after, "a refused request changed the audit trail");
        assert_eq!(call(&app, Method::GET, "/nothing-here", None).await.0, 404);
        let (_, admins) = call(&app, Method::GET, "/admins", None).await;
        assert_eq!(admins["admins"], json!([]), "a refused grant made an admin");
    }

    async fn the_admin_role_is_granted_by_id_or_unionid_listed_and_revoked(app: TestApp) {
        let auth = client(&app, "front", &["flow", "refresh_token"]).await;
        let (alice, _) = alice_with_tokens(&app, &auth).await;
        let bob = sign_in(&app, "bob").await;
        let bob_union = bob["unionId"].as_str().unwrap().to_owned();

        let (status, granted) = call(&app, Method::POST, "/admins", Some(json!({"account_id": alice}))).await;
        assert_eq!(status, 200, "{granted}");
        assert_eq!((granted["account_id"].as_i64(), granted["granted_by"].as_str()), (Some(alice), Some("admin-token")));
        // Granting again changes nothing.
        let (status, again) = call(&app, Method::POST, "/admins", Some(json!({"account_id": alice}))).await;
        assert_eq!((status, &again["granted_at"]), (200, &granted["granted_at"]));
        let (status, by_union) = call(&app, Method::POST, "/admins", Some(json!({"union_id": bob_union}))).await;
        assert_eq!((status, by_union["union_id"].as_str()), (200, Some(bob_union.as_str())), "{by_union}");
        let (_, listed) = call(&app, Method::GET, "/admins", None).await;
        assert_eq!(listed["admins"].as_array().unwrap().len(), 2, "{listed}");

        // Refusals: neither or both selectors, an unknown account, an unknown admin.
        for body in [json!({}), json!({"account_id": alice, "union_id": "u"}), json!({"account": 1})] {
            let (status, refused) = call(&app, Method::POST, "/admins", Some(body.clone())).await;
            assert_eq!(status, 400, "{body}: {refused}");
        }
        assert_eq!(call(&app, Method::POST, "/admins", Some(json!({"account_id": 999_999}))).await.0, 404);
        assert_eq!(call(&app, Method::POST, "/admins", Some(json!({"union_id": "nobody"}))).await.0, 404);

        assert_eq!(call(&app, Method::DELETE, &format!("/admins/{alice}"), None).await.0, 204);
        assert_eq!(call(&app, Method::DELETE, &format!("/admins/{alice}"), None).await.0, 404);
        let (_, listed) = call(&app, Method::GET, "/admins", None).await;
        let ids: Vec<i64> = listed["admins"].as_array().unwrap().iter().map(|a| a["account_id"].as_i64().unwrap()).collect();
        assert!(!ids.contains(&alice), "{listed}");

        // Both changes are audited with the actor.
        let (_, trail) = call(&app, Method::GET, &format!("/audit?account_id={alice}&kind=account_changed"), None).await;
        let actions: Vec<(&str, &str)> = trail["events"].as_array().unwrap().iter()
            .map(|e| (e["detail"]["action"].as_str().unwrap(), e["actor"].as_str().unwrap())).collect();
        assert_eq!(actions, [("revoke_admin", "admin-token"), ("grant_admin", "admin-token")]);

        // Deleting an admin's account takes the role with it.
        let bob_id = by_union["account_id"].as_i64().unwrap();
        assert_eq!(call(&app, Method::DELETE, &format!("/users/{bob_id}"), None).await.0, 204);
        let (_, listed) = call(&app, Method::GET, "/admins", None).await;
        assert_eq!(listed["admins"], json!([]));
    }

    async fn users_are_found_by_id_unionid_openid_phone_and_nickname(app: TestApp) {
        let auth = client(&app, "front", &["flow", "refresh_token"]).await;
        let (alice, _) = alice_with_tokens(&app, &auth).await;
        let bob = sign_in(&app, "bob").await;
        let alice_identity = app.state.users.find_identity_with_account(MP, &app.sim.openid(MP, "alice")).await.unwrap().unwrap().0;
        // Alice's profile, as WeChat reported it.
        app.state.users.record_identity(
            &IdentityKey::new(MP.parse().unwrap(), alice_identity.open_id.clone(), alice_identity.union_id.clone()),
            Some(&Profile { nick_name: Some("Alice 爱丽丝 50%_off".into()), ..Profile::default() }),
            app.state.clock.now(),
        ).await.unwrap();
        app.state.users.set_mobile(MP, &alice_identity.open_id, &wxauth::users::PhoneNumber { phone_number: "13800000001".into(), pure_phone_number: "13800000001".into(), country_code: "86".into() }, wxauth::users::PhoneSource::CodeApi, app.state.clock.now()).await.unwrap();

        let ids = |body: &Value| -> Vec<i64> {
            body["users"].as_array().unwrap().iter().map(|u| u["id"].as_i64().unwrap()).collect()
        };
        let union = alice_identity.union_id.clone().unwrap();
        for query in [
            format!("account_id={alice}"),
            format!("union_id={union}"),
            format!("open_id={}", alice_identity.open_id),
            "phone=13800000001".to_owned(),
            "nickname=%E7%88%B1%E4%B8%BD".to_owned(), // 爱丽
            "nickname=50%25_".to_owned(),              // the wildcards are taken literally
        ] {
            let (status, body) = call(&app, Method::GET, &format!("/users?{query}"), None).await;
            assert_eq!(status, 200, "{query}: {body}");
            assert_eq!(ids(&body), [alice], "{query}: {body}");
            assert_eq!(body["total"], 1);
        }
        // "%off" is not in "50%_off": % is no wildcard.
        let (_, nobody) = call(&app, Method::GET, "/users?nickname=%25off", None).await;
        assert_eq!(ids(&nobody), Vec::<i64>::new(), "% matched as a wildcard: {nobody}");
        // Everyone, paginated, newest first.
        let (_, page1) = call(&app, Method::GET, "/users?per_page=1", None).await;
        let (_, page2) = call(&app, Method::GET, "/users?per_page=1&page=2", None).await;
        assert_eq!(page1["total"], 2);
        let bob_id = bob["unionId"].as_str().map(|_| ()).and(Some(ids(&page1)[0])).unwrap();
        assert_ne!(bob_id, alice);
        assert_eq!(ids(&page2), [alice]);
        // Refusals name the field.
        for (query, field) in [
            ("per_page=0", "per_page"),
            ("per_page=501", "per_page"),
            ("page=0", "page"),
            ("nickname=", "nickname"),
        ] {
            let (status, body) = call(&app, Method::GET, &format!("/users?{query}"), None).await;
            assert_eq!((status, body["field"].as_str()), (400, Some(field)), "{query}: {body}");
        }
        let (status, body) = call(&app, Method::GET, "/users?account_id=abc", None).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error_description"].as_str().unwrap().contains("account_id"), "{body}");
        let (status, body) = call(&app, Method::GET, "/users?colour=red", None).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(call(&app, Method::GET, "/users/999999", None).await.0, 404);
        assert_eq!(call(&app, Method::GET, "/users/abc", None).await.0, 400);

        // Show: her identity, her Mini Program session, her refresh-token family, her events.
        let (status, shown) = call(&app, Method::GET, &format!("/users/{alice}"), None).await;
        assert_eq!(status, 200, "{shown}");
        assert_eq!(shown["identities"][0]["appid"], MP);
        assert_eq!(shown["identities"][0]["open_id"], alice_identity.open_id.as_str());
        assert_eq!(shown["sessions"][0]["kind"], "mini_program", "{shown}");
        assert_eq!(shown["refresh_families"][0]["client_id"], "front", "{shown}");
        let kinds: Vec<&str> = shown["recent_events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert!(kinds.contains(&"sign_in") && kinds.contains(&"token_issued"), "{kinds:?}");
        assert!(!shown.to_string().contains("refresh_token\""), "a token in {shown}");
    }

    async fn a_disabled_user_cannot_refresh_or_sign_in_until_enabled(app: TestApp) {
        let auth = client(&app, "front", &["flow", "refresh_token"]).await;
        let (alice, tokens) = alice_with_tokens(&app, &auth).await;
        let (status, body) = call(&app, Method::POST, &format!("/users/{alice}/disable"), None).await;
        assert_eq!((status, &body["disabled"]), (200, &json!(true)), "{body}");

        let (status, body) = refresh(&app, &auth, tokens["refresh_token"].as_str().unwrap()).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        // Her access token is denied too.
        let userinfo = app.http.get(app.url("/oauth/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(userinfo.status(), 401);
        // A fresh sign-in gets her nothing.
        let alice_again = sign_in(&app, "alice").await;
        let form = [
            ("grant_type", "flow".to_string()),
            ("appId", MP.to_string()),
            ("openId", alice_again["openId"].as_str().unwrap().to_string()),
            ("unionId", alice_again["unionId"].as_str().unwrap().to_string()),
            ("ticket", alice_again["ticket"].as_str().unwrap().to_string()),
        ];
        let (status, body) = token(&app, &auth, &form).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

        let (_, events) = call(&app, Method::GET, &format!("/audit?account_id={alice}&kind=account_changed"), None).await;
        assert_eq!(events["events"][0]["actor"], "admin-token", "{events}");
        assert_eq!(events["events"][0]["detail"]["action"], "disable", "{events}");

        let (status, body) = call(&app, Method::POST, &format!("/users/{alice}/enable"), None).await;
        assert_eq!((status, &body["disabled"]), (200, &json!(false)), "{body}");
        let (again, fresh) = alice_with_tokens(&app, &auth).await;
        assert_eq!(again, alice);
        assert_eq!(refresh(&app, &auth, fresh["refresh_token"].as_str().unwrap()).await.0, 200);
    }

    async fn the_issuer_refuses_a_disabled_account_even_with_a_live_family(app: TestApp) {
        // Disabled in the table alone (say, by another instance mid-way): her family is still
        // live, and the issuer itself must refuse it.
        let auth = client(&app, "front", &["flow", "refresh_token"]).await;
        let (alice, tokens) = alice_with_tokens(&app, &auth).await;
        entity::flow_user::Entity::update_many()
            .col_expr(entity::flow_user::Column::DisabledAt, sea_orm::sea_query::Expr::value(1_i64))
            .filter(entity::flow_user::Column::Id.eq(alice))
            .exec(&app.state.db).await.unwrap();
        let (status, body) = refresh(&app, &auth, tokens["refresh_token"].as_str().unwrap()).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    }

    async fn revoke_ends_every_session_and_token(app: TestApp) {
        let auth = client(&app, "front", &["flow", "refresh_token"]).await;
        let (alice, tokens) = alice_with_tokens(&app, &auth).await;
        let (status, body) = call(&app, Method::POST, &format!("/users/{alice}/revoke"), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["refresh_families"].as_u64(), body["sessions"].as_u64()), (Some(1), Some(1)), "{body}");
        assert_eq!(refresh(&app, &auth, tokens["refresh_token"].as_str().unwrap()).await.0, 400);
        let (_, shown) = call(&app, Method::GET, &format!("/users/{alice}"), None).await;
        assert_eq!(shown["sessions"], json!([]), "{shown}");
        assert!(shown["refresh_families"][0]["revoked_at"].is_i64(), "{shown}");
        // Not disabled: she may sign in again.
        alice_with_tokens(&app, &auth).await;
    }

    async fn export_holds_her_data_and_delete_leaves_only_the_tombstone(app: TestApp) {
        let auth = client(&app, "front", &["flow", "refresh_token"]).await;
        let (alice, tokens) = alice_with_tokens(&app, &auth).await;
        let open_id = app.sim.openid(MP, "alice");
        let (status, export) = call(&app, Method::GET, &format!("/users/{alice}/export"), None).await;
        assert_eq!(status, 200, "{export}");
        assert_eq!(export["account"]["id"], alice);
        assert_eq!(export["identities"][0]["open_id"], open_id.as_str());
        assert!(!export["audit_events"].as_array().unwrap().is_empty(), "{export}");
        for secret in [tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap()] {
            assert!(!export.to_string().contains(secret), "a token in the export");
        }

        let (status, _) = call(&app, Method::DELETE, &format!("/users/{alice}"), None).await;
        assert_eq!(status, 204);
        assert_eq!(call(&app, Method::GET, &format!("/users/{alice}"), None).await.0, 404);
        assert_eq!(call(&app, Method::DELETE, &format!("/users/{alice}"), None).await.0, 404);
        // Her tokens are dead.
        assert_eq!(refresh(&app, &auth, tokens["refresh_token"].as_str().unwrap()).await.0, 400);
        let userinfo = app.http.get(app.url("/oauth/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(userinfo.status(), 401);
        // Nothing of hers is left in any table.
        let db = &app.state.db;
        let owner = alice.to_string();
        assert_eq!(entity::flow_user::Entity::find_by_id(alice).count(db).await.unwrap(), 0);
        assert_eq!(entity::wx_user::Entity::find().filter(entity::wx_user::Column::OpenId.eq(open_id.as_str())).count(db).await.unwrap(), 0);
        assert_eq!(entity::mini_session::Entity::find().filter(entity::mini_session::Column::OpenId.eq(open_id.as_str())).count(db).await.unwrap(), 0);
        assert_eq!(entity::mini_current_key::Entity::find().filter(entity::mini_current_key::Column::OpenId.eq(open_id.as_str())).count(db).await.unwrap(), 0);
        assert_eq!(entity::login_ticket::Entity::find().filter(entity::login_ticket::Column::OpenId.eq(open_id.as_str())).count(db).await.unwrap(), 0);
        assert_eq!(entity::refresh_token::Entity::find().filter(entity::refresh_token::Column::OwnerId.eq(owner.as_str())).count(db).await.unwrap(), 0);
        assert_eq!(entity::refresh_token_family::Entity::find().filter(entity::refresh_token_family::Column::OwnerId.eq(owner.as_str())).count(db).await.unwrap(), 0);
        assert_eq!(entity::consent::Entity::find().filter(entity::consent::Column::AccountId.eq(alice)).count(db).await.unwrap(), 0);
        // One event about her remains: the tombstone, with nothing personal in it.
        let left = entity::audit_event::Entity::find().filter(entity::audit_event::Column::AccountId.eq(alice)).all(db).await.unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!((left[0].kind.as_str(), left[0].actor.as_deref()), ("account_changed", Some("admin-token")));
        assert!(left[0].detail.contains("\"delete\""), "{left:?}");
        let union_id = export["account"]["union_id"].as_str().unwrap();
        let everything = format!("{:?}", entity::audit_event::Entity::find().all(db).await.unwrap());
        for personal in [open_id.as_str(), union_id, "Alice", "13800000001"] {
            assert!(!everything.contains(personal), "{personal} left in the audit trail: {everything}");
        }
    }

    async fn clients_are_created_shown_updated_rotated_and_deleted(app: TestApp) {
        let (status, created) = call(&app, Method::POST, "/clients", Some(json!({
            "client_id": "svc",
            "grant_types": ["client_credentials"],
            "scopes": ["api"],
            "display_name": "Order service",
            "logo_url": "https://cdn.example.com/logo.png",
        }))).await;
        assert_eq!(status, 201, "{created}");
        let first = created["client_secret"].as_str().unwrap().to_owned();
        assert_eq!(created["display_name"], "Order service");
        // Shown once: never again.
        let (_, shown) = call(&app, Method::GET, "/clients/svc", None).await;
        assert!(shown.get("client_secret").is_none() && !shown.to_string().contains(&first), "{shown}");
        let (_, list) = call(&app, Method::GET, "/clients", None).await;
        assert_eq!(list["clients"][0]["client_id"], "svc");
        assert!(!list.to_string().contains(&first));
        assert_eq!(client_credentials(&app, "svc", &first).await.0, 200);

        // Bad input: 400 naming the field, and nothing written.
        for (body, field) in [
            (json!({"access_token_ttl": 0}), "access_token_ttl"),
            (json!({"grant_types": ["password"]}), "grant_types"),
            (json!({"redirect_uris": ["not a url"]}), "redirect_uris"),
            (json!({"scopes": ["a b"]}), "scopes"),
            (json!({"display_name": ""}), "display_name"),
            (json!({"logo_url": "javascript:alert(1)"}), "logo_url"),
            (json!({"flow_ticket": "sometimes"}), "flow_ticket"),
            (json!({"display_name": "New name", "refresh_token_ttl": -1}), "refresh_token_ttl"),
        ] {
            let (status, refused) = call(&app, Method::PATCH, "/clients/svc", Some(body.clone())).await;
            assert_eq!((status, refused["field"].as_str()), (400, Some(field)), "{body}: {refused}");
        }
        let (status, refused) = call(&app, Method::PATCH, "/clients/svc", Some(json!({"colour": "red"}))).await;
        assert_eq!(status, 400, "{refused}");
        assert!(refused["error_description"].as_str().unwrap().contains("colour"), "{refused}");
        let (_, unchanged) = call(&app, Method::GET, "/clients/svc", None).await;
        assert_eq!(unchanged, shown, "a refused update wrote something");
        let (status, refused) = call(&app, Method::POST, "/clients", Some(json!({"client_id": "bad id!"}))).await;
        assert_eq!((status, refused["field"].as_str()), (400, Some("client_id")), "{refused}");
        let (status, _) = call(&app, Method::POST, "/clients", Some(json!({"client_id": "svc"}))).await;
        assert_eq!(status, 409);

        let (status, updated) = call(&app, Method::PATCH, "/clients/svc", Some(json!({
            "display_name": null,
            "redirect_uris": ["https://app.example.com/cb"],
            "access_token_ttl": 120,
        }))).await;
        assert_eq!(status, 200, "{updated}");
        assert_eq!(updated["display_name"], Value::Null);
        assert_eq!(updated["logo_url"], "https://cdn.example.com/logo.png");
        assert_eq!(updated["redirect_uris"], json!(["https://app.example.com/cb"]));
        let (_, issued) = client_credentials(&app, "svc", &first).await;
        assert_eq!(issued["expires_in"], 120, "{issued}");

        // Rotation: both secrets work during the overlap (default 24 h), then only the new one.
        // The clock runs in real time: the answer is read between two readings of it.
        let before = app.state.clock.now();
        let (status, rotated) = call(&app, Method::POST, "/clients/svc/secret", None).await;
        assert_eq!(status, 200, "{rotated}");
        let second = rotated["client_secret"].as_str().unwrap().to_owned();
        assert_ne!(second, first);
        let valid_until = rotated["previous_secret_valid_until"].as_i64().unwrap();
        assert!((before + 86_400..=app.state.clock.now() + 86_400).contains(&valid_until), "{rotated}");
        assert_eq!(client_credentials(&app, "svc", &first).await.0, 200);
        assert_eq!(client_credentials(&app, "svc", &second).await.0, 200);
        app.clock.advance(86_400 - 10);
        assert_eq!(client_credentials(&app, "svc", &first).await.0, 200);
        app.clock.advance(11);
        assert_eq!(client_credentials(&app, "svc", &first).await.0, 401, "the old secret outlived its overlap");
        assert_eq!(client_credentials(&app, "svc", &second).await.0, 200);
        // A rotation without overlap stops the old secret at once.
        let (_, third) = call(&app, Method::POST, "/clients/svc/secret", Some(json!({"overlap_secs": 0}))).await;
        assert_eq!(client_credentials(&app, "svc", &second).await.0, 401);
        assert_eq!(client_credentials(&app, "svc", third["client_secret"].as_str().unwrap()).await.0, 200);
        let (status, refused) = call(&app, Method::POST, "/clients/svc/secret", Some(json!({"overlap_secs": -5}))).await;
        assert_eq!((status, refused["field"].as_str()), (400, Some("overlap_secs")), "{refused}");
        assert_eq!(call(&app, Method::POST, "/clients/nope/secret", None).await.0, 404);

        let (_, events) = call(&app, Method::GET, "/audit?client_id=svc&kind=client_changed", None).await;
        let actions: Vec<&str> = events["events"].as_array().unwrap().iter().map(|e| e["detail"]["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["rotate_secret", "rotate_secret", "update", "create"], "{events}");
        assert!(!events.to_string().contains(&second));

        assert_eq!(call(&app, Method::DELETE, "/clients/svc", None).await.0, 204);
        assert_eq!(call(&app, Method::GET, "/clients/svc", None).await.0, 404);
        assert_eq!(call(&app, Method::PATCH, "/clients/svc", Some(json!({"first_party": true}))).await.0, 404);
        assert_eq!(call(&app, Method::DELETE, "/clients/svc", None).await.0, 404);
    }

    async fn clients_that_cannot_work_are_refused_with_the_reason(app: TestApp) {
        // authorization_code with nowhere to send the code; a public client with
        // client_credentials (no secret: anyone knowing its id would get tokens).
        for (body, field, reason) in [
            (json!({"client_id": "web", "grant_types": ["authorization_code"], "scopes": ["openid"]}),
             "redirect_uris", "authorization_code needs at least one redirect URI"),
            (json!({"client_id": "spa", "public": true, "grant_types": ["client_credentials"], "scopes": ["api"]}),
             "grant_types", "a public client cannot have client_credentials"),
        ] {
            let (status, refused) = call(&app, Method::POST, "/clients", Some(body.clone())).await;
            assert_eq!((status, refused["field"].as_str()), (400, Some(field)), "{body}: {refused}");
            assert!(refused["error_description"].as_str().unwrap().contains(reason), "{refused}");
            let id = body["client_id"].as_str().unwrap();
            assert_eq!(call(&app, Method::GET, &format!("/clients/{id}"), None).await.0, 404, "{id} was written");
        }
        // An update cannot make a working client unusable either.
        let (status, created) = call(&app, Method::POST, "/clients", Some(json!({
            "client_id": "web", "grant_types": ["authorization_code"], "scopes": ["openid"],
            "redirect_uris": ["https://app.example.com/cb"],
        }))).await;
        assert_eq!(status, 201, "{created}");
        let (status, refused) = call(&app, Method::PATCH, "/clients/web", Some(json!({"redirect_uris": []}))).await;
        assert_eq!((status, refused["field"].as_str()), (400, Some("redirect_uris")), "{refused}");
        let (status, created) = call(&app, Method::POST, "/clients", Some(json!({
            "client_id": "spa", "public": true, "grant_types": ["authorization_code"], "scopes": ["openid"],
            "redirect_uris": ["https://app.example.com/cb"],
        }))).await;
        assert_eq!(status, 201, "{created}");
        let (status, refused) = call(&app, Method::PATCH, "/clients/spa", Some(json!({"grant_types": ["authorization_code", "client_credentials"]}))).await;
        assert_eq!((status, refused["field"].as_str()), (400, Some("grant_types")), "{refused}");
        let (_, spa) = call(&app, Method::GET, "/clients/spa", None).await;
        assert_eq!(spa["grant_types"], json!(["authorization_code"]), "{spa}");
    }

    async fn a_staged_key_is_published_before_it_signs(app: TestApp) {
        client(&app, "svc", &["client_credentials"]).await;
        let (_, keys) = call(&app, Method::GET, "/keys", None).await;
        let es256 = keys["keys"].as_array().unwrap().iter().find(|k| k["alg"] == "ES256").unwrap();
        let old = es256["kid"].as_str().unwrap().to_owned();
        assert_eq!(es256["state"], "active");

        let before = app.state.clock.now();
        let (status, staged) = call(&app, Method::POST, "/keys", None).await;
        assert_eq!(status, 201, "{staged}");
        let new = staged["kid"].as_str().unwrap().to_owned();
        assert_eq!(staged["state"], "pending");
        let activates_at = staged["activates_at"].as_i64().unwrap();
        assert!((before + 600..=app.state.clock.now() + 600).contains(&activates_at), "{staged}");
        // Published at once; still signing with the old key.
        let jwks: Value = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
        let published: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert!(published.contains(&new.as_str()) && published.contains(&old.as_str()), "{jwks}");
        let (_, issued) = client_credentials(&app, "svc", SECRET).await;
        assert_eq!(kid_of(issued["access_token"].as_str().unwrap()), old);
        // The key that signs cannot be retired.
        let (status, _) = call(&app, Method::POST, &format!("/keys/{old}/retire"), None).await;
        assert_eq!(status, 409);

        app.clock.advance(600);
        let (_, issued) = client_credentials(&app, "svc", SECRET).await;
        assert_eq!(kid_of(issued["access_token"].as_str().unwrap()), new, "the staged key did not take over");
        let (_, keys) = call(&app, Method::GET, "/keys", None).await;
        let state = |kid: &str| keys["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).unwrap()["state"].clone();
        assert_eq!((state(&new), state(&old)), (json!("active"), json!("retiring")), "{keys}");
        // Tokens of the old key still verify.
        let (status, retired) = call(&app, Method::POST, &format!("/keys/{old}/retire"), None).await;
        assert_eq!((status, &retired["state"]), (200, &json!("retiring")), "{retired}");

        // A pending key can be called off: the active key keeps signing.
        let (_, cancelled) = call(&app, Method::POST, "/keys", Some(json!({"activate_after": 300}))).await;
        let cancelled = cancelled["kid"].as_str().unwrap().to_owned();
        assert_eq!(call(&app, Method::POST, &format!("/keys/{cancelled}/retire"), None).await.0, 200);
        app.clock.advance(301);
        let (_, issued) = client_credentials(&app, "svc", SECRET).await;
        assert_eq!(kid_of(issued["access_token"].as_str().unwrap()), new);

        let (status, refused) = call(&app, Method::POST, "/keys", Some(json!({"activate_after": -1}))).await;
        assert_eq!((status, refused["field"].as_str()), (400, Some("activate_after")), "{refused}");
        assert_eq!(call(&app, Method::POST, "/keys/no-such-kid/retire", None).await.0, 404);
        // Two rotations of two keys (ES256, RS256) and two retirements.
        let (_, events) = call(&app, Method::GET, "/audit?kind=key_changed", None).await;
        assert_eq!(events["events"].as_array().unwrap().len(), 6, "{events}");
    }

    async fn the_audit_trail_filters_and_refuses_bad_filters(app: TestApp) {
        let auth = client(&app, "front", &["flow", "refresh_token"]).await;
        let (alice, _) = alice_with_tokens(&app, &auth).await;
        let (status, events) = call(&app, Method::GET, &format!("/audit?account_id={alice}&kind=token_issued"), None).await;
        assert_eq!(status, 200, "{events}");
        let events = events["events"].as_array().unwrap().clone();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["client_id"], "front");
        let (_, later) = call(&app, Method::GET, &format!("/audit?since={}", app.state.clock.now() + 1), None).await;
        assert_eq!(later["events"], json!([]));
        let (_, other) = call(&app, Method::GET, "/audit?client_id=other", None).await;
        assert_eq!(other["events"], json!([]));
        for (query, field) in [("kind=nope", "kind"), ("limit=0", "limit"), ("limit=100000", "limit")] {
            let (status, body) = call(&app, Method::GET, &format!("/audit?{query}"), None).await;
            assert_eq!((status, body["field"].as_str()), (400, Some(field)), "{query}: {body}");
        }
        assert_eq!(call(&app, Method::GET, "/audit?since=yesterday", None).await.0, 400);
        // Paged by event id: the next page starts below the last event of this one.
        let (_, first) = call(&app, Method::GET, "/audit?limit=1", None).await;
        let newest = first["events"][0]["id"].as_i64().unwrap();
        assert_eq!(first["next_before"], newest, "{first}");
        let (_, second) = call(&app, Method::GET, &format!("/audit?limit=1&before={newest}"), None).await;
        assert!(second["events"][0]["id"].as_i64().unwrap() < newest, "{second}");
        let (_, all) = call(&app, Method::GET, "/audit?limit=500", None).await;
        assert!(all.get("next_before").is_none(), "the last page has no next: {all}");
    }
}

mod wrong_tokens_are_throttled {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = spawn(crate::harness::Backend::Sqlite, true).await.unwrap();
        let wrong = format!("{ADMIN_TOKEN}-guess");
        let mut statuses = Vec::new();
        for _ in 0..8 {
            statuses.push(
                call_as(&app, Some(&wrong), Method::GET, "/clients", None)
                    .await
                    .0,
            );
        }
        assert_eq!(&statuses[..6], [401; 6], "{statuses:?}");
        assert_eq!(statuses[7], 429, "{statuses:?}");
        // While blocked, even the right token waits (the guesser learns nothing).
        assert_eq!(call(&app, Method::GET, "/clients", None).await.0, 429);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_configured_token_nobody_is_let_in() {
        let app = TestApp::spawn(crate::harness::Backend::Sqlite)
            .await
            .unwrap();
        let (status, _) = call(&app, Method::GET, "/clients", None).await;
        assert_eq!(status, 401);
        let (status, _) = call_as(&app, Some(""), Method::GET, "/clients", None).await;
        assert_eq!(status, 401);
    }
}

/// Every secret the demo apps hold: no answer of the API may contain one.
fn demo_secrets() -> Vec<&'static str> {
    vec![
        demo::MINI_PROGRAM_SECRET,
        demo::ENTRY_ACCOUNT_SECRET,
        demo::BASE_ACCOUNT_SECRET,
        demo::COMPONENT_SECRET,
        demo::COMPONENT_TOKEN,
        demo::COMPONENT_AES_KEY,
        demo::WEBSITE_SECRET,
    ]
}

admin_tests! {
    async fn apps_are_added_shown_updated_and_removed_and_secrets_never_come_back(app: TestApp) {
        assert_eq!(format!("/apps/{MP}"), MP_PATH);
        let new_secret = "the-new-mini-program-secret-0001";
        let reset_secret = "the-reset-mini-program-secret-02";
        let component_token = "component-message-token-xyz";
        let component_key = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut";
        let mut answers: Vec<Value> = Vec::new();

        let (status, listed) = call(&app, Method::GET, "/apps", None).await;
        assert_eq!(status, 200, "{listed}");
        let appids: Vec<&str> = listed["apps"].as_array().unwrap().iter().map(|a| a["appid"].as_str().unwrap()).collect();
        assert!(appids.contains(&MP) && appids.contains(&demo::COMPONENT_APPID), "{listed}");
        let component = listed["apps"].as_array().unwrap().iter().find(|a| a["appid"] == demo::COMPONENT_APPID).unwrap();
        assert_eq!((&component["has_secret"], &component["has_token"], &component["has_aes_key"]), (&json!(true), &json!(true), &json!(true)));
        answers.push(listed.clone());

        // Added: 201, the secret stored (sealed) and not shown.
        let (status, added) = call(&app, Method::POST, "/apps", Some(json!({
            "appid": NEW_MP, "kind": "mini_program", "secret": new_secret,
        }))).await;
        assert_eq!(status, 201, "{added}");
        assert_eq!((&added["kind"], &added["has_secret"], &added["base"]), (&json!("mini_program"), &json!(true), &json!(false)));
        assert_eq!(added["calls_today"]["calls"], 0);
        answers.push(added);
        let stored = app.state.apps.get(NEW_MP).await.unwrap().unwrap();
        assert_eq!(stored.secret.unwrap().expose(), new_secret);
        let (status, again) = call(&app, Method::POST, "/apps", Some(json!({
            "appid": NEW_MP, "kind": "mini_program", "secret": "x",
        }))).await;
        assert_eq!((status, again["error"].as_str()), (409, Some("conflict")), "{again}");
        let (status, shown) = call(&app, Method::GET, &format!("/apps/{NEW_MP}"), None).await;
        assert_eq!(status, 200, "{shown}");
        answers.push(shown);

        // Updated: the reset secret replaces the old one, and is not shown either.
        let (status, updated) = call(&app, Method::PATCH, &format!("/apps/{NEW_MP}"), Some(json!({"secret": reset_secret}))).await;
        assert_eq!(status, 200, "{updated}");
        answers.push(updated);
        let stored = app.state.apps.get(NEW_MP).await.unwrap().unwrap();
        assert_eq!(stored.secret.unwrap().expose(), reset_secret);

        // Refusals name the field and change nothing.
        for (path, method, body, field) in [
            ("/apps".to_owned(), Method::POST, json!({"appid": "wx123", "kind": "mini_program", "secret": "s"}), "appid"),
            ("/apps".to_owned(), Method::POST, json!({"appid": "wx00000000000000ab", "kind": "robot", "secret": "s"}), "kind"),
            ("/apps".to_owned(), Method::POST, json!({"appid": "wx00000000000000ab", "kind": "mini_program"}), "secret"),
            ("/apps".to_owned(), Method::POST, json!({"appid": "wx00000000000000ab", "kind": "mini_program", "secret": "s", "base": true}), "base"),
            ("/apps".to_owned(), Method::POST, json!({"appid": "wx00000000000000ab", "kind": "component", "secret": "s", "token": "t"}), "aes_key"),
            ("/apps".to_owned(), Method::POST, json!({"appid": "wx00000000000000ab", "kind": "official_account", "component_appid": "wx00000000000000cc"}), "component_appid"),
            ("/apps".to_owned(), Method::POST, json!({"appid": "wx00000000000000ab", "kind": "mini_program", "secret": "s", "replace": true}), "replace"),
            ("/apps".to_owned(), Method::POST, json!({"appid": "wx00000000000000ab", "kind": "mini_program", "secret": "s", "extra": 1}), "body"),
            (format!("/apps/{NEW_MP}"), Method::PATCH, json!({}), "secret"),
            (format!("/apps/{NEW_MP}"), Method::PATCH, json!({"token": "t"}), "token"),
            (format!("/apps/{}", demo::COMPONENT_APPID), Method::PATCH, json!({"aes_key": "short"}), "aes_key"),
        ] {
            let (status, refused) = call(&app, method.clone(), &path, Some(body.clone())).await;
            assert_eq!((status, refused["field"].as_str()), (400, Some(field)), "{method} {path} {body}: {refused}");
        }
        assert!(app.state.apps.get("wx00000000000000ab").await.unwrap().is_none());
        assert_eq!(call(&app, Method::PATCH, "/apps/wx00000000000000ff", Some(json!({"secret": "s"}))).await.0, 404);

        // A second base account is a conflict unless it replaces the first (which stays).
        let (status, refused) = call(&app, Method::POST, "/apps", Some(json!({
            "appid": "wx00000000000000bb", "kind": "official_account", "secret": "s", "base": true,
        }))).await;
        assert_eq!(status, 409, "{refused}");
        assert!(refused["error_description"].as_str().unwrap().contains(&format!("{} is already the base account", demo::BASE_ACCOUNT_APPID)), "{refused}");
        let (status, base) = call(&app, Method::POST, "/apps", Some(json!({
            "appid": "wx00000000000000bb", "kind": "official_account", "secret": "s", "base": true, "replace": true,
        }))).await;
        assert_eq!((status, &base["base"]), (201, &json!(true)), "{base}");
        let (_, old_base) = call(&app, Method::GET, &format!("/apps/{}", demo::BASE_ACCOUNT_APPID), None).await;
        assert_eq!(old_base["base"], json!(false), "{old_base}");

        // A component with its write-only token and key; an account under it.
        let component_id = "wx00000000000000cc";
        let (status, added) = call(&app, Method::POST, "/apps", Some(json!({
            "appid": component_id, "kind": "component", "secret": "component-secret-abc",
            "token": component_token, "aes_key": component_key,
        }))).await;
        assert_eq!(status, 201, "{added}");
        answers.push(added);
        let (status, account) = call(&app, Method::POST, "/apps", Some(json!({
            "appid": "wx00000000000000dd", "kind": "official_account", "component_appid": component_id,
        }))).await;
        assert_eq!((status, &account["component_appid"]), (201, &json!(component_id)), "{account}");
        // The component cannot go while the account uses it: 409 naming it; nothing removed.
        let (status, refused) = call(&app, Method::DELETE, &format!("/apps/{component_id}"), None).await;
        assert_eq!(status, 409, "{refused}");
        assert!(refused["error_description"].as_str().unwrap().contains("still used by official account(s) wx00000000000000dd"), "{refused}");
        assert_eq!(call(&app, Method::GET, &format!("/apps/{component_id}"), None).await.0, 200);
        assert_eq!(call(&app, Method::DELETE, "/apps/wx00000000000000dd", None).await.0, 204);
        assert_eq!(call(&app, Method::DELETE, &format!("/apps/{component_id}"), None).await.0, 204);
        assert_eq!(call(&app, Method::GET, &format!("/apps/{component_id}"), None).await.0, 404);
        assert_eq!(call(&app, Method::DELETE, &format!("/apps/{component_id}"), None).await.0, 404);
        let (status, listed) = call(&app, Method::GET, "/apps", None).await;
        assert_eq!(status, 200);
        answers.push(listed);

        // Every change is audited with the actor, and the trail holds no secret either.
        let (_, events) = call(&app, Method::GET, "/audit?kind=app_changed", None).await;
        let events = events["events"].as_array().unwrap().clone();
        let actions: Vec<(String, String)> = events.iter().map(|e| (e["subject"].as_str().unwrap_or_default().to_owned(), e["detail"]["action"].as_str().unwrap_or_default().to_owned())).collect();
        for expected in [
            (NEW_MP, "add"), (NEW_MP, "update"), ("wx00000000000000bb", "add"),
            (demo::BASE_ACCOUNT_APPID, "no_longer_base"), (component_id, "add"), (component_id, "remove"),
        ] {
            assert!(actions.contains(&(expected.0.to_owned(), expected.1.to_owned())), "{expected:?} in {actions:?}");
        }
        assert!(events.iter().all(|e| e["actor"] == "admin-token"), "{events:?}");
        assert_eq!(actions.iter().filter(|(s, a)| s == component_id && a == "remove").count(), 1, "the refused removal is not a change");
        answers.push(Value::Array(events));

        let mut secrets = demo_secrets();
        secrets.extend([new_secret, reset_secret, component_token, component_key, "component-secret-abc"]);
        for answer in &answers {
            let text = answer.to_string();
            for secret in &secrets {
                assert!(!text.contains(secret), "an answer holds the secret {secret}: {text}");
            }
        }
    }

    async fn each_app_shows_its_upstream_token_and_todays_calls_over_every_instance(app: TestApp) {
        let mp = wxauth::wechat::AppId::parse(MP).unwrap();
        let (_, fresh) = call(&app, Method::GET, MP_PATH, None).await;
        assert_eq!(fresh["upstream_tokens"], json!([]), "{fresh}");
        assert_eq!((&fresh["calls_today"]["calls"], &fresh["calls_today"]["errors"]), (&json!(0), &json!(0)));

        // WeChat answers HTTP 503 three times: the token fetch (three attempts) fails.
        app.sim.fail_http(3);
        assert!(app.state.wechat.app_access_token(&mp).await.is_err());
        let (_, failed) = call(&app, Method::GET, MP_PATH, None).await;
        assert_eq!((&failed["calls_today"]["calls"], &failed["calls_today"]["errors"]), (&json!(3), &json!(3)), "{failed}");
        assert_eq!(failed["upstream_tokens"][0]["expires_at"], Value::Null, "{failed}");

        // Then it works: the token's expiry and refresh time show, never the token.
        let now = app.state.clock.now();
        let token = app.state.wechat.app_access_token(&mp).await.unwrap();
        let (_, shown) = call(&app, Method::GET, MP_PATH, None).await;
        let upstream = &shown["upstream_tokens"];
        assert_eq!(upstream.as_array().unwrap().len(), 1, "{shown}");
        assert_eq!(upstream[0]["kind"], "access_token");
        // (The test clock follows real time between its steps: allow a second or two.)
        let refreshed = upstream[0]["refreshed_at"].as_i64().unwrap();
        assert!((now..=now + 2).contains(&refreshed), "{shown}");
        assert_eq!(upstream[0]["expires_at"], refreshed + 7200, "{shown}");
        assert_eq!((&shown["calls_today"]["calls"], &shown["calls_today"]["errors"]), (&json!(4), &json!(3)), "{shown}");
        assert!(!shown.to_string().contains(token.expose()), "the access token itself is never shown");
        // Another app's counts are its own.
        let (_, other) = call(&app, Method::GET, &format!("/apps/{}", demo::WEBSITE_APPID), None).await;
        assert_eq!(other["calls_today"]["calls"], 0, "{other}");

        // A second instance on the same database counts into the same row once it flushes.
        let second = TestApp::spawn_with(app.backend, Options {
            env: vec![("WXAUTH_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned())],
            share: Some(app.sharing()),
            ..Options::default()
        }).await.expect("a second instance");
        let first_sign_in = sign_in(&second, "alice").await;
        assert!(first_sign_in["ticket"].is_string(), "{first_sign_in}");
        second.state.wechat.calls().flush().await.unwrap();
        let (_, summed) = call(&app, Method::GET, MP_PATH, None).await;
        assert_eq!(summed["calls_today"]["calls"], 5, "jscode2session on the second instance: {summed}");
        // Today is a Beijing-time date.
        let date = chrono::DateTime::from_timestamp(app.state.clock.now() + 8 * 3600, 0).unwrap().format("%Y-%m-%d").to_string();
        assert_eq!(summed["calls_today"]["date"], date);
    }
}
