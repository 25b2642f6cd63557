//! Issue #10, "Hostile users", over real TCP: what one address or a stranger who knows only a
//! userid could do to the server and to other users, and what the server does now.

mod common;

use common::*;
use peerchat_proto::limits::{LOGIN_FAIL_ACCOUNT_MAX, LOGIN_FAIL_IP_MAX};
use peerchat_proto::message::{Request, ResponseBody, Secret};
use peerchat_proto::wire::ErrorCode;

/// `n` connections from 127.0.0.1, each sending one request built by `req(i)` before any
/// answer is awaited, so that the server evaluates them concurrently. Returns the answers.
async fn concurrently(
    t: &TestServer,
    n: usize,
    key: usize,
    req: impl Fn(usize) -> Request,
) -> Vec<Result<ResponseBody, ErrorCode>> {
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(t.client(key).await);
    }
    let mut ids = Vec::new();
    for (i, c) in conns.iter_mut().enumerate() {
        ids.push(c.send_request(req(i)).await);
    }
    let mut out = Vec::new();
    for (c, id) in conns.iter_mut().zip(ids) {
        out.push(c.response(id).await.map_err(|e| e.code));
    }
    out
}

fn count(rs: &[Result<ResponseBody, ErrorCode>], code: ErrorCode) -> usize {
    rs.iter()
        .filter(|r| matches!(r, Err(c) if *c == code))
        .count()
}

fn wrong_login(userid: &str) -> Request {
    Request::Login {
        userid: userid.into(),
        password: Secret("wrong password, surely".into()),
        endpoint: None,
        announcement: Default::default(),
    }
}

/// Issue #10 item 2: the limit was checked, argon2 awaited, and only then a failure counted,
/// so 200 concurrent guesses were all evaluated. Now a guess reserves its slot first: of 60
/// concurrent wrong guesses on one account from one address at most LOGIN_FAIL_ACCOUNT_MAX
/// are evaluated; the rest are RATE_LIMITED without hashing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_on_one_account_are_evaluated_at_most_the_limit() {
    let t = TestServer::start().await;
    t.client(0).await.register("alice").await;
    // Connected before the guesses: the first lock lasts 1 s from the last failure, and a
    // handshake on a loaded machine can take longer than that.
    let mut owner = t.client(0).await;
    let rs = concurrently(&t, 60, 1, |_| wrong_login("alice")).await;
    let evaluated = count(&rs, ErrorCode::BadCredentials);
    assert!(
        evaluated <= LOGIN_FAIL_ACCOUNT_MAX as usize,
        "{evaluated} of 60 concurrent guesses were evaluated"
    );
    assert_eq!(evaluated + count(&rs, ErrorCode::RateLimited), 60);
    // Now locked: the right password, even from elsewhere on the same address, waits.
    assert_eq!(
        owner.login_with("alice", PW, None).await.unwrap_err().code,
        ErrorCode::RateLimited
    );
}

/// The per-address limit is reserved the same way: 80 concurrent wrong guesses on 80
/// different (unknown) userids from one address: at most LOGIN_FAIL_IP_MAX are evaluated.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_from_one_address_are_evaluated_at_most_the_limit() {
    let t = TestServer::start().await;
    let rs = concurrently(&t, 60, 1, |i| wrong_login(&format!("user{i}"))).await;
    let rs2 = concurrently(&t, 20, 1, |i| wrong_login(&format!("other{i}"))).await;
    let evaluated = count(&rs, ErrorCode::BadCredentials) + count(&rs2, ErrorCode::BadCredentials);
    assert!(
        evaluated <= LOGIN_FAIL_IP_MAX as usize,
        "{evaluated} of 80 concurrent guesses from one address were evaluated"
    );
}

