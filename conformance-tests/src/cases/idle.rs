//! SPEC.md §3.6: idle pings and the idle time-out. These wait for the server's timers, so they
//! run only with `--idle-secs PING,CLOSE` (a test server with short timers) or `--slow`.

use std::time::Duration;

use peerchat_proto::wire;

use super::GRACE;
use crate::case::{Case, CaseResult, Verdict};
use crate::client::{is, req, ClientError};
use crate::ctx::Ctx;
use crate::ident;
use crate::{check, skip};

/// The idle cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case::must("idle.server-pings", "3.6", "A silent client gets a Ping after IDLE_PING_AFTER (needs --idle-secs or --slow).", |c| Box::pin(server_pings(c))).timeout_secs(200),
        Case::must("idle.timeout-close", "3.6", "A silent logged-in client is closed with Close IDLE_TIMEOUT after IDLE_TIMEOUT and its friends get FriendOffline (needs --idle-secs or --slow).", |c| Box::pin(timeout_close(c))).covers(&["CLOSE_REASON_IDLE_TIMEOUT", "FriendOffline"]).timeout_secs(200),
        Case::must("idle.activity-keeps-alive", "3.6", "A logged-in client that sends a frame more often than IDLE_PING_AFTER stays connected past IDLE_TIMEOUT (needs --idle-secs or --slow).", |c| Box::pin(keeps_alive(c))).timeout_secs(300),
        Case::must("idle.login-deadline", "4.6", "A connection that pings but never logs in is closed with Close IDLE_TIMEOUT after LOGIN_DEADLINE (needs --login-deadline-secs or --slow).", |c| Box::pin(login_deadline(c))).covers(&["CLOSE_REASON_IDLE_TIMEOUT"]).timeout_secs(120),
    ]
}

fn need_idle(ctx: &Ctx) -> Result<(Duration, Duration), Verdict> {
    match ctx.cfg.idle {
        Some(t) => Ok(t),
        None => skip!("waits for the server's idle timers: pass --idle-secs PING,CLOSE (short test timers) or --slow"),
    }
}

async fn server_pings(ctx: Ctx) -> CaseResult {
    let (ping_after, _) = need_idle(&ctx)?;
    // Logged in, so that LOGIN_DEADLINE (which may equal IDLE_PING_AFTER) cannot interfere.
    let (_, mut c) = ctx.online_user().await?;
    c.set_auto_pong(false);
    let nonce = c.expect_ping(ping_after + GRACE).await?;
    c.send(&wire::ClientMessage {
        request_id: 0,
        body: Some(wire::client_message::Body::Pong(wire::Pong { nonce })),
    })
    .await?;
    Ok(format!("Ping {nonce} after silence"))
}

async fn timeout_close(ctx: Ctx) -> CaseResult {
    let (_, timeout) = need_idle(&ctx)?;
    let (a, mut ac, _f, mut fc) = ctx.friends().await?;
    ac.set_auto_pong(false);
    let started = tokio::time::Instant::now();
    let step = (timeout / 4).max(Duration::from_millis(200));
    let mut n = 0u64;
    // A stays silent; the friend pings now and then so that only A goes idle.
    let closing = loop {
        match ac.expect_close(step).await {
            Ok(closing) => break closing,
            Err(ClientError::Timeout(_)) if started.elapsed() < timeout + GRACE => {
                n += 1;
                fc.send(&wire::ClientMessage {
                    request_id: 0,
                    body: Some(req::ping(n)),
                })
                .await?;
            }
            Err(e) => return Err(e.into()),
        }
    };
    check!(
        closing.has_reason(wire::CloseReason::IdleTimeout),
        "silent client's connection ended with {closing}"
    );
    fc.expect_push(
        "FriendOffline after the idle time-out",
        Duration::from_secs(1) + GRACE,
        is::offline(&a.userid),
    )
    .await?;
    Ok(format!(
        "{closing} after {:?}; friend got FriendOffline",
        started.elapsed()
    ))
}

async fn keeps_alive(ctx: Ctx) -> CaseResult {
    let (ping_after, timeout) = need_idle(&ctx)?;
    // Logged in: an Authenticating connection is closed by LOGIN_DEADLINE whatever it sends
    // (SPEC.md §4.6).
    let (_, mut c) = ctx.online_user().await?;
    // Only this client's own Pings count as activity here.
    c.set_auto_pong(false);
    let step = ping_after / 2;
    let deadline = tokio::time::Instant::now() + timeout + timeout / 2;
    let mut n = 0;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(step).await;
        n += 1;
        c.send(&wire::ClientMessage {
            request_id: 0,
            body: Some(req::ping(n)),
        })
        .await?;
        c.expect_pong(n, GRACE).await?;
    }
    let r = c.request(req::find("x")).await?;
    crate::ok!(r, Find, "request after 1.5 x IDLE_TIMEOUT");
    Ok("connection kept alive by activity".into())
}

async fn login_deadline(ctx: Ctx) -> CaseResult {
    let Some(deadline) = ctx.cfg.login_deadline else {
        skip!("waits for the server's login deadline: pass --login-deadline-secs N or --slow");
    };
    let mut c = ctx.connect(ident::random_key()).await?;
    let started = tokio::time::Instant::now();
    let step = (deadline / 8).max(Duration::from_millis(100));
    let mut n = 0u64;
    // Activity of every kind but a login: Pings, and a request that fails.
    let closing = loop {
        match c.expect_close(step).await {
            Ok(closing) => break closing,
            Err(ClientError::Timeout(_)) if started.elapsed() < deadline + GRACE => {
                n += 1;
                c.send(&wire::ClientMessage {
                    request_id: 0,
                    body: Some(req::ping(n)),
                })
                .await?;
                if n == 1 {
                    c.send_request(req::find("x")).await?;
                }
            }
            Err(ClientError::Timeout(_)) => {
                crate::fail!(
                    "a connection that never logged in was still open after {:?} of Pings (LOGIN_DEADLINE {deadline:?})",
                    started.elapsed()
                )
            }
            Err(e) => return Err(e.into()),
        }
    };
    check!(
        closing.has_reason(wire::CloseReason::IdleTimeout),
        "the connection that never logged in ended with {closing}"
    );
    Ok(format!(
        "{closing} after {:?} of Pings without a login",
        started.elapsed()
    ))
}
