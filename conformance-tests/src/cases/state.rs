//! SPEC.md §4.6: the connection state machine, request_id rules, unknown bodies, ordering and
//! pipelining; §5.6: the state after Logout.

use std::time::Duration;

use peerchat_proto::wire::{self, client_message::Body, ErrorCode};

use super::raw_session;
use crate::case::{Case, CaseResult, Verdict};
use crate::client::{is, req, Client};
use crate::ctx::{expect_code, Ctx, PUSH_TIMEOUT, QUIET_WINDOW};
use crate::ident;
use crate::raw::RawSession;
use crate::{check, fail, ok};

/// The state-machine cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case::must(
            "state.not-logged-in.logout",
            "4.6",
            "Logout before login is answered NOT_LOGGED_IN.",
            |c| Box::pin(not_logged_in(c, 0)),
        )
        .covers(&["ERROR_CODE_NOT_LOGGED_IN"]),
        Case::must(
            "state.not-logged-in.find",
            "4.6",
            "Find before login is answered NOT_LOGGED_IN.",
            |c| Box::pin(not_logged_in(c, 1)),
        )
        .covers(&["ERROR_CODE_NOT_LOGGED_IN"]),
        Case::must(
            "state.not-logged-in.send-friend-request",
            "4.6",
            "SendFriendRequest before login is answered NOT_LOGGED_IN.",
            |c| Box::pin(not_logged_in(c, 2)),
        )
        .covers(&["ERROR_CODE_NOT_LOGGED_IN"]),
        Case::must(
            "state.not-logged-in.accept-friend-request",
            "4.6",
            "AcceptFriendRequest before login is answered NOT_LOGGED_IN.",
            |c| Box::pin(not_logged_in(c, 3)),
        )
        .covers(&["ERROR_CODE_NOT_LOGGED_IN"]),
        Case::must(
            "state.not-logged-in.refuse-friend-request",
            "4.6",
            "RefuseFriendRequest before login is answered NOT_LOGGED_IN.",
            |c| Box::pin(not_logged_in(c, 4)),
        )
        .covers(&["ERROR_CODE_NOT_LOGGED_IN"]),
        Case::must(
            "state.not-logged-in.unfriend",
            "4.6",
            "Unfriend before login is answered NOT_LOGGED_IN.",
            |c| Box::pin(not_logged_in(c, 5)),
        )
        .covers(&["ERROR_CODE_NOT_LOGGED_IN"]),
        Case::must(
            "state.not-logged-in.set-peer-endpoint",
            "4.6",
            "SetPeerEndpoint before login is answered NOT_LOGGED_IN.",
            |c| Box::pin(not_logged_in(c, 6)),
        )
        .covers(&["ERROR_CODE_NOT_LOGGED_IN"]),
        Case::must(
            "state.already-logged-in.register",
            "4.6",
            "Register while logged in is answered ALREADY_LOGGED_IN.",
            |c| Box::pin(already_logged_in(c, 0)),
        )
        .covers(&["ERROR_CODE_ALREADY_LOGGED_IN"]),
        Case::must(
            "state.already-logged-in.login",
            "4.6",
            "Login while logged in is answered ALREADY_LOGGED_IN.",
            |c| Box::pin(already_logged_in(c, 1)),
        )
        .covers(&["ERROR_CODE_ALREADY_LOGGED_IN"]),
        Case::must(
            "state.already-logged-in.key-login",
            "4.6",
            "KeyLogin while logged in is answered ALREADY_LOGGED_IN.",
            |c| Box::pin(already_logged_in(c, 2)),
        )
        .covers(&["ERROR_CODE_ALREADY_LOGGED_IN"]),
        Case::must(
            "state.already-logged-in.forgot-password",
            "4.6",
            "ForgotPassword while logged in is answered ALREADY_LOGGED_IN.",
            |c| Box::pin(already_logged_in(c, 3)),
        )
        .covers(&["ERROR_CODE_ALREADY_LOGGED_IN"]),
        Case::must(
            "state.after-logout.not-logged-in",
            "5.6",
            "After LogoutOk the connection is Authenticating again: Find is NOT_LOGGED_IN.",
            |c| Box::pin(after_logout(c)),
        )
        .covers(&["ERROR_CODE_NOT_LOGGED_IN"]),
        Case::must(
            "state.after-logout.login-again",
            "5.6",
            "After LogoutOk the same connection can log in to another account.",
            |c| Box::pin(login_again(c)),
        ),
        Case::must(
            "state.after-logout.no-pushes",
            "5.6",
            "After LogoutOk the connection receives no pushes.",
            |c| Box::pin(no_pushes_after_logout(c)),
        ),
        Case::must(
            "state.request-id-zero",
            "4.6",
            "A request with request_id 0 is answered INVALID_REQUEST with request_id 0; the connection stays.",
            |c| Box::pin(request_id_zero(c)),
        )
        .covers(&["ERROR_CODE_INVALID_REQUEST"]),
        Case::must(
            "state.empty-body",
            "4.6",
            "A ClientMessage with a request_id and no body is answered UNSUPPORTED_REQUEST echoing the id.",
            |c| Box::pin(empty_body(c)),
        )
        .covers(&["ERROR_CODE_UNSUPPORTED_REQUEST"]),
        Case::must(
            "state.unknown-body",
            "11.2",
            "A ClientMessage with an unknown oneof case is answered UNSUPPORTED_REQUEST; the connection stays usable.",
            |c| Box::pin(unknown_body(c)),
        )
        .covers(&["ERROR_CODE_UNSUPPORTED_REQUEST"]),
        Case::must(
            "state.unknown-body-id-zero",
            "4.6",
            "An unknown body with request_id 0 is UNSUPPORTED_REQUEST (step 4 comes before the request_id check).",
            |c| Box::pin(unknown_body_id_zero(c)),
        )
        .covers(&["ERROR_CODE_UNSUPPORTED_REQUEST"]),
        Case::must(
            "state.pipelined-order",
            "4.6",
            "30 pipelined requests get 30 Responses with their ids, in request order.",
            |c| Box::pin(pipelined_order(c)),
        ),
        Case::must(
            "state.pipelined-login-then-find",
            "4.6",
            "A Find pipelined right after Login is processed in the LoggedIn state.",
            |c| Box::pin(pipelined_login(c)),
        ),
        Case::must(
            "state.duplicate-request-ids",
            "4.6",
            "The server does not require unique request_ids: both requests are answered.",
            |c| Box::pin(duplicate_ids(c)),
        ),
    ]
}

