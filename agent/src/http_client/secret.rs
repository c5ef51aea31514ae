//! A secret value (Alloy `secret`): never printed, only hashed when serialized.

use std::fmt;

use serde::{Serialize, Serializer};

/// A secret string. `Debug` and `Display` print `(secret)`; `Serialize`
/// writes `(secret xxh64:<16 hex>)`, so a changed value changes a config
/// hash while the value itself never appears. Compare by value.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret value itself. Only for putting it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn fingerprint(&self) -> String {
        format!(
            "(secret xxh64:{:016x})",
            xxhash_rust::xxh64::xxh64(self.0.as_bytes(), 0)
        )
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(secret)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(secret)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn secret_is_hidden_in_debug_display_and_hashed_in_serialize() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "(secret)");
        assert_eq!(s.to_string(), "(secret)");
        let a = s.fingerprint();
        assert!(a.starts_with("(secret xxh64:") && a.len() == "(secret xxh64:)".len() + 16);
        assert!(!a.contains("hunter2"));
        assert_ne!(a, Secret::new("hunter3").fingerprint());
        assert_eq!(s.expose(), "hunter2");
    }
}
