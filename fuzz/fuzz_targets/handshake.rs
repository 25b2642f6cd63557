//! Fuzz target: see `peerchat_proto::fuzzing::handshake`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| peerchat_proto::fuzzing::handshake(data));
