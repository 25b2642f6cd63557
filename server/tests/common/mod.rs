//! Test helpers: start a real server on 127.0.0.1:0 with a temporary SQLite file, and a small
//! client that speaks the protocol over real TCP (Noise handshake via peerchat-proto's sans-IO
//! [`Handshake`], so tests can also send bytes a correct client never would).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use peerchat_proto::handshake::Handshake;
use peerchat_proto::message::{
    ClientFrame, Endpoint, FriendInfo, LoginSnapshot, PushEvent, Request, RequestError,
    ResponseBody, Secret, ServerFrame,
};
use peerchat_proto::record::{put_record, RecordCodec};
use peerchat_proto::transport::{Opener, Sealer, Transport};
use peerchat_proto::wire::{self, ChannelKind, CloseReason, ErrorCode};
use peerchat_proto::{test_keys, LocalIdentity, Role};
use peerchat_server::{Config, OffsetClock, RunningServer};
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder as _;

/// Upper bound on any single wait, so a broken server fails a test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(15);
/// A password that passes the strength rules.
pub const PW: &str = "correct horse battery";

/// The server's fixed test identity.
pub const SERVER_KEY: usize = 15;

/// A running server plus what keeps it alive.
pub struct TestServer {
    pub server: Option<RunningServer>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub clock: Arc<OffsetClock>,
    /// The PostgreSQL database in use (see [`database_url`]); `None` on SQLite.
    pub database_url: Option<String>,
}

/// `PEERCHAT_TEST_DATABASE=postgres` runs every server these helpers start on PostgreSQL
/// instead of SQLite: one throwaway cluster per test binary (`pg_harness`, stopped when the
/// binary exits), one fresh database per server. `bash scripts/test` runs the server's
/// integration tests both ways.
pub async fn database_url() -> Option<String> {
    if std::env::var("PEERCHAT_TEST_DATABASE").as_deref() != Ok("postgres") {
        return None;
    }
    #[cfg(feature = "test-postgres")]
    {
        use peerchat_server::pg_harness::PgCluster;
        static PG: tokio::sync::OnceCell<PgCluster> = tokio::sync::OnceCell::const_new();
        let pg = PG
            .get_or_init(|| async {
                tokio::task::spawn_blocking(PgCluster::start)
                    .await
                    .unwrap()
                    .expect("start PostgreSQL")
            })
            .await;
        Some(pg.create_database().await.expect("create database"))
    }
    #[cfg(not(feature = "test-postgres"))]
    panic!("PEERCHAT_TEST_DATABASE=postgres needs the test-postgres feature")
}

/// A config for `dir` with the fixed server key and a clock tests can move.
pub fn config(dir: &std::path::Path, clock: Arc<OffsetClock>) -> Config {
    let mut c = Config::for_tests(dir.to_path_buf());
    c.identity = Some(test_keys::identity(SERVER_KEY));
    c.clock = clock;
    c
}

impl TestServer {
    /// Starts a server with default test settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `tweak` adjusts its config.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(OffsetClock::default());
        let database_url = database_url().await;
        let mut c = config(dir.path(), clock.clone());
        c.database_url.clone_from(&database_url);
        tweak(&mut c);
        let server = peerchat_server::start(c).await.unwrap();
        Self {
            addr: server.local_addr,
            server: Some(server),
            dir,
            clock,
            database_url,
        }
    }

    /// Graceful shutdown, then a new server on the same data directory.
    pub async fn restart(&mut self, tweak: impl FnOnce(&mut Config)) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        let mut c = config(self.dir.path(), self.clock.clone());
        c.database_url.clone_from(&self.database_url);
        tweak(&mut c);
        let server = peerchat_server::start(c).await.unwrap();
        self.addr = server.local_addr;
        self.server = Some(server);
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    /// A client with fixed identity `key`.
    pub async fn client(&self, key: usize) -> Client {
        Client::connect(self.addr, key).await
    }

    /// Registers `userid` with key `key` on a fresh connection and returns a logged-in client.
    pub async fn user(&self, userid: &str, key: usize) -> Client {
        let mut c = self.client(key).await;
        c.register(userid).await;
        c.login(userid).await;
        c
    }
}

