//! The JS-SDK (微信 JS-SDK) of official-account H5 pages: `cgi-bin/ticket/getticket?type=jsapi`
//! and the `wx.config` signature, exactly as WeChat's JS-SDK documentation (附录 1) defines it:
//! SHA-1 (lower-case hex) over `jsapi_ticket=…&noncestr=…&timestamp=…&url=…`, the four keys in
//! that (ASCII) order, values as they are (no URL encoding), the page URL without its `#`
//! fragment.
//!
//! The raw call takes an explicit access token; [`super::WeChat::jsapi_ticket`] adds the shared
//! token cache and the refetch-once rule.

use serde::Deserialize;
use sha1::{Digest, Sha1};

use super::client::{Replay, WeChatClient};
use super::error::WeChatError;
use super::types::{AccessToken, AppId};

/// What `getticket` answers: `{"errcode":0,"errmsg":"ok","ticket":"…","expires_in":7200}`.
#[derive(Debug, Clone, Deserialize)]
pub struct FetchedTicket {
    /// Sent only to the signature: it is a credential like the access token.
    pub ticket: AccessToken,
    pub expires_in: i64,
}

impl WeChatClient {
    /// `GET cgi-bin/ticket/getticket?access_token=…&type=jsapi` with the account's access token
    /// (its own, or the authorizer token of a component-authorized account).
    pub async fn jsapi_ticket(
        &self,
        appid: &AppId,
        access_token: &AccessToken,
    ) -> Result<FetchedTicket, WeChatError> {
        self.get(
            "cgi-bin/ticket/getticket",
            appid.as_str(),
            &[("access_token", access_token.expose()), ("type", "jsapi")],
            Replay::Safe,
        )
        .await
    }
}

/// The page URL as signed: everything before the first `#`.
pub fn signed_url(url: &str) -> &str {
    url.split('#').next().unwrap_or(url)
}

/// The `wx.config` signature of `url` (its fragment is dropped here) with `ticket`, `noncestr`
/// and `timestamp` (unix seconds): lower-case hex SHA-1 of
/// `jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}`.
pub fn config_signature(ticket: &str, noncestr: &str, timestamp: i64, url: &str) -> String {
    let text = format!(
        "jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={}",
        signed_url(url)
    );
    hex::encode(Sha1::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WeChat's published example (JS-SDK documentation, 附录 1 JS-SDK 使用权限签名算法).
    const SAMPLE_TICKET: &str =
        "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg";

    #[test]
    fn wechats_sample_vector() {
        assert_eq!(
            config_signature(
                SAMPLE_TICKET,
                "Wm3WZYTPz0wzccnW",
                1414587457,
                "http://mp.weixin.qq.com?params=value"
            ),
            "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
        );
    }

    #[test]
    fn the_fragment_is_not_signed() {
        let plain = config_signature(
            SAMPLE_TICKET,
            "Wm3WZYTPz0wzccnW",
            1414587457,
            "http://mp.weixin.qq.com?params=value",
        );
        assert_eq!(
            config_signature(
                SAMPLE_TICKET,
                "Wm3WZYTPz0wzccnW",
                1414587457,
                "http://mp.weixin.qq.com?params=value#/share?x=1"
            ),
            plain
        );
        assert_eq!(
            signed_url("https://a.example/p?q=1#f#g"),
            "https://a.example/p?q=1"
        );
    }
}
