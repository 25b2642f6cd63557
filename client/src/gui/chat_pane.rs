//! The chat pane on the right of the main window: the friend's name and state, the
//! history, transfer rows, the typing indicator and the input line.
//!
//! Why one pane in the main window instead of a window per friend: the friend list with its
//! unread counts stays in view next to the conversation, switching chats is one click or
//! the arrow keys, nothing gets lost behind other windows, and Tab order stays simple. The
//! pane keeps no state of its own: it redraws from `model::Chat` of the selected friend.

use fltk::app;
use fltk::button::Button;
use fltk::enums::{Align, CallbackTrigger, Event, Font, Key};
use fltk::frame::Frame;
use fltk::group::Flex;
use fltk::input::{Input, MultilineInput};
use fltk::prelude::*;
use fltk::text::{PositionType, TextBuffer, TextDisplay, WrapMode};

use super::format::{self, RenderedChat};
use super::keys::{self, KeyAction, KeyName, KeyPress};
use super::model::{Chat, Friend};
use super::msg::{Msg, Ui};
use super::theme;
use super::transfers::{self, TransferRow};
use super::widgets::{name, Named};

/// The chat pane.
pub struct ChatPane {
    /// The whole pane (a column).
    pub pane: Flex,
    title: Frame,
    /// "✓ Verified" beside the name while the friend's key is the one the user compared.
    verified: Frame,
    title_row: Flex,
    state: Frame,
    /// The friend's profile (fingerprint, Verified).
    pub profile: Button,
    /// Send file….
    pub send_file: Button,
    /// Open the friend's downloads folder.
    pub downloads: Button,
    /// The history.
    pub history: TextDisplay,
    buffer: TextBuffer,
    styles: TextBuffer,
    /// What the history shows (for clicks on `<File>` lines).
    pub rendered: RenderedChat,
    /// The history shows the "select a friend" hint, not a chat.
    placeholder: bool,
    /// The chat before wrapping, and the width it was wrapped to (a resize wraps again).
    unwrapped: RenderedChat,
    wrapped_at: i32,
    /// "Messages to X are held until you accept their new key" (SPEC.md §12.4).
    key_banner: Flex,
    key_banner_text: Frame,
    rows_col: Flex,
    rows: Vec<TransferRow>,
    typing: Frame,
    /// The message box (several lines).
    pub input: MultilineInput,
    input_row: Flex,
    /// Search in the conversation (Ctrl+F).
    search_row: Flex,
    /// The search text.
    pub search: Input,
    /// Send.
    pub send: Button,
}

/// The key of the current FLTK key event with its modifiers.
pub fn key_press() -> KeyPress {
    let k = app::event_key();
    let key = match k {
        Key::Enter | Key::KPEnter => KeyName::Enter,
        Key::Up | Key::PageUp => KeyName::Up,
        Key::Down | Key::PageDown => KeyName::Down,
        _ => match char::from_u32(k.bits() as u32) {
            Some(c @ '0'..='9') => KeyName::Digit(c as u8 - b'0'),
            Some('f') => KeyName::F,
            _ => KeyName::Other,
        },
    };
    KeyPress {
        key,
        shift: app::is_event_shift(),
        ctrl: app::is_event_ctrl(),
    }
}

