//! Evaluation of trained runs on the test set: likelihood bounds, active units and per-dimension
//! KL ([`likelihood`]), and generated images judged by a classifier ([`judge`]). The entry point
//! is [`evaluate_run`], called when a run finishes training and by `vaelab eval`; results are a
//! tidy `eval.parquet` beside the run's metrics ([`crate::store::EvalRow`]).

pub mod judge;
pub mod likelihood;

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::prelude::*;
use burn::tensor::TensorData;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_pcg::Pcg64Mcg;

use crate::config::device_for;
use crate::config::RunSpec;
use crate::data::{epoch_seed, one_hot, rows, Mnist, Split, CLASSES};
use crate::model::Autoencoder;
use crate::store::{read_eval, write_eval, EvalRow, RunDir, RunState, Store};
use crate::train::{Outcome, RunReport, TrainOptions};
use judge::Judge;
use likelihood::Likelihood;

/// Draws judged per class for a CVAE's accuracy.
pub const JUDGED_PER_CLASS: usize = 100;
/// Prior draws whose classes make the histogram and entropy.
pub const PRIOR_DRAWS: usize = 1000;

/// Loads the trained model of run `dir` (parameters `spec`) from its `model.bpk`, on the run's
/// device.
pub fn load_trained(dir: &RunDir, spec: &RunSpec) -> Result<(Autoencoder, Device)> {
    let path = dir.model_path();
    if !path.exists() {
        bail!(
            "{}: no trained model ({} is missing); finish the run first",
            dir.id,
            path.display()
        );
    }
    let device = device_for(spec)?;
    let net = spec
        .model_config()
        .init(&device)
        .try_load_file(&path)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("cannot load {}", path.display()))?;
    Ok((net, device))
}

/// What [`evaluate_run`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Evaluated {
    /// Evaluated now; its rows.
    Done(Vec<EvalRow>),
    /// `eval.parquet` was already there; its rows.
    AlreadyDone(Vec<EvalRow>),
    /// The run has no trained model yet.
    NotTrained,
}

/// Evaluates run `id` on its test split (the first `limit` images when the run has a limit),
/// its IWAE bound at every k of `ks`, unless it has been (`eval.parquet` exists with those k):
/// writes and returns its rows. A run evaluated before at other k has its likelihood rows
/// redone at the union of both (one set of nested draws for all k) and keeps its judged rows.
pub fn evaluate_run(
    store: &Store,
    id: &str,
    mnist_dir: &Path,
    quiet: bool,
    ks: &[usize],
) -> Result<Evaluated> {
    let run = store.run(id);
    let before = read_eval(&run.eval_path())?;
    let had = |rows: &[EvalRow]| -> Vec<usize> {
        rows.iter()
            .filter(|r| r.metric == "iwae")
            .filter_map(|r| r.k.map(|k| k as usize))
            .collect()
    };
    if let Some(rows) = &before {
        let done = had(rows);
        // An AE has no bound: any k is "done".
        if done.is_empty() || ks.iter().all(|k| done.contains(k)) {
            return Ok(Evaluated::AlreadyDone(rows.clone()));
        }
    }
    if run.current_state() != RunState::Done {
        return Ok(Evaluated::NotTrained);
    }
    // The bounds are computed at ascending, distinct k: the asked-for and those done before.
    let mut ks = ks.to_vec();
    ks.extend(before.as_deref().map(had).unwrap_or_default());
    ks.sort_unstable();
    ks.dedup();
    let spec = run.read_spec()?;
    let (net, device) = load_trained(&run, &spec)?;
    let test = Mnist::load_as(
        spec.dataset,
        mnist_dir,
        Split::Test,
        spec.limit,
        spec.binarize,
    )?;
    let bounds = likelihood::evaluate(&net, spec.likelihood, &test, spec.seed, &device, &ks);
    let mut rows = likelihood_rows(id, &bounds);
    match before {
        // Judged before: the judge's rows stay.
        Some(old) => {
            let redone: Vec<String> = rows.iter().map(|r| r.metric.clone()).collect();
            rows.extend(old.into_iter().filter(|r| !redone.contains(&r.metric)));
        }
        None if net.is_variational() => {
            let judge = Judge::load_or_train(spec.dataset, mnist_dir, quiet)?;
            rows.extend(judged_rows(id, &net, &judge, spec.seed, &device));
        }
        None => {}
    }
    write_eval(&run.eval_path(), &rows)?;
    Ok(Evaluated::Done(rows))
}

/// Evaluates the runs of `reports` that finished ([`evaluate_run`]) at `opts.eval`'s k, after
/// training (nothing when it is off: `vaelab eval` does it later); a failure is a warning (the
/// run stays done, `vaelab eval` retries it), never a failed run.
pub fn evaluate_finished(reports: &[RunReport], opts: &TrainOptions) {
    let crate::config::defaults::EvalPolicy::K(ks) = &opts.eval else {
        return;
    };
    for report in reports {
        if !matches!(report.outcome, Outcome::Done | Outcome::AlreadyDone)
            || opts.interrupter.should_stop()
        {
            continue;
        }
        if let Err(e) = evaluate_run(&opts.store, &report.id, &opts.data_dir, opts.quiet, ks) {
            eprintln!(
                "warning: {}: evaluation failed: {e:#}; `vaelab eval {}` retries it",
                report.id, report.id
            );
        }
    }
}

