//! The line protocol of `peerchat-cli chat`, the CLI's output records, short transfer
//! handles and human times, without I/O, so all are unit-tested.

pub mod control;

use std::collections::HashMap;
use std::str::FromStr;

use serde::Serialize;

use crate::bounded_set::BoundedSet;
use crate::events::Event;
use crate::ids::{MessageId, TransferId};

/// One command typed in interactive mode (the variant docs give the syntax).
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineCommand {
    /// `/msg FRIEND TEXT...`
    Msg { friend: String, text: String },
    /// `/chat FRIEND`: plain lines go to FRIEND from now on; `/chat` alone stops that.
    Chat(Option<String>),
    /// A line without a leading `/` (`//text` sends `/text`): a message to the open chat.
    Say(String),
    /// `/send FRIEND PATH`
    Send { friend: String, path: String },
    /// `/add USER`
    Add(String),
    /// `/accept USER` (a friend request)
    Accept(String),
    /// `/refuse USER`
    Refuse(String),
    /// `/unfriend USER`
    Unfriend(String),
    /// `/find USER`
    Find(String),
    /// `/friends`
    Friends,
    /// `/history FRIEND [N]`
    History { friend: String, limit: u64 },
    /// `/typing FRIEND [on|off]`
    Typing { friend: String, active: bool },
    /// `/accept-file #N` (or the 32-hex id)
    AcceptFile(TransferRef),
    /// `/decline-file #N`
    DeclineFile(TransferRef),
    /// `/cancel #N`
    Cancel(TransferRef),
    /// `/trust-key FRIEND FINGERPRINT` (accept a friend's new identity key, SPEC.md §12.4)
    TrustKey { friend: String, fingerprint: String },
    /// `/help`
    Help,
    /// `/quit`
    Quit,
}

/// The help text of interactive mode.
pub const HELP: &str =
    "commands: /chat FRIEND (then plain lines go to FRIEND; /chat alone stops) | \
/msg FRIEND TEXT | /send FRIEND PATH | /add USER | /accept USER | /refuse USER | /unfriend USER | \
/find USER | /friends | /history FRIEND [N] | /typing FRIEND [on|off] | /accept-file #N | \
/decline-file #N | /cancel #N | /trust-key FRIEND FINGERPRINT | /help | /quit (or Ctrl-D)";

/// A transfer as typed: a short handle (`#3`, or `3`) that this session printed, or the
/// full 32-hex-digit id (which scripts and `--json` output use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferRef {
    /// `#N`
    Handle(u32),
    /// The transfer id.
    Id(TransferId),
}

impl FromStr for TransferRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.strip_prefix('#').unwrap_or(s);
        // A handle is short; an id is 32 hex digits (which may all be decimal digits).
        if !digits.is_empty() && digits.len() <= 9 && digits.bytes().all(|b| b.is_ascii_digit()) {
            return digits
                .parse()
                .map(TransferRef::Handle)
                .map_err(|_| format!("bad transfer handle {s}"));
        }
        s.parse()
            .map(TransferRef::Id)
            .map_err(|e: crate::ids::BadId| {
                format!("{e}: name a transfer by its handle, as in #3, or by its 32-hex-digit id")
            })
    }
}

/// Short handles (`#1`, `#2`...) for the transfers this process has shown, so that nobody
/// types a 32-hex-digit id to accept a file. Numbered in order of first sight; never reused
/// within a process. Also the last messages shown as delivered (`delivered`).
#[derive(Debug)]
pub struct Handles {
    by_id: HashMap<TransferId, u32>,
    ids: Vec<TransferId>,
    /// The messages whose "delivered" line was printed last. The line that answers a send
    /// is printed once the send returns, and the friend's acknowledgement can be printed
    /// before it (on loopback it arrives within the same fraction of a millisecond): that
    /// answer is then left out instead of saying "sent" after "delivered". The race lasts
    /// one round trip, so a few ids are enough.
    delivered: BoundedSet<MessageId>,
}

