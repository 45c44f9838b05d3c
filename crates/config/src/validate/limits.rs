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
pub fn parse_rlimit(text: &str) -> Result<Rlimit, RlimitError> {
    let parts: Vec<&str> = text.splitn(3, ',').collect();
    let [name, soft, hard] = parts.as_slice() else {
        return Err(RlimitError::Shape(text.to_string()));
    };
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("RLIMIT_") {
        upper
    } else {
        format!("RLIMIT_{upper}")
    };
    let Some(kind) = RLIMITS.iter().copied().find(|k| *k == full) else {
        return Err(RlimitError::Unknown {
            name: name.trim().to_string(),
            suggestion: crate::decode::closest(&full, RLIMITS)
                .map(|s| s.trim_start_matches("RLIMIT_").to_ascii_lowercase()),
        });
    };
    let value = |s: &str| -> Result<u64, RlimitError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("unlimited") {
            return Ok(u64::MAX);
        }
        s.parse::<u64>()
            .map_err(|_| RlimitError::NotALimit(s.to_string()))
    };
    let soft = value(soft)?;
    let hard = value(hard)?;
    if soft > hard {
        return Err(RlimitError::SoftAboveHard { soft, hard });
    }
    Ok(Rlimit { kind, soft, hard })
}

/// Why an `rlimits` entry does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RlimitError {
    #[error("`{0}` is not `name,soft,hard` (e.g. `nofile,1024,4096`)")]
    Shape(String),
    #[error(
        "unknown resource limit `{name}`{}",
        suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default()
    )]
    Unknown {
        name: String,
        suggestion: Option<String>,
    },
    #[error("`{0}` is not a limit: expected a non-negative integer or `unlimited`")]
    NotALimit(String),
    #[error(
        "the soft limit ({}) is above the hard limit ({}); the kernel refuses that",
        show_limit(*soft),
        show_limit(*hard)
    )]
    SoftAboveHard { soft: u64, hard: u64 },
}

fn show_limit(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".into()
    } else {
        v.to_string()
    }
}
