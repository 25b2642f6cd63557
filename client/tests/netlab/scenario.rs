//! One pair of the NAT lab: fresh homes, fresh users, real `peerchat-cli --json chat`
//! processes, and what they report; and running many pairs two at a time.
//!
//! The expected path of each pair is not here: `nat_lab.rs` keeps that table in one place
//! and hands it to [`run_all`].

use std::collections::VecDeque;
use std::fmt;
use std::io::Read as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::{Rng as _, RngCore as _};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::process::{run_json, ChatProc};
use super::router::{NatKind, PEER_PORTS};
use super::topology::{Home, Host, Internet};
use super::LabServer;

pub const CLI: &str = env!("CARGO_BIN_EXE_peerchat-cli");
pub const PASSWORD: &str = "correct horse battery";
/// Log-in, presence, first message (which may go through every connection step).
pub const WAIT: Duration = Duration::from_secs(120);
/// A whole file transfer, relayed ones rate-limited by the server included.
pub const FILE_WAIT: Duration = Duration::from_secs(900);

/// Chat messages alice times, one at a time, once the link is open (the matrix only).
pub const RTT_SAMPLES: usize = 9;

/// Which homes alice and bob are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pair {
    /// Alice behind the first kind, bob behind the second, in different homes.
    Kinds(NatKind, NatKind),
    /// Both behind one `restricted` router, on the same LAN.
    SameNat,
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pair::Kinds(a, b) => write!(f, "{a}:{b}"),
            Pair::SameNat => f.write_str("same-nat"),
        }
    }
}

impl std::str::FromStr for Pair {
    type Err = String;
    fn from_str(s: &str) -> Result<Pair, String> {
        if s == "same-nat" {
            return Ok(Pair::SameNat);
        }
        let (a, b) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: want ALICE:BOB or same-nat"))?;
        Ok(Pair::Kinds(a.parse()?, b.parse()?))
    }
}

/// How alice's connection to bob was made (`path` in her `peer_connected` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Direct,
    Reversed,
    Punched,
    Relayed,
}

impl PathKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::Reversed => "reversed",
            PathKind::Punched => "punched",
            PathKind::Relayed => "relayed",
        }
    }
}

/// The random file alice sends, with a marker somewhere inside for the relay-opacity check.
pub struct TestFile {
    pub path: PathBuf,
    pub size: u64,
    sha256: [u8; 32],
    pub marker: [u8; 64],
}

impl TestFile {
    pub fn create(path: &Path, size: u64) -> TestFile {
        let mut rng = rand::thread_rng();
        let mut data = vec![0u8; size as usize];
        rng.fill_bytes(&mut data);
        let mut marker = [0u8; 64];
        marker[..16].copy_from_slice(b"NATLAB-MARKER-<<");
        rng.fill_bytes(&mut marker[16..]);
        let at = ((size as usize) / 3).min(data.len().saturating_sub(64));
        let end = (at + 64).min(data.len());
        data[at..end].copy_from_slice(&marker[..end - at]);
        std::fs::write(path, &data).unwrap();
        TestFile {
            path: path.to_owned(),
            size,
            sha256: Sha256::digest(&data).into(),
            marker,
        }
    }
}

pub fn sha256_file(path: &Path) -> [u8; 32] {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    h.finalize().into()
}

/// The lab shared by every pair of a run: the public network and the server.
pub struct Lab {
    // Field order is drop order: the server process goes before its namespace.
    pub server: LabServer,
    pub internet: Internet,
    pub dir: PathBuf,
    pub next_user: AtomicUsize,
}

impl Lab {
    pub fn start(dir: &Path) -> Lab {
        super::remove_stale_namespaces();
        let internet = Internet::create(&super::run_prefix());
        let server = LabServer::start(&internet, dir);
        Lab {
            server,
            internet,
            dir: dir.to_owned(),
            next_user: AtomicUsize::new(0),
        }
    }
}

/// What one run of a pair is asked to do.
pub struct Plan<'f> {
    pub pair: Pair,
    /// Round-trip delay added by alice's and bob's WAN links.
    pub delays: (Duration, Duration),
    /// The big file alice sends (none in the sweep).
    pub file: Option<&'f TestFile>,
}

