//! A raw Noise session written directly on `snow`: an independent second implementation of
//! the client side of SPEC.md §3–§4, used by abuse cases that must put on the wire what the
//! proto crate refuses to produce (a forged handshake payload, a frame prefix over the
//! maximum, garbage inside a valid channel), and that must watch the raw bytes the server
//! sends back (nothing at all after a failed handshake).

use std::net::IpAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use peerchat_proto::handshake::{NOISE_PARAMS, PROLOGUE};
use peerchat_proto::limits::{MAX_RECORD, MAX_RECORD_PLAINTEXT, PROTOCOL_VERSION};
use peerchat_proto::wire::{self, ChannelKind, HandshakePayload};
use peerchat_proto::IdentityKey;
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::client::tcp_connect;
use crate::config::SuiteConfig;
use crate::ident;

/// How a raw read ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawEnd {
    /// Orderly EOF.
    Eof,
    /// Connection reset or another read error.
    Reset(String),
    /// Still open after the time-out.
    StillOpen,
}

/// A TCP connection on which the case writes and reads raw records.
pub struct RawConn {
    /// The socket.
    pub stream: TcpStream,
    buf: BytesMut,
}

/// What to put in the client's handshake messages.
#[derive(Debug, Clone)]
pub struct HandshakeOptions {
    /// Test key whose static key and signature are used.
    pub key: usize,
    /// Payload of message 1 (SPEC.md: must be empty).
    pub msg1_payload: Vec<u8>,
    /// ChannelKind value sent in message 3.
    pub kind: i32,
    /// protocol_version sent in message 3.
    pub version: u32,
    /// Replaces the identity key DER.
    pub identity_key: Option<Vec<u8>>,
    /// Replaces the signature.
    pub identity_sig: Option<Vec<u8>>,
    /// Replaces the whole encoded payload of message 3.
    pub payload: Option<Vec<u8>>,
    /// Flip one bit of message 3's ciphertext.
    pub tamper_msg3: bool,
}

impl HandshakeOptions {
    /// A correct handshake with test key `key`.
    pub fn valid(key: usize) -> Self {
        Self {
            key,
            msg1_payload: Vec::new(),
            kind: ChannelKind::ClientServer as i32,
            version: PROTOCOL_VERSION,
            identity_key: None,
            identity_sig: None,
            payload: None,
            tamper_msg3: false,
        }
    }
}

impl HandshakeOptions {
    /// A correct handshake for a relay connection (SPEC.md §4.4, §7.7) with test key `key`.
    pub fn relay(key: usize) -> Self {
        Self {
            kind: ChannelKind::Relay as i32,
            ..Self::valid(key)
        }
    }
}

/// What the server proved in message 2.
#[derive(Debug, Clone)]
pub struct ServerHello {
    /// The decoded payload.
    pub payload: HandshakePayload,
    /// The server's Noise static key.
    pub remote_static: Vec<u8>,
    /// The result of checking the payload as SPEC.md §4.3 says (Err = reason).
    pub verified: Result<IdentityKey, String>,
}

impl RawConn {
    /// Opens a TCP connection.
    ///
    /// # Errors
    /// Connect errors as text.
    pub async fn connect(cfg: &SuiteConfig, source: Option<IpAddr>) -> Result<Self, String> {
        let stream = tcp_connect(cfg.server, source)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        Ok(Self {
            stream,
            buf: BytesMut::new(),
        })
    }

    /// Writes raw bytes.
    ///
    /// # Errors
    /// Write errors as text.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// Writes one record: u16 length + body.
    ///
    /// # Errors
    /// Write errors as text.
    pub async fn write_record(&mut self, body: &[u8]) -> Result<(), String> {
        let mut out = BytesMut::with_capacity(body.len() + 2);
        out.put_u16(body.len() as u16);
        out.put_slice(body);
        self.write(&out).await
    }

