//! The life cycle of runs around the Learner: identity, lock, status, provenance, resume, and
//! the outcome. The entry points are [`train_stack`] (runs of one shape as one stacked model)
//! and [`train_run`] (a stack of one); the Learner wiring is in [`super::training`].
//!
//! A run is done only when its `model.bpk` is on disk: a run killed or stopped after its last
//! checkpoint but before the model was saved resumes by restoring the model from that
//! checkpoint. A panic or error while training marks the run failed with a one-line reason.

use std::panic::{catch_unwind, AssertUnwindSafe};

use anyhow::{bail, Result};

use super::checkpoint::{self, AtomicCheckpointer};
use super::options::TrainOptions;
use super::outcome::{Outcome, RunReport};
use super::progress::Progress;
use super::training::{self, Learned};
use crate::config::device_for;
use crate::config::RunSpec;
use crate::data::{self, Mnist};
use crate::faults;
use crate::store::{
    build_info, now_rfc3339, read_metrics, EpochRow, Lock, Provenance, RunDir, RunState, RunStatus,
};

/// The last complete epoch of `run` on disk (its metrics, both splits, and its checkpoint).
pub fn epochs_on_disk(run: &RunDir) -> usize {
    read_metrics(&run.metrics_path()).map_or(0, |rows| resumable_epoch(run, &rows))
}

/// The last epoch whose metrics (both splits) and checkpoint files are all on disk.
fn resumable_epoch(run: &RunDir, rows: &[EpochRow]) -> usize {
    let ckpt = AtomicCheckpointer::new(run.checkpoint_dir(), "model");
    let mut epoch = rows.iter().map(|r| r.epoch as usize).max().unwrap_or(0);
    while epoch > 0 {
        let splits = rows.iter().filter(|r| r.epoch as usize == epoch).count();
        if splits == 2 && ckpt.has_all(epoch, &[checkpoint::MODEL]) {
            return epoch;
        }
        epoch -= 1;
    }
    0
}

/// Trains `spec` to completion (or resumes it), writing everything into its run directory:
/// a stack of one ([`train_stack`]).
pub fn train_run(spec: &RunSpec, opts: &TrainOptions) -> Result<RunReport> {
    let mut reports = train_stack(std::slice::from_ref(spec), opts)?;
    Ok(reports.remove(0))
}

/// A prepared member and its place in the caller's list of specs.
type Slot = (usize, Prepared);

/// How one stack's training ended: the reports of the members that ended (with their places),
/// and the members to restack without a stack mate that failed.
struct GroupEnd {
    reports: Vec<(usize, RunReport)>,
    restack: Vec<Slot>,
}

/// A member that will train in this launch: its lock is held until its outcome is recorded.
struct Prepared {
    spec: RunSpec,
    run: RunDir,
    _lock: Lock,
    rows: Vec<EpochRow>,
    start_epoch: usize,
    provenance: Provenance,
}

