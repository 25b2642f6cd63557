//! End to end: the streamed file hash (SPEC.md §8.3.1) against a friend speaking raw frames.
//! Mallory is a real account and a real friend of alice; her client is replaced by the
//! peerchat-proto `Channel` with her fixed key, once as a version-1 client (a hello without
//! features) and once with `file-blake3`, so each side of the negotiation is checked on the
//! wire: what alice offers and sends, and what she accepts and verifies.

mod common;

use std::time::Duration;

use common::*;
use peerchat_client::Event;
use peerchat_proto::message::{FileOfferFrame, PeerFeatures, PeerFrame};
use peerchat_proto::wire::{self, ChannelKind, FileCancelReason};
use peerchat_proto::{Channel, LocalIdentity};
use tokio::net::TcpStream;

const MALLORY_KEY: usize = 5;

/// alice (a real client) and mallory (a friend of alice whose client is gone).
async fn cast(tmp: &std::path::Path) -> (peerchat_server::RunningServer, TestClient) {
    cast_with(tmp, |_| {}).await
}

async fn cast_with(
    tmp: &std::path::Path,
    tweak_alice: impl FnOnce(&mut peerchat_client::ClientConfig),
) -> (peerchat_server::RunningServer, TestClient) {
    let server = start_server(&tmp.join("server")).await;
    let addr = server.local_addr.to_string();
    let mut alice = client_with(&addr, tmp, "alice", 2, tweak_alice).await;
    let mut mallory = client(&addr, tmp, "mallory", MALLORY_KEY).await;
    register_login(&mut alice).await;
    register_login(&mut mallory).await;
    befriend(&mut mallory, &mut alice).await;
    mallory.client.shutdown().await;
    (server, alice)
}

/// Mallory dials alice and exchanges hellos naming `features`; returns the channel and the
/// features alice named.
async fn mallory_link(
    alice: &mut TestClient,
    features: PeerFeatures,
) -> (Channel<TcpStream>, PeerFeatures) {
    let me = LocalIdentity::new(peerchat_proto::test_keys::identity(MALLORY_KEY)).unwrap();
    let mut chan = Channel::connect(alice.client.peer_addr(), &me, ChannelKind::Peer)
        .await
        .unwrap();
    let hello = PeerFrame::Hello {
        userid: "mallory".into(),
        to_userid: "alice".into(),
        features,
    };
    chan.send(&wire::PeerMessage::from(hello)).await.unwrap();
    let answer = chan.recv::<wire::PeerMessage>().await.unwrap().unwrap();
    let Ok(PeerFrame::Hello {
        features: alices, ..
    }) = PeerFrame::try_from(answer)
    else {
        panic!("alice admits her friend");
    };
    // Both named aes-gcm (AES hardware on both ends): switch as SPEC.md §3.2.1 says, so the
    // transfers below run over AES-256-GCM; otherwise they stay on ChaChaPoly.
    if features.common(alices).aes_gcm {
        chan.writer.switch_to_aes_gcm().unwrap();
        chan.reader.switch_to_aes_gcm().unwrap();
    }
    let features = alices;
    alice
        .wait_for(20, "the link to mallory", |e| {
            matches!(e, Event::PeerConnected { .. })
        })
        .await;
    (chan, features)
}

async fn next_frame(chan: &mut Channel<TcpStream>) -> PeerFrame {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), chan.recv::<wire::PeerMessage>())
            .await
            .expect("alice answers")
            .unwrap()
            .expect("the connection stays open");
        match PeerFrame::try_from(m).unwrap() {
            PeerFrame::Ping(_) | PeerFrame::Pong(_) | PeerFrame::Typing(_) => continue,
            f => return f,
        }
    }
}

fn content() -> Vec<u8> {
    // Several FileChunks and BLAKE3 chunks, not a multiple of either.
    (0..700_001u32).map(|i| (i % 251) as u8).collect()
}

