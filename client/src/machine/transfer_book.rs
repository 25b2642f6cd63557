//! SPEC.md §8.3 in the machine: the transfers of every friend, and how a [`Decision`] of
//! Table R or S is carried out — the answer sent, the disk work derived from the transition
//! (create the `.part` file before a first FileAccept, append on R27, verify on entering
//! VERIFYING, delete the `.part` file when a transfer that held one ends without
//! completion), the discard set (§8.5.3), the state persisted with its SPEC name and end
//! reason, and the event for the user.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use peerchat_proto::limits::MAX_OFFERS_IN_FLIGHT;
use peerchat_proto::message::{FileOfferFrame, InvalidFileFrame, PeerFrame};
use peerchat_proto::wire::FileCancelReason;

use super::transfers::{
    decide_recv, decide_recv_local, decide_send, decide_send_local, Answer, Decision, FrameCtx,
    OfferKey, RecvInput, RecvLocal, RecvState, Row, SendInput, SendLocal, SendState,
};
use super::{
    cancel_frame, key, Action, ClientMachine, CommandError, DiskEvent, DiskJob, Expected, LinkId,
    MachineConfig, PersistOp, TransferRecord,
};
use crate::events::Event;
use crate::ids::TransferId;
use crate::transfer::naming::sanitize_file_name;
use crate::transfer::Direction;

#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    friend: String,
    key: OfferKey,
    path: PathBuf,
    state: SendState,
    seq: u64,
    /// A CheckSource job runs for a re-offer (S30/S31).
    checking: bool,
    /// A ReadChunk job runs.
    reading: bool,
    /// `key.sha256` is the file's SHA-256 (given, restored or computed): the offer can
    /// carry it. Without it, a link with `file-blake3` gets a streamed-hash offer and any
    /// other link waits for a [`DiskJob::HashSource`] (§8.3.1).
    sha_known: bool,
    /// A HashSource job runs.
    hashing: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    friend: String,
    key: OfferKey,
    /// The sanitised name (§8.4).
    name: String,
    state: RecvState,
    /// When the current FileAccept went out (R56).
    accepted_at: Option<Instant>,
    /// The final file, once verified.
    path: String,
    /// The FileDigest of a streamed-hash transfer, once received (§8.3.1).
    digest: Option<[u8; 32]>,
    /// The hash matched and a Rename job runs (R51 waits for its result, audit D19).
    renaming: bool,
}

impl Incoming {
    /// A streamed-hash transfer still waiting for its FileDigest.
    fn awaits_digest(&self) -> bool {
        self.key.streamed && self.digest.is_none()
    }
}

/// Every transfer, both ways.
#[derive(Debug, Default)]
pub(crate) struct TransferBook {
    out: HashMap<TransferId, Outgoing>,
    inc: HashMap<(String, TransferId), Incoming>,
    /// The friend's last chunk of any transfer (R56).
    last_chunk: HashMap<String, Instant>,
    /// Free space of the download volume, as last reported (R4b).
    free: Option<u64>,
    seq: u64,
}

impl TransferBook {
    fn out_of(&self, k: &str, id: TransferId) -> Option<&Outgoing> {
        self.out.get(&id).filter(|o| o.friend == k)
    }

    fn in_flight_from(&self, k: &str) -> usize {
        self.inc
            .values()
            .filter(|i| i.friend == k)
            .filter(|i| {
                matches!(
                    i.state,
                    RecvState::PendingDecision
                        | RecvState::Receiving { .. }
                        | RecvState::Suspended { .. }
                        | RecvState::Verifying { .. }
                )
            })
            .count()
    }

    fn offers_to(&self, k: &str) -> usize {
        self.out
            .values()
            .filter(|o| o.friend == k && (o.state.in_flight() || o.checking || o.hashing))
            .count()
    }

    /// Outgoing transfers of `k` in the order they were picked.
    fn out_ids(&self, k: &str) -> Vec<TransferId> {
        let mut v: Vec<(u64, TransferId)> = self
            .out
            .iter()
            .filter(|(_, o)| o.friend == k)
            .map(|(id, o)| (o.seq, *id))
            .collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    }

    fn inc_ids(&self, k: &str) -> Vec<TransferId> {
        let mut v: Vec<TransferId> = self
            .inc
            .keys()
            .filter(|(f, _)| f == k)
            .map(|(_, id)| *id)
            .collect();
        v.sort();
        v
    }

    fn find_incoming(&self, id: TransferId) -> Option<String> {
        let mut v: Vec<&String> = self
            .inc
            .keys()
            .filter(|(_, i)| *i == id)
            .map(|(f, _)| f)
            .collect();
        v.sort();
        v.first().map(|f| (*f).clone())
    }

    /// Something waits for a link with `k`: a transfer to offer or a cancel to deliver.
    pub(crate) fn needs_link(&self, k: &str) -> bool {
        self.out.values().any(|o| {
            o.friend == k
                && matches!(
                    o.state,
                    SendState::Suspended | SendState::Cancelled { unsent: true, .. }
                )
        })
    }

