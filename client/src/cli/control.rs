//! The local control socket of a running `peerchat-cli chat` session, so that one-shot
//! commands (`history`, `send-message`, `friends`...) talk to it instead of starting a
//! second client on the same profile, which fought the session for the account and the
//! friends' links (issue #15).
//!
//! Why a socket and not "read local state without logging in": only `history` is local;
//! `send-message`, `friends` or `add` need the session's server login and peer links, and
//! a second client would replace them. The socket is a Unix socket in the profile folder,
//! mode 0600 (the profile folder holds the identity key, so whoever can use the socket
//! could use the key anyway). One request per connection, in JSON lines:
//! `{"json":false,"line":"/history bob 20"}` in, then `{"out":"..."}` / `{"err":"..."}`
//! lines and a final `{"exit":0}` back. The line is the interactive syntax ([`super::parse_line`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The socket's file name inside the profile folder.
pub const SOCKET_NAME: &str = "cli.sock";

/// Where a profile's session listens.
pub fn socket_path(profile: &Path) -> PathBuf {
    profile.join(SOCKET_NAME)
}

/// A one-shot command for the running session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlRequest {
    /// Answer with JSON records (`--json`) rather than human lines.
    pub json: bool,
    /// The command in the interactive syntax, e.g. `/msg bob hi`.
    pub line: String,
}

/// One line of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlReply {
    /// A line for standard output.
    Out(String),
    /// A line for standard error.
    Err(String),
    /// The command is done; the one-shot process exits with this code.
    Exit(u8),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_are_one_json_line_each() {
        let r = ControlRequest {
            json: false,
            line: "/msg bob two\nlines".into(),
        };
        let s = serde_json::to_string(&r).unwrap_or_default();
        assert!(!s.contains('\n'));
        assert_eq!(serde_json::from_str::<ControlRequest>(&s).ok(), Some(r));
        let s = serde_json::to_string(&ControlReply::Exit(2)).unwrap_or_default();
        assert_eq!(s, r#"{"exit":2}"#);
        assert_eq!(
            serde_json::from_str::<ControlReply>(r#"{"out":"x"}"#).ok(),
            Some(ControlReply::Out("x".into()))
        );
    }
}
