//! Charts of the KL term in detail: where and when a run's latent units switch off
//! ([`KlHeatmap`], from its `kl_dims.parquet`) and a sweep's KL schedules beside the test KL
//! they lead to ([`KlSchedules`], from the runs' `metrics.parquet`).
//!
//! Like [`super::charts`], both read only Parquet rows, so they can be redrawn at any time
//! without a model or a GPU.

use std::cmp::Ordering;

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::charts::RunData;
use super::style::{color_bar, drawn, legend, Picture, CATEGORY, FONT};
use crate::config::params::{describe, varying_keys};
use crate::config::RunSpec;
use crate::data::Split;
use crate::store::{EpochRow, KlDimRow};

/// One run's per-unit KL as a grid: latent units (rows) by epochs (columns).
#[derive(Clone, Debug)]
pub struct KlGrid {
    /// The epochs that have rows, ascending.
    pub epochs: Vec<u32>,
    /// The latent dimensions (0-based), by their final-epoch KL, largest first; ties by
    /// dimension.
    pub units: Vec<u32>,
    /// `values[i][j]`: mean test KL per image of `units[i]` after `epochs[j]`, nats; NaN where
    /// there is no row.
    pub values: Vec<Vec<f64>>,
}

/// Larger first, NaN (no value) last: the order of the heat map's rows.
fn larger_first(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
    }
}

