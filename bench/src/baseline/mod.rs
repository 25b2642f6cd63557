//! Baselines measured in the same run as the Peerchat figures: what the machine does without
//! Peerchat's protocol, encryption, database and client logic.

pub mod scp;
pub mod socat;
pub mod tcp_copy;
pub mod tcp_pingpong;
pub mod wormhole;

use std::time::Duration;

use crate::procfs::Usage;

/// One copy by a peer program: its wall time and what each end used, so that the
/// end-to-end row (scenario 6) can put CPU-seconds per GB and peak RSS of each end beside
/// Peerchat's.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerRun {
    /// From starting the copy until the received file was synced.
    pub wall: Duration,
    /// The sending end (for scp: `scp` and the `ssh` it runs).
    pub sender: Usage,
    /// The receiving end (for scp: everything the private sshd forked for the copy).
    pub receiver: Usage,
    /// CPU of a third party the bytes went through (magic-wormhole's transit relay and
    /// mailbox), counted in neither end.
    pub middle_cpu: Duration,
}

/// Samples the largest VmHWM among the processes below `pid` until stopped: the peak RSS of
/// an end whose processes are not our children (sshd's per-connection processes), read
/// while they are alive. Every 10 ms; a process that lives shorter may be missed, which
/// only matters for the peak of short set-up helpers.
///
/// Also the peak of a program we spawn ([`PeakSampler::start_tree`]), because `wait4`'s
/// `ru_maxrss` is wrong for it: the standard library spawns with `vfork`, and at `exec`
/// Linux carries the high-water mark of the memory it leaves (this benchmark's, hundreds of
/// MiB after scenarios 1–4) into the child's `ru_maxrss`. VmHWM belongs to the new image.
pub struct PeakSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// `None` once finished.
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl PeakSampler {
    /// Starts sampling below `pid`.
    pub fn start(pid: u32) -> Self {
        Self::sample(pid, false)
    }

    /// Starts sampling `pid` and the processes below it.
    pub fn start_tree(pid: u32) -> Self {
        Self::sample(pid, true)
    }

    fn sample(pid: u32, with_root: bool) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let root = with_root.then_some(pid);
                for d in root.into_iter().chain(crate::procfs::descendants(pid)) {
                    if let Ok(m) = crate::procfs::memory(Some(d)) {
                        peak = peak.max(m.hwm);
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and returns the largest VmHWM seen (0 if none).
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }

    /// Stops, and puts the largest VmHWM seen in `usage` in place of its `ru_maxrss`.
    pub fn into_usage(self, usage: Usage) -> Usage {
        Usage {
            peak_rss: self.finish(),
            ..usage
        }
    }
}

impl Drop for PeakSampler {
    /// A copy that failed half-way drops its samplers: their threads stop too.
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
