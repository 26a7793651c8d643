//! The Learner wiring, top to bottom: [`learn`] hands one stack's model
//! ([`super::trainee::StackTrainee`]), loaders, metrics, recorder and checkpointer to
//! `SupervisedTraining`. A solo run is a stack of one. The runs' life cycle around it is in
//! `run.rs`, which calls this.

use std::sync::Arc;

use anyhow::Result;
use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::prelude::*;
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::{Interrupter, Learner, SupervisedTraining};

use super::checkpoint::{MemberCheckpointer, NoCheckpoint};
use super::metrics::{StackLoss, Tallies};
use super::options::TrainOptions;
use super::outcome::{epoch_line, Outcome};
use super::progress::{BarRenderer, Progress};
use super::recorder::{self, MemberSink};
use super::trainee::{MemberCheckpoint, StackTrainee};
use crate::config::{device_for, RunSpec};
use crate::data::{Binarize, Extras, Mnist, Split, StackLoader};
use crate::model::Autoencoder;
use crate::store::{durable, read_kl_dims, EpochRow, RunDir};

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

/// One stack for [`learn`]: its members, where and on what it trains, where it resumes.
pub struct StackJob<'a> {
    /// The members, in stack order.
    pub members: Vec<Member<'a>>,
    /// The (non-autodiff) device of every member.
    pub device: Device,
    /// The training split.
    pub train_set: Mnist,
    /// The test split, evaluated after every epoch.
    pub test_set: Mnist,
    /// Epochs already on disk: training starts at `start_epoch + 1`.
    pub start_epoch: usize,
    /// Each member's label in the per-epoch log lines.
    pub labels: Vec<String>,
}

/// Trains a stack's members with Burn's Learner from epoch `start_epoch + 1` to the end,
/// recording each epoch into every member's run directory (metrics, checkpoint); the model
/// files are the caller's job. Returns one [`Learned`] per member, in order.
pub fn learn(job: StackJob<'_>, opts: &TrainOptions, progress: &Progress) -> Result<Vec<Learned>> {
    let StackJob {
        members,
        device,
        train_set,
        test_set,
        start_epoch,
        labels,
    } = job;
    let first = members[0].spec;
    // The Learner gets an interrupter of this stack's own: members going non-finite stop it
    // only when none is left, while Ctrl-C (on the shared one) is forwarded to it.
    let stop = ForwardStop::spawn(opts.interrupter.clone());
    // Parameters must be created as tracked autodiff leaves for the Learner to train them.
    let device = device.autodiff();
    let specs: Vec<RunSpec> = members.iter().map(|m| m.spec.clone()).collect();
    let batches = train_set.len().div_ceil(first.batch_size);
    let trainee = StackTrainee::init(&specs, &device, batches, start_epoch);
    let variational = trainee.net.is_variational();
    let seeds: Vec<u64> = specs.iter().map(|s| s.seed).collect();
    // K posterior draws per image: K·latent noise columns.
    let noise = if variational {
        first.latent * first.samples
    } else {
        0
    };
    let loader = |data, feed, first_epoch| {
        Arc::new(StackLoader::new(
            data,
            first.batch_size,
            feed,
            seeds.clone(),
            Extras {
                noise,
                labels: first.model.classes() > 0,
                binarize: first.binarize == Binarize::Dynamic,
            },
            first_epoch,
            device.clone(),
        ))
    };
    let train_loader = loader(train_set, Split::Train, start_epoch + 1);
    let test_loader = loader(test_set, Split::Test, start_epoch + 1);

    let epochs = first.epochs;
    let printer = progress.clone();
    let overall = opts.sweep_bars.as_ref().map(|(_, bar)| bar.clone());
    let on_epoch = opts.on_epoch.clone();
    let tallies = Tallies::default();
    let sinks = members
        .iter()
        .map(|m| -> Result<MemberSink> {
            // Rows of epochs after the checkpoint resumed from are trained again.
            let mut kl_dims = read_kl_dims(&m.run.kl_dims_path())?;
            kl_dims.retain(|r| r.epoch as usize <= start_epoch);
            Ok(MemberSink {
                run_id: m.run.id.clone(),
                path: m.run.metrics_path(),
                kl_dims_path: m.run.kl_dims_path(),
                rows: m.rows.clone(),
                kl_dims,
                spec: m.spec.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let (recorder, recorded) = recorder::EpochRecorder::new(
        sinks,
        epochs,
        batches,
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
        .metric_train_numeric(StackLoss::new(Split::Train, tallies.clone()))
        .metric_valid_numeric(StackLoss::new(Split::Test, tallies))
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
