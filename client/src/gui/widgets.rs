//! Small building blocks shared by the windows: labelled form rows, headings, wrapped
//! message labels, and the named-widget list the test hook dumps.

use fltk::enums::{Align, Color, Font};
use fltk::frame::Frame;
use fltk::group::Flex;
use fltk::prelude::*;
use fltk::widget::Widget;

use super::theme;

/// Widgets of a window by name, for the layout test hook (see `test_hooks`).
pub type Named = Vec<(&'static str, Widget)>;

/// Adds `w` to `named` under `name`.
pub fn name<W: WidgetExt>(named: &mut Named, name: &'static str, w: &W) {
    named.push((name, w.as_base_widget()));
}

/// A row "Label [input]" in a column; returns the input.
pub fn form_row<I: InputExt + Default>(col: &mut Flex, label: &str, label_w: i32) -> I {
    let mut row = Flex::default().row();
    row.set_pad(theme::GAP);
    let mut l = Frame::default().with_label(label);
    l.set_align(Align::Right | Align::Inside);
    row.fixed(&l, label_w);
    let input = I::default();
    row.end();
    col.fixed(&row, theme::ROW);
    input
}

/// A line of small grey text under a field (a rule or a hint), indented like the inputs.
pub fn hint_row(col: &mut Flex, text: &str, indent: i32, lines: i32) -> Frame {
    let mut row = Flex::default().row();
    let pad = Frame::default();
    row.fixed(&pad, indent);
    let mut f = Frame::default().with_label(text);
    f.set_align(Align::Left | Align::Inside | Align::Wrap | Align::Top);
    f.set_label_size(theme::SMALL_SIZE);
    f.set_label_color(theme::MUTED);
    row.end();
    col.fixed(&row, lines * (theme::SMALL_SIZE + 5));
    f
}

/// A bold heading.
pub fn heading(col: &mut Flex, text: &str, size: i32, height: i32) -> Frame {
    let mut f = Frame::default().with_label(text);
    f.set_label_font(Font::HelveticaBold);
    f.set_label_size(size);
    f.set_label_color(theme::HEADING);
    f.set_align(Align::Left | Align::Inside);
    col.fixed(&f, height);
    f
}

/// A label for messages (errors in red, progress in grey); wraps, starts empty.
pub fn message(col: &mut Flex, height: i32) -> Frame {
    let mut f = Frame::default();
    f.set_align(Align::Left | Align::Inside | Align::Wrap | Align::Top);
    f.set_label_color(theme::ERROR);
    col.fixed(&f, height);
    f
}

/// Shows `text` in a message label with a colour.
pub fn say(f: &mut Frame, text: &str, color: Color) {
    f.set_label_color(color);
    f.set_label(&text.replace('@', "@@"));
    if let Some(mut w) = f.window() {
        w.redraw();
    }
}

/// An empty, stretching spacer.
pub fn spacer() -> Frame {
    Frame::default()
}
