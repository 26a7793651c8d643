//! Adam, with PyTorch's own in-place update kernels on libtorch.
//!
//! At the article's batch size (32) the step is memory-bound, and with Burn's backend-generic
//! Adam (13 elementwise passes per parameter, most of them allocating) the optimiser was over
//! half of a training step. On libtorch this optimiser runs `torch.optim.Adam`'s arithmetic
//! with libtorch's in-place kernels (`lerp_` for both moments, one `sqrt`, `addcdiv_`): 7
//! passes, one allocation; a tensor whose storage something else holds (under the `Learner`,
//! every parameter) gets the same pass out of place instead. Other backends run Burn's Adam
//! unchanged. The state is Burn's [`AdamState`], so checkpoints are the same either way. See
//! BENCHMARKS.md for what it buys.

use burn::optim::{Adam as BurnAdam, AdamConfig, AdamState, LearningRate, Optimizer};
use burn::prelude::*;

/// Adam with β₁ = 0.9, β₂ = 0.999 and a given ε (no weight decay, no AMSGrad).
#[derive(Clone)]
pub struct Adam {
    generic: BurnAdam,
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
    in_place: bool,
}

impl Adam {
    /// `in_place`: take the libtorch path (every parameter must then live on libtorch).
    pub fn new(epsilon: f64, in_place: bool) -> Self {
        let (beta_1, beta_2) = (0.9, 0.999);
        let generic = AdamConfig::new()
            .with_beta_1(beta_1 as f32)
            .with_beta_2(beta_2 as f32)
            .with_epsilon(epsilon as f32)
            .build();
        Self {
            generic,
            beta_1,
            beta_2,
            epsilon,
            in_place: in_place && cfg!(feature = "tch"),
        }
    }
}

impl Optimizer for Adam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, Option<AdamState<D>>) {
        #[cfg(feature = "tch")]
        if self.in_place {
            let (tensor, state) = libtorch::step(self, lr, tensor, grad, state);
            return (tensor, Some(state));
        }
        self.generic.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: AdamState<D>, device: &Device) -> AdamState<D> {
        <BurnAdam as Optimizer>::to_device(state, device)
    }
}

// Burn marks its libtorch backend deprecated; it is still our main backend (see ../shared/notes).
#[cfg(feature = "tch")]
#[allow(deprecated)]
mod libtorch {
    use burn::backend::libtorch::TchTensor;
    use burn::backend::LibTorch;
    use burn::optim::{AdamState, AdaptiveMomentumState, LearningRate};
    use burn::prelude::*;

    use super::Adam;

    fn primitive<const D: usize>(t: Tensor<D>) -> TchTensor {
        t.try_into_primitive::<LibTorch>()
            .expect("the in-place Adam is only used on libtorch")
    }

    /// `t` updated by `in_place` when its storage is its own, else by `fresh` into a new tensor:
    /// an update must not reach another holder. Burn's `Learner` clones the model before each
    /// optimiser step, so there every parameter is shared and takes the `fresh` path (one pass
    /// either way; copying first and then updating in place would be two).
    fn update(
        mut t: TchTensor,
        in_place: impl FnOnce(&mut tch::Tensor) -> Result<tch::Tensor, tch::TchError>,
        fresh: impl FnOnce(&tch::Tensor) -> Result<tch::Tensor, tch::TchError>,
    ) -> TchTensor {
        // An op on CPU float tensors of one shape cannot fail but for a bug.
        if t.can_mut() {
            // The returned handle shares `t`'s storage; dropping it frees nothing.
            let _ = in_place(&mut t.tensor).expect("libtorch Adam step");
            t
        } else {
            TchTensor::new(fresh(&t.tensor).expect("libtorch Adam step"))
        }
    }

    fn wrap<const D: usize>(t: TchTensor) -> Tensor<D> {
        Tensor::from_primitive::<LibTorch>(t)
    }

