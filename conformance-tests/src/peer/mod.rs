//! The peer suite: the conformance binary plays a FRIEND against a client under test
//! (`peerchat-conformance peer …`), through a real server, and checks the client's answers
//! against SPEC.md §3.6, §7 and the decision tables of §8.5 (rows L, C, R, S).
//!
//! How a case runs ([`Pair::start`]):
//! 1. Two accounts are registered on the server through the protocol: the friend (played by
//!    the suite) and the client's account; the suite makes them friends, speaking for both
//!    (the client's identity is one of the published test keys, so the suite can).
//! 2. The client under test gets a profile folder holding that identity key
//!    (`identity.pem`) and is started twice: `… login USERID` (pins the server key, records
//!    the account), then `… chat`, which stays up; its stdout is read as JSON lines.
//! 3. The friend learns the client's peer endpoint from `FriendOnline` and dials it, or waits
//!    for the client to dial the friend's own listener, and then speaks the peer protocol
//!    itself: Noise channel and `PeerHello` from the proto crate ([`link::FriendLink`]).
//!
//! The client command line is the contract (`peerchat-cli`'s): the suite appends
//! `--server ADDR --profile DIR --json --peer-listen 127.0.0.1:0 --auto-accept-max N` and then
//! `login USERID` or `chat`; the password is in `PEERCHAT_PASSWORD`. In `chat` it writes lines
//! `/msg`, `/send`, `/typing`, `/accept-file`, `/decline-file`, `/cancel`, `/quit`, and reads
//! the events `logged_in`, `message_received`, `message_acked`, `typing`, `file_offered`,
//! `transfer_started`, `transfer_complete`, `transfer_cancelled`, `peer_connected`,
//! `peer_disconnected`.

pub mod cases;
pub mod link;
pub mod pair;
pub mod server;
pub mod sut;

pub use link::{FriendLink, LinkEvent};
pub use pair::{Pair, PairOptions};
pub use sut::Sut;

/// Kept in [`crate::config`] (the suite configuration holds it), so that `config` does not
/// depend on the peer suite that depends on it.
pub use crate::config::PeerTarget;
