//! Mini Program codes (小程序码): `wxa/getwxacodeunlimit`, which draws a code that opens `page`
//! with `scene` (at most 32 visible characters) for whoever scans it. WeChat answers the image
//! itself on success and its JSON error otherwise (41030: the page does not exist in the
//! published version; 40129: a bad scene; 40001/42001: the token).

use serde::Serialize;

use super::client::{Image, Replay, WeChatClient};
use super::error::WeChatError;
use super::types::{AccessToken, AppId};

/// The longest `scene` WeChat takes.
pub const SCENE_MAX_LEN: usize = 32;

/// Which build of the Mini Program the code opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvVersion {
    Release,
    Trial,
    Develop,
}

impl EnvVersion {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "release" => Some(Self::Release),
            "trial" => Some(Self::Trial),
            "develop" => Some(Self::Develop),
            _ => None,
        }
    }
}

/// What to draw.
#[derive(Debug, Clone, Serialize)]
pub struct CodeRequest<'a> {
    /// Handed to the page as `options.scene` (URL-encoded by WeChat).
    pub scene: &'a str,
    /// A page of the Mini Program, without a leading `/` (`pages/device/approve`).
    pub page: &'a str,
    /// Whether WeChat checks that `page` exists (only in the released version).
    pub check_path: bool,
    pub env_version: EnvVersion,
    /// Pixels, 280 to 1280.
    pub width: u32,
}

impl WeChatClient {
    /// Draws a Mini Program code with the app's access token.
    pub async fn mini_program_code(
        &self,
        appid: &AppId,
        access_token: &AccessToken,
        request: &CodeRequest<'_>,
    ) -> Result<Image, WeChatError> {
        if request.scene.is_empty()
            || request.scene.len() > SCENE_MAX_LEN
            || !request.scene.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(WeChatError::NotConfigured(format!(
                "a Mini Program code scene is 1 to {SCENE_MAX_LEN} visible characters"
            )));
        }
        self.post_json_for_image(
            "wxa/getwxacodeunlimit",
            appid.as_str(),
            &[("access_token", access_token.expose())],
            request,
            Replay::Safe,
        )
        .await
    }
}
