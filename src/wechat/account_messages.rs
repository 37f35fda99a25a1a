//! Messages WeChat pushes to an Official Account's message URL (消息与事件接收): the query
//! WeChat signs, the two modes (plain: a `signature` over token, timestamp and nonce that covers
//! no body; safe: WXBizMsgCrypt, `msg_signature` over the ciphertext too) and the follower events
//! wxauth acts on, typed. WeChat's XML names stay in this file.

use serde::Deserialize;

use super::crypto::{MessageCrypt, verify_url_signature, xml_text};
use super::error::WeChatError;
use super::types::OpenId;

/// The query WeChat adds to every request to a message URL.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MessageQuery {
    #[serde(default)]
    pub signature: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub nonce: Option<String>,
    /// The GET check only: echoed back when the signature verifies.
    #[serde(default)]
    pub echostr: Option<String>,
    /// `aes` in safe mode.
    #[serde(default)]
    pub encrypt_type: Option<String>,
    /// Safe mode: the signature over the ciphertext too.
    #[serde(default)]
    pub msg_signature: Option<String>,
}

/// How a push reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageMode {
    /// No encryption: the signature covers no body, so nothing in the body is believed without
    /// asking WeChat's server.
    Plain,
    /// WXBizMsgCrypt: the body is signed and encrypted.
    Safe,
}

impl MessageMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Safe => "safe",
        }
    }
}

/// The parametric QR code an event names (`EventKey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QrScene {
    /// `scene_id` codes (digits).
    Id(i64),
    /// `scene_str` codes.
    Str(String),
}

impl QrScene {
    /// `EventKey` without its `qrscene_` prefix: digits are a scene id, the rest a scene string;
    /// empty is none.
    fn parse(key: &str) -> Option<Self> {
        let key = key.trim();
        if key.is_empty() {
            return None;
        }
        match key.parse::<i64>() {
            Ok(id) if key.bytes().all(|b| b.is_ascii_digit()) => Some(Self::Id(id)),
            _ => Some(Self::Str(key.chars().take(64).collect())),
        }
    }
}

/// What a pushed message is, as far as wxauth cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKind {
    /// The user followed (through a parametric QR code when `scene` is set).
    Subscribe { scene: Option<QrScene> },
    /// The user stopped following.
    Unsubscribe,
    /// A follower scanned a parametric QR code.
    Scan { scene: Option<QrScene> },
    /// Any other message or event: acknowledged, not acted upon.
    Other,
}

/// One pushed message, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountMessage {
    pub mode: MessageMode,
    /// The user (`FromUserName`).
    pub open_id: OpenId,
    /// `CreateTime` (unix seconds).
    pub create_time: i64,
    pub kind: MessageKind,
    /// What WeChat's retries of this message have in common: `msg:{MsgId}` for messages,
    /// `evt:{FromUserName}:{CreateTime}:{Event}` for events.
    pub retry_key: String,
}

/// The credentials a message URL is verified with.
#[derive(Clone)]
pub struct MessageKeys<'a> {
    pub token: &'a str,
    /// Safe mode's EncodingAESKey, with the appid the ciphertext's trailer must name (the
    /// account's own, or its component's for a component-authorized account).
    pub aes: Option<(&'a str, &'a str)>,
    /// Component-authorized accounts: WeChat sends safe mode only.
    pub safe_only: bool,
}

fn required<'q>(value: &'q Option<String>, name: &str) -> Result<&'q str, WeChatError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .ok_or_else(|| WeChatError::Decode(format!("message URL request without {name}")))
}

/// The `echostr` check: the echo when `signature` verifies.
pub fn verify_echo(keys: &MessageKeys<'_>, query: &MessageQuery) -> Result<String, WeChatError> {
    let signature = required(&query.signature, "signature")?;
    let timestamp = required(&query.timestamp, "timestamp")?;
    let nonce = required(&query.nonce, "nonce")?;
    verify_url_signature(keys.token, signature, timestamp, nonce)?;
    Ok(required(&query.echostr, "echostr")?.to_owned())
}

