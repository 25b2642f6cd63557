//! One relay connection (SPEC.md §7.7): after a handshake with `CHANNEL_KIND_RELAY` the
//! client's first frame must be `RelayOpen`; the server checks it in the SPEC's order, then
//! either holds the opener until the invited friend joins (or `RELAY_JOIN_TIMEOUT` passes),
//! or hands the joiner's connection to the waiting opener. The opener's task answers
//! `RelayOpenOk` on both connections, ends both Noise sessions and runs the splice.
//!
//! The relay connection never enters Authenticating: it proves the account by its identity
//! key (the handshake) and a logged-in session of that account.

use std::net::SocketAddr;
use std::sync::Arc;

use peerchat_proto::message::{
    ClientFrame, PushEvent, Request, RequestError, ResponseBody, ServerFrame, TraversalId,
};
use peerchat_proto::wire::{self, client_message::Body, CloseReason, ErrorCode};
use peerchat_proto::{Channel, IdentityKey};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::timeout;

use super::splice::{self, SpliceParams, Tap};
use super::{SessionKey, Slot};
use crate::cluster::link;
use crate::cmd::{err, lookup};
use crate::connection::{Signals, CLOSE_GRACE};
use crate::db::entity::account;
use crate::hub::SessionHandle;
use crate::state::Shared;

/// What a joiner hands the waiting opener: its relay connection on this node, or (in a
/// cluster) the link from the node that holds it (see [`crate::cluster::link`]).
pub enum Joiner {
    /// The joiner's relay connection reached this node.
    Local(Box<LocalJoiner>),
    /// The joiner's relay connection reached another node, which is linked to this one by
    /// this connection; its preamble is done. Write 1 once the opener is answered.
    Remote(TcpStream),
}

/// A joining relay connection of this node.
pub struct LocalJoiner {
    channel: Channel<TcpStream>,
    request_id: u64,
    slot: Slot<Joiner>,
    /// Dropped when the link ends: the joiner's task (which holds the connection's slot under
    /// MAX_CONNECTIONS) waits for it.
    done: oneshot::Sender<()>,
}

impl std::fmt::Debug for Joiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Joiner::Local(j) => f
                .debug_struct("Joiner::Local")
                .field("request_id", &j.request_id)
                .field("user", &j.slot.user)
                .finish_non_exhaustive(),
            Joiner::Remote(_) => f.write_str("Joiner::Remote"),
        }
    }
}

/// A RelayOpen that passed every check up to the token.
struct Admitted {
    me: account::Model,
    friend: account::Model,
    /// `None`: the friend's session is on another node of the cluster.
    friend_session: Option<Arc<SessionHandle>>,
    slot: Slot<Joiner>,
}

/// The session `userid_lower` is logged in under: here, or on another node.
fn session_key(shared: &Shared, userid_lower: &str) -> Option<SessionKey> {
    match shared.hub.get(userid_lower) {
        Some(s) => Some(SessionKey::Local(s.session_id)),
        None => shared
            .hub
            .remote_session(userid_lower)
            .map(|(node, id)| SessionKey::Remote(node, id)),
    }
}

/// Serves a connection whose handshake said `CHANNEL_KIND_RELAY`, until its link ends.
pub async fn serve(
    mut channel: Channel<TcpStream>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    signals: Signals,
) {
    let open_timeout = shared.relays.settings.open_timeout;
    let first = tokio::select! {
        r = timeout(open_timeout, channel.reader.recv::<wire::ClientMessage>()) => r,
        _ = signals.abort.cancelled() => return,
        _ = signals.shutdown.cancelled() => {
            close(channel, CloseReason::ServerShutdown, "the server is shutting down").await;
            return;
        }
    };
    let msg = match first {
        Ok(Ok(Some(m))) => m,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "relay connection read failed");
            if let Some(reason) = e.close_reason() {
                close(channel, reason, &e.to_string()).await;
            }
            return;
        }
        Err(_) => {
            close(channel, CloseReason::ProtocolError, "no RelayOpen in time").await;
            return;
        }
    };
    if !matches!(msg.body, Some(Body::RelayOpen(_))) {
        close(
            channel,
            CloseReason::ProtocolError,
            "the first frame on a relay connection must be RelayOpen",
        )
        .await;
        return;
    }
    let (id, request) = match ClientFrame::from(msg) {
        ClientFrame::Request { id, request } => (id, request),
        _ => return,
    };
    let (userid, peer_userid, token) = match request {
        Ok(Request::RelayOpen {
            userid,
            peer_userid,
            token,
        }) => (userid, peer_userid, token),
        Ok(_) => return,
        Err(e) => {
            refuse(channel, id, err(ErrorCode::InvalidRequest, e.to_string())).await;
            return;
        }
    };
    let admitted = match admit(&shared, &channel.remote.identity_key, &userid, &peer_userid).await {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(%peer, code = ?e.code, "relay refused");
            refuse(channel, id, e).await;
            return;
        }
    };
    match token {
        Some(token) => join(channel, id, admitted, token, &shared, &signals).await,
        None => open(channel, id, admitted, &shared, &signals).await,
    }
}

