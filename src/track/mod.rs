//! Exporters to the trackers researchers already use, apart from comparing and rendering:
//! TensorBoard event files with the HParams plugin's session data ([`tensorboard`]) and an
//! MLflow tracking server over its REST API ([`mlflow`]). An
//! export reads only what a run has on disk and is idempotent: run again, after more epochs,
//! a resume or an evaluation, it adds only what the tracker does not have yet. The live form
//! during `train` and `sweep` is the same export after every epoch ([`live`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::tracking::Tracking;
use crate::store::Store;
use crate::train::{EpochHook, Throttle};

pub mod mlflow;
pub mod tensorboard;

/// The metrics of one epoch's row as every tracker names them: `train/…` and `test/…` recon,
/// KL, KL term and loss, and on the train row the schedule's `schedule/lr`, `kl_weight`,
/// `capacity` (those the run has).
pub fn row_metrics(row: &crate::store::EpochRow) -> Vec<(String, f64)> {
    let split = row.split.as_str();
    let mut out: Vec<(String, Option<f64>)> = vec![
        (format!("{split}/recon"), Some(row.recon)),
        (format!("{split}/kl"), row.kl),
        (format!("{split}/kl_term"), row.beta_kl),
        (format!("{split}/loss"), Some(row.loss)),
    ];
    if row.split == crate::data::Split::Train {
        out.push(("schedule/lr".into(), row.lr));
        out.push(("schedule/kl_weight".into(), row.kl_weight));
        out.push(("schedule/capacity".into(), row.capacity));
    }
    out.into_iter().filter_map(|(k, v)| Some((k, v?))).collect()
}

/// The evaluation's numbers every tracker gets, at the last epoch: `eval/elbo`,
/// `eval/iwae_k<k>`, `eval/active_units`.
pub fn eval_metrics(record: &crate::store::RunRecord) -> Vec<(String, f64)> {
    record
        .eval
        .iter()
        .filter(|r| r.dim.is_none() && r.class.is_none())
        .filter_map(|r| match (r.metric.as_str(), r.k) {
            ("elbo", None) => Some(("eval/elbo".to_string(), r.value)),
            ("iwae", Some(k)) => Some((format!("eval/iwae_k{k}"), r.value)),
            ("active_units", None) => Some(("eval/active_units".to_string(), r.value)),
            _ => None,
        })
        .collect()
}

