//! The agent's settings: one table of options, read from `HEAPSCOPE_*`
//! environment variables (how `heapscope run` and process managers configure
//! it), from `Heapscope.start(...)` keyword arguments, and offered as
//! `heapscope run` flags. Keeping them in one table is what makes every option
//! available in all three places with one name, one default and one check.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// What values an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `1/0`, `true/false`, `yes/no`, `on/off`.
    Bool,
    /// A number > 0 and <= 1.
    Rate,
    /// A whole number >= 0.
    Count,
    /// Seconds, a number >= 0 (fractions allowed); 0 means "off" where noted.
    Seconds,
    /// A file or directory path, or a pattern with `%{pid}`, `%{time}`, `%{seq}`.
    Path,
    /// A signal name (`USR2`, `SIGPWR`, `RTMIN+7`), a number, or `off`.
    Signal,
    /// Free text (a secret): any value without a NUL byte.
    Text,
}

/// One option: its key (the `Heapscope.start` keyword and, with `-` for `_`,
/// the `heapscope run --FLAG`), its environment variable, default and help.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    pub key: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub help: &'static str,
}

impl OptionSpec {
    /// `HEAPSCOPE_SAMPLE_RATE` for `sample_rate`.
    pub fn env_name(&self) -> String {
        format!("HEAPSCOPE_{}", self.key.to_ascii_uppercase())
    }

    /// `sample-rate` for `sample_rate`.
    pub fn flag(&self) -> String {
        self.key.replace('_', "-")
    }
}

/// The default dump signal. Puma, Sidekiq, Unicorn, rbtrace (URG), sigdump
/// (CONT), stackprof (PROF) and Ruby itself (VTALRM) all use classic
/// signals; nothing in the Ruby world uses the real-time range, and Ruby's
/// `Signal.trap` cannot even name it, so an app cannot clobber it by accident.
pub const DEFAULT_DUMP_SIGNAL: &str = "RTMIN+7";

