//! The article's autoencoders: a plain AE, a VAE and a conditional VAE (Sohn et al. 2015: the
//! one-hot label is a second input to the encoder and to the decoder) sharing one MLP
//! encoder/decoder design.
//!
//! The layers' activation ([`Activation`]), where the posterior heads sit ([`Layout`]) and the
//! decoder's likelihood ([`likelihood`]) are run parameters, so the literature's setups
//! (pytorch/examples' VAE, Burda et al.'s tanh nets) are this same design.
//!
//! Loss terms are returned per image and reduced by the caller. Training runs the same design
//! stacked ([`stack`]: M members as one model, one batched matmul per layer); a trained member
//! is saved and used as an ordinary [`Autoencoder`].

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, tanh};
use burn::tensor::Distribution;
use serde::{Deserialize, Serialize};

use crate::data::{CLASSES, PIXELS};

pub mod fused;
pub mod likelihood;
pub mod objective;
pub mod stack;
pub use likelihood::Likelihood;
pub use objective::{KlTerm, Objective};
pub use stack::{StackForward, StackTerms, StackedAutoencoder};

/// The device unit tests use: libtorch when compiled in, else flex.
#[cfg(test)]
#[allow(deprecated)]
pub(crate) fn test_device() -> Device {
    #[cfg(feature = "tch")]
    return Device::libtorch();
    #[cfg(all(not(feature = "tch"), feature = "flex"))]
    return Device::flex();
}

/// Which autoencoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Deterministic autoencoder: no KL term.
    Ae,
    /// Variational autoencoder with a diagonal Gaussian posterior.
    Vae,
    /// Conditional VAE: encoder and decoder also see the image's one-hot label, so a sample
    /// can be asked for a given class.
    Cvae,
}

impl ModelKind {
    /// The name used in configs, ids and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Ae => "ae",
            ModelKind::Vae => "vae",
            ModelKind::Cvae => "cvae",
        }
    }

    /// True for the kinds with a posterior and a KL term (VAE, CVAE).
    pub fn is_variational(self) -> bool {
        self != ModelKind::Ae
    }

    /// One-hot label columns the encoder and decoder take besides their input (10 for the
    /// CVAE, 0 otherwise).
    pub fn classes(self) -> usize {
        match self {
            ModelKind::Cvae => CLASSES,
            _ => 0,
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hidden layers' nonlinearity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(0, x)` (the article's, pytorch/examples'; the default).
    #[default]
    Relu,
    /// `tanh(x)` (Burda et al. 2016).
    Tanh,
}

impl Activation {
    /// The name in matrices, configs and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
        }
    }

    /// `x` through the nonlinearity.
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Relu => relu(x),
            Activation::Tanh => tanh(x),
        }
    }
}

/// Where a VAE's posterior heads (`mu`, `log_var`) sit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// The article's: the encoder ends in a linear code of the latent size, and the heads map
    /// that code to `mu` and `log_var` (latent → latent). The default.
    #[default]
    Article,
    /// The literature's: the heads sit directly on the last (activated) hidden layer
    /// (pytorch/examples: 784-400 then 400→20 heads; Burda et al.: 784-200-200 then 200→50).
    Heads,
}

impl Layout {
    /// The name in matrices, configs and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Article => "article",
            Layout::Heads => "heads",
        }
    }
}

/// Architecture of one autoencoder.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// AE or VAE.
    pub kind: ModelKind,
    /// Hidden layer widths of the encoder; the decoder mirrors them.
    pub hidden: Vec<usize>,
    /// Latent size (the article's `num_hidden`).
    pub latent: usize,
    /// The hidden layers' nonlinearity.
    pub activation: Activation,
    /// Where a VAE's heads sit (an AE's encoder always ends in a linear code).
    pub layout: Layout,
}

/// How an MLP's layers are joined: the nonlinearity, and whether the last layer has it too
/// (an encoder under [`Layout::Heads`], whose output feeds the heads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Joints {
    /// Between layers.
    pub activation: Activation,
    /// After the last layer too.
    pub activate_last: bool,
}

/// An MLP whose hidden layers use [`Joints::activation`] and whose last layer is left linear
/// unless [`Joints::activate_last`].
#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    #[module(skip)]
    joints: Joints,
}

impl Mlp {
    /// Linear layers between consecutive `widths`, freshly initialised.
    pub fn new(widths: &[usize], joints: Joints, device: &Device) -> Self {
        let layers = widths
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        Self { layers, joints }
    }

