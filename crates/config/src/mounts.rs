//! Mount option lists and the `binds`/`tmpfs` short forms.

/// Options the OCI runtimes turn into mount flags or propagation; anything
/// else is passed to the filesystem as data.
const FLAGS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ridmap",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rnodiratime",
    "rdiratime",
    "rrelatime",
    "rnorelatime",
    "rnoatime",
    "ratime",
    "rstrictatime",
    "rnostrictatime",
    "rnosymfollow",
    "rsymfollow",
    // Data options LinuxKit's own packages use without a value.
    "nouuid",
    "noacl",
    "acl",
    "user_xattr",
    "nouser_xattr",
    "discard",
    "nodiscard",
    "errors=remount-ro",
];

/// What is wrong with one item of an option list.
#[derive(Debug, PartialEq, Eq)]
pub enum OptionProblem {
    Empty,
    Whitespace(String),
    /// Not a flag and not `key=value`: passed on as filesystem data, which may be a typo.
    Unknown(String),
}

/// Check a comma-separated option list, item by item.
pub fn check_options(list: &str) -> Vec<OptionProblem> {
    list.split(',').filter_map(check_option).collect()
}

pub fn check_option(option: &str) -> Option<OptionProblem> {
    if option.is_empty() {
        return Some(OptionProblem::Empty);
    }
    if option.chars().any(char::is_whitespace) {
        return Some(OptionProblem::Whitespace(option.to_string()));
    }
    if option.contains('=') || FLAGS.contains(&option) {
        return None;
    }
    Some(OptionProblem::Unknown(option.to_string()))
}

/// A `binds` entry: `source:destination[:option,...]`.
#[derive(Debug, PartialEq, Eq)]
pub struct Bind<'a> {
    pub source: &'a str,
    pub destination: &'a str,
    pub options: Option<&'a str>,
}

/// Why a `binds` or `tmpfs` entry does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountSyntaxError {
    #[error("a bind needs a source and a destination: `source:destination[:options]`")]
    BindTooShort,
    #[error(
        "a bind has at most three `:`-separated parts (`source:destination:options`), found {0}"
    )]
    BindTooLong(usize),
    #[error("a tmpfs entry is `destination[:options]`, found {0} `:`-separated parts")]
    Tmpfs(usize),
}

pub fn parse_bind(text: &str) -> Result<Bind<'_>, MountSyntaxError> {
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        [source, destination] => Ok(Bind {
            source,
            destination,
            options: None,
        }),
        [source, destination, options] => Ok(Bind {
            source,
            destination,
            options: Some(options),
        }),
        [_] => Err(MountSyntaxError::BindTooShort),
        _ => Err(MountSyntaxError::BindTooLong(parts.len())),
    }
}

/// A `tmpfs` entry: `destination[:option,...]`.
pub fn parse_tmpfs(text: &str) -> Result<(&str, Option<&str>), MountSyntaxError> {
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        [destination] => Ok((destination, None)),
        [destination, options] => Ok((destination, Some(options))),
        _ => Err(MountSyntaxError::Tmpfs(parts.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds() {
        assert_eq!(
            parse_bind("/a:/b").unwrap(),
            Bind {
                source: "/a",
                destination: "/b",
                options: None
            }
        );
        assert_eq!(
            parse_bind("/a:/b:ro,rshared").unwrap().options,
            Some("ro,rshared")
        );
        assert!(parse_bind("/a").is_err());
        assert!(parse_bind("a:b:c:d").is_err());
    }

    #[test]
    fn options() {
        assert!(check_options("rw,rbind,rshared").is_empty());
        assert!(check_options("mode=755,size=64k").is_empty());
        assert_eq!(check_options("rw,,ro"), vec![OptionProblem::Empty]);
        assert_eq!(
            check_options("rwx"),
            vec![OptionProblem::Unknown("rwx".into())]
        );
    }
}
