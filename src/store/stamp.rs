//! What a set of files is now, as a short hash of their paths, sizes and modification times:
//! the one way to tell, without reading them, that outputs drawn or sent from these files are
//! still current (the pictures a relaunch would redraw, the artifacts an MLflow export would
//! upload again).

use std::path::Path;

use sha2::{Digest, Sha256};

/// The stamp of `files` (a missing file counts as missing, not as empty) and `salt` (what else
/// the outputs depend on, e.g. the code fingerprint).
pub fn files_stamp<'a>(files: impl IntoIterator<Item = &'a Path>, salt: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    for path in files {
        let meta = std::fs::metadata(path).ok();
        let size = meta.as_ref().map(|m| m.len());
        let mtime = meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos());
        h.update(format!("\0{}\0{size:?}\0{mtime:?}", path.display()).as_bytes());
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_changes_with_a_file_or_the_salt_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let missing = dir.path().join("missing");
        let stamp = || files_stamp([a.as_path(), missing.as_path()], "code");
        let absent = stamp();
        std::fs::write(&a, "").unwrap();
        let empty = stamp();
        assert_ne!(absent, empty, "a missing file is not an empty one");
        assert_eq!(stamp(), empty);
        std::fs::write(&a, "more").unwrap();
        assert_ne!(stamp(), empty);
        assert_ne!(
            files_stamp([a.as_path()], "other code"),
            files_stamp([a.as_path()], "code")
        );
    }
}
