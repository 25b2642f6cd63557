//! Sockets for NAT traversal (SPEC.md §7.5): a peer listener and outgoing connections that
//! share one local port, and the host candidates a client announces.
//!
//! The server connection and hole-punching dials leave from the listener's port, so the
//! mapping a NAT gives them is the one friends can reach the listener through. That needs
//! `SO_REUSEADDR` and `SO_REUSEPORT` on every socket bound to the port, set before `bind`,
//! which is why these are built with [`tokio::net::TcpSocket`] rather than
//! `TcpListener::bind` / `TcpStream::connect`.
//!
//! A top-level module, not part of `peer`: the server session needs it too, and the peer
//! layer uses the server session (relays), so living in either would make them a cycle.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use peerchat_proto::limits::MAX_HOST_CANDIDATES;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Pending connections the listener's kernel queue holds.
const LISTEN_BACKLOG: u32 = 128;

fn reusable_socket(addr: SocketAddr) -> io::Result<TcpSocket> {
    let s = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    s.set_reuseaddr(true)?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    s.set_reuseport(true)?;
    Ok(s)
}

/// Binds the peer listener with `SO_REUSEADDR` and `SO_REUSEPORT`, so that outgoing
/// connections may later be bound to the same port.
///
/// # Errors
/// Socket, bind and listen errors.
pub fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = reusable_socket(addr)?;
    s.bind(addr)?;
    s.listen(LISTEN_BACKLOG)
}

/// Connects to `remote` within `timeout`, from the local address `from` (the listener's, with
/// port reuse) when given and of the same address family, else from an ephemeral port.
/// Returns whether the stream really left from `from` (binding can fail, for example when
/// the exact four-tuple is already in use).
///
/// # Errors
/// Connect errors and [`io::ErrorKind::TimedOut`].
pub async fn connect_from(
    from: Option<SocketAddr>,
    remote: SocketAddr,
    timeout: Duration,
) -> io::Result<(TcpStream, bool)> {
    let deadline = tokio::time::Instant::now() + timeout;
    if let Some(local) = from.filter(|l| l.is_ipv4() == remote.is_ipv4()) {
        // Any failure from the listening port — the four-tuple still exists (a punch that
        // formed the other way, our previous server connection in TIME_WAIT), or a NAT that
        // still maps that tuple to a connection the server holds in TIME_WAIT and so never
        // answers (seen in the NAT lab behind `masquerade random`) — falls back to an ephemeral
        // port within the same time budget. Being reachable through the NAT is worth one try,
        // never the connection.
        let first = timeout.min(LISTENER_CONNECT_TIMEOUT);
        match tokio::time::timeout(first, connect_bound(local, remote)).await {
            Ok(Ok(stream)) => {
                stream.set_nodelay(true)?;
                return Ok((stream, true));
            }
            Ok(Err(e)) => {
                tracing::debug!(%local, %remote, error = %e, "cannot connect from the listening port")
            }
            Err(_) => tracing::debug!(%local, %remote, "connect from the listening port timed out"),
        }
    }
    let stream = tokio::time::timeout_at(deadline, TcpStream::connect(remote))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok((stream, false))
}

/// Connects to `remote` within `timeout` from exactly `local` (the listening port, with port
/// reuse), with no fallback: a hole punch from any other port would open a mapping the
/// friend is not dialling (SPEC.md §7.6), so a failure is the caller's to retry or report.
///
/// # Errors
/// Socket, bind and connect errors (a refusal as [`io::ErrorKind::ConnectionRefused`]) and
/// [`io::ErrorKind::TimedOut`].
pub async fn connect_from_port(
    local: SocketAddr,
    remote: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, connect_bound(local, remote))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// How long a connect from the listening port may take before the ephemeral fallback.
const LISTENER_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

async fn connect_bound(local: SocketAddr, remote: SocketAddr) -> io::Result<TcpStream> {
    let s = reusable_socket(local)?;
    s.bind(local)?;
    s.connect(remote).await
}

/// The address of the interface the system would use to reach `server` (no packet is sent:
/// connecting a UDP socket only picks a route).
pub fn route_source(server: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = std::net::UdpSocket::bind(any).ok()?;
    sock.connect(server).ok()?;
    sock.local_addr().ok().map(|a| a.ip())
}

/// The host candidates to announce (SPEC.md §7.5): the listener's own address if it is bound
/// to one, else the interface address toward the server (`route_source`), each with the
/// listening port. Loopback only when the server is on loopback too (friends elsewhere
/// cannot use it); never unspecified or multicast; at most MAX_HOST_CANDIDATES.
pub fn host_candidates(
    listen: SocketAddr,
    route_source: Option<IpAddr>,
    server: IpAddr,
) -> Vec<SocketAddr> {
    let mut ips: Vec<IpAddr> = Vec::new();
    if listen.ip().is_unspecified() {
        ips.extend(route_source);
        if server.is_loopback() {
            ips.push(match server {
                IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
    } else {
        ips.push(listen.ip());
    }
    let mut out: Vec<SocketAddr> = Vec::new();
    for ip in ips {
        let usable = !ip.is_unspecified()
            && !ip.is_multicast()
            && (!ip.is_loopback() || server.is_loopback());
        let a = SocketAddr::new(ip, listen.port());
        if usable && !out.contains(&a) {
            out.push(a);
        }
    }
    out.truncate(MAX_HOST_CANDIDATES);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_candidates_follow_the_listener_and_the_route() {
        let any: SocketAddr = "0.0.0.0:4000".parse().unwrap();
        assert_eq!(
            host_candidates(any, Some(ip("10.0.0.2")), ip("198.51.100.7")),
            vec!["10.0.0.2:4000".parse().unwrap()]
        );
        // Loopback only toward a loopback server.
        assert_eq!(
            host_candidates(any, Some(ip("127.0.0.1")), ip("198.51.100.7")),
            Vec::<SocketAddr>::new()
        );
        assert_eq!(
            host_candidates(any, Some(ip("127.0.0.1")), ip("127.0.0.1")),
            vec!["127.0.0.1:4000".parse().unwrap()]
        );
        let bound: SocketAddr = "192.168.1.5:4001".parse().unwrap();
        assert_eq!(
            host_candidates(bound, Some(ip("10.0.0.2")), ip("198.51.100.7")),
            vec![bound]
        );
        let lo: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        assert!(host_candidates(lo, None, ip("198.51.100.7")).is_empty());
    }

    #[tokio::test]
    async fn a_connection_can_leave_from_the_listening_port() {
        let l = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let la = l.local_addr().unwrap();
        let target = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let ta = target.local_addr().unwrap();
        let (s, from) = connect_from(Some(la), ta, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(from);
        assert_eq!(s.local_addr().unwrap(), la);
        let (_, seen) = target.accept().await.unwrap();
        assert_eq!(seen, la);
        // The listener still accepts while that connection exists.
        let c = TcpStream::connect(la).await.unwrap();
        let (_, peer) = l.accept().await.unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
    }
}
