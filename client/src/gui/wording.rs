//! Turns the core's errors into sentences a person can act on.
//!
//! The core's `Display` texts are written for logs and scripts; the desktop app shows
//! something shorter first ("Wrong userid or password.") and keeps the technical detail as a
//! second line. Everything here is pure, so the wording is unit-tested.

use peerchat_client::events::{close_word, code_word};
use peerchat_client::friends::AcceptKeyError;
use peerchat_client::pinning::PinError;
use peerchat_client::{ClientError, OfflineReason, PeerCloseReason, Unavailable};
use peerchat_proto::wire::{CloseReason, ErrorCode, FileCancelReason};

use super::msg::Problem;

/// What the user was doing; it changes the wording of some answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doing {
    /// Logging in.
    Login,
    /// Creating an account.
    Register,
    /// Resetting a password.
    Reset,
    /// Anything else.
    Other,
}

fn problem(headline: impl Into<String>, detail: impl Into<String>) -> Problem {
    Problem {
        headline: headline.into(),
        detail: detail.into(),
    }
}

/// "in 3 seconds", "in 2 minutes".
fn wait_text(d: std::time::Duration) -> String {
    let s = d.as_secs_f64().ceil() as u64;
    match s {
        0 | 1 => "in a second".to_owned(),
        2..=119 => format!("in {s} seconds"),
        _ => format!("in {} minutes", s.div_ceil(60)),
    }
}

