//! The model burn-train trains: M stacked members, their Adam moments, their β, KL control
//! and learning rates ([`StackTrainee`]), its train and inference steps and its fused optimiser step.

use burn::module::{Module, Param};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::train::{InferenceStep, TrainOutput, TrainStep};

use super::metrics::StepOutput;
use super::optim;
use crate::config::{KlForm, RunSpec};
use crate::data::StackBatch;
use crate::model::{Autoencoder, KlTerm, Likelihood, Objective, StackTerms, StackedAutoencoder};

/// The model the Learner trains: M stacked autoencoders and, shaped like them, their Adam
/// moments. Keeping the moments in the model (not in Burn's optimiser) lets one fused step
/// update every parameter with each member's own learning rate, and puts the whole training
/// state in the one record the checkpointer splits per member.
#[derive(Module, Debug)]
pub struct StackTrainee {
    /// The members' networks.
    pub net: StackedAutoencoder,
    moment_1: StackedAutoencoder,
    moment_2: StackedAutoencoder,
    #[module(skip)]
    hyper: Hyper,
}

/// What the members may differ in beyond their weights, and the shared step count.
#[derive(Clone, Debug)]
struct Hyper {
    /// The members' specs: each member's β, learning rate and KL control by step
    /// (`RunSpec::lr_at`, `RunSpec::kl_weight_at`, `RunSpec::capacity_at`; the recorder reads
    /// the same functions for its columns).
    specs: Vec<RunSpec>,
    /// Optimiser steps per epoch (which epoch a step belongs to).
    batches: usize,
    /// Optimiser steps taken so far (Adam's t; the same for every member).
    steps: usize,
    /// The decoder's likelihood (the same for every member: part of the stack key).
    likelihood: Likelihood,
    /// The bound maximised (part of the stack key).
    objective: Objective,
    /// Adam's constants (part of the stack key).
    adam: optim::Adam,
}

impl StackTrainee {
    /// The stack of `specs` (which share [`RunSpec::stack_key`]) on `device` (an autodiff
    /// device, to train), each member initialised exactly as its run alone (seeded with its
    /// own seed), Adam's moments zero and `steps` optimiser steps counted as done.
    pub fn init(specs: &[RunSpec], device: &Device, batches: usize, start_epoch: usize) -> Self {
        let nets: Vec<Autoencoder> = specs
            .iter()
            .map(|spec| {
                device.seed(spec.seed);
                spec.model_config().init(device)
            })
            .collect();
        Self::new(&nets, specs, batches, start_epoch)
    }

    /// A stack of `nets` with zero moments (as Adam starts), `steps` optimiser steps done.
    fn new(nets: &[Autoencoder], specs: &[RunSpec], batches: usize, start_epoch: usize) -> Self {
        let zeros = |n: &Autoencoder| n.clone().map(&mut ZeroParams).no_grad();
        let zero: Vec<Autoencoder> = nets.iter().map(zeros).collect();
        Self {
            net: StackedAutoencoder::from_members(nets),
            moment_1: StackedAutoencoder::from_members(&zero).no_grad(),
            moment_2: StackedAutoencoder::from_members(&zero).no_grad(),
            hyper: Hyper {
                specs: specs.to_vec(),
                batches,
                steps: start_epoch * batches,
                likelihood: specs[0].likelihood,
                objective: specs[0].objective,
                adam: optim::Adam::of(&specs[0]),
            },
        }
    }

    /// Member `i`'s network and moments (what its checkpoint file holds).
    pub fn member_checkpoint(&self, i: usize) -> MemberCheckpoint {
        MemberCheckpoint {
            net: self.net.member(i),
            moment_1: self.moment_1.member(i),
            moment_2: self.moment_2.member(i),
        }
    }

    /// This stack's shape and hyper-parameters with the members' checkpointed state.
    pub fn restacked(&self, members: &[MemberCheckpoint]) -> Self {
        let part = |f: fn(&MemberCheckpoint) -> &Autoencoder| {
            members.iter().map(|m| f(m).clone()).collect::<Vec<_>>()
        };
        Self {
            net: StackedAutoencoder::from_members(&part(|m| &m.net)),
            moment_1: StackedAutoencoder::from_members(&part(|m| &m.moment_1)).no_grad(),
            moment_2: StackedAutoencoder::from_members(&part(|m| &m.moment_2)).no_grad(),
            hyper: self.hyper.clone(),
        }
    }

