//! One peer connection: hello exchange, then a reader task and a writer task.
//!
//! The reader turns frames into [`PeerEvent`]s for the core (answering Ping itself and
//! watching the idle limits); the writer sends what the core and the file pumps queue, with
//! control frames (chat, acks, offers) ahead of bulk file chunks so chat stays responsive
//! during a transfer. Reading and writing in separate tasks means two friends sending each
//! other large files at once can never block each other.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use peerchat_proto::limits::{
    CLOSE_GRACE, HANDSHAKE_TIMEOUT, PEER_PING_BURST, PEER_PING_RATE, PEER_SEND_BUDGET,
};
use peerchat_proto::message::ConnectPeerOk;
use peerchat_proto::message::{InvalidFileFrame, PeerFeatures, PeerFrame};
use peerchat_proto::wire::{self, peer_message::Body, ChannelKind, CloseReason};
use peerchat_proto::{Channel, ChannelReader, ChannelWriter, LocalIdentity, Role};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::budget::{frame_cost, PingBucket, RecvBudget, RecvBudgets, SendBudget};
use super::hello::{check_dialled_key, check_hello, friend_for_key, local_features, HelloError};
use super::idle::IdleAction;
use super::registry::ConnId;
use super::traversal::{ConnectFailure, LinkPath, StepId};
use crate::events::{PeerCloseReason, RefuseReason};
use crate::friends::FriendBook;
use crate::net::{connect_from, connect_from_port};

/// File chunks a connection's writer may have queued before the pump waits.
pub const BULK_QUEUE: usize = 8;

/// What peer connections tell the core.
#[derive(Debug)]
pub enum PeerEvent {
    /// A connection finished its hello exchange.
    Up {
        /// The connection.
        conn: ConnId,
        /// The friend (registered spelling).
        friend: String,
        /// We are the handshake initiator: we dialled it (or opened the relay) and did not
        /// lose the tie-break of a simultaneous open (SPEC.md §4.7).
        initiated_by_me: bool,
        /// The remote address (for a dialled connection: the address we dialled; for a
        /// relayed one: the server's).
        addr: SocketAddr,
        /// How it was made, when the connection knows (dials and relays); `None` for an
        /// accepted connection, whose path the core decides (SPEC.md §7.6 "Path").
        path: Option<LinkPath>,
        /// How to send on it.
        link: PeerLink,
    },
    /// A frame arrived (Ping, Pong, Hello and Close are handled by the session).
    Frame {
        /// The connection.
        conn: ConnId,
        /// The frame.
        frame: PeerFrame,
    },
    /// The connection ended.
    Down {
        /// The connection.
        conn: ConnId,
        /// Why: the friend's `Close`, the code this side sent, or a broken connection.
        reason: PeerCloseReason,
        /// The reason of the friend's `Close`, if it sent one: SPEC.md §8.5.1 L30–L35 decide
        /// the redial on it (L33: no redial after NOT_A_FRIEND).
        friend_close: Option<CloseReason>,
    },
    /// A file frame or acknowledgement whose field values are invalid (SPEC.md §8.5.3):
    /// the tables answer it; the link stays open.
    InvalidFileFrame {
        /// The connection.
        conn: ConnId,
        /// Which frame, with its id as received.
        frame: InvalidFileFrame,
        /// What was wrong.
        why: String,
    },
    /// Dialling a friend failed.
    DialFailed {
        /// The friend.
        friend: String,
        /// The traversal step that asked for the dial.
        step: StepId,
        /// Why.
        reason: String,
    },
    /// The server's answer to a ConnectPeer the traversal asked for (SPEC.md §7.6).
    ConnectPeerAnswer {
        /// The friend (lower-case key).
        friend: String,
        /// The traversal step.
        step: StepId,
        /// The answer.
        result: Result<ConnectPeerOk, ConnectFailure>,
    },
    /// A relay could not be opened or joined, or its peer session failed before Open
    /// (SPEC.md §7.7).
    RelayFailed {
        /// The friend.
        friend: String,
        /// The traversal step (None: joining a friend's relay).
        step: Option<StepId>,
        /// Why.
        reason: String,
    },
    /// An incoming connection was refused (not a friend, bad hello).
    Refused {
        /// The remote key's fingerprint.
        fingerprint: String,
        /// The remote address.
        addr: SocketAddr,
        /// Why.
        reason: RefuseReason,
    },
}

/// A frame in a connection's control queue and the budget bytes it holds.
type Queued = (wire::PeerMessage, usize);

/// The sending side of a connection, held by the core.
#[derive(Debug, Clone)]
pub struct PeerLink {
    /// The connection.
    pub conn: ConnId,
    ctl: mpsc::UnboundedSender<Queued>,
    /// Bytes queued on `ctl` and not yet written (SPEC.md §7.9 rule 1): the channel itself
    /// is unbounded so that no sender ever waits, the budget bounds it.
    budget: Arc<SendBudget>,
    /// Bulk queue for file chunks (bounded: the pump waits when the socket is slow).
    pub bulk: mpsc::Sender<wire::PeerMessage>,
    /// The optional features both hellos named (SPEC.md §7.2 rule 9).
    pub features: PeerFeatures,
    /// Fingerprint of the identity key the handshake authenticated (the machine admits the
    /// link only if it is the friend's trusted key, audit D18).
    pub fingerprint: String,
    stop: CancellationToken,
    /// Cancelled when the write task has ended: what was queued (a `Close` above all) is
    /// written and the socket shut down, or given up after `CLOSE_GRACE`.
    written: CancellationToken,
    /// The code we closed it with, for the Down event.
    why: Arc<Mutex<Option<CloseReason>>>,
}

