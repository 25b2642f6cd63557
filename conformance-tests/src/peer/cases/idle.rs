//! SPEC.md §3.6 timers on a peer link (Table L rows L40–L43), run with the client's short
//! test timers (ping after P, close after C): Pings at P and 2P of silence, Close at C.

use std::time::Duration;

use peerchat_proto::wire::{peer_message::Body, CloseReason};

use crate::case::{Case, CaseResult};
use crate::ctx::Ctx;
use crate::peer::link::LinkEvent;
use crate::peer::pair::{Pair, PairOptions};
use crate::{fail, peer_case};

/// The idle cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case::must("peer.l40.idle-ping", "3.6", "after IDLE_PING_AFTER of silence the client sends a Ping; a Pong keeps the link", peer_case!(idle_ping)).covers(&["Ping"]).rows(&["L22"]),
        Case::must("peer.l41.second-ping-then-timeout", "3.6", "unanswered, the client pings again at 2 x IDLE_PING_AFTER and closes with IDLE_TIMEOUT at IDLE_TIMEOUT", peer_case!(second_ping)).covers(&["CLOSE_REASON_IDLE_TIMEOUT"]).timeout_secs(60).rows(&["L42"]),
        Case::must("peer.l3.empty-record-not-activity", "3.6", "records with an empty plaintext are not activity: sent every 200 ms, they do not stop the client's idle Ping", peer_case!(empty_records_not_activity)),
        Case::must("peer.l43.any-frame-restarts-idle", "3.6", "a frame from the friend (here an unmatched Pong) restarts the silence: the client's first Ping comes IDLE_PING_AFTER after it, not after the link opened", peer_case!(frame_restarts_idle)),
    ]
}

const SHORT: PairOptions = PairOptions {
    auto_accept: 0,
    short_idle: true,
    blake3: false,
    twin: false,
};

/// Slack for a loaded machine on each timer.
const SLACK: Duration = Duration::from_secs(2);

async fn idle_ping(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, SHORT).await?;
    let (ping, _) = p.idle.unwrap_or_default();
    let mut link = p.dial().await?;
    let start = tokio::time::Instant::now();
    let mut first = None;
    while let Some(ev) = link
        .next_raw((ping + SLACK).saturating_sub(start.elapsed()))
        .await
    {
        match ev {
            LinkEvent::Frame(m) => {
                if let Some(Body::Ping(p)) = m.body {
                    first = Some((start.elapsed(), p.nonce));
                    break;
                }
            }
            _ => break,
        }
    }
    let r = match first {
        None => fail!("L40: no Ping within {:?} of silence", ping + SLACK),
        Some((_, nonce)) => {
            link.send(Body::Pong(peerchat_proto::wire::Pong { nonce }))
                .await?;
            super::still_open(&mut link, "the Pong").await?;
            Ok("Ping after the silence; Pong kept the link".into())
        }
    };
    p.finish().await;
    r
}

async fn second_ping(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, SHORT).await?;
    let (ping, close) = p.idle.unwrap_or_default();
    let mut link = p.dial().await?;
    let got = link.collect_raw(close + SLACK * 2).await;
    p.finish().await;
    let pings: Vec<Duration> = got
        .iter()
        .filter_map(|(t, e)| {
            matches!(e, LinkEvent::Frame(m) if matches!(m.body, Some(Body::Ping(_)))).then_some(*t)
        })
        .collect();
    let close_at = got.iter().find_map(|(t, e)| match e {
        LinkEvent::Frame(m) => match &m.body {
            Some(Body::Close(c)) => Some((*t, c.reason)),
            _ => None,
        },
        _ => None,
    });
    if pings.len() != 2 {
        fail!("L40/L41: {} Pings in the silence before the time-out (at {pings:?}), expected 2 (at {ping:?} and {:?})", pings.len(), ping * 2);
    }
    if pings[1] + SLACK / 2 < ping * 2 {
        fail!(
            "L41: the second Ping came at {:?}, before 2 x {ping:?}",
            pings[1]
        );
    }
    match close_at {
        Some((t, r)) if r == CloseReason::IdleTimeout as i32 => {
            if t + SLACK / 2 < close {
                fail!("L42: closed at {t:?}, before {close:?}");
            }
            Ok(format!(
                "Pings at {:?} and {:?}, Close IDLE_TIMEOUT at {t:?}",
                pings[0], pings[1]
            ))
        }
        Some((_, r)) => fail!("L42: closed with {}", crate::client::close_name(r)),
        None => fail!("L42: no Close IDLE_TIMEOUT within {:?}", close + SLACK * 2),
    }
}

async fn empty_records_not_activity(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, SHORT).await?;
    let (ping, _) = p.idle.unwrap_or_default();
    let mut link = p.dial().await?;
    let start = tokio::time::Instant::now();
    let mut r = Err(crate::Verdict::Fail(format!(
        "L3: no Ping within {:?} while only empty records arrived: they were counted as activity",
        ping + SLACK
    )));
    while start.elapsed() < ping + SLACK {
        match link.next_raw(Duration::from_millis(200)).await {
            None => link.send_empty_record().await?,
            Some(LinkEvent::Frame(m)) if matches!(m.body, Some(Body::Ping(_))) => {
                r = Ok(format!(
                    "Ping after {:?} despite the empty records",
                    start.elapsed()
                ));
                break;
            }
            Some(LinkEvent::Frame(_)) => {}
            Some(other) => {
                r = Err(crate::Verdict::Fail(format!("the link ended: {other:?}")));
                break;
            }
        }
    }
    p.finish().await;
    r
}

async fn frame_restarts_idle(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, SHORT).await?;
    let (ping, _) = p.idle.unwrap_or_default();
    let mut link = p.dial().await?;
    let start = tokio::time::Instant::now();
    let at = ping * 6 / 10;
    tokio::time::sleep(at).await;
    link.send(Body::Pong(peerchat_proto::wire::Pong { nonce: 3 }))
        .await?;
    let mut first = None;
    while let Some(ev) = link
        .next_raw((at + ping + SLACK).saturating_sub(start.elapsed()))
        .await
    {
        if let LinkEvent::Frame(m) = ev {
            if matches!(m.body, Some(Body::Ping(_))) {
                first = Some(start.elapsed());
                break;
            }
        } else {
            break;
        }
    }
    p.finish().await;
    // A client counting from the link's start pings at `ping`; one counting from the Pong
    // at `at + ping`. Allow a fifth of `ping` for a loaded machine reading the Pong late.
    match first {
        None => fail!("L40: no Ping within {:?} of the Pong", ping + SLACK),
        Some(t) if t + ping / 5 < at + ping => fail!(
            "L43: the first Ping came {t:?} after the link opened, {:?} after the friend's Pong: the Pong did not restart the silence",
            t.saturating_sub(at)
        ),
        Some(t) => Ok(format!("first Ping {:?} after the Pong", t.saturating_sub(at))),
    }
}
