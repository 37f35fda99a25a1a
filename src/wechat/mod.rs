//! The WeChat adapter: everything wxauth says to api.weixin.qq.com and open.weixin.qq.com.
//!
//! - [`client`]: the one reqwest client (injected base URLs, timeouts, status → errcode → decode,
//!   bounded retries);
//! - [`types`]: typed ids and redacted secrets; [`error`]: [`WeChatError`] and whose fault each
//!   failure is;
//! - [`mini_program`], [`mini_program_code`], [`official_account`], [`open_platform`]: the raw
//!   calls and URL builders; [`content_security`]: `msg_sec_check`, whether a text a user typed
//!   may be shown; [`account_messages`]: what WeChat pushes to an Official Account's message URL,
//!   verified and typed;
//! - [`token_cache`]: upstream tokens, fetched once per expiry across tasks and instances, each
//!   caller answered within 15 s;
//! - [`call_ledger`]: calls and errors per app and day, summed over instances;
//! - [`code_exchange`]: one exchange per `wx.login` code, so a repeated code gets the same answer;
//! - [`crypto`]: mini-program data decryption and WXBizMsgCrypt;
//! - [`jssdk`]: the JS-SDK's `jsapi_ticket` and its `wx.config` signature;
//! - [`facade`]: [`WeChat`], the facade the login code calls, which adds stored credentials,
//!   the token cache and the refetch-once rule for invalid tokens.

pub mod account_messages;
pub mod call_ledger;
pub mod client;
pub mod code_exchange;
pub mod content_security;
pub mod crypto;
pub mod error;
pub mod facade;
pub mod jssdk;
pub mod mini_program;
pub mod mini_program_code;
pub mod official_account;
pub mod open_platform;
pub mod token_cache;
pub mod types;

pub use client::{RetryPolicy, WeChatClient, WeChatClientConfig};
pub use error::WeChatError;
pub use facade::{ComponentPush, PushParams, WeChat};
pub use token_cache::{TokenCache, TokenCacheConfig};
pub use types::{AccessToken, AppId, AppSecret, OpenId, RefreshToken, Scope, SessionKey, UnionId};
