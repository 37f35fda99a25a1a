//! Several instances, proven: three wxauth servers on one PostgreSQL database, sharing Redis for
//! the rate limits and one `WXAUTH_PUBLIC_URL`, taken in turn as a round-robin load balancer would.
//! A login started on one finishes on another, refreshes alternate, every instance publishes the
//! key every other signs with, a rotated client secret is honoured everywhere within the client
//! cache's 5 s, a rate limit is one limit across all three (leased in chunks when it is a busy
//! one), WeChat's access token is fetched once per expiry however many instances need it at once, a
//! staged key rotation never has one instance sign with a key another does not publish, and a
//! disabled user is refused by all three at once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Barrier;
use wxauth::admin::{Actor, Admin};
use wxauth::oauth::client_registry::CLIENT_CACHE_TTL;
use wxauth::simulator::SimUser;
use wxauth::simulator::demo::MINI_PROGRAM_APPID as MP;

use crate::abuse::{fresh_prefix, test_redis};
use crate::harness::{Backend, Options, TestApp};
use crate::mini_program::{client, post, token};
use crate::oauth::basic;

/// Three instances on one PostgreSQL database (`None` when PostgreSQL or Redis is not configured).
async fn three_instances(extra: &[(&str, &str)]) -> Option<[TestApp; 3]> {
    let redis = test_redis()?;
    let prefix = fresh_prefix();
    let mut env: Vec<(String, String)> = vec![
        ("WXAUTH_REDIS_URL".into(), redis),
        ("WXAUTH_REDIS_PREFIX".into(), prefix),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let first = TestApp::spawn_with(
        Backend::Postgres,
        Options {
            env: env.clone(),
            ..Options::default()
        },
    )
    .await?;
    // Behind one load balancer every instance has the same public URL, hence one issuer.
    env.push(("WXAUTH_PUBLIC_URL".into(), first.base.clone()));
    let mut others = Vec::new();
    for _ in 0..2 {
        others.push(
            TestApp::spawn_with(
                Backend::Postgres,
                Options {
                    env: env.clone(),
                    share: Some(first.sharing()),
                    ..Options::default()
                },
            )
            .await
            .expect("a second instance on the same database"),
        );
    }
    let third = others.pop()?;
    let second = others.pop()?;
    Some([first, second, third])
}

/// The `flow` grant redeeming the ticket of a `/ma/session` answer.
async fn redeem(app: &TestApp, auth: &str, session: &Value) -> (u16, Value) {
    let field = |name: &str| session[name].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "flow".to_owned()),
        ("appId", MP.to_owned()),
        ("openId", field("openId")),
        ("unionId", field("unionId")),
        ("ticket", field("ticket")),
    ];
    token(app, auth, &form).await
}

fn kid_of(jwt: &str) -> String {
    jsonwebtoken::decode_header(jwt)
        .expect("a JWT")
        .kid
        .expect("a kid")
}

async fn published_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

