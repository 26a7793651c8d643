//! Charts of logged metrics: the reconstruction-vs-KL trade-off across β and per-epoch curves.
//!
//! Both read only the runs' Parquet rows ([`RunData`]), so they can be redrawn at any time
//! without a model or a GPU.

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::mean_sd;
use super::style::{beta_color, color_bar, drawn, legend, Picture, AE_COLOR, CATEGORY, FONT};
use crate::config::params::{describe, varying_keys};
use crate::config::RunSpec;
use crate::data::Split;
use crate::model::ModelKind;
use crate::store::{EpochRow, RunRecord};

/// The charts' view of a run: the store's [`RunRecord`] (id, parameters, per-epoch rows).
pub type RunData = RunRecord;

/// One β of one trade-off line: means and spreads over seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct TradeoffPoint {
    /// KL weight.
    pub beta: f64,
    /// Mean final test KL (nats per image).
    pub kl: f64,
    /// Its standard deviation across seeds.
    pub kl_sd: f64,
    /// Mean final test reconstruction term per image (`recon`: −log p(x|z) without its constant).
    pub recon: f64,
    /// Its standard deviation across seeds.
    pub recon_sd: f64,
    /// Seeds averaged.
    pub seeds: usize,
}

/// A line of the trade-off chart: VAE runs that differ only in β and seed.
#[derive(Clone, Debug)]
pub struct TradeoffLine {
    /// Legend text (the parameters that tell lines apart).
    pub label: String,
    /// Points in β order.
    pub points: Vec<TradeoffPoint>,
}

/// An AE reference: its reconstruction error as a horizontal line (it has no KL).
#[derive(Clone, Debug)]
pub struct AeReference {
    /// Legend text.
    pub label: String,
    /// Mean final test reconstruction error over seeds.
    pub recon: f64,
}

/// The rate–distortion chart of a sweep: final test reconstruction error against test KL.
#[derive(Clone, Debug)]
pub struct Tradeoff {
    /// Chart title.
    pub title: String,
    /// One line per VAE or CVAE variant (model, latent size, widths, ...).
    pub lines: Vec<TradeoffLine>,
    /// One horizontal line per AE variant.
    pub ae: Vec<AeReference>,
}

/// `spec` with β and seed cleared: runs with the same key are one line of the chart.
fn variant_key(spec: &RunSpec) -> RunSpec {
    RunSpec {
        beta: 0.0,
        seed: 0,
        ..spec.clone()
    }
}

/// Groups runs by variant; labels name the parameters that differ between the groups.
fn variants<'a>(runs: &[&'a RunData]) -> Vec<(String, Vec<&'a RunData>)> {
    let mut groups: Vec<(RunSpec, Vec<&RunData>)> = Vec::new();
    for run in runs {
        let key = variant_key(&run.spec);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(run),
            None => groups.push((key, vec![run])),
        }
    }
    let keys: Vec<&str> = varying_keys(groups.iter().map(|(g, _)| g))
        .into_iter()
        .filter(|k| !matches!(*k, "beta" | "seed" | "model"))
        .collect();
    let keys = if keys.is_empty() {
        vec!["latent"]
    } else {
        keys
    };
    groups
        .into_iter()
        .map(|(key, members)| (variant_label(&key, &keys), members))
        .collect()
}

/// A variant's label: its values of `keys`, but of the KL-control keys only those it sets
/// ("no KL control" when it sets none of the varying ones), so that a schedule reads as
/// `kl_warmup 5` rather than as every knob at zero.
fn variant_label(spec: &RunSpec, keys: &[&str]) -> String {
    let set = super::kl::controls(spec);
    let is_control = |k: &&str| super::kl::SCHEDULE_KEYS[1..].contains(k);
    let shown: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| !is_control(k) || set.contains(k))
        .collect();
    let mut label = describe(spec, &shown).replace('=', " ");
    if set.is_empty() && keys.iter().any(is_control) {
        label = format!("{label} no KL control").trim().to_string();
    }
    label
}

