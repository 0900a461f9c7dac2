//! `heapscope suspects` on real Ruby dumps: programs with an obvious leak
//! (the top suspect's accumulation point is the leaking container) and one
//! without a dominant retainer.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{heapscope, repo_root, run_ruby, scratch_dir};
use serde_json::Value;
use tempfile::TempDir;

/// Writes `program` to DIR/NAME.rb and runs it with the dump path as its
/// argument; returns the directory (kept alive) and the dump.
fn dump_of(name: &str, program: &str) -> (TempDir, PathBuf) {
    let dir = scratch_dir("suspects-");
    let script = dir.path().join(format!("{name}.rb"));
    fs::write(&script, program).unwrap();
    let dump = dir.path().join(format!("{name}.dump"));
    run_ruby(&script, &[&dump], &[], dir.path());
    (dir, dump)
}

fn suspects_json(dump: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["suspects", dump.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    heapscope(&args).json()
}

fn text(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn holds<'a>(suspect: &'a Value, what: &str, key: &str) -> Vec<&'a str> {
    suspect["holds"][what]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| text(&row[key]))
        .collect()
}

/// The checks every suspect must pass.
fn check_shape(report: &Value) {
    let reachable = report["reachable_bytes"].as_u64().unwrap();
    let threshold = report["threshold"].as_f64().unwrap();
    let suspects = report["suspects"].as_array().unwrap();
    let mut last = u64::MAX;
    for s in suspects {
        let retained = s["retained_bytes"].as_u64().unwrap();
        assert!(retained <= last, "suspects are sorted, largest first");
        last = retained;
        let share = s["share"].as_f64().unwrap();
        assert!(share > threshold, "{s}");
        assert!((share - retained as f64 / reachable as f64).abs() < 1e-9);
        assert!(["object", "class", "location"].contains(&text(&s["kind"])));
        assert!(s["count"].as_u64().unwrap() >= 1);
        let acc = &s["accumulation"];
        assert!(acc["retained_bytes"].as_u64().unwrap() <= retained);
        assert!(acc["depth"].as_u64().is_some());
        // The path starts at a root and ends at the accumulation point.
        let path = &s["path"];
        assert!(!text(&path["root"]).is_empty(), "{path}");
        let steps = path["steps"].as_array().unwrap();
        assert!(!steps.is_empty());
        assert_eq!(steps.last().unwrap()["address"], acc["address"]);
        let held: u64 = s["holds"]["classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["bytes"].as_u64().unwrap())
            .sum();
        assert!(held > 0 && held <= acc["retained_bytes"].as_u64().unwrap());
    }
}

const GLOBAL_HASH: &str = r#"require "objspace"
ObjectSpace.trace_object_allocations_start
$cache = {}
50_000.times { |i| $cache[i] = "x" * 100 }
GC.start
File.open(ARGV[0], "w") { |f| ObjectSpace.dump_all(output: f) }
"#;

#[test]
fn a_global_hash_of_strings_is_the_top_suspect() {
    let (_dir, dump) = dump_of("global_hash", GLOBAL_HASH);
    let report = suspects_json(&dump, &[]);
    check_shape(&report);
    assert_eq!(report["threshold"].as_f64(), Some(0.1));
    let top = &report["suspects"][0];
    assert!(top.is_object(), "no suspect found: {report:#}");
    let acc = &top["accumulation"];
    assert_eq!(text(&acc["type"]), "HASH", "{top:#}");
    assert!(
        text(&acc["location"]).ends_with("global_hash.rb:3"),
        "{top:#}"
    );
    assert!(top["share"].as_f64().unwrap() > 0.5, "{top:#}");
    let classes = holds(top, "classes", "class");
    assert_eq!(classes[0], "String", "{top:#}");
    let locations = holds(top, "locations", "location");
    assert!(locations[0].ends_with("global_hash.rb:4"), "{top:#}");
    // 50,000 Strings of 100 bytes are held.
    assert!(top["holds"]["classes"][0]["bytes"].as_u64().unwrap() >= 50_000 * 100);
    // The same memory is not listed again as the String or line-4 groups.
    for s in report["suspects"].as_array().unwrap().iter().skip(1) {
        assert_ne!(s["accumulation"]["address"], acc["address"], "{s:#}");
        assert!(
            !s["key"]
                .as_str()
                .unwrap_or("")
                .ends_with("global_hash.rb:4"),
            "{s:#}"
        );
    }

    // The terminal report says the same in words.
    let out = heapscope(&["suspects", dump.to_str().unwrap()]);
    let out = out.ok().stdout_text();
    assert!(out.contains("Problem suspect 1"), "{out}");
    assert!(out.contains("Hash allocated at "), "{out}");
    assert!(out.contains("held from ROOT "), "{out}");
    assert!(out.contains("global_hash.rb:4"), "{out}");
}

#[test]
fn leaky_app_suspect_is_request_log_entries() {
    let dir = scratch_dir("suspects-app-");
    let root = repo_root();
    run_ruby(
        Path::new("examples/leaky_app.rb"),
        &[dir.path()],
        &[],
        &root,
    );
    let dump = dir.path().join("heap-3.dump");
    let report = suspects_json(&dump, &[]);
    check_shape(&report);
    let top = &report["suspects"][0];
    assert!(top.is_object(), "no suspect found: {report:#}");
    let acc = &top["accumulation"];
    // RequestLog::ENTRIES, the Array created at examples/leaky.rb:46 (an
    // absolute path: leaky_app.rb loads it with require_relative).
    assert_eq!(text(&acc["type"]), "ARRAY", "{top:#}");
    assert!(
        text(&acc["location"]).ends_with("/examples/leaky.rb:46"),
        "{top:#}"
    );
    let classes = holds(top, "classes", "class");
    assert!(classes.contains(&"LeakedEntry"), "{classes:?}");
    assert!(classes.contains(&"String"), "{classes:?}");
    let locations = holds(top, "locations", "location");
    for line in ["/examples/leaky.rb:49", "/examples/leaky.rb:50"] {
        assert!(
            locations.iter().any(|l| l.ends_with(line)),
            "{line} in {locations:?}"
        );
    }
    // The path from a root goes through the RequestLog class.
    let steps = top["path"]["steps"].as_array().unwrap();
    assert!(
        steps.iter().any(|s| s["name"] == "RequestLog"),
        "{steps:#?}"
    );
    // Nothing else in this small app is over 10%: the cache is bounded.
    for s in report["suspects"].as_array().unwrap().iter().skip(1) {
        assert!(
            !holds(s, "classes", "class").contains(&"LeakedEntry"),
            "the leak is listed twice: {s:#}"
        );
    }
}

const NO_DOMINANT_RETAINER: &str = r#"require "objspace"
ObjectSpace.trace_object_allocations_start
class Node
  def initialize(v)
    @v = v
  end
end
$a = Array.new(1_000) { |i| "a#{i}" * 10 }
$b = Array.new(1_000) { |i| Node.new(i) }
$c = (1..1_000).to_h { |i| [i, i.to_s * 5] }
GC.start
File.open(ARGV[0], "w") { |f| ObjectSpace.dump_all(output: f) }
"#;

#[test]
fn no_suspect_over_a_high_threshold() {
    let (_dir, dump) = dump_of("spread", NO_DOMINANT_RETAINER);
    let report = suspects_json(&dump, &["--threshold", "0.9"]);
    assert_eq!(report["threshold"].as_f64(), Some(0.9));
    assert_eq!(
        report["suspects"].as_array().unwrap().len(),
        0,
        "{report:#}"
    );
    let largest = &report["largest_retainer"];
    assert!(
        largest["retained_bytes"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert!(largest["share"].as_f64().unwrap() <= 0.9);

    let out = heapscope(&["suspects", dump.to_str().unwrap(), "--threshold", "0.9"]);
    let out = out.ok().stdout_text();
    assert!(out.contains("No leak suspects"), "{out}");
    assert!(out.contains("The largest retainer is"), "{out}");
}

#[test]
fn a_threshold_out_of_range_is_a_usage_error() {
    let dump = repo_root().join("Cargo.toml");
    for bad in ["0", "1.5", "-0.1", "ten"] {
        heapscope(&["suspects", dump.to_str().unwrap(), "--threshold", bad]).usage_error();
    }
    heapscope(&["suspects", dump.to_str().unwrap(), "--accumulation", "0"]).usage_error();
}

/// An audit log's Array holds entries of four kinds (lines 9-12), each also
/// queued in a global replay list, so no one object dominates them and they
/// are top-level group suspects; a global Hash of sessions (line 20, strings
/// at line 23) holds a separate leak.
const SHARED_CONTAINER: &str = r#"require "objspace"
require "json"
ObjectSpace.trace_object_allocations_start
Event = Struct.new(:name, :at, :payload)
class AuditLog
  attr_reader :entries
  def initialize; @entries = []; end
  def record(i)
    e = [Event.new("event", i, "p" * 200),
         "payload #{i} " * 20,
         { id: i, user: "u#{i}", note: "n" * 100 },
         [i, "a" * 150]]
    @entries.concat(e)
    e
  end
end
AUDIT = AuditLog.new
$replay = []
$sessions = {}
4000.times do |i|
  $replay.concat(AUDIT.record(i))
  $sessions[i] = "session-#{i}-" + "s" * 300
end
GC.start
File.open(ARGV[0], "w") { |f| ObjectSpace.dump_all(output: f) }
addr = ->(o) { "0x%x" % ObjectSpace.dump(o).match(/"address":"0x(\h+)"/)[1].to_i(16) }
File.write(ARGV[0] + ".json", JSON.generate(
  "arrays" => [addr.(AUDIT.entries), addr.($replay)], "sessions" => addr.($sessions)))
"#;

#[test]
fn suspects_held_by_one_container_are_grouped_under_it() {
    let (_dir, dump) = dump_of("shared", SHARED_CONTAINER);
    let info: Value =
        serde_json::from_str(&fs::read_to_string(format!("{}.json", dump.display())).unwrap())
            .unwrap();
    let report = suspects_json(&dump, &["--threshold", "0.05"]);
    check_shape(&report);
    let suspects = report["suspects"].as_array().unwrap();
    let containers = report["containers"].as_array().unwrap();
    let arrays: Vec<&str> = info["arrays"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    // One container, one of the two Arrays that hold every entry, holds
    // several suspects: the entries' allocation line and their classes.
    let shared: Vec<&Value> = containers
        .iter()
        .filter(|c| c["suspects"].as_array().unwrap().len() > 1)
        .collect();
    assert_eq!(shared.len(), 1, "{report:#}");
    let c = shared[0];
    assert!(arrays.contains(&text(&c["address"])), "{c:#}");
    let members: Vec<&Value> = c["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &suspects[n.as_u64().unwrap() as usize - 1])
        .collect();
    let keys: Vec<&str> = members.iter().map(|s| text(&s["key"])).collect();
    for line in ["shared.rb:9", "shared.rb:10", "shared.rb:12"] {
        assert!(keys.iter().any(|k| k.ends_with(line)), "{line}: {keys:?}");
    }
    for s in &members {
        assert_eq!(s["container"], c["address"], "{s:#}");
    }
    // The sessions Hash is a finding of its own.
    let sessions = suspects
        .iter()
        .find(|s| s["key"] == info["sessions"])
        .unwrap_or_else(|| panic!("the sessions Hash is not a suspect: {report:#}"));
    assert_ne!(sessions["container"], c["address"], "{sessions:#}");

    let out = heapscope(&["suspects", dump.to_str().unwrap(), "--threshold", "0.05"]);
    let out = out.ok().stdout_text();
    let heading = format!(
        ": container Array {}, holding {} suspects",
        text(&c["address"]),
        members.len()
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("Problem suspect ") && l.ends_with(&heading))
        .unwrap_or_else(|| panic!("{heading:?} in:\n{out}"));
    let n = line["Problem suspect ".len()..].split(':').next().unwrap();
    for k in 1..=members.len() {
        assert!(out.contains(&format!("\n  Suspect {n}.{k}: ")), "{out}");
    }
    // Only that one container groups suspects.
    assert_eq!(out.matches(": container ").count(), 1, "{out}");
    assert!(
        out.contains(&format!("object {}", text(&info["sessions"]))),
        "{out}"
    );
}
