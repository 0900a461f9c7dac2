//! Memory logs: process memory sampled over time (`heapscope trend`,
//! `heapscope plot`, `heapscope bench`).
//!
//! [`parse_log`] reads one log into one [`MemSeries`] per process. The format
//! is sniffed line by line, so one file may mix them:
//!
//! 1. **`heapscope watch` JSON lines**: `{"time":1763710200.123,"pid":4242,
//!    "rss_bytes":..,"pss_bytes":..,"uss_bytes":..}`, possibly with the
//!    agent's fields merged in (below). `time` is unix seconds (a number, or
//!    a string timestamp as in format 3).
//! 2. **`heapscope watch` CSV**: a header row naming the columns (`time,pid,
//!    rss_bytes,pss_bytes,uss_bytes,heap_live_slots,...`, any order, unknown
//!    columns ignored), then one row per sample; an empty cell is unknown.
//! 3. **The agent's statistics** (`tmp/profiles/gc-<pid>.jsonl`): JSON lines
//!    with `time`, `pid`, `rss_bytes`, `heap_live_slots`, `minor_gc_count`,
//!    `major_gc_count`, `requests`, ... (told from watch lines by their GC
//!    keys).
//! 4. **The common Rails log snippet**: `MEMORY[<pid>]: time: <timestamp>
//!    rss: <size>, live_objects: <n>` anywhere in a line (after the log's own
//!    prefix). The timestamp is ISO 8601 (`2024-05-01T12:00:00+00:00`,
//!    `2024-05-01T12:00:00.5Z`), Ruby's `Time#to_s` (`2024-05-01 12:00:00
//!    +0000`, `... UTC`) or unix seconds; one without a zone is taken as UTC.
//!    The size is a number of **KiB** when it has no unit (what `ps -o rss`
//!    prints), else a number with a unit: `B`, `K`/`KB`/`KiB`, `M`/`MB`/`MiB`,
//!    `G`/`GB`/`GiB`, `T`... (any case; `KB`, `MB`, `GB` are read as binary
//!    units, as `ps` and the usual Ruby snippets mean them). Other lines of a
//!    Rails log are not records and are ignored silently.
//! 5. **Heroku's log-runtime-metrics**: `source=web.1 dyno=heroku.1234.abcd
//!    sample#memory_total=512.3MB sample#memory_rss=500.1MB
//!    sample#memory_cache=12.2MB sample#memory_swap=0.0MB ...`, after the
//!    log's own prefix, whose first timestamp is the sample's time
//!    (`2026-12-01T10:00:00.123456+00:00 heroku[web.1]: ` from `heroku logs`,
//!    or a syslog drain's `<45>1 2026-12-01T10:00:00+00:00 host heroku web.1 -
//!    `). `sample#memory_rss` is the RSS (Heroku's `MB` are MiB); one series
//!    per `source` (the dyno's name, e.g. `web.1`, which outlives the dyno
//!    ids of restarts, so a restart shows as a drop). Heroku's other lines
//!    (load averages, router lines) are ignored silently, as in a Rails log.
//! 6. **derailed_benchmarks `perf:mem_over_time`**: lines that are just a
//!    number, the RSS in MiB (`GetProcessMem#mb`, a Float such as
//!    `13.76171875`), one every 5 seconds. The lines derailed prints before
//!    them (`Booting: ...`, `Endpoint: ...`, `PID: 1234`) are recognised; the
//!    PID becomes the series' pid. These lines carry no clock: a sample's
//!    `time` is its **sample number** (0, 1, 2, ...), and
//!    [`LogFormat::has_clock`] is false.
//!
//! Lines that fit no format, and records without a usable time or without
//! any memory value, are skipped with their line number and the reason
//! (blank lines silently). Invalid UTF-8 is replaced, never fatal; `\r\n`
//! endings are fine. A log with no usable line has no series
//! ([`ParsedLog::is_empty`]).

use std::collections::HashMap;

/// One sample of one process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemSample {
    /// Unix seconds, or seconds from the start (or the sample number, see
    /// [`LogFormat::has_clock`]) when the log has no clock.
    pub time: f64,
    pub rss_bytes: Option<u64>,
    pub pss_bytes: Option<u64>,
    pub uss_bytes: Option<u64>,
    /// Live heap slots (`GC.stat(:heap_live_slots)`).
    pub live_objects: Option<u64>,
    /// Requests served so far (cumulative).
    pub requests: Option<u64>,
    pub minor_gc_count: Option<u64>,
    pub major_gc_count: Option<u64>,
}

/// The samples of one process, in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemSeries {
    pub pid: Option<u32>,
    /// The process's name when the log names it instead of giving a pid
    /// (a Heroku dyno's `source`, e.g. `web.1`).
    pub source: Option<String>,
    /// `pid 4242`, the source's name, or the log's name when neither is known.
    pub label: String,
    pub samples: Vec<MemSample>,
}

