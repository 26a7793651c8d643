//! Sweeps on a Slurm cluster: one job array whose task `I` runs `vaelab entry MANIFEST I`.
//!
//! [`submit`] writes a readable batch script into `results/sweeps/<name>/slurm/`, submits it
//! with `sbatch` over the entries that are not done yet, and records the job in
//! `slurm/jobs.toml`; [`queue`] asks `squeue` where the tasks stand; [`cancel`] runs
//! `scancel`. Tasks are submitted with `--requeue` and `--signal=B:USR1@90`: 90 s before its time
//! limit a task gets SIGUSR1, stops at the next batch boundary with its last epoch
//! checkpointed, and requeues itself ([`requeue_self`]); a preempted task (SIGTERM) stops the
//! same way and Slurm requeues it. A requeued task resumes from its last complete epoch, as
//! every relaunch does. The results directory must be on a filesystem every node shares, with
//! working `flock` (see the README).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::Manifest;
use crate::config::defaults::EvalPolicy;
use crate::config::matrix::SlurmSettings;
use crate::config::tracking::Tracking;
use crate::store::{now_rfc3339, write_atomic, RunState, Store};
use crate::tool;
use crate::train::{Outcome, RunReport};

/// Seconds before the time limit at which a task is told to stop (SIGUSR1).
pub const SIGNAL_BEFORE_LIMIT_S: u32 = 90;

/// One `sbatch` submission of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// The array's job id.
    pub job_id: String,
    /// Its `--array` value: manifest entries, e.g. `0,2,3%2`.
    pub array: String,
    /// The batch script it ran.
    pub script: PathBuf,
    /// RFC 3339 UTC time of the submission.
    pub submitted: String,
}

impl Submission {
    /// The manifest entries it submitted (its `--array` without the `%K` limit).
    pub fn entries(&self) -> Vec<usize> {
        let list = self.array.split('%').next().unwrap_or("");
        list.split(',').filter_map(|i| i.parse().ok()).collect()
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Jobs {
    #[serde(default)]
    submission: Vec<Submission>,
}

/// `results/sweeps/<name>/slurm/`.
pub fn slurm_dir(store: &Store, name: &str) -> PathBuf {
    store.sweep_dir(name).join("slurm")
}

/// The log of array task `index` of job `job_id`.
pub fn log_path(store: &Store, name: &str, job_id: &str, index: usize) -> PathBuf {
    slurm_dir(store, name)
        .join("logs")
        .join(format!("{job_id}_{index}.out"))
}

/// Every submission of sweep `name`, oldest first.
pub fn submissions(store: &Store, name: &str) -> Result<Vec<Submission>> {
    let path = slurm_dir(store, name).join("jobs.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(toml::from_str::<Jobs>(&text)
            .with_context(|| format!("{}", path.display()))?
            .submission),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Where one array task stands in Slurm's queue.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuedTask {
    /// The array's job id.
    pub job_id: String,
    /// The manifest entry (the array index).
    pub index: usize,
    /// `PENDING`, `RUNNING`, `COMPLETING`, `REQUEUED`, ...
    pub state: String,
    /// Slurm's reason (`Resources`, `Priority`, `None`).
    pub reason: String,
}

/// Checks that Slurm's client tools are here, before anything is written.
pub fn preflight() -> Result<()> {
    client("sbatch").map(|_| ())
}

/// A Slurm client tool, found on PATH (else a one-line error saying where to run).
fn client(name: &str) -> Result<Command> {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(name).is_file()));
    if !found {
        bail!("{name} is not on PATH: run this on a Slurm login node (or load its module), or use --executor local");
    }
    Ok(Command::new(name))
}

/// The tasks of `job_ids` still in Slurm's queue (pending, running, requeued), one per array
/// index.
pub fn queue(job_ids: &[String]) -> Result<Vec<QueuedTask>> {
    if job_ids.is_empty() {
        return Ok(Vec::new());
    }
    let text = match tool::output(client("squeue")?.args([
        "-h",
        "-r",
        "-o",
        "%i|%T|%r",
        "-j",
        &job_ids.join(","),
    ])) {
        Ok(text) => text,
        // Jobs long gone from the controller's memory are not an error: nothing is queued.
        Err(e) if e.stderr.contains("Invalid job id") => return Ok(Vec::new()),
        Err(e) => bail!("squeue failed: {}", e.reason),
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut parts = line.split('|');
            let id = parts.next()?;
            let (job, index) = id.split_once('_')?;
            Some(QueuedTask {
                job_id: job.to_string(),
                index: index.parse().ok()?,
                state: parts.next()?.to_string(),
                reason: parts.next().unwrap_or("").to_string(),
            })
        })
        .collect())
}

