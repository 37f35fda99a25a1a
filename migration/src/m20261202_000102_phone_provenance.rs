//! A stored phone number says where it came from — `code_api` (WeChat's server answered
//! getuserphonenumber) or `encrypted_data` (the older form a client relays, which carries no MAC)
//! — and when it was verified, on the identity and on its account.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one column at a time.
        for table in [Alias::new("wx_user"), Alias::new("flow_user")] {
            m.alter_table(
                Table::alter()
                    .table(table.clone())
                    .add_column(string_len_null(Phone::MobileSource, 16))
                    .to_owned(),
            )
            .await?;
            m.alter_table(
                Table::alter()
                    .table(table)
                    .add_column(big_integer_null(Phone::MobileVerifiedAt))
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [Alias::new("wx_user"), Alias::new("flow_user")] {
            for column in [Phone::MobileSource, Phone::MobileVerifiedAt] {
                m.alter_table(
                    Table::alter()
                        .table(table.clone())
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
            }
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Phone {
    MobileSource,
    MobileVerifiedAt,
}
