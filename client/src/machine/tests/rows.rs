//! One `Pair` scenario per row of SPEC.md §8.5 that `mod.rs` does not already prove. A
//! test's name begins with the rows it proves (`conformance-tests/tests/row_coverage.rs`
//! reads the names and fails if a row of the tables has none). Rows the machine never sees
//! (framing, handshake, hello, the send queue) are proved in the link task and listed there.

use bytes::Bytes;
use peerchat_proto::limits::MAX_OFFERS_IN_FLIGHT;
use peerchat_proto::message::{ChatFrame, FileOfferFrame, InvalidFileFrame, PeerFrame};
use peerchat_proto::wire::{CloseReason, FileCancelReason};
use sha2::{Digest as _, Sha256};

use super::super::transfers::{OfferKey, RecvState, SendState};
use super::super::{
    Action, ClientMachine, Command, DiskJob, FriendEntry, LinkId, OfflineReason, ServerInput,
};
use super::pair::{Node, Pair, Side};
use super::{content, is_chunk, secs, texts, transfer_broken_after};
use crate::events::Event;
use crate::ids::TransferId;

/// Every FileCancel `n` sent for `id` (as a frame or with a raw id), in order.
fn cancels(n: &Node, id: &[u8]) -> Vec<FileCancelReason> {
    n.log
        .iter()
        .filter_map(|(_, a)| match a {
            Action::SendFrame {
                frame: PeerFrame::FileCancel { id: i, reason, .. },
                ..
            } if i[..] == *id => Some(*reason),
            Action::SendRawCancel {
                transfer_id,
                reason,
                ..
            } if transfer_id[..] == *id => Some(*reason),
            _ => None,
        })
        .collect()
}

/// How many frames `n` sent that match `f`.
fn count(n: &Node, f: impl Fn(&PeerFrame) -> bool) -> usize {
    n.sent().iter().filter(|(_, _, x)| f(x)).count()
}

fn offer(id: [u8; 16], name: &str, data: &[u8]) -> PeerFrame {
    PeerFrame::FileOffer(FileOfferFrame {
        id,
        name: name.into(),
        size: data.len() as u64,
        sha256: Some(Sha256::digest(data).into()),
    })
}

fn chunk(id: TransferId, offset: u64, data: &[u8]) -> PeerFrame {
    PeerFrame::FileChunk {
        id: id.0,
        offset,
        data: Bytes::copy_from_slice(data),
    }
}

fn cancel(id: TransferId, reason: FileCancelReason) -> PeerFrame {
    PeerFrame::FileCancel {
        id: id.0,
        reason,
        message: String::new(),
    }
}

fn close(reason: CloseReason) -> PeerFrame {
    PeerFrame::Close {
        reason,
        message: String::new(),
    }
}

fn chat(n: u8, text: &str) -> PeerFrame {
    PeerFrame::Chat(ChatFrame {
        id: [n; 16],
        sent_at_unix_ms: 1,
        text: text.into(),
    })
}

/// Alice offers `len` bytes as transfer `n`; Bob accepts; Alice's reads are held, so Bob is
/// RECEIVING with nothing held.
fn receiving(n: u8, len: usize) -> (Pair, LinkId, TransferId) {
    let (mut p, link) = Pair::connected();
    p.a.disk.stall_reads = true;
    let id = p.send_file(Side::A, n, &content(len));
    p.drive();
    p.command(Side::B, Command::AcceptFile { id });
    p.drive();
    assert!(matches!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Receiving { held: 0, .. })
    ));
    (p, link, id)
}

/// Alice's file `n` of `len` bytes went all the way; both sides DONE.
fn finished(n: u8, len: usize) -> (Pair, LinkId, TransferId) {
    let (mut p, link) = Pair::connected();
    let id = p.send_file(Side::A, n, &content(len));
    p.drive();
    p.command(Side::B, Command::AcceptFile { id });
    p.drive();
    assert_eq!(p.a.m.outgoing_state(id), Some(SendState::Done));
    (p, link, id)
}

// ---- Table L ----

#[test]
fn l7_frames_after_this_side_closed_are_not_processed() {
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
    let sent = p.b.sent().len();
    // CLOSING: a chat and a ping that still arrive are discarded, never answered.
    p.inject(Side::B, link, chat(1, "late"));
    p.inject(Side::B, link, PeerFrame::Ping(5));
    assert!(p.b.history.incoming.is_empty());
    assert_eq!(p.b.sent().len(), sent);
}

#[test]
fn l12_c20_s30_a_link_reaching_open_sends_the_outbox_then_the_offers() {
    let mut p = Pair::new();
    p.reachable = false;
    p.say(Side::A, 1, "queued");
    let id = p.send_file(Side::A, 2, &content(5));
    p.drive();
    assert_eq!(p.a.m.outgoing_state(id), Some(SendState::Suspended));
    let link = p.open_link(Side::A);
    p.drive();
    for n in [&p.a, &p.b] {
        assert!(n
            .events()
            .iter()
            .any(|e| matches!(e, Event::PeerConnected { .. })));
    }
    let kinds: Vec<&str> =
        p.a.sent()
            .iter()
            .filter(|(_, l, _)| *l == link)
            .filter_map(|(_, _, f)| match f {
                PeerFrame::Chat(_) => Some("chat"),
                PeerFrame::FileOffer(_) => Some("offer"),
                _ => None,
            })
            .collect();
    assert_eq!(kinds, ["chat", "offer"], "C20 before S30");
    assert_eq!(texts(&p), ["queued"]);
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::PendingDecision)
    );
}

