//! SPEC.md §7.5 (observed endpoint, candidates), §7.6 (ConnectPeer: reversal and punch
//! coordination) and §7.7 (the relay: admission only between logged-in friends, limits, and
//! opacity — the bytes pass through unchanged).
//!
//! Relay connections are made with the raw `snow` client (`HandshakeOptions::relay`), so the
//! relay's switch from the server's Noise session to the relayed stream is checked by a second
//! implementation, byte for byte.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use peerchat_proto::limits::{
    CONNECT_PEER_BURST, PUNCH_DELAY_MAX, RELAY_JOIN_TIMEOUT, RELAY_LINKS_PER_USER,
};
use peerchat_proto::wire::{
    self, client_message::Body, push, response, CandidateKind, ConnectMode, ErrorCode,
};
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::GRACE;
use crate::case::{Case, CaseResult, Verdict};
use crate::client::{req, Client};
use crate::ctx::{expect_code, Ctx, User, PUSH_TIMEOUT};
use crate::raw::{HandshakeOptions, RawConn, RawSession};
use crate::{check, fail, ok};

/// Host candidates the cases announce (documentation addresses, never dialled).
const HOSTS: [&str; 2] = ["198.51.100.7", "203.0.113.9"];
const HOST_PORT: u32 = 4000;

