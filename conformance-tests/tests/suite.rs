//! The whole conformance suite against our own server, started in-process on an ephemeral
//! port with a temp database. Every case must pass; none may be skipped.

mod common;

use peerchat_conformance::{run_suite, Status};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn our_server_passes_every_case() {
    let server = common::start(&[]).await;
    let report = run_suite(server.suite_config()).await;
    server.stop().await;
    print!("{}", report.text());
    let bad: Vec<String> = report.outcomes.iter().filter(|o| o.status != Status::Pass).map(|o| o.line()).collect();
    assert!(bad.is_empty(), "cases that did not pass:\n{}", bad.join("\n"));
}
