//! Run directories on disk: resolved config, per-epoch metrics in Parquet, provenance, status.
//!
//! Layout of one run, `results/runs/<run-id>/`:
//! - `config.toml`: the fully resolved [`RunSpec`];
//! - `provenance.toml`: code, dependencies, machine, times ([`Provenance`]);
//! - `diff.patch`: the uncommitted code change the binary was built from, when there was one;
//! - `metrics.parquet`: one row per epoch × split ([`EpochRow`]), rewritten atomically each epoch;
//! - `status.toml`: queued / running / done / failed / interrupted, and the last finished epoch;
//! - `checkpoint/`: per-epoch model, optimiser and scheduler records (resume);
//! - `model.bpk`: the final model.
//!
//! Every file is written to a temporary name and renamed, so a crash never leaves half a file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use polars::prelude::{DataFrame, ParquetReader, ParquetWriter, SerReader};
use serde::{Deserialize, Serialize};

use crate::config::RunSpec;

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let mut f = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))
}

/// The temporary sibling used while `path` is being written.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

/// The root of all results (`results/` unless told otherwise).
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// A store rooted at `root` (created lazily, when the first run is written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of sweep `name` (manifest, summary tables, plots).
    pub fn sweep_dir(&self, name: &str) -> PathBuf {
        self.root.join("sweeps").join(name)
    }

    /// Ids of every run directory under `runs/`, sorted.
    pub fn run_ids(&self) -> Result<Vec<String>> {
        list_dirs(&self.root.join("runs"), |_| true)
    }

    /// Names of the sweeps with a manifest under `sweeps/`, sorted.
    pub fn sweep_names(&self) -> Result<Vec<String>> {
        list_dirs(&self.root.join("sweeps"), |d| {
            d.join("manifest.toml").is_file()
        })
    }

    /// The directory of run `id`.
    pub fn run(&self, id: &str) -> RunDir {
        RunDir {
            path: self.root.join("runs").join(id),
            id: id.to_string(),
        }
    }
}

