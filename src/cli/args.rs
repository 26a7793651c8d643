//! The command line's grammar: every command, flag, default and help text.
//!
//! This file is compiled twice: into the library (as `cli::args`) and into the `vaelab`
//! executable, which includes it by path to answer `--help`, `--version` and usage errors
//! without loading libtorch (see `src/main.rs`). So it may use `std`, `clap` and the two
//! modules the launcher includes too (`crate::defaults`, `crate::tracking`) only.

use std::path::PathBuf;

// The defaults live with the run parameters (`config::defaults`); `crate::defaults` is that
// module in the library and the same file included by path in the launcher (`src/main.rs`).
use crate::defaults;

use clap::{Args, Parser, Subcommand};

/// vaelab: autoencoder experiments on MNIST with Burn, Parquet metrics and plots.
#[derive(Parser, Debug)]
#[command(
    name = "vaelab",
    version,
    about,
    long_about = None,
    after_help = "Exit codes: 0 done, 1 an error or a failed run, 2 bad usage, 3 trained but a \
                  tracker (--mlflow, --tensorboard) is incomplete, 75 busy, 130 interrupted."
)]
pub struct Cli {
    /// Results directory (run folders go under <RESULTS>/runs/).
    #[arg(long, global = true, env = "VAELAB_RESULTS", default_value = "results")]
    pub results: PathBuf,
    /// Directory holding the four MNIST IDX files [default: ~/.cache/vaelab/mnist, where
    /// ./scripts/setup installs them].
    #[arg(long, global = true, env = "VAELAB_MNIST")]
    pub data: Option<PathBuf>,
    /// Plain per-epoch lines, no progress bar.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Which build this is: the code's content hash and the cargo features that change behaviour.
/// The executable and `libvaelab.so` compare theirs, because a cargo build with other features
/// rewrites the one `deps/libvaelab.so` (a cdylib's name carries no hash) and would otherwise
/// pair this executable with another build's library.
pub fn build_id() -> String {
    format!(
        "{} tch={} flex={} failpoints={}",
        env!("VAELAB_CODE_FINGERPRINT"),
        cfg!(feature = "tch"),
        cfg!(feature = "flex"),
        cfg!(feature = "failpoints")
    )
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train one run (or resume it, or report it if it is already complete).
    ///
    /// The run id is a hash of every parameter and of the code that can change results (src/,
    /// Cargo.toml, Cargo.lock, build.rs; not docs or experiments), so the same command with
    /// the same code finds the same run: relaunching after Ctrl-C or a crash resumes it.
    Train(TrainArgs),
    /// Expand a TOML experiment matrix and train every run not done yet (resumable).
    ///
    /// The expansion is frozen in <RESULTS>/sweeps/<NAME>/manifest.toml. Relaunching skips
    /// finished runs and resumes interrupted ones; at the end a summary table is printed,
    /// summary.parquet and epochs.parquet are written beside the manifest, the plots are drawn,
    /// and the HTML report (report/index.html, rewritten after every epoch) is finished.
    Sweep(SweepArgs),
    /// Reproduce published loss tables: train the matrix's runs (or reuse finished ones), then
    /// print and write <RESULTS>/sweeps/<NAME>/repro.md with, per table, epoch | article | ours
    /// | difference | difference % and a verdict against the matrix's [repro] tolerance, the
    /// identification sweep's ranking, and the article's figures for these runs.
    Repro(ReproArgs),
    /// Train entry INDEX (0-based) of a frozen sweep manifest: one self-contained job, e.g. one
    /// task of a Slurm array (`--array=0-N` with INDEX=$SLURM_ARRAY_TASK_ID).
    Entry(EntryArgs),
    /// Render a sweep's or a run's pictures (PNG, charts also as SVG).
    ///
    /// A sweep gets, in <RESULTS>/sweeps/<NAME>/plots/: tradeoff (final test reconstruction
    /// error against KL, one line per variant, one point per β, mean ± sd over seeds, AE as
    /// dashed references), curves (per-epoch recon, KL and loss of every run, coloured by β),
    /// reconstructions and samples (side-by-side sheets across β). Every trained run also gets,
    /// in <RESULTS>/runs/<ID>/plots/: curves, reconstructions, and for a VAE samples, a latent
    /// traversal, and with a 2-D latent the latent scatter and the decoded manifold.
    Plot(PlotArgs),
    /// Evaluate trained runs on their test split: ELBO, IWAE bound, active units, judged samples.
    ///
    /// Test ELBO and the IWAE bound (k = 1, 10, 100, 1000 or --k, with standard errors) in nats per
    /// image (the run's decoder likelihood, its constant included: the Gaussian's of variance
    /// 1/2, or the Bernoulli's on binarised images), active units and per-dimension
    /// KL; for a VAE or CVAE, samples judged by a classifier (per-class accuracy of a CVAE;
    /// class histogram and entropy of prior samples).
    ///
    /// Writes <RESULTS>/runs/<ID>/eval.parquet (tidy: run × metric × k / dim / class); runs
    /// already evaluated are skipped, so an interrupted `vaelab eval` resumes. `vaelab sweep` and
    /// `vaelab train` evaluate each run when it finishes; for a sweep, summary.parquet and the
    /// report are rewritten with the new numbers.
    Eval(EvalArgs),
    /// Draw samples from a trained VAE or CVAE as a PNG sheet.
    ///
    /// A CVAE draws --digit (a class 0-9; Fashion-MNIST's classes by their label) n times, or
    /// without --digit a 10 × n sheet, one row per class (the same z in every row); a VAE draws
    /// from its prior. Prints the file written (default <RESULTS>/runs/<ID>/plots/sample-*.png).
    Sample(SampleArgs),
    /// Train (once; cached in <cache>/judge/<DATASET>/ with its sha256) and show the classifier
    /// that judges generated images; `vaelab eval` trains it on first use otherwise.
    Judge(JudgeArgs),
    /// Write the HTML report of sweeps or runs: one self-contained page each, to open in a
    /// browser (no server, no network).
    ///
    /// A sweep's page, <RESULTS>/sweeps/<NAME>/report/index.html, has its header (matrix,
    /// commits, state counts, ETA while running), the trade-off chart and curves, the digit
    /// sheets, the article comparison when there is one, and a run table to sort (click a
    /// column) and filter, linking each run's own page (<RESULTS>/runs/<ID>/report/index.html:
    /// config, provenance, curves, figures). `vaelab sweep` rewrites its page after every epoch;
    /// while the sweep runs the page reloads itself.
    Report(ReportArgs),
    /// List runs, newest first: id, sweeps, commit, the model and every parameter that varies
    /// among them, epochs trained, state, final test loss.
    Ls(LsArgs),
    /// Show one run: resolved config, provenance, per-epoch table and its evaluation.
    Show(ShowArgs),
    /// Compare two sets of runs: git revisions (HEAD~1, a tag, a branch), sweep names or run ids.
    ///
    /// Runs are paired by their parameters. Shows the commits between A and B, files changed,
    /// Cargo.lock dependency changes, unpaired runs and how they differ from the closest run,
    /// and per pair the final test recon / KL / loss with delta, delta % and a verdict (noise =
    /// 2 seed standard deviations where seeds exist, else --tolerance). Exit code 0 when no
    /// metric changed beyond noise, 1 otherwise (a CI gate).
    Diff(DiffArgs),
    /// Show queued / running / done / failed / interrupted runs of a sweep (or of all sweeps),
    /// each run's epoch and last test loss, and an ETA from measured epoch times; for a sweep
    /// submitted to Slurm also each task's place in the queue (squeue) and its log.
    Status(StatusArgs),
    /// Cancel a sweep's Slurm jobs (scancel); finished runs stay, a running task stops at its
    /// next batch boundary and can be resumed by submitting the sweep again.
    Cancel(CancelArgs),
    /// Export runs to a tracker: TensorBoard event files under DIR (scalars per epoch, the
    /// evaluation, the HParams plugin's sessions; one directory per run), or an MLflow server
    /// at URI (an experiment per sweep, a run per run: params, tags, per-epoch metrics, status).
    ///
    /// Idempotent: exporting again (after more epochs, a resume or an evaluation) adds only what
    /// the tracker lacks. Open with `tensorboard --logdir DIR` (`wandb sync --sync-tensorboard
    /// DIR` and `aim convert tensorboard --logdir DIR` read the same files) or MLflow's UI.
    Export(ExportArgs),
}

/// The arguments of `vaelab export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The tracker.
    #[arg(value_enum)]
    pub tracker: TrackerArg,
    /// Where to: a directory (tensorboard) or a tracking URI, http://HOST:PORT (mlflow).
    #[arg(value_name = "DIR|URI")]
    pub destination: String,
    /// Sweep names, run ids or unique prefixes of run ids.
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// The MLflow experiment [default: each sweep's name; `vaelab` for runs named alone].
    #[arg(long)]
    pub experiment: Option<String>,
}

