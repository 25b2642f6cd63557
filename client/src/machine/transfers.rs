//! SPEC.md §8.3 as two pure functions: Table R (§8.5.4, the receiving side) and Table S
//! (§8.5.5, the sending side).
//!
//! [`decide_recv`] and [`decide_send`] take the state of one transfer (or `None`: unknown),
//! one input and the facts about the link the input came on, and return a [`Decision`]: the
//! row that applied, the answer to send, the next state and the link's fate. They read no
//! clock, no disk and no database, so every row is a unit test below (named after its row).
//! The machine ([`super::ClientMachine`]) carries out the answer and derives the disk work
//! from the transition (append on R27, verify on entering VERIFYING, delete the `.part` file
//! when a transfer that held one ends without completion).

use peerchat_proto::limits::{MAX_FILE_CHUNK, MAX_OFFERS_IN_FLIGHT};
use peerchat_proto::wire::FileCancelReason;

use super::LinkId;

/// The identity of an offer: what a re-offer must repeat byte for byte (§8.3 r4, R6). The
/// name is the raw offered name, not the sanitised one (audit D5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferKey {
    /// The name as offered (untrusted, before §8.4 sanitising).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content (zero for a streamed-hash offer).
    pub sha256: [u8; 32],
    /// A streamed-hash offer (§8.3.1): no SHA-256, a `FileDigest` follows the data. The kind
    /// is part of the offer's identity (a re-offer of the other kind differs).
    pub streamed: bool,
}

/// Receiver states (§8.3, §8.5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvState {
    /// Offered; the user (or a policy) has not decided.
    PendingDecision,
    /// Accepted; chunks come on `link`; `held` bytes are in the `.part` file.
    Receiving {
        /// The link the current FileAccept went out on.
        link: LinkId,
        /// Bytes accepted (appended or being appended).
        held: u64,
    },
    /// All bytes held; the hash is being computed. The result goes out on `link` if open.
    Verifying {
        /// The link to answer on, if one is open.
        link: Option<LinkId>,
    },
    /// Accepted, no link: the `.part` file keeps `held` bytes.
    Suspended {
        /// Bytes in the `.part` file.
        held: u64,
    },
    /// Terminal: the file is in place.
    Done,
    /// Terminal: the user (or a policy) declined.
    Declined,
    /// Terminal: a FileCancel was sent or received with this reason.
    Cancelled(FileCancelReason),
    /// Terminal: the hash did not match.
    Failed,
}

impl RecvState {
    /// DONE, DECLINED, CANCELLED, FAILED.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RecvState::Done | RecvState::Declined | RecvState::Cancelled(_) | RecvState::Failed
        )
    }

    /// The reason a re-offer of an ended transfer is answered with (R14).
    pub fn end_reason(self) -> Option<FileCancelReason> {
        match self {
            RecvState::Declined => Some(FileCancelReason::Declined),
            RecvState::Cancelled(r) => Some(r),
            RecvState::Failed => Some(FileCancelReason::HashMismatch),
            _ => None,
        }
    }

    /// True while a `.part` file exists for the transfer.
    pub fn holds_part(self) -> bool {
        matches!(
            self,
            RecvState::Receiving { .. } | RecvState::Verifying { .. } | RecvState::Suspended { .. }
        )
    }

    /// The SPEC §8.3 name, as stored in the history database.
    pub fn spec_name(self) -> &'static str {
        match self {
            RecvState::PendingDecision => "PENDING_DECISION",
            RecvState::Receiving { .. } => "RECEIVING",
            RecvState::Verifying { .. } => "VERIFYING",
            RecvState::Suspended { .. } => "SUSPENDED",
            RecvState::Done => "DONE",
            RecvState::Declined => "DECLINED",
            RecvState::Cancelled(_) => "CANCELLED",
            RecvState::Failed => "FAILED",
        }
    }
}

/// Sender states (§8.3, §8.5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendState {
    /// FileOffer sent on `link`.
    Offered {
        /// The link the offer went out on.
        link: LinkId,
    },
    /// Chunks go out on `link`; `next` is the offset of the next one.
    Sending {
        /// The link.
        link: LinkId,
        /// Offset of the next chunk.
        next: u64,
    },
    /// Every chunk sent on `link`; FileComplete awaited.
    AwaitingComplete {
        /// The link.
        link: LinkId,
    },
    /// No link (or waiting for its turn, §7.9 r2): re-offered when one is OPEN (S30).
    Suspended,
    /// Terminal: the receiver has the file.
    Done,
    /// Terminal. `unsent`: the FileCancel still has to go out on the next link (S32, S35).
    Cancelled {
        /// Why.
        reason: FileCancelReason,
        /// The FileCancel waits for a link.
        unsent: bool,
    },
    /// Terminal: the receiver found another hash.
    Failed,
}

impl SendState {
    /// DONE, CANCELLED, FAILED.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SendState::Done | SendState::Cancelled { .. } | SendState::Failed
        )
    }

    /// OFFERED, SENDING or AWAITING_COMPLETE: counts against `MAX_OFFERS_IN_FLIGHT`.
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            SendState::Offered { .. }
                | SendState::Sending { .. }
                | SendState::AwaitingComplete { .. }
        )
    }

    /// The link the transfer runs on, if any.
    pub fn link(self) -> Option<LinkId> {
        match self {
            SendState::Offered { link }
            | SendState::Sending { link, .. }
            | SendState::AwaitingComplete { link } => Some(link),
            _ => None,
        }
    }

    /// The SPEC §8.3 name, as stored in the history database.
    pub fn spec_name(self) -> &'static str {
        match self {
            SendState::Offered { .. } => "OFFERED",
            SendState::Sending { .. } => "SENDING",
            SendState::AwaitingComplete { .. } => "AWAITING_COMPLETE",
            SendState::Suspended => "SUSPENDED",
            SendState::Done => "DONE",
            SendState::Cancelled { .. } => "CANCELLED",
            SendState::Failed => "FAILED",
        }
    }
}