/// Milliseconds since the epoch of an RFC 3339 time (a provenance's `started`, `finished`).
pub fn millis(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A live export's failures as warnings, each distinct message once (an export after every
/// epoch would repeat it every time).
#[derive(Default)]
struct Warnings(Mutex<Option<String>>);

impl Warnings {
    fn warn(&self, what: &str, e: &anyhow::Error) {
        let message = format!("{e:#}");
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_deref() != Some(message.as_str()) {
            eprintln!("warning: {what}: {message}");
            *last = Some(message);
        }
    }
}

/// A hook for [`crate::train::TrainOptions::on_epoch`] and the sweep's progress that exports
/// the runs `ids` to the TensorBoard directory `dir` after an epoch, at most every two seconds
/// (the caller exports once more when training ends). A failure is a warning (once per
/// distinct message) and never stops training.
pub fn live(store: Store, ids: Vec<String>, dir: PathBuf) -> EpochHook {
    let (throttle, warnings) = (Throttle::every(Duration::from_secs(2)), Warnings::default());
    Arc::new(move || {
        if !throttle.due() {
            return;
        }
        if let Err(e) = tensorboard::export(&store, &ids, &dir) {
            warnings.warn("cannot write the TensorBoard logs", &e);
        }
    })
}

/// Live export to an MLflow server from a background thread ([`LiveMlflow::hook`]), so that a
/// slow or unreachable server never slows training: what a thread could not send, the next
/// export sends.
pub struct LiveMlflow {
    store: Store,
    ids: Vec<String>,
    uri: String,
    experiment: String,
    sweep: Option<String>,
    busy: Arc<AtomicBool>,
    throttle: Throttle,
    warnings: Warnings,
}

/// Clears the busy flag however the export thread ends (a panic included).
struct NotBusy(Arc<AtomicBool>);

impl Drop for NotBusy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl LiveMlflow {
    /// Exports `ids` of `store` to experiment `experiment` at `uri` (children of `sweep`'s
    /// parent run when given).
    pub fn new(
        store: Store,
        ids: Vec<String>,
        uri: String,
        experiment: String,
        sweep: Option<String>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            ids,
            uri,
            experiment,
            sweep,
            busy: Arc::new(AtomicBool::new(false)),
            throttle: Throttle::every(Duration::from_secs(2)),
            warnings: Warnings::default(),
        })
    }

    /// The epoch hook: one export thread at a time, at most every two seconds.
    pub fn hook(self: &Arc<Self>) -> EpochHook {
        let me = self.clone();
        Arc::new(move || me.spawn())
    }

    fn spawn(self: &Arc<Self>) {
        // Busy first, so that a skipped call does not use up the interval.
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        if !self.throttle.due() {
            self.busy.store(false, Ordering::Release);
            return;
        }
        let me = self.clone();
        std::thread::spawn(move || {
            let _done = NotBusy(me.busy.clone());
            if let Err(e) = me.export() {
                me.warnings
                    .warn("cannot send to MLflow (the next export sends it)", &e);
            }
        });
    }

    /// One export now, in this thread, after any running one has ended (the last export of a
    /// run or sweep: two at once could both create the same run).
    pub fn export(&self) -> anyhow::Result<usize> {
        mlflow::export(
            &self.store,
            &self.ids,
            &self.uri,
            &self.experiment,
            self.sweep.as_deref(),
        )
    }

    /// Waits for a running export thread (at most a minute) and blocks new ones.
    pub fn finish(&self) {
        let started = Instant::now();
        while self.busy.swap(true, Ordering::AcqRel) && started.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The live trackers of one `train`, `sweep` or Slurm task: hooks to call after every epoch,
/// and a last export at the end that says whether every tracker got everything.
pub struct Live {
    store: Store,
    ids: Vec<String>,
    tensorboard: Option<PathBuf>,
    /// The live export and the command that sends what it could not.
    mlflow: Option<(Arc<LiveMlflow>, String)>,
    /// What `vaelab export` sends the rest with: the sweep's name, else the run id.
    target: String,
}

impl Live {
    /// Tracks runs `ids` of `store` as `tracking` says; `sweep` names the sweep they belong to
    /// (its MLflow parent run and default experiment), else the one run is tracked alone.
    pub fn start(store: &Store, ids: &[String], tracking: &Tracking, sweep: Option<&str>) -> Self {
        let target = sweep.map_or_else(|| ids.first().cloned().unwrap_or_default(), String::from);
        let mlflow = tracking.mlflow.as_ref().map(|uri| {
            let experiment = tracking
                .experiment
                .clone()
                .or(sweep.map(String::from))
                .unwrap_or_else(|| "vaelab".to_string());
            let live = LiveMlflow::new(
                store.clone(),
                ids.to_vec(),
                uri.clone(),
                experiment,
                sweep.map(String::from),
            );
            let flag = tracking
                .experiment
                .as_ref()
                .map_or_else(String::new, |e| format!(" --experiment {e}"));
            (live, format!("vaelab export mlflow {uri} {target}{flag}"))
        });
        Self {
            store: store.clone(),
            ids: ids.to_vec(),
            tensorboard: tracking.tensorboard.clone(),
            mlflow,
            target,
        }
    }

    /// The hook to call after every epoch (none when no tracker is set).
    pub fn hook(&self) -> Option<EpochHook> {
        let mut hooks = Vec::new();
        if let Some(dir) = &self.tensorboard {
            hooks.push(live(self.store.clone(), self.ids.clone(), dir.clone()));
        }
        if let Some((live, _)) = &self.mlflow {
            hooks.push(live.hook());
        }
        if hooks.is_empty() {
            return None;
        }
        Some(Arc::new(move || hooks.iter().for_each(|h| h())))
    }

    /// The last export of every tracker, once training has ended (and the background MLflow
    /// export with it); each failure is a one-line warning with the command that sends the
    /// rest. Whether every tracker got everything.
    pub fn finish(&self) -> bool {
        let mut complete = true;
        if let Some(dir) = &self.tensorboard {
            if let Err(e) = tensorboard::export(&self.store, &self.ids, dir) {
                eprintln!(
                    "warning: the TensorBoard logs are incomplete ({e:#}); `vaelab export tensorboard {} {}` writes the rest",
                    dir.display(),
                    self.target
                );
                complete = false;
            }
        }
        if let Some((live, rest)) = &self.mlflow {
            live.finish();
            if let Err(e) = live.export() {
                eprintln!(
                    "warning: the MLflow export is incomplete ({e:#}); `{rest}` sends the rest"
                );
                complete = false;
            }
        }
        complete
    }
}
