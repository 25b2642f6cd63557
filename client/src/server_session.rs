//! The link to the Peerchat server: connect, pin the server key, send requests, turn
//! responses and pushes into [`ServerEvent`]s for the core, and reconnect with back-off
//! (logging in again with KeyLogin) whenever the server goes away.
//!
//! One task owns the connection. Requests are pipelined with increasing request ids;
//! responses come back in order (SPEC.md §4.6). Before answering a caller, the task tells the
//! core what changed (a new friend, a login snapshot...), so a caller that acts on the
//! answer finds the core already up to date.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use peerchat_proto::limits::HANDSHAKE_TIMEOUT;
use peerchat_proto::limits::{IDLE_PING_AFTER, IDLE_TIMEOUT};
use peerchat_proto::message::{
    Announcement, Endpoint, FriendInfo, LoginSnapshot, PushEvent, Request, ResponseBody,
    ServerFrame,
};
use peerchat_proto::wire::{self, client_message, ChannelKind, CloseReason, ErrorCode};
use peerchat_proto::{Channel, ChannelError, HandshakeError, LocalIdentity, Role};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::backoff::{jittered, login_retry_delay, Backoff};
use crate::error::{ClientError, Unavailable};
use crate::events::{LoginRetryReason, OfflineReason, RequestAnswer};
use crate::pinning::{KnownServers, PinError};

/// What the server link tells the core.
#[derive(Debug)]
pub enum ServerEvent {
    /// Connected (not necessarily logged in).
    Online,
    /// Disconnected; reconnecting in the background.
    Offline {
        /// Why.
        reason: OfflineReason,
    },
    /// What this connection announced and how the server sees it (SPEC.md §7.5); sent just
    /// before every [`ServerEvent::LoggedIn`].
    Announced {
        /// Host candidates and observed-is-listener, as sent in the login.
        announcement: Announcement,
        /// `LoginOk.observed_endpoint`.
        observed: Option<SocketAddr>,
    },
    /// Logged in (by the user, or again after a reconnect).
    LoggedIn(LoginSnapshot),
    /// Logged out.
    LoggedOut,
    /// A push.
    Push(PushEvent),
    /// We became friends with someone through our own request (accept or crossing requests).
    FriendAdded(FriendInfo),
    /// We unfriended someone.
    FriendRemoved(String),
    /// We sent a request that is now pending.
    RequestSent(String),
    /// We answered a request made to us.
    RequestAnswered {
        /// Who had asked.
        userid: String,
        /// Accepted or refused.
        answer: RequestAnswer,
    },
    /// An automatic step failed.
    Error(String),
    /// The automatic login was refused with `code` and is not tried again (the user must
    /// log in with the password).
    LoginRefused(ErrorCode),
    /// The server's key is not the pinned one (or the pin file is unusable): no more
    /// connections until the user fixes it (SPEC.md §12.3).
    PinFailed(PinError),
    /// The account logged in on another device, which replaced this session
    /// this device stays logged out of the server (`CLOSE_REASON_SESSION_REPLACED`).
    SessionReplaced,
    /// The automatic login did not get in and is tried again in `retry_in` (SPEC.md §6.10).
    LoginRetry {
        /// Why.
        reason: LoginRetryReason,
        /// The server's error code, if it answered one.
        code: Option<ErrorCode>,
        /// Until the next attempt.
        retry_in: Duration,
        /// Consecutive failed attempts.
        attempt: u32,
    },
}

/// Settings of the server link.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `HOST:PORT` as configured; also the key of the pinned fingerprint.
    pub server: String,
    /// The pin file.
    pub known_servers: PathBuf,
    /// Announced in Login/KeyLogin.
    pub peer_endpoint: Option<Endpoint>,
    /// The peer listener's local address: the server connection leaves from its port, and
    /// host candidates carry it (SPEC.md §7.5). None: no listener.
    pub listen_addr: Option<SocketAddr>,
    /// Log in with the key as this user on the first connection.
    pub auto_login: Option<String>,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
}

enum Command {
    Request {
        request: Request,
        reply: oneshot::Sender<Result<ResponseBody, ClientError>>,
    },
    /// Reconnect now if waiting out the back-off (the user pressed "Retry now").
    RetryNow,
}