async fn introspect(app: &TestApp, auth: &str, token: &str) -> Value {
    app.http
        .post(app.url("/oauth/introspect"))
        .header("authorization", auth)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_and_its_refreshes_go_round_three_instances() {
    let Some(apps) = three_instances(&[]).await else {
        return;
    };
    let auth = client(&apps[0], "round-robin", &["flow", "refresh_token"]).await;

    // wx.login on the first; the ticket redeemed on the second.
    let code = apps[0].sim.mint_js_code(MP, "alice").unwrap();
    let (status, session) = post(
        &apps[0],
        "/api/wechat/ma/session",
        json!({ "appId": MP, "code": code }),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let (status, tokens) = redeem(&apps[1], &auth, &session).await;
    assert_eq!(status, 200, "{tokens}");
    // The ticket is spent for all three.
    let (status, again) = redeem(&apps[2], &auth, &session).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant")),
        "{again}"
    );

    // Refreshes alternate between the instances; each answer is accepted by all of them.
    let mut refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let mut access = tokens["access_token"].as_str().unwrap().to_owned();
    for round in 0..6 {
        for app in &apps {
            assert!(
                published_kids(app).await.contains(&kid_of(&access)),
                "round {round}"
            );
            assert_eq!(
                introspect(app, &auth, &access).await["active"],
                true,
                "round {round}"
            );
        }
        let app = &apps[(round + 2) % 3];
        let (status, next) = token(
            app,
            &auth,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
        assert_eq!(status, 200, "round {round}: {next}");
        let previous = std::mem::replace(
            &mut refresh,
            next["refresh_token"].as_str().unwrap().to_owned(),
        );
        access = next["access_token"].as_str().unwrap().to_owned();
        // The spent refresh token replayed on another instance: refused, and the family dies.
        if round == 5 {
            let other = &apps[(round + 3) % 3];
            let (status, _) = token(
                other,
                &auth,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &previous),
                ],
            )
            .await;
            assert_eq!(status, 400);
            for app in &apps {
                let (status, _) = token(
                    app,
                    &auth,
                    &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
                )
                .await;
                assert_eq!(status, 400, "the family is revoked everywhere");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_secret_is_honoured_by_every_instance_within_the_cache_time() {
    let Some(apps) = three_instances(&[]).await else {
        return;
    };
    client(&apps[0], "rotating", &["client_credentials"]).await;
    // Every instance has the client cached.
    for app in &apps {
        let (status, body) = token(
            app,
            &basic("rotating", crate::mini_program::SECRET),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let secret = apps[1]
        .state
        .clients
        .rotate_secret("rotating")
        .await
        .unwrap();
    let auth = basic("rotating", secret.expose());
    // Not polled: every refusal would count as a failed authentication (and five of them
    // start the guessing throttle, across all instances through Redis). After the cache time
    // (whole seconds, so one more) every instance takes the new secret at the first try.
    let cache_time = u64::try_from(CLIENT_CACHE_TTL).unwrap() + 1;
    tokio::time::sleep(Duration::from_secs(cache_time)).await;
    for app in &apps {
        let (status, body) = token(app, &auth, &[("grant_type", "client_credentials")]).await;
        assert_eq!(status, 200, "{}: {body}", app.base);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limit_is_one_limit_across_three_instances() {
    let Some(apps) = three_instances(&[("WXAUTH_LIMIT_MA_SESSION", "6/h")]).await else {
        return;
    };
    let mut statuses = Vec::new();
    for n in 0..9 {
        let (status, _) = post(
            &apps[n % 3],
            "/api/wechat/ma/session",
            json!({ "appId": MP, "code": "not-a-code" }),
        )
        .await;
        statuses.push(status);
    }
    assert_eq!(statuses, [400, 400, 400, 400, 400, 400, 429, 429, 429]);
}

/// A busy limit is leased from Redis in chunks (growing with each instance's demand to 1/16 of
/// the bucket per call), each instance admitting its lease without asking again. Requests
/// released together on three instances, many rounds: together they still admit no more than
/// the limit (plus what it refilled meanwhile), and, with later rounds to spend them, leases left
/// unspent cost no more than a lease per instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_limit_leased_in_chunks_is_still_one_limit_across_three_instances() {
    const LIMIT: usize = 480; // per hour: one request back every 7.5 s
    let Some(apps) = three_instances(&[("WXAUTH_LIMIT_MA_SESSION", "480/h")]).await else {
        return;
    };
    let apps = Arc::new(apps);
    let lease = wxauth::limits::shared::lease_size(LIMIT as u32) as usize;
    assert!(
        lease > 1,
        "480/h should lease several requests per Redis call"
    );
    const PER_INSTANCE: usize = 8;
    let started = std::time::Instant::now();
    let (mut admitted, mut refused) = (0, 0);
    for _round in 0..30 {
        let barrier = Arc::new(Barrier::new(3 * PER_INSTANCE));
        let mut requests = Vec::new();
        for n in 0..3 * PER_INSTANCE {
            let (apps, barrier) = (apps.clone(), barrier.clone());
            requests.push(tokio::spawn(async move {
                let app = &apps[n % 3];
                let request = app
                    .http
                    .post(app.url("/api/wechat/ma/session"))
                    .json(&json!({ "appId": MP, "code": "not-a-code" }));
                barrier.wait().await;
                let response = request.send().await.unwrap();
                let retry_after = response.headers().contains_key("retry-after");
                (response.status().as_u16(), retry_after)
            }));
        }
        for request in requests {
            match request.await.unwrap() {
                (429, retry_after) => {
                    assert!(retry_after, "a 429 without Retry-After");
                    refused += 1;
                }
                (400, _) => admitted += 1,
                (other, _) => panic!("unexpected {other}"),
            }
        }
    }
    let refilled = (started.elapsed().as_secs_f64() / 7.5).ceil() as usize;
    assert!(
        admitted <= LIMIT + refilled,
        "{admitted} admitted against a limit of {LIMIT} (+{refilled} refilled)"
    );
    assert!(
        admitted + 3 * (lease - 1) >= LIMIT,
        "only {admitted} admitted of {LIMIT}: more lost to unspent leases than three leases"
    );
    assert_eq!(admitted + refused, 30 * 3 * PER_INSTANCE);
}

/// A key that is not busy on an instance leases one request at a time. Requests from one
/// address taking turns on three instances, 0.4 s apart (each instance sees one every 1.2 s,
/// longer than a lease lives): every one is admitted. Leasing a sixteenth of the bucket per call
/// regardless, each would have spent 30 of the 480 and let an unspent lease expire: the 17th
/// would have been refused, 16 requests into a limit of 480.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quiet_key_leases_one_request_at_a_time_and_loses_none_to_expiry() {
    let Some(apps) = three_instances(&[("WXAUTH_LIMIT_MA_SESSION", "480/h")]).await else {
        return;
    };
    assert!(wxauth::limits::shared::lease_size(480) > 16);
    for n in 0..24 {
        let app = &apps[n % 3];
        let (status, body) = post(
            app,
            "/api/wechat/ma/session",
            json!({ "appId": MP, "code": "not-a-code" }),
        )
        .await;
        assert_eq!(status, 400, "request {n}: {body}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wechat_is_asked_for_a_token_once_per_expiry_across_three_instances() {
    let Some(apps) = three_instances(&[]).await else {
        return;
    };
    let apps = Arc::new(apps);
    apps[0].sim.set_latency(Duration::from_millis(100));
    const PER_INSTANCE: usize = 4;
    for round in 1..=2 {
        // Sessions first (jscode2session needs no access token), then every instance asks for
        // a phone number at once: each needs the app's access token.
        let mut sessions = Vec::new();
        for n in 0..3 * PER_INSTANCE {
            // One user per session: a user's next wx.login ends their previous session.
            let user = format!("phone-user-{round}-{n}");
            apps[0].sim.add_user(SimUser {
                phone: format!("1390000{n:04}"),
                ..SimUser::new(&user, &user)
            });
            let code = apps[0].sim.mint_js_code(MP, &user).unwrap();
            let (status, body) = post(
                &apps[n % 3],
                "/api/wechat/ma/session",
                json!({ "appId": MP, "code": code }),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            sessions.push((n % 3, user, body["sessionId"].as_str().unwrap().to_owned()));
        }
        let before = apps[0].sim.calls("/cgi-bin/stable_token");
        let barrier = Arc::new(Barrier::new(sessions.len()));
        let mut tasks = Vec::new();
        for (instance, user, session_id) in sessions {
            let (apps, barrier) = (apps.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let code = apps[0].sim.mint_phone_code(MP, &user).unwrap();
                barrier.wait().await;
                post(
                    &apps[instance],
                    "/api/wechat/ma/phone",
                    json!({ "sessionId": session_id, "code": code }),
                )
                .await
            }));
        }
        for task in tasks {
            let (status, body) = task.await.unwrap();
            assert_eq!(status, 200, "round {round}: {body}");
        }
        assert_eq!(
            apps[0].sim.calls("/cgi-bin/stable_token") - before,
            1,
            "round {round}"
        );
        // Past the token's expiry (7200 s) on the clock all instances share.
        apps[0].clock.advance(7200);
        apps[0].sim.advance_clock(7200);
    }
}

/// A client_credentials token from `app`, and the kid it is signed with.
async fn kid_issued_by(app: &TestApp, auth: &str) -> String {
    let (status, body) = token(app, auth, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200, "{body}");
    kid_of(body["access_token"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_instance_signs_with_a_key_another_does_not_publish_during_a_rotation() {
    let Some(apps) = three_instances(&[]).await else {
        return;
    };
    let auth = client(&apps[0], "rotation-watcher", &["client_credentials"]).await;
    let first = kid_issued_by(&apps[0], &auth).await;

    // A staged rotation on the second instance (the default delay, 600 s).
    let admin = Admin::new(&apps[1].state);
    let rotated = admin.rotate_key(&Actor::cli("test"), None).await.unwrap();
    assert_ne!(rotated.kid, first);

    // Walk the shared clock through the rotation; at each step every instance signs, and every
    // kid signed with anywhere is published by all three.
    let mut signed_with = std::collections::BTreeSet::new();
    for step in [0, 30, 61, 200, 400, 540, 601, 700] {
        for app in &apps {
            let kid = kid_issued_by(app, &auth).await;
            signed_with.insert(kid.clone());
            for other in &apps {
                assert!(
                    published_kids(other).await.contains(&kid),
                    "at +{step} s: {} signs with {kid}, which {} does not publish",
                    app.base,
                    other.base
                );
            }
        }
        if step < 600 {
            assert!(
                !signed_with.contains(&rotated.kid),
                "the new key signed before it activated (+{step} s)"
            );
        }
        let next = [0, 30, 61, 200, 400, 540, 601, 700]
            .iter()
            .find(|s| **s > step)
            .copied()
            .unwrap_or(step);
        apps[0].clock.advance(next - step);
    }
    // After activation every instance signs with the new key.
    for app in &apps {
        assert_eq!(kid_issued_by(app, &auth).await, rotated.kid);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disabled_user_is_refused_by_every_instance_at_once() {
    let Some(apps) = three_instances(&[]).await else {
        return;
    };
    let auth = client(&apps[0], "disable-watch", &["flow", "refresh_token"]).await;
    let sign_in = |app_index: usize| {
        let apps = &apps;
        let auth = auth.clone();
        async move {
            let code = apps[0].sim.mint_js_code(MP, "alice").unwrap();
            let (status, session) = post(
                &apps[app_index],
                "/api/wechat/ma/session",
                json!({ "appId": MP, "code": code }),
            )
            .await;
            assert_eq!(status, 200, "{session}");
            redeem(&apps[(app_index + 1) % 3], &auth, &session).await
        }
    };
    let mut held = Vec::new();
    for n in 0..3 {
        let (status, tokens) = sign_in(n).await;
        assert_eq!(status, 200, "{tokens}");
        held.push(tokens);
    }
    let account: i64 = held[0]["flow_user_id"]
        .as_str()
        .map(|s| s.parse().unwrap())
        .or_else(|| held[0]["flow_user_id"].as_i64())
        .expect("the flow grant names the account");

    Admin::new(&apps[2].state)
        .disable_user(&Actor::cli("test"), account)
        .await
        .unwrap();

    // At once, on every instance: her refresh tokens fail, her access tokens are refused, and
    // a new sign-in gets no tokens.
    for (n, app) in apps.iter().enumerate() {
        let refresh = held[n]["refresh_token"].as_str().unwrap();
        let (status, body) = token(
            app,
            &auth,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{}: {body}",
            app.base
        );
        let userinfo = app
            .http
            .get(app.url("/oauth/userinfo"))
            .bearer_auth(held[n]["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(userinfo, 401, "{}", app.base);
        let (status, body) = sign_in(n).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{}: {body}",
            app.base
        );
    }
}
