//! AES-256-GCM switch test vectors (SPEC.md §3.2.1, §13 item 7): a peer handshake with the
//! fixed keys and signatures of `handshake.json` (channel kind PEER), its Split() keys and
//! handshake hash, the two derived AES-256-GCM keys, both hellos as ChaChaPoly records and the
//! first records after the switch in each direction, so another implementation can check its
//! key schedule, its switch point and its nonce byte for byte.
//!
//! Regenerate (only when the protocol changes) with
//! `cargo test -p peerchat-proto --test aes_gcm_vectors -- --ignored`.

use bytes::BytesMut;
use peerchat_proto::aes_gcm::{AesKeys, LABEL_I2R, LABEL_R2I};
use peerchat_proto::handshake::{Handshake, LocalIdentity, Role, NOISE_PARAMS};
use peerchat_proto::message::{PeerFeatures, PeerFrame};
use peerchat_proto::transport::{CipherKind, Transport};
use peerchat_proto::wire::{self, peer_message::Body, ChannelKind, HandshakePayload};
use peerchat_proto::{FrameError, IdentityKeyPair};
use prost::Message as _;
use serde::{Deserialize, Serialize};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/vectors/aes_gcm.json");
const HANDSHAKE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/vectors/handshake.json"
);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct AesGcmVectors {
    description: String,
    noise_protocol: String,
    channel_kind: String,
    /// HandshakePayloads (PEER kind) with handshake.json's identity keys and signatures.
    initiator_payload_hex: String,
    responder_payload_hex: String,
    /// Handshake messages (record bodies) with handshake.json's static and ephemeral keys.
    message1_hex: String,
    message2_hex: String,
    message3_hex: String,
    /// Noise's final handshake hash h and the Split() keys k1 (initiator to responder) and
    /// k2 (responder to initiator).
    handshake_hash_hex: String,
    split_k1_hex: String,
    split_k2_hex: String,
    /// HKDF-SHA256 info strings (ASCII) and the derived AES-256-GCM keys.
    label_i2r: String,
    label_r2i: String,
    aes_key_i2r_hex: String,
    aes_key_r2i_hex: String,
    /// PeerHello{userid: "alice", to_userid: "bob", features: ["file-blake3", "aes-gcm"]},
    /// the initiator's first frame, as its whole ChaChaPoly record (nonce 0, u16 length first).
    initiator_hello_frame_hex: String,
    initiator_hello_record_hex: String,
    /// PeerHello{userid: "bob", to_userid: "alice", features: ["file-blake3", "aes-gcm"]},
    /// the responder's first frame, as its ChaChaPoly record (nonce 0).
    responder_hello_frame_hex: String,
    responder_hello_record_hex: String,
    /// After the switch: the initiator's Ping{nonce: 1} and Ping{nonce: 2} as AES-256-GCM
    /// records with nonces 0 and 1, and the responder's Pong{nonce: 1} with nonce 0.
    initiator_aes_record0_hex: String,
    initiator_aes_record1_hex: String,
    responder_aes_record0_hex: String,
}

fn h(b: impl AsRef<[u8]>) -> String {
    hex::encode(b)
}

fn unhex(s: &serde_json::Value) -> Vec<u8> {
    hex::decode(s.as_str().unwrap()).unwrap()
}

/// One side of handshake.json as a PEER identity: (local identity, ephemeral key, payload).
fn side(v: &serde_json::Value) -> (LocalIdentity, Vec<u8>, Vec<u8>) {
    let pair = IdentityKeyPair::from_pkcs8_pem(v["rsa_private_key_pem"].as_str().unwrap()).unwrap();
    let sig = unhex(&v["signature_hex"]);
    let payload = HandshakePayload {
        identity_key: pair.public().to_der(),
        identity_sig: sig.clone().into(),
        protocol_version: 1,
        channel_kind: ChannelKind::Peer as i32,
    }
    .encode_to_vec();
    let local = LocalIdentity::from_parts(
        pair,
        unhex(&v["static_private_hex"]),
        unhex(&v["static_public_hex"]),
        sig,
    );
    (local, unhex(&v["ephemeral_private_hex"]), payload)
}

fn msg(body: Body) -> Vec<u8> {
    wire::PeerMessage { body: Some(body) }.encode_to_vec()
}

fn hello(from: &str, to: &str) -> Vec<u8> {
    wire::PeerMessage::from(PeerFrame::Hello {
        userid: from.into(),
        to_userid: to.into(),
        features: PeerFeatures::ALL,
    })
    .encode_to_vec()
}

