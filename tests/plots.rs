//! `vaelab plot` on a tiny real sweep: every picture is written, has its size, is not blank and
//! carries rendered text; figures come from the trained models; the notebook executes.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use image::GenericImageView;
use vaelab::data::{Mnist, Split};
use vaelab::report::figures::{showcase_indices, Inspector};
use vaelab::store::Store;
use vaelab::sweep::Manifest;

/// An AE and VAEs at β 0 and 3, latent 2 (so the 2-D figures are drawn too), 2 epochs on 6,000
/// images.
const MATRIX: &str = r#"
[sweep]
name = "pics"
[base]
epochs = 2
limit = 6000
latent = 2
[grid]
model = ["ae", "vae"]
beta = [0.0, 3.0]
"#;

/// Results root holding the trained sweep `pics` and its plots (built once per test binary).
fn results() -> &'static (PathBuf, String) {
    static RESULTS: OnceLock<(PathBuf, String)> = OnceLock::new();
    RESULTS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let matrix = dir.join("pics.toml");
        std::fs::write(&matrix, MATRIX).unwrap();
        let results = dir.join("results");
        let out = common::vaelab(&results, &["--quiet", "sweep", matrix.to_str().unwrap()]);
        assert!(out.status.success(), "{}", common::text(&out));
        let out = common::vaelab(&results, &["plot", "pics"]);
        assert!(out.status.success(), "{}", common::text(&out));
        (results, String::from_utf8(out.stdout).unwrap())
    })
}

fn manifest(results: &Path) -> Manifest {
    Manifest::read(&results.join("sweeps/pics/manifest.toml")).unwrap()
}

/// Luminance of every pixel.
fn luma(path: &Path) -> (u32, u32, Vec<f64>) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (w, h) = img.dimensions();
    let rgb = img.to_rgb8();
    let values = rgb
        .pixels()
        .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
        .collect();
    (w, h, values)
}

/// Checks a PNG: size (exact when given, else at least `min`), not blank, and dark text
/// pixels in its title band (the top 44 rows).
fn check_png(path: &Path, size: Option<(u32, u32)>, min: (u32, u32)) -> Vec<f64> {
    let (w, h, px) = luma(path);
    match size {
        Some(s) => assert_eq!((w, h), s, "{}", path.display()),
        None => assert!(w >= min.0 && h >= min.1, "{}: {w}×{h}", path.display()),
    }
    let mean = px.iter().sum::<f64>() / px.len() as f64;
    let var = px.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / px.len() as f64;
    assert!(
        var > 100.0,
        "{} is blank (variance {var:.1})",
        path.display()
    );
    let title_ink = (0..44.min(h) as usize)
        .flat_map(|y| (0..w as usize).map(move |x| (x, y)))
        .filter(|(x, y)| px[y * w as usize + x] < 110.0)
        .count();
    assert!(
        title_ink > 150,
        "{}: no title text rendered ({title_ink} dark pixels in the title band)",
        path.display()
    );
    px
}

