//! Renders analysis results for people (aligned terminal tables with
//! human-readable sizes) and for programs (JSON with exact numbers).
//!
//! JSON rows name each grouping key as the `--by` value (`"class"`,
//! `"location"`, ...) next to `count` and `memsize`; see the README.

use heapscope_analysis::diff::Diff;
use heapscope_analysis::group::{Group, GroupKey, KeyValue};
use heapscope_analysis::summary::{Summary, Totals};
use heapscope_reader::Diagnostics;
use serde_json::{json, Map, Value};

pub mod inspect;
pub mod leaks;
pub mod memtrend;
pub mod path;
pub mod requires;
pub mod retained;
pub mod suspects;
mod table;
pub use heapscope_graph::{escape_control, escape_control_text};
pub use table::{human_bytes, Align, Table};

use heapscope_heap::AgentShare;

/// The one line saying how much of the heapscope agent was left out (or,
/// with `--include-agent`, counted); `None` when the dump has none.
pub fn agent_line(share: &AgentShare, included: bool, exact: bool) -> Option<String> {
    if share.objects == 0 {
        return None;
    }
    let what = format!(
        "{} {} ({}) of the heapscope agent",
        thousands(share.objects),
        if share.objects == 1 {
            "object"
        } else {
            "objects"
        },
        size(share.bytes, exact)
    );
    Some(if included {
        format!("includes {what} (--include-agent)")
    } else {
        format!("left out {what}; --include-agent counts them")
    })
}

/// The agent's share for JSON reports: `{"objects", "bytes", "included"}`.
pub fn agent_json(share: &AgentShare, included: bool) -> Value {
    json!({"objects": share.objects, "bytes": share.bytes, "included": included})
}

/// A finished text report with every control character but line breaks
/// escaped: names are escaped where they are written (table cells through
/// [`Table::row`]), and this catches any that reach a sentence.
pub(crate) fn safe_text(out: String) -> String {
    match escape_control_text(&out) {
        std::borrow::Cow::Borrowed(_) => out,
        std::borrow::Cow::Owned(o) => o,
    }
}

fn key_json(v: &KeyValue) -> Value {
    match v {
        KeyValue::Generation(g) => json!(g),
        KeyValue::Text(t) => json!(t),
    }
}

fn rows_json(by: &[GroupKey], groups: &[Group]) -> Value {
    groups
        .iter()
        .map(|g| {
            let mut row = Map::new();
            for (k, v) in by.iter().zip(&g.key) {
                row.insert(k.name().into(), key_json(v));
            }
            row.insert("count".into(), json!(g.count));
            row.insert("memsize".into(), json!(g.memsize));
            if by.contains(&GroupKey::String) {
                row.insert(
                    "locations".into(),
                    g.locations
                        .iter()
                        .map(|(l, c)| json!({"location": l, "count": c}))
                        .collect(),
                );
            }
            Value::Object(row)
        })
        .collect()
}

pub fn diagnostics_json(d: &Diagnostics) -> Value {
    json!({
        "bytes": d.bytes,
        "lines": d.lines,
        "objects": d.objects,
        "roots": d.roots,
        "shapes": d.shapes,
        "malformed_lines": d.malformed,
        "first_malformed": d.first_malformed.iter().map(|p| json!({"line": p.line, "message": p.message, "excerpt": p.excerpt})).collect::<Vec<_>>(),
        "truncated_last_line": d.truncated_last_line.as_ref().map(|p| p.line),
        "recovered_lines": d.recovered,
        "general_parser_lines": d.fallback_lines,
        "input_error": d.input_error,
        "free_slots": d.free_slots,
        "class_records": d.class_records,
    })
}

fn totals_json(t: &Totals) -> Value {
    json!({
        "objects": t.objects,
        "memsize": t.memsize,
        "dump_objects": t.dump_objects,
        "roots": t.roots,
        "shapes": t.shapes,
        "traced_objects": t.traced_objects,
        "tracer_memsize": t.tracer_memsize,
        "tracer_included": t.tracer_included,
        "agent": agent_json(&t.agent, t.agent_included),
        "free_slots": t.free_slots,
    })
}

