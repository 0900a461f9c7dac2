//! Rendering of `heapscope leaks`.

use heapscope_analysis::leaks::{LeakReport, Site, MIN_DUMPS};
use heapscope_analysis::paths::LabeledPath;
use serde_json::{json, Value};

use crate::{size, thousands, Align, Table};

/// One process's result, for rendering.
pub struct ProcessReport<'a> {
    pub pid: Option<u32>,
    pub dumps: &'a [String],
    pub report: &'a LeakReport,
    pub top: usize,
}

/// A site's label in tables and plots: `Class location` (or type), its
/// control characters escaped.
pub fn site_label(s: &Site) -> String {
    let (t, class, loc) = &s.key;
    let label = format!(
        "{} {}",
        class.as_deref().unwrap_or(t),
        loc.as_deref().unwrap_or("(untraced)")
    );
    crate::escape_control(&label).into_owned()
}

fn path_json(p: &Option<LabeledPath>) -> Value {
    match p {
        None => Value::Null,
        Some(p) => {
            let mut v = json!({
                "root": p.root(),
                "conservative": p.conservative,
                "steps": p.steps.iter().map(|s| json!({
                    "address": format!("{:#x}", s.object.address),
                    "type": s.object.type_name,
                    "class": s.object.class,
                    "name": s.object.name,
                    "location": s.object.location,
                    "held_as": s.held_as,
                })).collect::<Vec<_>>(),
            });
            if let Value::Object(m) = &mut v {
                crate::path::elision_fields(m, p.steps.len(), p.elided.as_ref());
            }
            v
        }
    }
}

fn site_json(rank: Option<usize>, s: &Site) -> Value {
    json!({
        "rank": rank,
        "location": s.key.2,
        "class": s.key.1,
        "type": s.key.0,
        "verdict": s.trend.verdict.name(),
        "counts": s.counts,
        "bytes": s.bytes,
        "growth_per_dump": s.growth_per_dump,
        "bytes_per_dump": s.bytes_per_dump,
        "bytes_per_hour": s.bytes_per_hour,
        "monotonic": s.trend.monotonic,
        "trend_p": s.trend.mk_p,
        "floor_p": s.trend.floor_p,
        "survivors": s.survivors,
        "survivor_bytes": s.survivor_bytes,
        "path": path_json(&s.path),
    })
}

pub fn leaks_json(order: &str, processes: &[ProcessReport<'_>]) -> Value {
    json!({
        "ordered_by": order,
        "processes": processes.iter().map(|p| {
            let r = p.report;
            json!({
                "pid": p.pid,
                "dumps": p.dumps,
                "times": r.times,
                "heap_objects": r.totals.iter().map(|t| t.objects).collect::<Vec<_>>(),
                "heap_bytes": r.totals.iter().map(|t| t.bytes).collect::<Vec<_>>(),
                "verdict": r.verdict(),
                "dumps_needed": MIN_DUMPS,
                "heap_verdict": heap_verdict(r),
                "survivors": r.survivors,
                "survivor_bytes": r.survivor_bytes,
                "leaks": r.leaks.iter().take(p.top).enumerate().map(|(i, s)| site_json(Some(i + 1), s)).collect::<Vec<_>>(),
                "leak_sites": r.leaks.len(),
                "caches": r.caches.iter().take(p.top).map(|s| site_json(None, s)).collect::<Vec<_>>(),
                "cache_sites": r.caches.len(),
                "warnings": r.warnings,
            })
        }).collect::<Vec<_>>(),
    })
}

/// The heap total's verdict, or `cannot judge` with too few dumps (two
/// equal totals are not "stable" evidence).
fn heap_verdict(r: &LeakReport) -> &'static str {
    if r.can_judge() {
        r.total_trend.verdict.name()
    } else {
        "cannot judge"
    }
}

/// `1 dump`, `2 dumps`, `1,000 objects`.
fn count(n: u64, singular: &str, plural: &str) -> String {
    format!(
        "{} {}",
        thousands(n),
        if n == 1 { singular } else { plural }
    )
}

fn series_text(values: &[u64], exact_bytes: Option<bool>) -> String {
    let shown: Vec<String> = values
        .iter()
        .map(|&v| match exact_bytes {
            Some(exact) => size(v, exact),
            None => thousands(v),
        })
        .collect();
    shown.join(" → ")
}

