//! The simulator's HTTP surface: WeChat's API paths (api.weixin.qq.com), the authorize pages
//! (open.weixin.qq.com) with a small simulated-user picker, and the `/__sim/` control API. A
//! middleware counts every non-control call per path and applies the fault plan to API calls.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::Simulator;
use super::world::{
    AVATAR_PATH, CallFault, ErrcodeAnswer, FaultPlan, SimAppKind, SimUser, TextVerdictRule,
    random_alnum,
};

type Params = Query<HashMap<String, String>>;

const USER_COOKIE: &str = "wxsim_user";

pub(crate) fn router(sim: Simulator) -> Router {
    let api = Router::new()
        .route("/sns/jscode2session", get(jscode2session))
        .route("/cgi-bin/token", get(cgi_token))
        .route("/cgi-bin/stable_token", post(stable_token))
        .route("/wxa/business/getuserphonenumber", post(phone_number))
        .route("/wxa/msg_sec_check", post(msg_sec_check))
        .route("/sns/oauth2/access_token", get(web_access_token))
        .route("/sns/oauth2/refresh_token", get(web_refresh_token))
        .route("/sns/userinfo", get(web_user_info))
        .route(
            "/cgi-bin/component/api_component_token",
            post(component_token),
        )
        .route("/cgi-bin/component/api_query_auth", post(query_auth))
        .route(
            "/cgi-bin/component/api_authorizer_token",
            post(authorizer_token),
        )
        .route(
            "/sns/oauth2/component/access_token",
            get(component_web_access_token),
        )
        .route("/cgi-bin/ticket/getticket", get(super::jssdk::getticket))
        .route("/connect/oauth2/authorize", get(authorize))
        .route("/connect/qrconnect", get(qrconnect))
        .merge(super::followers::api_routes())
        .merge(super::wxacode::api_routes());
    let control = Router::new()
        .merge(super::followers::control_routes())
        .merge(super::wxacode::control_routes())
        .route("/__sim/apps", get(list_apps).post(add_app))
        .route("/__sim/users", get(list_users).post(add_user))
        .route("/__sim/codes/js", post(mint_js_code))
        .route("/__sim/codes/web", post(mint_web_code))
        .route("/__sim/codes/phone", post(mint_phone_code))
        .route("/__sim/ma/userinfo", post(mini_program_user_info))
        .route("/__sim/ma/phone", post(mini_program_phone_data))
        .route("/__sim/component/authorize", post(authorize_component))
        .route("/__sim/component/ticket", post(component_ticket))
        .route(
            "/__sim/faults",
            get(get_faults).put(put_faults).delete(clear_faults),
        )
        .route("/__sim/counters", get(get_counters).delete(reset_counters))
        .route(
            "/__sim/credentials/check",
            post(super::jssdk::check_credential),
        )
        .route("/__sim/jssdk/verify", post(super::jssdk::verify_wx_config))
        .route(
            "/__sim/sec/verdicts",
            get(get_text_verdicts)
                .put(put_text_verdicts)
                .delete(clear_text_verdicts),
        )
        .route("/__sim/clock", get(get_clock))
        .route("/__sim/clock/advance", post(advance_clock))
        .route(
            "/__sim/choose",
            get(choose_user).post(create_and_choose_user),
        )
        .route("/__sim/logout", get(logout))
        .route(&format!("{AVATAR_PATH}/{{id}}"), get(avatar));
    api.merge(control)
        .layer(middleware::from_fn_with_state(
            sim.clone(),
            count_and_inject,
        ))
        .with_state(sim)
}

// ---------- counting and faults ----------

async fn count_and_inject(State(sim): State<Simulator>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/__sim") {
        return next.run(request).await;
    }
    let is_page = path.starts_with("/connect/");
    if is_token_fetch(&path) {
        hold_while_asked(&sim).await;
    }
    let fault = sim.world().enter_call(&path, !is_page);
    match fault {
        CallFault::None(latency) => {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            next.run(request).await
        }
        CallFault::Busy(latency) => {
            tokio::time::sleep(latency).await;
            wechat_error(&ErrcodeAnswer::new(-1, "system error"))
        }
        CallFault::HttpError(latency) => {
            tokio::time::sleep(latency).await;
            (StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable").into_response()
        }
        CallFault::Hang(duration) => {
            tokio::time::sleep(duration).await;
            wechat_error(&ErrcodeAnswer::new(-1, "system error"))
        }
    }
}

