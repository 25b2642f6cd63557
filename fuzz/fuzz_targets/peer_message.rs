//! Fuzz target: see `peerchat_proto::fuzzing::peer_message`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| peerchat_proto::fuzzing::peer_message(data));
