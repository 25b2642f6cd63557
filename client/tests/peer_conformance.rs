//! The peer conformance suite (`peerchat-conformance peer`) against `peerchat-cli`, through
//! our server started in-process: every case must pass. With the `test-faults` feature,
//! the fault self-test proves the cases can fail: `peerchat-cli --test-fault NAME` breaks one
//! rule, and the case written for it must FAIL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use peerchat_conformance::peer::{cases, PeerTarget};
use peerchat_conformance::runner::run_cases;
use peerchat_conformance::{Report, Status, SuiteConfig};

const CLI: &str = env!("CARGO_BIN_EXE_peerchat-cli");

/// The cases that need the client's short §3.6 timers (`--test-idle-ms`): they skip
/// without `test-hooks`.
const SHORT_TIMER_CASES: &[&str] = &[
    "peer.l40.idle-ping",
    "peer.l41.second-ping-then-timeout",
    "peer.l3.empty-record-not-activity",
    "peer.l43.any-frame-restarts-idle",
];

/// Short §3.6 timers for the idle cases (`--test-idle-ms`, feature `test-hooks`).
const IDLE: (Duration, Duration) = (Duration::from_millis(1000), Duration::from_millis(3000));

async fn server(dir: &std::path::Path) -> peerchat_server::RunningServer {
    let mut cfg = peerchat_server::Config::for_tests(dir.join("server"));
    cfg.identity = Some(peerchat_proto::test_keys::identity(15));
    peerchat_server::start(cfg).await.expect("server")
}

fn target(dir: &std::path::Path, args: &[String]) -> PeerTarget {
    let mut t = PeerTarget::new(CLI);
    t.args = args.to_vec();
    t.work_dir = dir.to_path_buf();
    if cfg!(feature = "test-hooks") {
        t.idle = Some(IDLE);
    }
    t
}

async fn run(addr: std::net::SocketAddr, target: PeerTarget, only: Option<&[&str]>) -> Report {
    let mut cfg = SuiteConfig::new(addr);
    cfg.jobs = 4;
    cfg.peer = Some(Arc::new(target));
    let selected = cases::all()
        .into_iter()
        .filter(|c| only.is_none_or(|ids| ids.contains(&c.id)))
        .collect();
    run_cases(cfg, selected).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peerchat_cli_passes_the_peer_suite() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(tmp.path()).await;
    let report = run(server.local_addr, target(tmp.path(), &[]), None).await;
    server.shutdown().await;
    print!("{}", report.text());
    let bad: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| match o.status {
            Status::Pass => false,
            // Only the timer cases may skip, and only without `test-hooks`.
            // The aes-gcm cases skip on a CPU without AES (SPEC.md §3.2.1 rule 1).
            Status::Skip if o.id.starts_with("peer.l12.aes-gcm") => {
                peerchat_proto::aes_gcm::hardware_available()
            }
            Status::Skip => {
                cfg!(feature = "test-hooks") || !SHORT_TIMER_CASES.contains(&o.id.as_str())
            }
            Status::Fail => true,
            // A case marked with the audit row of a known client defect (the report lists
            // them as XFAIL lines, each naming its row).
            Status::XFail => false,
        })
        .map(|o| o.line())
        .collect();
    let xfail: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::XFail)
        .map(|o| o.line())
        .collect();
    println!("known failures ({}):\n{}", xfail.len(), xfail.join("\n"));
    assert!(
        bad.is_empty(),
        "peer cases that did not pass:\n{}",
        bad.join("\n")
    );
}

/// The test switch of SPEC.md §3.2.1 rule 1: with `PEERCHAT_NO_AES_GCM` in its environment
/// the client names no `aes-gcm`, so the switch cases skip (nothing to switch) and a link
/// with an AES-capable friend stays ChaChaPoly and works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_aes_gcm_the_client_stays_on_chachapoly() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(tmp.path()).await;
    let mut t = target(tmp.path(), &["PEERCHAT_NO_AES_GCM=1".into(), CLI.into()]);
    t.program = "env".into();
    let ids = [
        "peer.l12.aes-gcm-friend-dials",
        "peer.l12.aes-gcm-client-dials",
        "peer.l12.v1-friend-keeps-chachapoly",
    ];
    let report = run(server.local_addr, t, Some(&ids)).await;
    server.shutdown().await;
    print!("{}", report.text());
    assert_eq!(report.outcomes.len(), ids.len());
    for o in &report.outcomes {
        let want_pass = o.id == "peer.l12.v1-friend-keeps-chachapoly";
        let ok = if want_pass {
            matches!(o.status, Status::Pass)
        } else {
            matches!(o.status, Status::Skip)
        };
        assert!(ok, "unexpected: {}", o.line());
    }
}

/// (fault, cases that must fail against it).
#[cfg(feature = "test-faults")]
const FAULTS: &[(&str, &[&str])] = &[
    ("no-ack", &["peer.c1.chat-acked-and-shown"]),
    ("no-pong", &["peer.l21.ping-pong"]),
    ("hello-ignores-to", &["peer.l15.hello-wrong-to-userid"]),
    ("no-idle-ping", &["peer.l40.idle-ping"]),
    ("pong-not-activity", &["peer.l43.any-frame-restarts-idle"]),
    ("no-close-normal", &["peer.l53.quit-closes-normal"]),
];

#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_client_fault_is_caught() {
    assert_eq!(
        FAULTS.len(),
        peerchat_client::faults::ALL.len(),
        "every fault has its case"
    );
    let tmp = tempfile::tempdir().unwrap();
    let server = server(tmp.path()).await;
    let mut missed = Vec::new();
    for (fault, expect_fail) in FAULTS {
        let args = vec!["--test-fault".to_string(), (*fault).to_string()];
        let report = run(
            server.local_addr,
            target(tmp.path(), &args),
            Some(expect_fail),
        )
        .await;
        assert_eq!(
            report.outcomes.len(),
            expect_fail.len(),
            "unknown case in {expect_fail:?}"
        );
        for o in &report.outcomes {
            println!("[{fault}] {}", o.line());
            if o.status != Status::Fail {
                missed.push(format!("{fault}: {} did not fail ({})", o.id, o.reason));
            }
        }
    }
    server.shutdown().await;
    assert!(
        missed.is_empty(),
        "faults not caught:\n{}",
        missed.join("\n")
    );
}
