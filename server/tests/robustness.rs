//! Protection and lifecycle over real TCP: the request bucket, framing errors, garbage,
//! handshake and idle time-outs, the connection cap, persistence across restarts and
//! graceful shutdown. Each misbehaving connection is closed alone; the server keeps serving.

mod common;

use std::time::Duration;

use common::*;
use peerchat_proto::message::{PushEvent, Request, ServerFrame};
use peerchat_proto::wire::{CloseReason, ErrorCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until EOF/reset; returns how many bytes came (the server closed without waiting
/// for a handshake if this is 0).
async fn read_to_end(s: &mut TcpStream) -> usize {
    let mut buf = vec![0u8; 4096];
    let mut total = 0;
    loop {
        match tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .expect("server did not close the connection")
        {
            Ok(0) | Err(_) => return total,
            Ok(n) => total += n,
        }
    }
}

/// Proves the server still serves: a fresh client registers and logs in.
async fn still_serving(t: &TestServer, userid: &str) {
    let mut c = t.client(9).await;
    c.register(userid).await;
    c.login(userid).await;
}

#[tokio::test]
async fn request_bucket_limits_and_then_disconnects() {
    let t = TestServer::start().await;
    let mut c = t.client(0).await;
    // Pipeline 600 cheap requests (NOT_LOGGED_IN needs no database) without reading.
    let n = 600u64;
    for _ in 0..n {
        c.send_request(Request::Logout).await;
    }
    let mut ok = 0;
    let mut limited = 0;
    let mut first_limited_at = None;
    let close = loop {
        match c.next().await {
            Got::Frame(ServerFrame::Response { result, .. }) => match result {
                Err(e) if e.code == ErrorCode::RateLimited => {
                    assert!(e.retry_after.is_some_and(|d| d > Duration::ZERO));
                    limited += 1;
                    first_limited_at.get_or_insert(ok + limited);
                }
                Err(e) => {
                    assert_eq!(e.code, ErrorCode::NotLoggedIn);
                    ok += 1;
                }
                Ok(b) => panic!("{b:?}"),
            },
            Got::Frame(ServerFrame::Close { reason, .. }) => break reason,
            Got::Frame(_) => {}
            other => panic!("ended without Close: {other:?}"),
        }
    };
    assert_eq!(close, CloseReason::RateLimited);
    // The whole burst passed before the first rejection.
    assert!(first_limited_at.unwrap() > peerchat_proto::limits::REQUEST_BURST as usize);
    assert!(limited >= peerchat_proto::limits::RATE_LIMIT_DISCONNECT_AFTER as usize);
    assert!(ok >= peerchat_proto::limits::REQUEST_BURST as usize);
    c.expect_end().await;
    still_serving(&t, "after").await;
}

#[cfg(feature = "test-faults")]
#[tokio::test]
async fn fault_no_rate_limit_disables_the_bucket() {
    let t = TestServer::start_with(|c| c.faults.no_rate_limit = true).await;
    let mut c = t.client(0).await;
    let ids: Vec<u64> = {
        let mut v = Vec::new();
        for _ in 0..300 {
            v.push(c.send_request(Request::Logout).await);
        }
        v
    };
    for id in ids {
        assert_eq!(
            c.response(id).await.unwrap_err().code,
            ErrorCode::NotLoggedIn
        );
    }
}

#[tokio::test]
async fn oversized_frame_closes_that_connection_only() {
    let t = TestServer::start().await;
    let mut bystander = t.user("bob", 1).await;
    let mut c = t.client(0).await;
    let too_big = (peerchat_proto::limits::MAX_FRAME as u32 + 1).to_be_bytes();
    c.send_raw_plaintext(&too_big).await;
    assert_eq!(c.expect_close().await, CloseReason::FrameTooLarge);
    c.expect_end().await;
    assert_eq!(bystander.find("bob").await, (true, "bob".into()));
    still_serving(&t, "after").await;
}

#[tokio::test]
async fn undecodable_frame_is_malformed() {
    let t = TestServer::start().await;
    let mut c = t.client(0).await;
    // A length-delimited field whose length runs past the end of the frame.
    c.send_raw_plaintext(&[0, 0, 0, 2, 0x3a, 0x05]).await;
    assert_eq!(c.expect_close().await, CloseReason::MalformedFrame);
    c.expect_end().await;
    still_serving(&t, "after").await;
}

#[tokio::test]
async fn garbage_records_close_silently() {
    let t = TestServer::start().await;
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    befriend(&mut alice, &mut bob, "bob", "alice").await;
    // A record that does not decrypt: no Close can be trusted, so none is sent.
    alice
        .send_raw_tcp(&[
            0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
        ])
        .await;
    assert_eq!(alice.expect_end().await, None);
    // The logged-in session ended like a dropped connection.
    bob.expect_push(|p| matches!(p, PushEvent::FriendOffline { userid } if userid == "alice"))
        .await;

    // Garbage instead of a handshake.
    let mut raw = TcpStream::connect(t.addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_to_end(&mut raw).await, 0);
    // An empty record after the handshake is a protocol error.
    let mut c = t.client(2).await;
    c.send_raw_tcp(&[0, 0]).await;
    assert_eq!(c.expect_end().await, Some(CloseReason::ProtocolError));
    still_serving(&t, "after").await;
}

#[tokio::test]
async fn handshake_timeout_closes_silent_connections() {
    let t = TestServer::start_with(|c| c.handshake_timeout = Duration::from_millis(300)).await;
    let mut raw = TcpStream::connect(t.addr).await.unwrap();
    assert_eq!(read_to_end(&mut raw).await, 0);
    // Half a handshake (message 1 only) is not enough either.
    let mut raw = TcpStream::connect(t.addr).await.unwrap();
    let local = local(0);
    let mut hs = peerchat_proto::handshake::Handshake::new(
        &local,
        peerchat_proto::Role::Initiator,
        peerchat_proto::wire::ChannelKind::ClientServer,
    )
    .unwrap();
    let msg1 = hs.write_message().unwrap();
    let mut out = bytes::BytesMut::new();
    peerchat_proto::record::put_record(&mut out, &msg1).unwrap();
    raw.write_all(&out).await.unwrap();
    assert!(
        read_to_end(&mut raw).await > 0,
        "message 2 arrives, then the close"
    );
    still_serving(&t, "after").await;
}

#[tokio::test]
async fn idle_connections_are_pinged_then_closed() {
    let t = TestServer::start_with(|c| {
        c.idle_ping_after = Duration::from_millis(200);
        c.idle_timeout = Duration::from_millis(700);
    })
    .await;
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    befriend(&mut alice, &mut bob, "bob", "alice").await;
    // Bob answers pings (the helper does) from his own task, so he stays connected.
    let bob_task = tokio::spawn(async move {
        bob.expect_push(|p| matches!(p, PushEvent::FriendOffline { userid } if userid == "alice"))
            .await;
        let mut pings = 0;
        while pings < 3 {
            match bob.next().await {
                Got::Frame(ServerFrame::Ping(_)) => pings += 1,
                Got::Frame(_) => {}
                other => panic!("bob was disconnected: {other:?}"),
            }
        }
        assert_eq!(bob.find("alice").await, (true, "alice".into()));
    });
    // Alice stays silent: pings at 200 ms and 400 ms (and 600 ms), then IDLE_TIMEOUT.
    let mut pings = 0;
    let reason = loop {
        match alice.next_raw().await {
            Got::Frame(ServerFrame::Ping(_)) => pings += 1,
            Got::Frame(ServerFrame::Close { reason, .. }) => break reason,
            Got::Frame(_) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(reason, CloseReason::IdleTimeout);
    assert!(pings >= 2, "{pings}");
    // Bob sees alice go offline, and is still connected after several idle periods.
    bob_task.await.unwrap();
}

#[tokio::test]
async fn connection_cap_closes_extra_connections_at_once() {
    let t = TestServer::start_with(|c| c.max_connections = 2).await;
    let a = t.client(0).await;
    let mut b = t.client(1).await;
    let mut raw = TcpStream::connect(t.addr).await.unwrap();
    assert_eq!(read_to_end(&mut raw).await, 0);
    assert_eq!(b.find_anonymous().await, ErrorCode::NotLoggedIn);
    drop(a);
    // Once the server has noticed, a new connection fits again.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut s = TcpStream::connect(t.addr).await.unwrap();
        let local = local(2);
        let hs = peerchat_proto::Channel::handshake(
            &mut s,
            &local,
            peerchat_proto::Role::Initiator,
            peerchat_proto::wire::ChannelKind::ClientServer,
            Duration::from_secs(5),
        )
        .await;
        if hs.is_ok() {
            break;
        }
        assert!(attempts < 100, "the freed slot never became available");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

trait FindAnonymous {
    async fn find_anonymous(&mut self) -> ErrorCode;
}

impl FindAnonymous for Client {
    async fn find_anonymous(&mut self) -> ErrorCode {
        self.error(Request::Find { userid: "x".into() }).await
    }
}

#[tokio::test]
async fn state_survives_a_restart() {
    let mut t = TestServer::start().await;
    {
        let mut alice = t.user("alice", 0).await;
        let mut bob = t.user("bob", 1).await;
        let mut carol = t.client(2).await;
        carol.register("carol").await;
        befriend(&mut alice, &mut bob, "bob", "alice").await;
        alice.send_friend_request("carol").await.unwrap();
        alice.logout().await;
        // An offline notice, too.
        bob.unfriend("alice").await.unwrap();
        bob.send_friend_request("alice").await.unwrap();
        bob.logout().await;
        alice.login("alice").await;
        alice.refuse("bob").await.unwrap();
    }
    t.restart(|_| {}).await;
    let mut alice = t.client(0).await;
    let snap = alice.login("alice").await;
    assert!(snap.friends.is_empty());
    assert_eq!(
        snap.outgoing
            .iter()
            .map(|r| r.userid.as_str())
            .collect::<Vec<_>>(),
        ["carol"]
    );
    let mut bob = t.client(1).await;
    bob.login("bob").await;
    bob.expect_push(
        |p| matches!(p, PushEvent::FriendRequestRefused { userid } if userid == "alice"),
    )
    .await;
    let mut carol = t.client(2).await;
    let snap = match carol.key_login("carol", None).await.unwrap() {
        peerchat_proto::message::ResponseBody::Login(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(snap.incoming[0].userid, "alice");
    carol.accept("alice").await.unwrap();

    // After a crash (no graceful shutdown) committed state is still there.
    t.server().abort();
    t.server = None;
    t.restart(|_| {}).await;
    let mut alice = t.client(0).await;
    let snap = alice.login("alice").await;
    assert_eq!(
        snap.friends
            .iter()
            .map(|f| f.userid.as_str())
            .collect::<Vec<_>>(),
        ["carol"]
    );
}

#[tokio::test]
async fn graceful_shutdown_closes_everyone_with_server_shutdown() {
    let mut t = TestServer::start().await;
    let mut alice = t.user("alice", 0).await;
    let mut anon = t.client(1).await;
    let server = t.server.take().unwrap();
    let stopping = tokio::spawn(server.shutdown());
    assert_eq!(alice.expect_close().await, CloseReason::ServerShutdown);
    assert_eq!(anon.expect_close().await, CloseReason::ServerShutdown);
    alice.expect_end().await;
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
    assert!(
        TcpStream::connect(t.addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn first_start_creates_and_then_reuses_the_identity_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = peerchat_server::Config::for_tests(dir.path().to_path_buf());
    c.identity = None;
    // Write a fixed key where the server looks, to avoid 3072-bit generation in tests.
    std::fs::write(
        dir.path().join(peerchat_server::config::KEY_FILE),
        peerchat_proto::test_keys::pem(4),
    )
    .unwrap();
    let s = peerchat_server::start(c).await.unwrap();
    assert!(!s.key_created);
    assert_eq!(
        s.fingerprint,
        peerchat_proto::test_keys::identity(4)
            .public()
            .fingerprint()
    );
    s.shutdown().await;
    assert!(dir.path().join("peerchat.db").exists());
}

#[tokio::test]
async fn a_client_that_does_not_read_is_cut_off_alone() {
    let t = TestServer::start_with(|c| c.outbound_queue = 8).await;
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    befriend(&mut alice, &mut bob, "bob", "alice").await;
    // Alice floods Pings (each answered with a Pong, no rate limit applies) and never reads:
    // once the socket buffers are full her queue overflows and she is closed.
    let ping = {
        use prost::Message as _;
        let m = peerchat_proto::wire::ClientMessage {
            request_id: 0,
            body: Some(peerchat_proto::wire::client_message::Body::Ping(
                peerchat_proto::wire::Ping { nonce: 7 },
            )),
        };
        let body = m.encode_to_vec();
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&body);
        f
    };
    let batch: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 100_000)
        .collect();
    for _ in 0..40 {
        alice.send_raw_plaintext(&batch).await;
        if t.server().online_count() < 2 {
            break;
        }
    }
    // Bob is told she is gone, and keeps being served.
    bob.expect_push(|p| matches!(p, PushEvent::FriendOffline { userid } if userid == "alice"))
        .await;
    assert_eq!(bob.find("alice").await, (true, "alice".into()));
    alice.expect_end().await;
}
