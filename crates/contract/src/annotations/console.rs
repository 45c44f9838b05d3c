//! `org.slipway.console`: exactly `true` or `false`.

use std::fmt;
use std::str::FromStr;

use super::{AnnotationError, CONSOLE};

/// Whether a service is attached to the console. Only the exact spellings
/// `true` and `false` are accepted, so that `yes`, `1` or `True` are reported
/// rather than guessed at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Console(pub bool);

impl FromStr for Console {
    type Err = AnnotationError;

    fn from_str(s: &str) -> Result<Console, AnnotationError> {
        match s {
            "true" => Ok(Console(true)),
            "false" => Ok(Console(false)),
            _ => Err(AnnotationError::InvalidValue {
                key: CONSOLE,
                value: s.to_owned(),
                expected: "true or false",
            }),
        }
    }
}

impl fmt::Display for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 { "true" } else { "false" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_true_and_false() {
        assert_eq!("true".parse::<Console>(), Ok(Console(true)));
        assert_eq!("false".parse::<Console>(), Ok(Console(false)));
        assert_eq!(Console(true).to_string(), "true");
        assert_eq!(Console(false).to_string(), "false");
        assert_eq!(Console::default(), Console(false));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in ["", "True", "FALSE", "yes", "no", "1", "0", "on", " true"] {
            assert_eq!(
                bad.parse::<Console>().unwrap_err().to_string(),
                format!("invalid value {bad:?} for org.slipway.console: expected true or false")
            );
        }
    }
}