#[test]
fn a_sweep_gets_every_chart_and_sheet() {
    let (results, listing) = results();
    let plots = results.join("sweeps/pics/plots");
    for (name, size) in [("tradeoff", (1200, 800)), ("curves", (1800, 620))] {
        check_png(&plots.join(format!("{name}.png")), Some(size), size);
        let svg = std::fs::read_to_string(plots.join(format!("{name}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<text"),
            "{name}.svg"
        );
        assert!(
            svg.contains("reconstruction"),
            "{name}.svg lacks its axis text"
        );
    }
    // Input row + AE + VAE β=0 + VAE β=3, ten digits each; samples: the two VAEs.
    check_png(&plots.join("reconstructions.png"), None, (10 * 56, 4 * 56));
    check_png(&plots.join("samples.png"), None, (12 * 56, 2 * 56));
    for line in listing.lines() {
        assert!(Path::new(line).is_file(), "listed but missing: {line}");
    }
    assert!(!plots.join(".tradeoff.png").exists());
}

#[test]
fn every_trained_run_gets_its_figures() {
    let (results, _) = results();
    let manifest = manifest(results);
    assert_eq!(manifest.runs.len(), 3);
    for run in &manifest.runs {
        let plots = results.join("runs").join(&run.id).join("plots");
        check_png(&plots.join("curves.png"), Some((1800, 620)), (0, 0));
        check_png(&plots.join("reconstructions.png"), None, (10 * 56, 4 * 56));
        let vae = run.spec.model == vaelab::model::ModelKind::Vae;
        for name in ["samples", "traversal", "latent", "manifold"] {
            assert_eq!(plots.join(format!("{name}.png")).is_file(), vae, "{name}");
        }
        if vae {
            check_png(&plots.join("samples.png"), None, (8 * 56, 8 * 56));
            // Two latent components, eleven values each.
            check_png(&plots.join("traversal.png"), None, (11 * 56, 2 * 56));
            check_png(&plots.join("latent.png"), Some((900, 840)), (0, 0));
            check_png(&plots.join("manifold.png"), None, (15 * 56, 15 * 56));
        }
    }
}

#[test]
fn figures_are_decoded_from_each_runs_own_model() {
    let (results, _) = results();
    let manifest = manifest(results);
    let store = Store::new(results);
    let test = Mnist::load(&common::mnist_dir(), Split::Test, None).unwrap();
    let digits = showcase_indices(&test, 1);
    assert_eq!(
        digits.iter().map(|&i| test.labels[i]).collect::<Vec<_>>(),
        (0..10).collect::<Vec<u8>>()
    );
    let outputs: Vec<Vec<Vec<f32>>> = manifest
        .runs
        .iter()
        .map(|run| {
            Inspector::load(&store.run(&run.id), run)
                .unwrap()
                .reconstruct(&test, &digits)
        })
        .collect();
    // Trained models reconstruct: closer to the input than a blank image is, the AE (no KL
    // pressure) far closer.
    for (run, out) in manifest.runs.iter().zip(&outputs) {
        let err: f32 = out
            .iter()
            .zip(&digits)
            .map(|(o, &i)| {
                o.iter()
                    .zip(test.image(i))
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f32>()
            })
            .sum();
        let blank: f32 = digits
            .iter()
            .map(|&i| test.image(i).iter().map(|v| v * v).sum::<f32>())
            .sum();
        let bound = match run.spec.model {
            vaelab::model::ModelKind::Ae => 0.6,
            vaelab::model::ModelKind::Vae => 0.9,
        };
        eprintln!(
            "{} {} beta {}: error {err:.1}, blank {blank:.1}",
            run.id, run.spec.model, run.spec.beta
        );
        assert!(
            err < bound * blank,
            "{}: error {err} vs blank {blank}",
            run.id
        );
    }
    assert_ne!(outputs[0], outputs[1]);
    assert_ne!(outputs[1], outputs[2]);
    // And the pictures differ with the run.
    let png = |k: usize| {
        luma(
            &results
                .join("runs")
                .join(&manifest.runs[k].id)
                .join("plots/reconstructions.png"),
        )
        .2
    };
    assert_ne!(png(0), png(1));
}

#[test]
fn plotting_an_unknown_name_lists_what_exists() {
    let (results, _) = results();
    let out = common::vaelab(results, &["plot", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no sweep or run named \"nosuch\"") && err.contains("sweeps: pics"),
        "{err}"
    );
}

#[test]
fn the_notebook_executes_against_the_sweep_tables() {
    let (results, _) = results();
    let jupyter = vaelab::data::cache_dir().join("py/bin/jupyter");
    assert!(
        jupyter.is_file(),
        "{} is missing: run ./scripts/setup",
        jupyter.display()
    );
    let out_dir = tempfile::tempdir().unwrap();
    let notebook = Path::new(env!("CARGO_MANIFEST_DIR")).join("notebooks/sweep.ipynb");
    let out = Command::new(&jupyter)
        .args(["nbconvert", "--to", "notebook", "--execute"])
        .arg("--output-dir")
        .arg(out_dir.path())
        .arg(&notebook)
        .env("VAELAB_SWEEP", results.join("sweeps/pics"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let executed = std::fs::read_to_string(out_dir.path().join("sweep.ipynb")).unwrap();
    assert!(
        executed.contains("pics: 3 runs, 12 epoch rows"),
        "notebook output missing"
    );
    check_png(
        &results.join("sweeps/pics/plots/tradeoff-notebook.png"),
        Some((900, 600)),
        (0, 0),
    );
}
