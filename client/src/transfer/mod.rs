//! File transfer (SPEC.md §8.3, §8.4): the types both the client machine and the history
//! share, the naming rules for received files, file helpers and the progress meter. The
//! decisions are the machine's (`machine/transfers.rs`), the byte-moving threads the
//! driver's (`driver/disk.rs`).

pub mod disk;
pub mod naming;
pub mod progress;
pub mod writeback;

use peerchat_proto::wire::FileCancelReason;
use serde::Serialize;

use crate::ids::TransferId;

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

/// Which offered files a client accepts without asking the user (SPEC.md §8.3 rule 3).
/// Offers it does not accept wait for [`crate::Client::accept_file`] or [`crate::Client::decline_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoAccept {
    /// Every offer waits for the user's decision (the default, and the desktop app's).
    #[default]
    Never,
    /// Offers of at most this many bytes are accepted at once (the CLI's
    /// `--auto-accept-max`, default [`crate::CLI_AUTO_ACCEPT_MAX`]).
    UpTo(u64),
}

impl AutoAccept {
    /// True if an offer of `size` bytes is accepted without asking.
    pub fn allows(self, size: u64) -> bool {
        match self {
            AutoAccept::Never => false,
            AutoAccept::UpTo(max) => size <= max,
        }
    }
}

/// One transfer's durable state, as the client machine persists it and the history stores it
/// (here, below both, so that neither depends on the other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRecord {
    /// The friend.
    pub friend: String,
    /// The transfer.
    pub id: TransferId,
    /// Which way.
    pub direction: Direction,
    /// The name as offered (raw, audit D5).
    pub offered_name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256; `None` for a streamed-hash transfer (§8.3.1) or one not hashed yet.
    pub sha256: Option<[u8; 32]>,
    /// The SPEC §8.3 state name.
    pub state: &'static str,
    /// Why it ended, for CANCELLED, DECLINED and FAILED (audit D4, D20).
    pub end_reason: Option<FileCancelReason>,
    /// Bytes held (incoming) or acknowledged offset (outgoing).
    pub bytes: u64,
    /// A sender's FileCancel still waits for a link (S35 → S32, audit D6): restored with
    /// [`crate::machine::ClientMachine::restore_outgoing`] after a restart.
    pub cancel_unsent: bool,
}
