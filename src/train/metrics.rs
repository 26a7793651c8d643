//! What a training or evaluation step of a stack reports, and how it reaches the recorder.
//!
//! A step reduces each member's per-image loss terms to batch sums on the device (`[M, 4 + L]`:
//! recon, KL, the KL term, loss, then the KL of each of the L latent dimensions); they are read
//! back once per batch (in `ItemLazy::sync`). Burn's metrics are one number each,
//! so the per-member numbers travel beside them: [`StackLoss`] (the number the progress bar
//! shows, the mean loss over the members) adds every batch's sums into a [`Tallies`] keyed by
//! split and epoch, which the recorder takes when that split's epoch ends. Keyed by epoch,
//! the next epoch's batches cannot mix into a tally the recorder has not taken yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use burn::prelude::*;
use burn::tensor::TensorReadError;
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Adaptor, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes,
    NumericEntry, SerializedEntry,
};
use burn::train::ItemLazy;

use crate::data::Split;
use crate::model::StackTerms;

/// The name of the one Burn metric (the progress bar shows it).
pub const LOSS_METRIC: &str = "loss";

/// Batch sums of one member's loss terms, in this order; the per-dimension KL sums follow.
const RECON: usize = 0;
const KL: usize = 1;
const KL_TERM: usize = 2;
const LOSS: usize = 3;
const DIMS: usize = 4;

/// The output of one step: each member's batch sums of the loss terms.
pub struct StepOutput {
    sums: Tensor<2>,
    images: usize,
    epoch: usize,
    values: Option<Vec<Vec<f64>>>,
}

impl StepOutput {
    /// Reduces per-image terms to batch sums per member; `epoch` is the batch's.
    pub fn new(terms: &StackTerms, epoch: usize) -> Self {
        let [members, images, _] = terms.recon.dims();
        // Off the autodiff graph: these sums are read, never differentiated, and tracked ones
        // would add graph nodes to every step and keep them alive until the metrics thread
        // drops the output.
        let per_member = |t: &Tensor<3>| t.clone().without_autodiff().sum_dim(1);
        let recon = per_member(&terms.recon);
        let mut parts = match (&terms.kl, &terms.kl_term) {
            (Some(kl), Some(term)) => vec![recon.clone(), per_member(kl), per_member(term)],
            _ => vec![recon.clone(), recon.zeros_like(), recon.zeros_like()],
        };
        parts.push(per_member(&terms.loss));
        parts.extend(terms.kl_dims.as_ref().map(per_member));
        let sums = Tensor::cat(parts, 2);
        let width = sums.dims()[2];
        Self {
            sums: sums.reshape([members, width]),
            images,
            epoch,
            values: None,
        }
    }
}

impl ItemLazy for StepOutput {
    fn sync(self) -> Result<Self, burn::tensor::ExecutionError> {
        let sums = self.sums.without_autodiff();
        let width = sums.dims()[1];
        let data = sums.to_data().convert::<f64>();
        let v: Vec<f64> = data.try_to_vec().unwrap_or_default();
        let values = v.chunks_exact(width).map(<[f64]>::to_vec).collect();
        Ok(Self {
            sums,
            images: self.images,
            epoch: self.epoch,
            values: Some(values),
        })
    }
}

/// What [`StackLoss`] reads from a step.
pub struct StackInput {
    sums: Vec<Vec<f64>>,
    images: usize,
    epoch: usize,
}

impl Adaptor<StackInput> for StepOutput {
    fn adapt(&self) -> StackInput {
        StackInput {
            sums: self.values.clone().unwrap_or_default(),
            images: self.images,
            epoch: self.epoch,
        }
    }
}

