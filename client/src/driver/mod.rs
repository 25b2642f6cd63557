//! The tokio driver of the client core (issue #13): it owns the sockets, the files, the
//! database and the clock, and carries out what [`ClientMachine`] decides.
//!
//! Every decision of SPEC.md §6–§8 for the peer side (outbox and acks, the transfer tables R
//! and S, one link per friend, when to dial) is made by the machine, which has no I/O. The
//! driver turns what happens into machine inputs — server events into [`ServerInput`]s, link
//! events into [`LinkEvent`]s, frames into `handle_peer_frame`, disk and database results
//! into `handle_disk` / `handle_persisted`, commands into `handle_command` — and then carries
//! out the machine's [`Action`]s in order. Time is read here only: the driver sleeps until
//! `poll_timeout()` and calls `handle_timeout(now)`.
//!
//! What stays in the driver is what the machine does not model: the friend cache and
//! requests the UI shows ([`FriendBook`], §6), the connection order that turns one `Dial`
//! into direct dials, reversals, punches and relays (§7.6, [`Traversal`]), and the idle
//! timers of each link (§3.6, owned by the link task in `peer/session.rs`).
//!
//! - [`links`]: peer events in, `SendFrame`/`CloseLink`/`Dial` out;
//! - [`disk`]: `DiskJob`s on blocking threads;
//! - [`persist`]: `PersistOp`s on the history database;
//! - [`directory`]: server events and pushes, the friend book and what the machine learns of it.

mod directory;
mod disk;
mod links;
mod persist;

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use peerchat_proto::message::PeerFrame;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::ClientError;
use crate::events::{Event, FriendView, RequestView};
use crate::fast_hash::FastMap;
use crate::friends::{key, FriendBook};
use crate::history::{self, History, HistoryEntry};
use crate::ids::{MessageId, TransferId};
use crate::machine::transfers::{OfferKey, RecvState};
use crate::machine::{self, Action, ClientMachine, CommandError, MachineConfig, PersistOp};
use crate::notices::NoticeFilter;
use crate::peer::session::SessionContext;
use crate::peer::traversal::{Reach, Traversal, TraversalConfig};
use crate::peer::{ConnId, PeerEvent, PeerLink};
use crate::profile::Profile;
use crate::server_session::{ServerEvent, ServerHandle};
use crate::transfer::AutoAccept;
use crate::transfer::Direction;

/// The friend list and pending requests, as the UI shows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FriendsSnapshot {
    /// Every friend (from the server, or the cache while offline).
    pub friends: Vec<FriendView>,
    /// Requests to us.
    pub incoming_requests: Vec<RequestView>,
    /// Requests from us.
    pub outgoing_requests: Vec<RequestView>,
}

type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

/// How many waiting inputs of one kind (received frames, messages to send) one turn of
/// the driver gathers into one batch of history writes. Bounded so that a flood of frames
/// cannot keep commands and timers waiting for long: a turn of 1,024 chat messages is a few
/// milliseconds of work and one sync. Why this many: while one batch syncs (1–5 ms on the
/// benchmark's disk under load), the next one queues up, and the batch size is what a sync
/// buys — with 64 the receiver of a flood was sync-bound near 10,000 messages/s (issue #14).
/// Memory stays bounded by each link's receive budget (`PEER_RECV_BUDGET`), not by this.
pub(crate) const MAX_GATHERED: usize = 1024;

/// How long delivered marks may wait for a batch to ride with (`Core::marks`). Why they
/// wait at all: nothing waits for a mark (SPEC.md §8.1 r3: removing the outbox entry need not
/// be durable; the UI heard `MessageAcked` already), but a mark written on its own after each
/// acknowledgement cost a conversation's sender a second transaction per message, and a
/// switch of the writer's `synchronous` level before and after it (issue #14). A crash within
/// the delay loses the marks, which r3 allows: those messages are sent again on the next
/// connection and acknowledged without being shown twice.
const MARKS_DELAY: Duration = Duration::from_millis(50);

