//! `vaelab plot`: every picture of a sweep (into `sweeps/<name>/plots/`) or of a run (into
//! `runs/<id>/plots/`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::charts::{Curves, EvalChart, RunData, Tradeoff};
use super::figures::{
    sample_sheet, showcase_indices, Inspector, LatentScatter, Sheet, SAMPLE_SEED,
};
use super::fresh::{drawn, picture_inputs, remember};
use super::kl::{kl_grid, KlHeatmap, KlSchedules};
use super::style::save;
use crate::compare::select::Selection;
use crate::config::params::{describe, param_value, varying_keys};
use crate::data::{Dataset, Mnist, Split};
use crate::model::ModelKind;
use crate::store::{build_info, files_stamp, read_kl_dims, RunRecord, Store, Target};
use crate::sweep::Manifest;

/// Renders every picture of `target`; returns the files written.
pub fn plot(store: &Store, data_dir: &Path, target: &Target) -> Result<Vec<PathBuf>> {
    match target {
        Target::Sweep(name) => {
            let manifest = Manifest::read(&store.sweep_manifest(name)?)?;
            plot_sweep(store, &mut TestSets::new(data_dir), &manifest)
        }
        Target::Run(id) => {
            let run = store.record(id)?;
            let spec = &run.spec;
            let test = Mnist::load_as(spec.dataset, data_dir, Split::Test, None, spec.binarize)?;
            let model = if has_model(store, &run) {
                Some(Inspector::load(&store.run(id), &run.spec)?)
            } else {
                None
            };
            plot_run(store, &test, &run, model.as_ref())
        }
    }
}

/// The test split of each data set, loaded once and only when a picture needs it (a relaunch
/// that draws nothing reads no image).
struct TestSets<'a> {
    data_dir: &'a Path,
    sets: HashMap<Dataset, Mnist>,
}

impl<'a> TestSets<'a> {
    fn new(data_dir: &'a Path) -> Self {
        Self {
            data_dir,
            sets: HashMap::new(),
        }
    }

    fn get(&mut self, dataset: Dataset) -> Result<&Mnist> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.sets.entry(dataset) {
            slot.insert(Mnist::load(dataset, self.data_dir, Split::Test, None)?);
        }
        Ok(&self.sets[&dataset])
    }
}

/// Short label of a run in titles: its model and β (`AE`, `VAE β=3`); a sheet's rows add
/// what else varies among them ([`sheet_labels`]).
fn run_label(run: &RunRecord) -> String {
    match run.spec.model {
        ModelKind::Ae => "AE".to_string(),
        ModelKind::Vae => format!("VAE β={}", run.spec.beta),
        ModelKind::Cvae => format!("CVAE β={}", run.spec.beta),
    }
}

/// Row labels of a sheet showing `runs`: each run's [`run_label`] and every other parameter
/// that varies among them (`VAE β=0.5 latent=8`), so that rows differing in anything but β
/// (a latent size, a KL schedule) do not share a label.
fn sheet_labels(runs: &[&RunData]) -> Vec<String> {
    // β is in `run_label` (and an AE has none); the model too.
    let keys: Vec<&str> = varying_keys(runs.iter().map(|r| &r.spec))
        .into_iter()
        .filter(|k| !matches!(*k, "model" | "beta"))
        .collect();
    runs.iter()
        .map(|r| {
            let mut label = run_label(r);
            for key in &keys {
                label.push_str(&format!(" {key}={}", param_value(&r.spec, key)));
            }
            label
        })
        .collect()
}

fn has_model(store: &Store, run: &RunRecord) -> bool {
    store.run(&run.id).model_path().is_file()
}

