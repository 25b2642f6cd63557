//! `outbox`: outgoing messages not yet acknowledged, in the order they were written.

use sea_orm::entity::prelude::*;

/// One unacknowledged message.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    /// Sending order.
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// The friend (lower-case userid).
    pub friend: String,
    /// The message id, hex.
    pub message_id: String,
    /// The text (repeated here so the outbox needs no join to resend).
    pub text: String,
    /// Sender's clock, Unix ms.
    pub sent_at: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
