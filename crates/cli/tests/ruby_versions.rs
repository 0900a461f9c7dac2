//! The version matrix's smoke test: every wasm Ruby and the native one run a
//! corpus program, and `summary --by class` finds what it built.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

use common::rubies::{self, WASM_VERSIONS};

fn class_count(dump: &Path, class: &str) -> u64 {
    let json = rubies::by_class_json(&["summary", dump.to_str().unwrap()]);
    rubies::find_row(&json, "class", class).map_or(0, |r| r["count"].as_u64().unwrap())
}

#[test]
fn wasm_rubies_write_a_dump_heapscope_reads() {
    for version in WASM_VERSIONS {
        let dir = rubies::wasm_run(version, "smoke.rb");
        let expect = rubies::expectations(&dir);
        assert_eq!(
            class_count(&dir.join("smoke.dump"), "CorpusSmoke"),
            10,
            "Ruby {}",
            expect["ruby"]
        );
    }
}

#[test]
fn native_ruby_writes_a_dump_heapscope_reads() {
    let dir = rubies::native_run("smoke.rb");
    assert_eq!(
        class_count(&dir.path().join("smoke.dump"), "CorpusSmoke"),
        10,
        "Ruby {}",
        rubies::native_version()
    );
}

/// A dump read by serde_json line by line, the obviously-correct reading
/// the checks below compare heapscope against: heap records, and every
/// address a ROOT record lists.
fn records(dump: &Path) -> (Vec<Value>, Vec<String>) {
    let mut records = Vec::new();
    let mut roots = Vec::new();
    for line in std::fs::read_to_string(dump).unwrap().lines() {
        let Ok(r) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if r["type"] == "ROOT" {
            for a in r["references"].as_array().into_iter().flatten() {
                roots.push(a.as_str().unwrap().to_string());
            }
        } else if r.get("address").is_some() && r["type"] != "SHAPE" {
            records.push(r);
        }
    }
    (records, roots)
}

/// The bytes `start` retains, by definition: the memsize of every object
/// reachable from `start` that no root reaches once `start` is gone. Edges
/// are the listed references plus each object's class.
fn retained_by_definition(records: &[Value], roots: &[String], start: &str) -> u64 {
    let by_address: HashMap<&str, &Value> = records
        .iter()
        .map(|r| (r["address"].as_str().unwrap(), r))
        .collect();
    let edges = |a: &str| -> Vec<String> {
        let Some(r) = by_address.get(a) else {
            return Vec::new();
        };
        let mut out: Vec<String> = r["references"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        if let Some(c) = r["class"].as_str() {
            out.push(c.to_string());
        }
        out
    };
    let reach = |from: Vec<String>, skip: Option<&str>| -> HashSet<String> {
        let mut seen = HashSet::new();
        let mut stack = from;
        while let Some(a) = stack.pop() {
            if Some(a.as_str()) == skip || !by_address.contains_key(a.as_str()) {
                continue;
            }
            if seen.insert(a.clone()) {
                stack.extend(edges(&a));
            }
        }
        seen
    };
    let without = reach(roots.to_vec(), Some(start));
    reach(vec![start.to_string()], None)
        .iter()
        .filter(|a| !without.contains(*a))
        .map(|a| by_address[a.as_str()]["memsize"].as_u64().unwrap_or(0))
        .sum()
}

/// What `population.rb` built, checked on one Ruby's dump.
fn check_population(dir: &Path, ruby: &str) {
    let dump = dir.join("population.dump");
    let dump_s = dump.to_str().unwrap();
    let expect = rubies::expectations(dir);
    for (class, count) in expect["classes"].as_object().unwrap() {
        assert_eq!(
            class_count(&dump, class),
            count.as_u64().unwrap(),
            "Ruby {ruby}: {class}"
        );
    }

    // Each PopEntry's 300-byte payload, at its line. A conservative GC may
    // keep the last iteration's garbage alive, hence the small margin.
    let by_location = common::heapscope(&[
        "summary", "--by", "location", "-n", "0", "--format", "json", dump_s,
    ])
    .json();
    let payload = expect["payload_location"].as_str().unwrap();
    let row = by_location["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["location"] == payload)
        .unwrap_or_else(|| panic!("Ruby {ruby}: no row for {payload}"));
    let count = row["count"].as_u64().unwrap();
    assert!(
        (1000..=1010).contains(&count),
        "Ruby {ruby}: {count} payloads"
    );
    assert!(
        row["memsize"].as_u64().unwrap() >= 1000 * 300,
        "Ruby {ruby}: payload bytes {row}"
    );

    // The registry's retained size, against its definition.
    let (records, roots) = records(&dump);
    let class_address = records
        .iter()
        .find(|r| r["type"] == "CLASS" && r["name"] == "PopRegistry")
        .unwrap()["address"]
        .clone();
    let registry = records
        .iter()
        .find(|r| r["type"] == "OBJECT" && r["class"] == class_address)
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    let inspect = common::heapscope(&["inspect", dump_s, &registry, "--format", "json"]).json();
    assert_eq!(
        inspect["retained_bytes"].as_u64().unwrap(),
        retained_by_definition(&records, &roots, &registry),
        "Ruby {ruby}: retained size of the registry"
    );
    assert_eq!(inspect["class"], "PopRegistry", "Ruby {ruby}");
}

/// What `population_series.rb` built: `leaks` finds the leak and the cache.
fn check_series(dir: &Path, ruby: &str) {
    let expect = rubies::expectations(dir);
    let json = common::heapscope(&["leaks", dir.to_str().unwrap(), "--format", "json"]).json();
    let process = &json["processes"][0];
    assert_eq!(process["dumps"].as_array().unwrap().len(), 5, "Ruby {ruby}");
    assert_eq!(process["heap_verdict"], "leak", "Ruby {ruby}");
    let leak_location = expect["leak_location"].as_str().unwrap();
    let leak = process["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["location"] == leak_location && s["class"] == "PopLeak")
        .unwrap_or_else(|| {
            panic!("Ruby {ruby}: PopLeak at {leak_location} is not a leak: {process}")
        });
    assert_eq!(
        leak["counts"],
        serde_json::json!([200, 400, 600, 800, 1000]),
        "Ruby {ruby}"
    );
    assert_eq!(leak["survivors"], 200, "Ruby {ruby}");
    // The path ends at a PopLeak, held by the global Array.
    let steps = leak["path"]["steps"].as_array().unwrap();
    assert_eq!(steps.last().unwrap()["class"], "PopLeak", "Ruby {ruby}");
    let cache_location = expect["cache_location"].as_str().unwrap();
    assert!(
        process["caches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["location"] == cache_location && s["type"] == "ARRAY"),
        "Ruby {ruby}: the cache at {cache_location} is not levelled off: {process}"
    );
    assert!(
        !process["leaks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["location"] == cache_location),
        "Ruby {ruby}: the cache is called a leak"
    );
}

#[test]
fn wasm_rubies_population_known_by_construction() {
    rubies::check_on_wasm_rubies("population.rb", check_population);
}

#[test]
fn native_ruby_population_known_by_construction() {
    rubies::check_on_native_ruby("population.rb", check_population);
}

#[test]
fn wasm_rubies_leak_and_cache_over_a_series() {
    rubies::check_on_wasm_rubies("population_series.rb", check_series);
}

#[test]
fn native_ruby_leak_and_cache_over_a_series() {
    rubies::check_on_native_ruby("population_series.rb", check_series);
}
