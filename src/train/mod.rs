//! Training one run with Burn's `Learner` (burn-train): the entry point is [`train_run`].
//!
//! A run is resumable by construction: its id is a hash of its parameters and code, every
//! epoch ends with an atomic `metrics.parquet` rewrite and an atomic checkpoint, and the data
//! order and noise of epoch k depend only on (seed, k). Relaunching the same run after a crash
//! or Ctrl-C continues from the last complete epoch and reproduces the uninterrupted numbers.

mod checkpoint;
mod metrics;
mod optim;
mod progress;
mod recorder;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::{
    InferenceStep, Interrupter, Learner, SupervisedTraining, TrainOutput, TrainStep,
};
use indicatif::{MultiProgress, ProgressBar};

pub use checkpoint::AtomicCheckpointer;
pub use metrics::{StepOutput, Term, TermMetric};
pub use optim::Adam;
pub use progress::{stderr_is_terminal, BarRenderer, Progress};
pub use recorder::EpochRecorder;

use crate::config::{BackendKind, DeviceKind, RunSpec};
use crate::data::{self, ImageBatch, Mnist, MnistLoader};
use crate::model::{Autoencoder, LossTerms};
use crate::store::{
    build_info, now_rfc3339, read_metrics, EpochRow, Lock, LockHolder, Provenance, RunDir,
    RunState, RunStatus, Store,
};

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
        (BackendKind::Tch, DeviceKind::Cuda) => Ok(Device::libtorch_cuda(0)),
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

/// Sets up the process for training; call it first thing in `main`, before any thread exists,
/// since both settings are inherited or process-wide.
///
/// - Denormal floats flush to zero, as `torch.set_flush_denormal(True)` does. Adam's second
///   moment decays into the denormal range for weights whose inputs are nearly always zero
///   (MNIST's border pixels), and arithmetic on denormals takes a slow microcode path: without
///   this the article's optimiser step ran about 1.5× slower. Only magnitudes below 1.2e-38
///   change (to 0).
/// - glibc keeps freed memory instead of returning it to the kernel at once: every step frees
///   and reallocates the same few-hundred-kilobyte buffers, and with the default thresholds
///   each reallocation page-faults on fresh zeroed pages (a quarter of the bare loop's time).
pub fn configure_process() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: sets the FTZ (bit 15) and DAZ (bit 6) flags of MXCSR and nothing else.
    // std's MXCSR intrinsics are deprecated in favour of inline assembly; they still work.
    #[allow(deprecated)]
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        _mm_setcsr(_mm_getcsr() | 0x8040);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds (32 MiB is the largest mmap threshold
    // glibc accepts on 64-bit).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// The run's optimiser: Adam with PyTorch's ε (1e-8), in place on libtorch.
pub fn optimizer(spec: &RunSpec) -> ModuleOptimizer {
    ModuleOptimizer::from(Adam::new(1e-8, spec.backend == BackendKind::Tch))
}

/// How a call to [`train_run`] ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// All epochs trained now (possibly resuming an earlier launch).
    Done,
    /// Nothing to do: the run was already complete.
    AlreadyDone,
    /// Stopped on request after `epochs_done` complete epochs; relaunch to resume.
    Interrupted {
        /// Epochs safely on disk.
        epochs_done: usize,
    },
    /// Another live process is training this run now.
    Busy {
        /// Who.
        holder: LockHolder,
    },
    /// Stopped by a non-finite loss or an error.
    Failed {
        /// What went wrong.
        reason: String,
    },
}

/// The result of [`train_run`].
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The run id.
    pub id: String,
    /// The run directory.
    pub dir: PathBuf,
    /// How it ended.
    pub outcome: Outcome,
    /// All per-epoch rows on disk.
    pub rows: Vec<EpochRow>,
}

/// Where and how to train.
#[derive(Clone)]
pub struct TrainOptions {
    /// Results root.
    pub store: Store,
    /// MNIST directory.
    pub data_dir: PathBuf,
    /// No progress bar (per-epoch lines are still printed).
    pub quiet: bool,
    /// Stops training at the next batch boundary when triggered (Ctrl-C).
    pub interrupter: Interrupter,
    /// Bars of an enclosing sweep: the run's bar joins the display, each epoch ticks the
    /// overall bar.
    pub sweep_bars: Option<(MultiProgress, ProgressBar)>,
}

/// The last epoch whose metrics (both splits) and checkpoint files are all on disk.
fn resumable_epoch(run: &RunDir, rows: &[EpochRow]) -> usize {
    let ckpt = AtomicCheckpointer::new(run.checkpoint_dir(), "model");
    let mut epoch = rows.iter().map(|r| r.epoch as usize).max().unwrap_or(0);
    while epoch > 0 {
        let splits = rows.iter().filter(|r| r.epoch as usize == epoch).count();
        if splits == 2 && ckpt.has_all(epoch, &["model", "optim", "scheduler"]) {
            return epoch;
        }
        epoch -= 1;
    }
    0
}