    /// Reads one record before `deadline`. `Ok(None)`: the connection ended (see the RawEnd).
    ///
    /// # Errors
    /// `Err(RawEnd)` when no whole record arrived.
    pub async fn read_record(&mut self, deadline: Instant) -> Result<BytesMut, RawEnd> {
        loop {
            if self.buf.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
                if self.buf.len() >= 2 + len {
                    self.buf.advance(2);
                    return Ok(self.buf.split_to(len));
                }
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(RawEnd::StillOpen),
                Ok(Ok(0)) => return Err(RawEnd::Eof),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(RawEnd::Reset(e.to_string())),
            }
        }
    }

    /// Waits for the server to close without sending anything (SPEC.md §4.2: a failed
    /// handshake closes TCP silently). Returns how it ended and how many bytes arrived.
    pub async fn wait_closed(&mut self, timeout: Duration) -> (RawEnd, usize) {
        let deadline = Instant::now() + timeout;
        let mut got = self.buf.len();
        self.buf.clear();
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return (RawEnd::StillOpen, got),
                Ok(Ok(0)) => return (RawEnd::Eof, got),
                Ok(Ok(n)) => {
                    got += n;
                    self.buf.clear();
                }
                Ok(Err(e)) => return (RawEnd::Reset(e.to_string()), got),
            }
        }
    }

    /// Sends Noise message 1 and reads message 2; returns the live handshake state.
    ///
    /// # Errors
    /// Text describing what failed.
    pub async fn start_handshake(
        &mut self,
        opts: &HandshakeOptions,
    ) -> Result<(snow::HandshakeState, ServerHello), String> {
        let km = ident::key(opts.key);
        let params = NOISE_PARAMS
            .parse()
            .map_err(|e| format!("noise params: {e:?}"))?;
        let mut hs = snow::Builder::new(params)
            .local_private_key(&km.static_private)
            .prologue(PROLOGUE)
            .build_initiator()
            .map_err(|e| format!("noise init: {e}"))?;
        let mut out = vec![0u8; MAX_RECORD];
        let n = hs
            .write_message(&opts.msg1_payload, &mut out)
            .map_err(|e| format!("write msg1: {e}"))?;
        self.write_record(&out[..n]).await?;
        let deadline = Instant::now() + peerchat_proto::limits::HANDSHAKE_TIMEOUT;
        let msg2 = self
            .read_record(deadline)
            .await
            .map_err(|e| format!("no message 2 from the server: {e:?}"))?;
        let mut payload = vec![0u8; MAX_RECORD];
        let n = hs
            .read_message(&msg2, &mut payload)
            .map_err(|e| format!("message 2 does not decrypt: {e}"))?;
        let remote_static = hs
            .get_remote_static()
            .map(<[u8]>::to_vec)
            .ok_or("message 2 carried no static key")?;
        let payload = HandshakePayload::decode(&payload[..n])
            .map_err(|e| format!("server payload does not decode: {e}"))?;
        let verified = verify_server_payload(&payload, &remote_static);
        Ok((
            hs,
            ServerHello {
                payload,
                remote_static,
                verified,
            },
        ))
    }

    /// Sends message 3 built from `opts`, completing the handshake from this side.
    ///
    /// # Errors
    /// Text describing what failed.
    pub async fn finish_handshake(
        mut self,
        mut hs: snow::HandshakeState,
        opts: &HandshakeOptions,
    ) -> Result<RawSession, String> {
        let km = ident::key(opts.key);
        let payload = match &opts.payload {
            Some(p) => p.clone(),
            None => HandshakePayload {
                identity_key: opts
                    .identity_key
                    .clone()
                    .map(Into::into)
                    .unwrap_or_else(|| km.keypair.public().to_der()),
                identity_sig: opts
                    .identity_sig
                    .clone()
                    .unwrap_or_else(|| km.signature.clone())
                    .into(),
                protocol_version: opts.version,
                channel_kind: opts.kind,
            }
            .encode_to_vec(),
        };
        let mut out = vec![0u8; MAX_RECORD];
        let n = hs
            .write_message(&payload, &mut out)
            .map_err(|e| format!("write msg3: {e}"))?;
        if opts.tamper_msg3 {
            out[n - 1] ^= 0x01;
        }
        self.write_record(&out[..n]).await?;
        let transport = hs
            .into_transport_mode()
            .map_err(|e| format!("transport mode: {e}"))?;
        Ok(RawSession {
            conn: self,
            transport,
            plain: BytesMut::new(),
        })
    }

    /// A complete handshake with `opts`.
    ///
    /// # Errors
    /// Text describing what failed.
    pub async fn handshake(
        mut self,
        opts: &HandshakeOptions,
    ) -> Result<(RawSession, ServerHello), String> {
        let (hs, hello) = self.start_handshake(opts).await?;
        let session = self.finish_handshake(hs, opts).await?;
        Ok((session, hello))
    }
}

