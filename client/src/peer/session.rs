//! One peer connection: hello exchange, then a reader task and a writer task.
//!
//! The reader turns frames into [`PeerEvent`]s for the core (answering Ping itself and
//! watching the idle limits); the writer sends what the core and the file pumps queue, with
//! control frames (chat, acks, offers) ahead of bulk file chunks so chat stays responsive
//! during a transfer. Reading and writing in separate tasks means two friends sending each
//! other large files at once can never block each other.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use peerchat_proto::limits::{HANDSHAKE_TIMEOUT, IDLE_PING_AFTER, IDLE_TIMEOUT};
use peerchat_proto::message::ConnectPeerOk;
use peerchat_proto::message::PeerFrame;
use peerchat_proto::wire::{self, peer_message::Body, ChannelKind, CloseReason};
use peerchat_proto::{Channel, ChannelReader, ChannelWriter, LocalIdentity, Role};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::hello::{check_dialled_key, check_hello, friend_for_key, HelloError};
use super::net::{connect_from, connect_from_port};
use super::registry::ConnId;
use super::traversal::{ConnectFailure, LinkPath, StepId};
use crate::friends::FriendBook;

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
        /// Why.
        reason: String,
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
        reason: String,
    },
}

/// The sending side of a connection, held by the core.
#[derive(Debug, Clone)]
pub struct PeerLink {
    /// The connection.
    pub conn: ConnId,
    ctl: mpsc::UnboundedSender<wire::PeerMessage>,
    /// Bulk queue for file chunks (bounded: the pump waits when the socket is slow).
    pub bulk: mpsc::Sender<wire::PeerMessage>,
    stop: CancellationToken,
}

impl PeerLink {
    /// Queues a frame ahead of file chunks.
    pub fn send(&self, frame: peerchat_proto::message::PeerFrame) {
        let _ = self.ctl.send(frame.into());
    }