/// Names of the sub-directories of `dir` that pass `keep`, sorted (none if `dir` is absent).
fn list_dirs(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir() && keep(&e.path()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// One run's directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// `results/runs/<id>`.
    pub path: PathBuf,
    /// The run id.
    pub id: String,
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Training now (or killed while training: resumable).
    Running,
    /// All epochs done.
    Done,
    /// Stopped by a non-finite loss or an error.
    Failed,
    /// Stopped on request (Ctrl-C); resumable.
    Interrupted,
}

/// `status.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    /// Where the run stands.
    pub state: RunState,
    /// Last epoch whose metrics and checkpoint are both on disk.
    pub epochs_done: usize,
    /// Why it failed or stopped, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl RunDir {
    /// Path of a file inside the run directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.file("config.toml")
    }

    /// `metrics.parquet`.
    pub fn metrics_path(&self) -> PathBuf {
        self.file("metrics.parquet")
    }

    /// `lock`: held by the process training the run.
    pub fn lock_path(&self) -> PathBuf {
        self.file("lock")
    }

    /// `checkpoint/`.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.file("checkpoint")
    }

    /// Creates the directory and writes the resolved config (first launch only).
    pub fn create(&self, spec: &RunSpec) -> Result<()> {
        std::fs::create_dir_all(self.checkpoint_dir())
            .with_context(|| format!("cannot create {}", self.path.display()))?;
        if !self.config_path().exists() {
            write_atomic(&self.config_path(), spec.to_toml().as_bytes())?;
        }
        Ok(())
    }

    /// Reads `config.toml`.
    pub fn read_spec(&self) -> Result<RunSpec> {
        let text = std::fs::read_to_string(self.config_path())
            .with_context(|| format!("cannot read {}", self.config_path().display()))?;
        toml::from_str(&text).with_context(|| format!("{}", self.config_path().display()))
    }

    /// Reads `status.toml`, if the run was ever started.
    pub fn read_status(&self) -> Result<Option<RunStatus>> {
        let path = self.file("status.toml");
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)?;
        Ok(Some(
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?,
        ))
    }

    /// `queued` (no status yet), `running`, `done`, `failed` or `interrupted`: a `running` run
    /// whose process is gone (its lock is free) was killed, so it counts as interrupted.
    pub fn state_name(&self, status: Option<&RunStatus>) -> &'static str {
        match status.map(|s| s.state) {
            None => "queued",
            Some(RunState::Running) if Lock::is_held(&self.lock_path()) => "running",
            Some(RunState::Running) | Some(RunState::Interrupted) => "interrupted",
            Some(RunState::Done) => "done",
            Some(RunState::Failed) => "failed",
        }
    }

    /// Writes `status.toml`.
    pub fn write_status(&self, status: &RunStatus) -> Result<()> {
        let text = toml::to_string(status)?;
        write_atomic(&self.file("status.toml"), text.as_bytes())
    }
}

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
        match file.try_lock() {
            Ok(()) => {
                let host = read_trimmed("/proc/sys/kernel/hostname").unwrap_or_default();
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

/// One epoch of one split: the tidy row of `metrics.parquet`, the same schema for every run.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRow {
    /// The run id.
    pub run_id: String,
    /// 1-based epoch.
    pub epoch: u32,
    /// `train` or `test`.
    pub split: String,
    /// Mean squared error per image, summed over 784 pixels.
    pub recon: f64,
    /// Mean KL per image in nats; `None` for the AE.
    pub kl: Option<f64>,
    /// Mean `beta * kl` per image; `None` for the AE.
    pub beta_kl: Option<f64>,
    /// Mean `recon + beta * kl` per image.
    pub loss: f64,
    /// The article's printed number: Σ over batches of (batch size × batch loss sum) / images,
    /// from the pre-step training loss. Train split only.
    pub article_loss: Option<f64>,
    /// Wall-clock seconds the split took this epoch.
    pub seconds: f64,
}

/// Column names of `metrics.parquet`, in order.
pub const METRICS_COLUMNS: [&str; 9] = [
    "run_id",
    "epoch",
    "split",
    "recon",
    "kl",
    "beta_kl",
    "loss",
    "article_loss",
    "seconds",
];

/// The rows as a polars DataFrame with the [`METRICS_COLUMNS`] schema.
pub fn metrics_frame(rows: &[EpochRow]) -> Result<DataFrame> {
    let col = |f: fn(&EpochRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    let opt = |f: fn(&EpochRow) -> Option<f64>| rows.iter().map(f).collect::<Vec<Option<f64>>>();
    let df = polars::df!(
        "run_id" => rows.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        "epoch" => rows.iter().map(|r| r.epoch).collect::<Vec<u32>>(),
        "split" => rows.iter().map(|r| r.split.as_str()).collect::<Vec<_>>(),
        "recon" => col(|r| r.recon),
        "kl" => opt(|r| r.kl),
        "beta_kl" => opt(|r| r.beta_kl),
        "loss" => col(|r| r.loss),
        "article_loss" => opt(|r| r.article_loss),
        "seconds" => col(|r| r.seconds),
    )?;
    Ok(df)
}

/// Writes a DataFrame to Parquet atomically.
pub fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<()> {
    let tmp = tmp_path(path);
    let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    ParquetWriter::new(file)
        .finish(df)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))
}

/// Reads a Parquet file into a DataFrame.
pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    ParquetReader::new(file)
        .finish()
        .with_context(|| format!("cannot read {}", path.display()))
}

/// Writes a run's per-epoch rows to its `metrics.parquet`.
pub fn write_metrics(path: &Path, rows: &[EpochRow]) -> Result<()> {
    write_parquet(path, &mut metrics_frame(rows)?)
}

