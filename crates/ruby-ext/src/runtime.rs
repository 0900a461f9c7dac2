//! The agent runtime's native side (`Heapscope::Native`): settings checked by
//! the shared table, the dump signal's async-signal-safe handler and the
//! self-pipe that wakes the agent thread, request/job counters, the
//! statistics record, dump file names and retention, and the announcement
//! file. The agent thread itself and everything that forks live in Ruby
//! (`ruby/lib/heapscope.rb`).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use heapscope_agent::config::{self, Settings, Value as Setting};
use heapscope_agent::dumpfiles::{self, DumpName};
use heapscope_agent::procmem;
use heapscope_agent::secure;
use heapscope_agent::state::{self, AgentState, Announcement, DumpState, DumpStatus, TraceState};
use heapscope_agent::stats::{self, GC_STAT_KEYS};
use magnus::{function, prelude::*, Error, IntoValue, RArray, RHash, RModule, Ruby, Symbol, Value};

mod signal;

pub fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    native.define_singleton_method("resolve_settings", function!(resolve_settings, 2))?;
    native.define_singleton_method("pipe_open", function!(signal::pipe_open, 0))?;
    native.define_singleton_method("wake", function!(signal::wake, 1))?;
    native.define_singleton_method("signal_install", function!(signal::install, 1))?;
    native.define_singleton_method("signal_uninstall", function!(signal::uninstall, 0))?;
    native.define_singleton_method("signal_installed?", function!(signal::installed, 0))?;
    native.define_singleton_method("set_pdeathsig", function!(signal::set_pdeathsig, 1))?;
    native.define_singleton_method("count", function!(count, 1))?;
    native.define_singleton_method("count_value", function!(count_value, 1))?;
    native.define_singleton_method("counts_reset", function!(counts_reset, 0))?;
    native.define_singleton_method("rss_bytes", function!(procmem::rss_bytes, 0))?;
    native.define_singleton_method("stats_line", function!(stats_line, 3))?;
    native.define_singleton_method("dump_paths", function!(dump_paths, 4))?;
    native.define_singleton_method("prune_dumps", function!(prune_dumps, 3))?;
    native.define_singleton_method("remove_stale_temps", function!(remove_stale_temps, 1))?;
    native.define_singleton_method("runtime_dir", function!(runtime_dir, 1))?;
    native.define_singleton_method("write_state", function!(write_state, 2))?;
    native.define_singleton_method("remove_state", function!(remove_state, 2))?;
    native.define_singleton_method("prepare_runtime_dir", function!(prepare_runtime_dir, 1))?;
    native.define_singleton_method("remove_stale_states", function!(remove_stale_states, 1))?;
    native.define_singleton_method("mkdir_private", function!(mkdir_private, 1))?;
    native.define_singleton_method("expand_path", function!(expand_path, 5))?;
    native.define_singleton_method("signal_name", function!(config::signal_name, 1))?;
    let _ = ruby;
    Ok(())
}

fn io_error(ruby: &Ruby, what: &str, e: std::io::Error) -> Error {
    Error::new(ruby.exception_io_error(), format!("{what}: {e}"))
}

/// `resolve_settings(env, opts)`: `env` maps variable names to strings (only
/// `HEAPSCOPE_*` ones are read), `opts` maps option keys to strings. Returns
/// `{key: value}` with booleans, floats, integers, strings, and the dump
/// signal as an Integer or nil, plus `_warnings` (unknown variables); raises
/// ArgumentError listing every problem.
fn resolve_settings(ruby: &Ruby, env: RHash, opts: RHash) -> Result<RHash, Error> {
    let env = env.to_hash_map::<String, String>()?;
    let opts = opts.to_hash_map::<String, String>()?;
    let settings = Settings::resolve(env, opts.iter().map(|(k, v)| (k.as_str(), v.clone())))
        .map_err(|errors| {
            let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            Error::new(ruby.exception_arg_error(), text.join("; "))
        })?;
    let out = ruby.hash_new();
    for (key, value) in settings.iter() {
        let v: Value = match value {
            Setting::Bool(b) => (*b).into_value_with(ruby),
            Setting::Float(f) => (*f).into_value_with(ruby),
            Setting::Count(n) => (*n).into_value_with(ruby),
            Setting::Text(s) => s.as_str().into_value_with(ruby),
            Setting::Signal(s) => (*s).into_value_with(ruby),
        };
        out.aset(ruby.to_symbol(key), v)?;
    }
    // Unknown HEAPSCOPE_* variables: Heapscope.resolve_settings prints them.
    let warnings = ruby.ary_new();
    for w in &settings.warnings {
        warnings.push(w.to_string())?;
    }
    out.aset(ruby.to_symbol("_warnings"), warnings)?;
    Ok(out)
}