impl ChatPane {
    /// Builds the pane inside the current group.
    pub fn new(tx: app::Sender<Msg>, named: &mut Named) -> Self {
        let mut pane = Flex::default().column();
        // Painted, not transparent: when a row opens or closes (search, banner, transfers)
        // the gaps between the moved widgets are cleared instead of keeping stale pixels.
        pane.set_frame(fltk::enums::FrameType::FlatBox);
        pane.set_margins(12, 10, 12, 10);
        pane.set_pad(6);

        // Two lines: the name with "Received files", then the presence in full. One line
        // cut the presence off below ~1000 px (issue #15 item 4).
        let mut header = Flex::default().column();
        header.set_pad(0);
        let mut title_row = Flex::default().row();
        title_row.set_pad(theme::GAP);
        let mut title = Frame::default();
        title.set_label_font(Font::HelveticaBold);
        title.set_label_size(17);
        title.set_align(Align::Left | Align::Inside | Align::Clip);
        let mut verified = Frame::default().with_label("✓ Verified");
        verified.set_label_font(Font::HelveticaBold);
        verified.set_label_size(theme::SMALL_SIZE + 1);
        verified.set_label_color(theme::ONLINE);
        verified.set_tooltip("You compared this key's fingerprint with your friend");
        title_row.fixed(&verified, 90);
        verified.hide();
        let mut profile = Button::default().with_label("Profile…");
        profile.set_tooltip("Userid, key fingerprint, Verified");
        title_row.fixed(&profile, 90);
        let mut downloads = Button::default().with_label("Received files");
        title_row.fixed(&downloads, 130);
        title_row.end();
        header.fixed(&title_row, theme::ROW);
        let mut state = Frame::default();
        state.set_align(Align::Left | Align::Inside | Align::Clip);
        state.set_label_size(theme::SMALL_SIZE + 1);
        header.fixed(&state, 18);
        header.end();
        pane.fixed(&header, theme::ROW + 18);

        let mut key_banner = Flex::default().row();
        key_banner.set_pad(theme::GAP);
        key_banner.set_margins(8, 4, 8, 4);
        key_banner.set_frame(fltk::enums::FrameType::FlatBox);
        key_banner.set_color(theme::DANGER);
        let mut key_banner_text = Frame::default();
        key_banner_text.set_align(Align::Left | Align::Inside | Align::Wrap);
        key_banner_text.set_label_color(fltk::enums::Color::White);
        key_banner_text.set_label_font(Font::HelveticaBold);
        let mut review = Button::default().with_label("Review new key…");
        key_banner.fixed(&review, 140);
        key_banner.end();
        pane.fixed(&key_banner, 44);
        key_banner.hide();

        let mut search_row = Flex::default().row();
        search_row.set_pad(theme::GAP);
        let mut search = Input::default();
        search.set_tooltip("Enter: next match · Esc: close");
        let mut search_next = Button::default().with_label("Find next");
        search_row.fixed(&search_next, 100);
        let mut search_close = Button::default().with_label("Close");
        search_row.fixed(&search_close, 70);
        search_row.end();
        pane.fixed(&search_row, theme::ROW);
        search_row.hide();
        search.set_trigger(CallbackTrigger::EnterKeyAlways);
        search.set_callback(move |_| tx.send(Msg::Ui(Ui::SearchNext)));
        search.handle(move |_, ev| {
            if ev == Event::KeyDown && app::event_key() == Key::Escape {
                tx.send(Msg::Ui(Ui::SearchClose));
                return true;
            }
            false
        });
        search_next.set_callback(move |_| tx.send(Msg::Ui(Ui::SearchNext)));
        search_close.set_callback(move |_| tx.send(Msg::Ui(Ui::SearchClose)));

        let buffer = TextBuffer::default();
        let styles = TextBuffer::default();
        let mut history = TextDisplay::default();
        history.set_buffer(buffer.clone());
        history.set_highlight_data_ext(styles.clone(), theme::chat_styles());
        history.wrap_mode(WrapMode::AtBounds, 0);
        history.set_text_size(theme::TEXT_SIZE);
        history.set_scrollbar_size(14);
        history.set_tooltip("Drop files here to send them");

        let mut rows_col = Flex::default().column();
        rows_col.set_pad(2);
        rows_col.end();
        // Flex treats a fixed size of 0 as "flexible": an empty row area is hidden instead.
        rows_col.hide();

        let mut typing = Frame::default();
        typing.set_align(Align::Left | Align::Inside);
        typing.set_label_font(Font::HelveticaItalic);
        typing.set_label_size(theme::SMALL_SIZE + 1);
        typing.set_label_color(theme::MUTED);
        pane.fixed(&typing, 18);

        let mut input_row = Flex::default().row();
        input_row.set_pad(theme::GAP);
        let mut input = MultilineInput::default();
        input.set_tooltip(
            "Enter sends · Shift+Enter: new line · Ctrl+Up/Down: other chats · Ctrl+F: search",
        );
        input.set_wrap(true);
        let mut send = Button::default().with_label("Send");
        theme::primary(&mut send);
        input_row.fixed(&send, 90);
        let mut send_file = Button::default().with_label("Send file…");
        input_row.fixed(&send_file, 110);
        input_row.end();
        pane.fixed(&input_row, theme::ROW + 2);
        // Send and Send file stay one row high at the bottom while the box grows.
        input_row.set_margins(0, 0, 0, 0);
        pane.end();

        // Our keys first: Enter must send, not reach the box as a new line.
        input.super_handle_first(false);
        input.handle(move |i, ev| {
            if ev != Event::KeyDown {
                return false;
            }
            match keys::in_compose(key_press()) {
                Some(KeyAction::Send) => {
                    tx.send(Msg::Ui(Ui::SendMessage));
                    true
                }
                Some(KeyAction::NewLine) => {
                    let _ = i.insert("\n");
                    tx.send(Msg::Ui(Ui::InputChanged));
                    true
                }
                Some(a) => {
                    tx.send(Msg::Ui(Ui::Key(a)));
                    true
                }
                None => {
                    if app::event_key() != Key::Tab {
                        tx.send(Msg::Ui(Ui::InputChanged));
                    }
                    false
                }
            }
        });
        send.set_callback(move |_| tx.send(Msg::Ui(Ui::SendMessage)));
        send_file.set_callback(move |_| tx.send(Msg::Ui(Ui::SendFile)));
        downloads.set_callback(move |_| tx.send(Msg::Ui(Ui::OpenDownloads)));
        profile.set_callback(move |_| tx.send(Msg::Ui(Ui::OpenProfile)));
        review.set_callback(move |_| tx.send(Msg::Ui(Ui::ReviewKeyChange)));
        // Files dropped on the history are sent; a double-click on a `<File>` line opens its folder.
        history.handle(move |h, ev| match ev {
            Event::DndEnter | Event::DndDrag | Event::DndRelease | Event::DndLeave => true,
            Event::Paste => {
                tx.send(Msg::Ui(Ui::FilesDropped(app::event_text())));
                true
            }
            Event::Push => {
                let pos = h.xy_to_position(app::event_x(), app::event_y(), PositionType::Character);
                let double = app::event_clicks();
                tx.send(Msg::Ui(Ui::HistoryClicked { pos, double }));
                // Let the display select text too (copying a message).
                false
            }
            _ => false,
        });

        name(named, "chat_send_file", &send_file);
        name(named, "chat_downloads", &downloads);
        name(named, "chat_profile", &profile);
        name(named, "chat_verified", &verified);
        name(named, "chat_history", &history);
        name(named, "chat_input", &input);
        name(named, "chat_search", &search);
        name(named, "chat_send", &send);
        name(named, "chat_key_banner", &key_banner_text);
        name(named, "chat_review_key", &review);
        Self {
            pane,
            title,
            verified,
            title_row,
            state,
            profile,
            send_file,
            downloads,
            history,
            buffer,
            styles,
            rendered: RenderedChat::default(),
            placeholder: false,
            unwrapped: RenderedChat::default(),
            wrapped_at: 0,
            key_banner,
            key_banner_text,
            rows_col,
            rows: Vec::new(),
            typing,
            input,
            input_row,
            search_row,
            search,
            send,
        }
    }

