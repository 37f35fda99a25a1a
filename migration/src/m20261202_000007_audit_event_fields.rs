//! The audit trail gets what an investigation asks first: which account, from which address,
//! with what outcome and done by whom, plus indexes for the filters `wxauth audit` offers and for
//! the janitor's retention sweep.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvent {
    Table,
    At,
    Kind,
    ClientId,
    AccountId,
    Ip,
    Outcome,
    Actor,
}

/// (index name, column) pairs.
const INDEXES: &[(&str, &str)] = &[
    ("ix_audit_event_at", "at"),
    ("ix_audit_event_account", "account_id"),
    ("ix_audit_event_client", "client_id"),
    ("ix_audit_event_kind", "kind"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one column at a time.
        m.alter_table(
            Table::alter()
                .table(AuditEvent::Table)
                .add_column(ColumnDef::new(AuditEvent::AccountId).big_integer().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(AuditEvent::Table)
                .add_column(ColumnDef::new(AuditEvent::Ip).string_len(64).null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(AuditEvent::Table)
                .add_column(
                    ColumnDef::new(AuditEvent::Outcome)
                        .string_len(16)
                        .not_null()
                        .default("ok"),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(AuditEvent::Table)
                .add_column(ColumnDef::new(AuditEvent::Actor).string_len(128).null())
                .to_owned(),
        )
        .await?;
        for (name, column) in INDEXES {
            m.create_index(
                Index::create()
                    .name(*name)
                    .table(AuditEvent::Table)
                    .col(Alias::new(*column))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        }
        // Keep the DeriveIden variants in use for the columns indexed above.
        let _ = (AuditEvent::At, AuditEvent::Kind, AuditEvent::ClientId);
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, _) in INDEXES {
            m.drop_index(
                Index::drop()
                    .name(*name)
                    .table(AuditEvent::Table)
                    .to_owned(),
            )
            .await?;
        }
        for column in [
            AuditEvent::AccountId,
            AuditEvent::Ip,
            AuditEvent::Outcome,
            AuditEvent::Actor,
        ] {
            m.alter_table(
                Table::alter()
                    .table(AuditEvent::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
