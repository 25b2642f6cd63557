//! Accounts over real TCP (SPEC.md §5): Register, Login, KeyLogin, ForgotPassword, Logout,
//! the connection state machine (§4.6), new-device key replacement and session replacement.

mod common;

use common::*;
use peerchat_proto::message::{Endpoint, PushEvent, Request, ResponseBody, Secret};
use peerchat_proto::wire::{self, CloseReason, ErrorCode};

#[tokio::test]
async fn register_checks_in_spec_order() {
    let t = TestServer::start().await;
    let mut c = t.client(0).await;
    // Every rule broken at once: the first in order wins.
    let e = |r: Result<ResponseBody, peerchat_proto::message::RequestError>| r.unwrap_err().code;
    assert_eq!(
        e(c.register_with("x", "bad", "short").await),
        ErrorCode::InvalidUserid
    );
    assert_eq!(
        e(c.register_with("alice", "bad", "short").await),
        ErrorCode::InvalidEmail
    );
    assert_eq!(
        e(c.register_with("alice", "a@example.org", "short").await),
        ErrorCode::WeakPassword
    );
    assert_eq!(
        e(c.register_with("alice", "a@example.org", "ALICE").await),
        ErrorCode::WeakPassword
    );
    assert_eq!(
        e(c.register_with("_alice", "a@example.org", PW).await),
        ErrorCode::InvalidUserid
    );
    let code = match c.register_with("Alice", "A@Example.org", PW).await.unwrap() {
        ResponseBody::Register { recovery_code } => recovery_code,
        other => panic!("{other:?}"),
    };
    assert_eq!(code.len(), 23);
    assert!(peerchat_server::recovery::normalize(&code).is_some());
    // Case-insensitive uniqueness; userid before e-mail.
    assert_eq!(
        e(c.register_with("ALICE", "a@example.org", PW).await),
        ErrorCode::UseridTaken
    );
    assert_eq!(
        e(c.register_with("bob", "a@EXAMPLE.ORG", PW).await),
        ErrorCode::EmailTaken
    );
    // Register does not log in.
    assert_eq!(
        c.error(Request::Find {
            userid: "alice".into()
        })
        .await,
        ErrorCode::NotLoggedIn
    );
}