/// How many delivered message ids [`Handles`] remembers.
const DELIVERED_REMEMBERED: usize = 64;

impl Default for Handles {
    fn default() -> Self {
        Self {
            by_id: HashMap::new(),
            ids: Vec::new(),
            delivered: BoundedSet::new(DELIVERED_REMEMBERED),
        }
    }
}

impl Handles {
    /// The handle of `id`, given one now if it has none.
    pub fn handle(&mut self, id: TransferId) -> u32 {
        if let Some(h) = self.by_id.get(&id) {
            return *h;
        }
        self.ids.push(id);
        let h = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        self.by_id.insert(id, h);
        h
    }

    /// `#N` for `id`.
    pub fn label(&mut self, id: TransferId) -> String {
        format!("#{}", self.handle(id))
    }

    /// The transfer a typed reference names.
    ///
    /// # Errors
    /// A handle this process never printed.
    pub fn resolve(&self, r: TransferRef) -> Result<TransferId, String> {
        match r {
            TransferRef::Id(id) => Ok(id),
            TransferRef::Handle(h) => h
                .checked_sub(1)
                .and_then(|i| self.ids.get(usize::try_from(i).ok()?))
                .copied()
                .ok_or_else(|| format!("no transfer #{h} in this session")),
        }
    }
}

/// A time as a person reads it in zone `tz`: `14:03` today, `2026-11-30 14:03` on another
/// day (`now_ms` says which day is today). The raw number if it is not a valid time.
pub fn human_time<Tz: chrono::TimeZone>(unix_ms: u64, now_ms: u64, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let at = |ms: u64| {
        i64::try_from(ms)
            .ok()
            .and_then(|ms| tz.timestamp_millis_opt(ms).single())
    };
    match (at(unix_ms), at(now_ms)) {
        (Some(t), Some(now)) if t.date_naive() == now.date_naive() => t.format("%H:%M").to_string(),
        (Some(t), _) => t.format("%Y-%m-%d %H:%M").to_string(),
        _ => unix_ms.to_string(),
    }
}

/// Parses one input line. Empty lines are `Ok(None)`.
///
/// # Errors
/// A message saying what is wrong with the line.
pub fn parse_line(line: &str) -> Result<Option<LineCommand>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Ok(Some(LineCommand::Say(line.to_owned())));
    };
    // `//text` sends a line that starts with a slash.
    if rest.starts_with('/') {
        return Ok(Some(LineCommand::Say(rest.to_owned())));
    }
    let (cmd, args) = rest
        .split_once(char::is_whitespace)
        .map_or((rest, ""), |(c, a)| (c, a.trim()));
    let one = |what: &str| -> Result<String, String> {
        let mut it = args.split_whitespace();
        match (it.next(), it.next()) {
            (Some(a), None) => Ok(a.to_owned()),
            _ => Err(format!("usage: /{cmd} {what}")),
        }
    };
    let two = |usage: &str| -> Result<(String, String), String> {
        match args.split_once(char::is_whitespace) {
            Some((a, b)) if !b.trim().is_empty() => Ok((a.to_owned(), b.trim().to_owned())),
            _ => Err(format!("usage: /{cmd} {usage}")),
        }
    };
    let id = || -> Result<TransferRef, String> { one("#N")?.parse() };
    let c = match cmd {
        "msg" => {
            let (friend, text) = two("FRIEND TEXT")?;
            LineCommand::Msg { friend, text }
        }
        "chat" => {
            let mut it = args.split_whitespace();
            match (it.next(), it.next()) {
                (friend, None) => LineCommand::Chat(friend.map(str::to_owned)),
                _ => return Err("usage: /chat FRIEND (or /chat alone to stop)".into()),
            }
        }
        "send" => {
            let (friend, path) = two("FRIEND PATH")?;
            LineCommand::Send { friend, path }
        }
        "add" => LineCommand::Add(one("USER")?),
        "accept" => LineCommand::Accept(one("USER")?),
        "refuse" => LineCommand::Refuse(one("USER")?),
        "unfriend" => LineCommand::Unfriend(one("USER")?),
        "find" => LineCommand::Find(one("USER")?),
        "friends" => LineCommand::Friends,
        "history" => {
            let mut it = args.split_whitespace();
            let friend = it.next().ok_or("usage: /history FRIEND [N]")?.to_owned();
            let limit = match it.next() {
                Some(n) => n
                    .parse()
                    .map_err(|_| "usage: /history FRIEND [N]".to_owned())?,
                None => 50,
            };
            LineCommand::History { friend, limit }
        }
        "typing" => {
            let mut it = args.split_whitespace();
            let friend = it
                .next()
                .ok_or("usage: /typing FRIEND [on|off]")?
                .to_owned();
            let active = !matches!(it.next(), Some("off"));
            LineCommand::Typing { friend, active }
        }
        "accept-file" => LineCommand::AcceptFile(id()?),
        "decline-file" => LineCommand::DeclineFile(id()?),
        "cancel" => LineCommand::Cancel(id()?),
        "trust-key" => {
            let mut it = args.split_whitespace();
            match (it.next(), it.next(), it.next()) {
                (Some(friend), Some(fingerprint), None) => LineCommand::TrustKey {
                    friend: friend.to_owned(),
                    fingerprint: fingerprint.to_owned(),
                },
                _ => return Err("usage: /trust-key FRIEND FINGERPRINT".into()),
            }
        }
        "help" => LineCommand::Help,
        "quit" | "exit" => LineCommand::Quit,
        other => return Err(format!("unknown command /{other} (try /help)")),
    };
    Ok(Some(c))
}

