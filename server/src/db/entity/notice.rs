//! `notice`: a push stored for an offline user and delivered after their next LoginOk,
//! oldest first (SPEC.md §6.9).

use sea_orm::entity::prelude::*;

/// A queued notice for `account_id` about `other_id`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notice")]
pub struct Model {
    /// Row id; delivery order.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The recipient.
    pub account_id: i64,
    /// What happened: see [`NoticeKind`].
    pub kind: String,
    /// The other user (who accepted, refused, or did not answer).
    pub other_id: i64,
    /// When it happened, Unix ms.
    pub created_at_ms: i64,
}

/// Both ends reference `account`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The recipient.
    #[sea_orm(
        belongs_to = "super::account::Entity",
        from = "Column::AccountId",
        to = "super::account::Column::Id"
    )]
    Recipient,
    /// The other user.
    #[sea_orm(
        belongs_to = "super::account::Entity",
        from = "Column::OtherId",
        to = "super::account::Column::Id"
    )]
    Other,
}

impl ActiveModelBehavior for ActiveModel {}

/// Joining a notice with "its" account means the account the notice is about (the other
/// user), which is what delivery needs.
impl Related<super::account::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Other.def()
    }
}

/// What a notice reports; stored as a short string so the table stays readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    /// The recipient's request to `other` was accepted.
    Accepted,
    /// The recipient's request to `other` was refused.
    Refused,
    /// The recipient's request to `other` expired.
    Expired,
}

impl NoticeKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Accepted => "accepted",
            NoticeKind::Refused => "refused",
            NoticeKind::Expired => "expired",
        }
    }

    /// Parses the stored form; unknown kinds (a newer server's) are skipped by the caller.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "accepted" => Some(NoticeKind::Accepted),
            "refused" => Some(NoticeKind::Refused),
            "expired" => Some(NoticeKind::Expired),
            _ => None,
        }
    }
}
