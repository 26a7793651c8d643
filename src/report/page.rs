//! `vaelab report`: one self-contained HTML page per sweep (`sweeps/<name>/report/index.html`)
//! and per run (`runs/<id>/report/index.html`), and `vaelab diff --format html`.
//!
//! A page needs nothing but a browser: CSS and the table's JavaScript are inline, the charts
//! are inline SVG drawn from the runs' Parquet rows, and the digit sheets are the PNGs of
//! `vaelab plot` beside it (linked relatively, so copying the sweep folder keeps them). While a
//! sweep runs, its page is rewritten (atomically) after every epoch and reloads itself; the
//! last write, when the sweep ends, stops the reloading. The templates are in `templates/`
//! (minijinja).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use minijinja::{context, Environment, Value};
use serde::Serialize;

use super::charts::{Curves, Tradeoff};
use super::style::svg;
use super::tables::{duration, epoch_table, eval_classes_table, eval_dims_table, eval_table};
use crate::compare::diff::Diff;
use crate::config::params::{describe, param_named, param_value, varying_keys, PARAM_KEYS};
use crate::data::Split;
use crate::model::ModelKind;
use crate::store::{durable, now_rfc3339, RunRecord, RunState, Store};
use crate::sweep::{eta_seconds, progress, Manifest};

/// How often the page of a running sweep or run reloads itself.
pub const REFRESH_SECONDS: u32 = 15;

const CSS: &str = include_str!("templates/page.css");
const JS: &str = include_str!("templates/table.js");

fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, text) in [
        ("base.html", include_str!("templates/base.html")),
        ("sweep.html", include_str!("templates/sweep.html")),
        ("run.html", include_str!("templates/run.html")),
        ("diff.html", include_str!("templates/diff.html")),
    ] {
        env.add_template(name, text).expect("the templates parse");
    }
    env
}

/// `results/sweeps/<name>/report/index.html`.
pub fn sweep_page(store: &Store, name: &str) -> PathBuf {
    store.sweep_dir(name).join("report").join("index.html")
}

/// `results/runs/<id>/report/index.html`.
pub fn run_page(store: &Store, id: &str) -> PathBuf {
    store.run(id).path.join("report").join("index.html")
}

/// A parameter's value in the run table: as a matrix writes it, but `-` for the β of an AE
/// (it has no KL term), so that filtering on β = 0 finds the VAEs at β = 0 only.
fn cell_value(spec: &crate::config::RunSpec, key: &str) -> String {
    if key == "beta" && spec.model == ModelKind::Ae {
        return "-".into();
    }
    param_value(spec, key)
}

/// The parameters a table shows as text (left-aligned, compared as strings).
fn is_text(key: &str) -> bool {
    param_named(key).is_some_and(|p| p.kind.is_text())
}

#[derive(Serialize)]
struct Cell {
    key: &'static str,
    value: String,
    text: bool,
}

#[derive(Serialize)]
struct Metric {
    key: &'static str,
    /// Full precision, for sorting and for tests; empty when absent.
    value: String,
    /// Three decimals, for people.
    shown: String,
}

#[derive(Serialize)]
struct Row {
    id: String,
    href: String,
    params: Vec<Cell>,
    state: &'static str,
    epochs_done: u32,
    epochs: usize,
    metrics: Vec<Metric>,
    note: String,
}

#[derive(Serialize)]
struct Picture {
    src: String,
    caption: String,
}

/// Final metrics of the run table, in column order: the last epoch's, then the test-set
/// evaluation's (`vaelab eval`; nats per image, units, share of judged draws).
const METRICS: [&str; 10] = [
    "test_recon",
    "test_kl",
    "test_loss",
    "train_recon",
    "train_kl",
    "train_loss",
    "test_elbo",
    "iwae_1000",
    "active_units",
    "judged_accuracy",
];

fn metric(record: &RunRecord, key: &'static str) -> Metric {
    let value = record.result(key);
    let digits = if key == "active_units" { 0 } else { 3 };
    Metric {
        key,
        value: value.map_or(String::new(), |v| v.to_string()),
        shown: value.map_or("-".into(), |v| format!("{v:.digits$}")),
    }
}

/// One line on what to do about a run that is not done.
fn note(record: &RunRecord, source: &str) -> String {
    match record.state {
        RunState::Failed => record.message.clone().unwrap_or_else(|| "failed".into()),
        RunState::Interrupted => format!("resume: vaelab sweep {source}"),
        RunState::Running => "training now".into(),
        _ => String::new(),
    }
}

/// A sweep's hook ([`crate::sweep::SweepOptions::on_progress`]) that rewrites its page as a
/// live one, at most every two seconds (the hook runs after every epoch and every poll of the
/// workers). A failure to write it is a warning and never stops training.
pub fn live(store: Store, manifest: Manifest) -> crate::train::EpochHook {
    let throttle = crate::train::Throttle::every(std::time::Duration::from_secs(2));
    std::sync::Arc::new(move || {
        if !throttle.due() {
            return;
        }
        if let Err(e) = write_sweep(&store, &manifest, true) {
            eprintln!("warning: cannot write the report: {e:#}");
        }
    })
}

