//! Where WeChat's word becomes our user: the Mini Program session
//! ([`mini_program`]), the H5 two-hop authorization of Official Account pages ([`h5`]) and the
//! redirect allowlist it checks `next` against ([`redirect`]), the Official Account follower
//! status ([`followers`]) and the Mini Program approving devices ([`device_approval`]).

pub mod browser_session;
pub mod device_approval;
pub mod error;
pub mod followers;
pub mod h5;
pub mod logout;
pub mod mini_program;
pub mod redirect;
pub mod states;
pub mod web_sign_in;

pub use browser_session::{BrowserSession, BrowserSessions, SignInMethod};
pub use device_approval::DeviceApproval;
pub use error::LoginError;
pub use followers::FollowerSync;
pub use h5::{
    CallbackParams, EntryHop, H5Error, H5Failure, H5Login, H5Urls, SignInRequest, SignedIn,
};
pub use mini_program::MiniProgramLogin;
pub use redirect::{RedirectError, RedirectPolicy};
pub use states::AuthStates;
pub use web_sign_in::WeChatSignIn;
