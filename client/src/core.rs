//! The client core: one task that owns all state that outlives a connection (friend
//! cache, outbox, transfers, the peer registry) and reacts to commands from the
//! [`crate::Client`] handle, to the server link, to peer connections and to the disk
//! threads. Sockets and files are handled elsewhere; decisions are made by the sans-IO
//! structs in [`crate::chat`], [`crate::transfer`] and [`crate::peer`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use peerchat_proto::limits::MAX_OFFERS_IN_FLIGHT;
use peerchat_proto::message::{
    ChatFrame, FileOfferFrame, InvalidFileFrame, PeerFrame, PendingRequest, PushEvent,
};
use peerchat_proto::wire::{CloseReason, FileCancelReason};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::chat::inbox::Inbox;
use crate::chat::outbox::Outbox;
use crate::chat::typing::TypingTracker;
use crate::error::ClientError;
use crate::events::{Event, FriendView, KeyDecision, RequestView};
use crate::friends::{key, FriendBook};
use crate::history::{self, state, History, HistoryEntry, TransferRecord};
use crate::ids::{MessageId, TransferId};
use crate::notices::NoticeFilter;
use crate::peer::redial::Redial;
use crate::peer::registry::{Admission, PeerRegistry};
use crate::peer::relay::spawn_relay;
use crate::peer::session::{spawn_dial, DialSpec, SessionContext};
use crate::peer::traversal::{
    is_reachable, may_start, Action, ConnectFailure, LinkPath, Reach, Traversal, TraversalConfig,
};
use crate::peer::{ConnId, PeerEvent, PeerLink};
use crate::profile::Profile;
use crate::server_session::{ServerEvent, ServerHandle};
use crate::transfer::disk::{
    create_part, free_space, held_on_disk, spawn_pump, spawn_sha256, spawn_writer, DiskEvent,
    PumpHandle, PumpJob, WriteFailure, WriteJob, WriterHandle,
};
use crate::transfer::naming::{
    ensure_real_dir, free_destination, occupied, part_path, sanitize_file_name,
    sanitize_folder_name,
};
use crate::transfer::receiver::{
    is_silent, refuse_offer, ChunkOutcome, FileReceiver, ReceiverState,
};
use crate::transfer::sender::{AcceptStep, FileSender, OfferStep};
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

struct Outgoing {
    friend: String,
    sender: FileSender,
    path: PathBuf,
    generation: u64,
    pump: Option<PumpHandle>,
    /// The SHA-256 for a version-1 offer is being computed (DiskEvent::Hashed).
    hashing: bool,
}

struct Incoming {
    receiver: FileReceiver,
    /// Sanitised name.
    name: String,
    /// The `.part` file, once accepted.
    part: Option<PathBuf>,
    /// Started at the first chunk, not at the accept: a waiting offer holds no thread and no
    /// open file (SPEC.md §7.9 rule 4).
    writer: Option<WriterHandle>,
    /// The connection the current accept was sent on.
    conn: Option<ConnId>,
    /// When the current accept was sent (OFFER_DATA_TIMEOUT runs from here, SPEC.md §8.3
    /// rule 3a).
    accepted_at: Option<Instant>,
}

impl Incoming {
    fn new(receiver: FileReceiver, name: String) -> Self {
        Self {
            receiver,
            name,
            part: None,
            writer: None,
            conn: None,
            accepted_at: None,
        }
    }
}

/// Incoming transfers that ended (or were never known) are remembered up to this many, so
/// that their late frames are ignored; a friend sending chunks for ever new ids cannot grow
/// the set without bound (forgetting only means one more FileCancel, which is ignored).
const DEAD_TRANSFERS_MAX: usize = 4096;

/// Channels into the core.
pub struct CoreInputs {
    /// Commands.
    pub commands: mpsc::UnboundedReceiver<Command>,
    /// Server link events.
    pub server: mpsc::UnboundedReceiver<ServerEvent>,
    /// Peer connection events.
    pub peers: mpsc::Receiver<PeerEvent>,
}

/// Everything the core owns.
pub struct Core {
    profile: Profile,
    history: History,
    book: Arc<RwLock<FriendBook>>,
    me: Arc<RwLock<Option<String>>>,
    events: mpsc::UnboundedSender<Event>,
    session_ctx: SessionContext,
    disk_tx: mpsc::UnboundedSender<DiskEvent>,
    disk_rx: mpsc::UnboundedReceiver<DiskEvent>,
    registry: PeerRegistry,
    links: HashMap<ConnId, (String, PeerLink)>,
    /// The connection order toward each friend (SPEC.md §7.6–§7.8).
    traversal: Traversal,
    /// For ConnectPeer.
    server: ServerHandle,
    /// When to dial each friend again (SPEC.md §7.4 r4, §8.5.1 L30–L35).
    redial: Redial,
    outbox: Outbox,
    inbox: Inbox,
    typing: TypingTracker,
    outgoing: HashMap<TransferId, Outgoing>,
    incoming: HashMap<(String, TransferId), Incoming>,
    auto_accept: AutoAccept,
    /// OFFER_DATA_TIMEOUT (shorter in tests).
    offer_data_timeout: Duration,
    /// When each friend's last FileChunk arrived: any file data keeps that friend's other
    /// accepted transfers alive (SPEC.md §8.3 rule 3a).
    last_chunk: HashMap<String, Instant>,
    next_generation: u64,
    /// Writer threads finishing after shutdown.
    finishing: Vec<tokio::task::JoinHandle<()>>,
    /// Incoming transfers that ended (or were never known): their late frames are ignored.
    dead: HashSet<(String, TransferId)>,
    /// Outgoing transfers the user cancelled while no link was open: their
    /// `FileCancel(CANCELLED)` goes out on the next link instead of the re-offer (SPEC.md
    /// §8.5.5 S32, S35; audit D6). Not yet persisted across a restart.
    cancels_to_send: HashMap<String, Vec<TransferId>>,
    /// Friendships that ended in this server event: their transfers end after it
    /// (SPEC.md §8.5 R54, S39, C23; audit D10).
    gone_friends: Vec<String>,
    /// Pending key changes already reported to the UI, by friend: the presented key. A
    /// repeated notice of the same key is not reported again (SPEC.md §12.4).
    key_reports: HashMap<String, peerchat_proto::IdentityKey>,
    /// Tells first deliveries of queued notices from repeats (SPEC.md §6.9).
    notices: NoticeFilter,
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

const RETRY_MIN: Duration = peerchat_proto::limits::PEER_RETRY_MIN;
const RETRY_MAX: Duration = peerchat_proto::limits::PEER_RETRY_MAX;

impl Core {
    /// Builds the core and restores the outbox and unfinished outgoing transfers.
    ///
    /// # Errors
    /// History errors.
    pub async fn new(s: CoreSettings) -> Result<Self, ClientError> {
        let (disk_tx, disk_rx) = mpsc::unbounded_channel();
        let me = s.me.read().ok().and_then(|m| m.clone()).unwrap_or_default();
        let mut core = Core {
            profile: s.profile,
            history: s.history,
            book: s.book,
            me: s.me,
            events: s.events,
            session_ctx: s.session_ctx,
            disk_tx,
            disk_rx,
            registry: PeerRegistry::new(&me),
            links: HashMap::new(),
            traversal: Traversal::new(s.traversal),
            server: s.server,
            redial: Redial::new(RETRY_MIN, RETRY_MAX),
            outbox: Outbox::new(),
            inbox: Inbox::default(),
            typing: TypingTracker::default(),
            outgoing: HashMap::new(),
            incoming: HashMap::new(),
            auto_accept: s.auto_accept,
            offer_data_timeout: s.offer_data_timeout,
            last_chunk: HashMap::new(),
            next_generation: 1,
            finishing: Vec::new(),
            dead: HashSet::new(),
            cancels_to_send: HashMap::new(),
            gone_friends: Vec::new(),
            key_reports: HashMap::new(),
            notices: NoticeFilter::default(),
        };
        for (friend, frame) in core.history.outbox().await? {
            core.outbox.restore(&friend, frame);
        }
        for t in core
            .history
            .transfers_in_state(Direction::Outgoing, state::PENDING)
            .await?
        {
            core.outgoing.insert(
                t.id,
                Outgoing {
                    friend: t.friend.clone(),
                    sender: FileSender::new(t.id, t.name, t.size, t.sha256),
                    path: t.path,
                    generation: 0,
                    pump: None,
                    hashing: false,
                },
            );
        }
        // A key change still pending from the last run is shown again (SPEC.md §12.4).
        core.sync_key_changes();
        Ok(core)
    }