fn logged_in_body(i: usize) -> (Body, &'static str) {
    match i {
        0 => (req::logout(), "Logout"),
        1 => (req::find("someone"), "Find"),
        2 => (req::send_request("someone"), "SendFriendRequest"),
        3 => (req::accept("someone"), "AcceptFriendRequest"),
        4 => (req::refuse("someone"), "RefuseFriendRequest"),
        5 => (req::unfriend("someone"), "Unfriend"),
        _ => (
            req::set_endpoint(Some(req::ep("", 4000))),
            "SetPeerEndpoint",
        ),
    }
}

async fn not_logged_in(ctx: Ctx, i: usize) -> CaseResult {
    let mut c = ctx.connect(ident::random_key()).await?;
    let (body, name) = logged_in_body(i);
    let r = c.request(body).await?;
    expect_code(&r, ErrorCode::NotLoggedIn, name)?;
    let r = c.request(req::find("x")).await?;
    expect_code(
        &r,
        ErrorCode::NotLoggedIn,
        "a second request on the same connection",
    )?;
    Ok(format!("{name}: NOT_LOGGED_IN, connection stays open"))
}

async fn already_logged_in(ctx: Ctx, i: usize) -> CaseResult {
    let (u, mut c) = ctx.online_user().await?;
    let other = crate::ctx::User::random();
    let (body, name) = match i {
        0 => (
            req::register(&other.userid, &other.email, &other.password),
            "Register",
        ),
        1 => (req::login(&u.userid, &u.password, None), "Login"),
        2 => (req::key_login(&u.userid, None), "KeyLogin"),
        _ => (
            req::forgot(&u.userid, &u.email, &u.recovery_code, "another-password-1"),
            "ForgotPassword",
        ),
    };
    let r = c.request(body).await?;
    expect_code(&r, ErrorCode::AlreadyLoggedIn, name)?;
    let r = c.request(req::find(&u.userid)).await?;
    let f = ok!(r, Find, "Find after the refused request");
    check!(
        f.found,
        "Find of oneself after ALREADY_LOGGED_IN: not found"
    );
    Ok(format!("{name}: ALREADY_LOGGED_IN, session unchanged"))
}

