//! Accounts that merge when a unionid arrives late (issue 18 §3): a Mini Program used before
//! its Open Platform binding made an openid-only account; the person also signed in through an
//! official account, which gave a unionid and a second account. When the Mini Program, bound
//! now, brings that unionid, the two become one: automatically (the default), or queued for an
//! administrator (`WXAUTH_MERGE_POLICY=queue`). A dry run changes nothing, and a merge racing a
//! sign-in of the other account leaves one account and no live token for the one merged away.

use std::sync::Arc;

use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use wxauth::audit::{AuditFilter, AuditKind};
use wxauth::clock::Clock;
use wxauth::simulator::demo::MINI_PROGRAM_APPID as MP;
use wxauth::users::{IdentityKey, PhoneNumber, PhoneSource, Profile};

use crate::admin_api::call_as;
use crate::backend_tests;
use crate::harness::{ClientFixture, Options, SEED_APPID as OA, SEED_OPENID as OA_OPENID, TestApp};
use crate::mini_program::sign_in;
use crate::oauth::basic;
use crate::races::{active, token};

const ADMIN_TOKEN: &str = "merge-admin-token-0123456789abcdef";
const SECRET: &str = "a-long-client-secret-for-merges";

fn options(policy: &str) -> Options {
    Options {
        env: vec![
            ("WXAUTH_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
            ("WXAUTH_MERGE_POLICY".into(), policy.into()),
        ],
        ..Options::default()
    }
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    call_as(app, Some(ADMIN_TOKEN), method, path, body).await
}

/// Bind the demo Mini Program to its Open Platform account, or unbind it (`None`).
fn bind_mini_program(app: &TestApp, open_platform: Option<String>) -> Option<String> {
    let mut mp = app.sim.apps().into_iter().find(|a| a.appid == MP).unwrap();
    let before = mp.open_platform.clone();
    mp.open_platform = open_platform;
    app.sim.register_app(mp);
    before
}

/// Tokens of `open_id` under the seed's official account through the flow grant.
async fn flow_tokens(app: &TestApp, open_id: &str, union_id: &str) -> Value {
    let ticket = app
        .state
        .tickets
        .mint(&IdentityKey::new(
            OA.parse().unwrap(),
            open_id,
            Some(union_id),
        ))
        .await
        .unwrap();
    let (status, body) = token(
        app,
        &basic("web", SECRET),
        &[
            ("grant_type", "flow"),
            ("appId", OA),
            ("openId", open_id),
            ("unionId", union_id),
            ("ticket", &ticket),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// What the story leaves before the late unionid: alice's openid-only Mini Program account
/// (older, with a verified phone) and her official-account account (newer, with the unionid,
/// a nickname, a consent and live tokens). Returns (older, newer, unionid, newer's tokens).
async fn two_accounts_of_alice(app: &TestApp) -> (i64, i64, String, Value) {
    ClientFixture::new("web", SECRET, &["flow", "refresh_token"])
        .scopes(&["flow"])
        .register(app)
        .await;
    crate::harness::seed_app(app).await;
    let open_platform = bind_mini_program(app, None);
    sign_in(app, "alice").await;
    let mp_openid = app.sim.openid(MP, "alice");
    let older = app
        .state
        .users
        .find_identity(MP, &mp_openid)
        .await
        .unwrap()
        .unwrap()
        .account_id
        .unwrap();
    app.state
        .users
        .set_mobile(
            MP,
            &mp_openid,
            &PhoneNumber {
                phone_number: "13800138000".into(),
                pure_phone_number: "13800138000".into(),
                country_code: "86".into(),
            },
            PhoneSource::CodeApi,
            app.clock.now(),
        )
        .await
        .unwrap();
    bind_mini_program(app, open_platform);
    let union_id = app.sim.unionid(MP, "alice").expect("bound: a unionid");
    app.clock.advance(60);
    let profile = Profile {
        nick_name: Some("阿丽".into()),
        ..Profile::default()
    };
    let (_, newer, _) = app
        .state
        .users
        .record_identity(
            &IdentityKey::new(OA.parse().unwrap(), OA_OPENID, Some(union_id.as_str())),
            Some(&profile),
            app.clock.now(),
        )
        .await
        .unwrap();
    entity::consent::Entity::insert(entity::consent::ActiveModel {
        account_id: sea_orm::Set(newer.id),
        client_id: sea_orm::Set("web".into()),
        scope: sea_orm::Set("flow".into()),
        granted_at: sea_orm::Set(app.clock.now()),
    })
    .exec(&app.state.db)
    .await
    .unwrap();
    let tokens = flow_tokens(app, OA_OPENID, &union_id).await;
    assert_ne!(older, newer.id);
    (older, newer.id, union_id, tokens)
}

async fn account_of(app: &TestApp, appid: &str, open_id: &str) -> Option<i64> {
    app.state
        .users
        .find_identity(appid, open_id)
        .await
        .unwrap()
        .and_then(|i| i.account_id)
}

async fn merge_events(app: &TestApp) -> Vec<wxauth::audit::StoredEvent> {
    app.state
        .audit
        .list(&AuditFilter {
            kind: Some(AuditKind::AccountMerged),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
}

/// What the merged account left behind: it is gone, everything points at the survivor, and
/// its tokens are dead.
async fn assert_merged(app: &TestApp, survivor: i64, merged: i64, union_id: &str, tokens: &Value) {
    let (status, _) = admin(app, Method::GET, &format!("/users/{merged}"), None).await;
    assert_eq!(status, 404, "the merged account is gone");
    let (status, kept) = admin(app, Method::GET, &format!("/users/{survivor}"), None).await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["account"]["union_id"], union_id, "{kept}");
    assert_eq!(
        kept["account"]["mobile"], "13800138000",
        "the older account's phone stays"
    );
    assert_eq!(
        kept["account"]["nick_name"], "阿丽",
        "the profile moved: {kept}"
    );
    assert_eq!(kept["identities"].as_array().unwrap().len(), 2, "{kept}");
    assert_eq!(
        kept["consents"][0]["client_id"], "web",
        "the consent moved: {kept}"
    );
    assert_eq!(account_of(app, OA, OA_OPENID).await, Some(survivor));
    assert_eq!(
        account_of(app, MP, &app.sim.openid(MP, "alice")).await,
        Some(survivor)
    );
    let auth = basic("web", SECRET);
    for kind in ["refresh_token", "access_token"] {
        let t = tokens[kind].as_str().unwrap();
        assert!(
            !active(app, &auth, t).await,
            "the merged account's {kind} is dead"
        );
    }
    let (status, body) = token(
        app,
        &auth,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let events = merge_events(app).await;
    let merged_event = events
        .iter()
        .find(|e| e.detail.contains("\"merged\""))
        .expect("an account_merged event");
    assert_eq!(merged_event.account_id, Some(survivor));
    let detail: Value = serde_json::from_str(&merged_event.detail).unwrap();
    assert_eq!(detail["merged_account_id"], merged);
    assert_eq!(detail["survivor_account_id"], survivor);
}

backend_tests! {
    options: options("auto");

    async fn a_late_unionid_merges_the_two_accounts_into_the_older(app: TestApp) {
        let (older, newer, union_id, tokens) = two_accounts_of_alice(&app).await;
        // Alice opens the Mini Program again: bound now, WeChat gives the unionid.
        sign_in(&app, "alice").await;
        assert_merged(&app, older, newer, &union_id, &tokens).await;
        // Signing in again changes nothing more, and new tokens are the survivor's.
        sign_in(&app, "alice").await;
        assert_eq!(merge_events(&app).await.len(), 1);
        let fresh = flow_tokens(&app, OA_OPENID, &union_id).await;
        let claims = crate::oauth::verify_with_jwks(&app, fresh["access_token"].as_str().unwrap()).await;
        assert_eq!(claims["flow_user_id"], older.to_string());
    }

    async fn a_dry_run_says_what_would_move_and_moves_nothing(app: TestApp) {
        let (older, newer, _, tokens) = two_accounts_of_alice(&app).await;
        let (status, plan) = admin(&app, Method::POST, "/merges", Some(json!({"a": newer, "b": older, "dry_run": true}))).await;
        assert_eq!(status, 200, "{plan}");
        assert_eq!(plan["survivor_id"], older);
        assert_eq!(plan["merged_id"], newer);
        assert_eq!(plan["identities"], json!([format!("{OA}/{OA_OPENID}")]));
        assert_eq!(plan["consents"], json!(["web flow"]));
        assert_eq!(plan["fields"], json!(["union_id", "nick_name"]));
        assert_eq!(plan["revoked_families"], 1);
        // Nothing moved.
        assert_eq!(account_of(&app, OA, OA_OPENID).await, Some(newer));
        let (status, _) = admin(&app, Method::GET, &format!("/users/{newer}"), None).await;
        assert_eq!(status, 200);
        assert!(active(&app, &basic("web", SECRET), tokens["refresh_token"].as_str().unwrap()).await);
        assert!(merge_events(&app).await.is_empty());
        // The same through the CLI on SQLite (one database file both can open).
        if app.backend == crate::harness::Backend::Sqlite {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_wxauth"))
                .args(["user", "merge", "--dry-run", &older.to_string(), &newer.to_string()])
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("RUST_LOG", "warn")
                .env("DATABASE_URL", app.database_url())
                .env("WXAUTH_MASTER_KEY", app.sharing().master_key)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
            let cli_plan: Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(cli_plan, plan);
            assert_eq!(account_of(&app, OA, OA_OPENID).await, Some(newer));
            assert!(merge_events(&app).await.is_empty());
        }
        // Two unionids are two people: refused.
        let (_, other, _) = app.state.users.record_identity(
            &IdentityKey::new(OA.parse().unwrap(), "o-someone-else", Some("u-someone-else")), None, app.clock.now(),
        ).await.unwrap();
        let (status, body) = admin(&app, Method::POST, "/merges", Some(json!({"a": newer, "b": other.id, "dry_run": true}))).await;
        assert_eq!(status, 409, "{body}");
    }
}

backend_tests! {
    options: options("queue");

    async fn queued_merges_wait_for_an_administrator(app: TestApp) {
        let (older, newer, union_id, tokens) = two_accounts_of_alice(&app).await;
        sign_in(&app, "alice").await;
        sign_in(&app, "alice").await;
        // Still two accounts; the Mini Program identity stays where it was.
        assert_eq!(account_of(&app, MP, &app.sim.openid(MP, "alice")).await, Some(older));
        assert_eq!(account_of(&app, OA, OA_OPENID).await, Some(newer));
        assert!(active(&app, &basic("web", SECRET), tokens["refresh_token"].as_str().unwrap()).await);
        let (status, pending) = admin(&app, Method::GET, "/merges", None).await;
        assert_eq!(status, 200, "{pending}");
        let pending = pending.as_array().unwrap();
        assert_eq!(pending.len(), 1, "queued once: {pending:?}");
        assert_eq!(pending[0]["plan"]["survivor_id"], older);
        assert_eq!(pending[0]["plan"]["merged_id"], newer);
        let id = pending[0]["id"].as_i64().unwrap();
        let (status, moved) = admin(&app, Method::POST, &format!("/merges/{id}/approve"), None).await;
        assert_eq!(status, 200, "{moved}");
        assert_merged(&app, older, newer, &union_id, &tokens).await;
        let (_, pending) = admin(&app, Method::GET, "/merges", None).await;
        assert_eq!(pending, json!([]));
        let (status, _) = admin(&app, Method::POST, &format!("/merges/{id}/approve"), None).await;
        assert_eq!(status, 404, "decided once");
    }

    async fn a_rejected_merge_keeps_the_accounts_apart(app: TestApp) {
        let (older, newer, _, _) = two_accounts_of_alice(&app).await;
        sign_in(&app, "alice").await;
        let (_, pending) = admin(&app, Method::GET, "/merges", None).await;
        let id = pending[0]["id"].as_i64().unwrap();
        let (status, _) = admin(&app, Method::POST, &format!("/merges/{id}/reject"), None).await;
        assert_eq!(status, 204);
        sign_in(&app, "alice").await;
        let (_, pending) = admin(&app, Method::GET, "/merges", None).await;
        assert_eq!(pending, json!([]), "a refused merge is not queued again");
        for id in [older, newer] {
            let (status, _) = admin(&app, Method::GET, &format!("/users/{id}"), None).await;
            assert_eq!(status, 200);
        }
    }
}

/// How many times each backend runs the race.
const TRIALS: usize = 15;

backend_tests! {
    options: options("auto");

    async fn a_merge_racing_a_sign_in_leaves_one_account_and_no_live_token_for_the_other(app: TestApp) {
        ClientFixture::new("web", SECRET, &["flow", "refresh_token"]).scopes(&["flow"]).register(&app).await;
        crate::harness::seed_app(&app).await;
        let auth = basic("web", SECRET);
        let mut broken = Vec::new();
        for trial in 0..TRIALS {
            let (mp_openid, oa_openid, union_id) = (format!("o-mp-{trial}"), format!("o-oa-{trial}"), format!("u-race-{trial}"));
            let (_, older, _) = app.state.users.record_identity(&IdentityKey::new(MP.parse().unwrap(), mp_openid.as_str(), None::<String>), None, app.clock.now()).await.unwrap();
            app.clock.advance(1);
            let (_, newer, _) = app.state.users.record_identity(&IdentityKey::new(OA.parse().unwrap(), oa_openid.as_str(), Some(union_id.as_str())), None, app.clock.now()).await.unwrap();
            let before = flow_tokens(&app, &oa_openid, &union_id).await;
            let ticket = app.state.tickets.mint(&IdentityKey::new(OA.parse().unwrap(), oa_openid.as_str(), Some(union_id.as_str()))).await.unwrap();
            // Released together: the Mini Program login that brings the unionid, and a sign-in of
            // the newer account's identity (its flow grant).
            let barrier = Arc::new(Barrier::new(2));
            let (b1, b2) = (barrier.clone(), barrier);
            let users = app.state.users.clone();
            let now = app.clock.now();
            let late = IdentityKey::new(MP.parse().unwrap(), mp_openid.as_str(), Some(union_id.as_str()));
            let merging = tokio::spawn(async move {
                b1.wait().await;
                users.record_identity(&late, None, now).await.map(|(_, a, _)| a.id)
            });
            let request = app.http.post(app.url("/oauth/token")).header("authorization", &auth).form(&[
                ("grant_type", "flow"), ("appId", OA), ("openId", oa_openid.as_str()),
                ("unionId", union_id.as_str()), ("ticket", ticket.as_str()),
            ]);
            let signing_in = tokio::spawn(async move {
                b2.wait().await;
                let response = request.send().await.unwrap();
                (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null))
            });
            let (merged, signed_in) = tokio::join!(merging, signing_in);
            let survivor = merged.unwrap().unwrap();
            let mut wrong = Vec::new();
            if survivor != older.id {
                wrong.push(format!("the login ended on account {survivor}, not the older {}", older.id));
            }
            let holders = entity::flow_user::Entity::find()
                .filter(entity::flow_user::Column::UnionId.eq(union_id.as_str()))
                .all(&app.state.db).await.unwrap();
            if holders.len() != 1 || holders[0].id != older.id {
                wrong.push(format!("accounts with the unionid: {:?}", holders.iter().map(|a| a.id).collect::<Vec<_>>()));
            }
            if entity::flow_user::Entity::find_by_id(newer.id).one(&app.state.db).await.unwrap().is_some() {
                wrong.push("the newer account still exists".into());
            }
            for (appid, open_id) in [(MP, &mp_openid), (OA, &oa_openid)] {
                let at = account_of(&app, appid, open_id).await;
                if at != Some(older.id) {
                    wrong.push(format!("{appid}/{open_id} is on {at:?}"));
                }
            }
            let mut tokens = vec![before];
            let (status, body) = signed_in.unwrap();
            if status == 200 {
                tokens.push(body);
            }
            for t in &tokens {
                let claims = crate::oauth::verify_with_jwks(&app, t["access_token"].as_str().unwrap()).await;
                if claims["flow_user_id"].as_str() == Some(newer.id.to_string().as_str()) {
                    for kind in ["refresh_token", "access_token"] {
                        if active(&app, &auth, t[kind].as_str().unwrap()).await {
                            wrong.push(format!("a live {kind} of the merged account"));
                        }
                    }
                }
            }
            if !wrong.is_empty() {
                broken.push((trial, status, wrong));
            }
        }
        assert!(broken.is_empty(), "{}/{TRIALS} trials on {:?} went wrong: {broken:?}", broken.len(), app.backend);
    }
}