#[tokio::test]
async fn login_logout_and_state_machine() {
    let t = TestServer::start().await;
    let mut c = t.client(0).await;
    c.register("Alice").await;
    // Wrong password, unknown user, bad userid syntax: all the same error.
    assert_eq!(
        c.login_with("alice", "wrong password!", None)
            .await
            .unwrap_err()
            .code,
        ErrorCode::BadCredentials
    );
    assert_eq!(
        c.login_with("nobody", PW, None).await.unwrap_err().code,
        ErrorCode::BadCredentials
    );
    assert_eq!(
        c.login_with("", PW, None).await.unwrap_err().code,
        ErrorCode::BadCredentials
    );
    // Anonymous: everything but the four auth requests is NOT_LOGGED_IN.
    for req in [
        Request::Logout,
        Request::Find {
            userid: "alice".into(),
        },
        Request::SendFriendRequest {
            userid: "alice".into(),
        },
        Request::AcceptFriendRequest {
            userid: "alice".into(),
        },
        Request::RefuseFriendRequest {
            userid: "alice".into(),
        },
        Request::Unfriend {
            userid: "alice".into(),
        },
        Request::SetPeerEndpoint {
            endpoint: Endpoint {
                host: None,
                port: 5,
            },
            announcement: Default::default(),
        },
    ] {
        assert_eq!(c.error(req).await, ErrorCode::NotLoggedIn);
    }
    // Any letter case; the snapshot has the registered spelling and the endpoint resolved.
    let snap = match c
        .login_with(
            "ALICE",
            PW,
            Some(Endpoint {
                host: None,
                port: 4000,
            }),
        )
        .await
        .unwrap()
    {
        ResponseBody::Login(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(snap.userid, "Alice");
    assert!(snap.friends.is_empty() && snap.incoming.is_empty() && snap.outgoing.is_empty());
    assert_eq!(snap.endpoint, Some("127.0.0.1:4000".parse().unwrap()));
    assert!(snap.server_time_unix_ms > 0);
    assert_eq!(t.server().online_count(), 1);
    // LoggedIn: the four auth requests are ALREADY_LOGGED_IN.
    for req in [
        Request::Register {
            userid: "zed".into(),
            email: "z@example.org".into(),
            password: Secret(PW.into()),
        },
        Request::Login {
            userid: "alice".into(),
            password: Secret(PW.into()),
            endpoint: None,
            announcement: Default::default(),
        },
        Request::KeyLogin {
            userid: "alice".into(),
            endpoint: None,
            announcement: Default::default(),
        },
        Request::ForgotPassword {
            userid: "alice".into(),
            email: "alice@example.org".into(),
            recovery_code: Secret("x".into()),
            new_password: Secret(PW.into()),
        },
    ] {
        assert_eq!(c.error(req).await, ErrorCode::AlreadyLoggedIn);
    }
    c.logout().await;
    assert_eq!(t.server().online_count(), 0);
    assert_eq!(c.error(Request::Logout).await, ErrorCode::NotLoggedIn);
    // Back in Authenticating: may log in again on the same connection.
    c.login("alice").await;
}

#[tokio::test]
async fn key_login_needs_the_registered_key() {
    let t = TestServer::start().await;
    let mut c = t.client(0).await;
    c.register("alice").await;
    let snap = match c.key_login("alice", None).await.unwrap() {
        ResponseBody::Login(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(snap.userid, "alice");
    c.logout().await;
    let mut other = t.client(1).await;
    assert_eq!(
        other.key_login("alice", None).await.unwrap_err().code,
        ErrorCode::BadCredentials
    );
    assert_eq!(
        other.key_login("nobody", None).await.unwrap_err().code,
        ErrorCode::BadCredentials
    );
}

#[cfg(feature = "test-faults")]
#[tokio::test]
async fn fault_accept_any_key_login() {
    let t = TestServer::start_with(|c| c.faults.accept_any_key_login = true).await;
    let mut c = t.client(0).await;
    c.register("alice").await;
    let mut other = t.client(1).await;
    assert!(other.key_login("alice", None).await.is_ok());
}

#[tokio::test]
async fn invalid_request_and_unsupported() {
    let t = TestServer::start().await;
    let mut c = t.client(0).await;
    c.register("alice").await;
    // Bad endpoints.
    for ep in [
        wire::PeerEndpoint {
            host: "127.0.0.1".into(),
            port: 0,
        },
        wire::PeerEndpoint {
            host: "example.com".into(),
            port: 1,
        },
    ] {
        let msg = wire::ClientMessage {
            request_id: 77,
            body: Some(wire::client_message::Body::Login(wire::Login {
                userid: "alice".into(),
                password: PW.into(),
                peer_endpoint: Some(ep),
                announcement: None,
            })),
        };
        c.send(&msg).await;
        assert_eq!(
            c.response(77).await.unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }
    // The state check comes before field validation (SPEC.md §4.6 steps 6-7).
    let no_endpoint = wire::ClientMessage {
        request_id: 78,
        body: Some(wire::client_message::Body::SetPeerEndpoint(
            wire::SetPeerEndpoint {
                peer_endpoint: None,
                announcement: None,
            },
        )),
    };
    c.send(&no_endpoint).await;
    assert_eq!(
        c.response(78).await.unwrap_err().code,
        ErrorCode::NotLoggedIn
    );
    // A password over 1024 bytes never matches.
    assert_eq!(
        c.login_with("alice", &"x".repeat(2000), None)
            .await
            .unwrap_err()
            .code,
        ErrorCode::BadCredentials
    );
    c.login("alice").await;
    c.send(&no_endpoint).await;
    assert_eq!(
        c.response(78).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    let bad_login = wire::ClientMessage {
        request_id: 79,
        body: Some(wire::client_message::Body::Login(wire::Login {
            userid: "alice".into(),
            password: PW.into(),
            peer_endpoint: Some(wire::PeerEndpoint {
                host: "x".into(),
                port: 0,
            }),
            announcement: None,
        })),
    };
    c.send(&bad_login).await;
    assert_eq!(
        c.response(79).await.unwrap_err().code,
        ErrorCode::AlreadyLoggedIn
    );
    c.logout().await;
    // request_id 0.
    c.send(&Request::Find { userid: "x".into() }.into_message(0))
        .await;
    assert_eq!(
        c.response(0).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    // Empty body (an empty frame) and unknown oneof case: UNSUPPORTED_REQUEST, connection stays.
    c.send(&wire::ClientMessage {
        request_id: 9,
        body: None,
    })
    .await;
    assert_eq!(
        c.response(9).await.unwrap_err().code,
        ErrorCode::UnsupportedRequest
    );
    // Field 99 (length-delimited, empty) is an unknown body case.
    c.send_raw_plaintext(&[0, 0, 0, 5, 0x08, 0x0a, 0x9a, 0x06, 0x00])
        .await;
    assert_eq!(
        c.response(10).await.unwrap_err().code,
        ErrorCode::UnsupportedRequest
    );
    // Ping is answered with Pong carrying the nonce.
    c.barrier().await;
    c.login("alice").await;
}

#[tokio::test]
async fn forgot_password_resets_with_the_recovery_code() {
    let t = TestServer::start().await;
    let mut c = t.client(0).await;
    let code = c.register("alice").await;
    let forgot = |userid: &str, email: &str, code: &str, pw: &str| Request::ForgotPassword {
        userid: userid.into(),
        email: email.into(),
        recovery_code: Secret(code.into()),
        new_password: Secret(pw.into()),
    };
    // Weak password is checked first, even with everything else wrong.
    assert_eq!(
        c.error(forgot("nobody", "x", "y", "short")).await,
        ErrorCode::WeakPassword
    );
    let new_pw = "a brand new password";
    assert_eq!(
        c.error(forgot("alice", "wrong@example.org", &code, new_pw))
            .await,
        ErrorCode::ResetRefused
    );
    assert_eq!(
        c.error(forgot(
            "alice",
            "alice@example.org",
            "AAAAA-AAAAA-AAAAA-AAAAA",
            new_pw
        ))
        .await,
        ErrorCode::ResetRefused
    );
    assert_eq!(
        c.error(forgot("nobody", "alice@example.org", &code, new_pw))
            .await,
        ErrorCode::ResetRefused
    );
    // Dashes, spaces and case of the code do not matter; e-mail case does not either.
    let typed = code.replace('-', " ").to_lowercase();
    let new_code = match c
        .request(forgot("ALICE", "Alice@Example.org", &typed, new_pw))
        .await
        .unwrap()
    {
        ResponseBody::ForgotPassword { recovery_code } => recovery_code,
        other => panic!("{other:?}"),
    };
    assert_ne!(new_code, code);
    // The old code no longer works; the old password neither.
    assert_eq!(
        c.error(forgot(
            "alice",
            "alice@example.org",
            &code,
            "yet another password"
        ))
        .await,
        ErrorCode::ResetRefused
    );
    assert_eq!(
        c.login_with("alice", PW, None).await.unwrap_err().code,
        ErrorCode::BadCredentials
    );
    // Not logged in by the reset; the new password works and the key is unchanged.
    assert!(matches!(
        c.login_with("alice", new_pw, None).await,
        Ok(ResponseBody::Login(_))
    ));
    c.logout().await;
    assert!(c.key_login("alice", None).await.is_ok());
}

#[tokio::test]
async fn login_failures_are_rate_limited_per_account() {
    let t = TestServer::start().await;
    let mut c = t.client(0).await;
    c.register("alice").await;
    for _ in 0..5 {
        assert_eq!(
            c.login_with("alice", "wrong password!", None)
                .await
                .unwrap_err()
                .code,
            ErrorCode::BadCredentials
        );
    }
    // Even the right password is refused during the back-off, with a retry hint.
    let e = c.login_with("alice", PW, None).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert!(e.retry_after.is_some());
    // KeyLogin proves the key, not the password: the owner's client is not locked out.
    assert!(c.key_login("alice", None).await.is_ok());
    c.logout().await;
    // Another account is unaffected.
    c.register("bob").await;
    assert!(c.login_with("bob", PW, None).await.is_ok());
    c.logout().await;
    // After the back-off the right password works and resets the counter.
    tokio::time::sleep(e.retry_after.unwrap()).await;
    assert!(c.login_with("alice", PW, None).await.is_ok());
}

#[tokio::test]
async fn second_login_replaces_the_first_session() {
    let t = TestServer::start().await;
    let mut a1 = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    befriend(&mut a1, &mut bob, "bob", "alice").await;
    let mut a2 = t.client(0).await;
    a2.login("alice").await;
    assert_eq!(a1.expect_close().await, CloseReason::SessionReplaced);
    assert!(a1.expect_end().await.is_some());
    // Bob sees alice online again (the new session), never offline.
    bob.expect_push(|p| matches!(p, PushEvent::FriendOnline { userid, .. } if userid == "alice"))
        .await;
    bob.barrier().await;
    assert!(
        !bob.pushes
            .iter()
            .any(|p| matches!(p, PushEvent::FriendOffline { .. })),
        "{:?}",
        bob.pushes
    );
    assert_eq!(t.server().online_count(), 2);
    // The new session works.
    assert_eq!(a2.find("bob").await, (true, "bob".into()));
}

#[tokio::test]
async fn password_login_from_a_new_key_replaces_the_key() {
    let t = TestServer::start().await;
    let mut alice = t.user("alice", 0).await;
    let mut bob = t.user("bob", 1).await;
    befriend(&mut alice, &mut bob, "bob", "alice").await;
    alice.logout().await;
    bob.expect_push(|p| matches!(p, PushEvent::FriendOffline { userid } if userid == "alice"))
        .await;
    // One KeyLogin with the old key first, so the server's account cache holds it: the
    // replacement below must still end it (server/src/db/key_cache.rs).
    assert!(alice.key_login("alice", None).await.is_ok());
    bob.expect_push(|p| matches!(p, PushEvent::FriendOnline { userid, .. } if userid == "alice"))
        .await;
    alice.logout().await;
    bob.expect_push(|p| matches!(p, PushEvent::FriendOffline { userid } if userid == "alice"))
        .await;
    // Alice's new device: key 2.
    let mut alice2 = t.client(2).await;
    alice2.login("alice").await;
    match bob
        .expect_push(|p| matches!(p, PushEvent::FriendKeyChanged { .. }))
        .await
    {
        PushEvent::FriendKeyChanged {
            userid,
            identity_key,
        } => {
            assert_eq!(userid, "alice");
            assert_eq!(identity_key.to_der().to_vec(), key_der(2));
        }
        _ => unreachable!(),
    }
    match bob
        .expect_push(|p| matches!(p, PushEvent::FriendOnline { .. }))
        .await
    {
        PushEvent::FriendOnline { identity_key, .. } => {
            assert_eq!(identity_key.to_der().to_vec(), key_der(2))
        }
        _ => unreachable!(),
    }
    // The old key can no longer KeyLogin; the new one can.
    alice2.logout().await;
    assert_eq!(
        alice.key_login("alice", None).await.unwrap_err().code,
        ErrorCode::BadCredentials
    );
    assert!(alice2.key_login("alice", None).await.is_ok());
    // Offline friends see the new key in their next snapshot.
    bob.logout().await;
    let snap = bob.login("bob").await;
    assert_eq!(snap.friends[0].identity_key.to_der().to_vec(), key_der(2));
}