/// The largest batch written on the core's own thread instead of the history's writer
/// thread (`Core::lone`).
///
/// Why on this thread: a conversation's message is a batch of one at each end. The
/// receiver's ack waits for it whatever else happens, and the sender's message is delivered
/// only once it is written (§8.1 r2); handing it to the writer thread and back cost two
/// thread wake-ups, ~30 µs each when they cross vCPUs of a virtual machine (`writer.rs`),
/// and on the sender they also delayed the start of its sync, which ended after the ack
/// had arrived (issue #14, session 19). A message of ours still travels while its entry is
/// written: the link tasks send it before this thread turns to the write (`Core::drain`).
/// Why only small ones: while a batch is written here, nothing else of this core runs; a
/// flood's bursts are written on the writer thread so that the next burst is read and
/// opened, or taken from the user, meanwhile.
pub(crate) const INLINE_OPS: usize = 1;

/// How long a shutdown waits for the links' `Close` frames to be written: the write task
/// gives a stuck socket `CLOSE_GRACE` (1 s); a little more covers its shutdown.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// An input taken from its channel while gathering a batch, that could not join it.
#[derive(Debug)]
enum Stashed {
    Peer(PeerEvent),
    Command(Command),
}

/// What the [`crate::Client`] handle asks the core.
#[derive(Debug)]
pub enum Command {
    /// Send a chat message.
    SendMessage {
        friend: String,
        text: String,
        reply: Reply<MessageId>,
    },
    /// Typing indicator.
    SetTyping { friend: String, active: bool },
    /// Send a file. `sha256` if the caller vouches for it; otherwise it is computed only if
    /// the friend's client needs it (no `file-blake3`, SPEC.md §8.3.1).
    SendFile {
        friend: String,
        path: PathBuf,
        name: String,
        size: u64,
        sha256: Option<[u8; 32]>,
        reply: Reply<TransferId>,
    },
    /// Accept an offered file.
    AcceptFile { id: TransferId, reply: Reply<()> },
    /// Decline an offered file.
    DeclineFile { id: TransferId, reply: Reply<()> },
    /// Cancel a transfer in either direction.
    CancelTransfer { id: TransferId, reply: Reply<()> },
    /// Recent history with a friend.
    History {
        friend: String,
        limit: u64,
        reply: Reply<Vec<HistoryEntry>>,
    },
    /// Completed files with a friend (the chat's `<File>` lines).
    FileHistory {
        friend: String,
        limit: u64,
        reply: Reply<Vec<crate::history::FileEntry>>,
    },
    /// Friends and requests.
    Friends { reply: Reply<FriendsSnapshot> },
    /// Is a connection to the friend up?
    IsConnected { friend: String, reply: Reply<bool> },
    /// Which steps of the connection order to use from now on (SPEC.md §7.6).
    SetTraversal { config: TraversalConfig },
    /// Accept a friend's presented key (SPEC.md §12.4).
    AcceptFriendKey {
        friend: String,
        fingerprint: String,
        reply: Reply<()>,
    },
    /// The user logs out: become unreachable until the next login (SPEC.md §5.6).
    GoOffline { reply: oneshot::Sender<()> },
    /// The user pressed "Retry now": forget every redial back-off, dial the friends with
    /// pending work, and reconnect the server now (issue #15 item 11).
    RetryNow,
    /// New settings take effect at once (no restart): where received files go and which
    /// offers are accepted without asking.
    UpdateSettings {
        /// Received files go to `<this>/<sender>/`.
        download_dir: PathBuf,
        /// Offers accepted without asking from now on.
        auto_accept: AutoAccept,
        reply: Reply<()>,
    },
    /// Close everything.
    Shutdown { reply: oneshot::Sender<()> },
}

/// Channels into the core.
pub struct CoreInputs {
    /// Commands.
    pub commands: mpsc::UnboundedReceiver<Command>,
    /// Server link events.
    pub server: mpsc::UnboundedReceiver<ServerEvent>,
    /// Peer connection events.
    pub peers: mpsc::Receiver<PeerEvent>,
}

/// Settings the core needs.
pub struct CoreSettings {
    /// The profile.
    pub profile: Profile,
    /// The history store.
    pub history: History,
    /// Shared friend cache.
    pub book: Arc<RwLock<FriendBook>>,
    /// Shared own userid.
    pub me: Arc<RwLock<Option<String>>>,
    /// Event sink.
    pub events: mpsc::UnboundedSender<Event>,
    /// For dialling.
    pub session_ctx: SessionContext,
    /// Which offers are accepted without asking.
    pub auto_accept: AutoAccept,
    /// OFFER_DATA_TIMEOUT (shorter in tests).
    pub offer_data_timeout: Duration,
    /// The server link, for ConnectPeer (SPEC.md §7.6).
    pub server: ServerHandle,
    /// Steps of the connection order to leave out.
    pub traversal: TraversalConfig,
}

