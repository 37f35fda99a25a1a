//! Re-sealing at start-up: values sealed before seals were bound to their table, column and row
//! (`v1.`, no associated data) are opened and sealed again in place, bound to where they are
//! ([`SealedAt`]). It runs after the schema migrations, when the master key is at hand (a schema
//! migration never sees it), and it is idempotent: each value is rewritten by one conditional
//! UPDATE that only matches the old text, so instances starting together do not clash, and a
//! database without `v1.` values costs one query per sealed column.
//!
//! Every sealed column is listed in [`SEALED_COLUMNS`] with how its row is named; code that seals
//! or opens a value names the same place.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

use crate::vault::{SealedAt, UNBOUND_PREFIX, Vault};

/// A sealed column and the key columns that name its row (joined by `/` in [`SealedAt::row`]).
struct SealedColumn {
    table: &'static str,
    column: &'static str,
    key: &'static [&'static str],
}

/// Every column wxauth seals.
const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "signing_key",
        column: "private_key_enc",
        key: &["kid"],
    },
    SealedColumn {
        table: "wx_app",
        column: "secret_enc",
        key: &["appid"],
    },
    SealedColumn {
        table: "wx_app",
        column: "token_enc",
        key: &["appid"],
    },
    SealedColumn {
        table: "wx_app",
        column: "aes_key_enc",
        key: &["appid"],
    },
    SealedColumn {
        table: "wx_app",
        column: "authorizer_refresh_token_enc",
        key: &["appid"],
    },
    SealedColumn {
        table: "mini_session",
        column: "session_key_enc",
        key: &["id_hash"],
    },
    SealedColumn {
        table: "wechat_token",
        column: "value_enc",
        key: &["kind", "appid"],
    },
    SealedColumn {
        table: "wechat_component_ticket",
        column: "ticket_enc",
        key: &["component_appid"],
    },
];

/// The row name of a `wechat_token` value: its kind and appid.
pub fn wechat_token_row(kind: &str, appid: &str) -> String {
    format!("{kind}/{appid}")
}

/// Re-seal every `v1.` value in place. Returns how many were re-sealed. A value that does not
/// open with this master key is left as it is (and logged): it did not open before either.
pub async fn reseal_unbound(db: &DatabaseConnection, vault: &Vault) -> Result<u64, DbErr> {
    let mut resealed = 0;
    for sealed in SEALED_COLUMNS {
        let mut select = Query::select();
        select
            .from(Alias::new(sealed.table))
            .column(Alias::new(sealed.column))
            .and_where(Expr::col(Alias::new(sealed.column)).like(format!("{UNBOUND_PREFIX}%")));
        for key in sealed.key {
            select.column(Alias::new(*key));
        }
        for row in db.query_all(&select).await? {
            let old: String = row.try_get("", sealed.column)?;
            let mut key_values = Vec::with_capacity(sealed.key.len());
            for key in sealed.key {
                key_values.push(row.try_get::<String>("", key)?);
            }
            let row_name = key_values.join("/");
            let plain = match vault.open_unbound(&old) {
                Ok(plain) => plain,
                Err(error) => {
                    tracing::warn!(table = sealed.table, column = sealed.column, %error, "a sealed value does not open with this master key; left as it is");
                    continue;
                }
            };
            let new = vault.seal(
                &plain,
                SealedAt::new(sealed.table, sealed.column, &row_name),
            );
            let mut update = Query::update();
            update
                .table(Alias::new(sealed.table))
                .value(Alias::new(sealed.column), new)
                .and_where(Expr::col(Alias::new(sealed.column)).eq(old));
            for (key, value) in sealed.key.iter().zip(&key_values) {
                update.and_where(Expr::col(Alias::new(*key)).eq(value.as_str()));
            }
            resealed += db.execute(&update).await?.rows_affected();
        }
    }
    if resealed > 0 {
        tracing::info!(
            values = resealed,
            "re-sealed stored secrets, bound to their rows"
        );
    }
    Ok(resealed)
}

#[cfg(test)]
mod tests {
    use sea_orm::ActiveValue::{NotSet, Set};
    use sea_orm::EntityTrait;

    use super::*;
    use crate::vault::MasterKey;
    use entity::{wechat_token, wx_app};

    #[tokio::test]
    async fn unbound_values_are_resealed_in_place_once() {
        let dir = std::env::temp_dir().join(format!("wxauth-reseal-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("db.sqlite").display());
        let db = crate::db::connect(&url).await.unwrap();
        crate::db::migrate(&db).await.unwrap();
        let vault = Vault::new(&MasterKey::generate());
        let foreign = Vault::new(&MasterKey::generate());

        wx_app::Entity::insert(wx_app::ActiveModel {
            appid: Set("wx0000000000000001".into()),
            kind: Set("official_account".into()),
            secret_enc: Set(Some(vault.seal_unbound("app-secret"))),
            component_appid: Set(None),
            is_base: Set(false),
            token_enc: Set(None),
            // Sealed under another master key: left alone.
            aes_key_enc: Set(Some(foreign.seal_unbound("not ours"))),
            authorizer_refresh_token_enc: Set(None),
            created_at: Set(0),
            updated_at: Set(0),
        })
        .exec(&db)
        .await
        .unwrap();
        wechat_token::Entity::insert(wechat_token::ActiveModel {
            id: NotSet,
            kind: Set("access_token".into()),
            appid: Set("wx0000000000000001".into()),
            value_enc: Set(Some(vault.seal_unbound("upstream-token"))),
            expires_at: Set(0),
            lease_owner: Set(None),
            lease_until: Set(0),
            updated_at: Set(0),
            forced_at: Set(0),
        })
        .exec(&db)
        .await
        .unwrap();

        assert_eq!(reseal_unbound(&db, &vault).await.unwrap(), 2);
        assert_eq!(reseal_unbound(&db, &vault).await.unwrap(), 0, "idempotent");

        let app = wx_app::Entity::find_by_id("wx0000000000000001".to_owned())
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        let secret = app.secret_enc.unwrap();
        assert!(secret.starts_with("v2."));
        let here = SealedAt::new("wx_app", "secret_enc", "wx0000000000000001");
        assert_eq!(vault.open(&secret, here).unwrap(), "app-secret");
        assert!(app.aes_key_enc.unwrap().starts_with("v1."));
        let token = wechat_token::Entity::find()
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        let row = wechat_token_row("access_token", "wx0000000000000001");
        let at = SealedAt::new("wechat_token", "value_enc", &row);
        assert_eq!(
            vault.open(&token.value_enc.unwrap(), at).unwrap(),
            "upstream-token"
        );
        db.close().await.ok();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
