//! Run identity and `vaelab diff` end to end: a clone of this repository is built at its HEAD
//! and trains tiny runs on real MNIST; a docs-only commit and a rebuild find the same runs
//! (same ids, nothing retrained); a commit that changes code and a rebuild train new runs; the
//! last build's `diff HEAD~2 HEAD` pairs the runs of the two code versions.
//!
//! A run's id holds a content hash of its code and its provenance the commit its *binary* was
//! built from (see `build.rs`), so nothing short of real builds tests either. The clone builds into a target directory of
//! its own (`$VAELAB_CACHE/e2e-target`, kept between test runs), seeded from this build's
//! dependencies the first time, so only the vaelab crate itself is compiled twice.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::git;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        common::text(&out)
    );
    out
}

/// The target directory this test binary was built in (`…/release/deps/diff_e2e-…`).
fn own_target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// The clone's target directory; on first use a copy of this build's, so that Burn, polars and
/// libtorch's wrapper are not compiled again (cargo's fingerprints survive the copy).
fn e2e_target_dir() -> PathBuf {
    let dir = match std::env::var_os("VAELAB_E2E_TARGET") {
        Some(dir) => PathBuf::from(dir),
        None => vaelab::data::cache_dir().join("e2e-target"),
    };
    if !dir.join("release").is_dir() {
        let partial = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial).unwrap();
        run(Command::new("cp")
            .arg("-a")
            .arg(own_target_dir().join("release"))
            .arg(&partial));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&partial, &dir).unwrap();
    }
    dir
}

/// Builds the clone at its current commit and keeps a copy of the executable and the library
/// it loads in a folder `name`; returns the executable.
fn build(repo: &Path, target: &Path, name: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--quiet", "--bin", "vaelab"])
        .current_dir(repo)
        .env("CARGO_TARGET_DIR", target);
    // `cargo test` gives this process the variables of *our* package (OUT_DIR,
    // CARGO_MANIFEST_DIR, CARGO_PKG_*); some dependencies' build scripts track them, and a
    // changed value would rebuild Burn and libtorch's wrapper from scratch.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let keep = ["CARGO_HOME", "CARGO_BUILD_JOBS", "CARGO_TARGET_DIR"];
        if key == "OUT_DIR" || (key.starts_with("CARGO_") && !keep.contains(&key.as_ref())) {
            cmd.env_remove(key.as_ref());
        }
    }
    // The clone has no `.libtorch` link: give it the libtorch this build used.
    if let Some(libtorch) = option_env!("LIBTORCH") {
        cmd.env("LIBTORCH", libtorch);
    }
    run(&mut cmd);
    let dir = repo.parent().unwrap().join(name);
    std::fs::create_dir(&dir).unwrap();
    let bin = dir.join("vaelab");
    std::fs::copy(target.join("release/vaelab"), &bin).unwrap();
    let library = common::built_library(&target.join("release"));
    std::fs::copy(library, dir.join("libvaelab.so")).unwrap();
    bin
}

/// Trains the same two tiny runs (an AE and a VAE) with `bin`; what it printed.
fn train(bin: &Path, results: &Path) -> String {
    let mut printed = String::new();
    for model in ["ae", "vae"] {
        let out = run(Command::new(bin)
            .arg("--results")
            .arg(results)
            .arg("--data")
            .arg(common::mnist_dir())
            .args(["--quiet", "train", "--model", model, "--beta", "1"])
            .args(["--epochs", "2", "--limit", "600", "--batch-size", "64"]));
        printed.push_str(&common::text(&out));
    }
    printed
}

