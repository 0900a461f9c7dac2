//! Real Rubies for the version matrix (docs/ruby-versions.md).
//!
//! - **WebAssembly**: CRuby 3.2, 3.3, 3.4, 4.0 and head (4.1-dev) from npm
//!   (`@ruby/<ver>-wasm-wasi`), run by node through `scripts/wasm/run-ruby.mjs`.
//!   `scripts/lib.sh` (`ensure_wasm_rubies`) installs them under
//!   `$HSMATRIX_CACHE/wasm` (default `/var/cache/heapscope/wasm`); the tests
//!   find them through `HSMATRIX_WASM_RUBIES` or that default. 32-bit builds:
//!   good for the dump format, not for the agent.
//! - **Native**: whatever `ruby` is on PATH (Debian 12's 3.1 on the host; 3.3
//!   and 3.4 when `scripts/test` runs the suite again inside its chroots).
//!
//! Programs live in `tests/ruby/corpus`. Each runs in a fresh directory that
//! is its working directory (`/work` inside the wasm guest) and writes its
//! dumps and an optional `expect.json` (what it built, known by construction)
//! there. Wasm runs take a second or two each, so their output directories
//! are cached (`wasm_dumps_dir`), keyed by the program, the runner
//! and the version.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use super::agent::target_dir;
use super::{heapscope, repo_root};

/// Every wasm build the matrix runs, oldest first. `head` is 4.1-dev.
pub const WASM_VERSIONS: &[&str] = &["3.2", "3.3", "3.4", "4.0", "head"];

/// Where `ensure_wasm_rubies` put the npm packages.
pub fn wasm_modules_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HSMATRIX_WASM_RUBIES") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("HSMATRIX_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/heapscope"));
    cache.join("wasm")
}

/// Where wasm runs are cached: `HSMATRIX_WASM_DUMPS`, else
/// `target/<profile>/wasm-dumps`. `scripts/test` points the chroot runs at
/// the host's cache, so they reuse the host's wasm runs.
pub fn wasm_dumps_dir() -> PathBuf {
    std::env::var_os("HSMATRIX_WASM_DUMPS")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("wasm-dumps"))
}

/// `tests/ruby/corpus/NAME`.
pub fn corpus_program(name: &str) -> PathBuf {
    repo_root()
        .join("tests")
        .join("ruby")
        .join("corpus")
        .join(name)
}

