//! The whole conformance suite against our own server, started in-process on an ephemeral
//! port with a temp database. Every case must pass; none may be skipped.
//!
//! Two servers: the cases that wait for timers (request expiry, idle time-out) need a tiny
//! request TTL and short idle timers, which in turn break other cases (requests expire before
//! 100 are pending; connections kept quiet on purpose are closed), so they run against a
//! second server started with those timers.

mod common;

use peerchat_conformance::{run_suite, Report, Status};

/// The cases that need the short timers.
const TIMER_CASES: &str = "friends.expiry.*,idle.*";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn our_server_passes_every_case() {
    let main = common::start(&[]).await;
    let mut cfg = main.suite_config();
    let mut report = run_suite(cfg.clone()).await;
    main.stop().await;

    let short = common::start_with(&[], Some((common::TTL, common::IDLE))).await;
    cfg = short.suite_config();
    cfg.filter = Some(TIMER_CASES.into());
    let expiry = run_suite(cfg).await;
    short.stop().await;
    // The timer cases were skipped against the first server; take their second run.
    for o in expiry.outcomes {
        if let Some(slot) = report.outcomes.iter_mut().find(|x| x.id == o.id) {
            *slot = o;
        }
    }
    let report = Report {
        outcomes: report.outcomes,
    };
    print!("{}", report.text());
    let bad: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| o.status != Status::Pass)
        .map(|o| o.line())
        .collect();
    assert!(
        bad.is_empty(),
        "cases that did not pass:\n{}",
        bad.join("\n")
    );
}
