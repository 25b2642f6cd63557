//! Relay links between the nodes of a cluster (SPEC.md §6.11 rule 7, docs/DEPLOY.md).
//!
//! A relay whose two relay connections reach different nodes is spliced node to node: the
//! opener's node X announces the waiting relay on the bus ([`super::BusMessage::RelayWaiting`],
//! with X's `--cluster-listen` address); the joiner's node Z dials that address, proves it
//! belongs to the cluster, and names the relay; X hands the TCP connection to the waiting
//! opener as the other end of its splice, and Z splices the joiner's connection to it. Only
//! the peers' own end-to-end Noise records cross this link after the preamble.
//!
//! The preamble (X is the listener, Z the dialler):
//!
//! 1. X → Z: a 16-byte random challenge.
//! 2. Z → X: `token (16) | len (1) | joiner userid | len (1) | opener userid | mac (32)`, where
//!    `mac = HMAC-SHA256(link key, "peerchat relay link v1" | challenge | token | len | joiner |
//!    len | opener)`.
//! 3. X → Z: one byte, 1 when the relay was joined (then relayed bytes follow), 0 when no
//!    such relay waits (any other end also means no).
//!
//! The link key is derived from the server's private identity key, which every node holds
//! (SPEC.md §6.11 rule 1): no second secret to distribute, and nobody without the server key
//! can attach to a relay. The challenge makes a recorded preamble useless later.

use std::net::SocketAddr;
use std::time::Duration;

use peerchat_proto::message::TraversalId;
use ring::hmac;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Longest userid a preamble may carry: a userid's limit (SPEC.md §10 `USERID_MAX_LEN`).
pub const NAME_MAX: usize = peerchat_proto::limits::USERID_MAX_LEN;
/// How long the preamble may take, either side.
pub const PREAMBLE_TIMEOUT: Duration = peerchat_proto::limits::HANDSHAKE_TIMEOUT;

const DOMAIN: &[u8] = b"peerchat relay link v1";

/// The key node-to-node links are authenticated with.
#[derive(Clone)]
pub struct LinkKey(hmac::Key);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

impl LinkKey {
    /// Derives the key from the server's private key (its PKCS#8 PEM), which every node of a
    /// cluster holds.
    pub fn derive(server_key_pem: &str) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"peerchat cluster link key v1\0");
        ctx.update(server_key_pem.as_bytes());
        Self(hmac::Key::new(hmac::HMAC_SHA256, ctx.finish().as_ref()))
    }
}

/// This node's end of the links: the key and the address the other nodes dial.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Shared by every node.
    pub key: LinkKey,
    /// Where this node's link listener is reachable (`--cluster-listen`).
    pub addr: SocketAddr,
}

/// Why a link preamble failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The socket failed.
    #[error("relay link I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The other side took longer than [`PREAMBLE_TIMEOUT`].
    #[error("relay link preamble timed out")]
    Timeout,
    /// A name is empty or longer than [`NAME_MAX`].
    #[error("relay link preamble malformed")]
    Malformed,
    /// The MAC does not verify: not a node of this cluster.
    #[error("relay link not authenticated")]
    BadMac,
    /// The opener's node has no such relay waiting.
    #[error("no such relay waits on that node")]
    Refused,
}

/// What a dialler asks for: relay `token`, opened by `opener` for `joiner`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The relay token of the RelayInvite.
    pub token: TraversalId,
    /// Lowercase userid of the joiner.
    pub joiner: String,
    /// Lowercase userid of the opener.
    pub opener: String,
}

fn mac_input(challenge: &[u8; 16], req: &JoinRequest) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 16 + 16 + 2 + 2 * NAME_MAX);
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(challenge);
    m.extend_from_slice(&encode_names(req));
    m
}

fn encode_names(req: &JoinRequest) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + 2 + req.joiner.len() + req.opener.len());
    m.extend_from_slice(&req.token);
    for name in [&req.joiner, &req.opener] {
        m.push(name.len() as u8);
        m.extend_from_slice(name.as_bytes());
    }
    m
}

/// Encodes the dialler's message (step 2).
///
/// # Errors
/// [`LinkError::Malformed`] if a name is empty or too long.
pub fn encode_request(
    key: &LinkKey,
    challenge: &[u8; 16],
    req: &JoinRequest,
) -> Result<Vec<u8>, LinkError> {
    if [&req.joiner, &req.opener]
        .iter()
        .any(|n| n.is_empty() || n.len() > NAME_MAX)
    {
        return Err(LinkError::Malformed);
    }
    let mut out = encode_names(req);
    out.extend_from_slice(hmac::sign(&key.0, &mac_input(challenge, req)).as_ref());
    Ok(out)
}

