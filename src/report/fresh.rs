//! Which outputs are still current: a directory of pictures or a page remembers the stamp of
//! the files it was drawn from (`plots.drawn`, `report.drawn` beside it), so that a relaunch
//! of a finished sweep draws only what changed (nothing, when nothing did).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::store::{build_info, files_stamp, write_atomic, RunState, Store};
use crate::sweep::Manifest;

/// What a run's pictures are drawn from: its tables, status and model.
pub fn picture_inputs(store: &Store, id: &str) -> Vec<PathBuf> {
    let dir = store.run(id);
    [
        "metrics.parquet",
        "kl_dims.parquet",
        "eval.parquet",
        "status.toml",
        "model.bpk",
    ]
    .map(|f| dir.file(f))
    .to_vec()
}

/// Where the outputs in `dir` record what they were drawn from: `<dir>.drawn` beside it (the
/// stamp, then the files, one per line, relative to `dir`), so that `dir` holds only outputs.
fn record(dir: &Path) -> PathBuf {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    dir.with_file_name(format!("{name}.drawn"))
}

/// The outputs in `dir` drawn from inputs stamped `stamp`, when every one is still there.
pub fn drawn(dir: &Path, stamp: &str) -> Option<Vec<PathBuf>> {
    let text = std::fs::read_to_string(record(dir)).ok()?;
    let mut lines = text.lines();
    if lines.next()? != stamp {
        return None;
    }
    let files: Vec<PathBuf> = lines.map(|f| dir.join(f)).collect();
    files.iter().all(|f| f.is_file()).then_some(files)
}

/// Records that `files` in `dir` were drawn from inputs stamped `stamp`.
pub fn remember(dir: &Path, stamp: &str, files: &[PathBuf]) -> Result<()> {
    let mut text = format!("{stamp}\n");
    for f in files {
        let name = f.strip_prefix(dir).unwrap_or(f);
        text.push_str(&format!("{}\n", name.display()));
    }
    write_atomic(&record(dir), text.as_bytes())
}

/// The entries at the top of `dir` but those named in `except`, in name order (none when it
/// cannot be read).
fn top_entries(dir: &Path, except: &[&str]) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.retain(|p| {
        p.file_name()
            .is_some_and(|n| !except.iter().any(|x| n == *x))
    });
    entries.sort();
    entries
}

/// The stamp of what a run's page shows: every file at the top of its directory but the page's
/// own and its record (its tables, status, lock, provenance, model, and the pictures'
/// directory, whose time moves when a picture is drawn again), its `state` (a run whose process
/// died is interrupted with no file changed) and the code.
pub fn page_stamp(store: &Store, id: &str, state: RunState) -> String {
    let files = top_entries(&store.run(id).path, &["report", "report.drawn"]);
    let salt = format!("{} {}", build_info::CODE_FINGERPRINT, state.as_str());
    files_stamp(files.iter().map(PathBuf::as_path), &salt)
}

/// The stamp of everything a sweep's tables, pictures and pages are made from: every file at
/// the top of each run's directory (pictures and pages included: they are outputs of this
/// stamp, so it is taken once they are made), the manifest, the repro report, the sweep's
/// pictures' directory and the code.
fn sweep_stamp(store: &Store, manifest: &Manifest) -> String {
    // The page shows `vaelab repro`'s report too; the pictures' directory changes when one of
    // them is deleted.
    let dir = store.sweep_dir(&manifest.name);
    let mut files = vec![
        store.manifest_path(&manifest.name),
        dir.join("repro.md"),
        dir.join("plots"),
    ];
    for run in &manifest.runs {
        files.extend(top_entries(&store.run(&run.id).path, &[]));
    }
    files_stamp(
        files.iter().map(PathBuf::as_path),
        build_info::CODE_FINGERPRINT,
    )
}

/// The sweep's outputs that [`sweep_is_current`] vouches for.
fn sweep_outputs(store: &Store, manifest: &Manifest) -> (PathBuf, Vec<PathBuf>) {
    let dir = store.sweep_dir(&manifest.name);
    let files = ["summary.parquet", "epochs.parquet", "report/index.html"].map(|f| dir.join(f));
    (dir.join("report"), files.to_vec())
}

/// Whether a sweep's tables, pictures and pages are as its runs are now: nothing of them
/// changed since [`sweep_made`] recorded them, and they are all there.
pub fn sweep_is_current(store: &Store, manifest: &Manifest) -> bool {
    let (dir, files) = sweep_outputs(store, manifest);
    drawn(&dir, &sweep_stamp(store, manifest)).is_some() && files.iter().all(|f| f.is_file())
}

/// Records that a sweep's tables, pictures and pages were just made from its runs as they are.
pub fn sweep_made(store: &Store, manifest: &Manifest) -> Result<()> {
    let (dir, files) = sweep_outputs(store, manifest);
    remember(&dir, &sweep_stamp(store, manifest), &files[2..])
}