/// The row of Table R or S that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Row {
    R1,
    R2,
    R3,
    R4,
    R4a,
    R4b,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R20,
    R21,
    R22,
    R23,
    R24,
    R25,
    R26,
    R27,
    R30,
    R31,
    R32,
    R33,
    R34,
    R40,
    R41,
    R42,
    R43,
    R44,
    R45,
    R50,
    R51,
    R52,
    R53,
    R54,
    R55,
    R56,
    S1,
    S2,
    S3,
    S4,
    S5,
    S6,
    S7,
    S10,
    S11,
    S12,
    S20,
    S21,
    S22,
    S23,
    S30,
    S31,
    S32,
    S34,
    S35,
    S36,
    S37,
    S38,
    S39,
    /// A local event that does not apply in this state (nothing happens).
    NoRow,
}

/// What to send for the transfer, on the link the input concerns (or the open link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Nothing.
    Nothing,
    /// `FileCancel{reason}`.
    Cancel(FileCancelReason),
    /// `FileAccept{offset}`.
    Accept {
        /// Bytes held.
        offset: u64,
    },
    /// `FileComplete`.
    Complete,
    /// The identical `FileOffer` again (S30).
    Offer,
    /// Ask the user (or apply the auto-accept policy): R5.
    AskUser,
}

/// What happens to the link. File frames never close it (L26); the field is here so that a
/// decision reads like a table row: answer, next state, link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFate {
    /// The link stays in its state.
    Kept,
}

/// One row applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<S> {
    /// Which row.
    pub row: Row,
    /// What to send.
    pub answer: Answer,
    /// The next state: `None` = unchanged (or, for an unknown id, nothing recorded).
    pub next: Option<S>,
    /// The id enters this link's discard set (§8.5.3).
    pub discard: bool,
    /// The link's fate.
    pub fate: LinkFate,
}

fn d<S>(row: Row, answer: Answer, next: Option<S>) -> Decision<S> {
    Decision {
        row,
        answer,
        next,
        discard: false,
        fate: LinkFate::Kept,
    }
}

fn discarding<S>(mut x: Decision<S>) -> Decision<S> {
    x.discard = true;
    x
}

/// `UNSPECIFIED` (and unknown values, which decode as it) count as `CANCELLED` (§8.3 r11).
pub fn normalise(reason: FileCancelReason) -> FileCancelReason {
    match reason {
        FileCancelReason::Unspecified => FileCancelReason::Cancelled,
        r => r,
    }
}

/// Facts about the link a frame came on, for one transfer id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCtx {
    /// The link the frame came on.
    pub link: LinkId,
    /// The id is in this link's discard set.
    pub in_discard: bool,
}

/// Inputs of Table R.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvInput<'a> {
    /// A `FileOffer` whose values pass §8.3 r2.
    Offer {
        /// The offer.
        offer: &'a OfferKey,
        /// The id is one of this side's transfers *to* the friend (R4).
        own_outgoing: bool,
        /// Unfinished transfers from this friend (R4a).
        in_flight: usize,
        /// Free space of the download volume, if known (R4b).
        free: Option<u64>,
    },
    /// A `FileOffer` whose values fail §8.3 r2 (R2, R3).
    InvalidOffer,
    /// A `FileChunk` (`len` may be 0 or too long: R25).
    Chunk {
        /// Its offset.
        offset: u64,
        /// Its data length.
        len: usize,
    },
    /// A `FileCancel` with this reason.
    Cancel(FileCancelReason),
}

/// Local events of Table R.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvLocal {
    /// The user (or the policy) accepts; `open` is the OPEN link with the friend, if any.
    Accept {
        /// The open link.
        open: Option<LinkId>,
    },
    /// The user (or the policy) declines.
    Decline {
        /// The open link.
        open: Option<LinkId>,
    },
    /// The user cancels.
    UserCancel {
        /// The open link.
        open: Option<LinkId>,
    },
    /// Writing, syncing or renaming failed.
    WriteFailed {
        /// The open link.
        open: Option<LinkId>,
    },
    /// The hash check finished; a match is reported once the file is in its final place
    /// (the rename is a separate job, audit D19).
    Verified {
        /// It matched.
        matched: bool,
    },
    /// This link closed.
    LinkClosed(LinkId),
    /// The friendship ended.
    Unfriended,
    /// OFFER_DATA_TIMEOUT without a chunk from the friend while a link is OPEN.
    NoData,
    /// The `.part` file of a long-suspended transfer was dropped.
    PartDropped,
}

