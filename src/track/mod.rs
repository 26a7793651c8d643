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
