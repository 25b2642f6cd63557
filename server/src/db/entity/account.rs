//! `account`: one registered user (SPEC.md §5).

use sea_orm::entity::prelude::*;

/// An account row. Secrets are stored only as argon2id PHC strings.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "account")]
pub struct Model {
    /// Internal id, referenced by the other tables.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Registered spelling, shown to others.
    pub userid: String,
    /// ASCII-lowercase userid: the unique lookup key (SPEC.md §2).
    #[sea_orm(unique)]
    pub userid_lower: String,
    /// E-mail as registered.
    pub email: String,
    /// ASCII-lowercase e-mail, unique.
    #[sea_orm(unique)]
    pub email_lower: String,
    /// argon2id PHC string of the password.
    pub password_hash: String,
    /// argon2id PHC string of the normalised recovery code.
    pub recovery_hash: String,
    /// Current identity key, DER SubjectPublicKeyInfo.
    pub identity_key: Vec<u8>,
    /// Registration time, Unix ms.
    pub created_at_ms: i64,
}

/// Accounts are referenced by the other tables; the relations are declared there.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
