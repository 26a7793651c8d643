//! Schedules over training: the learning rate of each epoch (a step function of the epoch;
//! the Learner's own scheduler is not used: every member of a stack has its own) and the KL
//! weight's and capacity's share at each optimiser step (KL control, per step and per member;
//! `RunSpec::kl_weight_at` and `RunSpec::capacity_at` apply them to a run).

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

/// A linear ramp's share at 0-based optimiser `step` of a ramp `steps` long: `step / steps`,
/// then 1 (a ramp of 0 steps is 1 from the start). The KL warm-up of Bowman et al. 2016
/// (arXiv:1511.06349) and Sønderby et al. 2016 (arXiv:1602.02282: β from 0 to 1 linearly over
/// the first epochs), and the capacity's rise of Burgess et al. 2018 (arXiv:1804.03599: C
/// increased linearly from 0).
pub fn warmup(step: usize, steps: usize) -> f64 {
    if step >= steps {
        1.0
    } else {
        step as f64 / steps as f64
    }
}

/// Cyclical annealing (Fu et al. 2019, arXiv:1903.10145), the share at 0-based `step`
/// (their t − 1) of a run of `total` steps split into `cycles` cycles, rising linearly over
/// the first `ramp` share of each (their R) and 1 for the rest:
/// `τ = mod(t − 1, ⌈T/M⌉) / (T/M)`, `share = τ/R` if `τ ≤ R`, else 1.
pub fn cyclical(step: usize, total: usize, cycles: usize, ramp: f64) -> f64 {
    let cycles = cycles.max(1);
    let period = total as f64 / cycles as f64;
    let tau = (step % total.div_ceil(cycles).max(1)) as f64 / period;
    if tau <= ramp {
        tau / ramp
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_ramps_and_cycles_give_the_share_of_each_step() {
        // Warm-up over 4 steps: 0, ¼, ½, ¾, then 1 for good.
        assert_eq!(
            [0, 1, 2, 3, 4, 100].map(|s| warmup(s, 4)),
            [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
        );
        assert_eq!(warmup(0, 0), 1.0);
        // 2 cycles of 10 steps over 20, rising over the first half of each: τ = (s mod 10)/10.
        let c = |s| cyclical(s, 20, 2, 0.5);
        assert_eq!([0, 1, 4, 5, 6, 9].map(c), [0.0, 0.2, 0.8, 1.0, 1.0, 1.0]);
        // The second cycle starts again from 0; the last step is at full weight.
        assert_eq!([10, 12, 15, 19].map(c), [0.0, 0.4, 1.0, 1.0]);
        // Uneven: 3 cycles over 10 steps, ⌈10/3⌉ = 4 steps a cycle, τ = (s mod 4)/(10/3).
        let u = |s| cyclical(s, 10, 3, 1.0);
        for (s, want) in [(0, 0.0), (3, 0.9), (4, 0.0), (7, 0.9), (8, 0.0), (9, 0.3)] {
            assert!((u(s) - want).abs() < 1e-12, "step {s}: {} vs {want}", u(s));
        }
        // A ramp of the whole cycle never reaches 1 before the cycle's end.
        assert!(cyclical(9, 10, 1, 1.0) < 1.0);
    }

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