/// The format of a log (the one of its records, or `Mixed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// No record was found.
    Unknown,
    WatchJson,
    WatchCsv,
    AgentStats,
    RailsLog,
    Heroku,
    Derailed,
    /// Records of more than one format.
    Mixed,
}

impl LogFormat {
    /// A short name for messages and JSON.
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Unknown => "unknown",
            LogFormat::WatchJson => "heapscope watch (JSON lines)",
            LogFormat::WatchCsv => "heapscope watch (CSV)",
            LogFormat::AgentStats => "heapscope agent statistics",
            LogFormat::RailsLog => "Rails log (MEMORY[pid] lines)",
            LogFormat::Heroku => "Heroku log-runtime-metrics",
            LogFormat::Derailed => "derailed_benchmarks mem_over_time",
            LogFormat::Mixed => "mixed",
        }
    }

    /// Whether sample times are clock times (false for derailed output, whose
    /// samples are numbered).
    pub fn has_clock(self) -> bool {
        self != LogFormat::Derailed
    }

    /// Whether the format's records sit among other log lines, which are
    /// then not worth a warning.
    fn among_other_lines(self) -> bool {
        matches!(self, LogFormat::RailsLog | LogFormat::Heroku)
    }
}

/// What [`parse_log`] found in one log.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedLog {
    /// One series per pid or source (records with neither form one series),
    /// in order of first appearance; samples in time order.
    pub series: Vec<MemSeries>,
    pub format: LogFormat,
    /// Lines that were not used: (1-based line number, why).
    pub skipped: Vec<(usize, String)>,
}

impl ParsedLog {
    /// No sample at all.
    pub fn is_empty(&self) -> bool {
        self.series.iter().all(|s| s.samples.is_empty())
    }

    /// Number of samples over all series.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }
}

/// Lines derailed prints around its numbers.
const DERAILED_PREAMBLE: &[&str] = &[
    "Booting:",
    "Endpoint:",
    "Port:",
    "Server:",
    "HTTP headers:",
    "Warming up app:",
    "Env var ",
];

/// Parses one memory log; `name` (e.g. the file name) labels series without
/// a pid. Never panics.
pub fn parse_log(name: &str, bytes: &[u8]) -> ParsedLog {
    let mut p = Parser::default();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = String::from_utf8_lossy(raw);
        p.line(i + 1, line.trim());
    }
    p.finish(name)
}

/// Merges the series of several logs: the same pid (or source) across logs
/// becomes one series (samples in time order, exact duplicates dropped);
/// series with neither stay apart. Order: first appearance.
pub fn merge_series(logs: Vec<ParsedLog>) -> Vec<MemSeries> {
    let mut out: Vec<MemSeries> = Vec::new();
    let mut by_key: HashMap<SeriesKey, usize> = HashMap::new();
    for log in logs {
        for s in log.series {
            let key = match (s.pid, &s.source) {
                (Some(pid), _) => SeriesKey::Pid(Some(pid)),
                (None, Some(source)) => SeriesKey::Source(source.clone()),
                (None, None) => {
                    out.push(s);
                    continue;
                }
            };
            match by_key.get(&key) {
                Some(&i) => out[i].samples.extend(s.samples),
                None => {
                    by_key.insert(key, out.len());
                    out.push(s);
                }
            }
        }
    }
    for s in &mut out {
        sort_samples(&mut s.samples);
        s.samples.dedup();
    }
    out
}

/// What tells one process's records from another's in a log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SeriesKey {
    Pid(Option<u32>),
    Source(String),
}

fn sort_samples(samples: &mut [MemSample]) {
    samples.sort_by(|a, b| a.time.total_cmp(&b.time));
}

#[derive(Default)]
struct Parser {
    /// (key, samples) in order of first appearance.
    series: Vec<(SeriesKey, Vec<MemSample>)>,
    index: HashMap<SeriesKey, usize>,
    formats: Vec<LogFormat>,
    skipped: Vec<(usize, String)>,
    /// Lines no format recognised (reported unless this is a Rails log).
    unrecognised: Vec<(usize, String)>,
    csv: Option<Vec<String>>,
    derailed_pid: Option<u32>,
    derailed_index: u64,
}

impl Parser {
    fn push(&mut self, pid: Option<u32>, sample: MemSample, format: LogFormat) {
        self.push_to(SeriesKey::Pid(pid), sample, format);
    }

    fn push_to(&mut self, key: SeriesKey, sample: MemSample, format: LogFormat) {
        if !self.formats.contains(&format) {
            self.formats.push(format);
        }
        let i = *self.index.entry(key.clone()).or_insert_with(|| {
            self.series.push((key, Vec::new()));
            self.series.len() - 1
        });
        self.series[i].1.push(sample);
    }

    /// A line of this format without a sample.
    fn note_format(&mut self, format: LogFormat) {
        if !self.formats.contains(&format) {
            self.formats.push(format);
        }
    }