/// Sends requests to the server link.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Request { request, .. } => write!(f, "Request({})", request.name()),
            Command::RetryNow => write!(f, "RetryNow"),
        }
    }
}

impl ServerHandle {
    /// Sends `request` and waits for its answer. Login and KeyLogin get the peer endpoint
    /// filled in.
    ///
    /// # Errors
    /// [`ClientError::Server`] for an error answer, [`ClientError::ServerUnavailable`] when
    /// the server cannot be reached, [`ClientError::Pin`] when its key changed.
    pub async fn request(&self, request: Request) -> Result<ResponseBody, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Request { request, reply })
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// Ends a back-off wait at once: the link connects now and its back-off starts over.
    /// Does nothing while connected (or after a changed server key, which needs the user).
    pub fn retry_now(&self) {
        let _ = self.tx.send(Command::RetryNow);
    }
}

/// Starts the server link task.
pub fn spawn(
    settings: ServerSettings,
    local: LocalIdentity,
    to_core: mpsc::UnboundedSender<ServerEvent>,
    cancel: CancellationToken,
) -> ServerHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let link = ServerLink {
        backoff: Backoff::new(settings.reconnect_min, settings.reconnect_max),
        login_as: settings.auto_login.clone(),
        settings,
        local,
        to_core,
        rx,
        fatal: None,
        announcement: Announcement::default(),
        relogin_refused: None,
        relogin_attempts: 0,
    };
    tokio::spawn(cancel.clone().run_until_cancelled_owned(link.run()));
    ServerHandle { tx }
}

struct ServerLink {
    settings: ServerSettings,
    local: LocalIdentity,
    to_core: mpsc::UnboundedSender<ServerEvent>,
    rx: mpsc::UnboundedReceiver<Command>,
    backoff: Backoff,
    /// Log in again as this user after every reconnect.
    login_as: Option<String>,
    /// A pin mismatch: no more connections until the user fixes it.
    fatal: Option<PinError>,
    /// What the current connection announces in logins (SPEC.md §7.5).
    announcement: Announcement,
    /// Set when the server refused our automatic KeyLogin for a reason that may pass
    /// (rate limited, internal error): the connection ends and the login is tried again.
    relogin_refused: Option<Refusal>,
    /// Automatic login attempts that failed in a row (for the back-off and the event).
    relogin_attempts: u32,
}

/// Where the server is and which key it must have: what a relay connection (SPEC.md §7.7)
/// needs to reach the same server as the session, with the same pinned-key check.
#[derive(Debug, Clone)]
pub struct ServerTarget {
    /// `HOST:PORT` as configured; also the key of the pinned fingerprint.
    pub server: String,
    /// The pin file.
    pub known_servers: PathBuf,
}

