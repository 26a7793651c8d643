//! The Parquet tables of a run: `metrics.parquet`, one tidy row per epoch × split, and
//! `eval.parquet`, one tidy row per evaluation metric (× k, latent dimension or class).

use std::fs::File;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use polars::prelude::{
    Column, DataFrame, NamedFrom, ParquetReader, ParquetWriter, SerReader, Series,
};

use super::durable;
use crate::config::params::{spec_table, Param, ParamKind, PARAMS};
use crate::config::RunSpec;
use crate::data::Split;

/// One epoch of one split: the tidy row of `metrics.parquet`, the same schema for every run.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRow {
    /// The run id.
    pub run_id: String,
    /// 1-based epoch.
    pub epoch: u32,
    /// The training or test split (`split` column: `train`, `test`).
    pub split: Split,
    /// Mean `−log p(x|z)` per image without its constant, in nats (`likelihood`): the summed
    /// squared error over 784 pixels for the Gaussian, the cross-entropy for the Bernoulli.
    pub recon: f64,
    /// Mean KL per image in nats; `None` for the AE.
    pub kl: Option<f64>,
    /// Mean KL term of the loss per image: `β·kl` without KL control (free bits: the clamped
    /// term; capacity: `β·|kl − C|`); `None` for the AE.
    pub beta_kl: Option<f64>,
    /// Mean `recon + beta_kl` per image.
    pub loss: f64,
    /// The article's printed number: Σ over batches of (batch size × batch loss sum) / images,
    /// from the pre-step training loss. Train split only.
    pub article_loss: Option<f64>,
    /// The learning rate the epoch trained with (`lr_schedule`), column `epoch_lr` (`lr` is
    /// the base rate, a parameter column of the sweep tables); `None` in files written before
    /// the column existed.
    pub lr: Option<f64>,
    /// The KL weight (β after the warm-up's or cycle's share) of the epoch's last step, column
    /// `kl_weight`; `None` for the AE and in files written before the column existed.
    pub kl_weight: Option<f64>,
    /// The KL capacity C of the epoch's last step (capacity control only), column
    /// `epoch_capacity` (`capacity` is the parameter, C's maximum).
    pub capacity: Option<f64>,
    /// Wall-clock seconds the split took this epoch.
    pub seconds: f64,
}

/// Column names of `metrics.parquet`, in order.
pub const METRICS_COLUMNS: [&str; 12] = [
    "run_id",
    "epoch",
    "split",
    "recon",
    "kl",
    "beta_kl",
    "loss",
    "article_loss",
    "epoch_lr",
    "kl_weight",
    "epoch_capacity",
    "seconds",
];

/// The rows as a polars DataFrame with the [`METRICS_COLUMNS`] schema.
pub fn metrics_frame(rows: &[EpochRow]) -> Result<DataFrame> {
    let col = |f: fn(&EpochRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    let opt = |f: fn(&EpochRow) -> Option<f64>| rows.iter().map(f).collect::<Vec<Option<f64>>>();
    let df = polars::df!(
        "run_id" => rows.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        "epoch" => rows.iter().map(|r| r.epoch).collect::<Vec<u32>>(),
        "split" => rows.iter().map(|r| r.split.as_str()).collect::<Vec<_>>(),
        "recon" => col(|r| r.recon),
        "kl" => opt(|r| r.kl),
        "beta_kl" => opt(|r| r.beta_kl),
        "loss" => col(|r| r.loss),
        "article_loss" => opt(|r| r.article_loss),
        "epoch_lr" => opt(|r| r.lr),
        "kl_weight" => opt(|r| r.kl_weight),
        "epoch_capacity" => opt(|r| r.capacity),
        "seconds" => col(|r| r.seconds),
    )?;
    Ok(df)
}

/// Writes a DataFrame to Parquet atomically and durably.
pub fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<()> {
    durable::write_with(path, |tmp| -> Result<()> {
        ParquetWriter::new(File::create(tmp)?).finish(df)?;
        Ok(())
    })
}

/// Reads a Parquet file into a DataFrame.
pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    ParquetReader::new(file)
        .finish()
        .with_context(|| format!("cannot read {}", path.display()))
}

