//! Several autoencoders of one architecture as one model: every parameter carries a leading
//! member dimension `[M, …]` and each layer is one batched matmul, so M small runs cost about
//! one run's per-operation overhead.
//!
//! Members never mix: member `i`'s output depends only on member `i`'s weights, images and
//! noise, so its gradient (the stack's loss is the sum of the members' losses) is exactly its
//! own. A stack is built from ordinary [`Autoencoder`]s and gives them back
//! ([`StackedAutoencoder::from_members`], [`StackedAutoencoder::member`]): a member is
//! initialised and saved exactly as a solo run.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::prelude::*;

use super::fused::stacked_linear;
use super::objective::{log_mean_exp, log_weights};
use super::{
    condition, kl_divergence_dims, reparameterize, Activation, Autoencoder, GaussianHeads, Joints,
    KlTerm, Likelihood, Mlp, Objective,
};

/// `M` linear layers of one shape: weight `[M, in, out]`, bias `[M, 1, out]`.
#[derive(Module, Debug)]
pub struct StackedLinear {
    weight: Param<Tensor<3>>,
    bias: Param<Tensor<3>>,
}

impl StackedLinear {
    fn stack(layers: &[&Linear]) -> Self {
        let weight = Tensor::stack::<3>(layers.iter().map(|l| l.weight.val()).collect(), 0);
        let bias = Tensor::stack::<2>(
            layers
                .iter()
                .map(|l| l.bias.as_ref().expect("vaelab's layers have a bias").val())
                .collect(),
            0,
        )
        .unsqueeze_dim::<3>(1);
        Self {
            weight: Param::from_tensor(weight.detach()),
            bias: Param::from_tensor(bias.detach()),
        }
    }

    fn member(&self, i: usize) -> Linear {
        let [_, d_in, d_out] = self.weight.dims();
        let weight = self.weight.val().slice(i..i + 1).reshape([d_in, d_out]);
        let bias = self.bias.val().slice(i..i + 1).reshape([d_out]);
        Linear {
            weight: Param::from_tensor(weight.detach()),
            bias: Some(Param::from_tensor(bias.detach())),
        }
    }

    /// `[M, B, in]` → `[M, B, out]`, through `activation` if any ([`stacked_linear`]: one
    /// fused op on libtorch).
    fn forward(&self, x: Tensor<3>, activation: Option<Activation>) -> Tensor<3> {
        stacked_linear(x, self.weight.val(), self.bias.val(), activation)
    }
}

/// Stacked [`Mlp`]: the members' layers joined as theirs are.
#[derive(Module, Debug)]
pub struct StackedMlp {
    layers: Vec<StackedLinear>,
    #[module(skip)]
    joints: Joints,
}

impl StackedMlp {
    fn stack(mlps: &[&Mlp]) -> Self {
        let layers = (0..mlps[0].layers.len())
            .map(|k| StackedLinear::stack(&mlps.iter().map(|m| &m.layers[k]).collect::<Vec<_>>()))
            .collect();
        Self {
            layers,
            joints: mlps[0].joints,
        }
    }

    fn member(&self, i: usize) -> Mlp {
        Mlp {
            layers: self.layers.iter().map(|l| l.member(i)).collect(),
            joints: self.joints,
        }
    }

    fn forward(&self, mut x: Tensor<3>) -> Tensor<3> {
        let last = self.layers.len().saturating_sub(1);
        for (k, layer) in self.layers.iter().enumerate() {
            let activated = k < last || self.joints.activate_last;
            x = layer.forward(x, activated.then_some(self.joints.activation));
        }
        x
    }
}

/// Stacked [`GaussianHeads`].
#[derive(Module, Debug)]
pub struct StackedHeads {
    mu: StackedLinear,
    log_var: StackedLinear,
}

/// M autoencoders of one kind and architecture, trained as one model.
#[derive(Module, Debug)]
pub struct StackedAutoencoder {
    encoder: StackedMlp,
    heads: Option<StackedHeads>,
    decoder: StackedMlp,
    latent: usize,
    classes: usize,
    members: usize,
}

