//! Fuzz target: see `peerchat_proto::fuzzing::aes_gcm_records`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| peerchat_proto::fuzzing::aes_gcm_records(data));
