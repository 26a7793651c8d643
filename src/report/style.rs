//! Shared look of every picture: the bundled font, colours, and PNG + SVG output.
//!
//! The font ships in the repository (`assets/fonts`, DejaVu Sans) and is compiled in, so text
//! renders the same on a fresh headless machine as on a desktop: plotters' `ab_glyph` backend
//! finds no system fonts by itself.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{anyhow, Context, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::store::durable;

/// The family name every text style uses.
pub const FONT: &str = "sans-serif";

static REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// Registers the bundled font with plotters (once per process).
pub fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (style, bytes) in [(FontStyle::Normal, REGULAR), (FontStyle::Bold, BOLD)] {
            if plotters::style::register_font(FONT, style, bytes).is_err() {
                panic!("the bundled font assets/fonts is not a valid TrueType file");
            }
        }
    });
}

/// Colour of a VAE at `beta` on a viridis scale over `[0, max_beta]` (the yellow end is cut
/// off: it is unreadable on white).
pub fn beta_color(beta: f64, max_beta: f64) -> RGBColor {
    let t = if max_beta > 0.0 { beta / max_beta } else { 0.0 };
    ViridisRGB::get_color(0.9 * t.clamp(0.0, 1.0))
}

/// The AE has no β: it is drawn in a neutral colour.
pub const AE_COLOR: RGBColor = RGBColor(230, 85, 13);

/// Ten well-separated colours (Tableau 10) for categories: latent groups, digit labels.
pub const CATEGORY: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Turns a plotters error (generic over the backend) into ours.
pub fn drawn<T, E: std::fmt::Display>(r: std::result::Result<T, E>) -> Result<T> {
    r.map_err(|e| anyhow!("drawing failed: {e}"))
}

/// A picture that can draw itself on any plotters backend.
pub trait Picture {
    /// Size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws onto `root` (already cleared to white).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Draws `picture` on a white `backend` and flushes it to its file.
fn render<DB: DrawingBackend>(backend: DB, picture: &impl Picture) -> Result<()> {
    let root = backend.into_drawing_area();
    drawn(root.fill(&WHITE))?;
    picture.draw(&root)?;
    drawn(root.present())
}

/// Draws the series legend of `chart` in the upper right corner, in the common style.
pub fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    font_size: u32,
) -> Result<()> {
    drawn(
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(160, 160, 160))
            .label_font((FONT, font_size))
            .draw(),
    )
}

/// `picture` as an SVG document (inlined by the HTML report).
pub fn svg(picture: &impl Picture) -> Result<String> {
    register_fonts();
    let mut out = String::new();
    render(SVGBackend::with_string(&mut out, picture.size()), picture)?;
    Ok(out)
}

/// Writes `picture` as `<stem>.png` and, when `svg`, `<stem>.svg`; each file appears whole
/// ([`durable::write_with`]). Returns the files written.
pub fn save(picture: &impl Picture, stem: &Path, svg: bool) -> Result<Vec<PathBuf>> {
    register_fonts();
    let dir = stem.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for ext in ["png", "svg"].into_iter().take(if svg { 2 } else { 1 }) {
        let out = stem.with_extension(ext);
        // The temporary keeps the extension, which picks the encoder.
        durable::write_with(&out, |tmp| {
            if ext == "png" {
                render(BitMapBackend::new(tmp, picture.size()), picture)
            } else {
                render(SVGBackend::new(tmp, picture.size()), picture)
            }
        })?;
        written.push(out);
    }
    Ok(written)
}

/// A vertical colour bar at `(x, top)`, `height` pixels: `title` above it, `color` of the
/// values from `max` (top) to 0 (bottom), and ticks at `max`, `max / 2` and 0.
pub fn color_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: (&str, u32),
    (x, top, height): (i32, i32, i32),
    max: f64,
    color: impl Fn(f64) -> RGBColor,
    label: &FontDesc,
) -> Result<()> {
    drawn(area.draw(&Text::new(
        title.0,
        (x, top - 30),
        (FONT, title.1).into_font(),
    )))?;
    for k in 0..height {
        let value = max * (1.0 - f64::from(k) / f64::from(height - 1));
        drawn(area.draw(&Rectangle::new(
            [(x, top + k), (x + 24, top + k + 1)],
            color(value).filled(),
        )))?;
    }
    for (frac, value) in [(0.0, max), (0.5, max / 2.0), (1.0, 0.0)] {
        let y = top + (frac * f64::from(height - 1)) as i32;
        drawn(area.draw(&Text::new(
            format!("{value:.2}"),
            (x + 32, y - 8),
            label.clone(),
        )))?;
    }
    Ok(())
}
