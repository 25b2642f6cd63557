//! The friend graph and presence over real TCP (SPEC.md §6): Find, requests to online and
//! offline users, crossing requests, accept/refuse/unfriend with their pushes and notices,
//! expiry, FriendOnline/FriendOffline, SetPeerEndpoint and presence privacy.

mod common;

use std::time::Duration;

use common::*;
use peerchat_proto::message::{Endpoint, PushEvent, Request, ResponseBody};
use peerchat_proto::wire::ErrorCode;

#[tokio::test]
async fn find_reveals_existence_only() {
    let t = TestServer::start().await;
    let mut alice = t.user("alice", 0).await;
    let mut c = t.client(1).await;
    c.register("BobTheBuilder").await;
    assert_eq!(
        alice.find("bobthebuilder").await,
        (true, "BobTheBuilder".into())
    );
    assert_eq!(alice.find("nobody").await, (false, String::new()));
    assert_eq!(alice.find("not valid!").await, (false, String::new()));
    assert_eq!(alice.find("").await, (false, String::new()));
}

#[cfg(feature = "test-faults")]
#[tokio::test]
async fn fault_find_reveals_nothing() {
    let t = TestServer::start_with(|c| c.faults.find_reveals_nothing = true).await;
    let mut alice = t.user("alice", 0).await;
    assert_eq!(alice.find("alice").await, (false, String::new()));
}

