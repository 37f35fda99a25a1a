//! Where a login may send the browser back to: [`RedirectPolicy`] checks a `next` URL against
//! `WXAUTH_REDIRECT_ALLOWLIST` with the `url` crate (the WHATWG parser browsers use), and
//! [`merge_query`] adds the login's results to that URL's own query string.
//!
//! The rules, strict on purpose (a login that ends on a page of the attacker's choosing hands
//! them the user's ticket):
//! - absolute `http` or `https` URLs only: relative paths, protocol-relative `//host`,
//!   `javascript:`, `data:`, `ftp:` … are refused;
//! - no backslash, whitespace or control character anywhere, and no `@` or `%` in the
//!   authority: parsers disagree about those, so we do not guess;
//! - the host must equal an allowlist entry exactly after the parser's normalisation (lower
//!   case, IDNA): `app.example.com.evil.com`, `evil-app.example.com` and `app.example.com.`
//!   (trailing dot, another origin to a browser) do not match `app.example.com`;
//! - an entry `*.example.com` allows any subdomain of `example.com` at any depth
//!   (`a.example.com`, `a.b.example.com`), never `example.com` itself, and no host that merely
//!   ends in the same letters (`evil-example.com`) or carries a trailing dot;
//! - ports: an entry `host:port` allows exactly that port; a bare `host` allows only the
//!   scheme's default port (80 for http, 443 for https), except loopback IP literals
//!   (`127.0.0.1`, `[::1]`), where a bare entry allows any port as RFC 8252 §7.3 does for
//!   native-app redirects on the user's own machine.
//!
//! What is returned is the parsed [`Url`]; callers redirect to its serialisation, never to the
//! raw input.

use std::borrow::Cow;
use std::net::IpAddr;

use url::{Host, Url};

/// The longest `next` accepted (bytes).
pub const MAX_NEXT_LEN: usize = 2048;

/// Why a `next` URL is refused; the `Display` is shown to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    #[error("next is required")]
    Missing,
    #[error("next is longer than {MAX_NEXT_LEN} characters")]
    TooLong,
    #[error("next must not contain backslashes, spaces or control characters")]
    ForbiddenCharacter,
    #[error("next must be an absolute http(s) URL")]
    NotAbsoluteHttp,
    #[error("next must not carry a user name, password or encoded characters in its host part")]
    Authority,
    #[error("next points to a host that is not allowed (see WXAUTH_REDIRECT_ALLOWLIST)")]
    HostNotAllowed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    /// Normalised as `Url::host_str` gives it (`example.com`, `127.0.0.1`, `[::1]`).
    host: String,
    port: Option<u16>,
    /// `*.host`: any subdomain of `host`, not `host` itself.
    subdomains: bool,
}

impl AllowedHost {
    /// Whether a parsed URL's host is this entry's.
    fn matches_host(&self, host: &Host<&str>, host_str: &str) -> bool {
        if !self.subdomains {
            return self.host == host_str;
        }
        // A domain whose labels before `.host` are all non-empty: `a.b.host`, not `.host`,
        // `a..host` or `evil-host`. A trailing dot (`a.host.`) ends in "." and never matches.
        matches!(host, Host::Domain(_))
            && host_str
                .strip_suffix(self.host.as_str())
                .and_then(|prefix| prefix.strip_suffix('.'))
                .is_some_and(|labels| {
                    !labels.is_empty() && labels.split('.').all(|l| !l.is_empty())
                })
    }
}

/// The allowlist, normalised once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedirectPolicy {
    allowed: Vec<AllowedHost>,
}

impl RedirectPolicy {
    /// From `WXAUTH_REDIRECT_ALLOWLIST` entries (`host` or `host:port`, as the configuration
    /// validated them). An entry the URL parser cannot read is skipped.
    pub fn new(entries: &[String]) -> Self {
        let allowed = entries
            .iter()
            .filter_map(|entry| {
                let (subdomains, rest) = match entry.strip_prefix("*.") {
                    Some(rest) => (true, rest),
                    None => (false, entry.as_str()),
                };
                let probe = Url::parse(&format!("http://{rest}/")).ok()?;
                Some(AllowedHost {
                    host: probe.host_str()?.to_owned(),
                    port: probe.port(),
                    subdomains,
                })
            })
            .collect();
        Self { allowed }
    }

