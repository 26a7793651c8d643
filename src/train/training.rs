//! The Learner wiring, top to bottom: the model burn-train trains ([`StackTrainee`]: M stacked
//! members, their Adam moments, their β and learning rates), its train and inference steps, its
//! fused optimiser step, the device, and [`learn`], which hands everything to
//! `SupervisedTraining` for one stack. A solo run is a stack of one. The runs' life cycle
//! around it is in [`super::run`].

use std::sync::Arc;

use anyhow::{bail, Result};
use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::{
    InferenceStep, Interrupter, Learner, SupervisedTraining, TrainOutput, TrainStep,
};

use super::checkpoint::{MemberCheckpoint, MemberCheckpointer, NoCheckpoint};
use super::metrics::{Phase, StackLoss, StepOutput, Tallies};
use super::optim;
use super::progress::{BarRenderer, Progress};
use super::recorder::{self, MemberSink};
use super::run::{epoch_line, Outcome, TrainOptions};
use crate::config::{BackendKind, DeviceKind, RunSpec};
use crate::data::{Extras, Feed, Mnist, StackBatch, StackLoader};
use crate::model::{Autoencoder, StackTerms, StackedAutoencoder};
use crate::store::{durable, EpochRow, RunDir};

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
    /// KL weight per member (0 for AEs).
    betas: Vec<f64>,
    /// Adam learning rate per member.
    lrs: Vec<f64>,
    /// Optimiser steps taken so far (Adam's t; the same for every member).
    steps: usize,
}

impl StackTrainee {
    /// The stack of `specs` (which share [`RunSpec::stack_key`]) on `device` (an autodiff
    /// device, to train), each member initialised exactly as its run alone (seeded with its
    /// own seed), Adam's moments zero and `steps` optimiser steps counted as done.
    pub fn init(specs: &[RunSpec], device: &Device, steps: usize) -> Self {
        let nets: Vec<Autoencoder> = specs
            .iter()
            .map(|spec| {
                device.seed(spec.seed);
                spec.model_config().init(device)
            })
            .collect();
        Self::new(&nets, specs, steps)
    }