/// Words for an error of the core, given the server address (for "cannot reach ...").
pub fn explain(err: &ClientError, doing: Doing, server: &str) -> Problem {
    match err {
        ClientError::Server(e) => {
            let wait = e.retry_after.map(wait_text).unwrap_or_else(|| "later".to_owned());
            match e.code {
                ErrorCode::BadCredentials => problem("Wrong userid or password.", "Check both and try again. Forgot your password? Use \"Forgot password\"."),
                ErrorCode::RateLimited => problem(format!("Too many attempts. Please try again {wait}."), "This protects your account from password guessing."),
                ErrorCode::UseridTaken => problem("That userid is already taken.", "Please choose another one."),
                ErrorCode::EmailTaken => problem("An account with this e-mail address already exists.", "Use \"Forgot password\" if it is yours."),
                ErrorCode::InvalidUserid => problem("That userid is not allowed.", USERID_RULE),
                ErrorCode::InvalidEmail => problem("That e-mail address does not look right.", "Example: name@example.org"),
                ErrorCode::WeakPassword => problem("That password is too weak.", PASSWORD_RULE),
                ErrorCode::ResetRefused => {
                    problem("The userid, e-mail and recovery code do not match.", "Check all three; the recovery code is the one shown when the account was created (or last reset).")
                }
                ErrorCode::NotLoggedIn => problem("You are not logged in.", "Log in again."),
                ErrorCode::AlreadyLoggedIn => problem("You are already logged in.", ""),
                ErrorCode::UserNotFound => problem("There is no user with that userid.", ""),
                ErrorCode::SelfRequest => problem("That is you!", "You cannot send a friend request to yourself."),
                ErrorCode::AlreadyFriends => problem("You are already friends.", ""),
                ErrorCode::DuplicateRequest => problem("You already sent this user a request.", "It is waiting for their answer."),
                ErrorCode::RequestNotFound => problem("That friend request is no longer there.", "It may have expired or been withdrawn."),
                ErrorCode::NotFriends => problem("You are not friends with this user.", ""),
                ErrorCode::LimitExceeded => problem("A limit was reached.", "Too many friends or pending requests; remove some first."),
                ErrorCode::InvalidRequest | ErrorCode::UnsupportedRequest | ErrorCode::Unspecified => {
                    problem("The server did not understand the request.", format!("Server said: {}", e.message))
                }
                ErrorCode::Internal => problem(format!("The server had a problem. Please try again {wait}."), e.message.clone()),
                ErrorCode::PeerOffline => problem("Your friend is not online.", "Messages wait until you are both online."),
                ErrorCode::RelayExpired => problem("Your friend did not answer the relayed connection in time.", "The app tries again when there is something to deliver."),
            }
        }
        ClientError::ServerUnavailable(detail) => {
            let tail = match doing {
                Doing::Login | Doing::Register | Doing::Reset => "Check the server address, or try again later.",
                Doing::Other => "Direct chats with friends still work; the app keeps retrying.",
            };
            match unavailable_words(detail) {
                Some(why) => problem(format!("Cannot reach the server at {server} ({why})."), tail),
                None => problem(format!("Cannot reach the server at {server}."), tail),
            }
        }
        ClientError::Pin(PinError::Changed { pinned, presented, file, .. }) => problem(
            format!("The server's identity key has changed. Not connecting to {server}."),
            format!(
                "Either the server was reinstalled, or someone is intercepting the connection. Ask the server operator for the server's fingerprint; \
                 only if it is {presented}, remove the line for {server} from {file} and try again. (Expected {pinned}.)"
            ),
        ),
        ClientError::Pin(p @ PinError::File { .. }) => problem("Cannot read the list of known servers.", p.to_string()),
        ClientError::Pin(p @ PinError::Damaged { .. }) => problem(format!("The list of known servers is damaged. Not connecting to {server}."), p.to_string()),
        ClientError::NotLoggedIn => problem("You are not logged in.", "Log in first."),
        ClientError::NotAFriend(u) => problem(format!("{u} is not your friend."), "Send them a friend request first."),
        ClientError::KeyChange(AcceptKeyError::FingerprintChanged { friend, presented, .. }) => problem(
            format!("{friend}'s key changed again before you accepted it."),
            format!("The server now presents {presented}. Compare that one with {friend} before you accept it."),
        ),
        ClientError::KeyChange(e) => problem(e.to_string(), ""),
        ClientError::Invalid(m) => problem(m.clone(), ""),
        ClientError::Io { context, source } => problem(format!("Cannot use {context}."), source.to_string()),
        ClientError::Profile(e) => problem("Your profile folder cannot be used.", e.to_string()),
        ClientError::History(e) => problem("Your chat history cannot be read or written.", e.to_string()),
        ClientError::Listen { addr, source } => problem("Cannot accept direct connections from friends.", format!("Listening on {addr} failed: {source}")),
        ClientError::Identity(e) => problem("Your identity key cannot be used.", e.clone()),
        ClientError::Closed => problem("The app is shutting down.", ""),
    }
}

/// The gist of why the server could not be reached ("connection refused"), from the typed
/// cause: no error text is parsed.
fn unavailable_words(u: &Unavailable) -> Option<String> {
    use std::io::ErrorKind as K;
    Some(
        match u {
            Unavailable::NoAddress { .. } => "the address was not found",
            Unavailable::Io { kind, .. } => match kind {
                K::ConnectionRefused => "connection refused",
                K::TimedOut => "no answer",
                K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => "unreachable",
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                    "the connection was cut"
                }
                _ => return None,
            },
            Unavailable::HandshakeTimeout { .. } => "no answer",
            Unavailable::Handshake { .. } => "the secure handshake failed",
            Unavailable::ConnectionLost => "the connection was lost",
        }
        .to_owned(),
    )
}

/// The userid rule, as shown next to the field (SPEC.md §5.1).
pub const USERID_RULE: &str =
    "3–32 characters: letters A–Z a–z, digits 0–9, and _ . - (start with a letter or digit).";
/// The password rule, as shown next to the field (SPEC.md §5.1).
pub const PASSWORD_RULE: &str = "At least 10 characters, and not the same as your userid.";