async fn after_logout(ctx: Ctx) -> CaseResult {
    let (_, mut c) = ctx.online_user().await?;
    let r = c.request(req::logout()).await?;
    ok!(r, Logout, "Logout");
    let r = c.request(req::find("someone")).await?;
    expect_code(&r, ErrorCode::NotLoggedIn, "Find after Logout")?;
    let r = c.request(req::logout()).await?;
    expect_code(&r, ErrorCode::NotLoggedIn, "a second Logout")?;
    Ok("NOT_LOGGED_IN after LogoutOk".into())
}

async fn login_again(ctx: Ctx) -> CaseResult {
    let (_, mut c) = ctx.online_user().await?;
    let other = ctx.new_user().await?;
    let r = c.request(req::logout()).await?;
    ok!(r, Logout, "Logout");
    let r = c
        .request(req::login(&other.userid, &other.password, None))
        .await?;
    let l = ok!(r, Login, "Login to another account on the same connection");
    check!(
        l.userid == other.userid,
        "LoginOk.userid {:?} != {:?}",
        l.userid,
        other.userid
    );
    Ok("logged in again on the same connection".into())
}

async fn no_pushes_after_logout(ctx: Ctx) -> CaseResult {
    let (a, mut ac, f, mut fc) = ctx.friends().await?;
    let (g, mut gc) = ctx.online_user().await?;
    ctx.befriend(&f, &mut fc, &g, &mut gc).await?;
    let r = ac.request(req::logout()).await?;
    ok!(r, Logout, "Logout");
    let r = fc
        .request(req::set_endpoint(Some(req::ep("192.0.2.1", 4000))))
        .await?;
    ok!(r, SetPeerEndpoint, "SetPeerEndpoint");
    gc.expect_push(
        "FriendOnline (control)",
        PUSH_TIMEOUT,
        is::online(&f.userid),
    )
    .await?;
    if let Some(p) = ac.find_push_within(QUIET_WINDOW, |_| true).await {
        fail!(
            "{} received {} after LogoutOk",
            a.userid,
            crate::client::describe_push(&p)
        );
    }
    Ok("no push after LogoutOk".into())
}

async fn request_id_zero(ctx: Ctx) -> CaseResult {
    let mut c = ctx.connect(ident::random_key()).await?;
    c.send(&wire::ClientMessage {
        request_id: 0,
        body: Some(req::find("someone")),
    })
    .await?;
    let (_, r) = c.wait_response(0).await?;
    expect_code(&r, ErrorCode::InvalidRequest, "request_id 0")?;
    let r = c.request(req::find("someone")).await?;
    expect_code(
        &r,
        ErrorCode::NotLoggedIn,
        "a request after the INVALID_REQUEST",
    )?;
    Ok("INVALID_REQUEST echoing 0; connection stays".into())
}

