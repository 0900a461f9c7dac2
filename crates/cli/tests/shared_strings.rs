//! `summary --by string` counts shared strings (copies made by `dup` or
//! slices of strings over 23 bytes, which the dump writes without a value,
//! only a reference to their shared root) under their root's value, and
//! agrees with memory_profiler (Debian's ruby-memory-profiler) on the same
//! workload.

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::{require_ruby, rows_where, run_ruby, scratch_dir, summary_json};
use serde_json::{json, Value};

/// `work` allocates 6 copies of a 100-byte string and a 40-byte tail slice of
/// a 60-byte one. With `profile` it runs under memory_profiler and writes its
/// retained strings ({value: {location: count}}); otherwise it traces
/// allocations and writes a heap dump. Same file, same lines.
const PROGRAM: &str = r#"require "objspace"
require "json"
def work(keep)
  base = "y" * 100
  6.times { keep << base.dup }
  keep << base
  keep << ("z" * 60)[20..]
end
keep = []
if File.basename(ARGV[0]) == "profile"
  require "memory_profiler"
  report = MemoryProfiler.report { work(keep) }
  File.write(ARGV[1], JSON.generate(report.strings_retained.to_h { |s, locs| [s, locs.to_h] }))
else
  ObjectSpace.trace_object_allocations_start
  work(keep)
  GC.start
  File.open(ARGV[1], "w") { |f| ObjectSpace.dump_all(output: f) }
end
"#;

#[test]
fn shared_strings_count_under_their_roots_value_as_memory_profiler_does() {
    require_ruby();
    let dir = scratch_dir("heapscope-shared-strings-");
    let script = dir.path().join("copies.rb");
    fs::write(&script, PROGRAM).unwrap();
    let profile = dir.path().join("profile.json");
    let dump = dir.path().join("copies.dump");
    let mode = |m: &str| dir.path().join(m);
    // `run_ruby` passes paths: the mode is a path whose file name is the mode.
    run_ruby(&script, &[&mode("profile"), &profile], &[], dir.path());
    run_ruby(&script, &[&mode("dump"), &dump], &[], dir.path());

    let profiled: Value = serde_json::from_str(&fs::read_to_string(&profile).unwrap()).unwrap();
    let v = summary_json(&dump, &["--by", "string", "--top", "0"]);
    {
        let value = "y".repeat(100);
        // memory_profiler: per line of copies.rb.
        let want: BTreeMap<String, u64> = profiled[&value]
            .as_object()
            .unwrap_or_else(|| panic!("memory_profiler retained no {value:?}: {profiled:#}"))
            .iter()
            .map(|(loc, n)| (line_of(loc), n.as_u64().unwrap()))
            .collect();
        let found = rows_where(&v, "string", &json!(value));
        assert_eq!(found.len(), 1, "{value:?}: {found:#?}");
        let got: BTreeMap<String, u64> = found[0]["locations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    line_of(l["location"].as_str().unwrap_or("(untraced)")),
                    l["count"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "{value:?}: heapscope against memory_profiler");
        let total: u64 = want.values().sum();
        assert_eq!(found[0]["count"], total);
    }
    // 6 copies, the original and the shared root Ruby made at the first dup.
    let y = rows_where(&v, "string", &json!("y".repeat(100)));
    assert_eq!(y[0]["count"], 8);
    // A tail slice shares the end of its root's buffer, and the dump gives
    // neither its value nor its length: it is counted under the root's value
    // (memory_profiler, which sees the object, lists it under its own).
    let z = rows_where(&v, "string", &json!("z".repeat(60)));
    assert_eq!(z.len(), 1, "{v:#}");
    assert_eq!(z[0]["count"], 2);
    assert_eq!(
        profiled["z".repeat(40)].as_object().map(|m| m.len()),
        Some(1)
    );

    // Without --by string, summaries still ignore values (and are as fast).
    let plain = summary_json(&dump, &[]);
    assert_eq!(plain["totals"]["objects"], v["totals"]["objects"]);
}

/// `copies.rb:5` from any spelling of the script's path.
fn line_of(location: &str) -> String {
    match location.rsplit_once('/') {
        Some((_, tail)) => tail.to_string(),
        None => location.to_string(),
    }
}
