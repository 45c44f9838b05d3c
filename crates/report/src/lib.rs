//! What an image is and how it boots, shown to people: the boot chart
//! ([`chart`]: a timeline as SVG or text).
//!
//! Host-side presentation only: it takes plain data (timeline entries)
//! and returns bytes. It depends on `slipway-layout` (the timeline's types)
//! and nothing else of ours, so the CLI and the package builder can both
//! use it.

pub mod chart;
pub mod xml;
