//! `vaelab sweep --executor slurm` against a real single-node Slurm cluster (slurmctld, slurmd
//! and munged started by `scripts/setup-slurm`, which `./scripts/test` runs and stops): results
//! equal the local sweep; a cancelled task requeued by hand, and a task warned of its time limit
//! (SIGUSR1), resume from their checkpoints; the tasks send their runs to MLflow and
//! TensorBoard live; `status` and `cancel`; bad input writes nothing.
//!
//! A missing cluster is a failure, not a pass: without `SLURM_CONF` in the environment every
//! cluster test panics, saying so. `VAELAB_SKIP_SLURM=1` skips them on purpose, loudly (each
//! skipped test writes one line straight to stderr, which the test harness does not capture,
//! and `./scripts/test` says it too). The last test needs no cluster and always runs: what
//! `sweep --executor slurm` hands a stand-in `sbatch` (the `--array` string, the script).
mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::trackers::{
    expected, expected_f64, mlflow_metrics, read_back, read_mlflow, MlflowServer,
};
use vaelab::store::{EpochRow, RunState, Store};

/// Whether this test runs against the cluster `SLURM_CONF` names. `false` only when
/// `VAELAB_SKIP_SLURM=1` opts out (the test then says on stderr that it did not run); without
/// either, the test fails: a suite without its cluster must not pass.
fn cluster(test: &str) -> bool {
    if std::env::var("VAELAB_SKIP_SLURM").as_deref() == Ok("1") {
        // Straight to stderr: the harness captures only `eprintln!`, and this must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: VAELAB_SKIP_SLURM=1, so this Slurm test did not run"
        );
        return false;
    }
    assert!(
        std::env::var_os("SLURM_CONF").is_some(),
        "{test}: no Slurm cluster: SLURM_CONF is unset. ./scripts/test starts one with \
         `scripts/setup-slurm start` (which prints the SLURM_CONF to export); set \
         VAELAB_SKIP_SLURM=1 to skip the Slurm tests on purpose"
    );
    true
}

fn vaelab(results: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    common::vaelab_env(results, env, args)
}

fn slurm(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().expect("slurm tools");
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        common::text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn matrix(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("[sweep]\nname = \"{name}\"\n{body}")).unwrap();
    path
}

/// The job id `vaelab sweep --executor slurm` printed.
fn job_id(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("submitted Slurm job ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no job id in:\n{}", common::text(out)))
        .to_string()
}

fn queued(job: &str) -> Vec<String> {
    slurm("squeue", &["-h", "-r", "-j", job, "-o", "%i|%T|%r"])
        .lines()
        .map(String::from)
        .collect()
}

fn wait(what: &str, limit_s: u64, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(limit_s),
            "waited {limit_s} s for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn numbers(results: &Path) -> Vec<(String, Vec<EpochRow>)> {
    common::metrics_by_run(results)
}

