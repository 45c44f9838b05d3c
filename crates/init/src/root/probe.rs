//! What filesystem a block device holds, with its label and UUID, read
//! from its superblock as blkid reads it for udev's `/dev/disk/by-*`: the
//! initrd has neither. Only the filesystems a root device holds, so a few
//! fixed offsets each; hand-written, since a probing crate would bring far
//! more than these.
//!
//! | filesystem | where | `LABEL=` | `UUID=` |
//! |---|---|---|---|
//! | squashfs | `hsqs` at 0 | none | none |
//! | erofs | magic `0xE0F5E1E2` at 1024 | volume name | the volume UUID |
//! | ext2/3/4 | magic `0xEF53` at 1024 + 56 | volume name | the volume UUID |
//! | iso9660 | `CD001` at 32 KiB + 1 | volume id | blkid's: the volume's modification (else creation) date, `YYYY-MM-DD-HH-MM-SS-cc` |

/// How much of the device's start [`probe`] needs.
pub const HEAD_LEN: usize = 4096;
/// Where ISO 9660's primary volume descriptor is (sector 16 of 2 KiB).
pub const ISO_PVD_OFFSET: u64 = 32 * 1024;
/// The length of a volume descriptor.
pub const ISO_PVD_LEN: usize = 2048;

/// What a device's superblock says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// The type `mount(2)` wants: `squashfs`, `erofs`, `ext4`, `iso9660`.
    pub fstype: &'static str,
    /// The volume label, when the filesystem has one and it is set.
    pub label: Option<String>,
    /// The volume UUID in blkid's spelling, when set.
    pub uuid: Option<String>,
}

impl Superblock {
    /// Whether `LABEL=label` names this filesystem.
    pub fn has_label(&self, label: &str) -> bool {
        self.label.as_deref() == Some(label)
    }

    /// Whether `UUID=uuid` names this filesystem (case does not matter).
    pub fn has_uuid(&self, uuid: &str) -> bool {
        self.uuid
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case(uuid))
    }
}

impl std::fmt::Display for Superblock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.fstype)?;
        if let Some(label) = &self.label {
            write!(f, " LABEL={label}")?;
        }
        if let Some(uuid) = &self.uuid {
            write!(f, " UUID={uuid}")?;
        }
        Ok(())
    }
}

fn le32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at + 4)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn le16(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at + 2)?;
    Some(u16::from_le_bytes([bytes[0], bytes[1]]))
}