/// The paths that hand out upstream tokens.
fn is_token_fetch(path: &str) -> bool {
    matches!(
        path,
        "/cgi-bin/token"
            | "/cgi-bin/stable_token"
            | "/cgi-bin/component/api_component_token"
            | "/cgi-bin/component/api_authorizer_token"
            | "/cgi-bin/ticket/getticket"
    )
}

/// While the fault plan holds token fetches, wait (at most `hang_duration`).
async fn hold_while_asked(sim: &Simulator) {
    let limit = sim.world().rules.hang_duration;
    let started = std::time::Instant::now();
    while sim.world().faults.hold_token_fetches && started.elapsed() < limit {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

// ---------- WeChat API ----------

/// WeChat answers errors with HTTP 200 and an errcode.
fn wechat_error(error: &ErrcodeAnswer) -> Response {
    Json(json!({ "errcode": error.errcode, "errmsg": error.errmsg })).into_response()
}

fn answer(result: Result<Value, ErrcodeAnswer>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(error) => wechat_error(&error),
    }
}

fn param<'a>(
    params: &'a HashMap<String, String>,
    name: &str,
    errcode: i64,
) -> Result<&'a str, ErrcodeAnswer> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ErrcodeAnswer::new(errcode, &format!("{name} missing")))
}

fn json_body(body: &Bytes) -> Result<Value, ErrcodeAnswer> {
    serde_json::from_slice(body).map_err(|_| ErrcodeAnswer::new(47001, "data format error"))
}

fn field<'a>(body: &'a Value, name: &str, errcode: i64) -> Result<&'a str, ErrcodeAnswer> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ErrcodeAnswer::new(errcode, &format!("{name} missing")))
}

fn grant_type(params: &HashMap<String, String>, expected: &str) -> Result<(), ErrcodeAnswer> {
    if param(params, "grant_type", 41003)? == expected {
        Ok(())
    } else {
        Err(ErrcodeAnswer::new(40002, "invalid grant_type"))
    }
}

async fn jscode2session(State(sim): State<Simulator>, Query(q): Params) -> Response {
    let now = sim.now();
    answer((|| {
        let appid = param(&q, "appid", 41002)?;
        let secret = param(&q, "secret", 41004)?;
        let code = param(&q, "js_code", 41008)?;
        grant_type(&q, "authorization_code")?;
        sim.world().code_to_session(appid, secret, code, now)
    })())
}

async fn cgi_token(State(sim): State<Simulator>, Query(q): Params) -> Response {
    let now = sim.now();
    answer((|| {
        grant_type(&q, "client_credential")?;
        let appid = param(&q, "appid", 41002)?;
        let secret = param(&q, "secret", 41004)?;
        let token = sim.world().app_token(appid, secret, now)?;
        Ok(json!({ "access_token": token.token, "expires_in": token.expires_in }))
    })())
}

async fn stable_token(State(sim): State<Simulator>, body: Bytes) -> Response {
    let now = sim.now();
    answer((|| {
        let body = json_body(&body)?;
        if field(&body, "grant_type", 41003)? != "client_credential" {
            return Err(ErrcodeAnswer::new(40002, "invalid grant_type"));
        }
        let appid = field(&body, "appid", 41002)?;
        let secret = field(&body, "secret", 41004)?;
        let force = body
            .get("force_refresh")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let token = sim.world().stable_token(appid, secret, force, now)?;
        Ok(json!({ "access_token": token.token, "expires_in": token.expires_in }))
    })())
}

async fn phone_number(State(sim): State<Simulator>, Query(q): Params, body: Bytes) -> Response {
    let now = sim.now();
    answer((|| {
        let body = json_body(&body)?;
        let code = field(&body, "code", 41008)?;
        sim.world()
            .phone_number(q.get("access_token").map(String::as_str), code, now)
    })())
}

async fn msg_sec_check(State(sim): State<Simulator>, Query(q): Params, body: Bytes) -> Response {
    let now = sim.now();
    answer((|| {
        let body = json_body(&body)?;
        sim.world()
            .msg_sec_check(q.get("access_token").map(String::as_str), &body, now)
    })())
}

