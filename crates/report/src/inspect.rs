//! Rendering of `heapscope inspect`.

use heapscope_analysis::inspect::{Dominator, Inspection, Neighbour, Page};
use heapscope_analysis::paths::ObjectRef;
use heapscope_graph::RootCoverage;
use serde_json::{json, Value};

use crate::path::who;
use crate::size;
use crate::{thousands, Align, Table};

/// The object's raw record, when it could be re-read.
pub enum RawRecord {
    /// The line as written in the dump.
    Found(Vec<u8>),
    /// Why it is not shown.
    Unavailable(String),
}

pub struct InspectReport<'a> {
    pub source: &'a str,
    pub inspection: &'a Inspection,
    pub record: &'a RawRecord,
}

/// What the record's `flags` object says: the names of the flags set, and
/// its integer values (4.0: `age`, `object_id`).
#[derive(Debug, Default, PartialEq)]
struct RecordFlags {
    set: Vec<String>,
    numbers: Vec<(String, u64)>,
}

impl RecordFlags {
    fn number(&self, key: &str) -> Option<u64> {
        self.numbers.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

fn record_flags(record: &RawRecord) -> Option<RecordFlags> {
    let RawRecord::Found(line) = record else {
        return None;
    };
    let v: Value = serde_json::from_slice(line).ok()?;
    let mut out = RecordFlags::default();
    for (k, v) in v.get("flags")?.as_object()? {
        match v {
            Value::Bool(true) => out.set.push(k.clone()),
            Value::Number(n) => {
                if let Some(n) = n.as_u64() {
                    out.numbers.push((k.clone(), n));
                }
            }
            _ => {}
        }
    }
    Some(out)
}

/// The flags shown: the model's (which include the record's `frozen`,
/// `embedded` and `shared` keys) and every flag the record's `flags` set,
/// such as 4.0's `remembered` and `shareable`.
fn shown_flags(i: &Inspection, raw: Option<&RecordFlags>) -> Vec<String> {
    let mut out: Vec<String> = i.flags.iter().map(|f| f.to_string()).collect();
    if let Some(raw) = raw {
        for f in &raw.set {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
    }
    out
}

fn object_json(o: &ObjectRef) -> Value {
    json!({
        "address": format!("{:#x}", o.address),
        "type": o.type_name,
        "class": o.class,
        "name": o.name,
        "location": o.location,
    })
}

fn page_json(p: &Page<Neighbour>) -> Value {
    json!({
        "total": p.total,
        "offset": p.offset,
        "limit": p.limit,
        "items": p.items.iter().map(|n| {
            let mut v = object_json(&n.object);
            v["held_as"] = json!(n.held_as);
            v["weak"] = json!(n.weak);
            v
        }).collect::<Vec<_>>(),
    })
}

pub fn inspect_json(r: &InspectReport<'_>) -> Value {
    let i = r.inspection;
    let mut v = object_json(&i.object);
    let (dkey, dtext) = match &i.detail {
        Some((k, t)) => (Some(*k), Some(t.clone())),
        None => (None, None),
    };
    v["detail"] = json!(dkey.map(|k| json!({"key": k, "value": dtext})));
    let raw_flags = record_flags(r.record);
    v["flags"] = json!(shown_flags(i, raw_flags.as_ref()));
    v["age"] = json!(raw_flags.as_ref().and_then(|f| f.number("age")));
    v["object_id"] = json!(i
        .object_id
        .or_else(|| raw_flags.as_ref().and_then(|f| f.number("object_id"))));
    v["owner"] = i.owner.as_ref().map_or(Value::Null, object_json);
    v["method"] = json!(i.method);
    v["generation"] = json!(i.generation);
    v["shape_id"] = json!(i.shape_id);
    v["ivar_names"] = json!(i.ivar_names.as_ref().map(|n| &n.names));
    v["too_complex"] = json!(i.ivar_names.as_ref().map(|n| n.too_complex));
    v["shallow_bytes"] = json!(i.shallow_bytes);
    v["retained_bytes"] = json!(i.retained_bytes);
    v["agent"] = json!(i.agent);
    v["reachable"] = json!(i.reachable);
    v["reachability"] = json!(i.coverage.name());
    v["dominator"] = match &i.dominator {
        Dominator::Root => json!("root"),
        Dominator::Unreachable => Value::Null,
        Dominator::Object(o) => object_json(o),
    };
    v["root_categories"] = json!(i.root_categories);
    v["referrers"] = page_json(&i.referrers);
    v["referents"] = page_json(&i.referents);
    match r.record {
        RawRecord::Found(line) => {
            v["record"] = serde_json::from_slice(line)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(line)));
            v["record_note"] = Value::Null;
        }
        RawRecord::Unavailable(why) => {
            v["record"] = Value::Null;
            v["record_note"] = json!(why);
        }
    }
    let mut m = serde_json::Map::new();
    m.insert("source".into(), json!(r.source));
    if let Value::Object(fields) = v {
        m.extend(fields);
    }
    Value::Object(m)
}

fn page_text(out: &mut String, what: &str, p: &Page<Neighbour>, held_header: &str) {
    out.push_str(&format!(
        "\n{} ({} of {}):\n",
        what,
        thousands(p.items.len() as u64),
        thousands(p.total as u64)
    ));
    if p.items.is_empty() {
        out.push_str("  (none)\n");
        return;
    }
    let mut t = Table::with_columns(&[
        ("address", Align::Left),
        ("type", Align::Left),
        ("class", Align::Left),
        ("location", Align::Left),
        (held_header, Align::Left),
    ]);
    for n in &p.items {
        t.row(vec![
            format!("{:#x}", n.object.address),
            n.object.type_name.clone(),
            who(&n.object),
            n.object
                .location
                .clone()
                .unwrap_or_else(|| "(untraced)".into()),
            n.held_as.clone(),
        ]);
    }
    out.push_str(&t.render());
    if p.offset + p.items.len() < p.total {
        out.push_str(&format!(
            "  ... --offset {} --limit {} for more\n",
            p.offset + p.items.len(),
            p.limit
        ));
    }
}

pub fn inspect_text(r: &InspectReport<'_>, exact: bool) -> String {
    crate::safe_text(inspect_text_unescaped(r, exact))
}

fn inspect_text_unescaped(r: &InspectReport<'_>, exact: bool) -> String {
    let i = r.inspection;
    let o = &i.object;
    let mut out = String::new();
    let raw_flags = record_flags(r.record);
    let mut field = |k: &str, v: String| out.push_str(&format!("{k:<12} {v}\n"));
    field("address", format!("{:#x}", o.address));
    field("type", o.type_name.clone());
    field("class", o.class.clone().unwrap_or_else(|| "(none)".into()));
    if let Some(owner) = &i.owner {
        field(
            "owner",
            format!(
                "{:#x} {} {} (this fields object keeps its instance variables)",
                owner.address,
                owner.type_name,
                who(owner)
            ),
        );
    }
    if let Some((k, v)) = &i.detail {
        field(k, format!("{v:?}"));
    }
    if let Some(s) = i.shape_id {
        field("shape_id", s.to_string());
    }
    if let Some(n) = &i.ivar_names {
        let mut s = n.names.join(", ");
        if n.too_complex {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str("(names not in this dump: the object's shape is too complex)");
        } else if s.is_empty() {
            s.push_str("(none)");
        }
        field("ivars", s);
    }
    let flags = shown_flags(i, raw_flags.as_ref());
    field(
        "flags",
        if flags.is_empty() {
            "(none)".into()
        } else {
            flags.join(", ")
        },
    );
    if let Some(age) = raw_flags.as_ref().and_then(|f| f.number("age")) {
        field("age", format!("{age} (GCs survived; old at 3)"));
    }
    if let Some(oid) = i
        .object_id
        .or_else(|| raw_flags.as_ref().and_then(|f| f.number("object_id")))
    {
        field("object_id", oid.to_string());
    }
    field(
        "location",
        o.location.clone().unwrap_or_else(|| "(untraced)".into()),
    );
    if let Some(m) = &i.method {
        field("method", m.clone());
    }
    if let Some(g) = i.generation {
        field("generation", g.to_string());
    }
    field("shallow", size(i.shallow_bytes, exact));
    if i.agent {
        field(
            "agent",
            "the heapscope agent's (its object, or kept alive only by its objects): sizes count \
             as 0; --include-agent counts them"
                .into(),
        );
    }
    field(
        "retained",
        if i.reachable {
            size(i.retained_bytes, exact)
        } else if i.coverage == RootCoverage::Missing {
            "unknown (the dump has no ROOT records)".into()
        } else {
            "0 (unreachable)".into()
        },
    );
    field(
        "dominator",
        match &i.dominator {
            Dominator::Root => "a root (no single object keeps it alive)".into(),
            Dominator::Unreachable => match i.coverage.unreachable_meaning(false) {
                Some(m) => format!("unreachable from any root in this dump: {m}"),
                None => "unknown: reachability is not in this dump (no ROOT records)".into(),
            },
            Dominator::Object(d) => format!("{:#x} {} {}", d.address, d.type_name, who(d)),
        },
    );
    if !i.root_categories.is_empty() {
        field("roots", i.root_categories.join(", "));
    }
    page_text(&mut out, "Referrers", &i.referrers, "holds it as");
    page_text(&mut out, "Referents", &i.referents, "held as");
    out.push_str("\nRecord:\n");
    match r.record {
        RawRecord::Found(line) => {
            // A record can be megabytes (an Array of a million elements):
            // show its start; JSON output has it whole.
            const SHOW: usize = 600;
            out.push_str("  ");
            out.push_str(&String::from_utf8_lossy(&line[..line.len().min(SHOW)]));
            if line.len() > SHOW {
                out.push_str(&format!(
                    "… ({} bytes in all; --format json has the whole record)",
                    crate::thousands(line.len() as u64)
                ));
            }
            out.push('\n');
        }
        RawRecord::Unavailable(why) => out.push_str(&format!("  {why}\n")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_flags_of_ruby_4() {
        let line = br#"{"address":"0x1", "type":"CLASS", "flags":{"wb_protected":true, "age":3, "old":true, "object_id":42, "marking":false, "remembered":true, "shareable":true}}"#;
        let f = record_flags(&RawRecord::Found(line.to_vec())).unwrap();
        assert_eq!(f.set, ["wb_protected", "old", "remembered", "shareable"]);
        assert_eq!(f.number("age"), Some(3));
        assert_eq!(f.number("object_id"), Some(42));
        assert_eq!(record_flags(&RawRecord::Unavailable("gz".into())), None);
        // A record without flags (Ruby before 4.0 may omit them).
        let none = record_flags(&RawRecord::Found(br#"{"address":"0x1"}"#.to_vec()));
        assert_eq!(none, None);
    }
}
