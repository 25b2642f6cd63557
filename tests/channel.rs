//! The channel over real loopback TCP: a full handshake and frames both ways, and hostile
//! input from the other side giving typed errors (SPEC.md §3, §4).

use std::time::Duration;

use bytes::BytesMut;
use peerchat_proto::handshake::{Handshake, LocalIdentity, Role};
use peerchat_proto::record::{put_record, RecordCodec};
use peerchat_proto::transport::Transport;
use peerchat_proto::wire::{self, ChannelKind};
use peerchat_proto::{Channel, ChannelError, FrameError, HandshakeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder as _;

mod identity {
    pub use peerchat_proto::identity::*;
}
#[path = "../src/test_keys.rs"]
#[allow(dead_code)]
mod test_keys;

fn local(n: usize) -> LocalIdentity {
    LocalIdentity::new(test_keys::identity(n)).unwrap()
}

async fn listener() -> (TcpListener, std::net::SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// Accepts one connection and runs the responder side of the handshake.
fn serve_one(
    l: TcpListener,
    me: LocalIdentity,
    kind: ChannelKind,
) -> tokio::task::JoinHandle<Result<Channel<TcpStream>, ChannelError>> {
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        Channel::handshake(s, &me, Role::Responder, kind, Duration::from_secs(5)).await
    })
}

/// A hand-driven initiator: the handshake through the sans-IO API over a raw socket, so the test
/// can then send bytes a correct channel never would.
async fn raw_initiator(
    addr: std::net::SocketAddr,
    me: &LocalIdentity,
    kind: ChannelKind,
) -> (TcpStream, Transport) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut hs = Handshake::new(me, Role::Initiator, kind).unwrap();
    let mut buf = BytesMut::new();
    while !hs.is_finished() {
        if hs.is_my_turn() {
            let mut out = BytesMut::new();
            put_record(&mut out, &hs.write_message().unwrap()).unwrap();
            s.write_all(&out).await.unwrap();
        } else {
            let rec = loop {
                if let Some(r) = RecordCodec.decode(&mut buf).unwrap() {
                    break r;
                }
                assert!(s.read_buf(&mut buf).await.unwrap() > 0);
            };
            hs.read_message(&rec).unwrap();
        }
    }
    (s, hs.finish().unwrap().0)
}

#[tokio::test]
async fn messages_flow_both_ways_including_a_maximum_size_frame() {
    let (l, addr) = listener().await;
    let server = serve_one(l, local(1), ChannelKind::ClientServer);
    let client_id = local(0);
    let mut client = Channel::connect(addr, &client_id, ChannelKind::ClientServer)
        .await
        .unwrap();
    let mut server = server.await.unwrap().unwrap();
    assert_eq!(server.remote.identity_key, *client_id.public_key());
    assert_eq!(client.remote.identity_key, *test_keys::identity(1).public());

    let find = wire::ClientMessage {
        request_id: 7,
        body: Some(wire::client_message::Body::Find(wire::Find {
            userid: "alice".into(),
        })),
    };
    client.send(&find).await.unwrap();
    let got: wire::ClientMessage = server.recv().await.unwrap().unwrap();
    assert_eq!(got, find);

    // A frame of exactly MAX_FRAME bytes spans many records and arrives whole.
    let big = wire::PeerMessage {
        body: Some(wire::peer_message::Body::FileChunk(wire::FileChunk {
            transfer_id: vec![1u8; 16].into(),
            offset: 0,
            data: vec![0xabu8; peerchat_proto::limits::MAX_FRAME - 32].into(),
        })),
    };
    let len = prost::Message::encoded_len(&big);
    assert!(
        len <= peerchat_proto::limits::MAX_FRAME && len > peerchat_proto::limits::MAX_FRAME - 64
    );
    server.send(&big).await.unwrap();
    let back: wire::PeerMessage = client.recv().await.unwrap().unwrap();
    assert_eq!(back, big);

    // Clean close between frames reads as None.
    drop(server);
    assert!(client
        .recv::<wire::ServerMessage>()
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn initiator_refuses_an_unexpected_responder_before_revealing_itself() {
    let (l, addr) = listener().await;
    let server = serve_one(l, local(1), ChannelKind::ClientServer);
    let expected = test_keys::identity(2).public().clone();
    let err = Channel::connect_verified(addr, &local(0), ChannelKind::ClientServer, |k| {
        *k == expected
    })
    .await
    .err()
    .unwrap();
    assert!(
        matches!(
            err,
            ChannelError::Handshake(HandshakeError::UnexpectedRemoteKey(_))
        ),
        "{err}"
    );
    // The responder never got message 3.
    let server_err = server.await.unwrap().err().unwrap();
    assert!(
        matches!(
            server_err,
            ChannelError::ClosedDuringHandshake | ChannelError::Io(_)
        ),
        "{server_err}"
    );
}

#[tokio::test]
async fn wrong_channel_kind_fails_the_handshake() {
    let (l, addr) = listener().await;
    let server = serve_one(l, local(1), ChannelKind::Peer);
    let err = Channel::connect(addr, &local(0), ChannelKind::ClientServer)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            ChannelError::Handshake(HandshakeError::WrongChannelKind { .. })
        ),
        "{err}"
    );
    assert!(server.await.unwrap().is_err());
}

