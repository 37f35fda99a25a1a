//! Database migrations for wxauth, one file per schema change.
//!
//! Migrations never import the `entity` crate: they describe the schema as it was at the time of
//! each change, so that old migrations keep compiling when entities move on.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_tables;
mod m20261124_000002_h5_states;
mod m20261124_000003_mini_session_identity_index;
mod m20261124_000004_authorization_code_flow;
mod m20261124_000005_auth_state_browser;
mod m20261124_000006_expiry_indexes;
mod m20261202_000007_audit_event_fields;
mod m20261202_000101_mini_session_decrypt_cap;
mod m20261202_000102_phone_provenance;
mod m20261202_000103_login_ticket_client;
mod m20261202_000104_h5_state_client_and_nonce;
mod m20261202_000201_refresh_token_family;
mod m20261202_000202_client_resource_server;
mod m20261202_000301_auth_state_client_ip;
mod m20261202_000302_wechat_code_exchange;
mod m20261202_000303_mini_session_key_hash;
mod m20261210_000401_administration;
mod m20261210_000402_admin_role;
mod m20261215_000501_client_token_options;
mod m20261215_000511_client_allowed_origins;
mod m20261215_000521_client_logout;
mod m20261215_000531_resources;
mod m20261215_000541_device_authorization;
mod m20261215_000551_wechat_call_day;
mod m20261215_000561_account_phone_parts;
mod m20261216_000101_wechat_credentials;
mod m20261216_000201_webhooks_and_merges;
mod m20261216_000301_follower_status;
mod m20261216_000401_avatars;
mod m20261216_000402_nickname_checks;
mod m20261216_000403_web_view_tickets;
mod m20261217_000101_mini_current_key;

/// Every migration, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_tables::Migration),
            Box::new(m20261124_000002_h5_states::Migration),
            Box::new(m20261124_000003_mini_session_identity_index::Migration),
            Box::new(m20261124_000004_authorization_code_flow::Migration),
            Box::new(m20261124_000005_auth_state_browser::Migration),
            Box::new(m20261124_000006_expiry_indexes::Migration),
            Box::new(m20261202_000007_audit_event_fields::Migration),
            Box::new(m20261202_000101_mini_session_decrypt_cap::Migration),
            Box::new(m20261202_000102_phone_provenance::Migration),
            Box::new(m20261202_000103_login_ticket_client::Migration),
            Box::new(m20261202_000104_h5_state_client_and_nonce::Migration),
            Box::new(m20261202_000201_refresh_token_family::Migration),
            Box::new(m20261202_000202_client_resource_server::Migration),
            Box::new(m20261202_000301_auth_state_client_ip::Migration),
            Box::new(m20261202_000302_wechat_code_exchange::Migration),
            Box::new(m20261202_000303_mini_session_key_hash::Migration),
            Box::new(m20261210_000401_administration::Migration),
            Box::new(m20261210_000402_admin_role::Migration),
            Box::new(m20261215_000501_client_token_options::Migration),
            Box::new(m20261215_000511_client_allowed_origins::Migration),
            Box::new(m20261215_000521_client_logout::Migration),
            Box::new(m20261215_000531_resources::Migration),
            Box::new(m20261215_000541_device_authorization::Migration),
            Box::new(m20261215_000551_wechat_call_day::Migration),
            Box::new(m20261215_000561_account_phone_parts::Migration),
            Box::new(m20261216_000101_wechat_credentials::Migration),
            Box::new(m20261216_000401_avatars::Migration),
            Box::new(m20261216_000402_nickname_checks::Migration),
            Box::new(m20261216_000403_web_view_tickets::Migration),
            Box::new(m20261216_000301_follower_status::Migration),
            Box::new(m20261216_000201_webhooks_and_merges::Migration),
            Box::new(m20261217_000101_mini_current_key::Migration),
        ]
    }
}