/// The grid of `rows` (a run's `kl_dims.parquet`): every row in its cell, units sorted so
/// that the active ones come first and the ones that switched off sink to the bottom.
pub fn kl_grid(rows: &[KlDimRow]) -> KlGrid {
    let sorted = |f: fn(&KlDimRow) -> u32| {
        let mut v: Vec<u32> = rows.iter().map(f).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let (epochs, dims) = (sorted(|r| r.epoch), sorted(|r| r.dim));
    let mut values = vec![vec![f64::NAN; epochs.len()]; dims.len()];
    for r in rows {
        // Both searches succeed: the lists were built from these rows.
        if let (Ok(i), Ok(j)) = (dims.binary_search(&r.dim), epochs.binary_search(&r.epoch)) {
            values[i][j] = r.kl;
        }
    }
    let last = |i: usize| values[i].last().copied().unwrap_or(f64::NAN);
    let mut order: Vec<usize> = (0..dims.len()).collect();
    order.sort_by(|&a, &b| larger_first(last(a), last(b)).then(dims[a].cmp(&dims[b])));
    KlGrid {
        epochs,
        units: order.iter().map(|&i| dims[i]).collect(),
        values: order
            .iter()
            .map(|&i| std::mem::take(&mut values[i]))
            .collect(),
    }
}

/// Width of the colour-bar column beside a heat map.
const BAR_WIDTH: u32 = 150;

/// Shade of cells without a row (an epoch missing from the file).
const MISSING: RGBColor = RGBColor(225, 225, 225);

/// A run's per-unit KL over epochs as a heat map: one row per latent unit (`z<dim>`, most
/// active at the top), one column per epoch, colour = KL on a viridis scale over
/// `[0, largest KL]`, with a colour bar in nats.
#[derive(Clone, Debug)]
pub struct KlHeatmap {
    /// Chart title (names the run).
    pub title: String,
    /// The cells.
    pub grid: KlGrid,
}

impl KlHeatmap {
    /// Pixels per unit row: tall rows for a few units, at least a label's height for 64.
    fn row_height(&self) -> u32 {
        (640 / self.grid.units.len().max(1) as u32).clamp(12, 40)
    }

    /// The top of the colour scale: the largest finite KL (1 when there is none above 0, so
    /// that the scale is never empty).
    fn max_kl(&self) -> f64 {
        let max = self
            .grid
            .values
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        if max > 0.0 {
            max
        } else {
            1.0
        }
    }

    /// Colour of `kl` on a scale topping at `max`.
    fn color(kl: f64, max: f64) -> RGBColor {
        ViridisRGB::get_color((kl / max).clamp(0.0, 1.0))
    }

    fn cells<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, max: f64) -> Result<()> {
        let g = &self.grid;
        let n = g.units.len();
        let (first, last) = match (g.epochs.first(), g.epochs.last()) {
            (Some(&first), Some(&last)) if n > 0 => (first, last),
            _ => {
                let message = "no per-unit KL rows: nothing to show";
                return drawn(area.draw(&Text::new(message, (120, 120), (FONT, 18).into_font())));
            }
        };
        // Epoch e spans [e - 0.5, e + 0.5] and unit row k spans [k - 0.5, k + 0.5], so that
        // integer ticks fall on cell centres; row 0 (the most active unit) is at the top.
        let span = last - first + 1;
        let mut chart = drawn(
            ChartBuilder::on(area)
                .margin(14)
                .x_label_area_size(56)
                .y_label_area_size(70)
                .build_cartesian_2d(
                    f64::from(first) - 0.5..f64::from(last) + 0.5,
                    -0.5..n as f64 - 0.5,
                ),
        )?;
        let unit_at = |y: &f64| {
            let k = y.round();
            if (y - k).abs() > 1e-6 || k < 0.0 || k >= n as f64 {
                return String::new();
            }
            format!("z{}", g.units[n - 1 - k as usize])
        };
        let unit_font = (self.row_height() - 2).min(15);
        drawn(chart.plotting_area().fill(&MISSING))?;
        drawn(
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("epoch")
                .y_desc("latent unit (sorted by final KL)")
                // One more label than cells keeps the ticks on whole epochs and on every unit.
                .x_labels(span.min(10) as usize + 1)
                .y_labels(n + 1)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&unit_at)
                .x_label_style((FONT, 15))
                .y_label_style((FONT, unit_font))
                .axis_desc_style((FONT, 17))
                .draw(),
        )?;
        for (i, row) in g.values.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            let runs = color_runs(&g.epochs, row, |kl| Self::color(kl, max));
            drawn(chart.draw_series(runs.into_iter().map(|(from, to, color)| {
                Rectangle::new(
                    [
                        (f64::from(from) - 0.5, y - 0.5),
                        (f64::from(to) + 0.5, y + 0.5),
                    ],
                    color.filled(),
                )
            })))?;
        }
        Ok(())
    }

    fn colorbar<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, max: f64) -> Result<()> {
        let (_, h) = area.dim_in_pixel();
        let (top, x) = (44i32, 16i32);
        let height = (h as i32 - top - 110).max(60);
        let label = (FONT, 15).into_font();
        let bar = (x, top, height);
        color_bar(
            area,
            ("KL (nats)", 17),
            bar,
            max,
            |kl| Self::color(kl, max),
            &label,
        )?;
        if self.grid.values.iter().flatten().any(|v| v.is_nan()) {
            let y = top + height + 24;
            drawn(area.draw(&Rectangle::new(
                [(x, y), (x + 24, y + 14)],
                MISSING.filled(),
            )))?;
            drawn(area.draw(&Text::new("no row", (x + 32, y - 2), label)))?;
        }
        Ok(())
    }
}

/// One row's cells as runs of consecutive epochs of one colour, `(first, last, colour)`: a
/// long run of epochs then draws as a few rectangles rather than one per epoch (a unit that
/// switched off is one). NaN cells are left out (they show the background).
fn color_runs(
    epochs: &[u32],
    row: &[f64],
    color: impl Fn(f64) -> RGBColor,
) -> Vec<(u32, u32, RGBColor)> {
    let mut runs: Vec<(u32, u32, RGBColor)> = Vec::new();
    for (&epoch, &kl) in epochs.iter().zip(row) {
        if kl.is_nan() {
            continue;
        }
        let c = color(kl);
        match runs.last_mut() {
            Some((_, to, run)) if *to + 1 == epoch && *run == c => *to = epoch,
            _ => runs.push((epoch, epoch, c)),
        }
    }
    runs
}

