//! Every limit and time-out of the protocol, by the name SPEC.md §10 gives it.
//!
//! Implementations enforce these on input; the values are part of the protocol, not tuning
//! knobs, unless SPEC.md says a server may configure them.

use std::time::Duration;

/// The protocol version this crate speaks (SPEC.md §4.5).
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest record on the wire: the u16 length prefix caps it, and so does Noise (SPEC.md §3.1).
pub const MAX_RECORD: usize = 65_535;
/// Bytes Noise's ChaChaPoly adds to every transport message.
pub const NOISE_TAG_LEN: usize = 16;
/// Largest plaintext one transport record can carry.
pub const MAX_RECORD_PLAINTEXT: usize = MAX_RECORD - NOISE_TAG_LEN;
/// Largest application frame (one protobuf message) in bytes (SPEC.md §3.3).
pub const MAX_FRAME: usize = 1_048_576;
/// The whole Noise handshake must finish within this time of connect/accept (SPEC.md §4.2).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A side sends Ping after receiving nothing for this long (SPEC.md §3.6).
pub const IDLE_PING_AFTER: Duration = Duration::from_secs(30);
/// A side closes with IDLE_TIMEOUT after receiving nothing for this long (SPEC.md §3.6).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Largest human-readable `message` field (Close, Error, FileCancel).
pub const MAX_HUMAN_TEXT: usize = 1024;
/// Largest chat message text in bytes of UTF-8 (SPEC.md §8.1).
pub const MAX_CHAT_TEXT: usize = 16_384;
/// Largest offered file name in bytes of UTF-8 (SPEC.md §8.3).
pub const MAX_FILE_NAME: usize = 255;
/// Largest FileChunk payload (SPEC.md §8.3).
pub const MAX_FILE_CHUNK: usize = 262_144;
/// Length of message and transfer ids.
pub const ID_LEN: usize = 16;
/// Length of a SHA-256 digest.
pub const SHA256_LEN: usize = 32;
/// Length of a BLAKE3 digest as sent in FileDigest (SPEC.md §8.3.1).
pub const BLAKE3_LEN: usize = 32;
/// PeerHello feature names a receiver reads; the rest are ignored (SPEC.md §7.2 rule 9).
pub const MAX_HELLO_FEATURES: usize = 16;
/// Longest PeerHello feature name in bytes; longer names are ignored (SPEC.md §7.2 rule 9).
pub const MAX_FEATURE_NAME: usize = 32;
/// Userid length bounds in characters (SPEC.md §5.1.1).
pub const USERID_MIN_LEN: usize = 3;
/// See [`USERID_MIN_LEN`].
pub const USERID_MAX_LEN: usize = 32;
/// Longest e-mail local part in bytes (SPEC.md §5.1.2).
pub const EMAIL_LOCAL_MAX: usize = 64;
/// Characters of a recovery code without dashes: 100 bits of base32 (SPEC.md §5.1.4).
pub const RECOVERY_CODE_CHARS: usize = 20;
/// Pending incoming friend requests one account may have (SPEC.md §6.2).
pub const MAX_PENDING_INCOMING: usize = 1000;
/// After sending Close, how long a side drains input before closing the socket (SPEC.md §3.7).
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long a receiver remembers acknowledged message ids and finished transfer ids (SPEC.md §8.1).
pub const DEDUP_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Client back-off for reconnecting to the server and dialing friends (SPEC.md §6.10, §7.4).
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// See [`RECONNECT_BACKOFF_MIN`].
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Per-account authentication failures allowed within [`LOGIN_FAIL_ACCOUNT_WINDOW`] (SPEC.md §5.1.7).
pub const LOGIN_FAIL_ACCOUNT_MAX: u32 = 5;
/// See [`LOGIN_FAIL_ACCOUNT_MAX`].
pub const LOGIN_FAIL_ACCOUNT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// First per-account lock after the limit; doubles per further failure (SPEC.md §5.1.7).
pub const LOGIN_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest per-account lock.
pub const LOGIN_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);
/// Per-source-address authentication failures allowed within [`LOGIN_FAIL_IP_WINDOW`].
pub const LOGIN_FAIL_IP_MAX: u32 = 50;
/// See [`LOGIN_FAIL_IP_MAX`].
pub const LOGIN_FAIL_IP_WINDOW: Duration = Duration::from_secs(5 * 60);
/// FriendOffline is enqueued within this time of the server noticing a session ended (SPEC.md §6.6).
pub const OFFLINE_NOTIFY: Duration = Duration::from_secs(1);
/// How often each node of a cluster writes its heartbeat to the database (SPEC.md §6.11).
pub const NODE_HEARTBEAT: Duration = Duration::from_secs(1);
/// A cluster node whose heartbeat is older than this is dead; its users' friends get
/// FriendOffline within NODE_DEAD_AFTER + NODE_HEARTBEAT of its last beat (SPEC.md §6.11).
pub const NODE_DEAD_AFTER: Duration = Duration::from_secs(5);
/// Cluster (§6.11 rule 7): how long a node that receives a relay join waits for the bus to
/// announce a relay opened on another node, before answering `ERROR_CODE_RELAY_EXPIRED`.
pub const RELAY_REMOTE_LOOKUP: Duration = Duration::from_secs(2);
/// Longest PROXY protocol v2 header a server behind a load balancer accepts (`--proxy-protocol`,
/// SPEC.md §10); a v1 line is bounded by its own 107 bytes.
pub const PROXY_HEADER_MAX: usize = 512;
/// Longest sanitised file name before collision suffixes (SPEC.md §8.4).
pub const MAX_SAFE_NAME: usize = 200;
/// Longest e-mail address in bytes (SPEC.md §5.1).
pub const EMAIL_MAX: usize = 254;
/// Shortest password in Unicode scalar values (SPEC.md §5.1).
pub const PASSWORD_MIN_CHARS: usize = 10;
/// Longest password in bytes (SPEC.md §5.1).
pub const PASSWORD_MAX_BYTES: usize = 1024;
/// Friends one account may have (SPEC.md §10).
pub const MAX_FRIENDS: usize = 1000;
/// Pending outgoing friend requests one account may have (SPEC.md §10).
pub const MAX_PENDING_OUTGOING: usize = 100;
/// Default life of an unanswered friend request (SPEC.md §6.7).
pub const DEFAULT_REQUEST_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Per-connection request bucket: burst size (SPEC.md §10).
pub const REQUEST_BURST: u32 = 50;
/// Per-connection request bucket: tokens added per second (SPEC.md `REQUEST_RATE`).
pub const REQUEST_RATE: u32 = 20;
/// Consecutive rate-limited requests after which the server closes the connection.
pub const RATE_LIMIT_DISCONNECT_AFTER: u32 = 200;
/// Frames a server queues for one client before closing it with SLOW_CONSUMER.
pub const OUTBOUND_QUEUE: usize = 1024;
/// Per-source-address registration bucket: burst size (SPEC.md §5.2, §10). At least 60 per
/// minute must be allowed, so that test suites creating many accounts from one host work.
pub const REGISTER_BURST: u32 = 60;
/// Per-source-address registration bucket: tokens added per second (SPEC.md `REGISTER_RATE`,
/// 60 per minute).
pub const REGISTER_RATE: u32 = 1;
/// Default cap on simultaneous server connections from one source address (IPv6: one /64),
/// all states; over it, new connections are closed before the handshake (SPEC.md §4.2, §10).
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 64;
/// A server connection still not logged in this long after its handshake completed (or
/// after its LogoutOk) is closed with IDLE_TIMEOUT; Pings do not extend it (SPEC.md §4.6).
pub const LOGIN_DEADLINE: Duration = Duration::from_secs(30);
/// Default cap on simultaneous server connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
/// A typing sender repeats Typing{active} at most this often (SPEC.md §8.2).
pub const TYPING_INTERVAL: Duration = Duration::from_secs(3);
/// A receiver forgets a Typing{active} after this long (SPEC.md §8.2).
pub const TYPING_EXPIRY: Duration = Duration::from_secs(6);
/// Smallest and largest accepted RSA identity modulus in bits (SPEC.md §4.3).
pub const RSA_MIN_BITS: usize = 2048;
/// See [`RSA_MIN_BITS`].
pub const RSA_MAX_BITS: usize = 4096;
/// Verified identity bindings remembered per process identity (SPEC.md §4.3, §10;
/// `crate::verified`). Each entry holds a parsed key (its DER and modulus, ~1 KiB for a
/// 4096-bit key), so the memory stays under ~0.5 MiB.
pub const VERIFIED_BINDINGS_MAX: usize = 512;
/// Modulus size for newly generated identity keys.
pub const RSA_DEFAULT_BITS: usize = 3072;

