//! The client under test as a process: commands in on stdin, JSON events out on stdout.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::verdict::Verdict;

/// The password every client-under-test account gets (passed in `PEERCHAT_PASSWORD`).
pub const SUT_PASSWORD: &str = "pw-peer-suite-client-under-test";

/// A running `chat` process of the client under test.
pub struct Sut {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Every event seen so far (a case may look back).
    pub seen: Vec<Value>,
}

/// The command line the suite runs: the target's program and arguments, then the suite's.
pub fn command(
    target: &super::PeerTarget,
    server: &str,
    profile: &Path,
    extra: &[String],
) -> Command {
    let mut c = Command::new(&target.program);
    c.args(&target.args)
        .args(extra)
        .args(["--server", server, "--json", "--peer-listen", "127.0.0.1:0"])
        .arg("--profile")
        .arg(profile)
        .env("PEERCHAT_PASSWORD", SUT_PASSWORD)
        .env_remove("PEERCHAT_SERVER")
        .env_remove("PEERCHAT_PROFILE")
        .kill_on_drop(true);
    c
}

/// Runs a one-shot command of the client under test to its end.
///
/// # Errors
/// FAIL if it cannot start or exits with a failure.
pub async fn run_once(mut cmd: Command, what: &str) -> Result<Vec<Value>, Verdict> {
    let out =
        cmd.stdin(Stdio::null()).output().await.map_err(|e| {
            Verdict::Fail(format!("cannot start the client under test ({what}): {e}"))
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(Verdict::Fail(format!(
            "the client under test failed `{what}` ({}): {} {}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

impl Sut {
    /// Starts `cmd` (a `chat` command line) with piped stdin and stdout.
    ///
    /// # Errors
    /// FAIL if the process cannot start.
    pub fn spawn(mut cmd: Command) -> Result<Self, Verdict> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Verdict::Fail(format!("cannot start the client under test: {e}")))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Verdict::Fail("the client's stdout is not piped".into()))?;
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut rd = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = rd.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(Self {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        })
    }

    /// Writes one command line to the client.
    ///
    /// # Errors
    /// FAIL if the client's stdin is closed.
    pub async fn say(&mut self, line: &str) -> Result<(), Verdict> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(Verdict::Fail("the client's stdin is closed".into()));
        };
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        stdin
            .write_all(&bytes)
            .await
            .map_err(|e| Verdict::Fail(format!("cannot write to the client: {e}")))?;
        stdin
            .flush()
            .await
            .map_err(|e| Verdict::Fail(format!("cannot write to the client: {e}")))
    }

    /// Waits for an event satisfying `pred`, looking first at events already seen and not yet
    /// taken.
    ///
    /// # Errors
    /// FAIL naming `what` if none comes within `timeout` or the client exits.
    pub async fn wait_event(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, Verdict> {
        if let Some(pos) = self.seen.iter().position(&pred) {
            return Ok(self.seen.remove(pos));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(v)) if pred(&v) => return Ok(v),
                Ok(Some(v)) => self.seen.push(v),
                Ok(None) => {
                    return Err(Verdict::Fail(format!(
                        "the client exited while the suite waited for {what}"
                    )))
                }
                Err(_) => {
                    return Err(Verdict::Fail(format!(
                        "the client showed no {what} within {timeout:?}"
                    )))
                }
            }
        }
    }

    /// Watches the client's events for `window`; returns the first satisfying `pred`, if any
    /// (used to check that something does NOT happen, after a positive control).
    pub async fn find_within(
        &mut self,
        window: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(pos) = self.seen.iter().position(&pred) {
            return Some(self.seen.remove(pos));
        }
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(v)) = tokio::time::timeout_at(deadline, self.lines.recv()).await {
            if pred(&v) {
                return Some(v);
            }
            self.seen.push(v);
        }
        None
    }

    /// Asks the client to quit and waits a little for it; kills it otherwise.
    pub async fn quit(mut self) {
        let _ = self.say("/quit").await;
        self.stdin = None;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// `pred` for an event named `name`.
pub fn event(name: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == name
}
