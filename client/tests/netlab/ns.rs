//! Network namespaces the lab makes, and the commands it runs in them.
//!
//! Every namespace is a [`Netns`] guard: dropping it (also while a panic unwinds) runs
//! `ip netns del`, which removes the namespace and every interface inside it. The lab never
//! creates an interface in the caller's namespace: veth pairs are created with both ends
//! already inside lab namespaces, and the delay-line taps are opened from inside them.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

/// Runs a command to completion; panics with the command line and its stderr on failure.
///
/// The lab's set-up commands are not expected to fail on a machine that passed
/// [`super::preflight`], so a failure is a harness defect worth a loud message.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One named network namespace, deleted when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// `ip netns add NAME` and brings its loopback up.
    pub fn create(name: &str) -> Netns {
        run(Command::new("ip").args(["netns", "add", name]));
        let ns = Netns {
            name: name.to_owned(),
        };
        ns.ip("link set lo up");
        ns
    }

    /// The namespace's name (`ip netns list` shows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Moves the calling thread (only it: `setns` is per thread) into this namespace.
    /// Sockets and TAP devices created afterwards belong to the namespace for their whole
    /// life, whichever thread uses them later.
    ///
    /// # Errors
    /// The namespace file cannot be opened or `setns` fails.
    pub fn enter_this_thread(&self) -> std::io::Result<()> {
        use std::os::fd::AsRawFd as _;
        let f = std::fs::File::open(format!("/run/netns/{}", self.name))?;
        // SAFETY: setns on a valid namespace descriptor; affects the calling thread only.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Runs `f` on a fresh thread inside this namespace (for creating sockets there).
    pub fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter_this_thread()
                    .unwrap_or_else(|e| panic!("cannot enter {}: {e}", self.name));
                f()
            })
            .join()
            .unwrap_or_else(|_| panic!("a thread inside {} panicked", self.name))
        })
    }

    /// `ip -n NAME ARGS…` (ARGS split at whitespace), checked.
    pub fn ip(&self, args: &str) {
        run(Command::new("ip")
            .args(["-n", &self.name])
            .args(args.split_whitespace()));
    }

    /// A command that runs `program` inside this namespace (`ip netns exec`, which execs the
    /// program itself: the child's pid is the program's, so killing the child kills it).
    ///
    /// The child also gets SIGKILL when the thread that spawned it ends (`PR_SET_PDEATHSIG`,
    /// kept across the exec), so a test killed outright leaves no process behind either.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        use std::os::unix::process::CommandExt as _;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            c.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c
    }

    /// Writes a sysctl of this namespace (`/proc/sys/...` as seen from inside it).
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        run(self
            .command("sh")
            .args(["-c", &format!("echo {value} > {path}")]));
    }

    /// Like [`Netns::sysctl`] but ignores a key this kernel lacks.
    pub fn sysctl_if_present(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let _ = self
            .command("sh")
            .args(["-c", &format!("[ -e {path} ] && echo {value} > {path}")])
            .stdin(Stdio::null())
            .output();
    }

    /// Loads an nftables ruleset (`nft -f -`) into this namespace.
    pub fn nft(&self, ruleset: &str) {
        let mut child = self
            .command("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nft in {}: {e}", self.name));
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(ruleset.as_bytes())
                .unwrap_or_else(|e| panic!("writing the ruleset to nft: {e}"));
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for nft: {e}"));
        assert!(
            out.status.success(),
            "nft -f in {} failed: {}\nruleset:\n{ruleset}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
