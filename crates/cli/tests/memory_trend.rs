//! `heapscope trend` end to end: the log fixtures of every format (and a
//! Heroku log written here: no Ruby here writes one), and real recorded
//! series of Ruby programs (tests/ruby/memory) through both the agent's
//! statistics and the Rails-style MEMORY lines they print, with where the
//! growth is (the Ruby heap, or outside it).

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
    // Objects pile up in the Ruby heap: RSS and live objects both grow.
    for file in [&stats, &log] {
        let v = trend_json(&[file], &[]);
        let site = &v["processes"][0]["growth_site"];
        assert_eq!(site["site"], "ruby_heap", "{}: {site}", file.display());
        assert_eq!(site["live_objects"]["verdict"], "growing");
        assert!(site["advice"].as_str().unwrap().contains("heapscope leaks"));
    }
    let table = heapscope(&["trend", stats.to_str().unwrap()]).stdout_text();
    assert!(table.contains("a leak in the Ruby heap"), "{table}");
    assert!(!table.contains("outside the Ruby heap"), "{table}");
}

/// A program whose C-level mallocs leak (tests/ruby/memory/native_growth.rb)
/// run under `heapscope run`: RSS grows, live objects do not, and trend says
/// the growth is outside the Ruby heap, with advice, in text and JSON.
#[test]
fn recorded_native_growth_is_outside_the_ruby_heap() {
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("gc-native.jsonl");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .current_dir(dir.path())
        .args([
            "run",
            "--no-profile",
            "--stats-interval",
            "0.05",
            "--stats-path",
        ])
        .arg(&stats)
        .arg("--runtime-dir")
        .arg(dir.path().join("run"))
        .args(["--", "ruby"])
        .arg(repo_root().join("tests/ruby/memory/native_growth.rb"))
        .env("HEAPSCOPE_RUBY_LIB", common::agent::ruby_lib())
        .env("RUN_SECONDS", "4")
        .output()
        .expect("run heapscope run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = dir.path().join("native.log");
    std::fs::write(&log, &out.stdout).unwrap();
    for file in [&stats, &log] {
        assert_eq!(verdict_of(file, "rss"), "growing", "{}", file.display());
        let live = verdict_of(file, "live-objects");
        assert!(
            live == "flat" || live == "levelled off",
            "{}: {live}",
            file.display()
        );
        for metric in ["rss", "live-objects"] {
            let v = trend_json(&[file], &["--metric", metric]);
            let site = &v["processes"][0]["growth_site"];
            assert_eq!(
                site["site"],
                "outside_ruby_heap",
                "{}: {site}",
                file.display()
            );
            assert_eq!(site["bytes_metric"], "rss");
            assert_eq!(site["bytes"]["verdict"], "growing");
            assert!(site["advice"]
                .as_str()
                .unwrap()
                .contains("MALLOC_ARENA_MAX=2"));
        }
    }
    let table = heapscope(&["trend", stats.to_str().unwrap()]).stdout_text();
    assert!(
        table.contains("the growth is outside the Ruby heap, which heap dumps do not show"),
        "{table}"
    );
    assert!(table.contains("jemalloc"), "{table}");
    assert!(!table.contains("a leak in the Ruby heap"), "{table}");
}

/// Heroku's log-runtime-metrics lines, as `heroku logs` prints them among
/// router and app lines: one series per dyno, RSS from sample#memory_rss.
fn heroku_log(dir: &Path) -> PathBuf {
    let mut text = String::new();
    let start = 1_796_119_200u64; // 2026-12-01T10:00:00Z
    for i in 0..60u64 {
        let t = start + 20 * i;
        let stamp = |offset: u64| {
            let s = t + offset;
            let (h, m, sec) = (s / 3600 % 24, s / 60 % 60, s % 60);
            format!("2026-12-01T{h:02}:{m:02}:{sec:02}.{:06}+00:00", 123_456 + i)
        };
        // web.1 leaks 2 MiB a sample (with a sawtooth); web.2 stays level.
        let web1 = 300.0 + 2.0 * i as f64 + (i % 3) as f64 * 5.0;
        let web2 = 280.0 + (i % 4) as f64 * 3.0;
        for (dyno, id, rss) in [("web.1", "abcd", web1), ("web.2", "efgh", web2)] {
            text.push_str(&format!(
                "{} heroku[{dyno}]: source={dyno} dyno=heroku.1234.{id} \
                 sample#memory_total={:.2}MB sample#memory_rss={rss:.2}MB \
                 sample#memory_cache=12.20MB sample#memory_swap=0.00MB \
                 sample#memory_pgpgin={}pages sample#memory_pgpgout={}pages \
                 sample#memory_quota=512.00MB\n",
                stamp(0),
                rss + 12.2,
                348_836 + 100 * i,
                343_403 + 90 * i,
            ));
            text.push_str(&format!(
                "{} heroku[{dyno}]: source={dyno} dyno=heroku.1234.{id} sample#load_avg_1m=0.01 \
                 sample#load_avg_5m=0.02 sample#load_avg_15m=0.05\n",
                stamp(1)
            ));
        }
        text.push_str(&format!(
            "{} heroku[router]: at=info method=GET path=\"/orders\" host=shop.herokuapp.com \
             request_id=5f1c fwd=\"203.0.113.9\" dyno=web.1 connect=0ms service=31ms status=200 \
             bytes=1834 protocol=https\n\
             {} app[web.1]: I, [2026-12-01T10:00:02.000000 #4]  INFO -- : Completed 200 OK in 25ms\n",
            stamp(2),
            stamp(3),
        ));
    }
    let path = dir.join("heroku.log");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn heroku_runtime_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let log = heroku_log(dir.path());
    let v = trend_json(&[&log], &[]);
    let rows: Vec<(String, String)> = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["label"].as_str().unwrap().to_string(),
                p["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("web.1".to_string(), "growing".to_string()),
            ("web.2".to_string(), "flat".to_string())
        ]
    );
    let web1 = &v["processes"][0];
    assert!(web1["pid"].is_null());
    assert_eq!(web1["samples"], 60);
    // 2 MiB every 20 s: 360 MiB an hour.
    let per_hour = web1["slope_per_hour"].as_f64().unwrap() / 1048576.0;
    assert!((per_hour - 360.0).abs() < 20.0, "{per_hour}");
    assert!((web1["span_seconds"].as_f64().unwrap() - 1180.0).abs() < 1.0);
    assert!((web1["first"].as_f64().unwrap() / 1048576.0 - 300.0).abs() < 0.01);
    // No live objects in these lines: nothing to say about where.
    assert!(web1["growth_site"].is_null());
    // Router and app lines are not warned about.
    let run = heapscope(&["trend", log.to_str().unwrap()]);
    assert_eq!(run.code, Some(0));
    assert_eq!(run.stderr, "", "{}", run.stderr);
    assert!(run.stdout_text().contains("web.1"), "{}", run.stdout_text());
}

