//! Where WeChat's word becomes our user: login tickets, the Mini Program session and the H5
//! two-hop authorization.

pub mod error;
pub mod mini_program;
pub mod ticket;

pub use error::LoginError;
pub use mini_program::MiniProgramLogin;
pub use ticket::{LoginTickets, TicketIdentity};
