//! Charts of process memory over time (`heapscope plot`, `heapscope bench`).
//!
//! The chart is 1200×700 px: a title line, the plot, and a legend column on
//! the right. The plot has RSS (binary units) on the left axis and live heap
//! objects on the right axis against time since the earliest sample (in
//! s/min/h/days by span), or against the sample number for logs without a
//! clock. Each process has its own colour: its RSS is a line in that
//! colour, its live objects a line in a lighter tint of it (drawn below the
//! RSS lines; dashes turn into noise on a dense GC sawtooth). The legend gives each process's
//! first → last RSS and live objects. Text and fonts work as in
//! [`crate::plot`] (a PNG without a system font has lines but no text).
//!
//! Lines of more than [`MAX_DRAWN_POINTS`] points are thinned to the minimum
//! and maximum of each of that many/2 time slices, which keeps the shape
//! (every spike and trough) and the SVG small.

use std::io;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use crate::plot::{
    byte_unit, finite_max, finite_min, human_bytes, padded, runs, text, time_unit, write_chart,
    AxisTicks, Chart, DrawResult, Ink, GRID, INK, LEAK_COLORS, SOFT_INK, TITLE_H, WIDTH,
};

/// Width of the plot column; the legend takes the rest.
const PLOT_W: u32 = 880;
/// Lines are thinned to at most this many points.
pub const MAX_DRAWN_POINTS: usize = 2000;

/// One process's line pair. The vectors are parallel to `times`; a
/// non-finite value is a gap (e.g. a sample without that metric).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemPlotLine {
    /// Legend text, e.g. `pid 4242`.
    pub label: String,
    /// Unix seconds, seconds from the start, or sample numbers.
    pub times: Vec<f64>,
    pub rss_bytes: Vec<f64>,
    pub live_objects: Vec<f64>,
}

/// What the x axis shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemPlotX {
    /// Times are seconds (unix seconds, or seconds from a start): shown as
    /// time since the earliest sample.
    Seconds,
    /// Times are sample numbers (logs without a clock, like derailed's).
    SampleNumber,
}

/// A whole chart.
#[derive(Clone, Debug, PartialEq)]
pub struct MemPlot {
    pub title: String,
    pub lines: Vec<MemPlotLine>,
    pub x: MemPlotX,
}

/// Writes the chart of `series` (times in seconds) to `path`, PNG or SVG by
/// its extension, atomically; see [`plot_memory_with`].
pub fn plot_memory(path: &Path, title: &str, series: &[MemPlotLine]) -> io::Result<()> {
    plot_memory_with(
        path,
        &MemPlot {
            title: title.to_string(),
            lines: series.to_vec(),
            x: MemPlotX::Seconds,
        },
    )
}

/// Writes `plot` to `path`, as PNG or SVG by its extension (`.png`, `.svg`,
/// any case); any other extension is an `InvalidInput` error. The file is
/// replaced atomically, and nothing is written when drawing fails.
pub fn plot_memory_with(path: &Path, plot: &MemPlot) -> io::Result<()> {
    write_chart(path, plot)
}

impl Chart for MemPlot {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, ink: Ink) -> DrawResult<DB> {
        draw(root, self, ink)
    }

    fn check(&self) -> io::Result<()> {
        match self.x {
            MemPlotX::Seconds => crate::plot::check_x_span(
                self.lines.iter().flat_map(|l| l.times.iter().copied()),
                "the sample times",
            ),
            MemPlotX::SampleNumber => Ok(()),
        }
    }
}

/// The colour of process `i`.
pub(crate) fn line_color(i: usize) -> RGBColor {
    LEAK_COLORS[i % LEAK_COLORS.len()]
}

/// `c` blended halfway with white: the colour of a process's live objects.
pub(crate) fn lighter(c: RGBColor) -> RGBColor {
    let mix = |v: u8| (f64::from(v) + (255.0 - f64::from(v)) * 0.6).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

/// A count with a k/M/G suffix, e.g. `1.2M`.
fn human_count(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_string();
    }
    let (scale, unit) = count_unit(v.abs());
    let x = v / scale;
    if unit.is_empty() || x.abs() >= 100.0 {
        format!("{x:.0}{unit}")
    } else {
        format!("{x:.1}{unit}")
    }
}

