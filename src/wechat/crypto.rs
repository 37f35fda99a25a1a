//! WeChat's two encryption schemes.
//!
//! - Mini-program open data (`encryptedData` + `iv` from `wx.getUserInfo` and friends):
//!   AES-128-CBC with the session key, PKCS#7, and a `watermark.appid` that must be ours; plus the
//!   `rawData` signature `sha1(rawData + session_key)`.
//! - WXBizMsgCrypt, used for pushes such as `component_verify_ticket`: AES-256-CBC with
//!   key = base64(EncodingAESKey + "="), IV = the key's first 16 bytes, PKCS#7 over 32-byte blocks;
//!   the plaintext is `random(16) ‖ msg_len (u32 BE) ‖ msg ‖ appid`, and
//!   `msg_signature = sha1(sort(token, timestamp, nonce, encrypt))`.
//!   Encryption is here too because the simulator pushes tickets the way WeChat does.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::types::{AppId, SessionKey};

/// A decryption or signature failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("bad base64 in {0}")]
    Base64(&'static str),
    #[error("bad key or iv length")]
    KeyLength,
    #[error("decryption failed (bad padding)")]
    Padding,
    #[error("decrypted data is malformed")]
    Malformed,
    #[error("decrypted data has no {0}")]
    MissingField(&'static str),
    #[error("watermark appid does not match this app")]
    WatermarkMismatch,
    #[error("signature mismatch")]
    SignatureMismatch,
    #[error("appid trailer does not match")]
    AppIdMismatch,
    #[error("EncodingAESKey must be 43 characters")]
    BadEncodingAesKey,
}

type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;
type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;

fn decode_b64(value: &str, what: &'static str) -> Result<Vec<u8>, CryptoError> {
    STANDARD
        .decode(value.trim())
        .map_err(|_| CryptoError::Base64(what))
}

/// Removes PKCS#7 padding with a block size up to `max_block`.
fn strip_pkcs7(mut data: Vec<u8>, max_block: usize) -> Result<Vec<u8>, CryptoError> {
    let pad = usize::from(*data.last().ok_or(CryptoError::Padding)?);
    if pad == 0 || pad > max_block || pad > data.len() {
        return Err(CryptoError::Padding);
    }
    if !data[data.len() - pad..]
        .iter()
        .all(|&b| usize::from(b) == pad)
    {
        return Err(CryptoError::Padding);
    }
    data.truncate(data.len() - pad);
    Ok(data)
}

fn add_pkcs7(mut data: Vec<u8>, block: usize) -> Vec<u8> {
    let pad = block - data.len() % block;
    // pad is in 1..=block and block <= 32, so it fits a byte.
    data.extend(std::iter::repeat_n(pad as u8, pad));
    data
}

fn sha1_hex(parts: &[&str]) -> String {
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn constant_time_eq_str(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Decrypts mini-program open data and checks that its watermark names `expected_appid`.
pub fn decrypt_mini_program_data(
    session_key: &SessionKey,
    encrypted_data: &str,
    iv: &str,
    expected_appid: &AppId,
) -> Result<serde_json::Value, CryptoError> {
    let key = decode_b64(session_key.expose(), "session_key")?;
    let iv = decode_b64(iv, "iv")?;
    let ciphertext = decode_b64(encrypted_data, "encryptedData")?;
    if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
        return Err(CryptoError::Padding);
    }
    let decryptor = Aes128CbcDec::new_from_slices(&key, &iv).map_err(|_| CryptoError::KeyLength)?;
    let padded = decryptor
        .decrypt_padded_vec_mut::<NoPadding>(&ciphertext)
        .map_err(|_| CryptoError::Padding)?;
    let plaintext = strip_pkcs7(padded, 16)?;
    let value: serde_json::Value =
        serde_json::from_slice(&plaintext).map_err(|_| CryptoError::Malformed)?;
    let watermark_appid = value
        .get("watermark")
        .and_then(|w| w.get("appid"))
        .and_then(|a| a.as_str())
        .ok_or(CryptoError::WatermarkMismatch)?;
    if watermark_appid != expected_appid.as_str() {
        return Err(CryptoError::WatermarkMismatch);
    }
    Ok(value)
}

/// Encrypts mini-program open data the way WeChat does (for the simulator and tests).
pub fn encrypt_mini_program_data(
    session_key: &SessionKey,
    plaintext: &str,
    iv: &[u8; 16],
) -> Result<String, CryptoError> {
    let key = decode_b64(session_key.expose(), "session_key")?;
    let encryptor = cbc::Encryptor::<aes::Aes128>::new_from_slices(&key, iv)
        .map_err(|_| CryptoError::KeyLength)?;
    let padded = add_pkcs7(plaintext.as_bytes().to_vec(), 16);
    Ok(STANDARD.encode(encryptor.encrypt_padded_vec_mut::<NoPadding>(&padded)))
}

/// `sha1(rawData + session_key)` in hex: the `signature` WeChat's client sends with user info.
pub fn raw_data_signature(raw_data: &str, session_key: &SessionKey) -> String {
    sha1_hex(&[raw_data, session_key.expose()])
}

/// Checks `signature == sha1(rawData + session_key)` in constant time.
pub fn verify_raw_data_signature(
    raw_data: &str,
    signature: &str,
    session_key: &SessionKey,
) -> Result<(), CryptoError> {
    let expected = raw_data_signature(raw_data, session_key);
    if constant_time_eq_str(&expected, &signature.to_ascii_lowercase()) {
        Ok(())
    } else {
        Err(CryptoError::SignatureMismatch)
    }
}

/// The `signature` WeChat adds to every request to a message URL (the `echostr` check and
/// plain-mode pushes): `sha1` of the lexicographically sorted token, timestamp and nonce. It
/// covers no body.
pub fn url_signature(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort_unstable();
    sha1_hex(&parts)
}

/// Checks a message URL's `signature` in constant time.
pub fn verify_url_signature(
    token: &str,
    signature: &str,
    timestamp: &str,
    nonce: &str,
) -> Result<(), CryptoError> {
    let expected = url_signature(token, timestamp, nonce);
    if constant_time_eq_str(&expected, &signature.to_ascii_lowercase()) {
        Ok(())
    } else {
        Err(CryptoError::SignatureMismatch)
    }
}

/// WXBizMsgCrypt for one app (or component): token, EncodingAESKey and appid.
#[derive(Clone)]
pub struct MessageCrypt {
    token: String,
    key: [u8; 32],
    appid: String,
}

impl std::fmt::Debug for MessageCrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageCrypt")
            .field("appid", &self.appid)
            .finish_non_exhaustive()
    }
}

