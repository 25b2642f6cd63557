//! # peerchat-conformance
//!
//! A black-box conformance suite for Peerchat servers, in the spirit of h2spec and
//! Autobahn|Testsuite: it speaks only the wire protocol of SPEC.md to a server at an address,
//! and reports case by case, keyed to SPEC.md sections, where the server departs from the
//! spec.
//!
//! - [`verdict`]: why a case did not pass (FAIL / SKIP) and the macros that return it.
//! - [`case`]: what a case is (id, section, level, description, covered names).
//! - [`cases`]: the registry of every case, one module per SPEC.md area.
//! - [`client`]: a small test client over the proto crate's Noise channel.
//! - [`raw`]: a raw Noise session written directly on `snow`, for abuse cases.
//! - [`peer`]: the peer suite, which plays a friend against a client under test.
//! - [`runner`]: runs cases concurrently with per-case time-outs.
//! - [`report`]: text, JUnit XML and JSON output.

#![deny(clippy::unwrap_used)]

pub mod case;
pub mod cases;
pub mod client;
pub mod config;
pub mod ctx;
pub mod ident;
pub mod peer;
pub mod raw;
pub mod report;
pub mod runner;
pub mod verdict;

pub use case::{Case, Level, Verdict};
pub use config::SuiteConfig;
pub use report::{CaseOutcome, Report, Status};
pub use runner::run_suite;
