//! What the core may know about the request it is serving, without taking HTTP types: the
//! caller's IP address, when the request arrived, the request id that the access log and the
//! audit trail share, a slot where client authentication notes which client the request is from
//! (for the access log). The rate limits in force have their own scope
//! ([`limits::scope`](crate::limits::scope)). The HTTP layer opens a scope
//! for each request ([`http::context`](crate::http::context)); code running inside it reads it.
//! Outside a request (the CLI, the janitor) there is none.

use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

/// The request being served.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The client's address: the socket peer, or what a trusted proxy reported.
    pub client_ip: Option<IpAddr>,
    /// When the request arrived (unix milliseconds, the server's clock): before any of its own
    /// work, which may wait on a busy database pool.
    pub arrived_ms: Option<i64>,
    /// The request's id (`X-Request-Id`, or one we made up).
    pub request_id: Option<String>,
    /// The OAuth client the request authenticated as, once known.
    pub client_id: Arc<OnceLock<String>>,
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Run `future` with `context` as the current request.
pub async fn scope<F: Future>(context: RequestContext, future: F) -> F::Output {
    CURRENT.scope(context, future).await
}

/// The current request's client IP address, if there is a current request and it is known.
pub fn client_ip() -> Option<IpAddr> {
    CURRENT.try_with(|c| c.client_ip).ok().flatten()
}

/// When the current request arrived (unix milliseconds), if there is a current request.
pub fn arrived_ms() -> Option<i64> {
    CURRENT.try_with(|c| c.arrived_ms).ok().flatten()
}

/// The current request's id.
pub fn request_id() -> Option<String> {
    CURRENT.try_with(|c| c.request_id.clone()).ok().flatten()
}

/// Note that the current request authenticated as `client_id` (the first note wins).
pub fn note_client(client_id: &str) {
    let _ = CURRENT.try_with(|c| c.client_id.set(client_id.to_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_scope_is_seen_inside_and_not_outside() {
        assert_eq!(client_ip(), None);
        let ip: IpAddr = [192, 0, 2, 7].into();
        let slot = Arc::new(OnceLock::new());
        let context = RequestContext {
            client_ip: Some(ip),
            request_id: Some("r-1".into()),
            client_id: slot.clone(),
            ..RequestContext::default()
        };
        let seen = scope(context, async {
            note_client("front");
            note_client("other");
            (client_ip(), request_id())
        })
        .await;
        assert_eq!(seen, (Some(ip), Some("r-1".to_owned())));
        assert_eq!(slot.get().map(String::as_str), Some("front"));
        note_client("outside");
        assert_eq!(request_id(), None);
    }
}
