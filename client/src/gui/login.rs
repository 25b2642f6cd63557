//! The login window: server address, userid, password; Log in, Create account, Forgot
//! password. Enter submits; errors appear in the window in plain words.

use fltk::app;
use fltk::button::{Button, ReturnButton};
use fltk::enums::{CallbackTrigger, Event, Font, Key};
use fltk::frame::Frame;
use fltk::group::Flex;
use fltk::input::{Input, SecretInput};
use fltk::prelude::*;
use fltk::window::Window;

use super::msg::{Msg, Ui};
use super::theme;
use super::widgets::{self, form_row, name, Named};

/// Window title (the e2e test finds the window by it).
pub const TITLE: &str = "Peerchat — Log in";

/// The login window and its widgets.
pub struct LoginWindow {
    /// The window.
    pub win: Window,
    /// Server `HOST:PORT`.
    pub server: Input,
    /// Userid.
    pub userid: Input,
    /// Password.
    pub password: SecretInput,
    /// Errors and progress.
    pub message: Frame,
    /// Log in.
    pub login: ReturnButton,
    /// Create account.
    pub register: Button,
    /// Forgot password.
    pub forgot: Button,
    /// Named widgets (test hook).
    pub named: Named,
}

impl LoginWindow {
    /// Builds the window (hidden).
    pub fn new(tx: app::Sender<Msg>, server: &str) -> Self {
        let mut win = Window::default().with_size(460, 420).with_label(TITLE);
        win.set_xclass("peerchat");
        let mut col = Flex::default_fill().column();
        col.set_margins(28, 20, 28, 20);
        col.set_pad(theme::GAP);

        let mut title = Frame::default().with_label("Peerchat");
        title.set_label_font(Font::HelveticaBold);
        title.set_label_size(26);
        title.set_label_color(theme::ACCENT);
        col.fixed(&title, 40);
        let mut sub =
            Frame::default().with_label("Chat and share files directly with your friends.");
        sub.set_label_color(theme::MUTED);
        sub.set_label_size(theme::SMALL_SIZE + 1);
        col.fixed(&sub, 20);
        let gap = widgets::spacer();
        col.fixed(&gap, 6);

        let label_w = 80;
        let mut server_in: Input = form_row(&mut col, "Server", label_w);
        server_in.set_value(server);
        server_in.set_tooltip("The Peerchat server, HOST:PORT");
        let userid: Input = form_row(&mut col, "Userid", label_w);
        let password: SecretInput = form_row(&mut col, "Password", label_w);

        let message = widgets::message(&mut col, 62);

        let mut buttons = Flex::default().row();
        let pad = Frame::default();
        buttons.fixed(&pad, label_w);
        let mut login = ReturnButton::default().with_label("Log in");
        theme::primary(&mut login);
        buttons.end();
        col.fixed(&buttons, theme::ROW + 4);

        widgets::spacer();
        let links = Flex::default().row();
        let mut register = Button::default().with_label("Create account");
        let mut forgot = Button::default().with_label("Forgot password?");
        theme::link(&mut register);
        theme::link(&mut forgot);
        links.end();
        col.fixed(&links, theme::ROW);
        col.end();
        win.end();
        win.make_resizable(true);
        win.size_range(380, 400, 0, 0);

        // Enter in any field submits, like the Log in button.
        for mut i in [server_in.clone(), userid.clone()] {
            i.set_trigger(CallbackTrigger::EnterKeyAlways);
            i.set_callback(move |_| tx.send(Msg::Ui(Ui::LoginSubmit)));
        }
        let mut p = password.clone();
        p.set_trigger(CallbackTrigger::EnterKeyAlways);
        p.set_callback(move |_| tx.send(Msg::Ui(Ui::LoginSubmit)));
        login.set_callback(move |_| tx.send(Msg::Ui(Ui::LoginSubmit)));
        register.set_callback(move |_| tx.send(Msg::Ui(Ui::OpenRegister)));
        forgot.set_callback(move |_| tx.send(Msg::Ui(Ui::OpenForgot)));
        // Esc must not quit the app from its first window; the close box does.
        win.set_callback(move |_| {
            if !(app::event() == Event::Shortcut && app::event_key() == Key::Escape) {
                tx.send(Msg::Ui(Ui::Quit));
            }
        });

        let mut named = Named::new();
        name(&mut named, "server", &server_in);
        name(&mut named, "userid", &userid);
        name(&mut named, "password", &password);
        name(&mut named, "login", &login);
        name(&mut named, "register", &register);
        name(&mut named, "forgot", &forgot);
        name(&mut named, "message", &message);
        Self {
            win,
            server: server_in,
            userid,
            password,
            message,
            login,
            register,
            forgot,
            named,
        }
    }

    /// Shows the window centred, focusing the first empty field.
    pub fn show(&mut self) {
        if !self.win.shown() {
            self.win = self.win.clone().center_screen();
        }
        self.win.show();
        let _ = if self.userid.value().is_empty() {
            self.userid.take_focus()
        } else {
            self.password.take_focus()
        };
    }

    /// Disables the buttons while a request runs (and says so), or enables them again.
    pub fn busy(&mut self, text: Option<&str>) {
        if text.is_some() {
            self.login.deactivate();
            self.register.deactivate();
            self.forgot.deactivate();
        } else {
            self.login.activate();
            self.register.activate();
            self.forgot.activate();
        }
        if let Some(t) = text {
            widgets::say(&mut self.message, t, theme::MUTED);
        }
    }
}
