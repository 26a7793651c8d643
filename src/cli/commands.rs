//! One function per command: each turns its parsed flags into calls of the stage modules and
//! prints what they return; the work itself lives in the stages.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};

use super::args::*;
use super::signals::{install_ctrl_c, warned_of_time_limit};
use crate::compare;
use crate::config::defaults::EvalPolicy;
use crate::config::tracking::Tracking;
use crate::config::{matrix, preflight, InvalidParam};
use crate::data::Dataset;
use crate::eval;
use crate::report;
use crate::store::{build_info, RunState, Store, Target};
use crate::sweep::{self, Manifest, SweepOptions};
use crate::track;
use crate::train::{self, Outcome, TrainOptions};

/// What every command shares: the results store, the data directory, the display mode.
pub struct Context {
    /// The results root (`--results`).
    pub store: Store,
    /// The MNIST directory (`--data`, else the set-up's).
    pub data_dir: PathBuf,
    /// No progress bars (`--quiet`).
    pub quiet: bool,
}

impl Context {
    /// The context of a parsed command line.
    pub fn new(cli: &Cli) -> Self {
        Self {
            store: Store::new(&cli.results),
            data_dir: cli.data.clone().unwrap_or_else(crate::data::default_dir),
            quiet: cli.quiet,
        }
    }

    /// Training options stopped by Ctrl-C, SIGTERM or SIGUSR1.
    fn train_options(&self, eval: &EvalPolicy) -> TrainOptions {
        TrainOptions {
            store: self.store.clone(),
            data_dir: self.data_dir.clone(),
            quiet: self.quiet,
            interrupter: install_ctrl_c(),
            sweep_bars: None,
            on_epoch: None,
            eval: eval.clone(),
        }
    }

    fn sweep_options(
        &self,
        jobs: u16,
        stack: sweep::stacking::StackPolicy,
        eval: &EvalPolicy,
    ) -> SweepOptions {
        SweepOptions {
            train: self.train_options(eval),
            jobs: usize::from(jobs),
            stack,
            on_progress: None,
        }
    }
}

/// `vaelab train`.
pub fn train(ctx: &Context, args: &TrainArgs) -> Result<u8> {
    let spec = args.spec();
    let flag =
        |e: &InvalidParam| format!("--{} {}: {}", e.key.replace('_', "-"), e.value, e.allowed);
    spec.validate().map_err(|e| anyhow!(flag(&e)))?;
    preflight([&spec], flag)?;
    let mut opts = ctx.train_options(&args.eval);
    let ids = vec![spec.run_id(build_info::CODE_FINGERPRINT)];
    let live = track::Live::start(&ctx.store, &ids, &args.tracking.settings(), None);
    opts.on_epoch = live.hook();
    let run = train::train_run(&spec, &opts)?;
    eval::evaluate_finished(std::slice::from_ref(&run), &opts);
    let tracked = live.finish();
    let code = outcome_code(&run);
    if let Ok(record) = ctx.store.record(&run.id) {
        if !record.eval.is_empty() {
            print!("{}", report::eval_table(std::slice::from_ref(&record)));
        }
    }
    Ok(with_tracking(code, tracked))
}

/// A run's or sweep's exit code, made [`exit::TRACKING`] when training is otherwise done but a
/// tracker did not get everything.
fn with_tracking(code: u8, tracked: bool) -> u8 {
    if code == exit::OK && !tracked {
        exit::TRACKING
    } else {
        code
    }
}

/// `vaelab sweep`.
pub fn sweep(ctx: &Context, args: &SweepArgs) -> Result<u8> {
    let plan = matrix::load(&args.file)?;
    if args.dry_run {
        print!("{}", report::plan_listing(&plan, args.stack));
        return Ok(exit::OK);
    }
    let eval = args.eval.clone().or(plan.eval.clone()).unwrap_or_default();
    let tracking = plan.tracking.overridden_by(&args.tracking.settings());
    if args.executor == ExecutorArg::Slurm {
        let settings = plan.slurm.overridden_by(&args.slurm.settings());
        return submit_plan(ctx, &plan, &settings, args.stack, &eval, &tracking);
    }
    let opts = ctx.sweep_options(args.jobs, args.stack, &eval);
    Ok(run_plan(&plan, &opts, &args.file, &tracking)?.1)
}

