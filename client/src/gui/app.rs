//! The [`App`]: owns the windows, the model and the backend handle, and runs the UI loop.
//!
//! Everything arrives as a [`Msg`] on FLTK's channel — events of the core, answers of the
//! backend and the user's clicks alike — and is handled here on the main thread, so no
//! widget is ever touched from another thread and the UI never waits for the network.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fltk::app;
use fltk::dialog;
use fltk::enums::Color;
use fltk::prelude::*;
use peerchat_client::history::now_ms;
use peerchat_client::transfer::naming::sanitize_folder_name;
use peerchat_client::Event;

use super::backend::Backend;
use super::confirm::confirm;
use super::forgot::ForgotWindow;
use super::format;
use super::key_change::KeyChangeDialog;
use super::login::LoginWindow;
use super::main_window::MainWindow;
use super::model::{key, Changes, Line, Model, ServerState};
use super::msg::{Action, Msg, Problem, Ui};
use super::register::RegisterWindow;
use super::test_hooks::TestHooks;
use super::theme;
use super::widgets::say;
use super::wording::{self, check_new_password};

/// A notice in the status bar stays this long, then the connection state shows again.
const NOTICE_FOR: Duration = Duration::from_secs(8);
/// Typing indicator frames are sent at most this often (the core limits it too).
const TYPING_EVERY: Duration = Duration::from_secs(2);
/// How often the UI ticks (notice expiry, test layout dump).
const TICK: f64 = 0.25;

/// A marker file in the profile: the user logged out, so do not log in by key at start.
const LOGGED_OUT_MARKER: &str = "gui-logged-out";

/// The desktop app.
pub struct App {
    app: app::App,
    rx: app::Receiver<Msg>,
    tx: app::Sender<Msg>,
    backend: Backend,
    model: Model,
    login: LoginWindow,
    register: RegisterWindow,
    forgot: ForgotWindow,
    main: MainWindow,
    key_change: KeyChangeDialog,
    settings: super::settings_window::SettingsWindow,
    profile_win: super::profile_window::ProfileWindow,
    password_win: super::password_window::PasswordWindow,
    /// The server the core talks to.
    server: String,
    profile: PathBuf,
    hooks: TestHooks,
    notifier: super::notify::Notifier,
    /// Show the main window as soon as the core is up (the profile has an account and did
    /// not log out).
    remembered: bool,
    /// The first `Ready` was handled.
    started: bool,
    notice: Option<(String, Color, Instant)>,
    typing_sent: Option<(String, Instant)>,
    quitting: bool,
    /// An account was just created: log in with it when its recovery code page closes.
    log_in_after_register: bool,
    /// The password of the account being created (the form clears it), for that login.
    register_password: Option<String>,
    /// Our identity key's fingerprint (shown in the status bar's tooltip).
    fingerprint: String,
}

impl App {
    /// Builds the windows and starts the backend.
    ///
    /// # Errors
    /// If the backend thread cannot start.
    pub fn new(server: String, profile: PathBuf, scale: Option<f32>) -> anyhow::Result<Self> {
        let fltk_app = app::App::default();
        theme::apply(scale);
        let (tx, rx) = app::channel::<Msg>();
        app::add_handler(enter_presses_focused_button);
        let remembered = !profile.join(LOGGED_OUT_MARKER).exists();
        let login = LoginWindow::new(tx, &server);
        let register = RegisterWindow::new(tx);
        let forgot = ForgotWindow::new(tx);
        let main = MainWindow::new(tx);
        let key_change = KeyChangeDialog::new(tx);
        let settings = super::settings_window::SettingsWindow::new(tx);
        let profile_win = super::profile_window::ProfileWindow::new(tx);
        let password_win = super::password_window::PasswordWindow::new(tx);
        let saved = super::settings::Settings::load(&profile);
        theme::set_theme(saved.theme);
        let mut model = Model::new();
        model.load_verified(saved.verified);
        let backend = Backend::start(server.clone(), profile.clone(), remembered, tx)?;
        Ok(Self {
            app: fltk_app,
            rx,
            tx,
            backend,
            model,
            login,
            register,
            forgot,
            main,
            key_change,
            settings,
            profile_win,
            password_win,
            server,
            profile,
            hooks: TestHooks::from_env(),
            notifier: super::notify::Notifier::from_env(),
            remembered,
            started: false,
            notice: None,
            typing_sent: None,
            quitting: false,
            log_in_after_register: false,
            register_password: None,
            fingerprint: String::new(),
        })
    }