/// The batch script: readable, so a user can see what runs and resubmit it by hand.
fn script(
    manifest_path: &Path,
    store: &Store,
    name: &str,
    data_dir: &Path,
    settings: &SlurmSettings,
    eval: &EvalPolicy,
    tracking: &Tracking,
) -> Result<String> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("cannot locate the vaelab executable")?;
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let logs = slurm_dir(store, name).join("logs");
    let quote_str = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let quote = |p: &Path| quote_str(&p.display().to_string());
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!("# vaelab sweep {name}: array task I trains entry I of the manifest."),
        "# Submit again by hand with: sbatch --array=<entries> <this file>".to_string(),
        format!("#SBATCH --job-name=vaelab-{name}"),
        format!("#SBATCH --output={}/%A_%a.out", abs(&logs).display()),
        "#SBATCH --requeue".to_string(),
        format!("#SBATCH --signal=B:USR1@{SIGNAL_BEFORE_LIMIT_S}"),
        "#SBATCH --open-mode=append".to_string(),
    ];
    if let Some(p) = &settings.partition {
        lines.push(format!("#SBATCH --partition={p}"));
    }
    if let Some(t) = &settings.time {
        lines.push(format!("#SBATCH --time={t}"));
    }
    if let Some(c) = settings.cpus_per_task {
        lines.push(format!("#SBATCH --cpus-per-task={c}"));
    }
    if let Some(m) = &settings.mem {
        lines.push(format!("#SBATCH --mem={m}"));
    }
    for arg in &settings.sbatch_args {
        lines.push(format!("#SBATCH {arg}"));
    }
    lines.push(String::new());
    lines.push("# One OpenMP thread per CPU Slurm gave the task.".to_string());
    lines.push("export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-1}}".to_string());
    // MKL's own setting would otherwise override OpenMP's.
    lines.push("export MKL_NUM_THREADS=$OMP_NUM_THREADS".to_string());
    lines.push(
        "# exec: Slurm's signals (USR1 before the time limit, TERM) reach vaelab itself.".into(),
    );
    // The evaluation policy travels only when it is not the default.
    let eval = if *eval == EvalPolicy::default() {
        String::new()
    } else {
        format!(" --eval {eval}")
    };
    // So do the trackers: each task sends its own runs (to a directory every node sees, or a
    // server every node reaches).
    let mut track = String::new();
    if let Some(dir) = &tracking.tensorboard {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        track.push_str(&format!(" --tensorboard {}", quote(&dir)));
    }
    if let Some(uri) = &tracking.mlflow {
        track.push_str(&format!(" --mlflow {}", quote_str(uri)));
        if let Some(e) = &tracking.experiment {
            track.push_str(&format!(" --experiment {}", quote_str(e)));
        }
    }
    lines.push(format!(
        "exec {} --results {} --data {} --quiet entry {} \"$SLURM_ARRAY_TASK_ID\"{eval}{track}",
        quote(&exe),
        quote(&abs(store.root())),
        quote(&abs(data_dir)),
        quote(&abs(manifest_path)),
    ));
    Ok(lines.join("\n") + "\n")
}

/// Submits the entries of `manifest` that are not done as one job array; `None` when every run
/// is done. Refuses (one line, nothing written) when `sbatch` is missing, when an earlier
/// submission of this sweep still has tasks queued or running, or when `sbatch` refuses.
pub fn submit(
    store: &Store,
    manifest: &Manifest,
    manifest_path: &Path,
    data_dir: &Path,
    settings: &SlurmSettings,
    eval: &EvalPolicy,
    tracking: &Tracking,
) -> Result<Option<Submission>> {
    let mut sbatch = client("sbatch")?;
    let name = &manifest.name;
    let ids: Vec<String> = submissions(store, name)?
        .iter()
        .map(|s| s.job_id.clone())
        .collect();
    let queued = queue(&ids)?;
    if let Some(task) = queued.first() {
        bail!(
            "sweep {name} is already submitted: job {} still has {} task(s) queued or running; \
             watch it with `vaelab status {name}`, stop it with `vaelab cancel {name}`",
            task.job_id,
            queued.len()
        );
    }
    let todo: Vec<usize> = manifest
        .entries()
        .iter()
        .enumerate()
        .filter(|(_, runs)| {
            runs.iter()
                .any(|&i| store.run(&manifest.runs[i].id).current_state() != RunState::Done)
        })
        .map(|(i, _)| i)
        .collect();
    if todo.is_empty() {
        return Ok(None);
    }
    let mut array = todo
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    if let Some(k) = settings.max_parallel {
        array.push_str(&format!("%{k}"));
    }
    let dir = slurm_dir(store, name);
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let stamp = now_rfc3339().replace(':', "");
    let script_path = dir.join(format!("sweep-{stamp}.sbatch"));
    write_atomic(
        &script_path,
        script(
            manifest_path,
            store,
            name,
            data_dir,
            settings,
            eval,
            tracking,
        )?
        .as_bytes(),
    )?;
    let out = tool::output(
        sbatch
            .arg("--parsable")
            .arg(format!("--array={array}"))
            .arg(&script_path),
    );
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            let _ = std::fs::remove_file(&script_path);
            let reason = e.reason.trim_start_matches("sbatch: error: ");
            bail!("sbatch refused sweep {name}: {reason}; nothing was submitted");
        }
    };
    let job_id = out.trim().split(';').next().unwrap_or_default().to_string();
    let submission = Submission {
        job_id,
        array,
        script: script_path,
        submitted: now_rfc3339(),
    };
    // Read again just before the write, so that a submission made meanwhile is kept too.
    let mut jobs = Jobs {
        submission: submissions(store, name)?,
    };
    jobs.submission.push(submission.clone());
    write_atomic(&dir.join("jobs.toml"), toml::to_string(&jobs)?.as_bytes()).with_context(
        || {
            format!(
                "job {} was submitted but could not be recorded; `scancel {}` it or record it by hand",
                submission.job_id, submission.job_id
            )
        },
    )?;
    Ok(Some(submission))
}

