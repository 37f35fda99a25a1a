//! The Mini Program endpoints (the seed's WxUserController): `/api/wechat/ma/session`,
//! `/ma/user`, `/ma/phone`, and the client-authenticated `/api/wechat/user/by-unionid`; the
//! profile pickers' `/ma/profile` (multipart) with the avatars it serves at `/avatars/…`; and
//! `/ma/webview-ticket` for the pages a Mini Program opens in its `<web-view>`. JSON in and out,
//! camelCase as the seed's front ends send it. Answers that carry a session id or a ticket are
//! never cached; avatars are cached for good (their URL names their content).

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::no_store;
use crate::error::AppError;
use crate::login::mini_program::{EncryptedUserInfo, PhoneProof, SavedPhone};
use crate::login::profile::{AVATAR_PATH, ProfileUpload, SavedProfile};
use crate::login::{MiniProgramLogin, MiniProgramProfiles, WebViewSignIn};
use crate::oauth::login_tickets::WEB_VIEW_TICKET_TTL;
use crate::oauth::{ClientRegistry, introspection};
use crate::state::AppState;
use crate::users::avatars::is_content_hash;
use crate::users::{AvatarStore, NickNameStatus, UserRepo, WeChatIdentity};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/wechat/ma/session", post(session))
        .route("/api/wechat/ma/user", post(save_user))
        .route("/api/wechat/ma/phone", post(save_phone))
        .route("/api/wechat/ma/phone/known", get(known_phone))
        .route("/api/wechat/user/by-unionid", get(by_unionid))
        .route("/api/wechat/ma/webview-ticket", post(web_view_ticket))
        .route(&format!("{AVATAR_PATH}/{{file}}"), get(avatar))
}