/// Table R for a frame (§8.5.4). `state` is `None` for an id unknown from this friend;
/// `first` is the first offer of a known id.
pub fn decide_recv(
    state: Option<(RecvState, &OfferKey)>,
    input: RecvInput<'_>,
    ctx: FrameCtx,
) -> Decision<RecvState> {
    use RecvState as St;
    let live = state.filter(|(s, _)| !s.is_terminal());
    match input {
        RecvInput::Offer { .. } | RecvInput::InvalidOffer if ctx.in_discard => {
            d(Row::R1, Answer::Nothing, None)
        }
        RecvInput::InvalidOffer => match live {
            None => discarding(d(Row::R2, Answer::Cancel(FileCancelReason::Invalid), None)),
            Some(_) => d(
                Row::R3,
                Answer::Cancel(FileCancelReason::Invalid),
                Some(St::Cancelled(FileCancelReason::Invalid)),
            ),
        },
        RecvInput::Offer {
            offer,
            own_outgoing,
            in_flight,
            free,
        } => {
            if own_outgoing {
                return d(Row::R4, Answer::Cancel(FileCancelReason::Invalid), None);
            }
            let Some((s, first)) = state else {
                if in_flight >= MAX_OFFERS_IN_FLIGHT {
                    return d(
                        Row::R4a,
                        Answer::Cancel(FileCancelReason::TooManyOffers),
                        None,
                    );
                }
                if offer.size == u64::MAX || free.is_some_and(|f| offer.size > f) {
                    return d(Row::R4b, Answer::Cancel(FileCancelReason::TooLarge), None);
                }
                return d(Row::R5, Answer::AskUser, Some(St::PendingDecision));
            };
            if offer != first {
                return if s.is_terminal() {
                    d(Row::R7, Answer::Cancel(FileCancelReason::Invalid), None)
                } else {
                    d(
                        Row::R6,
                        Answer::Cancel(FileCancelReason::Invalid),
                        Some(St::Cancelled(FileCancelReason::Invalid)),
                    )
                };
            }
            match s {
                St::PendingDecision => d(Row::R8, Answer::Nothing, None),
                St::Suspended { held } => {
                    let held = if held > first.size { 0 } else { held };
                    let next = if held == first.size {
                        // R50 at once: every byte is held already.
                        St::Verifying {
                            link: Some(ctx.link),
                        }
                    } else {
                        St::Receiving {
                            link: ctx.link,
                            held,
                        }
                    };
                    d(Row::R9, Answer::Accept { offset: held }, Some(next))
                }
                St::Receiving { link, .. } if link == ctx.link => d(
                    Row::R10,
                    Answer::Cancel(FileCancelReason::Invalid),
                    Some(St::Cancelled(FileCancelReason::Invalid)),
                ),
                St::Receiving { held, .. } => d(
                    Row::R11,
                    Answer::Accept { offset: held },
                    Some(St::Receiving {
                        link: ctx.link,
                        held,
                    }),
                ),
                St::Verifying { .. } => d(
                    Row::R12,
                    Answer::Accept { offset: first.size },
                    Some(St::Verifying {
                        link: Some(ctx.link),
                    }),
                ),
                St::Done => d(Row::R13, Answer::Complete, None),
                St::Declined | St::Cancelled(_) | St::Failed => d(
                    Row::R14,
                    Answer::Cancel(s.end_reason().unwrap_or(FileCancelReason::Cancelled)),
                    None,
                ),
            }
        }
        RecvInput::Chunk { .. } if ctx.in_discard => d(Row::R20, Answer::Nothing, None),
        RecvInput::Chunk { offset, len } => {
            let invalid = Answer::Cancel(FileCancelReason::Invalid);
            let cancelled = Some(St::Cancelled(FileCancelReason::Invalid));
            let Some((s, first)) = live else {
                return discarding(d(Row::R21, invalid, None));
            };
            match s {
                St::PendingDecision => d(Row::R22, invalid, cancelled),
                St::Receiving { link, held } if link == ctx.link => {
                    if offset != held {
                        d(Row::R24, invalid, cancelled)
                    } else if len == 0 || len > MAX_FILE_CHUNK {
                        d(Row::R25, invalid, cancelled)
                    } else if offset.saturating_add(len as u64) > first.size {
                        d(Row::R26, invalid, cancelled)
                    } else {
                        let held = held + len as u64;
                        let next = if held == first.size {
                            St::Verifying { link: Some(link) }
                        } else {
                            St::Receiving { link, held }
                        };
                        d(Row::R27, Answer::Nothing, Some(next))
                    }
                }
                _ => d(Row::R23, invalid, cancelled),
            }
        }
        RecvInput::Cancel(_) if ctx.in_discard => d(Row::R30, Answer::Nothing, None),
        RecvInput::Cancel(reason) => {
            let next = Some(St::Cancelled(normalise(reason)));
            match live {
                None => d(Row::R31, Answer::Nothing, None),
                Some((St::PendingDecision, _)) => d(Row::R32, Answer::Nothing, next),
                Some((St::Verifying { .. }, _)) => d(Row::R34, Answer::Nothing, next),
                Some(_) => d(Row::R33, Answer::Nothing, next),
            }
        }
    }
}

/// Table R for a local event (§8.5.4, R40–R56). `size` is the offered size.
pub fn decide_recv_local(state: RecvState, size: u64, ev: RecvLocal) -> Decision<RecvState> {
    use RecvState as St;
    let none = |row| d(row, Answer::Nothing, None);
    match (state, ev) {
        (St::PendingDecision, RecvLocal::Accept { open: Some(link) }) => {
            let next = if size == 0 {
                St::Verifying { link: Some(link) }
            } else {
                St::Receiving { link, held: 0 }
            };
            d(Row::R40, Answer::Accept { offset: 0 }, Some(next))
        }
        (St::PendingDecision, RecvLocal::Accept { open: None }) => {
            d(Row::R41, Answer::Nothing, Some(St::Suspended { held: 0 }))
        }
        (St::PendingDecision, RecvLocal::Decline { open }) => d(
            Row::R42,
            if open.is_some() {
                Answer::Cancel(FileCancelReason::Declined)
            } else {
                Answer::Nothing
            },
            Some(St::Declined),
        ),
        (St::Receiving { .. } | St::Verifying { .. }, RecvLocal::UserCancel { .. }) => d(
            Row::R43,
            Answer::Cancel(FileCancelReason::Cancelled),
            Some(St::Cancelled(FileCancelReason::Cancelled)),
        ),
        // The user may also cancel a pending offer: that is a decline (R42).
        (St::PendingDecision, RecvLocal::UserCancel { open }) => {
            decide_recv_local(state, size, RecvLocal::Decline { open })
        }
        (St::Suspended { .. }, RecvLocal::UserCancel { .. }) => d(
            Row::R44,
            Answer::Nothing,
            Some(St::Cancelled(FileCancelReason::Cancelled)),
        ),
        (St::Receiving { .. } | St::Verifying { .. }, RecvLocal::WriteFailed { open }) => d(
            Row::R45,
            if open.is_some() {
                Answer::Cancel(FileCancelReason::IoError)
            } else {
                Answer::Nothing
            },
            Some(St::Cancelled(FileCancelReason::IoError)),
        ),
        (St::Verifying { link }, RecvLocal::Verified { matched: true }) => d(
            Row::R51,
            if link.is_some() {
                Answer::Complete
            } else {
                Answer::Nothing
            },
            Some(St::Done),
        ),
        (St::Verifying { link }, RecvLocal::Verified { matched: false }) => d(
            Row::R52,
            if link.is_some() {
                Answer::Cancel(FileCancelReason::HashMismatch)
            } else {
                Answer::Nothing
            },
            Some(St::Failed),
        ),
        (St::Receiving { link, held }, RecvLocal::LinkClosed(closed)) if link == closed => {
            d(Row::R53, Answer::Nothing, Some(St::Suspended { held }))
        }
        (St::Verifying { link: Some(link) }, RecvLocal::LinkClosed(closed)) if link == closed => {
            // VERIFYING does not depend on the link; only where its answer goes does.
            d(
                Row::NoRow,
                Answer::Nothing,
                Some(St::Verifying { link: None }),
            )
        }
        (s, RecvLocal::Unfriended) if !s.is_terminal() => d(
            Row::R54,
            Answer::Nothing,
            Some(St::Cancelled(FileCancelReason::Cancelled)),
        ),
        // §8.3.1 r4: VERIFYING while the FileDigest is awaited counts as waiting for data
        // (the machine only reports NoData for such a transfer).
        (St::Receiving { .. } | St::Verifying { .. }, RecvLocal::NoData) => d(
            Row::R56,
            Answer::Cancel(FileCancelReason::NoData),
            Some(St::Cancelled(FileCancelReason::NoData)),
        ),
        (St::Suspended { .. }, RecvLocal::PartDropped) => {
            d(Row::R55, Answer::Nothing, Some(St::Suspended { held: 0 }))
        }
        _ => none(Row::NoRow),
    }
}

