//! End-to-end tests of `heapscope leaks` on the dump series that
//! `tests/ruby/leaks/service.rb` writes (three leaks, two bounded caches and
//! per-request garbage), checked against the `expected.json` it writes.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use common::{heapscope, ruby_script, run_ruby, scratch_dir, Run};
use serde_json::Value;
use tempfile::TempDir;

const BASE_TIME: i64 = 1_700_000_000;
const INTERVAL: i64 = 600;

/// The series written by one run of `service.rb` with its defaults.
struct Series {
    _dir: TempDir,
    /// The directory holding the dumps and `expected.json`.
    dumps_dir: PathBuf,
    /// The dumps, in time order (as listed in `expected.json`).
    dumps: Vec<PathBuf>,
    expected: Value,
}

impl Series {
    fn sites(&self, kind: &str) -> &Vec<Value> {
        self.expected[kind]
            .as_array()
            .unwrap_or_else(|| panic!("expected.json has no {kind:?} list"))
    }

    fn pid(&self) -> u64 {
        self.expected["pid"].as_u64().expect("expected.json: pid")
    }
}

/// Runs `ruby tests/ruby/leaks/service.rb OUT_DIR` once per test binary.
fn series() -> &'static Series {
    static SERIES: OnceLock<Series> = OnceLock::new();
    SERIES.get_or_init(|| {
        let dir = scratch_dir("heapscope-leaks-");
        let dumps_dir = dir.path().join("dumps");
        run_ruby(
            &ruby_script("leaks/service.rb"),
            &[&dumps_dir],
            &[],
            dir.path(),
        );
        let path = dumps_dir.join("expected.json");
        let text = fs::read_to_string(&path).expect("service.rb wrote no expected.json");
        let expected: Value = serde_json::from_str(&text).expect("service.rb wrote invalid JSON");
        assert_eq!(
            expected["schema"], 1,
            "service.rb: unknown expectation schema"
        );
        let dumps: Vec<PathBuf> = expected["dumps"]
            .as_array()
            .expect("expected.json: dumps")
            .iter()
            .map(|n| dumps_dir.join(n.as_str().expect("dump name")))
            .collect();
        assert!(dumps.len() >= 5, "service.rb wrote {} dumps", dumps.len());
        Series {
            _dir: dir,
            dumps_dir,
            dumps,
            expected,
        }
    })
}

/// `heapscope leaks ARGS...`.
fn leaks_run<S: AsRef<OsStr>>(args: &[S]) -> Run {
    let mut all: Vec<&OsStr> = vec![OsStr::new("leaks")];
    all.extend(args.iter().map(|a| a.as_ref()));
    heapscope(&all)
}

/// `heapscope leaks ARGS... --format json -q`, which must succeed.
fn leaks_json<S: AsRef<OsStr>>(args: &[S]) -> Value {
    let mut all: Vec<&OsStr> = args.iter().map(|a| a.as_ref()).collect();
    all.extend(["--format", "json", "-q"].map(OsStr::new));
    leaks_run(&all).json()
}

/// `heapscope leaks DIR --format json` on the service's series, run once.
fn report() -> &'static Value {
    static REPORT: OnceLock<Value> = OnceLock::new();
    REPORT.get_or_init(|| leaks_json(&[series().dumps_dir.as_os_str()]))
}

/// The only process of a report.
fn only_process(v: &Value) -> &Value {
    let ps = v["processes"].as_array().expect("processes");
    assert_eq!(ps.len(), 1, "expected one process, got {}", ps.len());
    &ps[0]
}

fn list<'a>(process: &'a Value, key: &str) -> &'a Vec<Value> {
    process[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key:?} array in {process}"))
}

/// Rows of `rows` at the site's location with its class and type, best
/// ranked first.
fn rows_for<'a>(rows: &'a [Value], site: &Value) -> Vec<&'a Value> {
    rows.iter()
        .filter(|r| {
            r["location"] == site["location"]
                && r["class"] == site["class"]
                && r["type"] == site["type"]
        })
        .collect()
}

fn rows_at<'a>(rows: &'a [Value], location: &Value) -> Vec<&'a Value> {
    rows.iter().filter(|r| &r["location"] == location).collect()
}