async fn web_access_token(State(sim): State<Simulator>, Query(q): Params) -> Response {
    let now = sim.now();
    answer((|| {
        let appid = param(&q, "appid", 41002)?;
        let secret = param(&q, "secret", 41004)?;
        let code = param(&q, "code", 41008)?;
        grant_type(&q, "authorization_code")?;
        sim.world().web_access_token(appid, secret, code, now)
    })())
}

async fn web_refresh_token(State(sim): State<Simulator>, Query(q): Params) -> Response {
    let now = sim.now();
    answer((|| {
        let appid = param(&q, "appid", 41002)?;
        grant_type(&q, "refresh_token")?;
        let refresh = param(&q, "refresh_token", 41003)?;
        sim.world().web_refresh_token(appid, refresh, now)
    })())
}

async fn web_user_info(State(sim): State<Simulator>, Query(q): Params) -> Response {
    let now = sim.now();
    answer((|| {
        let openid = param(&q, "openid", 41009)?;
        sim.world()
            .web_user_info(q.get("access_token").map(String::as_str), openid, now)
    })())
}

async fn component_token(State(sim): State<Simulator>, body: Bytes) -> Response {
    let now = sim.now();
    answer((|| {
        let body = json_body(&body)?;
        let appid = field(&body, "component_appid", 41002)?;
        let secret = field(&body, "component_appsecret", 41004)?;
        let ticket = field(&body, "component_verify_ticket", 61006)?;
        let token = sim.world().component_token(appid, secret, ticket, now)?;
        Ok(json!({ "component_access_token": token.token, "expires_in": token.expires_in }))
    })())
}

async fn query_auth(State(sim): State<Simulator>, Query(q): Params, body: Bytes) -> Response {
    let now = sim.now();
    answer((|| {
        let body = json_body(&body)?;
        let component_appid = field(&body, "component_appid", 41002)?;
        let code = field(&body, "authorization_code", 61010)?;
        sim.world().query_auth(
            q.get("component_access_token").map(String::as_str),
            component_appid,
            code,
            now,
        )
    })())
}

async fn authorizer_token(State(sim): State<Simulator>, Query(q): Params, body: Bytes) -> Response {
    let now = sim.now();
    answer((|| {
        let body = json_body(&body)?;
        let component_appid = field(&body, "component_appid", 41002)?;
        let authorizer_appid = field(&body, "authorizer_appid", 41002)?;
        let refresh = field(&body, "authorizer_refresh_token", 61023)?;
        sim.world().authorizer_token(
            q.get("component_access_token").map(String::as_str),
            component_appid,
            authorizer_appid,
            refresh,
            now,
        )
    })())
}

async fn component_web_access_token(State(sim): State<Simulator>, Query(q): Params) -> Response {
    let now = sim.now();
    answer((|| {
        let appid = param(&q, "appid", 41002)?;
        let code = param(&q, "code", 41008)?;
        grant_type(&q, "authorization_code")?;
        let component_appid = param(&q, "component_appid", 41002)?;
        sim.world().component_web_access_token(
            appid,
            code,
            component_appid,
            q.get("component_access_token").map(String::as_str),
            now,
        )
    })())
}

// ---------- authorize pages ----------

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A demo user's avatar: the first letter of the nickname on a colour of the user's own, as
/// SVG (404 for an unknown user, as WeChat's image host answers for a stale URL).
async fn avatar(
    State(sim): State<Simulator>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let Some(user) = sim.users().into_iter().find(|u| u.id == id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let hue = user
        .id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 360;
    let initial: String = user
        .nickname
        .chars()
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 132 132\" width=\"132\" height=\"132\">\
         <rect width=\"132\" height=\"132\" fill=\"hsl({hue},55%,55%)\"/>\
         <text x=\"66\" y=\"88\" font-size=\"64\" font-family=\"sans-serif\" text-anchor=\"middle\" fill=\"#fff\">{}</text></svg>",
        escape_html(&initial)
    );
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        svg,
    )
        .into_response()
}

