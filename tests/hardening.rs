//! Nothing lost or hidden: faults injected at exact points of the real binary (failpoints,
//! `--features failpoints`, as `./scripts/test` builds it), durability traced with strace,
//! unreadable runs, dead workers, panics, impossible sizes, a missing GPU, Ctrl-C and the busy
//! exit, provenance and the Parquet schemas.
// Without the feature the failpoint tests are compiled out, leaving some helpers unused.
#![cfg_attr(not(feature = "failpoints"), allow(dead_code, unused_imports))]
mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vaelab::report::figures::Inspector;
use vaelab::store::{
    read_kl_dims, read_metrics, read_parquet, EpochRow, Lock, Provenance, RunState, Store,
};

/// A tiny VAE run: 2 epochs on 1,000 images.
const TINY_TRAIN: [&str; 9] = [
    "--quiet", "train", "--epochs", "2", "--limit", "1000", "--hidden", "64", "--beta=1",
];

/// Rows without the wall-clock column.
fn numbers(run: &Path) -> Vec<EpochRow> {
    read_metrics(&run.join("metrics.parquet"))
        .unwrap()
        .into_iter()
        .map(|r| EpochRow { seconds: 0.0, ..r })
        .collect()
}

/// What the trained network decodes from a fixed code: equal outputs, equal weights.
fn decoded(run: &Path) -> Vec<Vec<f32>> {
    let store = Store::new(run.parent().unwrap().parent().unwrap());
    let id = run.file_name().unwrap().to_str().unwrap();
    let spec = store.run(id).read_spec().unwrap();
    let model = Inspector::load(&store.run(id), &spec).unwrap();
    model.decode(&[vec![0.5; spec.latent], vec![-1.0; spec.latent]], &[])
}

fn state_of(results: &Path, run: &Path) -> RunState {
    let id = run.file_name().unwrap().to_str().unwrap();
    Store::new(results).run(id).current_state()
}

fn write_matrix(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("[sweep]\nname = \"{name}\"\n{body}")).unwrap();
    path
}

/// Two tiny runs (seeds 1 and 2, one epoch on 300 images): the sweep most tests need.
const TWO_TINY_RUNS: &str =
    "[base]\nepochs = 1\nlimit = 300\nhidden = [16]\n[grid]\nseed = [1, 2]\n";

/// Sweep `name` of `body`, trained to its end in a scratch folder: (scratch, matrix, results).
fn trained_sweep(name: &str, body: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let scratch = tempfile::tempdir().unwrap();
    let matrix = write_matrix(scratch.path(), name, body);
    let results = scratch.path().join("results");
    let out = common::vaelab(&results, &["--quiet", "sweep", path(&matrix)]);
    assert!(out.status.success(), "{}", common::text(&out));
    (scratch, matrix, results)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The uninterrupted tiny run, trained once per test binary.
fn reference() -> &'static PathBuf {
    static REFERENCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    REFERENCE.get_or_init(|| {
        let results = tempfile::tempdir().unwrap().keep().join("results");
        let out = common::vaelab(&results, &TINY_TRAIN);
        assert!(out.status.success(), "{}", common::text(&out));
        common::only_run(&results)
    })
}

#[cfg(feature = "failpoints")]
#[test]
fn a_kill_before_the_model_is_saved_resumes_to_a_done_run_with_that_model() {
    let results = tempfile::tempdir().unwrap();
    let killed = common::vaelab_env(
        results.path(),
        &[("FAILPOINTS", "train::before_model_save=return")],
        &TINY_TRAIN,
    );
    assert_eq!(killed.status.signal(), Some(9), "{}", common::text(&killed));
    let run = common::only_run(results.path());
    assert!(!run.join("model.bpk").exists());
    // Every epoch is on disk, but without its model the run is not done.
    assert_eq!(numbers(&run).len(), 4);
    assert_eq!(state_of(results.path(), &run), RunState::Interrupted);
    let ls = common::vaelab(results.path(), &["ls"]);
    assert!(
        common::text(&ls).contains("interrupted"),
        "{}",
        common::text(&ls)
    );

    let again = common::vaelab(results.path(), &TINY_TRAIN);
    assert!(again.status.success(), "{}", common::text(&again));
    assert!(
        common::text(&again).contains("done: "),
        "{}",
        common::text(&again)
    );
    assert_eq!(state_of(results.path(), &run), RunState::Done);
    // The model restored from the last checkpoint is the uninterrupted run's model.
    assert_eq!(numbers(&run), numbers(reference()));
    assert_eq!(decoded(&run), decoded(reference()));
}

#[cfg(feature = "failpoints")]
#[test]
fn a_kill_between_writing_and_renaming_metrics_leaves_the_last_whole_file() {
    let results = tempfile::tempdir().unwrap();
    // The first metrics.parquet (epoch 1) goes through; the process dies with the second
    // fully written to its temporary file but not yet renamed over the first.
    let killed = common::vaelab_env(
        results.path(),
        &[(
            "FAILPOINTS",
            "durable::before_rename::metrics.parquet=1*off->return",
        )],
        &TINY_TRAIN,
    );
    assert_eq!(killed.status.signal(), Some(9), "{}", common::text(&killed));
    let run = common::only_run(results.path());
    let leftovers: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".metrics.parquet.") && n.ends_with(".tmp.parquet"))
        .collect();
    assert_eq!(leftovers.len(), 1, "the unrenamed second version");
    let epoch_1: Vec<EpochRow> = numbers(reference())
        .into_iter()
        .filter(|r| r.epoch == 1)
        .collect();
    assert_eq!(numbers(&run), epoch_1, "the reader sees epoch 1, whole");

    let again = common::vaelab(results.path(), &TINY_TRAIN);
    assert!(again.status.success(), "{}", common::text(&again));
    assert!(common::text(&again).contains("resuming after epoch 1/2"));
    assert_eq!(numbers(&run), numbers(reference()));
}

