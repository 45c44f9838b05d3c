//! `cargo xtask fuzz`: see [`slipway_fuzz::modules`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| slipway_fuzz::modules(data));
