//! `friend_request`: a pending request from one account to another (SPEC.md §6.2, §6.7).

use sea_orm::entity::prelude::*;

/// A pending friend request. At most one per (from, to) pair.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "friend_request")]
pub struct Model {
    /// Row id; also orders requests oldest first.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The requester.
    pub from_id: i64,
    /// The target.
    pub to_id: i64,
    /// When it was sent, Unix ms.
    pub created_at_ms: i64,
    /// When it expires unless answered, Unix ms.
    pub expires_at_ms: i64,
}

/// Both ends reference `account`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The requester.
    #[sea_orm(
        belongs_to = "super::account::Entity",
        from = "Column::FromId",
        to = "super::account::Column::Id"
    )]
    From,
    /// The target.
    #[sea_orm(
        belongs_to = "super::account::Entity",
        from = "Column::ToId",
        to = "super::account::Column::Id"
    )]
    To,
}

impl ActiveModelBehavior for ActiveModel {}
