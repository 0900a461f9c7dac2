//! Helpers shared by the integration tests: running the `heapscope` binary,
//! running the Ruby scripts of `tests/ruby`, and reading JSON output.
//!
//! Every test binary compiles this module, and not every binary uses every helper.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tempfile::TempDir;

pub mod agent;
pub mod browser;
pub mod gopprof;
pub mod pg;
pub mod process;
pub mod protoc;
pub mod rubies;
pub mod webprograms;

/// The workspace root (two levels above `crates/cli`).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("..").join("..");
    fs::canonicalize(&root).unwrap_or(root)
}

pub fn fixtures_dir() -> PathBuf {
    repo_root().join("tests").join("fixtures")
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

pub fn ruby_script(name: &str) -> PathBuf {
    repo_root().join("tests").join("ruby").join(name)
}

/// `tests/fixtures/expected.json`.
pub fn fixture_expectations() -> BTreeMap<String, Value> {
    let path = fixture("expected.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn stdout_text(&self) -> String {
        String::from_utf8(self.stdout.clone())
            .unwrap_or_else(|e| panic!("heapscope {:?}: stdout is not UTF-8: {e}", self.args))
    }

    /// Asserts exit code 0.
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "heapscope {:?} failed\n--- stderr:\n{}\n--- stdout:\n{}",
            self.args,
            self.stderr,
            String::from_utf8_lossy(&self.stdout)
        );
        self
    }

    /// Asserts exit code 0 and that stdout is exactly one JSON document.
    pub fn json(&self) -> Value {
        self.ok();
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "heapscope {:?}: stdout is not one JSON document: {e}\n--- stdout:\n{}",
                self.args,
                String::from_utf8_lossy(&self.stdout)
            )
        })
    }

    /// Asserts a failure with exit code 2 (usage or input error), nothing on
    /// stdout and a message on stderr.
    pub fn usage_error(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(2),
            "heapscope {:?}: expected exit code 2\n--- stderr:\n{}\n--- stdout:\n{}",
            self.args,
            self.stderr,
            String::from_utf8_lossy(&self.stdout)
        );
        assert!(
            self.stdout.is_empty(),
            "heapscope {:?}: an error must not print a report on stdout, got:\n{}",
            self.args,
            String::from_utf8_lossy(&self.stdout)
        );
        assert!(
            !self.stderr.trim().is_empty(),
            "heapscope {:?}: no error message on stderr",
            self.args
        );
        self
    }
}

fn command<S: AsRef<OsStr>>(args: &[S]) -> (Command, Vec<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_heapscope"));
    // stdout and stderr are pipes, so no progress bar is drawn.
    cmd.args(args);
    let shown = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    (cmd, shown)
}

/// Runs `heapscope ARGS` with stdin closed.
pub fn heapscope<S: AsRef<OsStr>>(args: &[S]) -> Run {
    heapscope_with_stdin(args, Stdio::null())
}

/// Runs `heapscope ARGS` reading `stdin`.
pub fn heapscope_with_stdin<S: AsRef<OsStr>>(args: &[S], stdin: impl Into<Stdio>) -> Run {
    let (mut cmd, shown) = command(args);
    let out = cmd
        .stdin(stdin)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", env!("CARGO_BIN_EXE_heapscope")));
    Run {
        args: shown,
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `heapscope summary DUMP EXTRA...`.
pub fn summary_run(dump: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<&OsStr> = vec![OsStr::new("summary"), dump.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    heapscope(&args)
}

/// `heapscope diff DUMPS... EXTRA...`.
pub fn diff_run(dumps: &[&Path], extra: &[&str]) -> Run {
    let mut args: Vec<&OsStr> = vec![OsStr::new("diff")];
    args.extend(dumps.iter().map(|p| p.as_os_str()));
    args.extend(extra.iter().map(OsStr::new));
    heapscope(&args)
}

/// `heapscope summary DUMP --format json EXTRA...`, which must succeed.
pub fn summary_json(dump: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    summary_run(dump, &args).json()
}

pub fn rows(v: &Value) -> &Vec<Value> {
    v["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no \"rows\" array in {v}"))
}

pub fn count_of(row: &Value) -> u64 {
    row["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("row without a numeric count: {row}"))
}

/// Rows whose `key` equals `value`.
pub fn rows_where<'a>(v: &'a Value, key: &str, value: &Value) -> Vec<&'a Value> {
    rows(v).iter().filter(|r| &r[key] == value).collect()
}

/// The count of the one row whose `key` equals `value`; panics when there is no
/// such row or several.
pub fn single_count(v: &Value, key: &str, value: &Value) -> u64 {
    let found = rows_where(v, key, value);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one row with {key} == {value}, found {}: {found:?}",
        found.len()
    );
    count_of(found[0])
}

