//! One client connection: handshake, then the read loop that runs requests in order, plus a
//! writer task that drains the connection's bounded outbound queue (SPEC.md §3, §4.6).
//!
//! The read loop owns all per-connection state (login state, request bucket, idle timers),
//! so requests of one connection run strictly one after the other and their responses leave
//! in request order. Everything another task may do to this connection — push a frame or
//! stop it — goes through its [`Outbox`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use peerchat_proto::channel::ChannelWriter;
use peerchat_proto::message::{ClientFrame, RequestError, ServerFrame};
use peerchat_proto::wire::{self, ChannelKind, CloseReason, ErrorCode};
use peerchat_proto::{Channel, LocalIdentity, Role};
use tokio::io::WriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

use crate::cmd;
use crate::hub::{Outbox, Stop};
use crate::ratelimit::TokenBucket;
use crate::rtt::RttEstimator;
use crate::state::{ConnState, Shared};

/// How long a side keeps reading (and discarding) after sending Close, so that unread input
/// does not turn the close into a reset that destroys the Close frame (SPEC.md §3.7); also
/// the bound on flushing a Close.
pub use peerchat_proto::limits::CLOSE_GRACE;
/// Most bytes the writer batches into one flush.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// Per-connection settings, copied from the config.
#[derive(Debug, Clone, Copy)]
pub struct ConnSettings {
    /// Handshake deadline.
    pub handshake_timeout: Duration,
    /// Longest time in Authenticating (after the handshake or a LogoutOk).
    pub login_deadline: Duration,
    /// Ping after this much silence.
    pub idle_ping_after: Duration,
    /// Close after this much silence.
    pub idle_timeout: Duration,
    /// Outbound queue size.
    pub outbound_queue: usize,
    /// Request bucket burst.
    pub request_burst: u32,
    /// Request bucket refill per second.
    pub request_rate_per_sec: u32,
    /// Consecutive rejections before closing with RATE_LIMITED.
    pub rate_limit_disconnect_after: u32,
}

/// Signals from the server to every connection.
#[derive(Debug, Clone)]
pub struct Signals {
    /// Graceful shutdown: finish the current request, send Close{SERVER_SHUTDOWN}.
    pub shutdown: CancellationToken,
    /// Abort: drop the socket at once (simulates a crash in tests).
    pub abort: CancellationToken,
}

/// Why the read loop ended.
enum End {
    /// Close with what [`Outbox::stopped`] says.
    Stopped,
    /// The server is aborting: drop everything now.
    Abort,
}

