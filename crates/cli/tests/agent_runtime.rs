//! The agent runtime end to end, in real Ruby processes: dumps on signal
//! (through `heapscope dump` and a raw `kill`), on a timer, every N Rack
//! requests, through the API; a dump killed half-way; statistics records
//! (also from forked children); bad settings; the profiler options.
//!
//! Every agent option is set, as a variable or a `heapscope run` flag, by some
//! test here or in agent_servers.rs or agent_safety.rs (`every_documented_variable_is_exercised`
//! reads both files to check).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::agent::{autostart_ruby, base_env, summary_ok};
use common::process::{kill_group, signal, wait_for, Proc};

const SIGRTMIN_7: i32 = 41;

fn send_signal(pid: u32, sig: i32) {
    assert!(signal(pid, &sig.to_string()), "kill -{sig} {pid}");
}

/// Dumps of `pid` in `dir` (final names only), sorted by seq.
fn dumps_of(dir: &Path, pid: u32) -> Vec<(u64, PathBuf)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let prefix = format!("heap-{pid}-");
    for e in entries {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(rest) = name
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".dump"))
        {
            let parts: Vec<&str> = rest.split('-').collect();
            assert_eq!(parts.len(), 2, "dump name {name}");
            let time: u64 = parts[0].parse().unwrap_or_else(|_| panic!("{name}"));
            assert!(time > 1_600_000_000, "unix time in {name}");
            out.push((parts[1].parse().unwrap(), dir.join(&name)));
        }
    }
    out.sort();
    out
}

