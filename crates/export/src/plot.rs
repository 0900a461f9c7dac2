//! Line charts of heap growth across a series of dumps (`heapscope leaks
//! --plot FILE.png|svg`).
//!
//! The chart is 1200×700 px: a title line, then two panels sharing one x axis
//! (seconds since the first dump, shown in s/min/h/days by span, or the dump
//! number). The top panel is the heap total; the bottom one has a line per
//! series: leaks in strong, distinct colours drawn on top, other series in
//! muted colours, caches in light grey. A column on the right holds the heap
//! total's first/last/peak values and the legend, each entry with the series'
//! first and last values, so the picture reads without the text report.
//!
//! Text in a PNG is rasterised with `ab_glyph` from a TrueType font found
//! on the system at run time (see [`FONT_PATHS`]); nothing is linked against
//! fontconfig or freetype. A PNG drawn where no font is found has every line
//! but no text, rather than failing. An SVG names the `sans-serif` family and
//! needs no font file (one found is only used to measure labels).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ab_glyph::{Font as _, FontVec, PxScale, ScaleFont as _};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendTextStyle, DrawingErrorKind};

/// One line of the bottom panel.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotSeries {
    /// Legend text, e.g. `LEAK: RegistryEntry app.rb:12`.
    pub label: String,
    /// Bytes at each dump (parallel to [`PlotInput::x`]); a non-finite value
    /// is a gap in the line.
    pub values: Vec<f64>,
    pub kind: SeriesKind,
}

/// How a series is drawn: leaks stand out, caches recede.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SeriesKind {
    Leak,
    Cache,
    Other,
}

/// Everything one chart shows.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotInput {
    pub title: String,
    /// Seconds since the first dump when `x_is_time`, else the dump index.
    pub x: Vec<f64>,
    pub x_is_time: bool,
    /// The heap's total bytes at each dump.
    pub total_bytes: Vec<f64>,
    /// Bytes per dump of each series shown.
    pub series: Vec<PlotSeries>,
}

/// Fonts tried in order, each regular face with its bold face (optional);
/// the first regular face that loads is used. The environment variable
/// `HEAPSCOPE_PLOT_FONT` may name another TrueType/OpenType file, tried first.
/// On Debian and Ubuntu the first one is in the package `fonts-dejavu-core`.
pub const FONT_PATHS: &[(&str, &str)] = &[
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
        "/usr/share/fonts/liberation-sans/LiberationSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
        "/usr/share/fonts/truetype/freefont/FreeSansBold.ttf",
    ),
    (
        "/System/Library/Fonts/Supplemental/Arial.ttf",
        "/System/Library/Fonts/Supplemental/Arial Bold.ttf",
    ),
    ("/Library/Fonts/Arial.ttf", "/Library/Fonts/Arial Bold.ttf"),
    (
        "C:\\Windows\\Fonts\\arial.ttf",
        "C:\\Windows\\Fonts\\arialbd.ttf",
    ),
];

pub(crate) const WIDTH: u32 = 1200;
pub(crate) const HEIGHT: u32 = 700;
/// Height of the title line.
pub(crate) const TITLE_H: u32 = 40;
/// Height of the heap-total panel (the series panel takes the rest).
const TOP_H: u32 = 220;
/// Width of the plot column; the legend column takes the rest.
const PLOT_W: u32 = 830;
pub(crate) const FONT: &str = "sans-serif";

pub(crate) const INK: RGBColor = RGBColor(33, 33, 33);
pub(crate) const SOFT_INK: RGBColor = RGBColor(97, 97, 97);
pub(crate) const GRID: RGBColor = RGBColor(232, 232, 232);
const TOTAL_COLOR: RGBColor = RGBColor(38, 50, 56);
const CACHE_COLOR: RGBColor = RGBColor(189, 189, 189);
/// Strong colours for leaks, distinct from each other and from grey.
pub(crate) const LEAK_COLORS: [RGBColor; 9] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
];
/// Muted colours for series that are neither leaks nor caches.
const OTHER_COLORS: [RGBColor; 4] = [
    RGBColor(120, 144, 156),
    RGBColor(161, 136, 127),
    RGBColor(158, 157, 36),
    RGBColor(128, 128, 160),
];

/// Writes the chart to `path`, as PNG or SVG by its extension (`.png`,
/// `.svg`, any case); any other extension is an `InvalidInput` error. The
/// file is replaced atomically (see [`crate::write_atomic`]), and nothing is
/// written when drawing fails.
pub fn plot(path: &Path, input: &PlotInput) -> io::Result<()> {
    write_chart(path, input)
}

/// A chart of this crate: drawn the same way on the PNG and SVG backends.
pub(crate) trait Chart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, ink: Ink) -> DrawResult<DB>;

    /// Refuses data no axis can show, before anything is drawn.
    fn check(&self) -> io::Result<()> {
        Ok(())
    }
}

/// The widest time axis a chart draws: 10^12 seconds (about 31,700 years).
/// Wider spans come from broken clocks (times of `-1e308` and `1e308`,
/// whose difference is not even finite), and only make ticks run away.
pub const MAX_TIME_SPAN: f64 = 1e12;

/// Checks that the finite `values` of an x axis span a drawable range.
pub fn check_x_span(values: impl Iterator<Item = f64> + Clone, what: &str) -> io::Result<()> {
    let (Some(lo), Some(hi)) = (finite_min(values.clone()), finite_max(values)) else {
        return Ok(());
    };
    let span = hi - lo;
    if span.is_finite() && span <= MAX_TIME_SPAN {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{what} run from {lo:e} to {hi:e}: a span of more than {MAX_TIME_SPAN:e} seconds \
             (31,700 years) is not a clock's; check the input's time values"
        ),
    ))
}

