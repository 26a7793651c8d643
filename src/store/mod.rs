//! Run directories on disk: resolved config, per-epoch metrics in Parquet, provenance, status.
//!
//! Layout of one run, `results/runs/<run-id>/`:
//! - `config.toml`: the fully resolved [`RunSpec`];
//! - `provenance.toml`: code, dependencies, machine, times ([`Provenance`]);
//! - `diff.patch`: the uncommitted code change the binary was built from, when there was one;
//! - `metrics.parquet`: one row per epoch × split ([`EpochRow`]), rewritten atomically each epoch;
//! - `status.toml`: queued / running / done / failed / interrupted, and the last finished epoch;
//! - `checkpoint/`: per-epoch `model-<epoch>.bpk`, the network and its Adam moments (resume);
//! - `model.bpk`: the final model.
//!
//! Every file is written through [`durable::write_atomic`], so a crash or power loss never
//! leaves half a file. The parts: [`durable`] (writing), [`lock`] (one trainer per run),
//! [`tables`] (Parquet schemas), [`provenance`]; this module maps runs onto directories.

pub mod durable;
pub mod lock;
pub mod lockfile;
pub mod lookup;
pub mod provenance;
pub mod stamp;
pub mod tables;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::RunSpec;
pub use durable::write_atomic;
pub use lock::{Lock, LockHolder};
pub use lookup::Target;
pub use provenance::{build_info, now_rfc3339, Provenance};
pub use stamp::files_stamp;
pub use tables::{
    eval_column, eval_row, eval_value, last_row, metrics_frame, param_columns, read_eval,
    read_kl_dims, read_metrics, read_parquet, result_value, write_eval, write_kl_dims,
    write_metrics, write_parquet, EpochRow, EpochValue, EvalRow, KlDimRow, EVAL_COLUMNS,
    EVAL_SUMMARY, FINAL_COLUMNS, KL_DIMS_COLUMNS, METRICS_COLUMNS,
};

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
            d.join(lookup::MANIFEST).is_file()
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

/// Where a run stands: the one vocabulary of `status.toml`, `status`, `ls`, the sweep table
/// and `summary.parquet`. [`RunDir::state`] is the one function that decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Not started yet (no `status.toml`; never written).
    Queued,
    /// Training now (in `status.toml`: started; a run whose process is gone is interrupted).
    Running,
    /// All epochs done.
    Done,
    /// Stopped by a non-finite loss or an error.
    Failed,
    /// Stopped on request (Ctrl-C) or killed; resumable.
    Interrupted,
}

impl RunState {
    /// The name shown everywhere.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Done => "done",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
        }
    }

    /// Done or failed: a relaunch leaves it alone.
    pub fn is_final(self) -> bool {
        matches!(self, RunState::Done | RunState::Failed)
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
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

    /// `kl_dims.parquet`: the test split's KL per latent dimension after each epoch (VAEs).
    pub fn kl_dims_path(&self) -> PathBuf {
        self.file("kl_dims.parquet")
    }

    /// `eval.parquet`: the test-set evaluation (`vaelab eval`), written once training is done.
    pub fn eval_path(&self) -> PathBuf {
        self.file("eval.parquet")
    }

    /// `lock`: held by the process training the run.
    pub fn lock_path(&self) -> PathBuf {
        self.file("lock")
    }

    /// `checkpoint/`.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.file("checkpoint")
    }

    /// `model.bpk`: the trained model; a run is done only once it is there.
    pub fn model_path(&self) -> PathBuf {
        self.file("model.bpk")
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

    /// Where the run stands, from its `status.toml` (`None`: never started), its lock and its
    /// model file: a `running` run whose process is gone (lock free) was killed, and a `done`
    /// run without `model.bpk` was stopped before saving it; both are interrupted (a relaunch
    /// resumes them).
    pub fn state(&self, status: Option<&RunStatus>) -> RunState {
        match status.map(|s| s.state) {
            None | Some(RunState::Queued) => RunState::Queued,
            Some(RunState::Running) if Lock::is_held(&self.lock_path()) => RunState::Running,
            Some(RunState::Running) | Some(RunState::Interrupted) => RunState::Interrupted,
            Some(RunState::Done) if self.model_path().is_file() => RunState::Done,
            Some(RunState::Done) => RunState::Interrupted,
            Some(RunState::Failed) => RunState::Failed,
        }
    }

    /// [`RunDir::state`] read from disk now (a run whose `status.toml` cannot be read counts as
    /// never started).
    pub fn current_state(&self) -> RunState {
        self.state(self.read_status().ok().flatten().as_ref())
    }

    /// Writes `status.toml`.
    pub fn write_status(&self, status: &RunStatus) -> Result<()> {
        let text = toml::to_string(status)?;
        write_atomic(&self.file("status.toml"), text.as_bytes())
    }
}