fn read_state(runtime: &Path, pid: u32) -> Option<Value> {
    let text = std::fs::read_to_string(runtime.join(format!("agent-{pid}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

/// Reads one line of the child's stdout.
fn read_line(p: &mut Proc) -> String {
    let out = p.child().stdout.as_mut().unwrap();
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    line.trim().to_string()
}

/// A program that builds some objects, prints "ready", and runs until the
/// file `stop` appears (at most 60 s).
const WAIT_FOR_STOP: &str = r#"
$keep = Array.new(20_000) { |i| ["item #{i}", { i => i.to_s }] }
puts "ready"; $stdout.flush
deadline = Time.now + 60
sleep 0.02 until File.exist?("stop") || Time.now > deadline
"#;

#[test]
fn dump_on_signal_through_heapscope_dump() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.push(("HEAPSCOPE_DUMP_SIGNAL", "SIGRTMIN+7".into()));
    env.push(("HEAPSCOPE_VERBOSE", "1".into()));
    let mut p = Proc::spawn(autostart_ruby(dir.path(), WAIT_FOR_STOP, &env));
    assert_eq!(read_line(&mut p), "ready");
    let pid = p.pid;
    let run = dir.path().join("run");
    let state = wait_for(Duration::from_secs(10), "the announcement", || {
        read_state(&run, pid)
    });
    assert_eq!(state["dump_signal"], SIGRTMIN_7);
    assert_eq!(state["pid"], pid);
    assert!(state.get("last_dump").is_none());

    // 1: through the CLI.
    let out = Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args(["dump", &pid.to_string(), "--timeout", "60"])
        .env("HEAPSCOPE_RUNTIME_DIR", &run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "heapscope dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let dumps = dumps_of(&dir.path().join("dumps"), pid);
    assert_eq!(
        dumps.len(),
        1,
        "{:?}",
        common::file_names(&dir.path().join("dumps"))
    );
    assert_eq!(dumps[0].0, 1);
    assert_eq!(printed, dumps[0].1);
    summary_ok(&printed);

    // 2: a raw signal; the announcement says done for seq 2.
    send_signal(pid, SIGRTMIN_7);
    let state = wait_for(Duration::from_secs(60), "the second dump", || {
        read_state(&run, pid)
            .filter(|s| s["last_dump"]["seq"] == 2 && s["last_dump"]["state"] == "done")
    });
    assert_eq!(state["last_dump"]["reason"], "signal");
    let dumps = dumps_of(&dir.path().join("dumps"), pid);
    assert_eq!(dumps.len(), 2);
    assert_eq!(
        PathBuf::from(state["last_dump"]["path"].as_str().unwrap()),
        dumps[1].1
    );
    summary_ok(&dumps[1].1);
    // No temporary file is left behind.
    assert!(common::file_names(&dir.path().join("dumps"))
        .iter()
        .all(|f| !f.ends_with(".tmp")));

    std::fs::write(dir.path().join("stop"), "").unwrap();
    let out = p.wait(Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("heapscope: heap dump written to"),
        "{stderr}"
    );
    // The announcement is removed at exit.
    assert!(read_state(&run, pid).is_none());
}

#[test]
fn usr2_signal_and_dump_signal_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.push(("HEAPSCOPE_DUMP_SIGNAL", "USR2".into()));
    let mut p = Proc::spawn(autostart_ruby(dir.path(), WAIT_FOR_STOP, &env));
    assert_eq!(read_line(&mut p), "ready");
    let run = dir.path().join("run");
    wait_for(Duration::from_secs(10), "announcement", || {
        read_state(&run, p.pid)
    });
    send_signal(p.pid, 12);
    let dumps = wait_for(Duration::from_secs(60), "a dump", || {
        let d = dumps_of(&dir.path().join("dumps"), p.pid);
        (!d.is_empty()).then_some(d)
    });
    summary_ok(&dumps[0].1);
    std::fs::write(dir.path().join("stop"), "").unwrap();
    assert!(p.wait(Duration::from_secs(30)).status.success());

    // off: the announcement says so.
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.push(("HEAPSCOPE_DUMP_SIGNAL", "off".into()));
    let mut p = Proc::spawn(autostart_ruby(dir.path(), WAIT_FOR_STOP, &env));
    assert_eq!(read_line(&mut p), "ready");
    let run = dir.path().join("run");
    let state = wait_for(Duration::from_secs(10), "announcement", || {
        read_state(&run, p.pid)
    });
    assert_eq!(state["dump_signal"], Value::Null);
    std::fs::write(dir.path().join("stop"), "").unwrap();
    assert!(p.wait(Duration::from_secs(30)).status.success());
}

#[test]
fn killing_the_app_mid_dump_leaves_no_partial_dump() {
    let dir = tempfile::tempdir().unwrap();
    let dumps_dir = dir.path().join("dumps");
    let env = base_env(dir.path());
    // A heap big enough that the dump takes seconds.
    let program = r#"
$keep = Array.new(1_000_000) { |i| [i.to_s, i] }
puts "ready"; $stdout.flush
sleep 120
"#;
    let mut p = Proc::spawn(autostart_ruby(dir.path(), program, &env));
    assert_eq!(read_line(&mut p), "ready");
    let pid = p.pid;
    wait_for(Duration::from_secs(10), "announcement", || {
        read_state(&dir.path().join("run"), pid)
    });
    send_signal(pid, SIGRTMIN_7);
    let tmp = wait_for(Duration::from_secs(60), "the temporary dump", || {
        common::file_names(&dumps_dir)
            .into_iter()
            .find(|f| f.starts_with(&format!(".heap-{pid}-")) && f.ends_with(".dump.tmp"))
    });
    // Kill the app while the child writes.
    kill_group(pid);
    drop(p);
    assert!(
        dumps_of(&dumps_dir, pid).is_empty(),
        "{:?}",
        common::file_names(&dumps_dir)
    );
    // The child dies with its parent (PR_SET_PDEATHSIG), so the temporary
    // file stops growing and never gets a final name.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        dumps_of(&dumps_dir, pid).is_empty(),
        "{:?}",
        common::file_names(&dumps_dir)
    );
    assert!(dumps_dir.join(&tmp).exists() || common::file_names(&dumps_dir).is_empty());

    // The next agent to start with this dump directory removes the
    // leftover of the dead process.
    let out = autostart_ruby(dir.path(), "puts Heapscope.running?", &env)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "true");
    assert!(
        common::file_names(&dumps_dir).is_empty(),
        "{:?}",
        common::file_names(&dumps_dir)
    );
}

#[test]
fn periodic_dumps_by_seconds_honour_dump_keep() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.push(("HEAPSCOPE_DUMP_EVERY_SECONDS", "0.4".into()));
    env.push(("HEAPSCOPE_DUMP_KEEP", "2".into()));
    env.push(("HEAPSCOPE_DUMP_GC", "0".into()));
    env.push(("HEAPSCOPE_DUMP_SIGNAL", "off".into()));
    let program = r#"
puts "ready"; $stdout.flush
deadline = Time.now + 60
sleep 0.02 until File.exist?("stop") || Time.now > deadline
"#;
    let mut p = Proc::spawn(autostart_ruby(dir.path(), program, &env));
    assert_eq!(read_line(&mut p), "ready");
    let pid = p.pid;
    let run = dir.path().join("run");
    let state = wait_for(Duration::from_secs(60), "four timer dumps", || {
        read_state(&run, pid).filter(|s| {
            s["last_dump"]["seq"].as_u64() >= Some(4) && s["last_dump"]["state"] == "done"
        })
    });
    assert_eq!(state["last_dump"]["reason"], "timer");
    let seq = state["last_dump"]["seq"].as_u64().unwrap();
    // The timer goes on dumping (and pruning) until the app exits, so the
    // files are checked once it has.
    std::fs::write(dir.path().join("stop"), "").unwrap();
    assert!(p.wait(Duration::from_secs(30)).status.success());
    let dumps = dumps_of(&dir.path().join("dumps"), pid);
    let seqs: Vec<u64> = dumps.iter().map(|d| d.0).collect();
    // Retention runs after each dump completes: exactly the newest two.
    assert!(
        seqs.len() == 2 && seqs[1] == seqs[0] + 1 && seqs[1] >= seq,
        "{seqs:?} after seq {seq}: {:?}",
        common::file_names(&dir.path().join("dumps"))
    );
    for (_, d) in &dumps {
        summary_ok(d);
    }
}

