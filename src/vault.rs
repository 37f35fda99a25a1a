//! Secrets at rest: sealing (AES-256-GCM) for values wxauth must read back (app secrets,
//! session keys, signing keys, upstream tokens) and keyed fingerprints (HMAC-SHA256) for values it
//! only has to recognise (client secrets, refresh tokens, tickets, session ids).
//!
//! Both keys are derived from one 32-byte master key (`WXAUTH_MASTER_KEY`), so every instance that
//! shares the database and the master key can read what any other instance wrote.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

const SEAL_PREFIX: &str = "v1.";

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value does not open with this master key")]
    WrongKey,
}

/// The 32-byte master key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// Parse base64 (standard or URL-safe) or 64 hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(text).ok()?
        } else {
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .ok()?
        };
        let key: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(key))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Self(key)
    }

    /// The key as standard base64, for writing to a key file.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

/// Seals and fingerprints secrets with keys derived from the master key.
pub struct Vault {
    cipher: Aes256Gcm,
    fingerprint_key: [u8; 32],
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vault(***)")
    }
}

/// HMAC-SHA256 keyed with a 32-byte key. A key shorter than the 64-byte block is zero-padded by
/// HMAC itself, so padding it here gives the same MAC through the infallible constructor.
fn keyed_hmac(key: &[u8; 32]) -> HmacSha256 {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    <HmacSha256 as KeyInit>::new(&block.into())
}

fn derive(master: &MasterKey, purpose: &[u8]) -> [u8; 32] {
    let mut mac = keyed_hmac(&master.0);
    mac.update(purpose);
    mac.finalize().into_bytes().into()
}

impl Vault {
    /// A vault keyed by `master`.
    pub fn new(master: &MasterKey) -> Self {
        let seal_key = derive(master, b"wxauth/seal/v1");
        Self {
            cipher: Aes256Gcm::new(&seal_key.into()),
            fingerprint_key: derive(master, b"wxauth/fingerprint/v1"),
        }
    }

    /// Encrypt `plaintext`; the result is printable and safe to store.
    pub fn seal(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        // AES-GCM encryption only fails for inputs beyond 64 GiB.
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("{SEAL_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypt a value made by [`Vault::seal`].
    pub fn open(&self, sealed: &str) -> Result<String, VaultError> {
        let body = sealed
            .strip_prefix(SEAL_PREFIX)
            .ok_or(VaultError::Malformed)?;
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| VaultError::Malformed)?;
        if raw.len() < 12 + 16 {
            return Err(VaultError::Malformed);
        }
        let (nonce, ciphertext) = raw.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| VaultError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| VaultError::Malformed)
    }

    /// A keyed fingerprint (hex HMAC-SHA256) of a secret, for storing instead of the secret.
    pub fn fingerprint(&self, secret: &str) -> String {
        let mut mac = keyed_hmac(&self.fingerprint_key);
        mac.update(secret.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `secret` has the stored fingerprint, compared in constant time.
    pub fn matches_fingerprint(&self, secret: &str, stored: &str) -> bool {
        let computed = self.fingerprint(secret);
        computed.len() == stored.len() && bool::from(computed.as_bytes().ct_eq(stored.as_bytes()))
    }
}

/// A random, URL-safe token carrying `bytes` bytes of entropy from the OS.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_is_randomised() {
        let vault = Vault::new(&MasterKey::generate());
        let a = vault.seal("app-secret");
        let b = vault.seal("app-secret");
        assert_ne!(a, b, "each seal uses a fresh nonce");
        assert!(!a.contains("app-secret"));
        assert_eq!(vault.open(&a).ok().as_deref(), Some("app-secret"));
    }

    #[test]
    fn another_master_key_cannot_open() {
        let sealed = Vault::new(&MasterKey::generate()).seal("x");
        assert!(matches!(
            Vault::new(&MasterKey::generate()).open(&sealed),
            Err(VaultError::WrongKey)
        ));
        assert!(matches!(
            Vault::new(&MasterKey::generate()).open("garbage"),
            Err(VaultError::Malformed)
        ));
    }

    #[test]
    fn fingerprints_are_keyed_and_matched() {
        let key = MasterKey::generate();
        let vault = Vault::new(&key);
        let fp = vault.fingerprint("s3cret");
        assert!(vault.matches_fingerprint("s3cret", &fp));
        assert!(!vault.matches_fingerprint("s3creT", &fp));
        assert_ne!(Vault::new(&MasterKey::generate()).fingerprint("s3cret"), fp);
    }

    #[test]
    fn master_key_parses_base64_and_hex() {
        let key = MasterKey::generate();
        assert!(MasterKey::parse(&key.to_base64()).is_some());
        assert!(MasterKey::parse(&"ab".repeat(32)).is_some());
        assert!(MasterKey::parse("short").is_none());
    }
}