/// What one stacked forward pass produces, per member and image (and draw: a VAE decodes K
/// posterior draws per image, image-major, `B·K` rows).
#[derive(Clone, Debug)]
pub struct StackForward {
    /// `[M, B·K, PIXELS]` the decoder's logits, which the likelihood scores.
    pub logits: Tensor<3>,
    /// `[M, B, latent]` code (AE) or posterior mean (VAE).
    pub mu: Tensor<3>,
    /// `[M, B, latent]` posterior log-variance; `None` for AEs.
    pub log_var: Option<Tensor<3>>,
    /// `[M, B·K, latent]` the decoded codes (the draws of a VAE).
    pub z: Tensor<3>,
    /// `[M, B·K, latent]` the draws' standard-normal noise (VAEs only).
    pub noise: Option<Tensor<3>>,
    /// Draws per image, K (1 for AEs).
    pub samples: usize,
}

/// The loss terms of a stacked batch, per member and image (`[M, B, 1]` each).
#[derive(Clone, Debug)]
pub struct StackTerms {
    /// `−log p(x|z)` per image without its constant ([`Likelihood::recon_keepdim`]): the
    /// summed squared error for the Gaussian.
    pub recon: Tensor<3>,
    /// KL per image; `None` for AEs.
    pub kl: Option<Tensor<3>>,
    /// `[M, B, latent]` KL per image and latent dimension (its sum is `kl`); `None` for AEs.
    pub kl_dims: Option<Tensor<3>>,
    /// The KL part of the loss per image ([`KlTerm::per_image`]; the KL itself under the
    /// IWAE bound, whose β is 1); `None` for AEs.
    pub kl_term: Option<Tensor<3>>,
    /// `recon + kl_term` per image (ELBO) or `−L_K` (IWAE).
    pub loss: Tensor<3>,
}

impl StackedAutoencoder {
    /// Stacks `members` (all of one kind and architecture, on one device) in order.
    pub fn from_members(members: &[Autoencoder]) -> Self {
        let first = &members[0];
        let all = |f: fn(&Autoencoder) -> &Mlp| members.iter().map(f).collect::<Vec<_>>();
        let heads = first.heads.as_ref().map(|_| {
            let heads: Vec<&GaussianHeads> =
                members.iter().map(|m| m.heads.as_ref().unwrap()).collect();
            StackedHeads {
                mu: StackedLinear::stack(&heads.iter().map(|h| &h.mu).collect::<Vec<_>>()),
                log_var: StackedLinear::stack(
                    &heads.iter().map(|h| &h.log_var).collect::<Vec<_>>(),
                ),
            }
        });
        Self {
            encoder: StackedMlp::stack(&all(|m| &m.encoder)),
            heads,
            decoder: StackedMlp::stack(&all(|m| &m.decoder)),
            latent: first.latent,
            classes: first.classes,
            members: members.len(),
        }
    }

    /// Member `i` as an ordinary autoencoder (its weights copied out of the stack).
    pub fn member(&self, i: usize) -> Autoencoder {
        Autoencoder {
            encoder: self.encoder.member(i),
            heads: self.heads.as_ref().map(|h| GaussianHeads {
                mu: h.mu.member(i),
                log_var: h.log_var.member(i),
            }),
            decoder: self.decoder.member(i),
            latent: self.latent,
            classes: self.classes,
        }
    }

    /// Every parameter, in a fixed order (encoder, heads, decoder; weight before bias).
    pub fn params(&self) -> Vec<&Param<Tensor<3>>> {
        let mut all: Vec<&StackedLinear> = self.encoder.layers.iter().collect();
        if let Some(h) = &self.heads {
            all.extend([&h.mu, &h.log_var]);
        }
        all.extend(&self.decoder.layers);
        all.iter().flat_map(|l| [&l.weight, &l.bias]).collect()
    }