fn encode_component(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title></head><body style=\"font:16px/1.6 sans-serif;max-width:32em;margin:2em auto;padding:0 1em\">\
             <h1>{}</h1>{body}<p><small>wxauth WeChat simulator</small></p></body></html>",
            escape_html(title),
            escape_html(title)
        )),
    )
        .into_response()
}

fn error_page(message: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "WeChat authorization error",
        &format!("<p>{}</p>", escape_html(message)),
    )
}

fn cookie_user(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == USER_COOKIE)
        .map(|(_, value)| value.to_owned())
}

async fn authorize(
    State(sim): State<Simulator>,
    Query(q): Params,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    authorize_common(&sim, &q, &headers, &uri, false)
}

async fn qrconnect(
    State(sim): State<Simulator>,
    Query(q): Params,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    authorize_common(&sim, &q, &headers, &uri, true)
}

fn authorize_common(
    sim: &Simulator,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    website: bool,
) -> Response {
    let get = |name: &str| q.get(name).map(String::as_str).unwrap_or_default();
    let appid = get("appid");
    let Some(app) = sim.world().apps.get(appid).cloned() else {
        return error_page("appid 参数错误 (unknown appid)");
    };
    if get("response_type") != "code" {
        return error_page("response_type 参数错误 (must be code)");
    }
    let scope = get("scope");
    let scope_ok = if website {
        scope == "snsapi_login" && app.kind == SimAppKind::Website
    } else {
        matches!(scope, "snsapi_base" | "snsapi_userinfo")
            && matches!(app.kind, SimAppKind::OfficialAccount)
    };
    if !scope_ok {
        return error_page("scope 参数错误或没有 scope 权限 (scope not allowed for this app)");
    }
    let component_appid = q.get("component_appid").filter(|c| !c.is_empty()).cloned();
    if let Some(component) = &component_appid
        && app.component_appid.as_ref() != Some(component)
    {
        return error_page(
            "component_appid 参数错误 (the account did not authorize this component)",
        );
    }
    let Ok(mut redirect) = Url::parse(get("redirect_uri")) else {
        return error_page("redirect_uri 参数错误");
    };
    if !matches!(redirect.scheme(), "http" | "https") {
        return error_page("redirect_uri 参数错误");
    }
    let state = get("state");
    if state.len() > 128 {
        return error_page("state 参数错误 (at most 128 bytes)");
    }
    let user = q
        .get("sim_user")
        .cloned()
        .or_else(|| cookie_user(headers))
        .filter(|user| sim.world().users.contains_key(user));
    let Some(user) = user else {
        // The user may refuse: WeChat then redirects without a code, with the state only
        // ("用户禁止授权，则重定向后不会带上code参数，仅会带上state参数").
        let mut cancel = redirect.clone();
        cancel.query_pairs_mut().append_pair("state", state);
        if component_appid.is_some() {
            cancel.query_pairs_mut().append_pair("appid", appid);
        }
        return if website {
            qr_page(sim, uri, &app.appid, cancel.as_str())
        } else {
            picker_page(sim, uri, cancel.as_str())
        };
    };
    let code = match sim.mint_web_code(appid, &user, scope, component_appid.as_deref()) {
        Ok(code) => code,
        Err(error) => return error_page(&error.0),
    };
    {
        let mut pairs = redirect.query_pairs_mut();
        pairs.append_pair("code", &code);
        pairs.append_pair("state", state);
        if component_appid.is_some() {
            pairs.append_pair("appid", appid);
        }
    }
    // WeChat answers the authorize page with a 302.
    match HeaderValue::from_str(redirect.as_str()) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => error_page("redirect_uri 参数错误"),
    }
}

/// The website QR login page: a QR code to "scan" and, for each simulated user, a button that
/// scans it with that user's WeChat (the real page polls until the phone confirms).
fn cancel_link(cancel: &str) -> String {
    format!(
        "<p><a id=\"cancel\" href=\"{}\">取消 · Cancel (refuse to sign in)</a></p>",
        escape_html(cancel)
    )
}