/// Verify a push (its signature first; nothing of the body is read before), decrypt it in safe
/// mode, and type it. Returns the message and the `timestamp` WeChat signed.
pub fn open_push(
    keys: &MessageKeys<'_>,
    query: &MessageQuery,
    body: &str,
) -> Result<(AccountMessage, i64), WeChatError> {
    let timestamp = required(&query.timestamp, "timestamp")?;
    let nonce = required(&query.nonce, "nonce")?;
    let signed_at = timestamp
        .parse::<i64>()
        .map_err(|_| WeChatError::Decode("timestamp is not a number".to_owned()))?;
    let safe = query.encrypt_type.as_deref() == Some("aes");
    let (mode, xml) = if safe {
        let Some((aes_key, appid)) = keys.aes else {
            return Err(WeChatError::NotConfigured(
                "a safe-mode push, and no EncodingAESKey is configured".to_owned(),
            ));
        };
        let msg_signature = required(&query.msg_signature, "msg_signature")?;
        let crypt = MessageCrypt::new(keys.token, aes_key, appid)?;
        let encrypt = xml_text(body, "Encrypt")
            .ok_or_else(|| WeChatError::Decode("safe-mode push without Encrypt".to_owned()))?;
        crypt.verify_signature(msg_signature, timestamp, nonce, &encrypt)?;
        (MessageMode::Safe, crypt.decrypt(&encrypt)?)
    } else {
        if keys.safe_only {
            return Err(WeChatError::Decode(
                "a plain push for an account that only receives safe-mode pushes".to_owned(),
            ));
        }
        let signature = required(&query.signature, "signature")?;
        verify_url_signature(keys.token, signature, timestamp, nonce)?;
        (MessageMode::Plain, body.to_owned())
    };
    Ok((parse_message(mode, &xml)?, signed_at))
}

