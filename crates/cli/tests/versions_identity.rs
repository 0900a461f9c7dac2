//! Object identity across dumps on real Rubies (issue 11): Ruby 4.0's
//! `object_id` flag in `diff` and `leaks`, `leaks -n 0`, and the warnings of
//! untraced dumps on stderr. The dumps come from
//! `tests/ruby/corpus/identity_reuse.rb` (untraced, four dumps of one process).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use common::rubies;
use serde_json::Value;

const PROGRAM: &str = "identity_reuse.rb";
const DUMPS: [&str; 4] = [
    "heap-1700000000.dump",
    "heap-1700000060.dump",
    "heap-1700000120.dump",
    "heap-1700000180.dump",
];

/// The wasm Rubies that write the `object_id` flag.
const WITH_OBJECT_IDS: [&str; 2] = ["4.0", "head"];

fn wasm_dir(version: &str) -> PathBuf {
    rubies::wasm_run(version, PROGRAM)
}

fn path(dir: &Path, i: usize) -> String {
    dir.join(DUMPS[i]).to_str().unwrap().to_string()
}

/// (address, object_id flag) of every object of each `Identity*` class.
fn identity_objects(dump: &str) -> BTreeMap<String, Vec<(String, Option<u64>)>> {
    let text = std::fs::read_to_string(dump).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let classes: BTreeMap<&str, &str> = records
        .iter()
        .filter(|r| r["type"] == "CLASS")
        .filter_map(|r| Some((r["address"].as_str()?, r["name"].as_str()?)))
        .filter(|(_, n)| n.starts_with("Identity"))
        .collect();
    let mut out: BTreeMap<String, Vec<(String, Option<u64>)>> = BTreeMap::new();
    for r in &records {
        if let Some(name) = r["class"].as_str().and_then(|c| classes.get(c)) {
            out.entry(name.to_string()).or_default().push((
                r["address"].as_str().unwrap().to_string(),
                r["flags"]["object_id"].as_u64(),
            ));
        }
    }
    out
}

/// `diff --by class` rows as class → count.
fn new_by_class(dir: &Path) -> (BTreeMap<String, u64>, Value) {
    let v = rubies::by_class_json(&["diff", &path(dir, 0), &path(dir, 1), "-q"]);
    let rows = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| Some((r["class"].as_str()?.to_string(), r["count"].as_u64()?)))
        .collect();
    (rows, v)
}

/// `heapscope leaks DIR -n TOP --format json -q`, which must succeed.
fn leaks_json(dir: &str, top: &str) -> Value {
    common::heapscope(&["leaks", dir, "-n", top, "--format", "json", "-q"])
        .ok()
        .json()
}