#[tokio::test]
async fn a_stalled_handshake_times_out() {
    let (l, addr) = listener().await;
    let me = local(1);
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        Channel::handshake(
            s,
            &me,
            Role::Responder,
            ChannelKind::ClientServer,
            Duration::from_millis(300),
        )
        .await
    });
    let _silent = TcpStream::connect(addr).await.unwrap();
    let err = server.await.unwrap().err().unwrap();
    assert!(matches!(err, ChannelError::HandshakeTimeout(_)), "{err}");
}

#[tokio::test]
async fn garbage_before_the_handshake_is_a_typed_error() {
    let (l, addr) = listener().await;
    let server = serve_one(l, local(1), ChannelKind::ClientServer);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"\x00\x05GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let err = server.await.unwrap().err().unwrap();
    assert!(
        matches!(err, ChannelError::Handshake(_) | ChannelError::Frame(_)),
        "{err}"
    );
}

async fn server_error_after(raw_plaintext: &[u8], tamper: bool, then_close: bool) -> ChannelError {
    let (l, addr) = listener().await;
    let server = serve_one(l, local(1), ChannelKind::ClientServer);
    let (mut s, mut t) = raw_initiator(addr, &local(0), ChannelKind::ClientServer).await;
    let mut server = server.await.unwrap().unwrap();
    t.sealer.queue_raw_plaintext(raw_plaintext);
    let mut out = BytesMut::new();
    t.sealer.flush(&mut out).unwrap();
    if tamper {
        let last = out.len() - 1;
        out[last] ^= 0x01;
    }
    s.write_all(&out).await.unwrap();
    if then_close {
        s.shutdown().await.unwrap();
    }
    let res = tokio::time::timeout(Duration::from_secs(5), server.recv::<wire::ClientMessage>())
        .await
        .unwrap();
    res.err().unwrap()
}

#[tokio::test]
async fn a_flipped_ciphertext_byte_is_a_decrypt_error() {
    let err = server_error_after(&[0, 0, 0, 2, 8, 1], true, false).await;
    assert!(
        matches!(err, ChannelError::Frame(FrameError::Decrypt)),
        "{err}"
    );
    assert_eq!(err.close_reason(), None);
}

#[tokio::test]
async fn an_oversized_length_prefix_is_rejected_before_allocation() {
    let err = server_error_after(&(2u32 << 20).to_be_bytes(), false, false).await;
    assert!(
        matches!(
            err,
            ChannelError::Frame(FrameError::FrameTooLarge { len: 2_097_152, .. })
        ),
        "{err}"
    );
    assert_eq!(err.close_reason(), Some(wire::CloseReason::FrameTooLarge));
}

#[tokio::test]
async fn a_truncated_frame_is_reported_as_such() {
    let err = server_error_after(&[0, 0, 0, 100, 1, 2, 3], false, true).await;
    assert!(
        matches!(err, ChannelError::Frame(FrameError::Truncated("frame"))),
        "{err}"
    );
}

#[tokio::test]
async fn an_invalid_protobuf_is_a_decode_error() {
    // Field 1 with wire type 7 (invalid).
    let err = server_error_after(&[0, 0, 0, 2, 0x0f, 0x01], false, false).await;
    assert!(matches!(err, ChannelError::Decode(_)), "{err}");
    assert_eq!(err.close_reason(), Some(wire::CloseReason::MalformedFrame));
}

/// Releasing the idle buffers (what the server does between requests, issue #14) never loses
/// bytes: a frame already read behind the one taken stays, and a maximum-size frame still
/// arrives whole through buffers that start small again.
#[tokio::test]
async fn releasing_idle_buffers_keeps_buffered_frames_and_large_frames_work_after() {
    let (l, addr) = listener().await;
    let server = serve_one(l, local(1), ChannelKind::ClientServer);
    let client_id = local(0);
    let mut client = Channel::connect(addr, &client_id, ChannelKind::ClientServer)
        .await
        .unwrap();
    let mut server = server.await.unwrap().unwrap();
    let ping = |n: u64| wire::ClientMessage {
        request_id: n,
        body: Some(wire::client_message::Body::Find(wire::Find {
            userid: format!("user{n}"),
        })),
    };
    // Two frames in one record: after the first is taken, the second waits decrypted.
    client.writer.queue(&ping(1)).unwrap();
    client.writer.queue(&ping(2)).unwrap();
    client.writer.flush().await.unwrap();
    client.writer.release_idle_buffers();
    assert_eq!(
        server.reader.recv::<wire::ClientMessage>().await.unwrap(),
        Some(ping(1))
    );
    server.reader.release_idle_buffers();
    assert_eq!(
        server.reader.recv::<wire::ClientMessage>().await.unwrap(),
        Some(ping(2))
    );
    server.reader.release_idle_buffers();

    let big = wire::PeerMessage {
        body: Some(wire::peer_message::Body::FileChunk(wire::FileChunk {
            transfer_id: vec![1u8; 16].into(),
            offset: 0,
            data: vec![0xcdu8; peerchat_proto::limits::MAX_FRAME - 32].into(),
        })),
    };
    server.writer.send(&big).await.unwrap();
    server.writer.release_idle_buffers();
    client.reader.release_idle_buffers();
    assert_eq!(
        client.reader.recv::<wire::PeerMessage>().await.unwrap(),
        Some(big)
    );
    client.send(&ping(3)).await.unwrap();
    assert_eq!(
        server.recv::<wire::ClientMessage>().await.unwrap(),
        Some(ping(3))
    );
}
