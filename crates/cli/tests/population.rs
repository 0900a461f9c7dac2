//! Exact counts on a real Ruby 3.1 heap dump whose populations are known by
//! construction (`tests/ruby/population.rb`).

mod common;

use common::{
    count_of, counts_by, population, rows, rows_where, single_count, summary_json, thousands,
};
use std::collections::BTreeMap;

use serde_json::{json, Value};

/// The value a population has under a grouping key, as heapscope reports it.
fn key_value(p: &Value, key: &str) -> Value {
    match key {
        "class" => match &p["class"] {
            // An anonymous class has no name: it is shown by its address.
            Value::Null => json!(format!(
                "#<Class:{}>",
                p["class_address"].as_str().expect("class_address")
            )),
            name => name.clone(),
        },
        "location" | "generation" | "method" => p[key].clone(),
        "string" => p["value"].clone(),
        other => panic!("no population value for key {other}"),
    }
}

/// `summary --by KEY --top 0 EXTRA` for every key some population has in `dump_totals`.
fn by_each_key(extra: &[&str]) -> BTreeMap<String, Value> {
    let pop = population();
    let mut keys: Vec<&str> = pop
        .populations()
        .iter()
        .flat_map(|(_, p)| {
            p["dump_totals"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|k| {
            let mut args = vec!["--by", k, "--top", "0"];
            args.extend_from_slice(extra);
            (k.to_string(), summary_json(&pop.dump, &args))
        })
        .collect()
}

#[test]
fn exclusive_keys_count_exactly_the_population() {
    let pop = population();
    let by_key = by_each_key(&[]);
    for (name, p) in pop.populations() {
        let exclusive = p["exclusive"].as_array().expect("exclusive");
        assert!(!exclusive.is_empty(), "{name}: no exclusive key");
        for key in exclusive {
            let key = key.as_str().unwrap();
            let want = p["dump_totals"][key].as_u64().unwrap();
            assert_eq!(
                want,
                p["count"].as_u64().unwrap(),
                "{name}: population.rb contradicts itself"
            );
            let got = single_count(&by_key[key], key, &key_value(p, key));
            assert_eq!(
                got,
                want,
                "{name}: --by {key}: count of {}",
                key_value(p, key)
            );
        }
    }
}

/// Objects (not IMEMO) whose class is a singleton class whose
/// `real_class_name` is `name`, counted the slow, obvious way.
fn singleton_instances(dump: &std::path::Path, name: &str) -> u64 {
    let text = std::fs::read_to_string(dump).expect("read the dump");
    let records: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let singletons: std::collections::HashSet<&str> = records
        .iter()
        .filter(|r| {
            r["singleton"] == json!(true)
                && r["real_class_name"] == json!(name)
                && r.get("name").is_none()
        })
        .filter_map(|r| r["address"].as_str())
        .collect();
    records
        .iter()
        .filter(|r| r["type"] != json!("IMEMO") && r["type"] != json!("ROOT"))
        .filter(|r| r["class"].as_str().is_some_and(|c| singletons.contains(c)))
        .count() as u64
}

#[test]
fn every_key_matches_the_dump_totals() {
    // dump_totals count over all heap-object lines (the tracer included), also
    // for keys where the population is only part of the group.
    let pop = population();
    let by_key = by_each_key(&["--include-tracer"]);
    for (name, p) in pop.populations() {
        for (key, want) in p["dump_totals"].as_object().unwrap() {
            let value = key_value(p, key);
            let got: u64 = rows_where(&by_key[key], key, &value)
                .into_iter()
                .map(count_of)
                .sum();
            let want = want.as_u64().unwrap();
            if key == "class" {
                // The Ruby script counts objects whose class address is the
                // class's own; heapscope also counts objects with a singleton
                // class standing in for it (`obj.class` returns the same class).
                let extra = singleton_instances(&pop.dump, value.as_str().unwrap_or(""));
                assert_eq!(
                    got,
                    want + extra,
                    "{name}: --by class: objects with class {value} ({extra} through singleton classes)"
                );
            } else {
                assert_eq!(got, want, "{name}: --by {key}: objects with {key} {value}");
            }
        }
    }
}

#[test]
fn totals_and_types_match_the_dump() {
    let pop = population();
    let v = summary_json(
        &pop.dump,
        &["--by", "type", "--include-tracer", "--top", "0"],
    );
    let t = &v["totals"];
    assert_eq!(t["dump_objects"], pop.num("heap_object_lines"));
    assert_eq!(
        t["objects"],
        pop.num("heap_object_lines"),
        "--include-tracer counts every object"
    );
    assert_eq!(t["roots"], pop.num("root_lines"));
    assert_eq!(t["shapes"], 0, "Ruby 3.1 writes no SHAPE records");
    assert_eq!(t["tracer_included"], true);
    let d = &v["diagnostics"];
    assert_eq!(d["lines"], pop.num("total_lines"));
    assert_eq!(d["bytes"], pop.num("dump_bytes"));
    assert_eq!(d["objects"], pop.num("heap_object_lines"));
    assert_eq!(d["roots"], pop.num("root_lines"));
    assert_eq!(d["malformed_lines"], 0);
    assert_eq!(d["truncated_last_line"], Value::Null);

    let want: BTreeMap<String, u64> = pop.expected["type_counts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect();
    assert_eq!(counts_by(&v, "type"), want);
    assert_eq!(v["groups"], want.len());
}

#[test]
fn the_tracer_is_left_out_by_default() {
    let pop = population();
    let all = pop.num("heap_object_lines");
    let v = summary_json(&pop.dump, &["--by", "type", "--top", "0"]);
    let t = &v["totals"];
    assert_eq!(t["dump_objects"], all);
    assert_eq!(
        t["objects"],
        all - 1,
        "the allocation tracer's DATA object is not the app's"
    );
    assert_eq!(t["tracer_included"], false);
    let tracer = t["tracer_memsize"]
        .as_u64()
        .expect("a traced 3.1 dump has the tracer's table");
    let with = summary_json(
        &pop.dump,
        &["--by", "type", "--top", "0", "--include-tracer"],
    );
    assert_eq!(
        with["totals"]["memsize"].as_u64().unwrap(),
        t["memsize"].as_u64().unwrap() + tracer
    );
    let data = pop.expected["type_counts"]["DATA"].as_u64().unwrap();
    assert_eq!(single_count(&v, "type", &json!("DATA")), data - 1);
    assert_eq!(single_count(&with, "type", &json!("DATA")), data);
}

#[test]
fn generation_filter_selects_one_population() {
    let pop = population();
    for (name, p) in pop.populations() {
        let g = p["generation"].as_u64().unwrap();
        let v = summary_json(
            &pop.dump,
            &["--by", "type", "--top", "0", "--generation", &g.to_string()],
        );
        assert_eq!(
            v["totals"]["objects"], p["count"],
            "{name}: --generation {g}"
        );
        // The generation holds nothing but the population, all of one type.
        assert_eq!(
            counts_by(&v, "type"),
            [(
                p["type"].as_str().unwrap().to_string(),
                p["count"].as_u64().unwrap()
            )]
            .into()
        );
    }
    // `--generation all` is the default and keeps the untraced objects.
    let all = summary_json(&pop.dump, &["--generation", "all"]);
    assert_eq!(all["totals"]["objects"], pop.num("heap_object_lines") - 1);
    assert_eq!(all, summary_json(&pop.dump, &[]));
}

#[test]
fn generation_ranges_add_up() {
    let pop = population();
    let by_gen = summary_json(&pop.dump, &["--top", "0"]);
    let per_gen: Vec<(Option<u64>, u64)> = rows(&by_gen)
        .iter()
        .map(|r| (r["generation"].as_u64(), count_of(r)))
        .collect();
    let mut gens: Vec<u64> = pop
        .populations()
        .iter()
        .map(|(_, p)| p["generation"].as_u64().unwrap())
        .collect();
    gens.sort();
    let (lo, hi) = (gens[0], gens[gens.len() - 1]);
    let traced_in = |a: u64, b: u64| -> u64 {
        per_gen
            .iter()
            .filter(|(g, _)| matches!(g, Some(g) if (a..=b).contains(g)))
            .map(|(_, c)| c)
            .sum()
    };
    for (spec, a, b) in [
        (format!("{lo}..{hi}"), lo, hi),
        (format!("{lo}.."), lo, u64::MAX),
        (format!("..{hi}"), 0, hi),
        (format!("..{}", lo - 1), 0, lo - 1),
    ] {
        let v = summary_json(&pop.dump, &["--generation", spec.as_str(), "--top", "0"]);
        assert_eq!(
            v["totals"]["objects"].as_u64().unwrap(),
            traced_in(a, b),
            "--generation {spec}"
        );
        assert!(
            rows(&v).iter().all(|r| !r["generation"].is_null()),
            "--generation {spec} must leave out untraced objects"
        );
    }
    // population.rb opens one GC generation per population, one after another.
    if gens.windows(2).all(|w| w[1] == w[0] + 1) {
        let v = summary_json(&pop.dump, &["--generation", &format!("{lo}..{hi}")]);
        let sum: u64 = pop
            .populations()
            .iter()
            .map(|(_, p)| p["count"].as_u64().unwrap())
            .sum();
        assert_eq!(v["totals"]["objects"].as_u64().unwrap(), sum);
    }
}

#[test]
fn type_filter_counts_the_type() {
    let pop = population();
    for (t, n) in pop.expected["type_counts"].as_object().unwrap() {
        let v = summary_json(
            &pop.dump,
            &[
                "--type",
                t.as_str(),
                "--include-tracer",
                "--by",
                "type",
                "--top",
                "0",
            ],
        );
        assert_eq!(v["totals"]["objects"], *n, "--type {t}");
        assert_eq!(
            counts_by(&v, "type"),
            [(t.clone(), n.as_u64().unwrap())].into(),
            "--type {t}"
        );
    }
    // Case-insensitive, comma-separated, combined with a generation.
    let p = pop.population("hashes");
    let g = p["generation"].to_string();
    let v = summary_json(&pop.dump, &["--type", "hash,array", "--generation", &g]);
    assert_eq!(v["totals"]["objects"], p["count"]);
    let t = &pop.expected["type_counts"];
    let v = summary_json(&pop.dump, &["--type", "HASH", "--type", "ARRAY"]);
    assert_eq!(
        v["totals"]["objects"].as_u64().unwrap(),
        t["HASH"].as_u64().unwrap() + t["ARRAY"].as_u64().unwrap()
    );
}

#[test]
fn duplicated_strings_are_listed_with_their_location() {
    let pop = population();
    let p = pop.population("duplicate_strings");
    let v = summary_json(&pop.dump, &["--by", "string", "--top", "0"]);
    let found = rows_where(&v, "string", &p["value"]);
    assert_eq!(found.len(), 1, "{} is listed once: {found:?}", p["value"]);
    let row = found[0];
    assert_eq!(row["count"], p["dump_totals"]["string"]);
    let locations = row["locations"]
        .as_array()
        .expect("string rows have locations");
    assert_eq!(
        locations[0],
        json!({"location": p["location"], "count": p["count"]}),
        "top location"
    );
    // Every row is a duplicate.
    assert!(rows(&v).iter().all(|r| count_of(r) > 1));
    // It is also the biggest duplicate by count.
    let by_count = summary_json(
        &pop.dump,
        &["--by", "string", "--sort", "count", "--top", "1"],
    );
    assert_eq!(rows(&by_count)[0]["string"], p["value"]);
}

#[test]
fn gem_attribution() {
    let pop = population();
    let v = summary_json(&pop.dump, &["--by", "gem", "--top", "0"]);
    let gems = counts_by(&v, "gem");
    // The script is the app: all populations are under "app".
    let populations: u64 = pop
        .populations()
        .iter()
        .map(|(_, p)| p["count"].as_u64().unwrap())
        .sum();
    assert!(
        gems.get("app").copied().unwrap_or(0) >= populations,
        "app: {gems:?}"
    );
    assert!(
        gems.contains_key("ruby stdlib") || gems.contains_key("ruby core"),
        "{gems:?}"
    );
    assert!(
        gems.contains_key("null"),
        "untraced objects have no gem: {gems:?}"
    );
    // "app" holds exactly the objects allocated in the script's file.
    let file = pop.expected["script_file"].clone();
    let by_file = summary_json(&pop.dump, &["--by", "file", "--top", "0"]);
    assert_eq!(gems["app"], single_count(&by_file, "file", &file));
    let by_both = summary_json(&pop.dump, &["--by", "file,gem", "--top", "0"]);
    for r in rows_where(&by_both, "file", &file) {
        assert_eq!(r["gem"], "app");
    }
}

#[test]
fn file_and_location_groupings_agree() {
    let pop = population();
    let file = pop.expected["script_file"].as_str().unwrap();
    let by_file = summary_json(&pop.dump, &["--by", "file", "--top", "0"]);
    let by_loc = summary_json(&pop.dump, &["--by", "location", "--top", "0"]);
    let prefix = format!("{file}:");
    let in_file: u64 = rows(&by_loc)
        .iter()
        .filter(|r| {
            r["location"]
                .as_str()
                .is_some_and(|l| l.starts_with(&prefix))
        })
        .map(count_of)
        .sum();
    assert_eq!(single_count(&by_file, "file", &json!(file)), in_file);
    assert_eq!(
        single_count(&by_file, "file", &Value::Null),
        single_count(&by_loc, "location", &Value::Null),
        "untraced objects"
    );
}

#[test]
fn default_table_lists_generations() {
    let pop = population();
    let run = common::summary_run(&pop.dump, &[]);
    let out = run.ok().stdout_text();
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.len() >= 2 && l[0] == "generation" && l[1] == "count"),
        "no table header:\n{out}"
    );
    assert!(
        lines.iter().any(|l| l.first() == Some(&"untraced")),
        "no untraced row:\n{out}"
    );
    for (name, p) in pop.populations() {
        let g = p["generation"].to_string();
        let count = thousands(p["count"].as_u64().unwrap());
        assert!(
            lines
                .iter()
                .any(|l| l.len() >= 2 && l[0] == g && l[1] == count),
            "{name}: no row `{g}  {count}` in:\n{out}"
        );
    }
    let header = format!(
        "{}: {} objects",
        pop.dump.display(),
        thousands(pop.num("heap_object_lines") - 1)
    );
    assert!(
        out.starts_with(&header),
        "first line should be {header:?}:\n{out}"
    );
    assert!(
        run.stderr.is_empty(),
        "a clean dump gives no warnings: {}",
        run.stderr
    );
}
