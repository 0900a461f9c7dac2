//! `heapscope run` and `heapscope dump` where no agent is involved: settings
//! refused before the program starts, clear errors for processes without an
//! agent, and the help texts.

mod common;

use common::heapscope;

#[test]
fn run_refuses_bad_settings_before_starting_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let script = format!("File.write({:?}, 'x')", marker.to_str().unwrap());
    let r = heapscope(&[
        "run",
        "--sample-rate",
        "1.5",
        "--dump-signal",
        "KILL",
        "--stats-interval",
        "-1",
        "--",
        "ruby",
        "-e",
        &script,
    ]);
    r.usage_error();
    for expected in [
        "--sample-rate: \"1.5\" is not a sample rate",
        "--dump-signal: \"KILL\"",
        "--stats-interval: \"-1\" is not a number of seconds",
    ] {
        assert!(
            r.stderr.contains(expected),
            "{expected:?} in:\n{}",
            r.stderr
        );
    }
    assert!(!marker.exists(), "the program must not start");
}

#[test]
fn run_warns_about_unknown_heapscope_variables_and_runs() {
    let runtime = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args([
            "run",
            "--no-profile",
            "--no-stats",
            "--",
            "ruby",
            "-e",
            "print :ran",
        ])
        .env("HEAPSCOPE_SAMPEL_RATE", "0.1")
        .env("HEAPSCOPE_RUBY_LIB", common::agent::ruby_lib())
        .env("HEAPSCOPE_RUNTIME_DIR", runtime.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran");
    assert!(
        err.contains("heapscope: warning: HEAPSCOPE_SAMPEL_RATE: not a heapscope setting"),
        "{err}"
    );
}

#[test]
fn run_says_where_it_looked_for_the_agent() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args(["run", "--", "ruby", "-e", "1"])
        .env("HEAPSCOPE_RUBY_LIB", "/nonexistent/heapscope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HEAPSCOPE_RUBY_LIB=/nonexistent/heapscope"),
        "{err}"
    );
}

#[test]
fn run_reports_a_missing_program() {
    let lib = common::agent::ruby_lib();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args(["run", "--", "/nonexistent/program"])
        .env("HEAPSCOPE_RUBY_LIB", &lib)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot run /nonexistent/program"), "{err}");
}

#[test]
fn dump_explains_a_process_without_an_agent() {
    let dir = tempfile::tempdir().unwrap();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = sleeper.id().to_string();
    let rt = dir.path().to_str().unwrap();
    let r = heapscope(&["dump", &pid, "--runtime-dir", rt]);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    r.usage_error();
    assert!(r.stderr.contains("has no heapscope agent"), "{}", r.stderr);
    assert!(r.stderr.contains("heapscope run"), "{}", r.stderr);

    // A dead process: its pid has been reaped above.
    let r = heapscope(&["dump", &pid, "--runtime-dir", rt]);
    r.usage_error();
    assert!(r.stderr.contains("no process"), "{}", r.stderr);
}

#[test]
fn dump_refuses_a_stale_announcement() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let state = heapscope_agent::state::AgentState {
        pid,
        version: "0".into(),
        started_at: 0.0,
        dump_signal: Some(41),
        dump_dir: dir.path().to_path_buf(),
        stats_path: None,
        profile_path: None,
        last_dump: None,
    };
    state.write(dir.path()).unwrap();
    let r = heapscope(&[
        "dump",
        &pid.to_string(),
        "--runtime-dir",
        dir.path().to_str().unwrap(),
    ]);
    r.usage_error();
    assert!(r.stderr.contains("is not running"), "{}", r.stderr);
}

#[test]
fn every_command_has_examples_in_its_help() {
    for cmd in [
        "summary",
        "diff",
        "retained",
        "path",
        "inspect",
        "suspects",
        "leaks",
        "flamegraph",
        "pprof",
        "run",
        "dump",
    ] {
        let r = heapscope(&[cmd, "--help"]);
        r.ok();
        assert!(
            r.stdout_text().contains("Examples:"),
            "`heapscope {cmd} --help` has no examples:\n{}",
            r.stdout_text()
        );
    }
}