/// Trains `specs`, which share [`RunSpec::stack_key`], as one stacked model (or resumes
/// them), each into its own run directory with the same files a run trained alone has; one
/// report per spec, in order. Members already done are skipped; members resuming from
/// different epochs train in one stack per epoch.
pub fn train_stack(specs: &[RunSpec], opts: &TrainOptions) -> Result<Vec<RunReport>> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let mut specs: Vec<RunSpec> = specs.iter().map(RunSpec::canonical).collect();
    for spec in &specs {
        spec.validate()?;
    }
    if let Some(other) = specs.iter().find(|s| s.stack_key() != specs[0].stack_key()) {
        bail!(
            "runs {} and {} differ in shape and cannot share a stack",
            specs[0].run_id(build_info::CODE_FINGERPRINT),
            other.run_id(build_info::CODE_FINGERPRINT)
        );
    }
    let ids: Vec<String> = specs
        .iter()
        .map(|s| s.run_id(build_info::CODE_FINGERPRINT))
        .collect();
    let mut reports: Vec<Option<RunReport>> = vec![None; specs.len()];
    let report = |id: &str, run: &RunDir, outcome, rows| RunReport {
        id: id.to_string(),
        dir: run.path.clone(),
        outcome,
        rows,
    };
    // Checked before anything is loaded, so relaunching a finished sweep costs next to nothing.
    for (i, id) in ids.iter().enumerate() {
        let run = opts.store.run(id);
        if run.current_state() == RunState::Done {
            let rows = read_metrics(&run.metrics_path())?;
            reports[i] = Some(report(id, &run, Outcome::AlreadyDone, rows));
        }
    }
    if reports.iter().all(Option::is_some) {
        return Ok(reports.into_iter().flatten().collect());
    }

    // Everything that can fail on bad input fails before a run directory exists.
    let device = device_for(&specs[0])?;
    let limit = specs[0].limit;
    let dataset = specs[0].dataset;
    let binarize = specs[0].binarize;
    let load = |split| Mnist::load_as(dataset, &opts.data_dir, split, limit, binarize);
    let (train_set, test_set) = (load(data::Split::Train)?, load(data::Split::Test)?);
    let data_sha256: std::collections::BTreeMap<String, String> = train_set
        .sha256
        .iter()
        .chain(&test_set.sha256)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    let mut prepared: Vec<Slot> = Vec::new();
    for (i, spec) in specs.drain(..).enumerate() {
        if reports[i].is_some() {
            continue;
        }
        let run = opts.store.run(&ids[i]);
        run.create(&spec)?;
        let lock = match Lock::acquire(&run.lock_path())? {
            Ok(lock) => lock,
            Err(holder) => {
                reports[i] = Some(report(&ids[i], &run, Outcome::Busy { holder }, Vec::new()));
                continue;
            }
        };
        // Another process may have finished the run between the first check and the lock.
        if run.current_state() == RunState::Done {
            let rows = read_metrics(&run.metrics_path())?;
            reports[i] = Some(report(&ids[i], &run, Outcome::AlreadyDone, rows));
            continue;
        }
        let mut rows = read_metrics(&run.metrics_path())?;
        let start_epoch = resumable_epoch(&run, &rows);
        rows.retain(|r| r.epoch as usize <= start_epoch);
        let now = Provenance::capture(&spec, data_sha256.clone());
        let mut provenance = match Provenance::read(&run) {
            Ok(mut first) if start_epoch > 0 => {
                first.note_resume(&now, start_epoch);
                first
            }
            _ => now,
        };
        provenance.epoch_seconds.truncate(start_epoch);
        run.write_status(&RunStatus {
            state: RunState::Running,
            epochs_done: start_epoch,
            message: None,
        })?;
        prepared.push((
            i,
            Prepared {
                spec,
                run,
                _lock: lock,
                rows,
                start_epoch,
                provenance,
            },
        ));
    }

    for (i, report) in train_groups(prepared, &device, &train_set, &test_set, opts)? {
        reports[i] = Some(report);
    }
    Ok(reports.into_iter().flatten().collect())
}

/// Trains prepared members as one stack per resume epoch (members normally all resume from
/// the same one); a stack that lost a member to a non-finite loss goes on without it.
fn train_groups(
    prepared: Vec<Slot>,
    device: &burn::prelude::Device,
    train_set: &Mnist,
    test_set: &Mnist,
    opts: &TrainOptions,
) -> Result<Vec<(usize, RunReport)>> {
    let mut by_epoch: std::collections::BTreeMap<usize, Vec<Slot>> = Default::default();
    for (i, p) in prepared {
        by_epoch.entry(p.start_epoch).or_default().push((i, p));
    }
    let mut reports = Vec::new();
    for (start_epoch, group) in by_epoch {
        let end = train_group(group, start_epoch, device, train_set, test_set, opts)?;
        reports.extend(end.reports);
        if !end.restack.is_empty() {
            reports.extend(train_groups(
                end.restack,
                device,
                train_set,
                test_set,
                opts,
            )?);
        }
    }
    Ok(reports)
}

