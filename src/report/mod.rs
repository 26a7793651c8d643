//! What a researcher looks at: text tables ([`tables`]), charts of metrics ([`charts`]), of the
//! KL term per latent unit and per schedule ([`kl`]) and figures decoded from trained models
//! ([`figures`]). [`plot`] is the entry point that renders every picture of a sweep or a run;
//! [`page`] writes the HTML report of a sweep or a run.

pub mod charts;
pub mod diff;
pub mod figures;
mod fresh;
pub mod kl;
pub mod page;
mod plot;
pub mod repro;
mod style;
pub mod tables;

pub use fresh::sweep_is_current;
use fresh::sweep_made;
pub use plot::{plot, plot_diff, sample};

/// The statistics the reports show (seed mean and spread), computed in [`crate::compare`].
pub use crate::compare::mean_sd;
pub use tables::*;

/// What a sweep's folder shows once its runs have trained or been evaluated: the pictures
/// (unless `plots` is false: an interrupted sweep or one with nothing trained; a picture that
/// cannot be drawn is a warning) and the report page, whose path is returned. The tables
/// (`sweep::write_tables`) come first. When every picture was drawn, the sweep is recorded as
/// current ([`sweep_is_current`]), so that a relaunch with nothing to do makes none of it again.
pub fn render_sweep(
    store: &crate::store::Store,
    data_dir: &std::path::Path,
    manifest: &crate::sweep::Manifest,
    plots: bool,
) -> anyhow::Result<std::path::PathBuf> {
    let mut drawn = false;
    if plots {
        let target = crate::store::Target::Sweep(manifest.name.clone());
        match plot(store, data_dir, &target) {
            Ok(_) => drawn = true,
            Err(e) => eprintln!("warning: cannot draw the plots: {e:#}"),
        }
    }
    let page = page::write_sweep(store, manifest, false)?;
    if drawn {
        sweep_made(store, manifest)?;
    }
    Ok(page)
}