fn parse_message(mode: MessageMode, xml: &str) -> Result<AccountMessage, WeChatError> {
    let from = xml_text(xml, "FromUserName")
        .ok_or_else(|| WeChatError::Decode("message without FromUserName".to_owned()))?;
    // An openid is up to 64 characters of letters, digits, `-` and `_`.
    if from.is_empty()
        || from.len() > 64
        || !from
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(WeChatError::Decode(
            "message with a malformed FromUserName".to_owned(),
        ));
    }
    let open_id = OpenId::new(from);
    let create_time = xml_text(xml, "CreateTime")
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or_else(|| WeChatError::Decode("message without CreateTime".to_owned()))?;
    let msg_type = xml_text(xml, "MsgType").unwrap_or_default();
    let event = xml_text(xml, "Event").unwrap_or_default();
    let event_key = xml_text(xml, "EventKey").unwrap_or_default();
    let kind = if msg_type == "event" {
        match event.as_str() {
            "subscribe" => MessageKind::Subscribe {
                scene: event_key.strip_prefix("qrscene_").and_then(QrScene::parse),
            },
            "unsubscribe" => MessageKind::Unsubscribe,
            "SCAN" => MessageKind::Scan {
                scene: QrScene::parse(&event_key),
            },
            _ => MessageKind::Other,
        }
    } else {
        MessageKind::Other
    };
    let retry_key = match xml_text(xml, "MsgId").or_else(|| xml_text(xml, "MsgID")) {
        Some(id) if !id.is_empty() => format!("msg:{}", id.chars().take(64).collect::<String>()),
        _ => format!(
            "evt:{}:{create_time}:{}",
            open_id.as_str(),
            event.chars().take(32).collect::<String>()
        ),
    };
    Ok(AccountMessage {
        mode,
        open_id,
        create_time,
        kind,
        retry_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wechat::crypto::url_signature;

    const TOKEN: &str = "followertoken";
    const AES: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const APPID: &str = "wxd000000000000003";

    fn event(event: &str, key: &str) -> String {
        format!(
            "<xml><ToUserName><![CDATA[gh_123]]></ToUserName>\
             <FromUserName><![CDATA[oUser123]]></FromUserName><CreateTime>1700000000</CreateTime>\
             <MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>\
             <EventKey><![CDATA[{key}]]></EventKey></xml>"
        )
    }

    fn plain_query(token: &str) -> MessageQuery {
        MessageQuery {
            signature: Some(url_signature(token, "1700000001", "n1")),
            timestamp: Some("1700000001".into()),
            nonce: Some("n1".into()),
            ..Default::default()
        }
    }

    fn keys() -> MessageKeys<'static> {
        MessageKeys {
            token: TOKEN,
            aes: Some((AES, APPID)),
            safe_only: false,
        }
    }

    #[test]
    fn plain_subscribe_through_a_qr_code() {
        let (message, signed_at) = open_push(
            &keys(),
            &plain_query(TOKEN),
            &event("subscribe", "qrscene_42"),
        )
        .unwrap();
        assert_eq!(signed_at, 1_700_000_001);
        assert_eq!(message.mode, MessageMode::Plain);
        assert_eq!(message.open_id.as_str(), "oUser123");
        assert_eq!(
            message.kind,
            MessageKind::Subscribe {
                scene: Some(QrScene::Id(42))
            }
        );
        assert_eq!(message.retry_key, "evt:oUser123:1700000000:subscribe");
    }

    #[test]
    fn scan_keys_have_no_prefix_and_strings_stay_strings() {
        let (message, _) =
            open_push(&keys(), &plain_query(TOKEN), &event("SCAN", "promo_a")).unwrap();
        assert_eq!(
            message.kind,
            MessageKind::Scan {
                scene: Some(QrScene::Str("promo_a".into()))
            }
        );
        let (message, _) =
            open_push(&keys(), &plain_query(TOKEN), &event("subscribe", "")).unwrap();
        assert_eq!(message.kind, MessageKind::Subscribe { scene: None });
    }

    #[test]
    fn a_wrong_signature_is_refused_before_the_body_is_read() {
        let err = open_push(&keys(), &plain_query("another"), "not xml at all").unwrap_err();
        assert!(matches!(err, WeChatError::Crypto(_)), "{err:?}");
    }

    #[test]
    fn safe_mode_verifies_msg_signature_and_decrypts() {
        let crypt = MessageCrypt::new(TOKEN, AES, APPID).unwrap();
        let encrypt = crypt.encrypt(&event("unsubscribe", ""));
        let body = format!(
            "<xml><ToUserName>gh_123</ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        );
        let query = MessageQuery {
            signature: Some(url_signature(TOKEN, "1700000001", "n1")),
            timestamp: Some("1700000001".into()),
            nonce: Some("n1".into()),
            encrypt_type: Some("aes".into()),
            msg_signature: Some(crypt.signature("1700000001", "n1", &encrypt)),
            ..Default::default()
        };
        let (message, _) = open_push(&keys(), &query, &body).unwrap();
        assert_eq!(message.mode, MessageMode::Safe);
        assert_eq!(message.kind, MessageKind::Unsubscribe);
        let forged = MessageQuery {
            msg_signature: Some(crypt.signature("1700000001", "n2", &encrypt)),
            ..query
        };
        assert!(open_push(&keys(), &forged, &body).is_err());
    }

    #[test]
    fn the_echo_needs_the_token() {
        let mut query = plain_query(TOKEN);
        query.echostr = Some("hello123".into());
        assert_eq!(verify_echo(&keys(), &query).unwrap(), "hello123");
        query.signature = Some(url_signature("other", "1700000001", "n1"));
        assert!(verify_echo(&keys(), &query).is_err());
    }
}