/// Trains `spec` to completion (or resumes it), writing everything into its run directory.
pub fn train_run(spec: &RunSpec, opts: &TrainOptions) -> Result<RunReport> {
    spec.validate()?;
    let spec = spec.canonical();
    let id = spec.run_id(build_info::CODE_FINGERPRINT);
    let run = opts.store.run(&id);
    let report = |outcome, rows| RunReport {
        id: id.clone(),
        dir: run.path.clone(),
        outcome,
        rows,
    };

    let done = || -> Result<bool> {
        Ok(run
            .read_status()?
            .is_some_and(|s| s.state == RunState::Done))
    };
    // Checked before anything is loaded, so relaunching a finished sweep costs next to nothing.
    if done()? {
        return Ok(report(
            Outcome::AlreadyDone,
            read_metrics(&run.metrics_path())?,
        ));
    }

    // Everything that can fail on bad input fails before the run directory exists.
    let device = device_for(&spec)?;
    let train_set = Mnist::load(&opts.data_dir, data::Split::Train, spec.limit)?;
    let test_set = Mnist::load(&opts.data_dir, data::Split::Test, spec.limit)?;

    run.create(&spec)?;
    let _lock = match Lock::acquire(&run.lock_path())? {
        Ok(lock) => lock,
        Err(holder) => return Ok(report(Outcome::Busy { holder }, Vec::new())),
    };
    // Another process may have finished the run between the first check and the lock.
    if done()? {
        return Ok(report(
            Outcome::AlreadyDone,
            read_metrics(&run.metrics_path())?,
        ));
    }
    let mut rows = read_metrics(&run.metrics_path())?;
    let start_epoch = resumable_epoch(&run, &rows);
    rows.retain(|r| r.epoch as usize <= start_epoch);
    let mut provenance = match Provenance::read(&run) {
        Ok(p) if start_epoch > 0 => p,
        _ => Provenance::capture(&spec),
    };
    provenance.epoch_seconds.truncate(start_epoch);
    provenance.write(&run)?;
    run.write_status(&RunStatus {
        state: RunState::Running,
        epochs_done: start_epoch,
        message: None,
    })?;

    let multi = opts.sweep_bars.as_ref().map(|(m, _)| m);
    let progress = Progress::new(&id, opts.quiet, multi);
    if start_epoch > 0 {
        progress.println(format!(
            "{id}: resuming after epoch {start_epoch}/{}",
            spec.epochs
        ));
    }

    let outcome = if start_epoch >= spec.epochs {
        Outcome::Done
    } else {
        learn(
            &spec,
            &run,
            device,
            train_set,
            test_set,
            rows,
            start_epoch,
            opts,
            &progress,
        )?
    };
    progress.finish();

    let rows = read_metrics(&run.metrics_path())?;
    let epochs_done = resumable_epoch(&run, &rows);
    provenance.epoch_seconds = epoch_seconds(&rows);
    let (state, message) = match &outcome {
        Outcome::Done | Outcome::AlreadyDone => (RunState::Done, None),
        Outcome::Interrupted { .. } => (RunState::Interrupted, Some("stopped on request".into())),
        Outcome::Failed { reason } => (RunState::Failed, Some(reason.clone())),
        Outcome::Busy { .. } => unreachable!("a busy run returns before training"),
    };
    if state == RunState::Done {
        provenance.finished = now_rfc3339();
    }
    provenance.write(&run)?;
    run.write_status(&RunStatus {
        state,
        epochs_done,
        message,
    })?;
    let outcome = match outcome {
        Outcome::Interrupted { .. } => Outcome::Interrupted { epochs_done },
        other => other,
    };
    Ok(report(outcome, rows))
}

fn epoch_seconds(rows: &[EpochRow]) -> Vec<f64> {
    let last = rows.iter().map(|r| r.epoch).max().unwrap_or(0);
    (1..=last)
        .map(|e| {
            rows.iter()
                .filter(|r| r.epoch == e)
                .map(|r| r.seconds)
                .sum()
        })
        .collect()
}

/// One per-epoch log line.
pub fn epoch_line(label: &str, epochs: usize, train: &EpochRow, test: &EpochRow) -> String {
    let kl = |r: &EpochRow| r.kl.map_or("-".to_string(), |k| format!("{k:.3}"));
    format!(
        "{label} epoch {:>3}/{epochs}  train recon {:>8.3} kl {:>7} loss {:>8.3}  | test recon {:>8.3} kl {:>7} loss {:>8.3}  | article {:>9.3}  {:.1}s",
        train.epoch,
        train.recon,
        kl(train),
        train.loss,
        test.recon,
        kl(test),
        test.loss,
        train.article_loss.unwrap_or(f64::NAN),
        train.seconds + test.seconds,
    )
}

#[allow(clippy::too_many_arguments)]
fn learn(
    spec: &RunSpec,
    run: &RunDir,
    device: Device,
    train_set: Mnist,
    test_set: Mnist,
    rows: Vec<EpochRow>,
    start_epoch: usize,
    opts: &TrainOptions,
    progress: &Progress,
) -> Result<Outcome> {
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
    if let Some((_, reason)) = &state.non_finite {
        return Ok(Outcome::Failed {
            reason: reason.clone(),
        });
    }
    if let Some(error) = result.error {
        return Ok(Outcome::Failed {
            reason: error.to_string(),
        });
    }
    if result.interrupted.is_some() || opts.interrupter.should_stop() {
        return Ok(Outcome::Interrupted { epochs_done: 0 });
    }
    drop(state);
    result
        .model
        .net
        .save_file(run.file("model.bpk"))
        .with_context(|| format!("cannot save {}", run.file("model.bpk").display()))?;
    Ok(Outcome::Done)
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

/// The device unit tests use: libtorch when compiled in, else flex.
#[cfg(test)]
#[allow(deprecated)]
pub(crate) fn test_device() -> Device {
    #[cfg(feature = "tch")]
    return Device::libtorch();
    #[cfg(all(not(feature = "tch"), feature = "flex"))]
    return Device::flex();
}