impl Picture for KlHeatmap {
    fn size(&self) -> (u32, u32) {
        let rows = self.grid.units.len().max(1) as u32 * self.row_height();
        (1400, (rows + 150).max(380))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let body = drawn(root.titled(&self.title, (FONT, 24).into_font().style(FontStyle::Bold)))?;
        let (w, _) = body.dim_in_pixel();
        let (plot, bar) = body.split_horizontally(w.saturating_sub(BAR_WIDTH));
        let max = self.max_kl();
        self.cells(&plot, max)?;
        self.colorbar(&bar, max)
    }
}

/// The parameters that set how the KL term is weighted over training: runs that agree on
/// them follow one schedule.
pub const SCHEDULE_KEYS: [&str; 7] = [
    "beta",
    "kl_warmup",
    "kl_cycles",
    "kl_cycle_ramp",
    "free_bits",
    "capacity",
    "capacity_epochs",
];

/// The KL-control keys a spec sets (those its schedule depends on), in [`SCHEDULE_KEYS`]
/// order; empty for plain β weighting.
pub fn controls(spec: &RunSpec) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if spec.kl_warmup > 0 {
        keys.push("kl_warmup");
    }
    if spec.kl_cycles > 0 {
        keys.extend(["kl_cycles", "kl_cycle_ramp"]);
    }
    if spec.free_bits > 0.0 {
        keys.push("free_bits");
    }
    if spec.capacity > 0.0 {
        keys.extend(["capacity", "capacity_epochs"]);
    }
    keys
}

/// Legend text of a schedule group: β when it varies between groups, then the KL-control keys
/// the group sets, or "no KL control".
fn schedule_label(spec: &RunSpec, varying: &[&str]) -> String {
    let set = controls(spec);
    let control = if set.is_empty() {
        "no KL control".to_string()
    } else {
        describe(spec, &set)
    };
    if varying.contains(&"beta") {
        format!("{} {control}", describe(spec, &["beta"]))
    } else {
        control
    }
}

/// The most points a schedule's line is drawn with (every step of short runs).
const CURVE_POINTS: usize = 2000;

/// The schedule of `spec` step by step, as `(epoch, value)` with the epoch fractional (the end
/// of each optimiser step), from the functions training uses (`RunSpec::kl_weight_at`,
/// `RunSpec::capacity_at`): a cyclical schedule's cycles show whatever the epoch count.
fn schedule_curve(spec: &RunSpec, panel: SchedulePanel) -> Vec<(f64, f64)> {
    let batches = spec.steps_per_epoch();
    let steps = spec.epochs * batches;
    let stride = steps.div_ceil(CURVE_POINTS).max(1);
    let mut at: Vec<usize> = (0..steps).step_by(stride).collect();
    at.push(steps.saturating_sub(1));
    at.into_iter()
        .filter_map(|step| {
            let value = match panel {
                SchedulePanel::Weight => Some(spec.kl_weight_at(step, batches)),
                SchedulePanel::Capacity => spec.capacity_at(step, batches),
                SchedulePanel::Kl => None,
            }?;
            Some(((step + 1) as f64 / batches as f64, value))
        })
        .collect()
}

/// `spec`'s schedule: the values of [`SCHEDULE_KEYS`].
fn schedule(spec: &RunSpec) -> (f64, usize, usize, f64, f64, f64, usize) {
    (
        spec.beta,
        spec.kl_warmup,
        spec.kl_cycles,
        spec.kl_cycle_ramp,
        spec.free_bits,
        spec.capacity,
        spec.capacity_epochs,
    )
}

/// A sweep's KL schedules and what they do: the test KL per epoch of every VAE or CVAE run
/// beside the KL weight its schedule set (and, for capacity-controlled runs, the capacity C),
/// one colour per schedule; a dot marks every epoch so that one-epoch runs show.
#[derive(Clone, Debug)]
pub struct KlSchedules {
    /// Chart title.
    pub title: String,
    /// One group per schedule: legend text and its runs.
    pub groups: Vec<(String, Vec<RunData>)>,
}

