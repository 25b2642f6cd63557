//! SPEC.md §6.6 (presence), §6.8 (SetPeerEndpoint), §5.3.1 (key replacement), §6.10 (session
//! replacement) and the presence privacy rule.

use std::time::Duration;

use peerchat_proto::wire::{self, push, ErrorCode};

use super::GRACE;
use crate::case::{Case, CaseResult, Verdict};
use crate::client::{describe_push, is, req};
use crate::ctx::{expect_code, Ctx, User, PUSH_TIMEOUT, QUIET_WINDOW};
use crate::ident;
use crate::{check, fail, ok};

/// OFFLINE_NOTIFY (SPEC.md §10): FriendOffline within this of the server noticing the end.
const OFFLINE_NOTIFY: Duration = Duration::from_secs(1);

/// The presence cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case::must("presence.online.on-login", "6.6", "When a friend logs in, online friends get FriendOnline with its key and no endpoint.", |c| Box::pin(online_on_login(c, false))).covers(&["FriendOnline"]),
        Case::must("presence.online.with-endpoint", "6.6", "FriendOnline carries the effective endpoint announced in Login.", |c| Box::pin(online_on_login(c, true))).covers(&["FriendOnline"]),
        Case::must("presence.online.keylogin", "6.6", "A KeyLogin also sends FriendOnline to online friends.", |c| Box::pin(online_keylogin(c))).covers(&["FriendOnline"]),
        Case::must("presence.offline.on-logout", "6.6", "Logout sends FriendOffline to online friends.", |c| Box::pin(offline_on_logout(c))).covers(&["FriendOffline"]),
        Case::must("presence.offline.on-disconnect", "6.6", "A dropped connection (no Logout) sends FriendOffline within OFFLINE_NOTIFY (+ grace).", |c| Box::pin(offline_on_disconnect(c))).covers(&["FriendOffline"]),
        Case::must("presence.offline.on-client-close", "3.7", "A client's Close while logged in ends the session like a drop: friends get FriendOffline.", |c| Box::pin(offline_on_close(c))).covers(&["FriendOffline"]),
        Case::must("presence.offline.on-malformed-frame", "6.6", "A session closed by the server for MALFORMED_FRAME ends: friends get FriendOffline.", |c| Box::pin(offline_on_malformed(c))).covers(&["FriendOffline", "CLOSE_REASON_MALFORMED_FRAME"]),
        Case::must("presence.offline.on-truncated-frame", "3.5", "A session whose connection ends inside a frame ends: friends get FriendOffline.", |c| Box::pin(offline_on_truncated(c))).covers(&["FriendOffline"]),
        Case::must("presence.snapshot.friend-presence", "5.3.1", "LoginOk.friends shows an online friend with endpoint and key, an offline one without endpoint.", |c| Box::pin(snapshot_presence(c))),
        Case::must("presence.set-endpoint.ok", "6.8", "SetPeerEndpoint echoes the effective endpoint; online friends get FriendOnline with it.", |c| Box::pin(set_endpoint_ok(c))).covers(&["FriendOnline"]),
        Case::must("presence.set-endpoint.unchanged", "6.6", "Setting the same endpoint again still sends FriendOnline.", |c| Box::pin(set_endpoint_same(c))).covers(&["FriendOnline"]),
        Case::must("presence.set-endpoint.empty-host", "6.8", "An empty host becomes the connection's source address.", |c| Box::pin(set_endpoint_empty_host(c))),
        Case::must("presence.set-endpoint.absent", "6.8", "SetPeerEndpoint without an endpoint is INVALID_REQUEST.", |c| Box::pin(set_endpoint_invalid(c, 0))).covers(&["ERROR_CODE_INVALID_REQUEST"]),
        Case::must("presence.set-endpoint.port-zero", "6.8", "SetPeerEndpoint with port 0 is INVALID_REQUEST.", |c| Box::pin(set_endpoint_invalid(c, 1))).covers(&["ERROR_CODE_INVALID_REQUEST"]),
        Case::must("presence.set-endpoint.hostname", "6.8", "SetPeerEndpoint with a host name is INVALID_REQUEST.", |c| Box::pin(set_endpoint_invalid(c, 2))).covers(&["ERROR_CODE_INVALID_REQUEST"]),
        Case::must("presence.privacy.non-friend", "6.6", "A non-friend never receives presence (login, endpoint, logout) of a user.", |c| Box::pin(privacy_non_friend(c))),
        Case::must("presence.privacy.pending-request", "6.2", "A pending friend request reveals no presence in either direction.", |c| Box::pin(privacy_pending(c))),
        Case::must("presence.privacy.after-unfriend", "6.5", "After Unfriend the former friend receives no presence.", |c| Box::pin(privacy_after_unfriend(c))),
        Case::must("presence.privacy.no-self-push", "6.6", "A user never gets FriendOnline/FriendOffline about itself.", |c| Box::pin(no_self_push(c))),
        Case::must("presence.key-changed.online-friend", "5.3.1", "A password login from a new key sends FriendKeyChanged and FriendOnline with the new key to online friends.", |c| Box::pin(key_changed_online(c))).covers(&["FriendKeyChanged", "FriendOnline"]),
        Case::must("presence.key-changed.offline-friend", "5.3.1", "An offline friend sees the new key in its next LoginOk.", |c| Box::pin(key_changed_offline(c))),
        Case::must("presence.key-changed.same-key-no-push", "5.3.1", "A login with the registered key sends no FriendKeyChanged.", |c| Box::pin(key_same_no_push(c))),
        Case::must("presence.session-replaced.new-key", "5.3.1", "A password login from a new key while the old session is live: old connection gets SESSION_REPLACED, friends get FriendKeyChanged then FriendOnline, no FriendOffline.", |c| Box::pin(replaced_new_key(c))).covers(&["CLOSE_REASON_SESSION_REPLACED", "FriendKeyChanged"]),
        Case::must("presence.logout-forgets-endpoint", "5.6", "After Logout the endpoint is forgotten: a new login without one sends FriendOnline without endpoint.", |c| Box::pin(logout_forgets_endpoint(c))).covers(&["FriendOnline"]),
        Case::must("presence.session-replaced.no-offline", "6.10", "When a session is replaced friends get FriendOnline for the new one and never FriendOffline.", |c| Box::pin(replaced_no_offline(c))).covers(&["CLOSE_REASON_SESSION_REPLACED", "FriendOnline"]),
    ]
}

