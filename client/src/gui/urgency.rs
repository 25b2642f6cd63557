//! The window manager's urgency hint (ICCCM `XUrgencyHint`): task bars flash or mark the
//! window when something arrives while the user looks elsewhere (issue #15 item 7). FLTK
//! has no call for it, so it is set on the X11 window with Xlib, which FLTK already links.
//! Elsewhere (no X11) it does nothing.

use fltk::prelude::*;
use fltk::window::Window;

/// Sets (`true`) or clears the urgency hint of `win`, if it is shown on X11.
pub fn set_urgent(win: &Window, urgent: bool) {
    if !win.shown() {
        return;
    }
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    x11::set_urgent(fltk::app::display(), win.raw_handle(), urgent);
    #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
    let _ = urgent;
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod x11 {
    use std::os::raw::{c_int, c_long, c_ulong, c_void};

    /// `XWMHints` from `<X11/Xutil.h>`.
    #[repr(C)]
    struct XWMHints {
        flags: c_long,
        input: c_int,
        initial_state: c_int,
        icon_pixmap: c_ulong,
        icon_window: c_ulong,
        icon_x: c_int,
        icon_y: c_int,
        icon_mask: c_ulong,
        window_group: c_ulong,
    }

    const X_URGENCY_HINT: c_long = 1 << 8;

    #[link(name = "X11")]
    extern "C" {
        fn XGetWMHints(display: *mut c_void, w: c_ulong) -> *mut XWMHints;
        fn XAllocWMHints() -> *mut XWMHints;
        fn XSetWMHints(display: *mut c_void, w: c_ulong, hints: *mut XWMHints) -> c_int;
        fn XFree(data: *mut c_void) -> c_int;
        fn XFlush(display: *mut c_void) -> c_int;
    }

    pub fn set_urgent(display: *mut c_void, window: u64, urgent: bool) {
        if display.is_null() || window == 0 {
            return;
        }
        // SAFETY: `display` is FLTK's open Xlib connection and `window` one of its windows,
        // both used on the UI thread only; the hints are Xlib-allocated and freed with XFree.
        unsafe {
            let mut hints = XGetWMHints(display, window);
            if hints.is_null() {
                hints = XAllocWMHints();
                if hints.is_null() {
                    return;
                }
            }
            let was = (*hints).flags & X_URGENCY_HINT != 0;
            if was != urgent {
                if urgent {
                    (*hints).flags |= X_URGENCY_HINT;
                } else {
                    (*hints).flags &= !X_URGENCY_HINT;
                }
                XSetWMHints(display, window, hints);
                XFlush(display);
            }
            XFree(hints.cast());
        }
    }
}
