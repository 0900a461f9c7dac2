//! Rendering of `heapscope suspects`.

use heapscope_analysis::retained::RetainedObject;
use heapscope_analysis::suspects::{Suspect, SuspectContainer, SuspectKind, SuspectPath, Suspects};
use heapscope_graph::RootCoverage;
use serde_json::{json, Value};

use crate::size;
use crate::{thousands, Align, Table};

/// A share as a percentage: `62%`, `8.5%`, `0.03%`.
pub fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p >= 10.0 {
        format!("{p:.0}%")
    } else if p >= 0.1 {
        format!("{p:.1}%")
    } else {
        format!("{p:.2}%")
    }
}

fn object_json(o: &RetainedObject) -> Value {
    json!({
        "address": format!("{:#x}", o.object.address),
        "type": o.object.type_name,
        "class": o.object.class,
        "name": o.object.name,
        "location": o.object.location,
    })
}

fn path_json(p: &SuspectPath) -> Value {
    let mut v = json!({
        "root": p.root.join(", "),
        "steps": p.steps.iter().map(object_json).collect::<Vec<_>>(),
    });
    if let Value::Object(m) = &mut v {
        crate::path::elision_fields(m, p.steps.len(), p.elided.as_ref());
    }
    v
}

fn container_json(c: &SuspectContainer) -> Value {
    let mut v = object_json(&c.object);
    v["retained_bytes"] = json!(c.object.retained_bytes);
    v["holds_bytes"] = json!(c.holds_bytes);
    v["suspects"] = json!(c.suspects.iter().map(|&i| i + 1).collect::<Vec<_>>());
    v["path"] = c.path.as_ref().map_or(Value::Null, path_json);
    v
}

fn suspect_json(s: &Suspect, r: &Suspects) -> Value {
    let mut start = object_json(&s.start);
    start["retained_bytes"] = json!(s.start.retained_bytes);
    let mut acc = object_json(&s.accumulation);
    acc["shallow_bytes"] = json!(s.accumulation.shallow_bytes);
    acc["retained_bytes"] = json!(s.accumulation.retained_bytes);
    acc["depth"] = json!(s.depth);
    json!({
        "kind": s.kind.name(),
        "key": s.key,
        "retained_bytes": s.retained_bytes,
        "share": s.share,
        "count": s.count,
        "start": start,
        "accumulation": acc,
        "path": s.path.as_ref().map(path_json),
        "container": s.container.map(|c| format!("{:#x}", r.containers[c].object.object.address)),
        "holds": {
            "classes": s.holds_classes.iter().map(|(c, b)| json!({"class": c, "bytes": b})).collect::<Vec<_>>(),
            "locations": s.holds_locations.iter().map(|(l, b)| json!({"location": l, "bytes": b})).collect::<Vec<_>>(),
        },
    })
}

pub fn suspects_json(source: &str, r: &Suspects) -> Value {
    json!({
        "source": source,
        "reachable_objects": r.reachable_objects,
        "reachable_bytes": r.reachable_bytes,
        "agent": crate::agent_json(&r.agent, false),
        "reachability": r.coverage.name(),
        "threshold": r.options.threshold,
        "accumulation": r.options.accumulation,
        "suspects": r.suspects.iter().map(|s| suspect_json(s, r)).collect::<Vec<_>>(),
        "containers": r.containers.iter().map(container_json).collect::<Vec<_>>(),
        "explained_groups": r.explained_groups,
        "largest_retainer": r.largest.as_ref().map(|(o, share)| {
            let mut v = object_json(o);
            v["retained_bytes"] = json!(o.retained_bytes);
            v["share"] = json!(share);
            v
        }),
    })
}

/// How an object reads in a sentence: `class RequestLog`, `Hash`, `IMEMO`.
fn noun(o: &RetainedObject) -> String {
    match (&o.object.name, o.object.type_name.as_str()) {
        (Some(n), "CLASS") => format!("class {n}"),
        (Some(n), "MODULE") => format!("module {n}"),
        _ => o
            .object
            .class
            .clone()
            .unwrap_or_else(|| o.object.type_name.clone()),
    }
}

