//! The data dir lock: one proviso process per data dir.

use std::fs::File;
use std::path::Path;

pub const LOCK_FILE: &str = "LOCK";

/// Held for the life of the process that owns the data dir; the OS releases
/// it when the process dies, even by `kill -9`.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another proviso process holds the lock on {0}; stop it or choose another --data dir")]
    Held(String),
    #[error("locking {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io_error = |source| LockError::Io { path: path.display().to_string(), source };
        let file =
            super::fsmode::private_file().create(true).truncate(false).write(true).open(&path).map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held(dir.display().to_string())),
            Err(std::fs::TryLockError::Error(source)) => {
                Err(LockError::Io { path: path.display().to_string(), source })
            }
        }
    }
}
