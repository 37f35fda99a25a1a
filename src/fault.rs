//! [`Fault`]: the one small classification every domain error offers its callers — whose fault a
//! failure is and whether retrying helps. Domain errors (`WeChatError`, `LoginError`, …) know
//! nothing of HTTP; each exposes a `fault()`, and the HTTP side maps a `Fault` once into each of its
//! shapes: `AppError` (JSON), `PageError` (HTML) and `OAuthError` (RFC 6749 bodies).

/// Whose fault a failure is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The caller can fix it: a 400 (or `invalid_grant` at the token endpoint) with this message.
    Caller(String),
    /// We cannot serve this now and retrying helps (WeChat, our configuration, a busy database):
    /// a 503 with `Retry-After` and this message.
    Unavailable(String),
    /// Our own machinery failed: a 500. The detail is logged, never sent.
    Internal(String),
}
