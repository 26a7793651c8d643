//! Run specifications: every parameter of one training run, validated, with a stable identity;
//! and experiment matrices ([`matrix`]) that expand into many of them.

pub mod defaults;
mod device;
pub mod matrix;
pub mod params;
pub mod schedule;
pub mod tracking;

pub use device::device_for;
pub use schedule::LrSchedule;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::{Binarize, Dataset};
use crate::model::{Activation, Layout, Likelihood, ModelConfig, ModelKind, Objective};

/// Which Burn backend trains the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// libtorch through burn-tch (the default).
    Tch,
    /// Burn's pure-Rust CPU backend.
    Flex,
}

impl BackendKind {
    /// The name used in configs and provenance.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Tch => "tch",
            BackendKind::Flex => "flex",
        }
    }
}

/// Where the backend computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// The CPU.
    Cpu,
    /// The first CUDA GPU (libtorch backend only).
    Cuda,
}

/// Every parameter of one run. Serialised as the run's `config.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// AE, VAE or CVAE.
    pub model: ModelKind,
    /// MNIST or Fashion-MNIST (absent in configs written before it existed: MNIST).
    #[serde(default)]
    pub dataset: Dataset,
    /// Weight of the KL term (`loss = recon + beta * kl`); ignored by the AE.
    pub beta: f64,
    /// Latent size.
    pub latent: usize,
    /// Hidden layer widths of the encoder (the decoder mirrors them).
    pub hidden: Vec<usize>,
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per optimiser step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Drives weight init, shuffling and sampling noise.
    pub seed: u64,
    /// Use only the first `limit` images of each split (quick runs and tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Burn backend.
    pub backend: BackendKind,
    /// Compute device.
    pub device: DeviceKind,
    /// The decoder's likelihood: what `recon` is (absent from a config: the Gaussian, as
    /// before the key existed, so such runs keep their ids).
    #[serde(default, skip_serializing_if = "is_default")]
    pub likelihood: Likelihood,
    /// How the grey levels become the model's input and target (absent: as they are).
    #[serde(default, skip_serializing_if = "is_default")]
    pub binarize: Binarize,
    /// The hidden layers' nonlinearity (absent: ReLU).
    #[serde(default, skip_serializing_if = "is_default")]
    pub activation: Activation,
    /// Where a VAE's posterior heads sit (absent: the article's layout).
    #[serde(default, skip_serializing_if = "is_default")]
    pub layout: Layout,
    /// How the learning rate changes over the epochs (absent: constant).
    #[serde(default, skip_serializing_if = "is_default")]
    pub lr_schedule: LrSchedule,
    /// The factor of the exponential and step schedules (absent: 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub lr_decay: f64,
    /// Epochs between the step schedule's steps (absent: 1).
    #[serde(default = "one_epoch", skip_serializing_if = "is_one_epoch")]
    pub lr_step: usize,
    /// The bound a VAE maximises, `elbo` or `iwae` (absent: the ELBO).
    #[serde(default, skip_serializing_if = "is_default")]
    pub objective: Objective,
    /// Posterior draws per image, K, that the objective averages (ELBO) or importance-weights
    /// (IWAE) (absent: 1).
    #[serde(default = "samples", skip_serializing_if = "is_samples")]
    pub samples: usize,
    /// Adam's ε (absent: `torch.optim.Adam`'s 1e-8).
    #[serde(default = "adam_eps", skip_serializing_if = "is_adam_eps")]
    pub adam_eps: f64,
    /// Adam's (β₁, β₂) (absent: `torch.optim.Adam`'s (0.9, 0.999)).
    #[serde(default = "adam_betas", skip_serializing_if = "is_adam_betas")]
    pub adam_betas: [f64; 2],
    /// Epochs over which the KL weight rises linearly from 0 to β, step by step (absent: 0,
    /// none). See [`schedule::warmup`].
    #[serde(default, skip_serializing_if = "is_default")]
    pub kl_warmup: usize,
    /// Cycles of cyclical KL annealing over the run's steps (absent: 0, none). See
    /// [`schedule::cyclical`].
    #[serde(default, skip_serializing_if = "is_default")]
    pub kl_cycles: usize,
    /// The share of each cycle over which the weight rises from 0 to β, in (0, 1] (absent: 0.5).
    #[serde(default = "kl_cycle_ramp", skip_serializing_if = "is_kl_cycle_ramp")]
    pub kl_cycle_ramp: f64,
    /// Free bits λ, nats per latent dimension (absent: 0, none): the KL of a dimension (its
    /// batch mean) is not pushed below λ. See [`crate::model::KlTerm::FreeBits`].
    #[serde(default, skip_serializing_if = "is_default")]
    pub free_bits: f64,
    /// The KL capacity C_max in nats of a capacity-controlled β-VAE (absent: 0, none): the loss
    /// is `recon + β·|KL − C|`, β playing Burgess et al.'s γ. See
    /// [`crate::model::KlTerm::Capacity`].
    #[serde(default, skip_serializing_if = "is_default")]
    pub capacity: f64,
    /// Epochs over which C rises linearly from 0 to `capacity` (absent: 0, C_max from the
    /// start).
    #[serde(default, skip_serializing_if = "is_default")]
    pub capacity_epochs: usize,
}

