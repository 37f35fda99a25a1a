//! The web origins allowed to call the client-facing endpoints from a browser (CORS): the origin
//! (`scheme://host[:port]`) of every registered client's redirect URIs, plus each client's
//! explicit `allowed_origins`. Origins are compared in their serialized form (the form browsers
//! send in `Origin`, RFC 6454 §6.2), so `https://app.example.com:443` is stored as
//! `https://app.example.com` and matches what a browser sends; opaque origins (`null`, custom
//! schemes) are never in the set.
//!
//! A preflight must not cost a database read: the whole set is read once and kept for
//! [`ORIGIN_CACHE_TTL`] seconds, with one read in flight at a time however many requests miss
//! together. The client registry invalidates it when a client is created, changed or deleted
//! on this instance; another instance (or a `wxauth client …` command, another process) is
//! seen within the TTL.

use std::collections::HashSet;
use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbErr, EntityTrait, QuerySelect};
use tokio::sync::Mutex;

use entity::oauth_client;

use crate::clock::SharedClock;
use crate::ttl_cache::TtlCache;

/// How long (seconds) an instance answers from the origin set it read: the longest a removed
/// origin keeps being allowed by another instance than the one that removed it. The same as the
/// client registry's own cache, so a client change reaches both at the same time.
pub const ORIGIN_CACHE_TTL: i64 = 5;

/// The cache's only key: the set is read and kept whole.
const SET_KEY: &str = "";

/// The serialized origin of an absolute http(s) URL with a host; `None` for anything else
/// (a custom scheme's origin is opaque and a browser sends it as `null`).
pub fn origin_of(url: &url::Url) -> Option<String> {
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return None;
    }
    match url.origin() {
        origin @ url::Origin::Tuple(..) => Some(origin.ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// An origin as an operator writes it (`https://app.example.com`, a trailing `/` tolerated),
/// serialized; `None` unless it is an http(s) origin and nothing more: no path, query,
/// fragment or user info, never `*` or `null`.
pub fn parse_origin(text: &str) -> Option<String> {
    let url = url::Url::parse(text.trim()).ok()?;
    let bare = url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !bare {
        return None;
    }
    origin_of(&url)
}

/// The origins one client contributes: those of its redirect URIs and its allowed origins.
fn client_origins(redirect_uris: &str, allowed: Option<&str>) -> Vec<String> {
    let from_redirects = redirect_uris
        .lines()
        .filter_map(|uri| url::Url::parse(uri.trim()).ok())
        .filter_map(|url| origin_of(&url));
    let explicit = allowed.unwrap_or_default().lines().filter_map(parse_origin);
    from_redirects.chain(explicit).collect()
}

/// The set of allowed origins, cached (see the module comment).
pub struct AllowedOrigins {
    db: DatabaseConnection,
    clock: SharedClock,
    cache: TtlCache<Arc<HashSet<String>>>,
    /// Held while the set is read, so that a burst of misses costs one read.
    reading: Mutex<()>,
}

impl AllowedOrigins {
    pub fn new(db: DatabaseConnection, clock: SharedClock) -> Self {
        Self {
            db,
            clock,
            cache: TtlCache::new(ORIGIN_CACHE_TTL),
            reading: Mutex::new(()),
        }
    }

    /// Forget the set: the next request reads it again (a client was created, changed or
    /// deleted).
    pub fn invalidate(&self) {
        self.cache.invalidate(SET_KEY);
    }

    /// Whether a browser page of `origin` (the `Origin` header, as sent) may call the
    /// client-facing endpoints. A database failure allows nothing.
    pub async fn allows(&self, origin: &str) -> bool {
        match self.current().await {
            Ok(set) => set.contains(origin),
            Err(e) => {
                tracing::warn!(error = %e, "reading the allowed CORS origins failed");
                false
            }
        }
    }

    /// The set, from the cache while fresh, else read once.
    pub async fn current(&self) -> Result<Arc<HashSet<String>>, DbErr> {
        if let Some(set) = self.cache.get(SET_KEY, self.clock.now()) {
            return Ok(set);
        }
        let _reading = self.reading.lock().await;
        // Another request may have read it while this one waited.
        let now = self.clock.now();
        if let Some(set) = self.cache.get(SET_KEY, now) {
            return Ok(set);
        }
        let generation = self.cache.generation();
        let rows: Vec<(String, Option<String>)> = oauth_client::Entity::find()
            .select_only()
            .column(oauth_client::Column::RedirectUris)
            .column(oauth_client::Column::AllowedOrigins)
            .into_tuple()
            .all(&self.db)
            .await?;
        let set: HashSet<String> = rows
            .iter()
            .flat_map(|(redirects, allowed)| client_origins(redirects, allowed.as_deref()))
            .collect();
        let set = Arc::new(set);
        self.cache.insert(SET_KEY, set.clone(), now, generation);
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_serialized_as_browsers_send_them() {
        assert_eq!(
            parse_origin("https://App.Example.com:443/").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            parse_origin("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        for refused in [
            "*",
            "null",
            "https://app.example.com/path",
            "https://app.example.com/?q",
            "https://user@app.example.com",
            "ftp://app.example.com",
            "com.example.app:/callback",
            "app.example.com",
        ] {
            assert_eq!(parse_origin(refused), None, "{refused}");
        }
    }

    #[test]
    fn a_client_contributes_its_redirect_origins_and_its_allowed_origins() {
        let origins = client_origins(
            "https://rp.example.com/cb\ncom.example.app:/oauth\nhttp://localhost:3000/x?y=1",
            Some("https://spa.example.org"),
        );
        assert_eq!(
            origins,
            [
                "https://rp.example.com",
                "http://localhost:3000",
                "https://spa.example.org"
            ]
        );
    }
}