impl Chart for PlotInput {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, ink: Ink) -> DrawResult<DB> {
        draw(root, self, ink)
    }

    fn check(&self) -> io::Result<()> {
        check_x_span(self.x.iter().copied(), "the dump times")
    }
}

/// Writes any chart as PNG or SVG by the extension of `path` (see [`plot`]).
pub(crate) fn write_chart(path: &Path, chart: &impl Chart) -> io::Result<()> {
    chart.check()?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png") => {
            let rgb = render_rgb(chart, system_font())?;
            crate::write_atomic(path, |w| encode_png(w, &rgb))
        }
        Some("svg") => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
                let ink = Ink {
                    fonts: system_font(),
                };
                chart.draw(&root, ink).map_err(draw_error)?;
                root.present().map_err(draw_error)?;
            }
            crate::write_atomic(path, |w| w.write_all(svg.as_bytes()))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cannot tell the plot format of {}: the file name must end in .png or .svg",
                path.display()
            ),
        )),
    }
}

/// The chart as RGB pixels, row by row; text only when `fonts` is given.
pub(crate) fn render_rgb(chart: &impl Chart, fonts: Option<&'static Fonts>) -> io::Result<Vec<u8>> {
    let mut rgb = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let backend = PngBackend {
            inner: BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)),
            fonts,
        };
        let root = backend.into_drawing_area();
        chart.draw(&root, Ink { fonts }).map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    Ok(rgb)
}

pub(crate) fn draw_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("cannot draw the plot: {e}"))
}

pub(crate) fn encode_png(w: &mut dyn Write, rgb: &[u8]) -> io::Result<()> {
    let mut encoder = png::Encoder::new(w, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(io::Error::other)?;
    writer.write_image_data(rgb).map_err(io::Error::other)?;
    writer.finish().map_err(io::Error::other)
}

/// A regular face and, when found, its bold face.
pub(crate) struct Fonts {
    regular: FontVec,
    bold: Option<FontVec>,
}

impl Fonts {
    fn get(&self, style: FontStyle) -> &FontVec {
        match (style, &self.bold) {
            (FontStyle::Bold, Some(bold)) => bold,
            _ => &self.regular,
        }
    }
}

/// The first system font found ([`FONT_PATHS`]), loaded once per process.
pub(crate) fn system_font() -> Option<&'static Fonts> {
    static FONTS: OnceLock<Option<Fonts>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let load = |p: &Path| {
                let bytes = std::fs::read(p).ok()?;
                FontVec::try_from_vec(bytes).ok()
            };
            let from_env =
                std::env::var_os("HEAPSCOPE_PLOT_FONT").map(|p| (PathBuf::from(p), None));
            let known = FONT_PATHS
                .iter()
                .map(|(r, b)| (PathBuf::from(r), Some(PathBuf::from(b))));
            from_env
                .into_iter()
                .chain(known)
                .find_map(|(regular, bold)| {
                    let regular = load(&regular)?;
                    let bold = bold.as_deref().and_then(load);
                    Some(Fonts { regular, bold })
                })
        })
        .as_ref()
}

/// The ab_glyph scale for a plotters text size: plotters' SVG backend writes
/// `font-size = size / 1.24`, so the em is that many pixels here too.
fn px_scale(font: &FontVec, size: f64) -> PxScale {
    let em = size as f32 / 1.24;
    let units = font.units_per_em().unwrap_or(1000.0);
    PxScale::from(em * font.height_unscaled() / units)
}

/// The width of `text` in pixels and the font's ascent and descent (the
/// descent is negative).
fn measure(font: &FontVec, size: f64, text: &str) -> (f32, f32, f32) {
    let scaled = font.as_scaled(px_scale(font, size));
    let mut width = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            width += scaled.kern(p, id);
        }
        width += scaled.h_advance(id);
        prev = Some(id);
    }
    (width, scaled.ascent(), scaled.descent())
}

/// plotters' bitmap backend with text drawn by `ab_glyph` from the system
/// font (plotters' own ab_glyph text ignores side bearings, which jumbles
/// narrow glyphs), or not drawn when there is no font.
pub(crate) struct PngBackend<'a> {
    pub(crate) inner: BitMapBackend<'a>,
    pub(crate) fonts: Option<&'static Fonts>,
}

type BitmapError<'a> = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

impl<'a> DrawingBackend for PngBackend<'a> {
    type ErrorType = BitmapError<'a>;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        (w, h): (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, (w, h), src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        Ok(match self.fonts {
            Some(fonts) => {
                let (w, ascent, descent) = measure(fonts.get(style.style()), style.size(), text);
                (w.ceil() as u32, (ascent - descent).ceil() as u32)
            }
            None => (
                estimate_width(text, style.size()) as u32,
                style.size() as u32,
            ),
        })
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let Some(fonts) = self.fonts else {
            return Ok(());
        };
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let font = fonts.get(style.style());
        let (width, ascent, descent) = measure(font, style.size(), text);
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let baseline = match anchor.v_pos {
            VPos::Top => ascent,
            VPos::Center => (ascent + descent) / 2.0,
            VPos::Bottom => descent,
        };
        let transform = style.transform();
        let scaled = font.as_scaled(px_scale(font, style.size()));
        let mut caret = dx;
        let mut prev = None;
        let mut result = Ok(());
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                caret += scaled.kern(p, id);
            }
            prev = Some(id);
            let glyph =
                id.with_scale_and_position(scaled.scale(), ab_glyph::point(caret, baseline));
            caret += scaled.h_advance(id);
            let Some(outline) = font.outline_glyph(glyph) else {
                continue;
            };
            let min = outline.px_bounds().min;
            outline.draw(|gx, gy, coverage| {
                if coverage <= 0.0 || result.is_err() {
                    return;
                }
                let (x, y) =
                    transform.transform(min.x as i32 + gx as i32, min.y as i32 + gy as i32);
                let pixel = BackendColor {
                    alpha: color.alpha * coverage.min(1.0) as f64,
                    rgb: color.rgb,
                };
                result = self.inner.draw_pixel((pos.0 + x, pos.1 + y), pixel);
            });
        }
        result
    }
}