    /// `x` through every layer, the activation between them (and after the last one when the
    /// joints say so).
    pub fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last || self.joints.activate_last {
                x = self.joints.activation.apply(x);
            }
        }
        x
    }
}

/// The VAE's posterior heads on top of the encoder output (the article's `mu` and `log_var`).
#[derive(Module, Debug)]
pub struct GaussianHeads {
    mu: Linear,
    log_var: Linear,
}

/// AE, VAE or CVAE: encoder MLP → code (AE) or Gaussian heads + reparameterisation (VAE) →
/// decoder MLP with a sigmoid output; the CVAE's encoder and decoder inputs end with the label.
#[derive(Module, Debug)]
pub struct Autoencoder {
    encoder: Mlp,
    heads: Option<GaussianHeads>,
    decoder: Mlp,
    latent: usize,
    /// Label columns appended to both inputs (0: unconditional).
    classes: usize,
}

/// `x` with the one-hot `labels` appended along the last axis when the model is conditional
/// (`classes > 0`); a conditional model without labels is a caller's bug.
fn condition<const D: usize>(x: Tensor<D>, labels: Option<Tensor<D>>, classes: usize) -> Tensor<D> {
    match (classes, labels) {
        (0, _) => x,
        (_, Some(y)) => Tensor::cat(vec![x, y], D - 1),
        (_, None) => panic!("a conditional model needs the labels"),
    }
}

impl ModelConfig {
    /// Whether the VAE's heads sit on the last hidden layer ([`Layout::Heads`]); an AE's
    /// encoder always ends in its code.
    fn heads_on_hidden(&self) -> bool {
        self.layout == Layout::Heads && self.kind.is_variational()
    }

    /// Layer widths of the encoder, pixels (and label) to code (or, heads on hidden, to the
    /// last hidden layer).
    fn encoder_widths(&self) -> Vec<usize> {
        let mut enc = vec![PIXELS + self.kind.classes()];
        enc.extend(&self.hidden);
        if !self.heads_on_hidden() {
            enc.push(self.latent);
        }
        enc
    }

    /// The width the heads read: the code's, or the last hidden layer's.
    fn heads_input(&self) -> usize {
        *self
            .encoder_widths()
            .last()
            .expect("the encoder has an input")
    }

    /// How the encoder's and the decoder's layers are joined.
    fn joints(&self) -> (Joints, Joints) {
        let decoder = Joints {
            activation: self.activation,
            activate_last: false,
        };
        let encoder = Joints {
            activate_last: self.heads_on_hidden(),
            ..decoder
        };
        (encoder, decoder)
    }

    /// Layer widths of the decoder, code (and label) to pixels: the encoder's backwards.
    fn decoder_widths(&self) -> Vec<usize> {
        let mut dec = vec![self.latent + self.kind.classes()];
        dec.extend(self.hidden.iter().rev());
        dec.push(PIXELS);
        dec
    }

    /// Elements of one member's largest weight matrix (encoder, heads or decoder), which
    /// `--stack auto` keeps within a fixed byte budget (`sweep::stacking`).
    pub fn largest_weight(&self) -> usize {
        let (enc, dec) = (self.encoder_widths(), self.decoder_widths());
        enc.windows(2)
            .chain(dec.windows(2))
            .map(|w| w[0] * w[1])
            .chain(std::iter::once(self.heads_input() * self.latent))
            .max()
            .unwrap_or(0)
    }

    /// Trainable parameters of [`ModelConfig::init`]'s model, counted without building it, in
    /// f64 so that absurd sizes compare instead of overflowing (validation asks it).
    pub fn parameter_count(&self) -> f64 {
        let linear = |w: &[usize]| (w[0] as f64 + 1.0) * w[1] as f64;
        let (enc, dec) = (self.encoder_widths(), self.decoder_widths());
        let heads = if self.kind.is_variational() {
            2.0 * linear(&[self.heads_input(), self.latent])
        } else {
            0.0
        };
        enc.windows(2).map(linear).sum::<f64>() + heads + dec.windows(2).map(linear).sum::<f64>()
    }