fn at(o: &RetainedObject) -> String {
    match &o.object.location {
        Some(l) => format!("allocated at {l}"),
        None => "(allocation not traced)".into(),
    }
}

fn held_from(s: &Suspect) -> String {
    match &s.path {
        Some(p) if !p.root.is_empty() => format!(", held from ROOT {}", p.root.join(", ")),
        _ => String::new(),
    }
}

/// The one-sentence summary of a suspect.
pub fn summary(s: &Suspect, exact: bool) -> String {
    let amount = format!(
        "{} ({} of the heap)",
        size(s.retained_bytes, exact),
        percent(s.share)
    );
    let mut out = match s.kind {
        SuspectKind::Object => format!(
            "One {} {} retains {amount}{}.",
            noun(&s.start),
            at(&s.start),
            held_from(s)
        ),
        SuspectKind::Class => format!(
            "{} {} objects retain {amount}; the largest, {} {}, retains {}{}.",
            thousands(s.count),
            s.key,
            format_args!("{:#x}", s.start.object.address),
            at(&s.start),
            size(s.start.retained_bytes, exact),
            held_from(s)
        ),
        SuspectKind::Location => format!(
            "{} objects allocated at {} retain {amount}; the largest, a {} at {:#x}, retains {}{}.",
            thousands(s.count),
            s.key,
            noun(&s.start),
            s.start.object.address,
            size(s.start.retained_bytes, exact),
            held_from(s)
        ),
    };
    if s.depth > 0 {
        out.push_str(&format!(
            " The memory accumulates in one {} {}, {} level{} down the dominator tree ({}).",
            noun(&s.accumulation),
            at(&s.accumulation),
            s.depth,
            if s.depth == 1 { "" } else { "s" },
            size(s.accumulation.retained_bytes, exact)
        ));
    }
    out
}

fn object_row(o: &RetainedObject) -> Vec<String> {
    vec![
        format!("{:#x}", o.object.address),
        o.object.type_name.clone(),
        match (&o.object.name, &o.object.class) {
            (Some(n), _) => n.clone(),
            (None, Some(c)) => c.clone(),
            (None, None) => "(no class)".into(),
        },
        o.object
            .location
            .clone()
            .unwrap_or_else(|| "(untraced)".into()),
    ]
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("{by}{l}\n")
            }
        })
        .collect()
}

pub fn suspects_text(source: &str, r: &Suspects, exact: bool) -> String {
    crate::safe_text(suspects_text_unescaped(source, r, exact))
}

fn suspects_text_unescaped(source: &str, r: &Suspects, exact: bool) -> String {
    if r.coverage == RootCoverage::Missing {
        return format!(
            "{source}: reachability is not in this dump (it has no ROOT records, as \
             dump_all(since: ...) writes), so what retains what, and so leak suspects, cannot \
             be found\n"
        );
    }
    let mut out = format!(
        "{source}: {} reachable objects retain {}; a suspect retains more than {} ({})\n\n",
        thousands(r.reachable_objects),
        size(r.reachable_bytes, exact),
        percent(r.options.threshold),
        size(
            (r.options.threshold * r.reachable_bytes as f64) as u64,
            exact
        ),
    );
    if let Some(line) = crate::agent_line(&r.agent, false, exact) {
        out.pop();
        out.push_str(&format!("  {line}\n\n"));
    }
    if r.suspects.is_empty() {
        out.push_str(&format!(
            "No leak suspects: no object or group retains more than {} of the heap.\n",
            percent(r.options.threshold)
        ));
        if let Some((o, share)) = &r.largest {
            out.push_str(&format!(
                "The largest retainer is one {} {} ({:#x}), which retains {} ({} of the heap).\n",
                noun(o),
                at(o),
                o.object.address,
                size(o.retained_bytes, exact),
                percent(*share)
            ));
        }
        return out;
    }
    let mut done = vec![false; r.suspects.len()];
    let mut n = 0;
    for i in 0..r.suspects.len() {
        if done[i] {
            continue;
        }
        n += 1;
        let shared = r.suspects[i]
            .container
            .map(|c| &r.containers[c])
            .filter(|c| c.suspects.len() > 1);
        let Some(c) = shared else {
            done[i] = true;
            out.push_str(&format!(
                "Problem suspect {n}: {} {}\n",
                r.suspects[i].kind.name(),
                r.suspects[i].key
            ));
            suspect_text(&mut out, &r.suspects[i], exact);
            continue;
        };
        container_text(&mut out, n, c, r, exact);
        for (k, &j) in c.suspects.iter().enumerate() {
            done[j] = true;
            let s = &r.suspects[j];
            let mut block = format!("Suspect {n}.{}: {} {}\n", k + 1, s.kind.name(), s.key);
            suspect_text(&mut block, s, exact);
            out.push_str(&indent(&block, "  "));
        }
    }
    if r.explained_groups > 0 {
        out.push_str(&format!(
            "({} more group{} over the threshold left out: {} memory is in the suspects above)\n",
            r.explained_groups,
            if r.explained_groups == 1 { "" } else { "s" },
            if r.explained_groups == 1 {
                "its"
            } else {
                "their"
            }
        ));
    }
    out
}

