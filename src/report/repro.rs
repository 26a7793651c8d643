//! `vaelab repro`'s report: `repro.md`, the comparisons of [`crate::compare::repro`] as
//! Markdown tables with their verdicts (per-epoch curves, final rows), the identification
//! ranking and the sweep's figures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::compare::mean_sd;
use crate::compare::repro::{
    selected, setup_text, within, Candidate, RowComparison, TableComparison, Verdict,
};
use crate::config::matrix::ReproSpec;
use crate::config::RunSpec;
use crate::model::ModelKind;
use crate::store::{write_atomic, Store};
use crate::sweep::Manifest;

/// A tolerance as a percentage without a trailing `.0` (`5`, `0.5`).
fn tolerance_pct(tolerance: f64) -> String {
    let text = format!("{:.1}", 100.0 * tolerance);
    text.strip_suffix(".0").unwrap_or(&text).to_string()
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
    /// One comparison per published row.
    pub rows: &'a [RowComparison],
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
        let _ = writeln!(md, "# Reproducing published numbers\n");
        let _ = writeln!(
            md,
            "Matrix `{}` (sweep `{}`), code `{}`, {seeds} seed(s) per table.  ",
            self.source, self.manifest.name, self.manifest.code_fingerprint
        );
        let _ = writeln!(md, "Setup: {}.  ", setup_text(first));
        if !spec.source.is_empty() {
            let _ = writeln!(md, "Published numbers: {}.  ", spec.source);
        }
        if !self.tables.is_empty() {
            let _ = writeln!(
                md,
                "Tolerance: every published epoch {judged} within {}% of the published number (epoch 1 mostly measures the initialisation), and within 2 seed standard deviations of PyTorch on the same setup.\n",
                tolerance_pct(spec.tolerance)
            );
        }
        for t in self.tables {
            self.table_section(&mut md, t);
        }
        if !self.rows.is_empty() {
            self.rows_section(&mut md);
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
        let _ = writeln!(md, "## {} ({})\n", t.table.title, t.table.runs().describe());
        let _ = writeln!(md, "Compared quantity: {}.\n", quantity(&t.table.column));
        let mut header = format!(
            "| epoch | published | ours (mean ± sd, {n} seeds) | difference | difference % |"
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
        // With a reference every epoch is shown (ours against PyTorch); without one, the
        // published epochs only.
        let epochs = match &t.reference {
            Some(_) => t.table.loss.len().max(ours_epochs(t)),
            None => t.table.loss.len(),
        };
        for epoch in 1..=epochs {
            let article = t.table.loss.get(epoch - 1).copied().unwrap_or(f64::NAN);
            let published = !article.is_nan();
            if !published && (t.reference.is_none() || t.ours.at(epoch).is_none()) {
                continue;
            }
            let shown = if published {
                format!("{article:.4}")
            } else {
                "–".to_string()
            };
            let Some((mean, sd)) = t.ours.at(epoch) else {
                let _ = writeln!(md, "| {epoch} | {shown} | – | – | – |");
                continue;
            };
            if epoch >= spec.from_epoch {
                spreads.push(sd / mean);
            }
            let mut line = if published {
                let diff = mean - article;
                format!(
                    "| {epoch} | {shown} | {mean:.4} ± {sd:.2} | {diff:+.4} | {} |",
                    pct(diff / article)
                )
            } else {
                format!("| {epoch} | – | {mean:.4} ± {sd:.2} | – | – |")
            };
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
                            if published {
                                ref_close_to_article &=
                                    within((rmean - article) / article, spec.tolerance);
                            }
                        }
                        let _ = write!(line, " {rmean:.4} ± {rsd:.2} | {z:+.2} |");
                    }
                    None => line.push_str(" – | – |"),
                }
            }
            let _ = writeln!(md, "{line}");
        }
        let outcome = t.verdict(spec.from_epoch, spec.tolerance);
        let _ = writeln!(md);
        match &outcome {
            Verdict::Reproduced { epoch, rel } => {
                let _ = writeln!(
                    md,
                    "**Verdict: reproduced.** Every published epoch {}–{} is within {}% of the published number (largest difference {} at epoch {epoch}).",
                    spec.from_epoch,
                    t.table.loss.len(),
                    tolerance_pct(spec.tolerance),
                    pct(*rel)
                );
            }
            Verdict::NotReproduced {
                outside,
                epoch,
                rel,
            } => {
                let outside: Vec<String> = outside.iter().map(|e| e.to_string()).collect();
                let _ = writeln!(
                    md,
                    "**Verdict: not reproduced.** Epoch(s) {} differ by more than {}% (largest {} at epoch {epoch}).",
                    outside.join(", "),
                    tolerance_pct(spec.tolerance),
                    pct(*rel)
                );
            }
            Verdict::Pending => {
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
            let article_ok = matches!(outcome, Verdict::Reproduced { .. });
            if ref_ok && !article_ok && !ref_close_to_article {
                let _ = write!(
                    md,
                    " Both differ from the published numbers in the same way, so the remaining gap is the published setup's, not our framework's."
                );
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md);
    }

    /// The final rows: published NLL and active units beside the mean over each row's runs.
    fn rows_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Final numbers\n");
        let _ = writeln!(
            md,
            "NLL: −(the test IWAE bound at the row's k), nats per test image; active units: Cov_x(E_q[z_d | x]) > 0.01. Tolerance: the NLL within {}% of the published one.\n",
            tolerance_pct(self.spec.tolerance)
        );
        let _ = writeln!(
            md,
            "| row | runs | k | NLL published | ours (mean ± sd) | difference % | active units published | ours | verdict |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---|");
        let mut missing = false;
        for r in self.rows {
            let (ours, diff) = match (r.nll.is_empty(), r.row.nll) {
                (true, _) => {
                    missing = true;
                    ("–".to_string(), "–".to_string())
                }
                (false, published) => {
                    let (mean, sd) = mean_sd(&r.nll);
                    let diff = published.map_or("–".to_string(), |p| pct((mean - p) / p));
                    (format!("{mean:.2} ± {sd:.2}"), diff)
                }
            };
            let au = if r.active_units.is_empty() {
                "–".to_string()
            } else {
                format!("{:.1}", mean_sd(&r.active_units).0)
            };
            let published = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v}"));
            let verdict = match r.verdict(self.spec.tolerance) {
                Verdict::Reproduced { .. } => "reproduced",
                Verdict::NotReproduced { .. } => "not reproduced",
                Verdict::Pending => "pending",
            };
            let _ = writeln!(
                md,
                "| {} | {} of {} evaluated | {} | {} | {ours} | {diff} | {} | {au} | {verdict} |",
                r.row.title,
                r.nll.len(),
                r.runs.len(),
                r.row.k,
                published(r.row.nll),
                published(r.row.active_units),
            );
        }
        if missing {
            let _ = writeln!(
                md,
                "\nA row without our NLL has no run evaluated at its k yet: `vaelab eval {} --k <k>`.",
                self.manifest.name
            );
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
        for t in self
            .tables
            .iter()
            .filter(|t| t.table.beta.is_some_and(|b| b != 0.0))
        {
            let runs = selected(self.manifest, &t.table.runs());
            if runs.iter().all(|r| same(&r.spec)) {
                if let Some(rms) = t.rms(self.spec.from_epoch) {
                    let _ = writeln!(
                        md,
                        "Out of sample: on the β = {} table, which the fit never saw, the chosen setup's error is {:.2}% (RMS over epochs {}–10).",
                        t.table.beta.unwrap_or_default(),
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

/// The most epochs any seed of `t` reached.
fn ours_epochs(t: &TableComparison) -> usize {
    t.ours.values.iter().map(Vec::len).max().unwrap_or(0)
}

/// What a per-epoch result column is, in words.
fn quantity(column: &str) -> String {
    match column {
        "article_loss" => "the article's printed number, the sum over batches of (pre-step batch loss × batch size) divided by the number of training images (≈ batch size × mean loss per image)".to_string(),
        "test_loss" => "the test split's loss per image after each epoch (one posterior draw; pytorch/examples' \"Test set loss\")".to_string(),
        "train_loss" => "the mean pre-step loss per training image over each epoch (pytorch/examples' \"Average loss\")".to_string(),
        other => format!("`{other}` per epoch"),
    }
}

/// Renders the sweep's figures and writes `<sweep>/repro.md` from the comparisons `tables` and
/// `rows` and the identification ranking `identify` ([`crate::compare::repro`]); returns its
/// path.
#[allow(clippy::too_many_arguments)]
pub fn write(
    store: &Store,
    data: &Path,
    manifest: &Manifest,
    spec: &ReproSpec,
    tables: &[TableComparison],
    rows: &[RowComparison],
    identify: Option<(String, Vec<Candidate>)>,
    source: &Path,
) -> Result<PathBuf> {
    super::plot(
        store,
        data,
        &crate::store::Target::Sweep(manifest.name.clone()),
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
        tables,
        rows,
        identify,
        figures,
    };
    let path = store.sweep_dir(&manifest.name).join("repro.md");
    write_atomic(&path, report.markdown().as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::repro::SeedCurves;
    use crate::config::matrix::PublishedTable;
    use crate::config::RunSpec;
    use crate::sweep::ManifestRun;

    fn comparison(loss: &[f64], seeds: &[&[f64]]) -> TableComparison {
        TableComparison {
            table: PublishedTable {
                name: "beta0".into(),
                title: "table at β = 0".into(),
                beta: Some(0.0),
                matching: toml::Table::new(),
                column: "article_loss".into(),
                loss: loss.to_vec(),
            },
            ours: SeedCurves {
                values: seeds.iter().map(|c| c.to_vec()).collect(),
            },
            reference: None,
        }
    }

    /// The report prints the verdict computed from the numbers, and blames the article's setup
    /// only when ours and PyTorch agree with each other but not with the article.
    #[test]
    fn report_prints_the_verdict_of_the_numbers() {
        let manifest = Manifest {
            name: "article".into(),
            description: String::new(),
            source: String::new(),
            code_fingerprint: "test".into(),
            created: String::new(),
            runs: vec![ManifestRun {
                id: "r0".into(),
                spec: RunSpec::default(),
            }],
            stacks: Vec::new(),
        };
        let spec = ReproSpec {
            source: String::new(),
            tolerance: 0.05,
            from_epoch: 2,
            identify: None,
            table: vec![comparison(&[100.0; 4], &[]).table],
            row: Vec::new(),
        };
        let render = |seeds: &[&[f64]], reference: bool| {
            let mut t = comparison(&[100.0; 4], seeds);
            if reference {
                t.reference = Some(t.ours.clone());
            }
            let tables = [t];
            ReproReport {
                source: "m.toml",
                manifest: &manifest,
                spec: &spec,
                tables: &tables,
                rows: &[],
                identify: None,
                figures: Vec::new(),
            }
            .markdown()
        };
        let md = render(&[&[150.0, 103.0, 92.0, 106.0]], false);
        assert!(md.contains("**Verdict: not reproduced.** Epoch(s) 3, 4 differ by more than 5% (largest -8.00% at epoch 3)."), "{md}");
        let md = render(&[&[150.0, 103.0, 96.0, 101.0]], false);
        assert!(md.contains("**Verdict: reproduced.** Every published epoch 2–4 is within 5% of the published number (largest difference -4.00% at epoch 3)."), "{md}");

        let same_way = "Both differ from the published numbers in the same way";
        let off = [
            &[110.0, 109.0, 109.0, 109.0][..],
            &[110.0, 111.0, 111.0, 111.0],
        ];
        let md = render(&off, true);
        assert!(
            md.contains("ours and PyTorch agree") && md.contains(same_way),
            "{md}"
        );
        let near = [
            &[110.0, 99.0, 99.0, 99.0][..],
            &[110.0, 101.0, 101.0, 101.0],
        ];
        let md = render(&near, true);
        assert!(
            md.contains("ours and PyTorch agree") && !md.contains(same_way),
            "{md}"
        );
    }
}
