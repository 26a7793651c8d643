//! Text tables: per-epoch tables, sweep summaries, status, dry-run listings. Every table is
//! laid out by comfy-table ([`text_table`]); the parameter columns of run tables come from the
//! parameter schema ([`crate::config::params`]), the result columns from the store's
//! ([`crate::store::FINAL_COLUMNS`]).

use comfy_table::{CellAlignment, Table};

use crate::config::matrix::SweepPlan;
use crate::config::params::{describe, param_named, param_value, varying_keys};
use crate::data::{Split, CLASSES};
use crate::eval::likelihood::ACTIVE_THRESHOLD;
use crate::model::ModelKind;
use crate::store::{
    build_info, eval_row, eval_value, read_metrics, result_value, EpochRow, RunRecord, RunState,
    Store, METRICS_COLUMNS,
};
use crate::sweep::stacking::{self, StackPolicy};
use crate::sweep::{eta_seconds, Manifest, RunProgress, SweepReport};

/// A borderless text table: columns two spaces apart, the columns whose flag in `right` is set
/// right-aligned (numbers), no trailing spaces.
pub fn text_table(header: &[&str], right: &[bool], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    for (i, &r) in right.iter().enumerate() {
        if let Some(column) = table.column_mut(i) {
            column.set_padding((0, 2));
            if r {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    let mut out = table.trim_fmt();
    out.push('\n');
    out
}

/// A Markdown (GitHub) table of `rows` under `header`.
pub fn markdown_table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::ASCII_MARKDOWN);
    table.set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    let mut out = table.trim_fmt();
    out.push('\n');
    out
}

/// A number with three decimals, `-` when absent.
fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
}

/// The parameter columns a table of `specs` shows: the model and every other key that varies
/// among them ([`varying_keys`]); the model, β, latent size and seed when nothing varies.
fn shown_params<'a>(
    specs: impl IntoIterator<Item = &'a crate::config::RunSpec>,
) -> Vec<&'static str> {
    let varying = varying_keys(specs);
    if varying.is_empty() {
        return vec!["model", "beta", "latent", "seed"];
    }
    std::iter::once("model")
        .chain(varying.into_iter().filter(|k| *k != "model"))
        .collect()
}

/// The cells of `keys` of `spec`: as a matrix writes them, β `-` for an AE.
fn param_cells(spec: &crate::config::RunSpec, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .map(|k| match *k {
            "beta" => beta_cell(spec),
            _ => param_value(spec, k),
        })
        .collect()
}

/// Whether each of `keys` is a numeric column (right-aligned).
fn numeric(keys: &[&str]) -> Vec<bool> {
    keys.iter()
        .map(|k| param_named(k).is_some_and(|p| !p.kind.is_text()))
        .collect()
}

/// A table of per-epoch rows, the columns of `metrics.parquet` but the run id: epoch, split,
/// recon, KL, the KL term, loss, article loss, learning rate, KL weight, capacity, seconds (to
/// the hundredth, which the benchmark reads).
pub fn epoch_table(rows: &[EpochRow]) -> String {
    let cells = rows
        .iter()
        .map(|r| {
            vec![
                r.epoch.to_string(),
                r.split.to_string(),
                format!("{:.3}", r.recon),
                num(r.kl),
                num(r.beta_kl),
                format!("{:.3}", r.loss),
                num(r.article_loss),
                r.lr.map_or_else(|| "-".to_string(), |lr| format!("{lr:.3e}")),
                r.kl_weight
                    .map_or_else(|| "-".to_string(), |w| format!("{w:.4}")),
                num(r.capacity),
                format!("{:.2}", r.seconds),
            ]
        })
        .collect();
    // The columns of `metrics.parquet` but the run id.
    let header = &METRICS_COLUMNS[1..];
    let mut right = vec![true; header.len()];
    right[1] = false;
    text_table(header, &right, cells)
}

