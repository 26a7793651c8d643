//! `vaelab repro`'s report: `repro.md`, the comparisons of [`crate::compare::repro`] as
//! Markdown tables with their verdicts, the identification ranking and the article's figures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::compare::repro::{runs_for, setup_text, within, Candidate, TableComparison, Verdict};
use crate::config::matrix::ReproSpec;
use crate::config::RunSpec;
use crate::model::ModelKind;
use crate::store::{write_atomic, Store};
use crate::sweep::Manifest;

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
                                within((rmean - article) / article, spec.tolerance);
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
                    "**Verdict: reproduced.** Every epoch {}–{} is within {:.0}% of the article (largest difference {} at epoch {epoch}).",
                    spec.from_epoch,
                    t.table.loss.len(),
                    spec.tolerance * 100.0,
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
                    "**Verdict: not reproduced.** Epoch(s) {} differ by more than {:.0}% (largest {} at epoch {epoch}).",
                    outside.join(", "),
                    spec.tolerance * 100.0,
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

/// Renders the sweep's figures and writes `<sweep>/repro.md` from the comparisons `tables`
/// and the identification ranking `identify` ([`crate::compare::repro`]); returns its path.
pub fn write(
    store: &Store,
    data: &Path,
    manifest: &Manifest,
    spec: &ReproSpec,
    tables: &[TableComparison],
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
                beta: 0.0,
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
                identify: None,
                figures: Vec::new(),
            }
            .markdown()
        };
        let md = render(&[&[150.0, 103.0, 92.0, 106.0]], false);
        assert!(md.contains("**Verdict: not reproduced.** Epoch(s) 3, 4 differ by more than 5% (largest -8.00% at epoch 3)."), "{md}");
        let md = render(&[&[150.0, 103.0, 96.0, 101.0]], false);
        assert!(md.contains("**Verdict: reproduced.** Every epoch 2–4 is within 5% of the article (largest difference -4.00% at epoch 3)."), "{md}");

        let same_way = "Both differ from the article in the same way";
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