#[test]
fn rack_requests_trigger_dumps_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.push(("HEAPSCOPE_DUMP_EVERY_REQUESTS", "5".into()));
    env.push(("HEAPSCOPE_DUMP_KEEP", "0".into()));
    env.push(("HEAPSCOPE_STATS", "1".into()));
    env.push(("HEAPSCOPE_STATS_PATH", "stats/gc-%{pid}.jsonl".into()));
    env.push(("HEAPSCOPE_STATS_INTERVAL", "0.2".into()));
    // Rack is required after the agent started; the built app is wrapped
    // automatically, the explicit `use` and the nested map do not count the
    // request twice.
    let program = r#"
require "rack"
app = Rack::Builder.app do
  use Heapscope::RackMiddleware
  map "/nested" do
    run ->(_env) { [200, {"content-type" => "text/plain"}, ["nested"]] }
  end
  run ->(_env) { [200, {"content-type" => "text/plain"}, ["ok"]] }
end
req = Rack::MockRequest.new(app)
12.times do |i|
  res = req.get(i.even? ? "/" : "/nested")
  raise "status #{res.status}" unless res.status == 200
  sleep 0.05
end
deadline = Time.now + 60
until Dir.glob("dumps/heap-#{Process.pid}-*.dump").size >= 2 || Time.now > deadline
  sleep 0.05
end
sleep 1 # a third dump would have started by now
puts Heapscope::Native.count_value(:requests)
"#;
    let out = Proc::spawn(autostart_ruby(dir.path(), program, &env)).wait(Duration::from_secs(90));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "12",
        "{stderr}"
    );
    let dumps_dir = dir.path().join("dumps");
    let files: Vec<String> = common::file_names(&dumps_dir);
    let dumps: Vec<&String> = files.iter().filter(|f| f.starts_with("heap-")).collect();
    assert_eq!(dumps.len(), 2, "12 requests, one dump every 5: {files:?}");
    for d in dumps {
        summary_ok(&dumps_dir.join(d));
    }
    // The statistics carry the request count (the last record is written at exit).
    let stats_dir = dir.path().join("stats");
    let stats = common::file_names(&stats_dir);
    assert_eq!(stats.len(), 1, "{stats:?}");
    let text = std::fs::read_to_string(stats_dir.join(&stats[0])).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["requests"], 12, "{text}");
}