/// Inputs of Table S.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendInput {
    /// `FileAccept{offset}`.
    Accept {
        /// The offset.
        offset: u64,
    },
    /// `FileComplete`.
    Complete,
    /// `FileCancel{reason}`.
    Cancel(FileCancelReason),
}

/// Local events of Table S.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendLocal {
    /// A link reached OPEN; `source_ok`: the source file still has the offered size.
    LinkOpen {
        /// The link.
        link: LinkId,
        /// The source file is there with its size.
        source_ok: bool,
    },
    /// The user cancels.
    UserCancel,
    /// Reading the file failed.
    ReadFailed,
    /// A chunk of `len` bytes went out.
    ChunkSent {
        /// Its length.
        len: u64,
    },
    /// This link closed.
    LinkClosed(LinkId),
    /// The friendship ended.
    Unfriended,
}

/// Table S for a frame (§8.5.5). `state` is `None` for an unknown id.
pub fn decide_send(
    state: Option<SendState>,
    size: u64,
    input: SendInput,
    ctx: FrameCtx,
) -> Decision<SendState> {
    use SendState as St;
    let invalid = Answer::Cancel(FileCancelReason::Invalid);
    match input {
        SendInput::Accept { .. } if ctx.in_discard => d(Row::S1, Answer::Nothing, None),
        SendInput::Accept { offset } => match state {
            None => discarding(d(
                Row::S2,
                Answer::Cancel(FileCancelReason::UnknownTransfer),
                None,
            )),
            Some(St::Offered { link }) if link == ctx.link => {
                if offset < size {
                    d(
                        Row::S3,
                        Answer::Nothing,
                        Some(St::Sending { link, next: offset }),
                    )
                } else if offset == size {
                    d(
                        Row::S4,
                        Answer::Nothing,
                        Some(St::AwaitingComplete { link }),
                    )
                } else {
                    d(
                        Row::S5,
                        invalid,
                        Some(St::Cancelled {
                            reason: FileCancelReason::Invalid,
                            unsent: false,
                        }),
                    )
                }
            }
            Some(s) if s.is_terminal() => d(Row::S7, invalid, None),
            Some(_) => d(
                Row::S6,
                invalid,
                Some(St::Cancelled {
                    reason: FileCancelReason::Invalid,
                    unsent: false,
                }),
            ),
        },
        SendInput::Complete if ctx.in_discard => d(Row::S10, Answer::Nothing, None),
        SendInput::Complete => match state {
            Some(s) if s.in_flight() => d(Row::S11, Answer::Nothing, Some(St::Done)),
            _ => d(Row::S12, Answer::Nothing, None),
        },
        SendInput::Cancel(_) if ctx.in_discard => d(Row::S20, Answer::Nothing, None),
        SendInput::Cancel(reason) => match state {
            None => d(Row::S21, Answer::Nothing, None),
            Some(s) if s.is_terminal() => d(Row::S21, Answer::Nothing, None),
            Some(_) if reason == FileCancelReason::HashMismatch => {
                d(Row::S22, Answer::Nothing, Some(St::Failed))
            }
            Some(_) => d(
                Row::S23,
                Answer::Nothing,
                Some(St::Cancelled {
                    reason: normalise(reason),
                    unsent: false,
                }),
            ),
        },
    }
}