/// The scale and suffix for counts up to `max`.
fn count_unit(max: f64) -> (f64, &'static str) {
    if max >= 1e9 {
        (1e9, "G")
    } else if max >= 1e6 {
        (1e6, "M")
    } else if max >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    }
}

/// `(x, y)` thinned to the min and max of `max / 2` slices of x (in order),
/// when longer than `max`.
fn thin(x: &[f64], y: &[f64], max: usize) -> (Vec<f64>, Vec<f64>) {
    let n = x.len().min(y.len());
    if n <= max {
        return (x[..n].to_vec(), y[..n].to_vec());
    }
    let slices = (max / 2).max(1);
    let (mut ox, mut oy) = (Vec::with_capacity(max), Vec::with_capacity(max));
    for s in 0..slices {
        let (a, b) = (s * n / slices, (s + 1) * n / slices);
        let finite = (a..b).filter(|&i| y[i].is_finite() && x[i].is_finite());
        let lo = finite.clone().min_by(|&i, &j| y[i].total_cmp(&y[j]));
        let hi = finite.max_by(|&i, &j| y[i].total_cmp(&y[j]));
        match (lo, hi) {
            (Some(lo), Some(hi)) => {
                let (p, q) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                ox.push(x[p]);
                oy.push(y[p]);
                if q != p {
                    ox.push(x[q]);
                    oy.push(y[q]);
                }
            }
            _ => {
                // Keep the gap.
                ox.push(x[a]);
                oy.push(f64::NAN);
            }
        }
    }
    (ox, oy)
}

