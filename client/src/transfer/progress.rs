//! Throttled progress reports with a transfer rate, for the UI (no clock of its own).

use std::time::{Duration, Instant};

/// How often at most a transfer reports progress.
pub const REPORT_EVERY: Duration = Duration::from_millis(250);

/// Decides when to report progress and computes the rate since the previous report.
#[derive(Debug, Clone)]
pub struct ProgressMeter {
    last_at: Instant,
    last_bytes: u64,
}

/// One progress report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressReport {
    /// Bytes done in total.
    pub bytes: u64,
    /// Bytes per second since the previous report.
    pub rate_bytes_per_sec: u64,
}

impl ProgressMeter {
    /// A meter starting at `bytes` at `now`.
    pub fn new(now: Instant, bytes: u64) -> Self {
        Self {
            last_at: now,
            last_bytes: bytes,
        }
    }

    /// Records that `bytes` are done at `now`; returns a report if one is due.
    pub fn update(&mut self, now: Instant, bytes: u64) -> Option<ProgressReport> {
        let elapsed = now.saturating_duration_since(self.last_at);
        if elapsed < REPORT_EVERY {
            return None;
        }
        let delta = bytes.saturating_sub(self.last_bytes);
        let rate = (delta as f64 / elapsed.as_secs_f64()) as u64;
        self.last_at = now;
        self.last_bytes = bytes;
        Some(ProgressReport {
            bytes,
            rate_bytes_per_sec: rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_at_most_every_interval_with_the_rate() {
        let t0 = Instant::now();
        let mut m = ProgressMeter::new(t0, 0);
        assert_eq!(m.update(t0 + Duration::from_millis(100), 1000), None);
        let r = m.update(t0 + Duration::from_millis(500), 5000);
        assert_eq!(
            r,
            Some(ProgressReport {
                bytes: 5000,
                rate_bytes_per_sec: 10_000
            })
        );
        assert_eq!(m.update(t0 + Duration::from_millis(600), 6000), None);
    }
}
