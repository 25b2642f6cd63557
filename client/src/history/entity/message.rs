//! `message`: every chat message sent or received, in the order this device stored it.

use sea_orm::entity::prelude::*;

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "message")]
pub struct Model {
    /// Local storage order.
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// The 16-byte id, hex.
    pub message_id: String,
    /// The friend (lower-case userid).
    pub friend: String,
    /// `in` (received) or `out` (sent).
    pub direction: String,
    /// The text.
    pub text: String,
    /// Sender's clock, Unix ms.
    pub sent_at: i64,
    /// Outgoing: the friend acknowledged it. Incoming: always true.
    pub acked: bool,
    /// Our clock when stored, Unix ms.
    pub stored_at: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
