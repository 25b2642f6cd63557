//! Fuzz target: see `peerchat_proto::fuzzing::record_codec`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| peerchat_proto::fuzzing::record_codec(data));
