//! A small test client over the proto crate's Noise channel: connect, send requests and match
//! responses by request_id, collect pushes and wait for the ones a case expects.
//!
//! A background task reads every frame as soon as it arrives (so the server never sees this
//! client as slow) and hands it to the [`Client`] through a channel; frames that a case is not
//! waiting for stay in a backlog, in arrival order, each with a sequence number so that cases
//! can check ordering ("the notice comes after LoginOk").

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peerchat_proto::limits::HANDSHAKE_TIMEOUT;
use peerchat_proto::wire::{self, client_message::Body, push, response, server_message};
use peerchat_proto::{Channel, ChannelWriter, IdentityKey, Role};
use tokio::io::WriteHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::SuiteConfig;
use crate::ident;
use crate::verdict::Verdict;

/// How long a request waits for its response before the case fails.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);

/// A client-side failure, turned into a FAIL with its text.
#[derive(Debug, Clone)]
pub enum ClientError {
    /// TCP connect or the handshake failed.
    Connect(String),
    /// Nothing expected arrived in time.
    Timeout(String),
    /// The server closed the connection (with its Close frame, if it sent one).
    Closed(String),
    /// Writing failed.
    Send(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(s) => write!(f, "connect/handshake failed: {s}"),
            ClientError::Timeout(s) => write!(f, "timed out: {s}"),
            ClientError::Closed(s) => write!(f, "server closed the connection: {s}"),
            ClientError::Send(s) => write!(f, "send failed: {s}"),
        }
    }
}

impl From<ClientError> for Verdict {
    fn from(e: ClientError) -> Self {
        Verdict::Fail(e.to_string())
    }
}

/// How the server ended a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Clean TCP EOF between frames.
    Eof,
    /// Anything else: reset, truncation, undecodable frame.
    Error(String),
}

enum Incoming {
    Msg(wire::ServerMessage),
    End(End),
}

/// A frame received from the server, numbered in arrival order.
#[derive(Debug, Clone)]
pub struct Received {
    /// Arrival order on this connection, from 1.
    pub seq: u64,
    /// The frame.
    pub msg: wire::ServerMessage,
}

/// What [`Client::expect_close`] observed.
#[derive(Debug, Clone)]
pub struct Closing {
    /// The Close frame's (reason, message), if the server sent one.
    pub close: Option<(i32, String)>,
    /// How the TCP connection ended.
    pub end: End,
}

impl Closing {
    /// True if the server sent Close with `reason`.
    pub fn has_reason(&self, reason: wire::CloseReason) -> bool {
        matches!(&self.close, Some((r, _)) if *r == reason as i32)
    }
}

impl fmt::Display for Closing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.close {
            Some((r, m)) => write!(f, "Close {} ({m:?}) then {:?}", close_name(*r), self.end),
            None => write!(f, "no Close frame, {:?}", self.end),
        }
    }
}

