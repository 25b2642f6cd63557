//! Smoke test of scenario 6 at a tiny size: two real `peerchat-cli` processes send a file,
//! in two rounds interleaved with whichever peers are installed, and the report has sane
//! rows. No timing asserts: figures only have to be finite (CPU figures may be 0 at this
//! size, /proc counts 10 ms ticks).
//!
//! It needs `peerchat-cli` beside the benchmark binary: cargo builds a test's own package's
//! binaries only, so the test builds the CLI into the same target directory when missing.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: a debug build on a busy 2-core machine, several peers per round.
const LIMIT: Duration = Duration::from_secs(900);

/// `peerchat-cli` beside the benchmark binary, built if missing.
fn cli() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_peerchat-bench"));
    let cli = bench.with_file_name("peerchat-cli");
    if cli.is_file() {
        return cli;
    }
    // <target>/<profile>/peerchat-bench
    let profile_dir = bench.parent().expect("binary has a directory");
    let target = profile_dir
        .parent()
        .expect("profile has a target directory");
    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "-p", "peerchat-client", "--bin", "peerchat-cli"])
        .arg("--target-dir")
        .arg(target)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building peerchat-cli failed: {status}");
    assert!(cli.is_file(), "{} still missing", cli.display());
    cli
}

#[test]
fn two_cli_processes_send_a_file_in_rounds() {
    let cli = cli();
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("out.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerchat-bench"))
        .args(["--scenarios", "6", "--file-size", "3MiB", "--rounds", "2"])
        .arg("--cli")
        .arg(&cli)
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
    let rows = report["rows"].as_array().expect("rows");
    let mine: Vec<&serde_json::Value> = rows.iter().filter(|r| r["scenario"] == "6 cli").collect();
    assert!(!mine.is_empty(), "no scenario 6 rows: {report:#}");
    let metric = |m: &str| {
        mine.iter()
            .any(|r| r["metric"].as_str().is_some_and(|s| s.contains(m)))
    };
    // The peers may be missing on this machine (their rows are then skipped, with the
    // reason); Peerchat's own figures are always there.
    for m in [
        "to disk, two peerchat-cli vs",
        "sender peak RSS",
        "receiver peak RSS",
    ] {
        assert!(metric(m), "missing metric {m}: {report:#}");
    }
    for r in &mine {
        let Some(v) = r["value"].as_f64() else {
            assert!(
                !r["note"].as_str().unwrap_or("").is_empty(),
                "skipped row without a reason: {r}"
            );
            continue;
        };
        assert!(v.is_finite() && v >= 0.0, "insane value in {r}");
        if r["unit"] == "GB/s" || r["unit"] == "MiB" {
            assert!(v > 0.0, "a rate or a peak of 0 in {r}");
        }
        if let Some(b) = r["baseline"].as_f64() {
            assert!(b.is_finite() && b >= 0.0, "insane baseline in {r}");
        }
    }
}
