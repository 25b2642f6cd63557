//! What the client core tells its user interface.
//!
//! Every change a UI may want to show arrives as one typed [`Event`] on the event stream
//! returned by [`crate::Client::start`]. Events serialise to one JSON object each, tagged
//! `"event": "<snake_case name>"`, which is what `peerchat-cli --json` prints.

use std::fmt;

use peerchat_proto::message::PendingRequest;
pub use peerchat_proto::wire::{CloseReason, ErrorCode, FileCancelReason};
use serde::{Serialize, Serializer};

use crate::ids::{MessageId, TransferId};
use crate::transfer::{reason_name, Direction};

/// How a link with a friend was made (SPEC.md §7.6 "Path"). Local information only.
///
/// Defined here, not in `peer::traversal` which decides it, so that the events (which the
/// friend book and the peer layer both use) depend on no layer above them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkPath {
    /// A direct dial, or an inbound connection not caused by a request of ours.
    Direct,
    /// Formed while a connection reversal was pending.
    Reversed,
    /// Formed during a coordinated simultaneous open (hole punch).
    Punched,
    /// Through the server's relay (SPEC.md §7.7).
    Relayed,
}

impl LinkPath {
    /// The word shown to users: "direct", "reversed", "punched" or "relayed".
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPath::Direct => "direct",
            LinkPath::Reversed => "reversed",
            LinkPath::Punched => "punched",
            LinkPath::Relayed => "relayed",
        }
    }
}

impl std::fmt::Display for LinkPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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

/// The snake_case word of a proto enum value: its proto name without `prefix`, lower case
/// (`CLOSE_REASON_IDLE_TIMEOUT` → `idle_timeout`). The words the CLI's `--json` prints.
fn proto_word(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

/// `idle_timeout` for `CLOSE_REASON_IDLE_TIMEOUT`.
pub fn close_word(reason: CloseReason) -> String {
    proto_word(reason.as_str_name(), "CLOSE_REASON_")
}

/// `bad_credentials` for `ERROR_CODE_BAD_CREDENTIALS`.
pub fn code_word(code: ErrorCode) -> String {
    proto_word(code.as_str_name(), "ERROR_CODE_")
}

/// A typed reason as JSON: `{"kind": "...", "code": "..."}`, `code` only when the reason
/// carries a proto code. One shape for every reason enum, so a script reads them alike.
#[derive(Serialize)]
struct KindCode {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
}

impl KindCode {
    fn ser<S: Serializer>(
        kind: &'static str,
        code: Option<String>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        KindCode { kind, code }.serialize(s)
    }
}

/// Why the server link is down (see [`Event::ServerStatus`]): a typed reason, never a
/// sentence to parse (issue #13 item 4). Shared by the live core and the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineReason {
    /// The server could not be reached (connect, handshake or name lookup failed).
    Unreachable,
    /// The connection dropped: end-of-stream or an I/O error, without the server's `Close`.
    Lost,
    /// The server closed the connection with `Close{reason}` (for example SERVER_SHUTDOWN).
    ServerClosed(CloseReason),
    /// Nothing arrived from the server for IDLE_TIMEOUT: this side closed it (SPEC.md §3.6).
    Silent,
    /// The server sent a frame this client cannot read: this side closed it.
    ProtocolError,
    /// The server presents another key than the pinned one (SPEC.md §12.3); an
    /// [`Event::ServerKeyChanged`] names both fingerprints. No reconnecting until the user
    /// acts.
    KeyChanged,
    /// The pin file could not be read or written: no connecting until it is fixed.
    PinFile,
    /// The server refused the (automatic) login with this code.
    Refused(ErrorCode),
    /// The user logged out.
    LoggedOut,
    /// Another device logged in to the account (SESSION_REPLACED).
    Replaced,
}

