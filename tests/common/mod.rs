//! Helpers shared by the integration tests: the real binary, real MNIST, temp result dirs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The MNIST directory installed by ./scripts/setup; the tests need the real data.
pub fn mnist_dir() -> PathBuf {
    let dir = vaelab::data::default_dir();
    assert!(
        dir.join("train-images-idx3-ubyte").exists(),
        "real MNIST is missing at {}: run ./scripts/setup",
        dir.display()
    );
    dir
}

/// Runs the real `vaelab` binary with `args`, results under `results`.
pub fn vaelab(results: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vaelab"))
        .arg("--results")
        .arg(results)
        .arg("--data")
        .arg(mnist_dir())
        .args(args)
        .output()
        .expect("vaelab runs")
}

/// stdout + stderr as text, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The only run directory under `results/runs`.
pub fn only_run(results: &Path) -> PathBuf {
    let runs: Vec<_> = std::fs::read_dir(results.join("runs"))
        .expect("runs/ exists")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "expected one run, found {runs:?}");
    runs[0].clone()
}

/// Runs `git args` in `repo` as a throwaway identity (no signing) and returns its trimmed stdout.
pub fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=vaelab tests",
            "-c",
            "user.email=tests@vaelab",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(repo)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The library a `vaelab` executable in `release_dir` loads: Cargo leaves the cdylib in `deps/`
/// when it builds the executable alone, and rewrites it there on every build.
pub fn built_library(release_dir: &Path) -> PathBuf {
    release_dir.join("deps").join("libvaelab.so")
}

/// The real `vaelab` binary with `--results results --data MNIST`, not started yet: for tests
/// that add environment variables or run it in the background.
pub fn command(results: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vaelab"));
    cmd.arg("--results")
        .arg(results)
        .arg("--data")
        .arg(mnist_dir());
    cmd
}

/// [`vaelab`] with extra environment variables.
pub fn vaelab_env(results: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = command(results);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("vaelab runs")
}

/// Every run's per-epoch rows under `results`, keyed by run id, without the wall-clock column
/// (what must be equal between two ways of training the same runs).
pub fn metrics_by_run(results: &Path) -> Vec<(String, Vec<vaelab::store::EpochRow>)> {
    let mut runs: Vec<(String, Vec<vaelab::store::EpochRow>)> =
        std::fs::read_dir(results.join("runs"))
            .unwrap()
            .map(|e| {
                let dir = e.unwrap().path();
                let rows = vaelab::store::read_metrics(&dir.join("metrics.parquet"))
                    .unwrap()
                    .into_iter()
                    .map(|r| vaelab::store::EpochRow { seconds: 0.0, ..r })
                    .collect();
                (
                    dir.file_name().unwrap().to_string_lossy().into_owned(),
                    rows,
                )
            })
            .collect();
    runs.sort_by(|a, b| a.0.cmp(&b.0));
    runs
}