/// The machine's half of L22/L23: a Pong, matching a Ping or not, is never answered and
/// never closes the link. Sending Pings and treating a matching Pong as activity (L22, L43)
/// are the link task's (`peer/session.rs`, `peer::idle::decide`; the peer suite's fault
/// `pong-not-activity` proves the case fails without it).
#[test]
fn l22_l23_pongs_are_never_answered_and_keep_the_link() {
    let (mut p, link) = Pair::connected();
    let sent = p.a.sent().len();
    p.inject(Side::A, link, PeerFrame::Pong(424242));
    p.inject(Side::A, link, PeerFrame::Pong(0));
    p.drive();
    assert_eq!(p.a.sent().len(), sent, "a Pong is not answered");
    assert!(p.a.closes().is_empty(), "a Pong keeps the link");
}

#[test]
fn l24_a_message_with_no_body_or_an_unknown_case_is_ignored() {
    let (mut p, link) = Pair::connected();
    let sent = p.b.sent().len();
    p.inject(Side::B, link, PeerFrame::Unknown);
    assert_eq!(p.b.sent().len(), sent);
    assert!(p.b.closes().is_empty());
    p.say(Side::A, 1, "still open");
    p.drive();
    assert_eq!(texts(&p), ["still open"]);
}

#[test]
fn l25_chat_ack_and_typing_go_to_table_c() {
    let (mut p, link) = Pair::connected();
    p.inject(Side::B, link, chat(1, "hi"));
    p.inject(Side::B, link, PeerFrame::Typing(true));
    p.drive();
    assert_eq!(texts(&p), ["hi"]);
    assert!(
        p.a.history.delivered.is_empty(),
        "an ack for a message Alice never sent is C9"
    );
    assert_eq!(count(&p.b, |f| matches!(f, PeerFrame::Ack { .. })), 1);
    assert!(p.b.events().contains(&Event::Typing {
        friend: "alice".into(),
        active: true
    }));
}

#[test]
fn l26_file_frames_never_close_the_link() {
    let (mut p, link) = Pair::connected();
    let x = TransferId([0x51; 16]);
    p.inject(Side::B, link, chunk(x, 0, b"x"));
    p.inject(
        Side::B,
        link,
        PeerFrame::FileAccept {
            id: [0x52; 16],
            offset: 0,
        },
    );
    p.inject(Side::B, link, PeerFrame::FileComplete { id: [0x53; 16] });
    p.inject(
        Side::B,
        link,
        cancel(TransferId([0x54; 16]), FileCancelReason::Cancelled),
    );
    p.inject_invalid(
        Side::B,
        link,
        InvalidFileFrame::Offer {
            id: Bytes::from_static(&[1, 2, 3]),
        },
    );
    p.inject_invalid(
        Side::B,
        link,
        InvalidFileFrame::Chunk {
            id: Bytes::from_static(&[4; 16]),
        },
    );
    p.inject_invalid(Side::B, link, InvalidFileFrame::Ignored);
    p.drive();
    assert!(p.b.closes().is_empty());
    p.say(Side::A, 1, "still open");
    p.drive();
    assert_eq!(texts(&p), ["still open"]);
}

/// The friend closes with `reason`; Alice then has a message: when does she dial?
fn after_friend_close(reason: CloseReason) -> (Pair, LinkId, usize) {
    let (mut p, link) = Pair::connected();
    let sent = p.a.sent().len();
    p.inject(Side::A, link, close(reason));
    p.drop_link(link);
    assert!(p.a.closes().contains(&(link, None)), "closed at once");
    assert_eq!(p.a.sent().len(), sent, "nothing sent, not even a Close");
    p.say(Side::A, 1, "after the close");
    (p, link, sent)
}

#[test]
fn l30_l31_close_normal_or_idle_timeout_ends_the_link_and_a_message_dials_at_once() {
    for reason in [CloseReason::Normal, CloseReason::IdleTimeout] {
        let (mut p, _, _) = after_friend_close(reason);
        assert_eq!(p.a.dials.len(), 1, "{reason:?}: dial again when needed");
        p.drive();
        assert_eq!(texts(&p), ["after the close"]);
    }
}

#[test]
fn l32_duplicate_connection_with_no_other_link_is_as_l30() {
    let (mut p, _, _) = after_friend_close(CloseReason::DuplicateConnection);
    assert_eq!(p.a.dials.len(), 1);
    p.drive();
    assert_eq!(texts(&p), ["after the close"]);
}

#[test]
fn l34_l35_rate_limited_or_an_error_close_redials_only_after_the_backoff() {
    for reason in [
        CloseReason::RateLimited,
        CloseReason::ProtocolError,
        CloseReason::FrameTooLarge,
        CloseReason::MalformedFrame,
        CloseReason::Unspecified,
        CloseReason::SessionReplaced,
    ] {
        let (mut p, _, _) = after_friend_close(reason);
        assert!(p.a.dials.is_empty(), "{reason:?}: not at once");
        p.advance(secs(2));
        assert_eq!(p.a.dials.len(), 1, "{reason:?}: after the back-off");
        assert_eq!(texts(&p), ["after the close"]);
    }
}

#[test]
fn l53_going_offline_closes_every_link_normal_and_dials_nothing() {
    let (mut p, link) = Pair::connected();
    p.command(Side::A, Command::GoOffline);
    assert!(p.a.closes().contains(&(link, Some(CloseReason::Normal))));
    let now = p.now;
    let _ = p.a.m.handle_command(
        Command::SendMessage {
            friend: "bob".into(),
            id: crate::ids::MessageId([1; 16]),
            text: "offline".into(),
            sent_at_unix_ms: 1,
        },
        now,
    );
    p.advance(secs(120));
    assert!(p.a.dials.is_empty());
}