/// The `leaks` site of class `class` (among leaks and caches).
fn leak_site(v: &Value, class: &str) -> Option<Value> {
    let p = &v["processes"][0];
    p["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p["caches"].as_array().unwrap())
        .find(|s| s["class"] == class)
        .cloned()
}

#[test]
fn object_ids_tell_new_objects_at_reused_addresses_from_old_ones() {
    for version in WITH_OBJECT_IDS {
        let dir = wasm_dir(version);
        let expect = rubies::expectations(&dir);
        let m = expect["m"].as_u64().unwrap();
        let n = expect["n"].as_u64().unwrap();
        let ruby = expect["ruby"].as_str().unwrap();

        // What the dumps hold: the IdentityOld objects have ids, and many
        // IdentityNew objects sit where they were. All are untraced OBJECTs,
        // so by address and type alone those would pass for old objects.
        let first = identity_objects(&path(&dir, 0));
        let second = identity_objects(&path(&dir, 1));
        let old = &first["IdentityOld"];
        assert_eq!(old.len() as u64, n, "Ruby {ruby}");
        assert!(
            old.iter().all(|(_, id)| id.is_some()),
            "Ruby {ruby}: {old:?}"
        );
        let old_addresses: HashSet<&str> = old.iter().map(|(a, _)| a.as_str()).collect();
        let reused = second["IdentityNew"]
            .iter()
            .filter(|(a, _)| old_addresses.contains(a.as_str()))
            .count() as u64;
        assert!(
            reused > 0,
            "Ruby {ruby}: no IdentityNew object took an IdentityOld address; the test proves nothing"
        );
        // The IdentityKept objects got their ids between the dumps.
        assert!(first["IdentityKept"].iter().all(|(_, id)| id.is_none()));
        assert!(second["IdentityKept"].iter().all(|(_, id)| id.is_some()));

        // diff: every IdentityNew object is new, and no IdentityKept object.
        let (rows, v) = new_by_class(&dir);
        assert_eq!(rows.get("IdentityNew"), Some(&m), "Ruby {ruby}: {rows:?}");
        assert_eq!(rows.get("IdentityKept"), None, "Ruby {ruby}: {rows:?}");
        assert!(
            v["totals"]["reused_addresses"].as_u64().unwrap() >= reused,
            "Ruby {ruby}: {}",
            v["totals"]
        );

        // leaks: the first batch of IdentityNew objects survives, all of it.
        let v = leaks_json(dir.to_str().unwrap(), "0");
        let site = leak_site(&v, "IdentityNew")
            .unwrap_or_else(|| panic!("Ruby {ruby}: no IdentityNew site: {v}"));
        assert_eq!(site["counts"], serde_json::json!([0, m, m + n, m + 2 * n]));
        assert_eq!(site["survivors"], m, "Ruby {ruby}: {site}");
        assert!(
            leak_site(&v, "IdentityKept").is_none(),
            "Ruby {ruby}: IdentityKept neither grows nor survives: {v}"
        );
    }
}

#[test]
fn leaks_top_zero_shows_every_site() {
    let dir = wasm_dir("4.0");
    let dirs = dir.to_str().unwrap();
    let all = leaks_json(dirs, "0");
    let p = &all["processes"][0];
    let shown = p["leaks"].as_array().unwrap().len() + p["caches"].as_array().unwrap().len();
    let sites = p["leak_sites"].as_u64().unwrap() + p["cache_sites"].as_u64().unwrap();
    assert!(sites > 0, "{all}");
    assert_eq!(shown as u64, sites, "-n 0 shows every site: {all}");
    let table = common::heapscope(&["leaks", dirs, "-n", "0", "-q"])
        .ok()
        .stdout_text();
    assert!(table.contains("IdentityNew"), "{table}");
    // -n 1 still cuts.
    let one = leaks_json(dirs, "1");
    let p = &one["processes"][0];
    assert!(p["caches"].as_array().unwrap().len() <= 1, "{one}");
}

/// `diff` and `leaks` of untraced dumps say so on stderr (unless -q), as
/// well as in their reports.
fn check_untraced_warnings(dir: &Path, ruby: &str, with_ids: bool) {
    let (first, second) = (path(dir, 0), path(dir, 1));
    for format in ["table", "json"] {
        let run = common::heapscope(&["diff", &first, &second, "--format", format]);
        run.ok();
        let line = run
            .stderr
            .lines()
            .find(|l| l.starts_with("heapscope: warning:") && l.contains("no allocation tracing"))
            .unwrap_or_else(|| {
                panic!(
                    "Ruby {ruby}, {format}: no warning on stderr: {}",
                    run.stderr
                )
            });
        assert_eq!(line.contains("object_id"), with_ids, "Ruby {ruby}: {line}");
        if format == "json" {
            assert!(run.json()["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w.as_str().unwrap().contains("no allocation tracing")));
        }
        let quiet = common::heapscope(&["diff", &first, &second, "--format", format, "-q"]);
        quiet.ok();
        assert!(quiet.stderr.is_empty(), "Ruby {ruby}: {}", quiet.stderr);
    }
    let run = common::heapscope(&["leaks", dir.to_str().unwrap(), "--format", "json"]);
    run.ok();
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("heapscope: warning:") && l.contains("no allocation tracing")),
        "Ruby {ruby}: leaks: {}",
        run.stderr
    );
}

#[test]
fn untraced_diff_warns_on_stderr_with_a_wasm_ruby() {
    let dir = wasm_dir("4.0");
    check_untraced_warnings(&dir, "4.0", true);
}

#[test]
fn untraced_diff_warns_on_stderr_with_the_native_ruby() {
    let dir = rubies::native_run(PROGRAM);
    check_untraced_warnings(dir.path(), &rubies::native_version(), false);
}