/// Reads `metrics.parquet` back into rows (empty if the file does not exist yet).
pub fn read_metrics(path: &Path) -> Result<Vec<EpochRow>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let df = read_parquet(path)?;
    let ctx = || format!("{}: unexpected schema", path.display());
    let n = df.height();
    let f64s = |name: &str| -> Result<Vec<Option<f64>>> {
        let ca = df.column(name).with_context(ctx)?.f64().with_context(ctx)?;
        Ok((0..n).map(|i| ca.get(i)).collect())
    };
    let strs = |name: &str| -> Result<Vec<String>> {
        let ca = df.column(name).with_context(ctx)?.str().with_context(ctx)?;
        Ok((0..n)
            .map(|i| ca.get(i).unwrap_or_default().to_string())
            .collect())
    };
    let ca = df
        .column("epoch")
        .with_context(ctx)?
        .u32()
        .with_context(ctx)?;
    let epochs: Vec<u32> = (0..n).map(|i| ca.get(i).unwrap_or(0)).collect();
    let (run_id, split) = (strs("run_id")?, strs("split")?);
    let (recon, kl, beta_kl) = (f64s("recon")?, f64s("kl")?, f64s("beta_kl")?);
    let (loss, article, seconds) = (f64s("loss")?, f64s("article_loss")?, f64s("seconds")?);
    let need =
        |v: Option<f64>, what: &str| v.ok_or_else(|| anyhow!("{}: null {what}", path.display()));
    (0..df.height())
        .map(|i| {
            Ok(EpochRow {
                run_id: run_id[i].clone(),
                epoch: epochs[i],
                split: split[i].clone(),
                recon: need(recon[i], "recon")?,
                kl: kl[i],
                beta_kl: beta_kl[i],
                loss: need(loss[i], "loss")?,
                article_loss: article[i],
                seconds: need(seconds[i], "seconds")?,
            })
        })
        .collect()
}

/// Facts about the code that trained a run, fixed when the binary was built (see `build.rs`).
pub mod build_info {
    /// Git commit of the source tree, or `unknown` outside git.
    pub const GIT_COMMIT: &str = env!("VAELAB_GIT_COMMIT");
    /// Git branch, or `unknown`.
    pub const GIT_BRANCH: &str = env!("VAELAB_GIT_BRANCH");
    /// `true` when the code (src/, Cargo.*, build.rs) differed from the commit.
    pub const GIT_DIRTY: &str = env!("VAELAB_GIT_DIRTY");
    /// Commit plus a hash of the uncommitted code diff: part of every run id.
    pub const CODE_FINGERPRINT: &str = env!("VAELAB_CODE_FINGERPRINT");
    /// sha256 of Cargo.lock.
    pub const CARGO_LOCK_SHA256: &str = env!("VAELAB_CARGO_LOCK_SHA256");
    /// Versions of the main dependencies, `name version` separated by `;`.
    pub const DEPENDENCIES: &str = env!("VAELAB_DEPENDENCIES");
    /// `rustc --version` at build time.
    pub const RUSTC: &str = env!("VAELAB_RUSTC");
    /// The uncommitted code diff the binary was built from (empty when clean).
    pub const DIRTY_PATCH: &str = include_str!(concat!(env!("OUT_DIR"), "/dirty.patch"));
}

/// `provenance.toml`: where a run's numbers came from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Provenance {
    /// Git commit the binary was built from.
    pub git_commit: String,
    /// Git branch at build time.
    pub git_branch: String,
    /// Whether the code had uncommitted changes (kept in `diff.patch`).
    pub git_dirty: bool,
    /// Commit + dirty-diff hash (part of the run id).
    pub code_fingerprint: String,
    /// sha256 of Cargo.lock.
    pub cargo_lock_sha256: String,
    /// `name = version` of burn, burn-tch, tch, polars, ...
    pub dependencies: std::collections::BTreeMap<String, String>,
    /// rustc version.
    pub rustc: String,
    /// Cargo features compiled in.
    pub features: Vec<String>,
    /// Backend that trained the run.
    pub backend: String,
    /// Device that trained the run.
    pub device: String,
    /// Host name.
    pub host: String,
    /// CPU model.
    pub cpu: String,
    /// Threads available to the process.
    pub threads: usize,
    /// The command line.
    pub command: Vec<String>,
    /// RFC 3339 UTC start of the first launch.
    pub started: String,
    /// RFC 3339 UTC end (empty while running).
    pub finished: String,
    /// Wall-clock seconds of each finished epoch (train + test).
    pub epoch_seconds: Vec<f64>,
}

