//! Colours, fonts and sizes, in one place so every window looks the same.

use fltk::app;
use fltk::enums::{Color, Font, FrameType};
use fltk::prelude::*;
use fltk::text::{StyleTableEntryExt, TextAttr};

// Every colour that differs between the light and the dark theme is an entry of FLTK's
// colour map (indices 16.., free for applications), not a fixed RGB value: switching the
// theme rewrites the entries ([`set_theme`]) and every widget, label and chat style that
// uses them follows at the next redraw, with no widget to restyle one by one.

/// Online friends, as in the original: green.
pub const ONLINE: Color = Color::from_rgbi(16);
/// Offline friends, as in the original: grey. Dark enough that FLTK keeps it (instead of
/// switching to black) on the light selection colour of the friend list.
pub const OFFLINE: Color = Color::from_rgbi(17);
/// Errors.
pub const ERROR: Color = Color::from_rgbi(18);
/// Warnings (the recovery code must be kept).
pub const WARNING: Color = Color::from_rgbi(19);
/// Success ("Account created").
pub const SUCCESS: Color = Color::from_rgbi(20);
/// Secondary text.
pub const MUTED: Color = Color::from_rgbi(21);
/// Our own name in the chat.
pub const ACCENT: Color = Color::from_rgbi(22);
/// The friend's name in the chat.
pub const FRIEND: Color = Color::from_rgbi(23);
/// `<File>` lines.
pub const FILE: Color = Color::from_rgbi(24);
/// The window background (light theme).
pub const BACKGROUND: (u8, u8, u8) = (244, 245, 247);
/// The status bar background.
pub const STATUS_BG: Color = Color::from_rgbi(25);
/// Section headings.
pub const HEADING: Color = Color::from_rgbi(26);
/// The selected line of the friend and request lists.
pub const LIST_SELECTION: Color = Color::from_rgbi(27);
/// Thin separator lines.
pub const SEPARATOR: Color = Color::from_rgbi(28);
/// The empty part of a progress bar.
pub const TRACK: Color = Color::from_rgbi(29);
/// Web links in the chat.
pub const LINK: Color = Color::from_rgbi(30);
/// The background of a warning banner or a dangerous button (white text on it).
pub const DANGER: Color = Color::from_rgbi(31);

/// An RGB triple.
type Rgb = (u8, u8, u8);

/// The RGB of each themed colour: (entry, light, dark).
const PALETTE: [(Color, Rgb, Rgb); 16] = [
    (ONLINE, (0, 140, 60), (90, 205, 125)),
    (OFFLINE, (115, 117, 122), (150, 154, 162)),
    (ERROR, (180, 30, 30), (245, 110, 105)),
    (WARNING, (150, 80, 0), (235, 165, 70)),
    (SUCCESS, (0, 120, 50), (95, 200, 125)),
    (MUTED, (100, 104, 112), (160, 165, 175)),
    (ACCENT, (30, 90, 200), (120, 165, 255)),
    (FRIEND, (0, 120, 90), (85, 205, 165)),
    (FILE, (120, 50, 160), (205, 145, 245)),
    (STATUS_BG, (228, 231, 236), (30, 32, 37)),
    (HEADING, (70, 75, 85), (205, 210, 220)),
    (LIST_SELECTION, (214, 226, 250), (52, 72, 112)),
    (SEPARATOR, (215, 218, 224), (62, 65, 72)),
    (TRACK, (225, 228, 234), (55, 58, 66)),
    (LINK, (20, 80, 200), (125, 175, 255)),
    (DANGER, (180, 30, 30), (160, 40, 40)),
];

/// The (background, background2, foreground) of a theme.
fn base(t: super::settings::Theme) -> [(u8, u8, u8); 3] {
    match t {
        super::settings::Theme::Light => [BACKGROUND, (255, 255, 255), (25, 28, 33)],
        super::settings::Theme::Dark => [(40, 42, 48), (28, 30, 34), (225, 228, 234)],
    }
}

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

