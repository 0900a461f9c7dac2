//! `heapscope diff` on three real dumps of one process with known populations
//! (`tests/ruby/three_dumps.rb`), with and without allocation tracing.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{count_of, rows, rows_where, ruby_script, run_ruby, scratch_dir, sum_counts, Run};
use serde_json::{json, Value};
use tempfile::TempDir;

const CLASSES: [&str; 4] = ["Preexisting", "Retained", "Transient", "LateArrival"];

struct ThreeDumps {
    _dir: TempDir,
    before: PathBuf,
    after: PathBuf,
    later: PathBuf,
    expected: Value,
}

fn generate(traced: bool) -> ThreeDumps {
    let dir = scratch_dir(if traced {
        "heapscope-three-traced-"
    } else {
        "heapscope-three-untraced-"
    });
    let env: &[(&str, &str)] = if traced {
        &[("NO_TRACE", "0")]
    } else {
        &[("NO_TRACE", "1")]
    };
    run_ruby(
        &ruby_script("three_dumps.rb"),
        &[dir.path()],
        env,
        dir.path(),
    );
    let text = fs::read_to_string(dir.path().join("expected.json"))
        .expect("three_dumps.rb wrote no expectations");
    let expected: Value = serde_json::from_str(&text).expect("three_dumps.rb wrote invalid JSON");
    assert_eq!(expected["schema"], 1);
    assert_eq!(expected["traced"], traced);
    let file = |k: &str| dir.path().join(expected["dumps"][k].as_str().unwrap());
    ThreeDumps {
        before: file("before"),
        after: file("after"),
        later: file("later"),
        _dir: dir,
        expected,
    }
}

fn traced() -> &'static ThreeDumps {
    static D: OnceLock<ThreeDumps> = OnceLock::new();
    D.get_or_init(|| generate(true))
}

fn untraced() -> &'static ThreeDumps {
    static D: OnceLock<ThreeDumps> = OnceLock::new();
    D.get_or_init(|| generate(false))
}

fn diff_run(dumps: &[&PathBuf], extra: &[&str]) -> Run {
    let dumps: Vec<&Path> = dumps.iter().map(|p| p.as_path()).collect();
    common::diff_run(&dumps, extra)
}

fn diff_json(dumps: &[&PathBuf], extra: &[&str]) -> Value {
    let mut e = vec!["--format", "json"];
    e.extend_from_slice(extra);
    diff_run(dumps, &e).json()
}

/// Count of the row for `class` (0 when there is none).
fn class_count(v: &Value, class: &str) -> u64 {
    let found = rows_where(v, "class", &json!(class));
    assert!(found.len() <= 1, "{class} listed {} times", found.len());
    found.first().map(|r| count_of(r)).unwrap_or(0)
}

fn warnings(v: &Value) -> Vec<String> {
    v["warnings"]
        .as_array()
        .expect("warnings array")
        .iter()
        .map(|w| w.as_str().expect("warnings are strings").to_string())
        .collect()
}

fn tracing_warning(v: &Value) -> Option<String> {
    warnings(v)
        .into_iter()
        .find(|w| w.contains("allocation tracing"))
}

/// The totals agree with the rows and with each other.
fn assert_consistent(v: &Value) {
    let t = &v["totals"];
    let n = |k: &str| {
        t[k].as_u64()
            .unwrap_or_else(|| panic!("totals.{k} is not a number: {t}"))
    };
    assert_eq!(
        n("new_objects"),
        sum_counts(v),
        "new_objects is the sum of the rows (--top 0)"
    );
    let memsize: u64 = rows(v).iter().map(|r| r["memsize"].as_u64().unwrap()).sum();
    assert_eq!(
        n("new_memsize"),
        memsize,
        "new_memsize is the sum of the rows (--top 0)"
    );
    assert_eq!(v["groups"].as_u64().unwrap(), rows(v).len() as u64);
    assert!(n("new_objects") <= n("after_objects"));
    if v["later"].is_null() {
        assert!(
            t["freed_by_later"].is_null() && t["later_objects"].is_null(),
            "{t}"
        );
    } else {
        // Every object new in AFTER is either still in LATER or freed.
        let all_new = diff_json(
            &[
                &PathBuf::from(v["before"].as_str().unwrap()),
                &PathBuf::from(v["after"].as_str().unwrap()),
            ],
            &["--top", "0"],
        );
        assert_eq!(
            n("new_objects") + n("freed_by_later"),
            all_new["totals"]["new_objects"].as_u64().unwrap()
        );
    }
}

