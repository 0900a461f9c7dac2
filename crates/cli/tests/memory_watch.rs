//! `heapscope watch PID` on real Ruby processes (tests/ruby/watch): records while the program
//! runs, stopping when it exits, Ctrl-C losing nothing, CSV, descendants, the agent's
//! statistics merged, and the trend verdicts on what was recorded.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use heapscope_analysis::memseries::parse_log;
use heapscope_analysis::memtrend::{memory_trend, MemVerdict, Metric};
use serde_json::Value;

use common::process::Proc;
use common::{require_ruby, ruby_script, scratch_dir};

/// Waits for the program's first stdout line ("ready ...").
fn ready(p: &mut Proc) -> String {
    let out = p.child().stdout.take().expect("stdout is piped");
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    assert!(line.starts_with("ready"), "unexpected first line {line:?}");
    line.trim().to_string()
}

/// `ruby tests/ruby/watch/NAME ARGS` with stdout piped.
fn ruby(name: &str, args: &[&str]) -> Proc {
    require_ruby();
    let mut cmd = Command::new("ruby");
    cmd.arg(ruby_script(&format!("watch/{name}")))
        .args(args)
        .stdout(Stdio::piped());
    Proc::spawn(cmd)
}

fn watch(args: &[&str]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_heapscope"));
    cmd.arg("watch")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Proc::spawn(cmd)
}

/// Runs `heapscope watch` to the end (bounded) and returns its stderr.
fn watch_to_end(args: &[&str]) -> String {
    let mut w = watch(args);
    let status = w.wait_status(Duration::from_secs(30));
    let mut err = String::new();
    std::io::Read::read_to_string(w.child().stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "heapscope watch {args:?} failed: {err}");
    err
}

fn json_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "the last record is cut: {text:?}");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// RSS ≥ PSS ≥ USS > 0 and times increasing.
fn check_sane(records: &[Value], pid: u32) {
    let mut last_time = 0.0;
    for r in records {
        assert_eq!(num(r, "pid"), u64::from(pid));
        let (rss, pss, uss) = (
            num(r, "rss_bytes"),
            num(r, "pss_bytes"),
            num(r, "uss_bytes"),
        );
        assert!(rss >= pss && pss >= uss && uss > 0, "{r}");
        assert!(rss > 1 << 20 && rss < 1 << 32, "{r}");
        let t = r["time"].as_f64().unwrap();
        assert!(t > 1.6e9 && t >= last_time, "{r}");
        last_time = t;
    }
}

fn verdict(path: &Path) -> MemVerdict {
    let log = parse_log("watch", &std::fs::read(path).unwrap());
    assert_eq!(log.series.len(), 1, "{:?}", log.skipped);
    memory_trend(&log.series[0], Metric::Rss).verdict
}

fn out(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[test]
fn growing_and_bounded_programs_are_recorded_until_they_exit_with_the_right_verdicts() {
    let dir = scratch_dir("heapscope-watch-");
    let mut growing = ruby("growing.rb", &["3"]);
    let mut bounded = ruby("bounded.rb", &["3"]);
    ready(&mut growing);
    ready(&mut bounded);
    let (gp, bp) = (growing.pid, bounded.pid);
    let (gf, bf) = (
        out(dir.path(), "growing.jsonl"),
        out(dir.path(), "bounded.jsonl"),
    );
    let started = Instant::now();
    let (gs, bs) = (gp.to_string(), bp.to_string());
    let (gfs, bfs) = (gf.to_str().unwrap(), bf.to_str().unwrap());
    let g = std::thread::scope(|s| {
        let g = s.spawn(|| watch_to_end(&[&gs, "-o", gfs, "--interval", "0.05"]));
        let b = s.spawn(|| watch_to_end(&[&bs, "-o", bfs, "--interval", "0.05"]));
        b.join().unwrap();
        g.join().unwrap()
    });
    // The programs run 3 s and are not reaped by this test until later: watch stops on the
    // zombie too.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(g.contains("the process exited"), "{g}");
    assert!(g.contains("samples"), "{g}");
    growing.wait_status(Duration::from_secs(5));
    bounded.wait_status(Duration::from_secs(5));

    let grec = json_lines(&gf);
    let brec = json_lines(&bf);
    assert!(grec.len() >= 30, "{} samples", grec.len());
    assert!(brec.len() >= 30, "{} samples", brec.len());
    check_sane(&grec, gp);
    check_sane(&brec, bp);
    // Growing keeps ~6 MiB/s.
    let rise = num(grec.last().unwrap(), "rss_bytes") as i64 - num(&grec[0], "rss_bytes") as i64;
    assert!(rise > 8 << 20, "growing.rb rose by {rise} bytes only");
    assert_eq!(verdict(&gf), MemVerdict::Growing);
    let b = verdict(&bf);
    assert!(
        matches!(b, MemVerdict::Flat | MemVerdict::LevelledOff),
        "bounded.rb: {b:?}"
    );
}

#[test]
fn ctrl_c_stops_cleanly_without_losing_a_record() {
    let dir = scratch_dir("heapscope-watch-");
    let mut prog = ruby("growing.rb", &["20"]);
    ready(&mut prog);
    let f = out(dir.path(), "int.jsonl");
    let mut w = watch(&[
        &prog.pid.to_string(),
        "-o",
        f.to_str().unwrap(),
        "--interval",
        "0.01",
    ]);
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(w.pid as i32, libc::SIGINT) }, 0);
    let status = w.wait_status(Duration::from_secs(5));
    assert!(status.success(), "{status}");
    let mut err = String::new();
    std::io::Read::read_to_string(w.child().stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("interrupted"), "{err}");
    let records = json_lines(&f);
    assert!(records.len() >= 20, "{} records", records.len());
    check_sane(&records, prog.pid);
    // The summary counts what the file holds.
    assert!(
        err.contains(&format!("{} samples", records.len())),
        "{err} vs {} records",
        records.len()
    );
    // The program was left running.
    assert!(prog.exited().is_none());
}

