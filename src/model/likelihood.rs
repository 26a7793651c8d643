//! The decoder's likelihood `p(x|z)`: what `recon` means, for training (the stacked model's loss
//! term) and for evaluation (the bounds), from one definition. The decoder outputs logits `l`
//! per pixel; every likelihood here is a product over the 784 pixels.
//!
//! - `gaussian`: `N(x; σ(l), 1/2)`, the article's summed squared error `Σ (x − σ(l))²`, which is
//!   `−log p(x|z)` up to the constant `(784/2) ln π` ([`Likelihood::constant`]).
//! - `bernoulli`: `−log p(x|z) = Σ softplus(l) − x·l`, binary cross-entropy from the logits
//!   (stable for any `l`); on grey levels it is the cross-entropy pytorch/examples' VAE
//!   trains with, not a normalised density.
//! - `continuous-bernoulli` (Loaiza-Ganem & Cunningham 2019, arXiv:1907.06845): the Bernoulli
//!   term normalised on `[0, 1]`: `p(x|λ) = C(λ) λ^x (1 − λ)^(1−x)`,
//!   `C(λ) = 2 atanh(1 − 2λ) / (1 − 2λ)`, which for `λ = σ(l)` is `l / tanh(l/2)` (its limit 2
//!   at `l = 0`, taken by a Taylor series near 0 so that neither value nor gradient is 0/0).

use burn::prelude::*;
use burn::tensor::activation::sigmoid;

// The Bernoulli term `Σ softplus(l) − x·l` per image: one op on libtorch.
use super::fused::bce_sum;
use serde::{Deserialize, Serialize};

/// Which decoder likelihood a run trains and is evaluated with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Likelihood {
    /// Gaussian with variance 1/2: summed squared error (the article's; the default).
    #[default]
    Gaussian,
    /// Bernoulli: binary cross-entropy from the logits.
    Bernoulli,
    /// Continuous Bernoulli: the Bernoulli term normalised on `[0, 1]`.
    ContinuousBernoulli,
}

/// Below this |logit| the continuous Bernoulli's log-normaliser is its Taylor series
/// `ln 2 + l²/12 − 7 l⁴/1440` (next term below 1e-8 here, under f32 rounding).
const TAYLOR_BELOW: f64 = 0.05;

impl Likelihood {
    /// The name in matrices, configs and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Likelihood::Gaussian => "gaussian",
            Likelihood::Bernoulli => "bernoulli",
            Likelihood::ContinuousBernoulli => "continuous-bernoulli",
        }
    }

    /// `−log p(x|z)` per image without [`Self::constant`], summed over the last axis of any
    /// rank and kept (size 1), from the decoder's `logits` against `target`. Only the
    /// Gaussian needs the mean image `σ(logits)`; the Bernoulli terms work on the logits
    /// (stable, and no sigmoid of every pixel of every draw on their hot path).
    pub fn recon_keepdim<const D: usize>(self, logits: Tensor<D>, target: Tensor<D>) -> Tensor<D> {
        match self {
            Likelihood::Gaussian => (sigmoid(logits) - target).square().sum_dim(D - 1),
            Likelihood::Bernoulli => bce_sum(logits, target),
            Likelihood::ContinuousBernoulli => {
                let log_c = log_normaliser(logits.clone()).sum_dim(D - 1);
                bce_sum(logits, target) - log_c
            }
        }
    }

    /// Nats per image of `pixels` pixels that [`Self::recon_keepdim`] leaves out of
    /// `−log p(x|z)`: `(D/2) ln π` for the Gaussian (variance 1/2, `D` pixels), 0 for the
    /// others.
    pub fn constant(self, pixels: usize) -> f64 {
        match self {
            Likelihood::Gaussian => pixels as f64 / 2.0 * std::f64::consts::PI.ln(),
            Likelihood::Bernoulli | Likelihood::ContinuousBernoulli => 0.0,
        }
    }
}

