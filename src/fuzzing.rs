//! Entry points shared by the `cargo fuzz` targets (`fuzz/fuzz_targets/`) and the corpus
//! replay test (`tests/fuzz_corpus.rs`), so that what nightly fuzzing explores and what the
//! ordinary test run replays is one function per decoder.
//!
//! Each function takes arbitrary bytes and must return without panicking, whatever they are;
//! where a decoder accepts its input, it also checks the obvious property (re-encoding the
//! accepted value decodes to the same value). Compiled only with the `fuzzing` feature.

use bytes::BytesMut;
use prost::Message as _;
use tokio_util::codec::Decoder as _;

use crate::handshake::{Handshake, LocalIdentity, Role};
use crate::identity::IdentityKey;
use crate::limits::MAX_RECORD;
use crate::message::{ClientFrame, PeerFrame, ServerFrame};
use crate::record::RecordCodec;
use crate::transport::FrameSplitter;
use crate::wire::{self, ChannelKind};

/// The record codec (SPEC.md §3.1) fed `data` in pieces whose sizes come from the input.
pub fn record_codec(data: &[u8]) {
    let mut buf = BytesMut::new();
    for chunk in chunks(data) {
        buf.extend_from_slice(chunk);
        while let Ok(Some(r)) = RecordCodec.decode(&mut buf) {
            assert!(!r.is_empty() && r.len() <= MAX_RECORD);
        }
    }
    let _ = RecordCodec.decode_eof(&mut buf);
}