/// β as a table cell: `-` for the AE, which has no KL term.
pub fn beta_cell(spec: &crate::config::RunSpec) -> String {
    match spec.model {
        ModelKind::Ae => "-".to_string(),
        ModelKind::Vae | ModelKind::Cvae => format!("{}", spec.beta),
    }
}

/// `3h02m`, `4m10s`, `12s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The end-of-sweep table: one line per run with the parameters that vary, its state and its
/// final test metrics (and why it failed).
pub fn sweep_table(report: &SweepReport, store: &Store) -> String {
    let keys = shown_params(report.runs.iter().map(|(r, _, _)| &r.spec));
    let results = ["test_recon", "test_kl", "test_loss"];
    let mut header = vec!["run"];
    header.extend(&keys);
    header.push("state");
    header.extend(results);
    header.push("note");
    let mut right = vec![false];
    right.extend(numeric(&keys));
    right.extend([false, true, true, true, false]);
    let rows = report
        .runs
        .iter()
        .map(|(run, state, message)| {
            let rows = read_metrics(&store.run(&run.id).metrics_path()).unwrap_or_default();
            let mut cells = vec![run.id.clone()];
            cells.extend(param_cells(&run.spec, &keys));
            cells.push(state.as_str().to_string());
            cells.extend(results.map(|c| num(result_value(&rows, &[], c))));
            cells.push(message.as_ref().map_or(String::new(), |m| format!("({m})")));
            cells
        })
        .collect();
    text_table(&header, &right, rows)
}

/// `vaelab status`: counts, ETA and one line per run.
pub fn status_table(manifest: &Manifest, runs: &[RunProgress]) -> String {
    let count = |s: RunState| runs.iter().filter(|r| r.state == s).count();
    let eta = eta_seconds(runs).map_or_else(|| "unknown until an epoch finishes".into(), duration);
    let mut out = format!(
        "sweep {} ({} runs, code {}): {} done, {} running, {} queued, {} interrupted, {} failed; eta {eta}\n",
        manifest.name,
        runs.len(),
        &manifest.code_fingerprint[..manifest.code_fingerprint.len().min(12)],
        count(RunState::Done),
        count(RunState::Running),
        count(RunState::Queued),
        count(RunState::Interrupted),
        count(RunState::Failed),
    );
    let keys = shown_params(runs.iter().map(|r| &r.run.spec));
    let mut header = vec!["run"];
    header.extend(&keys);
    header.extend(["state", "epoch", "test_loss"]);
    let mut right = vec![false];
    right.extend(numeric(&keys));
    right.extend([false, true, true]);
    let rows = runs
        .iter()
        .map(|r| {
            let mut cells = vec![r.run.id.clone()];
            cells.extend(param_cells(&r.run.spec, &keys));
            cells.push(r.state.as_str().to_string());
            cells.push(format!("{}/{}", r.epochs_done, r.run.spec.epochs));
            cells.push(num(r.test_loss));
            cells
        })
        .collect();
    out.push_str(&text_table(&header, &right, rows));
    out
}

/// The Slurm part of `vaelab status`: each entry's task in the queue (squeue) merged with the
/// run on disk, and its log.
pub fn slurm_table(
    store: &Store,
    manifest: &Manifest,
    runs: &[RunProgress],
    submissions: &[crate::sweep::slurm::Submission],
    queued: &[crate::sweep::slurm::QueuedTask],
) -> String {
    let last = submissions.last().expect("at least one submission");
    let mut out = format!(
        "slurm: {} submission(s), last job {} (array {}, {}); {} task(s) in the queue\n",
        submissions.len(),
        last.job_id,
        last.array,
        last.submitted,
        queued.len()
    );
    out.push_str(&format!(
        "{:<16} {:>5} {:<24} {:<11} {}\n",
        "run", "task", "slurm", "on disk", "log"
    ));
    for (i, run) in runs.iter().enumerate() {
        let Some(index) = manifest.entry_of(i) else {
            continue;
        };
        // The newest submission that included this entry.
        let job = submissions
            .iter()
            .rev()
            .find(|s| s.entries().contains(&index));
        let Some(job) = job else { continue };
        let slurm = match queued
            .iter()
            .find(|t| t.index == index && t.job_id == job.job_id)
        {
            Some(t) if t.reason.is_empty() || t.reason == "None" => t.state.clone(),
            Some(t) => format!("{} ({})", t.state, t.reason),
            None if run.state.is_final() => "ended".to_string(),
            None => "not queued".to_string(),
        };
        let log = crate::sweep::slurm::log_path(store, &manifest.name, &job.job_id, index);
        out.push_str(&format!(
            "{:<16} {:>5} {:<24} {:<11} {}\n",
            run.run.id,
            index,
            slurm,
            run.state.as_str(),
            log.display()
        ));
    }
    out
}

