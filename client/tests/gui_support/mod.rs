//! Driving the real `peerchat` GUI in a private X server, for `gui_e2e` (the test) and
//! `gui_screenshots` (the generator behind `scripts/screenshots`).
//!
//! Windows are found by name with `xdotool search`, widgets by the layout the app writes
//! when `PEERCHAT_GUI_TEST_LAYOUT` is set (window-relative coordinates), and every click
//! and key press goes through X like a user's. The other users are real `peerchat-cli
//! --json` processes whose JSON events say what arrived.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Long enough for a loaded CI machine, short enough to fail instead of hanging.
pub const WAIT: Duration = Duration::from_secs(45);
pub const PASSWORD: &str = "correct horse battery";

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why the GUI tests cannot run here (no X server or no xdotool), if so.
pub fn missing_tools() -> Option<String> {
    let missing: Vec<&str> = ["Xvfb", "xdotool"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "missing {} (install xvfb and xdotool: .ci/install-deps)",
            missing.join(", ")
        )
    })
}

/// Panics unless imagemagick is there (the screenshot checks need it; CI installs it).
pub fn require_imagemagick() {
    for t in ["import", "convert"] {
        assert!(
            have(t),
            "`{t}` (imagemagick) is missing: install it (.ci/install-deps) to run the GUI tests"
        );
    }
}