/// Checks a server's handshake payload as SPEC.md §4.3 says, independently of the proto
/// crate's handshake code (only its RSA primitives are reused).
pub fn verify_server_payload(
    p: &HandshakePayload,
    remote_static: &[u8],
) -> Result<IdentityKey, String> {
    if p.protocol_version == 0 {
        return Err("protocol_version 0".into());
    }
    if p.channel_kind != ChannelKind::ClientServer as i32 {
        return Err(format!(
            "channel_kind {} instead of CLIENT_SERVER",
            p.channel_kind
        ));
    }
    let key = IdentityKey::from_der(&p.identity_key).map_err(|e| format!("identity key: {e}"))?;
    key.verify_static_key(remote_static, &p.identity_sig)
        .map_err(|e| format!("signature: {e}"))?;
    Ok(key)
}

/// An established raw session: plaintext in, records out, and back.
pub struct RawSession {
    /// The connection.
    pub conn: RawConn,
    transport: snow::TransportState,
    plain: BytesMut,
}

/// What [`RawSession::recv`] produced.
#[derive(Debug)]
pub enum RawRecv {
    /// A decoded ServerMessage.
    Msg(wire::ServerMessage),
    /// The connection ended (or a record failed to decrypt).
    End(RawEnd),
    /// A frame that is not a ServerMessage.
    Garbage(String),
}

impl RawSession {
    /// Encrypts `plaintext` into records (split at the Noise limit) without sending.
    ///
    /// # Errors
    /// Noise errors as text.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = BytesMut::new();
        let mut scratch = vec![0u8; MAX_RECORD];
        for chunk in plaintext.chunks(MAX_RECORD_PLAINTEXT) {
            let n = self
                .transport
                .write_message(chunk, &mut scratch)
                .map_err(|e| format!("encrypt: {e}"))?;
            out.put_u16(n as u16);
            out.put_slice(&scratch[..n]);
        }
        Ok(out.to_vec())
    }

    /// Encrypts and sends `plaintext` as part of the frame stream.
    ///
    /// # Errors
    /// Noise and write errors as text.
    pub async fn send_plain(&mut self, plaintext: &[u8]) -> Result<(), String> {
        let wire = self.seal(plaintext)?;
        self.conn.write(&wire).await
    }

    /// Sends one frame: u32 length + bytes.
    ///
    /// # Errors
    /// As [`RawSession::send_plain`].
    pub async fn send_frame(&mut self, frame: &[u8]) -> Result<(), String> {
        let mut p = Vec::with_capacity(frame.len() + 4);
        p.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        p.extend_from_slice(frame);
        self.send_plain(&p).await
    }

    /// Sends a ClientMessage as one frame.
    ///
    /// # Errors
    /// As [`RawSession::send_plain`].
    pub async fn send_msg(&mut self, msg: &wire::ClientMessage) -> Result<(), String> {
        self.send_frame(&msg.encode_to_vec()).await
    }

    /// The next ServerMessage before `deadline`.
    pub async fn recv(&mut self, deadline: Instant) -> RawRecv {
        loop {
            if self.plain.len() >= 4 {
                let len = u32::from_be_bytes([
                    self.plain[0],
                    self.plain[1],
                    self.plain[2],
                    self.plain[3],
                ]) as usize;
                if self.plain.len() >= 4 + len {
                    self.plain.advance(4);
                    let frame = self.plain.split_to(len);
                    return match wire::ServerMessage::decode(frame) {
                        Ok(m) => RawRecv::Msg(m),
                        Err(e) => RawRecv::Garbage(e.to_string()),
                    };
                }
            }
            let rec = match self.conn.read_record(deadline).await {
                Ok(r) => r,
                Err(end) => return RawRecv::End(end),
            };
            let mut scratch = vec![0u8; MAX_RECORD];
            match self.transport.read_message(&rec, &mut scratch) {
                Ok(n) => self.plain.extend_from_slice(&scratch[..n]),
                Err(e) => return RawRecv::Garbage(format!("record does not decrypt: {e}")),
            }
        }
    }

    /// Reads until the connection ends; returns the Close frame's reason (if any was sent)
    /// and how it ended. Other frames are ignored.
    pub async fn wait_close(&mut self, timeout: Duration) -> (Option<(i32, String)>, RawEnd) {
        let deadline = Instant::now() + timeout;
        let mut close = None;
        loop {
            match self.recv(deadline).await {
                RawRecv::Msg(wire::ServerMessage {
                    body: Some(wire::server_message::Body::Close(c)),
                }) => {
                    close = Some((c.reason, c.message));
                }
                RawRecv::Msg(_) => {}
                RawRecv::Garbage(g) => {
                    return (
                        close,
                        RawEnd::Reset(format!("undecodable data from server: {g}")),
                    )
                }
                RawRecv::End(end) => return (close, end),
            }
        }
    }
}