/// Writes the report of sweep `manifest`: `live` when a sweep is still training it (the page
/// then reloads itself); returns the page's path. Also writes the page of each run that is
/// training or has none yet (all of them when not `live`).
pub fn write_sweep(store: &Store, manifest: &Manifest, live: bool) -> Result<PathBuf> {
    // A run that cannot be read is shown as failed, with the reason (never left out).
    let (records, unreadable): (Vec<RunRecord>, Vec<Option<String>>) = manifest
        .runs
        .iter()
        .map(|r| match store.planned_record(&r.id, &r.spec) {
            Ok(record) => (record, None),
            Err(u) => (
                RunRecord {
                    id: r.id.clone(),
                    spec: r.spec.clone(),
                    provenance: None,
                    state: RunState::Failed,
                    message: None,
                    rows: Vec::new(),
                    eval: Vec::new(),
                },
                Some(format!("unreadable: {u}")),
            ),
        })
        .unzip();
    let live = live || records.iter().any(|r| r.state == RunState::Running);
    let keys = varying_keys(manifest.runs.iter().map(|r| &r.spec));
    let rows: Vec<Row> = records
        .iter()
        .zip(&unreadable)
        .map(|(r, unreadable)| {
            Row {
                id: r.id.clone(),
                // Only runs that have started get a page.
                href: if r.state == RunState::Queued || unreadable.is_some() {
                    String::new()
                } else {
                    format!("../../../runs/{}/report/index.html", r.id)
                },
                params: keys
                    .iter()
                    .map(|k| Cell {
                        key: k,
                        value: cell_value(&r.spec, k),
                        text: is_text(k),
                    })
                    .collect(),
                state: r.state.as_str(),
                epochs_done: r.last(Split::Test).map_or(0, |t| t.epoch),
                epochs: r.spec.epochs,
                metrics: METRICS.iter().map(|m| metric(r, m)).collect(),
                note: unreadable
                    .clone()
                    .unwrap_or_else(|| note(r, &manifest.source)),
            }
        })
        .collect();
    let filters: Vec<Value> = keys
        .iter()
        .map(|k| {
            let values: BTreeSet<String> = records.iter().map(|r| cell_value(&r.spec, k)).collect();
            context! { key => k, values => values.into_iter().collect::<Vec<_>>() }
        })
        .collect();
    let counts: Vec<Value> = [
        RunState::Done,
        RunState::Running,
        RunState::Interrupted,
        RunState::Failed,
        RunState::Queued,
    ]
    .into_iter()
    .map(|s| (s, records.iter().filter(|r| r.state == s).count()))
    .filter(|(_, n)| *n > 0)
    .map(|(s, n)| context! { state => s.as_str(), n => n })
    .collect();
    let commits: BTreeSet<String> = records
        .iter()
        .filter_map(|r| r.provenance.as_ref())
        .map(|p| p.git_commit[..p.git_commit.len().min(10)].to_string())
        .collect();
    let name = &manifest.name;
    let with_rows: Vec<RunRecord> = records
        .iter()
        .filter(|r| !r.rows.is_empty())
        .cloned()
        .collect();
    // No chart (rather than no page) while no VAE has a finite final epoch.
    let title = format!("sweep {name}: reconstruction vs KL across β (final test epoch)");
    let tradeoff = match Tradeoff::new(&title, &with_rows) {
        Ok(chart) => Some(svg(&chart)?),
        Err(_) => None,
    };
    let curves = if with_rows.is_empty() {
        None
    } else {
        Some(svg(&Curves {
            title: format!("sweep {name}: per-epoch metrics (test solid, train dashed)"),
            runs: with_rows.clone(),
        })?)
    };
    let plots = store.sweep_dir(name).join("plots");
    let sheets: Vec<Picture> = [
        (
            "reconstructions.png",
            "The same test digits reconstructed by each run",
        ),
        ("samples.png", "The same prior draws decoded by each VAE"),
        (
            "evaluation.png",
            "Test-set IWAE bound (k = 1000) and active units against β",
        ),
        (
            "kl_schedules.png",
            "Test KL per epoch beside the KL weight (and capacity C) each schedule set",
        ),
    ]
    .into_iter()
    .filter(|(file, _)| plots.join(file).is_file())
    .map(|(file, caption)| Picture {
        src: format!("../plots/{file}"),
        caption: caption.into(),
    })
    .collect();
    let (epochs_done, epochs_total, eta) = match progress(store, manifest) {
        Ok(p) => (
            p.iter()
                .map(|r| r.epochs_done.min(r.run.spec.epochs))
                .sum::<usize>(),
            p.iter().map(|r| r.run.spec.epochs).sum::<usize>(),
            eta_seconds(&p).map_or("unknown until an epoch finishes".into(), duration),
        ),
        Err(_) => (0, 0, "unknown".into()),
    };
    let resume = (!live
        && records
            .iter()
            .any(|r| matches!(r.state, RunState::Interrupted | RunState::Queued)))
    .then(|| format!("vaelab sweep {}", manifest.source));
    let repro = std::fs::read_to_string(store.sweep_dir(name).join("repro.md")).ok();
    let html = templates().get_template("sweep.html")?.render(context! {
        name, description => manifest.description, source => manifest.source,
        code => manifest.code_fingerprint, commits => commits.into_iter().collect::<Vec<_>>(),
        written => now_rfc3339(), counts, live, refresh_seconds => REFRESH_SECONDS,
        epochs_done, epochs_total, eta, resume, tradeoff, curves, sheets, repro,
        filters, keys => keys.iter().map(|k| context! { key => k, text => is_text(k) }).collect::<Vec<_>>(),
        metrics => METRICS, runs => rows, css => CSS, js => JS,
        version => env!("CARGO_PKG_VERSION"),
        results => std::fs::canonicalize(store.root()).unwrap_or_else(|_| store.root().into()).display().to_string(),
    })?;
    let page = sweep_page(store, name);
    write_page(&page, &html)?;
    // Only the pages of runs that changed since they were written.
    for (r, unreadable) in records.iter().zip(&unreadable) {
        if r.state == RunState::Queued || unreadable.is_some() {
            continue;
        }
        let dir = run_page(store, &r.id);
        let dir = dir.parent().unwrap_or(Path::new("."));
        let stamp = super::fresh::page_stamp(store, &r.id, r.state);
        if super::fresh::drawn(dir, &stamp).is_none() {
            let page = write_run(store, r)?;
            super::fresh::remember(dir, &stamp, &[page])?;
        }
    }
    Ok(page)
}

