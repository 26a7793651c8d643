//! Sweeps: a frozen manifest of run ids, executed entry by entry (or N at a time), resumable.
//!
//! `results/sweeps/<name>/manifest.toml` lists every run of the expanded matrix with its full
//! parameters and the code fingerprint it was frozen at, and the stacks its runs train in
//! ([`stacking`]). An entry is one stack (or one run); executing entry `i` is self-contained
//! ([`run_entry`], `vaelab entry MANIFEST I`), which is what a Slurm array task or a `--jobs N`
//! child process runs ([`slurm`] submits a manifest as a job array). Completed runs are skipped
//! by reading one small file; runs locked by another live process are waited for, runs of a
//! dead one are taken over; a `--jobs` worker that keeps dying is retried twice, then its runs
//! are failed.

pub mod slurm;
pub mod stacking;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use polars::prelude::{Column, DataFrame, NamedFrom, Series};
use serde::{Deserialize, Serialize};

use crate::config::matrix::SweepPlan;
use crate::config::RunSpec;
use crate::data::Split;
use crate::store::{
    build_info, last_row, metrics_frame, now_rfc3339, param_columns, read_eval, read_metrics,
    result_value, write_atomic, write_parquet, EpochRow, EvalRow, Lock, RunState, RunStatus, Store,
    EVAL_SUMMARY, FINAL_COLUMNS,
};
use crate::train::{self, stderr_is_terminal, Outcome, TrainOptions};

/// One run of a manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestRun {
    /// Run id (parameters + code).
    pub id: String,
    /// Fully resolved parameters.
    pub spec: RunSpec,
}

/// `results/sweeps/<name>/manifest.toml`: the frozen list of a sweep's runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Sweep name.
    pub name: String,
    /// Sweep description.
    pub description: String,
    /// Matrix file it was expanded from.
    pub source: String,
    /// Code the run ids belong to.
    pub code_fingerprint: String,
    /// RFC 3339 UTC time it was frozen.
    pub created: String,
    /// The runs, in execution order.
    pub runs: Vec<ManifestRun>,
    /// The stacks (indices into `runs`), each one entry; empty when every run is its own
    /// entry (`--stack off`, and manifests written before stacking).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<Vec<usize>>,
}

impl Manifest {
    /// Freezes an expanded matrix at the current code, its runs stacked by `policy`.
    pub fn from_plan(plan: &SweepPlan, policy: stacking::StackPolicy) -> Self {
        let specs: Vec<RunSpec> = plan.runs.iter().map(|r| r.spec.clone()).collect();
        let stacks = stacking::stacks(&specs, policy);
        let stacks = if stacks.iter().all(|s| s.len() == 1) {
            Vec::new()
        } else {
            stacks
        };
        Self {
            stacks,
            name: plan.name.clone(),
            description: plan.description.clone(),
            source: plan.source.display().to_string(),
            code_fingerprint: build_info::CODE_FINGERPRINT.to_string(),
            created: now_rfc3339(),
            runs: plan
                .runs
                .iter()
                .map(|r| ManifestRun {
                    id: r.spec.run_id(build_info::CODE_FINGERPRINT),
                    spec: r.spec.clone(),
                })
                .collect(),
        }
    }

    /// The entries: what one `vaelab entry MANIFEST I` trains (a stack, or one run).
    pub fn entries(&self) -> Vec<Vec<usize>> {
        if self.stacks.is_empty() {
            (0..self.runs.len()).map(|i| vec![i]).collect()
        } else {
            self.stacks.clone()
        }
    }

    /// The entry that trains run `run` (an index into `runs`).
    pub fn entry_of(&self, run: usize) -> Option<usize> {
        if self.stacks.is_empty() {
            (run < self.runs.len()).then_some(run)
        } else {
            self.stacks.iter().position(|e| e.contains(&run))
        }
    }

    /// `results/sweeps/<name>/manifest.toml`.
    pub fn path(store: &Store, name: &str) -> PathBuf {
        store.manifest_path(name)
    }

