//! Replays the cargo-fuzz corpus (fuzz/corpus/<target>/) through the same entry points the
//! fuzz targets call (`peerchat_proto::fuzzing`), so that every input the fuzzer ever kept —
//! including those that once crashed — is re-checked by the ordinary, stable test run.

#![cfg(feature = "fuzzing")]

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()));
    let mut n = 0;
    for e in entries {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| run(&data));
        assert!(r.is_ok(), "{} fails on {}", target, path.display());
        n += 1;
    }
    assert!(n > 0, "corpus {} is empty", dir.display());
    println!("{target}: {n} inputs replayed");
}

#[test]
fn record_codec_corpus() {
    replay("record_codec", peerchat_proto::fuzzing::record_codec);
}

#[test]
fn frames_corpus() {
    replay("frames", peerchat_proto::fuzzing::frames);
}

#[test]
fn handshake_corpus() {
    replay("handshake", peerchat_proto::fuzzing::handshake);
}

#[test]
fn client_message_corpus() {
    replay("client_message", peerchat_proto::fuzzing::client_message);
}

#[test]
fn server_message_corpus() {
    replay("server_message", peerchat_proto::fuzzing::server_message);
}

#[test]
fn peer_message_corpus() {
    replay("peer_message", peerchat_proto::fuzzing::peer_message);
}

#[test]
fn aes_gcm_records_corpus() {
    replay("aes_gcm_records", peerchat_proto::fuzzing::aes_gcm_records);
}
