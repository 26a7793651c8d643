//! Per-epoch checkpoints that are either whole on disk or absent.

use std::path::{Path, PathBuf};

use burn::train::checkpoint::{Checkpoint, Checkpointer, CheckpointerError};

use crate::store::durable;

/// Like burn-train's `FileCheckpointer` (same `<name>-<epoch>.bpk` files), but each record is
/// written through [`durable::write_with`], so neither a kill mid-write nor a power loss can
/// leave a torn checkpoint that resume would trip over.
pub struct AtomicCheckpointer {
    directory: PathBuf,
    name: String,
}

impl AtomicCheckpointer {
    /// Checkpoints named `<name>-<epoch>.bpk` in `directory`.
    pub fn new(directory: impl AsRef<Path>, name: &str) -> Self {
        Self {
            directory: directory.as_ref().to_path_buf(),
            name: name.to_string(),
        }
    }

    fn path(&self, name: &str, epoch: usize) -> PathBuf {
        self.directory.join(format!("{name}-{epoch}.bpk"))
    }

    /// Whether the files of every one of `names` exist for `epoch` in this directory.
    pub fn has_all(&self, epoch: usize, names: &[&str]) -> bool {
        names.iter().all(|n| self.path(n, epoch).is_file())
    }
}

impl<R: Checkpoint> Checkpointer<R> for AtomicCheckpointer {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        std::fs::create_dir_all(&self.directory).map_err(CheckpointerError::IOError)?;
        let path = self.path(&self.name, epoch);
        durable::write_with(&path, |tmp| record.save(tmp.to_path_buf()))
            .map_err(|e| CheckpointerError::IOError(std::io::Error::other(format!("{e:#}"))))
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        let path = self.path(&self.name, epoch);
        if path.exists() {
            std::fs::remove_file(path).map_err(CheckpointerError::IOError)?;
        }
        Ok(())
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        R::load(self.path(&self.name, epoch))
    }
}