#[tokio::test]
async fn request_to_an_online_user_and_accept() {
    let t = TestServer::start().await;
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("Bob", 1).await;
    alice
        .request(Request::SetPeerEndpoint {
            endpoint: Endpoint {
                host: Some("10.1.2.3".parse().unwrap()),
                port: 7000,
            },
            announcement: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(alice.send_friend_request("BOB").await.unwrap(), None);
    let r = match bob
        .expect_push(|p| matches!(p, PushEvent::FriendRequestReceived(_)))
        .await
    {
        PushEvent::FriendRequestReceived(r) => r,
        _ => unreachable!(),
    };
    assert_eq!(r.userid, "alice");
    assert_eq!(
        r.expires_at_unix_ms - r.created_at_unix_ms,
        7 * 24 * 3600 * 1000
    );
    // The request reveals nothing about presence: no FriendOnline either way.
    bob.barrier().await;
    assert!(!bob
        .pushes
        .iter()
        .any(|p| matches!(p, PushEvent::FriendOnline { .. })));

    let friend = bob.accept("ALICE").await.unwrap();
    assert_eq!(friend.userid, "alice");
    assert!(friend.online);
    assert_eq!(friend.endpoint, Some("10.1.2.3:7000".parse().unwrap()));
    assert_eq!(friend.identity_key.to_der().to_vec(), key_der(0));
    let accepted = match alice
        .expect_push(|p| matches!(p, PushEvent::FriendRequestAccepted(_)))
        .await
    {
        PushEvent::FriendRequestAccepted(f) => f,
        _ => unreachable!(),
    };
    assert_eq!(accepted.userid, "Bob");
    assert!(accepted.online);
    assert_eq!(accepted.identity_key.to_der().to_vec(), key_der(1));
    // A second accept finds nothing.
    assert_eq!(
        bob.accept("alice").await.unwrap_err().code,
        ErrorCode::RequestNotFound
    );
}

#[tokio::test]
async fn send_request_errors_in_order() {
    let t = TestServer::start().await;
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    assert_eq!(
        alice.send_friend_request("nobody").await.unwrap_err().code,
        ErrorCode::UserNotFound
    );
    assert_eq!(
        alice.send_friend_request("bad id!").await.unwrap_err().code,
        ErrorCode::UserNotFound
    );
    assert_eq!(
        alice.send_friend_request("ALICE").await.unwrap_err().code,
        ErrorCode::SelfRequest
    );
    alice.send_friend_request("bob").await.unwrap();
    assert_eq!(
        alice.send_friend_request("bob").await.unwrap_err().code,
        ErrorCode::DuplicateRequest
    );
    bob.accept("alice").await.unwrap();
    assert_eq!(
        alice.send_friend_request("bob").await.unwrap_err().code,
        ErrorCode::AlreadyFriends
    );
    assert_eq!(
        bob.send_friend_request("alice").await.unwrap_err().code,
        ErrorCode::AlreadyFriends
    );
    // Accept / refuse / unfriend errors.
    assert_eq!(
        bob.accept("nobody").await.unwrap_err().code,
        ErrorCode::RequestNotFound
    );
    assert_eq!(
        bob.refuse("alice").await.unwrap_err().code,
        ErrorCode::RequestNotFound
    );
    assert_eq!(
        bob.unfriend("nobody").await.unwrap_err().code,
        ErrorCode::NotFriends
    );
}

#[tokio::test]
async fn pending_outgoing_limit_is_enforced() {
    let t = TestServer::start_with(|c| {
        c.request_burst = 100_000;
        c.register_burst = 1_000;
    })
    .await;
    let mut alice = t.user("alice", 0).await;
    let mut reg = t.client(1).await;
    for i in 0..=peerchat_proto::limits::MAX_PENDING_OUTGOING {
        reg.register(&format!("user{i}")).await;
    }
    for i in 0..peerchat_proto::limits::MAX_PENDING_OUTGOING {
        alice
            .send_friend_request(&format!("user{i}"))
            .await
            .unwrap();
    }
    let last = format!("user{}", peerchat_proto::limits::MAX_PENDING_OUTGOING);
    assert_eq!(
        alice.send_friend_request(&last).await.unwrap_err().code,
        ErrorCode::LimitExceeded
    );
}

#[tokio::test]
async fn requests_to_offline_users_arrive_at_login() {
    let t = TestServer::start().await;
    let mut c = t.client(1).await;
    c.register("bob").await;
    let mut alice = t.user("alice", 0).await;
    alice.send_friend_request("bob").await.unwrap();
    let snap = alice.request(Request::Logout).await.map(|_| ());
    assert!(snap.is_ok());
    let snap = alice.login("alice").await;
    assert_eq!(snap.outgoing.len(), 1);
    assert_eq!(snap.outgoing[0].userid, "bob");

    let snap = c.login("bob").await;
    assert_eq!(snap.incoming.len(), 1);
    assert_eq!(snap.incoming[0].userid, "alice");
    assert!(snap.friends.is_empty());
    // Bob refuses; alice (online) is told.
    c.refuse("alice").await.unwrap();
    match alice
        .expect_push(|p| matches!(p, PushEvent::FriendRequestRefused { .. }))
        .await
    {
        PushEvent::FriendRequestRefused { userid } => assert_eq!(userid, "bob"),
        _ => unreachable!(),
    }
    assert_eq!(
        c.refuse("alice").await.unwrap_err().code,
        ErrorCode::RequestNotFound
    );
}

#[tokio::test]
async fn notices_are_delivered_after_login_ok_oldest_first() {
    let t = TestServer::start().await;
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    let mut carol = t.user("carol", 2).await;
    alice.send_friend_request("bob").await.unwrap();
    alice.send_friend_request("carol").await.unwrap();
    alice.logout().await;
    bob.accept("alice").await.unwrap();
    carol.refuse("alice").await.unwrap();
    // Alice logs in: LoginOk first, then Accepted(bob), then Refused(carol).
    let id = alice
        .send_request(Request::Login {
            userid: "alice".into(),
            password: peerchat_proto::message::Secret(PW.into()),
            endpoint: None,
            announcement: Default::default(),
        })
        .await;
    let mut frames = Vec::new();
    while frames.len() < 3 {
        if let Got::Frame(f) = alice.next().await {
            if !matches!(f, peerchat_proto::message::ServerFrame::Ping(_)) {
                frames.push(f);
            }
        }
    }
    use peerchat_proto::message::ServerFrame as F;
    match &frames[0] {
        F::Response {
            request_id,
            result: Ok(ResponseBody::Login(s)),
        } => {
            assert_eq!(*request_id, id);
            assert_eq!(s.friends.len(), 1);
            assert_eq!(s.friends[0].userid, "bob");
            assert!(s.friends[0].online);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&frames[1], F::Push(PushEvent::FriendRequestAccepted(f)) if f.userid == "bob" && f.online)
    );
    assert!(
        matches!(&frames[2], F::Push(PushEvent::FriendRequestRefused { userid }) if userid == "carol")
    );
    // Delivered once only.
    alice.logout().await;
    alice.pushes.clear();
    alice.login("alice").await;
    alice.barrier().await;
    assert!(!alice.pushes.iter().any(|p| matches!(
        p,
        PushEvent::FriendRequestAccepted(_) | PushEvent::FriendRequestRefused { .. }
    )));
}

#[tokio::test]
async fn crossing_requests_become_friends() {
    let t = TestServer::start().await;
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    alice.send_friend_request("bob").await.unwrap();
    let friend = bob
        .send_friend_request("alice")
        .await
        .unwrap()
        .expect("requests crossed");
    assert_eq!(friend.userid, "alice");
    assert!(friend.online);
    match alice
        .expect_push(|p| matches!(p, PushEvent::FriendRequestAccepted(_)))
        .await
    {
        PushEvent::FriendRequestAccepted(f) => assert_eq!(f.userid, "bob"),
        _ => unreachable!(),
    }
    let snap = {
        bob.logout().await;
        bob.login("bob").await
    };
    assert_eq!(snap.friends.len(), 1);
    assert!(snap.incoming.is_empty() && snap.outgoing.is_empty());
}

#[tokio::test]
async fn crossing_request_with_offline_target_queues_a_notice() {
    let t = TestServer::start().await;
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    alice.send_friend_request("bob").await.unwrap();
    alice.logout().await;
    assert!(bob.send_friend_request("alice").await.unwrap().is_some());
    alice.login("alice").await;
    alice
        .expect_push(|p| matches!(p, PushEvent::FriendRequestAccepted(f) if f.userid == "bob"))
        .await;
}

#[tokio::test]
async fn unfriend_tells_the_other_side() {
    let t = TestServer::start().await;
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    befriend(&mut alice, &mut bob, "bob", "alice").await;
    alice.unfriend("BOB").await.unwrap();
    match bob
        .expect_push(|p| matches!(p, PushEvent::Unfriended { .. }))
        .await
    {
        PushEvent::Unfriended { userid } => assert_eq!(userid, "alice"),
        _ => unreachable!(),
    }
    assert_eq!(
        bob.unfriend("alice").await.unwrap_err().code,
        ErrorCode::NotFriends
    );
    // No longer friends: presence is private again.
    alice.logout().await;
    bob.barrier().await;
    assert!(!bob
        .pushes
        .iter()
        .any(|p| matches!(p, PushEvent::FriendOffline { .. })));
}

#[tokio::test]
async fn presence_online_offline_and_endpoints() {
    let t = TestServer::start().await;
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    let mut eve = t.user("eve", 2).await;
    befriend(&mut alice, &mut bob, "bob", "alice").await;
    alice.logout().await;
    bob.expect_push(|p| matches!(p, PushEvent::FriendOffline { userid } if userid == "alice"))
        .await;

    // Login with an endpoint whose host is empty: friends see the observed source IP.
    assert!(alice
        .login_with(
            "alice",
            PW,
            Some(Endpoint {
                host: None,
                port: 5555
            })
        )
        .await
        .is_ok());
    match bob
        .expect_push(|p| matches!(p, PushEvent::FriendOnline { .. }))
        .await
    {
        PushEvent::FriendOnline {
            userid,
            endpoint,
            identity_key,
            ..
        } => {
            assert_eq!(userid, "alice");
            assert_eq!(endpoint, Some("127.0.0.1:5555".parse().unwrap()));
            assert_eq!(identity_key.to_der().to_vec(), key_der(0));
        }
        _ => unreachable!(),
    }
    // Moving: SetPeerEndpoint answers the effective endpoint and friends are told again.
    let r = alice
        .request(Request::SetPeerEndpoint {
            endpoint: Endpoint {
                host: Some("::1".parse().unwrap()),
                port: 6000,
            },
            announcement: Default::default(),
        })
        .await
        .unwrap();
    match r {
        ResponseBody::SetPeerEndpoint { endpoint, observed } => {
            assert_eq!(endpoint, "[::1]:6000".parse().unwrap());
            // The observed endpoint is this connection's source address (SPEC.md §7.5).
            assert!(
                observed.is_some_and(|o| o.ip().is_loopback()),
                "{observed:?}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    match bob
        .expect_push(|p| matches!(p, PushEvent::FriendOnline { .. }))
        .await
    {
        PushEvent::FriendOnline { endpoint, .. } => {
            assert_eq!(endpoint, Some("[::1]:6000".parse().unwrap()))
        }
        _ => unreachable!(),
    }
    // Bob's snapshot shows alice online with her endpoint.
    bob.logout().await;
    let snap = bob.login("bob").await;
    assert!(snap.friends[0].online);
    assert_eq!(
        snap.friends[0].endpoint,
        Some("[::1]:6000".parse().unwrap())
    );
    alice
        .expect_push(|p| matches!(p, PushEvent::FriendOffline { userid } if userid == "bob"))
        .await;
    alice
        .expect_push(|p| matches!(p, PushEvent::FriendOnline { userid, .. } if userid == "bob"))
        .await;
    // Eve, not a friend, heard nothing about anyone.
    eve.barrier().await;
    assert!(eve.pushes.is_empty(), "{:?}", eve.pushes);
    // A dropped connection (no Logout, no Close) is FriendOffline too.
    drop(alice);
    bob.expect_push(|p| matches!(p, PushEvent::FriendOffline { userid } if userid == "alice"))
        .await;
    // And a Close frame from the client.
    let mut carol = t.user("carol", 3).await;
    befriend(&mut carol, &mut bob, "bob", "carol").await;
    carol.close().await;
    bob.expect_push(|p| matches!(p, PushEvent::FriendOffline { userid } if userid == "carol"))
        .await;
    let snap = {
        bob.logout().await;
        bob.login("bob").await
    };
    assert!(snap
        .friends
        .iter()
        .all(|f| !f.online && f.endpoint.is_none()));
}

#[cfg(feature = "test-faults")]
#[tokio::test]
async fn fault_no_offline_push() {
    let t = TestServer::start_with(|c| c.faults.no_offline_push = true).await;
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    befriend(&mut alice, &mut bob, "bob", "alice").await;
    alice.logout().await;
    bob.barrier().await;
    assert!(!bob
        .pushes
        .iter()
        .any(|p| matches!(p, PushEvent::FriendOffline { .. })));
}

#[tokio::test]
async fn requests_expire_and_requesters_are_told() {
    let t = TestServer::start_with(|c| c.request_ttl = Duration::from_millis(300)).await;
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    let mut carol_conn = t.client(2).await;
    carol_conn.register("carol").await;
    alice.send_friend_request("bob").await.unwrap();
    bob.expect_push(|p| matches!(p, PushEvent::FriendRequestReceived(_)))
        .await;
    // Carol's request, made while alice is offline, expires while she still is.
    carol_conn.login("carol").await;
    carol_conn.send_friend_request("bob").await.unwrap();
    carol_conn.logout().await;

    // Online requester: told as soon as the sweeper runs (every 100 ms in tests).
    match alice
        .expect_push(|p| matches!(p, PushEvent::FriendRequestExpired { .. }))
        .await
    {
        PushEvent::FriendRequestExpired { userid } => assert_eq!(userid, "bob"),
        _ => unreachable!(),
    }
    assert_eq!(
        bob.accept("alice").await.unwrap_err().code,
        ErrorCode::RequestNotFound
    );
    // Wait until carol's request is gone too (the target's list no longer shows it).
    loop {
        bob.logout().await;
        let snap = bob.login("bob").await;
        if snap.incoming.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Offline requester: told after the next LoginOk.
    carol_conn.login("carol").await;
    carol_conn
        .expect_push(|p| matches!(p, PushEvent::FriendRequestExpired { userid } if userid == "bob"))
        .await;
    // A new request may be sent after expiry.
    alice.send_friend_request("bob").await.unwrap();
}

#[tokio::test]
async fn expiry_follows_the_injected_clock() {
    let t = TestServer::start_with(|c| c.sweep_interval = Duration::from_secs(3600)).await;
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    alice.send_friend_request("bob").await.unwrap();
    assert_eq!(t.server().sweep_now().await, 0);
    t.clock.advance(Duration::from_secs(7 * 24 * 3600));
    // Expired requests are invisible even before the sweep.
    assert_eq!(
        bob.accept("alice").await.unwrap_err().code,
        ErrorCode::RequestNotFound
    );
    assert_eq!(t.server().sweep_now().await, 1);
    alice
        .expect_push(|p| matches!(p, PushEvent::FriendRequestExpired { userid } if userid == "bob"))
        .await;
}
