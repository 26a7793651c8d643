//! Run identity and `vaelab diff` end to end: a clone of this repository is built at its HEAD
//! and trains tiny runs on real MNIST; a docs-only commit and a rebuild find the same runs
//! (same ids, nothing retrained); a commit that changes code and a rebuild train new runs; the
//! last build's `diff HEAD~2 HEAD` pairs the runs of the two code versions. Then each of the
//! other kinds of code alone makes new ids: a commit of `Cargo.toml` only, one of `build.rs`
//! only, and an untracked file under `src/`.
//!
//! A run's id holds a content hash of its code and its provenance the commit its *binary* was
//! built from (see `build.rs`), so nothing short of real builds tests either. The clone builds
//! into a target directory inside this suite's own (`target/e2e-*`, removed when the test
//! ends), seeded with a copy of the dependencies this suite was built with, so that only the
//! vaelab crate compiles (and `fail`, whose `failpoints` feature the clone does not enable):
//! cargo's fingerprints hold no absolute path of the target directory, and those of registry
//! crates depend only on their (shared) sources, so the copies are fresh there. Not the suite's
//! target directory itself: the clone's build would overwrite `release/vaelab` and
//! `deps/libvaelab.so` (no hash in their names), which this suite's other tests run. A copy,
//! not hard links: cargo truncates a dirty unit's fingerprint file in place and build scripts
//! rewrite their output folders in place, which through a hard link would change this suite's
//! own build.
mod common;

use std::os::unix::fs::MetadataExt;
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

/// The profile directory this test binary was built in (`<target>/release` for
/// `<target>/release/deps/diff_e2e-…`).
fn own_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(2).unwrap().to_path_buf()
}

/// The cargo profile of [`own_profile_dir`]: the clone builds with the same one, so that it
/// finds the same dependencies.
fn own_profile() -> String {
    match own_profile_dir().file_name().unwrap().to_str().unwrap() {
        "debug" => "dev".to_string(),
        other => other.to_string(),
    }
}

/// The clone's target directory: a fresh folder inside this suite's target directory (same
/// filesystem, removed on drop, even when the test fails), whose profile directory holds a
/// copy (`cp -a`: modification times kept, as cargo's freshness checks compare them; reflinks
/// where the filesystem has them) of this build's `.fingerprint/`, `build/` and the libraries
/// in `deps/`, leaving out vaelab's own units (whose names the clone's build reuses) and the
/// executables (vaelab's binary and test binaries, which the clone never builds).
fn seeded_target_dir() -> tempfile::TempDir {
    let own = own_profile_dir();
    let dir = tempfile::Builder::new()
        .prefix("e2e-")
        .tempdir_in(own.parent().unwrap())
        .unwrap();
    let profile = dir.path().join(own.file_name().unwrap());
    let vaelab_unit = |name: &str| name.starts_with("vaelab") || name.starts_with("libvaelab");
    for sub in [".fingerprint", "build", "deps"] {
        let to = profile.join(sub);
        std::fs::create_dir_all(&to).unwrap();
        let entries: Vec<PathBuf> = std::fs::read_dir(own.join(sub))
            .unwrap_or_else(|e| panic!("{}: {e}", own.join(sub).display()))
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                !vaelab_unit(&name) && (sub != "deps" || p.extension().is_some())
            })
            .collect();
        if !entries.is_empty() {
            run(Command::new("cp")
                .args(["-a", "--reflink=auto", "-t"])
                .arg(&to)
                .args(&entries));
        }
    }
    dir
}

/// What identifies a file's last write: inode, length, modification time.
fn identity(path: &Path) -> Option<(u64, u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.ino(), meta.len(), meta.modified().ok()?))
}