/// One member's epoch means so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemberMeans {
    /// Mean reconstruction term per image (`−log p(x|z)` without its constant).
    pub recon: f64,
    /// Mean KL per image.
    pub kl: f64,
    /// Mean KL term of the loss per image (`β·KL` without KL control).
    pub kl_term: f64,
    /// Mean loss per image.
    pub loss: f64,
    /// The article's printed number: Σ_b (batch size × batch loss sum) / images.
    pub article_loss: f64,
    /// Mean KL per image of each latent dimension (empty for AEs).
    pub kl_dims: Vec<f64>,
}

/// Sums of one split of one epoch, per member.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    sums: Vec<Vec<f64>>,
    article: Vec<f64>,
    images: usize,
}

impl Tally {
    fn add(&mut self, input: &StackInput) {
        if self.sums.len() < input.sums.len() {
            self.sums.resize(input.sums.len(), Vec::new());
            self.article.resize(input.sums.len(), 0.0);
        }
        let n = input.images as f64;
        for (i, s) in input.sums.iter().enumerate() {
            let sums = &mut self.sums[i];
            sums.resize(s.len().max(sums.len()), 0.0);
            for (sum, value) in sums.iter_mut().zip(s) {
                *sum += value;
            }
            // The article adds `loss.item() * batch_size` with a sum-reduced loss.
            self.article[i] += n * s[LOSS];
        }
        self.images += input.images;
    }

    /// Member `i`'s epoch means (NaN when it saw no batch).
    pub fn means(&self, i: usize) -> MemberMeans {
        let n = self.images as f64;
        let Some(s) = self.sums.get(i).filter(|s| s.len() >= DIMS) else {
            let nan = f64::NAN;
            return MemberMeans {
                recon: nan,
                kl: nan,
                kl_term: nan,
                loss: nan,
                article_loss: nan,
                kl_dims: Vec::new(),
            };
        };
        MemberMeans {
            recon: s[RECON] / n,
            kl: s[KL] / n,
            kl_term: s[KL_TERM] / n,
            loss: s[LOSS] / n,
            article_loss: self.article[i] / n,
            kl_dims: s[DIMS..].iter().map(|v| v / n).collect(),
        }
    }
}

/// Per-member sums of every (split, epoch) not yet taken by the recorder.
pub type Tallies = Arc<Mutex<HashMap<(Split, usize), Tally>>>;

/// Burn's numeric metric `loss` (mean per image over the members with a finite loss), which
/// also adds each batch into the [`Tallies`].
#[derive(Clone)]
pub struct StackLoss {
    phase: Split,
    tallies: Tallies,
    name: MetricName,
    state: NumericMetricState,
}

impl StackLoss {
    /// The metric of `phase`, adding into `tallies`.
    pub fn new(phase: Split, tallies: Tallies) -> Self {
        Self {
            phase,
            tallies,
            name: Arc::new(LOSS_METRIC.to_string()),
            state: NumericMetricState::default(),
        }
    }
}

impl Metric for StackLoss {
    type Input = StackInput;

    fn update(
        &mut self,
        input: &StackInput,
        _metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        self.tallies
            .lock()
            .unwrap()
            .entry((self.phase, input.epoch))
            .or_default()
            .add(input);
        let finite: Vec<f64> = input
            .sums
            .iter()
            .map(|s| s[LOSS])
            .filter(|v| v.is_finite())
            .collect();
        let n = input.images;
        let mean = finite.iter().sum::<f64>() / (finite.len().max(1) * n.max(1)) as f64;
        self.state.update(mean, n);
        Ok(self
            .state
            .compute_update(FormatOptions::new(self.name()).precision(3)))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self
            .state
            .compute_final(FormatOptions::new(self.name()).precision(3)))
    }

    fn clear(&mut self) {
        self.state.reset()
    }

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: false,
        }
        .into()
    }
}

impl Numeric for StackLoss {
    fn value(&self) -> Option<NumericEntry> {
        Some(self.state.current_value())
    }

    fn running_value(&self) -> Option<NumericEntry> {
        Some(self.state.running_value())
    }

    fn final_value(&self) -> NumericEntry {
        self.state.final_value()
    }
}
