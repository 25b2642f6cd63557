//! Scenario 2: chat over one peer link between two client cores (child processes): round
//! trip time of `send_message` → MessageAcked, one message at a time, and sustained messages
//! per second with the sender never waiting; beside a plain TCP ping-pong of the same payload
//! size in the same run.
//!
//! A Peerchat round trip includes everything the spec requires: the sender stores the
//! message in its history and outbox (SQLite), seals and sends it; the receiver opens it,
//! stores it durably (SQLite), then acknowledges; the sender marks it delivered.

use crate::baseline::tcp_pingpong;
use crate::report::{Better, Row};
use crate::scenario::file_transfer::PeerFixture;
use crate::stats::Percentiles;

const SCENARIO: &str = "2 chat";

/// Runs the scenario and appends its rows.
///
/// # Errors
/// A child fails or a message is never acknowledged.
pub async fn run(
    fx: &mut PeerFixture,
    messages: usize,
    payload: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let base = tcp_pingpong::run(messages, messages, payload).await?;
    let bob = fx.bob.userid.clone();
    fx.alice.call(&format!("warm {bob} 100"), "OK").await?;
    let rtt: Percentiles = serde_json::from_str(
        &fx.alice
            .call(&format!("chat-rtt {bob} {messages} {payload}"), "RTT")
            .await?,
    )?;
    let flood = fx
        .alice
        .call(&format!("chat-flood {bob} {messages} {payload}"), "FLOOD")
        .await?;
    let mut f = flood.split_whitespace().map(str::parse::<f64>);
    let (acked_s, sent_s) = match (f.next(), f.next()) {
        (Some(Ok(a)), Some(Ok(s))) => (a, s),
        _ => anyhow::bail!("bad FLOOD answer {flood:?}"),
    };
    let mut b = base.rtts;
    let b = Percentiles::of(&mut b);
    let ms = |us: f64| us / 1000.0;
    let note = format!("{messages} messages of {payload} bytes, one at a time; send → MessageAcked through both client cores");
    rows.push(
        Row::new(SCENARIO, "RTT p50", ms(rtt.p50_us), "ms", Better::Lower)
            .baseline("plain TCP ping-pong", ms(b.p50_us))
            .note(&note),
    );
    rows.push(
        Row::new(SCENARIO, "RTT p99", ms(rtt.p99_us), "ms", Better::Lower)
            .baseline("plain TCP ping-pong", ms(b.p99_us))
            .target_value("< 1 ms", 1.0),
    );
    rows.push(
        Row::new(SCENARIO, "RTT p99.9", ms(rtt.p999_us), "ms", Better::Lower)
            .baseline("plain TCP ping-pong", ms(b.p999_us))
            .note(&format!(
                "max {:.2} ms (baseline {:.2} ms)",
                ms(rtt.max_us),
                ms(b.max_us)
            )),
    );
    let rate = messages as f64 / acked_s;
    rows.push(
        Row::new(SCENARIO, "sustained messages/s", rate, "msg/s", Better::Higher)
            .baseline("plain TCP, pipelined", base.flood_per_sec)
            .target_value("≥ 100,000 msg/s", 100_000.0)
            .note(&format!(
                "{messages} messages sent without waiting; all sent after {sent_s:.2} s, all acked after {acked_s:.2} s"
            )),
    );
    Ok(())
}