#[test]
fn traced_before_after_finds_the_new_populations() {
    let d = traced();
    let v = diff_json(&[&d.before, &d.after], &["--by", "class", "--top", "0"]);
    assert_eq!(class_count(&v, "Retained"), 3000);
    assert_eq!(class_count(&v, "Transient"), 2000);
    assert!(
        rows_where(&v, "class", &json!("Preexisting")).is_empty(),
        "Preexisting is not new"
    );
    assert!(
        rows_where(&v, "class", &json!("LateArrival")).is_empty(),
        "LateArrival is not in AFTER"
    );
    for c in CLASSES {
        assert_eq!(
            class_count(&v, c),
            d.expected["diff_before_after"]["new_by_class"][c],
            "{c}"
        );
    }
    assert!(
        tracing_warning(&v).is_none(),
        "traced dumps need no warning: {:?}",
        warnings(&v)
    );
    assert!(warnings(&v).is_empty(), "{:?}", warnings(&v));
    assert_consistent(&v);
    let t = &v["totals"];
    let lines = &d.expected["dump_lines"];
    assert_eq!(
        t["before_objects"].as_u64().unwrap(),
        lines["before"]["heap_objects"].as_u64().unwrap() - 1,
        "minus the tracer"
    );
    assert_eq!(
        t["after_objects"].as_u64().unwrap(),
        lines["after"]["heap_objects"].as_u64().unwrap() - 1,
        "minus the tracer"
    );
}

#[test]
fn traced_totals_match_rubys_identity_key() {
    // three_dumps.rb matches objects on address+type+file+line+generation over
    // all heap objects, as heapscope does.
    let d = traced();
    let id = &d.expected["identity"];
    let v = diff_json(&[&d.before, &d.after], &["--include-tracer", "--top", "0"]);
    assert_eq!(v["totals"]["new_objects"], id["new_total"]);
    assert_consistent(&v);
    let v = diff_json(
        &[&d.before, &d.after, &d.later],
        &["--include-tracer", "--top", "0"],
    );
    assert_eq!(v["totals"]["new_objects"], id["retained_total"]);
    assert_consistent(&v);
    let lines = &d.expected["dump_lines"];
    assert_eq!(
        v["totals"]["before_objects"],
        lines["before"]["heap_objects"]
    );
    assert_eq!(v["totals"]["after_objects"], lines["after"]["heap_objects"]);
    assert_eq!(v["totals"]["later_objects"], lines["later"]["heap_objects"]);
}

#[test]
fn traced_three_dumps_keep_only_survivors() {
    let d = traced();
    let v = diff_json(
        &[&d.before, &d.after, &d.later],
        &["--by", "class", "--top", "0"],
    );
    assert_eq!(class_count(&v, "Retained"), 3000);
    for c in ["Transient", "Preexisting", "LateArrival"] {
        assert!(
            rows_where(&v, "class", &json!(c)).is_empty(),
            "{c} must not be retained: {}",
            v["rows"]
        );
    }
    for c in CLASSES {
        assert_eq!(
            class_count(&v, c),
            d.expected["diff_before_after_later"]["retained_by_class"][c],
            "{c}"
        );
    }
    assert!(
        v["totals"]["freed_by_later"].as_u64().unwrap() >= 2000,
        "the Transient objects were freed"
    );
    assert!(warnings(&v).is_empty(), "{:?}", warnings(&v));
    assert_consistent(&v);
}