/// `vaelab eval`: evaluates `ids` in order at IWAE sample counts `ks` ([`evaluate_run`]), one
/// line each on stderr, until `interrupter` stops it between runs; whether it was stopped
/// (rerunning resumes: evaluated runs are skipped).
pub fn evaluate_runs(
    store: &Store,
    ids: &[String],
    mnist_dir: &Path,
    quiet: bool,
    ks: &[usize],
    interrupter: &burn::train::Interrupter,
) -> Result<bool> {
    for id in ids {
        if interrupter.should_stop() {
            return Ok(true);
        }
        let t = std::time::Instant::now();
        match evaluate_run(store, id, mnist_dir, quiet, ks)? {
            Evaluated::Done(_) => eprintln!("{id}: evaluated in {:.1}s", t.elapsed().as_secs_f64()),
            Evaluated::AlreadyDone(_) => eprintln!("{id}: already evaluated"),
            Evaluated::NotTrained => eprintln!("{id}: not trained yet; skipped"),
        }
    }
    Ok(false)
}

/// The tidy rows of a likelihood evaluation.
fn likelihood_rows(id: &str, b: &Likelihood) -> Vec<EvalRow> {
    let row = |metric: &str, value: f64| EvalRow::new(id, metric, value);
    let with_se = |metric: &str, e: likelihood::Estimate| EvalRow {
        se: Some(e.se),
        ..row(metric, e.mean)
    };
    let mut rows = vec![
        row("images", b.images as f64),
        with_se("recon_nll", b.recon_nll),
    ];
    rows.extend(b.elbo.map(|e| with_se("elbo", e)));
    rows.extend(b.iwae.iter().map(|&(k, e)| EvalRow {
        k: Some(k as u32),
        ..with_se("iwae", e)
    }));
    rows.push(row("active_units", b.active_units() as f64));
    let per_dim = |metric: &str, values: &[f64]| -> Vec<EvalRow> {
        values
            .iter()
            .enumerate()
            .map(|(d, &v)| EvalRow {
                dim: Some(d as u32),
                ..row(metric, v)
            })
            .collect()
    };
    rows.extend(per_dim("activity", &b.activity));
    rows.extend(per_dim("kl_dim", &b.kl_per_dim));
    rows
}

/// Decodes `z ~ N(0, I)` drawn from `rng` as `classes` (CVAE; one per draw) or unconditionally.
fn draw(net: &Autoencoder, classes: &[u8], rng: &mut Pcg64Mcg, device: &Device) -> Vec<Vec<f32>> {
    let (n, latent) = (classes.len(), net.latent());
    let z: Vec<f32> = (0..n * latent)
        .map(|_| rng.sample(StandardNormal))
        .collect();
    let z = Tensor::from_data(TensorData::new(z, [n, latent]), device);
    let labels = net.is_conditional().then(|| one_hot(classes, device));
    rows(net.decode(z, labels))
}

/// The judge's verdict on a variational model's samples: for a CVAE, the share of
/// [`JUDGED_PER_CLASS`] draws of each class classified as that class (and overall); for both,
/// the class histogram and entropy (bits) of [`PRIOR_DRAWS`] prior draws (a CVAE's drawn as
/// classes 0–9 in turn).
fn judged_rows(
    id: &str,
    net: &Autoencoder,
    judge: &Judge,
    seed: u64,
    device: &Device,
) -> Vec<EvalRow> {
    let mut rng = Pcg64Mcg::seed_from_u64(epoch_seed(seed ^ 0x0D6E, 0));
    let row = |metric: &str, value: f64| EvalRow::new(id, metric, value);
    let mut rows = vec![row("judge_accuracy", judge.card.test_accuracy)];
    if net.is_conditional() {
        let mut correct_all = 0;
        for class in 0..CLASSES as u8 {
            let asked = vec![class; JUDGED_PER_CLASS];
            let got = judge.classify(&draw(net, &asked, &mut rng, device));
            let correct = got.iter().filter(|&&c| c == class).count();
            correct_all += correct;
            rows.push(EvalRow {
                class: Some(u32::from(class)),
                ..row("judged_accuracy", correct as f64 / JUDGED_PER_CLASS as f64)
            });
        }
        rows.push(row(
            "judged_accuracy",
            correct_all as f64 / (CLASSES * JUDGED_PER_CLASS) as f64,
        ));
    }
    let classes: Vec<u8> = (0..PRIOR_DRAWS).map(|k| (k % CLASSES) as u8).collect();
    let got = judge.classify(&draw(net, &classes, &mut rng, device));
    let mut counts = [0usize; CLASSES];
    for c in got {
        counts[usize::from(c)] += 1;
    }
    let mut entropy = 0.0;
    for (class, &count) in counts.iter().enumerate() {
        let p = count as f64 / PRIOR_DRAWS as f64;
        if p > 0.0 {
            entropy -= p * p.log2();
        }
        rows.push(EvalRow {
            class: Some(class as u32),
            ..row("prior_class_share", p)
        });
    }
    rows.push(row("prior_class_entropy", entropy));
    rows
}