fn key_der(k: usize) -> bytes::Bytes {
    ident::public(k).to_der()
}

async fn online_on_login(ctx: Ctx, with_endpoint: bool) -> CaseResult {
    let (a, ac, _f, mut fc) = ctx.friends().await?;
    drop(ac);
    fc.expect_push(
        "FriendOffline after A dropped",
        OFFLINE_NOTIFY + GRACE,
        is::offline(&a.userid),
    )
    .await?;
    let ep = with_endpoint.then(|| req::ep("192.0.2.44", 6000));
    let (_ac, _) = ctx.login_with(&a, a.key, ep.clone()).await?;
    let (_, p) = fc
        .expect_push("FriendOnline", PUSH_TIMEOUT, is::online(&a.userid))
        .await?;
    let push::Body::FriendOnline(o) = p else {
        fail!("wrong push")
    };
    check!(
        o.identity_key == key_der(a.key),
        "FriendOnline carries a key other than A's"
    );
    check!(
        o.peer_endpoint == ep,
        "FriendOnline endpoint {:?}, expected {ep:?}",
        o.peer_endpoint
    );
    Ok(format!("FriendOnline with endpoint {:?}", o.peer_endpoint))
}

async fn online_keylogin(ctx: Ctx) -> CaseResult {
    let (a, ac, _f, mut fc) = ctx.friends().await?;
    drop(ac);
    fc.expect_push(
        "FriendOffline after A dropped",
        OFFLINE_NOTIFY + GRACE,
        is::offline(&a.userid),
    )
    .await?;
    let mut c = ctx.connect(a.key).await?;
    ok!(
        c.request(req::key_login(&a.userid, None)).await?,
        Login,
        "KeyLogin"
    );
    fc.expect_push("FriendOnline", PUSH_TIMEOUT, is::online(&a.userid))
        .await?;
    Ok("FriendOnline after KeyLogin".into())
}

