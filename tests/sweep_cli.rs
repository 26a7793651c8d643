//! The real `vaelab sweep` binary: the malformed-matrix catalogue, dry runs, resuming after
//! `kill -9` at several points, and two sweeps sharing one results directory.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vaelab::store::{read_metrics, read_parquet, EpochRow};

/// Two tiny runs (an AE and a VAE), three epochs each on 6,000 images: long enough for a kill
/// to land inside an epoch, short enough for the suite.
const TINY: &str = r#"
[sweep]
name = "tiny"
[base]
epochs = 3
limit = 6000
beta = 1.0
[grid]
model = ["ae", "vae"]
"#;

fn tiny_matrix(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.toml");
    std::fs::write(&path, TINY).unwrap();
    path
}

fn sweep_child(results: &Path, matrix: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vaelab"))
        .arg("--results")
        .arg(results)
        .arg("--data")
        .arg(common::mnist_dir())
        .arg("--quiet")
        .arg("sweep")
        .arg(matrix)
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("vaelab starts")
}

fn metrics_by_run(results: &Path) -> Vec<(String, Vec<EpochRow>)> {
    common::metrics_by_run(results)
}

/// The uninterrupted tiny sweep, trained once for every test that compares against it.
fn reference() -> &'static Vec<(String, Vec<EpochRow>)> {
    static REFERENCE: OnceLock<Vec<(String, Vec<EpochRow>)>> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let matrix = tiny_matrix(&dir);
        let out = common::vaelab(&dir.join("results"), &["--quiet", "sweep", path(&matrix)]);
        assert!(out.status.success(), "{}", common::text(&out));
        let runs = metrics_by_run(&dir.join("results"));
        assert_eq!(runs.len(), 2);
        assert!(runs.iter().all(|(_, rows)| rows.len() == 6), "{runs:?}");
        runs
    })
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Complete epochs of each run on disk (metrics rows of both splits), by run id.
fn epochs_on_disk(results: &Path) -> Vec<(String, usize)> {
    let Ok(entries) = std::fs::read_dir(results.join("runs")) else {
        return Vec::new();
    };
    entries
        .map(|e| {
            let dir = e.unwrap().path();
            let rows = read_metrics(&dir.join("metrics.parquet")).unwrap_or_default();
            let id = dir.file_name().unwrap().to_string_lossy().into_owned();
            (id, rows.len() / 2)
        })
        .collect()
}

#[test]
fn every_malformed_matrix_gives_its_exact_one_line_error_and_writes_nothing() {
    let catalogue = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/matrices/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&catalogue)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 20, "only {} malformed matrices", files.len());
    let scratch = tempfile::tempdir().unwrap();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks an `# expect: ` first line", file.display()));
        let results = scratch.path().join("results");
        for dry in [false, true] {
            let mut args = vec!["sweep", path(&file)];
            if dry {
                args.push("--dry-run");
            }
            let out = common::vaelab(&results, &args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{}: {err}", file.display());
            assert_eq!(
                err,
                format!("error: {}{expect}\n", file.display()),
                "{}",
                file.display()
            );
            assert!(out.stdout.is_empty(), "{}", file.display());
            assert!(!results.exists(), "{} wrote results", file.display());
        }
    }
}

#[test]
fn a_dry_run_lists_the_deduplicated_runs_and_writes_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let results = scratch.path().join("results");
    let matrix = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quick.toml");
    let out = common::vaelab(
        &results,
        &["sweep", path(&matrix), "--dry-run", "--stack", "off"],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    // AE once (β does not apply), VAE at β 0, 1, 3.
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[..4]
        .iter()
        .all(|l| l.len() > 17 && l.contains("model=")));
    assert_eq!(
        lines[5],
        "4 runs in 4 entries in sweep quick, 2 duplicate points merged (same run, e.g. an AE under several beta)"
    );
    assert!(!results.exists());
    // Every shipped matrix expands to the number of runs the README gives.
    for (name, runs) in [
        ("quick", 4),
        ("beta", 72),
        ("latent", 6),
        ("article", 2),
        ("article-identify", 18),
        ("article-identify-wide", 24),
    ] {
        let m = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("experiments/{name}.toml"));
        let out = common::vaelab(&results, &["sweep", path(&m), "--dry-run"]);
        assert!(out.status.success(), "{name}: {}", common::text(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().unwrap_or_default();
        assert!(
            last.starts_with(&format!("{runs} runs in "))
                && last.contains(&format!("sweep {name}")),
            "{last}"
        );
    }
}

