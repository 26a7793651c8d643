//! Experiment matrices (`experiments/*.toml`) and their expansion into run specs.
//!
//! ```toml
//! [sweep]
//! name = "beta"
//! description = "β from 0 to 5"
//!
//! [base]                 # defaults for every run (unset keys: RunSpec::default())
//! epochs = 20
//!
//! [grid]                 # axes: every combination is a run
//! model = ["ae", "vae", "cvae"]
//! dataset = "mnist"      # or "fashion-mnist"
//! beta = { from = 0.0, to = 5.0, step = 0.5 }
//! latent = [2, 16]
//!
//! [[exclude]]            # drop grid points matching every key given
//! model = "ae"
//! latent = 2
//!
//! [[include]]            # extra points: base + these keys
//! model = "vae"
//! beta = 10.0
//!
//! [tracking]             # optional: trackers to send the sweep to live (flags override)
//! mlflow = "http://127.0.0.1:5000"
//! tensorboard = "tb"
//! ```
//!
//! Every value is checked by the same rules as [`RunSpec::validate`]; an error names the file,
//! the line and column, the key and the allowed values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::params::{self, param_named, same_param, spec_table, varying_keys, PARAM_KEYS};
use super::tracking::Tracking;
use super::{defaults, RunSpec};
use crate::model::ModelKind;

/// A bad matrix: `file:line:column: message` (or `file: message` when it has no place), one
/// line.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixError {
    /// The matrix file.
    pub file: PathBuf,
    /// 1-based line (0 when the error has no place in the file).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, naming the key and the allowed values.
    pub message: String,
}

impl std::fmt::Display for MatrixError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file.display(), self.message),
            line => write!(
                f,
                "{}:{line}:{}: {}",
                self.file.display(),
                self.column,
                self.message
            ),
        }
    }
}

impl std::error::Error for MatrixError {}

type Table = BTreeMap<String, Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    sweep: RawSweep,
    #[serde(default)]
    base: Table,
    #[serde(default)]
    grid: Table,
    #[serde(default)]
    include: Vec<Table>,
    #[serde(default)]
    exclude: Vec<Table>,
    #[serde(default)]
    repro: Option<ReproSpec>,
    #[serde(default)]
    slurm: Option<SlurmSettings>,
    #[serde(default)]
    eval: Option<RawEval>,
    #[serde(default)]
    tracking: Option<RawTracking>,
}

/// `[tracking]`: the trackers a local sweep is sent to live (its flags override it).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTracking {
    #[serde(default)]
    tensorboard: Option<PathBuf>,
    #[serde(default)]
    mlflow: Option<Spanned<String>>,
    #[serde(default)]
    experiment: Option<Spanned<String>>,
}

/// `[eval]`: the IWAE sample counts each run is evaluated at after training (`k = []`: none;
/// `vaelab sweep --eval` overrides it).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEval {
    k: Spanned<Vec<usize>>,
}

/// `[slurm]`: defaults for `vaelab sweep --executor slurm`; its flags override them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSettings {
    /// `--partition`.
    #[serde(default)]
    pub partition: Option<String>,
    /// `--time` limit of each task, as sbatch takes it (`HH:MM:SS`, `D-HH:MM`, minutes).
    #[serde(default)]
    pub time: Option<String>,
    /// `--cpus-per-task` (also the task's OpenMP threads).
    #[serde(default)]
    pub cpus_per_task: Option<u32>,
    /// `--mem` per task, as sbatch takes it (`4G`).
    #[serde(default)]
    pub mem: Option<String>,
    /// Tasks running at once (`--array=...%K`).
    #[serde(default)]
    pub max_parallel: Option<u32>,
    /// Further sbatch arguments, each one word (`--account=lab`).
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

