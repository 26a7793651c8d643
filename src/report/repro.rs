//! `vaelab repro`: the article's loss tables beside ours (and beside plain PyTorch on the same
//! setup), with a verdict per table against a stated tolerance.
//!
//! Like is compared with like: the article prints, per epoch, the sum over batches of the
//! pre-step batch loss times the batch size, divided by the number of training images; our
//! runs log exactly that as `article_loss` on their train rows.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::mean_sd;
use crate::config::matrix::{PublishedTable, ReproSpec};
use crate::config::RunSpec;
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

/// The runs of `manifest` that reproduce `table`: VAEs at its β.
fn runs_for<'a>(manifest: &'a Manifest, table: &PublishedTable) -> Vec<&'a ManifestRun> {
    manifest
        .runs
        .iter()
        .filter(|r| r.spec.model == ModelKind::Vae && r.spec.beta == table.beta)
        .collect()
}

/// Our `article_loss` per epoch for `runs`, read from their `metrics.parquet`.
fn ours(store: &Store, runs: &[&ManifestRun]) -> Result<SeedCurves> {
    let mut values = Vec::new();
    for run in runs {
        let mut rows = read_metrics(&store.run(&run.id).metrics_path())?;
        rows.retain(|r| r.split == "train");
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
    let out = cmd.output().context("cannot start the PyTorch reference")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "the PyTorch reference failed: {}",
            err.lines().last().unwrap_or("no message")
        );
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
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
    let mut out = Vec::new();
    for run in &manifest.runs {
        let Some(table) = spec.table.iter().find(|t| t.beta == run.spec.beta) else {
            continue;
        };
        let ours = ours(store, &[run])?;
        if ours.values[0].len() < table.loss.len() {
            continue; // not finished
        }
        let cmp = TableComparison {
            table: table.clone(),
            ours,
            reference: None,
        };
        if let Some(fit) = cmp.rms(spec.from_epoch) {
            out.push(Candidate {
                run: run.clone(),
                fit,
            });
        }
    }
    out.sort_by(|a, b| a.fit.total_cmp(&b.fit));
    Ok(out)
}

fn setup_text(spec: &RunSpec) -> String {
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

fn pct(x: f64) -> String {
    format!("{:+.2}%", 100.0 * x)
}

/// Everything the report shows, gathered.
pub struct ReproReport<'a> {
    /// Matrix file.
    pub source: &'a str,
    /// The sweep.
    pub manifest: &'a Manifest,
    /// The `[repro]` table.
    pub spec: &'a ReproSpec,
    /// One comparison per published table.
    pub tables: &'a [TableComparison],
    /// Identification sweep name and its ranked candidates, when it has finished runs.
    pub identify: Option<(String, Vec<Candidate>)>,
    /// Figure paths relative to the report, with captions.
    pub figures: Vec<(String, String)>,
}