#[test]
fn stats_records_have_all_fields_and_children_write_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.push(("HEAPSCOPE_STATS", "1".into()));
    env.push(("HEAPSCOPE_STATS_PATH", "gc/%{pid}.jsonl".into()));
    env.push(("HEAPSCOPE_STATS_INTERVAL", "0.2".into()));
    // Children write files of their own at once (the default waits 1 s).
    env.push(("HEAPSCOPE_CHILD_MIN_LIFETIME", "0".into()));
    let program = r#"
run = ENV["HEAPSCOPE_RUNTIME_DIR"]
child = fork do
  $blob = "x" * 20_000_000
  sleep 1.2
  puts "child #{Process.pid} announced=#{File.exist?(File.join(run, "agent-#{Process.pid}.json"))}"
  $stdout.flush
end
Process.wait(child)
raise "child failed" unless $?.success?
sleep 0.3
puts "parent #{Process.pid} announced=#{File.exist?(File.join(run, "agent-#{Process.pid}.json"))}"
puts "child-state-removed=#{!File.exist?(File.join(run, "agent-#{child}.json"))}"
"#;
    let started = Instant::now();
    let out = Proc::spawn(autostart_ruby(dir.path(), program, &env)).wait(Duration::from_secs(60));
    let elapsed = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let mut pids = Vec::new();
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("child") | Some("parent") => {
                pids.push(words.next().unwrap().parse::<u32>().unwrap());
                assert_eq!(words.next(), Some("announced=true"), "{stdout}");
            }
            _ => assert_eq!(line, "child-state-removed=true", "{stdout}"),
        }
    }
    assert_eq!(pids.len(), 2, "{stdout}");
    let (child, parent) = (pids[0], pids[1]);
    let gc = dir.path().join("gc");
    assert_eq!(common::file_names(&gc), {
        let mut v = vec![format!("{child}.jsonl"), format!("{parent}.jsonl")];
        v.sort();
        v
    });
    let fields: Vec<&str> = ["time", "pid", "rss_bytes"]
        .into_iter()
        .chain(heapscope_agent::stats::GC_STAT_KEYS.iter().copied())
        .collect();
    for pid in [parent, child] {
        let text = std::fs::read_to_string(gc.join(format!("{pid}.jsonl"))).unwrap();
        let records: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect();
        assert!(
            records.len() >= 4,
            "{pid}: {} records in {elapsed:.1}s",
            records.len()
        );
        assert!(
            records.len() as f64 <= elapsed / 0.2 + 3.0,
            "{pid}: too many records"
        );
        let mut last_time = 0.0;
        for r in &records {
            for &f in &fields {
                assert!(r[f].is_number(), "{pid}: no {f} in {r}");
            }
            assert_eq!(r["pid"], pid);
            let rss = r["rss_bytes"].as_u64().unwrap();
            assert!(rss > 5 << 20 && rss < 2 << 30, "rss {rss}");
            let t = r["time"].as_f64().unwrap();
            assert!(t >= last_time);
            last_time = t;
            assert!(r.get("requests").is_none());
        }
        let times: Vec<f64> = records
            .iter()
            .map(|r| r["time"].as_f64().unwrap())
            .collect();
        let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let median = {
            let mut g = gaps.clone();
            g.sort_by(|a, b| a.partial_cmp(b).unwrap());
            g[g.len() / 2]
        };
        assert!((0.15..0.6).contains(&median), "{pid}: gaps {gaps:?}");
        if pid == child {
            // The child's 20 MB string shows in its RSS.
            let max = records
                .iter()
                .map(|r| r["rss_bytes"].as_u64().unwrap())
                .max()
                .unwrap();
            assert!(max > 20 << 20, "child rss {max}");
        }
    }
}

#[test]
fn api_dump_with_allocation_tracing() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.push(("HEAPSCOPE_TRACE_ALLOCATIONS", "1".into()));
    env.push(("HEAPSCOPE_ENABLED", "0".into())); // autostart off; Heapscope.start below
    let program = r#"
raise "autostart ran" if Heapscope.running?
Heapscope.start(enabled: true, dump_signal: "off", dump_dir: "api-dumps")
$keep = Array.new(5000) { |i| "traced #{i}" }
path = Heapscope.dump(timeout: 60)
puts path
begin
  Heapscope.start(sample_rate: 5)