/// A text width from an average glyph width, for when there is no font.
fn estimate_width(text: &str, size: f64) -> f64 {
    (text.chars().count() as f64 * size * 0.45).ceil()
}

pub(crate) type DrawResult<DB> =
    Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Text styles and measurement.
#[derive(Clone, Copy)]
pub(crate) struct Ink {
    pub(crate) fonts: Option<&'static Fonts>,
}

impl Ink {
    pub(crate) fn style(&self, size: u32, color: RGBColor) -> TextStyle<'static> {
        (FONT, size).into_font().color(&color)
    }

    pub(crate) fn bold(&self, size: u32, color: RGBColor) -> TextStyle<'static> {
        (FONT, size, FontStyle::Bold).into_font().color(&color)
    }

    /// The width of `text` in pixels: measured with the system font, else
    /// estimated.
    pub(crate) fn width(&self, text: &str, size: u32) -> i32 {
        match self.fonts {
            Some(f) => measure(&f.regular, size as f64, text).0.ceil() as i32,
            None => estimate_width(text, size as f64) as i32,
        }
    }

    /// `text` cut in the middle (keeping both ends) to fit `max` pixels.
    pub(crate) fn fit(&self, text: &str, size: u32, max: i32) -> String {
        if self.width(text, size) <= max {
            return text.to_string();
        }
        let chars: Vec<char> = text.chars().collect();
        let mut keep = chars.len();
        while keep > 2 {
            keep -= 1;
            let head = keep * 3 / 5;
            let tail = keep - head;
            let cut: String = chars[..head]
                .iter()
                .chain(std::iter::once(&'…'))
                .chain(&chars[chars.len() - tail..])
                .collect();
            if self.width(&cut, size) <= max {
                return cut;
            }
        }
        "…".to_string()
    }
}

pub(crate) fn text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    s: &str,
    pos: (i32, i32),
    style: &TextStyle<'_>,
    h: HPos,
) -> DrawResult<DB> {
    let style = style.pos(Pos::new(h, VPos::Top));
    area.draw(&Text::new(s.to_string(), pos, style))
}