    /// Grows or shrinks the message box with its lines (one to five).
    pub fn fit_input(&mut self) {
        let h = keys::compose_height(&self.input.value(), self.input.text_size() + 4);
        let h = h.max(theme::ROW + 2);
        if self.input_row.h() != h {
            self.pane.fixed(&self.input_row, h);
            self.relayout();
        }
    }

    /// Shows the search row and puts the cursor in it (Ctrl+F).
    pub fn open_search(&mut self) {
        if !self.search_row.visible() {
            self.search_row.show();
            self.relayout();
        }
        let _ = self.search.take_focus();
    }

    /// Hides the search row.
    pub fn close_search(&mut self) {
        if self.search_row.visible() {
            self.search_row.hide();
            self.buffer.unselect();
            self.relayout();
        }
        let _ = self.input.take_focus();
    }

    /// Selects the next match of the search text after the current one (wrapping around)
    /// and scrolls to it; false when there is none.
    pub fn search_next(&mut self) -> bool {
        let from = self
            .buffer
            .selection_position()
            .map_or(0, |(_, end)| usize::try_from(end).unwrap_or(0));
        let text = self.buffer.text();
        match format::find_next(&text, &self.search.value(), from) {
            Some(r) => {
                self.buffer.select(r.start as i32, r.end as i32);
                self.history.set_insert_position(r.start as i32);
                self.history.show_insert_position();
                self.history.redraw();
                true
            }
            None => false,
        }
    }