    /// Each member's KL term at 0-based optimiser `step`, as `[M, 1, 1]` numbers on `device`.
    fn kl_term(&self, step: usize, device: &Device) -> KlTerm {
        let specs = &self.hyper.specs;
        let per_member = |f: &dyn Fn(&RunSpec) -> f64| {
            let v: Vec<f32> = specs.iter().map(|s| f(s) as f32).collect();
            Tensor::<1>::from_floats(v.as_slice(), device).reshape([v.len(), 1, 1])
        };
        let batches = self.hyper.batches;
        let beta = per_member(&|s| s.kl_weight_at(step, batches));
        match specs[0].kl_form() {
            KlForm::Weighted => KlTerm::Weighted { beta },
            KlForm::FreeBits => KlTerm::FreeBits {
                beta,
                lambda: per_member(&|s| s.free_bits),
            },
            KlForm::Capacity => KlTerm::Capacity {
                gamma: beta,
                capacity: per_member(&|s| s.capacity_at(step, batches).unwrap_or(0.0)),
            },
        }
    }

    /// The terms of `batch` at 0-based optimiser `step` (the KL schedule's).
    fn terms(&self, batch: &StackBatch, step: usize) -> StackTerms {
        let kl_term = self.kl_term(step, &batch.images.device());
        let forward = self.net.forward(
            batch.images.clone(),
            batch.noise.clone(),
            batch.labels.clone(),
        );
        StackTerms::new(
            &forward,
            batch.images.clone(),
            &kl_term,
            self.hyper.likelihood,
            self.hyper.objective,
        )
    }
}

/// Maps every parameter to zeros of its shape (Adam's initial moments).
struct ZeroParams;

impl burn::module::ModuleMapper for ZeroParams {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| t.zeros_like())
    }
}

impl TrainStep for StackTrainee {
    type Input = StackBatch;
    type Output = StepOutput;

    fn step(&self, batch: StackBatch) -> TrainOutput<StepOutput> {
        crate::faults::point(crate::faults::names::STEP, "");
        let terms = self.terms(&batch, self.hyper.steps);
        let output = StepOutput::new(&terms, batch.epoch);
        // Each member back-propagates its batch *sum*, as the article does
        // (MSELoss(reduction="sum") + β·KLD summed); the stack's loss is the sum over members,
        // so every member's gradient is its own.
        let grads = terms.loss.sum().backward();
        TrainOutput::new(self, grads, output)
    }

    /// [`StackTrainee::adam`]; Burn's optimiser and the Learner's learning rate are not used.
    fn optimize(
        self,
        _optim: &mut ModuleOptimizer,
        _lr: burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        self.adam(grads)
    }
}

impl StackTrainee {
    /// One Adam step on every parameter, one fused pass each ([`optim::adam_step`]), each member
    /// at its own learning rate.
    pub fn adam(self, mut grads: GradientsParams) -> Self {
        let Self {
            net,
            moment_1,
            moment_2,
            hyper,
        } = self;
        let time = hyper.steps + 1;
        // The epoch this step belongs to, and each member's learning rate in it.
        let epoch = hyper.steps / hyper.batches.max(1);
        let lrs: Vec<f64> = hyper
            .specs
            .iter()
            .map(|s| s.lr_at((epoch + 1).min(s.epochs)))
            .collect();
        let (mut ps, mut ms, mut vs) = (Vec::new(), Vec::new(), Vec::new());
        let params = net.params().into_iter();
        for ((p, m), v) in params.zip(moment_1.params()).zip(moment_2.params()) {
            let id = p.id;
            let (p, m, v) = (p.val(), m.val().inner(), v.val().inner());
            match grads.remove::<3>(id) {
                Some(g) => {
                    let (np, nm, nv) = optim::adam_step(p.inner(), g, m, v, &lrs, time, hyper.adam);
                    ps.push(Tensor::from_inner(np).require_grad());
                    ms.push(Tensor::from_inner(nm));
                    vs.push(Tensor::from_inner(nv));
                }
                None => {
                    ps.push(p);
                    ms.push(Tensor::from_inner(m));
                    vs.push(Tensor::from_inner(v));
                }
            }
        }
        Self {
            net: net.with_values(ps),
            moment_1: moment_1.with_values(ms),
            moment_2: moment_2.with_values(vs),
            hyper: Hyper {
                steps: time,
                ..hyper
            },
        }
    }
}

impl InferenceStep for StackTrainee {
    type Input = StackBatch;
    type Output = StepOutput;

    /// The test split after an epoch: the KL term of the epoch's last step.
    fn step(&self, batch: StackBatch) -> StepOutput {
        let terms = self.terms(&batch, self.hyper.steps.saturating_sub(1));
        StepOutput::new(&terms, batch.epoch)
    }
}

/// One member's share of a stack checkpoint: its network and its Adam moments, each shaped
/// like the network. The file is `checkpoint/model-<epoch>.bpk` in the member's own run
/// directory, so that a relaunch can restack members whatever stack they trained in.
#[derive(Module, Debug)]
pub struct MemberCheckpoint {
    /// The network after the epoch.
    pub net: Autoencoder,
    /// Adam's first moment.
    pub moment_1: Autoencoder,
    /// Adam's second moment.
    pub moment_2: Autoencoder,
}