impl PeerLink {
    /// Queues a frame ahead of file chunks. A frame that does not fit the connection's
    /// [`PEER_SEND_BUDGET`] is not queued: the friend does not read what we send, and the
    /// connection is closed with SLOW_CONSUMER instead (SPEC.md §7.9 rule 1).
    pub fn send(&self, frame: peerchat_proto::message::PeerFrame) {
        self.send_wire(wire::PeerMessage::from(frame));
    }

    /// As [`PeerLink::send`], for a frame the typed [`PeerFrame`] cannot hold (a
    /// `FileCancel` echoing a transfer id of the wrong length, SPEC.md §8.5.3).
    pub fn send_wire(&self, msg: wire::PeerMessage) {
        if self.stop.is_cancelled() {
            return;
        }
        let cost = frame_cost(msg.encoded_len());
        if self.budget.try_reserve(cost) {
            let _ = self.ctl.send((msg, cost));
        } else {
            tracing::warn!(
                queued = self.budget.queued(),
                "peer does not read what we send; closing as a slow consumer"
            );
            self.close(
                CloseReason::SlowConsumer,
                "slow consumer: the friend does not read, the send budget is full",
            );
        }
    }

    /// Sends Close{reason} and ends the connection.
    pub fn close(&self, reason: CloseReason, message: &str) {
        if let Ok(mut why) = self.why.lock() {
            why.get_or_insert(reason);
        }
        if !(reason == CloseReason::Normal && crate::faults::on("no-close-normal")) {
            let _ = self.ctl.send((close(reason, message), 0));
        }
        self.stop.cancel();
    }

    /// Waits until the write task has ended (after [`PeerLink::close`]: the `Close` is on
    /// the wire). A client that exits right after closing its links must wait for this,
    /// or the runtime drops the task before the `Close` is written (SPEC.md §8.5.1 L53).
    pub async fn written(&self) {
        self.written.cancelled().await;
    }

    /// Stopped without a `Close` of ours: the client itself is stopping.
    fn close_reason(&self) -> PeerCloseReason {
        self.why
            .lock()
            .ok()
            .and_then(|w| *w)
            .map_or(PeerCloseReason::LoggedOut, PeerCloseReason::sent)
    }

    /// Bytes queued on this connection and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.budget.queued()
    }
}

/// The one Pong a connection may have waiting (SPEC.md §3.6 rule 2): a Ping that arrives
/// while it is still unsent replaces its nonce.
#[derive(Debug, Default)]
struct PongSlot {
    nonce: Mutex<Option<u64>>,
    ready: Notify,
}

impl PongSlot {
    fn answer(&self, nonce: u64) {
        if let Ok(mut n) = self.nonce.lock() {
            *n = Some(nonce);
        }
        self.ready.notify_one();
    }

    fn take(&self) -> Option<u64> {
        self.nonce.lock().ok().and_then(|mut n| n.take())
    }
}

/// What every session needs from the client.
#[derive(Clone)]
pub struct SessionContext {
    /// Our handshake identity.
    pub local: LocalIdentity,
    /// The friend cache (read only here).
    pub book: Arc<RwLock<FriendBook>>,
    /// Our userid, once known.
    pub me: Arc<RwLock<Option<String>>>,
    /// Where events go (bounded: a slow core slows the readers, not memory).
    pub events: mpsc::Sender<PeerEvent>,
    /// Cancels every session (client shutdown).
    pub cancel: CancellationToken,
    /// Connection id source.
    pub next_conn: Arc<AtomicU64>,
    /// The peer listener's local address: punches leave from its port (SPEC.md §7.5).
    pub listen_addr: Option<SocketAddr>,
    /// How to reach the server for relay connections (SPEC.md §7.7).
    pub server: Arc<crate::server_session::ServerTarget>,
    /// The §3.6 idle timers of every link (SPEC.md's unless a test shortened them).
    pub idle: super::idle::IdleTimers,
    /// Every link task (dialled, accepted, relayed) and its writer: after `cancel` each one
    /// past the Noise handshake closes NORMAL by itself, and the shutdown waits for them
    /// (SPEC.md §8.5.1 L53), whether or not the driver ever admitted the link.
    pub links: TaskTracker,
    /// What each friend's received frames may hold in memory, shared by its connections.
    pub recv_budgets: RecvBudgets,
}

impl SessionContext {
    pub(crate) fn me(&self) -> Option<String> {
        self.me.read().ok().and_then(|m| m.clone())
    }

    pub(crate) fn book(&self) -> FriendBook {
        self.book.read().map(|b| b.clone()).unwrap_or_default()
    }
}

/// One dial action of the traversal (SPEC.md §7.6).
#[derive(Debug, Clone)]
pub struct DialSpec {
    /// The traversal step to report to.
    pub step: StepId,
    /// Addresses, tried in parallel; the first to finish its handshake wins.
    pub addrs: Vec<SocketAddr>,
    /// Not before.
    pub at: tokio::time::Instant,
    /// Per-address connect limit (DIRECT_DIAL_TIMEOUT, or PUNCH_WINDOW for a punch).
    pub timeout: Duration,
    /// Leave from the listening port and keep re-trying the connect for `timeout` (a punch).
    pub from_listener: bool,
    /// The path of a link made by this dial.
    pub path: LinkPath,
}

