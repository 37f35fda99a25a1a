//! JWT signing keys: generated on first start, sealed in `signing_key` so that every instance
//! signs with the same keys, rotated with `wxauth keys rotate`, and published as a JWKS. Retired
//! public keys stay published until every token they signed has expired.
//!
//! HS256 is the exception: its key is the shared secret from `WXAUTH_JWT_HS256_SECRET` (for
//! resource servers that share a key, as the seed's did); it is never stored or published.
//!
//! Signing is on every token request's path, so the active key is parsed once, when the key set
//! is loaded. ES256 is signed with ring (precomputed P-256 tables, ~10x faster than the pure-Rust
//! `p256` arithmetic), EdDSA with ed25519-dalek; RS256 and HS256 go through jsonwebtoken.
//! `jsonwebtoken::encode` re-parses the PKCS#8 key and re-derives its public half on every call:
//! for ES256 that was three scalar multiplications per token and ~70 % of the CPU time of a
//! `client_credentials` request.
//!
//! Verification only ever uses the key set in memory. A token naming an unknown `kid` (perhaps
//! signed by a key another instance added a moment ago, perhaps forged) re-reads the key table
//! at most once every [`UNKNOWN_KID_RELOAD_EVERY`] seconds, one reader at a time; otherwise it is
//! refused at once, so a flood of made-up kids costs no database reads and no decryption.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::DecodePrivateKey as _;
use rand::rngs::OsRng;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, TransactionTrait,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Mutex, RwLock};

use entity::signing_key;

use crate::clock::SharedClock;
use crate::config::JwtAlg;
use crate::secret::Secret;
use crate::vault::{SealedAt, Vault, VaultError, random_token};

/// The longest access-token lifetime a client may be given (seconds); retired keys stay in the
/// JWKS this long (plus a margin) after they stop signing.
pub const MAX_TOKEN_TTL: i64 = 24 * 3600;
const RETENTION_MARGIN: i64 = 300;
/// How often an instance re-reads the key table, to pick up a rotation made elsewhere.
const RELOAD_EVERY: i64 = 60;
/// The most often (seconds) a token with an unknown `kid` makes an instance re-read the table.
pub const UNKNOWN_KID_RELOAD_EVERY: i64 = 30;

/// The JWKS cache time and the longest activation delay: settings' bounds, owned by `config`.
pub use crate::config::{JWKS_MAX_AGE_SECS, MAX_ACTIVATION_DELAY};

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published in the JWKS; signs from its activation instant.
    Pending,
    /// Signs new tokens (and is published).
    Active,
    /// No longer signs; published until the tokens it signed have expired.
    Retiring,
    /// Gone from the JWKS.
    Expired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Retiring => "retiring",
            Self::Expired => "expired",
        }
    }
}

/// A stored key as an administrator sees it (never the private half).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub state: KeyState,
    pub created_at: i64,
    pub activates_at: Option<i64>,
    pub retired_at: Option<i64>,
}

/// The state of each row at `now` (rows newest first): the newest key of `alg` that has
/// activated and is not retired signs; a key retired (or to be retired) stays published until
/// every token it signed has expired.
fn key_states(rows: &[signing_key::Model], now: i64, alg: JwtAlg) -> Vec<KeyState> {
    let mut active_found = false;
    rows.iter()
        .map(|row| {
            let retired = row.retired_at.is_some_and(|r| r <= now);
            if row
                .retired_at
                .is_some_and(|r| r + MAX_TOKEN_TTL + RETENTION_MARGIN < now)
            {
                KeyState::Expired
            } else if !retired && row.activates_at.is_some_and(|a| a > now) {
                KeyState::Pending
            } else if !retired && !active_found && row.alg == alg.as_str() {
                active_found = true;
                KeyState::Active
            } else {
                KeyState::Retiring
            }
        })
        .collect()
}

/// The next instant after `now` at which a key activates or retires (the set changes).
fn next_change(rows: &[signing_key::Model], now: i64) -> Option<i64> {
    rows.iter()
        .flat_map(|row| [row.activates_at, row.retired_at])
        .flatten()
        .filter(|at| *at > now)
        .min()
}