async fn empty_body(ctx: Ctx) -> CaseResult {
    let mut c = ctx.connect(ident::random_key()).await?;
    c.send(&wire::ClientMessage {
        request_id: 7,
        body: None,
    })
    .await?;
    let (_, r) = c.wait_response(7).await?;
    expect_code(&r, ErrorCode::UnsupportedRequest, "empty body")?;
    Ok("UNSUPPORTED_REQUEST echoing 7".into())
}

async fn raw_unknown(s: &mut RawSession, frame: &[u8], id: u64) -> Result<(), Verdict> {
    s.send_frame(frame).await.map_err(Verdict::Fail)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match s.recv(deadline).await {
            crate::raw::RawRecv::Msg(wire::ServerMessage {
                body: Some(wire::server_message::Body::Response(r)),
            }) => {
                check!(
                    r.request_id == id,
                    "Response carries request_id {} instead of {id}",
                    r.request_id
                );
                let res = r
                    .result
                    .ok_or_else(|| Verdict::Fail("Response without a result".into()))?;
                expect_code(&res, ErrorCode::UnsupportedRequest, "unknown body")?;
                return Ok(());
            }
            crate::raw::RawRecv::Msg(_) => {}
            other => fail!("no Response to the unknown body: {other:?}"),
        }
    }
}

async fn unknown_body(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    // ClientMessage{request_id: 3, <field 19: empty message>} (15 became ChangePassword)
    raw_unknown(&mut s, &[0x08, 0x03, 0x9a, 0x01, 0x00], 3).await?;
    let r = s.request(4, req::find("x")).await.map_err(Verdict::Fail)?;
    expect_code(&r, ErrorCode::NotLoggedIn, "request after the unknown body")?;
    Ok("UNSUPPORTED_REQUEST echoing 3; connection usable".into())
}

async fn unknown_body_id_zero(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    raw_unknown(&mut s, &[0xc2, 0x01, 0x00], 0).await?; // field 24, empty message
    Ok("UNSUPPORTED_REQUEST echoing 0".into())
}

async fn pipelined_order(ctx: Ctx) -> CaseResult {
    let (u, mut c) = ctx.online_user().await?;
    let mut expected = Vec::new();
    for i in 0..30u64 {
        let id = 1000 + i * 7;
        let body = match i % 3 {
            0 => req::find(&u.userid),
            1 => req::unfriend("nobody-here"),
            _ => req::accept("nobody-here"),
        };
        c.queue(&wire::ClientMessage {
            request_id: id,
            body: Some(body),
        })?;
        expected.push(id);
    }
    c.flush().await?;
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let r = c.next_frame(Duration::from_secs(15)).await?;
        if let Some(wire::server_message::Body::Response(resp)) = r.msg.body {
            got.push(resp.request_id);
        }
    }
    check!(
        got == expected,
        "Responses in order {got:?}, expected {expected:?}"
    );
    Ok("30 Responses in request order".into())
}

async fn pipelined_login(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut c: Client = ctx.connect(u.key).await?;
    c.queue(&wire::ClientMessage {
        request_id: 1,
        body: Some(req::login(&u.userid, &u.password, None)),
    })?;
    c.queue(&wire::ClientMessage {
        request_id: 2,
        body: Some(req::find(&u.userid)),
    })?;
    c.flush().await?;
    let (_, r) = c.wait_response(1).await?;
    ok!(r, Login, "pipelined Login");
    let (_, r) = c.wait_response(2).await?;
    let f = ok!(r, Find, "Find pipelined after Login");
    check!(f.found, "Find of oneself: not found");
    Ok("Find processed LoggedIn".into())
}

async fn duplicate_ids(ctx: Ctx) -> CaseResult {
    let mut c = ctx.connect(ident::random_key()).await?;
    c.queue(&wire::ClientMessage {
        request_id: 9,
        body: Some(req::find("a")),
    })?;
    c.queue(&wire::ClientMessage {
        request_id: 9,
        body: Some(req::find("b")),
    })?;
    c.flush().await?;
    c.wait_response(9).await?;
    c.wait_response(9).await?;
    Ok("both answered".into())
}
