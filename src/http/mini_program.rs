//! The Mini Program endpoints (the seed's WxUserController): `/api/wechat/ma/session`,
//! `/ma/user`, `/ma/phone`, and the client-authenticated `/api/wechat/user/by-unionid`. JSON in
//! and out, camelCase as the seed's front ends send it. Answers that carry a session id or a
//! ticket are never cached.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::no_store;
use crate::error::AppError;
use crate::login::MiniProgramLogin;
use crate::login::mini_program::{EncryptedUserInfo, PhoneNumber, PhoneProof};
use crate::oauth::{ClientRegistry, introspection};
use crate::state::AppState;
use crate::users::{UserRepo, WeChatIdentity};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/wechat/ma/session", post(session))
        .route("/api/wechat/ma/user", post(save_user))
        .route("/api/wechat/ma/phone", post(save_phone))
        .route("/api/wechat/user/by-unionid", get(by_unionid))
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
        open_id: session.open_id,
        union_id: session.union_id,
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
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhoneResponse {
    phone_number: String,
    pure_phone_number: String,
    country_code: String,
}

impl From<PhoneNumber> for PhoneResponse {
    fn from(p: PhoneNumber) -> Self {
        Self {
            phone_number: p.phone_number,
            pure_phone_number: p.pure_phone_number,
            country_code: p.country_code,
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
        (Some(code), None, None) => PhoneProof::Code(code),
        (None, Some(encrypted_data), Some(iv)) => PhoneProof::Encrypted { encrypted_data, iv },
        _ => {
            return Err(AppError::BadRequest(
                "give either code (getPhoneNumber's code) or encryptedData and iv".into(),
            ));
        }
    };
    let phone = login.save_phone(&r.session_id, &proof).await?;
    Ok(no_store(Json(PhoneResponse::from(phone))))
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
