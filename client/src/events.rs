//! What the client core tells its user interface.
//!
//! Every change a UI may want to show arrives as one typed [`Event`] on the event stream
//! returned by [`crate::Client::start`]. Events serialise to one JSON object each, tagged
//! `"event": "<snake_case name>"`, which is what `peerchat-cli --json` prints.

use peerchat_proto::message::PendingRequest;
use serde::Serialize;

use crate::ids::{MessageId, TransferId};
pub use crate::peer::traversal::LinkPath;
use crate::transfer::Direction;

/// A friend as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FriendView {
    /// Registered spelling.
    pub userid: String,
    /// Logged in to the server right now (as far as we know).
    pub online: bool,
    /// Where we would dial them (current or last known).
    pub address: Option<String>,
    /// Fingerprint of their pinned identity key, `SHA256:...`.
    pub fingerprint: String,
    /// While their key change awaits the user's decision (SPEC.md §12.4): the fingerprint
    /// the server presents now. Messages and files to them are held meanwhile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presented_fingerprint: Option<String>,
    /// Where their current session may be reachable (SPEC.md §7.5), as `ADDR` strings;
    /// empty while offline.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
    /// How the open link with them was made (SPEC.md §7.6 "Path"); absent without a link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<LinkPath>,
}

/// A pending friend request as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestView {
    /// The other user.
    pub userid: String,
    /// When it was made, Unix ms.
    pub created_at_unix_ms: u64,
    /// When it expires, Unix ms.
    pub expires_at_unix_ms: u64,
}

impl From<&PendingRequest> for RequestView {
    fn from(r: &PendingRequest) -> Self {
        Self {
            userid: r.userid.clone(),
            created_at_unix_ms: r.created_at_unix_ms,
            expires_at_unix_ms: r.expires_at_unix_ms,
        }
    }
}

/// How a pending key change ended (see [`Event::FriendKeyTrusted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyDecision {
    /// The user accepted the presented key.
    Accepted,
    /// The server presents the pinned key again.
    Reverted,
}

/// Why an automatic login is being retried (see [`Event::LoginRetry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginRetryReason {
    /// The server answered `ERROR_CODE_RATE_LIMITED`: the account or our address is locked
    /// after failed logins (SPEC.md §5.1.7).
    Locked,
    /// The server could not be reached or refused the connection.
    Unreachable,
    /// The server answered another error (for example `ERROR_CODE_INTERNAL`).
    ServerError,
}

