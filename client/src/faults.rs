//! Deliberate defects for the peer conformance suite's fault self-test: a suite that cannot
//! fail is worthless, so `client/tests/peer_conformance.rs` starts `peerchat-cli` with each
//! of these and checks that the case written for the rule FAILS. The switches exist only
//! with the `test-faults` cargo feature (`peerchat-cli --test-fault NAME`); in any other
//! build [`on`] is always false.

/// Every fault by name, with the rule it breaks.
pub const ALL: &[(&str, &str)] = &[
    ("no-ack", "C1: a received ChatMessage is not acknowledged"),
    ("no-pong", "L21: a Ping is not answered"),
    (
        "hello-ignores-to",
        "L15: a PeerHello's to_userid is not checked",
    ),
    ("no-idle-ping", "L40: no Ping after a silence"),
    (
        "pong-not-activity",
        "L43: a received Pong does not restart the silence",
    ),
    (
        "no-close-normal",
        "L53: quitting drops links without Close NORMAL",
    ),
];

#[cfg(feature = "test-faults")]
static ACTIVE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Switches the named faults on for this process (once; later calls are ignored).
///
/// # Errors
/// The name of an unknown fault.
#[cfg(feature = "test-faults")]
pub fn set(names: &[String]) -> Result<(), String> {
    if let Some(bad) = names.iter().find(|n| !ALL.iter().any(|(f, _)| f == n)) {
        return Err(format!("unknown test fault {bad}"));
    }
    let _ = ACTIVE.set(names.to_vec());
    Ok(())
}

/// True if fault `name` is switched on (never without the `test-faults` feature).
pub fn on(name: &str) -> bool {
    #[cfg(feature = "test-faults")]
    {
        ACTIVE.get().is_some_and(|v| v.iter().any(|n| n == name))
    }
    #[cfg(not(feature = "test-faults"))]
    {
        let _ = name;
        false
    }
}
