//! Resource limits: `rlimits` entries (`name,soft,hard`).

/// The resource limits LinuxKit knows, by their `RLIMIT_` names.
pub const RLIMITS: &[&str] = &[
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
    "RLIMIT_CORE",
    "RLIMIT_RSS",
    "RLIMIT_NPROC",
    "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
];

/// A parsed `rlimits` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rlimit {
    /// `RLIMIT_NOFILE` and so on.
    pub kind: &'static str,
    pub soft: u64,
    pub hard: u64,
}

/// `name,soft,hard`: name case-insensitive with `RLIMIT_` optional; `unlimited` is 2^64-1.
pub fn parse_rlimit(text: &str) -> Result<Rlimit, String> {
    let parts: Vec<&str> = text.splitn(3, ',').collect();
    let [name, soft, hard] = parts.as_slice() else {
        return Err(format!(
            "`{text}` is not `name,soft,hard` (e.g. `nofile,1024,4096`)"
        ));
    };
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("RLIMIT_") {
        upper
    } else {
        format!("RLIMIT_{upper}")
    };
    let Some(kind) = RLIMITS.iter().copied().find(|k| *k == full) else {
        let mut msg = format!("unknown resource limit `{}`", name.trim());
        if let Some(s) = crate::decode::closest(&full, RLIMITS) {
            msg.push_str(&format!(
                " (did you mean `{}`?)",
                s.trim_start_matches("RLIMIT_").to_ascii_lowercase()
            ));
        }
        return Err(msg);
    };
    let value = |s: &str| -> Result<u64, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("unlimited") {
            return Ok(u64::MAX);
        }
        s.parse::<u64>().map_err(|_| {
            format!("`{s}` is not a limit: expected a non-negative integer or `unlimited`")
        })
    };
    let soft = value(soft)?;
    let hard = value(hard)?;
    if soft > hard {
        return Err(format!(
            "the soft limit ({}) is above the hard limit ({}); the kernel refuses that",
            show_limit(soft),
            show_limit(hard)
        ));
    }
    Ok(Rlimit { kind, soft, hard })
}

fn show_limit(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".into()
    } else {
        v.to_string()
    }
}
