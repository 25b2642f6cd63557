//! The PROXY protocol header (HAProxy's `send-proxy-v2` / `send-proxy`), read before the
//! handshake on a listener started with `--proxy-protocol` (SPEC.md §10, docs/DEPLOY.md).
//!
//! Behind a TCP load balancer the server sees the balancer's address as every client's; the
//! balancer's PROXY header names the client's. That address then is the connection's
//! observed endpoint (NAT traversal, §7.5) and the key of every per-address limit.
//!
//! Sans-IO: [`parse`] looks at the bytes read so far and says how many more it needs, or
//! what the header said and how long it was; [`read_header`] drives it on a socket, reading
//! exactly the header and never a byte of the handshake after it.
//!
//! Version 2 (binary): 12-byte signature, version/command byte, family/transport byte, a
//! big-endian length and that many bytes of addresses and TLVs (ignored). `LOCAL` (the
//! balancer's own health check) and `UNSPEC` families keep the socket's address. Version 1
//! (text): `PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n`, at most 107 bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};

/// The version 2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest version 2 header accepted (SPEC.md §10 `PROXY_HEADER_MAX`): addresses of any
/// family and the TLVs HAProxy sends by default fit with room to spare.
pub const V2_MAX: usize = peerchat_proto::limits::PROXY_HEADER_MAX;
/// Longest version 1 line, CRLF included (the protocol's own bound).
pub const V1_MAX: usize = 107;

/// Why a connection's PROXY header was refused; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// Neither signature: the connection did not come through the balancer.
    #[error("no PROXY protocol header")]
    Missing,
    /// A version 2 header with another version nibble or an unknown command.
    #[error("unsupported PROXY v2 version or command {0:#04x}")]
    BadVersion(u8),
    /// The header announces more than [`V2_MAX`] bytes, or a v1 line runs past [`V1_MAX`].
    #[error("PROXY header longer than {0} bytes")]
    TooLong(usize),
    /// The address block is shorter than its family needs, or the v1 line does not parse.
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
    /// The connection ended or stalled before the header was complete.
    #[error("PROXY header incomplete: {0}")]
    Truncated(String),
}

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The client's address; `None` keeps the socket's (LOCAL, UNSPEC, UNKNOWN).
    pub source: Option<SocketAddr>,
    /// Header length in bytes.
    pub len: usize,
}

/// Progress of [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// At least this many more bytes are needed.
    Need(usize),
    /// The header is complete.
    Done(Header),
}

/// Parses the header at the start of `buf` (all bytes read so far).
///
/// # Errors
/// [`ProxyError`] as soon as the bytes cannot begin a valid header.
pub fn parse(buf: &[u8]) -> Result<Progress, ProxyError> {
    const V1_PREFIX: &[u8] = b"PROXY ";
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return parse_v2(buf);
    }
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] == V1_PREFIX[..n] {
        return parse_v1(buf);
    }
    Err(ProxyError::Missing)
}

fn parse_v2(buf: &[u8]) -> Result<Progress, ProxyError> {
    if buf.len() < 16 {
        return Ok(Progress::Need(16 - buf.len()));
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 || ver_cmd & 0x0f > 1 {
        return Err(ProxyError::BadVersion(ver_cmd));
    }
    let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > V2_MAX {
        return Err(ProxyError::TooLong(V2_MAX));
    }
    if buf.len() < len {
        return Ok(Progress::Need(len - buf.len()));
    }
    let body = &buf[16..len];
    let local = ver_cmd & 0x0f == 0;
    let source = match (local, buf[13]) {
        (true, _) => None,
        // TCP over IPv4, and UDP (accepted: only the address is used).
        (false, 0x11 | 0x12) => {
            let b = body
                .get(..12)
                .ok_or(ProxyError::Malformed("short IPv4 address block"))?;
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([b[8], b[9]]),
            ))
        }
        (false, 0x21 | 0x22) => {
            let b = body
                .get(..36)
                .ok_or(ProxyError::Malformed("short IPv6 address block"))?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&b[..16]);
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                u16::from_be_bytes([b[32], b[33]]),
            ))
        }
        // UNSPEC and unix sockets: no usable client address.
        (false, _) => None,
    };
    Ok(Progress::Done(Header { source, len }))
}

fn parse_v1(buf: &[u8]) -> Result<Progress, ProxyError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= V1_MAX {
            return Err(ProxyError::TooLong(V1_MAX));
        }
        return Ok(Progress::Need(1));
    };
    let len = end + 2;
    if len > V1_MAX {
        return Err(ProxyError::TooLong(V1_MAX));
    }
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| ProxyError::Malformed("not text"))?;
    let mut parts = line.split(' ');
    let _proxy = parts.next();
    let bad = || ProxyError::Malformed("bad v1 line");
    let source = match parts.next() {
        Some("UNKNOWN") => None,
        Some(fam @ ("TCP4" | "TCP6")) => {
            let src: IpAddr = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let _dst: IpAddr = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let sport: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let _dport: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            if parts.next().is_some() || (fam == "TCP4") != src.is_ipv4() {
                return Err(bad());
            }
            Some(SocketAddr::new(src, sport))
        }
        _ => return Err(bad()),
    };
    Ok(Progress::Done(Header { source, len }))
}