/// Runs `vaelab --results <results> --data MNIST <args>` under strace (`-y` prints the path
/// behind each file descriptor) and checks that every file it renames into place was flushed
/// before its rename, and its directory after; returns the paths renamed into place, relative
/// to `results`.
fn traced_atomic_writes(results: &Path, trace: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new("strace")
        .args([
            "-f",
            "-y",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,rename,renameat,renameat2",
        ])
        .arg("-o")
        .arg(trace)
        .arg(env!("CARGO_BIN_EXE_vaelab"))
        .arg("--results")
        .arg(results)
        .arg("--data")
        .arg(common::mnist_dir())
        .args(args)
        .output()
        .expect("strace runs (apt-get install strace; ./scripts/setup does)");
    assert!(out.status.success(), "{}", common::text(&out));
    let log = std::fs::read_to_string(trace).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let mut renamed = Vec::new();
    // A line that starts a rename (strace splits a call another thread interrupts into
    // `… <unfinished ...>` and `<... renameat resumed>`).
    let starts_rename = |l: &str| l.contains("rename") && !l.contains("resumed>");
    for (i, line) in lines.iter().enumerate() {
        if !starts_rename(line) || !line.contains(".tmp") {
            continue;
        }
        // renameat2(AT_FDCWD, "/…/.status.toml.Ab12.tmp", AT_FDCWD, "/…/status.toml", …)
        let quoted: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
        let (from, to) = (quoted[0], quoted[1]);
        // Burn's recorder renames its own temporary into ours: not a file reaching its name.
        if Path::new(to)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        let dir = Path::new(to).parent().unwrap().to_str().unwrap();
        let synced_before = lines[..i]
            .iter()
            .any(|l| l.contains("fsync(") && l.contains(&format!("<{from}>")));
        // ... and by the same thread before its next rename, so a later file's sync cannot
        // stand in for it (`strace -f` starts every line with the thread id, and threads
        // interleave: the checkpointer writes in a thread of its own).
        let tid = line.split_whitespace().next().unwrap();
        let same_thread = |l: &&&str| l.split_whitespace().next() == Some(tid);
        let next = lines[i + 1..]
            .iter()
            .position(|l| same_thread(&l) && starts_rename(l))
            .map_or(lines.len(), |k| i + 1 + k);
        let synced_dir_after = lines[i..next]
            .iter()
            .filter(same_thread)
            .any(|l| l.contains("fsync(") && l.contains(&format!("<{dir}>")));
        assert!(
            synced_before,
            "{from} renamed without an fsync first:\n{log}"
        );
        assert!(synced_dir_after, "{dir} not fsynced after {to}:\n{log}");
        let to = Path::new(to);
        renamed.push(
            to.strip_prefix(results)
                .unwrap_or(to)
                .to_string_lossy()
                .into_owned(),
        );
    }
    renamed
}

/// Every file a run and a sweep write is flushed before it is renamed into place, and its
/// directory after: the run's files (a train, evaluated when it ends), then the sweep's own
/// (its manifest, its two tables, its report page).
#[test]
fn every_file_is_fsynced_before_its_rename_and_the_directory_after() {
    let scratch = tempfile::tempdir().unwrap();
    let results = scratch.path().join("r");
    let renamed = traced_atomic_writes(
        &results,
        &scratch.path().join("train.trace"),
        &[
            "--quiet", "train", "--epochs", "1", "--limit", "300", "--hidden", "16",
        ],
    );
    let run = common::only_run(&results);
    let id = run.file_name().unwrap().to_str().unwrap();
    for file in [
        "config.toml",
        "provenance.toml",
        "status.toml",
        "metrics.parquet",
        "model.bpk",
        "checkpoint/model-1.bpk",
        "eval.parquet",
    ] {
        let file = format!("runs/{id}/{file}");
        assert!(
            renamed.contains(&file),
            "{file} not written atomically: {renamed:?}"
        );
    }

    let matrix = write_matrix(
        scratch.path(),
        "fsync",
        "[base]\nepochs = 1\nlimit = 300\nhidden = [16]\n",
    );
    let results = scratch.path().join("s");
    let renamed = traced_atomic_writes(
        &results,
        &scratch.path().join("sweep.trace"),
        &["--quiet", "sweep", path(&matrix)],
    );
    for file in [
        "sweeps/fsync/manifest.toml",
        "sweeps/fsync/summary.parquet",
        "sweeps/fsync/epochs.parquet",
        "sweeps/fsync/report/index.html",
    ] {
        assert!(
            renamed.iter().any(|r| r == file),
            "{file} not written atomically: {renamed:?}"
        );
    }
}