/// How long a punch waits after a refused connect before trying again within its window.
const PUNCH_RETRY: Duration = Duration::from_millis(250);

/// Dials `friend` as `spec` says, in the background; reports Up or DialFailed.
pub fn spawn_dial(ctx: SessionContext, friend: String, spec: DialSpec) {
    ctx.links.clone().spawn(async move {
        let cancel = ctx.cancel.clone();
        let fail = |reason: String| PeerEvent::DialFailed {
            friend: friend.clone(),
            step: spec.step,
            reason,
        };
        // Until a handshake is done a shutdown just drops the dial: there is no channel to
        // send Close on. From then on `run` closes NORMAL itself (L53).
        let won = cancel
            .run_until_cancelled(async {
                tokio::time::sleep_until(spec.at).await;
                let mut tries: FuturesUnordered<_> = spec
                    .addrs
                    .iter()
                    .map(|&addr| dial_one(&ctx, &friend, addr, &spec))
                    .collect();
                let mut errors = Vec::new();
                let won = loop {
                    match tries.next().await {
                        Some((addr, Ok(chan))) => break Some((addr, chan)),
                        Some((addr, Err(e))) => errors.push(format!("{addr}: {e}")),
                        None => break None,
                    }
                };
                // The others are abandoned (SPEC.md §7.6 step 1).
                drop(tries);
                if won.is_none() {
                    let reason = if errors.is_empty() {
                        "no address to dial".to_owned()
                    } else {
                        errors.join("; ")
                    };
                    let _ = ctx.events.send(fail(reason)).await;
                }
                won
            })
            .await;
        let Some(Some((addr, (chan, hello_by)))) = won else {
            return;
        };
        let ran = run(
            chan,
            ctx.clone(),
            addr,
            Some(friend.clone()),
            Some(spec.path),
            hello_by,
        )
        .await;
        if let Err(e) = ran {
            if !cancel.is_cancelled() {
                let _ = ctx.events.send(fail(format!("{addr}: {e}"))).await;
            }
        }
    });
}

/// Connects to one address and runs the handshake as initiator. Only the friend being
/// dialled may learn who we are: its key is checked before handshake message 3 (SPEC.md
/// §4.2 step 5, §7.2), or after message 3 when a simultaneous open made us the responder
/// (§4.7).
async fn dial_one(
    ctx: &SessionContext,
    friend: &str,
    addr: SocketAddr,
    spec: &DialSpec,
) -> (
    SocketAddr,
    Result<(Channel<TcpStream>, tokio::time::Instant), String>,
) {
    let stream = if spec.from_listener {
        punch_connect(ctx.listen_addr, addr, spec.timeout).await
    } else {
        connect_from(None, addr, spec.timeout)
            .await
            .map(|(s, _)| s)
            .map_err(|e| e.to_string())
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => return (addr, Err(e)),
    };
    // The hello must arrive within HANDSHAKE_TIMEOUT of the TCP connect (SPEC.md §8.5.1 L18,
    // audit D14), not of the end of the Noise handshake.
    let hello_by = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let book = ctx.book();
    let accept = |k: &peerchat_proto::IdentityKey| check_dialled_key(&book, friend, k).is_ok();
    let chan = Channel::handshake_verified(
        stream,
        bytes::BytesMut::new(),
        &ctx.local,
        Role::Initiator,
        ChannelKind::Peer,
        HANDSHAKE_TIMEOUT,
        accept,
    )
    .await
    .map(|c| (c, hello_by))
    .map_err(|e| e.to_string());
    (addr, chan)
}

/// A punching connect (SPEC.md §7.6): from the listening port, kept up to `window` while the
/// kernel retransmits the SYN; a refusal (the friend's NAT or host answered with a reset
/// before its own SYN left) is retried until the window closes.
///
/// Never from another port: only the listening port's mapping is the one the friend dials
/// (an ephemeral port's SYN opens a mapping nobody uses, and a fallback to one used to eat
/// the whole window after an early refusal, so the retry below never ran).
async fn punch_connect(
    from: Option<SocketAddr>,
    addr: SocketAddr,
    window: Duration,
) -> Result<TcpStream, String> {
    let end = tokio::time::Instant::now() + window;
    loop {
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err("punch window closed".into());
        }
        let tried = match from.filter(|l| l.is_ipv4() == addr.is_ipv4()) {
            Some(local) => connect_from_port(local, addr, left).await,
            None => connect_from(None, addr, left).await.map(|(s, _)| s),
        };
        match tried {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Err(e.to_string()),
            Err(e) => {
                tracing::debug!(%addr, error = %e, "punch connect failed; retrying");
                tokio::time::sleep(PUNCH_RETRY.min(left)).await;
            }
        }
    }
}