/// Why an administrative key operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyAdminError {
    #[error("no signing key {0:?}")]
    NotFound(String),
    #[error("key {0:?} signs new tokens now; rotate to a new key first")]
    Active(String),
    #[error("the activation delay must be from 0 to {MAX_ACTIVATION_DELAY} seconds, got {0}")]
    InvalidDelay(i64),
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl From<DbErr> for KeyAdminError {
    fn from(e: DbErr) -> Self {
        Self::Key(KeyError::Db(e))
    }
}

/// Why signing or verifying failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("stored signing key cannot be opened or parsed: {0}")]
    Corrupt(String),
    /// The key's private half is sealed under another master key.
    #[error("stored signing key {kid} does not open with this master key")]
    WrongMasterKey { kid: String },
    #[error("key generation failed: {0}")]
    Generate(String),
    #[error("jwt: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    #[error("token was signed by an unknown key")]
    UnknownKey,
    #[error("token header is not acceptable")]
    BadHeader,
    #[error("signing failed: {0}")]
    Sign(String),
}

/// The active private key, parsed once.
enum ActiveSigner {
    Es256(ring::signature::EcdsaKeyPair),
    EdDsa(ed25519_dalek::SigningKey),
    /// RS256 and HS256, through `jsonwebtoken::encode`.
    Jwt(EncodingKey),
}

impl ActiveSigner {
    /// Parse the PKCS#8 PEM of a stored key for `alg`.
    fn from_pem(alg: JwtAlg, pem: &str) -> Result<Self, KeyError> {
        let corrupt = |e: &dyn std::fmt::Display| KeyError::Corrupt(e.to_string());
        match alg {
            JwtAlg::Es256 => {
                let secret = p256::SecretKey::from_pkcs8_pem(pem).map_err(|e| corrupt(&e))?;
                let public = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                    &secret.public_key(),
                    false,
                );
                let pair = ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
                    &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &secret.to_bytes(),
                    public.as_bytes(),
                    &ring::rand::SystemRandom::new(),
                )
                .map_err(|e| corrupt(&e))?;
                Ok(Self::Es256(pair))
            }
            JwtAlg::EdDsa => Ok(Self::EdDsa(
                ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|e| corrupt(&e))?,
            )),
            JwtAlg::Rs256 => Ok(Self::Jwt(EncodingKey::from_rsa_pem(pem.as_bytes())?)),
            JwtAlg::Hs256 => Err(KeyError::Corrupt("HS256 key in the key table".into())),
        }
    }

    /// A compact JWS of `claims` under `header`.
    fn sign<T: Serialize>(&self, header: &Header, claims: &T) -> Result<String, KeyError> {
        let signing = match self {
            Self::Jwt(key) => return Ok(jsonwebtoken::encode(header, claims, key)?),
            Self::Es256(_) | Self::EdDsa(_) => {
                let encode_err = |e: serde_json::Error| KeyError::Sign(e.to_string());
                let header = serde_json::to_vec(header).map_err(encode_err)?;
                let claims = serde_json::to_vec(claims).map_err(encode_err)?;
                let mut signing = String::with_capacity((header.len() + claims.len()) * 4 / 3 + 96);
                URL_SAFE_NO_PAD.encode_string(header, &mut signing);
                signing.push('.');
                URL_SAFE_NO_PAD.encode_string(claims, &mut signing);
                signing
            }
        };
        let signature: Vec<u8> = match self {
            Self::Es256(pair) => pair
                .sign(&ring::rand::SystemRandom::new(), signing.as_bytes())
                .map_err(|e| KeyError::Sign(e.to_string()))?
                .as_ref()
                .to_vec(),
            Self::EdDsa(key) => ed25519_dalek::Signer::sign(key, signing.as_bytes())
                .to_bytes()
                .to_vec(),
            Self::Jwt(_) => return Err(KeyError::Sign("unreachable signer".into())),
        };
        let mut token = signing;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}

struct VerifyingKey {
    alg: Algorithm,
    key: DecodingKey,
}

struct KeySet {
    kid: String,
    alg: Algorithm,
    signer: ActiveSigner,
    verifying: HashMap<String, VerifyingKey>,
    jwks: Value,
    loaded_at: i64,
    /// When a staged key activates or a key retires: the set must be read again then.
    next_change: Option<i64>,
}

