//! A friend's profile: who they are, how they are reached, and their key's fingerprint in
//! groups that can be read aloud, with the "Verified" mark the user sets after comparing the
//! fingerprint with the friend in person or by phone (issue #15).
//!
//! The mark belongs to the key, not to the person (`Model::set_verified`): when the key
//! changes, the mark is gone and the badge with it, so "verified" never vouches for a key
//! nobody compared. A window of its own, like the key-change dialog, so the app's loop keeps
//! running (a key change while it is open updates it) and the test hook sees its widgets.

use fltk::app;
use fltk::button::{CheckButton, ReturnButton};
use fltk::enums::{Align, Font};
use fltk::frame::Frame;
use fltk::group::Flex;
use fltk::prelude::*;
use fltk::window::Window;

use super::format;
use super::model::Friend;
use super::msg::{Msg, Ui};
use super::theme;
use super::widgets::{self, name, Named};

/// Window title.
pub const TITLE: &str = "Peerchat — Friend profile";

/// The profile window (hidden until opened).
pub struct ProfileWindow {
    /// The window.
    pub win: Window,
    heading: Frame,
    userid: Frame,
    state: Frame,
    fingerprint: Frame,
    mine: Frame,
    verified: CheckButton,
    note: Frame,
    /// Named widgets (test hook).
    pub named: Named,
    /// The friend (key) shown.
    pub showing: Option<String>,
}

impl ProfileWindow {
    /// Builds the window (hidden).
    pub fn new(tx: app::Sender<Msg>) -> Self {
        let mut named = Named::new();
        let mut win = Window::default().with_size(560, 470).with_label(TITLE);
        win.size_range(480, 430, 0, 0);
        let mut col = Flex::default_fill().column();
        col.set_margins(24, 18, 24, 18);
        col.set_pad(6);
        let heading = widgets::heading(&mut col, "", theme::TITLE_SIZE, 32);
        let label = |col: &mut Flex, text: &str| {
            let mut l = Frame::default().with_label(text);
            l.set_align(Align::Left | Align::Inside);
            l.set_label_color(theme::MUTED);
            l.set_label_size(theme::SMALL_SIZE + 1);
            col.fixed(&l, 18);
        };
        let value = |col: &mut Flex, h: i32| {
            let mut v = Frame::default();
            v.set_align(Align::Left | Align::Inside | Align::Wrap | Align::Top);
            col.fixed(&v, h);
            v
        };
        label(
            &mut col,
            "Userid (the registered spelling is the display name)",
        );
        let userid = value(&mut col, 22);
        label(&mut col, "Now");
        let state = value(&mut col, 22);
        label(
            &mut col,
            "Their key's fingerprint — read it to each other, group by group",
        );
        let mut fingerprint = value(&mut col, 48);
        fingerprint.set_label_font(Font::CourierBold);
        fingerprint.set_label_size(theme::TEXT_SIZE + 1);
        label(&mut col, "Your fingerprint");
        let mut mine = value(&mut col, 48);
        mine.set_label_font(Font::Courier);
        let mut verified = CheckButton::default().with_label(" Verified: the fingerprints match");
        verified.set_label_font(Font::HelveticaBold);
        col.fixed(&verified, theme::ROW);
        let mut note = Frame::default();
        note.set_align(Align::Left | Align::Inside | Align::Wrap | Align::Top);
        note.set_label_size(theme::SMALL_SIZE + 1);
        note.set_label_color(theme::MUTED);
        col.fixed(&note, 36);
        widgets::spacer();
        let mut row = Flex::default().row();
        widgets::spacer();
        let mut close = ReturnButton::default().with_label("Close");
        row.fixed(&close, 100);
        row.end();
        col.fixed(&row, theme::ROW + 2);
        col.end();
        win.end();
        fltk::group::Group::set_current(None::<&fltk::group::Group>);
        verified.set_callback(move |b| tx.send(Msg::Ui(Ui::ProfileVerified(b.is_checked()))));
        close.set_callback(move |_| tx.send(Msg::Ui(Ui::ProfileClose)));
        win.set_callback(move |_| tx.send(Msg::Ui(Ui::ProfileClose)));
        name(&mut named, "profile_userid", &userid);
        name(&mut named, "profile_fingerprint", &fingerprint);
        name(&mut named, "profile_verified", &verified);
        name(&mut named, "profile_close", &close);
        Self {
            win,
            heading,
            userid,
            state,
            fingerprint,
            mine,
            verified,
            note,
            named,
            showing: None,
        }
    }

    /// Shows `friend`, centred over `over` when it opens.
    pub fn open(&mut self, over: &Window, friend: &Friend, server_online: bool, mine: &str) {
        self.update(friend, server_online, mine);
        if !self.win.shown() {
            let (w, h) = (self.win.w(), self.win.h());
            self.win
                .set_pos(over.x() + (over.w() - w) / 2, over.y() + (over.h() - h) / 4);
        }
        self.win.show();
    }

    /// Redraws from the model (the friend's state or key changed while it is open).
    pub fn update(&mut self, friend: &Friend, server_online: bool, mine: &str) {
        let esc = |s: &str| s.replace('@', "@@");
        self.showing = Some(friend.key());
        self.heading.set_label(&esc(&friend.userid));
        self.userid.set_label(&esc(&friend.userid));
        let (state, color) = if friend.key_change.is_some() {
            ("key changed — messages held".to_owned(), theme::ERROR)
        } else {
            let p = friend.presence(server_online);
            (
                friend.header_words(server_online),
                if p.is_green() {
                    theme::ONLINE
                } else {
                    theme::OFFLINE
                },
            )
        };
        self.state.set_label(&state);
        self.state.set_label_color(color);
        self.fingerprint
            .set_label(&format::fingerprint_groups(&friend.fingerprint));
        self.mine.set_label(&format::fingerprint_groups(mine));
        self.verified.set_checked(friend.verified);
        let who = esc(&friend.userid);
        let note = if friend.key_change.is_some() {
            self.verified.deactivate();
            format!("{who}'s key changed: review the new key first, then compare again.")
        } else if friend.fingerprint.is_empty() {
            self.verified.deactivate();
            format!("{who}'s key is not known yet.")
        } else {
            self.verified.activate();
            if friend.verified {
                format!("You compared this key with {who}. If it ever changes, the mark goes away.")
            } else {
                format!(
                    "Tick this only after {who} read you the same groups (in person or by phone, \
                     not by chat)."
                )
            }
        };
        self.note.set_label(&note);
        self.win.redraw();
    }

    /// Hides the window.
    pub fn close(&mut self) {
        self.showing = None;
        self.win.hide();
    }
}
