//! Comparing two sets of runs (`vaelab diff A B`, [`diff`]): what changed between them and
//! whether their results moved beyond noise. A and B are git revisions, sweep names or run ids
//! ([`super::select`]); the text, Markdown and HTML renderings are in `report`.
//!
//! Runs are paired by their parameters (the code is not a parameter), so the same experiment at
//! two commits lines up. Noise comes from the seed spread where a pair's experiment has several
//! seeds on both sides; otherwise a relative tolerance stands in for it, and the output says so.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::mean_sd;
use super::select::Selection;
use crate::config::params::{describe, varying_keys, PARAM_KEYS};
use crate::config::RunSpec;
use crate::data::Split;
use crate::store::lockfile;
use crate::store::RunRecord;
use crate::tool::git;

/// One final metric of a pair.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MetricDelta {
    /// One of `test_recon`, `test_kl`, `test_loss`, `test_elbo`, `iwae_1000`, `active_units`.
    pub metric: &'static str,
    /// Value in A.
    pub a: Option<f64>,
    /// Value in B.
    pub b: Option<f64>,
    /// B − A.
    pub delta: Option<f64>,
    /// (B − A) / A in percent.
    pub delta_pct: Option<f64>,
    /// Largest |delta| still counted as noise.
    pub noise: f64,
    /// Where `noise` comes from: `2 sd over N seeds` or `tolerance x%`.
    pub noise_from: String,
    /// |delta| > noise.
    pub changed: bool,
}

/// Two runs with the same parameters.
#[derive(Clone, Debug, Serialize)]
pub struct Pair {
    /// The parameters that tell pairs apart, `key=value` separated by spaces.
    pub params: String,
    /// Run in A.
    pub a: String,
    /// Run in B.
    pub b: String,
    /// Final test metrics.
    pub metrics: Vec<MetricDelta>,
    /// Epoch and B − A of the largest per-epoch test-loss difference.
    pub largest_epoch_delta: Option<(u32, f64)>,
}

/// A run with no partner on the other side, and how it differs from the closest one there.
#[derive(Clone, Debug, Serialize)]
pub struct Unpaired {
    /// `A` or `B`.
    pub side: &'static str,
    /// The run.
    pub id: String,
    /// Its parameters.
    pub params: String,
    /// The closest run on the other side and the keys that differ (`key: this -> that`).
    pub closest: Option<(String, Vec<String>)>,
}

/// A dependency whose version differs between the two commits' `Cargo.lock`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DependencyChange {
    /// Crate name.
    pub name: String,
    /// Version(s) at A.
    pub a: String,
    /// Version(s) at B.
    pub b: String,
}

/// The whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    /// Side A.
    pub a: String,
    /// Side B.
    pub b: String,
    /// Runs on side A.
    pub a_runs: usize,
    /// Runs on side B.
    pub b_runs: usize,
    /// `git log --oneline A..B`, when both sides have a commit.
    pub commits: Vec<String>,
    /// `git diff --stat A B` lines.
    pub files: Vec<String>,
    /// Cargo.lock changes.
    pub dependencies: Vec<DependencyChange>,
    /// Facts of the machine set-up that can change numbers without changing run ids (CPU,
    /// threads, libtorch, data checksums), where the sides' runs differ.
    pub setup: Vec<DependencyChange>,
    /// Runs of either side that cannot be read (`run: file: why`); the diff fails with any.
    pub unreadable: Vec<String>,
    /// Paired runs.
    pub pairs: Vec<Pair>,
    /// Runs without a partner.
    pub unpaired: Vec<Unpaired>,
    /// True when some paired metric changed beyond noise.
    pub changed: bool,
}

fn final_metrics(run: &RunRecord) -> [Option<f64>; 6] {
    METRICS.map(|column| run.result(column))
}

/// The compared metrics: the final test epoch's, then the test-set evaluation's (compared only
/// when both runs of a pair have been evaluated).
const METRICS: [&str; 6] = [
    "test_recon",
    "test_kl",
    "test_loss",
    "test_elbo",
    "iwae_1000",
    "active_units",
];
/// Where the evaluation's metrics start in [`METRICS`].
const EVAL_METRICS: usize = 3;

/// Sample standard deviation; `None` below two values (no spread to speak of).
fn sd(values: &[f64]) -> Option<f64> {
    (values.len() > 1).then(|| mean_sd(values).1)
}

