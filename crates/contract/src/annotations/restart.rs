//! `org.slipway.restart`: `never` (default), `on-failure`, `always`.

use std::fmt;
use std::str::FromStr;

use super::{AnnotationError, RESTART};

/// When the guest init restarts a service whose process exited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Restart {
    /// Never restart (LinuxKit's behaviour).
    #[default]
    Never,
    /// Restart when the process exits with a non-zero status or a signal.
    OnFailure,
    /// Restart whenever the process exits.
    Always,
}

impl Restart {
    /// The annotation spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::Never => "never",
            Restart::OnFailure => "on-failure",
            Restart::Always => "always",
        }
    }
}

impl FromStr for Restart {
    type Err = AnnotationError;

    fn from_str(s: &str) -> Result<Restart, AnnotationError> {
        match s {
            "never" => Ok(Restart::Never),
            "on-failure" => Ok(Restart::OnFailure),
            "always" => Ok(Restart::Always),
            _ => Err(AnnotationError::InvalidValue {
                key: RESTART,
                value: s.to_owned(),
                expected: "one of never, on-failure, always",
            }),
        }
    }
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_value() {
        for (text, value) in [
            ("never", Restart::Never),
            ("on-failure", Restart::OnFailure),
            ("always", Restart::Always),
        ] {
            assert_eq!(text.parse::<Restart>(), Ok(value));
            assert_eq!(value.to_string(), text);
        }
        assert_eq!(Restart::default(), Restart::Never);
    }

    #[test]
    fn rejects_other_spellings() {
        for bad in [
            "sometimes",
            "",
            "Never",
            "ALWAYS",
            "on_failure",
            "onfailure",
            " always",
            "always ",
        ] {
            assert_eq!(
                bad.parse::<Restart>().unwrap_err().to_string(),
                format!(
                    "invalid value {bad:?} for org.slipway.restart: expected one of never, on-failure, always"
                )
            );
        }
    }
}