fn run_ids(results: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(results.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    ids
}

/// Appends `line` to `file` in the clone and commits it as `message`.
fn commit_change(repo: &Path, file: &str, line: &str, message: &str) -> String {
    let path = repo.join(file);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(line);
    std::fs::write(&path, text).unwrap();
    git(repo, &["commit", "-q", "-am", message]);
    git(repo, &["rev-parse", "HEAD"])
}

#[test]
fn diff_pairs_runs_trained_by_builds_at_two_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let results = tmp.path().join("results");
    run(Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(env!("CARGO_MANIFEST_DIR"))
        .arg(&repo));
    let target = e2e_target_dir();

    let first = build(&repo, &target, "vaelab-first");
    train(&first, &results);
    let c1 = git(&repo, &["rev-parse", "HEAD"]);
    let ids = run_ids(&results);
    assert_eq!(ids.len(), 2);

    // A docs-only commit: same code, so the same runs, found complete.
    commit_change(&repo, "README.md", "\nA docs-only change.\n", "docs only");
    let docs = build(&repo, &target, "vaelab-docs");
    let printed = train(&docs, &results);
    assert_eq!(printed.matches("already complete").count(), 2, "{printed}");
    assert_eq!(run_ids(&results), ids, "a docs-only commit keeps run ids");

    // A code commit (a comment is enough: the hash covers src/ byte for byte): new runs.
    let c2 = commit_change(
        &repo,
        "src/lib.rs",
        "// changed by tests/diff_e2e.rs\n",
        "change the code",
    );
    let second = build(&repo, &target, "vaelab-second");
    let printed = train(&second, &results);
    assert!(!printed.contains("already complete"), "{printed}");
    assert_eq!(
        run_ids(&results).len(),
        4,
        "a code commit makes new run ids"
    );

    let vaelab = |args: &[&str]| {
        Command::new(&second)
            .arg("--results")
            .arg(&results)
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap()
    };
    // Each code version has its own two runs.
    for rev in ["HEAD~2", "HEAD"] {
        let ls = vaelab(&["ls", "--commit", rev]);
        assert!(ls.status.success(), "{}", common::text(&ls));
        let rows = String::from_utf8_lossy(&ls.stdout).lines().count() - 1;
        assert_eq!(rows, 2, "{}", common::text(&ls));
    }

    let out = vaelab(&["diff", "HEAD~2", "HEAD", "--format", "json"]);
    // Same parameters, seed and backend, and a code change that cannot change numbers: the
    // numbers are equal, so nothing changed and the exit code is 0.
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["a"].as_str().unwrap().contains(&c1[..10]), "{json}");
    assert!(json["b"].as_str().unwrap().contains(&c2[..10]), "{json}");
    let commits = json["commits"].as_array().unwrap();
    assert_eq!(commits.len(), 2, "{json}");
    assert!(commits[0].as_str().unwrap().ends_with("change the code"));
    assert!(commits[1].as_str().unwrap().ends_with("docs only"));
    let files: Vec<&str> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(files[0].starts_with("README.md"), "{files:?}");
    assert!(files[1].starts_with("src/lib.rs"), "{files:?}");
    assert!(json["unpaired"].as_array().unwrap().is_empty(), "{json}");
    let pairs = json["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 2, "the AE and the VAE pair up: {json}");
    for pair in pairs {
        let (a, b) = (pair["a"].as_str().unwrap(), pair["b"].as_str().unwrap());
        assert_ne!(a, b, "new code makes new run ids");
        assert_eq!(a.split('-').next(), b.split('-').next(), "{json}");
        for m in pair["metrics"].as_array().unwrap() {
            if m["a"].is_null() {
                continue; // the AE has no KL
            }
            // Losses are positive; the evaluation's log-likelihoods are not (but are compared).
            let positive =
                ["test_recon", "test_kl", "test_loss"].contains(&m["metric"].as_str().unwrap());
            assert!(!positive || m["a"].as_f64().unwrap() > 0.0, "{m}");
            assert_eq!(m["delta"], 0.0, "same seed, same backend: {m}");
            assert_eq!(m["changed"], false, "{m}");
        }
    }
    assert_eq!(json["changed"], false);
    // Both sides were evaluated when they finished: the evaluation is compared too.
    let compared: Vec<&str> = pairs
        .iter()
        .flat_map(|p| p["metrics"].as_array().unwrap())
        .map(|m| m["metric"].as_str().unwrap())
        .collect();
    for metric in ["test_elbo", "iwae_1000", "active_units"] {
        assert!(compared.contains(&metric), "{metric} in {json}");
    }

    // The table names both runs of each pair.
    let table = vaelab(&["diff", "HEAD~2", "HEAD"]);
    let text = String::from_utf8_lossy(&table.stdout);
    for pair in pairs {
        assert!(text.contains(pair["a"].as_str().unwrap()), "{text}");
        assert!(text.contains(pair["b"].as_str().unwrap()), "{text}");
    }
}
