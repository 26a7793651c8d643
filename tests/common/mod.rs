//! Helpers shared by the integration tests: the real binary, real MNIST, temp result dirs.
#![allow(dead_code)]

pub mod trackers;

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

/// The environment under which a stacked member equals its run alone bit for bit at the
/// article's shape (measured on an Intel Sapphire Rapids VM; on the AMD EPYC VM of earlier
/// rounds it held with two threads as well): libtorch's and
/// MKL's kernels single-threaded, as each `--jobs` worker's are when jobs = cores. With
/// two threads a GEMM alone may split its work differently from the same GEMM inside a batched
/// one (MKL on Sapphire Rapids does at 32×784·784×256), and the runs then agree to rounding.
pub const SINGLE_THREADED: &[(&str, &str)] = &[("OMP_NUM_THREADS", "1"), ("MKL_NUM_THREADS", "1")];

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

/// A file as a relaunch finds it: its bytes, and the identity of its last write (inode and
/// modification time), so that an atomic rewrite (a new file renamed over the old one) shows
/// even when it writes the same bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub bytes: Vec<u8>,
    pub inode: u64,
    pub modified: std::time::SystemTime,
}

/// Every file the runs under `results` keep (config, status, provenance, metrics, evaluation,
/// model, checkpoints), by path under `results`. Left out: the pages and pictures a relaunch
/// redraws (each run's `report/` and `plots/`), the lock file, which holds no result, and the
/// hidden temporary files a kill leaves (`.NAME.*.tmp`), which hold none either.
pub fn run_files(results: &Path) -> std::collections::BTreeMap<PathBuf, Stamp> {
    use std::os::unix::fs::MetadataExt;
    let hidden = |path: &Path| path.file_name().unwrap().to_string_lossy().starts_with('.');
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for run in std::fs::read_dir(results.join("runs")).expect("runs/ exists") {
        let run = run.unwrap().path();
        for entry in std::fs::read_dir(&run).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if matches!(name.as_str(), "report" | "plots" | "lock") {
                continue;
            }
            if path.is_dir() {
                walk(&path, &mut files);
            } else {
                files.push(path);
            }
        }
    }
    files
        .into_iter()
        .filter(|path| !hidden(path.as_path()))
        .map(|path| {
            let meta = std::fs::metadata(&path).unwrap();
            let stamp = Stamp {
                bytes: std::fs::read(&path).unwrap(),
                inode: meta.ino(),
                modified: meta.modified().unwrap(),
            };
            (path.strip_prefix(results).unwrap().to_path_buf(), stamp)
        })
        .collect()
}

/// The per-epoch lines of `text` (`vaelab::train::epoch_line`: `<label> epoch   1/3  train
/// recon … | test recon … | article …`), printed for every epoch trained, `--quiet` or not.
pub fn epoch_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            l.contains(" epoch ") && l.contains("train recon") && l.contains("| test recon")
        })
        .collect()
}

/// Asserts that `out`, a relaunch of runs that were all done, trained nothing: no epoch line,
/// no resume, and every run file of `before` (taken just before it, with the metrics,
/// provenance and model of every run in it) still there with the same bytes, inode and
/// modification time, and no new one.
pub fn assert_trained_nothing(
    results: &Path,
    before: &std::collections::BTreeMap<PathBuf, Stamp>,
    out: &Output,
) {
    let text = text(out);
    assert!(out.status.success(), "{text}");
    let runs: Vec<PathBuf> = std::fs::read_dir(results.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!runs.is_empty(), "no run under {}", results.display());
    for run in &runs {
        for file in ["metrics.parquet", "provenance.toml", "model.bpk"] {
            let rel = run.strip_prefix(results).unwrap().join(file);
            assert!(
                before.contains_key(&rel),
                "{} missing before the relaunch",
                rel.display()
            );
        }
    }
    let trained = epoch_lines(&text);
    assert!(
        trained.is_empty(),
        "the relaunch trained {} epoch(s):\n{text}",
        trained.len()
    );
    assert!(
        !text.contains("resuming after epoch"),
        "the relaunch resumed a run:\n{text}"
    );
    let after = run_files(results);
    let changed: Vec<String> = before
        .iter()
        .filter_map(|(path, old)| match after.get(path) {
            None => Some(format!("{} removed", path.display())),
            Some(new) if new.bytes != old.bytes => {
                Some(format!("{} rewritten with other bytes", path.display()))
            }
            Some(new) if new != old => Some(format!("{} rewritten (same bytes)", path.display())),
            Some(_) => None,
        })
        .chain(
            after
                .keys()
                .filter(|p| !before.contains_key(*p))
                .map(|p| format!("{} created", p.display())),
        )
        .collect();
    assert!(
        changed.is_empty(),
        "the relaunch touched run files: {changed:#?}\n{text}"
    );
}

/// Encoder means, a VAE's log-variances, decoded images (see [`model_outputs`]).
pub type ModelOutputs = (Vec<Vec<f32>>, Option<Vec<Vec<f32>>>, Vec<Vec<f32>>);

/// What the trained network of `run` (a run directory under `<results>/runs/`) computes: the
/// encoder's outputs (means, and a VAE's log-variances) on the first 16 test images and the
/// decoder's images of two fixed codes. Bit-equal outputs mean equal weights; the model files
/// themselves cannot be compared byte for byte, as Burn stores a random id with each parameter.
pub fn model_outputs(run: &Path) -> ModelOutputs {
    use vaelab::data::{Mnist, Split};
    let store = vaelab::store::Store::new(run.parent().unwrap().parent().unwrap());
    let dir = store.run(run.file_name().unwrap().to_str().unwrap());
    let spec = dir.read_spec().unwrap();
    let model = vaelab::report::figures::Inspector::load(&dir, &spec).unwrap();
    let test = Mnist::load(spec.dataset, &mnist_dir(), Split::Test, Some(16)).unwrap();
    let images: Vec<usize> = (0..16).collect();
    let (mu, log_var) = model.encode(&test, &images);
    let codes = [vec![0.5; spec.latent], vec![-1.0; spec.latent]];
    let classes: Vec<u8> = if model.is_conditional() {
        vec![3, 7]
    } else {
        Vec::new()
    };
    (mu, log_var, model.decode(&codes, &classes))
}
