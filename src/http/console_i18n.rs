//! The console's words in Chinese and English, and which language a request gets: `?lang=`
//! (remembered in a cookie), else the cookie, else `Accept-Language` (Chinese unless English
//! comes first).

use std::collections::BTreeMap;

use axum::http::{HeaderMap, header};

/// A language of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "zh" | "zh-cn" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The first language `Accept-Language` names that we have (Chinese by default).
    pub fn from_accept_language(headers: &HeaderMap) -> Self {
        let header = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mut ranked: Vec<(f32, &str)> = header
            .split(',')
            .filter_map(|part| {
                let mut pieces = part.trim().split(';');
                let tag = pieces.next()?.trim();
                let q = pieces
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse().ok())
                    .unwrap_or(1.0);
                Some((q, tag))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (_, tag) in ranked {
            let primary = tag
                .split('-')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            match primary.as_str() {
                "zh" => return Lang::Zh,
                "en" => return Lang::En,
                _ => {}
            }
        }
        Lang::Zh
    }
}

/// (key, Chinese, English).
const WORDS: &[(&str, &str, &str)] = &[
    ("console", "控制台", "Console"),
    ("sign_in", "登录", "Sign in"),
    ("sign_out", "退出", "Sign out"),
    (
        "sign_in_title",
        "登录 wxauth 控制台",
        "Sign in to the wxauth console",
    ),
    (
        "sign_in_hint",
        "用已授予管理员角色的微信账号扫码登录。",
        "Scan with a WeChat account that holds the admin role.",
    ),
    ("sign_in_wechat", "使用微信登录", "Sign in with WeChat"),
    (
        "break_glass",
        "应急登录（WXAUTH_ADMIN_TOKEN）",
        "Break-glass sign-in (WXAUTH_ADMIN_TOKEN)",
    ),
    ("admin_token", "管理令牌", "Admin token"),
    ("users", "用户", "Users"),
    ("clients", "客户端", "Clients"),
    ("keys", "签名密钥", "Signing keys"),
    ("audit", "审计日志", "Audit trail"),
    ("admins", "管理员", "Admins"),
    ("continue", "继续", "Continue"),
    ("new_client", "新建客户端", "New client"),
    ("client_id", "客户端 ID", "Client ID"),
    ("display_name", "显示名称", "Display name"),
    ("logo_url", "Logo 地址", "Logo URL"),
    ("type", "类型", "Type"),
    ("grant_types", "授权类型", "Grant types"),
    ("scopes", "权限范围", "Scopes"),
    ("redirect_uris", "回调地址", "Redirect URIs"),
    (
        "allowed_origins",
        "允许跨域的网页来源",
        "Allowed web origins (CORS)",
    ),
    (
        "allowed_origins_hint",
        "回调地址的来源已自动允许",
        "redirect URIs' origins are allowed already",
    ),
    ("one_per_line", "每行一个", "one per line"),
    (
        "access_token_ttl",
        "访问令牌有效期（秒）",
        "Access token lifetime (s)",
    ),
    (
        "refresh_token_ttl",
        "刷新令牌有效期（秒）",
        "Refresh token lifetime (s)",
    ),
    ("save", "保存", "Save"),
    ("danger_zone", "密钥与删除", "Secret and deletion"),
    ("rotate_secret", "轮换密钥", "Rotate secret"),
    (
        "confirm_delete",
        "我确认删除，无法撤销",
        "I understand this cannot be undone",
    ),
    ("delete", "删除", "Delete"),
    ("secret_title", "客户端密钥", "Client secret"),
    (
        "secret_once",
        "密钥只显示这一次，请立即保存。",
        "This secret is shown once. Store it now.",
    ),
    (
        "previous_secret_until",
        "旧密钥在此之前仍然有效：",
        "The previous secret keeps working until",
    ),
    ("none", "暂无", "None"),
    ("account", "账号", "Account"),
    ("account_id", "账号 ID", "Account ID"),
    ("phone", "手机号", "Phone"),
    ("nickname", "昵称", "Nickname"),
    ("search", "搜索", "Search"),
    ("state", "状态", "State"),
    ("created", "创建时间", "Created"),
    ("disabled", "已停用", "Disabled"),
    ("enabled", "正常", "Enabled"),
    ("total", "共", "Total"),
    ("prev", "上一页", "Previous"),
    ("next", "下一页", "Next"),
    ("page", "第", "Page"),
    ("enable", "启用", "Enable"),
    ("disable", "停用", "Disable"),
    ("revoke", "撤销全部会话和令牌", "Revoke sessions and tokens"),
    ("export", "导出数据（JSON）", "Export data (JSON)"),
    ("identities", "微信身份", "WeChat identities"),
    ("last_sign_in", "最近登录", "Last sign-in"),
    ("follower", "关注公众号", "Follows the account"),
    ("follows_since", "关注于", "since"),
    ("not_following", "未关注", "Not following"),
    ("follow_unknown", "未知", "Unknown"),
    (
        "sessions_tokens",
        "会话与刷新令牌",
        "Sessions and refresh tokens",
    ),
    ("kind", "类型", "Kind"),
    ("detail", "详情", "Detail"),
    ("expires", "过期时间", "Expires"),
    ("revoked", "已撤销", "revoked"),
    ("consents", "授权记录", "Consents"),
    ("recent_events", "最近事件", "Recent events"),
    ("time", "时间", "Time"),
    ("outcome", "结果", "Outcome"),
    ("actor", "操作者", "Actor"),
    ("rotate_key", "轮换签名密钥", "Rotate signing key"),
    (
        "keys_hint",
        "新密钥先发布到 JWKS，延迟后才开始签名。",
        "A new key is published in the JWKS first and signs after the delay.",
    ),
    ("activates", "生效时间", "Activates"),
    ("retired", "退役时间", "Retired"),
    ("retire", "退役", "Retire"),
    ("all_kinds", "全部类型", "All kinds"),
    ("filter", "筛选", "Filter"),
    ("grant", "授予管理员", "Grant admin"),
    ("granted_by", "授予者", "Granted by"),
    ("revoke_role", "撤销管理员", "Revoke admin"),
    ("done", "已完成", "Done"),
    ("refused", "无法完成", "Not done"),
    ("not_found", "未找到", "Not found"),
    ("forbidden", "请求被拒绝", "Request refused"),
    (
        "csrf_refused",
        "表单已过期或不是从控制台提交的，请返回重试。",
        "This form expired or did not come from the console; go back and try again.",
    ),
    (
        "not_admin",
        "这个微信账号不是本 wxauth 的管理员。",
        "This WeChat account is not an administrator of this wxauth.",
    ),
    (
        "sign_in_failed",
        "登录未完成，请重新开始。",
        "The sign-in could not be completed; please start again.",
    ),
    ("wrong_token", "管理令牌不正确。", "Wrong admin token."),
    (
        "throttled",
        "失败次数过多，请稍后再试。",
        "Too many failed attempts; try again later.",
    ),
    (
        "signed_in",
        "已登录，正在进入控制台…",
        "Signed in; opening the console…",
    ),
    (
        "unavailable",
        "暂时无法完成，请稍后重试。",
        "Temporarily unavailable; please try again.",
    ),
    (
        "disabled_done",
        "账号已停用，其会话和令牌已撤销。",
        "The account is disabled; its sessions and tokens are revoked.",
    ),
    ("enabled_done", "账号已启用。", "The account is enabled."),
    (
        "revoked_done",
        "已撤销全部会话和令牌。",
        "Every session and token was revoked.",
    ),
    ("deleted_done", "已删除。", "Deleted."),
    ("saved_done", "已保存。", "Saved."),
    (
        "key_done",
        "新签名密钥已发布。",
        "A new signing key is published.",
    ),
    ("retired_done", "密钥已退役。", "The key is retired."),
    (
        "granted_done",
        "已授予管理员角色。",
        "The admin role is granted.",
    ),
    (
        "role_revoked_done",
        "已撤销管理员角色。",
        "The admin role is revoked.",
    ),
    (
        "flow_ticket",
        "flow 授权的登录票据",
        "Login ticket for the flow grant",
    ),
    (
        "flow_ticket_required",
        "必须（推荐）",
        "required (recommended)",
    ),
    (
        "flow_ticket_optional",
        "可选（仅用于迁移旧前端）",
        "optional (only to migrate old front ends)",
    ),
    (
        "introspect",
        "可调用令牌内省（资源服务器）",
        "May introspect tokens (resource server)",
    ),
    (
        "first_party",
        "自有应用：跳过授权确认页",
        "First party: skip the consent page",
    ),
    ("flags", "权限", "Rights"),
    ("apps", "微信应用", "WeChat apps"),
    ("new_app", "添加应用", "Add app"),
    ("appid", "AppID", "AppID"),
    ("app_kind", "应用类型", "Kind"),
    ("kind_mini_program", "小程序", "Mini Program"),
    ("kind_official_account", "公众号", "Official Account"),
    ("kind_component", "第三方平台", "Open Platform component"),
    ("kind_website", "网站应用", "Website app"),
    ("app_secret", "AppSecret", "AppSecret"),
    ("component_appid", "第三方平台 AppID", "Component AppID"),
    ("msg_token", "消息校验 Token", "Message token"),
    (
        "aes_key",
        "EncodingAESKey（43 位）",
        "EncodingAESKey (43 characters)",
    ),
    (
        "base_account",
        "基础公众号（获取 unionid）",
        "Base account (gives the unionid)",
    ),
    (
        "replace_base",
        "替换当前的基础公众号",
        "Replace the current base account",
    ),
    (
        "write_only",
        "密钥只写不读：保存后不会再显示，留空则不修改。",
        "Secrets are write-only: never shown again; leave empty to keep.",
    ),
    ("stored", "已保存", "stored"),
    ("via_component", "经第三方平台授权", "through its component"),
    ("missing", "未设置", "not set"),
    ("secrets", "密钥", "Secrets"),
    (
        "upstream_token",
        "上游 access_token",
        "Upstream access token",
    ),
    ("token_expires", "过期时间", "Expires"),
    ("last_refresh", "最近刷新", "Last refresh"),
    ("calls_today", "今日调用", "Calls today"),
    ("errors_today", "今日失败", "Errors today"),
    (
        "calls_hint",
        "按北京时间计日（微信每日配额在北京时间零点重置），汇总所有实例，约 10 秒更新。",
        "Days in Beijing time (WeChat's daily quotas reset at midnight there), summed over every instance, updated within about 10 s.",
    ),
    ("update_secrets", "更新密钥", "Update secrets"),
    ("remove_app", "移除应用", "Remove app"),
    ("app_added", "应用已添加。", "The app is added."),
    ("app_updated", "密钥已更新。", "The secrets are updated."),
    ("app_removed", "应用已移除。", "The app is removed."),
    ("newer", "较新", "Newer"),
    ("older", "较早", "Older"),
    ("newest", "最新", "Newest"),
    ("webhooks", "Webhook", "Webhooks"),
    ("webhook_endpoints", "接收端点", "Endpoints"),
    ("events", "事件", "Events"),
    ("pending", "待投递", "Pending"),
    ("dead", "已放弃", "Dead"),
    ("dead_deliveries", "投递失败（已放弃）", "Dead deliveries"),
    (
        "dead_hint",
        "重试 24 小时仍未成功的投递。接收方按事件 ID 去重。",
        "Deliveries that still failed after 24 hours of retries. Receivers deduplicate by event ID.",
    ),
    ("event_id", "事件 ID", "Event ID"),
    ("attempts", "尝试次数", "Attempts"),
    ("last_answer", "最后结果", "Last answer"),
    (
        "webhook_register_hint",
        "用 wxauth webhook add 或管理 API 注册端点；密钥只显示一次。",
        "Register endpoints with wxauth webhook add or the admin API; the secret is shown once.",
    ),
    ("merges", "账号合并", "Account merges"),
    (
        "merges_hint",
        "同一个人的两个账号（unionid 迟到）。批准后较早的账号保留一切，另一个账号的令牌和会话被撤销。",
        "Two accounts of one person (a unionid that arrived late). On approval the older account keeps everything; the other's tokens and sessions are revoked.",
    ),
    ("survivor", "保留账号", "Kept account"),
    ("merged_account", "并入账号", "Merged account"),
    ("identities_moving", "迁移的身份", "Identities moving"),
    ("requested", "请求时间", "Requested"),
    ("approve", "批准合并", "Approve"),
    ("reject", "拒绝", "Reject"),
    ("merged_done", "账号已合并。", "The accounts are merged."),
    (
        "rejected_done",
        "已拒绝合并，账号保持分开。",
        "Merge refused: the accounts stay apart.",
    ),
];

/// The words of `lang`, by key, for the templates (`{{ t.users }}`).
pub fn words(lang: Lang) -> BTreeMap<&'static str, &'static str> {
    WORDS
        .iter()
        .map(|(k, zh, en)| (*k, if lang == Lang::Zh { *zh } else { *en }))
        .collect()
}

/// One word of `lang`.
pub fn word(lang: Lang, key: &str) -> &'static str {
    WORDS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, zh, en)| if lang == Lang::Zh { *zh } else { *en })
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn accept_language_picks_the_first_language_we_have() {
        let lang = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static(v));
            Lang::from_accept_language(&h)
        };
        assert_eq!(lang("en-US,en;q=0.9,zh;q=0.8"), Lang::En);
        assert_eq!(lang("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(lang("fr,en;q=0.5"), Lang::En);
        assert_eq!(lang("de"), Lang::Zh);
        assert_eq!(Lang::from_accept_language(&HeaderMap::new()), Lang::Zh);
    }

    #[test]
    fn every_word_has_both_languages() {
        for (k, zh, en) in WORDS {
            assert!(!zh.is_empty() && !en.is_empty(), "{k}");
        }
    }
}
