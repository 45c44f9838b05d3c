//! `cargo xtask fuzz`: see [`slipway_fuzz::writers::check`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| slipway_fuzz::writers::check(data));
