//! `vaelab plot` on a tiny real sweep: every picture is written, has its size, is not blank and
//! carries rendered text, and no temporary is left beside it; the charts' SVG points and lines
//! sit where the sweep's tables put them; figures come from the trained models; the notebook
//! executes.
mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use image::GenericImageView;
use vaelab::data::{Mnist, Split};
use vaelab::report::figures::{showcase_indices, Inspector};
use vaelab::store::{read_metrics, read_parquet, EpochRow, Store};
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
    let sheets = [
        "tradeoff.png",
        "tradeoff.svg",
        "curves.png",
        "curves.svg",
        "reconstructions.png",
        "samples.png",
        "evaluation.png",
        "evaluation.svg",
        "kl_schedules.png",
        "kl_schedules.svg",
    ];
    // The notebook test writes its own chart here too, perhaps while this test runs.
    only_pictures(&plots, &sheets, &["tradeoff-notebook.png"]);
    let listed: BTreeSet<PathBuf> = listing
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.parent() == Some(plots.as_path()))
        .collect();
    let wanted: BTreeSet<PathBuf> = sheets.iter().map(|n| plots.join(n)).collect();
    assert_eq!(listed, wanted, "the sweep's pictures `vaelab plot` lists");
}

/// Asserts that `dir` holds exactly the pictures `names` (plus perhaps `optional`): no
/// temporary is left behind, whatever its name (`save` renders each file under a hidden
/// temporary name, `.<stem>.<pid>.<ext>`, then renames it).
fn only_pictures(dir: &Path, names: &[&str], optional: &[&str]) {
    let found: BTreeSet<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let stray: Vec<&String> = found
        .iter()
        .filter(|n| n.starts_with('.') || !names.iter().chain(optional).any(|m| m == n))
        .collect();
    assert!(
        stray.is_empty(),
        "{}: leftover or unexpected files {stray:?} (all: {found:?})",
        dir.display()
    );
    let missing: Vec<&&str> = names.iter().filter(|n| !found.contains(**n)).collect();
    assert!(missing.is_empty(), "{}: missing {missing:?}", dir.display());
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
        let mut names = vec!["curves.png", "curves.svg", "reconstructions.png"];
        if vae {
            names.extend([
                "samples.png",
                "traversal.png",
                "latent.png",
                "latent.svg",
                "manifold.png",
                "kl_dims.png",
            ]);
        }
        only_pictures(&plots, &names, &[]);
        for name in ["samples", "traversal", "latent", "manifold"] {
            assert_eq!(plots.join(format!("{name}.png")).is_file(), vae, "{name}");
        }
        if vae {
            check_png(&plots.join("samples.png"), None, (8 * 56, 8 * 56));
            // Two latent components, eleven values each.
            check_png(&plots.join("traversal.png"), None, (11 * 56, 2 * 56));
            check_png(&plots.join("latent.png"), Some((900, 840)), (0, 0));
            check_png(&plots.join("manifold.png"), None, (15 * 56, 15 * 56));
            check_png(&plots.join("kl_dims.png"), None, (400, 200));
        }
    }
}

