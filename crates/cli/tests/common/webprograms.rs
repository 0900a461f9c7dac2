//! The Ruby programs of `tests/ruby/web` that the web UI and store tests
//! import: a leaking service's dump series and dumps full of HTML/JS attack
//! strings. Each runs once per test binary (`leaky_series`,
//! `hostile_dumps`); `LeakySeries::write` makes another series.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use tempfile::TempDir;

use super::{require_ruby, ruby_script, scratch_dir};

/// What `leaky_service.rb` wrote and its JSON summary.
pub struct LeakySeries {
    _dir: TempDir,
    /// The directory holding the dumps (and nothing else).
    pub dir: PathBuf,
    /// The dumps, in time order.
    pub dumps: Vec<PathBuf>,
    /// pid, dumps, times, requests_per_dump, leak/cache/churn sites with
    /// file, line, location, type and live counts per dump, leak_class,
    /// cache_cap (see the script's header).
    pub summary: Value,
}

impl LeakySeries {
    /// Runs `ruby tests/ruby/web/leaky_service.rb DIR N` in a new scratch
    /// directory.
    pub fn write(n: usize) -> LeakySeries {
        let dir = scratch_dir("heapscope-web-leaky-");
        let dumps_dir = dir.path().join("dumps");
        let summary = run_json(
            &ruby_script("web/leaky_service.rb"),
            &[dumps_dir.as_os_str(), n.to_string().as_ref()],
            dir.path(),
        );
        let dumps = names(&summary, &dumps_dir);
        assert_eq!(
            dumps.len(),
            n,
            "leaky_service.rb wrote {} dumps",
            dumps.len()
        );
        LeakySeries {
            _dir: dir,
            dir: dumps_dir,
            dumps,
            summary,
        }
    }

    /// The sites of "leak", "cache" or "churn".
    pub fn sites(&self, kind: &str) -> &Vec<Value> {
        self.summary[kind]
            .as_array()
            .unwrap_or_else(|| panic!("leaky_service.rb: no {kind:?} sites"))
    }

    /// `FILE:LINE` of each site of `kind`.
    pub fn locations(&self, kind: &str) -> Vec<String> {
        self.sites(kind)
            .iter()
            .map(|s| s["location"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn pid(&self) -> u64 {
        self.summary["pid"].as_u64().unwrap()
    }
}

/// The 5-dump series of `leaky_service.rb`, written once per test binary.
pub fn leaky_series() -> &'static LeakySeries {
    static SERIES: OnceLock<LeakySeries> = OnceLock::new();
    SERIES.get_or_init(|| LeakySeries::write(5))
}

/// What `hostile_web.rb` wrote and planted.
pub struct HostileDumps {
    _dir: TempDir,
    pub dir: PathBuf,
    /// The dumps, in time order (one process).
    pub dumps: Vec<PathBuf>,
    /// values, files, methods, classes, structs, symbols, gem {name, file},
    /// sites [{file, method, lines}], per_round (see the script's header).
    pub planted: Value,
}

impl HostileDumps {
    /// The planted strings of one place ("values", "files", ...).
    pub fn planted(&self, place: &str) -> Vec<String> {
        self.planted[place]
            .as_array()
            .unwrap_or_else(|| panic!("hostile_web.rb planted no {place:?}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    pub fn last(&self) -> &Path {
        self.dumps.last().unwrap()
    }
}

/// Three dumps of `hostile_web.rb`, written once per test binary.
pub fn hostile_dumps() -> &'static HostileDumps {
    static DUMPS: OnceLock<HostileDumps> = OnceLock::new();
    DUMPS.get_or_init(|| {
        let dir = scratch_dir("heapscope-web-hostile-");
        let dumps_dir = dir.path().join("dumps");
        std::fs::create_dir_all(&dumps_dir).unwrap();
        let planted = run_json(
            &ruby_script("web/hostile_web.rb"),
            &[dumps_dir.as_os_str(), "3".as_ref()],
            dir.path(),
        );
        let dumps = names(&planted, &dumps_dir);
        HostileDumps {
            _dir: dir,
            dir: dumps_dir,
            dumps,
            planted,
        }
    })
}

/// Runs `ruby SCRIPT ARGS` in `cwd`; its stdout must be one JSON object.
fn run_json(script: &Path, args: &[&std::ffi::OsStr], cwd: &Path) -> Value {
    require_ruby();
    let out = Command::new("ruby")
        .arg(script)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ruby {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "ruby {} failed ({}):\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{} printed no JSON ({e}):\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn names(summary: &Value, dir: &Path) -> Vec<PathBuf> {
    summary["dumps"]
        .as_array()
        .expect("a dumps list")
        .iter()
        .map(|n| dir.join(n.as_str().expect("a dump name")))
        .collect()
}