/// Runs an accepted connection (after its handshake); its hello is due by `hello_by`
/// (`HANDSHAKE_TIMEOUT` after the TCP accept, SPEC.md §8.5.1 L18).
pub async fn run_accepted<S>(
    chan: Channel<S>,
    ctx: SessionContext,
    addr: SocketAddr,
    hello_by: tokio::time::Instant,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let fingerprint = chan.remote.identity_key.fingerprint().to_string();
    if let Err(e) = run(chan, ctx.clone(), addr, None, None, hello_by).await {
        tracing::info!(%addr, %fingerprint, error = %e, "peer refused");
        let _ = ctx
            .events
            .send(PeerEvent::Refused {
                fingerprint,
                addr,
                reason: e.refuse_reason(),
            })
            .await;
    }
}

/// Hello exchange, then the reader loop (the writer runs in its own task). `dialled` is the
/// friend we dialled (or relay to), or None for an accepted connection; the handshake role
/// decides who sends PeerHello first (SPEC.md §4.7 rule 5, §7.2). Errors are hello failures
/// (the connection was closed with NOT_A_FRIEND or PROTOCOL_ERROR, or it broke). The
/// other side's hello is due by `hello_by`: `HANDSHAKE_TIMEOUT` after the TCP connect or
/// accept (SPEC.md §8.5.1 L18, audit D14).
pub(crate) async fn run<S>(
    chan: Channel<S>,
    ctx: SessionContext,
    addr: SocketAddr,
    dialled: Option<String>,
    path: Option<LinkPath>,
    hello_by: tokio::time::Instant,
) -> Result<(), HelloError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Channel {
        mut reader,
        mut writer,
        remote,
        role,
    } = chan;
    let initiator = role == Role::Initiator;
    let fingerprint = remote.identity_key.fingerprint().to_string();
    let book = ctx.book();
    let Some(me) = ctx.me() else {
        return refuse(
            &mut reader,
            &mut writer,
            CloseReason::NotAFriend,
            HelloError::NotForUs("nobody: this client is not logged in".into()),
        )
        .await;
    };
    let expected = match &dialled {
        Some(f) => check_dialled_key(&book, f, &remote.identity_key)
            .map(|()| book.get(f).map_or_else(|| f.clone(), |c| c.userid.clone())),
        None => friend_for_key(&book, &remote.identity_key),
    };
    // For an accepted link this is only L11 (the key is some friend's); the friend the link
    // is for is the one the hello names (below).
    let mut friend = match expected {
        Ok(f) => f,
        Err(e) => return refuse(&mut reader, &mut writer, CloseReason::NotAFriend, e).await,
    };
    let local = local_features();
    let hello = |to: &str| {
        wire::PeerMessage::from(PeerFrame::Hello {
            userid: me.clone(),
            to_userid: to.to_owned(),
            features: local,
        })
    };
    // The initiator speaks first; the responder answers only after accepting its hello
    // (SPEC.md §7.2 rules 3-4).
    if initiator {
        writer
            .send(&hello(&friend))
            .await
            .map_err(|e| HelloError::Connection(e.to_string()))?;
    }
    let hello_due = tokio::time::timeout_at(hello_by, reader.recv::<wire::PeerMessage>());
    let first = match tokio::select! {
        r = hello_due => r,
        () = ctx.cancel.cancelled() => return quit_before_up(&mut reader, &mut writer).await,
    } {
        Ok(Ok(Some(m))) => m,
        Ok(Ok(None)) => return Err(HelloError::Connection("closed before PeerHello".into())),
        Ok(Err(e)) => {
            // SPEC.md §8.5.1 L4/L5 hold in AWAITING_HELLO too (audit D13).
            if let Some(reason) = e.close_reason() {
                return refuse(
                    &mut reader,
                    &mut writer,
                    reason,
                    HelloError::Connection(e.to_string()),
                )
                .await;
            }
            return Err(HelloError::Connection(e.to_string()));
        }
        Err(_) => {
            return refuse(
                &mut reader,
                &mut writer,
                CloseReason::ProtocolError,
                HelloError::Connection("no PeerHello in time".into()),
            )
            .await
        }
    };
    // An empty userid names no friend: NOT_A_FRIEND, not PROTOCOL_ERROR (§8.5.1 L13, D12).
    if matches!(&first.body, Some(Body::Hello(h)) if h.userid.is_empty()) {
        return refuse(
            &mut reader,
            &mut writer,
            CloseReason::NotAFriend,
            HelloError::WrongUser(String::new()),
        )
        .await;
    }
    let features = match PeerFrame::try_from(first) {
        Ok(PeerFrame::Hello {
            userid,
            to_userid,
            features,
        }) => {
            let common = local.common(features);
            // The initiator has sent its hello and now read the responder's: from here both
            // directions are AES-256-GCM, a refusing Close included (SPEC.md §3.2.1 rule 2).
            if initiator && common.aes_gcm {
                if let Err(e) = switch_to_aes_gcm(&mut reader, &mut writer) {
                    return refuse(&mut reader, &mut writer, CloseReason::ProtocolError, e).await;
                }
            }
            match check_hello(&book, &remote.identity_key, &me, &userid, &to_userid) {
                // A responder is Open for the friend the hello names: several friends may share
                // the handshake key (SPEC.md §8.5.1 L12, Appendix C item 14; audit D11). An
                // initiator only for the friend it dialled (L14).
                Ok(f) if dialled.is_none() || f.eq_ignore_ascii_case(&friend) => {
                    friend = f;
                    common
                }
                Ok(f) => {
                    return refuse(
                        &mut reader,
                        &mut writer,
                        CloseReason::NotAFriend,
                        HelloError::WrongUser(f),
                    )
                    .await
                }
                Err(e) => {
                    return refuse(&mut reader, &mut writer, CloseReason::NotAFriend, e).await
                }
            }
        }
        Ok(PeerFrame::Close { reason, message }) => {
            return Err(HelloError::Connection(format!(
                "closed by the remote: {reason:?} {message}"
            )))
        }
        _ => {
            return refuse(
                &mut reader,
                &mut writer,
                CloseReason::ProtocolError,
                HelloError::NotHello,
            )
            .await
        }
    };
    if !initiator {
        writer
            .send(&hello(&friend))
            .await
            .map_err(|e| HelloError::Connection(e.to_string()))?;
        // The responder's hello ended its record: both directions switch now (§3.2.1 r2).
        if features.aes_gcm {
            if let Err(e) = switch_to_aes_gcm(&mut reader, &mut writer) {
                return refuse(&mut reader, &mut writer, CloseReason::ProtocolError, e).await;
            }
        }
    }

    let conn = ConnId(ctx.next_conn.fetch_add(1, Ordering::Relaxed));
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let (bulk_tx, bulk_rx) = mpsc::channel(BULK_QUEUE);
    // Not a child of `ctx.cancel`: on shutdown this task queues Close NORMAL first and then
    // stops the writer (`PeerLink::close`), so the writer cannot end before the Close.
    let stop = CancellationToken::new();
    let budget = Arc::new(SendBudget::new(PEER_SEND_BUDGET));
    let pong = Arc::new(PongSlot::default());
    let (budget_w, pong_w, stop_w) = (budget.clone(), pong.clone(), stop.clone());
    let written = CancellationToken::new();
    let done = written.clone();
    ctx.links.spawn(async move {
        let _written = done.drop_guard();
        write_loop(writer, ctl_rx, bulk_rx, budget_w, pong_w, stop_w).await;
    });
    // However this task ends, its writer ends too once what is queued is written: it must
    // not outlive the link after a shutdown (which waits for it) while an unadmitted `Up`
    // in the driver's queue still holds a sender.
    let _stop_writer = stop.clone().drop_guard();
    let link = PeerLink {
        conn,
        ctl: ctl_tx,
        budget,
        bulk: bulk_tx,
        features,
        fingerprint,
        stop: stop.clone(),
        written,
        why: Arc::default(),
    };
    tracing::debug!(%addr, %friend, ?conn, "peer connection up");
    let recv_budget = ctx.recv_budgets.of(&friend);
    let link_for_reader = link.clone();
    let up = PeerEvent::Up {
        conn,
        friend,
        initiated_by_me: initiator,
        addr,
        path,
        link,
    };
    let admitted = tokio::select! {
        sent = ctx.events.send(up) => sent.is_ok(),
        () = ctx.cancel.cancelled() => false,
    };
    if !admitted {
        // The driver stopped (or is stopping) before it took this link: nobody else will
        // close it, so it closes NORMAL itself (L53) and waits until the Close is written.
        close_for_exit(&link_for_reader);
        link_for_reader.written().await;
        drain(&mut reader).await;
        return Ok(());
    }
    let (reason, friend_close, closed_here) = read_loop(
        &mut reader,
        &ctx,
        conn,
        &link_for_reader,
        &pong,
        recv_budget,
    )
    .await;
    let down = PeerEvent::Down {
        conn,
        reason,
        friend_close,
    };
    // After a shutdown the driver reads no more events: never wait on a full queue then.
    tokio::select! {
        _ = ctx.events.send(down) => {}
        () = ctx.cancel.cancelled() => {}
    }
    if closed_here {
        drain(&mut reader).await;
    }
    Ok(())
}