/// Runs of one β within a chart line.
type BetaGroups<'a> = Vec<(f64, Vec<&'a RunData>)>;

/// The lines of a chart across β: one per variant, labelled with its model and the
/// parameters that tell variants apart, each with its runs grouped by β in β order.
fn lines_by_beta<'a>(runs: &[&'a RunData]) -> Vec<(String, BetaGroups<'a>)> {
    variants(runs)
        .into_iter()
        .map(|(label, members)| {
            let mut betas: Vec<f64> = members.iter().map(|r| r.spec.beta).collect();
            betas.sort_by(f64::total_cmp);
            betas.dedup();
            let groups = betas
                .into_iter()
                .map(|beta| {
                    let at = members
                        .iter()
                        .copied()
                        .filter(|r| r.spec.beta == beta)
                        .collect();
                    (beta, at)
                })
                .collect();
            let model = members[0].spec.model.as_str().to_uppercase();
            (format!("{model} {label}"), groups)
        })
        .collect()
}

impl Tradeoff {
    /// Builds the chart from the final test epoch of every run that has a finite one (a
    /// diverged run has no point on it: an infinite axis would hang plotters' tick placement).
    pub fn new(title: &str, runs: &[RunData]) -> Result<Self> {
        let finite = |r: &&RunData| {
            r.last(Split::Test).is_some_and(|t| {
                t.recon.is_finite() && t.loss.is_finite() && t.kl.is_none_or(f64::is_finite)
            })
        };
        let finished: Vec<&RunData> = runs.iter().filter(finite).collect();
        let of = |kind| -> Vec<&RunData> {
            finished
                .iter()
                .copied()
                .filter(|r| r.spec.model == kind)
                .collect()
        };
        let vaes: Vec<&RunData> = finished
            .iter()
            .copied()
            .filter(|r| r.spec.model.is_variational())
            .collect();
        let aes = of(ModelKind::Ae);
        if vaes.is_empty() {
            bail!("the trade-off chart needs at least one VAE or CVAE run with a finished epoch");
        }
        let lines = lines_by_beta(&vaes)
            .into_iter()
            .map(|(label, groups)| TradeoffLine {
                label,
                points: groups
                    .into_iter()
                    .map(|(beta, at)| {
                        let finals: Vec<&EpochRow> =
                            at.iter().filter_map(|r| r.last(Split::Test)).collect();
                        let kls: Vec<f64> = finals.iter().map(|r| r.kl.unwrap_or(0.0)).collect();
                        let recons: Vec<f64> = finals.iter().map(|r| r.recon).collect();
                        let ((kl, kl_sd), (recon, recon_sd)) = (mean_sd(&kls), mean_sd(&recons));
                        TradeoffPoint {
                            beta,
                            kl,
                            kl_sd,
                            recon,
                            recon_sd,
                            seeds: finals.len(),
                        }
                    })
                    .collect(),
            })
            .collect();
        let ae = variants(&aes)
            .into_iter()
            .map(|(label, members)| {
                let recons: Vec<f64> = members
                    .iter()
                    .filter_map(|r| r.last(Split::Test))
                    .map(|r| r.recon)
                    .collect();
                AeReference {
                    label: format!("AE {label}"),
                    recon: mean_sd(&recons).0,
                }
            })
            .collect();
        Ok(Self {
            title: title.to_string(),
            lines,
            ae,
        })
    }
}

