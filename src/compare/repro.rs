//! `vaelab repro`'s comparison: published numbers beside ours, with one verdict logic against
//! the matrix's stated tolerance. Two kinds: per-epoch curves (`[[repro.table]]`: the article's
//! loss tables, pytorch/examples' test loss; optionally beside plain PyTorch on the same setup,
//! run as a subprocess) and final numbers per setup (`[[repro.row]]`: Burda et al.'s NLL and
//! active units, from the runs' evaluation); and the identification sweep's ranking. Rendering
//! is `report::repro`.
//!
//! Like is compared with like: the article prints, per epoch, the sum over batches of the
//! pre-step batch loss times the batch size, divided by the number of training images; our
//! runs log exactly that as `article_loss` on their train rows.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::mean_sd;
use crate::config::matrix::{PublishedRow, PublishedTable, ReproSpec, Selector, SweepPlan};
use crate::config::RunSpec;
use crate::data::Split;
use crate::model::{Layout, Likelihood};
use crate::store::{read_eval, read_metrics, write_atomic, EpochValue, Store, FINAL_COLUMNS};
use crate::sweep::{Manifest, ManifestRun};

/// Per-epoch values of one setup over several seeds: `values[seed][epoch - 1]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeedCurves {
    /// One curve per seed.
    pub values: Vec<Vec<f64>>,
}

impl SeedCurves {
    /// Mean and sd over seeds at 1-based `epoch` (None when no seed reached it).
    pub fn at(&self, epoch: usize) -> Option<(f64, f64)> {
        let v: Vec<f64> = self
            .values
            .iter()
            .filter_map(|c| c.get(epoch - 1).copied())
            .collect();
        (!v.is_empty()).then(|| mean_sd(&v))
    }
}

/// The runs of `manifest` that `runs` describes.
pub fn selected<'a>(manifest: &'a Manifest, runs: &Selector) -> Vec<&'a ManifestRun> {
    manifest
        .runs
        .iter()
        .filter(|r| runs.selects(&r.spec))
        .collect()
}

/// The split and per-row accessor of a per-epoch result column (`store::FINAL_COLUMNS`).
fn column(name: &str) -> Option<(Split, EpochValue)> {
    FINAL_COLUMNS
        .iter()
        .find(|c| c.0 == name)
        .map(|&(_, split, value)| (split, value))
}

/// Checks `spec` against `plan` before anything trains: every table's column is a per-epoch
/// result, every `match` key a run parameter of the right type, every table and row describes
/// at least one planned run. The error names the table.
pub fn check(spec: &ReproSpec, plan: &SweepPlan) -> Result<()> {
    let file = plan.source.display();
    let names: Vec<&str> = FINAL_COLUMNS.iter().map(|c| c.0).collect();
    let selectors = spec
        .table
        .iter()
        .map(|t| ("table", &t.name, t.runs()))
        .chain(spec.row.iter().map(|r| ("row", &r.name, r.runs())));
    for table in &spec.table {
        if column(&table.column).is_none() {
            bail!(
                "{file}: [[repro.table]] {}: column `{}` is not a per-epoch result; allowed: {}",
                table.name,
                table.column,
                names.join(", ")
            );
        }
    }
    for row in &spec.row {
        if !(1..=crate::config::defaults::MAX_SAMPLES).contains(&row.k) {
            bail!(
                "{file}: [[repro.row]] {}: k = {}: must be from 1 to {}",
                row.name,
                row.k,
                crate::config::defaults::MAX_SAMPLES
            );
        }
    }
    for (kind, name, runs) in selectors {
        runs.check()
            .map_err(|e| anyhow::anyhow!("{file}: [[repro.{kind}]] {name}: match: {e}"))?;
        if !plan.runs.iter().any(|r| runs.selects(&r.spec)) {
            bail!(
                "{file}: [[repro.{kind}]] {name}: no run of the matrix has {}",
                runs.describe()
            );
        }
    }
    Ok(())
}