/// `vaelab export` trackers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TrackerArg {
    /// TensorBoard event files.
    Tensorboard,
    /// An MLflow tracking server.
    Mlflow,
}

/// The arguments of `vaelab sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The matrix, e.g. experiments/quick.toml.
    pub file: PathBuf,
    /// Print the expanded runs and their count; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Runs trained at once, each in its own process with its share of the cores.
    #[arg(long, short, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Train runs of one shape (kind, widths, latent, batch size, epochs, limit, backend,
    /// device, likelihood, binarize, activation, layout, objective, samples, Adam constants,
    /// whether the KL term has free bits or a capacity) together as one stacked model; members
    /// may differ in β, seed, learning rate and its schedule, and KL schedule: `auto` (up to 32
    /// members on a CPU while the largest layer's stacked weights stay within 25.7 MB; 64 on a
    /// GPU; either way as memory allows; printed by --dry-run),
    /// `off` (every run alone), or at most N per stack. A member's numbers are its run's alone (bit for bit at the article's shape with
    /// single-threaded kernels, OMP_NUM_THREADS=1, else to float rounding; README, "Stacked
    /// sweeps");
    /// --jobs runs that many stacks at once; on Slurm each array task trains one stack.
    #[arg(long, default_value = defaults::STACK, value_name = "auto|off|N")]
    pub stack: defaults::StackPolicy,
    /// Where the runs train: here, or as one Slurm job array (submitted with sbatch; the
    /// command returns at once; `vaelab status NAME` watches it, `vaelab cancel NAME` stops
    /// it). Relaunching submits only the runs not done.
    #[arg(long, value_enum, default_value = "local")]
    pub executor: ExecutorArg,
    /// Slurm settings (defaults: the matrix's [slurm] table, then the cluster's).
    #[command(flatten)]
    pub slurm: SlurmArgs,
    /// Evaluate each run when it finishes: on (IWAE k = 1, 10, 100, 1000), off (`vaelab eval`
    /// later), or k=1,10,100 (default: the matrix's [eval] k, else on).
    #[arg(long, value_name = "on|off|k=LIST")]
    pub eval: Option<defaults::EvalPolicy>,
    /// Trackers (defaults: the matrix's [tracking] table).
    #[command(flatten)]
    pub tracking: TrackingArgs,
}

