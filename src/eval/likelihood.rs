//! What a VAE paper reports about a trained model, on the test set: the ELBO and the
//! importance-weighted bound (Burda et al. 2015) as log-likelihoods in nats per image, the
//! active units and the KL of each latent dimension.
//!
//! **The decoder's likelihood** is the run's ([`crate::model::likelihood`], the one definition
//! training uses too), with its normalising constant: the Gaussian's (the article's summed
//! squared error, `σ² = 1/2`) bounds are log-densities of the grey levels in nats, comparable
//! between runs of this tool; the Bernoulli's, on binarised test images (`binarize`), are the
//! log-probabilities the papers report. A CVAE's bounds are on `log p(x | y)`.

use burn::prelude::*;
use burn::tensor::TensorData;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_pcg::Pcg64Mcg;

use crate::data::{epoch_seed, Mnist, PIXELS};
use crate::model::Autoencoder;
use crate::model::Likelihood as Decoder;

/// The active-unit threshold on `Cov_x(E_q[z_d | x])` (Burda et al. 2015).
pub const ACTIVE_THRESHOLD: f64 = 0.01;

/// A mean over test images and its standard error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Mean over images.
    pub mean: f64,
    /// Standard error of the mean (sample standard deviation / √n).
    pub se: f64,
}

impl Estimate {
    /// The mean and standard error of `values`.
    pub fn of(values: &[f64]) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        Self {
            mean,
            se: (var / n).sqrt(),
        }
    }
}

/// The test-set evaluation of one trained model.
#[derive(Clone, Debug, PartialEq)]
pub struct Likelihood {
    /// Images evaluated.
    pub images: usize,
    /// `−log p(x | ẑ)` at the code (AE) or posterior mean (VAE), nats per image.
    pub recon_nll: Estimate,
    /// ELBO `E_q[log p(x|z)] − KL(q ‖ p)`, one draw of z, closed-form KL (variational only).
    pub elbo: Option<Estimate>,
    /// The IWAE bound for each k asked for, on the same nested draws (variational only).
    pub iwae: Vec<(usize, Estimate)>,
    /// `Cov_x(E_q[z_d | x])` per latent dimension (the code's variance for an AE).
    pub activity: Vec<f64>,
    /// Mean KL(q(z_d|x) ‖ N(0,1)) per latent dimension, nats (variational only).
    pub kl_per_dim: Vec<f64>,
}

impl Likelihood {
    /// Dimensions whose activity exceeds [`ACTIVE_THRESHOLD`].
    pub fn active_units(&self) -> usize {
        self.activity
            .iter()
            .filter(|&&a| a > ACTIVE_THRESHOLD)
            .count()
    }
}

/// `log (1/k) Σ exp(w_i)` of the first `k` log-weights, in f64.
fn log_mean_exp(w: &[f32]) -> f64 {
    let max = w.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = w.iter().map(|&v| (v as f64 - max).exp()).sum();
    max + (sum / w.len() as f64).ln()
}

/// Importance log-weights ([`crate::model::objective::log_weights`]) of draws
/// `z = mu + eps · exp(log_var / 2)`: images `x` `[B, 1, D]`, the decoder's logits for the
/// draws `[B, K, D]`, the draws and their noise `[B, K, L]`, the posterior log-variances
/// `[B, L]`; `[B, K, 1]`. `log p(x|z)` is `decoder`'s, its constant included.
pub fn log_weights(
    decoder: Decoder,
    x: Tensor<3>,
    logits: Tensor<3>,
    z: Tensor<3>,
    eps: Tensor<3>,
    log_var: Tensor<2>,
) -> Tensor<3> {
    let pixels = x.dims()[2];
    let log_px = decoder
        .recon_keepdim(logits, x)
        .neg()
        .sub_scalar(decoder.constant(pixels));
    crate::model::objective::log_weights(log_px, z, eps, log_var.unsqueeze_dim::<3>(1))
}

/// The most images per chunk; a chunk decodes about 4,000 draws (`4000 / max k` images, so 4
/// at k = 1000: about 12 MB of f32 pixels). The chunk size shapes the order of the draws.
const CHUNK: usize = 4;