/// Cancels every job of sweep `name` still in the queue; returns their ids. Finished runs stay;
/// a running task stops at its next batch boundary (interrupted, resumable).
pub fn cancel(store: &Store, name: &str) -> Result<Vec<String>> {
    let ids: Vec<String> = submissions(store, name)?
        .into_iter()
        .map(|s| s.job_id)
        .collect();
    let mut live: Vec<String> = queue(&ids)?.into_iter().map(|t| t.job_id).collect();
    live.dedup();
    if live.is_empty() {
        return Ok(live);
    }
    tool::output(client("scancel")?.args(&live))
        .map_err(|e| anyhow::anyhow!("scancel failed: {}", e.reason))?;
    Ok(live)
}

/// After `vaelab entry` in a Slurm task: when Slurm warned of the time limit (`warned`, SIGUSR1)
/// and runs stopped with their last epoch checkpointed, puts the task back into the queue so
/// that they resume there; the ids that will resume (none when nothing is requeued).
pub fn requeue_if_warned(warned: bool, reports: &[RunReport]) -> Result<Vec<String>> {
    let stopped: Vec<String> = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Interrupted { .. }))
        .map(|r| r.id.clone())
        .collect();
    if !warned || stopped.is_empty() {
        return Ok(Vec::new());
    }
    requeue_self()?;
    Ok(stopped)
}

