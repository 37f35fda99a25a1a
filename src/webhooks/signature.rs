//! The signature on every webhook delivery, and the recipe receivers check it with.
//!
//! `Wxauth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, where the HMAC key is the
//! endpoint's secret exactly as it was shown once at registration (`whsec_…`, its UTF-8 bytes)
//! and the message is `t`, a full stop, and the raw request body:
//! `HMAC-SHA256(secret, "<t>.<body>")`. Receivers recompute it over the body bytes they
//! received, compare in constant time, and refuse a `t` too far from their own clock (five
//! minutes is the usual tolerance) so that a captured delivery cannot be replayed later.

use ring::hmac;

/// The header carrying the timestamp and the signature.
pub const SIGNATURE_HEADER: &str = "Wxauth-Signature";
/// The header carrying the event id (also the body's `id`): deduplicate on it.
pub const EVENT_ID_HEADER: &str = "Wxauth-Event-Id";
/// The header carrying the event type (also the body's `type`).
pub const EVENT_TYPE_HEADER: &str = "Wxauth-Event";
/// The prefix of every endpoint secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// `"<timestamp>.<body>"`, the signed message.
fn message(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    message
}

fn key(secret: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes())
}

/// The `Wxauth-Signature` value of `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = hmac::sign(&key(secret), &message(timestamp, body));
    format!("t={timestamp},v1={}", hex::encode(tag.as_ref()))
}

/// Whether `header` is a valid signature of `body` under `secret`, made within `tolerance`
/// seconds of `now`: the receivers' side of [`sign`], in constant time.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance: i64) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    if (now - timestamp).abs() > tolerance {
        return false;
    }
    // `ring::hmac::verify` compares in constant time.
    let key = key(secret);
    let message = message(timestamp, body);
    signatures
        .iter()
        .any(|s| hmac::verify(&key, &message, s).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::hmac::{Hmac, Mac};
    use sha2::Sha256;

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let header = sign("whsec_k", 1_700_000_000, b"{\"a\":1}");
        assert!(verify("whsec_k", &header, b"{\"a\":1}", 1_700_000_010, 300));
        assert!(!verify(
            "whsec_x",
            &header,
            b"{\"a\":1}",
            1_700_000_010,
            300
        ));
        assert!(!verify(
            "whsec_k",
            &header,
            b"{\"a\":2}",
            1_700_000_010,
            300
        ));
        assert!(!verify(
            "whsec_k",
            &header,
            b"{\"a\":1}",
            1_700_001_000,
            300
        ));
    }

    /// The recipe as README states it, computed with nothing but HMAC-SHA256.
    #[test]
    fn the_documented_recipe_gives_the_header() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_k").unwrap();
        mac.update(b"1700000000.{}");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(
            sign("whsec_k", 1_700_000_000, b"{}"),
            format!("t=1700000000,v1={expected}")
        );
    }
}
