//! FAT names: which names are valid, which need long-name (VFAT) entries,
//! and the 8.3 short names generated for those that do.

/// Characters allowed in a short name besides `A-Z` and `0-9`.
const SHORT_EXTRA: &[u8] = b"!#$%&'()-@^_`{}~";
/// Characters never allowed in a long name (besides control characters).
const LONG_FORBIDDEN: &[char] = &['"', '*', '/', ':', '<', '>', '?', '\\', '|'];
/// The longest long name, in UTF-16 units.
pub const MAX_LONG: usize = 255;

/// Why `name` cannot be a FAT file name, if it cannot.
pub fn check(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("`{name}` is not a file name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || LONG_FORBIDDEN.contains(c))
    {
        return Err(format!("{c:?} is not allowed in a FAT name"));
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Err("a FAT name cannot end with a dot or a space".into());
    }
    if name.encode_utf16().count() > MAX_LONG {
        return Err(format!("longer than {MAX_LONG} UTF-16 units"));
    }
    Ok(())
}

/// The key names are compared by: FAT lookups ignore case.
pub fn fold(name: &str) -> String {
    name.to_uppercase()
}

fn short_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || SHORT_EXTRA.contains(&b)
}

/// `name` as an 11-byte short name if it is exactly one already (upper case,
/// 1-8 characters, optionally a dot and 1-3 more): no long entries needed.
pub fn exact_short(name: &str) -> Option<[u8; 11]> {
    let bytes = name.as_bytes();
    let (base, ext) = match name.find('.') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[][..]),
    };
    let ok = (1..=8).contains(&base.len())
        && ext.len() <= 3
        && name.contains('.') != ext.is_empty()
        && base.iter().chain(ext).all(|&b| short_char(b));
    if !ok {
        return None;
    }
    let mut out = [b' '; 11];
    out[..base.len()].copy_from_slice(base);
    out[8..8 + ext.len()].copy_from_slice(ext);
    Some(out)
}

/// The characters a generated short name starts from: upper-cased, with
/// anything a short name cannot hold turned into `_`.
fn basis(part: &str, max: usize) -> Vec<u8> {
    part.chars()
        .filter(|&c| c != ' ' && c != '.')
        .map(|c| {
            let u = c.to_ascii_uppercase();
            if u.is_ascii() && short_char(u as u8) {
                u as u8
            } else {
                b'_'
            }
        })
        .take(max)
        .collect()
}

/// Short names for the entries of one directory, in the order given (the
/// caller sorts): exact short names are kept; every other name gets a
/// generated `BASIS~N.EXT` that no sibling has. `None` when a directory
/// would need more than a million generated names with one basis.
pub fn assign(names: &[&str]) -> Option<Vec<([u8; 11], bool)>> {
    let mut taken: std::collections::HashSet<[u8; 11]> =
        names.iter().filter_map(|n| exact_short(n)).collect();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if let Some(short) = exact_short(name) {
            out.push((short, false));
            continue;
        }
        let trimmed = name.trim_start_matches('.');
        let (base_src, ext_src) = match trimmed.rfind('.') {
            Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
            None => (trimmed, ""),
        };
        let mut base = basis(base_src, 8);
        if base.is_empty() {
            base.push(b'_');
        }
        let ext = basis(ext_src, 3);
        let mut found = None;
        for n in 1..=999_999u32 {
            let tail = format!("~{n}");
            let keep = base.len().min(8 - tail.len());
            let mut short = [b' '; 11];
            short[..keep].copy_from_slice(&base[..keep]);
            short[keep..keep + tail.len()].copy_from_slice(tail.as_bytes());
            short[8..8 + ext.len()].copy_from_slice(&ext);
            if taken.insert(short) {
                found = Some(short);
                break;
            }
        }
        out.push((found?, true));
    }
    Some(out)
}

/// The checksum of a short name that ties long-name entries to it.
pub fn checksum(short: &[u8; 11]) -> u8 {
    short
        .iter()
        .fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// How many 32-byte long-name entries `name` takes.
pub fn long_entries(name: &str) -> usize {
    name.encode_utf16().count().div_ceil(13)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: &[u8; 11]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn exact_short_names() {
        assert_eq!(s(&exact_short("BOOTX64.EFI").unwrap()), "BOOTX64 EFI");
        assert_eq!(s(&exact_short("EFI").unwrap()), "EFI        ");
        assert_eq!(s(&exact_short("A~1.B").unwrap()), "A~1     B  ");
        for no in [
            "bootx64.efi",
            "TOOLONGNAME",
            "A.TOOL",
            "A.",
            ".A",
            "A B",
            "A.B.C",
            "É",
            "A+B",
        ] {
            assert!(exact_short(no).is_none(), "{no}");
        }
    }

    #[test]
    fn generated_short_names_are_unique() {
        let names = [
            "BOOT~1",
            "boot",
            "bootloader.conf",
            "bootloader.cfg",
            "vmlinuz",
            ".hidden",
            "Linux Kernel.efi.stub",
            "été",
        ];
        let got: Vec<String> = assign(&names).unwrap().iter().map(|(n, _)| s(n)).collect();
        assert_eq!(
            got,
            [
                "BOOT~1     ",
                "BOOT~2     ",
                "BOOTLO~1CON",
                "BOOTLO~1CFG",
                "VMLINU~1   ",
                "HIDDEN~1   ",
                "LINUXK~1STU",
                "_T_~1      ",
            ]
        );
        let flags: Vec<bool> = assign(&names).unwrap().iter().map(|(_, l)| *l).collect();
        assert_eq!(flags, [false, true, true, true, true, true, true, true]);
    }

    #[test]
    fn checksums_and_validity() {
        // The checksum Microsoft's specification gives as an example form.
        let mut sum = 0u8;
        for &b in b"FILENAMEEXT" {
            sum = (if sum & 1 != 0 { 0x80 } else { 0 }) + (sum >> 1);
            sum = sum.wrapping_add(b);
        }
        assert_eq!(checksum(b"FILENAMEEXT"), sum);
        assert!(check("ok name.txt").is_ok());
        for bad in ["", ".", "..", "a/b", "a:b", "end.", "end ", "tab\t"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert!(check(&"x".repeat(256)).is_err());
        assert_eq!(long_entries("a"), 1);
        assert_eq!(long_entries(&"a".repeat(13)), 1);
        assert_eq!(long_entries(&"a".repeat(14)), 2);
    }
}