#[test]
fn figures_are_decoded_from_each_runs_own_model() {
    let (results, _) = results();
    let manifest = manifest(results);
    let store = Store::new(results);
    let test = Mnist::load(
        vaelab::data::Dataset::Mnist,
        &common::mnist_dir(),
        Split::Test,
        None,
    )
    .unwrap();
    let digits = showcase_indices(&test, 1);
    assert_eq!(
        digits.iter().map(|&i| test.labels[i]).collect::<Vec<_>>(),
        (0..10).collect::<Vec<u8>>()
    );
    let outputs: Vec<Vec<Vec<f32>>> = manifest
        .runs
        .iter()
        .map(|run| {
            Inspector::load(&store.run(&run.id), &run.spec)
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
            vaelab::model::ModelKind::Vae | vaelab::model::ModelKind::Cvae => 0.9,
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

/// A run's row of `summary.parquet`.
#[derive(Debug)]
struct SummaryRow {
    id: String,
    model: String,
    beta: f64,
    test_recon: Option<f64>,
    test_kl: Option<f64>,
    test_loss: Option<f64>,
}

fn summary(results: &Path) -> Vec<SummaryRow> {
    let df = read_parquet(&results.join("sweeps/pics/summary.parquet")).unwrap();
    let n = df.height();
    let strs = |name: &str| -> Vec<String> {
        let c = df.column(name).unwrap().str().unwrap();
        (0..n).map(|i| c.get(i).unwrap().to_string()).collect()
    };
    let f64s = |name: &str| -> Vec<Option<f64>> {
        let c = df.column(name).unwrap().f64().unwrap();
        (0..n).map(|i| c.get(i)).collect()
    };
    let (ids, models, betas) = (strs("run_id"), strs("model"), f64s("beta"));
    let (recon, kl, loss) = (f64s("test_recon"), f64s("test_kl"), f64s("test_loss"));
    (0..n)
        .map(|i| SummaryRow {
            id: ids[i].clone(),
            model: models[i].clone(),
            beta: betas[i].unwrap(),
            test_recon: recon[i],
            test_kl: kl[i],
            test_loss: loss[i],
        })
        .collect()
}

/// One element of an SVG file as plotters writes it: tag, attributes, text content.
#[derive(Debug)]
struct Element {
    tag: String,
    attrs: HashMap<String, String>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> &str {
        self.attrs
            .get(name)
            .unwrap_or_else(|| panic!("<{}> without {name}: {self:?}", self.tag))
    }

    fn num(&self, name: &str) -> f64 {
        self.attr(name)
            .parse()
            .unwrap_or_else(|e| panic!("<{}> {name}: {e}: {self:?}", self.tag))
    }

    /// The vertices of a `<polyline>`.
    fn points(&self) -> Vec<(f64, f64)> {
        self.attr("points")
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }
}

/// The elements of `svg` (plotters writes one flat list, one element per tag).
fn svg_elements(svg: &str) -> Vec<Element> {
    svg.split('<')
        .skip(1)
        .filter(|chunk| !chunk.starts_with('/') && !chunk.starts_with('?'))
        .map(|chunk| {
            let (head, text) = chunk.split_once('>').unwrap_or((chunk, ""));
            let head = head.trim_end_matches('/');
            let (tag, mut rest) = head.split_once(char::is_whitespace).unwrap_or((head, ""));
            let mut attrs = HashMap::new();
            while let Some((name, after)) = rest.split_once("=\"") {
                let (value, after) = after.split_once('"').unwrap();
                attrs.insert(name.trim().to_string(), value.to_string());
                rest = after;
            }
            Element {
                tag: tag.to_string(),
                attrs,
                text: text.trim().to_string(),
            }
        })
        .collect()
}

/// A linear map between data values and pixels along one axis, read from the tick labels.
#[derive(Debug)]
struct Axis {
    /// (value, pixel) of the lowest and the highest tick.
    lo: (f64, f64),
    hi: (f64, f64),
}

/// Pixels a plotted point may be off its exact place (plotters truncates coordinates).
const PIXEL_TOLERANCE: f64 = 2.5;

impl Axis {
    /// From the numeric tick labels among `elements` anchored `anchor` (`middle`: the x axis
    /// labels, centred under their tick; `end`: the y axis labels, ending left of their tick),
    /// their tick's pixel read from attribute `coord`.
    fn from_ticks(elements: &[Element], anchor: &str, coord: &str) -> Self {
        Self::from_ticks_in(elements, anchor, coord, |_, _| true)
    }

    /// The same, from the labels at (x, y) with `keep(x, y)` only (one panel of several).
    fn from_ticks_in(
        elements: &[Element],
        anchor: &str,
        coord: &str,
        keep: impl Fn(f64, f64) -> bool,
    ) -> Self {
        let mut ticks: Vec<(f64, f64)> = elements
            .iter()
            .filter(|e| {
                e.tag == "text" && e.attrs.get("text-anchor").map(String::as_str) == Some(anchor)
            })
            .filter(|e| keep(e.num("x"), e.num("y")))
            .filter_map(|e| Some((e.text.parse::<f64>().ok()?, e.num(coord))))
            .collect();
        ticks.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            ticks.len() >= 2,
            "fewer than two {anchor} tick labels: {ticks:?}"
        );
        let axis = Self {
            lo: ticks[0],
            hi: ticks[ticks.len() - 1],
        };
        for &(value, pixel) in &ticks {
            assert!(
                (axis.pixel(value) - pixel).abs() <= PIXEL_TOLERANCE,
                "tick {value} at {pixel} is off the axis {axis:?}"
            );
        }
        axis
    }

    fn pixel(&self, value: f64) -> f64 {
        self.lo.1 + (value - self.lo.0) * (self.hi.1 - self.lo.1) / (self.hi.0 - self.lo.0)
    }

    fn value(&self, pixel: f64) -> f64 {
        self.lo.0 + (pixel - self.lo.1) * (self.hi.0 - self.lo.0) / (self.hi.1 - self.lo.1)
    }
}

/// The trade-off chart draws `summary.parquet`: one point per finished VAE run at (final test
/// KL, final test reconstruction error) labelled with its β, joined in β order, and the AE's
/// final test reconstruction error as a dashed horizontal line.
#[test]
fn the_tradeoff_chart_plots_the_summary_table() {
    let (results, _) = results();
    let runs = summary(results);
    assert_eq!(runs.len(), 3, "{runs:?}");
    let svg = std::fs::read_to_string(results.join("sweeps/pics/plots/tradeoff.svg")).unwrap();
    let elements = svg_elements(&svg);
    let (x, y) = (
        Axis::from_ticks(&elements, "middle", "x"),
        Axis::from_ticks(&elements, "end", "y"),
    );
    // Pixels grow rightwards with KL and upwards (smaller y) with the error.
    assert!(x.hi.1 > x.lo.1 && y.hi.1 < y.lo.1, "axes {x:?} {y:?}");
    let data = |(px, py): (f64, f64)| (x.value(px), y.value(py));

    let mut vaes: Vec<&SummaryRow> = runs
        .iter()
        .filter(|r| r.model == "vae" && r.test_loss.is_some())
        .collect();
    vaes.sort_by(|a, b| a.beta.total_cmp(&b.beta));
    // One seed per β here, so every VAE run is a point of its own.
    assert_eq!(
        vaes.iter().map(|r| r.beta).collect::<Vec<_>>(),
        [0.0, 3.0],
        "{runs:?}"
    );
    let circles: Vec<(f64, f64)> = elements
        .iter()
        .filter(|e| e.tag == "circle")
        .map(|e| (e.num("cx"), e.num("cy")))
        .collect();
    assert_eq!(
        circles.len(),
        vaes.len(),
        "one point per VAE run with a final test epoch; points at (KL, recon) {:?}",
        circles.iter().map(|&c| data(c)).collect::<Vec<_>>()
    );
    let near = |a: (f64, f64), b: (f64, f64)| {
        (a.0 - b.0).abs() <= PIXEL_TOLERANCE && (a.1 - b.1).abs() <= PIXEL_TOLERANCE
    };
    let betas: Vec<(f64, (f64, f64))> = elements
        .iter()
        .filter(|e| e.tag == "text")
        .filter_map(|e| {
            Some((
                e.text.strip_prefix("β=")?.parse().ok()?,
                (e.num("x"), e.num("y")),
            ))
        })
        .collect();
    let mut expected = Vec::new();
    for run in &vaes {
        let (kl, recon) = (run.test_kl.unwrap(), run.test_recon.unwrap());
        let at = (x.pixel(kl), y.pixel(recon));
        let point = circles
            .iter()
            .copied()
            .find(|&c| near(c, at))
            .unwrap_or_else(|| {
                panic!(
                "run {} (β {}) has test KL {kl:.3}, recon {recon:.3}: no point at pixel {at:?}; \
                 the points are at (KL, recon) {:?}",
                run.id,
                run.beta,
                circles.iter().map(|&c| data(c)).collect::<Vec<_>>()
            )
            });
        // Its label is the label nearest to it.
        let label = betas
            .iter()
            .min_by(|a, b| {
                let d = |p: (f64, f64)| (p.0 - point.0).hypot(p.1 - point.1);
                d(a.1).total_cmp(&d(b.1))
            })
            .unwrap_or_else(|| panic!("no β labels in the chart"));
        assert_eq!(label.0, run.beta, "label next to run {}'s point", run.id);
        expected.push(point);
    }
    // The line joins the points in β order.
    let lines: Vec<Vec<(f64, f64)>> = elements
        .iter()
        .filter(|e| e.tag == "polyline")
        .map(Element::points)
        .filter(|p| {
            p.len() == expected.len() && p.iter().all(|&q| circles.iter().any(|&c| near(c, q)))
        })
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.iter().zip(&expected).all(|(&a, &b)| near(a, b))),
        "no line through the points {expected:?} in β order: {lines:?}"
    );

    // The AE: a dashed horizontal line, the most dashes at one height.
    let ae: Vec<&SummaryRow> = runs.iter().filter(|r| r.model == "ae").collect();
    assert_eq!(ae.len(), 1);
    let recon = ae[0].test_recon.expect("the AE has a final test epoch");
    let mut dashes: HashMap<i64, usize> = HashMap::new();
    for e in elements.iter().filter(|e| e.tag == "polyline") {
        if let [a, b] = e.points()[..] {
            if a.1 == b.1 {
                *dashes.entry(a.1 as i64).or_default() += 1;
            }
        }
    }
    let (&height, &count) = dashes
        .iter()
        .max_by_key(|(_, &n)| n)
        .expect("no dashed line");
    assert!(count >= 10, "no dashed line: {dashes:?}");
    assert!(
        (height as f64 - y.pixel(recon)).abs() <= PIXEL_TOLERANCE,
        "the AE line is at recon {:.3}, the AE's final test recon is {recon:.3}",
        y.value(height as f64)
    );
}