fn seal(t: &mut Transport, frame: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    t.sealer.seal_frame(frame, &mut out).unwrap();
    out.to_vec()
}

/// Opens one whole record (u16 length first) and returns the one frame it completes.
fn open(t: &mut Transport, record: &[u8]) -> Vec<u8> {
    t.opener.open_record(&record[2..]).unwrap();
    t.opener.next_frame().unwrap().unwrap().to_vec()
}

/// A finished PEER handshake between the two sides of handshake.json.
struct Done {
    v: AesGcmVectors,
    i: Transport,
    r: Transport,
}

fn compute() -> Done {
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(HANDSHAKE).unwrap()).unwrap();
    let (li, ei, pi) = side(&base["initiator"]);
    let (lr, er, pr) = side(&base["responder"]);
    let kind = ChannelKind::Peer;
    let mut i =
        Handshake::new_for_test_vectors(&li, Role::Initiator, kind, &ei, pi.clone()).unwrap();
    let mut r =
        Handshake::new_for_test_vectors(&lr, Role::Responder, kind, &er, pr.clone()).unwrap();
    let m1 = i.write_message().unwrap();
    r.read_message(&m1).unwrap();
    let m2 = r.write_message().unwrap();
    i.read_message(&m2).unwrap();
    let m3 = i.write_message().unwrap();
    r.read_message(&m3).unwrap();
    let (k1, k2, hh) = i.split_for_test_vectors();
    assert_eq!(
        r.split_for_test_vectors(),
        (k1, k2, hh.clone()),
        "both sides agree"
    );
    let keys = AesKeys::derive(&k1, &k2, &hh);
    let (mut ti, _) = i.finish().unwrap();
    let (mut tr, _) = r.finish().unwrap();

    // Hellos under ChaChaPoly, each ending its record (rule 2); then both switch (rule 3).
    let hi = hello("alice", "bob");
    let hi_rec = seal(&mut ti, &hi);
    assert_eq!(open(&mut tr, &hi_rec), hi);
    let hr = hello("bob", "alice");
    let hr_rec = seal(&mut tr, &hr);
    tr.sealer.switch_to_aes_gcm().unwrap();
    tr.opener.switch_to_aes_gcm().unwrap();
    assert_eq!(open(&mut ti, &hr_rec), hr);
    ti.opener.switch_to_aes_gcm().unwrap();
    ti.sealer.switch_to_aes_gcm().unwrap();
    assert_eq!(ti.sealer.cipher(), CipherKind::Aes256Gcm);

    let ping = |nonce| msg(Body::Ping(wire::Ping { nonce }));
    let a0 = seal(&mut ti, &ping(1));
    let a1 = seal(&mut ti, &ping(2));
    let pong = msg(Body::Pong(wire::Pong { nonce: 1 }));
    let b0 = seal(&mut tr, &pong);
    assert_eq!(open(&mut tr, &a0), ping(1));
    assert_eq!(open(&mut tr, &a1), ping(2));
    assert_eq!(open(&mut ti, &b0), pong);

    let v = AesGcmVectors {
        description: "Peerchat AES-256-GCM switch (SPEC.md §3.2.1, §13 item 7): the keys, static/ephemeral \
                      keys and signatures of handshake.json in a CHANNEL_KIND_PEER handshake; records are \
                      u16 length ‖ body."
            .into(),
        noise_protocol: NOISE_PARAMS.into(),
        channel_kind: "CHANNEL_KIND_PEER".into(),
        initiator_payload_hex: h(&pi),
        responder_payload_hex: h(&pr),
        message1_hex: h(&m1),
        message2_hex: h(&m2),
        message3_hex: h(&m3),
        handshake_hash_hex: h(&hh),
        split_k1_hex: h(k1),
        split_k2_hex: h(k2),
        label_i2r: String::from_utf8(LABEL_I2R.to_vec()).unwrap(),
        label_r2i: String::from_utf8(LABEL_R2I.to_vec()).unwrap(),
        aes_key_i2r_hex: h(keys.i2r),
        aes_key_r2i_hex: h(keys.r2i),
        initiator_hello_frame_hex: h(&hi),
        initiator_hello_record_hex: h(&hi_rec),
        responder_hello_frame_hex: h(&hr),
        responder_hello_record_hex: h(&hr_rec),
        initiator_aes_record0_hex: h(&a0),
        initiator_aes_record1_hex: h(&a1),
        responder_aes_record0_hex: h(&b0),
    };
    Done { v, i: ti, r: tr }
}