/// The runs a sweep's comparison sheets show: the first variant of the manifest at its lowest
/// seed, AE first, then VAEs by β (at most 12).
fn representatives<'a>(store: &Store, runs: &'a [RunData]) -> Vec<&'a RunData> {
    let trained: Vec<&RunData> = runs.iter().filter(|r| has_model(store, r)).collect();
    let Some(first) = trained.first() else {
        return Vec::new();
    };
    let same_variant = |r: &RunData| {
        let (a, b) = (&r.spec, &first.spec);
        (
            a.dataset,
            a.latent,
            &a.hidden,
            a.epochs,
            a.batch_size,
            a.lr,
            a.limit,
        ) == (
            b.dataset,
            b.latent,
            &b.hidden,
            b.epochs,
            b.batch_size,
            b.lr,
            b.limit,
        )
    };
    let seed = trained
        .iter()
        .filter(|r| same_variant(r))
        .map(|r| r.spec.seed)
        .min()
        .unwrap_or(0);
    let mut picked: Vec<&RunData> = trained
        .into_iter()
        .filter(|r| same_variant(r) && r.spec.seed == seed)
        .collect();
    picked.sort_by(|a, b| {
        let key = |r: &RunData| (r.spec.model, r.spec.beta);
        let (ka, kb) = (key(a), key(b));
        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
    });
    picked.truncate(12);
    picked
}

fn plot_sweep(store: &Store, tests: &mut TestSets, manifest: &Manifest) -> Result<Vec<PathBuf>> {
    let out = store.sweep_dir(&manifest.name).join("plots");
    let runs: Vec<RunData> = manifest
        .runs
        .iter()
        .map(|r| store.planned_record(&r.id, &r.spec))
        .collect::<Result<_, _>>()?;
    // Said, not skipped silently: a run with epochs on disk but no model is missing from the
    // sheets until it is finished.
    for r in runs
        .iter()
        .filter(|r| !r.rows.is_empty() && !has_model(store, r))
    {
        eprintln!(
            "note: {} is {} without a trained model, so it is not in the digit sheets; \
             relaunch the sweep to finish it",
            r.id, r.state
        );
    }
    if runs.iter().all(|r| r.rows.is_empty()) {
        bail!(
            "sweep {} has no finished epoch yet; run `vaelab sweep {}` first",
            manifest.name,
            manifest.source
        );
    }
    // Only what changed is drawn again: the sweep's pictures when any run's inputs did, a
    // run's when its own did (a relaunch of a finished sweep draws nothing).
    let mut written = Vec::new();
    let inputs: Vec<PathBuf> = runs
        .iter()
        .flat_map(|r| picture_inputs(store, &r.id))
        .collect();
    let mut stamp_of = inputs.iter().map(PathBuf::as_path).collect::<Vec<_>>();
    let manifest_path = store.manifest_path(&manifest.name);
    stamp_of.push(&manifest_path);
    let stamp = files_stamp(stamp_of, build_info::CODE_FINGERPRINT);
    // Models loaded for the sheets are reused for the per-run figures.
    let mut models: HashMap<String, Inspector> = HashMap::new();
    match drawn(&out, &stamp) {
        Some(files) => written.extend(files),
        None => {
            let files = sweep_pictures(store, tests, manifest, &runs, &mut models)?;
            remember(&out, &stamp, &files)?;
            written.extend(files);
        }
    }
    for run in runs.iter().filter(|r| has_model(store, r)) {
        let out = store.run(&run.id).path.join("plots");
        let inputs = picture_inputs(store, &run.id);
        let stamp = files_stamp(
            inputs.iter().map(PathBuf::as_path),
            build_info::CODE_FINGERPRINT,
        );
        if let Some(files) = drawn(&out, &stamp) {
            written.extend(files);
            continue;
        }
        let model = match models.remove(&run.id) {
            Some(model) => model,
            None => Inspector::load(&store.run(&run.id), &run.spec)?,
        };
        let files = plot_run(store, tests.get(run.spec.dataset)?, run, Some(&model))?;
        remember(&out, &stamp, &files)?;
        written.extend(files);
    }
    Ok(written)
}

