//! The client core as a sans-IO state machine (issue #13): every decision of SPEC.md §6–§8
//! for the peer side, with no clock, socket, file or database inside.
//!
//! Modelled on quinn-proto's `Connection`: inputs go in through `handle_*` methods (each
//! takes `now`, the machine never reads a clock), outputs come out of
//! [`ClientMachine::poll_action`] in the order they must be carried out, and
//! [`ClientMachine::poll_timeout`] says when [`ClientMachine::handle_timeout`] is due next.
//! A driver (tokio, or the in-memory `Pair` of the tests) owns the sockets, the disk and the
//! database and only carries out actions. Wall-clock timestamps (a message's `sent_at`, the
//! time of receipt) are inputs too.
//!
//! The machine is split by SPEC chapter:
//! - [`links`] — §7 and Table L: links reaching OPEN, one link per friend (L52), Close
//!   frames (L30–L35), the redial policy of §7.4 (the idle timers of §3.6 belong to the link
//!   task, see [`links`]);
//! - [`chat`] — §8.1–§8.2 and Table C: outbox order, acks, dedupe, typing;
//! - [`transfers`] — §8.3 and Tables R and S as pure functions, and [`transfer_book`] which
//!   applies them to the transfers of every friend;
//! - [`directory`] — §6: the friend book as the server reports it, key changes (§12.4).

pub mod chat;
pub mod directory;
pub mod links;
pub mod transfer_book;
pub mod transfers;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use peerchat_proto::limits::{MAX_FILE_CHUNK, OFFER_DATA_TIMEOUT, PEER_RETRY_MAX, PEER_RETRY_MIN};
use peerchat_proto::message::{ChatFrame, PeerFrame};
use peerchat_proto::wire::{CloseReason, FileCancelReason};

use crate::events::Event;
use crate::ids::{MessageId, TransferId};
use crate::transfer::AutoAccept;
pub use crate::transfer::TransferRecord;

pub use crate::peer::ConnId as LinkId;
pub use directory::{FriendEntry, OfflineReason, ServerInput};
pub use links::{LinkEnd, LinkEvent};

/// Settings of the machine; [`Command::UpdateSettings`] changes the user's ones at once.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// Our userid (registered spelling), used for the L52 tie-break.
    pub me: String,
    /// Shortest and longest wait between dial attempts (§7.4).
    pub redial_min: Duration,
    /// Longest wait between dial attempts.
    pub redial_max: Duration,
    /// Offers accepted without asking.
    pub auto_accept: AutoAccept,
    /// Where received files go.
    pub download_dir: PathBuf,
    /// `OFFER_DATA_TIMEOUT` (§8.3 r3a).
    pub offer_data_timeout: Duration,
    /// Bytes per `FileChunk` (1..=`MAX_FILE_CHUNK`).
    pub chunk_size: usize,
}

impl MachineConfig {
    /// The defaults of SPEC.md §10 for user `me`.
    pub fn new(me: &str, download_dir: PathBuf) -> Self {
        Self {
            me: me.to_owned(),
            redial_min: PEER_RETRY_MIN,
            redial_max: PEER_RETRY_MAX,
            auto_accept: AutoAccept::Never,
            download_dir,
            offer_data_timeout: OFFER_DATA_TIMEOUT,
            chunk_size: MAX_FILE_CHUNK,
        }
    }
}