/// Checks a userid locally before bothering the server; `None` if it looks fine.
pub fn check_userid(userid: &str) -> Option<Problem> {
    let ok_len = (3..=32).contains(&userid.chars().count());
    let ok_chars = userid
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    let ok_first = userid
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if userid.is_empty() {
        Some(problem("Please enter a userid.", USERID_RULE))
    } else if !(ok_len && ok_chars && ok_first) {
        Some(problem("That userid is not allowed.", USERID_RULE))
    } else {
        None
    }
}

/// Checks a new password and its confirmation locally; `None` if fine.
pub fn check_new_password(userid: &str, password: &str, confirm: &str) -> Option<Problem> {
    if password.chars().count() < 10 || password.eq_ignore_ascii_case(userid) {
        Some(problem("That password is too weak.", PASSWORD_RULE))
    } else if password != confirm {
        Some(problem(
            "The two passwords are different.",
            "Type the same password in both fields.",
        ))
    } else {
        None
    }
}

/// Words for a failed password change: a wrong *current* password is said as such (the
/// login wording, "wrong userid or password", would send the user to check a userid the form
/// does not have); anything else as [`explain`] says it.
pub fn change_password_failed(err: &ClientError, server: &str) -> Problem {
    match err {
        ClientError::Server(e) if e.code == ErrorCode::BadCredentials => problem(
            "Your current password is wrong.",
            "Type the password you log in with now. Nothing was changed.",
        ),
        _ => explain(err, Doing::Other, server),
    }
}

/// Checks an e-mail address loosely (the server has the full rules); `None` if fine.
pub fn check_email(email: &str) -> Option<Problem> {
    let parts: Vec<&str> = email.split('@').collect();
    let ok = parts.len() == 2
        && !parts[0].is_empty()
        && parts[1].contains('.')
        && !email.chars().any(char::is_whitespace);
    (!ok).then(|| {
        problem(
            "That e-mail address does not look right.",
            "Example: name@example.org",
        )
    })
}

