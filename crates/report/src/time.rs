//! Times written into documents: whole seconds as RFC 3339 UTC.

/// LinuxKit's fixed time for what a build generates, 2017-04-18T16:30:00Z;
/// SBOMs carry it unless `SOURCE_DATE_EPOCH` or the current time is asked for.
pub const LINUXKIT_TIME: u64 = 1_492_533_000;

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (civil-from-days,
/// Howard Hinnant's algorithm). Hand-written: this one conversion is all
/// the SBOM needs of a date library, and the workspace has none.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(LINUXKIT_TIME), "2017-04-18T16:30:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
