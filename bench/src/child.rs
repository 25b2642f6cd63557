//! Child processes of this benchmark: the binary re-executes itself with a hidden subcommand
//! (`__server`, `__receiver`, `__tcp-hold`) so that each end's memory is its own and the
//! measuring process does not share an allocator or a runtime with what it measures.
//!
//! The parent talks to a child through lines on its stdin/stdout; closing the child's stdin
//! asks it to finish.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A running child of this binary.
pub struct ChildProc {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl ChildProc {
    /// Starts this binary with `args`; its stderr goes to `stderr_log`.
    ///
    /// # Errors
    /// The executable cannot be found or started.
    pub async fn spawn(args: &[String], stderr_log: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this benchmark's executable")?;
        let log = std::fs::File::create(stderr_log)
            .with_context(|| format!("cannot create {}", stderr_log.display()))?;
        // PEERCHAT_BENCH_SERVER_WRAPPER="heaptrack -o FILE" (split on spaces) runs the server
        // child under that command, to see what each session keeps (docs/PERFORMANCE.md).
        let wrapper = std::env::var("PEERCHAT_BENCH_SERVER_WRAPPER")
            .ok()
            .filter(|_| args.first().is_some_and(|a| a == "__server"));
        let mut command = match wrapper.as_deref().map(str::split_whitespace) {
            Some(mut words) => match words.next() {
                Some(program) => {
                    let mut c = Command::new(program);
                    c.args(words).arg(&exe);
                    c
                }
                None => Command::new(&exe),
            },
            None => Command::new(&exe),
        };
        // A `__peer` child stands for peerchat-cli, which runs on mimalloc; the others for
        // binaries on the system allocator (alloc.rs).
        if args.first().is_some_and(|a| a == "__peer") {
            command.env(crate::alloc::ENV, "mimalloc");
        } else {
            command.env_remove(crate::alloc::ENV);
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start child {args:?}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("child has no stdout")?;
        Ok(Self {
            what: args.first().cloned().unwrap_or_default(),
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
        })
    }

    /// The child's process id (for /proc/<pid>/status).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits up to `limit` for the next line starting with `prefix` and returns the rest of
    /// it. Other lines are ignored.
    ///
    /// # Errors
    /// Time-out, or the child closed its stdout (it died: see its stderr log).
    pub async fn expect(&mut self, prefix: &str, limit: Duration) -> anyhow::Result<String> {
        let what = self.what.clone();
        let wait = async {
            loop {
                match self.stdout.next_line().await? {
                    Some(line) => {
                        if let Some(rest) = line.strip_prefix(prefix) {
                            return Ok(rest.trim().to_owned());
                        }
                    }
                    None => bail!("child {what} exited before printing {prefix:?}"),
                }
            }
        };
        tokio::time::timeout(limit, wait).await.with_context(|| {
            format!(
                "child {} did not print {prefix:?} within {limit:?}",
                self.what
            )
        })?
    }

    /// Sends one line to the child.
    ///
    /// # Errors
    /// The child's stdin is closed.
    pub async fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("child stdin already closed")?;
        stdin.write_all(format!("{line}\n").as_bytes()).await?;
        stdin.flush().await?;
        Ok(())
    }

    /// Closes the child's stdin (its signal to finish) and waits up to `limit` for it to
    /// exit; kills it after that.
    pub async fn finish(mut self, limit: Duration) {
        drop(self.stdin.take());
        if tokio::time::timeout(limit, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// In a child: waits until the parent closes our stdin (or sends a line equal to `word`).
pub async fn wait_for_parent(word: Option<&str>) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if Some(line.trim()) == word {
            return;
        }
    }
}