/// One logged-in or anonymous connection to the server under test.
pub struct Client {
    /// Shared with the reader task, which answers the server's Pings.
    writer: Arc<Mutex<ChannelWriter<WriteHalf<TcpStream>>>>,
    /// Frames queued by [`Client::queue`], written by [`Client::flush`].
    pending: Vec<wire::ClientMessage>,
    /// Whether the reader task answers Pings (a well-behaved client SHOULD, SPEC.md §3.6).
    auto_pong: Arc<AtomicBool>,
    rx: mpsc::UnboundedReceiver<Incoming>,
    backlog: VecDeque<Received>,
    end: Option<End>,
    next_id: u64,
    seq: u64,
    reader: JoinHandle<()>,
    /// The client's side of the TCP connection (its source IP is what the server observes).
    pub local_addr: SocketAddr,
    /// The identity the server proved in the handshake.
    pub server_key: IdentityKey,
    /// The test key this client proved.
    pub key_index: usize,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Opens a TCP connection to `server`, from `source` if given and bindable.
pub async fn tcp_connect(server: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    if let Some(src) = source {
        let sock = if src.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if sock.bind(SocketAddr::new(src, 0)).is_ok() {
            let stream = sock.connect(server).await?;
            stream.set_nodelay(true)?;
            return Ok(stream);
        }
    }
    let stream = TcpStream::connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl Client {
    /// Connects with test key `key_index` and completes the handshake.
    ///
    /// # Errors
    /// [`ClientError::Connect`], including a server key that differs from `--server-key`.
    pub async fn connect(
        cfg: &SuiteConfig,
        key_index: usize,
        source: Option<IpAddr>,
    ) -> Result<Self, ClientError> {
        let km = ident::key(key_index);
        let stream = tcp_connect(cfg.server, source)
            .await
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let local_addr = stream
            .local_addr()
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let channel = Channel::handshake(
            stream,
            &km.local,
            Role::Initiator,
            wire::ChannelKind::ClientServer,
            HANDSHAKE_TIMEOUT,
        )
        .await
        .map_err(|e| ClientError::Connect(e.to_string()))?;
        let server_key = channel.remote.identity_key.clone();
        if let Some(pinned) = cfg.server_key {
            if server_key.fingerprint() != pinned {
                return Err(ClientError::Connect(format!(
                    "server proved key {}, expected {pinned}",
                    server_key.fingerprint()
                )));
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let mut reader = channel.reader;
        let writer = Arc::new(Mutex::new(channel.writer));
        let auto_pong = Arc::new(AtomicBool::new(true));
        let (pong_writer, pong_flag) = (writer.clone(), auto_pong.clone());
        let task = tokio::spawn(async move {
            loop {
                match reader.recv::<wire::ServerMessage>().await {
                    Ok(Some(m)) => {
                        if let Some(server_message::Body::Ping(p)) = &m.body {
                            if pong_flag.load(Ordering::Relaxed) {
                                let pong = wire::ClientMessage {
                                    request_id: 0,
                                    body: Some(Body::Pong(wire::Pong { nonce: p.nonce })),
                                };
                                let _ = pong_writer.lock().await.send(&pong).await;
                            }
                        }
                        if tx.send(Incoming::Msg(m)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        let _ = tx.send(Incoming::End(End::Eof));
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Incoming::End(End::Error(e.to_string())));
                        return;
                    }
                }
            }
        });
        Ok(Self {
            writer,
            pending: Vec::new(),
            auto_pong,
            rx,
            backlog: VecDeque::new(),
            end: None,
            next_id: 0,
            seq: 0,
            reader: task,
            local_addr,
            server_key,
            key_index,
        })
    }

    /// A fresh, non-zero request id.
    pub fn next_request_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Queues a frame without writing it.
    ///
    /// # Errors
    /// [`ClientError::Send`].
    pub fn queue(&mut self, msg: &wire::ClientMessage) -> Result<(), ClientError> {
        self.pending.push(msg.clone());
        Ok(())
    }

    /// Writes everything queued.
    ///
    /// # Errors
    /// [`ClientError::Send`].
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        let mut w = self.writer.lock().await;
        for msg in self.pending.drain(..) {
            w.queue(&msg)
                .map_err(|e| ClientError::Send(e.to_string()))?;
        }
        w.flush()
            .await
            .map_err(|e| ClientError::Send(e.to_string()))
    }

    /// Stops (or resumes) answering the server's Pings, to play a client that went silent.
    pub fn set_auto_pong(&self, on: bool) {
        self.auto_pong.store(on, Ordering::Relaxed);
    }

    /// Sends one frame now.
    ///
    /// # Errors
    /// [`ClientError::Send`].
    pub async fn send(&mut self, msg: &wire::ClientMessage) -> Result<(), ClientError> {
        self.queue(msg)?;
        self.flush().await
    }

    /// Sends a request with a fresh id and returns the id.
    ///
    /// # Errors
    /// [`ClientError::Send`].
    pub async fn send_request(&mut self, body: Body) -> Result<u64, ClientError> {
        let id = self.next_request_id();
        self.send(&wire::ClientMessage {
            request_id: id,
            body: Some(body),
        })
        .await?;
        Ok(id)
    }

    /// Sends a request and waits for its response.
    ///
    /// # Errors
    /// Send errors, time-out, or the connection ending first.
    pub async fn request(&mut self, body: Body) -> Result<response::Result, ClientError> {
        Ok(self.request_seq(body).await?.1)
    }

    /// As [`Client::request`], also returning the response's arrival number.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub async fn request_seq(
        &mut self,
        body: Body,
    ) -> Result<(u64, response::Result), ClientError> {
        let id = self.send_request(body).await?;
        self.wait_response(id).await
    }

    /// Sends a request, retrying (after the advised delay) while it is RATE_LIMITED: for set-up
    /// steps that issue many requests on one connection.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub async fn request_patiently(&mut self, body: Body) -> Result<response::Result, ClientError> {
        for _ in 0..20 {
            let r = self.request(body.clone()).await?;
            match &r {
                response::Result::Error(e) if e.code == wire::ErrorCode::RateLimited as i32 => {
                    tokio::time::sleep(Duration::from_millis(e.retry_after_ms.clamp(50, 5000)))
                        .await;
                }
                _ => return Ok(r),
            }
        }
        Err(ClientError::Timeout(
            "request stayed RATE_LIMITED after 20 tries".into(),
        ))
    }

    /// Waits for the response to request `id` (buffering everything else).
    ///
    /// # Errors
    /// Time-out, a response without a result, or the connection ending first.
    pub async fn wait_response(&mut self, id: u64) -> Result<(u64, response::Result), ClientError> {
        let is_it = |r: &Received| matches!(&r.msg.body, Some(server_message::Body::Response(resp)) if resp.request_id == id);
        let found = if let Some(pos) = self.backlog.iter().position(is_it) {
            self.backlog.remove(pos)
        } else {
            self.wait_for(
                &format!("response to request {id}"),
                RESPONSE_TIMEOUT,
                is_it,
            )
            .await?
        };
        match found {
            Some(Received {
                seq,
                msg:
                    wire::ServerMessage {
                        body: Some(server_message::Body::Response(resp)),
                    },
            }) => match resp.result {
                Some(result) => Ok((seq, result)),
                None => Err(ClientError::Closed(format!(
                    "response to request {id} has no result (violates §4.6)"
                ))),
            },
            _ => Err(ClientError::Timeout(format!("response to request {id}"))),
        }
    }

    /// Reads frames until one satisfies `pred` (returned, not buffered) or `timeout`.
    async fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Result<Option<Received>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.recv_until(deadline).await {
                Some(r) if pred(&r) => return Ok(Some(r)),
                Some(r) => self.backlog.push_back(r),
                None => {
                    return Err(match &self.end {
                        Some(end) => ClientError::Closed(format!(
                            "while waiting for {what}: {}",
                            self.close_summary(end)
                        )),
                        None => ClientError::Timeout(format!("no {what} within {timeout:?}")),
                    })
                }
            }
        }
    }

    fn close_summary(&self, end: &End) -> String {
        let close = self.backlog.iter().find_map(|r| match &r.msg.body {
            Some(server_message::Body::Close(c)) => {
                Some(format!("Close {} ({:?})", close_name(c.reason), c.message))
            }
            _ => None,
        });
        format!(
            "{} then {end:?}",
            close.unwrap_or_else(|| "no Close frame".into())
        )
    }

    /// The next frame from the network before `deadline`, or None (time-out or ended).
    async fn recv_until(&mut self, deadline: Instant) -> Option<Received> {
        if self.end.is_some() {
            return None;
        }
        match tokio::time::timeout_at(deadline, self.rx.recv()).await {
            Ok(Some(Incoming::Msg(msg))) => {
                self.seq += 1;
                Some(Received { seq: self.seq, msg })
            }
            Ok(Some(Incoming::End(end))) => {
                self.end = Some(end);
                None
            }
            Ok(None) => {
                self.end = Some(End::Error("reader task stopped".into()));
                None
            }
            Err(_) => None,
        }
    }

    /// Waits for a push satisfying `pred` (checking already-buffered frames first) and
    /// removes it from the backlog.
    ///
    /// # Errors
    /// Time-out or the connection ending first.
    pub async fn expect_push(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&push::Body) -> bool,
    ) -> Result<(u64, push::Body), ClientError> {
        let is_it = |r: &Received| matches!(&r.msg.body, Some(server_message::Body::Push(wire::Push { body: Some(b) })) if pred(b));
        let found = if let Some(pos) = self.backlog.iter().position(is_it) {
            self.backlog.remove(pos)
        } else {
            self.wait_for(what, timeout, is_it).await?
        };
        match found {
            Some(Received {
                seq,
                msg:
                    wire::ServerMessage {
                        body: Some(server_message::Body::Push(wire::Push { body: Some(b) })),
                    },
            }) => Ok((seq, b)),
            _ => Err(ClientError::Timeout(what.to_string())),
        }
    }

    /// Collects frames for `window` and returns the first push satisfying `pred`, if any:
    /// used to check that something is NOT sent.
    pub async fn find_push_within(
        &mut self,
        window: Duration,
        pred: impl Fn(&push::Body) -> bool,
    ) -> Option<push::Body> {
        let deadline = Instant::now() + window;
        while let Some(r) = self.recv_until(deadline).await {
            self.backlog.push_back(r);
        }
        self.backlog.iter().find_map(|r| match &r.msg.body {
            Some(server_message::Body::Push(wire::Push { body: Some(b) })) if pred(b) => {
                Some(b.clone())
            }
            _ => None,
        })
    }

    /// Waits until the server ends the connection; reports its Close frame, if any.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] if the connection is still open after `timeout`.
    pub async fn expect_close(&mut self, timeout: Duration) -> Result<Closing, ClientError> {
        let deadline = Instant::now() + timeout;
        while self.end.is_none() {
            match self.recv_until(deadline).await {
                Some(r) => self.backlog.push_back(r),
                None if self.end.is_none() => {
                    return Err(ClientError::Timeout(format!(
                        "the server did not close the connection within {timeout:?}"
                    )))
                }
                None => {}
            }
        }
        let close = self.backlog.iter().find_map(|r| match &r.msg.body {
            Some(server_message::Body::Close(c)) => Some((c.reason, c.message.clone())),
            _ => None,
        });
        Ok(Closing {
            close,
            end: self.end.clone().unwrap_or(End::Eof),
        })
    }

    /// Waits for the next frame of any kind (buffered ones first).
    ///
    /// # Errors
    /// Time-out or the connection ending.
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<Received, ClientError> {
        if let Some(r) = self.backlog.pop_front() {
            return Ok(r);
        }
        match self.wait_for("any frame", timeout, |_| true).await? {
            Some(r) => Ok(r),
            None => Err(ClientError::Timeout("any frame".into())),
        }
    }

    /// Waits for a server Ping; returns its nonce.
    ///
    /// # Errors
    /// Time-out or the connection ending.
    pub async fn expect_ping(&mut self, timeout: Duration) -> Result<u64, ClientError> {
        let is_it = |r: &Received| matches!(&r.msg.body, Some(server_message::Body::Ping(_)));
        let found = if let Some(pos) = self.backlog.iter().position(is_it) {
            self.backlog.remove(pos)
        } else {
            self.wait_for("a Ping from the server", timeout, is_it)
                .await?
        };
        match found.and_then(|r| r.msg.body) {
            Some(server_message::Body::Ping(p)) => Ok(p.nonce),
            _ => Err(ClientError::Timeout("ping".into())),
        }
    }

    /// Waits for a Pong with `nonce`.
    ///
    /// # Errors
    /// Time-out or the connection ending.
    pub async fn expect_pong(&mut self, nonce: u64, timeout: Duration) -> Result<(), ClientError> {
        let is_it = |r: &Received| matches!(&r.msg.body, Some(server_message::Body::Pong(p)) if p.nonce == nonce);
        if let Some(pos) = self.backlog.iter().position(is_it) {
            self.backlog.remove(pos);
            return Ok(());
        }
        self.wait_for(&format!("Pong {nonce}"), timeout, is_it)
            .await
            .map(|_| ())
    }

    /// Every frame buffered so far and not consumed.
    pub fn backlog(&self) -> impl Iterator<Item = &Received> {
        self.backlog.iter()
    }

    /// Shuts down the write side (the server sees EOF) without a Close frame.
    pub async fn shutdown_write(&mut self) {
        let _ = self.writer.lock().await.shutdown().await;
    }
}

