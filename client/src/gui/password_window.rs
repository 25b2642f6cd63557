//! "Change password" (Settings): the current password, the new one twice. The form checks
//! what it can before asking the server (the same rules as Create account, `wording`); the
//! server checks the current password and has the last word on the new one.
//!
//! The request goes through `Action::ChangePassword` to the backend, which calls
//! `Client::change_password` (added by the `account` branch; until it is merged the backend
//! answers that this build cannot do it). A new recovery code, if the server issues one, is
//! shown in the message line to be written down.

use fltk::app;
use fltk::button::{Button, ReturnButton};
use fltk::group::Flex;
use fltk::input::SecretInput;
use fltk::prelude::*;
use fltk::window::Window;

use super::msg::{Msg, Ui};
use super::theme;
use super::widgets::{self, form_row, name, say, Named};
use super::wording::check_new_password;

/// Window title.
pub const TITLE: &str = "Peerchat — Change password";

/// The dialog (hidden until opened from Settings).
pub struct PasswordWindow {
    /// The window.
    pub win: Window,
    old: SecretInput,
    new: SecretInput,
    confirm: SecretInput,
    /// What went wrong, or that it worked.
    pub message: fltk::frame::Frame,
    save: ReturnButton,
    /// Named widgets (test hook).
    pub named: Named,
}

impl PasswordWindow {
    /// Builds the window (hidden).
    pub fn new(tx: app::Sender<Msg>) -> Self {
        let mut named = Named::new();
        let mut win = Window::default().with_size(520, 300).with_label(TITLE);
        let mut col = Flex::default_fill().column();
        col.set_margins(24, 18, 24, 18);
        col.set_pad(8);
        widgets::heading(&mut col, "Change password", theme::TITLE_SIZE, 32);
        let lw = 150;
        let old: SecretInput = form_row(&mut col, "Current password", lw);
        let new: SecretInput = form_row(&mut col, "New password", lw);
        let confirm: SecretInput = form_row(&mut col, "Repeat it", lw);
        let message = widgets::message(&mut col, 40);
        widgets::spacer();
        let mut row = Flex::default().row();
        row.set_pad(theme::GAP);
        widgets::spacer();
        let mut cancel = Button::default().with_label("Cancel");
        row.fixed(&cancel, 100);
        let mut save = ReturnButton::default().with_label("Change");
        theme::primary(&mut save);
        row.fixed(&save, 110);
        row.end();
        col.fixed(&row, theme::ROW + 2);
        col.end();
        win.end();
        fltk::group::Group::set_current(None::<&fltk::group::Group>);
        win.make_modal(true);
        save.set_callback(move |_| tx.send(Msg::Ui(Ui::PasswordSubmit)));
        cancel.set_callback(move |_| tx.send(Msg::Ui(Ui::PasswordClose)));
        win.set_callback(move |_| tx.send(Msg::Ui(Ui::PasswordClose)));
        name(&mut named, "password_old", &old);
        name(&mut named, "password_new", &new);
        name(&mut named, "password_confirm", &confirm);
        name(&mut named, "password_save", &save);
        name(&mut named, "password_message", &message);
        Self {
            win,
            old,
            new,
            confirm,
            message,
            save,
            named,
        }
    }

    /// Shows the empty form over `over`.
    pub fn open(&mut self, over: &Window) {
        for i in [&mut self.old, &mut self.new, &mut self.confirm] {
            i.set_value("");
        }
        self.message.set_label("");
        self.save.activate();
        let (w, h) = (self.win.w(), self.win.h());
        self.win
            .set_pos(over.x() + (over.w() - w) / 2, over.y() + (over.h() - h) / 3);
        self.win.show();
        let _ = self.old.take_focus();
    }

    /// The (current, new) passwords if the form is complete; otherwise says what is wrong.
    pub fn read(&mut self, userid: &str) -> Option<(String, String)> {
        if self.old.value().is_empty() {
            say(
                &mut self.message,
                "Type your current password.",
                theme::ERROR,
            );
            return None;
        }
        if let Some(p) = check_new_password(userid, &self.new.value(), &self.confirm.value()) {
            say(&mut self.message, &p.text(), theme::ERROR);
            return None;
        }
        self.save.deactivate();
        say(&mut self.message, "Changing…", theme::MUTED);
        Some((self.old.value(), self.new.value()))
    }

    /// The server's answer: the window closes on success (the caller says so), or shows why.
    pub fn done(&mut self, result: Result<(), String>) {
        self.save.activate();
        match result {
            Ok(()) => {
                self.win.hide();
            }
            Err(why) => say(&mut self.message, &why, theme::ERROR),
        }
    }
}