/// Live tracking flags of `train`, `sweep` and `entry`. A tracker that could not be given
/// everything by the end is a warning (one line) and exit code 3 once training is otherwise
/// done; `vaelab export` sends the rest.
#[derive(Args, Debug, Default, Clone)]
pub struct TrackingArgs {
    /// Write TensorBoard logs live, after every epoch (at most every 2 s, and at the end), one
    /// directory per run under DIR (as `vaelab export tensorboard DIR` does).
    #[arg(long, value_name = "DIR", help_heading = "Tracking")]
    pub tensorboard: Option<PathBuf>,
    /// Send the runs live to the MLflow server at URI (http://HOST:PORT), from a background
    /// thread, so a slow or down server never slows training (a warning; the next export sends
    /// what it missed).
    #[arg(long, value_name = "URI", value_parser = mlflow_uri, help_heading = "Tracking")]
    pub mlflow: Option<String>,
    /// The MLflow experiment [default: the sweep's name; `vaelab` for `train`].
    #[arg(
        long,
        value_name = "NAME",
        requires = "mlflow",
        help_heading = "Tracking"
    )]
    pub experiment: Option<String>,
}

impl TrackingArgs {
    /// The flags as tracking settings (to override a matrix's `[tracking]`).
    pub fn settings(&self) -> crate::tracking::Tracking {
        crate::tracking::Tracking {
            tensorboard: self.tensorboard.clone(),
            mlflow: self.mlflow.clone(),
            experiment: self.experiment.clone(),
        }
    }
}