/// Builders for request bodies.
pub mod req {
    use super::*;

    /// A PeerEndpoint.
    pub fn ep(host: &str, port: u32) -> wire::PeerEndpoint {
        wire::PeerEndpoint {
            host: host.into(),
            port,
        }
    }
    /// Register.
    pub fn register(userid: &str, email: &str, password: &str) -> Body {
        Body::Register(wire::Register {
            userid: userid.into(),
            email: email.into(),
            password: password.into(),
        })
    }
    /// Login.
    pub fn login(userid: &str, password: &str, endpoint: Option<wire::PeerEndpoint>) -> Body {
        Body::Login(wire::Login {
            userid: userid.into(),
            password: password.into(),
            peer_endpoint: endpoint,
            announcement: None,
        })
    }
    /// KeyLogin.
    pub fn key_login(userid: &str, endpoint: Option<wire::PeerEndpoint>) -> Body {
        Body::KeyLogin(wire::KeyLogin {
            userid: userid.into(),
            peer_endpoint: endpoint,
            announcement: None,
        })
    }
    /// ForgotPassword.
    pub fn forgot(userid: &str, email: &str, code: &str, new_password: &str) -> Body {
        Body::ForgotPassword(wire::ForgotPassword {
            userid: userid.into(),
            email: email.into(),
            recovery_code: code.into(),
            new_password: new_password.into(),
        })
    }
    /// ChangePassword (SPEC.md §5.7).
    pub fn change_password(old_password: &str, new_password: &str) -> Body {
        Body::ChangePassword(wire::ChangePassword {
            old_password: old_password.into(),
            new_password: new_password.into(),
        })
    }
    /// Logout.
    pub fn logout() -> Body {
        Body::Logout(wire::Logout {})
    }
    /// Find.
    pub fn find(userid: &str) -> Body {
        Body::Find(wire::Find {
            userid: userid.into(),
        })
    }
    /// SendFriendRequest.
    pub fn send_request(userid: &str) -> Body {
        Body::SendFriendRequest(wire::SendFriendRequest {
            userid: userid.into(),
        })
    }
    /// AcceptFriendRequest.
    pub fn accept(userid: &str) -> Body {
        Body::AcceptFriendRequest(wire::AcceptFriendRequest {
            userid: userid.into(),
        })
    }
    /// RefuseFriendRequest.
    pub fn refuse(userid: &str) -> Body {
        Body::RefuseFriendRequest(wire::RefuseFriendRequest {
            userid: userid.into(),
        })
    }
    /// Unfriend.
    pub fn unfriend(userid: &str) -> Body {
        Body::Unfriend(wire::Unfriend {
            userid: userid.into(),
        })
    }
    /// SetPeerEndpoint.
    pub fn set_endpoint(endpoint: Option<wire::PeerEndpoint>) -> Body {
        Body::SetPeerEndpoint(wire::SetPeerEndpoint {
            peer_endpoint: endpoint,
            announcement: None,
        })
    }
    /// Ping.
    pub fn ping(nonce: u64) -> Body {
        Body::Ping(wire::Ping { nonce })
    }
}