/// The frame splitter (SPEC.md §3.3) on a decrypted stream arriving in pieces; every frame
/// is then decoded as each of the three envelopes.
pub fn frames(data: &[u8]) {
    let mut s = FrameSplitter::default();
    for chunk in chunks(data) {
        if s.push(chunk).is_err() {
            return;
        }
        loop {
            match s.next_frame() {
                Ok(Some(f)) => {
                    client_message(&f);
                    server_message(&f);
                    peer_message(&f);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        // Never more than one maximal frame plus its header is held.
        assert!(s.buffered() <= crate::limits::MAX_FRAME + 4 + chunk.len());
    }
}

/// A client→server frame as the server decodes it (SPEC.md §4.6); accepted requests
/// re-encode to themselves.
pub fn client_message(data: &[u8]) {
    let Ok(m) = wire::ClientMessage::decode(data) else {
        return;
    };
    if let ClientFrame::Request {
        id,
        request: Ok(req),
    } = ClientFrame::from(m)
    {
        let again = ClientFrame::from(req.clone().into_message(id));
        assert_eq!(
            again,
            ClientFrame::Request {
                id,
                request: Ok(req)
            }
        );
    }
}

/// A server→client frame as a client decodes it; accepted frames re-encode to themselves.
pub fn server_message(data: &[u8]) {
    let Ok(m) = wire::ServerMessage::decode(data) else {
        return;
    };
    if let Ok(f) = ServerFrame::try_from(m) {
        if f != ServerFrame::Unknown {
            let again = ServerFrame::try_from(f.to_message());
            assert_eq!(again.as_ref().ok(), Some(&f));
        }
    }
}

/// A peer frame as a peer decodes it (SPEC.md §7–§8).
pub fn peer_message(data: &[u8]) {
    let Ok(m) = wire::PeerMessage::decode(data) else {
        return;
    };
    if let Ok(f) = PeerFrame::try_from(m) {
        let again = PeerFrame::try_from(wire::PeerMessage::from(f.clone()));
        assert_eq!(again.ok(), Some(f));
    }
}

/// The handshake (SPEC.md §4): `data` as message 1 to a responder, as message 2 to a peer
/// and a server initiator (including the simultaneous-open path of §4.7), as a
/// HandshakePayload and as an identity key.
pub fn handshake(data: &[u8]) {
    let (a, b) = identities();
    if let Ok(mut r) = Handshake::new(b, Role::Responder, ChannelKind::Peer) {
        let _ = r.read_message(data);
    }
    for kind in [
        ChannelKind::Peer,
        ChannelKind::ClientServer,
        ChannelKind::Relay,
    ] {
        if let Ok(mut i) = Handshake::new(a, Role::Initiator, kind) {
            if i.write_message().is_ok() {
                let _ = i.read_message(data);
                let _ = i.read_message(data);
            }
        }
    }
    let _ = wire::HandshakePayload::decode(data);
    let _ = IdentityKey::from_der(data);
}

/// The AES-256-GCM record path of a peer connection after the switch (SPEC.md §3.2.1): the
/// first byte picks what the rest is.
///
/// - Even: records from an attacker without the key (the rest cut into pieces). None may
///   open, and a failed record must leave nothing behind in the frame stream.
/// - Odd: a plaintext stream sealed with the right key, flushed in fuzzer-chosen pieces, then
///   cut into records again by the record codec and opened; with bit 1 set, one bit of the
///   wire is flipped first (which bit and where: the first byte's other bits). Unflipped, the frames that come out
///   must be exactly those a bare [`FrameSplitter`] finds in the plaintext (and any error the
///   same); flipped, the first record that fails must fail with an error, never a panic, and
///   nothing after it is opened.
pub fn aes_gcm_records(data: &[u8]) {
    use crate::error::FrameError;
    use crate::transport::{Opener, Sealer};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = [0x5a; crate::aes_gcm::KEY_LEN];
    let mut opener = Opener::aes_gcm_only(&key);
    if mode & 1 == 0 {
        for record in chunks(rest) {
            assert!(
                opener.open_record(record).is_err(),
                "a record not sealed with the key opened"
            );
            assert!(!opener.has_partial_frame());
            assert!(matches!(opener.next_frame(), Ok(None)));
        }
        return;
    }
    let mut sealer = Sealer::aes_gcm_only(&key);
    let mut wire = BytesMut::new();
    let mut plaintext = Vec::new();
    for piece in chunks(rest) {
        sealer.queue_raw_plaintext(piece);
        plaintext.extend_from_slice(piece);
        if sealer.flush(&mut wire).is_err() {
            return;
        }
    }
    let flipped = mode & 2 != 0 && !wire.is_empty();
    if flipped {
        let at = (usize::from(mode >> 5) * 7919 + rest.len()) % wire.len();
        wire[at] ^= 1 << ((mode >> 2) & 7);
    }
    // What a receiver without encryption would make of the same plaintext.
    let mut reference = FrameSplitter::default();
    let mut want: Vec<Result<bytes::Bytes, FrameError>> = Vec::new();
    if let Err(e) = reference.push(&plaintext) {
        want.push(Err(e));
    } else {
        loop {
            match reference.next_frame() {
                Ok(Some(f)) => want.push(Ok(f)),
                Ok(None) => break,
                Err(e) => {
                    want.push(Err(e));
                    break;
                }
            }
        }
    }
    let mut got: Vec<Result<bytes::Bytes, FrameError>> = Vec::new();
    let mut failed = false;
    'records: loop {
        let record = match RecordCodec.decode(&mut wire) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(_) => {
                assert!(flipped, "the record codec refused what the sealer wrote");
                failed = true;
                break;
            }
        };
        if let Err(e) = opener.open_record(&record) {
            if matches!(e, FrameError::Decrypt) {
                assert!(flipped, "a record sealed with the key did not open");
                failed = true;
                break;
            }
            // A frame header over the limit: the reference says the same (checked below).
            got.push(Err(e));
            break;
        }
        loop {
            match opener.next_frame() {
                Ok(Some(f)) => got.push(Ok(f)),
                Ok(None) => break,
                Err(e) => {
                    got.push(Err(e));
                    break 'records;
                }
            }
        }
    }
    if !flipped {
        assert!(!failed);
        let same =
            |a: &Result<bytes::Bytes, FrameError>, b: &Result<bytes::Bytes, FrameError>| match (
                a, b,
            ) {
                (Ok(x), Ok(y)) => x == y,
                (Err(_), Err(_)) => true,
                _ => false,
            };
        assert_eq!(got.len(), want.len(), "frames differ from the plaintext's");
        assert!(got.iter().zip(&want).all(|(a, b)| same(a, b)));
    }
}

fn identities() -> &'static (LocalIdentity, LocalIdentity) {
    static ONCE: std::sync::OnceLock<(LocalIdentity, LocalIdentity)> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let make = |n| {
            LocalIdentity::new(crate::test_keys::identity(n))
                .unwrap_or_else(|e| panic!("test identity {n}: {e}"))
        };
        (make(0), make(1))
    })
}

/// Cuts `data` into pieces: each piece's length is the next byte (1..=256), then that many
/// bytes, so the fuzzer controls how input arrives as well as what it is.
fn chunks(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let (&n, tail) = rest.split_first()?;
        let n = (usize::from(n) + 1).min(tail.len());
        let (piece, after) = tail.split_at(n);
        rest = after;
        Some(piece)
    })
}