/// `vaelab export`: the runs of every target, those with a directory (a sweep's queued runs
/// have none yet); to MLflow, each sweep into its own experiment unless `--experiment` names one.
pub fn export(ctx: &Context, args: &ExportArgs) -> Result<u8> {
    let store = &ctx.store;
    // (experiment, sweep, runs) per target.
    let mut groups: Vec<(String, Option<String>, Vec<String>)> = Vec::new();
    for target in &args.targets {
        let (sweep, ids) = match store.resolve(target)? {
            Target::Sweep(name) => {
                let manifest = Manifest::read(&store.manifest_path(&name))?;
                (
                    Some(name),
                    manifest.runs.into_iter().map(|r| r.id).collect(),
                )
            }
            Target::Run(id) => (None, vec![id]),
        };
        let experiment = args
            .experiment
            .clone()
            .or(sweep.clone())
            .unwrap_or_else(|| "vaelab".to_string());
        groups.push((experiment, sweep, ids));
    }
    for (experiment, sweep, ids) in &groups {
        match args.tracker {
            TrackerArg::Tensorboard => {
                let dir = Path::new(&args.destination);
                let events = track::tensorboard::export(store, ids, dir)?;
                println!(
                    "tensorboard: {} runs in {}, {events} events written",
                    ids.len(),
                    dir.display()
                );
            }
            TrackerArg::Mlflow => {
                let uri = &args.destination;
                let sent = track::mlflow::export(store, ids, uri, experiment, sweep.as_deref())?;
                println!(
                    "mlflow: {} runs in experiment {experiment} at {}, {sent} metric points sent",
                    ids.len(),
                    args.destination
                );
            }
        }
    }
    Ok(exit::OK)
}

/// `vaelab repro`.
pub fn repro(ctx: &Context, args: &ReproArgs) -> Result<u8> {
    let plan = matrix::load(&args.file)?.with_overrides(
        args.seeds,
        args.epochs.map(|e| e as usize),
        args.limit.map(|l| l as usize),
    );
    let Some(spec) = plan.repro.clone() else {
        bail!(
            "{}: no [repro] table, so nothing to compare with (see experiments/article.toml)",
            args.file.display()
        );
    };
    compare::repro::check(&spec, &plan)?;
    // The rows' bounds at their k (Burda et al.'s NLL is k = 5000) join the evaluation after
    // training, so that each run is evaluated once.
    let mut eval = plan.eval.clone().unwrap_or_default();
    if let (EvalPolicy::K(ks), false) = (&eval, spec.row.is_empty()) {
        let ks = ks
            .iter()
            .copied()
            .chain(compare::repro::rows_k(&spec))
            .collect();
        eval = EvalPolicy::of_ks(ks).map_err(|e| anyhow!("{}: {e}", args.file.display()))?;
    }
    let opts = ctx.sweep_options(args.jobs, args.stack, &eval);
    let (manifest, code) = run_plan(&plan, &opts, &args.file, &plan.tracking)?;
    if code != exit::OK {
        return Ok(code);
    }
    let store = &ctx.store;
    let tables =
        compare::repro::compare(store, &manifest, &spec, args.with_reference, &ctx.data_dir)?;
    // Rows whose runs were trained before, or with `[eval] k = []`: their k now (resumable).
    if !spec.row.is_empty() {
        let ks = compare::repro::rows_k(&spec);
        let ids = compare::repro::rows_runs(&manifest, &spec);
        if eval::evaluate_runs(
            store,
            &ids,
            &ctx.data_dir,
            ctx.quiet,
            &ks,
            &install_ctrl_c(),
        )? {
            eprintln!("interrupted: rerun the same command to evaluate the rest");
            return Ok(exit::INTERRUPTED);
        }
    }
    let rows = compare::repro::compare_rows(store, &manifest, &spec)?;
    let identify = compare::repro::identification(store, &spec)?;
    let path = report::repro::write(
        store,
        &ctx.data_dir,
        &manifest,
        &spec,
        &tables,
        &rows,
        identify,
        &args.file,
    )?;
    print!("{}", std::fs::read_to_string(&path)?);
    println!("report: {}", path.display());
    Ok(exit::OK)
}