pub fn leaks_text(order: &str, processes: &[ProcessReport<'_>], exact: bool) -> String {
    crate::safe_text(leaks_text_unescaped(order, processes, exact))
}

fn leaks_text_unescaped(order: &str, processes: &[ProcessReport<'_>], exact: bool) -> String {
    let mut out = String::new();
    for p in processes {
        let r = p.report;
        let pid = p.pid.map(|p| format!("process {p}: ")).unwrap_or_default();
        let dumps = p.dumps.len();
        out.push_str(&format!(
            "{pid}{}, ordered by {order}\n",
            count(dumps as u64, "dump", "dumps")
        ));
        out.push_str(&format!(
            "  heap: {} ({})\n",
            series_text(
                &r.totals.iter().map(|t| t.bytes).collect::<Vec<_>>(),
                Some(exact)
            ),
            heap_verdict(r)
        ));
        if dumps >= 2 {
            out.push_str(&format!(
                "  {} ({}) allocated after the first dump {} alive in {}\n",
                count(r.survivors, "object", "objects"),
                size(r.survivor_bytes, exact),
                if r.survivors == 1 { "is" } else { "are" },
                if dumps == 2 {
                    "the second"
                } else {
                    "every later one"
                }
            ));
        }
        for w in &r.warnings {
            out.push_str(&format!("  warning: {w}\n"));
        }
        out.push('\n');
        if !r.can_judge() {
            out.push_str(&format!(
                "Cannot judge: telling a leak from a cache takes at least {MIN_DUMPS} dumps of one \
                 process (5 or more are better), and there {} {}.",
                if dumps == 1 { "is" } else { "are" },
                count(dumps as u64, "dump", "dumps"),
            ));
            if dumps >= 2 {
                out.push_str(&format!(
                    " What survived from the first dump to the second ({}, {}) may be a leak, \
                     a cache still filling, or work in progress; take more dumps.\n",
                    count(r.survivors, "object", "objects"),
                    size(r.survivor_bytes, exact)
                ));
            } else {
                out.push_str(
                    " One dump shows what the heap holds (`heapscope summary`, `suspects`), \
                     not what grows.\n",
                );
            }
        } else if r.leaks.is_empty() {
            out.push_str("No leaking sites: no site's objects keep growing from dump to dump.\n");
        } else {
            out.push_str(&format!(
                "Leak suspects ({} {}):\n\n",
                thousands(r.leaks.len() as u64),
                if r.leaks.len() == 1 { "site" } else { "sites" }
            ));
        }
        for (i, s) in r.leaks.iter().take(p.top).enumerate() {
            out.push_str(&format!(
                "{}. {} ({}): +{}, +{} per dump",
                i + 1,
                site_label(s),
                s.key.0,
                count(
                    s.growth_per_dump.max(0.0).round() as u64,
                    "object",
                    "objects"
                ),
                size(s.bytes_per_dump.max(0.0) as u64, exact),
            ));
            if let Some(h) = s.bytes_per_hour {
                out.push_str(&format!(", +{} per hour", size(h.max(0.0) as u64, exact)));
            }
            out.push_str(&format!(
                "; {:.0}% of steps grow\n   objects: {}\n   bytes:   {}\n   survivors in the last dump: {} ({})\n",
                s.trend.monotonic * 100.0,
                series_text(&s.counts, None),
                series_text(&s.bytes, Some(exact)),
                thousands(s.survivors),
                size(s.survivor_bytes, exact),
            ));
            if let Some(path) = &s.path {
                out.push_str(&format!("   held by (root {}):\n", path.root()));
                out.push_str(&crate::path::steps_table(path, "     "));
            }
            out.push('\n');
        }
        if !r.caches.is_empty() {
            out.push_str(&format!(
                "Caches: grew, then levelled off ({} {}; not leaks):\n",
                thousands(r.caches.len() as u64),
                if r.caches.len() == 1 { "site" } else { "sites" }
            ));
            let mut t = Table::with_columns(&[
                ("site", Align::Left),
                ("type", Align::Left),
                ("objects per dump", Align::Left),
            ]);
            for s in r.caches.iter().take(p.top) {
                t.row(vec![
                    site_label(s),
                    s.key.0.clone(),
                    series_text(&s.counts, None),
                ]);
            }
            out.push_str(&t.render());
        }
        out.push('\n');
    }
    out
}
