//! `heapscope bench` end to end: Puma started on a loopback port with the Rack apps of
//! tests/ruby/bench (one leaks per request, one fills a bounded cache), memory recorded and
//! plotted, the verdicts, the agent's heap dumps every K requests, and non-loopback targets
//! refused.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use heapscope_analysis::memseries::parse_log;
use heapscope_analysis::memtrend::{memory_trend, MemVerdict, Metric};
use heapscope_export::memplot::{legend_key, MemPlotLine, KEY_LIVE, KEY_RSS};
use serde_json::Value;

use common::{repo_root, require_ruby, scratch_dir};

fn rackup(name: &str) -> String {
    repo_root()
        .join("tests/ruby/bench")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// `heapscope bench ARGS` (it bounds itself: --timeout and Puma's boot timeout).
fn bench(args: &[&str], env: &[(&str, &Path)]) -> Output {
    require_ruby();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_heapscope"));
    cmd.arg("bench").args(args);
    for k in [
        "TEST_COUNT",
        "PATH_TO_HIT",
        "REQUEST_METHOD",
        "REQUEST_BODY",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.output().expect("run heapscope bench");
    assert!(started.elapsed() < Duration::from_secs(60));
    out
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn records(dir: &Path) -> Vec<Value> {
    let t = std::fs::read_to_string(dir.join("memory.jsonl")).unwrap();
    t.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// memory.png is a PNG of the expected size.
fn check_png(dir: &Path) {
    let png = std::fs::read(dir.join("memory.png")).expect("memory.png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert!(w >= 600 && h >= 400, "{w}x{h}");
    assert!(png.len() > 10_000, "{} bytes: nothing drawn?", png.len());
}

/// The legend key of the chart of the records (what `bench` and `heapscope
/// plot` draw from them), and `heapscope plot`'s SVG of them.
fn legend_of(dir: &Path) -> (Vec<&'static str>, String) {
    let log = parse_log(
        "memory.jsonl",
        &std::fs::read(dir.join("memory.jsonl")).unwrap(),
    );
    let nan = |v: Option<u64>| v.map_or(f64::NAN, |v| v as f64);
    let lines: Vec<MemPlotLine> = log
        .series
        .iter()
        .map(|s| MemPlotLine {
            label: s.label.clone(),
            times: s.samples.iter().map(|x| x.time).collect(),
            rss_bytes: s.samples.iter().map(|x| nan(x.rss_bytes)).collect(),
            live_objects: s.samples.iter().map(|x| nan(x.live_objects)).collect(),
        })
        .collect();
    let svg = dir.join("legend.svg");
    let run = common::heapscope(&[
        "plot",
        dir.join("memory.jsonl").to_str().unwrap(),
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    (legend_key(&lines), std::fs::read_to_string(&svg).unwrap())
}

fn verdict_of(dir: &Path) -> MemVerdict {
    let log = parse_log(
        "memory.jsonl",
        &std::fs::read(dir.join("memory.jsonl")).unwrap(),
    );
    assert_eq!(log.series.len(), 1, "single-mode Puma is one process");
    memory_trend(&log.series[0], Metric::Rss).verdict
}

#[test]
fn leaking_and_bounded_apps_get_the_right_verdicts() {
    let dir = scratch_dir("heapscope-bench-");
    let (leak_dir, bounded_dir) = (dir.path().join("leak"), dir.path().join("bounded"));
    let run = |app: &str, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "--rackup",
            app,
            "-n",
            "2000",
            // Past the boot-time growth of the Ruby heap, which a 4-second run
            // would otherwise see as growth in the bounded app too.
            "--warmup",
            "1000",
            "--concurrency",
            "2",
            "--interval",
            "0.05",
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        bench(&args, &[])
    };
    let (leak_app, bounded_app) = (rackup("leaking.ru"), rackup("bounded.ru"));
    let (leak, bounded) = std::thread::scope(|s| {
        let l = s.spawn(|| run(&leak_app, &leak_dir, &["--fail-if-growing"]));
        let b = s.spawn(|| run(&bounded_app, &bounded_dir, &["--fail-if-growing"]));
        (l.join().unwrap(), b.join().unwrap())
    });

    let (lout, lerr) = text(&leak);
    assert_eq!(leak.status.code(), Some(1), "{lout}\n{lerr}");
    assert!(lout.contains("requests: 2,000 in"), "{lout}");
    assert!(lout.contains("statuses: 200: 2,000\n"), "{lout}");
    assert!(lout.contains(": growing (confidence"), "{lout}");
    assert!(lout.contains("per 1,000 requests"), "{lout}");
    let (bout, berr) = text(&bounded);
    assert_eq!(bounded.status.code(), Some(0), "{bout}\n{berr}");
    assert!(!bout.contains("growing"), "{bout}");

    for (d, expected) in [(&leak_dir, true), (&bounded_dir, false)] {
        let recs = records(d);
        assert!(recs.len() >= 20, "{} samples", recs.len());
        let pid = recs[0]["pid"].as_u64().unwrap();
        assert!(recs.iter().all(|r| r["pid"] == pid), "one process only");
        assert_eq!(recs[0]["requests"], 0);
        assert_eq!(recs.last().unwrap()["requests"], 2000);
        let counts: Vec<u64> = recs
            .iter()
            .map(|r| r["requests"].as_u64().unwrap())
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        for r in &recs {
            let (rss, pss, uss) = (
                r["rss_bytes"].as_u64().unwrap(),
                r["pss_bytes"].as_u64().unwrap(),
                r["uss_bytes"].as_u64().unwrap(),
            );
            assert!(rss >= pss && pss >= uss && uss > 0, "{r}");
        }
        check_png(d);
        // Without --agent there are no live objects: the legend says so.
        let (key, svg) = legend_of(d);
        assert_eq!(key, [KEY_RSS]);
        assert!(!svg.contains(KEY_LIVE), "the legend lists live objects");
        assert!(std::fs::read_to_string(d.join("puma.log"))
            .unwrap()
            .contains("Listening on http://127.0.0.1:"));
        // The recorded series read back through the trend's own parser agrees.
        assert_eq!(verdict_of(d) == MemVerdict::Growing, expected);
        // Puma was stopped.
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "Puma {pid} still runs"
        );
    }
}

#[test]
fn non_loopback_targets_are_refused_before_anything_is_sent() {
    let dir = scratch_dir("heapscope-bench-");
    for url in [
        "http://10.0.0.1/",
        "http://example.com:3000/",
        "https://127.0.0.1/",
    ] {
        let out_dir = dir.path().join("never");
        let out = bench(
            &["--url", url, "-n", "10", "-o", out_dir.to_str().unwrap()],
            &[],
        );
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{url}: {stdout}{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(stderr.contains("loopback"), "{stderr}");
        assert!(!out_dir.exists(), "{url}: the run started");
    }
}

#[test]
fn bad_ports_and_endless_body_files_are_refused_before_anything_is_sent() {
    let dir = scratch_dir("heapscope-bench-");
    let out_dir = dir.path().join("never");
    let o = out_dir.to_str().unwrap();
    // `:99999` used to become port 80.
    for url in ["http://localhost:99999/", "http://127.0.0.1:0/"] {
        let out = bench(&["--url", url, "-n", "10", "-o", o], &[]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{url}: {stdout}{stderr}");
        assert!(stderr.contains("is not a port"), "{stderr}");
        assert!(!out_dir.exists(), "{url}: the run started");
    }
    // A body file is read up to 64 MiB, not until memory runs out.
    let started = Instant::now();
    let url = "http://127.0.0.1:3000/";
    let out = bench(&["--url", url, "--body", "@/dev/zero", "-o", o], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("larger than 64 MiB"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!out_dir.exists());
}

#[test]
fn the_agent_dumps_every_k_requests_for_leaks() {
    let dir = scratch_dir("heapscope-bench-");
    let out_dir = dir.path().join("agent");
    let lib = common::agent::ruby_lib();
    let out = bench(
        &[
            "--rackup",
            &rackup("leaking.ru"),
            "-n",
            "2000",
            "--concurrency",
            "2",
            "--interval",
            "0.05",
            "--agent",
            "--dump-every",
            "500",
            "-o",
            out_dir.to_str().unwrap(),
        ],
        &[("HEAPSCOPE_RUBY_LIB", &lib)],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let dumps_dir = out_dir.join("dumps");
    assert!(
        stdout.contains(&format!("dumps: 4 in {}", dumps_dir.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "heapscope leaks {}/heap-*.dump",
            dumps_dir.display()
        )),
        "{stdout}"
    );
    // The agent's statistics are merged into the records.
    let recs = records(&out_dir);
    let with_stats = recs
        .iter()
        .filter(|r| r.get("heap_live_slots").is_some())
        .count();
    assert!(
        with_stats >= recs.len() / 2,
        "{with_stats} of {}",
        recs.len()
    );
    assert!(stdout.contains("live objects:"), "{stdout}");
    check_png(&out_dir);
    let (key, svg) = legend_of(&out_dir);
    assert_eq!(key, [KEY_RSS, KEY_LIVE]);
    assert!(svg.contains(KEY_LIVE));
    let mut dumps: Vec<_> = std::fs::read_dir(&dumps_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dumps.sort();
    assert_eq!(dumps.len(), 4, "{dumps:?}");
    for d in &dumps {
        let v = common::summary_json(d, &[]);
        assert!(common::sum_counts(&v) > 10_000, "{}", d.display());
    }
}
