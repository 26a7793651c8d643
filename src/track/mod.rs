//! Exporters to the trackers researchers already use, apart from comparing and rendering:
//! TensorBoard event files with the HParams plugin's session data ([`tensorboard`]) and an
//! MLflow tracking server over its REST API ([`mlflow`]). An
//! export reads only what a run has on disk and is idempotent: run again, after more epochs,
//! a resume or an evaluation, it adds only what the tracker does not have yet. The live form
//! during `train` and `sweep` is the same export after every epoch ([`live`]).

pub mod mlflow;
pub mod tensorboard;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::Store;

/// A hook for [`crate::train::TrainOptions::on_epoch`] and the sweep's progress that exports
/// the runs `ids` to the TensorBoard directory `dir` after an epoch, at most every two seconds
/// (the caller exports once more when training ends). A failure is a warning (once per
/// distinct message) and never stops training.
pub fn live(store: Store, ids: Vec<String>, dir: PathBuf) -> crate::train::EpochHook {
    let state = Mutex::new((None::<Instant>, None::<String>));
    Arc::new(move || {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        if state
            .0
            .is_some_and(|t| t.elapsed() < Duration::from_secs(2))
        {
            return;
        }
        state.0 = Some(Instant::now());
        if let Err(e) = tensorboard::export(&store, &ids, &dir) {
            let message = format!("{e:#}");
            if state.1.as_deref() != Some(message.as_str()) {
                eprintln!("warning: cannot write the TensorBoard logs: {message}");
                state.1 = Some(message);
            }
        }
    })
}

/// The same for the MLflow server at `uri`, experiment `experiment` (the runs children of
/// `sweep`'s parent run when given), in a background thread
/// (one at a time, at most every two seconds), so that a slow or unreachable server never
/// slows training: what it could not send is sent by the next export.
pub fn live_mlflow(
    store: Store,
    ids: Vec<String>,
    uri: String,
    experiment: String,
    sweep: Option<String>,
) -> crate::train::EpochHook {
    let busy = Arc::new(AtomicBool::new(false));
    let last = Arc::new(Mutex::new((None::<Instant>, None::<String>)));
    Arc::new(move || {
        {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if last.0.is_some_and(|t| t.elapsed() < Duration::from_secs(2)) {
                return;
            }
            if busy.swap(true, Ordering::AcqRel) {
                return;
            }
            last.0 = Some(Instant::now());
        }
        let (store, ids, uri) = (store.clone(), ids.clone(), uri.clone());
        let (experiment, sweep) = (experiment.clone(), sweep.clone());
        let (busy, last) = (busy.clone(), last.clone());
        std::thread::spawn(move || {
            if let Err(e) = mlflow::export(&store, &ids, &uri, &experiment, sweep.as_deref()) {
                let message = format!("{e:#}");
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                if last.1.as_deref() != Some(message.as_str()) {
                    eprintln!(
                        "warning: cannot send to MLflow (the next export sends it): {message}"
                    );
                    last.1 = Some(message);
                }
            }
            busy.store(false, Ordering::Release);
        });
    })
}
