//! Adam for stacked members, fused: one pass per element over parameter, gradient and both
//! moments, each member with its own learning rate.
//!
//! At the article's batch size (32) a step is memory-bound and Burn's backend-generic Adam
//! makes 13 elementwise passes per parameter, most of them allocating; it was half of a
//! training step (BENCHMARKS.md). Here, on libtorch CPU, the update of `torch.optim.Adam`
//! (`fused=True` computes the same) is a Rust loop over the raw buffers, split over the cores:
//! it reads p, g, m, v once and writes p, m, v once, in place. Other backends and devices run
//! the same arithmetic as Burn tensor operations. Both are checked against Burn's Adam.

use burn::prelude::*;

use crate::config::{defaults, RunSpec};

/// Adam's constants: the moments' decay rates β₁, β₂ and the denominator's ε (a run's
/// `adam_betas` and `adam_eps`; `torch.optim.Adam`'s defaults (0.9, 0.999), 1e-8 when absent).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// β₁.
    pub beta_1: f64,
    /// β₂.
    pub beta_2: f64,
    /// ε.
    pub epsilon: f64,
}

impl Default for Adam {
    /// `torch.optim.Adam`'s (the article's optimiser): [`defaults::ADAM_BETAS`],
    /// [`defaults::ADAM_EPS`].
    fn default() -> Self {
        let [beta_1, beta_2] = defaults::ADAM_BETAS;
        Self {
            beta_1,
            beta_2,
            epsilon: defaults::ADAM_EPS,
        }
    }
}

impl Adam {
    /// The constants `spec` trains with.
    pub fn of(spec: &RunSpec) -> Self {
        let [beta_1, beta_2] = spec.adam_betas;
        Self {
            beta_1,
            beta_2,
            epsilon: spec.adam_eps,
        }
    }
}

/// One Adam step of a stacked parameter `p` (`[M, …]`, member first) with gradient `g` and
/// moments `m`, `v`, at step `time` (1 for the first), member `i` with learning rate `lrs[i]`,
/// under `adam`'s constants.
/// Returns the new (p, m, v): on libtorch CPU the inputs' own buffers, updated in place (see
/// `libtorch::fused` for why that is safe under the Learner); elsewhere new tensors. Tensors
/// are non-autodiff.
pub fn adam_step<const D: usize>(
    p: Tensor<D>,
    g: Tensor<D>,
    m: Tensor<D>,
    v: Tensor<D>,
    lrs: &[f64],
    time: usize,
    adam: Adam,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let coefficients = Coefficients::new(adam, time);
    #[cfg(feature = "tch")]
    if let Some(out) = libtorch::fused(&p, &g, &m, &v, lrs, &coefficients) {
        return out;
    }
    generic(p, g, m, v, lrs, &coefficients)
}

/// The scalars of step `t`.
struct Coefficients {
    /// The constants.
    adam: Adam,
    /// 1 − β₁ᵗ.
    bias_1: f64,
    /// √(1 − β₂ᵗ).
    bias_2_sqrt: f64,
}

impl Coefficients {
    fn new(adam: Adam, time: usize) -> Self {
        let t = time as i32;
        Self {
            adam,
            bias_1: 1.0 - adam.beta_1.powi(t),
            bias_2_sqrt: (1.0 - adam.beta_2.powi(t)).sqrt(),
        }
    }
}

/// `[M, 1, …]` per-member values broadcastable against a `[M, …]` tensor like `like`.
fn per_member<const D: usize>(values: Vec<f32>, like: &Tensor<D>) -> Tensor<D> {
    let mut shape = [1usize; D];
    shape[0] = values.len();
    Tensor::<1>::from_floats(values.as_slice(), &like.device()).reshape(shape)
}

