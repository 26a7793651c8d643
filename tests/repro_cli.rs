//! `vaelab repro` on a small slice: the report's structure, and its numbers come from the runs'
//! Parquet.
mod common;

use std::path::Path;

use vaelab::store::{read_eval, read_metrics};
use vaelab::sweep::Manifest;

#[test]
fn repro_on_a_slice_reports_both_tables_from_the_runs_parquet() {
    let scratch = tempfile::tempdir().unwrap();
    let results = scratch.path().join("results");
    let matrix = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/article.toml");
    let args = [
        "--quiet",
        "repro",
        matrix.to_str().unwrap(),
        "--epochs",
        "2",
        "--limit",
        "2000",
        "--seeds",
        "2",
    ];
    let out = common::vaelab(&results, &args);
    assert!(out.status.success(), "{}", common::text(&out));
    let report = std::fs::read_to_string(results.join("sweeps/article/repro.md")).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&report));
    for heading in [
        "# Reproducing published numbers",
        "## VAE trained on reconstruction only (beta=0)",
        "## VAE trained on reconstruction + 3·KLD (beta=3)",
        "| epoch | published | ours (mean ± sd, 2 seeds) | difference | difference % |",
        "Tolerance: every published epoch 2–2 within 5% of the published number",
        "## Figures",
    ] {
        assert!(report.contains(heading), "missing {heading:?} in\n{report}");
    }
    assert_eq!(report.matches("**Verdict: ").count(), 2, "{report}");
    // The published numbers are in the matrix, copied from the article.
    assert!(report.contains("| 2 | 959.0322 |") && report.contains("| 10 | 1411.3642 |"));

    // Every "ours" cell is the mean over seeds of the runs' article_loss in metrics.parquet.
    let manifest = Manifest::read(&results.join("sweeps/article/manifest.toml")).unwrap();
    assert_eq!(manifest.runs.len(), 4, "2 tables × 2 seeds");
    for (beta, published) in [(0.0, [1253.6249, 959.0322]), (3.0, [1714.9480, 1573.2981])] {
        for epoch in 1..=2u32 {
            let values: Vec<f64> = manifest
                .runs
                .iter()
                .filter(|r| r.spec.beta == beta)
                .map(|r| {
                    read_metrics(&results.join("runs").join(&r.id).join("metrics.parquet"))
                        .unwrap()
                        .into_iter()
                        .find(|row| row.epoch == epoch && row.split == vaelab::data::Split::Train)
                        .and_then(|row| row.article_loss)
                        .unwrap()
                })
                .collect();
            assert_eq!(values.len(), 2);
            let mean = values.iter().sum::<f64>() / 2.0;
            let article = published[epoch as usize - 1];
            let cell = format!("| {epoch} | {article:.4} | {mean:.4} ± ");
            assert!(report.contains(&cell), "missing {cell:?} in\n{report}");
        }
    }
    for figure in ["plots/reconstructions.png", "plots/samples.png"] {
        assert!(
            results.join("sweeps/article").join(figure).is_file(),
            "{figure}"
        );
    }
    // A relaunch reuses the finished runs: it trains nothing (no epoch line; every run's
    // metrics, provenance, status, model and checkpoints keep their bytes and their last write)
    // and writes the same report.
    let before = common::run_files(&results);
    let again = common::vaelab(&results, &args);
    common::assert_trained_nothing(&results, &before, &again);
    assert_eq!(
        std::fs::read_to_string(results.join("sweeps/article/repro.md")).unwrap(),
        report
    );
}

