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
}