fn qr_page(sim: &Simulator, uri: &axum::http::Uri, appid: &str, cancel: &str) -> Response {
    let back = uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let back_encoded = encode_component(&back);
    // A QR-looking grid derived from the URL: the simulator's phone "reads" it by a click.
    let seed = <sha2::Sha256 as sha2::Digest>::digest(back.as_bytes());
    let mut cells = String::new();
    for y in 0..21u32 {
        for x in 0..21u32 {
            let finder = |cx: u32, cy: u32| x.abs_diff(cx) <= 3 && y.abs_diff(cy) <= 3;
            let in_finder = finder(3, 3) || finder(17, 3) || finder(3, 17);
            let bit = seed[((x * 21 + y) % 32) as usize] >> ((x + y) % 8) & 1 == 1;
            if (in_finder && (x % 6 != 1 && x % 6 != 5 || y % 6 != 1 && y % 6 != 5))
                || (!in_finder && bit)
            {
                cells.push_str(&format!(
                    "<rect x=\"{x}\" y=\"{y}\" width=\"1\" height=\"1\"/>"
                ));
            }
        }
    }
    let mut body = format!(
        "<p>使用微信扫一扫登录 · Scan with WeChat to sign in to <code>{}</code></p>\
         <svg id=\"qrcode\" viewBox=\"-1 -1 23 23\" width=\"200\" height=\"200\" role=\"img\" \
         aria-label=\"QR code\" style=\"background:#fff\">{cells}</svg>\
         <p>Simulated phones: scan as</p><ul>",
        escape_html(appid)
    );
    for user in sim.users() {
        body.push_str(&format!(
            "<li><a class=\"scan\" id=\"scan-{}\" href=\"/__sim/choose?user={}&amp;return={}\">扫码 · Scan as {} <small>({})</small></a></li>",
            escape_html(&user.id),
            encode_component(&user.id),
            back_encoded,
            escape_html(&user.nickname),
            escape_html(&user.id),
        ));
    }
    body.push_str("</ul>");
    body.push_str(&cancel_link(cancel));
    page(
        StatusCode::OK,
        "微信登录 · WeChat QR sign-in (simulated)",
        &body,
    )
}

fn picker_page(sim: &Simulator, uri: &axum::http::Uri, cancel: &str) -> Response {
    let back = uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let back_encoded = encode_component(&back);
    let mut body = String::from(
        "<p>选择正在登录的模拟微信用户 · Choose the simulated WeChat user who is signing in:</p>\
         <ul style=\"list-style:none;padding:0\">",
    );
    for user in sim.users() {
        body.push_str(&format!(
            "<li style=\"margin:.5em 0\"><a href=\"/__sim/choose?user={}&amp;return={}\">\
             <img src=\"{AVATAR_PATH}/{}\" alt=\"\" width=\"32\" height=\"32\" style=\"vertical-align:middle;border-radius:50%\"> \
             {} <small>({})</small></a></li>",
            encode_component(&user.id),
            back_encoded,
            encode_component(&user.id),
            escape_html(&user.nickname),
            escape_html(&user.id),
        ));
    }
    body.push_str(&format!(
        "</ul><form method=\"post\" action=\"/__sim/choose\">\
         <input type=\"hidden\" name=\"return\" value=\"{}\">\
         <label>新用户昵称 · New user nickname <input name=\"nickname\" required maxlength=\"32\"></label> \
         <button>创建并登录 · Create and sign in</button></form>",
        escape_html(&back)
    ));
    body.push_str(&cancel_link(cancel));
    page(
        StatusCode::OK,
        "微信授权 · WeChat sign-in (simulated)",
        &body,
    )
}

/// Only paths back into the simulator's authorize pages are followed.
fn safe_return(target: &str) -> Option<&str> {
    (target.starts_with("/connect/oauth2/authorize?") || target.starts_with("/connect/qrconnect?"))
        .then_some(target)
}

