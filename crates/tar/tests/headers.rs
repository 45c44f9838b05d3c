//! Headers for sizes newc cannot hold: a file over 4 GiB fits ustar's octal
//! size field, one over 8 GiB gets a PAX `size` record; the tar crate reads
//! both back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;

use slipway_tar::{Entry, Kind, header_bytes};

/// The size the tar crate reads for an entry of `size` bytes, and whether
/// its headers carry a PAX `size` record.
fn read_back(size: u64) -> (u64, bool) {
    let h = Entry::new("data/huge", Kind::File { size }, 0o644, 0);
    let head = header_bytes(&h).unwrap();
    let pax = head.windows(5).any(|w| w == b"size=");
    // The content is never materialised: zeros stand in for it.
    let stream = std::io::Cursor::new(head).chain(std::io::repeat(0).take(size + 1024));
    let mut archive = tar::Archive::new(stream);
    let mut entries = archive.entries().unwrap();
    let entry = entries.next().unwrap().unwrap();
    assert_eq!(entry.path().unwrap().to_str(), Some("data/huge"));
    (entry.size(), pax)
}

#[test]
fn sizes_over_4_and_8_gib_are_written_exactly() {
    let over4 = (4u64 << 30) + 1;
    assert_eq!(read_back(over4), (over4, false), "octal holds 4 GiB + 1");
    let over8 = (9u64 << 30) + 7;
    assert_eq!(read_back(over8), (over8, true), "PAX size over 8 GiB");
}