async fn offline_on_logout(ctx: Ctx) -> CaseResult {
    let (a, mut ac, _f, mut fc) = ctx.friends().await?;
    ok!(ac.request(req::logout()).await?, Logout, "Logout");
    fc.expect_push("FriendOffline", PUSH_TIMEOUT, is::offline(&a.userid))
        .await?;
    Ok("FriendOffline".into())
}

async fn offline_on_disconnect(ctx: Ctx) -> CaseResult {
    let (a, ac, _f, mut fc) = ctx.friends().await?;
    drop(ac);
    let started = tokio::time::Instant::now();
    fc.expect_push(
        "FriendOffline",
        OFFLINE_NOTIFY + GRACE,
        is::offline(&a.userid),
    )
    .await?;
    Ok(format!(
        "FriendOffline {:?} after the drop",
        started.elapsed()
    ))
}

async fn offline_on_close(ctx: Ctx) -> CaseResult {
    let (a, mut ac, _f, mut fc) = ctx.friends().await?;
    ac.send(&wire::ClientMessage {
        request_id: 0,
        body: Some(wire::client_message::Body::Close(wire::Close {
            reason: wire::CloseReason::Normal as i32,
            message: "bye".into(),
        })),
    })
    .await?;
    fc.expect_push(
        "FriendOffline",
        OFFLINE_NOTIFY + GRACE,
        is::offline(&a.userid),
    )
    .await?;
    Ok("FriendOffline".into())
}

/// A logged-in raw session for a new user who is friends with an online user.
async fn raw_friend(
    ctx: &Ctx,
) -> Result<(User, crate::raw::RawSession, crate::client::Client), Verdict> {
    let (a, ac, f, fc) = ctx.friends().await?;
    drop(ac);
    let mut fc = fc;
    fc.expect_push(
        "FriendOffline after set-up",
        OFFLINE_NOTIFY + GRACE,
        is::offline(&a.userid),
    )
    .await?;
    let conn = crate::raw::RawConn::connect(&ctx.cfg, ctx.source())
        .await
        .map_err(Verdict::Fail)?;
    let (mut s, _) = conn
        .handshake(&crate::raw::HandshakeOptions::valid(a.key))
        .await
        .map_err(Verdict::Fail)?;
    let r = s
        .request(1, req::login(&a.userid, &a.password, None))
        .await
        .map_err(Verdict::Fail)?;
    ok!(r, Login, "raw Login");
    fc.expect_push("FriendOnline", PUSH_TIMEOUT, is::online(&a.userid))
        .await?;
    let _ = f;
    Ok((a, s, fc))
}

async fn offline_on_malformed(ctx: Ctx) -> CaseResult {
    let (a, mut s, mut fc) = raw_friend(&ctx).await?;
    s.send_frame(&[0xff, 0xff, 0xff])
        .await
        .map_err(Verdict::Fail)?;
    let r =
        super::expect_close_reason(&mut s, GRACE, wire::CloseReason::MalformedFrame, true).await?;
    fc.expect_push(
        "FriendOffline",
        OFFLINE_NOTIFY + GRACE,
        is::offline(&a.userid),
    )
    .await?;
    Ok(format!("{r}; friend got FriendOffline"))
}

async fn offline_on_truncated(ctx: Ctx) -> CaseResult {
    let (a, mut s, mut fc) = raw_friend(&ctx).await?;
    s.send_plain(&[0, 0, 0, 50, 1, 2, 3])
        .await
        .map_err(Verdict::Fail)?;
    s.shutdown_write().await;
    fc.expect_push(
        "FriendOffline",
        OFFLINE_NOTIFY + GRACE,
        is::offline(&a.userid),
    )
    .await?;
    Ok("friend got FriendOffline".into())
}