/// The update as Burn tensor operations (any backend and device).
fn generic<const D: usize>(
    p: Tensor<D>,
    g: Tensor<D>,
    m: Tensor<D>,
    v: Tensor<D>,
    lrs: &[f64],
    c: &Coefficients,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let Adam {
        beta_1,
        beta_2,
        epsilon,
    } = c.adam;
    let m = m.mul_scalar(beta_1) + g.clone().mul_scalar(1.0 - beta_1);
    let v = v.mul_scalar(beta_2) + g.square().mul_scalar(1.0 - beta_2);
    let steps = lrs.iter().map(|lr| (lr / c.bias_1) as f32).collect();
    let denom = v
        .clone()
        .sqrt()
        .div_scalar(c.bias_2_sqrt)
        .add_scalar(epsilon);
    let p = p - m.clone().div(denom) * per_member(steps, &m);
    (p, m, v)
}

// Burn marks its libtorch backend deprecated; it is still our main backend (see ../shared/notes).
#[cfg(feature = "tch")]
#[allow(deprecated)]
mod libtorch {
    use burn::backend::libtorch::TchTensor;
    use burn::backend::LibTorch;
    use burn::prelude::*;
    use rayon::prelude::*;

    use super::{Adam, Coefficients};

    /// Elements per task: big enough to amortise scheduling, small enough to split a member.
    const CHUNK: usize = 1 << 15;

    /// A CPU f32 contiguous libtorch tensor of `t` (a view, not a copy), or `None`.
    fn cpu_f32<const D: usize>(t: &Tensor<D>) -> Option<tch::Tensor> {
        let prim: TchTensor = t.clone().try_into_primitive::<LibTorch>().ok()?;
        let tensor = prim.tensor;
        let fits = tensor.device() == tch::Device::Cpu
            && tensor.kind() == tch::Kind::Float
            && tensor.is_contiguous();
        fits.then_some(tensor)
    }

    fn wrap<const D: usize>(t: tch::Tensor) -> Tensor<D> {
        Tensor::from_primitive::<LibTorch>(TchTensor::new(t))
    }

    /// Raw pointers handed to the worker threads; each task touches its own range only.
    #[derive(Clone, Copy)]
    struct Buffers {
        p: *mut f32,
        g: *const f32,
        m: *mut f32,
        v: *mut f32,
    }
    // SAFETY: the tasks write disjoint ranges and nothing else touches the buffers during the
    // step (see `fused`).
    unsafe impl Send for Buffers {}
    unsafe impl Sync for Buffers {}

    /// The fused update on libtorch CPU tensors, in place; `None` when any tensor is elsewhere
    /// (CUDA, another backend, another dtype or layout).
    ///
    /// In place although burn-train's Learner holds a second handle on each buffer during the
    /// step: `Learner::optimizer_step` (burn-train 0.22 `learner/base.rs`) clones its model,
    /// steps the clone and replaces the original with the result, so the only other holder is
    /// a copy that is dropped unread. Checkpoints copy the values out on the training thread
    /// before the next step (the resume tests compare against uninterrupted runs). Writing into
    /// fresh buffers instead costs a third more memory traffic, and the step is memory-bound.
    pub(super) fn fused<const D: usize>(
        p: &Tensor<D>,
        g: &Tensor<D>,
        m: &Tensor<D>,
        v: &Tensor<D>,
        lrs: &[f64],
        c: &Coefficients,
    ) -> Option<(Tensor<D>, Tensor<D>, Tensor<D>)> {
        let (p, g, m, v) = (cpu_f32(p)?, cpu_f32(g)?, cpu_f32(m)?, cpu_f32(v)?);
        let n = p.numel();
        if [g.numel(), m.numel(), v.numel()] != [n, n, n] || n % lrs.len() != 0 {
            return None;
        }
        let buffers = Buffers {
            p: p.data_ptr() as *mut f32,
            g: g.data_ptr() as *const f32,
            m: m.data_ptr() as *mut f32,
            v: v.data_ptr() as *mut f32,
        };
        let per_member = n / lrs.len();
        let tasks: Vec<(usize, usize, f32)> = lrs
            .iter()
            .enumerate()
            .flat_map(|(i, lr)| {
                let step = (lr / c.bias_1) as f32;
                let start = i * per_member;
                (start..start + per_member)
                    .step_by(CHUNK)
                    .map(move |s| (s, (s + CHUNK).min(start + per_member), step))
            })
            .collect();
        let scale = (1.0 / c.bias_2_sqrt) as f32;
        let adam = c.adam;
        let run = |&(start, end, step): &(usize, usize, f32)| {
            // SAFETY: every buffer holds n f32s and [start, end) ⊂ [0, n); ranges are disjoint.
            unsafe { update(buffers, start, end, step, scale, adam) }
        };
        if tasks.len() > 1 {
            tasks.par_iter().for_each(run);
        } else {
            tasks.iter().for_each(run);
        }
        Some((wrap(p), wrap(m), wrap(v)))
    }

