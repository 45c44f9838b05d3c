//! Content digests (`sha256:<hex>`, `sha512:<hex>`).
//!
//! Only the two algorithms the OCI image spec registers are accepted, and the
//! hex must be lowercase with the exact length of the algorithm: this is what
//! go-digest (and so every registry) validates, and a digest is a cache key, so
//! two spellings of the same value must never both be accepted.

use std::fmt;
use std::str::FromStr;

/// A digest algorithm registered by the OCI image spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, 64 hex characters.
    Sha256,
    /// SHA-512, 128 hex characters.
    Sha512,
}

impl Algorithm {
    /// The name used before the `:` in a digest string.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Number of hex characters in an encoded digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a valid digest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The input was empty.
    #[error("invalid digest: empty string")]
    Empty,
    /// No `algorithm:` prefix.
    #[error("invalid digest: missing algorithm prefix, expected sha256:<hex> or sha512:<hex>")]
    MissingAlgorithm,
    /// The algorithm is not sha256 or sha512.
    #[error("invalid digest: unsupported algorithm {algorithm:?}, expected sha256 or sha512")]
    UnsupportedAlgorithm {
        /// The algorithm as written.
        algorithm: String,
    },
    /// The hex part has the wrong length for the algorithm.
    #[error("invalid digest: expected {expected} hex characters after {algorithm}:, found {found}")]
    WrongLength {
        /// The algorithm whose length applies.
        algorithm: Algorithm,
        /// Length the algorithm requires.
        expected: usize,
        /// Length found (in characters).
        found: usize,
    },
    /// A character that is not a lowercase hex digit.
    #[error(
        "invalid digest: {character:?} at position {position} after {algorithm}: is not a lowercase hex digit (0-9, a-f)"
    )]
    InvalidCharacter {
        /// The algorithm being parsed.
        algorithm: Algorithm,
        /// The offending character.
        character: char,
        /// Its position (in characters) in the hex part, from 0.
        position: usize,
    },
}

