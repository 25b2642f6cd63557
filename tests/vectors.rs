//! Test vectors (SPEC.md §13): fixed keys and the exact bytes of a handshake and one transport
//! record, so another implementation can prove byte compatibility with this one.
//!
//! Regenerate (only when the protocol changes) with
//! `PEERCHAT_REGEN_VECTORS=1 cargo test -p peerchat-proto --test vectors -- --ignored`.

use bytes::BytesMut;
use peerchat_proto::handshake::{Handshake, LocalIdentity, Role, NOISE_PARAMS, PROLOGUE};
use peerchat_proto::identity::{signed_bytes, IdentityKeyPair, SIGNATURE_CONTEXT};
use peerchat_proto::message::Request;
use peerchat_proto::record::put_record;
use peerchat_proto::wire::{ChannelKind, HandshakePayload};
use peerchat_proto::IdentityKey;

// The fixed keys, shared with the library's own tests (the `test-keys` feature is off here).
mod identity {
    pub use peerchat_proto::identity::*;
}
#[path = "../src/test_keys.rs"]
#[allow(dead_code)]
mod test_keys;
use prost::Message as _;
use serde::{Deserialize, Serialize};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/vectors/handshake.json"
);

#[derive(Serialize, Deserialize)]
struct Side {
    /// PKCS#8 PEM of the RSA identity key.
    rsa_private_key_pem: String,
    /// DER SubjectPublicKeyInfo of the RSA identity key.
    rsa_public_key_spki_hex: String,
    /// Identity fingerprint.
    fingerprint: String,
    /// X25519 static private key.
    static_private_hex: String,
    /// X25519 static public key.
    static_public_hex: String,
    /// X25519 ephemeral private key (fixed for the vector only).
    ephemeral_private_hex: String,
    /// The exact bytes signed: context ‖ static public key.
    signed_bytes_hex: String,
    /// One valid RSA-PSS-SHA256 signature over signed_bytes (PSS is randomised: any valid
    /// signature verifies; this one is fixed so the payload bytes are fixed).
    signature_hex: String,
    /// Encoded HandshakePayload.
    payload_hex: String,
}

#[derive(Serialize, Deserialize)]
struct Vectors {
    description: String,
    noise_protocol: String,
    prologue_hex: String,
    signature_context_hex: String,
    channel_kind: String,
    initiator: Side,
    responder: Side,
    /// Handshake messages, record bodies without the u16 length prefix.
    message1_hex: String,
    message2_hex: String,
    message3_hex: String,
    /// The first transport frame from initiator to responder, as protobuf.
    transport_plaintext_frame_hex: String,
    transport_plaintext_description: String,
    /// The whole record on the wire: u16 length ‖ ciphertext of (u32 length ‖ frame).
    transport_record_hex: String,
}

fn fixed_static(seed: u8) -> (Vec<u8>, Vec<u8>) {
    let private: [u8; 32] = std::array::from_fn(|i| seed.wrapping_add(i as u8));
    let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(private));
    (private.to_vec(), public.as_bytes().to_vec())
}

fn side(
    key_no: usize,
    static_seed: u8,
    eph_seed: u8,
    sig: Option<Vec<u8>>,
) -> (Side, LocalIdentity, Vec<u8>) {
    let pair = test_keys::identity(key_no);
    let (sp, spub) = fixed_static(static_seed);
    let (ep, _) = fixed_static(eph_seed);
    let signature = sig.unwrap_or_else(|| pair.sign_static_key(&spub));
    let payload = HandshakePayload {
        identity_key: pair.public().to_der(),
        identity_sig: signature.clone().into(),
        protocol_version: 1,
        channel_kind: ChannelKind::ClientServer as i32,
    }
    .encode_to_vec();
    let s = Side {
        rsa_private_key_pem: test_keys::pem(key_no).to_owned(),
        rsa_public_key_spki_hex: hex::encode(pair.public().to_der()),
        fingerprint: pair.public().fingerprint().to_string(),
        static_private_hex: hex::encode(&sp),
        static_public_hex: hex::encode(&spub),
        ephemeral_private_hex: hex::encode(&ep),
        signed_bytes_hex: hex::encode(signed_bytes(&spub)),
        signature_hex: hex::encode(&signature),
        payload_hex: hex::encode(&payload),
    };
    let local = LocalIdentity::from_parts(pair, sp, spub, signature);
    (s, local, ep)
}