rescue ArgumentError => e
  puts "second start: #{e.message}"
end
Heapscope.stop
puts "stopped #{Heapscope.running?}"
"#;
    let out = Proc::spawn(autostart_ruby(dir.path(), program, &env)).wait(Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let path = PathBuf::from(lines.next().unwrap());
    assert_eq!(path.parent().unwrap(), dir.path().join("api-dumps"));
    let v = summary_ok(&path);
    assert!(
        v["totals"]["traced_objects"].as_u64().unwrap() >= 5000,
        "{v}"
    );
    let second = lines.next().unwrap();
    assert!(second.contains("not a sample rate"), "{second}");
    assert_eq!(lines.next(), Some("stopped false"));
}

#[test]
fn disabled_agent_leaves_the_app_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.push(("HEAPSCOPE_ENABLED", "0".into()));
    env.push(("HEAPSCOPE_STATS", "1".into()));
    let out = autostart_ruby(
        dir.path(),
        "puts Heapscope.running?; puts Thread.list.size",
        &env,
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "false\n1\n");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        common::file_names(dir.path()).is_empty(),
        "{:?}",
        common::file_names(dir.path())
    );
}

#[test]
fn bad_settings_print_one_line_and_the_app_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.push(("HEAPSCOPE_SAMPLE_RATE", "2".into()));
    env.push(("HEAPSCOPE_DUMP_SIGNAL", "TERM".into()));
    env.push(("HEAPSCOPE_SAMPEL_RATE", "0.1".into()));
    let out = autostart_ruby(
        dir.path(),
        "puts \"app ran, agent #{Heapscope.running?}\"",
        &env,
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "app ran, agent false\n"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let line = lines[0];
    assert!(line.starts_with("heapscope: "), "{line}");
    assert!(line.ends_with("the agent is off"), "{line}");
    for part in ["HEAPSCOPE_SAMPLE_RATE", "TERM stops the app"] {
        assert!(line.contains(part), "{part} in {line}");
    }
    assert!(common::file_names(dir.path()).is_empty());

    // A library that cannot load: still one line, and the app runs.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(broken.join("heapscope")).unwrap();
    std::fs::copy(
        common::agent::ruby_lib().join("heapscope/autostart.rb"),
        broken.join("heapscope/autostart.rb"),
    )
    .unwrap();
    std::fs::write(
        broken.join("heapscope.rb"),
        "require \"heapscope/heapscope_native\"\n",
    )
    .unwrap();
    std::fs::write(
        broken.join("heapscope/heapscope_native.so"),
        "not an ELF file",
    )
    .unwrap();
    let out = Command::new("ruby")
        .env_remove("RUBYOPT")
        .arg("-I")
        .arg(&broken)
        .args(["-rheapscope/autostart", "-e", "puts :app_ran"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "app_ran\n");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("heapscope: could not load the agent"),
        "{stderr}"
    );
}

#[test]
fn profiler_options_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.retain(|(k, _)| *k != "HEAPSCOPE_PROFILE");
    env.push(("HEAPSCOPE_PROFILE", "1".into()));
    env.push(("HEAPSCOPE_SAMPLE_RATE", "0.5".into()));
    env.push(("HEAPSCOPE_SAMPLE_DUTY", "0.5".into()));
    env.push((
        "HEAPSCOPE_PROFILE_PATH",
        "prof/mem-%{pid}-%{time}.pprof.gz".into(),
    ));
    env.push(("HEAPSCOPE_PROFILE_INTERVAL", "0.3".into()));
    env.push(("HEAPSCOPE_MAX_SAMPLES", "1000".into()));
    env.push(("HEAPSCOPE_MAX_FRAMES", "16".into()));
    let program = r#"
$keep = []
20.times { $keep << Array.new(1000) { |i| "s#{i}" }; sleep 0.05 }
"#;
    let out = Proc::spawn(autostart_ruby(dir.path(), program, &env)).wait(Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s = resolved_settings(&env, dir.path());
    assert_eq!(s["sample_rate"], 0.5);
    assert_eq!(s["sample_duty"], 0.5);
    let files = common::file_names(&dir.path().join("prof"));
    assert!(!files.is_empty(), "no profiles; stderr: {stderr}");
    let re_ok = files
        .iter()
        .all(|f| f.starts_with("mem-") && f.ends_with("Z.pprof.gz") && f.contains('T'));
    assert!(re_ok, "{files:?}");
}