    /// Reads a manifest file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}: not a sweep manifest", path.display()))
    }

    /// Writes the manifest unless the same runs are already frozen there; a manifest with other
    /// runs (changed matrix or code) is kept as `history/manifest-<created>.toml`.
    pub fn freeze(&self, store: &Store) -> Result<PathBuf> {
        let path = Self::path(store, &self.name);
        let dir = store.sweep_dir(&self.name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        if let Ok(old) = Self::read(&path) {
            if old.runs == self.runs && old.stacks == self.stacks {
                return Ok(path);
            }
            let history = dir.join("history");
            std::fs::create_dir_all(&history)?;
            let stamp = old.created.replace(':', "");
            std::fs::rename(&path, history.join(format!("manifest-{stamp}.toml")))?;
        }
        write_atomic(&path, toml::to_string(self)?.as_bytes())?;
        Ok(path)
    }
}

/// How to execute a sweep.
#[derive(Clone)]
pub struct SweepOptions {
    /// Per-run training options (results root, data, interrupter).
    pub train: TrainOptions,
    /// Entries (stacks) trained at once (each in its own process when > 1).
    pub jobs: usize,
    /// How the runs are stacked into entries.
    pub stack: stacking::StackPolicy,
    /// Called whenever an epoch may have finished: after each epoch of an in-process run, and
    /// every poll (half a second) while `--jobs` workers train; the CLI rewrites the report.
    pub on_progress: Option<train::EpochHook>,
}

/// Where each run of a sweep ended.
#[derive(Clone, Debug)]
pub struct SweepReport {
    /// (run, final state, reason when it failed) in manifest order.
    pub runs: Vec<(ManifestRun, RunState, Option<String>)>,
    /// True when Ctrl-C stopped the sweep early.
    pub interrupted: bool,
}

impl SweepReport {
    /// Runs that failed.
    pub fn failed(&self) -> usize {
        self.runs
            .iter()
            .filter(|(_, s, _)| *s == RunState::Failed)
            .count()
    }
}

/// Trains entry `index` of `manifest` (a Slurm array task, or a `--jobs` child): one stack,
/// or one run, then evaluates its runs; a report per run.
pub fn run_entry(
    manifest: &Manifest,
    index: usize,
    opts: &TrainOptions,
) -> Result<Vec<train::RunReport>> {
    let entries = manifest.entries();
    let Some(entry) = entries.get(index) else {
        bail!(
            "entry {index} is out of range: manifest {} has entries 0..{}",
            manifest.name,
            entries.len()
        );
    };
    let mut specs = Vec::new();
    for &i in entry {
        let run = &manifest.runs[i];
        if run.spec.run_id(build_info::CODE_FINGERPRINT) != run.id {
            bail!(
                "run {} was frozen at code {}, but this binary is {}; rebuild at that commit or relaunch the sweep",
                run.id,
                manifest.code_fingerprint,
                build_info::CODE_FINGERPRINT
            );
        }
        specs.push(run.spec.clone());
    }
    let reports = train::train_stack(&specs, opts)?;
    crate::eval::evaluate_finished(&reports, opts);
    Ok(reports)
}

/// Where run `id` stands ([`crate::store::RunDir::state`]) and why, when it failed or stopped.
fn final_state(store: &Store, id: &str) -> (RunState, Option<String>) {
    let run = store.run(id);
    let status = run.read_status().ok().flatten();
    let state = run.state(status.as_ref());
    (state, status.and_then(|s| s.message))
}

/// How many times a `--jobs` worker that dies without recording an outcome (a crash, a kill,
/// the OOM killer) is started again on the same run before the run is marked failed.
pub const WORKER_RETRIES: usize = 2;