fn mlflow_uri(s: &str) -> Result<String, String> {
    crate::tracking::mlflow_uri(s).map_err(|allowed| format!("allowed: {allowed}"))
}

/// The arguments of `vaelab repro`.
#[derive(Args, Debug)]
pub struct ReproArgs {
    /// A matrix with a [repro] table, e.g. experiments/article.toml.
    pub file: PathBuf,
    /// Train seeds 0..N of every run (mean ± sd per epoch) instead of the matrix's seeds.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub seeds: Option<u64>,
    /// Override the epochs of every run (e.g. 2 for a quick check).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub epochs: Option<u32>,
    /// Train and test on the first N images of each split only.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// Add a column with plain PyTorch on the same setup (scripts/reference/article.py; needs
    /// ./scripts/setup-reference).
    #[arg(long)]
    pub with_reference: bool,
    /// Runs trained at once.
    #[arg(long, short, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Stack runs of one shape as `vaelab sweep --stack` does.
    #[arg(long, default_value = defaults::STACK, value_name = "auto|off|N")]
    pub stack: defaults::StackPolicy,
}

/// The arguments of `vaelab entry`.
#[derive(Args, Debug)]
pub struct EntryArgs {
    /// A manifest.toml under <RESULTS>/sweeps/<NAME>/.
    pub manifest: PathBuf,
    /// Which entry (a stack of runs, or one run).
    pub index: usize,
    /// Evaluate each run when it finishes (as `vaelab sweep --eval`).
    #[arg(long, value_name = "on|off|k=LIST", default_value = defaults::EVAL)]
    pub eval: defaults::EvalPolicy,
    /// Trackers (as `vaelab sweep`'s, which a Slurm sweep passes on to its tasks).
    #[command(flatten)]
    pub tracking: TrackingArgs,
}

/// The arguments of `vaelab plot`.
#[derive(Args, Debug)]
pub struct PlotArgs {
    /// Sweep names, run ids or unique prefixes of run ids.
    #[arg(required_unless_present = "diff")]
    pub targets: Vec<String>,
    /// Overlay the trade-off curves of two sides of a diff (git revisions, sweeps or runs)
    /// into <RESULTS>/diffs/<A>..<B>/.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub diff: Option<Vec<String>>,
}

/// The arguments of `vaelab eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Sweep names, run ids or unique prefixes of run ids.
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// Importance samples of the IWAE bounds, comma-separated, each 1 to 5000 (Burda et al.'s
    /// NLL is k = 5000; its cost grows with the largest). A run evaluated at other k is
    /// evaluated again at both, from one set of draws.
    #[arg(long, value_delimiter = ',', default_values_t = defaults::EVAL_K,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
              .range(1..=defaults::MAX_SAMPLES as u64))]
    pub k: Vec<usize>,
}

/// The arguments of `vaelab sample`.
#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Run id or unique prefix.
    pub run: String,
    /// The class to draw (CVAE only).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    pub digit: Option<u8>,
    /// Samples (per class without --digit).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub n: u16,
    /// Seed of the prior draws.
    #[arg(long, default_value_t = defaults::SAMPLE_SEED)]
    pub seed: u64,
    /// Output PNG file.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// The arguments of `vaelab judge`.
#[derive(Args, Debug)]
pub struct JudgeArgs {
    /// Data set.
    #[arg(long, value_enum, default_value = defaults::DATASET)]
    pub dataset: DatasetArg,
}

/// The arguments of `vaelab report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Sweep names, run ids or unique prefixes of run ids.
    #[arg(required = true)]
    pub targets: Vec<String>,
}