fn set_user_cookie(user: &str, back: &str) -> Response {
    let mut response = Redirect::to(back).into_response();
    let cookie = format!("{USER_COOKIE}={user}; Path=/; HttpOnly; SameSite=Lax");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
struct ChooseQuery {
    user: String,
    #[serde(rename = "return")]
    back: String,
}

async fn choose_user(State(sim): State<Simulator>, Query(q): Query<ChooseQuery>) -> Response {
    let Some(back) = safe_return(&q.back) else {
        return error_page("bad return path");
    };
    if !sim.world().users.contains_key(&q.user) {
        return error_page("unknown user");
    }
    set_user_cookie(&q.user, back)
}

#[derive(Deserialize)]
struct CreateUserForm {
    nickname: String,
    #[serde(rename = "return")]
    back: String,
}

async fn create_and_choose_user(
    State(sim): State<Simulator>,
    Form(form): Form<CreateUserForm>,
) -> Response {
    let Some(back) = safe_return(&form.back) else {
        return error_page("bad return path");
    };
    let nickname: String = form.nickname.trim().chars().take(32).collect();
    if nickname.is_empty() {
        return error_page("nickname required");
    }
    let user = SimUser::new(&format!("u{}", random_alnum(8).to_lowercase()), &nickname);
    let id = user.id.clone();
    sim.add_user(user);
    set_user_cookie(&id, back)
}

async fn logout() -> Response {
    let mut response = page(StatusCode::OK, "Signed out of the simulator", "");
    if let Ok(value) = HeaderValue::from_str(&format!("{USER_COOKIE}=; Path=/; Max-Age=0")) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

// ---------- control API ----------

fn control_error(message: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.to_string() })),
    )
        .into_response()
}

async fn list_apps(State(sim): State<Simulator>) -> Response {
    Json(sim.apps()).into_response()
}

async fn add_app(State(sim): State<Simulator>, Json(app): Json<super::SimApp>) -> Response {
    sim.register_app(app);
    StatusCode::NO_CONTENT.into_response()
}

async fn list_users(State(sim): State<Simulator>) -> Response {
    Json(sim.users()).into_response()
}

#[derive(Deserialize)]
struct NewUser {
    #[serde(default)]
    id: Option<String>,
    nickname: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    sex: i64,
    #[serde(default)]
    blocked: bool,
}

async fn add_user(State(sim): State<Simulator>, Json(new): Json<NewUser>) -> Response {
    let id = new
        .id
        .unwrap_or_else(|| format!("u{}", random_alnum(8).to_lowercase()));
    let user = SimUser {
        phone: new.phone,
        sex: new.sex,
        blocked: new.blocked,
        ..SimUser::new(&id, &new.nickname)
    };
    sim.add_user(user.clone());
    Json(user).into_response()
}

#[derive(Deserialize)]
struct CodeRequest {
    appid: String,
    user: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    component_appid: Option<String>,
    /// `codes/js` only: mint this many codes for the user at once (benchmarks mint their codes
    /// before the clock starts, so the simulator's speed is not what they measure).
    #[serde(default)]
    count: Option<usize>,
}

/// The most codes one bulk mint answers (they live for WeChat's five minutes).
const MAX_BULK_CODES: usize = 200_000;

async fn mint_js_code(State(sim): State<Simulator>, Json(r): Json<CodeRequest>) -> Response {
    if let Some(count) = r.count {
        if count == 0 || count > MAX_BULK_CODES {
            return control_error(format!("count must be between 1 and {MAX_BULK_CODES}"));
        }
        let codes: Result<Vec<String>, _> = (0..count)
            .map(|_| sim.mint_js_code(&r.appid, &r.user))
            .collect();
        return match codes {
            Ok(codes) => Json(json!({
                "codes": codes,
                "openid": sim.openid(&r.appid, &r.user),
                "unionid": sim.unionid(&r.appid, &r.user),
            }))
            .into_response(),
            Err(error) => control_error(error),
        };
    }
    match sim.mint_js_code(&r.appid, &r.user) {
        Ok(code) => Json(json!({
            "code": code,
            "openid": sim.openid(&r.appid, &r.user),
            "unionid": sim.unionid(&r.appid, &r.user),
        }))
        .into_response(),
        Err(error) => control_error(error),
    }
}

async fn mint_web_code(State(sim): State<Simulator>, Json(r): Json<CodeRequest>) -> Response {
    let scope = r.scope.as_deref().unwrap_or("snsapi_base");
    match sim.mint_web_code(&r.appid, &r.user, scope, r.component_appid.as_deref()) {
        Ok(code) => Json(json!({
            "code": code,
            "openid": sim.openid(&r.appid, &r.user),
        }))
        .into_response(),
        Err(error) => control_error(error),
    }
}