/// `vaelab sweep --dry-run`: one line per run (id + the parameters that vary), grouped by the
/// stack it trains in, and the counts.
pub fn plan_listing(plan: &SweepPlan, stack: StackPolicy) -> String {
    let keys = plan.varying_keys();
    let specs: Vec<_> = plan.runs.iter().map(|r| r.spec.clone()).collect();
    let stacks = stacking::stacks(&specs, stack);
    let mut out = String::new();
    for (k, members) in stacks.iter().enumerate() {
        let spec = &specs[members[0]];
        if stacks.len() < specs.len() {
            out.push_str(&format!(
                "stack {k}: {} member(s) of {} ({})\n",
                members.len(),
                spec.stack_key(),
                match stack {
                    StackPolicy::Auto => format!("auto size {}", stacking::auto_size(spec)),
                    StackPolicy::Off => "off".to_string(),
                    StackPolicy::Size(n) => format!("at most {n}"),
                }
            ));
        }
        for &i in members {
            out.push_str(&format!(
                "  {}  {}\n",
                specs[i].run_id(build_info::CODE_FINGERPRINT),
                describe(&specs[i], &keys)
            ));
        }
    }
    if stacks.len() == specs.len() {
        out.push_str("every run trains alone (no two runs share a shape, or --stack off)\n");
    }
    out.push_str(&format!(
        "{} runs in {} entries in sweep {}",
        plan.runs.len(),
        stacks.len(),
        plan.name
    ));
    if plan.excluded > 0 {
        out.push_str(&format!(", {} grid points excluded", plan.excluded));
    }
    if plan.duplicates > 0 {
        out.push_str(&format!(
            ", {} duplicate points merged (same run, e.g. an AE under several beta)",
            plan.duplicates
        ));
    }
    out.push('\n');
    out
}

/// `vaelab ls`: one line per run (id, sweeps listing it, commit, parameters, state, final test
/// loss), in the order given.
pub fn run_listing(store: &Store, records: &[RunRecord]) -> anyhow::Result<String> {
    let mut sweeps_of: Vec<(String, Vec<String>)> = Vec::new();
    for name in store.sweep_names()? {
        let manifest = Manifest::read(&store.manifest_path(&name))?;
        sweeps_of.push((name, manifest.runs.into_iter().map(|r| r.id).collect()));
    }
    let keys = shown_params(records.iter().map(|r| &r.spec));
    let mut header = vec!["run", "sweep", "commit"];
    header.extend(&keys);
    header.extend(["trained", "state", "test_loss"]);
    let mut right = vec![false, false, false];
    right.extend(numeric(&keys));
    right.extend([true, false, true]);
    let rows = records
        .iter()
        .map(|r| {
            let sweeps: Vec<&str> = sweeps_of
                .iter()
                .filter(|(_, ids)| ids.contains(&r.id))
                .map(|(n, _)| n.as_str())
                .collect();
            let commit = r.provenance.as_ref().map_or("-".to_string(), |p| {
                let short = &p.git_commit[..p.git_commit.len().min(8)];
                if p.git_dirty {
                    format!("{short}+dirty")
                } else {
                    short.to_string()
                }
            });
            let mut cells = vec![
                r.id.clone(),
                if sweeps.is_empty() {
                    "-".to_string()
                } else {
                    sweeps.join(",")
                },
                commit,
            ];
            cells.extend(param_cells(&r.spec, &keys));
            cells.push(format!(
                "{}/{}",
                r.last(Split::Train).map_or(0, |t| t.epoch),
                r.spec.epochs
            ));
            cells.push(r.state.to_string());
            cells.push(num(r.result("test_loss")));
            cells
        })
        .collect();
    Ok(text_table(&header, &right, rows))
}