/// The arguments of `vaelab ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only the runs of this sweep.
    #[arg(long)]
    pub sweep: Option<String>,
    /// Only runs built from this git revision (anything `git rev-parse` accepts).
    #[arg(long)]
    pub commit: Option<String>,
    /// Only runs whose parameter KEY equals VALUE (repeatable), e.g. --where beta=3.
    #[arg(long = "where", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
}

/// The arguments of `vaelab show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Run id or unique prefix.
    pub run: String,
}

/// The arguments of `vaelab diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// Side A.
    pub a: String,
    /// Side B.
    pub b: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: DiffFormat,
    /// Hide pairs whose metrics are all within noise.
    #[arg(long)]
    pub only_changed: bool,
    /// Relative change counted as noise when a pair has no seed spread.
    #[arg(long, default_value_t = 0.01)]
    pub tolerance: f64,
}

/// The arguments of `vaelab status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Sweep name (a folder under <RESULTS>/sweeps/); all sweeps when absent.
    pub sweep: Option<String>,
}

/// The arguments of `vaelab cancel`.
#[derive(Args, Debug)]
pub struct CancelArgs {
    /// Sweep name.
    pub sweep: String,
}

/// `vaelab sweep --executor` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorArg {
    /// This machine (`--jobs` processes at once).
    Local,
    /// A Slurm job array.
    Slurm,
}

/// `vaelab sweep --executor slurm` settings; each overrides the matrix's `[slurm]` table.
#[derive(Args, Debug, Clone, Default)]
pub struct SlurmArgs {
    /// Slurm partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// Time limit per task (HH:MM:SS, D-HH:MM, or minutes); 90 s before it a task checkpoints
    /// and requeues itself.
    #[arg(long)]
    pub time: Option<String>,
    /// CPUs per task (also its OpenMP threads).
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// Memory per task, as sbatch takes it (e.g. 4G).
    #[arg(long)]
    pub mem: Option<String>,
    /// Tasks running at once.
    #[arg(long)]
    pub max_parallel: Option<u32>,
    /// A further sbatch argument (repeatable), e.g. --sbatch-arg=--account=lab.
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
}