fn rank(row: &Value) -> u64 {
    row["rank"]
        .as_u64()
        .unwrap_or_else(|| panic!("a leak row without a rank: {row}"))
}

/// The one leak row of a real leak site.
fn leak_row<'a>(process: &'a Value, site: &Value) -> &'a Value {
    let leaks = list(process, "leaks");
    let found = rows_for(leaks, site);
    assert!(
        !found.is_empty(),
        "leak site {} ({} {} at {}) is not in \"leaks\": {leaks:#?}",
        site["name"],
        site["class"],
        site["type"],
        site["location"]
    );
    assert_eq!(found.len(), 1, "several rows for one site key: {found:#?}");
    found[0]
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// The report with each process's dump paths reduced to file names, for
/// comparing runs that name the same files differently.
fn normalized(v: &Value) -> Value {
    let mut v = v.clone();
    for p in v["processes"].as_array_mut().expect("processes") {
        let names: Vec<Value> = p["dumps"]
            .as_array()
            .expect("dumps")
            .iter()
            .map(|d| {
                let s = d.as_str().expect("dump path");
                Value::from(
                    Path::new(s)
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                )
            })
            .collect();
        p["dumps"] = Value::from(names);
    }
    v
}

/// Hard-links `src` to `dst` (same file system, no copy), else copies it.
fn link_or_copy(src: &Path, dst: &Path) {
    if fs::hard_link(src, dst).is_err() {
        fs::copy(src, dst)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dst.display()));
    }
}

