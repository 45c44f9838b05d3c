//! Image labels (`org.mobyproject.config`) come from images, not from the
//! user: any bytes must give a label or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = slipway_config::label::parse_label("fuzz", text);
    }
});
