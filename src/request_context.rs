//! What the core may know about the request it is serving, without taking HTTP types: the
//! caller's IP address. The HTTP layer opens a scope for each request
//! ([`http::context`](crate::http::context)); code running inside it (the audit trail, rate limits)
//! reads it with [`client_ip`]. Outside a request (the CLI, the janitor) there is none.

use std::future::Future;
use std::net::IpAddr;

/// The request being served.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The client's address: the socket peer, or what a trusted proxy reported.
    pub client_ip: Option<IpAddr>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_scope_is_seen_inside_and_not_outside() {
        assert_eq!(client_ip(), None);
        let ip: IpAddr = [192, 0, 2, 7].into();
        let seen = scope(
            RequestContext {
                client_ip: Some(ip),
            },
            async { client_ip() },
        )
        .await;
        assert_eq!(seen, Some(ip));
    }
}
