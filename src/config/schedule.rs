//! Learning-rate schedules over epochs: the learning rate member `lr` trains epoch `e` with,
//! a step function of the epoch (the Learner's own scheduler is not used: every member of a
//! stack has its own).

use serde::{Deserialize, Serialize};

/// How the learning rate changes from epoch to epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `lr` every epoch (the default).
    #[default]
    Constant,
    /// `lr · decay^(e − 1)`.
    Exponential,
    /// `lr · decay^⌊(e − 1) / step⌋`: multiplied by `decay` every `step` epochs.
    Step,
    /// Burda, Grosse & Salakhutdinov 2016 (arXiv:1509.00519), §5: for i = 0, …, 7, 3^i passes
    /// at `lr · 10^(−i/7)`, 3280 passes in all; `epochs` below 3280 trains a prefix of it.
    Burda,
}

/// Passes of the Burda schedule in all: Σ_{i=0}^{7} 3^i.
pub const BURDA_PASSES: usize = 3280;

impl LrSchedule {
    /// The name in matrices, configs and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Exponential => "exponential",
            LrSchedule::Step => "step",
            LrSchedule::Burda => "burda",
        }
    }

    /// The learning rate of 1-based `epoch` from base `lr`, with `decay` and `step` (see the
    /// variants; ignored where they do not apply).
    pub fn lr_at(self, lr: f64, decay: f64, step: usize, epoch: usize) -> f64 {
        let e = epoch.max(1) - 1;
        match self {
            LrSchedule::Constant => lr,
            LrSchedule::Exponential => lr * decay.powi(e as i32),
            LrSchedule::Step => lr * decay.powi((e / step.max(1)) as i32),
            LrSchedule::Burda => {
                // Stage i covers passes (3^i − 1)/2 + 1 ..= (3^(i+1) − 1)/2.
                let mut stage = 0;
                let mut end = 1;
                while e >= end && stage < 7 {
                    stage += 1;
                    end += 3usize.pow(stage);
                }
                lr * 10f64.powf(-(stage as f64) / 7.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_give_the_lr_of_each_epoch() {
        let at = |s: LrSchedule, e| s.lr_at(1e-3, 0.5, 3, e);
        assert_eq!(at(LrSchedule::Constant, 7), 1e-3);
        assert_eq!(at(LrSchedule::Exponential, 1), 1e-3);
        assert_eq!(at(LrSchedule::Exponential, 3), 2.5e-4);
        assert_eq!(
            [1, 3, 4, 6, 7].map(|e| at(LrSchedule::Step, e)),
            [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4]
        );
        // Burda: pass 1 at lr, passes 2-4 at lr·10^(-1/7), 5-13 at 10^(-2/7), …, the last
        // 2187 (1094-3280) at 10^(-1).
        let b = |e| LrSchedule::Burda.lr_at(1.0, 0.0, 0, e);
        let stage = |i: f64| 10f64.powf(-i / 7.0);
        assert_eq!(b(1), 1.0);
        assert_eq!([b(2), b(4)], [stage(1.0); 2]);
        assert_eq!([b(5), b(13)], [stage(2.0); 2]);
        assert_eq!([b(14), b(40)], [stage(3.0); 2]);
        assert_eq!([b(1094), b(BURDA_PASSES)], [stage(7.0); 2]);
        assert_eq!(b(1093), stage(6.0));
        let passes: usize = (0..8).map(|i| 3usize.pow(i)).sum();
        assert_eq!(passes, BURDA_PASSES);
    }
}
