//! The authorization-code flow and OpenID Connect: authorization codes (single-use, bound to
//! client, redirect URI and PKCE challenge, linked to the tokens issued from them so a replay
//! can revoke those), browser sessions, and remembered consents (one row per scope, so that
//! consents given at once only add rows).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Short keys (ids, hashes) are bounded so that MySQL can index them.
const KEY: u32 = 128;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AuthorizationCode::Table)
                .if_not_exists()
                .col(string_len(AuthorizationCode::CodeHash, KEY).primary_key())
                .col(string_len(AuthorizationCode::ClientId, KEY))
                .col(string_len(AuthorizationCode::OwnerId, KEY))
                .col(text(AuthorizationCode::RedirectUri))
                .col(text(AuthorizationCode::Scope))
                .col(text(AuthorizationCode::Extensions))
                .col(big_integer(AuthorizationCode::ExpiresAt))
                .col(big_integer_null(AuthorizationCode::UsedAt))
                .col(string_len_null(AuthorizationCode::IssuedFamilyId, KEY))
                .col(string_len_null(AuthorizationCode::IssuedJti, KEY))
                .col(big_integer_null(AuthorizationCode::IssuedJtiExp))
                .col(big_integer(AuthorizationCode::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(BrowserSession::Table)
                .if_not_exists()
                .col(string_len(BrowserSession::IdHash, KEY).primary_key())
                .col(big_integer(BrowserSession::AccountId))
                .col(string_len(BrowserSession::Method, 32))
                .col(big_integer(BrowserSession::AuthTime))
                .col(big_integer(BrowserSession::ExpiresAt))
                .col(big_integer(BrowserSession::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Consent::Table)
                .if_not_exists()
                .col(big_integer(Consent::AccountId))
                .col(string_len(Consent::ClientId, KEY))
                .col(string_len(Consent::Scope, KEY))
                .col(big_integer(Consent::GrantedAt))
                .primary_key(
                    Index::create()
                        .col(Consent::AccountId)
                        .col(Consent::ClientId)
                        .col(Consent::Scope),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Consent::Table.into_iden(),
            BrowserSession::Table.into_iden(),
            AuthorizationCode::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum AuthorizationCode {
    Table,
    CodeHash,
    ClientId,
    OwnerId,
    RedirectUri,
    Scope,
    Extensions,
    ExpiresAt,
    UsedAt,
    IssuedFamilyId,
    IssuedJti,
    IssuedJtiExp,
    CreatedAt,
}

#[derive(DeriveIden)]
enum BrowserSession {
    Table,
    IdHash,
    AccountId,
    Method,
    AuthTime,
    ExpiresAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Consent {
    Table,
    AccountId,
    ClientId,
    Scope,
    GrantedAt,
}