/// Connects to the server and runs the handshake as `kind`, checking the pinned key before
/// handshake message 3 (SPEC.md §4.2 step 5, §12.3), so a server with another key never
/// learns who we are. With `from`, the connection leaves from that local address (the peer
/// listener's, SPEC.md §7.5); the returned flag says whether it did. Also returns the
/// server address that answered.
///
/// # Errors
/// [`ClientError::Pin`] when the server's key changed, [`ClientError::ServerUnavailable`]
/// otherwise.
pub async fn dial_server(
    target: &ServerTarget,
    local: &LocalIdentity,
    kind: ChannelKind,
    from: Option<SocketAddr>,
) -> Result<(Channel<TcpStream>, bool, SocketAddr), ClientError> {
    // `target.server` may list several nodes of one cluster, comma-separated
    // ("a:7878,b:7878"): tried in order, each with every address it resolves to, so a dead
    // node is skipped. They share one server key, so one pin covers them all (SPEC.md §6.11).
    let hosts: Vec<&str> = target
        .server
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    // The pin is stored under the list without spaces ("a:7878,b:7878"): a pin line is
    // `address fingerprint`, so a space inside the address would make the line unreadable
    // (and the pin file fails closed on a damaged line). One address keeps its plain key.
    let pin_key = hosts.join(",");
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut last = Unavailable::NoAddress {
        host: target.server.clone(),
        detail: "no address listed".into(),
    };
    for &host in &hosts {
        match tokio::net::lookup_host(host).await {
            Ok(a) => addrs.extend(a),
            Err(e) => {
                last = Unavailable::NoAddress {
                    host: host.to_owned(),
                    detail: e.to_string(),
                }
            }
        }
    }
    for addr in addrs {
        let pins = KnownServers::load(&target.known_servers)?;
        let accept =
            |k: &peerchat_proto::IdentityKey| pins.clone().check(&pin_key, k.fingerprint()).is_ok();
        let attempt = async {
            let (stream, from_listener) =
                crate::net::connect_from(from, addr, HANDSHAKE_TIMEOUT).await?;
            let chan = Channel::handshake_verified(
                stream,
                bytes::BytesMut::new(),
                local,
                Role::Initiator,
                kind,
                HANDSHAKE_TIMEOUT,
                accept,
            )
            .await?;
            Ok::<_, ChannelError>((chan, from_listener))
        };
        match attempt.await {
            Ok((chan, from_listener)) => {
                let fp = chan.remote.identity_key.fingerprint();
                let mut pins = KnownServers::load(&target.known_servers)?;
                pins.check_and_save(&pin_key, fp)?;
                return Ok((chan, from_listener, addr));
            }
            Err(ChannelError::Handshake(HandshakeError::UnexpectedRemoteKey(fp))) => {
                // Produces the explanatory PinError::Changed naming both fingerprints.
                KnownServers::load(&target.known_servers)?.check(&pin_key, fp)?;
                last = Unavailable::Handshake {
                    addr: addr.to_string(),
                    detail: format!("server key {fp} rejected"),
                };
            }
            Err(e) => last = Unavailable::attempt(addr, &e),
        }
    }
    Err(ClientError::ServerUnavailable(last))
}

/// The announcement for a server connection that reached `server` (SPEC.md §7.5).
fn announcement(
    listen: Option<SocketAddr>,
    server: SocketAddr,
    from_listener: bool,
) -> Announcement {
    let Some(listen) = listen else {
        return Announcement::default();
    };
    let source = crate::net::route_source(server);
    Announcement {
        host_candidates: crate::net::host_candidates(listen, source, server.ip()),
        observed_is_listener: from_listener,
    }
}

/// An automatic login the server refused for a reason that may pass.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    reason: LoginRetryReason,
    code: ErrorCode,
    retry_after: Option<Duration>,
}

enum End {
    /// The caller side is gone: stop.
    Stop,
    /// The connection ended (the detail is for the log).
    Lost(OfflineReason, String),
    /// The server refused our automatic login; we closed the connection to try again later.
    LoginRefused(Refusal),
    /// The server closed an Authenticating connection we were not using (LOGIN_DEADLINE,
    /// SPEC.md §4.6): connect again when there is something to ask.
    Idle,
}

enum Pending {
    /// Our own KeyLogin after a reconnect.
    Relogin,
    /// A caller's request.
    User {
        request: Request,
        reply: oneshot::Sender<Result<ResponseBody, ClientError>>,
    },
}

