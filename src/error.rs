//! Errors of the framing, handshake and channel layers.

use crate::identity::IdentityError;
use crate::wire::CloseReason;

/// Why a handshake failed (SPEC.md §4.2). The connection is closed without a Close frame,
/// because at least one side has no transport keys yet.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Noise rejected a message (bad ciphertext, wrong length, or a protocol mismatch).
    #[error("noise handshake failed: {0}")]
    Noise(#[from] snow::Error),
    /// The handshake payload is not a valid HandshakePayload protobuf.
    #[error("handshake payload does not decode: {0}")]
    MalformedPayload(#[from] prost::DecodeError),
    /// Message 1 carried a payload; SPEC.md §4.2 requires it to be empty.
    #[error("handshake message 1 must have an empty payload")]
    UnexpectedPayload,
    /// The identity key is unusable or its signature over the Noise static key is wrong.
    #[error("remote identity rejected: {0}")]
    Identity(#[from] IdentityError),
    /// The remote speaks a protocol version this implementation cannot (SPEC.md §4.5).
    #[error("remote protocol version {0} is not supported (this side speaks 1)")]
    UnsupportedVersion(u32),
    /// The remote is a different kind of endpoint (for example a peer port dialled as a server).
    #[error("wrong channel kind: expected {expected:?}, remote said {got}")]
    WrongChannelKind {
        /// What this side expected.
        expected: crate::wire::ChannelKind,
        /// The raw value the remote sent.
        got: i32,
    },
    /// A handshake step was attempted out of turn (a bug in the caller).
    #[error("handshake step out of order")]
    OutOfOrder,
    /// The responder proved an identity, but not the one the initiator meant to reach (a
    /// changed server key, or a friend's address now used by someone else). Message 3 was not sent.
    #[error("remote identity {0} is not the one expected")]
    UnexpectedRemoteKey(crate::identity::Fingerprint),
    /// Noise did not report the remote static key after it should have been received.
    #[error("remote static key missing")]
    MissingRemoteStatic,
    /// Both sides of a simultaneous open sent the same message 1 (SPEC.md §4.7): a replay or
    /// a reflection, never two honest peers.
    #[error("simultaneous open with identical handshake messages")]
    SimultaneousOpenTie,
}

/// Errors of the record and frame layers (SPEC.md §3).
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A record's length prefix was 0 (SPEC.md §3.1).
    #[error("empty record")]
    EmptyRecord,
    /// A frame's length prefix exceeds the maximum (SPEC.md §3.3).
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a record or a frame.
    #[error("connection closed in the middle of a {0}")]
    Truncated(&'static str),
    /// A transport record failed authentication (tampered, reordered or replayed).
    #[error("transport record failed to decrypt")]
    Decrypt,
    /// Encryption failed (nonce exhausted).
    #[error("transport encryption failed: {0}")]
    Encrypt(snow::Error),
    /// The AES-GCM record counter is used up (SPEC.md §3.2.1 rule 4; never in practice).
    #[error("transport record counter exhausted")]
    NonceExhausted,
    /// The record cipher cannot switch here: the hello did not end its record, or frames
    /// are still queued (SPEC.md §3.2.1 rule 2).
    #[error("cipher switch not at a record boundary")]
    SwitchNotAtBoundary,
    /// A frame is too large to send.
    #[error("refusing to send a frame of {len} bytes (maximum {max})")]
    SendTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl FrameError {
    /// The Close reason a side sends when this error ends the connection, if any can be sent.
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self {
            FrameError::FrameTooLarge { .. } => Some(CloseReason::FrameTooLarge),
            FrameError::EmptyRecord | FrameError::SwitchNotAtBoundary => {
                Some(CloseReason::ProtocolError)
            }
            // After a decryption failure the stream cannot be trusted; after truncation the peer
            // is gone. Nothing is sent.
            FrameError::Truncated(_)
            | FrameError::Decrypt
            | FrameError::Encrypt(_)
            | FrameError::NonceExhausted
            | FrameError::SendTooLarge { .. } => None,
        }
    }
}

/// Errors of an established or establishing [`crate::channel`] connection.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Socket I/O failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The handshake did not finish within HANDSHAKE_TIMEOUT.
    #[error("handshake did not finish within {0:?}")]
    HandshakeTimeout(std::time::Duration),
    /// The handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// Framing or decryption failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame decrypted but is not the expected protobuf message.
    #[error("malformed frame: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The remote closed the connection before the handshake finished.
    #[error("connection closed during the handshake")]
    ClosedDuringHandshake,
    /// Encrypted data followed the frame after which the connection switches to a relayed
    /// byte stream (SPEC.md §7.7): nothing may follow RelayOpen / RelayOpenOk.
    #[error("data followed the last frame before the relay switch")]
    DataAfterRelaySwitch,
}

impl ChannelError {
    /// The Close reason to send before closing because of this error, if one can be sent.
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self {
            ChannelError::Frame(f) => f.close_reason(),
            ChannelError::Decode(_) => Some(CloseReason::MalformedFrame),
            _ => None,
        }
    }
}
