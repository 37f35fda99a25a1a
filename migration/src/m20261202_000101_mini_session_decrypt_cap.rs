//! A Mini Program session counts the decryptions that failed under its session_key, so that the
//! session can be ended after a few (a CBC padding oracle needs thousands), and the decryptions
//! under way, so that a burst of parallel requests cannot decrypt more than the cap allows.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one column at a time.
        for column in [MiniSession::DecryptFailures, MiniSession::DecryptPending] {
            m.alter_table(
                Table::alter()
                    .table(MiniSession::Table)
                    .add_column(integer(column).default(0))
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [MiniSession::DecryptFailures, MiniSession::DecryptPending] {
            m.alter_table(
                Table::alter()
                    .table(MiniSession::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum MiniSession {
    Table,
    DecryptFailures,
    DecryptPending,
}
