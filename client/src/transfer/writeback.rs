//! Early writeback of a file being received.
//!
//! Why: a transfer is finished only when its `.part` file is synced (the `Verify` step). Left
//! to itself the kernel keeps a whole multi-GiB file dirty in the page cache (the dirty limit
//! is a fifth of RAM), so the closing `fsync` writes all of it while the link sits idle: the
//! disk's time is added to the network's instead of overlapping it. Here the writer asks the
//! kernel to start writing each window as soon as it is full (`sync_file_range` with
//! `SYNC_FILE_RANGE_WRITE`, which does not wait), and waits only for windows a few behind the
//! newest, so the disk works while the next chunks arrive and a transfer holds a bounded
//! amount of dirty memory. Settled windows are dropped from the page cache
//! (`POSIX_FADV_DONTNEED`): a received file is written once and not read back by us (its
//! hash is taken as it passes), and a large one would otherwise push other programs' pages
//! out.
//!
//! None of this is a durability promise: the final `sync_all` still is. So every call here is
//! advisory, and the first one the file system refuses turns writeback off for that file.
//!
//! [`Plan`] decides (pure, unit-tested); [`Writeback`] makes the calls.

use std::fs::File;
use std::ops::Range;

/// Bytes per window: writeback starts each time this much more was written.
pub const WINDOW: u64 = 8 << 20;
/// Windows in flight: the writer waits for the window this many behind the newest one.
pub const IN_FLIGHT: u64 = 4;

/// The ranges to start and to settle after a write.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Steps {
    /// Start writing this range back (does not wait).
    pub start: Option<Range<u64>>,
    /// Wait until this range is on disk, then drop it from the page cache.
    pub settle: Option<Range<u64>>,
}

/// Where writeback stands in one file.
#[derive(Debug, Clone)]
pub struct Plan {
    window: u64,
    in_flight: u64,
    /// Writeback was started for `[.., started)`.
    started: u64,
    /// `[.., settled)` is on disk (or was before this transfer began).
    settled: u64,
}

impl Plan {
    /// A plan for a file that already holds `start` bytes (a resumed `.part` file: those
    /// bytes were synced when the transfer was suspended).
    pub fn new(start: u64) -> Self {
        Self::with(start, WINDOW, IN_FLIGHT)
    }

    fn with(start: u64, window: u64, in_flight: u64) -> Self {
        Self {
            window: window.max(1),
            in_flight,
            started: start,
            settled: start,
        }
    }

    /// The file now holds `written` bytes.
    pub fn after_write(&mut self, written: u64) -> Steps {
        let mut steps = Steps::default();
        if written.saturating_sub(self.started) < self.window {
            return steps;
        }
        steps.start = Some(self.started..written);
        self.started = written;
        let keep = self.window.saturating_mul(self.in_flight);
        let settle_to = self.started.saturating_sub(keep);
        if settle_to > self.settled {
            steps.settle = Some(self.settled..settle_to);
            self.settled = settle_to;
        }
        steps
    }
}

/// A [`Plan`] applied to one open file.
pub struct Writeback {
    plan: Plan,
    /// Off after the first refused call (a file system or platform without it).
    on: bool,
}

impl Writeback {
    /// Writeback for a file that already holds `start` bytes.
    pub fn new(start: u64) -> Self {
        Self {
            plan: Plan::new(start),
            on: cfg!(target_os = "linux"),
        }
    }

    /// Call after each append: `file` now holds `written` bytes.
    pub fn after_write(&mut self, file: &File, written: u64) {
        if !self.on {
            return;
        }
        let steps = self.plan.after_write(written);
        if let Some(r) = steps.start {
            self.on = sys::start(file, &r);
        }
        if let (true, Some(r)) = (self.on, steps.settle) {
            self.on = sys::settle(file, &r);
        }
    }
}

#[cfg(target_os = "linux")]
mod sys {
    //! The two Linux calls. Each returns whether the kernel took it.

    use std::fs::File;
    use std::ops::Range;
    use std::os::fd::AsRawFd as _;