    /// The same model with new values for its parameters, given in [`Self::params`] order;
    /// each parameter keeps its id.
    pub fn with_values(mut self, values: Vec<Tensor<3>>) -> Self {
        let mut values = values.into_iter();
        let mut replace = |param: Param<Tensor<3>>| {
            let (id, _, mapper) = param.consume();
            let value = values.next().expect("one value per parameter");
            Param::from_mapped_value(id, value, mapper)
        };
        let mut layer = |l: StackedLinear| StackedLinear {
            weight: replace(l.weight),
            bias: replace(l.bias),
        };
        self.encoder.layers = self.encoder.layers.into_iter().map(&mut layer).collect();
        self.heads = self.heads.map(|h| StackedHeads {
            mu: layer(h.mu),
            log_var: layer(h.log_var),
        });
        self.decoder.layers = self.decoder.layers.into_iter().map(&mut layer).collect();
        self
    }

    /// Number of members.
    pub fn members(&self) -> usize {
        self.members
    }

    /// Latent size.
    pub fn latent(&self) -> usize {
        self.latent
    }

    /// True for VAEs and CVAEs.
    pub fn is_variational(&self) -> bool {
        self.heads.is_some()
    }

    /// Full pass over `[M, B, PIXELS]` images; a VAE decodes `z = mu + noise · exp(log_var/2)`
    /// with the caller's standard-normal `noise` (`[M, B, K·latent]`: K draws per image), so
    /// that each member's noise is its own stream whoever else is in the stack. A CVAE's
    /// encoder and decoder also take the images' one-hot `labels` (`[M, B, CLASSES]`).
    pub fn forward(
        &self,
        x: Tensor<3>,
        noise: Option<Tensor<3>>,
        labels: Option<Tensor<3>>,
    ) -> StackForward {
        let h = self
            .encoder
            .forward(condition(x, labels.clone(), self.classes));
        let (mu, log_var) = match &self.heads {
            None => (h, None),
            Some(heads) => (
                heads.mu.forward(h.clone(), None),
                Some(heads.log_var.forward(h, None)),
            ),
        };
        let [m, b, l] = mu.dims();
        let (z, noise, samples, labels) = match (&log_var, noise) {
            (Some(lv), Some(eps)) => {
                let k = eps.dims()[2] / l;
                if k == 1 {
                    let z = reparameterize(mu.clone(), lv.clone(), eps.clone());
                    (z, Some(eps), 1, labels)
                } else {
                    // K draws of each image's posterior, image-major.
                    let eps = eps.reshape([m, b, k, l]);
                    let sigma = lv.clone().mul_scalar(0.5).exp().unsqueeze_dim::<4>(2);
                    let z = mu.clone().unsqueeze_dim::<4>(2) + eps.clone() * sigma;
                    let labels = labels.map(|y| {
                        let c = y.dims()[2];
                        y.unsqueeze_dim::<4>(2)
                            .repeat_dim(2, k)
                            .reshape([m, b * k, c])
                    });
                    let flat = [m, b * k, l];
                    (z.reshape(flat), Some(eps.reshape(flat)), k, labels)
                }
            }
            (Some(_), None) => panic!("a stacked VAE needs its noise"),
            (None, _) => (mu.clone(), None, 1, labels),
        };
        let logits = self
            .decoder
            .forward(condition(z.clone(), labels, self.classes));
        StackForward {
            logits,
            mu,
            log_var,
            z,
            noise,
            samples,
        }
    }
}

impl StackForward {
    /// `[M, B·K, PIXELS]` reconstructions in (0, 1): the sigmoid of `logits` (computed on
    /// demand: training's losses read the logits).
    pub fn decoded(&self) -> Tensor<3> {
        burn::tensor::activation::sigmoid(self.logits.clone())
    }
}

