//! Desktop notifications (freedesktop, over D-Bus through `notify-rust`) for what the user
//! does not see: a message in another chat or while the window is behind, an offered file,
//! a friend request, a key change (the model decides which: `Changes::notify`).
//!
//! Without a notification daemon (or a session bus) the call fails, and that is fine: the
//! unread counts and the window title still say it. Each notification is sent from a short
//! thread so a slow bus never stalls the window. With `PEERCHAT_GUI_TEST_NOTIFY_LOG=path`
//! notifications are appended to that file instead (the e2e test counts them).

use std::io::Write as _;
use std::path::PathBuf;

use super::model::Notification;

/// Sends notifications (or logs them for a test).
#[derive(Debug, Default)]
pub struct Notifier {
    log: Option<PathBuf>,
    /// Notifications sent so far (the test hook's count too).
    pub sent: u64,
}

impl Notifier {
    /// Reads the test hook from the environment.
    pub fn from_env() -> Self {
        Self {
            log: std::env::var_os("PEERCHAT_GUI_TEST_NOTIFY_LOG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            sent: 0,
        }
    }

    /// Shows `n` (without waiting for the desktop).
    pub fn show(&mut self, n: &Notification) {
        self.sent += 1;
        if let Some(log) = &self.log {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
            {
                let _ = writeln!(f, "{}\t{}", n.title, n.body.replace('\n', " "));
            }
            return;
        }
        let n = n.clone();
        let _ = std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || {
                let r = notify_rust::Notification::new()
                    .appname("Peerchat")
                    .summary(&n.title)
                    .body(&n.body)
                    .show();
                if let Err(e) = r {
                    tracing::debug!(error = %e, "no desktop notification");
                }
            });
    }
}
