//! The bridge from burn-train's epoch events to each stacked member's `metrics.parquet`.
//!
//! The Learner calls [`MetricLogger::log_epoch_summary`] at the end of each split. The train
//! split's per-member means are kept; when the test split of an epoch ends, each live member's
//! two rows are appended and its whole file rewritten atomically, and so is its
//! `kl_dims.parquet` (the test split's KL per latent dimension, VAEs). A member whose epoch is not
//! finite is failed there (its rows are written, nothing after); the stack is then stopped
//! and the others restacked without it ([`RESTACK`]), or, when none is left, just stopped.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate};
use burn::train::metric::{MetricDefinition, NumericEntry};
use burn::train::Interrupter;

use super::metrics::Tallies;
use crate::config::RunSpec;
use crate::data::Split;
use crate::store::{write_kl_dims, write_metrics, EpochRow, KlDimRow};

/// The stop message with which the recorder ends a stack early when a member has failed and
/// others are left: they are restacked without it (see `run::train_group`).
pub const RESTACK: &str = "a member failed: restacking the others without it";

/// Called with member index and its finished epoch's (train, test) rows.
pub type EpochCallback = Box<dyn FnMut(usize, &EpochRow, &EpochRow) + Send>;

/// Shared view of what the recorder has written (the trainer and the checkpointer read it).
pub type SharedRows = Arc<Mutex<RecorderState>>;

/// One member's log.
#[derive(Clone, Debug, Default)]
pub struct MemberLog {
    /// Rows of every finished epoch, train then test.
    pub rows: Vec<EpochRow>,
    /// Its test split's KL per latent dimension, every finished epoch.
    pub kl_dims: Vec<KlDimRow>,
    /// The first error met while writing its metrics (the logger API cannot return one).
    pub error: Option<String>,
    /// Why the member failed (a non-finite epoch), if it did.
    pub failed: Option<String>,
}

/// What the recorder has seen, per member.
#[derive(Default)]
pub struct RecorderState {
    /// In stack order.
    pub members: Vec<MemberLog>,
}

/// Where a member's metrics go.
pub struct MemberSink {
    /// Its run id.
    pub run_id: String,
    /// Its `metrics.parquet`.
    pub path: PathBuf,
    /// Its `kl_dims.parquet`.
    pub kl_dims_path: PathBuf,
    /// Rows already on disk (a resumed run's).
    pub rows: Vec<EpochRow>,
    /// Per-dimension KL rows already on disk, up to the same epoch.
    pub kl_dims: Vec<KlDimRow>,
    /// Its parameters: the learning rate, KL weight and capacity of each epoch recorded beside
    /// its rows come from them, as the trainee's do.
    pub spec: RunSpec,
}

/// A [`MetricLogger`] that turns each split's per-member tallies into [`EpochRow`]s.
pub struct EpochRecorder {
    sinks: Vec<MemberSink>,
    epochs: usize,
    batches: usize,
    variational: bool,
    tallies: Tallies,
    pending_train: Option<Vec<EpochRow>>,
    split_started: Instant,
    state: SharedRows,
    on_epoch: EpochCallback,
    interrupter: Interrupter,
}

impl EpochRecorder {
    /// A recorder for the members `sinks` of a stack training `epochs` epochs of `batches`
    /// optimiser steps, reading `tallies`.
    pub fn new(
        sinks: Vec<MemberSink>,
        epochs: usize,
        batches: usize,
        variational: bool,
        tallies: Tallies,
        on_epoch: EpochCallback,
        interrupter: Interrupter,
    ) -> (Self, SharedRows) {
        let members = sinks
            .iter()
            .map(|s| MemberLog {
                rows: s.rows.clone(),
                kl_dims: s.kl_dims.clone(),
                ..MemberLog::default()
            })
            .collect();
        let state = Arc::new(Mutex::new(RecorderState { members }));
        let recorder = Self {
            sinks,
            epochs,
            batches,
            variational,
            tallies,
            pending_train: None,
            split_started: Instant::now(),
            state: state.clone(),
            on_epoch,
            interrupter,
        };
        (recorder, state)
    }

