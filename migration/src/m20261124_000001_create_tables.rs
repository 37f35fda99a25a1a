//! The initial schema: clients, signing keys, WeChat apps and identities, accounts, sessions,
//! tickets, refresh tokens, upstream token cache, component tickets and the audit log.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Short keys (ids, hashes, appids) are bounded so that MySQL can index them.
const KEY: u32 = 128;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(OauthClient::Table)
                .if_not_exists()
                .col(string_len(OauthClient::ClientId, KEY).primary_key())
                .col(string_len_null(OauthClient::SecretHash, KEY))
                .col(string_len(OauthClient::GrantTypes, 512))
                .col(string_len(OauthClient::Scopes, 1024))
                .col(text(OauthClient::RedirectUris))
                .col(boolean(OauthClient::IsPublic))
                .col(boolean(OauthClient::FirstParty))
                .col(big_integer(OauthClient::AccessTokenTtl))
                .col(big_integer(OauthClient::RefreshTokenTtl))
                .col(string_len(OauthClient::FlowTicket, 16))
                .col(big_integer(OauthClient::CreatedAt))
                .col(big_integer(OauthClient::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SigningKey::Table)
                .if_not_exists()
                .col(string_len(SigningKey::Kid, KEY).primary_key())
                .col(string_len(SigningKey::Alg, 16))
                .col(text(SigningKey::PrivateKeyEnc))
                .col(text(SigningKey::PublicJwk))
                .col(big_integer(SigningKey::CreatedAt))
                .col(big_integer_null(SigningKey::RetiredAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WxApp::Table)
                .if_not_exists()
                .col(string_len(WxApp::Appid, 32).primary_key())
                .col(string_len(WxApp::Kind, 32))
                .col(text_null(WxApp::SecretEnc))
                .col(string_len_null(WxApp::ComponentAppid, 32))
                .col(boolean(WxApp::IsBase))
                .col(text_null(WxApp::TokenEnc))
                .col(text_null(WxApp::AesKeyEnc))
                .col(text_null(WxApp::AuthorizerRefreshTokenEnc))
                .col(big_integer(WxApp::CreatedAt))
                .col(big_integer(WxApp::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(FlowUser::Table)
                .if_not_exists()
                .col(big_pk_auto(FlowUser::Id))
                .col(string_len_null(FlowUser::UnionId, KEY).unique_key())
                .col(string_len_null(FlowUser::NickName, 255))
                .col(text_null(FlowUser::Avatar))
                .col(string_len_null(FlowUser::Mobile, 32))
                .col(big_integer(FlowUser::CreatedAt))
                .col(big_integer(FlowUser::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WxUser::Table)
                .if_not_exists()
                .col(big_pk_auto(WxUser::Id))
                .col(string_len(WxUser::Appid, 32))
                .col(string_len(WxUser::OpenId, KEY))
                .col(string_len_null(WxUser::UnionId, KEY))
                .col(big_integer_null(WxUser::FlowUserId))
                .col(string_len_null(WxUser::Mobile, 32))
                .col(string_len_null(WxUser::NickName, 255))
                .col(integer_null(WxUser::Sex))
                .col(string_len_null(WxUser::City, 128))
                .col(string_len_null(WxUser::Province, 128))
                .col(string_len_null(WxUser::Country, 128))
                .col(text_null(WxUser::AvatarUrl))
                .col(string_len_null(WxUser::Language, 32))
                .col(integer_null(WxUser::SubscribeFlag))
                .col(big_integer_null(WxUser::SubscribeTime))
                .col(string_len_null(WxUser::SubscribeScene, 64))
                .col(big_integer_null(WxUser::LastLoginTime))
                .col(big_integer(WxUser::CreateTime))
                .col(big_integer(WxUser::UpdateTime))
                .col(boolean(WxUser::DelFlag).default(false))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_wx_user_flow_user")
                        .from(WxUser::Table, WxUser::FlowUserId)
                        .to(FlowUser::Table, FlowUser::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_wx_user_app_openid")
                .table(WxUser::Table)
                .col(WxUser::Appid)
                .col(WxUser::OpenId)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_wx_user_union")
                .table(WxUser::Table)
                .col(WxUser::UnionId)
                .if_not_exists()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(MiniSession::Table)
                .if_not_exists()
                .col(string_len(MiniSession::IdHash, KEY).primary_key())
                .col(string_len(MiniSession::Appid, 32))
                .col(string_len(MiniSession::OpenId, KEY))
                .col(string_len_null(MiniSession::UnionId, KEY))
                .col(text(MiniSession::SessionKeyEnc))
                .col(big_integer(MiniSession::ExpiresAt))
                .col(big_integer(MiniSession::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(LoginTicket::Table)
                .if_not_exists()
                .col(string_len(LoginTicket::TicketHash, KEY).primary_key())
                .col(string_len(LoginTicket::Appid, 32))
                .col(string_len(LoginTicket::OpenId, KEY))
                .col(string_len_null(LoginTicket::UnionId, KEY))
                .col(big_integer(LoginTicket::ExpiresAt))
                .col(big_integer_null(LoginTicket::UsedAt))
                .col(big_integer(LoginTicket::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RefreshToken::Table)
                .if_not_exists()
                .col(string_len(RefreshToken::TokenHash, KEY).primary_key())
                .col(string_len(RefreshToken::FamilyId, KEY))
                .col(string_len(RefreshToken::ClientId, KEY))
                .col(string_len(RefreshToken::OwnerId, KEY))
                .col(string_len(RefreshToken::Scope, 1024))
                .col(text(RefreshToken::Extensions))
                .col(big_integer(RefreshToken::ExpiresAt))
                .col(big_integer(RefreshToken::CreatedAt))
                .col(big_integer_null(RefreshToken::RotatedAt))
                .col(big_integer_null(RefreshToken::RevokedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_refresh_token_family")
                .table(RefreshToken::Table)
                .col(RefreshToken::FamilyId)
                .if_not_exists()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RevokedAccessToken::Table)
                .if_not_exists()
                .col(string_len(RevokedAccessToken::Jti, KEY).primary_key())
                .col(big_integer(RevokedAccessToken::ExpiresAt))
                .col(big_integer(RevokedAccessToken::RevokedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WechatToken::Table)
                .if_not_exists()
                .col(big_pk_auto(WechatToken::Id))
                .col(string_len(WechatToken::Kind, 32))
                .col(string_len(WechatToken::Appid, 32))
                .col(text_null(WechatToken::ValueEnc))
                .col(big_integer(WechatToken::ExpiresAt))
                .col(string_len_null(WechatToken::LeaseOwner, KEY))
                .col(big_integer(WechatToken::LeaseUntil))
                .col(big_integer(WechatToken::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_wechat_token_kind_app")
                .table(WechatToken::Table)
                .col(WechatToken::Kind)
                .col(WechatToken::Appid)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WechatComponentTicket::Table)
                .if_not_exists()
                .col(string_len(WechatComponentTicket::ComponentAppid, 32).primary_key())
                .col(text(WechatComponentTicket::TicketEnc))
                .col(big_integer(WechatComponentTicket::ReceivedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AuditEvent::Table)
                .if_not_exists()
                .col(big_pk_auto(AuditEvent::Id))
                .col(big_integer(AuditEvent::At))
                .col(string_len(AuditEvent::Kind, 64))
                .col(string_len_null(AuditEvent::ClientId, KEY))
                .col(string_len_null(AuditEvent::Subject, KEY))
                .col(text(AuditEvent::Detail))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditEvent::Table.into_iden(),
            WechatComponentTicket::Table.into_iden(),
            WechatToken::Table.into_iden(),
            RevokedAccessToken::Table.into_iden(),
            RefreshToken::Table.into_iden(),
            LoginTicket::Table.into_iden(),
            MiniSession::Table.into_iden(),
            WxUser::Table.into_iden(),
            FlowUser::Table.into_iden(),
            WxApp::Table.into_iden(),
            SigningKey::Table.into_iden(),
            OauthClient::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum OauthClient {
    Table,
    ClientId,
    SecretHash,
    GrantTypes,
    Scopes,
    RedirectUris,
    IsPublic,
    FirstParty,
    AccessTokenTtl,
    RefreshTokenTtl,
    FlowTicket,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SigningKey {
    Table,
    Kid,
    Alg,
    PrivateKeyEnc,
    PublicJwk,
    CreatedAt,
    RetiredAt,
}

#[derive(DeriveIden)]
enum WxApp {
    Table,
    Appid,
    Kind,
    SecretEnc,
    ComponentAppid,
    IsBase,
    TokenEnc,
    AesKeyEnc,
    AuthorizerRefreshTokenEnc,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum FlowUser {
    Table,
    Id,
    UnionId,
    NickName,
    Avatar,
    Mobile,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WxUser {
    Table,
    Id,
    Appid,
    OpenId,
    UnionId,
    FlowUserId,
    Mobile,
    NickName,
    Sex,
    City,
    Province,
    Country,
    AvatarUrl,
    Language,
    SubscribeFlag,
    SubscribeTime,
    SubscribeScene,
    LastLoginTime,
    CreateTime,
    UpdateTime,
    DelFlag,
}

#[derive(DeriveIden)]
enum MiniSession {
    Table,
    IdHash,
    Appid,
    OpenId,
    UnionId,
    SessionKeyEnc,
    ExpiresAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum LoginTicket {
    Table,
    TicketHash,
    Appid,
    OpenId,
    UnionId,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RefreshToken {
    Table,
    TokenHash,
    FamilyId,
    ClientId,
    OwnerId,
    Scope,
    Extensions,
    ExpiresAt,
    CreatedAt,
    RotatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum RevokedAccessToken {
    Table,
    Jti,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum WechatToken {
    Table,
    Id,
    Kind,
    Appid,
    ValueEnc,
    ExpiresAt,
    LeaseOwner,
    LeaseUntil,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WechatComponentTicket {
    Table,
    ComponentAppid,
    TicketEnc,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum AuditEvent {
    Table,
    Id,
    At,
    Kind,
    ClientId,
    Subject,
    Detail,
}