/// The signing keys of this deployment.
#[derive(Clone)]
pub struct SigningKeys {
    db: DatabaseConnection,
    vault: Arc<Vault>,
    clock: SharedClock,
    alg: JwtAlg,
    hs256_secret: Option<Secret>,
    set: Arc<RwLock<KeySet>>,
    /// Held while the table is re-read (one reader at a time); holds when an unknown `kid`
    /// last caused a re-read.
    reloading: Arc<Mutex<Option<i64>>>,
    /// How many times this instance has read the key table.
    table_reads: Arc<AtomicU64>,
}

fn jose_alg(alg: JwtAlg) -> Algorithm {
    match alg {
        JwtAlg::Es256 => Algorithm::ES256,
        JwtAlg::EdDsa => Algorithm::EdDSA,
        JwtAlg::Rs256 => Algorithm::RS256,
        JwtAlg::Hs256 => Algorithm::HS256,
    }
}

/// A freshly generated key: the private half as PKCS#8 PEM and the public half as a JWK.
fn generate(alg: JwtAlg, kid: &str) -> Result<(String, Value), KeyError> {
    use p256::pkcs8::EncodePrivateKey as _;
    let gen_err = |e: &dyn std::fmt::Display| KeyError::Generate(e.to_string());
    match alg {
        JwtAlg::Es256 => {
            let secret = p256::SecretKey::random(&mut OsRng);
            let pem = secret
                .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
                .map_err(|e| gen_err(&e))?;
            let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                &secret.public_key(),
                false,
            );
            let (x, y) = match (point.x(), point.y()) {
                (Some(x), Some(y)) => (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y)),
                _ => return Err(KeyError::Generate("EC point without coordinates".into())),
            };
            Ok((
                pem.to_string(),
                json!({"kty":"EC","crv":"P-256","x":x,"y":y,"kid":kid,"alg":"ES256","use":"sig"}),
            ))
        }
        JwtAlg::EdDsa => {
            let signing = ed25519_dalek::SigningKey::generate(&mut OsRng);
            let pem = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_pem(
                &signing,
                ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF,
            )
            .map_err(|e| gen_err(&e))?;
            let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
            Ok((
                pem.to_string(),
                json!({"kty":"OKP","crv":"Ed25519","x":x,"kid":kid,"alg":"EdDSA","use":"sig"}),
            ))
        }
        JwtAlg::Rs256 => {
            use rsa::traits::PublicKeyParts as _;
            let private = rsa::RsaPrivateKey::new(&mut OsRng, 2048).map_err(|e| gen_err(&e))?;
            let pem =
                rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&private, rsa::pkcs8::LineEnding::LF)
                    .map_err(|e| gen_err(&e))?;
            let n = URL_SAFE_NO_PAD.encode(private.n().to_bytes_be());
            let e = URL_SAFE_NO_PAD.encode(private.e().to_bytes_be());
            Ok((
                pem.to_string(),
                json!({"kty":"RSA","n":n,"e":e,"kid":kid,"alg":"RS256","use":"sig"}),
            ))
        }
        JwtAlg::Hs256 => Err(KeyError::Generate("HS256 keys are not generated".into())),
    }
}

/// Where a private key is sealed.
fn sealed_at(kid: &str) -> SealedAt<'_> {
    SealedAt::new("signing_key", "private_key_enc", kid)
}

fn decoding_key(jwk: &Value) -> Result<VerifyingKey, KeyError> {
    let parsed: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(jwk.clone()).map_err(|e| KeyError::Corrupt(e.to_string()))?;
    let alg = match jwk["alg"].as_str() {
        Some("ES256") => Algorithm::ES256,
        Some("EdDSA") => Algorithm::EdDSA,
        Some("RS256") => Algorithm::RS256,
        _ => return Err(KeyError::Corrupt("public key without a known alg".into())),
    };
    Ok(VerifyingKey {
        alg,
        key: DecodingKey::from_jwk(&parsed)?,
    })
}

impl SigningKeys {
    /// Load the keys, generating the first one for the configured algorithm if there is none.
    pub async fn load(
        db: DatabaseConnection,
        vault: Arc<Vault>,
        clock: SharedClock,
        alg: JwtAlg,
        hs256_secret: Option<Secret>,
    ) -> Result<Self, KeyError> {
        let set = Self::read(&db, &vault, clock.now(), alg, hs256_secret.as_ref()).await?;
        let set = match set {
            Some(set) => set,
            None => {
                Self::insert_new_key(&db, &vault, clock.now(), alg).await?;
                Self::read(&db, &vault, clock.now(), alg, hs256_secret.as_ref())
                    .await?
                    .ok_or_else(|| KeyError::Corrupt("new key not found after insert".into()))?
            }
        };
        Ok(Self {
            db,
            vault,
            clock,
            alg,
            hs256_secret,
            set: Arc::new(RwLock::new(set)),
            reloading: Arc::new(Mutex::new(None)),
            table_reads: Arc::new(AtomicU64::new(1)),
        })
    }