/// Our `column` per epoch for `runs`, read from their `metrics.parquet`.
fn ours(store: &Store, runs: &[&ManifestRun], column_name: &str) -> Result<SeedCurves> {
    let (split, value) = column(column_name)
        .with_context(|| format!("`{column_name}` is not a per-epoch result"))?;
    let mut values = Vec::new();
    for run in runs {
        let mut rows = read_metrics(&store.run(&run.id).metrics_path())?;
        rows.retain(|r| r.split == split);
        rows.sort_by_key(|r| r.epoch);
        values.push(rows.iter().filter_map(value).collect());
    }
    Ok(SeedCurves { values })
}

/// A plain-PyTorch script of `scripts/reference/` that trains a setup the way its source does.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reference {
    /// `article.py`: the article's setup (prints `article_loss`, `recon`, `kl`).
    Article,
    /// `pytorch_examples.py`: pytorch/examples' VAE (prints `train_loss`, `test_loss`).
    PytorchExamples,
}

impl Reference {
    /// The script for `spec`, or why there is none.
    fn for_spec(spec: &RunSpec) -> Result<Self> {
        let plain = RunSpec::default();
        let same = |s: &RunSpec| {
            (
                s.binarize,
                s.activation,
                s.lr_schedule,
                s.objective,
                s.samples,
                s.adam_eps,
                s.adam_betas,
            ) == (
                plain.binarize,
                plain.activation,
                plain.lr_schedule,
                plain.objective,
                plain.samples,
                plain.adam_eps,
                plain.adam_betas,
            )
        };
        match (spec.likelihood, spec.layout) {
            _ if !same(spec) => {}
            (Likelihood::Gaussian, Layout::Article) => return Ok(Self::Article),
            (Likelihood::Bernoulli, Layout::Heads) if spec.hidden.len() == 1 => {
                return Ok(Self::PytorchExamples)
            }
            _ => {}
        }
        bail!(
            "the PyTorch references train the article's setup (scripts/reference/article.py) \
             and pytorch/examples' (scripts/reference/pytorch_examples.py: bernoulli, heads, one \
             hidden layer) only, with no binarize, activation, lr_schedule, objective, samples or \
             Adam keys"
        )
    }

    fn script(self) -> &'static str {
        match self {
            Self::Article => "article",
            Self::PytorchExamples => "pytorch_examples",
        }
    }

    /// The key of the script's epoch lines that holds `column`.
    fn key(self, column: &str) -> Option<&'static str> {
        match (self, column) {
            (Self::Article, "article_loss") => Some("article_loss"),
            (Self::Article, "train_recon") => Some("recon"),
            (Self::Article, "train_kl") => Some("kl"),
            (Self::PytorchExamples, "train_loss") => Some("train_loss"),
            (Self::PytorchExamples, "test_loss") => Some("test_loss"),
            _ => None,
        }
    }
}

