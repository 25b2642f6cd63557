//! Deterministic tests of the whole machine: two of them wired by [`pair::Pair`] on a
//! virtual clock. Tests named after a SPEC.md §8.5 row prove that row end to end (the pure
//! tables have their own row tests in `transfers.rs`).

mod pair;
mod rows;

use std::time::Duration;

use peerchat_proto::message::PeerFrame;
use peerchat_proto::wire::{CloseReason, FileCancelReason};

use super::transfers::{RecvState, SendState};
use super::{Action, Command, FriendEntry, LinkId, ServerInput};
use crate::events::Event;
use crate::ids::TransferId;
use pair::{Pair, Side};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn texts(p: &Pair) -> Vec<String> {
    p.b.history
        .incoming
        .iter()
        .map(|(_, _, t)| t.clone())
        .collect()
}

fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn is_chunk(f: &PeerFrame) -> bool {
    matches!(f, PeerFrame::FileChunk { .. })
}

#[test]
fn c1_c20_outbox_order_across_a_link_drop() {
    let (mut p, link) = Pair::connected();
    p.say(Side::A, 1, "one");
    p.drive();
    // Two messages leave but the link breaks before they arrive.
    p.say(Side::A, 2, "two");
    p.say(Side::A, 3, "three");
    p.drop_link(link);
    p.reachable = false;
    p.say(Side::A, 4, "four");
    p.drive();
    assert_eq!(texts(&p), ["one"]);
    p.reachable = true;
    p.advance(secs(2));
    assert_eq!(
        texts(&p),
        ["one", "two", "three", "four"],
        "in order, once each"
    );
    assert_eq!(p.a.history.delivered.len(), 4);
    assert_eq!(p.a.m.chat.pending("bob"), 0);
}

#[test]
fn c1_history_first_then_ack() {
    let (mut p, _) = Pair::connected();
    p.say(Side::A, 1, "hi");
    p.drive();
    let kinds: Vec<&str> =
        p.b.log
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Persist(super::PersistOp::StoreIncoming { .. }) => Some("store"),
                Action::SendFrame {
                    frame: PeerFrame::Ack { .. },
                    ..
                } => Some("ack"),
                _ => None,
            })
            .collect();
    assert_eq!(kinds, ["store", "ack"]);
    // And on the sending side: the outbox write is queued before the ChatMessage (the
    // driver lets the message pass it, §8.1 r2), and "delivered" comes after both.
    let first =
        p.a.log
            .iter()
            .position(|(_, a)| matches!(a, Action::Persist(super::PersistOp::AppendOutbox { .. })));
    let sent = p.a.log.iter().position(|(_, a)| {
        matches!(
            a,
            Action::SendFrame {
                frame: PeerFrame::Chat(_),
                ..
            }
        )
    });
    assert!(first < sent && sent.is_some());
}

fn acked(p: &Pair) -> usize {
    p.a.events()
        .iter()
        .filter(|e| matches!(e, Event::MessageAcked { .. }))
        .count()
}

/// §8.1 r2–r3, C8, C21: the message leaves while its outbox entry is still being written; the
/// friend's ack frees the window at once but "delivered" (the event, the mark) waits for the
/// write.
#[test]
fn c21_sent_before_its_outbox_write_is_done_delivered_only_after() {
    let (mut p, _) = Pair::connected();
    p.a.history.hold_outbox = true;
    let id = p.say(Side::A, 1, "hi");
    p.drive();
    assert_eq!(
        texts(&p),
        ["hi"],
        "sent and stored by the friend before our write is done"
    );
    assert!(p.a.history.outbox.is_empty(), "our write is still running");
    assert_eq!(
        p.a.m.chat.pending("bob"),
        0,
        "the ack took it out of the window"
    );
    assert_eq!(acked(&p), 0, "not delivered before it is stored here too");
    assert!(p.a.history.delivered.is_empty());

    p.release_outbox(Side::A);
    assert_eq!(acked(&p), 1);
    assert!(p.a.history.delivered.contains(&id));
}

/// An outbox write that fails after the message left: the message is not withdrawn (the
/// friend may show it already), the user hears that the history lacks it, and the ack is
/// still reported.
#[test]
fn c21_a_failed_outbox_write_is_reported_and_the_message_still_delivered() {
    let (mut p, _) = Pair::connected();
    p.a.history.hold_outbox = true;
    p.a.history.fail_outbox = true;
    p.say(Side::A, 1, "hi");
    p.drive();
    p.release_outbox(Side::A);
    assert_eq!(texts(&p), ["hi"]);
    let errors =
        p.a.events()
            .iter()
            .filter(|e| matches!(e, Event::Error { .. }))
            .count();
    assert_eq!(errors, 1);
    assert_eq!(acked(&p), 1);
}