/// The traversal cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case::must("traversal.observed.login", "7.5", "LoginOk.observed_endpoint is the address and port the client connects from.", |c| Box::pin(observed_login(c))),
        Case::must("traversal.observed.set-peer-endpoint", "7.5", "SetPeerEndpointOk.observed_endpoint is the address and port the client connects from.", |c| Box::pin(observed_set_endpoint(c))),
        Case::must("traversal.candidates.friend-online", "7.5", "FriendOnline carries the host candidates in order, then the observed endpoint when observed_is_listener.", |c| Box::pin(candidates_online(c))).covers(&["FriendOnline"]),
        Case::must("traversal.candidates.snapshot", "7.5", "LoginOk lists an online friend's candidates.", |c| Box::pin(candidates_snapshot(c))),
        Case::must("traversal.candidates.not-listener", "7.5", "Without observed_is_listener the observed endpoint is not a candidate.", |c| Box::pin(candidates_not_listener(c))).covers(&["FriendOnline"]),
        Case::must("traversal.announcement.invalid", "7.5", "A host candidate that is unspecified, multicast or empty, or more than MAX_HOST_CANDIDATES, is INVALID_REQUEST.", |c| Box::pin(announcement_invalid(c))).covers(&["ERROR_CODE_INVALID_REQUEST"]),
        Case::must("traversal.connect.not-logged-in", "4.6", "ConnectPeer before login is NOT_LOGGED_IN.", |c| Box::pin(connect_not_logged_in(c))).covers(&["ERROR_CODE_NOT_LOGGED_IN"]),
        Case::must("traversal.connect.mode-unspecified", "7.6", "ConnectPeer with mode UNSPECIFIED is INVALID_REQUEST.", |c| Box::pin(connect_unspecified(c))).covers(&["ERROR_CODE_INVALID_REQUEST"]),
        Case::must("traversal.connect.not-friends", "7.6", "ConnectPeer for a non-friend or unknown user is NOT_FRIENDS.", |c| Box::pin(connect_not_friends(c))).covers(&["ERROR_CODE_NOT_FRIENDS"]),
        Case::must("traversal.connect.peer-offline", "7.6", "ConnectPeer for an offline friend is PEER_OFFLINE.", |c| Box::pin(connect_offline(c))).covers(&["ERROR_CODE_PEER_OFFLINE"]),
        Case::must("traversal.connect.punch", "7.6", "ConnectPeer PUNCH: the friend gets PeerConnectRequested with the same 16-byte attempt_id and the requester's candidates; both dial_in_ms are at most PUNCH_DELAY_MAX.", |c| Box::pin(connect_ok(c, ConnectMode::Punch))).covers(&["PeerConnectRequested"]),
        Case::must("traversal.connect.reverse", "7.6", "ConnectPeer REVERSE: the friend gets PeerConnectRequested; both dial_in_ms are 0.", |c| Box::pin(connect_ok(c, ConnectMode::Reverse))).covers(&["PeerConnectRequested"]),
        Case::must("traversal.connect.rate-limited", "7.6", "More than CONNECT_PEER_BURST ConnectPeer for one friend at once is RATE_LIMITED with retry_after_ms.", |c| Box::pin(connect_rate_limited(c))).covers(&["ERROR_CODE_RATE_LIMITED"]),
        Case::must("relay.open-on-client-server", "4.6", "RelayOpen on a client-server connection is INVALID_REQUEST, logged in or not.", |c| Box::pin(relay_on_client_server(c))).covers(&["ERROR_CODE_INVALID_REQUEST"]),
        Case::must("relay.join", "7.7", "An opened relay invites the friend (RelayInvite); the friend's RelayOpen with the token gets RelayOpenOk, and so does the opener.", |c| Box::pin(relay_join(c))).covers(&["RelayInvite"]),
        Case::must("relay.opaque", "7.7", "After RelayOpenOk every byte either end sends reaches the other end unchanged, in order, both ways.", |c| Box::pin(relay_opaque(c))).covers(&["RelayInvite"]),
        Case::must("relay.first-frame", "7.7", "A relay connection whose first frame is not RelayOpen is closed with PROTOCOL_ERROR.", |c| Box::pin(relay_first_frame(c))).covers(&["CLOSE_REASON_PROTOCOL_ERROR"]),
        Case::must("relay.token-length", "7.7", "A RelayOpen token that is neither empty nor 16 bytes is INVALID_REQUEST, then Close NORMAL.", |c| Box::pin(relay_token_length(c))).covers(&["ERROR_CODE_INVALID_REQUEST", "CLOSE_REASON_NORMAL"]),
        Case::must("relay.wrong-key", "7.7", "RelayOpen naming an account whose key the handshake did not prove is BAD_CREDENTIALS.", |c| Box::pin(relay_wrong_key(c))).covers(&["ERROR_CODE_BAD_CREDENTIALS"]),
        Case::must("relay.no-session", "7.7", "RelayOpen for an account without a logged-in session is BAD_CREDENTIALS.", |c| Box::pin(relay_no_session(c))).covers(&["ERROR_CODE_BAD_CREDENTIALS"]),
        Case::must("relay.not-friends", "7.7", "RelayOpen to a user who is not a friend is NOT_FRIENDS: relays run only between friends.", |c| Box::pin(relay_not_friends(c))).covers(&["ERROR_CODE_NOT_FRIENDS"]),
        Case::must("relay.peer-offline", "7.7", "RelayOpen to an offline friend is PEER_OFFLINE.", |c| Box::pin(relay_offline(c))).covers(&["ERROR_CODE_PEER_OFFLINE"]),
        Case::must("relay.bad-token", "7.7", "A token that names no relay waiting for this user (unknown, or another user's invitation) is RELAY_EXPIRED.", |c| Box::pin(relay_bad_token(c))).covers(&["ERROR_CODE_RELAY_EXPIRED"]),
        Case::must("relay.links-per-user", "7.7", "A RelayOpen beyond RELAY_LINKS_PER_USER relay connections of one account is LIMIT_EXCEEDED.", |c| Box::pin(relay_links_per_user(c))).covers(&["ERROR_CODE_LIMIT_EXCEEDED"]),
        Case::must("relay.join-timeout", "7.7", "An opener whose friend does not join within RELAY_JOIN_TIMEOUT gets RELAY_EXPIRED.", |c| Box::pin(relay_join_timeout(c))).covers(&["ERROR_CODE_RELAY_EXPIRED"]).timeout_secs(60),
        Case::must("relay.logout-closes", "7.7", "When the opener logs out, the server closes both ends of its relayed link.", |c| Box::pin(relay_logout_closes(c))),
    ]
}

// ---- helpers ----

fn announcement(observed_is_listener: bool) -> wire::PeerAnnouncement {
    wire::PeerAnnouncement {
        host_candidates: HOSTS.iter().map(|h| req::ep(h, HOST_PORT)).collect(),
        observed_is_listener,
    }
}

fn candidate(addr: SocketAddr, kind: CandidateKind) -> wire::PeerCandidate {
    wire::PeerCandidate {
        endpoint: Some(req::ep(&addr.ip().to_string(), u32::from(addr.port()))),
        kind: kind as i32,
    }
}