/// The points of one line, split into runs at non-finite values.
pub(crate) fn runs(x: &[f64], y: &[f64], scale: f64) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut run = Vec::new();
    for (&x, &y) in x.iter().zip(y) {
        if x.is_finite() && y.is_finite() {
            run.push((x, y / scale));
        } else if !run.is_empty() {
            out.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

/// The largest binary unit not above `max` bytes.
pub(crate) fn byte_unit(max: f64) -> (f64, &'static str) {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut scale = 1.0;
    let mut i = 0;
    while i + 1 < UNITS.len() && max >= scale * 1024.0 {
        scale *= 1024.0;
        i += 1;
    }
    (scale, UNITS[i])
}

/// A byte count with its own unit, e.g. `12.3 MiB`.
pub(crate) fn human_bytes(bytes: f64) -> String {
    if !bytes.is_finite() {
        return "–".to_string();
    }
    let (scale, unit) = byte_unit(bytes.abs());
    let sign = if bytes < 0.0 { "-" } else { "" };
    let v = bytes.abs() / scale;
    if unit == "B" {
        format!("{sign}{v:.0} B")
    } else if v >= 100.0 {
        format!("{sign}{v:.0} {unit}")
    } else {
        format!("{sign}{v:.1} {unit}")
    }
}

/// The labels of one axis: the values plotters puts them at (its own key
/// points for `labels` ticks over `range`) and as many decimals as show each
/// value as itself. Guessing plotters' step instead printed `12, 12, 13, 14,
/// 14` for ticks at 12, 12.5, 13, 13.5, 14.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisTicks {
    pub values: Vec<f64>,
    pub decimals: usize,
}

impl AxisTicks {
    pub fn new(range: std::ops::Range<f64>, labels: usize) -> Self {
        use plotters::coord::ranged1d::Ranged;
        let values = if range.start.is_finite() && range.end.is_finite() {
            RangedCoordf64::from(range).key_points(labels)
        } else {
            Vec::new()
        };
        let decimals = tick_decimals(&values);
        AxisTicks { values, decimals }
    }

    /// The label of the tick at `v`.
    pub fn label(&self, v: f64) -> String {
        tick(v, self.decimals)
    }

    /// The labels of every tick, in order.
    pub fn labels(&self) -> Vec<String> {
        self.values.iter().map(|&v| self.label(v)).collect()
    }
}

/// The fewest decimals (at most 12) that print every value within a
/// thousandth of the gap between ticks, and no two alike.
fn tick_decimals(values: &[f64]) -> usize {
    let gap = values
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .filter(|g| *g > 0.0)
        .fold(f64::INFINITY, f64::min);
    let tolerance = if gap.is_finite() { gap * 1e-3 } else { 1e-9 };
    (0..=12)
        .find(|&d| {
            let scale = 10f64.powi(d as i32);
            let exact = values
                .iter()
                .all(|v| ((v * scale).round() / scale - v).abs() <= tolerance);
            let labels: Vec<String> = values.iter().map(|&v| tick(v, d)).collect();
            let distinct = labels.windows(2).all(|w| w[0] != w[1]);
            exact && distinct
        })
        .unwrap_or(12)
}

/// An axis tick with `decimals` decimals (never `-0`).
pub(crate) fn tick(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// `v` with one decimal, or none when it is whole.
pub(crate) fn short_number(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The time unit for a span of `seconds`, and its name.
pub(crate) fn time_unit(seconds: f64) -> (f64, &'static str) {
    if seconds < 120.0 {
        (1.0, "s")
    } else if seconds < 2.0 * 3600.0 {
        (60.0, "min")
    } else if seconds < 2.0 * 86400.0 {
        (3600.0, "h")
    } else {
        (86400.0, "days")
    }
}

/// `lo..hi` widened when empty, so plotters always has a range.
pub(crate) fn padded(lo: f64, hi: f64, pad: f64) -> std::ops::Range<f64> {
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        let d = if hi.abs() > 0.0 { hi.abs() * 0.1 } else { 1.0 };
        return (lo - d)..(hi + d);
    }
    lo..hi + (hi - lo) * pad
}

pub(crate) fn finite_max(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.filter(|v| v.is_finite()).reduce(f64::max)
}

pub(crate) fn finite_min(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.filter(|v| v.is_finite()).reduce(f64::min)
}

fn first_last(values: &[f64]) -> Option<(f64, f64)> {
    let first = values.iter().copied().find(|v| v.is_finite())?;
    let last = values.iter().copied().rev().find(|v| v.is_finite())?;
    Some((first, last))
}

fn series_color(kind: SeriesKind, rank: usize) -> RGBColor {
    match kind {
        SeriesKind::Leak => LEAK_COLORS[rank % LEAK_COLORS.len()],
        SeriesKind::Other => OTHER_COLORS[rank % OTHER_COLORS.len()],
        SeriesKind::Cache => CACHE_COLOR,
    }
}

/// How one series is drawn.
#[derive(Clone, Copy)]
struct Look<'a> {
    series: &'a PlotSeries,
    color: RGBColor,
    width: u32,
    /// Leaks past the palette's length reuse its colours, dashed.
    dashed: bool,
}

/// Series in legend order (leaks, others, caches; input order within each)
/// with how each is drawn.
fn styled(series: &[PlotSeries]) -> Vec<Look<'_>> {
    let mut out = Vec::with_capacity(series.len());
    for kind in [SeriesKind::Leak, SeriesKind::Other, SeriesKind::Cache] {
        let of_kind = series.iter().filter(|s| s.kind == kind);
        for (rank, s) in of_kind.enumerate() {
            out.push(Look {
                series: s,
                color: series_color(kind, rank),
                width: if kind == SeriesKind::Leak { 3 } else { 2 },
                dashed: kind == SeriesKind::Leak && rank >= LEAK_COLORS.len(),
            });
        }
    }
    out
}

/// The shared x axis: values in display units, their range and description.
struct XAxis {
    x: Vec<f64>,
    range: std::ops::Range<f64>,
    desc: String,
    integer: bool,
}