impl StackTerms {
    /// The terms of `forward` against `target` under `likelihood` and `objective`
    /// ([`super::objective`]); `kl_term` is each member's KL weighting (ignored by AEs and by
    /// the IWAE bound, whose β is 1). `recon` is the mean over the draws, `kl` the closed form;
    /// `loss` is `recon + kl_term` (ELBO) or `−L_K` (IWAE), both without the likelihood's
    /// constant, as `recon` ([`Likelihood::constant`]: the Gaussian's; it moves no gradient).
    pub fn new(
        forward: &StackForward,
        target: Tensor<3>,
        kl_term: &KlTerm,
        likelihood: Likelihood,
        objective: Objective,
    ) -> Self {
        let kl_dims = forward
            .log_var
            .as_ref()
            .map(|lv| kl_divergence_dims(forward.mu.clone(), lv.clone()));
        let kl = kl_dims.as_ref().map(|d| d.clone().sum_dim(2));
        let term = match (&kl_dims, &kl) {
            (Some(d), Some(kl)) if objective == Objective::Elbo => Some(kl_term.per_image(d, kl)),
            _ => kl.clone(),
        };
        let k = forward.samples;
        if k == 1 && objective == Objective::Elbo {
            let recon = likelihood.recon_keepdim(forward.logits.clone(), target);
            let loss = match &term {
                Some(term) => recon.clone() + term.clone(),
                None => recon.clone(),
            };
            return Self {
                recon,
                kl,
                kl_dims,
                kl_term: term,
                loss,
            };
        }
        // `[M, B, K, ·]`: the draws of each image on their own axis.
        let [m, bk, p] = forward.logits.dims();
        let b = bk / k;
        let per_draw = |t: &Tensor<3>| {
            let last = t.dims()[2];
            t.clone().reshape([m, b, k, last])
        };
        let recon_k = likelihood.recon_keepdim(
            per_draw(&forward.logits),
            target.unsqueeze_dim::<4>(2).expand([m, b, k, p]),
        );
        let recon = recon_k.clone().mean_dim(2).reshape([m, b, 1]);
        let kl = kl.expect("K draws are a VAE's");
        let term = term.expect("K draws are a VAE's");
        let loss = match objective {
            Objective::Elbo => recon.clone() + term.clone(),
            Objective::Iwae => {
                let noise = forward.noise.as_ref().expect("a VAE's draws have noise");
                let log_var = forward
                    .log_var
                    .clone()
                    .expect("a VAE")
                    .unsqueeze_dim::<4>(2);
                let log_w = log_weights(
                    recon_k.neg(),
                    per_draw(&forward.z),
                    per_draw(noise),
                    log_var,
                );
                log_mean_exp(log_w, 2).reshape([m, b, 1]).neg()
            }
        };
        Self {
            recon,
            kl: Some(kl),
            kl_dims,
            kl_term: Some(term),
            loss,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::PIXELS;
    use crate::model::{ModelConfig, ModelKind};
    use burn::tensor::{Distribution, TensorData};

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec().unwrap()
    }

    /// Stacking and unstacking gives the members back (CVAEs: the label inputs too); each member's decoding in a stack of 3
    /// equals its decoding in a stack of its own and the solo model's to float rounding. Not
    /// bit for bit at these tiny shapes: libtorch picks another matmul kernel for 3 batched
    /// products of 5 rows than for 1, and 36 of 3,920 outputs differ by one ulp (at the
    /// training shapes of `tests/stacking.rs`, kernels single-threaded, the sweeps agree bit for
    /// bit).
    #[test]
    fn members_round_trip_and_compute_alone() {
        let device = crate::model::test_device();
        let config = ModelConfig {
            kind: ModelKind::Cvae,
            hidden: vec![16],
            latent: 3,
            activation: crate::model::Activation::Relu,
            layout: crate::model::Layout::Article,
        };
        let nets: Vec<Autoencoder> = (0..3)
            .map(|s| {
                device.seed(s);
                config.init(&device)
            })
            .collect();
        let stack = StackedAutoencoder::from_members(&nets);
        assert_eq!(stack.members(), 3);
        let x = Tensor::<3>::random([3, 5, PIXELS], Distribution::Uniform(0.0, 1.0), &device);
        let noise = Tensor::<3>::random([3, 5, 3], Distribution::Normal(0.0, 1.0), &device);
        let digits: Vec<u8> = (0..15).map(|k| (k * 7 % 10) as u8).collect();
        let labels = crate::data::one_hot(&digits, &device).reshape([3, 5, 10]);
        let out = stack.forward(x.clone(), Some(noise.clone()), Some(labels.clone()));
        let weights = |n: &Autoencoder| {
            let mut all: Vec<Vec<f32>> = Vec::new();
            for mlp in [&n.encoder, &n.decoder] {
                for l in &mlp.layers {
                    all.push(values(l.weight.val()));
                    all.push(values(l.bias.as_ref().unwrap().val()));
                }
            }
            let heads = n.heads.as_ref().unwrap();
            all.push(values(heads.log_var.weight.val()));
            all
        };
        for (i, net) in nets.iter().enumerate() {
            let back = stack.member(i);
            assert_eq!(
                weights(net),
                weights(&back),
                "member {i} changed by the round trip"
            );
            let xi = x.clone().slice(i..i + 1);
            let ei = noise.clone().slice(i..i + 1);
            let li = labels.clone().slice(i..i + 1);
            let alone = StackedAutoencoder::from_members(std::slice::from_ref(net));
            let alone = alone
                .forward(xi.clone(), Some(ei.clone()), Some(li.clone()))
                .decoded();
            let stacked = out.decoded().slice(i..i + 1);
            for (a, b) in values(alone.clone()).iter().zip(values(stacked)) {
                assert!(
                    (a - b).abs() <= 1e-6,
                    "member {i}: alone {a} vs stacked {b}"
                );
            }
            let li = li.reshape([5, 10]);
            let (mu, lv) = net.encode(xi.reshape([5, PIXELS]), Some(li.clone()));
            let z = mu + ei.reshape([5, 3]) * lv.unwrap().mul_scalar(0.5).exp();
            for (a, b) in values(net.decode(z, Some(li))).iter().zip(values(alone)) {
                assert!((a - b).abs() < 1e-5, "member {i}: solo {a} vs stack {b}");
            }
        }
    }

    /// A tiny stacked VAE and one image, for the objective's tests.
    fn tiny(device: &Device) -> (StackedAutoencoder, Tensor<3>) {
        device.seed(5);
        let config = ModelConfig {
            kind: ModelKind::Vae,
            hidden: vec![4],
            latent: 2,
            activation: crate::model::Activation::Tanh,
            layout: crate::model::Layout::Heads,
        };
        let stack = StackedAutoencoder::from_members(&[config.init(device)]);
        let x = Tensor::<3>::random([1, 1, PIXELS], Distribution::Uniform(0.0, 1.0), device)
            .greater_elem(0.5)
            .float();
        (stack, x)
    }

    fn scalar(t: Tensor<3>) -> f64 {
        f64::from(t.sum().into_scalar::<f32>())
    }

    /// K identical draws: the K-sample ELBO is the one-draw ELBO and the IWAE bound is the
    /// one draw's log-weight (log-mean-exp of K equal values); with one draw the IWAE loss is
    /// `recon + log q(z|x) − log p(z)` by hand (`½Σz² − ½Σε² − ½Σ log σ²` beside the recon).
    #[test]
    fn k_draws_reduce_to_one_and_iwae_with_one_draw_is_the_sampled_elbo() {
        let d = crate::model::test_device();
        let (stack, x) = tiny(&d);
        let eps = Tensor::<3>::from_floats([[[0.3f32, -1.1]]], &d);
        let beta = KlTerm::Weighted {
            beta: Tensor::<3>::ones([1, 1, 1], &d),
        };
        let terms = |noise: Tensor<3>, objective| {
            let fwd = stack.forward(x.clone(), Some(noise), None);
            let t = StackTerms::new(&fwd, x.clone(), &beta, Likelihood::Bernoulli, objective);
            (fwd, t)
        };
        let (one, elbo_1) = terms(eps.clone(), Objective::Elbo);
        let (_, elbo_3) = terms(eps.clone().repeat_dim(2, 3), Objective::Elbo);
        let (_, iwae_3) = terms(eps.clone().repeat_dim(2, 3), Objective::Iwae);
        let (_, iwae_1) = terms(eps.clone(), Objective::Iwae);
        let close = |a: f64, b: f64, what: &str| {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{what}: {a} vs {b}"
            )
        };
        close(scalar(elbo_3.loss), scalar(elbo_1.loss.clone()), "ELBO K=3");
        close(
            scalar(elbo_3.recon),
            scalar(elbo_1.recon.clone()),
            "recon K=3",
        );
        close(scalar(iwae_3.loss), scalar(iwae_1.loss.clone()), "IWAE K=3");
        let lv = one.log_var.unwrap();
        let by_hand = scalar(elbo_1.recon) + 0.5 * scalar(one.z.square())
            - 0.5 * scalar(eps.square())
            - 0.5 * scalar(lv);
        close(scalar(iwae_1.loss), by_hand, "IWAE K=1");
    }

