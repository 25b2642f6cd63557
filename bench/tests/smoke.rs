//! Smoke test: every scenario at a tiny size completes and produces sane numbers.
//!
//! Black-box: runs the real binary (which re-executes itself for the server, the client
//! cores and the plain-TCP server) and reads its `--json` output. No wall-clock thresholds:
//! figures only have to be finite and positive.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: a debug build on a busy 2-core machine.
const LIMIT: Duration = Duration::from_secs(900);

#[test]
fn all_scenarios_complete_at_tiny_sizes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("out.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerchat-bench"))
        .args([
            "--file-size",
            "4MiB",
            "--messages",
            "1000",
            "--clients",
            "50",
            "--fanout-friends",
            "20",
            "--fanout-rounds",
            "3",
            "--rate-seconds",
            "0.3",
            "--rate-conns",
            "2",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--work-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .spawn()
        .expect("benchmark starts");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("benchmark did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "benchmark failed: {status}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid json");
    assert_eq!(
        report["failures"].as_array().map(Vec::len),
        Some(0),
        "{report:#}"
    );
    assert!(report["machine"]["nproc"].as_u64().unwrap_or(0) >= 1);
    let rows = report["rows"].as_array().expect("rows");
    for scenario in ["1 file", "2 chat", "3 scale", "4 rates"] {
        assert!(
            rows.iter().any(|r| r["scenario"] == scenario),
            "no row for scenario {scenario}"
        );
    }
    for r in rows {
        // Skipped rows (scp without sshd, tmpfs without room) carry a note instead of a value.
        let Some(v) = r["value"].as_f64() else {
            assert!(
                !r["note"].as_str().unwrap_or("").is_empty(),
                "skipped row without a reason: {r}"
            );
            continue;
        };
        assert!(v.is_finite() && v > 0.0, "insane value in {r}");
        if let Some(b) = r["baseline"].as_f64() {
            assert!(b.is_finite() && b > 0.0, "insane baseline in {r}");
            assert!(
                r["ratio"].as_f64().is_some_and(f64::is_finite),
                "no ratio in {r}"
            );
        }
    }
    let metric = |m: &str| {
        rows.iter()
            .any(|r| r["metric"].as_str().is_some_and(|s| s.contains(m)))
    };
    for m in [
        "to disk, throughput",
        "receiver peak RSS",
        "RTT p99",
        "sustained messages/s",
        "server RSS per session",
        "presence fan-out",
        "handshakes/s",
        "password Logins/s",
    ] {
        assert!(metric(m), "missing metric {m}");
    }
}
