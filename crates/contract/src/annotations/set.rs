//! All of a bundle's slipway annotations, parsed and validated together.

use super::{
    AFTER, After, AnnotationError, CONSOLE, Console, KeyStatus, READY, RESTART, Ready, Restart,
    check_key,
};

/// The typed slipway annotations of one container, defaults where absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlipwayAnnotations {
    /// `org.slipway.restart` (default `never`).
    pub restart: Restart,
    /// `org.slipway.ready` (default: ready as soon as started).
    pub ready: Option<Ready>,
    /// `org.slipway.after` (default: none).
    pub after: After,
    /// `org.slipway.console` (default `false`).
    pub console: bool,
}

impl SlipwayAnnotations {
    /// Parses the slipway annotations among `annotations`, ignoring keys
    /// outside `org.slipway.`. Returns every problem at once, each with the
    /// key it concerns, so a user fixes them in one go.
    pub fn from_annotations<'a>(
        annotations: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, Vec<(String, AnnotationError)>> {
        let mut parsed = SlipwayAnnotations::default();
        let mut seen: Vec<&str> = Vec::new();
        let mut errors: Vec<(String, AnnotationError)> = Vec::new();
        for (key, value) in annotations {
            match check_key(key) {
                KeyStatus::Foreign => continue,
                KeyStatus::Unknown { suggestion } => {
                    let error = AnnotationError::UnknownKey {
                        key: key.to_owned(),
                        suggestion,
                    };
                    errors.push((key.to_owned(), error));
                    continue;
                }
                KeyStatus::Known => {}
            }
            // A map cannot repeat a key, but a merged list of pairs can.
            if seen.contains(&key) {
                let error = AnnotationError::Duplicate {
                    key: key.to_owned(),
                };
                errors.push((key.to_owned(), error));
                continue;
            }
            seen.push(key);
            if let Err(error) = parsed.set(key, value) {
                errors.push((key.to_owned(), error));
            }
        }
        if errors.is_empty() {
            Ok(parsed)
        } else {
            Err(errors)
        }
    }

    /// Sets one known annotation from its text.
    fn set(&mut self, key: &str, value: &str) -> Result<(), AnnotationError> {
        match key {
            RESTART => self.restart = value.parse()?,
            READY => self.ready = Some(value.parse()?),
            AFTER => self.after = value.parse()?,
            CONSOLE => self.console = value.parse::<Console>()?.0,
            // Unreachable while every known key has an arm above; an error,
            // not a panic, if one is added without its arm.
            _ => {
                return Err(AnnotationError::UnknownKey {
                    key: key.to_owned(),
                    suggestion: None,
                });
            }
        }
        Ok(())
    }

    /// The annotations that express these values, omitting defaults, in the
    /// order of [`known_keys`](super::known_keys) (for a builder writing
    /// them; `from_annotations` of the result gives back `self`).
    pub fn to_annotations(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.restart != Restart::default() {
            out.push((RESTART, self.restart.to_string()));
        }
        if let Some(ready) = &self.ready {
            out.push((READY, ready.to_string()));
        }
        if !self.after.is_empty() {
            out.push((AFTER, self.after.to_string()));
        }
        if self.console {
            out.push((CONSOLE, Console(true).to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_absent() {
        let parsed = SlipwayAnnotations::from_annotations([]).unwrap();
        assert_eq!(parsed, SlipwayAnnotations::default());
        assert_eq!(parsed.restart, Restart::Never);
        assert_eq!(parsed.ready, None);
        assert!(parsed.after.is_empty());
        assert!(!parsed.console);
    }

    #[test]
    fn parses_all_and_ignores_foreign_keys() {
        let parsed = SlipwayAnnotations::from_annotations([
            ("org.opencontainers.image.title", "x"),
            ("org.slipway.restart", "on-failure"),
            ("org.slipway.ready", "tcp:22"),
            ("org.slipway.after", "dhcpcd, ntpd"),
            ("org.slipway.console", "true"),
            ("com.example.whatever", "anything at all"),
        ])
        .unwrap();
        assert_eq!(parsed.restart, Restart::OnFailure);
        assert_eq!(parsed.ready, Some(Ready::Tcp(22)));
        assert_eq!(parsed.after.names(), ["dhcpcd", "ntpd"]);
        assert!(parsed.console);
    }

    #[test]
    fn collects_every_error() {
        let errors = SlipwayAnnotations::from_annotations([
            ("org.slipway.restart", "sometimes"),
            ("org.slipway.ready", "file:relative"),
            ("org.slipway.after", "a,,b"),
            ("org.slipway.console", "yes"),
            ("org.slipway.restrat", "always"),
            ("org.slipway.colour", "blue"),
            ("org.slipway.console", "true"),
            ("org.other", "ignored"),
        ])
        .unwrap_err();
        let rendered: Vec<(String, String)> = errors
            .iter()
            .map(|(key, error)| (key.clone(), error.to_string()))
            .collect();
        let expected = [
            (
                "org.slipway.restart",
                "invalid value \"sometimes\" for org.slipway.restart: expected one of never, on-failure, always",
            ),
            (
                "org.slipway.ready",
                "invalid value \"file:relative\" for org.slipway.ready: the path after file: must be absolute (start with '/')",
            ),
            (
                "org.slipway.after",
                "invalid value \"a,,b\" for org.slipway.after: item 2 is empty; expected service names separated by commas",
            ),
            (
                "org.slipway.console",
                "invalid value \"yes\" for org.slipway.console: expected true or false",
            ),
            (
                "org.slipway.restrat",
                "unknown annotation org.slipway.restrat; did you mean org.slipway.restart?",
            ),
            (
                "org.slipway.colour",
                "unknown annotation org.slipway.colour; slipway knows org.slipway.restart, org.slipway.ready, org.slipway.after, org.slipway.console",
            ),
            (
                "org.slipway.console",
                "annotation org.slipway.console is given more than once",
            ),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, m)| ((*k).to_owned(), (*m).to_owned()))
            .collect();
        assert_eq!(rendered, expected);
    }

    #[test]
    fn to_annotations_round_trips() {
        assert!(SlipwayAnnotations::default().to_annotations().is_empty());
        let full = SlipwayAnnotations {
            restart: Restart::Always,
            ready: Some(Ready::File("/run/ready".to_owned())),
            after: "a,b".parse().unwrap(),
            console: true,
        };
        let pairs = full.to_annotations();
        assert_eq!(
            pairs,
            [
                ("org.slipway.restart", "always".to_owned()),
                ("org.slipway.ready", "file:/run/ready".to_owned()),
                ("org.slipway.after", "a,b".to_owned()),
                ("org.slipway.console", "true".to_owned()),
            ]
        );
        let back =
            SlipwayAnnotations::from_annotations(pairs.iter().map(|(k, v)| (*k, v.as_str())))
                .unwrap();
        assert_eq!(back, full);
    }

    #[test]
    fn works_with_a_map() {
        let map: std::collections::BTreeMap<String, String> = [
            ("org.slipway.restart".to_owned(), "always".to_owned()),
            ("other".to_owned(), "x".to_owned()),
        ]
        .into_iter()
        .collect();
        let parsed =
            SlipwayAnnotations::from_annotations(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .unwrap();
        assert_eq!(parsed.restart, Restart::Always);
    }
}