/// Accepts alice's offer from `from`, collects the chunks and what follows the last one.
async fn receive(chan: &mut Channel<TcpStream>, id: [u8; 16], from: u64, size: u64) -> Vec<u8> {
    chan.send(&wire::PeerMessage::from(PeerFrame::FileAccept {
        id,
        offset: from,
    }))
    .await
    .unwrap();
    let mut got = Vec::new();
    while (from + got.len() as u64) < size {
        match next_frame(chan).await {
            PeerFrame::FileChunk { offset, data, .. } => {
                assert_eq!(offset, from + got.len() as u64);
                got.extend_from_slice(&data);
            }
            other => panic!("expected a chunk, got {other:?}"),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_friend_gets_a_sha256_offer_and_no_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, mut alice) = cast(tmp.path()).await;
    let (mut chan, alices) = mallory_link(&mut alice, PeerFeatures::default()).await;
    assert_eq!(
        alices,
        PeerFeatures::local(false),
        "alice names what she supports"
    );

    let data = content();
    let src = tmp.path().join("report.bin");
    std::fs::write(&src, &data).unwrap();
    let id = alice.client.send_file("mallory", &src).await.unwrap();
    let PeerFrame::FileOffer(offer) = next_frame(&mut chan).await else {
        panic!("an offer");
    };
    assert_eq!(offer.id, id.0);
    assert_eq!(
        offer.sha256,
        Some(sha256_file(&src)),
        "computed because this friend cannot take a streamed offer"
    );
    let got = receive(&mut chan, offer.id, 0, offer.size).await;
    assert_eq!(got, data);
    chan.send(&wire::PeerMessage::from(PeerFrame::FileComplete {
        id: offer.id,
    }))
    .await
    .unwrap();
    alice
        .wait_for(
            20,
            "TransferComplete",
            |e| matches!(e, Event::TransferComplete { transfer_id, .. } if *transfer_id == id),
        )
        .await;

    // A streamed offer from a version-1 link is invalid (SPEC.md §8.3.1 rule 1).
    let streamed = PeerFrame::FileOffer(FileOfferFrame {
        id: [7; 16],
        name: "x.bin".into(),
        size: 5,
        sha256: None,
    });
    chan.send(&wire::PeerMessage::from(streamed)).await.unwrap();
    match next_frame(&mut chan).await {
        PeerFrame::FileCancel { id, reason, .. } => {
            assert_eq!((id, reason), ([7; 16], FileCancelReason::Invalid))
        }
        other => panic!("expected FileCancel, got {other:?}"),
    }
    alice.client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_file_blake3_the_offer_has_no_hash_and_the_digest_follows_the_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, mut alice) = cast(tmp.path()).await;
    let (mut chan, _) = mallory_link(&mut alice, PeerFeatures::ALL).await;

    let data = content();
    let src = tmp.path().join("report.bin");
    std::fs::write(&src, &data).unwrap();
    let id = alice.client.send_file("mallory", &src).await.unwrap();
    let PeerFrame::FileOffer(offer) = next_frame(&mut chan).await else {
        panic!("an offer");
    };
    assert_eq!((offer.id, offer.sha256), (id.0, None), "no pre-hash");
    // As if resuming: mallory holds the first 300,000 bytes.
    let from = 300_000u64;
    let got = receive(&mut chan, offer.id, from, offer.size).await;
    assert_eq!(got, &data[from as usize..]);
    match next_frame(&mut chan).await {
        PeerFrame::FileDigest { id, blake3 } => {
            assert_eq!(id, offer.id);
            assert_eq!(
                blake3,
                *blake3::hash(&data).as_bytes(),
                "the whole file, the prefix mallory held included"
            );
        }
        other => panic!("expected FileDigest, got {other:?}"),
    }
    chan.send(&wire::PeerMessage::from(PeerFrame::FileComplete {
        id: offer.id,
    }))
    .await
    .unwrap();
    alice
        .wait_for(
            20,
            "TransferComplete",
            |e| matches!(e, Event::TransferComplete { transfer_id, .. } if *transfer_id == id),
        )
        .await;
    alice.client.shutdown().await;
    server.shutdown().await;
}

