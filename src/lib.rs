//! vaelab: a research harness for autoencoder experiments.
//!
//! The modules follow the data: [`config`] (validated run specs) → [`data`] (MNIST) →
//! [`model`] (AE, VAE) → [`train`] (a run's life cycle and Burn's Learner) → [`store`] (run
//! directories, durable writes, Parquet, provenance) → [`sweep`] (manifests, resumable
//! execution here or on Slurm) → [`report`] (tables, plots, diffs, the HTML report) → [`cli`].
//! Cross-cutting: [`panics`] (panics as one-line failures), [`faults`] (failpoints for tests).

pub mod cli;
pub mod config;
pub mod data;
pub mod eval;
pub mod faults;
pub mod model;
pub mod panics;
pub mod report;
pub mod store;
pub mod sweep;
pub mod train;

/// The run parameters' defaults at the crate root, where the command-line grammar
/// (`cli::args`, also compiled into the launcher) finds them.
pub use config::defaults;