/// Writes a run's per-epoch rows to its `metrics.parquet`.
pub fn write_metrics(path: &Path, rows: &[EpochRow]) -> Result<()> {
    write_parquet(path, &mut metrics_frame(rows)?)
}

/// Reads `metrics.parquet` back into rows (empty if the file does not exist yet).
pub fn read_metrics(path: &Path) -> Result<Vec<EpochRow>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let df = read_parquet(path)?;
    let ctx = || format!("{}: unexpected schema", path.display());
    let n = df.height();
    let f64s = |name: &str| -> Result<Vec<Option<f64>>> {
        let ca = df.column(name).with_context(ctx)?.f64().with_context(ctx)?;
        Ok((0..n).map(|i| ca.get(i)).collect())
    };
    let strs = |name: &str| -> Result<Vec<String>> {
        let ca = df.column(name).with_context(ctx)?.str().with_context(ctx)?;
        Ok((0..n)
            .map(|i| ca.get(i).unwrap_or_default().to_string())
            .collect())
    };
    let ca = df
        .column("epoch")
        .with_context(ctx)?
        .u32()
        .with_context(ctx)?;
    let epochs: Vec<u32> = (0..n).map(|i| ca.get(i).unwrap_or(0)).collect();
    let (run_id, split) = (strs("run_id")?, strs("split")?);
    let (recon, kl, beta_kl) = (f64s("recon")?, f64s("kl")?, f64s("beta_kl")?);
    let (loss, article, seconds) = (f64s("loss")?, f64s("article_loss")?, f64s("seconds")?);
    // Columns added later: absent from older files.
    let later = |name: &str| -> Result<Vec<Option<f64>>> {
        if df.column(name).is_ok() {
            f64s(name)
        } else {
            Ok(vec![None; n])
        }
    };
    let (lr, kl_weight, capacity) = (
        later("epoch_lr")?,
        later("kl_weight")?,
        later("epoch_capacity")?,
    );
    let need =
        |v: Option<f64>, what: &str| v.ok_or_else(|| anyhow!("{}: null {what}", path.display()));
    (0..df.height())
        .map(|i| {
            Ok(EpochRow {
                run_id: run_id[i].clone(),
                epoch: epochs[i],
                split: split[i]
                    .parse()
                    .map_err(|e: String| anyhow!("{}: {e}", path.display()))?,
                recon: need(recon[i], "recon")?,
                kl: kl[i],
                beta_kl: beta_kl[i],
                loss: need(loss[i], "loss")?,
                article_loss: article[i],
                lr: lr[i],
                kl_weight: kl_weight[i],
                capacity: capacity[i],
                seconds: need(seconds[i], "seconds")?,
            })
        })
        .collect()
}

/// The test split's KL in one latent dimension after one epoch: the tidy row of a run's
/// `kl_dims.parquet` (written every epoch beside `metrics.parquet`): where and when units
/// switch off.
#[derive(Clone, Debug, PartialEq)]
pub struct KlDimRow {
    /// 1-based epoch.
    pub epoch: u32,
    /// Latent dimension, 0-based.
    pub dim: u32,
    /// Mean KL per test image in that dimension, nats.
    pub kl: f64,
}

/// Column names of `kl_dims.parquet`, in order.
pub const KL_DIMS_COLUMNS: [&str; 3] = ["epoch", "dim", "kl"];

/// Writes a run's per-epoch, per-dimension KL rows to its `kl_dims.parquet`.
pub fn write_kl_dims(path: &Path, rows: &[KlDimRow]) -> Result<()> {
    let mut df = polars::df!(
        "epoch" => rows.iter().map(|r| r.epoch).collect::<Vec<u32>>(),
        "dim" => rows.iter().map(|r| r.dim).collect::<Vec<u32>>(),
        "kl" => rows.iter().map(|r| r.kl).collect::<Vec<f64>>(),
    )?;
    write_parquet(path, &mut df)
}