fn init_tracing() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
    });
}

/// Per-key LocalIdentity, made once per test binary (one RSA signature each).
pub fn local(key: usize) -> LocalIdentity {
    static IDS: OnceLock<Vec<LocalIdentity>> = OnceLock::new();
    IDS.get_or_init(|| {
        (0..test_keys::COUNT)
            .map(|i| LocalIdentity::new(test_keys::identity(i)).unwrap())
            .collect()
    })[key % test_keys::COUNT]
        .clone()
}

/// The DER of fixed key `key`.
pub fn key_der(key: usize) -> Vec<u8> {
    test_keys::identity(key).public().to_der().to_vec()
}

/// What the server sent, one frame at a time.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Got {
    Frame(ServerFrame),
    /// Clean EOF.
    Eof,
    /// Read error (reset, truncation).
    Error(String),
}

/// A protocol client over real TCP.
pub struct Client {
    stream: TcpStream,
    sealer: Sealer,
    opener: Opener,
    inbuf: BytesMut,
    next_id: u64,
    /// Pushes received while waiting for something else, oldest first.
    pub pushes: VecDeque<PushEvent>,
    /// A Close received while waiting for something else.
    pub closed: Option<(CloseReason, String)>,
    pub key: usize,
}

impl Client {
    /// Connects and completes the handshake with fixed identity `key`.
    pub async fn connect(addr: SocketAddr, key: usize) -> Self {
        Self::connect_kind(addr, key, ChannelKind::ClientServer).await
    }

    /// Connects with channel kind `kind` (a relay connection: `ChannelKind::Relay`).
    pub async fn connect_kind(addr: SocketAddr, key: usize, kind: ChannelKind) -> Self {
        Self::connect_after(addr, key, kind, &[]).await
    }