/// The test-set evaluation of `records`, one line each: test ELBO and IWAE bound (k = 1000, ±
/// standard error) in nats per image, active units of the latent size, the judged accuracy of
/// a CVAE's requested classes and the class entropy of prior samples (bits; 3.32 = all ten
/// equally). `-` where a number does not apply or the run is not evaluated.
pub fn eval_table(records: &[RunRecord]) -> String {
    let two = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
    let keys = shown_params(records.iter().map(|r| &r.spec));
    let mut header = vec!["run"];
    header.extend(&keys);
    header.extend(["test_elbo", "iwae_1000 ± se", "active", "judged", "entropy"]);
    let mut right = vec![false];
    right.extend(numeric(&keys));
    right.extend([true; 5]);
    let rows = records
        .iter()
        .map(|r| {
            let iwae = eval_row(&r.eval, "iwae", Some(1000), None).map_or("-".to_string(), |e| {
                format!("{:.2} ± {:.2}", e.value, e.se.unwrap_or(f64::NAN))
            });
            let active = r
                .eval("active_units", None)
                .map_or("-".to_string(), |a| format!("{a}/{}", r.spec.latent));
            let mut cells = vec![r.id.clone()];
            cells.extend(param_cells(&r.spec, &keys));
            cells.extend([
                two(r.eval("elbo", None)),
                iwae,
                active,
                r.eval("judged_accuracy", None)
                    .map_or("-".to_string(), |a| format!("{:.1}%", 100.0 * a)),
                two(r.eval("prior_class_entropy", None)),
            ]);
            cells
        })
        .collect();
    text_table(&header, &right, rows)
}

/// The per-dimension evaluation of one run, most active dimension first: KL (nats) and
/// activity `Cov_x(E_q[z_d|x])` (active above [`ACTIVE_THRESHOLD`]).
pub fn eval_dims_table(record: &RunRecord) -> String {
    let of = |metric: &str| -> Vec<(u32, f64)> {
        record
            .eval
            .iter()
            .filter(|e| e.metric == metric)
            .filter_map(|e| e.dim.map(|d| (d, e.value)))
            .collect()
    };
    let (kl, activity) = (of("kl_dim"), of("activity"));
    let mut dims: Vec<(u32, f64)> = activity.clone();
    // Ranked by KL where there is one (VAE, CVAE), by activity for an AE.
    let rank = |d: u32| kl.iter().find(|(k, _)| *k == d).map_or(0.0, |x| x.1);
    dims.sort_by(|a, b| rank(b.0).total_cmp(&rank(a.0)).then(b.1.total_cmp(&a.1)));
    let mut out = format!(
        "{:>4}  {:>9}  {:>9}  {:<6}\n",
        "z", "kl", "activity", "active"
    );
    for (d, act) in dims {
        let kl = kl.iter().find(|(k, _)| *k == d).map(|x| x.1);
        out.push_str(&format!(
            "{:>4}  {:>9}  {:>9.4}  {:<6}\n",
            format!("z{}", d + 1),
            kl.map_or("-".to_string(), |k| format!("{k:.3}")),
            act,
            if act > ACTIVE_THRESHOLD { "yes" } else { "no" }
        ));
    }
    out
}

