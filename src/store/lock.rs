//! Per-run locks: one process trains a run at a time.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// An exclusive claim on a run by one process: an advisory `flock` on its `lock` file.
///
/// The kernel drops the claim when the holder exits, however it exits (`kill -9`, power loss),
/// so there is no stale lock to detect and no race between two processes taking one over. The
/// file itself stays; it holds `pid host` of the last holder, for messages only. Released on
/// drop.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Who holds a lock that could not be taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockHolder {
    /// Process id of the holder.
    pub pid: u32,
    /// Host of the holder.
    pub host: String,
}

impl Lock {
    /// Tries to take the lock file `path`; `Err(holder)` when a live process holds it.
    pub fn acquire(path: &Path) -> Result<std::result::Result<Lock, LockHolder>> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // `is_held` probes with a shared lock held for an instant (status, ls, a sweep's live
        // report): a few tries over ~100 ms tell such a probe from a real holder.
        let mut tries = 0;
        let attempt = loop {
            match file.try_lock() {
                Err(std::fs::TryLockError::WouldBlock) if tries < 10 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other,
            }
        };
        match attempt {
            Ok(()) => {
                let host = super::provenance::host_name();
                file.set_len(0)?;
                writeln!(file, "{} {host}", std::process::id())?;
                Ok(Ok(Lock { _file: file }))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                Ok(Err(Self::holder(path).unwrap_or(LockHolder {
                    pid: 0,
                    host: "?".into(),
                })))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    /// The process named in lock file `path` (the last holder; see [`Lock::is_held`]).
    pub fn holder(path: &Path) -> Option<LockHolder> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut parts = text.split_whitespace();
        let pid = parts.next()?.parse().ok()?;
        Some(LockHolder {
            pid,
            host: parts.next().unwrap_or_default().to_string(),
        })
    }

    /// Whether a live process holds `path` now.
    pub fn is_held(path: &Path) -> bool {
        let Ok(file) = File::open(path) else {
            return false;
        };
        match file.try_lock_shared() {
            Ok(()) => false,
            Err(std::fs::TryLockError::WouldBlock) => true,
            Err(std::fs::TryLockError::Error(_)) => false,
        }
    }
}
