//! The simulator's Mini Program codes: `wxa/getwxacodeunlimit` answers a real PNG (a pattern
//! drawn from the scene, with the scene, page and appid in a `tEXt` chunk) or WeChat's JSON
//! errors — 40001/42001 for the token, 40129 for a scene that is empty or longer than 32
//! characters, 41030 for a page that is not in the released version (when `check_path` is true,
//! its default) or that starts with `/`. `POST /__sim/wxacode/scan` "scans" an image (the raw
//! bytes as the body) and answers what WeChat would open: `{appid, page, scene}`.
//! `POST /__sim/ma/pages` sets a Mini Program's released pages.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Simulator;
use super::world::{ControlError, ErrcodeAnswer, SimAppKind};

/// The pages every simulated Mini Program's released version has, unless set otherwise.
pub const DEFAULT_PAGES: &[&str] = &["pages/index/index", "pages/device/approve"];
/// The `tEXt` keyword the simulator's codes carry what they open under.
const TEXT_KEYWORD: &str = "wxacode";
/// Modules per side of the drawn pattern.
const MODULES: u32 = 25;

pub(crate) fn api_routes() -> Router<Simulator> {
    Router::new().route("/wxa/getwxacodeunlimit", post(getwxacodeunlimit))
}

pub(crate) fn control_routes() -> Router<Simulator> {
    Router::new()
        .route("/__sim/wxacode/scan", post(scan))
        .route("/__sim/ma/pages", post(set_pages))
}

/// What a scanned code opens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScannedCode {
    pub appid: String,
    pub page: String,
    pub scene: String,
}

impl Simulator {
    /// Sets the pages of `appid`'s released version.
    pub fn set_mini_program_pages(&self, appid: &str, pages: Vec<String>) {
        self.world()
            .mini_program_pages
            .insert(appid.to_owned(), pages);
    }

    /// "Scans" a Mini Program code the simulator drew: what WeChat would open.
    pub fn scan_mini_program_code(&self, image: &[u8]) -> Result<ScannedCode, ControlError> {
        let decoder = png::Decoder::new(std::io::Cursor::new(image));
        let reader = decoder
            .read_info()
            .map_err(|e| ControlError(format!("not a PNG: {e}")))?;
        let text = reader
            .info()
            .uncompressed_latin1_text
            .iter()
            .find(|chunk| chunk.keyword == TEXT_KEYWORD)
            .map(|chunk| chunk.text.clone())
            .ok_or_else(|| ControlError("not a Mini Program code".to_owned()))?;
        serde_json::from_str(&text).map_err(|e| ControlError(format!("unreadable code: {e}")))
    }

    fn draw_code(
        &self,
        access_token: Option<&str>,
        body: &Value,
    ) -> Result<Vec<u8>, ErrcodeAnswer> {
        let now = self.now();
        let world = self.world();
        let token = world.check_token(access_token, "app", now)?;
        let app = world
            .apps
            .get(&token.appid)
            .ok_or_else(|| ErrcodeAnswer::new(40001, "invalid credential"))?;
        if app.kind != SimAppKind::MiniProgram {
            return Err(ErrcodeAnswer::new(48001, "api unauthorized"));
        }
        let scene = body
            .get("scene")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if scene.is_empty() || scene.chars().count() > 32 {
            return Err(ErrcodeAnswer::new(40129, "invalid scene"));
        }
        let page = body
            .get("page")
            .and_then(Value::as_str)
            .unwrap_or("pages/index/index");
        let check_path = body
            .get("check_path")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let released = world
            .mini_program_pages
            .get(&token.appid)
            .map(|pages| pages.iter().any(|p| p == page))
            .unwrap_or_else(|| DEFAULT_PAGES.contains(&page));
        if page.starts_with('/') || (check_path && !released) {
            return Err(ErrcodeAnswer::new(41030, "invalid page"));
        }
        let width = body
            .get("width")
            .and_then(Value::as_u64)
            .unwrap_or(430)
            .clamp(280, 1280) as u32;
        let opened = ScannedCode {
            appid: token.appid.clone(),
            page: page.to_owned(),
            scene: scene.to_owned(),
        };
        draw_png(&opened, width).map_err(|e| ErrcodeAnswer::new(-1, &format!("system error {e}")))
    }
}