/// A client's first delay before dialling a friend again after an attempt failed (SPEC.md
/// §7.4 rule 4); it doubles per failure.
pub const PEER_RETRY_MIN: Duration = Duration::from_secs(1);
/// The longest delay between attempts to reach a friend (SPEC.md §7.4 rule 4).
pub const PEER_RETRY_MAX: Duration = Duration::from_secs(60);

// ---- Peer resource budgets (SPEC.md §7.9) ----

/// Bytes of encoded frames a side may have queued, unwritten, for one peer connection
/// (besides the file chunks it streams itself); beyond it the connection is closed with
/// SLOW_CONSUMER (SPEC.md §7.9 rule 1).
pub const PEER_SEND_BUDGET: usize = 4 * 1024 * 1024;
/// Bytes of chat text a sender keeps unacknowledged on one peer connection; the rest of the
/// outbox follows as acknowledgements arrive (SPEC.md §7.9 rule 2).
pub const OUTBOX_WINDOW: usize = 1024 * 1024;
/// Ping bucket per peer connection: capacity (SPEC.md §7.9 rule 3).
pub const PEER_PING_BURST: u32 = 10;
/// Ping bucket per peer connection: tokens added per second (SPEC.md §7.9 rule 3).
pub const PEER_PING_RATE: u32 = 10;
/// Unfinished incoming transfers (offered or accepted) per friend; a new offer beyond it is
/// refused with TOO_MANY_OFFERS, and senders keep within it (SPEC.md §8.3 rule 3).
pub const MAX_OFFERS_IN_FLIGHT: usize = 32;
/// An accepted transfer with no chunk from the friend for this long is cancelled with
/// NO_DATA and its `.part` file removed (SPEC.md §8.3 rule 3a).
pub const OFFER_DATA_TIMEOUT: Duration = Duration::from_secs(60);

