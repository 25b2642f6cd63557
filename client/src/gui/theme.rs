//! Colours, fonts and sizes, in one place so every window looks the same.

use fltk::app;
use fltk::enums::{Color, Font, FrameType};
use fltk::prelude::*;
use fltk::text::{StyleTableEntryExt, TextAttr};

/// Online friends, as in the original: green.
pub const ONLINE: Color = Color::from_rgb(0, 140, 60);
/// Offline friends, as in the original: grey. Dark enough that FLTK keeps it (instead of
/// switching to black) on the light selection colour of the friend list.
pub const OFFLINE: Color = Color::from_rgb(115, 117, 122);
/// Errors.
pub const ERROR: Color = Color::from_rgb(180, 30, 30);
/// Warnings (the recovery code must be kept).
pub const WARNING: Color = Color::from_rgb(150, 80, 0);
/// Success ("Account created").
pub const SUCCESS: Color = Color::from_rgb(0, 120, 50);
/// Secondary text.
pub const MUTED: Color = Color::from_rgb(100, 104, 112);
/// Our own name in the chat.
pub const ACCENT: Color = Color::from_rgb(30, 90, 200);
/// The friend's name in the chat.
pub const FRIEND: Color = Color::from_rgb(0, 120, 90);
/// `<File>` lines.
pub const FILE: Color = Color::from_rgb(120, 50, 160);
/// The window background.
pub const BACKGROUND: (u8, u8, u8) = (244, 245, 247);
/// The status bar background.
pub const STATUS_BG: Color = Color::from_rgb(228, 231, 236);
/// Section headings.
pub const HEADING: Color = Color::from_rgb(70, 75, 85);

/// Normal text size (points before `--scale`).
pub const TEXT_SIZE: i32 = 14;
/// Small print (rules, hints).
pub const SMALL_SIZE: i32 = 12;
/// Window titles inside windows.
pub const TITLE_SIZE: i32 = 20;
/// Height of one-line inputs and buttons.
pub const ROW: i32 = 30;
/// Gap between widgets.
pub const GAP: i32 = 8;

/// Sets the scheme, colours, font size and screen scale for the whole app.
pub fn apply(scale: Option<f32>) {
    app::set_scheme(app::Scheme::Gtk);
    let (r, g, b) = BACKGROUND;
    app::background(r, g, b);
    app::background2(255, 255, 255);
    app::foreground(25, 28, 33);
    app::set_selection_color(45, 105, 220);
    app::set_font_size(TEXT_SIZE);
    app::set_visible_focus(true);
    if let Some(f) = scale {
        for n in 0..app::screen_count() {
            app::set_screen_scale(n, f);
        }
    }
}

/// The default ("do it") button of a window: blue with white text.
pub fn primary<B: ButtonExt>(b: &mut B) {
    b.set_color(Color::from_rgb(45, 105, 220));
    b.set_label_color(Color::White);
    b.set_selection_color(Color::from_rgb(30, 80, 180));
    b.set_label_font(Font::HelveticaBold);
}

/// A small, borderless, link-looking button ("Forgot password?").
pub fn link<B: ButtonExt>(b: &mut B) {
    b.set_frame(FrameType::FlatBox);
    b.set_down_frame(FrameType::FlatBox);
    b.set_label_color(ACCENT);
    let (r, g, bl) = BACKGROUND;
    b.set_color(Color::from_rgb(r, g, bl));
    b.set_selection_color(Color::from_rgb(r, g, bl));
}

/// Switches between the light and the dark colours (settings page).
pub fn set_theme(t: super::settings::Theme) {
    match t {
        super::settings::Theme::Light => {
            let (r, g, b) = BACKGROUND;
            app::background(r, g, b);
            app::background2(255, 255, 255);
            app::foreground(25, 28, 33);
        }
        super::settings::Theme::Dark => {
            app::background(40, 42, 48);
            app::background2(28, 30, 34);
            app::foreground(225, 228, 234);
        }
    }
}

/// Style table of the chat view, in the order of `format::style` letters.
pub fn chat_styles() -> Vec<StyleTableEntryExt> {
    let e = |color, font, size| StyleTableEntryExt {
        color,
        font,
        size,
        attr: TextAttr::None,
        bgcolor: Color::Background2,
    };
    vec![
        // The text follows the theme's foreground (dark or light).
        e(Color::Foreground, Font::Helvetica, TEXT_SIZE),
        e(ACCENT, Font::HelveticaBold, TEXT_SIZE),
        e(FRIEND, Font::HelveticaBold, TEXT_SIZE),
        e(ONLINE, Font::HelveticaBold, TEXT_SIZE),
        e(OFFLINE, Font::Helvetica, TEXT_SIZE),
        e(FILE, Font::HelveticaBold, TEXT_SIZE),
        e(MUTED, Font::HelveticaItalic, TEXT_SIZE),
        // LINK: underlined, as links are everywhere.
        StyleTableEntryExt {
            attr: TextAttr::Underline,
            ..e(Color::from_rgb(20, 80, 200), Font::Helvetica, TEXT_SIZE)
        },
        // TIME, DAY.
        e(MUTED, Font::Helvetica, SMALL_SIZE),
        e(MUTED, Font::HelveticaBold, SMALL_SIZE),
    ]
}