    /// Runs until the user quits.
    pub fn run(mut self) {
        self.login.show();
        let tx = self.tx;
        app::add_timeout3(TICK, move |h| {
            tx.send(Msg::Ui(Ui::Tick));
            app::repeat_timeout3(TICK, h);
        });
        while self.app.wait() {
            while let Some(msg) = self.rx.recv() {
                self.handle(msg);
                if self.quitting {
                    break;
                }
            }
            if self.quitting {
                break;
            }
        }
        self.backend.shutdown();
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Starting => {
                if !self.started {
                    self.login.busy(Some("Starting… (the very first start creates your identity key; this takes a few seconds)"));
                }
            }
            Msg::Ready {
                account,
                server,
                fingerprint,
            } => {
                self.main
                    .status
                    .set_tooltip(&format!("Your identity key: {fingerprint}"));
                self.fingerprint = fingerprint;
                self.on_ready(account, server);
            }
            Msg::StartFailed(p) => {
                self.login.busy(None);
                self.show_login(Some((&p.text(), theme::ERROR)));
            }
            Msg::Core(e) => self.on_event(e),
            Msg::LoginDone(r) => self.on_login_done(r),
            Msg::RegisterDone { userid, result } => self.on_register_done(&userid, result),
            Msg::ForgotDone(r) => self.on_forgot_done(r),
            Msg::LogoutDone => {
                let _ = std::fs::write(self.profile.join(LOGGED_OUT_MARKER), b"");
                self.model = Model::new();
                self.main.win.hide();
                self.show_login(Some(("You have logged out.", theme::MUTED)));
            }
            Msg::FindDone { query, result } => self.on_find_done(&query, result),
            Msg::RequestSent { userid, result } => {
                match result {
                    Ok(true) => self.set_notice(
                        &format!("You and {userid} are now friends."),
                        theme::SUCCESS,
                    ),
                    Ok(false) => say(
                        &mut self.main.find_result,
                        &format!("Request sent to {userid}."),
                        theme::SUCCESS,
                    ),
                    Err(p) => say(&mut self.main.find_result, &p.headline, theme::ERROR),
                }
                self.main.show_send_request(false);
                self.main.found = None;
            }
            Msg::FriendActionDone {
                what,
                userid,
                result,
            } => match result {
                Ok(()) => {
                    let text = match what {
                        "accept" => format!("You and {userid} are now friends."),
                        "refuse" => format!("Request from {userid} refused."),
                        "trust key" => format!("You trust {userid}'s new key now."),
                        _ => format!("{userid} was removed from your friends."),
                    };
                    self.set_notice(&text, theme::SUCCESS);
                }
                Err(p) => self.set_notice(&p.text().replace('\n', " "), theme::ERROR),
            },
            Msg::Friends(s) => {
                let c = self.model.apply_snapshot(&s);
                self.refresh(c);
            }
            Msg::History {
                friend,
                entries,
                files,
            } => {
                let c = self.model.apply_history(&friend, &entries, &files);
                self.refresh(c);
            }
            Msg::MessageSent {
                friend,
                message_id,
                text,
                sent_at_unix_ms,
            } => {
                let c = self
                    .model
                    .apply_sent(&friend, message_id, &text, sent_at_unix_ms);
                self.refresh(c);
            }
            Msg::MessageFailed {
                friend,
                text,
                problem,
            } => {
                let c = self.model.add_notice(
                    &friend,
                    format!("Not sent: \u{201c}{text}\u{201d} — {}", problem.headline),
                    now_ms(),
                );
                self.refresh(c);
            }
            Msg::FileQueued {
                friend,
                path,
                transfer_id,
            } => {
                let c = self
                    .model
                    .file_queued(&friend, &path, Some(transfer_id), None);
                self.refresh(c);
            }
            Msg::FileFailed {
                friend,
                path,
                problem,
            } => {
                let c =
                    self.model
                        .file_queued(&friend, &path, None, Some(problem.headline.clone()));
                self.refresh(c);
            }
            Msg::TransferActionFailed(p) => self.set_notice(&p.headline, theme::ERROR),
            Msg::PasswordChanged(r) => match r {
                Ok(code) => {
                    self.password_win.done(Ok(()));
                    self.set_notice("Your password was changed.", theme::MUTED);
                    if let Some(code) = code {
                        fltk::dialog::message_title("Peerchat — New recovery code");
                        fltk::dialog::message_default(&format!(
                            "Your new recovery code (the old one no longer works):\n\n{code}\n\nWrite it down and keep it safe."
                        ));
                    }
                }
                Err(p) => self.password_win.done(Err(p.text())),
            },
            Msg::ShutDown => {}
            Msg::Ui(ui) => self.on_ui(ui),
        }
    }

    // ----- windows -------------------------------------------------------------------------

    fn show_login(&mut self, message: Option<(&str, Color)>) {
        self.main.win.hide();
        if let Some((text, color)) = message {
            say(&mut self.login.message, text, color);
        }
        self.login.show();
    }

    fn show_main(&mut self) {
        let me = self
            .model
            .me
            .clone()
            .or_else(|| Some(self.login.userid.value()))
            .unwrap_or_default();
        self.main.win.set_label(&format!("Peerchat — {me}"));
        self.login.win.hide();
        self.register.win.hide();
        self.forgot.win.hide();
        if !self.main.win.shown() {
            self.main.win = self.main.win.clone().center_screen();
        }
        self.main.win.show();
        self.refresh(Changes {
            friends: true,
            requests: true,
            status: true,
            ..Changes::default()
        });
        self.show_selected_chat();
        let _ = self.main.find_input.take_focus();
    }

    fn on_ready(&mut self, account: Option<String>, server: String) {
        self.server = server;
        self.login.busy(None);
        if self.login.message.label().starts_with("Starting") {
            self.login.message.set_label("");
        }
        if self.login.userid.value().is_empty() {
            if let Some(a) = &account {
                self.login.userid.set_value(a);
            }
        }
        let first = !self.started;
        self.started = true;
        if first && self.remembered && account.is_some() {
            // A remembered account: straight to the friend list (from the cache until the
            // server answers), so direct chats work even while the server is down.
            self.model.me = account;
            self.show_main();
            self.backend.send(Action::RefreshFriends);
        } else if self.login.win.shown() {
            self.login.show();
        }
    }

    // ----- core events ---------------------------------------------------------------------

    fn on_event(&mut self, e: Event) {
        if let Event::LoginRefused { code } = &e {
            // The automatic (key) login was refused for good: back to the password.
            if self.main.win.shown() {
                self.model = Model::new();
                let text = wording::login_refused(*code);
                self.show_login(Some((&text, theme::ERROR)));
                return;
            }
        }
        if let Event::FriendAdded { friend } = &e {
            // The request sent from the Find box was answered: clear it.
            if self
                .main
                .find_input
                .value()
                .trim()
                .eq_ignore_ascii_case(&friend.userid)
            {
                self.main.find_input.set_value("");
                say(
                    &mut self.main.find_result,
                    "Type a userid and press Enter.",
                    theme::MUTED,
                );
                self.main.show_send_request(false);
            }
        }
        let c = self.model.apply(&e, now_ms());
        if let (true, ServerState::KeyChanged(k)) = (c.server_key_changed, &self.model.server) {
            // A security matter: said once, in full, in a dialog that cannot be missed.
            let text = wording::server_key_changed(&self.server, &k.pinned, &k.presented);
            if self.main.win.shown() {
                dialog::alert_default(&format::wrap(&text, 90).replace('@', "@@"));
            } else {
                say(&mut self.login.message, &text, theme::ERROR);
            }
        }
        if c.logged_in {
            let _ = std::fs::remove_file(self.profile.join(LOGGED_OUT_MARKER));
            self.remembered = true;
            if !self.main.win.shown() {
                self.show_main();
            } else {
                let me = self.model.me.clone().unwrap_or_default();
                self.main.win.set_label(&format!("Peerchat — {me}"));
            }
        }
        self.refresh(c);
    }

    /// Shows the key change dialog for `friend_key` (if its change is still pending).
    fn ask_key_change(&mut self, friend_key: &str) {
        let Some(change) = self.model.key_change(friend_key).cloned() else {
            return;
        };
        let userid = self.model.display(friend_key);
        self.key_change
            .open(&self.main.win, friend_key, &userid, &change);
    }

    /// Redraws what changed.
    fn refresh(&mut self, c: Changes) {
        if let Some(k) = &c.ask_key_change {
            self.ask_key_change(k);
        } else if let Some((k, _)) = self.key_change.showing.clone() {
            // The change ended (accepted elsewhere, or the key changed back): nothing to ask.
            match self.model.key_change(&k) {
                None => {
                    self.key_change.close();
                }
                // Changed again while shown: show the latest key.
                Some(kc)
                    if Some(&kc.presented) != self.key_change.showing.as_ref().map(|s| &s.1) =>
                {
                    self.ask_key_change(&k.clone());
                }
                Some(_) => {}
            }
        }
        if c.verified {
            self.save_verified();
        }
        if let Some(k) = self.profile_win.showing.clone() {
            match self.model.friends.get(&k) {
                Some(f) => {
                    self.profile_win
                        .update(f, self.model.server_online(), &self.fingerprint)
                }
                None => self.profile_win.close(),
            }
        }
        if let Some(n) = &c.notify {
            self.notifier.show(n);
            if !self.model.window_active {
                super::urgency::set_urgent(&self.main.win, true);
            }
        }
        if c.status {
            let offline = matches!(self.model.server, ServerState::Offline(_));
            self.main.show_retry(offline);
        }
        if c.friends {
            self.main.show_friends(&self.model);
            if self.model.me.is_some() {
                let title = self.model.window_title();
                if self.main.win.label() != title {
                    self.main.win.set_label(&title);
                }
            }
        }
        if c.requests {
            self.main.show_requests(&self.model);
        }
        let selected = self.model.selected.clone();
        if let Some(s) = &selected {
            if c.friends || c.chats.contains(s) || c.transfers.contains(s) {
                self.show_selected_chat();
            }
        } else if c.friends {
            self.main.chat.show_nobody(!self.model.friends.is_empty());
        }
        if let Some(n) = c.notice {
            let color = if c.notice_is_error {
                theme::ERROR
            } else {
                theme::MUTED
            };
            self.set_notice(&n, color);
        } else if c.status {
            self.show_status();
        }
    }

    /// Writes the verified marks into the settings file (the rest of it unchanged).
    fn save_verified(&mut self) {
        let mut s = super::settings::Settings::load(&self.profile);
        s.verified = self.model.verified_marks().clone();
        if let Err(e) = s.save(&self.profile) {
            self.set_notice(&format!("Cannot save the Verified mark: {e}"), theme::ERROR);
        }
    }

    fn show_selected_chat(&mut self) {
        match self.model.selected.clone() {
            None => self.main.chat.show_nobody(!self.model.friends.is_empty()),
            Some(k) => {
                let friend = self.model.friends.get(&k);
                let userid = friend.map_or_else(|| k.clone(), |f| f.userid.clone());
                let me = self.model.me.clone().unwrap_or_else(|| "me".to_owned());
                self.main.chat.show_chat(
                    self.tx,
                    &userid,
                    friend,
                    self.model.chats.get(&k),
                    &me,
                    self.model.server_online(),
                );
            }
        }
    }

    fn set_notice(&mut self, text: &str, color: Color) {
        self.notice = Some((text.to_owned(), color, Instant::now() + NOTICE_FOR));
        self.main.set_status(text, color);
    }

    fn show_status(&mut self) {
        let offline = matches!(self.model.server, ServerState::Offline(_));
        self.main.show_retry(offline);
        if let Some((text, color, until)) = &self.notice {
            if Instant::now() < *until {
                let (t, c) = (text.clone(), *color);
                self.main.set_status(&t, c);
                return;
            }
            self.notice = None;
        }
        let me = self.model.me.clone().unwrap_or_default();
        let (text, color) = match &self.model.server {
            ServerState::Connecting => (
                format!("Connecting to the server at {}…", self.server),
                theme::MUTED,
            ),
            ServerState::Online => (
                format!("● Connected to {} as {me}", self.server),
                theme::ONLINE,
            ),
            ServerState::Offline(reason) => (wording::offline_status(*reason), theme::WARNING),
            ServerState::KeyChanged(_) => (
                "● Server key changed — not connecting to it. Direct chats still work.".to_owned(),
                theme::ERROR,
            ),
            ServerState::Replaced => (
                "● Logged in on another device — this one is disconnected. Log out and in again to use it here."
                    .to_owned(),
                theme::ERROR,
            ),
        };
        self.main.set_status(&text, color);
    }

    // ----- answers -------------------------------------------------------------------------

    fn on_login_done(&mut self, r: Result<String, Problem>) {
        self.login.busy(None);
        match r {
            Ok(userid) => {
                self.login.password.set_value("");
                self.login.message.set_label("");
                self.model.me = Some(userid);
                let _ = std::fs::remove_file(self.profile.join(LOGGED_OUT_MARKER));
                if !self.main.win.shown() {
                    self.show_main();
                }
            }
            Err(p) => {
                say(&mut self.login.message, &p.text(), theme::ERROR);
                let _ = self.login.password.take_focus();
            }
        }
    }

    fn on_register_done(&mut self, userid: &str, r: Result<String, Problem>) {
        self.register.create.activate();
        match r {
            Ok(code) => {
                self.register.message.set_label("");
                self.register.show_code(userid, &code);
                // Closing the code page logs in with the new password: nobody should have
                // to type it again right after choosing it (issue #15 item 11).
                self.login.userid.set_value(userid);
                if let Some(pw) = self.register_password.take() {
                    self.login.password.set_value(&pw);
                    self.log_in_after_register = true;
                }
                say(
                    &mut self.login.message,
                    &format!("Account \u{201c}{userid}\u{201d} created. Logging in…"),
                    theme::SUCCESS,
                );
            }
            Err(p) => {
                self.register_password = None;
                say(&mut self.register.message, &p.text(), theme::ERROR);
            }
        }
    }

    fn on_forgot_done(&mut self, r: Result<String, Problem>) {
        self.forgot.reset.activate();
        match r {
            Ok(code) => {
                let userid = self.forgot.userid.value().trim().to_owned();
                self.forgot.message.set_label("");
                self.forgot.show_code(&userid, &code);
                self.login.userid.set_value(&userid);
                self.login.password.set_value("");
                say(
                    &mut self.login.message,
                    "Password changed. Log in with your new password.",
                    theme::SUCCESS,
                );
            }
            Err(p) => say(&mut self.forgot.message, &p.text(), theme::ERROR),
        }
    }

    fn on_find_done(&mut self, query: &str, result: Result<Option<String>, Problem>) {
        self.main.found = None;
        self.main.show_send_request(false);
        let r = &mut self.main.find_result;
        match result {
            Ok(Some(u)) => {
                let k = key(&u);
                if self.model.me.as_deref().map(key).as_deref() == Some(k.as_str()) {
                    say(r, "That is you.", theme::MUTED);
                } else if self.model.friends.contains_key(&k) {
                    say(r, &format!("{u} is already your friend."), theme::MUTED);
                } else if self.model.outgoing.iter().any(|x| key(x) == k) {
                    say(r, &format!("Request to {u} already sent."), theme::MUTED);
                } else if self.model.incoming.iter().any(|x| key(x) == k) {
                    say(r, &format!("{u} asked you: accept below."), theme::MUTED);
                } else {
                    say(r, &format!("✓ {u} found"), theme::SUCCESS);
                    self.main.found = Some(u);
                    self.main.show_send_request(true);
                    let _ = self.main.send_request.take_focus();
                }
            }
            Ok(None) => say(
                r,
                &format!("No user \u{201c}{}\u{201d}.", query.trim()),
                theme::ERROR,
            ),
            Err(p) => say(r, &p.headline, theme::ERROR),
        }
        self.main.win.redraw();
    }

    // ----- user actions --------------------------------------------------------------------

    fn on_ui(&mut self, ui: Ui) {
        match ui {
            Ui::LoginSubmit => self.submit_login(),
            Ui::OpenRegister => self.register.open(),
            Ui::OpenForgot => {
                let u = self.login.userid.value();
                self.forgot.open(u.trim());
            }
            Ui::RegisterSubmit => self.submit_register(),
            Ui::RegisterClose => {
                self.register.win.hide();
                self.login.show();
                if std::mem::take(&mut self.log_in_after_register) {
                    self.submit_login();
                }
            }
            Ui::ForgotSubmit => self.submit_forgot(),
            Ui::ForgotClose => {
                self.forgot.win.hide();
                self.login.show();
            }
            Ui::CopyCode(code) => {
                app::copy(&code);
                for page in [&mut self.register.code, &mut self.forgot.code] {
                    page.copied.set_label("Copied to the clipboard.");
                    page.copied.redraw();
                }
            }
            Ui::Find => {
                let q = self.main.find_input.value();
                if q.trim().is_empty() {
                    say(
                        &mut self.main.find_result,
                        "Type a userid first.",
                        theme::MUTED,
                    );
                } else {
                    say(&mut self.main.find_result, "Searching…", theme::MUTED);
                    self.main.show_send_request(false);
                    self.backend.send(Action::Find(q.trim().to_owned()));
                }
            }
            Ui::SendRequestToFound => {
                if let Some(u) = self.main.found.clone() {
                    self.main.send_request.deactivate();
                    say(
                        &mut self.main.find_result,
                        &format!("Sending a request to {u}…"),
                        theme::MUTED,
                    );
                    self.backend.send(Action::SendFriendRequest(u));
                }
            }
            Ui::Key(a) => self.on_key(a),
            Ui::SearchNext => {
                if !self.main.chat.search_next() {
                    self.set_notice("Not found in this conversation.", theme::MUTED);
                }
            }
            Ui::SearchClose => self.main.chat.close_search(),
            Ui::FriendSelected => {
                let k = self.main.selected_friend();
                self.open_chat(k);
            }
            Ui::FriendListHover(inside) => {
                let shown = inside.then(|| self.main.friend_keys.clone());
                let c = self.model.freeze_list(shown);
                self.refresh(c);
            }
            Ui::Unfriend => self.unfriend(),
            Ui::AcceptRequest => {
                if let Some(u) = self.main.selected_request(&self.model) {
                    self.backend.send(Action::Accept(u));
                }
            }
            Ui::RefuseRequest => {
                if let Some(u) = self.main.selected_request(&self.model) {
                    self.backend.send(Action::Refuse(u));
                }
            }
            Ui::Logout => self.backend.send(Action::Logout),
            Ui::RetryNow => {
                self.backend.send(Action::RetryNow);
                self.set_notice("Connecting to the server…", theme::MUTED);
            }
            Ui::OpenSettings => {
                let s = super::settings::Settings::load(&self.profile);
                self.settings.open(&self.main.win, &s);
            }
            Ui::SettingsSave => match self
                .settings
                .read(super::settings::Settings::load(&self.profile))
            {
                Ok(s) => match s.save(&self.profile) {
                    Ok(()) => {
                        // The folder and the size limit apply to the next offer, no restart.
                        self.backend.send(Action::UpdateSettings {
                            download_dir: s.downloads(),
                            auto_accept: s.auto_accept(),
                        });
                        theme::set_theme(s.theme);
                        app::redraw();
                        self.settings.win.hide();
                        self.set_notice("Settings saved.", theme::MUTED);
                    }
                    Err(e) => say(
                        &mut self.settings.message,
                        &format!("Cannot save the settings: {e}"),
                        theme::ERROR,
                    ),
                },
                Err(why) => say(&mut self.settings.message, &why, theme::ERROR),
            },
            Ui::SettingsClose => self.settings.win.hide(),
            Ui::SendMessage => self.send_message(),
            Ui::InputChanged => {
                self.main.chat.fit_input();
                self.typing();
            }
            Ui::SendFile => self.pick_and_send_file(),
            Ui::FilesDropped(text) => {
                for p in dropped_paths(&text) {
                    self.send_file(p);
                }
            }
            Ui::OpenDownloads => {
                let downloads = super::settings::Settings::load(&self.profile).downloads();
                let dir = self
                    .model
                    .selected
                    .as_deref()
                    .map(|f| downloads.join(sanitize_folder_name(&self.model.display(f))))
                    .filter(|d| d.is_dir());
                self.open_folder(&dir.unwrap_or(downloads));
            }
            Ui::HistoryClicked { pos, double } => {
                let Some(friend) = self.model.selected.clone() else {
                    return;
                };
                let pos = usize::try_from(pos).unwrap_or(0);
                if let Some(t) = format::target_at(&self.main.chat.rendered, pos).cloned() {
                    if !double {
                        self.open_target(&t);
                    }
                    return;
                }
                if !double {
                    return;
                }
                let Some(idx) = format::line_at(&self.main.chat.rendered, pos) else {
                    return;
                };
                if let Some(Line::File { path, .. }) = self.model.file_line(&friend, idx) {
                    if let Some(dir) = path.parent().map(Path::to_path_buf) {
                        self.open_folder(&dir);
                    }
                }
            }
            Ui::AcceptFile(id) => self.backend.send(Action::AcceptFile(id)),
            Ui::DeclineFile(id) => self.backend.send(Action::DeclineFile(id)),
            Ui::CancelTransfer(id) => self.backend.send(Action::CancelTransfer(id)),
            Ui::OpenFolder(dir) => self.open_folder(&dir),
            Ui::DismissTransfer(id) => {
                let c = self.model.dismiss(id);
                self.refresh(c);
            }
            Ui::Quit => {
                for w in [
                    &mut self.login.win,
                    &mut self.register.win,
                    &mut self.forgot.win,
                    &mut self.main.win,
                ] {
                    w.hide();
                }
                self.quitting = true;
            }
            Ui::KeyChangeAccept => {
                if let Some((friend, fingerprint)) = self.key_change.close() {
                    self.backend.send(Action::AcceptFriendKey {
                        friend,
                        fingerprint,
                    });
                }
            }
            Ui::KeyChangeNotNow => {
                if let Some((friend, _)) = self.key_change.close() {
                    let userid = self.model.display(&friend);
                    self.set_notice(
                        &format!("Messages to {userid} stay held until you accept their new key."),
                        theme::WARNING,
                    );
                }
            }
            Ui::OpenProfile => {
                if let Some(f) = self
                    .model
                    .selected
                    .as_ref()
                    .and_then(|k| self.model.friends.get(k))
                {
                    self.profile_win.open(
                        &self.main.win,
                        f,
                        self.model.server_online(),
                        &self.fingerprint,
                    );
                }
            }
            Ui::ProfileVerified(on) => {
                if let Some(k) = self.profile_win.showing.clone() {
                    match self.model.set_verified(&k, on) {
                        Ok(c) => self.refresh(c),
                        Err(why) => {
                            self.set_notice(&why, theme::ERROR);
                            let c = Changes {
                                friends: true,
                                ..Changes::default()
                            };
                            self.refresh(c);
                        }
                    }
                }
            }
            Ui::ProfileClose => self.profile_win.close(),
            Ui::OpenPassword => self.password_win.open(&self.settings.win),
            Ui::PasswordSubmit => {
                let me = self.model.me.clone().unwrap_or_default();
                if let Some((old, new)) = self.password_win.read(&me) {
                    self.backend.send(Action::ChangePassword { old, new });
                }
            }
            Ui::PasswordClose => self.password_win.win.hide(),
            Ui::ReviewKeyChange => {
                if let Some(k) = self.model.selected.clone() {
                    self.ask_key_change(&k);
                }
            }
            Ui::Tick => self.tick(),
        }
    }

    fn submit_login(&mut self) {
        let server = self.login.server.value().trim().to_owned();
        let userid = self.login.userid.value().trim().to_owned();
        let password = self.login.password.value();
        let missing = if server.is_empty() {
            Some((
                "Please enter the server address (HOST:PORT).",
                &mut self.login.server as &mut dyn WidgetExt,
            ))
        } else if userid.is_empty() {
            Some((
                "Please enter your userid.",
                &mut self.login.userid as &mut dyn WidgetExt,
            ))
        } else if password.is_empty() {
            Some((
                "Please enter your password.",
                &mut self.login.password as &mut dyn WidgetExt,
            ))
        } else {
            None
        };
        if let Some((text, field)) = missing {
            let _ = field.take_focus();
            say(&mut self.login.message, text, theme::ERROR);
            return;
        }
        self.login.busy(Some("Logging in…"));
        self.backend.send(Action::Login {
            server,
            userid,
            password,
        });
    }

    fn submit_register(&mut self) {
        let r = &mut self.register;
        let userid = r.userid.value().trim().to_owned();
        let email = r.email.value().trim().to_owned();
        let (password, confirm) = (r.password.value(), r.confirm.value());
        let problems = wording::register_problems(&userid, &email, &password, &confirm);
        if !problems.is_empty() {
            let text: Vec<String> = problems
                .iter()
                .map(|p| format!("• {}", p.headline))
                .collect();
            say(&mut r.message, &text.join("\n"), theme::ERROR);
            return;
        }
        r.create.deactivate();
        say(&mut r.message, "Creating your account…", theme::MUTED);
        self.register_password = Some(password.clone());
        let server = self.login.server.value().trim().to_owned();
        self.backend.send(Action::Register {
            server,
            userid,
            email,
            password,
        });
    }

    fn submit_forgot(&mut self) {
        let f = &mut self.forgot;
        let userid = f.userid.value().trim().to_owned();
        let email = f.email.value().trim().to_owned();
        let code = f.recovery.value().trim().to_owned();
        let (password, confirm) = (f.password.value(), f.confirm.value());
        let problem = if userid.is_empty() || email.is_empty() || code.is_empty() {
            Some(Problem {
                headline: "Please fill in every field.".into(),
                detail: String::new(),
            })
        } else {
            check_new_password(&userid, &password, &confirm)
        };
        if let Some(p) = problem {
            say(&mut f.message, &p.text(), theme::ERROR);
            return;
        }
        f.reset.deactivate();
        say(&mut f.message, "Resetting your password…", theme::MUTED);
        let server = self.login.server.value().trim().to_owned();
        self.backend.send(Action::ForgotPassword {
            server,
            userid,
            email,
            recovery_code: code,
            new_password: password,
        });
    }

    /// Shows the chat with `k` (None: nobody), loading its stored history the first time.
    fn open_chat(&mut self, k: Option<String>) {
        let c = self.model.select(k.as_deref());
        if let Some(k) = &k {
            if !self.model.chats.get(k).is_some_and(|c| c.history_loaded) {
                self.model.chat_mut(k).history_loaded = true;
                self.backend.send(Action::LoadHistory(k.clone()));
            }
        }
        self.refresh(Changes { friends: true, ..c });
        self.show_selected_chat();
        if k.is_some()
            && app::event_key() != fltk::enums::Key::Up
            && app::event_key() != fltk::enums::Key::Down
        {
            let _ = self.main.chat.input.take_focus();
        }
    }

    /// A keyboard shortcut of the main window (see `keys`).
    fn on_key(&mut self, a: super::keys::KeyAction) {
        use super::keys::KeyAction;
        if !self.main.win.shown() {
            return;
        }
        match a {
            KeyAction::MoveChat(d) => {
                if let Some(k) = self.model.neighbour(d) {
                    self.open_chat(Some(k));
                    let _ = self.main.chat.input.take_focus();
                }
            }
            KeyAction::OpenChat(n) => {
                if let Some(k) = self.model.nth_in_list(n) {
                    self.open_chat(Some(k));
                }
            }
            KeyAction::Search => {
                if self.model.selected.is_some() {
                    self.main.chat.open_search();
                }
            }
            KeyAction::Send | KeyAction::NewLine => {}
        }
    }

    fn unfriend(&mut self) {
        let Some(k) = self.model.selected.clone() else {
            return;
        };
        let name = self.model.display(&k);
        let question = format!("Remove {name} from your friends?");
        let detail = "You will no longer see each other online and cannot chat until one of you sends a new friend request. The chat history stays on this computer.";
        if confirm(&self.main.win, &question, detail, "Unfriend") {
            self.backend.send(Action::Unfriend(name));
        }
    }

    fn send_message(&mut self) {
        let Some(k) = self.model.selected.clone() else {
            return;
        };
        let text = self.main.chat.input.value();
        if text.trim().is_empty() {
            return;
        }
        self.main.chat.input.set_value("");
        self.main.chat.fit_input();
        let friend = self.model.display(&k);
        self.backend.send(Action::SendMessage {
            friend: friend.clone(),
            text,
        });
        if self.typing_sent.take().is_some() {
            self.backend.send(Action::Typing {
                friend,
                active: false,
            });
        }
    }

    fn typing(&mut self) {
        let Some(k) = self.model.selected.clone() else {
            return;
        };
        let due = match &self.typing_sent {
            Some((f, at)) => *f != k || at.elapsed() >= TYPING_EVERY,
            None => true,
        };
        if due {
            self.typing_sent = Some((k.clone(), Instant::now()));
            self.backend.send(Action::Typing {
                friend: self.model.display(&k),
                active: true,
            });
        }
    }

    fn pick_and_send_file(&mut self) {
        if self.model.selected.is_none() {
            return;
        }
        let path = match self.hooks.file_to_send() {
            Some(p) => Some(p),
            None => {
                let mut chooser =
                    dialog::NativeFileChooser::new(dialog::NativeFileChooserType::BrowseFile);
                chooser.set_title("Send a file");
                // Start in the home folder, not GTK's empty "Recently Used" (issue #15 item 12).
                if let Some(home) = dirs::home_dir() {
                    let _ = chooser.set_directory(&home);
                }
                chooser.show();
                let p = chooser.filename();
                (!p.as_os_str().is_empty()).then_some(p)
            }
        };
        if let Some(p) = path {
            self.send_file(p);
        }
    }

    fn send_file(&mut self, path: PathBuf) {
        let Some(k) = self.model.selected.clone() else {
            return;
        };
        if !path.is_file() {
            self.set_notice(&format!("Not a file: {}", path.display()), theme::ERROR);
            return;
        }
        let c = self.model.file_preparing(&k, path.clone());
        self.refresh(c);
        self.backend.send(Action::SendFile {
            friend: self.model.display(&k),
            path,
        });
    }

    fn open_folder(&mut self, dir: &Path) {
        self.open_target(&format::Target::Folder(dir.to_path_buf()));
    }

    /// Opens a link, a file or a folder with the desktop's opener (xdg-open).
    fn open_target(&mut self, t: &format::Target) {
        let what = match t {
            format::Target::Url(u) => std::ffi::OsString::from(u),
            format::Target::File(p) | format::Target::Folder(p) => p.clone().into_os_string(),
        };
        if self.hooks.record_open(Path::new(&what)) {
            return;
        }
        if let Err(e) = open_with_desktop(&what) {
            let text = wording::open_failed(&what.to_string_lossy(), &e);
            self.set_notice(&text, theme::ERROR);
        }
    }

    fn tick(&mut self) {
        // FLTK drops the keyboard focus when its windows lose the X focus: no focus widget
        // in the main window means the user looks elsewhere (notifications then).
        self.model.window_active = self.main.win.shown()
            && app::focus()
                .and_then(|f| f.top_window())
                .is_some_and(|w| w.as_widget_ptr() == self.main.win.as_widget_ptr());
        if self.model.window_active {
            // The user is back: the task bar stops asking for attention.
            super::urgency::set_urgent(&self.main.win, false);
        }
        if let Some((_, _, until)) = &self.notice {
            if Instant::now() >= *until {
                self.notice = None;
                self.show_status();
            }
        }
        if let Some(chat) = self
            .model
            .selected
            .as_ref()
            .and_then(|k| self.model.chats.get(k))
        {
            self.main.chat.tick_rows(self.tx, &chat.transfers);
        }
        self.main.chat.rewrap_if_resized();
        let mut main_named = self.main.named.clone();
        main_named.extend(self.main.chat.row_names());
        let windows = [
            (&self.login.win, &self.login.named),
            (&self.register.win, &self.register.named),
            (&self.forgot.win, &self.forgot.named),
            (&self.main.win, &main_named),
            (&self.key_change.win, &self.key_change.named),
            (&self.settings.win, &self.settings.named),
            (&self.profile_win.win, &self.profile_win.named),
            (&self.password_win.win, &self.password_win.named),
        ];
        self.hooks.dump_layout(&windows);
        self.hooks.dump_chat(&self.main.chat.rendered.text);
    }
}

