//! Single-use things under two requests released at the same instant (a `tokio::sync::Barrier`),
//! 20 times on every backend: a refresh token presented twice at once, an authorization code
//! exchanged twice at once, two login tickets presented four times each at once, and three people
//! signing in three times each at once (on one instance, or four times each across two). Whatever
//! the interleaving, nothing the spent thing produced may stay alive: the winner's new refresh
//! token is refused, its access token is inactive at introspection, and replaying the old token
//! or code afterwards still refuses; each ticket is accepted exactly once.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Barrier;
use url::Url;
use wxauth::audit::{AuditFilter, AuditKind};
use wxauth::users::IdentityKey;

use crate::backend_tests;
use crate::harness::{ClientFixture, Options, TestApp};
use crate::oauth::basic;
use crate::oidc::{Browser, DESKTOP, REDIRECT, SECRET as OIDC_SECRET, Step, oidc_client, pkce};

const TRIALS: usize = 20;
const SECRET: &str = "a-long-client-secret-for-races";
use crate::harness::{SEED_APPID as APPID, SEED_OPENID as OPENID, SEED_UNIONID as UNIONID};

async fn flow_client(app: &TestApp) {
    ClientFixture::new("web", SECRET, &["flow", "refresh_token"])
        .scopes(&["flow"])
        .register(app)
        .await;
    crate::harness::seed_identity(app).await;
}

