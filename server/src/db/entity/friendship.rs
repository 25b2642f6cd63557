//! `friendship`: one row per pair of friends, with `user_a < user_b` so each pair is stored
//! exactly once (friendship is symmetric, SPEC.md §1.1).

use sea_orm::entity::prelude::*;

/// A friendship between accounts `user_a` and `user_b` (`user_a < user_b`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "friendship")]
pub struct Model {
    /// The account with the smaller id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_a: i64,
    /// The account with the larger id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_b: i64,
    /// When they became friends, Unix ms.
    pub created_at_ms: i64,
}

/// Both ends reference `account`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The `user_a` account.
    #[sea_orm(
        belongs_to = "super::account::Entity",
        from = "Column::UserA",
        to = "super::account::Column::Id"
    )]
    UserA,
    /// The `user_b` account.
    #[sea_orm(
        belongs_to = "super::account::Entity",
        from = "Column::UserB",
        to = "super::account::Column::Id"
    )]
    UserB,
}

impl ActiveModelBehavior for ActiveModel {}

/// The canonical (smaller, larger) order of a pair.
pub fn ordered(x: i64, y: i64) -> (i64, i64) {
    if x < y {
        (x, y)
    } else {
        (y, x)
    }
}