impl ServerLink {
    async fn run(mut self) {
        let mut first: Option<Command> = None;
        let mut reported_offline = false;
        loop {
            if let Some(err) = &self.fatal {
                match self.rx.recv().await {
                    Some(Command::Request { reply, .. }) => {
                        let _ = reply.send(Err(ClientError::Pin(err.clone())));
                        continue;
                    }
                    Some(Command::RetryNow) => continue,
                    None => return,
                }
            }
            let mut retry_after = None;
            match self.connect().await {
                Ok(chan) => {
                    self.backoff.reset();
                    let _ = self.to_core.send(ServerEvent::Online);
                    reported_offline = false;
                    match self.serve(chan, first.take()).await {
                        End::Stop => return,
                        End::Lost(reason, detail) => {
                            tracing::info!(server = %self.settings.server, %reason, %detail, "server connection lost");
                            let _ = self.to_core.send(ServerEvent::Offline { reason });
                            reported_offline = true;
                        }
                        End::Idle => {
                            // Not an outage: nobody needed the connection. The next request
                            // connects again (SPEC.md §4.6 "Login deadline").
                            tracing::debug!("idle server connection closed by the login deadline");
                            match self.rx.recv().await {
                                Some(Command::RetryNow) => {}
                                Some(cmd) => first = Some(cmd),
                                None => return,
                            }
                            continue;
                        }
                        End::LoginRefused(r) => {
                            self.relogin_attempts += 1;
                            retry_after = Some((r.reason, Some(r.code), r.retry_after));
                        }
                    }
                }
                Err(e) => {
                    if let Some(Command::Request { reply, .. }) = first.take() {
                        let _ = reply.send(Err(e.clone_for_caller()));
                    }
                    if let ClientError::Pin(p) = &e {
                        self.fatal = Some(p.clone());
                        let _ = self.to_core.send(ServerEvent::PinFailed(p.clone()));
                        let reason = match p {
                            PinError::Changed { .. } => OfflineReason::KeyChanged,
                            _ => OfflineReason::PinFile,
                        };
                        let _ = self.to_core.send(ServerEvent::Offline { reason });
                        continue;
                    }
                    if !reported_offline {
                        tracing::info!(server = %self.settings.server, error = %e, "server unreachable");
                        let _ = self.to_core.send(ServerEvent::Offline {
                            reason: OfflineReason::Unreachable,
                        });
                        reported_offline = true;
                    }
                    if self.login_as.is_some() {
                        self.relogin_attempts += 1;
                        retry_after = Some((LoginRetryReason::Unreachable, None, None));
                    }
                }
            }
            let step = jittered(
                self.backoff.next_delay(),
                rand::Rng::gen_range(&mut rand::thread_rng(), 0.5..=1.0),
            );
            let delay = match retry_after {
                Some((LoginRetryReason::Unreachable, ..)) | None => step,
                Some((_, _, after)) => login_retry_delay(after, step, self.settings.reconnect_max),
            };
            if let Some((reason, code, _)) = retry_after {
                tracing::info!(
                    ?reason,
                    ?delay,
                    attempt = self.relogin_attempts,
                    "automatic login failed; retrying"
                );
                let _ = self.to_core.send(ServerEvent::LoginRetry {
                    reason,
                    code,
                    retry_in: delay,
                    attempt: self.relogin_attempts,
                });
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                cmd = self.rx.recv() => match cmd {
                    // "Retry now": connect at once, and wait from the shortest step again.
                    Some(Command::RetryNow) => self.backoff.reset(),
                    // A request while offline: try at once instead of waiting out the back-off.
                    Some(cmd) => first = Some(cmd),
                    None => return,
                },
            }
        }
    }

    async fn connect(&mut self) -> Result<Channel<TcpStream>, ClientError> {
        let target = ServerTarget {
            server: self.settings.server.clone(),
            known_servers: self.settings.known_servers.clone(),
        };
        let (chan, from_listener, server) = dial_server(
            &target,
            &self.local,
            ChannelKind::ClientServer,
            self.settings.listen_addr,
        )
        .await?;
        self.announcement = announcement(self.settings.listen_addr, server, from_listener);
        Ok(chan)
    }

