//! Where WeChat's word becomes our user: the Mini Program session ([`mini_program`], its rows
//! written in batches by `session_writes`) with its profile pickers ([`profile`]) and the silent
//! sign-in of its `<web-view>` pages ([`web_view`]), the H5 two-hop authorization of Official
//! Account pages ([`h5`]) and the redirect allowlist it checks `next` against ([`redirect`]), the
//! JS-SDK configuration of those same pages ([`jssdk`]), for pages on that allowlist, the
//! Official Account follower status ([`followers`]) and the Mini Program approving devices
//! ([`device_approval`]).

pub mod browser_session;
pub mod device_approval;
pub mod error;
pub mod followers;
pub mod h5;
pub mod jssdk;
pub mod logout;
pub mod mini_program;
pub mod profile;
pub mod redirect;
mod session_writes;
pub mod states;
pub mod web_sign_in;
pub mod web_view;

pub use browser_session::{BrowserSession, BrowserSessions, SignInMethod};
pub use device_approval::DeviceApproval;
pub use error::LoginError;
pub use followers::FollowerSync;
pub use h5::{
    CallbackParams, EntryHop, H5Error, H5Failure, H5Login, H5Urls, SignInRequest, SignedIn,
};
pub use jssdk::{JsSdk, JsSdkConfig, JsSdkError};
pub use mini_program::MiniProgramLogin;
pub use profile::MiniProgramProfiles;
pub use redirect::{RedirectError, RedirectPolicy};
pub use states::AuthStates;
pub use web_sign_in::WeChatSignIn;
pub use web_view::WebViewSignIn;