    /// Runs until shut down or cancelled.
    pub async fn run(mut self, mut inputs: CoreInputs, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                // Server events first: a caller that got an answer finds its effect applied.
                biased;
                () = cancel.cancelled() => break,
                Some(ev) = inputs.server.recv() => self.on_server(ev).await,
                Some(ev) = self.disk_rx.recv() => self.on_disk(ev).await,
                cmd = inputs.commands.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => {
                        self.close_all();
                        let _ = reply.send(());
                        break;
                    }
                    Some(cmd) => self.on_command(cmd).await,
                    None => break,
                },
                Some(ev) = inputs.peers.recv() => self.on_peer(ev).await,
                _ = tick.tick() => {
                    self.on_tick();
                    self.expire_silent_transfers().await;
                }
            }
        }
        self.close_all();
        cancel.cancel();
        for j in self.finishing.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(30), j).await;
        }
    }

    fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    fn error(&self, message: String) {
        tracing::warn!(%message);
        self.emit(Event::Error { message });
    }

    fn display(&self, friend_key: &str) -> String {
        self.book
            .read()
            .ok()
            .and_then(|b| b.get(friend_key).map(|f| f.userid.clone()))
            .unwrap_or_else(|| friend_key.to_owned())
    }

    fn is_friend(&self, friend: &str) -> bool {
        self.book
            .read()
            .map(|b| b.get(friend).is_some())
            .unwrap_or(false)
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

    fn active_link(&self, friend_key: &str) -> Option<&PeerLink> {
        let conn = self.registry.active(friend_key)?;
        self.links.get(&conn).map(|(_, l)| l)
    }

    fn close_all(&mut self) {
        for (_, (_, link)) in self.links.drain() {
            link.close(CloseReason::Normal, "client exiting");
        }
        for o in self.outgoing.values_mut() {
            if let Some(p) = o.pump.take() {
                p.stop();
            }
        }
        // Dropping the writers lets their threads finish what is queued and keep the .part.
        for i in self.incoming.values_mut() {
            if let Some(w) = i.writer.take() {
                self.finishing.push(w.finish());
            }
        }
    }

    // ----- commands -------------------------------------------------------------------

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::SendMessage {
                friend,
                text,
                reply,
            } => {
                let r = self.send_message(&friend, text).await;
                let _ = reply.send(r);
            }
            Command::SetTyping { friend, active } => self.set_typing(&key(&friend), active),
            Command::SendFile {
                friend,
                path,
                name,
                size,
                sha256,
                reply,
            } => {
                let r = self.send_file(&friend, path, name, size, sha256).await;
                let _ = reply.send(r);
            }
            Command::AcceptFile { id, reply } => {
                let r = self.accept_file(id).await;
                let _ = reply.send(r);
            }
            Command::DeclineFile { id, reply } => {
                let r = self.decline_file(id).await;
                let _ = reply.send(r);
            }
            Command::CancelTransfer { id, reply } => {
                let r = self.cancel_transfer(id).await;
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
                                v.path = self.registry.path(&key(&v.userid));
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
                let _ = reply.send(Ok(self.active_link(&key(&friend)).is_some()));
            }
            Command::SetTraversal { config } => self.traversal.set_config(config),
            Command::AcceptFriendKey {
                friend,
                fingerprint,
                reply,
            } => {
                let r = self.accept_friend_key(&friend, &fingerprint);
                let _ = reply.send(r);
            }
            Command::GoOffline { reply } => {
                self.go_offline();
                let _ = reply.send(());
            }
            Command::RetryNow => self.retry_now(),
            Command::UpdateSettings {
                download_dir,
                auto_accept,
                reply,
            } => {
                let r = self.update_settings(&download_dir, auto_accept);
                let _ = reply.send(r);
            }
            Command::Shutdown { reply } => {
                let _ = reply.send(());
            }
        }
    }

    /// The user logged out: nobody reaches us until the next login (SPEC.md §5.6; issue #15
    /// item 6, where a logged-out user went on receiving and the sender saw "delivered").
    /// Without a userid every new session refuses at the hello, accepted, dialled or
    /// relayed (peer/session.rs), and `ensure_connected` dials nobody; the links that are up
    /// close here, and their `Down` events do the usual clean-up (outbox, transfers).
    fn go_offline(&mut self) {
        if let Ok(mut me) = self.me.write() {
            *me = None;
        }
        self.set_reach(Reach::default());
        self.redial.clear();
        for (_, link) in self.links.values() {
            link.close(CloseReason::Normal, "logged out");
        }
    }

    fn logged_out(&self) -> bool {
        self.me.read().map(|m| m.is_none()).unwrap_or(true)
    }

    async fn send_message(&mut self, friend: &str, text: String) -> Result<MessageId, ClientError> {
        let k = key(friend);
        if !self.is_friend(&k) {
            return Err(ClientError::NotAFriend(friend.to_owned()));
        }
        if text.is_empty() || text.len() > peerchat_proto::limits::MAX_CHAT_TEXT {
            return Err(ClientError::Invalid(format!(
                "a message must have 1..={} bytes",
                peerchat_proto::limits::MAX_CHAT_TEXT
            )));
        }
        let id = MessageId::random();
        let frame = ChatFrame {
            id: id.0,
            sent_at_unix_ms: history::now_ms(),
            text,
        };
        self.history.add_outgoing(&k, &frame).await?;
        self.typing.stopped(&k);
        match self.outbox.enqueue(&k, frame) {
            Some(frame) => {
                if let Some(link) = self.active_link(&k) {
                    link.send(PeerFrame::Chat(frame));
                }
            }
            None => self.ensure_connected(&k),
        }
        Ok(id)
    }

    fn set_typing(&mut self, k: &str, active: bool) {
        let Some(link) = self.active_link(k).cloned() else {
            return;
        };
        if active {
            if self.typing.should_send_active(k, Instant::now()) {
                link.send(PeerFrame::Typing(true));
            }
        } else {
            self.typing.stopped(k);
            link.send(PeerFrame::Typing(false));
        }
    }

    async fn send_file(
        &mut self,
        friend: &str,
        path: PathBuf,
        name: String,
        size: u64,
        sha256: Option<[u8; 32]>,
    ) -> Result<TransferId, ClientError> {
        let k = key(friend);
        if !self.is_friend(&k) {
            return Err(ClientError::NotAFriend(friend.to_owned()));
        }
        let id = TransferId::random();
        let record = TransferRecord {
            id,
            friend: k.clone(),
            direction: Direction::Outgoing,
            name: name.clone(),
            size,
            sha256,
            path: path.clone(),
            state: state::PENDING.into(),
        };
        self.history.add_transfer(&record).await?;
        self.outgoing.insert(
            id,
            Outgoing {
                friend: k.clone(),
                sender: FileSender::new(id, name, size, sha256),
                path,
                generation: 0,
                pump: None,
                hashing: false,
            },
        );
        if self.active_link(&k).is_some() {
            self.offer_pending(&k).await;
        } else {
            self.ensure_connected(&k);
        }
        Ok(id)
    }

    fn find_incoming(&self, id: TransferId) -> Option<(String, TransferId)> {
        self.incoming.keys().find(|(_, i)| *i == id).cloned()
    }

    async fn accept_file(&mut self, id: TransferId) -> Result<(), ClientError> {
        let k = self
            .find_incoming(id)
            .ok_or_else(|| ClientError::Invalid(format!("no offered transfer {id}")))?;
        if self.incoming.get(&k).map(|t| t.receiver.state())
            != Some(&ReceiverState::AwaitingDecision)
        {
            return Err(ClientError::Invalid(format!(
                "transfer {id} is not waiting for a decision"
            )));
        }
        // With no link open the transfer is SUSPENDED with an empty .part file, and the
        // re-offer is answered FileAccept{0} (SPEC.md §8.5.4 R41; audit D7).
        self.start_receiving(&k.0, id, None).await;
        Ok(())
    }

    async fn decline_file(&mut self, id: TransferId) -> Result<(), ClientError> {
        let k = self
            .find_incoming(id)
            .ok_or_else(|| ClientError::Invalid(format!("no offered transfer {id}")))?;
        self.stop_incoming(
            &k.0,
            id,
            FileCancelReason::Declined,
            "declined by the user",
            true,
        )
        .await;
        Ok(())
    }

    async fn cancel_transfer(&mut self, id: TransferId) -> Result<(), ClientError> {
        if let Some(o) = self.outgoing.get(&id) {
            let friend = o.friend.clone();
            self.stop_outgoing(
                &friend,
                id,
                FileCancelReason::Cancelled,
                "cancelled by the user",
                true,
            )
            .await;
            self.offer_pending(&friend).await;
            return Ok(());
        }
        let k = self
            .find_incoming(id)
            .ok_or_else(|| ClientError::Invalid(format!("no transfer {id}")))?;
        self.stop_incoming(
            &k.0,
            id,
            FileCancelReason::Cancelled,
            "cancelled by the user",
            true,
        )
        .await;
        Ok(())
    }

    // ----- friend keys (SPEC.md §12.4) ------------------------------------------------

    fn key_change_pending(&self, k: &str) -> bool {
        self.book
            .read()
            .map(|b| b.get(k).is_some_and(|f| f.key_change_pending()))
            .unwrap_or(true)
    }

    /// Makes the UI and the links agree with the book's pending key changes, whichever way
    /// the book learned them: a newly pending (or again changed) key closes every link with
    /// the friend and is reported once; a change that ended because the server presents the
    /// pinned key again releases what was held.
    fn sync_key_changes(&mut self) {
        let pending = self
            .book
            .read()
            .map(|b| b.pending_key_changes())
            .unwrap_or_default();
        let still: HashSet<String> = pending.iter().map(|(k, _, _)| k.clone()).collect();
        for (k, pinned, presented) in pending {
            if self.key_reports.get(&k) == Some(&presented) {
                continue;
            }
            // Links authenticated with the old key end here (§7.2 "While Open").
            for (_, (f, l)) in self.links.iter().filter(|(_, (f, _))| *f == k) {
                tracing::info!(friend = %f, "closing a link: the friend's key changed");
                l.close(CloseReason::NotAFriend, "your identity key changed");
            }
            self.traversal.forget(&k);
            self.redial.reset(&k);
            let friend = self.display(&k);
            tracing::warn!(%friend, pinned = %pinned.fingerprint(), presented = %presented.fingerprint(), "friend key change pending");
            self.emit(Event::FriendKeyChanged {
                friend,
                pinned: pinned.fingerprint().to_string(),
                presented: presented.fingerprint().to_string(),
            });
            self.key_reports.insert(k, presented);
        }
        let ended: Vec<String> = self
            .key_reports
            .keys()
            .filter(|k| !still.contains(*k))
            .cloned()
            .collect();
        for k in ended {
            self.key_reports.remove(&k);
            self.key_change_ended(&k, KeyDecision::Reverted);
        }
    }

    /// The user accepts `fingerprint` as `friend`'s key (SPEC.md §12.4).
    fn accept_friend_key(&mut self, friend: &str, fingerprint: &str) -> Result<(), ClientError> {
        let k = key(friend);
        self.with_book(|b| b.accept_key(&k, fingerprint))
            .ok_or(ClientError::Closed)??;
        self.key_reports.remove(&k);
        self.key_change_ended(&k, KeyDecision::Accepted);
        Ok(())
    }

    /// A friend's pending key change ended: say so and send what was held.
    fn key_change_ended(&mut self, k: &str, how: KeyDecision) {
        let Some(fingerprint) = self
            .book
            .read()
            .ok()
            .and_then(|b| b.get(k).map(|f| f.identity_key.fingerprint().to_string()))
        else {
            return;
        };
        let friend = self.display(k);
        tracing::info!(%friend, %fingerprint, ?how, "friend key trusted");
        self.emit(Event::FriendKeyTrusted {
            friend,
            fingerprint,
            how,
        });
        self.redial.reset(k);
        if self.has_pending(k) {
            self.ensure_connected(k);
        }
    }

    /// [`Command::RetryNow`]: no back-off is waited out, neither toward friends with
    /// something to deliver nor toward the server.
    fn retry_now(&mut self) {
        self.redial.clear();
        let waiting: Vec<String> = self
            .book
            .read()
            .map(|b| b.friends().map(|f| key(&f.userid)).collect())
            .unwrap_or_default();
        for k in waiting {
            if self.has_pending(&k) {
                self.ensure_connected(&k);
            }
        }
        self.server.retry_now();
    }

    /// [`Command::UpdateSettings`]: offers from now on use the new rule and folder.
    fn update_settings(
        &mut self,
        download_dir: &Path,
        auto_accept: AutoAccept,
    ) -> Result<(), ClientError> {
        self.profile = Profile::open(self.profile.dir(), Some(download_dir))?;
        self.auto_accept = auto_accept;
        Ok(())
    }

    // ----- connections ----------------------------------------------------------------

    fn has_pending(&self, k: &str) -> bool {
        self.outbox.pending(k) > 0
            || self
                .outgoing
                .values()
                .any(|o| o.friend == k && !o.sender.is_finished())
    }

    /// Starts the connection order toward the friend (SPEC.md §7.6) unless a link is up, an
    /// attempt is running, or the back-off after a failed attempt has not run out (§7.4:
    /// messages queued meanwhile do not each start a dial; FriendOnline and an inbound link
    /// reset the back-off).
    fn ensure_connected(&mut self, k: &str) {
        // Held until the user decides on the friend's new key (SPEC.md §12.4).
        if self.key_change_pending(k) {
            return;
        }
        let now = Instant::now();
        if !self.redial.may_dial(k, now)
            || !may_start(
                self.registry.active(k).is_some(),
                self.traversal.is_running(k),
                self.redial.not_before(k),
                now,
            )
        {
            return;
        }
        if self.logged_out() {
            return;
        }
        let Some((candidates, endpoint)) = self.targets(k) else {
            return;
        };
        tracing::debug!(friend = %k, ?candidates, ?endpoint, "connecting");
        let actions = self.traversal.start(k, &candidates, endpoint, now);
        self.run_actions(actions);
    }

    /// A friend's candidates and the endpoint to dial (current, else last known).
    fn targets(
        &self,
        k: &str,
    ) -> Option<(
        Vec<peerchat_proto::message::Candidate>,
        Option<std::net::SocketAddr>,
    )> {
        self.book
            .read()
            .ok()
            .and_then(|b| b.get(k).map(|f| (f.candidates.clone(), f.dial_addr())))
    }

    /// Carries out what the traversal machine decided.
    fn run_actions(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Dial {
                    friend,
                    step,
                    addrs,
                    at,
                    timeout,
                    from_listener,
                    path,
                } => {
                    let userid = self.display(&friend);
                    tracing::debug!(friend = %userid, ?addrs, %path, "dialling");
                    let spec = DialSpec {
                        step,
                        addrs,
                        at: tokio::time::Instant::from_std(at),
                        timeout,
                        from_listener,
                        path,
                    };
                    spawn_dial(self.session_ctx.clone(), userid, spec);
                }
                Action::ConnectPeer { friend, step, mode } => {
                    let userid = self.display(&friend);
                    let server = self.server.clone();
                    let events = self.session_ctx.events.clone();
                    tokio::spawn(async move {
                        let result = match server
                            .request(peerchat_proto::message::Request::ConnectPeer { userid, mode })
                            .await
                        {
                            Ok(peerchat_proto::message::ResponseBody::ConnectPeer(ok)) => Ok(ok),
                            Err(ClientError::Server(e))
                                if e.code == peerchat_proto::wire::ErrorCode::PeerOffline =>
                            {
                                Err(ConnectFailure::PeerOffline)
                            }
                            Err(ClientError::Server(e))
                                if e.code == peerchat_proto::wire::ErrorCode::NotLoggedIn =>
                            {
                                Err(ConnectFailure::ServerUnavailable)
                            }
                            Err(ClientError::Server(_)) | Ok(_) => Err(ConnectFailure::Other),
                            Err(_) => Err(ConnectFailure::ServerUnavailable),
                        };
                        let _ = events
                            .send(PeerEvent::ConnectPeerAnswer {
                                friend,
                                step,
                                result,
                            })
                            .await;
                    });
                }
                Action::OpenRelay { friend, step } => {
                    let userid = self.display(&friend);
                    tracing::debug!(friend = %userid, "opening a relay");
                    spawn_relay(self.session_ctx.clone(), userid, None, Some(step));
                }
                Action::Failed { friend } => {
                    tracing::info!(%friend, "no link could be made; backing off");
                    self.redial.on_attempt_failed(&friend, Instant::now());
                }
            }
        }
    }

    /// Our own reachability changed (login, logout, server lost).
    fn set_reach(&mut self, reach: Reach) {
        self.traversal.set_reach(reach);
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        for f in self.typing.expire(now) {
            let friend = self.display(&f);
            self.emit(Event::Typing {
                friend,
                active: false,
            });
        }
        let book = self.book.clone();
        let actions = self.traversal.handle_timeout(now, |k| {
            book.read()
                .ok()
                .and_then(|b| b.get(k).map(|f| (f.candidates.clone(), f.dial_addr())))
        });
        self.run_actions(actions);
        let due: Vec<String> = self
            .redial
            .due(now)
            .into_iter()
            .filter(|k| self.registry.active(k).is_none() && !self.traversal.is_running(k))
            .collect();
        for k in due {
            if self.has_pending(&k) {
                self.ensure_connected(&k);
            } else {
                self.redial.settle(&k);
            }
        }
    }

    async fn on_peer(&mut self, ev: PeerEvent) {
        match ev {
            PeerEvent::Up {
                conn,
                friend,
                initiated_by_me,
                addr,
                path,
                link,
            } => {
                let path = path
                    .unwrap_or_else(|| self.traversal.inbound_path(&key(&friend), Instant::now()));
                self.on_up(conn, &friend, initiated_by_me, addr, path, link)
                    .await
            }
            PeerEvent::Frame { conn, frame } => {
                let Some((k, _)) = self.links.get(&conn) else {
                    return;
                };
                let k = k.clone();
                let active = self.registry.active(&k) == Some(conn);
                self.on_frame(&k, conn, active, frame).await;
            }
            PeerEvent::Down {
                conn,
                reason,
                friend_close,
            } => {
                let Some((k, _)) = self.links.remove(&conn) else {
                    return;
                };
                if self.registry.remove(&k, conn) {
                    self.traversal.on_link_closed(&k);
                    self.on_link_lost(&k);
                    let friend = self.display(&k);
                    if self.typing.on_remote(&k, false, Instant::now()) {
                        self.emit(Event::Typing {
                            friend: friend.clone(),
                            active: false,
                        });
                    }
                    self.emit(Event::PeerDisconnected { friend, reason });
                    self.redial.on_link_closed(&k, Instant::now(), friend_close);
                    if self.has_pending(&k) {
                        self.ensure_connected(&k);
                    }
                }
            }
            PeerEvent::InvalidFileFrame { conn, frame, why } => {
                let Some((k, _)) = self.links.get(&conn) else {
                    return;
                };
                let k = k.clone();
                // As for valid file frames: only on the link both sides keep.
                if self.registry.active(&k) == Some(conn) {
                    self.on_invalid_file_frame(&k, frame, &why).await;
                }
            }
            PeerEvent::DialFailed {
                friend,
                step,
                reason,
            } => {
                tracing::info!(%friend, %reason, "dial failed");
                let actions = self
                    .traversal
                    .on_dial_failed(&key(&friend), step, Instant::now());
                self.run_actions(actions);
            }
            PeerEvent::ConnectPeerAnswer {
                friend,
                step,
                result,
            } => {
                let now = Instant::now();
                let actions = match result {
                    Ok(ok) => self.traversal.on_connect_peer_ok(&friend, step, &ok, now),
                    Err(why) => {
                        tracing::info!(%friend, ?why, "ConnectPeer did not help");
                        self.traversal
                            .on_connect_peer_failed(&friend, step, why, now)
                    }
                };
                self.run_actions(actions);
            }
            PeerEvent::RelayFailed {
                friend,
                step,
                reason,
            } => {
                tracing::info!(%friend, %reason, "relay failed");
                if let Some(step) = step {
                    let actions =
                        self.traversal
                            .on_relay_failed(&key(&friend), step, Instant::now());
                    self.run_actions(actions);
                }
            }
            PeerEvent::Refused {
                fingerprint,
                addr,
                reason,
            } => {
                self.emit(Event::PeerRefused {
                    fingerprint,
                    address: addr.to_string(),
                    reason,
                });
            }
        }
    }

    async fn on_up(
        &mut self,
        conn: ConnId,
        friend: &str,
        initiated_by_me: bool,
        addr: std::net::SocketAddr,
        path: LinkPath,
        link: PeerLink,
    ) {
        let k = key(friend);
        // A session whose hello passed just before a logout.
        if self.logged_out() {
            link.close(CloseReason::Normal, "logged out");
            return;
        }
        // The session checked the key before the book changed: admission is decided here
        // again, so no link is made while the friend's key change is pending (§12.4).
        if self.key_change_pending(&k) {
            link.close(
                CloseReason::NotAFriend,
                "your identity key changed; waiting for the user to accept it",
            );
            return;
        }
        let old_path = self.registry.path(&k);
        // Read before on_link_open ends the attempt.
        let attempt = match path {
            LinkPath::Punched => self.traversal.punch_attempt(&k),
            _ => None,
        };
        match self.registry.admit(&k, conn, initiated_by_me, path) {
            Admission::Duplicate => {
                link.close(
                    CloseReason::DuplicateConnection,
                    "another connection between us won",
                );
                return;
            }
            Admission::Admitted { replaced } => {
                if let Some(old) = replaced {
                    if let Some((_, old_link)) = self.links.remove(&old) {
                        old_link.close(
                            CloseReason::DuplicateConnection,
                            "another connection between us won",
                        );
                    }
                    self.on_link_lost(&k);
                }
                self.links.insert(conn, (k.clone(), link.clone()));
                self.redial.reset(&k);
                self.traversal
                    .on_link_open(&k, path, initiated_by_me, Instant::now());
                if initiated_by_me && path != LinkPath::Relayed {
                    self.with_book(|b| b.set_last_addr(&k, addr));
                }
                if replaced.is_none() || old_path != Some(path) {
                    tracing::info!(%friend, %path, ?attempt, %addr, "peer link open");
                    self.emit(Event::PeerConnected {
                        friend: friend.to_owned(),
                        path,
                        attempt,
                    });
                }
            }
        }
        for frame in self.outbox.on_connected(&k) {
            link.send(PeerFrame::Chat(frame));
        }
        for id in self.cancels_to_send.remove(&k).unwrap_or_default() {
            link.send(Self::cancel_frame(
                id,
                FileCancelReason::Cancelled,
                "cancelled while we were apart",
            ));
        }
        self.offer_pending(&k).await;
    }

    /// The active connection to `k` is gone: transfers on it are SUSPENDED until the next
    /// one (SPEC.md §8.5.4 R53, §8.5.5 S38).
    fn on_link_lost(&mut self, k: &str) {
        self.outbox.on_disconnected(k);
        let mut suspended = Vec::new();
        for (id, o) in self.outgoing.iter_mut().filter(|(_, o)| o.friend == k) {
            if let Some(p) = o.pump.take() {
                p.stop();
            }
            if !o.sender.is_finished()
                && *o.sender.state() != crate::transfer::sender::SenderState::Pending
            {
                suspended.push((*id, Direction::Outgoing, 0));
            }
            o.sender.on_disconnect();
        }
        for ((f, id), t) in self.incoming.iter_mut().filter(|((f, _), _)| f == k) {
            let _ = f;
            if t.receiver.suspend() {
                t.conn = None;
                suspended.push((*id, Direction::Incoming, t.receiver.held()));
            }
        }
        let friend = self.display(k);
        for (transfer_id, direction, bytes) in suspended {
            self.emit(Event::TransferSuspended {
                friend: friend.clone(),
                transfer_id,
                direction,
                bytes,
            });
        }
    }

    async fn offer_pending(&mut self, k: &str) {
        let Some(link) = self.active_link(k).cloned() else {
            return;
        };
        let mut ids: Vec<TransferId> = self
            .outgoing
            .iter()
            .filter(|(_, o)| o.friend == k)
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        // Keep within the friend's MAX_OFFERS_IN_FLIGHT (SPEC.md §7.9 rule 2): the rest is
        // offered as earlier transfers finish.
        let mut in_flight = self
            .outgoing
            .values()
            .filter(|o| o.friend == k && !o.sender.is_finished())
            .filter(|o| *o.sender.state() != crate::transfer::sender::SenderState::Pending)
            .count();
        let mut vanished = Vec::new();
        let mut unsupported = Vec::new();
        for id in ids {
            if in_flight >= MAX_OFFERS_IN_FLIGHT {
                break;
            }
            let Some(o) = self.outgoing.get_mut(&id) else {
                continue;
            };
            if *o.sender.state() != crate::transfer::sender::SenderState::Pending {
                continue;
            }
            // A source that changed size cannot be resumed (§8.3 rule 16).
            if std::fs::metadata(&o.path).map(|m| m.len()).ok() != Some(o.sender.size()) {
                vanished.push((id, o.path.display().to_string()));
                continue;
            }
            match o.sender.offer(link.features.file_blake3) {
                OfferStep::Send(offer) => {
                    link.send(PeerFrame::FileOffer(offer));
                    in_flight += 1;
                }
                // A version-1 friend: the SHA-256 is computed now, once (SPEC.md §8.3.1).
                OfferStep::NeedSha256 if !o.hashing => {
                    o.hashing = true;
                    spawn_sha256(id, o.path.clone(), self.disk_tx.clone());
                }
                OfferStep::Unsupported => unsupported.push(id),
                OfferStep::NeedSha256 | OfferStep::Nothing => {}
            }
        }
        for (id, path) in vanished {
            let msg = format!("{path} is gone or changed size");
            self.stop_outgoing(k, id, FileCancelReason::IoError, &msg, true)
                .await;
        }
        for id in unsupported {
            let msg =
                "the friend's client no longer takes streamed-hash transfers; send the file again";
            self.stop_outgoing(k, id, FileCancelReason::Cancelled, msg, true)
                .await;
        }
    }

    // ----- frames ---------------------------------------------------------------------

    async fn on_frame(&mut self, k: &str, conn: ConnId, active: bool, frame: PeerFrame) {
        match frame {
            PeerFrame::Chat(chat) => self.on_chat(k, chat).await,
            PeerFrame::Ack { id } => {
                let id = MessageId(id);
                if self.outbox.on_ack(k, id) {
                    if let Err(e) = self.history.mark_acked(k, id).await {
                        self.error(e.to_string());
                    }
                    let friend = self.display(k);
                    self.emit(Event::MessageAcked {
                        friend,
                        message_id: id,
                    });
                    // The window has room again (SPEC.md §7.9 rule 2).
                    for frame in self.outbox.next_to_send(k) {
                        self.send_to(k, PeerFrame::Chat(frame));
                    }
                }
            }
            PeerFrame::Typing(active_now) => {
                if self.typing.on_remote(k, active_now, Instant::now()) {
                    let friend = self.display(k);
                    self.emit(Event::Typing {
                        friend,
                        active: active_now,
                    });
                }
            }
            // File frames count only on the connection both sides agreed to keep.
            _ if !active => {}
            PeerFrame::FileOffer(offer) => self.on_offer(k, conn, offer).await,
            PeerFrame::FileAccept { id, offset } => self.on_accept(k, TransferId(id), offset).await,
            PeerFrame::FileChunk { id, offset, data } => {
                self.on_chunk(k, conn, TransferId(id), offset, data).await
            }
            PeerFrame::FileComplete { id } => self.on_complete(k, TransferId(id)).await,
            PeerFrame::FileDigest { id, blake3 } => self.on_digest(k, TransferId(id), blake3).await,
            PeerFrame::FileCancel {
                id,
                reason,
                message,
            } => self.on_cancel(k, TransferId(id), reason, message).await,
            PeerFrame::Hello { .. }
            | PeerFrame::Ping(_)
            | PeerFrame::Pong(_)
            | PeerFrame::Close { .. }
            | PeerFrame::Unknown => {}
        }
    }

    async fn on_chat(&mut self, k: &str, chat: ChatFrame) {
        let id = MessageId(chat.id);
        if !self.inbox.contains(k, id) {
            match self.history.add_incoming(k, &chat).await {
                Ok(new) => {
                    self.inbox.remember(k, id);
                    if new {
                        if self.typing.on_remote(k, false, Instant::now()) {
                            let friend = self.display(k);
                            self.emit(Event::Typing {
                                friend,
                                active: false,
                            });
                        }
                        let friend = self.display(k);
                        self.emit(Event::MessageReceived {
                            friend,
                            message_id: id,
                            text: chat.text,
                            sent_at_unix_ms: chat.sent_at_unix_ms,
                        });
                    }
                }
                Err(e) => {
                    // Not stored, so not acknowledged: the friend sends it again.
                    self.error(e.to_string());
                    return;
                }
            }
        }
        if crate::faults::on("no-ack") {
            return;
        }
        if let Some(link) = self
            .active_link(k)
            .or_else(|| self.links.values().find(|(f, _)| f == k).map(|(_, l)| l))
        {
            link.send(PeerFrame::Ack { id: id.0 });
        }
    }

    fn send_to(&self, k: &str, frame: PeerFrame) {
        if let Some(link) = self.active_link(k) {
            link.send(frame);
        }
    }

    /// A file frame whose values are invalid (SPEC.md §8.5.3; audit D1): never a link
    /// close. An offer or chunk naming an unfinished incoming transfer ends it with
    /// `FileCancel(INVALID)` (R3, R25); otherwise an offer or chunk is answered
    /// `FileCancel(INVALID)` (R2, R21) and an accept `FileCancel(UNKNOWN_TRANSFER)` (S2),
    /// echoing the id as received; a bad `FileComplete`, `FileCancel` or `MessageAck` is
    /// ignored.
    async fn on_invalid_file_frame(&mut self, k: &str, frame: InvalidFileFrame, why: &str) {
        let (raw, reason) = match frame {
            InvalidFileFrame::Ignored => return,
            InvalidFileFrame::Accept { id } => (id, FileCancelReason::UnknownTransfer),
            InvalidFileFrame::Offer { id } | InvalidFileFrame::Chunk { id } => {
                (id, FileCancelReason::Invalid)
            }
        };
        if reason == FileCancelReason::Invalid {
            if let Ok(id) = <[u8; 16]>::try_from(raw.as_ref()).map(TransferId) {
                if self
                    .incoming
                    .get(&(k.to_owned(), id))
                    .is_some_and(|t| !t.receiver.is_finished())
                {
                    self.stop_incoming(k, id, reason, why, true).await;
                    return;
                }
            }
        }
        if let Some(link) = self.active_link(k) {
            link.send_wire(peerchat_proto::wire::PeerMessage {
                body: Some(peerchat_proto::wire::peer_message::Body::FileCancel(
                    peerchat_proto::wire::FileCancel {
                        transfer_id: raw,
                        reason: reason as i32,
                        message: crate::text::truncate_human(why),
                    },
                )),
            });
        }
    }

    fn cancel_frame(id: TransferId, reason: FileCancelReason, message: &str) -> PeerFrame {
        PeerFrame::FileCancel {
            id: id.0,
            reason,
            message: message.to_owned(),
        }
    }

    async fn on_offer(&mut self, k: &str, conn: ConnId, offer: FileOfferFrame) {
        let id = TransferId(offer.id);
        let tkey = (k.to_owned(), id);
        let streamed_ok = self
            .links
            .get(&conn)
            .is_some_and(|(_, l)| l.features.file_blake3);
        if offer.sha256.is_none() && !streamed_ok {
            // A streamed-hash offer needs file-blake3 in both hellos (SPEC.md §8.3.1 rule 1).
            let msg = "an offer without SHA-256 needs the file-blake3 feature";
            if self.incoming.contains_key(&tkey) {
                self.stop_incoming(k, id, FileCancelReason::Invalid, msg, true)
                    .await;
            } else {
                self.dead.insert(tkey);
                self.send_to(k, Self::cancel_frame(id, FileCancelReason::Invalid, msg));
            }
            return;
        }
        if let Some(t) = self.incoming.get(&tkey) {
            if t.receiver.on_reoffer(&offer).is_err() {
                // R6: the sender ends its side on our cancel, so ours ends too (audit D2).
                if t.receiver.is_finished() {
                    self.send_to(
                        k,
                        Self::cancel_frame(
                            id,
                            FileCancelReason::Invalid,
                            "re-offer differs from the first offer",
                        ),
                    );
                } else {
                    self.stop_incoming(
                        k,
                        id,
                        FileCancelReason::Invalid,
                        "re-offer differs from the first offer",
                        true,
                    )
                    .await;
                }
                return;
            }
            if t.conn == Some(conn) && matches!(t.receiver.state(), ReceiverState::Receiving { .. })
            {
                // Offered twice on the same connection: the sender broke the rules (§8.3 rule 4).
                self.stop_incoming(
                    k,
                    id,
                    FileCancelReason::Invalid,
                    "offered twice on one connection",
                    true,
                )
                .await;
                return;
            }
            let reply = match t.receiver.state() {
                ReceiverState::Receiving { .. }
                | ReceiverState::Suspended { .. }
                | ReceiverState::Verifying => {
                    let offset = t.receiver.held();
                    let (name, size) = (t.name.clone(), offer.size);
                    let friend = self.display(k);
                    self.emit(Event::TransferStarted {
                        friend,
                        transfer_id: id,
                        direction: Direction::Incoming,
                        name,
                        size,
                        offset,
                    });
                    if let Some(t) = self.incoming.get_mut(&tkey) {
                        // R9 (and R11: a link lost but not yet noticed counts as lost).
                        t.receiver.suspend();
                        t.receiver.resume();
                        t.conn = Some(conn);
                        t.accepted_at = Some(Instant::now());
                    }
                    Some(PeerFrame::FileAccept { id: id.0, offset })
                }
                ReceiverState::AwaitingDecision => None,
                ReceiverState::Complete => Some(PeerFrame::FileComplete { id: id.0 }),
                ReceiverState::Cancelled(r) => {
                    Some(Self::cancel_frame(id, *r, "transfer was stopped"))
                }
            };
            if let Some(f) = reply {
                self.send_to(k, f);
            }
            return;
        }
        let record = match self.history.transfer(k, Direction::Incoming, id).await {
            Ok(r) => r,
            Err(e) => {
                self.error(e.to_string());
                self.send_to(
                    k,
                    Self::cancel_frame(id, FileCancelReason::IoError, "receiver database error"),
                );
                return;
            }
        };
        match record {
            Some(r) if r.state == state::COMPLETE => {
                self.send_to(k, PeerFrame::FileComplete { id: id.0 })
            }
            Some(r) if r.state == state::DECLINED => self.send_to(
                k,
                Self::cancel_frame(id, FileCancelReason::Declined, "declined"),
            ),
            Some(r) if r.state == state::CANCELLED || r.state == state::FAILED => {
                self.send_to(
                    k,
                    Self::cancel_frame(id, FileCancelReason::Cancelled, "transfer was stopped"),
                );
            }
            Some(r) if r.state == state::ACTIVE => {
                if r.size != offer.size || r.sha256 != offer.sha256 {
                    self.send_to(
                        k,
                        Self::cancel_frame(
                            id,
                            FileCancelReason::Invalid,
                            "re-offer differs from the first offer",
                        ),
                    );
                    return;
                }
                // Resume after a restart: the .part file holds what arrived before, or the
                // file was finished just before the restart (SPEC.md §8.3 rule 8).
                let held = held_on_disk(&r.path, r.size);
                self.incoming.insert(
                    tkey,
                    Incoming::new(FileReceiver::new(offer), r.name.clone()),
                );
                self.start_receiving(k, id, Some((r.path, held))).await;
            }
            _ => {
                // Budgets first, before anything about the offer is stored (SPEC.md §8.3
                // rule 3): a friend cannot make us keep more than MAX_OFFERS_IN_FLIGHT
                // transfers, nor reserve more than the disk holds.
                if let Some((reason, why)) = self.refuse_offer(k, offer.size) {
                    self.send_to(k, Self::cancel_frame(id, reason, &why));
                    return;
                }
                let name = sanitize_file_name(&offer.name);
                if record.is_none() {
                    let rec = TransferRecord {
                        id,
                        friend: k.to_owned(),
                        direction: Direction::Incoming,
                        name: name.clone(),
                        size: offer.size,
                        sha256: offer.sha256,
                        path: PathBuf::new(),
                        state: state::OFFERED.into(),
                    };
                    if let Err(e) = self.history.add_transfer(&rec).await {
                        self.error(e.to_string());
                    }
                }
                let size = offer.size;
                self.incoming
                    .insert(tkey, Incoming::new(FileReceiver::new(offer), name.clone()));
                if self.auto_accept.allows(size) {
                    self.start_receiving(k, id, None).await;
                } else {
                    let friend = self.display(k);
                    self.emit(Event::FileOffered {
                        friend,
                        transfer_id: id,
                        name,
                        size,
                    });
                }
            }
        }
    }

    /// Why a new offer of `size` bytes from `k` is refused, if it is (SPEC.md §8.3 rule 3).
    fn refuse_offer(&self, k: &str, size: u64) -> Option<(FileCancelReason, String)> {
        let in_flight = self.incoming.keys().filter(|(f, _)| f == k).count();
        let free = free_space(self.profile.downloads());
        let reason = refuse_offer(in_flight, size, free)?;
        let why = match reason {
            FileCancelReason::TooManyOffers => {
                format!("{in_flight} of your files are still unfinished here; offer it again later")
            }
            _ => format!(
                "{size} bytes do not fit: {} bytes free",
                free.unwrap_or_default()
            ),
        };
        Some((reason, why))
    }

    /// Accepts an incoming transfer: a fresh, empty `.part` file, or `resume` = (part, bytes
    /// held). The writer thread starts with the first chunk (or at once if every byte is
    /// already there).
    async fn start_receiving(&mut self, k: &str, id: TransferId, resume: Option<(PathBuf, u64)>) {
        let tkey = (k.to_owned(), id);
        let friend = self.display(k);
        let dir = self.profile.downloads().join(sanitize_folder_name(&friend));
        let Some(name) = self.incoming.get(&tkey).map(|t| t.name.clone()) else {
            return;
        };
        let (part, held) = match resume {
            Some((part, held)) => (part, held),
            None => match new_part(&dir, &name) {
                Ok(part) => (part, 0),
                Err(msg) => {
                    self.stop_incoming(k, id, FileCancelReason::IoError, &msg, true)
                        .await;
                    return;
                }
            },
        };
        let Some(t) = self.incoming.get_mut(&tkey) else {
            return;
        };
        t.part = Some(part.clone());
        let Ok((offset, outcome)) = t.receiver.accept(held) else {
            return;
        };
        let offer = t.receiver.offer().clone();
        t.conn = self.registry.active(k);
        t.accepted_at = Some(Instant::now());
        if outcome == ChunkOutcome::Last {
            // Nothing to wait for: verify (or recognise the finished file) now.
            t.writer = Some(spawn_writer(
                write_job(k, id, &part, &t.name, offset, &offer),
                self.disk_tx.clone(),
            ));
        }
        if let Err(e) = self
            .history
            .set_transfer_state(k, Direction::Incoming, id, state::ACTIVE, Some(&part))
            .await
        {
            self.error(e.to_string());
        }
        if self.active_link(k).is_none() {
            // R41: accepted while apart.
            if let Some(t) = self.incoming.get_mut(&tkey) {
                if t.receiver.suspend() {
                    self.emit(Event::TransferSuspended {
                        friend,
                        transfer_id: id,
                        direction: Direction::Incoming,
                        bytes: offset,
                    });
                    return;
                }
            }
        }
        self.send_to(k, PeerFrame::FileAccept { id: id.0, offset });
        self.emit(Event::TransferStarted {
            friend,
            transfer_id: id,
            direction: Direction::Incoming,
            name,
            size: offer.size,
            offset,
        });
    }

    /// Cancels accepted transfers that receive no data (SPEC.md §8.3 rule 3a): Open
    /// connection, no chunk from the friend since the accept for OFFER_DATA_TIMEOUT.
    async fn expire_silent_transfers(&mut self) {
        let now = Instant::now();
        let silent: Vec<(String, TransferId)> = self
            .incoming
            .iter()
            .filter(|((k, _), t)| {
                (matches!(t.receiver.state(), ReceiverState::Receiving { .. })
                    || t.receiver.awaits_digest())
                    && t.conn.is_some()
                    && t.conn == self.registry.active(k)
                    && t.accepted_at.is_some_and(|at| {
                        is_silent(
                            now,
                            at,
                            self.last_chunk.get(k).copied(),
                            self.offer_data_timeout,
                        )
                    })
            })
            .map(|(key, _)| key.clone())
            .collect();
        for (k, id) in silent {
            let msg = format!(
                "no data within {} s of the accept",
                self.offer_data_timeout.as_secs()
            );
            self.stop_incoming(&k, id, FileCancelReason::NoData, &msg, true)
                .await;
        }
    }

    async fn on_chunk(
        &mut self,
        k: &str,
        conn: ConnId,
        id: TransferId,
        offset: u64,
        data: bytes::Bytes,
    ) {
        let tkey = (k.to_owned(), id);
        // R23: chunks come on the link of the transfer's last FileAccept; one on another
        // link (a SUSPENDED transfer not yet re-offered) ends it (audit D8).
        if self
            .incoming
            .get(&tkey)
            .is_some_and(|t| t.conn.is_some_and(|c| c != conn) && !t.receiver.is_finished())
        {
            self.stop_incoming(
                k,
                id,
                FileCancelReason::Invalid,
                "chunk on another link",
                true,
            )
            .await;
            return;
        }
        self.last_chunk.insert(k.to_owned(), Instant::now());
        let Some(t) = self.incoming.get_mut(&tkey) else {
            // Answered once; later chunks already in flight are dropped silently (§8.3 rule 12).
            if self.dead.len() >= DEAD_TRANSFERS_MAX {
                self.dead.clear();
            }
            if self.dead.insert(tkey) {
                self.send_to(
                    k,
                    Self::cancel_frame(id, FileCancelReason::Invalid, "no such transfer"),
                );
            }
            return;
        };
        let held = t.receiver.held();
        match t.receiver.on_chunk(offset, data.len()) {
            Ok(outcome) => {
                if t.writer.is_none() {
                    if let Some(part) = t.part.clone() {
                        let job =
                            write_job(k, id, &part, &t.name, held, &t.receiver.offer().clone());
                        t.writer = Some(spawn_writer(job, self.disk_tx.clone()));
                    }
                }
                let tx = t.writer.as_ref().map(|w| w.tx.clone());
                let sent = match tx {
                    Some(tx) => tx.send(data).await.is_ok(),
                    None => false,
                };
                if !sent {
                    self.stop_incoming(
                        k,
                        id,
                        FileCancelReason::IoError,
                        "the file writer stopped",
                        true,
                    )
                    .await;
                } else if outcome == ChunkOutcome::Last {
                    tracing::debug!(%id, "last chunk received; verifying");
                }
            }
            Err(v) => {
                // A chunk that does not fit ends this transfer only (SPEC.md §8.3).
                self.stop_incoming(k, id, FileCancelReason::Invalid, &v.0, true)
                    .await;
            }
        }
    }

    async fn on_accept(&mut self, k: &str, id: TransferId, offset: u64) {
        let Some(o) = self.outgoing.get_mut(&id).filter(|o| o.friend == k) else {
            self.send_to(
                k,
                Self::cancel_frame(id, FileCancelReason::UnknownTransfer, "no such transfer"),
            );
            return;
        };
        match o.sender.on_accept(offset) {
            Ok(step) => {
                let (name, size) = (o.sender.name().to_owned(), o.sender.size());
                if let AcceptStep::Stream { from } = step {
                    let generation = self.next_generation;
                    self.next_generation += 1;
                    o.generation = generation;
                    if let Some(link) = self
                        .registry
                        .active(k)
                        .and_then(|c| self.links.get(&c))
                        .map(|(_, l)| l.clone())
                    {
                        let job = PumpJob {
                            id,
                            generation,
                            path: o.path.clone(),
                            from,
                            size,
                            digest: o.sender.streams_digest(),
                        };
                        o.pump = Some(spawn_pump(job, link.bulk.clone(), self.disk_tx.clone()));
                    }
                }
                let friend = self.display(k);
                self.emit(Event::TransferStarted {
                    friend,
                    transfer_id: id,
                    direction: Direction::Outgoing,
                    name,
                    size,
                    offset,
                });
            }
            Err(v) => {
                self.stop_outgoing(k, id, FileCancelReason::Invalid, &v.0, true)
                    .await
            }
        }
    }

    /// The sender's BLAKE3 of a streamed-hash transfer (SPEC.md §8.3.1): handed to the
    /// writer, which compares it once every byte is on disk.
    async fn on_digest(&mut self, k: &str, id: TransferId, blake3: [u8; 32]) {
        let tkey = (k.to_owned(), id);
        let Some(t) = self.incoming.get_mut(&tkey) else {
            // Like a chunk for an unknown transfer: answered once (§8.3 rule 12).
            if self.dead.len() >= DEAD_TRANSFERS_MAX {
                self.dead.clear();
            }
            if self.dead.insert(tkey) {
                self.send_to(
                    k,
                    Self::cancel_frame(id, FileCancelReason::Invalid, "no such transfer"),
                );
            }
            return;
        };
        match t.receiver.on_digest() {
            Ok(true) => match t.writer.as_mut() {
                Some(w) => w.give_digest(blake3),
                None => {
                    self.stop_incoming(
                        k,
                        id,
                        FileCancelReason::IoError,
                        "the file writer stopped",
                        true,
                    )
                    .await
                }
            },
            Ok(false) => {}
            Err(v) => {
                self.stop_incoming(k, id, FileCancelReason::Invalid, &v.0, true)
                    .await
            }
        }
    }

    async fn on_complete(&mut self, k: &str, id: TransferId) {
        let Some(o) = self.outgoing.get_mut(&id).filter(|o| o.friend == k) else {
            return;
        };
        if o.sender.on_complete().is_err() {
            return;
        }
        if let Some(p) = o.pump.take() {
            p.stop();
        }
        let (path, size) = (o.path.clone(), o.sender.size());
        self.outgoing.remove(&id);
        if let Err(e) = self
            .history
            .set_transfer_state(k, Direction::Outgoing, id, state::COMPLETE, None)
            .await
        {
            self.error(e.to_string());
        }
        let friend = self.display(k);
        self.emit(Event::TransferComplete {
            friend,
            transfer_id: id,
            direction: Direction::Outgoing,
            path: path.display().to_string(),
            size,
        });
        self.offer_pending(k).await;
    }

    async fn on_cancel(
        &mut self,
        k: &str,
        id: TransferId,
        reason: FileCancelReason,
        message: String,
    ) {
        if self.outgoing.get(&id).is_some_and(|o| o.friend == k) {
            self.stop_outgoing(k, id, reason, &message, false).await;
            self.offer_pending(k).await;
        } else if self.incoming.contains_key(&(k.to_owned(), id)) {
            self.stop_incoming(k, id, reason, &message, false).await;
        }
    }

    async fn stop_outgoing(
        &mut self,
        k: &str,
        id: TransferId,
        reason: FileCancelReason,
        message: &str,
        tell_peer: bool,
    ) {
        let Some(mut o) = self.outgoing.remove(&id) else {
            return;
        };
        if let Some(p) = o.pump.take() {
            p.stop();
        }
        o.sender.on_cancel(reason);
        if tell_peer {
            if self.active_link(k).is_some() {
                self.send_to(k, Self::cancel_frame(id, reason, message));
            } else if reason == FileCancelReason::Cancelled {
                // S35: sent on the next link, instead of the re-offer (S32).
                self.cancels_to_send
                    .entry(k.to_owned())
                    .or_default()
                    .push(id);
            }
        }
        let st = match reason {
            FileCancelReason::Declined => state::DECLINED,
            FileCancelReason::HashMismatch
            | FileCancelReason::IoError
            | FileCancelReason::Invalid => state::FAILED,
            _ => state::CANCELLED,
        };
        if let Err(e) = self
            .history
            .set_transfer_state(k, Direction::Outgoing, id, st, None)
            .await
        {
            self.error(e.to_string());
        }
        let friend = self.display(k);
        self.emit(Event::TransferCancelled {
            friend,
            transfer_id: id,
            direction: Direction::Outgoing,
            reason,
            message: message.to_owned(),
        });
    }

    async fn stop_incoming(
        &mut self,
        k: &str,
        id: TransferId,
        reason: FileCancelReason,
        message: &str,
        tell_peer: bool,
    ) {
        self.dead.insert((k.to_owned(), id));
        let Some(mut t) = self.incoming.remove(&(k.to_owned(), id)) else {
            return;
        };
        t.receiver.on_cancel(reason);
        if let Some(w) = t.writer.take() {
            w.discard();
        } else if let Some(part) = t.part.take() {
            // Accepted but no chunk yet: the empty .part is all there is (SPEC.md §8.3 rule 10).
            let _ = std::fs::remove_file(part);
        }
        if tell_peer {
            self.send_to(k, Self::cancel_frame(id, reason, message));
        }
        let st = match reason {
            FileCancelReason::Declined => state::DECLINED,
            FileCancelReason::Cancelled | FileCancelReason::Unspecified => state::CANCELLED,
            _ => state::FAILED,
        };
        if let Err(e) = self
            .history
            .set_transfer_state(k, Direction::Incoming, id, st, None)
            .await
        {
            self.error(e.to_string());
        }
        let friend = self.display(k);
        self.emit(Event::TransferCancelled {
            friend,
            transfer_id: id,
            direction: Direction::Incoming,
            reason,
            message: message.to_owned(),
        });
    }

    // ----- disk -----------------------------------------------------------------------

    async fn on_disk(&mut self, ev: DiskEvent) {
        match ev {
            DiskEvent::PumpProgress {
                id,
                generation,
                sent,
                rate,
            } => {
                let Some(o) = self
                    .outgoing
                    .get_mut(&id)
                    .filter(|o| o.generation == generation)
                else {
                    return;
                };
                o.sender.on_streamed(sent.saturating_sub(o.sender.sent()));
                let (k, size) = (o.friend.clone(), o.sender.size());
                let friend = self.display(&k);
                self.emit(Event::TransferProgress {
                    friend,
                    transfer_id: id,
                    direction: Direction::Outgoing,
                    bytes: sent,
                    size,
                    rate_bytes_per_sec: rate,
                });
            }
            DiskEvent::PumpDone { id, generation } => {
                if let Some(o) = self
                    .outgoing
                    .get_mut(&id)
                    .filter(|o| o.generation == generation)
                {
                    o.sender.on_stream_done();
                    o.pump = None;
                }
            }
            DiskEvent::Hashed { id, result } => {
                let Some(o) = self.outgoing.get_mut(&id) else {
                    return;
                };
                o.hashing = false;
                let k = o.friend.clone();
                match result {
                    Ok((sha256, len)) if len == o.sender.size() => {
                        o.sender.set_sha256(sha256);
                        if let Err(e) = self.history.set_transfer_sha256(id, sha256).await {
                            self.error(e.to_string());
                        }
                        self.offer_pending(&k).await;
                    }
                    Ok(_) => {
                        let msg = format!("{} changed size", o.path.display());
                        self.stop_outgoing(&k, id, FileCancelReason::IoError, &msg, true)
                            .await;
                    }
                    Err(e) => {
                        self.stop_outgoing(&k, id, FileCancelReason::IoError, &e, true)
                            .await
                    }
                }
            }
            DiskEvent::PumpFailed {
                id,
                generation,
                error,
            } => {
                let Some(k) = self
                    .outgoing
                    .get(&id)
                    .filter(|o| o.generation == generation)
                    .map(|o| o.friend.clone())
                else {
                    return;
                };
                self.stop_outgoing(&k, id, FileCancelReason::IoError, &error, true)
                    .await;
            }
            DiskEvent::WriteProgress {
                friend: k,
                id,
                bytes,
                rate,
            } => {
                let Some(t) = self.incoming.get(&(k.clone(), id)) else {
                    return;
                };
                let size = t.receiver.offer().size;
                let friend = self.display(&k);
                self.emit(Event::TransferProgress {
                    friend,
                    transfer_id: id,
                    direction: Direction::Incoming,
                    bytes,
                    size,
                    rate_bytes_per_sec: rate,
                });
            }
            DiskEvent::Written {
                friend: k,
                id,
                result,
            } => {
                let Some(mut t) = self.incoming.remove(&(k.clone(), id)) else {
                    return;
                };
                match result {
                    Ok(path) => {
                        t.receiver.on_verified(true);
                        if let Err(e) = self
                            .history
                            .set_transfer_state(
                                &k,
                                Direction::Incoming,
                                id,
                                state::COMPLETE,
                                Some(&path),
                            )
                            .await
                        {
                            self.error(e.to_string());
                        }
                        self.send_to(&k, PeerFrame::FileComplete { id: id.0 });
                        let friend = self.display(&k);
                        let size = t.receiver.offer().size;
                        self.emit(Event::TransferComplete {
                            friend,
                            transfer_id: id,
                            direction: Direction::Incoming,
                            path: path.display().to_string(),
                            size,
                        });
                    }
                    Err(WriteFailure::HashMismatch) => {
                        t.receiver.on_verified(false);
                        self.incoming.insert((k.clone(), id), t);
                        self.stop_incoming(
                            &k,
                            id,
                            FileCancelReason::HashMismatch,
                            "the received bytes do not match the offered SHA-256",
                            true,
                        )
                        .await;
                    }
                    Err(WriteFailure::Io(msg)) => {
                        self.incoming.insert((k.clone(), id), t);
                        self.stop_incoming(&k, id, FileCancelReason::IoError, &msg, true)
                            .await;
                    }
                }
            }
        }
    }

    // ----- server ---------------------------------------------------------------------

    async fn on_server(&mut self, ev: ServerEvent) {
        match ev {
            ServerEvent::Online => self.emit(Event::ServerStatus {
                online: true,
                reason: None,
            }),
            ServerEvent::Offline { reason } => {
                self.set_reach(Reach::default());
                self.with_book(FriendBook::all_offline);
                self.emit(Event::ServerStatus {
                    online: false,
                    reason: Some(reason),
                });
            }
            ServerEvent::LoggedIn(snap) => {
                if let Ok(mut me) = self.me.write() {
                    *me = Some(snap.userid.clone());
                }
                self.registry.set_me(&snap.userid);
                if let Err(e) = self.profile.set_account(&snap.userid) {
                    self.error(e.to_string());
                }
                if let Ok(b) = self.book.read() {
                    self.notices.before_snapshot(&b);
                }
                self.with_book(|b| b.apply_snapshot(&snap.friends, &snap.incoming, &snap.outgoing));
                let (friends, incoming, outgoing) = self
                    .book
                    .read()
                    .map(|b| (b.views(), b.incoming(), b.outgoing()))
                    .unwrap_or_default();
                // Connections to users who are no longer friends end here.
                let gone: Vec<ConnId> = self
                    .links
                    .iter()
                    .filter(|(_, (k, _))| !self.is_friend(k))
                    .map(|(c, _)| *c)
                    .collect();
                for c in gone {
                    if let Some((_, l)) = self.links.get(&c) {
                        l.close(CloseReason::NotAFriend, "no longer friends");
                    }
                }
                self.emit(Event::LoggedIn {
                    userid: snap.userid,
                    friends,
                    incoming_requests: incoming,
                    outgoing_requests: outgoing,
                });
                // After LoggedIn, so a UI has the friend list when it shows the change.
                self.sync_key_changes();
                // A new friend list: every redial wait and NOT_A_FRIEND refusal starts over
                // (§8.5.1 L33).
                for f in &snap.friends {
                    self.redial.reset(&key(&f.userid));
                }
                let pending: Vec<String> = snap
                    .friends
                    .iter()
                    .map(|f| key(&f.userid))
                    .filter(|k| self.has_pending(k))
                    .collect();
                for k in pending {
                    self.ensure_connected(&k);
                }
            }
            ServerEvent::Announced {
                announcement,
                observed,
            } => {
                let reachable = is_reachable(observed, &announcement.host_candidates);
                tracing::info!(?observed, hosts = ?announcement.host_candidates, from_listener = announcement.observed_is_listener, reachable, "announced");
                self.set_reach(Reach {
                    server_online: true,
                    reachable,
                });
            }
            ServerEvent::LoggedOut => {
                self.go_offline();
                self.emit(Event::LoggedOut)
            }
            ServerEvent::FriendAdded(f) => {
                self.notices.friend_added(&f.userid);
                self.with_book(|b| b.upsert(&f));
                self.sync_key_changes();
                let view = self
                    .book
                    .read()
                    .ok()
                    .and_then(|b| b.get(&f.userid).map(|c| c.view()));
                if let Some(friend) = view {
                    self.emit(Event::FriendAdded { friend });
                }
            }
            ServerEvent::FriendRemoved(userid) => self.friend_gone(&userid),
            ServerEvent::RequestSent(userid) => {
                self.notices.request_sent(&userid);
                let now = history::now_ms();
                self.with_book(|b| {
                    b.add_outgoing(PendingRequest {
                        userid: userid.clone(),
                        created_at_unix_ms: now,
                        expires_at_unix_ms: 0,
                    })
                });
                self.emit(Event::FriendRequestSent { userid });
            }
            ServerEvent::RequestAnswered { userid, answer } => {
                self.with_book(|b| b.drop_request(&userid));
                self.emit(Event::FriendRequestAnswered { userid, answer });
            }
            ServerEvent::Error(message) => self.error(message),
            ServerEvent::LoginRefused(code) => self.emit(Event::LoginRefused { code }),
            ServerEvent::SessionReplaced => self.emit(Event::SessionReplaced),
            ServerEvent::PinFailed(p) => {
                // A typed event for a security UI; the whole explanation as an error too.
                if let crate::pinning::PinError::Changed {
                    server,
                    pinned,
                    presented,
                    ..
                } = &p
                {
                    self.emit(Event::ServerKeyChanged {
                        server: server.clone(),
                        pinned: pinned.clone(),
                        presented: presented.clone(),
                    });
                }
                self.error(p.to_string());
            }
            ServerEvent::LoginRetry {
                reason,
                code,
                retry_in,
                attempt,
            } => self.emit(Event::LoginRetry {
                reason,
                code,
                retry_in_ms: u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
                attempt,
            }),
            ServerEvent::Push(p) => self.on_push(p),
        }
        for k in std::mem::take(&mut self.gone_friends) {
            self.end_friendship_transfers(&k).await;
        }
    }

    fn friend_gone(&mut self, userid: &str) {
        let k = key(userid);
        let display = self.display(&k);
        self.notices.friend_gone(&k);
        self.traversal.forget(&k);
        self.with_book(|b| b.remove(&k));
        if let Some(conn) = self.registry.active(&k) {
            if let Some((_, l)) = self.links.get(&conn) {
                l.close(CloseReason::NotAFriend, "no longer friends");
            }
        }
        self.emit(Event::FriendRemoved { userid: display });
        self.gone_friends.push(k);
    }

    /// R54, S39, C23: every unfinished transfer with a former friend ends as CANCELLED
    /// (its `.part` deleted); its outbox entries are never sent.
    async fn end_friendship_transfers(&mut self, k: &str) {
        let incoming: Vec<TransferId> = self
            .incoming
            .iter()
            .filter(|((f, _), t)| f == k && !t.receiver.is_finished())
            .map(|((_, id), _)| *id)
            .collect();
        for id in incoming {
            self.stop_incoming(
                k,
                id,
                FileCancelReason::Cancelled,
                "no longer friends",
                false,
            )
            .await;
        }
        let outgoing: Vec<TransferId> = self
            .outgoing
            .iter()
            .filter(|(_, o)| o.friend == k)
            .map(|(id, _)| *id)
            .collect();
        for id in outgoing {
            self.stop_outgoing(
                k,
                id,
                FileCancelReason::Cancelled,
                "no longer friends",
                false,
            )
            .await;
        }
        self.cancels_to_send.remove(k);
        self.outbox.forget(k);
        self.redial.reset(k);
    }

    /// Our request to `userid` was refused or expired; false for a repeated notice.
    fn request_answered(&mut self, userid: &str) -> bool {
        let k = key(userid);
        let listed = self
            .book
            .read()
            .map(|b| b.outgoing().iter().any(|r| key(&r.userid) == k))
            .unwrap_or(false);
        self.with_book(|b| b.drop_request(userid));
        self.notices.answered(userid, listed)
    }

    fn on_push(&mut self, p: PushEvent) {
        match p {
            PushEvent::FriendRequestReceived(r) => {
                let from = r.userid.clone();
                self.with_book(|b| b.add_incoming(r));
                self.emit(Event::FriendRequestReceived { from });
            }
            PushEvent::FriendRequestAccepted(f) => {
                // Queued notices may come twice (§6.9): a repeat changes nothing visible.
                let news = self.notices.accepted(&f.userid) || !self.is_friend(&key(&f.userid));
                self.with_book(|b| b.upsert(&f));
                self.sync_key_changes();
                if !news {
                    return;
                }
                let view = self
                    .book
                    .read()
                    .ok()
                    .and_then(|b| b.get(&f.userid).map(|c| c.view()));
                self.emit(Event::FriendRequestAccepted {
                    userid: f.userid.clone(),
                });
                if let Some(friend) = view {
                    self.emit(Event::FriendAdded { friend });
                }
            }
            PushEvent::FriendRequestRefused { userid } => {
                if self.request_answered(&userid) {
                    self.emit(Event::FriendRequestRefused { userid });
                }
            }
            PushEvent::FriendRequestExpired { userid } => {
                if self.request_answered(&userid) {
                    self.emit(Event::FriendRequestExpired { userid });
                }
            }
            PushEvent::FriendOnline {
                userid,
                endpoint,
                identity_key,
                candidates,
            } => {
                let k = key(&userid);
                let known =
                    self.with_book(|b| b.set_online(&userid, endpoint, &candidates, identity_key));
                self.sync_key_changes();
                if known == Some(true) {
                    let friend = self.display(&k);
                    self.emit(Event::Presence {
                        friend,
                        online: true,
                        address: endpoint.map(|e| e.to_string()),
                    });
                    // The friend is back (or moved): dial at once (§7.4 r4).
                    self.redial.reset(&k);
                    if self.has_pending(&k) {
                        self.ensure_connected(&k);
                    }
                }
            }
            PushEvent::FriendOffline { userid } => {
                let k = key(&userid);
                if self.with_book(|b| b.set_offline(&userid)).is_some() {
                    let friend = self.display(&k);
                    self.emit(Event::Presence {
                        friend,
                        online: false,
                        address: None,
                    });
                }
            }
            PushEvent::Unfriended { userid } => self.friend_gone(&userid),
            PushEvent::FriendKeyChanged {
                userid,
                identity_key,
            } => {
                // Like every other way of learning a key, only a pending change (§12.4).
                self.with_book(|b| b.set_key(&userid, identity_key));
                self.sync_key_changes();
            }
            PushEvent::PeerConnectRequested(req) => {
                let k = key(&req.userid);
                // Only friends may make us dial (SPEC.md §12.10 rule 4), and not while their
                // key change is pending (§12.4).
                if !self.is_friend(&k) || self.key_change_pending(&k) {
                    return;
                }
                let has_direct = self
                    .registry
                    .path(&k)
                    .is_some_and(|p| p != LinkPath::Relayed);
                let actions = self.traversal.on_request(&req, has_direct, Instant::now());
                self.run_actions(actions);
            }
            PushEvent::RelayInvite { userid, token } => {
                let k = key(&userid);
                if !self.is_friend(&k)
                    || self.key_change_pending(&k)
                    || self.registry.active(&k).is_some()
                {
                    return;
                }
                let friend = self.display(&k);
                tracing::debug!(%friend, "joining a relay");
                spawn_relay(self.session_ctx.clone(), friend, Some(token), None);
            }
        }
    }
}

/// A new transfer's `.part` file in the friend's folder `dir`, created empty and exclusively
/// at the first free candidate of `name` (SPEC.md §8.4); its path without the suffix is the
/// final name, recorded with the transfer.
fn new_part(dir: &Path, name: &str) -> Result<PathBuf, String> {
    ensure_real_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for _ in 0..16 {
        let dest = free_destination(dir, name, occupied).ok_or("no free file name")?;
        let part = part_path(&dest);
        match create_part(&part) {
            Ok(()) => return Ok(part),
            // Taken between the check and the create: the next candidate.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: {e}", part.display())),
        }
    }
    Err("no free file name".into())
}

fn write_job(
    k: &str,
    id: TransferId,
    part: &Path,
    name: &str,
    held: u64,
    offer: &FileOfferFrame,
) -> WriteJob {
    WriteJob {
        friend: k.to_owned(),
        id,
        part: part.to_owned(),
        dir: part.parent().map(Path::to_path_buf).unwrap_or_default(),
        name: name.to_owned(),
        held,
        fresh: false,
        size: offer.size,
        sha256: offer.sha256,
    }
}
