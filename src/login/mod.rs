//! Where WeChat's word becomes our user: login tickets now; the Mini Program session and the H5
//! two-hop authorization build on them.

pub mod ticket;

pub use ticket::{LoginTickets, TicketIdentity};
