//! `peerchat`: the Peerchat desktop app (FLTK), built on the headless client core.
//!
//! Usage: `peerchat [--server HOST:PORT] [--profile DIR] [--scale F]`.
//!
//! The GUI lives in `src/gui/` and is compiled into this binary only (the library crate
//! stays free of FLTK, so the core and `peerchat-cli` build without a C++ toolchain).

#![deny(clippy::unwrap_used, clippy::expect_used)]

#[path = "../gui/mod.rs"]
mod gui;

use clap::Parser as _;

/// mimalloc, not glibc's malloc: the core hands many small buffers between threads (frames
/// from link tasks to the driver, rows to SQLite's thread); with mimalloc the two clients of
/// a chat flood spent 0.82x the CPU per message (issue #14, docs/PERFORMANCE.md, session 10).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let options = gui::options::Options::parse();
    match gui::run(options) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peerchat: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