fn kl_cycle_ramp() -> f64 {
    defaults::KL_CYCLE_RAMP
}

fn is_kl_cycle_ramp(v: &f64) -> bool {
    *v == defaults::KL_CYCLE_RAMP
}

fn samples() -> usize {
    defaults::SAMPLES
}

fn is_samples(v: &usize) -> bool {
    *v == defaults::SAMPLES
}

fn adam_eps() -> f64 {
    defaults::ADAM_EPS
}

fn is_adam_eps(v: &f64) -> bool {
    *v == defaults::ADAM_EPS
}

fn adam_betas() -> [f64; 2] {
    defaults::ADAM_BETAS
}

fn is_adam_betas(v: &[f64; 2]) -> bool {
    *v == defaults::ADAM_BETAS
}

fn one() -> f64 {
    1.0
}

fn is_one(v: &f64) -> bool {
    *v == 1.0
}

fn one_epoch() -> usize {
    1
}

fn is_one_epoch(v: &usize) -> bool {
    *v == 1
}

/// Whether `value` is its type's default: such keys are left out of a config, so that adding
/// a key changes no existing run's id.
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl Default for RunSpec {
    /// Our best reconstruction of the article's setup: see [`defaults`].
    fn default() -> Self {
        let name = |v: &str| toml::Value::String(v.to_string());
        Self {
            model: name(defaults::MODEL).try_into().expect("a model name"),
            dataset: name(defaults::DATASET).try_into().expect("a data set name"),
            beta: defaults::BETA,
            latent: defaults::LATENT,
            hidden: defaults::HIDDEN.to_vec(),
            epochs: defaults::EPOCHS,
            batch_size: defaults::BATCH_SIZE,
            lr: defaults::LR,
            seed: defaults::SEED,
            limit: None,
            backend: name(defaults::BACKEND).try_into().expect("a backend name"),
            device: name(defaults::DEVICE).try_into().expect("a device name"),
            likelihood: name(defaults::LIKELIHOOD)
                .try_into()
                .expect("a likelihood name"),
            binarize: name(defaults::BINARIZE).try_into().expect("a binarisation"),
            activation: name(defaults::ACTIVATION)
                .try_into()
                .expect("an activation name"),
            layout: name(defaults::LAYOUT).try_into().expect("a layout name"),
            lr_schedule: name(defaults::LR_SCHEDULE)
                .try_into()
                .expect("a schedule name"),
            lr_decay: defaults::LR_DECAY,
            lr_step: defaults::LR_STEP,
            objective: name(defaults::OBJECTIVE)
                .try_into()
                .expect("an objective name"),
            samples: defaults::SAMPLES,
            adam_eps: defaults::ADAM_EPS,
            adam_betas: defaults::ADAM_BETAS,
            kl_warmup: defaults::KL_WARMUP,
            kl_cycles: defaults::KL_CYCLES,
            kl_cycle_ramp: defaults::KL_CYCLE_RAMP,
            free_bits: defaults::FREE_BITS,
            capacity: defaults::CAPACITY,
            capacity_epochs: defaults::CAPACITY_EPOCHS,
        }
    }
}

