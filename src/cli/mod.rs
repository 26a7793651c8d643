//! The `vaelab` command line in the library: turning parsed arguments into work; the work
//! itself lives in the stage modules. The grammar is in [`args`], the entry point in [`library`].

use anyhow::{anyhow, bail, Result};

use crate::config::{matrix, BackendKind, DeviceKind, RunSpec};
use crate::data::Dataset;
use crate::eval;
use crate::model::ModelKind;
use crate::report::{self, PlotTarget};
use crate::store::{RunState, Store};
use crate::sweep::{self, Manifest, SweepOptions};
use crate::train::{self, Outcome, TrainOptions};

pub mod args;
pub mod library;

pub use args::*;

impl SlurmArgs {
    /// The settings these flags set.
    pub fn settings(&self) -> matrix::SlurmSettings {
        matrix::SlurmSettings {
            partition: self.partition.clone(),
            time: self.time.clone(),
            cpus_per_task: self.cpus_per_task,
            mem: self.mem.clone(),
            max_parallel: self.max_parallel,
            sbatch_args: self.sbatch_args.clone(),
        }
    }
}

impl From<DatasetArg> for Dataset {
    fn from(arg: DatasetArg) -> Self {
        match arg {
            DatasetArg::Mnist => Dataset::Mnist,
            DatasetArg::FashionMnist => Dataset::FashionMnist,
        }
    }
}

impl TrainArgs {
    /// The run spec these flags describe.
    pub fn spec(&self) -> RunSpec {
        RunSpec {
            model: match self.model {
                ModelArg::Ae => ModelKind::Ae,
                ModelArg::Vae => ModelKind::Vae,
                ModelArg::Cvae => ModelKind::Cvae,
            },
            dataset: self.dataset.into(),
            beta: self.beta,
            latent: self.latent,
            hidden: self.hidden.clone(),
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            seed: self.seed,
            limit: self.limit,
            backend: match self.backend {
                BackendArg::Tch => BackendKind::Tch,
                BackendArg::Flex => BackendKind::Flex,
            },
            device: match self.device {
                DeviceArg::Cpu => DeviceKind::Cpu,
                DeviceArg::Cuda => DeviceKind::Cuda,
            },
        }
    }
}

