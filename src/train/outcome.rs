//! What a training call returns: each run's [`Outcome`] and [`RunReport`], and the per-epoch
//! log line.

use std::path::PathBuf;

use crate::store::{EpochRow, LockHolder};

/// How a call to [`super::train_run`] ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// All epochs trained now (possibly resuming an earlier launch).
    Done,
    /// Nothing to do: the run was already complete.
    AlreadyDone,
    /// Stopped on request after `epochs_done` complete epochs; relaunch to resume.
    Interrupted {
        /// Epochs safely on disk.
        epochs_done: usize,
    },
    /// Another live process is training this run now.
    Busy {
        /// Who.
        holder: LockHolder,
    },
    /// Stopped by a non-finite loss or an error.
    Failed {
        /// What went wrong.
        reason: String,
    },
}

impl Outcome {
    /// The most telling of several runs' outcomes, for one exit code: stopped, then failed,
    /// then busy; `None` when every run is done.
    pub fn most_telling<'a>(
        outcomes: impl IntoIterator<Item = &'a Outcome> + Clone,
    ) -> Option<&'a Outcome> {
        let rank = |o: &Outcome| match o {
            Outcome::Interrupted { .. } => 3,
            Outcome::Failed { .. } => 2,
            Outcome::Busy { .. } => 1,
            Outcome::Done | Outcome::AlreadyDone => 0,
        };
        outcomes
            .into_iter()
            .filter(|o| rank(o) > 0)
            .max_by_key(|o| rank(o))
    }
}

/// The result of [`super::train_run`].
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The run id.
    pub id: String,
    /// The run directory.
    pub dir: PathBuf,
    /// How it ended.
    pub outcome: Outcome,
    /// All per-epoch rows on disk.
    pub rows: Vec<EpochRow>,
}

/// One per-epoch log line.
pub fn epoch_line(label: &str, epochs: usize, train: &EpochRow, test: &EpochRow) -> String {
    let kl = |r: &EpochRow| r.kl.map_or("-".to_string(), |k| format!("{k:.3}"));
    format!(
        "{label} epoch {:>3}/{epochs}  train recon {:>8.3} kl {:>7} loss {:>8.3}  | test recon {:>8.3} kl {:>7} loss {:>8.3}  | article {:>9.3}  {:.1}s",
        train.epoch,
        train.recon,
        kl(train),
        train.loss,
        test.recon,
        kl(test),
        test.loss,
        train.article_loss.unwrap_or(f64::NAN),
        train.seconds + test.seconds,
    )
}
