//! SPEC.md §6.1–§6.5, §6.7, §6.9: Find, friend requests, accept, refuse, unfriend, expiry and
//! queued notices.

use std::time::Duration;

use peerchat_proto::limits::MAX_PENDING_OUTGOING;
use peerchat_proto::wire::{self, push, ErrorCode};

use super::GRACE;
use crate::case::{Case, CaseResult, Verdict};
use crate::client::{describe_push, is, req, Client};
use crate::ctx::{expect_code, Ctx, Registrar, User, PUSH_TIMEOUT, QUIET_WINDOW};
use crate::ident;
use crate::{check, fail, ok, skip};

/// The friend-graph cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case::must("friends.find.found", "6.1", "Find of an existing user (other letter case) answers found with the registered spelling.", |c| Box::pin(find_found(c))),
        Case::must("friends.find.self", "6.1", "Find of one's own userid answers found.", |c| Box::pin(find_self(c))),
        Case::must("friends.find.not-found", "6.1", "Find of an unknown userid answers found = false with an empty userid.", |c| Box::pin(find_not_found(c, false))),
        Case::must("friends.find.invalid-syntax", "5.1.1", "Find of a syntactically invalid userid answers found = false (not an error).", |c| Box::pin(find_not_found(c, true))),
        Case::must("friends.request.online-target", "6.2", "SendFriendRequest answers Ok without a friend; the online target gets FriendRequestReceived with the sender's spelling and times.", |c| Box::pin(request_online(c))).covers(&["FriendRequestReceived"]),
        Case::must("friends.request.offline-target", "6.2", "A request to an offline target appears in its LoginOk.incoming_requests and in the sender's outgoing_requests.", |c| Box::pin(request_offline(c))),
        Case::must("friends.request.case-insensitive-target", "6.2", "A request naming the target in another letter case reaches it; lists carry registered spellings.", |c| Box::pin(request_case(c))),
        Case::must("friends.request.user-not-found", "6.2", "A request to an unknown userid is USER_NOT_FOUND.", |c| Box::pin(request_err(c, 0))).covers(&["ERROR_CODE_USER_NOT_FOUND"]),
        Case::must("friends.request.invalid-userid", "5.1.1", "A request to a syntactically invalid userid is USER_NOT_FOUND.", |c| Box::pin(request_err(c, 1))).covers(&["ERROR_CODE_USER_NOT_FOUND"]),
        Case::must("friends.request.self", "6.2", "A request to oneself (other letter case) is SELF_REQUEST.", |c| Box::pin(request_err(c, 2))).covers(&["ERROR_CODE_SELF_REQUEST"]),
        Case::must("friends.request.already-friends", "6.2", "A request to a friend is ALREADY_FRIENDS.", |c| Box::pin(request_already_friends(c))).covers(&["ERROR_CODE_ALREADY_FRIENDS"]),
        Case::must("friends.request.duplicate", "6.2", "A second request to the same target is DUPLICATE_REQUEST.", |c| Box::pin(request_duplicate(c))).covers(&["ERROR_CODE_DUPLICATE_REQUEST"]),
        Case::must("friends.request.crossing", "6.2", "A request to someone who already asked the caller makes them friends: Ok carries the friend, the other gets FriendRequestAccepted.", |c| Box::pin(request_crossing(c))).covers(&["FriendRequestAccepted"]),
        Case::must("friends.request.crossing-offline", "6.9", "A crossing request while the original requester is offline queues FriendRequestAccepted for its next login.", |c| Box::pin(request_crossing_offline(c))).covers(&["FriendRequestAccepted"]),
        Case::must("friends.request.simultaneous", "6.2", "Two users sending each other requests at the same moment end up friends: one Ok without friend, one Ok with friend.", |c| Box::pin(request_simultaneous(c))),
        Case::must("friends.request.limit-pending", "6.2", "With MAX_PENDING_OUTGOING pending requests, another request is LIMIT_EXCEEDED.", |c| Box::pin(request_limit(c))).covers(&["ERROR_CODE_LIMIT_EXCEEDED"]).timeout_secs(180),
        Case::must("friends.accept.ok", "6.3", "Accept answers the requester as Friend (online, key); the requester gets FriendRequestAccepted; no FriendOnline is sent.", |c| Box::pin(accept_ok(c))).covers(&["FriendRequestAccepted"]),
        Case::must("friends.accept.snapshots", "6.3", "After an accept both users' LoginOk.friends list each other and the pending lists are empty.", |c| Box::pin(accept_snapshots(c))),
        Case::must("friends.accept.not-found", "6.3", "Accept without a pending request is REQUEST_NOT_FOUND.", |c| Box::pin(accept_not_found(c))).covers(&["ERROR_CODE_REQUEST_NOT_FOUND"]),
        Case::must("friends.accept.wrong-direction", "6.3", "The sender of a request cannot accept it: REQUEST_NOT_FOUND.", |c| Box::pin(accept_wrong_direction(c))).covers(&["ERROR_CODE_REQUEST_NOT_FOUND"]),
        Case::must("friends.accept.twice", "6.3", "Accepting the same request twice: the second is REQUEST_NOT_FOUND.", |c| Box::pin(accept_twice(c))).covers(&["ERROR_CODE_REQUEST_NOT_FOUND"]),
        Case::must("friends.accept.offline-notice", "6.9", "Accepting while the requester is offline queues FriendRequestAccepted, delivered right after its next LoginOk.", |c| Box::pin(accept_offline(c))).covers(&["FriendRequestAccepted"]),
        Case::must("friends.refuse.ok", "6.4", "Refuse answers Ok; the requester gets FriendRequestRefused; the request is gone.", |c| Box::pin(refuse_ok(c))).covers(&["FriendRequestRefused"]),
        Case::must("friends.refuse.not-found", "6.4", "Refuse without a pending request is REQUEST_NOT_FOUND.", |c| Box::pin(refuse_not_found(c))).covers(&["ERROR_CODE_REQUEST_NOT_FOUND"]),
        Case::must("friends.refuse.offline-notice", "6.9", "Refusing while the requester is offline queues FriendRequestRefused for its next login.", |c| Box::pin(refuse_offline(c))).covers(&["FriendRequestRefused"]),
        Case::must("friends.refuse.then-resend", "6.4", "After a refusal the requester may send a new request.", |c| Box::pin(refuse_resend(c))),
        Case::must("friends.unfriend.ok", "6.5", "Unfriend answers Ok; the former friend gets Unfriended; snapshots no longer list each other.", |c| Box::pin(unfriend_ok(c))).covers(&["Unfriended"]),
        Case::must("friends.unfriend.not-friends", "6.5", "Unfriend of an existing non-friend is NOT_FRIENDS.", |c| Box::pin(unfriend_err(c, false))).covers(&["ERROR_CODE_NOT_FRIENDS"]),
        Case::must("friends.unfriend.unknown-user", "6.5", "Unfriend of an unknown userid is NOT_FRIENDS.", |c| Box::pin(unfriend_err(c, true))).covers(&["ERROR_CODE_NOT_FRIENDS"]),
        Case::must("friends.unfriend.offline-no-notice", "6.5", "Unfriending an offline friend queues nothing: its next LoginOk simply lacks the friend.", |c| Box::pin(unfriend_offline(c))),
        Case::must("friends.unfriend.then-request", "6.5", "After unfriending, either user may send a new request.", |c| Box::pin(unfriend_then_request(c))),
        Case::must("friends.notice.order", "6.9", "Queued notices are delivered after LoginOk, oldest first.", |c| Box::pin(notice_order(c))).covers(&["FriendRequestAccepted", "FriendRequestRefused"]),
        Case::must("friends.notice.redelivered-until-acknowledged", "6.9", "Queued notices are followed by a Ping; dropped before the Pong, they come again after the next LoginOk; once the Pong is in, never again.", |c| Box::pin(notice_redelivered(c))).covers(&["FriendRequestRefused"]),
        Case::must("friends.notice.discarded-if-unfriended", "6.9", "A queued FriendRequestAccepted is discarded if the two are no longer friends at delivery.", |c| Box::pin(notice_discarded(c))),
        Case::must("friends.notice.current-presence", "6.9", "A queued FriendRequestAccepted carries the accepter as of delivery time (offline if it went offline).", |c| Box::pin(notice_current_presence(c))),
        Case::must("friends.snapshot.sorted", "5.3.1", "LoginOk.friends is in ASCII-lowercase order of userid.", |c| Box::pin(snapshot_sorted(c))),
        Case::must("friends.snapshot.requests-oldest-first", "5.3.1", "LoginOk.incoming_requests is oldest first.", |c| Box::pin(snapshot_requests_order(c))),
        Case::must("friends.expiry.ttl", "6.7", "FriendRequestReceived.expires_at - created_at equals the server's REQUEST_TTL (needs --request-ttl-secs).", |c| Box::pin(expiry_ttl(c))),
        Case::must("friends.expiry.push", "6.7", "An online requester gets FriendRequestExpired soon after expires_at (needs --request-ttl-secs).", |c| Box::pin(expiry_push(c))).covers(&["FriendRequestExpired"]).timeout_secs(90),
        Case::must("friends.expiry.accept-after-expiry", "6.7", "Accepting an expired request is REQUEST_NOT_FOUND (needs --request-ttl-secs).", |c| Box::pin(expiry_accept(c))).covers(&["ERROR_CODE_REQUEST_NOT_FOUND"]).timeout_secs(90),
        Case::must("friends.expiry.offline-notice", "6.7", "A requester offline at expiry gets FriendRequestExpired after its next LoginOk; neither list shows the request (needs --request-ttl-secs).", |c| Box::pin(expiry_offline(c))).covers(&["FriendRequestExpired"]).timeout_secs(120),
        Case::must("friends.expiry.no-crossing", "6.7", "A request towards someone whose own request to the caller has expired is a new pending request, not a crossing (needs --request-ttl-secs).", |c| Box::pin(expiry_no_crossing(c))).timeout_secs(90),
        Case::must("friends.expiry.resend", "6.7", "After expiry a new request to the same user is accepted (no DUPLICATE_REQUEST) (needs --request-ttl-secs).", |c| Box::pin(expiry_resend(c))).timeout_secs(90),
    ]
}

