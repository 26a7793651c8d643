//! The `vaelab` command line: parsing and dispatch only; the work lives in the library modules.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Parser, Subcommand};

use crate::config::{matrix, BackendKind, DeviceKind, RunSpec};
use crate::model::ModelKind;
use crate::report::{self, PlotTarget};
use crate::store::Store;
use crate::sweep::{self, Manifest, SweepOptions};
use crate::train::{self, Outcome, TrainOptions};

/// vaelab: autoencoder experiments on MNIST with Burn, Parquet metrics and plots.
#[derive(Parser, Debug)]
#[command(name = "vaelab", version, about, long_about = None)]
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

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train one run (or resume it, or report it if it is already complete).
    ///
    /// The run id is a hash of every parameter and of the code, so the same command at the same
    /// commit finds the same run: relaunching after Ctrl-C or a crash resumes it.
    Train(TrainArgs),
    /// Expand a TOML experiment matrix and train every run not done yet (resumable).
    ///
    /// The expansion is frozen in <RESULTS>/sweeps/<NAME>/manifest.toml. Relaunching skips
    /// finished runs and resumes interrupted ones; at the end a summary table is printed and
    /// summary.parquet and epochs.parquet are written beside the manifest.
    Sweep {
        /// The matrix, e.g. experiments/quick.toml.
        file: PathBuf,
        /// Print the expanded runs and their count; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Runs trained at once, each in its own process with its share of the cores.
        #[arg(long, short, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
    },
    /// Reproduce published loss tables: train the matrix's runs (or reuse finished ones), then
    /// print and write <RESULTS>/sweeps/<NAME>/repro.md with, per table, epoch | article | ours
    /// | difference | difference % and a verdict against the matrix's [repro] tolerance, the
    /// identification sweep's ranking, and the article's figures for these runs.
    Repro {
        /// A matrix with a [repro] table, e.g. experiments/article.toml.
        file: PathBuf,
        /// Train seeds 0..N of every run (mean ± sd per epoch) instead of the matrix's seeds.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
        seeds: Option<u64>,
        /// Override the epochs of every run (e.g. 2 for a quick check).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        epochs: Option<u32>,
        /// Train and test on the first N images of each split only.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        /// Add a column with plain PyTorch on the same setup (scripts/reference/article.py; needs
        /// ./scripts/setup-reference).
        #[arg(long)]
        with_reference: bool,
        /// Runs trained at once.
        #[arg(long, short, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
    },
    /// Train entry INDEX (0-based) of a frozen sweep manifest: one self-contained job, e.g. one
    /// task of a Slurm array (`--array=0-N` with INDEX=$SLURM_ARRAY_TASK_ID).
    Entry {
        /// A manifest.toml under <RESULTS>/sweeps/<NAME>/.
        manifest: PathBuf,
        /// Which run.
        index: usize,
    },
    /// Render a sweep's or a run's pictures (PNG, charts also as SVG).
    ///
    /// A sweep gets, in <RESULTS>/sweeps/<NAME>/plots/: tradeoff (final test reconstruction
    /// error against KL, one line per variant, one point per β, mean ± sd over seeds, AE as
    /// dashed references), curves (per-epoch recon, KL and loss of every run, coloured by β),
    /// reconstructions and samples (side-by-side sheets across β). Every trained run also gets,
    /// in <RESULTS>/runs/<ID>/plots/: curves, reconstructions, and for a VAE samples, a latent
    /// traversal, and with a 2-D latent the latent scatter and the decoded manifold.
    Plot {
        /// Sweep names, run ids or unique prefixes of run ids.
        #[arg(required_unless_present = "diff")]
        targets: Vec<String>,
        /// Overlay the trade-off curves of two sides of a diff (git revisions, sweeps or runs)
        /// into <RESULTS>/diffs/<A>..<B>/.
        #[arg(long, num_args = 2, value_names = ["A", "B"])]
        diff: Option<Vec<String>>,
    },
    /// List runs, newest first: id, sweeps, commit, model, β, latent, epochs, state, final test
    /// loss.
    Ls {
        /// Only the runs of this sweep.
        #[arg(long)]
        sweep: Option<String>,
        /// Only runs built from this git revision (anything `git rev-parse` accepts).
        #[arg(long)]
        commit: Option<String>,
        /// Only runs whose parameter KEY equals VALUE (repeatable), e.g. --where beta=3.
        #[arg(long = "where", value_name = "KEY=VALUE")]
        filters: Vec<String>,
    },
    /// Show one run: resolved config, provenance and per-epoch table.
    Show {
        /// Run id or unique prefix.
        run: String,
    },
    /// Compare two sets of runs: git revisions (HEAD~1, a tag, a branch), sweep names or run ids.
    ///
    /// Runs are paired by their parameters. Shows the commits between A and B, files changed,
    /// Cargo.lock dependency changes, unpaired runs and how they differ from the closest run,
    /// and per pair the final test recon / KL / loss with delta, delta % and a verdict (noise =
    /// 2 seed standard deviations where seeds exist, else --tolerance). Exit code 0 when no
    /// metric changed beyond noise, 1 otherwise (a CI gate).
    Diff {
        /// Side A.
        a: String,
        /// Side B.
        b: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: DiffFormat,
        /// Hide pairs whose metrics are all within noise.
        #[arg(long)]
        only_changed: bool,
        /// Relative change counted as noise when a pair has no seed spread.
        #[arg(long, default_value_t = 0.01)]
        tolerance: f64,
    },
    /// Show queued / running / done / failed / interrupted runs of a sweep (or of all sweeps),
    /// each run's epoch and last test loss, and an ETA from measured epoch times.
    Status {
        /// Sweep name (a folder under <RESULTS>/sweeps/); all sweeps when absent.
        sweep: Option<String>,
    },
}