/// `YYYY-MM-DD HH:MM:SS UTC` of unix seconds.
fn utc(secs: f64) -> String {
    chrono::DateTime::from_timestamp(secs.floor() as i64, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| format!("{secs:.0} s"))
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &MemPlot,
    ink: Ink,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (title_area, rest) = root.split_vertically(TITLE_H);
    let (plot_area, side) = rest.split_horizontally(PLOT_W);
    let side_w = (WIDTH - PLOT_W) as i32 - 16;
    let title = ink.fit(&plot.title, 22, WIDTH as i32 - 32);
    text(
        &title_area,
        &title,
        (16, 10),
        &ink.bold(22, INK),
        HPos::Left,
    )?;

    let lines = &plot.lines;
    let all_times = || lines.iter().flat_map(|l| l.times.iter().copied());
    let t0 = finite_min(all_times()).unwrap_or(0.0);
    let t1 = finite_max(all_times()).unwrap_or(0.0);
    let (x_scale, x_desc) = match plot.x {
        MemPlotX::Seconds => {
            let (scale, unit) = time_unit(t1 - t0);
            let since = if t0 > 1e8 {
                format!("time since {} ({unit})", utc(t0))
            } else {
                format!("time since the first sample ({unit})")
            };
            (scale, since)
        }
        MemPlotX::SampleNumber => (1.0, "sample #".to_string()),
    };
    let (x_origin, integer) = match plot.x {
        MemPlotX::Seconds => (t0, false),
        MemPlotX::SampleNumber => (0.0, true),
    };
    let to_x = |t: f64| (t - x_origin) / x_scale;
    let (xlo, xhi) = (to_x(t0), to_x(t1));
    let x_range = if xhi > xlo {
        let pad = (xhi - xlo) * 0.02;
        (xlo - pad)..(xhi + pad)
    } else {
        (xlo - 1.0)..(xhi + 1.0)
    };

    let rss_max = finite_max(lines.iter().flat_map(|l| l.rss_bytes.iter().copied()));
    let live_max = finite_max(lines.iter().flat_map(|l| l.live_objects.iter().copied()));
    let (r_scale, r_unit) = byte_unit(rss_max.unwrap_or(0.0));
    let (l_scale, l_unit) = count_unit(live_max.unwrap_or(0.0));
    let r_range = padded(0.0, rss_max.unwrap_or(0.0) / r_scale, 0.08);
    let l_range = padded(0.0, live_max.unwrap_or(0.0) / l_scale, 0.08);

    let left_head = format!("RSS ({r_unit})");
    text(
        &plot_area,
        &left_head,
        (16, 4),
        &ink.bold(16, INK),
        HPos::Left,
    )?;
    let (pw, _) = plot_area.dim_in_pixel();
    if live_max.is_some() {
        let right_head = match l_unit {
            "" => "live heap objects (lighter)".to_string(),
            "k" => "live heap objects (thousands, lighter)".to_string(),
            "M" => "live heap objects (millions, lighter)".to_string(),
            _ => "live heap objects (billions, lighter)".to_string(),
        };
        text(
            &plot_area,
            &right_head,
            (pw as i32 - 16, 4),
            &ink.bold(16, INK),
            HPos::Right,
        )?;
    }

    let mut chart = ChartBuilder::on(&plot_area)
        .margin_top(30)
        .margin_left(8)
        .margin_right(8)
        .margin_bottom(8)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .right_y_label_area_size(if live_max.is_some() { 64 } else { 8 })
        .build_cartesian_2d(x_range.clone(), r_range.clone())?
        .set_secondary_coord(x_range.clone(), l_range.clone());

    let x_ticks = AxisTicks::new(x_range.clone(), 10);
    let r_ticks = AxisTicks::new(r_range.clone(), 8);
    let l_ticks = AxisTicks::new(l_range.clone(), 8);
    let x_fmt = move |v: &f64| {
        if *v < -1e-9 || (integer && (v - v.round()).abs() > 1e-6) {
            String::new()
        } else {
            x_ticks.label(*v)
        }
    };
    let r_fmt = move |v: &f64| r_ticks.label(*v);
    let l_fmt = move |v: &f64| l_ticks.label(*v);
    chart
        .configure_mesh()
        .x_labels(10)
        .y_labels(8)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&r_fmt)
        .label_style(ink.style(15, SOFT_INK))
        .axis_desc_style(ink.style(15, INK))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(SOFT_INK)
        .x_desc(x_desc.as_str())
        .draw()?;
    if live_max.is_some() {
        chart
            .configure_secondary_axes()
            .y_labels(8)
            .y_label_formatter(&l_fmt)
            .label_style(ink.style(15, SOFT_INK))
            .axis_style(SOFT_INK)
            .draw()?;
    }

    // Live objects first (lighter, below), then every RSS line on top.
    let thinned: Vec<_> = lines
        .iter()
        .map(|line| {
            let x: Vec<f64> = line.times.iter().map(|&t| to_x(t)).collect();
            let rss = thin(&x, &line.rss_bytes, MAX_DRAWN_POINTS);
            let live = thin(&x, &line.live_objects, MAX_DRAWN_POINTS);
            (rss, live, line.times.len() <= 40)
        })
        .collect();
    for (i, (_, (lx, ly), markers)) in thinned.iter().enumerate() {
        // One pixel wide: plotters' bitmap backend draws wider lines as
        // polygons, which spike on the vertical drops of a GC sawtooth.
        let light = lighter(line_color(i));
        for run in runs(lx, ly, l_scale) {
            chart.draw_secondary_series(LineSeries::new(
                run.iter().copied(),
                light.stroke_width(1),
            ))?;
            if *markers || run.len() == 1 {
                chart.draw_secondary_series(
                    run.iter().map(|&p| Circle::new(p, 3, light.filled())),
                )?;
            }
        }
    }
    for (i, ((rx, ry), _, markers)) in thinned.iter().enumerate() {
        let color = line_color(i);
        for run in runs(rx, ry, r_scale) {
            chart.draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2)))?;
            if *markers || run.len() == 1 {
                chart.draw_series(run.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
            }
        }
    }
    if lines.iter().all(|l| l.times.is_empty()) {
        let (w, h) = plot_area.dim_in_pixel();
        text(
            &plot_area,
            "no samples",
            (w as i32 / 2, h as i32 / 2),
            &ink.style(16, SOFT_INK),
            HPos::Center,
        )?;
    }
    legend(&side, &ink, lines, side_w)
}

fn first_last(values: &[f64]) -> Option<(f64, f64)> {
    let first = values.iter().copied().find(|v| v.is_finite())?;
    let last = values.iter().copied().rev().find(|v| v.is_finite())?;
    Some((first, last))
}

/// The key's entry for RSS lines.
pub const KEY_RSS: &str = "RSS";
/// The key's entry for live-object lines.
pub const KEY_LIVE: &str = "live objects";

fn has_values(values: &[f64]) -> bool {
    values.iter().any(|v| v.is_finite())
}