    fn span(r: &Range<u64>) -> Option<(libc::off64_t, libc::off64_t)> {
        let off = libc::off64_t::try_from(r.start).ok()?;
        let len = libc::off64_t::try_from(r.end.checked_sub(r.start)?).ok()?;
        Some((off, len))
    }

    pub fn start(file: &File, r: &Range<u64>) -> bool {
        let Some((off, len)) = span(r) else {
            return false;
        };
        // SAFETY: a valid open descriptor and plain integers; no memory is passed.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), off, len, libc::SYNC_FILE_RANGE_WRITE) == 0
        }
    }

    pub fn settle(file: &File, r: &Range<u64>) -> bool {
        let Some((off, len)) = span(r) else {
            return false;
        };
        let fd = file.as_raw_fd();
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        // SAFETY: as above.
        let ok = unsafe { libc::sync_file_range(fd, off, len, flags) == 0 };
        if ok {
            // Advisory only: a refusal leaves the pages cached, which is harmless.
            // SAFETY: as above.
            unsafe { libc::posix_fadvise(fd, off, len, libc::POSIX_FADV_DONTNEED) };
        }
        ok
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    //! Elsewhere the final sync does all the work, as before.

    use std::fs::File;
    use std::ops::Range;

    pub fn start(_: &File, _: &Range<u64>) -> bool {
        false
    }

    pub fn settle(_: &File, _: &Range<u64>) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::Write as _;

    use super::*;

    #[test]
    fn nothing_until_a_window_is_full() {
        let mut p = Plan::with(0, 10, 2);
        assert_eq!(p.after_write(4), Steps::default());
        assert_eq!(p.after_write(9), Steps::default());
        let s = p.after_write(12);
        assert_eq!(s.start, Some(0..12));
        assert_eq!(s.settle, None);
    }

    #[test]
    fn settles_only_windows_behind_the_ones_in_flight() {
        let mut p = Plan::with(0, 10, 2);
        let steps: Vec<_> = (1..=5).map(|i| p.after_write(i * 10)).collect();
        assert_eq!(steps[0].settle, None);
        assert_eq!(steps[1].settle, None);
        assert_eq!(steps[2].settle, Some(0..10));
        assert_eq!(steps[3].settle, Some(10..20));
        assert_eq!(steps[4].settle, Some(20..30));
        // Every byte is started exactly once, in order.
        let started: Vec<_> = steps.iter().filter_map(|s| s.start.clone()).collect();
        assert_eq!(started, vec![0..10, 10..20, 20..30, 30..40, 40..50]);
    }

    #[test]
    fn a_resumed_file_starts_after_its_synced_prefix() {
        let mut p = Plan::with(95, 10, 1);
        assert_eq!(p.after_write(100), Steps::default());
        let s = p.after_write(105);
        assert_eq!(s.start, Some(95..105));
        assert_eq!(s.settle, None);
        let s = p.after_write(117);
        assert_eq!(s.start, Some(105..117));
        assert_eq!(s.settle, Some(95..107));
    }

    #[test]
    fn a_zero_window_does_not_loop_or_panic() {
        let mut p = Plan::with(0, 0, 0);
        let s = p.after_write(1);
        assert_eq!(s.start, Some(0..1));
        assert_eq!(s.settle, Some(0..1));
        assert_eq!(p.after_write(1), Steps::default());
    }

    #[test]
    fn a_real_file_keeps_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.part");
        let mut f = File::create(&path).unwrap();
        let mut wb = Writeback::new(0);
        let chunk = vec![7u8; 1 << 20];
        let mut written = 0u64;
        for _ in 0..((WINDOW * (IN_FLIGHT + 2)) >> 20) {
            f.write_all(&chunk).unwrap();
            written += chunk.len() as u64;
            wb.after_write(&f, written);
        }
        f.sync_all().unwrap();
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len() as u64, written);
        assert!(back.iter().all(|&b| b == 7));
        if cfg!(target_os = "linux") {
            assert!(wb.on, "the kernel refused sync_file_range on a plain file");
        }
    }
}