/// What one run of a pair found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub label: String,
    pub expected: String,
    pub used: Option<String>,
    /// `attempt` in alice's `peer_connected`, if the client reports it.
    pub attempt: Option<u64>,
    pub first_message: Option<Duration>,
    /// Median time from alice's `/msg` to its `message_acked` over [`RTT_SAMPLES`] messages
    /// sent one after another on the open link: the chat round trip of the path used.
    pub chat_rtt: Option<Duration>,
    pub throughput_mb_s: Option<f64>,
    pub notes: Vec<String>,
    pub failure: Option<String>,
    /// The pair's directory (client logs and events; captures with PEERCHAT_NAT_LAB_PCAP=1).
    pub work: Option<PathBuf>,
    /// The WAN delays the pair ran with.
    pub delays: (Duration, Duration),
}

pub fn profile(dir: &Path, key: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let pem = dir.join("identity.pem");
    std::fs::write(&pem, peerchat_proto::test_keys::pem(key)).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o600)).unwrap();
    dir.to_owned()
}

/// `peerchat-cli --server S --json --peer-listen 0.0.0.0:PORT --profile P` in `host`.
pub fn cli(host: &Host, server: &str, profile: &Path, port: u16) -> Command {
    let mut c = host.ns.command(CLI);
    c.args([
        "--server",
        server,
        "--json",
        "--peer-listen",
        &format!("0.0.0.0:{port}"),
        "--profile",
    ])
    .arg(profile)
    .env("PEERCHAT_PASSWORD", PASSWORD);
    // The client's log (stderr, kept per pair) says which connection steps it tried.
    if std::env::var_os("PEERCHAT_LOG").is_none() {
        c.env("PEERCHAT_LOG", "info");
    }
    c
}

pub fn one_shot(host: &Host, server: &str, profile: &Path, args: &[&str]) -> Vec<Value> {
    let mut c = cli(host, server, profile, 0);
    c.args(args);
    run_json(c, &format!("peerchat-cli {args:?}"))
}

pub fn is(v: &Value, event: &str, fields: &[(&str, &str)]) -> bool {
    v["event"] == event && fields.iter().all(|(k, want)| v[*k].as_str() == Some(*want))
}

/// Searches `hay` for `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, read whole.
pub fn read_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(read_tree(&p));
        } else if let Ok(mut f) = std::fs::File::open(&p) {
            let mut buf = Vec::new();
            if f.read_to_end(&mut buf).is_ok() {
                out.push((p, buf));
            }
        }
    }
    out
}

