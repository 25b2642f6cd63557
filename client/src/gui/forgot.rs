//! "Forgot password": userid, e-mail, recovery code and a new password; on success the new
//! recovery code is shown once (the old one no longer works).

use fltk::app;
use fltk::button::{Button, ReturnButton};
use fltk::enums::CallbackTrigger;
use fltk::frame::Frame;
use fltk::group::Flex;
use fltk::input::{Input, SecretInput};
use fltk::prelude::*;
use fltk::window::Window;

use super::msg::{Msg, Ui};
use super::recovery::CodePage;
use super::theme;
use super::widgets::{self, form_row, hint_row, name, Named};
use super::wording::PASSWORD_RULE;

/// Window title.
pub const TITLE: &str = "Peerchat — Forgot password";

/// The Forgot password window.
pub struct ForgotWindow {
    /// The window.
    pub win: Window,
    /// The form page.
    pub form: Flex,
    /// Userid.
    pub userid: Input,
    /// E-mail.
    pub email: Input,
    /// Recovery code.
    pub recovery: Input,
    /// New password.
    pub password: SecretInput,
    /// Confirmation.
    pub confirm: SecretInput,
    /// Errors and progress.
    pub message: Frame,
    /// Submit.
    pub reset: ReturnButton,
    /// The code page.
    pub code: CodePage,
    /// Named widgets (test hook).
    pub named: Named,
}

impl ForgotWindow {
    /// Builds the window (hidden).
    pub fn new(tx: app::Sender<Msg>) -> Self {
        let mut named = Named::new();
        let mut win = Window::default().with_size(540, 520).with_label(TITLE);
        let mut form = Flex::default_fill().column();
        form.set_margins(28, 20, 28, 20);
        form.set_pad(6);
        widgets::heading(&mut form, "Reset your password", theme::TITLE_SIZE, 36);
        let mut intro = Frame::default().with_label("Enter your userid, the e-mail address of the account and the recovery code you were given.");
        intro.set_align(
            fltk::enums::Align::Left | fltk::enums::Align::Inside | fltk::enums::Align::Wrap,
        );
        intro.set_label_color(theme::MUTED);
        form.fixed(&intro, 40);
        let lw = 120;
        let indent = lw + theme::GAP;
        let userid: Input = form_row(&mut form, "Userid", lw);
        let email: Input = form_row(&mut form, "E-mail", lw);
        let mut recovery: Input = form_row(&mut form, "Recovery code", lw);
        recovery.set_tooltip("XXXXX-XXXXX-XXXXX-XXXXX (dashes and case do not matter)");
        hint_row(
            &mut form,
            "Dashes, spaces and upper/lower case do not matter.",
            indent,
            1,
        );
        let password: SecretInput = form_row(&mut form, "New password", lw);
        hint_row(&mut form, PASSWORD_RULE, indent, 1);
        let confirm: SecretInput = form_row(&mut form, "Confirm", lw);
        let message = widgets::message(&mut form, 52);
        widgets::spacer();
        let mut buttons = Flex::default().row();
        buttons.set_pad(theme::GAP);
        widgets::spacer();
        let mut cancel = Button::default().with_label("Cancel");
        buttons.fixed(&cancel, 110);
        let mut reset = ReturnButton::default().with_label("Reset password");
        theme::primary(&mut reset);
        buttons.fixed(&reset, 170);
        buttons.end();
        form.fixed(&buttons, theme::ROW + 4);
        form.end();
        let code = CodePage::new(tx, Ui::ForgotClose, "Continue to log in", &mut named);
        win.end();
        win.make_resizable(true);
        win.make_modal(true);
        win.size_range(460, 500, 0, 0);

        for mut i in [userid.clone(), email.clone(), recovery.clone()] {
            i.set_trigger(CallbackTrigger::EnterKeyAlways);
            i.set_callback(move |_| tx.send(Msg::Ui(Ui::ForgotSubmit)));
        }
        for mut i in [password.clone(), confirm.clone()] {
            i.set_trigger(CallbackTrigger::EnterKeyAlways);
            i.set_callback(move |_| tx.send(Msg::Ui(Ui::ForgotSubmit)));
        }
        reset.set_callback(move |_| tx.send(Msg::Ui(Ui::ForgotSubmit)));
        cancel.set_callback(move |_| tx.send(Msg::Ui(Ui::ForgotClose)));
        win.set_callback(move |_| tx.send(Msg::Ui(Ui::ForgotClose)));

        name(&mut named, "userid", &userid);
        name(&mut named, "email", &email);
        name(&mut named, "recovery", &recovery);
        name(&mut named, "password", &password);
        name(&mut named, "confirm", &confirm);
        name(&mut named, "reset", &reset);
        name(&mut named, "message", &message);
        Self {
            win,
            form,
            userid,
            email,
            recovery,
            password,
            confirm,
            message,
            reset,
            code,
            named,
        }
    }

    /// Opens the form (userid prefilled from the login window).
    pub fn open(&mut self, userid: &str) {
        self.userid.set_value(userid);
        for i in [&mut self.email, &mut self.recovery] {
            i.set_value("");
        }
        self.password.set_value("");
        self.confirm.set_value("");
        self.message.set_label("");
        self.reset.activate();
        self.code.page.hide();
        self.form.show();
        self.win = self.win.clone().center_screen();
        self.win.show();
        let _ = if userid.is_empty() {
            self.userid.take_focus()
        } else {
            self.email.take_focus()
        };
    }

    /// Switches to the code page.
    pub fn show_code(&mut self, userid: &str, code: &str) {
        self.form.hide();
        self.password.set_value("");
        self.confirm.set_value("");
        self.recovery.set_value("");
        self.code.show_code(
            &format!("Password changed for \u{201c}{userid}\u{201d}"),
            "Your new recovery code (the old one no longer works):",
            code,
        );
    }
}
