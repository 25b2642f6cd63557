//! The transfer rows under a chat: name, progress bar, speed, and the buttons that fit the
//! state (Accept/Decline, Cancel, Open folder, dismiss).

use fltk::app;
use fltk::button::Button;
use fltk::enums::{Align, Color, FrameType};
use fltk::frame::Frame;
use fltk::group::Flex;
use fltk::misc::Progress;
use fltk::prelude::*;
use peerchat_client::{Direction, TransferId};

use super::format;
use super::layout;
use super::model::{Transfer, TransferState};
use super::msg::{Msg, Ui};
use super::theme;

/// Height of one row.
pub const ROW_H: i32 = 30;
/// Rows shown at most (the newest); older finished ones stay in the chat as `<File>` lines.
pub const MAX_ROWS: usize = 4;

/// A button to show: its label and what it sends (None: hidden).
type ButtonSpec = Option<(&'static str, Ui)>;

/// The widgets of one row.
pub struct TransferRow {
    /// The transfer shown.
    pub id: Option<TransferId>,
    row: Flex,
    name: Frame,
    bar: Progress,
    info: Frame,
    first: Button,
    second: Button,
}

/// A fixed-width slot holding one button, so hiding the button never shifts the others
/// (Flex lays out only visible children).
fn slot(row: &mut Flex, width: i32) -> (Flex, Button) {
    let s = Flex::default().row();
    let b = Button::default();
    s.end();
    row.fixed(&s, width);
    (s, b)
}

impl TransferRow {
    /// Builds a row inside the current group.
    pub fn new(tx: app::Sender<Msg>, t: &Transfer) -> Self {
        let mut row = Flex::default().row();
        row.set_pad(6);
        let mut name = Frame::default();
        name.set_align(Align::Left | Align::Inside | Align::Clip);
        let mut bar = Progress::default();
        bar.set_selection_color(Color::from_rgb(45, 105, 220));
        bar.set_color(theme::TRACK);
        bar.set_frame(FrameType::FlatBox);
        bar.set_label_size(theme::SMALL_SIZE);
        bar.set_minimum(0.0);
        bar.set_maximum(100.0);
        let mut info = Frame::default();
        info.set_align(Align::Left | Align::Inside | Align::Clip);
        info.set_label_size(theme::SMALL_SIZE);
        info.set_label_color(theme::MUTED);
        let (_, first) = slot(&mut row, 100);
        let (_, second) = slot(&mut row, 80);
        row.end();
        let w = row.w();
        Self::fit(&mut row, &bar, &info, w);
        // The bar and the info shrink with the pane so the name keeps its room and nothing
        // spills over the friend list (issue #15 item 4).
        let (b, i) = (bar.clone(), info.clone());
        // `layout()` resizes the row again: act once per width, or this recursed forever.
        let fitted = std::cell::Cell::new(w);
        row.resize_callback(move |r, _, _, w, _| {
            if fitted.replace(w) != w {
                Self::fit(r, &b, &i, w);
                r.layout();
            }
        });
        let mut r = Self {
            id: t.id,
            row,
            name,
            bar,
            info,
            first,
            second,
        };
        r.update(tx, t);
        r
    }

    fn fit(row: &mut Flex, bar: &Progress, info: &Frame, w: i32) {
        let c = layout::transfer_columns(w);
        row.fixed(bar, c.bar);
        row.fixed(info, c.info);
    }

    /// The row's two buttons and its state line under test-hook names (`transfer1_first`,
    /// `transfer1_second`, `transfer1_info`...).
    pub fn named(&self, index: usize, named: &mut super::widgets::Named) {
        const FIRST: [&str; MAX_ROWS] = [
            "transfer1_first",
            "transfer2_first",
            "transfer3_first",
            "transfer4_first",
        ];
        const SECOND: [&str; MAX_ROWS] = [
            "transfer1_second",
            "transfer2_second",
            "transfer3_second",
            "transfer4_second",
        ];
        const INFO: [&str; MAX_ROWS] = [
            "transfer1_info",
            "transfer2_info",
            "transfer3_info",
            "transfer4_info",
        ];
        if let (Some(f), Some(s), Some(i)) = (FIRST.get(index), SECOND.get(index), INFO.get(index))
        {
            super::widgets::name(named, f, &self.first);
            super::widgets::name(named, s, &self.second);
            super::widgets::name(named, i, &self.info);
        }
    }

    /// Shows the state of `t`.
    pub fn update(&mut self, tx: app::Sender<Msg>, t: &Transfer) {
        let arrow = match t.direction {
            Direction::Outgoing => "↑",
            Direction::Incoming => "↓",
        };
        self.name
            .set_label(&format!("{arrow} {}", t.name).replace('@', "@@"));
        // A narrow row cuts the name: the whole name is one hover away.
        self.name.set_tooltip(&t.name);
        let pct = if t.size == 0 {
            100.0
        } else {
            (t.bytes as f64 * 100.0 / t.size as f64).min(100.0)
        };
        self.bar.set_value(pct);
        self.bar.set_label(&format!("{pct:.0}%"));
        let id = t.id;
        let (info, first, second): (String, ButtonSpec, ButtonSpec) = match (&t.state, id) {
            (TransferState::Preparing, _) => ("checking the file…".into(), None, None),
            (TransferState::Waiting, Some(id)) => (
                match t.direction {
                    Direction::Outgoing => "waiting for the friend…".into(),
                    Direction::Incoming => "starting…".into(),
                },
                None,
                Some(("Cancel", Ui::CancelTransfer(id))),
            ),
            (TransferState::NeedsDecision, Some(id)) => (
                format!("{} — accept?", format::bytes(t.size)),
                Some(("Accept", Ui::AcceptFile(id))),
                Some(("Decline", Ui::DeclineFile(id))),
            ),
            (TransferState::Running, Some(id)) => (
                t.running_words(
                    peerchat_client::history::now_ms(),
                    layout::transfer_columns(self.row.w()).compact,
                ),
                None,
                Some(("Cancel", Ui::CancelTransfer(id))),
            ),
            (TransferState::Suspended, Some(id)) => (
                format!(
                    "Suspended · {} of {} · resumes when {} is back",
                    format::bytes(t.bytes),
                    format::bytes(t.size),
                    match t.direction {
                        Direction::Outgoing => "the friend",
                        Direction::Incoming => "the sender",
                    }
                ),
                None,
                Some(("Cancel", Ui::CancelTransfer(id))),
            ),
            (TransferState::Complete, Some(id)) => {
                let open = t
                    .path
                    .as_ref()
                    .and_then(|p| p.parent())
                    .map(|d| ("Show folder", Ui::OpenFolder(d.to_path_buf())));
                let done = match t.direction {
                    Direction::Outgoing => format!("sent · {}", format::bytes(t.size)),
                    Direction::Incoming => format!("received · {}", format::bytes(t.size)),
                };
                (done, open, Some(("Dismiss", Ui::DismissTransfer(id))))
            }
            (TransferState::Stopped(why), Some(id)) => (
                why.clone(),
                None,
                Some(("Dismiss", Ui::DismissTransfer(id))),
            ),
            (TransferState::Stopped(why), None) => (why.clone(), None, None),
            (_, None) => (String::new(), None, None),
        };
        let failed = matches!(t.state, TransferState::Stopped(_));
        self.info
            .set_label_color(if failed { theme::ERROR } else { theme::MUTED });
        self.info.set_label(&info.replace('@', "@@"));
        self.info.set_tooltip(&info);
        for (b, what) in [(&mut self.first, first), (&mut self.second, second)] {
            match what {
                Some((label, ui)) => {
                    b.set_label(label);
                    b.set_callback(move |_| tx.send(Msg::Ui(ui.clone())));
                    b.show();
                }
                None => b.hide(),
            }
        }
        self.row.layout();
        self.row.redraw();
    }
}

/// The rows of the chat shown: which transfers get a row.
pub fn visible(transfers: &[Transfer]) -> &[Transfer] {
    &transfers[transfers.len().saturating_sub(MAX_ROWS)..]
}
