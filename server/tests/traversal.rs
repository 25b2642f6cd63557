//! NAT traversal at the server over real TCP (SPEC.md §7.5–§7.7): observed endpoints,
//! candidate lists, ConnectPeer and the end-to-end relay — including a real peer Noise
//! handshake through the splice. Timers are shortened through the config; every test waits
//! for a fact (a response, a push, an end of stream), never for a time.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use peerchat_proto::limits::{CONNECT_PEER_BURST, PUNCH_DELAY_MAX, RELAY_LINKS_PER_USER};
use peerchat_proto::message::{
    Announcement, Candidate, ConnectMode, Endpoint, PushEvent, Request, ResponseBody, Secret,
    TraversalId,
};
use peerchat_proto::wire::{self, ChannelKind, CloseReason, ErrorCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn announcement(hosts: &[&str], observed_is_listener: bool) -> Announcement {
    Announcement {
        host_candidates: hosts.iter().map(|h| h.parse().unwrap()).collect(),
        observed_is_listener,
    }
}

/// Registers `userid` and logs in with `announcement`.
async fn user_announcing(t: &TestServer, userid: &str, key: usize, a: Announcement) -> Client {
    let mut c = t.client(key).await;
    c.register(userid).await;
    let r = c
        .request(Request::Login {
            userid: userid.into(),
            password: Secret(PW.into()),
            endpoint: None,
            announcement: a,
        })
        .await;
    assert!(matches!(r, Ok(ResponseBody::Login(_))), "{r:?}");
    c
}

fn relay_open(userid: &str, peer: &str, token: Option<TraversalId>) -> Request {
    Request::RelayOpen {
        userid: userid.into(),
        peer_userid: peer.into(),
        token,
    }
}

fn connect(userid: &str, mode: ConnectMode) -> Request {
    Request::ConnectPeer {
        userid: userid.into(),
        mode,
    }
}

async fn friends(t: &TestServer) -> (Client, Client) {
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    befriend(&mut alice, &mut bob, "bob", "alice").await;
    (alice, bob)
}

fn invite_token(p: PushEvent, from: &str) -> TraversalId {
    match p {
        PushEvent::RelayInvite { userid, token } => {
            assert_eq!(userid, from);
            token
        }
        other => panic!("{other:?}"),
    }
}

/// Alice opens a relay to Bob, Bob joins: the two relayed streams (opener's, joiner's).
async fn relay_link(
    t: &TestServer,
    bob: &mut Client,
) -> ((TcpStream, BytesMut), (TcpStream, BytesMut)) {
    let mut ra = Client::connect_kind(t.addr, 0, ChannelKind::Relay).await;
    let id = ra.send_request(relay_open("alice", "bob", None)).await;
    let token = invite_token(
        bob.expect_push(|p| matches!(p, PushEvent::RelayInvite { .. }))
            .await,
        "alice",
    );
    let mut rb = Client::connect_kind(t.addr, 1, ChannelKind::Relay).await;
    assert_eq!(
        rb.request(relay_open("Bob", "ALICE", Some(token))).await,
        Ok(ResponseBody::RelayOpen)
    );
    assert_eq!(ra.response(id).await, Ok(ResponseBody::RelayOpen));
    (ra.into_relayed(), rb.into_relayed())
}

fn hello(from: &str, to: &str) -> wire::PeerMessage {
    wire::PeerMessage {
        body: Some(wire::peer_message::Body::Hello(wire::PeerHello {
            userid: from.into(),
            to_userid: to.into(),
            features: Vec::new(),
        })),
    }
}

/// Waits until the stream ends (EOF or reset): the server closed the relayed link.
async fn ended(s: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(WAIT, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the relayed link should have ended");
}

// ---- §7.5 observed endpoint and candidates ----

#[tokio::test]
async fn observed_endpoint_in_login_ok_and_set_peer_endpoint_ok() {
    let t = TestServer::start().await;
    let mut c = t.client(0).await;
    c.register("alice").await;
    let snap = c.login("alice").await;
    assert_eq!(snap.observed, Some(c.local_addr()));
    let r = c
        .request(Request::SetPeerEndpoint {
            endpoint: Endpoint {
                host: None,
                port: 4000,
            },
            announcement: Announcement::default(),
        })
        .await;
    assert_eq!(
        r,
        Ok(ResponseBody::SetPeerEndpoint {
            endpoint: SocketAddr::new(c.local_addr().ip(), 4000),
            observed: Some(c.local_addr()),
        })
    );
}

/// Behind a load balancer (`--proxy-protocol`): the PROXY v2 header's client address is the
/// observed endpoint; a connection without a header is closed before the handshake.
#[tokio::test]
async fn proxy_protocol_header_names_the_observed_endpoint() {
    let t = TestServer::start_with(|c| c.proxy_protocol = true).await;
    let client: SocketAddr = "203.0.113.9:4444".parse().unwrap();
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12, 203, 0, 113, 9, 127, 0, 0, 1]);
    header.extend_from_slice(&4444u16.to_be_bytes());
    header.extend_from_slice(&t.addr.port().to_be_bytes());
    let mut c = Client::connect_after(t.addr, 0, ChannelKind::ClientServer, &header).await;
    c.register("alice").await;
    let snap = c.login("alice").await;
    assert_eq!(snap.observed, Some(client));

    let mut raw = TcpStream::connect(t.addr).await.unwrap();
    raw.write_all(b"no PROXY header, straight to a handshake")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, raw.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "nothing but the end of the connection");
}

