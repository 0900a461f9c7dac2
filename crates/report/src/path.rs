//! Rendering of `heapscope path`.

use heapscope_analysis::paths::{root_label, DominatorStep, Elision, LabeledPath, ObjectRef};
use serde_json::{json, Value};

use crate::size;
use crate::{Align, Table};

/// What `path` found, for rendering.
pub struct PathReport<'a> {
    pub source: &'a str,
    pub address: u64,
    /// Labelled root paths (empty with `--dominators`).
    pub paths: &'a [LabeledPath],
    /// The dominator chain, top-level dominator first (with `--dominators`).
    pub dominators: Option<&'a [DominatorStep]>,
    /// The steps left out of the middle of a long dominator chain.
    pub dominators_elided: Option<Elision>,
    /// Some records could not be re-read (compressed input or stdin), so
    /// array indexes are unknown.
    pub records_unavailable: bool,
}

/// The line that stands for the steps left out of a long path.
pub fn elision_line(e: &Elision) -> String {
    format!(
        "… {} {} left out (--full-path shows every step) …",
        crate::thousands(e.count as u64),
        if e.count == 1 { "step" } else { "steps" }
    )
}

/// A labelled root path as JSON: its root (and every root category
/// holding its first object), whether it was found on a C stack, its steps
/// with how each is held, and what was left out of a long one. `leaks` and
/// the web UI's object pages write paths this way.
pub fn labeled_path_json(p: &LabeledPath) -> Value {
    let mut v = json!({
        "root": p.root(),
        "roots": p.categories,
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
        elision_fields(m, p.steps.len(), p.elided.as_ref());
    }
    v
}

/// JSON fields for a path or chain of `shown` steps: its whole `length`,
/// how many steps were `elided` (0 when none) and after which shown step
/// (`elided_after`, null when none).
pub fn elision_fields(m: &mut serde_json::Map<String, Value>, shown: usize, e: Option<&Elision>) {
    m.insert("length".into(), json!(shown + e.map_or(0, |e| e.count)));
    m.insert("elided".into(), json!(e.map_or(0, |e| e.count)));
    m.insert("elided_after".into(), json!(e.map(|e| e.after)));
}

/// Adds a table row for the gap of a long path before the row of step `i`.
pub(crate) fn gap_row(t: &mut Table, columns: usize, i: usize, e: Option<&Elision>) {
    if let Some(e) = e.filter(|e| e.after == i) {
        let mut row = vec![String::new(); columns];
        row[0] = elision_line(e);
        t.row(row);
    }
}

fn object_fields(o: &ObjectRef) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("address".into(), json!(format!("{:#x}", o.address)));
    m.insert("type".into(), json!(o.type_name));
    m.insert("class".into(), json!(o.class));
    m.insert("name".into(), json!(o.name));
    m.insert("location".into(), json!(o.location));
    m
}

pub fn path_json(r: &PathReport<'_>) -> Value {
    let mut v = json!({
        "source": r.source,
        "address": format!("{:#x}", r.address),
        "reachable": true,
    });
    match r.dominators {
        Some(chain) => {
            v["dominators"] = chain
                .iter()
                .map(|s| {
                    let mut m = object_fields(&s.object);
                    m.insert("shallow_bytes".into(), json!(s.shallow_bytes));
                    m.insert("retained_bytes".into(), json!(s.retained_bytes));
                    Value::Object(m)
                })
                .collect();
            let mut m = serde_json::Map::new();
            elision_fields(&mut m, chain.len(), r.dominators_elided.as_ref());
            v["dominators_length"] = m["length"].clone();
            v["dominators_elided"] = m["elided"].clone();
            v["dominators_elided_after"] = m["elided_after"].clone();
        }
        None => {
            v["paths"] = r
                .paths
                .iter()
                .map(|p| {
                    let mut v = json!({
                        "root": p.root(),
                        "roots": p.categories,
                        "conservative": p.conservative,
                        "steps": p.steps.iter().map(|s| {
                            let mut m = object_fields(&s.object);
                            m.insert("held_as".into(), json!(s.held_as));
                            Value::Object(m)
                        }).collect::<Vec<_>>(),
                    });
                    if let Value::Object(m) = &mut v {
                        elision_fields(m, p.steps.len(), p.elided.as_ref());
                    }
                    v
                })
                .collect();
        }
    }
    v
}

/// The steps of a root path as a table, each line starting with `indent`.
pub(crate) fn steps_table(p: &LabeledPath, indent: &str) -> String {
    let mut t = Table::with_columns(&[
        ("address", Align::Left),
        ("type", Align::Left),
        ("class", Align::Left),
        ("location", Align::Left),
        ("holds the next as", Align::Left),
    ]);
    for (i, s) in p.steps.iter().enumerate() {
        gap_row(&mut t, 5, i, p.elided.as_ref());
        t.row(vec![
            format!("{:#x}", s.object.address),
            s.object.type_name.clone(),
            who(&s.object),
            s.object
                .location
                .clone()
                .unwrap_or_else(|| "(untraced)".into()),
            s.held_as.clone().unwrap_or_default(),
        ]);
    }
    t.render()
        .lines()
        .map(|l| format!("{indent}{l}\n"))
        .collect()
}

/// An object's class, and its own name when it is a class, module or DATA.
pub(crate) fn who(o: &ObjectRef) -> String {
    let mut s = o.class.clone().unwrap_or_else(|| "(no class)".into());
    if let Some(n) = &o.name {
        s.push(' ');
        s.push_str(n);
    }
    s
}

pub fn path_text(r: &PathReport<'_>, exact: bool) -> String {
    crate::safe_text(path_text_unescaped(r, exact))
}

fn path_text_unescaped(r: &PathReport<'_>, exact: bool) -> String {
    let mut out = String::new();
    if let Some(chain) = r.dominators {
        out.push_str(&format!(
            "Dominators of {:#x}, from the top (freeing any of them frees it):\n\n",
            r.address
        ));
        let mut t = Table::with_columns(&[
            ("retained", Align::Right),
            ("shallow", Align::Right),
            ("address", Align::Left),
            ("type", Align::Left),
            ("class", Align::Left),
            ("location", Align::Left),
        ]);
        for (i, s) in chain.iter().enumerate() {
            gap_row(&mut t, 6, i, r.dominators_elided.as_ref());
            t.row(vec![
                size(s.retained_bytes, exact),
                size(s.shallow_bytes, exact),
                format!("{:#x}", s.object.address),
                s.object.type_name.clone(),
                who(&s.object),
                s.object
                    .location
                    .clone()
                    .unwrap_or_else(|| "(untraced)".into()),
            ]);
        }
        out.push_str(&t.render());
        return out;
    }
    for (i, p) in r.paths.iter().enumerate() {
        if r.paths.len() > 1 {
            out.push_str(&format!("Path {} of {}:\n", i + 1, r.paths.len()));
        }
        out.push_str(&root_label(p.root()));
        if p.categories.len() > 1 {
            out.push_str(&format!(" (also {})", p.categories[1..].join(", ")));
        }
        // A machine_context root's label already says it is conservative.
        if p.conservative && p.root() != "machine_context" {
            out.push_str(" [machine_context is conservative]");
        }
        out.push('\n');
        out.push_str(&steps_table(p, ""));
        out.push('\n');
    }
    if r.records_unavailable {
        out.push_str(
            "note: the input is compressed or stdin, so records were not re-read: array indexes \
             and hash sizes are unknown\n",
        );
    }
    out
}