#[test]
fn traced_diff_by_location_and_generation() {
    let d = traced();
    let p = &d.expected["populations"];
    let v = diff_json(
        &[&d.before, &d.after, &d.later],
        &["--by", "location", "--top", "0"],
    );
    assert_eq!(
        common::single_count(&v, "location", &p["retained"]["location"]),
        3000
    );
    assert!(rows_where(&v, "location", &p["transient"]["location"]).is_empty());
    // Filters apply to the new objects.
    // (The generation also holds the array that fill() returns, so only its
    // OBJECTs are exactly the population.)
    let g = p["transient"]["generation"].to_string();
    let v = diff_json(
        &[&d.before, &d.after],
        &["--by", "class", "--generation", &g, "--top", "0"],
    );
    assert_eq!(class_count(&v, "Transient"), 2000);
    assert_eq!(sum_counts(&v), v["totals"]["new_objects"].as_u64().unwrap());
    let v = diff_json(
        &[&d.before, &d.after],
        &[
            "--by",
            "class",
            "--generation",
            &g,
            "--type",
            "OBJECT",
            "--top",
            "0",
        ],
    );
    assert_eq!(v["totals"]["new_objects"], 2000);
    assert_eq!(class_count(&v, "Transient"), 2000);
    let v = diff_json(
        &[&d.before, &d.after],
        &["--by", "class", "--type", "OBJECT", "--top", "0"],
    );
    assert_eq!(v["totals"]["new_objects"], 5000);
}

#[test]
fn default_keys_and_table() {
    let d = traced();
    let v = diff_json(&[&d.before, &d.after], &[]);
    assert_eq!(v["by"], json!(["type", "class", "location"]));
    let p = &d.expected["populations"]["retained"];
    let found = rows_where(&v, "class", &json!("Retained"));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["type"], "OBJECT");
    assert_eq!(found[0]["location"], p["location"]);
    assert_eq!(found[0]["count"], 3000);
    assert!(rows(&v).len() <= 25, "the default --top is 25");

    let run = diff_run(&[&d.before, &d.after, &d.later], &["--by", "class"]);
    let out = run.ok().stdout_text();
    let v = diff_json(&[&d.before, &d.after, &d.later], &["--by", "class"]);
    let t = &v["totals"];
    let retained = format!(
        "Retained: {} objects",
        common::thousands(t["new_objects"].as_u64().unwrap())
    );
    let freed = format!(
        "{} others were freed",
        common::thousands(t["freed_by_later"].as_u64().unwrap())
    );
    assert!(
        out.contains(&retained) && out.contains(&freed),
        "no {retained:?} / {freed:?} in:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().take(2).eq(["Retained", "3,000"])),
        "no `Retained  3,000` row:\n{out}"
    );
    assert!(!out.contains("warning"), "{out}");
    assert!(!out.contains("Transient"), "{out}");
}

#[test]
fn untraced_dumps_warn_that_identity_is_unreliable() {
    let d = untraced();
    assert!(d.expected["identity"].is_null());
    let v = diff_json(&[&d.before, &d.after], &["--by", "class", "--top", "0"]);
    let w = tracing_warning(&v)
        .unwrap_or_else(|| panic!("no warning about tracing: {:?}", warnings(&v)));
    assert!(w.contains("BEFORE") && w.contains("AFTER"), "{w}");
    assert_consistent(&v);
    // Without allocation info, objects can only be matched on address and
    // type; three_dumps.rb computes what that gives.
    let at = &d.expected["address_and_type"];
    assert_eq!(at["key"], "address+type");
    for c in CLASSES {
        assert_eq!(
            class_count(&v, c),
            at["new_by_class"][c],
            "{c}: new by address and type"
        );
    }
    let v = diff_json(&[&d.before, &d.after], &["--top", "0", "--include-tracer"]);
    assert_eq!(v["totals"]["new_objects"], at["new_total"]);

    // With LATER, objects at reused addresses pass for survivors: the warning
    // is there for a reason.
    let v = diff_json(
        &[&d.before, &d.after, &d.later],
        &["--by", "class", "--top", "0"],
    );
    let w = tracing_warning(&v).expect("warning with three dumps");
    assert!(w.contains("LATER"), "{w}");
    for c in CLASSES {
        assert_eq!(
            class_count(&v, c),
            at["retained_by_class"][c],
            "{c}: retained by address and type"
        );
    }
    assert_eq!(class_count(&v, "Retained"), 3000);
    assert_consistent(&v);
    let v = diff_json(
        &[&d.before, &d.after, &d.later],
        &["--top", "0", "--include-tracer"],
    );
    assert_eq!(v["totals"]["new_objects"], at["retained_total"]);

    // The table says it too.
    let run = diff_run(&[&d.before, &d.after], &["--by", "class"]);
    let out = run.ok().stdout_text();
    assert!(
        out.lines()
            .any(|l| l.starts_with("warning:") && l.contains("allocation tracing")),
        "no warning in the table:\n{out}"
    );
}

