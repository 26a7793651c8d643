//! The real `vaelab sweep` binary: the malformed-matrix catalogue, dry runs, resuming after
//! `kill -9` at several points, a relaunch that trains nothing, two sweeps sharing one results
//! directory, `--jobs 2`, and the ETA of `status` and of the live page.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vaelab::store::{
    read_metrics, read_parquet, write_metrics, EpochRow, Lock, Provenance, RunState, RunStatus,
    Store,
};
use vaelab::sweep::stacking::StackPolicy;
use vaelab::sweep::Manifest;

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
    // Relaunching the finished sweep trains nothing: no epoch line, and every run's metrics,
    // provenance, status, model and checkpoints keep their bytes and their last write.
    let before = common::run_files(&results);
    let again = common::vaelab(&results, &["--quiet", "sweep", path(&matrix)]);
    common::assert_trained_nothing(&results, &before, &again);
    assert_eq!(&metrics_by_run(&results), reference);
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
    // Single-threaded kernels, so that the survivor's numbers are its run's alone bit for bit.
    let sweep = |results: &Path, extra: &[&str]| {
        let args = [&["--quiet", "sweep", path(&matrix)], extra].concat();
        common::vaelab_env(results, common::SINGLE_THREADED, &args)
    };
    let out = sweep(&results, &[]);
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
    let out = sweep(&alone, &["--stack", "off"]);
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

/// Four runs (an AE and a VAE, two seeds each), two epochs on 1,000 images.
const FOUR_RUNS: &str = "[sweep]\nname = \"jobs\"\n[base]\nepochs = 2\nlimit = 1000\nhidden = [32]\nbeta = 1.0\n[grid]\nmodel = [\"ae\", \"vae\"]\nseed = [1, 2]\n";

