//! SPEC.md §6.10: server shutdown. Runs last, and only when the suite can stop the server
//! (`--shutdown-cmd`, or our own cargo test harness).

use std::time::Duration;

use peerchat_proto::wire;

use crate::case::{Case, CaseResult, Verdict};
use crate::client::is;
use crate::ctx::Ctx;
use crate::ident;
use crate::{check, fail, skip};

/// The shutdown case.
pub fn cases() -> Vec<Case> {
    vec![Case::must(
        "server.shutdown",
        "6.10",
        "On shutdown every post-handshake connection gets Close SERVER_SHUTDOWN and is closed; no FriendOffline is sent (needs --shutdown-cmd).",
        |c| Box::pin(shutdown(c)),
    )
    .covers(&["CLOSE_REASON_SERVER_SHUTDOWN"])
    .last()
    .timeout_secs(60)]
}

async fn shutdown(ctx: Ctx) -> CaseResult {
    let Some(hook) = ctx.cfg.shutdown.clone() else {
        skip!("stops the server: pass --shutdown-cmd CMD to run it (last)");
    };
    let (a, mut ac, _b, mut bc) = ctx.friends().await?;
    let mut anon = ctx.connect(ident::random_key()).await?;
    hook()
        .await
        .map_err(|e| Verdict::Fail(format!("shutdown hook failed: {e}")))?;
    let timeout = Duration::from_secs(10);
    for (name, c) in [
        ("logged-in A", &mut ac),
        ("logged-in B", &mut bc),
        ("anonymous", &mut anon),
    ] {
        let closing = c.expect_close(timeout).await?;
        check!(
            closing.has_reason(wire::CloseReason::ServerShutdown),
            "{name} connection ended with {closing}"
        );
    }
    if let Some(p) = bc
        .find_push_within(Duration::ZERO, is::offline(&a.userid))
        .await
    {
        fail!(
            "B received {} during shutdown",
            crate::client::describe_push(&p)
        );
    }
    Ok("every connection got Close SERVER_SHUTDOWN; no FriendOffline".into())
}