async fn snapshot_presence(ctx: Ctx) -> CaseResult {
    let (a, mut ac) = ctx.online_user().await?;
    let (on, mut onc) = ctx.online_user().await?;
    let (off, mut offc) = ctx.online_user().await?;
    ctx.befriend(&a, &mut ac, &on, &mut onc).await?;
    ctx.befriend(&a, &mut ac, &off, &mut offc).await?;
    ok!(
        onc.request(req::set_endpoint(Some(req::ep("192.0.2.9", 7000))))
            .await?,
        SetPeerEndpoint,
        "SetPeerEndpoint"
    );
    drop(offc);
    ctx.go_offline(ac).await?;
    let (_, l) = ctx.login(&a).await?;
    let fon = l
        .friends
        .iter()
        .find(|f| f.userid == on.userid)
        .ok_or_else(|| Verdict::Fail("online friend missing".into()))?;
    let foff = l
        .friends
        .iter()
        .find(|f| f.userid == off.userid)
        .ok_or_else(|| Verdict::Fail("offline friend missing".into()))?;
    check!(
        fon.online && fon.peer_endpoint == Some(req::ep("192.0.2.9", 7000)),
        "online friend: online {} endpoint {:?}",
        fon.online,
        fon.peer_endpoint
    );
    check!(
        fon.identity_key == key_der(on.key),
        "online friend's key wrong"
    );
    check!(
        !foff.online && foff.peer_endpoint.is_none(),
        "offline friend: online {} endpoint {:?}",
        foff.online,
        foff.peer_endpoint
    );
    check!(
        foff.identity_key == key_der(off.key),
        "offline friend's key wrong"
    );
    Ok("snapshot presence correct".into())
}

async fn set_endpoint_ok(ctx: Ctx) -> CaseResult {
    let (a, mut ac, _f, mut fc) = ctx.friends().await?;
    let ep = req::ep("198.51.100.3", 5555);
    let r = ok!(
        ac.request(req::set_endpoint(Some(ep.clone()))).await?,
        SetPeerEndpoint,
        "SetPeerEndpoint"
    );
    check!(
        r.peer_endpoint == Some(ep.clone()),
        "SetPeerEndpointOk {:?}, expected {ep:?}",
        r.peer_endpoint
    );
    let (_, p) = fc
        .expect_push("FriendOnline", PUSH_TIMEOUT, is::online(&a.userid))
        .await?;
    let push::Body::FriendOnline(o) = p else {
        fail!("wrong push")
    };
    check!(
        o.peer_endpoint == Some(ep),
        "FriendOnline endpoint {:?}",
        o.peer_endpoint
    );
    Ok("echoed and pushed".into())
}

async fn set_endpoint_same(ctx: Ctx) -> CaseResult {
    let (a, mut ac, _f, mut fc) = ctx.friends().await?;
    let ep = req::ep("198.51.100.4", 5556);
    for i in 0..2 {
        ok!(
            ac.request(req::set_endpoint(Some(ep.clone()))).await?,
            SetPeerEndpoint,
            "SetPeerEndpoint"
        );
        fc.expect_push(
            &format!("FriendOnline #{}", i + 1),
            PUSH_TIMEOUT,
            is::online(&a.userid),
        )
        .await?;
    }
    Ok("FriendOnline both times".into())
}

async fn set_endpoint_empty_host(ctx: Ctx) -> CaseResult {
    let (_, mut c) = ctx.online_user().await?;
    let r = ok!(
        c.request(req::set_endpoint(Some(req::ep("", 5557))))
            .await?,
        SetPeerEndpoint,
        "SetPeerEndpoint"
    );
    let want = req::ep(&c.local_addr.ip().to_string(), 5557);
    check!(
        r.peer_endpoint == Some(want.clone()),
        "SetPeerEndpointOk {:?}, expected {want:?}",
        r.peer_endpoint
    );
    Ok(format!("host filled in: {}", want.host))
}

