//! Every message a page shows a person, in one catalogue: Chinese and English, written for the
//! person in front of the phone — what happened and what to do, never a variable name, a client
//! id or a reason code. Each message has a short stable code (`H5-SPENT`, …); an error page
//! shows it with the request's reference so that an operator can find the developer detail,
//! which goes to the log only.
//!
//! [`Lang`] is the language a page is written in first: it follows the browser's
//! `Accept-Language` (Chinese unless the browser prefers English), and the other language stands
//! beside it.

/// One text in both languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    pub zh: &'static str,
    pub en: &'static str,
}

/// The language a page leads with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    /// The `lang` attribute of a page in this language.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The language of an `Accept-Language` header: English when the browser ranks an English
    /// tag above every Chinese one, Chinese otherwise (and when the header is absent or
    /// unreadable). Only the two languages we write matter, so this reads the tags and their
    /// `q` weights (RFC 9110 §12.5.4) and nothing more.
    pub fn from_accept_language(header: Option<&str>) -> Lang {
        let Some(header) = header else {
            return Lang::Zh;
        };
        let (mut zh, mut en) = (0.0_f32, 0.0_f32);
        for (position, item) in header.split(',').enumerate() {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            // Equal weights: the one listed first wins.
            let weight = q - position as f32 * 1e-4;
            let primary = tag.split('-').next().unwrap_or_default();
            match primary {
                "zh" => zh = zh.max(weight),
                "en" => en = en.max(weight),
                _ => {}
            }
        }
        if en > zh && en > 0.0 {
            Lang::En
        } else {
            Lang::Zh
        }
    }
}

impl Text {
    /// (the text in `lang`, the text in the other language).
    pub fn in_lang(&self, lang: Lang) -> (&'static str, &'static str) {
        match lang {
            Lang::Zh => (self.zh, self.en),
            Lang::En => (self.en, self.zh),
        }
    }
}

/// A message of an error page: its code and its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// Short and stable; shown on the page and logged with the detail.
    pub code: &'static str,
    pub text: Text,
}

const fn message(code: &'static str, zh: &'static str, en: &'static str) -> Message {
    Message {
        code,
        text: Text { zh, en },
    }
}

// Titles and labels.
pub const TITLE_FAILED: Text = Text {
    zh: "登录没有完成",
    en: "Sign-in did not finish",
};
pub const TITLE_UNAVAILABLE: Text = Text {
    zh: "暂时无法登录",
    en: "Sign-in is temporarily unavailable",
};
pub const TITLE_TOO_MANY: Text = Text {
    zh: "请稍后再试",
    en: "Too many attempts",
};
pub const TITLE_SIGNED_OUT: Text = Text {
    zh: "已退出",
    en: "Signed out",
};
pub const START_AGAIN: Text = Text {
    zh: "重新登录",
    en: "Start again",
};
pub const TRY_AGAIN: Text = Text {
    zh: "重试",
    en: "Try again",
};
pub const REFERENCE: Text = Text {
    zh: "参考编号（请告知客服）",
    en: "Reference (tell support)",
};