fn compute(sig_i: Option<Vec<u8>>, sig_r: Option<Vec<u8>>) -> Vectors {
    let (si, li, ei) = side(0, 0x10, 0x30, sig_i);
    let (sr, lr, er) = side(1, 0x20, 0x40, sig_r);
    let kind = ChannelKind::ClientServer;
    let payload_i = hex::decode(&si.payload_hex).unwrap();
    let payload_r = hex::decode(&sr.payload_hex).unwrap();
    let mut i =
        Handshake::new_for_test_vectors(&li, Role::Initiator, kind, &ei, payload_i).unwrap();
    let mut r =
        Handshake::new_for_test_vectors(&lr, Role::Responder, kind, &er, payload_r).unwrap();
    let m1 = i.write_message().unwrap();
    r.read_message(&m1).unwrap();
    let m2 = r.write_message().unwrap();
    i.read_message(&m2).unwrap();
    let m3 = i.write_message().unwrap();
    r.read_message(&m3).unwrap();
    let (mut ti, _) = i.finish().unwrap();
    let (mut tr, remote) = r.finish().unwrap();
    assert_eq!(remote.identity_key, *li.public_key());

    let frame = Request::Find {
        userid: "alice".into(),
    }
    .into_message(1)
    .encode_to_vec();
    let mut wire = BytesMut::new();
    ti.sealer.seal_frame(&frame, &mut wire).unwrap();
    // The responder decrypts it back.
    tr.opener.open_record(&wire[2..]).unwrap();
    assert_eq!(tr.opener.next_frame().unwrap().unwrap().to_vec(), frame);

    let _ = put_record; // records are u16 BE length ‖ body, as in `wire` above.
    Vectors {
        description: "Peerchat v1 handshake test vectors (SPEC.md §13). Client (initiator) uses test key 0, server \
                      (responder) test key 1; fixed X25519 static and ephemeral keys; channel kind CLIENT_SERVER."
            .into(),
        noise_protocol: NOISE_PARAMS.into(),
        prologue_hex: hex::encode(PROLOGUE),
        signature_context_hex: hex::encode(SIGNATURE_CONTEXT),
        channel_kind: "CHANNEL_KIND_CLIENT_SERVER".into(),
        initiator: si,
        responder: sr,
        message1_hex: hex::encode(m1),
        message2_hex: hex::encode(m2),
        message3_hex: hex::encode(m3),
        transport_plaintext_frame_hex: hex::encode(&frame),
        transport_plaintext_description: "ClientMessage{request_id: 1, find: Find{userid: \"alice\"}}".into(),
        transport_record_hex: hex::encode(&wire),
    }
}

#[test]
#[ignore = "writes testdata/vectors/handshake.json; run only when the protocol changes"]
fn regenerate_vectors() {
    if std::env::var_os("PEERCHAT_REGEN_VECTORS").is_none() {
        return;
    }
    let v = compute(None, None);
    std::fs::write(PATH, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
}

#[test]
fn vectors_match_this_implementation() {
    let text = std::fs::read_to_string(PATH).expect("testdata/vectors/handshake.json exists");
    let stored: Vectors = serde_json::from_str(&text).unwrap();

    // Each side's signature verifies over exactly context ‖ static key.
    for s in [&stored.initiator, &stored.responder] {
        let key = IdentityKey::from_der(&hex::decode(&s.rsa_public_key_spki_hex).unwrap()).unwrap();
        assert_eq!(key.fingerprint().to_string(), s.fingerprint);
        let pair = IdentityKeyPair::from_pkcs8_pem(&s.rsa_private_key_pem).unwrap();
        assert_eq!(pair.public(), &key);
        let spub = hex::decode(&s.static_public_hex).unwrap();
        let signed = hex::decode(&s.signed_bytes_hex).unwrap();
        assert_eq!(signed, [SIGNATURE_CONTEXT, &spub[..]].concat());
        key.verify_static_key(&spub, &hex::decode(&s.signature_hex).unwrap())
            .unwrap();
        // A flipped bit in the signature fails.
        let mut bad = hex::decode(&s.signature_hex).unwrap();
        bad[10] ^= 1;
        assert!(key.verify_static_key(&spub, &bad).is_err());
    }

    // Recomputing with the stored signatures reproduces every byte.
    let again = compute(
        Some(hex::decode(&stored.initiator.signature_hex).unwrap()),
        Some(hex::decode(&stored.responder.signature_hex).unwrap()),
    );
    assert_eq!(
        again.initiator.static_public_hex,
        stored.initiator.static_public_hex
    );
    assert_eq!(again.initiator.payload_hex, stored.initiator.payload_hex);
    assert_eq!(again.responder.payload_hex, stored.responder.payload_hex);
    assert_eq!(again.message1_hex, stored.message1_hex);
    assert_eq!(again.message2_hex, stored.message2_hex);
    assert_eq!(again.message3_hex, stored.message3_hex);
    assert_eq!(
        again.transport_plaintext_frame_hex,
        stored.transport_plaintext_frame_hex
    );
    assert_eq!(again.transport_record_hex, stored.transport_record_hex);
    assert_eq!(stored.prologue_hex, hex::encode(b"peerchat"));
}

// ---- SPEC.md §4.7: which side of a TCP simultaneous open becomes the responder ------------

const SIMULTANEOUS_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/vectors/simultaneous_open.json"
);