/// The same matrix trained here, with the one OpenMP thread a Slurm task gets.
fn local(matrix: &Path) -> Vec<(String, Vec<EpochRow>)> {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let out = vaelab(
        &results,
        &["--quiet", "sweep", matrix.to_str().unwrap()],
        &[("OMP_NUM_THREADS", "1")],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    numbers(&results)
}

fn all_done(results: &Path) -> bool {
    let store = Store::new(results);
    let ids = store.run_ids().unwrap();
    !ids.is_empty()
        && ids
            .iter()
            .all(|id| store.run(id).current_state() == RunState::Done)
}

#[test]
fn a_sweep_submitted_to_slurm_gives_the_local_numbers() {
    if !cluster("a_sweep_submitted_to_slurm_gives_the_local_numbers") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = matrix(
        dir.path(),
        "array",
        "[base]\nepochs = 2\nlimit = 2000\nhidden = [32]\n[grid]\nmodel = [\"ae\", \"vae\"]\nbeta = [0.0, 1.0, 3.0]\n[slurm]\ncpus_per_task = 1\nmax_parallel = 2\n",
    );
    let results = dir.path().join("results");
    // Each task sends its runs to the trackers itself.
    let server = MlflowServer::start();
    let logs = dir.path().join("tb");
    let started = Instant::now();
    let out = vaelab(
        &results,
        &[
            "sweep",
            m.to_str().unwrap(),
            "--executor",
            "slurm",
            "--mlflow",
            &server.uri,
            "--tensorboard",
            logs.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    let job = job_id(&out);
    // The AE alone, the three VAEs as one stack: two array tasks.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("(2 of 2 entries for 4 runs, array 0,1%2)"),
        "{stdout}"
    );
    wait("the array to finish", 300, || queued(&job).is_empty());
    eprintln!(
        "2 tasks (4 runs) from submission to results: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(all_done(&results));
    assert_eq!(numbers(&results), local(&m));
    // The trackers have every run, every epoch once; the sweep's MLflow run is FINISHED.
    let (back, sweeps) = read_mlflow(&server.uri, "array");
    let tensorboard = read_back(&logs);
    let ids = Store::new(&results).run_ids().unwrap();
    assert_eq!(back.keys().cloned().collect::<Vec<_>>(), ids);
    assert_eq!(tensorboard.keys().cloned().collect::<Vec<_>>(), ids);
    assert_eq!(sweeps["array"]["status"], "FINISHED");
    for (id, rows) in numbers(&results) {
        let mut metrics = mlflow_metrics(&back[&id]);
        metrics.retain(|k, _| !k.starts_with("eval/"));
        assert_eq!(metrics, expected_f64(&rows), "{id}");
        assert_eq!(back[&id]["status"], "FINISHED", "{id}");
        assert_eq!(
            back[&id]["tags"]["mlflow.parentRunId"],
            sweeps["array"]["run_id"]
        );
        let mut scalars = tensorboard[&id].scalars.clone();
        scalars.retain(|k, _| !k.starts_with("eval/"));
        assert_eq!(scalars, expected(&rows), "{id}");
    }

    let status = vaelab(&results, &["status", "array"], &[]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&format!("last job {job} (array 0,1%2")),
        "{text}"
    );
    for index in 0..2 {
        let log = results.join(format!("sweeps/array/slurm/logs/{job}_{index}.out"));
        assert!(text.contains(&log.display().to_string()), "{text}");
        let log = std::fs::read_to_string(&log).unwrap();
        assert!(log.contains("done: "), "{log}");
    }
    assert_eq!(text.matches(" ended ").count(), 4, "{text}");
    let script = std::fs::read_dir(results.join("sweeps/array/slurm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sbatch"))
        .unwrap();
    let script = std::fs::read_to_string(script).unwrap();
    assert!(script.contains("#SBATCH --requeue") && script.contains("--signal=B:USR1@90"));
    assert!(script.contains("#SBATCH --cpus-per-task=1"), "{script}");

    // Everything done: a relaunch submits nothing.
    let again = vaelab(
        &results,
        &["sweep", m.to_str().unwrap(), "--executor", "slurm"],
        &[],
    );
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("all 4 runs are done; nothing to submit")
    );
}

/// One run long enough to be interrupted mid-run: 3 epochs on 30,000 images.
const LONG: &str = "[base]\nepochs = 3\nlimit = 30000\nhidden = [64]\n[slurm]\ncpus_per_task = 1\n";

/// The log of task 0 of `job` in sweep `name`.
fn task_log(results: &Path, name: &str, job: &str) -> PathBuf {
    results.join(format!("sweeps/{name}/slurm/logs/{job}_0.out"))
}

/// Waits until `job` has left the queue with every run done; its task 0's log.
fn finished_log(results: &Path, name: &str, job: &str) -> String {
    wait("the task to finish", 300, || {
        queued(job).is_empty() && all_done(results)
    });
    std::fs::read_to_string(task_log(results, name, job)).unwrap()
}

fn submit_long(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let m = matrix(dir, name, LONG);
    let results = dir.join("results");
    let out = vaelab(
        &results,
        &["sweep", m.to_str().unwrap(), "--executor", "slurm"],
        &[],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    let job = job_id(&out);
    let log = task_log(&results, name, &job);
    // Epoch 1 complete on disk (metrics and checkpoint), so a stop now resumes after it.
    wait("epoch 1", 300, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("epoch   1/3"))
            && Store::new(&results)
                .run_ids()
                .unwrap_or_default()
                .first()
                .is_some_and(|id| vaelab::train::epochs_on_disk(&Store::new(&results).run(id)) >= 1)
    });
    (m, results, job)
}