#[tokio::test]
async fn candidates_are_hosts_then_observed_in_snapshot_and_friend_online() {
    let t = TestServer::start().await;
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    befriend(&mut alice, &mut bob, "bob", "alice").await;
    bob.logout().await;
    drop(bob);

    // Bob comes back announcing two hosts and dialled from his listener.
    let mut bob = t.client(1).await;
    let r = bob
        .request(Request::KeyLogin {
            userid: "bob".into(),
            endpoint: None,
            announcement: announcement(&["10.0.0.5:4000", "192.168.1.7:4000"], true),
        })
        .await;
    assert!(matches!(r, Ok(ResponseBody::Login(_))));
    let expected = vec![
        Candidate::host("10.0.0.5:4000".parse().unwrap()),
        Candidate::host("192.168.1.7:4000".parse().unwrap()),
        Candidate::observed(bob.local_addr()),
    ];
    match alice
        .expect_push(|p| matches!(p, PushEvent::FriendOnline { .. }))
        .await
    {
        PushEvent::FriendOnline { candidates, .. } => assert_eq!(candidates, expected),
        _ => unreachable!(),
    }
    // Alice's next snapshot lists the same.
    let mut alice2 = t.client(0).await;
    let snap = match alice2.key_login("alice", None).await {
        Ok(ResponseBody::Login(s)) => s,
        other => panic!("{other:?}"),
    };
    let b = snap.friends.iter().find(|f| f.userid == "bob").unwrap();
    assert_eq!(b.candidates, expected);

    // Not dialled from the listener: no observed candidate.
    bob.request(Request::SetPeerEndpoint {
        endpoint: Endpoint {
            host: None,
            port: 4000,
        },
        announcement: announcement(&["10.0.0.5:4000"], false),
    })
    .await
    .unwrap();
    match alice2
        .expect_push(|p| matches!(p, PushEvent::FriendOnline { .. }))
        .await
    {
        PushEvent::FriendOnline { candidates, .. } => assert_eq!(
            candidates,
            vec![Candidate::host("10.0.0.5:4000".parse().unwrap())]
        ),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn invalid_announcements_are_invalid_requests() {
    let t = TestServer::start().await;
    let mut c = t.client(0).await;
    c.register("alice").await;
    for hosts in [
        vec!["0.0.0.0:4000"],
        vec!["224.0.0.1:4000"],
        vec!["[::]:4000"],
        (1..=9).map(|_| "10.0.0.1:4000").collect::<Vec<_>>(),
    ] {
        let code = c
            .error(Request::Login {
                userid: "alice".into(),
                password: Secret(PW.into()),
                endpoint: None,
                announcement: announcement(&hosts, true),
            })
            .await;
        assert_eq!(code, ErrorCode::InvalidRequest, "{hosts:?}");
    }
    // An empty host and port 0 are sent raw: the typed announcement cannot hold them.
    for (host, port) in [("", 4000), ("10.0.0.1", 0)] {
        c.send(&wire::ClientMessage {
            request_id: 77,
            body: Some(wire::client_message::Body::Login(wire::Login {
                userid: "alice".into(),
                password: PW.into(),
                peer_endpoint: None,
                announcement: Some(wire::PeerAnnouncement {
                    host_candidates: vec![wire::PeerEndpoint {
                        host: host.into(),
                        port,
                    }],
                    observed_is_listener: false,
                }),
            })),
        })
        .await;
        assert_eq!(
            c.response(77).await.unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }
    c.login("alice").await;
    let code = c
        .error(Request::SetPeerEndpoint {
            endpoint: Endpoint {
                host: None,
                port: 4000,
            },
            announcement: announcement(&["0.0.0.0:1"], false),
        })
        .await;
    assert_eq!(code, ErrorCode::InvalidRequest);
}

// ---- §7.6 ConnectPeer ----

#[tokio::test]
async fn connect_peer_errors_in_order() {
    let t = TestServer::start().await;
    let mut anon = t.client(3).await;
    assert_eq!(
        anon.error(connect("bob", ConnectMode::Punch)).await,
        ErrorCode::NotLoggedIn
    );
    let (mut alice, mut bob) = friends(&t).await;
    let _carol = t.user("carol", 2).await;
    // Unspecified mode: INVALID_REQUEST before anything else (even for a stranger).
    for userid in ["bob", "carol"] {
        alice
            .send(&wire::ClientMessage {
                request_id: 500,
                body: Some(wire::client_message::Body::ConnectPeer(wire::ConnectPeer {
                    userid: userid.into(),
                    mode: wire::ConnectMode::Unspecified as i32,
                })),
            })
            .await;
        assert_eq!(
            alice.response(500).await.unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }
    for who in ["carol", "nobody", "alice", "not valid!"] {
        assert_eq!(
            alice.error(connect(who, ConnectMode::Reverse)).await,
            ErrorCode::NotFriends,
            "{who}"
        );
    }
    bob.logout().await;
    alice
        .expect_push(|p| matches!(p, PushEvent::FriendOffline { .. }))
        .await;
    assert_eq!(
        alice.error(connect("bob", ConnectMode::Punch)).await,
        ErrorCode::PeerOffline
    );
}

#[tokio::test]
async fn connect_peer_pushes_to_the_friend_then_answers() {
    let t = TestServer::start().await;
    let mut alice = user_announcing(&t, "alice", 0, announcement(&["10.0.0.1:5000"], true)).await;
    let mut bob = user_announcing(&t, "bob", 1, announcement(&["10.0.0.2:6000"], false)).await;
    befriend(&mut alice, &mut bob, "bob", "alice").await;
    // Both answer the server's post-login Ping, so both have an RTT estimate.
    alice.barrier().await;
    bob.barrier().await;

    for mode in [ConnectMode::Punch, ConnectMode::Reverse] {
        let ok = match alice.request(connect("BOB", mode)).await {
            Ok(ResponseBody::ConnectPeer(ok)) => ok,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ok.candidates,
            vec![Candidate::host("10.0.0.2:6000".parse().unwrap())]
        );
        let pushed = match bob
            .expect_push(|p| matches!(p, PushEvent::PeerConnectRequested(_)))
            .await
        {
            PushEvent::PeerConnectRequested(p) => p,
            _ => unreachable!(),
        };
        assert_eq!(pushed.userid, "alice");
        assert_eq!(pushed.mode, mode);
        assert_eq!(pushed.attempt_id, ok.attempt_id);
        assert_eq!(
            pushed.candidates,
            vec![
                Candidate::host("10.0.0.1:5000".parse().unwrap()),
                Candidate::observed(alice.local_addr()),
            ]
        );
        assert!(ok.dial_in <= PUNCH_DELAY_MAX && pushed.dial_in <= PUNCH_DELAY_MAX);
        // At most one side waits (the one nearer the server).
        assert!(ok.dial_in.is_zero() || pushed.dial_in.is_zero());
        if mode == ConnectMode::Reverse {
            assert_eq!(
                (ok.dial_in, pushed.dial_in),
                (Duration::ZERO, Duration::ZERO)
            );
        }
    }
}

#[tokio::test]
async fn connect_peer_is_rate_limited_per_pair() {
    let t = TestServer::start().await;
    let (mut alice, mut bob) = friends(&t).await;
    for _ in 0..CONNECT_PEER_BURST {
        assert!(alice
            .request(connect("bob", ConnectMode::Punch))
            .await
            .is_ok());
    }
    match alice.request(connect("bob", ConnectMode::Punch)).await {
        Err(e) => {
            assert_eq!(e.code, ErrorCode::RateLimited);
            let wait = e.retry_after.unwrap();
            assert!(
                wait > Duration::ZERO && wait <= Duration::from_secs(10),
                "{wait:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The other direction is another pair.
    assert!(bob
        .request(connect("alice", ConnectMode::Reverse))
        .await
        .is_ok());
}

// ---- §7.7 relay ----

#[tokio::test]
async fn relay_carries_a_peer_handshake_and_frames_both_ways() {
    let t = TestServer::start().await;
    let (_alice, mut bob) = friends(&t).await;
    let (a, b) = relay_link(&t, &mut bob).await;
    let (mut ca, mut cb) = peer_channels(a, b).await;
    ca.send(&hello("alice", "bob")).await.unwrap();
    assert_eq!(
        cb.recv::<wire::PeerMessage>().await.unwrap(),
        Some(hello("alice", "bob"))
    );
    cb.send(&hello("bob", "alice")).await.unwrap();
    assert_eq!(
        ca.recv::<wire::PeerMessage>().await.unwrap(),
        Some(hello("bob", "alice"))
    );
    // Several large frames each way arrive intact and in order.
    let chunk = |i: u8| wire::PeerMessage {
        body: Some(wire::peer_message::Body::FileChunk(wire::FileChunk {
            transfer_id: vec![i; 16].into(),
            offset: u64::from(i) * 200_000,
            data: (0..200_000u32)
                .map(|n| (n as u8) ^ i)
                .collect::<Vec<u8>>()
                .into(),
        })),
    };
    for i in 0..4 {
        ca.writer.queue(&chunk(i)).unwrap();
        cb.writer.queue(&chunk(100 + i)).unwrap();
    }
    let (ra, rb) = tokio::join!(
        async {
            ca.writer.flush().await.unwrap();
            let mut got = Vec::new();
            for _ in 0..4 {
                got.push(
                    ca.reader
                        .recv::<wire::PeerMessage>()
                        .await
                        .unwrap()
                        .unwrap(),
                );
            }
            got
        },
        async {
            cb.writer.flush().await.unwrap();
            let mut got = Vec::new();
            for _ in 0..4 {
                got.push(
                    cb.reader
                        .recv::<wire::PeerMessage>()
                        .await
                        .unwrap()
                        .unwrap(),
                );
            }
            got
        }
    );
    assert_eq!(ra, (0..4).map(|i| chunk(100 + i)).collect::<Vec<_>>());
    assert_eq!(rb, (0..4).map(chunk).collect::<Vec<_>>());
}

#[tokio::test]
async fn relay_is_only_between_logged_in_friends_with_their_keys() {
    let t = TestServer::start().await;
    let (_alice, mut bob) = friends(&t).await;
    let _carol = t.user("carol", 2).await;
    let mut dave = t.client(3).await;
    dave.register("dave").await;

    // Not a friend (and an unknown user).
    for peer in ["carol", "nobody"] {
        let mut r = Client::connect_kind(t.addr, 0, ChannelKind::Relay).await;
        assert_eq!(
            r.error(relay_open("alice", peer, None)).await,
            ErrorCode::NotFriends
        );
        assert_eq!(r.expect_close().await, CloseReason::Normal);
    }
    // Another key than the account's, an unknown account, an account without a session.
    for (key, userid) in [(2, "alice"), (0, "nobody"), (3, "dave")] {
        let mut r = Client::connect_kind(t.addr, key, ChannelKind::Relay).await;
        assert_eq!(
            r.error(relay_open(userid, "bob", None)).await,
            ErrorCode::BadCredentials,
            "{userid} with key {key}"
        );
    }
    // A token of the wrong length.
    let mut r = Client::connect_kind(t.addr, 0, ChannelKind::Relay).await;
    r.send(&wire::ClientMessage {
        request_id: 3,
        body: Some(wire::client_message::Body::RelayOpen(wire::RelayOpen {
            userid: "alice".into(),
            peer_userid: "bob".into(),
            token: vec![1; 15].into(),
        })),
    })
    .await;
    assert_eq!(
        r.response(3).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    // A token that names no waiting relay.
    let mut r = Client::connect_kind(t.addr, 1, ChannelKind::Relay).await;
    assert_eq!(
        r.error(relay_open("bob", "alice", Some([9; 16]))).await,
        ErrorCode::RelayExpired
    );
    // Bob offline.
    bob.logout().await;
    let mut r = Client::connect_kind(t.addr, 0, ChannelKind::Relay).await;
    assert_eq!(
        r.error(relay_open("alice", "bob", None)).await,
        ErrorCode::PeerOffline
    );
}

#[tokio::test]
async fn a_token_is_only_for_the_invited_friend() {
    let t = TestServer::start().await;
    let (mut alice, mut bob) = friends(&t).await;
    let mut carol = t.user("carol", 2).await;
    befriend(&mut alice, &mut carol, "carol", "alice").await;
    let mut ra = Client::connect_kind(t.addr, 0, ChannelKind::Relay).await;
    let id = ra.send_request(relay_open("alice", "bob", None)).await;
    let token = invite_token(
        bob.expect_push(|p| matches!(p, PushEvent::RelayInvite { .. }))
            .await,
        "alice",
    );
    let mut rc = Client::connect_kind(t.addr, 2, ChannelKind::Relay).await;
    assert_eq!(
        rc.error(relay_open("carol", "alice", Some(token))).await,
        ErrorCode::RelayExpired
    );
    // Bob still can.
    let mut rb = Client::connect_kind(t.addr, 1, ChannelKind::Relay).await;
    assert_eq!(
        rb.request(relay_open("bob", "alice", Some(token))).await,
        Ok(ResponseBody::RelayOpen)
    );
    assert_eq!(ra.response(id).await, Ok(ResponseBody::RelayOpen));
}

#[tokio::test]
async fn opener_gets_relay_expired_when_the_friend_does_not_join() {
    let t = TestServer::start_with(|c| c.relay.join_timeout = Duration::from_millis(200)).await;
    let (_alice, mut bob) = friends(&t).await;
    let mut ra = Client::connect_kind(t.addr, 0, ChannelKind::Relay).await;
    let id = ra.send_request(relay_open("alice", "bob", None)).await;
    let token = invite_token(
        bob.expect_push(|p| matches!(p, PushEvent::RelayInvite { .. }))
            .await,
        "alice",
    );
    assert_eq!(
        ra.response(id).await.unwrap_err().code,
        ErrorCode::RelayExpired
    );
    assert_eq!(ra.expect_close().await, CloseReason::Normal);
    // The invitation is gone too.
    let mut rb = Client::connect_kind(t.addr, 1, ChannelKind::Relay).await;
    assert_eq!(
        rb.error(relay_open("bob", "alice", Some(token))).await,
        ErrorCode::RelayExpired
    );
}

#[tokio::test]
async fn relay_links_per_user_are_limited() {
    let t = TestServer::start().await;
    let (mut alice, mut bob) = friends(&t).await;
    let mut waiting = Vec::new();
    for _ in 0..RELAY_LINKS_PER_USER {
        let mut r = Client::connect_kind(t.addr, 0, ChannelKind::Relay).await;
        r.send_request(relay_open("alice", "bob", None)).await;
        waiting.push(r);
    }
    // Every one of them was admitted once Bob holds its invitation.
    for _ in 0..RELAY_LINKS_PER_USER {
        bob.expect_push(|p| matches!(p, PushEvent::RelayInvite { .. }))
            .await;
    }
    let mut r = Client::connect_kind(t.addr, 0, ChannelKind::Relay).await;
    assert_eq!(
        r.error(relay_open("alice", "bob", None)).await,
        ErrorCode::LimitExceeded
    );
    // Bob's own count is separate.
    let mut rb = Client::connect_kind(t.addr, 1, ChannelKind::Relay).await;
    rb.send_request(relay_open("bob", "alice", None)).await;
    alice
        .expect_push(|p| matches!(p, PushEvent::RelayInvite { .. }))
        .await;
    drop(waiting);
}

#[tokio::test]
async fn logout_closes_the_relayed_link() {
    let t = TestServer::start().await;
    let (mut alice, mut bob) = friends(&t).await;
    let (mut a, mut b) = relay_link(&t, &mut bob).await;
    alice.logout().await;
    ended(&mut a.0).await;
    ended(&mut b.0).await;
}

#[tokio::test]
async fn a_dropped_session_and_unfriend_close_relayed_links() {
    let t = TestServer::start().await;
    let (alice, mut bob) = friends(&t).await;
    let (mut a, mut b) = relay_link(&t, &mut bob).await;
    drop(alice);
    ended(&mut a.0).await;
    ended(&mut b.0).await;

    let mut alice = t.client(0).await;
    alice.key_login("alice", None).await.unwrap();
    let (mut a, mut b) = relay_link(&t, &mut bob).await;
    bob.unfriend("alice").await.unwrap();
    ended(&mut a.0).await;
    ended(&mut b.0).await;
}

#[tokio::test]
async fn idle_relayed_link_is_closed() {
    let t = TestServer::start_with(|c| c.relay.idle_timeout = Duration::from_millis(300)).await;
    let (_alice, mut bob) = friends(&t).await;
    let (mut a, mut b) = relay_link(&t, &mut bob).await;
    ended(&mut a.0).await;
    ended(&mut b.0).await;
}

#[tokio::test]
async fn relay_open_on_a_client_server_connection_is_invalid() {
    let t = TestServer::start().await;
    let mut c = t.client(0).await;
    assert_eq!(
        c.error(relay_open("alice", "bob", None)).await,
        ErrorCode::InvalidRequest
    );
    c.register("alice").await;
    c.login("alice").await;
    assert_eq!(
        c.error(relay_open("alice", "bob", None)).await,
        ErrorCode::InvalidRequest
    );
}

#[tokio::test]
async fn a_relay_connection_must_start_with_relay_open() {
    let t = TestServer::start().await;
    let mut r = Client::connect_kind(t.addr, 0, ChannelKind::Relay).await;
    r.send_request(Request::Find {
        userid: "bob".into(),
    })
    .await;
    assert_eq!(r.expect_close().await, CloseReason::ProtocolError);
}

#[tokio::test]
async fn a_slow_relay_still_delivers_every_byte() {
    // 256 KiB/s per direction: a 250 KB frame needs many paced reads; nothing is lost.
    let t = TestServer::start_with(|c| c.relay.link_rate = 256 * 1024).await;
    let (_alice, mut bob) = friends(&t).await;
    let (a, b) = relay_link(&t, &mut bob).await;
    let (mut ca, mut cb) = peer_channels(a, b).await;
    let msg = wire::PeerMessage {
        body: Some(wire::peer_message::Body::FileChunk(wire::FileChunk {
            transfer_id: vec![1; 16].into(),
            offset: 0,
            data: (0..250_000u32)
                .map(|n| (n % 251) as u8)
                .collect::<Vec<u8>>()
                .into(),
        })),
    };
    let (sent, got) = tokio::join!(ca.send(&msg), cb.recv::<wire::PeerMessage>());
    sent.unwrap();
    assert_eq!(got.unwrap(), Some(msg));
}

/// The test-only tap (feature `test-hooks`, on in workspace test builds through the client's
/// dev-dependency) copies each direction of a link to its own file.
#[cfg(feature = "test-hooks")]
#[tokio::test]
async fn relay_tap_copies_each_direction() {
    use tokio::io::AsyncWriteExt;
    let tap = tempfile::tempdir().unwrap();
    let dir = tap.path().to_path_buf();
    let t = TestServer::start_with(|c| c.relay.tap = Some(dir)).await;
    let (_alice, mut bob) = friends(&t).await;
    let (mut a, mut b) = relay_link(&t, &mut bob).await;
    a.0.write_all(b"opener says hi").await.unwrap();
    let mut got = vec![0u8; 14];
    b.0.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"opener says hi");
    b.0.write_all(b"joiner").await.unwrap();
    let mut got = vec![0u8; 6];
    a.0.read_exact(&mut got).await.unwrap();
    // Each byte is in the tap file before it is forwarded.
    let names: Vec<_> = std::fs::read_dir(tap.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let find = |suffix: &str| {
        let name = names.iter().find(|n| n.ends_with(suffix)).unwrap();
        std::fs::read(tap.path().join(name)).unwrap()
    };
    assert_eq!(find("-opener-to-joiner.bin"), b"opener says hi");
    assert_eq!(find("-joiner-to-opener.bin"), b"joiner");
}