#[test]
fn unreadable_runs_are_listed_with_their_file_and_make_diff_fail() {
    let (_scratch, _matrix, results) = trained_sweep("two", TWO_TINY_RUNS);
    let clean = common::vaelab(&results, &["diff", "two", "two"]);
    assert_eq!(clean.status.code(), Some(0), "{}", common::text(&clean));

    let runs: Vec<PathBuf> = std::fs::read_dir(results.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let broken = &runs[0];
    let id = broken.file_name().unwrap().to_str().unwrap();
    std::fs::write(broken.join("metrics.parquet"), b"not parquet").unwrap();

    let ls = common::vaelab(&results, &["ls"]);
    assert!(ls.status.success());
    let stderr = String::from_utf8_lossy(&ls.stderr);
    let line = format!(
        "unreadable: run {id}: {}: ",
        broken.join("metrics.parquet").display()
    );
    assert!(stderr.starts_with(&line), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&ls.stdout).lines().count(),
        2,
        "header + 1 run"
    );

    let diff = common::vaelab(&results, &["diff", "two", "two"]);
    assert_eq!(diff.status.code(), Some(1), "{}", common::text(&diff));
    let text = common::text(&diff);
    assert!(text.contains(&line), "{text}");
    assert!(
        text.contains("cannot be read, so the comparison is incomplete"),
        "{text}"
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn a_worker_that_keeps_dying_is_retried_then_failed_and_a_relaunch_finishes_it() {
    let scratch = tempfile::tempdir().unwrap();
    let matrix = write_matrix(scratch.path(), "dies", TWO_TINY_RUNS);
    let results = scratch.path().join("results");
    let args = ["--quiet", "sweep", path(&matrix), "--jobs", "2"];
    let out = common::vaelab_env(
        &results,
        &[("FAILPOINTS", "train::before_model_save=return")],
        &args,
    );
    let text = common::text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("2 run(s) failed"), "{text}");
    let reason = "worker killed by signal 9 after epoch 1 of 1 (3 attempts)";
    assert_eq!(text.matches(reason).count(), 2, "{text}");
    let summary = read_parquet(&results.join("sweeps/dies/summary.parquet")).unwrap();
    let states = summary.column("state").unwrap().str().unwrap().clone();
    assert!((0..states.len()).all(|i| states.get(i) == Some("failed")));
    let status = common::vaelab(&results, &["status", "dies"]);
    assert!(common::text(&status).contains("0 done, 0 running, 0 queued, 0 interrupted, 2 failed"));

    // Relaunching retries failed runs: each restores its model from the last checkpoint. It
    // trains no epoch (no epoch line; the metrics and the checkpoints keep their bytes and their
    // last write), and the model it restores is the one of the same runs trained uninterrupted.
    let before = common::run_files(&results);
    for run in std::fs::read_dir(results.join("runs")).unwrap() {
        let run = run.unwrap().path();
        let rel = run.strip_prefix(&results).unwrap();
        assert!(!run.join("model.bpk").exists(), "{}", run.display());
        assert!(before.contains_key(&rel.join("metrics.parquet")));
        assert!(before.contains_key(&rel.join("checkpoint/model-1.bpk")));
    }
    let again = common::vaelab(&results, &args);
    let text = common::text(&again);
    assert!(again.status.success(), "{text}");
    let trained = common::epoch_lines(&text);
    assert!(trained.is_empty(), "the relaunch trained again:\n{text}");
    let after = common::run_files(&results);
    for (file, stamp) in &before {
        let kept = file.ends_with("metrics.parquet")
            || file.parent().is_some_and(|d| d.ends_with("checkpoint"));
        if kept {
            assert!(
                after.get(file) == Some(stamp),
                "the relaunch rewrote {}:\n{text}",
                file.display()
            );
        }
    }
    // The same sweep without the fault, its workers on the same threads.
    let whole = scratch.path().join("whole");
    let out = common::vaelab(&whole, &args);
    assert!(out.status.success(), "{}", common::text(&out));
    for run in std::fs::read_dir(results.join("runs")).unwrap() {
        let run = run.unwrap().path();
        assert_eq!(state_of(&results, &run), RunState::Done);
        let uninterrupted = whole.join("runs").join(run.file_name().unwrap());
        assert_eq!(numbers(&run), numbers(&uninterrupted));
        assert_eq!(
            common::model_outputs(&run),
            common::model_outputs(&uninterrupted)
        );
    }
}

#[cfg(feature = "failpoints")]
#[test]
fn a_panic_fails_its_run_in_one_line_and_the_sweep_goes_on() {
    let scratch = tempfile::tempdir().unwrap();
    let matrix = write_matrix(scratch.path(), "panics", TWO_TINY_RUNS);
    let results = scratch.path().join("results");
    // Only the first training step of the process panics: the first run.
    let out = common::vaelab_env(
        &results,
        &[("FAILPOINTS", "train::step=1*panic(injected fault)")],
        &["--quiet", "sweep", path(&matrix), "--stack", "off"],
    );
    let text = common::text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("1 run(s) failed"), "{text}");
    assert!(text.contains("(panicked: injected fault)"), "{text}");
    assert!(
        !text.contains("backtrace") && !text.contains("panicked at"),
        "{text}"
    );
    let states = |results: &Path| {
        let summary = read_parquet(&results.join("sweeps/panics/summary.parquet")).unwrap();
        let states = summary.column("state").unwrap().str().unwrap().clone();
        (0..states.len())
            .map(|i| states.get(i).unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(states(&results), ["failed", "done"]);

    // Stacked, the two runs share the step that panics: both fail with the reason, and a
    // relaunch trains them.
    let stacked = scratch.path().join("stacked");
    let out = common::vaelab_env(
        &stacked,
        &[("FAILPOINTS", "train::step=1*panic(injected fault)")],
        &["--quiet", "sweep", path(&matrix), "--stack", "2"],
    );
    let text = common::text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("2 run(s) failed"), "{text}");
    assert_eq!(
        text.matches("(panicked: injected fault)").count(),
        2,
        "{text}"
    );
    assert_eq!(states(&stacked), ["failed", "failed"]);
    let out = common::vaelab(
        &stacked,
        &["--quiet", "sweep", path(&matrix), "--stack", "2"],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    assert_eq!(states(&stacked), ["done", "done"]);
}

#[test]
fn sizes_that_cannot_fit_are_refused_before_anything_is_written() {
    let scratch = tempfile::tempdir().unwrap();
    let matrix = write_matrix(scratch.path(), "huge", "[grid]\nlatent = [1000000000000]\n");
    let results = scratch.path().join("results");
    // Parsing asks nothing of the machine: the dry run lists the run and writes nothing.
    let out = common::vaelab(&results, &["sweep", path(&matrix), "--dry-run"]);
    assert!(out.status.success(), "{}", common::text(&out));
    assert!(
        common::text(&out).contains("1 runs in 1 entries"),
        "{}",
        common::text(&out)
    );
    assert!(!results.exists());
    // The pre-flight refuses it before anything is written.
    let out = common::vaelab(&results, &["sweep", path(&matrix)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: {}:", matrix.display()))
            && err.contains("latent = 1000000000000: this model needs about")
            && err.contains("available"),
        "{err}"
    );
    assert!(!results.exists());
    let out = common::vaelab(&results, &["train", "--latent", "1000000000000"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.starts_with("error: --latent 1000000000000: this model needs about"),
        "{err}"
    );
    assert!(!results.exists());
}

#[test]
fn cuda_without_a_gpu_is_one_line_and_writes_nothing() {
    // Asked of libtorch directly, not of the code under test.
    if tch::Cuda::is_available() {
        eprintln!("a CUDA GPU is visible: nothing to test here");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let results = scratch.path().join("results");
    let out = common::vaelab(&results, &["train", "--device", "cuda", "--limit", "100"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("libtorch sees no CUDA GPU"), "{err}");
    assert!(!results.exists(), "wrote {}", results.display());
    let matrix = write_matrix(
        scratch.path(),
        "gpu",
        "[base]\ndevice = \"cuda\"\nlimit = 100\n",
    );
    let out = common::vaelab(&results, &["sweep", path(&matrix)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!results.exists(), "the sweep wrote {}", results.display());
}

/// Waits until the only run under `results` has `epochs` complete epochs (metrics and
/// checkpoint: what a resume starts from).
fn wait_for_epochs(results: &Path, epochs: usize, child: &mut std::process::Child) {
    let started = Instant::now();
    loop {
        let done = std::fs::read_dir(results.join("runs"))
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path())
            .map_or(0, |run| {
                let id = run.file_name().unwrap().to_str().unwrap().to_string();
                vaelab::train::epochs_on_disk(&Store::new(results).run(&id))
            });
        if done >= epochs {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before epoch {epochs}"
        );
        assert!(started.elapsed() < Duration::from_secs(300), "stuck");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigint(child: &std::process::Child) {
    // SAFETY: sends SIGINT to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
}

/// Which output of a [`Watched`] process a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
}

/// A process started in the background whose stdout and stderr are read line by line as they
/// come, so that a test can act the moment a line appears.
struct Watched {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<(Stream, String)>,
    /// Every line read so far, in arrival order.
    seen: Vec<(Stream, String)>,
}

impl Watched {
    fn start(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vaelab starts");
        let (tx, lines) = std::sync::mpsc::channel();
        fn pump(
            from: impl std::io::Read + Send + 'static,
            stream: Stream,
            tx: std::sync::mpsc::Sender<(Stream, String)>,
        ) {
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(from).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((stream, line)).is_err() {
                        break;
                    }
                }
            });
        }
        pump(child.stdout.take().unwrap(), Stream::Out, tx.clone());
        pump(child.stderr.take().unwrap(), Stream::Err, tx);
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (at most `timeout`) for a line of `stream` starting with `prefix`, and returns it.
    fn wait_for_line(&mut self, stream: Stream, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((_, line)) = self
                .seen
                .iter()
                .find(|(s, l)| *s == stream && l.starts_with(prefix))
            {
                return line.clone();
            }
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.seen.push(line),
                Err(e) => panic!(
                    "no {stream:?} line starting with {prefix:?} ({e}) in:\n{}",
                    self.text()
                ),
            }
        }
    }

    fn text(&self) -> String {
        self.seen.iter().map(|(_, l)| format!("{l}\n")).collect()
    }

    /// Waits for the process to end: its exit status and every line it wrote.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        // The readers end when the pipes close.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(60)) {
            self.seen.push(line);
        }
        (status, self.text())
    }
}

/// What the first Ctrl-C prints on stderr (`cli::install_ctrl_c`).
const STOPPING: &str = "stopping at the next batch boundary";

#[test]
fn ctrl_c_stops_at_a_batch_boundary_names_one_state_everywhere_and_resumes() {
    let scratch = tempfile::tempdir().unwrap();
    let matrix = write_matrix(
        scratch.path(),
        "stop",
        "[base]\nepochs = 3\nlimit = 6000\nhidden = [64]\n",
    );
    let results = scratch.path().join("results");
    let sweep = || {
        let mut command = common::command(&results);
        command.args(["--quiet", "sweep", path(&matrix)]);
        command
    };
    let mut first = Watched::start(sweep());
    wait_for_epochs(&results, 1, &mut first.child);
    sigint(&first.child);
    first.wait_for_line(Stream::Err, STOPPING, Duration::from_secs(60));
    let (status, text) = first.finish();
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(text.contains("interrupted: rerun"), "{text}");
    // The summary table's line (not the per-epoch lines, which start with the id too).
    let table_state = text
        .lines()
        .find(|l| l.starts_with("vae-") && !l.contains(" epoch "))
        .and_then(|l| l.split_whitespace().nth(5))
        .unwrap_or_else(|| panic!("no run line in:\n{text}"));
    let status = common::text(&common::vaelab(&results, &["status", "stop"]));
    let status_state = status
        .lines()
        .find(|l| l.starts_with("vae-"))
        .and_then(|l| l.split_whitespace().nth(5))
        .unwrap();
    let summary = read_parquet(&results.join("sweeps/stop/summary.parquet")).unwrap();
    let parquet_state = summary
        .column("state")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .to_string();
    assert_eq!(
        (table_state, status_state, parquet_state.as_str()),
        ("interrupted", "interrupted", "interrupted")
    );
    // The ETA comes from the measured epoch.
    assert!(!status.contains("eta unknown"), "{status}");

    // A second Ctrl-C, sent the moment the first one's "stopping" line is on stderr (while the
    // run winds down to its batch boundary), quits at once.
    let mut second = Watched::start(sweep());
    wait_for_epochs(&results, 2, &mut second.child);
    sigint(&second.child);
    second.wait_for_line(Stream::Err, STOPPING, Duration::from_secs(60));
    sigint(&second.child);
    let (status, text) = second.finish();
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(text.contains("resuming after epoch 1/3"), "{text}");
    // At once: no summary, no tables, no "rerun to resume" of a graceful stop, and nothing
    // recorded on the way out: status.toml still says running (its process gone, the run
    // reads as interrupted).
    assert!(
        !text.contains("tables: ") && !text.contains("interrupted: rerun"),
        "{text}"
    );
    let run = common::only_run(&results);
    let store = Store::new(&results);
    let dir = store.run(run.file_name().unwrap().to_str().unwrap());
    assert_eq!(
        dir.read_status().unwrap().map(|s| s.state),
        Some(RunState::Running),
        "{text}"
    );
    assert_eq!(dir.current_state(), RunState::Interrupted);

    let last = common::vaelab(&results, &["--quiet", "sweep", path(&matrix)]);
    assert!(last.status.success(), "{}", common::text(&last));
    assert!(
        common::text(&last).contains("resuming after epoch 2/3"),
        "{}",
        common::text(&last)
    );
    // Stopped twice and resumed twice, the run has the per-epoch numbers and the network of
    // the same sweep trained without a stop.
    let whole = scratch.path().join("whole");
    let out = common::vaelab(&whole, &["--quiet", "sweep", path(&matrix)]);
    assert!(out.status.success(), "{}", common::text(&out));
    let uninterrupted = common::only_run(&whole);
    assert_eq!(run.file_name(), uninterrupted.file_name());
    assert_eq!(numbers(&run).len(), 6);
    assert_eq!(numbers(&run), numbers(&uninterrupted));
    assert_eq!(
        common::model_outputs(&run),
        common::model_outputs(&uninterrupted)
    );
}

#[test]
fn a_run_held_by_another_process_exits_busy_and_entry_trains_one_manifest_entry() {
    let scratch = tempfile::tempdir().unwrap();
    let matrix = write_matrix(scratch.path(), "entries", TWO_TINY_RUNS);
    let results = scratch.path().join("results");
    let dry = common::vaelab(&results, &["sweep", path(&matrix), "--dry-run"]);
    assert!(dry.status.success());
    // Freeze the manifest without training: a sweep interrupted before its first run.
    let manifest = vaelab::sweep::Manifest::from_plan(
        &vaelab::config::matrix::load(&matrix).unwrap(),
        vaelab::sweep::stacking::StackPolicy::Off,
    );
    let manifest_path = manifest.freeze(&Store::new(&results)).unwrap();
    let out = common::vaelab(&results, &["--quiet", "entry", path(&manifest_path), "1"]);
    assert!(out.status.success(), "{}", common::text(&out));
    let store = Store::new(&results);
    assert_eq!(
        store.run(&manifest.runs[1].id).current_state(),
        RunState::Done
    );
    assert_eq!(
        store.run(&manifest.runs[0].id).current_state(),
        RunState::Queued
    );
    let out = common::vaelab(&results, &["entry", path(&manifest_path), "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        common::text(&out).contains("entry 2 is out of range"),
        "{}",
        common::text(&out)
    );

    // Hold entry 0's lock as another trainer would.
    let run = store.run(&manifest.runs[0].id);
    std::fs::create_dir_all(&run.path).unwrap();
    let _held = Lock::acquire(&run.lock_path()).unwrap().unwrap();
    let out = common::vaelab(&results, &["--quiet", "entry", path(&manifest_path), "0"]);
    assert_eq!(out.status.code(), Some(75), "{}", common::text(&out));
    assert!(common::text(&out).contains(&format!("busy: {}", run.id)));
}

/// `git args` in `repo` (without taking git's optional index lock, so that build.rs, which
/// watches `.git/index`, sees no change); its trimmed stdout, `None` outside git.
fn git_in(repo: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("--no-optional-locks")
        .args(args)
        .current_dir(repo)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks `p`'s code facts against `repo` as it is: commit, branch and dirty flag against git,
/// the code fingerprint against the files, rustc against `rustc --version`, Cargo.lock's hash
/// and the dependency versions against Cargo.lock itself.
fn check_code_provenance(repo: &Path, p: &Provenance) {
    // The code: src/ (tracked or not, hidden files aside), Cargo.toml, Cargo.lock, build.rs.
    let code = ["src", "Cargo.toml", "Cargo.lock", "build.rs"];
    match git_in(repo, &["rev-parse", "HEAD"]) {
        Some(head) => {
            assert_eq!(p.git_commit, head, "the commit");
            let branch = git_in(repo, &["rev-parse", "--abbrev-ref", "HEAD"]).unwrap();
            assert_eq!(p.git_branch, branch, "the branch");
            let mut status = vec!["status", "--porcelain", "--untracked-files=all", "--"];
            status.extend(code);
            let changed = git_in(repo, &status).unwrap();
            assert_eq!(
                p.git_dirty,
                !changed.is_empty(),
                "the dirty flag; git status of the code:\n{changed}"
            );
        }
        // A tarball: no commit, and nothing can say the code is clean.
        None => assert_eq!(
            (p.git_commit.as_str(), p.git_branch.as_str(), p.git_dirty),
            ("unknown", "unknown", true)
        ),
    }

    // The fingerprint, recomputed from the files by the README's rule: sha256 over each file's
    // relative path, a NUL, its length (u64, little-endian) and its bytes, in path order.
    fn walk(repo: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
        if rel
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            return;
        }
        let path = repo.join(rel);
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                walk(repo, &rel.join(entry.unwrap().file_name()), out);
            }
        } else if path.is_file() {
            out.push(rel.to_path_buf());
        }
    }
    let mut files = Vec::new();
    for c in code {
        walk(repo, Path::new(c), &mut files);
    }
    files.sort();
    let mut hashed = Vec::new();
    for f in &files {
        let bytes = std::fs::read(repo.join(f)).unwrap();
        hashed.extend_from_slice(f.to_string_lossy().replace('\\', "/").as_bytes());
        hashed.push(0);
        hashed.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        hashed.extend_from_slice(&bytes);
    }
    assert_eq!(
        p.code_fingerprint,
        format!("code-{}", &sha256_hex(&hashed)[..16]),
        "the content hash of {} files",
        files.len()
    );

    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .current_dir(repo)
        .output()
        .unwrap();
    assert_eq!(p.rustc, String::from_utf8_lossy(&version.stdout).trim());

    let lock = std::fs::read_to_string(repo.join("Cargo.lock")).unwrap();
    assert_eq!(p.cargo_lock_sha256, sha256_hex(lock.as_bytes()));
    let lock: toml::Table = toml::from_str(&lock).unwrap();
    let packages = lock.get("package").and_then(|v| v.as_array()).unwrap();
    let locked = |name: &str| -> Vec<&str> {
        packages
            .iter()
            .filter(|pkg| pkg.get("name").and_then(|n| n.as_str()) == Some(name))
            .filter_map(|pkg| pkg.get("version").and_then(|v| v.as_str()))
            .collect()
    };
    for name in [
        "burn",
        "burn-tch",
        "burn-train",
        "tch",
        "torch-sys",
        "polars",
        "plotters",
    ] {
        assert!(
            p.dependencies.contains_key(name),
            "{name} missing: {:?}",
            p.dependencies
        );
    }
    for (name, version) in &p.dependencies {
        assert_eq!(
            locked(name.as_str()),
            [version.as_str()],
            "{name} in Cargo.lock"
        );
    }
}