/// Reads and checks the dialler's message (step 2) from `r`.
///
/// # Errors
/// I/O, [`LinkError::Malformed`] for a bad length, [`LinkError::BadMac`].
pub async fn read_request<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    key: &LinkKey,
    challenge: &[u8; 16],
) -> Result<JoinRequest, LinkError> {
    let mut token: TraversalId = [0; 16];
    r.read_exact(&mut token).await?;
    let mut names = Vec::with_capacity(2);
    for _ in 0..2 {
        let len = usize::from(r.read_u8().await?);
        if len == 0 || len > NAME_MAX {
            return Err(LinkError::Malformed);
        }
        let mut b = vec![0; len];
        r.read_exact(&mut b).await?;
        names.push(String::from_utf8(b).map_err(|_| LinkError::Malformed)?);
    }
    let mut mac = [0u8; 32];
    r.read_exact(&mut mac).await?;
    let opener = names.pop().unwrap_or_default();
    let joiner = names.pop().unwrap_or_default();
    let req = JoinRequest {
        token,
        joiner,
        opener,
    };
    hmac::verify(&key.0, &mac_input(challenge, &req), &mac).map_err(|_| LinkError::BadMac)?;
    Ok(req)
}

/// The listener's side up to the request: sends a challenge, reads and checks the request.
///
/// # Errors
/// [`LinkError`]; the caller drops the connection.
pub async fn accept(stream: &mut TcpStream, key: &LinkKey) -> Result<JoinRequest, LinkError> {
    timeout(PREAMBLE_TIMEOUT, async {
        let challenge: [u8; 16] = rand::random();
        stream.write_all(&challenge).await?;
        read_request(stream, key, &challenge).await
    })
    .await
    .map_err(|_| LinkError::Timeout)?
}

/// The dialler's side: connects to the opener's node at `addr` and asks to join `req`.
/// Returns the connection, positioned at the first relayed byte, once the relay is joined.
///
/// # Errors
/// [`LinkError::Refused`] if no such relay waits there; otherwise what failed.
pub async fn dial(
    addr: SocketAddr,
    key: &LinkKey,
    req: &JoinRequest,
) -> Result<TcpStream, LinkError> {
    timeout(PREAMBLE_TIMEOUT, async {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let mut challenge = [0u8; 16];
        s.read_exact(&mut challenge).await?;
        s.write_all(&encode_request(key, &challenge, req)?).await?;
        match s.read_u8().await {
            Ok(1) => Ok(s),
            _ => Err(LinkError::Refused),
        }
    })
    .await
    .map_err(|_| LinkError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> JoinRequest {
        JoinRequest {
            token: [7; 16],
            joiner: "bob".into(),
            opener: "alice".into(),
        }
    }

    #[tokio::test]
    async fn a_request_round_trips_under_the_same_key_only() {
        let key = LinkKey::derive("server key A");
        let ch = [1u8; 16];
        let bytes = encode_request(&key, &ch, &req()).unwrap();
        assert_eq!(
            read_request(&mut &bytes[..], &key, &ch).await.unwrap(),
            req()
        );
        let other = LinkKey::derive("server key B");
        assert!(matches!(
            read_request(&mut &bytes[..], &other, &ch).await,
            Err(LinkError::BadMac)
        ));
        // A recorded preamble does not answer another challenge.
        assert!(matches!(
            read_request(&mut &bytes[..], &key, &[2u8; 16]).await,
            Err(LinkError::BadMac)
        ));
    }

    #[tokio::test]
    async fn malformed_requests_are_refused() {
        let key = LinkKey::derive("k");
        let ch = [0u8; 16];
        let mut long = req();
        long.joiner = "x".repeat(NAME_MAX + 1);
        assert!(matches!(
            encode_request(&key, &ch, &long),
            Err(LinkError::Malformed)
        ));
        let mut bytes = encode_request(&key, &ch, &req()).unwrap();
        bytes[16] = 0; // empty joiner name
        assert!(matches!(
            read_request(&mut &bytes[..], &key, &ch).await,
            Err(LinkError::Malformed)
        ));
        let ok = encode_request(&key, &ch, &req()).unwrap();
        assert!(matches!(
            read_request(&mut &ok[..ok.len() - 1], &key, &ch).await,
            Err(LinkError::Io(_))
        ));
        let mut flipped = ok.clone();
        flipped[3] ^= 1; // token altered
        assert!(matches!(
            read_request(&mut &flipped[..], &key, &ch).await,
            Err(LinkError::BadMac)
        ));
    }
}