/// Every option the agent understands.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "enabled",
        kind: Kind::Bool,
        default: "1",
        help: "Load the agent at all (0 leaves the app untouched).",
    },
    OptionSpec {
        key: "profile",
        kind: Kind::Bool,
        default: "1",
        help: "Run the sampling heap profiler (pprof files).",
    },
    OptionSpec {
        key: "sample_rate",
        kind: Kind::Rate,
        default: "0.01",
        help: "Share of allocations the profiler samples, in (0, 1]; 1 records every allocation.",
    },
    OptionSpec {
        key: "sample_duty",
        kind: Kind::Rate,
        default: "0.05",
        help: "Share of the intervals between GCs in which the profiler watches allocations \
               (1: always, as sample rate 1 implies). Ruby slows every allocation while \
               they are watched; estimates are scaled by the share seen.",
    },
    OptionSpec {
        key: "profile_path",
        kind: Kind::Path,
        default: "tmp/profiles/mem-%{pid}-%{time}.pprof.gz",
        help: "Where profiles are written; %{pid} and %{time} (ISO 8601, UTC) are filled in.",
    },
    OptionSpec {
        key: "profile_interval",
        kind: Kind::Seconds,
        default: "60",
        help: "Seconds between profile flushes (0: only at exit).",
    },
    OptionSpec {
        key: "max_samples",
        kind: Kind::Count,
        default: "100000",
        help: "Most live sampled objects tracked at once; more are dropped and counted.",
    },
    OptionSpec {
        key: "max_frames",
        kind: Kind::Count,
        default: "64",
        help: "Deepest stack recorded per sample (the innermost frames are kept).",
    },
    OptionSpec {
        key: "profile_agent",
        kind: Kind::Bool,
        default: "0",
        help: "Count the agent's own allocations (its thread, Heapscope.start, the middleware's \
               counting) in profiles; by default they are left out and only counted in the \
               profile's agent_allocations comment.",
    },
    OptionSpec {
        key: "stats",
        kind: Kind::Bool,
        default: "1",
        help: "Write memory and GC statistics (JSON lines) every stats interval.",
    },
    OptionSpec {
        key: "stats_path",
        kind: Kind::Path,
        default: "tmp/profiles/gc-%{pid}.jsonl",
        help: "Where the statistics records go; %{pid} is filled in.",
    },
    OptionSpec {
        key: "stats_interval",
        kind: Kind::Seconds,
        default: "1",
        help: "Seconds between statistics records.",
    },
    OptionSpec {
        key: "dump_signal",
        kind: Kind::Signal,
        default: DEFAULT_DUMP_SIGNAL,
        help: "Signal that asks for a heap dump (`heapscope dump PID` sends it); off disables.",
    },
    OptionSpec {
        key: "dump_dir",
        kind: Kind::Path,
        default: "tmp/heapscope",
        help: "Directory for heap dumps (heap-<pid>-<unixtime>-<seq>.dump).",
    },
    OptionSpec {
        key: "dump_gc",
        kind: Kind::Bool,
        default: "1",
        help: "Run a full GC before each dump (in the forked child, so the app does not pause).",
    },
    OptionSpec {
        key: "dump_every_seconds",
        kind: Kind::Seconds,
        default: "0",
        help: "Dump the heap every N seconds (0: off).",
    },
    OptionSpec {
        key: "dump_every_requests",
        kind: Kind::Count,
        default: "0",
        help: "Dump the heap every N Rack requests (0: off).",
    },
    OptionSpec {
        key: "dump_every_jobs",
        kind: Kind::Count,
        default: "0",
        help: "Dump the heap every N Sidekiq jobs (0: off).",
    },
    OptionSpec {
        key: "dump_keep",
        kind: Kind::Count,
        default: "20",
        help: "Most dumps kept per process; older ones are deleted (0: keep all).",
    },
    OptionSpec {
        key: "trace_allocations",
        kind: Kind::Bool,
        default: "0",
        help: "Start ObjectSpace allocation tracing at boot, so dumps carry file, line and \
               generation (costs time and memory on every allocation; `heapscope trace PID on|off` \
               switches it later).",
    },
    OptionSpec {
        key: "runtime_dir",
        kind: Kind::Path,
        default: "",
        help: "Where the agent announces itself to `heapscope dump` \
               (default $XDG_RUNTIME_DIR/heapscope or /tmp/heapscope-<uid>).",
    },
    OptionSpec {
        key: "child_min_lifetime",
        kind: Kind::Seconds,
        default: "1",
        help: "A forked child (not the agent's own dump children) writes its statistics, \
               profiles and announcement only once it has lived this many seconds, so \
               fork-per-job apps do not leave files for every short job (0: at once).",
    },
    OptionSpec {
        key: "verbose",
        kind: Kind::Bool,
        default: "0",
        help: "Log each dump and profile flush to stderr.",
    },
    OptionSpec {
        key: "rack_tools",
        kind: Kind::Bool,
        default: "0",
        help: "Serve the Rack profiling pages (`?hs=help`, `?hs=profile-gc`, \
               `?hs=analyze-memory`) to authorized requests: from loopback in a development or \
               test RACK_ENV/RAILS_ENV, allowed by Heapscope.authorize_request(env), or with \
               the rack token. Any other request passes through untouched.",
    },
    OptionSpec {
        key: "bench_report",
        kind: Kind::Text,
        default: "",
        help: "Set by `heapscope bench --report`: `memory` (an exact allocation report, as \
               Heapscope.report) or `gc` (GC counters) over the Rack requests that follow the \
               bench_report_skip first ones, bench_report_requests of them (empty: off).",
    },
    OptionSpec {
        key: "bench_report_dir",
        kind: Kind::Path,
        default: "",
        help: "Directory the bench report's files are written into (`heapscope bench` reads them).",
    },
    OptionSpec {
        key: "bench_report_skip",
        kind: Kind::Count,
        default: "0",
        help: "Rack requests (the bench's warm-up) the bench report leaves out before it starts.",
    },
    OptionSpec {
        key: "bench_report_requests",
        kind: Kind::Count,
        default: "0",
        help: "Rack requests the bench report covers; it is written when the last one ends.",
    },
    OptionSpec {
        key: "rack_token",
        kind: Kind::Text,
        default: "",
        help: "Secret that authorizes a request to the Rack profiling pages when sent in an \
               X-Heapscope-Token header (empty: no token works). Prefer the environment \
               variable: a flag shows in the process list.",
    },
];