impl MessageCrypt {
    /// `encoding_aes_key` is the 43-character key from the WeChat console.
    pub fn new(token: &str, encoding_aes_key: &str, appid: &str) -> Result<Self, CryptoError> {
        if encoding_aes_key.len() != 43 {
            return Err(CryptoError::BadEncodingAesKey);
        }
        // WeChat's 43rd character carries 2 unused bits that are often non-zero, so the decoder
        // must allow trailing bits (as every official SDK does).
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let decoded = lenient
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| CryptoError::BadEncodingAesKey)?;
        let key: [u8; 32] = decoded
            .try_into()
            .map_err(|_| CryptoError::BadEncodingAesKey)?;
        Ok(Self {
            token: token.to_owned(),
            key,
            appid: appid.to_owned(),
        })
    }

    /// `sha1` of the lexicographically sorted token, timestamp, nonce and ciphertext.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        let mut parts = [self.token.as_str(), timestamp, nonce, encrypt];
        parts.sort_unstable();
        sha1_hex(&parts)
    }

    /// Checks `msg_signature` in constant time.
    pub fn verify_signature(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<(), CryptoError> {
        let expected = self.signature(timestamp, nonce, encrypt);
        if constant_time_eq_str(&expected, &msg_signature.to_ascii_lowercase()) {
            Ok(())
        } else {
            Err(CryptoError::SignatureMismatch)
        }
    }

    /// Decrypts `encrypt` and checks the appid trailer; returns the inner message.
    pub fn decrypt(&self, encrypt: &str) -> Result<String, CryptoError> {
        let ciphertext = decode_b64(encrypt, "Encrypt")?;
        if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
            return Err(CryptoError::Padding);
        }
        let decryptor = Aes256CbcDec::new_from_slices(&self.key, &self.key[..16])
            .map_err(|_| CryptoError::KeyLength)?;
        let padded = decryptor
            .decrypt_padded_vec_mut::<NoPadding>(&ciphertext)
            .map_err(|_| CryptoError::Padding)?;
        let plain = strip_pkcs7(padded, 32)?;
        if plain.len() < 20 {
            return Err(CryptoError::Malformed);
        }
        let length_bytes: [u8; 4] = plain[16..20]
            .try_into()
            .map_err(|_| CryptoError::Malformed)?;
        let msg_len = u32::from_be_bytes(length_bytes) as usize;
        let msg_end = 20usize
            .checked_add(msg_len)
            .filter(|end| *end <= plain.len())
            .ok_or(CryptoError::Malformed)?;
        let appid = &plain[msg_end..];
        if !constant_time_eq_str(&String::from_utf8_lossy(appid), &self.appid) {
            return Err(CryptoError::AppIdMismatch);
        }
        String::from_utf8(plain[20..msg_end].to_vec()).map_err(|_| CryptoError::Malformed)
    }

    /// Checks `msg_signature` then decrypts.
    pub fn decrypt_verified(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<String, CryptoError> {
        self.verify_signature(msg_signature, timestamp, nonce, encrypt)?;
        self.decrypt(encrypt)
    }

    /// Encrypts `message` with the given 16 random bytes (deterministic, for tests).
    pub fn encrypt_with_random(&self, message: &str, random: &[u8; 16]) -> String {
        let mut plain = Vec::with_capacity(20 + message.len() + self.appid.len() + 32);
        plain.extend_from_slice(random);
        plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
        plain.extend_from_slice(message.as_bytes());
        plain.extend_from_slice(self.appid.as_bytes());
        let padded = add_pkcs7(plain, 32);
        // The key is 32 bytes and the IV 16 by construction, so this cannot fail; fall back to an
        // empty ciphertext (which every receiver rejects) rather than panic.
        match Aes256CbcEnc::new_from_slices(&self.key, &self.key[..16]) {
            Ok(encryptor) => {
                STANDARD.encode(encryptor.encrypt_padded_vec_mut::<NoPadding>(&padded))
            }
            Err(_) => String::new(),
        }
    }

    /// Encrypts `message` with fresh random bytes.
    pub fn encrypt(&self, message: &str) -> String {
        let mut random = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut random);
        self.encrypt_with_random(message, &random)
    }
}