impl Picture for Tradeoff {
    fn size(&self) -> (u32, u32) {
        (1200, 800)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let points = self.lines.iter().flat_map(|l| &l.points);
        let x_max = points.clone().map(|p| p.kl + p.kl_sd).fold(1e-3, f64::max) * 1.12;
        let ys: Vec<f64> = points
            .clone()
            .flat_map(|p| [p.recon - p.recon_sd, p.recon + p.recon_sd])
            .chain(self.ae.iter().map(|a| a.recon))
            .collect();
        let (y_lo, y_hi) = ys
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(*y), hi.max(*y)));
        let pad = ((y_hi - y_lo) * 0.08).max(0.5);
        // Room above the points for the legend (upper right), a line per entry: the points of
        // the largest KL sit there and were hidden under it.
        let entries = (self.lines.len() + self.ae.len()) as f64;
        let headroom = (y_hi - y_lo).max(1.0) * 0.06 * entries;
        let mut chart = drawn(
            ChartBuilder::on(root)
                .caption(&self.title, (FONT, 28).into_font().style(FontStyle::Bold))
                .margin(24)
                .x_label_area_size(64)
                .y_label_area_size(90)
                .build_cartesian_2d(0.0..x_max, (y_lo - pad).max(0.0)..y_hi + pad + headroom),
        )?;
        drawn(
            chart
                .configure_mesh()
                .x_desc("test KL divergence (nats per image)")
                .y_desc("test recon per image (−log p(x|z), no constant)")
                .label_style((FONT, 17))
                .axis_desc_style((FONT, 20))
                .light_line_style(RGBColor(235, 235, 235))
                .draw(),
        )?;
        for (i, line) in self.lines.iter().enumerate() {
            let color = CATEGORY[i % CATEGORY.len()];
            let xy: Vec<(f64, f64)> = line.points.iter().map(|p| (p.kl, p.recon)).collect();
            drawn(chart.draw_series(LineSeries::new(xy.clone(), color.stroke_width(3))))?
                .label(&line.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
                });
            drawn(chart.draw_series(xy.iter().map(|&p| Circle::new(p, 5, color.filled()))))?;
            let spread = line.points.iter().filter(|p| p.seeds > 1);
            drawn(chart.draw_series(spread.clone().map(|p| {
                ErrorBar::new_vertical(
                    p.kl,
                    p.recon - p.recon_sd,
                    p.recon,
                    p.recon + p.recon_sd,
                    color.stroke_width(2),
                    8,
                )
            })))?;
            drawn(chart.draw_series(spread.map(|p| {
                ErrorBar::new_horizontal(
                    p.recon,
                    p.kl - p.kl_sd,
                    p.kl,
                    p.kl + p.kl_sd,
                    color.stroke_width(2),
                    8,
                )
            })))?;
            drawn(chart.draw_series(line.points.iter().map(|p| {
                EmptyElement::at((p.kl, p.recon))
                    + Text::new(
                        format!("β={}", p.beta),
                        (8, -22),
                        (FONT, 15).into_font().color(&color.mix(0.9)),
                    )
            })))?;
        }
        for (i, ae) in self.ae.iter().enumerate() {
            let color = if i == 0 {
                AE_COLOR
            } else {
                CATEGORY[(self.lines.len() + i) % CATEGORY.len()]
            };
            drawn(chart.draw_series(DashedLineSeries::new(
                vec![(0.0, ae.recon), (x_max, ae.recon)],
                10,
                7,
                color.stroke_width(2),
            )))?
            .label(format!("{} (no KL)", ae.label))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
            });
        }
        let seeds = self
            .lines
            .iter()
            .flat_map(|l| &l.points)
            .map(|p| p.seeds)
            .max()
            .unwrap_or(1);
        if seeds > 1 {
            drawn(root.draw(&Text::new(
                format!("points: mean over up to {seeds} seeds; bars: ± 1 standard deviation"),
                (110, self.size().1 as i32 - 26),
                (FONT, 15).into_font().color(&RGBColor(90, 90, 90)),
            )))?;
        }
        legend(&mut chart, 17)
    }
}

/// Which metric a curve panel shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CurveMetric {
    /// Squared error per image.
    Recon,
    /// KL per image (VAE only).
    Kl,
    /// recon + β·KL per image.
    Loss,
}

