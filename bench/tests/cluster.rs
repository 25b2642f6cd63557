//! Smoke test of scenario 5 (cluster): at a tiny size it completes and produces sane numbers,
//! or, without PostgreSQL installed, skips every row with a reason.
//!
//! Black-box, like `smoke.rs`: runs the real binary and reads its `--json` output. No
//! wall-clock thresholds.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: a debug build on a busy 2-core machine (PostgreSQL's initdb included).
const LIMIT: Duration = Duration::from_secs(300);

#[test]
fn cluster_scenario_completes_at_a_tiny_size() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("out.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerchat-bench"))
        .args([
            "--scenarios",
            "5",
            "--cluster-sessions",
            "12",
            "--cluster-friends",
            "6",
            "--cluster-rounds",
            "2",
            "--cluster-password-logins",
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
    let rows = report["rows"].as_array().expect("rows");
    assert!(
        rows.iter().any(|r| r["scenario"] == "5 cluster"),
        "no cluster row: {report:#}"
    );
    for r in rows {
        let Some(v) = r["value"].as_f64() else {
            let note = r["note"].as_str().unwrap_or("");
            assert!(
                note.contains("PostgreSQL"),
                "skipped without PostgreSQL's reason: {r}"
            );
            continue;
        };
        // Process CPU comes from /proc in clock ticks (10 ms): at this tiny size a few
        // presence rounds can take no tick at all, so a CPU figure may honestly be 0.
        let cpu = r["metric"].as_str().is_some_and(|m| m.contains("CPU"));
        let sane = |x: f64| x.is_finite() && (x > 0.0 || (cpu && x == 0.0));
        assert!(sane(v), "insane value in {r}");
        let b = r["baseline"]
            .as_f64()
            .expect("every cluster row has the one-node baseline");
        assert!(sane(b), "insane baseline in {r}");
    }
}
