//! What a researcher looks at: text tables ([`tables`]), charts of metrics ([`charts`]) and
//! figures decoded from trained models ([`figures`]). [`plot`] is the entry point that renders
//! every picture of a sweep or a run.

pub mod charts;
pub mod diff;
pub mod figures;
mod plot;
pub mod repro;
mod style;
pub mod tables;

pub use plot::{plot, plot_diff, PlotTarget};
pub use tables::*;
