//! End to end: a friend turned malicious (issue #10 items 6 and 7) must not exhaust or
//! freeze its peer (SPEC.md §7.9). Mallory is a real account and a real friend of alice;
//! her client is replaced by raw frames over the peerchat-proto `Channel` with her fixed
//! key, so the attacks are network behaviour: Pings and offers that are never read, offers
//! beyond the cap, offers without data, an offer of 2^64−1 bytes. After each, alice still
//! chats with bob.

mod common;

use std::time::Duration;

use common::*;
use peerchat_client::{Event, PeerCloseReason};
use peerchat_proto::limits::MAX_OFFERS_IN_FLIGHT;
use peerchat_proto::message::{FileOfferFrame, PeerFrame};
use peerchat_proto::wire::{self, ChannelKind, FileCancelReason};
use peerchat_proto::{Channel, LocalIdentity};
use tokio::net::TcpStream;

const MALLORY_KEY: usize = 5;

/// alice and bob (honest, friends) and mallory (a friend of alice whose client is gone).
async fn cast(
    tmp: &std::path::Path,
    tweak_alice: impl FnOnce(&mut peerchat_client::ClientConfig),
) -> (peerchat_server::RunningServer, TestClient, TestClient) {
    let server = start_server(&tmp.join("server")).await;
    let addr = server.local_addr.to_string();
    let mut alice = client_with(&addr, tmp, "alice", 2, tweak_alice).await;
    let mut bob = client(&addr, tmp, "bob", 3).await;
    let mut mallory = client(&addr, tmp, "mallory", MALLORY_KEY).await;
    register_login(&mut alice).await;
    register_login(&mut bob).await;
    register_login(&mut mallory).await;
    befriend(&mut alice, &mut bob).await;
    befriend(&mut mallory, &mut alice).await;
    mallory.client.shutdown().await;
    (server, alice, bob)
}

/// Mallory dials alice's peer port with her real key and completes the hello exchange.
async fn mallory_link(alice: &TestClient) -> Channel<TcpStream> {
    let me = LocalIdentity::new(peerchat_proto::test_keys::identity(MALLORY_KEY)).unwrap();
    let mut chan = Channel::connect(alice.client.peer_addr(), &me, ChannelKind::Peer)
        .await
        .unwrap();
    let hello = PeerFrame::Hello {
        userid: "mallory".into(),
        to_userid: "alice".into(),
        // A version-1 client's hello: no optional features.
        features: Default::default(),
    };
    chan.send(&wire::PeerMessage::from(hello)).await.unwrap();
    let answer = chan.recv::<wire::PeerMessage>().await.unwrap().unwrap();
    assert!(
        matches!(PeerFrame::try_from(answer), Ok(PeerFrame::Hello { .. })),
        "alice admits her friend"
    );
    chan
}

fn offer(n: u32, size: u64) -> wire::PeerMessage {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id[15] = 0xAA;
    PeerFrame::FileOffer(FileOfferFrame {
        id,
        name: format!("bait{n}.bin"),
        size,
        sha256: Some([9; 32]),
    })
    .into()
}

/// Writes `frame(i)` for i = 0.. in batches, never reading, until the connection breaks
/// (alice closed it) or `max` frames went out. Returns how many were written.
async fn flood(
    chan: &mut Channel<TcpStream>,
    max: u32,
    frame: impl Fn(u32) -> wire::PeerMessage,
) -> Option<u32> {
    let mut i = 0;
    while i < max {
        for _ in 0..256 {
            chan.writer.queue(&frame(i)).unwrap();
            i += 1;
        }
        let flushed = tokio::time::timeout(Duration::from_secs(60), chan.writer.flush()).await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Some(i),
            Err(_) => panic!("alice neither read nor closed for 60 s"),
        }
    }
    None
}

/// Reads what alice sent until the connection ends; returns the Close frame's reason, if
/// one arrived before the end.
async fn drain_to_end(chan: &mut Channel<TcpStream>) -> Option<wire::CloseReason> {
    let mut reason = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), chan.recv::<wire::PeerMessage>())
            .await
            .expect("alice ends the connection")
        {
            Ok(Some(m)) => {
                if let Ok(PeerFrame::Close { reason: r, .. }) = PeerFrame::try_from(m) {
                    reason = Some(r);
                }
            }
            Ok(None) | Err(_) => return reason,
        }
    }
}

async fn mallory_is_dropped(alice: &mut TestClient, why: PeerCloseReason) {
    let ev = alice
        .wait_for(
            60,
            "mallory's link closed",
            |e| matches!(e, Event::PeerDisconnected { friend, .. } if friend == "mallory"),
        )
        .await;
    let Event::PeerDisconnected { reason, .. } = ev else {
        unreachable!()
    };
    assert_eq!(reason, why, "closed because {reason}");
}

/// Issue #10 item 6: Pings answered into an unbounded queue while the attacker never read
/// (12 MiB → 3.3 GiB in 25 s). Now one Pong waits at most, and the flood is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_that_is_never_read_is_closed_and_others_are_still_served() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, mut alice, mut bob) = cast(tmp.path(), |_| {}).await;
    let mut chan = mallory_link(&alice).await;

    let written = flood(&mut chan, 2_000_000, |i| {
        PeerFrame::Ping(u64::from(i)).into()
    })
    .await;
    assert!(
        written.is_some(),
        "alice closed the link before 2 000 000 Pings"
    );
    eprintln!("mallory wrote {written:?} Pings before alice closed the link");
    mallory_is_dropped(
        &mut alice,
        PeerCloseReason::Local(wire::CloseReason::RateLimited),
    )
    .await;
    // Whatever alice managed to send before closing ends the stream (Close or reset).
    let _ = drain_to_end(&mut chan).await;

    chat(&mut bob, &mut alice, "still there?").await;
    chat(&mut alice, &mut bob, "yes").await;
    alice.client.shutdown().await;
    bob.client.shutdown().await;
    server.shutdown().await;
}