/// CLOSING (SPEC.md §3.7 rule 2, §8.5.1 L7 and L44; audit D16): after this side sent
/// `Close`, read and discard until end-of-stream or `CLOSE_GRACE`. Closing a socket with
/// unread input makes TCP send a reset, which can destroy the `Close` before the friend has
/// read it.
///
/// At most [`DRAIN_CAP`] bytes: draining is for the frames a friend had in flight when our
/// `Close` crossed them, not for a flood (a Ping flood closed with RATE_LIMITED would
/// otherwise keep this task reading at full speed for the whole grace period).
async fn drain<R: AsyncRead + Unpin>(reader: &mut ChannelReader<R>) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let mut read = 0;
        while let Ok(Some(frame)) = reader.recv_frame().await {
            read += frame.len() + 4;
            if read > DRAIN_CAP {
                break;
            }
        }
    })
    .await;
}

/// The client is shutting down (SPEC.md §8.5.1 L53): Close NORMAL, unless the link is
/// already closing with a reason of its own (the driver's `close_all` got there first).
fn close_for_exit(link: &PeerLink) {
    if !link.stop.is_cancelled() {
        link.close(CloseReason::Normal, "client exiting");
    }
}

/// A shutdown during the hello exchange, after the Noise handshake: Close NORMAL (L53),
/// half-close and drain, as a refusal does, but no refusal is reported: nothing went wrong.
async fn quit_before_up<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    reader: &mut ChannelReader<R>,
    writer: &mut ChannelWriter<W>,
) -> Result<(), HelloError> {
    // The fault that the conformance self-test uses to prove L53's case can fail.
    if !crate::faults::on("no-close-normal") {
        let bye = close(CloseReason::Normal, "client exiting");
        let _ = tokio::time::timeout(CLOSE_GRACE, writer.send(&bye)).await;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, writer.shutdown()).await;
    drain(reader).await;
    Ok(())
}