/// The Python of `./scripts/setup-reference` (`VAELAB_TORCH_PYTHON` overrides it).
fn reference_python() -> PathBuf {
    std::env::var_os("VAELAB_TORCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::data::cache_dir().join("torch-ref/bin/python"))
}

/// `scripts/reference/<script>.py` of the source tree this binary was built from.
fn reference_script(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scripts/reference/{script}.py"))
}

/// Trains `spec` in plain PyTorch (or reads the cached result) and returns its `column` per
/// epoch. Results are kept under `<sweep>/reference/` so a relaunch is free.
pub fn reference_run(
    store: &Store,
    sweep: &str,
    spec: &RunSpec,
    data: &Path,
    column: &str,
) -> Result<Vec<f64>> {
    let reference = Reference::for_spec(spec)?;
    let Some(key) = reference.key(column) else {
        bail!(
            "scripts/reference/{}.py does not print `{column}`",
            reference.script()
        );
    };
    let hidden: Vec<String> = spec.hidden.iter().map(|h| h.to_string()).collect();
    let hidden = hidden.join(",");
    let name = format!(
        "{}vae-beta{}-latent{}-hidden{}-bs{}-lr{}-e{}-seed{}-limit{}.jsonl",
        match reference {
            Reference::Article => "",
            Reference::PytorchExamples => "pytorch-examples-",
        },
        spec.beta,
        spec.latent,
        hidden.replace(',', "x"),
        spec.batch_size,
        spec.lr,
        spec.epochs,
        spec.seed,
        spec.limit.map_or("all".to_string(), |l| l.to_string())
    );
    let path = store.sweep_dir(sweep).join("reference").join(name);
    let parse = |text: &str| -> Result<Vec<f64>> {
        let mut values = Vec::new();
        for line in text.lines().filter(|l| l.starts_with('{')) {
            let e: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("bad line from the PyTorch reference: {line}"))?;
            let epoch = e["epoch"].as_u64().unwrap_or(0) as usize;
            if epoch != values.len() + 1 {
                bail!("the PyTorch reference skipped to epoch {epoch}");
            }
            values.push(
                e[key]
                    .as_f64()
                    .with_context(|| format!("no `{key}` in the PyTorch reference's {line}"))?,
            );
        }
        Ok(values)
    };
    if let Ok(text) = std::fs::read_to_string(&path) {
        let values = parse(&text)?;
        if values.len() == spec.epochs {
            return Ok(values);
        }
    }
    let python = reference_python();
    if !python.exists() {
        bail!(
            "the PyTorch reference needs {}: run ./scripts/setup-reference (or set VAELAB_TORCH_PYTHON)",
            python.display()
        );
    }
    let mut cmd = Command::new(&python);
    cmd.arg(reference_script(reference.script()))
        .args(["--epochs", &spec.epochs.to_string()])
        .args(["--batch-size", &spec.batch_size.to_string()])
        .args(["--lr", &spec.lr.to_string()])
        .args(["--seed", &spec.seed.to_string()])
        .arg("--data")
        .arg(data);
    match reference {
        Reference::Article => {
            cmd.args(["--beta", &spec.beta.to_string()])
                .args(["--latent", &spec.latent.to_string()])
                .args(["--hidden", &hidden]);
            if let Some(limit) = spec.limit {
                cmd.args(["--limit", &limit.to_string()]);
            }
        }
        Reference::PytorchExamples => {
            if (spec.beta, spec.latent, spec.hidden.as_slice()) != (1.0, 20, &[400][..]) {
                bail!(
                    "scripts/reference/pytorch_examples.py trains pytorch/examples' 784-400-20 \
                     VAE at beta = 1 only"
                );
            }
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            cmd.args(["--threads", &threads.to_string()]);
            if let Some(limit) = spec.limit {
                cmd.args(["--limit", &limit.to_string()])
                    .args(["--test-limit", &limit.to_string()]);
            }
        }
    }
    eprintln!(
        "PyTorch reference ({}): beta {} seed {} ({} epochs)...",
        reference.script(),
        spec.beta,
        spec.seed,
        spec.epochs
    );
    let text = crate::tool::output(&mut cmd)
        .map_err(|e| anyhow::anyhow!("the PyTorch reference failed: {}", e.reason))?;
    let values = parse(&text)?;
    if values.len() != spec.epochs {
        bail!(
            "the PyTorch reference printed {} of {} epochs",
            values.len(),
            spec.epochs
        );
    }
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    write_atomic(&path, text.as_bytes())?;
    Ok(values)
}

/// The identification sweep's ranking for `spec`: its name and candidates (none when the
/// sweep has not been run here).
pub fn identification(store: &Store, spec: &ReproSpec) -> Result<Option<(String, Vec<Candidate>)>> {
    Ok(match &spec.identify {
        Some(name) if store.manifest_path(name).is_file() => {
            Some((name.clone(), identify(store, name, spec)?))
        }
        Some(name) => Some((name.clone(), Vec::new())),
        None => None,
    })
}

/// One table's comparison.
#[derive(Clone, Debug)]
pub struct TableComparison {
    /// The published table.
    pub table: PublishedTable,
    /// Ours per seed.
    pub ours: SeedCurves,
    /// Plain PyTorch on the same setup per seed, when asked for.
    pub reference: Option<SeedCurves>,
}

