//! `vaelab repro` on a small slice: the report's structure, and its numbers come from the runs'
//! Parquet.
mod common;

use std::path::Path;

use vaelab::store::read_metrics;
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
        "# Reproducing the article's loss tables",
        "## VAE trained on reconstruction only (β = 0)",
        "## VAE trained on reconstruction + 3·KLD (β = 3)",
        "| epoch | article | ours (mean ± sd, 2 seeds) | difference | difference % |",
        "Tolerance: every epoch 2–2 within 5% of the article",
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