// ---- NAT traversal and relay (SPEC.md §7.5–§7.8) ----

/// Host candidates a client may announce in one PeerAnnouncement (SPEC.md §7.5).
pub const MAX_HOST_CANDIDATES: usize = 8;
/// How long a client's direct dial of one candidate may take before it counts as failed
/// (SPEC.md §7.6).
pub const DIRECT_DIAL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a requester of a connection reversal waits for the friend's connection before it
/// moves on to punching (SPEC.md §7.6).
pub const REVERSE_WAIT: Duration = Duration::from_secs(5);
/// Coordinated simultaneous-open attempts before a client falls back to the relay (SPEC.md §7.6).
pub const PUNCH_ATTEMPTS: u32 = 3;
/// How long each side keeps a punching connect() alive (the kernel retransmits the SYN
/// meanwhile) (SPEC.md §7.6).
pub const PUNCH_WINDOW: Duration = Duration::from_secs(5);
/// Largest `dial_in_ms` the server sets (SPEC.md §7.6).
pub const PUNCH_DELAY_MAX: Duration = Duration::from_millis(2000);
/// ConnectPeer bucket per (requester, friend) pair: capacity (SPEC.md §7.6).
pub const CONNECT_PEER_BURST: u32 = 6;
/// ConnectPeer bucket refill: one request per this interval (SPEC.md §7.6).
pub const CONNECT_PEER_INTERVAL: Duration = Duration::from_secs(10);
/// Length of ConnectPeer attempt ids and relay tokens.
pub const TRAVERSAL_ID_LEN: usize = 16;
/// How long an opened relay waits for the invited friend to join (SPEC.md §7.7).
pub const RELAY_JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Relay connections (open, waiting or joined) one account may hold at the server (SPEC.md §7.7).
pub const RELAY_LINKS_PER_USER: usize = 8;
/// Default bytes per second the server relays per link and per direction (server-configurable)
/// (SPEC.md §7.7).
pub const RELAY_LINK_RATE: u64 = 8 * 1024 * 1024;
/// Default bytes per second the server relays in total (server-configurable) (SPEC.md §7.7).
pub const RELAY_SERVER_RATE: u64 = 64 * 1024 * 1024;
/// A relayed link on which no byte moved in either direction for this long is closed
/// (SPEC.md §7.7). Longer than IDLE_TIMEOUT, so the peers' own pings keep a live link open.
pub const RELAY_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a client whose link with a friend is relayed tries again to punch a direct
/// one (SPEC.md §7.8).
pub const RELAY_UPGRADE_INTERVAL: Duration = Duration::from_secs(60);