/// The CloseReason name of a raw value.
pub fn close_name(raw: i32) -> String {
    match wire::CloseReason::try_from(raw) {
        Ok(r) => r.as_str_name().to_string(),
        Err(_) => format!("unknown close reason {raw}"),
    }
}

/// The ErrorCode name of a raw value.
pub fn code_name(raw: i32) -> String {
    match wire::ErrorCode::try_from(raw) {
        Ok(c) => c.as_str_name().to_string(),
        Err(_) => format!("unknown error code {raw}"),
    }
}

/// A short description of a response result, for failure messages.
pub fn describe(r: &response::Result) -> String {
    use response::Result as R;
    match r {
        R::Error(e) => format!(
            "error {} ({:?}, retry_after_ms {})",
            code_name(e.code),
            e.message,
            e.retry_after_ms
        ),
        R::Register(_) => "RegisterOk".into(),
        R::Login(l) => format!("LoginOk(userid {:?})", l.userid),
        R::ForgotPassword(_) => "ForgotPasswordOk".into(),
        R::Logout(_) => "LogoutOk".into(),
        R::Find(f) => format!("FindOk(found {}, userid {:?})", f.found, f.userid),
        R::SendFriendRequest(s) => format!(
            "SendFriendRequestOk(friend {:?})",
            s.friend.as_ref().map(|f| &f.userid)
        ),
        R::AcceptFriendRequest(a) => format!(
            "AcceptFriendRequestOk(friend {:?})",
            a.friend.as_ref().map(|f| &f.userid)
        ),
        R::RefuseFriendRequest(_) => "RefuseFriendRequestOk".into(),
        R::Unfriend(_) => "UnfriendOk".into(),
        R::SetPeerEndpoint(s) => format!("SetPeerEndpointOk({:?})", s.peer_endpoint),
        R::ConnectPeer(c) => format!("ConnectPeerOk({} candidates)", c.candidates.len()),
        R::RelayOpen(_) => "RelayOpenOk".into(),
        R::ChangePassword(_) => "ChangePasswordOk".into(),
    }
}

