//! Accounts across identities: one person is one account, whatever order WeChat reveals their
//! identities and unionid in, and no account is left behind without an identity.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use wxauth::users::IdentityKey;

use crate::backend_tests;
use crate::harness::TestApp;

fn vouched(appid: &str, open_id: &str, union_id: Option<&str>) -> IdentityKey {
    IdentityKey::new(appid.parse().unwrap(), open_id, union_id)
}

async fn accounts(app: &TestApp) -> u64 {
    entity::flow_user::Entity::find()
        .count(&app.state.db)
        .await
        .unwrap()
}

backend_tests! {
    async fn an_identity_keeps_its_account_when_its_unionid_arrives(app: TestApp) {
        let users = &app.state.users;
        // The H5 silent hop: openid only.
        let (_, first, _) = users.record_identity(&vouched("wxd000000000000002", "o-entry", None), None, 1).await.unwrap();
        assert_eq!(first.union_id, None);
        // The base hop reveals the unionid: the same account now carries it.
        let (_, again, is_new) = users.record_identity(&vouched("wxd000000000000002", "o-entry", Some("u-alice")), None, 2).await.unwrap();
        assert!(!is_new);
        assert_eq!(again.id, first.id);
        assert_eq!(again.union_id.as_deref(), Some("u-alice"));
        // The base identity joins it.
        let (_, base, _) = users.record_identity(&vouched("wxd000000000000003", "o-base", Some("u-alice")), None, 3).await.unwrap();
        assert_eq!(base.id, first.id);
        assert_eq!(accounts(&app).await, 1);
    }

    async fn an_identity_joining_an_existing_unionid_leaves_no_orphan(app: TestApp) {
        let users = &app.state.users;
        // The Mini Program saw the person first, with their unionid.
        let (_, person, _) = users.record_identity(&vouched("wxd000000000000001", "o-mini", Some("u-bob")), None, 1).await.unwrap();
        // An official account page then sees them without one: a provisional account.
        let (_, provisional, _) = users.record_identity(&vouched("wxd000000000000002", "o-entry", None), None, 2).await.unwrap();
        assert_ne!(provisional.id, person.id);
        assert_eq!(accounts(&app).await, 2);
        // Once the unionid is known, the page's identity joins the person, and the provisional
        // account is gone.
        let (identity, joined, _) = users.record_identity(&vouched("wxd000000000000002", "o-entry", Some("u-bob")), None, 3).await.unwrap();
        assert_eq!(joined.id, person.id);
        assert_eq!(identity.account_id, Some(person.id));
        assert_eq!(accounts(&app).await, 1);
        assert!(users.account(provisional.id).await.unwrap().is_none());
        // A known unionid is never replaced by none.
        let (identity, still, _) = users.record_identity(&vouched("wxd000000000000002", "o-entry", None), None, 4).await.unwrap();
        assert_eq!((identity.union_id.as_deref(), still.id), (Some("u-bob"), person.id));
    }

    async fn an_identity_row_missing_its_unionid_gets_it_at_its_next_login(app: TestApp) {
        let users = &app.state.users;
        let (_, person, _) = users.record_identity(&vouched("wxd000000000000001", "o-carol", Some("u-carol")), None, 1).await.unwrap();
        // A row as an import from the seed may hold it: the account has the unionid, the
        // identity has none. The returning login's one-statement path must not take it as it is.
        entity::wx_user::Entity::update_many()
            .col_expr(entity::wx_user::Column::UnionId, Expr::value(Option::<String>::None))
            .filter(entity::wx_user::Column::OpenId.eq("o-carol"))
            .exec(&app.state.db)
            .await
            .unwrap();
        let (identity, again, is_new) = users.record_identity(&vouched("wxd000000000000001", "o-carol", Some("u-carol")), None, 2).await.unwrap();
        assert!(!is_new);
        assert_eq!((identity.union_id.as_deref(), again.id), (Some("u-carol"), person.id));
        // Stored, not only answered: the flow grant compares the stored unionid with the request's.
        let (stored, _) = users.find_identity_with_account("wxd000000000000001", "o-carol").await.unwrap().unwrap();
        assert_eq!(stored.union_id.as_deref(), Some("u-carol"));
        assert_eq!(accounts(&app).await, 1);
    }
}
