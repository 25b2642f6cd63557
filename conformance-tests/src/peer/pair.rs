//! One case's cast: the friend (the suite) and the client under test, friends on the
//! server, the client running `chat`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use peerchat_proto::wire::{self, peer_message::Body, push};

use super::link::FriendLink;
use super::sut::{self, Sut, SUT_PASSWORD};
use super::PeerTarget;
use crate::client::{req, Client};
use crate::ctx::{Ctx, User};
use crate::ident;
use crate::verdict::Verdict;
use crate::{fail, ok};

/// How long the suite waits for something the client does at once (an answer, an event).
pub const ANSWER: Duration = Duration::from_secs(10);
/// How long the suite watches for something that must NOT happen, after a positive control.
pub const QUIET: Duration = Duration::from_millis(800);

/// Per-case choices.
#[derive(Debug, Clone, Copy, Default)]
pub struct PairOptions {
    /// `--auto-accept-max`: offers up to this size are accepted at once (0: none).
    pub auto_accept: u64,
    /// Start the client with the target's short idle timers (the case is skipped if the
    /// target has none).
    pub short_idle: bool,
    /// The friend's hellos name `file-blake3` (SPEC.md §8.3.1): a streamed-hash friend
    /// instead of a version-1 one.
    pub blake3: bool,
    /// A second friend of the client's account registered with the friend's own key
    /// (Appendix C item 14: keys may be shared), for the cases of SPEC.md §8.5.1 L12.
    pub twin: bool,
}

/// The friend (played by the suite) and the client under test.
pub struct Pair {
    /// The client under test, running `chat`.
    pub sut: Sut,
    /// The client's account.
    pub sut_user: User,
    /// The friend's account.
    pub friend: User,
    /// The friend's server connection (logged in, announcing `listener`).
    pub friend_conn: Client,
    /// Where the friend accepts the client's dials.
    pub listener: tokio::net::TcpListener,
    /// Where the client accepts peer connections.
    pub sut_addr: SocketAddr,
    /// The client's idle timers when started with short ones.
    pub idle: Option<(Duration, Duration)>,
    /// The case's folder (the client's profile and downloads), removed with the pair.
    pub dir: DirGuard,
    /// The features the friend names in its hellos.
    pub features: Vec<String>,
    /// The second friend with the friend's key ([`PairOptions::twin`]); logged out.
    pub twin: Option<User>,
}

fn target(ctx: &Ctx) -> Result<&PeerTarget, Verdict> {
    match ctx.cfg.peer.as_deref() {
        Some(t) => Ok(t),
        None => Err(Verdict::Skip(
            "no client under test (run `peerchat-conformance peer`)".into(),
        )),
    }
}