/// One panel of a [`KlSchedules`] chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SchedulePanel {
    /// The test KL per image.
    Kl,
    /// The effective KL weight (β times the schedule's share).
    Weight,
    /// The capacity C.
    Capacity,
}

impl SchedulePanel {
    fn value(self, row: &EpochRow) -> Option<f64> {
        match self {
            SchedulePanel::Kl => row.kl,
            SchedulePanel::Weight => row.kl_weight,
            SchedulePanel::Capacity => row.capacity,
        }
    }

    fn title(self) -> &'static str {
        match self {
            SchedulePanel::Kl => "test KL divergence",
            SchedulePanel::Weight => "KL weight",
            SchedulePanel::Capacity => "capacity C",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            SchedulePanel::Kl => "nats per image",
            SchedulePanel::Weight => "β × schedule share, per step",
            SchedulePanel::Capacity => "C (nats)",
        }
    }
}

/// A run's `(epoch, value)` points of `panel`, from its test rows (they carry the epoch's
/// schedule values as the train rows do), in epoch order; non-finite values left out.
fn points(run: &RunData, panel: SchedulePanel) -> Vec<(f64, f64)> {
    let mut xy: Vec<(f64, f64)> = run
        .rows
        .iter()
        .filter(|r| r.split == Split::Test)
        .filter_map(|r| Some((f64::from(r.epoch), panel.value(r)?)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    xy.sort_by(|a, b| a.0.total_cmp(&b.0));
    xy
}

/// One run's line of a panel: its group, the run and its (epoch, value) points.
type GroupSeries<'a> = (usize, &'a RunData, Vec<(f64, f64)>);

impl KlSchedules {
    /// Groups the VAE and CVAE runs of `runs` that have a finished epoch by schedule (β and
    /// the KL-control keys); an error when there is none.
    pub fn new(title: &str, runs: &[RunData]) -> Result<Self> {
        let mut groups: Vec<(RunSpec, Vec<RunData>)> = Vec::new();
        for run in runs
            .iter()
            .filter(|r| r.spec.model.is_variational() && r.last(Split::Test).is_some())
        {
            match groups
                .iter_mut()
                .find(|(spec, _)| schedule(spec) == schedule(&run.spec))
            {
                Some((_, members)) => members.push(run.clone()),
                None => groups.push((run.spec.clone(), vec![run.clone()])),
            }
        }
        if groups.is_empty() {
            bail!("the KL schedule chart needs a VAE or CVAE run with a finished epoch");
        }
        let varying: Vec<&str> = varying_keys(groups.iter().map(|(spec, _)| spec))
            .into_iter()
            .filter(|k| SCHEDULE_KEYS.contains(k))
            .collect();
        Ok(Self {
            title: title.to_string(),
            groups: groups
                .into_iter()
                .map(|(spec, members)| (schedule_label(&spec, &varying), members))
                .collect(),
        })
    }

    /// Whether any run has a capacity C (the third panel is drawn only then).
    fn has_capacity(&self) -> bool {
        self.groups
            .iter()
            .flat_map(|(_, runs)| runs)
            .any(|r| !points(r, SchedulePanel::Capacity).is_empty())
    }

    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        panel: SchedulePanel,
    ) -> Result<()> {
        let series: Vec<GroupSeries> = self
            .groups
            .iter()
            .enumerate()
            .flat_map(|(g, (_, runs))| runs.iter().map(move |r| (g, r, points(r, panel))))
            .collect();
        // The schedules, step by step: one line per group (its seeds share it).
        let curves: Vec<(usize, Vec<(f64, f64)>)> = match panel {
            SchedulePanel::Kl => Vec::new(),
            _ => self
                .groups
                .iter()
                .enumerate()
                .map(|(g, (_, runs))| (g, schedule_curve(&runs[0].spec, panel)))
                .collect(),
        };
        let all = series
            .iter()
            .flat_map(|(_, _, xy)| xy)
            .chain(curves.iter().flat_map(|(_, xy)| xy));
        let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max);
        let hi = all.clone().map(|p| p.1).fold(0.0, f64::max);
        let lo = all.clone().map(|p| p.1).fold(0.0, f64::min);
        let pad = ((hi - lo) * 0.06).max(1e-3);
        // Half an epoch either side, so that the first and last dots sit inside the frame; the
        // schedules start at step 0.
        let x_lo = if curves.is_empty() { 0.5 } else { 0.0 };
        let mut chart = drawn(
            ChartBuilder::on(area)
                .caption(panel.title(), (FONT, 22).into_font().style(FontStyle::Bold))
                .margin(14)
                .x_label_area_size(50)
                .y_label_area_size(70)
                .build_cartesian_2d(x_lo..x_max + 0.5, (lo - pad)..(hi + pad)),
        )?;
        drawn(
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc(panel.unit())
                // One more label than epochs keeps the ticks on whole epochs.
                .x_labels(x_max.min(10.0) as usize + 1)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .label_style((FONT, 15))
                .axis_desc_style((FONT, 17))
                .light_line_style(RGBColor(235, 235, 235))
                .draw(),
        )?;
        for (g, xy) in curves {
            let color = CATEGORY[g % CATEGORY.len()];
            if panel == SchedulePanel::Capacity {
                drawn(chart.draw_series(DashedLineSeries::new(xy, 8, 5, color.stroke_width(2))))?;
            } else {
                drawn(chart.draw_series(LineSeries::new(xy, color.stroke_width(2))))?;
            }
        }
        let mut labelled = vec![false; self.groups.len()];
        for (g, _, xy) in series {
            let color = CATEGORY[g % CATEGORY.len()];
            drawn(chart.draw_series(xy.iter().map(|&p| Circle::new(p, 3, color.filled()))))?;
            if panel != SchedulePanel::Kl {
                // The schedule's line is drawn above; the dots are the recorded epoch ends.
                continue;
            }
            let line = drawn(chart.draw_series(LineSeries::new(xy, color.stroke_width(2))))?;
            // The legend names each schedule once, on the KL panel.
            if !labelled[g] {
                labelled[g] = true;
                line.label(&self.groups[g].0).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
                });
            }
        }
        if panel == SchedulePanel::Kl {
            legend(&mut chart, 15)?;
        }
        Ok(())
    }
}

