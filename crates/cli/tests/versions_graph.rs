//! The object graph and reachability on real dumps of every Ruby in the
//! version matrix (issue 11): WeakKeyMap values (3.3+), free slots of
//! `dump_all(full: true)`, `dump_all(since: ...)` dumps without roots or
//! classes, precise roots preferred over conservative ones and "the next GC
//! frees it" hedged where a dump lists no finalizers roots (3.4+), and the
//! IMEMO edges that dumps before 3.2 hide in `class`.

mod common;

use std::path::{Path, PathBuf};

use common::rubies;
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `summary --by class -n 0 --format json DUMP`.
fn summary_by_class(dump: &Path) -> Value {
    rubies::by_class_json(&["summary", s(dump)])
}

/// The steps of the first path to `address`, which must have at least two.
fn path_steps(dump: &Path, address: &str, context: &str) -> (Vec<Value>, Value) {
    let json = rubies::path_json(dump, address);
    let steps = json["paths"][0]["steps"].as_array().unwrap().clone();
    assert!(steps.len() >= 2, "{context}: {json}");
    (steps, json)
}

/// `retained --format json DUMP` and how many objects of `type_` it counts
/// as unreachable.
fn unreachable_of_type(dump: &Path, type_: &str) -> (u64, Value) {
    let retained = common::heapscope(&["retained", "--format", "json", s(dump)]).json();
    let count = retained["unreachable"]["by_type_location"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == type_)
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    (count, retained)
}

/// `RUBY_VERSION` as (major, minor).
fn version_of(expect: &Value) -> (u32, u32) {
    let v = expect["ruby"].as_str().unwrap();
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// `DIR/DUMP_NAME`, the program's expectations, its Ruby's version and the
/// dump's text.
fn load(dir: &Path, dump_name: &str) -> (PathBuf, Value, (u32, u32), String) {
    let dump = dir.join(dump_name);
    let expect = rubies::expectations(dir);
    let version = version_of(&expect);
    let text = std::fs::read_to_string(&dump).unwrap();
    (dump, expect, version, text)
}

/// The record of the object at `address`, parsed.
fn record(dump: &Path, address: &str) -> Value {
    let needle = format!("\"address\":\"{address}\"");
    let text = std::fs::read_to_string(dump).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains(&needle) && !l.contains("\"type\":\"SHAPE\""))
        .unwrap_or_else(|| panic!("{}: no record at {address}", dump.display()));
    serde_json::from_str(line).unwrap()
}

/// Item 1: a WeakKeyMap's values are held (strong edges); Ruby writes the
/// struct name `weakkeymap` on 3.3, 3.4, 4.0 and 4.1-dev (wasm, and natively
/// when the suite runs in the 3.3 and 3.4 chroots; the host's 3.1 has none).
#[test]
fn weak_key_map_values_are_reachable_through_the_map() {
    let (runs, _keep) = rubies::every_ruby("graph_weakkeymap.rb");
    for (_, dir) in &runs {
        let expect = rubies::expectations(dir);
        let dump = dir.join("weakkeymap.dump");
        let ruby = &expect["ruby"];
        let has_wkm = expect["weak_key_map"].as_bool().unwrap();
        assert_eq!(has_wkm, version_of(&expect) >= (3, 3), "Ruby {ruby}");
        let wm = record(&dump, expect["wm_address"].as_str().unwrap());
        assert_eq!(wm["struct"], "weakmap", "Ruby {ruby}");
        if !has_wkm {
            continue;
        }
        let wkm_address = expect["wkm_address"].as_str().unwrap();
        let wkm = record(&dump, wkm_address);
        assert_eq!(wkm["struct"], "weakkeymap", "Ruby {ruby}");
        let values = expect["value_addresses"].as_array().unwrap();
        assert_eq!(values.len(), 20);
        // The map's references are its values (the keys are not listed).
        assert_eq!(
            wkm["references"].as_array().map_or(0, |r| r.len()),
            20,
            "Ruby {ruby}"
        );
        // Five of them (each `path` reads the whole dump).
        for value in values.iter().take(5) {
            let value = value.as_str().unwrap();
            let (steps, json) = path_steps(&dump, value, &format!("Ruby {ruby}"));
            let n = steps.len();
            assert_eq!(steps[n - 1]["class"], "GraphWkmValue", "Ruby {ruby}");
            assert_eq!(steps[n - 2]["address"], wkm_address, "Ruby {ruby}: {json}");
            assert_eq!(
                steps[n - 2]["held_as"],
                "a value of this ObjectSpace::WeakKeyMap (held while its key lives)",
                "Ruby {ruby}: {json}"
            );
        }
        // None of the values (nor their Strings) is counted as unreachable.
        let (unreachable_objects, retained) = unreachable_of_type(&dump, "OBJECT");
        assert!(unreachable_objects < 20, "Ruby {ruby}: {retained}");
        // The map retains its values (20 objects with a 200-byte String each).
        let rows = rubies::by_class_json(&["retained", s(&dump)]);
        let wkm_row = rubies::row(
            &rows,
            "class",
            "ObjectSpace::WeakKeyMap",
            &format!("Ruby {ruby}"),
        );
        assert!(
            wkm_row["retained_bytes"].as_u64().unwrap() > 20 * 200,
            "Ruby {ruby}: {wkm_row}"
        );
    }
}