impl CurveMetric {
    fn value(self, row: &EpochRow) -> Option<f64> {
        match self {
            CurveMetric::Recon => Some(row.recon),
            CurveMetric::Kl => row.kl,
            CurveMetric::Loss => Some(row.loss),
        }
    }

    fn title(self) -> &'static str {
        match self {
            CurveMetric::Recon => "reconstruction error",
            CurveMetric::Kl => "KL divergence",
            CurveMetric::Loss => "loss = recon + β·KL",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            CurveMetric::Recon => "−log p(x|z) per image, no constant",
            CurveMetric::Kl => "nats per image",
            CurveMetric::Loss => "per image",
        }
    }
}

/// Per-epoch curves of every run: recon, KL and loss side by side, test solid and train
/// dashed, coloured by β (the AE in its own colour), with a colour bar.
#[derive(Clone, Debug)]
pub struct Curves {
    /// Chart title.
    pub title: String,
    /// The runs.
    pub runs: Vec<RunData>,
}

const COLORBAR_WIDTH: u32 = 130;

/// One line of a panel: the run, its split and its (epoch, value) points.
type Series<'a> = (&'a RunData, Split, Vec<(f64, f64)>);

impl Curves {
    fn max_beta(&self) -> f64 {
        self.runs
            .iter()
            .filter(|r| r.spec.model.is_variational())
            .map(|r| r.spec.beta)
            .fold(0.0, f64::max)
    }

    fn color(&self, spec: &RunSpec) -> RGBColor {
        match spec.model {
            ModelKind::Ae => AE_COLOR,
            ModelKind::Vae | ModelKind::Cvae => beta_color(spec.beta, self.max_beta()),
        }
    }

    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        metric: CurveMetric,
    ) -> Result<()> {
        let series: Vec<Series> = self
            .runs
            .iter()
            .flat_map(|r| {
                [Split::Train, Split::Test].map(|split| {
                    let mut xy: Vec<(f64, f64)> = r
                        .rows
                        .iter()
                        .filter(|row| row.split == split)
                        .filter_map(|row| metric.value(row).map(|v| (f64::from(row.epoch), v)))
                        .filter(|(_, v)| v.is_finite())
                        .collect();
                    xy.sort_by(|a, b| a.0.total_cmp(&b.0));
                    (r, split, xy)
                })
            })
            .filter(|(_, _, xy)| !xy.is_empty())
            .collect();
        let all = series.iter().flat_map(|(_, _, xy)| xy);
        let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max);
        let (lo, hi) = all.clone().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
        let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
        let pad = ((hi - lo) * 0.06).max(1e-3);
        // One-epoch runs: the epoch in the middle (a dot on the axis reads as nothing), with
        // the tick on it, as in the KL schedule chart.
        let (x_range, x_labels) = if x_max < 2.0 {
            (0.5..1.5, 2)
        } else {
            (1.0..x_max, x_max.min(10.0) as usize)
        };
        let mut chart = drawn(
            ChartBuilder::on(area)
                .caption(
                    metric.title(),
                    (FONT, 22).into_font().style(FontStyle::Bold),
                )
                .margin(14)
                .x_label_area_size(50)
                .y_label_area_size(70)
                .build_cartesian_2d(x_range.clone(), (lo - pad)..(hi + pad)),
        )?;
        drawn(
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc(metric.unit())
                .x_labels(x_labels)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .label_style((FONT, 15))
                .axis_desc_style((FONT, 17))
                .light_line_style(RGBColor(235, 235, 235))
                .draw(),
        )?;
        if series.is_empty() {
            drawn(area.draw(&Text::new(
                "no VAE run: nothing to show",
                (120, 200),
                (FONT, 18).into_font(),
            )))?;
        }
        for (run, split, xy) in series {
            let color = self.color(&run.spec);
            // A line through one point draws nothing: a dot at every epoch shows a one-epoch
            // run (and where the epochs of a longer one fall).
            let dot = if split == Split::Test {
                color.filled()
            } else {
                color.mix(0.8).filled()
            };
            drawn(chart.draw_series(xy.iter().map(|&p| Circle::new(p, 3, dot))))?;
            if split == Split::Test {
                drawn(chart.draw_series(LineSeries::new(xy, color.stroke_width(2))))?;
            } else {
                drawn(chart.draw_series(DashedLineSeries::new(
                    xy,
                    6,
                    5,
                    color.mix(0.8).stroke_width(2),
                )))?;
            }
        }
        Ok(())
    }

    fn colorbar<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let max = self.max_beta();
        let (top, height, x): (i32, i32, i32) = (90, 300, 20);
        let label = (FONT, 16).into_font();
        let bar = (x, top, height);
        color_bar(area, ("β", 20), bar, max, |b| beta_color(b, max), &label)?;
        let legend_top = top + height + 40;
        let has_ae = self.runs.iter().any(|r| r.spec.model == ModelKind::Ae);
        let mut y = legend_top;
        if has_ae {
            drawn(area.draw(&Rectangle::new(
                [(x, y), (x + 24, y + 14)],
                AE_COLOR.filled(),
            )))?;
            drawn(area.draw(&Text::new("AE", (x + 32, y - 2), label.clone())))?;
            y += 30;
        }
        drawn(area.draw(&PathElement::new(
            vec![(x, y + 7), (x + 30, y + 7)],
            BLACK.stroke_width(2),
        )))?;
        drawn(area.draw(&Text::new("test", (x + 36, y - 2), label.clone())))?;
        y += 28;
        for k in 0..3 {
            let x0 = x + k * 11;
            drawn(area.draw(&PathElement::new(
                vec![(x0, y + 7), (x0 + 6, y + 7)],
                BLACK.stroke_width(2),
            )))?;
        }
        drawn(area.draw(&Text::new("train", (x + 36, y - 2), label)))?;
        Ok(())
    }
}

