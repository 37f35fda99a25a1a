//! The audit trail as an investigator reads it: a Mini Program sign-in and the flow grant that
//! follows leave one event each, with the account, the client and the caller's address, and
//! nothing secret; and tokens issued at the same instant, which share the audit trail's group
//! commit, each leave their own event before their answer is sent.

use std::collections::BTreeSet;
use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::Value;
use tokio::sync::Barrier;
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

    async fn tokens_issued_together_are_each_audited_before_they_are_answered(app: TestApp) {
        let auth = client(&app, "svc", &["client_credentials"]).await;
        let app = Arc::new(app);
        const AT_ONCE: usize = 24;
        for round in 0..3 {
            let barrier = Arc::new(Barrier::new(AT_ONCE));
            let requests = (0..AT_ONCE).map(|_| {
                let (app, auth, barrier) = (app.clone(), auth.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    token(&app, &auth, &[("grant_type", "client_credentials")]).await
                })
            });
            let mut answered = BTreeSet::new();
            for request in futures::future::join_all(requests).await {
                let (status, body) = request.unwrap();
                assert_eq!(status, 200, "{body}");
                // Read the moment this answer arrived: its event must already be there.
                let jti = body["jti"].as_str().unwrap().to_owned();
                let stored = entity::audit_event::Entity::find()
                    .filter(entity::audit_event::Column::Kind.eq("token_issued"))
                    .all(&app.state.db)
                    .await
                    .unwrap();
                assert!(
                    stored.iter().any(|e| e.detail.contains(&jti)),
                    "round {round}: a token was answered before its audit event was written"
                );
                answered.insert(jti);
            }
            assert_eq!(answered.len(), AT_ONCE);
        }
        let issued: Vec<_> = events(&app)
            .await
            .into_iter()
            .filter(|e| e.kind == "token_issued")
            .collect();
        assert_eq!(issued.len(), 3 * AT_ONCE, "one event per token, no more, no less");
        assert!(issued.iter().all(|e| e.client_id.as_deref() == Some("svc")
            && e.ip.as_deref() == Some("127.0.0.1")));
    }
}
