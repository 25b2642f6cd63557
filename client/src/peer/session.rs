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

use peerchat_proto::limits::{HANDSHAKE_TIMEOUT, IDLE_PING_AFTER, IDLE_TIMEOUT};
use peerchat_proto::message::PeerFrame;
use peerchat_proto::wire::{self, peer_message::Body, ChannelKind, CloseReason};
use peerchat_proto::{Channel, ChannelReader, ChannelWriter, LocalIdentity};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::hello::{check_dialled_key, check_hello, friend_for_key, HelloError};
use super::registry::ConnId;
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
        /// We dialled it.
        initiated_by_me: bool,
        /// The remote address (for a dialled connection: the friend's listening address).
        addr: SocketAddr,
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
}

impl SessionContext {
    fn me(&self) -> Option<String> {
        self.me.read().ok().and_then(|m| m.clone())
    }

    fn book(&self) -> FriendBook {
        self.book.read().map(|b| b.clone()).unwrap_or_default()
    }
}

/// Dials `friend` at `addr` in the background; reports Up or DialFailed.
pub fn spawn_dial(ctx: SessionContext, friend: String, addr: SocketAddr) {
    tokio::spawn(async move {
        let cancel = ctx.cancel.clone();
        cancel
            .run_until_cancelled(async {
                let fail = |reason: String| PeerEvent::DialFailed {
                    friend: friend.clone(),
                    reason,
                };
                // Only the friend being dialled may learn who we are: its key is checked
                // before handshake message 3 (SPEC.md §4.2 step 5, §7.2).
                let book = ctx.book();
                let accept =
                    |k: &peerchat_proto::IdentityKey| check_dialled_key(&book, &friend, k).is_ok();
                let chan =
                    match Channel::connect_verified(addr, &ctx.local, ChannelKind::Peer, accept)
                        .await
                    {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ctx.events.send(fail(format!("{addr}: {e}"))).await;
                            return;
                        }
                    };
                if let Err(e) = run(chan, ctx.clone(), addr, Some(friend.clone())).await {
                    let _ = ctx.events.send(fail(format!("{addr}: {e}"))).await;
                }
            })
            .await;
    });
}

/// Runs an accepted connection (after its handshake).
pub async fn run_accepted<S>(chan: Channel<S>, ctx: SessionContext, addr: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let fingerprint = chan.remote.identity_key.fingerprint().to_string();
    if let Err(e) = run(chan, ctx.clone(), addr, None).await {
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
/// friend we dialled, or None for an accepted connection. Errors are hello failures (the
/// connection was closed with NOT_A_FRIEND or PROTOCOL_ERROR, or it broke).
async fn run<S>(
    chan: Channel<S>,
    ctx: SessionContext,
    addr: SocketAddr,
    dialled: Option<String>,
) -> Result<(), HelloError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Channel {
        mut reader,
        mut writer,
        remote,
        ..
    } = chan;
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
    // The dialler speaks first; the acceptor answers only after accepting its hello
    // (SPEC.md §7.2 rules 3-4).
    if dialled.is_some() {
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
    if dialled.is_none() {
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
        initiated_by_me: dialled.is_some(),
        addr,
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
