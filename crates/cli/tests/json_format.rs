//! The JSON reports: row keys are named after `--by`, values have the
//! documented types, stdout holds one JSON document and nothing else.
//!
//! Uses a small hand-written Ruby 3.1 dump whose every grouping is known.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use common::{counts_by, diff_run, fixture, rows, rows_where, summary_json, summary_run};
use serde_json::{json, Value};
use tempfile::TempDir;

const WIDGET_RB: &str = "/app/models/widget.rb";
const SET_RB: &str = "/usr/lib/ruby/3.1.0/set.rb";
const RACK_RB: &str = "/var/lib/gems/3.1.0/gems/rack-2.2.3/lib/rack/utils.rb";
const KERNEL: &str = "<internal:kernel>";

fn class(addr: u32, name: &str) -> String {
    format!(
        r#"{{"address":"0x7f00000{addr:05x}", "type":"CLASS", "class":"0x7f00000000a0", "name":"{name}", "references":[], "memsize":500, "flags":{{"wb_protected":true, "old":true, "uncollectible":true, "marked":true}}}}"#
    )
}

fn object(
    addr: u32,
    t: &str,
    class: u32,
    extra: &str,
    site: Option<(&str, u32, &str, u32)>,
    memsize: u32,
) -> String {
    let site = match site {
        Some((file, line, method, generation)) => {
            format!(
                r#", "file":"{file}", "line":{line}, "method":"{method}", "generation":{generation}"#
            )
        }
        None => String::new(),
    };
    format!(
        r#"{{"address":"0x7f00001{addr:05x}", "type":"{t}", "class":"0x7f00000{class:05x}"{extra}{site}, "memsize":{memsize}, "flags":{{"wb_protected":true}}}}"#
    )
}

fn string(addr: u32, value: &str, site: Option<(&str, u32, &str, u32)>) -> String {
    let extra = format!(
        r#", "embedded":true, "bytesize":{}, "value":"{value}", "encoding":"UTF-8""#,
        value.len()
    );
    object(addr, "STRING", 0x50, &extra, site, 40)
}