    async fn insert_new_key(
        db: &DatabaseConnection,
        vault: &Vault,
        now: i64,
        alg: JwtAlg,
    ) -> Result<String, KeyError> {
        let kid = random_token(12);
        let (pem, jwk) = match alg {
            // RSA key generation is CPU-heavy; keep it off the async workers.
            JwtAlg::Rs256 => {
                let kid2 = kid.clone();
                tokio::task::spawn_blocking(move || generate(alg, &kid2))
                    .await
                    .map_err(|e| KeyError::Generate(e.to_string()))??
            }
            _ => generate(alg, &kid)?,
        };
        signing_key::ActiveModel {
            kid: Set(kid.clone()),
            alg: Set(alg.as_str().to_string()),
            private_key_enc: Set(vault.seal(&pem, sealed_at(&kid))),
            public_jwk: Set(jwk.to_string()),
            created_at: Set(now),
            activates_at: Set(None),
            retired_at: Set(None),
        }
        .insert(db)
        .await?;
        Ok(kid)
    }

    /// Read the key table: the newest active key of `alg` signs; every key still within its
    /// retention verifies and is published.
    async fn read(
        db: &DatabaseConnection,
        vault: &Vault,
        now: i64,
        alg: JwtAlg,
        hs256_secret: Option<&Secret>,
    ) -> Result<Option<KeySet>, KeyError> {
        let rows = signing_key::Entity::find()
            .order_by_desc(signing_key::Column::CreatedAt)
            .all(db)
            .await?;
        let mut verifying = HashMap::new();
        let mut published = Vec::new();
        let mut active: Option<(String, ActiveSigner)> = None;
        for (row, state) in rows.iter().zip(key_states(&rows, now, alg)) {
            if state == KeyState::Expired {
                continue;
            }
            let jwk: Value = serde_json::from_str(&row.public_jwk)
                .map_err(|e| KeyError::Corrupt(e.to_string()))?;
            verifying.insert(row.kid.clone(), decoding_key(&jwk)?);
            published.push(jwk);
            if state == KeyState::Active {
                let pem = vault
                    .open(&row.private_key_enc, sealed_at(&row.kid))
                    .map_err(|e| match e {
                        VaultError::WrongKey => KeyError::WrongMasterKey {
                            kid: row.kid.clone(),
                        },
                        e => KeyError::Corrupt(e.to_string()),
                    })?;
                active = Some((row.kid.clone(), ActiveSigner::from_pem(alg, &pem)?));
            }
        }
        let (kid, signer, sign_alg) = if alg == JwtAlg::Hs256 {
            let secret =
                hs256_secret.ok_or_else(|| KeyError::Corrupt("HS256 without a secret".into()))?;
            let kid = format!(
                "hs256-{}",
                &hex::encode(Sha256::digest(secret.expose().as_bytes()))[..12]
            );
            verifying.insert(
                kid.clone(),
                VerifyingKey {
                    alg: Algorithm::HS256,
                    key: DecodingKey::from_secret(secret.expose().as_bytes()),
                },
            );
            (
                kid,
                ActiveSigner::Jwt(EncodingKey::from_secret(secret.expose().as_bytes())),
                Algorithm::HS256,
            )
        } else {
            match active {
                Some((kid, signer)) => (kid, signer, jose_alg(alg)),
                None => return Ok(None),
            }
        };
        Ok(Some(KeySet {
            kid,
            alg: sign_alg,
            signer,
            verifying,
            jwks: json!({ "keys": published }),
            loaded_at: now,
            next_change: next_change(&rows, now),
        }))
    }

    async fn is_stale(&self) -> bool {
        let now = self.clock.now();
        let set = self.set.read().await;
        now.saturating_sub(set.loaded_at) >= RELOAD_EVERY
            || set.next_change.is_some_and(|at| at <= now)
    }

