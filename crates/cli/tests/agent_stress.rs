//! The agent must never crash the app. Programs that crashed earlier
//! versions (tests/ruby/agent/stress_*.rb, ractor.rb) run repeatedly under
//! the agent with default settings, and every run must exit 0 with no
//! `[BUG]` report, and leave a profile that decodes.
//!
//! - many threads allocating and dropping strings, arrays and hashes while
//!   hook windows open and close;
//! - one thread allocating 1.5 M objects, dropping them and collecting (and
//!   compacting), so whole heap pages are freed and unmapped while the
//!   profiler still follows samples from them; `MALLOC_MMAP_THRESHOLD_`
//!   makes freed pages leave the address space at once, and a flush every
//!   second looks at the tracked set often;
//! - a Ractor that allocates.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::Proc;
use tempfile::TempDir;

/// `ruby -rheapscope/autostart PROGRAM ARGS` with the agent's files in `dir`
/// and otherwise default settings.
fn under_agent(dir: &Path, program: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = common::agent::ruby();
    cmd.current_dir(dir)
        .arg("-rheapscope/autostart")
        .arg(common::ruby_script(&format!("agent/{program}")))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("HEAPSCOPE_RUNTIME_DIR", dir.join("run"))
        .env("HEAPSCOPE_DUMP_DIR", dir.join("dumps"))
        .env(
            "HEAPSCOPE_PROFILE_PATH",
            dir.join("mem-%{pid}-%{time}.pprof.gz"),
        )
        .env("HEAPSCOPE_STATS_PATH", dir.join("gc-%{pid}.jsonl"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `program` `runs` times; each run must exit 0 without a Ruby [BUG]
/// report and leave at least one profile that decodes with samples.
fn run_repeatedly(program: &str, args: &[&str], env: &[(&str, &str)], runs: usize) {
    for run in 1..=runs {
        let dir = TempDir::new().unwrap();
        let out =
            Proc::spawn(under_agent(dir.path(), program, args, env)).wait(Duration::from_secs(180));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("[BUG]"),
            "{program}, run {run} of {runs}: {}\n{stderr}",
            out.status
        );
        let profiles: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".pprof.gz"))
            .collect();
        assert!(!profiles.is_empty(), "{program}: no profile\n{stderr}");
        for p in &profiles {
            let profile = heapscope_pprof::read_gz(&std::fs::read(p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(profile.sample_type.len(), 4, "{}", p.display());
        }
    }
}

#[test]
fn many_threads_allocating_never_crash_the_app() {
    run_repeatedly("stress_threads.rb", &["32", "4"], &[], 10);
}

#[test]
fn freed_heap_pages_never_crash_the_app() {
    run_repeatedly(
        "stress_drop_gc.rb",
        &["3", "1500000"],
        &[
            ("HEAPSCOPE_PROFILE_INTERVAL", "1"),
            ("MALLOC_MMAP_THRESHOLD_", "65536"),
        ],
        10,
    );
}

/// Ruby's allocation hooks are not Ractor-safe: the agent turns its hook
/// off before the first Ractor starts, says so once, and the app runs to
/// the end.
#[test]
fn a_ractor_runs_under_the_agent() {
    let dir = TempDir::new().unwrap();
    let out =
        Proc::spawn(under_agent(dir.path(), "ractor.rb", &[], &[])).wait(Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", out.status);
    assert!(stdout.contains("ractor said ok"), "{stdout}");
    assert_eq!(
        stderr.matches("a Ractor started").count(),
        1,
        "said once: {stderr}"
    );
    // And in the statistics file, from the Ractor on (the final record at
    // exit at least).
    let stats = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".jsonl"))
        .expect("a statistics file");
    let text = std::fs::read_to_string(&stats).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["profiler_off"], "ractors", "{text}");
}