/// The libtorch at `root` as build.rs describes it: `<version> (git <10 hex digits>`, read
/// from the install's `torch/version.py`.
fn libtorch_version_py(root: &Path) -> String {
    let so = root.join("lib/libtorch_cpu.so").canonicalize().unwrap();
    let py = so.parent().unwrap().parent().unwrap().join("version.py");
    let text = std::fs::read_to_string(&py).unwrap();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches(['\'', '"']).to_string())
            })
            .unwrap_or_else(|| panic!("no {key} in {}", py.display()))
    };
    let git = field("git_version");
    format!(
        "{} (git {}",
        field("__version__"),
        &git[..git.len().min(10)]
    )
}

#[test]
fn provenance_records_what_can_change_numbers_and_tables_keep_their_schemas() {
    let run = reference();
    let store = Store::new(run.parent().unwrap().parent().unwrap());
    let p = Provenance::read(&store.run(run.file_name().unwrap().to_str().unwrap())).unwrap();
    // The binary was built from this checkout (cargo builds the tests, the executable and its
    // library from one tree, just before running them): what the run recorded must be what
    // git, rustc and the files say now, not what the build's own constants say.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    check_code_provenance(repo, &p);
    // LIBTORCH is set for the build (.cargo/config.toml); a build without it fails here.
    let libtorch = libtorch_version_py(Path::new(env!("LIBTORCH")));
    assert!(
        p.libtorch.starts_with("2.9.0") && p.libtorch.starts_with(&libtorch),
        "{} recorded, {libtorch} installed",
        p.libtorch
    );
    assert!(p.torch_threads >= 1 && p.threads >= 1 && !p.cpu.is_empty());
    assert_eq!(p.data_sha256.len(), 4, "{:?}", p.data_sha256);
    use sha2::Digest;
    for (file, hex) in &p.data_sha256 {
        let bytes = std::fs::read(common::mnist_dir().join(file)).unwrap();
        let want: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, &want, "{file}");
    }
    assert!(p.resumes.is_empty());
    assert!(!p.finished.is_empty() && p.epoch_seconds.len() == 2);

    assert_eq!(schema(&run.join("metrics.parquet")), METRICS_SCHEMA);
    assert_eq!(
        schema(&run.join("eval.parquet")),
        [
            "run_id:str",
            "metric:str",
            "k:u32",
            "dim:u32",
            "class:u32",
            "value:f64",
            "se:f64"
        ]
    );
}