/// A validated content digest: an algorithm and its lowercase hex encoding.
///
/// Ordered by algorithm, then hex, so sorted output is deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `sha256:<64 hex>` or `sha512:<128 hex>` (lowercase hex only).
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        if s.is_empty() {
            return Err(DigestError::Empty);
        }
        let Some((name, hex)) = s.split_once(':') else {
            return Err(DigestError::MissingAlgorithm);
        };
        let Some(algorithm) = Algorithm::from_name(name) else {
            return Err(DigestError::UnsupportedAlgorithm {
                algorithm: name.to_owned(),
            });
        };
        Digest::from_hex(algorithm, hex)
    }

    /// Builds a sha256 digest from its 64 lowercase hex characters.
    pub fn sha256_from_hex(hex: &str) -> Result<Digest, DigestError> {
        Digest::from_hex(Algorithm::Sha256, hex)
    }

    /// Builds a digest of `algorithm` from its lowercase hex encoding.
    pub fn from_hex(algorithm: Algorithm, hex: &str) -> Result<Digest, DigestError> {
        // Check characters before length so that `sha256:ABC…` is reported as
        // uppercase rather than as a length problem when both are wrong.
        for (position, character) in hex.chars().enumerate() {
            if !matches!(character, '0'..='9' | 'a'..='f') {
                return Err(DigestError::InvalidCharacter {
                    algorithm,
                    character,
                    position,
                });
            }
        }
        // All characters are ASCII now, so bytes == characters.
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError::WrongLength {
                algorithm,
                expected: algorithm.hex_len(),
                found: hex.len(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// The digest of a sha256 hash output (what a hasher returns).
    pub fn from_sha256_bytes(bytes: &[u8; 32]) -> Digest {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: encode_hex(bytes),
        }
    }

    /// The digest of a sha512 hash output.
    pub fn from_sha512_bytes(bytes: &[u8; 64]) -> Digest {
        Digest {
            algorithm: Algorithm::Sha512,
            hex: encode_hex(bytes),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex encoding, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX64: &str = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa";

    #[test]
    fn parses_sha256() {
        let d = Digest::parse(&format!("sha256:{HEX64}")).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.hex(), HEX64);
        assert_eq!(d.to_string(), format!("sha256:{HEX64}"));
    }

    #[test]
    fn parses_sha512() {
        let hex = "ab".repeat(64);
        let d: Digest = format!("sha512:{hex}").parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert_eq!(d.hex(), hex);
        assert_eq!(d.to_string(), format!("sha512:{hex}"));
    }

    #[test]
    fn sha256_from_hex() {
        let d = Digest::sha256_from_hex(HEX64).unwrap();
        assert_eq!(d, Digest::parse(&format!("sha256:{HEX64}")).unwrap());
        assert_eq!(
            Digest::sha256_from_hex("abc").unwrap_err().to_string(),
            "invalid digest: expected 64 hex characters after sha256:, found 3"
        );
    }

    #[test]
    fn from_bytes_encodes_lowercase_hex() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        bytes[31] = 0x0f;
        let d = Digest::from_sha256_bytes(&bytes);
        assert_eq!(d.hex().len(), 64);
        assert!(d.hex().starts_with("ab00"));
        assert!(d.hex().ends_with("000f"));
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        let d512 = Digest::from_sha512_bytes(&[0xff; 64]);
        assert_eq!(d512.hex(), "f".repeat(128));
        assert_eq!(d512.algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn error_messages() {
        let cases: &[(&str, &str)] = &[
            ("", "invalid digest: empty string"),
            (
                "abc",
                "invalid digest: missing algorithm prefix, expected sha256:<hex> or sha512:<hex>",
            ),
            (
                "md5:d41d8cd98f00b204e9800998ecf8427e",
                "invalid digest: unsupported algorithm \"md5\", expected sha256 or sha512",
            ),
            (
                "SHA256:abc",
                "invalid digest: unsupported algorithm \"SHA256\", expected sha256 or sha512",
            ),
            (
                "sha256:0123456789ab",
                "invalid digest: expected 64 hex characters after sha256:, found 12",
            ),
            (
                "sha256:",
                "invalid digest: expected 64 hex characters after sha256:, found 0",
            ),
            (
                "sha512:abcd",
                "invalid digest: expected 128 hex characters after sha512:, found 4",
            ),
            (
                "sha256:7CC4",
                "invalid digest: 'C' at position 1 after sha256: is not a lowercase hex digit (0-9, a-f)",
            ),
            (
                "sha256:zz",
                "invalid digest: 'z' at position 0 after sha256: is not a lowercase hex digit (0-9, a-f)",
            ),
            (
                "sha256:ab:cd",
                "invalid digest: ':' at position 2 after sha256: is not a lowercase hex digit (0-9, a-f)",
            ),
            (
                "sha256:é",
                "invalid digest: 'é' at position 0 after sha256: is not a lowercase hex digit (0-9, a-f)",
            ),
        ];
        for (input, message) in cases {
            let err = Digest::parse(input).unwrap_err();
            assert_eq!(err.to_string(), *message, "input {input:?}");
        }
    }

    #[test]
    fn rejects_one_char_too_long() {
        let err = Digest::parse(&format!("sha256:{HEX64}0")).unwrap_err();
        assert_eq!(
            err,
            DigestError::WrongLength {
                algorithm: Algorithm::Sha256,
                expected: 64,
                found: 65
            }
        );
    }

    #[test]
    fn orders_by_algorithm_then_hex() {
        let a = Digest::sha256_from_hex(&"0".repeat(64)).unwrap();
        let b = Digest::sha256_from_hex(&"1".repeat(64)).unwrap();
        let c = Digest::parse(&format!("sha512:{}", "0".repeat(128))).unwrap();
        let mut v = vec![c.clone(), b.clone(), a.clone()];
        v.sort();
        assert_eq!(v, vec![a, b, c]);
    }
}