/// Executes every run of `manifest` not yet done; returns where each ended.
pub fn run_sweep(manifest: &Manifest, opts: &SweepOptions) -> Result<SweepReport> {
    let store = &opts.train.store;
    let total_epochs: usize = manifest.runs.iter().map(|r| r.spec.epochs).sum();
    let multi = MultiProgress::with_draw_target(if !opts.train.quiet && stderr_is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let overall = multi.add(ProgressBar::new(total_epochs as u64));
    overall.set_style(
        ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30.green/white}] {pos}/{len} epochs, {msg} {elapsed_precise} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    overall.set_prefix(format!("sweep {}", manifest.name));
    // Epochs already on disk count as done, so the ETA covers only what is left.
    let done_epochs: usize = manifest
        .runs
        .iter()
        .map(|r| match store.run(&r.id).read_status() {
            Ok(Some(s)) => s.epochs_done.min(r.spec.epochs),
            _ => 0,
        })
        .sum();
    overall.set_position(done_epochs as u64);
    overall.reset_eta();

    let entries = manifest.entries();
    let mut pending: Vec<usize> = (0..entries.len()).collect();
    let interrupter = opts.train.interrupter.clone();
    let mut workers = Workers::default();
    let manifest_path = Manifest::path(store, &manifest.name);
    let final_runs = || {
        manifest
            .runs
            .iter()
            .filter(|r| final_state(store, &r.id).0.is_final())
            .count()
    };
    let runs_message = || format!("{}/{} runs", final_runs(), manifest.runs.len());
    while !pending.is_empty() || !workers.children.is_empty() {
        if interrupter.should_stop() {
            break;
        }
        overall.set_message(runs_message());
        let mut waiting = Vec::new();
        for index in std::mem::take(&mut pending) {
            if interrupter.should_stop() {
                waiting.push(index);
                continue;
            }
            let todo: Vec<usize> = entries[index]
                .iter()
                .copied()
                .filter(|&i| store.run(&manifest.runs[i].id).current_state() != RunState::Done)
                .collect();
            // Done runs are skipped; failed ones are tried again, once per launch (a killed
            // worker, a full disk): a run that fails now is not queued again.
            if todo.is_empty() {
                continue;
            }
            if todo
                .iter()
                .any(|&i| Lock::is_held(&store.run(&manifest.runs[i].id).lock_path()))
            {
                waiting.push(index);
                continue;
            }
            if opts.jobs <= 1 {
                let mut train_opts = opts.train.clone();
                train_opts.sweep_bars = Some((multi.clone(), overall.clone()));
                train_opts.on_epoch = opts.on_progress.clone();
                let reports = run_entry(manifest, index, &train_opts)?;
                if reports.iter().any(|r| {
                    matches!(
                        r.outcome,
                        Outcome::Busy { .. } | Outcome::Interrupted { .. }
                    )
                }) {
                    waiting.push(index);
                }
            } else {
                while workers.children.len() >= opts.jobs && !interrupter.should_stop() {
                    workers.reap(&mut waiting, store, manifest, &entries)?;
                    if let Some(hook) = &opts.on_progress {
                        hook();
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                // Stopped while waiting for a slot: start nothing new.
                if interrupter.should_stop() {
                    waiting.push(index);
                    continue;
                }
                let child = spawn_entry(&manifest_path, index, opts)?;
                workers.children.push(Worker {
                    index,
                    status_before: entries[index]
                        .iter()
                        .map(|&i| status_stamp(&store.run(&manifest.runs[i].id)))
                        .collect(),
                    child,
                });
            }
            overall.set_message(runs_message());
        }
        workers.reap(&mut waiting, store, manifest, &entries)?;
        if !workers.children.is_empty() {
            if let Some(hook) = &opts.on_progress {
                hook();
            }
        }
        pending = waiting;
        if !pending.is_empty() || !workers.children.is_empty() {
            // Runs held by another process: poll until they finish or their holder dies.
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    // A stop asked of this process (Ctrl-C reaches the workers too, from the terminal; SIGTERM
    // does not) is passed on, so every worker stops at its next batch boundary.
    if interrupter.should_stop() {
        for worker in &workers.children {
            // SAFETY: sends SIGINT to a child process of ours.
            unsafe {
                libc::kill(worker.child.id() as i32, libc::SIGINT);
            }
        }
    }
    for mut worker in workers.children {
        let _ = worker.child.wait();
    }
    overall.finish_and_clear();
    Ok(SweepReport {
        interrupted: interrupter.should_stop(),
        ..current(store, manifest)
    })
}

/// Where each run of `manifest` stands now, as a report (not interrupted).
pub fn current(store: &Store, manifest: &Manifest) -> SweepReport {
    SweepReport {
        runs: manifest
            .runs
            .iter()
            .map(|r| {
                let (state, message) = final_state(store, &r.id);
                (r.clone(), state, message)
            })
            .collect(),
        interrupted: false,
    }
}

/// Starts `vaelab entry MANIFEST INDEX` with its share of the machine's threads: the cores over
/// `--jobs`, or fewer where the caller's `OMP_NUM_THREADS` or `MKL_NUM_THREADS` asks for fewer
/// (single-threaded kernels are what makes a member equal its run alone bit for bit). MKL has
/// its own setting, which would otherwise override OpenMP's.
fn spawn_entry(manifest: &Path, index: usize, opts: &SweepOptions) -> Result<Child> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let asked = ["OMP_NUM_THREADS", "MKL_NUM_THREADS"].map(|name| std::env::var(name).ok());
    let threads = worker_threads(cores, opts.jobs, &asked).to_string();
    Command::new(std::env::current_exe()?)
        .arg("--results")
        .arg(opts.train.store.root())
        .arg("--data")
        .arg(&opts.train.data_dir)
        .arg("--quiet")
        .arg("entry")
        .arg(manifest)
        .arg(index.to_string())
        .arg("--eval")
        .arg(opts.train.eval.to_string())
        .env("OMP_NUM_THREADS", &threads)
        .env("MKL_NUM_THREADS", &threads)
        .env("RAYON_NUM_THREADS", &threads)
        .spawn()
        .context("cannot start a sweep worker")
}

/// The threads one of `jobs` workers gets on `cores` cores: its share, or fewer where one of
/// the caller's thread settings (`asked`: `OMP_NUM_THREADS`, `MKL_NUM_THREADS`) asks for fewer;
/// a setting that is not a positive number is ignored.
fn worker_threads(cores: usize, jobs: usize, asked: &[Option<String>]) -> usize {
    let share = (cores / jobs.max(1)).max(1);
    asked
        .iter()
        .filter_map(|value| value.as_deref()?.trim().parse::<usize>().ok())
        .filter(|&n| n >= 1)
        .fold(share, usize::min)
}

/// One `--jobs` worker process.
struct Worker {
    /// The manifest entry it trains.
    index: usize,
    /// Each member's status.toml time when it started.
    status_before: Vec<Option<std::time::SystemTime>>,
    child: Child,
}

/// When `status.toml` of `run` was last written (None when there is none).
fn status_stamp(run: &crate::store::RunDir) -> Option<std::time::SystemTime> {
    std::fs::metadata(run.file("status.toml"))
        .and_then(|m| m.modified())
        .ok()
}

/// The `--jobs` worker processes, and how often each entry's worker died.
#[derive(Default)]
struct Workers {
    children: Vec<Worker>,
    deaths: std::collections::HashMap<usize, usize>,
}

impl Workers {
    /// Collects the workers that ended: an entry whose runs all ended is done; one stopped on
    /// request or held elsewhere waits; one whose worker died without recording anything is
    /// retried, [`WORKER_RETRIES`] times, then its unfinished runs are failed.
    fn reap(
        &mut self,
        waiting: &mut Vec<usize>,
        store: &Store,
        manifest: &Manifest,
        entries: &[Vec<usize>],
    ) -> Result<()> {
        let mut still = Vec::new();
        for mut worker in self.children.drain(..) {
            let Some(exit) = worker.child.try_wait()? else {
                still.push(worker);
                continue;
            };
            let index = worker.index;
            let members = &entries[index];
            let mut all_final = true;
            let mut recorded_or_held = false;
            for (k, &i) in members.iter().enumerate() {
                let run = store.run(&manifest.runs[i].id);
                let status = run.read_status().ok().flatten();
                let state = run.state(status.as_ref());
                all_final &= state.is_final();
                if state.is_final() {
                    continue;
                }
                let recorded = status
                    .as_ref()
                    .is_some_and(|s| s.state != RunState::Running)
                    && status_stamp(&run) != worker.status_before[k];
                recorded_or_held |= recorded || state == RunState::Running;
            }
            if all_final {
                continue;
            }
            if recorded_or_held {
                // Stopped on request, or another live process holds it: the loop decides.
                waiting.push(index);
                continue;
            }
            let deaths = self.deaths.entry(index).or_insert(0);
            *deaths += 1;
            if *deaths <= WORKER_RETRIES {
                waiting.push(index);
                continue;
            }
            for &i in members {
                let run = store.run(&manifest.runs[i].id);
                if run.current_state().is_final() {
                    continue;
                }
                let epochs_done = train::epochs_on_disk(&run);
                let reason = format!(
                    "worker {} after epoch {epochs_done} of {} ({} attempts)",
                    describe_exit(exit),
                    manifest.runs[i].spec.epochs,
                    *deaths
                );
                if let Ok(Ok(_lock)) = Lock::acquire(&run.lock_path()) {
                    run.write_status(&RunStatus {
                        state: RunState::Failed,
                        epochs_done,
                        message: Some(reason),
                    })?;
                }
            }
        }
        self.children = still;
        Ok(())
    }
}

/// "killed by signal 9" or "exited with code 101".
fn describe_exit(exit: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (exit.code(), exit.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "ended".to_string(),
    }
}

/// Writes `summary.parquet` (one row per run: its parameters, state, epochs done and every
/// result column, [`FINAL_COLUMNS`] then [`EVAL_SUMMARY`]) and `epochs.parquet` (every run's
/// per-epoch rows joined with its parameters) into the sweep's folder; returns the summary
/// frame. The parameter columns are [`param_columns`], the same in both.
pub fn write_tables(store: &Store, manifest: &Manifest, report: &SweepReport) -> Result<DataFrame> {
    let dir = store.sweep_dir(&manifest.name);
    let runs: Vec<&ManifestRun> = report.runs.iter().map(|(r, _, _)| r).collect();
    // A run whose files cannot be read has its state (and reason) in the table and no
    // metrics, rather than no table at all.
    let rows: Vec<Vec<EpochRow>> = runs
        .iter()
        .map(|r| read_metrics(&store.run(&r.id).metrics_path()).unwrap_or_default())
        .collect();
    let evals: Vec<Vec<EvalRow>> = runs
        .iter()
        .map(|r| {
            read_eval(&store.run(&r.id).eval_path())
                .ok()
                .flatten()
                .unwrap_or_default()
        })
        .collect();

    let specs: Vec<&RunSpec> = runs.iter().map(|r| &r.spec).collect();
    let mut columns = vec![
        Column::from(Series::new(
            "run_id".into(),
            runs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        )),
        Column::from(Series::new(
            "sweep".into(),
            vec![manifest.name.as_str(); runs.len()],
        )),
    ];
    columns.extend(param_columns(&specs)?);
    columns.push(Column::from(Series::new(
        "state".into(),
        report
            .runs
            .iter()
            .map(|(_, s, _)| s.as_str())
            .collect::<Vec<_>>(),
    )));
    columns.push(Column::from(Series::new(
        "epochs_done".into(),
        rows.iter()
            .map(|r| last_row(r, Split::Train).map_or(0, |t| t.epoch))
            .collect::<Vec<u32>>(),
    )));
    let results = FINAL_COLUMNS
        .iter()
        .map(|c| c.0)
        .chain(EVAL_SUMMARY.iter().map(|c| c.0));
    for column in results {
        let values: Vec<Option<f64>> = rows
            .iter()
            .zip(&evals)
            .map(|(r, e)| result_value(r, e, column))
            .collect();
        columns.push(Column::from(Series::new(column.into(), values)));
    }
    let mut summary = DataFrame::new(runs.len(), columns)?;
    write_parquet(&dir.join("summary.parquet"), &mut summary)?;

    let owners: Vec<&RunSpec> = rows
        .iter()
        .zip(&specs)
        .flat_map(|(r, s)| std::iter::repeat_n(*s, r.len()))
        .collect();
    let mut epochs = metrics_frame(&rows.concat())?;
    epochs.with_column(Column::from(Series::new(
        "sweep".into(),
        vec![manifest.name.as_str(); owners.len()],
    )))?;
    for c in param_columns(&owners)? {
        epochs.with_column(c)?;
    }
    write_parquet(&dir.join("epochs.parquet"), &mut epochs)?;
    Ok(summary)
}

/// One run's line in `vaelab status`.
#[derive(Clone, Debug)]
pub struct RunProgress {
    /// The run.
    pub run: ManifestRun,
    /// Where it stands ([`crate::store::RunDir::state`]).
    pub state: RunState,
    /// Complete epochs on disk.
    pub epochs_done: usize,
    /// Test loss of the last complete epoch.
    pub test_loss: Option<f64>,
    /// Seconds each complete epoch took.
    pub epoch_seconds: Vec<f64>,
}

/// Where every run of a manifest stands, read from the run directories.
pub fn progress(store: &Store, manifest: &Manifest) -> Result<Vec<RunProgress>> {
    manifest
        .runs
        .iter()
        .map(|run| {
            let dir = store.run(&run.id);
            let status = dir.read_status()?;
            let rows = read_metrics(&dir.metrics_path())?;
            let state = dir.state(status.as_ref());
            // status.toml is written when a run starts and ends; while it trains, the epochs
            // complete on disk are the truth.
            let epochs_done = match status {
                Some(s) if state.is_final() => s.epochs_done,
                _ => train::epochs_on_disk(&dir),
            };
            let epoch_seconds = (1..=epochs_done as u32)
                .map(|e| {
                    rows.iter()
                        .filter(|r| r.epoch == e)
                        .map(|r| r.seconds)
                        .sum()
                })
                .collect();
            Ok(RunProgress {
                run: run.clone(),
                state,
                epochs_done,
                test_loss: last_row(&rows, Split::Test).map(|r| r.loss),
                epoch_seconds,
            })
        })
        .collect()
}

/// Seconds left for the runs not done, from the measured mean epoch time (None before any).
pub fn eta_seconds(runs: &[RunProgress]) -> Option<f64> {
    let times: Vec<f64> = runs.iter().flat_map(|r| r.epoch_seconds.clone()).collect();
    if times.is_empty() {
        return None;
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let left: usize = runs
        .iter()
        .filter(|r| !r.state.is_final())
        .map(|r| r.run.spec.epochs.saturating_sub(r.epochs_done))
        .sum();
    Some(mean * left as f64)
}

#[cfg(test)]
mod tests {
    use super::worker_threads;

    /// A worker gets the cores over `--jobs` (at least one), never more than the caller's
    /// `OMP_NUM_THREADS` or `MKL_NUM_THREADS`, whichever is lower; junk settings are ignored.
    #[test]
    fn workers_share_the_cores_and_keep_a_lower_caller_setting() {
        let none = [None, None];
        let set = |omp: &str, mkl: &str| [Some(omp.to_string()), Some(mkl.to_string())];
        assert_eq!(worker_threads(16, 1, &none), 16);
        assert_eq!(worker_threads(16, 4, &none), 4);
        assert_eq!(worker_threads(2, 4, &none), 1);
        assert_eq!(worker_threads(16, 2, &set("1", "8")), 1);
        assert_eq!(worker_threads(16, 2, &set("8", "3")), 3);
        assert_eq!(worker_threads(16, 2, &set("32", "32")), 8);
        assert_eq!(worker_threads(16, 2, &[None, Some(" 2 ".into())]), 2);
        assert_eq!(worker_threads(16, 2, &set("0", "many")), 8);
    }
}