/// `vaelab entry`: one entry of a frozen manifest (a Slurm array task).
pub fn entry(ctx: &Context, args: &EntryArgs) -> Result<u8> {
    let manifest = Manifest::read(&args.manifest)?;
    // A Slurm task checks its node's memory and devices (not the login node's); a `--jobs`
    // worker's parent has checked this machine before it started any.
    let slurm_task = std::env::var_os("SLURM_JOB_ID").is_some();
    if let (true, Some(entry)) = (slurm_task, manifest.entries().get(args.index)) {
        let specs = entry.iter().map(|&i| &manifest.runs[i].spec);
        preflight(specs, |e| format!("{}: {e}", args.manifest.display()))?;
    }
    let ids: Vec<String> = manifest
        .entries()
        .get(args.index)
        .map(|entry| entry.iter().map(|&i| manifest.runs[i].id.clone()).collect())
        .unwrap_or_default();
    let live = track::Live::start(
        &ctx.store,
        &ids,
        &args.tracking.settings(),
        Some(&manifest.name),
    );
    let mut opts = ctx.train_options(&args.eval);
    opts.on_epoch = live.hook();
    let runs = sweep::run_entry(&manifest, args.index, &opts)?;
    let tracked = live.finish();
    for run in &runs {
        outcome_code(run);
    }
    let requeued = sweep::slurm::requeue_if_warned(warned_of_time_limit(), &runs)?;
    if !requeued.is_empty() {
        eprintln!(
            "requeued: {} resume(s) when Slurm runs this task again",
            requeued.join(", ")
        );
    }
    let code = Outcome::most_telling(runs.iter().map(|r| &r.outcome)).map_or(exit::OK, exit_code);
    Ok(with_tracking(code, tracked))
}

/// `vaelab cancel`.
pub fn cancel(ctx: &Context, args: &CancelArgs) -> Result<u8> {
    let name = &args.sweep;
    ctx.store.sweep_manifest(name)?;
    let cancelled = sweep::slurm::cancel(&ctx.store, name)?;
    if cancelled.is_empty() {
        println!("sweep {name}: no Slurm job of it is queued or running");
    } else {
        println!(
            "sweep {name}: cancelled job(s) {}; finished runs stay, the others resume when the sweep is submitted again",
            cancelled.join(", ")
        );
    }
    Ok(exit::OK)
}

/// `vaelab status`.
pub fn status(ctx: &Context, args: &StatusArgs) -> Result<u8> {
    let store = &ctx.store;
    let names = match &args.sweep {
        Some(name) => vec![name.clone()],
        None => store.sweep_names()?,
    };
    if names.is_empty() {
        println!("no sweeps under {}", store.sweep_dir("").display());
    }
    for name in names {
        let manifest = Manifest::read(&store.sweep_manifest(&name)?)?;
        let runs = sweep::progress(store, &manifest)?;
        print!("{}", report::status_table(&manifest, &runs));
        let submissions = sweep::slurm::submissions(store, &name)?;
        if !submissions.is_empty() {
            let ids: Vec<String> = submissions.iter().map(|s| s.job_id.clone()).collect();
            let (queued, why) = sweep::slurm::queue_or_why(&ids);
            if let Some(why) = why {
                println!("slurm: cannot ask the queue ({why}); showing the runs on disk only");
            }
            print!(
                "{}",
                report::slurm_table(store, &manifest, &runs, &submissions, &queued)
            );
        }
    }
    Ok(exit::OK)
}

/// `vaelab ls`.
pub fn ls(ctx: &Context, args: &LsArgs) -> Result<u8> {
    let (records, unreadable) = compare::select::query(
        &ctx.store,
        args.sweep.as_deref(),
        args.commit.as_deref(),
        &args.filters,
    )?;
    print!("{}", report::run_listing(&ctx.store, &records)?);
    for u in &unreadable {
        eprintln!("unreadable: {u}");
    }
    Ok(exit::OK)
}

/// `vaelab show`.
pub fn show(ctx: &Context, args: &ShowArgs) -> Result<u8> {
    let record = ctx.store.record(&ctx.store.resolve_run(&args.run)?)?;
    print!("{}", report::run_sheet(&ctx.store, &record)?);
    Ok(exit::OK)
}