async fn set_endpoint_invalid(ctx: Ctx, i: usize) -> CaseResult {
    let (_, mut c) = ctx.online_user().await?;
    let ep = match i {
        0 => None,
        1 => Some(req::ep("", 0)),
        _ => Some(req::ep("peer.example.com", 4000)),
    };
    let r = c.request(req::set_endpoint(ep.clone())).await?;
    expect_code(
        &r,
        ErrorCode::InvalidRequest,
        &format!("SetPeerEndpoint {ep:?}"),
    )?;
    Ok("INVALID_REQUEST".into())
}

async fn privacy_non_friend(ctx: Ctx) -> CaseResult {
    let (a, mut ac, _f, mut fc) = ctx.friends().await?;
    let (_s, mut sc) = ctx.online_user().await?;
    // A goes through login, endpoint change and logout; the friend sees each, the stranger nothing.
    ok!(
        ac.request(req::set_endpoint(Some(req::ep("192.0.2.50", 5000))))
            .await?,
        SetPeerEndpoint,
        "SetPeerEndpoint"
    );
    fc.expect_push(
        "FriendOnline (control)",
        PUSH_TIMEOUT,
        is::online(&a.userid),
    )
    .await?;
    ok!(ac.request(req::logout()).await?, Logout, "Logout");
    fc.expect_push(
        "FriendOffline (control)",
        PUSH_TIMEOUT,
        is::offline(&a.userid),
    )
    .await?;
    ok!(
        ac.request(req::login(&a.userid, &a.password, None)).await?,
        Login,
        "Login again"
    );
    fc.expect_push(
        "FriendOnline (control)",
        PUSH_TIMEOUT,
        is::online(&a.userid),
    )
    .await?;
    if let Some(p) = sc
        .find_push_within(QUIET_WINDOW, is::about(&a.userid))
        .await
    {
        fail!("a non-friend received {}", describe_push(&p));
    }
    Ok("stranger received nothing".into())
}

async fn privacy_pending(ctx: Ctx) -> CaseResult {
    let (a, mut ac, _f, mut fc) = ctx.friends().await?;
    let (b, mut bc) = ctx.online_user().await?;
    ok!(
        ac.request(req::send_request(&b.userid)).await?,
        SendFriendRequest,
        "A asks B"
    );
    bc.expect_push(
        "FriendRequestReceived",
        PUSH_TIMEOUT,
        is::request_from(&a.userid),
    )
    .await?;
    ok!(
        ac.request(req::set_endpoint(Some(req::ep("192.0.2.51", 5000))))
            .await?,
        SetPeerEndpoint,
        "A sets its endpoint"
    );
    fc.expect_push(
        "FriendOnline (control)",
        PUSH_TIMEOUT,
        is::online(&a.userid),
    )
    .await?;
    ok!(
        bc.request(req::set_endpoint(Some(req::ep("192.0.2.53", 5000))))
            .await?,
        SetPeerEndpoint,
        "B sets its endpoint"
    );
    ok!(bc.request(req::logout()).await?, Logout, "B logs out");
    if let Some(p) = bc
        .find_push_within(QUIET_WINDOW, is::about(&a.userid))
        .await
    {
        if !matches!(p, push::Body::FriendRequestReceived(_)) {
            fail!(
                "the target of a pending request received {}",
                describe_push(&p)
            );
        }
    }
    if let Some(p) = ac
        .find_push_within(QUIET_WINDOW, is::about(&b.userid))
        .await
    {
        fail!(
            "the sender of a pending request received {}",
            describe_push(&p)
        );
    }
    Ok("no presence across a pending request".into())
}