/// Trains one stack of prepared members resuming from `start_epoch` and records each
/// member's outcome; returns those reports and the members to restack (stopped because a
/// stack mate failed), prepared again from what is on disk.
fn train_group(
    mut group: Vec<Slot>,
    start_epoch: usize,
    device: &burn::prelude::Device,
    train_set: &Mnist,
    test_set: &Mnist,
    opts: &TrainOptions,
) -> Result<GroupEnd> {
    let ids: Vec<String> = group.iter().map(|(_, p)| p.run.id.clone()).collect();
    for (_, p) in &mut group {
        let others: Vec<String> = ids.iter().filter(|id| **id != p.run.id).cloned().collect();
        p.provenance.note_stack(start_epoch, &others);
        p.provenance.write(&p.run)?;
    }
    let label = match ids.len() {
        1 => ids[0].clone(),
        n => format!("stack of {n} ({} …)", ids[0]),
    };
    let multi = opts.sweep_bars.as_ref().map(|(m, _)| m);
    let progress = Progress::new(&label, opts.quiet, multi);
    let epochs = group[0].1.spec.epochs;
    if start_epoch > 0 {
        progress.println(format!(
            "{label}: resuming after epoch {start_epoch}/{epochs}"
        ));
    }
    let learned: Vec<Result<Learned, String>> = if start_epoch >= epochs {
        // Every epoch is checkpointed; only the model files may be missing.
        group
            .iter()
            .map(|_| {
                Ok(Learned {
                    outcome: Outcome::Done,
                    net: None,
                    restack: false,
                })
            })
            .collect()
    } else {
        let members = group
            .iter()
            .map(|(_, p)| training::Member {
                spec: &p.spec,
                run: &p.run,
                rows: p.rows.clone(),
            })
            .collect();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let job = training::StackJob {
                members,
                device: device.clone(),
                train_set: train_set.clone(),
                test_set: test_set.clone(),
                start_epoch,
                labels: ids.clone(),
            };
            training::learn(job, opts, &progress)
        }))
        .unwrap_or_else(|panic| Err(anyhow::anyhow!(crate::panics::reason(&*panic))));
        match result {
            Ok(learned) => learned.into_iter().map(Ok).collect(),
            Err(e) => {
                let reason = crate::panics::one_line(&format!("{e:#}"));
                group.iter().map(|_| Err(reason.clone())).collect()
            }
        }
    };
    progress.finish();

    let mut reports = Vec::new();
    let mut restack = Vec::new();
    for ((i, mut p), learned) in group.into_iter().zip(learned) {
        if learned.as_ref().is_ok_and(|l| l.restack) {
            p.rows = read_metrics(&p.run.metrics_path())?;
            p.start_epoch = resumable_epoch(&p.run, &p.rows);
            p.rows.retain(|r| r.epoch as usize <= p.start_epoch);
            restack.push((i, p));
            continue;
        }
        let Prepared {
            spec,
            run,
            mut provenance,
            ..
        } = p;
        let rows = read_metrics(&run.metrics_path())?;
        let epochs_done = resumable_epoch(&run, &rows);
        let mut outcome = match learned {
            Ok(Learned { outcome, net, .. }) => {
                finish_model(&spec, &run, outcome, net, epochs_done)
            }
            Err(reason) => Outcome::Failed { reason },
        };
        if let Outcome::Interrupted { .. } = outcome {
            outcome = Outcome::Interrupted { epochs_done };
        }
        provenance.epoch_seconds = epoch_seconds(&rows);
        let (state, message) = match &outcome {
            Outcome::Done | Outcome::AlreadyDone => (RunState::Done, None),
            Outcome::Interrupted { .. } => {
                (RunState::Interrupted, Some("stopped on request".into()))
            }
            Outcome::Failed { reason } => (RunState::Failed, Some(reason.clone())),
            Outcome::Busy { .. } => unreachable!("a busy run returns before training"),
        };
        if state == RunState::Done {
            provenance.finished = now_rfc3339();
        }
        provenance.write(&run)?;
        run.write_status(&RunStatus {
            state,
            epochs_done,
            message,
        })?;
        reports.push((
            i,
            RunReport {
                id: run.id.clone(),
                dir: run.path.clone(),
                outcome,
                rows,
            },
        ));
    }
    Ok(GroupEnd { reports, restack })
}

/// Makes sure a run whose every epoch is checkpointed has its `model.bpk` (from the trained
/// network, else from the last checkpoint), whatever stopped it after that; the outcome to
/// record.
fn finish_model(
    spec: &RunSpec,
    run: &RunDir,
    outcome: Outcome,
    net: Option<crate::model::Autoencoder>,
    epochs_done: usize,
) -> Outcome {
    let complete = epochs_done >= spec.epochs;
    if matches!(outcome, Outcome::Failed { .. }) || !complete {
        return outcome;
    }
    faults::point(faults::names::BEFORE_MODEL_SAVE, "");
    let saved = match net {
        Some(net) => training::save_model(net, run),
        None if run.model_path().is_file() => Ok(()),
        None => training::restore_model(spec, run, epochs_done),
    };
    match saved {
        Ok(()) => Outcome::Done,
        Err(e) => Outcome::Failed {
            reason: crate::panics::one_line(&format!("cannot save the model: {e:#}")),
        },
    }
}

fn epoch_seconds(rows: &[EpochRow]) -> Vec<f64> {
    let last = rows.iter().map(|r| r.epoch).max().unwrap_or(0);
    (1..=last)
        .map(|e| {
            rows.iter()
                .filter(|r| r.epoch == e)
                .map(|r| r.seconds)
                .sum()
        })
        .collect()
}