    /// Elements `[start, end)`, with AVX2 where the CPU has it (same arithmetic, no FMA
    /// contraction, so the same numbers).
    unsafe fn update(b: Buffers, start: usize, end: usize, step: f32, scale: f32, adam: Adam) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return update_avx2(b, start, end, step, scale, adam);
        }
        update_any(b, start, end, step, scale, adam)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn update_avx2(b: Buffers, start: usize, end: usize, step: f32, scale: f32, adam: Adam) {
        update_any(b, start, end, step, scale, adam)
    }

    /// m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; p ← p − step·m / (√v / √(1−β₂ᵗ) + ε), as
    /// `torch.optim.Adam` computes it.
    #[inline(always)]
    unsafe fn update_any(b: Buffers, start: usize, end: usize, step: f32, scale: f32, adam: Adam) {
        let len = end - start;
        let p = std::slice::from_raw_parts_mut(b.p.add(start), len);
        let g = std::slice::from_raw_parts(b.g.add(start), len);
        let m = std::slice::from_raw_parts_mut(b.m.add(start), len);
        let v = std::slice::from_raw_parts_mut(b.v.add(start), len);
        let (b1, b2) = (adam.beta_1 as f32, adam.beta_2 as f32);
        let (w1, w2) = ((1.0 - adam.beta_1) as f32, (1.0 - adam.beta_2) as f32);
        let eps = adam.epsilon as f32;
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let mk = b1 * *m + w1 * g;
            let vk = b2 * *v + w2 * g * g;
            *m = mk;
            *v = vk;
            *p -= step * mk / (vk.sqrt() * scale + eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Module, Param};
    use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};

    #[derive(Module, Debug)]
    struct Weights {
        w: Param<Tensor<3>>,
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec().unwrap()
    }

    /// The three ways through the update: the public entry, the fused pass itself (libtorch
    /// CPU, called directly, so that a silent fallback to the generic form cannot stand in for
    /// it), and the generic form (the same arithmetic as tensor operations).
    #[derive(Clone, Copy, Debug)]
    enum Way {
        Entry,
        #[cfg(feature = "tch")]
        Fused,
        Generic,
    }

    /// Five steps of every [`Way`] on a stack of `lrs.len()` members of `rows × cols` elements
    /// each (member `i` at learning rate `lrs[i]`) agree with Burn's Adam run on each member
    /// alone to 1e-6.
    fn assert_matches_burns_adam(rows: usize, cols: usize, lrs: &[f64], seed: u64, adam: Adam) {
        let device = crate::model::test_device();
        device.seed(seed);
        let init = Tensor::<3>::random(
            [lrs.len(), rows, cols],
            burn::tensor::Distribution::Default,
            &device,
        );
        let target = |k: usize| init.clone().mul_scalar(k as f64 * 0.5 - 1.0);
        let grad = |w: &Tensor<3>, k: usize| (w.clone() - target(k)).mul_scalar(2.0);

        // Burn's Adam, member by member.
        let mut want = Vec::new();
        for (i, &lr) in lrs.iter().enumerate() {
            let ad = device.clone().autodiff();
            let mut model = Weights {
                w: Param::from_tensor(Tensor::from_data(
                    init.clone().slice(i..i + 1).into_data(),
                    &ad,
                )),
            };
            let mut optim = ModuleOptimizer::from(
                AdamConfig::new()
                    .with_beta_1(adam.beta_1 as f32)
                    .with_beta_2(adam.beta_2 as f32)
                    .with_epsilon(adam.epsilon as f32)
                    .build(),
            );
            for k in 0..5 {
                let t = Tensor::<3>::from_data(target(k).slice(i..i + 1).into_data(), &ad);
                let loss = (model.w.val() - t).square().sum();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(lr, model, grads);
            }
            want.extend(values(model.w.val()));
        }

        let stepped = |way: Way| {
            // A copy: the fused step writes into its inputs.
            let p0 = init.clone().mul_scalar(1.0);
            let (mut p, mut m, mut v) = (p0, init.zeros_like(), init.zeros_like());
            for k in 0..5 {
                let g = grad(&p, k);
                let c = Coefficients::new(adam, k + 1);
                let (np, nm, nv) = match way {
                    Way::Entry => adam_step(p.clone(), g, m.clone(), v.clone(), lrs, k + 1, adam),
                    #[cfg(feature = "tch")]
                    Way::Fused => libtorch::fused(&p, &g, &m, &v, lrs, &c)
                        .expect("the fused pass takes contiguous f32 libtorch CPU tensors"),
                    Way::Generic => generic(p.clone(), g, m.clone(), v.clone(), lrs, &c),
                };
                (p, m, v) = (np, nm, nv);
            }
            values(p)
        };
        #[allow(unused_mut)]
        let mut ways = vec![Way::Entry, Way::Generic];
        #[cfg(feature = "tch")]
        ways.push(Way::Fused);
        let start = values(init.clone());
        let size = rows * cols;
        for way in ways {
            let got = stepped(way);
            assert_eq!(got.len(), want.len(), "{way:?}");
            let mut moved = 0.0f32;
            for (at, ((a, b), s)) in got.iter().zip(&want).zip(&start).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                    "{way:?}: member {} element {}: {a} vs {b}",
                    at / size,
                    at % size
                );
                moved = moved.max((a - s).abs());
            }
            // Five steps of lr ≥ 0.005 move each weight by about 0.025 at least.
            assert!(
                moved > 0.02,
                "{way:?}: the parameters did not move ({moved})"
            );
        }
    }

    /// A stack of 3 members of 40 × 33 = 1,320 elements each: one task per member.
    #[test]
    fn stacked_adam_matches_burns_adam_per_member() {
        assert_matches_burns_adam(40, 33, &[1e-2, 2e-2, 5e-3], 7, Adam::default());
    }

    /// Other constants (Burda et al.'s ε = 1e-4, and unusual β's so that a constant left at its
    /// default anywhere in the three ways shows).
    #[test]
    fn stacked_adam_takes_the_runs_betas_and_epsilon() {
        let adam = Adam {
            beta_1: 0.5,
            beta_2: 0.9,
            epsilon: 1e-4,
        };
        assert_matches_burns_adam(40, 33, &[1e-2, 5e-3], 3, adam);
    }

    /// Members larger than the fused pass's task (`libtorch::CHUNK`, 32,768 elements): 59 × 1111
    /// = 65,549 = 2 × 32,768 + 13 elements each, so each member is split into two whole chunks and
    /// a 13-element tail (not a multiple of AVX2's 8 lanes, so the vector loop's remainder runs),
    /// and the second member's first task starts at 65,549, off any chunk boundary.
    #[test]
    fn stacked_adam_matches_burns_adam_across_chunks_and_an_odd_tail() {
        assert_eq!(59 * 1111, 2 * (1 << 15) + 13);
        assert_matches_burns_adam(59, 1111, &[1e-2, 5e-3], 11, Adam::default());
    }
}