/// `{key value as text: count}` for a one-key grouping; null becomes "null".
pub fn counts_by(v: &Value, key: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in rows(v) {
        let k = match &r[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        *out.entry(k).or_insert(0) += count_of(r);
    }
    out
}

pub fn sum_counts(v: &Value) -> u64 {
    rows(v).iter().map(count_of).sum()
}

/// `n` with thousands separators, as the tables print counts.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let head = match s.len() % 3 {
        0 => 3.min(s.len()),
        k => k,
    };
    let mut out = s[..head].to_string();
    for group in s.as_bytes()[head..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(group).unwrap());
    }
    out
}

/// Panics with a clear message when Ruby is not installed.
pub fn require_ruby() {
    static CHECKED: OnceLock<Result<String, String>> = OnceLock::new();
    let r = CHECKED.get_or_init(|| match Command::new("ruby").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        Ok(o) => Err(format!(
            "`ruby --version` failed: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!("cannot run `ruby`: {e}")),
    });
    if let Err(e) = r {
        panic!(
            "these tests need Ruby (3.1 on Debian 12: `apt-get install ruby`) to write real heap \
             dumps with tests/ruby/*.rb; {e}"
        );
    }
}

/// Runs `ruby SCRIPT ARGS` in `dir` with extra environment variables.
pub fn run_ruby(script: &Path, args: &[&Path], env: &[(&str, &str)], dir: &Path) {
    require_ruby();
    let mut cmd = Command::new("ruby");
    cmd.arg(script).args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run ruby {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "ruby {} {:?} failed ({}):\n{}{}",
        script.display(),
        args,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A temporary directory under Cargo's target/tmp. A directory kept in a
/// `static` is never dropped, so directories that earlier runs made with the
/// same prefix are removed first once they are an hour old (no test run lasts
/// that long; a younger one may belong to a run going on at the same time).
pub fn scratch_dir(prefix: &str) -> TempDir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(base).expect("create CARGO_TARGET_TMPDIR");
    let stale_after = Duration::from_secs(3600);
    if let Ok(entries) = fs::read_dir(base) {
        for e in entries.flatten() {
            let stale = e.file_name().to_string_lossy().starts_with(prefix)
                && e.metadata()
                    .and_then(|m| m.modified())
                    .map(|t| SystemTime::now().duration_since(t).unwrap_or_default() > stale_after)
                    .unwrap_or(false);
            if stale {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .expect("create a scratch directory")
}

/// The dump written by `tests/ruby/population.rb` and its expectations.
pub struct Population {
    _dir: TempDir,
    pub dump: PathBuf,
    pub expected: Value,
}

impl Population {
    /// `(name, population)` pairs.
    pub fn populations(&self) -> Vec<(&str, &Value)> {
        self.expected["populations"]
            .as_object()
            .expect("populations")
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect()
    }

    pub fn population(&self, name: &str) -> &Value {
        let p = &self.expected["populations"][name];
        assert!(
            p.is_object(),
            "population {name} missing from the expectations"
        );
        p
    }

    pub fn num(&self, key: &str) -> u64 {
        self.expected[key]
            .as_u64()
            .unwrap_or_else(|| panic!("expectation {key} is not a number"))
    }
}

/// Runs `ruby tests/ruby/population.rb` once per test binary.
pub fn population() -> &'static Population {
    static POP: OnceLock<Population> = OnceLock::new();
    POP.get_or_init(|| {
        let dir = scratch_dir("heapscope-population-");
        let dump = dir.path().join("population.dump");
        let expected_path = dir.path().join("population.json");
        run_ruby(
            &ruby_script("population.rb"),
            &[&dump, &expected_path],
            &[],
            dir.path(),
        );
        let text = fs::read_to_string(&expected_path).expect("population.rb wrote no expectations");
        let expected: Value =
            serde_json::from_str(&text).expect("population.rb wrote invalid JSON");
        assert_eq!(
            expected["schema"], 1,
            "population.rb: unknown expectation schema"
        );
        Population {
            _dir: dir,
            dump,
            expected,
        }
    })
}

/// The names of the entries of `dir`, sorted; none when it cannot be read.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