// The front page.
pub const HOME_INTRO: Text = Text {
    zh: "用微信登录的 OAuth 2.0 / OpenID Connect 授权服务器。",
    en: "An OAuth 2.0 / OpenID Connect authorization server for products whose users sign in with WeChat.",
};
pub const HOME_ISSUER: Text = Text {
    zh: "签发者",
    en: "Issuer",
};
pub const HOME_VERSION: Text = Text {
    zh: "版本",
    en: "Version",
};
pub const HOME_DOCUMENTS: Text = Text {
    zh: "文档",
    en: "Documents",
};
pub const HOME_DEMO: Text = Text {
    zh: "开发演示",
    en: "Dev demo",
};
pub const HOME_DEMO_HINT: Text = Text {
    zh: "这些页面由内置的微信模拟器驱动，仅在 wxauth dev 下出现。",
    en: "Driven by the built-in WeChat simulator; shown under wxauth dev only.",
};
pub const HOME_DEMO_H5: Text = Text {
    zh: "公众号网页登录（两跳）",
    en: "H5 sign-in in an official account",
};
pub const HOME_DEMO_OIDC: Text = Text {
    zh: "OpenID Connect 单页应用",
    en: "OpenID Connect single-page app, QR sign-in",
};
pub const HOME_DEMO_USERS: Text = Text {
    zh: "模拟器用户",
    en: "The simulator's users",
};
pub const HOME_DEMO_MINI_PROGRAM: Text = Text {
    zh: "小程序登录（演示客户端",
    en: "Mini Program sign-in (demo client",
};
pub const LINK_DISCOVERY: Text = Text {
    zh: "OpenID Connect 发现文档",
    en: "OpenID Connect discovery",
};
pub const LINK_METADATA: Text = Text {
    zh: "OAuth 授权服务器元数据",
    en: "OAuth server metadata",
};
pub const LINK_JWKS: Text = Text {
    zh: "签名公钥 (JWKS)",
    en: "Signing keys (JWKS)",
};
pub const LINK_API_DOC: Text = Text {
    zh: "接口文档",
    en: "API documentation",
};
pub const LINK_HEALTH: Text = Text {
    zh: "健康检查",
    en: "Health",
};

// The consent page.
pub const CONSENT_HEADING: Text = Text {
    zh: "授权",
    en: "Allow access",
};
pub const CONSENT_SIGNED_IN_AS: Text = Text {
    zh: "已登录",
    en: "Signed in as",
};
pub const CONSENT_ASKS: Text = Text {
    zh: "请求以下权限：",
    en: "asks to:",
};
pub const CONSENT_ALLOW: Text = Text {
    zh: "同意",
    en: "Allow",
};
pub const CONSENT_DENY: Text = Text {
    zh: "拒绝",
    en: "Deny",
};
pub const CONSENT_RETURNS_TO: Text = Text {
    zh: "授权后将返回",
    en: "You will return to",
};
pub const SCOPE_OPENID: Text = Text {
    zh: "使用你的微信身份登录",
    en: "Sign you in with your WeChat identity",
};
pub const SCOPE_PROFILE: Text = Text {
    zh: "读取你的昵称和头像",
    en: "See your nickname and avatar",
};
pub const SCOPE_FLOW: Text = Text {
    zh: "以你的身份使用业务服务",
    en: "Use the business services as you",
};
/// A scope this server gives no meaning to: the page shows its name beside this label.
pub const SCOPE_OTHER: Text = Text {
    zh: "访问该应用定义的权限",
    en: "Use a permission the app defines",
};

// The device verification page (RFC 8628).
pub const DEVICE_HEADING: Text = Text {
    zh: "登录设备",
    en: "Sign in a device",
};
pub const DEVICE_ENTER_CODE: Text = Text {
    zh: "请输入设备屏幕上显示的代码。",
    en: "Enter the code shown on your device.",
};
pub const DEVICE_CODE_LABEL: Text = Text {
    zh: "设备代码",
    en: "Device code",
};
pub const DEVICE_NEXT: Text = Text {
    zh: "继续",
    en: "Continue",
};
pub const DEVICE_CHECK_CODE: Text = Text {
    zh: "请确认设备上显示的代码是",
    en: "Check that your device shows the code",
};
pub const DEVICE_APPROVED: Text = Text {
    zh: "设备已登录",
    en: "Your device is signed in",
};
pub const DEVICE_RETURN: Text = Text {
    zh: "请回到设备上继续。可以关闭这个页面了。",
    en: "Go back to your device to continue. You can close this page.",
};
pub const DEVICE_DENIED: Text = Text {
    zh: "已拒绝",
    en: "Access denied",
};
pub const DEVICE_DENIED_HINT: Text = Text {
    zh: "设备不会获得访问权限。可以关闭这个页面了。",
    en: "The device will not get access. You can close this page.",
};
pub const DEVICE_SCAN: Text = Text {
    zh: "用微信扫描这个小程序码，在小程序里确认登录。",
    en: "Scan this Mini Program code with WeChat, and confirm the sign-in in the Mini Program.",
};
pub const DEVICE_SCAN_ALT: Text = Text {
    zh: "小程序码",
    en: "Mini Program code",
};
pub const DEVICE_OR_HERE: Text = Text {
    zh: "或者在这个浏览器里用微信登录",
    en: "Or sign in with WeChat in this browser",
};
pub const DEVICE_CODE_REFUSED: Message = message(
    "DEV-CODE",
    "这个代码无效、已过期或已经用过。请核对设备上的代码，或在设备上重新开始。",
    "This code is invalid, expired or already used. Check the code on your device, or start \
     again on the device.",
);

