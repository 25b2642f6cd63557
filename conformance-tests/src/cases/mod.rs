//! The case registry: one module per area of SPEC.md. Ids are stable; add cases, never
//! renumber them.

use std::time::Duration;

use peerchat_proto::wire;

use crate::case::{Case, Verdict};
use crate::ctx::Ctx;
use crate::raw::{HandshakeOptions, RawConn, RawEnd, RawSession};

pub mod abuse;
pub mod auth;
pub mod change_password;
pub mod framing;
pub mod friends;
pub mod handshake;
pub mod idle;
pub mod presence;
pub mod shutdown;
pub mod state;
pub mod traversal;

/// Every case, in report order.
pub fn all() -> Vec<Case> {
    let mut v = Vec::new();
    v.extend(handshake::cases());
    v.extend(framing::cases());
    v.extend(state::cases());
    v.extend(auth::cases());
    v.extend(change_password::cases());
    v.extend(friends::cases());
    v.extend(presence::cases());
    v.extend(traversal::cases());
    v.extend(idle::cases());
    v.extend(abuse::cases());
    v.extend(shutdown::cases());
    v
}

/// Grace added to every time bound of the spec (loaded CI machines, debug builds).
pub const GRACE: Duration = Duration::from_secs(5);

/// A raw session after a valid handshake with a random key.
///
/// # Errors
/// FAIL if the handshake does not complete.
pub async fn raw_session(ctx: &Ctx) -> Result<RawSession, Verdict> {
    let conn = RawConn::connect(&ctx.cfg, ctx.source())
        .await
        .map_err(Verdict::Fail)?;
    let (s, _) = conn
        .handshake(&HandshakeOptions::valid(crate::ident::random_key()))
        .await
        .map_err(Verdict::Fail)?;
    Ok(s)
}

/// Expects the raw connection to be closed silently within `timeout`.
///
/// # Errors
/// FAIL naming what the server did instead.
pub async fn expect_silent_close(
    conn: &mut RawConn,
    timeout: Duration,
    after: &str,
) -> Result<String, Verdict> {
    match conn.wait_closed(timeout).await {
        (RawEnd::StillOpen, n) => Err(Verdict::Fail(format!(
            "{after}: the server kept the connection open for {timeout:?} ({n} bytes received)"
        ))),
        (end, 0) => Ok(format!("{after}: closed silently ({end:?})")),
        (end, n) => Err(Verdict::Fail(format!(
            "{after}: the server sent {n} bytes before closing ({end:?}); it must close silently"
        ))),
    }
}

/// Checks how a raw session ended: closed within `timeout`, and if a Close frame came it has
/// `want`. `require_frame`: a missing Close frame fails.
///
/// # Errors
/// FAIL naming what the server did instead.
pub async fn expect_close_reason(
    s: &mut RawSession,
    timeout: Duration,
    want: wire::CloseReason,
    require_frame: bool,
) -> Result<String, Verdict> {
    let (close, end) = s.wait_close(timeout).await;
    if end == RawEnd::StillOpen {
        return Err(Verdict::Fail(format!(
            "the connection was still open after {timeout:?} (Close received: {close:?}); expected Close {}",
            want.as_str_name()
        )));
    }
    match close {
        Some((r, m)) if r == want as i32 => Ok(format!(
            "Close {} ({m:?}), then {end:?}",
            want.as_str_name()
        )),
        Some((r, m)) => Err(Verdict::Fail(format!(
            "expected Close {}, got Close {} ({m:?})",
            want.as_str_name(),
            crate::client::close_name(r)
        ))),
        None if require_frame => Err(Verdict::Fail(format!(
            "connection closed ({end:?}) without the Close {} frame SPEC.md §3.5 requires",
            want.as_str_name()
        ))),
        None => Ok(format!(
            "connection closed ({end:?}) without a Close frame (allowed)"
        )),
    }
}

/// The README table: for each SPEC.md section, its cases (id, level) and what they cover.
pub fn markdown_table(cases: &[Case]) -> String {
    let mut sections: Vec<&str> = cases.iter().map(|c| c.section).collect();
    sections.sort_by_key(|s| section_key(s));
    sections.dedup();
    let mut out = String::from("| SPEC.md § | Case | Level | Covers |\n|---|---|---|---|\n");
    for s in sections {
        for c in cases.iter().filter(|c| c.section == s) {
            let covers = c
                .covers
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&format!(
                "| {s} | `{}` | {} | {covers} |\n",
                c.id,
                c.level.as_str()
            ));
        }
    }
    out
}

fn section_key(s: &str) -> Vec<u32> {
    s.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}