/// The sweep's own pictures: the trade-off, curves, evaluation and KL schedule charts, and the
/// digit sheets of its representative runs (their models kept in `models`).
fn sweep_pictures(
    store: &Store,
    tests: &mut TestSets,
    manifest: &Manifest,
    runs: &[RunData],
    models: &mut HashMap<String, Inspector>,
) -> Result<Vec<PathBuf>> {
    let name = &manifest.name;
    let out = store.sweep_dir(name).join("plots");
    let mut written = Vec::new();
    if runs
        .iter()
        .any(|r| r.spec.model.is_variational() && r.last(Split::Test).is_some())
    {
        let title = format!("sweep {name}: reconstruction vs KL across β (final test epoch)");
        written.extend(save(
            &Tradeoff::new(&title, runs)?,
            &out.join("tradeoff"),
            true,
        )?);
    }
    let curves = Curves {
        title: format!("sweep {name}: per-epoch metrics (test solid, train dashed)"),
        runs: runs.to_vec(),
    };
    written.extend(save(&curves, &out.join("curves"), true)?);
    let title = format!("sweep {name}: test-set evaluation across β");
    if let Ok(chart) = EvalChart::new(&title, runs) {
        written.extend(save(&chart, &out.join("evaluation"), true)?);
    }
    // Only VAEs and CVAEs with a finished epoch have a KL schedule to show (else an error).
    let title = format!("sweep {name}: test KL per epoch and the KL schedule of each run");
    if let Ok(chart) = KlSchedules::new(&title, runs) {
        written.extend(save(&chart, &out.join("kl_schedules"), true)?);
    }

    let shown = representatives(store, runs);
    if !shown.is_empty() {
        let test = tests.get(shown[0].spec.dataset)?;
        let digits = showcase_indices(test, 1);
        // What the shown runs share that other runs of the sweep do not (`latent=2` of a
        // latent-size sweep: the sheets show one variant).
        let among: Vec<&str> = varying_keys(shown.iter().map(|r| &r.spec));
        let fixed: Vec<&str> = varying_keys(runs.iter().map(|r| &r.spec))
            .into_iter()
            .filter(|k| !matches!(*k, "model" | "beta" | "seed") && !among.contains(k))
            .collect();
        let variant = if fixed.is_empty() {
            String::new()
        } else {
            format!("{}, ", describe(&shown[0].spec, &fixed))
        };
        let mut recon = Sheet {
            title: format!("sweep {name}: reconstructions of the same test digits"),
            subtitle: format!(
                "top row: input; below: one run each ({variant}seed {}, decoded from the posterior mean)",
                shown[0].spec.seed
            ),
            columns: Vec::new(),
            rows: vec![(
                "input".to_string(),
                digits.iter().map(|&i| test.image(i).to_vec()).collect(),
            )],
        };
        let mut samples = Sheet {
            title: format!("sweep {name}: samples from the prior z ~ N(0, I)"),
            subtitle: format!(
                "the same draws (seed {SAMPLE_SEED}) decoded by each VAE ({variant}seed {})",
                shown[0].spec.seed
            ),
            ..Sheet::default()
        };
        for (run, label) in shown.iter().zip(sheet_labels(&shown)) {
            let model = Inspector::load(&store.run(&run.id), &run.spec)?;
            let model = models.entry(run.id.clone()).or_insert(model);
            recon
                .rows
                .push((label.clone(), model.reconstruct(test, &digits)));
            if model.is_variational() {
                samples
                    .rows
                    .push((label, model.sample(12, SAMPLE_SEED, None)));
            }
        }
        written.extend(save(&recon, &out.join("reconstructions"), false)?);
        if !samples.rows.is_empty() {
            written.extend(save(&samples, &out.join("samples"), false)?);
        }
    }
    Ok(written)
}

