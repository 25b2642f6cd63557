//! How wide things are, as pure functions of the space there is, so the main window lays
//! out sanely from its minimum size (760×500) to 4K (issue #15 item 4): the friend column
//! grows with the window so a 32-character userid fits, and a transfer row gives its name
//! the room first and shrinks the bar and the speed text instead of spilling over the
//! friend list. The widgets call these on every resize; the tests pin the rules.

/// The smallest main window (logical pixels).
pub const MIN_W: i32 = 760;
/// The smallest main window height.
pub const MIN_H: i32 = 500;

/// Width of the left column (find, friends, requests) in a window `win_w` wide: a third of
/// it, at least 260 (a long userid at the minimum size) and at most 380 (on a 4K screen the
/// conversation gets the rest).
pub fn left_width(win_w: i32) -> i32 {
    (win_w / 3).clamp(260, 380)
}

/// Widths inside one transfer row `row_w` wide: the buttons are fixed, the name takes at
/// least 40 % of what is left, the bar and the info text share the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferColumns {
    /// The progress bar.
    pub bar: i32,
    /// "1.2 MB of 3.0 GB · 2.3 MB/s", or only the speed when `compact`.
    pub info: i32,
    /// Too narrow for the long info text: show the short one.
    pub compact: bool,
}

/// Width of the two button slots of a transfer row, with the gaps.
pub const TRANSFER_BUTTONS: i32 = 100 + 80 + 4 * 6;

/// The columns of a transfer row `row_w` wide.
pub fn transfer_columns(row_w: i32) -> TransferColumns {
    let rest = (row_w - TRANSFER_BUTTONS).max(0);
    let bar = (rest * 3 / 10).clamp(50, 150);
    let info_full = 170;
    // The name keeps at least 40 % of the rest.
    let room = rest - rest * 4 / 10 - bar;
    if room >= info_full {
        TransferColumns {
            bar,
            info: info_full,
            compact: false,
        }
    } else {
        // Narrow: a short bar (it carries the percentage) and the short info text.
        let bar = bar.min(56);
        TransferColumns {
            bar,
            info: (rest - rest * 4 / 10 - bar).max(60),
            compact: true,
        }
    }
}

/// Screens at least this many physical pixels wide get 2× when nobody chose a scale.
pub const HIDPI_MIN_WIDTH: i32 = 3000;
/// Screens with at least this many dots per inch get 2× when nobody chose a scale
/// (96 dpi is 1×; 192 is the usual 2× laptop panel, and some report a little less).
pub const HIDPI_MIN_DPI: f32 = 180.0;

/// What one screen looks like at start-up, as FLTK reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScreenInfo {
    /// The scale FLTK already uses there: 1 unless the desktop asked for another
    /// (`Xft.dpi`, GNOME's scaling), which then wins over our guess.
    pub current: f32,
    /// Width in physical pixels.
    pub width_px: i32,
    /// Horizontal dots per inch (0 when the X server does not know).
    pub dpi: f32,
}

/// The scale to set on a screen at start-up, or None to leave FLTK's (issue #15: a 4K
/// screen at 1× makes the app tiny). The user's `--scale` wins; `FLTK_SCALING_FACTOR`
/// (FLTK reads it itself) and a scale the desktop already set come next; otherwise a
/// screen at least [`HIDPI_MIN_WIDTH`] wide or [`HIDPI_MIN_DPI`] dense gets 2×. A dpi
/// above 600 is an X server reporting a bogus physical size, not a screen, and is ignored.
pub fn start_scale(given: Option<f32>, env_scale_set: bool, screen: ScreenInfo) -> Option<f32> {
    if given.is_some() {
        return given;
    }
    if env_scale_set || (screen.current - 1.0).abs() > 0.01 {
        return None;
    }
    let dense = screen.dpi >= HIDPI_MIN_DPI && screen.dpi <= 600.0;
    (screen.width_px >= HIDPI_MIN_WIDTH || dense).then_some(2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_friend_column_grows_with_the_window_within_bounds() {
        assert_eq!(left_width(MIN_W), 260);
        assert_eq!(left_width(1000), 333);
        assert_eq!(left_width(3840), 380);
        // The chat keeps more than half of the minimum window.
        assert!(MIN_W - left_width(MIN_W) > MIN_W / 2);
    }

    #[test]
    fn a_transfer_row_fits_its_pane_at_every_width() {
        // The chat pane at the minimum window: 760 - 260 - 1 - 24 margins.
        for row_w in [475, 600, 700, 1000, 3000] {
            let c = transfer_columns(row_w);
            let name = row_w - TRANSFER_BUTTONS - c.bar - c.info;
            assert!(
                name >= (row_w - TRANSFER_BUTTONS) * 3 / 10,
                "{row_w}: name gets {name} px"
            );
            assert!(c.bar >= 50 && c.info >= 60, "{row_w}: {c:?}");
        }
        assert!(transfer_columns(475).compact);
        assert!(!transfer_columns(1000).compact);
        assert_eq!(transfer_columns(3000).bar, 150);
    }

    #[test]
    fn a_4k_or_dense_screen_starts_at_2x_unless_someone_chose() {
        let screen = |width_px, dpi| ScreenInfo {
            current: 1.0,
            width_px,
            dpi,
        };
        // Nobody chose: the screen decides.
        assert_eq!(start_scale(None, false, screen(3840, 96.0)), Some(2.0));
        assert_eq!(start_scale(None, false, screen(3000, 0.0)), Some(2.0));
        assert_eq!(start_scale(None, false, screen(2880, 192.0)), Some(2.0));
        assert_eq!(start_scale(None, false, screen(1920, 96.0)), None);
        assert_eq!(start_scale(None, false, screen(2560, 109.0)), None);
        assert_eq!(start_scale(None, false, screen(1366, 0.0)), None);
        // A bogus physical size (a dpi no screen has) is not a reason.
        assert_eq!(start_scale(None, false, screen(1280, 4000.0)), None);
        // --scale wins, also below 2 on a 4K screen.
        assert_eq!(start_scale(Some(1.0), false, screen(3840, 96.0)), Some(1.0));
        assert_eq!(start_scale(Some(1.5), true, screen(1280, 96.0)), Some(1.5));
        // FLTK_SCALING_FACTOR, or a scale the desktop set (Xft.dpi), is left alone.
        assert_eq!(start_scale(None, true, screen(3840, 96.0)), None);
        let desktop = ScreenInfo {
            current: 1.25,
            ..screen(3840, 120.0)
        };
        assert_eq!(start_scale(None, false, desktop), None);
    }
}
