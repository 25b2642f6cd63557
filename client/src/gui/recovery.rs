//! The page that shows a recovery code once (after Create account and after a password
//! reset): the code in large type, a Copy button and a warning to keep it.

use fltk::app;
use fltk::button::{Button, ReturnButton};
use fltk::enums::{Align, Font};
use fltk::frame::Frame;
use fltk::group::Flex;
use fltk::output::Output;
use fltk::prelude::*;

use super::msg::{Msg, Ui};
use super::theme;
use super::widgets::{self, name, Named};

/// The recovery-code page (a column filling its window; hidden until a code arrives).
pub struct CodePage {
    /// The page.
    pub page: Flex,
    /// "Account alice created." / "Password changed for alice."
    pub headline: Frame,
    /// "Your recovery code:" / "Your new recovery code...".
    intro: Frame,
    /// The code (read-only, selectable).
    pub code: Output,
    /// "Copied" feedback.
    pub copied: Frame,
    /// Close the window.
    pub done: ReturnButton,
}

impl CodePage {
    /// Builds the page in the current group (a window); `close` is sent by Continue.
    pub fn new(tx: app::Sender<Msg>, close: Ui, done_label: &str, named: &mut Named) -> Self {
        let mut page = Flex::default_fill().column();
        page.set_margins(28, 20, 28, 20);
        page.set_pad(theme::GAP);
        let mut headline = widgets::heading(&mut page, "", theme::TITLE_SIZE, 36);
        headline.set_label_color(theme::SUCCESS);
        let mut intro = Frame::default();
        intro.set_align(Align::Left | Align::Inside);
        page.fixed(&intro, 24);

        let mut row = Flex::default().row();
        row.set_pad(theme::GAP);
        let mut code = Output::default();
        code.set_text_font(Font::CourierBold);
        code.set_text_size(20);
        let mut copy = Button::default().with_label("Copy");
        row.fixed(&copy, 90);
        row.end();
        page.fixed(&row, 40);
        let mut copied = Frame::default();
        copied.set_align(Align::Left | Align::Inside);
        copied.set_label_color(theme::SUCCESS);
        copied.set_label_size(theme::SMALL_SIZE);
        page.fixed(&copied, 18);

        let mut warn = Frame::default().with_label(
            "⚠  Write this code down and keep it somewhere safe. It is the only way to get back into your \
             account if you forget your password, and it will not be shown again.",
        );
        warn.set_align(Align::Left | Align::Inside | Align::Wrap | Align::Top);
        warn.set_label_color(theme::WARNING);
        warn.set_label_font(Font::HelveticaBold);
        page.fixed(&warn, 80);
        widgets::spacer();

        let mut buttons = Flex::default().row();
        widgets::spacer();
        let mut done = ReturnButton::default().with_label(done_label);
        theme::primary(&mut done);
        buttons.fixed(&done, 200);
        buttons.end();
        page.fixed(&buttons, theme::ROW + 4);
        page.end();
        page.hide();

        let c = code.clone();
        copy.set_callback(move |_| tx.send(Msg::Ui(Ui::CopyCode(c.value()))));
        done.set_callback(move |_| tx.send(Msg::Ui(close.clone())));
        name(named, "code", &code);
        name(named, "copy", &copy);
        name(named, "done", &done);
        Self {
            page,
            headline,
            intro,
            code,
            copied,
            done,
        }
    }

    /// Shows `code` with a headline.
    pub fn show_code(&mut self, headline: &str, intro: &str, code: &str) {
        self.headline.set_label(headline);
        self.intro.set_label(intro);
        self.code.set_value(code);
        self.copied.set_label("");
        self.page.show();
        let _ = self.done.take_focus();
    }
}