impl ReproReport<'_> {
    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let spec = self.spec;
        let first = &self.manifest.runs[0].spec;
        let seeds = self
            .tables
            .iter()
            .map(|t| t.ours.values.len())
            .max()
            .unwrap_or(0);
        let judged = format!("{}–{}", spec.from_epoch, first.epochs);
        let mut md = String::new();
        let _ = writeln!(md, "# Reproducing the article's loss tables\n");
        let _ = writeln!(
            md,
            "Matrix `{}` (sweep `{}`), code `{}`, {seeds} seed(s) per table.  ",
            self.source, self.manifest.name, self.manifest.code_fingerprint
        );
        let _ = writeln!(md, "Setup: {}.  ", setup_text(first));
        if !spec.source.is_empty() {
            let _ = writeln!(md, "Published numbers: {}.  ", spec.source);
        }
        let _ = writeln!(
            md,
            "Compared quantity: the article's printed number, the sum over batches of (pre-step batch loss × batch size) divided by the number of training images (≈ batch size × mean loss per image).  "
        );
        let _ = writeln!(
            md,
            "Tolerance: every epoch {judged} within {:.0}% of the article (epoch 1 mostly measures the initialisation), and within 2 seed standard deviations of PyTorch on the same setup.\n",
            spec.tolerance * 100.0
        );
        for t in self.tables {
            self.table_section(&mut md, t);
        }
        self.identification(&mut md);
        if !self.figures.is_empty() {
            let _ = writeln!(md, "## Figures\n");
            for (path, caption) in &self.figures {
                let _ = writeln!(md, "- {caption}: [`{path}`]({path})");
            }
        }
        md
    }

    fn table_section(&self, md: &mut String, t: &TableComparison) {
        let spec = self.spec;
        let n = t.ours.values.len();
        let _ = writeln!(md, "## {} (β = {})\n", t.table.title, t.table.beta);
        let mut header = format!(
            "| epoch | article | ours (mean ± sd, {n} seeds) | difference | difference % |"
        );
        let mut rule = "|---:|---:|---:|---:|---:|".to_string();
        if t.reference.is_some() {
            header.push_str(" PyTorch, same setup (mean ± sd) | ours − PyTorch (in sd) |");
            rule.push_str("---:|---:|");
        }
        let _ = writeln!(md, "{header}\n{rule}");
        let mut spreads = Vec::new();
        let mut ref_ok = true;
        let mut ref_close_to_article = true;
        for (k, article) in t.table.loss.iter().enumerate() {
            let epoch = k + 1;
            let Some((mean, sd)) = t.ours.at(epoch) else {
                let _ = writeln!(md, "| {epoch} | {article:.4} | – | – | – |");
                continue;
            };
            if epoch >= spec.from_epoch {
                spreads.push(sd / mean);
            }
            let diff = mean - article;
            let mut line = format!(
                "| {epoch} | {article:.4} | {mean:.4} ± {sd:.2} | {diff:+.4} | {} |",
                pct(diff / article)
            );
            if let Some(reference) = &t.reference {
                match reference.at(epoch) {
                    Some((rmean, rsd)) => {
                        let pooled = ((sd * sd + rsd * rsd) / 2.0).sqrt();
                        let z = if pooled > 0.0 {
                            (mean - rmean) / pooled
                        } else {
                            f64::NAN
                        };
                        if epoch >= spec.from_epoch {
                            ref_ok &= z.abs() <= 2.0;
                            ref_close_to_article &=
                                ((rmean - article) / article).abs() <= spec.tolerance;
                        }
                        let _ = write!(line, " {rmean:.4} ± {rsd:.2} | {z:+.2} |");
                    }
                    None => line.push_str(" – | – |"),
                }
            }
            let _ = writeln!(md, "{line}");
        }
        let worst = t.worst(spec.from_epoch);
        let _ = writeln!(md);
        match worst {
            Some((epoch, rel)) if rel.abs() <= spec.tolerance => {
                let _ = writeln!(
                    md,
                    "**Verdict: reproduced.** Every epoch {}–{} is within {:.0}% of the article (largest difference {} at epoch {epoch}).",
                    spec.from_epoch,
                    t.table.loss.len(),
                    spec.tolerance * 100.0,
                    pct(rel)
                );
            }
            Some((epoch, rel)) => {
                let outside: Vec<String> = t
                    .relative(spec.from_epoch)
                    .into_iter()
                    .filter(|(_, r)| r.abs() > spec.tolerance)
                    .map(|(e, _)| e.to_string())
                    .collect();
                let _ = writeln!(
                    md,
                    "**Verdict: not reproduced.** Epoch(s) {} differ by more than {:.0}% (largest {} at epoch {epoch}).",
                    outside.join(", "),
                    spec.tolerance * 100.0,
                    pct(rel)
                );
            }
            None => {
                let _ = writeln!(md, "**Verdict: no judged epoch yet.**");
            }
        }
        if let Some(max) = spreads.iter().copied().reduce(f64::max) {
            if n > 1 {
                let _ = writeln!(
                    md,
                    "Seed spread: the standard deviation over {n} seeds is at most {:.2}% of the mean on the judged epochs, so the {:.0}% tolerance is {:.0}× the run-to-run noise.",
                    100.0 * max,
                    spec.tolerance * 100.0,
                    spec.tolerance / max.max(1e-12)
                );
            }
        }
        if t.reference.is_some() {
            let verdict = if ref_ok {
                "ours and PyTorch agree within 2 seed standard deviations on every judged epoch"
            } else {
                "ours and PyTorch differ by more than 2 seed standard deviations on some judged epoch"
            };
            let _ = write!(md, "Against PyTorch: {verdict}.");
            let article_ok = worst.is_some_and(|(_, r)| r.abs() <= spec.tolerance);
            if ref_ok && !article_ok && !ref_close_to_article {
                let _ = write!(
                    md,
                    " Both differ from the article in the same way, so the remaining gap is the article's unknown setup, not our framework."
                );
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md);
    }

    fn identification(&self, md: &mut String) {
        let Some((sweep, candidates)) = &self.identify else {
            return;
        };
        let _ = writeln!(md, "## Identifying the setup\n");
        let Some(best) = candidates.first() else {
            let _ = writeln!(
                md,
                "Sweep `{sweep}` has no finished run yet: run `vaelab sweep experiments/{sweep}.toml`.\n"
            );
            return;
        };
        let _ = writeln!(
            md,
            "Sweep `{sweep}` fits each candidate on the article's β = 0 table only: fit error = root-mean-square relative difference over epochs {}–10.\n",
            self.spec.from_epoch
        );
        let _ = writeln!(md, "| rank | hidden | latent | fit error (β = 0) | run |");
        let _ = writeln!(md, "|---:|---|---:|---:|---|");
        for (k, c) in candidates.iter().enumerate() {
            let _ = writeln!(
                md,
                "| {} | {:?} | {} | {:.2}% | `{}` |",
                k + 1,
                c.run.spec.hidden,
                c.run.spec.latent,
                100.0 * c.fit,
                c.run.id
            );
        }
        let chosen = &best.run.spec;
        let _ = writeln!(
            md,
            "\nChosen: hidden {:?}, latent {} (fit error {:.2}%).",
            chosen.hidden,
            chosen.latent,
            100.0 * best.fit
        );
        let same = |s: &RunSpec| s.hidden == chosen.hidden && s.latent == chosen.latent;
        for t in self.tables.iter().filter(|t| t.table.beta != 0.0) {
            let runs = runs_for(self.manifest, &t.table);
            if runs.iter().all(|r| same(&r.spec)) {
                if let Some(rms) = t.rms(self.spec.from_epoch) {
                    let _ = writeln!(
                        md,
                        "Out of sample: on the β = {} table, which the fit never saw, the chosen setup's error is {:.2}% (RMS over epochs {}–10).",
                        t.table.beta,
                        100.0 * rms,
                        self.spec.from_epoch
                    );
                }
            } else {
                let _ = writeln!(
                    md,
                    "This repro's matrix does not use the chosen setup; set `hidden = {:?}` and `latent = {}` in its `[base]` to check it out of sample.",
                    chosen.hidden, chosen.latent
                );
            }
        }
        let _ = writeln!(md);
    }
}

