//! The Parquet tables of a run: `metrics.parquet`, one tidy row per epoch × split.

use std::fs::File;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use polars::prelude::{DataFrame, ParquetReader, ParquetWriter, SerReader};

use super::durable;

/// One epoch of one split: the tidy row of `metrics.parquet`, the same schema for every run.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRow {
    /// The run id.
    pub run_id: String,
    /// 1-based epoch.
    pub epoch: u32,
    /// `train` or `test`.
    pub split: String,
    /// Mean squared error per image, summed over 784 pixels.
    pub recon: f64,
    /// Mean KL per image in nats; `None` for the AE.
    pub kl: Option<f64>,
    /// Mean `beta * kl` per image; `None` for the AE.
    pub beta_kl: Option<f64>,
    /// Mean `recon + beta * kl` per image.
    pub loss: f64,
    /// The article's printed number: Σ over batches of (batch size × batch loss sum) / images,
    /// from the pre-step training loss. Train split only.
    pub article_loss: Option<f64>,
    /// Wall-clock seconds the split took this epoch.
    pub seconds: f64,
}

/// Column names of `metrics.parquet`, in order.
pub const METRICS_COLUMNS: [&str; 9] = [
    "run_id",
    "epoch",
    "split",
    "recon",
    "kl",
    "beta_kl",
    "loss",
    "article_loss",
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
    let need =
        |v: Option<f64>, what: &str| v.ok_or_else(|| anyhow!("{}: null {what}", path.display()));
    (0..df.height())
        .map(|i| {
            Ok(EpochRow {
                run_id: run_id[i].clone(),
                epoch: epochs[i],
                split: split[i].clone(),
                recon: need(recon[i], "recon")?,
                kl: kl[i],
                beta_kl: beta_kl[i],
                loss: need(loss[i], "loss")?,
                article_loss: article[i],
                seconds: need(seconds[i], "seconds")?,
            })
        })
        .collect()
}

/// The latest epoch's row of `split` among `rows` (a run's final result so far).
pub fn last_row<'a>(rows: &'a [EpochRow], split: &str) -> Option<&'a EpochRow> {
    rows.iter()
        .filter(|r| r.split == split)
        .max_by_key(|r| r.epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: u32, split: &str, kl: Option<f64>) -> EpochRow {
        EpochRow {
            run_id: "vae-0123456789".into(),
            epoch,
            split: split.into(),
            recon: 40.5 + f64::from(epoch),
            kl,
            beta_kl: kl.map(|k| 3.0 * k),
            loss: 50.0,
            article_loss: (split == "train").then_some(1600.0),
            seconds: 1.25,
        }
    }

    #[test]
    fn metrics_round_trip_through_parquet_with_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.parquet");
        let rows = vec![
            row(1, "train", Some(3.5)),
            row(1, "test", Some(3.25)),
            row(2, "train", None),
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
}