    /// The transfer rows' buttons, for the layout test hook.
    pub fn row_names(&self) -> Named {
        let mut named = Named::new();
        for (i, r) in self.rows.iter().enumerate() {
            r.named(i, &mut named);
        }
        named
    }

    /// Shows nobody (nothing selected).
    pub fn show_nobody(&mut self, have_friends: bool) {
        self.title.set_label("");
        self.state.set_label("");
        self.show_verified(false);
        self.profile.deactivate();
        let hint = if have_friends {
            "Select a friend on the left to chat.\n\nFriends in green are online; you can write to the others too: \
             messages wait and are delivered when you are both online."
        } else {
            "No friends yet.\n\nUse Find on the left to look up a userid and send a friend request."
        };
        self.rendered = RenderedChat::default();
        self.placeholder = true;
        self.buffer.set_text(hint);
        self.styles.set_text(&"G".repeat(hint.len()));
        for w in [&mut self.send_file, &mut self.downloads, &mut self.send] {
            w.deactivate();
        }
        self.input.deactivate();
        self.typing.set_label("");
        self.show_key_banner(None, "");
        self.set_rows(app::Sender::get(), &[]);
    }

    /// Shows the chat with `friend` (`None`: no longer a friend).
    pub fn show_chat(
        &mut self,
        tx: app::Sender<Msg>,
        userid: &str,
        friend: Option<&Friend>,
        chat: Option<&Chat>,
        me: &str,
        server_online: bool,
    ) {
        self.title.set_label(&userid.replace('@', "@@"));
        self.title.set_tooltip(userid);
        let (state, color) = match friend {
            // Presence says "delivered later", which is not true while the key is in doubt.
            Some(f) if f.key_change.is_some() => {
                ("key changed — messages held".to_owned(), theme::ERROR)
            }
            Some(f) => {
                let p = f.presence(server_online);
                (
                    f.header_words(server_online),
                    if p.is_green() {
                        theme::ONLINE
                    } else {
                        theme::OFFLINE
                    },
                )
            }
            None => ("not your friend any more".to_owned(), theme::ERROR),
        };
        self.state.set_label(&state);
        self.state.set_label_color(color);
        self.show_verified(friend.is_some_and(|f| f.verified));
        let active = friend.is_some();
        if active {
            self.profile.activate();
        } else {
            self.profile.deactivate();
        }
        for w in [&mut self.send_file, &mut self.send] {
            if active {
                w.activate();
            } else {
                w.deactivate();
            }
        }
        self.downloads.activate();
        if active {
            self.input.activate();
        } else {
            self.input.deactivate();
        }
        self.typing.set_label(&if friend.is_some_and(|f| f.typing) {
            format!("{userid} is typing…")
        } else {
            String::new()
        });
        self.show_key_banner(friend.and_then(|f| f.key_change.as_ref()), userid);
        let empty = Chat::default();
        let chat = chat.unwrap_or(&empty);
        self.render_history(&chat.lines, me, userid);
        self.set_rows(tx, &chat.transfers);
        self.pane.redraw();
    }

    /// Shows or hides the "✓ Verified" badge beside the name.
    fn show_verified(&mut self, on: bool) {
        if on != self.verified.visible() {
            if on {
                self.verified.show();
            } else {
                self.verified.hide();
            }
            self.title_row.layout();
            self.title_row.redraw();
        }
    }

    /// Shows the held-messages banner while the friend's key change is pending.
    fn show_key_banner(&mut self, change: Option<&super::model::KeyChange>, userid: &str) {
        match change {
            Some(_) => {
                self.key_banner_text.set_label(&format!(
                    "{userid}'s identity key changed. Messages to {userid} are held until you accept their new key."
                ).replace('@', "@@"));
                if !self.key_banner.visible() {
                    self.key_banner.show();
                    self.relayout();
                }
            }
            None => {
                if self.key_banner.visible() {
                    self.key_banner.hide();
                    self.relayout();
                }
            }
        }
    }