/// What the user (through [`crate::Client`]) asks. Ids and timestamps are chosen by the
/// driver, so that the machine stays deterministic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send a chat message (C21).
    SendMessage {
        /// To whom.
        friend: String,
        /// Its fresh id.
        id: MessageId,
        /// The text (1..=MAX_CHAT_TEXT bytes).
        text: String,
        /// Our wall clock, Unix ms.
        sent_at_unix_ms: u64,
    },
    /// The user types (C24).
    SetTyping {
        /// To whom.
        friend: String,
        /// Typing or stopped.
        active: bool,
    },
    /// Send a file of `size` bytes (S33). Without a SHA-256 the machine offers it with a
    /// streamed hash when the link has `file-blake3` (§8.3.1, no pre-hash pass), and asks
    /// for a [`DiskJob::HashSource`] otherwise.
    SendFile {
        /// To whom.
        friend: String,
        /// Its fresh id.
        id: TransferId,
        /// The source file.
        path: PathBuf,
        /// The name offered.
        name: String,
        /// Size in bytes.
        size: u64,
        /// SHA-256 of the content, if the caller knows it.
        sha256: Option<[u8; 32]>,
    },
    /// Accept an offered file (R40, R41).
    AcceptFile {
        /// The transfer.
        id: TransferId,
    },
    /// Decline an offered file (R42).
    DeclineFile {
        /// The transfer.
        id: TransferId,
    },
    /// Cancel a transfer in either direction (R43, R44, S34, S35).
    CancelTransfer {
        /// The transfer.
        id: TransferId,
    },
    /// Accept a friend's presented key (§12.4).
    AcceptFriendKey {
        /// The friend.
        friend: String,
        /// The presented key's fingerprint.
        fingerprint: String,
    },
    /// Reset every redial back-off, dial the friends with something pending and reconnect
    /// the server now (the GUI's "Retry now").
    RetryNow,
    /// New user settings, applied at once.
    UpdateSettings {
        /// Where received files go from now on.
        download_dir: PathBuf,
        /// Offers accepted without asking.
        auto_accept: AutoAccept,
    },
    /// The user logs out: every link closes NORMAL (L53), nothing is dialled.
    GoOffline,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Not in the friend list.
    #[error("{0} is not a friend")]
    NotAFriend(String),
    /// No transfer with that id.
    #[error("no transfer {0}")]
    UnknownTransfer(TransferId),
    /// The transfer is not in a state that allows it.
    #[error("transfer {0} cannot do that now")]
    WrongState(TransferId),
    /// The key to accept is not the one the server presents.
    #[error("{friend} presents another key than {fingerprint}")]
    KeyMismatch {
        /// The friend.
        friend: String,
        /// The fingerprint the user named.
        fingerprint: String,
    },
    /// Logged out.
    #[error("logged out")]
    Offline,
}

/// Work on files, carried out by the driver; its result comes back as a [`DiskEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskJob {
    /// Create (or truncate) the `.part` file for an accepted transfer (§8.4).
    CreatePart {
        /// The friend (the sub-folder).
        friend: String,
        /// The transfer.
        id: TransferId,
        /// The sanitised name.
        name: String,
        /// The download folder.
        dir: PathBuf,
    },
    /// Append `data` at `offset` to the `.part` file.
    Append {
        /// The transfer.
        id: TransferId,
        /// Where.
        offset: u64,
        /// What.
        data: Bytes,
    },
    /// Hash the `.part` file and report whether it is `expect` ([`DiskEvent::Verified`]).
    /// Nothing is renamed: the machine decides (R51; a cancel meanwhile wins, audit D19)
    /// and then asks for [`DiskJob::Rename`].
    Verify {
        /// The transfer.
        id: TransferId,
        /// The hash it must have.
        expect: Expected,
    },
    /// Move the verified `.part` file to its final name (§8.4); [`DiskEvent::Renamed`] or
    /// [`DiskEvent::WriteFailed`].
    Rename {
        /// The transfer.
        id: TransferId,
    },
    /// Delete the `.part` file.
    DeletePart {
        /// The transfer.
        id: TransferId,
    },
    /// Read `len` bytes at `offset` of a source file.
    ReadChunk {
        /// The transfer.
        id: TransferId,
        /// The source file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// How many.
        len: usize,
    },
    /// Check that a source file still has `size` bytes (S30, S31).
    CheckSource {
        /// The transfer.
        id: TransferId,
        /// The source file.
        path: PathBuf,
        /// The offered size.
        size: u64,
    },
    /// Compute the SHA-256 of a source file for an offer on a link without `file-blake3`
    /// (§8.3.1: only such a friend needs the pre-hash pass); [`DiskEvent::SourceHashed`].
    HashSource {
        /// The transfer.
        id: TransferId,
        /// The source file.
        path: PathBuf,
        /// The size it must have.
        size: u64,
    },
    /// Compute the BLAKE3 of a source file for the `FileDigest` of a streamed-hash
    /// transfer (§8.3.1 r2); [`DiskEvent::Digested`]. The driver sends the resulting frame
    /// behind the file's last chunk.
    Digest {
        /// The transfer.
        id: TransferId,
        /// The source file.
        path: PathBuf,
        /// The offered size.
        size: u64,
    },
}

/// The hash a received file must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// The offered SHA-256 (§8.3 r8).
    Sha256([u8; 32]),
    /// The BLAKE3 of the FileDigest (§8.3.1).
    Blake3([u8; 32]),
}

