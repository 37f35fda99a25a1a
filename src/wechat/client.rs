//! The one HTTP client wxauth uses to talk to WeChat.
//!
//! Every call goes through [`WeChatClient::get`] or [`WeChatClient::post_json`], which
//! 1. build the URL from an injected base (so tests and `wxauth dev` point at the simulator) with
//!    every query value form-encoded (a js_code holding `+ / =` arrives intact);
//! 2. check the HTTP status, then WeChat's `errcode`, then decode into the typed response;
//! 3. retry errcode -1 and transport failures with bounded exponential backoff. Calls that consume
//!    a single-use code are only replayed when the request certainly did not reach WeChat (connect
//!    failure) or WeChat said busy, because replaying a consumed code would turn an outage into a
//!    misleading "code already used".
//!
//! URLs carry secrets and codes in their query, so they are never logged: reqwest errors are
//! stripped of their URL and log lines name only the path.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::error::WeChatError;

/// `https://api.weixin.qq.com`, WeChat's API host.
pub const DEFAULT_API_BASE: &str = "https://api.weixin.qq.com";
/// `https://open.weixin.qq.com`, the host of the authorize pages.
pub const DEFAULT_OPEN_BASE: &str = "https://open.weixin.qq.com";

/// How often and how patiently a failed call is retried.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub max_attempts: u32,
    /// Pause before the second attempt; doubled each time up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// No retry starts after this much time has passed since the first attempt.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts, pausing 200 ms then 400 ms: a busy WeChat gets ~2 s to recover.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_millis(800),
            budget: Duration::from_secs(12),
        }
    }
}

/// Where WeChat is and how long to wait for it.
#[derive(Clone, Debug)]
pub struct WeChatClientConfig {
    pub api_base: Url,
    pub open_base: Url,
    pub connect_timeout: Duration,
    /// Whole-request timeout for one attempt.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

impl WeChatClientConfig {
    /// Production timeouts (connect 3 s, request 10 s) against the given bases.
    pub fn new(api_base: Url, open_base: Url) -> Self {
        Self {
            api_base,
            open_base,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

/// Whether a call may be sent again after a failure whose fate is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Reads and token fetches: any transient failure may be retried.
    Safe,
    /// Consumes a single-use code: retry only busy (-1) and failures to connect.
    OnlyIfNotDelivered,
}

/// The shared WeChat HTTP client; cheap to clone.
#[derive(Clone, Debug)]
pub struct WeChatClient {
    http: reqwest::Client,
    api_base: Url,
    open_base: Url,
    retry: RetryPolicy,
    /// Per-app, per-day counts for the admin's view (see [`super::call_ledger`]).
    counts: Option<super::call_ledger::CallCounts>,
}

/// One failed attempt, and whether the request may have reached WeChat.
struct AttemptError {
    error: WeChatError,
    maybe_delivered: bool,
}

impl WeChatClient {
    pub fn new(config: WeChatClientConfig) -> Result<Self, WeChatError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("wxauth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WeChatError::NotConfigured(format!("http client: {e}")))?;
        Ok(Self {
            http,
            api_base: config.api_base,
            open_base: config.open_base,
            retry: config.retry,
            counts: None,
        })
    }

    /// Count every call per app and day into `counts` too.
    pub fn count_into(&mut self, counts: super::call_ledger::CallCounts) {
        self.counts = Some(counts);
    }

    pub fn api_base(&self) -> &Url {
        &self.api_base
    }

    pub fn open_base(&self) -> &Url {
        &self.open_base
    }

    /// `GET {api_base}/{path}?{query}`, a call made for `appid` (counted under it).
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        appid: &str,
        query: &[(&str, &str)],
        replay: Replay,
    ) -> Result<T, WeChatError> {
        let url = build_url(&self.api_base, path, query)?;
        self.with_retries(path, appid, replay, decode_body::<T>, || {
            self.http.get(url.clone())
        })
        .await
    }

    /// `POST {api_base}/{path}?{query}` with a JSON body, a call made for `appid`.
    pub(crate) async fn post_json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        appid: &str,
        query: &[(&str, &str)],
        body: &B,
        replay: Replay,
    ) -> Result<T, WeChatError> {
        let url = build_url(&self.api_base, path, query)?;
        let body = serde_json::to_vec(body).map_err(|e| WeChatError::Decode(e.to_string()))?;
        self.with_retries(path, appid, replay, decode_body::<T>, || {
            self.http
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        })
        .await
    }