/// SPEC.md §7.9 rule 1: a friend that provokes answers (here: refused offers) and never
/// reads them fills its link's send budget and is closed as a slow consumer; alice's
/// memory does not grow with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_friend_that_never_reads_its_answers_is_closed_as_a_slow_consumer() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, mut alice, mut bob) = cast(tmp.path(), |c| {
        c.auto_accept = peerchat_client::AutoAccept::Never;
    })
    .await;
    let mut chan = mallory_link(&alice).await;

    // The first MAX_OFFERS_IN_FLIGHT wait for alice's decision; every later one is answered
    // with a FileCancel that mallory never reads.
    let rss_before = rss_kib();
    let written = flood(&mut chan, 5_000_000, |i| offer(i, 10)).await;
    assert!(written.is_some(), "alice closed the link");
    eprintln!(
        "mallory wrote {written:?} offers before alice closed the link; \
         this process's RSS went from {rss_before:?} to {:?} KiB",
        rss_kib()
    );
    mallory_is_dropped(
        &mut alice,
        PeerCloseReason::Local(wire::CloseReason::SlowConsumer),
    )
    .await;

    chat(&mut bob, &mut alice, "still there?").await;
    alice.client.shutdown().await;
    bob.client.shutdown().await;
    server.shutdown().await;
}

/// Issue #10 item 7: 600 offers without data held 519 threads and 511 empty `.part` files,
/// then the client stopped answering; an offer of 2^64−1 bytes was accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_beyond_the_cap_too_large_or_without_data_are_cancelled_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, mut alice, mut bob) = cast(tmp.path(), |c| {
        c.offer_data_timeout = Duration::from_secs(1);
    })
    .await;
    let mut chan = mallory_link(&alice).await;
    let folder = alice.profile.join("downloads").join("mallory");

    // (c) 2^64−1 bytes: refused at once, nothing stored.
    chan.send(&offer(999_999, u64::MAX)).await.unwrap();
    let (id, reason) = next_cancel(&mut chan).await;
    assert_eq!(id[..4], 999_999u32.to_be_bytes());
    assert_eq!(reason, FileCancelReason::TooLarge);

    // (b) The cap: alice auto-accepts (test set-up) the first MAX_OFFERS_IN_FLIGHT, refuses
    // the rest with TOO_MANY_OFFERS; then the accepted ones time out without data.
    let extra = 8;
    let total = MAX_OFFERS_IN_FLIGHT as u32 + extra;
    for n in 0..total {
        chan.writer.queue(&offer(n, 1_000_000)).unwrap();
    }
    chan.writer.flush().await.unwrap();
    let (mut accepted, mut too_many, mut no_data) = (0, 0, 0);
    while no_data < MAX_OFFERS_IN_FLIGHT {
        let m = tokio::time::timeout(Duration::from_secs(30), chan.recv::<wire::PeerMessage>())
            .await
            .expect("alice keeps answering")
            .unwrap()
            .unwrap();
        match PeerFrame::try_from(m).unwrap() {
            PeerFrame::FileAccept { offset, .. } => {
                assert_eq!(offset, 0);
                accepted += 1;
            }
            PeerFrame::FileCancel { reason, .. } => match reason {
                FileCancelReason::TooManyOffers => too_many += 1,
                FileCancelReason::NoData => {
                    assert_eq!(accepted, MAX_OFFERS_IN_FLIGHT, "accepts came first");
                    no_data += 1;
                }
                other => panic!("unexpected cancel {other:?}"),
            },
            PeerFrame::Ping(n) => chan
                .send(&wire::PeerMessage::from(PeerFrame::Pong(n)))
                .await
                .unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        (accepted, too_many, no_data),
        (MAX_OFFERS_IN_FLIGHT, extra as usize, MAX_OFFERS_IN_FLIGHT)
    );
    // No .part litter once the time-out cancelled them.
    let left: Vec<_> = std::fs::read_dir(&folder)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", folder.display());

    // The slots are free again: a new offer is accepted, and alice still answers a Ping.
    chan.send(&offer(5_000, 10)).await.unwrap();
    chan.send(&wire::PeerMessage::from(PeerFrame::Ping(77)))
        .await
        .unwrap();
    let (mut got_accept, mut got_pong) = (false, false);
    while !(got_accept && got_pong) {
        let m = tokio::time::timeout(Duration::from_secs(30), chan.recv::<wire::PeerMessage>())
            .await
            .expect("alice answers")
            .unwrap()
            .unwrap();
        match PeerFrame::try_from(m).unwrap() {
            PeerFrame::FileAccept { .. } => got_accept = true,
            PeerFrame::Pong(77) => got_pong = true,
            _ => {}
        }
    }
    chat(&mut bob, &mut alice, "still there?").await;
    alice.client.shutdown().await;
    bob.client.shutdown().await;
    server.shutdown().await;
}

async fn next_cancel(chan: &mut Channel<TcpStream>) -> ([u8; 16], FileCancelReason) {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), chan.recv::<wire::PeerMessage>())
            .await
            .expect("an answer")
            .unwrap()
            .unwrap();
        if let PeerFrame::FileCancel { id, reason, .. } = PeerFrame::try_from(m).unwrap() {
            return (id, reason);
        }
    }
}

/// This test process's resident memory (alice, bob and mallory together), for the log.
fn rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
