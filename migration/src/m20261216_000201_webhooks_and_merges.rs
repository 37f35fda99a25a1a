//! Signed webhooks (issue 17 §4) and account merges (issue 18 §3).
//!
//! - `webhook_endpoint`: a receiver (URL, the events it wants, its signing secret sealed by the
//!   vault).
//! - `webhook_delivery`: the outbox, one row per event and endpoint, written in the transaction
//!   of the change it reports; a worker claims a due row with a lease, posts it, and records the
//!   outcome (delivered, retried later, or dead after 24 hours).
//! - `account_merge`: merges waiting for an administrator (`WXAUTH_MERGE_POLICY=queue`) and the
//!   decisions taken on them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEndpoint {
    Table,
    Id,
    Url,
    Events,
    SecretEnc,
    Description,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookDelivery {
    Table,
    Id,
    EventId,
    EndpointId,
    EventType,
    Payload,
    CreatedAt,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    LeaseOwner,
    DeliveredAt,
    DeadAt,
    LastStatus,
    LastError,
}

#[derive(DeriveIden)]
enum AccountMerge {
    Table,
    Id,
    SurvivorId,
    MergedId,
    UnionId,
    Status,
    RequestedAt,
    DecidedAt,
    DecidedBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(WebhookEndpoint::Table)
                .if_not_exists()
                .col(big_pk_auto(WebhookEndpoint::Id))
                .col(text(WebhookEndpoint::Url))
                .col(text(WebhookEndpoint::Events))
                .col(text(WebhookEndpoint::SecretEnc))
                .col(string_len_null(WebhookEndpoint::Description, 200))
                .col(big_integer(WebhookEndpoint::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WebhookDelivery::Table)
                .if_not_exists()
                .col(big_pk_auto(WebhookDelivery::Id))
                .col(string_len(WebhookDelivery::EventId, 64))
                .col(big_integer(WebhookDelivery::EndpointId))
                .col(string_len(WebhookDelivery::EventType, 64))
                .col(text(WebhookDelivery::Payload))
                .col(big_integer(WebhookDelivery::CreatedAt))
                .col(integer(WebhookDelivery::Attempts).default(0))
                .col(big_integer(WebhookDelivery::NextAttemptAt))
                .col(big_integer_null(WebhookDelivery::LeaseUntil))
                .col(string_len_null(WebhookDelivery::LeaseOwner, 64))
                .col(big_integer_null(WebhookDelivery::DeliveredAt))
                .col(big_integer_null(WebhookDelivery::DeadAt))
                .col(integer_null(WebhookDelivery::LastStatus))
                .col(string_len_null(WebhookDelivery::LastError, 500))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_delivery_due")
                .table(WebhookDelivery::Table)
                .col(WebhookDelivery::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_delivery_event_endpoint")
                .table(WebhookDelivery::Table)
                .col(WebhookDelivery::EventId)
                .col(WebhookDelivery::EndpointId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AccountMerge::Table)
                .if_not_exists()
                .col(big_pk_auto(AccountMerge::Id))
                .col(big_integer(AccountMerge::SurvivorId))
                .col(big_integer(AccountMerge::MergedId))
                .col(string_len(AccountMerge::UnionId, 128))
                .col(string_len(AccountMerge::Status, 16))
                .col(big_integer(AccountMerge::RequestedAt))
                .col(big_integer_null(AccountMerge::DecidedAt))
                .col(string_len_null(AccountMerge::DecidedBy, 128))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_account_merge_pair")
                .table(AccountMerge::Table)
                .col(AccountMerge::SurvivorId)
                .col(AccountMerge::MergedId)
                .col(AccountMerge::Status)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AccountMerge::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(WebhookDelivery::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(WebhookEndpoint::Table).to_owned())
            .await
    }
}