    fn skip(&mut self, line: usize, why: impl Into<String>) {
        self.skipped.push((line, why.into()));
    }

    fn line(&mut self, no: usize, line: &str) {
        if line.is_empty() {
            return;
        }
        if let Some(at) = line.find("MEMORY[") {
            match rails_record(&line[at + "MEMORY[".len()..]) {
                Ok((pid, sample)) => self.push(Some(pid), sample, LogFormat::RailsLog),
                Err(why) => self.skip(no, why),
            }
            return;
        }
        if let Some(at) = find_key(line, "source=").filter(|_| line.contains(" sample#")) {
            match heroku_record(line, at) {
                Ok(Some((source, sample))) => {
                    self.push_to(SeriesKey::Source(source), sample, LogFormat::Heroku)
                }
                // Load averages and other metrics: no memory, not an error.
                Ok(None) => self.note_format(LogFormat::Heroku),
                Err(why) => self.skip(no, why),
            }
            return;
        }
        if line.starts_with('{') {
            match json_record(line) {
                Ok((pid, sample, format)) => self.push(pid, sample, format),
                Err(why) => self.skip(no, why),
            }
            return;
        }
        if let Some(v) = plain_number(line) {
            if self.csv.is_none() {
                if v.is_finite() && v >= 0.0 {
                    let sample = MemSample {
                        time: self.derailed_index as f64,
                        rss_bytes: Some((v * MIB).round() as u64),
                        ..MemSample::default()
                    };
                    self.derailed_index += 1;
                    self.push(self.derailed_pid, sample, LogFormat::Derailed);
                } else {
                    self.skip(no, "not a memory size");
                }
                return;
            }
        }
        if let Some(pid) = line.strip_prefix("PID:") {
            if let Ok(pid) = pid.trim().parse() {
                self.derailed_pid = Some(pid);
                return;
            }
        }
        if DERAILED_PREAMBLE.iter().any(|p| line.starts_with(p)) {
            return;
        }
        if line.contains(',') {
            if let Some(header) = csv_header(line) {
                self.csv = Some(header);
                return;
            }
            if let Some(header) = self.csv.take() {
                match csv_record(&header, line) {
                    Ok((pid, sample)) => self.push(pid, sample, LogFormat::WatchCsv),
                    Err(why) => self.skip(no, why),
                }
                self.csv = Some(header);
                return;
            }
        }
        let excerpt: String = line.chars().take(40).collect();
        self.unrecognised
            .push((no, format!("not a memory record: {excerpt:?}")));
    }

    fn finish(mut self, name: &str) -> ParsedLog {
        // Formats of lines without a sample (Heroku's load averages) name
        // the log only when no sample says otherwise.
        let sampled: Vec<LogFormat> = self
            .formats
            .iter()
            .copied()
            .filter(|f| {
                *f != LogFormat::Heroku
                    || self
                        .series
                        .iter()
                        .any(|s| matches!(s.0, SeriesKey::Source(_)))
            })
            .collect();
        let format = match sampled.as_slice() {
            [] => LogFormat::Unknown,
            [one] => *one,
            _ => LogFormat::Mixed,
        };
        let quiet = !self.formats.is_empty() && self.formats.iter().all(|f| f.among_other_lines());
        if !quiet {
            self.skipped.append(&mut self.unrecognised);
            self.skipped.sort_by_key(|s| s.0);
        }
        let series = self
            .series
            .into_iter()
            .map(|(key, mut samples)| {
                sort_samples(&mut samples);
                let (pid, source) = match key {
                    SeriesKey::Pid(pid) => (pid, None),
                    SeriesKey::Source(s) => (None, Some(s)),
                };
                MemSeries {
                    pid,
                    label: match (pid, &source) {
                        (Some(pid), _) => format!("pid {pid}"),
                        (None, Some(source)) => source.clone(),
                        (None, None) => name.to_string(),
                    },
                    source,
                    samples,
                }
            })
            .collect();
        ParsedLog {
            series,
            format,
            skipped: self.skipped,
        }
    }
}

const KIB: f64 = 1024.0;
const MIB: f64 = 1024.0 * 1024.0;

/// A line that is one decimal number (derailed's output).
fn plain_number(line: &str) -> Option<f64> {
    let ok = !line.is_empty()
        && line
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E' || b == b'-')
        && line.as_bytes()[0].is_ascii_digit();
    if ok {
        line.parse().ok()
    } else {
        None
    }
}

