//! Names that carry terminal escape sequences and NUL bytes (a method
//! defined with `define_method`, code `eval`ed under a hostile file name, a
//! class named like Ruby 3.3's `set_temporary_name` allows: see
//! `tests/ruby/hostile/hostile_names.rb`) never reach the terminal raw:
//! every table, path and tree shows them escaped as string values are
//! (`\u{1b}`, `\u{7}`, `\0`), and JSON keeps them exact, JSON-escaped.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::{heapscope, require_ruby, ruby_script, scratch_dir};
use serde_json::Value;
use tempfile::TempDir;

/// The escape sequences of the program's names, as tables show them.
const SHOWN: &str = r"\u{1b}]0;PWNED\u{7}\u{1b}[2J";
/// The method name and the class name also hold a NUL byte.
const SHOWN_METHOD: &str = r"grow\u{1b}]0;PWNED\u{7}\u{1b}[2J\0nul";
const SHOWN_CLASS: &str = r"Holder\u{1b}]0;PWNED\u{7}\u{1b}[2J\0Class";
/// The raw text, as JSON must decode.
const RAW: &str = "\u{1b}]0;PWNED\u{7}\u{1b}[2J";

struct Dumps {
    _dir: TempDir,
    files: Vec<PathBuf>,
    addresses: Value,
}

/// Three dumps of the program (run once for all tests).
fn dumps() -> &'static Dumps {
    static DUMPS: OnceLock<Dumps> = OnceLock::new();
    DUMPS.get_or_init(|| {
        require_ruby();
        let dir = scratch_dir("hostile-names-");
        let out = std::process::Command::new("ruby")
            .arg(ruby_script("hostile/hostile_names.rb"))
            .arg(dir.path())
            .arg("3")
            .current_dir(dir.path())
            .output()
            .expect("ruby runs");
        assert!(
            out.status.success(),
            "hostile_names.rb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let addresses = serde_json::from_slice(&out.stdout).expect("addresses as JSON");
        let files = (1..=3)
            .map(|i| dir.path().join(format!("hostile-{i}.dump")))
            .collect();
        Dumps {
            _dir: dir,
            files,
            addresses,
        }
    })
}

fn dump(i: usize) -> String {
    dumps().files[i].to_str().unwrap().to_string()
}

fn address(name: &str) -> String {
    dumps().addresses[name].as_str().unwrap().to_string()
}

/// The characters a terminal acts on: C0 and C1 controls and DEL, but for
/// line breaks.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| c.is_control() && c != '\n')
        .collect()
}

/// Runs `heapscope ARGS`, checks its output has no raw control character,
/// and returns it.
fn table(args: &[&str]) -> String {
    let run = heapscope(args);
    let text = run.ok().stdout_text();
    let bad = raw_controls(&text);
    assert!(
        bad.is_empty(),
        "heapscope {args:?} printed raw control characters {bad:?}:\n{}",
        text.escape_debug()
    );
    text
}

fn assert_shows(args: &[&str], text: &str, what: &[&str]) {
    for w in what {
        assert!(
            text.contains(w),
            "heapscope {args:?} does not show {w}:\n{text}"
        );
    }
}

#[test]
fn tables_paths_and_trees_escape_hostile_names() {
    let (d1, d3) = (dump(0), dump(2));
    let holder = address("holder");
    let from_file = address("file_string");
    let from_method = address("method_string");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec![
                "summary",
                &d3,
                "--by",
                "class,location,method",
                "--top",
                "0",
            ],
            vec![SHOWN_METHOD, SHOWN_CLASS, SHOWN],
        ),
        (
            vec!["summary", &d3, "--by", "file", "--top", "0"],
            vec![SHOWN],
        ),
        (
            vec!["diff", &d1, &d3, "--by", "location,method", "--top", "0"],
            vec![SHOWN_METHOD, SHOWN],
        ),
        (vec!["retained", &d3], vec![SHOWN_CLASS]),
        (
            vec!["retained", &d3, "--by", "class,location"],
            vec![SHOWN_CLASS, SHOWN],
        ),
        (vec!["suspects", &d3], vec![SHOWN_CLASS, SHOWN]),
        (vec!["path", &d3, &from_file], vec![SHOWN_CLASS, SHOWN]),
        (
            vec!["path", &d3, &from_method, "--dominators"],
            vec![SHOWN_CLASS],
        ),
        (vec!["inspect", &d3, &holder], vec![SHOWN_CLASS]),
        (vec!["inspect", &d3, &from_method], vec![SHOWN_METHOD]),
        // The record as read from the file: Ruby 3.1 writes file names raw.
        (vec!["inspect", &d3, &from_file], vec![SHOWN, "Record:"]),
        // `;` separates frames in folded stacks: it becomes `:`.
        (
            vec!["flamegraph", &d3, "--folded"],
            vec![r"\u{1b}]0:PWNED\u{7}"],
        ),
    ];
    for (args, shows) in &cases {
        let text = table(args);
        assert_shows(args, &text, shows);
    }
    let mut leaks = vec!["leaks"];
    let files: Vec<String> = (0..3).map(dump).collect();
    leaks.extend(files.iter().map(String::as_str));
    leaks.extend(["--time", "0,600,1200"]);
    let text = table(&leaks);
    assert_shows(&leaks, &text, &[SHOWN_CLASS, SHOWN]);
}

#[test]
fn json_keeps_hostile_names_exact_and_escaped() {
    let d3 = dump(2);
    let from_file = address("file_string");
    let holder = address("holder");
    for args in [
        vec![
            "summary",
            &d3,
            "--by",
            "class,location,method",
            "-f",
            "json",
        ],
        vec!["suspects", &d3, "-f", "json"],
        vec!["path", &d3, &from_file, "-f", "json"],
        vec!["inspect", &d3, &holder, "-f", "json"],
        vec!["inspect", &d3, &from_file, "-f", "json"],
    ] {
        let run = heapscope(&args);
        let v = run.json();
        let text = run.stdout_text();
        assert!(
            raw_controls(&text).is_empty(),
            "heapscope {args:?}: raw control characters in JSON"
        );
        // Decoded, the names are the program's own.
        assert!(v.to_string().contains(r"\u001b]0;PWNED\u0007"), "{args:?}");
        assert!(contains_raw(&v), "heapscope {args:?}: no exact name in {v}");
    }
}

fn contains_raw(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains(RAW),
        Value::Array(a) => a.iter().any(contains_raw),
        Value::Object(m) => m.values().any(contains_raw),
        _ => false,
    }
}