/// The result of a [`DiskJob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskEvent {
    /// A `ReadChunk` result.
    ChunkRead {
        /// The transfer.
        id: TransferId,
        /// Where.
        offset: u64,
        /// What.
        data: Bytes,
    },
    /// Reading a source file failed (S36).
    ReadFailed {
        /// The transfer.
        id: TransferId,
    },
    /// Creating, writing or renaming a `.part` file failed (R45).
    WriteFailed {
        /// The transfer.
        id: TransferId,
    },
    /// A `Verify` result.
    Verified {
        /// The transfer.
        id: TransferId,
        /// The hash matched.
        matched: bool,
    },
    /// A `Rename` result: the final file.
    Renamed {
        /// The transfer.
        id: TransferId,
        /// The final file.
        path: String,
    },
    /// A `CheckSource` result.
    SourceChecked {
        /// The transfer.
        id: TransferId,
        /// The source still has the offered size.
        ok: bool,
    },
    /// A `HashSource` result: `None` if the file could not be read or has another size.
    SourceHashed {
        /// The transfer.
        id: TransferId,
        /// The SHA-256.
        sha256: Option<[u8; 32]>,
    },
    /// A `Digest` result: `None` if the file could not be read.
    Digested {
        /// The transfer.
        id: TransferId,
        /// The BLAKE3.
        blake3: Option<[u8; 32]>,
    },
}

/// What the driver must make durable. The machine asks before it acknowledges (C1: history
/// first, then ack) and before it reports one of our messages delivered (C8: its outbox
/// entry is written, though its send did not wait, C21).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersistOp {
    /// Store a received message unless its id from this friend is stored already.
    StoreIncoming {
        /// From whom.
        friend: String,
        /// The message.
        frame: ChatFrame,
        /// Our wall clock at receipt, Unix ms.
        received_at_unix_ms: u64,
    },
    /// Append a message to the outbox (history). Queued before the message's send, which
    /// the driver lets pass it (§8.1 r2).
    AppendOutbox {
        /// To whom.
        friend: String,
        /// The message.
        frame: ChatFrame,
    },
    /// The friend acknowledged a message.
    MarkDelivered {
        /// To whom it went.
        friend: String,
        /// Which.
        id: MessageId,
    },
    /// A transfer changed state (the SPEC §8.3 name and the end reason are typed columns).
    Transfer(TransferRecord),
}

/// The result of a [`PersistOp`], fed back with [`ClientMachine::handle_persisted`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persisted {
    /// A `StoreIncoming` result.
    Incoming {
        /// From whom.
        friend: String,
        /// Which.
        id: MessageId,
        /// `Some(true)`: stored now; `Some(false)`: it was stored already (an earlier run);
        /// `None`: storing failed (C7, no ack).
        fresh: Option<bool>,
    },
    /// An `AppendOutbox` result.
    Outbox {
        /// To whom.
        friend: String,
        /// Which.
        id: MessageId,
        /// Made durable.
        ok: bool,
    },
}

/// One thing for the driver to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a frame on a link.
    SendFrame {
        /// The link.
        link: LinkId,
        /// The frame.
        frame: PeerFrame,
    },
    /// Send `FileCancel{transfer_id, reason}` for an id as received, of any length (R2,
    /// R21, S2 for an id that is not 16 bytes).
    SendRawCancel {
        /// The link.
        link: LinkId,
        /// The id as received.
        transfer_id: Bytes,
        /// Why.
        reason: FileCancelReason,
    },
    /// Close a link: `Some(reason)` sends `Close{reason}` first (CLOSING, §3.7 r2); `None`
    /// closes at once (the friend's Close was received, L30–L35).
    CloseLink {
        /// The link.
        link: LinkId,
        /// The reason to send.
        reason: Option<CloseReason>,
    },
    /// Run the connection order of §7.6 toward a friend; report
    /// [`LinkEvent::Up`] or [`LinkEvent::DialFailed`].
    Dial {
        /// The friend.
        friend: String,
    },
    /// Reconnect to the server now (after [`Command::RetryNow`]).
    ConnectServer,
    /// File work.
    Disk(DiskJob),
    /// Database work.
    Persist(PersistOp),
    /// Tell the user.
    Emit(Event),
}

/// The client core without I/O.
#[derive(Debug)]
pub struct ClientMachine {
    config: MachineConfig,
    logged_out: bool,
    actions: VecDeque<Action>,
    dir: directory::Directory,
    links: links::Links,
    chat: chat::Chat,
    book: transfer_book::TransferBook,
}