/// Serves one accepted TCP connection until it ends.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    local: LocalIdentity,
    settings: ConnSettings,
    signals: Signals,
) {
    let _ = stream.set_nodelay(true);
    // Boxed, like the request handlers below: a task's memory is its future's largest state,
    // and these large states are short-lived, so they live on the heap only while they run
    // instead of inflating every idle session (issue #14: RSS per session).
    let mut handshake = Box::pin(Channel::handshake(
        stream,
        &local,
        Role::Responder,
        ChannelKind::ClientServer,
        settings.handshake_timeout,
    ));
    let channel = tokio::select! {
        r = &mut handshake => r,
        _ = signals.abort.cancelled() => return,
        _ = signals.shutdown.cancelled() => {
            // A client that is just finishing its handshake should still learn why it is
            // closed; one that stalls does not hold up the shutdown for long.
            match timeout(CLOSE_GRACE, &mut handshake).await {
                Ok(r) => r,
                Err(_) => return,
            }
        }
    };
    drop(handshake);
    let channel = match channel {
        Ok(c) => c,
        Err(e) => {
            // Nothing can be sent before transport keys exist: close silently (SPEC.md §4.2).
            tracing::debug!(%peer, error = %e, "handshake failed");
            return;
        }
    };
    if channel.remote.channel_kind == ChannelKind::Relay {
        // SPEC.md §4.6: a relay connection never enters Authenticating (§7.7).
        Box::pin(crate::relay::serve(channel, peer, shared, signals)).await;
        return;
    }
    let Channel {
        mut reader,
        writer,
        remote,
        ..
    } = channel;
    tracing::debug!(%peer, fingerprint = %remote.identity_key.fingerprint(), "connection established");

    let (outbox, rx) = Outbox::new(settings.outbound_queue);
    let writer_task = tokio::spawn(write_loop(writer, rx, outbox.subscribe()));
    let mut stop_rx = outbox.subscribe();
    let mut conn = ConnState {
        peer_addr: peer,
        identity_key: remote.identity_key,
        outbox,
        login: None,
        finish_login: false,
        notice_ack: None,
    };
    let mut bucket = TokenBucket::new(
        settings.request_burst,
        settings.request_rate_per_sec,
        std::time::Instant::now(),
    );
    let mut rejected_in_row: u32 = 0;
    let mut last_rx = Instant::now();
    let mut next_ping = last_rx + settings.idle_ping_after;
    let mut ping_nonce: u64 = 0;
    // LOGIN_DEADLINE (SPEC.md §4.6): runs while Authenticating, from the handshake or the
    // LogoutOk; nothing but a login stops it, so Pings cannot keep an idle slot.
    let mut login_by: Option<Instant> = None;
    let mut rtt = RttEstimator::new();

    let end = loop {
        // Between requests an idle session holds no read buffer (issue #14: RSS per session).
        reader.release_idle_buffers();
        match (&conn.login, login_by) {
            (Some(_), _) => login_by = None,
            (None, None) => login_by = Some(Instant::now() + settings.login_deadline),
            (None, Some(_)) => {}
        }
        let deadline = next_ping.min(last_rx + settings.idle_timeout);
        let deadline = login_by.map_or(deadline, |t| deadline.min(t));
        tokio::select! {
            biased;
            _ = signals.abort.cancelled() => break End::Abort,
            _ = stop_rx.changed() => break End::Stopped,
            _ = signals.shutdown.cancelled() => {
                conn.outbox.stop(Stop::Close(CloseReason::ServerShutdown, "the server is shutting down".into()));
                break End::Stopped;
            }
            frame = reader.recv::<wire::ClientMessage>() => {
                let msg = match frame {
                    Ok(Some(m)) => m,
                    Ok(None) => {
                        conn.outbox.stop(Stop::Silent);
                        break End::Stopped;
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "connection read failed");
                        conn.outbox.stop(match e.close_reason() {
                            Some(reason) => Stop::Close(reason, e.to_string()),
                            None => Stop::Silent,
                        });
                        break End::Stopped;
                    }
                };
                last_rx = Instant::now();
                next_ping = last_rx + settings.idle_ping_after;
                // Taken from the raw body: the state check precedes field validation (§4.6).
                let state = cmd::state_check(msg.body.as_ref(), conn.login.is_some());
                match ClientFrame::from(msg) {
                    ClientFrame::Ping(nonce) => {
                        conn.outbox.send_frame(&ServerFrame::Pong(nonce));
                    }
                    ClientFrame::Pong(nonce) => {
                        note_pong(&conn, &mut rtt, nonce);
                        Box::pin(cmd::auth::acknowledge_notices(&shared, &mut conn, nonce)).await;
                    }
                    ClientFrame::Close { reason, .. } => {
                        tracing::debug!(%peer, ?reason, "client closed");
                        conn.outbox.stop(Stop::Silent);
                        break End::Stopped;
                    }
                    ClientFrame::Unsupported { id } => {
                        if admit(&shared, &mut conn, &mut bucket, &mut rejected_in_row, id, settings) {
                            respond(&conn, id, Err(RequestError::new(ErrorCode::UnsupportedRequest, "unknown or empty request")));
                        }
                    }
                    ClientFrame::Request { id, request } => {
                        if !admit(&shared, &mut conn, &mut bucket, &mut rejected_in_row, id, settings) {
                            // Rejected (and maybe stopped): the stop branch ends the loop.
                            continue;
                        }
                        let reply = if id == 0 {
                            Err(RequestError::new(ErrorCode::InvalidRequest, "request_id must not be 0"))
                        } else if let Err(e) = state {
                            Err(e)
                        } else {
                            match request {
                                Err(e) => Err(RequestError::new(ErrorCode::InvalidRequest, e.to_string())),
                                Ok(req) => Box::pin(cmd::dispatch(&shared, &mut conn, req)).await,
                            }
                        };
                        respond(&conn, id, reply);
                        if conn.finish_login {
                            Box::pin(cmd::auth::finish_login(&shared, &mut conn)).await;
                            ping_after_login(&conn, &mut rtt, &mut ping_nonce);
                        }
                    }
                }
            }
            _ = sleep_until(deadline) => {
                if login_by.is_some_and(|t| Instant::now() >= t) {
                    conn.outbox.stop(Stop::Close(CloseReason::IdleTimeout, "not logged in within the login deadline".into()));
                    break End::Stopped;
                }
                if Instant::now() >= last_rx + settings.idle_timeout {
                    conn.outbox.stop(Stop::Close(CloseReason::IdleTimeout, "nothing received for too long".into()));
                    break End::Stopped;
                }
                if Instant::now() < next_ping {
                    continue;
                }
                ping_nonce += 1;
                conn.outbox.send_frame(&ServerFrame::Ping(ping_nonce));
                rtt.ping_sent(ping_nonce, std::time::Instant::now());
                next_ping += settings.idle_ping_after;
            }
        }
    };

    if let End::Abort = end {
        writer_task.abort();
        return;
    }
    if let Some(login) = conn.login.take() {
        if signals.shutdown.is_cancelled() {
            // Everyone is being disconnected: nobody is left to tell.
            login.handle.close();
        } else {
            Box::pin(cmd::auth::end_session(&shared, &login)).await;
        }
        tracing::info!(userid = %login.handle.userid, %peer, "session ended");
    }
    let sent_close = matches!(conn.outbox.stopped(), Some(Stop::Close(..)));
    drop(conn);
    // Keep reading (and discarding) while the writer sends Close, then a little longer
    // (SPEC.md §3.7).
    let drain = async { while let Ok(Some(_)) = reader.recv_frame().await {} };
    if sent_close {
        let _ = timeout(CLOSE_GRACE * 3, async {
            let _ = tokio::join!(writer_task, timeout(CLOSE_GRACE, drain));
        })
        .await;
    } else {
        let _ = timeout(CLOSE_GRACE, writer_task).await;
    }
}