#[test]
fn csv_with_children_has_a_record_per_process() {
    let dir = scratch_dir("heapscope-watch-");
    let mut prog = ruby("with_child.rb", &["1.5"]);
    let child: u32 = ready(&mut prog)["ready ".len()..].parse().unwrap();
    let f = out(dir.path(), "tree.csv");
    watch_to_end(&[
        &prog.pid.to_string(),
        "--children",
        "--format",
        "csv",
        "-o",
        f.to_str().unwrap(),
        "--interval",
        "0.05",
        "--duration",
        "1",
    ]);
    let text = std::fs::read_to_string(&f).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        &header[..5],
        ["time", "pid", "rss_bytes", "pss_bytes", "uss_bytes"]
    );
    assert!(header.contains(&"heap_live_slots") && header.contains(&"requests"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == header.len()));
    let of =
        |pid: u32| -> Vec<&Vec<&str>> { rows.iter().filter(|r| r[1] == pid.to_string()).collect() };
    let (parent_rows, child_rows) = (of(prog.pid), of(child));
    assert!(parent_rows.len() >= 10, "{text}");
    assert!(child_rows.len() >= 10, "{text}");
    assert_eq!(parent_rows.len() + child_rows.len(), rows.len());
    // The child holds 32 MiB of its own: its USS shows it.
    let uss: u64 = child_rows.last().unwrap()[4].parse().unwrap();
    assert!(uss > 30 << 20, "child USS {uss}");
    // No agent: its columns are empty.
    assert!(rows.iter().all(|r| r[5..].iter().all(|c| c.is_empty())));
    prog.wait_status(Duration::from_secs(5));
}

#[test]
fn the_agents_statistics_are_merged() {
    let dir = scratch_dir("heapscope-watch-");
    let runtime = dir.path().join("run");
    let mut cmd = common::agent::ruby();
    cmd.arg("-rheapscope/autostart")
        .arg(ruby_script("watch/growing.rb"))
        .arg("2")
        .current_dir(dir.path())
        .env("HEAPSCOPE_STATS_INTERVAL", "0.05")
        .env("HEAPSCOPE_PROFILE", "0")
        .env("HEAPSCOPE_RUNTIME_DIR", &runtime)
        .stdout(Stdio::piped());
    let mut prog = Proc::spawn(cmd);
    ready(&mut prog);
    let f = out(dir.path(), "agent.jsonl");
    watch_to_end(&[
        &prog.pid.to_string(),
        "-o",
        f.to_str().unwrap(),
        "--interval",
        "0.05",
        "--runtime-dir",
        runtime.to_str().unwrap(),
    ]);
    let records = json_lines(&f);
    let with_stats: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("heap_live_slots").is_some())
        .collect();
    assert!(
        with_stats.len() >= records.len() / 2,
        "{} of {} records have statistics",
        with_stats.len(),
        records.len()
    );
    for r in &with_stats {
        for k in [
            "heap_free_slots",
            "total_allocated_objects",
            "minor_gc_count",
        ] {
            num(r, k);
        }
        assert!(num(r, "heap_live_slots") > 1000);
    }
    // The newest values are copied: live slots grow with the program.
    let first = num(with_stats[0], "total_allocated_objects");
    let last = num(with_stats.last().unwrap(), "total_allocated_objects");
    assert!(last > first, "{first} → {last}");
    prog.wait_status(Duration::from_secs(5));
}

#[test]
fn refuses_a_process_that_is_not_running() {
    let r = common::heapscope(&["watch", "4194304", "--duration", "1"]);
    r.usage_error();
    assert!(r.stderr.contains("no process 4194304"), "{}", r.stderr);
}