impl SlurmSettings {
    /// These settings with every value `flags` sets replacing ours (its sbatch arguments come
    /// after ours).
    pub fn overridden_by(&self, flags: &SlurmSettings) -> SlurmSettings {
        SlurmSettings {
            partition: flags.partition.clone().or_else(|| self.partition.clone()),
            time: flags.time.clone().or_else(|| self.time.clone()),
            cpus_per_task: flags.cpus_per_task.or(self.cpus_per_task),
            mem: flags.mem.clone().or_else(|| self.mem.clone()),
            max_parallel: flags.max_parallel.or(self.max_parallel),
            sbatch_args: self
                .sbatch_args
                .iter()
                .chain(&flags.sbatch_args)
                .cloned()
                .collect(),
        }
    }
}

/// `[repro]`: published numbers that the sweep reproduces (`vaelab repro`): per-epoch curves
/// (`[[repro.table]]`, e.g. the article's loss tables) and final numbers per setup
/// (`[[repro.row]]`, e.g. Burda et al.'s NLL), judged by one tolerance.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReproSpec {
    /// Where the numbers were published.
    #[serde(default)]
    pub source: String,
    /// Allowed |ours − published| / published on the judged epochs and rows.
    pub tolerance: f64,
    /// First judged epoch (epoch 1's running average mostly measures the initialisation).
    #[serde(default = "default_from_epoch")]
    pub from_epoch: usize,
    /// Sweep that identified the setup (fitted on the β = 0 table), shown in the report.
    #[serde(default)]
    pub identify: Option<String>,
    /// The published per-epoch curves.
    #[serde(default)]
    pub table: Vec<PublishedTable>,
    /// The published final numbers.
    #[serde(default)]
    pub row: Vec<PublishedRow>,
}

fn default_from_epoch() -> usize {
    2
}

fn default_column() -> String {
    "article_loss".to_string()
}

fn default_nll_k() -> usize {
    defaults::MAX_SAMPLES
}

/// Which runs a published number describes: VAEs (unless `match` names the model) at `beta`
/// when given, with every key of `match` equal (matrix syntax: `{ objective = "iwae" }`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selector {
    /// Shorthand for `match = { beta = … }`.
    pub beta: Option<f64>,
    /// Keys the runs have, as a matrix writes them.
    pub matching: toml::Table,
}

impl Selector {
    /// Whether `spec` is one of the runs described.
    pub fn selects(&self, spec: &RunSpec) -> bool {
        let model = self.matching.contains_key("model") || spec.model == ModelKind::Vae;
        model
            && self.beta.is_none_or(|b| spec.beta == b)
            && self.matching.iter().all(|(key, value)| {
                params::param_equals(spec, key, &value.to_string()).unwrap_or(false)
            })
    }

    /// The first key of `match` that is not a run parameter or whose value has the wrong type.
    pub fn check(&self) -> Result<(), String> {
        for (key, value) in &self.matching {
            params::param_equals(&RunSpec::default(), key, &value.to_string())?;
        }
        Ok(())
    }

    /// `beta=0 objective="iwae"`-style text of the selection.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.beta.iter().map(|b| format!("beta={b}")).collect();
        parts.extend(self.matching.iter().map(|(k, v)| format!("{k}={v}")));
        parts.join(" ")
    }
}

/// One published per-epoch curve: e.g. the article's printed number per epoch for one β.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedTable {
    /// Short name (`recon_only`).
    pub name: String,
    /// What the run was.
    pub title: String,
    /// The runs it describes: VAEs at this β ([`Selector`]).
    #[serde(default)]
    pub beta: Option<f64>,
    /// The runs it describes: these keys equal ([`Selector`]).
    #[serde(default, rename = "match")]
    pub matching: toml::Table,
    /// The per-epoch result compared, by its sweep-table name (`store::FINAL_COLUMNS`):
    /// `article_loss` (the default: the article's printed number), `test_loss` (pytorch/examples'
    /// "Test set loss"), `train_loss`, `test_recon`, ….
    #[serde(default = "default_column")]
    pub column: String,
    /// Published value per epoch, epoch 1 first; `nan` where an epoch was not published.
    pub loss: Vec<f64>,
}

