//! The wxauth integration suite: one binary, a harness that starts the real app on 127.0.0.1:0
//! with a fresh database (SQLite, and PostgreSQL / MariaDB when their URLs are set), and one
//! module per capability.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod browser;
mod harness;

mod abuse;
mod admin_api;
mod allowlist;
mod audit;
mod cli;
mod client_quirks;
mod component;
mod console;
mod console_browser;
mod console_sign_in;
mod cors;
mod credentials;
mod device_approval;
mod device_flow;
mod followers;
mod foundation;
mod front_page;
mod h5;
mod h5_binding;
mod h5_browser;
mod id_tokens;
mod instances;
mod jssdk;
mod logout;
mod merges;
mod metrics;
mod mini_program;
mod oauth;
mod oauth_hardening;
mod oidc;
mod oidc_browser;
mod oidc_client;
mod oidc_python;
mod open_data;
mod openapi;
mod pages;
mod phone_reuse;
mod profile;
mod races;
mod resources;
mod simulator;
mod spa_browser;
mod ticket_clients;
mod users;
mod web_view;
mod webhooks;
mod wechat;