/// Distance of `p` from the segment `a`–`b`.
fn off_segment(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let t = (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
    (p.0 - a.0 - t * dx).hypot(p.1 - a.1 - t * dy)
}

/// The sweep's curves chart draws every run's `metrics.parquet`: in each panel (recon, KL,
/// loss) a solid line through the run's test values per epoch and a dashed one, in the same
/// colour, through its train values.
#[test]
fn the_curves_chart_plots_every_runs_metrics() {
    let (results, _) = results();
    let store = Store::new(results);
    let manifest = manifest(results);
    let svg = std::fs::read_to_string(results.join("sweeps/pics/plots/curves.svg")).unwrap();
    let elements = svg_elements(&svg);
    let polylines: Vec<(&str, Vec<(f64, f64)>)> = elements
        .iter()
        .filter(|e| e.tag == "polyline")
        .map(|e| (e.attr("stroke"), e.points()))
        .collect();
    type Metric = fn(&EpochRow) -> Option<f64>;
    let panels: [(&str, Metric); 3] = [
        ("reconstruction error", |r| Some(r.recon)),
        ("KL divergence", |r| r.kl),
        ("loss = recon + β·KL", |r| Some(r.loss)),
    ];
    // Each panel is centred under its caption; a tick label belongs to the nearest caption.
    let centres: Vec<f64> = panels
        .iter()
        .map(|(caption, _)| {
            let found: Vec<&Element> = elements
                .iter()
                .filter(|e| e.tag == "text" && e.text == *caption)
                .collect();
            assert_eq!(found.len(), 1, "caption {caption:?}");
            found[0].num("x")
        })
        .collect();
    let panel_of = |x: f64| {
        (0..centres.len())
            .min_by(|&a, &b| (centres[a] - x).abs().total_cmp(&(centres[b] - x).abs()))
            .unwrap()
    };
    for (k, (caption, metric)) in panels.iter().enumerate() {
        let inside = |x: f64, _: f64| panel_of(x) == k;
        let ex = Axis::from_ticks_in(&elements, "middle", "x", inside);
        let ey = Axis::from_ticks_in(&elements, "end", "y", inside);
        let at = |row: &EpochRow| -> Option<(f64, f64)> {
            Some((ex.pixel(f64::from(row.epoch)), ey.pixel(metric(row)?)))
        };
        let mut drawn = 0;
        for run in &manifest.runs {
            let rows = read_metrics(&store.run(&run.id).metrics_path()).unwrap();
            let line = |split: Split| -> Vec<(f64, f64)> {
                let mut rows: Vec<&EpochRow> = rows.iter().filter(|r| r.split == split).collect();
                rows.sort_by_key(|r| r.epoch);
                rows.into_iter().filter_map(at).collect()
            };
            let (test, train) = (line(Split::Test), line(Split::Train));
            if test.is_empty() {
                assert!(
                    metric(&rows[0]).is_none(),
                    "{caption}: run {} has no values",
                    run.id
                );
                continue;
            }
            assert_eq!((test.len(), train.len()), (2, 2), "{caption}: {}", run.id);
            drawn += 1;
            let solid = polylines
                .iter()
                .find(|(_, p)| {
                    p.len() == test.len()
                        && p.iter().zip(&test).all(|(a, b)| {
                            (a.0 - b.0).abs() <= PIXEL_TOLERANCE
                                && (a.1 - b.1).abs() <= PIXEL_TOLERANCE
                        })
                })
                .unwrap_or_else(|| {
                    panic!(
                        "{caption}: no test line of run {} {} β {} at {test:?}",
                        run.id, run.spec.model, run.spec.beta
                    )
                });
            // Its dashes: short pieces on the train segment in the run's colour, from the
            // first epoch to the last (a gap of the dash pattern at most short of it).
            let dashes: Vec<&Vec<(f64, f64)>> = polylines
                .iter()
                .filter(|(stroke, p)| {
                    *stroke == solid.0
                        && p.len() == 2
                        && p.iter()
                            .all(|&q| off_segment(q, train[0], train[1]) <= PIXEL_TOLERANCE)
                })
                .map(|(_, p)| p)
                .collect();
            let xs = || dashes.iter().flat_map(|p| p.iter().map(|q| q.0));
            let from = xs().min_by(f64::total_cmp).unwrap_or(f64::NAN);
            let to = xs().max_by(f64::total_cmp).unwrap_or(f64::NAN);
            assert!(
                dashes.len() >= 10
                    && from <= train[0].0 + PIXEL_TOLERANCE
                    && to >= train[1].0 - 12.0,
                "{caption}: no dashed train line of run {} {} β {} along {train:?} ({} dashes \
                 there, from x {from} to {to})",
                run.id,
                run.spec.model,
                run.spec.beta,
                dashes.len()
            );
        }
        // And no other coloured line from the first epoch to the last.
        let solids = polylines
            .iter()
            .filter(|(stroke, p)| {
                *stroke != "#000000"
                    && p.len() >= 2
                    && panel_of(p[0].0) == k
                    && (p[0].0 - ex.pixel(1.0)).abs() <= PIXEL_TOLERANCE
                    && (p[p.len() - 1].0 - ex.pixel(2.0)).abs() <= PIXEL_TOLERANCE
            })
            .count();
        assert_eq!(solids, drawn, "{caption}: test lines");
    }
}

/// Every file's modification time under `dirs` (pictures and pages), by path.
fn mtimes(dirs: &[PathBuf]) -> HashMap<PathBuf, std::time::SystemTime> {
    dirs.iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let t = std::fs::metadata(&p).unwrap().modified().unwrap();
            (p, t)
        })
        .collect()
}

