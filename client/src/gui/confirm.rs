//! A small modal "are you sure?" dialog whose safe answer is the default: Enter and Esc
//! both cancel, only a click (or Tab then Space) on the action confirms. FLTK's `fl_choice`
//! makes the second button the Enter default, which would make Unfriend one key away.

use std::cell::Cell;
use std::rc::Rc;

use fltk::app;
use fltk::button::{Button, ReturnButton};
use fltk::enums::{Align, Color, Font};
use fltk::frame::Frame;
use fltk::group::Flex;
use fltk::prelude::*;
use fltk::window::Window;

use super::theme;
use super::widgets;

/// Window title of the dialog.
pub const TITLE: &str = "Peerchat — Confirm";

/// Asks `question` (with `detail` below); true only if the user chose `action`.
pub fn confirm(over: &Window, question: &str, detail: &str, action: &str) -> bool {
    let (w, h) = (460, 190);
    // A window made while some group is "current" becomes a subwindow of it, drawn clipped
    // inside the main window with its buttons off-screen (issue #15 item 3): this dialog is
    // always a top-level window of its own.
    fltk::group::Group::set_current(None::<&fltk::group::Group>);
    let mut win = Window::default().with_size(w, h).with_label(TITLE);
    let mut col = Flex::default_fill().column();
    col.set_margins(20, 16, 20, 16);
    col.set_pad(8);
    let mut q = Frame::default().with_label(&question.replace('@', "@@"));
    q.set_label_font(Font::HelveticaBold);
    q.set_align(Align::Left | Align::Inside | Align::Wrap);
    col.fixed(&q, 24);
    let mut d = Frame::default().with_label(&detail.replace('@', "@@"));
    d.set_align(Align::Left | Align::Inside | Align::Wrap | Align::Top);
    d.set_label_color(theme::MUTED);
    widgets::spacer();
    let mut row = Flex::default().row();
    row.set_pad(8);
    widgets::spacer();
    let mut act = Button::default().with_label(action);
    act.set_label_color(Color::White);
    act.set_color(theme::DANGER);
    row.fixed(&act, 120);
    let mut cancel = ReturnButton::default().with_label("Cancel");
    row.fixed(&cancel, 120);
    row.end();
    col.fixed(&row, theme::ROW + 2);
    col.end();
    win.end();
    win.make_modal(true);
    win.set_pos(over.x() + (over.w() - w) / 2, over.y() + (over.h() - h) / 3);

    let answer = Rc::new(Cell::new(None::<bool>));
    let a = answer.clone();
    act.set_callback(move |_| a.set(Some(true)));
    let a = answer.clone();
    cancel.set_callback(move |_| a.set(Some(false)));
    let a = answer.clone();
    // Esc and the close box: no.
    win.set_callback(move |_| a.set(Some(false)));
    win.show();
    let _ = cancel.take_focus();
    while win.shown() && answer.get().is_none() {
        if !app::wait() {
            break;
        }
    }
    win.hide();
    Window::delete(win);
    answer.get().unwrap_or(false)
}