/// `metrics.parquet`'s columns and types; `epochs.parquet` starts with them too.
const METRICS_SCHEMA: [&str; 12] = [
    "run_id:str",
    "epoch:u32",
    "split:str",
    "recon:f64",
    "kl:f64",
    "beta_kl:f64",
    "loss:f64",
    "article_loss:f64",
    "epoch_lr:f64",
    "kl_weight:f64",
    "epoch_capacity:f64",
    "seconds:f64",
];

/// `name:dtype` of every column of a Parquet file.
fn schema(path: &Path) -> Vec<String> {
    read_parquet(path)
        .unwrap()
        .columns()
        .iter()
        .map(|c| format!("{}:{}", c.name(), c.dtype()))
        .collect()
}

#[test]
fn sweep_tables_keep_their_schemas() {
    let (_scratch, _matrix, results) = trained_sweep(
        "schema",
        "[base]\nepochs = 1\nlimit = 300\nhidden = [16]\n[grid]\nmodel = [\"ae\", \"vae\"]\n",
    );
    let table = |name: &str| schema(&results.join(format!("sweeps/schema/{name}.parquet")));
    let params = [
        "sweep:str",
        "model:str",
        "dataset:str",
        "beta:f64",
        "latent:u32",
        "hidden:str",
        "epochs:u32",
        "batch_size:u32",
        "lr:f64",
        "seed:u64",
        "limit:u32",
        "backend:str",
        "device:str",
        "likelihood:str",
        "binarize:str",
        "activation:str",
        "layout:str",
        "lr_schedule:str",
        "lr_decay:f64",
        "lr_step:u32",
        "objective:str",
        "samples:u32",
        "adam_eps:f64",
        "adam_betas:str",
        "kl_warmup:u32",
        "kl_cycles:u32",
        "kl_cycle_ramp:f64",
        "free_bits:f64",
        "capacity:f64",
        "capacity_epochs:u32",
    ];
    let mut summary = vec!["run_id:str"];
    summary.extend(params);
    summary.extend([
        "state:str",
        "epochs_done:u32",
        "test_recon:f64",
        "test_kl:f64",
        "test_loss:f64",
        "train_recon:f64",
        "train_kl:f64",
        "train_loss:f64",
        "article_loss:f64",
        "test_elbo:f64",
        "iwae_1000:f64",
        "iwae_1000_se:f64",
        "active_units:f64",
        "judged_accuracy:f64",
        "prior_class_entropy:f64",
        "judge_accuracy:f64",
    ]);
    assert_eq!(table("summary"), summary);
    let mut epochs = METRICS_SCHEMA.to_vec();
    epochs.extend(params);
    assert_eq!(table("epochs"), epochs);
}