/// A child process killed when dropped (so a failing test leaves nothing behind).
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private X server, `Xvfb -screen 0 1280x800x24` on a display number it picks itself
/// (`-displayfd`: no race with other tests), without resets when a client disconnects
/// (`-noreset`: a reset would refuse the next client for a moment).
pub struct Xvfb {
    pub display: String,
    proc: Proc,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM first, so Xvfb removes its lock file and socket.
        let _ = Command::new("kill")
            .arg(self.proc.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.proc.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Xvfb {
    pub fn start() -> Xvfb {
        Self::start_sized("1280x800x24")
    }

    /// A private X server with a screen of `geometry` (`WxHxDEPTH`).
    pub fn start_sized(geometry: &str) -> Xvfb {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                geometry,
                "-nolisten",
                "tcp",
                "-noreset",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let stdout = child.stdout.take().unwrap();
        let proc = Proc(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let n = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("Xvfb reports its display number");
        let display = format!(":{}", n.trim());
        assert!(display.len() > 1, "Xvfb did not start");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ok = Command::new("xdotool")
                .arg("getmouselocation")
                .env("DISPLAY", &display)
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return Xvfb { display, proc };
            }
            assert!(
                Instant::now() < deadline,
                "Xvfb on {display} does not answer"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `import -window root path`.
    pub fn screenshot(&self, path: &Path) {
        let out = Command::new("import")
            .args(["-window", "root"])
            .arg(path)
            .env("DISPLAY", &self.display)
            .output()
            .expect("run import");
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs xdotool with `args`, returning stdout.
    pub fn xdotool(&self, args: &[&str]) -> String {
        let out = Command::new("xdotool")
            .args(args)
            .env("DISPLAY", &self.display)
            .output()
            .expect("run xdotool");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Number of distinct colours in an image (`convert img -format %k info:`).
pub fn colour_count(path: &Path) -> u64 {
    let out = Command::new("convert")
        .arg(path)
        .args(["-format", "%k", "info:"])
        .output()
        .expect("run convert");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The pixels of a region of an image, as (r, g, b).
pub fn region_pixels(path: &Path, x: i32, y: i32, w: i32, h: i32) -> Vec<(u8, u8, u8)> {
    let out = Command::new("convert")
        .arg(path)
        .args([
            "-crop",
            &format!("{w}x{h}+{x}+{y}"),
            "+repage",
            "-depth",
            "8",
            "txt:-",
        ])
        .output()
        .expect("run convert");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let hex = l.split('#').nth(1)?.get(..6)?;
            let v = u32::from_str_radix(hex, 16).ok()?;
            Some(((v >> 16) as u8, (v >> 8) as u8, v as u8))
        })
        .collect()
}

/// Clearly green text pixels (the online colour), not grey or blue.
pub fn is_green((r, g, b): (u8, u8, u8)) -> bool {
    g as i32 > r as i32 + 50 && g as i32 > b as i32 + 30
}

/// Grey text pixels (the offline colour): r≈g≈b, darker than the background.
pub fn is_grey((r, g, b): (u8, u8, u8)) -> bool {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    (r - g).abs() < 12 && (g - b).abs() < 12 && (90..200).contains(&r)
}

/// Seeds a profile folder with fixed test key `n` (RSA key generation takes seconds).
pub fn profile(root: &Path, name: &str, key: usize) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("identity.pem"),
        peerchat_proto::test_keys::pem(key),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            dir.join("identity.pem"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    dir
}

/// `peerchat-cli --server S --profile P --password PASSWORD ARGS...`, checked.
pub fn cli_once(server: &str, profile: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_peerchat-cli"))
        .args(["--server", server, "--password", PASSWORD, "--profile"])
        .arg(profile)
        .args(args)
        .output()
        .expect("run peerchat-cli");
    assert!(
        out.status.success(),
        "peerchat-cli {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Registers `userid` and logs in once (so later runs log in by key).
pub fn cli_account(server: &str, profile: &Path, userid: &str) {
    cli_once(
        server,
        profile,
        &["register", userid, &format!("{userid}@example.org")],
    );
    cli_once(server, profile, &["login", userid]);
}

/// alice (test key 1) and bob (test key 2), registered and friends (one-shot CLI commands):
/// their profile folders under `root`.
pub fn cli_friends(server: &str, root: &Path) -> (PathBuf, PathBuf) {
    let alice = profile(root, "alice", 1);
    let bob = profile(root, "bob", 2);
    cli_account(server, &alice, "alice");
    cli_account(server, &bob, "bob");
    cli_once(server, &alice, &["add", "bob"]);
    cli_once(server, &bob, &["accept", "alice"]);
    (alice, bob)
}

/// A `peerchat-cli --json chat` process: commands in, JSON events out.
pub struct Cli {
    pub name: String,
    stdin: ChildStdin,
    events: mpsc::Receiver<serde_json::Value>,
    pub seen: Vec<serde_json::Value>,
    _proc: Proc,
}

impl Cli {
    pub fn start(server: &str, profile: &Path, name: &str) -> Cli {
        Cli::start_with(server, profile, name, &[])
    }

    /// Like [`Cli::start`], with more global options (`--relay-only`).
    pub fn start_with(server: &str, profile: &Path, name: &str, options: &[&str]) -> Cli {
        let mut child = Command::new(env!("CARGO_BIN_EXE_peerchat-cli"))
            .args([
                "--server",
                server,
                "--json",
                "--peer-listen",
                "127.0.0.1:0",
                "--profile",
            ])
            .arg(profile)
            .args(options)
            .arg("chat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start peerchat-cli chat");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let who = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if std::env::var_os("GUI_TEST_VERBOSE").is_some() {
                    eprintln!("[{who}] {line}");
                }
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        Cli {
            name: name.to_owned(),
            stdin,
            events: rx,
            seen: Vec::new(),
            _proc: Proc(child),
        }
    }

    /// Sends one interactive command line (`/msg alice hi`).
    pub fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Reads what arrived so far and counts the events matching `pred`.
    pub fn count(&mut self, pred: impl Fn(&serde_json::Value) -> bool) -> usize {
        while let Ok(v) = self.events.try_recv() {
            self.seen.push(v);
        }
        self.seen.iter().filter(|v| pred(v)).count()
    }

    /// Waits for an event matching `pred` (also among those seen before).
    pub fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "{}: no {what} within {WAIT:?}; events: {:#?}",
                    self.name, self.seen
                ),
            }
        }
    }
}

/// `v["event"] == name` and every `(key, value)` of `fields` matches (strings).
pub fn is_event(v: &serde_json::Value, name: &str, fields: &[(&str, &str)]) -> bool {
    v["event"] == name && fields.iter().all(|(k, want)| v[*k].as_str() == Some(*want))
}

/// One widget in the app's layout dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
    pub visible: bool,
}

/// The `peerchat` GUI process and how to reach its widgets.
pub struct Gui<'x> {
    pub x: &'x Xvfb,
    pub layout: PathBuf,
    _proc: Proc,
}

impl<'x> Gui<'x> {
    /// Starts `peerchat --server S --profile P` in the X server, with the test hooks on.
    pub fn start(
        x: &'x Xvfb,
        server: &str,
        profile: &Path,
        work: &Path,
        file_to_send: Option<&Path>,
        extra_args: &[&str],
    ) -> Gui<'x> {
        Self::start_with(x, server, profile, work, extra_args, |cmd| {
            if let Some(f) = file_to_send {
                cmd.env("PEERCHAT_GUI_TEST_FILE", f);
            }
        })
    }

    /// [`Gui::start`] with a last word on the command (`tweak`): another environment, a
    /// hook taken away.
    pub fn start_with(
        x: &'x Xvfb,
        server: &str,
        profile: &Path,
        work: &Path,
        extra_args: &[&str],
        tweak: impl FnOnce(&mut Command),
    ) -> Gui<'x> {
        let layout = work.join(format!(
            "layout-{}.txt",
            profile.file_name().unwrap().to_string_lossy()
        ));
        let _ = std::fs::remove_file(&layout);
        // Received files stay inside the test's profile, not in the real ~/Downloads.
        std::fs::create_dir_all(profile).unwrap();
        let settings = profile.join("gui-settings.json");
        if !settings.exists() {
            let json = serde_json::json!({ "download_dir": profile.join("downloads") });
            std::fs::write(&settings, json.to_string()).unwrap();
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_peerchat"));
        cmd.args(["--server", server, "--profile"])
            .arg(profile)
            .env("DISPLAY", &x.display)
            .env("PEERCHAT_GUI_TEST_LAYOUT", &layout)
            .env("PEERCHAT_GUI_TEST_OPEN_LOG", work.join("opened.txt"))
            .env("PEERCHAT_GUI_TEST_NOTIFY_LOG", work.join("notified.txt"))
            .env_remove("PEERCHAT_SERVER")
            .env_remove("PEERCHAT_PROFILE")
            .stdout(Stdio::null());
        cmd.args(extra_args);
        tweak(&mut cmd);
        let child = cmd.spawn().expect("start peerchat");
        Gui {
            x,
            layout,
            _proc: Proc(child),
        }
    }

    /// The text of the chat the app shows (times, messages, `<File>` lines).
    pub fn chat_text(&self) -> String {
        std::fs::read_to_string(self.layout.with_extension("chat.txt")).unwrap_or_default()
    }

    fn layout_lines(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(&self.layout)
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('\t').map(str::to_owned).collect::<Vec<_>>())
            .filter(|f| f.len() >= 7)
            .collect()
    }