/// The judge's verdicts per class: a CVAE's accuracy on each requested class, and the share of
/// prior draws classified as each class (does the model draw all ten?). Empty for an AE.
pub fn eval_classes_table(record: &RunRecord) -> String {
    let per_class = |metric: &str| -> Option<String> {
        let cells: Vec<String> = (0..CLASSES as u32)
            .map(|c| {
                eval_value(&record.eval, metric, None, Some(c))
                    .map(|v| format!("{:>6.1}", 100.0 * v))
            })
            .collect::<Option<_>>()?;
        Some(cells.join(""))
    };
    let mut out = String::new();
    let classes = record.spec.dataset;
    if per_class("prior_class_share").is_some() {
        let header: String = (0..CLASSES)
            .map(|c| {
                format!(
                    "{:>6}",
                    classes.class_name(c).chars().take(6).collect::<String>()
                )
            })
            .collect();
        out.push_str(&format!("{:<22}{header}\n", "judged class, %"));
    }
    if let Some(row) = per_class("judged_accuracy") {
        out.push_str(&format!("{:<22}{row}\n", "asked for and drawn"));
    }
    if let Some(row) = per_class("prior_class_share") {
        out.push_str(&format!("{:<22}{row}\n", "share of prior draws"));
    }
    out
}

/// `vaelab show`: a run's id and folder, its resolved config, its provenance, its per-epoch
/// table and its evaluation.
pub fn run_sheet(store: &Store, record: &RunRecord) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let dir = store.run(&record.id);
    let mut out = format!("run {} ({})\n\n", record.id, dir.path.display());
    let config = std::fs::read_to_string(dir.config_path())?;
    let _ = writeln!(out, "[config]\n{config}");
    match std::fs::read_to_string(dir.file("provenance.toml")) {
        Ok(text) => {
            let _ = writeln!(out, "[provenance]\n{text}");
        }
        Err(_) => out.push_str("[provenance]\n(not written yet)\n\n"),
    }
    out.push_str(&epoch_table(&record.rows));
    if !record.eval.is_empty() {
        out.push_str("\n[eval] test split, nats per image (see `vaelab eval --help`)\n");
        out.push_str(&eval_table(std::slice::from_ref(record)));
        out.push_str(&eval_dims_table(record));
        out.push_str(&eval_classes_table(record));
    }
    Ok(out)
}

/// `vaelab judge`: the cached classifier's accuracy, widths, hash and folder, on one line.
pub fn judge_line(dataset: crate::data::Dataset, card: &crate::eval::judge::JudgeCard) -> String {
    let widths: Vec<String> = card.widths.iter().map(|w| w.to_string()).collect();
    format!(
        "{dataset} judge: {:.2}% test accuracy, {} MLP, sha256 {} ({})",
        100.0 * card.test_accuracy,
        widths.join("-"),
        card.sha256,
        crate::eval::judge::judge_dir(dataset).display()
    )
}

/// The first line of `vaelab sweep`: its runs, stacks and frozen manifest.
pub fn sweep_header(manifest: &Manifest, path: &std::path::Path) -> String {
    let stacks = manifest.entries().len();
    let stacked = if stacks < manifest.runs.len() {
        format!(" in {stacks} stacks")
    } else {
        String::new()
    };
    format!(
        "sweep {}: {} runs{stacked}, manifest {}",
        manifest.name,
        manifest.runs.len(),
        path.display()
    )
}

/// What `vaelab sweep --executor slurm` prints after a submission: the job, its script and
/// logs, and how to watch and stop it.
pub fn submission_note(
    store: &Store,
    manifest: &Manifest,
    job: &crate::sweep::slurm::Submission,
) -> String {
    let logs = crate::sweep::slurm::slurm_dir(store, &manifest.name).join("logs");
    format!(
        "sweep {name}: submitted Slurm job {id} ({tasks} of {entries} entries for {runs} runs, array {array})\n\
         script: {script}\n\
         logs: {logs}\n\
         watch: vaelab status {name}    stop: vaelab cancel {name}\n",
        name = manifest.name,
        id = job.job_id,
        tasks = job.entries().len(),
        entries = manifest.entries().len(),
        runs = manifest.runs.len(),
        array = job.array,
        script = job.script.display(),
        logs = logs.display(),
    )
}
