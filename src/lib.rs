//! vaelab: a research harness for autoencoder experiments.
//!
//! The stages follow the data, and each imports only the stages before it: [`data`] (MNIST,
//! loaders) → [`model`] (AE, VAE, CVAE, stacked) → [`config`] (run specs, the parameter schema,
//! matrices, the pre-flight) → [`store`] (run directories, durable writes, Parquet tables,
//! provenance, run lookup) → [`train`] (a run's life cycle and Burn's Learner) → [`eval`]
//! (test-set likelihoods, active units, the judge) → [`sweep`] (manifests, resumable execution
//! here or on Slurm) → [`compare`] (finding runs, `diff`, `repro`) → [`report`] (tables, plots,
//! the HTML report: rendering only) → [`track`] (exports to trackers: TensorBoard) → [`cli`]
//! (one function per command).
//! Cross-cutting, importing no stage: [`tool`] (running git and other tools), [`panics`]
//! (panics as one-line failures), [`faults`] (failpoints for tests).

pub mod cli;
pub mod compare;
pub mod config;
pub mod data;
pub mod eval;
pub mod faults;
pub mod model;
pub mod panics;
pub mod report;
pub mod store;
pub mod sweep;
pub mod tool;
pub mod track;
pub mod train;

/// The run parameters' defaults and the tracking settings at the crate root, where the
/// command-line grammar (`cli::args`, also compiled into the launcher) finds them.
pub use config::{defaults, tracking};
