//! Cookies wxauth sets and reads: the browser session and the sign-in bindings. Every cookie is
//! HttpOnly and SameSite=Lax, and Secure when wxauth is served over https.

use axum::http::{HeaderMap, HeaderValue, header};
use url::Url;

/// The value of cookie `name` in the request, if the browser sent one.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value for `name=value` on `path`, living `max_age` seconds (0 deletes it).
pub fn set(
    public_url: &Url,
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
) -> Option<HeaderValue> {
    let secure = if public_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .ok()
}
