//! Text tables: per-epoch tables, sweep summaries, status, dry-run listings.

use crate::config::matrix::{describe, SweepPlan};
use crate::data::CLASSES;
use crate::eval::likelihood::ACTIVE_THRESHOLD;
use crate::model::ModelKind;
use crate::store::{
    build_info, eval_row, eval_value, last_row, read_metrics, EpochRow, RunRecord, RunState, Store,
};
use crate::sweep::stacking::{self, StackPolicy};
use crate::sweep::{eta_seconds, Manifest, RunProgress, SweepReport};

/// A fixed-width table of per-epoch rows: epoch, split, recon, KL, β·KL, loss, article loss,
/// seconds (to the hundredth, which the benchmark reads).
pub fn epoch_table(rows: &[EpochRow]) -> String {
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
    let mut out = format!(
        "{:>5}  {:<5}  {:>10}  {:>9}  {:>9}  {:>10}  {:>12}  {:>7}\n",
        "epoch", "split", "recon", "kl", "beta_kl", "loss", "article_loss", "seconds"
    );
    for r in rows {
        out.push_str(&format!(
            "{:>5}  {:<5}  {:>10.3}  {:>9}  {:>9}  {:>10.3}  {:>12}  {:>7.2}\n",
            r.epoch,
            r.split,
            r.recon,
            opt(r.kl),
            opt(r.beta_kl),
            r.loss,
            opt(r.article_loss),
            r.seconds
        ));
    }
    out
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

/// The end-of-sweep table: one line per run with its parameters and final test metrics.
pub fn sweep_table(report: &SweepReport, store: &Store) -> String {
    let mut out = format!(
        "{:<16} {:<5} {:>6} {:>6} {:>5} {:<11} {:>10} {:>9} {:>10}\n",
        "run", "model", "beta", "latent", "seed", "state", "test_recon", "test_kl", "test_loss"
    );
    for (run, state, message) in &report.runs {
        let rows = read_metrics(&store.run(&run.id).metrics_path()).unwrap_or_default();
        let test = last_row(&rows, "test");
        let num = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
        let s = &run.spec;
        out.push_str(&format!(
            "{:<16} {:<5} {:>6} {:>6} {:>5} {:<11} {:>10} {:>9} {:>10}{}\n",
            run.id,
            s.model.as_str(),
            beta_cell(s),
            s.latent,
            s.seed,
            state.as_str(),
            num(test.map(|r| r.recon)),
            num(test.and_then(|r| r.kl)),
            num(test.map(|r| r.loss)),
            message
                .as_ref()
                .map_or(String::new(), |m| format!("  ({m})")),
        ));
    }
    out
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
    out.push_str(&format!(
        "{:<16} {:<5} {:>6} {:>6} {:>5} {:<11} {:>7} {:>10}\n",
        "run", "model", "beta", "latent", "seed", "state", "epoch", "test_loss"
    ));
    for r in runs {
        let s = &r.run.spec;
        out.push_str(&format!(
            "{:<16} {:<5} {:>6} {:>6} {:>5} {:<11} {:>7} {:>10}\n",
            r.run.id,
            s.model.as_str(),
            beta_cell(s),
            s.latent,
            s.seed,
            r.state.as_str(),
            format!("{}/{}", r.epochs_done, s.epochs),
            r.test_loss
                .map_or_else(|| "-".into(), |v| format!("{v:.3}")),
        ));
    }
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
        let manifest = Manifest::read(&Manifest::path(store, &name))?;
        sweeps_of.push((name, manifest.runs.into_iter().map(|r| r.id).collect()));
    }
    let mut out = format!(
        "{:<16} {:<16} {:<12} {:<5} {:>6} {:>6} {:>6} {:<11} {:>10}\n",
        "run", "sweep", "commit", "model", "beta", "latent", "epochs", "state", "test_loss"
    );
    for r in records {
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
        let s = &r.spec;
        out.push_str(&format!(
            "{:<16} {:<16} {:<12} {:<5} {:>6} {:>6} {:>6} {:<11} {:>10}\n",
            r.id,
            if sweeps.is_empty() {
                "-".to_string()
            } else {
                sweeps.join(",")
            },
            commit,
            s.model.as_str(),
            beta_cell(s),
            s.latent,
            format!("{}/{}", r.last("train").map_or(0, |t| t.epoch), s.epochs),
            r.state,
            r.last("test")
                .map_or_else(|| "-".into(), |t| format!("{:.3}", t.loss)),
        ));
    }
    Ok(out)
}

/// The test-set evaluation of `records`, one line each: test ELBO and IWAE bound (k = 1000, ±
/// standard error) in nats per image, active units of the latent size, the judged accuracy of
/// a CVAE's requested classes and the class entropy of prior samples (bits; 3.32 = all ten
/// equally). `-` where a number does not apply or the run is not evaluated.
pub fn eval_table(records: &[RunRecord]) -> String {
    let num = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
    };
    let mut out = format!(
        "{:<16} {:<5} {:>5} {:>6} {:>10} {:>18} {:>6} {:>7} {:>7}\n",
        "run",
        "model",
        "beta",
        "latent",
        "test_elbo",
        "iwae_1000 ± se",
        "active",
        "judged",
        "entropy"
    );
    for r in records {
        let iwae = eval_row(&r.eval, "iwae", Some(1000), None).map_or("-".to_string(), |e| {
            format!("{:.2} ± {:.2}", e.value, e.se.unwrap_or(f64::NAN))
        });
        let active = r
            .eval("active_units", None)
            .map_or("-".to_string(), |a| format!("{a}/{}", r.spec.latent));
        out.push_str(&format!(
            "{:<16} {:<5} {:>5} {:>6} {:>10} {:>18} {:>6} {:>7} {:>7}\n",
            r.id,
            r.spec.model.as_str(),
            beta_cell(&r.spec),
            r.spec.latent,
            num(r.eval("elbo", None), 2),
            iwae,
            active,
            r.eval("judged_accuracy", None)
                .map_or("-".to_string(), |a| format!("{:.1}%", 100.0 * a)),
            num(r.eval("prior_class_entropy", None), 2),
        ));
    }
    out
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
