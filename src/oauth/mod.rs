//! The OAuth 2.0 core: clients, grants, tokens and keys. It builds on oxide-auth's primitives and
//! grant state machines and knows nothing of axum; `crate::http::oauth` is its HTTP face.

pub mod allowed_origins;
pub mod authenticated_client;
pub mod authorize;
pub mod backchannel;
pub mod client_auth;
pub mod client_registry;
pub mod codes;
pub mod consent;
pub mod device;
pub mod end_session;
pub mod error;
pub mod grant_type;
pub mod grants;
pub mod id_token;
pub mod introspection;
mod issuance_writer;
pub mod keys;
pub mod login_tickets;
pub mod metadata;
pub mod mini_program_sign_in;
pub mod params;
pub mod resources;
pub mod revocation;
pub mod seed_fields;
pub mod token_endpoint;
pub mod token_issuer;
pub mod token_service;
pub mod userinfo;

use std::sync::Arc;

pub use client_registry::{
    ClientChanges, ClientLogout, ClientRegistry, FlowTicketPolicy, NewClient, RegisteredClient,
};
pub use error::{OAuthError, OAuthErrorCode};
pub use grant_type::GrantType;
pub use login_tickets::{LoginTickets, Redeemed};

use crate::app_registry::AppRegistry;
use crate::audit::Audit;
use crate::oauth::authorize::AuthorizationService;
use crate::users::UserRepo;
use mini_program_sign_in::MiniProgramSignIn;
use token_service::TokenService;

/// Everything the grants need, shared.
#[derive(Clone)]
pub struct OAuthServices {
    pub clients: ClientRegistry,
    pub apps: AppRegistry,
    pub users: Arc<dyn UserRepo>,
    pub tickets: LoginTickets,
    pub tokens: TokenService,
    /// Mini Program code exchange, for the `mini_program` grant (the login side's
    /// `MiniProgramLogin`).
    pub mini_program: Arc<dyn MiniProgramSignIn>,
    /// Authorization requests and codes, for the `authorization_code` grant.
    pub authorization: AuthorizationService,
    /// The audit trail (token issuance and refusals).
    pub audit: Audit,
    /// Device authorizations, for the device grant (RFC 8628).
    pub devices: device::DeviceAuthorizations,
}
