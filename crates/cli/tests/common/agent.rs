//! Helpers for the agent's end-to-end tests: a staged Ruby library directory
//! with the freshly built native extension, and Ruby commands that load it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use super::repo_root;

/// The target directory this test binary was built into (`target/debug`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/<test binary>
    exe.parent()
        .and_then(|p| p.parent())
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// Builds the extension (a no-op when it is up to date: `cargo test` has
/// released its lock by the time tests run) and stages `ruby/lib` plus
/// `heapscope/heapscope_native.so` under `target/<profile>/heapscope-ruby/lib`.
/// Returns that directory, ready for `ruby -I DIR -rheapscope`.
pub fn ruby_lib() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let profile = target_dir()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut build = Command::new(env!("CARGO"));
        build
            .current_dir(repo_root())
            .args(["build", "--quiet", "-p", "heapscope-ruby"]);
        if profile == "release" {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build -p heapscope-ruby");
        assert!(status.success(), "building the Ruby extension failed");
        let so = target_dir().join("libheapscope_native.so");
        assert!(so.exists(), "{} was not built", so.display());
        // Stage into a fresh directory, then rename: test binaries run in
        // parallel and must never see half a tree.
        let staged = target_dir().join("heapscope-ruby");
        let tmp = target_dir().join(format!("heapscope-ruby.{}.tmp", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        copy_tree(&repo_root().join("ruby").join("lib"), &tmp.join("lib"));
        let _ = std::fs::remove_file(tmp.join("lib/heapscope/heapscope_native.so"));
        std::fs::copy(&so, tmp.join("lib/heapscope/heapscope_native.so")).expect("copy .so");
        let old = target_dir().join(format!("heapscope-ruby.{}.old", std::process::id()));
        let _ = std::fs::rename(&staged, &old);
        if std::fs::rename(&tmp, &staged).is_err() {
            // Another test binary staged the same files first.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        let _ = std::fs::remove_dir_all(&old);
        staged.join("lib")
    })
    .clone()
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else if entry.file_name() != "heapscope_native.so" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `ruby -I<staged lib>` with no HEAPSCOPE_* variables inherited from the
/// environment running the tests.
pub fn ruby() -> Command {
    let mut cmd = Command::new("ruby");
    cmd.arg("-I").arg(ruby_lib());
    for (k, _) in std::env::vars() {
        if k.starts_with("HEAPSCOPE_") || k == "RUBYOPT" {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// `heapscope summary DUMP --format json`: the dump reads with no malformed
/// lines; returns the JSON.
pub fn summary_ok(dump: &std::path::Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .arg("summary")
        .arg(dump)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "summary {}: {}",
        dump.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["diagnostics"]["malformed_lines"], 0, "{}", dump.display());
    assert!(v["totals"]["objects"].as_u64().unwrap() > 1000);
    assert!(v["diagnostics"]["roots"].as_u64().unwrap() > 0);
    v
}

/// Environment agent tests start from: no profiler and no statistics (each
/// tested on its own), dumps in `dir/dumps`, announcements in `dir/run`.
pub fn base_env(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("HEAPSCOPE_PROFILE", "0".into()),
        ("HEAPSCOPE_STATS", "0".into()),
        (
            "HEAPSCOPE_DUMP_DIR",
            dir.join("dumps").display().to_string(),
        ),
        (
            "HEAPSCOPE_RUNTIME_DIR",
            dir.join("run").display().to_string(),
        ),
    ]
}

/// `ruby -I lib -rheapscope/autostart -e PROGRAM` in `dir`, with the given
/// environment; stdin closed, stdout and stderr piped.
pub fn autostart_ruby(dir: &std::path::Path, program: &str, env: &[(&str, String)]) -> Command {
    let mut cmd = ruby();
    cmd.current_dir(dir)
        .arg("-rheapscope/autostart")
        .arg("-e")
        .arg(program)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Whether `program` is on PATH.
pub fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether Puma can serve here; prints why a test skips itself when not.
/// Debian builds Puma's C extension for its default Ruby only (3.3 in sid),
/// so the 3.4 chroot of the version matrix has none.
pub fn puma_usable() -> bool {
    if !which("puma") {
        eprintln!("SKIPPED: puma is not installed");
        return false;
    }
    let loads = Command::new("ruby")
        .args(["-e", "require 'puma'; require 'puma/puma_http11'"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !loads {
        eprintln!("SKIPPED: Puma's extension does not load on this Ruby");
    }
    loads
}