/// `HEAPSCOPE_*` variables (without the prefix) that other parts of
/// heapscope read (the CLI, plots, tests, benchmarks): not agent settings,
/// and not typos either.
pub const OTHER_VARIABLES: &[&str] = &[
    "RUBY_LIB",
    "TIMINGS",
    "PLOT_FONT",
    "PLOT_SAMPLE",
    "PPROF_PROTO_DIR",
    "REQUIRE_MEM_OUT",
    "REQUIRE_MEM_PAGE",
    "BIN",
    "RUNS",
    "WARNED_PID",
    // `heapscope profile`'s report of a whole run (ruby/lib/heapscope/profile_run.rb).
    "REPORT_PID",
    "REPORT_TOP",
    "REPORT_ALLOW_FILES",
    "REPORT_IGNORE_FILES",
    "REPORT_THREADS",
    "REPORT_OUT",
];

/// The variable through which a process remembers that it has warned about
/// unknown `HEAPSCOPE_*` variables: it holds the pid that warned, and
/// survives `exec` (`heapscope run` execs the app; `bundle exec` execs
/// again), so each process warns once.
pub const WARNED_PID_VARIABLE: &str = "HEAPSCOPE_WARNED_PID";

/// Edit distance between two names, a swap of neighbours counting as one
/// edit (optimal string alignment): `SAMPEL` is one edit from `SAMPLE`.
fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

/// The known key closest to `key` (an option key, or with `variables` also
/// the other `HEAPSCOPE_*` variables, upper case without the prefix), when
/// it is close enough to be a typo of it: at most a third of its length
/// away, and at least 1 edit allowed.
pub fn closest_key(key: &str, variables: bool) -> Option<String> {
    let key = key.to_ascii_uppercase().replace('-', "_");
    let mut candidates: Vec<String> = OPTIONS.iter().map(|o| o.key.to_ascii_uppercase()).collect();
    if variables {
        candidates.extend(OTHER_VARIABLES.iter().map(|v| v.to_string()));
    }
    candidates
        .into_iter()
        .map(|c| (edit_distance(key.as_bytes(), c.as_bytes()), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min()
        .map(|(_, c)| c)
}

/// The option with this key (`sample_rate`) or flag (`sample-rate`).
pub fn option(key: &str) -> Option<&'static OptionSpec> {
    let key = key.replace('-', "_");
    OPTIONS.iter().find(|o| o.key == key)
}

/// A checked setting value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Float(f64),
    Count(u64),
    Text(String),
    Signal(Option<i32>),
}

/// All settings, checked. Every key of [`OPTIONS`] is present.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    values: BTreeMap<&'static str, Value>,
    /// `HEAPSCOPE_*` variables that are no setting (a typo, or another
    /// tool's variable): reported, but not fatal, since the environment is
    /// often shared with things heapscope does not control.
    pub warnings: Vec<SettingError>,
}

/// Why a setting was refused: which option, where it came from, and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingError {
    pub source: String,
    pub message: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

impl Settings {
    /// Settings from the `HEAPSCOPE_*` variables in `env`, then `overrides`
    /// (keys as in [`OPTIONS`], e.g. from `Heapscope.start`). Unknown keys
    /// are errors and unknown `HEAPSCOPE_*` variables are warnings, so a typo
    /// is never silently ignored. All problems are reported, not just the
    /// first.
    pub fn resolve<'a>(
        env: impl IntoIterator<Item = (String, String)>,
        overrides: impl IntoIterator<Item = (&'a str, String)>,
    ) -> Result<Settings, Vec<SettingError>> {
        Settings::resolve_from(env, overrides, |key| format!("Heapscope.start({key}:)"))
    }

