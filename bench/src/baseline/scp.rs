//! `scp` against a private `sshd` that the benchmark starts on loopback: the SSH baseline of
//! scenario 1 (issue 14), whether or not the machine runs an SSH server of its own.
//!
//! The daemon gets its own host key, client key, `authorized_keys` and configuration in a
//! temporary directory, listens on 127.0.0.1 at a free port, and is killed when the
//! [`PrivateSshd`] is dropped. It needs `/usr/sbin/sshd` (package openssh-server) and,
//! because sshd insists on it, its privilege-separation directory `/run/sshd`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The SSH ciphers the baseline is measured with.
pub const CIPHERS: [(&str, &str); 2] = [
    ("aes128-gcm", "aes128-gcm@openssh.com"),
    ("chacha20", "chacha20-poly1305@openssh.com"),
];

const SSHD: &str = "/usr/sbin/sshd";

/// A private SSH server on loopback; stopped on drop.
pub struct PrivateSshd {
    child: Child,
    port: u16,
    key: PathBuf,
    _dir: tempfile::TempDir,
}

fn keygen(path: &Path) -> Result<(), String> {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("ssh-keygen: {e}"))?;
    if ok.success() {
        Ok(())
    } else {
        Err(format!("ssh-keygen exited with {ok}"))
    }
}

impl PrivateSshd {
    /// Starts the daemon, or says why it cannot run here.
    ///
    /// # Errors
    /// A readable reason (no sshd binary, no ssh-keygen, the daemon did not come up).
    pub fn start(work: &Path) -> Result<Self, String> {
        if !Path::new(SSHD).exists() {
            return Err(format!("{SSHD} not installed (package openssh-server)"));
        }
        std::fs::create_dir_all("/run/sshd").map_err(|e| format!("sshd needs /run/sshd: {e}"))?;
        let dir = tempfile::Builder::new()
            .prefix("sshd-")
            .tempdir_in(work)
            .map_err(|e| e.to_string())?;
        let d = dir.path();
        keygen(&d.join("host"))?;
        keygen(&d.join("id"))?;
        std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {pid}\n\
             AuthorizedKeysFile {auth}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             Subsystem sftp internal-sftp\n",
            host = d.join("host").display(),
            pid = d.join("sshd.pid").display(),
            auth = d.join("authorized_keys").display(),
        );
        std::fs::write(d.join("sshd_config"), config).map_err(|e| e.to_string())?;
        let log = File::create(d.join("sshd.log")).map_err(|e| e.to_string())?;
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{SSHD}: {e}"))?;
        let sshd = Self {
            child,
            port,
            key: d.join("id"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let ok = sshd
                .ssh_command("ssh", "-p")
                .args(["-o", "ConnectTimeout=2", "127.0.0.1", "true"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(sshd);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("the private sshd did not accept a key login within 10 s".into())
    }

    fn ssh_command(&self, program: &str, port_flag: &str) -> Command {
        let mut c = Command::new(program);
        c.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
            "-i",
        ])
        .arg(&self.key)
        .args([port_flag, &self.port.to_string()])
        .stdin(Stdio::null());
        c
    }

    /// Copies `src` to `dst` with scp and `cipher`, then `fsync`s `dst` (so that it is
    /// compared with a transfer that ends with a synced file); returns the wall time and
    /// what each end used.
    ///
    /// The sending end is `scp` with the `ssh` it runs (CPU from `wait4` of `scp`, peak RSS
    /// sampled: see [`super::PeakSampler`]); the receiving end
    /// is whatever the private sshd forked for this connection (its privilege-separated
    /// children and `scp -t`): their CPU is the growth of the daemon's children's time,
    /// read once sshd has reaped them, their peak RSS is sampled while they run. Both ends
    /// include the SSH key exchange and authentication (~0.1 s of a 2 GiB copy); the fsync
    /// itself runs in the measuring process and counts for neither.
    ///
    /// # Errors
    /// scp failed.
    pub fn copy(&self, src: &Path, dst: &Path, cipher: &str) -> anyhow::Result<super::PeerRun> {
        let sshd = self.child.id();
        let before = crate::procfs::cpu_time_with_children(sshd)?;
        let peak = super::PeakSampler::start(sshd);
        let t0 = Instant::now();
        let child = self
            .ssh_command("scp", "-P")
            .args(["-q", "-c", cipher])
            .arg(src)
            .arg(format!("127.0.0.1:{}", dst.display()))
            .spawn();
        let waited = child.and_then(|c| {
            let sender_peak = super::PeakSampler::start_tree(c.id());
            let (status, used) = crate::procfs::wait_with_usage(&c)?;
            Ok((status, sender_peak.into_usage(used)))
        });
        let receiver_peak = peak.finish();
        let (status, sender) = waited?;
        anyhow::ensure!(status.success(), "scp exited with {status}");
        File::open(dst)?.sync_all()?;
        let wall = t0.elapsed();
        // sshd reaps the connection's processes a moment after scp sees the end.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !crate::procfs::descendants(sshd).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let after = crate::procfs::cpu_time_with_children(sshd)?;
        Ok(super::PeerRun {
            wall,
            sender,
            receiver: crate::procfs::Usage {
                cpu: after.saturating_sub(before),
                peak_rss: receiver_peak,
            },
            middle_cpu: Duration::ZERO,
        })
    }
}

impl Drop for PrivateSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
