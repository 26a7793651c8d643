//! The real `vaelab train` binary on a real MNIST slice: Parquet contents, AE nulls, reruns,
//! bad input.
mod common;

use vaelab::store::{read_metrics, read_parquet, METRICS_COLUMNS};

#[test]
fn a_vae_trains_two_epochs_and_writes_tidy_parquet() {
    let results = tempfile::tempdir().unwrap();
    let args = [
        "--quiet", "train", "--model", "vae", "--beta", "1", "--epochs", "2", "--limit", "2000",
        "--seed", "3",
    ];
    let out = common::vaelab(results.path(), &args);
    assert!(out.status.success(), "{}", common::text(&out));
    let run = common::only_run(results.path());
    for file in [
        "config.toml",
        "provenance.toml",
        "metrics.parquet",
        "model.bpk",
        "status.toml",
    ] {
        assert!(run.join(file).is_file(), "missing {file}");
    }
    let df = read_parquet(&run.join("metrics.parquet")).unwrap();
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(names, METRICS_COLUMNS.map(String::from));
    let rows = read_metrics(&run.join("metrics.parquet")).unwrap();
    assert_eq!(rows.len(), 4, "2 epochs × 2 splits");
    let get = |e: u32, s: &str| {
        rows.iter()
            .find(|r| r.epoch == e && r.split.as_str() == s)
            .unwrap()
    };
    for r in &rows {
        assert!(
            r.recon.is_finite() && r.loss.is_finite() && r.seconds > 0.0,
            "{r:?}"
        );
        let kl = r.kl.expect("a VAE has a KL");
        assert!(kl > 0.0 && kl.is_finite(), "{r:?}");
        assert!(
            (r.loss - (r.recon + r.beta_kl.unwrap())).abs() < 1e-3 * r.loss,
            "{r:?}"
        );
        assert_eq!(r.article_loss.is_some(), r.split.as_str() == "train");
    }
    assert!(get(2, "train").recon < get(1, "train").recon);
    assert!(get(2, "test").recon < get(1, "test").recon);
    // The article's number is batch_size × mean loss when batches are full (2000 = 62×32 + 16).
    let a = get(1, "train");
    let ratio = a.article_loss.unwrap() / a.loss;
    assert!((31.0..32.5).contains(&ratio), "article/loss ratio {ratio}");
    // The same command again finds the finished run and trains nothing.
    let again = common::vaelab(results.path(), &args);
    assert!(again.status.success());
    assert!(
        common::text(&again).contains("already complete"),
        "{}",
        common::text(&again)
    );
    assert_eq!(read_metrics(&run.join("metrics.parquet")).unwrap(), rows);
}

#[test]
fn an_autoencoder_stores_null_kl() {
    let results = tempfile::tempdir().unwrap();
    let out = common::vaelab(
        results.path(),
        &[
            "--quiet", "train", "--model", "ae", "--epochs", "1", "--limit", "1000",
        ],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    let rows = read_metrics(&common::only_run(results.path()).join("metrics.parquet")).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.kl.is_none() && r.beta_kl.is_none()));
    assert!(rows.iter().all(|r| r.loss == r.recon));
}

#[test]
fn bad_values_give_one_line_errors_and_write_nothing() {
    let results = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["train", "--beta", "-1"],
            "--beta -1: must be finite and >= 0",
        ),
        (&["train", "--latent", "0"], "--latent 0: must be >= 1"),
        (&["train", "--epochs", "0"], "--epochs 0: must be >= 1"),
        (
            &["train", "--model", "gan"],
            "invalid value 'gan' for '--model <MODEL>'",
        ),
        (
            &["train", "--beta", "x"],
            "invalid value 'x' for '--beta <BETA>'",
        ),
    ];
    for (args, want) in cases {
        let out = common::vaelab(results.path(), args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(
            std::fs::read_dir(results.path()).unwrap().count(),
            0,
            "{args:?} wrote"
        );
    }
}

/// A learning-rate schedule is followed per epoch and recorded: `lr` of every row of
/// `metrics.parquet` is the schedule's for its epoch.
#[test]
fn the_learning_rate_of_each_epoch_follows_the_schedule_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::vaelab(
        dir.path(),
        &[
            "--quiet",
            "train",
            "--epochs",
            "3",
            "--limit",
            "300",
            "--hidden",
            "16",
            "--lr-schedule",
            "step",
            "--lr-decay",
            "0.5",
            "--lr-step",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    let rows = read_metrics(&common::only_run(dir.path()).join("metrics.parquet")).unwrap();
    let lrs: Vec<(u32, Option<f64>)> = rows.iter().map(|r| (r.epoch, r.lr)).collect();
    assert_eq!(
        lrs,
        [1, 1, 2, 2, 3, 3].map(|e| (e, Some(if e < 3 { 1e-3 } else { 5e-4 })))
    );
    // And the optimiser followed it: the same run at a constant rate has the same epochs 1
    // and 2 (the rate is the same), and another epoch 3.
    let constant = tempfile::tempdir().unwrap();
    let out = common::vaelab(
        constant.path(),
        &[
            "--quiet", "train", "--epochs", "3", "--limit", "300", "--hidden", "16",
        ],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    let flat = read_metrics(&common::only_run(constant.path()).join("metrics.parquet")).unwrap();
    let numbers = |r: &vaelab::store::EpochRow| (r.epoch, r.recon, r.kl, r.loss);
    for (a, b) in rows.iter().zip(&flat) {
        if a.epoch < 3 {
            assert_eq!(numbers(a), numbers(b));
        } else {
            assert_ne!(numbers(a), numbers(b));
        }
    }
    // A bad value is one line naming the flag, and nothing is written.
    let bad = tempfile::tempdir().unwrap();
    let results = bad.path().join("r");
    let out = common::vaelab(&results, &["train", "--lr-decay", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        err.trim_end(),
        "error: --lr-decay 0: must be finite and > 0"
    );
    assert!(!results.exists());
}