/// Table S for a local event (§8.5.5, S30–S39). `size` is the offered size.
pub fn decide_send_local(state: SendState, size: u64, ev: SendLocal) -> Decision<SendState> {
    use SendState as St;
    match (state, ev) {
        (
            St::Suspended,
            SendLocal::LinkOpen {
                link,
                source_ok: true,
            },
        ) => d(Row::S30, Answer::Offer, Some(St::Offered { link })),
        (
            St::Suspended,
            SendLocal::LinkOpen {
                source_ok: false, ..
            },
        ) => d(
            Row::S31,
            Answer::Cancel(FileCancelReason::IoError),
            Some(St::Cancelled {
                reason: FileCancelReason::IoError,
                unsent: false,
            }),
        ),
        (
            St::Cancelled {
                reason,
                unsent: true,
            },
            SendLocal::LinkOpen { .. },
        ) => d(
            Row::S32,
            Answer::Cancel(reason),
            Some(St::Cancelled {
                reason,
                unsent: false,
            }),
        ),
        (s, SendLocal::UserCancel) if s.in_flight() => d(
            Row::S34,
            Answer::Cancel(FileCancelReason::Cancelled),
            Some(St::Cancelled {
                reason: FileCancelReason::Cancelled,
                unsent: false,
            }),
        ),
        (St::Suspended, SendLocal::UserCancel) => d(
            Row::S35,
            Answer::Nothing,
            Some(St::Cancelled {
                reason: FileCancelReason::Cancelled,
                unsent: true,
            }),
        ),
        // Also while the FileDigest of a streamed-hash transfer is computed (§8.3.1 r2).
        (St::Sending { .. } | St::AwaitingComplete { .. }, SendLocal::ReadFailed) => d(
            Row::S36,
            Answer::Cancel(FileCancelReason::IoError),
            Some(St::Cancelled {
                reason: FileCancelReason::IoError,
                unsent: false,
            }),
        ),
        (St::Sending { link, next }, SendLocal::ChunkSent { len }) => {
            let next = next + len;
            if next >= size {
                d(
                    Row::S37,
                    Answer::Nothing,
                    Some(St::AwaitingComplete { link }),
                )
            } else {
                d(
                    Row::NoRow,
                    Answer::Nothing,
                    Some(St::Sending { link, next }),
                )
            }
        }
        (s, SendLocal::LinkClosed(closed)) if s.link() == Some(closed) => {
            d(Row::S38, Answer::Nothing, Some(St::Suspended))
        }
        (s, SendLocal::Unfriended) if !s.is_terminal() => d(
            Row::S39,
            Answer::Nothing,
            Some(St::Cancelled {
                reason: FileCancelReason::Cancelled,
                unsent: false,
            }),
        ),
        _ => d(Row::NoRow, Answer::Nothing, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: LinkId = LinkId(1);
    const B: LinkId = LinkId(2);

    fn key() -> OfferKey {
        OfferKey {
            name: "a.txt".into(),
            size: 100,
            sha256: [7; 32],
            streamed: false,
        }
    }
    fn on(link: LinkId) -> FrameCtx {
        FrameCtx {
            link,
            in_discard: false,
        }
    }
    fn discarded() -> FrameCtx {
        FrameCtx {
            link: A,
            in_discard: true,
        }
    }
    fn offer(k: &OfferKey) -> RecvInput<'_> {
        RecvInput::Offer {
            offer: k,
            own_outgoing: false,
            in_flight: 0,
            free: None,
        }
    }
    const INV: Answer = Answer::Cancel(FileCancelReason::Invalid);
    const CANCELLED_INV: Option<RecvState> = Some(RecvState::Cancelled(FileCancelReason::Invalid));

    #[test]
    fn r1_offer_in_discard_set_is_dropped() {
        let k = key();
        let x = decide_recv(None, offer(&k), discarded());
        assert_eq!((x.row, x.answer, x.next), (Row::R1, Answer::Nothing, None));
        let x = decide_recv(None, RecvInput::InvalidOffer, discarded());
        assert_eq!(x.row, Row::R1);
    }

    #[test]
    fn r2_invalid_offer_for_unknown_id_records_nothing() {
        let x = decide_recv(None, RecvInput::InvalidOffer, on(A));
        assert_eq!(
            (x.row, x.answer, x.next, x.discard),
            (Row::R2, INV, None, true)
        );
        let k = key();
        let x = decide_recv(Some((RecvState::Done, &k)), RecvInput::InvalidOffer, on(A));
        assert_eq!((x.row, x.next), (Row::R2, None), "terminal stays as it is");
    }

    #[test]
    fn r3_invalid_offer_ends_a_live_transfer() {
        let k = key();
        for s in [
            RecvState::PendingDecision,
            RecvState::Receiving { link: A, held: 3 },
            RecvState::Verifying { link: None },
            RecvState::Suspended { held: 3 },
        ] {
            let x = decide_recv(Some((s, &k)), RecvInput::InvalidOffer, on(A));
            assert_eq!((x.row, x.answer, x.next), (Row::R3, INV, CANCELLED_INV));
        }
    }

    #[test]
    fn r4_offer_with_the_id_of_an_own_outgoing_transfer() {
        let k = key();
        let x = decide_recv(
            None,
            RecvInput::Offer {
                offer: &k,
                own_outgoing: true,
                in_flight: 0,
                free: None,
            },
            on(A),
        );
        assert_eq!((x.row, x.answer, x.next), (Row::R4, INV, None));
    }

    #[test]
    fn r4a_too_many_offers_in_flight() {
        let k = key();
        let x = decide_recv(
            None,
            RecvInput::Offer {
                offer: &k,
                own_outgoing: false,
                in_flight: MAX_OFFERS_IN_FLIGHT,
                free: None,
            },
            on(A),
        );
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::R4a,
                Answer::Cancel(FileCancelReason::TooManyOffers),
                None
            )
        );
    }

    #[test]
    fn r4b_larger_than_free_space_or_max() {
        let mut k = key();
        let x = decide_recv(
            None,
            RecvInput::Offer {
                offer: &k,
                own_outgoing: false,
                in_flight: 0,
                free: Some(99),
            },
            on(A),
        );
        assert_eq!(
            (x.row, x.answer),
            (Row::R4b, Answer::Cancel(FileCancelReason::TooLarge))
        );
        k.size = u64::MAX;
        let x = decide_recv(None, offer(&k), on(A));
        assert_eq!(x.row, Row::R4b, "2^64-1 is always refused");
    }

    #[test]
    fn r5_new_valid_offer_asks_the_user() {
        let k = key();
        let x = decide_recv(None, offer(&k), on(A));
        assert_eq!(
            (x.row, x.answer, x.next),
            (Row::R5, Answer::AskUser, Some(RecvState::PendingDecision))
        );
    }

    #[test]
    fn r6_reoffer_differs_ends_transfer() {
        let first = key();
        for change in 0..3 {
            let mut k = key();
            match change {
                0 => k.name = "A.txt".into(),
                1 => k.size = 101,
                _ => k.sha256 = [8; 32],
            }
            let x = decide_recv(
                Some((RecvState::Suspended { held: 5 }, &first)),
                offer(&k),
                on(A),
            );
            assert_eq!((x.row, x.answer, x.next), (Row::R6, INV, CANCELLED_INV));
        }
    }

    #[test]
    fn r7_reoffer_differs_after_the_end_changes_nothing() {
        let first = key();
        let mut k = key();
        k.size = 1;
        let x = decide_recv(Some((RecvState::Done, &first)), offer(&k), on(A));
        assert_eq!((x.row, x.answer, x.next), (Row::R7, INV, None));
    }

    #[test]
    fn r8_identical_reoffer_while_pending_asks_nobody() {
        let k = key();
        let x = decide_recv(Some((RecvState::PendingDecision, &k)), offer(&k), on(A));
        assert_eq!((x.row, x.answer, x.next), (Row::R8, Answer::Nothing, None));
    }

    #[test]
    fn r9_suspended_resumes_from_the_part_length() {
        let k = key();
        let x = decide_recv(
            Some((RecvState::Suspended { held: 40 }, &k)),
            offer(&k),
            on(B),
        );
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::R9,
                Answer::Accept { offset: 40 },
                Some(RecvState::Receiving { link: B, held: 40 })
            )
        );
        let x = decide_recv(
            Some((RecvState::Suspended { held: 400 }, &k)),
            offer(&k),
            on(B),
        );
        assert_eq!(
            x.answer,
            Answer::Accept { offset: 0 },
            "a .part longer than size"
        );
    }

    #[test]
    fn r10_reoffer_on_the_receiving_link_is_invalid() {
        let k = key();
        let x = decide_recv(
            Some((RecvState::Receiving { link: A, held: 1 }, &k)),
            offer(&k),
            on(A),
        );
        assert_eq!((x.row, x.answer, x.next), (Row::R10, INV, CANCELLED_INV));
    }

    #[test]
    fn r11_reoffer_on_another_link_moves_the_transfer() {
        let k = key();
        let x = decide_recv(
            Some((RecvState::Receiving { link: A, held: 9 }, &k)),
            offer(&k),
            on(B),
        );
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::R11,
                Answer::Accept { offset: 9 },
                Some(RecvState::Receiving { link: B, held: 9 })
            )
        );
    }

    #[test]
    fn r12_reoffer_while_verifying() {
        let k = key();
        let x = decide_recv(
            Some((RecvState::Verifying { link: None }, &k)),
            offer(&k),
            on(B),
        );
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::R12,
                Answer::Accept { offset: 100 },
                Some(RecvState::Verifying { link: Some(B) })
            )
        );
    }

    #[test]
    fn r13_reoffer_of_a_done_transfer_completes_again() {
        let k = key();
        let x = decide_recv(Some((RecvState::Done, &k)), offer(&k), on(A));
        assert_eq!(
            (x.row, x.answer, x.next),
            (Row::R13, Answer::Complete, None)
        );
    }

    #[test]
    fn r14_reoffer_of_an_ended_transfer_gets_its_reason() {
        let k = key();
        for (s, r) in [
            (RecvState::Declined, FileCancelReason::Declined),
            (
                RecvState::Cancelled(FileCancelReason::IoError),
                FileCancelReason::IoError,
            ),
            (RecvState::Failed, FileCancelReason::HashMismatch),
        ] {
            let x = decide_recv(Some((s, &k)), offer(&k), on(A));
            assert_eq!(
                (x.row, x.answer, x.next),
                (Row::R14, Answer::Cancel(r), None)
            );
        }
    }

    fn chunk(offset: u64, len: usize) -> RecvInput<'static> {
        RecvInput::Chunk { offset, len }
    }

    #[test]
    fn r20_chunk_in_discard_set() {
        assert_eq!(decide_recv(None, chunk(0, 1), discarded()).row, Row::R20);
    }

    #[test]
    fn r21_chunk_for_unknown_or_terminal() {
        let x = decide_recv(None, chunk(0, 1), on(A));
        assert_eq!(
            (x.row, x.answer, x.next, x.discard),
            (Row::R21, INV, None, true)
        );
        let k = key();
        let x = decide_recv(Some((RecvState::Done, &k)), chunk(0, 1), on(A));
        assert_eq!((x.row, x.next), (Row::R21, None));
    }

    #[test]
    fn r22_chunk_while_pending() {
        let k = key();
        let x = decide_recv(Some((RecvState::PendingDecision, &k)), chunk(0, 1), on(A));
        assert_eq!((x.row, x.answer, x.next), (Row::R22, INV, CANCELLED_INV));
    }

    #[test]
    fn r23_chunk_while_suspended_verifying_or_on_another_link() {
        let k = key();
        for s in [
            RecvState::Suspended { held: 0 },
            RecvState::Verifying { link: Some(A) },
            RecvState::Receiving { link: B, held: 0 },
        ] {
            let x = decide_recv(Some((s, &k)), chunk(0, 1), on(A));
            assert_eq!((x.row, x.answer, x.next), (Row::R23, INV, CANCELLED_INV));
        }
    }

    #[test]
    fn r24_r25_r26_bad_chunks() {
        let k = key();
        let s = Some((RecvState::Receiving { link: A, held: 10 }, &k));
        assert_eq!(decide_recv(s, chunk(11, 1), on(A)).row, Row::R24);
        assert_eq!(decide_recv(s, chunk(10, 0), on(A)).row, Row::R25);
        assert_eq!(
            decide_recv(s, chunk(10, MAX_FILE_CHUNK + 1), on(A)).row,
            Row::R25
        );
        let x = decide_recv(s, chunk(10, 91), on(A));
        assert_eq!((x.row, x.answer, x.next), (Row::R26, INV, CANCELLED_INV));
    }

    #[test]
    fn r27_good_chunk_appends_and_r50_verifies_at_size() {
        let k = key();
        let s = Some((RecvState::Receiving { link: A, held: 10 }, &k));
        let x = decide_recv(s, chunk(10, 20), on(A));
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::R27,
                Answer::Nothing,
                Some(RecvState::Receiving { link: A, held: 30 })
            )
        );
        let x = decide_recv(s, chunk(10, 90), on(A));
        assert_eq!(x.next, Some(RecvState::Verifying { link: Some(A) }));
    }

    #[test]
    fn r30_r31_cancel_discarded_or_ignored() {
        let c = RecvInput::Cancel(FileCancelReason::Cancelled);
        assert_eq!(decide_recv(None, c, discarded()).row, Row::R30);
        let x = decide_recv(None, c, on(A));
        assert_eq!(
            (x.row, x.answer, x.discard),
            (Row::R31, Answer::Nothing, false)
        );
        let k = key();
        assert_eq!(
            decide_recv(Some((RecvState::Failed, &k)), c, on(A)).next,
            None,
            "a received frame never changes a terminal outcome"
        );
    }

    #[test]
    fn r32_r33_r34_cancel_ends_live_transfers_with_its_reason() {
        let k = key();
        let c = RecvInput::Cancel(FileCancelReason::Unspecified);
        let want = Some(RecvState::Cancelled(FileCancelReason::Cancelled));
        let x = decide_recv(Some((RecvState::PendingDecision, &k)), c, on(A));
        assert_eq!((x.row, x.next), (Row::R32, want));
        let x = decide_recv(Some((RecvState::Suspended { held: 1 }, &k)), c, on(A));
        assert_eq!((x.row, x.next), (Row::R33, want));
        let x = decide_recv(
            Some((RecvState::Receiving { link: B, held: 1 }, &k)),
            c,
            on(A),
        );
        assert_eq!((x.row, x.next), (Row::R33, want), "on any link");
        let x = decide_recv(
            Some((RecvState::Verifying { link: Some(A) }, &k)),
            RecvInput::Cancel(FileCancelReason::IoError),
            on(A),
        );
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::R34,
                Answer::Nothing,
                Some(RecvState::Cancelled(FileCancelReason::IoError))
            )
        );
    }

    #[test]
    fn r40_r41_accept_with_and_without_a_link() {
        let x = decide_recv_local(
            RecvState::PendingDecision,
            100,
            RecvLocal::Accept { open: Some(A) },
        );
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::R40,
                Answer::Accept { offset: 0 },
                Some(RecvState::Receiving { link: A, held: 0 })
            )
        );
        let x = decide_recv_local(
            RecvState::PendingDecision,
            0,
            RecvLocal::Accept { open: Some(A) },
        );
        assert_eq!(
            x.next,
            Some(RecvState::Verifying { link: Some(A) }),
            "size 0"
        );
        let x = decide_recv_local(
            RecvState::PendingDecision,
            100,
            RecvLocal::Accept { open: None },
        );
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::R41,
                Answer::Nothing,
                Some(RecvState::Suspended { held: 0 })
            )
        );
    }

    #[test]
    fn r42_decline() {
        let x = decide_recv_local(
            RecvState::PendingDecision,
            1,
            RecvLocal::Decline { open: Some(A) },
        );
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::R42,
                Answer::Cancel(FileCancelReason::Declined),
                Some(RecvState::Declined)
            )
        );
        let x = decide_recv_local(
            RecvState::PendingDecision,
            1,
            RecvLocal::Decline { open: None },
        );
        assert_eq!((x.row, x.answer), (Row::R42, Answer::Nothing));
    }

    #[test]
    fn r43_r44_user_cancels() {
        let x = decide_recv_local(
            RecvState::Receiving { link: A, held: 1 },
            9,
            RecvLocal::UserCancel { open: Some(A) },
        );
        assert_eq!(
            (x.row, x.answer),
            (Row::R43, Answer::Cancel(FileCancelReason::Cancelled))
        );
        let x = decide_recv_local(
            RecvState::Suspended { held: 1 },
            9,
            RecvLocal::UserCancel { open: None },
        );
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::R44,
                Answer::Nothing,
                Some(RecvState::Cancelled(FileCancelReason::Cancelled))
            )
        );
    }

    #[test]
    fn r45_write_fails() {
        let x = decide_recv_local(
            RecvState::Receiving { link: A, held: 1 },
            9,
            RecvLocal::WriteFailed { open: Some(A) },
        );
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::R45,
                Answer::Cancel(FileCancelReason::IoError),
                Some(RecvState::Cancelled(FileCancelReason::IoError))
            )
        );
    }

    #[test]
    fn r51_r52_verification_result() {
        let v = RecvState::Verifying { link: Some(A) };
        let x = decide_recv_local(v, 1, RecvLocal::Verified { matched: true });
        assert_eq!(
            (x.row, x.answer, x.next),
            (Row::R51, Answer::Complete, Some(RecvState::Done))
        );
        let x = decide_recv_local(v, 1, RecvLocal::Verified { matched: false });
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::R52,
                Answer::Cancel(FileCancelReason::HashMismatch),
                Some(RecvState::Failed)
            )
        );
        let x = decide_recv_local(
            RecvState::Verifying { link: None },
            1,
            RecvLocal::Verified { matched: true },
        );
        assert_eq!(
            (x.row, x.answer),
            (Row::R51, Answer::Nothing),
            "no link: R13 later"
        );
    }

    #[test]
    fn r53_link_lost_suspends_keeping_bytes() {
        let x = decide_recv_local(
            RecvState::Receiving { link: A, held: 7 },
            9,
            RecvLocal::LinkClosed(A),
        );
        assert_eq!(
            (x.row, x.next),
            (Row::R53, Some(RecvState::Suspended { held: 7 }))
        );
        let x = decide_recv_local(RecvState::PendingDecision, 9, RecvLocal::LinkClosed(A));
        assert_eq!(x.next, None, "PENDING_DECISION survives the loss");
    }

    #[test]
    fn r54_unfriended_r55_part_dropped_r56_no_data() {
        let x = decide_recv_local(RecvState::PendingDecision, 9, RecvLocal::Unfriended);
        assert_eq!(x.row, Row::R54);
        let x = decide_recv_local(RecvState::Suspended { held: 5 }, 9, RecvLocal::PartDropped);
        assert_eq!(
            (x.row, x.next),
            (Row::R55, Some(RecvState::Suspended { held: 0 }))
        );
        let x = decide_recv_local(
            RecvState::Receiving { link: A, held: 5 },
            9,
            RecvLocal::NoData,
        );
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::R56,
                Answer::Cancel(FileCancelReason::NoData),
                Some(RecvState::Cancelled(FileCancelReason::NoData))
            )
        );
    }

    fn cancelled(reason: FileCancelReason) -> Option<SendState> {
        Some(SendState::Cancelled {
            reason,
            unsent: false,
        })
    }

    #[test]
    fn s1_s2_accept_discarded_or_unknown() {
        let a = SendInput::Accept { offset: 0 };
        assert_eq!(decide_send(None, 9, a, discarded()).row, Row::S1);
        let x = decide_send(None, 9, a, on(A));
        assert_eq!(
            (x.row, x.answer, x.discard),
            (
                Row::S2,
                Answer::Cancel(FileCancelReason::UnknownTransfer),
                true
            )
        );
    }

    #[test]
    fn s3_s4_s5_accept_in_offered() {
        let s = Some(SendState::Offered { link: A });
        let x = decide_send(s, 9, SendInput::Accept { offset: 3 }, on(A));
        assert_eq!(
            (x.row, x.next),
            (Row::S3, Some(SendState::Sending { link: A, next: 3 }))
        );
        let x = decide_send(s, 9, SendInput::Accept { offset: 9 }, on(A));
        assert_eq!(
            (x.row, x.next),
            (Row::S4, Some(SendState::AwaitingComplete { link: A }))
        );
        let x = decide_send(s, 9, SendInput::Accept { offset: 10 }, on(A));
        assert_eq!(
            (x.row, x.answer, x.next),
            (Row::S5, INV, cancelled(FileCancelReason::Invalid))
        );
    }

    #[test]
    fn s6_s7_accept_out_of_turn() {
        for s in [
            SendState::Sending { link: A, next: 0 },
            SendState::AwaitingComplete { link: A },
            SendState::Suspended,
            SendState::Offered { link: B },
        ] {
            let x = decide_send(Some(s), 9, SendInput::Accept { offset: 0 }, on(A));
            assert_eq!(
                (x.row, x.answer, x.next),
                (Row::S6, INV, cancelled(FileCancelReason::Invalid))
            );
        }
        let x = decide_send(
            Some(SendState::Done),
            9,
            SendInput::Accept { offset: 0 },
            on(A),
        );
        assert_eq!((x.row, x.answer, x.next), (Row::S7, INV, None));
    }

    #[test]
    fn s10_s11_s12_complete() {
        assert_eq!(
            decide_send(None, 9, SendInput::Complete, discarded()).row,
            Row::S10
        );
        let x = decide_send(
            Some(SendState::Sending { link: A, next: 1 }),
            9,
            SendInput::Complete,
            on(A),
        );
        assert_eq!((x.row, x.next), (Row::S11, Some(SendState::Done)));
        for s in [None, Some(SendState::Suspended), Some(SendState::Failed)] {
            let x = decide_send(s, 9, SendInput::Complete, on(A));
            assert_eq!((x.row, x.answer, x.next), (Row::S12, Answer::Nothing, None));
        }
    }

    #[test]
    fn s20_s21_s22_s23_cancel() {
        let c = SendInput::Cancel(FileCancelReason::Declined);
        assert_eq!(decide_send(None, 9, c, discarded()).row, Row::S20);
        assert_eq!(
            decide_send(Some(SendState::Done), 9, c, on(A)).row,
            Row::S21
        );
        let x = decide_send(
            Some(SendState::AwaitingComplete { link: A }),
            9,
            SendInput::Cancel(FileCancelReason::HashMismatch),
            on(A),
        );
        assert_eq!((x.row, x.next), (Row::S22, Some(SendState::Failed)));
        let x = decide_send(Some(SendState::Suspended), 9, c, on(A));
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::S23,
                Answer::Nothing,
                cancelled(FileCancelReason::Declined)
            )
        );
        let x = decide_send(
            Some(SendState::Offered { link: A }),
            9,
            SendInput::Cancel(FileCancelReason::Unspecified),
            on(A),
        );
        assert_eq!(x.next, cancelled(FileCancelReason::Cancelled));
    }

    #[test]
    fn s30_s31_s32_link_open() {
        let open = |ok| SendLocal::LinkOpen {
            link: B,
            source_ok: ok,
        };
        let x = decide_send_local(SendState::Suspended, 9, open(true));
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::S30,
                Answer::Offer,
                Some(SendState::Offered { link: B })
            )
        );
        let x = decide_send_local(SendState::Suspended, 9, open(false));
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::S31,
                Answer::Cancel(FileCancelReason::IoError),
                cancelled(FileCancelReason::IoError)
            )
        );
        let x = decide_send_local(
            SendState::Cancelled {
                reason: FileCancelReason::Cancelled,
                unsent: true,
            },
            9,
            open(true),
        );
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::S32,
                Answer::Cancel(FileCancelReason::Cancelled),
                cancelled(FileCancelReason::Cancelled)
            )
        );
    }

    #[test]
    fn s34_s35_s36_s37_s38_s39_local() {
        let x = decide_send_local(SendState::Offered { link: A }, 9, SendLocal::UserCancel);
        assert_eq!(
            (x.row, x.answer),
            (Row::S34, Answer::Cancel(FileCancelReason::Cancelled))
        );
        let x = decide_send_local(SendState::Suspended, 9, SendLocal::UserCancel);
        assert_eq!(
            (x.row, x.answer, x.next),
            (
                Row::S35,
                Answer::Nothing,
                Some(SendState::Cancelled {
                    reason: FileCancelReason::Cancelled,
                    unsent: true
                })
            )
        );
        let sending = SendState::Sending { link: A, next: 4 };
        assert_eq!(
            decide_send_local(sending, 9, SendLocal::ReadFailed).row,
            Row::S36
        );
        let x = decide_send_local(sending, 9, SendLocal::ChunkSent { len: 5 });
        assert_eq!(
            (x.row, x.next),
            (Row::S37, Some(SendState::AwaitingComplete { link: A }))
        );
        let x = decide_send_local(sending, 9, SendLocal::LinkClosed(A));
        assert_eq!((x.row, x.next), (Row::S38, Some(SendState::Suspended)));
        assert_eq!(
            decide_send_local(sending, 9, SendLocal::LinkClosed(B)).next,
            None,
            "another link's end does not matter"
        );
        assert_eq!(
            decide_send_local(SendState::Suspended, 9, SendLocal::Unfriended).row,
            Row::S39
        );
    }
}
