//! The suite's side of a peer link: a Noise channel (the proto crate's) carrying
//! `PeerMessage`s, with raw sends for frames a correct peer never writes.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut as _, Bytes};
use peerchat_proto::channel::{Channel, ChannelWriter};
use peerchat_proto::handshake::Role;
use peerchat_proto::wire::{self, peer_message::Body};
use peerchat_proto::LocalIdentity;
use tokio::io::WriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::fail;
use crate::verdict::Verdict;

/// What the friend's side saw on the link.
#[derive(Debug, Clone)]
pub enum LinkEvent {
    /// A frame that decoded as a `PeerMessage`.
    Frame(wire::PeerMessage),
    /// The client closed the connection (end-of-stream between frames).
    Eof,
    /// The connection broke (reset, bad record, undecodable frame).
    Broken(String),
}

/// One peer link from the suite (the friend) to the client under test.
pub struct FriendLink {
    /// `None` once [`FriendLink::send_tcp`] has taken the socket out of the channel.
    writer: Option<ChannelWriter<WriteHalf<TcpStream>>>,
    /// The bare write half after [`FriendLink::send_tcp`].
    tcp: Option<WriteHalf<TcpStream>>,
    rx: mpsc::UnboundedReceiver<LinkEvent>,
    /// Frames received and not yet taken by an `expect`.
    pub backlog: Vec<wire::PeerMessage>,
    /// The link has ended (Close, end-of-stream or error seen).
    pub ended: Option<String>,
}

/// `Body` as its case name (for failure messages).
pub fn body_name(m: &wire::PeerMessage) -> String {
    match &m.body {
        None => "PeerMessage{}".into(),
        Some(b) => match b {
            Body::Hello(h) => format!("PeerHello{{{}→{}}}", h.userid, h.to_userid),
            Body::Chat(_) => "ChatMessage".into(),
            Body::Ack(_) => "MessageAck".into(),
            Body::Typing(t) => format!("Typing{{{}}}", t.active),
            Body::FileOffer(_) => "FileOffer".into(),
            Body::FileAccept(a) => format!("FileAccept{{offset {}}}", a.offset),
            Body::FileChunk(c) => format!("FileChunk{{offset {}}}", c.offset),
            Body::FileComplete(_) => "FileComplete".into(),
            Body::FileDigest(_) => "FileDigest".into(),
            Body::FileCancel(c) => format!("FileCancel{{{}}}", cancel_name(c.reason)),
            Body::Ping(_) => "Ping".into(),
            Body::Pong(_) => "Pong".into(),
            Body::Close(c) => format!("Close{{{}}}", crate::client::close_name(c.reason)),
        },
    }
}

/// A FileCancelReason value as its name.
pub fn cancel_name(raw: i32) -> String {
    wire::FileCancelReason::try_from(raw)
        .map(|r| r.as_str_name().to_string())
        .unwrap_or_else(|_| format!("reason {raw}"))
}

