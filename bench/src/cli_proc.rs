//! The real `peerchat-cli` program as a benchmark end (scenario 6): the binary users run,
//! not the client library inside a bench child.
//!
//! Set-up uses the CLI's one-shot commands (`register`, `login`, `add`, `accept`) on a
//! profile folder holding a fixed test identity; each measured end is then one long-lived
//! `peerchat-cli --json chat` process, fed `/send FRIEND PATH` lines on stdin, whose JSON
//! event lines (stdout) say when a transfer is complete. Its CPU time and peak RSS come from
//! `/proc/<pid>`, so each end's figures are that one process's.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// The password of scenario 6's accounts.
const PASSWORD: &str = "bench-cli-password-0123";
/// Longest wait for a one-shot command or an event (a 2 GiB transfer to a slow disk included).
const LIMIT: Duration = Duration::from_secs(600);

/// Where the CLI is: `--cli`, else `peerchat-cli` beside this benchmark's executable (cargo
/// puts both in the same target directory).
pub fn locate(given: Option<&Path>) -> Result<PathBuf, String> {
    let path = match given {
        Some(p) => p.to_owned(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this executable: {e}"))?
            .with_file_name("peerchat-cli"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it (cargo build --release -p peerchat-client --bin \
             peerchat-cli) or pass --cli PATH",
            path.display()
        ))
    }
}

/// One account's profile folder and how to run the CLI on it.
#[derive(Debug, Clone)]
pub struct CliProfile {
    cli: PathBuf,
    server: String,
    /// The profile folder.
    pub dir: PathBuf,
    /// The account.
    pub userid: String,
}

impl CliProfile {
    /// Creates the profile folder with fixed test identity `key`, registers `userid` and
    /// logs in (both with the CLI's own commands).
    ///
    /// # Errors
    /// A command failed (its output is in the error).
    pub async fn register(
        cli: &Path,
        server: &str,
        dir: &Path,
        userid: &str,
        key: usize,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        // A fixed key: generating one takes seconds (and the CLI would ask for nothing).
        std::fs::write(
            dir.join("identity.pem"),
            peerchat_proto::test_keys::pem(key),
        )?;
        let p = Self {
            cli: cli.to_owned(),
            server: server.to_owned(),
            dir: dir.to_owned(),
            userid: userid.to_owned(),
        };
        let email = format!("{userid}@bench.example.org");
        p.one_shot(&["register", userid, &email]).await?;
        p.one_shot(&["login", userid]).await?;
        Ok(p)
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.cli);
        c.arg("--server")
            .arg(&self.server)
            .arg("--profile")
            .arg(&self.dir)
            .arg("--json")
            .env("PEERCHAT_PASSWORD", PASSWORD)
            .env_remove("PEERCHAT_NO_AES_GCM")
            .kill_on_drop(true);
        c
    }

    /// Runs a one-shot command to its end.
    ///
    /// # Errors
    /// It exited with a failure, or did not end within the limit.
    pub async fn one_shot(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = tokio::time::timeout(
            LIMIT,
            self.command()
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output(),
        )
        .await
        .with_context(|| format!("peerchat-cli {args:?} did not finish"))??;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "peerchat-cli {args:?} ({}) exited with {}: {} {}",
                self.userid,
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(stdout)
    }

    /// Starts the long-lived `chat` session that a measured transfer runs in, receiving
    /// into `download_dir`; returns once it has logged in. Its stderr goes to `log`.
    ///
    /// # Errors
    /// It did not start or log in.
    pub async fn session(&self, download_dir: &Path, log: &Path) -> anyhow::Result<CliSession> {
        let mut child = self
            .command()
            .arg("--peer-listen")
            .arg("127.0.0.1:0")
            .arg("--download-dir")
            .arg(download_dir)
            // Accept every offer of the benchmark's size without a prompt.
            .arg("--auto-accept-max")
            .arg(u64::MAX.to_string())
            .arg("--timeout")
            .arg("0")
            .arg("chat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(log)?))
            .spawn()
            .context("cannot start peerchat-cli chat")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        // Read stdout all the time: the CLI prints progress events during a transfer, and a
        // full pipe would stall its event printing (and with it the client it measures).
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        let pid = child.id().context("peerchat-cli exited at once")?;
        let mut s = CliSession {
            child,
            stdin: Some(stdin),
            events,
            pid,
            userid: self.userid.clone(),
        };
        s.wait_event(|e| e["event"] == "logged_in")
            .await
            .with_context(|| format!("{} did not log in (see {})", self.userid, log.display()))?;
        Ok(s)
    }
}

/// Makes two CLI accounts friends with `add` and `accept`.
///
/// # Errors
/// Either command failed.
pub async fn befriend(a: &CliProfile, b: &CliProfile) -> anyhow::Result<()> {
    a.one_shot(&["add", &b.userid]).await?;
    b.one_shot(&["accept", &a.userid]).await?;
    Ok(())
}

/// A running `peerchat-cli --json chat` process.
pub struct CliSession {
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::UnboundedReceiver<serde_json::Value>,
    /// Its process id.
    pub pid: u32,
    /// Its account.
    pub userid: String,
}

impl CliSession {
    /// Types a line into the session.
    ///
    /// # Errors
    /// The process's stdin is closed.
    pub async fn line(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        stdin.write_all(format!("{line}\n").as_bytes()).await?;
        stdin.flush().await?;
        Ok(())
    }

    /// Waits for the next event line that `pred` accepts; a `command_failed` record or a
    /// cancelled transfer ends the wait with an error.
    ///
    /// # Errors
    /// Time-out, the process ended, or a failure line.
    pub async fn wait_event(
        &mut self,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> anyhow::Result<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) if pred(&e) => return Ok(e),
                Ok(Some(e))
                    if e["event"] == "command_failed" || e["event"] == "transfer_cancelled" =>
                {
                    bail!("{}: {e}", self.userid)
                }
                Ok(Some(_)) => {}
                Ok(None) => bail!("{}: peerchat-cli ended", self.userid),
                Err(_) => bail!("{}: no awaited event within {LIMIT:?}", self.userid),
            }
        }
    }

    /// Sends a chat message and waits for its acknowledgement (brings the peer link up).
    ///
    /// # Errors
    /// As [`CliSession::wait_event`].
    pub async fn message(&mut self, friend: &str, text: &str) -> anyhow::Result<()> {
        self.line(&format!("/msg {friend} {text}")).await?;
        self.wait_event(|e| e["event"] == "message_acked").await?;
        Ok(())
    }

    /// Resets the process's VmHWM to its current RSS, so the next reading is this
    /// transfer's peak.
    pub fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5");
    }

    /// Leaves the session (`/quit`, then closed stdin) and waits for the process to end.
    pub async fn stop(mut self) {
        let _ = self.line("/quit").await;
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