/// Reads `kl_dims.parquet` back (empty if the run has none: an AE, or trained before it).
pub fn read_kl_dims(path: &Path) -> Result<Vec<KlDimRow>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let df = read_parquet(path)?;
    let ctx = || format!("{}: unexpected schema", path.display());
    let n = df.height();
    let u32s = |name: &str| -> Result<Vec<Option<u32>>> {
        let ca = df.column(name).with_context(ctx)?.u32().with_context(ctx)?;
        Ok((0..n).map(|i| ca.get(i)).collect())
    };
    let (epoch, dim) = (u32s("epoch")?, u32s("dim")?);
    let kl = df.column("kl").with_context(ctx)?.f64().with_context(ctx)?;
    (0..n)
        .map(|i| match (epoch[i], dim[i], kl.get(i)) {
            (Some(epoch), Some(dim), Some(kl)) => Ok(KlDimRow { epoch, dim, kl }),
            _ => Err(anyhow!("{}: a null value", path.display())),
        })
        .collect()
}

/// One number of a run's test-set evaluation: the tidy row of `eval.parquet`. Metrics (see
/// `vaelab::eval`): `images`, `recon_nll`, `elbo`, `iwae` (per `k`), `active_units`,
/// `activity` and `kl_dim` (per `dim`), `judge_accuracy`, `judged_accuracy` (per `class`, and
/// overall with no class), `prior_class_share` (per `class`), `prior_class_entropy`.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalRow {
    /// The run id.
    pub run_id: String,
    /// What is measured.
    pub metric: String,
    /// Importance samples (IWAE only).
    pub k: Option<u32>,
    /// Latent dimension, 0-based (per-dimension metrics only).
    pub dim: Option<u32>,
    /// Class label (per-class metrics only).
    pub class: Option<u32>,
    /// The value (nats per image for likelihoods, a share in [0, 1], bits for entropy).
    pub value: f64,
    /// Standard error over test images, where it applies.
    pub se: Option<f64>,
}

impl EvalRow {
    /// A row of `metric` with no k, dimension, class or standard error.
    pub fn new(run_id: &str, metric: &str, value: f64) -> Self {
        Self {
            run_id: run_id.to_string(),
            metric: metric.to_string(),
            k: None,
            dim: None,
            class: None,
            value,
            se: None,
        }
    }
}

/// Column names of `eval.parquet`, in order.
pub const EVAL_COLUMNS: [&str; 7] = ["run_id", "metric", "k", "dim", "class", "value", "se"];

/// Writes a run's evaluation rows to its `eval.parquet`.
pub fn write_eval(path: &Path, rows: &[EvalRow]) -> Result<()> {
    let opt = |f: fn(&EvalRow) -> Option<u32>| rows.iter().map(f).collect::<Vec<Option<u32>>>();
    let mut df = polars::df!(
        "run_id" => rows.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        "metric" => rows.iter().map(|r| r.metric.as_str()).collect::<Vec<_>>(),
        "k" => opt(|r| r.k),
        "dim" => opt(|r| r.dim),
        "class" => opt(|r| r.class),
        "value" => rows.iter().map(|r| r.value).collect::<Vec<f64>>(),
        "se" => rows.iter().map(|r| r.se).collect::<Vec<Option<f64>>>(),
    )?;
    write_parquet(path, &mut df)
}

