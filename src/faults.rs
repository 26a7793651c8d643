//! Fault injection for the tests: named points where a test can kill the process, or make it
//! panic, at an exact moment, through the `fail` crate. Compiled in only with the `failpoints`
//! cargo feature; in every other build each point is an empty inline function.
//!
//! A point is named `<name>::<what>` (or just `<name>` when `what` is empty), e.g.
//! `durable::before_rename::metrics.parquet`. Armed by the environment with `fail`'s syntax:
//! `FAILPOINTS='durable::before_rename::metrics.parquet=1*off->return'` lets the first write of
//! `metrics.parquet` through and kills the process at the second. Actions: `return` kills the
//! process with SIGKILL (as `kill -9` or the OOM killer would), `panic(msg)` panics there.

/// The points, for the tests and for readers.
pub mod names {
    /// After a file's data is flushed, before it is renamed into place (`what`: file name).
    pub const BEFORE_RENAME: &str = "durable::before_rename";
    /// After the Learner returned with every epoch checkpointed, before `model.bpk` is saved.
    pub const BEFORE_MODEL_SAVE: &str = "train::before_model_save";
    /// At the start of every training step.
    pub const STEP: &str = "train::step";
}

/// Arms the points named in `FAILPOINTS` for this process (first thing in `main`); an error
/// when `FAILPOINTS` is set but this build has no failpoints, so a test cannot pass by
/// silently running without its fault.
pub fn setup() -> Result<(), String> {
    #[cfg(feature = "failpoints")]
    std::mem::forget(fail::FailScenario::setup());
    #[cfg(not(feature = "failpoints"))]
    if std::env::var_os("FAILPOINTS").is_some() {
        return Err("FAILPOINTS is set but this build has no failpoints \
                    (build with `--features failpoints`, as ./scripts/test does)"
            .into());
    }
    Ok(())
}

/// A fault point (see the module docs).
#[inline(always)]
pub fn point(name: &str, what: &str) {
    #[cfg(feature = "failpoints")]
    {
        // No allocation for a plain point: `train::step` runs every batch.
        let armed = if what.is_empty() {
            fail::eval(name, |_| ())
        } else {
            fail::eval(&format!("{name}::{what}"), |_| ())
        };
        if armed.is_some() {
            // SAFETY: raises a signal at this process; SIGKILL cannot be caught.
            unsafe {
                libc::raise(libc::SIGKILL);
            }
        }
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = (name, what);
}