    /// One step of `torch.optim.Adam` (`foreach=False`), in place where nothing shares the
    /// storage. PyTorch updates v with `mul_` + `addcmul_(value=1-β₂)`; tch's `addcmul_` takes no
    /// scale, so v uses `lerp_` too (equal up to rounding).
    pub(super) fn step<const D: usize>(
        adam: &Adam,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, AdamState<D>) {
        let grad = primitive(grad);
        let (time, m, v) = match state {
            Some(s) => (
                s.momentum.time + 1,
                primitive(s.momentum.moment_1),
                primitive(s.momentum.moment_2),
            ),
            None => {
                let zeros = || TchTensor::new(grad.tensor.zeros_like());
                (1, zeros(), zeros())
            }
        };
        let t = time as i32;
        let bias_1 = 1.0 - adam.beta_1.powi(t);
        let bias_2_sqrt = (1.0 - adam.beta_2.powi(t)).sqrt();
        let step_size = lr / bias_1;
        let (w1, w2) = (1.0 - adam.beta_1, 1.0 - adam.beta_2);
        // m ← m + (1 − β₁)(g − m); v ← v + (1 − β₂)(g² − v).
        let m = update(
            m,
            |m| m.f_lerp_(&grad.tensor, w1),
            |m| m.f_lerp(&grad.tensor, w1),
        );
        let square = update(grad, |g| g.f_square_(), |g| g.f_square());
        let v = update(
            v,
            |v| v.f_lerp_(&square.tensor, w2),
            |v| v.f_lerp(&square.tensor, w2),
        );
        // p ← p − step · m / (√v / √(1 − β₂ᵗ) + ε), with the scale folded into the divisor.
        let mut denom = v.tensor.sqrt();
        let _ = denom
            .f_add_scalar_(adam.epsilon * bias_2_sqrt)
            .expect("libtorch Adam step");
        let _ = denom
            .f_mul_scalar_(-1.0 / (step_size * bias_2_sqrt))
            .expect("libtorch Adam step");
        let param = update(
            primitive(tensor),
            |p| p.f_addcdiv_(&m.tensor, &denom),
            |p| p.f_addcdiv(&m.tensor, &denom),
        );
        let momentum = AdaptiveMomentumState {
            time,
            moment_1: wrap(m),
            moment_2: wrap(v),
            max_moment_2: None,
        };
        (wrap(param), AdamState::new(momentum))
    }
}

#[cfg(all(test, feature = "tch"))]
mod tests {
    use super::*;
    use burn::module::{Module, Param};
    use burn::optim::{GradientsParams, ModuleOptimizer};

    #[derive(Module, Debug)]
    struct Weights {
        w: Param<Tensor<2>>,
    }

    /// Three steps of both paths on the same parameters and gradients agree to float rounding,
    /// and the libtorch path never writes into storage another tensor holds: `init`, which the
    /// parameter starts out sharing (else `start` would hold the trained values and nothing would
    /// seem to move), and, when `keep` is set, a clone of the model taken before each step, as
    /// Burn's `Learner` does.
    #[test]
    fn in_place_adam_matches_burns_adam() {
        let device = crate::train::test_device().autodiff();
        device.seed(7);
        let init = Tensor::<2>::random([64, 33], burn::tensor::Distribution::Default, &device);
        let values = |w: &Param<Tensor<2>>| w.val().to_data().try_to_vec::<f32>().unwrap();
        let run = |in_place: bool, keep: bool| {
            let mut model = Weights {
                w: Param::from_tensor(init.clone().detach().require_grad()),
            };
            let mut optim = ModuleOptimizer::from(Adam::new(1e-8, in_place));
            for k in 0..3 {
                let target = init.clone().detach().mul_scalar(k as f64 * 0.5 - 1.0);
                let loss = (model.w.val() - target).square().sum();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                let kept = keep.then(|| (model.clone(), values(&model.w)));
                model = optim.step(1e-2, model, grads);
                if let Some((kept, before)) = kept {
                    assert_eq!(values(&kept.w), before, "step {k} wrote into a clone");
                }
            }
            values(&model.w)
        };
        let generic = run(false, false);
        let start = init.to_data().try_to_vec::<f32>().unwrap();
        let mut moved = 0.0f32;
        for fast in [run(true, false), run(true, true)] {
            for ((a, b), s) in fast.iter().zip(&generic).zip(&start) {
                assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
                moved = moved.max((a - s).abs());
            }
        }
        // Three steps of lr 0.01 move each weight by about 0.03.
        assert!(moved > 0.02, "the parameters did not move ({moved})");
    }
}
