//! `heapscope trend`: one row per process with its memory verdict, as a
//! table or JSON.

use heapscope_analysis::memtrend::{
    GrowthSite, GrowthSplit, MemTrend, MemVerdict, Metric, MIN_SAMPLES_TO_BUCKET,
};
use serde_json::{json, Value};

use crate::{thousands, Align, Table};

/// One process's verdict.
#[derive(Debug, Clone)]
pub struct TrendRow {
    pub label: String,
    pub pid: Option<u32>,
    pub metric: Metric,
    pub trend: MemTrend,
    /// RSS against live objects, when the log has both.
    pub split: Option<GrowthSplit>,
}

const MIB: f64 = 1024.0 * 1024.0;

/// A metric value for people: MiB for bytes, a count otherwise.
fn value(metric: Metric, v: f64) -> String {
    if !v.is_finite() {
        "–".to_string()
    } else if metric.is_bytes() {
        format!("{:.1} MiB", v / MIB)
    } else {
        thousands(v.max(0.0).round() as u64)
    }
}

/// A slope with its sign, e.g. `+12.3 MB/h`.
fn rate(metric: Metric, v: f64, per: &str) -> String {
    let mb = v / MIB;
    if metric.is_bytes() && mb.abs() >= 1000.0 {
        // 42,930 MB/h reads better than 42929.69 MB/h.
        let sign = if mb < 0.0 { "-" } else { "+" };
        format!("{sign}{} MB{per}", thousands(mb.abs().round() as u64))
    } else if metric.is_bytes() {
        format!("{mb:+.2} MB{per}")
    } else {
        let sign = if v < 0.0 { "-" } else { "+" };
        format!("{sign}{} objects{per}", thousands(v.abs().round() as u64))
    }
}

/// The slope column: per hour or per sample, and per 1,000 requests.
fn slopes(r: &TrendRow) -> String {
    let t = &r.trend;
    let mut parts = Vec::new();
    if let Some(h) = t.slope_per_hour {
        parts.push(rate(r.metric, h, "/h"));
    }
    if let Some(s) = t.slope_per_sample {
        parts.push(rate(r.metric, s, "/sample"));
    }
    if let Some(k) = t.slope_per_1000_requests {
        parts.push(rate(r.metric, k, "/1k req"));
    }
    if parts.is_empty() {
        "–".to_string()
    } else {
        parts.join(", ")
    }
}

