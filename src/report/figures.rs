//! Figures decoded from trained models: reconstructions, prior samples, latent traversals, and
//! for 2-D latents the test set's latent means and the decoded manifold.
//!
//! [`Inspector`] loads a finished run's `model.bpk` and answers the questions the figures ask;
//! [`Sheet`] lays digits out in a labelled grid; [`LatentScatter`] is the 2-D latent chart.

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::TensorData;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::style::{drawn, legend, Picture, CATEGORY, FONT};
use crate::config::RunSpec;
use crate::data::{rows, Dataset, Mnist, CLASSES, PIXELS};
use crate::model::{kl_divergence, Autoencoder};
use crate::store::RunDir;

pub use crate::defaults::SAMPLE_SEED;

/// The fixed test digits every reconstruction figure shows: the first `per_digit` images of
/// each digit 0–9 in the test set, digit by digit.
pub fn showcase_indices(test: &Mnist, per_digit: usize) -> Vec<usize> {
    (0..10u8)
        .flat_map(|d| {
            test.labels
                .iter()
                .enumerate()
                .filter(move |(_, l)| **l == d)
                .map(|(i, _)| i)
                .take(per_digit)
        })
        .collect()
}

/// A finished run's model, ready to answer questions on the CPU.
pub struct Inspector {
    net: Autoencoder,
    device: Device,
}

impl Inspector {
    /// Loads the trained model of run `dir` (parameters `spec`) from its `model.bpk`.
    pub fn load(dir: &RunDir, spec: &RunSpec) -> Result<Self> {
        let (net, device) = crate::eval::load_trained(dir, spec)?;
        Ok(Self { net, device })
    }

    /// True for a VAE (a prior to sample, KL per dimension).
    pub fn is_variational(&self) -> bool {
        self.net.is_variational()
    }

    /// Latent size.
    pub fn latent(&self) -> usize {
        self.net.latent()
    }

    /// True for a CVAE: decoding needs the class to draw.
    pub fn is_conditional(&self) -> bool {
        self.net.is_conditional()
    }

    /// The images' one-hot labels when the model takes them (CVAE).
    fn labels_of(&self, data: &Mnist, indices: &[usize]) -> Option<Tensor<2>> {
        self.is_conditional()
            .then(|| data.one_hot(indices, &self.device))
    }

    /// Posterior means (VAE) or codes (AE) of the images at `indices`, and the VAE's
    /// log-variances (a CVAE is given the images' labels).
    pub fn encode(
        &self,
        data: &Mnist,
        indices: &[usize],
    ) -> (Vec<Vec<f32>>, Option<Vec<Vec<f32>>>) {
        let labels = self.labels_of(data, indices);
        let (mu, log_var) = self.net.encode(data.batch(indices, &self.device), labels);
        (rows(mu), log_var.map(rows))
    }

    /// Decodes latent vectors to images; a CVAE draws each as the class in `classes` (one per
    /// vector; ignored by unconditional models).
    pub fn decode(&self, z: &[Vec<f32>], classes: &[u8]) -> Vec<Vec<f32>> {
        let latent = self.latent();
        let flat: Vec<f32> = z.iter().flatten().copied().collect();
        let t = Tensor::from_data(TensorData::new(flat, [z.len(), latent]), &self.device);
        let labels = self.is_conditional().then(|| {
            assert_eq!(
                classes.len(),
                z.len(),
                "a CVAE decodes one class per vector"
            );
            crate::data::one_hot(classes, &self.device)
        });
        rows(self.net.decode(t, labels))
    }

    /// Reconstructions of the images at `indices`, decoded from the posterior mean (so the
    /// figure does not change with the sampling noise).
    pub fn reconstruct(&self, data: &Mnist, indices: &[usize]) -> Vec<Vec<f32>> {
        let (mu, _) = self.encode(data, indices);
        let classes: Vec<u8> = indices.iter().map(|&i| data.labels[i]).collect();
        self.decode(&mu, &classes)
    }

