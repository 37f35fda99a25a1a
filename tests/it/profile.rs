//! The Mini Program's profile pickers over HTTP, against the simulator's `msg_sec_check`: a
//! nickname WeChat finds risky is refused (and audited), one it wants reviewed is stored and
//! flagged, one WeChat could not be asked about is stored as pending and settled by the
//! janitor's recheck; an avatar that is no picture, or too large, is refused; a chosen one is
//! squared, shrunk, stripped of its EXIF, served at a cacheable URL and becomes the `picture`
//! of userinfo and the `avatar` claim of the access token.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat};
use serde_json::{Value, json};
use wxauth::audit::{AuditFilter, AuditKind};
use wxauth::simulator::demo::MINI_PROGRAM_APPID as MP;

use crate::backend_tests;
use crate::harness::{ClientFixture, TestApp};
use crate::mini_program::{SECRET, sign_in};
use crate::oauth::{basic, verify_with_jwks};

/// A multipart body (boundary, bytes) of text fields and an optional file named `avatar`.
fn multipart(fields: &[(&str, &str)], avatar: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = format!("----wxauth{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((file_name, bytes)) = avatar {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\ncontent-disposition: form-data; name=\"avatar\"; filename=\"{file_name}\"\r\ncontent-type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

/// POST `/api/wechat/ma/profile`.
pub(crate) async fn save(
    app: &TestApp,
    session_id: &str,
    nickname: Option<&str>,
    avatar: Option<(&str, &[u8])>,
) -> (u16, Value) {
    let mut fields = vec![("sessionId", session_id)];
    if let Some(nickname) = nickname {
        fields.push(("nickname", nickname));
    }
    let (boundary, body) = multipart(&fields, avatar);
    let response = app
        .http
        .post(app.url("/api/wechat/ma/profile"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Send only the head of a profile upload declaring a body of `length` bytes, and read the
/// answer's status and head (the server must answer from the declared length alone).
async fn declared_upload(app: &TestApp, length: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /api/wechat/ma/profile HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("no answer to a declared oversize upload");
    let text = String::from_utf8_lossy(&seen).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A picture of `width`×`height` in `format`, a gradient so that it is not trivially small.
pub(crate) fn picture(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut bytes = Vec::new();
    DynamicImage::ImageRgb8(picture)
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

/// The marker hidden in the EXIF block of [`jpeg_with_exif`].
const EXIF_MARKER: &str = "GPS 39.9042N 116.4074E wxauth-exif-marker";

/// A JPEG carrying an EXIF (APP1) segment with a GPS-like text in it, as phones write them.
fn jpeg_with_exif(width: u32, height: u32) -> Vec<u8> {
    let plain = picture(width, height, ImageFormat::Jpeg);
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(EXIF_MARKER.as_bytes());
    let length = u16::try_from(payload.len() + 2).unwrap().to_be_bytes();
    let mut bytes = plain[..2].to_vec(); // SOI
    bytes.extend_from_slice(&[0xFF, 0xE1, length[0], length[1]]);
    bytes.extend_from_slice(&payload);
    bytes.extend_from_slice(&plain[2..]);
    bytes
}

/// A signed-in Mini Program user: the session id.
async fn session(app: &TestApp, user: &str) -> String {
    sign_in(app, user).await["sessionId"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn refusals(app: &TestApp) -> Vec<wxauth::audit::StoredEvent> {
    app.state
        .audit
        .list(&AuditFilter {
            kind: Some(AuditKind::NicknameRefused),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
}

/// The account of the Mini Program user `user`.
async fn account(app: &TestApp, user: &str) -> wxauth::users::Account {
    let (_, account) = app
        .state
        .users
        .find_identity_with_account(MP, &app.sim.openid(MP, user))
        .await
        .unwrap()
        .unwrap();
    account.unwrap()
}

backend_tests! {
    async fn a_risky_nickname_is_refused_and_audited(app: TestApp) {
        app.sim.set_text_verdict("赌博", "risky", 20006);
        let session = session(&app, "alice").await;
        let (status, body) = save(&app, &session, Some("在线赌博代理"), None).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error_description"].as_str().unwrap().contains("nickname cannot be used"), "{body}");
        assert_ne!(account(&app, "alice").await.nick_name.as_deref(), Some("在线赌博代理"));
        let refused = refusals(&app).await;
        assert_eq!(refused.len(), 1);
        let detail: Value = serde_json::from_str(&refused[0].detail).unwrap();
        assert_eq!(detail["label"], 20006);
        assert!(detail["trace_id"].as_str().is_some_and(|t| !t.is_empty()), "{detail}");
        assert!(!refused[0].detail.contains("赌博"), "the nickname itself is not audited");
        // A harmless one passes.
        let (status, body) = save(&app, &session, Some("小明"), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["nickName"], "小明");
        assert_eq!(body["nickNameStatus"], "passed");
        assert_eq!(app.sim.calls("/wxa/msg_sec_check"), 2);
    }

    async fn a_nickname_for_review_is_stored_and_flagged(app: TestApp) {
        app.sim.set_text_verdict("可疑", "review", 21000);
        let session = session(&app, "alice").await;
        let (status, body) = save(&app, &session, Some("可疑的名字"), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["nickNameStatus"], "review");
        assert!(body["message"].as_str().unwrap().contains("looked at"), "{body}");
        let stored = account(&app, "alice").await;
        assert_eq!(stored.nick_name.as_deref(), Some("可疑的名字"));
        assert_eq!(stored.nick_name_status.as_deref(), Some("review"));
    }

    async fn a_nickname_wechat_could_not_check_is_pending_until_the_recheck(app: TestApp) {
        let session = session(&app, "alice").await;
        // WeChat is down: every call answers HTTP 503, beyond the client's retries.
        app.sim.fail_http(1000);
        let (status, body) = save(&app, &session, Some("later risky 赌博"), None).await;
        app.sim.clear_faults();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["nickNameStatus"], "pending");
        assert!(body["message"].as_str().unwrap().contains("checked again"), "{body}");
        assert_eq!(account(&app, "alice").await.nick_name_status.as_deref(), Some("pending"));

        // Not due yet: nothing is asked.
        assert_eq!(app.state.profiles.recheck_pending().await.unwrap(), 0);
        // Due, and WeChat now finds it risky: the nickname goes, and the refusal is audited.
        app.sim.set_text_verdict("赌博", "risky", 20006);
        app.clock.advance(120);
        assert_eq!(app.state.profiles.recheck_pending().await.unwrap(), 1);
        let stored = account(&app, "alice").await;
        assert_eq!(stored.nick_name, None);
        assert_eq!(stored.nick_name_status, None);
        assert_eq!(refusals(&app).await.len(), 1);
        // Done: a second run has nothing to do.
        app.clock.advance(3600);
        assert_eq!(app.state.profiles.recheck_pending().await.unwrap(), 0);

        // Another pending one that passes on recheck loses its flag and stays.
        app.sim.fail_http(1000);
        let (status, body) = save(&app, &session, Some("小红"), None).await;
        app.sim.clear_faults();
        assert_eq!((status, &body["nickNameStatus"]), (200, &json!("pending")), "{body}");
        app.clock.advance(120);
        assert_eq!(app.state.profiles.recheck_pending().await.unwrap(), 1);
        let stored = account(&app, "alice").await;
        assert_eq!(stored.nick_name.as_deref(), Some("小红"));
        assert_eq!(stored.nick_name_status, None);
    }

    async fn a_chosen_avatar_is_squared_stripped_served_and_claimed(app: TestApp) {
        ClientFixture::new("mp-web", SECRET, &["flow"])
            .scopes(&["openid", "profile"])
            .register(&app)
            .await;
        let signed_in = sign_in(&app, "alice").await;
        let session = signed_in["sessionId"].as_str().unwrap();
        let upload = jpeg_with_exif(1000, 700);
        assert!(String::from_utf8_lossy(&upload).contains(EXIF_MARKER));
        let (status, body) = save(&app, session, Some("爱丽丝"), Some(("tmp_avatar.png", &upload))).await;
        assert_eq!(status, 200, "{body}");
        let url = body["avatarUrl"].as_str().unwrap().to_owned();
        assert!(url.starts_with(&app.url("/avatars/")) && url.ends_with(".jpg"), "{url}");

        let response = app.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "image/jpeg");
        let cache = response.headers()["cache-control"].to_str().unwrap().to_owned();
        assert!(cache.contains("immutable") && cache.contains("max-age=31536000"), "{cache}");
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        let served = response.bytes().await.unwrap();
        let decoded = image::load_from_memory(&served).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (640, 640));
        let text = String::from_utf8_lossy(&served);
        assert!(!text.contains(EXIF_MARKER) && !text.contains("Exif"), "metadata survived");
        // The URL names the content: the same URL never changes, so a cache may revalidate.
        let again = app.http.get(&url).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(again.status(), 304);
        let unknown = app.http.get(app.url(&format!("/avatars/{}.jpg", "0".repeat(64)))).send().await.unwrap();
        assert_eq!(unknown.status(), 404);

        // The tokens of this user carry the URL: the access token's avatar, userinfo's picture.
        let (status, tokens) = crate::mini_program::token(&app, &basic("mp-web", SECRET), &[
            ("grant_type", "flow"),
            ("appId", MP),
            ("openId", signed_in["openId"].as_str().unwrap()),
            ("unionId", signed_in["unionId"].as_str().unwrap_or("")),
            ("ticket", signed_in["ticket"].as_str().unwrap()),
            ("scope", "openid profile"),
        ]).await;
        assert_eq!(status, 200, "{tokens}");
        let access = tokens["access_token"].as_str().unwrap();
        let claims = verify_with_jwks(&app, access).await;
        assert_eq!(claims["avatar"], url.as_str(), "{claims}");
        let info: Value = app.http.get(app.url("/oauth/userinfo")).bearer_auth(access)
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(info["picture"], url.as_str(), "{info}");
        assert_eq!(info["name"], "爱丽丝");
    }

    async fn pictures_that_are_not_avatars_are_refused(app: TestApp) {
        let session = session(&app, "alice").await;
        // Named like a picture, but it is text.
        let (status, body) = save(&app, &session, None, Some(("avatar.png", b"<svg onload=alert(1)>"))).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error_description"].as_str().unwrap().contains("not a PNG, JPEG or WebP"), "{body}");
        // A GIF is a picture, but not one of the three.
        let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
        let (status, body) = save(&app, &session, None, Some(("avatar.png", gif))).await;
        assert_eq!(status, 400, "{body}");
        // WebP is accepted.
        let webp = picture(50, 80, ImageFormat::WebP);
        let (status, body) = save(&app, &session, None, Some(("avatar.webp", &webp))).await;
        assert_eq!(status, 200, "{body}");
        // Just over 1 MB, inside the request cap: the avatar's own limit answers.
        let mut big = picture(16, 16, ImageFormat::Png);
        big.resize(1024 * 1024 + 1, 0);
        let (status, body) = save(&app, &session, None, Some(("big.png", &big))).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error_description"].as_str().unwrap().contains("larger than 1 MB"), "{body}");
        // Far over: refused at the edge from its declared length, before any of it is read. The
        // head alone is sent: a client still writing 3 MB when the server answers and closes
        // sees the connection reset under it (here, reqwest's "broken pipe" on some machines).
        let (status, head) = declared_upload(&app, 3 * 1024 * 1024).await;
        assert_eq!(status, 413, "{head}");
        assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
        // Neither part, or no session: told what is missing.
        let (status, body) = save(&app, &session, None, None).await;
        assert_eq!(status, 400, "{body}");
        let (status, body) = save(&app, "no-such-session", Some("小明"), None).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error_description"].as_str().unwrap().contains("session"), "{body}");
        assert!(account(&app, "alice").await.avatar.is_some_and(|a| a.contains("/avatars/")));
    }

    async fn profile_saves_are_limited_per_user(app: TestApp) {
        let session = session(&app, "alice").await;
        for n in 0..10 {
            let (status, body) = save(&app, &session, Some(&format!("名字{n}")), None).await;
            assert_eq!(status, 200, "{body}");
        }
        let (status, body) = save(&app, &session, Some("再来一个"), None).await;
        assert_eq!(status, 429, "{body}");
        // A new wx.login does not start the count again.
        let fresh = crate::profile::session(&app, "alice").await;
        let (status, _) = save(&app, &fresh, Some("再来一个"), None).await;
        assert_eq!(status, 429);
        // Another user is not affected.
        let bob = crate::profile::session(&app, "bob").await;
        let (status, _) = save(&app, &bob, Some("鲍勃"), None).await;
        assert_eq!(status, 200);
    }
}

/// The simulator's `msg_sec_check` speaks WeChat's shape and errcodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_answers_msg_sec_check_as_wechat_does() {
    let app = TestApp::spawn(crate::harness::Backend::Sqlite)
        .await
        .unwrap();
    app.sim.set_text_verdict("广告", "review", 10001);
    let openid = app.sim.openid(MP, "alice");
    let token = app
        .state
        .wechat
        .app_access_token(&wxauth::wechat::AppId::parse(MP).unwrap())
        .await
        .unwrap();
    let call = |token: String, body: Value| {
        let http = app.http.clone();
        let url = format!("{}/wxa/msg_sec_check?access_token={token}", app.sim_base);
        async move {
            http.post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let answer = call(
        token.expose().to_owned(),
        json!({
            "content": "加微信看广告", "version": 2, "scene": 1, "openid": openid
        }),
    )
    .await;
    assert_eq!(answer["errcode"], 0, "{answer}");
    assert_eq!(
        answer["result"],
        json!({ "suggest": "review", "label": 10001 })
    );
    assert!(
        answer["detail"].as_array().is_some_and(|d| d.len() == 2),
        "{answer}"
    );
    assert!(answer["trace_id"].as_str().is_some_and(|t| !t.is_empty()));
    let pass = call(
        token.expose().to_owned(),
        json!({
            "content": "小明", "version": 2, "scene": 1, "openid": openid
        }),
    )
    .await;
    assert_eq!(pass["result"], json!({ "suggest": "pass", "label": 100 }));
    let bad_token = call(
        "not-a-token".into(),
        json!({
            "content": "小明", "version": 2, "scene": 1, "openid": openid
        }),
    )
    .await;
    assert_eq!(bad_token["errcode"], 40001, "{bad_token}");
    let no_content = call(
        token.expose().to_owned(),
        json!({ "version": 2, "scene": 1, "openid": openid }),
    )
    .await;
    assert_eq!(no_content["errcode"], 47001, "{no_content}");
    let stranger = call(
        token.expose().to_owned(),
        json!({
            "content": "小明", "version": 2, "scene": 1, "openid": "o-nobody"
        }),
    )
    .await;
    assert_eq!(stranger["errcode"], 40003, "{stranger}");
}
