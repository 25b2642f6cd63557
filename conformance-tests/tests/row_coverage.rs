//! Every row of SPEC.md §8.5 (Tables L, C, R and S) is proved twice (issue #13, "Done
//! means"): by a peer conformance case of this crate and by a `Pair` unit test of the
//! client's machine (`client/src/machine/tests/`). The row ids are read from SPEC.md itself,
//! so a new row without its proofs fails this test; nothing here lists the rows by hand.
//!
//! - A peer case proves the row its id names (`peer.<row>.<detail>`) and those listed with
//!   [`peerchat_conformance::Case::rows`].
//! - A `Pair` test proves the rows its name begins with (`r9_…`, `c11_c13_…`; audit ids
//!   such as `d6_` may stand among them), or — for rows the machine never sees because the
//!   driver's link task decides them (framing, handshake, hello, the send queue) — the row
//!   is in [`OUTSIDE_THE_MACHINE`], which names the test that proves it there and why.
//! - Rows that no black-box case can reach yet are in [`NO_PEER_CASE`], each with why.
//!
//! Both lists must stay short and true: a listed row that is proved after all, or a named
//! test that does not exist, fails the test too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use peerchat_conformance::peer::cases;

/// Rows decided in the driver's link task, not in `ClientMachine`: (row, `file::test`
/// proving it there, why not a machine test). `file` is relative to the workspace root; a
/// `peer.` name instead of a file names the peer case that is the only proof today.
const OUTSIDE_THE_MACHINE: &[(&str, &str, &str)] = &[
    ("L1", "src/record.rs::zero_length_record_is_an_error", "record layer: a record with L = 0 is a framing error before any frame exists"),
    ("L2", "tests/channel.rs::a_flipped_ciphertext_byte_is_a_decrypt_error", "record layer: decryption happens in the channel, the machine gets decoded frames"),
    ("L3", "src/transport.rs::an_empty_plaintext_record_yields_no_frame", "record layer: an empty record carries no frame, so the machine never hears of it (not activity)"),
    ("L4", "tests/channel.rs::an_oversized_length_prefix_is_rejected_before_allocation", "frame layer: judged on the 4 length bytes before buffering"),
    ("L5", "tests/channel.rs::an_invalid_protobuf_is_a_decode_error", "frame layer: a body that does not decode never becomes a PeerFrame"),
    ("L6", "tests/channel.rs::a_truncated_frame_is_reported_as_such", "stream layer: the driver reports it as LinkEvent::Down{Dropped}"),
    ("C3", "src/message/peer.rs::invalid_peer_fields_are_typed_errors", "a chat id that is not 16 bytes fails PeerFrame::try_from; the link task closes PROTOCOL_ERROR"),
    ("C4", "src/message/peer.rs::invalid_peer_fields_are_typed_errors", "an empty chat text fails PeerFrame::try_from; the link task closes PROTOCOL_ERROR"),
    ("C5", "src/message/peer.rs::invalid_peer_fields_are_typed_errors", "a chat text over MAX_CHAT_TEXT fails PeerFrame::try_from; the link task closes PROTOCOL_ERROR"),
    ("C6", "src/message/peer.rs::a_chat_text_that_is_not_utf8_does_not_decode", "invalid UTF-8 is a decode error (L5) before the machine"),
    ("L10", "tests/channel.rs::initiator_refuses_an_unexpected_responder_before_revealing_itself", "handshake message 2: before any link exists"),
    ("L11", "client/src/peer/hello.rs::strangers_and_impostors_are_refused", "handshake: the responder checks the key against the friend book before the hello"),
    ("L13", "client/src/peer/hello.rs::strangers_and_impostors_are_refused", "hello check, in the link task before LinkEvent::Up"),
    ("L14", "client/src/peer/hello.rs::strangers_and_impostors_are_refused", "hello check, in the link task before LinkEvent::Up"),
    ("L15", "client/src/peer/hello.rs::strangers_and_impostors_are_refused", "hello check, in the link task before LinkEvent::Up"),
    ("L16", "peer.l16.close-as-first-frame", "the hello wait is async code in peer/session.rs (no sans-IO form yet): proved by the peer case only"),
    ("L17", "peer.l17.chat-before-hello", "the hello wait is async code in peer/session.rs (no sans-IO form yet): proved by the peer case only"),
    ("L18", "peer.l18.hello-deadline-from-connect", "the hello deadline runs in peer/session.rs from the TCP connect: proved by the peer case only"),
    ("L21a", "client/src/peer/session.rs::a_second_ping_while_a_pong_is_queued_updates_its_nonce", "the Pong slot lives in the link's write queue, which the machine does not see"),
    ("L21b", "client/src/peer/budget.rs::a_ping_flood_empties_the_bucket_and_a_pinger_at_the_rate_never_does", "the ping bucket is applied by the link task before frames reach the machine"),
    ("L41", "client/src/peer/idle.rs::l41_second_ping_after_60_s_and_no_third", "§3.6 timers have one owner, the link task (peer::idle::decide, pure): the machine never sees Pings"),
    ("L42", "client/src/peer/idle.rs::l42_close_at_90_s_whatever_was_sent", "§3.6 timers have one owner, the link task (peer::idle::decide, pure): the machine never sees Pings"),
    ("L43", "client/src/peer/idle.rs::l43_a_frame_restarts_the_count", "§3.6 timers have one owner, the link task: every complete frame resets its silence before the machine sees it"),
    ("L44", "peer.l44.closing-drains-input", "CLOSING and its grace are the link task's (session::drain, async): proved by the peer case only"),
    ("L54", "src/transport.rs::the_last_nonce_is_never_used", "the nonce is the transport's; the machine never sees it"),
    ("L56", "client/src/peer/budget.rs::the_budget_refuses_what_does_not_fit_and_frees_what_was_written", "the send budget is the link's write queue"),
];

