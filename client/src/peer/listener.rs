//! The peer listener: accepts TCP connections from friends on the port announced to the
//! server, runs the responder side of the handshake, and hands the connection to a
//! session task, which refuses identities that are not friends (SPEC.md §7.2).

use std::net::SocketAddr;

use peerchat_proto::limits::HANDSHAKE_TIMEOUT;
use peerchat_proto::wire::ChannelKind;
use peerchat_proto::{Channel, Role};
use tokio::net::{TcpListener, TcpStream};

use super::session::{run_accepted, SessionContext};

/// Accepts connections until the context is cancelled.
pub async fn run(listener: TcpListener, ctx: SessionContext) {
    let cancel = ctx.cancel.clone();
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment instead of spinning.
                tracing::warn!(error = %e, "peer accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        ctx.links.clone().spawn(async move {
            let cancel = ctx.cancel.clone();
            // A shutdown drops the handshake; after it the session closes NORMAL itself
            // (SPEC.md §8.5.1 L53).
            let Some(Some((chan, hello_by))) = cancel
                .run_until_cancelled(handshake(stream, addr, &ctx))
                .await
            else {
                return;
            };
            run_accepted(chan, ctx, addr, hello_by).await;
        });
    }
}

/// The responder's Noise handshake; the channel and when the friend's hello is due.
async fn handshake(
    stream: TcpStream,
    addr: SocketAddr,
    ctx: &SessionContext,
) -> Option<(Channel<TcpStream>, tokio::time::Instant)> {
    let _ = stream.set_nodelay(true);
    // The hello is due HANDSHAKE_TIMEOUT after the accept (SPEC.md §8.5.1 L18, audit D14).
    let hello_by = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    match Channel::handshake(
        stream,
        &ctx.local,
        Role::Responder,
        ChannelKind::Peer,
        HANDSHAKE_TIMEOUT,
    )
    .await
    {
        Ok(chan) => Some((chan, hello_by)),
        Err(e) => {
            tracing::info!(%addr, error = %e, "peer handshake failed");
            None
        }
    }
}