/// What runs in `libvaelab.so` (see [`library`]): parses and runs the whole command line;
/// the process's exit code.
pub fn main() -> u8 {
    // Before any thread exists, so that all of them inherit it.
    train::configure_process();
    if let Err(e) = crate::faults::setup() {
        eprintln!("error: {e}");
        return exit::FAILED;
    }
    crate::panics::install_quiet_hook();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            exit::FAILED
        }
        Err(panic) => {
            eprintln!("error: internal error: {}", crate::panics::reason(&*panic));
            exit::FAILED
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<u8> {
    let store = Store::new(&cli.results);
    let data_dir = cli.data.clone().unwrap_or_else(crate::data::default_dir);
    let train_opts = |interrupter| TrainOptions {
        store: store.clone(),
        data_dir: data_dir.clone(),
        quiet: cli.quiet,
        interrupter,
        sweep_bars: None,
        on_epoch: None,
    };
    match &cli.command {
        Command::Sweep {
            file,
            dry_run,
            jobs,
            stack,
            executor,
            slurm,
        } => {
            let plan = matrix::load(file)?;
            if *dry_run {
                print!("{}", report::plan_listing(&plan, *stack));
                return Ok(exit::OK);
            }
            if *executor == ExecutorArg::Slurm {
                let settings = plan.slurm.overridden_by(&slurm.settings());
                return submit_plan(&store, &plan, &data_dir, &settings, *stack);
            }
            let opts = SweepOptions {
                train: train_opts(install_ctrl_c()),
                jobs: usize::from(*jobs),
                stack: *stack,
                on_progress: None,
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
            stack,
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
                stack: *stack,
                on_progress: None,
            };
            let (manifest, code) = run_plan(&plan, &opts)?;
            if code != exit::OK {
                return Ok(code);
            }
            let path =
                report::repro::write(&store, &data_dir, &manifest, &spec, *with_reference, file)?;
            print!("{}", std::fs::read_to_string(&path)?);
            println!("report: {}", path.display());
            Ok(exit::OK)
        }
        Command::Entry { manifest, index } => {
            let manifest = Manifest::read(manifest)?;
            let reports = sweep::run_entry(&manifest, *index, &train_opts(install_ctrl_c()))?;
            let codes: Vec<u8> = reports.iter().map(outcome_code).collect();
            // A Slurm task warned of its time limit: it has stopped with its last epoch
            // checkpointed; back into the queue, to resume from there.
            let warned = STOP_SIGNAL.load(std::sync::atomic::Ordering::SeqCst) == libc::SIGUSR1;
            let stopped: Vec<&str> = reports
                .iter()
                .filter(|r| matches!(r.outcome, Outcome::Interrupted { .. }))
                .map(|r| r.id.as_str())
                .collect();
            if warned && !stopped.is_empty() {
                sweep::slurm::requeue_self()?;
                eprintln!(
                    "requeued: {} resume(s) when Slurm runs this task again",
                    stopped.join(", ")
                );
            }
            // The most telling code of the entry's runs: stopped, then failed, then busy.
            let code = [exit::INTERRUPTED, exit::FAILED, exit::BUSY]
                .into_iter()
                .find(|c| codes.contains(c))
                .unwrap_or(exit::OK);
            Ok(code)
        }
        Command::Cancel { sweep } => {
            if !Manifest::path(&store, sweep).exists() {
                bail!(
                    "no sweep named {sweep:?} under {}",
                    store.sweep_dir("").display()
                );
            }
            let cancelled = sweep::slurm::cancel(&store, sweep)?;
            if cancelled.is_empty() {
                println!("sweep {sweep}: no Slurm job of it is queued or running");
            } else {
                println!(
                    "sweep {sweep}: cancelled job(s) {}; finished runs stay, the others resume when the sweep is submitted again",
                    cancelled.join(", ")
                );
            }
            Ok(exit::OK)
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
                let submissions = sweep::slurm::submissions(&store, &name)?;
                if !submissions.is_empty() {
                    let ids: Vec<String> = submissions.iter().map(|s| s.job_id.clone()).collect();
                    // Off the cluster (results copied elsewhere) there is no queue to ask.
                    let queued = match sweep::slurm::queue(&ids) {
                        Ok(queued) => queued,
                        Err(e) => {
                            println!("slurm: cannot ask the queue ({e:#}); showing the runs on disk only");
                            Vec::new()
                        }
                    };
                    print!(
                        "{}",
                        report::slurm_table(&store, &manifest, &runs, &submissions, &queued)
                    );
                }
            }
            Ok(exit::OK)
        }
        Command::Ls {
            sweep,
            commit,
            filters,
        } => {
            let (records, unreadable) =
                report::diff::query(&store, sweep.as_deref(), commit.as_deref(), filters)?;
            print!("{}", report::run_listing(&store, &records)?);
            for u in &unreadable {
                eprintln!("unreadable: {u}");
            }
            Ok(exit::OK)
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
            let record = store.record(&id)?;
            print!("{}", report::epoch_table(&record.rows));
            if !record.eval.is_empty() {
                println!("\n[eval] test split, nats per image (see `vaelab eval --help`)");
                print!("{}", report::eval_table(std::slice::from_ref(&record)));
                print!("{}", report::eval_dims_table(&record));
                print!("{}", report::eval_classes_table(&record));
            }
            Ok(exit::OK)
        }
        Command::Eval { targets } => {
            let mut sweeps = Vec::new();
            let mut ids = Vec::new();
            for target in targets {
                match PlotTarget::resolve(&store, target)? {
                    PlotTarget::Sweep(name) => {
                        let manifest = Manifest::read(&Manifest::path(&store, &name))?;
                        ids.extend(manifest.runs.iter().map(|r| r.id.clone()));
                        sweeps.push(manifest);
                    }
                    PlotTarget::Run(id) => ids.push(id),
                }
            }
            let interrupter = install_ctrl_c();
            let mut records = Vec::new();
            for id in &ids {
                if interrupter.should_stop() {
                    eprintln!("interrupted: rerun the same command to evaluate the rest");
                    return Ok(exit::INTERRUPTED);
                }
                let t = std::time::Instant::now();
                match eval::evaluate_run(&store, id, &data_dir, cli.quiet)? {
                    eval::Evaluated::Done(_) => {
                        eprintln!("{id}: evaluated in {:.1}s", t.elapsed().as_secs_f64())
                    }
                    eval::Evaluated::AlreadyDone(_) => eprintln!("{id}: already evaluated"),
                    eval::Evaluated::NotTrained => eprintln!("{id}: not trained yet; skipped"),
                }
                records.push(store.record(id)?);
            }
            print!("{}", report::eval_table(&records));
            for manifest in &sweeps {
                sweep::write_tables(&store, manifest, &sweep::current(&store, manifest))?;
                let target = PlotTarget::Sweep(manifest.name.clone());
                if let Err(e) = report::plot(&store, &data_dir, &target) {
                    eprintln!("warning: cannot draw the plots: {e:#}");
                }
                let page = report::page::write_sweep(&store, manifest, false)?;
                println!("report: {}", page.display());
            }
            Ok(exit::OK)
        }
        Command::Sample {
            run,
            digit,
            n,
            seed,
            out,
        } => {
            let id = match PlotTarget::resolve(&store, run)? {
                PlotTarget::Run(id) => id,
                PlotTarget::Sweep(_) => bail!("{run:?} is a sweep; give a run id"),
            };
            let record = store.record(&id)?;
            let path = report::sample(
                &store,
                &record,
                *digit,
                usize::from(*n),
                *seed,
                out.as_deref(),
            )?;
            println!("{}", path.display());
            Ok(exit::OK)
        }
        Command::Judge { dataset } => {
            let dataset = Dataset::from(*dataset);
            let judge = eval::judge::Judge::load_or_train(dataset, &data_dir, cli.quiet)?;
            println!(
                "{dataset} judge: {:.2}% test accuracy, {} MLP, sha256 {} ({})",
                100.0 * judge.card.test_accuracy,
                judge
                    .card
                    .widths
                    .iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join("-"),
                judge.card.sha256,
                eval::judge::judge_dir(dataset).display()
            );
            Ok(exit::OK)
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
                DiffFormat::Html => print!("{}", report::page::diff_html(&diff)?),
            }
            for u in &diff.unreadable {
                eprintln!("unreadable: {u}");
            }
            if !diff.unreadable.is_empty() {
                eprintln!(
                    "error: {} run(s) of these sides cannot be read, so the comparison is incomplete",
                    diff.unreadable.len()
                );
                return Ok(exit::FAILED);
            }
            Ok(if diff.changed { exit::FAILED } else { exit::OK })
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
            Ok(exit::OK)
        }
        Command::Report { targets } => {
            for target in targets {
                let page = match PlotTarget::resolve(&store, target)? {
                    PlotTarget::Sweep(name) => {
                        let manifest = Manifest::read(&Manifest::path(&store, &name))?;
                        report::page::write_sweep(&store, &manifest, false)?
                    }
                    PlotTarget::Run(id) => report::page::write_run(&store, &store.record(&id)?)?,
                };
                println!("{}", page.display());
            }
            Ok(exit::OK)
        }
        Command::Train(args) => {
            let spec = args.spec();
            spec.validate()
                .map_err(|e| anyhow!("--{} {}: {}", e.key.replace('_', "-"), e.value, e.allowed))?;
            let opts = train_opts(install_ctrl_c());
            let report = train::train_run(&spec, &opts)?;
            eval::evaluate_finished(std::slice::from_ref(&report), &opts);
            let code = outcome_code(&report);
            if let Ok(record) = store.record(&report.id) {
                if !record.eval.is_empty() {
                    print!("{}", report::eval_table(std::slice::from_ref(&record)));
                }
            }
            Ok(code)
        }
    }
}

