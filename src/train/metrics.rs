//! What a training or evaluation step reports, and the Learner metrics built from it.
//!
//! A step reduces its per-image loss terms to four batch sums on the device; they are read back
//! once per batch (in `ItemLazy::sync`) and every metric takes its number from those sums, so a
//! batch costs one device read whatever the number of metrics.

use std::sync::Arc;

use burn::prelude::*;
use burn::tensor::TensorReadError;
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Adaptor, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes,
    NumericEntry, SerializedEntry,
};
use burn::train::ItemLazy;

use crate::model::LossTerms;

/// Batch sums of the loss terms, in this order.
const RECON: usize = 0;
const KL: usize = 1;
const BETA_KL: usize = 2;
const LOSS: usize = 3;

/// The output of one step: the batch sums of the loss terms.
pub struct StepOutput {
    sums: Tensor<1>,
    images: usize,
    values: Option<[f64; 4]>,
}

impl StepOutput {
    /// Reduces per-image terms to batch sums (`beta` weights the KL column).
    pub fn new(terms: &LossTerms, beta: f64) -> Self {
        let images = terms.recon.dims()[0];
        // Off the autodiff graph: these sums are read, never differentiated, and tracked ones
        // would add graph nodes to every step and keep them alive until the metrics thread
        // drops the output.
        let recon = terms.recon.clone().without_autodiff().sum();
        let (kl, beta_kl) = match &terms.kl {
            Some(kl) => {
                let kl = kl.clone().without_autodiff().sum();
                (kl.clone(), kl.mul_scalar(beta))
            }
            None => (recon.zeros_like(), recon.zeros_like()),
        };
        let loss = terms.loss.clone().without_autodiff().sum();
        let sums = Tensor::cat(vec![recon, kl, beta_kl, loss], 0);
        Self {
            sums,
            images,
            values: None,
        }
    }
}

impl ItemLazy for StepOutput {
    fn sync(self) -> Result<Self, burn::tensor::ExecutionError> {
        let sums = self.sums.without_autodiff();
        let data = sums.to_data().convert::<f64>();
        let v: Vec<f64> = data.try_to_vec().unwrap_or_default();
        let values = (v.len() == 4).then(|| [v[0], v[1], v[2], v[3]]);
        Ok(Self {
            sums,
            images: self.images,
            values,
        })
    }
}

/// What every [`TermMetric`] reads from a step.
pub struct TermsInput {
    sums: [f64; 4],
    images: usize,
}

impl Adaptor<TermsInput> for StepOutput {
    fn adapt(&self) -> TermsInput {
        TermsInput {
            sums: self.values.unwrap_or([f64::NAN; 4]),
            images: self.images,
        }
    }
}

/// Which number a [`TermMetric`] tracks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Term {
    /// Mean squared error per image.
    Recon,
    /// Mean KL per image.
    Kl,
    /// Mean β·KL per image.
    BetaKl,
    /// Mean total loss per image.
    Loss,
    /// The article's printed number: Σ_b (batch size × batch loss sum) / images.
    ArticleLoss,
}

impl Term {
    /// The metric name, which is also the Parquet column.
    pub fn name(self) -> &'static str {
        match self {
            Term::Recon => "recon",
            Term::Kl => "kl",
            Term::BetaKl => "beta_kl",
            Term::Loss => "loss",
            Term::ArticleLoss => "article_loss",
        }
    }
}

/// A sample-weighted epoch mean of one loss term, as a burn-train numeric metric.
#[derive(Clone)]
pub struct TermMetric {
    term: Term,
    name: MetricName,
    state: NumericMetricState,
}

impl TermMetric {
    /// The metric for `term`.
    pub fn new(term: Term) -> Self {
        Self {
            term,
            name: Arc::new(term.name().to_string()),
            state: NumericMetricState::default(),
        }
    }
}

impl Metric for TermMetric {
    type Input = TermsInput;

    fn update(
        &mut self,
        input: &TermsInput,
        _metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        let n = input.images;
        let per_image = |k: usize| input.sums[k] / n as f64;
        // The article adds `loss.item() * batch_size` with a sum-reduced loss, then divides by the
        // number of images: a mean of batch sums weighted by batch size.
        let value = match self.term {
            Term::Recon => per_image(RECON),
            Term::Kl => per_image(KL),
            Term::BetaKl => per_image(BETA_KL),
            Term::Loss => per_image(LOSS),
            Term::ArticleLoss => input.sums[LOSS],
        };
        self.state.update(value, n);
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

impl Numeric for TermMetric {
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