/// Item 2: free slots are not objects, on every Ruby.
#[test]
fn free_slots_of_a_full_dump_are_counted_apart() {
    let (runs, _keep) = rubies::every_ruby("graph_full.rb");
    for (label, dir) in &runs {
        let dump = dir.join("full.dump");
        let text = std::fs::read_to_string(&dump).unwrap();
        let none = text.matches("\"type\":\"NONE\"").count() as u64;
        let records = text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
        let roots = text.matches("\"type\":\"ROOT\"").count() as u64;
        let shapes = text.matches("\"type\":\"SHAPE\"").count() as u64;
        assert!(none > 100, "{label}: only {none} free slots");
        let json = summary_by_class(&dump);
        assert_eq!(json["totals"]["free_slots"], none, "{label}");
        assert_eq!(json["diagnostics"]["free_slots"], none, "{label}");
        assert_eq!(
            json["totals"]["dump_objects"].as_u64().unwrap(),
            records - none - roots - shapes,
            "{label}"
        );
        let rows = json["rows"].as_array().unwrap();
        let anonymous: u64 = rows
            .iter()
            .filter(|r| r["class"].as_str().unwrap_or("").starts_with("#<Class:"))
            .map(|r| r["count"].as_u64().unwrap())
            .sum();
        // A few real anonymous classes' instances may exist; not thousands.
        assert!(
            anonymous < 50,
            "{label}: {anonymous} objects of anonymous classes"
        );
        let kept = rubies::find_row(&json, "class", "GraphFullThing")
            .map(|r| r["count"].as_u64().unwrap());
        assert!(kept >= Some(10), "{label}: {kept:?}");
        let text = common::heapscope(&["summary", s(&dump)]).ok().stdout_text();
        assert!(text.contains(" free slots"), "{label}: {text}");
    }
}

