//! Which `org.slipway.*` keys exist, and a suggestion for a misspelt one.

use super::{AFTER, CONSOLE, PREFIX, READY, RESTART};

/// Largest edit distance (on the part after the prefix) still suggested:
/// enough for a typo or two, not so much that unrelated keys are offered.
const MAX_SUGGESTION_DISTANCE: usize = 2;

/// Every annotation key slipway defines.
pub fn known_keys() -> &'static [&'static str] {
    &[RESTART, READY, AFTER, CONSOLE]
}

/// What an annotation key is to slipway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    /// Not under `org.slipway.`: someone else's, passed through untouched.
    Foreign,
    /// One of [`known_keys`].
    Known,
    /// Under `org.slipway.` but not defined; with the closest known key if
    /// one is near enough to be a likely typo.
    Unknown {
        /// The suggested key.
        suggestion: Option<&'static str>,
    },
}

/// Classifies an annotation key (keys are case-sensitive, as in OCI).
pub fn check_key(key: &str) -> KeyStatus {
    let Some(suffix) = key.strip_prefix(PREFIX) else {
        return KeyStatus::Foreign;
    };
    if known_keys().contains(&key) {
        return KeyStatus::Known;
    }
    // Compare case-insensitively so `org.slipway.Restart` gets a suggestion.
    let suffix = suffix.to_ascii_lowercase();
    let suggestion = known_keys()
        .iter()
        .filter_map(|known| {
            let known_suffix = known.strip_prefix(PREFIX)?;
            let distance = edit_distance(&suffix, known_suffix);
            (distance <= MAX_SUGGESTION_DISTANCE).then_some((distance, *known))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known);
    KeyStatus::Unknown { suggestion }
}

/// Optimal string alignment distance: insertions, deletions, substitutions
/// and swaps of adjacent characters each cost one (a swap is the commonest
/// typo, and plain Levenshtein would charge two for it).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rolling rows: two rows back is needed for swaps.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("restart", "restart"), 0);
        assert_eq!(edit_distance("restrat", "restart"), 1);
        assert_eq!(edit_distance("restar", "restart"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("ca", "abc"), 3);
    }

    #[test]
    fn known_keys_are_known() {
        assert_eq!(
            known_keys(),
            [
                "org.slipway.restart",
                "org.slipway.ready",
                "org.slipway.after",
                "org.slipway.console"
            ]
        );
        for key in known_keys() {
            assert_eq!(check_key(key), KeyStatus::Known);
        }
    }

    #[test]
    fn foreign_keys() {
        for key in [
            "org.opencontainers.image.title",
            "org.mobyproject.config",
            "org.slipway",
            "org.Slipway.restart",
            "",
        ] {
            assert_eq!(check_key(key), KeyStatus::Foreign, "{key}");
        }
    }

    #[test]
    fn suggestions() {
        let cases = [
            ("org.slipway.restrat", Some(RESTART)),
            ("org.slipway.restarts", Some(RESTART)),
            ("org.slipway.Restart", Some(RESTART)),
            ("org.slipway.reddy", Some(READY)),
            ("org.slipway.raedy", Some(READY)),
            ("org.slipway.afetr", Some(AFTER)),
            ("org.slipway.aftr", Some(AFTER)),
            ("org.slipway.consol", Some(CONSOLE)),
            ("org.slipway.CONSOLE", Some(CONSOLE)),
            ("org.slipway.", None),
            ("org.slipway.restart-policy", None),
            ("org.slipway.healthcheck", None),
            ("org.slipway.after.x", Some(AFTER)),
            ("org.slipway.ready-file", None),
            ("org.slipway.x", None),
        ];
        for (key, suggestion) in cases {
            assert_eq!(check_key(key), KeyStatus::Unknown { suggestion }, "{key}");
        }
    }
}