/// Runs corpus program `name` under wasm Ruby `version` and returns the
/// directory holding what it wrote (cached between runs). Panics with the
/// program's output when it fails, and with a pointer to `scripts/test` when
/// the wasm Rubies are not installed.
pub fn wasm_run(version: &str, name: &str) -> PathBuf {
    let modules = wasm_modules_dir();
    let wasm = modules
        .join("node_modules/@ruby")
        .join(format!("{version}-wasm-wasi"))
        .join("dist/ruby+stdlib.wasm");
    assert!(
        wasm.exists(),
        "{} is missing: the wasm Rubies are installed by scripts/test \
         (ensure_wasm_rubies in scripts/lib.sh), or point HSMATRIX_WASM_RUBIES at them",
        wasm.display()
    );
    let program = corpus_program(name);
    let source = fs::read(&program).unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    let runner = repo_root().join("scripts/wasm/run-ruby.mjs");
    let mut hasher = DefaultHasher::new();
    source.hash(&mut hasher);
    fs::read(&runner).unwrap_or_default().hash(&mut hasher);
    version.hash(&mut hasher);
    let stem = name.trim_end_matches(".rb");
    let out = wasm_dumps_dir()
        .join(version)
        .join(format!("{stem}-{:016x}", hasher.finish()));
    if out.join(".done").exists() {
        return out;
    }
    // Run in a private directory, then rename: tests run in parallel and
    // several may ask for the same program.
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let work = out.with_extension(format!(
        "tmp{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join(name), &source).unwrap();
    let output = Command::new("bash")
        .arg("-c")
        .arg(
            "ulimit -s unlimited 2>/dev/null || true; exec node --no-warnings --single-threaded \
             --liftoff --no-wasm-tier-up --stack-size=50000 --no-incremental-marking \"$@\"",
        )
        .arg("node")
        .arg(&runner)
        .arg(&modules)
        .arg(version)
        .arg(&work)
        .arg(name)
        .output()
        .expect("run node (scripts/test installs nodejs)");
    assert_succeeded(&output, &format!("{name} under wasm Ruby {version}"));
    fs::write(work.join(".done"), b"").unwrap();
    if fs::rename(&work, &out).is_err() {
        // Another test finished the same run first.
        let _ = fs::remove_dir_all(&work);
    }
    assert!(
        out.join(".done").exists(),
        "{} was not written",
        out.display()
    );
    out
}

/// Runs corpus program `name` with the `ruby` on PATH in a fresh temporary
/// directory, which is returned (and removed when dropped).
pub fn native_run(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let program = corpus_program(name);
    fs::copy(&program, dir.path().join(name)).unwrap();
    let output = Command::new("ruby")
        .arg(name)
        .current_dir(dir.path())
        .output()
        .expect("run ruby");
    assert_succeeded(&output, &format!("ruby {name}"));
    dir
}

/// The `ruby` on PATH's `RUBY_VERSION` ("3.1.2").
pub fn native_version() -> String {
    let out = Command::new("ruby")
        .args(["-e", "print RUBY_VERSION"])
        .output()
        .expect("run ruby");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `DIR/expect.json`, parsed.
pub fn expectations(dir: &Path) -> Value {
    let path = dir.join("expect.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Panics with `what`'s exit status and output unless it succeeded.
fn assert_succeeded(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({})\n--- stdout:\n{}\n--- stderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// (label, output directory) of corpus program `name` under every wasm Ruby
/// ("wasm 3.4") and the native one ("native 3.1.2"). The native run's
/// temporary directory is kept alive by the returned guard.
pub fn every_ruby(name: &str) -> (Vec<(String, PathBuf)>, tempfile::TempDir) {
    let mut out: Vec<(String, PathBuf)> = WASM_VERSIONS
        .iter()
        .map(|v| (format!("wasm {v}"), wasm_run(v, name)))
        .collect();
    let native = native_run(name);
    out.push((
        format!("native {}", native_version()),
        native.path().to_path_buf(),
    ));
    (out, native)
}

/// Runs corpus program `name` under every wasm Ruby and calls `check` with
/// its output directory and the version.
pub fn check_on_wasm_rubies(name: &str, check: impl Fn(&Path, &str)) {
    for version in WASM_VERSIONS {
        check(&wasm_run(version, name), version);
    }
}

/// Runs corpus program `name` with the native Ruby and calls `check` with
/// its output directory and `RUBY_VERSION`.
pub fn check_on_native_ruby(name: &str, check: impl Fn(&Path, &str)) {
    let dir = native_run(name);
    check(dir.path(), &native_version());
}

/// `heapscope ARGS... --by class -n 0 --format json`, which must succeed.
pub fn by_class_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--by", "class", "-n", "0", "--format", "json"]);
    heapscope(&all).json()
}

/// The first row of report `v` whose `key` equals `value`, if any.
pub fn find_row<'a>(v: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    v["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no \"rows\" array in {v}"))
        .iter()
        .find(|r| r[key] == value)
}

/// The first row of report `v` whose `key` equals `value`; panics with
/// `context` and the report when there is none.
pub fn row<'a>(v: &'a Value, key: &str, value: &str, context: &str) -> &'a Value {
    find_row(v, key, value)
        .unwrap_or_else(|| panic!("{context}: no row with {key} == {value:?} in {v}"))
}

/// `heapscope path --format json DUMP ADDRESS`, which must succeed.
pub fn path_json(dump: &Path, address: &str) -> Value {
    heapscope(&["path", "--format", "json", dump.to_str().unwrap(), address]).json()
}

/// The `held_as` labels of a path's `steps`, in order (a root has none).
pub fn held_as_labels(steps: &Value) -> Vec<String> {
    steps
        .as_array()
        .unwrap_or_else(|| panic!("no path steps: {steps}"))
        .iter()
        .filter_map(|s| s["held_as"].as_str().map(str::to_string))
        .collect()
}
