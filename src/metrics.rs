//! Prometheus metrics: the recorder (installed once per process, behind the `metrics` facade
//! every module counts through), the names wxauth exports, and the scrape text.
//!
//! Labels stay bounded: routes are templates, clients and appids are the registered ones, grants,
//! channels, reasons and WeChat APIs are fixed lists. No user, openid, token or address is ever a
//! label. README's "Metrics" section lists every series; `docs/grafana-dashboard.json` plots them.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::{DatabaseBackend, DatabaseConnection};

/// Every HTTP request: `method`, `route` (the route template, `unmatched` for 404s), `status`.
pub const HTTP_REQUESTS: &str = "wxauth_http_requests_total";
/// HTTP latency histogram (seconds): `method`, `route`.
pub const HTTP_DURATION: &str = "wxauth_http_request_duration_seconds";
/// Tokens issued: `grant`, `client`.
pub const TOKENS_ISSUED: &str = "wxauth_tokens_issued_total";
/// Sign-ins: `channel` (mini_program, h5, qr, wechat_oauth), `outcome`.
pub const SIGN_INS: &str = "wxauth_sign_ins_total";
/// Browser sessions ended at the end-session endpoint: `kind` (`sign_out`).
pub const SIGN_OUTS: &str = "wxauth_sign_outs_total";
/// Back-channel logout deliveries: `outcome` (`delivered`, `failed`).
pub const BACKCHANNEL_LOGOUTS: &str = "wxauth_backchannel_logouts_total";
/// Requests refused for a security reason: `reason` (refresh_reuse, code_replay, ticket_refused,
/// decrypt_cap_reached, h5_binding_refused, client_auth_throttled, …).
pub const REFUSALS: &str = "wxauth_refusals_total";
/// Administrative changes: `kind` (client_changed, app_changed, key_changed, …).
pub const ADMIN_CHANGES: &str = "wxauth_admin_changes_total";
/// Phone numbers answered at `/api/wechat/ma/phone`: `appid`, `outcome` (`exchanged`: a paid
/// `getuserphonenumber` exchange; `reused`: handed out again within `WXAUTH_PHONE_REUSE_DAYS`).
pub const PHONE_NUMBERS: &str = "wxauth_phone_numbers_total";
/// Calls to WeChat: `api`, `appid`, `errcode` (`0` for success, `http` / `unreachable` when there
/// was no errcode).
pub const WECHAT_CALLS: &str = "wxauth_wechat_calls_total";
/// WeChat call latency histogram (seconds): `api`.
pub const WECHAT_DURATION: &str = "wxauth_wechat_call_duration_seconds";
/// Upstream token fetches, against WeChat's daily quota: `kind` (access_token,
/// component_access_token, …), `appid`, `outcome`.
pub const WECHAT_TOKEN_REFRESHES: &str = "wxauth_wechat_token_refreshes_total";
/// Waits for another instance's token fetch (the cross-instance lease): `kind`.
pub const WECHAT_LEASE_WAITS: &str = "wxauth_wechat_token_lease_waits_total";
/// WeChat credentials the credential broker handed out (`outcome` `ok`) or refused
/// (`refused`): `client`, `appid`, `kind` (access_token, jsapi_ticket, …).
pub const WECHAT_CREDENTIALS: &str = "wxauth_wechat_credentials_total";
/// Database connections: `state` (`in_use`, `idle`).
pub const DB_POOL: &str = "wxauth_db_pool_connections";
/// Statements the database ended to settle a deadlock and wxauth sent again: `backend`
/// (`postgres`, `mysql`).
pub const DB_DEADLOCK_RETRIES: &str = "wxauth_db_deadlock_retries_total";
/// Rows the janitor deleted: `table`.
pub const JANITOR_DELETED: &str = "wxauth_janitor_deleted_rows_total";
/// Requests refused by a rate limit: `limit` (a limit's name, or `client_auth_throttle` for a
/// (client, address) pair blocked after failed authentications).
pub const RATE_LIMITED: &str = "wxauth_rate_limit_rejections_total";

/// Official Account follower status changes recorded: `kind` (follower.subscribed,
/// follower.unsubscribed).
pub const FOLLOWER_CHANGES: &str = "wxauth_follower_changes_total";
/// Follower-status work: `source` (`sign_in`: `cgi-bin/user/info` at the H5 base hop;
/// `push`: a message pushed to `/api/wechat/mp/{appId}/events`), `outcome` (`recorded`,
/// `duplicate`, `ignored`, `refused`, `wechat_failed`, `store_failed`).
pub const FOLLOWER_SYNC: &str = "wxauth_follower_sync_total";

/// Latency buckets (seconds): 1 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use. `None` only when another recorder was
/// installed first (then wxauth's metrics go there and `/metrics` says so).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS);
            match builder.and_then(|b| b.install_recorder()) {
                Ok(handle) => Some(handle),
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// The scrape text: every series, with the database pool gauges read now.
pub fn render(db: &DatabaseConnection) -> Option<String> {
    let handle = handle()?;
    let (size, idle) = pool_usage(db);
    metrics::gauge!(DB_POOL, "state" => "in_use").set(size.saturating_sub(idle) as f64);
    metrics::gauge!(DB_POOL, "state" => "idle").set(idle as f64);
    handle.run_upkeep();
    Some(handle.render())
}

/// (open connections, idle connections) of the database pool.
fn pool_usage(db: &DatabaseConnection) -> (u32, u32) {
    match db.get_database_backend() {
        DatabaseBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle() as u32)
        }
        DatabaseBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle() as u32)
        }
        DatabaseBackend::MySql => {
            let pool = db.get_mysql_connection_pool();
            (pool.size(), pool.num_idle() as u32)
        }
        _ => (0, 0),
    }
}
