//! `heapscope trend`: one row per process with its memory verdict, as a
//! table or JSON.

use heapscope_analysis::memtrend::{MemTrend, Metric};
use serde_json::{json, Value};

use crate::{thousands, Align, Table};

/// One process's verdict.
#[derive(Debug, Clone)]
pub struct TrendRow {
    pub label: String,
    pub pid: Option<u32>,
    pub metric: Metric,
    pub trend: MemTrend,
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
        format!("{:+.0} objects{per}", v)
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

fn span(seconds: f64, samples: usize, clock: bool) -> String {
    if !clock {
        return format!("{samples} samples");
    }
    if seconds < 120.0 {
        format!("{seconds:.1} s")
    } else if seconds < 2.0 * 3600.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// The table: one row per process. MB in slopes are MiB (2^20 bytes).
pub fn render_table(rows: &[TrendRow]) -> String {
    crate::safe_text(render_table_unescaped(rows))
}

fn render_table_unescaped(rows: &[TrendRow]) -> String {
    let mut t = Table::with_columns(&[
        ("process", Align::Left),
        ("metric", Align::Left),
        ("verdict", Align::Left),
        ("slope (low boundary)", Align::Right),
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
            span(tr.span_seconds, tr.samples, tr.slope_per_sample.is_none()),
        ]);
    }
    let mut out = t.render();
    if let Some(r) = rows.first() {
        out.push_str(&format!(
            "\nslopes are of the low boundary ({}), not of raw values; MB = MiB\n",
            r.trend.boundary
        ));
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
                "span_seconds": t.span_seconds,
                "first": num(t.first),
                "last": num(t.last),
                "peak": num(t.peak),
                "level": num(t.level),
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
        }];
        let table = render_table(&rows);
        assert!(table.contains("growing"), "{table}");
        assert!(table.contains("+60.00 MB/h"), "{table}");
        let v = render_json(&rows);
        assert_eq!(v["processes"][0]["verdict"], "growing");
        assert_eq!(v["processes"][0]["pid"], 42);
    }
}
