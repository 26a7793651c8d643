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
use crate::config::matrix::SlurmSettings;
use crate::store::{now_rfc3339, write_atomic, RunState, Store};

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
    tool("sbatch").map(|_| ())
}

fn tool(name: &str) -> Result<Command> {
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
    let out = tool("squeue")?
        .args(["-h", "-r", "-o", "%i|%T|%r", "-j", &job_ids.join(",")])
        .output()
        .context("cannot run squeue")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // Jobs long gone from the controller's memory are not an error: nothing is queued.
        if err.contains("Invalid job id") {
            return Ok(Vec::new());
        }
        bail!("squeue failed: {}", err.trim());
    }
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
) -> Result<String> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("cannot locate the vaelab executable")?;
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let logs = slurm_dir(store, name).join("logs");
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
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
    lines.push(
        "# exec: Slurm's signals (USR1 before the time limit, TERM) reach vaelab itself.".into(),
    );
    lines.push(format!(
        "exec {} --results {} --data {} --quiet entry {} \"$SLURM_ARRAY_TASK_ID\"",
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
) -> Result<Option<Submission>> {
    let mut sbatch = tool("sbatch")?;
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
        script(manifest_path, store, name, data_dir, settings)?.as_bytes(),
    )?;
    let out = sbatch
        .arg("--parsable")
        .arg(format!("--array={array}"))
        .arg(&script_path)
        .output()
        .context("cannot run sbatch")?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&script_path);
        let err = String::from_utf8_lossy(&out.stderr);
        let reason = err
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("no reason given")
            .trim_start_matches("sbatch: error: ");
        bail!("sbatch refused sweep {name}: {reason}; nothing was submitted");
    }
    let job_id = String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
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
    let out = tool("scancel")?
        .args(&live)
        .output()
        .context("cannot run scancel")?;
    if !out.status.success() {
        bail!(
            "scancel failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(live)
}

/// Inside a Slurm task told to stop before its time limit: puts this task back in the queue,
/// so that it resumes from its checkpoint when it runs again.
pub fn requeue_self() -> Result<()> {
    let job = std::env::var("SLURM_JOB_ID").context("not inside a Slurm job")?;
    let out = tool("scontrol")?
        .args(["requeue", &job])
        .output()
        .context("cannot run scontrol")?;
    if !out.status.success() {
        bail!(
            "scontrol requeue {job} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