/// The shortest path from a root, as an indented table.
fn path_text(out: &mut String, p: &SuspectPath) {
    out.push_str(&format!(
        "\n  Shortest path from a root (ROOT {}):\n",
        if p.root.is_empty() {
            "?".to_string()
        } else {
            p.root.join(", ")
        }
    ));
    let mut t = Table::with_columns(&[
        ("address", Align::Left),
        ("type", Align::Left),
        ("class", Align::Left),
        ("location", Align::Left),
    ]);
    for (i, step) in p.steps.iter().enumerate() {
        crate::path::gap_row(&mut t, 4, i, p.elided.as_ref());
        t.row(object_row(step));
    }
    out.push_str(&indent(&t.render(), "    "));
}

/// The heading of suspects that share a container.
fn container_text(out: &mut String, n: usize, c: &SuspectContainer, r: &Suspects, exact: bool) {
    let o = &c.object;
    out.push_str(&format!(
        "Problem suspect {n}: container {} {:#x}, holding {} suspects\n",
        noun(o),
        o.object.address,
        c.suspects.len()
    ));
    out.push_str(&format!(
        "  One {} {} directly holds most of the memory of the {} suspects below: the objects it \
         references that are held from elsewhere too retain {} ({} of the heap).\n",
        noun(o),
        at(o),
        c.suspects.len(),
        size(c.holds_bytes, exact),
        percent(if r.reachable_bytes == 0 {
            0.0
        } else {
            c.holds_bytes as f64 / r.reachable_bytes as f64
        })
    ));
    match &c.path {
        Some(p) => path_text(out, p),
        None => out.push_str("\n  No path from a root was found.\n"),
    }
    out.push('\n');
}

/// One suspect's summary, accumulation point, path and contents.
fn suspect_text(out: &mut String, s: &Suspect, exact: bool) {
    {
        out.push_str(&format!("  {}\n\n", summary(s, exact)));
        let a = &s.accumulation;
        out.push_str(&format!(
            "  Accumulation point ({} level{} down): {} {:#x} {}, retains {}\n",
            s.depth,
            if s.depth == 1 { "" } else { "s" },
            noun(a),
            a.object.address,
            at(a),
            size(a.retained_bytes, exact)
        ));
        match &s.path {
            Some(p) => path_text(out, p),
            None => out.push_str("\n  No path from a root was found.\n"),
        }
        out.push_str("\n  What the accumulation point holds:\n");
        let mut t = Table::with_columns(&[("bytes", Align::Right), ("class", Align::Left)]);
        for (c, b) in &s.holds_classes {
            t.row(vec![size(*b, exact), c.clone()]);
        }
        out.push_str(&indent(&t.render(), "    "));
        let mut t = Table::with_columns(&[("bytes", Align::Right), ("location", Align::Left)]);
        for (l, b) in &s.holds_locations {
            t.row(vec![size(*b, exact), l.clone()]);
        }
        out.push('\n');
        out.push_str(&indent(&t.render(), "    "));
        out.push('\n');
    }
}
