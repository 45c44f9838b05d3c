//! `org.slipway.after`: a comma-separated list of service names.

use std::fmt;
use std::str::FromStr;

use super::AnnotationError;

/// Services that must be ready before this one starts, in the order written.
///
/// Whitespace around each name is trimmed. An empty (or all-blank) value is
/// the empty list, so `After::default().to_string()` parses back; an empty
/// item (`a,,b`, `a,`) is rejected, as are duplicates and names that could
/// not be service directory names (whitespace or control characters inside,
/// `/`, `.` and `..`). Whether the services exist is the config's business.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct After(Vec<String>);

impl After {
    /// The service names, in the order written.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Whether no service is listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for After {
    type Err = AnnotationError;

    fn from_str(s: &str) -> Result<After, AnnotationError> {
        let invalid = |reason: String| AnnotationError::InvalidAfter {
            value: s.to_owned(),
            reason,
        };
        if s.trim().is_empty() {
            return Ok(After::default());
        }
        let mut names: Vec<String> = Vec::new();
        for (index, item) in s.split(',').enumerate() {
            let name = item.trim();
            if name.is_empty() {
                return Err(invalid(format!(
                    "item {} is empty; expected service names separated by commas",
                    index + 1
                )));
            }
            check_name(name).map_err(&invalid)?;
            if names.iter().any(|seen| seen == name) {
                return Err(invalid(format!(
                    "service {name:?} is listed more than once"
                )));
            }
            names.push(name.to_owned());
        }
        Ok(After(names))
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if let Some(bad) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '/')
    {
        return Err(format!(
            "service name {name:?} contains {bad:?}; service names have no whitespace, control characters or '/'"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a service name"));
    }
    Ok(())
}

impl fmt::Display for After {
    /// The names joined by `,` (no spaces).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(value: &str) -> Vec<String> {
        value.parse::<After>().unwrap().names().to_vec()
    }

    #[test]
    fn parses_lists() {
        assert_eq!(names("dhcpcd"), ["dhcpcd"]);
        assert_eq!(names("dhcpcd,sshd"), ["dhcpcd", "sshd"]);
        assert_eq!(names(" dhcpcd , sshd\t,ntpd "), ["dhcpcd", "sshd", "ntpd"]);
        assert_eq!(names("b,a"), ["b", "a"]);
        assert_eq!(names("my-service_1.x"), ["my-service_1.x"]);
        assert!(names("").is_empty());
        assert!(names("  ").is_empty());
        assert!("".parse::<After>().unwrap().is_empty());
    }

    #[test]
    fn displays_canonically() {
        let after: After = " a , b ".parse().unwrap();
        assert_eq!(after.to_string(), "a,b");
        assert_eq!(after.to_string().parse::<After>().unwrap(), after);
        assert_eq!(After::default().to_string(), "");
        assert_eq!(
            After::default().to_string().parse::<After>().unwrap(),
            After::default()
        );
    }

    #[test]
    fn rejects_bad_lists() {
        let cases: &[(&str, &str)] = &[
            (
                "a,,b",
                "item 2 is empty; expected service names separated by commas",
            ),
            (
                "a,",
                "item 2 is empty; expected service names separated by commas",
            ),
            (
                ",a",
                "item 1 is empty; expected service names separated by commas",
            ),
            (
                "a, ,b",
                "item 2 is empty; expected service names separated by commas",
            ),
            ("a,b,a", "service \"a\" is listed more than once"),
            ("a, a", "service \"a\" is listed more than once"),
            (
                "a b",
                "service name \"a b\" contains ' '; service names have no whitespace, control characters or '/'",
            ),
            (
                "a/b",
                "service name \"a/b\" contains '/'; service names have no whitespace, control characters or '/'",
            ),
            (
                "a\u{0}",
                "service name \"a\\0\" contains '\\0'; service names have no whitespace, control characters or '/'",
            ),
            ("..", "\"..\" is not a service name"),
            ("a,.", "\".\" is not a service name"),
        ];
        for (value, reason) in cases {
            assert_eq!(
                value.parse::<After>().unwrap_err().to_string(),
                format!("invalid value {value:?} for org.slipway.after: {reason}"),
                "{value:?}"
            );
        }
    }
}