/// Freezes `plan` and submits its runs not done as one Slurm job array; returns at once.
fn submit_plan(
    store: &Store,
    plan: &matrix::SweepPlan,
    data_dir: &std::path::Path,
    settings: &matrix::SlurmSettings,
    stack: sweep::stacking::StackPolicy,
) -> Result<u8> {
    sweep::slurm::preflight()?;
    let manifest = Manifest::from_plan(plan, stack);
    let path = manifest.freeze(store)?;
    match sweep::slurm::submit(store, &manifest, &path, data_dir, settings)? {
        None => println!(
            "sweep {}: all {} runs are done; nothing to submit",
            manifest.name,
            manifest.runs.len()
        ),
        Some(job) => {
            let tasks = job.entries().len();
            println!(
                "sweep {}: submitted Slurm job {} ({tasks} of {} entries for {} runs, array {})",
                manifest.name,
                job.job_id,
                manifest.entries().len(),
                manifest.runs.len(),
                job.array
            );
            println!("script: {}", job.script.display());
            println!(
                "logs: {}",
                sweep::slurm::slurm_dir(store, &manifest.name)
                    .join("logs")
                    .display()
            );
            println!(
                "watch: vaelab status {0}    stop: vaelab cancel {0}",
                manifest.name
            );
        }
    }
    Ok(exit::OK)
}

