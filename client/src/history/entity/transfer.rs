//! `transfer`: file transfers in both directions, kept so that an interrupted transfer
//! resumes after a reconnect or a restart with the same id.

use sea_orm::entity::prelude::*;

/// One transfer.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "transfer")]
pub struct Model {
    /// Local row id.
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// The 16-byte transfer id, hex.
    pub transfer_id: String,
    /// The friend (lower-case userid).
    pub friend: String,
    /// `in` or `out`.
    pub direction: String,
    /// Offered name (outgoing) or sanitised name (incoming).
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// SHA-256, hex.
    pub sha256: String,
    /// Outgoing: the source file. Incoming: the `.part` file, then the final file.
    pub path: String,
    /// `pending`, `offered`, `active`, `complete`, `cancelled`, `declined`, `failed`.
    pub state: String,
    /// Unix ms.
    pub created_at: i64,
    /// The SPEC.md §8.3 state name (`OFFERED`, `SUSPENDED`, `DONE`, ...), written by the
    /// sans-IO machine's `PersistOp::Transfer`; `None` on rows of older versions.
    pub spec_state: Option<String>,
    /// The `FileCancelReason` (proto number) that ended a CANCELLED, DECLINED or FAILED
    /// transfer (audit D4, D20).
    pub end_reason: Option<i32>,
    /// The name exactly as offered, for comparing a re-offer byte for byte (audit D3).
    pub offered_name: Option<String>,
    /// A sender's FileCancel waits for the next link (audit D6).
    pub cancel_unsent: bool,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