/// Results of CLI commands, printed like events (`{"event": ...}` with `--json`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CliRecord {
    /// `register` succeeded.
    Registered {
        /// The userid.
        userid: String,
        /// Show once; needed to reset the password.
        recovery_code: String,
    },
    /// `find` answer.
    FindResult {
        /// What was asked.
        query: String,
        /// Exists.
        found: bool,
        /// Registered spelling.
        userid: Option<String>,
    },
    /// `add` succeeded.
    FriendRequestSent {
        /// To whom.
        userid: String,
        /// They had asked us too: friends now.
        now_friends: bool,
    },
    /// A command without other output succeeded.
    Ok {
        /// Which.
        command: String,
        /// About whom or what.
        target: String,
    },
    /// `friends` answer.
    Friends(crate::driver::FriendsSnapshot),
    /// `history` answer.
    History {
        /// With whom.
        friend: String,
        /// Oldest first.
        messages: Vec<crate::history::HistoryEntry>,
    },
    /// A message was stored and queued (and `delivered` if the friend acknowledged it).
    MessageSent {
        /// To whom.
        friend: String,
        /// Its id.
        message_id: crate::ids::MessageId,
        /// Acknowledged.
        delivered: bool,
        /// Where the message stands, for honest wording.
        status: DeliveryStatus,
    },
    /// `/chat`: where plain lines go now.
    ChatTarget {
        /// The friend, or None: plain lines are not sent.
        friend: Option<String>,
    },
    /// `forgot-password` succeeded.
    PasswordReset {
        /// The userid.
        userid: String,
        /// The new recovery code (the old one no longer works).
        recovery_code: String,
    },
    /// `change-password` succeeded.
    PasswordChanged {
        /// The userid.
        userid: String,
    },
    /// A file was offered.
    FileQueued {
        /// To whom.
        friend: String,
        /// The transfer.
        transfer_id: TransferId,
        /// The file.
        path: String,
    },
    /// A command failed.
    CommandFailed {
        /// What failed.
        message: String,
    },
}

/// Where a message stands when the CLI reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// The friend acknowledged it.
    Delivered,
    /// Written to a link that is up; "delivered" follows with the acknowledgement.
    Sent,
    /// The friend is online; a link is being made.
    Connecting,
    /// No way to the friend now: it goes out when they are reachable.
    Queued,
}