    /// As [`Client::connect_kind`], sending `prefix` (e.g. a PROXY protocol header) first.
    pub async fn connect_after(
        addr: SocketAddr,
        key: usize,
        kind: ChannelKind,
        prefix: &[u8],
    ) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream.write_all(prefix).await.unwrap();
        let local = local(key);
        let mut hs = Handshake::new(&local, Role::Initiator, kind).unwrap();
        let mut inbuf = BytesMut::new();
        while !hs.is_finished() {
            if hs.is_my_turn() {
                let msg = hs.write_message().unwrap();
                let mut out = BytesMut::new();
                put_record(&mut out, &msg).unwrap();
                stream.write_all(&out).await.unwrap();
            } else {
                let rec = tokio::time::timeout(WAIT, read_record(&mut stream, &mut inbuf))
                    .await
                    .unwrap()
                    .expect("handshake record");
                hs.read_message(&rec).unwrap();
            }
        }
        let (Transport { sealer, opener }, remote) = hs.finish().unwrap();
        assert_eq!(
            remote.identity_key,
            *test_keys::identity(SERVER_KEY).public()
        );
        Self {
            stream,
            sealer,
            opener,
            inbuf,
            next_id: 1,
            pushes: VecDeque::new(),
            closed: None,
            key,
        }
    }

    /// This connection's local address: what the server observes (SPEC.md §7.5).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    /// After RelayOpenOk: the socket and the raw bytes read past the server's last record
    /// (the start of the relayed stream, SPEC.md §7.7).
    pub fn into_relayed(self) -> (TcpStream, BytesMut) {
        assert!(
            !self.opener.has_partial_frame(),
            "a frame after RelayOpenOk"
        );
        (self.stream, self.inbuf)
    }

    /// Sends one ClientMessage.
    pub async fn send(&mut self, msg: &wire::ClientMessage) {
        self.sealer.queue_message(msg).unwrap();
        self.flush().await;
    }

    /// Sends raw plaintext into the encrypted stream (may break framing on purpose).
    pub async fn send_raw_plaintext(&mut self, bytes: &[u8]) {
        self.sealer.queue_raw_plaintext(bytes);
        self.flush().await;
    }

    /// Writes raw bytes on TCP, outside the encryption.
    pub async fn send_raw_tcp(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    async fn flush(&mut self) {
        let mut out = BytesMut::new();
        self.sealer.flush(&mut out).unwrap();
        // The server may already have closed; tests then look at what it sent.
        let _ = self.stream.write_all(&out).await;
    }

    /// Sends `req` with a fresh request id and returns the id.
    pub async fn send_request(&mut self, req: Request) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&req.into_message(id)).await;
        id
    }

    /// Sends `req` and waits for its response, collecting pushes and answering pings.
    pub async fn request(&mut self, req: Request) -> Result<ResponseBody, RequestError> {
        let id = self.send_request(req).await;
        self.response(id).await
    }

    /// Waits for the response to request `id`.
    pub async fn response(&mut self, id: u64) -> Result<ResponseBody, RequestError> {
        loop {
            match self.next().await {
                Got::Frame(ServerFrame::Response { request_id, result }) => {
                    assert_eq!(request_id, id, "responses come in request order");
                    return result;
                }
                Got::Frame(ServerFrame::Close { reason, message }) => {
                    panic!("closed while waiting for response {id}: {reason:?} {message}")
                }
                Got::Frame(_) => {}
                other => panic!("connection ended while waiting for response {id}: {other:?}"),
            }
        }
    }

    /// The error code of request `req`, which must fail.
    pub async fn error(&mut self, req: Request) -> ErrorCode {
        match self.request(req).await {
            Err(e) => e.code,
            Ok(body) => panic!("expected an error, got {body:?}"),
        }
    }

    /// The next frame (pushes are also appended to `pushes`; pings are answered).
    pub async fn next(&mut self) -> Got {
        let got = match tokio::time::timeout(WAIT, self.read_frame()).await {
            Ok(g) => g,
            Err(_) => panic!("nothing received within {WAIT:?}"),
        };
        match &got {
            Got::Frame(ServerFrame::Push(p)) => self.pushes.push_back(p.clone()),
            Got::Frame(ServerFrame::Ping(n)) => {
                let n = *n;
                self.send(&wire::ClientMessage {
                    request_id: 0,
                    body: Some(wire::client_message::Body::Pong(wire::Pong { nonce: n })),
                })
                .await;
            }
            Got::Frame(ServerFrame::Close { reason, message }) => {
                self.closed = Some((*reason, message.clone()))
            }
            _ => {}
        }
        got
    }

    /// The next frame without answering pings (for idle tests).
    pub async fn next_raw(&mut self) -> Got {
        tokio::time::timeout(WAIT, self.read_frame())
            .await
            .expect("nothing received in time")
    }

    async fn read_frame(&mut self) -> Got {
        loop {
            match self.opener.next_frame() {
                Ok(Some(f)) => {
                    let msg = wire::ServerMessage::decode(f).expect("server frame decodes");
                    return Got::Frame(ServerFrame::try_from(msg).expect("server frame is valid"));
                }
                Ok(None) => {}
                Err(e) => return Got::Error(e.to_string()),
            }
            match read_record(&mut self.stream, &mut self.inbuf).await {
                Some(rec) => {
                    if let Err(e) = self.opener.open_record(&rec) {
                        return Got::Error(e.to_string());
                    }
                }
                None if self.inbuf.is_empty() && !self.opener.has_partial_frame() => {
                    return Got::Eof
                }
                None => return Got::Error("truncated".into()),
            }
        }
    }

    /// Waits for a push matching `pred` (looking first at pushes already received) and
    /// removes it from `pushes`.
    pub async fn expect_push(&mut self, pred: impl Fn(&PushEvent) -> bool) -> PushEvent {
        loop {
            if let Some(i) = self.pushes.iter().position(&pred) {
                return self.pushes.remove(i).unwrap();
            }
            match self.next().await {
                Got::Frame(_) => {}
                other => panic!(
                    "connection ended while waiting for a push: {other:?}; pushes so far {:?}",
                    self.pushes
                ),
            }
        }
    }

    /// Waits for Close and returns its reason; then expects the connection to end.
    pub async fn expect_close(&mut self) -> CloseReason {
        loop {
            if let Some((reason, _)) = &self.closed {
                return *reason;
            }
            match self.next().await {
                Got::Frame(_) => {}
                other => panic!("connection ended without Close: {other:?}"),
            }
        }
    }

    /// Waits until the server closes the TCP connection (EOF or reset), skipping frames.
    /// Returns the Close reason if one came.
    pub async fn expect_end(&mut self) -> Option<CloseReason> {
        loop {
            match self.next().await {
                Got::Frame(_) => {}
                Got::Eof | Got::Error(_) => return self.closed.as_ref().map(|c| c.0),
            }
        }
    }

    /// A round trip (Ping/Pong): every push the server queued for this client before the
    /// round trip started has arrived once this returns. Used to assert that something was
    /// NOT pushed, without sleeping.
    pub async fn barrier(&mut self) {
        static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_000_000);
        let nonce = NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.send(&wire::ClientMessage {
            request_id: 0,
            body: Some(wire::client_message::Body::Ping(wire::Ping { nonce })),
        })
        .await;
        loop {
            match self.next().await {
                Got::Frame(ServerFrame::Pong(n)) if n == nonce => return,
                Got::Frame(_) => {}
                other => panic!("connection ended during barrier: {other:?}"),
            }
        }
    }

    // ---- request shorthands ----

    pub async fn register_with(
        &mut self,
        userid: &str,
        email: &str,
        password: &str,
    ) -> Result<ResponseBody, RequestError> {
        self.request(Request::Register {
            userid: userid.into(),
            email: email.into(),
            password: Secret(password.into()),
        })
        .await
    }

    /// Registers `userid` with e-mail `<userid>@example.org` and [`PW`]; returns the recovery code.
    pub async fn register(&mut self, userid: &str) -> String {
        match self
            .register_with(userid, &format!("{userid}@example.org"), PW)
            .await
        {
            Ok(ResponseBody::Register { recovery_code }) => recovery_code,
            other => panic!("register {userid}: {other:?}"),
        }
    }

    pub async fn login_with(
        &mut self,
        userid: &str,
        password: &str,
        endpoint: Option<Endpoint>,
    ) -> Result<ResponseBody, RequestError> {
        self.request(Request::Login {
            userid: userid.into(),
            password: Secret(password.into()),
            endpoint,
            announcement: Default::default(),
        })
        .await
    }

    /// Logs in with [`PW`] and returns the snapshot.
    pub async fn login(&mut self, userid: &str) -> LoginSnapshot {
        match self.login_with(userid, PW, None).await {
            Ok(ResponseBody::Login(s)) => s,
            other => panic!("login {userid}: {other:?}"),
        }
    }

    pub async fn key_login(
        &mut self,
        userid: &str,
        endpoint: Option<Endpoint>,
    ) -> Result<ResponseBody, RequestError> {
        self.request(Request::KeyLogin {
            userid: userid.into(),
            endpoint,
            announcement: Default::default(),
        })
        .await
    }

    pub async fn find(&mut self, userid: &str) -> (bool, String) {
        match self
            .request(Request::Find {
                userid: userid.into(),
            })
            .await
        {
            Ok(ResponseBody::Find { found, userid }) => (found, userid),
            other => panic!("find: {other:?}"),
        }
    }

    pub async fn send_friend_request(
        &mut self,
        userid: &str,
    ) -> Result<Option<FriendInfo>, RequestError> {
        match self
            .request(Request::SendFriendRequest {
                userid: userid.into(),
            })
            .await?
        {
            ResponseBody::SendFriendRequest { friend } => Ok(friend),
            other => panic!("send request: {other:?}"),
        }
    }

    pub async fn accept(&mut self, userid: &str) -> Result<FriendInfo, RequestError> {
        match self
            .request(Request::AcceptFriendRequest {
                userid: userid.into(),
            })
            .await?
        {
            ResponseBody::AcceptFriendRequest(f) => Ok(f),
            other => panic!("accept: {other:?}"),
        }
    }

    pub async fn refuse(&mut self, userid: &str) -> Result<(), RequestError> {
        self.request(Request::RefuseFriendRequest {
            userid: userid.into(),
        })
        .await
        .map(|_| ())
    }

    pub async fn unfriend(&mut self, userid: &str) -> Result<(), RequestError> {
        self.request(Request::Unfriend {
            userid: userid.into(),
        })
        .await
        .map(|_| ())
    }

    pub async fn logout(&mut self) {
        assert_eq!(
            self.request(Request::Logout).await,
            Ok(ResponseBody::Logout)
        );
    }

    /// Sends a Close frame and shuts down the write side.
    pub async fn close(mut self) {
        self.send(&wire::ClientMessage {
            request_id: 0,
            body: Some(wire::client_message::Body::Close(wire::Close {
                reason: CloseReason::Normal as i32,
                message: String::new(),
            })),
        })
        .await;
        let _ = self.stream.shutdown().await;
    }
}