/// The checks of SPEC.md §7.7 from BAD_CREDENTIALS to LIMIT_EXCEEDED, in order.
async fn admit(
    shared: &Shared,
    key: &IdentityKey,
    userid: &str,
    peer_userid: &str,
) -> Result<Admitted, RequestError> {
    let bad = || {
        err(
            ErrorCode::BadCredentials,
            "unknown userid, not this account's key, or no logged-in session",
        )
    };
    let me = lookup(shared, userid).await?.ok_or_else(bad)?;
    if me.identity_key[..] != key.to_der()[..] {
        return Err(bad());
    }
    // In a cluster the session may be on another node; without node-to-node links
    // (`--cluster-listen`) a relay can only splice connections of this node, so answer as if
    // the friend were offline (SPEC.md §6.11 rule 7).
    let session = match session_key(shared, &me.userid_lower) {
        Some(SessionKey::Remote(..)) if shared.link.is_none() => {
            return Err(err(
                ErrorCode::PeerOffline,
                "your session is on another node of this cluster; no relay here",
            ))
        }
        Some(k) => k,
        None => return Err(bad()),
    };
    let not_friends = || err(ErrorCode::NotFriends, "this user is not your friend");
    let friend = lookup(shared, peer_userid).await?.ok_or_else(not_friends)?;
    // Fault switch for the conformance suite's self-test: relay strangers too.
    let friends =
        shared.faults.relay_strangers || shared.store.are_friends(me.id, friend.id).await?;
    if friend.id == me.id || !friends {
        return Err(not_friends());
    }
    let offline = || err(ErrorCode::PeerOffline, "this friend is not logged in");
    let friend_session = shared.hub.get(&friend.userid_lower);
    if friend_session.is_none()
        && (shared.link.is_none() || !shared.hub.is_online(&friend.userid_lower))
    {
        return Err(offline());
    }
    let slot = shared
        .relays
        .registry
        .admit(&me.userid_lower, &friend.userid_lower, session.clone())
        .map_err(|e| err(ErrorCode::LimitExceeded, e.to_string()))?;
    // A session that ended between the look-up and the admission fired its switches before
    // this slot existed: check again now that it does.
    if session_key(shared, &me.userid_lower) != Some(session) {
        return Err(bad());
    }
    Ok(Admitted {
        me,
        friend,
        friend_session,
        slot,
    })
}

/// Joins the relay `token` opened by the friend: hands this connection to the opener's task
/// and waits until the link ends. A relay opened on another node is joined over a link to
/// that node.
async fn join(
    channel: Channel<TcpStream>,
    id: u64,
    a: Admitted,
    token: TraversalId,
    shared: &Shared,
    signals: &Signals,
) {
    let Some(tx) =
        shared
            .relays
            .registry
            .take_waiting(&token, &a.me.userid_lower, &a.friend.userid_lower)
    else {
        join_remote(channel, id, a, token, shared, signals).await;
        return;
    };
    let (done, finished) = oneshot::channel::<()>();
    let joiner = Joiner::Local(Box::new(LocalJoiner {
        channel,
        request_id: id,
        slot: a.slot,
        done,
    }));
    match tx.send(joiner) {
        Ok(()) => {
            let _ = finished.await;
        }
        // The opener left at this very moment.
        Err(Joiner::Local(j)) => refuse(j.channel, id, expired_join()).await,
        Err(Joiner::Remote(_)) => {}
    }
}

fn expired_join() -> RequestError {
    err(
        ErrorCode::RelayExpired,
        "no relay from this friend waits for you under this token",
    )
}