/// How much a closing link reads and discards at most ([`drain`]); an implementation
/// choice, not a protocol limit: ending CLOSING early is what a reset would do anyway.
const DRAIN_CAP: usize = 1 << 20;

/// Both directions to AES-256-GCM (SPEC.md §3.2.1), the sending side first so that a
/// refusing Close is already sent with the new key.
fn switch_to_aes_gcm<R, W>(
    reader: &mut ChannelReader<R>,
    writer: &mut ChannelWriter<W>,
) -> Result<(), HelloError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let broken = |e: peerchat_proto::ChannelError| HelloError::Connection(e.to_string());
    writer.switch_to_aes_gcm().map_err(broken)?;
    reader.switch_to_aes_gcm().map_err(broken)
}

/// Returns why the link ended, the friend's `Close` reason if it sent one, and whether this
/// side closed it (sent `Close` or was told to: the caller then drains, [`drain`]).
async fn read_loop<R: AsyncRead + Unpin>(
    reader: &mut ChannelReader<R>,
    ctx: &SessionContext,
    conn: ConnId,
    link: &PeerLink,
    pong: &PongSlot,
    budget: RecvBudget,
) -> (PeerCloseReason, Option<CloseReason>, bool) {
    let stop = &link.stop;
    let mut last = Instant::now();
    // Pings sent in the current silence (SPEC.md §8.5.1 L40–L43, `super::idle`).
    let mut pings_sent = 0;
    let mut pings = PingBucket::new(PEER_PING_BURST, PEER_PING_RATE, last);
    let mut tick = tokio::time::interval(ctx.idle.tick());
    loop {
        tokio::select! {
            () = stop.cancelled() => return (link.close_reason(), None, true),
            () = ctx.cancel.cancelled() => {
                close_for_exit(link);
                return (link.close_reason(), None, true);
            }
            r = reader.recv_frame() => {
                let before = (last, pings_sent);
                last = Instant::now();
                pings_sent = 0;
                // Read no further while this link's received bytes fill the budget.
                let r = match r {
                    Ok(Some(f)) => tokio::select! {
                        f = budget.hold(f) => wire::PeerMessage::decode(f)
                            .map(Some)
                            .map_err(peerchat_proto::ChannelError::from),
                        () = stop.cancelled() => return (link.close_reason(), None, true),
                        () = ctx.cancel.cancelled() => {
                            close_for_exit(link);
                            return (link.close_reason(), None, true);
                        }
                    },
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                };
                let m = match r {
                    Ok(Some(m)) => m,
                    Ok(None) => return (PeerCloseReason::Lost, None, false),
                    Err(e) => {
                        tracing::debug!(?conn, error = %e, "peer connection failed");
                        return match e.close_reason() {
                            Some(reason) => {
                                link.close(reason, &e.to_string());
                                (PeerCloseReason::sent(reason), None, true)
                            }
                            None => (PeerCloseReason::IoError, None, false),
                        };
                    }
                };
                // Kept in case the frame's values are invalid: file frames are then answered
                // by the tables, not by closing (SPEC.md §8.5.1 L26, audit D1).
                let lenient = InvalidFileFrame::of(&m);
                match PeerFrame::try_from(m) {
                    Ok(PeerFrame::Ping(n)) => {
                        if !pings.take(last) {
                            link.close(CloseReason::RateLimited, "too many Pings");
                            return (PeerCloseReason::sent(CloseReason::RateLimited), None, true);
                        }
                        if !crate::faults::on("no-pong") {
                            pong.answer(n);
                        }
                    }
                    Ok(PeerFrame::Pong(_)) if crate::faults::on("pong-not-activity") => {
                        (last, pings_sent) = before;
                    }
                    Ok(PeerFrame::Pong(_) | PeerFrame::Unknown) => {}
                    Ok(PeerFrame::Hello { .. }) => {
                        link.close(CloseReason::ProtocolError, "PeerHello sent twice");
                        return (PeerCloseReason::sent(CloseReason::ProtocolError), None, true);
                    }
                    Ok(PeerFrame::Close { reason, message }) => {
                        tracing::debug!(?conn, ?reason, %message, "closed by the friend");
                        return (PeerCloseReason::Friend(reason), Some(reason), false)
                    }
                    Ok(frame) => {
                        if ctx.events.send(PeerEvent::Frame { conn, frame }).await.is_err() {
                            return (PeerCloseReason::LoggedOut, None, false);
                        }
                    }
                    Err(e) => match lenient {
                        Some(frame) => {
                            let ev = PeerEvent::InvalidFileFrame { conn, frame, why: e.to_string() };
                            if ctx.events.send(ev).await.is_err() {
                                return (PeerCloseReason::LoggedOut, None, false);
                            }
                        }
                        None => {
                            link.close(CloseReason::ProtocolError, &e.to_string());
                            return (PeerCloseReason::sent(CloseReason::ProtocolError), None, true);
                        }
                    },
                }
            }
            _ = tick.tick() => {
                match super::idle::decide(ctx.idle, last.elapsed(), pings_sent) {
                    IdleAction::Close => {
                        link.close(CloseReason::IdleTimeout, "nothing received for too long");
                        return (PeerCloseReason::IdleTimeout, None, true);
                    }
                    IdleAction::Ping => {
                        pings_sent += 1;
                        if !crate::faults::on("no-idle-ping") {
                            link.send(PeerFrame::Ping(rand::random()));
                        }
                    }
                    IdleAction::Wait => {}
                }
            }
        }
    }
}