/// Compares, ranks the identification sweep, renders the figures, and writes
/// `<sweep>/repro.md`; returns its path.
pub fn write(
    store: &Store,
    data: &Path,
    manifest: &Manifest,
    spec: &ReproSpec,
    reference: bool,
    source: &Path,
) -> Result<PathBuf> {
    let tables = compare(store, manifest, spec, reference, data)?;
    let identify = match &spec.identify {
        Some(name) if Manifest::path(store, name).is_file() => {
            Some((name.clone(), identify(store, name, spec)?))
        }
        Some(name) => Some((name.clone(), Vec::new())),
        None => None,
    };
    super::plot(
        store,
        data,
        &super::PlotTarget::Sweep(manifest.name.clone()),
    )?;
    let mut figures = vec![
        (
            "plots/reconstructions.png".to_string(),
            "reconstructions of the same test digits, one row per run".to_string(),
        ),
        (
            "plots/samples.png".to_string(),
            "samples from N(0, I) for each run side by side".to_string(),
        ),
    ];
    let seed = manifest.runs.iter().map(|r| r.spec.seed).min().unwrap_or(0);
    for run in manifest
        .runs
        .iter()
        .filter(|r| r.spec.model == ModelKind::Vae && r.spec.beta > 0.0 && r.spec.seed == seed)
    {
        figures.push((
            format!("../../runs/{}/plots/traversal.png", run.id),
            format!("latent traversal of the β = {} run", run.spec.beta),
        ));
    }
    let report = ReproReport {
        source: &source.display().to_string(),
        manifest,
        spec,
        tables: &tables,
        identify,
        figures,
    };
    let path = store.sweep_dir(&manifest.name).join("repro.md");
    write_atomic(&path, report.markdown().as_bytes())?;
    Ok(path)
}
