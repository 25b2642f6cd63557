//! A description of the machine a run was on, for the report.

use serde::Serialize;

/// What a reader needs to compare figures across machines.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// MemTotal from /proc/meminfo, in MiB.
    pub mem_total_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// 1-minute load average when the run started (other work on a shared machine).
    pub loadavg_at_start: String,
}

impl Machine {
    /// Reads the description from /proc (fields stay empty where that fails).
    pub fn describe() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let mem_total_mib = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<u64>().ok())
            .map(|k| k / 1024)
            .unwrap_or(0);
        Self {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
            mem_total_mib,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            loadavg_at_start: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} CPUs ({}), {} MiB RAM, Linux {}, load average {} at start",
            self.nproc, self.cpu_model, self.mem_total_mib, self.kernel, self.loadavg_at_start
        )
    }
}
