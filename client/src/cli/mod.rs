//! The line protocol of `peerchat-cli chat` and the CLI's output records, without I/O, so
//! both are unit-tested.

use serde::Serialize;

use crate::events::Event;
use crate::ids::TransferId;

/// One command typed in interactive mode (the variant docs give the syntax).
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineCommand {
    /// `/msg FRIEND TEXT...`
    Msg { friend: String, text: String },
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
    /// `/accept-file ID`
    AcceptFile(TransferId),
    /// `/decline-file ID`
    DeclineFile(TransferId),
    /// `/cancel ID`
    Cancel(TransferId),
    /// `/trust-key FRIEND FINGERPRINT` (accept a friend's new identity key, SPEC.md §12.4)
    TrustKey { friend: String, fingerprint: String },
    /// `/help`
    Help,
    /// `/quit`
    Quit,
}

/// The help text of interactive mode.
pub const HELP: &str = "commands: /msg FRIEND TEXT | /send FRIEND PATH | /add USER | /accept USER | /refuse USER | \
/unfriend USER | /find USER | /friends | /history FRIEND [N] | /typing FRIEND [on|off] | /accept-file ID | \
/decline-file ID | /cancel ID | /trust-key FRIEND FINGERPRINT | /help | /quit";

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
        return Err(format!("not a command (try /help): {line}"));
    };
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
    let id = || -> Result<TransferId, String> {
        one("ID")?
            .parse()
            .map_err(|e: crate::ids::BadId| e.to_string())
    };
    let c = match cmd {
        "msg" => {
            let (friend, text) = two("FRIEND TEXT")?;
            LineCommand::Msg { friend, text }
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
    Friends(crate::core::FriendsSnapshot),
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

/// A one-line human description of an event.
pub fn describe(e: &Event) -> String {
    match e {
        Event::ServerStatus { online: true, .. } => "* server: online".into(),
        Event::ServerStatus {
            online: false,
            reason,
        } => format!("* server: offline ({})", reason.as_deref().unwrap_or("?")),
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
        Event::MessageReceived { friend, text, .. } => format!("<{friend}> {text}"),
        Event::MessageAcked { friend, message_id } => {
            format!("* {friend} received message {message_id}")
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
            format!("* {friend} offers {name} ({size} bytes): /accept-file {transfer_id} or /decline-file {transfer_id}")
        }
        Event::TransferStarted {
            friend,
            name,
            size,
            offset,
            direction,
            ..
        } => {
            let dir = if *direction == crate::transfer::Direction::Outgoing {
                "to"
            } else {
                "from"
            };
            format!("* transfer of {name} {dir} {friend} started at {offset}/{size}")
        }
        Event::TransferProgress {
            friend,
            bytes,
            size,
            rate_bytes_per_sec,
            ..
        } => {
            format!(
                "* {friend}: {bytes}/{size} bytes ({:.1} MB/s)",
                *rate_bytes_per_sec as f64 / 1e6
            )
        }
        Event::TransferComplete {
            friend, path, size, ..
        } => format!("* transfer with {friend} complete: {path} ({size} bytes)"),
        Event::TransferCancelled {
            friend,
            reason,
            message,
            ..
        } => format!("! transfer with {friend} stopped: {reason} {message}"),
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
            Ok(Some(LineCommand::AcceptFile(id)))
        );
    }

    #[test]
    fn rejects_bad_lines_with_a_reason() {
        assert!(parse_line("hello").is_err());
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
        let line = describe(&e);
        assert!(line.contains("SHA256:old") && line.contains("/trust-key bob SHA256:new"));
        let v = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(v["event"], "friend_key_changed");
        assert_eq!(v["friend"], "bob");
        assert_eq!(v["pinned"], "SHA256:old");
        assert_eq!(v["presented"], "SHA256:new");
    }
}