fn ranked_leak_sites(process: &Value) -> Vec<(Value, Value, Value, Value)> {
    list(process, "leaks")
        .iter()
        .map(|r| {
            (
                r["location"].clone(),
                r["class"].clone(),
                r["type"].clone(),
                r["counts"].clone(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// What is found.
// ---------------------------------------------------------------------------

#[test]
fn every_real_leak_is_found_with_its_counts_and_ranked_above_non_leaks() {
    let s = series();
    let p = only_process(report());
    assert_eq!(p["pid"].as_u64(), Some(s.pid()));
    assert_eq!(p["times"], s.expected["times"]);
    let leaks = list(p, "leaks");

    // No cache or garbage site is a leak suspect.
    let mut non_leak_ranks = Vec::new();
    for kind in ["caches", "garbage"] {
        for site in s.sites(kind) {
            let found = rows_at(leaks, &site["location"]);
            non_leak_ranks.extend(found.iter().map(|r| rank(r)));
            assert!(
                found.is_empty(),
                "{kind} site {} ({}) is listed as a leak: {found:#?}",
                site["name"],
                site["location"]
            );
        }
    }

    for site in s.sites("leaks") {
        let row = leak_row(p, site);
        assert_eq!(row["verdict"], "leak", "{}: {row}", site["name"]);
        assert_eq!(row["counts"], site["counts"], "{}: counts", site["name"]);
        let r = rank(row);
        assert!(r >= 1, "ranks start at 1: {row}");
        if let Some(&worst) = non_leak_ranks.iter().min() {
            assert!(
                r < worst,
                "{} ranked {r}, below a non-leak at {worst}",
                site["name"]
            );
        }
        assert!(
            row["survivors"].as_u64().unwrap_or(0) > 0,
            "{}: a leak has survivors: {row}",
            site["name"]
        );
    }

    // Ranks are 1, 2, 3... in the order of the list.
    for (i, row) in leaks.iter().enumerate() {
        assert_eq!(rank(row), i as u64 + 1, "rank of row {i}: {row}");
        assert_eq!(row["verdict"], "leak", "{row}");
    }
    assert!(p["leak_sites"].as_u64().unwrap() >= s.sites("leaks").len() as u64);
}

#[test]
fn bounded_caches_are_caches_not_leaks() {
    let s = series();
    let p = only_process(report());
    let leaks = list(p, "leaks");
    let caches = list(p, "caches");
    for site in s.sites("caches") {
        assert!(
            rows_at(leaks, &site["location"]).is_empty(),
            "cache {} is listed as a leak",
            site["name"]
        );
        let found = rows_for(caches, site);
        assert_eq!(
            found.len(),
            1,
            "cache {} ({} at {}) not in \"caches\" once: {caches:#?}",
            site["name"],
            site["class"],
            site["location"]
        );
        let row = found[0];
        assert_eq!(row["verdict"], "plateau", "{}: {row}", site["name"]);
        assert_eq!(row["rank"], Value::Null, "caches are not ranked: {row}");
        assert_eq!(row["counts"], site["counts"], "{}: counts", site["name"]);
    }
    assert!(p["cache_sites"].as_u64().unwrap() >= s.sites("caches").len() as u64);
    // Garbage is neither.
    for site in s.sites("garbage") {
        assert!(
            rows_at(caches, &site["location"]).is_empty(),
            "garbage {} is listed as a cache",
            site["name"]
        );
    }
}

#[test]
fn each_leak_path_passes_through_its_container() {
    let s = series();
    let p = only_process(report());
    for site in s.sites("leaks") {
        let row = leak_row(p, site);
        let container = &site["container"];
        let path = &row["path"];
        assert!(path.is_object(), "{}: no path: {row}", site["name"]);
        assert!(
            path["root"].is_string(),
            "{}: path without a root: {path}",
            site["name"]
        );
        let steps = path["steps"].as_array().expect("steps");
        assert!(
            steps.iter().any(
                |st| st["location"] == container["location"] && st["type"] == container["type"]
            ),
            "{}: the path does not pass through the {} at {}: {steps:#?}",
            site["name"],
            container["type"],
            container["location"]
        );
        let last = steps.last().expect("a path has steps");
        assert_eq!(
            last["location"], site["location"],
            "{}: path ends elsewhere",
            site["name"]
        );
        assert_eq!(
            last["type"], site["type"],
            "{}: path ends elsewhere",
            site["name"]
        );
    }
}

#[test]
fn growth_per_dump_and_per_hour_match_the_series() {
    let s = series();
    let p = only_process(report());
    for site in s.sites("leaks") {
        let row = leak_row(p, site);
        let want = num(site, "per_dump_growth");
        let got = num(row, "growth_per_dump");
        assert!(
            (got - want).abs() <= want * 0.01,
            "{}: growth_per_dump {got}, expected {want}",
            site["name"]
        );
        let per_dump = num(row, "bytes_per_dump");
        let per_hour = num(row, "bytes_per_hour");
        assert!(
            per_dump > 0.0,
            "{}: bytes_per_dump {per_dump}",
            site["name"]
        );
        // Dumps are 600 s apart: 6 per hour.
        let hourly = 3600.0 / INTERVAL as f64 * per_dump;
        assert!(
            (per_hour - hourly).abs() <= hourly * 0.01,
            "{}: bytes_per_hour {per_hour}, expected about {hourly}",
            site["name"]
        );
    }
}

// ---------------------------------------------------------------------------
// Exit codes and options.
// ---------------------------------------------------------------------------

#[test]
fn fail_on_leak_exits_1_on_a_leaking_series() {
    let run = leaks_run(&[
        series().dumps_dir.as_os_str(),
        OsStr::new("--fail-on-leak"),
        OsStr::new("-q"),
    ]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout_text().contains("Leak suspects"),
        "the report is still printed: {}",
        run.stdout_text()
    );
}

const NO_LEAK_RB: &str = r#"
require "objspace"
ObjectSpace.trace_object_allocations_start
out = ARGV.fetch(0)
class Item
  def initialize(k) = (@k = k)
end
CACHE = {}
CAPACITY = 300
def fill(cache, key)
  return cache[key] if cache.key?(key)
  cache[key] = Item.new(key)
  cache.delete(cache.first[0]) if cache.size > CAPACITY
end
def garbage(i)
  { "id" => "req-#{i}", "body" => "x" * 64, "list" => [i, i.to_s] }
end
6.times do |seq|
  Thread.new do
    100.times { |k| fill(CACHE, seq * 100 + k) }
    400.times { |k| garbage(k) }
  end.join
  GC.start
  time = 1_700_000_000 + 600 * seq
  path = File.join(out, "heap-#{Process.pid}-#{time}-#{seq}.dump")
  File.open(path, "w") { |f| ObjectSpace.dump_all(output: f) }
  File.utime(time, time, path)
end
"#;

/// The first `n` dumps of the leaking series, in a directory of their own.
fn first_dumps(n: usize) -> (TempDir, PathBuf) {
    let dir = scratch_dir("heapscope-leaks-few-");
    let out = dir.path().join("dumps");
    fs::create_dir_all(&out).unwrap();
    for d in &series().dumps[..n] {
        link_or_copy(d, &out.join(d.file_name().unwrap()));
    }
    (dir, out)
}

#[test]
fn one_dump_cannot_be_judged_and_fails_a_gate_with_2() {
    let (_dir, out) = first_dumps(1);
    let run = leaks_run(&[
        out.as_os_str(),
        OsStr::new("--fail-on-leak"),
        OsStr::new("-q"),
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let text = run.stdout_text();
    assert!(text.contains(": 1 dump, ordered by"), "{text}");
    assert!(!text.contains("1 dumps"), "{text}");
    assert!(text.contains("Cannot judge"), "{text}");
    assert!(text.contains("at least 3 dumps"), "{text}");
    assert!(text.contains("there is 1 dump."), "{text}");
    assert!(!text.contains("No leaking sites"), "{text}");
    assert!(!text.contains("(stable)"), "{text}");
    // Without the gate, saying so is not a failure.
    assert_eq!(
        leaks_run(&[out.as_os_str(), OsStr::new("-q")]).code,
        Some(0)
    );

    let v = leaks_json(&[out.as_os_str()]);
    let p = only_process(&v);
    assert_eq!(p["verdict"], "cannot judge", "{p:#}");
    assert_eq!(p["heap_verdict"], "cannot judge");
    assert_eq!(p["dumps_needed"], 3);
    assert_eq!(p["leak_sites"], 0);
}

#[test]
fn two_dumps_cannot_be_judged_but_show_their_survivors() {
    let (_dir, out) = first_dumps(2);
    let run = leaks_run(&[
        out.as_os_str(),
        OsStr::new("--fail-on-leak"),
        OsStr::new("-q"),
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let v = leaks_json(&[out.as_os_str()]);
    let p = only_process(&v);
    assert_eq!(p["verdict"], "cannot judge", "{p:#}");
    assert_eq!(p["heap_verdict"], "cannot judge");
    let survivors = p["survivors"].as_u64().unwrap();
    // Every leak of the service added objects that survived into the second dump.
    let leaked: u64 = series()
        .sites("leaks")
        .iter()
        .map(|s| s["counts"][1].as_u64().unwrap() - s["counts"][0].as_u64().unwrap())
        .sum();
    assert!(
        survivors >= leaked,
        "{survivors} survivors, {leaked} leaked"
    );
    let text = run.stdout_text();
    assert!(text.contains(": 2 dumps, ordered by"), "{text}");
    assert!(text.contains("there are 2 dumps."), "{text}");
    assert!(
        text.contains(&format!("({} objects,", common::thousands(survivors))),
        "the survivors are counted: {text}"
    );
    assert!(text.contains("alive in the second"), "{text}");
    assert!(!text.contains("No leaking sites"), "{text}");
    assert!(!text.contains("(stable)"), "{text}");

    // Three dumps are enough: the service leaks from the start.
    let (_dir3, out3) = first_dumps(3);
    let v = leaks_json(&[out3.as_os_str()]);
    assert_eq!(only_process(&v)["verdict"], "leak");
}

#[test]
fn fail_on_leak_exits_0_without_leaks() {
    let dir = scratch_dir("heapscope-leaks-none-");
    let script = dir.path().join("no_leak.rb");
    fs::write(&script, NO_LEAK_RB).unwrap();
    let out = dir.path().join("dumps");
    fs::create_dir_all(&out).unwrap();
    run_ruby(&script, &[&out], &[], dir.path());

    let run = leaks_run(&[out.as_os_str(), OsStr::new("--fail-on-leak")]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout_text().contains("No leaking sites"),
        "{}",
        run.stdout_text()
    );

    let v = leaks_json(&[out.as_os_str(), OsStr::new("--fail-on-leak")]);
    let p = only_process(&v);
    assert_eq!(list(p, "leaks").len(), 0, "{p:#}");
    assert_eq!(p["leak_sites"], 0);
    assert_eq!(p["verdict"], "no leak");
    let caches = list(p, "caches");
    let item = caches
        .iter()
        .find(|c| c["class"] == "Item")
        .unwrap_or_else(|| panic!("the bounded Item cache is not a cache: {caches:#?}"));
    assert_eq!(
        item["counts"],
        serde_json::json!([100, 200, 300, 300, 300, 300])
    );
}

/// An audit log whose Array (line 6) keeps entries of four kinds (lines 8-11:
/// Event structs and their Strings, Strings, Hashes and their Strings,
/// Arrays), and a global Hash (line 15) of sessions (Strings, line 21).
const AUDIT_LOG_RB: &str = r#"
require "objspace"
ObjectSpace.trace_object_allocations_start
Event = Struct.new(:name, :at)
class AuditLog
  def initialize; @entries = []; end
  def record(i)
    @entries << Event.new("event", i)
    @entries << "payload #{i} " * 8
    @entries << { id: i, user: "u#{i}" }
    @entries << [i, i + 1, i + 2, i + 3]
  end
end
AUDIT = AuditLog.new
$sessions = {}
out = ARGV.fetch(0)
5.times do |seq|
  500.times do |k|
    i = seq * 500 + k
    AUDIT.record(i)
    $sessions[i] = "session-#{i}-" + "s" * 60
  end
  GC.start
  time = 1_700_000_000 + 600 * seq
  File.open(File.join(out, "heap-#{Process.pid}-#{time}-#{seq}.dump"), "w") { |f| ObjectSpace.dump_all(output: f) }
end
"#;

#[test]
fn sites_held_by_one_container_are_grouped_under_it() {
    let dir = scratch_dir("heapscope-leaks-audit-");
    let script = dir.path().join("audit.rb");
    fs::write(&script, AUDIT_LOG_RB).unwrap();
    let out = dir.path().join("dumps");
    fs::create_dir_all(&out).unwrap();
    run_ruby(&script, &[&out], &[], dir.path());
    let at = |line: u32| format!("audit.rb:{line}");
    let ends = |v: &Value, line: u32| v.as_str().is_some_and(|l| l.ends_with(&at(line)));

    let v = leaks_json(&[out.as_os_str()]);
    let p = only_process(&v);
    let leaks = list(p, "leaks");
    let containers = list(p, "containers");
    // The entries' Array holds every audit site; the sessions Hash its own.
    let log = containers
        .iter()
        .find(|c| ends(&c["location"], 6))
        .unwrap_or_else(|| panic!("no container at {}: {containers:#?}", at(6)));
    assert_eq!(log["type"], "ARRAY");
    let sessions = containers
        .iter()
        .find(|c| ends(&c["location"], 15))
        .unwrap_or_else(|| panic!("no container at {}: {containers:#?}", at(15)));
    assert_eq!(sessions["type"], "HASH");
    assert_eq!(containers.len(), 2, "{containers:#?}");
    for row in leaks {
        let line: u32 = row["location"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let want = if line == 21 { sessions } else { log };
        assert!((8..=11).contains(&line) || line == 21, "{row:#}");
        assert_eq!(row["container"], want["address"], "{row:#}");
    }
    let ranks = |c: &Value| c["site_ranks"].as_array().unwrap().len();
    // Event and its "event" String, two Strings, the Hash, the Array.
    assert!(ranks(log) >= 5, "{log:#}");
    assert_eq!(ranks(sessions), 1, "{sessions:#}");
    assert_eq!(log["leak_sites"].as_u64().unwrap() as usize, ranks(log));
    assert_eq!(
        log["growth_per_dump"].as_f64().unwrap().round() as usize,
        500 * ranks(log)
    );

    // The table names each container once, with its sites beneath.
    let text = leaks_run(&[out.as_os_str(), OsStr::new("-q")])
        .ok()
        .stdout_text();
    assert!(
        text.contains(&format!("holds {} leaking sites", ranks(log))),
        "{text}"
    );
    assert!(
        text.contains("1 container holding several of them"),
        "{text}"
    );
    assert!(text.contains("   1.1 "), "{text}");
    assert!(
        text.contains("\n2. String "),
        "the sessions site is a finding of its own: {text}"
    );
    assert!(!text.contains("2.1 "), "{text}");
}

#[test]
fn min_growth_above_the_growth_finds_no_leak() {
    let run = leaks_run(&[
        series().dumps_dir.as_os_str(),
        OsStr::new("--min-growth"),
        OsStr::new("1000"),
        OsStr::new("--fail-on-leak"),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    let v = run.json();
    assert_eq!(only_process(&v)["leak_sites"], 0);
}

#[test]
fn top_limits_the_listed_rows_not_the_site_count() {
    let v = leaks_json(&[
        series().dumps_dir.as_os_str(),
        OsStr::new("-n"),
        OsStr::new("1"),
    ]);
    let p = only_process(&v);
    let full = only_process(report());
    assert_eq!(list(p, "leaks").len(), 1);
    assert_eq!(list(p, "leaks")[0], list(full, "leaks")[0]);
    assert_eq!(p["leak_sites"], full["leak_sites"]);
    assert!(list(p, "caches").len() <= 1);
    assert_eq!(p["cache_sites"], full["cache_sites"]);
}

#[test]
fn include_tracer_counts_more_heap() {
    let with = leaks_json(&[
        series().dumps_dir.as_os_str(),
        OsStr::new("--include-tracer"),
    ]);
    let with = only_process(&with);
    let without = only_process(report());
    let a = list(with, "heap_bytes");
    let b = list(without, "heap_bytes");
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!(x.as_u64().unwrap() > y.as_u64().unwrap(), "{a:?} vs {b:?}");
    }
}

#[test]
fn plot_png() {
    let dir = scratch_dir("heapscope-leaks-plot-");
    let out = dir.path().join("out.png");
    leaks_run(&[
        series().dumps_dir.as_os_str(),
        OsStr::new("--plot"),
        out.as_os_str(),
        OsStr::new("-q"),
    ])
    .ok();
    let bytes = fs::read(&out).expect("no PNG written");
    assert!(bytes.len() > 33, "PNG too short");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR", "first chunk is not IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(width > 0 && height > 0, "{width}x{height}");
}

#[test]
fn plot_svg() {
    let dir = scratch_dir("heapscope-leaks-plot-");
    let out = dir.path().join("out.svg");
    leaks_run(&[
        series().dumps_dir.as_os_str(),
        OsStr::new("--plot"),
        out.as_os_str(),
        OsStr::new("-q"),
    ])
    .ok();
    let svg = fs::read_to_string(&out).expect("no SVG written");
    assert!(svg.contains("<svg"), "not an SVG");
    assert!(svg.contains("LEAK"), "the SVG labels no leak");
}

#[test]
fn plot_with_an_unknown_extension_is_a_usage_error() {
    let dir = scratch_dir("heapscope-leaks-plot-");
    let out = dir.path().join("out.txt");
    let run = leaks_run(&[
        series().dumps_dir.as_os_str(),
        OsStr::new("--plot"),
        out.as_os_str(),
    ]);
    run.usage_error();
    assert!(
        run.stderr.contains(".png") && run.stderr.contains(".svg"),
        "the message should name the formats: {}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(!out.exists(), "a file was written anyway");
}

// ---------------------------------------------------------------------------
// Inputs and their order.
// ---------------------------------------------------------------------------

#[test]
fn a_glob_equals_the_directory() {
    let s = series();
    let pattern = format!("{}/heap-*.dump", s.dumps_dir.display());
    let v = leaks_json(&[pattern.as_str()]);
    assert_eq!(normalized(&v), normalized(report()));
}

#[test]
fn files_listed_in_reverse_are_ordered_by_name_timestamps() {
    let s = series();
    let reversed: Vec<&OsStr> = s.dumps.iter().rev().map(|p| p.as_os_str()).collect();
    let v = leaks_json(&reversed);
    assert_eq!(v["ordered_by"], report()["ordered_by"]);
    assert!(
        v["ordered_by"].as_str().unwrap().contains("file names"),
        "{}",
        v["ordered_by"]
    );
    assert_eq!(normalized(&v), normalized(report()));
}

/// The dumps linked as `a.dump`, `b.dump`... in time order.
fn renamed_series(prefix: &str) -> (TempDir, Vec<PathBuf>) {
    let dir = scratch_dir(prefix);
    let files: Vec<PathBuf> = series()
        .dumps
        .iter()
        .enumerate()
        .map(|(i, src)| {
            let dst = dir
                .path()
                .join(format!("{}.dump", (b'a' + i as u8) as char));
            link_or_copy(src, &dst);
            dst
        })
        .collect();
    (dir, files)
}

fn times_arg(n: usize) -> String {
    (0..n)
        .map(|i| (i as i64 * INTERVAL).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn renamed_dumps_with_time_flag_give_the_same_leaks() {
    let (dir, files) = renamed_series("heapscope-leaks-renamed-");
    let times = times_arg(files.len());
    let v = leaks_json(&[
        dir.path().as_os_str(),
        OsStr::new("--time"),
        OsStr::new(&times),
    ]);
    assert!(
        v["ordered_by"].as_str().unwrap().contains("--time"),
        "{}",
        v["ordered_by"]
    );
    let p = only_process(&v);
    let full = only_process(report());
    assert_eq!(p["pid"], Value::Null);
    let want: Vec<i64> = (0..files.len() as i64).map(|i| i * INTERVAL).collect();
    assert_eq!(p["times"], serde_json::json!(want));
    assert_eq!(p["leaks"], full["leaks"]);
    assert_eq!(p["caches"], full["caches"]);
    assert_eq!(p["heap_bytes"], full["heap_bytes"]);
}

/// `--time` values belong to the dumps in the order given on the command
/// line, as in `heapscope leaks a.dump b.dump ... --time 0,600,...`.
#[test]
fn time_flag_follows_the_order_the_files_are_listed_in() {
    let (_dir, files) = renamed_series("heapscope-leaks-listed-");
    // f.dump (the newest) first, with the largest time.
    let listed: Vec<&OsStr> = files.iter().rev().map(|p| p.as_os_str()).collect();
    let times: Vec<String> = (0..files.len())
        .rev()
        .map(|i| (i as i64 * INTERVAL).to_string())
        .collect();
    let times = times.join(",");
    let mut args = listed;
    args.extend([OsStr::new("--time"), OsStr::new(&times)]);
    let v = leaks_json(&args);
    let p = only_process(&v);
    assert_eq!(
        ranked_leak_sites(p),
        ranked_leak_sites(only_process(report())),
        "f.dump was given time {}, a.dump time 0",
        (files.len() as i64 - 1) * INTERVAL
    );
}

#[test]
fn without_timestamps_or_time_flag_dumps_are_ordered_by_mtime() {
    let s = series();
    let dir = scratch_dir("heapscope-leaks-mtime-");
    let n = s.dumps.len();
    // Names in the reverse of time order, so that name order would reverse the series.
    for (i, src) in s.dumps.iter().enumerate() {
        let dst = dir
            .path()
            .join(format!("{}.dump", (b'a' + (n - 1 - i) as u8) as char));
        fs::copy(src, &dst).unwrap();
        let t =
            SystemTime::UNIX_EPOCH + Duration::from_secs((BASE_TIME + INTERVAL * i as i64) as u64);
        fs::File::options()
            .write(true)
            .open(&dst)
            .and_then(|f| f.set_modified(t))
            .unwrap_or_else(|e| panic!("set mtime of {}: {e}", dst.display()));
    }
    let v = leaks_json(&[dir.path()]);
    assert!(
        v["ordered_by"].as_str().unwrap().contains("modification"),
        "{}",
        v["ordered_by"]
    );
    let p = only_process(&v);
    let full = only_process(report());
    assert_eq!(p["times"], s.expected["times"]);
    let names: Vec<Value> = normalized(&v)["processes"][0]["dumps"]
        .as_array()
        .unwrap()
        .clone();
    let want: Vec<Value> = (0..n)
        .map(|i| Value::from(format!("{}.dump", (b'a' + (n - 1 - i) as u8) as char)))
        .collect();
    assert_eq!(names, want);
    assert_eq!(p["leaks"], full["leaks"]);
    assert_eq!(p["caches"], full["caches"]);
}

#[test]
fn a_wrong_number_of_time_values_is_a_usage_error() {
    let (dir, files) = renamed_series("heapscope-leaks-badtime-");
    let times = times_arg(files.len() - 1);
    let run = leaks_run(&[
        dir.path().as_os_str(),
        OsStr::new("--time"),
        OsStr::new(&times),
    ]);
    run.usage_error();
    assert!(run.stderr.contains("--time"), "{}", run.stderr);
}

#[test]
fn a_directory_without_dumps_is_a_usage_error() {
    let dir = scratch_dir("heapscope-leaks-empty-");
    // JSON files that are not heap dumps are passed over.
    fs::write(dir.path().join("expected.json"), "{\n  \"schema\": 1\n}\n").unwrap();
    fs::write(dir.path().join("notes.txt"), "hello\n").unwrap();
    let run = leaks_run(&[dir.path()]);
    run.usage_error();
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);

    let missing = dir.path().join("nothing-here");
    leaks_run(&[missing.as_path()]).usage_error();
    let pattern = format!("{}/heap-*.dump", dir.path().display());
    leaks_run(&[pattern.as_str()]).usage_error();
}

#[test]
fn the_directory_form_skips_expected_json() {
    // expected.json lies next to the dumps; it must not count as a dump.
    let p = only_process(report());
    assert_eq!(list(p, "dumps").len(), series().dumps.len());
    assert!(list(p, "dumps")
        .iter()
        .all(|d| d.as_str().unwrap().ends_with(".dump")));
}

#[test]
fn dumps_of_two_processes_are_analysed_apart() {
    let s = series();
    let dir = scratch_dir("heapscope-leaks-pids-");
    let pid = s.pid();
    let other = pid + 100_000;
    for src in &s.dumps {
        let name = src.file_name().unwrap().to_string_lossy().into_owned();
        link_or_copy(src, &dir.path().join(&name));
        let renamed = name.replacen(&format!("heap-{pid}-"), &format!("heap-{other}-"), 1);
        assert_ne!(renamed, name, "no pid in {name}");
        link_or_copy(src, &dir.path().join(renamed));
    }
    let v = leaks_json(&[dir.path()]);
    let ps = v["processes"].as_array().expect("processes");
    assert_eq!(ps.len(), 2, "{v:#}");
    let pids: Vec<u64> = ps.iter().map(|p| p["pid"].as_u64().expect("pid")).collect();
    assert_eq!(pids, vec![pid, other]);
    let full = only_process(report());
    for p in ps {
        assert_eq!(list(p, "dumps").len(), s.dumps.len());
        assert_eq!(p["times"], s.expected["times"]);
        assert_eq!(ranked_leak_sites(p), ranked_leak_sites(full));
        assert_eq!(p["caches"], full["caches"]);
    }
}

// ---------------------------------------------------------------------------
// Table output.
// ---------------------------------------------------------------------------

#[test]
fn table_lists_leak_suspects_and_caches() {
    let s = series();
    let run = leaks_run(&[s.dumps_dir.as_os_str(), OsStr::new("-q")]);
    let text = run.ok().stdout_text();
    let leaks_at = text
        .find("Leak suspects")
        .unwrap_or_else(|| panic!("no \"Leak suspects\":\n{text}"));
    let caches_at = text
        .find("Caches")
        .unwrap_or_else(|| panic!("no \"Caches\":\n{text}"));
    assert!(leaks_at < caches_at, "{text}");
    let (suspects, caches) = text.split_at(caches_at);
    for site in s.sites("leaks") {
        let loc = site["location"].as_str().unwrap();
        assert!(
            suspects.contains(loc),
            "leak location {loc} missing:\n{text}"
        );
    }
    for site in s.sites("caches") {
        let loc = site["location"].as_str().unwrap();
        assert!(
            caches.contains(loc),
            "cache location {loc} missing:\n{caches}"
        );
    }
    assert!(
        text.contains("ordered by the unix timestamps in the file names"),
        "{text}"
    );
}
