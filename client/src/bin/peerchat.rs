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
