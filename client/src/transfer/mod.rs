//! File transfer (SPEC.md §8.3, §8.4): the sans-IO state machines of both ends, the naming
//! rules for received files, and the thin threads that move bytes between disk and
//! connection.

pub mod disk;
pub mod naming;
pub mod progress;
pub mod receiver;
pub mod sender;

use peerchat_proto::wire::FileCancelReason;
use serde::Serialize;

/// Which way a transfer goes, seen from this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// We send the file.
    Outgoing,
    /// We receive the file.
    Incoming,
}

impl Direction {
    /// The name stored in the history database.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outgoing => "out",
            Direction::Incoming => "in",
        }
    }
}

/// A frame from the other side that does not fit the transfer's state: answered with
/// FileCancel{INVALID} for that transfer, the connection stays (SPEC.md §8.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transfer protocol violation: {0}")]
pub struct Violation(pub String);

/// The snake_case name of a cancel reason, for events and logs.
pub fn reason_name(reason: FileCancelReason) -> &'static str {
    match reason {
        FileCancelReason::Unspecified | FileCancelReason::Cancelled => "cancelled",
        FileCancelReason::Declined => "declined",
        FileCancelReason::HashMismatch => "hash_mismatch",
        FileCancelReason::IoError => "io_error",
        FileCancelReason::Invalid => "invalid",
        FileCancelReason::UnknownTransfer => "unknown_transfer",
        FileCancelReason::TooManyOffers => "too_many_offers",
        FileCancelReason::TooLarge => "too_large",
        FileCancelReason::NoData => "no_data",
    }
}