/// The `vaelab entry` worker processes whose parent is `parent`, read from /proc (a worker
/// counts once it has exec'd, and no longer once it has exited: a zombie has no command line).
fn workers_of(parent: u32) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid …`; the command name may hold spaces and parentheses.
            let ppid: u32 = stat[stat.rfind(')')? + 1..]
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let worker = cmdline.split(|&b| b == 0).any(|arg| arg == b"entry");
            (ppid == parent && worker).then_some(pid)
        })
        .collect()
}

/// Variable `name` of the environment process `pid` started with (None once it has exited).
fn environ_of(pid: u32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ.split(|&b| b == 0).find_map(|entry| {
        let entry = std::str::from_utf8(entry).ok()?;
        entry
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
            .map(String::from)
    })
}

/// `--jobs 2` trains the entries in `vaelab entry` worker processes, two at a time, each with
/// its share of the cores as its thread counts (`OMP_NUM_THREADS` for libtorch and
/// `RAYON_NUM_THREADS` for the fused Adam, set by `sweep::spawn_entry`: one thread each on 2
/// cores), and every run gets the numbers of the serial sweep.
#[test]
fn two_jobs_train_in_two_workers_at_once_on_their_share_of_the_cores_with_the_serial_numbers() {
    let scratch = tempfile::tempdir().unwrap();
    let matrix = scratch.path().join("jobs.toml");
    std::fs::write(&matrix, FOUR_RUNS).unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = (cores / 2).max(1);
    // The serial sweep trains in this process with the workers' thread count, so that both
    // compute alike.
    let serial = scratch.path().join("serial");
    let out = common::vaelab_env(
        &serial,
        &[("OMP_NUM_THREADS", &share.to_string())],
        &["--quiet", "sweep", path(&matrix), "--stack", "off"],
    );
    assert!(out.status.success(), "{}", common::text(&out));

    // The `--jobs` sweep itself runs with another thread count: a worker that inherited it
    // instead of being given its share would record that one.
    let parallel = scratch.path().join("parallel");
    let log = scratch.path().join("jobs.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = common::command(&parallel)
        .env("OMP_NUM_THREADS", (share + 1).to_string())
        .args([
            "--quiet",
            "sweep",
            path(&matrix),
            "--stack",
            "off",
            "--jobs",
            "2",
        ])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let mut most = 0;
    let mut threads = std::collections::BTreeSet::new();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        let workers = workers_of(child.id());
        most = most.max(workers.len());
        for pid in workers {
            for name in ["OMP_NUM_THREADS", "RAYON_NUM_THREADS"] {
                if let Some(value) = environ_of(pid, name) {
                    threads.insert((name, value));
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the --jobs sweep is stuck"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{text}");
    assert_eq!(most, 2, "workers alive at once, at most:\n{text}");
    // What each worker was started with, as /proc shows it.
    let share_text = share.to_string();
    assert_eq!(
        threads.into_iter().collect::<Vec<_>>(),
        [
            ("OMP_NUM_THREADS", share_text.clone()),
            ("RAYON_NUM_THREADS", share_text)
        ]
    );

    let runs = metrics_by_run(&parallel);
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|(_, rows)| rows.len() == 4), "{runs:?}");
    assert_eq!(
        runs,
        metrics_by_run(&serial),
        "--jobs 2 changed the numbers"
    );
    for (results, by_worker) in [(&parallel, true), (&serial, false)] {
        let store = Store::new(results);
        for (id, _) in &runs {
            let p = Provenance::read(&store.run(id)).unwrap();
            assert_eq!(
                p.command.iter().any(|a| a == "entry"),
                by_worker,
                "{id} in {}: {:?}",
                results.display(),
                p.command
            );
            assert_eq!(
                p.torch_threads,
                share,
                "{id} in {}: libtorch threads",
                results.display()
            );
        }
    }
    let summary = read_parquet(&parallel.join("sweeps/jobs/summary.parquet")).unwrap();
    let states = summary.column("state").unwrap().str().unwrap().clone();
    assert!((0..states.len()).all(|i| states.get(i) == Some("done")));
}

/// A run's rows with the given (train, test) seconds per epoch, other columns made up.
fn rows_with_seconds(run_id: &str, seconds: &[(f64, f64)]) -> Vec<EpochRow> {
    use vaelab::data::Split;
    seconds
        .iter()
        .enumerate()
        .flat_map(|(e, &(train, test))| {
            let row = |split: Split, seconds: f64| EpochRow {
                run_id: run_id.to_string(),
                epoch: e as u32 + 1,
                split,
                recon: 40.0 - e as f64,
                kl: Some(5.0),
                beta_kl: Some(15.0),
                loss: 55.0 - e as f64,
                article_loss: (split == Split::Train).then_some(1700.0),
                lr: Some(1e-3),
                kl_weight: Some(3.0),
                capacity: None,
                seconds,
            };
            [row(Split::Train, train), row(Split::Test, test)]
        })
        .collect()
}

/// The ETA is the mean measured epoch (train + test seconds, over every complete epoch of every
/// run, finished ones included) times the epochs the unfinished runs have left, exactly: in
/// `vaelab status` and on the live report page, from run directories with known seconds (a
/// done run, one training now, a failed one, a queued one).
#[test]
fn the_eta_is_the_mean_epoch_time_times_the_epochs_left_in_status_and_on_the_live_page() {
    let scratch = tempfile::tempdir().unwrap();
    let matrix = scratch.path().join("eta.toml");
    std::fs::write(
        &matrix,
        "[sweep]\nname = \"eta\"\n[base]\nepochs = 4\nlimit = 300\nhidden = [16]\n[grid]\nseed = [1, 2, 3, 4]\n",
    )
    .unwrap();
    let results = scratch.path().join("results");
    let store = Store::new(&results);
    let manifest = Manifest::from_plan(
        &vaelab::config::matrix::load(&matrix).unwrap(),
        StackPolicy::Off,
    );
    manifest.freeze(&store).unwrap();
    assert_eq!(manifest.runs.len(), 4);
    // Run k with these epochs complete on disk (metrics and checkpoints) and this status.
    let start = |k: usize, seconds: &[(f64, f64)], status: RunStatus| {
        let run = store.run(&manifest.runs[k].id);
        run.create(&manifest.runs[k].spec).unwrap();
        write_metrics(&run.metrics_path(), &rows_with_seconds(&run.id, seconds)).unwrap();
        for epoch in 1..=seconds.len() {
            std::fs::write(run.checkpoint_dir().join(format!("model-{epoch}.bpk")), b"").unwrap();
        }
        run.write_status(&status).unwrap();
        run
    };
    // Done: 4 epochs of 15 s.
    let done = start(
        0,
        &[(12.0, 3.0), (14.0, 1.0), (13.0, 2.0), (11.0, 4.0)],
        RunStatus {
            state: RunState::Done,
            epochs_done: 4,
            message: None,
        },
    );
    std::fs::write(done.model_path(), b"").unwrap();
    // Training now (its lock held, as its trainer holds it): 2 epochs of 30 s done.
    let running = start(
        1,
        &[(24.0, 6.0), (26.0, 4.0)],
        RunStatus {
            state: RunState::Running,
            epochs_done: 0,
            message: None,
        },
    );
    let _held = Lock::acquire(&running.lock_path()).unwrap().unwrap();
    // Failed after 1 epoch of 20 s: a relaunch retries it, but nothing is left to train now.
    start(
        2,
        &[(16.0, 4.0)],
        RunStatus {
            state: RunState::Failed,
            epochs_done: 1,
            message: Some("non-finite train loss at epoch 2".into()),
        },
    );
    // Run 3 is queued (never started). The mean epoch: (4 × 15 + 2 × 30 + 20) / 7 = 20 s; left:
    // 2 epochs of the running run and 4 of the queued one, so 6 × 20 s = 2 minutes.
    let mean = (4.0 * 15.0 + 2.0 * 30.0 + 20.0) / 7.0;
    assert_eq!(mean * 6.0, 120.0);
    let eta = "2m00s";

    let out = common::vaelab(&results, &["status", "eta"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", common::text(&out));
    let head = text.lines().next().unwrap_or_default();
    assert!(
        head.ends_with(&format!(
            ": 1 done, 1 running, 1 queued, 0 interrupted, 1 failed; eta {eta}"
        )),
        "{text}"
    );
    for (k, state, epoch) in [
        (0, "done", "4/4"),
        (1, "running", "2/4"),
        (2, "failed", "1/4"),
        (3, "queued", "0/4"),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&manifest.runs[k].id))
            .unwrap_or_else(|| panic!("no line of run {k}:\n{text}"));
        // The state, then the epochs done.
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields.iter().position(|f| f.ends_with("/4"));
        assert_eq!(
            at.map(|i| (fields[i - 1], fields[i])),
            Some((state, epoch)),
            "{text}"
        );
    }

    // The page of a sweep with a run training is live and shows the same ETA.
    let out = common::vaelab(&results, &["report", "eta"]);
    assert!(out.status.success(), "{}", common::text(&out));
    let html = std::fs::read_to_string(results.join("sweeps/eta/report/index.html")).unwrap();
    let live = html
        .split("<div class=\"live\" id=\"live\">")
        .nth(1)
        .map(|s| &s[..s.find("</div>").unwrap()])
        .expect("the page of a running sweep is live");
    assert!(
        live.starts_with(&format!(
            "Running: 7 of 16 epochs done, ETA <b id=\"eta\">{eta}</b>."
        )),
        "{live}"
    );
}