/// Rows with no peer conformance case yet: (row, why).
const NO_PEER_CASE: &[(&str, &str)] = &[
    ("L54", "needs 2^64 - 1 records on one link: unreachable from outside; proved by the transport's unit test"),
    ("L55", "needs the client's server connection to drop while a peer link stays: the suite shares one server among all cases"),
    ("L56", "the friend would have to stop reading while provoking over 4 MiB of answers; FriendLink reads in a task that never pauses"),
    ("C7", "needs the client's own storage to fail: no test hook for it in peerchat-cli"),
    ("C23", "an outbox entry for a friend who unfriends before any link: racy against the client's dial; the machine's Pair test proves it"),
    ("R34", "a FileCancel during VERIFYING: the client verifies in milliseconds, so the window cannot be hit from outside; the Pair test d19_cancel_during_verification_leaves_no_final_file proves it"),
    ("R45", "needs a write to the .part file to fail: no test hook for it in peerchat-cli"),
    ("R55", "a MAY after a period of the receiver's choosing: not observable without a hook"),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `l21a` → `L21a`; `None` if `s` is not a row id.
fn row_id(s: &str) -> Option<String> {
    let mut chars = s.chars();
    let letter = chars.next()?.to_ascii_uppercase();
    if !"LCRS".contains(letter) {
        return None;
    }
    let rest = chars.as_str();
    let digits = rest.trim_end_matches(|c: char| c.is_ascii_lowercase());
    let variant = &rest[digits.len()..];
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || variant.len() > 1 {
        return None;
    }
    Some(format!("{letter}{rest}"))
}

/// The row ids of the tables of SPEC.md §8.5, in order.
fn spec_rows() -> Vec<String> {
    let spec = read("SPEC.md");
    let start = spec.find("\n### 8.5 ").expect("SPEC.md has §8.5");
    let end = start + spec[start..].find("\n## 9.").expect("§9 follows §8.5");
    spec[start..end]
        .lines()
        .filter_map(|l| {
            let cell = l.strip_prefix('|')?.split('|').next()?.trim();
            row_id(cell).filter(|r| r.starts_with(|c: char| c.is_ascii_uppercase()))
        })
        .collect()
}

/// Test functions of `src`: the name after each `#[test]` (or `#[tokio::test…]`).
fn test_names(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut armed = false;
    for line in src.lines() {
        let t = line.trim();
        if t.starts_with("#[") && (t.ends_with("test]") || t.contains("::test(")) {
            armed = true;
        } else if armed {
            if let Some(rest) = t
                .strip_prefix("fn ")
                .or_else(|| t.strip_prefix("async fn "))
            {
                out.push(rest.split('(').next().unwrap_or_default().to_string());
                armed = false;
            }
        }
    }
    out
}

/// Rows proved by the `Pair` tests: row → test names.
fn pair_rows() -> BTreeMap<String, Vec<String>> {
    let dir = root().join("client/src/machine/tests");
    let mut by_row: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("machine tests") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let src = std::fs::read_to_string(&path).expect("read");
        for name in test_names(&src) {
            for token in name.split('_') {
                let audit = token
                    .strip_prefix('d')
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
                if audit {
                    continue;
                }
                match row_id(token) {
                    Some(row) => by_row.entry(row).or_default().push(name.clone()),
                    None => break,
                }
            }
        }
    }
    by_row
}

