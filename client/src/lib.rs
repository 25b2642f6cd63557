//! # peerchat-client
//!
//! The headless Peerchat client: a server session (accounts, friends, presence), direct
//! encrypted chat and file transfer between friends that keep working while the server is
//! down, and a local history. User interfaces (the `peerchat-cli` line client here, the
//! FLTK GUI behind the `gui` feature) drive it through [`Client`] and read [`Event`]s.
//!
//! Layout: the peer side's decisions in one sans-IO state machine ([`machine`], built from
//! [`chat`], [`peer::registry`], [`peer::redial`] and the SPEC §8.3 tables), other pure
//! decision makers ([`transfer::naming`], [`peer::hello`], [`peer::traversal`],
//! [`pinning`], [`friends`], [`backoff`]) and a thin tokio layer that carries them out
//! ([`server_session`], [`peer::listener`], [`peer::session`], [`transfer::disk`], the
//! driver, [`client`]).

#![deny(clippy::unwrap_used, clippy::expect_used)]
#![warn(missing_docs)]

pub mod atomic_file;
pub mod backoff;
pub(crate) mod bounded_set;
pub mod chat;
pub mod cli;
pub mod client;
pub(crate) mod driver;
pub mod error;
pub mod events;
pub(crate) mod fast_hash;
pub mod faults;
pub mod friends;
pub mod history;
pub mod ids;
pub mod machine;
pub mod net;
pub mod notices;
pub mod peer;
pub mod pinning;
pub mod profile;
pub mod runtime;
pub mod server_session;
pub mod text;
pub mod transfer;

pub use client::{AutoAccept, Client, ClientConfig, EventStream, CLI_AUTO_ACCEPT_MAX};
pub use driver::FriendsSnapshot;
pub use error::{ClientError, Unavailable};
pub use events::{
    Event, FriendView, KeyDecision, LinkPath, LoginRetryReason, OfflineReason, PeerCloseReason,
    RefuseReason, RequestAnswer, RequestView,
};
pub use history::{FileEntry, HistoryEntry};
pub use ids::{MessageId, TransferId};
pub use peer::traversal::TraversalConfig;
pub use transfer::Direction;
