//! Property tests: random bytes at every layer give a typed error or a valid value, never a
//! panic or an unbounded allocation (SPEC.md §3.5).

use bytes::BytesMut;
use peerchat_proto::handshake::{Handshake, LocalIdentity, Role};
use peerchat_proto::message::{ClientFrame, PeerFrame, ServerFrame};
use peerchat_proto::record::RecordCodec;
use peerchat_proto::transport::Transport;
use peerchat_proto::wire::{self, ChannelKind};
use proptest::prelude::*;
use prost::Message as _;
use tokio_util::codec::Decoder as _;

mod identity {
    pub use peerchat_proto::identity::*;
}
#[path = "../src/test_keys.rs"]
#[allow(dead_code)]
mod test_keys;

fn identities() -> &'static (LocalIdentity, LocalIdentity) {
    static ONCE: std::sync::OnceLock<(LocalIdentity, LocalIdentity)> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        (
            LocalIdentity::new(test_keys::identity(0)).unwrap(),
            LocalIdentity::new(test_keys::identity(1)).unwrap(),
        )
    })
}

fn transports() -> (Transport, Transport) {
    let (a, b) = identities();
    let mut i = Handshake::new(a, Role::Initiator, ChannelKind::Peer).unwrap();
    let mut r = Handshake::new(b, Role::Responder, ChannelKind::Peer).unwrap();
    r.read_message(&i.write_message().unwrap()).unwrap();
    i.read_message(&r.write_message().unwrap()).unwrap();
    r.read_message(&i.write_message().unwrap()).unwrap();
    (i.finish().unwrap().0, r.finish().unwrap().0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn record_codec_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)) {
        let mut buf = BytesMut::new();
        for c in chunks {
            buf.extend_from_slice(&c);
            // An error ends the stream for the connection; only what decodes is checked.
            while let Ok(Some(r)) = RecordCodec.decode(&mut buf) {
                prop_assert!(!r.is_empty() && r.len() <= 65_535);
            }
        }
        let _ = RecordCodec.decode_eof(&mut buf);
    }

    #[test]
    fn responder_handshake_rejects_garbage(msg in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (_, b) = identities();
        let mut r = Handshake::new(b, Role::Responder, ChannelKind::Peer).unwrap();
        // Message 1 must be exactly 32 bytes with an empty payload; anything else is an error,
        // and 32 random bytes are a (meaningless but valid) ephemeral key.
        let res = r.read_message(&msg);
        prop_assert_eq!(res.is_ok(), msg.len() == 32);
    }

    #[test]
    fn initiator_handshake_rejects_garbage_message_two(msg in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (a, _) = identities();
        let mut i = Handshake::new(a, Role::Initiator, ChannelKind::Peer).unwrap();
        let _ = i.write_message().unwrap();
        // A 32-byte record is a message 1 of a TCP simultaneous open (SPEC.md §4.7): it is
        // consumed (as a tie-break) unless it equals ours; every other garbage is an error.
        prop_assert_eq!(i.read_message(&msg).is_ok(), msg.len() == 32);
    }

    #[test]
    fn server_initiator_rejects_every_garbage_message_two(msg in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (a, _) = identities();
        let mut i = Handshake::new(a, Role::Initiator, ChannelKind::ClientServer).unwrap();
        let _ = i.write_message().unwrap();
        prop_assert!(i.read_message(&msg).is_err());
    }

    #[test]
    fn opener_rejects_forged_records(rec in proptest::collection::vec(any::<u8>(), 1..2000)) {
        let (_, mut t) = transports();
        prop_assert!(t.opener.open_record(&rec).is_err());
    }

    #[test]
    fn random_frames_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(m) = wire::ClientMessage::decode(&bytes[..]) {
            let _ = ClientFrame::from(m);
        }
        if let Ok(m) = wire::ServerMessage::decode(&bytes[..]) {
            let _ = ServerFrame::try_from(m);
        }
        if let Ok(m) = wire::PeerMessage::decode(&bytes[..]) {
            let _ = PeerFrame::try_from(m);
        }
    }

    #[test]
    fn any_plaintext_stream_yields_frames_or_a_typed_error(stream in proptest::collection::vec(any::<u8>(), 0..4000)) {
        let (mut ti, mut tr) = transports();
        ti.sealer.queue_raw_plaintext(&stream);
        let mut out = BytesMut::new();
        ti.sealer.flush(&mut out).unwrap();
        while let Some(rec) = RecordCodec.decode(&mut out).unwrap() {
            if tr.opener.open_record(&rec).is_err() { return Ok(()); }
        }
        while let Ok(Some(f)) = tr.opener.next_frame() {
            prop_assert!(f.len() <= peerchat_proto::limits::MAX_FRAME);
        }
    }
}