impl TableComparison {
    /// (epoch, (ours − article) / article) for every judged epoch that has a result.
    pub fn relative(&self, from_epoch: usize) -> Vec<(usize, f64)> {
        (from_epoch..=self.table.loss.len())
            .filter_map(|e| {
                let published = self.table.loss[e - 1];
                if published.is_nan() {
                    return None; // not published
                }
                let (mean, _) = self.ours.at(e)?;
                Some((e, (mean - published) / published))
            })
            .collect()
    }

    /// Worst relative difference to the article over the judged epochs, and its epoch.
    pub fn worst(&self, from_epoch: usize) -> Option<(usize, f64)> {
        self.relative(from_epoch)
            .into_iter()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
    }

    /// Root-mean-square relative difference over the judged epochs (the identification's fit
    /// error).
    pub fn rms(&self, from_epoch: usize) -> Option<f64> {
        let rel = self.relative(from_epoch);
        (!rel.is_empty())
            .then(|| (rel.iter().map(|(_, r)| r * r).sum::<f64>() / rel.len() as f64).sqrt())
    }

    /// The verdict against the article: every judged epoch within `tolerance`, or not.
    pub fn verdict(&self, from_epoch: usize, tolerance: f64) -> Verdict {
        match self.worst(from_epoch) {
            Some((epoch, rel)) if within(rel, tolerance) => Verdict::Reproduced { epoch, rel },
            Some((epoch, rel)) => Verdict::NotReproduced {
                outside: self
                    .relative(from_epoch)
                    .into_iter()
                    // `!within`, so that a NaN epoch (a diverged run) is listed too.
                    .filter(|(_, r)| !within(*r, tolerance))
                    .map(|(e, _)| e)
                    .collect(),
                epoch,
                rel,
            },
            None => Verdict::Pending,
        }
    }
}

/// Whether a relative difference to the article is within the tolerance (bounds included).
pub fn within(rel: f64, tolerance: f64) -> bool {
    rel.abs() <= tolerance
}

/// One table's verdict; `epoch` and `rel` are the largest relative difference and its epoch.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Every judged epoch is within the tolerance.
    Reproduced { epoch: usize, rel: f64 },
    /// The judged epochs in `outside` are not.
    NotReproduced {
        outside: Vec<usize>,
        epoch: usize,
        rel: f64,
    },
    /// No judged epoch has a result yet.
    Pending,
}

/// Compares every table of `spec` with the runs of `manifest` (and PyTorch when `reference`).
pub fn compare(
    store: &Store,
    manifest: &Manifest,
    spec: &ReproSpec,
    reference: bool,
    data: &Path,
) -> Result<Vec<TableComparison>> {
    spec.table
        .iter()
        .map(|table| {
            let runs = selected(manifest, &table.runs());
            if runs.is_empty() {
                bail!(
                    "sweep {} has no run with {} for table {}",
                    manifest.name,
                    table.runs().describe(),
                    table.name
                );
            }
            let reference = if reference {
                let values = runs
                    .iter()
                    .map(|r| reference_run(store, &manifest.name, &r.spec, data, &table.column))
                    .collect::<Result<_>>()?;
                Some(SeedCurves { values })
            } else {
                None
            };
            Ok(TableComparison {
                table: table.clone(),
                ours: ours(store, &runs, &table.column)?,
                reference,
            })
        })
        .collect()
}

/// One published row beside its runs' evaluations.
#[derive(Clone, Debug)]
pub struct RowComparison {
    /// The published row.
    pub row: PublishedRow,
    /// Its runs' ids.
    pub runs: Vec<String>,
    /// −(IWAE bound at the row's k) per run evaluated at that k.
    pub nll: Vec<f64>,
    /// Active units per evaluated run.
    pub active_units: Vec<f64>,
}

impl RowComparison {
    /// The verdict on the NLL (the mean over runs) against `tolerance`, relative; `epoch` is 0.
    pub fn verdict(&self, tolerance: f64) -> Verdict {
        match (self.row.nll, self.nll.is_empty()) {
            (Some(published), false) => {
                let (mean, _) = mean_sd(&self.nll);
                let rel = (mean - published) / published;
                if within(rel, tolerance) {
                    Verdict::Reproduced { epoch: 0, rel }
                } else {
                    Verdict::NotReproduced {
                        outside: Vec::new(),
                        epoch: 0,
                        rel,
                    }
                }
            }
            _ => Verdict::Pending,
        }
    }
}