/// Per-run pictures: curves and the per-unit KL heat map (from the Parquet rows), and with the
/// run's trained `model` reconstructions, and for a VAE prior samples and a latent traversal;
/// for 2-D latents the latent scatter and the decoded manifold.
fn plot_run(
    store: &Store,
    test: &Mnist,
    run: &RunData,
    model: Option<&Inspector>,
) -> Result<Vec<PathBuf>> {
    let dir = store.run(&run.id);
    let out = dir.path.join("plots");
    let id = &run.id;
    let what = format!("{} {}", id, run_label(run));
    let mut written = Vec::new();
    if !run.rows.is_empty() {
        let curves = Curves {
            title: format!("{what}: per-epoch metrics (test solid, train dashed)"),
            runs: vec![run.clone()],
        };
        written.extend(save(&curves, &out.join("curves"), true)?);
    }
    let kl_dims = read_kl_dims(&dir.kl_dims_path())?;
    if !kl_dims.is_empty() {
        let heatmap = KlHeatmap {
            title: format!("{what}: test KL per latent unit over epochs (nats per image)"),
            grid: kl_grid(&kl_dims),
        };
        // PNG only: over thousands of epochs an SVG of the cells would be megabytes.
        written.extend(save(&heatmap, &out.join("kl_dims"), false)?);
    }
    let Some(model) = model else {
        return Ok(written); // not trained yet: the charts of its rows only
    };
    let digits = showcase_indices(test, 2);
    let (first, second): (Vec<usize>, Vec<usize>) = (
        digits.iter().step_by(2).copied().collect(),
        digits.iter().skip(1).step_by(2).copied().collect(),
    );
    let mut recon = Sheet {
        title: format!("{what}: test digits and their reconstructions"),
        subtitle: "rows: input, reconstruction (decoded from the posterior mean), twice".into(),
        ..Sheet::default()
    };
    for set in [&first, &second] {
        let inputs = set.iter().map(|&i| test.image(i).to_vec()).collect();
        recon.rows.push(("input".into(), inputs));
        recon
            .rows
            .push(("output".into(), model.reconstruct(test, set)));
    }
    written.extend(save(&recon, &out.join("reconstructions"), false)?);
    if !model.is_variational() {
        return Ok(written);
    }

    let draws = model.sample(64, SAMPLE_SEED, None);
    let conditional = if model.is_conditional() {
        ", classes 0-9 in turn"
    } else {
        ""
    };
    let samples = Sheet {
        title: format!("{what}: samples from the prior"),
        subtitle: format!("64 draws of z ~ N(0, I), seed {SAMPLE_SEED}{conditional}"),
        columns: Vec::new(),
        rows: draws
            .chunks(8)
            .map(|c| (String::new(), c.to_vec()))
            .collect(),
    };
    written.extend(save(&samples, &out.join("samples"), false)?);

    // Latent traversal from the first test "8" (the article morphs an 8 into a 3).
    let probe: Vec<usize> = (0..test.len().min(2000)).collect();
    let kl = model.kl_per_dim(test, &probe).unwrap_or_default();
    let mut dims: Vec<usize> = (0..model.latent()).collect();
    dims.sort_by(|a, b| kl[*b].total_cmp(&kl[*a]));
    dims.truncate(10);
    let eight = showcase_indices(test, 1)[8];
    let (start, _) = model.encode(test, &[eight]);
    let values: Vec<f32> = (0..11).map(|k| -3.0 + 0.6 * k as f32).collect();
    let traversal = Sheet {
        title: format!("{what}: latent traversal"),
        subtitle: "from the first test 8; rows: latent components, most active (mean KL, nats) first; columns: the value set".into(),
        columns: values.iter().map(|v| format!("{v:+.1}")).collect(),
        rows: model
            .traverse(&start[0], &dims, &values, test.labels[eight])
            .into_iter()
            .zip(&dims)
            .map(|(images, &d)| (format!("z{} KL {:.2}", d + 1, kl[d]), images))
            .collect(),
    };
    written.extend(save(&traversal, &out.join("traversal"), false)?);

    if model.is_conditional() {
        written.extend(save(
            &sample_sheet(model, test.dataset, &what, 10, SAMPLE_SEED, None),
            &out.join("classes"),
            false,
        )?);
    }
    if model.latent() == 2 && !model.is_conditional() {
        let all: Vec<usize> = (0..test.len().min(5000)).collect();
        let (mu, _) = model.encode(test, &all);
        let scatter = LatentScatter {
            title: format!("{what}: test-set latent means by digit"),
            points: mu
                .iter()
                .zip(all.iter())
                .map(|(z, &i)| (z[0], z[1], test.labels[i]))
                .collect(),
        };
        written.extend(save(&scatter, &out.join("latent"), true)?);
        let grid: Vec<f32> = (0..15).map(|k| -3.0 + 6.0 * k as f32 / 14.0).collect();
        let manifold = Sheet {
            title: format!("{what}: decoded latent manifold"),
            subtitle: "z₁ from -3 (left) to +3 (right), z₂ from +3 (top) to -3 (bottom)".into(),
            columns: Vec::new(),
            rows: grid
                .iter()
                .rev()
                .map(|&z2| {
                    let zs: Vec<Vec<f32>> = grid.iter().map(|&z1| vec![z1, z2]).collect();
                    (String::new(), model.decode(&zs, &[]))
                })
                .collect(),
        };
        written.extend(save(&manifold, &out.join("manifold"), false)?);
    }
    Ok(written)
}