/// Evaluates `net` (trained with the decoder likelihood `decoder`) on `data` (all of it), its
/// IWAE bound at every k of `ks` (ascending) from the first k of the same `max(ks)` draws per
/// image, drawn from a stream seeded by `seed`, so the numbers are reproducible. The ELBO's
/// draws come from the same stream, so a larger `max(ks)` also redraws the ELBO's (same
/// distribution, other draws): compare runs evaluated at the same largest k.
pub fn evaluate(
    net: &Autoencoder,
    decoder: Decoder,
    data: &Mnist,
    seed: u64,
    device: &Device,
    ks: &[usize],
) -> Likelihood {
    let n = data.len();
    let latent = net.latent();
    let constant = decoder.constant(PIXELS);
    let k_max = ks.iter().copied().max().unwrap_or(1);
    // Fewer images per chunk at large k, so a chunk decodes about 4,000 images.
    let chunk = (4000 / k_max).clamp(1, CHUNK);
    let mut rng = Pcg64Mcg::seed_from_u64(epoch_seed(seed ^ 0xE7A1, 0));
    let mut recon_nll = Vec::with_capacity(n);
    let mut elbo = Vec::with_capacity(n);
    let mut iwae: Vec<Vec<f64>> = vec![Vec::with_capacity(n); ks.len()];
    let mut means: Vec<f32> = Vec::with_capacity(n * latent);
    let mut kl_sum = vec![0.0f64; latent];
    let values = |t: Tensor<2>| -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 data")
    };
    for start in (0..n).step_by(chunk) {
        let idx: Vec<usize> = (start..(start + chunk).min(n)).collect();
        let b = idx.len();
        let x = data.batch(&idx, device);
        let labels = net.is_conditional().then(|| data.one_hot(&idx, device));
        let (mu, log_var) = net.encode(x.clone(), labels.clone());
        // −log p(x|z) without the constant, for codes `z`.
        let nll = |z: Tensor<2>, labels: Option<Tensor<2>>| {
            values(decoder.recon_keepdim(net.decode_logits(z, labels), x.clone()))
        };
        recon_nll.extend(
            nll(mu.clone(), labels.clone())
                .iter()
                .map(|&s| f64::from(s) + constant),
        );
        let mu_v = values(mu.clone());
        means.extend(&mu_v);
        let Some(log_var) = log_var else {
            continue; // an AE: no posterior, no bound
        };
        let lv_v = values(log_var.clone());
        let mut kl_img = vec![0.0f64; b];
        for (i, kl) in kl_img.iter_mut().enumerate() {
            for d in 0..latent {
                let (m, lv) = (
                    f64::from(mu_v[i * latent + d]),
                    f64::from(lv_v[i * latent + d]),
                );
                let term = 0.5 * (m * m + lv.exp() - 1.0 - lv);
                kl_sum[d] += term;
                *kl += term;
            }
        }
        // ELBO: one draw per image, closed-form KL.
        let eps: Vec<f32> = (0..b * latent)
            .map(|_| rng.sample(StandardNormal))
            .collect();
        let eps = Tensor::<2>::from_data(TensorData::new(eps, [b, latent]), device);
        let z = crate::model::reparameterize(mu.clone(), log_var.clone(), eps);
        let recon = nll(z, labels.clone());
        elbo.extend(
            recon
                .iter()
                .zip(&kl_img)
                .map(|(&s, kl)| -(f64::from(s) + constant) - kl),
        );
        // IWAE: k_max nested draws per image; log w = log p(x|z) + log p(z) − log q(z|x).
        let eps: Vec<f32> = (0..b * k_max * latent)
            .map(|_| rng.sample(StandardNormal))
            .collect();
        let eps = Tensor::<3>::from_data(TensorData::new(eps, [b, k_max, latent]), device);
        let sigma = log_var.clone().mul_scalar(0.5).exp().unsqueeze_dim::<3>(1);
        let z = mu.unsqueeze_dim::<3>(1) + eps.clone() * sigma;
        let flat_z = z.clone().reshape([b * k_max, latent]);
        let flat_labels = labels.map(|l| {
            l.unsqueeze_dim::<3>(1)
                .repeat_dim(1, k_max)
                .reshape([b * k_max, crate::data::CLASSES])
        });
        let logits = net
            .decode_logits(flat_z, flat_labels)
            .reshape([b, k_max, PIXELS]);
        let log_w = log_weights(decoder, x.unsqueeze_dim::<3>(1), logits, z, eps, log_var);
        let log_w = values(log_w.reshape([b, k_max]));
        for row in log_w.chunks(k_max) {
            for (j, &k) in ks.iter().enumerate() {
                iwae[j].push(log_mean_exp(&row[..k]));
            }
        }
    }
    let variational = !elbo.is_empty();
    let activity = (0..latent)
        .map(|d| {
            let col: Vec<f64> = (0..n).map(|i| f64::from(means[i * latent + d])).collect();
            let mean = col.iter().sum::<f64>() / n as f64;
            col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64
        })
        .collect();
    Likelihood {
        images: n,
        recon_nll: Estimate::of(&recon_nll),
        elbo: variational.then(|| Estimate::of(&elbo)),
        iwae: if variational {
            ks.iter()
                .zip(&iwae)
                .map(|(&k, v)| (k, Estimate::of(v)))
                .collect()
        } else {
            Vec::new()
        },
        activity,
        kl_per_dim: if variational {
            kl_sum.iter().map(|s| s / n as f64).collect()
        } else {
            Vec::new()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Gaussian log-density by hand: D = 784, σ² = 1/2, every pixel off by 0.1:
    /// log p = −784 · 0.01 − 392 ln π.
    #[test]
    fn the_decoder_constant_makes_a_log_density() {
        let by_hand = -784.0 * 0.01 - 392.0 * std::f64::consts::PI.ln();
        // N(x; m, 1/2) per pixel = exp(−(x−m)²) / √π.
        let per_pixel = (-(0.1f64).powi(2)).exp() / std::f64::consts::PI.sqrt();
        assert!((784.0 * per_pixel.ln() - by_hand).abs() < 1e-9);
        assert!((-784.0 * 0.01 - Decoder::Gaussian.constant(PIXELS) - by_hand).abs() < 1e-9);
    }

    /// The log-weight of one image of 2 pixels, one latent dimension, one draw: x = (0, 1),
    /// logits 0 (x̂ = σ(0) = 0.5), μ = 0.5, log σ² = ln 4 (σ = 2), ε = 1 → z = 2.5.
    fn hand_example(decoder: Decoder) -> f64 {
        let d = crate::model::test_device();
        let t3 =
            |v: Vec<f32>, dims: [usize; 3]| Tensor::<3>::from_data(TensorData::new(v, dims), &d);
        let w = log_weights(
            decoder,
            t3(vec![0.0, 1.0], [1, 1, 2]),
            t3(vec![0.0, 0.0], [1, 1, 2]),
            t3(vec![2.5], [1, 1, 1]),
            t3(vec![1.0], [1, 1, 1]),
            Tensor::<2>::from_data(TensorData::new(vec![4.0f32.ln()], [1, 1]), &d),
        );
        f64::from(w.into_scalar::<f32>())
    }

    /// The example by hand: log p(x|z) = −(0.25 + 0.25) − ln π; log p(z) − log q(z|x) =
    /// −z²/2 + ε²/2 + ln σ (the ½ ln 2π terms cancel) = −3.125 + 0.5 + ln 2.
    #[test]
    fn log_weights_match_a_hand_computed_example() {
        let got = hand_example(Decoder::Gaussian);
        let pi = std::f64::consts::PI;
        let want = -0.5 - pi.ln() - 3.125 + 0.5 + 2.0f64.ln();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    /// The same example under a Bernoulli decoder: logits 0 give each pixel probability 1/2,
    /// so log p(x|z) = 2 ln ½, with no constant.
    #[test]
    fn bernoulli_log_weights_are_log_probabilities() {
        let got = hand_example(Decoder::Bernoulli);
        let want = 2.0 * 0.5f64.ln() - 3.125 + 0.5 + 2.0f64.ln();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn log_mean_exp_is_stable_and_exact() {
        assert!((log_mean_exp(&[-1000.0, -1000.0]) + 1000.0).abs() < 1e-9);
        let w = [-1.0f32, -2.0, -3.0];
        let direct = ((-1.0f64).exp() + (-2.0f64).exp() + (-3.0f64).exp()) / 3.0;
        assert!((log_mean_exp(&w) - direct.ln()).abs() < 1e-6);
    }
}