/// How the KL term of a run's ELBO is formed (see [`crate::model::KlTerm`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KlForm {
    /// `β·KL`, β maybe scheduled.
    Weighted,
    /// `β·Σ_j max(λ, KL_j)`.
    FreeBits,
    /// `β·|KL − C|`.
    Capacity,
}

/// A parameter outside its allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key} = {value}: {allowed}")]
pub struct InvalidParam {
    /// The key, as written in a TOML matrix.
    pub key: &'static str,
    /// The rejected value, as written.
    pub value: String,
    /// What is allowed.
    pub allowed: String,
}

impl RunSpec {
    /// Checks every range; the first violation is returned with its key and the allowed range.
    /// Pure: the same spec gets the same answer on any machine (what this machine can hold is
    /// [`preflight`]'s question).
    pub fn validate(&self) -> Result<(), InvalidParam> {
        let bad = |key, value: String, allowed: &str| {
            Err(InvalidParam {
                key,
                value,
                allowed: allowed.to_string(),
            })
        };
        if !self.beta.is_finite() || self.beta < 0.0 {
            return bad("beta", self.beta.to_string(), "must be finite and >= 0");
        }
        if self.latent < 1 {
            return bad("latent", self.latent.to_string(), "must be >= 1");
        }
        if self.hidden.contains(&0) {
            return bad(
                "hidden",
                format!("{:?}", self.hidden),
                "widths must be >= 1",
            );
        }
        if self.epochs < 1 {
            return bad("epochs", self.epochs.to_string(), "must be >= 1");
        }
        if self.batch_size < 1 {
            return bad("batch_size", self.batch_size.to_string(), "must be >= 1");
        }
        if !self.lr.is_finite() || self.lr <= 0.0 {
            return bad("lr", self.lr.to_string(), "must be finite and > 0");
        }
        if !self.lr_decay.is_finite() || self.lr_decay <= 0.0 {
            return bad(
                "lr_decay",
                self.lr_decay.to_string(),
                "must be finite and > 0",
            );
        }
        if self.lr_step < 1 {
            return bad("lr_step", self.lr_step.to_string(), "must be >= 1");
        }
        if !(1..=defaults::MAX_SAMPLES).contains(&self.samples) {
            return bad(
                "samples",
                self.samples.to_string(),
                &format!("must be from 1 to {}", defaults::MAX_SAMPLES),
            );
        }
        if self.samples > 1 && !self.model.is_variational() {
            return bad(
                "samples",
                self.samples.to_string(),
                "an AE draws no posterior samples: needs model = \"vae\" or \"cvae\"",
            );
        }
        if self.objective == Objective::Iwae && !self.model.is_variational() {
            return bad(
                "objective",
                "\"iwae\"".into(),
                "an importance-weighted bound needs a posterior: model = \"vae\" or \"cvae\"",
            );
        }
        if self.objective == Objective::Iwae && self.beta != 1.0 {
            return bad(
                "beta",
                self.beta.to_string(),
                "objective = \"iwae\" weights log p(z) − log q(z|x) as Burda et al.: needs beta = 1",
            );
        }
        if !self.adam_eps.is_finite() || self.adam_eps <= 0.0 {
            return bad(
                "adam_eps",
                self.adam_eps.to_string(),
                "must be finite and > 0",
            );
        }
        if self.adam_betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return bad(
                "adam_betas",
                format!("{:?}", self.adam_betas),
                "two numbers in [0, 1), e.g. [0.9, 0.999]",
            );
        }
        self.validate_kl_control()?;
        if self.limit == Some(0) {
            return bad(
                "limit",
                "0".into(),
                "must be >= 1 (or absent for all images)",
            );
        }
        if self.layout == Layout::Heads && self.model.is_variational() && self.hidden.is_empty() {
            return bad(
                "layout",
                "\"heads\"".into(),
                "the heads sit on the last hidden layer: needs hidden = [at least one width]",
            );
        }
        if self.device == DeviceKind::Cuda && self.backend != BackendKind::Tch {
            return bad(
                "device",
                "cuda".into(),
                "cuda needs backend = \"tch\" (flex is CPU-only)",
            );
        }
        Ok(())
    }

    /// The KL-control keys' ranges and the combinations that make no sense (one schedule of the
    /// KL weight; capacity is its own; none on an AE or with the IWAE bound).
    fn validate_kl_control(&self) -> Result<(), InvalidParam> {
        let bad = |key, value: String, allowed: &str| {
            Err(InvalidParam {
                key,
                value,
                allowed: allowed.to_string(),
            })
        };
        if !self.free_bits.is_finite() || self.free_bits < 0.0 {
            let allowed = "nats per latent dimension: finite and >= 0 (0: none)";
            return bad("free_bits", self.free_bits.to_string(), allowed);
        }
        if !self.capacity.is_finite() || self.capacity < 0.0 {
            let allowed = "nats: finite and >= 0 (0: no capacity control)";
            return bad("capacity", self.capacity.to_string(), allowed);
        }
        if !(self.kl_cycle_ramp > 0.0 && self.kl_cycle_ramp <= 1.0) {
            let allowed = "the share of each cycle spent rising: in (0, 1]";
            return bad("kl_cycle_ramp", self.kl_cycle_ramp.to_string(), allowed);
        }
        let set: Vec<(&'static str, String)> = [
            ("kl_warmup", self.kl_warmup > 0, self.kl_warmup.to_string()),
            ("kl_cycles", self.kl_cycles > 0, self.kl_cycles.to_string()),
            (
                "free_bits",
                self.free_bits > 0.0,
                self.free_bits.to_string(),
            ),
            ("capacity", self.capacity > 0.0, self.capacity.to_string()),
        ]
        .into_iter()
        .filter(|s| s.1)
        .map(|(k, _, v)| (k, v))
        .collect();
        let Some((key, value)) = set.first().cloned() else {
            return Ok(());
        };
        if !self.model.is_variational() {
            let allowed = "an AE has no KL term: needs model = \"vae\" or \"cvae\"";
            return bad(key, value, allowed);
        }
        if self.objective == Objective::Iwae {
            let allowed =
                "objective = \"iwae\" has no separate KL term: needs objective = \"elbo\"";
            return bad(key, value, allowed);
        }
        // A cycle needs at least one optimiser step (the run's steps: its images over the batch
        // size, every epoch), or the weight would stay 0 throughout.
        let steps = self.epochs * self.steps_per_epoch();
        if self.kl_cycles > steps {
            let allowed = format!("at most one cycle per optimiser step: this run has {steps}");
            return bad("kl_cycles", self.kl_cycles.to_string(), &allowed);
        }
        let has = |k: &str| set.iter().any(|s| s.0 == k);
        if has("kl_warmup") && has("kl_cycles") {
            let allowed = "one schedule of the KL weight: kl_warmup or kl_cycles, not both";
            return bad("kl_cycles", self.kl_cycles.to_string(), allowed);
        }
        if has("capacity") {
            if let Some((other, v)) = set.iter().find(|s| s.0 != "capacity") {
                let allowed = "capacity control sets the KL target itself: needs capacity = 0";
                return bad(other, v.clone(), allowed);
            }
            if self.beta <= 0.0 {
                let allowed =
                    "β is Burgess et al.'s γ here, the weight of |KL − C|: needs beta > 0";
                return bad("capacity", self.capacity.to_string(), allowed);
            }
        }
        Ok(())
    }

    /// The KL weight the ELBO's KL term carries at 0-based optimiser `step` of a run with
    /// `steps_per_epoch` steps an epoch: β times the warm-up's or cycle's share (1 without a
    /// schedule); 0 for the AE.
    pub fn kl_weight_at(&self, step: usize, steps_per_epoch: usize) -> f64 {
        let share = if self.kl_warmup > 0 {
            schedule::warmup(step, self.kl_warmup * steps_per_epoch)
        } else if self.kl_cycles > 0 {
            let total = self.epochs * steps_per_epoch;
            schedule::cyclical(step, total, self.kl_cycles, self.kl_cycle_ramp)
        } else {
            1.0
        };
        if share == 1.0 {
            // Exactly β, so that a run without a schedule trains bit for bit as before.
            self.effective_beta()
        } else {
            self.effective_beta() * share
        }
    }

    /// Optimiser steps per epoch: the training images (`limit` of the 60,000) over the batch
    /// size, the last batch partial.
    pub fn steps_per_epoch(&self) -> usize {
        let images = self
            .limit
            .unwrap_or(crate::data::TRAIN_LEN)
            .min(crate::data::TRAIN_LEN);
        images.div_ceil(self.batch_size.max(1)).max(1)
    }

    /// The KL capacity C at 0-based `step` ([`schedule::warmup`] of `capacity` over
    /// `capacity_epochs`); `None` without capacity control.
    pub fn capacity_at(&self, step: usize, steps_per_epoch: usize) -> Option<f64> {
        (self.capacity > 0.0)
            .then(|| self.capacity * schedule::warmup(step, self.capacity_epochs * steps_per_epoch))
    }

    /// The KL term's form: its variant of [`crate::model::KlTerm`] (part of the stack key).
    pub fn kl_form(&self) -> KlForm {
        if self.capacity > 0.0 {
            KlForm::Capacity
        } else if self.free_bits > 0.0 {
            KlForm::FreeBits
        } else {
            KlForm::Weighted
        }
    }

    /// Whether the run fits in `available` bytes ([`Self::memory_estimate`]); the error names
    /// the key that makes it large (`samples` when the K draws' activations are most of it,
    /// else `latent` or `hidden`).
    pub fn check_fits(&self, available: u64) -> Result<(), InvalidParam> {
        let need = self.memory_estimate();
        if need <= available as f64 {
            return Ok(());
        }
        let widest = self.hidden.iter().copied().max().unwrap_or(0);
        let one_draw = RunSpec {
            samples: 1,
            ..self.clone()
        };
        let (key, value) = if one_draw.memory_estimate() <= available as f64 {
            ("samples", self.samples.to_string())
        } else if self.latent >= widest {
            ("latent", self.latent.to_string())
        } else {
            ("hidden", format!("{:?}", self.hidden))
        };
        Err(InvalidParam {
            key,
            value,
            allowed: format!(
                "this model needs about {} (parameters, gradients, optimiser state, \
                 activations) and this machine has {} available",
                human_bytes(need),
                human_bytes(available as f64)
            ),
        })
    }

    /// Bytes a run holds at its peak, roughly: six f32 copies of the parameters (weights,
    /// gradients, Adam's two moments, the Learner's copy before each step, the checkpoint being
    /// written) and four of the activations of a batch.
    pub fn memory_estimate(&self) -> f64 {
        let widths: f64 = self.hidden.iter().map(|&h| h as f64).sum::<f64>()
            + 2.0 * self.latent as f64
            + crate::data::PIXELS as f64;
        let parameters = self.model_config().parameter_count();
        // K draws per image multiply every activation after the encoder; count all K-fold.
        let rows = (self.batch_size * self.samples) as f64;
        6.0 * 4.0 * parameters + 4.0 * 4.0 * 2.0 * rows * widths
    }

    /// The architecture part of the spec.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            kind: self.model,
            hidden: self.hidden.clone(),
            latent: self.latent,
            activation: self.activation,
            layout: self.layout,
        }
    }

    /// The learning rate of 1-based `epoch` ([`LrSchedule::lr_at`]).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        self.lr_schedule
            .lr_at(self.lr, self.lr_decay, self.lr_step, epoch)
    }

    /// The KL weight that actually applies (0 for the AE, whatever `beta` says).
    pub fn effective_beta(&self) -> f64 {
        if self.model.is_variational() {
            self.beta
        } else {
            0.0
        }
    }

    /// What runs must share to train as one stacked model: everything that shapes a tensor,
    /// the forward pass, the data or the epoch loop (kind, data set, widths, latent size,
    /// batch size, epochs, data limit, backend, device, likelihood, binarisation, activation,
    /// layout, objective, samples, Adam's constants, whether the KL term has free bits or a
    /// capacity). Members may differ in β, seed, learning rate (and its schedule) and KL
    /// control (warm-up, cycles, λ, C and its ramp).
    pub fn stack_key(&self) -> String {
        let hidden: Vec<String> = self.hidden.iter().map(|h| h.to_string()).collect();
        let literature = [
            (self.likelihood != Likelihood::default()).then(|| self.likelihood.as_str()),
            (self.binarize != Binarize::default()).then(|| self.binarize.as_str()),
            (self.activation != Activation::default()).then(|| self.activation.as_str()),
            (self.layout != Layout::default()).then(|| self.layout.as_str()),
            (self.objective != Objective::default()).then(|| self.objective.as_str()),
        ];
        let mut literature: String = literature
            .iter()
            .flatten()
            .map(|s| format!(" {s}"))
            .collect();
        if self.samples != defaults::SAMPLES {
            literature += &format!(" samples {}", self.samples);
        }
        if (self.adam_eps, self.adam_betas) != (defaults::ADAM_EPS, defaults::ADAM_BETAS) {
            literature += &format!(" adam {:?} {}", self.adam_betas, self.adam_eps);
        }
        match self.kl_form() {
            KlForm::Weighted => {}
            KlForm::FreeBits => literature += " free-bits",
            KlForm::Capacity => literature += " capacity",
        }
        format!(
            "{} {} {}-{} batch {} epochs {} limit {} {} {:?}{literature}",
            self.model,
            self.dataset,
            hidden.join("-"),
            self.latent,
            self.batch_size,
            self.epochs,
            self.limit.map_or("-".to_string(), |l| l.to_string()),
            self.backend.as_str(),
            self.device
        )
    }

    /// The spec with parameters that cannot matter cleared, so equal runs compare equal
    /// (an AE under different β is one run; an AE has no heads to lay out).
    pub fn canonical(&self) -> RunSpec {
        let mut spec = self.clone();
        spec.beta = self.effective_beta();
        if !self.model.is_variational() {
            spec.layout = Layout::default();
        }
        // A schedule's knobs that it does not read.
        if !matches!(self.lr_schedule, LrSchedule::Exponential | LrSchedule::Step) {
            spec.lr_decay = one();
        }
        if self.lr_schedule != LrSchedule::Step {
            spec.lr_step = one_epoch();
        }
        if self.kl_cycles == 0 {
            spec.kl_cycle_ramp = defaults::KL_CYCLE_RAMP;
        }
        if self.capacity == 0.0 {
            spec.capacity_epochs = defaults::CAPACITY_EPOCHS;
        }
        spec
    }

    /// The spec as TOML (the run's `config.toml`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a RunSpec always serialises")
    }

    /// A short content hash of the canonical spec and the code fingerprint: equal parameters at
    /// the same code give the same id, any change gives a new one.
    pub fn run_id(&self, code_fingerprint: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.canonical().to_toml().as_bytes());
        h.update(b"\0code:");
        h.update(code_fingerprint.as_bytes());
        let digest = h.finalize();
        let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
        format!("{}-{hex}", self.model)
    }
}

