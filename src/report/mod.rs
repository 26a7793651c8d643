//! What a researcher looks at: text tables ([`tables`]), charts of metrics ([`charts`]) and
//! figures decoded from trained models ([`figures`]). [`plot`] is the entry point that renders
//! every picture of a sweep or a run; [`page`] writes the HTML report of a sweep or a run.

pub mod charts;
pub mod diff;
pub mod figures;
pub mod page;
mod plot;
pub mod repro;
mod style;
pub mod tables;

pub use plot::{plot, plot_diff, sample, PlotTarget};
pub use tables::*;

/// Mean and sample standard deviation (n − 1 denominator; 0 for a single value) of seed
/// results: the spread every report judges noise by.
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}