/// The driver: the machine and everything it does not own.
pub struct Core {
    machine: ClientMachine,
    profile: Profile,
    history: History,
    book: Arc<RwLock<FriendBook>>,
    me: Arc<RwLock<Option<String>>>,
    events: mpsc::UnboundedSender<Event>,
    session_ctx: SessionContext,
    /// For ConnectPeer and RetryNow.
    server: ServerHandle,
    /// The connection order toward each friend (SPEC.md §7.6–§7.8).
    traversal: Traversal,
    /// Every link whose hello passed, by connection.
    links: FastMap<ConnId, PeerLink>,
    /// Friends the machine asked to dial whose attempt has not ended yet: when the
    /// traversal gives up (or never started), the machine hears `DialFailed`.
    dialing: HashSet<String>,
    /// What the machine was told of each friend's key: the presented fingerprint.
    told_keys: HashMap<String, String>,
    disk: disk::Disk,
    disk_rx: mpsc::UnboundedReceiver<disk::Done>,
    /// A punched link's attempt number and a link's end as the session saw it, for the
    /// machine's next PeerConnected / PeerDisconnected event.
    attempt_note: Option<u32>,
    down_note: Option<crate::events::PeerCloseReason>,
    /// `SendMessage` replies waiting for the batch that writes their outbox entries.
    send_replies: Vec<(MessageId, Reply<MessageId>)>,
    /// Delivered marks not written yet, and when they are written at the latest
    /// ([`MARKS_DELAY`] after the first). They join the next batch of several writes (a
    /// flood's), or are written on their own when due or before a command other than
    /// sending (so a history the UI reads shows them) and at shutdown.
    marks: Vec<PersistOp>,
    marks_due: Option<Instant>,
    /// An input taken while gathering a batch that could not join it: handled next.
    stash: Option<Stashed>,
    /// Tells first deliveries of queued notices from repeats (SPEC.md §6.9).
    notices: NoticeFilter,
}

impl Core {
    /// Builds the driver, tells the machine the cached friends, and restores the outbox and
    /// the unfinished transfers of an earlier run.
    ///
    /// # Errors
    /// History errors.
    pub async fn new(s: CoreSettings) -> Result<Self, ClientError> {
        let me = s.me.read().ok().and_then(|m| m.clone()).unwrap_or_default();
        let mut config = MachineConfig::new(&me, s.profile.downloads().to_path_buf());
        config.auto_accept = s.auto_accept;
        config.offer_data_timeout = s.offer_data_timeout;
        let (disk, disk_rx) = disk::Disk::new();
        let mut core = Core {
            machine: ClientMachine::new(config),
            profile: s.profile,
            history: s.history,
            book: s.book,
            me: s.me,
            events: s.events,
            session_ctx: s.session_ctx,
            server: s.server,
            traversal: Traversal::new(s.traversal),
            links: FastMap::default(),
            dialing: HashSet::new(),
            told_keys: HashMap::new(),
            disk,
            disk_rx,
            attempt_note: None,
            down_note: None,
            send_replies: Vec::new(),
            marks: Vec::new(),
            marks_due: None,
            stash: None,
            notices: NoticeFilter::default(),
        };
        // The cached friends first (a key change still pending from the last run is shown
        // again, SPEC.md §12.4), then what waits for them.
        core.sync_directory();
        core.restore().await?;
        core.drain().await;
        Ok(core)
    }