    /// The label of `widget` in the window whose title ends with `window` (what a message
    /// line or the status bar says), if it is listed.
    pub fn label(&self, window: &str, widget: &str) -> Option<String> {
        self.layout_lines()
            .into_iter()
            .find(|f| f[0].ends_with(window) && f[1] == widget)
            .map(|f| f.get(7).cloned().unwrap_or_default())
    }

    /// The geometry of `widget` in the window whose title ends with `window`.
    pub fn geometry(&self, window: &str, widget: &str) -> Option<Geometry> {
        self.layout_lines()
            .into_iter()
            .find(|f| f[0].ends_with(window) && f[1] == widget)
            .map(|f| Geometry {
                x: f[2].parse().unwrap_or(0),
                y: f[3].parse().unwrap_or(0),
                w: f[4].parse().unwrap_or(0),
                h: f[5].parse().unwrap_or(0),
                visible: f[6] == "1",
            })
    }

    /// Polls until `cond` holds.
    pub fn wait_until(&self, what: &str, mut cond: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if cond(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "GUI: {what} did not happen within {WAIT:?}; layout:\n{}",
            std::fs::read_to_string(&self.layout).unwrap_or_default()
        );
    }

    /// Waits for a visible window whose title ends with `title` (by `xdotool search --name`)
    /// and for its layout; returns the X window id.
    pub fn window(&self, title: &str) -> String {
        let mut id = String::new();
        self.wait_until(&format!("window \"…{title}\" shown"), |g| {
            id =
                g.x.xdotool(&["search", "--onlyvisible", "--name", &format!("{title}$")])
                    .lines()
                    .last()
                    .unwrap_or("")
                    .to_owned();
            !id.is_empty() && g.geometry(title, "@window").is_some()
        });
        id
    }

    /// Waits until a widget is visible with a non-empty size.
    pub fn wait_widget(&self, window: &str, widget: &str) -> Geometry {
        let mut geo = None;
        self.wait_until(&format!("{widget} visible in {window}"), |g| {
            geo = g
                .geometry(window, widget)
                .filter(|w| w.visible && w.w > 0 && w.h > 0);
            geo.is_some()
        });
        geo.unwrap()
    }

