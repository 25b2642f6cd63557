//! Errors the client core returns to its caller.

use peerchat_proto::message::RequestError;

use crate::history::HistoryError;
use crate::pinning::PinError;
use crate::profile::ProfileError;

/// Why a [`crate::Client`] call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The profile could not be used.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The history database failed.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The server's key does not match the pinned one (a hard error: see the message).
    #[error(transparent)]
    Pin(#[from] PinError),
    /// The server answered the request with an error.
    #[error("server refused: {0}")]
    Server(#[from] RequestError),
    /// The server cannot be reached now (the client keeps retrying in the background).
    #[error("server unavailable: {0}")]
    ServerUnavailable(String),
    /// The request needs a login first.
    #[error("not logged in")]
    NotLoggedIn,
    /// The named user is not a friend (in the friend cache).
    #[error("{0} is not a friend")]
    NotAFriend(String),
    /// A friend's new key could not be accepted (nothing pending, or the presented key is
    /// not the one named: it may have changed again, SPEC.md §12.4).
    #[error(transparent)]
    KeyChange(#[from] crate::friends::AcceptKeyError),
    /// An argument is invalid (empty or too long text, not a file, unknown transfer...).
    #[error("{0}")]
    Invalid(String),
    /// A local I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The peer listener could not be started.
    #[error("peer listener on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The identity could not be prepared for handshakes.
    #[error("identity: {0}")]
    Identity(String),
    /// The client was shut down.
    #[error("client is shut down")]
    Closed,
}

impl ClientError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ClientError::Io {
            context: context.into(),
            source,
        }
    }
}
