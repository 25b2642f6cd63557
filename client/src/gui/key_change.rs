//! "Identity key changed": the modal dialog shown when a friend's key differs from the one
//! we trust (SPEC.md §12.4). It shows both fingerprints in full and offers "Accept new key"
//! and "Not now"; "Not now" is the default (Enter, Esc, the close box), so accepting a key
//! takes a deliberate click. Until the user accepts, the core holds every message and file
//! to that friend, and the chat pane says so in a banner (`chat_pane`).
//!
//! A window of its own (not a nested event loop like `confirm`): the app's loop keeps
//! running, so events still arrive (a key that changes again updates the dialog) and the
//! test hook can see its widgets.

use fltk::app;
use fltk::button::{Button, ReturnButton};
use fltk::enums::{Align, Color, Font};
use fltk::frame::Frame;
use fltk::group::Flex;
use fltk::prelude::*;
use fltk::window::Window;

use super::model::KeyChange;
use super::msg::{Msg, Ui};
use super::theme;
use super::widgets::{self, name, Named};

/// Window title.
pub const TITLE: &str = "Peerchat — Identity key changed";

/// The dialog (hidden until a key change is asked about).
pub struct KeyChangeDialog {
    /// The window.
    pub win: Window,
    heading: Frame,
    explain: Frame,
    pinned: Frame,
    presented: Frame,
    /// Named widgets (test hook).
    pub named: Named,
    /// The friend (key) and the presented fingerprint the dialog shows now: what "Accept"
    /// accepts, so a key that changed again is never accepted unseen.
    pub showing: Option<(String, String)>,
}

impl KeyChangeDialog {
    /// Builds the window (hidden).
    pub fn new(tx: app::Sender<Msg>) -> Self {
        let mut named = Named::new();
        let mut win = Window::default().with_size(640, 400).with_label(TITLE);
        let mut col = Flex::default_fill().column();
        col.set_margins(24, 18, 24, 18);
        col.set_pad(8);
        let mut heading = widgets::heading(&mut col, "", theme::TITLE_SIZE, 32);
        heading.set_label_color(theme::ERROR);
        let mut explain = Frame::default();
        explain.set_align(Align::Left | Align::Inside | Align::Wrap | Align::Top);
        col.fixed(&explain, 96);
        let label = |col: &mut Flex, text: &str| {
            let mut l = Frame::default().with_label(text);
            l.set_align(Align::Left | Align::Inside);
            l.set_label_color(theme::MUTED);
            col.fixed(&l, 18);
        };
        let value = |col: &mut Flex, bold: bool| {
            let mut v = Frame::default();
            v.set_align(Align::Left | Align::Inside | Align::Wrap);
            v.set_label_font(if bold {
                Font::CourierBold
            } else {
                Font::Courier
            });
            v.set_label_size(theme::TEXT_SIZE);
            col.fixed(&v, 40);
            v
        };
        label(&mut col, "The key you trusted until now:");
        let pinned = value(&mut col, false);
        label(&mut col, "The new key the server presents:");
        let presented = value(&mut col, true);
        widgets::spacer();
        let mut row = Flex::default().row();
        row.set_pad(theme::GAP);
        widgets::spacer();
        let mut accept = Button::default().with_label("Accept new key");
        accept.set_color(theme::DANGER);
        accept.set_label_color(Color::White);
        row.fixed(&accept, 150);
        let mut not_now = ReturnButton::default().with_label("Not now");
        row.fixed(&not_now, 120);
        row.end();
        col.fixed(&row, theme::ROW + 2);
        col.end();
        win.end();
        win.make_modal(true);
        accept.set_callback(move |_| tx.send(Msg::Ui(Ui::KeyChangeAccept)));
        not_now.set_callback(move |_| tx.send(Msg::Ui(Ui::KeyChangeNotNow)));
        // Esc and the close box: not now.
        win.set_callback(move |_| tx.send(Msg::Ui(Ui::KeyChangeNotNow)));
        name(&mut named, "key_heading", &heading);
        name(&mut named, "key_pinned", &pinned);
        name(&mut named, "key_presented", &presented);
        name(&mut named, "key_accept", &accept);
        name(&mut named, "key_not_now", &not_now);
        Self {
            win,
            heading,
            explain,
            pinned,
            presented,
            named,
            showing: None,
        }
    }

    /// Shows (or updates) the dialog for `friend`'s change, centred over `over`.
    pub fn open(&mut self, over: &Window, friend_key: &str, userid: &str, change: &KeyChange) {
        let esc = |s: &str| s.replace('@', "@@");
        self.heading
            .set_label(&esc(&format!("{userid}'s identity key has changed")));
        self.explain.set_label(&esc(&format!(
            "This happens when {userid} starts using a new device, but also when someone else \
             logged in with {userid}'s password. Messages and files to {userid} are held: \
             nothing is sent until you accept the new key.\n\nCompare the new fingerprint \
             with {userid} in person or by phone before you accept it."
        )));
        // In groups of four, as the profile shows them, to compare group by group.
        self.pinned
            .set_label(&esc(&super::format::fingerprint_groups(&change.pinned)));
        self.presented
            .set_label(&esc(&super::format::fingerprint_groups(&change.presented)));
        self.showing = Some((friend_key.to_owned(), change.presented.clone()));
        if !self.win.shown() {
            let (w, h) = (self.win.w(), self.win.h());
            self.win
                .set_pos(over.x() + (over.w() - w) / 2, over.y() + (over.h() - h) / 3);
        }
        self.win.show();
        self.win.redraw();
    }

    /// Hides the dialog; returns what it showed.
    pub fn close(&mut self) -> Option<(String, String)> {
        self.win.hide();
        self.showing.take()
    }
}