    async fn refresh_if_stale(&self) -> Result<(), KeyError> {
        if !self.is_stale().await {
            return Ok(());
        }
        let _reading = self.reloading.lock().await;
        // Whoever held the lock before us may have just re-read it.
        if self.is_stale().await {
            self.read_table().await?;
        }
        Ok(())
    }

    /// A token named a `kid` we do not know: re-read the table, unless an unknown `kid` did so
    /// less than [`UNKNOWN_KID_RELOAD_EVERY`] seconds ago. Concurrent callers wait for one read.
    async fn reload_for_unknown_kid(&self) -> Result<(), KeyError> {
        let mut last = self.reloading.lock().await;
        let now = self.clock.now();
        if last.is_some_and(|at| now.saturating_sub(at) < UNKNOWN_KID_RELOAD_EVERY) {
            return Ok(());
        }
        *last = Some(now);
        self.read_table().await
    }

    /// How many times this instance has read (and decrypted) the key table.
    pub fn table_reads(&self) -> u64 {
        self.table_reads.load(Ordering::Relaxed)
    }

    /// Re-read the key table now.
    pub async fn reload(&self) -> Result<(), KeyError> {
        let _reading = self.reloading.lock().await;
        self.read_table().await
    }

    /// Read the key table and swap the new set in (the caller holds `reloading`).
    async fn read_table(&self) -> Result<(), KeyError> {
        self.table_reads.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.now();
        if let Some(set) = Self::read(
            &self.db,
            &self.vault,
            now,
            self.alg,
            self.hs256_secret.as_ref(),
        )
        .await?
        {
            *self.set.write().await = set;
        }
        Ok(())
    }

    /// Add a new key for the configured algorithm and retire the current ones: new tokens are
    /// signed with the new key, old ones keep verifying until they expire. Returns the new kid.
    pub async fn rotate(&self) -> Result<String, KeyError> {
        let (kid, _) = self.rotate_staged(0).await?;
        Ok(kid)
    }

    /// Staged rotation: add a new key, published in the JWKS at once, that signs only
    /// `delay` seconds from now; the keys signing now retire at that instant (and stay
    /// published until their tokens expire). A delay of at least the JWKS cache time means no
    /// resource server and no other instance ever sees a token signed by a key it has not
    /// fetched. Returns the new kid and when it activates.
    pub async fn rotate_staged(&self, delay: i64) -> Result<(String, i64), KeyError> {
        if self.alg == JwtAlg::Hs256 {
            return Err(KeyError::Generate(
                "HS256 uses WXAUTH_JWT_HS256_SECRET; rotate it by changing the secret".into(),
            ));
        }
        let now = self.clock.now();
        let activates_at = now.saturating_add(delay.max(0));
        let kid = Self::insert_new_key(&self.db, &self.vault, now, self.alg).await?;
        let txn = self.db.begin().await?;
        signing_key::Entity::update_many()
            .col_expr(
                signing_key::Column::ActivatesAt,
                sea_orm::sea_query::Expr::value(activates_at),
            )
            .filter(signing_key::Column::Kid.eq(kid.clone()))
            .exec(&txn)
            .await?;
        signing_key::Entity::update_many()
            .col_expr(
                signing_key::Column::RetiredAt,
                sea_orm::sea_query::Expr::value(activates_at),
            )
            .filter(signing_key::Column::RetiredAt.is_null())
            .filter(signing_key::Column::Kid.ne(kid.clone()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        self.reload().await?;
        Ok((kid, activates_at))
    }

    /// Every stored key and its state now, newest first.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let rows = signing_key::Entity::find()
            .order_by_desc(signing_key::Column::CreatedAt)
            .all(&self.db)
            .await?;
        let states = key_states(&rows, self.clock.now(), self.alg);
        Ok(rows
            .into_iter()
            .zip(states)
            .map(|(row, state)| KeyInfo {
                kid: row.kid,
                alg: row.alg,
                state,
                created_at: row.created_at,
                activates_at: row.activates_at,
                retired_at: row.retired_at,
            })
            .collect())
    }

    /// Retire key `kid` now: it signs nothing more and leaves the JWKS once its tokens have
    /// expired. The key that signs now cannot be retired (rotate first). Retiring a pending key
    /// cancels its rotation: the keys it would have replaced keep signing.
    pub async fn retire(&self, kid: &str) -> Result<KeyInfo, KeyAdminError> {
        let keys = self.list().await?;
        let key = keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| KeyAdminError::NotFound(kid.to_owned()))?;
        if key.state == KeyState::Active {
            return Err(KeyAdminError::Active(kid.to_owned()));
        }
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        if key.state == KeyState::Pending
            && let Some(activation) = key.activates_at
            && !keys.iter().any(|k| {
                k.kid != kid && k.state == KeyState::Pending && k.activates_at == Some(activation)
            })
        {
            // The keys this one would have replaced at its activation keep signing.
            signing_key::Entity::update_many()
                .col_expr(
                    signing_key::Column::RetiredAt,
                    sea_orm::sea_query::Expr::value(Option::<i64>::None),
                )
                .filter(signing_key::Column::RetiredAt.eq(activation))
                .filter(signing_key::Column::Kid.ne(kid))
                .exec(&txn)
                .await?;
        }
        if key.retired_at.is_none_or(|r| r > now) {
            signing_key::Entity::update_many()
                .col_expr(
                    signing_key::Column::RetiredAt,
                    sea_orm::sea_query::Expr::value(now),
                )
                .filter(signing_key::Column::Kid.eq(kid))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        self.reload().await?;
        self.list()
            .await?
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| KeyAdminError::NotFound(kid.to_owned()))
    }

