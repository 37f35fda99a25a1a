//! The WeChat credential broker (issue 17 §2):
//! - `oauth_client.wechat_appids`: the WeChat apps whose upstream credentials a client may
//!   fetch at `POST /api/wechat/credentials` (newline-separated appids; NULL for none, so
//!   existing rows need no default: MySQL gives TEXT columns none);
//! - `wechat_token.forced_at`: when a forced refresh last dropped the row's token (unix
//!   seconds, 0 for never), so that one conditional UPDATE lets one request per minute and app
//!   through across every instance.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OauthClient {
    Table,
    WechatAppids,
}

#[derive(DeriveIden)]
enum WechatToken {
    Table,
    ForcedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(OauthClient::Table)
                .add_column(ColumnDef::new(OauthClient::WechatAppids).text().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(WechatToken::Table)
                .add_column(
                    ColumnDef::new(WechatToken::ForcedAt)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(WechatToken::Table)
                .drop_column(WechatToken::ForcedAt)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(OauthClient::Table)
                .drop_column(OauthClient::WechatAppids)
                .to_owned(),
        )
        .await
    }
}