// The H5 sign-in inside an official account.
pub const H5_SPENT: Message = message(
    "H5-SPENT",
    "这个登录链接已过期或已经用过。请重新登录。",
    "This sign-in link has expired or was already used. Please sign in again.",
);
pub const H5_OTHER_BROWSER: Message = message(
    "H5-BROWSER",
    "这次登录是在另一个浏览器里开始的，或者这个浏览器不保存 Cookie。请在这里重新登录。",
    "This sign-in was started in another browser, or this browser does not keep cookies. \
     Please sign in again here.",
);
pub const H5_RELINK: Message = message(
    "H5-RELINK",
    "这个微信用户与本页面登录所属的账号不一致。请用原来的微信号重新登录。",
    "This WeChat user does not match the account this page signs in to. \
     Please sign in again with the original WeChat account.",
);
pub const H5_TAMPERED: Message = message(
    "H5-TAMPERED",
    "登录链接被改动过，与发起登录时的不一致。请重新登录。",
    "The sign-in link was changed and does not match the one that started it. \
     Please sign in again.",
);
pub const H5_CANCELLED: Message = message(
    "H5-CANCELLED",
    "微信没有完成授权（可能取消了）。请重新登录。",
    "WeChat did not finish the authorisation (it may have been cancelled). Please sign in again.",
);
pub const H5_BAD_LINK: Message = message(
    "H5-LINK",
    "这个登录链接不完整或不正确。请回到原来的页面重新登录。",
    "This sign-in link is incomplete or not valid. Please go back to the page and sign in again.",
);
pub const H5_NEXT_REFUSED: Message = message(
    "H5-NEXT",
    "登录后要返回的页面不在允许的范围内，无法继续。请联系页面的提供者。",
    "The page to return to after sign-in is not one this service may return to. \
     Please contact whoever runs the page.",
);

// WeChat.
pub const WECHAT_CODE_REFUSED: Message = message(
    "WX-CODE",
    "微信的授权码无效或已过期。请重新登录。",
    "WeChat's authorisation is invalid or expired. Please sign in again.",
);
pub const WECHAT_UNAVAILABLE: Message = message(
    "WX-DOWN",
    "微信暂时无法响应。请稍后再试。",
    "WeChat is temporarily unavailable. Please try again in a moment.",
);

// OAuth 2.0 / OpenID Connect in the browser.
pub const OAUTH_BAD_REQUEST: Message = message(
    "OA-REQUEST",
    "把你带到这里的应用发来的登录请求不正确，无法继续。请回到应用重试；如果仍然不行，请联系应用的提供者。",
    "The app that sent you here made a sign-in request that cannot be accepted. \
     Go back to the app and try again; if it still fails, contact whoever runs the app.",
);
pub const OAUTH_FORM_EXPIRED: Message = message(
    "OA-FORM",
    "这个页面已过期。请重新登录。",
    "This page has expired. Please sign in again.",
);
pub const OAUTH_SIGN_IN_REFUSED: Message = message(
    "OA-SIGNIN",
    "登录链接无效或已过期，或者登录是在另一个浏览器里开始的。请重新登录。",
    "The sign-in link is invalid or expired, or the sign-in was started in another browser. \
     Please sign in again.",
);
pub const SIGNED_OUT: Message = message("OA-OUT", "你已退出登录。", "You are signed out.");
pub const LOGOUT_REFUSED: Message = message(
    "OA-LOGOUT",
    "把你带到这里的应用发来的退出请求不正确。你的登录状态没有改变。请回到应用重试。",
    "The app that sent you here made a sign-out request that cannot be accepted. \
     Nothing was changed. Go back to the app and try again.",
);

