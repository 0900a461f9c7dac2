//! Rendering of `heapscope retained`.

use heapscope_analysis::group::{GroupKey, KeyValue};
use heapscope_analysis::retained::{RetainedGroup, RetainedObject};
use heapscope_graph::RootCoverage;
use serde_json::{json, Map, Value};

use crate::size;
use crate::{thousands, Align, Table};

/// What `retained` found, for rendering.
pub struct RetainedReport<'a> {
    pub source: &'a str,
    pub reachable_objects: u64,
    pub reachable_bytes: u64,
    pub unreachable_objects: u64,
    pub unreachable_bytes: u64,
    pub unreachable: &'a [(Vec<KeyValue>, u64, u64)],
    pub objects: &'a [RetainedObject],
    pub by: &'a [GroupKey],
    pub groups: &'a [RetainedGroup],
    pub total_groups: usize,
    /// What "no root reaches it" means in this dump.
    pub coverage: RootCoverage,
    /// The heapscope agent's objects (and what only they keep alive).
    pub agent: heapscope_heap::AgentShare,
    pub agent_included: bool,
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

pub fn object_json(o: &RetainedObject) -> Value {
    json!({
        "address": format!("{:#x}", o.object.address),
        "type": o.object.type_name,
        "class": o.object.class,
        "name": o.object.name,
        "location": o.object.location,
        "shallow_bytes": o.shallow_bytes,
        "retained_bytes": o.retained_bytes,
        "count": 1,
    })
}

pub fn retained_json(r: &RetainedReport<'_>) -> Value {
    let rows: Vec<Value> = if r.by.is_empty() {
        r.objects.iter().map(object_json).collect()
    } else {
        r.groups
            .iter()
            .map(|g| {
                let mut row = Map::new();
                for (k, v) in r.by.iter().zip(&g.key) {
                    row.insert(
                        k.name().into(),
                        match v {
                            KeyValue::Generation(x) => json!(x),
                            KeyValue::Text(t) => json!(t),
                        },
                    );
                }
                row.insert("count".into(), json!(g.count));
                row.insert("shallow_bytes".into(), json!(g.shallow_bytes));
                row.insert("retained_bytes".into(), json!(g.retained_bytes));
                Value::Object(row)
            })
            .collect()
    };
    if r.coverage == RootCoverage::Missing {
        // No ROOT records: nothing is known to be reachable or garbage.
        return json!({
            "source": r.source,
            "by": r.by.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "reachability": r.coverage.name(),
            "reachable": null,
            "unreachable": null,
            "rows": [],
            "groups": 0,
        });
    }
    json!({
        "source": r.source,
        "by": r.by.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "reachability": r.coverage.name(),
        "reachable": {"objects": r.reachable_objects, "bytes": r.reachable_bytes},
        "unreachable": {
            "objects": r.unreachable_objects,
            "bytes": r.unreachable_bytes,
            "by_type_location": r.unreachable.iter().map(|(k, c, m)| json!({
                "type": match &k[0] { KeyValue::Text(t) => json!(t), KeyValue::Generation(g) => json!(g) },
                "location": match &k[1] { KeyValue::Text(t) => json!(t), KeyValue::Generation(g) => json!(g) },
                "count": c,
                "memsize": m,
            })).collect::<Vec<_>>(),
        },
        "rows": rows,
        "groups": r.total_groups,
        "agent": crate::agent_json(&r.agent, r.agent_included),
    })
}

pub fn retained_text(r: &RetainedReport<'_>, exact: bool) -> String {
    crate::safe_text(retained_text_unescaped(r, exact))
}

fn retained_text_unescaped(r: &RetainedReport<'_>, exact: bool) -> String {
    let unreachable = match r.coverage {
        RootCoverage::Missing => {
            return format!(
                "{}: reachability is not in this dump (it has no ROOT records, as \
                 dump_all(since: ...) writes), so nothing can be said about what is \
                 retained or unreachable\n",
                r.source
            );
        }
        RootCoverage::NoFinalizers => "reached by no root this dump lists",
        RootCoverage::Complete => "unreachable from any root",
    };
    let mut out = format!(
        "{}: {} reachable {} retain {}; {} {} {unreachable} ({})\n\n",
        r.source,
        thousands(r.reachable_objects),
        plural(r.reachable_objects, "object", "objects"),
        size(r.reachable_bytes, exact),
        thousands(r.unreachable_objects),
        plural(r.unreachable_objects, "object is", "objects are"),
        size(r.unreachable_bytes, exact),
    );
    if let Some(line) = crate::agent_line(&r.agent, r.agent_included, exact) {
        // Above the blank line that ends the header.
        out.pop();
        out.push_str(&format!("  {line}\n\n"));
    }
    if r.by.is_empty() {
        let mut t = Table::with_columns(&[
            ("retained", Align::Right),
            ("shallow", Align::Right),
            ("address", Align::Left),
            ("type", Align::Left),
            ("class", Align::Left),
            ("location", Align::Left),
        ]);
        for o in r.objects {
            t.row(vec![
                size(o.retained_bytes, exact),
                size(o.shallow_bytes, exact),
                format!("{:#x}", o.object.address),
                match &o.object.name {
                    Some(n) => format!("{} {n}", o.object.type_name),
                    None => o.object.type_name.clone(),
                },
                o.object
                    .class
                    .clone()
                    .unwrap_or_else(|| "(no class)".into()),
                o.object
                    .location
                    .clone()
                    .unwrap_or_else(|| "(untraced)".into()),
            ]);
        }
        out.push_str(&t.render());
    } else {
        let mut headers = vec!["retained".to_string(), "shallow".into(), "count".into()];
        headers.extend(r.by.iter().map(|k| k.name().to_string()));
        let mut aligns = vec![Align::Right, Align::Right, Align::Right];
        aligns.extend(r.by.iter().map(|_| Align::Left));
        let mut t = Table::new(headers, aligns);
        for g in r.groups {
            let mut row = vec![
                size(g.retained_bytes, exact),
                size(g.shallow_bytes, exact),
                thousands(g.count),
            ];
            row.extend(r.by.iter().zip(&g.key).map(|(k, v)| v.display(*k)));
            t.row(row);
        }
        out.push_str(&t.render());
        if r.groups.len() < r.total_groups {
            out.push_str(&format!(
                "({} of {} groups shown; --top N for more)\n",
                r.groups.len(),
                thousands(r.total_groups as u64)
            ));
        }
    }
    if !r.unreachable.is_empty() {
        out.push_str(&format!(
            "\nUnreachable objects ({}):\n",
            r.coverage.unreachable_meaning(true).unwrap_or_default()
        ));
        let mut t = Table::with_columns(&[
            ("count", Align::Right),
            ("memsize", Align::Right),
            ("type", Align::Left),
            ("location", Align::Left),
        ]);
        for (k, c, m) in r.unreachable.iter().take(10) {
            t.row(vec![
                thousands(*c),
                size(*m, exact),
                k[0].display(GroupKey::Type),
                k[1].display(GroupKey::Location),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}
