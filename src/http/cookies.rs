//! Cookies wxauth sets and reads: the browser session and the sign-in bindings. Every cookie is
//! HttpOnly and SameSite=Lax. When wxauth is served over https every cookie carries the
//! `__Host-` prefix, which browsers accept only with `Secure`, `Path=/` and no `Domain`: such a
//! cookie belongs to this exact host, and neither a sibling subdomain nor a plain-http page can
//! set or overwrite it (RFC 6265bis §4.1.3.2). Over plain http (development) the names are bare
//! and the given path applies.
//!
//! What a cookie holds is decided elsewhere (the sign-in bindings in
//! [`crate::login::web_sign_in`]): this module only reads and writes the headers.
//!
//! Parsing and rendering are axum-extra's `CookieJar` and the `cookie` crate's `Cookie`.

use std::borrow::Cow;

use axum::http::{HeaderMap, HeaderValue};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use url::Url;

/// The prefix of every wxauth cookie on https.
pub const HOST_PREFIX: &str = "__Host-";

fn secure(public_url: &Url) -> bool {
    public_url.scheme() == "https"
}

/// The name cookie `name` has on this deployment: `__Host-name` on https.
pub fn name<'a>(public_url: &Url, name: &'a str) -> Cow<'a, str> {
    if secure(public_url) {
        Cow::Owned(format!("{HOST_PREFIX}{name}"))
    } else {
        Cow::Borrowed(name)
    }
}

/// The value of cookie `name` in the request, if the browser sent one (on https, only the
/// `__Host-` one counts: a bare cookie of the same name may have been planted by a subdomain).
pub fn read(public_url: &Url, headers: &HeaderMap, name: &str) -> Option<String> {
    let name = self::name(public_url, name);
    CookieJar::from_headers(headers)
        .get(&name)
        .map(|cookie| cookie.value().to_owned())
}

/// A `Set-Cookie` value for `name=value`, living `max_age` seconds (0 deletes it). `path`
/// scopes it over http; on https it is `__Host-name` with `Path=/` and `Secure`.
pub fn set(
    public_url: &Url,
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
) -> Option<HeaderValue> {
    let secure = secure(public_url);
    let cookie = Cookie::build((self::name(public_url, name), value))
        .path(if secure { "/" } else { path })
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(max_age))
        .secure(secure)
        .build();
    HeaderValue::from_str(&cookie.to_string()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::http::header;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    /// The parts of a `Set-Cookie` value, sorted.
    fn attributes(text: &str) -> Vec<&str> {
        let mut parts: Vec<&str> = text.split("; ").collect();
        parts.sort_unstable();
        parts
    }

    #[test]
    fn https_cookies_are_host_prefixed_at_the_root_and_secure() {
        let value = set(
            &url("https://auth.example.com"),
            "wxauth_session",
            "v",
            "/oauth",
            60,
        );
        let text = value.unwrap();
        assert_eq!(
            attributes(text.to_str().unwrap()),
            [
                "HttpOnly",
                "Max-Age=60",
                "Path=/",
                "SameSite=Lax",
                "Secure",
                "__Host-wxauth_session=v"
            ]
        );
    }

    #[test]
    fn http_cookies_keep_their_name_and_path() {
        let value = set(
            &url("http://127.0.0.1:8080"),
            "wxauth_session",
            "v",
            "/oauth",
            60,
        );
        assert_eq!(
            attributes(value.unwrap().to_str().unwrap()),
            [
                "HttpOnly",
                "Max-Age=60",
                "Path=/oauth",
                "SameSite=Lax",
                "wxauth_session=v"
            ]
        );
    }

    #[test]
    fn on_https_only_the_prefixed_cookie_is_read() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("wxauth_signin=planted; __Host-wxauth_signin=ours"),
        );
        assert_eq!(
            read(&url("https://auth.example.com"), &headers, "wxauth_signin").as_deref(),
            Some("ours")
        );
        assert_eq!(
            read(&url("http://127.0.0.1"), &headers, "wxauth_signin").as_deref(),
            Some("planted")
        );
    }
}