/// `vaelab train` parameters; defaults are our reconstruction of the article's setup.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Model: plain autoencoder, VAE or conditional VAE (the label is a second input).
    #[arg(long, value_enum, default_value = defaults::MODEL)]
    pub model: ModelArg,
    /// Data set: MNIST digits or Fashion-MNIST (same format, 10 classes of clothing).
    #[arg(long, value_enum, default_value = defaults::DATASET)]
    pub dataset: DatasetArg,
    /// KL weight β in loss = recon + β·KL (VAE and CVAE; 0 = the article's first table).
    #[arg(long, default_value_t = defaults::BETA, allow_negative_numbers = true)]
    pub beta: f64,
    /// Latent size.
    #[arg(long, default_value_t = defaults::LATENT)]
    pub latent: usize,
    /// Encoder hidden widths, comma-separated (the decoder mirrors them).
    #[arg(long, value_delimiter = ',', default_values_t = defaults::HIDDEN)]
    pub hidden: Vec<usize>,
    /// Epochs.
    #[arg(long, default_value_t = defaults::EPOCHS)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = defaults::BATCH_SIZE)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = defaults::LR, allow_negative_numbers = true)]
    pub lr: f64,
    /// Seed for weight init, shuffling and sampling noise.
    #[arg(long, default_value_t = defaults::SEED)]
    pub seed: u64,
    /// Train and test on the first N images of each split only.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Backend: libtorch (tch) or Burn's pure-Rust CPU backend (flex).
    #[arg(long, value_enum, default_value = defaults::BACKEND)]
    pub backend: BackendArg,
    /// Device (cuda needs the tch backend and a GPU).
    #[arg(long, value_enum, default_value = defaults::DEVICE)]
    pub device: DeviceArg,
    /// The decoder's likelihood: the article's summed squared error (a Gaussian with variance
    /// 1/2), binary cross-entropy from logits (pytorch/examples, Burda et al.), or the
    /// continuous Bernoulli (Loaiza-Ganem & Cunningham 2019).
    #[arg(long, value_enum, default_value = defaults::LIKELIHOOD)]
    pub likelihood: LikelihoodArg,
    /// Binarise the pixels: no, a fresh Bernoulli draw per training epoch (the test split drawn
    /// once, fixed seed), or cut at 0.5.
    #[arg(long, value_enum, default_value = defaults::BINARIZE)]
    pub binarize: BinarizeArg,
    /// The hidden layers' nonlinearity.
    #[arg(long, value_enum, default_value = defaults::ACTIVATION)]
    pub activation: ActivationArg,
    /// Where a VAE's posterior heads sit: on a linear code of the latent size (the article), or
    /// directly on the last hidden layer (pytorch/examples, Burda et al.).
    #[arg(long, value_enum, default_value = defaults::LAYOUT)]
    pub layout: LayoutArg,
    /// The learning rate over the epochs: constant; exponential (lr · decay^(epoch−1)); step
    /// (× decay every --lr-step epochs); burda (Burda et al. 2016: 3^i passes at lr·10^(−i/7),
    /// i = 0..7, 3280 passes in all; fewer epochs train a prefix of it).
    #[arg(long, value_enum, default_value = defaults::LR_SCHEDULE)]
    pub lr_schedule: LrScheduleArg,
    /// The exponential and step schedules' factor.
    #[arg(long, default_value_t = defaults::LR_DECAY, allow_negative_numbers = true)]
    pub lr_decay: f64,
    /// Epochs between the step schedule's steps.
    #[arg(long, default_value_t = defaults::LR_STEP)]
    pub lr_step: usize,
    /// The bound a VAE maximises: the ELBO (Kingma & Welling 2014) or the importance-weighted
    /// bound of --samples draws (Burda et al. 2016; needs --beta 1).
    #[arg(long, value_enum, default_value = defaults::OBJECTIVE)]
    pub objective: ObjectiveArg,
    /// Posterior draws per image, K (1 to 5000): the ELBO averages them, IWAE weights them.
    #[arg(long, default_value_t = defaults::SAMPLES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
              .range(1..=defaults::MAX_SAMPLES as u64))]
    pub samples: usize,
    /// Adam's ε.
    #[arg(long, default_value_t = defaults::ADAM_EPS)]
    pub adam_eps: f64,
    /// Evaluate the run when it finishes: on (IWAE k = 1, 10, 100, 1000), off (`vaelab eval`
    /// later), or k=1,10,100.
    #[arg(long, value_name = "on|off|k=LIST", default_value = defaults::EVAL)]
    pub eval: defaults::EvalPolicy,
    /// Adam's β₁ and β₂ (two values: --adam-betas 0.9 0.999).
    #[arg(long, num_args = 2, value_names = ["B1", "B2"], action = clap::ArgAction::Set,
          default_values_t = defaults::ADAM_BETAS)]
    pub adam_betas: Vec<f64>,
    /// KL warm-up: the KL weight rises linearly from 0 to β over this many epochs, step by step
    /// (Bowman et al. 2016; 0 = none).
    #[arg(long, default_value_t = defaults::KL_WARMUP, help_heading = "KL control")]
    pub kl_warmup: usize,
    /// Cyclical KL annealing: this many cycles over the run, each rising from 0 to β over its
    /// first --kl-cycle-ramp share, then β (Fu et al. 2019; 0 = none).
    #[arg(long, default_value_t = defaults::KL_CYCLES, help_heading = "KL control")]
    pub kl_cycles: usize,
    /// The share of each KL cycle spent rising, in (0, 1].
    #[arg(long, default_value_t = defaults::KL_CYCLE_RAMP, allow_negative_numbers = true,
          help_heading = "KL control")]
    pub kl_cycle_ramp: f64,
    /// Free bits λ, nats per latent dimension: no dimension's batch-mean KL is pushed below it
    /// (Kingma et al. 2016; 0 = none).
    #[arg(long, default_value_t = defaults::FREE_BITS, allow_negative_numbers = true,
          help_heading = "KL control")]
    pub free_bits: f64,
    /// Capacity-controlled β-VAE: loss = recon + β·|KL − C|, C rising linearly from 0 to this
    /// many nats over --capacity-epochs (Burgess et al. 2018, β as their γ; 0 = none).
    #[arg(long, default_value_t = defaults::CAPACITY, allow_negative_numbers = true,
          help_heading = "KL control")]
    pub capacity: f64,
    /// Epochs over which C rises to --capacity (0: C at its maximum from the start).
    #[arg(long, default_value_t = defaults::CAPACITY_EPOCHS, help_heading = "KL control")]
    pub capacity_epochs: usize,
    /// Trackers.
    #[command(flatten)]
    pub tracking: TrackingArgs,
}