    /// Restores the outbox and the transfers (audit D6: also a cancel still to deliver).
    /// Received message ids are not loaded: the database stores a message only if its id
    /// is new and says so (`fresh`), which answers a re-sent one (C2) after a restart.
    async fn restore(&mut self) -> Result<(), ClientError> {
        for (friend, frame) in self.history.outbox().await? {
            self.machine.restore_outbox(&friend, frame);
        }
        for t in self.history.stored_transfers(Direction::Outgoing).await? {
            let cancel = match t.spec_state.as_str() {
                "OFFERED" | "SENDING" | "AWAITING_COMPLETE" | "SUSPENDED" => None,
                "CANCELLED" if t.cancel_unsent => Some(
                    t.end_reason
                        .unwrap_or(peerchat_proto::wire::FileCancelReason::Cancelled),
                ),
                _ => continue,
            };
            let key = OfferKey {
                name: t.offered_name,
                size: t.size,
                sha256: t.sha256.unwrap_or_default(),
                streamed: t.sha256.is_none(),
            };
            self.machine
                .restore_outgoing(&t.friend, t.id, t.path, key, cancel);
        }
        for t in self.history.stored_transfers(Direction::Incoming).await? {
            let reason = t
                .end_reason
                .unwrap_or(peerchat_proto::wire::FileCancelReason::Cancelled);
            let state = match t.spec_state.as_str() {
                "PENDING_DECISION" => RecvState::PendingDecision,
                "RECEIVING" | "VERIFYING" | "SUSPENDED" => {
                    let held = if t.path.as_os_str().is_empty() {
                        0
                    } else {
                        self.disk.restore_part(t.id, t.path.clone(), t.size)
                    };
                    RecvState::Suspended { held }
                }
                "DONE" => RecvState::Done,
                "DECLINED" => RecvState::Declined,
                "FAILED" => RecvState::Failed,
                _ => RecvState::Cancelled(reason),
            };
            let key = OfferKey {
                name: t.offered_name,
                size: t.size,
                sha256: t.sha256.unwrap_or_default(),
                streamed: t.sha256.is_none(),
            };
            self.machine.restore_incoming(&t.friend, t.id, key, state);
        }
        Ok(())
    }