#[test]
fn c2_duplicate_is_acked_not_shown() {
    let (mut p, link) = Pair::connected();
    let id = p.say(Side::A, 1, "hi");
    p.drive();
    let frame = PeerFrame::Chat(peerchat_proto::message::ChatFrame {
        id: id.0,
        sent_at_unix_ms: 1,
        text: "hi".into(),
    });
    p.inject(Side::B, link, frame);
    p.drive();
    assert_eq!(texts(&p), ["hi"]);
    let acks =
        p.b.sent()
            .iter()
            .filter(|(_, _, f)| matches!(f, PeerFrame::Ack { .. }))
            .count();
    assert_eq!(acks, 2);
}

/// C2 past the in-memory inbox's reach: an id it no longer remembers
/// (`RECENT_PER_FRIEND` later messages came) goes to the history, which reports it as
/// stored before, so it is acknowledged again and not shown twice.
#[test]
fn c2_a_duplicate_older_than_the_inbox_remembers_is_acked_not_shown() {
    use crate::chat::inbox::RECENT_PER_FRIEND;
    let (mut p, link) = Pair::connected();
    let chat = |n: usize| {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(n as u64).to_be_bytes());
        PeerFrame::Chat(peerchat_proto::message::ChatFrame {
            id,
            sent_at_unix_ms: 1,
            text: format!("m{n}"),
        })
    };
    for n in 0..=RECENT_PER_FRIEND {
        p.inject(Side::B, link, chat(n));
        p.drive();
    }
    p.inject(Side::B, link, chat(0));
    p.drive();
    assert_eq!(texts(&p).len(), RECENT_PER_FRIEND + 1, "m0 is shown once");
    let acks =
        p.b.sent()
            .iter()
            .filter(|(_, _, f)| matches!(f, PeerFrame::Ack { .. }))
            .count();
    assert_eq!(acks, RECENT_PER_FRIEND + 2);
}

#[test]
fn c7_store_fails_no_ack_then_resent_on_next_link() {
    let (mut p, link) = Pair::connected();
    p.b.history.fail_store = true;
    p.say(Side::A, 1, "hi");
    p.drive();
    assert!(p.b.history.incoming.is_empty());
    assert!(p.a.history.delivered.is_empty(), "no ack without storage");
    p.b.history.fail_store = false;
    p.drop_link(link);
    p.advance(secs(2));
    assert_eq!(texts(&p), ["hi"]);
    assert_eq!(p.a.history.delivered.len(), 1);
}

#[test]
fn c11_c13_typing_expires_after_6_s() {
    let (mut p, _) = Pair::connected();
    p.command(
        Side::A,
        Command::SetTyping {
            friend: "bob".into(),
            active: true,
        },
    );
    p.drive();
    assert!(p.b.events().contains(&Event::Typing {
        friend: "alice".into(),
        active: true
    }));
    p.advance(secs(5));
    assert!(!p.b.events().contains(&Event::Typing {
        friend: "alice".into(),
        active: false
    }));
    p.advance(secs(1));
    assert!(p.b.events().contains(&Event::Typing {
        friend: "alice".into(),
        active: false
    }));
}

/// Drives a transfer of 100 bytes in chunks of 10 until `chunks` chunks reached Bob, then
/// breaks the link.
fn transfer_broken_after(chunks: usize) -> (Pair, TransferId, Vec<u8>) {
    let (mut p, link) = Pair::connected();
    let data = content(100);
    let id = p.send_file(Side::A, 1, &data);
    p.drive();
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::PendingDecision)
    );
    p.command(Side::B, Command::AcceptFile { id });
    let mut n = 0;
    p.drive_until(|to, f| {
        if to == Side::B && is_chunk(f) {
            n += 1;
        }
        n == chunks
    });
    p.drop_link(link);
    (p, id, data)
}

#[test]
fn r9_resume_from_the_part_offset() {
    let (mut p, id, data) = transfer_broken_after(3);
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Suspended { held: 30 })
    );
    assert_eq!(p.a.m.outgoing_state(id), Some(SendState::Suspended));
    assert_eq!(p.b.disk.parts[&id].len(), 30);
    p.advance(secs(2));
    assert_eq!(p.b.disk.done.get(&id), Some(&data));
    assert_eq!(p.a.m.outgoing_state(id), Some(SendState::Done));
    assert_eq!(p.b.m.incoming_state("alice", id), Some(RecvState::Done));
    // The resumed accept named the .part length, and the first resumed chunk started there.
    let accepts: Vec<u64> =
        p.b.sent()
            .iter()
            .filter_map(|(_, _, f)| match f {
                PeerFrame::FileAccept { offset, .. } => Some(*offset),
                _ => None,
            })
            .collect();
    assert_eq!(accepts, [0, 30]);
    assert_eq!(p.b.history.transfers[&id].state, "DONE");
    assert!(p
        .b
        .events()
        .iter()
        .any(|e| matches!(e, Event::TransferSuspended { bytes: 30, .. })));
}