/// The tasks of `job_ids` still queued, or none and why, when the queue cannot be asked (off
/// the cluster, results copied elsewhere): `vaelab status` then shows the runs on disk only.
pub fn queue_or_why(job_ids: &[String]) -> (Vec<QueuedTask>, Option<String>) {
    match queue(job_ids) {
        Ok(queued) => (queued, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    }
}

/// Inside a Slurm task told to stop before its time limit: puts this task back in the queue,
/// so that it resumes from its checkpoint when it runs again.
pub fn requeue_self() -> Result<()> {
    let job = std::env::var("SLURM_JOB_ID").context("not inside a Slurm job")?;
    tool::output(client("scontrol")?.args(["requeue", &job]))
        .map_err(|e| anyhow::anyhow!("scontrol requeue {job} failed: {}", e.reason))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every setting set.
    fn every_setting() -> SlurmSettings {
        SlurmSettings {
            partition: Some("short".into()),
            time: Some("01:30:00".into()),
            cpus_per_task: Some(2),
            mem: Some("4G".into()),
            max_parallel: Some(3),
            sbatch_args: vec!["--account=lab".into(), "--qos=low".into()],
        }
    }

    /// (results root, data dir, manifest), created so that the script names them canonically.
    fn layout(dir: &Path) -> (Store, PathBuf, PathBuf) {
        let store = Store::new(dir.join("results"));
        let data = dir.join("data");
        let manifest = store.sweep_dir("it's").join("manifest.toml");
        std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(&manifest, "").unwrap();
        (store, data, manifest)
    }

    fn sbatch_lines(script: &str) -> Vec<&str> {
        script
            .lines()
            .filter(|l| l.starts_with("#SBATCH"))
            .collect()
    }

    #[test]
    fn the_batch_script_asks_for_requeue_and_a_warning_90_s_before_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (store, data, manifest) = layout(dir.path());
        let text = script(
            &manifest,
            &store,
            "it's",
            &data,
            &every_setting(),
            &EvalPolicy::default(),
            &Tracking::default(),
        )
        .unwrap();
        assert!(text.starts_with("#!/bin/bash\n"), "{text}");
        let logs = slurm_dir(&store, "it's").join("logs");
        let output = format!("#SBATCH --output={}/%A_%a.out", logs.display());
        assert_eq!(
            sbatch_lines(&text),
            [
                "#SBATCH --job-name=vaelab-it's",
                output.as_str(),
                "#SBATCH --requeue",
                "#SBATCH --signal=B:USR1@90",
                "#SBATCH --open-mode=append",
                "#SBATCH --partition=short",
                "#SBATCH --time=01:30:00",
                "#SBATCH --cpus-per-task=2",
                "#SBATCH --mem=4G",
                "#SBATCH --account=lab",
                "#SBATCH --qos=low",
            ],
            "{text}"
        );
        // `max_parallel` belongs to `--array`, not to the script.
        assert!(!text.contains("%3"), "{text}");
        // Nothing but comments and blank lines between the #SBATCH lines and the first command
        // (sbatch stops reading #SBATCH lines at the first command).
        let lines: Vec<&str> = text.lines().collect();
        let first_command = lines
            .iter()
            .position(|l| !l.starts_with('#') && !l.trim().is_empty())
            .unwrap();
        let last_sbatch = lines
            .iter()
            .rposition(|l| l.starts_with("#SBATCH"))
            .unwrap();
        assert!(last_sbatch < first_command, "{text}");
        assert!(
            text.contains(
                "\nexport OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-1}}\nexport MKL_NUM_THREADS=$OMP_NUM_THREADS\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn without_settings_the_script_has_only_its_fixed_sbatch_lines() {
        let dir = tempfile::tempdir().unwrap();
        let (store, data, manifest) = layout(dir.path());
        let text = script(
            &manifest,
            &store,
            "plain",
            &data,
            &SlurmSettings::default(),
            &EvalPolicy::default(),
            &Tracking::default(),
        )
        .unwrap();
        let sbatch: Vec<&str> = sbatch_lines(&text)
            .into_iter()
            .map(|l| l.split('=').next().unwrap())
            .collect();
        assert_eq!(
            sbatch,
            [
                "#SBATCH --job-name",
                "#SBATCH --output",
                "#SBATCH --requeue",
                "#SBATCH --signal",
                "#SBATCH --open-mode",
            ],
            "{text}"
        );
    }

    /// The script's last line, run by bash with `exec` swapped for `printf`: the words it runs,
    /// so the quoting of paths with a `'` is checked by the shell that will read it.
    #[test]
    fn the_task_execs_vaelab_entry_on_its_array_index_with_absolute_quoted_paths() {
        let dir = tempfile::tempdir().unwrap();
        let (store, data, manifest) = layout(dir.path());
        let text = script(
            &manifest,
            &store,
            "it's",
            &data,
            &every_setting(),
            &EvalPolicy::default(),
            &Tracking {
                tensorboard: Some(dir.path().join("tb of it's")),
                mlflow: Some("http://127.0.0.1:5000".into()),
                experiment: Some("lab's".into()),
            },
        )
        .unwrap();
        let last = text.lines().last().unwrap();
        let command = last.strip_prefix("exec ").expect("the task execs vaelab");
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("printf '%s\\n' {command}"))
            .env("SLURM_ARRAY_TASK_ID", "7")
            .output()
            .unwrap();
        assert!(out.status.success(), "{last}");
        let words: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let canonical = |p: &Path| p.canonicalize().unwrap().display().to_string();
        let exe = std::env::current_exe().unwrap();
        assert_eq!(
            words,
            [
                canonical(exe.as_path()),
                "--results".into(),
                canonical(store.root()),
                "--data".into(),
                canonical(data.as_path()),
                "--quiet".into(),
                "entry".into(),
                canonical(manifest.as_path()),
                "7".into(),
                "--tensorboard".into(),
                dir.path().join("tb of it's").display().to_string(),
                "--mlflow".into(),
                "http://127.0.0.1:5000".into(),
                "--experiment".into(),
                "lab's".into(),
            ],
            "{last}"
        );
    }

    #[test]
    fn a_submission_lists_its_entries_without_the_parallel_limit() {
        let submission = |array: &str| Submission {
            job_id: "1".into(),
            array: array.into(),
            script: PathBuf::from("s.sbatch"),
            submitted: String::new(),
        };
        assert_eq!(submission("0,2,3%2").entries(), [0, 2, 3]);
        assert_eq!(submission("5").entries(), [5]);
        assert_eq!(submission("1,4").entries(), [1, 4]);
    }
}