/// The IWAE sample counts the rows of `spec` need from the evaluation (unsorted: the
/// evaluation sorts and deduplicates what it is given).
pub fn rows_k(spec: &ReproSpec) -> Vec<usize> {
    spec.row.iter().map(|r| r.k).collect()
}

/// The runs of `manifest` that the rows of `spec` describe (to evaluate at [`rows_k`]).
pub fn rows_runs(manifest: &Manifest, spec: &ReproSpec) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for row in &spec.row {
        for run in selected(manifest, &row.runs()) {
            if !ids.contains(&run.id) {
                ids.push(run.id.clone());
            }
        }
    }
    ids
}

/// Compares every row of `spec` with the evaluations of its runs in `manifest`.
pub fn compare_rows(
    store: &Store,
    manifest: &Manifest,
    spec: &ReproSpec,
) -> Result<Vec<RowComparison>> {
    spec.row
        .iter()
        .map(|row| {
            let runs = selected(manifest, &row.runs());
            let (mut nll, mut active_units) = (Vec::new(), Vec::new());
            for run in &runs {
                let Some(eval) = read_eval(&store.run(&run.id).eval_path())? else {
                    continue;
                };
                let bound = eval
                    .iter()
                    .find(|r| r.metric == "iwae" && r.k == Some(row.k as u32) && r.dim.is_none());
                if let Some(bound) = bound {
                    nll.push(-bound.value);
                }
                let au = eval
                    .iter()
                    .find(|r| r.metric == "active_units" && r.dim.is_none());
                active_units.extend(au.map(|r| r.value));
            }
            Ok(RowComparison {
                row: row.clone(),
                runs: runs.iter().map(|r| r.id.clone()).collect(),
                nll,
                active_units,
            })
        })
        .collect()
}

/// One candidate of the identification sweep: its setup and fit error on the β = 0 table.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The run.
    pub run: ManifestRun,
    /// RMS relative difference to the table over the judged epochs.
    pub fit: f64,
}

/// Ranks the finished runs of the identification sweep by fit to the table at their β.
pub fn identify(store: &Store, sweep: &str, spec: &ReproSpec) -> Result<Vec<Candidate>> {
    let manifest = Manifest::read(&Manifest::path(store, sweep))?;
    let mut runs = Vec::new();
    for run in &manifest.runs {
        if let Some(table) = spec.table.iter().find(|t| t.runs().selects(&run.spec)) {
            runs.push((run.clone(), ours(store, &[run], &table.column)?));
        }
    }
    Ok(rank(spec, runs))
}

/// Ranks runs (each with its one-seed curve) by fit to the table at their β, best first;
/// runs without a table at their β, or not finished, are left out.
fn rank(spec: &ReproSpec, runs: Vec<(ManifestRun, SeedCurves)>) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (run, ours) in runs {
        let Some(table) = spec.table.iter().find(|t| t.runs().selects(&run.spec)) else {
            continue;
        };
        if ours.values[0].len() < table.loss.len() {
            continue; // not finished
        }
        let cmp = TableComparison {
            table: table.clone(),
            ours,
            reference: None,
        };
        if let Some(fit) = cmp.rms(spec.from_epoch) {
            out.push(Candidate { run, fit });
        }
    }
    out.sort_by(|a, b| a.fit.total_cmp(&b.fit));
    out
}