#[test]
fn r41_suspend_then_resume_accepting_while_offline() {
    let (mut p, link) = Pair::connected();
    let data = content(25);
    let id = p.send_file(Side::A, 2, &data);
    p.drive();
    p.reachable = false;
    p.drop_link(link);
    p.command(Side::B, Command::AcceptFile { id });
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Suspended { held: 0 })
    );
    p.reachable = true;
    p.advance(secs(2));
    assert_eq!(p.b.disk.done.get(&id), Some(&data));
    assert_eq!(p.a.m.transfer_state(id), Some("DONE"));
}

#[test]
fn r13_reoffer_after_a_lost_file_complete() {
    let (mut p, link) = Pair::connected();
    let data = content(15);
    let id = p.send_file(Side::A, 3, &data);
    p.drive();
    p.command(Side::B, Command::AcceptFile { id });
    // Stop when Bob has the last chunk: his FileComplete is then lost with the link.
    let mut n = 0;
    p.drive_until(|to, f| {
        if to == Side::B && is_chunk(f) {
            n += 1;
        }
        n == 2
    });
    assert_eq!(p.b.m.incoming_state("alice", id), Some(RecvState::Done));
    p.drop_link(link);
    assert_eq!(p.a.m.outgoing_state(id), Some(SendState::Suspended));
    p.advance(secs(2));
    assert_eq!(p.a.m.outgoing_state(id), Some(SendState::Done));
    assert!(
        p.b.sent()
            .iter()
            .filter(|(_, _, f)| matches!(f, PeerFrame::FileComplete { .. }))
            .count()
            == 2
    );
}

#[test]
fn r14_declined_offline_answers_the_reoffer_with_declined() {
    let (mut p, link) = Pair::connected();
    let id = p.send_file(Side::A, 4, &content(5));
    p.drive();
    p.reachable = false;
    p.drop_link(link);
    p.command(Side::B, Command::DeclineFile { id });
    p.reachable = true;
    p.advance(secs(2));
    assert_eq!(
        p.a.m.outgoing_state(id),
        Some(SendState::Cancelled {
            reason: FileCancelReason::Declined,
            unsent: false
        })
    );
    assert_eq!(
        p.a.history.transfers[&id].end_reason,
        Some(FileCancelReason::Declined)
    );
}

#[test]
fn s35_s32_cancel_while_suspended_goes_out_on_the_next_link() {
    let (mut p, id, _) = transfer_broken_after(2);
    p.reachable = false;
    p.command(Side::A, Command::CancelTransfer { id });
    assert_eq!(
        p.a.m.outgoing_state(id),
        Some(SendState::Cancelled {
            reason: FileCancelReason::Cancelled,
            unsent: true
        })
    );
    assert!(
        p.a.history.transfers[&id].cancel_unsent,
        "D6: persisted until sent"
    );
    p.reachable = true;
    p.advance(secs(2));
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::Cancelled)),
        "R33"
    );
    assert!(!p.a.history.transfers[&id].cancel_unsent);
    assert!(!p.b.disk.parts.contains_key(&id), ".part deleted");
}

#[test]
fn s31_source_changed_before_resume() {
    let (mut p, id, _) = transfer_broken_after(2);
    p.a.disk.files.insert("/src/file1".into(), vec![1, 2, 3]);
    p.advance(secs(2));
    assert_eq!(
        p.a.m.outgoing_state(id),
        Some(SendState::Cancelled {
            reason: FileCancelReason::IoError,
            unsent: false
        })
    );
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::IoError))
    );
}

#[test]
fn r52_s22_hash_mismatch_fails_both_sides() {
    let (mut p, _) = Pair::connected();
    let id = TransferId([9; 16]);
    p.a.disk.files.insert("/src/x".into(), content(12));
    p.command(
        Side::A,
        Command::SendFile {
            friend: "bob".into(),
            id,
            path: "/src/x".into(),
            name: "x".into(),
            size: 12,
            sha256: Some([0; 32]),
        },
    );
    p.drive();
    p.command(Side::B, Command::AcceptFile { id });
    p.drive();
    assert_eq!(p.b.m.incoming_state("alice", id), Some(RecvState::Failed));
    assert_eq!(p.a.m.outgoing_state(id), Some(SendState::Failed));
    assert!(p.b.disk.done.is_empty() && p.b.disk.parts.is_empty());
}