/// What the server must list for a client at `local` that announced [`announcement`].
fn expected_candidates(local: SocketAddr, observed_is_listener: bool) -> Vec<wire::PeerCandidate> {
    let mut v: Vec<_> = HOSTS
        .iter()
        .map(|h| wire::PeerCandidate {
            endpoint: Some(req::ep(h, HOST_PORT)),
            kind: CandidateKind::Host as i32,
        })
        .collect();
    if observed_is_listener {
        v.push(candidate(local, CandidateKind::Observed));
    }
    v
}

fn show(c: &[wire::PeerCandidate]) -> String {
    c.iter()
        .map(|c| {
            let e = c.endpoint.clone().unwrap_or_default();
            format!("{}:{}({})", e.host, e.port, c.kind)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn endpoint_of(addr: SocketAddr) -> wire::PeerEndpoint {
    req::ep(&addr.ip().to_string(), u32::from(addr.port()))
}

/// KeyLogin of `u` on a fresh connection with `announcement` (replaces any live session).
async fn key_login_announcing(
    ctx: &Ctx,
    u: &User,
    a: Option<wire::PeerAnnouncement>,
) -> Result<(Client, wire::LoginOk), Verdict> {
    let mut c = ctx.connect(u.key).await?;
    let r = c
        .request(Body::KeyLogin(wire::KeyLogin {
            userid: u.userid.clone(),
            peer_endpoint: None,
            announcement: a,
        }))
        .await?;
    let ok = ok!(r, Login, format!("KeyLogin {}", u.userid));
    Ok((c, ok))
}

fn connect_peer(userid: &str, mode: ConnectMode) -> Body {
    Body::ConnectPeer(wire::ConnectPeer {
        userid: userid.into(),
        mode: mode as i32,
    })
}

fn relay_open(userid: &str, peer: &str, token: &[u8]) -> Body {
    Body::RelayOpen(wire::RelayOpen {
        userid: userid.into(),
        peer_userid: peer.into(),
        token: token.to_vec().into(),
    })
}

/// A relay connection (raw snow client, CHANNEL_KIND_RELAY) proving test key `key`.
async fn relay_conn(ctx: &Ctx, key: usize) -> Result<RawSession, Verdict> {
    let conn = RawConn::connect(&ctx.cfg, ctx.source())
        .await
        .map_err(Verdict::Fail)?;
    let (s, _) = conn
        .handshake(&HandshakeOptions::relay(key))
        .await
        .map_err(|e| Verdict::Fail(format!("relay handshake: {e}")))?;
    Ok(s)
}

/// One RelayOpen on a fresh relay connection and its answer.
async fn relay_answer(
    ctx: &Ctx,
    key: usize,
    userid: &str,
    peer: &str,
    token: &[u8],
) -> Result<(RawSession, response::Result), Verdict> {
    let mut s = relay_conn(ctx, key).await?;
    let r = s
        .request(1, relay_open(userid, peer, token))
        .await
        .map_err(Verdict::Fail)?;
    Ok((s, r))
}

fn invite_from(u: &str) -> impl Fn(&push::Body) -> bool + '_ {
    move |p| matches!(p, push::Body::RelayInvite(x) if x.userid == u)
}

/// `a` opens a relay to `b` (RelayOpen with an empty token, SPEC.md §7.7) and waits no answer.
async fn open_relay(ctx: &Ctx, a: &User, b: &User) -> Result<RawSession, Verdict> {
    let mut r = relay_conn(ctx, a.key).await?;
    r.send_msg(&wire::ClientMessage {
        request_id: 1,
        body: Some(relay_open(&a.userid, &b.userid, &[])),
    })
    .await
    .map_err(Verdict::Fail)?;
    Ok(r)
}

/// The RelayInvite from `from` that `c` receives.
async fn expect_invite(c: &mut Client, from: &str) -> Result<wire::RelayInvite, Verdict> {
    let (_, p) = c
        .expect_push("RelayInvite", PUSH_TIMEOUT, invite_from(from))
        .await?;
    match p {
        push::Body::RelayInvite(inv) => Ok(inv),
        _ => fail!("not a RelayInvite"),
    }
}

/// `a` opens a relay to `b`, `b` joins: both relayed streams (opener's first).
async fn relayed_link(
    ctx: &Ctx,
    a: &User,
    b: &User,
    bc: &mut Client,
) -> Result<((TcpStream, BytesMut), (TcpStream, BytesMut)), Verdict> {
    let mut ra = open_relay(ctx, a, b).await?;
    let inv = expect_invite(bc, &a.userid).await?;
    check!(
        inv.token.len() == 16,
        "RelayInvite.token is {} bytes, not 16",
        inv.token.len()
    );
    let (rb, r) = relay_answer(ctx, b.key, &b.userid, &a.userid, &inv.token).await?;
    ok!(r, RelayOpen, "the joiner's RelayOpen");
    let r = ra
        .wait_response(1, PUSH_TIMEOUT)
        .await
        .map_err(Verdict::Fail)?;
    ok!(
        r,
        RelayOpen,
        "the opener's RelayOpen once the friend joined"
    );
    Ok((
        ra.into_relayed().map_err(Verdict::Fail)?,
        rb.into_relayed().map_err(Verdict::Fail)?,
    ))
}

/// Reads exactly `n` relayed bytes (the leftover first).
async fn read_exact(s: &mut (TcpStream, BytesMut), n: usize) -> Result<Vec<u8>, Verdict> {
    let mut out = Vec::with_capacity(n);
    let take = s.1.len().min(n);
    out.extend_from_slice(&s.1.split_to(take));
    let mut buf = vec![0u8; 16 * 1024];
    while out.len() < n {
        match tokio::time::timeout(PUSH_TIMEOUT, s.0.read(&mut buf)).await {
            Err(_) => fail!("relayed bytes stopped after {} of {n}", out.len()),
            Ok(Ok(0)) => fail!("relayed link ended after {} of {n} bytes", out.len()),
            Ok(Ok(k)) => out.extend_from_slice(&buf[..k]),
            Ok(Err(e)) => fail!("relayed link failed after {} of {n} bytes: {e}", out.len()),
        }
    }
    if out.len() > n {
        fail!("{} bytes arrived where {n} were sent", out.len());
    }
    Ok(out)
}

/// Waits until the relayed stream ends (EOF or reset).
async fn ends(s: &mut TcpStream, within: Duration) -> Result<(), Verdict> {
    let mut buf = [0u8; 4096];
    let r = tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    check!(
        r.is_ok(),
        "the relayed link was still open after {within:?}"
    );
    Ok(())
}

// ---- §7.5 ----

async fn observed_login(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let (c, ok) = ctx.login(&u).await?;
    let want = endpoint_of(c.local_addr);
    check!(
        ok.observed_endpoint.as_ref() == Some(&want),
        "LoginOk.observed_endpoint is {:?}, the client connects from {}",
        ok.observed_endpoint,
        c.local_addr
    );
    Ok(format!("observed {}", c.local_addr))
}

async fn observed_set_endpoint(ctx: Ctx) -> CaseResult {
    let (_u, mut c) = ctx.online_user().await?;
    let r = c
        .request(req::set_endpoint(Some(req::ep("", 4000))))
        .await?;
    let ok = ok!(r, SetPeerEndpoint, "SetPeerEndpoint");
    let want = endpoint_of(c.local_addr);
    check!(
        ok.observed_endpoint.as_ref() == Some(&want),
        "SetPeerEndpointOk.observed_endpoint is {:?}, the client connects from {}",
        ok.observed_endpoint,
        c.local_addr
    );
    Ok(format!("observed {}", c.local_addr))
}

async fn candidates_online(ctx: Ctx) -> CaseResult {
    let (a, _ac, _b, mut bc) = ctx.friends().await?;
    let (ac2, _) = key_login_announcing(&ctx, &a, Some(announcement(true))).await?;
    let want = expected_candidates(ac2.local_addr, true);
    let (_, p) = bc
        .expect_push(
            "FriendOnline with candidates",
            PUSH_TIMEOUT,
            |p| matches!(p, push::Body::FriendOnline(o) if o.userid == a.userid && !o.candidates.is_empty()),
        )
        .await?;
    let push::Body::FriendOnline(o) = p else {
        fail!("not FriendOnline");
    };
    check!(
        o.candidates == want,
        "FriendOnline.candidates [{}], expected [{}]",
        show(&o.candidates),
        show(&want)
    );
    Ok(format!("[{}]", show(&o.candidates)))
}

async fn candidates_snapshot(ctx: Ctx) -> CaseResult {
    let (a, _ac, b, _bc) = ctx.friends().await?;
    let (ac2, _) = key_login_announcing(&ctx, &a, Some(announcement(true))).await?;
    let want = expected_candidates(ac2.local_addr, true);
    let (_bc2, snap) = key_login_announcing(&ctx, &b, None).await?;
    let Some(f) = snap.friends.iter().find(|f| f.userid == a.userid) else {
        fail!("LoginOk.friends lacks {}", a.userid);
    };
    check!(
        f.candidates == want,
        "LoginOk friend candidates [{}], expected [{}]",
        show(&f.candidates),
        show(&want)
    );
    Ok(format!("[{}]", show(&f.candidates)))
}

async fn candidates_not_listener(ctx: Ctx) -> CaseResult {
    let (a, mut ac, _b, mut bc) = ctx.friends().await?;
    let r = ac
        .request(Body::SetPeerEndpoint(wire::SetPeerEndpoint {
            peer_endpoint: Some(req::ep("", 4000)),
            announcement: Some(announcement(false)),
        }))
        .await?;
    ok!(r, SetPeerEndpoint, "SetPeerEndpoint");
    let want = expected_candidates(ac.local_addr, false);
    let (_, p) = bc
        .expect_push("FriendOnline", PUSH_TIMEOUT, |p| {
            matches!(p, push::Body::FriendOnline(o) if o.userid == a.userid && !o.candidates.is_empty())
        })
        .await?;
    let push::Body::FriendOnline(o) = p else {
        fail!("not FriendOnline");
    };
    check!(
        o.candidates == want,
        "FriendOnline.candidates [{}], expected only the hosts [{}]",
        show(&o.candidates),
        show(&want)
    );
    Ok("hosts only".into())
}

async fn announcement_invalid(ctx: Ctx) -> CaseResult {
    let u = ctx.new_user().await?;
    let mut c = ctx.connect(u.key).await?;
    let bad: Vec<(&str, Vec<wire::PeerEndpoint>)> = vec![
        ("unspecified", vec![req::ep("0.0.0.0", 4000)]),
        ("multicast", vec![req::ep("224.0.0.1", 4000)]),
        ("empty host", vec![req::ep("", 4000)]),
        ("port 0", vec![req::ep("198.51.100.7", 0)]),
        (
            "nine hosts",
            (1..=9)
                .map(|i| req::ep(&format!("198.51.100.{i}"), 4000))
                .collect(),
        ),
    ];
    for (what, hosts) in bad {
        let r = c
            .request(Body::Login(wire::Login {
                userid: u.userid.clone(),
                password: u.password.clone(),
                peer_endpoint: None,
                announcement: Some(wire::PeerAnnouncement {
                    host_candidates: hosts,
                    observed_is_listener: true,
                }),
            }))
            .await?;
        expect_code(
            &r,
            ErrorCode::InvalidRequest,
            &format!("Login announcing {what}"),
        )?;
    }
    Ok("all refused".into())
}

// ---- §7.6 ----

async fn connect_not_logged_in(ctx: Ctx) -> CaseResult {
    let mut c = ctx.connect(crate::ident::random_key()).await?;
    let r = c
        .request(connect_peer("someone", ConnectMode::Punch))
        .await?;
    expect_code(&r, ErrorCode::NotLoggedIn, "ConnectPeer before login")?;
    Ok("NOT_LOGGED_IN".into())
}

async fn connect_unspecified(ctx: Ctx) -> CaseResult {
    let (_a, mut ac, b, _bc) = ctx.friends().await?;
    let r = ac
        .request(Body::ConnectPeer(wire::ConnectPeer {
            userid: b.userid.clone(),
            mode: ConnectMode::Unspecified as i32,
        }))
        .await?;
    expect_code(
        &r,
        ErrorCode::InvalidRequest,
        "ConnectPeer mode UNSPECIFIED",
    )?;
    Ok("INVALID_REQUEST".into())
}

async fn connect_not_friends(ctx: Ctx) -> CaseResult {
    let (_a, mut ac) = ctx.online_user().await?;
    let (stranger, _sc) = ctx.online_user().await?;
    let r = ac
        .request(connect_peer(&stranger.userid, ConnectMode::Punch))
        .await?;
    expect_code(&r, ErrorCode::NotFriends, "ConnectPeer to a non-friend")?;
    let r = ac
        .request(connect_peer(&crate::ident::userid(), ConnectMode::Reverse))
        .await?;
    expect_code(&r, ErrorCode::NotFriends, "ConnectPeer to an unknown user")?;
    Ok("NOT_FRIENDS".into())
}

async fn connect_offline(ctx: Ctx) -> CaseResult {
    let (_a, mut ac, b, mut bc) = ctx.friends().await?;
    let r = bc.request(req::logout()).await?;
    ok!(r, Logout, "Logout");
    let r = ac
        .request(connect_peer(&b.userid, ConnectMode::Punch))
        .await?;
    expect_code(
        &r,
        ErrorCode::PeerOffline,
        "ConnectPeer to a logged-out friend",
    )?;
    Ok("PEER_OFFLINE".into())
}

async fn connect_ok(ctx: Ctx, mode: ConnectMode) -> CaseResult {
    let a = ctx.new_user().await?;
    let b = ctx.new_user().await?;
    let (mut ac, _) = key_login_announcing(&ctx, &a, Some(announcement(true))).await?;
    let (mut bc, _) = key_login_announcing(&ctx, &b, Some(announcement(false))).await?;
    ctx.befriend(&a, &mut ac, &b, &mut bc).await?;
    let r = ac.request(connect_peer(&b.userid, mode)).await?;
    let ok = ok!(r, ConnectPeer, "ConnectPeer");
    check!(
        ok.attempt_id.len() == 16,
        "ConnectPeerOk.attempt_id is {} bytes, not 16",
        ok.attempt_id.len()
    );
    let b_want = expected_candidates(bc.local_addr, false);
    check!(
        ok.candidates == b_want,
        "ConnectPeerOk.candidates [{}], expected the friend's [{}]",
        show(&ok.candidates),
        show(&b_want)
    );
    let (_, p) = bc
        .expect_push(
            "PeerConnectRequested",
            PUSH_TIMEOUT,
            |p| matches!(p, push::Body::PeerConnectRequested(x) if x.userid == a.userid),
        )
        .await?;
    let push::Body::PeerConnectRequested(x) = p else {
        fail!("not PeerConnectRequested");
    };
    check!(
        x.attempt_id == ok.attempt_id,
        "the friend's attempt_id differs from the requester's"
    );
    check!(
        x.mode == mode as i32,
        "push mode {} instead of {}",
        x.mode,
        mode as i32
    );
    let a_want = expected_candidates(ac.local_addr, true);
    check!(
        x.candidates == a_want,
        "PeerConnectRequested.candidates [{}], expected the requester's [{}]",
        show(&x.candidates),
        show(&a_want)
    );
    let max = PUNCH_DELAY_MAX.as_millis() as u32;
    check!(
        ok.dial_in_ms <= max && x.dial_in_ms <= max,
        "dial_in_ms {} / {} above PUNCH_DELAY_MAX",
        ok.dial_in_ms,
        x.dial_in_ms
    );
    if mode == ConnectMode::Reverse {
        check!(
            ok.dial_in_ms == 0 && x.dial_in_ms == 0,
            "REVERSE with dial_in_ms {} / {} (must be 0)",
            ok.dial_in_ms,
            x.dial_in_ms
        );
    }
    Ok(format!(
        "same attempt id; dial_in_ms {} / {}",
        ok.dial_in_ms, x.dial_in_ms
    ))
}

async fn connect_rate_limited(ctx: Ctx) -> CaseResult {
    let (_a, mut ac, b, _bc) = ctx.friends().await?;
    for i in 0..CONNECT_PEER_BURST {
        let r = ac
            .request(connect_peer(&b.userid, ConnectMode::Punch))
            .await?;
        if !matches!(r, response::Result::ConnectPeer(_)) {
            fail!(
                "ConnectPeer {} of the burst of {CONNECT_PEER_BURST}: {}",
                i + 1,
                crate::client::describe(&r)
            );
        }
    }
    let r = ac
        .request(connect_peer(&b.userid, ConnectMode::Punch))
        .await?;
    let e = expect_code(
        &r,
        ErrorCode::RateLimited,
        &format!("ConnectPeer number {}", CONNECT_PEER_BURST + 1),
    )?;
    Ok(format!("retry_after_ms {}", e.retry_after_ms))
}

// ---- §7.7 ----

async fn relay_on_client_server(ctx: Ctx) -> CaseResult {
    let (a, mut ac, b, _bc) = ctx.friends().await?;
    let r = ac.request(relay_open(&a.userid, &b.userid, &[])).await?;
    expect_code(&r, ErrorCode::InvalidRequest, "RelayOpen while logged in")?;
    let mut c = ctx.connect(a.key).await?;
    let r = c.request(relay_open(&a.userid, &b.userid, &[])).await?;
    expect_code(&r, ErrorCode::InvalidRequest, "RelayOpen before login")?;
    Ok("INVALID_REQUEST".into())
}

async fn relay_join(ctx: Ctx) -> CaseResult {
    let (a, _ac, b, mut bc) = ctx.friends().await?;
    let ((_sa, la), (_sb, lb)) = relayed_link(&ctx, &a, &b, &mut bc).await?;
    check!(
        la.is_empty() && lb.is_empty(),
        "bytes arrived after RelayOpenOk though neither end had sent any"
    );
    Ok("both ends got RelayOpenOk".into())
}

async fn relay_opaque(ctx: Ctx) -> CaseResult {
    let (a, _ac, b, mut bc) = ctx.friends().await?;
    let (mut sa, mut sb) = relayed_link(&ctx, &a, &b, &mut bc).await?;
    let mut there = vec![0u8; 200_000];
    let mut back = vec![0u8; 150_000];
    {
        let mut rng = rand::thread_rng();
        rng.fill_bytes(&mut there);
        rng.fill_bytes(&mut back);
    }
    // Both directions at once: a relay that pumps one way at a time would stall.
    let (wa, wb) = (there.clone(), back.clone());
    let (ra, rb) = tokio::join!(
        async {
            sa.0.write_all(&wa)
                .await
                .map_err(|e| Verdict::Fail(format!("opener write: {e}")))?;
            read_exact(&mut sa, wb.len()).await
        },
        async {
            sb.0.write_all(&wb)
                .await
                .map_err(|e| Verdict::Fail(format!("joiner write: {e}")))?;
            read_exact(&mut sb, wa.len()).await
        }
    );
    check!(
        rb? == there,
        "the joiner received different bytes than the opener sent"
    );
    check!(
        ra? == back,
        "the opener received different bytes than the joiner sent"
    );
    Ok(format!("{} + {} bytes unchanged", there.len(), back.len()))
}

async fn relay_first_frame(ctx: Ctx) -> CaseResult {
    let mut s = relay_conn(&ctx, crate::ident::random_key()).await?;
    s.send_msg(&wire::ClientMessage {
        request_id: 1,
        body: Some(req::find("someone")),
    })
    .await
    .map_err(Verdict::Fail)?;
    super::expect_close_reason(&mut s, PUSH_TIMEOUT, wire::CloseReason::ProtocolError, true).await
}

async fn relay_token_length(ctx: Ctx) -> CaseResult {
    let (a, _ac, b, _bc) = ctx.friends().await?;
    let (mut s, r) = relay_answer(&ctx, a.key, &a.userid, &b.userid, &[7; 15]).await?;
    expect_code(
        &r,
        ErrorCode::InvalidRequest,
        "RelayOpen with a 15-byte token",
    )?;
    super::expect_close_reason(&mut s, PUSH_TIMEOUT, wire::CloseReason::Normal, true).await
}

async fn relay_wrong_key(ctx: Ctx) -> CaseResult {
    let (a, _ac, b, _bc) = ctx.friends().await?;
    let other = crate::ident::other_key(a.key);
    let (_s, r) = relay_answer(&ctx, other, &a.userid, &b.userid, &[]).await?;
    expect_code(&r, ErrorCode::BadCredentials, "RelayOpen with another key")?;
    Ok("BAD_CREDENTIALS".into())
}

async fn relay_no_session(ctx: Ctx) -> CaseResult {
    let (a, mut ac, b, _bc) = ctx.friends().await?;
    let r = ac.request(req::logout()).await?;
    ok!(r, Logout, "Logout");
    let (_s, r) = relay_answer(&ctx, a.key, &a.userid, &b.userid, &[]).await?;
    expect_code(&r, ErrorCode::BadCredentials, "RelayOpen without a session")?;
    Ok("BAD_CREDENTIALS".into())
}

async fn relay_not_friends(ctx: Ctx) -> CaseResult {
    let (a, _ac) = ctx.online_user().await?;
    let (stranger, _sc) = ctx.online_user().await?;
    let (_s, r) = relay_answer(&ctx, a.key, &a.userid, &stranger.userid, &[]).await?;
    expect_code(&r, ErrorCode::NotFriends, "RelayOpen to a non-friend")?;
    Ok("NOT_FRIENDS".into())
}

async fn relay_offline(ctx: Ctx) -> CaseResult {
    let (a, _ac, b, mut bc) = ctx.friends().await?;
    let r = bc.request(req::logout()).await?;
    ok!(r, Logout, "Logout");
    let (_s, r) = relay_answer(&ctx, a.key, &a.userid, &b.userid, &[]).await?;
    expect_code(
        &r,
        ErrorCode::PeerOffline,
        "RelayOpen to a logged-out friend",
    )?;
    Ok("PEER_OFFLINE".into())
}

async fn relay_bad_token(ctx: Ctx) -> CaseResult {
    let (a, mut ac, b, mut bc) = ctx.friends().await?;
    let (c, mut cc) = ctx.online_user().await?;
    ctx.befriend(&c, &mut cc, &a, &mut ac).await?;
    let (_s, r) = relay_answer(&ctx, b.key, &b.userid, &a.userid, &[0x5a; 16]).await?;
    expect_code(
        &r,
        ErrorCode::RelayExpired,
        "RelayOpen with an unknown token",
    )?;
    // A opens to B; C (also A's friend) presents B's token.
    let _ra = open_relay(&ctx, &a, &b).await?;
    let inv = expect_invite(&mut bc, &a.userid).await?;
    let (_s, r) = relay_answer(&ctx, c.key, &c.userid, &a.userid, &inv.token).await?;
    expect_code(
        &r,
        ErrorCode::RelayExpired,
        "RelayOpen with another user's token",
    )?;
    Ok("RELAY_EXPIRED".into())
}

async fn relay_links_per_user(ctx: Ctx) -> CaseResult {
    let (a, _ac, b, mut bc) = ctx.friends().await?;
    let mut held = Vec::new();
    for _ in 0..RELAY_LINKS_PER_USER {
        held.push(open_relay(&ctx, &a, &b).await?);
    }
    // Each waiting relay has been admitted once its invitation is out.
    for i in 0..RELAY_LINKS_PER_USER {
        bc.expect_push(
            &format!("RelayInvite {}", i + 1),
            PUSH_TIMEOUT,
            invite_from(&a.userid),
        )
        .await?;
    }
    let (_s, r) = relay_answer(&ctx, a.key, &a.userid, &b.userid, &[]).await?;
    expect_code(
        &r,
        ErrorCode::LimitExceeded,
        &format!(
            "relay connection {} of one account",
            RELAY_LINKS_PER_USER + 1
        ),
    )?;
    drop(held);
    Ok("LIMIT_EXCEEDED".into())
}

async fn relay_join_timeout(ctx: Ctx) -> CaseResult {
    let (a, _ac, b, mut bc) = ctx.friends().await?;
    let mut ra = open_relay(&ctx, &a, &b).await?;
    expect_invite(&mut bc, &a.userid).await?;
    let r = ra
        .wait_response(1, RELAY_JOIN_TIMEOUT + GRACE)
        .await
        .map_err(Verdict::Fail)?;
    expect_code(
        &r,
        ErrorCode::RelayExpired,
        "the opener whose friend never joined",
    )?;
    Ok("RELAY_EXPIRED".into())
}

async fn relay_logout_closes(ctx: Ctx) -> CaseResult {
    let (a, mut ac, b, mut bc) = ctx.friends().await?;
    let (mut sa, mut sb) = relayed_link(&ctx, &a, &b, &mut bc).await?;
    let r = ac.request(req::logout()).await?;
    ok!(r, Logout, "Logout");
    ends(&mut sa.0, PUSH_TIMEOUT).await?;
    ends(&mut sb.0, PUSH_TIMEOUT).await?;
    Ok("both relayed ends closed".into())
}