/// Builds the clone at its current commit into `target` and keeps a copy of the executable and
/// the library it loads in a folder `name`; returns the executable and the packages cargo
/// compiled other than the clone's vaelab (their manifest folders, e.g. `fail-0.5.1`).
fn build(repo: &Path, target: &Path, name: &str) -> (PathBuf, Vec<String>) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile = own_profile();
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--profile", profile.as_str(), "--quiet"])
        .args(["--bin", "vaelab"])
        .arg("--message-format=json-render-diagnostics")
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
    let out = run(&mut cmd);
    let own_manifest = repo.join("Cargo.toml").canonicalize().unwrap();
    let compiled: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["fresh"] == false)
        .filter_map(|m| m["manifest_path"].as_str().map(PathBuf::from))
        .filter(|manifest| manifest.canonicalize().ok().as_ref() != Some(&own_manifest))
        .map(|manifest| {
            let dir = manifest.parent().unwrap().file_name().unwrap();
            dir.to_string_lossy().into_owned()
        })
        .collect();
    let built = target.join(own_profile_dir().file_name().unwrap());
    let dir = repo.parent().unwrap().join(name);
    std::fs::create_dir(&dir).unwrap();
    let bin = dir.join("vaelab");
    std::fs::copy(built.join("vaelab"), &bin).unwrap();
    let library = common::built_library(&built);
    std::fs::copy(library, dir.join("libvaelab.so")).unwrap();
    (bin, compiled)
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
    // The suite's own executable and library, which other tests run meanwhile: no clone's
    // build may replace them.
    let own = [
        PathBuf::from(env!("CARGO_BIN_EXE_vaelab")),
        common::built_library(&own_profile_dir()),
    ];
    let before: Vec<_> = own.iter().map(|p| identity(p.as_path())).collect();
    let target_dir = seeded_target_dir();
    let target = target_dir.path();

    let (first, compiled) = build(&repo, target, "vaelab-first");
    // Only vaelab (not listed) and `fail` (built here without its failpoints) compile.
    let others: Vec<&String> = compiled
        .iter()
        .filter(|p| !p.starts_with("fail-"))
        .collect();
    assert!(
        others.is_empty(),
        "the clone compiled dependencies again: {others:?}"
    );
    train(&first, &results);
    let c1 = git(&repo, &["rev-parse", "HEAD"]);
    let ids = run_ids(&results);
    assert_eq!(ids.len(), 2);

    // A docs-only commit: same code, so the same runs, found complete.
    commit_change(&repo, "README.md", "\nA docs-only change.\n", "docs only");
    let (docs, _) = build(&repo, target, "vaelab-docs");
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
    let (second, _) = build(&repo, target, "vaelab-second");
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

    // The rest of the code, each kind alone: a rebuild trains two new runs.
    let mut ids = run_ids(&results);
    let mut new_runs_after = |what: &str, name: &str| {
        let (bin, _) = build(&repo, target, name);
        let printed = train(&bin, &results);
        assert!(!printed.contains("already complete"), "{what}: {printed}");
        let now = run_ids(&results);
        assert_eq!(
            now.len(),
            ids.len() + 2,
            "{what} makes new run ids: {now:?}"
        );
        ids = now;
    };
    commit_change(
        &repo,
        "Cargo.toml",
        "\n# changed by tests/diff_e2e.rs\n",
        "Cargo.toml only",
    );
    new_runs_after("a commit of Cargo.toml only", "vaelab-manifest");
    commit_change(
        &repo,
        "build.rs",
        "\n// changed by tests/diff_e2e.rs\n",
        "build.rs only",
    );
    new_runs_after("a commit of build.rs only", "vaelab-build-script");
    let untracked = "src/untracked_by_diff_e2e.rs";
    std::fs::write(
        repo.join(untracked),
        "// Not committed and not a module, yet code: part of the content hash.\n",
    )
    .unwrap();
    // (`--no-optional-locks`: a plain `git status` may rewrite .git/index, which build.rs
    // watches too, and so would rebuild for a reason of its own.)
    let status = git(&repo, &["--no-optional-locks", "status", "--porcelain"]);
    assert_eq!(
        status,
        format!("?? {untracked}"),
        "the clone differs from its last commit by the untracked file alone"
    );
    new_runs_after("an untracked file under src/", "vaelab-untracked");

    let after: Vec<_> = own.iter().map(|p| identity(p.as_path())).collect();
    assert_eq!(
        before, after,
        "a clone's build replaced this suite's {own:?}"
    );
}
