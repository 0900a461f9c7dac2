//! `heapscope bench --report memory|gc`: a Rack app whose request allocates a known number of
//! Strings at a known line, run by bench under the agent; the report covers the measured
//! requests only (not the warm-up), in total and per request.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{require_ruby, scratch_dir};

/// app.rb: each request allocates 25 Strings at line 7 and keeps 1 at line 10; `/many`
/// allocates 20,000 more at line 13 (enough for GC to run).
const APP: &str = r#"# frozen_string_literal: false
KEPT = []
APP = lambda do |env|
  i = 0
  while i < 25
    # Not frozen: each evaluation allocates one String.
    _s = "bench-report-string" # line 7
    i += 1
  end
  KEPT << "kept-string" # line 10
  if env["PATH_INFO"] == "/many"
    n = 0
    (n += 1; _x = "churn") while n < 20_000 # line 13
  end
  [200, { "content-type" => "text/plain" }, ["ok"]]
end
"#;

fn write_app(dir: &Path) -> String {
    std::fs::write(dir.join("app.rb"), APP).unwrap();
    std::fs::write(dir.join("config.ru"), "require_relative \"app\"\nrun APP\n").unwrap();
    dir.join("config.ru").to_string_lossy().into_owned()
}

fn bench(args: &[&str]) -> (Output, String, String) {
    require_ruby();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_heapscope"));
    cmd.arg("bench").args(args).arg("-q");
    for k in [
        "TEST_COUNT",
        "PATH_TO_HIT",
        "REQUEST_METHOD",
        "REQUEST_BODY",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("HEAPSCOPE_RUBY_LIB", common::agent::ruby_lib());
    let started = Instant::now();
    let out = cmd.output().expect("run heapscope bench");
    assert!(started.elapsed() < Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// The table line naming `what`, split into its columns.
fn row<'a>(stdout: &'a str, section: &str, what: &str) -> Vec<&'a str> {
    let start = stdout
        .find(section)
        .unwrap_or_else(|| panic!("no {section:?} in:\n{stdout}"));
    stdout[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .find(|l| l.ends_with(what))
        .unwrap_or_else(|| panic!("no {what:?} under {section:?} in:\n{stdout}"))
        .split_whitespace()
        .collect()
}

#[test]
fn memory_report_counts_the_measured_requests_per_location() {
    if !common::agent::puma_usable() {
        return;
    }
    let dir = scratch_dir("heapscope-bench-report-");
    let config = write_app(dir.path());
    let out_dir = dir.path().join("out");
    let html = dir.path().join("report.html");
    let (out, stdout, stderr) = bench(&[
        "--rackup",
        &config,
        "-n",
        "20",
        "--warmup",
        "5",
        "--concurrency",
        "2",
        "--report",
        "memory",
        "--report-out",
        html.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("memory report over the 20 measured requests"),
        "{stdout}"
    );
    let app = dir.path().canonicalize().unwrap().join("app.rb");
    let app = app.display();
    // 25 per request at line 7, 20 requests: the warm-up's 5 are not counted.
    assert_eq!(
        row(
            &stdout,
            "allocated objects by location",
            &format!("{app}:7")
        ),
        ["500", "25.00/req", &format!("{app}:7")]
    );
    // The String kept by each measured request is retained.
    assert_eq!(
        row(
            &stdout,
            "retained objects by location",
            &format!("{app}:10")
        ),
        ["20", "1.00/req", &format!("{app}:10")]
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report/memory.json")).unwrap())
            .unwrap();
    assert_eq!(
        json["tables"]["allocated"]["objects"]["location"][format!("{app}:7")],
        500
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page:.200}");
    assert!(page.contains(&format!("{app}:7")));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out_dir.join("report/memory.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
}

#[test]
fn gc_report_counts_gc_runs_and_allocations_per_request() {
    if !common::agent::puma_usable() {
        return;
    }
    let dir = scratch_dir("heapscope-bench-report-");
    let config = write_app(dir.path());
    let out_dir = dir.path().join("out");
    let json_out = dir.path().join("gc.json");
    let (out, stdout, stderr) = bench(&[
        "--rackup",
        &config,
        "-n",
        "30",
        "--warmup",
        "3",
        "--path",
        "/many",
        "--report",
        "gc",
        "--report-out",
        json_out.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("gc report over the 30 measured requests"),
        "{stdout}"
    );
    let line = |label: &str| -> Vec<String> {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label:?} in:\n{stdout}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    // "objects allocated  N total  P per request": at least the 20,026 Strings of each request.
    let allocated = line("objects allocated");
    let per: f64 = allocated[allocated.len() - 3]
        .replace(',', "")
        .parse()
        .unwrap();
    assert!(per >= 20_026.0, "{allocated:?}");
    let minor = line("minor GC runs");
    let total: u64 = minor[3].replace(',', "").parse().unwrap();
    assert!(total > 0, "{minor:?}\n{stdout}");
    assert!(stdout.contains("GC time"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_out).unwrap()).unwrap();
    assert_eq!(json["requests"], 30);
    let stat = &json["stat"]["total_allocated_objects"];
    let delta = stat["after"].as_f64().unwrap() - stat["before"].as_f64().unwrap();
    assert!(delta >= 30.0 * 20_026.0, "{stat}");
}

#[test]
fn a_report_needs_an_app_bench_starts() {
    let dir = scratch_dir("heapscope-bench-report-");
    let out_dir = dir.path().join("never");
    let (out, stdout, stderr) = bench(&[
        "--url",
        "http://127.0.0.1:3000/",
        "--report",
        "gc",
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("--report needs --rackup"), "{stderr}");
    assert!(!out_dir.exists());
    let config = write_app(dir.path());
    let (out, _, stderr) = bench(&[
        "--rackup",
        &config,
        "--report",
        "gc",
        "--report-out",
        "gc.html",
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("give a file ending in .txt, .json"),
        "{stderr}"
    );
    assert!(!out_dir.exists());
}

/// An app that holds a report of its own: bench's cannot start, says why and exits 2, and no
/// report (the app's, stopped by mistake) is passed off as the bench's.
#[test]
fn a_report_that_cannot_start_is_an_error_not_a_wrong_answer() {
    if !common::agent::puma_usable() {
        return;
    }
    let dir = scratch_dir("heapscope-bench-report-");
    write_app(dir.path());
    std::fs::write(
        dir.path().join("config.ru"),
        "require_relative \"app\"\nHeapscope.start_report\nrun APP\n",
    )
    .unwrap();
    let config = dir.path().join("config.ru");
    let out_dir = dir.path().join("out");
    let (out, stdout, stderr) = bench(&[
        "--rackup",
        config.to_str().unwrap(),
        "-n",
        "5",
        "--report",
        "memory",
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("report: heapscope: the bench report failed")
            && stdout.contains("already running"),
        "{stdout}"
    );
    assert!(
        stderr.contains("the memory report was not made"),
        "{stderr}"
    );
    assert!(!out_dir.join("report/memory.json").exists());
}