    /// Lays the pane out again after a row appeared or went, keeping the newest lines of the
    /// history in view (a resized text display otherwise may show an empty page).
    fn relayout(&mut self) {
        self.pane.layout();
        self.history.scroll(0, 0);
        self.history.show_insert_position();
        self.pane.redraw();
    }

    fn render_history(&mut self, lines: &[super::model::Line], me: &str, friend: &str) {
        let r = format::render_chat(lines, me, friend, format::Clock::local());
        let width = self.wrap_width();
        if r == self.unwrapped && width == self.wrapped_at && !self.placeholder {
            return;
        }
        self.unwrapped = r.clone();
        self.wrapped_at = width;
        let r = self.hang(r, width);
        self.placeholder = false;
        self.buffer.set_text(&r.text);
        self.styles.set_text(&r.styles);
        self.rendered = r;
        // New lines scroll into view, as in every chat app.
        let end = self.buffer.length();
        self.history.set_insert_position(end);
        self.history.show_insert_position();
    }

    /// Updates the rows of running transfers (called on the UI tick): a stalled one loses
    /// its speed even when no event comes.
    pub fn tick_rows(&mut self, tx: app::Sender<Msg>, all: &[super::model::Transfer]) {
        if all
            .iter()
            .any(|t| t.state == super::model::TransferState::Running)
        {
            self.set_rows(tx, all);
        }
    }

    /// The width the history's text gets: the display less its scroll bar and margins; 0
    /// while it is not on screen (fonts cannot be measured then).
    fn wrap_width(&self) -> i32 {
        let shown = self.history.visible_r() && self.history.window().is_some_and(|w| w.shown());
        if shown {
            (self.history.w() - self.history.scrollbar_size().max(14) - 14).max(0)
        } else {
            0
        }
    }

    /// Wraps the chat itself with a hanging indent (`format::hang_indent`, words longer than
    /// a line included); the display's own wrapping stays on only as a safety net for a
    /// measuring error of a pixel or two.
    fn hang(&self, r: RenderedChat, width: i32) -> RenderedChat {
        if width < 100 {
            return r;
        }
        let table = theme::chat_styles();
        let measure = |t: &str, st: char| {
            let i = (st as usize).saturating_sub('A' as usize);
            let e = table.get(i).or(table.first());
            if let Some(e) = e {
                fltk::draw::set_font(e.font, e.size);
            }
            fltk::draw::width(t)
        };
        format::hang_indent(&r, f64::from(width), &measure)
    }

    /// Wraps the history again after the pane changed width (the UI tick asks).
    pub fn rewrap_if_resized(&mut self) {
        if self.placeholder || self.unwrapped.text.is_empty() {
            return;
        }
        let width = self.wrap_width();
        if width == self.wrapped_at {
            return;
        }
        self.wrapped_at = width;
        let r = self.hang(self.unwrapped.clone(), width);
        self.buffer.set_text(&r.text);
        self.styles.set_text(&r.styles);
        self.rendered = r;
        let end = self.buffer.length();
        self.history.set_insert_position(end);
        self.history.show_insert_position();
    }

    /// Rebuilds or updates the transfer rows.
    fn set_rows(&mut self, tx: app::Sender<Msg>, all: &[super::model::Transfer]) {
        let shown = transfers::visible(all);
        let same = shown.len() == self.rows.len()
            && shown
                .iter()
                .zip(&self.rows)
                .all(|(t, r)| t.id == r.id && t.id.is_some());
        if same {
            for (t, r) in shown.iter().zip(self.rows.iter_mut()) {
                r.update(tx, t);
            }
            return;
        }
        self.rows.clear();
        self.rows_col.clear();
        self.rows_col.begin();
        for t in shown {
            self.rows.push(TransferRow::new(tx, t));
        }
        self.rows_col.end();
        // `end()` makes the pane the current group again: windows created later (the
        // Unfriend confirmation) would become its children. Nothing is current outside a build.
        fltk::group::Group::set_current(None::<&fltk::group::Group>);
        let h = shown.len() as i32 * (transfers::ROW_H + 2);
        if shown.is_empty() {
            self.rows_col.hide();
        } else {
            self.rows_col.show();
            self.pane.fixed(&self.rows_col, h);
        }
        self.pane.layout();
        self.pane.redraw();
    }
}