    /// The parsed URL when `raw` is an allowed redirect target.
    pub fn check(&self, raw: &str) -> Result<Url, RedirectError> {
        if raw.is_empty() {
            return Err(RedirectError::Missing);
        }
        if raw.len() > MAX_NEXT_LEN {
            return Err(RedirectError::TooLong);
        }
        if raw
            .chars()
            .any(|c| c == '\\' || c.is_whitespace() || c.is_control())
        {
            return Err(RedirectError::ForbiddenCharacter);
        }
        let url = Url::parse(raw).map_err(|_| RedirectError::NotAbsoluteHttp)?;
        if !matches!(url.scheme(), "http" | "https") || !raw_has_authority(raw) {
            return Err(RedirectError::NotAbsoluteHttp);
        }
        let authority = raw_authority(raw);
        if authority.contains('@')
            || authority.contains('%')
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(RedirectError::Authority);
        }
        let host = url.host().ok_or(RedirectError::NotAbsoluteHttp)?;
        let host_str = url.host_str().ok_or(RedirectError::NotAbsoluteHttp)?;
        let loopback = match host {
            Host::Ipv4(ip) => IpAddr::V4(ip).is_loopback(),
            Host::Ipv6(ip) => IpAddr::V6(ip).is_loopback(),
            Host::Domain(_) => false,
        };
        let allowed = self.allowed.iter().any(|entry| {
            entry.matches_host(&host, host_str)
                && match entry.port {
                    Some(port) => url.port_or_known_default() == Some(port),
                    None => url.port().is_none() || loopback,
                }
        });
        if allowed {
            Ok(url)
        } else {
            Err(RedirectError::HostNotAllowed)
        }
    }
}

/// The seed's front ends percent-encode `next` twice (`next=http%253A%252F%252F…`): after the
/// query string is decoded it still reads `http%3A%2F%2F…`. Such a value is decoded once more;
/// anything else is returned as it is. Either way the result is then checked like any `next`.
pub fn decode_seed_next(raw: &str) -> Cow<'_, str> {
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    if (lower.starts_with("http%3a") || lower.starts_with("https%3a"))
        && let Ok(decoded) = percent_encoding::percent_decode_str(raw).decode_utf8()
    {
        return Cow::Owned(decoded.into_owned());
    }
    Cow::Borrowed(raw)
}

/// `scheme://` with two slashes: `https:app.example.com` parses, but is not what anyone means.
fn raw_has_authority(raw: &str) -> bool {
    raw.split_once(':')
        .is_some_and(|(_, rest)| rest.starts_with("//"))
}