    /// `POST {api_base}/{path}?{query}` with a JSON body, for an API that answers an image on
    /// success and WeChat's JSON error otherwise (`wxa/getwxacodeunlimit`).
    pub(crate) async fn post_json_for_image<B: Serialize + ?Sized>(
        &self,
        path: &str,
        appid: &str,
        query: &[(&str, &str)],
        body: &B,
        replay: Replay,
    ) -> Result<Image, WeChatError> {
        let url = build_url(&self.api_base, path, query)?;
        let body = serde_json::to_vec(body).map_err(|e| WeChatError::Decode(e.to_string()))?;
        self.with_retries(path, appid, replay, decode_image, || {
            self.http
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        })
        .await
    }

    async fn with_retries<T>(
        &self,
        path: &str,
        appid: &str,
        replay: Replay,
        decode: fn(&[u8]) -> Result<T, WeChatError>,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<T, WeChatError> {
        let started = Instant::now();
        let mut backoff = self.retry.initial_backoff;
        let mut attempt = 1u32;
        loop {
            let sent = Instant::now();
            let result = send_once(request(), decode).await;
            count_call(path, appid, sent, result.as_ref().err().map(|f| &f.error));
            if let Some(counts) = &self.counts {
                counts.record(appid, result.is_err());
            }
            let failure = match result {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            let retryable = failure.error.is_transient()
                && (replay == Replay::Safe
                    || matches!(failure.error, WeChatError::Busy)
                    || !failure.maybe_delivered);
            let in_budget = started.elapsed() + backoff < self.retry.budget;
            if !retryable || attempt >= self.retry.max_attempts || !in_budget {
                tracing::warn!(path, attempt, error = %failure.error, "WeChat call failed");
                return Err(failure.error);
            }
            tracing::debug!(path, attempt, error = %failure.error, "retrying WeChat call");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.retry.max_backoff);
            attempt += 1;
        }
    }
}

/// Count one attempt in the WeChat metrics: by API path (a fixed set), appid (registered apps
/// only) and errcode (`0` for success).
fn count_call(path: &str, appid: &str, sent: Instant, error: Option<&WeChatError>) {
    let errcode = match error {
        None => "0".to_owned(),
        Some(e) => match e.errcode() {
            Some(code) => code.to_string(),
            None => match e {
                WeChatError::HttpStatus(_) => "http".to_owned(),
                WeChatError::Unreachable(_) => "unreachable".to_owned(),
                _ => "other".to_owned(),
            },
        },
    };
    metrics::counter!(
        crate::metrics::WECHAT_CALLS,
        "api" => path.to_owned(),
        "appid" => appid.to_owned(),
        "errcode" => errcode
    )
    .increment(1);
    metrics::histogram!(crate::metrics::WECHAT_DURATION, "api" => path.to_owned())
        .record(sent.elapsed().as_secs_f64());
}

async fn send_once<T>(
    request: reqwest::RequestBuilder,
    decode: fn(&[u8]) -> Result<T, WeChatError>,
) -> Result<T, AttemptError> {
    let response = request.send().await.map_err(|error| AttemptError {
        maybe_delivered: !error.is_connect(),
        error: WeChatError::Unreachable(describe_transport_error(error)),
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(AttemptError {
            error: WeChatError::HttpStatus(status.as_u16()),
            maybe_delivered: true,
        });
    }
    let bytes = response.bytes().await.map_err(|error| AttemptError {
        error: WeChatError::Unreachable(describe_transport_error(error)),
        maybe_delivered: true,
    })?;
    decode(&bytes).map_err(|error| AttemptError {
        error,
        maybe_delivered: true,
    })
}

/// A transport error's description without its URL (which holds secrets).
fn describe_transport_error(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "transport"
    };
    format!("{kind}: {}", error.without_url())
}

/// Checks `errcode` (absent or 0 is success), then decodes the typed response.
pub(crate) fn decode_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WeChatError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| WeChatError::Decode(format!("not JSON: {e}")))?;
    let errcode = value.get("errcode").and_then(serde_json::Value::as_i64);
    if let Some(code) = errcode.filter(|code| *code != 0) {
        let errmsg = value
            .get("errmsg")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        return Err(WeChatError::from_errcode(code, errmsg));
    }
    serde_json::from_value(value).map_err(|e| WeChatError::Decode(e.to_string()))
}

