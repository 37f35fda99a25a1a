//! Revoking refresh-token families and denying the access tokens they produced, as statements on
//! a connection or transaction the caller holds. Both the OAuth token service (one family: a
//! reuse, a revocation request, a logout) and an account merge (every family of the merged
//! account, inside the merge's own transaction) revoke through here, so the two cannot drift
//! apart.

use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};

use entity::{refresh_token, refresh_token_family, revoked_access_token};

/// Which refresh-token families to revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Families<'a> {
    /// The family with this id.
    Id(&'a str),
    /// Every family of this owner (the `owner_id` the tokens carry: an account id).
    OfOwner(&'a str),
}

impl Families<'_> {
    /// The filter that selects the families' rows in `refresh_token_family`.
    fn family_rows(self) -> SimpleExpr {
        match self {
            Self::Id(family) => refresh_token_family::Column::FamilyId.eq(family),
            Self::OfOwner(owner) => refresh_token_family::Column::OwnerId.eq(owner),
        }
    }

    /// The filter that selects the families' tokens in `refresh_token`.
    fn token_rows(self) -> SimpleExpr {
        match self {
            Self::Id(family) => refresh_token::Column::FamilyId.eq(family),
            Self::OfOwner(owner) => refresh_token::Column::OwnerId.eq(owner),
        }
    }
}

/// Revoke `families` on `conn` at `now`: mark each family and its tokens revoked, and deny every
/// access token they produced that is still live. Run it in a transaction for all of it to hold
/// together.
pub async fn revoke_families<C: ConnectionTrait>(
    conn: &C,
    families: Families<'_>,
    now: i64,
) -> Result<(), DbErr> {
    refresh_token_family::Entity::update_many()
        .col_expr(refresh_token_family::Column::RevokedAt, Expr::value(now))
        .filter(families.family_rows())
        .filter(refresh_token_family::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(families.token_rows())
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    let produced: Vec<(Option<String>, Option<i64>)> = refresh_token::Entity::find()
        .select_only()
        .column(refresh_token::Column::AccessJti)
        .column(refresh_token::Column::AccessExpiresAt)
        .filter(families.token_rows())
        .filter(refresh_token::Column::AccessJti.is_not_null())
        .filter(refresh_token::Column::AccessExpiresAt.gt(now))
        .into_tuple()
        .all(conn)
        .await?;
    let produced = produced
        .into_iter()
        .filter_map(|(jti, exp)| Some((jti?, exp?)));
    deny_access_tokens(conn, produced, now).await
}

/// Put access token ids (each with when it expires) on the denylist at `now`, until they would
/// have expired; an id already there stays as it is.
pub async fn deny_access_tokens<C: ConnectionTrait>(
    conn: &C,
    tokens: impl IntoIterator<Item = (String, i64)>,
    now: i64,
) -> Result<(), DbErr> {
    let denied: Vec<revoked_access_token::ActiveModel> = tokens
        .into_iter()
        .map(|(jti, exp)| revoked_access_token::ActiveModel {
            jti: Set(jti),
            expires_at: Set(exp),
            revoked_at: Set(now),
        })
        .collect();
    if denied.is_empty() {
        return Ok(());
    }
    revoked_access_token::Entity::insert_many(denied)
        .on_conflict_do_nothing()
        .exec_without_returning(conn)
        .await
        .map(|_| ())
}
