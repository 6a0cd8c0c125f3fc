//! Files the gateway writes beside its store: secrets (mode 0600) and runtime
//! information, always replaced atomically so a reader never sees half a file.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` readable by the owner only, via a temporary file
/// and a rename, so a crash leaves either the old content or the new. The
/// directory is synced after the rename: a rotated `master.key` must be on
/// disk before the store commits anything sealed under its new version.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // The new content is in place now: a directory that cannot be synced
    // (some network and FUSE file systems refuse) must not fail a write
    // whose callers then believe nothing changed.
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot sync the directory after a write");
        }
    }
    Ok(())
}

/// Makes `path` a file only its owner may read: created empty with mode
/// 0600 if missing, narrowed to 0600 if others could read it. (A data dir
/// made beforehand, e.g. 0755, left SQLite to create the store with the
/// umask: 0644. SQLite gives its `-wal` and `-shm` files the store's mode.)
pub fn private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Creates the data directory (mode 0700 on Unix) if it does not exist.
pub fn ensure_private_dir(path: &Path) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}