// ---------------------------------------------------------------- helpers

async fn send_ok(c: &mut Client, to: &str) -> Result<wire::SendFriendRequestOk, Verdict> {
    let r = c.request_patiently(req::send_request(to)).await?;
    Ok(ok!(
        r,
        SendFriendRequest,
        format!("SendFriendRequest to {to}")
    ))
}

async fn relogin(ctx: &Ctx, u: &User) -> Result<(Client, wire::LoginOk), Verdict> {
    ctx.login(u).await
}

fn flip_case(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

/// Waits for a push after the LoginOk (whose arrival number is `login_seq`).
async fn expect_after_login(
    c: &mut Client,
    login_seq: u64,
    what: &str,
    pred: impl Fn(&push::Body) -> bool,
) -> Result<u64, Verdict> {
    let (seq, _) = c.expect_push(what, PUSH_TIMEOUT, pred).await?;
    check!(
        seq > login_seq,
        "{what} arrived before LoginOk (frame {seq}, LoginOk frame {login_seq})"
    );
    Ok(seq)
}

/// Logs `u` in on a fresh connection and returns the LoginOk's arrival number too.
async fn login_seq(ctx: &Ctx, u: &User) -> Result<(Client, wire::LoginOk, u64), Verdict> {
    let mut c = ctx.connect(u.key).await?;
    let (seq, r) = c
        .request_seq(req::login(&u.userid, &u.password, None))
        .await?;
    let l = ok!(r, Login, "Login");
    Ok((c, l, seq))
}

fn need_ttl(ctx: &Ctx) -> Result<Duration, Verdict> {
    match ctx.cfg.request_ttl {
        Some(t) => Ok(t),
        None => skip!("needs a server with a tiny request TTL and --request-ttl-secs N"),
    }
}

// ---------------------------------------------------------------- Find

async fn find_found(ctx: Ctx) -> CaseResult {
    let (_, mut c) = ctx.online_user().await?;
    let other = ctx.new_user().await?;
    let f = ok!(
        c.request(req::find(&flip_case(&other.userid))).await?,
        Find,
        "Find"
    );
    check!(
        f.found,
        "Find of existing user {} answered found = false",
        other.userid
    );
    check!(
        f.userid == other.userid,
        "FindOk.userid {:?}, registered spelling {:?}",
        f.userid,
        other.userid
    );
    Ok("found, registered spelling".into())
}

async fn find_self(ctx: Ctx) -> CaseResult {
    let (u, mut c) = ctx.online_user().await?;
    let f = ok!(c.request(req::find(&u.userid)).await?, Find, "Find self");
    check!(f.found && f.userid == u.userid, "Find of oneself: {f:?}");
    Ok("found".into())
}

async fn find_not_found(ctx: Ctx, invalid: bool) -> CaseResult {
    let (_, mut c) = ctx.online_user().await?;
    let name = if invalid {
        "_not valid!".to_string()
    } else {
        ident::userid()
    };
    let f = ok!(c.request(req::find(&name)).await?, Find, "Find");
    check!(!f.found && f.userid.is_empty(), "Find of {name:?}: {f:?}");
    Ok("found = false, userid empty".into())
}

// ---------------------------------------------------------------- SendFriendRequest

async fn request_online(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    let ok = send_ok(&mut ac, &b.userid).await?;
    check!(
        ok.friend.is_none(),
        "SendFriendRequestOk carries a friend for a new pending request"
    );
    let (_, p) = bc
        .expect_push(
            "FriendRequestReceived",
            PUSH_TIMEOUT,
            is::request_from(&a.userid),
        )
        .await?;
    let push::Body::FriendRequestReceived(r) = p else {
        fail!("wrong push")
    };
    check!(
        r.expires_at_unix_ms > r.created_at_unix_ms,
        "expires_at {} not after created_at {}",
        r.expires_at_unix_ms,
        r.created_at_unix_ms
    );
    check!(
        r.created_at_unix_ms > 1_600_000_000_000,
        "created_at_unix_ms {} implausible",
        r.created_at_unix_ms
    );
    Ok("FriendRequestReceived with times".into())
}

async fn request_offline(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    let b = ctx.new_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    let (_, bl) = relogin(&ctx, &b).await?;
    check!(
        bl.incoming_requests.len() == 1 && bl.incoming_requests[0].userid == a.userid,
        "target's incoming_requests {:?}, expected one from {}",
        bl.incoming_requests,
        a.userid
    );
    let info = &bl.incoming_requests[0];
    check!(
        info.expires_at_unix_ms > info.created_at_unix_ms,
        "expires_at not after created_at"
    );
    ctx.go_offline(ac).await?;
    let (_, al) = relogin(&ctx, &a).await?;
    check!(
        al.outgoing_requests.len() == 1 && al.outgoing_requests[0].userid == b.userid,
        "sender's outgoing_requests {:?}, expected one to {}",
        al.outgoing_requests,
        b.userid
    );
    Ok("listed on both sides".into())
}

async fn request_case(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    send_ok(&mut ac, &flip_case(&b.userid)).await?;
    bc.expect_push(
        "FriendRequestReceived",
        PUSH_TIMEOUT,
        is::request_from(&a.userid),
    )
    .await?;
    ok!(
        bc.request(req::accept(&flip_case(&a.userid))).await?,
        AcceptFriendRequest,
        "Accept with flipped case"
    );
    let (_, p) = ac
        .expect_push("FriendRequestAccepted", PUSH_TIMEOUT, |p| {
            matches!(p, push::Body::FriendRequestAccepted(_))
        })
        .await?;
    let push::Body::FriendRequestAccepted(x) = p else {
        fail!("wrong push")
    };
    let f = x
        .friend
        .ok_or_else(|| Verdict::Fail("FriendRequestAccepted without friend".into()))?;
    check!(
        f.userid == b.userid,
        "FriendRequestAccepted names {:?}, registered spelling {:?}",
        f.userid,
        b.userid
    );
    Ok("case-insensitive lookup, registered spelling in pushes".into())
}

async fn request_err(ctx: Ctx, i: usize) -> CaseResult {
    let (u, mut c) = ctx.online_user().await?;
    let (target, code) = match i {
        0 => (ident::userid(), ErrorCode::UserNotFound),
        1 => ("!!".to_string(), ErrorCode::UserNotFound),
        _ => (flip_case(&u.userid), ErrorCode::SelfRequest),
    };
    let r = c.request(req::send_request(&target)).await?;
    expect_code(&r, code, &format!("SendFriendRequest to {target:?}"))?;
    Ok(code.as_str_name().into())
}

async fn request_already_friends(ctx: Ctx) -> CaseResult {
    let (_, mut ac, b, _bc) = ctx.friends().await?;
    let r = ac.request(req::send_request(&b.userid)).await?;
    expect_code(&r, ErrorCode::AlreadyFriends, "request to a friend")?;
    Ok("ALREADY_FRIENDS".into())
}

/// The friend an accept answer or push must carry: present, `who` (registered spelling),
/// online, with `who`'s identity key (SPEC.md §6.2, §6.3).
fn expect_friend(f: Option<wire::Friend>, what: &str, who: &User) -> Result<wire::Friend, Verdict> {
    let f = f.ok_or_else(|| Verdict::Fail(format!("{what} has no friend")))?;
    check!(
        f.userid == who.userid && f.online,
        "{what}: friend {:?} online {}",
        f.userid,
        f.online
    );
    check!(
        f.identity_key == ident::public(who.key).to_der(),
        "{what}: friend carries a wrong identity key"
    );
    Ok(f)
}

async fn request_duplicate(ctx: Ctx) -> CaseResult {
    let (_, mut ac) = ctx.online_user().await?;
    let b = ctx.new_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    let r = ac.request(req::send_request(&b.userid)).await?;
    expect_code(&r, ErrorCode::DuplicateRequest, "second request")?;
    Ok("DUPLICATE_REQUEST".into())
}

async fn request_crossing(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    send_ok(&mut bc, &a.userid).await?;
    ac.expect_push(
        "FriendRequestReceived",
        PUSH_TIMEOUT,
        is::request_from(&b.userid),
    )
    .await?;
    let ok = send_ok(&mut ac, &b.userid).await?;
    expect_friend(ok.friend, "crossing SendFriendRequestOk", &b)?;
    let (_, p) = bc
        .expect_push(
            "FriendRequestAccepted",
            PUSH_TIMEOUT,
            is::accepted_by(&a.userid),
        )
        .await?;
    let push::Body::FriendRequestAccepted(x) = p else {
        fail!("wrong push")
    };
    expect_friend(x.friend, "FriendRequestAccepted", &a)?;
    Ok("crossing requests made them friends".into())
}

async fn request_crossing_offline(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    send_ok(&mut bc, &a.userid).await?;
    ctx.go_offline(bc).await?;
    let ok = send_ok(&mut ac, &b.userid).await?;
    let f = ok
        .friend
        .ok_or_else(|| Verdict::Fail("crossing SendFriendRequestOk has no friend".into()))?;
    check!(
        !f.online && f.peer_endpoint.is_none(),
        "offline friend shown online {} / endpoint {:?}",
        f.online,
        f.peer_endpoint
    );
    let (mut bc, bl, seq) = login_seq(&ctx, &b).await?;
    check!(
        bl.friends.iter().any(|f| f.userid == a.userid),
        "B's LoginOk.friends lacks A"
    );
    expect_after_login(
        &mut bc,
        seq,
        "queued FriendRequestAccepted",
        is::accepted_by(&a.userid),
    )
    .await?;
    Ok("queued notice delivered after LoginOk".into())
}

async fn request_limit(ctx: Ctx) -> CaseResult {
    if ctx
        .cfg
        .request_ttl
        .is_some_and(|t| t < Duration::from_secs(120))
    {
        skip!("the server's request TTL is too short for 100 requests to stay pending; run against a server with the default TTL");
    }
    let (_, mut ac) = ctx.online_user().await?;
    // MAX_PENDING_OUTGOING + 1 targets, registered over 4 connections in parallel.
    let n = MAX_PENDING_OUTGOING + 1;
    let mut handles = Vec::new();
    for part in 0..4 {
        let ctx = ctx.clone();
        handles.push(tokio::spawn(async move {
            let mut c = Registrar::new(&ctx, ctx.source());
            let mut names = Vec::new();
            for _ in (part..n).step_by(4) {
                let u = User::random();
                let r = c
                    .request_patiently(req::register(&u.userid, &u.email, &u.password))
                    .await?;
                ok!(r, Register, "Register target");
                names.push(u.userid);
            }
            Ok::<_, Verdict>(names)
        }));
    }
    let mut targets = Vec::new();
    for h in handles {
        targets.extend(h.await.map_err(|e| Verdict::Fail(format!("task: {e}")))??);
    }
    for t in &targets[..MAX_PENDING_OUTGOING] {
        send_ok(&mut ac, t).await?;
    }
    let r = ac
        .request_patiently(req::send_request(&targets[MAX_PENDING_OUTGOING]))
        .await?;
    expect_code(
        &r,
        ErrorCode::LimitExceeded,
        "request number MAX_PENDING_OUTGOING + 1",
    )?;
    Ok(format!(
        "{} pending, then LIMIT_EXCEEDED",
        MAX_PENDING_OUTGOING
    ))
}

// ---------------------------------------------------------------- Accept / Refuse

async fn accept_ok(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    bc.expect_push(
        "FriendRequestReceived",
        PUSH_TIMEOUT,
        is::request_from(&a.userid),
    )
    .await?;
    let r = bc.request(req::accept(&a.userid)).await?;
    let acc = ok!(r, AcceptFriendRequest, "AcceptFriendRequest");
    expect_friend(acc.friend, "AcceptFriendRequestOk", &a)?;
    let (_, p) = ac
        .expect_push(
            "FriendRequestAccepted",
            PUSH_TIMEOUT,
            is::accepted_by(&b.userid),
        )
        .await?;
    let push::Body::FriendRequestAccepted(x) = p else {
        fail!("wrong push")
    };
    expect_friend(x.friend, "FriendRequestAccepted", &b)?;
    let online = |p: &push::Body| matches!(p, push::Body::FriendOnline(_));
    if let Some(p) = ac.find_push_within(QUIET_WINDOW, online).await {
        fail!(
            "the requester also got {} (SPEC.md §6.3: no FriendOnline)",
            describe_push(&p)
        );
    }
    if let Some(p) = bc.find_push_within(Duration::ZERO, online).await {
        fail!(
            "the accepter got {} (SPEC.md §6.3: no FriendOnline)",
            describe_push(&p)
        );
    }
    Ok("friends; presence carried in Friend".into())
}

async fn accept_snapshots(ctx: Ctx) -> CaseResult {
    let (a, ac, b, bc) = ctx.friends().await?;
    ctx.go_offline(ac).await?;
    ctx.go_offline(bc).await?;
    let (_, al) = relogin(&ctx, &a).await?;
    check!(
        al.friends.iter().any(|f| f.userid == b.userid),
        "A's LoginOk.friends {:?} lacks B",
        al.friends.iter().map(|f| &f.userid).collect::<Vec<_>>()
    );
    check!(
        al.outgoing_requests.is_empty() && al.incoming_requests.is_empty(),
        "A still lists pending requests"
    );
    let (_, bl) = relogin(&ctx, &b).await?;
    check!(
        bl.friends.iter().any(|f| f.userid == a.userid),
        "B's LoginOk.friends lacks A"
    );
    check!(
        bl.outgoing_requests.is_empty() && bl.incoming_requests.is_empty(),
        "B still lists pending requests"
    );
    Ok("both lists updated".into())
}

async fn accept_not_found(ctx: Ctx) -> CaseResult {
    let (_, mut c) = ctx.online_user().await?;
    let other = ctx.new_user().await?;
    let r = c.request(req::accept(&other.userid)).await?;
    expect_code(&r, ErrorCode::RequestNotFound, "Accept without request")?;
    let r = c.request(req::accept(&ident::userid())).await?;
    expect_code(
        &r,
        ErrorCode::RequestNotFound,
        "Accept naming an unknown user",
    )?;
    Ok("REQUEST_NOT_FOUND".into())
}

async fn accept_wrong_direction(ctx: Ctx) -> CaseResult {
    let (_, mut ac) = ctx.online_user().await?;
    let b = ctx.new_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    let r = ac.request(req::accept(&b.userid)).await?;
    expect_code(
        &r,
        ErrorCode::RequestNotFound,
        "the sender accepting its own request",
    )?;
    Ok("REQUEST_NOT_FOUND".into())
}

async fn accept_twice(ctx: Ctx) -> CaseResult {
    let (a, mut ac, _b, mut bc) = {
        let (a, ac) = ctx.online_user().await?;
        let (b, bc) = ctx.online_user().await?;
        (a, ac, b, bc)
    };
    send_ok(&mut ac, &_b.userid).await?;
    ok!(
        bc.request(req::accept(&a.userid)).await?,
        AcceptFriendRequest,
        "first Accept"
    );
    let r = bc.request(req::accept(&a.userid)).await?;
    expect_code(&r, ErrorCode::RequestNotFound, "second Accept")?;
    Ok("REQUEST_NOT_FOUND".into())
}

async fn accept_offline(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    ctx.go_offline(ac).await?;
    let acc = ok!(
        bc.request(req::accept(&a.userid)).await?,
        AcceptFriendRequest,
        "Accept"
    );
    check!(
        acc.friend.as_ref().is_some_and(|f| !f.online),
        "offline requester shown online"
    );
    let (mut ac, al, seq) = login_seq(&ctx, &a).await?;
    check!(
        al.friends.iter().any(|f| f.userid == b.userid && f.online),
        "A's LoginOk.friends lacks online B"
    );
    expect_after_login(
        &mut ac,
        seq,
        "queued FriendRequestAccepted",
        is::accepted_by(&b.userid),
    )
    .await?;
    Ok("queued notice after LoginOk".into())
}

async fn refuse_ok(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    ok!(
        bc.request(req::refuse(&a.userid)).await?,
        RefuseFriendRequest,
        "Refuse"
    );
    ac.expect_push(
        "FriendRequestRefused",
        PUSH_TIMEOUT,
        is::refused_by(&b.userid),
    )
    .await?;
    let r = bc.request(req::accept(&a.userid)).await?;
    expect_code(&r, ErrorCode::RequestNotFound, "Accept after Refuse")?;
    Ok("refused; request gone".into())
}

async fn refuse_not_found(ctx: Ctx) -> CaseResult {
    let (_, mut c) = ctx.online_user().await?;
    let other = ctx.new_user().await?;
    let r = c.request(req::refuse(&other.userid)).await?;
    expect_code(&r, ErrorCode::RequestNotFound, "Refuse without request")?;
    Ok("REQUEST_NOT_FOUND".into())
}

async fn refuse_offline(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    ctx.go_offline(ac).await?;
    ok!(
        bc.request(req::refuse(&a.userid)).await?,
        RefuseFriendRequest,
        "Refuse"
    );
    let (mut ac, al, seq) = login_seq(&ctx, &a).await?;
    check!(
        al.outgoing_requests.is_empty(),
        "refused request still listed as outgoing"
    );
    expect_after_login(
        &mut ac,
        seq,
        "queued FriendRequestRefused",
        is::refused_by(&b.userid),
    )
    .await?;
    Ok("queued notice after LoginOk".into())
}

async fn refuse_resend(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    ok!(
        bc.request(req::refuse(&a.userid)).await?,
        RefuseFriendRequest,
        "Refuse"
    );
    send_ok(&mut ac, &b.userid).await?;
    Ok("new request accepted by the server".into())
}

// ---------------------------------------------------------------- Unfriend

async fn unfriend_ok(ctx: Ctx) -> CaseResult {
    let (a, mut ac, b, mut bc) = ctx.friends().await?;
    ok!(
        ac.request(req::unfriend(&b.userid)).await?,
        Unfriend,
        "Unfriend"
    );
    bc.expect_push("Unfriended", PUSH_TIMEOUT, is::unfriended_by(&a.userid))
        .await?;
    let r = ac.request(req::unfriend(&b.userid)).await?;
    expect_code(&r, ErrorCode::NotFriends, "second Unfriend")?;
    ctx.go_offline(ac).await?;
    ctx.go_offline(bc).await?;
    let (_, al) = relogin(&ctx, &a).await?;
    check!(al.friends.is_empty(), "A's LoginOk still lists friends");
    Ok("Unfriended pushed; friendship gone".into())
}

async fn unfriend_err(ctx: Ctx, unknown: bool) -> CaseResult {
    let (_, mut c) = ctx.online_user().await?;
    let target = if unknown {
        ident::userid()
    } else {
        ctx.new_user().await?.userid
    };
    let r = c.request(req::unfriend(&target)).await?;
    expect_code(&r, ErrorCode::NotFriends, "Unfriend")?;
    Ok("NOT_FRIENDS".into())
}

async fn unfriend_offline(ctx: Ctx) -> CaseResult {
    let (a, mut ac, b, bc) = ctx.friends().await?;
    ctx.go_offline(bc).await?;
    ok!(
        ac.request(req::unfriend(&b.userid)).await?,
        Unfriend,
        "Unfriend"
    );
    let (mut bc, bl, _) = login_seq(&ctx, &b).await?;
    check!(
        !bl.friends.iter().any(|f| f.userid == a.userid),
        "B's LoginOk still lists A"
    );
    if let Some(p) = bc
        .find_push_within(QUIET_WINDOW, is::unfriended_by(&a.userid))
        .await
    {
        fail!("a notice was queued: {}", describe_push(&p));
    }
    Ok("no queued notice".into())
}

async fn unfriend_then_request(ctx: Ctx) -> CaseResult {
    let (a, mut ac, b, mut bc) = ctx.friends().await?;
    ok!(
        ac.request(req::unfriend(&b.userid)).await?,
        Unfriend,
        "Unfriend"
    );
    bc.expect_push("Unfriended", PUSH_TIMEOUT, is::unfriended_by(&a.userid))
        .await?;
    send_ok(&mut bc, &a.userid).await?;
    Ok("new request after unfriending".into())
}

// ---------------------------------------------------------------- notices, snapshots

async fn notice_order(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    let (c, mut cc) = ctx.online_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    send_ok(&mut ac, &c.userid).await?;
    ctx.go_offline(ac).await?;
    ok!(
        bc.request(req::accept(&a.userid)).await?,
        AcceptFriendRequest,
        "B accepts"
    );
    // B's AcceptOk means its notice is stored; notices are delivered in the order stored
    // (SPEC.md §6.9), so C's refusal now comes after it with no pause between them.
    ok!(
        cc.request(req::refuse(&a.userid)).await?,
        RefuseFriendRequest,
        "C refuses"
    );
    let (mut ac, _, seq) = login_seq(&ctx, &a).await?;
    let s1 = expect_after_login(
        &mut ac,
        seq,
        "queued FriendRequestAccepted",
        is::accepted_by(&b.userid),
    )
    .await?;
    let s2 = expect_after_login(
        &mut ac,
        seq,
        "queued FriendRequestRefused",
        is::refused_by(&c.userid),
    )
    .await?;
    check!(
        s1 < s2,
        "notices out of order: Accepted frame {s1}, Refused frame {s2}"
    );
    Ok("after LoginOk, oldest first".into())
}

async fn notice_redelivered(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    ctx.go_offline(ac).await?;
    ok!(
        bc.request(req::refuse(&a.userid)).await?,
        RefuseFriendRequest,
        "Refuse"
    );
    // First login: read the notice and the Ping after it, never answer, drop.
    let mut c1 = ctx.connect(a.key).await?;
    c1.set_auto_pong(false);
    let (seq, r) = c1
        .request_seq(req::login(&a.userid, &a.password, None))
        .await?;
    ok!(r, Login, "first Login");
    expect_after_login(
        &mut c1,
        seq,
        "queued FriendRequestRefused",
        is::refused_by(&b.userid),
    )
    .await?;
    c1.expect_ping(PUSH_TIMEOUT).await?;
    drop(c1);
    // Second login: the same notice again; this client answers the Ping.
    let (mut c2, _, seq) = login_seq(&ctx, &a).await?;
    expect_after_login(
        &mut c2,
        seq,
        "FriendRequestRefused again after a drop before the Pong",
        is::refused_by(&b.userid),
    )
    .await?;
    // The reader answered the server's Ping before handing it over; a round trip of our own
    // then proves the server has processed that Pong.
    c2.expect_ping(PUSH_TIMEOUT).await?;
    c2.send(&wire::ClientMessage {
        request_id: 0,
        body: Some(req::ping(77)),
    })
    .await?;
    c2.expect_pong(77, PUSH_TIMEOUT).await?;
    drop(c2);
    let (mut c3, _, _) = login_seq(&ctx, &a).await?;
    if let Some(p) = c3
        .find_push_within(QUIET_WINDOW, is::refused_by(&b.userid))
        .await
    {
        fail!("an acknowledged notice came again: {}", describe_push(&p));
    }
    Ok("redelivered after a drop; gone once acknowledged".into())
}

async fn notice_discarded(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    ctx.go_offline(ac).await?;
    ok!(
        bc.request(req::accept(&a.userid)).await?,
        AcceptFriendRequest,
        "Accept"
    );
    ok!(
        bc.request(req::unfriend(&a.userid)).await?,
        Unfriend,
        "Unfriend"
    );
    let (mut ac, _, _) = login_seq(&ctx, &a).await?;
    if let Some(p) = ac
        .find_push_within(QUIET_WINDOW, is::accepted_by(&b.userid))
        .await
    {
        fail!("stale notice delivered: {}", describe_push(&p));
    }
    Ok("stale FriendRequestAccepted discarded".into())
}

async fn snapshot_sorted(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    for _ in 0..4 {
        let (f, mut fc) = ctx.online_user().await?;
        ctx.befriend(&a, &mut ac, &f, &mut fc).await?;
    }
    ctx.go_offline(ac).await?;
    let (_, l) = relogin(&ctx, &a).await?;
    let names: Vec<String> = l.friends.iter().map(|f| f.userid.clone()).collect();
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.to_ascii_lowercase());
    check!(
        names.len() == 4,
        "LoginOk lists {} friends, expected 4",
        names.len()
    );
    check!(
        names == sorted,
        "friends not in ASCII-lowercase order: {names:?}"
    );
    Ok("sorted".into())
}