/// Everything the core reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The server link came up or went down. While offline, open peer sessions keep working
    /// and new ones use the cached addresses and keys; the client reconnects by itself.
    ServerStatus {
        /// Connected (and, if we were logged in, logged in again).
        online: bool,
        /// Why it is offline.
        reason: Option<String>,
    },
    /// A login (with password or key) succeeded; the full picture.
    LoggedIn {
        /// Our registered spelling.
        userid: String,
        /// Every friend.
        friends: Vec<FriendView>,
        /// Requests to us.
        incoming_requests: Vec<RequestView>,
        /// Requests from us.
        outgoing_requests: Vec<RequestView>,
    },
    /// We logged out.
    LoggedOut,
    /// Someone asked to be our friend.
    FriendRequestReceived {
        /// Who.
        from: String,
    },
    /// A new friend (our request was accepted, we accepted, or requests crossed).
    FriendAdded {
        /// The friend.
        friend: FriendView,
    },
    /// Our request was refused.
    FriendRequestRefused {
        /// By whom.
        userid: String,
    },
    /// Our request expired.
    FriendRequestExpired {
        /// To whom.
        userid: String,
    },
    /// A friend removed us, or we removed them.
    FriendRemoved {
        /// The former friend.
        userid: String,
    },
    /// A friend came online or went offline.
    Presence {
        /// The friend.
        friend: String,
        /// Online now.
        online: bool,
        /// Their peer address, when online and announced.
        address: Option<String>,
    },
    /// The server presents a key for a friend that differs from the pinned one (a new
    /// device, a password thief or a lying server: SPEC.md §12.4). The friend is now in the
    /// "key change pending" state: messages and files to them are held and no peer link is
    /// made until the user calls [`crate::Client::accept_friend_key`] naming `presented`.
    /// Reported once per presented key (and again after each restart while still pending).
    FriendKeyChanged {
        /// The friend.
        friend: String,
        /// Fingerprint of the pinned (trusted) key.
        pinned: String,
        /// Fingerprint of the key the server presents now.
        presented: String,
    },
    /// A friend's key change is no longer pending: the user accepted `fingerprint`
    /// (`accepted`), or the server presents the pinned key again (`reverted`). Held messages
    /// and files go out again.
    FriendKeyTrusted {
        /// The friend.
        friend: String,
        /// Fingerprint of the pinned key now.
        fingerprint: String,
        /// How the change ended.
        how: KeyDecision,
    },
    /// Our account logged in on another device and the server closed this session for it
    /// (SESSION_REPLACED): this device does not log in again by itself. Followed by an
    /// offline [`Event::ServerStatus`].
    SessionReplaced,
    /// The server presents another identity key than the one pinned for its address (SPEC.md
    /// §12.3): the client does not connect to it any more. A reinstalled server or an
    /// interception; the user must compare fingerprints with the operator. Followed by an
    /// [`Event::Error`] with the full explanation and an offline [`Event::ServerStatus`].
    ServerKeyChanged {
        /// The server address as configured.
        server: String,
        /// The pinned (trusted) fingerprint.
        pinned: String,
        /// The fingerprint presented now.
        presented: String,
    },
    /// The automatic login (KeyLogin after a reconnect or at start-up) did not get in; the
    /// client tries again by itself in `retry_in_ms` (SPEC.md §6.10).
    LoginRetry {
        /// Why it failed.
        reason: LoginRetryReason,
        /// When the next attempt starts, ms from now.
        retry_in_ms: u64,
        /// Consecutive failed attempts so far (1 for the first).
        attempt: u32,
    },
    /// A connection to a friend is up, or the one in use changed its path (a relayed link
    /// upgraded, SPEC.md §7.8).
    PeerConnected {
        /// The friend.
        friend: String,
        /// How it was made: direct, reversed, punched or relayed (SPEC.md §7.6 "Path").
        path: LinkPath,
        /// For a link punched by this side's request: which punch attempt made it (1 is the
        /// first, up to PUNCH_ATTEMPTS). None otherwise, also on the side that answered the
        /// punch (it cannot tell a retry from a new request).
        #[serde(skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
    },
    /// The connection to a friend closed.
    PeerDisconnected {
        /// The friend.
        friend: String,
        /// Why.
        reason: String,
    },
    /// Someone who is not a friend tried to connect and was refused.
    PeerRefused {
        /// Their key's fingerprint.
        fingerprint: String,
        /// Where from.
        address: String,
        /// Why.
        reason: String,
    },
    /// A chat message arrived (stored in history before this event).
    MessageReceived {
        /// From whom.
        friend: String,
        /// Its id.
        message_id: MessageId,
        /// The text.
        text: String,
        /// Sender's clock, Unix ms.
        sent_at_unix_ms: u64,
    },
    /// A message we sent was stored by the friend.
    MessageAcked {
        /// To whom.
        friend: String,
        /// Its id.
        message_id: MessageId,
    },
    /// A friend started or stopped typing (a start expires after 6 s without refresh).
    Typing {
        /// Who.
        friend: String,
        /// Typing now.
        active: bool,
    },
    /// A friend offers a file that needs the user's decision.
    FileOffered {
        /// From whom.
        friend: String,
        /// The transfer.
        transfer_id: TransferId,
        /// The safe name it will be saved under (sanitised).
        name: String,
        /// Size in bytes.
        size: u64,
    },
    /// Bytes started flowing (a first accept, or a resume from `offset`).
    TransferStarted {
        /// The friend.
        friend: String,
        /// The transfer.
        transfer_id: TransferId,
        /// Which way.
        direction: Direction,
        /// The file name.
        name: String,
        /// Size in bytes.
        size: u64,
        /// Bytes the receiver already held.
        offset: u64,
    },
    /// Progress of a running transfer (at most four per second).
    TransferProgress {
        /// The friend.
        friend: String,
        /// The transfer.
        transfer_id: TransferId,
        /// Which way.
        direction: Direction,
        /// Bytes done.
        bytes: u64,
        /// Size in bytes.
        size: u64,
        /// Bytes per second since the previous report.
        rate_bytes_per_sec: u64,
    },
    /// The link carrying a transfer closed: it waits, keeping every byte, and resumes when
    /// a link with the friend is open again (SPEC.md §8.3 SUSPENDED); `TransferStarted`
    /// follows when it does.
    TransferSuspended {
        /// The friend.
        friend: String,
        /// The transfer.
        transfer_id: TransferId,
        /// Which way.
        direction: Direction,
        /// Bytes the receiver holds.
        bytes: u64,
    },
    /// The file arrived and its SHA-256 matched.
    TransferComplete {
        /// The friend.
        friend: String,
        /// The transfer.
        transfer_id: TransferId,
        /// Which way.
        direction: Direction,
        /// The received file (incoming) or the source file (outgoing).
        path: String,
        /// Size in bytes.
        size: u64,
    },
    /// The transfer stopped for good.
    TransferCancelled {
        /// The friend.
        friend: String,
        /// The transfer.
        transfer_id: TransferId,
        /// Which way.
        direction: Direction,
        /// `cancelled`, `declined`, `hash_mismatch`, `io_error`, `invalid`, `unknown_transfer`.
        reason: String,
        /// Detail.
        message: String,
    },
    /// Something failed in the background (the message says what).
    Error {
        /// What went wrong.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_snake_case_json() {
        let e = Event::MessageReceived {
            friend: "bob".into(),
            message_id: MessageId([0xab; 16]),
            text: "hi".into(),
            sent_at_unix_ms: 5,
        };
        let v = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(v["event"], "message_received");
        assert_eq!(v["message_id"], "ab".repeat(16));
        let s = serde_json::to_value(Event::ServerStatus {
            online: false,
            reason: Some("gone".into()),
        })
        .unwrap_or_default();
        assert_eq!(s["event"], "server_status");
        assert_eq!(s["online"], false);
        let t = serde_json::to_value(Event::TransferStarted {
            friend: "a".into(),
            transfer_id: TransferId([1; 16]),
            direction: Direction::Incoming,
            name: "n".into(),
            size: 1,
            offset: 0,
        })
        .unwrap_or_default();
        assert_eq!(t["direction"], "incoming");
    }
}