/// The human lines for a record: (is an error, text). `stamp` turns Unix milliseconds
/// into a readable time.
pub fn render(
    r: &CliRecord,
    h: &mut Handles,
    stamp: &dyn Fn(u64) -> String,
) -> Vec<(bool, String)> {
    let line = |s: String| vec![(false, s)];
    match r {
        CliRecord::Registered {
            userid,
            recovery_code,
        } => line(format!(
            "registered {userid}. Recovery code (write it down, it is shown only once): {recovery_code}"
        )),
        CliRecord::PasswordReset {
            userid,
            recovery_code,
        } => line(format!(
            "password of {userid} reset. New recovery code (the old one no longer works; write \
             it down, it is shown only once): {recovery_code}"
        )),
        CliRecord::PasswordChanged { userid } => line(format!(
            "password of {userid} changed: log in with the new one from now on (your recovery \
             code and this device's key are unchanged)"
        )),
        CliRecord::FindResult {
            query,
            found: true,
            userid,
        } => line(format!("{} exists", userid.as_deref().unwrap_or(query))),
        CliRecord::FindResult { query, .. } => line(format!("{query}: no such user")),
        CliRecord::FriendRequestSent {
            userid,
            now_friends: true,
        } => line(format!("{userid} had asked you too: you are friends now")),
        CliRecord::FriendRequestSent { userid, .. } => {
            line(format!("friend request sent to {userid}"))
        }
        CliRecord::Ok { command, target } => line(format!("{command} {target}: ok")),
        CliRecord::ChatTarget { friend: Some(f) } => line(format!(
            "chatting with {f}: plain lines go to {f} (/chat alone stops, /msg still works)"
        )),
        CliRecord::ChatTarget { friend: None } => {
            line("no chat open: plain lines are not sent".into())
        }
        CliRecord::Friends(s) => {
            let mut out = Vec::new();
            for f in &s.friends {
                let link = f.path.map(|p| format!(" ({p})")).unwrap_or_default();
                out.push((
                    false,
                    format!(
                        "{} {}{link} {}",
                        if f.online { "online " } else { "offline" },
                        f.userid,
                        f.fingerprint
                    ),
                ));
                if let Some(p) = &f.presented_fingerprint {
                    out.push((
                        false,
                        format!(
                            "        KEY CHANGED: presents {p}; messages held until /trust-key {} {p}",
                            f.userid
                        ),
                    ));
                }
            }
            for r in &s.incoming_requests {
                out.push((false, format!("request from {}", r.userid)));
            }
            for r in &s.outgoing_requests {
                out.push((false, format!("request to {}", r.userid)));
            }
            if out.is_empty() {
                out.push((false, "no friends yet: /add USER".into()));
            }
            out
        }
        CliRecord::History { messages, friend } => messages
            .iter()
            .map(|m| {
                let who = if m.direction == "in" {
                    friend.as_str()
                } else {
                    "me"
                };
                let mark = if m.direction == "out" && !m.acked {
                    " (not delivered yet)"
                } else {
                    ""
                };
                (
                    false,
                    format!("[{}] <{who}> {}{mark}", stamp(m.sent_at_unix_ms), m.text),
                )
            })
            .collect(),
        CliRecord::MessageSent {
            status,
            message_id,
            ..
        } if *status != DeliveryStatus::Delivered && h.delivered.contains(message_id) => {
            Vec::new()
        }
        CliRecord::MessageSent { friend, status, .. } => line(match status {
            DeliveryStatus::Delivered => format!("delivered to {friend}"),
            DeliveryStatus::Sent => format!("sent to {friend}"),
            DeliveryStatus::Connecting => format!("sending to {friend} (connecting)"),
            DeliveryStatus::Queued => format!("queued until {friend} is reachable"),
        }),
        CliRecord::FileQueued {
            friend,
            path,
            transfer_id,
        } => line(format!(
            "offering {path} to {friend} ({}; /cancel {} stops it)",
            h.label(*transfer_id),
            h.label(*transfer_id)
        )),
        CliRecord::CommandFailed { message } => vec![(true, format!("error: {message}"))],
    }
}