/// Runs one pair in fresh homes with fresh users; records into `out` as it goes, so a
/// failure (a panic, caught by the caller) still leaves what was measured.
pub fn run_pair(lab: &Lab, plan: &Plan<'_>, out: &mut Outcome) {
    let n = lab.next_user.fetch_add(1, Ordering::Relaxed);
    let server = lab.server.addr.as_str();
    let (da, db) = plan.delays;
    // Locals drop in reverse order: the client processes (declared below) die before
    // `homes` removes their namespaces, also when a wait panics.
    let homes: Vec<Home> = match plan.pair {
        Pair::Kinds(a, b) => vec![lab.internet.home(a, 1, da), lab.internet.home(b, 1, db)],
        Pair::SameNat => vec![lab.internet.home(NatKind::Restricted, 2, da)],
    };
    let (ha, hb) = match plan.pair {
        Pair::Kinds(..) => (&homes[0].hosts[0], &homes[1].hosts[0]),
        Pair::SameNat => (&homes[0].hosts[0], &homes[0].hosts[1]),
    };
    let (alice, bob) = (format!("alice{n}"), format!("bob{n}"));
    let work = lab.dir.join(format!("pair{n}"));
    std::fs::create_dir_all(&work).unwrap();
    out.work = Some(work.clone());
    out.delays = plan.delays;
    // Declared after `homes`, so the captures stop before their namespaces go.
    let _captures = capture(&homes, &work);
    let pa = profile(&work.join("alice"), (2 * n) % super::SERVER_KEY);
    let pb = profile(&work.join("bob"), (2 * n + 1) % super::SERVER_KEY);
    let (port_a, port_b) = (PEER_PORTS.start() + 1, PEER_PORTS.start() + 2);

    for (h, p, u) in [(ha, &pa, &alice), (hb, &pb, &bob)] {
        one_shot(h, server, p, &["register", u, &format!("{u}@example.org")]);
        one_shot(h, server, p, &["login", u]);
    }
    one_shot(ha, server, &pa, &["add", &bob]);
    one_shot(hb, server, &pb, &["accept", &alice]);

    let mut b = ChatProc::spawn(
        {
            let mut c = cli(hb, server, &pb, port_b);
            c.arg("chat");
            c
        },
        &bob,
        &work.join("bob.log"),
    );
    b.wait_for("logged_in", WAIT, |v| is(v, "logged_in", &[]));
    let mut a = ChatProc::spawn(
        {
            let mut c = cli(ha, server, &pa, port_a);
            c.arg("chat");
            c
        },
        &alice,
        &work.join("alice.log"),
    );
    let login = a.wait_for("logged_in", WAIT, |v| is(v, "logged_in", &[]));
    let bob_online = login.value["friends"].as_array().is_some_and(|f| {
        f.iter()
            .any(|f| f["userid"] == bob.as_str() && f["online"] == true)
    });
    if !bob_online {
        a.wait_for("bob online", WAIT, |v| {
            is(v, "presence", &[("friend", &bob)]) && v["online"] == true
        });
    }

    // Alice wants the connection: her first message makes it.
    let text = format!(
        "nat-lab secret chat {n} {:016x}",
        rand::thread_rng().gen::<u64>()
    );
    let sent = a.say(&format!("/msg {bob} {text}"));
    b.wait_for("alice's message", WAIT, |v| {
        is(
            v,
            "message_received",
            &[("friend", &alice), ("text", &text)],
        )
    });
    let acked = a.wait_for("ack", WAIT, |v| is(v, "message_acked", &[("friend", &bob)]));
    out.first_message = Some(acked.at.duration_since(sent));
    let conn = a.wait_for("peer_connected", WAIT, |v| {
        is(v, "peer_connected", &[("friend", &bob)])
    });
    out.used = conn.value["path"].as_str().map(str::to_owned);
    out.attempt = conn.value["attempt"].as_u64();

    let reply = format!("nat-lab reply {n}");
    b.say(&format!("/msg {alice} {reply}"));
    a.wait_for("bob's reply", WAIT, |v| {
        is(v, "message_received", &[("friend", &bob), ("text", &reply)])
    });

    if plan.file.is_some() {
        let mut rtts: Vec<Duration> = (0..RTT_SAMPLES)
            .map(|i| {
                let sent = a.say(&format!("/msg {bob} rtt probe {i}"));
                let acked = a.wait_for_next("rtt probe ack", WAIT, |v| {
                    is(v, "message_acked", &[("friend", &bob)])
                });
                acked.at.duration_since(sent)
            })
            .collect();
        rtts.sort();
        out.chat_rtt = rtts.get(rtts.len() / 2).copied();
    }

    if let Some(file) = plan.file {
        let started = a.say(&format!("/send {bob} {}", file.path.display()));
        let done = b.wait_for("the big file", FILE_WAIT, |v| {
            is(
                v,
                "transfer_complete",
                &[("direction", "incoming"), ("friend", &alice)],
            )
        });
        let secs = done.at.duration_since(started).as_secs_f64();
        out.throughput_mb_s = Some(file.size as f64 / 1e6 / secs.max(1e-6));
        let got = PathBuf::from(done.value["path"].as_str().unwrap_or_default());
        assert!(
            sha256_file(&got) == file.sha256,
            "{}: the file on bob's disk differs from alice's",
            got.display()
        );
        let _ = std::fs::remove_file(&got);

        let small = work.join("back.txt");
        let content = format!("a small file from bob {n}\n").repeat(500);
        std::fs::write(&small, &content).unwrap();
        b.say(&format!("/send {alice} {}", small.display()));
        let done = a.wait_for("bob's small file", FILE_WAIT, |v| {
            is(
                v,
                "transfer_complete",
                &[("direction", "incoming"), ("friend", &bob)],
            )
        });
        let got = PathBuf::from(done.value["path"].as_str().unwrap_or_default());
        assert_eq!(
            std::fs::read(&got).unwrap_or_default(),
            content.as_bytes(),
            "bob's small file arrived different"
        );
    }
    a.quit();
    b.quit();

    if out.used.as_deref() == Some("relayed") {
        check_relay_opacity(lab, &[&text, &reply], plan.file, out);
    }
    match &out.used {
        Some(used) if *used == out.expected => {}
        Some(used) => {
            out.failure = Some(format!(
                "path: expected {}, the client used {used}",
                out.expected
            ));
        }
        None => {
            out.failure = Some(format!(
                "alice's peer_connected has no \"path\" (expected {}): {}",
                out.expected, conn.value
            ));
        }
    }
}

