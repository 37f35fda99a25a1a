//! The H5 two-hop spliced across two people, as the review did it: Mallory does the entry hop in
//! her browser and sends the base account's authorize URL to Alice; Alice's browser is refused,
//! nothing is linked and no ticket is minted, while Mallory's own browser can still finish with
//! her own identity. Also: no silent relinking of an entry identity to another unionid, the
//! page's `nonce` coming back unchanged, and H5 tickets that belong to the client that asked.

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::Value;
use wxauth::oauth::FlowTicketPolicy;
use wxauth::simulator::demo;

use crate::backend_tests;
use crate::h5::{
    BASE_CB, BUILD, Browser, CLIENT_SECRET, NEXT, assert_error_page, build_url, flow_client, pairs,
    query, redeem, start, urlencode, walk,
};
use crate::harness::{ClientFixture, TestApp};

const ENTRY: &str = demo::ENTRY_ACCOUNT_APPID;
const BASE: &str = demo::BASE_ACCOUNT_APPID;

async fn tickets(app: &TestApp) -> u64 {
    entity::login_ticket::Entity::find()
        .count(&app.state.db)
        .await
        .unwrap()
}

async fn refusals(app: &TestApp) -> Vec<entity::audit_event::Model> {
    entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::Kind.eq("h5_binding_refused"))
        .order_by_asc(entity::audit_event::Column::Id)
        .all(&app.state.db)
        .await
        .unwrap()
}

fn reason(event: &entity::audit_event::Model) -> String {
    let detail: Value = serde_json::from_str(&event.detail).unwrap();
    detail["reason"].as_str().unwrap_or_default().to_owned()
}

/// The "start again" link of an error page.
fn start_over_link(body: &str) -> String {
    body.split("id=\"start-over\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a start-over link")
        .replace("&amp;", "&")
        .replace("&#x2f;", "/")
}

async fn identity(app: &TestApp, appid: &str, user: &str) -> Option<wxauth::users::WeChatIdentity> {
    app.state
        .users
        .find_identity(appid, &app.sim.openid(appid, user))
        .await
        .unwrap()
}

