//! The agent under another GC library (Ruby 3.4+'s modular GC,
//! `RUBY_GC_LIBRARY`): the heap profiler needs Ruby's NEWOBJ hook, which
//! MMTk does not fire, so the agent leaves it off, says so once on stderr and
//! marks its statistics records `"profiler_off":"gc_library"`; dumps and
//! statistics go on and the app's exit status is its own.
//!
//! The Rubies here (3.1, and Debian's 3.3 and 3.4) have no other GC library
//! and ignore the variable, so the agent's detection is checked through the
//! variable itself.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::Proc;
use tempfile::TempDir;

/// Allocates a little, asks the agent for a dump, prints its path and exits
/// with status 3.
const PROGRAM: &str = r#"
$keep = Array.new(1000) { |i| "gc-library-#{i}" * 2 }
path = Heapscope.dump(wait: true, timeout: 60)
puts "dump: #{path}"
exit 3
"#;

fn under_agent(dir: &Path, gc_library: &str) -> Command {
    let mut env = common::agent::base_env(dir);
    let path = |p: &str| dir.join(p).to_string_lossy().into_owned();
    env.extend([
        ("HEAPSCOPE_PROFILE", "1".to_string()),
        ("HEAPSCOPE_STATS", "1".into()),
        ("HEAPSCOPE_STATS_INTERVAL", "0.2".into()),
        (
            "HEAPSCOPE_PROFILE_PATH",
            path("mem-%{pid}-%{time}.pprof.gz"),
        ),
        ("HEAPSCOPE_STATS_PATH", path("gc-%{pid}.jsonl")),
        ("RUBY_GC_LIBRARY", gc_library.into()),
    ]);
    common::agent::autostart_ruby(dir, PROGRAM, &env)
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    common::file_names(dir)
        .into_iter()
        .filter(|n| n.ends_with(suffix))
        .map(|n| dir.join(n))
        .collect()
}

/// Runs the program; returns stderr and the statistics records.
fn run(dir: &Path, gc_library: &str) -> (String, Vec<serde_json::Value>) {
    let out = Proc::spawn(under_agent(dir, gc_library)).wait(Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(3),
        "RUBY_GC_LIBRARY={gc_library}: the app's own exit status\n{stderr}"
    );
    // The dump works.
    let dump = stdout
        .lines()
        .find_map(|l| l.strip_prefix("dump: "))
        .unwrap_or_else(|| panic!("no dump path: {stdout}\n{stderr}"));
    common::agent::summary_ok(Path::new(dump));
    // So do the statistics.
    let stats = files_ending(dir, ".jsonl");
    assert_eq!(stats.len(), 1, "{stats:?}\n{stderr}");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&stats[0])
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!records.is_empty(), "no statistics records");
    for r in &records {
        assert!(r["heap_live_slots"].as_u64().is_some(), "{r}");
    }
    (stderr, records)
}

#[test]
fn another_gc_library_leaves_the_profiler_off_and_the_rest_on() {
    let dir = TempDir::new().unwrap();
    let (stderr, records) = run(dir.path(), "mmtk");
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("GC library"))
        .collect();
    assert_eq!(said.len(), 1, "one line on stderr: {stderr}");
    assert!(
        said[0].starts_with("heapscope: ")
            && said[0].contains("\"mmtk\"")
            && said[0].contains("heap profiler stays off"),
        "{}",
        said[0]
    );
    assert!(
        files_ending(dir.path(), ".pprof.gz").is_empty(),
        "no profile without the profiler"
    );
    for r in &records {
        assert_eq!(r["profiler_off"], "gc_library", "{r}");
    }
}

#[test]
fn the_default_gc_library_keeps_the_profiler() {
    for name in ["default", ""] {
        let dir = TempDir::new().unwrap();
        let (stderr, records) = run(dir.path(), name);
        assert!(!stderr.contains("GC library"), "{stderr}");
        assert!(
            !files_ending(dir.path(), ".pprof.gz").is_empty(),
            "RUBY_GC_LIBRARY={name:?}: a profile at exit\n{stderr}"
        );
        for r in &records {
            assert!(r.get("profiler_off").is_none(), "{r}");
        }
    }
}