#[test]
fn l55_losing_the_server_keeps_the_peer_link() {
    let (mut p, link) = Pair::connected();
    p.server(Side::A, ServerInput::Offline(OfflineReason::Unreachable));
    assert!(p.a.closes().is_empty());
    p.say(Side::A, 1, "via the peer link");
    p.drive();
    assert_eq!(texts(&p), ["via the peer link"]);
    assert!(p
        .a
        .sent()
        .iter()
        .any(|(_, l, f)| *l == link && matches!(f, PeerFrame::Chat(_))));
}

// ---- Table C ----

#[test]
fn c8_an_ack_marks_the_message_delivered() {
    let (mut p, _) = Pair::connected();
    let id = p.say(Side::A, 1, "hi");
    p.drive();
    assert!(p.a.history.delivered.contains(&id));
    assert_eq!(p.a.m.chat.pending("bob"), 0);
    assert!(p
        .a
        .events()
        .iter()
        .any(|e| matches!(e, Event::MessageAcked { message_id, .. } if *message_id == id)));
}

#[test]
fn c9_c10_acks_matching_nothing_or_with_a_bad_id_are_ignored() {
    let (mut p, link) = Pair::connected();
    p.reachable = false;
    p.drop_link(link);
    let id = p.say(Side::A, 1, "unacked");
    p.reachable = true;
    let link = p.open_link(Side::B);
    // Before Alice's re-send arrives: acks for other ids, and one with a 3-byte id.
    let sent = p.a.sent().len();
    p.inject(Side::A, link, PeerFrame::Ack { id: [9; 16] });
    p.inject_invalid(Side::A, link, InvalidFileFrame::Ignored);
    assert!(!p
        .a
        .events()
        .iter()
        .any(|e| matches!(e, Event::MessageAcked { .. })));
    assert!(!p.a.history.delivered.contains(&id));
    assert!(p.a.closes().is_empty());
    assert!(p.a.sent().len() >= sent);
    p.drive();
    assert!(
        p.a.history.delivered.contains(&id),
        "the real ack still counts"
    );
}

#[test]
fn c12_typing_false_hides_at_once() {
    let (mut p, _) = Pair::connected();
    for active in [true, false] {
        p.command(
            Side::A,
            Command::SetTyping {
                friend: "bob".into(),
                active,
            },
        );
        p.drive();
    }
    let typing: Vec<bool> =
        p.b.events()
            .iter()
            .filter_map(|e| match e {
                Event::Typing { active, .. } => Some(*active),
                _ => None,
            })
            .collect();
    assert_eq!(typing, [true, false], "hidden before TYPING_EXPIRY");
}

#[test]
fn c13_a_message_or_a_closed_link_hides_typing() {
    let (mut p, link) = Pair::connected();
    let hidden = |p: &Pair| {
        p.b.events()
            .iter()
            .filter(|e| matches!(e, Event::Typing { active: false, .. }))
            .count()
    };
    p.inject(Side::B, link, PeerFrame::Typing(true));
    p.inject(Side::B, link, chat(1, "done typing"));
    p.drive();
    assert_eq!(hidden(&p), 1, "C1 hides it");
    p.inject(Side::B, link, PeerFrame::Typing(true));
    p.drop_link(link);
    p.run_actions();
    assert_eq!(hidden(&p), 2, "the link CLOSED hides it");
}

#[test]
fn c21_c24_a_message_goes_out_on_the_open_link_or_dials_and_typing_is_never_queued() {
    let (mut p, link) = Pair::connected();
    p.command(
        Side::A,
        Command::SetTyping {
            friend: "bob".into(),
            active: true,
        },
    );
    p.say(Side::A, 1, "now");
    assert_eq!(count(&p.a, |f| matches!(f, PeerFrame::Typing(true))), 1);
    assert!(p
        .a
        .sent()
        .iter()
        .any(|(_, l, f)| *l == link && matches!(f, PeerFrame::Chat(_))));
    p.drive();
    p.reachable = false;
    p.drop_link(link);
    p.command(
        Side::A,
        Command::SetTyping {
            friend: "bob".into(),
            active: true,
        },
    );
    // Past the first redial wait (§7.4): typing alone never dials.
    p.advance(secs(5));
    assert!(p.a.dials.is_empty(), "typing never dials");
    p.say(Side::A, 2, "later");
    assert_eq!(
        p.a.dials.len(),
        1,
        "a message dials (the back-off allows it now)"
    );
    p.reachable = true;
    p.advance(secs(5));
    assert_eq!(texts(&p), ["now", "later"]);
    assert_eq!(
        count(&p.a, |f| matches!(f, PeerFrame::Typing(_))),
        1,
        "the typing of the offline time was not queued"
    );
}

#[test]
fn c22_an_entry_sent_on_a_closed_link_stays_until_acknowledged() {
    let (mut p, link) = Pair::connected();
    p.say(Side::A, 1, "in flight");
    p.drop_link(link);
    assert_eq!(p.a.m.chat.pending("bob"), 1);
    assert!(p.b.history.incoming.is_empty());
    p.advance(secs(2));
    assert_eq!(texts(&p), ["in flight"]);
    assert_eq!(p.a.m.chat.pending("bob"), 0);
}

#[test]
fn c23_s39_a_friendship_that_ends_drops_the_outbox_and_cancels_what_we_send() {
    let mut p = Pair::new();
    p.reachable = false;
    p.say(Side::A, 1, "never sent");
    let id = p.send_file(Side::A, 2, &content(5));
    p.server(
        Side::A,
        ServerInput::FriendRemoved {
            userid: "bob".into(),
        },
    );
    assert_eq!(p.a.m.chat.pending("bob"), 0);
    assert!(matches!(
        p.a.m.outgoing_state(id),
        Some(SendState::Cancelled { .. })
    ));
    let dials = p.a.dials.len();
    p.reachable = true;
    p.advance(secs(120));
    assert_eq!(
        p.a.dials.len(),
        dials,
        "nothing is dialled for a former friend"
    );
    assert!(p.b.history.incoming.is_empty());
}

