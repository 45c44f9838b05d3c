//! `--size` as LinuxKit parses it: a whole number of MiB with an `M`
//! suffix, of GiB with a `G` suffix, or of GiB with no suffix.

use super::DiskError;

/// LinuxKit's default disk size, 1024 MiB.
pub const DEFAULT_SIZE: u64 = 1024 << 20;

/// Parses `1024M`, `4G` or `4` (GiB) into bytes. Only upper-case suffixes,
/// as LinuxKit; zero, signs, fractions and anything else are refused.
pub fn parse_size(text: &str) -> Result<u64, DiskError> {
    let bad = |reason| DiskError::BadSize {
        text: text.to_string(),
        reason,
    };
    let (digits, shift) = match text.strip_suffix('M') {
        Some(d) => (d, 20),
        None => (text.strip_suffix('G').unwrap_or(text), 30),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            "expected a whole number followed by M (MiB) or G (GiB), or a bare number of GiB, e.g. 1024M",
        ));
    }
    let n: u64 = digits.parse().map_err(|_| bad("the number is too large"))?;
    if n == 0 {
        return Err(bad("a disk cannot be empty"));
    }
    n.checked_mul(1 << shift)
        .filter(|b| *b <= 1 << 50)
        .ok_or(bad("larger than 1 PiB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_and_bare_numbers() {
        assert_eq!(parse_size("1024M").unwrap(), 1 << 30);
        assert_eq!(parse_size("1M").unwrap(), 1 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("3").unwrap(), 3 << 30);
        assert_eq!(parse_size("0010M").unwrap(), 10 << 20);
        assert_eq!(DEFAULT_SIZE, parse_size("1024M").unwrap());
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "",
            "M",
            "G",
            "0",
            "0M",
            "-1G",
            "+1G",
            "1.5G",
            "1m",
            "1g",
            "1K",
            "1T",
            "1 G",
            " 1G",
            "1GB",
            "1MiB",
            "99999999999999999999",
            "2000000G",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(
                matches!(&err, DiskError::BadSize { text, .. } if text == bad),
                "{bad}: {err}"
            );
        }
        let msg = parse_size("1.5G").unwrap_err().to_string();
        assert!(msg.contains("`1.5G`") && msg.contains("1024M"), "{msg}");
    }
}
