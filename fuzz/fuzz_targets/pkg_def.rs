//! `cargo xtask fuzz`: see [`slipway_fuzz::pkg_def`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| slipway_fuzz::pkg_def(data));