/// Freezes and trains `plan`, prints its summary; the manifest and the exit code a script can
/// act on (130 interrupted, 1 when a run failed).
fn run_plan(plan: &matrix::SweepPlan, opts: &SweepOptions) -> Result<(Manifest, u8)> {
    let store = &opts.train.store;
    // A device that is not there fails now, before the manifest or any run is written.
    for spec in plan.runs.iter().map(|r| &r.spec) {
        train::device_for(spec)?;
    }
    let manifest = Manifest::from_plan(plan, opts.stack);
    let path = manifest.freeze(store)?;
    let stacks = manifest.entries().len();
    let stacked = if stacks < manifest.runs.len() {
        format!(" in {stacks} stacks")
    } else {
        String::new()
    };
    println!(
        "sweep {}: {} runs{stacked}, manifest {}",
        manifest.name,
        manifest.runs.len(),
        path.display()
    );
    let mut opts = opts.clone();
    opts.on_progress = Some(live_report(store.clone(), manifest.clone()));
    let outcome = sweep::run_sweep(&manifest, &opts).and_then(|outcome| {
        sweep::write_tables(store, &manifest, &outcome)?;
        Ok(outcome)
    });
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            // The page must not say "running" (and reload) for ever.
            let _ = report::page::write_sweep(store, &manifest, false);
            return Err(e);
        }
    };
    print!("{}", report::sweep_table(&outcome, store));
    let dir = store.sweep_dir(&manifest.name);
    println!(
        "tables: {} and {}",
        dir.join("summary.parquet").display(),
        dir.join("epochs.parquet").display()
    );
    // The sheets need the trained models, so they are drawn once, at the end.
    if !outcome.interrupted && outcome.runs.iter().any(|(_, s, _)| *s == RunState::Done) {
        let target = PlotTarget::Sweep(manifest.name.clone());
        if let Err(e) = report::plot(store, &opts.train.data_dir, &target) {
            eprintln!("warning: cannot draw the plots: {e:#}");
        }
    }
    match report::page::write_sweep(store, &manifest, false) {
        Ok(page) => println!("report: {}", page.display()),
        Err(e) => eprintln!("warning: cannot write the report: {e:#}"),
    }
    if outcome.interrupted {
        let relaunch: Vec<String> = std::env::args().collect();
        eprintln!("interrupted: rerun `{}` to resume", relaunch.join(" "));
        return Ok((manifest, exit::INTERRUPTED));
    }
    let failed = outcome.failed();
    if failed > 0 {
        eprintln!("{failed} run(s) failed; see the table above");
        return Ok((manifest, exit::FAILED));
    }
    Ok((manifest, exit::OK))
}

