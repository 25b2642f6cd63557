//! A plain `socat` copy over loopback TCP: the "no protocol, no cipher" baseline of scenario 1
//! that issue 14 names, run when `socat` is installed.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procfs::{wait_with_usage, Usage};

/// Why socat cannot run here, or `None` if it can.
pub fn unavailable() -> Option<String> {
    match Command::new("socat")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => None,
        _ => Some("socat not installed".into()),
    }
}

/// Copies `src` to `dst` through a socat listener and a socat sender on 127.0.0.1, then
/// `fsync`s `dst`; returns the wall time from starting the sender until the sync, and what
/// each socat used (CPU from `wait4`, peak RSS sampled: see [`super::PeakSampler`]; the sender's failed connection attempts while the listener
/// comes up are counted in, they cost next to nothing).
///
/// # Errors
/// Either socat failed.
pub fn copy(src: &Path, dst: &Path) -> anyhow::Result<super::PeerRun> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut listener = Command::new("socat")
        .arg("-u")
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr"))
        .arg(format!("OPEN:{},creat,trunc", dst.display()))
        .stdin(Stdio::null())
        .spawn()?;
    let listener_peak = super::PeakSampler::start_tree(listener.id());
    // The listener is up when a connect succeeds; probing would consume its one accept, so
    // the sender retries instead.
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(10);
    let mut sender = Usage::default();
    loop {
        let attempt = Command::new("socat")
            .arg("-u")
            .arg(format!("OPEN:{}", src.display()))
            .arg(format!("TCP:127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let peak = super::PeakSampler::start_tree(attempt.id());
        let (status, used) = wait_with_usage(&attempt)?;
        sender = sender.and(peak.into_usage(used));
        if status.success() {
            break;
        }
        if Instant::now() > deadline {
            let _ = listener.kill();
            let _ = listener.wait();
            anyhow::bail!("socat sender could not connect");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, receiver) = wait_with_usage(&listener)?;
    let receiver = listener_peak.into_usage(receiver);
    anyhow::ensure!(status.success(), "socat listener exited with {status}");
    File::open(dst)?.sync_all()?;
    Ok(super::PeerRun {
        wall: t0.elapsed(),
        sender,
        receiver,
        middle_cpu: Duration::ZERO,
    })
}