/// Trains `args` killed as epoch 2's checkpoint is renamed (one libtorch thread), then again
/// with `resume_env`, under `results`: the resumed run's directory, whose numbers and model
/// must equal `whole`'s (the same run uninterrupted, in another results directory).
#[cfg(feature = "failpoints")]
fn killed_at_epoch_2_and_resumed(
    results: &Path,
    args: &[&str],
    resume_env: &[(&str, &str)],
    whole: &Path,
) -> PathBuf {
    let killed = common::vaelab_env(
        results,
        &[
            // Killed as epoch 2's checkpoint is renamed: epoch 1's is on disk by then (the
            // checkpointer thread writes them in order), however long splitting it took.
            ("FAILPOINTS", "durable::before_rename::model-2.bpk=return"),
            ("OMP_NUM_THREADS", "1"),
        ],
        args,
    );
    assert_eq!(killed.status.signal(), Some(9), "{}", common::text(&killed));
    let again = common::vaelab_env(results, resume_env, args);
    assert!(again.status.success(), "{}", common::text(&again));
    assert!(common::text(&again).contains("resuming after epoch 1/2"));
    let run = common::only_run(results);
    assert_eq!(numbers(&run), numbers(&common::only_run(whole)));
    assert_eq!(decoded(&run), decoded(&common::only_run(whole)));
    let kl_dims = |run: &Path| read_kl_dims(&run.join("kl_dims.parquet")).unwrap();
    assert_eq!(kl_dims(&run), kl_dims(&common::only_run(whole)));
    run
}

