//! `scp` over localhost: the optional baseline of scenario 1, run only when an SSH server
//! answers on localhost with key authentication that needs no prompt.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SSH_OPTS: [&str; 6] = [
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
];

/// Why scp cannot run here, or `None` if it can.
pub fn unavailable() -> Option<String> {
    let ok = Command::new("ssh")
        .args(SSH_OPTS)
        .args(["-o", "ConnectTimeout=3", "localhost", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success());
    match ok {
        Ok(true) => None,
        Ok(false) => Some("no sshd with key login on localhost".into()),
        Err(_) => Some("no ssh client".into()),
    }
}

/// Copies `src` to `dst` with scp over localhost; returns the wall time.
///
/// # Errors
/// scp failed.
pub fn copy(src: &Path, dst: &Path) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let status = Command::new("scp")
        .args(SSH_OPTS)
        .arg("-q")
        .arg(src)
        .arg(format!("localhost:{}", dst.display()))
        .stdin(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "scp exited with {status}");
    Ok(t0.elapsed())
}
