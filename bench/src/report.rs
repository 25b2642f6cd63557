//! Results: one [`Row`] per figure, printed as a table and written as JSON.
//!
//! Every row carries the figure, the baseline measured in the same run and their ratio, so a
//! reader can judge the figure on a noisy shared machine: the absolute numbers drift from
//! run to run, the ratio much less.

use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

/// Which way a figure is better; decides how the ratio is read and whether a target is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Throughput-like: more is better.
    Higher,
    /// Latency- or memory-like: less is better.
    Lower,
}

/// A goal from the issue, checked against the row's value (or ratio).
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// As written in the issue, e.g. "≥ 0.5× raw TCP".
    pub text: String,
    /// Whether the run met it (`None` if it cannot be judged, e.g. a skipped row).
    pub met: Option<bool>,
}

/// One line of the results table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Scenario number and name, e.g. "1 file".
    pub scenario: String,
    /// What was measured, e.g. "throughput".
    pub metric: String,
    /// The Peerchat figure (`None` for a skipped row).
    pub value: Option<f64>,
    /// Unit of `value` and `baseline`.
    pub unit: String,
    /// What the baseline is, e.g. "plain tokio TCP copy".
    pub baseline_name: Option<String>,
    /// The baseline figure from the same run.
    pub baseline: Option<f64>,
    /// `value / baseline`.
    pub ratio: Option<f64>,
    /// Which way is better.
    pub better: Better,
    /// The goal for this figure, if it has one.
    pub target: Option<Target>,
    /// Anything a reader must know to interpret the row.
    pub note: String,
}

impl Row {
    /// A row with a figure and no baseline.
    pub fn new(scenario: &str, metric: &str, value: f64, unit: &str, better: Better) -> Self {
        Self {
            scenario: scenario.into(),
            metric: metric.into(),
            value: Some(value),
            unit: unit.into(),
            baseline_name: None,
            baseline: None,
            ratio: None,
            better,
            target: None,
            note: String::new(),
        }
    }

    /// A row that could not be measured, with the reason in `note`.
    pub fn skipped(scenario: &str, metric: &str, unit: &str, note: &str) -> Self {
        Self {
            value: None,
            note: note.into(),
            ..Self::new(scenario, metric, 0.0, unit, Better::Higher)
        }
    }

    /// Adds the same-run baseline and computes the ratio.
    pub fn baseline(mut self, name: &str, value: f64) -> Self {
        self.baseline_name = Some(name.into());
        self.baseline = Some(value);
        self.ratio = match self.value {
            Some(v) if value != 0.0 => Some(v / value),
            _ => None,
        };
        self
    }

    /// Replaces the ratio with one computed elsewhere: the median of the ratios of each
    /// round (scenario 6), which a shared machine's drift between rounds moves less than
    /// the ratio of the two medians.
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = ratio.is_finite().then_some(ratio);
        self
    }

    /// Adds a target on the absolute value: met if the value is on the better side of `limit`.
    pub fn target_value(mut self, text: &str, limit: f64) -> Self {
        let met = self.value.map(|v| match self.better {
            Better::Higher => v >= limit,
            Better::Lower => v < limit,
        });
        self.target = Some(Target {
            text: text.into(),
            met,
        });
        self
    }

    /// Adds a target on the ratio: met if the ratio is on the better side of `limit`.
    pub fn target_ratio(mut self, text: &str, limit: f64) -> Self {
        let met = self.ratio.map(|r| match self.better {
            Better::Higher => r >= limit,
            Better::Lower => r < limit,
        });
        self.target = Some(Target {
            text: text.into(),
            met,
        });
        self
    }

    /// Appends to the note.
    pub fn note(mut self, note: &str) -> Self {
        if !self.note.is_empty() {
            self.note.push_str("; ");
        }
        self.note.push_str(note);
        self
    }
}