/// Item 3: a `since:` dump has no roots and no classes; heapscope says so
/// and claims nothing about reachability.
#[test]
fn a_since_dump_says_reachability_and_classes_are_not_in_it() {
    let (runs, _keep) = rubies::every_ruby("graph_since.rb");
    for (label, dir) in &runs {
        let dump = dir.join("since.dump");
        let text = std::fs::read_to_string(&dump).unwrap();
        assert!(!text.contains("\"type\":\"ROOT\""), "{label}");
        assert!(!text.contains("\"type\":\"CLASS\""), "{label}");

        let summary = common::heapscope(&["summary", "--by", "class", "-n", "0", s(&dump)]);
        let out = summary.ok().stdout_text();
        assert!(!out.contains("#<Class:"), "{label}: {out}");
        assert!(out.contains("(unknown class 0x"), "{label}: {out}");
        assert!(
            summary.stderr.contains("no CLASS records"),
            "{label}: {}",
            summary.stderr
        );
        let json = summary_by_class(&dump);
        let strings = json["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["class"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("(unknown class")
            })
            .map(|r| r["count"].as_u64().unwrap())
            .max()
            .unwrap_or(0);
        assert!(strings >= 50, "{label}: {json}");

        for cmd in ["retained", "suspects"] {
            let r = common::heapscope(&[cmd, s(&dump)]);
            let out = r.ok().stdout_text();
            assert!(
                out.contains("reachability is not in this dump"),
                "{label} {cmd}: {out}"
            );
            assert!(
                !out.contains("unreachable from any root"),
                "{label} {cmd}: {out}"
            );
            assert!(!out.contains("next GC"), "{label} {cmd}: {out}");
            assert!(
                r.stderr.contains("reachability cannot be judged"),
                "{label} {cmd}"
            );
        }
        let json = common::heapscope(&["retained", "--format", "json", s(&dump)]).json();
        assert_eq!(json["reachability"], "missing", "{label}");
        assert!(json["unreachable"].is_null(), "{label}: {json}");
        let json = common::heapscope(&["suspects", "--format", "json", s(&dump)]).json();
        assert_eq!(json["reachability"], "missing", "{label}");

        // `path` to one of the Strings: no claim that the GC frees it.
        let any_string = text
            .lines()
            .find(|l| l.contains("\"type\":\"STRING\"") && l.contains("\"bytesize\":100"))
            .unwrap_or_else(|| panic!("{label}: no 100-byte String"));
        let v: Value = serde_json::from_str(any_string).unwrap();
        let r = common::heapscope(&["path", s(&dump), v["address"].as_str().unwrap()]);
        assert_ne!(r.code, Some(0), "{label}");
        assert!(
            r.stderr.contains("reachability is not in this dump"),
            "{label}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("next GC frees"), "{label}: {}", r.stderr);
        let address = v["address"].as_str().unwrap();
        let out = common::heapscope(&["inspect", s(&dump), address])
            .ok()
            .stdout_text();
        assert!(!out.contains("unreachable"), "{label}: {out}");
        assert!(
            out.contains("reachability is not in this dump"),
            "{label}: {out}"
        );
        let json = common::heapscope(&["inspect", "--format", "json", s(&dump), address]).json();
        assert_eq!(json["reachability"], "missing", "{label}: {json}");
    }
}

/// Addresses of the OBJECTs of class `name` in `dump`.
fn instances(dump: &Path, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dump).unwrap();
    let class = text
        .lines()
        .filter(|l| l.contains("\"type\":\"CLASS\""))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{}: no class {name}", dump.display()));
    let needle = format!("\"class\":\"{}\"", class["address"].as_str().unwrap());
    text.lines()
        .filter(|l| l.contains(&needle) && l.contains("\"type\":\"OBJECT\""))
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["address"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Item 4: a path from a precise root is shown when one exists (3.4+ dumps
/// reach Object only through a conservative root by the shortest path), and
/// "the next GC frees it" is said only when the dump lists finalizers roots.
#[test]
fn paths_start_at_precise_roots_and_unreachable_is_hedged_without_finalizers() {
    let (runs, _keep) = rubies::every_ruby("graph_roots.rb");
    for (label, dir) in &runs {
        let (dump, expect, version, text) = load(dir, "roots.dump");
        let finalizers = text.contains("\"root\":\"finalizers\"");
        assert_eq!(finalizers, version < (3, 4), "{label}");

        for class in [
            "GraphRootsByConst",
            "GraphRootsByIvar",
            "GraphRootsByGlobal",
        ] {
            for address in instances(&dump, class).into_iter().take(1) {
                let json =
                    common::heapscope(&["path", "--format", "json", s(&dump), &address]).json();
                // The first path starts at an object a precise root references
                // (a conservative root may reference it too).
                let first = &json["paths"][0];
                assert_ne!(first["root"], "machine_context", "{label} {class}: {json}");
            }
        }

        let mut hedged = 0;
        for g in expect["garbage"].as_array().unwrap() {
            if hedged == 3 {
                break;
            }
            let r = common::heapscope(&["path", s(&dump), g.as_str().unwrap()]);
            if r.code == Some(0) {
                continue; // a stale value on a C stack (conservative root)
            }
            hedged += 1;
            assert!(
                r.stderr.contains("unreachable from any root"),
                "{label}: {}",
                r.stderr
            );
            if version >= (3, 4) {
                assert!(r.stderr.contains("does not prove"), "{label}: {}", r.stderr);
                assert!(!r.stderr.contains("nothing keeps it alive"), "{label}");
            } else {
                assert!(
                    r.stderr.contains("the next GC frees it"),
                    "{label}: {}",
                    r.stderr
                );
            }
        }
        assert!(hedged > 0, "{label}: no garbage String was unreachable");
        let out = common::heapscope(&["retained", "-n", "1", s(&dump)])
            .ok()
            .stdout_text();
        let json = common::heapscope(&["retained", "--format", "json", s(&dump)]).json();
        if version >= (3, 4) {
            assert!(
                out.contains("reached by no root this dump lists"),
                "{label}: {out}"
            );
            assert!(out.contains("does not prove"), "{label}: {out}");
            assert_eq!(json["reachability"], "no_finalizers", "{label}");
        } else {
            assert!(out.contains("the next GC frees them"), "{label}: {out}");
            assert_eq!(json["reachability"], "complete", "{label}");
        }
    }
}

/// Item 5: on Ruby 3.1 (and earlier) a constcache IMEMO's cached value is
/// its `class` and not in its `references`: an edge all the same, which
/// keeps a constant removed with `remove_const` alive. From 3.2 on (3.3/3.4
/// natively, every wasm Ruby) IMEMOs have no `class`, and `remove_const`
/// clears the caches of that name, so the removed value is freed.
#[test]
fn a_constant_cache_holds_its_value_on_every_ruby() {
    let (runs, _keep) = rubies::every_ruby("graph_constcache.rb");
    for (label, dir) in &runs {
        let (dump, expect, version, text) = load(dir, "constcache.dump");
        let removed = expect["removed"].as_str().unwrap();
        if version >= (3, 2) {
            let needle = format!("\"address\":\"{removed}\"");
            let still_there = text
                .lines()
                .filter(|l| l.contains(&needle))
                .any(|l| l.contains("\"type\":\"ARRAY\"") && l.contains("\"length\":200"));
            assert!(!still_there, "{label}: the removed constant survived");
            assert!(
                !text.contains("\"imemo_type\":\"constcache\", \"class\""),
                "{label}"
            );
            assert_kept_is_not_dominated_by_the_class(label, &dump, &expect);
            continue;
        }
        let caches: Vec<Value> = text
            .lines()
            .filter(|l| l.contains("\"imemo_type\":\"constcache\""))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let holding: Vec<&Value> = caches
            .iter()
            .filter(|c| {
                c["class"] == removed
                    || c["references"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|a| a == removed))
            })
            .collect();
        assert!(
            !holding.is_empty(),
            "{label}: no constcache holds {removed}"
        );
        // What this fix is about: the value is only in `class`.
        assert!(holding.iter().all(|c| c["class"] == removed), "{label}");

        // Reachable, through a constcache IMEMO.
        let (steps, json) = path_steps(&dump, removed, label);
        let n = steps.len();
        assert_eq!(steps[n - 2]["type"], "IMEMO", "{label}: {json}");
        let held_as = steps[n - 2]["held_as"].as_str().unwrap();
        assert!(
            held_as.contains("the constant value it caches"),
            "{label}: {held_as}"
        );
        let (unreachable_strings, retained) = unreachable_of_type(&dump, "STRING");
        assert!(unreachable_strings < 200, "{label}: {retained}");
        assert_kept_is_not_dominated_by_the_class(label, &dump, &expect);
    }
}

/// The class does not dominate KEPT, which its constant and a cache both
/// hold: its retained size leaves KEPT's 200 Strings out.
fn assert_kept_is_not_dominated_by_the_class(label: &str, dump: &Path, expect: &Value) {
    let rows = common::heapscope(&["retained", "-n", "0", "--format", "json", s(dump)]).json();
    let row = |a: &str| rubies::row(&rows, "address", a, &format!("{label}: retained")).clone();
    let class = row(expect["class"].as_str().unwrap());
    let kept = row(expect["kept"].as_str().unwrap());
    assert_eq!(class["name"], "GraphCcHolder", "{label}");
    assert!(
        class["retained_bytes"].as_u64() < kept["retained_bytes"].as_u64(),
        "{label}: class {class} kept {kept}"
    );
    assert!(
        kept["retained_bytes"].as_u64().unwrap() > 200 * 100,
        "{label}: {kept}"
    );
}