/// What this machine must offer before anything is written for `specs`: the memory each needs
/// ([`RunSpec::check_fits`] against [`available_memory`], read once) and its device
/// ([`device_for`]). `name` turns a size error into the caller's words (a flag, a matrix key).
/// Run once before training, apart from [`RunSpec::validate`], so that a matrix parses the same
/// on a busy laptop, a login node and a Slurm node.
pub fn preflight<'a>(
    specs: impl IntoIterator<Item = &'a RunSpec>,
    name: impl Fn(&InvalidParam) -> String,
) -> anyhow::Result<()> {
    let available = available_memory();
    for spec in specs {
        if let Some(available) = available {
            spec.check_fits(available)
                .map_err(|e| anyhow::anyhow!(name(&e)))?;
        }
        device_for(spec)?;
    }
    Ok(())
}

/// `MemAvailable` of /proc/meminfo in bytes (None where it cannot be read): what validation
/// and `--stack auto` size against.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `12.3 GB`-style sizes for messages.
fn human_bytes(bytes: f64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit + 1 == units.len() && value >= 1000.0 {
        return format!("{bytes:.1e} B");
    }
    format!("{value:.1} {}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_change_with_any_parameter() {
        let a = RunSpec::default();
        assert_eq!(a.run_id("c1"), a.clone().run_id("c1"));
        assert_ne!(a.run_id("c1"), a.run_id("c2"));
        let mut b = a.clone();
        b.seed = 1;
        assert_ne!(a.run_id("c1"), b.run_id("c1"));
        let mut c = a.clone();
        c.beta = 1.0;
        assert_ne!(a.run_id("c1"), c.run_id("c1"));
    }

    #[test]
    fn ae_ignores_beta_in_its_identity() {
        let mut a = RunSpec {
            model: ModelKind::Ae,
            ..RunSpec::default()
        };
        let id = a.run_id("c");
        a.beta = 5.0;
        assert_eq!(id, a.run_id("c"));
    }

    #[test]
    fn validation_names_the_key_and_range() {
        let spec = RunSpec {
            beta: -1.0,
            ..RunSpec::default()
        };
        let err = spec.validate().unwrap_err();
        assert_eq!(err.to_string(), "beta = -1: must be finite and >= 0");
        let spec = RunSpec {
            latent: 0,
            ..RunSpec::default()
        };
        assert_eq!(spec.validate().unwrap_err().key, "latent");
        assert!(RunSpec::default().validate().is_ok());
    }

    #[test]
    fn sizes_that_cannot_fit_are_refused_by_name_and_validation_does_not_ask() {
        let huge = RunSpec {
            latent: 1_000_000_000_000,
            ..RunSpec::default()
        };
        // Validation is about the spec alone, whatever this machine has.
        assert!(huge.validate().is_ok());
        let err = huge.check_fits(16 << 30).unwrap_err();
        assert_eq!(err.key, "latent");
        assert!(err.allowed.contains("17.2 GB available"), "{err}");
        assert!(RunSpec::default().check_fits(16 << 30).is_ok());
        assert!(RunSpec::default().check_fits(1 << 20).is_err());
        // The article's model, 784-256-4 VAE: 785·256 + 257·4 + 2·(5·4) + 5·256 + 257·784.
        assert_eq!(
            RunSpec::default().model_config().parameter_count(),
            404_796.0
        );
        let wide = RunSpec {
            hidden: vec![10_000_000_000],
            ..RunSpec::default()
        };
        assert_eq!(wide.check_fits(16 << 30).unwrap_err().key, "hidden");
    }

    /// The KL weight and capacity of a run at chosen steps (10 steps an epoch): a warm-up
    /// over 2 epochs, 2 cycles over 4 epochs, capacity rising over 2 epochs; without a
    /// schedule exactly β (so runs without one train as before), 0 for an AE.
    #[test]
    fn kl_weight_and_capacity_by_step() {
        let vae = |f: fn(&mut RunSpec)| {
            let mut s = RunSpec {
                beta: 2.0,
                epochs: 4,
                ..RunSpec::default()
            };
            f(&mut s);
            s
        };
        let warm = vae(|s| s.kl_warmup = 2);
        let w = |s: &RunSpec, step| s.kl_weight_at(step, 10);
        assert_eq!(
            [w(&warm, 0), w(&warm, 5), w(&warm, 19), w(&warm, 20)],
            [0.0, 0.5, 1.9, 2.0]
        );
        let cycles = vae(|s| s.kl_cycles = 2);
        // 40 steps, 2 cycles of 20, rising over the first 10 of each.
        assert_eq!(
            [0, 5, 10, 19, 20, 25, 39].map(|step| w(&cycles, step)),
            [0.0, 1.0, 2.0, 2.0, 0.0, 1.0, 2.0]
        );
        let plain = vae(|_| {});
        assert_eq!(w(&plain, 0), 2.0);
        assert_eq!(plain.capacity_at(0, 10), None);
        let ae = RunSpec {
            model: ModelKind::Ae,
            ..plain.clone()
        };
        assert_eq!(w(&ae, 3), 0.0);
        let cap = vae(|s| {
            s.capacity = 8.0;
            s.capacity_epochs = 2;
        });
        assert_eq!(
            [0, 5, 20, 39].map(|step| cap.capacity_at(step, 10)),
            [Some(0.0), Some(2.0), Some(8.0), Some(8.0)]
        );
        assert_eq!(w(&cap, 0), 2.0);
        assert_eq!(cap.kl_form(), KlForm::Capacity);
        assert_eq!(vae(|s| s.free_bits = 0.5).kl_form(), KlForm::FreeBits);
        // Forms are part of the stack key, schedules are not.
        assert_ne!(cap.stack_key(), plain.stack_key());
        assert_eq!(warm.stack_key(), cycles.stack_key());
        assert_eq!(warm.stack_key(), plain.stack_key());
    }

    #[test]
    fn kl_control_refuses_bad_values_and_combinations_by_key() {
        let refused = |f: fn(&mut RunSpec)| {
            let mut s = RunSpec::default();
            f(&mut s);
            s.validate().unwrap_err().key
        };
        assert_eq!(refused(|s| s.free_bits = -0.1), "free_bits");
        assert_eq!(refused(|s| s.capacity = f64::NAN), "capacity");
        assert_eq!(refused(|s| s.kl_cycle_ramp = 0.0), "kl_cycle_ramp");
        assert_eq!(refused(|s| s.kl_cycle_ramp = 1.01), "kl_cycle_ramp");
        // 10 images in batches of 32 for 10 epochs: 10 steps, so at most 10 cycles.
        assert_eq!(
            refused(|s| {
                s.limit = Some(10);
                s.kl_cycles = 11;
            }),
            "kl_cycles"
        );
        assert_eq!(
            refused(|s| {
                s.kl_warmup = 2;
                s.kl_cycles = 3;
            }),
            "kl_cycles"
        );
        assert_eq!(
            refused(|s| {
                s.capacity = 5.0;
                s.free_bits = 0.5;
            }),
            "free_bits"
        );
        assert_eq!(
            refused(|s| {
                s.capacity = 5.0;
                s.beta = 0.0;
            }),
            "capacity"
        );
        assert_eq!(
            refused(|s| {
                s.model = ModelKind::Ae;
                s.kl_warmup = 1;
            }),
            "kl_warmup"
        );
        assert_eq!(
            refused(|s| {
                s.objective = Objective::Iwae;
                s.beta = 1.0;
                s.free_bits = 0.5;
            }),
            "free_bits"
        );
        let fine = RunSpec {
            kl_warmup: 3,
            free_bits: 0.25,
            ..RunSpec::default()
        };
        assert!(fine.validate().is_ok());
        // Knobs a run does not read are not part of its identity.
        let ramp = RunSpec {
            kl_cycle_ramp: 0.3,
            capacity_epochs: 4,
            ..RunSpec::default()
        };
        assert_eq!(ramp.run_id("c"), RunSpec::default().run_id("c"));
    }

    #[test]
    fn toml_round_trip_rejects_unknown_keys() {
        let spec = RunSpec::default();
        let back: RunSpec = toml::from_str(&spec.to_toml()).unwrap();
        assert_eq!(spec, back);
        let err = toml::from_str::<RunSpec>(&format!("{}\nbogus = 1\n", spec.to_toml()));
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("unknown field `bogus`"));
    }
}
