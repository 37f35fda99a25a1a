//! Which Mini Program sessions are live: unexpired, and holding their person's current
//! session_key (`mini_current_key`, written by each sign-in). The one definition the sign-in's
//! reads, the decryptions and the admin API share; why a current key and not only the `DELETE`
//! of replaced sessions is said in `login::session_writes`.

use sea_orm::sea_query::{Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{ColumnTrait, Condition};

use entity::{mini_current_key, mini_session};

/// The Mini Program sessions live at `now`: unexpired, and holding their person's current
/// session_key, or of a person with none recorded (sessions stored before current keys were).
pub fn live_at(now: i64) -> Condition {
    Condition::all()
        .add(mini_session::Column::ExpiresAt.gt(now))
        .add(Expr::exists(replacing_key()).not())
}

/// The current-key row of a session's person that names another key than the session holds.
fn replacing_key() -> SelectStatement {
    let session = |column| Expr::col((mini_session::Entity, column));
    let current = |column| Expr::col((mini_current_key::Entity, column));
    Query::select()
        .expr(Expr::val(1))
        .from(mini_current_key::Entity)
        .and_where(
            current(mini_current_key::Column::Appid).eq(session(mini_session::Column::Appid)),
        )
        .and_where(
            current(mini_current_key::Column::OpenId).eq(session(mini_session::Column::OpenId)),
        )
        .and_where(
            session(mini_session::Column::SessionKeyHash)
                .is_null()
                .or(current(mini_current_key::Column::SessionKeyHash)
                    .ne(session(mini_session::Column::SessionKeyHash))),
        )
        .to_owned()
}
