//! Not paying twice for a phone number (issue 18 §5): with `WXAUTH_PHONE_REUSE_DAYS`, a number
//! WeChat's code API verified for the account is handed out again at `/api/wechat/ma/phone` with
//! `reuse: true`, without spending a new getPhoneNumber code; `/phone/known` tells the Mini
//! Program whether it may skip the button. Numbers from relayed encrypted data never are, and
//! without the setting nothing is reused.

use serde_json::{Value, json};
use wxauth::simulator::demo::MINI_PROGRAM_APPID as MP;

use crate::backend_tests;
use crate::harness::{Options, TestApp};
use crate::mini_program::{post, sign_in};

fn reuse_for_30_days() -> Options {
    Options {
        env: vec![("WXAUTH_PHONE_REUSE_DAYS".into(), "30".into())],
        ..Options::default()
    }
}

async fn known(app: &TestApp, session_id: &Value) -> (u16, Value) {
    let response = app
        .http
        .get(app.url("/api/wechat/ma/phone/known"))
        .query(&[("sessionId", session_id.as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

backend_tests! {
    options: reuse_for_30_days();

    async fn a_recent_code_api_number_is_handed_out_again_without_a_new_exchange(app: TestApp) {
        let first = sign_in(&app, "alice").await;
        assert_eq!(known(&app, &first["sessionId"]).await, (200, json!({ "known": false })));
        // Nothing to reuse yet: without a code the request is refused, saying what to send.
        let (status, refused) = post(&app, "/api/wechat/ma/phone", json!({ "sessionId": first["sessionId"], "reuse": true })).await;
        assert_eq!(status, 400, "{refused}");
        assert!(refused.to_string().contains("getPhoneNumber"), "{refused}");

        let before = app.state.clock.now();
        let code = app.sim.mint_phone_code(MP, "alice").unwrap();
        let (status, paid) = post(&app, "/api/wechat/ma/phone", json!({ "sessionId": first["sessionId"], "code": code, "reuse": true })).await;
        assert_eq!(status, 200, "{paid}");
        assert_eq!((paid["phoneNumber"].as_str(), paid["reused"].as_bool()), (Some("13800000001"), Some(false)));
        assert_eq!(paid["source"], "code_api");
        let verified_at = paid["verifiedAt"].as_i64().unwrap();
        assert!((before..=app.state.clock.now()).contains(&verified_at), "{paid}");

        // A day later, in a new session: the Mini Program may skip the button.
        app.clock.advance(86_400);
        let later = sign_in(&app, "alice").await;
        assert_eq!(known(&app, &later["sessionId"]).await, (200, json!({ "known": true, "verifiedAt": verified_at })));
        let (status, again) = post(&app, "/api/wechat/ma/phone", json!({ "sessionId": later["sessionId"], "reuse": true })).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again, json!({
            "phoneNumber": "13800000001", "purePhoneNumber": "13800000001", "countryCode": "86",
            "source": "code_api", "verifiedAt": verified_at, "reused": true,
        }));
        // A code sent along with `reuse` is not spent (no exchange was paid for): it still works.
        let unspent = app.sim.mint_phone_code(MP, "alice").unwrap();
        let (status, reused) = post(&app, "/api/wechat/ma/phone", json!({ "sessionId": later["sessionId"], "code": unspent, "reuse": true })).await;
        assert_eq!((status, reused["reused"].as_bool()), (200, Some(true)), "{reused}");
        let (status, exchanged) = post(&app, "/api/wechat/ma/phone", json!({ "sessionId": later["sessionId"], "code": unspent })).await;
        assert_eq!((status, exchanged["reused"].as_bool()), (200, Some(false)), "{exchanged}");

        // Past the window the number is not handed out any more.
        app.clock.advance(31 * 86_400);
        let stale = sign_in(&app, "alice").await;
        assert_eq!(known(&app, &stale["sessionId"]).await, (200, json!({ "known": false })));
        let (status, _) = post(&app, "/api/wechat/ma/phone", json!({ "sessionId": stale["sessionId"], "reuse": true })).await;
        assert_eq!(status, 400);
    }

    async fn a_number_from_relayed_encrypted_data_is_never_reused(app: TestApp) {
        let session = sign_in(&app, "bob").await;
        let data = app.sim.mini_program_phone_data(MP, "bob").unwrap();
        let (status, phone) = post(&app, "/api/wechat/ma/phone", json!({
            "sessionId": session["sessionId"], "encryptedData": data.encrypted_data, "iv": data.iv,
        })).await;
        assert_eq!(status, 200, "{phone}");
        assert_eq!(phone["source"], "encrypted_data");
        assert_eq!(known(&app, &session["sessionId"]).await, (200, json!({ "known": false })));
        let (status, _) = post(&app, "/api/wechat/ma/phone", json!({ "sessionId": session["sessionId"], "reuse": true })).await;
        assert_eq!(status, 400);
    }

    async fn another_users_session_does_not_reach_the_number(app: TestApp) {
        let alice = sign_in(&app, "alice").await;
        let code = app.sim.mint_phone_code(MP, "alice").unwrap();
        let (status, _) = post(&app, "/api/wechat/ma/phone", json!({ "sessionId": alice["sessionId"], "code": code })).await;
        assert_eq!(status, 200);
        let bob = sign_in(&app, "bob").await;
        assert_eq!(known(&app, &bob["sessionId"]).await, (200, json!({ "known": false })));
        let (status, _) = post(&app, "/api/wechat/ma/phone", json!({ "sessionId": bob["sessionId"], "reuse": true })).await;
        assert_eq!(status, 400);
        // An unknown session learns nothing either.
        let (status, _) = known(&app, &json!("not-a-session")).await;
        assert_eq!(status, 400);
    }
}

backend_tests! {
    async fn without_the_setting_every_request_pays_for_an_exchange(app: TestApp) {
        let first = sign_in(&app, "alice").await;
        let code = app.sim.mint_phone_code(MP, "alice").unwrap();
        let (status, _) = post(&app, "/api/wechat/ma/phone", json!({ "sessionId": first["sessionId"], "code": code })).await;
        assert_eq!(status, 200);
        let later = sign_in(&app, "alice").await;
        assert_eq!(known(&app, &later["sessionId"]).await, (200, json!({ "known": false })));
        let (status, _) = post(&app, "/api/wechat/ma/phone", json!({ "sessionId": later["sessionId"], "reuse": true })).await;
        assert_eq!(status, 400);
        let code = app.sim.mint_phone_code(MP, "alice").unwrap();
        let (status, paid) = post(&app, "/api/wechat/ma/phone", json!({ "sessionId": later["sessionId"], "code": code, "reuse": true })).await;
        assert_eq!((status, paid["reused"].as_bool()), (200, Some(false)), "{paid}");
    }
}
