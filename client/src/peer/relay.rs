//! The relay client (SPEC.md §7.7): a `CHANNEL_KIND_RELAY` connection to the server whose
//! only request is `RelayOpen`; after `RelayOpenOk` the connection carries a byte stream to
//! the friend, on which the two clients run their own peer handshake and peer session, so the
//! server forwards ciphertext of a Noise session it is not part of.
//!
//! The opener (empty token) is the peer handshake's initiator, the joiner (the token of a
//! `RelayInvite`) its responder, exactly as if the opener had dialled the joiner.

use std::net::SocketAddr;
use std::time::Duration;

use peerchat_proto::limits::{HANDSHAKE_TIMEOUT, RELAY_JOIN_TIMEOUT};
use peerchat_proto::message::{Request, ResponseBody, ServerFrame, TraversalId};
use peerchat_proto::wire::{self, ChannelKind};
use peerchat_proto::{Channel, Role};
use tokio::net::TcpStream;

use super::hello::check_dialled_key;
use super::session::{run, PeerEvent, SessionContext};
use super::traversal::{LinkPath, StepId};
use crate::server_session::dial_server;

/// How much longer than the server's join time-out the opener waits for its answer.
const ANSWER_SLACK: Duration = Duration::from_secs(5);

/// Opens (`token` None) or joins (`token` Some) a relay to `friend` (registered spelling) in
/// the background; reports Up (path relayed) or RelayFailed with `step`.
pub fn spawn_relay(
    ctx: SessionContext,
    friend: String,
    token: Option<TraversalId>,
    step: Option<StepId>,
) {
    ctx.links.clone().spawn(async move {
        let cancel = ctx.cancel.clone();
        let failed = |reason: String| {
            tracing::info!(%friend, %reason, "relay failed");
            PeerEvent::RelayFailed {
                friend: friend.clone(),
                step,
                reason,
            }
        };
        // A shutdown drops the relay until its peer handshake is done; after it the session
        // closes NORMAL itself (SPEC.md §8.5.1 L53).
        let opened = match cancel.run_until_cancelled(open(&ctx, &friend, token)).await {
            None => return,
            Some(Ok(opened)) => opened,
            Some(Err(reason)) => {
                let _ = ctx.events.send(failed(reason)).await;
                return;
            }
        };
        let (peer, server_addr, hello_by) = opened;
        let ran = run(
            peer,
            ctx.clone(),
            server_addr,
            Some(friend.clone()),
            Some(LinkPath::Relayed),
            hello_by,
        )
        .await;
        if let Err(e) = ran {
            if !cancel.is_cancelled() {
                let _ = ctx.events.send(failed(e.to_string())).await;
            }
        }
    });
}

/// Opens or joins the relay and runs the peer handshake through it: the channel, the
/// server's address and when the friend's hello is due.
async fn open(
    ctx: &SessionContext,
    friend: &str,
    token: Option<TraversalId>,
) -> Result<(Channel<TcpStream>, SocketAddr, tokio::time::Instant), String> {
    let me = ctx.me().ok_or("not logged in")?;
    let (mut chan, _, server_addr) = dial_server(&ctx.server, &ctx.local, ChannelKind::Relay, None)
        .await
        .map_err(|e| e.to_string())?;
    let open = Request::RelayOpen {
        userid: me,
        peer_userid: friend.to_owned(),
        token,
    };
    // The first and only frame; nothing else is sent until the answer (SPEC.md §7.7).
    chan.writer
        .send(&open.into_message(1))
        .await
        .map_err(|e| e.to_string())?;
    let wait = RELAY_JOIN_TIMEOUT + ANSWER_SLACK;
    tokio::time::timeout(wait, async {
        loop {
            let msg = chan
                .reader
                .recv::<wire::ServerMessage>()
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the server closed the relay connection")?;
            match ServerFrame::try_from(msg).map_err(|e| e.to_string())? {
                ServerFrame::Response {
                    result: Ok(ResponseBody::RelayOpen),
                    ..
                } => return Ok(()),
                ServerFrame::Response { result: Err(e), .. } => {
                    return Err(format!("the server refused the relay: {e}"))
                }
                ServerFrame::Close { reason, message } => {
                    return Err(format!("the server closed the relay: {reason:?} {message}"))
                }
                // A relay connection answers no Ping (it may send only RelayOpen); the
                // server does not expect one either.
                ServerFrame::Ping(_) | ServerFrame::Pong(_) | ServerFrame::Unknown => {}
                other => return Err(format!("unexpected frame before RelayOpenOk: {other:?}")),
            }
        }
    })
    .await
    .map_err(|_| format!("no answer to RelayOpen within {wait:?}"))??;
    // RelayOpenOk was the server's last record; what follows is the friend's stream.
    let (stream, already_read) = chan.into_inner().map_err(|e| e.to_string())?;
    let role = if token.is_none() {
        Role::Initiator
    } else {
        Role::Responder
    };
    // The relayed stream starts here: its hello is due HANDSHAKE_TIMEOUT from now (L18).
    let hello_by = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let book = ctx.book();
    let accept = |k: &peerchat_proto::IdentityKey| check_dialled_key(&book, friend, k).is_ok();
    let peer = Channel::handshake_verified(
        stream,
        already_read,
        &ctx.local,
        role,
        ChannelKind::Peer,
        HANDSHAKE_TIMEOUT,
        accept,
    )
    .await
    .map_err(|e| format!("peer handshake through the relay: {e}"))?;
    Ok((peer, server_addr, hello_by))
}
