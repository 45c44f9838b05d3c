//! `cargo xtask fuzz`: see [`slipway_fuzz::oci_json`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| slipway_fuzz::oci_json(data));