/// A one-line human description of an event. Transfers are named by their short handle
/// (`#3`); `stamp` turns Unix milliseconds into a readable time.
pub fn describe(e: &Event, h: &mut Handles, stamp: &dyn Fn(u64) -> String) -> String {
    match e {
        Event::ServerStatus { online: true, .. } => "* server: online".into(),
        Event::ServerStatus {
            online: false,
            reason,
        } => match reason {
            Some(r) => format!("* server: offline ({r})"),
            None => "* server: offline".into(),
        },
        Event::LoggedIn {
            userid,
            friends,
            incoming_requests,
            ..
        } => {
            let online = friends.iter().filter(|f| f.online).count();
            format!(
                "* logged in as {userid}: {} friends ({online} online), {} pending requests",
                friends.len(),
                incoming_requests.len()
            )
        }
        Event::LoggedOut => "* logged out".into(),
        Event::FriendRequestReceived { from } => {
            format!("* {from} asks to be your friend (/accept {from} or /refuse {from})")
        }
        Event::FriendAdded { friend } => format!(
            "* {} is now your friend ({})",
            friend.userid, friend.fingerprint
        ),
        Event::FriendRequestSent { userid } => {
            format!("* friend request to {userid} sent; waiting for their answer")
        }
        Event::FriendRequestAccepted { userid } => {
            format!("* {userid} accepted your friend request")
        }
        Event::FriendRequestAnswered {
            userid,
            answer: crate::events::RequestAnswer::Accepted,
        } => format!("* you accepted {userid}'s friend request"),
        Event::FriendRequestAnswered {
            userid,
            answer: crate::events::RequestAnswer::Refused,
        } => format!("* you refused {userid}'s friend request"),
        Event::FriendRequestRefused { userid } => format!("* {userid} refused your friend request"),
        Event::FriendRequestExpired { userid } => {
            format!("* your friend request to {userid} expired")
        }
        Event::FriendRemoved { userid } => format!("* {userid} is no longer your friend"),
        Event::Presence { friend, online, .. } => format!(
            "* {friend} is {}",
            if *online { "online" } else { "offline" }
        ),
        Event::FriendKeyChanged {
            friend,
            pinned,
            presented,
        } => format!(
            "! {friend}'s identity key CHANGED: trusted {pinned}, server now presents {presented}. \
             Messages and files to {friend} are held. A new device, or someone who stole their \
             password: check the new fingerprint with {friend} in person or by phone, then \
             /trust-key {friend} {presented}"
        ),
        Event::FriendKeyTrusted {
            friend,
            fingerprint,
            how: crate::events::KeyDecision::Accepted,
        } => format!("* {friend}'s new key {fingerprint} is trusted; held messages go out"),
        Event::FriendKeyTrusted {
            friend,
            fingerprint,
            how: crate::events::KeyDecision::Reverted,
        } => format!("* {friend}'s key is the trusted {fingerprint} again; held messages go out"),
        Event::LoginRetry {
            reason,
            retry_in_ms,
            attempt,
            ..
        } => {
            let why = match reason {
                crate::events::LoginRetryReason::Locked => {
                    "login locked after failed attempts (rate limited)"
                }
                crate::events::LoginRetryReason::Unreachable => "server unreachable",
                crate::events::LoginRetryReason::ServerError => "server error",
            };
            format!(
                "! {why}; retrying in {} s (attempt {attempt})",
                retry_in_ms.div_ceil(1000)
            )
        }
        Event::LoginRefused { code } => format!(
            "! automatic login refused ({}): log in with your password",
            crate::events::code_word(*code)
        ),
        Event::PeerConnected {
            friend,
            path,
            attempt,
        } => match attempt {
            Some(n) => format!("* connected to {friend} ({path}, attempt {n})"),
            None => format!("* connected to {friend} ({path})"),
        },
        Event::PeerDisconnected { friend, reason } => {
            format!("* connection to {friend} closed ({reason})")
        }
        Event::SessionReplaced => {
            "! this account logged in on another device; this session was closed".into()
        }
        Event::ServerKeyChanged {
            server,
            pinned,
            presented,
        } => {
            format!("! the server key of {server} changed: pinned {pinned}, presented {presented}")
        }
        Event::PeerRefused {
            fingerprint,
            address,
            reason,
        } => format!("! refused {address} ({fingerprint}): {reason}"),
        Event::MessageReceived {
            friend,
            text,
            sent_at_unix_ms,
            ..
        } => format!("[{}] <{friend}> {text}", stamp(*sent_at_unix_ms)),
        Event::MessageAcked { friend, message_id } => {
            h.delivered.insert(*message_id);
            format!("* delivered to {friend}")
        }
        Event::Typing {
            friend,
            active: true,
        } => format!("* {friend} is typing..."),
        Event::Typing {
            friend,
            active: false,
        } => format!("* {friend} stopped typing"),
        Event::FileOffered {
            friend,
            transfer_id,
            name,
            size,
        } => {
            let t = h.label(*transfer_id);
            format!(
                "* {friend} offers {name} ({size} bytes): /accept-file {t} or /decline-file {t}"
            )
        }
        Event::TransferStarted {
            friend,
            name,
            size,
            offset,
            direction,
            transfer_id,
        } => {
            let dir = if *direction == crate::transfer::Direction::Outgoing {
                "to"
            } else {
                "from"
            };
            let t = h.label(*transfer_id);
            format!("* {t} {name} {dir} {friend} started at {offset}/{size} bytes")
        }
        Event::TransferProgress {
            friend,
            bytes,
            size,
            rate_bytes_per_sec,
            transfer_id,
            ..
        } => {
            format!(
                "* {} {friend}: {bytes}/{size} bytes ({:.1} MB/s)",
                h.label(*transfer_id),
                *rate_bytes_per_sec as f64 / 1e6
            )
        }
        Event::TransferComplete {
            friend,
            path,
            size,
            transfer_id,
            ..
        } => format!(
            "* {} with {friend} complete: {path} ({size} bytes)",
            h.label(*transfer_id)
        ),
        Event::TransferCancelled {
            friend,
            reason,
            message,
            transfer_id,
            ..
        } => format!(
            "! {} with {friend} stopped: {} {message}",
            h.label(*transfer_id),
            crate::transfer::reason_name(*reason)
        ),
        Event::TransferSuspended {
            friend,
            bytes,
            transfer_id,
            ..
        } => format!(
            "* {} with {friend} suspended at {bytes} bytes; it resumes when you are both online",
            h.label(*transfer_id)
        ),
        Event::Error { message } => format!("! {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_interactive_commands() {
        assert_eq!(
            parse_line("/msg alice hi there"),
            Ok(Some(LineCommand::Msg {
                friend: "alice".into(),
                text: "hi there".into()
            }))
        );
        assert_eq!(
            parse_line("  /send alice ./x.iso "),
            Ok(Some(LineCommand::Send {
                friend: "alice".into(),
                path: "./x.iso".into()
            }))
        );
        assert_eq!(
            parse_line("/accept bob"),
            Ok(Some(LineCommand::Accept("bob".into())))
        );
        assert_eq!(
            parse_line("/add bob"),
            Ok(Some(LineCommand::Add("bob".into())))
        );
        assert_eq!(
            parse_line("/refuse bob"),
            Ok(Some(LineCommand::Refuse("bob".into())))
        );
        assert_eq!(
            parse_line("/unfriend bob"),
            Ok(Some(LineCommand::Unfriend("bob".into())))
        );
        assert_eq!(
            parse_line("/find bob"),
            Ok(Some(LineCommand::Find("bob".into())))
        );
        assert_eq!(parse_line("/friends"), Ok(Some(LineCommand::Friends)));
        assert_eq!(
            parse_line("/history alice"),
            Ok(Some(LineCommand::History {
                friend: "alice".into(),
                limit: 50
            }))
        );
        assert_eq!(
            parse_line("/history alice 5"),
            Ok(Some(LineCommand::History {
                friend: "alice".into(),
                limit: 5
            }))
        );
        assert_eq!(
            parse_line("/typing alice off"),
            Ok(Some(LineCommand::Typing {
                friend: "alice".into(),
                active: false
            }))
        );
        assert_eq!(parse_line("/quit"), Ok(Some(LineCommand::Quit)));
        assert_eq!(
            parse_line("/trust-key bob SHA256:abc"),
            Ok(Some(LineCommand::TrustKey {
                friend: "bob".into(),
                fingerprint: "SHA256:abc".into()
            }))
        );
        assert!(parse_line("/trust-key bob").is_err());
        assert_eq!(parse_line(""), Ok(None));
        let id = TransferId([0xab; 16]);
        assert_eq!(
            parse_line(&format!("/accept-file {id}")),
            Ok(Some(LineCommand::AcceptFile(TransferRef::Id(id))))
        );
        assert_eq!(
            parse_line("/accept-file #3"),
            Ok(Some(LineCommand::AcceptFile(TransferRef::Handle(3))))
        );
        assert_eq!(
            parse_line("/cancel 12"),
            Ok(Some(LineCommand::Cancel(TransferRef::Handle(12))))
        );
        assert_eq!(
            parse_line("/chat bob"),
            Ok(Some(LineCommand::Chat(Some("bob".into()))))
        );
        assert_eq!(parse_line("/chat"), Ok(Some(LineCommand::Chat(None))));
        assert_eq!(
            parse_line("hello there "),
            Ok(Some(LineCommand::Say("hello there".into())))
        );
        assert_eq!(
            parse_line("//shrug"),
            Ok(Some(LineCommand::Say("/shrug".into())))
        );
    }

    #[test]
    fn rejects_bad_lines_with_a_reason() {
        assert!(parse_line("/chat bob carol").is_err());
        assert!(parse_line("/accept-file #").is_err());
        assert!(parse_line("/msg alice").is_err());
        assert!(parse_line("/accept").is_err());
        assert!(parse_line("/accept a b").is_err());
        assert!(parse_line("/frobnicate").is_err());
        assert!(parse_line("/accept-file nothex").is_err());
    }

    #[test]
    fn records_are_tagged_like_events() {
        let v = serde_json::to_value(CliRecord::FindResult {
            query: "x".into(),
            found: false,
            userid: None,
        })
        .unwrap_or_default();
        assert_eq!(v["event"], "find_result");
    }

    #[test]
    fn a_key_change_names_both_fingerprints_and_the_command() {
        let e = Event::FriendKeyChanged {
            friend: "bob".into(),
            pinned: "SHA256:old".into(),
            presented: "SHA256:new".into(),
        };
        let line = describe(&e, &mut Handles::default(), &|ms| ms.to_string());
        assert!(line.contains("SHA256:old") && line.contains("/trust-key bob SHA256:new"));
        let v = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(v["event"], "friend_key_changed");
        assert_eq!(v["friend"], "bob");
        assert_eq!(v["pinned"], "SHA256:old");
        assert_eq!(v["presented"], "SHA256:new");
    }

    #[test]
    fn transfers_get_short_handles_that_resolve_back() {
        let mut h = Handles::default();
        let a = TransferId([1; 16]);
        let b = TransferId([2; 16]);
        assert_eq!(h.label(a), "#1");
        assert_eq!(h.label(b), "#2");
        assert_eq!(h.label(a), "#1", "stable");
        assert_eq!(h.resolve(TransferRef::Handle(2)), Ok(b));
        assert_eq!(h.resolve(TransferRef::Id(a)), Ok(a));
        assert!(h.resolve(TransferRef::Handle(3)).is_err());
        assert!(h.resolve(TransferRef::Handle(0)).is_err());
        let offer = Event::FileOffered {
            friend: "bob".into(),
            transfer_id: TransferId([7; 16]),
            name: "x.iso".into(),
            size: 10,
        };
        let line = describe(&offer, &mut h, &|ms| ms.to_string());
        assert!(
            line.contains("/accept-file #3") && !line.contains("0707"),
            "{line}"
        );
    }

    #[test]
    fn times_read_like_a_clock() {
        let utc = chrono::FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!());
        let plus2 = chrono::FixedOffset::east_opt(7200).unwrap_or_else(|| unreachable!());
        // 2026-12-01 10:30:00 UTC.
        let t = 1_796_121_000_000;
        assert_eq!(human_time(t, t + 60_000, &utc), "10:30");
        assert_eq!(human_time(t, t + 60_000, &plus2), "12:30");
        assert_eq!(human_time(t, t + 86_400_000, &utc), "2026-12-01 10:30");
        assert_eq!(human_time(u64::MAX, t, &utc), u64::MAX.to_string());
        let e = Event::MessageReceived {
            friend: "bob".into(),
            message_id: crate::ids::MessageId([1; 16]),
            text: "hi".into(),
            sent_at_unix_ms: t,
        };
        let line = describe(&e, &mut Handles::default(), &|ms| human_time(ms, t, &utc));
        assert_eq!(line, "[10:30] <bob> hi");
    }

    #[test]
    fn delivery_wording_is_honest() {
        let sent = |status| {
            let r = CliRecord::MessageSent {
                friend: "bob".into(),
                message_id: crate::ids::MessageId([1; 16]),
                delivered: status == DeliveryStatus::Delivered,
                status,
            };
            render(&r, &mut Handles::default(), &|ms| ms.to_string())
                .into_iter()
                .map(|(_, l)| l)
                .collect::<String>()
        };
        assert_eq!(sent(DeliveryStatus::Sent), "sent to bob");
        assert_eq!(sent(DeliveryStatus::Delivered), "delivered to bob");
        assert_eq!(
            sent(DeliveryStatus::Connecting),
            "sending to bob (connecting)"
        );
        assert_eq!(
            sent(DeliveryStatus::Queued),
            "queued until bob is reachable"
        );
        let acked = Event::MessageAcked {
            friend: "bob".into(),
            message_id: crate::ids::MessageId([1; 16]),
        };
        assert_eq!(
            describe(&acked, &mut Handles::default(), &|ms| ms.to_string()),
            "* delivered to bob"
        );
    }

    #[test]
    fn a_sent_line_that_loses_the_race_to_its_delivered_line_is_left_out() {
        let mut h = Handles::default();
        let record = |id: u8, status| CliRecord::MessageSent {
            friend: "bob".into(),
            message_id: MessageId([id; 16]),
            delivered: false,
            status,
        };
        let acked = |id: u8| Event::MessageAcked {
            friend: "bob".into(),
            message_id: MessageId([id; 16]),
        };
        let no_stamp = |ms: u64| ms.to_string();
        assert_eq!(describe(&acked(1), &mut h, &no_stamp), "* delivered to bob");
        for status in [DeliveryStatus::Sent, DeliveryStatus::Connecting] {
            assert!(render(&record(1, status), &mut h, &no_stamp).is_empty());
        }
        // Another message, not yet acknowledged, still gets its line.
        assert_eq!(
            render(&record(2, DeliveryStatus::Sent), &mut h, &no_stamp).len(),
            1
        );
        // Remembering is bounded: the oldest ids are forgotten.
        for id in 3..=(3 + DELIVERED_REMEMBERED as u8) {
            describe(&acked(id), &mut h, &no_stamp);
        }
        assert_eq!(
            render(&record(1, DeliveryStatus::Sent), &mut h, &no_stamp).len(),
            1
        );
    }
}
