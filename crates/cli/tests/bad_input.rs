//! Hand-written fixtures (`tests/fixtures`, numbers in `expected.json`): dumps
//! of every Ruby layout, broken dumps, files that are not dumps, and usage
//! errors.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;

use common::{
    counts_by, diff_run, fixture, fixture_expectations, heapscope, rows, summary_json, summary_run,
};
use serde_json::{json, Value};

/// `heapscope summary ARGS` (usage errors need arguments in any order).
fn summary<S: AsRef<OsStr>>(args: &[S]) -> common::Run {
    let mut all: Vec<&OsStr> = vec![OsStr::new("summary")];
    all.extend(args.iter().map(|a| a.as_ref()));
    heapscope(&all)
}

const REPORT: [&str; 7] = [
    "--format",
    "json",
    "--include-tracer",
    "--top",
    "0",
    "--by",
    "type",
];

fn numbers(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect()
}

fn line_numbers(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect()
}

#[test]
fn files_that_are_not_dumps_are_refused() {
    let mut seen = 0;
    for (name, e) in fixture_expectations() {
        if e.get("not_a_dump") != Some(&json!(true)) {
            continue;
        }
        seen += 1;
        let path = fixture(&name);
        for extra in [&[][..], &["--format", "json"][..], &["--by", "class"][..]] {
            let run = summary_run(&path, extra);
            run.usage_error();
            assert!(
                run.stderr.contains("not a Ruby heap dump"),
                "{name} ({}): stderr should say it is not a Ruby heap dump:\n{}",
                e["why"],
                run.stderr
            );
            assert!(
                run.stderr.contains(&name),
                "{name}: the message names the file:\n{}",
                run.stderr
            );
            assert!(!run.stderr.contains("panicked"), "{name}: {}", run.stderr);
        }
        // diff refuses them too, whichever position they are in.
        let good = fixture("ruby-3.1-tracing.jsonl");
        for pair in [[&path, &good], [&good, &path]] {
            let run = diff_run(&[pair[0].as_path(), pair[1].as_path()], &[]);
            run.usage_error();
            assert!(
                run.stderr.contains("not a Ruby heap dump"),
                "diff with {name}:\n{}",
                run.stderr
            );
        }
    }
    assert!(seen >= 4, "expected.json lists only {seen} non-dumps");
}