/// `vaelab train` parameters; defaults are our reconstruction of the article's setup.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Model: plain autoencoder or VAE.
    #[arg(long, value_enum, default_value = "vae")]
    pub model: ModelArg,
    /// KL weight β in loss = recon + β·KL (VAE only; 0 = the article's first table).
    #[arg(long, default_value_t = 3.0, allow_negative_numbers = true)]
    pub beta: f64,
    /// Latent size.
    #[arg(long, default_value_t = 4)]
    pub latent: usize,
    /// Encoder hidden widths, comma-separated (the decoder mirrors them).
    #[arg(long, value_delimiter = ',', default_value = "256")]
    pub hidden: Vec<usize>,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub lr: f64,
    /// Seed for weight init, shuffling and sampling noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train and test on the first N images of each split only.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Backend: libtorch (tch) or Burn's pure-Rust CPU backend (flex).
    #[arg(long, value_enum, default_value = "tch")]
    pub backend: BackendKind,
    /// Device (cuda needs the tch backend and a GPU).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
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
}

/// `--model` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ModelArg {
    /// Plain autoencoder.
    Ae,
    /// Variational autoencoder.
    Vae,
}

impl TrainArgs {
    /// The run spec these flags describe.
    pub fn spec(&self) -> RunSpec {
        RunSpec {
            model: match self.model {
                ModelArg::Ae => ModelKind::Ae,
                ModelArg::Vae => ModelKind::Vae,
            },
            beta: self.beta,
            latent: self.latent,
            hidden: self.hidden.clone(),
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            seed: self.seed,
            limit: self.limit,
            backend: self.backend,
            device: self.device,
        }
    }
}

