//! The bridge from burn-train's metric events to the run's `metrics.parquet`.
//!
//! The Learner calls [`MetricLogger::log`] per batch with each metric's running epoch mean and
//! [`MetricLogger::log_epoch_summary`] at the end of each split. When the test split of an epoch
//! ends, the epoch's two rows are appended and the whole file is rewritten atomically; the
//! Learner writes that epoch's checkpoint right after, so on disk the metrics are never behind
//! the newest checkpoint.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use burn::train::Interrupter;

use crate::store::{write_metrics, EpochRow};

/// Called with each finished epoch's (train, test) rows.
pub type EpochCallback = Box<dyn FnMut(&EpochRow, &EpochRow) + Send>;

/// Shared view of the rows written so far (the trainer reads it after the Learner returns).
pub type SharedRows = Arc<Mutex<RecorderState>>;

/// What the recorder has seen.
#[derive(Default)]
pub struct RecorderState {
    /// Rows of every finished epoch, train then test.
    pub rows: Vec<EpochRow>,
    /// The first error met while writing, if any (the Learner's logger API cannot return one).
    pub error: Option<String>,
    /// Epoch and reason of the first non-finite loss.
    pub non_finite: Option<(usize, String)>,
}

/// A [`MetricLogger`] that turns epoch summaries into [`EpochRow`]s in `metrics.parquet`, and
/// stops training (through the Learner's interrupter) at the first non-finite epoch.
pub struct EpochRecorder {
    run_id: String,
    path: PathBuf,
    variational: bool,
    names: HashMap<MetricId, String>,
    current: HashMap<String, f64>,
    pending_train: Option<EpochRow>,
    split_started: Instant,
    state: SharedRows,
    on_epoch: EpochCallback,
    interrupter: Interrupter,
}

impl EpochRecorder {
    /// A recorder continuing from `rows` (those of a resumed run, or none).
    pub fn new(
        run_id: &str,
        path: PathBuf,
        variational: bool,
        rows: Vec<EpochRow>,
        on_epoch: EpochCallback,
        interrupter: Interrupter,
    ) -> (Self, SharedRows) {
        let state = Arc::new(Mutex::new(RecorderState {
            rows,
            ..RecorderState::default()
        }));
        let recorder = Self {
            run_id: run_id.to_string(),
            path,
            variational,
            names: HashMap::new(),
            current: HashMap::new(),
            pending_train: None,
            split_started: Instant::now(),
            state: state.clone(),
            on_epoch,
            interrupter,
        };
        (recorder, state)
    }

    fn row(&mut self, epoch: usize, split: &str) -> EpochRow {
        let get = |k: &str| self.current.get(k).copied();
        let vae = |k: &str| if self.variational { get(k) } else { None };
        let row = EpochRow {
            run_id: self.run_id.clone(),
            epoch: epoch as u32,
            split: split.to_string(),
            recon: get("recon").unwrap_or(f64::NAN),
            kl: vae("kl"),
            beta_kl: vae("beta_kl"),
            loss: get("loss").unwrap_or(f64::NAN),
            article_loss: if split == "train" {
                get("article_loss")
            } else {
                None
            },
            seconds: self.split_started.elapsed().as_secs_f64(),
        };
        self.current.clear();
        self.split_started = Instant::now();
        row
    }
}

impl MetricLogger for EpochRecorder {
    fn log(&mut self, update: MetricsUpdate, _epoch: usize, _split: &Split) {
        for entry in update.entries_numeric {
            let Some(name) = self.names.get(&entry.entry.metric_id) else {
                continue;
            };
            // The running entry is the sample-weighted mean over the epoch so far; a final entry,
            // when the metric logs one, is the authoritative epoch value.
            let value = match (&entry.numeric_entry, &entry.running_entry) {
                (Some(NumericEntry::Final(v)), _) => Some(*v),
                (_, Some(running)) => Some(running.current()),
                _ => None,
            };
            if let Some(v) = value {
                self.current.insert(name.clone(), v);
            }
        }
    }

    fn read_numeric(
        &mut self,
        _name: &str,
        _epoch: usize,
        _split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        Err("the epoch recorder keeps epoch means only; read metrics.parquet".into())
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id, definition.name.to_string());
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        let epoch = summary.epoch_number;
        match summary.split {
            Split::Train => {
                let row = self.row(epoch, "train");
                self.pending_train = Some(row);
            }
            Split::Valid | Split::Test(_) => {
                let test = self.row(epoch, "test");
                let Some(train) = self.pending_train.take() else {
                    return;
                };
                // burn-train ends the split with its summary even when a stop cut it short;
                // such an epoch is not complete (and gets no checkpoint): keep it off disk.
                if self.interrupter.should_stop() {
                    return;
                }
                let mut state = self.state.lock().unwrap();
                if state.non_finite.is_none() {
                    for (row, split) in [(&train, "train"), (&test, "test")] {
                        let values = [Some(row.recon), row.kl, Some(row.loss)];
                        if values.iter().flatten().any(|v| !v.is_finite()) {
                            let reason = format!("non-finite {split} loss at epoch {epoch}");
                            self.interrupter.stop(Some(&reason));
                            state.non_finite = Some((epoch, reason));
                        }
                    }
                }
                state.rows.retain(|r| r.epoch as usize != epoch);
                state.rows.push(train.clone());
                state.rows.push(test.clone());
                if let Err(e) = write_metrics(&self.path, &state.rows) {
                    state.error.get_or_insert_with(|| format!("{e:#}"));
                }
                drop(state);
                (self.on_epoch)(&train, &test);
            }
        }
    }
}