async fn privacy_after_unfriend(ctx: Ctx) -> CaseResult {
    let (a, mut ac, b, mut bc) = ctx.friends().await?;
    let (_g, mut gc) = ctx.online_user().await?;
    ctx.befriend(&a, &mut ac, &_g, &mut gc).await?;
    ok!(
        ac.request(req::unfriend(&b.userid)).await?,
        Unfriend,
        "Unfriend"
    );
    bc.expect_push("Unfriended", PUSH_TIMEOUT, is::unfriended_by(&a.userid))
        .await?;
    ok!(ac.request(req::logout()).await?, Logout, "Logout");
    gc.expect_push(
        "FriendOffline (control)",
        PUSH_TIMEOUT,
        is::offline(&a.userid),
    )
    .await?;
    if let Some(p) = bc
        .find_push_within(QUIET_WINDOW, is::about(&a.userid))
        .await
    {
        fail!("the former friend received {}", describe_push(&p));
    }
    Ok("no presence after unfriending".into())
}

async fn no_self_push(ctx: Ctx) -> CaseResult {
    let (a, mut ac, _f, mut fc) = ctx.friends().await?;
    ok!(
        ac.request(req::set_endpoint(Some(req::ep("192.0.2.52", 5000))))
            .await?,
        SetPeerEndpoint,
        "SetPeerEndpoint"
    );
    fc.expect_push(
        "FriendOnline (control)",
        PUSH_TIMEOUT,
        is::online(&a.userid),
    )
    .await?;
    if let Some(p) = ac
        .find_push_within(QUIET_WINDOW, is::about(&a.userid))
        .await
    {
        fail!("the user received {} about itself", describe_push(&p));
    }
    Ok("none".into())
}

async fn key_changed_online(ctx: Ctx) -> CaseResult {
    let (a, ac, _f, mut fc) = ctx.friends().await?;
    drop(ac);
    fc.expect_push(
        "FriendOffline",
        OFFLINE_NOTIFY + GRACE,
        is::offline(&a.userid),
    )
    .await?;
    let new_key = ident::other_key(a.key);
    let (_c, _) = ctx.login_with(&a, new_key, None).await?;
    let (kseq, p) = fc
        .expect_push("FriendKeyChanged", PUSH_TIMEOUT, is::key_changed(&a.userid))
        .await?;
    let push::Body::FriendKeyChanged(k) = p else {
        fail!("wrong push")
    };
    check!(
        k.identity_key == key_der(new_key),
        "FriendKeyChanged carries a key other than the new one"
    );
    let (oseq, p) = fc
        .expect_push("FriendOnline", PUSH_TIMEOUT, is::online(&a.userid))
        .await?;
    let push::Body::FriendOnline(o) = p else {
        fail!("wrong push")
    };
    check!(
        o.identity_key == key_der(new_key),
        "FriendOnline carries the old key"
    );
    check!(kseq < oseq, "FriendOnline (frame {oseq}) came before FriendKeyChanged (frame {kseq}); §5.3.1 orders key replacement (step 1) before FriendOnline (step 4)");
    Ok("FriendKeyChanged, then FriendOnline with the new key".into())
}

async fn key_changed_offline(ctx: Ctx) -> CaseResult {
    let (a, ac, f, fc) = ctx.friends().await?;
    ctx.go_offline(ac).await?;
    ctx.go_offline(fc).await?;
    let new_key = ident::other_key(a.key);
    let (c, _) = ctx.login_with(&a, new_key, None).await?;
    drop(c);
    let (_, l) = ctx.login(&f).await?;
    let fa = l
        .friends
        .iter()
        .find(|x| x.userid == a.userid)
        .ok_or_else(|| Verdict::Fail("friend missing".into()))?;
    check!(
        fa.identity_key == key_der(new_key),
        "LoginOk.friends carries the old key"
    );
    Ok("new key in the snapshot".into())
}

async fn key_same_no_push(ctx: Ctx) -> CaseResult {
    let (a, ac, _f, mut fc) = ctx.friends().await?;
    drop(ac);
    fc.expect_push(
        "FriendOffline",
        OFFLINE_NOTIFY + GRACE,
        is::offline(&a.userid),
    )
    .await?;
    let (_c, _) = ctx.login(&a).await?;
    fc.expect_push(
        "FriendOnline (control)",
        PUSH_TIMEOUT,
        is::online(&a.userid),
    )
    .await?;
    if let Some(p) = fc
        .find_push_within(QUIET_WINDOW, is::key_changed(&a.userid))
        .await
    {
        fail!("unexpected {}", describe_push(&p));
    }
    Ok("no FriendKeyChanged".into())
}

