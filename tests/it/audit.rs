//! The audit trail as an investigator reads it: a Mini Program sign-in and the flow grant that
//! follows leave one event each, with the account, the client and the caller's address, and
//! nothing secret.

use sea_orm::{EntityTrait, QueryOrder};
use serde_json::Value;
use wxauth::simulator::demo::MINI_PROGRAM_APPID as MP;

use crate::backend_tests;
use crate::harness::TestApp;
use crate::mini_program::{client, sign_in, token};

async fn events(app: &TestApp) -> Vec<entity::audit_event::Model> {
    entity::audit_event::Entity::find()
        .order_by_asc(entity::audit_event::Column::Id)
        .all(&app.state.db)
        .await
        .unwrap()
}

backend_tests! {
    async fn a_sign_in_and_a_token_are_audited_without_secrets(app: TestApp) {
        let auth = client(&app, "front", &["flow"]).await;
        let alice = sign_in(&app, "alice").await;
        let form = [
            ("grant_type", "flow".to_string()),
            ("appId", MP.to_string()),
            ("openId", alice["openId"].as_str().unwrap().to_string()),
            ("unionId", alice["unionId"].as_str().unwrap().to_string()),
            ("ticket", alice["ticket"].as_str().unwrap().to_string()),
        ];
        let (status, body) = token(&app, &auth, &form).await;
        assert_eq!(status, 200, "{body}");
        let account: i64 = body["flow_user_id"].as_str().unwrap().parse().unwrap();

        let events = events(&app).await;
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["sign_in", "token_issued"], "{events:?}");
        let (signed_in, issued) = (&events[0], &events[1]);
        assert_eq!(signed_in.subject.as_deref(), Some("mini_program"));
        assert_eq!(signed_in.account_id, Some(account));
        assert_eq!(signed_in.outcome, "ok");
        assert_eq!(signed_in.ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(issued.client_id.as_deref(), Some("front"));
        assert_eq!(issued.account_id, Some(account));
        assert_eq!(issued.ip.as_deref(), Some("127.0.0.1"));
        let detail: Value = serde_json::from_str(&issued.detail).unwrap();
        assert_eq!(detail["grant"], "flow");

        let everything = format!("{events:?}");
        for secret in [
            alice["ticket"].as_str().unwrap(),
            alice["sessionId"].as_str().unwrap(),
            body["access_token"].as_str().unwrap(),
            body["refresh_token"].as_str().unwrap_or("no-refresh-token-here"),
        ] {
            assert!(!everything.contains(secret), "a secret in the audit trail: {everything}");
        }
    }
}
