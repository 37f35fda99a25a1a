//! The seam between the `mini_program` grant and the login side: the OAuth core defines what it
//! needs ([`MiniProgramSignIn`]) and `login::MiniProgramLogin` implements it, so `oauth/` never
//! imports `login/`.

use crate::fault::Fault;
use crate::users::Account;

/// What the `mini_program` grant needs from the login side, which implements it
/// (`login::MiniProgramLogin`): a `wx.login` code exchanged, its identity recorded and a
/// server-side session opened.
#[async_trait::async_trait]
pub trait MiniProgramSignIn: Send + Sync {
    /// Exchange `code` for `appid`; a failure says only whose fault it is.
    async fn sign_in(&self, appid: &str, code: &str) -> Result<MiniProgramSignedIn, Fault>;
}

/// A Mini Program sign-in, as the grant sees it.
#[derive(Debug, Clone)]
pub struct MiniProgramSignedIn {
    /// The account the identity signs in as.
    pub account: Account,
    /// The opaque handle of the server-side session (shown once).
    pub session_id: String,
}
