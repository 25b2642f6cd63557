//! The main window: Find, the friend list (online green, offline grey, unread counts),
//! Unfriend, incoming friend requests with Accept / Refuse, the chat pane, and a status bar
//! with the server connection.

use fltk::app;
use fltk::browser::HoldBrowser;
use fltk::button::Button;
use fltk::enums::{Align, CallbackTrigger, Color, Event, Font, FrameType, Key};
use fltk::frame::Frame;
use fltk::group::Flex;
use fltk::input::Input;
use fltk::prelude::*;
use fltk::window::Window;

use super::chat_pane::ChatPane;
use super::model::{Friend, Model};
use super::msg::{Msg, Ui};
use super::theme;
use super::widgets::{self, name, Named};

use super::layout;

/// The main window.
pub struct MainWindow {
    /// The window.
    pub win: Window,
    /// Find: the userid typed.
    pub find_input: Input,
    /// Find: result text.
    pub find_result: Frame,
    /// Find: send a request to the user found.
    pub send_request: Button,
    found_row: Flex,
    /// The user last found (registered spelling).
    pub found: Option<String>,
    /// Friend list; line `i` (1-based) shows `friend_keys[i - 1]`.
    pub friends: HoldBrowser,
    /// Keys of the friends in list order.
    pub friend_keys: Vec<String>,
    /// Unfriend the selected friend.
    pub unfriend: Button,
    /// Friend requests heading.
    pub requests_heading: Frame,
    /// Incoming requests.
    pub requests: HoldBrowser,
    /// Accept the selected request.
    pub accept: Button,
    /// Refuse the selected request.
    pub refuse: Button,
    /// "Waiting for an answer from: ...".
    pub outgoing: Frame,
    /// The chat.
    pub chat: ChatPane,
    /// Status bar text.
    pub status: Frame,
    /// "Retry now", shown while the server is unreachable.
    pub retry: Button,
    bar: Flex,
    /// Named widgets (test hook).
    pub named: Named,
}

fn section(col: &mut Flex, text: &str) -> Frame {
    let mut f = widgets::heading(col, text, theme::SMALL_SIZE + 1, 22);
    f.set_label_font(Font::HelveticaBold);
    f
}