impl Picture for Curves {
    fn size(&self) -> (u32, u32) {
        (1800, 620)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let body = drawn(root.titled(&self.title, (FONT, 28).into_font().style(FontStyle::Bold)))?;
        let (w, _) = body.dim_in_pixel();
        let (plots, bar) = body.split_horizontally(w.saturating_sub(COLORBAR_WIDTH));
        let panels = plots.split_evenly((1, 3));
        for (area, metric) in
            panels
                .iter()
                .zip([CurveMetric::Recon, CurveMetric::Kl, CurveMetric::Loss])
        {
            self.panel(area, metric)?;
        }
        self.colorbar(&bar)
    }
}

/// A sweep's evaluation against β: the test IWAE bound (k = 1000, nats per image) and the
/// active units, one line per VAE or CVAE variant, mean over seeds.
#[derive(Clone, Debug)]
pub struct EvalChart {
    /// Chart title.
    pub title: String,
    /// (legend, points in β order).
    pub lines: Vec<(String, Vec<EvalPoint>)>,
}

/// One β of an [`EvalChart`] line: `(β, IWAE bound, active units)`, means over seeds.
pub type EvalPoint = (f64, f64, f64);

impl EvalChart {
    /// Builds the chart from the evaluated VAE and CVAE runs; an error when there is none.
    pub fn new(title: &str, runs: &[RunData]) -> Result<Self> {
        let evaluated: Vec<&RunData> = runs
            .iter()
            .filter(|r| r.spec.model.is_variational())
            .filter(|r| r.eval("iwae", Some(1000)).is_some_and(f64::is_finite))
            .collect();
        if evaluated.is_empty() {
            bail!("the evaluation chart needs an evaluated VAE or CVAE run (`vaelab eval`)");
        }
        let lines = lines_by_beta(&evaluated)
            .into_iter()
            .map(|(label, groups)| {
                let points = groups
                    .into_iter()
                    .map(|(beta, at)| {
                        let mean = |metric: &str, k| {
                            let v: Vec<f64> = at.iter().filter_map(|r| r.eval(metric, k)).collect();
                            mean_sd(&v).0
                        };
                        (beta, mean("iwae", Some(1000)), mean("active_units", None))
                    })
                    .collect();
                (label, points)
            })
            .collect();
        Ok(Self {
            title: title.to_string(),
            lines,
        })
    }
}