fn without_seed(spec: &RunSpec) -> RunSpec {
    RunSpec {
        seed: 0,
        ..spec.clone()
    }
}

/// Parameter keys whose values differ between `a` and `b`, as `key: a -> b`.
fn differing(a: &RunSpec, b: &RunSpec) -> Vec<String> {
    PARAM_KEYS
        .iter()
        .filter_map(|k| {
            let (x, y) = (describe(a, &[k]), describe(b, &[k]));
            (x != y).then(|| {
                let strip = |s: String| s.split_once('=').map(|(_, v)| v.to_string()).unwrap_or(s);
                format!("{k}: {} -> {}", strip(x), strip(y))
            })
        })
        .collect()
}

/// How far apart two specs are: the number of differing keys, then the size of the numeric
/// gaps (so β = 3 is closer to 2.5 than to 1).
fn distance(a: &RunSpec, b: &RunSpec) -> (usize, f64) {
    let rel = |x: f64, y: f64| (x - y).abs() / x.abs().max(y.abs()).max(1e-12);
    let gap = (a.beta - b.beta).abs()
        + rel(a.latent as f64, b.latent as f64)
        + rel(a.epochs as f64, b.epochs as f64)
        + rel(a.batch_size as f64, b.batch_size as f64)
        + rel(a.lr, b.lr);
    (differing(a, b).len(), gap)
}

/// The run of `others` closest to `spec`, and the keys that differ.
fn closest(spec: &RunSpec, others: &[RunRecord]) -> Option<(String, Vec<String>)> {
    others
        .iter()
        .min_by(|x, y| {
            let (dx, dy) = (distance(spec, &x.spec), distance(spec, &y.spec));
            dx.0.cmp(&dy.0).then(dx.1.total_cmp(&dy.1))
        })
        .map(|r| (r.id.clone(), differing(spec, &r.spec)))
}

/// `name -> versions` of a `Cargo.lock` text.
fn lock_versions(text: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, version) in lockfile::packages(text) {
        out.entry(name).or_default().push(version);
    }
    out.into_iter().map(|(k, v)| (k, v.join(", "))).collect()
}