// ---- Table R ----

#[test]
fn r1_a_reoffer_in_the_links_discard_set_is_not_answered() {
    let (mut p, link) = Pair::connected();
    let data = content(5);
    let id = p.send_file(Side::A, 1, &data);
    p.drive();
    p.command(Side::B, Command::DeclineFile { id });
    p.drive();
    assert_eq!(cancels(&p.b, &id.0), [FileCancelReason::Declined]);
    p.inject(Side::B, link, offer(id.0, "file1.bin", &data));
    assert_eq!(cancels(&p.b, &id.0).len(), 1, "discarded");
    // On another link the id is not in the set: R14 answers.
    p.drop_link(link);
    let l2 = p.open_link(Side::B);
    p.inject(Side::B, l2, offer(id.0, "file1.bin", &data));
    assert_eq!(
        cancels(&p.b, &id.0),
        [FileCancelReason::Declined, FileCancelReason::Declined]
    );
}

#[test]
fn r2_an_invalid_offer_is_refused_and_nothing_recorded() {
    let (mut p, link) = Pair::connected();
    p.inject_invalid(
        Side::B,
        link,
        InvalidFileFrame::Offer {
            id: Bytes::from_static(&[7; 16]),
        },
    );
    p.inject_invalid(
        Side::B,
        link,
        InvalidFileFrame::Offer {
            id: Bytes::from_static(&[8; 3]),
        },
    );
    assert_eq!(cancels(&p.b, &[7; 16]), [FileCancelReason::Invalid]);
    assert_eq!(cancels(&p.b, &[8; 3]), [FileCancelReason::Invalid]);
    assert!(p.b.m.incoming_state("alice", TransferId([7; 16])).is_none());
    assert_eq!(p.b.m.discard_len(link), 2, "both ids enter the discard set");
}

#[test]
fn r3_an_invalid_offer_naming_a_pending_transfer_ends_it() {
    let (mut p, link) = Pair::connected();
    let id = p.send_file(Side::A, 1, &content(5));
    p.drive();
    p.inject_invalid(
        Side::B,
        link,
        InvalidFileFrame::Offer {
            id: Bytes::copy_from_slice(&id.0),
        },
    );
    p.drive();
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::Invalid))
    );
    assert!(matches!(
        p.a.m.outgoing_state(id),
        Some(SendState::Cancelled {
            reason: FileCancelReason::Invalid,
            ..
        })
    ));
}

#[test]
fn r4a_an_offer_beyond_max_offers_in_flight_is_refused() {
    let (mut p, link) = Pair::connected();
    let data = content(3);
    for n in 0..MAX_OFFERS_IN_FLIGHT as u8 {
        p.inject(Side::B, link, offer([n + 1; 16], "f", &data));
    }
    let over = [200u8; 16];
    p.inject(Side::B, link, offer(over, "f", &data));
    assert_eq!(cancels(&p.b, &over), [FileCancelReason::TooManyOffers]);
    assert!(p.b.m.incoming_state("alice", TransferId(over)).is_none());
    assert!(cancels(&p.b, &[1; 16]).is_empty());
}

#[test]
fn r4b_an_offer_larger_than_the_free_space_is_refused() {
    let (mut p, link) = Pair::connected();
    p.b.m.set_free_space(Some(10));
    p.inject(Side::B, link, offer([1; 16], "big", &content(11)));
    p.inject(Side::B, link, offer([2; 16], "fits", &content(10)));
    assert_eq!(cancels(&p.b, &[1; 16]), [FileCancelReason::TooLarge]);
    assert!(p.b.m.incoming_state("alice", TransferId([1; 16])).is_none());
    assert_eq!(
        p.b.m.incoming_state("alice", TransferId([2; 16])),
        Some(RecvState::PendingDecision)
    );
}

#[test]
fn r5_a_valid_offer_asks_the_user_and_is_not_answered() {
    let (mut p, _) = Pair::connected();
    let id = p.send_file(Side::A, 1, &content(5));
    p.drive();
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::PendingDecision)
    );
    assert!(p
        .b
        .events()
        .iter()
        .any(|e| matches!(e, Event::FileOffered { transfer_id, .. } if *transfer_id == id)));
    assert_eq!(
        count(&p.b, |f| matches!(
            f,
            PeerFrame::FileAccept { .. } | PeerFrame::FileCancel { .. }
        )),
        0
    );
}

#[test]
fn r8_an_identical_reoffer_while_pending_is_not_answered_nor_asked_again() {
    let (mut p, link) = Pair::connected();
    let data = content(5);
    let id = p.send_file(Side::A, 1, &data);
    p.drive();
    let sent = p.b.sent().len();
    p.inject(Side::B, link, offer(id.0, "file1.bin", &data));
    assert_eq!(p.b.sent().len(), sent);
    let asked =
        p.b.events()
            .iter()
            .filter(|e| matches!(e, Event::FileOffered { .. }))
            .count();
    assert_eq!(asked, 1);
}

#[test]
fn r10_an_identical_reoffer_on_the_receiving_link_ends_the_transfer() {
    let (mut p, link, id) = receiving(1, 30);
    p.inject(Side::B, link, offer(id.0, "file1.bin", &content(30)));
    assert_eq!(cancels(&p.b, &id.0), [FileCancelReason::Invalid]);
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::Invalid))
    );
    assert!(!p.b.disk.parts.contains_key(&id), ".part deleted");
}