/// One line of a run's setup: its widths, batch, optimiser and data, and every key of the
/// literature's setups it sets away from the article's defaults.
pub fn setup_text(spec: &RunSpec) -> String {
    let widths: Vec<String> = std::iter::once("784".to_string())
        .chain(spec.hidden.iter().map(|h| h.to_string()))
        .chain(std::iter::once(spec.latent.to_string()))
        .collect();
    let plain = RunSpec::default();
    let keys: Vec<&str> = crate::config::params::PARAMS
        .iter()
        .filter(|p| p.absent.is_some())
        .map(|p| p.key)
        .filter(|&k| !crate::config::params::same_param(spec, &plain, k))
        .collect();
    let literature = if keys.is_empty() {
        " (plain-linear code, sigmoid output)".to_string()
    } else {
        format!(" ({})", crate::config::params::describe(spec, &keys))
    };
    format!(
        "{} {}{literature}, batch {}, Adam lr {}, {} epochs on {} training images, backend {}",
        spec.model.to_string().to_uppercase(),
        widths.join("-"),
        spec.batch_size,
        spec.lr,
        spec.epochs,
        spec.limit
            .map_or("all 60,000".to_string(), |l| format!("the first {l}")),
        spec.backend.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The article's β = 0 table (`../shared/article/tables.toml`).
    const RECON_ONLY: [f64; 10] = [
        1253.6249, 959.0322, 837.9456, 799.1609, 777.4000, 763.2662, 752.5686, 744.1388, 737.3690,
        731.5162,
    ];

    fn table(beta: f64, loss: &[f64]) -> PublishedTable {
        PublishedTable {
            name: format!("beta{beta}"),
            title: format!("table at β = {beta}"),
            beta: Some(beta),
            matching: toml::Table::new(),
            column: "article_loss".into(),
            loss: loss.to_vec(),
        }
    }

    fn comparison(loss: &[f64], seeds: &[&[f64]]) -> TableComparison {
        TableComparison {
            table: table(0.0, loss),
            ours: SeedCurves {
                values: seeds.iter().map(|c| c.to_vec()).collect(),
            },
            reference: None,
        }
    }

    fn spec(tolerance: f64, from_epoch: usize, table: Vec<PublishedTable>) -> ReproSpec {
        ReproSpec {
            source: String::new(),
            tolerance,
            from_epoch,
            identify: None,
            table,
            row: Vec::new(),
        }
    }

    fn run(id: &str, beta: f64) -> ManifestRun {
        ManifestRun {
            id: id.to_string(),
            spec: RunSpec {
                beta,
                ..RunSpec::default()
            },
        }
    }

    /// `loss` with epoch `k + 1` scaled by `1 + rel[k]`.
    fn off_by(loss: &[f64], rel: &[f64]) -> Vec<f64> {
        loss.iter().zip(rel).map(|(l, r)| l * (1.0 + r)).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Ours identical to the article is reproduced with a zero largest difference and fit.
    #[test]
    fn ours_equal_to_the_article_is_reproduced() {
        let t = comparison(&RECON_ONLY, &[&RECON_ONLY, &RECON_ONLY]);
        assert!(
            matches!(t.verdict(2, 0.05), Verdict::Reproduced { rel, .. } if rel == 0.0),
            "{:?}",
            t.verdict(2, 0.05)
        );
        assert_eq!(t.rms(2), Some(0.0));
    }

    /// The tolerance includes its bound, on both sides, and nothing beyond it.
    #[test]
    fn within_includes_the_bound_on_both_sides() {
        assert!(within(0.05, 0.05));
        assert!(within(-0.05, 0.05));
        assert!(within(0.0, 0.0));
        assert!(!within(0.050_001, 0.05));
        assert!(!within(-0.050_001, 0.05));
    }

    /// The verdict flips exactly at the tolerance, above and below the article.
    #[test]
    fn verdict_flips_exactly_at_the_tolerance() {
        let reproduced = |ours: f64| {
            let t = comparison(&[100.0, 100.0], &[&[100.0, ours]]);
            match t.verdict(2, 0.05) {
                Verdict::Reproduced { .. } => true,
                Verdict::NotReproduced { outside, .. } => {
                    assert_eq!(outside, [2]);
                    false
                }
                Verdict::Pending => panic!("epoch 2 has a result"),
            }
        };
        // (105 − 100) / 100 and (95 − 100) / 100 are exactly ±0.05 in f64.
        for (ours, expected) in [
            (104.9999, true),
            (105.0, true),
            (105.0001, false),
            (95.0001, true),
            (95.0, true),
            (94.9999, false),
        ] {
            assert_eq!(reproduced(ours), expected, "ours {ours} against 100");
        }
        // Same on the article's own numbers, a hair either side of 5%.
        for (rel, expected) in [(0.05 - 1e-9, true), (0.05 + 1e-9, false)] {
            for sign in [1.0, -1.0] {
                let ours = off_by(&RECON_ONLY, &[sign * rel; 10]);
                let t = comparison(&RECON_ONLY, &[&ours]);
                let ok = matches!(t.verdict(2, 0.05), Verdict::Reproduced { .. });
                assert_eq!(ok, expected, "every epoch off by {}", sign * rel);
            }
        }
    }

    /// A failed verdict lists every judged epoch outside and the largest difference by magnitude.
    #[test]
    fn verdict_lists_the_epochs_outside_and_the_largest_difference() {
        // Relative differences: epoch 1 +50% (not judged), 2 +3%, 3 −8%, 4 +6%.
        let t = comparison(&[100.0; 4], &[&[150.0, 103.0, 92.0, 106.0]]);
        match t.verdict(2, 0.05) {
            Verdict::NotReproduced {
                outside,
                epoch,
                rel,
            } => {
                assert_eq!(outside, [3, 4]);
                assert_eq!(epoch, 3);
                assert!(close(rel, -0.08), "{rel}");
            }
            v => panic!("{v:?}"),
        }
    }

    /// Epochs before `from_epoch` are not judged; from epoch 1 the same numbers fail.
    #[test]
    fn verdict_ignores_epochs_before_from_epoch() {
        let ours = off_by(
            &RECON_ONLY,
            &[0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.01],
        );
        let t = comparison(&RECON_ONLY, &[&ours]);
        match t.verdict(2, 0.05) {
            Verdict::Reproduced { epoch, rel } => {
                assert_eq!(epoch, 10);
                assert!(close(rel, 0.01), "{rel}");
            }
            v => panic!("{v:?}"),
        }
        match t.verdict(1, 0.05) {
            Verdict::NotReproduced {
                outside,
                epoch,
                rel,
            } => {
                assert_eq!((outside, epoch), (vec![1], 1));
                assert!(close(rel, 0.5), "{rel}");
            }
            v => panic!("{v:?}"),
        }
    }

    /// The verdict judges the mean over seeds, not each seed.
    #[test]
    fn verdict_judges_the_mean_over_seeds() {
        // Each seed 10% off, mean exact.
        let t = comparison(&[100.0, 100.0], &[&[100.0, 90.0], &[100.0, 110.0]]);
        assert_eq!(
            t.verdict(2, 0.05),
            Verdict::Reproduced { epoch: 2, rel: 0.0 }
        );
        // Each seed within 12%, mean 6% off.
        let t = comparison(&[100.0, 100.0], &[&[100.0, 100.0], &[100.0, 112.0]]);
        match t.verdict(2, 0.05) {
            Verdict::NotReproduced { outside, rel, .. } => {
                assert_eq!(outside, [2]);
                assert!(close(rel, 0.06), "{rel}");
            }
            v => panic!("{v:?}"),
        }
    }

    /// Without a result on a judged epoch there is no verdict.
    #[test]
    fn verdict_is_pending_without_a_judged_epoch() {
        let t = comparison(&RECON_ONLY, &[&RECON_ONLY[..1]]);
        assert_eq!(t.verdict(2, 0.05), Verdict::Pending);
        let t = comparison(&RECON_ONLY, &[]);
        assert_eq!(t.verdict(2, 0.05), Verdict::Pending);
    }

    /// The constructed-closest candidate ranks first and the rest follow their RMS by hand.
    #[test]
    fn rank_orders_candidates_by_rms_fit() {
        let loss = [100.0, 50.0, 40.0, 30.0];
        // Relative differences on judged epochs 2–4 and the RMS by hand:
        // a: 0, 0, 0 (epoch 1 +100%, not judged)  → 0
        // d: +5%, −5%, +15%                       → √(0.0275 / 3) ≈ 0.0957
        // b: +10%, +10%, +10%                     → 0.1
        // c: −20%, 0, 0                           → √(0.04 / 3) ≈ 0.1155
        // (by largest difference the order would be a, b, d, c; by mean |difference| a, c, d, b.)
        let runs = [
            ("c", [0.0, -0.2, 0.0, 0.0]),
            ("b", [0.1, 0.1, 0.1, 0.1]),
            ("d", [0.0, 0.05, -0.05, 0.15]),
            ("a", [1.0, 0.0, 0.0, 0.0]),
        ]
        .map(|(id, rel)| {
            let curve = off_by(&loss, &rel);
            (
                run(id, 0.0),
                SeedCurves {
                    values: vec![curve],
                },
            )
        });
        let ranked = rank(&spec(0.05, 2, vec![table(0.0, &loss)]), runs.to_vec());
        let got: Vec<(&str, f64)> = ranked.iter().map(|c| (c.run.id.as_str(), c.fit)).collect();
        let want = [
            ("a", 0.0),
            ("d", (0.0275f64 / 3.0).sqrt()),
            ("b", 0.1),
            ("c", (0.04f64 / 3.0).sqrt()),
        ];
        assert_eq!(got.len(), want.len(), "{got:?}");
        for ((id, fit), (want_id, want_fit)) in got.iter().zip(want) {
            assert!(*id == want_id && close(*fit, want_fit), "{got:?}");
        }
    }

    /// Each candidate is fitted to the table at its β; unfinished or table-less runs are left out.
    #[test]
    fn rank_fits_the_table_at_each_beta_and_skips_the_rest() {
        let zero = table(0.0, &[100.0, 100.0, 100.0]);
        let three = table(3.0, &[200.0, 200.0, 200.0]);
        let curve = |c: &[f64]| SeedCurves {
            values: vec![c.to_vec()],
        };
        let runs = vec![
            (run("zero-10pc", 0.0), curve(&[100.0, 110.0, 110.0])),
            (run("three-exact", 3.0), curve(&[200.0, 200.0, 200.0])), // +100% on β = 0
            (run("one-no-table", 1.0), curve(&[100.0, 100.0, 100.0])),
            (run("zero-unfinished", 0.0), curve(&[100.0, 100.0])),
        ];
        let ranked = rank(&spec(0.05, 2, vec![zero, three]), runs);
        let got: Vec<(&str, f64)> = ranked.iter().map(|c| (c.run.id.as_str(), c.fit)).collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].0 == "three-exact" && got[0].1 == 0.0, "{got:?}");
        assert!(got[1].0 == "zero-10pc" && close(got[1].1, 0.1), "{got:?}");
    }

    /// Epochs published as `nan` are not judged: a wild value there leaves the verdict alone.
    #[test]
    fn unpublished_epochs_are_not_judged() {
        let t = comparison(&[100.0, f64::NAN, 100.0], &[&[100.0, 500.0, 102.0]]);
        assert_eq!(t.relative(1).len(), 2);
        match t.verdict(1, 0.05) {
            Verdict::Reproduced { epoch, rel } => assert!(epoch == 3 && close(rel, 0.02)),
            v => panic!("{v:?}"),
        }
    }

    /// A final row judges the mean NLL over its evaluated runs, relative, bound included; a row
    /// with no evaluated run, or no published NLL, is pending.
    #[test]
    fn a_row_judges_the_mean_nll_of_its_runs() {
        let row = |nll: Vec<f64>, published: Option<f64>| RowComparison {
            row: PublishedRow {
                name: "r".into(),
                title: "r".into(),
                beta: None,
                matching: toml::Table::new(),
                nll: published,
                k: 5000,
                active_units: None,
            },
            runs: vec!["a".into(), "b".into()],
            nll,
            active_units: Vec::new(),
        };
        let v = row(vec![99.0, 103.0], Some(100.0)).verdict(0.01);
        assert!(
            matches!(v, Verdict::Reproduced { rel, .. } if close(rel, 0.01)),
            "{v:?}"
        );
        let v = row(vec![99.0, 103.2], Some(100.0)).verdict(0.01);
        assert!(matches!(v, Verdict::NotReproduced { .. }), "{v:?}");
        assert_eq!(row(Vec::new(), Some(100.0)).verdict(0.01), Verdict::Pending);
        assert_eq!(row(vec![100.0], None).verdict(0.01), Verdict::Pending);
    }
}