/// Joins relay `token` opened on another node: dials that node's link listener, and once it
/// confirms, answers RelayOpenOk and splices this connection to the link.
async fn join_remote(
    mut channel: Channel<TcpStream>,
    id: u64,
    a: Admitted,
    token: TraversalId,
    shared: &Shared,
    signals: &Signals,
) {
    let Some(cfg) = &shared.link else {
        refuse(channel, id, expired_join()).await;
        return;
    };
    let patience = peerchat_proto::limits::RELAY_REMOTE_LOOKUP;
    let relay = match shared.relays.remote.take(&token, patience).await {
        Some(r) if r.opener == a.friend.userid_lower && r.invitee == a.me.userid_lower => r,
        _ => {
            refuse(channel, id, expired_join()).await;
            return;
        }
    };
    let req = link::JoinRequest {
        token,
        joiner: a.me.userid_lower.clone(),
        opener: a.friend.userid_lower.clone(),
    };
    let remote = match link::dial(relay.addr, &cfg.key, &req).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, addr = %relay.addr, "relay link refused");
            refuse(channel, id, expired_join()).await;
            return;
        }
    };
    let ok = ServerFrame::Response {
        request_id: id,
        result: Ok(ResponseBody::RelayOpen),
    }
    .to_message();
    let settings = &shared.relays.settings;
    if !matches!(
        timeout(settings.open_timeout, channel.writer.send(&ok)).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let Ok((joiner, joiner_left)) = channel.into_inner() else {
        return;
    };
    let link_no = shared.relays.next_link();
    tracing::info!(link = link_no, joiner = %a.me.userid, opener = %a.friend.userid, addr = %relay.addr, "relay link to another node open");
    let stop = async {
        tokio::select! {
            _ = a.slot.stop.cancelled() => {}
            _ = signals.shutdown.cancelled() => {}
            _ = signals.abort.cancelled() => {}
        }
    };
    let (ended, _, _) = splice::run(
        splice::End {
            stream: joiner,
            leftover: joiner_left,
        },
        splice::End {
            stream: remote,
            leftover: bytes::BytesMut::new(),
        },
        splice_params(shared, link_no),
        stop,
    )
    .await;
    tracing::info!(link = link_no, ?ended, "relay link to another node ended");
}

/// The listener side of a node-to-node relay link (SPEC.md §6.11 rule 7): checks the
/// preamble and hands the connection to the waiting opener, or answers 0.
pub async fn serve_link(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let Some(cfg) = &shared.link else {
        return;
    };
    let req = match link::accept(&mut stream, &cfg.key).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "relay link preamble refused");
            return;
        }
    };
    let Some(tx) = shared
        .relays
        .registry
        .take_waiting(&req.token, &req.joiner, &req.opener)
    else {
        let _ = timeout(CLOSE_GRACE, stream.write_all(&[0])).await;
        return;
    };
    if let Err(Joiner::Remote(mut s)) = tx.send(Joiner::Remote(stream)) {
        let _ = timeout(CLOSE_GRACE, s.write_all(&[0])).await;
    }
}

/// The rates, time-out and tap of relayed link number `link_no`.
fn splice_params(shared: &Shared, link_no: u64) -> SpliceParams {
    let settings = &shared.relays.settings;
    #[cfg(feature = "test-hooks")]
    let tap = match &settings.tap {
        Some(dir) => Tap::to_dir(dir.clone(), link_no),
        None => Tap::none(),
    };
    #[cfg(not(feature = "test-hooks"))]
    let tap = {
        let _ = link_no;
        Tap::none()
    };
    SpliceParams {
        link_rate: settings.link_rate,
        server: shared.relays.server_bucket.clone(),
        idle_timeout: settings.idle_timeout,
        tap,
        tamper: shared.faults.relay_tamper,
    }
}

