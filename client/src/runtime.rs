//! The tokio runtime the client core is built to run on: one thread.
//!
//! Everything the core does on its runtime is short: the driver feeding the sans-IO
//! machine, sealing and opening frames, socket reads and writes. What can take long runs
//! elsewhere already: the history's writes and syncs on their writer thread, file reads,
//! writes and hashes on blocking threads. On a work-stealing runtime every hop between the
//! core's tasks (the app's call → the driver → a link's write task, a read task → the
//! driver → the app's event) may wake a second worker, and each such wake-up is a context
//! switch: a chat round trip cost ~11 of them across the two clients, against 2 for plain
//! TCP. On one thread those hops are a poll in the same loop. Measured (issue #14,
//! docs/PERFORMANCE.md "Session 18"): the round trip without any sync dropped from
//! ~0.22 ms to 0.13–0.15 ms (plain TCP 0.08), and with syncs its median p50 over nine
//! rounds from 0.459 to 0.426 ms; files and the chat flood did not slow down.

use std::io;

use tokio::runtime::{Builder, Runtime};

/// Builds the runtime for the client core and the app loop that drives it (timers and I/O
/// enabled). Apps call [`tokio::runtime::Runtime::block_on`] on it from the thread that
/// should run the core (the CLI's main thread, the GUI's backend thread).
///
/// # Errors
/// The runtime's I/O driver cannot be created (out of file descriptors).
pub fn build() -> io::Result<Runtime> {
    Builder::new_current_thread().enable_all().build()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    #[test]
    fn runs_timers_io_and_blocking_tasks() {
        let rt = build().expect("runtime");
        let out = rt.block_on(async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = l.local_addr().expect("addr");
            let (a, b) = tokio::join!(l.accept(), tokio::net::TcpStream::connect(addr));
            assert!(a.is_ok() && b.is_ok());
            tokio::task::spawn_blocking(|| 7)
                .await
                .expect("blocking task")
        });
        assert_eq!(out, 7);
    }
}