/// Rewrites the sweep's report page, at most every two seconds (the hook runs after every
/// epoch and every poll of the workers). A failure to write it never stops training.
fn live_report(store: Store, manifest: Manifest) -> train::EpochHook {
    let last = std::sync::Mutex::new(None::<std::time::Instant>);
    std::sync::Arc::new(move || {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(2)) {
            return;
        }
        *last = Some(std::time::Instant::now());
        if let Err(e) = report::page::write_sweep(&store, &manifest, true) {
            eprintln!("warning: cannot write the report: {e:#}");
        }
    })
}

/// Prints a run's table and fate; the exit code a script can act on.
fn outcome_code(report: &train::RunReport) -> u8 {
    print!("{}", report::epoch_table(&report.rows));
    let dir = report.dir.display();
    match &report.outcome {
        Outcome::Done => {
            println!("done: {} -> {dir}", report.id);
            exit::OK
        }
        Outcome::AlreadyDone => {
            println!("already complete: {} -> {dir}", report.id);
            exit::OK
        }
        Outcome::Busy { holder } => {
            eprintln!(
                "busy: {} is being trained by process {} on {}",
                report.id, holder.pid, holder.host
            );
            exit::BUSY
        }
        Outcome::Interrupted { epochs_done } => {
            eprintln!(
                "interrupted: {} has {epochs_done} complete epoch(s) in {dir}; rerun the same command to resume",
                report.id
            );
            exit::INTERRUPTED
        }
        Outcome::Failed { reason } => {
            eprintln!("failed: {}: {reason} ({dir})", report.id);
            exit::FAILED
        }
    }
}

/// The signal that asked this process to stop (0: none yet).
static STOP_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// First Ctrl-C: stop at the next batch boundary (the current epoch is lost, earlier ones are
/// kept). Second Ctrl-C: exit at once. SIGTERM (preemption, `scancel`) and SIGUSR1 (Slurm's
/// warning before a time limit) stop at the next batch boundary too.
fn install_ctrl_c() -> burn::train::Interrupter {
    use std::sync::atomic::Ordering;
    let interrupter = burn::train::Interrupter::new();
    let handle = interrupter.clone();
    let _ = ctrlc::set_handler(move || {
        if handle.should_stop() {
            // `_exit`, not `exit`: exit handlers would tear libtorch down under the training
            // thread, whose next kernel call then panics and records the run as failed. Quit
            // as a kill would; the run resumes from its last complete epoch.
            // SAFETY: ends the process at once; nothing runs after it.
            unsafe { libc::_exit(130) }
        }
        STOP_SIGNAL.store(libc::SIGINT, Ordering::SeqCst);
        eprintln!("\nstopping at the next batch boundary (Ctrl-C again to quit now)");
        handle.stop(Some("Ctrl-C"));
    });
    let handle = interrupter.clone();
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGUSR1,
    ]) {
        std::thread::spawn(move || {
            for signal in signals.forever() {
                STOP_SIGNAL.store(signal, Ordering::SeqCst);
                let why = if signal == libc::SIGUSR1 {
                    "SIGUSR1 (time limit near)"
                } else {
                    "SIGTERM"
                };
                eprintln!("{why}: stopping at the next batch boundary");
                handle.stop(Some(why));
            }
        });
    }
    interrupter
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The grammar and `RunSpec::default` read the same constants (config::defaults).
    #[test]
    fn train_flags_default_to_the_run_spec_default() {
        let cli = Cli::try_parse_from(["vaelab", "train"]).unwrap();
        let Command::Train(args) = cli.command else {
            panic!("not the train command");
        };
        assert_eq!(args.spec(), RunSpec::default());
    }
}
