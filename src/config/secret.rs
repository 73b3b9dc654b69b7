//! A secret string (API token, pseudonym key) that never prints.
//!
//! Owns: hiding a secret from `Debug` and serialization (`config show`).
//! Never: compares or hashes a secret; its users do, through [`Secret::expose`].

use serde::Deserialize;

/// A secret string: prints and serializes as `***`, so neither a log line
/// nor `proviso config show` can carry it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    /// Never fails, so clap never echoes a secret in an error.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Secret(text.to_string()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}