/// Parses the command line; a usage error is one line on stderr and exit code 2.
pub fn parse() -> std::result::Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| {
        use clap::error::ErrorKind::*;
        if matches!(
            e.kind(),
            DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
        ) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or("error: invalid arguments");
        eprintln!("{first} (see vaelab --help)");
        ExitCode::from(2)
    })
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let store = Store::new(&cli.results);
    let data_dir = cli.data.clone().unwrap_or_else(crate::data::default_dir);
    let train_opts = |interrupter| TrainOptions {
        store: store.clone(),
        data_dir: data_dir.clone(),
        quiet: cli.quiet,
        interrupter,
        sweep_bars: None,
    };
    match &cli.command {
        Command::Sweep {
            file,
            dry_run,
            jobs,
        } => {
            let plan = matrix::load(file)?;
            if *dry_run {
                print!("{}", report::plan_listing(&plan));
                return Ok(ExitCode::SUCCESS);
            }
            let opts = SweepOptions {
                train: train_opts(install_ctrl_c()),
                jobs: usize::from(*jobs),
            };
            Ok(run_plan(&plan, &opts)?.1)
        }
        Command::Repro {
            file,
            seeds,
            epochs,
            limit,
            with_reference,
            jobs,
        } => {
            let plan = matrix::load(file)?.with_overrides(
                *seeds,
                epochs.map(|e| e as usize),
                limit.map(|l| l as usize),
            );
            let Some(spec) = plan.repro.clone() else {
                bail!(
                    "{}: no [repro] table, so nothing to compare with (see experiments/article.toml)",
                    file.display()
                );
            };
            let opts = SweepOptions {
                train: train_opts(install_ctrl_c()),
                jobs: usize::from(*jobs),
            };
            let (manifest, code) = run_plan(&plan, &opts)?;
            if code != ExitCode::SUCCESS {
                return Ok(code);
            }
            let path =
                report::repro::write(&store, &data_dir, &manifest, &spec, *with_reference, file)?;
            print!("{}", std::fs::read_to_string(&path)?);
            println!("report: {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Entry { manifest, index } => {
            let manifest = Manifest::read(manifest)?;
            let report = sweep::run_entry(&manifest, *index, &train_opts(install_ctrl_c()))?;
            Ok(outcome_code(&report))
        }
        Command::Status { sweep } => {
            let names = match sweep {
                Some(name) => vec![name.clone()],
                None => store.sweep_names()?,
            };
            if names.is_empty() {
                println!("no sweeps under {}", store.sweep_dir("").display());
            }
            for name in names {
                let path = Manifest::path(&store, &name);
                if !path.exists() {
                    let known = store.sweep_names()?;
                    bail!(
                        "no sweep named {name:?} under {}; known: {}",
                        store.sweep_dir("").display(),
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    );
                }
                let manifest = Manifest::read(&path)?;
                let runs = sweep::progress(&store, &manifest)?;
                print!("{}", report::status_table(&manifest, &runs));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ls {
            sweep,
            commit,
            filters,
        } => {
            let records =
                report::diff::query(&store, sweep.as_deref(), commit.as_deref(), filters)?;
            print!("{}", report::run_listing(&store, &records)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { run } => {
            let id = match PlotTarget::resolve(&store, run)? {
                PlotTarget::Run(id) => id,
                PlotTarget::Sweep(_) => bail!("{run:?} is a sweep; `vaelab status {run}` shows it"),
            };
            let dir = store.run(&id);
            println!(
                "run {id} ({})
",
                dir.path.display()
            );
            println!("[config]\n{}", std::fs::read_to_string(dir.config_path())?);
            match std::fs::read_to_string(dir.file("provenance.toml")) {
                Ok(text) => println!("[provenance]\n{text}"),
                Err(_) => println!("[provenance]\n(not written yet)\n"),
            }
            print!("{}", report::epoch_table(&store.record(&id)?.rows));
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff {
            a,
            b,
            format,
            only_changed,
            tolerance,
        } => {
            let records = store.records()?;
            let (sa, sb) = (
                report::diff::select(&store, &records, a)?,
                report::diff::select(&store, &records, b)?,
            );
            let diff = report::diff::diff(&sa, &sb, *tolerance)?;
            match format {
                DiffFormat::Json => println!("{}", serde_json::to_string_pretty(&diff)?),
                DiffFormat::Md => print!("{}", diff.render(true, *only_changed)),
                DiffFormat::Table => print!("{}", diff.render(false, *only_changed)),
            }
            Ok(if diff.changed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Plot { targets, diff } => {
            if let Some(sides) = diff {
                let records = store.records()?;
                let (sa, sb) = (
                    report::diff::select(&store, &records, &sides[0])?,
                    report::diff::select(&store, &records, &sides[1])?,
                );
                let names = (sides[0].as_str(), sides[1].as_str());
                for file in report::plot_diff(&store, &sa, &sb, names)? {
                    println!("{}", file.display());
                }
            }
            let targets: Vec<PlotTarget> = targets
                .iter()
                .map(|t| PlotTarget::resolve(&store, t))
                .collect::<Result<_>>()?;
            for target in &targets {
                for file in report::plot(&store, &data_dir, target)? {
                    println!("{}", file.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Train(args) => {
            let spec = args.spec();
            spec.validate()
                .map_err(|e| anyhow!("--{} {}: {}", e.key.replace('_', "-"), e.value, e.allowed))?;
            let opts = train_opts(install_ctrl_c());
            let report = train::train_run(&spec, &opts)?;
            Ok(outcome_code(&report))
        }
    }
}

/// Freezes and trains `plan`, prints its summary; the manifest and the exit code a script can
/// act on (130 interrupted, 1 when a run failed).
fn run_plan(plan: &matrix::SweepPlan, opts: &SweepOptions) -> Result<(Manifest, ExitCode)> {
    let store = &opts.train.store;
    let manifest = Manifest::from_plan(plan);
    let path = manifest.freeze(store)?;
    println!(
        "sweep {}: {} runs, manifest {}",
        manifest.name,
        manifest.runs.len(),
        path.display()
    );
    let outcome = sweep::run_sweep(&manifest, opts)?;
    sweep::write_tables(store, &manifest, &outcome)?;
    print!("{}", report::sweep_table(&outcome, store));
    let dir = store.sweep_dir(&manifest.name);
    println!(
        "tables: {} and {}",
        dir.join("summary.parquet").display(),
        dir.join("epochs.parquet").display()
    );
    if outcome.interrupted {
        let relaunch: Vec<String> = std::env::args().collect();
        eprintln!("interrupted: rerun `{}` to resume", relaunch.join(" "));
        return Ok((manifest, ExitCode::from(130)));
    }
    let failed = outcome.failed();
    if failed > 0 {
        eprintln!("{failed} run(s) failed; see the table above");
        return Ok((manifest, ExitCode::FAILURE));
    }
    Ok((manifest, ExitCode::SUCCESS))
}

/// Prints a run's table and fate; the exit code a script can act on.
fn outcome_code(report: &train::RunReport) -> ExitCode {
    print!("{}", report::epoch_table(&report.rows));
    let dir = report.dir.display();
    match &report.outcome {
        Outcome::Done => {
            println!("done: {} -> {dir}", report.id);
            ExitCode::SUCCESS
        }
        Outcome::AlreadyDone => {
            println!("already complete: {} -> {dir}", report.id);
            ExitCode::SUCCESS
        }
        Outcome::Busy { holder } => {
            eprintln!(
                "busy: {} is being trained by process {} on {}",
                report.id, holder.pid, holder.host
            );
            ExitCode::from(75)
        }
        Outcome::Interrupted { epochs_done } => {
            eprintln!(
                "interrupted: {} has {epochs_done} complete epoch(s) in {dir}; rerun the same command to resume",
                report.id
            );
            ExitCode::from(130)
        }
        Outcome::Failed { reason } => {
            eprintln!("failed: {}: {reason} ({dir})", report.id);
            ExitCode::FAILURE
        }
    }
}

/// First Ctrl-C: stop at the next batch boundary (the current epoch is lost, earlier ones are
/// kept). Second Ctrl-C: exit at once.
fn install_ctrl_c() -> burn::train::Interrupter {
    let interrupter = burn::train::Interrupter::new();
    let handle = interrupter.clone();
    let _ = ctrlc::set_handler(move || {
        if handle.should_stop() {
            std::process::exit(130);
        }
        eprintln!("\nstopping at the next batch boundary (Ctrl-C again to quit now)");
        handle.stop(Some("Ctrl-C"));
    });
    interrupter
}