    /// [`Settings::resolve`], naming where overrides came from with
    /// `source(key)` in errors (`--sample-rate` for `heapscope run`).
    pub fn resolve_from<'a>(
        env: impl IntoIterator<Item = (String, String)>,
        overrides: impl IntoIterator<Item = (&'a str, String)>,
        source: impl Fn(&str) -> String,
    ) -> Result<Settings, Vec<SettingError>> {
        let mut raw: BTreeMap<&'static str, (String, String)> = BTreeMap::new();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        for (name, value) in env {
            let Some(key) = name.strip_prefix("HEAPSCOPE_") else {
                continue;
            };
            if OTHER_VARIABLES.contains(&key) {
                continue;
            }
            match option(&key.to_ascii_lowercase()) {
                Some(o) => {
                    raw.insert(o.key, (value, name));
                }
                None => warnings.push(SettingError {
                    source: name.clone(),
                    message: match closest_key(key, true) {
                        Some(k) => {
                            format!("not a heapscope setting, ignored; did you mean HEAPSCOPE_{k}?")
                        }
                        None => format!(
                            "not a heapscope setting, ignored (known: {})",
                            known_env_names()
                        ),
                    },
                }),
            }
        }
        for (key, value) in overrides {
            match option(key) {
                Some(o) => {
                    raw.insert(o.key, (value, source(o.key)));
                }
                None => errors.push(SettingError {
                    source: source(key),
                    message: match closest_key(key, false) {
                        Some(k) => format!(
                            "unknown setting; did you mean {}?",
                            source(&k.to_ascii_lowercase())
                        ),
                        None => "unknown setting".into(),
                    },
                }),
            }
        }
        let mut values = BTreeMap::new();
        for o in OPTIONS {
            let (text, source) = match raw.remove(o.key) {
                Some(v) => v,
                None => (
                    o.default.to_string(),
                    format!("default of {}", o.env_name()),
                ),
            };
            match parse_value(o, text.trim()) {
                Ok(v) => {
                    values.insert(o.key, v);
                }
                Err(message) => errors.push(SettingError { source, message }),
            }
        }
        if errors.is_empty() {
            Ok(Settings { values, warnings })
        } else {
            Err(errors)
        }
    }

    /// The defaults alone.
    pub fn defaults() -> Settings {
        Settings::resolve(Vec::new(), Vec::new()).expect("the defaults are valid")
    }

    pub fn get(&self, key: &str) -> &Value {
        self.values
            .get(key)
            .unwrap_or_else(|| panic!("no setting {key}"))
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Value::Bool(true))
    }

    pub fn float(&self, key: &str) -> f64 {
        match self.get(key) {
            Value::Float(f) => *f,
            Value::Count(n) => *n as f64,
            v => panic!("{key} is not a number: {v:?}"),
        }
    }

    pub fn count(&self, key: &str) -> u64 {
        match self.get(key) {
            Value::Count(n) => *n,
            v => panic!("{key} is not a count: {v:?}"),
        }
    }

    pub fn text(&self, key: &str) -> &str {
        match self.get(key) {
            Value::Text(s) => s,
            v => panic!("{key} is not text: {v:?}"),
        }
    }

    /// The dump signal's number, or None when dumps on signal are off.
    pub fn dump_signal(&self) -> Option<i32> {
        match self.get("dump_signal") {
            Value::Signal(s) => *s,
            v => panic!("dump_signal is not a signal: {v:?}"),
        }
    }

    /// All values, in option order, for handing to Ruby.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        OPTIONS.iter().map(move |o| (o.key, &self.values[o.key]))
    }
}