#[test]
fn a_task_warned_of_its_time_limit_checkpoints_requeues_itself_and_resumes() {
    if !cluster("a_task_warned_of_its_time_limit_checkpoints_requeues_itself_and_resumes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (m, results, job) = submit_long(dir.path(), "warned");
    let task = format!("{job}_0");
    // What `--signal=B:USR1@90` makes Slurm send 90 s before the time limit.
    slurm("scancel", &["--signal=USR1", "--batch", &task]);
    // The requeued task starts again once its old credential expired (10 s on the test cluster).
    let log = finished_log(&results, "warned", &job);
    assert!(log.contains("SIGUSR1 (time limit near): stopping"), "{log}");
    assert!(log.contains("requeued: "), "{log}");
    assert!(log.contains(": resuming after epoch"), "{log}");
    assert_eq!(numbers(&results), local(&m));
}

#[test]
fn a_cancelled_task_requeued_by_hand_resumes_and_cancel_keeps_finished_runs() {
    if !cluster("a_cancelled_task_requeued_by_hand_resumes_and_cancel_keeps_finished_runs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (m, results, job) = submit_long(dir.path(), "cancelled");
    let out = vaelab(&results, &["cancel", "cancelled"], &[]);
    assert!(out.status.success(), "{}", common::text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("cancelled job(s) {job}")));
    let task = format!("{job}_0");
    wait("the task to stop", 60, || queued(&job).is_empty());
    let store = Store::new(&results);
    let id = store.run_ids().unwrap().pop().unwrap();
    assert_eq!(store.run(&id).current_state(), RunState::Interrupted);
    // Nothing queued: cancelling again says so.
    let out = vaelab(&results, &["cancel", "cancelled"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no Slurm job of it is queued"));

    slurm("scontrol", &["requeue", &task]);
    let log = finished_log(&results, "cancelled", &job);
    assert!(log.contains("SIGTERM: stopping"), "{log}");
    assert!(log.contains(": resuming after epoch"), "{log}");
    assert_eq!(numbers(&results), local(&m));
}

#[test]
fn bad_submissions_are_one_line_and_leave_nothing_half_submitted() {
    if !cluster("bad_submissions_are_one_line_and_leave_nothing_half_submitted") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = matrix(
        dir.path(),
        "bad",
        "[base]\nepochs = 1\nlimit = 300\nhidden = [16]\n",
    );
    let results = dir.path().join("results");
    let file = m.to_str().unwrap();

    // No sbatch on PATH: nothing written at all.
    let out = vaelab(
        &results,
        &["sweep", file, "--executor", "slurm"],
        &[("PATH", "/nonexistent")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: sbatch is not on PATH"), "{err}");
    assert!(!results.exists());

    // sbatch refuses: no job recorded, no script left.
    let out = vaelab(
        &results,
        &["sweep", file, "--executor", "slurm", "--partition", "nope"],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("sbatch refused sweep bad: ") && err.contains("nothing was submitted"),
        "{err}"
    );
    let slurm_dir = results.join("sweeps/bad/slurm");
    assert!(!slurm_dir.join("jobs.toml").exists());
    let scripts = std::fs::read_dir(&slurm_dir)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "sbatch")
            })
            .count()
        })
        .unwrap_or(0);
    assert_eq!(scripts, 0);
    let out = vaelab(
        &results,
        &["sweep", file, "--executor", "slurm", "--time", "soon"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sbatch refused"));

    // Submitted and still queued: a second submission is refused. The job is held so that it
    // stays queued while we look.
    let out = vaelab(
        &results,
        &["sweep", file, "--executor", "slurm", "--sbatch-arg=--hold"],
        &[],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    let job = job_id(&out);
    let again = vaelab(&results, &["sweep", file, "--executor", "slurm"], &[]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        err.contains(&format!("already submitted: job {job} still has 1 task(s)")),
        "{err}"
    );
    assert!(err.contains("vaelab cancel bad"), "{err}");
    let cancel = vaelab(&results, &["cancel", "bad"], &[]);
    assert!(cancel.status.success(), "{}", common::text(&cancel));
    wait("the held job to go", 60, || queued(&job).is_empty());
}

/// Stand-ins for `sbatch` and `squeue` in a folder of their own, for the cluster-free test:
/// `sbatch` writes its arguments, one a line, to `sbatch.args` beside itself and answers job
/// 4242 as `--parsable` does; `squeue` finds nothing queued. Returns a PATH with them first.
fn fake_slurm(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let tools = [
        (
            "sbatch",
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$(dirname \"$0\")/sbatch.args\"\necho '4242;fake'\n",
        ),
        ("squeue", "#!/bin/sh\nexit 0\n"),
    ];
    for (name, body) in tools {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{}:{path}", dir.display())
}

/// Needs no cluster (it runs even with `VAELAB_SKIP_SLURM=1`): the real submission path, with
/// stand-in Slurm tools, hands sbatch an `--array` of exactly the entries not done, with the
/// matrix's `max_parallel` as its `%K` limit, and the batch script it wrote.
#[test]
fn the_array_lists_only_the_entries_not_done_with_the_parallel_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = fake_slurm(&dir.path().join("bin"));
    let args_file = dir.path().join("bin/sbatch.args");
    let m = matrix(
        dir.path(),
        "fake",
        "[base]\nepochs = 1\nlimit = 300\nhidden = [16]\n[grid]\nseed = [1, 2, 3]\n[slurm]\nmax_parallel = 2\n",
    );
    let results = dir.path().join("results");
    // Every run alone: three entries, one per seed.
    let submit = || {
        vaelab(
            &results,
            &[
                "sweep",
                m.to_str().unwrap(),
                "--executor",
                "slurm",
                "--stack",
                "off",
            ],
            &[("PATH", path.as_str())],
        )
    };
    let sbatch_args = || -> Vec<String> {
        std::fs::read_to_string(&args_file)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    };

    let out = submit();
    assert!(out.status.success(), "{}", common::text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("submitted Slurm job 4242 (3 of 3 entries for 3 runs, array 0,1,2%2)"),
        "{stdout}"
    );
    let args = sbatch_args();
    assert_eq!(args.len(), 3, "{args:?}");
    assert_eq!(args[..2], ["--parsable", "--array=0,1,2%2"], "{args:?}");
    let script = std::fs::read_to_string(&args[2]).unwrap();
    let manifest = results.join("sweeps/fake/manifest.toml");
    assert!(script.contains("#SBATCH --requeue\n"), "{script}");
    assert!(script.contains("#SBATCH --signal=B:USR1@90\n"), "{script}");
    assert!(
        script.contains(&format!(
            "--quiet entry '{}' \"$SLURM_ARRAY_TASK_ID\"\n",
            std::fs::canonicalize(&manifest).unwrap().display()
        )),
        "{script}"
    );
    let jobs = std::fs::read_to_string(results.join("sweeps/fake/slurm/jobs.toml")).unwrap();
    assert!(jobs.contains("job_id = \"4242\""), "{jobs}");

    // Entry 1 trained as its array task would; the next submission leaves it out.
    let out = common::vaelab(
        &results,
        &["--quiet", "entry", manifest.to_str().unwrap(), "1"],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    let out = submit();
    assert!(out.status.success(), "{}", common::text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("submitted Slurm job 4242 (2 of 3 entries for 3 runs, array 0,2%2)"),
        "{stdout}"
    );
    assert_eq!(sbatch_args()[..2], ["--parsable", "--array=0,2%2"]);
}