impl Pair {
    /// Registers both accounts, makes them friends, starts the client and waits until the
    /// friend sees it online with a peer endpoint.
    ///
    /// # Errors
    /// FAIL if any step fails; SKIP without a client under test, or for `short_idle` when
    /// the target has no short timers.
    pub async fn start(ctx: &Ctx, opts: PairOptions) -> Result<Pair, Verdict> {
        let target = target(ctx)?.clone();
        let idle = if opts.short_idle {
            match target.idle {
                Some(t) => Some(t),
                None => {
                    return Err(Verdict::Skip(
                        "needs a client with short idle timers (peerchat-cli built with the \
                         `test-hooks` feature: --test-idle-ms; the suite's --client-idle-ms)"
                            .into(),
                    ))
                }
            }
        } else {
            None
        };
        let friend = ctx.new_user().await?;
        let mut s = User::random();
        s.key = ident::other_key(friend.key);
        s.password = SUT_PASSWORD.into();
        ctx.register(&mut s).await?;
        let (mut sc, _) = ctx.login(&s).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Verdict::Fail(format!("cannot listen for the client: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| Verdict::Fail(e.to_string()))?
            .port();
        let (mut fc, _) = ctx
            .login_with(
                &friend,
                friend.key,
                Some(req::ep("127.0.0.1", u32::from(port))),
            )
            .await?;
        ctx.befriend(&friend, &mut fc, &s, &mut sc).await?;
        let twin = if opts.twin {
            let mut w = User::random();
            w.key = friend.key;
            ctx.register(&mut w).await?;
            let (mut wc, _) = ctx.login(&w).await?;
            ctx.befriend(&w, &mut wc, &s, &mut sc).await?;
            ctx.go_offline(wc).await?;
            Some(w)
        } else {
            None
        };
        ctx.go_offline(sc).await?;
        fc.expect_push(
            "FriendOffline",
            ANSWER,
            crate::client::is::offline(&s.userid),
        )
        .await?;

        let dir = target
            .work_dir
            .join(format!("peerchat-peer-{}", ident::alnum(12)));
        let guard = DirGuard(dir.clone());
        let profile = dir.join("client");
        std::fs::create_dir_all(&profile)
            .and_then(|()| {
                std::fs::write(
                    profile.join("identity.pem"),
                    peerchat_proto::test_keys::pem(s.key),
                )
            })
            .map_err(|e| Verdict::Fail(format!("cannot make the client's profile: {e}")))?;
        let server = ctx.cfg.server.to_string();
        let mut extra = vec![
            "--auto-accept-max".to_string(),
            opts.auto_accept.to_string(),
            "--download-dir".to_string(),
            dir.join("downloads").display().to_string(),
        ];
        if let Some((ping, close)) = idle {
            extra.push("--test-idle-ms".into());
            extra.push(format!("{},{}", ping.as_millis(), close.as_millis()));
        }
        let mut login = sut::command(&target, &server, &profile, &extra);
        login.args(["login", &s.userid]);
        sut::run_once(login, "login").await?;
        // That one-shot session came and went: its FriendOnline (with an endpoint nobody
        // listens on any more) must not be mistaken for the chat session's.
        fc.expect_push(
            "FriendOffline after the login",
            ANSWER,
            crate::client::is::offline(&s.userid),
        )
        .await?;
        let _ = fc
            .expect_push(
                "the login's FriendOnline",
                Duration::from_millis(50),
                crate::client::is::online(&s.userid),
            )
            .await;
        let mut chat = sut::command(&target, &server, &profile, &extra);
        chat.arg("chat");
        let mut client = Sut::spawn(chat)?;
        client
            .wait_event("logged_in", ANSWER, sut::event("logged_in"))
            .await?;
        let (_, p) = fc
            .expect_push(
                "FriendOnline with an endpoint",
                ANSWER,
                |p| matches!(p, push::Body::FriendOnline(o) if o.userid.eq_ignore_ascii_case(&s.userid) && o.peer_endpoint.is_some()),
            )
            .await?;
        let sut_addr = match p {
            push::Body::FriendOnline(wire::FriendOnline {
                peer_endpoint: Some(ep),
                ..
            }) => format!("{}:{}", ep.host, ep.port)
                .parse::<SocketAddr>()
                .map_err(|e| Verdict::Fail(format!("the client announced a bad endpoint: {e}")))?,
            _ => fail!("FriendOnline without an endpoint"),
        };
        Ok(Pair {
            sut: client,
            sut_user: s,
            friend,
            friend_conn: fc,
            listener,
            sut_addr,
            idle,
            dir: guard,
            features: if opts.blake3 {
                vec![peerchat_proto::message::FEATURE_FILE_BLAKE3.to_string()]
            } else {
                Vec::new()
            },
            twin,
        })
    }

    /// The friend's hello for this pair.
    pub fn hello(&self) -> Body {
        Body::Hello(wire::PeerHello {
            userid: self.friend.userid.clone(),
            to_userid: self.sut_user.userid.clone(),
            // A version-1 friend names no optional feature (SPEC.md §7.2 rule 9); a
            // streamed-hash one names `file-blake3` (PairOptions::blake3).
            features: self.features.clone(),
        })
    }

    /// Dials the client and completes the hello exchange (friend first, as initiator).
    ///
    /// # Errors
    /// FAIL if the client does not answer with its own hello.
    pub async fn dial(&self) -> Result<FriendLink, Verdict> {
        let mut link = self.dial_raw().await?;
        link.send(self.hello()).await?;
        self.expect_hello(&mut link).await?;
        Ok(link)
    }

    /// Dials the client: Noise handshake only.
    ///
    /// # Errors
    /// FAIL if the handshake fails.
    pub async fn dial_raw(&self) -> Result<FriendLink, Verdict> {
        FriendLink::dial_raw(self.sut_addr, &ident::key(self.friend.key).local).await
    }

    /// Expects the client's hello naming itself and the friend.
    ///
    /// # Errors
    /// FAIL naming what came instead.
    pub async fn expect_hello(&self, link: &mut FriendLink) -> Result<(), Verdict> {
        let b = link
            .expect("PeerHello", ANSWER, |b| matches!(b, Body::Hello(_)))
            .await?;
        if let Body::Hello(h) = b {
            if h.userid != self.sut_user.userid || h.to_userid != self.friend.userid {
                fail!(
                    "the client's PeerHello says {}→{}, expected {}→{} (registered spellings)",
                    h.userid,
                    h.to_userid,
                    self.sut_user.userid,
                    self.friend.userid
                );
            }
        }
        Ok(())
    }

    /// Waits for the client to dial the friend and completes the hello exchange (client
    /// first, as initiator).
    ///
    /// # Errors
    /// FAIL if it does not dial or its hello is wrong.
    pub async fn accept(&self) -> Result<FriendLink, Verdict> {
        let mut link = self.accept_raw().await?;
        self.expect_hello(&mut link).await?;
        link.send(self.hello()).await?;
        Ok(link)
    }

    /// Waits for the client to dial the friend: Noise handshake only.
    ///
    /// # Errors
    /// FAIL if it does not dial.
    pub async fn accept_raw(&self) -> Result<FriendLink, Verdict> {
        FriendLink::accept_raw(&self.listener, &ident::key(self.friend.key).local, ANSWER).await
    }

    /// Tells the client (on its stdin) to send `text` to the friend.
    ///
    /// # Errors
    /// FAIL if the client's stdin is closed.
    pub async fn sut_says(&mut self, text: &str) -> Result<(), Verdict> {
        let line = format!("/msg {} {text}", self.friend.userid);
        self.sut.say(&line).await
    }

    /// Ends the case: the client quits, the friend logs out.
    pub async fn finish(self) {
        let Pair {
            sut, friend_conn, ..
        } = self;
        sut.quit().await;
        let mut fc = friend_conn;
        let _ = fc.request(req::logout()).await;
    }

    /// The client's account checked against a server answer (helper for cases).
    ///
    /// # Errors
    /// FAIL if the server does not answer LogoutOk.
    pub async fn friend_logout(&mut self) -> Result<(), Verdict> {
        ok!(
            self.friend_conn.request(req::logout()).await?,
            Logout,
            "Logout"
        );
        Ok(())
    }
}

/// Removes a folder when dropped.
pub struct DirGuard(pub PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
