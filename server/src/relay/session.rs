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
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::timeout;

use super::splice::{self, SpliceParams, Tap};
use super::Slot;
use crate::cmd::{err, lookup};
use crate::connection::{Signals, CLOSE_GRACE};
use crate::db::entity::account;
use crate::hub::SessionHandle;
use crate::state::Shared;

/// What a joining relay connection hands the waiting opener.
pub struct Joiner {
    channel: Channel<TcpStream>,
    request_id: u64,
    slot: Slot<Joiner>,
    /// Dropped when the link ends: the joiner's task (which holds the connection's slot under
    /// MAX_CONNECTIONS) waits for it.
    done: oneshot::Sender<()>,
}

impl std::fmt::Debug for Joiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joiner")
            .field("request_id", &self.request_id)
            .field("user", &self.slot.user)
            .finish_non_exhaustive()
    }
}

/// A RelayOpen that passed every check up to the token.
struct Admitted {
    me: account::Model,
    friend: account::Model,
    friend_session: Arc<SessionHandle>,
    slot: Slot<Joiner>,
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
        Some(token) => join(channel, id, admitted, token, &shared).await,
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
    let session = match shared.hub.get(&me.userid_lower) {
        Some(s) => s,
        // In a cluster the session may be on another node: a relay splices two connections
        // of one node, so answer as if the friend were offline (SPEC.md §6.11 rule 7).
        None if shared.hub.is_online(&me.userid_lower) => {
            return Err(err(
                ErrorCode::PeerOffline,
                "your session is on another node of this cluster; no relay here",
            ))
        }
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
    let friend_session = shared
        .hub
        .get(&friend.userid_lower)
        .ok_or_else(|| err(ErrorCode::PeerOffline, "this friend is not logged in"))?;
    let slot = shared
        .relays
        .registry
        .admit(&me.userid_lower, &friend.userid_lower, session.session_id)
        .map_err(|e| err(ErrorCode::LimitExceeded, e.to_string()))?;
    // A session that ended between the look-up and the admission fired its switches before
    // this slot existed: check again now that it does.
    if shared.hub.get(&me.userid_lower).map(|s| s.session_id) != Some(session.session_id) {
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
/// and waits until the link ends.
async fn join(
    channel: Channel<TcpStream>,
    id: u64,
    a: Admitted,
    token: TraversalId,
    shared: &Shared,
) {
    let expired = || {
        err(
            ErrorCode::RelayExpired,
            "no relay from this friend waits for you under this token",
        )
    };
    let Some(tx) =
        shared
            .relays
            .registry
            .take_waiting(&token, &a.me.userid_lower, &a.friend.userid_lower)
    else {
        refuse(channel, id, expired()).await;
        return;
    };
    let (done, finished) = oneshot::channel::<()>();
    let joiner = Joiner {
        channel,
        request_id: id,
        slot: a.slot,
        done,
    };
    match tx.send(joiner) {
        Ok(()) => {
            let _ = finished.await;
        }
        // The opener left at this very moment.
        Err(j) => refuse(j.channel, id, expired()).await,
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
    a.friend_session.push(&PushEvent::RelayInvite {
        userid: a.me.userid.clone(),
        token,
    });
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

    let Joiner {
        channel: mut other,
        request_id: other_id,
        slot: other_slot,
        done,
    } = joiner;
    let ok = |request_id| {
        ServerFrame::Response {
            request_id,
            result: Ok(ResponseBody::RelayOpen),
        }
        .to_message()
    };
    let answered = timeout(settings.open_timeout, async {
        channel.writer.send(&ok(id)).await?;
        other.writer.send(&ok(other_id)).await
    })
    .await;
    if !matches!(answered, Ok(Ok(()))) {
        return;
    }
    // RelayOpenOk was the last record of the server's Noise session on both connections.
    let (Ok((opener, opener_left)), Ok((joiner, joiner_left))) =
        (channel.into_inner(), other.into_inner())
    else {
        return;
    };
    let link = shared.relays.next_link();
    #[cfg(feature = "test-hooks")]
    let tap = match &settings.tap {
        Some(dir) => Tap::to_dir(dir.clone(), link),
        None => Tap::none(),
    };
    #[cfg(not(feature = "test-hooks"))]
    let tap = Tap::none();
    let params = SpliceParams {
        link_rate: settings.link_rate,
        server: shared.relays.server_bucket.clone(),
        idle_timeout: settings.idle_timeout,
        tap,
        tamper: shared.faults.relay_tamper,
    };
    tracing::info!(link, opener = %a.me.userid, joiner = %a.friend.userid, "relay link open");
    let stop = async {
        tokio::select! {
            _ = a.slot.stop.cancelled() => {}
            _ = other_slot.stop.cancelled() => {}
            _ = signals.shutdown.cancelled() => {}
            _ = signals.abort.cancelled() => {}
        }
    };
    let (ended, to_joiner, to_opener) = splice::run(
        splice::End {
            stream: opener,
            leftover: opener_left,
        },
        splice::End {
            stream: joiner,
            leftover: joiner_left,
        },
        params,
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