/// The routes whose bodies may be larger than the others' (the application gives them a cap
/// of their own: [`super::edge::MAX_PROFILE_BODY_BYTES`]).
pub fn upload_routes() -> Router<AppState> {
    Router::new().route(super::edge::PROFILE_PATH, post(save_profile))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionRequest {
    app_id: String,
    code: String,
    /// The client that will redeem the ticket (recommended; without it any client with the
    /// `flow` grant may).
    client_id: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionResponse {
    open_id: String,
    union_id: Option<String>,
    is_new: bool,
    session_id: String,
    ticket: String,
}

/// getSessionResult: exchange a `wx.login` code.
#[utoipa::path(post, path = "/api/wechat/ma/session", tag = "mini_program",
    summary = "Exchange a wx.login code for a session and a one-time login ticket",
    request_body = SessionRequest,
    responses(
        (status = 200, description = "The identity, a session id and a login ticket to redeem at /oauth/token with grant_type=flow", body = SessionResponse),
        (status = 400, description = "A refused code or appid"),
    ),
    security(()),
)]
pub(crate) async fn session(
    State(login): State<MiniProgramLogin>,
    body: Result<Json<SessionRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(request) = body?;
    let (session, ticket) = login
        .start_session(&request.app_id, &request.code, request.client_id.as_deref())
        .await?;
    Ok(no_store(Json(SessionResponse {
        open_id: session.identity.open_id.into(),
        union_id: session.identity.union_id.map(Into::into),
        is_new: session.is_new,
        session_id: session.session_id,
        ticket,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SaveUserRequest {
    session_id: String,
    encrypted_data: String,
    iv: String,
    raw_data: Option<String>,
    signature: Option<String>,
}

/// The stored WeChat user, as the seed's WxUser (without internal ids).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserView {
    appid: String,
    open_id: String,
    union_id: Option<String>,
    nick_name: Option<String>,
    avatar_url: Option<String>,
    sex: Option<i32>,
    city: Option<String>,
    province: Option<String>,
    country: Option<String>,
    language: Option<String>,
    mobile: Option<String>,
}

impl From<WeChatIdentity> for UserView {
    fn from(i: WeChatIdentity) -> Self {
        Self {
            appid: i.appid,
            open_id: i.open_id,
            union_id: i.union_id,
            nick_name: i.nick_name,
            avatar_url: i.avatar_url,
            sex: i.sex,
            city: i.city,
            province: i.province,
            country: i.country,
            language: i.language,
            mobile: i.mobile,
        }
    }
}

/// saveMaUser: decrypt and store the profile.
async fn save_user(
    State(login): State<MiniProgramLogin>,
    body: Result<Json<SaveUserRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(r) = body?;
    let info = EncryptedUserInfo {
        encrypted_data: r.encrypted_data,
        iv: r.iv,
        raw_data: r.raw_data,
        signature: r.signature,
    };
    let user = login.save_user(&r.session_id, &info).await?;
    Ok(no_store(Json(UserView::from(user))))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhoneRequest {
    session_id: String,
    code: Option<String>,
    encrypted_data: Option<String>,
    iv: Option<String>,
    /// Answer from the number WeChat's code API verified for this account within
    /// `WXAUTH_PHONE_REUSE_DAYS`, if there is one, instead of paying for another exchange.
    #[serde(default)]
    reuse: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhoneResponse {
    phone_number: String,
    pure_phone_number: String,
    country_code: String,
    /// `code_api` or `encrypted_data`.
    source: &'static str,
    /// When WeChat verified the number (unix seconds).
    verified_at: i64,
    /// Whether the number was handed out again (no exchange was paid for).
    reused: bool,
}

impl From<SavedPhone> for PhoneResponse {
    fn from(p: SavedPhone) -> Self {
        Self {
            phone_number: p.phone.phone_number,
            pure_phone_number: p.phone.pure_phone_number,
            country_code: p.phone.country_code,
            source: p.source.as_str(),
            verified_at: p.verified_at,
            reused: p.reused,
        }
    }
}

/// The user's phone number, by the current `code` or the older encrypted data.
async fn save_phone(
    State(login): State<MiniProgramLogin>,
    body: Result<Json<PhoneRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(r) = body?;
    let proof = match (r.code, r.encrypted_data, r.iv) {
        (Some(code), None, None) => Some(PhoneProof::Code(code)),
        (None, Some(encrypted_data), Some(iv)) => {
            Some(PhoneProof::Encrypted { encrypted_data, iv })
        }
        (None, None, None) if r.reuse => None,
        _ => {
            return Err(AppError::BadRequest(
                "give either code (getPhoneNumber's code) or encryptedData and iv".into(),
            ));
        }
    };
    let phone = login
        .save_phone(&r.session_id, proof.as_ref(), r.reuse)
        .await?;
    Ok(no_store(Json(PhoneResponse::from(phone))))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KnownPhoneQuery {
    session_id: String,
}

/// Whether `/ma/phone` with `reuse: true` would answer without a new code, so that the Mini
/// Program can skip showing the getPhoneNumber button.
async fn known_phone(
    State(login): State<MiniProgramLogin>,
    query: Result<Query<KnownPhoneQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(query) = query?;
    let known = login.known_phone(&query.session_id).await?;
    Ok(no_store(Json(match known {
        Some(verified_at) => serde_json::json!({ "known": true, "verifiedAt": verified_at }),
        None => serde_json::json!({ "known": false }),
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ByUnionIdQuery {
    union_id: String,
}

/// getUserByUnionid: whether an account with this unionid exists. Resource-server clients only
/// (`client create --introspect`), so that nobody can enumerate users, not even with a secret
/// shipped in a Mini Program's code.
async fn by_unionid(
    State(clients): State<ClientRegistry>,
    State(users): State<Arc<dyn UserRepo>>,
    headers: HeaderMap,
    query: Result<Query<ByUnionIdQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    introspection::resource_server(&clients, authorization).await?;
    let Query(query) = query?;
    let exists = users
        .union_exists(query.union_id.trim())
        .await
        .map_err(AppError::internal)?;
    Ok(no_store(Json(serde_json::json!({ "exists": exists }))))
}

/// `/ma/profile`'s multipart form, read: `sessionId`, `nickname`, `avatar` (a file).
async fn read_profile_form(mut form: Multipart) -> Result<(String, ProfileUpload), AppError> {
    let malformed = |e: axum::extract::multipart::MultipartError| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::BadRequest("the avatar is larger than 1 MB".into())
        }
        _ => AppError::BadRequest(format!("malformed multipart form: {}", e.body_text())),
    };
    let mut session_id = None;
    let mut upload = ProfileUpload::default();
    while let Some(field) = form.next_field().await.map_err(malformed)? {
        match field.name() {
            Some("sessionId") => session_id = Some(field.text().await.map_err(malformed)?),
            Some("nickname") => upload.nick_name = Some(field.text().await.map_err(malformed)?),
            Some("avatar") => {
                upload.avatar = Some(field.bytes().await.map_err(malformed)?.to_vec())
            }
            // Unknown fields are skipped, as unknown JSON keys are.
            _ => {}
        }
    }
    let session_id = session_id
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| AppError::BadRequest("sessionId is required".into()))?;
    Ok((session_id, upload))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProfileResponse {
    nick_name: Option<String>,
    /// `passed`, `review` (stored, flagged for a human look) or `pending` (WeChat could not
    /// check it now; it is shown and checked again later). Absent when no nickname was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    nick_name_status: Option<&'static str>,
    avatar_url: Option<String>,
    /// What the page may tell the person about the nickname.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
}

impl From<SavedProfile> for ProfileResponse {
    fn from(saved: SavedProfile) -> Self {
        let message = match saved.nick_name_status {
            Some(NickNameStatus::Pending) => Some(
                "WeChat could not check the nickname just now: it is saved and will be checked again shortly",
            ),
            Some(NickNameStatus::Review) => {
                Some("the nickname is saved and will be looked at by a person")
            }
            _ => None,
        };
        Self {
            nick_name: saved.account.nick_name,
            nick_name_status: saved.nick_name_status.map(NickNameStatus::as_str),
            avatar_url: saved.account.avatar,
            message,
        }
    }
}

/// The profile pickers: the nickname (checked with WeChat) and the avatar (re-encoded).
async fn save_profile(
    State(profiles): State<MiniProgramProfiles>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, AppError> {
    let form = form.map_err(|e| {
        AppError::BadRequest(format!(
            "send a multipart/form-data body: {}",
            e.body_text()
        ))
    })?;
    let (session_id, upload) = read_profile_form(form).await?;
    let saved = profiles.save(&session_id, upload).await?;
    Ok(no_store(Json(ProfileResponse::from(saved))))
}

/// An avatar, by the hash of its bytes: cached for good, revalidated by its ETag.
async fn avatar(
    State(avatars): State<Arc<dyn AvatarStore>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let not_found = || AppError::NotFound("no such avatar".into());
    let hash = file
        .strip_suffix(".jpg")
        .filter(|hash| is_content_hash(hash))
        .ok_or_else(not_found)?;
    let etag = format!("\"{hash}\"");
    let cached = |mut response: Response| {
        let h = response.headers_mut();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
        if let Ok(value) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, value);
        }
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    };
    let stored = avatars
        .get(hash)
        .await
        .map_err(AppError::internal)?
        .ok_or_else(not_found)?;
    let revalidated = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if revalidated {
        return Ok(cached(StatusCode::NOT_MODIFIED.into_response()));
    }
    let content_type = HeaderValue::from_str(&stored.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok(cached(
        ([(header::CONTENT_TYPE, content_type)], stored.bytes).into_response(),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebViewTicketRequest {
    session_id: String,
    client_id: String,
}

/// A one-time ticket for the page the Mini Program opens in its `<web-view>`.
async fn web_view_ticket(
    State(web_view): State<WebViewSignIn>,
    body: Result<Json<WebViewTicketRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(request) = body?;
    let ticket = web_view
        .mint(&request.session_id, &request.client_id)
        .await?;
    Ok(no_store(Json(serde_json::json!({
        "ticket": ticket,
        "expiresIn": WEB_VIEW_TICKET_TTL,
    }))))
}
