//! Path hygiene for layer entries: lexical cleaning, clamped at the root.

/// Cleans a tar entry name into a relative path without `.`, `..`, empty
/// components, or leading and trailing slashes. `..` never climbs above the
/// image root (as `filepath.Join("/", name)` in Docker and containerd).
/// The root itself is `""`.
pub fn clean(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// `parent/name` of a cleaned path (`""` for a top-level name).
pub fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

/// Whether `path` is `dir` or inside it (cleaned paths; `""` is the root).
pub fn is_within(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning() {
        assert_eq!(clean("./a/b/"), "a/b");
        assert_eq!(clean("/etc/passwd"), "etc/passwd");
        assert_eq!(clean("../../etc/passwd"), "etc/passwd");
        assert_eq!(clean("a/../../b"), "b");
        assert_eq!(clean("a//b/./c"), "a/b/c");
        assert_eq!(clean("./"), "");
        assert!(is_within("a/b", "a"));
        assert!(!is_within("ab", "a"));
        assert!(is_within("x", ""));
    }
}
