//! Content security: `wxa/msg_sec_check` version 2, which asks WeChat whether a text a user
//! typed (here: a nickname from `<input type="nickname">`) may be shown. Version 2 names the
//! user (`openid`, who must have used the Mini Program within the last two hours) and the scene
//! (1: profile). WeChat's answer is `result.suggest` (`pass`, `review` or `risky`) and
//! `result.label` (100 normal, 10001 advertising, 20001 politics, 20002 porn, 20003 abuse,
//! 20006 crime, 20008 fraud, 20012 vulgar, 20013 copyright, 21000 other), with the per-strategy
//! `detail` and a `trace_id`; wxauth keeps the verdict, the label and the trace id.

use serde::{Deserialize, Serialize};

use super::client::{Replay, WeChatClient};
use super::error::WeChatError;
use super::types::{AccessToken, AppId};

/// `scene` 1: the text is part of a user's profile (nickname, signature).
pub const SCENE_PROFILE: u8 = 1;

/// What WeChat suggests doing with a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suggestion {
    /// Nothing wrong found.
    Pass,
    /// Show it, but have a person look.
    Review,
    /// Do not show it.
    Risky,
}

/// WeChat's verdict on a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextVerdict {
    pub suggestion: Suggestion,
    /// WeChat's label (100: normal).
    pub label: i64,
    /// WeChat's trace id, to quote when asking WeChat about a verdict.
    pub trace_id: String,
}

#[derive(Serialize)]
struct MsgSecCheckRequest<'a> {
    content: &'a str,
    version: u8,
    scene: u8,
    openid: &'a str,
}

#[derive(Deserialize)]
struct MsgSecCheckResult {
    suggest: String,
    #[serde(default)]
    label: i64,
}

#[derive(Deserialize)]
struct MsgSecCheckResponse {
    result: MsgSecCheckResult,
    #[serde(default)]
    trace_id: String,
}

impl WeChatClient {
    /// `wxa/msg_sec_check` (version 2) on `content`, typed by `openid` in Mini Program `appid`.
    pub async fn msg_sec_check(
        &self,
        appid: &AppId,
        access_token: &AccessToken,
        openid: &str,
        content: &str,
        scene: u8,
    ) -> Result<TextVerdict, WeChatError> {
        let response: MsgSecCheckResponse = self
            .post_json(
                "wxa/msg_sec_check",
                appid.as_str(),
                &[("access_token", access_token.expose())],
                &MsgSecCheckRequest {
                    content,
                    version: 2,
                    scene,
                    openid,
                },
                Replay::Safe,
            )
            .await?;
        let suggestion = match response.result.suggest.as_str() {
            "pass" => Suggestion::Pass,
            "review" => Suggestion::Review,
            "risky" => Suggestion::Risky,
            other => {
                return Err(WeChatError::Decode(format!(
                    "msg_sec_check suggested {other:?}"
                )));
            }
        };
        Ok(TextVerdict {
            suggestion,
            label: response.result.label,
            trace_id: response.trace_id,
        })
    }
}