/// Sends control frames first (and the one waiting Pong), then file chunks; batches
/// control frames into one flush and frees their budget bytes once they are written; ends
/// after sending a Close, when every sender is gone, or when the connection is stopped (a
/// flush that the friend does not read then gets `CLOSE_GRACE` to finish, SPEC.md §7.9 rule 1).
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: ChannelWriter<W>,
    mut ctl: mpsc::UnboundedReceiver<Queued>,
    mut bulk: mpsc::Receiver<wire::PeerMessage>,
    budget: Arc<SendBudget>,
    pong: Arc<PongSlot>,
    stop: CancellationToken,
) {
    loop {
        let (msg, mut cost) = tokio::select! {
            biased;
            m = ctl.recv() => match m {
                Some(m) => m,
                None => break,
            },
            () = pong.ready.notified() => match pong.take() {
                Some(n) => (PeerFrame::Pong(n).into(), 0),
                None => continue,
            },
            () = stop.cancelled() => break,
            Some(m) = bulk.recv() => (m, 0),
        };
        let mut closing = matches!(msg.body, Some(Body::Close(_)));
        if let Err(e) = writer.queue(&msg) {
            tracing::warn!(error = %e, "peer frame not sendable");
        }
        while !closing {
            let Ok((m, c)) = ctl.try_recv() else { break };
            closing = matches!(m.body, Some(Body::Close(_)));
            cost += c;
            let _ = writer.queue(&m);
        }
        let flushed = flush_or_give_up(&mut writer, &stop).await;
        budget.release(cost);
        if !flushed || closing {
            break;
        }
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, writer.shutdown()).await;
}

/// Flushes; once the connection is stopped, gives the flush at most `CLOSE_GRACE` (a friend
/// that does not read must not keep the socket and this task forever). False if the flush
/// failed or was abandoned.
async fn flush_or_give_up<W: AsyncWrite + Unpin>(
    writer: &mut ChannelWriter<W>,
    stop: &CancellationToken,
) -> bool {
    let flush = writer.flush();
    tokio::pin!(flush);
    tokio::select! {
        r = &mut flush => return r.is_ok(),
        () = stop.cancelled() => {}
    }
    matches!(tokio::time::timeout(CLOSE_GRACE, flush).await, Ok(Ok(())))
}

/// Sends `Close{reason}` during the hello exchange, half-closes and drains (audit D16).
async fn refuse<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    reader: &mut ChannelReader<R>,
    writer: &mut ChannelWriter<W>,
    reason: CloseReason,
    e: HelloError,
) -> Result<(), HelloError> {
    let _ = writer.send(&close(reason, &e.to_string())).await;
    let _ = writer.shutdown().await;
    drain(reader).await;
    Err(e)
}