impl ClientMachine {
    /// A machine for `config.me`, with no friends yet.
    pub fn new(config: MachineConfig) -> Self {
        let links = links::Links::new(&config);
        Self {
            config,
            logged_out: false,
            actions: VecDeque::new(),
            dir: directory::Directory::default(),
            links,
            chat: chat::Chat::default(),
            book: transfer_book::TransferBook::default(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &MachineConfig {
        &self.config
    }

    /// Our userid became known (a login): the L52 tie-break uses it.
    pub fn set_me(&mut self, me: &str) {
        self.config.me = me.to_owned();
        self.links.set_me(me);
    }

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`ClientMachine::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.links.next_timeout(self.wants_links()),
            self.chat.next_timeout(),
            self.book.next_timeout(&self.config),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Time passed: typing expiry, redials, OFFER_DATA_TIMEOUT.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.chat_timeout(now);
        self.transfers_timeout(now);
        self.redial_due(now);
    }

    /// A command from the user. Errors are the command's answer; nothing is queued then.
    ///
    /// # Errors
    /// [`CommandError`] when the command cannot apply (not a friend, unknown transfer…).
    pub fn handle_command(&mut self, cmd: Command, now: Instant) -> Result<(), CommandError> {
        match cmd {
            Command::SendMessage {
                friend,
                id,
                text,
                sent_at_unix_ms,
            } => self.send_message(&friend, id, text, sent_at_unix_ms, now),
            Command::SetTyping { friend, active } => {
                self.set_typing(&friend, active, now);
                Ok(())
            }
            Command::SendFile {
                friend,
                id,
                path,
                name,
                size,
                sha256,
            } => self.send_file(&friend, id, path, name, size, sha256, now),
            Command::AcceptFile { id } => self.accept_file(id, now),
            Command::DeclineFile { id } => self.decline_file(id, now),
            Command::CancelTransfer { id } => self.cancel_transfer(id, now),
            Command::AcceptFriendKey {
                friend,
                fingerprint,
            } => self.accept_friend_key(&friend, &fingerprint, now),
            Command::RetryNow => {
                self.retry_now(now);
                Ok(())
            }
            Command::UpdateSettings {
                download_dir,
                auto_accept,
            } => {
                self.config.download_dir = download_dir;
                self.config.auto_accept = auto_accept;
                self.auto_accept_pending(now);
                Ok(())
            }
            Command::GoOffline => {
                self.go_offline(now);
                Ok(())
            }
        }
    }

    /// A file job finished.
    pub fn handle_disk(&mut self, ev: DiskEvent, now: Instant) {
        self.on_disk(ev, now);
    }

    /// A database job finished.
    pub fn handle_persisted(&mut self, done: Persisted, now: Instant) {
        match done {
            Persisted::Incoming { friend, id, fresh } => {
                self.on_incoming_stored(&friend, id, fresh, now)
            }
            Persisted::Outbox { friend, id, ok } => self.on_outbox_stored(&friend, id, ok, now),
        }
    }

    fn push(&mut self, a: Action) {
        self.actions.push_back(a);
    }

    fn emit(&mut self, e: Event) {
        self.push(Action::Emit(e));
    }

    fn send(&mut self, link: LinkId, frame: PeerFrame) {
        self.push(Action::SendFrame { link, frame });
    }

    /// Friends with something that needs a link: unacknowledged messages, transfers to
    /// offer, cancels or answers to deliver.
    fn wants_links(&self) -> Vec<String> {
        let mut v = self.chat.friends_with_pending();
        v.extend(self.book.friends_needing_link());
        v.sort();
        v.dedup();
        v.retain(|k| self.dir.may_link(k));
        v
    }

    /// How many of our messages to `friend` wait for an acknowledgement (its outbox, §8.1).
    pub fn unacked(&self, friend: &str) -> usize {
        self.chat.pending(&key(friend))
    }

    fn has_pending(&self, k: &str) -> bool {
        self.chat.pending(k) > 0 || self.book.needs_link(k)
    }
}

/// The key of a friend in every map: the ASCII-lowercase userid (userids compare
/// case-insensitively, SPEC.md §5.1.1).
pub fn key(userid: &str) -> String {
    userid.to_ascii_lowercase()
}

/// A `FileCancel` frame.
fn cancel_frame(id: [u8; 16], reason: FileCancelReason) -> PeerFrame {
    PeerFrame::FileCancel {
        id,
        reason,
        message: String::new(),
    }
}
