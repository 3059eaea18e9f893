//! [`Secret`]: a string that never prints itself.
//!
//! Corp secrets, suite secrets, provider secrets, permanent codes, suite tickets and every token
//! kind are held in a [`Secret`]. Its `Debug` and `Display` print a mask, it is zeroized on drop,
//! and it deliberately does not implement `Serialize`: writing one out takes an explicit
//! [`Secret::expose`].

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret string (credential or token). Prints as `***`.
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value, for the one place that must send it (a request) or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string (an unset variable, an empty file).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first 4 characters and an ellipsis, for an operator comparing tokens by eye
    /// (`wecom-archive token`). Use only for short-lived tokens, never for long-term secrets.
    pub fn masked_prefix(&self) -> String {
        let prefix: String = self.0.chars().take(4).collect();
        format!("{prefix}…")
    }

    /// A short, stable, one-way fingerprint (first 8 bytes of SHA-256, hex). Used in token cache
    /// keys so that each secret gets its own entry and a rotated secret gets a fresh one.
    pub fn fingerprint(&self) -> String {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.0.as_bytes());
        d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

// Deserialize only: responses carry tokens and permanent codes that must land in a `Secret`
// straight away. There is no `Serialize`, on purpose.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_masked() {
        let s = Secret::new("very-secret-value");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        assert!(!format!("{s:?} {s}").contains("very"));
    }

    #[test]
    fn masked_prefix_shows_four_chars() {
        assert_eq!(Secret::new("abcdefgh").masked_prefix(), "abcd…");
        assert_eq!(Secret::new("ab").masked_prefix(), "ab…");
        // Multi-byte characters are counted as characters, not bytes.
        assert_eq!(Secret::new("令牌令牌令牌").masked_prefix(), "令牌令牌…");
    }

    #[test]
    fn fingerprint_is_stable_and_distinguishes() {
        let a = Secret::new("secret-a");
        assert_eq!(a.fingerprint(), Secret::new("secret-a").fingerprint());
        assert_ne!(a.fingerprint(), Secret::new("secret-b").fingerprint());
        assert_eq!(a.fingerprint().len(), 16);
        assert!(!a.fingerprint().contains("secret"));
    }
}