fn close(reason: CloseReason, message: &str) -> wire::PeerMessage {
    wire::PeerMessage {
        body: Some(Body::Close(wire::Close {
            reason: reason as i32,
            message: crate::text::truncate_human(message),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::PongSlot;

    /// SPEC.md §8.5.1 L53 in every state after the Noise handshake: a link task closes
    /// NORMAL by itself when the client shuts down, whether the driver has admitted it or
    /// not, and the shutdown can wait for it. Over in-memory streams, with a friend that
    /// speaks the wire by hand.
    mod shutdown {
        #![allow(clippy::unwrap_used, clippy::expect_used)]

        use std::sync::atomic::AtomicU64;
        use std::sync::{Arc, RwLock};
        use std::time::Duration;

        use peerchat_proto::message::{FriendInfo, PeerFeatures, PeerFrame};
        use peerchat_proto::wire::{self, ChannelKind, CloseReason};
        use peerchat_proto::{test_keys, Channel, LocalIdentity, Role};
        use tokio::io::DuplexStream;
        use tokio::sync::mpsc;
        use tokio_util::sync::CancellationToken;
        use tokio_util::task::TaskTracker;

        use super::super::{run_accepted, PeerEvent, SessionContext};
        use crate::events::RefuseReason;
        use crate::friends::FriendBook;
        use crate::server_session::ServerTarget;

        /// Where the test stops the friend's side before the client shuts down.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Window {
            /// Handshake done, the friend's hello never sent: AWAITING_HELLO.
            BeforeHello,
            /// Hellos exchanged; the driver's event queue is full, so the link task waits
            /// to report `Up`.
            BeforeUp,
            /// `Up` reported, but the driver never took it (it is shutting down).
            UpNotAdmitted,
        }

        const ME: usize = 1;
        const FRIEND: usize = 2;

        fn context(events: mpsc::Sender<PeerEvent>) -> SessionContext {
            let mut book = FriendBook::new();
            book.upsert(&FriendInfo {
                userid: "bob".into(),
                online: true,
                endpoint: None,
                identity_key: test_keys::identity(FRIEND).public().clone(),
                candidates: Vec::new(),
            });
            SessionContext {
                local: LocalIdentity::new(test_keys::identity(ME)).unwrap(),
                book: Arc::new(RwLock::new(book)),
                me: Arc::new(RwLock::new(Some("alice".into()))),
                events,
                cancel: CancellationToken::new(),
                next_conn: Arc::new(AtomicU64::new(1)),
                listen_addr: None,
                server: Arc::new(ServerTarget {
                    server: "127.0.0.1:1".into(),
                    known_servers: "unused".into(),
                }),
                idle: crate::peer::idle::IdleTimers::default(),
                links: TaskTracker::new(),
                recv_budgets: Default::default(),
            }
        }

        /// Runs the client's accepted side up to `window`, shuts it down, and returns the
        /// first frame the friend reads afterwards.
        async fn close_seen_by_friend(window: Window) -> Option<PeerFrame> {
            let (mine, theirs) = tokio::io::duplex(1 << 16);
            let (events, mut driver) = mpsc::channel(1);
            if window == Window::BeforeUp {
                let filler = PeerEvent::Refused {
                    fingerprint: String::new(),
                    addr: "127.0.0.1:1".parse().unwrap(),
                    reason: RefuseReason::UnknownKey,
                };
                events.try_send(filler).unwrap();
            }
            let ctx = context(events);
            let local = ctx.local.clone();
            let client = {
                let ctx = ctx.clone();
                ctx.links.clone().spawn(async move {
                    let kind = ChannelKind::Peer;
                    let chan = Channel::handshake(mine, &local, Role::Responder, kind, WAIT)
                        .await
                        .unwrap();
                    let hello_by = tokio::time::Instant::now() + WAIT;
                    let addr = "127.0.0.1:2".parse().unwrap();
                    run_accepted(chan, ctx, addr, hello_by).await;
                })
            };
            let friend = LocalIdentity::new(test_keys::identity(FRIEND)).unwrap();
            let mut bob =
                Channel::handshake(theirs, &friend, Role::Initiator, ChannelKind::Peer, WAIT)
                    .await
                    .unwrap();
            if window != Window::BeforeHello {
                let hello = PeerFrame::Hello {
                    userid: "bob".into(),
                    to_userid: "alice".into(),
                    // No aes-gcm: both directions stay on the handshake's cipher.
                    features: PeerFeatures::default(),
                };
                bob.writer
                    .send(&wire::PeerMessage::from(hello))
                    .await
                    .unwrap();
                let answer = read(&mut bob).await;
                assert!(
                    matches!(answer, Some(PeerFrame::Hello { .. })),
                    "{answer:?}"
                );
            }
            if window == Window::UpNotAdmitted {
                let up = tokio::time::timeout(WAIT, driver.recv()).await.unwrap();
                assert!(matches!(up, Some(PeerEvent::Up { .. })), "{up:?}");
            }
            // The client shuts down: the driver's part (closing the links it admitted) has
            // nothing to do here; what is left is the cancel and the wait.
            ctx.cancel.cancel();
            let frame = read(&mut bob).await;
            // Gone after reading the Close, as a friend is: the client's drain then ends.
            drop(bob);
            ctx.links.close();
            tokio::time::timeout(WAIT, ctx.links.wait())
                .await
                .expect("every link task ends after the shutdown");
            assert!(client.is_finished());
            drop(driver);
            frame
        }

        const WAIT: Duration = Duration::from_secs(5);

        async fn read(bob: &mut Channel<DuplexStream>) -> Option<PeerFrame> {
            let m = tokio::time::timeout(WAIT, bob.reader.recv::<wire::PeerMessage>())
                .await
                .ok()?
                .ok()??;
            PeerFrame::try_from(m).ok()
        }

        fn is_normal_close(f: &Option<PeerFrame>) -> bool {
            matches!(f, Some(PeerFrame::Close { reason, .. }) if *reason == CloseReason::Normal)
        }

        #[tokio::test]
        async fn a_shutdown_while_awaiting_the_hello_closes_normal() {
            let f = close_seen_by_friend(Window::BeforeHello).await;
            assert!(is_normal_close(&f), "{f:?}");
        }

        /// The remaining window of L53 (docs/peer-conformance.md): hello done, `Up` not yet
        /// reported. Before the fix the task was dropped here and the friend got no Close.
        #[tokio::test]
        async fn a_shutdown_between_hello_and_up_closes_normal() {
            let f = close_seen_by_friend(Window::BeforeUp).await;
            assert!(is_normal_close(&f), "{f:?}");
        }

        #[tokio::test]
        async fn a_shutdown_before_the_driver_admits_the_link_closes_normal() {
            let f = close_seen_by_friend(Window::UpNotAdmitted).await;
            assert!(is_normal_close(&f), "{f:?}");
        }
    }

    /// SPEC.md §8.5 L21a (§3.6 r2, §7.9 r3): a Ping that arrives while the Pong for an
    /// earlier one is still queued is not answered separately; the queued Pong now carries
    /// the newer nonce, so a Ping flood costs one Pong, not one each.
    #[test]
    fn a_second_ping_while_a_pong_is_queued_updates_its_nonce() {
        let slot = PongSlot::default();
        slot.answer(1);
        slot.answer(2);
        assert_eq!(slot.take(), Some(2), "one Pong, with the newer nonce");
        assert_eq!(slot.take(), None, "and only one");
        slot.answer(3);
        assert_eq!(
            slot.take(),
            Some(3),
            "once written, the next Ping gets its own Pong"
        );
    }
}
