//! The component_verify_ticket push endpoint refuses what does not verify and stores nothing.

use sea_orm::EntityTrait;

use crate::backend_tests;

backend_tests! {
    async fn a_forged_ticket_push_is_refused_and_nothing_is_stored(app: TestApp) {
        let body = "<xml><AppId><![CDATA[wxd000000000000004]]></AppId><Encrypt><![CDATA[bm90IHJlYWxseSBlbmNyeXB0ZWQ=]]></Encrypt></xml>";
        let resp = app
            .http
            .post(app.url("/api/wechat/component/ticket?timestamp=1&nonce=2&encrypt_type=aes&msg_signature=deadbeef"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let stored = entity::wechat_component_ticket::Entity::find().all(&app.state.db).await.unwrap();
        assert!(stored.is_empty());
    }
}
