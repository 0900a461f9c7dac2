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
    p.as_ref()
        .map_or(Value::Null, crate::path::labeled_path_json)
}

fn container_json(r: &LeakReport, top: usize) -> Vec<Value> {
    r.containers
        .iter()
        .filter(|c| c.sites.iter().any(|&i| i < top))
        .enumerate()
        .map(|(n, c)| {
            let sites: Vec<&Site> = c.sites.iter().filter(|&&i| i < top).map(|&i| &r.leaks[i]).collect();
            json!({
                "rank": n + 1,
                "address": format!("{:#x}", c.object.address),
                "type": c.object.type_name,
                "class": c.object.class,
                "name": c.object.name,
                "location": c.object.location,
                "path": path_json(&Some(c.path.clone())),
                "site_ranks": c.sites.iter().filter(|&&i| i < top).map(|&i| i + 1).collect::<Vec<_>>(),
                "leak_sites": sites.len(),
                "growth_per_dump": sites.iter().map(|s| s.growth_per_dump).sum::<f64>(),
                "bytes_per_dump": sites.iter().map(|s| s.bytes_per_dump).sum::<f64>(),
                "survivors": sites.iter().map(|s| s.survivors).sum::<u64>(),
                "survivor_bytes": sites.iter().map(|s| s.survivor_bytes).sum::<u64>(),
            })
        })
        .collect()
}

fn site_json(rank: Option<usize>, s: &Site, r: &LeakReport) -> Value {
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
        "container": s.container.map(|c| format!("{:#x}", r.containers[c].object.address)),
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
                "agent_in_last_dump": crate::agent_json(&r.agent, r.agent_included),
                "leaks": r.leaks.iter().take(p.top).enumerate().map(|(i, s)| site_json(Some(i + 1), s, r)).collect::<Vec<_>>(),
                "containers": container_json(r, p.top),
                "leak_sites": r.leaks.len(),
                "caches": r.caches.iter().take(p.top).map(|s| site_json(None, s, r)).collect::<Vec<_>>(),
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

/// The leak sites shown, each on its own or, when a container holds several
/// of them, under that container.
fn leak_findings(out: &mut String, r: &LeakReport, top: usize, exact: bool) {
    let shown = r.leaks.len().min(top);
    let mut done = vec![false; shown];
    let mut n = 0;
    for i in 0..shown {
        if done[i] {
            continue;
        }
        n += 1;
        let group: Vec<usize> = match r.leaks[i].container {
            Some(c) => r.containers[c]
                .sites
                .iter()
                .copied()
                .filter(|&j| j < shown)
                .collect(),
            None => vec![i],
        };
        for &j in &group {
            done[j] = true;
        }
        if group.len() == 1 {
            site_text(out, &format!("{n}."), "   ", &r.leaks[i], exact, true);
            out.push('\n');
            continue;
        }
        let c = &r.containers[r.leaks[i].container.expect("a group has a container")];
        let sites: Vec<&Site> = group.iter().map(|&j| &r.leaks[j]).collect();
        out.push_str(&format!(
            "{n}. {} {} ({:#x}) holds {} leaking sites: +{}, +{} per dump together; {} ({}) survived\n",
            crate::path::who(&c.object),
            c.object.location.as_deref().unwrap_or("(untraced)"),
            c.object.address,
            group.len(),
            count(
                sites.iter().map(|s| s.growth_per_dump.max(0.0)).sum::<f64>().round() as u64,
                "object",
                "objects"
            ),
            size(
                sites.iter().map(|s| s.bytes_per_dump.max(0.0)).sum::<f64>() as u64,
                exact
            ),
            count(
                sites.iter().map(|s| s.survivors).sum(),
                "object",
                "objects"
            ),
            size(sites.iter().map(|s| s.survivor_bytes).sum(), exact),
        ));
        out.push_str(&format!("   held by (root {}):\n", c.path.root()));
        out.push_str(&crate::path::steps_table(&c.path, "     "));
        out.push('\n');
        for (k, s) in sites.iter().enumerate() {
            site_text(
                out,
                &format!("   {n}.{}", k + 1),
                "       ",
                s,
                exact,
                false,
            );
            out.push('\n');
        }
    }
}

/// One leak site: its growth, series and survivors, then its path from a
/// root (`full`) or, under its container, from the container.
fn site_text(out: &mut String, number: &str, indent: &str, s: &Site, exact: bool, full: bool) {
    out.push_str(&format!(
        "{number} {} ({}): +{}, +{} per dump",
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
        "; {:.0}% of steps grow\n{indent}objects: {}\n{indent}bytes:   {}\n{indent}survivors in the last dump: {} ({})\n",
        s.trend.monotonic * 100.0,
        series_text(&s.counts, None),
        series_text(&s.bytes, Some(exact)),
        thousands(s.survivors),
        size(s.survivor_bytes, exact),
    ));
    let table_indent = format!("{indent}  ");
    if full {
        if let Some(path) = &s.path {
            out.push_str(&format!("{indent}held by (root {}):\n", path.root()));
            out.push_str(&crate::path::steps_table(path, &table_indent));
        }
    } else if let Some(path) = s.from_container.as_ref().filter(|p| p.len() > 2) {
        // Only when something lies between the container and the survivor.
        out.push_str(&format!("{indent}held in the container through:\n"));
        out.push_str(&crate::path::steps_table(path, &table_indent));
    }
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
        if let Some(line) = crate::agent_line(&r.agent, r.agent_included, exact) {
            out.push_str(&format!("  last dump: {line}\n"));
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
            let shown = r.leaks.len().min(p.top);
            let shared = r
                .containers
                .iter()
                .filter(|c| c.sites.iter().filter(|&&i| i < shown).count() > 1)
                .count();
            out.push_str(&format!(
                "Leak suspects ({}{}):\n\n",
                count(r.leaks.len() as u64, "site", "sites"),
                if shared > 0 {
                    format!(
                        "; {} holding several of them",
                        count(shared as u64, "container", "containers")
                    )
                } else {
                    String::new()
                }
            ));
        }
        leak_findings(&mut out, r, p.top, exact);
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
