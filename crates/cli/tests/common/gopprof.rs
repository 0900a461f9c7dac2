//! Running the real `go tool pprof` (Debian's golang-go) on profiles, so
//! tests see what a user of pprof sees: names after pprof's own symbolizing
//! and demangling, sample types, warnings.

use std::path::Path;
use std::process::Command;

/// `go tool pprof ARGS PROFILE`: asserts success; returns (stdout, stderr).
/// The report, header included (`File:`, comments, `Type:`), is on stdout;
/// warnings are on stderr.
pub fn run(args: &[&str], profile: &Path) -> (String, String) {
    let out = Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .arg(profile)
        // No network symbolization, no browser, no writes to $HOME.
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .env("PPROF_BINARY_PATH", "/nonexistent")
        .env("GOFLAGS", "")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `go tool pprof` ({e}): install Debian's golang-go"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "go tool pprof {args:?} {} failed ({})\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}",
        profile.display(),
        out.status
    );
    (stdout, stderr)
}

/// Warnings pprof prints when it cannot treat a profile as complete.
pub const BAD_WARNINGS: &[&str] = &[
    "Main binary filename not available",
    "unknown",
    "failed",
    "no such file",
];

/// Asserts that pprof's stderr has none of [`BAD_WARNINGS`].
pub fn assert_no_warnings(stderr: &str) {
    for w in BAD_WARNINGS {
        assert!(
            !stderr.to_lowercase().contains(&w.to_lowercase()),
            "go tool pprof warned {w:?}:\n{stderr}"
        );
    }
}

/// The function names of a `-top` report's rows (the text after the five
/// numeric columns), in order.
pub fn top_names(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let numeric = cols.len() > 5 && cols[1].ends_with('%') && cols[4].ends_with('%');
            numeric.then(|| {
                // Skip five columns, keep the rest with its own spacing.
                let mut rest = l.trim_start();
                for _ in 0..5 {
                    rest = rest.trim_start();
                    rest = &rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..];
                }
                rest.trim().to_string()
            })
        })
        .collect()
}

/// The stacks of a `-traces` report, leaf first, one per sample. Each trace
/// line is `%10s   NAME` (the value on the first frame only) and label lines
/// are `%10s:  VALUE`, so a frame's name starts at column 13.
pub fn trace_frames(stdout: &str) -> Vec<Vec<String>> {
    let sep = "-----------+";
    stdout
        .split(sep)
        .skip(1)
        .map(|chunk| {
            chunk
                .lines()
                .skip(1) // the rest of the separator line
                .filter(|l| l.len() > 13 && l.as_bytes()[10] != b':')
                .map(|l| l[13..].to_string())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect()
}