impl Provenance {
    /// Captures build- and run-time facts for a run of `spec` starting now.
    pub fn capture(spec: &RunSpec) -> Self {
        use build_info::*;
        let dependencies = DEPENDENCIES
            .split(';')
            .filter_map(|d| d.split_once(' '))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let mut features = Vec::new();
        if cfg!(feature = "tch") {
            features.push("tch".to_string());
        }
        if cfg!(feature = "flex") {
            features.push("flex".to_string());
        }
        Self {
            git_commit: GIT_COMMIT.into(),
            git_branch: GIT_BRANCH.into(),
            git_dirty: GIT_DIRTY == "true",
            code_fingerprint: CODE_FINGERPRINT.into(),
            cargo_lock_sha256: CARGO_LOCK_SHA256.into(),
            dependencies,
            rustc: RUSTC.into(),
            features,
            backend: spec.backend.as_str().into(),
            device: format!("{:?}", spec.device).to_lowercase(),
            host: read_trimmed("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown".into()),
            cpu: cpu_model().unwrap_or_else(|| "unknown".into()),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            command: std::env::args().collect(),
            started: now_rfc3339(),
            finished: String::new(),
            epoch_seconds: Vec::new(),
        }
    }

    /// Writes `provenance.toml` (and `diff.patch` for a dirty build) into `run`.
    pub fn write(&self, run: &RunDir) -> Result<()> {
        if self.git_dirty && !build_info::DIRTY_PATCH.is_empty() {
            write_atomic(&run.file("diff.patch"), build_info::DIRTY_PATCH.as_bytes())?;
        }
        write_atomic(
            &run.file("provenance.toml"),
            toml::to_string(self)?.as_bytes(),
        )
    }

    /// Reads a run's `provenance.toml`.
    pub fn read(run: &RunDir) -> Result<Self> {
        let path = run.file("provenance.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}", path.display()))
    }
}

/// The latest epoch's row of `split` among `rows` (a run's final result so far).
pub fn last_row<'a>(rows: &'a [EpochRow], split: &str) -> Option<&'a EpochRow> {
    rows.iter()
        .filter(|r| r.split == split)
        .max_by_key(|r| r.epoch)
}

/// Everything on disk about one run, for listings and comparisons.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// The run id.
    pub id: String,
    /// Its parameters (`config.toml`).
    pub spec: RunSpec,
    /// Where it came from (`provenance.toml`), if written yet.
    pub provenance: Option<Provenance>,
    /// Where it stands now: see [`RunDir::state_name`].
    pub state: &'static str,
    /// Its per-epoch rows.
    pub rows: Vec<EpochRow>,
}

impl RunRecord {
    /// The last row of `split`.
    pub fn last(&self, split: &str) -> Option<&EpochRow> {
        last_row(&self.rows, split)
    }
}

impl Store {
    /// Reads run `id`.
    pub fn record(&self, id: &str) -> Result<RunRecord> {
        let run = self.run(id);
        Ok(RunRecord {
            id: id.to_string(),
            spec: run.read_spec()?,
            provenance: Provenance::read(&run).ok(),
            state: run.state_name(run.read_status()?.as_ref()),
            rows: read_metrics(&run.metrics_path())?,
        })
    }

    /// Reads every run (those without a readable `config.toml` are skipped).
    pub fn records(&self) -> Result<Vec<RunRecord>> {
        Ok(self
            .run_ids()?
            .iter()
            .filter_map(|id| self.record(id).ok())
            .collect())
    }
}

/// Now, as RFC 3339 UTC with seconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: u32, split: &str, kl: Option<f64>) -> EpochRow {
        EpochRow {
            run_id: "vae-0123456789".into(),
            epoch,
            split: split.into(),
            recon: 40.5 + f64::from(epoch),
            kl,
            beta_kl: kl.map(|k| 3.0 * k),
            loss: 50.0,
            article_loss: (split == "train").then_some(1600.0),
            seconds: 1.25,
        }
    }

    #[test]
    fn metrics_round_trip_through_parquet_with_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.parquet");
        let rows = vec![
            row(1, "train", Some(3.5)),
            row(1, "test", Some(3.25)),
            row(2, "train", None),
        ];
        write_metrics(&path, &rows).unwrap();
        assert_eq!(read_metrics(&path).unwrap(), rows);
        let df = read_parquet(&path).unwrap();
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(names, METRICS_COLUMNS.map(String::from));
        assert_eq!(df.column("kl").unwrap().null_count(), 1);
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn atomic_write_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        write_atomic(&path, b"x = 1\n").unwrap();
        write_atomic(&path, b"x = 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x = 2\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