/// The sample dump's lines. `rack` adds the two strings allocated in the rack gem.
fn sample_lines(rack: bool) -> Vec<String> {
    let mut l = vec![
        r#"{"type":"ROOT", "root":"vm", "references":["0x7f0000000028", "0x7f0000000050"]}"#
            .to_string(),
    ];
    l.push(class(0x28, "Object"));
    l.push(class(0x50, "String"));
    l.push(class(0x78, "Widget"));
    l.push(class(0xa0, "Class"));
    l.push(class(0xc8, "Array"));
    for i in 0..3 {
        l.push(object(
            i,
            "OBJECT",
            0x78,
            r#", "ivars":0"#,
            Some((WIDGET_RB, 10, "new", 5)),
            40,
        ));
    }
    l.push(object(3, "OBJECT", 0x78, r#", "ivars":0"#, None, 40));
    for i in 0..3 {
        l.push(string(0x10 + i, "dup", Some((SET_RB, 20, "initialize", 6))));
    }
    if rack {
        for i in 0..2 {
            l.push(string(0x20 + i, "dup", Some((RACK_RB, 5, "escape", 7))));
        }
    }
    l.push(string(0x30, "solo", Some((KERNEL, 90, "then", 7))));
    l.push(string(0x31, "pair", None));
    l.push(string(0x32, "pair", None));
    l.push(object(
        0x40,
        "ARRAY",
        0xc8,
        r#", "length":0, "embedded":true"#,
        Some((WIDGET_RB, 11, "build", 5)),
        200,
    ));
    l.push(r#"{"address":"0x7f0000100050", "type":"IMEMO", "class":"0x7f0000000078", "imemo_type":"callcache", "memsize":80, "flags":{"wb_protected":true}}"#.to_string());
    l
}

struct Sample {
    _dir: TempDir,
    path: PathBuf,
    /// The same dump without the rack strings: an earlier dump for `diff`.
    before: PathBuf,
}

fn sample() -> Sample {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.jsonl");
    fs::write(&path, sample_lines(true).join("\n") + "\n").unwrap();
    let before = dir.path().join("before.jsonl");
    fs::write(&before, sample_lines(false).join("\n") + "\n").unwrap();
    Sample {
        _dir: dir,
        path,
        before,
    }
}

/// `{value: count}` expected for each key, `null` for objects without one.
fn expected_counts(key: &str) -> BTreeMap<String, u64> {
    let m: &[(&str, u64)] = match key {
        "generation" => &[("null", 9), ("5", 4), ("6", 3), ("7", 3)],
        "type" => &[
            ("CLASS", 5),
            ("OBJECT", 4),
            ("STRING", 8),
            ("ARRAY", 1),
            ("IMEMO", 1),
        ],
        "class" => &[
            ("Class", 5),
            ("Widget", 4),
            ("String", 8),
            ("Array", 1),
            ("null", 1),
        ],
        "location" => &[
            ("null", 9),
            ("/app/models/widget.rb:10", 3),
            ("/app/models/widget.rb:11", 1),
            ("/usr/lib/ruby/3.1.0/set.rb:20", 3),
            ("/var/lib/gems/3.1.0/gems/rack-2.2.3/lib/rack/utils.rb:5", 2),
            ("<internal:kernel>:90", 1),
        ],
        "file" => &[
            ("null", 9),
            (WIDGET_RB, 4),
            (SET_RB, 3),
            (RACK_RB, 2),
            (KERNEL, 1),
        ],
        "method" => &[
            ("null", 9),
            ("new", 3),
            ("build", 1),
            ("initialize", 3),
            ("escape", 2),
            ("then", 1),
        ],
        "gem" => &[
            ("null", 9),
            ("app", 4),
            ("ruby stdlib", 3),
            ("rack 2.2.3", 2),
            ("ruby core", 1),
        ],
        // Only values held by several strings.
        "string" => &[("dup", 5), ("pair", 2)],
        other => panic!("unknown key {other}"),
    };
    m.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

const KEYS: [&str; 8] = [
    "generation",
    "type",
    "class",
    "location",
    "file",
    "method",
    "gem",
    "string",
];

fn json_of(path: &Path, extra: &[&str]) -> Value {
    summary_json(path, extra)
}

/// Checks one row's keys and value types against `by`.
fn assert_row_shape(row: &Value, by: &[&str]) {
    let obj = row
        .as_object()
        .unwrap_or_else(|| panic!("row is not an object: {row}"));
    let mut want: BTreeSet<&str> = by.iter().copied().collect();
    want.extend(["count", "memsize"]);
    if by.contains(&"string") {
        want.insert("locations");
    }
    let got: BTreeSet<&str> = obj.keys().map(|k| k.as_str()).collect();
    assert_eq!(got, want, "row keys for --by {}: {row}", by.join(","));
    for k in by {
        let v = &row[*k];
        match *k {
            "generation" => assert!(
                v.is_u64() || v.is_null(),
                "generation must be a number or null: {row}"
            ),
            _ => assert!(
                v.is_string() || v.is_null(),
                "{k} must be a string or null: {row}"
            ),
        }
    }
    assert!(row["count"].as_u64().is_some_and(|c| c > 0), "count: {row}");
    assert!(row["memsize"].is_u64(), "memsize: {row}");
    if let Some(locs) = row.get("locations") {
        for l in locs.as_array().expect("locations is an array") {
            let keys: BTreeSet<&str> = l
                .as_object()
                .expect("location entry")
                .keys()
                .map(|k| k.as_str())
                .collect();
            assert_eq!(keys, ["count", "location"].into(), "{row}");
            assert!(
                l["location"].is_string() || l["location"].is_null(),
                "{row}"
            );
            assert!(l["count"].as_u64().is_some_and(|c| c > 0), "{row}");
        }
    }
}

#[test]
fn rows_are_named_after_each_key() {
    let s = sample();
    for key in KEYS {
        let v = json_of(&s.path, &["--by", key, "--top", "0"]);
        assert_eq!(v["by"], json!([key]));
        assert_eq!(v["source"], s.path.to_str().unwrap());
        for row in rows(&v) {
            assert_row_shape(row, &[key]);
        }
        assert_eq!(counts_by(&v, key), expected_counts(key), "--by {key}");
        assert_eq!(
            v["groups"].as_u64().unwrap(),
            rows(&v).len() as u64,
            "--by {key} --top 0"
        );
        let t = &v["totals"];
        assert_eq!(t["objects"], 19);
        assert_eq!(t["memsize"], 3260);
        assert_eq!(t["dump_objects"], 19);
        assert_eq!(t["roots"], 1);
        assert_eq!(t["shapes"], 0);
        assert_eq!(t["traced_objects"], 10);
        assert_eq!(t["tracer_memsize"], Value::Null);
        assert_eq!(t["tracer_included"], false);
    }
}

#[test]
fn string_rows_carry_locations() {
    let s = sample();
    let v = json_of(&s.path, &["--by", "string", "--top", "0"]);
    let dup = rows_where(&v, "string", &json!("dup"));
    assert_eq!(dup.len(), 1);
    assert_eq!(dup[0]["memsize"], 200);
    assert_eq!(
        dup[0]["locations"],
        json!([
            {"location": format!("{SET_RB}:20"), "count": 3},
            {"location": format!("{RACK_RB}:5"), "count": 2},
        ])
    );
    // Copies allocated without tracing have no location.
    let pair = rows_where(&v, "string", &json!("pair"));
    let locs = pair[0]["locations"].as_array().unwrap();
    assert_eq!(locs.len(), 1);
    assert_eq!(locs[0]["count"], 2);
    assert!(
        locs[0]["location"].is_null() || locs[0]["location"] == "(untraced)",
        "{}",
        locs[0]
    );
    // Only STRING objects count: class names and the like are not strings.
    assert!(rows_where(&v, "string", &json!("Widget")).is_empty());
}

#[test]
fn several_keys() {
    let s = sample();
    let v = json_of(&s.path, &["--by", "type,class", "--top", "0"]);
    assert_eq!(v["by"], json!(["type", "class"]));
    let mut got = BTreeMap::new();
    for row in rows(&v) {
        assert_row_shape(row, &["type", "class"]);
        got.insert(
            (row["type"].to_string(), row["class"].to_string()),
            row["count"].as_u64().unwrap(),
        );
    }
    let want: BTreeMap<(String, String), u64> = [
        (("\"CLASS\"", "\"Class\""), 5),
        (("\"OBJECT\"", "\"Widget\""), 4),
        (("\"STRING\"", "\"String\""), 8),
        (("\"ARRAY\"", "\"Array\""), 1),
        (("\"IMEMO\"", "null"), 1),
    ]
    .into_iter()
    .map(|((t, c), n)| ((t.to_string(), c.to_string()), n))
    .collect();
    assert_eq!(got, want);

    // Up to four keys, in the order given.
    for by in [
        ["gem", "generation", "type", "method"],
        ["location", "file", "class", "string"],
    ] {
        let joined = by.join(",");
        let v = json_of(&s.path, &["--by", &joined, "--top", "0"]);
        assert_eq!(v["by"], json!(by));
        for row in rows(&v) {
            assert_row_shape(row, &by);
        }
        let total: u64 = rows(&v).iter().map(|r| r["count"].as_u64().unwrap()).sum();
        if by.contains(&"string") {
            assert_eq!(total, 7, "--by {joined}: the duplicated strings");
        } else {
            assert_eq!(total, 19, "--by {joined}");
        }
    }
    // Keys appear in each row in the order of --by.
    let run = summary_run(&s.path, &["--by", "method,type", "--format", "json"]);
    let text = run.ok().stdout_text();
    let rows_at = text.find("\"rows\"").unwrap();
    let first_row = &text[rows_at..];
    assert!(
        first_row.find("\"method\"").unwrap() < first_row.find("\"type\"").unwrap(),
        "row keys out of order:\n{text}"
    );
}

#[test]
fn sorting_and_top() {
    let s = sample();
    let v = json_of(&s.path, &["--by", "type", "--top", "0"]);
    let mem: Vec<u64> = rows(&v)
        .iter()
        .map(|r| r["memsize"].as_u64().unwrap())
        .collect();
    assert!(
        mem.windows(2).all(|w| w[0] >= w[1]),
        "rows by memsize, largest first: {mem:?}"
    );
    assert_eq!(rows(&v)[0]["type"], "CLASS");
    let v = json_of(&s.path, &["--by", "type", "--top", "0", "--sort", "count"]);
    let counts: Vec<u64> = rows(&v)
        .iter()
        .map(|r| r["count"].as_u64().unwrap())
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] >= w[1]),
        "rows by count: {counts:?}"
    );
    assert_eq!(rows(&v)[0]["type"], "STRING");
    let v = json_of(&s.path, &["--by", "type", "--top", "2"]);
    assert_eq!(rows(&v).len(), 2);
    assert_eq!(
        v["groups"], 5,
        "groups counts all groups, not only those shown"
    );
    assert_eq!(v["totals"]["objects"], 19, "totals are not cut by --top");
    // By generation: untraced first, then oldest to newest, all shown by default.
    let v = json_of(&s.path, &[]);
    let gens: Vec<Value> = rows(&v).iter().map(|r| r["generation"].clone()).collect();
    assert_eq!(gens, vec![Value::Null, json!(5), json!(6), json!(7)]);
}

#[test]
fn stdout_holds_only_the_json_document() {
    let s = sample();
    // Warnings about broken lines go to stderr, never into the document.
    let broken = fixture("malformed-lines.jsonl");
    for (dump, by, warns) in [
        (&s.path, "string", false),
        (&broken, "generation", true),
        (&broken, "class,type", true),
    ] {
        let run = summary_run(dump, &["--by", by, "--format", "json"]);
        let v = run.json(); // the whole of stdout parses as one document
        assert!(v.is_object());
        let text = run.stdout_text();
        assert!(text.starts_with('{') && text.ends_with("}\n"), "{text}");
        assert_eq!(warns, !run.stderr.is_empty(), "stderr: {}", run.stderr);
        assert!(!text.contains("heapscope:"), "{text}");
    }
    // diff too.
    for later in [None, Some(&s.path)] {
        let mut dumps = vec![s.before.as_path(), s.path.as_path()];
        dumps.extend(later.map(|p| p.as_path()));
        let run = diff_run(&dumps, &["--format", "json"]);
        let v = run.json();
        let text = run.stdout_text();
        assert!(text.starts_with('{') && text.ends_with("}\n"), "{text}");
        for k in [
            "before",
            "after",
            "later",
            "by",
            "totals",
            "rows",
            "groups",
            "warnings",
            "diagnostics",
        ] {
            assert!(v.get(k).is_some(), "diff JSON without {k}: {v}");
        }
        assert_eq!(v["later"].is_null(), later.is_none());
        assert_eq!(
            v["diagnostics"].as_array().unwrap().len(),
            2 + later.is_some() as usize
        );
    }
}

#[test]
fn diff_rows_are_named_after_each_key() {
    let s = sample();
    for key in KEYS {
        let run = diff_run(
            &[&s.before, &s.path],
            &["--by", key, "--format", "json", "--top", "0"],
        );
        let v = run.json();
        assert_eq!(v["by"], json!([key]));
        for row in rows(&v) {
            assert_row_shape(row, &[key]);
        }
        // The two rack strings are the only new objects.
        let t = &v["totals"];
        assert_eq!(t["new_objects"], 2, "--by {key}: {t}");
        assert_eq!(t["before_objects"], 17);
        assert_eq!(t["after_objects"], 19);
        let want: BTreeMap<String, u64> = match key {
            "generation" => [("7".to_string(), 2)].into(),
            "type" => [("STRING".to_string(), 2)].into(),
            "class" => [("String".to_string(), 2)].into(),
            "location" => [(format!("{RACK_RB}:5"), 2)].into(),
            "file" => [(RACK_RB.to_string(), 2)].into(),
            "method" => [("escape".to_string(), 2)].into(),
            "gem" => [("rack 2.2.3".to_string(), 2)].into(),
            "string" => [("dup".to_string(), 2)].into(),
            _ => unreachable!(),
        };
        assert_eq!(counts_by(&v, key), want, "diff --by {key}");
    }
}

// ---- `--by string` locations: known bugs -------------------------------------

/// Location counts of a string row, as {location: count}.
fn locations(row: &Value) -> BTreeMap<String, u64> {
    row["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["location"].as_str().unwrap_or("null").to_string(),
                l["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn string_locations_respect_filters() {
    let s = sample();
    let v = json_of(&s.path, &["--by", "string", "--generation", "6"]);
    let dup = rows_where(&v, "string", &json!("dup"));
    assert_eq!(dup[0]["count"], 3);
    assert_eq!(
        locations(dup[0]),
        [(format!("{SET_RB}:20"), 3)].into(),
        "only generation 6's copies: {}",
        dup[0]
    );
}

#[test]
fn diff_string_locations_are_the_new_copies() {
    let s = sample();
    let v = diff_run(
        &[&s.before, &s.path],
        &["--by", "string", "--format", "json"],
    )
    .json();
    let dup = rows_where(&v, "string", &json!("dup"));
    assert_eq!(dup[0]["count"], 2);
    assert_eq!(
        locations(dup[0]),
        [(format!("{RACK_RB}:5"), 2)].into(),
        "only the new copies: {}",
        dup[0]
    );
}

#[test]
fn string_locations_with_several_keys() {
    let s = sample();
    for by in ["string,generation", "generation,string", "string,location"] {
        let v = json_of(&s.path, &["--by", by, "--top", "0"]);
        for row in rows(&v) {
            let located: u64 = locations(row).values().sum();
            // Each row lists where its own copies were allocated (at most 3
            // locations, so the sum can only be smaller when there are more).
            assert_eq!(located, row["count"].as_u64().unwrap(), "--by {by}: {row}");
        }
    }
}

/// Two 8 EiB strings (2^63 bytes each): every memsize total is at least
/// their sum, u64::MAX, where it used to wrap to 0.
const HUGE: &str = r#"{"type":"ROOT", "root":"global_tbl", "references":["0x1000"]}
{"address":"0x1000", "type":"ARRAY", "class":"0x5000", "length":2, "references":["0x1028", "0x1050"], "file":"a.rb", "line":1, "generation":5, "memsize":40}
{"address":"0x1028", "type":"STRING", "class":"0x5028", "file":"a.rb", "line":2, "generation":5, "memsize":9223372036854775808}
{"address":"0x1050", "type":"STRING", "class":"0x5028", "file":"a.rb", "line":2, "generation":5, "memsize":9223372036854775808}
{"address":"0x5000", "type":"CLASS", "name":"Array", "memsize":10}
{"address":"0x5028", "type":"CLASS", "name":"String", "memsize":10}
"#;

#[test]
fn memsize_totals_saturate_instead_of_wrapping() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.dump");
    fs::write(&huge, HUGE).unwrap();
    let empty = dir.path().join("empty.dump");
    fs::write(
        &empty,
        "{\"type\":\"ROOT\", \"root\":\"vm\", \"references\":[]}\n",
    )
    .unwrap();
    let h = huge.to_str().unwrap();
    let e = empty.to_str().unwrap();
    let max = json!(u64::MAX);
    let run = |args: &[&str]| common::heapscope(args).json();

    let v = run(&["summary", h, "--by", "location", "-f", "json"]);
    assert_eq!(v["totals"]["memsize"], max);
    let row = rows_where(&v, "location", &json!("a.rb:2"));
    assert_eq!(row[0]["memsize"], max);
    let v = run(&["diff", e, h, "--by", "location", "-f", "json"]);
    assert_eq!(v["totals"]["after_memsize"], max);
    assert_eq!(v["totals"]["new_memsize"], max);
    let v = run(&["retained", h, "-f", "json"]);
    assert_eq!(v["reachable"]["bytes"], max);
    assert_eq!(v["rows"][0]["retained_bytes"], max);
    let v = run(&["retained", h, "--by", "location", "-f", "json"]);
    assert_eq!(v["rows"][0]["shallow_bytes"], max);
    let v = run(&["suspects", h, "-f", "json"]);
    assert_eq!(v["reachable_bytes"], max);
    let v = run(&["leaks", e, h, "--time", "0,60", "-f", "json"]);
    assert_eq!(v["processes"][0]["heap_bytes"][1], max);
    // Tables say 16 EiB, never 0 B.
    let text = common::heapscope(&["summary", h]).stdout_text();
    assert!(text.contains("16.0 EiB"), "{text}");
}