fn span(t: &MemTrend) -> String {
    if !t.has_clock {
        // derailed's numbers carry no time: say so rather than "0.0 s".
        return format!("{} samples, no clock", thousands(t.samples as u64));
    }
    let seconds = t.span_seconds;
    if seconds < 120.0 {
        format!("{seconds:.1} s")
    } else if seconds < 2.0 * 3600.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// The line under the table: what the slopes are of, and what MB means
/// (only when a byte metric is shown).
fn footnote(rows: &[TrendRow]) -> String {
    let mut boundaries: Vec<&str> = Vec::new();
    for r in rows {
        if !boundaries.contains(&r.trend.boundary) {
            boundaries.push(r.trend.boundary);
        }
    }
    let low: Vec<&str> = boundaries.iter().copied().filter(|b| *b != RAW).collect();
    let raw = boundaries.contains(&RAW);
    let mut parts = Vec::new();
    if !low.is_empty() {
        parts.push(format!(
            "slopes are of the low boundary ({}), not of raw values",
            low.join(", ")
        ));
    }
    if raw {
        parts.push(if low.is_empty() {
            format!("slopes are of the raw samples (under {MIN_SAMPLES_TO_BUCKET} samples: too few to take a low boundary)")
        } else {
            format!("processes with under {MIN_SAMPLES_TO_BUCKET} samples use raw samples")
        });
    }
    if rows.iter().any(|r| r.metric.is_bytes()) {
        parts.push("MB = MiB".to_string());
    }
    parts.join("; ")
}

const RAW: &str = "raw samples";

/// What RSS and live objects say together, for people: `None` when there is
/// nothing to say (no live objects in the log, nothing grows, or unclear).
pub fn split_text(label: &str, split: &GrowthSplit) -> Option<String> {
    let bytes = split.bytes_metric.name().to_ascii_uppercase();
    // The slope per hour (or per sample), if any.
    let slope = |metric: Metric, t: &MemTrend| {
        t.slope_per_hour
            .map(|v| rate(metric, v, "/h"))
            .or_else(|| t.slope_per_sample.map(|v| rate(metric, v, "/sample")))
    };
    let in_parens = |s: Option<String>| s.map_or(String::new(), |s| format!(" ({s})"));
    let live = &split.live_objects;
    let b = &split.bytes;
    match split.site {
        GrowthSite::OutsideRubyHeap => {
            let mut how = vec![live.verdict.name().to_string()];
            how.extend(slope(Metric::LiveObjects, live));
            Some(format!(
                "{label}: {bytes} grows{} while live objects do not ({}): the growth is outside \
                 the Ruby heap, which heap dumps do not show. {OUTSIDE_ADVICE}",
                in_parens(slope(split.bytes_metric, b)),
                how.join(", "),
            ))
        }
        GrowthSite::RubyHeap => {
            let with = if b.verdict == MemVerdict::Growing {
                format!(
                    " and {bytes} with them{}",
                    in_parens(slope(split.bytes_metric, b))
                )
            } else {
                format!(
                    " ({bytes} {} so far: Ruby reuses free slots first)",
                    b.verdict.name()
                )
            };
            Some(format!(
                "{label}: live objects grow{}{with}: a leak in the Ruby heap. {HEAP_ADVICE}",
                in_parens(slope(Metric::LiveObjects, live)),
            ))
        }
        GrowthSite::Neither | GrowthSite::Unclear => None,
    }
}

/// Advice when RSS grows and the Ruby heap does not.
pub const OUTSIDE_ADVICE: &str =
    "Likely causes: native extensions (C libraries) that allocate and \
     never free, malloc fragmentation across threads, or a few objects whose malloc'd buffers keep \
     growing (their memsize in a dump). Try MALLOC_ARENA_MAX=2 or jemalloc \
     (LD_PRELOAD=libjemalloc.so.2), and look at the native extensions the app loads.";

/// Advice when the Ruby heap grows.
pub const HEAP_ADVICE: &str =
    "Take heap dumps a while apart (heapscope dump PID) and run heapscope leaks on them.";

/// The table: one row per process. MB in slopes are MiB (2^20 bytes).
pub fn render_table(rows: &[TrendRow]) -> String {
    crate::safe_text(render_table_unescaped(rows))
}

fn render_table_unescaped(rows: &[TrendRow]) -> String {
    let mut t = Table::with_columns(&[
        ("process", Align::Left),
        ("metric", Align::Left),
        ("verdict", Align::Left),
        ("slope", Align::Right),
        ("confidence", Align::Right),
        ("first", Align::Right),
        ("last", Align::Right),
        ("peak", Align::Right),
        ("samples", Align::Right),
        ("span", Align::Right),
    ]);
    for r in rows {
        let tr = &r.trend;
        t.row(vec![
            r.label.clone(),
            r.metric.name().to_string(),
            tr.verdict.name().to_string(),
            slopes(r),
            format!("{:.0}%", tr.confidence * 100.0),
            value(r.metric, tr.first),
            value(r.metric, tr.last),
            value(r.metric, tr.peak),
            thousands(tr.samples as u64),
            span(tr),
        ]);
    }
    let mut out = t.render();
    if !rows.is_empty() {
        out.push('\n');
        out.push_str(&footnote(rows));
        out.push('\n');
    }
    let notes: Vec<String> = rows
        .iter()
        .filter_map(|r| split_text(&r.label, r.split.as_ref()?))
        .collect();
    for n in notes {
        out.push('\n');
        out.push_str(&n);
        out.push('\n');
    }
    out
}

fn num(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

/// What RSS and live objects say together, as JSON.
fn split_json(s: &GrowthSplit) -> Value {
    let side = |t: &MemTrend| {
        json!({
            "verdict": t.verdict.name(),
            "slope_per_hour": t.slope_per_hour,
            "slope_per_sample": t.slope_per_sample,
            "confidence": t.confidence,
        })
    };
    json!({
        "site": s.site.name(),
        "bytes_metric": s.bytes_metric.name(),
        "bytes": side(&s.bytes),
        "live_objects": side(&s.live_objects),
        "advice": match s.site {
            GrowthSite::OutsideRubyHeap => Some(OUTSIDE_ADVICE),
            GrowthSite::RubyHeap => Some(HEAP_ADVICE),
            _ => None,
        },
    })
}

/// JSON: `{"processes": [{"label", "pid", "metric", "verdict", ...}]}`.
/// Values are in the metric's units (bytes or objects).
pub fn render_json(rows: &[TrendRow]) -> Value {
    let processes: Vec<Value> = rows
        .iter()
        .map(|r| {
            let t = &r.trend;
            json!({
                "label": r.label,
                "pid": r.pid,
                "metric": r.metric.name(),
                "unit": if r.metric.is_bytes() { "bytes" } else { "objects" },
                "verdict": t.verdict.name(),
                "slope_per_hour": t.slope_per_hour,
                "slope_per_sample": t.slope_per_sample,
                "slope_per_1000_requests": t.slope_per_1000_requests,
                "confidence": t.confidence,
                "p_value": t.p_value,
                "samples": t.samples,
                "boundary": t.boundary,
                "boundary_points": t.boundary_points,
                "span_seconds": if t.has_clock { json!(t.span_seconds) } else { Value::Null },
                "has_clock": t.has_clock,
                "first": num(t.first),
                "last": num(t.last),
                "peak": num(t.peak),
                "level": num(t.level),
                "growth_site": r.split.as_ref().map(split_json),
            })
        })
        .collect();
    json!({ "processes": processes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use heapscope_analysis::memseries::{MemSample, MemSeries};
    use heapscope_analysis::memtrend::memory_trend;

    #[test]
    fn table_and_json() {
        let s = MemSeries {
            pid: Some(42),
            source: None,
            label: "pid 42".into(),
            samples: (0..100)
                .map(|i| MemSample {
                    time: f64::from(i) * 60.0,
                    rss_bytes: Some(100 * 1024 * 1024 + u64::from(i as u32) * 1024 * 1024),
                    ..MemSample::default()
                })
                .collect(),
        };
        let rows = vec![TrendRow {
            label: s.label.clone(),
            pid: s.pid,
            metric: Metric::Rss,
            trend: memory_trend(&s, Metric::Rss),
            split: None,
        }];
        let table = render_table(&rows);
        assert!(table.contains("growing"), "{table}");
        assert!(table.contains("+60.00 MB/h"), "{table}");
        let v = render_json(&rows);
        assert_eq!(v["processes"][0]["verdict"], "growing");
        assert_eq!(v["processes"][0]["pid"], 42);
    }

    fn row(metric: Metric, n: u32, clock: bool, value: impl Fn(u32) -> u64) -> TrendRow {
        let s = MemSeries {
            pid: Some(7),
            source: None,
            label: "pid 7".into(),
            samples: (0..n)
                .map(|i| MemSample {
                    time: f64::from(i),
                    rss_bytes: Some(value(i)),
                    live_objects: Some(value(i)),
                    ..MemSample::default()
                })
                .collect(),
        };
        let trend = if clock {
            memory_trend(&s, metric)
        } else {
            heapscope_analysis::memtrend::memory_trend_by_sample(&s, metric)
        };
        TrendRow {
            label: s.label.clone(),
            pid: s.pid,
            metric,
            trend,
            split: None,
        }
    }

    #[test]
    fn objects_have_thousands_separators_and_no_mib_footnote() {
        // 1,632 objects a second: 5,875,200 an hour.
        let r = row(Metric::LiveObjects, 200, true, |i| {
            1_000_000 + 1632 * u64::from(i)
        });
        let table = render_table(&[r]);
        assert!(table.contains("+5,875,200 objects/h"), "{table}");
        assert!(!table.contains("MiB"), "{table}");
        assert!(
            table.contains("slopes are of the low boundary (bucket minima), not of raw values\n"),
            "{table}"
        );
    }

    #[test]
    fn raw_samples_footnote_says_one_thing() {
        let r = row(Metric::Rss, 12, true, |i| (100 + u64::from(i)) << 20);
        assert_eq!(r.trend.boundary, "raw samples");
        let table = render_table(&[r]);
        assert!(
            table.contains("slopes are of the raw samples (under 20 samples"),
            "{table}"
        );
        assert!(!table.contains("of the low boundary"), "{table}");
        assert!(!table.contains("not of raw values"), "{table}");
        assert!(table.contains("; MB = MiB"), "{table}");
    }

    #[test]
    fn logs_without_a_clock_say_so() {
        // Even when there is too little data for a slope (no slope per sample).
        for n in [3, 30] {
            let r = row(Metric::Rss, n, false, |i| (100 + u64::from(i)) << 20);
            let table = render_table(std::slice::from_ref(&r));
            assert!(table.contains(&format!("{n} samples, no clock")), "{table}");
            assert!(!table.contains("0.0 s"), "{table}");
            let v = render_json(&[r]);
            assert!(v["processes"][0]["span_seconds"].is_null());
            assert_eq!(v["processes"][0]["has_clock"], false);
        }
    }
}