#[test]
fn repro_without_published_tables_says_so() {
    let scratch = tempfile::tempdir().unwrap();
    let matrix = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quick.toml");
    let out = common::vaelab(scratch.path(), &["repro", matrix.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("quick.toml: no [repro] table"), "{err}");
    assert!(!scratch.path().join("sweeps").exists());
}

/// A general `[repro]`: a per-epoch curve of the test loss published at some epochs only (`nan`
/// elsewhere) for the runs that `match` selects, and a final row (NLL at k = 50, active units)
/// that makes `repro` evaluate its runs at that k; every cell is the runs' own Parquet.
#[test]
fn repro_compares_any_column_and_final_rows() {
    let scratch = tempfile::tempdir().unwrap();
    let results = scratch.path().join("results");
    let matrix = scratch.path().join("lit.toml");
    std::fs::write(
        &matrix,
        "[sweep]\nname = \"lit\"\n[base]\nmodel = \"vae\"\nbeta = 1.0\nhidden = [16]\nlatent = 2\nlayout = \"heads\"\nlikelihood = \"bernoulli\"\nbinarize = \"threshold\"\nepochs = 2\nlimit = 300\n[grid]\nobjective = [\"elbo\", \"iwae\"]\nseed = [0, 1]\n\
         [repro]\nsource = \"made up\"\ntolerance = 0.5\n\
         [[repro.table]]\nname = \"curve\"\ntitle = \"ELBO test loss\"\nmatch = { objective = \"elbo\" }\ncolumn = \"test_loss\"\nloss = [nan, 400.0]\n\
         [[repro.row]]\nname = \"iwae\"\ntitle = \"IWAE row\"\nmatch = { objective = \"iwae\" }\nk = 50\nnll = 300.0\nactive_units = 2\n",
    )
    .unwrap();
    let out = common::vaelab(&results, &["--quiet", "repro", matrix.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::text(&out));
    let report = std::fs::read_to_string(results.join("sweeps/lit/repro.md")).unwrap();
    let manifest = Manifest::read(&results.join("sweeps/lit/manifest.toml")).unwrap();
    let of = |objective: &str| -> Vec<String> {
        manifest
            .runs
            .iter()
            .filter(|r| r.spec.objective.as_str() == objective)
            .map(|r| r.id.clone())
            .collect()
    };
    // The curve: epoch 1 is not published (no line), epoch 2 is the mean of the ELBO runs.
    let test_loss: Vec<f64> = of("elbo")
        .iter()
        .map(|id| {
            read_metrics(&results.join("runs").join(id).join("metrics.parquet"))
                .unwrap()
                .into_iter()
                .find(|r| r.epoch == 2 && r.split == vaelab::data::Split::Test)
                .unwrap()
                .loss
        })
        .collect();
    let mean = test_loss.iter().sum::<f64>() / 2.0;
    assert!(
        report.contains("## ELBO test loss (objective=\"elbo\")"),
        "{report}"
    );
    assert!(
        report.contains("the test split's loss per image"),
        "{report}"
    );
    assert!(!report.contains("| 1 | NaN"), "{report}");
    let cell = format!("| 2 | 400.0000 | {mean:.4} ± ");
    assert!(report.contains(&cell), "missing {cell:?} in\n{report}");
    // The row: −(IWAE k = 50) of the IWAE runs, evaluated by `repro` itself.
    let nll: Vec<f64> = of("iwae")
        .iter()
        .map(|id| {
            let rows = read_eval(&results.join("runs").join(id).join("eval.parquet"))
                .unwrap()
                .unwrap();
            -rows
                .iter()
                .find(|r| r.metric == "iwae" && r.k == Some(50))
                .unwrap()
                .value
        })
        .collect();
    let (m, sd) = vaelab::compare::mean_sd(&nll);
    let cell = format!("| IWAE row | 2 of 2 evaluated | 50 | 300 | {m:.2} ± {sd:.2} |");
    assert!(report.contains(&cell), "missing {cell:?} in\n{report}");

    // A column that is not a per-epoch result, or a match key that is not a parameter: one
    // line naming the table, nothing written.
    for (from, to, needle) in [
        (
            "column = \"test_loss\"",
            "column = \"test_lost\"",
            "column `test_lost` is not a per-epoch result",
        ),
        (
            "match = { objective = \"iwae\" }",
            "match = { objectiv = \"iwae\" }",
            "[[repro.row]] iwae: match: unknown key `objectiv`",
        ),
        (
            "match = { objective = \"elbo\" }",
            "match = { samples = 7 }",
            "[[repro.table]] curve: no run of the matrix has samples=7",
        ),
    ] {
        let bad = scratch.path().join("bad.toml");
        let text = std::fs::read_to_string(&matrix).unwrap().replace(from, to);
        std::fs::write(&bad, text.replace("name = \"lit\"", "name = \"bad\"")).unwrap();
        let out = common::vaelab(&results, &["repro", bad.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(!results.join("sweeps/bad").exists(), "{err}");
    }
}

/// pytorch/examples' VAE on a slice (2 epochs, 1,000 images, 3 seeds) beside the reference
/// script (`scripts/reference/pytorch_examples.py`, real PyTorch from `./scripts/setup-reference`)
/// on the same seeds: the report shows both per epoch and ours within 2 seed standard
/// deviations of PyTorch at every epoch.
#[test]
fn pytorch_examples_on_a_slice_agrees_with_the_reference_script() {
    let scratch = tempfile::tempdir().unwrap();
    let results = scratch.path().join("results");
    let matrix = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/pytorch-examples.toml");
    let args = [
        "--quiet",
        "repro",
        matrix.to_str().unwrap(),
        "--epochs",
        "2",
        "--limit",
        "1000",
        "--with-reference",
    ];
    let out = common::vaelab(&results, &args);
    assert!(out.status.success(), "{}", common::text(&out));
    let report = std::fs::read_to_string(results.join("sweeps/pytorch-examples/repro.md")).unwrap();
    assert!(
        report.contains("| epoch | published | ours (mean ± sd, 3 seeds) | difference | difference % | PyTorch, same setup (mean ± sd) | ours − PyTorch (in sd) |"),
        "{report}"
    );
    // Both epochs have a PyTorch cell (epoch 2 is not published: "–" in its published cell).
    assert!(report.contains("| 2 | – | "), "{report}");
    let lines: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("| 1 |") || l.starts_with("| 2 |"))
        .collect();
    assert_eq!(lines.len(), 2, "{report}");
    for line in &lines {
        let z: f64 = line
            .trim_end_matches('|')
            .rsplit('|')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no z in {line}"));
        assert!(z.abs() <= 2.0, "ours − PyTorch = {z} sd: {line}");
    }
    assert!(
        report.contains("Against PyTorch: ours and PyTorch agree within 2 seed standard deviations on every judged epoch."),
        "{report}"
    );
    let reference = results.join("sweeps/pytorch-examples/reference");
    assert_eq!(
        std::fs::read_dir(&reference).unwrap().count(),
        3,
        "one reference file per seed"
    );
}
