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
    rs.iter().filter(|r| matches!(r, Err(c) if *c == code)).count()
}

fn wrong_login(userid: &str) -> Request {
    Request::Login {
        userid: userid.into(),
        password: Secret("wrong password, surely".into()),
        endpoint: None,
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
    let rs = concurrently(&t, 60, 1, |_| wrong_login("alice")).await;
    let evaluated = count(&rs, ErrorCode::BadCredentials);
    assert!(
        evaluated <= LOGIN_FAIL_ACCOUNT_MAX as usize,
        "{evaluated} of 60 concurrent guesses were evaluated"
    );
    assert_eq!(evaluated + count(&rs, ErrorCode::RateLimited), 60);
    // Now locked: the right password, even from elsewhere on the same address, waits.
    let mut owner = t.client(0).await;
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
    let evaluated =
        count(&rs, ErrorCode::BadCredentials) + count(&rs2, ErrorCode::BadCredentials);
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
    let e = c.register_with("user3", "user3@example.org", PW).await.unwrap_err();
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