    /// The IWAE gradient that autodiff gives (Burda et al.'s `Σ w̃_k ∇ log w_k`) against
    /// central finite differences of the loss, on a tiny VAE with K = 4 fixed draws, for the
    /// first entries of every parameter (encoder, heads, decoder).
    #[test]
    fn iwae_gradient_matches_finite_differences() {
        let d = crate::model::test_device().autodiff();
        let (stack, x) = tiny(&d);
        let noise =
            Tensor::<3>::from_floats([[[0.3f32, -1.1, 1.4, 0.2, -0.7, 0.9, 0.05, -1.6]]], &d);
        let beta = KlTerm::Weighted {
            beta: Tensor::<3>::ones([1, 1, 1], &d),
        };
        let loss = |net: &StackedAutoencoder| {
            let fwd = net.forward(x.clone(), Some(noise.clone()), None);
            StackTerms::new(
                &fwd,
                x.clone(),
                &beta,
                Likelihood::Bernoulli,
                Objective::Iwae,
            )
            .loss
            .sum()
        };
        let grads = loss(&stack).backward();
        let values: Vec<Tensor<3>> = stack.params().iter().map(|p| p.val().detach()).collect();
        let h = 1e-2;
        let mut checked = 0;
        for (i, param) in stack.params().iter().enumerate() {
            let grad: Vec<f32> = param
                .val()
                .grad(&grads)
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            for j in 0..2.min(grad.len()) {
                let shifted = |delta: f64| {
                    let mut all = values.clone();
                    let dims = all[i].dims();
                    let mut v: Vec<f32> = all[i].clone().into_data().try_to_vec::<f32>().unwrap();
                    v[j] += delta as f32;
                    all[i] = Tensor::from_data(TensorData::new(v, dims), &d);
                    let net = stack.clone().with_values(all);
                    f64::from(loss(&net).into_scalar::<f32>())
                };
                let fd = (shifted(h) - shifted(-h)) / (2.0 * h);
                let g = f64::from(grad[j]);
                assert!(
                    (fd - g).abs() <= 0.02 * g.abs().max(fd.abs()) + 2e-2,
                    "parameter {i} entry {j}: autodiff {g} vs finite differences {fd}"
                );
                checked += 1;
            }
        }
        assert!(checked >= 16, "{checked}");
    }