/// A relaunch of a finished sweep writes nothing again (tables, pictures, pages); a picture
/// deleted, or a run whose table changed, is drawn again with only what depends on it (that run's pictures and page, and for
/// a changed table the sweep's pictures), the rest left as it was.
#[test]
fn a_relaunch_draws_again_only_what_changed() {
    let scratch = tempfile::tempdir().unwrap();
    let matrix = scratch.path().join("fresh.toml");
    std::fs::write(
        &matrix,
        "[sweep]\nname = \"fresh\"\n[base]\nmodel = \"vae\"\nepochs = 1\nlimit = 600\nhidden = [16]\n[grid]\nbeta = [1.0, 3.0]\n[eval]\nk = []\n",
    )
    .unwrap();
    let results = scratch.path().join("results");
    let relaunch = || {
        let out = common::vaelab(&results, &["--quiet", "sweep", matrix.to_str().unwrap()]);
        assert!(out.status.success(), "{}", common::text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    relaunch();
    let store = Store::new(&results);
    let ids = store.run_ids().unwrap();
    let (a, b) = (&ids[0], &ids[1]);
    let dirs = |id: &str| {
        [
            store.run(id).path.join("plots"),
            store.run(id).path.join("report"),
        ]
    };
    let sweep_plots = store.sweep_dir("fresh").join("plots");
    let all: Vec<PathBuf> = [dirs(a), dirs(b)]
        .concat()
        .into_iter()
        .chain([sweep_plots.clone()])
        .collect();
    let before = mtimes(&all);
    assert!(before.len() > 10, "{before:?}");
    let tables = [
        store.sweep_dir("fresh").join("summary.parquet"),
        store.sweep_dir("fresh").join("report"),
    ];
    let tables_before = mtimes(&tables[1..]);
    let summary_before = std::fs::metadata(&tables[0]).unwrap().modified().unwrap();
    assert!(relaunch().contains("(nothing changed)"));
    assert_eq!(
        mtimes(&all),
        before,
        "a no-op relaunch drew something again"
    );
    assert_eq!(
        mtimes(&tables[1..]),
        tables_before,
        "the sweep page was written again"
    );
    assert_eq!(
        std::fs::metadata(&tables[0]).unwrap().modified().unwrap(),
        summary_before,
        "the sweep's tables were written again"
    );

    // A deleted picture of run a: run a's pictures and page again, nothing else.
    std::fs::remove_file(store.run(a).path.join("plots/curves.png")).unwrap();
    assert!(!relaunch().contains("(nothing changed)"));
    let after = mtimes(&all);
    for (path, t) in &after {
        let of_a = path.starts_with(&store.run(a).path);
        assert_eq!(before.get(path) != Some(t), of_a, "{}", path.display());
    }

    // A deleted picture of the sweep: drawn again, with the sweep's page.
    let tradeoff = sweep_plots.join("tradeoff.png");
    std::fs::remove_file(&tradeoff).unwrap();
    assert!(!relaunch().contains("(nothing changed)"));
    assert!(tradeoff.is_file());
    let after = mtimes(&all);

    // Run b's table rewritten (the same rows, a new file): b's pictures and page, and the
    // sweep's pictures, again; a's as they were.
    let path = store.run(b).metrics_path();
    let rows = read_metrics(&path).unwrap();
    vaelab::store::write_metrics(&path, &rows).unwrap();
    relaunch();
    for (path, t) in &mtimes(&all) {
        let redrawn = path.starts_with(&store.run(b).path) || path.starts_with(&sweep_plots);
        assert_eq!(after.get(path) != Some(t), redrawn, "{}", path.display());
    }
}