/// `rest` follows `MEMORY[`: `<pid>]: time: <t> rss: <size>, live_objects: <n>`.
fn rails_record(rest: &str) -> Result<(u32, MemSample), String> {
    let close = rest.find(']').ok_or("MEMORY[ without a closing ]")?;
    let pid: u32 = rest[..close]
        .trim()
        .parse()
        .map_err(|_| format!("bad pid {:?}", &rest[..close]))?;
    let body = &rest[close + 1..];
    let field = |key: &str| -> Option<&str> {
        let at = find_key(body, key)?;
        let value = &body[at + key.len()..];
        // A value ends at a comma or where the next known key begins.
        let mut end = value.find(',').unwrap_or(value.len());
        for next in ["rss:", "live_objects:", "time:", "requests:"] {
            if let Some(k) = find_key(value, next) {
                end = end.min(k);
            }
        }
        Some(value[..end].trim())
    };
    let time_text = field("time:").ok_or("no time: field")?;
    let time = parse_timestamp(time_text).ok_or_else(|| format!("bad time {time_text:?}"))?;
    let rss = match field("rss:") {
        Some(t) => Some(parse_size(t).ok_or_else(|| format!("bad rss {t:?}"))?),
        None => None,
    };
    let live = match field("live_objects:") {
        Some(t) => Some(parse_count(t).ok_or_else(|| format!("bad live_objects {t:?}"))?),
        None => None,
    };
    let requests = field("requests:").and_then(parse_count);
    if rss.is_none() && live.is_none() {
        return Err("neither rss: nor live_objects:".into());
    }
    Ok((
        pid,
        MemSample {
            time,
            rss_bytes: rss,
            live_objects: live,
            requests,
            ..MemSample::default()
        },
    ))
}

/// A Heroku log-runtime-metrics line; `at` is where `source=` starts.
/// `Ok(None)` for a metrics line without memory (load averages).
fn heroku_record(line: &str, at: usize) -> Result<Option<(String, MemSample)>, String> {
    let mut source = None;
    let mut rss = None;
    let mut total = None;
    for token in line[at..].split_whitespace() {
        let Some((key, value)) = token.split_once('=') else {
            continue;
        };
        match key {
            "source" => source = Some(value.to_string()),
            "sample#memory_rss" => {
                rss = Some(parse_size(value).ok_or_else(|| format!("bad memory_rss {value:?}"))?)
            }
            "sample#memory_total" => total = parse_size(value),
            _ => {}
        }
    }
    let source = source.filter(|s| !s.is_empty()).ok_or("empty source=")?;
    if rss.is_none() {
        if total.is_some() {
            return Err("sample#memory_total without sample#memory_rss".into());
        }
        return Ok(None);
    }
    // The log's prefix: its first token that is a timestamp.
    let time = line[..at]
        .split_whitespace()
        .find_map(|t| parse_timestamp(t.trim_end_matches(':')).filter(|_| t.contains('-')))
        .ok_or("no timestamp before source=")?;
    Ok(Some((
        source,
        MemSample {
            time,
            rss_bytes: rss,
            ..MemSample::default()
        },
    )))
}

/// Where `key` starts in `s` at a word boundary (not inside `xrss:`).
fn find_key(s: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].find(key) {
        let at = from + i;
        let before = s[..at].chars().next_back();
        if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
            return Some(at);
        }
        from = at + key.len();
    }
    None
}

/// A count such as `123456` or `1_234` or `1,234`... only plain digits with
/// optional `_` separators (commas separate fields).
fn parse_count(t: &str) -> Option<u64> {
    let t: String = t.trim().chars().filter(|&c| c != '_').collect();
    if let Ok(n) = t.parse::<u64>() {
        return Some(n);
    }
    let f: f64 = t.parse().ok()?;
    (f.is_finite() && f >= 0.0).then(|| f.round() as u64)
}

/// A size: a plain number of KiB, or a number with a unit.
pub fn parse_size(t: &str) -> Option<u64> {
    let t = t.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let number: String = t[..split].chars().filter(|&c| c != '_').collect();
    let v: f64 = number.parse().ok()?;
    let unit = t[split..].trim().to_ascii_lowercase();
    let scale = match unit.as_str() {
        "" | "k" | "kb" | "kib" => KIB,
        "b" | "bytes" => 1.0,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => MIB * KIB,
        "t" | "tb" | "tib" => MIB * MIB,
        _ => return None,
    };
    let bytes = v * scale;
    ((0.0..1.8e19).contains(&bytes)).then(|| bytes.round() as u64)
}

/// A timestamp: unix seconds, ISO 8601 or Ruby's `Time#to_s`, as unix
/// seconds. A timestamp without a zone is UTC.
pub fn parse_timestamp(t: &str) -> Option<f64> {
    use chrono::{DateTime, NaiveDateTime};
    let t = t.trim().trim_matches('"');
    if let Ok(v) = t.parse::<f64>() {
        return v.is_finite().then_some(v);
    }
    let seconds = |d: DateTime<chrono::FixedOffset>| {
        d.timestamp() as f64 + f64::from(d.timestamp_subsec_nanos()) / 1e9
    };
    // ISO 8601 (`2024-05-01T12:00:00+00:00`, `…Z`), then Ruby's
    // `2024-05-01 12:00:00 +0000`.
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(seconds(d));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f %z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
        if let Ok(d) = DateTime::parse_from_str(t, format) {
            return Some(seconds(d));
        }
    }
    // No zone, or a name for UTC.
    let naive = ["UTC", "GMT", "Z", "z"]
        .iter()
        .find_map(|z| t.strip_suffix(z))
        .unwrap_or(t)
        .trim_end();
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(naive, f).ok())
        .map(|d| seconds(d.and_utc().fixed_offset()))
}

