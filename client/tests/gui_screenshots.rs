//! Regenerates the screenshots in `docs/screenshots/` (run by `scripts/screenshots`; ignored
//! in normal test runs). It drives the real app like `gui_e2e` does: a real server, the GUI
//! under Xvfb, other users as `peerchat-cli` processes.
//!
//! `cargo test -p peerchat-client --features gui --test gui_screenshots -- --ignored`
//! (`PEERCHAT_SCREENSHOTS_DIR=dir` to write elsewhere).

#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gui_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use gui_support::*;

const LOGIN: &str = "Log in";
const REGISTER: &str = "Create account";
const FORGOT: &str = "Forgot password";
const MAIN: &str = " alice";
const KEY_CHANGED: &str = "Identity key changed";
const PROFILE: &str = "Friend profile";

fn out_dir() -> PathBuf {
    let dir = std::env::var_os("PEERCHAT_SCREENSHOTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn settle() {
    std::thread::sleep(Duration::from_millis(700));
}

fn snap(gui: &Gui, window: &str, name: &str) {
    // No tooltip in the picture (an undrawn tooltip window comes out as a black box); the
    // pointer comes back afterwards, as keys go to the window under it (no window manager).
    let at = gui.x.xdotool(&["getmouselocation", "--shell"]);
    let coord = |k: &str| {
        at.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or("0")
            .to_owned()
    };
    let (px, py) = (coord("X="), coord("Y="));
    gui.x.xdotool(&["mousemove", "0", "0"]);
    settle();
    let id = gui.window(window);
    let path = out_dir().join(name);
    gui.x.screenshot_window(&id, &path);
    eprintln!("wrote {}", path.display());
    gui.x.xdotool(&["mousemove", &px, &py]);
}

#[test]
#[ignore = "generates docs/screenshots; run by scripts/screenshots"]
fn screenshots() {
    if let Some(why) = missing_tools() {
        panic!("cannot make screenshots: {why}");
    }
    require_imagemagick();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let mut server = Some(Server::start(&work.join("server")));
    let addr = server.as_ref().unwrap().addr.clone();
    let x = Xvfb::start();

    // ---- account windows, with a fresh profile -----------------------------------------------
    {
        let newcomer = profile(work, "newcomer", 7);
        let gui = Gui::start(&x, &addr, &newcomer, work, None, &[]);
        gui.window(LOGIN);
        gui.type_into(LOGIN, "userid", "newcomer");
        gui.type_into(LOGIN, "password", "not my password");
        snap(&gui, LOGIN, "login.png");
        gui.key("Return");
        std::thread::sleep(Duration::from_secs(2));
        snap(&gui, LOGIN, "login-error.png");

        gui.click(LOGIN, "register");
        gui.window(REGISTER);
        // Every problem of the form at once (issue #15 item 11).
        gui.type_into(REGISTER, "userid", "-x");
        gui.type_into(REGISTER, "email", "newcomer");
        gui.type_into(REGISTER, "password", "short");
        gui.type_into(REGISTER, "confirm", "shorter");
        gui.key("Return");
        snap(&gui, REGISTER, "create-account-all-errors.png");
        for f in ["userid", "email", "password", "confirm"] {
            gui.replace_text(REGISTER, f, "");
        }
        gui.type_into(REGISTER, "userid", "newcomer");
        gui.type_into(REGISTER, "email", "newcomer@example.org");
        gui.type_into(REGISTER, "password", PASSWORD);
        gui.type_into(REGISTER, "confirm", PASSWORD);
        snap(&gui, REGISTER, "create-account.png");
        gui.key("Return");
        gui.wait_widget(REGISTER, "code");
        gui.click(REGISTER, "copy");
        snap(&gui, REGISTER, "create-account-recovery-code.png");
        gui.click(REGISTER, "done");
        // Logged in with the new password at once; log out for the next windows.
        gui.window(" newcomer");
        gui.click(" newcomer", "logout");

        gui.window(LOGIN);
        gui.click(LOGIN, "forgot");
        gui.window(FORGOT);
        gui.type_into(FORGOT, "email", "newcomer@example.org");
        gui.type_into(FORGOT, "recovery", "ABCDE-FGHIJ-KLMNO-PQRST");
        gui.type_into(FORGOT, "password", "a brand new password");
        gui.type_into(FORGOT, "confirm", "a brand new password");
        snap(&gui, FORGOT, "forgot-password.png");
        gui.key("Return");
        std::thread::sleep(Duration::from_secs(2));
        snap(&gui, FORGOT, "forgot-password-error.png");

        // olivia (registered elsewhere, code written down) resets her password for real.
        let olivia = profile(work, "olivia", 9);
        let out = cli_once(
            &addr,
            &olivia,
            &["register", "olivia", "olivia@example.org"],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let code = text
            .split_whitespace()
            .find(|w| w.len() == 23 && w.matches('-').count() == 3)
            .unwrap_or_else(|| panic!("no recovery code in {text:?}"))
            .to_owned();
        gui.replace_text(FORGOT, "userid", "olivia");
        gui.replace_text(FORGOT, "email", "olivia@example.org");
        gui.replace_text(FORGOT, "recovery", &code.to_lowercase());
        gui.replace_text(FORGOT, "password", "olivia's new password");
        gui.replace_text(FORGOT, "confirm", "olivia's new password");
        gui.key("Return");
        gui.wait_widget(FORGOT, "code");
        snap(&gui, FORGOT, "forgot-password-new-code.png");
    }

    // ---- HiDPI: the login window at --scale 1.5 ---------------------------------------------------
    {
        let scaled = profile(work, "scaled", 8);
        let gui = Gui::start(&x, &addr, &scaled, work, None, &["--scale", "1.5"]);
        gui.window(LOGIN);
        snap(&gui, LOGIN, "login-scale-1.5.png");
    }

    // ---- alice and her friends, set up with the CLI -------------------------------------------------
    let users = [
        ("alice", 1),
        ("bob", 2),
        ("carol", 3),
        ("dave", 4),
        ("erin", 5),
        ("frank", 6),
    ];
    let profiles: Vec<PathBuf> = users.iter().map(|(u, k)| profile(work, u, *k)).collect();
    for ((u, _), p) in users.iter().zip(&profiles) {
        cli_account(&addr, p, u);
    }
    let p = |name: &str| profiles[users.iter().position(|(u, _)| *u == name).unwrap()].clone();
    for f in ["bob", "carol", "dave", "frank"] {
        cli_once(&addr, &p("alice"), &["add", f]);
    }
    for f in ["bob", "carol", "dave"] {
        cli_once(&addr, &p(f), &["accept", "alice"]);
    }
    cli_once(&addr, &p("erin"), &["add", "alice"]);

    let mut bob = Cli::start(&addr, &p("bob"), "bob");
    bob.wait_for("bob logged in", |v| v["event"] == "logged_in");
    // dave reaches alice only through the server's relay: the list and his chat say so.
    let mut dave = Cli::start_with(&addr, &p("dave"), "dave", &["--relay-only"]);
    dave.wait_for("dave logged in", |v| v["event"] == "logged_in");

    let slides = work.join("slides.pdf");
    std::fs::write(&slides, vec![b'%'; 180_000]).unwrap();
    let gui = Gui::start(&x, &addr, &p("alice"), work, Some(&slides), &[]);
    gui.window(MAIN);
    // dave writes while alice looks elsewhere: unread count.
    settle();
    dave.send("/msg alice are you coming tonight?");
    dave.send("/msg alice bring the slides!");
    gui.wait_until("dave's two messages acked", |_| {
        dave.count(|v| v["event"] == "message_acked") >= 2
    });
    dave.wait_for("dave's link is relayed", |v| {
        is_event(
            v,
            "peer_connected",
            &[("friend", "alice"), ("path", "relayed")],
        )
    });
    // Let the start-up notices ("dave is now your friend") give way to the connection state.
    std::thread::sleep(Duration::from_secs(9));
    snap(&gui, MAIN, "main-friends-and-requests.png");

    // ---- dave's chat: the header says the link is relayed ---------------------------------------
    gui.click_at(MAIN, "friends", Some((40, 12 + 18)), 1); // dave: second online friend
    snap(&gui, MAIN, "chat-relayed-friend.png");

    // ---- chat with bob: messages, ticks, typing, files, progress ----------------------------------
    gui.click_at(MAIN, "friends", Some((40, 12)), 1); // bob (online friends first, by name)
    gui.type_into(MAIN, "chat_input", "Hi bob! Did the build pass?");
    gui.key("Return");
    bob.wait_for("alice's message", |v| {
        is_event(v, "message_received", &[("friend", "alice")])
    });
    bob.send("/msg alice Yes, all green. Sending you the log.");
    bob.wait_for("ack", |v| {
        is_event(v, "message_acked", &[("friend", "alice")])
    });
    gui.type_into(
        MAIN,
        "chat_input",
        "Great, here are the slides for tonight.",
    );
    gui.key("shift+Return");
    gui.type_text("Agenda: https://example.org/meetup");
    gui.key("Return");
    bob.send("/msg alice 好的！See you there 🎉");
    gui.click(MAIN, "chat_send_file");
    bob.wait_for("slides arrived", |v| {
        is_event(v, "transfer_complete", &[("direction", "incoming")])
    });
    let log = work.join("build.log");
    std::fs::write(&log, "ok\n".repeat(20_000)).unwrap();
    bob.send(&format!("/send alice {}", log.display()));
    // The desktop app asks before accepting (SPEC.md §8.3 rule 3): Accept on the log's row.
    gui.wait_until("log offer row", |g| {
        g.geometry(MAIN, "transfer2_first")
            .is_some_and(|w| w.visible)
    });
    gui.click(MAIN, "transfer2_first");
    bob.wait_for("log sent", |v| {
        is_event(v, "transfer_complete", &[("direction", "outgoing")])
    });
    // A big file, to catch the progress bar on its way.
    let big = work.join("holiday-video.mkv");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(6 << 30)
        .unwrap();
    bob.send(&format!("/send alice {}", big.display()));
    gui.wait_until("video offer row", |g| {
        g.geometry(MAIN, "transfer3_first")
            .is_some_and(|w| w.visible)
    });
    gui.click(MAIN, "transfer3_first");
    bob.wait_for("big file under way", |v| {
        v["event"] == "transfer_progress"
            && v["size"].as_u64() == Some(6 << 30)
            && v["bytes"].as_u64().unwrap_or(0) > (6u64 << 30) / 100
    });
    // bob starts typing (a typing frame counts for 6 s at the receiver).
    bob.send("/typing alice on");
    snap(&gui, MAIN, "chat-messages-files-progress.png");
    // Cancel it from the GUI: the newest transfer row's second button.
    gui.click(MAIN, "transfer3_second");
    bob.wait_for("cancelled by alice", |v| v["event"] == "transfer_cancelled");
    bob.send("/typing alice off");

    // ---- Ctrl+F: search in the conversation ----------------------------------------------------------
    gui.key("ctrl+f");
    gui.wait_widget(MAIN, "chat_search");
    gui.type_text("slides");
    gui.key("Return");
    snap(&gui, MAIN, "chat-search.png");
    gui.key("Escape");

    // ---- words longer than a line wrap under the text too (issue #15) ----------------------------
    let acks = bob.count(|v| is_event(v, "message_acked", &[("friend", "alice")]));
    bob.send(
        "/msg alice The full log: https://ci.example.org/peerchat/builds/2026-12-01/pipeline-4711/jobs/gui-e2e/artifacts/logs/full-output-with-every-line.txt",
    );
    gui.wait_until("ack of the long link", |_| {
        bob.count(|v| is_event(v, "message_acked", &[("friend", "alice")])) > acks
    });
    gui.type_into(MAIN, "chat_input", &format!("So{}o good!", "o".repeat(150)));
    gui.key("Return");
    bob.wait_for("the long word", |v| {
        is_event(v, "message_received", &[("friend", "alice")])
            && v["text"].as_str().is_some_and(|t| t.len() > 150)
    });
    snap(&gui, MAIN, "chat-long-word.png");

    // ---- the smallest window: nothing cut, nothing over the friend list ---------------------------
    let main_id = gui.window(MAIN);
    x.xdotool(&["windowsize", &main_id, "760", "500"]);
    gui.wait_until("760x500", |g| {
        g.geometry(MAIN, "@window")
            .is_some_and(|w| w.w == 760 && w.h == 500)
    });
    settle();
    assert_nothing_cut_off(&gui, 760, 500);
    snap(&gui, MAIN, "chat-minimum-size-760x500.png");
    x.xdotool(&["windowsize", &main_id, "1000", "660"]);
    gui.wait_until("1000x660", |g| {
        g.geometry(MAIN, "@window")
            .is_some_and(|w| w.w == 1000 && w.h == 660)
    });

    // ---- Unfriend asks in a window of its own (Esc: no) ---------------------------------------------
    gui.click(MAIN, "unfriend");
    settle();
    let confirm = x
        .xdotool(&["search", "--onlyvisible", "--name", "Confirm$"])
        .lines()
        .last()
        .unwrap_or("")
        .to_owned();
    assert!(!confirm.is_empty(), "no confirmation window");
    let path = out_dir().join("unfriend-confirm.png");
    x.screenshot(&path);
    eprintln!("wrote {}", path.display());
    gui.key("Escape");

    // ---- the settings page ------------------------------------------------------------------------
    gui.click(MAIN, "settings");
    gui.wait_widget("Settings", "settings_limit");
    snap(&gui, "Settings", "settings.png");
    gui.key("Escape");

    // ---- carol is offline: the message waits ---------------------------------------------------------
    gui.click_at(MAIN, "friends", Some((40, 12 + 2 * 18)), 1); // carol: third line
    gui.type_into(MAIN, "chat_input", "See you on Monday, carol.");
    gui.key("Return");
    snap(&gui, MAIN, "chat-offline-friend.png");

    // ---- carol's password is used on a new device: alice must decide ---------------------------------
    cli_once(
        &addr,
        &profile(work, "carol-new-phone", 10),
        &["login", "carol"],
    );
    gui.wait_widget(KEY_CHANGED, "key_presented");
    snap(&gui, KEY_CHANGED, "key-change-dialog.png");
    gui.click(KEY_CHANGED, "key_not_now");
    gui.wait_widget(MAIN, "chat_key_banner"); // carol's chat is the one shown
    x.xdotool(&["mousemove", "0", "0"]); // no tooltip over the chat in the picture
    snap(&gui, MAIN, "key-change-messages-held.png");

    // ---- the server goes away: direct chats go on ------------------------------------------------------
    // ---- bob's profile, with the Verified mark set (issue #15) -------------------------------
    gui.click_at(MAIN, "friends", Some((40, 12)), 1);
    gui.click(MAIN, "chat_profile");
    gui.wait_widget(PROFILE, "profile_fingerprint");
    gui.click(PROFILE, "profile_verified");
    x.xdotool(&["mousemove", "0", "0"]);
    snap(&gui, PROFILE, "friend-profile-verified.png");
    gui.click(PROFILE, "profile_close");
    gui.wait_until("profile closed", |g| {
        g.geometry(PROFILE, "@window").is_none()
    });

    // ---- sizes from the minimum to 4K, at 1x and 2x (issue #15) -------------------------------
    let main_id = gui.window(MAIN);
    x.xdotool(&["windowmove", &main_id, "0", "0"]);
    x.xdotool(&["windowsize", &main_id, "1280", "800"]);
    gui.wait_until("1280x800", |g| {
        g.geometry(MAIN, "@window")
            .is_some_and(|w| w.w == 1280 && w.h == 800)
    });
    settle();
    assert_nothing_cut_off(&gui, 1280, 800);
    snap(&gui, MAIN, "layout-1280x800.png");
    drop(gui);
    {
        let big = Xvfb::start_sized("3840x2160x24");
        // 4K at 1× (asked for), then as the app starts by itself on a 4K screen: at 2×.
        for (scale, name) in [
            (Some("1"), "layout-3840x2160.png"),
            (None, "layout-2x-scale.png"),
        ] {
            let args: Vec<&str> = scale.map(|s| vec!["--scale", s]).unwrap_or_default();
            let g = Gui::start(&big, &addr, &p("alice"), work, None, &args);
            let id = g.window(MAIN);
            dismiss_key_change(&big, &g);
            big.xdotool(&["windowmove", &id, "0", "0"]);
            // 4K at 1x; at 2x the same screen is 1920x1080 logical pixels.
            big.xdotool(&["windowsize", &id, "3840", "2160"]);
            let (lw, lh) = if scale.is_none() {
                (1920, 1080)
            } else {
                (3840, 2160)
            };
            g.wait_until("the window fills the 4K screen", |g| {
                g.geometry(MAIN, "@window")
                    .is_some_and(|w| w.w == lw && w.h == lh)
            });
            // Keys go to the window under the pointer (no window manager here).
            big.xdotool(&["mousemove", "--window", &id, "1000", "1000"]);
            g.key("ctrl+1"); // bob's chat, without aiming at scaled coordinates
            g.wait_widget(MAIN, "chat_profile");
            big.xdotool(&["mousemove", "0", "0"]);
            settle();
            assert_nothing_cut_off(&g, lw, lh);
            snap(&g, MAIN, name);
        }
    }

    // ---- the dark theme: status bar, lists, chat, dialogs (issue #15) ----------------------------
    let settings_file = p("alice").join("gui-settings.json");
    let mut s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&settings_file).unwrap()).unwrap();
    s["theme"] = "dark".into();
    std::fs::write(&settings_file, s.to_string()).unwrap();
    {
        let g = Gui::start(&x, &addr, &p("alice"), work, None, &[]);
        let id = g.window(MAIN);
        dismiss_key_change(&x, &g);
        x.xdotool(&["windowsize", &id, "1000", "660"]);
        g.wait_until("1000x660", |g| {
            g.geometry(MAIN, "@window")
                .is_some_and(|w| w.w == 1000 && w.h == 660)
        });
        g.click_at(MAIN, "friends", Some((40, 12)), 1);
        g.type_into(MAIN, "chat_input", "A draft in the dark theme");
        x.xdotool(&["mousemove", "0", "0"]);
        snap(&g, MAIN, "dark-chat.png");
        g.click(MAIN, "settings");
        g.wait_widget("Settings", "settings_limit");
        snap(&g, "Settings", "dark-settings.png");
        g.key("Escape");
        g.click(MAIN, "chat_profile");
        g.wait_widget(PROFILE, "profile_fingerprint");
        snap(&g, PROFILE, "dark-friend-profile.png");
        g.click(PROFILE, "profile_close");
    }
    s["theme"] = "light".into();
    std::fs::write(&settings_file, s.to_string()).unwrap();
    let gui = Gui::start(&x, &addr, &p("alice"), work, None, &[]);
    let main_id = gui.window(MAIN);
    dismiss_key_change(&x, &gui);
    x.xdotool(&["windowsize", &main_id, "1000", "660"]);
    gui.wait_until("1000x660 again", |g| {
        g.geometry(MAIN, "@window")
            .is_some_and(|w| w.w == 1000 && w.h == 660)
    });

    drop(server.take());
    gui.click_at(MAIN, "friends", Some((40, 12)), 1);
    bob.send("/msg alice The server is down, but we can still talk.");
    let acks = bob.count(|v| is_event(v, "message_acked", &[("friend", "alice")]));
    gui.wait_until("ack while the server is down", |_| {
        bob.count(|v| is_event(v, "message_acked", &[("friend", "alice")])) > acks
    });
    std::thread::sleep(Duration::from_secs(3));
    snap(&gui, MAIN, "server-down.png");
}

