//! Drives `peerchat-cli --json` processes against a real server: register, login, friends,
//! one-shot send-message and send-file, and two interactive `chat` sessions talking.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const CLI: &str = env!("CARGO_BIN_EXE_peerchat-cli");
const PASSWORD: &str = "correct horse battery";

fn profile(root: &Path, name: &str, key: usize) -> PathBuf {
    let p = root.join(name);
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("identity.pem"), peerchat_proto::test_keys::pem(key)).unwrap();
    p
}

fn base(server: &str, profile: &Path) -> Command {
    let mut c = Command::new(CLI);
    c.args([
        "--server",
        server,
        "--json",
        "--peer-listen",
        "127.0.0.1:0",
        "--profile",
    ])
    .arg(profile);
    c.env("PEERCHAT_PASSWORD", PASSWORD);
    c
}

/// Runs a one-shot command; returns its JSON lines (and asserts success).
fn run(server: &str, profile: &Path, args: &[&str]) -> Vec<Value> {
    let out = base(server, profile).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn has(lines: &[Value], event: &str) -> bool {
    lines.iter().any(|v| v["event"] == event)
}

/// A server and two registered, logged-in profiles that are friends: alice (fixed test key
/// `keys.0`) and bob (`keys.1`).
fn befriended(
    root: &Path,
    rt: &tokio::runtime::Runtime,
    keys: (usize, usize),
) -> (peerchat_server::RunningServer, String, PathBuf, PathBuf) {
    let server = rt
        .block_on(peerchat_server::start(peerchat_server::Config::for_tests(
            root.join("server"),
        )))
        .unwrap();
    let addr = server.local_addr.to_string();
    let pa = profile(root, "alice", keys.0);
    let pb = profile(root, "bob", keys.1);
    run(&addr, &pa, &["register", "alice", "alice@example.org"]);
    run(&addr, &pb, &["register", "bob", "bob@example.org"]);
    run(&addr, &pa, &["login", "alice"]);
    run(&addr, &pb, &["login", "bob"]);
    run(&addr, &pa, &["add", "bob"]);
    run(&addr, &pb, &["accept", "alice"]);
    (server, addr, pa, pb)
}

/// An interactive `chat` process whose stdout lines arrive on a channel.
struct Interactive {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
}

impl Interactive {
    fn start(server: &str, profile: &Path) -> Self {
        let mut child = base(server, profile)
            .arg("chat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
        }
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => continue,
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    fn quit(mut self) {
        self.say("/quit");
        let status = self.child.wait().unwrap();
        assert!(status.success());
    }
}

#[test]
fn cli_processes_register_befriend_chat_and_send_files() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(peerchat_server::start(peerchat_server::Config::for_tests(
            tmp.path().join("server"),
        )))
        .unwrap();
    let addr = server.local_addr.to_string();
    let pa = profile(tmp.path(), "alice", 0);
    let pb = profile(tmp.path(), "bob", 1);

    let reg = run(&addr, &pa, &["register", "alice", "alice@example.org"]);
    let code = reg
        .iter()
        .find(|v| v["event"] == "registered")
        .expect("registered");
    assert_eq!(code["recovery_code"].as_str().map(str::len), Some(23));
    run(&addr, &pb, &["register", "bob", "bob@example.org"]);
    assert!(has(&run(&addr, &pa, &["login", "alice"]), "logged_in"));
    assert!(
        has(&run(&addr, &pb, &["login"]), "logged_in"),
        "userid from the profile"
    );

    let found = run(&addr, &pa, &["find", "BOB"]);
    assert!(found
        .iter()
        .any(|v| v["event"] == "find_result" && v["found"] == true && v["userid"] == "bob"));
    assert!(has(
        &run(&addr, &pa, &["add", "bob"]),
        "friend_request_sent"
    ));
    assert!(has(&run(&addr, &pb, &["accept", "alice"]), "ok"));
    let friends = run(&addr, &pa, &["friends"]);
    let f = friends.iter().find(|v| v["event"] == "friends").unwrap();
    assert_eq!(f["friends"][0]["userid"], "bob");

    // Bob runs interactively; alice sends one-shot.
    let bob = Interactive::start(&addr, &pb);
    bob.wait_for("bob logged in", |v| v["event"] == "logged_in");
    let sent = run(&addr, &pa, &["send-message", "bob", "hello from a script"]);
    assert!(sent
        .iter()
        .any(|v| v["event"] == "message_sent" && v["delivered"] == true));
    bob.wait_for("message", |v| {
        v["event"] == "message_received"
            && v["text"] == "hello from a script"
            && v["friend"] == "alice"
    });

    let src = tmp.path().join("notes.txt");
    std::fs::write(&src, b"some file content\n".repeat(10_000)).unwrap();
    let sent = run(&addr, &pa, &["send-file", "bob", src.to_str().unwrap()]);
    assert!(sent
        .iter()
        .any(|v| v["event"] == "transfer_complete" && v["direction"] == "outgoing"));
    let done = bob.wait_for("file", |v| {
        v["event"] == "transfer_complete" && v["direction"] == "incoming"
    });
    let path = PathBuf::from(done["path"].as_str().unwrap());
    assert_eq!(path, pb.join("downloads").join("alice").join("notes.txt"));
    assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&src).unwrap());

    // Both interactive: lines in, events out.
    let mut alice = Interactive::start(&addr, &pa);
    alice.wait_for("alice logged in", |v| v["event"] == "logged_in");
    let mut bob = bob;
    bob.say("/msg alice hi back from chat mode");
    alice.wait_for("reply", |v| {
        v["event"] == "message_received" && v["text"] == "hi back from chat mode"
    });
    bob.wait_for("ack", |v| v["event"] == "message_acked");
    alice.say("/frobnicate");
    alice.wait_for("error record", |v| v["event"] == "command_failed");
    alice.say("/history bob");
    let h = alice.wait_for("history", |v| v["event"] == "history");
    let texts: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, vec!["hello from a script", "hi back from chat mode"]);

    // /chat FRIEND: plain lines go to the friend.
    alice.say("/chat bob");
    alice.wait_for("chat target", |v| {
        v["event"] == "chat_target" && v["friend"] == "bob"
    });
    alice.say("a plain line");
    bob.wait_for("the plain line", |v| {
        v["event"] == "message_received" && v["text"] == "a plain line"
    });
    // bob is online: "sent" (or "connecting" if the link is being replaced just then),
    // never "queued".
    let sent = alice.wait_for("message_sent", |v| v["event"] == "message_sent");
    assert!(
        sent["status"] == "sent" || sent["status"] == "connecting",
        "{sent}"
    );

    // One-shot commands on bob's profile are carried out by his running session (its
    // control socket) instead of a second client that would replace it.
    let h = run(&addr, &pb, &["history", "alice", "--limit", "10"]);
    assert!(h.iter().any(|v| v["event"] == "history"
        && v["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["text"] == "a plain line"))));
    let sent = run(
        &addr,
        &pb,
        &["send-message", "alice", "through the session"],
    );
    assert!(has(&sent, "message_sent"));
    alice.wait_for("the forwarded message", |v| {
        v["event"] == "message_received" && v["text"] == "through the session"
    });
    let login = base(&addr, &pb).arg("login").output().unwrap();
    assert!(!login.status.success());
    assert!(
        String::from_utf8_lossy(&login.stdout).contains("session is running"),
        "{}",
        String::from_utf8_lossy(&login.stdout)
    );
    // bob's session is still logged in and linked.
    bob.say("/msg alice still here");
    alice.wait_for("bob still here", |v| {
        v["event"] == "message_received" && v["text"] == "still here"
    });
    alice.quit();
    bob.quit();
    assert!(
        !pb.join("cli.sock").exists(),
        "the session removes its socket"
    );

    // History is local: readable with the server gone.
    rt.block_on(server.shutdown());
    let h = run(&addr, &pb, &["history", "alice"]);
    assert!(h
        .iter()
        .any(|v| v["event"] == "history" && v["messages"].as_array().map(Vec::len) == Some(5)));
}

fn fingerprint(n: usize) -> String {
    peerchat_proto::test_keys::identity(n)
        .public()
        .fingerprint()
        .to_string()
}

/// A friend's key change (SPEC.md §12.4) as a script sees it: the `friend_key_changed` JSON
/// event with both fingerprints, a held message, and `trust-key` naming the presented
/// fingerprint (a wrong one is refused) releasing it.
#[test]
fn cli_reports_a_key_change_and_trust_key_releases_held_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (server, addr, pa, _pb) = befriended(tmp.path(), &rt, (0, 1));
    // alice's client sees (and pins) bob's key: the first key is trusted on first use.
    run(&addr, &pa, &["friends"]);

    // bob's password, another identity key.
    let new_device = profile(tmp.path(), "bob-new-device", 9);
    run(&addr, &new_device, &["login", "bob"]);

    let mut alice = Interactive::start(&addr, &pa);
    let e = alice.wait_for("friend_key_changed", |v| v["event"] == "friend_key_changed");
    assert_eq!(e["friend"], "bob");
    assert_eq!(e["pinned"], fingerprint(1).as_str());
    assert_eq!(e["presented"], fingerprint(9).as_str());
    alice.say("/msg bob held until trusted");
    alice.wait_for("queued", |v| v["event"] == "message_sent");
    alice.quit();

    // Naming another fingerprint is refused; the presented one is accepted.
    let wrong = base(&addr, &pa)
        .args(["trust-key", "bob", &fingerprint(1)])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let ok = run(&addr, &pa, &["trust-key", "bob", &fingerprint(9)]);
    assert!(ok
        .iter()
        .any(|v| v["event"] == "ok" && v["command"] == "trust-key"));

    let bob = Interactive::start(&addr, &new_device);
    bob.wait_for("new device logged in", |v| v["event"] == "logged_in");
    let alice = Interactive::start(&addr, &pa);
    bob.wait_for("the held message", |v| {
        v["event"] == "message_received" && v["text"] == "held until trusted"
    });
    alice.wait_for("ack", |v| v["event"] == "message_acked");
    alice.quit();
    bob.quit();
    rt.block_on(server.shutdown());
}

/// The line editor on a real terminal (a pty from util-linux `script`): a message that
/// arrives while bob is typing prints above the prompt, and the half-typed line is drawn
/// again after it, untouched (issue #15: events printed into what was being typed).
#[test]
fn incoming_lines_print_above_the_prompt_and_keep_the_typed_text() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (server, addr, pa, pb) = befriended(tmp.path(), &rt, (0, 1));

    // Human output (no --json) on a pty.
    let cmd = format!(
        "{CLI} --server {addr} --peer-listen 127.0.0.1:0 --profile {} chat",
        pb.display()
    );
    let mut child = KillOnDrop(
        Command::new("script")
            .args(["-qfec", &cmd, "/dev/null"])
            .env("PEERCHAT_PASSWORD", PASSWORD)
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut keys = child.0.stdin.take().unwrap();
    let mut out = child.0.stdout.take().unwrap();
    let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let wait_for = |what: &str, pred: &dyn Fn(&str) -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !pred(&screen.lock().unwrap()) {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{}",
                screen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let type_keys = |keys: &mut std::process::ChildStdin, s: &str| {
        keys.write_all(s.as_bytes()).unwrap();
        keys.flush().unwrap();
    };
    wait_for("the login", &|s| s.contains("logged in as bob"));
    type_keys(&mut keys, "/chat alice\r");
    wait_for("the chat prompt", &|s| s.contains("alice> "));
    type_keys(&mut keys, "half typed");
    wait_for("the echo", &|s| s.contains("half typed"));

    let sent = run(&addr, &pa, &["send-message", "bob", "ping from alice"]);
    assert!(has(&sent, "message_sent"));
    // The message line, then the prompt and the typed text drawn again below it.
    wait_for("the message above the prompt", &|s| {
        s.find("<alice> ping from alice")
            .is_some_and(|at| s[at..].contains("alice> half typed"))
    });
    let s = screen.lock().unwrap().clone();
    assert!(
        !s.contains("half typed<alice>") && !s.contains("half typed["),
        "the event was printed into the typed text:\n{s}"
    );
    // Enter and /quit in one burst: what is typed ahead is kept for the next prompt.
    type_keys(&mut keys, "\r/quit\r");
    // "delivered" alone when the acknowledgement is printed before the send's own line.
    wait_for("the send reported", &|s| {
        s.contains("queued until alice is reachable")
            || s.contains("sent to alice")
            || s.contains("sending to alice")
            || s.contains("delivered to alice")
    });
    // `script` ends when its input does.
    drop(keys);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "chat did not end after /quit; screen:\n{}",
                screen.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    // The finished line was sent to alice (plain text in a chat).
    let h = run(&addr, &pb, &["history", "alice"]);
    assert!(h.iter().any(|v| v["event"] == "history"
        && v["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["text"] == "half typed"))));
    rt.block_on(server.shutdown());
}

/// Ends `script` (and so the chat under its pty) when a test fails half-way.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `forgot-password`: the recovery code from registration and a new password (both from
/// the environment here) reset the password; the new one logs in and a new code is shown.
#[test]
fn forgot_password_resets_with_the_recovery_code() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(peerchat_server::start(peerchat_server::Config::for_tests(
            tmp.path().join("server"),
        )))
        .unwrap();
    let addr = server.local_addr.to_string();
    let pa = profile(tmp.path(), "alice", 0);
    let reg = run(&addr, &pa, &["register", "alice", "alice@example.org"]);
    let code = reg
        .iter()
        .find_map(|v| v["recovery_code"].as_str())
        .unwrap()
        .to_owned();
    let new_password = "a brand new passphrase";
    let out = base(&addr, &pa)
        .args(["forgot-password", "alice", "ALICE@example.org"])
        .env("PEERCHAT_RECOVERY_CODE", &code)
        .env("PEERCHAT_PASSWORD", new_password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reset: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "password_reset")
        .expect("password_reset");
    assert_ne!(reset["recovery_code"].as_str(), Some(code.as_str()));
    let login = base(&addr, &pa)
        .args(["login", "alice"])
        .env("PEERCHAT_PASSWORD", new_password)
        .output()
        .unwrap();
    assert!(login.status.success());
    rt.block_on(server.shutdown());
}

/// `change-password`: the current password (from PEERCHAT_PASSWORD here, a prompt without
/// echo on a terminal) and the new one (PEERCHAT_NEW_PASSWORD) change the account's password:
/// a wrong current one is refused, then the old password no longer logs in and the new one
/// does.
#[test]
fn change_password_needs_the_current_one_and_replaces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(peerchat_server::start(peerchat_server::Config::for_tests(
            tmp.path().join("server"),
        )))
        .unwrap();
    let addr = server.local_addr.to_string();
    let pa = profile(tmp.path(), "carol", 2);
    run(&addr, &pa, &["register", "carol", "carol@example.org"]);
    run(&addr, &pa, &["login", "carol"]);
    let new_password = "a fresh long passphrase";
    let wrong = base(&addr, &pa)
        .arg("change-password")
        .env("PEERCHAT_PASSWORD", "not the password at all")
        .env("PEERCHAT_NEW_PASSWORD", new_password)
        .output()
        .unwrap();
    assert!(
        !wrong.status.success(),
        "a wrong current password is refused"
    );
    let no_new = base(&addr, &pa).arg("change-password").output().unwrap();
    assert!(
        !no_new.status.success(),
        "without PEERCHAT_NEW_PASSWORD and no terminal to prompt on, nothing changes"
    );
    let out = base(&addr, &pa)
        .arg("change-password")
        .env("PEERCHAT_NEW_PASSWORD", new_password)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let record: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "password_changed")
        .expect("password_changed");
    assert_eq!(record["userid"], "carol");
    let old = base(&addr, &pa).args(["login", "carol"]).output().unwrap();
    assert!(!old.status.success(), "the old password no longer logs in");
    let new = base(&addr, &pa)
        .args(["login", "carol"])
        .env("PEERCHAT_PASSWORD", new_password)
        .output()
        .unwrap();
    assert!(new.status.success(), "the new password logs in");
    rt.block_on(server.shutdown());
}

/// Killed (SIGKILL) right after a message's acknowledgement, before or after its delivered
/// mark reached the disk (marks wait up to `MARKS_DELAY` to ride with a later write, issue
/// #14): whichever it was, after a restart the friend has shown the message once, the
/// sender's history holds it once, and it is marked delivered (SPEC.md §8.1 r3, r7: a lost
/// mark means the message is sent again and acknowledged without being shown twice).
#[test]
fn a_sender_killed_right_after_an_ack_shows_the_message_once_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (server, addr, pa, pb) = befriended(tmp.path(), &rt, (2, 3));

    let bob = Interactive::start(&addr, &pb);
    bob.wait_for("bob logged in", |v| v["event"] == "logged_in");
    let mut alice = Interactive::start(&addr, &pa);
    alice.wait_for("alice logged in", |v| v["event"] == "logged_in");
    alice.say("/msg bob killed after the ack");
    alice.wait_for("ack", |v| v["event"] == "message_acked");
    let mut crashed = alice.child;
    crashed.kill().unwrap();
    crashed.wait().unwrap();

    let mut alice = Interactive::start(&addr, &pa);
    alice.wait_for("alice logged in again", |v| v["event"] == "logged_in");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mine = loop {
        alice.say("/history bob");
        let h = alice.wait_for("history", |v| v["event"] == "history");
        let mine: Vec<Value> = h["messages"].as_array().unwrap().clone();
        if mine.iter().all(|m| m["acked"] == true) {
            break mine;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never marked delivered: {mine:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(mine.len(), 1, "{mine:?}");
    // A re-sent copy, if any, has been acknowledged by now: bob showed the message once.
    alice.quit();
    let shown: Vec<Value> = bob.lines.try_iter().collect();
    let received = shown
        .iter()
        .filter(|v| v["event"] == "message_received")
        .count();
    assert_eq!(received, 1, "{shown:?}");
    let mut bob = bob;
    bob.say("/history alice");
    let h = bob.wait_for("bob's history", |v| v["event"] == "history");
    assert_eq!(h["messages"].as_array().map(Vec::len), Some(1), "{h}");
    bob.quit();
    rt.block_on(server.shutdown());
}