/// With `PEERCHAT_NAT_LAB_PCAP=1` (and `tcpdump` installed): a packet capture of every
/// router's (or public host's) interfaces into the pair's directory, `<ns>.pcap`, for a
/// post-mortem; the test keeps the directory when the pair fails. A debugging aid only.
fn capture(homes: &[Home], work: &Path) -> Vec<super::process::Proc> {
    if !std::env::var("PEERCHAT_NAT_LAB_PCAP").is_ok_and(|v| v == "1") {
        return Vec::new();
    }
    homes
        .iter()
        .map(|h| h.router().unwrap_or(&h.hosts[0].ns))
        .filter_map(|ns| {
            let file = work.join(format!("{}.pcap", ns.name()));
            ns.command("tcpdump")
                .args(["-U", "-n", "-s", "128", "-i", "any", "-w"])
                .arg(&file)
                .arg("tcp")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()
                .map(super::process::Proc)
        })
        .collect()
}

/// The server relayed ciphertext only: neither chat text nor the file's marker is in what
/// it relayed (every file of the tap directory, all pairs', searched whole). Skipped, with a note, when the server has no relay tap.
pub fn check_relay_opacity(lab: &Lab, texts: &[&str], file: Option<&TestFile>, out: &mut Outcome) {
    let Some(dir) = &lab.server.relay_tap else {
        out.notes
            .push("relay opacity NOT checked (server without --relay-tap)".to_owned());
        return;
    };
    let files = read_tree(dir);
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert!(
        total > 0,
        "the relay tap {} is empty although the pair was relayed",
        dir.display()
    );
    for (p, bytes) in &files {
        for text in texts {
            assert!(
                !contains(bytes, text.as_bytes()),
                "the chat text {text:?} appears in clear in relayed bytes ({})",
                p.display()
            );
        }
        if let Some(f) = file {
            assert!(
                !contains(bytes, &f.marker),
                "the file's marker appears in clear in relayed bytes ({})",
                p.display()
            );
        }
    }
    out.notes
        .push(format!("relay opaque ({total} tapped bytes searched)"));
}

/// Runs every plan, `jobs` at a time, each pair's failure caught so all pairs report.
pub fn run_all(
    lab: &Lab,
    plans: Vec<Plan<'_>>,
    jobs: usize,
    expected_path: fn(Pair) -> PathKind,
) -> Vec<Outcome> {
    let total = plans.len();
    // Longest first (relayed transfers are rate-limited), so two jobs finish together;
    // the results are reported in the order given.
    let rank = |p: &Plan<'_>| match expected_path(p.pair) {
        PathKind::Relayed => 0,
        PathKind::Punched => 1,
        PathKind::Reversed => 2,
        PathKind::Direct => 3,
    };
    let mut ordered: Vec<(usize, Plan<'_>)> = plans.into_iter().enumerate().collect();
    ordered.sort_by_key(|(_, p)| rank(p));
    let queue = Mutex::new(ordered.into_iter().collect::<VecDeque<_>>());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let Some((i, plan)) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                let mut out = Outcome {
                    label: plan.pair.to_string(),
                    expected: expected_path(plan.pair).as_str().to_owned(),
                    ..Outcome::default()
                };
                let t = Instant::now();
                let r =
                    std::panic::catch_unwind(AssertUnwindSafe(|| run_pair(lab, &plan, &mut out)));
                if let Err(p) = r {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_else(|| "panicked".to_owned());
                    out.failure = Some(msg);
                }
                eprintln!(
                    "[{}/{total}] {} done in {:.1} s: {}",
                    i + 1,
                    out.label,
                    t.elapsed().as_secs_f64(),
                    out.failure.as_deref().unwrap_or("ok")
                );
                results.lock().unwrap().push((i, out));
            });
        }
    });
    let mut r = results.into_inner().unwrap();
    r.sort_by_key(|(i, _)| *i);
    r.into_iter().map(|(_, o)| o).collect()
}