/// The name of a push, as SPEC.md spells it.
pub fn push_name(p: &push::Body) -> &'static str {
    match p {
        push::Body::FriendRequestReceived(_) => "FriendRequestReceived",
        push::Body::FriendRequestAccepted(_) => "FriendRequestAccepted",
        push::Body::FriendRequestRefused(_) => "FriendRequestRefused",
        push::Body::FriendRequestExpired(_) => "FriendRequestExpired",
        push::Body::FriendOnline(_) => "FriendOnline",
        push::Body::FriendOffline(_) => "FriendOffline",
        push::Body::Unfriended(_) => "Unfriended",
        push::Body::FriendKeyChanged(_) => "FriendKeyChanged",
        push::Body::PeerConnectRequested(_) => "PeerConnectRequested",
        push::Body::RelayInvite(_) => "RelayInvite",
    }
}

/// The userid a push is about.
pub fn push_subject(p: &push::Body) -> String {
    match p {
        push::Body::FriendRequestReceived(x) => x.from_userid.clone(),
        push::Body::FriendRequestAccepted(x) => x
            .friend
            .as_ref()
            .map(|f| f.userid.clone())
            .unwrap_or_default(),
        push::Body::FriendRequestRefused(x) => x.userid.clone(),
        push::Body::FriendRequestExpired(x) => x.userid.clone(),
        push::Body::FriendOnline(x) => x.userid.clone(),
        push::Body::FriendOffline(x) => x.userid.clone(),
        push::Body::Unfriended(x) => x.userid.clone(),
        push::Body::FriendKeyChanged(x) => x.userid.clone(),
        push::Body::PeerConnectRequested(x) => x.userid.clone(),
        push::Body::RelayInvite(x) => x.userid.clone(),
    }
}