impl OfflineReason {
    fn kind(self) -> &'static str {
        match self {
            OfflineReason::Unreachable => "unreachable",
            OfflineReason::Lost => "lost",
            OfflineReason::ServerClosed(_) => "server_closed",
            OfflineReason::Silent => "silent",
            OfflineReason::ProtocolError => "protocol_error",
            OfflineReason::KeyChanged => "key_changed",
            OfflineReason::PinFile => "pin_file",
            OfflineReason::Refused(_) => "refused",
            OfflineReason::LoggedOut => "logged_out",
            OfflineReason::Replaced => "replaced",
        }
    }
}

impl Serialize for OfflineReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let code = match *self {
            OfflineReason::ServerClosed(r) => Some(close_word(r)),
            OfflineReason::Refused(c) => Some(code_word(c)),
            _ => None,
        };
        KindCode::ser(self.kind(), code, s)
    }
}

impl fmt::Display for OfflineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OfflineReason::Unreachable => f.write_str("server unreachable"),
            OfflineReason::Lost => f.write_str("connection to the server lost"),
            OfflineReason::ServerClosed(r) => {
                write!(f, "the server closed the connection ({})", close_word(*r))
            }
            OfflineReason::Silent => f.write_str("the server was silent for too long"),
            OfflineReason::ProtocolError => f.write_str("the server sent an invalid frame"),
            OfflineReason::KeyChanged => f.write_str("the server's key changed"),
            OfflineReason::PinFile => f.write_str("the pinned server keys cannot be read"),
            OfflineReason::Refused(code) => write!(f, "login refused ({})", code_word(*code)),
            OfflineReason::LoggedOut => f.write_str("logged out"),
            OfflineReason::Replaced => f.write_str("session replaced by another device"),
        }
    }
}

/// Why a link with a friend closed (see [`Event::PeerDisconnected`]): the friend's
/// `Close` reason when it sent one, or the local cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerCloseReason {
    /// The friend sent `Close` with this reason.
    Friend(CloseReason),
    /// The connection ended without a `Close` (end-of-stream: the friend's end went away).
    Lost,
    /// Reading or writing failed (an I/O error, or a frame that could not be decrypted).
    IoError,
    /// Nothing arrived for too long: this side closed it IDLE_TIMEOUT (SPEC.md §3.6).
    IdleTimeout,
    /// Another link with the friend replaced this one: closed DUPLICATE_CONNECTION (L52).
    Replaced,
    /// We logged out, or the client is stopping: closed NORMAL (L53).
    LoggedOut,
    /// The friendship ended or the friend's key changed: closed NOT_A_FRIEND (L50, L51).
    NotAFriend,
    /// This side closed it with another code: the friend broke a rule (PROTOCOL_ERROR,
    /// RATE_LIMITED, SLOW_CONSUMER, MALFORMED_FRAME…); UNSPECIFIED when the driver did not
    /// say which.
    Local(CloseReason),
}

impl PeerCloseReason {
    /// The reason for a link this side closed with `Close{reason}`.
    pub fn sent(reason: CloseReason) -> Self {
        match reason {
            CloseReason::IdleTimeout => PeerCloseReason::IdleTimeout,
            CloseReason::DuplicateConnection => PeerCloseReason::Replaced,
            CloseReason::Normal => PeerCloseReason::LoggedOut,
            CloseReason::NotAFriend => PeerCloseReason::NotAFriend,
            other => PeerCloseReason::Local(other),
        }
    }

    fn kind(self) -> &'static str {
        match self {
            PeerCloseReason::Friend(_) => "friend",
            PeerCloseReason::Lost => "lost",
            PeerCloseReason::IoError => "io_error",
            PeerCloseReason::IdleTimeout => "idle_timeout",
            PeerCloseReason::Replaced => "replaced",
            PeerCloseReason::LoggedOut => "logged_out",
            PeerCloseReason::NotAFriend => "not_a_friend",
            PeerCloseReason::Local(_) => "local",
        }
    }
}

impl Serialize for PeerCloseReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let code = match *self {
            PeerCloseReason::Friend(r) | PeerCloseReason::Local(r) => Some(close_word(r)),
            _ => None,
        };
        KindCode::ser(self.kind(), code, s)
    }
}