/// Mallory offers `data` streamed, alice (auto-accepting) takes it; mallory ends with
/// `digest`. Returns alice's answer after the digest.
async fn offer_to_alice(chan: &mut Channel<TcpStream>, n: u8, data: &[u8], digest: [u8; 32]) {
    let id = [n; 16];
    let offer = PeerFrame::FileOffer(FileOfferFrame {
        id,
        name: format!("from-mallory-{n}.bin"),
        size: data.len() as u64,
        sha256: None,
    });
    chan.send(&wire::PeerMessage::from(offer)).await.unwrap();
    match next_frame(chan).await {
        PeerFrame::FileAccept { offset: 0, .. } => {}
        other => panic!("expected FileAccept from 0, got {other:?}"),
    }
    for (i, piece) in data.chunks(200_000).enumerate() {
        let chunk = PeerFrame::FileChunk {
            id,
            offset: (i * 200_000) as u64,
            data: bytes::Bytes::copy_from_slice(piece),
        };
        chan.send(&wire::PeerMessage::from(chunk)).await.unwrap();
    }
    chan.send(&wire::PeerMessage::from(PeerFrame::FileDigest {
        id,
        blake3: digest,
    }))
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_verifies_a_streamed_file_against_its_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, mut alice) = cast(tmp.path()).await;
    let (mut chan, _) = mallory_link(&mut alice, PeerFeatures::ALL).await;
    let data = content();

    offer_to_alice(&mut chan, 1, &data, *blake3::hash(&data).as_bytes()).await;
    match next_frame(&mut chan).await {
        PeerFrame::FileComplete { id } => assert_eq!(id, [1; 16]),
        other => panic!("expected FileComplete, got {other:?}"),
    }
    let Event::TransferComplete { path, .. } = alice
        .wait_for(20, "TransferComplete", |e| {
            matches!(e, Event::TransferComplete { .. })
        })
        .await
    else {
        unreachable!()
    };
    assert_eq!(std::fs::read(&path).unwrap(), data);

    let mut wrong = *blake3::hash(&data).as_bytes();
    wrong[0] ^= 1;
    offer_to_alice(&mut chan, 2, &data, wrong).await;
    match next_frame(&mut chan).await {
        PeerFrame::FileCancel { id, reason, .. } => {
            assert_eq!((id, reason), ([2; 16], FileCancelReason::HashMismatch))
        }
        other => panic!("expected HASH_MISMATCH, got {other:?}"),
    }
    let folder = alice.profile.join("downloads").join("mallory");
    let left: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["from-mallory-1.bin".to_owned()], "no part left");
    alice.client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_that_never_comes_ends_the_transfer_as_no_data() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, mut alice) = cast_with(tmp.path(), |c| {
        c.offer_data_timeout = Duration::from_secs(1);
    })
    .await;
    let (mut chan, _) = mallory_link(&mut alice, PeerFeatures::ALL).await;
    let id = [3; 16];
    let offer = PeerFrame::FileOffer(FileOfferFrame {
        id,
        name: "never.bin".into(),
        size: 4,
        sha256: None,
    });
    chan.send(&wire::PeerMessage::from(offer)).await.unwrap();
    assert!(matches!(
        next_frame(&mut chan).await,
        PeerFrame::FileAccept { .. }
    ));
    let chunk = PeerFrame::FileChunk {
        id,
        offset: 0,
        data: bytes::Bytes::from_static(b"data"),
    };
    chan.send(&wire::PeerMessage::from(chunk)).await.unwrap();
    // All bytes are in; no FileDigest follows (SPEC.md §8.3.1 rule 4, §8.3 rule 3a).
    match next_frame(&mut chan).await {
        PeerFrame::FileCancel {
            id: got, reason, ..
        } => {
            assert_eq!((got, reason), (id, FileCancelReason::NoData))
        }
        other => panic!("expected NO_DATA, got {other:?}"),
    }
    let folder = alice.profile.join("downloads").join("mallory");
    alice
        .wait_for(20, "the cancel", |e| {
            matches!(e, Event::TransferCancelled { .. })
        })
        .await;
    // The writer thread removes the part after the cancel: wait for that fact.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&folder).map_or(0, |d| d.count()) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the part file is removed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    alice.client.shutdown().await;
    server.shutdown().await;
}