    /// `n` images decoded from `z ~ N(0, I)` drawn with `seed`; a CVAE draws class `k % 10`
    /// for the k-th image, or `class` for all of them.
    pub fn sample(&self, n: usize, seed: u64, class: Option<u8>) -> Vec<Vec<f32>> {
        self.device.seed(seed);
        let classes: Vec<u8> = (0..n)
            .map(|k| class.unwrap_or((k % crate::data::CLASSES) as u8))
            .collect();
        rows(self.net.sample(n, Some(&classes), &self.device))
    }

    /// Mean KL per latent dimension over the images at `indices` (nats); `None` for the AE.
    pub fn kl_per_dim(&self, data: &Mnist, indices: &[usize]) -> Option<Vec<f64>> {
        let labels = self.labels_of(data, indices);
        let (mu, log_var) = self.net.encode(data.batch(indices, &self.device), labels);
        let log_var = log_var?;
        let per_dim = (0..self.latent())
            .map(|d| {
                let kl = kl_divergence(mu.clone().narrow(1, d, 1), log_var.clone().narrow(1, d, 1));
                f64::from(kl.mean().into_scalar::<f32>())
            })
            .collect();
        Some(per_dim)
    }

    /// Latent traversal: for each of `dims`, `start` with that component replaced by each of
    /// `values`, decoded (as `class`, CVAE). One row per dimension.
    pub fn traverse(
        &self,
        start: &[f32],
        dims: &[usize],
        values: &[f32],
        class: u8,
    ) -> Vec<Vec<Vec<f32>>> {
        dims.iter()
            .map(|&d| {
                let zs: Vec<Vec<f32>> = values
                    .iter()
                    .map(|&v| {
                        let mut z = start.to_vec();
                        z[d] = v;
                        z
                    })
                    .collect();
                self.decode(&zs, &vec![class; zs.len()])
            })
            .collect()
    }
}

/// Prior samples of a model as a sheet: a CVAE's `n` draws of each class (one row per class,
/// or the one row `class`); an unconditional model's `n` draws, 8 to a row.
pub fn sample_sheet(
    model: &Inspector,
    dataset: Dataset,
    what: &str,
    n: usize,
    seed: u64,
    class: Option<u8>,
) -> Sheet {
    let draws = |class| model.sample(n, seed, class);
    let (subtitle, rows) = match (model.is_conditional(), class) {
        (true, Some(c)) => (
            format!(
                "{n} draws of z ~ N(0, I), seed {seed}, all decoded as class {}",
                dataset.class_name(c.into())
            ),
            vec![(dataset.class_name(c.into()), draws(Some(c)))],
        ),
        (true, None) => (
            format!("{n} draws of z ~ N(0, I) per class, seed {seed} (the same z in every row)"),
            (0..CLASSES as u8)
                .map(|c| (dataset.class_name(c.into()), draws(Some(c))))
                .collect(),
        ),
        (false, _) => (
            format!("{n} draws of z ~ N(0, I), seed {seed}"),
            draws(None)
                .chunks(8)
                .map(|c| (String::new(), c.to_vec()))
                .collect(),
        ),
    };
    Sheet {
        title: format!("{what}: samples from the prior"),
        subtitle,
        columns: Vec::new(),
        rows,
    }
}

/// A labelled grid of 28×28 digits: a title, optional column headers, one label per row.
#[derive(Clone, Debug, Default)]
pub struct Sheet {
    /// Title line.
    pub title: String,
    /// A second, smaller line under the title (what the rows and columns are).
    pub subtitle: String,
    /// Column headers (empty: none).
    pub columns: Vec<String>,
    /// Rows: label and images (`PIXELS` values in [0, 1] each).
    pub rows: Vec<(String, Vec<Vec<f32>>)>,
}

const SCALE: i32 = 2;
const CELL: i32 = 28 * SCALE;
const GAP: i32 = 4;

impl Sheet {
    fn label_width(&self) -> i32 {
        let longest = self
            .rows
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        if longest == 0 {
            16
        } else {
            (longest as i32 * 9 + 24).max(60)
        }
    }

    fn header_height(&self) -> i32 {
        let mut h = 52;
        if !self.subtitle.is_empty() {
            h += 26;
        }
        if !self.columns.is_empty() {
            h += 24;
        }
        h
    }
}

