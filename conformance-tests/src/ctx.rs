//! What a case body gets: the suite configuration and helpers that set up users, sessions and
//! friendships through the protocol itself.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerchat_proto::wire::{self, response};
use rand::Rng;

use crate::client::{describe, is, req, Client, ClientError};
use crate::config::SuiteConfig;
use crate::ident;
use crate::verdict::Verdict;
use crate::{check, fail, ok};

/// How long a case waits for a push the spec says is sent "immediately".
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a case watches for a push that must NOT arrive (after a positive control showed
/// the server already handled the event).
pub const QUIET_WINDOW: Duration = Duration::from_millis(700);

/// The per-case context.
#[derive(Clone)]
pub struct Ctx {
    /// The run's configuration.
    pub cfg: Arc<SuiteConfig>,
}

/// An account created by a case.
#[derive(Debug, Clone)]
pub struct User {
    /// Registered spelling.
    pub userid: String,
    /// E-mail address.
    pub email: String,
    /// Current password.
    pub password: String,
    /// Test key index the account was registered with.
    pub key: usize,
    /// Last recovery code handed out.
    pub recovery_code: String,
}

impl User {
    /// A random, not yet registered user with a random test key.
    pub fn random() -> Self {
        let userid = ident::userid();
        Self {
            email: ident::email(&userid),
            userid,
            password: ident::password(),
            key: ident::random_key(),
            recovery_code: String::new(),
        }
    }
}

impl Ctx {
    /// A source address for a new connection: a random 127.0.0.0/8 address when the server is
    /// on IPv4 loopback (so per-IP limits never leak between cases), else the default.
    pub fn source(&self) -> Option<IpAddr> {
        match self.cfg.server.ip() {
            IpAddr::V4(v4) if self.cfg.spread_sources && v4.is_loopback() => {
                Some(random_loopback())
            }
            _ => None,
        }
    }

    /// True if connections can come from distinct loopback addresses.
    pub fn can_spread_sources(&self) -> bool {
        self.source().is_some()
    }

    /// Connects with test key `key` from a fresh source address.
    ///
    /// # Errors
    /// See [`Client::connect`].
    pub async fn connect(&self, key: usize) -> Result<Client, ClientError> {
        Client::connect(&self.cfg, key, self.source()).await
    }

    /// Connects with test key `key` from `source`.
    ///
    /// # Errors
    /// See [`Client::connect`].
    pub async fn connect_from(
        &self,
        key: usize,
        source: Option<IpAddr>,
    ) -> Result<Client, ClientError> {
        Client::connect(&self.cfg, key, source).await
    }

    /// Registers `u` on a fresh connection; stores the recovery code in it.
    ///
    /// # Errors
    /// FAIL if the server does not answer RegisterOk.
    pub async fn register(&self, u: &mut User) -> Result<(), Verdict> {
        let mut c = self.connect(u.key).await?;
        let r = c
            .request_patiently(req::register(&u.userid, &u.email, &u.password))
            .await?;
        let ok = ok!(r, Register, format!("Register {}", u.userid));
        u.recovery_code = ok.recovery_code;
        Ok(())
    }

    /// Creates a registered random user.
    ///
    /// # Errors
    /// As [`Ctx::register`].
    pub async fn new_user(&self) -> Result<User, Verdict> {
        let mut u = User::random();
        self.register(&mut u).await?;
        Ok(u)
    }

    /// Takes a logged-in client offline and returns once the server has done so: Logout is
    /// answered only after the session has ended and friends were told FriendOffline (SPEC.md
    /// §5.6), so the next step sees the offline state. Waiting for that fact instead of sleeping
    /// after a drop keeps the cases fast and free of timing races.
    ///
    /// # Errors
    /// FAIL if the server does not answer LogoutOk.
    pub async fn go_offline(&self, mut c: Client) -> Result<(), Verdict> {
        ok!(c.request(req::logout()).await?, Logout, "Logout");
        Ok(())
    }

    /// Logs `u` in with its password on a fresh connection with its key.
    ///
    /// # Errors
    /// FAIL if the server does not answer LoginOk.
    pub async fn login(&self, u: &User) -> Result<(Client, wire::LoginOk), Verdict> {
        self.login_with(u, u.key, None).await
    }

    /// Logs `u` in with its password, from test key `key`, announcing `endpoint`.
    ///
    /// # Errors
    /// FAIL if the server does not answer LoginOk.
    pub async fn login_with(
        &self,
        u: &User,
        key: usize,
        endpoint: Option<wire::PeerEndpoint>,
    ) -> Result<(Client, wire::LoginOk), Verdict> {
        let mut c = self.connect(key).await?;
        let r = c
            .request(req::login(&u.userid, &u.password, endpoint))
            .await?;
        let ok = ok!(r, Login, format!("Login {}", u.userid));
        Ok((c, ok))
    }

    /// A registered user, logged in.
    ///
    /// # Errors
    /// As [`Ctx::new_user`] and [`Ctx::login`].
    pub async fn online_user(&self) -> Result<(User, Client), Verdict> {
        let u = self.new_user().await?;
        let (c, _) = self.login(&u).await?;
        Ok((u, c))
    }

    /// Makes two online users friends (a asks, b accepts) and consumes the pushes that causes.
    ///
    /// # Errors
    /// FAIL if any step departs from SPEC.md §6.2/§6.3.
    pub async fn befriend(
        &self,
        a: &User,
        ac: &mut Client,
        b: &User,
        bc: &mut Client,
    ) -> Result<(), Verdict> {
        let r = ac.request_patiently(req::send_request(&b.userid)).await?;
        let sent = ok!(r, SendFriendRequest, "SendFriendRequest");
        check!(
            sent.friend.is_none(),
            "SendFriendRequest to a user with no request pending reported a friend already"
        );
        bc.expect_push(
            "FriendRequestReceived",
            PUSH_TIMEOUT,
            is::request_from(&a.userid),
        )
        .await?;
        let r = bc.request_patiently(req::accept(&a.userid)).await?;
        ok!(r, AcceptFriendRequest, "AcceptFriendRequest");
        ac.expect_push(
            "FriendRequestAccepted",
            PUSH_TIMEOUT,
            is::accepted_by(&b.userid),
        )
        .await?;
        Ok(())
    }

    /// Two registered, online users who are friends.
    ///
    /// # Errors
    /// As [`Ctx::befriend`].
    pub async fn friends(&self) -> Result<(User, Client, User, Client), Verdict> {
        let (a, mut ac) = self.online_user().await?;
        let (b, mut bc) = self.online_user().await?;
        self.befriend(&a, &mut ac, &b, &mut bc).await?;
        Ok((a, ac, b, bc))
    }

    /// Checks that a fresh client still gets served: handshake, Ping/Pong, and a request
    /// answered. Every abuse case ends with this.
    ///
    /// # Errors
    /// FAIL naming what no longer works.
    pub async fn server_still_serves(&self) -> Result<(), Verdict> {
        let mut c = match self.connect(ident::random_key()).await {
            Ok(c) => c,
            Err(e) => fail!("afterwards a fresh client cannot connect: {e}"),
        };
        let nonce = rand::thread_rng().gen::<u64>() | 1;
        c.send(&wire::ClientMessage {
            request_id: 0,
            body: Some(req::ping(nonce)),
        })
        .await?;
        if let Err(e) = c.expect_pong(nonce, Duration::from_secs(10)).await {
            fail!("afterwards a fresh client gets no Pong: {e}");
        }
        match c.request(req::find("nobody")).await {
            Ok(response::Result::Error(e)) if e.code == wire::ErrorCode::NotLoggedIn as i32 => {
                Ok(())
            }
            Ok(other) => fail!(
                "afterwards a fresh client's Find before login got {}",
                describe(&other)
            ),
            Err(e) => fail!("afterwards a fresh client's request failed: {e}"),
        }
    }
}

/// A random address in 127.0.0.0/8 other than 127.0.0.1.
pub fn random_loopback() -> IpAddr {
    let mut rng = rand::thread_rng();
    IpAddr::V4(Ipv4Addr::new(
        127,
        rng.gen_range(1..=254),
        rng.gen(),
        rng.gen_range(1..=254),
    ))
}

/// Fails unless `r` is the error `code`; returns the Error.
///
/// # Errors
/// FAIL naming what came instead.
///
/// Every error is also checked against SPEC.md §9.1: `message` at most MAX_HUMAN_TEXT bytes,
/// `retry_after_ms` non-zero exactly with RATE_LIMITED.
pub fn expect_code(
    r: &response::Result,
    code: wire::ErrorCode,
    what: &str,
) -> Result<wire::Error, Verdict> {
    match r {
        response::Result::Error(e) if e.code == code as i32 => {
            check!(
                e.message.len() <= peerchat_proto::limits::MAX_HUMAN_TEXT,
                "{what}: Error.message is {} bytes (MAX_HUMAN_TEXT {})",
                e.message.len(),
                peerchat_proto::limits::MAX_HUMAN_TEXT
            );
            let limited = code == wire::ErrorCode::RateLimited;
            check!(
                limited == (e.retry_after_ms != 0),
                "{what}: {} with retry_after_ms {} (§9.1: non-zero exactly with RATE_LIMITED)",
                code.as_str_name(),
                e.retry_after_ms
            );
            Ok(e.clone())
        }
        other => Err(Verdict::Fail(format!(
            "{what}: expected {}, got {}",
            code.as_str_name(),
            describe(other)
        ))),
    }
}

/// True if `code` looks like a recovery code as SPEC.md §5.1.4 hands it out.
pub fn is_recovery_code(code: &str) -> bool {
    let groups: Vec<&str> = code.split('-').collect();
    groups.len() == 4
        && groups.iter().all(|g| {
            g.len() == 5
                && g.bytes()
                    .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        })
}

/// A not-logged-in connection for a run of Registers that may take longer than the server's
/// LOGIN_DEADLINE (SPEC.md §4.6: a connection that does not log in is closed after it). It
/// replaces its connection when half the deadline has passed, so a slow server (argon2 under
/// load) cannot turn a registration-limit case into a login-deadline failure.
pub struct Registrar {
    ctx: Ctx,
    source: Option<IpAddr>,
    conn: Option<(Client, Instant)>,
}

impl Registrar {
    /// Registers from `source` (or the suite's default address).
    pub fn new(ctx: &Ctx, source: Option<IpAddr>) -> Self {
        Registrar {
            ctx: ctx.clone(),
            source,
            conn: None,
        }
    }

    async fn conn(&mut self) -> Result<&mut Client, ClientError> {
        let deadline = self
            .ctx
            .cfg
            .login_deadline
            .unwrap_or(peerchat_proto::limits::LOGIN_DEADLINE);
        let conn = match self.conn.take() {
            Some((c, opened)) if opened.elapsed() < deadline / 2 => (c, opened),
            _ => (
                self.ctx
                    .connect_from(ident::random_key(), self.source)
                    .await?,
                Instant::now(),
            ),
        };
        Ok(&mut self.conn.insert(conn).0)
    }

    /// Sends one request on a connection young enough to outlive it.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub async fn request(
        &mut self,
        body: wire::client_message::Body,
    ) -> Result<response::Result, ClientError> {
        self.conn().await?.request(body).await
    }

    /// As [`Client::request_patiently`].
    ///
    /// # Errors
    /// As [`Client::request_patiently`].
    pub async fn request_patiently(
        &mut self,
        body: wire::client_message::Body,
    ) -> Result<response::Result, ClientError> {
        self.conn().await?.request_patiently(body).await
    }
}
