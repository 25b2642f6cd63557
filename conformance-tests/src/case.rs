//! What a conformance case is: a stable id keyed to a SPEC.md section, a level, a one-line
//! description, the protocol names it exercises, and an async body.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::ctx::Ctx;

/// How binding the checked rule is (RFC 2119 words as SPEC.md uses them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Level {
    /// A MUST: failing it makes the implementation non-conformant (non-zero exit).
    Must,
    /// A SHOULD: reported, but does not change the exit status.
    Should,
}

impl Level {
    /// "MUST" or "SHOULD".
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
        }
    }
}

/// When a case may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Schedule {
    /// Together with other cases (it only uses its own random users).
    Parallel,
    /// Alone, after every parallel case: it looks at server-wide state (connection counts)
    /// or ends the server (shutdown); shutdown cases come last of all.
    Exclusive,
    /// Alone and last: it stops the server.
    Last,
}

pub use crate::verdict::{CaseResult, Verdict};

/// A boxed case body.
pub type CaseFuture = Pin<Box<dyn Future<Output = CaseResult> + Send>>;

/// A case body: a plain function so that the registry is a static table.
pub type CaseFn = fn(Ctx) -> CaseFuture;

/// One conformance case.
#[derive(Clone)]
pub struct Case {
    /// Stable id, `area.subject.detail`; never renumbered, so reports can be compared.
    pub id: &'static str,
    /// The SPEC.md section the rule comes from, like "5.2".
    pub section: &'static str,
    /// MUST or SHOULD.
    pub level: Level,
    /// One line saying what is checked.
    pub description: &'static str,
    /// Protocol names (ERROR_CODE_*, CLOSE_REASON_*, push names) this case exercises.
    pub covers: &'static [&'static str],
    /// Overall time limit: a hung server never hangs the suite.
    pub timeout: Duration,
    /// When it may run.
    pub schedule: Schedule,
    /// The body.
    pub run: CaseFn,
    /// A known defect of the implementation under test that this case catches, named by its
    /// id in the audit that found it (e.g. `D4` of docs/peer-table-audit.md): a FAIL is then
    /// reported as XFAIL (and does not count as a failure) until the defect is fixed.
    pub known_failure: Option<&'static str>,
    /// The SPEC.md §8.5 rows a peer case proves besides the one its id names
    /// (`peer.<row>.<detail>`), upper case as SPEC.md writes them (`"L50"`, `"R53"`);
    /// `tests/row_coverage.rs` checks that every row is proved by some case.
    pub rows: &'static [&'static str],
}

impl Case {
    /// A MUST case with a 30 s time limit.
    pub fn must(
        id: &'static str,
        section: &'static str,
        description: &'static str,
        run: CaseFn,
    ) -> Self {
        Self {
            id,
            section,
            level: Level::Must,
            description,
            covers: &[],
            timeout: Duration::from_secs(30),
            schedule: Schedule::Parallel,
            run,
            known_failure: None,
            rows: &[],
        }
    }

    /// A SHOULD case with a 30 s time limit.
    pub fn should(
        id: &'static str,
        section: &'static str,
        description: &'static str,
        run: CaseFn,
    ) -> Self {
        Self {
            level: Level::Should,
            ..Self::must(id, section, description, run)
        }
    }

    /// Declares the protocol names this case exercises.
    pub fn covers(mut self, names: &'static [&'static str]) -> Self {
        self.covers = names;
        self
    }

    /// Sets the overall time limit.
    pub fn timeout_secs(mut self, secs: u64) -> Self {
        self.timeout = Duration::from_secs(secs);
        self
    }

    /// Declares the further §8.5 rows this case proves (besides the one in its id).
    pub fn rows(mut self, rows: &'static [&'static str]) -> Self {
        self.rows = rows;
        self
    }

    /// The §8.5 rows this case proves: the one its id names (`peer.r9.…` → `R9`, `peer.l21b.…` → `L21b`) and those
    /// given by [`Case::rows`]. Empty for a server case.
    pub fn spec_rows(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        if let Some(row) = self
            .id
            .strip_prefix("peer.")
            .and_then(|r| r.split('.').next())
        {
            // `l21b` → `L21b`: SPEC.md writes the letter in upper case, a variant in lower.
            let mut chars = row.chars();
            if let Some(first) = chars.next() {
                v.push(first.to_ascii_uppercase().to_string() + chars.as_str());
            }
        }
        for r in self.rows {
            if !v.iter().any(|x| x == r) {
                v.push((*r).to_string());
            }
        }
        v
    }

    /// Marks the case as failing today because of audit row `row` (an XFAIL, listed in the
    /// report); a PASS then says the mark can go.
    pub fn known_failure(mut self, row: &'static str) -> Self {
        self.known_failure = Some(row);
        self
    }

    /// Runs the case alone after the parallel phase.
    pub fn exclusive(mut self) -> Self {
        self.schedule = Schedule::Exclusive;
        self
    }

    /// Runs the case alone at the very end (it stops the server).
    pub fn last(mut self) -> Self {
        self.schedule = Schedule::Last;
        self
    }
}
