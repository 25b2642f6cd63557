//! The `peerchat-server` binary as an operator sees it.

/// Issue #10: `--test-fault accept-any-key-login` let anyone log in as anyone, and the switch
/// shipped in the release binary. Without the `test-faults` feature (every build that does
/// not ask for it, release included) the flag must not exist at all.
#[cfg(not(feature = "test-faults"))]
#[test]
fn release_build_has_no_test_fault_switch() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_peerchat-server"))
        .args(["--test-fault", "accept-any-key-login", "--help"])
        .output()
        .expect("run peerchat-server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the flag was accepted");
    assert!(
        stderr.contains("unexpected argument '--test-fault'"),
        "unexpected error: {stderr}"
    );
}

/// The feature is opt-in: nothing a release build enables by default turns it on.
#[test]
fn test_faults_is_not_a_default_feature() {
    let manifest = include_str!("../Cargo.toml");
    let default = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("default"))
        .unwrap_or("");
    assert!(!default.contains("test-faults"), "{default}");
}