    /// Sends Close{reason} and ends the connection.
    pub fn close(&self, reason: CloseReason, message: &str) {
        let _ = self.ctl.send(close(reason, message));
        self.stop.cancel();
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
    tokio::spawn(async move {
        let cancel = ctx.cancel.clone();
        cancel
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
                let fail = |reason: String| PeerEvent::DialFailed {
                    friend: friend.clone(),
                    step: spec.step,
                    reason,
                };
                let Some((addr, chan)) = won else {
                    let reason = if errors.is_empty() {
                        "no address to dial".to_owned()
                    } else {
                        errors.join("; ")
                    };
                    let _ = ctx.events.send(fail(reason)).await;
                    return;
                };
                if let Err(e) = run(
                    chan,
                    ctx.clone(),
                    addr,
                    Some(friend.clone()),
                    Some(spec.path),
                )
                .await
                {
                    let _ = ctx.events.send(fail(format!("{addr}: {e}"))).await;
                }
            })
            .await;
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
) -> (SocketAddr, Result<Channel<TcpStream>, String>) {
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

/// Runs an accepted connection (after its handshake).
pub async fn run_accepted<S>(chan: Channel<S>, ctx: SessionContext, addr: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let fingerprint = chan.remote.identity_key.fingerprint().to_string();
    if let Err(e) = run(chan, ctx.clone(), addr, None, None).await {
        tracing::info!(%addr, %fingerprint, error = %e, "peer refused");
        let _ = ctx
            .events
            .send(PeerEvent::Refused {
                fingerprint,
                addr,
                reason: e.to_string(),
            })
            .await;
    }
}

/// Hello exchange, then the reader loop (the writer runs in its own task). `dialled` is the
/// friend we dialled (or relay to), or None for an accepted connection; the handshake role
/// decides who sends PeerHello first (SPEC.md §4.7 rule 5, §7.2). Errors are hello failures
/// (the connection was closed with NOT_A_FRIEND or PROTOCOL_ERROR, or it broke).
pub(crate) async fn run<S>(
    chan: Channel<S>,
    ctx: SessionContext,
    addr: SocketAddr,
    dialled: Option<String>,
    path: Option<LinkPath>,
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
    let book = ctx.book();
    let Some(me) = ctx.me() else {
        return refuse(
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
    let friend = match expected {
        Ok(f) => f,
        Err(e) => return refuse(&mut writer, CloseReason::NotAFriend, e).await,
    };
    let hello = wire::PeerMessage::from(PeerFrame::Hello {
        userid: me.clone(),
        to_userid: friend.clone(),
    });
    // The initiator speaks first; the responder answers only after accepting its hello
    // (SPEC.md §7.2 rules 3-4).
    if initiator {
        writer
            .send(&hello)
            .await
            .map_err(|e| HelloError::Connection(e.to_string()))?;
    }
    let first =
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.recv::<wire::PeerMessage>()).await {
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => return Err(HelloError::Connection("closed before PeerHello".into())),
            Ok(Err(e)) => return Err(HelloError::Connection(e.to_string())),
            Err(_) => {
                return refuse(
                    &mut writer,
                    CloseReason::ProtocolError,
                    HelloError::Connection("no PeerHello in time".into()),
                )
                .await
            }
        };
    match PeerFrame::try_from(first) {
        Ok(PeerFrame::Hello { userid, to_userid }) => {
            match check_hello(&book, &remote.identity_key, &me, &userid, &to_userid) {
                Ok(f) if f.eq_ignore_ascii_case(&friend) => {}
                Ok(f) => {
                    return refuse(
                        &mut writer,
                        CloseReason::NotAFriend,
                        HelloError::WrongUser(f),
                    )
                    .await
                }
                Err(e) => return refuse(&mut writer, CloseReason::NotAFriend, e).await,
            }
        }
        Ok(PeerFrame::Close { reason, message }) => {
            return Err(HelloError::Connection(format!(
                "closed by the remote: {reason:?} {message}"
            )))
        }
        _ => {
            return refuse(
                &mut writer,
                CloseReason::ProtocolError,
                HelloError::NotHello,
            )
            .await
        }
    }
    if !initiator {
        writer
            .send(&hello)
            .await
            .map_err(|e| HelloError::Connection(e.to_string()))?;
    }

    let conn = ConnId(ctx.next_conn.fetch_add(1, Ordering::Relaxed));
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let (bulk_tx, bulk_rx) = mpsc::channel(BULK_QUEUE);
    let stop = ctx.cancel.child_token();
    tokio::spawn(write_loop(writer, ctl_rx, bulk_rx));
    let link = PeerLink {
        conn,
        ctl: ctl_tx.clone(),
        bulk: bulk_tx,
        stop: stop.clone(),
    };
    tracing::debug!(%addr, %friend, ?conn, "peer connection up");
    let up = PeerEvent::Up {
        conn,
        friend,
        initiated_by_me: initiator,
        addr,
        path,
        link,
    };
    if ctx.events.send(up).await.is_err() {
        return Ok(());
    }
    let reason = read_loop(reader, &ctx, conn, ctl_tx, stop).await;
    let _ = ctx.events.send(PeerEvent::Down { conn, reason }).await;
    Ok(())
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: ChannelReader<R>,
    ctx: &SessionContext,
    conn: ConnId,
    ctl: mpsc::UnboundedSender<wire::PeerMessage>,
    stop: CancellationToken,
) -> String {
    let mut last = Instant::now();
    let mut pinged = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = stop.cancelled() => return "closed locally".into(),
            r = reader.recv::<wire::PeerMessage>() => {
                last = Instant::now();
                pinged = false;
                let m = match r {
                    Ok(Some(m)) => m,
                    Ok(None) => return "connection closed by the friend".into(),
                    Err(e) => {
                        if let Some(reason) = e.close_reason() {
                            let _ = ctl.send(close(reason, &e.to_string()));
                        }
                        return e.to_string();
                    }
                };
                match PeerFrame::try_from(m) {
                    Ok(PeerFrame::Ping(n)) => { let _ = ctl.send(PeerFrame::Pong(n).into()); }
                    Ok(PeerFrame::Pong(_) | PeerFrame::Unknown) => {}
                    Ok(PeerFrame::Hello { .. }) => {
                        let _ = ctl.send(close(CloseReason::ProtocolError, "PeerHello sent twice"));
                        return "protocol error: PeerHello sent twice".into();
                    }
                    Ok(PeerFrame::Close { reason, message }) => return format!("closed by the friend: {reason:?} {message}"),
                    Ok(frame) => {
                        if ctx.events.send(PeerEvent::Frame { conn, frame }).await.is_err() {
                            return "client stopped".into();
                        }
                    }
                    Err(e) => {
                        let _ = ctl.send(close(CloseReason::ProtocolError, &e.to_string()));
                        return format!("protocol error: {e}");
                    }
                }
            }
            _ = tick.tick() => {
                let idle = last.elapsed();
                if idle >= IDLE_TIMEOUT {
                    let _ = ctl.send(close(CloseReason::IdleTimeout, "nothing received for too long"));
                    return "idle timeout".into();
                }
                if idle >= IDLE_PING_AFTER && !pinged {
                    pinged = true;
                    let _ = ctl.send(PeerFrame::Ping(rand::random()).into());
                }
            }
        }
    }
}

/// Sends control frames first, then file chunks; batches control frames into one flush;
/// ends after sending a Close or when every sender is gone.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: ChannelWriter<W>,
    mut ctl: mpsc::UnboundedReceiver<wire::PeerMessage>,
    mut bulk: mpsc::Receiver<wire::PeerMessage>,
) {
    loop {
        let msg = tokio::select! {
            biased;
            m = ctl.recv() => match m {
                Some(m) => m,
                None => break,
            },
            Some(m) = bulk.recv() => m,
        };
        let mut closing = matches!(msg.body, Some(Body::Close(_)));
        if let Err(e) = writer.queue(&msg) {
            tracing::warn!(error = %e, "peer frame not sendable");
        }
        while !closing {
            let Ok(m) = ctl.try_recv() else { break };
            closing = matches!(m.body, Some(Body::Close(_)));
            let _ = writer.queue(&m);
        }
        if writer.flush().await.is_err() || closing {
            break;
        }
    }
    let _ = writer.shutdown().await;
}

async fn refuse<W: AsyncWrite + Unpin>(
    writer: &mut ChannelWriter<W>,
    reason: CloseReason,
    e: HelloError,
) -> Result<(), HelloError> {
    let _ = writer.send(&close(reason, &e.to_string())).await;
    let _ = writer.shutdown().await;
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