/// `vaelab eval`.
pub fn evaluate(ctx: &Context, args: &EvalArgs) -> Result<u8> {
    let store = &ctx.store;
    let mut sweeps = Vec::new();
    let mut ids = Vec::new();
    for target in &args.targets {
        match store.resolve(target)? {
            Target::Sweep(name) => {
                let manifest = Manifest::read(&store.manifest_path(&name))?;
                ids.extend(manifest.runs.iter().map(|r| r.id.clone()));
                sweeps.push(manifest);
            }
            Target::Run(id) => ids.push(id),
        }
    }
    let interrupter = install_ctrl_c();
    // `evaluate_run` sorts and deduplicates the k it evaluates at.
    if eval::evaluate_runs(store, &ids, &ctx.data_dir, ctx.quiet, &args.k, &interrupter)? {
        eprintln!("interrupted: rerun the same command to evaluate the rest");
        return Ok(exit::INTERRUPTED);
    }
    let records = ids
        .iter()
        .map(|id| store.record(id))
        .collect::<Result<Vec<_>, _>>()?;
    print!("{}", report::eval_table(&records));
    for manifest in &sweeps {
        sweep::write_tables(store, manifest, &sweep::current(store, manifest))?;
        let page = report::render_sweep(store, &ctx.data_dir, manifest, true)?;
        println!("report: {}", page.display());
    }
    Ok(exit::OK)
}

/// `vaelab sample`.
pub fn sample(ctx: &Context, args: &SampleArgs) -> Result<u8> {
    let record = ctx.store.record(&ctx.store.resolve_run(&args.run)?)?;
    let path = report::sample(
        &ctx.store,
        &record,
        args.digit,
        usize::from(args.n),
        args.seed,
        args.out.as_deref(),
    )?;
    println!("{}", path.display());
    Ok(exit::OK)
}

/// `vaelab judge`.
pub fn judge(ctx: &Context, args: &JudgeArgs) -> Result<u8> {
    let dataset = Dataset::from(args.dataset);
    let judge = eval::judge::Judge::load_or_train(dataset, &ctx.data_dir, ctx.quiet)?;
    println!("{}", report::judge_line(dataset, &judge.card));
    Ok(exit::OK)
}