    /// Sign `claims` with the active key; the header carries `typ` and `kid`.
    pub async fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        self.refresh_if_stale().await?;
        let set = self.set.read().await;
        let mut header = Header::new(set.alg);
        header.typ = Some(typ.to_string());
        header.kid = Some(set.kid.clone());
        set.signer.sign(&header, claims)
    }

    /// The JWKS document (public keys only).
    pub async fn jwks(&self) -> Result<Value, KeyError> {
        self.refresh_if_stale().await?;
        Ok(self.set.read().await.jwks.clone())
    }

    /// The algorithm new tokens are signed with.
    pub fn algorithm(&self) -> JwtAlg {
        self.alg
    }

    /// Verify a token's signature with the key its `kid` names, and that its `typ` is
    /// `expected_typ`. Expiry and issuer are the caller's to check against its own clock.
    pub async fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        expected_typ: &str,
    ) -> Result<T, KeyError> {
        let header = jsonwebtoken::decode_header(token)?;
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(expected_typ))
        {
            return Err(KeyError::BadHeader);
        }
        let kid = header.kid.ok_or(KeyError::BadHeader)?;
        if !self.set.read().await.verifying.contains_key(&kid) {
            // Perhaps another instance rotated keys a moment ago; perhaps it is made up.
            self.reload_for_unknown_kid().await?;
        }
        let set = self.set.read().await;
        let key = set.verifying.get(&kid).ok_or(KeyError::UnknownKey)?;
        if key.alg != header.alg {
            return Err(KeyError::BadHeader);
        }
        let mut validation = Validation::new(key.alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Ok(jsonwebtoken::decode::<T>(token, &key.key, &validation)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token from the parsed-once signer verifies with jsonwebtoken against the published JWK,
    /// as a resource server checks it.
    fn round_trip(alg: JwtAlg) {
        let (pem, jwk) = generate(alg, "k1").unwrap();
        let signer = ActiveSigner::from_pem(alg, &pem).unwrap();
        let mut header = Header::new(jose_alg(alg));
        header.typ = Some("at+jwt".into());
        header.kid = Some("k1".into());
        let claims = json!({"sub": "42", "scope": "api", "exp": 4_000_000_000_i64});
        let token = signer.sign(&header, &claims).unwrap();

        let parsed = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(parsed.alg, jose_alg(alg));
        assert_eq!(parsed.typ.as_deref(), Some("at+jwt"));
        assert_eq!(parsed.kid.as_deref(), Some("k1"));
        let key = decoding_key(&jwk).unwrap();
        let mut validation = Validation::new(key.alg);
        validation.validate_aud = false;
        let decoded = jsonwebtoken::decode::<Value>(&token, &key.key, &validation).unwrap();
        assert_eq!(decoded.claims, claims);
    }

    #[test]
    fn es256_tokens_verify_against_the_jwk() {
        round_trip(JwtAlg::Es256);
    }

    #[test]
    fn eddsa_tokens_verify_against_the_jwk() {
        round_trip(JwtAlg::EdDsa);
    }
}
