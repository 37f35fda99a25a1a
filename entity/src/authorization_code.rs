//! An authorization code (RFC 6749 §4.1): single-use, short-lived, bound to its client, redirect
//! URI and PKCE challenge (in `extensions`), and linked to the tokens issued from it.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "authorization_code")]
pub struct Model {
    /// Keyed hash of the code.
    #[sea_orm(primary_key, auto_increment = false)]
    pub code_hash: String,
    pub client_id: String,
    /// The account id.
    pub owner_id: String,
    #[sea_orm(column_type = "Text")]
    pub redirect_uri: String,
    #[sea_orm(column_type = "Text")]
    pub scope: String,
    /// oxide-auth grant extensions (PKCE challenge, nonce, auth_time) as JSON.
    #[sea_orm(column_type = "Text")]
    pub extensions: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// The refresh-token family and access token issued from this code, revoked on replay.
    pub issued_family_id: Option<String>,
    pub issued_jti: Option<String>,
    pub issued_jti_exp: Option<i64>,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