impl MainWindow {
    /// Builds the window (hidden).
    pub fn new(tx: app::Sender<Msg>) -> Self {
        let mut named = Named::new();
        let mut win = Window::default()
            .with_size(1000, 660)
            .with_label("Peerchat");
        let mut outer = Flex::default_fill().column();
        outer.set_pad(0);

        let mut body = Flex::default().row();
        body.set_pad(0);

        // ----- left column ---------------------------------------------------------------
        let mut left = Flex::default().column();
        left.set_margins(12, 10, 8, 10);
        left.set_pad(6);
        section(&mut left, "FIND A USER");
        let mut find_row = Flex::default().row();
        find_row.set_pad(6);
        let mut find_input = Input::default();
        find_input.set_tooltip("Type a userid and press Enter");
        let mut find_btn = Button::default().with_label("Find");
        find_row.fixed(&find_btn, 70);
        find_row.end();
        left.fixed(&find_row, theme::ROW);
        let mut found_row = Flex::default().row();
        found_row.set_pad(6);
        let mut find_result = Frame::default().with_label("Type a userid and press Enter.");
        find_result.set_align(Align::Left | Align::Inside | Align::Clip);
        find_result.set_label_size(theme::SMALL_SIZE + 1);
        find_result.set_label_color(theme::MUTED);
        let mut send_request = Button::default().with_label("Send request");
        found_row.fixed(&send_request, 120);
        send_request.hide();
        found_row.end();
        left.fixed(&found_row, theme::ROW);

        section(&mut left, "FRIENDS");
        let mut friends = HoldBrowser::default();
        friends.set_text_size(theme::TEXT_SIZE + 1);
        friends.set_selection_color(theme::LIST_SELECTION);
        friends.set_tooltip("Green: online · grey: offline");
        let mut unfriend_row = Flex::default().row();
        widgets::spacer();
        let mut unfriend = Button::default().with_label("Unfriend…");
        unfriend_row.fixed(&unfriend, 110);
        unfriend_row.end();
        left.fixed(&unfriend_row, theme::ROW - 2);

        let requests_heading = section(&mut left, "FRIEND REQUESTS");
        let mut requests = HoldBrowser::default();
        requests.set_text_size(theme::TEXT_SIZE);
        requests.set_selection_color(theme::LIST_SELECTION);
        left.fixed(&requests, 92);
        let mut req_row = Flex::default().row();
        req_row.set_pad(6);
        let mut accept = Button::default().with_label("Accept");
        theme::primary(&mut accept);
        let mut refuse = Button::default().with_label("Refuse");
        req_row.end();
        left.fixed(&req_row, theme::ROW);
        let mut outgoing = Frame::default();
        outgoing.set_align(Align::Left | Align::Inside | Align::Wrap | Align::Top);
        outgoing.set_label_size(theme::SMALL_SIZE);
        outgoing.set_label_color(theme::MUTED);
        left.fixed(&outgoing, 34);
        left.end();
        body.fixed(&left, layout::left_width(1000));

        // A thin separator line between the columns.
        let mut sep = Frame::default();
        sep.set_frame(FrameType::FlatBox);
        sep.set_color(theme::SEPARATOR);
        body.fixed(&sep, 1);

        let chat = ChatPane::new(tx, &mut named);
        body.end();

        // ----- status bar ----------------------------------------------------------------
        let mut bar = Flex::default().row();
        bar.set_margins(12, 3, 8, 3);
        bar.set_frame(FrameType::FlatBox);
        bar.set_color(theme::STATUS_BG);
        let mut status = Frame::default();
        status.set_align(Align::Left | Align::Inside | Align::Clip);
        status.set_label_size(theme::SMALL_SIZE + 1);
        let mut retry = Button::default().with_label("Retry now");
        bar.fixed(&retry, 100);
        retry.hide();
        let mut settings = Button::default().with_label("Settings…");
        bar.fixed(&settings, 90);
        let mut logout = Button::default().with_label("Log out");
        bar.fixed(&logout, 90);
        bar.end();
        outer.fixed(&bar, 32);
        outer.end();
        win.end();
        win.make_resizable(true);
        win.size_range(layout::MIN_W, layout::MIN_H, 0, 0);
        // The friend column grows with the window (a long userid fits), see `layout`.
        {
            let (mut body, left) = (body.clone(), left.clone());
            win.resize_callback(move |_, _, _, w, _| {
                body.fixed(&left, layout::left_width(w));
                body.layout();
            });
        }

        find_input.set_trigger(CallbackTrigger::EnterKeyAlways);
        find_input.set_callback(move |_| tx.send(Msg::Ui(Ui::Find)));
        find_btn.set_callback(move |_| tx.send(Msg::Ui(Ui::Find)));
        send_request.set_callback(move |_| tx.send(Msg::Ui(Ui::SendRequestToFound)));
        friends.set_callback(move |_| tx.send(Msg::Ui(Ui::FriendSelected)));
        // The list holds still while the pointer is over it (see `Model::freeze_list`).
        friends.handle(move |_, ev| {
            match ev {
                Event::Enter => tx.send(Msg::Ui(Ui::FriendListHover(true))),
                Event::Leave => tx.send(Msg::Ui(Ui::FriendListHover(false))),
                _ => {}
            }
            false
        });
        unfriend.set_callback(move |_| tx.send(Msg::Ui(Ui::Unfriend)));
        accept.set_callback(move |_| tx.send(Msg::Ui(Ui::AcceptRequest)));
        refuse.set_callback(move |_| tx.send(Msg::Ui(Ui::RefuseRequest)));
        logout.set_callback(move |_| tx.send(Msg::Ui(Ui::Logout)));
        settings.set_callback(move |_| tx.send(Msg::Ui(Ui::OpenSettings)));
        retry.set_callback(move |_| tx.send(Msg::Ui(Ui::RetryNow)));
        name(&mut named, "retry_now", &retry);
        name(&mut named, "settings", &settings);
        // Logging out is a click, not a stop on the way through the window with Tab.
        logout.clear_visible_focus();
        // Window-wide shortcuts (Ctrl+Up/Down, Ctrl+1..9, Ctrl+F): see `keys`.
        win.handle(move |_, ev| {
            if matches!(ev, Event::KeyDown | Event::Shortcut) {
                if let Some(a) = super::keys::shortcut(super::chat_pane::key_press()) {
                    tx.send(Msg::Ui(Ui::Key(a)));
                    return true;
                }
            }
            false
        });
        // Esc does not close the main window; the close box quits.
        win.set_callback(move |_| {
            if !(app::event() == Event::Shortcut && app::event_key() == Key::Escape) {
                tx.send(Msg::Ui(Ui::Quit));
            }
        });

        name(&mut named, "find_input", &find_input);
        name(&mut named, "find", &find_btn);
        name(&mut named, "send_request", &send_request);
        name(&mut named, "friends", &friends);
        name(&mut named, "unfriend", &unfriend);
        name(&mut named, "requests", &requests);
        name(&mut named, "accept", &accept);
        name(&mut named, "refuse", &refuse);
        name(&mut named, "status", &status);
        name(&mut named, "logout", &logout);
        Self {
            win,
            find_input,
            find_result,
            send_request,
            found_row,
            found: None,
            friends,
            friend_keys: Vec::new(),
            unfriend,
            requests_heading,
            requests,
            accept,
            refuse,
            outgoing,
            chat,
            status,
            retry,
            bar,
            named,
        }
    }

