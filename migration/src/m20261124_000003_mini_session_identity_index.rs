//! Mini Program sessions are looked up by identity on every login (a new `wx.login` replaces the
//! identity's earlier sessions): index (appid, open_id).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name("ix_mini_session_identity")
                .table(MiniSession::Table)
                .col(MiniSession::Appid)
                .col(MiniSession::OpenId)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ix_mini_session_identity")
                .table(MiniSession::Table)
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum MiniSession {
    Table,
    Appid,
    OpenId,
}
