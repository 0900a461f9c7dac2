//! `heapscope pprof` of real dumps, read by the real `go tool pprof`
//! (Debian's golang-go): Ruby method names shown as written, allocations in C
//! methods at the calling Ruby line, pprof's conventional sample-type flags,
//! the agent's label keys, and no "Main binary filename not available."

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::gopprof;
use tempfile::TempDir;

const PROGRAM: &str = "pprof_names.rb";

struct Made {
    _dir: TempDir,
    profile: PathBuf,
}

/// The dump of `tests/ruby/pprof_names.rb` as a profile, made once.
fn profile() -> &'static Path {
    static MADE: OnceLock<Made> = OnceLock::new();
    &MADE
        .get_or_init(|| {
            let dir = common::scratch_dir("heapscope-pprof-go-");
            let dump = dir.path().join("names.dump");
            common::run_ruby(&common::ruby_script(PROGRAM), &[&dump], &[], dir.path());
            let profile = dir.path().join("names.pb.gz");
            common::heapscope(&[
                "pprof".as_ref(),
                dump.as_os_str(),
                "-o".as_ref(),
                profile.as_os_str(),
            ])
            .ok();
            Made { _dir: dir, profile }
        })
        .profile
}

/// The line of `# @name` in the program.
fn marker_line(name: &str) -> usize {
    let text = std::fs::read_to_string(common::ruby_script(PROGRAM)).unwrap();
    let marker = format!("# @{name}");
    text.lines()
        .position(|l| l.trim_end().ends_with(&marker))
        .unwrap_or_else(|| panic!("no {marker}"))
        + 1
}

/// Method names a dump records, each one pprof's simplifier used to rewrite.
const NAMES: [&str; 8] = [
    "<main>",
    "<top (required)>",
    "<class:Foo>",
    "block (2 levels) in <main>",
    "Foo#bar",
    "Foo.baz",
    "<=>",
    "[]",
];

#[test]
fn names_are_shown_as_written_in_top_traces_and_lines() {
    let prof = profile();
    for view in ["-top", "-traces"] {
        let (stdout, stderr) = gopprof::run(&[view, "-nodefraction=0"], prof);
        gopprof::assert_no_warnings(&stderr);
        let shown: Vec<String> = if view == "-top" {
            gopprof::top_names(&stdout)
        } else {
            gopprof::trace_frames(&stdout).concat()
        };
        for n in NAMES {
            assert!(
                shown.iter().any(|s| s == n),
                "{view}: no {n:?} in\n{stdout}"
            );
        }
        for bad in ["<unknown>", "block  in ", "block in "] {
            assert!(!shown.iter().any(|s| s == bad), "{view}: {bad:?}\n{stdout}");
        }
    }
    let (stdout, stderr) = gopprof::run(&["-lines", "-top", "-nodefraction=0"], prof);
    gopprof::assert_no_warnings(&stderr);
    let rows = gopprof::top_names(&stdout);
    let file = common::ruby_script(PROGRAM).display().to_string();
    let named = marker_line("named");
    for n in NAMES {
        let want = format!("{n} {file}:{named}");
        assert!(rows.contains(&want), "-lines: no {want:?} in\n{stdout}");
    }
    // C methods (a dump names them by method only) at the Ruby line that
    // called them, never without a file.
    for (method, marker) in [
        ("*", "string_times"),
        ("new", "array_new"),
        ("merge", "hash_merge"),
    ] {
        let want = format!("{method} {file}:{}", marker_line(marker));
        assert!(rows.contains(&want), "-lines: no {want:?} in\n{stdout}");
    }
    let (stdout, _) = gopprof::run(&["-files", "-top", "-nodefraction=0"], prof);
    assert!(!stdout.contains("<unknown>"), "-files:\n{stdout}");
}

#[test]
fn the_profile_names_its_program_and_takes_every_sample_type_flag() {
    let prof = profile();
    for (flag, ty) in [
        ("-inuse_space", "inuse_space"),
        ("-alloc_space", "alloc_space"),
        ("-inuse_objects", "inuse_objects"),
        ("-alloc_objects", "alloc_objects"),
        ("-nodecount=3", "inuse_space"),
    ] {
        let (stdout, stderr) = gopprof::run(&[flag, "-top"], prof);
        gopprof::assert_no_warnings(&stderr);
        assert!(
            stdout.contains(&format!("Type: {ty}\n")),
            "{flag}:\n{stdout}"
        );
        // The mapping is named after the dump.
        assert!(
            stdout.starts_with("File: names.dump\n"),
            "{flag}:\n{stdout}"
        );
    }
    // The agent's label keys and value style: type as dumps spell it, class
    // by name.
    let (stdout, _) = gopprof::run(&["-tags"], prof);
    for want in [
        "type: Total",
        "STRING",
        "ARRAY",
        "HASH",
        "class: Total",
        "String",
        "Array",
    ] {
        assert!(stdout.contains(want), "-tags: no {want:?}\n{stdout}");
    }
}