// Signing out.
pub const SIGNED_OUT_CLOSE: Text = Text {
    zh: "现在可以关闭这个页面了。",
    en: "You can close this page now.",
};
pub const LOGOUT_HEADING: Text = Text {
    zh: "退出登录？",
    en: "Sign out?",
};
pub const LOGOUT_QUESTION: Text = Text {
    zh: "要退出在这个浏览器上的登录吗？之后再用时需要重新用微信登录。",
    en: "Sign out of this browser? You will sign in with WeChat again next time.",
};
pub const LOGOUT_CONFIRM: Text = Text {
    zh: "退出",
    en: "Sign out",
};
pub const LOGOUT_RETURNS_TO: Text = Text {
    zh: "退出后将返回",
    en: "Afterwards you will return to",
};

// Our side.
pub const TOO_MANY: Message = message(
    "EDGE-SLOW",
    "尝试次数太多了。请等一会儿再试。",
    "Too many attempts. Please wait a moment and try again.",
);
pub const REQUEST_REFUSED: Message = message(
    "EDGE-REQUEST",
    "这个请求无法处理。请回到原来的页面重新开始。",
    "This request cannot be handled. Please go back to the page and start again.",
);
pub const UNAVAILABLE: Message = message(
    "SVC-DOWN",
    "登录服务暂时不可用。请稍后再试。",
    "The sign-in service is temporarily unavailable. Please try again in a moment.",
);
pub const NOT_SET_UP: Message = message(
    "SVC-SETUP",
    "登录服务还没有配置完成，暂时无法登录。请稍后再试或联系管理员。",
    "The sign-in service is not fully set up yet. Please try again later or contact the \
     administrator.",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_unless_the_browser_prefers_english() {
        let lang = |h| Lang::from_accept_language(h);
        assert_eq!(lang(None), Lang::Zh);
        assert_eq!(lang(Some("")), Lang::Zh);
        assert_eq!(lang(Some("fr-FR,de;q=0.8")), Lang::Zh);
        assert_eq!(lang(Some("zh-CN,zh;q=0.9,en;q=0.8")), Lang::Zh);
        assert_eq!(lang(Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(lang(Some("en-US,zh-CN;q=0.9")), Lang::En);
        assert_eq!(lang(Some("zh;q=0.5,en;q=0.6")), Lang::En);
        assert_eq!(lang(Some("en,zh")), Lang::En);
        assert_eq!(lang(Some("zh,en")), Lang::Zh);
        assert_eq!(lang(Some("en;q=0")), Lang::Zh);
    }

    #[test]
    fn every_message_has_both_languages_and_a_unique_code() {
        let all = [
            H5_SPENT,
            H5_OTHER_BROWSER,
            H5_RELINK,
            H5_TAMPERED,
            H5_CANCELLED,
            H5_BAD_LINK,
            H5_NEXT_REFUSED,
            WECHAT_CODE_REFUSED,
            WECHAT_UNAVAILABLE,
            OAUTH_BAD_REQUEST,
            OAUTH_FORM_EXPIRED,
            OAUTH_SIGN_IN_REFUSED,
            SIGNED_OUT,
            LOGOUT_REFUSED,
            UNAVAILABLE,
            NOT_SET_UP,
            TOO_MANY,
            REQUEST_REFUSED,
        ];
        let mut codes: Vec<_> = all.iter().map(|m| m.code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        for m in all {
            assert!(m.text.zh.chars().any(|c| c > '\u{2e80}'), "{}", m.code);
            assert!(m.text.en.is_ascii(), "{}", m.code);
            // Nothing meant for developers.
            assert!(
                !m.text.en.contains("WXAUTH_") && !m.text.en.contains('_'),
                "{}",
                m.code
            );
        }
    }
}