/// A non-negative integer from a JSON number or CSV cell (`12`, `12.0`,
/// `1.2e6`); `None` for negatives, fractions are rounded.
fn to_u64(text: &str) -> Option<u64> {
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    let f: f64 = text.parse().ok()?;
    ((0.0..1.8e19).contains(&f)).then(|| f.round() as u64)
}

/// Keys telling the agent's statistics apart from watch records.
const AGENT_KEYS: &[&str] = &["heap_free_slots", "total_allocated_objects"];

/// Assigns one named value to a sample; `Err` for a known key with a bad
/// value. Returns the pid for `pid`.
fn assign(
    sample: &mut MemSample,
    pid: &mut Option<u32>,
    have_time: &mut bool,
    key: &str,
    value: Option<&str>,
    text: bool,
) -> Result<(), String> {
    let Some(value) = value else {
        return Ok(());
    };
    let num = || to_u64(value).ok_or_else(|| format!("bad {key} {value:?}"));
    match key {
        "time" | "timestamp" | "t" => {
            let t = if text {
                parse_timestamp(value)
            } else {
                value.parse::<f64>().ok().filter(|v| v.is_finite())
            };
            sample.time = t.ok_or_else(|| format!("bad time {value:?}"))?;
            *have_time = true;
        }
        "pid" => *pid = Some(value.parse().map_err(|_| format!("bad pid {value:?}"))?),
        "rss_bytes" | "rss" => sample.rss_bytes = Some(num()?),
        "pss_bytes" | "pss" => sample.pss_bytes = Some(num()?),
        "uss_bytes" | "uss" => sample.uss_bytes = Some(num()?),
        "rss_kb" => sample.rss_bytes = Some(num()?.saturating_mul(1024)),
        "heap_live_slots" | "live_objects" => sample.live_objects = Some(num()?),
        "requests" => sample.requests = Some(num()?),
        "minor_gc_count" => sample.minor_gc_count = Some(num()?),
        "major_gc_count" => sample.major_gc_count = Some(num()?),
        _ => {}
    }
    Ok(())
}

fn has_memory(s: &MemSample) -> bool {
    s.rss_bytes.is_some()
        || s.pss_bytes.is_some()
        || s.uss_bytes.is_some()
        || s.live_objects.is_some()
}

fn json_record(line: &str) -> Result<(Option<u32>, MemSample, LogFormat), String> {
    let fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line).map_err(|e| format!("bad JSON: {e}"))?;
    let mut sample = MemSample::default();
    let mut pid = None;
    let mut have_time = false;
    let mut agent = false;
    let mut watch = false;
    for (key, value) in &fields {
        agent |= AGENT_KEYS.contains(&key.as_str());
        watch |= key == "pss_bytes" || key == "uss_bytes";
        let (v, text) = match value {
            serde_json::Value::Number(n) => (Some(n.to_string()), false),
            serde_json::Value::String(t) => (Some(t.clone()), true),
            _ => (None, false),
        };
        assign(
            &mut sample,
            &mut pid,
            &mut have_time,
            key,
            v.as_deref(),
            text,
        )?;
    }
    if !have_time {
        return Err("record without a time".into());
    }
    if !has_memory(&sample) {
        return Err("record without a memory value".into());
    }
    let format = if agent && !watch {
        LogFormat::AgentStats
    } else {
        LogFormat::WatchJson
    };
    Ok((pid, sample, format))
}

/// The columns of a CSV header row, when `line` is one: it names `time` and
/// at least one memory column, and no cell is a number.
fn csv_header(line: &str) -> Option<Vec<String>> {
    let cells: Vec<String> = line
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let memory = [
        "rss_bytes",
        "pss_bytes",
        "uss_bytes",
        "heap_live_slots",
        "live_objects",
        "rss_kb",
    ];
    let ok = cells.iter().any(|c| c == "time" || c == "timestamp")
        && cells.iter().any(|c| memory.contains(&c.as_str()))
        && cells.iter().all(|c| c.parse::<f64>().is_err());
    ok.then_some(cells)
}

