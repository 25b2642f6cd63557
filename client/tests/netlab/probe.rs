//! Raw TCP probes inside lab namespaces, for checking the routers themselves.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use super::ns::Netns;

/// A TCP socket in `ns` bound to `0.0.0.0:port` with SO_REUSEADDR and SO_REUSEPORT, as a
/// peer binds its listening port again to dial from it.
fn socket_in(ns: &Netns, port: u16) -> Socket {
    ns.within(|| -> io::Result<Socket> {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
        Ok(s)
    })
    .unwrap_or_else(|e| panic!("socket in {}: {e}", ns.name()))
}

/// Connects from `ns`, source port `from_port`, to `to`, giving up after `timeout`.
///
/// # Errors
/// The connect error: `TimedOut` when SYNs went unanswered (dropped), `ConnectionRefused`
/// when an RST came back.
pub fn dial(
    ns: &Netns,
    from_port: u16,
    to: SocketAddrV4,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let s = socket_in(ns, from_port);
    s.connect_timeout(&SocketAddr::V4(to).into(), timeout)?;
    Ok(s.into())
}

/// A listener in `ns` on `at` (SO_REUSEPORT, so dials from the same port can coexist).
pub fn listen(ns: &Netns, at: SocketAddrV4) -> TcpListener {
    let s = ns
        .within(|| -> io::Result<Socket> {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            s.set_reuse_address(true)?;
            s.set_reuse_port(true)?;
            s.bind(&SocketAddr::V4(at).into())?;
            s.listen(16)?;
            Ok(s)
        })
        .unwrap_or_else(|e| panic!("listen in {} on {at}: {e}", ns.name()));
    s.into()
}