impl std::fmt::Display for Likelihood {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-pixel `ln C(σ(l)) = ln(l / tanh(l/2))`, by its Taylor series near `l = 0`.
fn log_normaliser<const D: usize>(logits: Tensor<D>) -> Tensor<D> {
    let small = logits.clone().abs().lower_elem(TAYLOR_BELOW);
    // The exact branch is evaluated at a harmless 1 where the series is used, so that neither
    // its value nor its gradient is 0/0 there.
    let safe = logits.clone().mask_fill(small.clone(), 1.0);
    let exact = safe.clone().abs().log() - safe.mul_scalar(0.5).tanh().abs().log();
    let l2 = logits.square();
    let series = l2
        .clone()
        .mul_scalar(1.0 / 12.0)
        .sub(l2.square().mul_scalar(7.0 / 1440.0))
        .add_scalar(std::f64::consts::LN_2);
    exact.mask_where(small, series)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(values: &[f32]) -> Tensor<2> {
        Tensor::<1>::from_floats(values, &crate::model::test_device()).reshape([1, values.len()])
    }

    fn scalar(x: Tensor<2>) -> f64 {
        f64::from(x.into_scalar::<f32>())
    }

    /// BCE from logits against `−x ln p − (1 − x) ln(1 − p)` computed by hand, including a
    /// logit far out where the naive form overflows.
    #[test]
    fn bernoulli_is_binary_cross_entropy_from_logits() {
        let by_hand = |l: f64, x: f64| {
            let p = 1.0 / (1.0 + (-l).exp());
            -x * p.ln() - (1.0 - x) * (1.0 - p).ln()
        };
        for (l, x) in [(0.0, 1.0), (2.0, 0.0), (-3.0, 1.0), (0.7, 0.25)] {
            let got = scalar(Likelihood::Bernoulli.recon_keepdim(t(&[l as f32]), t(&[x as f32])));
            assert!(
                (got - by_hand(l, x)).abs() < 1e-5,
                "l {l} x {x}: {got} vs {}",
                by_hand(l, x)
            );
        }
        // σ(-120) underflows to 0 in f32; softplus keeps the exact 120 nats.
        let far = scalar(Likelihood::Bernoulli.recon_keepdim(t(&[-120.0]), t(&[1.0])));
        assert!((far - 120.0).abs() < 1e-3, "{far}");
    }

    /// The continuous Bernoulli's density integrates to 1 over [0, 1] at logits on both sides
    /// of the series' threshold, and its log-normaliser meets `ln 2` at `l = 0`.
    #[test]
    fn continuous_bernoulli_is_normalised_on_both_branches() {
        for l in [0.0, 0.01, -0.04, 0.06, 0.5, -2.0, 6.0] {
            let n = 2000;
            let xs: Vec<f32> = (0..n).map(|i| (i as f32 + 0.5) / n as f32).collect();
            let logits = vec![l as f32; n];
            let nll = Likelihood::ContinuousBernoulli.recon_keepdim(
                Tensor::<1>::from_floats(logits.as_slice(), &crate::model::test_device())
                    .reshape([n, 1]),
                Tensor::<1>::from_floats(xs.as_slice(), &crate::model::test_device())
                    .reshape([n, 1]),
            );
            let density: Vec<f32> = nll.neg().exp().into_data().try_to_vec::<f32>().unwrap();
            let integral: f64 = density.iter().map(|&d| f64::from(d)).sum::<f64>() / n as f64;
            assert!((integral - 1.0).abs() < 1e-4, "l {l}: ∫p = {integral}");
        }
        let at_zero = scalar(log_normaliser(t(&[0.0])));
        assert!((at_zero - std::f64::consts::LN_2).abs() < 1e-7, "{at_zero}");
        // Just below and just above the threshold agree with the closed form by hand.
        for l in [0.049f64, 0.051] {
            let by_hand = (l / (l / 2.0).tanh()).ln();
            let got = scalar(log_normaliser(t(&[l as f32])));
            assert!((got - by_hand).abs() < 1e-6, "l {l}: {got} vs {by_hand}");
        }
    }

    /// The Gaussian term is the summed squared error of the mean image `σ(l)`, and its
    /// constant the normaliser of a variance-1/2 Gaussian.
    #[test]
    fn gaussian_is_the_summed_squared_error() {
        // σ(0) = 0.5, σ(ln 3) = 0.75.
        let (logits, x) = (t(&[0.0, 3f32.ln()]), t(&[0.0, 1.0]));
        let got = scalar(Likelihood::Gaussian.recon_keepdim(logits, x));
        assert!((got - (0.25 + 0.0625)).abs() < 1e-7, "{got}");
        let constant = Likelihood::Gaussian.constant(crate::data::PIXELS);
        assert!((constant - 392.0 * std::f64::consts::PI.ln()).abs() < 1e-9);
        assert_eq!(Likelihood::Bernoulli.constant(crate::data::PIXELS), 0.0);
    }
}