/// The text of the first `<tag>` element in a flat WeChat XML message, CDATA or not.
///
/// WeChat's push bodies are flat, machine-generated XML; a full XML parser is not needed.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    let inner = xml[start..end].trim();
    let text = inner
        .strip_prefix("<![CDATA[")
        .and_then(|rest| rest.strip_suffix("]]>"))
        .unwrap_or(inner);
    Some(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The WXBizDataCrypt demo published by WeChat with the mini-program documentation.
    const DEMO_APPID: &str = "wx4f4bc4dec97d474b";
    const DEMO_SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
    const DEMO_ENCRYPTED_DATA: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";
    const DEMO_IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";

    // The rawData signature example from WeChat's "signature" documentation.
    const SIGNATURE_RAW_DATA: &str = r#"{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}"#;
    const SIGNATURE_SESSION_KEY: &str = "HyVFkGl5F5OQWJZZaNzBBg==";
    const SIGNATURE: &str = "75e81ceda165f4ffa64f4068af58c64b8f54b88c";

    // The WXBizMsgCrypt sample shipped with WeChat's message-encryption SDKs.
    const MSG_TOKEN: &str = "spamtest";
    const MSG_AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const MSG_APPID: &str = "wx2c2769f8efd9abc2";
    const MSG_TIMESTAMP: &str = "1409735669";
    const MSG_NONCE: &str = "1320562132";
    const MSG_SIGNATURE: &str = "5d197aaffba7e9b25a30732f161a50dee96bd5fa";
    const MSG_ENCRYPT: &str = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";

    fn demo_appid() -> AppId {
        AppId::parse(DEMO_APPID).unwrap()
    }

    #[test]
    fn decrypts_the_official_wxbizdatacrypt_demo() {
        let data = decrypt_mini_program_data(
            &SessionKey::new(DEMO_SESSION_KEY),
            DEMO_ENCRYPTED_DATA,
            DEMO_IV,
            &demo_appid(),
        )
        .unwrap();
        assert_eq!(data["openId"], "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
        assert_eq!(data["nickName"], "Band");
        assert_eq!(data["gender"], 1);
        assert_eq!(data["city"], "Guangzhou");
        assert_eq!(data["unionId"], "ocMvos6NjeKLIBqg5Mr9QjxrP1FA");
        assert_eq!(data["watermark"]["timestamp"], 1477314187);
        assert_eq!(data["watermark"]["appid"], DEMO_APPID);
    }

    #[test]
    fn demo_rejected_for_another_appid() {
        let other = AppId::parse("wx0000000000000000").unwrap();
        assert_eq!(
            decrypt_mini_program_data(
                &SessionKey::new(DEMO_SESSION_KEY),
                DEMO_ENCRYPTED_DATA,
                DEMO_IV,
                &other
            ),
            Err(CryptoError::WatermarkMismatch)
        );
    }

    #[test]
    fn demo_rejected_with_wrong_key_or_garbage() {
        let wrong_key = SessionKey::new("AAAAAAAAAAAAAAAAAAAAAA==");
        assert!(
            decrypt_mini_program_data(&wrong_key, DEMO_ENCRYPTED_DATA, DEMO_IV, &demo_appid())
                .is_err()
        );
        assert_eq!(
            decrypt_mini_program_data(
                &SessionKey::new(DEMO_SESSION_KEY),
                "not base64!",
                DEMO_IV,
                &demo_appid()
            ),
            Err(CryptoError::Base64("encryptedData"))
        );
        assert_eq!(
            decrypt_mini_program_data(
                &SessionKey::new("c2hvcnQ="),
                DEMO_ENCRYPTED_DATA,
                DEMO_IV,
                &demo_appid()
            ),
            Err(CryptoError::KeyLength)
        );
    }

    #[test]
    fn mini_program_encrypt_round_trips() {
        let key = SessionKey::new(DEMO_SESSION_KEY);
        let plain = r#"{"phoneNumber":"13800138000","watermark":{"appid":"wx4f4bc4dec97d474b","timestamp":1}}"#;
        let iv = [7u8; 16];
        let encrypted = encrypt_mini_program_data(&key, plain, &iv).unwrap();
        let decrypted =
            decrypt_mini_program_data(&key, &encrypted, &STANDARD.encode(iv), &demo_appid())
                .unwrap();
        assert_eq!(decrypted["phoneNumber"], "13800138000");
    }

    #[test]
    fn verifies_the_documented_raw_data_signature() {
        let key = SessionKey::new(SIGNATURE_SESSION_KEY);
        assert_eq!(
            verify_raw_data_signature(SIGNATURE_RAW_DATA, SIGNATURE, &key),
            Ok(())
        );
        assert_eq!(
            verify_raw_data_signature(SIGNATURE_RAW_DATA, &SIGNATURE.to_uppercase(), &key),
            Ok(())
        );
        assert_eq!(
            verify_raw_data_signature("{}", SIGNATURE, &key),
            Err(CryptoError::SignatureMismatch)
        );
    }

    #[test]
    fn msg_signature_of_the_official_sample() {
        let crypt = MessageCrypt::new(MSG_TOKEN, MSG_AES_KEY, MSG_APPID).unwrap();
        assert_eq!(
            crypt.signature(MSG_TIMESTAMP, MSG_NONCE, MSG_ENCRYPT),
            MSG_SIGNATURE
        );
    }

    #[test]
    fn decrypts_the_official_wxbizmsgcrypt_sample() {
        let crypt = MessageCrypt::new(MSG_TOKEN, MSG_AES_KEY, MSG_APPID).unwrap();
        let message = crypt
            .decrypt_verified(MSG_SIGNATURE, MSG_TIMESTAMP, MSG_NONCE, MSG_ENCRYPT)
            .unwrap();
        assert!(message.starts_with("<xml>"), "{message}");
        assert!(message.trim_end().ends_with("</xml>"), "{message}");
        assert_eq!(
            xml_text(&message, "ToUserName").as_deref(),
            Some("gh_10f6c3c3ac5a")
        );
        assert_eq!(
            xml_text(&message, "FromUserName").as_deref(),
            Some("oyORnuP8q7ou2gfYjqLzSIWZf0rs")
        );
        assert_eq!(xml_text(&message, "Content").as_deref(), Some("abcdteT"));
    }

    #[test]
    fn official_sample_rejected_for_other_appid_or_bad_signature() {
        let other = MessageCrypt::new(MSG_TOKEN, MSG_AES_KEY, "wx0000000000000000").unwrap();
        assert_eq!(other.decrypt(MSG_ENCRYPT), Err(CryptoError::AppIdMismatch));
        let crypt = MessageCrypt::new(MSG_TOKEN, MSG_AES_KEY, MSG_APPID).unwrap();
        assert_eq!(
            crypt.decrypt_verified(
                "0000000000000000000000000000000000000000",
                MSG_TIMESTAMP,
                MSG_NONCE,
                MSG_ENCRYPT
            ),
            Err(CryptoError::SignatureMismatch)
        );
        assert_eq!(
            MessageCrypt::new(MSG_TOKEN, "short", MSG_APPID).err(),
            Some(CryptoError::BadEncodingAesKey)
        );
    }

    #[test]
    fn encrypt_round_trips_with_the_sample_key() {
        let crypt = MessageCrypt::new(MSG_TOKEN, MSG_AES_KEY, MSG_APPID).unwrap();
        for message in [
            "",
            "x",
            "<xml><InfoType>component_verify_ticket</InfoType></xml>",
        ] {
            let encrypted = crypt.encrypt(message);
            let signature = crypt.signature("1", "2", &encrypted);
            assert_eq!(
                crypt
                    .decrypt_verified(&signature, "1", "2", &encrypted)
                    .unwrap(),
                message
            );
        }
    }

    #[test]
    fn xml_text_reads_cdata_and_plain() {
        let xml = "<xml><A><![CDATA[x y]]></A><B>12</B></xml>";
        assert_eq!(xml_text(xml, "A").as_deref(), Some("x y"));
        assert_eq!(xml_text(xml, "B").as_deref(), Some("12"));
        assert_eq!(xml_text(xml, "C"), None);
    }
}
