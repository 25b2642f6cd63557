//! Streamed-hash test vectors (SPEC.md §8.3.1, §13 item 6): a generated file content, its
//! BLAKE3 and SHA-256, the BLAKE3 of a resumed transfer hashed prefix-then-rest, and the
//! encoded PeerHello / FileOffer / FileDigest frames, so another implementation can check its
//! hashing and its encoding of the new fields byte for byte.
//!
//! Regenerate (only when the protocol changes) with
//! `cargo test -p peerchat-proto --test file_hash_vectors -- --ignored`.

use peerchat_proto::message::{FileOfferFrame, PeerFeatures, PeerFrame};
use peerchat_proto::wire;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/vectors/file_hash.json"
);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct FileHashVectors {
    description: String,
    /// Byte `i` of the content is `i mod 251`.
    content_len: u64,
    content_blake3_hex: String,
    content_sha256_hex: String,
    /// A resumed receiver kept `resume_offset` bytes: it hashes them, then the rest.
    resume_offset: u64,
    resumed_blake3_hex: String,
    transfer_id_hex: String,
    /// PeerMessage{hello: PeerHello{userid: "alice", to_userid: "bob", features: ["file-blake3"]}}.
    hello_hex: String,
    /// PeerMessage{file_offer: FileOffer{transfer_id, name: "report.pdf", size: content_len, sha256: empty}}.
    streamed_offer_hex: String,
    /// PeerMessage{file_digest: FileDigest{transfer_id, blake3: content_blake3}}.
    file_digest_hex: String,
}

/// The hello of this vector names `file-blake3` only (aes-gcm has its own vectors).
const BLAKE3_ONLY: PeerFeatures = PeerFeatures {
    file_blake3: true,
    aes_gcm: false,
};

fn content(len: u64) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn compute() -> FileHashVectors {
    let len = 1_000_003u64; // several 256 KiB FileChunks and 1 KiB BLAKE3 chunks, neither a multiple
    let data = content(len);
    let resume = 300_007u64;
    let mut h = blake3::Hasher::new();
    h.update(&data[..resume as usize]);
    h.update(&data[resume as usize..]);
    let id = [0x42u8; 16];
    let digest = *blake3::hash(&data).as_bytes();
    let enc = |f: PeerFrame| hex::encode(wire::PeerMessage::from(f).encode_to_vec());
    FileHashVectors {
        description: "Peerchat streamed file hash (SPEC.md §8.3.1, §13 item 6). Frames are PeerMessage bytes before transport encryption.".into(),
        content_len: len,
        content_blake3_hex: hex::encode(digest),
        content_sha256_hex: hex::encode(Sha256::digest(&data)),
        resume_offset: resume,
        resumed_blake3_hex: hex::encode(h.finalize().as_bytes()),
        transfer_id_hex: hex::encode(id),
        hello_hex: enc(PeerFrame::Hello {
            userid: "alice".into(),
            to_userid: "bob".into(),
            features: BLAKE3_ONLY,
        }),
        streamed_offer_hex: enc(PeerFrame::FileOffer(FileOfferFrame {
            id,
            name: "report.pdf".into(),
            size: len,
            sha256: None,
        })),
        file_digest_hex: enc(PeerFrame::FileDigest { id, blake3: digest }),
    }
}

#[test]
#[ignore = "writes testdata/vectors/file_hash.json; run only when the protocol changes"]
fn regenerate_file_hash_vectors() {
    let v = compute();
    std::fs::write(PATH, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
}

#[test]
fn file_hash_vectors_match_this_implementation() {
    let text = std::fs::read_to_string(PATH).expect("testdata/vectors/file_hash.json exists");
    let stored: FileHashVectors = serde_json::from_str(&text).unwrap();
    assert_eq!(stored, compute());
    assert_eq!(
        stored.resumed_blake3_hex, stored.content_blake3_hex,
        "prefix-then-rest is the whole-file hash"
    );
    // The frames decode to what they say.
    let decode = |h: &str| {
        PeerFrame::try_from(wire::PeerMessage::decode(&hex::decode(h).unwrap()[..]).unwrap())
            .unwrap()
    };
    assert!(matches!(
        decode(&stored.hello_hex),
        PeerFrame::Hello { features, .. } if features == BLAKE3_ONLY
    ));
    assert!(matches!(
        decode(&stored.streamed_offer_hex),
        PeerFrame::FileOffer(FileOfferFrame { sha256: None, .. })
    ));
    assert!(matches!(
        decode(&stored.file_digest_hex),
        PeerFrame::FileDigest { blake3, .. } if hex::encode(blake3) == stored.content_blake3_hex
    ));
}
