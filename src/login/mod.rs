//! Where WeChat's word becomes our user: login tickets, the H5 two-hop authorization of Official
//! Account pages ([`h5`]) and the redirect allowlist it checks `next` against ([`redirect`]).

pub mod h5;
pub mod redirect;
pub mod ticket;

pub use h5::{CallbackParams, H5Error, H5Failure, H5Login, H5Urls, SignedIn};
pub use redirect::{RedirectError, RedirectPolicy};
pub use ticket::{LoginTickets, TicketIdentity};