/// `vaelab diff`: exit code 1 when a metric moved beyond noise or a run cannot be read.
pub fn diff(ctx: &Context, args: &DiffArgs) -> Result<u8> {
    let (a, b) = sides(&ctx.store, &args.a, &args.b)?;
    let diff = compare::diff::diff(&a, &b, args.tolerance)?;
    match args.format {
        DiffFormat::Json => println!("{}", serde_json::to_string_pretty(&diff)?),
        DiffFormat::Md => print!("{}", diff.render(true, args.only_changed)),
        DiffFormat::Table => print!("{}", diff.render(false, args.only_changed)),
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

/// The two sides of a comparison, by name (sweep, run, git revision).
fn sides(
    store: &Store,
    a: &str,
    b: &str,
) -> Result<(compare::select::Selection, compare::select::Selection)> {
    let records = store.records()?;
    Ok((
        compare::select::select(store, &records, a)?,
        compare::select::select(store, &records, b)?,
    ))
}

/// `vaelab plot`.
pub fn plot(ctx: &Context, args: &PlotArgs) -> Result<u8> {
    if let Some(names) = &args.diff {
        let (a, b) = sides(&ctx.store, &names[0], &names[1])?;
        for file in report::plot_diff(&ctx.store, &a, &b, (&names[0], &names[1]))? {
            println!("{}", file.display());
        }
    }
    let targets = args
        .targets
        .iter()
        .map(|t| ctx.store.resolve(t))
        .collect::<Result<Vec<_>>>()?;
    for target in &targets {
        for file in report::plot(&ctx.store, &ctx.data_dir, target)? {
            println!("{}", file.display());
        }
    }
    Ok(exit::OK)
}

/// `vaelab report`.
pub fn page(ctx: &Context, args: &ReportArgs) -> Result<u8> {
    let store = &ctx.store;
    for target in &args.targets {
        let page = match store.resolve(target)? {
            Target::Sweep(name) => {
                let manifest = Manifest::read(&store.manifest_path(&name))?;
                report::page::write_sweep(store, &manifest, false)?
            }
            Target::Run(id) => report::page::write_run(store, &store.record(&id)?)?,
        };
        println!("{}", page.display());
    }
    Ok(exit::OK)
}

/// Freezes `plan` and submits its runs not done as one Slurm job array; returns at once. Its
/// tasks send their runs to the trackers themselves; the MLflow experiment and the sweep's
/// parent run are made here first, so that tasks starting at once do not each make one.
fn submit_plan(
    ctx: &Context,
    plan: &matrix::SweepPlan,
    settings: &matrix::SlurmSettings,
    stack: sweep::stacking::StackPolicy,
    eval: &EvalPolicy,
    tracking: &Tracking,
) -> Result<u8> {
    let store = &ctx.store;
    sweep::slurm::preflight()?;
    let manifest = Manifest::from_plan(plan, stack);
    let path = manifest.freeze(store)?;
    if let Some(uri) = &tracking.mlflow {
        let experiment = tracking.experiment.as_deref().unwrap_or(&manifest.name);
        if let Err(e) = track::mlflow::export(store, &[], uri, experiment, Some(&manifest.name)) {
            eprintln!("warning: cannot reach MLflow before submitting ({e:#}); the tasks will try");
        }
    }
    let job = sweep::slurm::submit(
        store,
        &manifest,
        &path,
        &ctx.data_dir,
        settings,
        eval,
        tracking,
    )?;
    match job {
        None => println!(
            "sweep {}: all {} runs are done; nothing to submit",
            manifest.name,
            manifest.runs.len()
        ),
        Some(job) => print!("{}", report::submission_note(store, &manifest, &job)),
    }
    Ok(exit::OK)
}

/// Freezes and trains `plan` (from matrix `file`), writes its tables, pictures and page, sends
/// it to the trackers `tracking` names, prints its summary; the manifest and the exit code a
/// script can act on (130 interrupted, 1 when a run failed, 3 when a tracker missed something).
fn run_plan(
    plan: &matrix::SweepPlan,
    opts: &SweepOptions,
    file: &Path,
    tracking: &Tracking,
) -> Result<(Manifest, u8)> {
    let store = &opts.train.store;
    // What this machine cannot hold or has no device for fails now, before anything is written.
    preflight(plan.runs.iter().map(|r| &r.spec), |e| {
        format!("{}: {e}", file.display())
    })?;
    let manifest = Manifest::from_plan(plan, opts.stack);
    let path = manifest.freeze(store)?;
    println!("{}", report::sweep_header(&manifest, &path));
    let mut opts = opts.clone();
    let page = report::page::live(store.clone(), manifest.clone());
    let ids: Vec<String> = manifest.runs.iter().map(|r| r.id.clone()).collect();
    let live = track::Live::start(store, &ids, tracking, Some(&manifest.name));
    let mut hooks = vec![page];
    hooks.extend(live.hook());
    opts.on_progress = Some(std::sync::Arc::new(move || hooks.iter().for_each(|h| h())));
    // A relaunch with nothing to do leaves the tables, pictures and pages as they are.
    let mut current = false;
    let outcome = sweep::run_sweep(&manifest, &opts).and_then(|outcome| {
        current = report::sweep_is_current(store, &manifest);
        if !current {
            sweep::write_tables(store, &manifest, &outcome)?;
        }
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
    let plots = !outcome.interrupted && outcome.runs.iter().any(|(_, s, _)| *s == RunState::Done);
    if current {
        let page = report::page::sweep_page(store, &manifest.name);
        println!("report: {} (nothing changed)", page.display());
    } else {
        match report::render_sweep(store, &opts.train.data_dir, &manifest, plots) {
            Ok(page) => println!("report: {}", page.display()),
            Err(e) => eprintln!("warning: cannot write the report: {e:#}"),
        }
    }
    let tracked = live.finish();
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
    Ok((manifest, with_tracking(exit::OK, tracked)))
}

/// The exit code of an outcome a script can act on.
fn exit_code(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Done | Outcome::AlreadyDone => exit::OK,
        Outcome::Busy { .. } => exit::BUSY,
        Outcome::Interrupted { .. } => exit::INTERRUPTED,
        Outcome::Failed { .. } => exit::FAILED,
    }
}

/// Prints a run's table and fate; the exit code a script can act on.
fn outcome_code(run: &train::RunReport) -> u8 {
    print!("{}", report::epoch_table(&run.rows));
    let dir = run.dir.display();
    match &run.outcome {
        Outcome::Done => println!("done: {} -> {dir}", run.id),
        Outcome::AlreadyDone => println!("already complete: {} -> {dir}", run.id),
        Outcome::Busy { holder } => eprintln!(
            "busy: {} is being trained by process {} on {}",
            run.id, holder.pid, holder.host
        ),
        Outcome::Interrupted { epochs_done } => eprintln!(
            "interrupted: {} has {epochs_done} complete epoch(s) in {dir}; rerun the same command to resume",
            run.id
        ),
        Outcome::Failed { reason } => eprintln!("failed: {}: {reason} ({dir})", run.id),
    }
    exit_code(&run.outcome)
}
