//! The NAT lab: real networks in Linux network namespaces for black-box tests of how two
//! `peerchat-cli` processes behind different home routers reach each other.
//!
//! - [`ns`]: namespaces (deleted on drop) and commands run in them;
//! - [`delay`]: the delayed WAN links (user-space TAP pairs, as this kernel has no netem);
//! - [`router`]: the NAT kinds (RFC 4787 table) and each router's nftables ruleset;
//! - [`topology`]: the public bridge and the homes built on it;
//! - [`process`]: processes inside namespaces, killed on drop, with JSON event reading;
//! - [`probe`]: raw TCP sockets inside namespaces, to check the routers themselves;
//! - [`scenario`]: one pair of Peerchat users in fresh homes, and many pairs two at a time;
//! - this file: the pre-flight check, clean-up of earlier crashed runs, and the server.
//!
//! Needs root, `ip` (iproute2), `nft` (nftables) and `/dev/net/tun`; `.ci/install-deps`
//! installs the packages. No packet leaves the lab's namespaces.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod delay;
pub mod ns;
pub mod probe;
pub mod process;
pub mod router;
pub mod scenario;
pub mod topology;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use process::Proc;
use topology::{Internet, SERVER_IP};

/// The fixed test key of the lab's server. Users get the others: a user holding the server's
/// own key is not a situation the lab means to test.
pub const SERVER_KEY: usize = peerchat_proto::test_keys::COUNT - 1;

/// The server's port on the public bridge.
pub const SERVER_PORT: u16 = 7878;

/// Every namespace of the lab is named `pcnat<pid>-…`, so a later run can find and remove
/// those of a run that was killed before its guards ran.
const NS_PREFIX: &str = "pcnat";

/// Why the lab cannot run here, or `None` if it can.
pub fn missing_prerequisites() -> Option<String> {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root (network namespaces and nftables need CAP_NET_ADMIN)".to_owned());
    }
    for (tool, package) in [("ip", "iproute2"), ("nft", "nftables")] {
        let ok = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            missing.push(format!("`{tool}` (Debian package {package})"));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        missing.push("/dev/net/tun (the kernel's TUN/TAP driver)".to_owned());
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// Deletes lab namespaces left by runs whose process no longer exists.
pub fn remove_stale_namespaces() {
    for name in lab_namespaces() {
        let pid = name
            .strip_prefix(NS_PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                // Processes left inside (a run killed outright) go first.
                let pids = Command::new("ip")
                    .args(["netns", "pids", &name])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                for p in pids.split_whitespace() {
                    let _ = Command::new("kill").args(["-9", p]).status();
                }
                let _ = Command::new("ip").args(["netns", "del", &name]).status();
            }
        }
    }
}

/// Names of every lab namespace on the machine (`ip netns list`).
pub fn lab_namespaces() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(NS_PREFIX))
        .map(str::to_owned)
        .collect()
}

/// A fresh namespace-name prefix, `pcnat<pid>-<n>-`: unique per lab, so tests of one
/// process can build labs side by side.
pub fn run_prefix() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{NS_PREFIX}{}-{n}-", std::process::id())
}

/// Fails unless every namespace whose name starts with `prefix` is gone.
pub fn assert_gone(prefix: &str) {
    let left: Vec<String> = lab_namespaces()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

/// The `peerchat-server` binary next to `peerchat-cli` (same target directory), or the one
/// named by `PEERCHAT_NAT_LAB_SERVER` (to put another server implementation in the lab).
pub fn server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PEERCHAT_NAT_LAB_SERVER") {
        return PathBuf::from(p);
    }
    let cli = Path::new(env!("CARGO_BIN_EXE_peerchat-cli"));
    let bin = cli.with_file_name("peerchat-server");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p peerchat-server` \
         (`cargo test --workspace` builds it too)",
        bin.display()
    );
    bin
}

/// The `peerchat-server` process in the public namespace.
pub struct LabServer {
    /// `198.18.0.1:7878`.
    pub addr: String,
    /// Where relayed bytes are written, when the server took `--relay-tap`.
    pub relay_tap: Option<PathBuf>,
    /// Its stderr.
    pub log: PathBuf,
    _proc: Proc,
}

impl LabServer {
    /// Starts the server with a fresh data directory under `dir` (seeded with fixed test
    /// key [`SERVER_KEY`]: no RSA key generation) and, if it accepts it, `--relay-tap <dir>/relay-tap`.
    pub fn start(internet: &Internet, dir: &Path) -> LabServer {
        let data = dir.join("server-data");
        std::fs::create_dir_all(&data).unwrap();
        let key = data.join("server_key.pem");
        std::fs::write(&key, peerchat_proto::test_keys::pem(SERVER_KEY)).unwrap();
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let tap = dir.join("relay-tap");
        std::fs::create_dir_all(&tap).unwrap();
        let log = dir.join("server.log");
        match Self::try_start(internet, &data, Some(&tap), &log) {
            Ok(s) => s,
            Err(why) => {
                eprintln!(
                    "NOTE: the server refused --relay-tap ({why}); relay opacity is NOT checked \
                     (needs peerchat-server built with feature test-hooks)"
                );
                Self::try_start(internet, &data, None, &log)
                    .unwrap_or_else(|e| panic!("peerchat-server does not start: {e}"))
            }
        }
    }

    fn try_start(
        internet: &Internet,
        data: &Path,
        tap: Option<&Path>,
        log: &Path,
    ) -> Result<LabServer, String> {
        let addr = format!("{SERVER_IP}:{SERVER_PORT}");
        let mut cmd = internet.ns().command(server_binary());
        cmd.args(["--listen", &addr, "--data-dir"]).arg(data);
        if let Some(t) = tap {
            cmd.arg("--relay-tap").arg(t);
        }
        let err = std::fs::File::create(log).map_err(|e| e.to_string())?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let proc = Proc(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line.contains("listening on") => {
                    return Ok(LabServer {
                        addr,
                        relay_tap: tap.map(Path::to_path_buf),
                        log: log.to_path_buf(),
                        _proc: proc,
                    })
                }
                Ok(_) => continue,
                Err(_) => {
                    let text = std::fs::read_to_string(log).unwrap_or_default();
                    return Err(text.lines().take(5).collect::<Vec<_>>().join(" | "));
                }
            }
        }
    }
}