impl fmt::Display for PeerCloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerCloseReason::Friend(r) => write!(f, "closed by the friend: {}", close_word(*r)),
            PeerCloseReason::Lost => f.write_str("connection lost"),
            PeerCloseReason::IoError => f.write_str("connection broken"),
            PeerCloseReason::IdleTimeout => f.write_str("idle time-out"),
            PeerCloseReason::Replaced => f.write_str("replaced by another connection"),
            PeerCloseReason::LoggedOut => f.write_str("closed: logged out"),
            PeerCloseReason::NotAFriend => f.write_str("closed: not a friend (or key changed)"),
            PeerCloseReason::Local(r) => write!(f, "closed here: {}", close_word(*r)),
        }
    }
}

/// Why an incoming connection was refused during the hello exchange (see
/// [`Event::PeerRefused`]; SPEC.md §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefuseReason {
    /// The handshake key is no friend's key.
    UnknownKey,
    /// The hello names a user who is not our friend or whose key is not the handshake key.
    WrongUser,
    /// The hello is addressed to someone else.
    NotForUs,
    /// We dialled one friend and reached another identity.
    UnexpectedKey,
    /// The friend's key change awaits the user's decision (SPEC.md §12.4).
    KeyChangePending,
    /// The first frame was not a PeerHello.
    NotHello,
    /// The connection broke, was closed or timed out during the hello exchange.
    Connection,
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefuseReason::UnknownKey => "not the key of any friend",
            RefuseReason::WrongUser => "the hello names another user than the key proves",
            RefuseReason::NotForUs => "the hello is addressed to someone else",
            RefuseReason::UnexpectedKey => "another key than the friend's",
            RefuseReason::KeyChangePending => "the friend's key change awaits your decision",
            RefuseReason::NotHello => "the first frame was not a PeerHello",
            RefuseReason::Connection => "the connection failed during the hello",
        })
    }
}

/// How a friend request was answered by us (see [`Event::FriendRequestAnswered`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestAnswer {
    /// We accepted: a [`Event::FriendAdded`] follows (or came first).
    Accepted,
    /// We refused.
    Refused,
}

/// `reason` of [`Event::TransferCancelled`] as the CLI's snake-case word (`declined`,
/// `hash_mismatch`…): the proto enum inside, today's words outside.
fn ser_code<S: Serializer>(c: &ErrorCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&code_word(*c))
}

fn ser_opt_code<S: Serializer>(c: &Option<ErrorCode>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => ser_code(c, s),
        None => s.serialize_none(),
    }
}