/// Requests and jobs seen in this process (reset in a forked child).
static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static JOBS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn counter(ruby: &Ruby, which: Symbol) -> Result<&'static std::sync::atomic::AtomicU64, Error> {
    match which.name()?.as_ref() {
        "requests" => Ok(&REQUESTS),
        "jobs" => Ok(&JOBS),
        other => Err(Error::new(
            ruby.exception_arg_error(),
            format!("no counter {other} (requests or jobs)"),
        )),
    }
}

/// `count(:requests)` / `count(:jobs)`: adds one and returns the new total.
fn count(ruby: &Ruby, which: Symbol) -> Result<u64, Error> {
    Ok(counter(ruby, which)?.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1)
}

/// `count_value(:requests)`: the total so far.
fn count_value(ruby: &Ruby, which: Symbol) -> Result<u64, Error> {
    Ok(counter(ruby, which)?.load(std::sync::atomic::Ordering::Relaxed))
}

fn counts_reset() {
    REQUESTS.store(0, std::sync::atomic::Ordering::Relaxed);
    JOBS.store(0, std::sync::atomic::Ordering::Relaxed);
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One statistics record as a JSON line (with its newline). `requests` and
/// `jobs` are written when not nil. `GC.stat(:key)` is asked one key at a
/// time so no Hash is allocated.
/// `stats_line(requests, jobs, profiler_off)`: one statistics record.
/// `profiler_off` is the Ruby layer's reason the profiler is off (such as
/// "gc_library"), or nil; Ractors seen by the native side take precedence.
fn stats_line(
    ruby: &Ruby,
    requests: Option<u64>,
    jobs: Option<u64>,
    profiler_off: Option<String>,
) -> Result<String, Error> {
    let gc: RModule = ruby.class_object().const_get("GC")?;
    let mut values = Vec::with_capacity(GC_STAT_KEYS.len());
    for key in GC_STAT_KEYS {
        let v: Value = gc.funcall("stat", (ruby.to_symbol(key),))?;
        values.push(Option::<i64>::try_convert(v).ok().flatten().unwrap_or(0));
    }
    Ok(stats::record_line(
        unix_now(),
        std::process::id(),
        procmem::rss_bytes(),
        &values,
        requests,
        jobs,
        if crate::profiler::ractors_seen() {
            Some("ractors")
        } else {
            profiler_off.as_deref()
        },
    ))
}

/// `dump_paths(dir, pid, unixtime, seq)` → `[final, temp]`.
fn dump_paths(dir: PathBuf, pid: u32, unixtime: u64, seq: u64) -> (PathBuf, PathBuf) {
    dumpfiles::dump_paths(&dir, DumpName { pid, unixtime, seq })
}

/// Deletes the oldest dumps of `pid` beyond `keep`; returns the deleted paths.
fn prune_dumps(ruby: &Ruby, dir: PathBuf, pid: u32, keep: u64) -> Result<RArray, Error> {
    let removed =
        dumpfiles::enforce_keep(&dir, pid, keep).map_err(|e| io_error(ruby, "pruning dumps", e))?;
    Ok(ruby.ary_from_iter(removed.iter().map(|p| p.to_string_lossy().into_owned())))
}

/// Removes temporary dump files of processes that are gone.
fn remove_stale_temps(ruby: &Ruby, dir: PathBuf) -> Result<RArray, Error> {
    let removed = dumpfiles::remove_stale_temps(&dir, dumpfiles::pid_alive)
        .map_err(|e| io_error(ruby, "removing stale temporary dumps", e))?;
    Ok(ruby.ary_from_iter(removed.iter().map(|p| p.to_string_lossy().into_owned())))
}

fn runtime_dir(configured: String) -> PathBuf {
    state::runtime_dir(&configured)
}

fn expand_path(pattern: String, base: PathBuf, pid: u32, time: String, seq: u64) -> PathBuf {
    config::expand_path(&pattern, &base, pid, &time, seq)
}

fn get<T: magnus::TryConvert>(ruby: &Ruby, h: RHash, key: &str) -> Result<T, Error> {
    h.lookup(ruby.to_symbol(key))
}

/// `write_state(runtime_dir, {pid:, started_at:, dump_signal:, dump_dir:,
/// stats_path:, profile_path:, last_dump: {seq:, path:, state:, error:,
/// reason:} | nil, trace: {seq:, active:, by_agent:, since:, message:}})`:
/// writes `agent-<pid>.json` atomically; returns its path.
fn write_state(ruby: &Ruby, dir: PathBuf, h: RHash) -> Result<PathBuf, Error> {
    let last: Option<RHash> = get(ruby, h, "last_dump")?;
    let last_dump = match last {
        None => None,
        Some(d) => {
            let state_text: String = get(ruby, d, "state")?;
            let state = match state_text.as_str() {
                "writing" => DumpState::Writing,
                "done" => DumpState::Done,
                "failed" => DumpState::Failed,
                other => {
                    return Err(Error::new(
                        ruby.exception_arg_error(),
                        format!("unknown dump state {other:?}"),
                    ))
                }
            };
            Some(DumpStatus {
                seq: get(ruby, d, "seq")?,
                path: get(ruby, d, "path")?,
                state,
                error: get(ruby, d, "error")?,
                reason: get(ruby, d, "reason")?,
            })
        }
    };
    let s = AgentState {
        pid: get(ruby, h, "pid")?,
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: get(ruby, h, "started_at")?,
        dump_signal: get(ruby, h, "dump_signal")?,
        dump_dir: get(ruby, h, "dump_dir")?,
        stats_path: get(ruby, h, "stats_path")?,
        profile_path: get(ruby, h, "profile_path")?,
        last_dump,
        trace: match get::<Option<RHash>>(ruby, h, "trace")? {
            None => None,
            Some(t) => Some(TraceState {
                seq: get(ruby, t, "seq")?,
                active: get(ruby, t, "active")?,
                by_agent: get(ruby, t, "by_agent")?,
                since: get(ruby, t, "since")?,
                message: get(ruby, t, "message")?,
            }),
        },
    };
    Announcement::for_this_process(s)
        .write(&dir)
        .map_err(|e| io_error(ruby, "writing the agent state", e))
}

/// `prepare_runtime_dir(dir)`: creates the runtime directory 0700 when
/// missing and checks it is this user's, not writable by others and not a
/// symlink; raises IOError saying what is wrong otherwise.
fn prepare_runtime_dir(ruby: &Ruby, dir: PathBuf) -> Result<PathBuf, Error> {
    secure::prepare_runtime_dir(&dir)
        .map_err(|e| Error::new(ruby.exception_io_error(), format!("runtime directory: {e}")))?;
    Ok(dir)
}

/// Removes this user's announcements of processes that are gone (or whose
/// pid now names another process); returns their paths.
fn remove_stale_states(ruby: &Ruby, dir: PathBuf) -> RArray {
    let removed = state::remove_stale(&dir);
    ruby.ary_from_iter(removed.iter().map(|p| p.to_string_lossy().into_owned()))
}

/// `mkdir_private(dir)`: creates `dir` and its missing parents 0700.
fn mkdir_private(ruby: &Ruby, dir: PathBuf) -> Result<PathBuf, Error> {
    secure::create_private_dir_all(&dir)
        .map_err(|e| io_error(ruby, &format!("creating {}", dir.display()), e))?;
    Ok(dir)
}

/// Removes `agent-<pid>.json` (when it is this user's file); true when it
/// was there.
fn remove_state(dir: PathBuf, pid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let path = state::state_path(Path::new(&dir), pid);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.uid() == secure::euid() => std::fs::remove_file(&path).is_ok(),
        _ => false,
    }
}
