//! `cargo xtask fuzz`: see [`slipway_fuzz::layer`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| slipway_fuzz::layer(data));
