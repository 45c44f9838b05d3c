//! Errors in slipway annotations.

/// Why a slipway annotation is rejected. Messages name the annotation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// A value that is none of the accepted spellings.
    #[error("invalid value {value:?} for {key}: expected {expected}")]
    InvalidValue {
        /// The annotation key.
        key: &'static str,
        /// The value as written.
        value: String,
        /// The accepted forms.
        expected: &'static str,
    },
    /// An `org.slipway.ready` value of a known form with a bad path or port.
    #[error("invalid value {value:?} for org.slipway.ready: {reason}")]
    InvalidReady {
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `org.slipway.after` list that is malformed.
    #[error("invalid value {value:?} for org.slipway.after: {reason}")]
    InvalidAfter {
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key under `org.slipway.` that slipway does not define.
    #[error("unknown annotation {key}{}", suggestion_text(.suggestion))]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The known key it most resembles, if any is close.
        suggestion: Option<&'static str>,
    },
    /// The same slipway annotation given twice.
    #[error("annotation {key} is given more than once")]
    Duplicate {
        /// The key.
        key: String,
    },
}

fn suggestion_text(suggestion: &Option<&'static str>) -> String {
    match suggestion {
        Some(known) => format!("; did you mean {known}?"),
        None => format!("; slipway knows {}", super::known_keys().join(", ")),
    }
}
