//! The one way vaelab writes a file: whole or not at all, and still there after a power loss.
//!
//! The content goes to a temporary file beside the destination (`.<name>.<random>.tmp.<ext>`:
//! hidden from listings that skip dot files, and keeping the extension for writers that pick
//! their format by it, such as plotters), which is flushed to disk (`fsync`) before it is
//! renamed over the destination; then the directory is flushed too, so the rename itself is
//! durable. Without the first `fsync` a crash shortly after the rename can leave an empty file
//! under the final name (the rename reached the disk before the data did).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |tmp| {
        let mut f = File::create(tmp)?;
        f.write_all(bytes)
    })
}

/// Writes `path` atomically and durably through `fill`, which creates and writes the temporary
/// path it is given (for writers that want a path: Parquet, plotters, Burn's recorders).
pub fn write_with<E>(path: &Path, fill: impl FnOnce(&Path) -> Result<(), E>) -> Result<()>
where
    E: Into<anyhow::Error>,
{
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let suffix = match path.extension() {
        Some(ext) => format!(".tmp.{}", ext.to_string_lossy()),
        None => ".tmp".to_string(),
    };
    // Removed again on every early return (the guard deletes it on drop).
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(&suffix)
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    fill(tmp.path())
        .map_err(Into::into)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // The writer may have replaced the file at that path, so flush what the path names now.
    File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot flush {}", path.display()))?;
    crate::faults::point(crate::faults::names::BEFORE_RENAME, &name);
    tmp.persist(path)
        .with_context(|| format!("cannot rename into {}", path.display()))?;
    sync_dir(dir)
}

/// Flushes a directory's entries (a rename or a new file in it) to disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot flush directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        write_atomic(&path, b"x = 1\n").unwrap();
        write_atomic(&path, b"x = 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x = 2\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_writer_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        write_atomic(&path, b"old\n").unwrap();
        let err = write_with(&path, |tmp| {
            std::fs::write(tmp, b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("disk full"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