async fn snapshot_requests_order(ctx: Ctx) -> CaseResult {
    let a = ctx.new_user().await?;
    let mut senders = Vec::new();
    for _ in 0..3 {
        let (s, mut sc) = ctx.online_user().await?;
        send_ok(&mut sc, &a.userid).await?;
        senders.push(s.userid);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let (_, l) = relogin(&ctx, &a).await?;
    let got: Vec<String> = l
        .incoming_requests
        .iter()
        .map(|r| r.userid.clone())
        .collect();
    check!(
        got == senders,
        "incoming_requests {got:?}, expected oldest first {senders:?}"
    );
    Ok("oldest first".into())
}

// ---------------------------------------------------------------- expiry

async fn expiry_ttl(ctx: Ctx) -> CaseResult {
    let ttl = need_ttl(&ctx)?;
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    let (_, p) = bc
        .expect_push(
            "FriendRequestReceived",
            PUSH_TIMEOUT,
            is::request_from(&a.userid),
        )
        .await?;
    let push::Body::FriendRequestReceived(r) = p else {
        fail!("wrong push")
    };
    let life = r.expires_at_unix_ms.saturating_sub(r.created_at_unix_ms);
    check!(
        life == ttl.as_millis() as u64,
        "expires_at - created_at = {life} ms, server TTL {} ms",
        ttl.as_millis()
    );
    Ok(format!("{life} ms"))
}

async fn expiry_push(ctx: Ctx) -> CaseResult {
    let ttl = need_ttl(&ctx)?;
    let (_, mut ac) = ctx.online_user().await?;
    let b = ctx.new_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    let started = tokio::time::Instant::now();
    ac.expect_push(
        "FriendRequestExpired",
        ttl + Duration::from_secs(1) + GRACE,
        is::expired(&b.userid),
    )
    .await?;
    Ok(format!(
        "FriendRequestExpired after {:?} (TTL {ttl:?})",
        started.elapsed()
    ))
}

async fn expiry_accept(ctx: Ctx) -> CaseResult {
    let ttl = need_ttl(&ctx)?;
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    bc.expect_push(
        "FriendRequestReceived",
        PUSH_TIMEOUT,
        is::request_from(&a.userid),
    )
    .await?;
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let r = bc.request(req::accept(&a.userid)).await?;
    expect_code(&r, ErrorCode::RequestNotFound, "Accept after expires_at")?;
    Ok("REQUEST_NOT_FOUND".into())
}

async fn expiry_offline(ctx: Ctx) -> CaseResult {
    let ttl = need_ttl(&ctx)?;
    let (a, mut ac) = ctx.online_user().await?;
    let b = ctx.new_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    ctx.go_offline(ac).await?;
    tokio::time::sleep(ttl + Duration::from_secs(1) + Duration::from_millis(500)).await;
    let (_, bl) = relogin(&ctx, &b).await?;
    check!(
        bl.incoming_requests.is_empty(),
        "target still lists the expired request"
    );
    let (mut ac, al, seq) = login_seq(&ctx, &a).await?;
    check!(
        al.outgoing_requests.is_empty(),
        "requester still lists the expired request"
    );
    expect_after_login(
        &mut ac,
        seq,
        "queued FriendRequestExpired",
        is::expired(&b.userid),
    )
    .await?;
    Ok("queued FriendRequestExpired after LoginOk".into())
}

async fn expiry_resend(ctx: Ctx) -> CaseResult {
    let ttl = need_ttl(&ctx)?;
    let (_, mut ac) = ctx.online_user().await?;
    let b = ctx.new_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    send_ok(&mut ac, &b.userid).await?;
    ac.expect_push(
        "FriendRequestExpired",
        Duration::from_secs(1) + GRACE,
        is::expired(&b.userid),
    )
    .await?;
    if let Some(p) = ac
        .find_push_within(QUIET_WINDOW, is::expired(&b.userid))
        .await
    {
        fail!("a second {} for one expired request", describe_push(&p));
    }
    Ok("new request accepted; exactly one FriendRequestExpired".into())
}

async fn request_simultaneous(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    let (ra, rb) = tokio::join!(
        ac.request(req::send_request(&b.userid)),
        bc.request(req::send_request(&a.userid))
    );
    let ra = ok!(ra?, SendFriendRequest, "A's request");
    let rb = ok!(rb?, SendFriendRequest, "B's request");
    check!(
        ra.friend.is_some() != rb.friend.is_some(),
        "expected exactly one crossing answer with a friend, got A: {:?}, B: {:?}",
        ra.friend.as_ref().map(|f| &f.userid),
        rb.friend.as_ref().map(|f| &f.userid)
    );
    let r = ac.request(req::send_request(&b.userid)).await?;
    expect_code(&r, ErrorCode::AlreadyFriends, "request after the race")?;
    Ok("serialised: one pending, one crossing".into())
}

async fn notice_current_presence(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    send_ok(&mut ac, &b.userid).await?;
    ctx.go_offline(ac).await?;
    ok!(
        bc.request(req::accept(&a.userid)).await?,
        AcceptFriendRequest,
        "Accept"
    );
    ok!(bc.request(req::logout()).await?, Logout, "B logs out");
    let (mut ac, _, seq) = login_seq(&ctx, &a).await?;
    let (pseq, p) = ac
        .expect_push(
            "queued FriendRequestAccepted",
            PUSH_TIMEOUT,
            is::accepted_by(&b.userid),
        )
        .await?;
    check!(pseq > seq, "notice arrived before LoginOk");
    let push::Body::FriendRequestAccepted(x) = p else {
        fail!("wrong push")
    };
    let f = x
        .friend
        .ok_or_else(|| Verdict::Fail("FriendRequestAccepted without friend".into()))?;
    check!(
        !f.online && f.peer_endpoint.is_none(),
        "notice shows the accepter online {} endpoint {:?} although it logged out before delivery",
        f.online,
        f.peer_endpoint
    );
    Ok("Friend as of delivery time (offline)".into())
}

async fn expiry_no_crossing(ctx: Ctx) -> CaseResult {
    let ttl = need_ttl(&ctx)?;
    let (a, mut ac) = ctx.online_user().await?;
    let (b, mut bc) = ctx.online_user().await?;
    send_ok(&mut bc, &a.userid).await?;
    ac.expect_push(
        "FriendRequestReceived",
        PUSH_TIMEOUT,
        is::request_from(&b.userid),
    )
    .await?;
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let r = send_ok(&mut ac, &b.userid).await?;
    check!(
        r.friend.is_none(),
        "a request crossing an expired one made them friends"
    );
    bc.expect_push(
        "FriendRequestReceived",
        PUSH_TIMEOUT,
        is::request_from(&a.userid),
    )
    .await?;
    bc.expect_push(
        "FriendRequestExpired",
        Duration::from_secs(1) + GRACE,
        is::expired(&a.userid),
    )
    .await?;
    Ok("new pending request; the expired one notified".into())
}