    /// Builds the model with freshly initialised weights on `device` (seed the device first).
    pub fn init(&self, device: &Device) -> Autoencoder {
        let (enc, dec) = (self.encoder_widths(), self.decoder_widths());
        let (enc_joints, dec_joints) = self.joints();
        let input = self.heads_input();
        let heads = self.kind.is_variational().then(|| GaussianHeads {
            mu: LinearConfig::new(input, self.latent).init(device),
            log_var: LinearConfig::new(input, self.latent).init(device),
        });
        let net = Autoencoder {
            encoder: Mlp::new(&enc, enc_joints, device),
            heads,
            decoder: Mlp::new(&dec, dec_joints, device),
            latent: self.latent,
            classes: self.kind.classes(),
        };
        // Burn draws a parameter's initial values when it is first read; draw them all now,
        // so that they depend only on the seed set before this call (a stack seeds each member
        // in turn, then stacks them).
        net.visit(&mut Draw);
        net
    }
}

/// Reads every parameter once (see [`ModelConfig::init`]).
struct Draw;

impl burn::module::ModuleVisitor for Draw {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let _ = param.val();
    }
}

impl Autoencoder {
    /// Latent size.
    pub fn latent(&self) -> usize {
        self.latent
    }

    /// True for the VAE and the CVAE.
    pub fn is_variational(&self) -> bool {
        self.heads.is_some()
    }

    /// True for the CVAE: [`Self::encode`] and [`Self::decode`] need the one-hot labels.
    pub fn is_conditional(&self) -> bool {
        self.classes > 0
    }

    /// Encodes `x` (with its one-hot `labels`, CVAE) to the code (AE) or posterior (mean,
    /// log-variance) (VAE, CVAE).
    pub fn encode(
        &self,
        x: Tensor<2>,
        labels: Option<Tensor<2>>,
    ) -> (Tensor<2>, Option<Tensor<2>>) {
        let h = self.encoder.forward(condition(x, labels, self.classes));
        match &self.heads {
            None => (h, None),
            Some(heads) => (heads.mu.forward(h.clone()), Some(heads.log_var.forward(h))),
        }
    }

    /// Decodes latent vectors (with the one-hot labels to draw, CVAE) to pixels in (0, 1): the
    /// sigmoid of [`Self::decode_logits`].
    pub fn decode(&self, z: Tensor<2>, labels: Option<Tensor<2>>) -> Tensor<2> {
        sigmoid(self.decode_logits(z, labels))
    }

    /// The decoder's logits for latent vectors: what the likelihood ([`Likelihood`]) scores.
    pub fn decode_logits(&self, z: Tensor<2>, labels: Option<Tensor<2>>) -> Tensor<2> {
        self.decoder.forward(condition(z, labels, self.classes))
    }

    /// Decodes `n` draws of `z ~ N(0, I)` (the article's `sample`); a CVAE draws the classes
    /// `labels` (one per draw).
    pub fn sample(&self, n: usize, labels: Option<&[u8]>, device: &Device) -> Tensor<2> {
        let z = Tensor::random([n, self.latent], Distribution::Normal(0.0, 1.0), device);
        let labels = labels.filter(|_| self.is_conditional()).map(|l| {
            assert_eq!(l.len(), n, "one label per draw");
            crate::data::one_hot(l, device)
        });
        self.decode(z, labels)
    }
}

/// `z = mu + eps * exp(0.5 * log_var)` for standard-normal draws `eps` of the same shape (the
/// caller's, so that each stacked member's noise is its own stream): differentiable in `mu` and
/// `log_var`.
pub fn reparameterize<const D: usize>(
    mu: Tensor<D>,
    log_var: Tensor<D>,
    eps: Tensor<D>,
) -> Tensor<D> {
    mu + eps * log_var.mul_scalar(0.5).exp()
}

/// Per-image closed-form KL(N(mu, exp(log_var)) ‖ N(0, I)) summed over latent dims, in nats:
/// `-0.5 * Σ (1 + log_var - mu² - exp(log_var))`. `[batch, latent]` × 2 → `[batch]`.
pub fn kl_divergence(mu: Tensor<2>, log_var: Tensor<2>) -> Tensor<1> {
    kl_divergence_keepdim(mu, log_var).squeeze_dim(1)
}

/// [`kl_divergence`] over the last axis of any rank, keeping it (size 1).
pub fn kl_divergence_keepdim<const D: usize>(mu: Tensor<D>, log_var: Tensor<D>) -> Tensor<D> {
    let inner = log_var.clone().add_scalar(1.0) - mu.square() - log_var.exp();
    inner.sum_dim(D - 1).mul_scalar(-0.5)
}