/// Makes `a` and `b` (both logged in) friends via request + accept, consuming the pushes.
pub async fn befriend(a: &mut Client, b: &mut Client, b_userid: &str, a_userid: &str) {
    assert_eq!(a.send_friend_request(b_userid).await.unwrap(), None);
    b.expect_push(|p| matches!(p, PushEvent::FriendRequestReceived(r) if r.userid == a_userid))
        .await;
    b.accept(a_userid).await.unwrap();
    a.expect_push(|p| matches!(p, PushEvent::FriendRequestAccepted(f) if f.userid == b_userid))
        .await;
}

async fn read_record(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<BytesMut> {
    loop {
        match RecordCodec.decode(buf) {
            Ok(Some(rec)) => return Some(rec),
            Ok(None) => {}
            Err(_) => return None,
        }
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// A ClientMessage frame as the server would decode it (for sanity checks in tests).
pub fn decode_client(bytes: &[u8]) -> ClientFrame {
    ClientFrame::from(wire::ClientMessage::decode(bytes).unwrap())
}

/// Runs the peer handshake through the relay: the opener is the initiator (SPEC.md §7.7).
pub async fn peer_channels(
    a: (TcpStream, BytesMut),
    b: (TcpStream, BytesMut),
) -> (
    peerchat_proto::Channel<TcpStream>,
    peerchat_proto::Channel<TcpStream>,
) {
    let bob_key = test_keys::identity(1).public().clone();
    let (la, lb) = (local(0), local(1));
    let (ca, cb) = tokio::join!(
        peerchat_proto::Channel::handshake_verified(
            a.0,
            a.1,
            &la,
            Role::Initiator,
            ChannelKind::Peer,
            WAIT,
            |k| *k == bob_key
        ),
        peerchat_proto::Channel::handshake_verified(
            b.0,
            b.1,
            &lb,
            Role::Responder,
            ChannelKind::Peer,
            WAIT,
            |_| true
        ),
    );
    let (ca, cb) = (ca.unwrap(), cb.unwrap());
    assert_eq!(ca.remote.identity_key, *test_keys::identity(1).public());
    assert_eq!(cb.remote.identity_key, *test_keys::identity(0).public());
    (ca, cb)
}
