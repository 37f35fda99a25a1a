//! The device authorization grant (RFC 8628): one row per `POST /oauth/device_authorization`,
//! keyed by the device code's keyed hash, with the user code's keyed hash (unique), the client,
//! the scope, where the user's decision stands, and the polling interval the device must keep.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(DeviceAuthorization::Table)
                .if_not_exists()
                .col(string_len(DeviceAuthorization::DeviceCodeHash, 128).primary_key())
                .col(string_len_uniq(DeviceAuthorization::UserCodeHash, 128))
                .col(string_len(DeviceAuthorization::ClientId, 128))
                .col(text(DeviceAuthorization::Scope))
                .col(string_len(DeviceAuthorization::Status, 16))
                .col(big_integer_null(DeviceAuthorization::AccountId))
                .col(big_integer_null(DeviceAuthorization::AuthTime))
                .col(integer(DeviceAuthorization::PollInterval))
                .col(big_integer_null(DeviceAuthorization::LastPolledAt))
                .col(big_integer_null(DeviceAuthorization::DecidedAt))
                .col(big_integer(DeviceAuthorization::ExpiresAt))
                .col(big_integer(DeviceAuthorization::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_device_authorization_expires_at")
                .table(DeviceAuthorization::Table)
                .col(DeviceAuthorization::ExpiresAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(DeviceAuthorization::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum DeviceAuthorization {
    Table,
    DeviceCodeHash,
    UserCodeHash,
    ClientId,
    Scope,
    Status,
    AccountId,
    AuthTime,
    PollInterval,
    LastPolledAt,
    DecidedAt,
    ExpiresAt,
    CreatedAt,
}
