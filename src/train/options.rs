//! Where and how to train: [`TrainOptions`], shared by a run alone, a stack and a sweep.

use std::path::PathBuf;

use burn::train::Interrupter;
use indicatif::{MultiProgress, ProgressBar};

use crate::store::Store;

/// Where and how to train.
#[derive(Clone)]
pub struct TrainOptions {
    /// Results root.
    pub store: Store,
    /// MNIST directory.
    pub data_dir: PathBuf,
    /// No progress bar (per-epoch lines are still printed).
    pub quiet: bool,
    /// Stops training at the next batch boundary when triggered (Ctrl-C).
    pub interrupter: Interrupter,
    /// Bars of an enclosing sweep: the run's bar joins the display, each epoch ticks the
    /// overall bar.
    pub sweep_bars: Option<(MultiProgress, ProgressBar)>,
    /// Called after every epoch is on disk (an enclosing sweep rewrites its report).
    pub on_epoch: Option<EpochHook>,
    /// Whether and at which IWAE k each run is evaluated when it finishes (`--eval`).
    pub eval: crate::config::defaults::EvalPolicy,
}

/// A callback after each epoch (see [`TrainOptions::on_epoch`]).
pub type EpochHook = std::sync::Arc<dyn Fn() + Send + Sync>;

/// Lets an epoch hook's work through at most once per interval: hooks run after every epoch
/// and every poll of a sweep's workers, which can be many a second.
pub struct Throttle {
    interval: std::time::Duration,
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Throttle {
    /// At most once every `interval` (the first call is always due).
    pub fn every(interval: std::time::Duration) -> Self {
        Self {
            interval,
            last: std::sync::Mutex::new(None),
        }
    }

    /// Whether the work is due now; if so, the next interval starts.
    pub fn due(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < self.interval) {
            return false;
        }
        *last = Some(std::time::Instant::now());
        true
    }
}
