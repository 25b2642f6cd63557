//! SPEC.md §4.6 and §10: the per-connection request bucket, the outbound queue and the
//! connection cap. Every case ends by checking that a fresh client is still served.

use std::time::Duration;

use peerchat_proto::limits::{RATE_LIMIT_DISCONNECT_AFTER, REQUEST_BURST};
use peerchat_proto::wire::{self, response, server_message, ErrorCode};
use prost::Message as _;

use super::{raw_session, GRACE};
use crate::case::{Case, CaseResult, Verdict};
use crate::client::{describe, is, req, Client};
use crate::ctx::{expect_code, Ctx};
use crate::ident;
use crate::raw::{RawConn, RawEnd, RawRecv};
use crate::{check, fail, ok, skip};

/// The abuse cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case::must("abuse.rate-limit.burst", "4.6", "120 pipelined requests: the first ones are served, later ones get RATE_LIMITED with retry_after_ms >= 1, all in order.", |c| Box::pin(burst(c))).covers(&["ERROR_CODE_RATE_LIMITED"]),
        Case::must("abuse.rate-limit.recovers", "4.6", "After waiting retry_after_ms a rate-limited connection is served again.", |c| Box::pin(recovers(c))).covers(&["ERROR_CODE_RATE_LIMITED"]),
        Case::must("abuse.rate-limit.ping-exempt", "4.6", "Pings take no tokens: after 200 Pings, 45 requests are all served.", |c| Box::pin(ping_exempt(c))),
        Case::must("abuse.rate-limit.disconnect", "4.6", "After RATE_LIMIT_DISCONNECT_AFTER consecutive rejections the server closes with Close RATE_LIMITED; friends get FriendOffline.", |c| Box::pin(disconnect(c))).covers(&["CLOSE_REASON_RATE_LIMITED", "FriendOffline"]).timeout_secs(90),
        Case::must("abuse.slow-consumer", "4.6", "A client that never reads while the server must answer is closed (Close SLOW_CONSUMER, best effort).", |c| Box::pin(slow_consumer(c))).covers(&["CLOSE_REASON_SLOW_CONSUMER"]).timeout_secs(120),
        Case::must("abuse.max-connections", "10", "Over MAX_CONNECTIONS a new TCP connection is closed before the handshake; CLOSE_REASON_TOO_MANY_CONNECTIONS is never sent (needs --max-connections).", |c| Box::pin(max_connections(c))).covers(&["CLOSE_REASON_TOO_MANY_CONNECTIONS"]).exclusive().timeout_secs(120),
        Case::must("abuse.max-connections-per-address", "4.2", "Over MAX_CONNECTIONS_PER_ADDRESS from one source address a new TCP connection is closed before the handshake; other addresses are still served, and a freed slot is reused (needs --max-connections-per-address and a loopback server).", |c| Box::pin(max_per_address(c))).timeout_secs(120),
    ]
}

/// Pipelines `n` Find requests (ids from `first`) in one flush; returns the results in order.
async fn flood(c: &mut Client, first: u64, n: u64) -> Result<Vec<response::Result>, Verdict> {
    for id in first..first + n {
        c.queue(&wire::ClientMessage {
            request_id: id,
            body: Some(req::find("nobody-at-all")),
        })?;
    }
    c.flush().await?;
    let mut out = Vec::new();
    let mut expected = first;
    while expected < first + n {
        let r = c.next_frame(Duration::from_secs(15)).await?;
        if let Some(server_message::Body::Response(resp)) = r.msg.body {
            check!(
                resp.request_id == expected,
                "Response for {} while {expected} was due (order broken)",
                resp.request_id
            );
            out.push(
                resp.result
                    .ok_or_else(|| Verdict::Fail("Response without result".into()))?,
            );
            expected += 1;
        }
    }
    Ok(out)
}

fn limited(r: &response::Result) -> Option<u64> {
    match r {
        response::Result::Error(e) if e.code == ErrorCode::RateLimited as i32 => {
            Some(e.retry_after_ms)
        }
        _ => None,
    }
}

async fn burst(ctx: Ctx) -> CaseResult {
    let (_, mut c) = ctx.online_user().await?;
    let results = flood(&mut c, 1000, 120).await?;
    let first_limited = results.iter().position(|r| limited(r).is_some());
    let Some(first) = first_limited else {
        fail!("120 pipelined requests were all served; the bucket of REQUEST_BURST = {REQUEST_BURST} is not enforced");
    };
    check!(
        first + 1 >= REQUEST_BURST as usize - 2,
        "only {first} requests were served before RATE_LIMITED (burst is {REQUEST_BURST})"
    );
    for (i, r) in results.iter().enumerate() {
        if let Some(ms) = limited(r) {
            check!(ms >= 1, "request {i}: RATE_LIMITED with retry_after_ms 0");
        } else if !matches!(r, response::Result::Find(_)) {
            fail!("request {i}: {}", describe(r));
        }
    }
    let n = results.iter().filter(|r| limited(r).is_some()).count();
    ctx.server_still_serves().await?;
    Ok(format!("{first} served, then {n} RATE_LIMITED"))
}