/// KL schedules killed mid-ramp (a warm-up over 3 epochs; a capacity rising over 3 epochs,
/// whose batch-level term the per-image path does not share) resume to the uninterrupted
/// run's numbers and per-dimension KL: the weight and C of each step come from the step count
/// the checkpoint restores. The recorded weight and C show the ramp (epoch 1 ends at its 19th
/// of 57 steps).
#[cfg(feature = "failpoints")]
#[test]
fn kl_schedules_killed_mid_ramp_resume_to_the_uninterrupted_numbers() {
    let one_thread = [("OMP_NUM_THREADS", "1")];
    let schedules: [&[&str]; 2] = [
        &["--kl-warmup", "3", "--beta", "2"],
        &["--capacity", "6", "--capacity-epochs", "3"],
    ];
    for schedule in schedules {
        let mut args = vec![
            "--quiet", "train", "--epochs", "2", "--limit", "600", "--hidden", "32",
        ];
        args.extend(schedule);
        let whole = tempfile::tempdir().unwrap();
        let out = common::vaelab_env(whole.path(), &one_thread, &args);
        assert!(out.status.success(), "{}", common::text(&out));
        let results = tempfile::tempdir().unwrap();
        let run = killed_at_epoch_2_and_resumed(results.path(), &args, &one_thread, whole.path());
        // 600 images, batch 32: 19 steps an epoch, epoch 1 ends at step 18 of a 57-step ramp.
        let rows = numbers(&run);
        let (weight, c) = (rows[0].kl_weight.unwrap(), rows[0].capacity);
        if schedule[0] == "--kl-warmup" {
            assert!((weight - 2.0 * 18.0 / 57.0).abs() < 1e-12, "{weight}");
            assert_eq!(c, None);
        } else {
            assert_eq!(weight, 3.0);
            assert!((c.unwrap() - 6.0 * 18.0 / 57.0).abs() < 1e-12, "{c:?}");
        }
    }
}