/// Formats a number with three significant-ish digits, wide numbers without decimals.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Prints the header of the results table.
pub fn print_header() {
    println!(
        "{:<12} {:<44} {:>12} {:<8} {:<34} {:>12} {:>8}  {:<26} note",
        "scenario",
        "metric",
        "peerchat",
        "unit",
        "baseline (same run)",
        "baseline",
        "ratio",
        "target"
    );
    println!("{}", "-".repeat(160));
}

/// Prints one row of the results table (as soon as it is measured).
pub fn print_row(r: &Row) {
    let value = r.value.map(fmt_num).unwrap_or_else(|| "skipped".into());
    let baseline = r.baseline.map(fmt_num).unwrap_or_default();
    let ratio = r.ratio.map(|x| format!("{x:.3}×")).unwrap_or_default();
    let target = match &r.target {
        Some(t) => format!(
            "{} {}",
            t.text,
            match t.met {
                Some(true) => "MET",
                Some(false) => "MISSED",
                None => "n/a",
            }
        ),
        None => String::new(),
    };
    println!(
        "{:<12} {:<44} {:>12} {:<8} {:<34} {:>12} {:>8}  {:<26} {}",
        r.scenario,
        r.metric,
        value,
        r.unit,
        r.baseline_name.as_deref().unwrap_or(""),
        baseline,
        ratio,
        target,
        r.note
    );
    let _ = std::io::stdout().flush();
}

/// Everything a run produced, as written by `--json`.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// The machine the run was on.
    pub machine: &'a crate::machine::Machine,
    /// The options in effect.
    pub options: &'a serde_json::Value,
    /// Wall-clock seconds of the whole run.
    pub elapsed_s: f64,
    /// Every row in print order.
    pub rows: &'a [Row],
    /// Scenarios that failed, with the error.
    pub failures: &'a [String],
}

/// Writes `report` to `path` as pretty JSON.
///
/// # Errors
/// I/O and serialisation errors.
pub fn write_json(path: &Path, report: &Report<'_>) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text + "\n")?;
    Ok(())
}

/// Writes the rows as a Markdown table (what docs/PERFORMANCE.md shows).
///
/// # Errors
/// I/O errors.
pub fn write_markdown(
    path: &Path,
    machine: &crate::machine::Machine,
    rows: &[Row],
) -> anyhow::Result<()> {
    let mut s = format!("Machine: {machine}\n\n");
    s.push_str("| scenario | metric | peerchat | unit | baseline (same run) | baseline | ratio | target | note |\n");
    s.push_str("|---|---|---:|---|---|---:|---:|---|---|\n");
    for r in rows {
        let target = r.target.as_ref().map(|t| {
            format!(
                "{} **{}**",
                t.text,
                match t.met {
                    Some(true) => "met",
                    Some(false) => "missed",
                    None => "n/a",
                }
            )
        });
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.metric,
            r.value.map(fmt_num).unwrap_or_else(|| "skipped".into()),
            r.unit,
            r.baseline_name.as_deref().unwrap_or(""),
            r.baseline.map(fmt_num).unwrap_or_default(),
            r.ratio.map(|x| format!("{x:.3}×")).unwrap_or_default(),
            target.unwrap_or_default(),
            r.note.replace('|', "/")
        ));
    }
    std::fs::write(path, s)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_targets_follow_the_better_direction() {
        let r = Row::new("1", "tput", 2.0, "GB/s", Better::Higher)
            .baseline("tcp", 4.0)
            .target_ratio("≥ 0.5×", 0.5);
        assert_eq!(r.ratio, Some(0.5));
        assert_eq!(r.target.as_ref().and_then(|t| t.met), Some(true));
        let l = Row::new("2", "p99", 1.5, "ms", Better::Lower).target_value("< 1 ms", 1.0);
        assert_eq!(l.target.as_ref().and_then(|t| t.met), Some(false));
        let s = Row::skipped("1", "scp", "GB/s", "no sshd");
        assert!(s.value.is_none() && s.ratio.is_none());
    }
}