#[test]
fn dumps_are_read_exactly() {
    let mut seen = 0;
    for (name, e) in fixture_expectations() {
        if e.get("not_a_dump").is_some() {
            continue;
        }
        seen += 1;
        let path = fixture(&name);
        let run = summary_run(&path, &REPORT);
        let v = run.json();
        let ctx = format!("{name}: {}", e["note"].as_str().unwrap_or(""));

        assert_eq!(
            counts_by(&v, "type"),
            numbers(&e["by_type"]),
            "{ctx}: by_type"
        );
        assert_eq!(v["totals"]["dump_objects"], e["objects"], "{ctx}: objects");
        assert_eq!(
            v["totals"]["objects"], e["objects"],
            "{ctx}: objects (--include-tracer)"
        );
        assert_eq!(
            v["totals"]["memsize"], e["memsize_total"],
            "{ctx}: memsize_total"
        );
        assert_eq!(v["totals"]["roots"], e["roots"], "{ctx}: roots");
        assert_eq!(v["totals"]["shapes"], e["shapes"], "{ctx}: shapes");

        let d = &v["diagnostics"];
        assert_eq!(d["lines"], e["lines"], "{ctx}: lines");
        assert_eq!(d["objects"], e["objects"], "{ctx}: diagnostics.objects");
        assert_eq!(d["roots"], e["roots"], "{ctx}: diagnostics.roots");
        assert_eq!(d["shapes"], e["shapes"], "{ctx}: diagnostics.shapes");
        assert_eq!(
            d["malformed_lines"], e["malformed_total"],
            "{ctx}: malformed lines (with a truncated last line)"
        );
        assert_eq!(
            d["truncated_last_line"], e["truncated_last_line"],
            "{ctx}: truncated_last_line"
        );
        assert_eq!(
            d["recovered_lines"].as_u64().unwrap(),
            e["recovered_lines"].as_array().unwrap().len() as u64,
            "{ctx}: recovered_lines"
        );
        let first: Vec<u64> = d["first_malformed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["line"].as_u64().unwrap())
            .collect();
        let malformed = line_numbers(&e["malformed_lines"]);
        assert_eq!(first, malformed, "{ctx}: first_malformed line numbers");
        for p in d["first_malformed"].as_array().unwrap() {
            assert!(
                p["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{ctx}: {p}"
            );
            assert!(p["excerpt"].is_string(), "{ctx}: {p}");
        }

        // Warnings name each broken line as FILE:LINE.
        let shown = path.display().to_string();
        for l in &malformed {
            let at = format!("heapscope: warning: {shown}:{l}:");
            assert!(
                run.stderr.contains(&at),
                "{ctx}: no {at:?} in stderr:\n{}",
                run.stderr
            );
        }
        if let Some(l) = e["truncated_last_line"].as_u64() {
            let at = format!("heapscope: warning: {shown}:{l}:");
            assert!(
                run.stderr.contains(&at),
                "{ctx}: no {at:?} in stderr:\n{}",
                run.stderr
            );
            assert!(run.stderr.contains("truncated"), "{ctx}: {}", run.stderr);
        }
        // Blank lines are skipped silently.
        for l in line_numbers(&e["blank_lines"]) {
            assert!(
                !run.stderr.contains(&format!("{shown}:{l}:")),
                "{ctx}: blank line {l} reported:\n{}",
                run.stderr
            );
        }
        let recovered = e["recovered_lines"].as_array().unwrap();
        if !recovered.is_empty() {
            assert!(run.stderr.contains("recovered"), "{ctx}: {}", run.stderr);
        }
        if e["malformed_total"] == 0 && recovered.is_empty() {
            assert!(
                run.stderr.is_empty(),
                "{ctx}: unexpected warnings:\n{}",
                run.stderr
            );
        }
        // -q silences the warnings, not the diagnostics.
        let quiet = summary_run(&path, &[&["-q"][..], &REPORT].concat());
        assert_eq!(quiet.json(), v, "{ctx}: -q changes the report");
        assert!(
            quiet.stderr.is_empty(),
            "{ctx}: -q printed:\n{}",
            quiet.stderr
        );

        // Generations.
        let g = summary_json(&path, &["--include-tracer", "--top", "0"]);
        let by_gen: BTreeMap<String, u64> = counts_by(&g, "generation")
            .into_iter()
            .map(|(k, n)| (if k == "null" { "none".to_string() } else { k }, n))
            .collect();
        assert_eq!(by_gen, numbers(&e["by_generation"]), "{ctx}: by_generation");
    }
    assert!(seen >= 10, "expected.json lists only {seen} dumps");
}

#[test]
fn the_tracer_table_is_left_out() {
    let e = &fixture_expectations()["ruby-3.1-tracing.jsonl"];
    let path = fixture("ruby-3.1-tracing.jsonl");
    let v = summary_json(&path, &["--by", "type", "--top", "0"]);
    let t = &v["totals"];
    assert_eq!(t["objects"], e["objects"].as_u64().unwrap() - 1);
    assert_eq!(t["objects"], 18);
    assert_eq!(t["memsize"], 30880);
    assert_eq!(
        t["memsize"].as_u64().unwrap(),
        e["memsize_total"].as_u64().unwrap() - e["tracer_memsize"].as_u64().unwrap()
    );
    assert_eq!(t["tracer_memsize"], e["tracer_memsize"]);
    assert_eq!(t["tracer_included"], false);
    assert_eq!(t["dump_objects"], e["objects"]);
    let data = e["by_type"]["DATA"].as_u64().unwrap();
    assert_eq!(counts_by(&v, "type")["DATA"], data - 1);
    // Dumps without the tracer report no tracer memsize.
    let v = summary_json(&fixture("ruby-3.2.jsonl"), &["--top", "0"]);
    assert_eq!(v["totals"]["tracer_memsize"], Value::Null);
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such.dump");
    let run = summary_run(&missing, &[]);
    run.usage_error();
    assert!(run.stderr.contains("no-such.dump"), "{}", run.stderr);
    assert!(
        run.stderr.to_lowercase().contains("no such file"),
        "{}",
        run.stderr
    );
    let good = fixture("ruby-3.1-tracing.jsonl");
    let run = diff_run(&[&good, &missing], &[]);
    run.usage_error();
    assert!(run.stderr.contains("no-such.dump"), "{}", run.stderr);
}

#[test]
fn directory() {
    let dir = tempfile::tempdir().unwrap();
    let run = summary_run(dir.path(), &[]);
    run.usage_error();
    assert!(run.stderr.contains("directory"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&dir.path().display().to_string()),
        "{}",
        run.stderr
    );
}

#[test]
fn usage_errors() {
    let good = fixture("ruby-3.1-tracing.jsonl");
    let g = good.to_str().unwrap();
    for (args, needle) in [
        (vec![g, "--by", "colour"], "colour"),
        (vec![g, "--by", "type,nope"], "nope"),
        (vec![g, "--by", "type,type"], "twice"),
        (
            vec![g, "--by", "generation,type,class,location,method"],
            "at most",
        ),
        (vec![g, "--generation", "9..3"], "9..3"),
        (vec![g, "--generation", "x"], "x"),
        (vec![g, "--top=-1"], "-1"),
        (vec![g, "--top", "lots"], "lots"),
        (vec![g, "--sort", "age"], "age"),
        (vec![g, "--format", "yaml"], "yaml"),
        (vec![g, "--threads", "many"], "many"),
        (vec![], "DUMP"),
    ] {
        let run = summary(&args);
        run.usage_error();
        assert!(
            run.stderr.contains(needle),
            "summary {args:?}: stderr should mention {needle:?}:\n{}",
            run.stderr
        );
    }
    // The generation range error explains itself.
    let run = summary(&[g, "--generation", "9..3"]);
    assert!(run.stderr.contains("empty"), "{}", run.stderr);
    // diff needs two dumps.
    heapscope(&["diff", g]).usage_error();
    heapscope(&["diff", g, g, "--by", "colour"]).usage_error();
    heapscope(&["frobnicate", g]).usage_error();
}

#[test]
fn unknown_type_lists_the_types() {
    let good = fixture("ruby-3.1-tracing.jsonl");
    let run = summary_run(&good, &["--type", "STRNG"]);
    run.usage_error();
    assert!(run.stderr.contains("STRNG"), "{}", run.stderr);
    for t in ["STRING", "ARRAY", "OBJECT", "HASH"] {
        assert!(
            run.stderr.contains(t),
            "the message should list {t}:\n{}",
            run.stderr
        );
    }
    // A known type that the dump does not hold is not an error.
    let v = summary_json(&good, &["--type", "BIGNUM"]);
    assert_eq!(v["totals"]["objects"], 0);
    assert!(rows(&v).is_empty());
    // Type names are case-insensitive.
    let v = summary_json(&good, &["--type", "string", "--by", "type"]);
    assert_eq!(counts_by(&v, "type"), [("STRING".to_string(), 2)].into());
    // diff checks types too.
    diff_run(&[&good, &good], &["--type", "STRNG"]).usage_error();
}

#[test]
fn no_objects_match() {
    let good = fixture("ruby-3.1-tracing.jsonl");
    let run = summary_run(&good, &["--generation", "999"]);
    assert!(
        run.ok().stdout_text().contains("No objects match."),
        "{}",
        run.stdout_text()
    );
    let v = summary_json(&good, &["--generation", "999"]);
    assert_eq!(v["totals"]["objects"], 0);
    assert_eq!(v["groups"], 0);
}

/// Warnings and errors quote the input: terminal escape sequences in it are
/// shown escaped, never sent to the terminal.
#[test]
fn warnings_and_errors_never_pass_escape_sequences_to_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = "\u{1b}]0;PWNED\u{7}\u{1b}[2J";
    let dump = dir.path().join("hostile.dump");
    std::fs::write(
        &dump,
        format!(
            "{{\"type\":\"ROOT\",\"root\":\"vm\",\"references\":[\"0x1000\"]}}\n\
             {{\"address\":\"0x1000\",\"type\":\"STRING\",\"memsize\":40}}\n\
             {{\"broken {hostile}\n"
        ),
    )
    .unwrap();
    let run = summary(&[dump.as_os_str()]);
    run.ok();
    assert!(run.stderr.contains("]0;PWNED"), "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}') && !run.stderr.contains('\u{7}'));
    // Not a dump at all: the error names the first line, escaped.
    let junk = dir.path().join("junk.txt");
    std::fs::write(&junk, format!("{hostile} not json\n").repeat(2000)).unwrap();
    let run = summary(&[junk.as_os_str()]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        !run.stderr.contains('\u{1b}') && !run.stderr.contains('\u{7}'),
        "{}",
        run.stderr
    );
}