    /// A CVAE decodes each draw with its own image's label: two identical draws of each of two
    /// images with different labels give the one-draw ELBO exactly (labels repeated along the
    /// wrong axis would pair a draw with the other image's label).
    #[test]
    fn a_cvaes_draws_keep_their_images_labels() {
        let d = crate::model::test_device();
        d.seed(9);
        let config = ModelConfig {
            kind: ModelKind::Cvae,
            hidden: vec![8],
            latent: 2,
            activation: crate::model::Activation::Relu,
            layout: crate::model::Layout::Article,
        };
        let stack = StackedAutoencoder::from_members(&[config.init(&d)]);
        let x = Tensor::<3>::random([1, 2, PIXELS], Distribution::Uniform(0.0, 1.0), &d);
        let labels = crate::data::one_hot(&[3, 8], &d).reshape([1, 2, 10]);
        let eps = Tensor::<3>::from_floats([[[0.5f32, -0.2], [1.3, 0.7]]], &d);
        let beta = KlTerm::Weighted {
            beta: Tensor::<3>::ones([1, 1, 1], &d),
        };
        let loss = |noise: Tensor<3>| {
            let fwd = stack.forward(x.clone(), Some(noise), Some(labels.clone()));
            let t = StackTerms::new(
                &fwd,
                x.clone(),
                &beta,
                Likelihood::Gaussian,
                Objective::Elbo,
            );
            t.loss
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let one = loss(eps.clone());
        let two = loss(eps.clone().repeat_dim(2, 2));
        for (a, b) in one.iter().zip(&two) {
            assert!((a - b).abs() <= 1e-4 * a.abs(), "{one:?} vs {two:?}");
        }
    }
}