/// The text between `scheme://` and the first `/`, `?` or `#`.
fn raw_authority(raw: &str) -> &str {
    let rest = raw.split_once("//").map(|(_, r)| r).unwrap_or_default();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

/// `url` with `params` in its query string, replacing any parameters of the same names and
/// keeping every other parameter (and the fragment) as it was.
pub fn merge_query(url: &Url, params: &[(&str, &str)]) -> Url {
    let mut merged = url.clone();
    let collides = url
        .query_pairs()
        .any(|(k, _)| params.iter().any(|(name, _)| k == *name));
    if collides {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !params.iter().any(|(name, _)| k == *name))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        merged.query_pairs_mut().clear().extend_pairs(kept);
    }
    if merged.query() == Some("") {
        merged.set_query(None);
    }
    merged.query_pairs_mut().extend_pairs(params.iter());
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RedirectPolicy {
        RedirectPolicy::new(&[
            "app.example.com".to_owned(),
            "shop.example.com:8443".to_owned(),
            "127.0.0.1".to_owned(),
            "[::1]".to_owned(),
        ])
    }

    #[test]
    fn allowed_targets_come_back_normalised() {
        let p = policy();
        for (raw, expected) in [
            (
                "https://app.example.com/m/landing?x=1",
                "https://app.example.com/m/landing?x=1",
            ),
            ("http://app.example.com", "http://app.example.com/"),
            ("https://APP.Example.COM/A", "https://app.example.com/A"),
            ("https://app.example.com:443/", "https://app.example.com/"),
            (
                "https://shop.example.com:8443/cart",
                "https://shop.example.com:8443/cart",
            ),
            ("http://127.0.0.1:3000/cb", "http://127.0.0.1:3000/cb"),
            ("http://[::1]:3000/cb", "http://[::1]:3000/cb"),
            (
                "https://app.example.com/#/spa",
                "https://app.example.com/#/spa",
            ),
        ] {
            assert_eq!(
                p.check(raw).map(|u| u.to_string()),
                Ok(expected.into()),
                "{raw}"
            );
        }
    }

    #[test]
    fn hostile_targets_are_refused_with_a_reason() {
        use RedirectError::*;
        let p = policy();
        for (raw, why) in [
            ("", Missing),
            ("/m/landing", NotAbsoluteHttp),
            ("m/landing", NotAbsoluteHttp),
            ("//evil.com/", NotAbsoluteHttp),
            ("javascript:alert(1)", NotAbsoluteHttp),
            ("data:text/html,hi", NotAbsoluteHttp),
            ("ftp://app.example.com/", NotAbsoluteHttp),
            ("https:app.example.com/", NotAbsoluteHttp),
            ("https://app.example.com@evil.com/", Authority),
            ("https://user:pw@app.example.com/", Authority),
            ("https://@app.example.com/", Authority),
            ("https://app.example.com%2f@evil.com/", Authority),
            ("https://app%2eexample.com/", Authority),
            ("https://evil.com\\@app.example.com", ForbiddenCharacter),
            ("https://app.example.com\\.evil.com/", ForbiddenCharacter),
            (" https://app.example.com/", ForbiddenCharacter),
            ("https://app.example.com/\t", ForbiddenCharacter),
            ("java\nscript:alert(1)", ForbiddenCharacter),
            ("https://app.example.com.evil.com/", HostNotAllowed),
            ("https://evil-app.example.com/", HostNotAllowed),
            ("https://app.example.com./", HostNotAllowed),
            ("https://evil.com/?x=app.example.com", HostNotAllowed),
            ("https://evil.com/#app.example.com", HostNotAllowed),
            ("http://app.example.com:8080/", HostNotAllowed),
            ("https://shop.example.com/", HostNotAllowed),
            ("https://shop.example.com:9443/", HostNotAllowed),
            ("http://127.0.0.2:3000/", HostNotAllowed),
        ] {
            assert_eq!(p.check(raw), Err(why), "{raw:?}");
        }
        assert_eq!(
            p.check(&format!(
                "https://app.example.com/{}",
                "a".repeat(MAX_NEXT_LEN)
            )),
            Err(TooLong)
        );
        assert_eq!(
            RedirectPolicy::default().check("https://app.example.com/"),
            Err(HostNotAllowed)
        );
    }

    #[test]
    fn a_wildcard_allows_subdomains_only() {
        let p = RedirectPolicy::new(&[
            "*.example.com".to_owned(),
            "*.shop.example.net:8443".to_owned(),
        ]);
        for allowed in [
            "https://app.example.com/",
            "https://a.b.example.com/x",
            "https://APP.Example.com/",
            "http://app.example.com:80/",
            "https://cart.shop.example.net:8443/",
        ] {
            assert!(p.check(allowed).is_ok(), "{allowed}");
        }
        for refused in [
            "https://example.com/",
            "https://evil-example.com/",
            "https://example.com.evil.com/",
            "https://app.example.com.evil.com/",
            "https://app.example.com./",
            "https://.example.com/",
            "https://a..example.com/",
            "https://app.example.com:8443/",
            "https://shop.example.net:8443/",
            "https://cart.shop.example.net/",
            "https://cart.shop.example.net:9443/",
            "https://evil.com/?x=a.example.com",
        ] {
            assert_eq!(
                p.check(refused),
                Err(RedirectError::HostNotAllowed),
                "{refused}"
            );
        }
    }

    #[test]
    fn the_seeds_double_encoded_next_is_decoded_once() {
        assert_eq!(
            decode_seed_next(
                "http%3A%2F%2Fxiaozao-flow.genshuixue.com%2Fm%2Fflow_landing%3FappId%3Dwx18dd82265bdf8e6a"
            ),
            "http://xiaozao-flow.genshuixue.com/m/flow_landing?appId=wx18dd82265bdf8e6a"
        );
        assert_eq!(
            decode_seed_next("HTTPS%3a%2f%2fa.example%2F"),
            "HTTPS://a.example/"
        );
        for unchanged in [
            "https://a.example/?x=%2F",
            "//evil.com",
            "javascript%3Aalert(1)",
            "h",
        ] {
            assert_eq!(decode_seed_next(unchanged), unchanged);
        }
    }

    #[test]
    fn merge_adds_and_replaces_without_touching_the_rest() {
        let merge = |raw: &str| {
            merge_query(
                &Url::parse(raw).unwrap(),
                &[("openId", "o1"), ("unionId", "u 1"), ("ticket", "t+/=")],
            )
            .to_string()
        };
        assert_eq!(
            merge("https://app.example.com/m"),
            "https://app.example.com/m?openId=o1&unionId=u+1&ticket=t%2B%2F%3D"
        );
        assert_eq!(
            merge("https://app.example.com/m?"),
            "https://app.example.com/m?openId=o1&unionId=u+1&ticket=t%2B%2F%3D"
        );
        assert_eq!(
            merge("https://app.example.com/m?appId=wx1&x=%2F#frag"),
            "https://app.example.com/m?appId=wx1&x=%2F&openId=o1&unionId=u+1&ticket=t%2B%2F%3D#frag"
        );
        assert_eq!(
            merge("https://app.example.com/m?openId=forged&a=1&ticket=old"),
            "https://app.example.com/m?a=1&openId=o1&unionId=u+1&ticket=t%2B%2F%3D"
        );
    }
}
