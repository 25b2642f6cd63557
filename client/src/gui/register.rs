//! "Create account": userid, e-mail, password twice, with the rules shown; on success the
//! recovery code is shown once (see [`super::recovery`]).

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
use super::wording::{PASSWORD_RULE, USERID_RULE};

/// Window title.
pub const TITLE: &str = "Peerchat — Create account";

/// The Create account window.
pub struct RegisterWindow {
    /// The window.
    pub win: Window,
    /// The form page.
    pub form: Flex,
    /// Userid.
    pub userid: Input,
    /// E-mail.
    pub email: Input,
    /// Password.
    pub password: SecretInput,
    /// Confirmation.
    pub confirm: SecretInput,
    /// Errors and progress.
    pub message: Frame,
    /// Submit.
    pub create: ReturnButton,
    /// The code page.
    pub code: CodePage,
    /// Named widgets (test hook).
    pub named: Named,
}

impl RegisterWindow {
    /// Builds the window (hidden).
    pub fn new(tx: app::Sender<Msg>) -> Self {
        let mut named = Named::new();
        let mut win = Window::default().with_size(540, 520).with_label(TITLE);
        let mut form = Flex::default_fill().column();
        form.set_margins(28, 20, 28, 20);
        form.set_pad(6);
        widgets::heading(
            &mut form,
            "Create a Peerchat account",
            theme::TITLE_SIZE,
            36,
        );
        let lw = 90;
        let indent = lw + theme::GAP;
        let userid: Input = form_row(&mut form, "Userid", lw);
        hint_row(&mut form, USERID_RULE, indent, 2);
        let email: Input = form_row(&mut form, "E-mail", lw);
        hint_row(
            &mut form,
            "Only used to reset a forgotten password.",
            indent,
            1,
        );
        let password: SecretInput = form_row(&mut form, "Password", lw);
        hint_row(&mut form, PASSWORD_RULE, indent, 1);
        let confirm: SecretInput = form_row(&mut form, "Confirm", lw);
        hint_row(&mut form, "Type the password again.", indent, 1);
        let message = widgets::message(&mut form, 64);
        widgets::spacer();
        let mut buttons = Flex::default().row();
        buttons.set_pad(theme::GAP);
        widgets::spacer();
        let mut cancel = Button::default().with_label("Cancel");
        buttons.fixed(&cancel, 110);
        let mut create = ReturnButton::default().with_label("Create account");
        theme::primary(&mut create);
        buttons.fixed(&create, 170);
        buttons.end();
        form.fixed(&buttons, theme::ROW + 4);
        form.end();
        let code = CodePage::new(tx, Ui::RegisterClose, "Continue to log in", &mut named);
        win.end();
        win.make_resizable(true);
        win.make_modal(true);
        win.size_range(460, 500, 0, 0);

        for mut i in [userid.clone(), email.clone()] {
            i.set_trigger(CallbackTrigger::EnterKeyAlways);
            i.set_callback(move |_| tx.send(Msg::Ui(Ui::RegisterSubmit)));
        }
        for mut i in [password.clone(), confirm.clone()] {
            i.set_trigger(CallbackTrigger::EnterKeyAlways);
            i.set_callback(move |_| tx.send(Msg::Ui(Ui::RegisterSubmit)));
        }
        create.set_callback(move |_| tx.send(Msg::Ui(Ui::RegisterSubmit)));
        cancel.set_callback(move |_| tx.send(Msg::Ui(Ui::RegisterClose)));
        // Esc and the close box both close this dialog.
        win.set_callback(move |_| tx.send(Msg::Ui(Ui::RegisterClose)));

        name(&mut named, "userid", &userid);
        name(&mut named, "email", &email);
        name(&mut named, "password", &password);
        name(&mut named, "confirm", &confirm);
        name(&mut named, "create", &create);
        name(&mut named, "cancel", &cancel);
        name(&mut named, "message", &message);
        Self {
            win,
            form,
            userid,
            email,
            password,
            confirm,
            message,
            create,
            code,
            named,
        }
    }

    /// Opens the form, empty.
    pub fn open(&mut self) {
        for i in [&mut self.userid, &mut self.email] {
            i.set_value("");
        }
        self.password.set_value("");
        self.confirm.set_value("");
        self.message.set_label("");
        self.create.activate();
        self.code.page.hide();
        self.form.show();
        self.win = self.win.clone().center_screen();
        self.win.show();
        let _ = self.userid.take_focus();
    }

    /// Switches to the code page.
    pub fn show_code(&mut self, userid: &str, code: &str) {
        self.form.hide();
        self.password.set_value("");
        self.confirm.set_value("");
        self.code.show_code(
            &format!("Account \u{201c}{userid}\u{201d} created"),
            "Your recovery code:",
            code,
        );
    }
}