/// One dialer of a simultaneous open: its fixed ephemeral key and the message 1 it sends.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Dialer {
    /// Fixed test key number (testdata/keys) of its identity.
    test_key: usize,
    /// X25519 ephemeral private key (fixed for the vector only).
    ephemeral_private_hex: String,
    /// Its handshake message 1: the ephemeral public key, no payload (32 bytes).
    message1_hex: String,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct SimultaneousOpen {
    description: String,
    noise_protocol: String,
    prologue_hex: String,
    channel_kind: String,
    a: Dialer,
    b: Dialer,
    /// "a" or "b": the side whose message 1 is lower as unsigned bytes; it answers the
    /// other's message 1 with message 2. The other stays the initiator.
    responder: String,
}

fn dialer(test_key: usize, static_seed: u8, eph_seed: u8) -> (Dialer, LocalIdentity, Vec<u8>) {
    let (_, local, eph) = side(test_key, static_seed, eph_seed, None);
    let mut h = Handshake::new_for_test_vectors(
        &local,
        Role::Initiator,
        ChannelKind::Peer,
        &eph,
        local.payload(ChannelKind::Peer).encode_to_vec(),
    )
    .unwrap();
    let m1 = h.write_message().unwrap();
    let d = Dialer {
        test_key,
        ephemeral_private_hex: hex::encode(&eph),
        message1_hex: hex::encode(m1),
    };
    (d, local, eph)
}

fn compute_simultaneous() -> SimultaneousOpen {
    let (a, _, _) = dialer(2, 0x50, 0x70);
    let (b, _, _) = dialer(3, 0x60, 0x80);
    let responder = if a.message1_hex < b.message1_hex {
        "a"
    } else {
        "b"
    };
    SimultaneousOpen {
        description:
            "Peerchat v1 TCP simultaneous open (SPEC.md §4.7): both peers dialled, both sent \
                      handshake message 1 as initiator on a CHANNEL_KIND_PEER connection. The side \
                      whose message 1 is lower (unsigned bytes) becomes the responder."
                .into(),
        noise_protocol: NOISE_PARAMS.into(),
        prologue_hex: hex::encode(PROLOGUE),
        channel_kind: "CHANNEL_KIND_PEER".into(),
        a,
        b,
        responder: responder.into(),
    }
}

#[test]
#[ignore = "writes testdata/vectors/simultaneous_open.json; run only when the protocol changes"]
fn regenerate_simultaneous_open_vector() {
    if std::env::var_os("PEERCHAT_REGEN_VECTORS").is_none() {
        return;
    }
    let v = compute_simultaneous();
    std::fs::write(
        SIMULTANEOUS_PATH,
        serde_json::to_string_pretty(&v).unwrap() + "\n",
    )
    .unwrap();
}

/// The stored vector: message 1 of each side from its fixed ephemeral key, the side named
/// responder is the lower one, and two handshakes fed each other's message 1 (crossing on
/// the wire) resolve to exactly that: the named side turns responder and answers, the other
/// stays initiator, and the handshake completes with both identities verified.
#[test]
fn simultaneous_open_vector_names_the_responder() {
    let text = std::fs::read_to_string(SIMULTANEOUS_PATH)
        .expect("testdata/vectors/simultaneous_open.json exists");
    let stored: SimultaneousOpen = serde_json::from_str(&text).unwrap();
    assert_eq!(compute_simultaneous(), stored, "the stored vector is stale");
    let lower = if stored.a.message1_hex < stored.b.message1_hex {
        "a"
    } else {
        "b"
    };
    assert_eq!(stored.responder, lower);

    let (_, la, ea) = dialer(2, 0x50, 0x70);
    let (_, lb, eb) = dialer(3, 0x60, 0x80);
    let start = |l: &LocalIdentity, e: &[u8]| {
        Handshake::new_for_test_vectors(
            l,
            Role::Initiator,
            ChannelKind::Peer,
            e,
            l.payload(ChannelKind::Peer).encode_to_vec(),
        )
        .unwrap()
    };
    let (mut a, mut b) = (start(&la, &ea), start(&lb, &eb));
    let m1a = a.write_message().unwrap();
    let m1b = b.write_message().unwrap();
    assert_eq!(hex::encode(&m1a), stored.a.message1_hex);
    assert_eq!(hex::encode(&m1b), stored.b.message1_hex);
    // The two messages 1 cross on the wire.
    a.read_message(&m1b).unwrap();
    b.read_message(&m1a).unwrap();
    let (mut resp, mut init, resp_local, init_local) = if stored.responder == "a" {
        (a, b, &la, &lb)
    } else {
        (b, a, &lb, &la)
    };
    assert_eq!(resp.role(), Role::Responder);
    assert_eq!(init.role(), Role::Initiator);
    assert!(resp.was_simultaneous() && init.was_simultaneous());
    let m2 = resp.write_message().unwrap();
    init.read_message(&m2).unwrap();
    let m3 = init.write_message().unwrap();
    resp.read_message(&m3).unwrap();
    let (_, seen_by_init) = init.finish().unwrap();
    let (_, seen_by_resp) = resp.finish().unwrap();
    assert_eq!(seen_by_init.identity_key, *resp_local.public_key());
    assert_eq!(seen_by_resp.identity_key, *init_local.public_key());
}
