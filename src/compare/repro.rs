//! `vaelab repro`'s comparison: the article's loss tables beside ours (and beside plain PyTorch
//! on the same setup, run as a subprocess), with a verdict per table against a stated
//! tolerance, and the identification sweep's ranking. Rendering is `report::repro`.
//!
//! Like is compared with like: the article prints, per epoch, the sum over batches of the
//! pre-step batch loss times the batch size, divided by the number of training images; our
//! runs log exactly that as `article_loss` on their train rows.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::mean_sd;
use crate::config::matrix::{PublishedTable, ReproSpec};
use crate::config::RunSpec;
use crate::data::Split;
use crate::model::ModelKind;
use crate::store::{read_metrics, write_atomic, Store};
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

/// The runs of `manifest` that reproduce `table`: MNIST VAEs at its β.
pub fn runs_for<'a>(manifest: &'a Manifest, table: &PublishedTable) -> Vec<&'a ManifestRun> {
    manifest
        .runs
        .iter()
        .filter(|r| r.spec.model == ModelKind::Vae && r.spec.beta == table.beta)
        .filter(|r| r.spec.dataset == crate::data::Dataset::Mnist)
        .collect()
}

/// Our `article_loss` per epoch for `runs`, read from their `metrics.parquet`.
fn ours(store: &Store, runs: &[&ManifestRun]) -> Result<SeedCurves> {
    let mut values = Vec::new();
    for run in runs {
        let mut rows = read_metrics(&store.run(&run.id).metrics_path())?;
        rows.retain(|r| r.split == Split::Train);
        rows.sort_by_key(|r| r.epoch);
        values.push(rows.iter().filter_map(|r| r.article_loss).collect());
    }
    Ok(SeedCurves { values })
}

/// One epoch line of `scripts/reference/article.py`.
#[derive(Deserialize)]
struct ReferenceEpoch {
    epoch: usize,
    article_loss: f64,
}

/// The Python of `./scripts/setup-reference` (`VAELAB_TORCH_PYTHON` overrides it).
fn reference_python() -> PathBuf {
    std::env::var_os("VAELAB_TORCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::data::cache_dir().join("torch-ref/bin/python"))
}

/// `scripts/reference/article.py` of the source tree this binary was built from.
fn reference_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference/article.py")
}

/// Trains `spec` in plain PyTorch (or reads the cached result) and returns the article's
/// number per epoch. Results are kept under `<sweep>/reference/` so a relaunch is free.
pub fn reference_run(store: &Store, sweep: &str, spec: &RunSpec, data: &Path) -> Result<Vec<f64>> {
    let hidden: Vec<String> = spec.hidden.iter().map(|h| h.to_string()).collect();
    let hidden = hidden.join(",");
    let name = format!(
        "vae-beta{}-latent{}-hidden{}-bs{}-lr{}-e{}-seed{}-limit{}.jsonl",
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
        let mut losses = Vec::new();
        for line in text.lines().filter(|l| l.starts_with('{')) {
            let e: ReferenceEpoch = serde_json::from_str(line)
                .with_context(|| format!("bad line from the PyTorch reference: {line}"))?;
            if e.epoch != losses.len() + 1 {
                bail!("the PyTorch reference skipped to epoch {}", e.epoch);
            }
            losses.push(e.article_loss);
        }
        Ok(losses)
    };
    if let Ok(text) = std::fs::read_to_string(&path) {
        let losses = parse(&text)?;
        if losses.len() == spec.epochs {
            return Ok(losses);
        }
    }
    let plain = RunSpec {
        lr: spec.lr,
        ..RunSpec::default()
    };
    if (
        spec.likelihood,
        spec.binarize,
        spec.activation,
        spec.layout,
        spec.lr_at(2),
    ) != (
        plain.likelihood,
        plain.binarize,
        plain.activation,
        plain.layout,
        spec.lr,
    ) {
        bail!(
            "the PyTorch reference (scripts/reference/article.py) trains the article's setup \
             only: no likelihood, binarize, activation, layout or lr_schedule keys"
        );
    }
    let python = reference_python();
    if !python.exists() {
        bail!(
            "the PyTorch reference needs {}: run ./scripts/setup-reference (or set VAELAB_TORCH_PYTHON)",
            python.display()
        );
    }
    let mut cmd = Command::new(&python);
    cmd.arg(reference_script())
        .args(["--beta", &spec.beta.to_string()])
        .args(["--latent", &spec.latent.to_string()])
        .args(["--hidden", &hidden])
        .args(["--epochs", &spec.epochs.to_string()])
        .args(["--batch-size", &spec.batch_size.to_string()])
        .args(["--lr", &spec.lr.to_string()])
        .args(["--seed", &spec.seed.to_string()])
        .arg("--data")
        .arg(data);
    if let Some(limit) = spec.limit {
        cmd.args(["--limit", &limit.to_string()]);
    }
    eprintln!(
        "PyTorch reference: beta {} seed {} ({} epochs)...",
        spec.beta, spec.seed, spec.epochs
    );
    let text = crate::tool::output(&mut cmd)
        .map_err(|e| anyhow::anyhow!("the PyTorch reference failed: {}", e.reason))?;
    let losses = parse(&text)?;
    if losses.len() != spec.epochs {
        bail!(
            "the PyTorch reference printed {} of {} epochs",
            losses.len(),
            spec.epochs
        );
    }
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    write_atomic(&path, text.as_bytes())?;
    Ok(losses)
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
                let (mean, _) = self.ours.at(e)?;
                let article = self.table.loss[e - 1];
                Some((e, (mean - article) / article))
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
            let runs = runs_for(manifest, table);
            if runs.is_empty() {
                bail!(
                    "sweep {} has no VAE run at beta {} for table {}",
                    manifest.name,
                    table.beta,
                    table.name
                );
            }
            let reference = if reference {
                let values = runs
                    .iter()
                    .map(|r| reference_run(store, &manifest.name, &r.spec, data))
                    .collect::<Result<_>>()?;
                Some(SeedCurves { values })
            } else {
                None
            };
            Ok(TableComparison {
                table: table.clone(),
                ours: ours(store, &runs)?,
                reference,
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
        if spec.table.iter().any(|t| t.beta == run.spec.beta) {
            runs.push((run.clone(), ours(store, &[run])?));
        }
    }
    Ok(rank(spec, runs))
}

/// Ranks runs (each with its one-seed curve) by fit to the table at their β, best first;
/// runs without a table at their β, or not finished, are left out.
fn rank(spec: &ReproSpec, runs: Vec<(ManifestRun, SeedCurves)>) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (run, ours) in runs {
        let Some(table) = spec.table.iter().find(|t| t.beta == run.spec.beta) else {
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

pub fn setup_text(spec: &RunSpec) -> String {
    let widths: Vec<String> = std::iter::once("784".to_string())
        .chain(spec.hidden.iter().map(|h| h.to_string()))
        .chain(std::iter::once(spec.latent.to_string()))
        .collect();
    format!(
        "VAE {} (plain-linear code, sigmoid output), batch {}, Adam lr {}, {} epochs on {} training images, backend {}",
        widths.join("-"),
        spec.batch_size,
        spec.lr,
        spec.epochs,
        spec.limit.map_or("all 60,000".to_string(), |l| format!("the first {l}")),
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
            beta,
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
}
