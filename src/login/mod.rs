//! Where WeChat's word becomes our user: login tickets, and the redirect allowlist a login checks
//! `next` against ([`redirect`]).

pub mod redirect;
pub mod ticket;

pub use redirect::{RedirectError, RedirectPolicy};
pub use ticket::{LoginTickets, TicketIdentity};