    /// Each member's row of `split` in `epoch`, its share of the split's wall time as seconds,
    /// and its KL per latent dimension.
    fn rows(&mut self, epoch: usize, split: Split) -> Vec<(EpochRow, Vec<f64>)> {
        let tally = self
            .tallies
            .lock()
            .unwrap()
            .remove(&(split, epoch))
            .unwrap_or_default();
        let seconds = self.split_started.elapsed().as_secs_f64() / self.sinks.len() as f64;
        self.split_started = Instant::now();
        let vae = |v: f64| self.variational.then_some(v);
        // The schedules' values at the epoch's last optimiser step.
        let last_step = (epoch * self.batches).saturating_sub(1);
        self.sinks
            .iter()
            .enumerate()
            .map(|(i, sink)| {
                let m = tally.means(i);
                let row = EpochRow {
                    run_id: sink.run_id.clone(),
                    epoch: epoch as u32,
                    split,
                    recon: m.recon,
                    kl: vae(m.kl),
                    beta_kl: vae(m.kl_term),
                    loss: m.loss,
                    article_loss: (split == Split::Train).then_some(m.article_loss),
                    lr: Some(sink.spec.lr_at(epoch)),
                    kl_weight: vae(sink.spec.kl_weight_at(last_step, self.batches)),
                    capacity: sink.spec.capacity_at(last_step, self.batches),
                    seconds,
                };
                (row, m.kl_dims)
            })
            .collect()
    }
}

impl MetricLogger for EpochRecorder {
    fn log(
        &mut self,
        _update: MetricsUpdate,
        _epoch: usize,
        _split: &burn::train::metric::store::Split,
    ) {
    }

    fn read_numeric(
        &mut self,
        _name: &str,
        _epoch: usize,
        _split: &burn::train::metric::store::Split,
    ) -> Result<Vec<NumericEntry>, String> {
        Err("the epoch recorder keeps epoch means only; read metrics.parquet".into())
    }

    fn log_metric_definition(&mut self, _definition: MetricDefinition) {}

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        let epoch = summary.epoch_number;
        if summary.split == burn::train::metric::store::Split::Train {
            let rows = self.rows(epoch, Split::Train).into_iter().map(|r| r.0);
            self.pending_train = Some(rows.collect());
            return;
        }
        let tests = self.rows(epoch, Split::Test);
        let Some(trains) = self.pending_train.take() else {
            return;
        };
        // burn-train ends the split with its summary even when a stop cut it short; such an
        // epoch is not complete (and gets no checkpoint): keep it off disk.
        if self.interrupter.should_stop() {
            return;
        }
        let mut state = self.state.lock().unwrap();
        let mut finished = Vec::new();
        let mut newly_failed = false;
        for (i, (train, (test, kl_dims))) in trains.into_iter().zip(tests).enumerate() {
            let member = &mut state.members[i];
            if member.failed.is_some() {
                continue;
            }
            for (row, split) in [(&train, "train"), (&test, "test")] {
                let values = [Some(row.recon), row.kl, Some(row.loss)];
                if member.failed.is_none() && values.iter().flatten().any(|v| !v.is_finite()) {
                    member.failed = Some(format!("non-finite {split} loss at epoch {epoch}"));
                    newly_failed = true;
                }
            }
            member.rows.retain(|r| r.epoch as usize != epoch);
            member.rows.push(train.clone());
            member.rows.push(test.clone());
            if let Err(e) = write_metrics(&self.sinks[i].path, &member.rows) {
                member.error.get_or_insert_with(|| format!("{e:#}"));
            }
            if !kl_dims.is_empty() {
                member.kl_dims.retain(|r| r.epoch as usize != epoch);
                member
                    .kl_dims
                    .extend(kl_dims.iter().enumerate().map(|(dim, &kl)| KlDimRow {
                        epoch: epoch as u32,
                        dim: dim as u32,
                        kl,
                    }));
                if let Err(e) = write_kl_dims(&self.sinks[i].kl_dims_path, &member.kl_dims) {
                    member.error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
            finished.push((i, train, test));
        }
        if state.members.iter().all(|m| m.failed.is_some()) {
            let reason = state.members[0].failed.clone();
            self.interrupter.stop(reason.as_deref());
        } else if newly_failed && epoch < self.epochs {
            // The others resume from their last checkpoint (this epoch's, unless this stop
            // beats the Learner's checkpoint: metric events reach us asynchronously) in a
            // stack without the failed member; their numbers do not depend on their mates.
            self.interrupter.stop(Some(RESTACK));
        }
        drop(state);
        for (i, train, test) in finished {
            (self.on_epoch)(i, &train, &test);
        }
    }
}
