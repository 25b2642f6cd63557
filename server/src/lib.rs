//! # peerchat-server
//!
//! The Peerchat directory server (SPEC.md §5, §6): accounts, friendships, friend requests
//! and presence, persisted with sea-orm on SQLite (the default) or PostgreSQL. It never sees a chat message or a file.
//!
//! Where things are:
//! - [`config`]: every setting ([`Config`]); [`server`]: start-up, accept loop, shutdown.
//! - [`connection`]: one client connection (handshake, read loop, writer task).
//! - [`cmd`]: one file per request family — `auth`, `friends`, `presence`, `traversal`.
//! - [`relay`]: relay connections and the splice between two friends (SPEC.md §7.7).
//! - [`hub`]: who is online and how to reach them; [`expiry`]: the request sweeper.
//! - [`cluster`]: several nodes on one PostgreSQL database (bus, heartbeats).
//! - [`db`]: entities, migrations and the transactional operations.
//! - Pure rules with unit tests: [`validate`], [`ratelimit`], [`recovery`], [`password`],
//!   [`rtt`].
//!
//! ```no_run
//! # async fn run() -> Result<(), peerchat_server::ServerError> {
//! let server = peerchat_server::start(peerchat_server::Config::for_tests("/tmp/pc".into())).await?;
//! println!("listening on {} as {}", server.local_addr, server.fingerprint);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

pub mod cluster;
pub mod cmd;
pub mod config;
pub mod connection;
pub mod db;
pub mod expiry;
pub mod hub;
pub mod password;
#[cfg(feature = "test-postgres")]
pub mod pg_harness;
pub mod proxy_protocol;
pub mod ratelimit;
pub mod recovery;
pub mod relay;
pub mod rtt;
pub mod server;
pub mod state;
pub mod validate;

pub use config::{Clock, Config, Faults, OffsetClock, SystemClock};
pub use server::{start, RunningServer, ServerError};