fn known_env_names() -> String {
    OPTIONS
        .iter()
        .map(|o| o.env_name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_value(o: &OptionSpec, text: &str) -> Result<Value, String> {
    match o.kind {
        Kind::Bool => parse_bool(text)
            .map(Value::Bool)
            .ok_or_else(|| format!("{text:?} is not a yes/no value (use 1 or 0)")),
        Kind::Rate => match text.parse::<f64>() {
            Ok(r) if r > 0.0 && r <= 1.0 => Ok(Value::Float(r)),
            _ => Err(format!(
                "{text:?} is not a sample rate: use a number above 0 and at most 1 \
                 (0.01 samples one allocation in 100)"
            )),
        },
        Kind::Count => text
            .parse::<u64>()
            .map(Value::Count)
            .map_err(|_| format!("{text:?} is not a whole number >= 0")),
        Kind::Seconds => match text.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => Ok(Value::Float(s)),
            _ => Err(format!("{text:?} is not a number of seconds >= 0")),
        },
        Kind::Path => {
            if text.contains('\0') {
                Err("a path cannot contain a NUL byte".into())
            } else {
                Ok(Value::Text(text.to_string()))
            }
        }
        Kind::Signal => parse_signal(text).map(Value::Signal),
        Kind::Text => {
            if text.contains('\0') {
                Err("the value cannot contain a NUL byte".into())
            } else {
                Ok(Value::Text(text.to_string()))
            }
        }
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// Classic signals by name; the ones the agent refuses are those whose
/// default or usual meaning would break the app or the tools around it.
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("USR1", 10),
    ("USR2", 12),
    ("ALRM", 14),
    ("TERM", 15),
    ("CHLD", 17),
    ("CONT", 18),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// Signals that cannot be caught or that Ruby and the process need.
const FORBIDDEN: &[(i32, &str)] = &[
    (2, "INT stops the app on Ctrl-C"),
    (3, "QUIT stops the app"),
    (9, "KILL cannot be caught"),
    (15, "TERM stops the app"),
    (17, "CHLD reports child processes to the app"),
    (19, "STOP cannot be caught"),
    (26, "Ruby uses VTALRM for its threads"),
];

/// Whether `n` may be the dump signal: one of the named classic signals
/// ([`SIGNALS`]) that is not [`FORBIDDEN`], or a real-time signal. Crash
/// signals (ILL, TRAP, ABRT, BUS, FPE, SEGV), PIPE, STKFLT and the stop
/// signals are never allowed. `heapscope dump` checks an announcement's
/// signal against this too, so a forged announcement cannot make it send
/// KILL or TERM.
pub fn check_dump_signal(n: i32) -> Result<(), String> {
    if let Some((_, why)) = FORBIDDEN.iter().find(|(s, _)| *s == n) {
        return Err(format!(
            "{} cannot be the dump signal: {why}",
            signal_name(n)
        ));
    }
    let named = SIGNALS.iter().any(|(_, s)| *s == n);
    let realtime = (sigrtmin()..=sigrtmax()).contains(&n);
    if named || realtime {
        Ok(())
    } else {
        Err(format!(
            "signal {n} cannot be the dump signal (allowed: {}, RTMIN..RTMAX)",
            allowed_signal_names()
        ))
    }
}

/// Requests other than a dump, sent on the dump signal with `sigqueue(3)`:
/// the value tells the handler which byte to write to the agent's pipe. A
/// plain `kill` (no value) still asks for a dump, as does a queued value
/// that is not one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceRequest {
    On,
    Off,
    /// Probe and announce the current state.
    Status,
}

/// High bits of every request value ("hs"), so a stray queued value is
/// never mistaken for one.
const REQUEST_TAG: u32 = 0x6873_0000;

impl TraceRequest {
    /// The `sigval` the CLI queues.
    pub const fn value(self) -> u32 {
        REQUEST_TAG
            | match self {
                TraceRequest::On => 1,
                TraceRequest::Off => 2,
                TraceRequest::Status => 3,
            }
    }

    /// The request a queued value stands for (async-signal-safe: no
    /// allocation).
    pub const fn from_value(v: u32) -> Option<TraceRequest> {
        match v {
            x if x == REQUEST_TAG | 1 => Some(TraceRequest::On),
            x if x == REQUEST_TAG | 2 => Some(TraceRequest::Off),
            x if x == REQUEST_TAG | 3 => Some(TraceRequest::Status),
            _ => None,
        }
    }

    /// The byte written to the agent's pipe (`agent.rb`'s `TRACE_BYTES`).
    pub const fn byte(self) -> u8 {
        match self {
            TraceRequest::On => b'T',
            TraceRequest::Off => b'U',
            TraceRequest::Status => b'Q',
        }
    }
}

/// The named signals [`check_dump_signal`] allows, for messages and docs.
pub fn allowed_signal_names() -> String {
    SIGNALS
        .iter()
        .filter(|(_, n)| !FORBIDDEN.iter().any(|(f, _)| f == n))
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// First real-time signal number as glibc exposes it (34 on Linux: 32 and 33
/// are taken by the thread library).
pub fn sigrtmin() -> i32 {
    34
}

pub fn sigrtmax() -> i32 {
    64
}

/// `USR2`, `SIGUSR2`, `12`, `RTMIN+7`, `SIGRTMIN+7`, `RTMAX-2` or `off`.
pub fn parse_signal(text: &str) -> Result<Option<i32>, String> {
    let t = text.trim();
    if matches!(t.to_ascii_lowercase().as_str(), "off" | "none" | "0" | "") {
        return Ok(None);
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let number = if let Ok(n) = name.parse::<i32>() {
        Some(n)
    } else if let Some(rest) = name.strip_prefix("RTMIN") {
        rt_offset(rest).map(|k| sigrtmin() + k)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        rt_offset(rest).map(|k| sigrtmax() + k)
    } else {
        SIGNALS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    };
    let Some(n) = number else {
        return Err(format!(
            "{t:?} is not a signal (try {DEFAULT_DUMP_SIGNAL}, USR2, PWR or a number; off disables)"
        ));
    };
    if !(1..=sigrtmax()).contains(&n) || n == 32 || n == 33 {
        return Err(format!("{t:?} is not a signal this system delivers"));
    }
    if let Some((_, why)) = FORBIDDEN.iter().find(|(s, _)| *s == n) {
        return Err(format!("{t:?} cannot be the dump signal: {why}"));
    }
    check_dump_signal(n).map_err(|e| format!("{t:?}: {e}"))?;
    Ok(Some(n))
}

fn rt_offset(rest: &str) -> Option<i32> {
    if rest.is_empty() {
        return Some(0);
    }
    let (sign, digits) = rest.split_at(1);
    let k: i32 = digits.parse().ok()?;
    match sign {
        "+" => Some(k),
        "-" => Some(-k),
        _ => None,
    }
}

/// The name `kill -l` would show for a signal number.
pub fn signal_name(n: i32) -> String {
    if let Some((name, _)) = SIGNALS.iter().find(|(_, s)| *s == n) {
        return format!("SIG{name}");
    }
    if n >= sigrtmin() && n <= sigrtmax() {
        return format!("SIGRTMIN+{}", n - sigrtmin());
    }
    format!("signal {n}")
}

/// Fills `%{pid}`, `%{time}` (e.g. `20261121T073000Z`, safe in file names)
/// and `%{seq}` in a path pattern, relative paths taken from `base`.
pub fn expand_path(pattern: &str, base: &Path, pid: u32, time: &str, seq: u64) -> PathBuf {
    let s = pattern
        .replace("%{pid}", &pid.to_string())
        .replace("%{time}", time)
        .replace("%{seq}", &seq.to_string());
    let p = PathBuf::from(s);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_requests_round_trip_and_stray_values_are_dumps() {
        for r in [TraceRequest::On, TraceRequest::Off, TraceRequest::Status] {
            assert_eq!(TraceRequest::from_value(r.value()), Some(r));
        }
        // What a queued value that is not ours (0, a bare op) stands for: a dump.
        for v in [0, 1, 2, 3, 0x6873_0000, 0x6873_0004, u32::MAX] {
            assert_eq!(TraceRequest::from_value(v), None, "{v:#x}");
        }
        let bytes: Vec<u8> = [TraceRequest::On, TraceRequest::Off, TraceRequest::Status]
            .iter()
            .map(|r| r.byte())
            .collect();
        // Distinct from each other and from the dump reasons (s, r, j, a, w).
        assert_eq!(bytes, b"TUQ");
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid_and_complete() {
        let s = Settings::defaults();
        assert_eq!(s.iter().count(), OPTIONS.len());
        assert!(s.flag("profile"));
        assert_eq!(s.float("sample_rate"), 0.01);
        assert_eq!(s.dump_signal(), Some(41));
        assert_eq!(s.count("dump_keep"), 20);
    }

    #[test]
    fn env_then_overrides() {
        let s = Settings::resolve(
            env(&[
                ("HEAPSCOPE_SAMPLE_RATE", "1"),
                ("HEAPSCOPE_DUMP_SIGNAL", "usr2"),
                ("PATH", "/bin"),
            ]),
            vec![("sample_rate", "0.5".to_string())],
        )
        .unwrap();
        assert_eq!(s.float("sample_rate"), 0.5);
        assert_eq!(s.dump_signal(), Some(12));
    }

    #[test]
    fn every_problem_is_reported_with_its_source() {
        let errs = Settings::resolve(
            env(&[
                ("HEAPSCOPE_SAMPLE_RATE", "2"),
                ("HEAPSCOPE_SAMPEL_RATE", "0.1"),
                ("HEAPSCOPE_DUMP_SIGNAL", "TERM"),
                ("HEAPSCOPE_STATS", "maybe"),
            ]),
            Vec::new(),
        )
        .unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        // The misspelt variable is a warning, not one of the errors.
        assert_eq!(errs.len(), 3, "{text:?}");
        assert!(text.iter().any(|t| t.contains("TERM stops the app")));
        assert!(text.iter().any(|t| t.contains("not a sample rate")));
    }

    #[test]
    fn unknown_variables_are_warnings() {
        let s = Settings::resolve(env(&[("HEAPSCOPE_SAMPEL_RATE", "0.1")]), Vec::new()).unwrap();
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0]
            .to_string()
            .starts_with("HEAPSCOPE_SAMPEL_RATE: not a heapscope setting"));
        assert!(s.warnings[0]
            .to_string()
            .ends_with("did you mean HEAPSCOPE_SAMPLE_RATE?"));
        assert!(Settings::resolve(Vec::new(), vec![("sampel_rate", "1".to_string())]).is_err());
    }

    #[test]
    fn typos_get_the_closest_name() {
        assert_eq!(edit_distance(b"SAMPEL", b"SAMPLE"), 1);
        assert_eq!(edit_distance(b"", b"ABC"), 3);
        assert_eq!(edit_distance(b"KITTEN", b"SITTING"), 3);
        for (typo, want) in [
            ("SAMPEL_RATE", Some("SAMPLE_RATE")),
            ("sample-rat", Some("SAMPLE_RATE")),
            ("DUMP_EVRY_SECONDS", Some("DUMP_EVERY_SECONDS")),
            ("TRACE_ALLOCATION", Some("TRACE_ALLOCATIONS")),
            ("RUBYLIB", Some("RUBY_LIB")),
            ("PROFILER", Some("PROFILE")),
            ("COMPLETELY_UNRELATED", None),
            ("X", None),
        ] {
            assert_eq!(closest_key(typo, true).as_deref(), want, "{typo}");
        }
        // Keywords of Heapscope.start are options only.
        assert_eq!(closest_key("rubylib", false), None);
        let s = Settings::resolve(env(&[("HEAPSCOPE_NOTHING_LIKE_IT", "1")]), Vec::new()).unwrap();
        assert!(s.warnings[0]
            .to_string()
            .contains("(known: HEAPSCOPE_ENABLED"));
    }

    #[test]
    fn signals_by_name_number_and_rt_offset() {
        assert_eq!(parse_signal("SIGUSR1"), Ok(Some(10)));
        assert_eq!(parse_signal("30"), Ok(Some(30)));
        assert_eq!(parse_signal("SIGRTMIN+7"), Ok(Some(41)));
        assert_eq!(parse_signal("RTMAX-1"), Ok(Some(63)));
        assert_eq!(parse_signal("off"), Ok(None));
        assert!(parse_signal("KILL").is_err());
        assert!(parse_signal("BOGUS").is_err());
        assert!(parse_signal("99").is_err());
        // Crash and stop signals are refused too, by number or name.
        for bad in [
            "11", "SEGV", "6", "7", "4", "8", "13", "16", "20", "TSTP", "9", "15",
        ] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
        for n in [1, 10, 12, 30, 34, 41, 64] {
            assert_eq!(check_dump_signal(n), Ok(()), "{n}");
        }
        for n in [
            0, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 15, 16, 17, 19, 20, 26, 32, 33, 65, -1,
        ] {
            assert!(check_dump_signal(n).is_err(), "{n}");
        }
        assert!(allowed_signal_names().contains("USR2"));
        assert!(!allowed_signal_names().contains("TERM"));
        assert_eq!(signal_name(41), "SIGRTMIN+7");
        assert_eq!(signal_name(12), "SIGUSR2");
    }

    #[test]
    fn paths_expand() {
        let p = expand_path("tmp/mem-%{pid}-%{time}.gz", Path::new("/app"), 42, "T", 0);
        assert_eq!(p, PathBuf::from("/app/tmp/mem-42-T.gz"));
        let p = expand_path("/x/%{seq}", Path::new("/app"), 1, "T", 3);
        assert_eq!(p, PathBuf::from("/x/3"));
    }
}
