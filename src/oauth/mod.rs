//! The OAuth 2.0 core: clients, grants, tokens and keys. It builds on oxide-auth's primitives and
//! grant state machines and knows nothing of axum; `crate::http::oauth` is its HTTP face.

pub mod client_registry;
pub mod error;

pub use client_registry::{ClientRegistry, FlowTicketPolicy, NewClient, RegisteredClient};
pub use error::{OAuthError, OAuthErrorCode};