/// Everything on disk about one run, for listings and comparisons: the one type `ls`, `diff`
/// and `plot` share.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// The run id.
    pub id: String,
    /// Its parameters (`config.toml`).
    pub spec: RunSpec,
    /// Where it came from (`provenance.toml`), if written yet.
    pub provenance: Option<Provenance>,
    /// Where it stands now: see [`RunDir::state`].
    pub state: RunState,
    /// Why it failed or stopped, from `status.toml`.
    pub message: Option<String>,
    /// Its per-epoch rows.
    pub rows: Vec<EpochRow>,
    /// Its test-set evaluation (`eval.parquet`; empty until evaluated).
    pub eval: Vec<EvalRow>,
}

impl RunRecord {
    /// The last row of `split`.
    pub fn last(&self, split: crate::data::Split) -> Option<&EpochRow> {
        last_row(&self.rows, split)
    }

    /// Its result column `column` ([`FINAL_COLUMNS`] or [`EVAL_SUMMARY`]): see
    /// [`result_value`].
    pub fn result(&self, column: &str) -> Option<f64> {
        result_value(&self.rows, &self.eval, column)
    }

    /// Its evaluation's `metric` (at `k` importance samples for the IWAE bound), overall.
    pub fn eval(&self, metric: &str, k: Option<u32>) -> Option<f64> {
        eval_value(&self.eval, metric, k, None)
    }
}

/// A run directory that cannot be read: which run, which file, why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("run {id}: {}: {reason}", file.display())]
pub struct Unreadable {
    /// The run id (its directory name).
    pub id: String,
    /// The file that failed.
    pub file: PathBuf,
    /// Why, in one line.
    pub reason: String,
}

/// Every run under a store: those that could be read, and those that could not.
#[derive(Clone, Debug, Default)]
pub struct Records {
    /// Runs read whole.
    pub runs: Vec<RunRecord>,
    /// Runs with a file that is missing or cannot be parsed; never silently dropped.
    pub unreadable: Vec<Unreadable>,
}

impl Store {
    /// Reads run `id`; the error names the file that failed.
    pub fn record(&self, id: &str) -> std::result::Result<RunRecord, Unreadable> {
        let run = self.run(id);
        let fail = |file: PathBuf, e: anyhow::Error| Unreadable {
            id: id.to_string(),
            reason: one_line(&format!("{e:#}"), &file),
            file,
        };
        let spec = run.read_spec().map_err(|e| fail(run.config_path(), e))?;
        let status = run
            .read_status()
            .map_err(|e| fail(run.file("status.toml"), e))?;
        let provenance = if run.file("provenance.toml").exists() {
            Some(Provenance::read(&run).map_err(|e| fail(run.file("provenance.toml"), e))?)
        } else {
            None
        };
        let rows = read_metrics(&run.metrics_path()).map_err(|e| fail(run.metrics_path(), e))?;
        let eval = read_eval(&run.eval_path())
            .map_err(|e| fail(run.eval_path(), e))?
            .unwrap_or_default();
        Ok(RunRecord {
            id: id.to_string(),
            spec,
            provenance,
            state: run.state(status.as_ref()),
            message: status.and_then(|s| s.message),
            rows,
            eval,
        })
    }

    /// Reads run `id` of a plan (a sweep's manifest): a run never started, with no directory
    /// yet, is a queued record of `spec` with no rows.
    pub fn planned_record(
        &self,
        id: &str,
        spec: &RunSpec,
    ) -> std::result::Result<RunRecord, Unreadable> {
        if self.run(id).path.exists() {
            return self.record(id);
        }
        Ok(RunRecord {
            id: id.to_string(),
            spec: spec.clone(),
            provenance: None,
            state: RunState::Queued,
            message: None,
            rows: Vec::new(),
            eval: Vec::new(),
        })
    }

    /// Reads every run under `runs/`, keeping the ones that cannot be read as [`Unreadable`].
    pub fn records(&self) -> Result<Records> {
        let mut all = Records::default();
        for id in self.run_ids()? {
            match self.record(&id) {
                Ok(r) => all.runs.push(r),
                Err(u) => all.unreadable.push(u),
            }
        }
        Ok(all)
    }
}

/// An error chain as one line, without the file path it already names.
fn one_line(text: &str, file: &Path) -> String {
    let path = file.display().to_string();
    let text = text.replace('\n', " ");
    let text = text
        .split(": ")
        .filter(|part| *part != path && !part.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