/// R11 cannot happen in the machine: a second link with the friend reaching OPEN closes the
/// first at once (L52, before any frame of either is processed), which suspends the transfer
/// (R53); the re-offer on the winner then finds it SUSPENDED and R9 answers with the same
/// `FileAccept{bytes held}` R11 would have sent. This test shows that path.
#[test]
fn r11_a_reoffer_on_a_second_link_meets_r9_because_l52_closed_the_first() {
    let (mut p, old) = Pair::connected();
    let data = content(100);
    let id = p.send_file(Side::A, 1, &data);
    p.drive();
    p.command(Side::B, Command::AcceptFile { id });
    let mut n = 0;
    p.drive_until(|to, f| {
        if to == Side::B && is_chunk(f) {
            n += 1;
        }
        n == 3
    });
    let new = p.open_link(Side::A);
    p.run_actions();
    assert!(p
        .b
        .closes()
        .contains(&(old, Some(CloseReason::DuplicateConnection))));
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Suspended { held: 30 }),
        "R53 on the loser, before the re-offer"
    );
    p.drive();
    assert!(p.b.sent().iter().any(|(_, l, f)| *l == new
        && *f
            == PeerFrame::FileAccept {
                id: id.0,
                offset: 30
            }));
    assert_eq!(p.b.disk.done.get(&id), Some(&data));
}

#[test]
fn r12_a_reoffer_while_verifying_gets_accept_at_size_then_the_result() {
    let (mut p, _) = Pair::connected();
    let data = content(25);
    p.b.disk.stall_verify = true;
    let id = p.send_file(Side::A, 1, &data);
    p.drive();
    p.command(Side::B, Command::AcceptFile { id });
    p.drive();
    assert!(matches!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Verifying { .. })
    ));
    // Alice reconnects (her newer link wins, L52): AWAITING_COMPLETE → SUSPENDED → re-offer.
    let new = p.open_link(Side::A);
    p.drive();
    assert!(p.b.sent().iter().any(|(_, l, f)| *l == new
        && *f
            == PeerFrame::FileAccept {
                id: id.0,
                offset: 25
            }));
    assert!(matches!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Verifying { .. })
    ));
    p.release_verify(Side::B);
    assert!(p
        .b
        .sent()
        .iter()
        .any(|(_, l, f)| *l == new && *f == PeerFrame::FileComplete { id: id.0 }));
    assert_eq!(p.a.m.outgoing_state(id), Some(SendState::Done));
}

#[test]
fn r22_a_chunk_before_the_accept_withdraws_the_offer() {
    let (mut p, link) = Pair::connected();
    let id = p.send_file(Side::A, 1, &content(5));
    p.drive();
    p.inject(Side::B, link, chunk(id, 0, b"abc"));
    assert_eq!(cancels(&p.b, &id.0), [FileCancelReason::Invalid]);
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::Invalid))
    );
    assert!(p
        .b
        .events()
        .iter()
        .any(|e| matches!(e, Event::TransferCancelled { transfer_id, .. } if *transfer_id == id)));
}

#[test]
fn r23_a_chunk_while_suspended_ends_the_transfer() {
    let (mut p, id, data) = transfer_broken_after(2);
    // Bob's side of a new link is OPEN; a chunk comes before any re-offer.
    let l2 = p.open_link(Side::B);
    p.inject(Side::B, l2, chunk(id, 20, &data[20..30]));
    assert_eq!(cancels(&p.b, &id.0), [FileCancelReason::Invalid]);
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::Invalid))
    );
    assert!(!p.b.disk.parts.contains_key(&id));
}

#[test]
fn r24_r25_r26_a_bad_chunk_ends_the_transfer() {
    for row in ["R24", "R25", "R26"] {
        let (mut p, link, id) = receiving(1, 30);
        match row {
            "R24" => p.inject(Side::B, link, chunk(id, 5, b"gap")),
            "R25" => p.inject_invalid(
                Side::B,
                link,
                InvalidFileFrame::Chunk {
                    id: Bytes::copy_from_slice(&id.0),
                },
            ),
            _ => p.inject(Side::B, link, chunk(id, 0, &content(31))),
        }
        assert_eq!(cancels(&p.b, &id.0), [FileCancelReason::Invalid], "{row}");
        assert_eq!(
            p.b.m.incoming_state("alice", id),
            Some(RecvState::Cancelled(FileCancelReason::Invalid)),
            "{row}"
        );
        assert!(!p.b.disk.parts.contains_key(&id), "{row}: .part deleted");
        assert!(p.b.closes().is_empty(), "{row}: L26");
    }
}

#[test]
fn r27_r40_r50_r51_s3_s33_s37_s11_a_whole_transfer_in_order() {
    let (mut p, _) = Pair::connected();
    let data = content(25);
    let id = p.send_file(Side::A, 1, &data);
    p.drive();
    assert!(matches!(
        p.a.m.outgoing_state(id),
        Some(SendState::Offered { .. })
    ));
    p.command(Side::B, Command::AcceptFile { id });
    // Stop as Bob gets the last chunk: Alice has sent it (S37), his FileComplete is on the way.
    let mut n = 0;
    p.drive_until(|to, f| {
        if to == Side::B && is_chunk(f) {
            n += 1;
        }
        n == 3
    });
    assert!(matches!(
        p.a.m.outgoing_state(id),
        Some(SendState::AwaitingComplete { .. })
    ));
    p.drive();
    assert_eq!(p.a.m.outgoing_state(id), Some(SendState::Done), "S11");
    assert_eq!(p.b.m.incoming_state("alice", id), Some(RecvState::Done));
    assert_eq!(p.b.disk.done.get(&id), Some(&data));
    // Bob: the .part file before FileAccept{0} (R40), appends in order (R27), the hash once
    // every byte is held (R50), FileComplete after it matched (R51).
    let steps: Vec<String> =
        p.b.log
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Disk(DiskJob::CreatePart { .. }) => Some("create".into()),
                Action::Disk(DiskJob::Append { offset, .. }) => Some(format!("append {offset}")),
                Action::Disk(DiskJob::Verify { .. }) => Some("verify".into()),
                Action::SendFrame {
                    frame: PeerFrame::FileAccept { offset, .. },
                    ..
                } => Some(format!("accept {offset}")),
                Action::SendFrame {
                    frame: PeerFrame::FileComplete { .. },
                    ..
                } => Some("complete".into()),
                _ => None,
            })
            .collect();
    assert_eq!(
        steps,
        [
            "create",
            "accept 0",
            "append 0",
            "append 10",
            "append 20",
            "verify",
            "complete"
        ]
    );
    // Alice: chunks from the accepted offset (S3).
    let offsets: Vec<u64> =
        p.a.sent()
            .iter()
            .filter_map(|(_, _, f)| match f {
                PeerFrame::FileChunk { offset, .. } => Some(*offset),
                _ => None,
            })
            .collect();
    assert_eq!(offsets, [0, 10, 20]);
}