/// Opens a relay to the friend: invites them, waits for their relay connection, then answers
/// both and splices.
async fn open(
    mut channel: Channel<TcpStream>,
    id: u64,
    a: Admitted,
    shared: &Shared,
    signals: &Signals,
) {
    let registry = &shared.relays.registry;
    let settings = &shared.relays.settings;
    let (token, mut rx) = registry.open(&a.me.userid_lower, &a.friend.userid_lower);
    // In a cluster the friend's relay connection may reach another node: tell every node
    // where this relay waits, before the invitation can reach the friend.
    if let (Some(cfg), Some(node)) = (&shared.link, shared.hub.node_name()) {
        shared
            .hub
            .publish(crate::cluster::BusMessage::RelayWaiting {
                node,
                token: hex::encode(token),
                addr: cfg.addr,
                opener: a.me.userid_lower.clone(),
                invitee: a.friend.userid_lower.clone(),
            });
    }
    let invite = PushEvent::RelayInvite {
        userid: a.me.userid.clone(),
        token,
    };
    match &a.friend_session {
        Some(s) => {
            s.push(&invite);
        }
        None => {
            shared.hub.push(&a.friend.userid_lower, &invite);
        }
    }
    let expired = || {
        err(
            ErrorCode::RelayExpired,
            "the friend did not join the relay in time",
        )
    };
    let deadline = tokio::time::sleep(settings.join_timeout);
    tokio::pin!(deadline);
    let joiner = tokio::select! {
        biased;
        _ = signals.abort.cancelled() => {
            registry.cancel_waiting(&token);
            return;
        }
        j = &mut rx => match j {
            Ok(j) => j,
            Err(_) => {
                refuse(channel, id, expired()).await;
                return;
            }
        },
        _ = &mut deadline => {
            if registry.cancel_waiting(&token) {
                refuse(channel, id, expired()).await;
                return;
            }
            // A joiner took the relay just now; its hand-over is already sent.
            match rx.await {
                Ok(j) => j,
                Err(_) => {
                    refuse(channel, id, expired()).await;
                    return;
                }
            }
        }
        _ = a.slot.stop.cancelled() => {
            registry.cancel_waiting(&token);
            return;
        }
        _ = signals.shutdown.cancelled() => {
            registry.cancel_waiting(&token);
            close(channel, CloseReason::ServerShutdown, "the server is shutting down").await;
            return;
        }
        r = channel.reader.recv_frame() => {
            registry.cancel_waiting(&token);
            if let Ok(Some(_)) = r {
                close(channel, CloseReason::ProtocolError, "data before RelayOpenOk").await;
            }
            return;
        }
    };

    let ok = |request_id| {
        ServerFrame::Response {
            request_id,
            result: Ok(ResponseBody::RelayOpen),
        }
        .to_message()
    };
    let (other_end, other_slot, done) = match joiner {
        Joiner::Local(j) => {
            let LocalJoiner {
                channel: mut other,
                request_id: other_id,
                slot: other_slot,
                done,
            } = *j;
            let answered = timeout(settings.open_timeout, async {
                channel.writer.send(&ok(id)).await?;
                other.writer.send(&ok(other_id)).await
            })
            .await;
            if !matches!(answered, Ok(Ok(()))) {
                return;
            }
            // RelayOpenOk was the last record of the server's Noise session on both.
            let Ok((stream, leftover)) = other.into_inner() else {
                return;
            };
            (
                splice::End { stream, leftover },
                Some(other_slot),
                Some(done),
            )
        }
        Joiner::Remote(mut stream) => {
            let answered = timeout(settings.open_timeout, async {
                channel.writer.send(&ok(id)).await.is_ok() && stream.write_all(&[1]).await.is_ok()
            })
            .await;
            if answered != Ok(true) {
                return;
            }
            let end = splice::End {
                stream,
                leftover: bytes::BytesMut::new(),
            };
            (end, None, None)
        }
    };
    let Ok((opener, opener_left)) = channel.into_inner() else {
        return;
    };
    let link = shared.relays.next_link();
    tracing::info!(link, opener = %a.me.userid, joiner = %a.friend.userid, "relay link open");
    let stop = async {
        let other_stop = async {
            match &other_slot {
                Some(s) => s.stop.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = a.slot.stop.cancelled() => {}
            _ = other_stop => {}
            _ = signals.shutdown.cancelled() => {}
            _ = signals.abort.cancelled() => {}
        }
    };
    let (ended, to_joiner, to_opener) = splice::run(
        splice::End {
            stream: opener,
            leftover: opener_left,
        },
        other_end,
        splice_params(shared, link),
        stop,
    )
    .await;
    tracing::info!(link, ?ended, to_joiner, to_opener, "relay link ended");
    drop(other_slot);
    drop(done);
}

/// Answers the RelayOpen with an error, then closes with NORMAL (SPEC.md §7.7).
async fn refuse(mut channel: Channel<TcpStream>, id: u64, e: RequestError) {
    let response = ServerFrame::Response {
        request_id: id,
        result: Err(e),
    };
    if channel.writer.queue(&response.to_message()).is_err() {
        return;
    }
    close(channel, CloseReason::Normal, "relay refused").await;
}

/// Sends Close (after anything queued), half-closes and drains for CLOSE_GRACE (SPEC.md §3.7).
async fn close(mut channel: Channel<TcpStream>, reason: CloseReason, message: &str) {
    let frame = ServerFrame::Close {
        reason,
        message: message.to_owned(),
    };
    let _ = timeout(CLOSE_GRACE, async {
        let _ = channel.writer.send(&frame.to_message()).await;
        let _ = channel.writer.shutdown().await;
    })
    .await;
    let _ = timeout(CLOSE_GRACE, async {
        while let Ok(Some(_)) = channel.reader.recv_frame().await {}
    })
    .await;
}