/// Reads the header from `r`, exactly, within `limit`.
///
/// # Errors
/// [`ProxyError`]; the caller closes the connection.
pub async fn read_header<R: AsyncRead + Unpin>(
    r: &mut R,
    limit: Duration,
) -> Result<Header, ProxyError> {
    let read = async {
        // 8 bytes tell the versions apart and are shorter than any complete header.
        let mut buf = vec![0u8; 8];
        r.read_exact(&mut buf)
            .await
            .map_err(|e| ProxyError::Truncated(e.to_string()))?;
        loop {
            match parse(&buf)? {
                Progress::Done(h) => return Ok(h),
                Progress::Need(n) => {
                    let at = buf.len();
                    buf.resize(at + n, 0);
                    r.read_exact(&mut buf[at..])
                        .await
                        .map_err(|e| ProxyError::Truncated(e.to_string()))?;
                }
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .map_err(|_| ProxyError::Truncated("timed out".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn v4_body() -> Vec<u8> {
        let mut b = vec![203, 0, 113, 7, 10, 0, 0, 5];
        b.extend_from_slice(&51234u16.to_be_bytes());
        b.extend_from_slice(&7878u16.to_be_bytes());
        b
    }

    #[test]
    fn v2_tcp4_and_tcp6_give_the_client_address() {
        let mut h = v2(1, 0x11, &v4_body());
        let len = h.len();
        h.extend_from_slice(b"handshake bytes");
        assert_eq!(
            parse(&h),
            Ok(Progress::Done(Header {
                source: Some("203.0.113.7:51234".parse().unwrap()),
                len
            }))
        );
        let mut b6 = Vec::new();
        b6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        b6.extend_from_slice(&[0; 16]);
        b6.extend_from_slice(&4000u16.to_be_bytes());
        b6.extend_from_slice(&7878u16.to_be_bytes());
        b6.extend_from_slice(&[0x04, 0, 1, 0]); // a TLV, ignored
        let h6 = v2(1, 0x21, &b6);
        assert_eq!(
            parse(&h6),
            Ok(Progress::Done(Header {
                source: Some("[2001:db8::1]:4000".parse().unwrap()),
                len: h6.len()
            }))
        );
    }

    #[test]
    fn v2_local_and_unspec_keep_the_socket_address() {
        let h = v2(0, 0x11, &v4_body());
        assert_eq!(
            parse(&h),
            Ok(Progress::Done(Header {
                source: None,
                len: h.len()
            }))
        );
        let h = v2(1, 0x00, &[]);
        assert_eq!(
            parse(&h),
            Ok(Progress::Done(Header {
                source: None,
                len: 16
            }))
        );
    }

    #[test]
    fn truncated_headers_ask_for_more() {
        let h = v2(1, 0x11, &v4_body());
        for cut in 1..h.len() {
            assert!(
                matches!(parse(&h[..cut]), Ok(Progress::Need(n)) if n >= 1 && cut + n <= h.len()),
                "cut at {cut}: {:?}",
                parse(&h[..cut])
            );
        }
        let v1 = b"PROXY TCP4 198.51.100.2 10.0.0.5 40000 7878\r\n";
        for cut in 1..v1.len() {
            assert_eq!(parse(&v1[..cut]), Ok(Progress::Need(1)), "cut at {cut}");
        }
    }

    #[test]
    fn oversized_headers_are_refused() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11]);
        h.extend_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(parse(&h), Err(ProxyError::TooLong(V2_MAX)));
        let long = format!("PROXY TCP4 {}", "1".repeat(200));
        assert_eq!(parse(long.as_bytes()), Err(ProxyError::TooLong(V1_MAX)));
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(parse(b"\x00\x01noise handshake"), Err(ProxyError::Missing));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyError::Missing));
        let mut h = v2(1, 0x11, &v4_body());
        h[12] = 0x31; // version 3
        assert_eq!(parse(&h), Err(ProxyError::BadVersion(0x31)));
        h[12] = 0x25; // command 5
        assert_eq!(parse(&h), Err(ProxyError::BadVersion(0x25)));
        let short = v2(1, 0x11, &[1, 2, 3]);
        assert!(matches!(parse(&short), Err(ProxyError::Malformed(_))));
        let short6 = v2(1, 0x21, &v4_body());
        assert!(matches!(parse(&short6), Err(ProxyError::Malformed(_))));
        for line in [
            "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            "PROXY TCP4 ::1 ::1 1 2\r\n",
            "PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 extra\r\n",
        ] {
            assert!(
                matches!(parse(line.as_bytes()), Err(ProxyError::Malformed(_))),
                "{line:?}"
            );
        }
    }

    #[test]
    fn v1_lines_parse() {
        let l = b"PROXY TCP6 2001:db8::2 2001:db8::1 4001 7878\r\nrest";
        assert_eq!(
            parse(l),
            Ok(Progress::Done(Header {
                source: Some("[2001:db8::2]:4001".parse().unwrap()),
                len: l.len() - 4
            }))
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Ok(Progress::Done(Header {
                source: None,
                len: 15
            }))
        );
    }

    #[tokio::test]
    async fn read_header_stops_at_the_header() {
        let mut bytes = v2(1, 0x11, &v4_body());
        bytes.extend_from_slice(b"NEXT");
        let mut r = &bytes[..];
        let h = read_header(&mut r, Duration::from_secs(1)).await.unwrap();
        assert_eq!(h.source, Some("203.0.113.7:51234".parse().unwrap()));
        assert_eq!(r, b"NEXT");
        let mut short = &bytes[..20];
        assert!(matches!(
            read_header(&mut short, Duration::from_secs(1)).await,
            Err(ProxyError::Truncated(_))
        ));
        let mut v1 = &b"PROXY UNKNOWN\r\nNEXT"[..];
        assert_eq!(
            read_header(&mut v1, Duration::from_secs(1))
                .await
                .unwrap()
                .source,
            None
        );
        assert_eq!(v1, b"NEXT");
    }
}