    /// Runs until shut down or cancelled.
    pub async fn run(mut self, mut inputs: CoreInputs, cancel: CancellationToken) {
        loop {
            match self.stash.take() {
                Some(Stashed::Peer(ev)) => {
                    self.on_peer(ev);
                    self.end_of_input().await;
                    continue;
                }
                Some(Stashed::Command(cmd)) => {
                    if self.command(cmd, &mut inputs.peers).await.is_break() {
                        break;
                    }
                    self.end_of_input().await;
                    continue;
                }
                None => {}
            }
            let due = [
                self.machine.poll_timeout(),
                self.traversal.next_timeout(),
                self.marks_due,
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async move {
                match due {
                    Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // Server events first: a caller that got an answer finds its effect applied.
                biased;
                () = cancel.cancelled() => break,
                Some(ev) = inputs.server.recv() => self.on_server(ev).await,
                Some(done) = self.disk_rx.recv() => self.on_disk(done),
                cmd = inputs.commands.recv() => match cmd {
                    Some(cmd) => {
                        let sending = matches!(cmd, Command::SendMessage { .. });
                        if self.command(cmd, &mut inputs.peers).await.is_break() {
                            break;
                        }
                        if sending {
                            self.gather_sends(&mut inputs.commands);
                            self.gather_frames(&mut inputs.peers);
                        }
                    }
                    None => break,
                },
                Some(ev) = inputs.peers.recv() => {
                    let frame = matches!(ev, PeerEvent::Frame { .. });
                    self.on_peer(ev);
                    if frame {
                        self.gather_frames(&mut inputs.peers);
                        self.gather_sends(&mut inputs.commands);
                    }
                }
                () = sleep => self.on_timeout(),
            }
            self.end_of_input().await;
        }
        self.write_marks().await;
        self.close_all_and_wait().await;
        cancel.cancel();
        self.wait_for_link_tasks().await;
        self.disk.finish().await;
    }

    /// One command; `Break` after a shutdown.
    async fn command(
        &mut self,
        cmd: Command,
        peers: &mut mpsc::Receiver<PeerEvent>,
    ) -> ControlFlow<()> {
        if !matches!(cmd, Command::SendMessage { .. } | Command::SetTyping { .. }) {
            self.write_marks().await;
        }
        match cmd {
            Command::Shutdown { reply } => {
                self.take_unadmitted(peers);
                self.close_all_and_wait().await;
                let _ = reply.send(());
                ControlFlow::Break(())
            }
            cmd => {
                self.on_command(cmd).await;
                ControlFlow::Continue(())
            }
        }
    }

    /// Links whose hello exchange finished but whose `Up` this loop has not handled yet
    /// (commands go first): a shutdown closes them NORMAL too and waits for their `Close`
    /// (L53), instead of dropping them. The peer case `peer.l53.quit-closes-normal` quits
    /// right after its hello exchange and failed in that window.
    fn take_unadmitted(&mut self, peers: &mut mpsc::Receiver<PeerEvent>) {
        while let Ok(ev) = peers.try_recv() {
            if let PeerEvent::Up { conn, link, .. } = ev {
                self.links.insert(conn, link);
            }
        }
    }

    /// Carries out what the input asked for, then forgets the notes that belonged to it.
    async fn end_of_input(&mut self) {
        self.drain().await;
        if self.marks_due.is_some_and(|t| t <= Instant::now()) {
            self.write_marks().await;
        }
        self.answer_sends();
        // Notes for the events of this input only.
        self.attempt_note = None;
        self.down_note = None;
    }

    /// Group commit, receiving side (issue #14): frames already waiting behind the one just
    /// handled are fed to the machine too, so their `StoreIncoming`s meet in one batch (one
    /// transaction, one sync) before any of their acks leave (§8.1 r8). Only frames join: an
    /// input with notes of its own (a link up or down) waits in the stash for the next turn.
    ///
    /// A turn of messages to send gathers the frames waiting too, and a turn of frames the
    /// messages waiting (each while the one-slot stash is free): one transaction then holds
    /// both, and neither kind waits for the other to run dry. Why: commands go before frames
    /// in the loop, so a flood of sends kept the friend's acknowledgements waiting; with no
    /// acks the outbox window stayed full and the friend sat idle for seconds (issue #14).
    fn gather_frames(&mut self, peers: &mut mpsc::Receiver<PeerEvent>) {
        if self.stash.is_some() {
            return;
        }
        for _ in 1..MAX_GATHERED {
            match peers.try_recv() {
                Ok(ev @ PeerEvent::Frame { .. }) => self.on_peer(ev),
                Ok(ev) => {
                    self.stash = Some(Stashed::Peer(ev));
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// Group commit, sending side: messages the user queued meanwhile join one batch of
    /// `AppendOutbox`es (§8.1 r2: each is durable before its message counts as delivered,
    /// and before its reply).
    fn gather_sends(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) {
        if self.stash.is_some() {
            return;
        }
        for _ in 1..MAX_GATHERED {
            match commands.try_recv() {
                Ok(Command::SendMessage {
                    friend,
                    text,
                    reply,
                }) => self.queue_message(&friend, text, reply, Instant::now()),
                Ok(cmd) => {
                    self.stash = Some(Stashed::Command(cmd));
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// Time passed: the machine's timers, then the connection order's.
    fn on_timeout(&mut self) {
        let now = Instant::now();
        self.machine.handle_timeout(now);
        let book = self.book.clone();
        let actions = self.traversal.handle_timeout(now, |k| {
            book.read()
                .ok()
                .and_then(|b| b.get(k).map(|f| (f.candidates.clone(), f.dial_addr())))
        });
        self.run_traversal(actions);
    }

    /// Carries out the machine's actions in order, until it has nothing more to do (a
    /// result fed back, such as a database answer, may queue more).
    ///
    /// Consecutive `Persist` actions are applied as one batch ([`History::apply_batch`]:
    /// one transaction, one sync), and their results fed back, before the next action of
    /// another kind — so the order the machine asked for holds, and what waits for a write
    /// (an ack, a send) is queued only after it. Events the machine emits among the writes
    /// are held until the batch is written: the UI never hears of what is not stored yet.
    ///
    /// Our own `ChatMessage`s pass a batch too (§8.1 r2): the machine queues a message's
    /// outbox write before its send, and the send leaves at once, so the write's sync runs
    /// while the message travels and the friend stores it, instead of before. A round trip
    /// then costs one sync of latency, not two (issue #14). The machine reports the message
    /// delivered only when the write is done as well. Nothing else passes a write: an ack
    /// is queued only after its message is stored (C1), and a transfer's frames follow
    /// the state that records them.
    ///
    /// Delivered marks go further: nothing waits for them (SPEC.md §8.1 r3: removing
    /// the outbox entry need not be durable, and nothing the machine sends depends on it), so
    /// they do not end a batch, and every action passes them. They wait in `Core::marks` for
    /// the next batch of several writes, or are written on their own once due
    /// ([`MARKS_DELAY`]), before a command other than sending, and at shutdown. Why: every
    /// acknowledgement also lets the next outbox message into the window (a `SendFrame` right
    /// after the mark), and a mark that ended its batch made one transaction per
    /// acknowledgement — 93,000 transactions of one op for a 100,000-message flood, the
    /// flood's bottleneck (issue #14); and a mark written at the end of each drain still cost
    /// a conversation one transaction per message more (session 11). Events pass marks too:
    /// `MessageAcked` says the friend stored the message (that is durable on the friend's
    /// side, §8.1 r8); the mark is bookkeeping that a crash may lose anyway (r3), so the user
    /// is not kept waiting for it.
    async fn drain(&mut self) {
        let mut batch: Vec<PersistOp> = Vec::new();
        let mut held: Vec<Event> = Vec::new();
        // Whether a message of ours was sent while this batch's writes were collected.
        let mut passed = false;
        loop {
            let next = self.machine.poll_action();
            match next {
                Some(Action::Persist(op @ PersistOp::MarkDelivered { .. })) => {
                    self.marks.push(op);
                    self.marks_due
                        .get_or_insert_with(|| Instant::now() + MARKS_DELAY);
                    continue;
                }
                Some(Action::Persist(op)) => {
                    batch.push(op);
                    continue;
                }
                Some(Action::Emit(e)) if !batch.is_empty() => {
                    held.push(e);
                    continue;
                }
                Some(Action::SendFrame {
                    link,
                    frame: frame @ PeerFrame::Chat(_),
                }) if !batch.is_empty() => {
                    // Sent while its outbox entry is written (§8.1 r2, see above).
                    self.send_frame(link, frame);
                    passed = true;
                    continue;
                }
                _ => {}
            }
            // A batch is written before the next action of another kind. Waiting marks join
            // a batch that is a transaction of several writes anyway (see `marks`).
            let write = !batch.is_empty();
            if write {
                if batch.len() > 1 {
                    batch.append(&mut self.marks);
                    self.marks_due = None;
                }
                let ops = std::mem::take(&mut batch);
                let sent = std::mem::take(&mut passed);
                if !self.lone(&ops) {
                    self.persist_batch(ops).await;
                } else {
                    if sent {
                        // Let the link tasks write the messages that passed this batch
                        // before this thread waits for its sync, so that they travel
                        // while it runs (§8.1 r2): a yielded task runs again only after
                        // the tasks that are ready.
                        tokio::task::yield_now().await;
                    }
                    self.persist_batch_here(&ops);
                }
                for e in held.drain(..) {
                    self.emit_from_machine(e);
                }
            }
            let Some(a) = next else {
                if write {
                    // The results may have queued more (acks, sends).
                    continue;
                }
                break;
            };
            match a {
                Action::SendFrame { link, frame } => self.send_frame(link, frame),
                Action::SendRawCancel {
                    link,
                    transfer_id,
                    reason,
                } => self.send_raw_cancel(link, transfer_id, reason),
                Action::CloseLink { link, reason } => self.close_link(link, reason),
                Action::Dial { friend } => self.dial(&friend),
                Action::ConnectServer => self.server.retry_now(),
                Action::Disk(job) => self.disk_job(job).await,
                Action::Persist(_) => {}
                Action::Emit(e) => self.emit_from_machine(e),
            }
        }
    }

    /// Whether a batch is written on this thread instead of the writer thread
    /// ([`INLINE_OPS`] says why): a small one, and if it holds our own message, one alone
    /// in its friend's outbox. Why the last: a flood's message with others in flight is
    /// written on the writer thread, so that the core takes the next sends meanwhile.
    fn lone(&self, ops: &[PersistOp]) -> bool {
        ops.len() <= INLINE_OPS
            && ops.iter().all(|op| match op {
                PersistOp::AppendOutbox { friend, .. } => self.machine.unacked(friend) <= 1,
                _ => true,
            })
    }

    fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    fn error(&self, message: String) {
        tracing::warn!(%message);
        self.emit(Event::Error { message });
    }

    /// An event of the machine, completed with what only the driver knows; the directory
    /// events (presence, removal) are the driver's own, with the addresses the machine
    /// does not track.
    fn emit_from_machine(&mut self, e: Event) {
        let e = match e {
            Event::Presence { .. } | Event::FriendRemoved { .. } | Event::ServerStatus { .. } => {
                return
            }
            Event::PeerConnected {
                friend,
                path,
                attempt,
            } => Event::PeerConnected {
                friend,
                path,
                attempt: attempt.or(self.attempt_note.take()),
            },
            Event::PeerDisconnected { friend, reason } => Event::PeerDisconnected {
                friend,
                reason: self.down_note.take().unwrap_or(reason),
            },
            Event::TransferComplete { transfer_id, .. }
            | Event::TransferCancelled { transfer_id, .. } => {
                self.disk.forget(transfer_id);
                e
            }
            e => e,
        };
        self.emit(e);
    }

    fn display(&self, friend_key: &str) -> String {
        self.book
            .read()
            .ok()
            .and_then(|b| b.get(friend_key).map(|f| f.userid.clone()))
            .unwrap_or_else(|| friend_key.to_owned())
    }

    fn save_book(&self) {
        let r = self
            .book
            .read()
            .map(|b| b.save(&self.profile.friends_path()));
        if let Ok(Err(e)) = r {
            self.error(format!("saving the friend cache: {e}"));
        }
    }

    fn with_book<T>(&self, f: impl FnOnce(&mut FriendBook) -> T) -> Option<T> {
        let r = self.book.write().ok().map(|mut b| f(&mut b));
        self.save_book();
        r
    }

    fn close_all(&mut self) -> Vec<PeerLink> {
        let links: Vec<PeerLink> = self.links.drain().map(|(_, l)| l).collect();
        for link in &links {
            link.close(peerchat_proto::wire::CloseReason::Normal, "client exiting");
        }
        links
    }

    /// Closes every link NORMAL and waits until each `Close` is written (L53), at most
    /// [`EXIT_GRACE`]: the process may end right after the driver does.
    async fn close_all_and_wait(&mut self) {
        let links = self.close_all();
        let _ = tokio::time::timeout(EXIT_GRACE, async {
            for l in &links {
                l.written().await;
            }
        })
        .await;
    }

    /// After the cancel, every link task this loop never admitted (between its hello and its
    /// `Up`) closes NORMAL by itself (L53); waits for all of them, at most [`EXIT_GRACE`], so
    /// that the process does not end before their `Close` is written.
    async fn wait_for_link_tasks(&self) {
        let links = &self.session_ctx.links;
        links.close();
        let _ = tokio::time::timeout(EXIT_GRACE, links.wait()).await;
    }

    // ----- commands -------------------------------------------------------------------

    async fn on_command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::SendMessage {
                friend,
                text,
                reply,
            } => {
                self.queue_message(&friend, text, reply, now);
            }
            Command::SetTyping { friend, active } => {
                let _ = self
                    .machine
                    .handle_command(machine::Command::SetTyping { friend, active }, now);
            }
            Command::SendFile {
                friend,
                path,
                name,
                size,
                sha256,
                reply,
            } => {
                let r = self.send_file(&friend, path, name, size, sha256, now).await;
                let _ = reply.send(r);
            }
            Command::AcceptFile { id, reply } => {
                let r = self.machine_command(machine::Command::AcceptFile { id }, now);
                let _ = reply.send(r);
            }
            Command::DeclineFile { id, reply } => {
                let r = self.machine_command(machine::Command::DeclineFile { id }, now);
                let _ = reply.send(r);
            }
            Command::CancelTransfer { id, reply } => {
                let r = self.machine_command(machine::Command::CancelTransfer { id }, now);
                let _ = reply.send(r);
            }
            Command::History {
                friend,
                limit,
                reply,
            } => {
                let r = self
                    .history
                    .messages(&key(&friend), limit)
                    .await
                    .map_err(ClientError::from);
                let _ = reply.send(r);
            }
            Command::FileHistory {
                friend,
                limit,
                reply,
            } => {
                let r = self
                    .history
                    .completed_files(&key(&friend), limit)
                    .await
                    .map_err(ClientError::from);
                let _ = reply.send(r);
            }
            Command::Friends { reply } => {
                let snap = self
                    .book
                    .read()
                    .map(|b| FriendsSnapshot {
                        friends: b
                            .views()
                            .into_iter()
                            .map(|mut v| {
                                v.path = self.machine.link_path(&v.userid);
                                v
                            })
                            .collect(),
                        incoming_requests: b.incoming(),
                        outgoing_requests: b.outgoing(),
                    })
                    .map_err(|_| ClientError::Closed);
                let _ = reply.send(snap);
            }
            Command::IsConnected { friend, reply } => {
                let _ = reply.send(Ok(self.machine.active_link(&friend).is_some()));
            }
            Command::SetTraversal { config } => self.traversal.set_config(config),
            Command::AcceptFriendKey {
                friend,
                fingerprint,
                reply,
            } => {
                let r = self.accept_friend_key(&friend, &fingerprint, now);
                let _ = reply.send(r);
            }
            Command::GoOffline { reply } => {
                self.go_offline(now);
                self.drain().await;
                let _ = reply.send(());
            }
            Command::RetryNow => {
                let _ = self.machine.handle_command(machine::Command::RetryNow, now);
            }
            Command::UpdateSettings {
                download_dir,
                auto_accept,
                reply,
            } => {
                let r = self.update_settings(download_dir, auto_accept, now);
                let _ = reply.send(r);
            }
            Command::Shutdown { reply } => {
                let _ = reply.send(());
            }
        }
    }

    fn machine_command(&mut self, cmd: machine::Command, now: Instant) -> Result<(), ClientError> {
        self.machine.handle_command(cmd, now).map_err(command_error)
    }

    /// Hands a message to the machine; the reply waits in `send_replies` until the batch
    /// holding its `AppendOutbox` is written, so a caller that reads the history next finds
    /// the message. A write that fails does not fail the reply: the message is queued and
    /// may be on its way already (§8.1 r2); the machine's `Error` event says the history
    /// lacks it.
    fn queue_message(&mut self, friend: &str, text: String, reply: Reply<MessageId>, now: Instant) {
        if text.is_empty() || text.len() > peerchat_proto::limits::MAX_CHAT_TEXT {
            let _ = reply.send(Err(ClientError::Invalid(format!(
                "a message must have 1..={} bytes",
                peerchat_proto::limits::MAX_CHAT_TEXT
            ))));
            return;
        }
        let sent_at_unix_ms = history::now_ms();
        let id = MessageId::time_ordered(sent_at_unix_ms);
        match self.machine_command(
            machine::Command::SendMessage {
                friend: friend.to_owned(),
                id,
                text,
                sent_at_unix_ms,
            },
            now,
        ) {
            Ok(()) => self.send_replies.push((id, reply)),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Answers the `SendMessage`s whose outbox writes are done.
    fn answer_sends(&mut self) {
        for (id, reply) in std::mem::take(&mut self.send_replies) {
            let _ = reply.send(Ok(id));
        }
    }

    async fn send_file(
        &mut self,
        friend: &str,
        path: PathBuf,
        name: String,
        size: u64,
        sha256: Option<[u8; 32]>,
        now: Instant,
    ) -> Result<TransferId, ClientError> {
        let id = TransferId::random();
        self.machine_command(
            machine::Command::SendFile {
                friend: friend.to_owned(),
                id,
                path: path.clone(),
                name,
                size,
                sha256,
            },
            now,
        )?;
        // The row exists once the machine's first record is written; the source path is the
        // driver's to keep (restored after a restart).
        self.drain().await;
        if let Err(e) = self
            .history
            .set_transfer_path(&key(friend), Direction::Outgoing, id, &path)
            .await
        {
            self.error(e.to_string());
        }
        Ok(id)
    }

    fn update_settings(
        &mut self,
        download_dir: PathBuf,
        auto_accept: AutoAccept,
        now: Instant,
    ) -> Result<(), ClientError> {
        self.profile = Profile::open(self.profile.dir(), Some(download_dir.as_path()))?;
        self.machine_command(
            machine::Command::UpdateSettings {
                download_dir: self.profile.downloads().to_path_buf(),
                auto_accept,
            },
            now,
        )
    }

    /// The user logged out: nobody reaches us until the next login (SPEC.md §5.6; issue #15
    /// item 6). Without a userid every new session refuses at the hello, and the machine
    /// closes the links that are up (L53) and dials nobody.
    fn go_offline(&mut self, now: Instant) {
        if let Ok(mut me) = self.me.write() {
            *me = None;
        }
        self.traversal.set_reach(Reach::default());
        let _ = self
            .machine
            .handle_command(machine::Command::GoOffline, now);
    }
}

/// The answer to a refused machine command.
fn command_error(e: CommandError) -> ClientError {
    match e {
        CommandError::NotAFriend(f) => ClientError::NotAFriend(f),
        CommandError::UnknownTransfer(id) => ClientError::Invalid(format!("no transfer {id}")),
        CommandError::WrongState(id) => {
            ClientError::Invalid(format!("transfer {id} is not waiting for that"))
        }
        CommandError::KeyMismatch {
            friend,
            fingerprint,
        } => ClientError::Invalid(format!("{friend} presents another key than {fingerprint}")),
        CommandError::Offline => ClientError::NotLoggedIn,
    }
}
