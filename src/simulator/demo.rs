//! The demo apps and users that `wxauth dev` and `wxauth simulator` start with. `wxauth dev`
//! registers the same apps (appid, kind, secret, component settings) in wxauth's `wx_app`, so the
//! two sides agree.

use super::world::{SimApp, SimAppKind, SimComponent, SimUser};

/// The Open Platform account the demo mini program, base account and website share.
pub const DEMO_OPEN_PLATFORM: &str = "demo-open-platform";

/// The demo mini program (bound to the Open Platform: jscode2session gives a unionid).
pub const MINI_PROGRAM_APPID: &str = "wxd000000000000001";
pub const MINI_PROGRAM_SECRET: &str = "d0000000000000000000000000000001";
/// The *entry* official account (not bound: silent auth gives the openid only).
pub const ENTRY_ACCOUNT_APPID: &str = "wxd000000000000002";
pub const ENTRY_ACCOUNT_SECRET: &str = "d0000000000000000000000000000002";
/// The *base* official account (bound: `snsapi_userinfo` gives the unionid).
pub const BASE_ACCOUNT_APPID: &str = "wxd000000000000003";
pub const BASE_ACCOUNT_SECRET: &str = "d0000000000000000000000000000003";
/// The third-party platform both official accounts authorized.
pub const COMPONENT_APPID: &str = "wxd000000000000004";
pub const COMPONENT_SECRET: &str = "d0000000000000000000000000000004";
pub const COMPONENT_TOKEN: &str = "wxauthdemotoken";
pub const COMPONENT_AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
/// The website app (QR-code login, `snsapi_login`).
pub const WEBSITE_APPID: &str = "wxd000000000000005";
pub const WEBSITE_SECRET: &str = "d0000000000000000000000000000005";

/// The demo apps; the component pushes tickets to `ticket_push_url` when given (in `wxauth dev`:
/// `{public_url}/api/wechat/component/ticket`).
pub fn apps(ticket_push_url: Option<String>) -> Vec<SimApp> {
    let plain = |appid: &str, secret: &str, kind, platform: Option<&str>| SimApp {
        appid: appid.to_owned(),
        secret: secret.to_owned(),
        kind,
        open_platform: platform.map(str::to_owned),
        component_appid: None,
        component: None,
    };
    vec![
        plain(
            MINI_PROGRAM_APPID,
            MINI_PROGRAM_SECRET,
            SimAppKind::MiniProgram,
            Some(DEMO_OPEN_PLATFORM),
        ),
        SimApp {
            component_appid: Some(COMPONENT_APPID.to_owned()),
            ..plain(
                ENTRY_ACCOUNT_APPID,
                ENTRY_ACCOUNT_SECRET,
                SimAppKind::OfficialAccount,
                None,
            )
        },
        SimApp {
            component_appid: Some(COMPONENT_APPID.to_owned()),
            ..plain(
                BASE_ACCOUNT_APPID,
                BASE_ACCOUNT_SECRET,
                SimAppKind::OfficialAccount,
                Some(DEMO_OPEN_PLATFORM),
            )
        },
        SimApp {
            component: Some(SimComponent {
                token: COMPONENT_TOKEN.to_owned(),
                encoding_aes_key: COMPONENT_AES_KEY.to_owned(),
                ticket_push_url,
            }),
            ..plain(
                COMPONENT_APPID,
                COMPONENT_SECRET,
                SimAppKind::Component,
                None,
            )
        },
        plain(
            WEBSITE_APPID,
            WEBSITE_SECRET,
            SimAppKind::Website,
            Some(DEMO_OPEN_PLATFORM),
        ),
    ]
}

/// Two demo users.
pub fn users() -> Vec<SimUser> {
    vec![
        SimUser {
            phone: "13800000001".to_owned(),
            sex: 2,
            ..SimUser::new("alice", "Alice 爱丽丝")
        },
        SimUser {
            phone: "13800000002".to_owned(),
            sex: 1,
            ..SimUser::new("bob", "Bob")
        },
    ]
}

/// The same demo apps as wxauth registers them in `wx_app` (for `wxauth dev`): the official
/// accounts are managed by the component (no secret of their own), the base account is marked
/// `is_base`, the component carries its message token and EncodingAESKey.
pub fn registry_apps() -> Vec<crate::app_registry::NewApp> {
    use crate::app_registry::{AppKind, NewApp};
    use crate::secret::Secret;
    let app = |appid: &str, kind, secret: Option<&str>| NewApp {
        appid: appid.to_owned(),
        kind,
        secret: secret.map(Secret::new),
        component_appid: None,
        is_base: false,
        token: None,
        aes_key: None,
    };
    // The component first: an account names a component that must already be registered.
    vec![
        app(
            MINI_PROGRAM_APPID,
            AppKind::MiniProgram,
            Some(MINI_PROGRAM_SECRET),
        ),
        NewApp {
            token: Some(Secret::new(COMPONENT_TOKEN)),
            aes_key: Some(Secret::new(COMPONENT_AES_KEY)),
            ..app(COMPONENT_APPID, AppKind::Component, Some(COMPONENT_SECRET))
        },
        NewApp {
            component_appid: Some(COMPONENT_APPID.to_owned()),
            ..app(ENTRY_ACCOUNT_APPID, AppKind::OfficialAccount, None)
        },
        NewApp {
            component_appid: Some(COMPONENT_APPID.to_owned()),
            is_base: true,
            ..app(BASE_ACCOUNT_APPID, AppKind::OfficialAccount, None)
        },
        app(WEBSITE_APPID, AppKind::Website, Some(WEBSITE_SECRET)),
    ]
}