async fn recovers(ctx: Ctx) -> CaseResult {
    let (_, mut c) = ctx.online_user().await?;
    let results = flood(&mut c, 1, 80).await?;
    let Some(ms) = results.iter().rev().find_map(limited) else {
        fail!("80 pipelined requests were all served; no rate limit to recover from");
    };
    tokio::time::sleep(Duration::from_millis(ms + 50)).await;
    let r = c.request(req::find("nobody-at-all")).await?;
    ok!(r, Find, "request after waiting retry_after_ms");
    Ok(format!("served again after {ms} ms"))
}

async fn ping_exempt(ctx: Ctx) -> CaseResult {
    let (_, mut c) = ctx.online_user().await?;
    for n in 0..200u64 {
        c.queue(&wire::ClientMessage {
            request_id: 0,
            body: Some(req::ping(n)),
        })?;
    }
    c.flush().await?;
    let results = flood(&mut c, 1, 45).await?;
    if let Some(i) = results.iter().position(|r| limited(r).is_some()) {
        fail!("request {i} after 200 Pings was RATE_LIMITED: Pings must not take tokens");
    }
    Ok("45 requests served after 200 Pings".into())
}

async fn disconnect(ctx: Ctx) -> CaseResult {
    let (a, mut ac, _f, mut fc) = ctx.friends().await?;
    let mut id = 1u64;
    let mut rejected_total = 0usize;
    // One batch must hold REQUEST_BURST served requests and then more than
    // RATE_LIMIT_DISCONNECT_AFTER rejections in a row; pausing between requests would let the
    // bucket refill a token, which restarts the count (SPEC.md §4.6 step 3).
    for _ in 0..3 {
        for _ in 0..(REQUEST_BURST + 2 * RATE_LIMIT_DISCONNECT_AFTER) {
            ac.queue(&wire::ClientMessage {
                request_id: id,
                body: Some(req::find("nobody-at-all")),
            })?;
            id += 1;
        }
        if ac.flush().await.is_err() {
            break;
        }
        match ac.expect_close(Duration::from_secs(3)).await {
            Ok(_) => break,
            Err(crate::client::ClientError::Timeout(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let closing = ac.expect_close(GRACE).await?;
    for r in ac.backlog() {
        if let Some(server_message::Body::Response(wire::Response {
            result: Some(res), ..
        })) = &r.msg.body
        {
            if limited(res).is_some() {
                rejected_total += 1;
            }
        }
    }
    check!(
        closing.has_reason(wire::CloseReason::RateLimited),
        "after {} requests the connection ended with {closing}",
        id - 1
    );
    check!(
        rejected_total >= RATE_LIMIT_DISCONNECT_AFTER as usize,
        "closed after only {rejected_total} RATE_LIMITED answers (RATE_LIMIT_DISCONNECT_AFTER = {RATE_LIMIT_DISCONNECT_AFTER})"
    );
    fc.expect_push(
        "FriendOffline",
        Duration::from_secs(1) + GRACE,
        is::offline(&a.userid),
    )
    .await?;
    ctx.server_still_serves().await?;
    Ok(format!(
        "{closing} after {rejected_total} RATE_LIMITED answers; friend got FriendOffline"
    ))
}

async fn slow_consumer(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    // Many Pings in large records; never read the Pongs. The server must not buffer without
    // bound: once its queue of OUTBOUND_QUEUE frames is full it closes the connection.
    let mut plain = Vec::new();
    let ping = wire::ClientMessage {
        request_id: 0,
        body: Some(req::ping(1)),
    }
    .encode_to_vec();
    while plain.len() < 60_000 {
        plain.extend_from_slice(&(ping.len() as u32).to_be_bytes());
        plain.extend_from_slice(&ping);
    }
    let mut sent_pings = 0usize;
    let per_record = plain.len() / (ping.len() + 4);
    let started = tokio::time::Instant::now();
    let mut writer_blocked = false;
    while started.elapsed() < Duration::from_secs(60) && sent_pings < 3_000_000 {
        let rec = s.seal(&plain).map_err(Verdict::Fail)?;
        match tokio::time::timeout(Duration::from_secs(3), s.conn.write(&rec)).await {
            Ok(Ok(())) => sent_pings += per_record,
            Ok(Err(_)) => break, // the server closed: what we want
            Err(_) => {
                writer_blocked = true;
                break;
            }
        }
    }
    // Now read: the server must end the connection rather than wait for us for ever.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut close = None;
    let mut quiet_since = tokio::time::Instant::now();
    let end = loop {
        match s
            .recv(deadline.min(quiet_since + Duration::from_secs(5)))
            .await
        {
            RawRecv::Msg(wire::ServerMessage {
                body: Some(server_message::Body::Close(c)),
            }) => close = Some(c.reason),
            RawRecv::Msg(_) => quiet_since = tokio::time::Instant::now(),
            RawRecv::End(e) => break e,
            RawRecv::Garbage(g) => break RawEnd::Reset(g),
        }
    };
    check!(
        end != RawEnd::StillOpen,
        "after {sent_pings} unread Pings (writer blocked: {writer_blocked}) the server kept the connection open"
    );
    if let Some(r) = close {
        check!(
            r == wire::CloseReason::SlowConsumer as i32,
            "closed with {} instead of SLOW_CONSUMER",
            crate::client::close_name(r)
        );
    }
    ctx.server_still_serves().await?;
    Ok(format!(
        "closed after {sent_pings} unread Pings ({}); Close frame: {}",
        match end {
            RawEnd::Eof => "EOF".to_string(),
            other => format!("{other:?}"),
        },
        close
            .map(crate::client::close_name)
            .unwrap_or_else(|| "none (allowed: best effort)".into())
    ))
}

async fn max_connections(ctx: Ctx) -> CaseResult {
    let Some(max) = ctx.cfg.max_connections else {
        skip!("needs a server started with a small connection cap and --max-connections N");
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut held = Vec::new();
    for i in 0..max {
        match ctx.connect(ident::random_key()).await {
            Ok(c) => held.push(c),
            Err(e) => fail!("connection {} of {max} failed: {e}", i + 1),
        }
    }
    let mut extra = RawConn::connect(&ctx.cfg, ctx.source())
        .await
        .map_err(Verdict::Fail)?;
    let (end, n) = extra.wait_closed(GRACE).await;
    check!(
        end != RawEnd::StillOpen,
        "connection {} was not closed",
        max + 1
    );
    check!(
        n == 0,
        "the server sent {n} bytes to connection {} (must close before the handshake)",
        max + 1
    );
    // A freed slot is reused: wait for that fact (a connection that completes its
    // handshake) instead of a fixed sleep; the server may take a moment to notice the close.
    held.pop();
    let started = tokio::time::Instant::now();
    let mut again = loop {
        match ctx.connect(ident::random_key()).await {
            Ok(c) => break c,
            Err(_) if started.elapsed() < GRACE => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => fail!("no connection after one of {max} was closed: {e}"),
        }
    };
    let r = again.request(req::find("x")).await?;
    expect_code(
        &r,
        ErrorCode::NotLoggedIn,
        "request on a connection after a slot was freed",
    )?;
    Ok(format!(
        "{max} served, the next closed silently ({end:?}), a freed slot is reused"
    ))
}

async fn max_per_address(ctx: Ctx) -> CaseResult {
    let Some(max) = ctx.cfg.max_connections_per_address else {
        skip!("needs the server's per-address cap: --max-connections-per-address N");
    };
    let Some(source) = ctx.source() else {
        skip!("needs a loopback server: the case fills the cap of a source address of its own");
    };
    let mut held = Vec::new();
    for i in 0..max {
        match ctx.connect_from(ident::random_key(), Some(source)).await {
            Ok(c) => held.push(c),
            Err(e) => fail!("connection {} of {max} from {source} failed: {e}", i + 1),
        }
    }
    let mut extra = RawConn::connect(&ctx.cfg, Some(source))
        .await
        .map_err(Verdict::Fail)?;
    let (end, n) = extra.wait_closed(GRACE).await;
    check!(
        end != RawEnd::StillOpen,
        "connection {} from {source} was not closed",
        max + 1
    );
    check!(
        n == 0,
        "the server sent {n} bytes to connection {} from one address (must close before the handshake)",
        max + 1
    );
    // Another address is unaffected.
    let mut other = ctx.connect(ident::random_key()).await?;
    let r = other.request(req::find("x")).await?;
    expect_code(&r, ErrorCode::NotLoggedIn, "request from another address")?;
    // A freed slot is reused (the server may take a moment to notice the close).
    held.pop();
    let started = tokio::time::Instant::now();
    let mut again = loop {
        match ctx.connect_from(ident::random_key(), Some(source)).await {
            Ok(c) => break c,
            Err(_) if started.elapsed() < GRACE => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => fail!("no connection from {source} after one of {max} was closed: {e}"),
        }
    };
    let r = again.request(req::find("x")).await?;
    expect_code(&r, ErrorCode::NotLoggedIn, "request on a reused slot")?;
    Ok(format!(
        "{max} from {source} served, the next closed silently ({end:?}), a freed slot is reused"
    ))
}