#[test]
fn spec_has_the_four_tables() {
    let rows = spec_rows();
    for r in [
        "L1", "L21a", "L56", "C1", "C24", "R1", "R4b", "R56", "S1", "S40",
    ] {
        assert!(rows.iter().any(|x| x == r), "{r} not read from SPEC.md");
    }
    let unique: BTreeSet<&String> = rows.iter().collect();
    assert_eq!(unique.len(), rows.len(), "a row id twice in §8.5");
}

#[test]
fn every_row_has_a_peer_case() {
    let rows = spec_rows();
    let all = cases::all();
    let mut proved: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for c in &all {
        for r in c.spec_rows() {
            proved.entry(r).or_default().push(c.id);
        }
    }
    let known: BTreeSet<String> = rows.iter().cloned().collect();
    let strays: Vec<String> = proved
        .iter()
        .filter(|(r, _)| !known.contains(*r))
        .map(|(r, ids)| format!("{r} (named by {ids:?})"))
        .collect();
    assert!(
        strays.is_empty(),
        "cases name rows SPEC.md §8.5 does not have: {strays:?}"
    );
    let listed: BTreeMap<&str, &str> = NO_PEER_CASE.iter().copied().collect();
    let missing: Vec<&String> = rows
        .iter()
        .filter(|r| !proved.contains_key(*r) && !listed.contains_key(r.as_str()))
        .collect();
    let stale: Vec<&&str> = listed.keys().filter(|r| proved.contains_key(**r)).collect();
    println!(
        "{} rows; {} with a peer case; without one, listed with a reason:",
        rows.len(),
        proved.len()
    );
    for (r, why) in NO_PEER_CASE {
        println!("  {r}: {why}");
    }
    assert!(
        missing.is_empty(),
        "rows with no peer case (name the row in a case id or in Case::rows): {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "rows in NO_PEER_CASE that have a case now: {stale:?}"
    );
}

#[test]
fn every_row_has_a_pair_test() {
    let rows = spec_rows();
    let proved = pair_rows();
    let case_ids: BTreeSet<&str> = cases::all().iter().map(|c| c.id).collect();
    let mut bad_refs = Vec::new();
    for (row, test, why) in OUTSIDE_THE_MACHINE {
        assert!(!why.is_empty());
        if test.starts_with("peer.") {
            if !case_ids.contains(test) {
                bad_refs.push(format!("{row}: no peer case {test}"));
            }
            continue;
        }
        let (file, name) = test.split_once("::").expect("file::test");
        let names = test_names(&read(file));
        if !names.iter().any(|n| n == name) {
            bad_refs.push(format!("{row}: no #[test] fn {name} in {file}"));
        }
    }
    assert!(
        bad_refs.is_empty(),
        "OUTSIDE_THE_MACHINE names tests that do not exist: {bad_refs:?}"
    );
    let outside: BTreeSet<&str> = OUTSIDE_THE_MACHINE.iter().map(|(r, _, _)| *r).collect();
    let missing: Vec<&String> = rows
        .iter()
        .filter(|r| !proved.contains_key(*r) && !outside.contains(r.as_str()))
        .collect();
    let both: Vec<&&str> = outside
        .iter()
        .filter(|r| proved.contains_key(**r))
        .collect();
    let strays: Vec<&String> = proved.keys().filter(|r| !rows.contains(r)).collect();
    println!(
        "{} rows; {} with a Pair test; {} decided outside the machine",
        rows.len(),
        proved.len(),
        outside.len()
    );
    assert!(
        strays.is_empty(),
        "Pair tests name rows SPEC.md does not have: {strays:?}"
    );
    assert!(
        missing.is_empty(),
        "rows with no Pair test (begin a test name with the row id): {missing:?}"
    );
    assert!(
        both.is_empty(),
        "rows in OUTSIDE_THE_MACHINE that have a Pair test: {both:?}"
    );
}
