//! Secrets at rest: sealing (AES-256-GCM) for values wxauth must read back (app secrets,
//! session keys, signing keys, upstream tokens) and keyed fingerprints (HMAC-SHA256) for values it
//! only has to recognise (client secrets, refresh tokens, tickets, session ids).
//!
//! Both keys are derived from one 32-byte master key (`WXAUTH_MASTER_KEY`), so every instance that
//! shares the database and the master key can read what any other instance wrote.
//!
//! A sealed value is bound to where it is stored: its table, column and row ([`SealedAt`]) are
//! the AES-GCM associated data, so a value copied to another row or column (by someone who can
//! write the database but does not hold the master key) does not open. Values sealed before
//! this binding (`v1.`) are re-sealed in place at start-up (the `reseal` step of opening the database).

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Values bound to their place (associated data).
const SEAL_PREFIX: &str = "v2.";
/// Values sealed without associated data, before version 2; only [`Vault::open_unbound`] reads
/// them.
pub(crate) const UNBOUND_PREFIX: &str = "v1.";
/// The start of the associated data, naming the format.
const AAD_DOMAIN: &[u8] = b"wxauth/seal/v2";

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value does not open here (another master key, or another row or column)")]
    WrongKey,
    #[error("sealed value predates binding to its row and has not been re-sealed")]
    Unbound,
}

/// Where a sealed value is stored: its table, column and row (the row's key, or for a table
/// keyed by a surrogate id, its natural key). Sealing binds the value to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedAt<'a> {
    pub table: &'static str,
    pub column: &'static str,
    pub row: &'a str,
}

impl<'a> SealedAt<'a> {
    pub fn new(table: &'static str, column: &'static str, row: &'a str) -> Self {
        Self { table, column, row }
    }

    /// The AES-GCM associated data: the format, table, column and row, NUL-separated (table and
    /// column are identifiers; the row comes last, so no two places share their bytes).
    fn associated_data(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(
            AAD_DOMAIN.len() + self.table.len() + self.column.len() + self.row.len() + 3,
        );
        for part in [
            AAD_DOMAIN,
            self.table.as_bytes(),
            self.column.as_bytes(),
            self.row.as_bytes(),
        ] {
            if !aad.is_empty() {
                aad.push(0);
            }
            aad.extend_from_slice(part);
        }
        aad
    }
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

    /// Encrypt `plaintext` for storage at `at`; the result is printable and opens only there.
    pub fn seal(&self, plaintext: &str, at: SealedAt<'_>) -> String {
        // A random 96-bit nonce per seal, from the thread's CSPRNG (see `random_token`).
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = at.associated_data();
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: &aad,
        };
        // AES-GCM encryption only fails for inputs beyond 64 GiB.
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("{SEAL_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypt a value [`Vault::seal`] made for `at`. A value sealed for another place (or
    /// under another master key) is [`VaultError::WrongKey`].
    pub fn open(&self, sealed: &str, at: SealedAt<'_>) -> Result<String, VaultError> {
        if sealed.starts_with(UNBOUND_PREFIX) {
            return Err(VaultError::Unbound);
        }
        let body = sealed
            .strip_prefix(SEAL_PREFIX)
            .ok_or(VaultError::Malformed)?;
        self.decrypt(body, &at.associated_data())
    }

    /// Decrypt a `v1.` value, sealed before values were bound to their place. Only the
    /// start-up re-seal ([`crate::db::reseal`]) reads these.
    pub(crate) fn open_unbound(&self, sealed: &str) -> Result<String, VaultError> {
        let body = sealed
            .strip_prefix(UNBOUND_PREFIX)
            .ok_or(VaultError::Malformed)?;
        self.decrypt(body, b"")
    }

    fn decrypt(&self, body: &str, aad: &[u8]) -> Result<String, VaultError> {
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| VaultError::Malformed)?;
        if raw.len() < 12 + 16 {
            return Err(VaultError::Malformed);
        }
        let (nonce, ciphertext) = raw.split_at(12);
        let payload = Payload {
            msg: ciphertext,
            aad,
        };
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| VaultError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| VaultError::Malformed)
    }

    /// Seal without associated data, as versions before 2 did (tests of the re-seal only).
    #[cfg(test)]
    pub(crate) fn seal_unbound(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("{UNBOUND_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
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

/// A random, URL-safe token carrying `bytes` bytes of entropy.
///
/// The bytes come from the thread's CSPRNG (`rand::thread_rng`: ChaCha12, seeded from the OS and
/// reseeded as it goes), not a `getrandom` system call each: a flow grant made five such calls
/// (README, Performance). Keys ([`MasterKey::generate`], signing keys) still come from the OS.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: SealedAt<'static> = SealedAt {
        table: "wx_app",
        column: "secret_enc",
        row: "wx1",
    };

    #[test]
    fn seal_round_trips_and_is_randomised() {
        let vault = Vault::new(&MasterKey::generate());
        let a = vault.seal("app-secret", HERE);
        let b = vault.seal("app-secret", HERE);
        assert_ne!(a, b, "each seal uses a fresh nonce");
        assert!(!a.contains("app-secret"));
        assert_eq!(vault.open(&a, HERE).ok().as_deref(), Some("app-secret"));
    }

    #[test]
    fn random_tokens_never_repeat_within_or_across_threads() {
        // Each thread's generator is seeded from the OS on its own: two threads that drew the
        // same stream would hand out each other's refresh tokens and authorization codes.
        let draw = || (0..2_000).map(|_| random_token(32)).collect::<Vec<_>>();
        let threads: Vec<_> = (0..4).map(|_| std::thread::spawn(draw)).collect();
        let mut all = draw();
        for thread in threads {
            all.extend(thread.join().expect("drawing thread"));
        }
        assert!(
            all.iter().all(|t| t.len() == 43),
            "32 bytes, unpadded base64"
        );
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
    }

    #[test]
    fn another_master_key_cannot_open() {
        let sealed = Vault::new(&MasterKey::generate()).seal("x", HERE);
        assert!(matches!(
            Vault::new(&MasterKey::generate()).open(&sealed, HERE),
            Err(VaultError::WrongKey)
        ));
        assert!(matches!(
            Vault::new(&MasterKey::generate()).open("garbage", HERE),
            Err(VaultError::Malformed)
        ));
    }

    #[test]
    fn a_sealed_value_opens_only_in_its_own_row_and_column() {
        let vault = Vault::new(&MasterKey::generate());
        let sealed = vault.seal("app-secret", HERE);
        for elsewhere in [
            SealedAt::new("wx_app", "secret_enc", "wx2"),
            SealedAt::new("wx_app", "token_enc", "wx1"),
            SealedAt::new("signing_key", "secret_enc", "wx1"),
            // The separators keep (table, column, row) apart: no shifting of bytes between them.
            SealedAt::new("wx_app", "secret_enc\0wx1", ""),
        ] {
            assert!(
                matches!(vault.open(&sealed, elsewhere), Err(VaultError::WrongKey)),
                "{elsewhere:?}"
            );
        }
    }

    #[test]
    fn unbound_values_open_only_through_the_reseal_path() {
        let vault = Vault::new(&MasterKey::generate());
        let old = vault.seal_unbound("legacy");
        assert!(matches!(vault.open(&old, HERE), Err(VaultError::Unbound)));
        assert_eq!(vault.open_unbound(&old).ok().as_deref(), Some("legacy"));
        let new = vault.seal("fresh", HERE);
        assert!(vault.open_unbound(&new).is_err());
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
