//! Fuzz target: see `peerchat_client::transfer::naming::check_sanitised`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| peerchat_client::transfer::naming::check_sanitised(data));