#[test]
fn r30_r31_cancels_in_the_discard_set_or_for_unknown_ids_are_ignored() {
    let (mut p, link) = Pair::connected();
    let x = TransferId([0x30; 16]);
    p.inject(Side::B, link, chunk(x, 0, b"x"));
    assert_eq!(
        cancels(&p.b, &x.0).len(),
        1,
        "R21 put it in the discard set"
    );
    let sent = p.b.sent().len();
    p.inject(Side::B, link, cancel(x, FileCancelReason::Cancelled));
    p.inject(
        Side::B,
        link,
        cancel(TransferId([0x31; 16]), FileCancelReason::Cancelled),
    );
    assert_eq!(p.b.sent().len(), sent, "never answered");
    assert!(p
        .b
        .m
        .incoming_state("alice", TransferId([0x31; 16]))
        .is_none());
}

#[test]
fn r32_a_cancel_withdraws_a_pending_offer() {
    let (mut p, link) = Pair::connected();
    let id = p.send_file(Side::A, 1, &content(5));
    p.drive();
    // UNSPECIFIED counts as CANCELLED.
    p.inject(Side::B, link, cancel(id, FileCancelReason::Unspecified));
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::Cancelled))
    );
    assert!(cancels(&p.b, &id.0).is_empty(), "never answered");
}

#[test]
fn r33_a_cancel_ends_a_receiving_transfer_with_its_reason() {
    let (mut p, link, id) = receiving(1, 30);
    p.inject(Side::B, link, cancel(id, FileCancelReason::IoError));
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::IoError))
    );
    assert!(!p.b.disk.parts.contains_key(&id));
    assert!(cancels(&p.b, &id.0).is_empty());
}

/// R34 in the machine: the verification is abandoned, no FileComplete goes out and the
/// outcome stays CANCELLED when the late hash result arrives. (Audit D19: the driver's
/// `Verify` job renames as it hashes, so the final file can still appear on disk; the
/// machine only stops announcing it.)
#[test]
fn r34_a_cancel_while_verifying_abandons_it() {
    let (mut p, link) = Pair::connected();
    p.b.disk.stall_verify = true;
    let id = p.send_file(Side::A, 1, &content(25));
    p.drive();
    p.command(Side::B, Command::AcceptFile { id });
    p.drive();
    assert!(matches!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Verifying { .. })
    ));
    p.inject(Side::B, link, cancel(id, FileCancelReason::Cancelled));
    p.release_verify(Side::B);
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::Cancelled))
    );
    assert_eq!(
        count(&p.b, |f| matches!(f, PeerFrame::FileComplete { .. })),
        0
    );
}

#[test]
fn r42_declining_with_a_link_sends_declined() {
    let (mut p, _) = Pair::connected();
    let id = p.send_file(Side::A, 1, &content(5));
    p.drive();
    p.command(Side::B, Command::DeclineFile { id });
    p.drive();
    assert_eq!(cancels(&p.b, &id.0), [FileCancelReason::Declined]);
    assert_eq!(p.b.m.incoming_state("alice", id), Some(RecvState::Declined));
    assert!(matches!(
        p.a.m.outgoing_state(id),
        Some(SendState::Cancelled {
            reason: FileCancelReason::Declined,
            ..
        })
    ));
}

#[test]
fn r43_the_user_cancels_a_receiving_or_verifying_transfer() {
    let (mut p, _, id) = receiving(1, 30);
    p.command(Side::B, Command::CancelTransfer { id });
    assert_eq!(cancels(&p.b, &id.0), [FileCancelReason::Cancelled]);
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::Cancelled))
    );
    assert!(!p.b.disk.parts.contains_key(&id));

    let (mut p, _) = Pair::connected();
    p.b.disk.stall_verify = true;
    let id = p.send_file(Side::A, 2, &content(5));
    p.drive();
    p.command(Side::B, Command::AcceptFile { id });
    p.drive();
    p.command(Side::B, Command::CancelTransfer { id });
    p.release_verify(Side::B);
    assert_eq!(cancels(&p.b, &id.0), [FileCancelReason::Cancelled]);
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::Cancelled))
    );
}

#[test]
fn r44_cancelling_a_suspended_transfer_answers_the_reoffer() {
    let (mut p, id, _) = transfer_broken_after(2);
    p.reachable = false;
    p.command(Side::B, Command::CancelTransfer { id });
    assert!(cancels(&p.b, &id.0).is_empty(), "nothing now");
    assert!(!p.b.disk.parts.contains_key(&id));
    p.reachable = true;
    p.advance(secs(2));
    assert_eq!(cancels(&p.b, &id.0), [FileCancelReason::Cancelled], "R14");
    assert!(matches!(
        p.a.m.outgoing_state(id),
        Some(SendState::Cancelled {
            reason: FileCancelReason::Cancelled,
            ..
        })
    ));
}

