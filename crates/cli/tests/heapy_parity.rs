//! Per-generation counts agree with heapy (`heapy read DUMP`, Debian's
//! ruby-heapy), the tool `summary`'s default output imitates.
//!
//! heapy counts every line it can parse: ROOT and SHAPE records land in its
//! `nil` generation next to the untraced objects, and so do objects of
//! generation 0 (it reads a missing generation as 0). heapscope counts heap
//! objects only, so the difference is accounted for explicitly below.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{count_of, fixture, fixture_expectations, population, rows, summary_json};

fn heapy_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("heapy"))
        .find(|p| p.is_file())
}

/// Parses heapy's `Generation: nil object count: 1234, mem: 0.0 kb` lines.
/// Returns (count of "nil", {generation: count}).
fn parse_heapy(out: &str) -> (u64, BTreeMap<u64, u64>) {
    let mut nil = None;
    let mut gens = BTreeMap::new();
    for line in out.lines() {
        let Some(rest) = line.strip_prefix("Generation:") else {
            continue;
        };
        let (gen, rest) = rest
            .split_once("object count:")
            .unwrap_or_else(|| panic!("unexpected heapy line: {line:?}"));
        let count: u64 = rest
            .split(',')
            .next()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or_else(|| panic!("no count in heapy line: {line:?}"));
        match gen.trim() {
            "nil" => {
                assert!(
                    nil.replace(count).is_none(),
                    "two nil lines in heapy's output:\n{out}"
                );
            }
            g => {
                let g: u64 = g
                    .parse()
                    .unwrap_or_else(|_| panic!("bad generation in heapy line: {line:?}"));
                assert!(
                    gens.insert(g, count).is_none(),
                    "generation {g} twice in heapy's output:\n{out}"
                );
            }
        }
    }
    assert!(
        nil.is_some() || !gens.is_empty(),
        "no `Generation:` lines in heapy's output:\n{out}"
    );
    (nil.unwrap_or(0), gens)
}

/// Runs heapy; None (with a note) when heapy could not read every line.
fn heapy_read(heapy: &Path, dump: &Path) -> Option<(u64, BTreeMap<u64, u64>)> {
    let out = Command::new(heapy)
        .arg("read")
        .arg(dump)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", heapy.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("Could not parse") {
        eprintln!(
            "note: heapy could not read every line of {} ({}); not compared",
            dump.display(),
            out.status
        );
        return None;
    }
    Some(parse_heapy(&text))
}

/// Compares heapscope's per-generation counts with heapy's on one dump.
/// Returns false when heapy could not read the dump.
fn assert_parity(heapy: &Path, dump: &Path) -> bool {
    let Some((heapy_nil, heapy_gens)) = heapy_read(heapy, dump) else {
        return false;
    };
    // The default grouping is by generation, with every generation shown.
    let v = summary_json(dump, &["--include-tracer"]);
    assert_eq!(v["by"], serde_json::json!(["generation"]));
    let mut untraced = 0;
    let mut ours = BTreeMap::new();
    for r in rows(&v) {
        match r["generation"].as_u64() {
            None => {
                assert!(r["generation"].is_null(), "bad generation in {r}");
                untraced += count_of(r);
            }
            Some(g) => {
                assert!(
                    ours.insert(g, count_of(r)).is_none(),
                    "generation {g} listed twice"
                );
            }
        }
    }
    // heapy files generation 0 under nil; Ruby allocates nothing traceable
    // before the first GC in practice, but count it if it is there.
    let gen0 = ours.remove(&0).unwrap_or(0);
    let roots = v["totals"]["roots"].as_u64().unwrap();
    let shapes = v["totals"]["shapes"].as_u64().unwrap();
    assert_eq!(
        heapy_nil,
        untraced + gen0 + roots + shapes,
        "{}: heapy's nil generation = our untraced objects ({untraced}) + generation 0 ({gen0}) \
         + ROOT records ({roots}) + SHAPE records ({shapes})",
        dump.display()
    );
    assert_eq!(
        ours,
        heapy_gens,
        "{}: per-generation counts",
        dump.display()
    );
    true
}

#[test]
fn generations_match_heapy_on_the_population_dump() {
    let Some(heapy) = heapy_path() else {
        eprintln!("note: heapy is not on PATH (Debian: apt-get install ruby-heapy); skipping the comparison");
        return;
    };
    let pop = population();
    assert!(
        assert_parity(&heapy, &pop.dump),
        "heapy must read a dump Ruby wrote"
    );
    // The population's generations are there with their exact sizes.
    let (_, gens) = heapy_read(&heapy, &pop.dump).unwrap();
    for (name, p) in pop.populations() {
        let g = p["generation"].as_u64().unwrap();
        assert_eq!(
            gens.get(&g).copied(),
            p["count"].as_u64(),
            "{name}: heapy's generation {g}"
        );
    }
}

#[test]
fn generations_match_heapy_on_the_fixtures() {
    let Some(heapy) = heapy_path() else {
        eprintln!("note: heapy is not on PATH (Debian: apt-get install ruby-heapy); skipping the comparison");
        return;
    };
    let mut compared = 0;
    for (name, e) in fixture_expectations() {
        if e.get("not_a_dump").is_some() {
            continue;
        }
        // heapy cannot read broken lines: compare only clean dumps.
        let clean = e["malformed_total"] == 0
            && e["recovered_lines"]
                .as_array()
                .is_some_and(|a| a.is_empty())
            && e.get("raw_bytes_hex").is_none();
        if clean && assert_parity(&heapy, &fixture(&name)) {
            compared += 1;
        }
    }
    assert!(
        compared >= 5,
        "only {compared} fixtures could be compared with heapy"
    );
}