impl Picture for KlSchedules {
    fn size(&self) -> (u32, u32) {
        if self.has_capacity() {
            (1950, 620)
        } else {
            (1400, 620)
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let body = drawn(root.titled(&self.title, (FONT, 26).into_font().style(FontStyle::Bold)))?;
        let mut panels = vec![SchedulePanel::Kl, SchedulePanel::Weight];
        if self.has_capacity() {
            panels.push(SchedulePanel::Capacity);
        }
        for (area, panel) in body.split_evenly((1, panels.len())).iter().zip(panels) {
            self.panel(area, panel)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelKind;
    use crate::report::style::svg;
    use crate::store::{read_kl_dims, write_kl_dims, RunState};

    /// The grid holds exactly the rows written to `kl_dims.parquet`, its units ordered by their
    /// final KL, and the heat map draws it, for several epochs and for one.
    #[test]
    fn the_heat_map_holds_the_kl_dims_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kl_dims.parquet");
        // Unit 0 grows, unit 1 holds, unit 2 switches off, unit 3 ends level with unit 1
        // (a tie: by dimension), unit 4 is off throughout.
        let kl = |epoch: u32, dim: u32| -> f64 {
            let e = f64::from(epoch);
            match dim {
                0 => 1.0 + 0.37 * e,
                1 => 0.8125,
                2 => 2.0 / (e * e * e),
                3 => 0.8125 + 0.1 * (3.0 - e),
                _ => 1e-4 / e,
            }
        };
        let rows: Vec<KlDimRow> = (1..=3)
            .flat_map(|epoch| {
                (0..5).map(move |dim| KlDimRow {
                    epoch,
                    dim,
                    kl: kl(epoch, dim),
                })
            })
            .collect();
        write_kl_dims(&path, &rows).unwrap();
        let back = read_kl_dims(&path).unwrap();
        assert_eq!(back, rows);
        let grid = kl_grid(&back);
        assert_eq!(grid.epochs, [1, 2, 3]);
        assert_eq!(grid.units, [0, 1, 3, 2, 4]);
        let cells = grid.values.iter().flatten().filter(|v| !v.is_nan()).count();
        assert_eq!(cells, back.len());
        for row in &back {
            let i = grid.units.iter().position(|&u| u == row.dim).unwrap();
            let j = grid.epochs.iter().position(|&e| e == row.epoch).unwrap();
            assert_eq!(grid.values[i][j].to_bits(), row.kl.to_bits(), "{row:?}");
        }
        let finals: Vec<f64> = grid.values.iter().map(|v| v[v.len() - 1]).collect();
        assert!(finals.windows(2).all(|w| w[0] >= w[1]), "{finals:?}");

        let picture = KlHeatmap {
            title: "run r0: KL per latent unit".into(),
            grid,
        };
        let out = svg(&picture).unwrap();
        assert!(out.contains("<rect") && out.contains("z3"), "{out}");
        let one = KlHeatmap {
            title: "run r1: one epoch".into(),
            grid: kl_grid(&rows[..1]),
        };
        assert!(svg(&one).unwrap().contains("<rect"));
    }

    fn run(id: &str, spec: RunSpec, kl_weight: f64) -> RunData {
        let row = EpochRow {
            run_id: id.into(),
            epoch: 1,
            split: Split::Test,
            recon: 30.0,
            kl: Some(4.0),
            beta_kl: Some(4.0 * kl_weight),
            loss: 30.0 + 4.0 * kl_weight,
            article_loss: None,
            lr: Some(1e-3),
            kl_weight: Some(kl_weight),
            capacity: (spec.capacity > 0.0).then_some(0.5),
            seconds: 1.0,
        };
        RunData {
            id: id.into(),
            spec,
            provenance: None,
            state: RunState::Done,
            message: None,
            rows: vec![row],
            eval: Vec::new(),
        }
    }

    /// One-epoch runs show as dots, one legend entry per schedule, and the capacity panel
    /// appears with a capacity-controlled run.
    #[test]
    fn the_schedule_chart_groups_runs_by_schedule() {
        let vae = RunSpec {
            model: ModelKind::Vae,
            ..RunSpec::default()
        };
        let warm = RunSpec {
            kl_warmup: 2,
            ..vae.clone()
        };
        let runs = [
            run("a", vae.clone(), 1.0),
            run("b", warm.clone(), 0.5),
            run("c", RunSpec { seed: 7, ..warm }, 0.5),
        ];
        let chart = KlSchedules::new("sweep s: KL schedules", &runs).unwrap();
        let labels: Vec<&str> = chart.groups.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["no KL control", "kl_warmup=2"]);
        assert_eq!(chart.size(), (1400, 620));
        let out = svg(&chart).unwrap();
        assert!(
            out.contains("<circle") && out.contains("kl_warmup=2"),
            "{out}"
        );

        let capped = RunSpec {
            capacity: 5.0,
            capacity_epochs: 3,
            ..vae
        };
        let chart = KlSchedules::new("sweep s", &[run("d", capped, 1.0)]).unwrap();
        let label = &chart.groups[0].0;
        assert!(
            label.starts_with("capacity=5") && label.ends_with(" capacity_epochs=3"),
            "{label}"
        );
        assert_eq!(chart.size(), (1950, 620));
        assert!(svg(&chart).unwrap().contains("capacity C"));
    }
}