/// Writes the page of one run; returns its path.
pub fn write_run(store: &Store, record: &RunRecord) -> Result<PathBuf> {
    let dir = store.run(&record.id);
    let curves = if record.rows.is_empty() {
        None
    } else {
        Some(svg(&Curves {
            title: format!(
                "{}: per-epoch metrics (test solid, train dashed)",
                record.id
            ),
            runs: vec![record.clone()],
        })?)
    };
    let figures: Vec<Picture> = [
        (
            "kl_dims.png",
            "KL per latent unit over epochs (units sorted by final KL): where and when units \
             switch off",
        ),
        (
            "reconstructions.png",
            "Test digits and their reconstructions",
        ),
        ("samples.png", "Samples from the prior"),
        (
            "classes.png",
            "Each class drawn from the same prior draws (CVAE)",
        ),
        ("traversal.png", "Latent traversal"),
        ("latent.png", "Test-set latent means by digit"),
        ("manifold.png", "The decoded latent grid"),
    ]
    .into_iter()
    .filter(|(file, _)| dir.path.join("plots").join(file).is_file())
    .map(|(file, caption)| Picture {
        src: format!("../plots/{file}"),
        caption: caption.into(),
    })
    .collect();
    let note = match record.state {
        RunState::Failed => record.message.clone().unwrap_or_default(),
        RunState::Interrupted => "Interrupted: rerun the same command to resume.".into(),
        _ => String::new(),
    };
    let read = |name: &str| {
        std::fs::read_to_string(dir.file(name)).unwrap_or_else(|_| "(not written yet)".into())
    };
    let html = templates().get_template("run.html")?.render(context! {
        id => record.id, summary => describe(&record.spec, &PARAM_KEYS),
        state => record.state.as_str(), note, live => record.state == RunState::Running,
        refresh_seconds => REFRESH_SECONDS, curves, figures,
        epochs => epoch_table(&record.rows), config => read("config.toml"),
        eval => (!record.eval.is_empty())
            .then(|| format!(
                "{}\n{}\n{}",
                eval_table(std::slice::from_ref(record)),
                eval_dims_table(record),
                eval_classes_table(record)
            )),
        provenance => read("provenance.toml"), css => CSS,
        version => env!("CARGO_PKG_VERSION"), dir => dir.path.display().to_string(),
    })?;
    let page = run_page(store, &record.id);
    write_page(&page, &html)?;
    Ok(page)
}

/// `vaelab diff --format html`: the comparison as one page.
pub fn diff_html(diff: &Diff) -> Result<String> {
    Ok(templates()
        .get_template("diff.html")?
        .render(context! { diff, css => CSS })?)
}

fn write_page(page: &Path, html: &str) -> Result<()> {
    let dir = page.parent().expect("a page has a folder");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    durable::write_atomic(page, html.as_bytes())
}
