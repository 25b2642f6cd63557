//! The Peerchat desktop app (FLTK), a thin face on the client core: it holds no protocol
//! logic, only windows, a model of what is shown, and wording.
//!
//! Threads: the main thread runs FLTK and owns every widget ([`app::App`]); a backend thread
//! runs tokio and the [`peerchat_client::Client`] ([`backend`]). Actions go to the backend
//! over a channel; events and answers come back through FLTK's `app::channel` ([`msg`]).
//!
//! Files: [`login`], [`register`], [`forgot`], [`recovery`] (the account windows),
//! [`main_window`] (friends, requests, find, status bar), [`confirm`] (are you sure?),
//! [`key_change`] (a friend's identity key changed: accept or not), [`chat_pane`] and [`transfers`]
//! (the conversation), [`model`] (pure state), [`format`] and [`wording`] (pure text),
//! [`layout`] and [`keys`] (pure sizes and keyboard rules), [`settings`] and
//! [`settings_window`] (the settings page), [`notify`] and [`urgency`] (desktop
//! notifications, the task bar hint), [`theme`] and [`widgets`] (look), [`test_hooks`]
//! (automation only).

pub mod app;
pub mod backend;
pub mod chat_pane;
pub mod confirm;
pub mod forgot;
pub mod format;
pub mod key_change;
pub mod keys;
pub mod layout;
pub mod login;
pub mod main_window;
pub mod model;
pub mod msg;
pub mod notify;
pub mod options;
pub mod password_window;
pub mod profile_window;
pub mod recovery;
pub mod register;
pub mod settings;
pub mod settings_window;
pub mod test_hooks;
pub mod theme;
pub mod transfers;
pub mod urgency;
pub mod widgets;
pub mod wording;

use anyhow::Context as _;

/// Runs the app until the user quits.
///
/// # Errors
/// If no profile folder is known or the backend cannot start.
pub fn run(options: options::Options) -> anyhow::Result<()> {
    let profile = match options.profile {
        Some(p) => p,
        None => peerchat_client::profile::Profile::default_dir()
            .context("choosing the profile folder")?,
    };
    std::fs::create_dir_all(&profile)
        .with_context(|| format!("creating the profile folder {}", profile.display()))?;
    let app = app::App::new(options.server, profile, options.scale)?;
    app.run();
    Ok(())
}