    /// A stack of `nets` with zero moments (as Adam starts), `steps` optimiser steps done.
    fn new(nets: &[Autoencoder], specs: &[RunSpec], steps: usize) -> Self {
        let zeros = |n: &Autoencoder| n.clone().map(&mut ZeroParams).no_grad();
        let zero: Vec<Autoencoder> = nets.iter().map(zeros).collect();
        Self {
            net: StackedAutoencoder::from_members(nets),
            moment_1: StackedAutoencoder::from_members(&zero).no_grad(),
            moment_2: StackedAutoencoder::from_members(&zero).no_grad(),
            hyper: Hyper {
                betas: specs.iter().map(RunSpec::effective_beta).collect(),
                lrs: specs.iter().map(|s| s.lr).collect(),
                steps,
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

    /// `[M, 1, 1]` KL weights on `device`.
    fn betas(&self, device: &Device) -> Tensor<3> {
        let betas: Vec<f32> = self.hyper.betas.iter().map(|&b| b as f32).collect();
        let m = betas.len();
        Tensor::<1>::from_floats(betas.as_slice(), device).reshape([m, 1, 1])
    }

    fn terms(&self, batch: &StackBatch) -> (StackTerms, Tensor<3>) {
        let betas = self.betas(&batch.images.device());
        let forward = self.net.forward(
            batch.images.clone(),
            batch.noise.clone(),
            batch.labels.clone(),
        );
        (
            StackTerms::new(&forward, batch.images.clone(), betas.clone()),
            betas,
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
        let (terms, betas) = self.terms(&batch);
        let output = StepOutput::new(&terms, betas, batch.epoch);
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
        let (mut ps, mut ms, mut vs) = (Vec::new(), Vec::new(), Vec::new());
        let params = net.params().into_iter();
        for ((p, m), v) in params.zip(moment_1.params()).zip(moment_2.params()) {
            let id = p.id;
            let (p, m, v) = (p.val(), m.val().inner(), v.val().inner());
            match grads.remove::<3>(id) {
                Some(g) => {
                    let (np, nm, nv) = optim::adam_step(p.inner(), g, m, v, &hyper.lrs, time);
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

    fn step(&self, batch: StackBatch) -> StepOutput {
        let (terms, betas) = self.terms(&batch);
        StepOutput::new(&terms, betas, batch.epoch)
    }
}

/// The Burn device for a spec, or an error naming the missing feature or hardware.
#[allow(deprecated)] // burn marks LibTorch deprecated; it is still our main backend (see notes).
pub fn device_for(spec: &RunSpec) -> Result<Device> {
    match (spec.backend, spec.device) {
        #[cfg(feature = "tch")]
        (BackendKind::Tch, DeviceKind::Cpu) => Ok(Device::libtorch()),
        #[cfg(feature = "tch")]
        (BackendKind::Tch, DeviceKind::Cuda) => {
            // Checked here, before any run directory exists; libtorch would fail only later.
            if !tch::Cuda::is_available() {
                bail!(
                    "device = \"cuda\": libtorch sees no CUDA GPU here (a CPU-only libtorch, or no GPU); \
                     use device = \"cpu\", or on a GPU machine install the CUDA libtorch with \
                     VAELAB_TORCH_FULL=1 ./scripts/setup"
                );
            }
            Ok(Device::libtorch_cuda(0))
        }
        #[cfg(feature = "flex")]
        (BackendKind::Flex, DeviceKind::Cpu) => Ok(Device::flex()),
        (BackendKind::Flex, DeviceKind::Cuda) => bail!("backend flex runs on the CPU only"),
        #[allow(unreachable_patterns)]
        (backend, _) => bail!(
            "backend {} is not compiled into this binary (cargo feature `{}`)",
            backend.as_str(),
            backend.as_str()
        ),
    }
}

/// How one member of a stack came out of the Learner.
pub struct Learned {
    /// Done, interrupted or failed (never busy or already done).
    pub outcome: Outcome,
    /// The network after the last epoch (only when `outcome` is done).
    pub net: Option<Autoencoder>,
    /// Stopped because a stack mate failed: train it again in a stack without that member.
    pub restack: bool,
}

/// A member of a stack handed to [`learn`]: its spec, run directory and rows on disk.
pub struct Member<'a> {
    /// Its parameters (all members share [`crate::config::RunSpec::stack_key`]).
    pub spec: &'a RunSpec,
    /// Its run directory.
    pub run: &'a RunDir,
    /// Its metrics rows up to `start_epoch`.
    pub rows: Vec<EpochRow>,
}

/// Trains `members` as one stack with Burn's Learner from epoch `start_epoch + 1` to the end,
/// recording each epoch into every member's run directory (metrics, checkpoint); the model
/// files are the caller's job. Returns one [`Learned`] per member, in order.
#[allow(clippy::too_many_arguments)]
pub fn learn(
    members: Vec<Member<'_>>,
    device: Device,
    train_set: Mnist,
    test_set: Mnist,
    start_epoch: usize,
    opts: &TrainOptions,
    progress: &Progress,
    labels: Vec<String>,
) -> Result<Vec<Learned>> {
    let first = members[0].spec;
    // The Learner gets an interrupter of this stack's own: members going non-finite stop it
    // only when none is left, while Ctrl-C (on the shared one) is forwarded to it.
    let stop = ForwardStop::spawn(opts.interrupter.clone());
    // Parameters must be created as tracked autodiff leaves for the Learner to train them.
    let device = device.autodiff();
    let specs: Vec<RunSpec> = members.iter().map(|m| m.spec.clone()).collect();
    let batches = train_set.len().div_ceil(first.batch_size);
    let trainee = StackTrainee::init(&specs, &device, start_epoch * batches);
    let variational = trainee.net.is_variational();
    let seeds: Vec<u64> = specs.iter().map(|s| s.seed).collect();
    let latent = if variational { first.latent } else { 0 };
    let loader = |data, feed, first_epoch| {
        Arc::new(StackLoader::new(
            data,
            first.batch_size,
            feed,
            seeds.clone(),
            Extras {
                noise: latent,
                labels: first.model.classes() > 0,
            },
            first_epoch,
            device.clone(),
        ))
    };
    let train_loader = loader(train_set, Feed::Train, start_epoch + 1);
    let test_loader = loader(test_set, Feed::Test, start_epoch + 1);

    let epochs = first.epochs;
    let printer = progress.clone();
    let overall = opts.sweep_bars.as_ref().map(|(_, bar)| bar.clone());
    let on_epoch = opts.on_epoch.clone();
    let tallies = Tallies::default();
    let sinks = members
        .iter()
        .map(|m| MemberSink {
            run_id: m.run.id.clone(),
            path: m.run.metrics_path(),
            rows: m.rows.clone(),
        })
        .collect();
    let (recorder, recorded) = recorder::EpochRecorder::new(
        sinks,
        epochs,
        variational,
        tallies.clone(),
        Box::new(move |i, train, test| {
            printer.println(epoch_line(&labels[i], epochs, train, test));
            if let Some(bar) = &overall {
                bar.inc(1);
            }
            if let Some(hook) = &on_epoch {
                hook();
            }
        }),
        stop.local.clone(),
    );
    let checkpointer = MemberCheckpointer::new(
        trainee.clone(),
        members.iter().map(|m| m.run.checkpoint_dir()).collect(),
        recorded.clone(),
    );

    let mut training = SupervisedTraining::new(&members[0].run.path, train_loader, test_loader)
        .metric_train_numeric(StackLoss::new(Phase::Train, tallies.clone()))
        .metric_valid_numeric(StackLoss::new(Phase::Test, tallies))
        .with_metric_logger(recorder)
        .renderer(Box::new(BarRenderer::new(progress.clone())))
        .with_interrupter(stop.local.clone())
        .with_application_logger(None)
        .with_custom_checkpointers(checkpointer, NoCheckpoint, NoCheckpoint)
        .with_checkpointing_strategy(KeepLastNCheckpoints::new(2))
        .num_epochs(epochs);
    if start_epoch > 0 {
        training = training.checkpoint(start_epoch);
    }
    // Burn's optimiser is never stepped (see `StackTrainee::optimize`); the Learner wants one.
    let unused = ModuleOptimizer::from(AdamConfig::new().build());
    let result = training.launch(Learner::new(trainee, unused, 1.0));

    let state = recorded.lock().unwrap();
    let stopped = result.interrupted.is_some() || opts.interrupter.should_stop();
    let restack = !opts.interrupter.should_stop()
        && stop.local.get_message().as_deref() == Some(recorder::RESTACK);
    let learned = state
        .members
        .iter()
        .enumerate()
        .map(|(i, log)| {
            let outcome = if let Some(error) = &log.error {
                Outcome::Failed {
                    reason: format!("cannot write metrics: {error}"),
                }
            } else if let Some(reason) = &log.failed {
                Outcome::Failed {
                    reason: reason.clone(),
                }
            } else if let Some(error) = &result.error {
                Outcome::Failed {
                    reason: error.to_string(),
                }
            } else if stopped {
                Outcome::Interrupted { epochs_done: 0 }
            } else {
                Outcome::Done
            };
            let net = (outcome == Outcome::Done).then(|| result.model.net.member(i));
            let restack = restack && matches!(outcome, Outcome::Interrupted { .. });
            Learned {
                outcome,
                net,
                restack,
            }
        })
        .collect();
    Ok(learned)
}

/// Writes `model.bpk` from the checkpoint of `epoch` (a run whose last epoch was checkpointed
/// but whose model file was never saved: killed or stopped in between).
pub fn restore_model(spec: &RunSpec, run: &RunDir, epoch: usize) -> Result<()> {
    let device = device_for(spec)?;
    let like = spec.model_config().init(&device);
    let checkpoint = MemberCheckpoint::load(&run.checkpoint_dir(), epoch, &like)?;
    save_model(checkpoint.net, run)
}

/// Saves the trained network as the run's `model.bpk` (atomically and durably).
pub fn save_model(net: Autoencoder, run: &RunDir) -> Result<()> {
    durable::write_with(&run.model_path(), |tmp| net.save_file(tmp))
}

/// A run-local [`Interrupter`] that also stops when the shared one does (polled every 50 ms by
/// a helper thread that ends when this is dropped).
struct ForwardStop {
    local: Interrupter,
    done: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ForwardStop {
    fn spawn(shared: Interrupter) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let local = Interrupter::new();
        let done = Arc::new(AtomicBool::new(false));
        let (to, finished) = (local.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            while !finished.load(Ordering::Relaxed) {
                if shared.should_stop() {
                    to.stop(shared.get_message().as_deref());
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        Self {
            local,
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for ForwardStop {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