#[test]
fn diff_with_itself_is_empty() {
    for d in [traced(), untraced()] {
        for extra in [&[][..], &["--include-tracer"][..]] {
            let mut e = vec!["--top", "0"];
            e.extend_from_slice(extra);
            let v = diff_json(&[&d.after, &d.after], &e);
            let t = &v["totals"];
            assert_eq!(t["new_objects"], 0, "{t}");
            assert_eq!(t["new_memsize"], 0, "{t}");
            assert_eq!(t["reused_addresses"], 0, "{t}");
            assert_eq!(t["before_objects"], t["after_objects"]);
            assert!(rows(&v).is_empty(), "{}", v["rows"]);
            let v = diff_json(&[&d.after, &d.after, &d.after], &e);
            assert_eq!(v["totals"]["new_objects"], 0);
            assert_eq!(v["totals"]["freed_by_later"], 0);
        }
    }
    let out = diff_run(&[&traced().after, &traced().after], &[])
        .ok()
        .stdout_text();
    assert!(out.contains("New: 0 objects"), "{out}");
    assert!(out.contains("Nothing to show."), "{out}");
}

#[test]
fn dumps_out_of_order_are_flagged() {
    let d = traced();
    let v = diff_json(&[&d.after, &d.before], &["--top", "0"]);
    let w = warnings(&v);
    assert!(
        w.iter()
            .any(|w| w.contains("order") && w.contains("generation")),
        "no warning about generations out of order: {w:?}"
    );
    assert_consistent(&v);
    // LATER older than AFTER.
    let v = diff_json(&[&d.before, &d.later, &d.after], &["--top", "0"]);
    let w = warnings(&v);
    assert!(
        w.iter().any(|w| w.contains("LATER") && w.contains("order")),
        "{w:?}"
    );
    // In order: no such warning.
    let v = diff_json(&[&d.before, &d.after, &d.later], &["--top", "0"]);
    assert!(warnings(&v).is_empty(), "{:?}", warnings(&v));
}

#[test]
fn diff_reports_per_dump_diagnostics() {
    let d = traced();
    let v = diff_json(&[&d.before, &d.after, &d.later], &["--top", "1"]);
    let diags = v["diagnostics"].as_array().expect("diagnostics array");
    assert_eq!(diags.len(), 3);
    let lines = &d.expected["dump_lines"];
    for (diag, (name, path)) in diags.iter().zip([
        ("before", &d.before),
        ("after", &d.after),
        ("later", &d.later),
    ]) {
        assert_eq!(diag["source"], path.to_str().unwrap());
        assert_eq!(diag["lines"], lines[name]["total"], "{name}");
        assert_eq!(diag["roots"], lines[name]["root"], "{name}");
        assert_eq!(diag["objects"], lines[name]["heap_objects"], "{name}");
        assert_eq!(diag["malformed_lines"], 0, "{name}");
    }
    assert_eq!(rows(&v).len(), 1, "--top 1");
    assert!(v["groups"].as_u64().unwrap() > 1);
}