impl Picture for Sheet {
    fn size(&self) -> (u32, u32) {
        let cols = self.rows.iter().map(|(_, r)| r.len()).max().unwrap_or(0) as i32;
        let width = self.label_width() + cols * (CELL + GAP) + 16;
        let height = self.header_height() + self.rows.len() as i32 * (CELL + GAP) + 12;
        // Text widths estimated from DejaVu Sans' average advance at these sizes.
        let title_width = self.title.chars().count() as i32 * 14 + 40;
        let subtitle_width = self.subtitle.chars().count() as i32 * 8 + 32;
        (
            width.max(title_width).max(subtitle_width).max(360) as u32,
            height as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let title = (FONT, 24).into_font().style(FontStyle::Bold);
        drawn(root.draw(&Text::new(self.title.as_str(), (16, 14), title)))?;
        let small = (FONT, 16).into_font().color(&RGBColor(70, 70, 70));
        if !self.subtitle.is_empty() {
            drawn(root.draw(&Text::new(self.subtitle.as_str(), (16, 48), small.clone())))?;
        }
        let x0 = self.label_width();
        let y0 = self.header_height();
        for (c, header) in self.columns.iter().enumerate() {
            let x = x0 + c as i32 * (CELL + GAP) + 6;
            drawn(root.draw(&Text::new(header.as_str(), (x, y0 - 22), small.clone())))?;
        }
        let label = (FONT, 16).into_font();
        for (r, (name, images)) in self.rows.iter().enumerate() {
            let y = y0 + r as i32 * (CELL + GAP);
            drawn(root.draw(&Text::new(
                name.as_str(),
                (10, y + CELL / 2 - 9),
                label.clone(),
            )))?;
            for (c, image) in images.iter().enumerate() {
                let x = x0 + c as i32 * (CELL + GAP);
                draw_digit(root, image, (x, y))?;
            }
        }
        Ok(())
    }
}

/// White ink on black, `SCALE` screen pixels per image pixel.
fn draw_digit<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    image: &[f32],
    (x, y): (i32, i32),
) -> Result<()> {
    drawn(root.draw(&Rectangle::new(
        [(x, y), (x + CELL, y + CELL)],
        BLACK.filled(),
    )))?;
    for (i, v) in image.iter().enumerate().take(PIXELS) {
        let level = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        if level < 8 {
            continue;
        }
        let (px, py) = (x + (i % 28) as i32 * SCALE, y + (i / 28) as i32 * SCALE);
        drawn(root.draw(&Rectangle::new(
            [(px, py), (px + SCALE, py + SCALE)],
            RGBColor(level, level, level).filled(),
        )))?;
    }
    Ok(())
}

/// The test set's latent means of a 2-D latent model, coloured by digit label.
#[derive(Clone, Debug)]
pub struct LatentScatter {
    /// Title line.
    pub title: String,
    /// (z₁, z₂, label) per test image.
    pub points: Vec<(f32, f32, u8)>,
}

impl Picture for LatentScatter {
    fn size(&self) -> (u32, u32) {
        (900, 840)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let lim = self
            .points
            .iter()
            .flat_map(|p| [p.0.abs(), p.1.abs()])
            .filter(|v| v.is_finite())
            .fold(1.0f32, f32::max)
            * 1.05;
        let lim = f64::from(lim);
        let mut chart = drawn(
            ChartBuilder::on(root)
                .caption(&self.title, (FONT, 24).into_font().style(FontStyle::Bold))
                .margin(20)
                .x_label_area_size(56)
                .y_label_area_size(64)
                .build_cartesian_2d(-lim..lim, -lim..lim),
        )?;
        drawn(
            chart
                .configure_mesh()
                .x_desc("z₁ (posterior mean)")
                .y_desc("z₂ (posterior mean)")
                .label_style((FONT, 15))
                .axis_desc_style((FONT, 17))
                .light_line_style(RGBColor(238, 238, 238))
                .draw(),
        )?;
        for digit in 0..10u8 {
            let color = CATEGORY[digit as usize];
            drawn(
                chart.draw_series(self.points.iter().filter(|p| p.2 == digit).map(|p| {
                    Circle::new((f64::from(p.0), f64::from(p.1)), 2, color.mix(0.6).filled())
                })),
            )?
            .label(format!("digit {digit}"))
            .legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
        }
        legend(&mut chart, 15)
    }
}