/// Every local problem of the "Create account" form at once, so the user fixes them all in
/// one go instead of meeting one per submit (issue #15 item 11); empty when all is fine.
pub fn register_problems(userid: &str, email: &str, password: &str, confirm: &str) -> Vec<Problem> {
    [
        check_userid(userid),
        check_email(email),
        check_new_password(userid, password, confirm),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The dialog text for a changed server key: both fingerprints and what to do.
pub fn server_key_changed(server: &str, pinned: &str, presented: &str) -> String {
    format!(
        "The server's identity key has changed. Peerchat will not connect to it.\n\n\
         Server: {server}\nTrusted key:   {pinned}\nPresented key: {presented}\n\n\
         Either the server was reinstalled with a new key, or someone is intercepting the \
         connection. Ask the server operator for the server's fingerprint. Direct chats with \
         friends still work meanwhile."
    )
}

/// The status bar while the server link is down, by its typed reason (issue #13 item 4).
pub fn offline_status(reason: Option<OfflineReason>) -> String {
    const TAIL: &str = "direct chats still work. Retrying…";
    match reason {
        None | Some(OfflineReason::Unreachable) => format!("● Server unreachable — {TAIL}"),
        Some(OfflineReason::Lost) => format!("● Connection to the server lost — {TAIL}"),
        Some(OfflineReason::Silent) => format!("● The server stopped answering — {TAIL}"),
        Some(OfflineReason::ServerClosed(CloseReason::ServerShutdown)) => {
            format!("● The server is shutting down — {TAIL}")
        }
        Some(OfflineReason::ServerClosed(code)) => format!(
            "● The server closed the connection ({}) — {TAIL}",
            close_word(code)
        ),
        Some(OfflineReason::ProtocolError) => {
            format!("● The server sent something this app cannot read — {TAIL}")
        }
        Some(OfflineReason::KeyChanged) => {
            "● Server key changed — not connecting to it. Direct chats still work.".to_owned()
        }
        Some(OfflineReason::PinFile) => {
            "● The list of known servers cannot be read — not connecting. Direct chats still work."
                .to_owned()
        }
        Some(OfflineReason::Refused(code)) => login_refused(code),
        Some(OfflineReason::LoggedOut) => "● Logged out.".to_owned(),
        Some(OfflineReason::Replaced) => {
            "● Logged in on another device — this one is disconnected. Log out and in again to use it here."
                .to_owned()
        }
    }
}

/// What to say when the server refused the automatic (key) login for good.
pub fn login_refused(code: ErrorCode) -> String {
    match code {
        ErrorCode::BadCredentials => "Please log in with your password: the server no longer \
             accepts this device's key (the account was logged in with the password elsewhere)."
            .to_owned(),
        other => format!(
            "Please log in with your password: the server refused the automatic login ({}).",
            code_word(other)
        ),
    }
}

/// A notice for a closed link with a friend, only when it says something the user may act
/// on: an ordinary end (the friend went away, idle, replaced, logged out) says nothing.
pub fn peer_closed_notice(friend: &str, reason: PeerCloseReason) -> Option<String> {
    match reason {
        PeerCloseReason::Friend(CloseReason::NotAFriend) => Some(format!(
            "{friend}'s app refused the connection: it does not know you as a friend (or your key)."
        )),
        PeerCloseReason::Friend(
            code @ (CloseReason::ProtocolError
            | CloseReason::MalformedFrame
            | CloseReason::FrameTooLarge
            | CloseReason::UnsupportedVersion
            | CloseReason::RateLimited
            | CloseReason::SlowConsumer),
        ) => Some(format!(
            "{friend}'s app closed the connection ({}); messages wait for the next one.",
            close_word(code)
        )),
        PeerCloseReason::Local(CloseReason::SlowConsumer) => Some(format!(
            "The connection to {friend} was closed: their app does not read what we send."
        )),
        PeerCloseReason::Local(CloseReason::RateLimited) => Some(format!(
            "The connection to {friend} was closed: their app sent too much too fast."
        )),
        PeerCloseReason::Local(code) if code != CloseReason::Unspecified => Some(format!(
            "The connection to {friend} was closed: their app broke the protocol ({}).",
            close_word(code)
        )),
        _ => None,
    }
}

/// Why a transfer stopped, in words, from the proto reason alone: the event's `message` is
/// the SPEC row that decided (for logs and the CLI's JSON), not words for people.
pub fn cancel_words(reason: FileCancelReason) -> String {
    match reason {
        FileCancelReason::Cancelled | FileCancelReason::Unspecified => "cancelled",
        FileCancelReason::Declined => "declined",
        FileCancelReason::HashMismatch => "failed: the file arrived damaged",
        FileCancelReason::IoError => "failed: disk error",
        FileCancelReason::Invalid | FileCancelReason::UnknownTransfer => "failed",
        FileCancelReason::TooManyOffers => "refused: too many unfinished files at once",
        FileCancelReason::TooLarge => "refused: too large for the free disk space",
        FileCancelReason::NoData => "stopped: no data arrived",
    }
    .to_owned()
}

/// Why a file, folder or link did not open. With no opener installed the system error is
/// "No such file or directory", which read as if the file were missing (issue #15 item 8).
pub fn open_failed(what: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!(
            "Cannot open {what}: no program to open files is installed (xdg-open was not found; install xdg-utils)."
        )
    } else {
        format!("Cannot open {what}: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchat_proto::message::RequestError;
    use std::time::Duration;

    fn server_err(code: ErrorCode, retry: Option<Duration>) -> ClientError {
        let mut e = RequestError::new(code, "detail");
        e.retry_after = retry;
        ClientError::Server(e)
    }

    #[test]
    fn login_errors_read_like_sentences() {
        let p = explain(
            &server_err(ErrorCode::BadCredentials, None),
            Doing::Login,
            "h:1",
        );
        assert_eq!(p.headline, "Wrong userid or password.");
        let p = explain(
            &server_err(ErrorCode::RateLimited, Some(Duration::from_millis(2500))),
            Doing::Login,
            "h:1",
        );
        assert_eq!(
            p.headline,
            "Too many attempts. Please try again in 3 seconds."
        );
        let p = explain(
            &server_err(ErrorCode::RateLimited, Some(Duration::from_secs(600))),
            Doing::Login,
            "h:1",
        );
        assert!(p.headline.contains("in 10 minutes"), "{p:?}");
        let p = explain(
            &ClientError::ServerUnavailable(Unavailable::HandshakeTimeout {
                addr: "10.0.0.1:7878".into(),
            }),
            Doing::Login,
            "10.0.0.1:7878",
        );
        assert_eq!(
            p.headline,
            "Cannot reach the server at 10.0.0.1:7878 (no answer)."
        );
        assert!(p.detail.contains("Check the server address"));
        let e = ClientError::ServerUnavailable(Unavailable::Io {
            addr: "127.0.0.1:1".into(),
            kind: std::io::ErrorKind::ConnectionRefused,
            detail: "Connection refused (os error 111)".into(),
        });
        let p = explain(&e, Doing::Login, "127.0.0.1:1");
        assert_eq!(
            p.headline,
            "Cannot reach the server at 127.0.0.1:1 (connection refused)."
        );
        // A kind with no words of its own: the headline alone, no guessing from the text.
        let e = ClientError::ServerUnavailable(Unavailable::Io {
            addr: "127.0.0.1:1".into(),
            kind: std::io::ErrorKind::Other,
            detail: "something odd".into(),
        });
        let p = explain(&e, Doing::Login, "127.0.0.1:1");
        assert_eq!(p.headline, "Cannot reach the server at 127.0.0.1:1.");
        let pin = PinError::Changed {
            server: "s:1".into(),
            pinned: "SHA256:old".into(),
            presented: "SHA256:new".into(),
            file: "/p/known_servers".into(),
        };
        let p = explain(&ClientError::Pin(pin), Doing::Login, "s:1");
        assert!(p.headline.contains("identity key has changed"));
        assert!(p.detail.contains("SHA256:new") && p.detail.contains("/p/known_servers"));
    }

    #[test]
    fn local_checks_follow_the_rules() {
        assert!(check_userid("alice").is_none());
        assert!(check_userid("a.b-c_9").is_none());
        assert!(check_userid("ab").is_some());
        assert!(check_userid("_alice").is_some());
        assert!(check_userid("al ice").is_some());
        assert!(check_userid(&"a".repeat(33)).is_some());
        assert!(check_new_password("alice", "short", "short").is_some());
        assert!(check_new_password("alicealice", "AliceAlice", "AliceAlice").is_some());
        assert!(check_new_password("alice", "long enough!", "long enough?").is_some());
        assert!(check_new_password("alice", "long enough!", "long enough!").is_none());
        assert!(check_email("a@b.org").is_none());
        assert!(check_email("a@b").is_some());
        assert!(check_email("a b@c.org").is_some());
    }

    #[test]
    fn a_missing_opener_is_not_a_missing_file() {
        let e = std::io::Error::from(std::io::ErrorKind::NotFound);
        let t = open_failed("/home/a/Downloads/bob/x.pdf", &e);
        assert!(t.contains("xdg-open was not found"), "{t}");
        assert!(!t.contains("No such file"), "{t}");
    }

    #[test]
    fn the_create_account_form_lists_every_problem_at_once() {
        let all = register_problems("x", "nope", "short", "other");
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(
            register_problems("alice", "a@example.org", "long enough pw", "long enough pw")
                .is_empty()
        );
    }

    #[test]
    fn a_wrong_current_password_is_named_as_such() {
        let p = change_password_failed(&server_err(ErrorCode::BadCredentials, None), "h:1");
        assert_eq!(p.headline, "Your current password is wrong.");
        let p = change_password_failed(&server_err(ErrorCode::WeakPassword, None), "h:1");
        assert_eq!(p.headline, "That password is too weak.");
    }
}