/// `--objective` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ObjectiveArg {
    /// The evidence lower bound.
    Elbo,
    /// The importance-weighted bound.
    Iwae,
}

/// `--lr-schedule` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LrScheduleArg {
    /// The same learning rate every epoch.
    Constant,
    /// lr · decay^(epoch − 1).
    Exponential,
    /// × decay every --lr-step epochs.
    Step,
    /// Burda et al.'s 3280-pass schedule.
    Burda,
}

/// `--likelihood` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LikelihoodArg {
    /// Summed squared error: a Gaussian decoder with variance 1/2.
    Gaussian,
    /// Binary cross-entropy from logits.
    Bernoulli,
    /// The continuous Bernoulli, normalised on [0, 1].
    ContinuousBernoulli,
}

/// `--binarize` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum BinarizeArg {
    /// The grey levels as they are.
    None,
    /// Bernoulli(pixel) drawn afresh every training epoch.
    Dynamic,
    /// 1 above 0.5, else 0.
    Threshold,
}

/// `--activation` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ActivationArg {
    /// max(0, x).
    Relu,
    /// tanh(x).
    Tanh,
}

/// `--layout` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LayoutArg {
    /// A linear code of the latent size, then latent → latent heads.
    Article,
    /// The heads on the last hidden layer.
    Heads,
}

/// `vaelab diff --format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    /// Fixed-width text.
    Table,
    /// Markdown.
    Md,
    /// JSON (the same content, machine-readable).
    Json,
    /// One self-contained HTML page.
    Html,
}

/// `--model` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ModelArg {
    /// Plain autoencoder.
    Ae,
    /// Variational autoencoder.
    Vae,
    /// Conditional VAE (one-hot label into encoder and decoder).
    Cvae,
}

/// `--dataset` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DatasetArg {
    /// MNIST handwritten digits.
    Mnist,
    /// Fashion-MNIST.
    FashionMnist,
}

/// `--backend` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum BackendArg {
    /// libtorch through burn-tch.
    Tch,
    /// Burn's pure-Rust CPU backend.
    Flex,
}

/// `--device` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DeviceArg {
    /// The CPU.
    Cpu,
    /// The first CUDA GPU (libtorch backend only).
    Cuda,
}

/// Exit codes, for scripts and job schedulers to act on.
pub mod exit {
    /// Done (or nothing to do).
    pub const OK: u8 = 0;
    /// An error, a failed run, or a diff with changed metrics.
    pub const FAILED: u8 = 1;
    /// A usage error.
    pub const USAGE: u8 = 2;
    /// Trained, but a tracker (`--mlflow`, `--tensorboard`) did not get everything: a warning
    /// said why; `vaelab export` sends the rest.
    pub const TRACKING: u8 = 3;
    /// Another process is training the run (EX_TEMPFAIL).
    pub const BUSY: u8 = 75;
    /// Stopped by Ctrl-C; relaunch to resume.
    pub const INTERRUPTED: u8 = 130;
}

/// Parses the command line; a usage error is one line on stderr and exit code 2.
pub fn parse() -> Result<Cli, u8> {
    Cli::try_parse().map_err(|e| {
        use clap::error::ErrorKind::*;
        if matches!(
            e.kind(),
            DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
        ) {
            let _ = e.print();
            return exit::OK;
        }
        // clap's message without its usage and tips, on one line: a missing argument's name is
        // on the lines after the first.
        let text = e.render().to_string();
        let message: Vec<&str> = text
            .lines()
            .map(str::trim)
            .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
            .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
            .collect();
        let line = if message.is_empty() {
            "error: invalid arguments".to_string()
        } else {
            message.join(" ")
        };
        eprintln!("{line} (see vaelab --help)");
        exit::USAGE
    })
}
