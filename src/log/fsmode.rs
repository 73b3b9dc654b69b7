//! Owner-only file modes for the data dir: directories 0700, files 0600.
//!
//! Owns: creating directories and files in the data dir with those modes,
//! and tightening what already exists (a dir made by an older proviso or
//! under a permissive umask). Every writer of the data dir goes through here.
//! Never: loosens a mode, or follows a symlink while tightening.
//!
//! On non-Unix targets these are plain creates and the tightening is a no-op.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

/// Mode of every directory proviso creates in (or as) the data dir.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file proviso creates in the data dir.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and any missing parents with mode 0700, and tightens `dir`
/// itself if it already existed with group or other bits.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)?;
    restrict(dir)
}

/// Open options that create a file with mode 0600. The mode applies only to
/// a file this call creates: pass an existing file to [`restrict`].
pub fn private_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    options
}

/// Clears the group and other permission bits of `path` (a file becomes at
/// most 0600, a directory at most 0700). Symlinks are left alone.
pub fn restrict(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = std::fs::symlink_metadata(path)?;
        let mode = metadata.permissions().mode();
        if !metadata.file_type().is_symlink() && mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7700))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// [`restrict`]s `root` and everything under it, without following symlinks.
pub fn restrict_tree(root: &Path) -> io::Result<()> {
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        restrict(&path)?;
        if std::fs::symlink_metadata(&path)?.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).expect("metadata").permissions().mode() & 0o7777
    }

    /// New dirs and files are owner-only; a loose tree is tightened without
    /// gaining any bit, and a symlink's target is never touched.
    #[test]
    fn creates_owner_only_and_tightens_without_loosening() {
        let temp = tempfile::tempdir().expect("tempdir");
        let nested = temp.path().join("a/b");
        create_private_dir(&nested).expect("create");
        assert_eq!((mode(&temp.path().join("a")), mode(&nested)), (0o700, 0o700));
        let file = nested.join("f");
        private_file().write(true).create_new(true).open(&file).expect("create file");
        assert_eq!(mode(&file), 0o600);

        let outside = temp.path().join("outside");
        std::fs::write(&outside, "x").expect("write");
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::os::unix::fs::symlink(&outside, nested.join("link")).expect("symlink");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let read_only = nested.join("read-only");
        std::fs::write(&read_only, "x").expect("write");
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o444)).expect("chmod");
        std::fs::set_permissions(&nested, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        restrict_tree(&temp.path().join("a")).expect("restrict");
        assert_eq!((mode(&nested), mode(&file), mode(&read_only)), (0o700, 0o600, 0o400));
        assert_eq!(mode(&outside), 0o644, "a symlink's target is not ours to change");
    }
}