/// Enter on a focused button presses it, as Space does (FLTK buttons take only Space; issue
/// #15 item 9). Called for key events no widget took.
fn enter_presses_focused_button(ev: fltk::enums::Event) -> bool {
    use fltk::enums::{Event, Key};
    if ev != Event::Shortcut || !matches!(app::event_key(), Key::Enter | Key::KPEnter) {
        return false;
    }
    let Some(focus) = app::focus() else {
        return false;
    };
    match fltk::button::Button::from_dyn_widget(&focus) {
        Some(mut b) if b.active_r() && b.visible_r() => {
            b.do_callback();
            true
        }
        _ => false,
    }
}

/// Paths from a drag-and-drop payload: one per line, plain or `file://` URIs.
fn dropped_paths(text: &str) -> Vec<PathBuf> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| PathBuf::from(percent_decode(l.strip_prefix("file://").unwrap_or(l))))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Opens a folder, a file or a link with the desktop's opener, without waiting for it.
fn open_with_desktop(dir: &std::ffi::OsStr) -> std::io::Result<()> {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    let mut child = std::process::Command::new(program)
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .spawn()?;
    // Reap it in the background so no zombie stays behind.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_uris_become_paths() {
        let p = dropped_paths("file:///tmp/a%20b.txt\r\n/home/x/y.bin\n\n");
        assert_eq!(
            p,
            [
                PathBuf::from("/tmp/a b.txt"),
                PathBuf::from("/home/x/y.bin")
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