/// A NUL-padded name; `None` when empty.
fn c_string(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let name = String::from_utf8_lossy(&bytes[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

/// 16 bytes as `8-4-4-4-12` lowercase hex; `None` when all zero.
fn uuid(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 16 || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// An ISO 9660 date (`YYYYMMDDHHMMSScc` digits, then a time zone byte) in
/// blkid's UUID spelling; `None` when unset (zeros, or `0` digits).
fn iso_date(bytes: &[u8]) -> Option<String> {
    let digits = bytes.get(..16)?;
    if digits.iter().all(|b| *b == b'0' || *b == 0 || *b == b' ') {
        return None;
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let d = |range: std::ops::Range<usize>| String::from_utf8_lossy(&digits[range]).into_owned();
    Some(format!(
        "{}-{}-{}-{}-{}-{}-{}",
        d(0..4),
        d(4..6),
        d(6..8),
        d(8..10),
        d(10..12),
        d(12..14),
        d(14..16)
    ))
}

/// The filesystem of a device whose first [`HEAD_LEN`] bytes are `head`
/// and whose [`ISO_PVD_LEN`] bytes at [`ISO_PVD_OFFSET`] are `pvd` (either
/// may be short or empty: a small or unreadable device). `None` for none
/// of the above (a partition table, an empty disk).
pub fn probe(head: &[u8], pvd: &[u8]) -> Option<Superblock> {
    if head.starts_with(b"hsqs") {
        return Some(Superblock {
            fstype: "squashfs",
            label: None,
            uuid: None,
        });
    }
    const SB: usize = 1024;
    if le32(head, SB) == Some(0xE0F5_E1E2) {
        return Some(Superblock {
            fstype: "erofs",
            label: head.get(SB + 64..SB + 80).and_then(c_string),
            uuid: head.get(SB + 48..SB + 64).and_then(uuid),
        });
    }
    if le16(head, SB + 56) == Some(0xEF53) {
        return Some(Superblock {
            fstype: "ext4",
            label: head.get(SB + 120..SB + 136).and_then(c_string),
            uuid: head.get(SB + 104..SB + 120).and_then(uuid),
        });
    }
    if pvd.len() >= 881 && pvd[0] == 1 && &pvd[1..6] == b"CD001" {
        let volume_id = String::from_utf8_lossy(&pvd[40..72])
            .trim_end_matches([' ', '\0'])
            .to_owned();
        return Some(Superblock {
            fstype: "iso9660",
            label: (!volume_id.is_empty()).then_some(volume_id),
            uuid: iso_date(&pvd[830..847]).or_else(|| iso_date(&pvd[813..830])),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    }

    #[test]
    fn squashfs_has_neither_label_nor_uuid() {
        let mut head = vec![0u8; HEAD_LEN];
        put(&mut head, 0, b"hsqs");
        let sb = probe(&head, &[]).unwrap();
        assert_eq!((sb.fstype, sb.label, sb.uuid), ("squashfs", None, None));
    }

    #[test]
    fn erofs_label_and_uuid() {
        let mut head = vec![0u8; HEAD_LEN];
        put(&mut head, 1024, &0xE0F5_E1E2u32.to_le_bytes());
        put(
            &mut head,
            1024 + 48,
            &[
                0x0b, 0x9f, 0x5c, 0x3e, 0x11, 0x11, 0x42, 0x22, 0x83, 0x33, 0x44, 0x44, 0x55, 0x55,
                0x66, 0x66,
            ],
        );
        put(&mut head, 1024 + 64, b"ROOT-1");
        let sb = probe(&head, &[]).unwrap();
        assert_eq!(sb.fstype, "erofs");
        assert_eq!(sb.label.as_deref(), Some("ROOT-1"));
        assert_eq!(
            sb.uuid.as_deref(),
            Some("0b9f5c3e-1111-4222-8333-444455556666")
        );
        assert!(sb.has_uuid("0B9F5C3E-1111-4222-8333-444455556666"));
        assert!(sb.has_label("ROOT-1") && !sb.has_label("ROOT"));
        // A 16-byte name fills the field: no NUL.
        put(&mut head, 1024 + 64, b"sixteen-bytes-ok");
        assert_eq!(
            probe(&head, &[]).unwrap().label.as_deref(),
            Some("sixteen-bytes-ok")
        );
        // Unset: no label, no UUID.
        put(&mut head, 1024 + 48, &[0u8; 32]);
        let sb = probe(&head, &[]).unwrap();
        assert_eq!((sb.label, sb.uuid), (None, None));
    }

    #[test]
    fn ext4_label_and_uuid() {
        let mut head = vec![0u8; HEAD_LEN];
        put(&mut head, 1024 + 56, &0xEF53u16.to_le_bytes());
        put(&mut head, 1024 + 104, &[0xab; 16]);
        put(&mut head, 1024 + 120, b"data");
        let sb = probe(&head, &[]).unwrap();
        assert_eq!(
            sb.to_string(),
            format!("ext4 LABEL=data UUID={}", uuid(&[0xab; 16]).unwrap())
        );
    }

    fn pvd(volume_id: &str, created: &[u8; 16], modified: &[u8; 16]) -> Vec<u8> {
        let mut pvd = vec![0u8; ISO_PVD_LEN];
        pvd[0] = 1;
        put(&mut pvd, 1, b"CD001");
        pvd[6] = 1;
        put(&mut pvd, 40, &[b' '; 32]);
        put(&mut pvd, 40, volume_id.as_bytes());
        put(&mut pvd, 813, created);
        put(&mut pvd, 830, modified);
        pvd
    }

    #[test]
    fn iso9660_volume_id_and_date_uuid() {
        // An isohybrid image has an MBR at 0: the volume descriptor decides.
        let mut head = vec![0u8; HEAD_LEN];
        put(&mut head, 510, &[0x55, 0xaa]);
        let sb = probe(
            &head,
            &pvd("SLIPWAY", b"2019010203040500", b"2021020304050600"),
        )
        .unwrap();
        assert_eq!(sb.fstype, "iso9660");
        assert_eq!(sb.label.as_deref(), Some("SLIPWAY"));
        // blkid's: the modification date first.
        assert_eq!(sb.uuid.as_deref(), Some("2021-02-03-04-05-06-00"));
        let sb = probe(&head, &pvd("", b"2019010203040500", b"0000000000000000")).unwrap();
        assert_eq!(sb.uuid.as_deref(), Some("2019-01-02-03-04-05-00"));
        assert_eq!(sb.label, None);
        let sb = probe(&head, &pvd("X", &[0; 16], &[0; 16])).unwrap();
        assert_eq!(sb.uuid, None);
    }

    #[test]
    fn nothing_known_or_too_short() {
        assert_eq!(probe(&[], &[]), None);
        assert_eq!(probe(&[0u8; HEAD_LEN], &[0u8; ISO_PVD_LEN]), None);
        // Magic at 1024 but the buffer ends there.
        assert_eq!(probe(&[0u8; 1026], &[1, b'C', b'D']), None);
        // A supplementary (Joliet) descriptor in the primary's place is not one.
        let mut joliet = pvd("X", &[0; 16], &[0; 16]);
        joliet[0] = 2;
        assert_eq!(probe(&[], &joliet), None);
    }
}