    /// One friend list line: a dot and the name in green (online) or grey (offline), and the
    /// unread count in bold.
    fn friend_line(f: &Friend, server_online: bool) -> String {
        let (color, dot) = if f.presence(server_online).is_green() {
            (theme::ONLINE, "●")
        } else {
            (theme::OFFLINE, "○")
        };
        let unread = if f.unread > 0 {
            format!("   ({} new)", f.unread)
        } else {
            String::new()
        };
        let typing = if f.typing { "   typing…" } else { "" };
        // How the link was made, as a quiet hint beside the name (SPEC.md §7.6 "Path").
        let path = f
            .path_words()
            .map(|p| format!("  ({p})"))
            .unwrap_or_default();
        let bold = if f.unread > 0 { "@b" } else { "" };
        // The key the user compared with the friend: a badge beside the name.
        let verified = if f.verified { " ✓" } else { "" };
        format!(
            "@C{}{bold}@.{dot} {}{verified}{path}{unread}{typing}",
            color.bits(),
            f.userid
        )
    }

    /// Redraws the friend list, keeping the selection.
    pub fn show_friends(&mut self, model: &Model) {
        let sorted = model.friends_in_list_order();
        let keys: Vec<String> = sorted
            .iter()
            .map(|f| super::model::key(&f.userid))
            .collect();
        let lines: Vec<String> = sorted
            .iter()
            .map(|f| Self::friend_line(f, model.server_online()))
            .collect();
        let same = keys == self.friend_keys
            && (1..=lines.len())
                .all(|i| self.friends.text(i as i32).as_deref() == Some(lines[i - 1].as_str()));
        if !same {
            let top = self.friends.position();
            self.friends.clear();
            for l in &lines {
                self.friends.add(l);
            }
            self.friend_keys = keys;
            self.friends.set_position(top);
        }
        let selected = model
            .selected
            .as_ref()
            .and_then(|k| self.friend_keys.iter().position(|x| x == k));
        match selected {
            Some(i) => self.friends.select(i as i32 + 1),
            None => {
                for i in 1..=self.friends.size() {
                    self.friends.deselect(i);
                }
            }
        }
        if selected.is_some() {
            self.unfriend.activate();
        } else {
            self.unfriend.deactivate();
        }
        self.friends.redraw();
    }

    /// Redraws the request lists.
    pub fn show_requests(&mut self, model: &Model) {
        let keep = self.requests.selected_text();
        self.requests.clear();
        for u in &model.incoming {
            self.requests.add(&format!("@.{u}"));
        }
        self.requests_heading
            .set_label(&if model.incoming.is_empty() {
                "FRIEND REQUESTS".to_owned()
            } else {
                format!("FRIEND REQUESTS ({})", model.incoming.len())
            });
        if model.incoming.is_empty() {
            self.requests.add(&format!(
                "@C{}@i@.No pending requests",
                theme::OFFLINE.bits()
            ));
            self.requests.deactivate();
            self.accept.deactivate();
            self.refuse.deactivate();
        } else {
            self.requests.activate();
            self.accept.activate();
            self.refuse.activate();
            let idx = keep
                .and_then(|k| {
                    (1..=self.requests.size())
                        .find(|&i| self.requests.text(i).as_deref() == Some(k.as_str()))
                })
                .unwrap_or(1);
            self.requests.select(idx);
        }
        let out = if model.outgoing.is_empty() {
            String::new()
        } else {
            format!("Waiting for an answer from: {}", model.outgoing.join(", "))
        };
        self.outgoing.set_label(&out);
        self.outgoing.set_tooltip(&out);
        self.win.redraw();
    }

    /// The selected incoming request's userid.
    pub fn selected_request(&self, model: &Model) -> Option<String> {
        let v = self.requests.value();
        (v >= 1)
            .then(|| model.incoming.get(v as usize - 1).cloned())
            .flatten()
    }

    /// The selected friend's key.
    pub fn selected_friend(&self) -> Option<String> {
        let v = self.friends.value();
        (v >= 1)
            .then(|| self.friend_keys.get(v as usize - 1).cloned())
            .flatten()
    }

    /// Shows or hides "Send request" (Flex places only visible children: lay out again).
    pub fn show_send_request(&mut self, show: bool) {
        if show {
            self.send_request.activate();
            self.send_request.show();
        } else {
            self.send_request.hide();
        }
        self.found_row.layout();
        self.found_row.redraw();
    }

    /// Shows "Retry now" while the server is unreachable (Flex lays out visible children).
    pub fn show_retry(&mut self, show: bool) {
        if show != self.retry.visible() {
            if show {
                self.retry.show();
            } else {
                self.retry.hide();
            }
            self.bar.layout();
            self.bar.redraw();
        }
    }

    /// Shows a status line (connection state or a notice).
    pub fn set_status(&mut self, text: &str, color: Color) {
        self.status.set_label(&text.replace('@', "@@"));
        self.status.set_label_color(color);
        self.status.redraw();
    }
}
