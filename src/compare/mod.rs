//! Comparisons: finding runs and one side of a comparison ([`select`]), two sets of runs paired
//! by their parameters ([`diff`]), and the article's published tables beside ours ([`repro`]).
//! Numbers only: `report` renders them.

pub mod diff;
pub mod repro;
pub mod select;

/// Mean and sample standard deviation (n − 1 denominator; 0 for a single value) of seed
/// results: the spread every comparison judges noise by.
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}