impl FriendLink {
    fn from_channel(chan: Channel<TcpStream>) -> Self {
        let Channel {
            mut reader, writer, ..
        } = chan;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let ev = match reader.recv::<wire::PeerMessage>().await {
                    Ok(Some(m)) => LinkEvent::Frame(m),
                    Ok(None) => LinkEvent::Eof,
                    Err(e) => LinkEvent::Broken(e.to_string()),
                };
                let last = !matches!(ev, LinkEvent::Frame(_));
                if tx.send(ev).is_err() || last {
                    break;
                }
            }
        });
        Self {
            writer: Some(writer),
            tcp: None,
            rx,
            backlog: Vec::new(),
            ended: None,
        }
    }

    /// Dials the client at `addr` with `local` (Noise handshake as initiator), without
    /// sending a hello.
    ///
    /// # Errors
    /// FAIL if the connection or the handshake fails.
    pub async fn dial_raw(addr: SocketAddr, local: &LocalIdentity) -> Result<Self, Verdict> {
        let chan = Channel::connect(addr, local, wire::ChannelKind::Peer)
            .await
            .map_err(|e| {
                Verdict::Fail(format!(
                    "cannot open a peer channel to the client at {addr}: {e}"
                ))
            })?;
        Ok(Self::from_channel(chan))
    }

    /// Accepts the client's connection on `listener` (Noise handshake as responder), without
    /// reading its hello.
    ///
    /// # Errors
    /// FAIL if no connection comes within `timeout` or the handshake fails.
    pub async fn accept_raw(
        listener: &TcpListener,
        local: &LocalIdentity,
        timeout: Duration,
    ) -> Result<Self, Verdict> {
        let (stream, _) = tokio::time::timeout(timeout, listener.accept())
            .await
            .map_err(|_| {
                Verdict::Fail(format!(
                    "the client did not dial the friend within {timeout:?}"
                ))
            })?
            .map_err(|e| Verdict::Fail(format!("accept failed: {e}")))?;
        let _ = stream.set_nodelay(true);
        let chan = Channel::handshake(
            stream,
            local,
            Role::Responder,
            wire::ChannelKind::Peer,
            peerchat_proto::limits::HANDSHAKE_TIMEOUT,
        )
        .await
        .map_err(|e| Verdict::Fail(format!("handshake with the dialling client failed: {e}")))?;
        Ok(Self::from_channel(chan))
    }

    /// Sends one frame.
    ///
    /// # Errors
    /// FAIL if the connection is gone.
    pub async fn send(&mut self, body: Body) -> Result<(), Verdict> {
        self.send_msg(&wire::PeerMessage { body: Some(body) }).await
    }

    /// Sends one `PeerMessage`.
    ///
    /// # Errors
    /// FAIL if the connection is gone.
    pub async fn send_msg(&mut self, m: &wire::PeerMessage) -> Result<(), Verdict> {
        self.channel()?
            .send(m)
            .await
            .map_err(|e| Verdict::Fail(format!("cannot send {} to the client: {e}", body_name(m))))
    }

    fn channel(&mut self) -> Result<&mut ChannelWriter<WriteHalf<TcpStream>>, Verdict> {
        self.writer.as_mut().ok_or_else(|| {
            Verdict::Fail("the case wrote raw TCP bytes; the channel cannot send".into())
        })
    }

    /// Writes `bytes` to the TCP connection as they are, below the Noise layer (a record
    /// with a zero length, a record that does not decrypt). The link can then no longer send
    /// frames; it still reads the client's.
    ///
    /// # Errors
    /// FAIL if frames are still queued or the connection is gone.
    pub async fn send_tcp(&mut self, bytes: &[u8]) -> Result<(), Verdict> {
        use tokio::io::AsyncWriteExt as _;
        if let Some(w) = self.writer.take() {
            self.tcp = Some(
                w.into_inner()
                    .map_err(|e| Verdict::Fail(format!("cannot take the socket: {e}")))?,
            );
        }
        let Some(tcp) = self.tcp.as_mut() else {
            fail!("no socket");
        };
        tcp.write_all(bytes)
            .await
            .map_err(|e| Verdict::Fail(format!("cannot write to the client: {e}")))
    }

    /// Half-closes: end-of-stream towards the client (the suite keeps reading).
    ///
    /// # Errors
    /// FAIL if the connection is gone.
    pub async fn shutdown_write(&mut self) -> Result<(), Verdict> {
        use tokio::io::AsyncWriteExt as _;
        let r = match (self.writer.as_mut(), self.tcp.as_mut()) {
            (Some(w), _) => w.shutdown().await.map_err(|e| e.to_string()),
            (None, Some(t)) => t.shutdown().await.map_err(|e| e.to_string()),
            (None, None) => Ok(()),
        };
        r.map_err(|e| Verdict::Fail(format!("cannot half-close: {e}")))
    }

    /// How the link ended, waiting at most `timeout`: `Eof` (an orderly end-of-stream),
    /// `Broken` (a reset or a bad record), or `None` if it did not end. Frames are kept in
    /// the backlog; the client's Pings are answered.
    pub async fn wait_end(&mut self, timeout: Duration) -> Option<LinkEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.next(deadline, self.writer.is_some()).await? {
                LinkEvent::Frame(m) => self.backlog.push(m),
                end => return Some(end),
            }
        }
    }

    /// Sends one frame whose body is `bytes` (need not be a `PeerMessage`).
    ///
    /// # Errors
    /// FAIL if the connection is gone.
    pub async fn send_raw_frame(&mut self, bytes: &[u8]) -> Result<(), Verdict> {
        let mut framed = Vec::with_capacity(4 + bytes.len());
        framed.put_u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        framed.extend_from_slice(bytes);
        self.send_raw(&framed).await
    }

    /// Sends one record whose plaintext is empty (SPEC.md §8.5 L3: valid, carries no frame,
    /// is not activity).
    ///
    /// # Errors
    /// FAIL if the connection is gone.
    pub async fn send_empty_record(&mut self) -> Result<(), Verdict> {
        self.channel()?
            .send_empty_record()
            .await
            .map_err(|e| Verdict::Fail(format!("cannot write to the client: {e}")))
    }

    /// Puts `bytes` into the plaintext stream as they are (a frame header included or not).
    ///
    /// # Errors
    /// FAIL if the connection is gone.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Verdict> {
        let w = self.channel()?;
        w.queue_raw_plaintext(bytes);
        w.flush()
            .await
            .map_err(|e| Verdict::Fail(format!("cannot write to the client: {e}")))
    }

    /// The next frame (answering the client's Pings unless `raw`), or how the link ended.
    async fn next(&mut self, deadline: tokio::time::Instant, pong: bool) -> Option<LinkEvent> {
        loop {
            let ev = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .ok()?;
            let ev = ev.unwrap_or(LinkEvent::Eof);
            if let LinkEvent::Frame(wire::PeerMessage {
                body: Some(Body::Ping(p)),
            }) = &ev
            {
                if pong {
                    let nonce = p.nonce;
                    let _ = self.send(Body::Pong(wire::Pong { nonce })).await;
                    continue;
                }
            }
            return Some(ev);
        }
    }

    /// Waits for a frame satisfying `pred` (earlier frames are kept in the backlog; the
    /// client's Pings are answered).
    ///
    /// # Errors
    /// FAIL naming `what` on time-out or if the link ends first.
    pub async fn expect(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Body) -> bool,
    ) -> Result<Body, Verdict> {
        let matches = |m: &wire::PeerMessage| m.body.as_ref().is_some_and(&pred);
        if let Some(pos) = self.backlog.iter().position(matches) {
            if let Some(b) = self.backlog.remove(pos).body {
                return Ok(b);
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.next(deadline, true).await {
                None => {
                    return Err(Verdict::Fail(format!(
                        "expected {what} from the client within {timeout:?}; got {}",
                        self.seen()
                    )))
                }
                Some(LinkEvent::Frame(m)) if matches(&m) => {
                    if let Some(b) = m.body {
                        return Ok(b);
                    }
                }
                Some(LinkEvent::Frame(m)) => {
                    let close = matches!(m.body, Some(Body::Close(_)));
                    self.backlog.push(m);
                    if close {
                        self.ended = Some("Close".into());
                        return Err(Verdict::Fail(format!(
                            "expected {what}; the client closed the link instead: {}",
                            self.seen()
                        )));
                    }
                }
                Some(LinkEvent::Eof) | Some(LinkEvent::Broken(_)) => {
                    self.ended = Some("end-of-stream".into());
                    return Err(Verdict::Fail(format!(
                        "expected {what}; the link ended first (after {})",
                        self.seen()
                    )));
                }
            }
        }
    }

    /// Waits for the client to close the link; returns the reason of its `Close` frame
    /// (`None` if it ended the connection without one).
    ///
    /// # Errors
    /// FAIL if the link stays open for `timeout`.
    pub async fn expect_close(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<wire::CloseReason>, Verdict> {
        if let Some(c) = self.backlog.iter().find_map(|m| match &m.body {
            Some(Body::Close(c)) => Some(c.reason),
            _ => None,
        }) {
            return Ok(Some(wire::CloseReason::try_from(c).unwrap_or_default()));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.next(deadline, true).await {
                None => {
                    return Err(Verdict::Fail(format!(
                        "the client kept the link open for {timeout:?} (saw {})",
                        self.seen()
                    )))
                }
                Some(LinkEvent::Frame(wire::PeerMessage {
                    body: Some(Body::Close(c)),
                })) => {
                    self.ended = Some("Close".into());
                    return Ok(Some(
                        wire::CloseReason::try_from(c.reason).unwrap_or_default(),
                    ));
                }
                Some(LinkEvent::Frame(m)) => self.backlog.push(m),
                Some(LinkEvent::Eof) | Some(LinkEvent::Broken(_)) => {
                    self.ended = Some("end-of-stream".into());
                    return Ok(None);
                }
            }
        }
    }

    /// Fails unless the client closes the link with `want`.
    ///
    /// # Errors
    /// FAIL naming what the client did instead.
    pub async fn expect_close_with(
        &mut self,
        want: wire::CloseReason,
        timeout: Duration,
    ) -> Result<(), Verdict> {
        match self.expect_close(timeout).await? {
            Some(r) if r == want => Ok(()),
            Some(r) => Err(Verdict::Fail(format!(
                "the client closed with {}, expected {}",
                r.as_str_name(),
                want.as_str_name()
            ))),
            None => Err(Verdict::Fail(format!(
                "the client dropped the connection without Close{{{}}}",
                want.as_str_name()
            ))),
        }
    }

    /// Watches the link for `window` (answering Pings): FAIL if a frame satisfying `bad`
    /// arrives or the link ends.
    ///
    /// # Errors
    /// FAIL naming the frame or the end.
    pub async fn expect_quiet(
        &mut self,
        window: Duration,
        bad: impl Fn(&Body) -> bool,
    ) -> Result<(), Verdict> {
        let deadline = tokio::time::Instant::now() + window;
        loop {
            match self.next(deadline, true).await {
                None => return Ok(()),
                Some(LinkEvent::Frame(m)) => {
                    if let Some(Body::Close(c)) = &m.body {
                        return Err(Verdict::Fail(format!(
                            "the client closed the link: Close{{{}}} {}",
                            crate::client::close_name(c.reason),
                            c.message
                        )));
                    }
                    if m.body.as_ref().is_some_and(&bad) {
                        return Err(Verdict::Fail(format!("the client sent {}", body_name(&m))));
                    }
                    self.backlog.push(m);
                }
                Some(LinkEvent::Eof) => {
                    return Err(Verdict::Fail(
                        "the client closed the connection without Close".into(),
                    ))
                }
                Some(LinkEvent::Broken(e)) => {
                    return Err(Verdict::Fail(format!("the link broke: {e}")))
                }
            }
        }
    }

    /// Collects every frame for `window` without answering Pings (idle cases count them).
    pub async fn collect_raw(&mut self, window: Duration) -> Vec<(Duration, LinkEvent)> {
        let start = tokio::time::Instant::now();
        let deadline = start + window;
        let mut out = Vec::new();
        while let Some(ev) = self.next(deadline, false).await {
            let end = !matches!(ev, LinkEvent::Frame(_));
            out.push((start.elapsed(), ev));
            if end {
                break;
            }
        }
        out
    }

    /// The next event within `timeout` without answering Pings (`None` on time-out).
    pub async fn next_raw(&mut self, timeout: Duration) -> Option<LinkEvent> {
        self.next(tokio::time::Instant::now() + timeout, false)
            .await
    }

    /// Names of the frames in the backlog, for failure messages.
    pub fn seen(&self) -> String {
        if self.backlog.is_empty() {
            return "nothing".into();
        }
        self.backlog
            .iter()
            .map(body_name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A 16-byte id as `Bytes`.
pub fn id_bytes(id: &[u8; 16]) -> Bytes {
    Bytes::copy_from_slice(id)
}

impl FriendLink {
    /// Connects to the client at `addr`, holds the bare TCP connection quiet for `delay`,
    /// then runs the Noise handshake as initiator (no hello): for the hello deadline, which
    /// counts from the TCP connect (SPEC.md §8.5.1 L18).
    ///
    /// # Errors
    /// FAIL if the connection or the handshake fails.
    pub async fn dial_late(
        addr: SocketAddr,
        local: &LocalIdentity,
        delay: Duration,
    ) -> Result<Self, Verdict> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| Verdict::Fail(format!("cannot connect to the client at {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        tokio::time::sleep(delay).await;
        let chan = Channel::handshake(
            stream,
            local,
            Role::Initiator,
            wire::ChannelKind::Peer,
            peerchat_proto::limits::HANDSHAKE_TIMEOUT,
        )
        .await
        .map_err(|e| {
            Verdict::Fail(format!(
                "the Noise handshake {delay:?} after the TCP connect failed: {e}"
            ))
        })?;
        Ok(Self::from_channel(chan))
    }
}