/// The settings the extension resolves from this environment, as JSON.
fn resolved_settings(env: &[(&str, String)], dir: &Path) -> Value {
    let mut cmd = common::agent::ruby();
    cmd.current_dir(dir).args([
        "-rheapscope",
        "-rjson",
        "-e",
        "puts JSON.generate(Heapscope.resolve_settings)",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_documented_variable_is_exercised() {
    let out = Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let mut documented: Vec<String> = help
        .split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
        .filter(|w| w.starts_with("HEAPSCOPE_") && w.len() > "HEAPSCOPE_".len())
        .filter(|w| *w != "HEAPSCOPE_RUBY_LIB")
        .map(str::to_string)
        .collect();
    documented.sort();
    documented.dedup();
    let options = heapscope_agent::config::OPTIONS;
    assert_eq!(documented.len(), options.len(), "{help}");
    // Set by a test: the variable or the flag appears, quoted, in a test file.
    let sources = [
        include_str!("agent_runtime.rs"),
        include_str!("agent_servers.rs"),
        include_str!("agent_safety.rs"),
        include_str!("agent_profiler.rs"),
        include_str!("agent_rack_tools.rs"),
    ]
    .concat();
    for o in options {
        let (var, flag) = (o.env_name(), o.flag());
        assert!(documented.contains(&var), "{var} is not in --help");
        assert!(
            sources.contains(&format!("\"{var}\"")) || sources.contains(&format!("\"--{flag}\"")),
            "no test sets {var} (or --{flag})"
        );
    }
    // And every variable the extension knows resolves.
    let mut env: Vec<(&str, String)> = Vec::new();
    let s = resolved_settings(&env, Path::new("."));
    assert_eq!(s.as_object().unwrap().len(), documented.len(), "{s}");
    env.push(("HEAPSCOPE_DUMP_KEEP", "3".into()));
    assert_eq!(resolved_settings(&env, Path::new("."))["dump_keep"], 3);
}

/// What `heapscope bench --report` sets (agent_bench_report.rs runs it end to end).
#[test]
fn bench_report_settings_resolve() {
    let env: Vec<(&str, String)> = vec![
        ("HEAPSCOPE_BENCH_REPORT", "gc".into()),
        ("HEAPSCOPE_BENCH_REPORT_DIR", "/tmp/x".into()),
        ("HEAPSCOPE_BENCH_REPORT_SKIP", "5".into()),
        ("HEAPSCOPE_BENCH_REPORT_REQUESTS", "20".into()),
    ];
    let s = resolved_settings(&env, Path::new("."));
    assert_eq!(s["bench_report"], "gc");
    assert_eq!(s["bench_report_dir"], "/tmp/x");
    assert_eq!(s["bench_report_skip"], 5);
    assert_eq!(s["bench_report_requests"], 20);
}

#[test]
fn a_failed_dump_is_reported_and_the_app_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    // The kernel refuses new files in /proc, so the dump child fails.
    env.retain(|(k, _)| *k != "HEAPSCOPE_DUMP_DIR");
    env.push(("HEAPSCOPE_DUMP_DIR", "/proc".into()));
    let program = r#"
begin
  Heapscope.dump(timeout: 60)
  puts "no error"
rescue Heapscope::Error => e
  puts e.message
end
state = File.read(File.join(ENV["HEAPSCOPE_RUNTIME_DIR"], "agent-#{Process.pid}.json"))
puts state[/"state": "(\w+)"/, 1]
puts "still running"
"#;
    let out = Proc::spawn(autostart_ruby(dir.path(), program, &env)).wait(Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with("heap dump failed: "), "{stdout}");
    assert!(
        lines[0].contains("/proc/.heap-"),
        "the child's reason: {stdout}"
    );
    assert_eq!(lines[1], "failed");
    assert_eq!(lines[2], "still running");
    assert!(
        stderr.starts_with("heapscope: heap dump /proc/heap-"),
        "{stderr}"
    );
}