/// An image WeChat answered (a Mini Program code).
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    pub bytes: Vec<u8>,
    /// `image/png` or `image/jpeg`, from the image's own signature.
    pub content_type: &'static str,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_SIGNATURE: &[u8] = b"\xff\xd8\xff";

/// An image by its signature; otherwise WeChat's JSON error (its `errcode`), or a decode error.
pub(crate) fn decode_image(bytes: &[u8]) -> Result<Image, WeChatError> {
    let content_type = if bytes.starts_with(PNG_SIGNATURE) {
        "image/png"
    } else if bytes.starts_with(JPEG_SIGNATURE) {
        "image/jpeg"
    } else {
        decode_body::<serde_json::Value>(bytes)?;
        return Err(WeChatError::Decode(
            "neither an image nor an error".to_owned(),
        ));
    };
    Ok(Image {
        bytes: bytes.to_vec(),
        content_type,
    })
}

/// `{base}/{path}?k=v&…` with every value form-urlencoded.
pub(crate) fn build_url(
    base: &Url,
    path: &str,
    query: &[(&str, &str)],
) -> Result<Url, WeChatError> {
    let joined = format!(
        "{}/{}",
        base.as_str().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    let mut url = Url::parse(&joined).map_err(|e| WeChatError::NotConfigured(e.to_string()))?;
    if !query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (key, value) in query {
            pairs.append_pair(key, value);
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_survive_plus_slash_equals() {
        let base = Url::parse("https://api.weixin.qq.com").unwrap();
        let url = build_url(
            &base,
            "sns/jscode2session",
            &[("js_code", "a+b/c=d&e f"), ("appid", "wx4f4bc4dec97d474b")],
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.weixin.qq.com/sns/jscode2session?js_code=a%2Bb%2Fc%3Dd%26e+f&appid=wx4f4bc4dec97d474b"
        );
        let decoded: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(decoded[0].1, "a+b/c=d&e f");
    }

    #[test]
    fn base_with_path_prefix_and_trailing_slash() {
        let base = Url::parse("http://127.0.0.1:9000/wechat/").unwrap();
        let url = build_url(&base, "/cgi-bin/token", &[]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9000/wechat/cgi-bin/token");
    }

    #[derive(serde::Deserialize, Debug)]
    struct Sample {
        openid: String,
    }

    #[test]
    fn errcode_is_checked_before_decoding() {
        let err =
            decode_body::<Sample>(br#"{"errcode":40163,"errmsg":"code been used"}"#).unwrap_err();
        assert!(matches!(err, WeChatError::CodeUsed));
        let err = decode_body::<Sample>(br#"{"errcode":-1,"errmsg":"system error"}"#).unwrap_err();
        assert!(matches!(err, WeChatError::Busy));
        let ok = decode_body::<Sample>(br#"{"errcode":0,"errmsg":"ok","openid":"o1"}"#).unwrap();
        assert_eq!(ok.openid, "o1");
        let ok = decode_body::<Sample>(br#"{"openid":"o2"}"#).unwrap();
        assert_eq!(ok.openid, "o2");
        assert!(matches!(
            decode_body::<Sample>(b"<html>"),
            Err(WeChatError::Decode(_))
        ));
        assert!(matches!(
            decode_body::<Sample>(b"{}"),
            Err(WeChatError::Decode(_))
        ));
    }
}