#[test]
fn r56_no_data_after_60_s() {
    let (mut p, _) = Pair::connected();
    p.a.disk.stall_reads = true;
    let id = p.send_file(Side::A, 5, &content(30));
    p.drive();
    p.command(Side::B, Command::AcceptFile { id });
    p.drive();
    p.advance(secs(59));
    assert!(matches!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Receiving { .. })
    ));
    p.advance(secs(1));
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::NoData))
    );
    assert_eq!(
        p.a.m.outgoing_state(id),
        Some(SendState::Cancelled {
            reason: FileCancelReason::NoData,
            unsent: false
        }),
        "S23"
    );
}

#[test]
fn r21_r20_chunk_for_unknown_id_then_discarded() {
    let (mut p, link) = Pair::connected();
    let chunk = PeerFrame::FileChunk {
        id: [3; 16],
        offset: 0,
        data: bytes::Bytes::from_static(b"x"),
    };
    p.inject(Side::B, link, chunk.clone());
    p.inject(Side::B, link, chunk);
    let cancels =
        p.b.sent()
            .iter()
            .filter(|(_, _, f)| matches!(f, PeerFrame::FileCancel { .. }))
            .count();
    assert_eq!(cancels, 1, "the second chunk is discarded (R20)");
    assert_eq!(p.b.m.discard_len(link), 1);
}

#[test]
fn s2_accept_for_unknown_transfer() {
    let (mut p, link) = Pair::connected();
    p.inject(
        Side::A,
        link,
        PeerFrame::FileAccept {
            id: [4; 16],
            offset: 0,
        },
    );
    assert!(p.a.sent().iter().any(|(_, _, f)| matches!(
        f,
        PeerFrame::FileCancel {
            reason: FileCancelReason::UnknownTransfer,
            ..
        }
    )));
}

#[test]
fn r6_reoffer_differs_ends_transfer() {
    let (mut p, link) = Pair::connected();
    let id = p.send_file(Side::A, 6, &content(20));
    p.drive();
    p.inject(
        Side::B,
        link,
        PeerFrame::FileOffer(peerchat_proto::message::FileOfferFrame {
            id: id.0,
            name: "FILE6.bin".into(),
            size: 20,
            sha256: Some([0; 32]),
        }),
    );
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::Invalid))
    );
}

#[test]
fn l52_simultaneous_open_both_keep_the_link_alice_dialled() {
    let mut p = Pair::new();
    let from_a = p.open_link(Side::A);
    let from_b = p.open_link(Side::B);
    p.drive();
    let dup = Some(CloseReason::DuplicateConnection);
    assert!(p.a.closes().contains(&(from_b, dup)));
    assert!(p.b.closes().contains(&(from_b, dup)));
    assert!(!p.a.closes().iter().any(|(l, _)| *l == from_a));
    p.say(Side::B, 1, "still here");
    p.drive();
    assert_eq!(p.a.history.incoming.len(), 1);
    assert!(p
        .b
        .sent()
        .iter()
        .any(|(_, l, f)| *l == from_a && matches!(f, PeerFrame::Chat(_))));
}

#[test]
fn l52_link_replacement_resends_what_only_the_loser_carried() {
    let (mut p, old) = Pair::connected();
    p.say(Side::A, 1, "lost on the old link");
    // Alice reconnects (her old link looks stale to her): the newer link she dialled wins.
    p.run_actions();
    let new = p.open_link(Side::A);
    p.drive();
    assert!(p
        .a
        .closes()
        .contains(&(old, Some(CloseReason::DuplicateConnection))));
    assert_eq!(texts(&p), ["lost on the old link"]);
    assert!(p
        .a
        .sent()
        .iter()
        .any(|(_, l, f)| *l == new && matches!(f, PeerFrame::Chat(_))));
    assert_eq!(p.a.history.delivered.len(), 1);
}

/// §3.6 (L21, L40–L43) has one owner, the link task (`peer/session.rs`, see
/// `machine/links.rs`): the machine neither pings a silent link nor answers a Ping, so a
/// driver never sends a second Pong or closes a link the link task still keeps.
#[test]
fn l21_l40_idle_timers_belong_to_the_link_task() {
    let (mut p, _) = Pair::connected();
    let link = p.a.m.active_link("bob");
    p.mute_b = true;
    p.advance(secs(100));
    assert!(!p
        .a
        .sent()
        .iter()
        .any(|(_, _, f)| matches!(f, PeerFrame::Ping(_))));
    assert!(p.a.closes().is_empty());
    if let Some(link) = link {
        p.inject(Side::A, link, PeerFrame::Ping(77));
    }
    assert!(!p.a.sent().iter().any(|(_, _, f)| *f == PeerFrame::Pong(77)));
}