/// POST a form to the token endpoint.
pub(crate) async fn token(app: &TestApp, auth: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .header("authorization", auth)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Whether `token` is active, as the client that holds it sees it at introspection.
pub(crate) async fn active(app: &TestApp, auth: &str, token: &str) -> bool {
    let body: Value = app
        .http
        .post(app.url("/oauth/introspect"))
        .header("authorization", auth)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["active"] == true
}

/// Send the same token request twice, released together by a barrier.
async fn twice_at_once(
    app: &TestApp,
    auth: &str,
    form: Vec<(String, String)>,
) -> [(u16, Value); 2] {
    let barrier = Arc::new(Barrier::new(2));
    let send = |barrier: Arc<Barrier>| {
        let request = app
            .http
            .post(app.url("/oauth/token"))
            .header("authorization", auth)
            .form(&form);
        tokio::spawn(async move {
            barrier.wait().await;
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    let (a, b) = tokio::join!(send(barrier.clone()), send(barrier));
    [a.unwrap(), b.unwrap()]
}

async fn audited(app: &TestApp, kind: AuditKind) -> Vec<wxauth::audit::StoredEvent> {
    app.state
        .audit
        .list(&AuditFilter {
            kind: Some(kind),
            limit: 10_000,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
}

/// A code for the signed-in `browser` (first-party client: no consent page).
pub(crate) async fn code(browser: &mut Browser<'_>, challenge: &str) -> String {
    let mut url = Url::parse(&browser.app.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "web")
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid")
        .append_pair("state", "st")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    let Step::Left(back) = browser.walk(url.as_str()).await else {
        panic!("no redirect to the client")
    };
    back.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

/// Whether the Mini Program session `session_id` is live: it can mint a web-view ticket.
async fn session_live(app: &TestApp, session_id: &str) -> bool {
    let (status, body) = crate::web_view::mint(app, session_id, "front").await;
    assert!(matches!(status, 200 | 400 | 401), "{status}: {body}");
    status == 200
}

/// The people of the sign-in races (`carol` is added to the simulator by each test).
const PEOPLE: [&str; 3] = ["alice", "bob", "carol"];

/// `each` Mini Program sign-ins (for client `front`) of every one of [`PEOPLE`], a person's n-th
/// on `instances[n % instances.len()]`, released together by a barrier. Each answer is a 200;
/// returned with the index of the person it signed in.
async fn sign_ins_released_together(
    instances: &[&TestApp],
    each: usize,
    trial: usize,
) -> Vec<(usize, Value)> {
    let barrier = Arc::new(Barrier::new(PEOPLE.len() * each));
    let mut sign_ins = Vec::new();
    for (who, user) in PEOPLE.iter().enumerate() {
        for n in 0..each {
            let instance = instances[n % instances.len()];
            let code = instance
                .sim
                .mint_js_code(wxauth::simulator::demo::MINI_PROGRAM_APPID, user)
                .unwrap();
            let request = instance.http.post(instance.url("/api/wechat/ma/session")).json(&serde_json::json!({
                "appId": wxauth::simulator::demo::MINI_PROGRAM_APPID, "code": code, "clientId": "front",
            }));
            let barrier = barrier.clone();
            sign_ins.push(tokio::spawn(async move {
                barrier.wait().await;
                let response = request.send().await.unwrap();
                (
                    who,
                    response.status().as_u16(),
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }));
        }
    }
    let mut answers = Vec::with_capacity(sign_ins.len());
    for sign_in in sign_ins {
        let (who, status, body) = sign_in.await.unwrap();
        assert_eq!(status, 200, "trial {trial}: {body}");
        answers.push((who, body));
    }
    answers
}

/// Of each person's sessions (`sessions[who]`), exactly one is live.
async fn assert_one_live_session_each(app: &TestApp, sessions: &[Vec<String>; 3], trial: usize) {
    for (who, ids) in sessions.iter().enumerate() {
        let mut live = 0;
        for id in ids {
            live += usize::from(session_live(app, id).await);
        }
        assert_eq!(live, 1, "trial {trial}: {}'s live sessions", PEOPLE[who]);
    }
}

backend_tests! {
    async fn sign_ins_released_together_leave_each_person_one_live_session_and_every_ticket(app: TestApp) {
        // Three people, each signing in three times (three wx.login codes, so three
        // session_keys), all released together: the session writes land in the same batches.
        // As when written one after the other, each person is left exactly one live session
        // (every sign-in replaced the sessions holding another key) and every ticket works.
        let auth = crate::mini_program::client(&app, "front", &["flow"]).await;
        app.sim.add_user(wxauth::simulator::SimUser::new("carol", "Carol"));
        for trial in 0..TRIALS / 2 {
            let mut sessions: [Vec<String>; 3] = Default::default();
            for (who, body) in sign_ins_released_together(&[&app], 3, trial).await {
                let form = [
                    ("grant_type", "flow"),
                    ("appId", wxauth::simulator::demo::MINI_PROGRAM_APPID),
                    ("openId", body["openId"].as_str().unwrap()),
                    ("unionId", body["unionId"].as_str().unwrap()),
                    ("ticket", body["ticket"].as_str().unwrap()),
                ];
                let (status, tokens) = token(&app, &auth, &form).await;
                assert_eq!(status, 200, "trial {trial}: {} ticket: {tokens}", PEOPLE[who]);
                sessions[who].push(body["sessionId"].as_str().unwrap().to_owned());
            }
            assert_one_live_session_each(&app, &sessions, trial).await;
        }
    }

    async fn sign_ins_on_two_instances_at_once_leave_each_person_one_live_session(app: TestApp) {
        // As above, but each person's sign-ins are split between two instances on one
        // database, so no one instance's queue orders them: whatever the interleaving of the
        // two instances' writes, each person is left exactly one live session, as if the
        // sign-ins had been written one after the other in some order.
        let other = TestApp::spawn_with(app.backend, Options { share: Some(app.sharing()), ..Options::default() })
            .await
            .expect("a second instance on the same database");
        crate::mini_program::client(&app, "front", &["flow"]).await;
        app.sim.add_user(wxauth::simulator::SimUser::new("carol", "Carol"));
        for trial in 0..TRIALS / 2 {
            let mut sessions: [Vec<String>; 3] = Default::default();
            for (who, body) in sign_ins_released_together(&[&app, &other], 4, trial).await {
                sessions[who].push(body["sessionId"].as_str().unwrap().to_owned());
            }
            assert_one_live_session_each(&app, &sessions, trial).await;
        }
    }

    async fn a_login_ticket_presented_many_times_at_once_is_accepted_once(app: TestApp) {
        let auth = crate::mini_program::client(&app, "front", &["flow"]).await;
        const EACH: usize = 4;
        for trial in 0..TRIALS {
            // Two people's tickets, each presented four times, all released together: the
            // spends land in the same batches, and each ticket must be accepted exactly once.
            let people = [crate::mini_program::sign_in(&app, "alice").await, crate::mini_program::sign_in(&app, "bob").await];
            let barrier = Arc::new(Barrier::new(EACH * people.len()));
            let mut tries = Vec::new();
            for (who, session) in people.iter().enumerate() {
                let form: Vec<(String, String)> = [
                    ("grant_type", "flow"),
                    ("appId", wxauth::simulator::demo::MINI_PROGRAM_APPID),
                    ("openId", session["openId"].as_str().unwrap()),
                    ("unionId", session["unionId"].as_str().unwrap()),
                    ("ticket", session["ticket"].as_str().unwrap()),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
                for _ in 0..EACH {
                    let request = app.http.post(app.url("/oauth/token")).header("authorization", auth.clone()).form(&form);
                    let barrier = barrier.clone();
                    tries.push(tokio::spawn(async move {
                        barrier.wait().await;
                        let response = request.send().await.unwrap();
                        let status = response.status().as_u16();
                        (who, status, response.json::<Value>().await.unwrap_or(Value::Null))
                    }));
                }
            }
            let mut accepted = [0; 2];
            for attempt in tries {
                let (who, status, body) = attempt.await.unwrap();
                match status {
                    200 => accepted[who] += 1,
                    _ => assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "trial {trial}: {body}"),
                }
            }
            assert_eq!(accepted, [1, 1], "trial {trial}: each ticket is accepted exactly once");
        }
    }

    async fn two_refreshes_at_once_leave_no_live_descendant(app: TestApp) {
        flow_client(&app).await;
        let auth = basic("web", SECRET);
        let mut survivors = Vec::new();
        for trial in 0..TRIALS {
            let ticket = app.state.tickets.mint(&IdentityKey::new(APPID.parse().unwrap(), OPENID, Some(UNIONID))).await.unwrap();
            let (status, first) = token(&app, &auth, &[
                ("grant_type", "flow"), ("appId", APPID), ("openId", OPENID),
                ("unionId", UNIONID), ("ticket", &ticket),
            ]).await;
            assert_eq!(status, 200, "{first}");
            let old = first["refresh_token"].as_str().unwrap().to_owned();
            let form = vec![("grant_type".into(), "refresh_token".into()), ("refresh_token".into(), old.clone())];
            let results = twice_at_once(&app, &auth, form).await;
            let winners: Vec<&Value> = results.iter().filter(|(s, _)| *s == 200).map(|(_, b)| b).collect();
            assert!(winners.len() <= 1, "one refresh token, two rotations: {results:?}");
            for (status, body) in &results {
                assert!(*status == 200 || (*status == 400 && body["error"] == "invalid_grant"), "{status} {body}");
            }
            let mut alive = Vec::new();
            for winner in &winners {
                let new = winner["refresh_token"].as_str().unwrap();
                if active(&app, &auth, new).await {
                    alive.push("the winner's refresh token at introspection");
                }
                if active(&app, &auth, winner["access_token"].as_str().unwrap()).await {
                    alive.push("the winner's access token at introspection");
                }
            }
            if active(&app, &auth, first["access_token"].as_str().unwrap()).await {
                alive.push("the first access token at introspection");
            }
            // Replaying the old token is refused, and afterwards the new one is refused too.
            let (status, body) = token(&app, &auth, &[("grant_type", "refresh_token"), ("refresh_token", &old)]).await;
            assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
            for winner in &winners {
                let new = winner["refresh_token"].as_str().unwrap();
                let (status, _) = token(&app, &auth, &[("grant_type", "refresh_token"), ("refresh_token", new)]).await;
                if status == 200 {
                    alive.push("the winner's refresh token after the old one was replayed");
                }
            }
            if !alive.is_empty() {
                survivors.push((trial, alive));
            }
        }
        assert!(survivors.is_empty(), "{}/{TRIALS} trials left a descendant alive on {:?}: {survivors:?}", survivors.len(), app.backend);
        // Every reuse is in the audit trail, with its client and account.
        let reuses = audited(&app, AuditKind::RefreshReuse).await;
        assert!(reuses.len() >= TRIALS, "{} refresh_reuse events", reuses.len());
        assert!(reuses.iter().all(|e| e.client_id.as_deref() == Some("web") && e.account_id.is_some() && e.outcome == "refused"));
    }

    async fn a_sign_out_at_the_instant_of_a_refresh_leaves_nothing_alive(app: TestApp) {
        flow_client(&app).await;
        let auth = basic("web", SECRET);
        let mut survivors = Vec::new();
        for trial in 0..TRIALS {
            let ticket = app.state.tickets.mint(&IdentityKey::new(APPID.parse().unwrap(), OPENID, Some(UNIONID))).await.unwrap();
            let (status, first) = token(&app, &auth, &[
                ("grant_type", "flow"), ("appId", APPID), ("openId", OPENID),
                ("unionId", UNIONID), ("ticket", &ticket),
            ]).await;
            assert_eq!(status, 200, "{first}");
            let old = first["refresh_token"].as_str().unwrap().to_owned();
            // The app refreshes while the user signs out (RFC 7009 revocation of the same token).
            let barrier = Arc::new(Barrier::new(2));
            let refresh = app.http.post(app.url("/oauth/token")).header("authorization", &auth)
                .form(&[("grant_type", "refresh_token"), ("refresh_token", old.as_str())]);
            let revoke = app.http.post(app.url("/oauth/revoke")).header("authorization", &auth)
                .form(&[("token", old.as_str())]);
            let (b1, b2) = (barrier.clone(), barrier);
            let (refreshed, revoked) = tokio::join!(
                tokio::spawn(async move {
                    b1.wait().await;
                    let response = refresh.send().await.unwrap();
                    (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null))
                }),
                tokio::spawn(async move {
                    b2.wait().await;
                    revoke.send().await.unwrap().status().as_u16()
                }),
            );
            let (status, body) = refreshed.unwrap();
            assert_eq!(revoked.unwrap(), 200);
            assert!(status == 200 || (status == 400 && body["error"] == "invalid_grant"), "{status} {body}");
            let mut alive = Vec::new();
            if active(&app, &auth, first["access_token"].as_str().unwrap()).await {
                alive.push("the first access token");
            }
            if status == 200 {
                if active(&app, &auth, body["refresh_token"].as_str().unwrap()).await {
                    alive.push("the new refresh token");
                }
                if active(&app, &auth, body["access_token"].as_str().unwrap()).await {
                    alive.push("the new access token");
                }
            }
            if !alive.is_empty() {
                survivors.push((trial, alive));
            }
        }
        assert!(survivors.is_empty(), "{}/{TRIALS} trials left a token alive after sign-out on {:?}: {survivors:?}", survivors.len(), app.backend);
    }

    async fn a_code_exchanged_twice_at_once_leaves_no_live_token(app: TestApp) {
        oidc_client(&app, "web", false, true).await;
        let auth = basic("web", OIDC_SECRET);
        let mut browser = Browser::new(&app, DESKTOP, "alice");
        let mut survivors = Vec::new();
        for trial in 0..TRIALS {
            let (verifier, challenge) = pkce();
            let code = code(&mut browser, &challenge).await;
            let form: Vec<(String, String)> = [
                ("grant_type", "authorization_code"), ("code", code.as_str()),
                ("redirect_uri", REDIRECT), ("code_verifier", verifier.as_str()),
            ].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let results = twice_at_once(&app, &auth, form.clone()).await;
            let winners: Vec<&Value> = results.iter().filter(|(s, _)| *s == 200).map(|(_, b)| b).collect();
            assert!(winners.len() <= 1, "one code, two exchanges: {results:?}");
            for (status, body) in &results {
                assert!(*status == 200 || (*status == 400 && body["error"] == "invalid_grant"), "{status} {body}");
            }
            let mut alive = Vec::new();
            for winner in &winners {
                if active(&app, &auth, winner["access_token"].as_str().unwrap()).await {
                    alive.push("the winner's access token at introspection");
                }
                let refresh = winner["refresh_token"].as_str().unwrap();
                if active(&app, &auth, refresh).await {
                    alive.push("the winner's refresh token at introspection");
                }
                let (status, _) = token(&app, &auth, &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
                if status == 200 {
                    alive.push("the winner's refresh token at the token endpoint");
                }
            }
            // A later replay is refused all the same.
            let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let (status, body) = token(&app, &auth, &pairs).await;
            assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
            if !alive.is_empty() {
                survivors.push((trial, alive));
            }
        }
        assert!(survivors.is_empty(), "{}/{TRIALS} trials left a token alive on {:?}: {survivors:?}", survivors.len(), app.backend);
        // Every replay is in the audit trail (the racing one and the later one of each trial).
        let replays = audited(&app, AuditKind::CodeReplay).await;
        assert!(replays.len() >= 2 * TRIALS, "{} code_replay events", replays.len());
        assert!(replays.iter().all(|e| e.client_id.as_deref() == Some("web") && e.account_id.is_some() && !e.detail.contains(&OIDC_SECRET[..8])));
    }
}