impl Picture for EvalChart {
    fn size(&self) -> (u32, u32) {
        (1400, 620)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let root = drawn(root.titled(&self.title, (FONT, 28).into_font().style(FontStyle::Bold)))?;
        let panels = root.split_evenly((1, 2));
        let points = || self.lines.iter().flat_map(|(_, p)| p.iter());
        let beta_max = points().map(|p| p.0).fold(0.0, f64::max).max(1e-3) * 1.05;
        let latent_max = points().map(|p| p.2).fold(1.0, f64::max);
        type Pick = fn(&EvalPoint) -> f64;
        let specs: [(&str, Pick); 2] = [
            ("test IWAE bound, k = 1000 (nats per image)", |p| p.1),
            ("active units (Cov_x E[z_d|x] > 0.01)", |p| p.2),
        ];
        for (k, (area, (desc, pick))) in panels.iter().zip(specs).enumerate() {
            let ys: Vec<f64> = points().map(pick).collect();
            let (lo, hi) = ys
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(*y), hi.max(*y)));
            let (lo, hi) = if k == 1 {
                (0.0, latent_max + 0.5)
            } else {
                let pad = ((hi - lo) * 0.1).max(0.5);
                (lo - pad, hi + pad)
            };
            let mut chart = drawn(
                ChartBuilder::on(area)
                    .margin(20)
                    .x_label_area_size(56)
                    .y_label_area_size(80)
                    .build_cartesian_2d(0.0..beta_max, lo..hi),
            )?;
            drawn(
                chart
                    .configure_mesh()
                    .x_desc("β")
                    .y_desc(desc)
                    .label_style((FONT, 16))
                    .axis_desc_style((FONT, 18))
                    .light_line_style(RGBColor(235, 235, 235))
                    .draw(),
            )?;
            for (i, (label, line)) in self.lines.iter().enumerate() {
                let color = CATEGORY[i % CATEGORY.len()];
                let xy: Vec<(f64, f64)> = line.iter().map(|p| (p.0, pick(p))).collect();
                drawn(chart.draw_series(LineSeries::new(xy.clone(), color.stroke_width(3))))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
                    });
                drawn(chart.draw_series(xy.iter().map(|&p| Circle::new(p, 5, color.filled()))))?;
            }
            legend(&mut chart, 15)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::style::svg;
    use crate::store::RunState;

    /// A run of one epoch has no line to draw: its test and train values show as dots.
    #[test]
    fn curves_show_a_one_epoch_run() {
        let row = |split| EpochRow {
            run_id: "r0".into(),
            epoch: 1,
            split,
            recon: 30.0,
            kl: Some(4.0),
            beta_kl: Some(4.0),
            loss: 34.0,
            article_loss: None,
            lr: Some(1e-3),
            kl_weight: Some(1.0),
            capacity: None,
            seconds: 1.0,
        };
        let run = RunData {
            id: "r0".into(),
            spec: RunSpec {
                model: ModelKind::Vae,
                ..RunSpec::default()
            },
            provenance: None,
            state: RunState::Done,
            message: None,
            rows: vec![row(Split::Train), row(Split::Test)],
            eval: Vec::new(),
        };
        let curves = Curves {
            title: "r0: per-epoch metrics".into(),
            runs: vec![run],
        };
        let out = svg(&curves).unwrap();
        // Three panels, a test and a train dot in each (none before the dots existed).
        assert!(out.matches("<circle").count() >= 6, "{out}");
    }
}