async fn mint_phone_code(State(sim): State<Simulator>, Json(r): Json<CodeRequest>) -> Response {
    match sim.mint_phone_code(&r.appid, &r.user) {
        Ok(code) => Json(json!({ "code": code })).into_response(),
        Err(error) => control_error(error),
    }
}

async fn mini_program_user_info(
    State(sim): State<Simulator>,
    Json(r): Json<CodeRequest>,
) -> Response {
    match sim.mini_program_user_info(&r.appid, &r.user) {
        Ok(data) => Json(data).into_response(),
        Err(error) => control_error(error),
    }
}

async fn mini_program_phone_data(
    State(sim): State<Simulator>,
    Json(r): Json<CodeRequest>,
) -> Response {
    match sim.mini_program_phone_data(&r.appid, &r.user) {
        Ok(data) => Json(data).into_response(),
        Err(error) => control_error(error),
    }
}

#[derive(Deserialize)]
struct ComponentRequest {
    component_appid: String,
    #[serde(default)]
    authorizer_appid: Option<String>,
    /// For `/__sim/component/ticket`: push it (default) or only issue it.
    #[serde(default = "default_true")]
    push: bool,
}

fn default_true() -> bool {
    true
}

async fn authorize_component(
    State(sim): State<Simulator>,
    Json(r): Json<ComponentRequest>,
) -> Response {
    let Some(authorizer) = r.authorizer_appid else {
        return control_error("authorizer_appid missing");
    };
    match sim.authorize_component(&r.component_appid, &authorizer) {
        Ok(code) => Json(json!({ "authorization_code": code })).into_response(),
        Err(error) => control_error(error),
    }
}

async fn component_ticket(
    State(sim): State<Simulator>,
    Json(r): Json<ComponentRequest>,
) -> Response {
    if r.push {
        match sim.push_component_ticket(&r.component_appid).await {
            Ok(ticket) => Json(json!({ "ticket": ticket, "pushed": true })).into_response(),
            Err(error) => control_error(error),
        }
    } else {
        let ticket = sim.issue_component_ticket(&r.component_appid);
        Json(json!({ "ticket": ticket, "pushed": false })).into_response()
    }
}

async fn get_faults(State(sim): State<Simulator>) -> Response {
    Json(sim.faults()).into_response()
}

async fn put_faults(State(sim): State<Simulator>, Json(plan): Json<FaultPlan>) -> Response {
    sim.set_faults(plan);
    Json(sim.faults()).into_response()
}

async fn get_text_verdicts(State(sim): State<Simulator>) -> Response {
    Json(sim.text_verdicts()).into_response()
}

/// Replace the rules `msg_sec_check` follows (a JSON array of `{contains, suggest, label}`).
async fn put_text_verdicts(
    State(sim): State<Simulator>,
    Json(rules): Json<Vec<TextVerdictRule>>,
) -> Response {
    sim.set_text_verdicts(rules);
    Json(sim.text_verdicts()).into_response()
}

async fn clear_text_verdicts(State(sim): State<Simulator>) -> Response {
    sim.set_text_verdicts(Vec::new());
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_faults(State(sim): State<Simulator>) -> Response {
    sim.clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

async fn get_counters(State(sim): State<Simulator>) -> Response {
    Json(sim.counters()).into_response()
}

async fn reset_counters(State(sim): State<Simulator>) -> Response {
    sim.reset_counters();
    StatusCode::NO_CONTENT.into_response()
}

async fn get_clock(State(sim): State<Simulator>) -> Response {
    Json(json!({ "now": sim.now() })).into_response()
}

#[derive(Deserialize)]
struct Advance {
    seconds: i64,
}

async fn advance_clock(State(sim): State<Simulator>, Json(a): Json<Advance>) -> Response {
    if a.seconds < 0 {
        return control_error("time only moves forward");
    }
    sim.advance_clock(a.seconds);
    Json(json!({ "now": sim.now() })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn only_authorize_paths_are_followed_after_choosing() {
        assert!(safe_return("/connect/oauth2/authorize?appid=x").is_some());
        assert!(safe_return("/connect/qrconnect?appid=x").is_some());
        assert!(safe_return("https://evil.example/").is_none());
        assert!(safe_return("//evil.example/connect/oauth2/authorize?").is_none());
    }
}
