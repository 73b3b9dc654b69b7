//! The secret pseudonym key: created once per data dir, or given by config.

use std::io::Write;
use std::path::Path;

/// File name of the key inside the data dir (mode 0600).
pub const KEY_FILE: &str = "pseudonym.key";

/// 32-byte BLAKE3 key. Never printed: `Debug` is redacted.
#[derive(Clone)]
pub struct PseudonymKey([u8; 32]);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("pseudonym key must be 64 hex digits")]
    BadHex,
    #[error("reading or writing the pseudonym key {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("no randomness available for a new pseudonym key: {0}")]
    Random(String),
}

impl PseudonymKey {
    pub fn from_bytes(bytes: [u8; 32]) -> PseudonymKey {
        PseudonymKey(bytes)
    }

    pub fn from_hex(hex: &str) -> Result<PseudonymKey, KeyError> {
        let hex = hex.trim().as_bytes();
        if hex.len() != 64 {
            return Err(KeyError::BadHex);
        }
        let mut bytes = [0u8; 32];
        for (index, pair) in hex.chunks_exact(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| KeyError::BadHex)?;
            bytes[index] = u8::from_str_radix(text, 16).map_err(|_| KeyError::BadHex)?;
        }
        Ok(PseudonymKey(bytes))
    }

    /// Loads `dir/pseudonym.key`, creating it (random, mode 0600) on first start.
    pub fn load_or_create(dir: &Path) -> Result<PseudonymKey, KeyError> {
        let path = dir.join(KEY_FILE);
        let io_error = |source| KeyError::Io { path: path.display().to_string(), source };
        match std::fs::read_to_string(&path) {
            Ok(text) => PseudonymKey::from_hex(&text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
                write_private(&path, crate::contract::prefixed_hex("", &bytes).as_bytes()).map_err(io_error)?;
                Ok(PseudonymKey(bytes))
            }
            Err(error) => Err(io_error(error)),
        }
    }

    /// Loads `dir/pseudonym.key`; never creates one (for read-only tools).
    pub fn load_existing(dir: &Path) -> Result<PseudonymKey, KeyError> {
        let path = dir.join(KEY_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
        PseudonymKey::from_hex(&text)
    }

    /// A partner's subject handle for `pseudonym` under this key: `h_` and
    /// 32 hex digits, stable for one partner, unlinkable across partners.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Writes a secret file readable by the owner only, durably.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = crate::log::fsmode::private_file().write(true).create_new(true).open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// A fresh secret: `prefix` and `bytes` random bytes as hex (API tokens).
pub fn random_token(prefix: &str, bytes: usize) -> Result<String, getrandom::Error> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer)?;
    Ok(crate::contract::prefixed_hex(prefix, &buffer))
}