/// A grey-scale PNG: a round badge of modules drawn from the scene's hash, with what it opens in
/// a `tEXt` chunk.
fn draw_png(opened: &ScannedCode, width: u32) -> Result<Vec<u8>, png::EncodingError> {
    let digest = Sha256::digest(format!("{}|{}|{}", opened.appid, opened.page, opened.scene));
    let bit = |i: u32| digest[(i / 8 % 32) as usize] >> (i % 8) & 1 == 1;
    let module = (width / (MODULES + 2)).max(1);
    let side = module * (MODULES + 2);
    let centre = f64::from(side) / 2.0;
    let radius = centre - f64::from(module) / 2.0;
    let mut pixels = vec![255u8; (side * side) as usize];
    for y in 0..side {
        for x in 0..side {
            let (mx, my) = (x / module, y / module);
            let dx = f64::from(x) - centre;
            let dy = f64::from(y) - centre;
            let r = (dx * dx + dy * dy).sqrt();
            let inside = r < radius;
            let ring = (radius - f64::from(module)..radius).contains(&r);
            let eye = [(7u32, 7u32), (MODULES - 8, 7), (7, MODULES - 8)]
                .iter()
                .find(|(ex, ey)| mx.abs_diff(*ex) <= 2 && my.abs_diff(*ey) <= 2)
                .map(|(ex, ey)| mx.abs_diff(*ex).max(my.abs_diff(*ey)));
            let dark = ring
                || match eye {
                    Some(distance) => distance != 1 && inside,
                    None => inside && bit(mx * 31 + my * 17 + mx * my),
                };
            if dark {
                pixels[(y * side + x) as usize] = 24;
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let text = serde_json::to_string(opened).unwrap_or_default();
        encoder.add_text_chunk(TEXT_KEYWORD.to_owned(), text)?;
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
    }
    Ok(out)
}

async fn getwxacodeunlimit(
    State(sim): State<Simulator>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let drawn = match serde_json::from_slice::<Value>(&body) {
        Ok(body) => sim.draw_code(q.get("access_token").map(String::as_str), &body),
        Err(_) => Err(ErrcodeAnswer::new(47001, "data format error")),
    };
    match drawn {
        Ok(png) => ([(header::CONTENT_TYPE, "image/png")], png).into_response(),
        Err(error) => {
            Json(json!({ "errcode": error.errcode, "errmsg": error.errmsg })).into_response()
        }
    }
}

async fn scan(State(sim): State<Simulator>, body: Bytes) -> Response {
    match sim.scan_mini_program_code(&body) {
        Ok(opened) => Json(opened).into_response(),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": error.to_string() })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct PagesRequest {
    appid: String,
    pages: Vec<String>,
}

async fn set_pages(State(sim): State<Simulator>, Json(r): Json<PagesRequest>) -> Response {
    sim.set_mini_program_pages(&r.appid, r.pages);
    Json(json!({ "ok": true })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::SimulatorConfig;

    #[test]
    fn a_drawn_code_scans_back_to_what_it_opens() {
        let opened = ScannedCode {
            appid: "wxd000000000000001".into(),
            page: "pages/device/approve".into(),
            scene: "BCDFGHJK".into(),
        };
        let png = draw_png(&opened, 430).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        let sim = Simulator::new(SimulatorConfig::default());
        assert_eq!(sim.scan_mini_program_code(&png).unwrap(), opened);
        assert!(sim.scan_mini_program_code(b"not a png").is_err());
    }
}