fn csv_record(header: &[String], line: &str) -> Result<(Option<u32>, MemSample), String> {
    let cells: Vec<&str> = line
        .split(',')
        .map(|c| c.trim().trim_matches('"'))
        .collect();
    if cells.len() != header.len() {
        return Err(format!(
            "{} cells where the header has {}",
            cells.len(),
            header.len()
        ));
    }
    let mut sample = MemSample::default();
    let mut pid = None;
    let mut have_time = false;
    for (key, cell) in header.iter().zip(&cells) {
        let value = (!cell.is_empty()).then_some(*cell);
        let text = key.starts_with("time") && value.is_some_and(|v| v.parse::<f64>().is_err());
        assign(&mut sample, &mut pid, &mut have_time, key, value, text)?;
    }
    if !have_time {
        return Err("row without a time".into());
    }
    if !has_memory(&sample) {
        return Err("row without a memory value".into());
    }
    Ok((pid, sample))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1024 * 1024;

    #[test]
    fn watch_json_lines() {
        let log = b"{\"time\":1763710200.123,\"pid\":4242,\"rss_bytes\":104857600,\"pss_bytes\":90000000,\"uss_bytes\":80000000}\n\
{\"time\":1763710201.123,\"pid\":4242,\"rss_bytes\":104857700,\"pss_bytes\":null,\"uss_bytes\":80000001,\"children\":[{\"pid\":1}],\"note\":\"a}b\"}\n";
        let p = parse_log("w.jsonl", log);
        assert_eq!(p.format, LogFormat::WatchJson);
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(p.series.len(), 1);
        let s = &p.series[0];
        assert_eq!((s.pid, s.label.as_str()), (Some(4242), "pid 4242"));
        assert_eq!(s.samples.len(), 2);
        assert_eq!(s.samples[0].time, 1763710200.123);
        assert_eq!(s.samples[0].pss_bytes, Some(90_000_000));
        assert_eq!(s.samples[1].pss_bytes, None);
        assert_eq!(s.samples[1].uss_bytes, Some(80_000_001));
    }

    #[test]
    fn agent_statistics() {
        let log = br#"{"time":1700000000.000,"pid":7,"rss_bytes":50000000,"heap_live_slots":1000,"heap_free_slots":10,"total_allocated_objects":5000,"total_freed_objects":4000,"minor_gc_count":3,"major_gc_count":1,"malloc_increase_bytes":0,"oldmalloc_increase_bytes":0,"requests":12,"jobs":0}
{"time":1700000000.050,"pid":7,"rss_bytes":50001000,"heap_live_slots":1100,"heap_free_slots":10,"total_allocated_objects":5100,"total_freed_objects":4000,"minor_gc_count":4,"major_gc_count":1,"malloc_increase_bytes":0,"oldmalloc_increase_bytes":0}
"#;
        let p = parse_log("gc-7.jsonl", log);
        assert_eq!(p.format, LogFormat::AgentStats);
        let s = &p.series[0].samples;
        assert_eq!(s[0].live_objects, Some(1000));
        assert_eq!(s[0].requests, Some(12));
        assert_eq!(s[1].requests, None);
        assert_eq!(s[1].minor_gc_count, Some(4));
        assert_eq!(s[1].major_gc_count, Some(1));
    }

    #[test]
    fn watch_csv_with_empty_cells_and_crlf() {
        let log = b"time,pid,rss_bytes,pss_bytes,uss_bytes,heap_live_slots,requests\r\n\
1700000000.5,10,1000,,,,\r\n\
1700000001.5,10,2000,1500,1200,77,3\r\n\
1700000002.5,11,3000,,,,\r\n\
1700000003.5,10,oops,,,,\r\n\
1,2\r\n";
        let p = parse_log("w.csv", log);
        assert_eq!(p.format, LogFormat::WatchCsv);
        assert_eq!(p.series.len(), 2);
        let a = &p.series[0].samples;
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].pss_bytes, None);
        assert_eq!(a[1].live_objects, Some(77));
        assert_eq!(a[1].requests, Some(3));
        assert_eq!(p.series[1].pid, Some(11));
        let lines: Vec<usize> = p.skipped.iter().map(|s| s.0).collect();
        assert_eq!(lines, [5, 6], "{:?}", p.skipped);
        assert!(p.skipped[0].1.contains("rss_bytes"));
    }

    #[test]
    fn rails_lines() {
        let log = "I, [2024-05-01T12:00:00.000000 #4242]  INFO -- : MEMORY[4242]: time: 2024-05-01 12:00:00 +0000 rss: 102400, live_objects: 500000\n\
Started GET \"/\" for 127.0.0.1 at 2024-05-01 12:00:00 +0000\n\
[web] MEMORY[4242]: time: 2024-05-01T12:00:10+02:00 rss: 123.5 MB, live_objects: 500100\n\
MEMORY[99]: time: 1714564800 rss: 512MiB, live_objects: 3\n\
MEMORY[99]: time: 1714564801.5 rss: 1.5G\n\
MEMORY[99]: time: yesterday rss: 1G\n\
MEMORY[99]: time: 1714564802 rss: 12 parsecs\n";
        let p = parse_log("production.log", log.as_bytes());
        assert_eq!(p.format, LogFormat::RailsLog);
        let a = &p.series[0];
        assert_eq!(a.pid, Some(4242));
        // Time-ordered: the +02:00 sample is two hours earlier.
        assert_eq!(a.samples[0].time, 1714564800.0 - 7200.0 + 10.0);
        assert_eq!(a.samples[0].rss_bytes, Some((123.5 * MB as f64) as u64));
        assert_eq!(a.samples[1].time, 1714564800.0);
        assert_eq!(a.samples[1].rss_bytes, Some(100 * MB));
        assert_eq!(a.samples[1].live_objects, Some(500_000));
        let b = &p.series[1];
        assert_eq!(b.samples[0].rss_bytes, Some(512 * MB));
        assert_eq!(b.samples[1].rss_bytes, Some(1536 * MB));
        assert_eq!(b.samples[1].live_objects, None);
        // Bad MEMORY lines are reported; the rest of the log is not.
        let lines: Vec<usize> = p.skipped.iter().map(|s| s.0).collect();
        assert_eq!(lines, [6, 7], "{:?}", p.skipped);
    }

    #[test]
    fn heroku_runtime_metrics() {
        let log = "2026-12-01T10:00:00.123456+00:00 heroku[web.1]: source=web.1 dyno=heroku.1234.abcd sample#memory_total=512.3MB sample#memory_rss=500.1MB sample#memory_cache=12.2MB sample#memory_swap=0.0MB sample#memory_pgpgin=348836pages sample#memory_pgpgout=343403pages sample#memory_quota=512.00MB\n\
2026-12-01T10:00:00.200000+00:00 heroku[web.1]: source=web.1 dyno=heroku.1234.abcd sample#load_avg_1m=0.01 sample#load_avg_5m=0.02 sample#load_avg_15m=0.05\n\
2026-12-01T10:00:01+00:00 heroku[router]: at=info method=GET path=\"/\" host=x.herokuapp.com dyno=web.1 connect=0ms service=12ms status=200 bytes=100\n\
2026-12-01T10:00:02.000000+00:00 app[web.1]: I, [2026-12-01T10:00:02] INFO -- : Started GET \"/\"\n\
<45>1 2026-12-01T10:00:20.5+00:00 host heroku web.2 - source=web.2 dyno=heroku.1234.efgh sample#memory_total=300MB sample#memory_rss=290.5MB sample#memory_cache=9.5MB sample#memory_swap=0.00MB\n\
2026-12-01T10:00:20+00:00 heroku[web.1]: source=web.1 dyno=heroku.1234.abcd sample#memory_total=520MB sample#memory_rss=510.0MB sample#memory_cache=10MB sample#memory_swap=0.0MB\n\
2026-12-01T10:00:40+00:00 heroku[web.1]: source=web.1 dyno=heroku.1234.abcd sample#memory_total=1MB sample#memory_rss=lots\n\
heroku[web.1]: source=web.1 dyno=heroku.1234.abcd sample#memory_total=1MB sample#memory_rss=1MB\n";
        let p = parse_log("heroku.log", log.as_bytes());
        assert_eq!(p.format, LogFormat::Heroku);
        assert!(p.format.has_clock());
        assert_eq!(p.series.len(), 2);
        let web1 = &p.series[0];
        assert_eq!(
            (web1.pid, web1.source.as_deref(), web1.label.as_str()),
            (None, Some("web.1"), "web.1")
        );
        assert_eq!(web1.samples.len(), 2);
        assert_eq!(web1.samples[0].time, 1796119200.123456);
        assert_eq!(
            web1.samples[0].rss_bytes,
            Some((500.1 * MB as f64).round() as u64)
        );
        assert_eq!(web1.samples[1].rss_bytes, Some(510 * MB));
        let web2 = &p.series[1];
        assert_eq!(web2.label, "web.2");
        assert_eq!(web2.samples[0].time, 1796119220.5);
        assert_eq!(
            web2.samples[0].rss_bytes,
            Some((290.5 * MB as f64).round() as u64)
        );
        // Bad memory lines are reported; router, app and load lines are not.
        let lines: Vec<usize> = p.skipped.iter().map(|s| s.0).collect();
        assert_eq!(lines, [7, 8], "{:?}", p.skipped);
        assert!(p.skipped[1].1.contains("timestamp"));
        // The same dyno across two logs is one series; a pid is another.
        let more = parse_log(
            "more.log",
            b"2026-12-01T10:01:00+00:00 heroku[web.1]: source=web.1 sample#memory_rss=520MB\n",
        );
        let rails = parse_log("r.log", b"MEMORY[1]: time: 1 rss: 10\n");
        let merged = merge_series(vec![p, more, rails]);
        assert_eq!(merged.len(), 3);
        assert_eq!(merged[0].samples.len(), 3);
        assert_eq!(merged[2].pid, Some(1));
        // Only load averages: no samples, and no complaint about the lines.
        let p = parse_log("load.log", b"2026-12-01T10:00:00+00:00 heroku[web.1]: source=web.1 sample#load_avg_1m=0.01\nhello\n");
        assert!(p.is_empty());
        assert!(p.skipped.is_empty());
    }

    #[test]
    fn derailed_output() {
        let log = "Booting: production\nEndpoint: \"/\"\nPID: 31337\n13.76171875\n14.0\n14.5\n";
        let p = parse_log("mem.txt", log.as_bytes());
        assert_eq!(p.format, LogFormat::Derailed);
        assert!(!p.format.has_clock());
        assert!(p.skipped.is_empty());
        let s = &p.series[0];
        assert_eq!(s.pid, Some(31337));
        let times: Vec<f64> = s.samples.iter().map(|s| s.time).collect();
        assert_eq!(times, [0.0, 1.0, 2.0]);
        assert_eq!(
            s.samples[0].rss_bytes,
            Some((13.76171875 * MB as f64) as u64)
        );
        // Without the preamble: no pid, the name labels the series.
        let p = parse_log("mem.txt", b"10\n11\n");
        assert_eq!(p.series[0].pid, None);
        assert_eq!(p.series[0].label, "mem.txt");
    }

    #[test]
    fn junk_and_non_utf8_are_skipped_not_fatal() {
        let mut log = b"\xff\xfe garbage\n{\"time\":1,\"pid\":1,\"rss_bytes\":5}\n{\"time\":2,\n{\"pid\":1,\"rss_bytes\":5}\n{\"time\":3,\"pid\":1}\n\n".to_vec();
        log.extend_from_slice(b"{\"time\":4,\"pid\":1,\"rss_bytes\":6,\"x\":\"\xc3\x28\"}\n");
        let p = parse_log("x", &log);
        assert_eq!(p.sample_count(), 2);
        let lines: Vec<usize> = p.skipped.iter().map(|s| s.0).collect();
        assert_eq!(lines, [1, 3, 4, 5], "{:?}", p.skipped);
        assert!(p.skipped[2].1.contains("time"));
        assert!(p.skipped[3].1.contains("memory"));

        for junk in [
            &b""[..],
            b"\n\n",
            b"\x00\x01\x02",
            b"hello\nworld",
            b"{",
            b"[1,2]",
        ] {
            let p = parse_log("junk", junk);
            assert!(p.is_empty());
            assert_eq!(p.format, LogFormat::Unknown);
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(
            parse_timestamp("2024-05-01T12:00:00+00:00"),
            Some(1714564800.0)
        );
        assert_eq!(
            parse_timestamp("2024-05-01 12:00:00 +0000"),
            Some(1714564800.0)
        );
        assert_eq!(
            parse_timestamp("2024-05-01 12:00:00 UTC"),
            Some(1714564800.0)
        );
        assert_eq!(
            parse_timestamp("2024-05-01 14:00:00 +0200"),
            Some(1714564800.0)
        );
        assert_eq!(
            parse_timestamp("2024-05-01 07:00:00 -0500"),
            Some(1714564800.0)
        );
        assert_eq!(
            parse_timestamp("2024-05-01T12:00:00.25"),
            Some(1714564800.25)
        );
        assert_eq!(parse_timestamp("2000-02-29T00:00:00Z"), Some(951782400.0));
        assert_eq!(parse_timestamp("1714564800.5"), Some(1714564800.5));
        for bad in [
            "",
            "2024-05-01",
            "2024-13-01T00:00:00",
            "2024-05-01T12:00:00 CEST",
            "2024-05-01X12:00:00",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100"), Some(100 * 1024));
        assert_eq!(
            parse_size("123.4 MB"),
            Some((123.4 * MB as f64).round() as u64)
        );
        assert_eq!(parse_size("512MiB"), Some(512 * MB));
        assert_eq!(
            parse_size("1.2G"),
            Some((1.2 * 1024.0 * MB as f64).round() as u64)
        );
        assert_eq!(parse_size("10 kb"), Some(10 * 1024));
        assert_eq!(parse_size("7 B"), Some(7));
        assert_eq!(parse_size("MB"), None);
        assert_eq!(parse_size("-5 MB"), None);
        assert_eq!(parse_size("5 furlongs"), None);
    }

    #[test]
    fn merge_joins_pids_across_logs() {
        let a = parse_log(
            "a",
            b"{\"time\":2,\"pid\":1,\"rss_bytes\":20}\n{\"time\":1,\"pid\":2,\"rss_bytes\":5}\n",
        );
        let b = parse_log(
            "b",
            b"{\"time\":1,\"pid\":1,\"rss_bytes\":10}\n{\"time\":2,\"pid\":1,\"rss_bytes\":20}\n",
        );
        let c = parse_log("c", b"1\n2\n");
        let merged = merge_series(vec![a, b, c]);
        assert_eq!(merged.len(), 3);
        assert_eq!(merged[0].pid, Some(1));
        let times: Vec<f64> = merged[0].samples.iter().map(|s| s.time).collect();
        assert_eq!(times, [1.0, 2.0], "duplicates dropped, time-ordered");
        assert_eq!(merged[1].pid, Some(2));
        assert_eq!(merged[2].label, "c");
    }
}