#[test]
fn l20_hello_in_open_closes_protocol_error() {
    let (mut p, link) = Pair::connected();
    p.inject(
        Side::B,
        link,
        PeerFrame::Hello {
            userid: "alice".into(),
            to_userid: "bob".into(),
            features: Default::default(),
        },
    );
    assert!(p
        .b
        .closes()
        .contains(&(link, Some(CloseReason::ProtocolError))));
}

#[test]
fn l33_not_a_friend_close_stops_redialling() {
    let (mut p, link) = Pair::connected();
    p.inject(
        Side::A,
        link,
        PeerFrame::Close {
            reason: CloseReason::NotAFriend,
            message: String::new(),
        },
    );
    p.say(Side::A, 1, "anyone?");
    p.advance(secs(300));
    assert!(p.a.dials.is_empty());
    // The friend list changing (FriendOnline) lifts it.
    p.server(
        Side::A,
        ServerInput::FriendOnline(FriendEntry {
            userid: "bob".into(),
            fingerprint: p.b.fingerprint.clone(),
            online: true,
        }),
    );
    p.drive();
    assert_eq!(p.a.dials.len(), 1);
}

fn dial_gaps(p: &Pair) -> Vec<u64> {
    p.a.dials
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0).as_secs())
        .collect()
}

#[test]
fn redial_spacing_1_s_to_60_s_over_time_and_reset_by_friend_online() {
    let mut p = Pair::new();
    p.reachable = false;
    for n in 1..=20 {
        // Many messages while no link: one dial, not twenty.
        p.say(Side::A, n, "queued");
    }
    p.drive();
    assert_eq!(p.a.dials.len(), 1);
    p.advance(secs(300));
    assert_eq!(
        dial_gaps(&p)[..8],
        [1, 2, 4, 8, 16, 32, 60, 60],
        "1 s doubling to the 60 s cap, over time"
    );
    let before = p.a.dials.len();
    p.reachable = true;
    p.server(
        Side::A,
        ServerInput::FriendOnline(FriendEntry {
            userid: "bob".into(),
            fingerprint: p.b.fingerprint.clone(),
            online: true,
        }),
    );
    p.drive();
    assert_eq!(p.a.dials.len(), before + 1, "FriendOnline dials at once");
    assert_eq!(p.b.history.incoming.len(), 20);
}

#[test]
fn retry_now_resets_the_backoff_and_reconnects_the_server() {
    let mut p = Pair::new();
    p.reachable = false;
    p.say(Side::A, 1, "queued");
    p.advance(secs(100));
    let before = p.a.dials.len();
    p.reachable = true;
    p.command(Side::A, Command::RetryNow);
    p.drive();
    assert_eq!(p.a.server_connects, 1);
    assert_eq!(p.a.dials.len(), before + 1);
    assert_eq!(texts(&p), ["queued"]);
}

#[test]
fn update_settings_auto_accepts_waiting_offers() {
    let (mut p, _) = Pair::connected();
    let data = content(40);
    let id = p.send_file(Side::A, 7, &data);
    p.drive();
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::PendingDecision)
    );
    p.command(
        Side::B,
        Command::UpdateSettings {
            download_dir: "/elsewhere".into(),
            auto_accept: crate::transfer::AutoAccept::UpTo(100),
        },
    );
    p.drive();
    assert_eq!(p.b.disk.done.get(&id), Some(&data));
    assert!(p.b.log.iter().any(|(_, a)| matches!(
        a,
        Action::Disk(super::DiskJob::CreatePart { dir, .. }) if dir.as_os_str() == "/elsewhere"
    )));
}

#[test]
fn l51a_key_change_closes_links_and_holds_messages() {
    let (mut p, link) = Pair::connected();
    p.server(
        Side::A,
        ServerInput::FriendKey {
            userid: "bob".into(),
            fingerprint: "SHA256:other".into(),
        },
    );
    assert!(p
        .a
        .closes()
        .contains(&(link, Some(CloseReason::NotAFriend))));
    p.say(Side::A, 1, "held");
    p.advance(secs(10));
    assert!(
        p.a.dials.is_empty(),
        "nothing is dialled while the change is pending"
    );
    assert!(p
        .a
        .events()
        .iter()
        .any(|e| matches!(e, Event::FriendKeyChanged { .. })));
    // The server presents the pinned key again: the message goes out.
    p.server(
        Side::A,
        ServerInput::FriendKey {
            userid: "bob".into(),
            fingerprint: p.b.fingerprint.clone(),
        },
    );
    p.drive();
    assert_eq!(texts(&p), ["held"]);
}