/// ForgotPassword shares the reserved slots: concurrent wrong recovery codes are evaluated at
/// most LOGIN_FAIL_ACCOUNT_MAX times, and then the right code waits too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_recovery_guesses_are_evaluated_at_most_the_limit() {
    let t = TestServer::start().await;
    let code = t.client(0).await.register("alice").await;
    let rs = concurrently(&t, 40, 1, |_| Request::ForgotPassword {
        userid: "alice".into(),
        email: "alice@example.org".into(),
        recovery_code: Secret("AAAAA-AAAAA-AAAAA-AAAAA".into()),
        new_password: Secret("another good password".into()),
    })
    .await;
    let evaluated = count(&rs, ErrorCode::ResetRefused);
    assert!(evaluated <= LOGIN_FAIL_ACCOUNT_MAX as usize, "{evaluated}");
    let mut owner = t.client(0).await;
    let e = owner
        .request(Request::ForgotPassword {
            userid: "alice".into(),
            email: "alice@example.org".into(),
            recovery_code: Secret(code),
            new_password: Secret("another good password".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::RateLimited);
}

/// Issue #10 item 4: 15 concurrent KeyLogins with the wrong key locked the account for
/// 15 minutes, password login included. A wrong key proves nothing about the password: it
/// counts per address only, and the owner logs in at once, by password and by key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_key_logins_do_not_lock_the_owner_out() {
    let t = TestServer::start().await;
    t.client(0).await.register("alice").await;
    let rs = concurrently(&t, 20, 1, |_| Request::KeyLogin {
        userid: "alice".into(),
        endpoint: None,
        announcement: Default::default(),
    })
    .await;
    assert_eq!(count(&rs, ErrorCode::BadCredentials), 20, "{rs:?}");
    let mut owner = t.client(0).await;
    owner.login("alice").await;
    owner.logout().await;
    assert!(owner.key_login("alice", None).await.is_ok());
}

/// A password guesser cannot keep the owner's client out either: KeyLogin proves the key,
/// so the account's password lock does not apply to it.
#[tokio::test]
async fn password_lock_does_not_stop_the_owners_key_login() {
    let t = TestServer::start().await;
    let mut c = t.client(0).await;
    c.register("alice").await;
    let mut thief = t.client(1).await;
    for _ in 0..LOGIN_FAIL_ACCOUNT_MAX {
        assert_eq!(
            thief.request(wrong_login("alice")).await.unwrap_err().code,
            ErrorCode::BadCredentials
        );
    }
    assert_eq!(
        thief.request(wrong_login("alice")).await.unwrap_err().code,
        ErrorCode::RateLimited
    );
    assert!(c.key_login("alice", None).await.is_ok());
}

/// Issue #10 item 5: ~1,900 accounts in 100 s from one address, and a real login went from
/// 0.03 s to 6-11 s meanwhile. Register now takes a token from a per-address bucket before
/// any work (here shrunk to 3; SPEC.md §10's floor of 60 per minute is the unit test's).
#[tokio::test]
async fn registrations_are_rate_limited_per_address() {
    let t = TestServer::start_with(|c| c.register_burst = 3).await;
    let mut c = t.client(0).await;
    for i in 0..3 {
        c.register(&format!("user{i}")).await;
    }
    // Even an invalid one is refused before validation: the token is taken first.
    let e = c
        .register_with("user3", "user3@example.org", PW)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::RateLimited);
    let wait = e.retry_after.expect("retry hint");
    assert!(wait > std::time::Duration::ZERO);
    assert_eq!(
        c.register_with("x", "bad", "short").await.unwrap_err().code,
        ErrorCode::RateLimited
    );
    // Logins from the same address are not affected.
    c.login("user0").await;
}