/// The entries of the legend's key: a kind of line is listed only when some
/// process has it (`bench` without `--agent` has no live objects).
pub fn legend_key(lines: &[MemPlotLine]) -> Vec<&'static str> {
    let mut key = Vec::new();
    if lines.iter().any(|l| has_values(&l.rss_bytes)) {
        key.push(KEY_RSS);
    }
    if lines.iter().any(|l| has_values(&l.live_objects)) {
        key.push(KEY_LIVE);
    }
    key
}

fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    ink: &Ink,
    lines: &[MemPlotLine],
    width: i32,
) -> DrawResult<DB> {
    let (_, h) = area.dim_in_pixel();
    let bottom = h as i32 - 10;
    text(
        area,
        "processes (first → last)",
        (8, 32),
        &ink.bold(16, INK),
        HPos::Left,
    )?;
    // The key: strong RSS, lighter live objects; only the kinds drawn.
    let y = 58;
    let key = SOFT_INK;
    let mut x = 8;
    for entry in legend_key(lines) {
        let color = if entry == KEY_RSS { key } else { lighter(key) };
        area.draw(&PathElement::new(
            vec![(x, y + 8), (x + 24, y + 8)],
            color.stroke_width(3),
        ))?;
        text(
            area,
            entry,
            (x + 30, y),
            &ink.style(14, SOFT_INK),
            HPos::Left,
        )?;
        x += 30 + ink.width(entry, 14) + 22;
    }
    let mut y = y + 32;
    let entry_h = 62;
    let fits = ((bottom - y) / entry_h).max(0) as usize;
    let shown = if fits >= lines.len() {
        lines.len()
    } else {
        fits.saturating_sub(1)
    };
    let label_x = 38;
    for (i, line) in lines.iter().take(shown).enumerate() {
        let color = line_color(i);
        let mid = y + 9;
        let rss = has_values(&line.rss_bytes);
        let live = has_values(&line.live_objects);
        if rss || !live {
            let at = if live { mid - 3 } else { mid };
            area.draw(&PathElement::new(
                vec![(8, at), (32, at)],
                color.stroke_width(3),
            ))?;
        }
        if live {
            let at = if rss { mid + 3 } else { mid };
            area.draw(&PathElement::new(
                vec![(8, at), (32, at)],
                lighter(color).stroke_width(3),
            ))?;
        }
        let label = ink.fit(&line.label, 15, width - label_x);
        text(area, &label, (label_x, y), &ink.bold(15, INK), HPos::Left)?;
        let mut row = y + 20;
        if let Some((a, b)) = first_last(&line.rss_bytes) {
            let s = format!("RSS {} → {}", human_bytes(a), human_bytes(b));
            let s = ink.fit(&s, 14, width - label_x);
            text(
                area,
                &s,
                (label_x, row),
                &ink.style(14, SOFT_INK),
                HPos::Left,
            )?;
            row += 19;
        }
        if let Some((a, b)) = first_last(&line.live_objects) {
            let s = format!("objects {} → {}", human_count(a), human_count(b));
            let s = ink.fit(&s, 14, width - label_x);
            text(
                area,
                &s,
                (label_x, row),
                &ink.style(14, SOFT_INK),
                HPos::Left,
            )?;
        }
        y += entry_h;
    }
    if shown < lines.len() {
        let more = format!("… and {} more", lines.len() - shown);
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
    use crate::plot::{render_rgb, HEIGHT};

    fn line(i: usize, n: usize) -> MemPlotLine {
        let mib = 1024.0 * 1024.0;
        MemPlotLine {
            label: format!("pid {}", 4000 + i),
            times: (0..n).map(|k| 1.7e9 + k as f64).collect(),
            rss_bytes: (0..n)
                .map(|k| (100.0 + 20.0 * i as f64 + k as f64 * 0.1) * mib)
                .collect(),
            live_objects: (0..n)
                .map(|k| 200_000.0 + 50_000.0 * i as f64 + ((k % 30) * 3000) as f64)
                .collect(),
        }
    }

    fn count(rgb: &[u8], (x0, x1, y0, y1): (u32, u32, u32, u32), c: RGBColor) -> usize {
        let mut n = 0;
        for y in y0..y1 {
            for x in x0..x1 {
                let i = ((y * WIDTH + x) * 3) as usize;
                if rgb[i..i + 3] == [c.0, c.1, c.2] {
                    n += 1;
                }
            }
        }
        n
    }

    #[test]
    fn lines_in_each_colour() {
        let plot = MemPlot {
            title: "t".into(),
            lines: vec![line(0, 600), line(1, 600)],
            x: MemPlotX::Seconds,
        };
        let rgb = render_rgb(&plot, None).unwrap();
        let area = (80, PLOT_W, TITLE_H, HEIGHT - 50);
        assert!(count(&rgb, area, line_color(0)) > 500);
        assert!(count(&rgb, area, line_color(1)) > 500);
    }

    #[test]
    fn legend_lists_only_the_lines_drawn() {
        let both = line(0, 10);
        let rss_only = MemPlotLine {
            live_objects: vec![f64::NAN; 10],
            ..line(1, 10)
        };
        let live_only = MemPlotLine {
            rss_bytes: vec![],
            ..line(2, 10)
        };
        assert_eq!(legend_key(std::slice::from_ref(&both)), [KEY_RSS, KEY_LIVE]);
        assert_eq!(legend_key(std::slice::from_ref(&rss_only)), [KEY_RSS]);
        assert_eq!(legend_key(std::slice::from_ref(&live_only)), [KEY_LIVE]);
        assert_eq!(
            legend_key(&[rss_only.clone(), live_only]),
            [KEY_RSS, KEY_LIVE]
        );
        assert!(legend_key(&[]).is_empty());
        // The SVG of an RSS-only chart never says "live objects".
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("rss.svg");
        plot_memory(&svg, "t", &[rss_only]).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("\nRSS\n"), "no RSS key: {text}");
        assert!(!text.contains("live objects"), "a key for a line not drawn");
        assert!(!text.contains("live heap objects"));
        let png = dir.path().join("both.png");
        plot_memory(&png, "t", &[both]).unwrap();
        assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
    }

    #[test]
    fn thinning_keeps_extremes_and_gaps() {
        let x: Vec<f64> = (0..10_000).map(f64::from).collect();
        let mut y: Vec<f64> = x.iter().map(|v| v % 7.0).collect();
        y[5000] = 1e6;
        y[7000] = f64::NAN;
        let (tx, ty) = thin(&x, &y, 100);
        assert!(tx.len() <= 100);
        assert!(ty.contains(&1e6));
        assert!(tx.windows(2).all(|w| w[0] <= w[1]));
        let (tx, _) = thin(&x[..50], &y[..50], 100);
        assert_eq!(tx.len(), 50);
    }

    #[test]
    fn formats() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1714564800.5), "2024-05-01 12:00:00 UTC");
        assert_eq!(utc(951782400.0), "2000-02-29 00:00:00 UTC");
        assert_eq!(human_count(1_234_567.0), "1.2M");
        assert_eq!(human_count(999.0), "999");
        assert_eq!(human_count(250_000.0), "250k");
    }

    #[test]
    fn empty_and_odd_inputs_do_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let cases = vec![
            vec![],
            vec![MemPlotLine::default()],
            vec![MemPlotLine {
                label: "one".into(),
                times: vec![5.0],
                rss_bytes: vec![1e6],
                live_objects: vec![f64::NAN],
            }],
            vec![MemPlotLine {
                label: "mismatched".into(),
                times: vec![1.0, 2.0, 3.0],
                rss_bytes: vec![1e6, f64::NAN],
                live_objects: vec![],
            }],
        ];
        for (i, lines) in cases.into_iter().enumerate() {
            for ext in ["png", "svg"] {
                let path = dir.path().join(format!("c{i}.{ext}"));
                plot_memory(&path, "odd", &lines).unwrap();
                assert!(std::fs::metadata(&path).unwrap().len() > 0);
            }
        }
        let err = plot_memory(&dir.path().join("x.jpg"), "t", &[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    /// Renders samples to look at:
    /// `HEAPSCOPE_PLOT_SAMPLE=/tmp/x cargo test -p heapscope-export -- --ignored memplot_sample`.
    #[test]
    #[ignore = "writes sample charts to look at; checks nothing"]
    fn memplot_sample() {
        let Some(dir) = std::env::var_os("HEAPSCOPE_PLOT_SAMPLE") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lines: Vec<MemPlotLine> = (0..3).map(|i| line(i, 3600)).collect();
        plot_memory(&dir.join("mem.png"), "heapscope plot: 3 processes", &lines).unwrap();
        plot_memory(&dir.join("mem.svg"), "heapscope plot: 3 processes", &lines).unwrap();
    }
}