impl RawSession {
    /// Sends a request and waits for its Response (other frames are skipped).
    ///
    /// # Errors
    /// Text describing what arrived instead.
    pub async fn request(
        &mut self,
        request_id: u64,
        body: wire::client_message::Body,
    ) -> Result<wire::response::Result, String> {
        self.send_msg(&wire::ClientMessage {
            request_id,
            body: Some(body),
        })
        .await?;
        let deadline = Instant::now() + crate::client::RESPONSE_TIMEOUT;
        loop {
            match self.recv(deadline).await {
                RawRecv::Msg(wire::ServerMessage {
                    body: Some(wire::server_message::Body::Response(r)),
                }) if r.request_id == request_id => {
                    return r
                        .result
                        .ok_or_else(|| "Response without a result".to_string())
                }
                RawRecv::Msg(_) => {}
                other => return Err(format!("no Response to request {request_id}: {other:?}")),
            }
        }
    }

    /// Waits for the Response to `request_id` (other frames are skipped) until `timeout`.
    ///
    /// # Errors
    /// Text describing what arrived instead.
    pub async fn wait_response(
        &mut self,
        request_id: u64,
        timeout: Duration,
    ) -> Result<wire::response::Result, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.recv(deadline).await {
                RawRecv::Msg(wire::ServerMessage {
                    body: Some(wire::server_message::Body::Response(r)),
                }) if r.request_id == request_id => {
                    return r
                        .result
                        .ok_or_else(|| "Response without a result".to_string())
                }
                RawRecv::Msg(_) => {}
                other => return Err(format!("no Response to request {request_id}: {other:?}")),
            }
        }
    }

    /// Ends this Noise session after `RelayOpenOk` (SPEC.md §7.7 "The switch"): the socket
    /// and the raw bytes already read past the server's last record, which belong to the
    /// relayed stream.
    ///
    /// # Errors
    /// Decrypted bytes were left over: the server sent something after RelayOpenOk.
    pub fn into_relayed(self) -> Result<(TcpStream, BytesMut), String> {
        if !self.plain.is_empty() {
            return Err(format!(
                "{} bytes of frames followed RelayOpenOk in the server's Noise session",
                self.plain.len()
            ));
        }
        Ok((self.conn.stream, self.conn.buf))
    }

    /// Shuts down the sending direction (the server sees EOF).
    pub async fn shutdown_write(&mut self) {
        let _ = self.conn.stream.shutdown().await;
    }
}