/// Reads `eval.parquet` back into rows (`None` if the run has not been evaluated).
pub fn read_eval(path: &Path) -> Result<Option<Vec<EvalRow>>> {
    if !path.exists() {
        return Ok(None);
    }
    let df = read_parquet(path)?;
    let ctx = || format!("{}: unexpected schema", path.display());
    let n = df.height();
    let strs = |name: &str| -> Result<Vec<String>> {
        let ca = df.column(name).with_context(ctx)?.str().with_context(ctx)?;
        Ok((0..n)
            .map(|i| ca.get(i).unwrap_or_default().to_string())
            .collect())
    };
    let u32s = |name: &str| -> Result<Vec<Option<u32>>> {
        let ca = df.column(name).with_context(ctx)?.u32().with_context(ctx)?;
        Ok((0..n).map(|i| ca.get(i)).collect())
    };
    let f64s = |name: &str| -> Result<Vec<Option<f64>>> {
        let ca = df.column(name).with_context(ctx)?.f64().with_context(ctx)?;
        Ok((0..n).map(|i| ca.get(i)).collect())
    };
    let (run_id, metric) = (strs("run_id")?, strs("metric")?);
    let (k, dim, class) = (u32s("k")?, u32s("dim")?, u32s("class")?);
    let (value, se) = (f64s("value")?, f64s("se")?);
    (0..n)
        .map(|i| {
            Ok(EvalRow {
                run_id: run_id[i].clone(),
                metric: metric[i].clone(),
                k: k[i],
                dim: dim[i],
                class: class[i],
                value: value[i].ok_or_else(|| anyhow!("{}: null value", path.display()))?,
                se: se[i],
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// The row of `metric` among `rows` with the given k and class (`None`: the row without),
/// not a per-dimension one.
pub fn eval_row<'a>(
    rows: &'a [EvalRow],
    metric: &str,
    k: Option<u32>,
    class: Option<u32>,
) -> Option<&'a EvalRow> {
    rows.iter()
        .find(|r| r.metric == metric && r.k == k && r.class == class && r.dim.is_none())
}

/// The value of [`eval_row`].
pub fn eval_value(
    rows: &[EvalRow],
    metric: &str,
    k: Option<u32>,
    class: Option<u32>,
) -> Option<f64> {
    eval_row(rows, metric, k, class).map(|r| r.value)
}

/// The evaluation's numbers the tables carry (`summary.parquet`, the report's run table,
/// `diff`), by column: (column, metric, k, the standard error rather than the value).
pub const EVAL_SUMMARY: [(&str, &str, Option<u32>, bool); 7] = [
    ("test_elbo", "elbo", None, false),
    ("iwae_1000", "iwae", Some(1000), false),
    ("iwae_1000_se", "iwae", Some(1000), true),
    ("active_units", "active_units", None, false),
    ("judged_accuracy", "judged_accuracy", None, false),
    ("prior_class_entropy", "prior_class_entropy", None, false),
    ("judge_accuracy", "judge_accuracy", None, false),
];

/// Summary column `column` (one of [`EVAL_SUMMARY`]) of an evaluation; `None` when the run is
/// not evaluated, the number does not apply to it, or `column` is not an evaluation column.
pub fn eval_column(rows: &[EvalRow], column: &str) -> Option<f64> {
    let &(_, metric, k, se) = EVAL_SUMMARY.iter().find(|c| c.0 == column)?;
    let row = eval_row(rows, metric, k, None)?;
    if se {
        row.se
    } else {
        Some(row.value)
    }
}

/// One number of an epoch's row.
pub type EpochValue = fn(&EpochRow) -> Option<f64>;

/// The final-epoch columns of a run's results (in `summary.parquet`, the report's run table,
/// `diff` and the text tables): the last epoch's row of a split and one of its numbers.
pub const FINAL_COLUMNS: [(&str, Split, EpochValue); 7] = [
    ("test_recon", Split::Test, recon),
    ("test_kl", Split::Test, kl),
    ("test_loss", Split::Test, loss),
    ("train_recon", Split::Train, recon),
    ("train_kl", Split::Train, kl),
    ("train_loss", Split::Train, loss),
    ("article_loss", Split::Train, article_loss),
];

fn recon(r: &EpochRow) -> Option<f64> {
    Some(r.recon)
}

fn kl(r: &EpochRow) -> Option<f64> {
    r.kl
}

fn loss(r: &EpochRow) -> Option<f64> {
    Some(r.loss)
}

fn article_loss(r: &EpochRow) -> Option<f64> {
    r.article_loss
}

/// A result column of a run, from its per-epoch rows ([`FINAL_COLUMNS`]) or its evaluation
/// ([`EVAL_SUMMARY`]); `None` when the run has no such number (yet) or `column` is neither.
pub fn result_value(rows: &[EpochRow], eval: &[EvalRow], column: &str) -> Option<f64> {
    match FINAL_COLUMNS.iter().find(|c| c.0 == column) {
        Some(&(_, split, value)) => last_row(rows, split).and_then(value),
        None => eval_column(eval, column),
    }
}

/// The parameter columns ([`crate::config::params::PARAMS`], in order, typed by their kind)
/// of `specs`, one row each: the same columns in `summary.parquet` and `epochs.parquet`.
pub fn param_columns(specs: &[&RunSpec]) -> Result<Vec<Column>> {
    let tables: Vec<toml::Table> = specs.iter().map(|s| spec_table(s)).collect();
    let column = |p: &Param| -> Column {
        let name = p.key.into();
        let values = tables.iter().map(|t| t.get(p.key));
        let series = match p.kind {
            ParamKind::Text => Series::new(
                name,
                values
                    .map(|v| v.and_then(|v| v.as_str()).unwrap_or("-").to_string())
                    .collect::<Vec<String>>(),
            ),
            ParamKind::Float => Series::new(
                name,
                values
                    .map(|v| v.and_then(|v| v.as_float()))
                    .collect::<Vec<Option<f64>>>(),
            ),
            ParamKind::Count | ParamKind::OptionalCount => Series::new(
                name,
                values
                    .map(|v| v.and_then(|v| v.as_integer()).map(|i| i as u32))
                    .collect::<Vec<Option<u32>>>(),
            ),
            ParamKind::Seed => Series::new(
                name,
                values
                    .map(|v| v.and_then(|v| v.as_integer()).map(|i| i as u64))
                    .collect::<Vec<Option<u64>>>(),
            ),
            ParamKind::Widths | ParamKind::Numbers => Series::new(
                name,
                values
                    .map(|v| {
                        v.and_then(|v| v.as_array())
                            .map(|a| {
                                a.iter()
                                    .map(|w| w.to_string())
                                    .collect::<Vec<_>>()
                                    .join("-")
                            })
                            .unwrap_or_default()
                    })
                    .collect::<Vec<String>>(),
            ),
        };
        Column::from(series)
    };
    Ok(PARAMS.iter().map(column).collect())
}

/// The latest epoch's row of `split` among `rows` (a run's final result so far).
pub fn last_row(rows: &[EpochRow], split: Split) -> Option<&EpochRow> {
    rows.iter()
        .filter(|r| r.split == split)
        .max_by_key(|r| r.epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: u32, split: Split, kl: Option<f64>) -> EpochRow {
        EpochRow {
            run_id: "vae-0123456789".into(),
            epoch,
            split,
            recon: 40.5 + f64::from(epoch),
            kl,
            beta_kl: kl.map(|k| 3.0 * k),
            loss: 50.0,
            article_loss: (split == Split::Train).then_some(1600.0),
            lr: Some(1e-3),
            kl_weight: kl.map(|_| 3.0),
            capacity: None,
            seconds: 1.25,
        }
    }

    #[test]
    fn metrics_round_trip_through_parquet_with_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.parquet");
        let rows = vec![
            row(1, Split::Train, Some(3.5)),
            row(1, Split::Test, Some(3.25)),
            row(2, Split::Train, None),
        ];
        write_metrics(&path, &rows).unwrap();
        assert_eq!(read_metrics(&path).unwrap(), rows);
        let df = read_parquet(&path).unwrap();
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(names, METRICS_COLUMNS.map(String::from));
        assert_eq!(df.column("kl").unwrap().null_count(), 1);
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 1, "only metrics.parquet, no temporary");
    }

    #[test]
    fn eval_rows_round_trip_through_parquet_with_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eval.parquet");
        assert_eq!(read_eval(&path).unwrap(), None);
        let id = "cvae-0123456789";
        let rows = vec![
            EvalRow::new(id, "elbo", -512.5),
            EvalRow {
                k: Some(1000),
                se: Some(0.25),
                ..EvalRow::new(id, "iwae", -500.0)
            },
            EvalRow {
                dim: Some(3),
                ..EvalRow::new(id, "kl_dim", 2.5)
            },
            EvalRow {
                class: Some(7),
                ..EvalRow::new(id, "judged_accuracy", 0.97)
            },
        ];
        write_eval(&path, &rows).unwrap();
        assert_eq!(read_eval(&path).unwrap().unwrap(), rows);
        assert_eq!(eval_value(&rows, "iwae", Some(1000), None), Some(-500.0));
        assert_eq!(
            eval_value(&rows, "judged_accuracy", None, Some(7)),
            Some(0.97)
        );
        assert_eq!(eval_value(&rows, "judged_accuracy", None, None), None);
        assert_eq!(eval_column(&rows, "iwae_1000"), Some(-500.0));
        assert_eq!(eval_column(&rows, "iwae_1000_se"), Some(0.25));
        assert_eq!(eval_column(&rows, "test_elbo"), Some(-512.5));
        assert_eq!(eval_column(&rows, "judged_accuracy"), None);
        assert_eq!(eval_column(&rows, "test_loss"), None);
        let names: Vec<String> = read_parquet(&path)
            .unwrap()
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(names, EVAL_COLUMNS.map(String::from));
    }

    /// The parameter columns are the schema's keys, typed by kind: two runs that differ only
    /// in their data set differ in the `dataset` column.
    #[test]
    fn parameter_columns_follow_the_schema() {
        use crate::config::params::PARAM_KEYS;
        let a = RunSpec::default();
        let b = RunSpec {
            dataset: crate::data::Dataset::FashionMnist,
            limit: Some(10),
            ..RunSpec::default()
        };
        let columns = param_columns(&[&a, &b]).unwrap();
        let names: Vec<&str> = columns.iter().map(|c| c.name().as_str()).collect();
        assert_eq!(names, PARAM_KEYS);
        let text = |key: &str, i: usize| {
            let c = &columns[PARAM_KEYS.iter().position(|k| *k == key).unwrap()];
            c.str().unwrap().get(i).map(String::from)
        };
        assert_eq!(text("dataset", 0).as_deref(), Some("mnist"));
        assert_eq!(text("dataset", 1).as_deref(), Some("fashion-mnist"));
        assert_eq!(text("device", 1).as_deref(), Some("cpu"));
        assert_eq!(text("hidden", 0).as_deref(), Some("256"));
        let limit = &columns[PARAM_KEYS.iter().position(|k| *k == "limit").unwrap()];
        assert_eq!(limit.u32().unwrap().get(0), None);
        assert_eq!(limit.u32().unwrap().get(1), Some(10));
    }

    #[test]
    fn result_columns_read_the_last_epoch_of_their_split() {
        let rows = vec![
            row(1, Split::Train, Some(3.5)),
            row(1, Split::Test, Some(3.25)),
            row(2, Split::Train, None),
        ];
        assert_eq!(result_value(&rows, &[], "train_recon"), Some(42.5));
        assert_eq!(result_value(&rows, &[], "test_recon"), Some(41.5));
        assert_eq!(result_value(&rows, &[], "train_kl"), None);
        assert_eq!(result_value(&rows, &[], "test_kl"), Some(3.25));
        assert_eq!(result_value(&rows, &[], "article_loss"), Some(1600.0));
        assert_eq!(result_value(&rows, &[], "no_such_column"), None);
    }
}
