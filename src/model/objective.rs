//! The bound a VAE maximises per image, from `K` posterior draws `z_k = μ + σ·ε_k` (the run's
//! `samples`), shared by training ([`super::StackTerms`]) and evaluation (`eval::likelihood`):
//!
//! - `elbo` (Kingma & Welling 2014, arXiv:1312.6114, eq. 10):
//!   `L = (1/K) Σ_k log p(x|z_k) − β·KL(q(z|x) ‖ p(z))`, the KL in closed form; with K = 1 the
//!   article's one-draw loss.
//! - `iwae` (Burda, Grosse & Salakhutdinov 2016, arXiv:1509.00519, eq. 8):
//!   `L_K = log (1/K) Σ_k w_k`, `log w_k = log p(x|z_k) + log p(z_k) − log q(z_k|x)`. Its
//!   gradient is `Σ_k w̃_k ∇ log w_k` with the normalised weights `w̃_k = w_k / Σ_j w_j` as
//!   constants (eq. 14), which is what automatic differentiation of [`log_mean_exp`] gives.
//!   With K = 1 it is the ELBO with a sampled instead of a closed-form KL (equal in
//!   expectation).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// What a VAE's training loss is (`loss = −bound` per image).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// The evidence lower bound, its reconstruction term averaged over the draws (the default).
    #[default]
    Elbo,
    /// The importance-weighted bound of the draws.
    Iwae,
}

impl Objective {
    /// The name in matrices, configs and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Objective::Elbo => "elbo",
            Objective::Iwae => "iwae",
        }
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `log w = log p(x|z) + log p(z) − log q(z|x)` per draw: `log_px` `[…, K, 1]`, the draws `z`
/// and their standard-normal noise `eps` `[…, K, L]`, the posterior log-variances `log_var`
/// `[…, 1, L]`; `[…, K, 1]`. With `z = μ + σ·ε`, `log q(z|x) = −½ Σ ε² − Σ log σ`; the
/// `½ ln 2π` terms of `p` and `q` cancel.
pub fn log_weights<const D: usize>(
    log_px: Tensor<D>,
    z: Tensor<D>,
    eps: Tensor<D>,
    log_var: Tensor<D>,
) -> Tensor<D> {
    let log_pz = z.square().sum_dim(D - 1).mul_scalar(-0.5);
    let log_qz =
        eps.square().sum_dim(D - 1).mul_scalar(-0.5) - log_var.sum_dim(D - 1).mul_scalar(0.5);
    log_px + log_pz - log_qz
}

/// `log (1/K) Σ_k exp(w_k)` over axis `dim` (of size K), kept, stable for any `w`: the maximum
/// is taken out first (detached: it cancels, in the value and in the gradient).
pub fn log_mean_exp<const D: usize>(w: Tensor<D>, dim: usize) -> Tensor<D> {
    let k = w.dims()[dim] as f64;
    let max = w.clone().max_dim(dim).detach();
    (w - max.clone())
        .exp()
        .sum_dim(dim)
        .log()
        .add(max)
        .sub_scalar(k.ln())
}

/// How the KL part of a member's ELBO loss is formed, `loss = recon + term` per image, each
/// member with its own numbers (`[M, 1, 1]` tensors, set per optimiser step by the run's KL
/// schedule: `RunSpec::kl_weight_at`, `RunSpec::capacity_at`). The batch-level forms
/// (free bits, capacity) give every image of a batch the same term, so that the batch *sum*
/// the step back-propagates is `B ×` the paper's batch-mean penalty.
#[derive(Clone, Debug)]
pub enum KlTerm {
    /// `β·KL(q(z|x) ‖ p(z))` per image (Higgins et al. 2017's β-VAE; β = 1 is the ELBO).
    /// A warm-up or cyclical schedule is a β that changes with the step.
    Weighted {
        /// β per member.
        beta: Tensor<3>,
    },
    /// Free bits (Kingma et al. 2016, arXiv:1606.04934, appendix "free bits", one group per
    /// dimension): `β·Σ_j max(λ, E_batch[KL_j])`, `KL_j` the KL of latent dimension j. A
    /// dimension whose batch-mean KL is below λ gets no KL gradient: it is not pushed below λ.
    FreeBits {
        /// β per member.
        beta: Tensor<3>,
        /// λ, nats per dimension, per member.
        lambda: Tensor<3>,
    },
    /// Capacity control (Burgess et al. 2018, arXiv:1804.03599): `γ·|E_batch[KL] − C|`, the
    /// KL pulled towards the capacity C (raised over training) rather than towards 0.
    Capacity {
        /// γ per member (the run's β).
        gamma: Tensor<3>,
        /// C, nats, per member.
        capacity: Tensor<3>,
    },
}

