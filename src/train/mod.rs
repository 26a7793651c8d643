//! Training one run with Burn's `Learner` (burn-train): the entry point is [`train_run`].
//!
//! A run is resumable by construction: its id is a hash of its parameters and code, every
//! epoch ends with an atomic `metrics.parquet` rewrite and an atomic checkpoint, and the data
//! order and noise of epoch k depend only on (seed, k). Relaunching the same run after a crash
//! or Ctrl-C continues from the last complete epoch and reproduces the uninterrupted numbers.
//!
//! [`run`] is the run's life cycle (lock, status, provenance, resume); [`training`] is the
//! Learner wiring (`SupervisedTraining`, top to bottom); [`trainee`] the model it trains (the
//! stacked networks, their steps and the fused Adam); [`checkpoint`] the per-member files;
//! [`options`] and [`outcome`] what callers pass in and get back. The imports run one way
//! (run → training → checkpoint → trainee → optim, metrics; options and outcome import none).

mod checkpoint;
mod metrics;
mod optim;
pub mod options;
pub mod outcome;
mod progress;
mod recorder;
pub mod run;
pub mod trainee;
pub mod training;

pub use checkpoint::AtomicCheckpointer;
pub use metrics::{StackLoss, StepOutput};
pub use optim::adam_step;
pub use options::{EpochHook, Throttle, TrainOptions};
pub use outcome::{epoch_line, Outcome, RunReport};
pub use progress::{stderr_is_terminal, BarRenderer, Progress};
pub use recorder::EpochRecorder;
pub use run::{epochs_on_disk, train_run, train_stack};
pub use trainee::{MemberCheckpoint, StackTrainee};

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