#[test]
fn l50_unfriended_closes_and_cancels() {
    let (mut p, _link) = Pair::connected();
    let id = p.send_file(Side::A, 8, &content(20));
    p.drive();
    p.server(
        Side::B,
        ServerInput::FriendRemoved {
            userid: "alice".into(),
        },
    );
    p.drive();
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::Cancelled)),
        "R54"
    );
    let _ = LinkId(0);
}

#[test]
fn d6_s32_cancel_to_deliver_survives_a_restart() {
    let (mut p, id, data) = transfer_broken_after(2);
    p.reachable = false;
    p.command(Side::A, Command::CancelTransfer { id });
    let rec = p.a.history.transfers[&id].clone();
    assert!(rec.cancel_unsent);
    // Alice restarts: a fresh machine restored from her history.
    let config = p.a.m.config().clone();
    p.a.m = super::ClientMachine::new(config);
    let fb = p.b.fingerprint.clone();
    p.server(
        Side::A,
        ServerInput::LoggedIn {
            friends: vec![FriendEntry {
                userid: "bob".into(),
                fingerprint: fb,
                online: true,
            }],
        },
    );
    p.a.m.restore_outgoing(
        "bob",
        id,
        "/src/file1".into(),
        super::transfers::OfferKey {
            name: rec.offered_name.clone(),
            size: rec.size,
            sha256: rec.sha256.unwrap_or_default(),
            streamed: rec.sha256.is_none(),
        },
        rec.end_reason.filter(|_| rec.cancel_unsent),
    );
    assert_eq!(data.len() as u64, rec.size);
    p.reachable = true;
    p.command(Side::A, Command::RetryNow);
    p.drive();
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::Cancelled))
    );
}

#[test]
fn r4_d21_offer_reusing_an_own_outgoing_id_is_refused() {
    let (mut p, link) = Pair::connected();
    let id = p.send_file(Side::A, 10, &content(5));
    p.drive();
    p.inject(
        Side::A,
        link,
        PeerFrame::FileOffer(peerchat_proto::message::FileOfferFrame {
            id: id.0,
            name: "evil".into(),
            size: 5,
            sha256: Some([1; 32]),
        }),
    );
    assert!(
        p.a.m.incoming_state("bob", id).is_none(),
        "nothing recorded"
    );
    assert!(p.a.sent().iter().any(|(_, _, f)| matches!(
        f,
        PeerFrame::FileCancel {
            reason: FileCancelReason::Invalid,
            ..
        }
    )));
    assert!(
        matches!(p.a.m.outgoing_state(id), Some(SendState::Offered { .. })),
        "own transfer not affected"
    );
    assert_eq!(
        p.a.m.discard_len(link),
        0,
        "the id stays out of the discard set"
    );
    // A FileAccept for the own transfer on the same link is heard: Alice starts sending.
    // (Injected: Bob's own machine took the FileCancel for its injected offer.)
    p.inject(
        Side::A,
        link,
        PeerFrame::FileAccept {
            id: id.0,
            offset: 0,
        },
    );
    assert!(
        !matches!(p.a.m.outgoing_state(id), Some(SendState::Offered { .. })),
        "the FileAccept moved the own transfer on"
    );
}

#[test]
fn r7_d5_differing_reoffer_of_a_done_transfer_is_invalid_not_complete() {
    let (mut p, link) = Pair::connected();
    let id = p.send_file(Side::A, 11, &content(5));
    p.drive();
    p.command(Side::B, Command::AcceptFile { id });
    p.drive();
    assert_eq!(p.b.m.incoming_state("alice", id), Some(RecvState::Done));
    // On a new link (the old one's discard set would drop it, R1).
    p.drop_link(link);
    let link2 = p.open_link(Side::A);
    p.inject(
        Side::B,
        link2,
        PeerFrame::FileOffer(peerchat_proto::message::FileOfferFrame {
            id: id.0,
            name: "file11.BIN".into(),
            size: 5,
            sha256: Some([1; 32]),
        }),
    );
    assert!(p.b.sent().iter().any(|(_, l, f)| *l == link2
        && matches!(
            f,
            PeerFrame::FileCancel {
                reason: FileCancelReason::Invalid,
                ..
            }
        )));
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Done),
        "unchanged"
    );
}

#[test]
fn d9_discard_set_is_per_link_and_bounded() {
    let (mut p, link) = Pair::connected();
    for n in 0..(super::links::DISCARD_SET_MAX as u32 + 10) {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&n.to_be_bytes());
        p.inject(
            Side::B,
            link,
            PeerFrame::FileChunk {
                id,
                offset: 0,
                data: bytes::Bytes::from_static(b"x"),
            },
        );
    }
    assert_eq!(p.b.m.discard_len(link), super::links::DISCARD_SET_MAX);
    p.drop_link(link);
    let link2 = p.open_link(Side::A);
    assert_eq!(p.b.m.discard_len(link2), 0, "dropped with its link");
}