#[test]
fn r45_a_failed_write_cancels_with_io_error() {
    let (mut p, _) = Pair::connected();
    p.b.disk.fail_writes = true;
    let id = p.send_file(Side::A, 1, &content(25));
    p.drive();
    p.command(Side::B, Command::AcceptFile { id });
    p.drive();
    assert_eq!(cancels(&p.b, &id.0), [FileCancelReason::IoError]);
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::IoError))
    );
    assert!(matches!(
        p.a.m.outgoing_state(id),
        Some(SendState::Cancelled {
            reason: FileCancelReason::IoError,
            ..
        })
    ));
}

#[test]
fn r53_s38_a_closed_link_suspends_both_sides_keeping_every_byte() {
    let (mut p, id, _) = transfer_broken_after(3);
    p.run_actions();
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Suspended { held: 30 })
    );
    assert_eq!(p.b.disk.parts[&id].len(), 30);
    assert_eq!(p.a.m.outgoing_state(id), Some(SendState::Suspended));
    for n in [&p.a, &p.b] {
        assert!(n.events().iter().any(
            |e| matches!(e, Event::TransferSuspended { transfer_id, .. } if *transfer_id == id)
        ));
    }
}

#[test]
fn r54_l50_a_friendship_that_ends_cancels_what_we_receive_and_closes_the_link() {
    let (mut p, link, id) = receiving(1, 30);
    p.server(
        Side::B,
        ServerInput::FriendRemoved {
            userid: "alice".into(),
        },
    );
    assert!(p
        .b
        .closes()
        .contains(&(link, Some(CloseReason::NotAFriend))));
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::Cancelled))
    );
    assert!(!p.b.disk.parts.contains_key(&id));
}

/// R55 is a MAY the machine does not take itself: a driver that drops an old `.part` file
/// restores the transfer SUSPENDED with 0 bytes held, and the re-offer resumes from 0.
#[test]
fn r55_a_dropped_part_file_resumes_from_zero() {
    let (mut p, id, data) = transfer_broken_after(3);
    p.reachable = false;
    let config = p.b.m.config().clone();
    p.b.m = ClientMachine::new(config);
    let fa = p.a.fingerprint.clone();
    p.server(
        Side::B,
        ServerInput::LoggedIn {
            friends: vec![FriendEntry {
                userid: "alice".into(),
                fingerprint: fa,
                online: true,
            }],
        },
    );
    p.b.disk.parts.insert(id, Vec::new());
    p.b.m.restore_incoming(
        "alice",
        id,
        OfferKey {
            name: "file1.bin".into(),
            size: data.len() as u64,
            sha256: Sha256::digest(&data).into(),
            streamed: false,
        },
        RecvState::Suspended { held: 0 },
    );
    p.reachable = true;
    p.advance(secs(2));
    let accepts: Vec<u64> =
        p.b.sent()
            .iter()
            .filter_map(|(_, _, f)| match f {
                PeerFrame::FileAccept { offset, .. } => Some(*offset),
                _ => None,
            })
            .collect();
    assert_eq!(accepts, [0, 0], "the first accept, then the resume from 0");
    assert_eq!(p.b.disk.done.get(&id), Some(&data));
}

// ---- Table S ----

#[test]
fn s1_s10_s20_frames_for_an_id_in_the_discard_set_are_discarded() {
    let (mut p, link) = Pair::connected();
    let id = p.send_file(Side::A, 1, &content(5));
    p.drive();
    p.command(Side::B, Command::DeclineFile { id });
    p.drive();
    let ended = p.a.m.outgoing_state(id);
    assert!(matches!(ended, Some(SendState::Cancelled { .. })));
    let sent = p.a.sent().len();
    p.inject(
        Side::A,
        link,
        PeerFrame::FileAccept {
            id: id.0,
            offset: 0,
        },
    );
    p.inject(Side::A, link, PeerFrame::FileComplete { id: id.0 });
    p.inject(Side::A, link, cancel(id, FileCancelReason::HashMismatch));
    assert_eq!(p.a.sent().len(), sent, "S1: not even UNKNOWN_TRANSFER");
    assert_eq!(p.a.m.outgoing_state(id), ended, "S10, S20: unchanged");
}

#[test]
fn s4_an_accept_at_size_sends_no_chunk() {
    let (mut p, link) = Pair::connected();
    let id = p.send_file(Side::A, 1, &content(10));
    p.drive();
    p.inject(
        Side::A,
        link,
        PeerFrame::FileAccept {
            id: id.0,
            offset: 10,
        },
    );
    assert!(matches!(
        p.a.m.outgoing_state(id),
        Some(SendState::AwaitingComplete { .. })
    ));
    assert_eq!(count(&p.a, is_chunk), 0);
}

#[test]
fn s5_an_accept_past_the_size_is_invalid() {
    let (mut p, link) = Pair::connected();
    let id = p.send_file(Side::A, 1, &content(10));
    p.drive();
    p.inject(
        Side::A,
        link,
        PeerFrame::FileAccept {
            id: id.0,
            offset: 11,
        },
    );
    assert_eq!(cancels(&p.a, &id.0), [FileCancelReason::Invalid]);
    assert!(matches!(
        p.a.m.outgoing_state(id),
        Some(SendState::Cancelled {
            reason: FileCancelReason::Invalid,
            ..
        })
    ));
}

