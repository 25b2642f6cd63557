//! How a case ends when it does not pass, and the early-return macros that say so.
//!
//! Kept apart from [`crate::case`] so that the test client and the case context can report a
//! verdict without depending on the case registry that depends on them (no module cycle:
//! `verdict` ← `client` ← `ctx` ← `case`).

/// Why a case did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The server departs from the spec (or did not answer in time).
    Fail(String),
    /// The case cannot run against this server configuration (say which flag enables it).
    Skip(String),
}

/// What a case body returns: `Ok(reason)` for PASS.
pub type CaseResult = Result<String, Verdict>;

/// Returns `Err(Verdict::Fail(..))` from the enclosing case with a formatted reason.
#[macro_export]
macro_rules! fail {
    ($($t:tt)*) => { return Err($crate::verdict::Verdict::Fail(format!($($t)*))) };
}

/// Returns `Err(Verdict::Skip(..))` from the enclosing case with a formatted reason.
#[macro_export]
macro_rules! skip {
    ($($t:tt)*) => { return Err($crate::verdict::Verdict::Skip(format!($($t)*))) };
}

/// Fails the enclosing case unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($t:tt)*) => { if !$cond { $crate::fail!($($t)*) } };
}