/// Every named widget of the main window that is shown lies inside the `w`×`h` window
/// (logical pixels) with a size: nothing is cut off or pushed outside.
fn assert_nothing_cut_off(gui: &Gui, w: i32, h: i32) {
    for name in [
        "friends",
        "find_input",
        "logout",
        "settings",
        "chat_send",
        "chat_send_file",
        "chat_downloads",
        "chat_profile",
        "chat_input",
        "chat_history",
    ] {
        let g = gui.wait_widget(MAIN, name);
        assert!(
            g.x >= 0 && g.y >= 0 && g.x + g.w <= w && g.y + g.h <= h && g.w > 8 && g.h > 8,
            "{name} cut off in the {w}x{h} window: {g:?}"
        );
    }
}

/// At start the app asks again about carol's pending key change: "Not now" (Esc), with the
/// pointer on the dialog (keys go to the window under it; no window manager here), so the
/// main window takes clicks and keys again.
fn dismiss_key_change(x: &Xvfb, gui: &Gui) {
    let id = gui.window(KEY_CHANGED);
    x.xdotool(&["mousemove", "--window", &id, "20", "20"]);
    gui.key("Escape");
    gui.wait_until("key change dialog closed", |g| {
        g.geometry(KEY_CHANGED, "@window").is_none()
    });
}
