//! `heapscope trend` end to end: the log fixtures of every format, and real
//! recorded series of Ruby programs (tests/ruby/memory) through both the
//! agent's statistics and the Rails-style MEMORY lines they print.

mod common;

use std::path::{Path, PathBuf};

use common::{heapscope, repo_root};
use serde_json::Value;

fn memlog(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/memlogs").join(name)
}

fn trend_json(logs: &[&Path], extra: &[&str]) -> Value {
    let mut args: Vec<String> = vec!["trend".into()];
    args.extend(logs.iter().map(|p| p.display().to_string()));
    args.extend(["--format".into(), "json".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = heapscope(&args);
    assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
    serde_json::from_slice(&run.stdout).unwrap()
}

fn verdicts(v: &Value) -> Vec<(Option<u64>, String)> {
    v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["pid"].as_u64(),
                p["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn fixtures_of_every_format() {
    let v = trend_json(&[&memlog("watch.jsonl")], &[]);
    assert_eq!(
        verdicts(&v),
        [
            (Some(4242), "growing".into()),
            (Some(4243), "growing".into())
        ]
    );
    let v = trend_json(&[&memlog("watch.csv")], &[]);
    assert_eq!(verdicts(&v), [(Some(4242), "levelled off".into())]);
    let v = trend_json(&[&memlog("gc-4242.jsonl")], &[]);
    assert_eq!(verdicts(&v), [(Some(4242), "growing".into())]);
    let p = &v["processes"][0];
    assert_eq!(p["boundary"], "minima after GC");
    let per_1k = p["slope_per_1000_requests"].as_f64().unwrap();
    assert!((per_1k / 1048576.0 - 30.0).abs() < 1.0, "{per_1k}");
    let v = trend_json(&[&memlog("rails.log")], &[]);
    assert_eq!(
        verdicts(&v),
        [(Some(4242), "growing".into()), (Some(4243), "flat".into())]
    );
    let v = trend_json(&[&memlog("derailed.txt")], &[]);
    assert_eq!(verdicts(&v), [(Some(31337), "growing".into())]);
    assert!(v["processes"][0]["slope_per_hour"].is_null());
    assert!(v["processes"][0]["slope_per_sample"].as_f64().unwrap() > 1e6);
    // --pid and --metric.
    let v = trend_json(
        &[&memlog("rails.log")],
        &["--pid", "4243", "--metric", "live-objects"],
    );
    assert_eq!(verdicts(&v), [(Some(4243), "flat".into())]);
    assert_eq!(v["processes"][0]["metric"], "live-objects");
}

#[test]
fn fail_if_growing_and_errors() {
    let growing = memlog("gc-4242.jsonl").display().to_string();
    let flat = memlog("watch.csv").display().to_string();
    assert_eq!(
        heapscope(&["trend", &growing, "--fail-if-growing"]).code,
        Some(1)
    );
    assert_eq!(
        heapscope(&["trend", &flat, "--fail-if-growing"]).code,
        Some(0)
    );
    let table = heapscope(&["trend", &growing]);
    assert_eq!(table.code, Some(0));
    assert!(table.stdout_text().contains("growing"));

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.log");
    std::fs::write(&junk, b"\xff\xfe not a log\nhello\n").unwrap();
    let run = heapscope(&["trend", junk.to_str().unwrap()]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("no memory samples found"),
        "{}",
        run.stderr
    );
    let run = heapscope(&["trend", &flat, "--pid", "1"]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("pid 1"), "{}", run.stderr);
    let run = heapscope(&[
        "trend",
        &memlog("derailed.txt").display().to_string(),
        "-m",
        "pss",
    ]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("pss"), "{}", run.stderr);
}

/// Runs a program of tests/ruby/memory with the agent's statistics every
/// 50 ms; returns (stats file, Rails-style log).
fn record(program: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let stats = dir.join(format!("{program}-gc.jsonl"));
    let log = dir.join(format!("{program}.log"));
    let out = common::agent::ruby()
        .current_dir(dir)
        .arg("-rheapscope/autostart")
        .arg(repo_root().join(format!("tests/ruby/memory/{program}.rb")))
        .env("HEAPSCOPE_STATS_INTERVAL", "0.05")
        .env("HEAPSCOPE_STATS_PATH", &stats)
        .env("HEAPSCOPE_PROFILE", "0")
        .env("RUN_SECONDS", "4")
        .output()
        .expect("run ruby");
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&log, &out.stdout).unwrap();
    (stats, log)
}

fn verdict_of(log: &Path, metric: &str) -> String {
    let v = trend_json(&[log], &["--metric", metric]);
    let rows = verdicts(&v);
    assert_eq!(rows.len(), 1, "{v}");
    rows[0].1.clone()
}

#[test]
fn recorded_leak_is_growing() {
    let dir = tempfile::tempdir().unwrap();
    let (stats, log) = record("grows", dir.path());
    for file in [&stats, &log] {
        for metric in ["rss", "live-objects"] {
            assert_eq!(
                verdict_of(file, metric),
                "growing",
                "{} {metric}",
                file.display()
            );
        }
    }
    // Both logs together: the same pid, one process.
    let v = trend_json(&[&stats, &log], &[]);
    assert_eq!(v["processes"].as_array().unwrap().len(), 1);
}

#[test]
fn recorded_bounded_cache_is_not_growing() {
    let dir = tempfile::tempdir().unwrap();
    let (stats, log) = record("bounded_cache", dir.path());
    for file in [&stats, &log] {
        for metric in ["rss", "live-objects"] {
            let v = verdict_of(file, metric);
            assert!(
                v == "levelled off" || v == "flat",
                "{} {metric}: {v}",
                file.display()
            );
        }
    }
    let run = heapscope(&["trend", stats.to_str().unwrap(), "--fail-if-growing"]);
    assert_eq!(run.code, Some(0), "{}", run.stdout_text());
}