#[test]
fn s6_a_second_accept_while_sending_is_invalid() {
    let (mut p, link) = Pair::connected();
    p.a.disk.stall_reads = true;
    let id = p.send_file(Side::A, 1, &content(30));
    p.drive();
    p.inject(
        Side::A,
        link,
        PeerFrame::FileAccept {
            id: id.0,
            offset: 0,
        },
    );
    assert!(matches!(
        p.a.m.outgoing_state(id),
        Some(SendState::Sending { .. })
    ));
    p.inject(
        Side::A,
        link,
        PeerFrame::FileAccept {
            id: id.0,
            offset: 0,
        },
    );
    assert_eq!(cancels(&p.a, &id.0), [FileCancelReason::Invalid]);
    assert!(matches!(
        p.a.m.outgoing_state(id),
        Some(SendState::Cancelled {
            reason: FileCancelReason::Invalid,
            ..
        })
    ));
}

#[test]
fn s7_s21_frames_for_a_finished_transfer_on_a_later_link() {
    let (mut p, link, id) = finished(1, 5);
    p.drop_link(link);
    let l2 = p.open_link(Side::B);
    p.inject(Side::A, l2, cancel(id, FileCancelReason::Cancelled));
    assert!(cancels(&p.a, &id.0).is_empty(), "S21: ignored");
    p.inject(
        Side::A,
        l2,
        PeerFrame::FileAccept {
            id: id.0,
            offset: 0,
        },
    );
    assert_eq!(cancels(&p.a, &id.0), [FileCancelReason::Invalid], "S7");
    assert_eq!(p.a.m.outgoing_state(id), Some(SendState::Done));
}

#[test]
fn s12_complete_for_an_unknown_or_suspended_transfer_is_ignored() {
    let (mut p, id, _) = transfer_broken_after(2);
    let l2 = p.open_link(Side::B);
    // Before Alice's re-offer goes out (her source check is still queued): SUSPENDED.
    let (now, ms) = (p.now, p.unix_ms());
    p.a.m
        .handle_peer_frame(l2, PeerFrame::FileComplete { id: [0x12; 16] }, now, ms);
    p.a.m
        .handle_peer_frame(l2, PeerFrame::FileComplete { id: id.0 }, now, ms);
    assert_eq!(p.a.m.outgoing_state(id), Some(SendState::Suspended));
    p.drive();
    assert_eq!(
        count(&p.a, |f| matches!(f, PeerFrame::FileCancel { .. })),
        0,
        "never answered"
    );
    assert_eq!(
        p.a.m.outgoing_state(id),
        Some(SendState::Done),
        "by the re-offer"
    );
}

#[test]
fn s23_a_cancel_with_any_other_reason_ends_it_with_that_reason() {
    for (sent, kept) in [
        (FileCancelReason::IoError, FileCancelReason::IoError),
        (FileCancelReason::Invalid, FileCancelReason::Invalid),
        (
            FileCancelReason::UnknownTransfer,
            FileCancelReason::UnknownTransfer,
        ),
        (FileCancelReason::Unspecified, FileCancelReason::Cancelled),
    ] {
        let (mut p, link) = Pair::connected();
        let id = p.send_file(Side::A, 1, &content(5));
        p.drive();
        p.inject(Side::A, link, cancel(id, sent));
        assert_eq!(
            p.a.m.outgoing_state(id),
            Some(SendState::Cancelled {
                reason: kept,
                unsent: false
            }),
            "{sent:?}"
        );
        assert!(cancels(&p.a, &id.0).is_empty(), "never answered");
    }
}

#[test]
fn s30_a_suspended_transfer_is_offered_again_identically() {
    let (mut p, id, data) = transfer_broken_after(2);
    p.advance(secs(2));
    let offers: Vec<PeerFrame> =
        p.a.sent()
            .into_iter()
            .filter_map(|(_, _, f)| matches!(f, PeerFrame::FileOffer(_)).then_some(f))
            .collect();
    assert_eq!(offers.len(), 2);
    assert_eq!(offers[0], offers[1]);
    assert_eq!(p.b.disk.done.get(&id), Some(&data));
}

#[test]
fn s33_a_file_picked_with_no_link_is_suspended_until_one_opens() {
    let mut p = Pair::new();
    p.reachable = false;
    let id = p.send_file(Side::A, 1, &content(5));
    assert_eq!(p.a.m.outgoing_state(id), Some(SendState::Suspended));
    assert_eq!(p.a.history.transfers[&id].state, "SUSPENDED", "persisted");
    assert_eq!(count(&p.a, |f| matches!(f, PeerFrame::FileOffer(_))), 0);
    p.reachable = true;
    p.advance(secs(2));
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::PendingDecision)
    );
}

#[test]
fn s34_the_user_cancels_an_offered_transfer() {
    let (mut p, _) = Pair::connected();
    let id = p.send_file(Side::A, 1, &content(5));
    p.drive();
    p.command(Side::A, Command::CancelTransfer { id });
    p.drive();
    assert_eq!(cancels(&p.a, &id.0), [FileCancelReason::Cancelled]);
    assert_eq!(
        p.a.m.outgoing_state(id),
        Some(SendState::Cancelled {
            reason: FileCancelReason::Cancelled,
            unsent: false
        })
    );
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::Cancelled)),
        "R32"
    );
}

#[test]
fn s36_a_failed_read_cancels_with_io_error() {
    let (mut p, _) = Pair::connected();
    let id = p.send_file(Side::A, 1, &content(25));
    p.drive();
    p.a.disk.files.insert("/src/file1".into(), content(12));
    p.command(Side::B, Command::AcceptFile { id });
    p.drive();
    assert_eq!(cancels(&p.a, &id.0), [FileCancelReason::IoError]);
    assert!(matches!(
        p.a.m.outgoing_state(id),
        Some(SendState::Cancelled {
            reason: FileCancelReason::IoError,
            ..
        })
    ));
    assert_eq!(
        p.b.m.incoming_state("alice", id),
        Some(RecvState::Cancelled(FileCancelReason::IoError))
    );
}
