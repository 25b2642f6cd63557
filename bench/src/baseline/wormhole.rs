//! magic-wormhole with a local mailbox server and transit relay: the "another encrypted P2P
//! file sender" baseline of scenario 1 (issue 14), run when `wormhole` and `twist` (pip
//! packages magic-wormhole, magic-wormhole-mailbox-server, magic-wormhole-transit-relay) are
//! installed. Nothing leaves loopback: both servers listen on 127.0.0.1 and are killed when
//! the [`LocalWormhole`] is dropped, and both ends run with `--no-listen`, so the bytes go
//! through the local transit relay (wormhole would otherwise offer every local interface
//! address as a direct hint).

use std::fs::File;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::procfs::wait_with_usage;

/// The mailbox and transit relay; stopped on drop.
pub struct LocalWormhole {
    mailbox: Child,
    relay: Child,
    mailbox_port: u16,
    relay_port: u16,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn twist(what: &str, port: u16, dir: &Path) -> Result<Child, String> {
    Command::new("twist")
        .arg(what)
        .arg(format!("--port=tcp:{port}:interface=127.0.0.1"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("twist {what}: {e}"))
}

fn wait_port(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

impl LocalWormhole {
    /// Starts both servers, or says why not.
    ///
    /// # Errors
    /// A readable reason.
    pub fn start(work: &Path) -> Result<Self, String> {
        let ok = Command::new("wormhole")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("wormhole not installed (pip install magic-wormhole)".into());
        }
        let dir = work.join("wormhole");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mailbox_port = free_port().map_err(|e| e.to_string())?;
        let relay_port = free_port().map_err(|e| e.to_string())?;
        let mut mailbox = twist("wormhole-mailbox", mailbox_port, &dir)?;
        let relay = match twist("transitrelay", relay_port, &dir) {
            Ok(r) => r,
            Err(e) => {
                let _ = mailbox.kill();
                let _ = mailbox.wait();
                return Err(e);
            }
        };
        // From here on, dropping `w` stops both.
        let w = Self {
            mailbox,
            relay,
            mailbox_port,
            relay_port,
        };
        if !(wait_port(mailbox_port) && wait_port(relay_port)) {
            return Err("the local wormhole mailbox or transit relay did not start".into());
        }
        Ok(w)
    }

    fn wormhole(&self) -> Command {
        let mut c = Command::new("wormhole");
        c.arg(format!(
            "--relay-url=ws://127.0.0.1:{}/v1",
            self.mailbox_port
        ))
        .arg(format!(
            "--transit-helper=tcp:127.0.0.1:{}",
            self.relay_port
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        c
    }

    /// Sends `src` to `dst` (sender and receiver on this machine), then `fsync`s `dst`;
    /// returns the wall time, code exchange included, what each end used (CPU from `wait4`,
    /// peak RSS sampled: see [`super::PeakSampler`]), and the
    /// CPU the local mailbox and transit relay used meanwhile.
    ///
    /// # Errors
    /// Either side failed.
    pub fn copy(&self, src: &Path, dst: &Path) -> anyhow::Result<super::PeerRun> {
        let code = "7-peerchat-bench";
        let servers = || -> Duration {
            [&self.mailbox, &self.relay]
                .iter()
                .filter_map(|c| crate::procfs::cpu_time(c.id()).ok())
                .sum()
        };
        let servers_before = servers();
        let t0 = Instant::now();
        let mut sender = self
            .wormhole()
            .args(["send", "--no-listen", "--code", code])
            .arg(src)
            .spawn()?;
        let sender_peak = super::PeakSampler::start_tree(sender.id());
        let receiver = match self
            .wormhole()
            .args(["receive", "--no-listen", "--accept-file", "-o"])
            .arg(dst)
            .arg(code)
            .spawn()
        {
            Ok(r) => r,
            Err(e) => {
                // The sender would wait for its receiver for ever.
                let _ = sender.kill();
                let _ = sender.wait();
                return Err(e.into());
            }
        };
        let receiver_peak = super::PeakSampler::start_tree(receiver.id());
        let received = wait_with_usage(&receiver);
        let sent = wait_with_usage(&sender);
        let (status, receiver) = received?;
        let receiver = receiver_peak.into_usage(receiver);
        anyhow::ensure!(status.success(), "wormhole receive exited with {status}");
        let (status, sender) = sent?;
        let sender = sender_peak.into_usage(sender);
        anyhow::ensure!(status.success(), "wormhole send exited with {status}");
        File::open(dst)?.sync_all()?;
        Ok(super::PeerRun {
            wall: t0.elapsed(),
            sender,
            receiver,
            middle_cpu: servers().saturating_sub(servers_before),
        })
    }
}

impl Drop for LocalWormhole {
    fn drop(&mut self) {
        for c in [&mut self.mailbox, &mut self.relay] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