/// Overlays the trade-off curves of two sides of a diff (`vaelab plot --diff A B`) into
/// `<results>/diffs/<A>..<B>/tradeoff.png` and `.svg`.
pub fn plot_diff(
    store: &Store,
    a: &Selection,
    b: &Selection,
    names: (&str, &str),
) -> Result<Vec<PathBuf>> {
    let side = |sel: &Selection| -> Vec<RunData> { sel.runs.to_vec() };
    let title = format!(
        "reconstruction vs KL: {} (A) against {} (B)",
        a.label, b.label
    );
    let mut chart = Tradeoff::new(&title, &side(a))?;
    let other = Tradeoff::new(&title, &side(b))?;
    for line in &mut chart.lines {
        line.label = format!("A: {}", line.label);
    }
    for ae in &mut chart.ae {
        ae.label = format!("A: {}", ae.label);
    }
    chart.lines.extend(other.lines.into_iter().map(|mut l| {
        l.label = format!("B: {}", l.label);
        l
    }));
    chart.ae.extend(other.ae.into_iter().map(|mut l| {
        l.label = format!("B: {}", l.label);
        l
    }));
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let dir = store
        .root()
        .join("diffs")
        .join(format!("{}..{}", safe(names.0), safe(names.1)));
    save(&chart, &dir.join("tradeoff"), true)
}

/// `vaelab sample`: `n` prior draws of run `record` (a CVAE's of class `class`, or `n` of each
/// class) as a PNG sheet, at `out` or in the run's `plots/`; returns the file written.
pub fn sample(
    store: &Store,
    record: &RunRecord,
    class: Option<u8>,
    n: usize,
    seed: u64,
    out: Option<&Path>,
) -> Result<PathBuf> {
    let id = &record.id;
    let model = Inspector::load(&store.run(id), &record.spec)?;
    if !model.is_variational() {
        bail!("{id} is an AE: it has no prior to sample; train model = \"vae\" or \"cvae\"");
    }
    if class.is_some() && !model.is_conditional() {
        bail!(
            "--digit needs a conditional model: {id} is a {}; train model = \"cvae\"",
            record.spec.model
        );
    }
    let stem = match out {
        Some(path) if path.extension().is_some_and(|e| e == "png") => path.with_extension(""),
        Some(path) => bail!(
            "--out {}: the sheet is a PNG; name a .png file",
            path.display()
        ),
        None => {
            let what = match (class, model.is_conditional()) {
                (Some(c), _) => format!("digit-{c}"),
                (None, true) => "classes".to_string(),
                (None, false) => "prior".to_string(),
            };
            store
                .run(id)
                .path
                .join("plots")
                .join(format!("sample-{what}-n{n}-seed{seed}"))
        }
    };
    let what = format!("{id} {}", run_label(record));
    let sheet = sample_sheet(&model, record.spec.dataset, &what, n, seed, class);
    let written = save(&sheet, &stem, false)?;
    Ok(written.into_iter().next().expect("a PNG"))
}
