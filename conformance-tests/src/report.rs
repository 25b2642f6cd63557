//! Results: one line per case, the closing count line, JUnit XML and JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::case::Level;

/// The result of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The server behaved as the spec says.
    Pass,
    /// It did not (or did not answer in time).
    Fail,
    /// The case could not run against this configuration.
    Skip,
    /// It failed, as expected: the case is marked with a known defect (an audit row id,
    /// [`crate::case::Case::known_failure`]). Not a failure of the run.
    #[serde(rename = "xfail")]
    XFail,
}

impl Status {
    /// "PASS", "FAIL" or "SKIP".
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
            Status::XFail => "XFAIL",
        }
    }
}

/// One case's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct CaseOutcome {
    /// Case id.
    pub id: String,
    /// SPEC.md section.
    pub section: String,
    /// MUST or SHOULD.
    pub level: Level,
    /// What it checks.
    pub description: String,
    /// PASS, FAIL or SKIP.
    pub status: Status,
    /// Why.
    pub reason: String,
    /// How long it took.
    pub duration_ms: u64,
}

impl CaseOutcome {
    /// `PASS id — reason` (FAIL of a SHOULD case says so).
    pub fn line(&self) -> String {
        let should = if self.status == Status::Fail && self.level == Level::Should {
            "[SHOULD] "
        } else {
            ""
        };
        format!(
            "{} {} — {should}{}",
            self.status.as_str(),
            self.id,
            self.reason.replace('\n', " ")
        )
    }
}

/// All outcomes of a run, in registry order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The outcomes.
    pub outcomes: Vec<CaseOutcome>,
}

impl Report {
    fn count(&self, s: Status) -> usize {
        self.outcomes.iter().filter(|o| o.status == s).count()
    }

    /// Cases that passed.
    pub fn passed(&self) -> usize {
        self.count(Status::Pass)
    }

    /// Cases that failed.
    pub fn failed(&self) -> usize {
        self.count(Status::Fail)
    }

    /// Cases that were skipped.
    pub fn skipped(&self) -> usize {
        self.count(Status::Skip)
    }

    /// Cases that failed as expected (known defects).
    pub fn xfailed(&self) -> usize {
        self.count(Status::XFail)
    }

    /// MUST cases that failed: any makes the exit status non-zero.
    pub fn must_failures(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.status == Status::Fail && o.level == Level::Must)
            .count()
    }

    /// The outcome of case `id`.
    pub fn get(&self, id: &str) -> Option<&CaseOutcome> {
        self.outcomes.iter().find(|o| o.id == id)
    }

    /// The closing line: exactly `N passed, M failed`, then `, K skipped` and `, X xfail` if
    /// any were.
    pub fn summary_line(&self) -> String {
        let mut s = format!("{} passed, {} failed", self.passed(), self.failed());
        if self.skipped() > 0 {
            let _ = write!(s, ", {} skipped", self.skipped());
        }
        if self.xfailed() > 0 {
            let _ = write!(s, ", {} xfail", self.xfailed());
        }
        s
    }

    /// Every case line, then the closing line.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for o in &self.outcomes {
            s.push_str(&o.line());
            s.push('\n');
        }
        s.push_str(&self.summary_line());
        s.push('\n');
        s
    }

    /// JUnit XML (one testsuite per SPEC.md top-level section's area, cases as testcases).
    pub fn junit(&self) -> String {
        let total_ms: u64 = self.outcomes.iter().map(|o| o.duration_ms).sum();
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            x,
            "<testsuites name=\"peerchat-conformance\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
            self.outcomes.len(),
            self.failed(),
            self.skipped() + self.xfailed(),
            total_ms as f64 / 1000.0
        );
        let _ = writeln!(
            x,
            "  <testsuite name=\"peerchat-conformance\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" errors=\"0\" time=\"{:.3}\">",
            self.outcomes.len(),
            self.failed(),
            self.skipped() + self.xfailed(),
            total_ms as f64 / 1000.0
        );
        for o in &self.outcomes {
            let _ = write!(
                x,
                "    <testcase classname=\"SPEC.md §{}\" name=\"{}\" time=\"{:.3}\">",
                xml_escape(&o.section),
                xml_escape(&o.id),
                o.duration_ms as f64 / 1000.0
            );
            match o.status {
                Status::Pass => {}
                Status::Fail => {
                    let _ = write!(
                        x,
                        "<failure type=\"{}\" message=\"{}\">{}</failure>",
                        o.level.as_str(),
                        xml_escape(&o.reason),
                        xml_escape(&o.description)
                    );
                }
                Status::Skip | Status::XFail => {
                    let _ = write!(x, "<skipped message=\"{}\"/>", xml_escape(&o.reason));
                }
            }
            x.push_str("</testcase>\n");
        }
        x.push_str("  </testsuite>\n</testsuites>\n");
        x
    }

    /// JSON: `{"passed":N,"failed":M,"skipped":K,"cases":[...]}`.
    pub fn json(&self) -> String {
        let v = serde_json::json!({
            "passed": self.passed(),
            "failed": self.failed(),
            "skipped": self.skipped(),
            "xfail": self.xfailed(),
            "must_failures": self.must_failures(),
            "cases": self.outcomes,
        });
        serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Escapes text for XML attributes and content; drops characters XML 1.0 cannot carry.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &str, status: Status, level: Level) -> CaseOutcome {
        CaseOutcome {
            id: id.into(),
            section: "5.2".into(),
            level,
            description: "d <&>".into(),
            status,
            reason: "because \"x\"".into(),
            duration_ms: 12,
        }
    }

    #[test]
    fn summary_and_lines() {
        let r = Report {
            outcomes: vec![
                outcome("a.b", Status::Pass, Level::Must),
                outcome("a.c", Status::Fail, Level::Should),
                outcome("a.d", Status::Skip, Level::Must),
            ],
        };
        assert_eq!(r.summary_line(), "1 passed, 1 failed, 1 skipped");
        assert_eq!(r.must_failures(), 0);
        assert!(r.text().contains("FAIL a.c — [SHOULD] because"));
        let x = r.junit();
        assert!(x.contains(
            "<failure type=\"SHOULD\" message=\"because &quot;x&quot;\">d &lt;&amp;&gt;</failure>"
        ));
        assert!(x.contains("<skipped message="));
        let j: serde_json::Value = serde_json::from_str(&r.json()).unwrap_or_default();
        assert_eq!(j["failed"], 1);
        assert_eq!(j["cases"][0]["status"], "pass");
    }

    #[test]
    fn no_skipped_suffix_when_none() {
        let r = Report {
            outcomes: vec![outcome("a", Status::Pass, Level::Must)],
        };
        assert_eq!(r.summary_line(), "1 passed, 0 failed");
    }

    #[test]
    fn xfail_is_counted_apart_and_is_no_failure() {
        let r = Report {
            outcomes: vec![
                outcome("a", Status::Pass, Level::Must),
                outcome("b", Status::XFail, Level::Must),
            ],
        };
        assert_eq!(r.summary_line(), "1 passed, 0 failed, 1 xfail");
        assert_eq!(r.must_failures(), 0);
        assert!(r.text().contains("XFAIL b — because"));
        let j: serde_json::Value = serde_json::from_str(&r.json()).unwrap_or_default();
        assert_eq!(j["xfail"], 1);
        assert_eq!(j["cases"][1]["status"], "xfail");
        assert!(r.junit().contains("skipped=\"1\""));
    }
}