impl KlTerm {
    /// The term per image, `[M, B, 1]`, from the per-dimension KL `kl_dims` `[M, B, L]` and its
    /// sum over dimensions `kl` `[M, B, 1]`.
    pub fn per_image(&self, kl_dims: &Tensor<3>, kl: &Tensor<3>) -> Tensor<3> {
        let [m, b, l] = kl_dims.dims();
        match self {
            KlTerm::Weighted { beta } => kl.clone() * beta.clone(),
            KlTerm::FreeBits { beta, lambda } => {
                let floor = lambda.clone().expand([m, 1, l]);
                let per_dim = kl_dims.clone().mean_dim(1).max_pair(floor);
                (per_dim.sum_dim(2) * beta.clone()).expand([m, b, 1])
            }
            KlTerm::Capacity { gamma, capacity } => {
                let gap = (kl.clone().mean_dim(1) - capacity.clone()).abs();
                (gap * gamma.clone()).expand([m, b, 1])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn log_mean_exp_is_stable_and_exact() {
        let d = crate::model::test_device();
        let t = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v.clone(), [1, v.len()]), &d);
        let far = log_mean_exp(t(vec![-1000.0, -1000.0]), 1).into_scalar::<f32>();
        assert!((far + 1000.0).abs() < 1e-3, "{far}");
        let direct = (((-1.0f64).exp() + (-2.0f64).exp() + (-3.0f64).exp()) / 3.0).ln();
        let got = log_mean_exp(t(vec![-1.0, -2.0, -3.0]), 1).into_scalar::<f32>();
        assert!((f64::from(got) - direct).abs() < 1e-6, "{got} vs {direct}");
    }

    fn floats(t: Tensor<3>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec().unwrap()
    }

    /// A hand-made batch of 2 images × 2 dimensions (one member), KL per dimension
    /// [[0.1, 2.0], [0.3, 1.0]]: batch means 0.2 and 1.5, KL per image 2.1 and 1.3, mean 1.7.
    fn batch(d: &Device) -> (Tensor<3>, Tensor<3>) {
        let dims = Tensor::<3>::from_floats([[[0.1f32, 2.0], [0.3, 1.0]]], d).require_grad();
        let kl = dims.clone().sum_dim(2);
        (dims, kl)
    }

    /// Free bits clamp each dimension's batch mean below at λ = 0.5: β·(max(0.5, 0.2) +
    /// max(0.5, 1.5)) = 2·2.0 = 4 per image; the clamped dimension gets no gradient, the other
    /// β/B = 1 per image's entry (the batch sum's gradient, B·β·(1/B)).
    #[test]
    fn free_bits_clamp_each_dimension_and_stop_its_gradient() {
        let d = crate::model::test_device().autodiff();
        let (dims, kl) = batch(&d);
        let term = KlTerm::FreeBits {
            beta: Tensor::from_floats([[[2.0f32]]], &d),
            lambda: Tensor::from_floats([[[0.5f32]]], &d),
        }
        .per_image(&dims, &kl);
        assert_eq!(floats(term.clone()), [4.0, 4.0]);
        let grads = term.sum().backward();
        let g = floats(dims.grad(&grads).unwrap().reshape([1, 2, 2]));
        assert_eq!(g, [0.0, 2.0, 0.0, 2.0]);
    }

    /// Capacity: γ·|KL̄ − C| = 10·|1.7 − 1| = 7 per image; above C the gradient pushes the KL
    /// down (+γ per image's entry of the batch sum), below C up (−γ).
    #[test]
    fn capacity_is_gamma_times_the_gap_to_c() {
        let d = crate::model::test_device().autodiff();
        let term = |c: f32| KlTerm::Capacity {
            gamma: Tensor::from_floats([[[10.0f32]]], &d),
            capacity: Tensor::from_floats([[[c]]], &d),
        };
        let (dims, kl) = batch(&d);
        let above = term(1.0).per_image(&dims, &kl);
        for v in floats(above.clone()) {
            assert!((v - 7.0).abs() < 1e-5, "{v}");
        }
        let g = floats(dims.grad(&above.sum().backward()).unwrap());
        assert!(g.iter().all(|&v| (v - 10.0).abs() < 1e-5), "{g:?}");
        let (dims, kl) = batch(&d);
        let below = term(3.0).per_image(&dims, &kl);
        let g = floats(dims.grad(&below.sum().backward()).unwrap());
        assert!(g.iter().all(|&v| (v + 10.0).abs() < 1e-5), "{g:?}");
        // β·KL per image, for contrast: 2.1·2 and 1.3·2.
        let (dims, kl) = batch(&d);
        let plain = KlTerm::Weighted {
            beta: Tensor::from_floats([[[2.0f32]]], &d),
        }
        .per_image(&dims, &kl);
        let p = floats(plain);
        assert!(
            (p[0] - 4.2).abs() < 1e-5 && (p[1] - 2.6).abs() < 1e-5,
            "{p:?}"
        );
    }
}
