//! Login tickets belong to the client that asked for them: a Mini Program ticket minted for one
//! client (`clientId` at `/api/wechat/ma/session`) is refused for any other with the same
//! `invalid_grant` as every refusal, spent by the attempt, and audited as `ticket_refused`. A
//! ticket minted for no client (the seed's front ends name none) is redeemable by any client
//! allowed the `flow` grant.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use wxauth::simulator::demo::MINI_PROGRAM_APPID as MP;

use crate::backend_tests;
use crate::harness::TestApp;
use crate::mini_program::{client, post, token};

async fn session_for(app: &TestApp, user: &str, client_id: Option<&str>) -> (u16, Value, String) {
    let code = app.sim.mint_js_code(MP, user).unwrap();
    let mut body = json!({ "appId": MP, "code": code });
    if let Some(client) = client_id {
        body["clientId"] = client.into();
    }
    let (status, answer) = post(app, "/api/wechat/ma/session", body).await;
    (status, answer, code)
}

fn flow(session: &Value) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "flow".to_owned()),
        ("appId", MP.to_owned()),
        ("openId", session["openId"].as_str().unwrap().to_owned()),
        ("unionId", session["unionId"].as_str().unwrap().to_owned()),
        ("ticket", session["ticket"].as_str().unwrap().to_owned()),
    ]
}

async fn refused_tickets(app: &TestApp) -> Vec<(Option<String>, String)> {
    entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::Kind.eq("ticket_refused"))
        .order_by_asc(entity::audit_event::Column::Id)
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let detail: Value = serde_json::from_str(&e.detail).unwrap();
            (
                e.client_id,
                detail["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

backend_tests! {
    async fn a_mini_program_ticket_for_one_client_is_refused_for_another(app: TestApp) {
        let front = client(&app, "front", &["flow"]).await;
        let other = client(&app, "other", &["flow"]).await;

        // Minted for "front", presented by "other": the same refusal as a forged ticket.
        let (status, alice, _) = session_for(&app, "alice", Some("front")).await;
        assert_eq!(status, 200, "{alice}");
        let (status, foreign) = token(&app, &other, &flow(&alice)).await;
        assert_eq!(status, 400);
        let mut forged = flow(&alice);
        forged[4].1 = "forged-ticket".to_owned();
        let (_, unknown) = token(&app, &other, &forged).await;
        assert_eq!(foreign, unknown, "a foreign ticket must look like any bad ticket");
        // The foreign attempt spent it.
        let (status, _) = token(&app, &front, &flow(&alice)).await;
        assert_eq!(status, 400);

        // A fresh one works for its own client.
        let (_, alice, _) = session_for(&app, "alice", Some("front")).await;
        let (status, body) = token(&app, &front, &flow(&alice)).await;
        assert_eq!(status, 200, "{body}");

        // Audited, with the refusing client and why; never the ticket.
        assert_eq!(refused_tickets(&app).await, [
            (Some("other".to_owned()), "other_client".to_owned()),
            (Some("other".to_owned()), "unknown_used_or_expired".to_owned()),
            (Some("front".to_owned()), "unknown_used_or_expired".to_owned()),
        ]);
        let trail = format!("{:?}", entity::audit_event::Entity::find().all(&app.state.db).await.unwrap());
        assert!(!trail.contains(alice["ticket"].as_str().unwrap()));

        // Without a clientId the ticket is bound to no client: any flow client redeems it.
        let (_, bob, _) = session_for(&app, "bob", None).await;
        let (status, body) = token(&app, &other, &flow(&bob)).await;
        assert_eq!(status, 200, "{body}");

        // A clientId that cannot redeem tickets is refused before the wx.login code is spent.
        client(&app, "backend", &["client_credentials"]).await;
        for bad in ["nobody", "backend"] {
            let (status, body, code) = session_for(&app, "bob", Some(bad)).await;
            assert_eq!(status, 400, "{bad}: {body}");
            assert!(body["error_description"].as_str().unwrap().contains("clientId"), "{body}");
            let (status, body) = post(&app, "/api/wechat/ma/session",
                json!({ "appId": MP, "code": code, "clientId": "front" })).await;
            assert_eq!(status, 200, "the code must still be good: {body}");
        }
    }
}