/// "Name(userid)" for a push.
pub fn describe_push(p: &push::Body) -> String {
    format!("{}({})", push_name(p), push_subject(p))
}

/// Push predicates, by name and subject userid (exact registered spelling).
pub mod is {
    use super::*;

    /// FriendOnline about `u`.
    pub fn online(u: &str) -> impl Fn(&push::Body) -> bool + '_ {
        move |p| matches!(p, push::Body::FriendOnline(x) if x.userid == u)
    }
    /// FriendOffline about `u`.
    pub fn offline(u: &str) -> impl Fn(&push::Body) -> bool + '_ {
        move |p| matches!(p, push::Body::FriendOffline(x) if x.userid == u)
    }
    /// FriendRequestReceived from `u`.
    pub fn request_from(u: &str) -> impl Fn(&push::Body) -> bool + '_ {
        move |p| matches!(p, push::Body::FriendRequestReceived(x) if x.from_userid == u)
    }
    /// FriendRequestAccepted by `u`.
    pub fn accepted_by(u: &str) -> impl Fn(&push::Body) -> bool + '_ {
        move |p| matches!(p, push::Body::FriendRequestAccepted(x) if x.friend.as_ref().is_some_and(|f| f.userid == u))
    }
    /// FriendRequestRefused by `u`.
    pub fn refused_by(u: &str) -> impl Fn(&push::Body) -> bool + '_ {
        move |p| matches!(p, push::Body::FriendRequestRefused(x) if x.userid == u)
    }
    /// FriendRequestExpired for a request to `u`.
    pub fn expired(u: &str) -> impl Fn(&push::Body) -> bool + '_ {
        move |p| matches!(p, push::Body::FriendRequestExpired(x) if x.userid == u)
    }
    /// Unfriended by `u`.
    pub fn unfriended_by(u: &str) -> impl Fn(&push::Body) -> bool + '_ {
        move |p| matches!(p, push::Body::Unfriended(x) if x.userid == u)
    }
    /// FriendKeyChanged about `u`.
    pub fn key_changed(u: &str) -> impl Fn(&push::Body) -> bool + '_ {
        move |p| matches!(p, push::Body::FriendKeyChanged(x) if x.userid == u)
    }
    /// Any push about `u`.
    pub fn about(u: &str) -> impl Fn(&push::Body) -> bool + '_ {
        move |p| push_subject(p) == u
    }
}

/// Unwraps one success variant of a `response::Result`, failing the case otherwise.
///
/// Defined here, beside [`describe`] which it calls, so that the case context (`ctx`) can use
/// it without depending on the case registry (`case`), which depends on `ctx`.
#[macro_export]
macro_rules! ok {
    ($res:expr, $variant:ident, $what:expr) => {
        match $res {
            peerchat_proto::wire::response::Result::$variant(x) => x,
            other => $crate::fail!(
                "{}: expected {} ok, got {}",
                $what,
                stringify!($variant),
                $crate::client::describe(&other)
            ),
        }
    };
}

/// Fails the case unless a `response::Result` is the error `code`.
#[macro_export]
macro_rules! want_err {
    ($res:expr, $code:ident, $what:expr) => {
        match &$res {
            peerchat_proto::wire::response::Result::Error(e)
                if e.code == peerchat_proto::wire::ErrorCode::$code as i32 =>
            {
                e.clone()
            }
            other => $crate::fail!(
                "{}: expected {}, got {}",
                $what,
                peerchat_proto::wire::ErrorCode::$code.as_str_name(),
                $crate::client::describe(other)
            ),
        }
    };
}