#[test]
fn l51_d18_login_snapshot_with_another_key_closes_the_link() {
    let (mut p, link) = Pair::connected();
    p.server(
        Side::A,
        ServerInput::LoggedIn {
            friends: vec![FriendEntry {
                userid: "bob".into(),
                fingerprint: "SHA256:new-device".into(),
                online: true,
            }],
        },
    );
    assert!(p
        .a
        .closes()
        .contains(&(link, Some(CloseReason::NotAFriend))));
}

fn streamed_offer(id: [u8; 16], size: u64) -> PeerFrame {
    PeerFrame::FileOffer(peerchat_proto::message::FileOfferFrame {
        id,
        name: "s.bin".into(),
        size,
        sha256: None,
    })
}

#[test]
fn streamed_hash_offer_verifies_with_the_digest() {
    let mut p = Pair::new();
    p.features = peerchat_proto::message::PeerFeatures::ALL;
    let link = p.open_link(Side::A);
    p.run_actions();
    let data = content(15);
    let id = [12u8; 16];
    p.inject(Side::B, link, streamed_offer(id, 15));
    assert_eq!(
        p.b.m.incoming_state("alice", TransferId(id)),
        Some(RecvState::PendingDecision)
    );
    p.command(Side::B, Command::AcceptFile { id: TransferId(id) });
    for (offset, part) in [(0u64, &data[..10]), (10, &data[10..])] {
        p.inject(
            Side::B,
            link,
            PeerFrame::FileChunk {
                id,
                offset,
                data: bytes::Bytes::copy_from_slice(part),
            },
        );
    }
    assert!(matches!(
        p.b.m.incoming_state("alice", TransferId(id)),
        Some(RecvState::Verifying { .. })
    ));
    p.inject(
        Side::B,
        link,
        PeerFrame::FileDigest {
            id,
            blake3: *blake3::hash(&data).as_bytes(),
        },
    );
    assert_eq!(
        p.b.m.incoming_state("alice", TransferId(id)),
        Some(RecvState::Done)
    );
    assert_eq!(p.b.disk.done.get(&TransferId(id)), Some(&data));
}

#[test]
fn streamed_hash_offer_without_the_feature_is_invalid() {
    let (mut p, link) = Pair::connected();
    p.inject(Side::B, link, streamed_offer([13; 16], 5));
    assert!(p
        .b
        .m
        .incoming_state("alice", TransferId([13; 16]))
        .is_none());
    assert!(p.b.sent().iter().any(|(_, _, f)| matches!(
        f,
        PeerFrame::FileCancel {
            reason: FileCancelReason::Invalid,
            ..
        }
    )));
}

#[test]
fn s40_offers_beyond_the_cap_wait_their_turn() {
    use peerchat_proto::limits::MAX_OFFERS_IN_FLIGHT;
    let (mut p, _) = Pair::connected();
    let cap = MAX_OFFERS_IN_FLIGHT as u8;
    for n in 0..cap + 2 {
        p.send_file(Side::A, 100 + n, &content(3));
    }
    p.drive();
    let offers = |p: &Pair| {
        p.a.sent()
            .iter()
            .filter(|(_, _, f)| matches!(f, PeerFrame::FileOffer(_)))
            .count()
    };
    assert_eq!(offers(&p), MAX_OFFERS_IN_FLIGHT);
    assert_eq!(
        p.a.m.outgoing_state(TransferId([100 + cap; 16])),
        Some(SendState::Suspended)
    );
    p.command(
        Side::B,
        Command::DeclineFile {
            id: TransferId([100; 16]),
        },
    );
    p.drive();
    assert_eq!(
        offers(&p),
        MAX_OFFERS_IN_FLIGHT + 1,
        "the next one in order"
    );
    assert!(matches!(
        p.a.m.outgoing_state(TransferId([100 + cap; 16])),
        Some(SendState::Offered { .. })
    ));
}

/// A driver sleeps until `poll_timeout`: it must never name a past instant that
/// `handle_timeout` then leaves as it is (a busy loop).
#[test]
fn poll_timeout_is_never_stuck_in_the_past() {
    let (mut p, link) = Pair::connected();
    p.reachable = false;
    p.drop_link(link);
    p.say(Side::A, 1, "queued");
    p.advance(secs(5));
    // Bob then refuses Alice (L33) while she has a message pending.
    p.reachable = true;
    p.advance(secs(60));
    let l2 = p.a.m.links.active("bob");
    if let Some(l2) = l2 {
        p.inject(
            Side::A,
            l2,
            PeerFrame::Close {
                reason: CloseReason::NotAFriend,
                message: String::new(),
            },
        );
    }
    p.say(Side::A, 2, "refused");
    p.run_actions();
    let now = p.now;
    p.a.m.handle_timeout(now);
    if let Some(t) = p.a.m.poll_timeout() {
        assert!(t > now, "a timer in the past would spin the driver");
    }
}