    async fn serve(&mut self, chan: Channel<TcpStream>, first: Option<Command>) -> End {
        let Channel {
            mut reader,
            mut writer,
            ..
        } = chan;
        let mut pending: HashMap<u64, Pending> = HashMap::new();
        let mut next_id: u64 = 1;
        let mut out: Vec<wire::ClientMessage> = Vec::new();

        if let Some(userid) = self.login_as.clone() {
            let req = Request::KeyLogin {
                userid,
                endpoint: self.settings.peer_endpoint,
                announcement: self.announcement.clone(),
            };
            out.push(req.into_message(next_id));
            pending.insert(next_id, Pending::Relogin);
            next_id += 1;
        }
        if let Some(Command::Request { request, reply }) = first {
            out.push(self.prepare(request.clone()).into_message(next_id));
            pending.insert(next_id, Pending::User { request, reply });
            next_id += 1;
        }
        let mut last_rx = Instant::now();
        let mut pinged = false;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let end = loop {
            for m in out.drain(..) {
                if let Err(e) = writer.queue(&m) {
                    tracing::warn!(error = %e, "request not sendable");
                }
            }
            if let Err(e) = writer.flush().await {
                break End::Lost(OfflineReason::Lost, e.to_string());
            }
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(Command::Request { request, reply }) => {
                        out.push(self.prepare(request.clone()).into_message(next_id));
                        pending.insert(next_id, Pending::User { request, reply });
                        next_id += 1;
                    }
                    // Connected: nothing to retry.
                    Some(Command::RetryNow) => {}
                    None => {
                        let _ = writer.send(&close(CloseReason::Normal, "client exiting")).await;
                        let _ = writer.shutdown().await;
                        break End::Stop;
                    }
                },
                frame = reader.recv::<wire::ServerMessage>() => {
                    last_rx = Instant::now();
                    pinged = false;
                    let msg = match frame {
                        Ok(Some(m)) => m,
                        Ok(None) => break End::Lost(OfflineReason::Lost, "end of stream".into()),
                        Err(e) => {
                            if let Some(reason) = e.close_reason() {
                                let _ = writer.send(&close(reason, &e.to_string())).await;
                                break End::Lost(OfflineReason::ProtocolError, e.to_string());
                            }
                            break End::Lost(OfflineReason::Lost, e.to_string());
                        }
                    };
                    match ServerFrame::try_from(msg) {
                        Ok(ServerFrame::Response { request_id, result }) => {
                            self.on_response(pending.remove(&request_id), result);
                            if let Some(r) = self.relogin_refused.take() {
                                let _ = writer.send(&close(CloseReason::Normal, "login refused; retrying later")).await;
                                let _ = writer.shutdown().await;
                                break End::LoginRefused(r);
                            }
                        }
                        Ok(ServerFrame::Push(p)) => { let _ = self.to_core.send(ServerEvent::Push(p)); }
                        Ok(ServerFrame::Ping(n)) => out.push(wire::ClientMessage { request_id: 0, body: Some(client_message::Body::Pong(wire::Pong { nonce: n })) }),
                        Ok(ServerFrame::Pong(_)) | Ok(ServerFrame::Unknown) => {}
                        Ok(ServerFrame::Close { reason, message }) => {
                            if reason == CloseReason::SessionReplaced {
                                // Logging in again would only throw the other session out.
                                self.login_as = None;
                                let _ = self.to_core.send(ServerEvent::SessionReplaced);
                                break End::Lost(OfflineReason::Replaced, message);
                            }
                            if reason == CloseReason::IdleTimeout && self.login_as.is_none() && pending.is_empty() {
                                break End::Idle;
                            }
                            break End::Lost(OfflineReason::ServerClosed(reason), message);
                        }
                        Err(e) => {
                            let _ = writer.send(&close(CloseReason::ProtocolError, &e.to_string())).await;
                            break End::Lost(OfflineReason::ProtocolError, e.to_string());
                        }
                    }
                }
                _ = tick.tick() => {
                    let idle = last_rx.elapsed();
                    if idle >= IDLE_TIMEOUT {
                        let _ = writer.send(&close(CloseReason::IdleTimeout, "nothing received")).await;
                        break End::Lost(OfflineReason::Silent, "nothing received".into());
                    }
                    if idle >= IDLE_PING_AFTER && !pinged {
                        pinged = true;
                        out.push(wire::ClientMessage { request_id: 0, body: Some(client_message::Body::Ping(wire::Ping { nonce: rand::random() })) });
                    }
                }
            }
        };
        for (_, p) in pending.drain() {
            if let Pending::User { reply, .. } = p {
                let _ = reply.send(Err(ClientError::ServerUnavailable(
                    Unavailable::ConnectionLost,
                )));
            }
        }
        end
    }

    /// Fills in what the caller leaves to the link: the peer endpoint and the announcement
    /// of logins (SPEC.md §7.1, §7.5).
    fn prepare(&self, request: Request) -> Request {
        let fill = |a: Announcement| {
            if a == Announcement::default() {
                self.announcement.clone()
            } else {
                a
            }
        };
        match request {
            Request::Login {
                userid,
                password,
                endpoint: None,
                announcement,
            } => Request::Login {
                userid,
                password,
                endpoint: self.settings.peer_endpoint,
                announcement: fill(announcement),
            },
            Request::KeyLogin {
                userid,
                endpoint: None,
                announcement,
            } => Request::KeyLogin {
                userid,
                endpoint: self.settings.peer_endpoint,
                announcement: fill(announcement),
            },
            other => other,
        }
    }

    fn logged_in(&self, snap: LoginSnapshot) {
        let _ = self.to_core.send(ServerEvent::Announced {
            announcement: self.announcement.clone(),
            observed: snap.observed,
        });
        let _ = self.to_core.send(ServerEvent::LoggedIn(snap));
    }

    fn on_response(
        &mut self,
        pending: Option<Pending>,
        result: Result<ResponseBody, peerchat_proto::message::RequestError>,
    ) {
        match pending {
            None => tracing::warn!("response to an unknown request id"),
            Some(Pending::Relogin) => match result {
                Ok(ResponseBody::Login(snap)) => {
                    self.relogin_attempts = 0;
                    self.logged_in(snap);
                }
                Ok(_) => {}
                // Our key is no longer the account's (another device logged in with the
                // password, §5.3): only the user can go on, with the password.
                Err(e) if e.code == ErrorCode::BadCredentials => {
                    tracing::info!(code = ?e.code, message = %e.message, "automatic login refused for good");
                    self.login_as = None;
                    let _ = self.to_core.send(ServerEvent::LoginRefused(e.code));
                }
                // Already logged in on this connection (a user login raced ours): fine.
                Err(e) if e.code == ErrorCode::AlreadyLoggedIn => {}
                // Locked out for now, or a server fault: try again later (§6.10).
                Err(e) => {
                    let reason = if e.code == ErrorCode::RateLimited {
                        LoginRetryReason::Locked
                    } else {
                        LoginRetryReason::ServerError
                    };
                    tracing::info!(code = ?e.code, retry_after = ?e.retry_after, "automatic login refused");
                    self.relogin_refused = Some(Refusal {
                        reason,
                        code: e.code,
                        retry_after: e.retry_after,
                    });
                }
            },
            Some(Pending::User { request, reply }) => {
                if let Ok(body) = &result {
                    self.after_success(&request, body);
                }
                let _ = reply.send(result.map_err(ClientError::Server));
            }
        }
    }

    fn after_success(&mut self, request: &Request, body: &ResponseBody) {
        let event = match (request, body) {
            (Request::Login { .. } | Request::KeyLogin { .. }, ResponseBody::Login(snap)) => {
                self.login_as = Some(snap.userid.clone());
                self.relogin_attempts = 0;
                self.logged_in(snap.clone());
                return;
            }
            (Request::Logout, _) => {
                self.login_as = None;
                ServerEvent::LoggedOut
            }
            (
                Request::SendFriendRequest { .. },
                ResponseBody::SendFriendRequest { friend: Some(f) },
            ) => ServerEvent::FriendAdded(f.clone()),
            (
                Request::SendFriendRequest { userid },
                ResponseBody::SendFriendRequest { friend: None },
            ) => ServerEvent::RequestSent(userid.clone()),
            (Request::AcceptFriendRequest { userid }, ResponseBody::AcceptFriendRequest(f)) => {
                let _ = self.to_core.send(ServerEvent::FriendAdded(f.clone()));
                ServerEvent::RequestAnswered {
                    userid: userid.clone(),
                    answer: RequestAnswer::Accepted,
                }
            }
            (Request::RefuseFriendRequest { userid }, _) => ServerEvent::RequestAnswered {
                userid: userid.clone(),
                answer: RequestAnswer::Refused,
            },
            (Request::Unfriend { userid }, _) => ServerEvent::FriendRemoved(userid.clone()),
            _ => return,
        };
        let _ = self.to_core.send(event);
    }
}

fn close(reason: CloseReason, message: &str) -> wire::ClientMessage {
    wire::ClientMessage {
        request_id: 0,
        body: Some(client_message::Body::Close(wire::Close {
            reason: reason as i32,
            message: crate::text::truncate_human(message),
        })),
    }
}

impl ClientError {
    /// A copy of a connection error for a waiting caller.
    fn clone_for_caller(&self) -> ClientError {
        match self {
            ClientError::Pin(p) => ClientError::Pin(p.clone()),
            ClientError::ServerUnavailable(u) => ClientError::ServerUnavailable(u.clone()),
            other => ClientError::ServerUnavailable(Unavailable::Handshake {
                addr: String::new(),
                detail: other.to_string(),
            }),
        }
    }
}