pub fn summary_json(source: &str, s: &Summary, d: &Diagnostics) -> Value {
    json!({
        "source": source,
        "by": s.by.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "totals": totals_json(&s.totals),
        "rows": rows_json(&s.by, &s.groups),
        "groups": s.total_groups,
        "diagnostics": diagnostics_json(d),
    })
}

fn groups_table(by: &[GroupKey], groups: &[Group], show_bytes: bool) -> Table {
    let mut headers: Vec<String> = by.iter().map(|k| k.name().to_string()).collect();
    headers.push("count".into());
    headers.push("memsize".into());
    let mut aligns: Vec<Align> = by
        .iter()
        .map(|&k| {
            if k == GroupKey::Generation {
                Align::Right
            } else {
                Align::Left
            }
        })
        .collect();
    aligns.extend([Align::Right, Align::Right]);
    let mut table = Table::new(headers, aligns);
    let strings = by.contains(&GroupKey::String);
    for g in groups {
        let mut row: Vec<String> = by
            .iter()
            .zip(&g.key)
            .map(|(k, v)| {
                let text = v.display(*k);
                if *k == GroupKey::String {
                    shorten(&format!("{text:?}"), 60)
                } else {
                    text
                }
            })
            .collect();
        row.push(thousands(g.count));
        row.push(size(g.memsize, show_bytes));
        table.row(row);
        if strings {
            for (loc, c) in &g.locations {
                let mut sub = vec![String::new(); by.len() + 2];
                sub[0] = format!("  {} at {loc}", thousands(*c));
                table.row(sub);
            }
        }
    }
    table
}

/// A byte count for tables: exact with thousands separators, or human-readable.
pub(crate) fn size(n: u64, exact: bool) -> String {
    if exact {
        thousands(n)
    } else {
        human_bytes(n)
    }
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

pub fn summary_text(source: &str, s: &Summary, d: &Diagnostics, show_bytes: bool) -> String {
    crate::safe_text(summary_text_unescaped(source, s, d, show_bytes))
}

fn summary_text_unescaped(source: &str, s: &Summary, d: &Diagnostics, show_bytes: bool) -> String {
    let t = &s.totals;
    let mut out = String::new();
    out.push_str(&format!(
        "{source}: {} objects, {} memsize",
        thousands(t.objects),
        size(t.memsize, show_bytes)
    ));
    if t.objects != t.dump_objects {
        out.push_str(&format!(
            " (of {} objects in the dump)",
            thousands(t.dump_objects)
        ));
    }
    out.push('\n');
    out.push_str(&format!(
        "  {} ROOT records, {} SHAPE records, {} lines",
        thousands(t.roots),
        thousands(t.shapes),
        thousands(d.lines)
    ));
    if t.traced_objects == 0 {
        out.push_str(", no allocation tracing (no file, line or generation)");
    } else {
        out.push_str(&format!(
            ", {} objects with allocation info",
            thousands(t.traced_objects)
        ));
    }
    if t.free_slots > 0 {
        out.push_str(&format!(
            ", {} free slots (dump_all(full: true); not objects, not counted)",
            thousands(t.free_slots)
        ));
    }
    out.push('\n');
    if let Some(m) = t.tracer_memsize {
        if t.tracer_included {
            out.push_str(&format!(
                "  includes the allocation tracer's table ({})\n",
                size(m, show_bytes)
            ));
        } else {
            out.push_str(&format!(
                "  left out: the allocation tracer's table ({}), not app memory; --include-tracer counts it\n",
                size(m, show_bytes)
            ));
        }
    }
    if let Some(line) = agent_line(&t.agent, t.agent_included, show_bytes) {
        out.push_str(&format!("  {line}\n"));
    }
    out.push('\n');
    if s.groups.is_empty() {
        out.push_str(if s.by.contains(&GroupKey::String) {
            "No duplicated string values (Ruby dumps values of 7-bit strings only).\n"
        } else {
            "No objects match.\n"
        });
        return out;
    }
    out.push_str(&groups_table(&s.by, &s.groups, show_bytes).render());
    if s.groups.len() < s.total_groups {
        out.push_str(&format!(
            "({} of {} groups shown; --top N for more)\n",
            s.groups.len(),
            thousands(s.total_groups as u64)
        ));
    }
    out
}

pub struct DiffSources<'a> {
    pub before: &'a str,
    pub after: &'a str,
    pub later: Option<&'a str>,
}

