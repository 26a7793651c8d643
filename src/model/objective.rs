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
}