/// The table's wording: thousands separators for objects, MiB only for
/// bytes, a footnote that says one thing, and no "0.0 s" span for derailed
/// logs, which have no clock.
#[test]
fn table_wording() {
    let gc = memlog("gc-4242.jsonl").display().to_string();
    let objects = heapscope(&["trend", &gc, "--metric", "live-objects"]).stdout_text();
    assert!(objects.contains("+14,400,000 objects/h"), "{objects}");
    assert!(!objects.contains("MB = MiB"), "{objects}");
    assert!(!objects.contains("MiB"), "{objects}");
    let rss = heapscope(&["trend", &gc]).stdout_text();
    assert!(rss.contains("not of raw values; MB = MiB"), "{rss}");

    let derailed = memlog("derailed.txt").display().to_string();
    let t = heapscope(&["trend", &derailed]).stdout_text();
    assert!(t.contains("30 samples, no clock"), "{t}");
    assert!(!t.contains("0.0 s"), "{t}");
    let v = trend_json(&[&memlog("derailed.txt")], &[]);
    assert!(v["processes"][0]["span_seconds"].is_null());
    assert_eq!(v["processes"][0]["has_clock"], false);

    // Too few samples for a low boundary (and, for derailed, no clock).
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "PID: 7\n10.0\n10.5\n11.0\n").unwrap();
    let t = heapscope(&["trend", short.to_str().unwrap()]).stdout_text();
    assert!(t.contains("3 samples, no clock"), "{t}");
    assert!(t.contains("slopes are of the raw samples"), "{t}");
    assert!(!t.contains("of the low boundary"), "{t}");
    assert!(!t.contains("not of raw values"), "{t}");
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
