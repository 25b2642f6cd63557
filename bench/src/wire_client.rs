//! A minimal client-server connection over the protocol crate's [`Channel`]: what the scale
//! and rate scenarios need, and nothing of the client core (no profile, no history, no peer
//! listener), so that 10,000 of them fit in one process.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use anyhow::{bail, Context as _};
use peerchat_proto::limits::HANDSHAKE_TIMEOUT;
use peerchat_proto::message::{Request, Secret};
use peerchat_proto::wire::{
    self, client_message, push, response, server_message, ChannelKind, ClientMessage,
};
use peerchat_proto::{Channel, LocalIdentity, Role};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Loopback source addresses the clients are spread over: 127.1.0.1 … 127.250.249.1.
/// Each address has its own ephemeral-port range, so 50,000 connections (and the TIME_WAIT
/// sockets of the rate scenario) never exhaust ports.
const SOURCES: usize = 250 * 250;

/// The loopback source address for connection number `i`: round robin over [`SOURCES`]
/// addresses, so that consecutive connections come from different addresses.
///
/// Why round robin and not blocks of consecutive numbers: the server reserves a login
/// attempt per source address *before* the work and counts it as a failure until it
/// succeeds (SPEC.md §5.1.7 rules 3–4, `LOGIN_FAIL_IP_MAX` = 50 per address). When 200
/// consecutive connections shared an address, the 64 KeyLogins scenario 3 keeps in flight
/// all came from one address, and whenever more than 50 of them were at the server at once
/// the rest were answered RATE_LIMITED — the "sometimes" of the earlier runs. Round robin
/// puts at most ⌈64 / addresses⌉ of them on one address.
pub fn source_ip(i: usize) -> Ipv4Addr {
    let j = i % SOURCES;
    Ipv4Addr::new(127, 1 + (j / 250) as u8, (j % 250) as u8 + 1, 1)
}

/// Opens a TCP connection from `src` (port chosen by the kernel) to `server`.
///
/// # Errors
/// Socket errors.
pub async fn tcp_from(src: Ipv4Addr, server: SocketAddr) -> anyhow::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::from((src, 0)))
        .with_context(|| format!("bind {src}:0"))?;
    let stream = sock.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Connects from `src` and runs the client-server handshake.
///
/// # Errors
/// Socket and handshake errors.
pub async fn connect(
    src: Ipv4Addr,
    server: SocketAddr,
    local: &LocalIdentity,
) -> anyhow::Result<Channel<TcpStream>> {
    let stream = tcp_from(src, server).await?;
    Ok(Channel::handshake(
        stream,
        local,
        Role::Initiator,
        ChannelKind::ClientServer,
        HANDSHAKE_TIMEOUT,
    )
    .await?)
}

/// A KeyLogin request.
pub fn key_login(userid: &str) -> Request {
    Request::KeyLogin {
        userid: userid.into(),
        endpoint: None,
        announcement: Default::default(),
    }
}

/// A password Login request.
pub fn login(userid: &str, password: &str) -> Request {
    Request::Login {
        userid: userid.into(),
        password: Secret(password.into()),
        endpoint: None,
        announcement: Default::default(),
    }
}

/// Sends `req` as request `id` and waits for its response, answering Pings and skipping
/// pushes meanwhile.
///
/// # Errors
/// An error response, a Close, EOF or a channel error.
pub async fn request(
    ch: &mut Channel<TcpStream>,
    id: u64,
    req: Request,
) -> anyhow::Result<response::Result> {
    ch.writer.send(&req.into_message(id)).await?;
    loop {
        let Some(msg) = ch.reader.recv::<wire::ServerMessage>().await? else {
            bail!("server closed the connection");
        };
        match msg.body {
            Some(server_message::Body::Response(r)) if r.request_id == id => {
                return match r.result {
                    Some(response::Result::Error(e)) => {
                        bail!("server answered {:?}: {}", e.code(), e.message)
                    }
                    Some(ok) => Ok(ok),
                    None => bail!("empty response"),
                };
            }
            Some(server_message::Body::Ping(p)) => pong(ch, p.nonce).await?,
            Some(server_message::Body::Close(c)) => {
                bail!("server closed: {:?}: {}", c.reason(), c.message)
            }
            _ => {}
        }
    }
}