/// Sends `data` from Alice to Bob as transfer `n` without a SHA-256 (the CLI's `send_file`).
fn send_unhashed(p: &mut Pair, n: u8, data: &[u8]) -> TransferId {
    let id = TransferId([n; 16]);
    let path = std::path::PathBuf::from(format!("/src/u{n}"));
    p.a.disk.files.insert(path.clone(), data.to_vec());
    p.command(
        Side::A,
        Command::SendFile {
            friend: "bob".into(),
            id,
            path,
            name: format!("u{n}.bin"),
            size: data.len() as u64,
            sha256: None,
        },
    );
    id
}

/// §8.3.1 r2: with `file-blake3` on the link an unhashed file is offered with a streamed
/// hash (no pre-hash pass) and its FileDigest follows the last chunk.
#[test]
fn streamed_hash_offer_is_sent_when_the_link_has_file_blake3() {
    let mut p = Pair::new();
    p.features.file_blake3 = true;
    p.open_link(Side::A);
    p.drive();
    let data = content(35);
    let id = send_unhashed(&mut p, 40, &data);
    p.drive();
    let sent = p.a.sent();
    let offer = sent.iter().find_map(|(_, _, f)| match f {
        PeerFrame::FileOffer(o) => Some(o.clone()),
        _ => None,
    });
    assert_eq!(offer.map(|o| o.sha256), Some(None));
    assert!(!p
        .a
        .log
        .iter()
        .any(|(_, a)| matches!(a, Action::Disk(super::DiskJob::HashSource { .. }))));
    p.command(Side::B, Command::AcceptFile { id });
    p.drive();
    let frames: Vec<PeerFrame> = p.a.sent().into_iter().map(|(_, _, f)| f).collect();
    let last_chunk = frames.iter().rposition(is_chunk);
    let digest = frames
        .iter()
        .position(|f| matches!(f, PeerFrame::FileDigest { .. }));
    assert!(digest > last_chunk, "the digest follows the data");
    assert_eq!(p.b.m.incoming_state("alice", id), Some(RecvState::Done));
    assert_eq!(p.a.m.outgoing_state(id), Some(SendState::Done));
    assert_eq!(p.b.disk.done.get(&id), Some(&data));
    assert_eq!(p.a.history.transfers[&id].sha256, None);
}

/// §8.3.1: a link without `file-blake3` gets a SHA-256 offer; the hash is computed once
/// (HashSource) before it, and recorded for the re-offer after a restart.
#[test]
fn unhashed_file_is_hashed_first_for_a_link_without_file_blake3() {
    let (mut p, _) = Pair::connected();
    let data = content(23);
    let id = send_unhashed(&mut p, 41, &data);
    p.drive();
    let hashes =
        p.a.log
            .iter()
            .filter(|(_, a)| matches!(a, Action::Disk(super::DiskJob::HashSource { .. })))
            .count();
    assert_eq!(hashes, 1);
    use sha2::Digest as _;
    let want: [u8; 32] = sha2::Sha256::digest(&data).into();
    let offer = p.a.sent().iter().find_map(|(_, _, f)| match f {
        PeerFrame::FileOffer(o) => Some(o.clone()),
        _ => None,
    });
    assert_eq!(offer.map(|o| o.sha256), Some(Some(want)));
    assert_eq!(p.a.history.transfers[&id].sha256, Some(want));
    p.command(Side::B, Command::AcceptFile { id });
    p.drive();
    assert_eq!(p.b.disk.done.get(&id), Some(&data));
    assert_eq!(p.a.m.outgoing_state(id), Some(SendState::Done));
}

/// Audit D19: the hash check and the rename are separate jobs; a cancel while the hash is
/// computed wins, and no final file appears.
#[test]
fn d19_cancel_during_verification_leaves_no_final_file() {
    let (mut p, _) = Pair::connected();
    let data = content(25);
    let id = p.send_file(Side::A, 42, &data);
    p.drive();
    p.b.disk.stall_verify = true;
    p.command(Side::B, Command::AcceptFile { id });
    p.drive();
    assert!(matches!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Verifying { .. })
    ));
    p.command(Side::B, Command::CancelTransfer { id });
    p.release_verify(Side::B);
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::Cancelled))
    );
    assert!(!p.b.disk.done.contains_key(&id));
    assert!(!p.b.disk.parts.contains_key(&id));
    assert!(!p
        .b
        .log
        .iter()
        .any(|(_, a)| matches!(a, Action::Disk(super::DiskJob::Rename { .. }))));
}
