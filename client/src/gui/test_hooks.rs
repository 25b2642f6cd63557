//! Hidden hooks for automated tests, read from environment variables. They replace only
//! what a test cannot drive through X11 events, never the flows themselves:
//!
//! - `PEERCHAT_GUI_TEST_FILE=path`: "Send file…" sends this file instead of opening the
//!   native file chooser (a GTK or KDE dialog that cannot be scripted reliably).
//! - `PEERCHAT_GUI_TEST_LAYOUT=path`: the app writes where its widgets are (window-relative
//!   logical coordinates), so a test clicks the real widgets without hard-coding a layout.
//!   Lines: `window-title <TAB> widget <TAB> x <TAB> y <TAB> w <TAB> h <TAB> visible <TAB>
//!   label` (the label on one line: what a message or status line says).
//!   Beside it, `<layout>.chat.txt` holds the text of the chat shown (times, `<File>` lines),
//!   so a test reads what the user reads.
//! - `PEERCHAT_GUI_TEST_OPEN_LOG=path`: "Open folder" appends the folder to this file instead
//!   of starting the desktop's file manager.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use fltk::prelude::*;
use fltk::window::Window;

use super::widgets::Named;

/// The hooks in effect (all off in normal use).
#[derive(Debug, Default)]
pub struct TestHooks {
    file: Option<PathBuf>,
    layout: Option<PathBuf>,
    open_log: Option<PathBuf>,
    last_layout: String,
    last_chat: String,
}

impl TestHooks {
    /// Reads the environment.
    pub fn from_env() -> Self {
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            file: path("PEERCHAT_GUI_TEST_FILE"),
            layout: path("PEERCHAT_GUI_TEST_LAYOUT"),
            open_log: path("PEERCHAT_GUI_TEST_OPEN_LOG"),
            last_layout: String::new(),
            last_chat: String::new(),
        }
    }

    /// The file to send instead of asking with the native chooser.
    pub fn file_to_send(&self) -> Option<PathBuf> {
        self.file.clone()
    }

    /// Records an "open folder" instead of opening it; false when the hook is off.
    pub fn record_open(&self, dir: &Path) -> bool {
        let Some(log) = &self.open_log else {
            return false;
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{}", dir.display());
        }
        true
    }

    /// Writes the text of the chat shown if it changed.
    pub fn dump_chat(&mut self, text: &str) {
        let Some(path) = &self.layout else { return };
        if text != self.last_chat {
            let path = path.with_extension("chat.txt");
            let tmp = path.with_extension("tmp2");
            if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, &path).is_ok() {
                text.clone_into(&mut self.last_chat);
            }
        }
    }

    /// Writes the layout of the shown windows if it changed.
    pub fn dump_layout(&mut self, windows: &[(&Window, &Named)]) {
        let Some(path) = &self.layout else { return };
        let mut out = String::new();
        for (win, named) in windows {
            if !win.shown() || !win.visible() {
                continue;
            }
            let title = win.label();
            out.push_str(&format!(
                "{title}\t@window\t{}\t{}\t{}\t{}\t1\n",
                win.x_root(),
                win.y_root(),
                win.w(),
                win.h()
            ));
            for (name, w) in named.iter() {
                let visible = u8::from(w.visible_r());
                // The label on one line: a test reads what a message says.
                let label: String = w
                    .label()
                    .chars()
                    .map(|c| if c == '\t' || c == '\n' { ' ' } else { c })
                    .collect();
                out.push_str(&format!(
                    "{title}\t{name}\t{}\t{}\t{}\t{}\t{visible}\t{label}\n",
                    w.x(),
                    w.y(),
                    w.w(),
                    w.h()
                ));
            }
        }
        if out != self.last_layout {
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, &out).is_ok() && std::fs::rename(&tmp, path).is_ok() {
                self.last_layout = out;
            }
        }
    }
}