async fn pong(ch: &mut Channel<TcpStream>, nonce: u64) -> anyhow::Result<()> {
    ch.writer
        .send(&ClientMessage {
            request_id: 0,
            body: Some(client_message::Body::Pong(wire::Pong { nonce })),
        })
        .await?;
    Ok(())
}

/// A presence push seen by an idle client.
#[derive(Debug, Clone)]
pub struct PresenceSeen {
    /// The friend the push is about.
    pub friend: String,
    /// FriendOnline (true) or FriendOffline (false).
    pub online: bool,
    /// When the client task decoded it.
    pub at: Instant,
}

/// Keeps a logged-in connection alive (answering Pings) and reports every presence push to
/// `seen`, until `stop` or the server closes.
pub async fn idle(
    ch: Channel<TcpStream>,
    seen: mpsc::UnboundedSender<PresenceSeen>,
    stop: CancellationToken,
) {
    idle_with(
        ch,
        move |p| {
            let _ = seen.send(p);
            true
        },
        stop,
    )
    .await;
}

/// As [`idle`], handing each presence push to `report` (which returns false to stop).
pub async fn idle_with(
    mut ch: Channel<TcpStream>,
    mut report: impl FnMut(PresenceSeen) -> bool + Send,
    stop: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return,
            m = ch.reader.recv::<wire::ServerMessage>() => m,
        };
        let Ok(Some(msg)) = msg else { return };
        match msg.body {
            Some(server_message::Body::Push(p)) => {
                let at = Instant::now();
                let (friend, online) = match p.body {
                    Some(push::Body::FriendOnline(f)) => (f.userid, true),
                    Some(push::Body::FriendOffline(f)) => (f.userid, false),
                    _ => continue,
                };
                if !report(PresenceSeen { friend, online, at }) {
                    return;
                }
            }
            Some(server_message::Body::Ping(p)) if pong(&mut ch, p.nonce).await.is_err() => return,
            Some(server_message::Body::Close(_)) => return,
            _ => {}
        }
    }
}

/// One Ping/Pong round trip on a logged-in or anonymous connection.
///
/// # Errors
/// A Close, EOF or a channel error.
pub async fn ping(ch: &mut Channel<TcpStream>, nonce: u64) -> anyhow::Result<()> {
    ch.writer
        .send(&ClientMessage {
            request_id: 0,
            body: Some(client_message::Body::Ping(wire::Ping { nonce })),
        })
        .await?;
    loop {
        let Some(msg) = ch.reader.recv::<wire::ServerMessage>().await? else {
            bail!("server closed the connection");
        };
        match msg.body {
            Some(server_message::Body::Pong(p)) if p.nonce == nonce => return Ok(()),
            Some(server_message::Body::Ping(p)) => pong(ch, p.nonce).await?,
            Some(server_message::Body::Close(c)) => {
                bail!("server closed: {:?}: {}", c.reason(), c.message)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_connections_use_different_loopback_addresses() {
        let a: std::collections::BTreeSet<Ipv4Addr> = (0..64).map(source_ip).collect();
        assert_eq!(a.len(), 64, "64 in flight: 64 addresses");
        for i in [0, 1, 249, 250, SOURCES - 1, SOURCES, 1_000_000] {
            let ip = source_ip(i);
            assert!(ip.is_loopback() && ip.octets()[1] >= 1, "{ip}");
            assert_ne!(ip.octets()[3], 0);
        }
        assert_eq!(source_ip(SOURCES), source_ip(0));
    }
}