/// Compares two selections; `tolerance` (relative) stands in for noise without seed spread.
pub fn diff(a: &Selection, b: &Selection, tolerance: f64) -> Result<Diff> {
    let (mut commits, mut files, mut dependencies) = (Vec::new(), Vec::new(), Vec::new());
    if let (Some(ca), Some(cb)) = (&a.commit, &b.commit) {
        if ca != cb {
            let range = format!("{ca}..{cb}");
            commits = git(&["log", "--oneline", &range])
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect();
            files = git(&["diff", "--stat", ca, cb])
                .unwrap_or_default()
                .lines()
                .map(|l| l.trim().to_string())
                .collect();
            let lock = |c: &str| git(&["show", &format!("{c}:Cargo.lock")]).unwrap_or_default();
            let (la, lb) = (lock_versions(&lock(ca)), lock_versions(&lock(cb)));
            for name in la
                .keys()
                .chain(lb.keys())
                .collect::<std::collections::BTreeSet<_>>()
            {
                let (va, vb) = (la.get(name), lb.get(name));
                if va != vb {
                    dependencies.push(DependencyChange {
                        name: name.clone(),
                        a: va.cloned().unwrap_or_else(|| "-".into()),
                        b: vb.cloned().unwrap_or_else(|| "-".into()),
                    });
                }
            }
        }
    }

    // Seed spread per experiment (parameters but the seed), per side and metric.
    let spread = |runs: &[RunRecord], spec: &RunSpec, m: usize| -> (Option<f64>, usize) {
        let values: Vec<f64> = runs
            .iter()
            .filter(|r| without_seed(&r.spec) == without_seed(spec))
            .filter_map(|r| final_metrics(r)[m])
            .collect();
        (sd(&values), values.len())
    };
    let all_specs: Vec<RunSpec> = a
        .runs
        .iter()
        .chain(&b.runs)
        .map(|r| r.spec.clone())
        .collect();
    let shown_keys = varying_keys(&all_specs);
    let shown_keys = if shown_keys.is_empty() {
        vec!["model", "beta"]
    } else {
        shown_keys
    };

    let mut pairs = Vec::new();
    let mut unpaired = Vec::new();
    let mut b_used = vec![false; b.runs.len()];
    for ra in &a.runs {
        let Some(k) = b.runs.iter().position(|rb| rb.spec == ra.spec) else {
            unpaired.push(Unpaired {
                side: "A",
                id: ra.id.clone(),
                params: describe(&ra.spec, &shown_keys),
                closest: closest(&ra.spec, &b.runs),
            });
            continue;
        };
        b_used[k] = true;
        let rb = &b.runs[k];
        let (fa, fb) = (final_metrics(ra), final_metrics(rb));
        let metrics = (0..METRICS.len())
            .filter(|&m| {
                if m < EVAL_METRICS {
                    fa[m].is_some() || fb[m].is_some()
                } else {
                    fa[m].is_some() && fb[m].is_some()
                }
            })
            .map(|m| {
                let (sa, na) = spread(&a.runs, &ra.spec, m);
                let (sb, nb) = spread(&b.runs, &rb.spec, m);
                let (noise, noise_from) = match (sa, sb) {
                    (Some(x), Some(y)) => (
                        2.0 * ((x * x + y * y) / 2.0).sqrt(),
                        format!("2 sd over {}+{} seeds", na, nb),
                    ),
                    _ => (
                        tolerance * fa[m].unwrap_or(0.0).abs(),
                        format!("tolerance {}%", tolerance * 100.0),
                    ),
                };
                let delta = fa[m].zip(fb[m]).map(|(x, y)| y - x);
                MetricDelta {
                    metric: METRICS[m],
                    a: fa[m],
                    b: fb[m],
                    delta,
                    delta_pct: fa[m].zip(delta).map(|(x, d)| 100.0 * d / x),
                    noise,
                    noise_from,
                    changed: delta.is_none_or(|d| d.abs() > noise),
                }
            })
            .collect();
        let largest_epoch_delta = ra
            .rows
            .iter()
            .filter(|r| r.split == Split::Test)
            .filter_map(|r| {
                rb.rows
                    .iter()
                    .find(|s| s.split == Split::Test && s.epoch == r.epoch)
                    .map(|s| (r.epoch, s.loss - r.loss))
            })
            .max_by(|x, y| x.1.abs().total_cmp(&y.1.abs()));
        pairs.push(Pair {
            params: describe(&ra.spec, &shown_keys),
            a: ra.id.clone(),
            b: rb.id.clone(),
            metrics,
            largest_epoch_delta,
        });
    }
    for (rb, used) in b.runs.iter().zip(&b_used) {
        if !used {
            unpaired.push(Unpaired {
                side: "B",
                id: rb.id.clone(),
                params: describe(&rb.spec, &shown_keys),
                closest: closest(&rb.spec, &a.runs),
            });
        }
    }
    let changed = pairs.iter().any(|p| p.metrics.iter().any(|m| m.changed));
    let unreadable = a
        .unreadable
        .iter()
        .chain(&b.unreadable)
        .map(|u| u.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(Diff {
        a: a.label.clone(),
        b: b.label.clone(),
        a_runs: a.runs.len(),
        b_runs: b.runs.len(),
        commits,
        files,
        dependencies,
        setup: setup_changes(&a.runs, &b.runs),
        unreadable,
        pairs,
        unpaired,
        changed,
    })
}

/// The machine set-up facts whose values differ between the two sides' runs.
fn setup_changes(a: &[RunRecord], b: &[RunRecord]) -> Vec<DependencyChange> {
    let values = |runs: &[RunRecord]| {
        let mut by_key: BTreeMap<&'static str, std::collections::BTreeSet<String>> =
            BTreeMap::new();
        for p in runs.iter().filter_map(|r| r.provenance.as_ref()) {
            for (k, v) in p.numeric_setup() {
                by_key.entry(k).or_default().insert(v);
            }
        }
        by_key
    };
    let (va, vb) = (values(a), values(b));
    let join = |v: Option<&std::collections::BTreeSet<String>>| {
        v.map_or("-".into(), |v| {
            v.iter().cloned().collect::<Vec<_>>().join(" | ")
        })
    };
    va.keys()
        .chain(vb.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| va.get(*k) != vb.get(*k))
        .map(|k| DependencyChange {
            name: k.to_string(),
            a: join(va.get(k)),
            b: join(vb.get(k)),
        })
        .collect()
}
