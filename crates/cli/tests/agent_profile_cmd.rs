//! `heapscope profile -- CMD`: the exact report of a whole Ruby program run,
//! through the real agent and the system Ruby. The programs are written by
//! the tests; each allocates at lines the assertions name.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::process::Proc;

/// `heapscope profile ARGS -- ruby prog.rb` in `dir`, the program written
/// there first. Inherited HEAPSCOPE_* and RUBYOPT are cleared.
fn profile(dir: &Path, program: &str, args: &[&str]) -> Output {
    std::fs::write(dir.join("prog.rb"), program).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_heapscope"));
    cmd.current_dir(dir)
        .arg("profile")
        .args(args)
        .args(["--", "ruby", "prog.rb"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("HEAPSCOPE_") || k == "RUBYOPT" {
            cmd.env_remove(k);
        }
    }
    cmd.env("HEAPSCOPE_RUBY_LIB", common::agent::ruby_lib());
    Proc::spawn(cmd).wait(Duration::from_secs(120))
}

const PROGRAM: &str = "\
$kept = Array.new(3000) { |i| \"kept-#{i}\" }
tmp = Array.new(2000) { Object.new }.size
puts \"program says #{tmp}\"
";

#[test]
fn the_report_of_a_run_shows_the_programs_allocation_sites_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let out = profile(dir.path(), PROGRAM, &["--top", "10"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The program's stdout is its own.
    assert_eq!(stdout, "program says 2000\n");
    assert!(stderr.starts_with("Total allocated: "), "{stderr}");
    // 3000 strings (plus the array) at line 1, 2000 objects at line 2.
    let line_with = |site: &str| {
        stderr
            .lines()
            .filter(|l| l.ends_with(site))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        line_with("prog.rb:1").contains(&"3001".to_string()),
        "{stderr}"
    );
    assert!(
        line_with("prog.rb:2").contains(&"2001".to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("retained objects by location"), "{stderr}");
    assert!(stderr.contains("Retained String Report"), "{stderr}");
}

#[test]
fn dash_o_writes_the_report_in_the_format_of_its_extension() {
    let dir = tempfile::tempdir().unwrap();
    let out = profile(
        dir.path(),
        PROGRAM,
        &["-o", "report.json", "--ignore-files", "rubygems"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("heapscope: report written to"), "{stderr}");
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let loc = &v["tables"]["allocated"]["objects"]["location"];
    let key = loc
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.ends_with("prog.rb:1"))
        .unwrap_or_else(|| panic!("{loc}"))
        .clone();
    // Each interpolation allocates the Integer's text and the result.
    assert!(loc[&key].as_u64().unwrap() >= 3001, "{loc}");
    assert!(
        loc.as_object()
            .unwrap()
            .keys()
            .all(|k| !k.contains("heapscope/")),
        "{loc}"
    );
    // Retained: the 3000 strings and their array, held by $kept.
    let kept = &v["tables"]["retained"]["objects"]["location"][&key];
    assert_eq!(kept, 3001, "{v}");
    assert!(v["tables"]["allocated"]["objects"]["file"]
        .as_object()
        .unwrap()
        .keys()
        .all(|f| !f.contains("rubygems")));
    // A name with no known extension is refused before the program runs.
    let out = profile(dir.path(), PROGRAM, &["-o", "report.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains(".pb.gz"));
}

#[test]
fn the_programs_exit_status_is_passed_through() {
    let dir = tempfile::tempdir().unwrap();
    let out = profile(dir.path(), "x = Array.new(100) { 'a' * 30 }\nexit 3\n", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("Total allocated: "), "{stderr}");
    // An uncaught exception: Ruby's status 1 and its message, and the report.
    let out = profile(
        dir.path(),
        "x = Array.new(100) { 'a' * 30 }\nraise ArgumentError, 'the program failed'\n",
        &["-o", "r.txt"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the program failed (ArgumentError)"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(dir.path().join("r.txt")).unwrap();
    assert!(text.contains("prog.rb:1"), "{text}");
    // A bad regular expression: refused before the program's first line.
    let out = profile(dir.path(), "puts 'ran'\n", &["--allow-files", "(unclosed"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("heapscope: profile:"));
}

#[test]
fn threads_main_leaves_out_another_threads_allocations() {
    let program = "\
t = Thread.new { Array.new(4000) { Object.new }.size }
t.join
mine = Array.new(1500) { Object.new }.size
";
    let count_at = |v: &Value, line: &str| -> u64 {
        let loc = v["tables"]["allocated"]["objects"]["location"]
            .as_object()
            .unwrap();
        loc.iter()
            .filter(|(k, _)| k.ends_with(line))
            .map(|(_, n)| n.as_u64().unwrap())
            .sum()
    };
    let dir = tempfile::tempdir().unwrap();
    let out = profile(dir.path(), program, &["-o", "all.json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("all.json")).unwrap())
            .unwrap();
    assert!(count_at(&all, "prog.rb:1") >= 4000, "{all}");
    assert!(count_at(&all, "prog.rb:3") >= 1500, "{all}");
    let out = profile(
        dir.path(),
        program,
        &["--threads", "main", "-o", "main.json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let main: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("main.json")).unwrap())
            .unwrap();
    // Line 1's Thread object is the main thread's; its 4001 are not.
    assert!(count_at(&main, "prog.rb:1") < 10, "{main}");
    assert!(count_at(&main, "prog.rb:3") >= 1500, "{main}");
}
