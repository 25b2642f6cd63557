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
    ServerUnavailable(Unavailable),
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

/// Why the server could not be reached: typed, so that a UI words it without reading the
/// text (issue #13 item 4). The last address tried decides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// No address: the name did not resolve, or the list was empty.
    #[error("{host}: no address ({detail})")]
    NoAddress {
        /// The name as configured.
        host: String,
        /// The resolver's words.
        detail: String,
    },
    /// The TCP connection or the handshake failed with an I/O error of this kind
    /// (refused, timed out, unreachable, reset...).
    #[error("{addr}: {detail}")]
    Io {
        /// The address tried.
        addr: String,
        /// What the system said, as a kind.
        kind: std::io::ErrorKind,
        /// And in words, for logs.
        detail: String,
    },
    /// The handshake did not finish in time.
    #[error("{addr}: no handshake within the time limit")]
    HandshakeTimeout {
        /// The address tried.
        addr: String,
    },
    /// The handshake failed for another reason (a broken or hostile server).
    #[error("{addr}: {detail}")]
    Handshake {
        /// The address tried.
        addr: String,
        /// The channel's words, for logs.
        detail: String,
    },
    /// The connection ended before the answer to a request came.
    #[error("connection lost before the answer")]
    ConnectionLost,
}

impl Unavailable {
    /// The failure of a connection attempt to `addr`.
    pub(crate) fn attempt(addr: impl std::fmt::Display, e: &peerchat_proto::ChannelError) -> Self {
        use peerchat_proto::ChannelError;
        let addr = addr.to_string();
        match e {
            ChannelError::Io(io) => Unavailable::Io {
                addr,
                kind: io.kind(),
                detail: io.to_string(),
            },
            ChannelError::HandshakeTimeout(_) => Unavailable::HandshakeTimeout { addr },
            other => Unavailable::Handshake {
                addr,
                detail: other.to_string(),
            },
        }
    }
}