#[test]
fn a_sweep_killed_again_and_again_resumes_to_the_uninterrupted_numbers() {
    let reference = reference();
    let scratch = tempfile::tempdir().unwrap();
    let matrix = tiny_matrix(scratch.path());
    let results = scratch.path().join("results");
    let (mut kills_mid_sweep, mut resumes_mid_run) = (0, 0);
    // Each launch is killed a different time after it has finished one more epoch (so every
    // launch makes progress however slow the machine is): right at the epoch boundary, early or
    // late in the next epoch, during a run's start-up.
    let total = |r: &Path| epochs_on_disk(r).iter().map(|(_, d)| d).sum::<usize>();
    for (launch, delay_ms) in [0u64, 150, 320, 60, 230, 10, 400, 100]
        .into_iter()
        .enumerate()
    {
        let before = epochs_on_disk(&results);
        let done_before = total(&results);
        let log = scratch.path().join(format!("launch-{launch}.log"));
        let mut child = sweep_child(&results, &matrix, &log);
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() && total(&results) <= done_before {
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "launch {launch} is stuck"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap(); // SIGKILL: no chance to clean up
            kills_mid_sweep += 1;
        }
        child.wait().unwrap();
        eprintln!(
            "launch {launch}: {} {delay_ms} ms after an epoch; epochs on disk {:?}",
            if finished { "finished" } else { "killed" },
            epochs_on_disk(&results)
        );
        // A relaunch resumes from the checkpoint: it never goes back more than the epoch that
        // was in flight when the previous launch died.
        let output = std::fs::read_to_string(&log).unwrap();
        for (id, done) in before.iter().filter(|(_, d)| *d > 0 && *d < 3) {
            // "resuming after epoch N", or no such line when it restarted from scratch.
            let after = match output
                .lines()
                .find(|l| l.starts_with(&format!("{id}: resuming")))
            {
                Some(line) => {
                    resumes_mid_run += 1;
                    line.split("after epoch ")
                        .nth(1)
                        .and_then(|s| s.split('/').next())
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| panic!("unparsable: {line}"))
                }
                None => 0,
            };
            // At most the epoch in flight is lost (its metrics may be on disk before its
            // checkpoint is).
            assert!(
                after + 1 >= *done,
                "{id} had {done} epochs on disk, resumed after {after}:\n{output}"
            );
        }
        if finished {
            break;
        }
    }
    assert!(kills_mid_sweep >= 3, "only {kills_mid_sweep} kills landed");
    assert!(
        resumes_mid_run >= 1,
        "no relaunch resumed a half-trained run"
    );
    let last = common::vaelab(&results, &["--quiet", "sweep", path(&matrix)]);
    assert!(last.status.success(), "{}", common::text(&last));
    assert_eq!(&metrics_by_run(&results), reference);
    for table in ["summary", "epochs"] {
        let df = read_parquet(&results.join(format!("sweeps/tiny/{table}.parquet"))).unwrap();
        assert_eq!(df.height(), if table == "summary" { 2 } else { 12 });
    }
}

#[test]
fn two_sweeps_on_one_results_directory_share_the_work_without_corrupting_it() {
    let reference = reference();
    let scratch = tempfile::tempdir().unwrap();
    let matrix = tiny_matrix(scratch.path());
    let results = scratch.path().join("results");
    let logs = [scratch.path().join("a.log"), scratch.path().join("b.log")];
    let children: Vec<Child> = logs
        .iter()
        .map(|log| sweep_child(&results, &matrix, log))
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(&metrics_by_run(&results), reference);
    // Both processes trained (each printed epoch lines of its own), and each epoch of each
    // run was trained by exactly one of them.
    let outputs: Vec<String> = logs
        .iter()
        .map(|l| std::fs::read_to_string(l).unwrap())
        .collect();
    for (log, text) in logs.iter().zip(&outputs) {
        assert!(
            text.contains(" epoch   1/3"),
            "{} trained nothing:\n{text}",
            log.display()
        );
    }
    let output = outputs.concat();
    for (id, _) in reference {
        for epoch in 1..=3 {
            let needle = format!("{id} epoch {epoch:>3}/3");
            assert_eq!(output.matches(&needle).count(), 1, "{needle} in:\n{output}");
        }
    }
}

#[test]
fn a_diverging_run_is_marked_failed_and_the_sweep_goes_on() {
    let scratch = tempfile::tempdir().unwrap();
    let matrix = scratch.path().join("diverge.toml");
    // lr = 10 blows Adam up within the first epoch; the run after it must still train.
    std::fs::write(
        &matrix,
        "[sweep]\nname = \"diverge\"\n[base]\nmodel = \"vae\"\nepochs = 2\nlimit = 2000\n[grid]\nlr = [10.0, 0.001]\n",
    )
    .unwrap();
    let results = scratch.path().join("results");
    let out = common::vaelab(&results, &["--quiet", "sweep", path(&matrix)]);
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    let text = common::text(&out);
    assert!(text.contains("1 run(s) failed"), "{text}");
    let summary = read_parquet(&results.join("sweeps/diverge/summary.parquet")).unwrap();
    let states = summary.column("state").unwrap().str().unwrap().clone();
    let states: Vec<&str> = (0..states.len()).map(|i| states.get(i).unwrap()).collect();
    assert_eq!(states, ["failed", "done"]);
    let failed = text.lines().find(|l| l.contains(" failed ")).unwrap();
    assert!(
        failed.contains("non-finite") && failed.contains("at epoch 1"),
        "{failed}"
    );
    // The two trained as one stack; the survivor went on in a stack of its own, with exactly
    // the numbers of its run trained alone.
    let store = vaelab::store::Store::new(&results);
    let ids = summary.column("run_id").unwrap().str().unwrap().clone();
    let survivor = ids.get(1).unwrap();
    let stacks = vaelab::store::Provenance::read(&store.run(survivor))
        .unwrap()
        .stacks;
    assert_eq!(stacks.len(), 2, "{stacks:?}");
    assert!(stacks[0].contains("stack of 2 with"), "{stacks:?}");
    // It resumes from its last checkpoint: epoch 1's, unless the stop beat the Learner's
    // checkpoint of it (burn-train's metric events are asynchronous).
    assert!(
        ["epochs 1-: stack of 1", "epochs 2-: stack of 1"].contains(&stacks[1].as_str()),
        "{stacks:?}"
    );
    let alone = scratch.path().join("alone");
    let out = common::vaelab(
        &alone,
        &["--quiet", "sweep", path(&matrix), "--stack", "off"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    let survivor_rows = |results: &Path| {
        common::metrics_by_run(results)
            .into_iter()
            .find(|(id, _)| id == survivor)
            .unwrap()
            .1
    };
    assert_eq!(survivor_rows(&results), survivor_rows(&alone));
}