/// Sends a Ping every 100 ms, reading Pongs, until the server closes; returns the reason.
/// Panics (after WAIT) if the pings keep the connection open.
async fn ping_until_closed(c: &mut Client) -> peerchat_proto::wire::CloseReason {
    use peerchat_proto::message::ServerFrame;
    let started = tokio::time::Instant::now();
    for n in 1.. {
        assert!(
            started.elapsed() < WAIT,
            "pings kept a connection that never logged in open"
        );
        c.send(&peerchat_proto::wire::ClientMessage {
            request_id: 0,
            body: Some(peerchat_proto::wire::client_message::Body::Ping(
                peerchat_proto::wire::Ping { nonce: n },
            )),
        })
        .await;
        loop {
            match c.next().await {
                Got::Frame(ServerFrame::Pong(p)) if p == n => break,
                Got::Frame(ServerFrame::Close { reason, .. }) => return reason,
                Got::Frame(_) => {}
                other => panic!("connection ended without Close: {other:?}"),
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    unreachable!()
}

/// Issue #10 item 3: a connection that finished the handshake but never logs in lived for ever
/// if it pinged. Now LOGIN_DEADLINE closes it with IDLE_TIMEOUT (here shrunk to 1 s), also
/// after a Logout; a logged-in connection that pings stays.
#[tokio::test]
async fn pings_do_not_keep_an_unauthenticated_connection() {
    use peerchat_proto::wire::CloseReason;
    let t = TestServer::start_with(|c| c.login_deadline = std::time::Duration::from_secs(1)).await;
    let mut idle = t.client(1).await;
    assert_eq!(ping_until_closed(&mut idle).await, CloseReason::IdleTimeout);
    assert!(idle.expect_end().await.is_some());
    // Logged in: the deadline does not apply.
    let mut alice = t.client(0).await;
    alice.register("alice").await;
    alice.login("alice").await;
    let mut bystander = t.client(2).await;
    // The bystander is closed by its own deadline while alice stays.
    assert_eq!(
        ping_until_closed(&mut bystander).await,
        CloseReason::IdleTimeout
    );
    assert!(alice.find("alice").await.0);
    // Logged out: back in Authenticating, the deadline runs again.
    alice.logout().await;
    assert_eq!(
        ping_until_closed(&mut alice).await,
        CloseReason::IdleTimeout
    );
}

/// Issue #10 item 3: 16,384 connections from one address held every slot. Now one address
/// holds at most MAX_CONNECTIONS_PER_ADDRESS (here 4): the next is closed before the
/// handshake, with nothing sent; a freed slot is reused.
#[tokio::test]
async fn one_address_cannot_hold_every_connection_slot() {
    use tokio::io::AsyncReadExt as _;
    let t = TestServer::start_with(|c| c.max_connections_per_address = 4).await;
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(t.client(i).await);
    }
    assert_eq!(t.server().connection_count(), 4);
    let mut extra = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, extra.read(&mut buf))
        .await
        .expect("the over-cap connection is closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "the server sent bytes to an over-cap connection");
    // The held connections still work.
    held[0].register("alice").await;
    // A freed slot is reused once the server has noticed the close.
    held.pop().unwrap().close().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while t.server().connection_count() > 3 {
        assert!(tokio::time::Instant::now() < deadline, "slot not freed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut again = t.client(5).await;
    again.login("alice").await;
}

/// Issue #10 item 8: queued notices were deleted as soon as they were enqueued, so a drop
/// right after LoginOk lost them. Now the server follows them with a Ping and deletes them
/// only when the Pong comes back: dropped before that, they come again at the next login.
#[tokio::test]
async fn notices_survive_a_drop_right_after_login_ok() {
    use peerchat_proto::message::{PushEvent, ServerFrame};
    let t = TestServer::start().await;
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    alice.send_friend_request("bob").await.unwrap();
    alice.close().await;
    bob.refuse("alice").await.unwrap();
    let refused =
        |p: &PushEvent| matches!(p, PushEvent::FriendRequestRefused { userid } if userid == "bob");

    // Log in, read the notice and the Ping after it, and vanish without answering.
    let mut a1 = t.client(0).await;
    let id = a1
        .send_request(Request::Login {
            userid: "alice".into(),
            password: Secret(PW.into()),
            endpoint: None,
            announcement: Default::default(),
        })
        .await;
    let (mut got_notice, mut got_ping) = (false, false);
    while !got_ping {
        match a1.next_raw().await {
            Got::Frame(ServerFrame::Response { request_id, result }) => {
                assert_eq!(request_id, id);
                assert!(result.is_ok());
            }
            Got::Frame(ServerFrame::Push(p)) if refused(&p) => got_notice = true,
            Got::Frame(ServerFrame::Ping(_)) => got_ping = true,
            Got::Frame(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(got_notice, "the notice comes before the Ping");
    drop(a1);

    // The next login gets it again; this client answers the Ping (inside barrier()).
    let mut a2 = t.client(0).await;
    a2.login("alice").await;
    a2.expect_push(refused).await;
    a2.barrier().await;
    // Acknowledged: a later login gets nothing.
    a2.logout().await;
    a2.login("alice").await;
    a2.barrier().await;
    assert!(
        !a2.pushes.iter().any(refused),
        "acknowledged notice delivered again: {:?}",
        a2.pushes
    );
}