fn x_axis(input: &PlotInput) -> XAxis {
    let lo = finite_min(input.x.iter().copied()).unwrap_or(0.0);
    let hi = finite_max(input.x.iter().copied()).unwrap_or(0.0);
    let (scale, desc) = if input.x_is_time {
        let (scale, unit) = time_unit(hi - lo);
        (scale, format!("time since the first dump ({unit})"))
    } else {
        (1.0, "dump #".to_string())
    };
    let x: Vec<f64> = input.x.iter().map(|v| v / scale).collect();
    let (lo, hi) = (lo / scale, hi / scale);
    let range = if hi > lo {
        let pad = (hi - lo) * 0.02;
        (lo - pad)..(hi + pad)
    } else if input.x_is_time {
        (lo - 1.0)..(hi + 1.0)
    } else {
        (lo - 0.5)..(hi + 0.5)
    };
    XAxis {
        x,
        range,
        desc,
        integer: !input.x_is_time,
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    input: &PlotInput,
    ink: Ink,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (title_area, rest) = root.split_vertically(TITLE_H);
    let (top, bottom) = rest.split_vertically(TOP_H);
    let (top_plot, top_side) = top.split_horizontally(PLOT_W);
    let (bottom_plot, bottom_side) = bottom.split_horizontally(PLOT_W);
    let side_w = (WIDTH - PLOT_W) as i32 - 24;

    let title = ink.fit(&input.title, 22, WIDTH as i32 - 32);
    text(
        &title_area,
        &title,
        (16, 10),
        &ink.bold(22, INK),
        HPos::Left,
    )?;

    let xa = x_axis(input);
    let n = xa.x.len();
    let markers = n <= 30;
    let x_labels = if xa.integer { n.clamp(2, 10) } else { 10 };

    // Top panel: the heap total.
    let total_max = finite_max(input.total_bytes.iter().copied()).unwrap_or(0.0);
    let (t_range, t_scale, t_unit) = total_axis(&input.total_bytes);
    let heading = format!("heap total ({t_unit})");
    text(&top_plot, &heading, (74, 4), &ink.bold(16, INK), HPos::Left)?;
    let mut chart = ChartBuilder::on(&top_plot)
        .margin_top(26)
        .margin_right(12)
        .margin_bottom(4)
        .x_label_area_size(24)
        .y_label_area_size(72)
        .build_cartesian_2d(xa.range.clone(), t_range.clone())?;
    mesh(&mut chart, &ink, &xa, x_labels, TOTAL_LABELS, None)?;
    for run in runs(&xa.x, &input.total_bytes, t_scale) {
        chart.draw_series(LineSeries::new(
            run.iter().copied(),
            TOTAL_COLOR.stroke_width(2),
        ))?;
        if markers || run.len() == 1 {
            chart.draw_series(run.iter().map(|&p| Circle::new(p, 3, TOTAL_COLOR.filled())))?;
        }
    }
    if n == 0 {
        let (w, h) = top_plot.dim_in_pixel();
        let style = ink.style(16, SOFT_INK);
        text(
            &top_plot,
            "no dumps",
            (w as i32 / 2, h as i32 / 2),
            &style,
            HPos::Center,
        )?;
    }

    // Top side: the total's first, last and peak.
    let mut y = 8;
    text(
        &top_side,
        "heap total",
        (8, y),
        &ink.bold(16, INK),
        HPos::Left,
    )?;
    y += 24;
    let mut facts: Vec<(String, String)> = Vec::new();
    if let Some((first, last)) = first_last(&input.total_bytes) {
        facts.push(("first".into(), human_bytes(first)));
        facts.push(("last".into(), human_bytes(last)));
        let change = last - first;
        let pct = if first > 0.0 {
            format!(" ({:+.0}%)", change / first * 100.0)
        } else {
            String::new()
        };
        let sign = if change >= 0.0 { "+" } else { "" };
        facts.push((
            "change".into(),
            format!("{sign}{}{pct}", human_bytes(change)),
        ));
        facts.push(("peak".into(), human_bytes(total_max)));
    }
    let dumps = if n == 1 {
        "1 dump".to_string()
    } else {
        format!("{n} dumps")
    };
    let span = match (
        finite_min(input.x.iter().copied()),
        finite_max(input.x.iter().copied()),
    ) {
        (Some(lo), Some(hi)) if input.x_is_time && hi > lo => {
            let (scale, unit) = time_unit(hi - lo);
            format!("{dumps} over {} {unit}", short_number((hi - lo) / scale))
        }
        _ => dumps,
    };
    facts.push(("dumps".into(), span));
    for (k, v) in &facts {
        text(&top_side, k, (8, y), &ink.style(15, SOFT_INK), HPos::Left)?;
        let v = ink.fit(v, 15, side_w - 70);
        text(&top_side, &v, (74, y), &ink.style(15, INK), HPos::Left)?;
        y += 22;
    }

    // Bottom panel: one line per series.
    let styled = styled(&input.series);
    let s_max =
        finite_max(input.series.iter().flat_map(|s| s.values.iter().copied())).unwrap_or(0.0);
    let (s_scale, s_unit) = byte_unit(s_max);
    let s_range = padded(0.0, s_max / s_scale, 0.08);
    let heading = if styled.is_empty() {
        format!("series ({s_unit})")
    } else {
        format!("top series ({s_unit})")
    };
    text(
        &bottom_plot,
        &heading,
        (74, 4),
        &ink.bold(16, INK),
        HPos::Left,
    )?;
    let mut chart = ChartBuilder::on(&bottom_plot)
        .margin_top(26)
        .margin_right(12)
        .margin_bottom(8)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(xa.range.clone(), s_range.clone())?;
    mesh(&mut chart, &ink, &xa, x_labels, 8, Some(&xa.desc))?;
    // Caches first, leaks last, so leaks are on top.
    for look in styled.iter().rev() {
        let style = look.color.stroke_width(look.width);
        for run in runs(&xa.x, &look.series.values, s_scale) {
            if look.dashed {
                let dashes = DashedLineSeries::new(run.iter().copied(), 10, 6, style);
                chart.draw_series(dashes)?;
            } else {
                chart.draw_series(LineSeries::new(run.iter().copied(), style))?;
            }
            if markers || run.len() == 1 {
                let r = look.width + 1;
                let fill = look.color.filled();
                chart.draw_series(run.iter().map(|&p| Circle::new(p, r, fill)))?;
            }
        }
    }
    if styled.is_empty() {
        let (w, h) = bottom_plot.dim_in_pixel();
        let style = ink.style(16, SOFT_INK);
        let msg = "no series to show";
        text(
            &bottom_plot,
            msg,
            (w as i32 / 2, h as i32 / 2),
            &style,
            HPos::Center,
        )?;
    }

    legend(&bottom_side, &ink, &styled, side_w)
}

/// Labels of the heap total's axis: the top panel's few ticks.
pub const TOTAL_LABELS: usize = 5;

/// The heap total's y range in its unit (zoomed in when the total varies
/// little), the unit's scale and name.
fn total_axis(total_bytes: &[f64]) -> (std::ops::Range<f64>, f64, &'static str) {
    let total_max = finite_max(total_bytes.iter().copied()).unwrap_or(0.0);
    let total_min = finite_min(total_bytes.iter().copied()).unwrap_or(0.0);
    let (t_scale, t_unit) = byte_unit(total_max);
    let t_lo = if total_min <= total_max * 0.5 {
        0.0
    } else {
        let below = total_min - (total_max - total_min) * 0.15;
        below.max(0.0) / t_scale
    };
    (padded(t_lo, total_max / t_scale, 0.08), t_scale, t_unit)
}

/// The labels of the heap total's axis for these totals, as drawn.
pub fn total_axis_labels(total_bytes: &[f64]) -> Vec<String> {
    AxisTicks::new(total_axis(total_bytes).0, TOTAL_LABELS).labels()
}

#[allow(clippy::too_many_arguments)]
fn mesh<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    ink: &Ink,
    xa: &XAxis,
    x_labels: usize,
    y_labels: usize,
    x_desc: Option<&str>,
) -> DrawResult<DB> {
    let x_ticks = AxisTicks::new(xa.range.clone(), x_labels);
    let y_ticks = AxisTicks::new(chart.y_range(), y_labels);
    let integer = xa.integer;
    let x_fmt = move |v: &f64| {
        // Neither time nor dump numbers go below zero (a lone dump is centred).
        if *v < -1e-9 || (integer && (v - v.round()).abs() > 1e-6) {
            String::new()
        } else {
            x_ticks.label(*v)
        }
    };
    let y_fmt = move |v: &f64| y_ticks.label(*v);
    let mut m = chart.configure_mesh();
    m.x_labels(x_labels)
        .y_labels(y_labels)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style(ink.style(15, SOFT_INK))
        .axis_desc_style(ink.style(15, INK))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(SOFT_INK);
    if let Some(d) = x_desc {
        m.x_desc(d);
    }
    m.draw()
}

fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    ink: &Ink,
    styled: &[Look<'_>],
    width: i32,
) -> DrawResult<DB> {
    let (_, h) = area.dim_in_pixel();
    let mut y = 32;
    let bottom = h as i32 - 10;
    // Two lines per entry (label, then first → last) when they fit, else one.
    let detailed = y + styled.len() as i32 * 44 <= bottom;
    let heading = if detailed {
        "legend (first → last dump)"
    } else {
        "legend"
    };
    text(area, heading, (8, 6), &ink.bold(16, INK), HPos::Left)?;
    if styled.is_empty() {
        return Ok(());
    }
    let entry_h = if detailed { 44 } else { 22 };
    let fits = ((bottom - y) / entry_h).max(0) as usize;
    let shown = if fits >= styled.len() {
        styled.len()
    } else {
        fits.saturating_sub(1)
    };
    let label_x = 8 + 30;
    for look in &styled[..shown] {
        let s = look.series;
        let mid = y + 9;
        let swatch = look.color.stroke_width(look.width + 1);
        if look.dashed {
            area.draw(&PathElement::new(vec![(8, mid), (17, mid)], swatch))?;
            area.draw(&PathElement::new(vec![(23, mid), (32, mid)], swatch))?;
        } else {
            area.draw(&PathElement::new(vec![(8, mid), (32, mid)], swatch))?;
        }
        let label = ink.fit(&s.label, 15, width - label_x);
        let label_color = if s.kind == SeriesKind::Cache {
            SOFT_INK
        } else {
            INK
        };
        text(
            area,
            &label,
            (label_x, y),
            &ink.style(15, label_color),
            HPos::Left,
        )?;
        if detailed {
            if let Some((first, last)) = first_last(&s.values) {
                let change = last - first;
                let sign = if change >= 0.0 { "+" } else { "" };
                let detail = format!(
                    "{} → {} ({sign}{})",
                    human_bytes(first),
                    human_bytes(last),
                    human_bytes(change)
                );
                let detail = ink.fit(&detail, 14, width - label_x);
                text(
                    area,
                    &detail,
                    (label_x, y + 20),
                    &ink.style(14, SOFT_INK),
                    HPos::Left,
                )?;
            }
        }
        y += entry_h;
    }
    if shown < styled.len() {
        let more = format!("… and {} more", styled.len() - shown);
        text(
            area,
            &more,
            (label_x, y),
            &ink.style(15, SOFT_INK),
            HPos::Left,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize, leaks: usize) -> PlotInput {
        let x: Vec<f64> = (0..n).map(|i| i as f64 * 600.0).collect();
        let mib = 1024.0 * 1024.0;
        let mut series = Vec::new();
        for l in 0..leaks {
            let values = (0..n)
                .map(|i| (5.0 + (l as f64 + 1.0) * 4.0 * i as f64) * mib)
                .collect();
            series.push(PlotSeries {
                label: format!("LEAK: RegistryEntry{l} app/models/registry.rb:{}", 12 + l),
                values,
                kind: SeriesKind::Leak,
            });
        }
        series.push(PlotSeries {
            label: "CACHE: ActiveSupport::Cache::Entry lib/cache.rb:40".into(),
            values: (0..n)
                .map(|i| (30.0 + (i % 3) as f64 * 2.0) * mib)
                .collect(),
            kind: SeriesKind::Cache,
        });
        series.push(PlotSeries {
            label: "String <#Class:0x00007f> & friends lib/x.rb:7".into(),
            values: (0..n).map(|i| (10.0 + i as f64) * mib).collect(),
            kind: SeriesKind::Other,
        });
        let total_bytes = (0..n)
            .map(|i| {
                let grown: f64 = series.iter().map(|s| s.values[i]).sum();
                200.0 * mib + grown
            })
            .collect();
        PlotInput {
            title: "heapscope leaks: 3 suspects over 8 dumps".into(),
            x,
            x_is_time: true,
            total_bytes,
            series,
        }
    }

    fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
        let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        let mut reader = png::Decoder::new(file).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    /// Pixels of exactly `color` inside the rectangle `x0..x1, y0..y1`.
    fn count(rgb: &[u8], (x0, x1, y0, y1): (u32, u32, u32, u32), color: RGBColor) -> usize {
        let mut n = 0;
        for y in y0..y1 {
            for x in x0..x1 {
                let i = ((y * WIDTH + x) * 3) as usize;
                if rgb[i..i + 3] == [color.0, color.1, color.2] {
                    n += 1;
                }
            }
        }
        n
    }

    fn non_white(rgb: &[u8], (x0, x1, y0, y1): (u32, u32, u32, u32)) -> usize {
        let mut n = 0;
        for y in y0..y1 {
            for x in x0..x1 {
                let i = ((y * WIDTH + x) * 3) as usize;
                if rgb[i..i + 3] != [255, 255, 255] {
                    n += 1;
                }
            }
        }
        n
    }

    #[test]
    fn png_has_size_lines_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leaks.png");
        let input = sample(8, 3);
        plot(&path, &input).unwrap();
        let (w, h, rgb) = decode(&path);
        assert_eq!((w, h), (WIDTH, HEIGHT));
        // Lines of the series panel (left of the legend, below the top panel).
        let series_panel = (80, PLOT_W, TITLE_H + TOP_H, HEIGHT - 40);
        for color in &LEAK_COLORS[..3] {
            assert!(
                count(&rgb, series_panel, *color) > 200,
                "no line in {color:?}"
            );
        }
        assert!(count(&rgb, series_panel, CACHE_COLOR) > 100);
        assert!(count(&rgb, series_panel, OTHER_COLORS[0]) > 100);
        let top_panel = (80, PLOT_W, TITLE_H, TITLE_H + TOP_H);
        assert!(count(&rgb, top_panel, TOTAL_COLOR) > 200);
        // The title line holds only text.
        let title = non_white(&rgb, (0, WIDTH, 0, TITLE_H));
        if system_font().is_some() {
            assert!(title > 200, "no text drawn in the title ({title} pixels)");
        } else {
            assert_eq!(title, 0);
        }
        // Only the output file is left in the directory.
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn png_without_a_font_has_lines_but_no_text() {
        let rgb = render_rgb(&sample(8, 3), None).unwrap();
        assert_eq!(rgb.len(), (WIDTH * HEIGHT * 3) as usize);
        assert_eq!(non_white(&rgb, (0, WIDTH, 0, TITLE_H)), 0);
        let series_panel = (80, PLOT_W, TITLE_H + TOP_H, HEIGHT - 40);
        for color in &LEAK_COLORS[..3] {
            assert!(
                count(&rgb, series_panel, *color) > 200,
                "no line in {color:?}"
            );
        }
        // Legend swatches are drawn even without their labels.
        let legend = (PLOT_W, WIDTH, TITLE_H + TOP_H, HEIGHT);
        assert!(count(&rgb, legend, LEAK_COLORS[0]) > 20);
    }

    #[test]
    fn svg_is_xml_with_labels_and_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leaks.SVG");
        let input = sample(8, 2);
        plot(&path, &input).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let mut reader = quick_xml::Reader::from_str(&svg);
        let mut texts = String::new();
        let mut lines = 0;
        let mut root = None;
        loop {
            match reader.read_event().expect("well-formed XML") {
                quick_xml::events::Event::Eof => break,
                quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                    let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                    root.get_or_insert_with(|| name.clone());
                    if name == "polyline" || name == "path" {
                        lines += 1;
                    }
                }
                quick_xml::events::Event::Text(t) => {
                    texts.push_str(&t.decode().unwrap());
                    texts.push('\n');
                }
                quick_xml::events::Event::GeneralRef(r) => {
                    let c = match r.decode().unwrap().as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "quot" => '"',
                        "apos" => '\'',
                        other => panic!("unexpected entity {other}"),
                    };
                    texts.push(c);
                }
                _ => {}
            }
        }
        assert_eq!(root.as_deref(), Some("svg"));
        assert!(lines >= 5, "{lines} lines");
        assert!(svg.contains(&format!("width=\"{WIDTH}\"")));
        let texts = texts.replace('\n', "");
        for s in &input.series {
            // Labels may be shortened in the middle to fit, never at the start.
            let head: String = s.label.chars().take(20).collect();
            assert!(texts.contains(&head), "label {head:?} missing from {texts}");
        }
        assert!(texts.contains("heap total"));
        assert!(texts.contains("time since the first dump (min)"));
    }

    #[test]
    fn other_extensions_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["leaks.jpg", "leaks", "leaks.png.txt"] {
            let path = dir.path().join(name);
            let err = plot(&path, &sample(3, 1)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name}");
            assert!(!path.exists());
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn zero_and_one_points_do_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        for n in [0, 1, 2] {
            for ext in ["png", "svg"] {
                let path = dir.path().join(format!("p{n}.{ext}"));
                plot(&path, &sample(n, 2)).unwrap();
                assert!(std::fs::metadata(&path).unwrap().len() > 0);
            }
        }
        let empty = PlotInput {
            title: String::new(),
            x: vec![],
            x_is_time: false,
            total_bytes: vec![],
            series: vec![],
        };
        plot(&dir.path().join("empty.png"), &empty).unwrap();
        plot(&dir.path().join("empty.svg"), &empty).unwrap();
        // One point by dump number, with a gap and mismatched lengths.
        let odd = PlotInput {
            title: "odd".into(),
            x: vec![0.0, 1.0, 2.0],
            x_is_time: false,
            total_bytes: vec![f64::NAN, 5.0e6, 6.0e6],
            series: vec![PlotSeries {
                label: "LEAK: X a.rb:1".into(),
                values: vec![1.0e6, f64::INFINITY],
                kind: SeriesKind::Leak,
            }],
        };
        let path = dir.path().join("odd.png");
        plot(&path, &odd).unwrap();
        let (_, _, rgb) = decode(&path);
        let series_panel = (80, PLOT_W, TITLE_H + TOP_H, HEIGHT - 40);
        assert!(
            count(&rgb, series_panel, LEAK_COLORS[0]) > 0,
            "the lone point is drawn"
        );
    }

    #[test]
    fn units_and_ticks() {
        assert_eq!(byte_unit(100.0), (1.0, "B"));
        assert_eq!(byte_unit(5.0 * 1024.0 * 1024.0).1, "MiB");
        assert_eq!(byte_unit(3.0 * 1024.0 * 1024.0 * 1024.0).1, "GiB");
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
        assert_eq!(human_bytes(-200.0 * 1024.0 * 1024.0), "-200 MiB");
        assert_eq!(time_unit(90.0).1, "s");
        assert_eq!(time_unit(3000.0).1, "min");
        assert_eq!(time_unit(5.0 * 3600.0).1, "h");
        assert_eq!(time_unit(5.0 * 86400.0).1, "days");
        assert_eq!(tick(12.5, 1), "12.5");
        assert_eq!(tick(0.25, 2), "0.25");
        assert_eq!(tick(-0.0, 1), "0.0");
    }

    /// Labels are those of the values plotters draws, all distinct and each
    /// its own value: a heap total between 12 and 14.3 MiB once read
    /// `12, 12, 13, 14, 14`.
    #[test]
    fn tick_labels_are_distinct_and_exact() {
        let t = AxisTicks::new(11.8..14.3, 5);
        let labels = t.labels();
        assert!(labels.len() >= 3, "{labels:?}");
        let mut sorted = labels.clone();
        sorted.dedup();
        assert_eq!(sorted, labels, "duplicate labels");
        for (v, l) in t.values.iter().zip(&labels) {
            assert!(
                (l.parse::<f64>().unwrap() - v).abs() < 1e-9,
                "{v} shown as {l}"
            );
        }
        assert_eq!(labels, ["12.0", "12.5", "13.0", "13.5", "14.0"]);
        assert_eq!(
            AxisTicks::new(0.0..108.0, 8).labels()[..3],
            ["0", "20", "40"]
        );
        assert_eq!(
            AxisTicks::new(0.0..0.3, 5).labels(),
            ["0.0", "0.1", "0.2", "0.3"]
        );
        for (range, n) in [
            (0.0..1.0, 5),
            (3.0..3.0000001, 8),
            (1e9..1.0000001e9, 8),
            (-5.0..5.0, 4),
        ] {
            let l = AxisTicks::new(range.clone(), n).labels();
            let mut d = l.clone();
            d.dedup();
            assert_eq!(d, l, "{range:?}");
        }
        assert!(AxisTicks::new(f64::NAN..1.0, 5).values.is_empty());
    }

    /// The heap total's axis (`leaks --plot`'s top panel) over totals of
    /// every size and spread: labels distinct and true to their ticks. Three
    /// dumps of 11.95, 13.0 and 14.2 MiB are a case that printed 12, 12, 13,
    /// 14, 14: a step of 1 was guessed for the axis, plotters drew 0.5.
    #[test]
    fn total_axis_labels_are_distinct() {
        let mib = 1024.0 * 1024.0;
        let labels = total_axis_labels(&[11.95 * mib, 13.0 * mib, 14.2 * mib]);
        assert_eq!(labels, ["12.0", "12.5", "13.0", "13.5", "14.0"]);
        let mut checked = 0;
        for base in [0.3, 1.0, 7.5, 12.0, 99.0, 512.0, 1000.0, 4096.0, 70_000.0] {
            for spread in [0.0, 0.001, 0.01, 0.05, 0.1, 0.17, 0.3, 0.6, 1.0, 2.5] {
                let totals = [
                    base * mib,
                    base * (1.0 + spread / 2.0) * mib,
                    base * (1.0 + spread) * mib,
                ];
                let (range, _, _) = total_axis(&totals);
                let t = AxisTicks::new(range, TOTAL_LABELS);
                let labels = t.labels();
                let mut d = labels.clone();
                d.dedup();
                assert_eq!(d, labels, "{base} MiB +{spread}");
                for (v, l) in t.values.iter().zip(&labels) {
                    let gap = t
                        .values
                        .windows(2)
                        .map(|w| w[1] - w[0])
                        .fold(f64::INFINITY, f64::min);
                    assert!(
                        (l.parse::<f64>().unwrap() - v).abs() <= gap * 1e-3,
                        "{v} as {l}"
                    );
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 90);
    }

    #[test]
    fn long_labels_are_cut_in_the_middle() {
        let ink = Ink { fonts: None };
        let label = "LEAK: Some::Very::Long::ClassName app/models/deeply/nested/file.rb:1234";
        let cut = ink.fit(label, 13, 200);
        assert!(ink.width(&cut, 13) <= 200);
        assert!(cut.starts_with("LEAK: "));
        assert!(cut.ends_with(":1234"));
        assert!(cut.contains('…'));
        assert_eq!(ink.fit("short", 13, 200), "short");
    }

    /// Renders samples for a person to look at (it checks nothing):
    /// `HEAPSCOPE_PLOT_SAMPLE=/tmp/x cargo test -p heapscope-export -- --ignored sample_render`.
    #[test]
    #[ignore = "writes sample charts to look at; checks nothing"]
    fn sample_render() {
        let Some(dir) = std::env::var_os("HEAPSCOPE_PLOT_SAMPLE") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        plot(&dir.join("sample.png"), &sample(8, 3)).unwrap();
        plot(&dir.join("sample.svg"), &sample(8, 3)).unwrap();
        plot(&dir.join("many.png"), &sample(40, 14)).unwrap();
        plot(&dir.join("one.png"), &sample(1, 2)).unwrap();
        let mut by_index = sample(5, 2);
        by_index.x = (0..5).map(f64::from).collect();
        by_index.x_is_time = false;
        plot(&dir.join("index.png"), &by_index).unwrap();
    }
}