#[test]
#[ignore = "writes testdata/vectors/aes_gcm.json; run only when the protocol changes"]
fn regenerate_aes_gcm_vectors() {
    let v = compute().v;
    std::fs::write(PATH, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
}

#[test]
fn aes_gcm_vectors_match_this_implementation() {
    let text = std::fs::read_to_string(PATH).expect("testdata/vectors/aes_gcm.json exists");
    let stored: AesGcmVectors = serde_json::from_str(&text).unwrap();
    assert_eq!(compute().v, stored);
}

#[test]
fn aes_gcm_keys_are_rfc5869_hkdf_of_the_split_keys() {
    // Independent of ring: HKDF-SHA256 from HMAC-SHA256 spelled out (RFC 5869 §2.2, §2.3).
    use sha2::{Digest, Sha256};
    fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
        let mut k = [0u8; 64];
        k[..key.len()].copy_from_slice(key);
        let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
        let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
        let inner = Sha256::digest([&ipad[..], data].concat());
        Sha256::digest([&opad[..], &inner[..]].concat()).into()
    }
    let v = compute().v;
    let hh = hex::decode(&v.handshake_hash_hex).unwrap();
    for (k, label, want) in [
        (&v.split_k1_hex, &v.label_i2r, &v.aes_key_i2r_hex),
        (&v.split_k2_hex, &v.label_r2i, &v.aes_key_r2i_hex),
    ] {
        let prk = hmac(&hh, &hex::decode(k).unwrap());
        let okm = hmac(&prk, &[label.as_bytes(), &[1u8]].concat());
        assert_eq!(&h(okm), want);
    }
}

#[test]
fn a_hello_that_does_not_end_its_record_cannot_switch() {
    let Done { mut i, mut r, .. } = compute();
    // Both already switched in compute(); a fresh pair is not needed to show the rule: the
    // opener refuses to switch again, and refuses with bytes after a frame pending.
    assert!(matches!(
        r.opener.switch_to_aes_gcm(),
        Err(FrameError::SwitchNotAtBoundary)
    ));
    // Two frames in one record: after taking the first out, a switch is refused.
    i.sealer
        .queue_frame(&msg(Body::Ping(wire::Ping { nonce: 7 })))
        .unwrap();
    i.sealer
        .queue_frame(&msg(Body::Ping(wire::Ping { nonce: 8 })))
        .unwrap();
    let mut out = BytesMut::new();
    i.sealer.flush(&mut out).unwrap();
    r.opener.open_record(&out[2..]).unwrap();
    assert!(r.opener.next_frame().unwrap().is_some());
    assert!(r.opener.has_partial_frame());
    // And a sealer with a frame queued refuses too.
    i.sealer.queue_frame(b"").unwrap();
    assert!(matches!(
        i.sealer.switch_to_aes_gcm(),
        Err(FrameError::SwitchNotAtBoundary)
    ));
}

#[test]
fn chachapoly_records_do_not_open_after_the_switch() {
    // A v1-style sender that never switches: its next ChaChaPoly record fails under AES.
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(HANDSHAKE).unwrap()).unwrap();
    let (li, ei, pi) = side(&base["initiator"]);
    let (lr, er, pr) = side(&base["responder"]);
    let kind = ChannelKind::Peer;
    let mut i = Handshake::new_for_test_vectors(&li, Role::Initiator, kind, &ei, pi).unwrap();
    let mut r = Handshake::new_for_test_vectors(&lr, Role::Responder, kind, &er, pr).unwrap();
    r.read_message(&i.write_message().unwrap()).unwrap();
    i.read_message(&r.write_message().unwrap()).unwrap();
    r.read_message(&i.write_message().unwrap()).unwrap();
    let (mut ti, _) = i.finish().unwrap();
    let (mut tr, _) = r.finish().unwrap();
    let hi = hello("alice", "bob");
    assert_eq!(open(&mut tr, &seal(&mut ti, &hi)), hi);
    tr.opener.switch_to_aes_gcm().unwrap();
    let rec = seal(&mut ti, &msg(Body::Ping(wire::Ping { nonce: 1 })));
    assert!(matches!(
        tr.opener.open_record(&rec[2..]),
        Err(FrameError::Decrypt)
    ));
}