/// Sends the Ping right after LoginOk that gives a new session its first round-trip time
/// (SPEC.md §7.6), and hands the session any estimate the connection already has.
fn ping_after_login(conn: &ConnState, rtt: &mut RttEstimator, ping_nonce: &mut u64) {
    let Some(login) = &conn.login else {
        return;
    };
    login.handle.set_rtt(rtt.estimate());
    *ping_nonce += 1;
    conn.outbox.send_frame(&ServerFrame::Ping(*ping_nonce));
    rtt.ping_sent(*ping_nonce, std::time::Instant::now());
}

/// Times a Pong that answers one of our Pings and stores the estimate in the session.
fn note_pong(conn: &ConnState, rtt: &mut RttEstimator, nonce: u64) {
    if let Some(estimate) = rtt.pong_received(nonce, std::time::Instant::now()) {
        if let Some(login) = &conn.login {
            login.handle.set_rtt(Some(estimate));
        }
    }
}

/// Takes a token from the request bucket. Over the limit: answers RATE_LIMITED and, after
/// too many rejections in a row, stops the connection. Returns whether to process.
fn admit(
    shared: &Shared,
    conn: &mut ConnState,
    bucket: &mut TokenBucket,
    rejected_in_row: &mut u32,
    id: u64,
    settings: ConnSettings,
) -> bool {
    // Fault switch for the conformance suite's self-test: no request bucket.
    if shared.faults.no_rate_limit() {
        return true;
    }
    match bucket.try_take(std::time::Instant::now()) {
        Ok(()) => {
            *rejected_in_row = 0;
            true
        }
        Err(wait) => {
            *rejected_in_row += 1;
            respond(conn, id, Err(cmd::rate_limited(wait)));
            if *rejected_in_row >= settings.rate_limit_disconnect_after {
                conn.outbox.stop(Stop::Close(
                    CloseReason::RateLimited,
                    "too many requests".into(),
                ));
            }
            false
        }
    }
}

fn respond(conn: &ConnState, request_id: u64, result: cmd::Reply) {
    conn.outbox
        .send_frame(&ServerFrame::Response { request_id, result });
}

/// Writes queued frames, batching whatever is queued into few records, until the queue's
/// senders are gone or the connection is stopped; then sends Close if asked to.
async fn write_loop(
    mut w: ChannelWriter<WriteHalf<TcpStream>>,
    mut rx: mpsc::Receiver<crate::hub::Queued>,
    mut stop: watch::Receiver<Option<Stop>>,
) {
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            msg = rx.recv() => {
                let Some(msg) = msg else {
                    let _ = w.flush().await;
                    let _ = w.shutdown().await;
                    return;
                };
                if w.queue(&msg).is_err() {
                    return;
                }
                while w.pending_len() < WRITE_BATCH_BYTES {
                    let Ok(more) = rx.try_recv() else { break };
                    if w.queue(&more).is_err() {
                        return;
                    }
                }
                let flushed = {
                    let flush = w.flush();
                    tokio::pin!(flush);
                    tokio::select! {
                        r = &mut flush => Some(r.is_ok()),
                        _ = stop.changed() => {
                            // Stopped mid-write. A slow consumer cannot be waited for; anyone
                            // else gets a moment to take the rest before Close.
                            let how = stop.borrow().clone();
                            if matches!(how, Some(Stop::Close(CloseReason::SlowConsumer, _)) | Some(Stop::Silent) | None) {
                                return;
                            }
                            match timeout(CLOSE_GRACE, &mut flush).await {
                                Ok(Ok(())) => None,
                                _ => return,
                            }
                        }
                    }
                };
                match flushed {
                    Some(true) => {
                        if rx.is_empty() {
                            // Nothing more to write for now: an idle session keeps no write
                            // buffers (issue #14: RSS per session).
                            w.release_idle_buffers();
                        }
                    }
                    Some(false) => return,
                    None => break,
                }
            }
        }
    }
    // Stopped.
    let how = stop.borrow().clone();
    if let Some(Stop::Close(reason, message)) = how {
        if reason != CloseReason::SlowConsumer {
            while let Ok(m) = rx.try_recv() {
                if w.queue(&m).is_err() {
                    return;
                }
            }
        }
        if w.queue(&ServerFrame::Close { reason, message }.to_message())
            .is_err()
        {
            return;
        }
        let _ = timeout(CLOSE_GRACE, async {
            let _ = w.flush().await;
            let _ = w.shutdown().await;
        })
        .await;
    } else {
        let _ = timeout(CLOSE_GRACE, w.shutdown()).await;
    }
}