async fn replaced_no_offline(ctx: Ctx) -> CaseResult {
    let (a, mut ac, _f, mut fc) = ctx.friends().await?;
    let (_c2, _) = ctx.login(&a).await?;
    let closing = ac.expect_close(GRACE).await?;
    check!(
        closing.has_reason(wire::CloseReason::SessionReplaced),
        "old connection ended with {closing}"
    );
    fc.expect_push(
        "FriendOnline for the new session",
        PUSH_TIMEOUT,
        is::online(&a.userid),
    )
    .await?;
    if let Some(p) = fc
        .find_push_within(
            OFFLINE_NOTIFY + Duration::from_millis(500),
            is::offline(&a.userid),
        )
        .await
    {
        fail!(
            "friend received {} for a replaced session",
            describe_push(&p)
        );
    }
    Ok("FriendOnline only".into())
}

async fn replaced_new_key(ctx: Ctx) -> CaseResult {
    let (a, mut ac, _f, mut fc) = ctx.friends().await?;
    let new_key = ident::other_key(a.key);
    let (_c2, _) = ctx.login_with(&a, new_key, None).await?;
    let closing = ac.expect_close(GRACE).await?;
    check!(
        closing.has_reason(wire::CloseReason::SessionReplaced),
        "old connection ended with {closing}"
    );
    let (kseq, _) = fc
        .expect_push("FriendKeyChanged", PUSH_TIMEOUT, is::key_changed(&a.userid))
        .await?;
    let (oseq, p) = fc
        .expect_push("FriendOnline", PUSH_TIMEOUT, is::online(&a.userid))
        .await?;
    let push::Body::FriendOnline(o) = p else {
        fail!("wrong push")
    };
    check!(
        o.identity_key == key_der(new_key),
        "FriendOnline carries the old key"
    );
    check!(kseq < oseq, "FriendOnline before FriendKeyChanged");
    if let Some(p) = fc
        .find_push_within(
            OFFLINE_NOTIFY + Duration::from_millis(500),
            is::offline(&a.userid),
        )
        .await
    {
        fail!(
            "friend received {} for a replaced session",
            describe_push(&p)
        );
    }
    Ok("SESSION_REPLACED; FriendKeyChanged, FriendOnline; no FriendOffline".into())
}

async fn logout_forgets_endpoint(ctx: Ctx) -> CaseResult {
    let (a, ac, _f, mut fc) = ctx.friends().await?;
    drop(ac);
    fc.expect_push(
        "FriendOffline",
        OFFLINE_NOTIFY + GRACE,
        is::offline(&a.userid),
    )
    .await?;
    let (mut ac, _) = ctx
        .login_with(&a, a.key, Some(req::ep("192.0.2.60", 6100)))
        .await?;
    fc.expect_push(
        "FriendOnline with endpoint",
        PUSH_TIMEOUT,
        is::online(&a.userid),
    )
    .await?;
    ok!(ac.request(req::logout()).await?, Logout, "Logout");
    fc.expect_push("FriendOffline", PUSH_TIMEOUT, is::offline(&a.userid))
        .await?;
    ok!(
        ac.request(req::key_login(&a.userid, None)).await?,
        Login,
        "KeyLogin without endpoint"
    );
    let (_, p) = fc
        .expect_push("FriendOnline", PUSH_TIMEOUT, is::online(&a.userid))
        .await?;
    let push::Body::FriendOnline(o) = p else {
        fail!("wrong push")
    };
    check!(
        o.peer_endpoint.is_none(),
        "FriendOnline still carries the old endpoint {:?}",
        o.peer_endpoint
    );
    Ok("endpoint forgotten".into())
}