#[cfg(feature = "failpoints")]
#[test]
fn a_flex_run_killed_mid_run_resumes_to_the_uninterrupted_numbers() {
    let args = [
        "--quiet",
        "train",
        "--backend",
        "flex",
        "--epochs",
        "2",
        "--limit",
        "600",
        "--hidden",
        "32",
    ];
    let whole = tempfile::tempdir().unwrap();
    let out = common::vaelab(whole.path(), &args);
    assert!(out.status.success(), "{}", common::text(&out));
    let results = tempfile::tempdir().unwrap();
    // Resumed with another libtorch thread count (which flex ignores): same numbers, and the
    // provenance says what changed.
    let run = killed_at_epoch_2_and_resumed(
        results.path(),
        &args,
        &[("OMP_NUM_THREADS", "2")],
        whole.path(),
    );
    let store = Store::new(results.path());
    let p = Provenance::read(&store.run(run.file_name().unwrap().to_str().unwrap())).unwrap();
    assert_eq!(p.resumes.len(), 1, "{:?}", p.resumes);
    assert!(
        p.resumes[0].starts_with("resumed after epoch 1 at ")
            && p.resumes[0].ends_with("torch_threads \"1\" -> \"2\""),
        "{:?}",
        p.resumes
    );
}

/// The literature's setup (Bernoulli decoder, dynamic binarisation, tanh, heads on the hidden
/// layer, IWAE with 3 draws, Adam ε 1e-4) killed after its first epoch resumes to the
/// uninterrupted run's numbers: epoch 2's binary draws and posterior draws depend on
/// (seed, epoch) only. And the draws are really binary draws: the same
/// run on grey levels has other numbers.
#[cfg(feature = "failpoints")]
#[test]
fn a_dynamically_binarised_run_killed_mid_run_resumes_to_the_uninterrupted_numbers() {
    let args = |binarize: &'static str| {
        [
            "--quiet",
            "train",
            "--likelihood",
            "bernoulli",
            "--binarize",
            binarize,
            "--activation",
            "tanh",
            "--layout",
            "heads",
            "--epochs",
            "2",
            "--limit",
            "600",
            "--hidden",
            "32",
            "--latent",
            "5",
            "--objective",
            "iwae",
            "--samples",
            "3",
            "--beta",
            "1",
            "--adam-eps",
            "1e-4",
        ]
    };
    let one_thread = [("OMP_NUM_THREADS", "1")];
    let whole = tempfile::tempdir().unwrap();
    let out = common::vaelab_env(whole.path(), &one_thread, &args("dynamic"));
    assert!(out.status.success(), "{}", common::text(&out));
    let results = tempfile::tempdir().unwrap();
    let run =
        killed_at_epoch_2_and_resumed(results.path(), &args("dynamic"), &one_thread, whole.path());
    let grey = tempfile::tempdir().unwrap();
    let out = common::vaelab_env(grey.path(), &one_thread, &args("none"));
    assert!(out.status.success(), "{}", common::text(&out));
    let (binary, grey) = (numbers(&run), numbers(&common::only_run(grey.path())));
    assert_ne!(binary[0].recon, grey[0].recon);
}

#[test]
fn a_worker_that_fails_before_starting_its_run_is_retried_then_failed_not_respawned_forever() {
    let (_scratch, matrix, results) = trained_sweep("broken", TWO_TINY_RUNS);
    // One run left interrupted with a metrics file its worker cannot read: the worker exits
    // with an error before it writes any status.
    let store = Store::new(&results);
    let id = store.run_ids().unwrap()[0].clone();
    let run = store.run(&id);
    std::fs::remove_file(run.model_path()).unwrap();
    std::fs::write(run.metrics_path(), b"not parquet").unwrap();
    let mut child = common::command(&results)
        .args(["--quiet", "sweep", path(&matrix), "--jobs", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            panic!("the sweep respawns the broken run's worker for ever");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let text = common::text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("worker exited with code 1 after epoch 0 of 1 (3 attempts)"),
        "{text}"
    );
    assert_eq!(run.current_state(), RunState::Failed);
}
