//! Sign-in states: the opaque, single-use, expiring `state` values wxauth sends through WeChat's
//! authorize pages and checks when WeChat sends the browser back. Only a keyed hash is stored;
//! the row carries what the callback needs (which app, where to return, and for the H5 base hop
//! the entry identity) so that nothing a browser could swap travels in the URL. A state is spent
//! by one conditional UPDATE and only by a callback of its own kind. Each state records the client
//! IP that asked for it, so that the HTTP edge can cap the live states of one address.

use std::sync::Arc;

use rand::RngCore;
use rand::rngs::OsRng;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter,
};

use entity::auth_state;

use crate::clock::SharedClock;
use crate::vault::Vault;

/// A state to store.
#[derive(Debug, Clone)]
pub struct NewState<'a> {
    /// Which callback may spend it (`entry`, `base`, `oauth` …).
    pub kind: &'a str,
    /// The WeChat app the authorize page is for.
    pub appid: &'a str,
    /// Where the flow goes when it is done.
    pub next: &'a str,
    /// The H5 base hop's entry identity (appid, openid).
    pub entry: Option<(&'a str, &'a str)>,
    /// Lifetime in seconds.
    pub ttl: i64,
    /// The browser binding (a cookie value) that must come back with the state, if any.
    pub browser: Option<&'a str>,
    /// H5: the client the sign-in's login ticket is for.
    pub client_id: Option<&'a str>,
    /// H5: the page's own nonce, returned unchanged at the end.
    pub nonce: Option<&'a str>,
}

/// A fresh state value: 64 hex digits (WeChat allows `[A-Za-z0-9]{1,128}`).
fn new_state() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether `state` could be one of ours (anything else is refused without a query).
pub fn is_state_shaped(state: &str) -> bool {
    !state.is_empty() && state.len() <= 128 && state.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// State storage.
#[derive(Clone)]
pub struct AuthStates {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
}

impl AuthStates {
    pub fn new(db: DatabaseConnection, vault: Arc<Vault>, clock: SharedClock) -> Self {
        Self { db, vault, clock }
    }

    /// Store a new state and return its value. Expired states are the janitor's to delete;
    /// every read here ignores them.
    pub async fn mint(&self, new: NewState<'_>) -> Result<String, DbErr> {
        let now = self.clock.now();
        let state = new_state();
        auth_state::ActiveModel {
            state_hash: Set(self.vault.fingerprint(&state)),
            kind: Set(new.kind.to_owned()),
            appid: Set(new.appid.to_owned()),
            next_url: Set(new.next.to_owned()),
            entry_appid: Set(new.entry.map(|(a, _)| a.to_owned())),
            entry_open_id: Set(new.entry.map(|(_, o)| o.to_owned())),
            expires_at: Set(now.saturating_add(new.ttl)),
            consumed_at: Set(None),
            created_at: Set(now),
            browser_hash: Set(new.browser.map(|b| self.vault.fingerprint(b))),
            client_id: Set(new.client_id.map(str::to_owned)),
            nonce: Set(new.nonce.map(str::to_owned)),
            client_ip: Set(crate::request_context::client_ip().map(|ip| ip.to_string())),
        }
        .insert(&self.db)
        .await?;
        Ok(state)
    }

    /// How many unspent, unexpired states the client at `ip` holds (for the per-IP cap).
    pub async fn live_for_ip(&self, ip: std::net::IpAddr) -> Result<u64, DbErr> {
        auth_state::Entity::find()
            .filter(auth_state::Column::ClientIp.eq(ip.to_string()))
            .filter(auth_state::Column::ExpiresAt.gt(self.clock.now()))
            .filter(auth_state::Column::ConsumedAt.is_null())
            .count(&self.db)
            .await
    }

    /// Spend `state` for a callback of `kind` from `browser` (the binding it was minted with,
    /// or `None` for an unbound state): the row, or `None` when it is unknown, of another kind,
    /// from another browser, expired or already spent. A state presented by the wrong browser
    /// is left for the right one.
    pub async fn consume(
        &self,
        kind: &str,
        state: &str,
        browser: Option<&str>,
    ) -> Result<Option<auth_state::Model>, DbErr> {
        match browser {
            Some(b) => self.consume_from_any(kind, state, &[b]).await,
            None => {
                self.spend(kind, state, auth_state::Column::BrowserHash.is_null())
                    .await
            }
        }
    }

    /// [`AuthStates::consume`] for a browser that holds several bindings (sign-ins in several
    /// tabs): the state is spent if it was minted with any of them.
    pub async fn consume_from_any(
        &self,
        kind: &str,
        state: &str,
        browsers: &[&str],
    ) -> Result<Option<auth_state::Model>, DbErr> {
        if browsers.is_empty() {
            return Ok(None);
        }
        let hashes: Vec<String> = browsers.iter().map(|b| self.vault.fingerprint(b)).collect();
        self.spend(kind, state, auth_state::Column::BrowserHash.is_in(hashes))
            .await
    }

    async fn spend(
        &self,
        kind: &str,
        state: &str,
        binding: sea_orm::sea_query::SimpleExpr,
    ) -> Result<Option<auth_state::Model>, DbErr> {
        if !is_state_shaped(state) {
            return Ok(None);
        }
        let now = self.clock.now();
        let hash = self.vault.fingerprint(state);
        let update = auth_state::Entity::update_many()
            .col_expr(auth_state::Column::ConsumedAt, Expr::value(now))
            .filter(auth_state::Column::StateHash.eq(hash.as_str()))
            .filter(auth_state::Column::Kind.eq(kind))
            .filter(binding)
            .filter(auth_state::Column::ConsumedAt.is_null())
            .filter(auth_state::Column::ExpiresAt.gt(now));
        crate::db::spend_once(&self.db, update, auth_state::Entity::find_by_id(hash)).await
    }

    /// The live, unspent state `state` of `kind`, without spending it: after [`Self::consume`]
    /// refused it, this tells a state held by another browser (still pending) from one that is
    /// unknown, expired or spent (`None`).
    pub async fn pending(
        &self,
        kind: &str,
        state: &str,
    ) -> Result<Option<auth_state::Model>, DbErr> {
        if !is_state_shaped(state) {
            return Ok(None);
        }
        crate::db::find_unique(
            auth_state::Entity::find_by_id(self.vault.fingerprint(state))
                .filter(auth_state::Column::Kind.eq(kind))
                .filter(auth_state::Column::ConsumedAt.is_null())
                .filter(auth_state::Column::ExpiresAt.gt(self.clock.now())),
            &self.db,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_fit_wechat() {
        let s = new_state();
        assert_eq!(s.len(), 64);
        assert!(is_state_shaped(&s));
        assert_ne!(s, new_state());
        assert!(!is_state_shaped(""));
        assert!(!is_state_shaped("a+b"));
        assert!(!is_state_shaped(&"a".repeat(129)));
    }
}