    /// Clicks a widget at (dx, dy) inside it (None: its centre), relative to the window.
    pub fn click_at(&self, window: &str, widget: &str, at: Option<(i32, i32)>, clicks: u32) {
        let id = self.window(window);
        let g = self.wait_widget(window, widget);
        let (dx, dy) = at.unwrap_or((g.w / 2, g.h / 2));
        let (x, y) = ((g.x + dx).to_string(), (g.y + dy).to_string());
        self.x.xdotool(&["mousemove", "--window", &id, &x, &y]);
        std::thread::sleep(Duration::from_millis(100));
        let n = clicks.to_string();
        self.x
            .xdotool(&["click", "--repeat", &n, "--delay", "120", "1"]);
        std::thread::sleep(Duration::from_millis(250));
    }

    pub fn click(&self, window: &str, widget: &str) {
        self.click_at(window, widget, None, 1);
    }

    /// Clicks an input and types `text` into it.
    pub fn type_into(&self, window: &str, widget: &str, text: &str) {
        self.click(window, widget);
        self.type_text(text);
    }

    /// Clicks an input, clears it (Ctrl+A, BackSpace) and types `text`.
    pub fn replace_text(&self, window: &str, widget: &str, text: &str) {
        self.click(window, widget);
        self.x.xdotool(&["key", "ctrl+a", "BackSpace"]);
        self.type_text(text);
    }

    pub fn type_text(&self, text: &str) {
        self.x.xdotool(&["type", "--delay", "25", "--", text]);
        std::thread::sleep(Duration::from_millis(150));
    }

    pub fn key(&self, key: &str) {
        self.x.xdotool(&["key", key]);
        std::thread::sleep(Duration::from_millis(250));
    }

    /// A region of a window as absolute screen coordinates: (x, y, w, h).
    pub fn screen_rect(&self, window: &str, widget: &str) -> (i32, i32, i32, i32) {
        let win = self.geometry(window, "@window").unwrap();
        let g = self.wait_widget(window, widget);
        (win.x + g.x, win.y + g.y, g.w, g.h)
    }
}

/// A real server on 127.0.0.1:0 in this process, with its own runtime.
pub struct Server {
    pub addr: String,
    running: Option<peerchat_server::RunningServer>,
    rt: tokio::runtime::Runtime,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _guard = self.rt.enter();
            r.abort();
        }
    }
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = rt
            .block_on(peerchat_server::start(peerchat_server::Config::for_tests(
                dir.to_path_buf(),
            )))
            .expect("server starts");
        let addr = running.local_addr.to_string();
        Server {
            addr,
            running: Some(running),
            rt,
        }
    }
}

impl Xvfb {
    /// `import -window ID path`: one window only.
    pub fn screenshot_window(&self, id: &str, path: &Path) {
        let out = Command::new("import")
            .args(["-window", id])
            .arg(path)
            .env("DISPLAY", &self.display)
            .output()
            .expect("run import");
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A private D-Bus session bus (`dbus-daemon --session`), stopped when dropped, so a test's
/// notifications reach its own daemon and nobody else's.
pub struct SessionBus {
    /// `DBUS_SESSION_BUS_ADDRESS` for the processes on it.
    pub address: String,
    _proc: Proc,
}

impl SessionBus {
    pub fn start() -> SessionBus {
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let stdout = child.stdout.take().unwrap();
        let proc = Proc(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let address = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("dbus-daemon prints its address")
            .trim()
            .to_owned();
        assert!(!address.is_empty(), "dbus-daemon did not start");
        SessionBus {
            address,
            _proc: proc,
        }
    }

    /// Starts the dunst notification daemon on this bus and X server (with an empty config
    /// of its own, not the user's), once it owns the notification service.
    pub fn start_dunst(&self, x: &Xvfb, work: &Path) -> Proc {
        let config = work.join("dunstrc");
        std::fs::write(&config, "[global]\n    idle_threshold = 0\n").unwrap();
        let child = Command::new("dunst")
            .arg("-config")
            .arg(&config)
            .env("DISPLAY", &x.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dunst");
        let proc = Proc(child);
        let deadline = Instant::now() + WAIT;
        loop {
            let up = Command::new("dunstctl")
                .arg("is-paused")
                .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
                .output()
                .is_ok_and(|o| o.status.success());
            if up {
                return proc;
            }
            assert!(
                Instant::now() < deadline,
                "dunst does not answer on the bus"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
