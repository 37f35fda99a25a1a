//! `mobile_pure` and `mobile_country_code` on `flow_user` (issue 18 §5): the parts of a phone
//! number WeChat's code API verified, so that a later request may be answered from them instead
//! of paying for another exchange. NULL for numbers stored before (they are not reused).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FlowUser {
    Table,
    MobilePure,
    MobileCountryCode,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in [FlowUser::MobilePure, FlowUser::MobileCountryCode] {
            m.alter_table(
                Table::alter()
                    .table(FlowUser::Table)
                    .add_column(ColumnDef::new(column).string_len(32).null())
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [FlowUser::MobilePure, FlowUser::MobileCountryCode] {
            m.alter_table(
                Table::alter()
                    .table(FlowUser::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