/// Sets the scheme, colours, font size and screen scale for the whole app (the scale: the
/// user's, else one picked from each screen, `layout::start_scale`).
pub fn apply(scale: Option<f32>) {
    app::set_scheme(app::Scheme::Gtk);
    set_theme(super::settings::Theme::Light);
    app::set_selection_color(45, 105, 220);
    app::set_font_size(TEXT_SIZE);
    app::set_visible_focus(true);
    // FLTK reads FLTK_SCALING_FACTOR itself; an empty value means unset.
    let env_scale_set = std::env::var_os("FLTK_SCALING_FACTOR").is_some_and(|v| !v.is_empty());
    for n in 0..app::screen_count() {
        let current = app::screen_scale(n);
        // Screen sizes come in FLTK units, that is physical pixels divided by the scale.
        let (_, _, w, _) = app::screen_xywh(n);
        let (dpi, _) = app::screen_dpi(n);
        let screen = super::layout::ScreenInfo {
            current,
            width_px: (w as f32 * current).round() as i32,
            dpi,
        };
        if let Some(f) = super::layout::start_scale(scale, env_scale_set, screen) {
            tracing::debug!(screen = n, ?screen, scale = f, "screen scale");
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
    // The window's own background, whichever the theme.
    b.set_color(Color::Background);
    b.set_selection_color(Color::Background);
}

/// Switches between the light and the dark colours (settings page): the base colours of
/// FLTK and every themed entry of the colour map.
pub fn set_theme(t: super::settings::Theme) {
    let [bg, bg2, fg] = base(t);
    app::background(bg.0, bg.1, bg.2);
    app::background2(bg2.0, bg2.1, bg2.2);
    app::foreground(fg.0, fg.1, fg.2);
    for (entry, light, dark) in PALETTE {
        let (r, g, b) = match t {
            super::settings::Theme::Light => light,
            super::settings::Theme::Dark => dark,
        };
        app::set_color(entry, r, g, b);
    }
}

/// The RGB of a themed colour in theme `t`.
#[cfg(test)]
fn rgb(entry: Color, t: super::settings::Theme) -> Option<(u8, u8, u8)> {
    PALETTE
        .iter()
        .find(|(e, _, _)| *e == entry)
        .map(|(_, l, d)| match t {
            super::settings::Theme::Light => *l,
            super::settings::Theme::Dark => *d,
        })
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
            ..e(LINK, Font::Helvetica, TEXT_SIZE)
        },
        // TIME, DAY.
        e(MUTED, Font::Helvetica, SMALL_SIZE),
        e(MUTED, Font::HelveticaBold, SMALL_SIZE),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::settings::Theme;

    /// Relative luminance (sRGB, WCAG 2).
    fn luminance((r, g, b): (u8, u8, u8)) -> f64 {
        let c = |v: u8| {
            let v = f64::from(v) / 255.0;
            if v <= 0.039_28 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * c(r) + 0.7152 * c(g) + 0.0722 * c(b)
    }

    fn contrast(a: (u8, u8, u8), b: (u8, u8, u8)) -> f64 {
        let (x, y) = (luminance(a), luminance(b));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    #[test]
    fn every_text_colour_is_readable_in_both_themes() {
        for t in [Theme::Light, Theme::Dark] {
            let [bg, bg2, _] = base(t);
            for (name, c) in [
                ("online", ONLINE),
                ("offline", OFFLINE),
                ("error", ERROR),
                ("warning", WARNING),
                ("success", SUCCESS),
                ("muted", MUTED),
                ("accent", ACCENT),
                ("friend", FRIEND),
                ("file", FILE),
                ("heading", HEADING),
                ("link", LINK),
            ] {
                let rgb = rgb(c, t).unwrap_or((0, 0, 0));
                for (what, back) in [("window", bg), ("text area", bg2)] {
                    let k = contrast(rgb, back);
                    assert!(k >= 3.0, "{t:?}: {name} on the {what}: contrast {k:.2}");
                }
            }
            let white = (255, 255, 255);
            let danger = rgb(DANGER, t).unwrap_or(white);
            assert!(contrast(white, danger) >= 4.5, "{t:?}: white on the banner");
            // The status bar is a band of its own, but its text stays readable on it.
            let bar = rgb(STATUS_BG, t).unwrap_or(white);
            let muted = rgb(MUTED, t).unwrap_or(white);
            assert!(contrast(muted, bar) >= 3.0, "{t:?}: status text");
        }
    }
}
