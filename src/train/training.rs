//! The Learner wiring, top to bottom: the model burn-train trains ([`Trainee`]), its train and
//! inference steps, the device and optimiser, and [`learn`], which hands everything to
//! `SupervisedTraining` for one run. The run's life cycle around it is in [`super::run`].

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::{
    InferenceStep, Interrupter, Learner, SupervisedTraining, TrainOutput, TrainStep,
};

use super::checkpoint::AtomicCheckpointer;
use super::metrics::{StepOutput, Term, TermMetric};
use super::optim::Adam;
use super::progress::{BarRenderer, Progress};
use super::recorder;
use super::run::{epoch_line, Outcome, TrainOptions};
use crate::config::{BackendKind, DeviceKind, RunSpec};
use crate::data::{ImageBatch, Mnist, MnistLoader};
use crate::model::{Autoencoder, LossTerms};
use crate::store::{durable, EpochRow, RunDir};

/// The model the Learner trains: the autoencoder plus its KL weight.
#[derive(Module, Debug)]
pub struct Trainee {
    /// The autoencoder.
    pub net: Autoencoder,
    /// KL weight of the loss.
    pub beta: f64,
}

impl Trainee {
    fn terms(&self, images: Tensor<2>) -> LossTerms {
        let forward = self.net.forward(images.clone());
        LossTerms::new(&forward, images, self.beta)
    }
}

impl TrainStep for Trainee {
    type Input = ImageBatch;
    type Output = StepOutput;

    fn step(&self, batch: ImageBatch) -> TrainOutput<StepOutput> {
        crate::faults::point(crate::faults::names::STEP, "");
        let terms = self.terms(batch.images);
        let output = StepOutput::new(&terms, self.beta);
        // The article back-propagates the batch *sum* (MSELoss(reduction="sum") + β·KLD summed).
        let grads = terms.loss.sum().backward();
        TrainOutput::new(self, grads, output)
    }
}

impl InferenceStep for Trainee {
    type Input = ImageBatch;
    type Output = StepOutput;

    fn step(&self, batch: ImageBatch) -> StepOutput {
        StepOutput::new(&self.terms(batch.images), self.beta)
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

/// The run's optimiser: Adam with PyTorch's ε (1e-8), in place on libtorch.
pub fn optimizer(spec: &RunSpec) -> ModuleOptimizer {
    ModuleOptimizer::from(Adam::new(1e-8, spec.backend == BackendKind::Tch))
}

/// What the Learner left: how it stopped, and the trained network when it ran to the end.
pub struct Learned {
    /// Done, interrupted or failed (never busy or already done).
    pub outcome: Outcome,
    /// The network after the last epoch (only when `outcome` is done).
    pub net: Option<Autoencoder>,
}

/// Trains `spec` with Burn's Learner from epoch `start_epoch + 1` to the end, recording each
/// epoch into `run` (metrics, checkpoint); the model file is the caller's job.
#[allow(clippy::too_many_arguments)]
pub fn learn(
    spec: &RunSpec,
    run: &RunDir,
    device: Device,
    train_set: Mnist,
    test_set: Mnist,
    rows: Vec<EpochRow>,
    start_epoch: usize,
    opts: &TrainOptions,
    progress: &Progress,
) -> Result<Learned> {
    // The Learner gets an interrupter of this run's own: a non-finite loss stops this run only,
    // while Ctrl-C (on the shared one) is forwarded to it.
    let stop = ForwardStop::spawn(opts.interrupter.clone());
    // Parameters must be created as tracked autodiff leaves for the Learner to train them.
    let device = device.autodiff();
    device.seed(spec.seed);
    let trainee = Trainee {
        net: spec.model_config().init(&device),
        beta: spec.effective_beta(),
    };
    let train_loader = MnistLoader::new(
        train_set,
        spec.batch_size,
        Some(spec.seed),
        start_epoch + 1,
        device.clone(),
    );
    let test_loader = MnistLoader::new(test_set, spec.batch_size, None, 1, device.clone());

    let (label, epochs) = (progress.label().to_string(), spec.epochs);
    let printer = progress.clone();
    let overall = opts.sweep_bars.as_ref().map(|(_, bar)| bar.clone());
    let on_epoch = opts.on_epoch.clone();
    let (recorder, recorded) = recorder::EpochRecorder::new(
        &run.id,
        run.metrics_path(),
        trainee.net.is_variational(),
        rows,
        Box::new(move |train, test| {
            printer.println(epoch_line(&label, epochs, train, test));
            if let Some(bar) = &overall {
                bar.inc(1);
            }
            if let Some(hook) = &on_epoch {
                hook();
            }
        }),
        stop.local.clone(),
    );

    let ckpt = |name| AtomicCheckpointer::new(run.checkpoint_dir(), name);
    let mut training =
        SupervisedTraining::new(&run.path, Arc::new(train_loader), Arc::new(test_loader))
            .metrics((TermMetric::new(Term::Recon), TermMetric::new(Term::Loss)))
            .metric_train_numeric(TermMetric::new(Term::ArticleLoss))
            .with_metric_logger(recorder)
            .renderer(Box::new(BarRenderer::new(progress.clone())))
            .with_interrupter(stop.local.clone())
            .with_application_logger(None)
            .with_custom_checkpointers(ckpt("model"), ckpt("optim"), ckpt("scheduler"))
            .with_checkpointing_strategy(KeepLastNCheckpoints::new(2))
            .num_epochs(spec.epochs);
    if trainee.net.is_variational() {
        training = training.metrics((TermMetric::new(Term::Kl), TermMetric::new(Term::BetaKl)));
    }
    if start_epoch > 0 {
        training = training.checkpoint(start_epoch);
    }

    let result = training.launch(Learner::new(trainee, optimizer(spec), spec.lr));

    let state = recorded.lock().unwrap();
    if let Some(error) = &state.error {
        bail!("{}: cannot write metrics: {error}", run.id);
    }
    let failed = |reason: String| Learned {
        outcome: Outcome::Failed { reason },
        net: None,
    };
    if let Some((_, reason)) = &state.non_finite {
        return Ok(failed(reason.clone()));
    }
    if let Some(error) = result.error {
        return Ok(failed(error.to_string()));
    }
    if result.interrupted.is_some() || opts.interrupter.should_stop() {
        return Ok(Learned {
            outcome: Outcome::Interrupted { epochs_done: 0 },
            net: None,
        });
    }
    Ok(Learned {
        outcome: Outcome::Done,
        net: Some(result.model.net),
    })
}

/// Writes `model.bpk` from the checkpoint of `epoch` (a run whose last epoch was checkpointed
/// but whose model file was never saved: killed or stopped in between).
pub fn restore_model(spec: &RunSpec, run: &RunDir, epoch: usize) -> Result<()> {
    let device = device_for(spec)?;
    let trainee = Trainee {
        net: spec.model_config().init(&device),
        beta: spec.effective_beta(),
    };
    let path = run.checkpoint_dir().join(format!("model-{epoch}.bpk"));
    let record = ModuleRecord::load(&path)
        .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    let trainee = trainee
        .try_load_record(record)
        .with_context(|| format!("checkpoint {} does not fit the model", path.display()))?;
    save_model(trainee.net, run)
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