pub fn diff_json(src: &DiffSources<'_>, dif: &Diff, diags: &[(&str, &Diagnostics)]) -> Value {
    let t = &dif.totals;
    json!({
        "before": src.before,
        "after": src.after,
        "later": src.later,
        "by": dif.by.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "totals": {
            "before_objects": t.before_objects,
            "before_memsize": t.before_memsize,
            "after_objects": t.after_objects,
            "after_memsize": t.after_memsize,
            "later_objects": t.later_objects,
            "later_memsize": t.later_memsize,
            "new_objects": t.new_objects,
            "new_memsize": t.new_memsize,
            "freed_by_later": t.freed_by_later,
            "reused_addresses": t.reused_addresses,
            "new_agent": agent_json(&t.new_agent, t.agent_included),
        },
        "rows": rows_json(&dif.by, &dif.groups),
        "groups": dif.total_groups,
        "warnings": dif.warnings,
        "diagnostics": diags.iter().map(|(name, d)| {
            let mut v = diagnostics_json(d);
            v["source"] = json!(name);
            v
        }).collect::<Vec<_>>(),
    })
}

pub fn diff_text(src: &DiffSources<'_>, dif: &Diff, show_bytes: bool) -> String {
    crate::safe_text(diff_text_unescaped(src, dif, show_bytes))
}

fn diff_text_unescaped(src: &DiffSources<'_>, dif: &Diff, show_bytes: bool) -> String {
    let t = &dif.totals;
    let mut out = String::new();
    out.push_str(&format!(
        "BEFORE {}: {} objects, {}\n",
        src.before,
        thousands(t.before_objects),
        size(t.before_memsize, show_bytes)
    ));
    out.push_str(&format!(
        "AFTER  {}: {} objects, {}\n",
        src.after,
        thousands(t.after_objects),
        size(t.after_memsize, show_bytes)
    ));
    if let (Some(l), Some(o), Some(m)) = (src.later, t.later_objects, t.later_memsize) {
        out.push_str(&format!(
            "LATER  {l}: {} objects, {}\n",
            thousands(o),
            size(m, show_bytes)
        ));
    }
    out.push('\n');
    match t.freed_by_later {
        Some(freed) => out.push_str(&format!(
            "Retained: {} objects ({}) allocated between BEFORE and AFTER are still alive in LATER; {} others were freed.\n",
            thousands(t.new_objects),
            size(t.new_memsize, show_bytes),
            thousands(freed)
        )),
        None => out.push_str(&format!(
            "New: {} objects ({}) in AFTER were not in BEFORE.\n",
            thousands(t.new_objects),
            size(t.new_memsize, show_bytes)
        )),
    }
    if let Some(line) = agent_line(&t.new_agent, t.agent_included, show_bytes) {
        out.push_str(&format!("  {line} among them\n"));
    }
    for w in &dif.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out.push('\n');
    if dif.groups.is_empty() {
        out.push_str("Nothing to show.\n");
        return out;
    }
    out.push_str(&groups_table(&dif.by, &dif.groups, show_bytes).render());
    if dif.groups.len() < dif.total_groups {
        out.push_str(&format!(
            "({} of {} groups shown; --top N for more)\n",
            dif.groups.len(),
            thousands(dif.total_groups as u64)
        ));
    }
    out
}
