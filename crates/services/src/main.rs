//! `slipway-services`: see the library's documentation.

fn main() {}
