//! Processes the lab runs inside its namespaces: killed when their guard drops.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A child process killed (SIGKILL) and reaped when dropped, so a failing test leaves none.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One JSON line and when the test read it.
#[derive(Debug, Clone)]
pub struct Stamped {
    /// When the reader thread got the line.
    pub at: Instant,
    /// The line.
    pub value: Value,
}

/// A `peerchat-cli --json … chat` process: command lines in, JSON events out.
pub struct ChatProc {
    /// Who it is (for messages).
    pub name: String,
    /// Its stderr (the client's log), shown when a wait fails.
    pub log: PathBuf,
    stdin: ChildStdin,
    events: mpsc::Receiver<Stamped>,
    /// Every event read so far.
    pub seen: Vec<Stamped>,
    proc: Proc,
}

impl ChatProc {
    /// Spawns `cmd` (already holding every argument up to `chat`) with piped stdio.
    pub fn spawn(mut cmd: Command, name: &str, log: &Path) -> ChatProc {
        let err =
            std::fs::File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}'s peerchat-cli: {e}"));
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            panic!("piped stdio missing");
        };
        let (tx, events) = mpsc::channel();
        let verbose = std::env::var_os("PEERCHAT_NAT_LAB_VERBOSE").is_some();
        let who = name.to_owned();
        // Every stdout line also goes to `<log>.events`, kept with the logs when a run fails.
        let mut copy = std::fs::File::create(log.with_extension("events")).ok();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if verbose {
                    eprintln!("[{who}] {line}");
                }
                if let Some(f) = copy.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let s = Stamped {
                        at: Instant::now(),
                        value,
                    };
                    if tx.send(s).is_err() {
                        break;
                    }
                }
            }
        });
        ChatProc {
            name: name.to_owned(),
            log: log.to_owned(),
            stdin,
            events,
            seen: Vec::new(),
            proc: Proc(child),
        }
    }

    /// Types one command line (`/msg bob hi`); returns when it was written.
    pub fn say(&mut self, line: &str) -> Instant {
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("{}: writing {line:?}: {e}", self.name));
        Instant::now()
    }

    /// The first event still to come (not among those seen) that matches `pred`: for an
    /// event that repeats, like `message_acked`. Panics as [`ChatProc::wait_for`] does.
    pub fn wait_for_next(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Stamped {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(s) => {
                    self.seen.push(s.clone());
                    if pred(&s.value) {
                        return s;
                    }
                }
                // Panics with every event seen and the log tail.
                Err(_) => return self.wait_for(what, Duration::ZERO, |_| false),
            }
        }
    }

    /// The first event, among those seen and those to come, that matches `pred`; panics
    /// with every event seen and the client's log after `timeout`.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Stamped {
        if let Some(s) = self.seen.iter().find(|s| pred(&s.value)) {
            return s.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(s) => {
                    self.seen.push(s.clone());
                    if pred(&s.value) {
                        return s;
                    }
                }
                Err(_) => {
                    let exited = self.proc.0.try_wait().ok().flatten();
                    let events: Vec<String> =
                        self.seen.iter().map(|s| s.value.to_string()).collect();
                    let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                    let tail: String = log
                        .lines()
                        .rev()
                        .take(40)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n");
                    panic!(
                        "{}: no {what} within {timeout:?} (process {}); events:\n{}\nlog tail:\n{tail}",
                        self.name,
                        exited.map_or("running".to_owned(), |s| s.to_string()),
                        events.join("\n")
                    );
                }
            }
        }
    }

    /// `/quit`, then waits up to 10 s for the process to end (it is killed otherwise).
    pub fn quit(mut self) {
        let _ = writeln!(self.stdin, "/quit").and_then(|()| self.stdin.flush());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.proc.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs a one-shot `peerchat-cli --json` command; returns its JSON lines, panics on failure.
pub fn run_json(mut cmd: Command, what: &str) -> Vec<Value> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