impl PublishedTable {
    /// The runs it describes.
    pub fn runs(&self) -> Selector {
        Selector {
            beta: self.beta,
            matching: self.matching.clone(),
        }
    }
}

/// One published final result of a setup: e.g. a row of Burda et al.'s Table 1.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedRow {
    /// Short name (`iwae_k5`).
    pub name: String,
    /// What the row is.
    pub title: String,
    /// The runs it describes: VAEs at this β ([`Selector`]).
    #[serde(default)]
    pub beta: Option<f64>,
    /// The runs it describes: these keys equal ([`Selector`]).
    #[serde(default, rename = "match")]
    pub matching: toml::Table,
    /// Negative log-likelihood, nats per test image, compared with −(the IWAE bound at `k`).
    #[serde(default)]
    pub nll: Option<f64>,
    /// The importance samples of that bound (default 5000, Burda et al.'s).
    #[serde(default = "default_nll_k")]
    pub k: usize,
    /// Active units (Cov_x(E_q[z_d | x]) > 0.01).
    #[serde(default)]
    pub active_units: Option<f64>,
}

impl PublishedRow {
    /// The runs it describes.
    pub fn runs(&self) -> Selector {
        Selector {
            beta: self.beta,
            matching: self.matching.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
}

/// One expanded run of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedRun {
    /// The fully resolved, canonical parameters.
    pub spec: RunSpec,
}

/// A matrix expanded into its distinct runs.
#[derive(Clone, Debug)]
pub struct SweepPlan {
    /// `[sweep] name`: the folder under `results/sweeps/`.
    pub name: String,
    /// `[sweep] description`.
    pub description: String,
    /// The matrix file it came from.
    pub source: PathBuf,
    /// Distinct runs, in expansion order (grid order, then includes).
    pub runs: Vec<PlannedRun>,
    /// Points dropped because they were the same run as an earlier one (e.g. AE under two β).
    pub duplicates: usize,
    /// Grid points removed by `[[exclude]]`.
    pub excluded: usize,
    /// Published numbers to compare with, when the matrix has a `[repro]` table.
    pub repro: Option<ReproSpec>,
    /// `[slurm]` defaults, when the matrix has them.
    pub slurm: SlurmSettings,
    /// `[eval]`: evaluation after training, when the matrix says (else `--eval`'s default).
    pub eval: Option<defaults::EvalPolicy>,
    /// `[tracking]`: trackers to send the sweep to live, when the matrix has them.
    pub tracking: Tracking,
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Option<std::ops::Range<usize>>, message: impl Into<String>) -> MatrixError {
        let (line, column) = match span {
            Some(span) => {
                let before = &self.text[..span.start.min(self.text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                (line, column)
            }
            None => (0, 0),
        };
        MatrixError {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// Reads and expands a matrix file.
pub fn load(path: &Path) -> Result<SweepPlan, MatrixError> {
    let text = std::fs::read_to_string(path).map_err(|e| MatrixError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

/// Parses and expands matrix `text` (from `file`, used in errors).
pub fn parse(file: &Path, text: &str) -> Result<SweepPlan, MatrixError> {
    let ctx = Ctx { file, text };
    let raw: RawMatrix = toml::from_str(text).map_err(|e| {
        let message = e.message().trim().replace('\n', " ");
        let message = if message.contains("missing field `sweep`") {
            "missing [sweep] table (with name = \"...\")".to_string()
        } else {
            message
        };
        ctx.err(e.span(), message)
    })?;
    let name = raw.sweep.name.get_ref();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        || name.starts_with('.')
    {
        return Err(ctx.err(
            Some(raw.sweep.name.span()),
            format!(
                "sweep.name = {name:?}: use letters, digits, '-', '_' or '.' (it names a folder)"
            ),
        ));
    }

    let mut base = RunSpec::default();
    for (key, value) in &raw.base {
        set_param(&ctx, &mut base, "base", key, value)?;
    }

    // Axes in a fixed order so expansion (and run order) is stable whatever the file's order.
    let mut axes: Vec<(&str, Vec<Spanned<toml::Value>>)> = Vec::new();
    for (key, value) in &raw.grid {
        check_key(&ctx, "grid", key, value)?;
        axes.push((key_name(key), axis_values(&ctx, key, value)?));
    }
    axes.sort_by_key(|(k, _)| PARAM_KEYS.iter().position(|p| p == k));

    let mut points = vec![base.clone()];
    for (key, values) in &axes {
        let mut next = Vec::with_capacity(points.len() * values.len());
        for point in &points {
            for value in values {
                let mut spec = point.clone();
                set_param(&ctx, &mut spec, "grid", key, value)?;
                next.push(spec);
            }
        }
        points = next;
    }

    let mut excludes = Vec::new();
    for table in &raw.exclude {
        let mut keys = Vec::new();
        for (key, value) in table {
            let mut probe = base.clone();
            set_param(&ctx, &mut probe, "exclude", key, value)?;
            keys.push((key.clone(), probe));
        }
        excludes.push(keys);
    }
    let before = points.len();
    points.retain(|spec| {
        !excludes.iter().any(|keys| {
            !keys.is_empty() && keys.iter().all(|(key, probe)| same_param(spec, probe, key))
        })
    });
    let excluded = before - points.len();

    for table in &raw.include {
        let mut spec = base.clone();
        for (key, value) in table {
            set_param(&ctx, &mut spec, "include", key, value)?;
        }
        points.push(spec);
    }

    let mut runs: Vec<PlannedRun> = Vec::new();
    let mut duplicates = 0;
    for spec in points {
        if let Err(e) = spec.validate() {
            return Err(ctx.err(None, format!("a run of this matrix is invalid: {e}")));
        }
        let spec = spec.canonical();
        if runs.iter().any(|r| r.spec == spec) {
            duplicates += 1;
        } else {
            runs.push(PlannedRun { spec });
        }
    }
    if runs.is_empty() {
        return Err(ctx.err(
            None,
            "the matrix expands to no run (everything is excluded)",
        ));
    }
    let eval = match raw.eval {
        Some(e) => {
            let span = e.k.span();
            Some(
                defaults::EvalPolicy::of_ks(e.k.into_inner())
                    .map_err(|m| ctx.err(Some(span), format!("[eval] {m}")))?,
            )
        }
        None => None,
    };
    let tracking = match raw.tracking {
        Some(t) => tracking(&ctx, t)?,
        None => Tracking::default(),
    };
    Ok(SweepPlan {
        name: name.clone(),
        description: raw.sweep.description,
        source: file.to_path_buf(),
        runs,
        duplicates,
        excluded,
        repro: raw.repro,
        slurm: raw.slurm.unwrap_or_default(),
        eval,
        tracking,
    })
}

/// `[tracking]` checked key by key, an error at the value that is not allowed.
fn tracking(ctx: &Ctx, raw: RawTracking) -> Result<Tracking, MatrixError> {
    let spans = [
        raw.mlflow.as_ref().map(|v| ("mlflow", v.span())),
        raw.experiment.as_ref().map(|v| ("experiment", v.span())),
    ];
    let tracking = Tracking {
        tensorboard: raw.tensorboard,
        mlflow: raw.mlflow.map(Spanned::into_inner),
        experiment: raw.experiment.map(Spanned::into_inner),
    };
    if let Some((key, value, allowed)) = tracking.invalid() {
        let span = spans.into_iter().flatten().find(|(k, _)| *k == key);
        return Err(ctx.err(
            span.map(|(_, s)| s),
            format!("[tracking] {key} = {value:?}: allowed: {allowed}"),
        ));
    }
    Ok(tracking)
}

fn key_name(key: &str) -> &'static str {
    PARAM_KEYS
        .iter()
        .find(|k| **k == key)
        .copied()
        .unwrap_or("?")
}

fn check_key(
    ctx: &Ctx,
    table: &str,
    key: &str,
    value: &Spanned<toml::Value>,
) -> Result<(), MatrixError> {
    if PARAM_KEYS.contains(&key) {
        return Ok(());
    }
    Err(ctx.err(
        Some(value.span()),
        format!(
            "unknown key `{key}` in [{table}]; allowed: {}",
            PARAM_KEYS.join(", ")
        ),
    ))
}

/// The values of one grid axis: a non-empty array, or for β a `{ from, to, step }` range.
fn axis_values(
    ctx: &Ctx,
    key: &str,
    value: &Spanned<toml::Value>,
) -> Result<Vec<Spanned<toml::Value>>, MatrixError> {
    let span = value.span();
    let at = |v: toml::Value| Spanned::new(span.clone(), v);
    match value.get_ref() {
        toml::Value::Array(items) if items.is_empty() => Err(ctx.err(
            Some(span),
            format!("grid.{key} = []: empty axis; give at least one value"),
        )),
        toml::Value::Array(items) => Ok(items.iter().cloned().map(at).collect()),
        toml::Value::Table(range) if key == "beta" => {
            let get = |k: &str| {
                range
                    .get(k)
                    .and_then(|v| v.as_float().or(v.as_integer().map(|i| i as f64)))
            };
            let unknown: Vec<_> = range
                .keys()
                .filter(|k| !["from", "to", "step"].contains(&k.as_str()))
                .collect();
            let (Some(from), Some(to), Some(step), true) =
                (get("from"), get("to"), get("step"), unknown.is_empty())
            else {
                return Err(ctx.err(
                    Some(span),
                    "grid.beta range: give exactly from, to and step as numbers, e.g. { from = 0.0, to = 5.0, step = 0.5 }",
                ));
            };
            if !(from.is_finite() && to.is_finite() && step.is_finite()) || step <= 0.0 || to < from
            {
                return Err(ctx.err(
                    Some(span),
                    format!("grid.beta range from {from} to {to} step {step}: needs finite numbers, step > 0 and to >= from"),
                ));
            }
            let count = ((to - from) / step + 1e-9).floor() as usize + 1;
            if count > 10_000 {
                return Err(ctx.err(
                    Some(span),
                    format!("grid.beta range has {count} values; at most 10000"),
                ));
            }
            Ok((0..count)
                .map(|k| {
                    let v = ((from + k as f64 * step) * 1e9).round() / 1e9;
                    at(toml::Value::Float(v))
                })
                .collect())
        }
        other => Err(ctx.err(
            Some(span),
            format!(
                "grid.{key} = {other}: an axis is a list of values{}",
                if key == "beta" {
                    " or { from, to, step }"
                } else {
                    ""
                }
            ),
        )),
    }
}

/// Sets `key` of `spec` from a TOML value, with the type and range rules of [`RunSpec`].
fn set_param(
    ctx: &Ctx,
    spec: &mut RunSpec,
    table: &str,
    key: &str,
    value: &Spanned<toml::Value>,
) -> Result<(), MatrixError> {
    check_key(ctx, table, key, value)?;
    let span = Some(value.span());
    let v = value.get_ref();
    if let Some(i) = v.as_integer() {
        let real = matches!(
            key,
            "beta" | "lr" | "lr_decay" | "adam_eps" | "free_bits" | "capacity" | "kl_cycle_ramp"
        );
        if i < 0 && !real {
            let zero_allowed =
                matches!(key, "seed" | "kl_warmup" | "kl_cycles" | "capacity_epochs");
            let allowed = if zero_allowed { ">= 0" } else { ">= 1" };
            return Err(ctx.err(span, format!("{key} = {i}: must be {allowed}")));
        }
    }
    let mut fields = spec_table(spec);
    fields.insert(key.to_string(), v.clone());
    let updated: RunSpec =
        toml::Value::Table(fields)
            .try_into()
            .map_err(|e: toml::de::Error| {
                let allowed = param_named(key).map_or("a value", |p| p.allowed);
                ctx.err(
                    span.clone(),
                    format!("{key} = {v}: expected {allowed} ({})", e.message().trim()),
                )
            })?;
    if let Err(e) = updated.validate() {
        if e.key == key {
            return Err(ctx.err(span, format!("{e}")));
        }
    }
    *spec = updated;
    Ok(())
}

impl SweepPlan {
    /// The same plan with some parameters forced on every run: `seeds` replaces the seed axis
    /// by `0..seeds`, `epochs` and `limit` override those keys (`vaelab repro` on a slice).
    pub fn with_overrides(
        mut self,
        seeds: Option<u64>,
        epochs: Option<usize>,
        limit: Option<usize>,
    ) -> Self {
        let mut runs: Vec<PlannedRun> = Vec::new();
        for run in &self.runs {
            let seed_list: Vec<u64> = match seeds {
                Some(n) => (0..n.max(1)).collect(),
                None => vec![run.spec.seed],
            };
            for seed in seed_list {
                let mut spec = run.spec.clone();
                spec.seed = seed;
                spec.epochs = epochs.unwrap_or(spec.epochs);
                spec.limit = limit.or(spec.limit);
                let spec = spec.canonical();
                if !runs.iter().any(|r| r.spec == spec) {
                    runs.push(PlannedRun { spec });
                }
            }
        }
        self.runs = runs;
        self
    }

    /// The parameters that differ between runs, in axis order (what a listing should show).
    pub fn varying_keys(&self) -> Vec<&'static str> {
        varying_keys(self.runs.iter().map(|r| &r.spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelKind;

    fn plan(text: &str) -> Result<SweepPlan, MatrixError> {
        parse(Path::new("m.toml"), text)
    }

    #[test]
    fn grid_times_include_minus_exclude_with_dedup() {
        let p = plan(
            r#"
[sweep]
name = "t"
[base]
epochs = 2
[grid]
model = ["ae", "vae"]
beta = { from = 0.0, to = 1.0, step = 0.5 }
latent = [2, 8]
[[exclude]]
model = "vae"
latent = 8
beta = 1.0
[[include]]
model = "vae"
beta = 5
"#,
        )
        .unwrap();
        // 2 models × 3 β × 2 latents = 12 points; one excluded; the AE's 3 β per latent are one
        // run (4 duplicates); plus one include.
        assert_eq!(p.excluded, 1);
        assert_eq!(p.duplicates, 4);
        assert_eq!(p.runs.len(), 12 - 1 - 4 + 1);
        let betas: Vec<f64> = p
            .runs
            .iter()
            .filter(|r| r.spec.model == ModelKind::Vae && r.spec.latent == 2)
            .map(|r| r.spec.beta)
            .collect();
        assert_eq!(betas, vec![0.0, 0.5, 1.0]);
        assert!(p.runs.iter().all(|r| r.spec.epochs == 2));
        assert!(p
            .runs
            .iter()
            .any(|r| r.spec.beta == 5.0 && r.spec.latent == 4));
        assert_eq!(p.varying_keys(), vec!["model", "beta", "latent"]);
    }

    #[test]
    fn beta_ranges_hit_their_end_without_float_drift() {
        let p =
            plan("[sweep]\nname = \"b\"\n[grid]\nbeta = { from = 0.0, to = 5.0, step = 0.1 }\n")
                .unwrap();
        assert_eq!(p.runs.len(), 51);
        assert_eq!(p.runs[3].spec.beta, 0.3);
        assert_eq!(p.runs[50].spec.beta, 5.0);
    }

    #[test]
    fn ids_are_stable_across_expansions_and_file_order() {
        let a = plan("[sweep]\nname = \"x\"\n[grid]\nseed = [1, 2]\nlatent = [3]\n").unwrap();
        let b = plan("[sweep]\nname = \"x\"\n[grid]\nlatent = [3]\nseed = [1, 2]\n").unwrap();
        let ids = |p: &SweepPlan| {
            p.runs
                .iter()
                .map(|r| r.spec.run_id("c"))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b));
        let c = plan("[sweep]\nname = \"x\"\n[grid]\nseed = [1, 2]\nlatent = [5]\n").unwrap();
        assert!(ids(&a).iter().all(|id| !ids(&c).contains(id)));
    }

    /// The literature's keys: defaults leave them out of the config (old ids stay), a set key
    /// is in the config, the id and the stack key; an AE has no heads to lay out.
    #[test]
    fn literature_keys_are_parameters_and_defaults_change_no_id() {
        let p = plan(
            "[sweep]\nname = \"l\"\n[base]\nhidden = [400]\nlatent = 20\n[grid]\nlikelihood = [\"gaussian\", \"bernoulli\"]\nlayout = [\"article\", \"heads\"]\nmodel = [\"ae\", \"vae\"]\n",
        )
        .unwrap();
        // 2 likelihoods × 2 layouts × 2 models, the AE's two layouts one run.
        assert_eq!(p.runs.len(), 6);
        let default = &p.runs[0].spec;
        assert!(!default.to_toml().contains("likelihood") && !default.to_toml().contains("layout"));
        let bce = p
            .runs
            .iter()
            .find(|r| r.spec.likelihood == crate::model::Likelihood::Bernoulli)
            .unwrap();
        assert!(bce.spec.to_toml().contains("likelihood = \"bernoulli\""));
        assert_ne!(bce.spec.stack_key(), default.stack_key());
        // β varies too: an AE's is 0 whatever the base says.
        assert_eq!(
            p.varying_keys(),
            vec!["model", "beta", "likelihood", "layout"]
        );
    }

    /// Parsing asks nothing of this machine: a run too large for any memory still parses (the
    /// pre-flight refuses it before training, `config::preflight`).
    #[test]
    fn parsing_does_not_depend_on_this_machine() {
        let p = plan("[sweep]\nname = \"x\"\n[grid]\nlatent = [1000000000000]\n").unwrap();
        assert_eq!(p.runs[0].spec.latent, 1_000_000_000_000);
    }

    #[test]
    fn errors_carry_line_column_key_and_range() {
        let e = plan("[sweep]\nname = \"x\"\n[grid]\nlatent = [2, 0]\n").unwrap_err();
        assert_eq!(e.to_string(), "m.toml:4:10: latent = 0: must be >= 1");
        let e = plan("[sweep]\nname = \"x\"\n[base]\nlikelihood = \"poisson\"\n").unwrap_err();
        assert!(
            e.to_string().starts_with(
                "m.toml:4:14: likelihood = \"poisson\": expected \"gaussian\", \"bernoulli\" or \"continuous-bernoulli\""
            ),
            "{e}"
        );
        let e = plan("[sweep]\nname = \"x\"\n[base]\nhidden = []\n[grid]\nlayout = [\"heads\"]\n")
            .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "m.toml:6:10: layout = \"heads\": the heads sit on the last hidden layer"
            ),
            "{e}"
        );
        let e = plan("[sweep]\nname = \"x\"\n[base]\nactivation = \"gelu\"\n").unwrap_err();
        assert!(
            e.to_string().contains("expected \"relu\" or \"tanh\""),
            "{e}"
        );
        let e = plan("[sweep]\nname = \"x\"\n[base]\nbinarize = true\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("expected \"none\", \"dynamic\" or \"threshold\""),
            "{e}"
        );
    }
}