fn ser_cancel_reason<S: Serializer>(r: &FileCancelReason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(reason_name(*r))
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
        /// Why it is offline (None while online).
        reason: Option<OfflineReason>,
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
    /// Our friend request is pending at the server (SendFriendRequest answered without a
    /// friendship; SPEC.md §6.3). Its answer comes as [`Event::FriendRequestAccepted`],
    /// [`Event::FriendRequestRefused`] or [`Event::FriendRequestExpired`].
    FriendRequestSent {
        /// To whom.
        userid: String,
    },
    /// Our request was accepted (the push `FriendRequestAccepted`); a
    /// [`Event::FriendAdded`] follows.
    FriendRequestAccepted {
        /// By whom.
        userid: String,
    },
    /// We answered a request made to us (AcceptFriendRequest / RefuseFriendRequest).
    FriendRequestAnswered {
        /// Who had asked.
        userid: String,
        /// Our answer.
        answer: RequestAnswer,
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
        /// The server's error code, when it answered one (None: unreachable).
        #[serde(
            serialize_with = "ser_opt_code",
            skip_serializing_if = "Option::is_none"
        )]
        code: Option<ErrorCode>,
        /// When the next attempt starts, ms from now.
        retry_in_ms: u64,
        /// Consecutive failed attempts so far (1 for the first).
        attempt: u32,
    },
    /// The automatic login was refused for good (for example BAD_CREDENTIALS: the account's
    /// key was replaced by a password login elsewhere, SPEC.md §5.3): the client does not try
    /// again; the user must log in with the password.
    LoginRefused {
        /// The server's error code.
        #[serde(serialize_with = "ser_code")]
        code: ErrorCode,
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
        reason: PeerCloseReason,
    },
    /// Someone who is not a friend tried to connect and was refused.
    PeerRefused {
        /// Their key's fingerprint.
        fingerprint: String,
        /// Where from.
        address: String,
        /// Why.
        reason: RefuseReason,
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
        /// Why, as the proto's reason; serialised as `cancelled`, `declined`,
        /// `hash_mismatch`, `io_error`, `invalid`, `unknown_transfer`, `too_many_offers`,
        /// `too_large` or `no_data` (UNSPECIFIED counts as `cancelled`).
        #[serde(serialize_with = "ser_cancel_reason")]
        reason: FileCancelReason,
        /// Which rule decided, for logs and scripts: "SPEC.md §8.5 row R52". Words for
        /// people come from `reason`.
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
            reason: Some(OfflineReason::Unreachable),
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

    fn json(e: &Event) -> serde_json::Value {
        serde_json::to_value(e).unwrap_or_default()
    }

    #[test]
    fn cancel_reasons_keep_the_cli_words() {
        let words = [
            (FileCancelReason::Unspecified, "cancelled"),
            (FileCancelReason::Cancelled, "cancelled"),
            (FileCancelReason::Declined, "declined"),
            (FileCancelReason::HashMismatch, "hash_mismatch"),
            (FileCancelReason::IoError, "io_error"),
            (FileCancelReason::Invalid, "invalid"),
            (FileCancelReason::UnknownTransfer, "unknown_transfer"),
            (FileCancelReason::TooManyOffers, "too_many_offers"),
            (FileCancelReason::TooLarge, "too_large"),
            (FileCancelReason::NoData, "no_data"),
        ];
        for (reason, word) in words {
            let v = json(&Event::TransferCancelled {
                friend: "bob".into(),
                transfer_id: TransferId([2; 16]),
                direction: Direction::Outgoing,
                reason,
                message: "m".into(),
            });
            assert_eq!(v["reason"], word, "{reason:?}");
            assert_eq!(v["event"], "transfer_cancelled");
        }
    }

    #[test]
    fn offline_reasons_serialise_as_kind_and_code() {
        let v = |r: OfflineReason| {
            json(&Event::ServerStatus {
                online: false,
                reason: Some(r),
            })["reason"]
                .clone()
        };
        assert_eq!(
            v(OfflineReason::Unreachable),
            serde_json::json!({"kind": "unreachable"})
        );
        assert_eq!(
            v(OfflineReason::Refused(ErrorCode::BadCredentials)),
            serde_json::json!({"kind": "refused", "code": "bad_credentials"})
        );
        assert_eq!(
            v(OfflineReason::ServerClosed(CloseReason::ServerShutdown)),
            serde_json::json!({"kind": "server_closed", "code": "server_shutdown"})
        );
        for (r, kind) in [
            (OfflineReason::Lost, "lost"),
            (OfflineReason::Silent, "silent"),
            (OfflineReason::ProtocolError, "protocol_error"),
            (OfflineReason::KeyChanged, "key_changed"),
            (OfflineReason::PinFile, "pin_file"),
            (OfflineReason::LoggedOut, "logged_out"),
            (OfflineReason::Replaced, "replaced"),
        ] {
            assert_eq!(v(r), serde_json::json!({ "kind": kind }));
        }
        let online = json(&Event::ServerStatus {
            online: true,
            reason: None,
        });
        assert!(online["reason"].is_null());
    }

    #[test]
    fn offline_reasons_read_for_people() {
        assert_eq!(OfflineReason::Unreachable.to_string(), "server unreachable");
        assert_eq!(
            OfflineReason::Refused(ErrorCode::BadCredentials).to_string(),
            "login refused (bad_credentials)"
        );
        assert_eq!(
            OfflineReason::ServerClosed(CloseReason::ServerShutdown).to_string(),
            "the server closed the connection (server_shutdown)"
        );
        assert_eq!(
            OfflineReason::Replaced.to_string(),
            "session replaced by another device"
        );
    }

    #[test]
    fn peer_close_reasons_name_the_cause() {
        // What this side sent decides the local cause.
        assert_eq!(
            PeerCloseReason::sent(CloseReason::IdleTimeout),
            PeerCloseReason::IdleTimeout
        );
        assert_eq!(
            PeerCloseReason::sent(CloseReason::DuplicateConnection),
            PeerCloseReason::Replaced
        );
        assert_eq!(
            PeerCloseReason::sent(CloseReason::Normal),
            PeerCloseReason::LoggedOut
        );
        assert_eq!(
            PeerCloseReason::sent(CloseReason::NotAFriend),
            PeerCloseReason::NotAFriend
        );
        assert_eq!(
            PeerCloseReason::sent(CloseReason::RateLimited),
            PeerCloseReason::Local(CloseReason::RateLimited)
        );
        let v = |r: PeerCloseReason| {
            json(&Event::PeerDisconnected {
                friend: "bob".into(),
                reason: r,
            })["reason"]
                .clone()
        };
        assert_eq!(
            v(PeerCloseReason::Friend(CloseReason::IdleTimeout)),
            serde_json::json!({"kind": "friend", "code": "idle_timeout"})
        );
        assert_eq!(
            v(PeerCloseReason::Local(CloseReason::SlowConsumer)),
            serde_json::json!({"kind": "local", "code": "slow_consumer"})
        );
        assert_eq!(
            v(PeerCloseReason::Lost),
            serde_json::json!({"kind": "lost"})
        );
        assert_eq!(
            v(PeerCloseReason::IoError),
            serde_json::json!({"kind": "io_error"})
        );
        assert_eq!(
            PeerCloseReason::Friend(CloseReason::NotAFriend).to_string(),
            "closed by the friend: not_a_friend"
        );
        assert_eq!(PeerCloseReason::IdleTimeout.to_string(), "idle time-out");
        assert_eq!(
            PeerCloseReason::Replaced.to_string(),
            "replaced by another connection"
        );
    }

    #[test]
    fn login_and_request_events_carry_their_codes() {
        let r = json(&Event::LoginRetry {
            reason: LoginRetryReason::Locked,
            code: Some(ErrorCode::RateLimited),
            retry_in_ms: 5,
            attempt: 1,
        });
        assert_eq!(
            (r["reason"].clone(), r["code"].clone()),
            ("locked".into(), "rate_limited".into())
        );
        let u = json(&Event::LoginRetry {
            reason: LoginRetryReason::Unreachable,
            code: None,
            retry_in_ms: 5,
            attempt: 1,
        });
        assert!(u.get("code").is_none(), "{u}");
        let f = json(&Event::LoginRefused {
            code: ErrorCode::BadCredentials,
        });
        assert_eq!(f["event"], "login_refused");
        assert_eq!(f["code"], "bad_credentials");
        let a = json(&Event::FriendRequestAnswered {
            userid: "bob".into(),
            answer: RequestAnswer::Refused,
        });
        assert_eq!(
            (a["event"].clone(), a["answer"].clone()),
            ("friend_request_answered".into(), "refused".into())
        );
        let s = json(&Event::FriendRequestSent {
            userid: "bob".into(),
        });
        assert_eq!(s["event"], "friend_request_sent");
        let p = json(&Event::PeerRefused {
            fingerprint: "SHA256:x".into(),
            address: "127.0.0.1:1".into(),
            reason: RefuseReason::UnknownKey,
        });
        assert_eq!(p["reason"], "unknown_key");
        assert_eq!(
            RefuseReason::UnknownKey.to_string(),
            "not the key of any friend"
        );
    }
}
