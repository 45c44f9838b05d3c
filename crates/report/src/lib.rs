//! What an image is and how it boots, shown to people: the boot chart
//! ([`chart`]: a timeline as SVG or text), the size report ([`size`]: per
//! unit, image, directory and file, as HTML or text, and the difference
//! between two builds), and the SBOM ([`spdx`]: SPDX 2.3 documents, Debian
//! licences mapped to SPDX identifiers, merging the SBOMs of images).
//!
//! Host-side presentation only: it takes plain data (timeline entries,
//! file records, package lists) and returns bytes. It depends on
//! `slipway-contract` (the timeline's types) and nothing else of ours, so the
//! CLI and the package builder can both use it.

pub mod chart;
pub mod debian;
pub mod html;
pub mod size;
pub mod spdx;
pub mod time;
pub mod xml;
