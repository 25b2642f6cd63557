//! The settings page: download folder, the size up to which offered files are taken
//! without asking, the theme, and (disabled until the core offers it) change password.
//! The values live in [`super::settings::Settings`]; this window only edits them.

use fltk::app;
use fltk::button::{Button, ReturnButton};
use fltk::enums::Align;
use fltk::frame::Frame;
use fltk::group::Flex;
use fltk::input::Input;
use fltk::menu::Choice;
use fltk::prelude::*;
use fltk::window::Window;

use super::format;
use super::msg::{Msg, Ui};
use super::settings::{Settings, Theme};
use super::theme;
use super::widgets::{self, name, Named};

/// Window title.
pub const TITLE: &str = "Peerchat — Settings";

/// The settings window (hidden until opened).
pub struct SettingsWindow {
    /// The window.
    pub win: Window,
    /// Download folder.
    pub downloads: Input,
    /// Auto-accept limit ("0": always ask).
    pub limit: Input,
    /// Light / Dark.
    pub theme: Choice,
    /// Errors ("not a size").
    pub message: Frame,
    /// Named widgets (test hook).
    pub named: Named,
}

impl SettingsWindow {
    /// Builds the window (hidden).
    pub fn new(tx: app::Sender<Msg>) -> Self {
        fltk::group::Group::set_current(None::<&fltk::group::Group>);
        let mut named = Named::new();
        let mut win = Window::default().with_size(560, 360).with_label(TITLE);
        let mut col = Flex::default_fill().column();
        col.set_margins(20, 16, 20, 16);
        col.set_pad(8);
        widgets::heading(&mut col, "Settings", theme::TITLE_SIZE, 30);
        let mut row = Flex::default().row();
        row.set_pad(theme::GAP);
        let mut l = Frame::default().with_label("Received files go to");
        l.set_align(Align::Right | Align::Inside);
        row.fixed(&l, 170);
        let downloads = Input::default();
        let mut choose = Button::default().with_label("Choose…");
        row.fixed(&choose, 90);
        row.end();
        col.fixed(&row, theme::ROW);
        widgets::hint_row(&mut col, "One folder per friend inside it.", 178, 1);
        let limit: Input = widgets::form_row(&mut col, "Accept files up to", 170);
        widgets::hint_row(
            &mut col,
            "Larger files ask first. 0 asks for every file; e.g. 50 MB. Applies to the next offer.",
            178,
            2,
        );
        let mut row = Flex::default().row();
        row.set_pad(theme::GAP);
        let mut l = Frame::default().with_label("Theme");
        l.set_align(Align::Right | Align::Inside);
        row.fixed(&l, 170);
        let mut theme_choice = Choice::default();
        theme_choice.add_choice("Light|Dark");
        widgets::spacer();
        row.end();
        col.fixed(&row, theme::ROW);
        let mut row = Flex::default().row();
        row.set_pad(theme::GAP);
        let pad = Frame::default();
        row.fixed(&pad, 170);
        let mut password = Button::default().with_label("Change password…");
        password.set_callback(move |_| tx.send(Msg::Ui(Ui::OpenPassword)));
        row.fixed(&password, 170);
        widgets::spacer();
        row.end();
        col.fixed(&row, theme::ROW);
        let message = widgets::message(&mut col, 20);
        widgets::spacer();
        let mut buttons = Flex::default().row();
        buttons.set_pad(theme::GAP);
        widgets::spacer();
        let mut cancel = Button::default().with_label("Cancel");
        buttons.fixed(&cancel, 100);
        let mut save = ReturnButton::default().with_label("Save");
        theme::primary(&mut save);
        buttons.fixed(&save, 100);
        buttons.end();
        col.fixed(&buttons, theme::ROW + 2);
        col.end();
        win.end();
        fltk::group::Group::set_current(None::<&fltk::group::Group>);
        win.make_modal(true);

        let mut d = downloads.clone();
        choose.set_callback(move |_| {
            let mut c = fltk::dialog::NativeFileChooser::new(
                fltk::dialog::NativeFileChooserType::BrowseDir,
            );
            c.set_title("Received files go to");
            let _ = c.set_directory(&d.value());
            c.show();
            let p = c.filename();
            if !p.as_os_str().is_empty() {
                d.set_value(&p.to_string_lossy());
            }
        });
        save.set_callback(move |_| tx.send(Msg::Ui(Ui::SettingsSave)));
        cancel.set_callback(move |_| tx.send(Msg::Ui(Ui::SettingsClose)));
        win.set_callback(move |_| tx.send(Msg::Ui(Ui::SettingsClose)));
        name(&mut named, "settings_downloads", &downloads);
        name(&mut named, "settings_limit", &limit);
        name(&mut named, "settings_theme", &theme_choice);
        name(&mut named, "settings_password", &password);
        name(&mut named, "settings_save", &save);
        Self {
            win,
            downloads,
            limit,
            theme: theme_choice,
            message,
            named,
        }
    }

    /// Shows `s` for editing, centred over `over`.
    pub fn open(&mut self, over: &Window, s: &Settings) {
        self.downloads.set_value(&s.downloads().to_string_lossy());
        self.limit.set_value(&if s.auto_accept_max == 0 {
            "0".to_owned()
        } else {
            format::bytes(s.auto_accept_max)
        });
        self.theme.set_value(match s.theme {
            Theme::Light => 0,
            Theme::Dark => 1,
        });
        self.message.set_label("");
        let (w, h) = (self.win.w(), self.win.h());
        self.win
            .set_pos(over.x() + (over.w() - w) / 2, over.y() + (over.h() - h) / 3);
        self.win.show();
    }

    /// The edited settings, or what is wrong with them.
    pub fn read(&self, base: Settings) -> Result<Settings, String> {
        let limit = super::settings::parse_size(&self.limit.value()).ok_or_else(|| {
            format!(
                "\"{}\" is not a size: write e.g. 0, 500 KB or 50 MB.",
                self.limit.value()
            )
        })?;
        let dir = self.downloads.value();
        let dir = dir.trim();
        if !std::path::Path::new(dir).is_absolute() {
            return Err("The download folder must be a full path (starting with /).".to_owned());
        }
        Ok(Settings {
            download_dir: Some(dir.into()),
            auto_accept_max: limit,
            theme: if self.theme.value() == 1 {
                Theme::Dark
            } else {
                Theme::Light
            },
            // What this page does not edit stays (the friends' verified marks).
            ..base
        })
    }
}