/// `entryBuildUrl` with extra parameters; the WeChat authorize URL it answers.
async fn start_with(app: &TestApp, extra: &[(&str, &str)]) -> String {
    let mut params = vec![("appId", ENTRY), ("next", NEXT)];
    params.extend_from_slice(extra);
    let response = app
        .http
        .get(app.url(BUILD))
        .query(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["url"].as_str().unwrap().to_owned()
}

async fn optional_flow_client(app: &TestApp, id: &str) {
    ClientFixture::new(id, CLIENT_SECRET, &["flow"])
        .scopes(&["flow"])
        .flow_ticket(FlowTicketPolicy::Optional)
        .register(app)
        .await;
}

backend_tests! {
    async fn a_base_hop_opened_in_another_browser_is_refused_and_links_nothing(app: TestApp) {
        app.push_component_ticket().await;
        // Alice already has an account under her unionid (she signed in through the Mini Program).
        crate::mini_program::sign_in(&app, "alice").await;
        let alice_union = app.sim.unionid(BASE, "alice").unwrap();
        let alice_account = app.state.users.find_identity(demo::MINI_PROGRAM_APPID,
            &app.sim.openid(demo::MINI_PROGRAM_APPID, "alice")).await.unwrap().unwrap().account_id;
        let tickets_before = tickets(&app).await;

        // Mallory (the simulator's bob) does the entry hop in her own browser ...
        let mallory = Browser::new(&app, "bob");
        let entry_authorize = start(&app, ENTRY, NEXT).await;
        let entry_callback = mallory.hop(&entry_authorize).await;
        let base_authorize = mallory.hop(&entry_callback).await;

        // ... and sends the base account's authorize URL to Alice, who opens it in WeChat.
        let alice = Browser::new(&app, "alice");
        let base_callback = alice.hop(&base_authorize).await;
        assert!(base_callback.starts_with(&app.url(BASE_CB)));
        let refused = alice.page(&base_callback).await;
        assert_error_page(&refused, 403);
        assert!(refused.body.contains("another browser"), "{}", refused.body);
        assert!(!refused.body.contains(&alice_union) && !refused.body.contains("unionId="));
        let again = query(&start_over_link(&refused.body));
        assert_eq!((again["appId"].as_str(), again["next"].as_str()), (ENTRY, NEXT));

        // The same with a binding cookie of Alice's own (she started a sign-in of her own).
        let own = start(&app, ENTRY, NEXT).await;
        let own_callback = alice.hop(&own).await;
        alice.hop(&own_callback).await;
        let base_callback = alice.hop(&base_authorize).await;
        assert_error_page(&alice.page(&base_callback).await, 403);

        // Nothing was linked, no ticket was minted, no H5 sign-in happened.
        let mallory_entry = identity(&app, ENTRY, "bob").await.unwrap();
        assert_eq!(mallory_entry.union_id, None);
        assert_ne!(mallory_entry.account_id, alice_account);
        assert!(identity(&app, BASE, "alice").await.is_none());
        assert_eq!(tickets(&app).await, tickets_before);
        let events = refusals(&app).await;
        assert_eq!(events.iter().map(reason).collect::<Vec<_>>(), ["no_binding_cookie", "other_browser"]);
        assert!(events.iter().all(|e| e.outcome == "refused" && e.account_id == mallory_entry.account_id));
        let h5_sign_ins = entity::audit_event::Entity::find()
            .filter(entity::audit_event::Column::Kind.eq("sign_in"))
            .filter(entity::audit_event::Column::Subject.eq("h5"))
            .count(&app.state.db).await.unwrap();
        assert_eq!(h5_sign_ins, 0);

        // The seed's exploit, next step: Mallory's openid with Alice's unionid at a client that
        // takes bare flow requests. Not an identity wxauth knows: refused.
        optional_flow_client(&app, "legacy").await;
        let response = app.http.post(app.url("/api/auth/oauth/token"))
            .basic_auth("legacy", Some(CLIENT_SECRET))
            .form(&[("grant_type", "flow"), ("scope", "flow"), ("appId", ENTRY),
                    ("openId", mallory_entry.open_id.as_str()), ("unionId", alice_union.as_str())])
            .send().await.unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant");

        // The refusals did not burn the state: Mallory's own browser finishes, as Mallory.
        let base_callback = mallory.hop(&base_authorize).await;
        let landing = mallory.hop(&base_callback).await;
        let q = query(&landing);
        assert_eq!(q["openId"], app.sim.openid(ENTRY, "bob"));
        assert_eq!(q["unionId"], app.sim.unionid(BASE, "bob").unwrap());
        assert_eq!(identity(&app, ENTRY, "bob").await.unwrap().union_id, app.sim.unionid(BASE, "bob"));
    }

    async fn a_base_hop_with_another_unionid_than_the_entry_identity_has_is_refused(app: TestApp) {
        app.push_component_ticket().await;
        // Mallory (bob) signed in before: her entry identity carries her unionid.
        let first = walk(&app, ENTRY, NEXT, "bob").await;
        let mallory_union = app.sim.unionid(BASE, "bob").unwrap();
        assert_eq!(query(&first.landing)["unionId"], mallory_union);
        let before = identity(&app, ENTRY, "bob").await.unwrap();
        let tickets_before = tickets(&app).await;

        // In the same browser, the entry hop as Mallory, the base hop as Alice.
        let phone = Browser::new(&app, "bob");
        let entry_callback = phone.hop(&start(&app, ENTRY, NEXT).await).await;
        let base_authorize = phone.hop(&entry_callback).await;
        phone.sign_in_to_wechat_as("alice");
        let base_callback = phone.hop(&base_authorize).await;
        let refused = phone.page(&base_callback).await;
        assert_error_page(&refused, 403);
        assert!(refused.body.contains("does not match"), "{}", refused.body);
        assert!(!refused.body.contains(&app.sim.unionid(BASE, "alice").unwrap()));

        // Mallory's entry identity is unchanged: same unionid, same account; no new ticket.
        let after = identity(&app, ENTRY, "bob").await.unwrap();
        assert_eq!(after.union_id.as_deref(), Some(mallory_union.as_str()));
        assert_eq!(after.account_id, before.account_id);
        assert_eq!(tickets(&app).await, tickets_before);
        let events = refusals(&app).await;
        assert_eq!(events.iter().map(reason).collect::<Vec<_>>(), ["relink"]);
        assert_eq!(events[0].account_id, before.account_id);
    }

    async fn the_pages_nonce_comes_back_unchanged(app: TestApp) {
        app.push_component_ticket().await;
        let nonce = "n0nce-._~+/=!$*Zz";
        let entry_authorize = start_with(&app, &[("nonce", nonce)]).await;
        // It stays with us: WeChat never sees it.
        assert!(!entry_authorize.contains("n0nce") && !entry_authorize.contains(&urlencode(nonce)));
        let phone = Browser::new(&app, "alice");
        let entry_callback = phone.hop(&entry_authorize).await;
        assert!(!entry_callback.contains("n0nce"));
        let base_authorize = phone.hop(&entry_callback).await;
        assert!(!base_authorize.contains("n0nce"));
        let landing = phone.hop(&phone.hop(&base_authorize).await).await;
        let names: Vec<String> = pairs(&landing).into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["x", "appId", "openId", "unionId", "ticket", "nonce"]);
        assert_eq!(query(&landing)["nonce"], nonce);

        // A next that carries a nonce of its own gets ours in its place, once.
        let next = "https://app.example.com/m?nonce=forged&y=2";
        let response = app.http.get(app.url(BUILD))
            .query(&[("appId", ENTRY), ("next", next), ("nonce", "mine")]).send().await.unwrap();
        let authorize = response.json::<Value>().await.unwrap()["url"].as_str().unwrap().to_owned();
        let phone = Browser::new(&app, "bob");
        let landing = phone.hop(&phone.hop(&phone.hop(&phone.hop(&authorize).await).await).await).await;
        let nonces: Vec<String> = pairs(&landing).into_iter().filter(|(k, _)| k == "nonce").map(|(_, v)| v).collect();
        assert_eq!(nonces, ["mine"]);

        // Without one, there is none; a malformed one is refused before anything is stored.
        let plain = walk(&app, ENTRY, NEXT, "alice").await;
        assert!(!query(&plain.landing).contains_key("nonce"));
        for bad in ["has space", "tab\there", "é", &"n".repeat(129)] {
            let response = app.http.get(app.url(BUILD))
                .query(&[("appId", ENTRY), ("next", NEXT), ("nonce", bad)]).send().await.unwrap();
            assert_eq!(response.status(), 400, "{bad:?}");
            let body: Value = response.json().await.unwrap();
            assert!(body["error_description"].as_str().unwrap().contains("nonce"), "{body}");
        }
        assert_eq!(build_url(&app, ENTRY, NEXT).await.status(), 200);
    }

    async fn an_h5_ticket_for_one_client_is_refused_for_another(app: TestApp) {
        app.push_component_ticket().await;
        flow_client(&app, "shop").await;
        flow_client(&app, "partner").await;

        let landing_for_shop = |user: &'static str| {
            let app = &app;
            async move {
                let authorize = start_with(app, &[("clientId", "shop")]).await;
                let phone = Browser::new(app, user);
                phone.hop(&phone.hop(&phone.hop(&phone.hop(&authorize).await).await).await).await
            }
        };
        // Minted for "shop": another client is refused, and the attempt spends it.
        let landing = landing_for_shop("alice").await;
        let (status, body) = redeem(&app, "partner", &landing).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        let (status, _) = redeem(&app, "shop", &landing).await;
        assert_eq!(status, 400);
        // A fresh one is redeemed by its own client.
        let landing = landing_for_shop("alice").await;
        let (status, body) = redeem(&app, "shop", &landing).await;
        assert_eq!(status, 200, "{body}");

        // An unknown client, or one that cannot redeem tickets, is refused at the start.
        for client in ["nobody", "no-flow"] {
            if client == "no-flow" {
                crate::mini_program::client(&app, "no-flow", &["client_credentials"]).await;
            }
            let response = app.http.get(app.url(BUILD))
                .query(&[("appId", ENTRY), ("next", NEXT), ("clientId", client)]).send().await.unwrap();
            assert_eq!(response.status(), 400, "{client}");
        }

        // A refused page of a sign-in for a client starts again for that client.
        let authorize = start_with(&app, &[("clientId", "shop")]).await;
        let mallory = Browser::new(&app, "bob");
        let base_authorize = mallory.hop(&mallory.hop(&authorize).await).await;
        let alice = Browser::new(&app, "alice");
        let refused = alice.page(&alice.hop(&base_authorize).await).await;
        assert_error_page(&refused, 403);
        assert_eq!(query(&start_over_link(&refused.body))["clientId"], "shop");
    }
}