/// The KL of each latent dimension, `-0.5 · (1 + log_var - mu² - exp(log_var))`, same shape
/// as `mu`: [`kl_divergence_keepdim`] before its sum (its sum equals it exactly: halving is
/// exact in floating point).
pub fn kl_divergence_dims<const D: usize>(mu: Tensor<D>, log_var: Tensor<D>) -> Tensor<D> {
    (log_var.clone().add_scalar(1.0) - mu.square() - log_var.exp()).mul_scalar(-0.5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn device() -> Device {
        super::test_device()
    }

    /// The count validation uses equals what Burn builds, for both kinds and deeper MLPs.
    #[test]
    fn parameter_count_matches_the_built_model() {
        for (kind, hidden, latent, layout) in [
            (ModelKind::Vae, vec![256], 4, Layout::Article),
            (ModelKind::Ae, vec![256], 4, Layout::Article),
            (ModelKind::Vae, vec![64, 32], 7, Layout::Article),
            (ModelKind::Cvae, vec![64, 32], 7, Layout::Article),
            (ModelKind::Vae, vec![40], 20, Layout::Heads),
            (ModelKind::Cvae, vec![20, 20], 5, Layout::Heads),
            (ModelKind::Ae, vec![20, 20], 5, Layout::Heads),
        ] {
            let config = ModelConfig {
                kind,
                hidden,
                latent,
                activation: Activation::Tanh,
                layout,
            };
            let built = config.init(&device()).num_params();
            assert_eq!(config.parameter_count(), built as f64, "{config:?}");
        }
        // pytorch/examples' VAE: 784-400, heads 400→20 (twice), 20-400-784.
        let examples = ModelConfig {
            kind: ModelKind::Vae,
            hidden: vec![400],
            latent: 20,
            activation: Activation::Relu,
            layout: Layout::Heads,
        };
        assert_eq!(
            examples.parameter_count(),
            (785.0 * 400.0) + 2.0 * (401.0 * 20.0) + (21.0 * 400.0) + (401.0 * 784.0)
        );
    }

    /// Under the heads layout the encoder's last hidden layer is activated and feeds the
    /// heads: `mu` is the heads' linear map of `act(W x + b)`, by hand.
    #[test]
    fn heads_sit_on_the_activated_last_hidden_layer() {
        let d = device();
        let config = ModelConfig {
            kind: ModelKind::Vae,
            hidden: vec![6],
            latent: 2,
            activation: Activation::Tanh,
            layout: Layout::Heads,
        };
        let net = config.init(&d);
        let x = Tensor::<2>::random([3, PIXELS], Distribution::Uniform(0.0, 1.0), &d);
        let (mu, _) = net.encode(x.clone(), None);
        let hidden = net.encoder.layers[0].forward(x).tanh();
        let heads = net.heads.as_ref().unwrap();
        let by_hand = heads.mu.forward(hidden);
        let (a, b) = (values(mu), values(by_hand));
        assert_eq!(a, b);
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec().unwrap()
    }

    /// `[1, rows, cols]` from row-major values.
    fn member(v: Vec<f32>, rows: usize, cols: usize, d: &Device) -> Tensor<3> {
        Tensor::from_data(TensorData::new(v, [1, rows, cols]), d)
    }

    #[test]
    fn loss_terms_match_a_hand_computed_example() {
        let d = device();
        // Two images of 784 pixels: logits 0 (decoded σ(0) = 0.5) everywhere, targets 0 and 1
        // → each error is 784 × 0.25 = 196.
        let logits = Tensor::<3>::zeros([1, 2, PIXELS], &d);
        let mut target = vec![0.0f32; PIXELS];
        target.extend(vec![1.0f32; PIXELS]);
        let target = member(target, 2, PIXELS, &d);
        // mu = [1, 0], log_var = [0, ln 2]: KL = -0.5 (1 + 0 - 1 - 1 + 1 + ln2 - 0 - 2) = 0.5 (1 + 1 - ln 2)
        let mu = member(vec![1.0f32, 0.0, 1.0, 0.0], 2, 2, &d);
        let ln2 = std::f32::consts::LN_2;
        let lv = member(vec![0.0f32, ln2, 0.0, ln2], 2, 2, &d);
        let fwd = StackForward {
            logits,
            z: mu.clone(),
            noise: Some(mu.zeros_like()),
            mu,
            log_var: Some(lv),
            samples: 1,
        };
        let betas = KlTerm::Weighted {
            beta: Tensor::<3>::ones([1, 1, 1], &d).mul_scalar(3.0),
        };
        let terms = StackTerms::new(&fwd, target, &betas, Likelihood::Gaussian, Objective::Elbo);
        let kl = 0.5 * (2.0 - ln2);
        for (got, want) in values(terms.recon).iter().zip([196.0, 196.0]) {
            assert!((got - want).abs() < 1e-3, "recon {got} vs {want}");
        }
        for got in values(terms.kl.unwrap()) {
            assert!((got - kl).abs() < 1e-5, "kl {got} vs {kl}");
        }
        for got in values(terms.loss) {
            assert!((got - (196.0 + 3.0 * kl)).abs() < 1e-3);
        }
    }

    #[test]
    fn kl_closed_form_agrees_with_monte_carlo() {
        let d = device();
        d.seed(7);
        let mu_v = [0.8f32, -1.2, 0.3];
        let lv_v = [-0.5f32, 0.7, 0.0];
        let mu = Tensor::<2>::from_data(TensorData::new(mu_v.to_vec(), [1, 3]), &d);
        let lv = Tensor::<2>::from_data(TensorData::new(lv_v.to_vec(), [1, 3]), &d);
        let closed = values(kl_divergence(mu.clone(), lv.clone()))[0];
        // E_q[log q(z) - log p(z)] with z ~ q, per dimension, summed.
        let n = 200_000;
        let eps = Tensor::random([n, 3], Distribution::Normal(0.0, 1.0), &d);
        let z = reparameterize(
            mu.clone().repeat_dim(0, n),
            lv.clone().repeat_dim(0, n),
            eps,
        );
        let var = lv.clone().exp();
        let log_q = (z.clone() - mu).square().div(var).mul_scalar(-0.5) - lv.mul_scalar(0.5);
        let log_p = z.square().mul_scalar(-0.5);
        let mc: f32 = (log_q - log_p).sum_dim(1).mean().into_scalar();
        assert!(
            (mc - closed).abs() < 0.02 * closed.max(1.0),
            "Monte Carlo {mc} vs closed form {closed}"
        );
    }

    #[test]
    fn reparameterization_has_the_right_shape_and_passes_gradients() {
        let d = device().autodiff();
        let cfg = ModelConfig {
            kind: ModelKind::Vae,
            hidden: vec![16],
            latent: 3,
            activation: Activation::Relu,
            layout: Layout::Article,
        };
        let model = cfg.init(&d);
        let stack = StackedAutoencoder::from_members(std::slice::from_ref(&model));
        let x = Tensor::<3>::random([1, 5, PIXELS], Distribution::Uniform(0.0, 1.0), &d);
        let noise = Tensor::<3>::random([1, 5, 3], Distribution::Normal(0.0, 1.0), &d);
        let fwd = stack.forward(x, Some(noise), None);
        assert_eq!(fwd.decoded().dims(), [1, 5, PIXELS]);
        assert_eq!(fwd.mu.dims(), [1, 5, 3]);
        assert_eq!(fwd.log_var.as_ref().unwrap().dims(), [1, 5, 3]);
        let lv = Tensor::<2>::zeros([5, 3], &d).require_grad();
        let mu = Tensor::<2>::zeros([5, 3], &d).require_grad();
        let eps = Tensor::random([5, 3], Distribution::Normal(0.0, 1.0), &d);
        let z = reparameterize(mu.clone(), lv.clone(), eps);
        let grads = z.square().sum().backward();
        let g_mu = mu.grad(&grads).expect("gradient reaches mu");
        let g_lv = lv.grad(&grads).expect("gradient reaches log_var");
        assert!(g_mu.abs().sum().into_scalar::<f32>() > 0.0);
        assert!(g_lv.abs().sum().into_scalar::<f32>() > 0.0);
        assert_eq!(model.sample(4, None, &d).dims(), [4, PIXELS]);
    }

    #[test]
    fn the_autoencoder_has_no_kl_term() {
        let d = device();
        let cfg = ModelConfig {
            kind: ModelKind::Ae,
            hidden: vec![8],
            latent: 2,
            activation: Activation::Relu,
            layout: Layout::Article,
        };
        let stack = StackedAutoencoder::from_members(&[cfg.init(&d)]);
        let x = Tensor::<3>::random([1, 3, PIXELS], Distribution::Uniform(0.0, 1.0), &d);
        let fwd = stack.forward(x.clone(), None, None);
        assert!(fwd.log_var.is_none());
        let betas = KlTerm::Weighted {
            beta: Tensor::<3>::ones([1, 1, 1], &d).mul_scalar(3.0),
        };
        let terms = StackTerms::new(&fwd, x, &betas, Likelihood::Gaussian, Objective::Elbo);
        assert!(terms.kl.is_none());
        assert_eq!(values(terms.loss), values(terms.recon));
    }
}