    pub(crate) fn friends_needing_link(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .out
            .values()
            .filter(|o| self.needs_link(&o.friend))
            .map(|o| o.friend.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The earliest OFFER_DATA_TIMEOUT (R56).
    pub(crate) fn next_timeout(&self, c: &MachineConfig) -> Option<Instant> {
        self.inc
            .values()
            .filter_map(|i| self.no_data_deadline(i, c))
            .min()
    }

    fn no_data_deadline(&self, i: &Incoming, c: &MachineConfig) -> Option<Instant> {
        let waiting = match i.state {
            RecvState::Receiving { .. } => true,
            // Only while its answer has a link to go on: otherwise nothing could fire.
            RecvState::Verifying { link: Some(_) } => i.awaits_digest(),
            _ => false,
        };
        if !waiting {
            return None;
        }
        let from = match (i.accepted_at, self.last_chunk.get(&i.friend)) {
            (Some(a), Some(l)) => a.max(*l),
            (Some(a), None) => a,
            (None, Some(l)) => *l,
            (None, None) => return None,
        };
        Some(from + c.offer_data_timeout)
    }
}

fn offer_frame(id: TransferId, k: &OfferKey) -> PeerFrame {
    PeerFrame::FileOffer(FileOfferFrame {
        id: id.0,
        name: k.name.clone(),
        size: k.size,
        sha256: (!k.streamed).then_some(k.sha256),
    })
}

impl ClientMachine {
    /// The driver learned the free space of the download volume (R4b).
    pub fn set_free_space(&mut self, bytes: Option<u64>) {
        self.book.free = bytes;
    }

    /// Restores an outgoing transfer of an earlier run: SUSPENDED (offered again on the next
    /// link, S30) or CANCELLED with its FileCancel not yet sent (S32). A `key` with
    /// `streamed` set has no known SHA-256 (it was offered with a streamed hash, or not yet).
    pub fn restore_outgoing(
        &mut self,
        friend: &str,
        id: TransferId,
        path: PathBuf,
        key: OfferKey,
        cancel_unsent: Option<FileCancelReason>,
    ) {
        self.book.seq += 1;
        let state = match cancel_unsent {
            Some(reason) => SendState::Cancelled {
                reason,
                unsent: true,
            },
            None => SendState::Suspended,
        };
        self.book.out.insert(
            id,
            Outgoing {
                friend: super::key(friend),
                sha_known: !key.streamed,
                key,
                path,
                state,
                seq: self.book.seq,
                checking: false,
                reading: false,
                hashing: false,
            },
        );
    }

    /// Restores an incoming transfer of an earlier run in `state` (SUSPENDED with the length
    /// of its `.part` file, PENDING_DECISION, or a terminal outcome kept for re-offers).
    pub fn restore_incoming(
        &mut self,
        friend: &str,
        id: TransferId,
        key: OfferKey,
        state: RecvState,
    ) {
        let state = match state {
            RecvState::Receiving { held, .. } => RecvState::Suspended { held },
            RecvState::Verifying { .. } => RecvState::Verifying { link: None },
            s => s,
        };
        let k = super::key(friend);
        self.book.inc.insert(
            (k.clone(), id),
            Incoming {
                friend: k,
                name: sanitize_file_name(&key.name),
                key,
                state,
                accepted_at: None,
                path: String::new(),
                digest: None,
                renaming: false,
            },
        );
    }

    /// The offer of an incoming transfer has a streamed hash (§8.3.1): the driver's writer
    /// hashes with BLAKE3 instead of SHA-256 while it appends.
    pub fn incoming_streamed(&self, id: TransferId) -> Option<bool> {
        let k = self.book.find_incoming(id)?;
        self.book.inc.get(&(k, id)).map(|i| i.key.streamed)
    }

    /// The outgoing transfer is offered with a streamed hash (§8.3.1): the driver's reader
    /// may hash with BLAKE3 while it reads, so that the FileDigest needs no second pass.
    pub fn outgoing_streamed(&self, id: TransferId) -> bool {
        self.book.out.get(&id).is_some_and(|o| o.key.streamed)
    }

    /// The friend (lower-case key) of a transfer in either direction.
    pub fn transfer_friend(&self, id: TransferId) -> Option<String> {
        self.book
            .out
            .get(&id)
            .map(|o| o.friend.clone())
            .or_else(|| self.book.find_incoming(id))
    }

    /// Name, size and direction of a transfer (for the driver's progress events).
    pub fn transfer_info(&self, id: TransferId) -> Option<(String, u64, Direction)> {
        if let Some(o) = self.book.out.get(&id) {
            return Some((o.friend.clone(), o.key.size, Direction::Outgoing));
        }
        let k = self.book.find_incoming(id)?;
        self.book
            .inc
            .get(&(k.clone(), id))
            .map(|i| (k, i.key.size, Direction::Incoming))
    }

    /// The state of a transfer (tests, the driver's list of transfers).
    pub fn transfer_state(&self, id: TransferId) -> Option<&'static str> {
        if let Some(o) = self.book.out.get(&id) {
            return Some(o.state.spec_name());
        }
        let k = self.book.find_incoming(id)?;
        self.book.inc.get(&(k, id)).map(|i| i.state.spec_name())
    }

    /// The receiving state of a transfer.
    pub fn incoming_state(&self, friend: &str, id: TransferId) -> Option<RecvState> {
        self.book.inc.get(&(key(friend), id)).map(|i| i.state)
    }

    /// The sending state of a transfer.
    pub fn outgoing_state(&self, id: TransferId) -> Option<SendState> {
        self.book.out.get(&id).map(|o| o.state)
    }

    /// The discard-set size of a link (tests).
    pub fn discard_len(&mut self, link: LinkId) -> usize {
        self.links.get_mut(link).map_or(0, |l| l.discard.len())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_file(
        &mut self,
        friend: &str,
        id: TransferId,
        path: PathBuf,
        name: String,
        size: u64,
        sha256: Option<[u8; 32]>,
        now: Instant,
    ) -> Result<(), CommandError> {
        let k = key(friend);
        if !self.dir.is_friend(&k) {
            return Err(CommandError::NotAFriend(friend.to_owned()));
        }
        self.book.seq += 1;
        let key = OfferKey {
            name,
            size,
            sha256: sha256.unwrap_or_default(),
            streamed: false,
        };
        self.book.out.insert(
            id,
            Outgoing {
                friend: k.clone(),
                key,
                path,
                state: SendState::Suspended,
                seq: self.book.seq,
                checking: false,
                reading: false,
                sha_known: sha256.is_some(),
                hashing: false,
            },
        );
        // S33 / S40: offered now if a link is OPEN and the cap allows; otherwise SUSPENDED.
        match self.links.active(&k) {
            Some(link)
                if self.dir.may_link(&k) && self.book.offers_to(&k) < MAX_OFFERS_IN_FLIGHT =>
            {
                if self.offer_kind(id, link) {
                    self.set_out(id, SendState::Offered { link }, Row::NoRow);
                    if let Some(o) = self.book.out.get(&id) {
                        let f = offer_frame(id, &o.key);
                        self.send(link, f);
                    }
                } else {
                    self.persist_out(id);
                }
            }
            _ => {
                self.persist_out(id);
                self.maybe_dial(&k, now);
            }
        }
        Ok(())
    }

    /// Fixes the kind of the offer about to go out on `link` (§8.3.1): a known SHA-256 is
    /// offered; otherwise a link with `file-blake3` gets a streamed-hash offer (no pre-hash
    /// pass). False when neither applies: a [`DiskJob::HashSource`] is started and the offer
    /// waits for its result.
    fn offer_kind(&mut self, id: TransferId, link: LinkId) -> bool {
        let blake3 = self.links.blake3_ok(link);
        let Some(o) = self.book.out.get_mut(&id) else {
            return false;
        };
        if o.sha_known {
            o.key.streamed = false;
            return true;
        }
        if blake3 {
            o.key.streamed = true;
            return true;
        }
        if !o.hashing {
            o.hashing = true;
            let job = DiskJob::HashSource {
                id,
                path: o.path.clone(),
                size: o.key.size,
            };
            self.push(Action::Disk(job));
        }
        false
    }

    pub(crate) fn accept_file(&mut self, id: TransferId, now: Instant) -> Result<(), CommandError> {
        self.answer_pending(id, now, |open| RecvLocal::Accept { open })
    }

    pub(crate) fn decline_file(
        &mut self,
        id: TransferId,
        now: Instant,
    ) -> Result<(), CommandError> {
        self.answer_pending(id, now, |open| RecvLocal::Decline { open })
    }

    /// The user's answer to an offer that awaits it (accept or decline): only a transfer in
    /// PENDING_DECISION can take one.
    fn answer_pending(
        &mut self,
        id: TransferId,
        now: Instant,
        answer: impl FnOnce(Option<LinkId>) -> RecvLocal,
    ) -> Result<(), CommandError> {
        let k = self
            .book
            .find_incoming(id)
            .ok_or(CommandError::UnknownTransfer(id))?;
        let i = &self.book.inc[&(k.clone(), id)];
        if i.state != RecvState::PendingDecision {
            return Err(CommandError::WrongState(id));
        }
        let open = self.links.active(&k);
        let x = decide_recv_local(i.state, i.key.size, answer(open));
        self.apply_recv(&k, id, x, open, None, now);
        Ok(())
    }

    pub(crate) fn cancel_transfer(
        &mut self,
        id: TransferId,
        now: Instant,
    ) -> Result<(), CommandError> {
        if let Some(o) = self.book.out.get(&id) {
            let k = o.friend.clone();
            let x = decide_send_local(o.state, o.key.size, SendLocal::UserCancel);
            if x.row == Row::NoRow {
                return Err(CommandError::WrongState(id));
            }
            let link = o.state.link();
            self.apply_send(&k, id, x, link);
            return Ok(());
        }
        let k = self
            .book
            .find_incoming(id)
            .ok_or(CommandError::UnknownTransfer(id))?;
        let i = &self.book.inc[&(k.clone(), id)];
        let open = self.links.active(&k);
        let x = decide_recv_local(i.state, i.key.size, RecvLocal::UserCancel { open });
        if x.row == Row::NoRow {
            return Err(CommandError::WrongState(id));
        }
        self.apply_recv(&k, id, x, open, None, now);
        Ok(())
    }

    /// Applies the auto-accept limit to offers still waiting (after `UpdateSettings`).
    pub(crate) fn auto_accept_pending(&mut self, now: Instant) {
        let waiting: Vec<(String, TransferId, u64)> = self
            .book
            .inc
            .iter()
            .filter(|(_, i)| i.state == RecvState::PendingDecision)
            .map(|((k, id), i)| (k.clone(), *id, i.key.size))
            .collect();
        for (_, id, size) in waiting {
            if self.config.auto_accept.allows(size) {
                let _ = self.accept_file(id, now);
            }
        }
    }

    /// Dispatch of §8.5.3.
    pub(crate) fn on_file_frame(&mut self, link: LinkId, k: &str, f: PeerFrame, now: Instant) {
        match f {
            PeerFrame::FileOffer(o) => {
                let id = TransferId(o.id);
                let key = OfferKey {
                    name: o.name,
                    size: o.size,
                    sha256: o.sha256.unwrap_or_default(),
                    streamed: o.sha256.is_none(),
                };
                let ctx = self.ctx(link, &id.0);
                let slot = (k.to_owned(), id);
                let state = self.book.inc.get(&slot).map(|i| (i.state, &i.key));
                // §8.3.1 r1: a streamed-hash offer needs the feature on this link.
                let input = if key.streamed && !self.links.blake3_ok(link) {
                    RecvInput::InvalidOffer
                } else {
                    RecvInput::Offer {
                        offer: &key,
                        own_outgoing: self.book.out_of(k, id).is_some(),
                        in_flight: self.book.in_flight_from(k),
                        free: self.book.free,
                    }
                };
                let x = decide_recv(state, input, ctx);
                if x.row == Row::R5 {
                    self.book.inc.insert(
                        slot,
                        Incoming {
                            friend: k.to_owned(),
                            name: sanitize_file_name(&key.name),
                            key,
                            state: RecvState::PendingDecision,
                            accepted_at: None,
                            path: String::new(),
                            digest: None,
                            renaming: false,
                        },
                    );
                    self.persist_in(k, id);
                    if self.config.auto_accept.allows(o.size) {
                        let _ = self.accept_file(id, now);
                    } else if let Some(i) = self.book.inc.get(&(k.to_owned(), id)) {
                        self.emit(Event::FileOffered {
                            friend: self.dir.display(k),
                            transfer_id: id,
                            name: i.name.clone(),
                            size: i.key.size,
                        });
                    }
                    return;
                }
                self.apply_recv(k, id, x, Some(link), None, now);
            }
            PeerFrame::FileChunk { id, offset, data } => {
                let id = TransferId(id);
                let ctx = self.ctx(link, &id.0);
                let state = self
                    .book
                    .inc
                    .get(&(k.to_owned(), id))
                    .map(|i| (i.state, &i.key));
                let x = decide_recv(
                    state,
                    RecvInput::Chunk {
                        offset,
                        len: data.len(),
                    },
                    ctx,
                );
                if x.row == Row::R27 {
                    self.book.last_chunk.insert(k.to_owned(), now);
                }
                self.apply_recv(k, id, x, Some(link), Some((offset, data)), now);
            }
            PeerFrame::FileCancel { id, reason, .. } => {
                let id = TransferId(id);
                let ctx = self.ctx(link, &id.0);
                if let Some(o) = self.book.out_of(k, id) {
                    let x = decide_send(Some(o.state), o.key.size, SendInput::Cancel(reason), ctx);
                    self.apply_send(k, id, x, Some(link));
                } else {
                    let state = self
                        .book
                        .inc
                        .get(&(k.to_owned(), id))
                        .map(|i| (i.state, &i.key));
                    let x = decide_recv(state, RecvInput::Cancel(reason), ctx);
                    self.apply_recv(k, id, x, Some(link), None, now);
                }
            }
            PeerFrame::FileAccept { id, offset } => {
                let id = TransferId(id);
                let ctx = self.ctx(link, &id.0);
                let (state, size) = match self.book.out_of(k, id) {
                    Some(o) => (Some(o.state), o.key.size),
                    None => (None, 0),
                };
                let x = decide_send(state, size, SendInput::Accept { offset }, ctx);
                self.apply_send(k, id, x, Some(link));
            }
            PeerFrame::FileComplete { id } => {
                let id = TransferId(id);
                let ctx = self.ctx(link, &id.0);
                let (state, size) = match self.book.out_of(k, id) {
                    Some(o) => (Some(o.state), o.key.size),
                    None => (None, 0),
                };
                let x = decide_send(state, size, SendInput::Complete, ctx);
                self.apply_send(k, id, x, Some(link));
            }
            PeerFrame::FileDigest { id, blake3 } => {
                self.on_digest(link, k, TransferId(id), blake3, now)
            }
            _ => {}
        }
    }

    /// File frames whose values failed validation (the id as received, any length).
    pub(crate) fn on_invalid_file_frame(
        &mut self,
        link: LinkId,
        k: &str,
        f: InvalidFileFrame,
        now: Instant,
    ) {
        let (raw, input, is_accept) = match f {
            InvalidFileFrame::Offer { id } => (id, RecvInput::InvalidOffer, false),
            InvalidFileFrame::Chunk { id } => (
                id,
                RecvInput::Chunk {
                    offset: u64::MAX,
                    len: 0,
                },
                false,
            ),
            InvalidFileFrame::Accept { id } => (id, RecvInput::InvalidOffer, true),
            InvalidFileFrame::Ignored => return,
        };
        let ctx = self.ctx(link, &raw);
        match TransferId::from_slice(&raw) {
            Some(id) if !is_accept => {
                let state = self
                    .book
                    .inc
                    .get(&(k.to_owned(), id))
                    .map(|i| (i.state, &i.key));
                let x = decide_recv(state, input, ctx);
                self.apply_recv(k, id, x, Some(link), None, now);
            }
            _ => {
                // An id that is not 16 bytes names no transfer: R2, R21 or S2.
                let x: Decision<RecvState> = if is_accept {
                    let s = decide_send(None, 0, SendInput::Accept { offset: 0 }, ctx);
                    Decision {
                        row: s.row,
                        answer: s.answer,
                        next: None,
                        discard: s.discard,
                        fate: s.fate,
                    }
                } else {
                    decide_recv(None, input, ctx)
                };
                if let Answer::Cancel(reason) = x.answer {
                    self.push(Action::SendRawCancel {
                        link,
                        transfer_id: raw.clone(),
                        reason,
                    });
                }
                if x.discard {
                    self.links.discard(link, &raw);
                }
            }
        }
    }

    /// A `FileDigest` (§8.3.1 r3, r4): the hash of a streamed-hash transfer in VERIFYING;
    /// anything else is answered like a bad chunk.
    fn on_digest(&mut self, link: LinkId, k: &str, id: TransferId, blake3: [u8; 32], now: Instant) {
        let ctx = self.ctx(link, &id.0);
        let slot = (k.to_owned(), id);
        let verifying = self.book.inc.get(&slot).and_then(|i| match i.state {
            RecvState::Verifying { .. } if i.key.streamed => Some(i.digest.is_some()),
            _ => None,
        });
        match verifying {
            _ if ctx.in_discard => {}
            Some(true) => {} // a repeated digest: the first counts
            Some(false) => {
                if let Some(i) = self.book.inc.get_mut(&slot) {
                    i.digest = Some(blake3);
                }
                self.push(Action::Disk(DiskJob::Verify {
                    id,
                    expect: Expected::Blake3(blake3),
                }));
            }
            None => {
                // Not awaited: as a bad chunk (R21/R23/R24 by state).
                let state = self.book.inc.get(&slot).map(|i| (i.state, &i.key));
                let x = decide_recv(
                    state,
                    RecvInput::Chunk {
                        offset: u64::MAX,
                        len: 0,
                    },
                    ctx,
                );
                self.apply_recv(k, id, x, Some(link), None, now);
            }
        }
    }

    fn ctx(&self, link: LinkId, id: &[u8]) -> FrameCtx {
        FrameCtx {
            link,
            in_discard: self.links.in_discard(link, id),
        }
    }

    /// Carries out a Table R decision for (`k`, `id`); `link` is where the answer goes.
    fn apply_recv(
        &mut self,
        k: &str,
        id: TransferId,
        x: Decision<RecvState>,
        link: Option<LinkId>,
        data: Option<(u64, Bytes)>,
        now: Instant,
    ) {
        let slot = (k.to_owned(), id);
        let prev = self.book.inc.get(&slot).map(|i| i.state);
        // The `.part` file exists before the FileAccept that names its length (R40, R41,
        // and R9 from an empty file).
        let creates_part = matches!(x.row, Row::R40 | Row::R41)
            || (x.row == Row::R9 && x.answer == Answer::Accept { offset: 0 });
        if creates_part {
            if let Some(i) = self.book.inc.get(&slot) {
                self.push(Action::Disk(DiskJob::CreatePart {
                    friend: k.to_owned(),
                    id,
                    name: i.name.clone(),
                    dir: self.config.download_dir.clone(),
                }));
            }
        }
        if let Some(link) = link {
            let frame = match x.answer {
                Answer::Cancel(reason) => Some(cancel_frame(id.0, reason)),
                Answer::Accept { offset } => Some(PeerFrame::FileAccept { id: id.0, offset }),
                Answer::Complete => Some(PeerFrame::FileComplete { id: id.0 }),
                Answer::Nothing | Answer::Offer | Answer::AskUser => None,
            };
            if let Some(f) = frame {
                self.send(link, f);
            }
            let ends =
                x.next.is_some_and(|n| n.is_terminal()) && !prev.is_some_and(|p| p.is_terminal());
            // R4's id names our own transfer to the friend, which goes on: its FileAccept
            // and FileComplete must not be discarded on this link (§8.5.3).
            let answered_dead = matches!(x.answer, Answer::Cancel(_))
                && x.row != Row::R4
                && prev.is_none_or(|p| p.is_terminal());
            if x.discard || ends || answered_dead {
                self.links.discard(link, &id.0);
            }
        }
        if x.row == Row::R27 {
            if let Some((offset, data)) = data {
                self.push(Action::Disk(DiskJob::Append { id, offset, data }));
            }
        }
        let (Some(next), Some(prev)) = (x.next, prev) else {
            return;
        };
        // R11: later frames for the id on the link it left are discarded.
        if let RecvState::Receiving { link: old, .. } = prev {
            if x.row == Row::R11 {
                self.links.discard(old, &id.0);
            }
        }
        let Some(i) = self.book.inc.get_mut(&slot) else {
            return;
        };
        i.state = next;
        let (size, sha256, name) = (i.key.size, i.key.sha256, i.name.clone());
        let expect = if i.key.streamed {
            i.digest.map(Expected::Blake3)
        } else {
            Some(Expected::Sha256(sha256))
        };
        let entered_receiving = matches!(next, RecvState::Receiving { .. })
            && !matches!(prev, RecvState::Receiving { .. });
        if matches!(x.row, Row::R9 | Row::R11 | Row::R40) || entered_receiving {
            i.accepted_at = Some(now);
        }
        let path = i.path.clone();
        if matches!(next, RecvState::Verifying { .. })
            && !matches!(prev, RecvState::Verifying { .. })
        {
            // A streamed-hash transfer verifies when its FileDigest is there (§8.3.1 r3).
            if let Some(expect) = expect {
                self.push(Action::Disk(DiskJob::Verify { id, expect }));
            }
        }
        if prev.holds_part() && matches!(next, RecvState::Cancelled(_) | RecvState::Failed) {
            self.push(Action::Disk(DiskJob::DeletePart { id }));
        }
        if x.row == Row::R55 {
            self.push(Action::Disk(DiskJob::DeletePart { id }));
        }
        if next.spec_name() != prev.spec_name() || matches!(x.row, Row::R9 | Row::R11) {
            self.persist_in(k, id);
        }
        let friend = self.dir.display(k);
        let held = match next {
            RecvState::Receiving { held, .. } | RecvState::Suspended { held } => held,
            _ => size,
        };
        match next {
            RecvState::Receiving { .. } if matches!(x.row, Row::R9 | Row::R11 | Row::R40) => self
                .emit(Event::TransferStarted {
                    friend,
                    transfer_id: id,
                    direction: Direction::Incoming,
                    name,
                    size,
                    offset: held,
                }),
            RecvState::Verifying { .. } if matches!(x.row, Row::R9 | Row::R40) => {
                self.emit(Event::TransferStarted {
                    friend,
                    transfer_id: id,
                    direction: Direction::Incoming,
                    name,
                    size,
                    offset: size,
                })
            }
            // R41: accepted while apart, it waits for the re-offer like a dropped one.
            RecvState::Suspended { held } if matches!(x.row, Row::R53 | Row::R41) => {
                self.emit(Event::TransferSuspended {
                    friend,
                    transfer_id: id,
                    direction: Direction::Incoming,
                    bytes: held,
                })
            }
            RecvState::Done => self.emit(Event::TransferComplete {
                friend,
                transfer_id: id,
                direction: Direction::Incoming,
                path,
                size,
            }),
            s if s.is_terminal() => {
                let reason = s.end_reason().unwrap_or(FileCancelReason::Cancelled);
                self.emit(Event::TransferCancelled {
                    friend,
                    transfer_id: id,
                    direction: Direction::Incoming,
                    reason,
                    message: format!("{:?}", x.row),
                })
            }
            _ => {}
        }
    }

    /// Carries out a Table S decision for `id` to `k`; `link` is where the answer goes.
    fn apply_send(
        &mut self,
        k: &str,
        id: TransferId,
        x: Decision<SendState>,
        link: Option<LinkId>,
    ) {
        if let Some(link) = link {
            let frame = match x.answer {
                Answer::Cancel(reason) => Some(cancel_frame(id.0, reason)),
                Answer::Offer => self.book.out.get(&id).map(|o| offer_frame(id, &o.key)),
                _ => None,
            };
            if let Some(f) = frame {
                self.send(link, f);
            }
            let prev = self.book.out_of(k, id).map(|o| o.state);
            let ends =
                x.next.is_some_and(|n| n.is_terminal()) && !prev.is_some_and(|p| p.is_terminal());
            // R4's id names our own transfer to the friend, which goes on: its FileAccept
            // and FileComplete must not be discarded on this link (§8.5.3).
            let answered_dead = matches!(x.answer, Answer::Cancel(_))
                && x.row != Row::R4
                && prev.is_none_or(|p| p.is_terminal());
            if x.discard || ends || answered_dead {
                self.links.discard(link, &id.0);
            }
        }
        let Some(next) = x.next else { return };
        self.set_out(id, next, x.row);
    }

    /// Moves an outgoing transfer to `next` and does what the transition implies.
    fn set_out(&mut self, id: TransferId, next: SendState, row: Row) {
        let Some(o) = self.book.out.get_mut(&id) else {
            return;
        };
        let prev = o.state;
        o.state = next;
        let (k, size, name, path) = (
            o.friend.clone(),
            o.key.size,
            o.key.name.clone(),
            o.path.clone(),
        );
        if next.spec_name() != prev.spec_name() || row == Row::S32 {
            self.persist_out(id);
        }
        let friend = self.dir.display(&k);
        match next {
            SendState::Sending { next: offset, .. } if row == Row::S3 => {
                self.emit(Event::TransferStarted {
                    friend,
                    transfer_id: id,
                    direction: Direction::Outgoing,
                    name,
                    size,
                    offset,
                });
                self.read_next(id);
            }
            SendState::AwaitingComplete { .. } if row == Row::S4 => {
                self.emit(Event::TransferStarted {
                    friend,
                    transfer_id: id,
                    direction: Direction::Outgoing,
                    name,
                    size,
                    offset: size,
                });
                self.digest_if_streamed(id);
            }
            SendState::AwaitingComplete { .. } if row == Row::S37 => self.digest_if_streamed(id),
            SendState::Suspended if row == Row::S38 => self.emit(Event::TransferSuspended {
                friend,
                transfer_id: id,
                direction: Direction::Outgoing,
                bytes: 0,
            }),
            SendState::Done => self.emit(Event::TransferComplete {
                friend,
                transfer_id: id,
                direction: Direction::Outgoing,
                path: path.display().to_string(),
                size,
            }),
            SendState::Failed | SendState::Cancelled { .. } if !prev.is_terminal() => {
                let reason = match next {
                    SendState::Cancelled { reason, .. } => reason,
                    _ => FileCancelReason::HashMismatch,
                };
                self.emit(Event::TransferCancelled {
                    friend,
                    transfer_id: id,
                    direction: Direction::Outgoing,
                    reason,
                    message: format!("{row:?}"),
                })
            }
            _ => {}
        }
        // A finished offer makes room for a waiting one (§7.9 r2, S40).
        if prev.in_flight() && !next.in_flight() {
            if let Some(link) = self.links.active(&k) {
                self.offer_waiting(&k, link);
            }
        }
    }

    /// A streamed-hash transfer ends its data with `FileDigest` (§8.3.1 r2): after the last
    /// chunk (S37), or at once when the receiver already holds every byte (S4).
    fn digest_if_streamed(&mut self, id: TransferId) {
        if let Some(o) = self.book.out.get(&id).filter(|o| o.key.streamed) {
            let job = DiskJob::Digest {
                id,
                path: o.path.clone(),
                size: o.key.size,
            };
            self.push(Action::Disk(job));
        }
    }

    fn read_next(&mut self, id: TransferId) {
        let chunk = self.config.chunk_size.max(1) as u64;
        let Some(o) = self.book.out.get_mut(&id) else {
            return;
        };
        if let SendState::Sending { next, .. } = o.state {
            if o.reading {
                return;
            }
            o.reading = true;
            let len = chunk.min(o.key.size - next) as usize;
            let path = o.path.clone();
            self.push(Action::Disk(DiskJob::ReadChunk {
                id,
                path,
                offset: next,
                len,
            }));
        }
    }

    /// S32 and S30/S31 on a link reaching OPEN (after C20).
    pub(crate) fn transfers_link_open(&mut self, k: &str, link: LinkId, _now: Instant) {
        for id in self.book.out_ids(k) {
            let Some(o) = self.book.out.get(&id) else {
                continue;
            };
            if let SendState::Cancelled { unsent: true, .. } = o.state {
                let x = decide_send_local(
                    o.state,
                    o.key.size,
                    SendLocal::LinkOpen {
                        link,
                        source_ok: true,
                    },
                );
                self.apply_send(k, id, x, Some(link));
            }
        }
        self.offer_waiting(k, link);
    }

    /// Starts the source check of SUSPENDED transfers to `k`, up to the cap (S30, S40).
    fn offer_waiting(&mut self, k: &str, _link: LinkId) {
        for id in self.book.out_ids(k) {
            if self.book.offers_to(k) >= MAX_OFFERS_IN_FLIGHT {
                return;
            }
            let Some(o) = self.book.out.get_mut(&id) else {
                continue;
            };
            if o.state == SendState::Suspended && !o.checking && !o.hashing {
                o.checking = true;
                let job = DiskJob::CheckSource {
                    id,
                    path: o.path.clone(),
                    size: o.key.size,
                };
                self.push(Action::Disk(job));
            }
        }
    }

    /// R53, S38 for the transfers on `link`.
    pub(crate) fn transfers_link_closed(&mut self, k: &str, link: LinkId, now: Instant) {
        for id in self.book.out_ids(k) {
            let Some(o) = self.book.out.get_mut(&id) else {
                continue;
            };
            o.checking = false;
            let x = decide_send_local(o.state, o.key.size, SendLocal::LinkClosed(link));
            if let Some(o) = self.book.out.get_mut(&id) {
                o.reading = false;
            }
            self.apply_send(k, id, x, None);
        }
        for id in self.book.inc_ids(k) {
            let Some(i) = self.book.inc.get_mut(&(k.to_owned(), id)) else {
                continue;
            };
            // §8.3.1 r5: VERIFYING without its digest becomes SUSPENDED with every byte.
            if i.awaits_digest() && i.state == (RecvState::Verifying { link: Some(link) }) {
                i.state = RecvState::Suspended { held: i.key.size };
                let (size, friend) = (i.key.size, self.dir.display(k));
                self.persist_in(k, id);
                self.emit(Event::TransferSuspended {
                    friend,
                    transfer_id: id,
                    direction: Direction::Incoming,
                    bytes: size,
                });
                continue;
            }
            let x = decide_recv_local(i.state, i.key.size, RecvLocal::LinkClosed(link));
            self.apply_recv(k, id, x, None, None, now);
        }
    }

    /// R54, S39.
    pub(crate) fn transfers_unfriended(&mut self, k: &str, now: Instant) {
        for id in self.book.out_ids(k) {
            if let Some(o) = self.book.out.get(&id) {
                let x = decide_send_local(o.state, o.key.size, SendLocal::Unfriended);
                self.apply_send(k, id, x, None);
            }
        }
        for id in self.book.inc_ids(k) {
            if let Some(i) = self.book.inc.get(&(k.to_owned(), id)) {
                let x = decide_recv_local(i.state, i.key.size, RecvLocal::Unfriended);
                self.apply_recv(k, id, x, None, None, now);
            }
        }
    }

    /// R56.
    pub(crate) fn transfers_timeout(&mut self, now: Instant) {
        let due: Vec<(String, TransferId)> = self
            .book
            .inc
            .iter()
            .filter(|(_, i)| {
                self.links.active(&i.friend).is_some()
                    && self
                        .book
                        .no_data_deadline(i, &self.config)
                        .is_some_and(|t| t <= now)
            })
            .map(|(slot, _)| slot.clone())
            .collect();
        for (k, id) in due {
            let Some(i) = self.book.inc.get(&(k.clone(), id)) else {
                continue;
            };
            let link = match i.state {
                RecvState::Receiving { link, .. } | RecvState::Verifying { link: Some(link) } => {
                    link
                }
                _ => continue,
            };
            let x = decide_recv_local(i.state, i.key.size, RecvLocal::NoData);
            self.apply_recv(&k, id, x, Some(link), None, now);
        }
    }

    /// S30/S31 for a transfer whose source was checked (and hashed, if it had to be).
    fn source_ready(&mut self, k: &str, id: TransferId, link: LinkId, ok: bool) {
        let Some(o) = self.book.out.get(&id) else {
            return;
        };
        let x = decide_send_local(
            o.state,
            o.key.size,
            SendLocal::LinkOpen {
                link,
                source_ok: ok,
            },
        );
        self.apply_send(k, id, x, Some(link));
    }

    pub(crate) fn on_disk(&mut self, ev: DiskEvent, now: Instant) {
        match ev {
            DiskEvent::ChunkRead { id, offset, data } => {
                let Some(o) = self.book.out.get_mut(&id) else {
                    return;
                };
                o.reading = false;
                let SendState::Sending { link, next } = o.state else {
                    return;
                };
                if next != offset || data.is_empty() {
                    return;
                }
                let (k, size) = (o.friend.clone(), o.key.size);
                let len = data.len() as u64;
                self.send(
                    link,
                    PeerFrame::FileChunk {
                        id: id.0,
                        offset,
                        data,
                    },
                );
                let x = decide_send_local(
                    SendState::Sending { link, next },
                    size,
                    SendLocal::ChunkSent { len },
                );
                self.apply_send(&k, id, x, Some(link));
                self.read_next(id);
            }
            DiskEvent::ReadFailed { id } => {
                let Some(o) = self.book.out.get_mut(&id) else {
                    return;
                };
                o.reading = false;
                let k = o.friend.clone();
                let link = o.state.link();
                let x = decide_send_local(o.state, o.key.size, SendLocal::ReadFailed);
                self.apply_send(&k, id, x, link);
            }
            DiskEvent::SourceChecked { id, ok } => {
                let Some(o) = self.book.out.get_mut(&id) else {
                    return;
                };
                if !o.checking {
                    return;
                }
                o.checking = false;
                let k = o.friend.clone();
                let Some(link) = self.links.active(&k) else {
                    return;
                };
                if ok && !self.offer_kind(id, link) {
                    // The SHA-256 is being computed; SourceHashed offers it.
                    return;
                }
                self.source_ready(&k, id, link, ok);
            }
            DiskEvent::SourceHashed { id, sha256 } => {
                let Some(o) = self.book.out.get_mut(&id) else {
                    return;
                };
                if !o.hashing {
                    return;
                }
                o.hashing = false;
                if let Some(h) = sha256 {
                    o.key.sha256 = h;
                    o.sha_known = true;
                    o.key.streamed = false;
                    // Recorded now, so that the re-offer after a restart is identical.
                    self.persist_out(id);
                }
                let Some(o) = self.book.out.get(&id) else {
                    return;
                };
                let k = o.friend.clone();
                match self.links.active(&k) {
                    Some(link) if o.state == SendState::Suspended => {
                        self.source_ready(&k, id, link, sha256.is_some())
                    }
                    // No link: offered (or found changed) when one is OPEN again (S30).
                    _ => {}
                }
            }
            DiskEvent::Digested { id, blake3 } => {
                let Some(o) = self.book.out.get(&id) else {
                    return;
                };
                let k = o.friend.clone();
                match (o.state, blake3) {
                    (SendState::AwaitingComplete { link }, Some(h)) => self.send(
                        link,
                        PeerFrame::FileDigest {
                            id: id.0,
                            blake3: h,
                        },
                    ),
                    (state @ SendState::AwaitingComplete { link }, None) => {
                        let x = decide_send_local(state, o.key.size, SendLocal::ReadFailed);
                        self.apply_send(&k, id, x, Some(link));
                    }
                    // The link closed meanwhile: the re-offer and its accept ask again.
                    _ => {}
                }
            }
            DiskEvent::WriteFailed { id } => {
                let Some(k) = self.book.find_incoming(id) else {
                    return;
                };
                let i = &self.book.inc[&(k.clone(), id)];
                let open = self.links.active(&k);
                let x = decide_recv_local(i.state, i.key.size, RecvLocal::WriteFailed { open });
                self.apply_recv(&k, id, x, open, None, now);
            }
            DiskEvent::Verified { id, matched } => {
                let Some(k) = self.book.find_incoming(id) else {
                    return;
                };
                let Some(i) = self.book.inc.get_mut(&(k.clone(), id)) else {
                    return;
                };
                let RecvState::Verifying { link } = i.state else {
                    // Cancelled (or failed) while the hash was computed: that decision
                    // stands and its DeletePart removes the file (audit D19).
                    return;
                };
                if matched {
                    // R51 once the file is in its final place: the FileComplete promises it.
                    i.renaming = true;
                    self.push(Action::Disk(DiskJob::Rename { id }));
                    return;
                }
                let x = decide_recv_local(i.state, i.key.size, RecvLocal::Verified { matched });
                self.apply_recv(&k, id, x, link, None, now);
            }
            DiskEvent::Renamed { id, path } => {
                let Some(k) = self.book.find_incoming(id) else {
                    return;
                };
                let Some(i) = self.book.inc.get_mut(&(k.clone(), id)) else {
                    return;
                };
                let RecvState::Verifying { link } = i.state else {
                    return;
                };
                if !i.renaming {
                    return;
                }
                i.renaming = false;
                i.path = path;
                let x =
                    decide_recv_local(i.state, i.key.size, RecvLocal::Verified { matched: true });
                self.apply_recv(&k, id, x, link, None, now);
            }
        }
    }

    fn persist_in(&mut self, k: &str, id: TransferId) {
        let Some(i) = self.book.inc.get(&(k.to_owned(), id)) else {
            return;
        };
        let bytes = match i.state {
            RecvState::Receiving { held, .. } | RecvState::Suspended { held } => held,
            RecvState::Done | RecvState::Verifying { .. } => i.key.size,
            _ => 0,
        };
        let rec = TransferRecord {
            friend: k.to_owned(),
            id,
            direction: Direction::Incoming,
            offered_name: i.key.name.clone(),
            size: i.key.size,
            sha256: (!i.key.streamed).then_some(i.key.sha256),
            state: i.state.spec_name(),
            end_reason: i.state.end_reason(),
            bytes,
            cancel_unsent: false,
        };
        self.push(Action::Persist(PersistOp::Transfer(rec)));
    }

    fn persist_out(&mut self, id: TransferId) {
        let Some(o) = self.book.out.get(&id) else {
            return;
        };
        let cancel_unsent = matches!(o.state, SendState::Cancelled { unsent: true, .. });
        let (end_reason, bytes) = match o.state {
            SendState::Cancelled { reason, .. } => (Some(reason), 0),
            SendState::Failed => (Some(FileCancelReason::HashMismatch), 0),
            SendState::Sending { next, .. } => (None, next),
            SendState::Done => (None, o.key.size),
            _ => (None, 0),
        };
        let rec = TransferRecord {
            friend: o.friend.clone(),
            id,
            direction: Direction::Outgoing,
            offered_name: o.key.name.clone(),
            size: o.key.size,
            sha256: o.sha_known.then_some(o.key.sha256),
            state: o.state.spec_name(),
            end_reason,
            bytes,
            cancel_unsent,
        };
        self.push(Action::Persist(PersistOp::Transfer(rec)));
    }
}
