//! One sample of one process, and the CSV / JSON-lines files `watch` and `bench` write.
//!
//! Field names (CSV columns in this order): `time` (unix seconds), `pid`, `rss_bytes`,
//! `pss_bytes`, `uss_bytes`, then the agent's statistics ([`STAT_FIELDS`]). A CSV row has every
//! column, empty when unknown; a JSON line leaves unknown fields out. Each record is flushed as it
//! is written, so a reader (or an interrupted run) never sees half of one.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde_json::{Map, Value};

use crate::agentstats::{AgentStats, STAT_FIELDS};
use crate::proc::ProcMem;

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Unix seconds.
    pub time: f64,
    pub pid: u32,
    pub mem: ProcMem,
    /// The agent's newest statistics, when the process runs it.
    pub stats: Option<AgentStats>,
    /// Overrides the agent's `requests` (bench: requests completed so far, all processes).
    pub requests: Option<u64>,
}

impl Record {
    /// The value of a statistics field, with `requests` overridden.
    pub fn stat(&self, field: &str) -> Option<u64> {
        if field == "requests" && self.requests.is_some() {
            return self.requests;
        }
        self.stats.and_then(|s| s.get(field))
    }

    pub fn live_objects(&self) -> Option<u64> {
        self.stat("heap_live_slots")
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("time".into(), Value::from(round_time(self.time)));
        m.insert("pid".into(), Value::from(self.pid));
        m.insert("rss_bytes".into(), Value::from(self.mem.rss_bytes));
        if let Some(p) = self.mem.pss_bytes {
            m.insert("pss_bytes".into(), Value::from(p));
        }
        if let Some(u) = self.mem.uss_bytes {
            m.insert("uss_bytes".into(), Value::from(u));
        }
        for f in STAT_FIELDS {
            if let Some(v) = self.stat(f) {
                m.insert(f.into(), Value::from(v));
            }
        }
        Value::Object(m)
    }

    pub fn csv_row(&self) -> String {
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut cols = vec![
            format!("{:.3}", self.time),
            self.pid.to_string(),
            self.mem.rss_bytes.to_string(),
            opt(self.mem.pss_bytes),
            opt(self.mem.uss_bytes),
        ];
        cols.extend(STAT_FIELDS.iter().map(|f| opt(self.stat(f))));
        cols.join(",")
    }
}

/// Milliseconds are plenty, and keep lines short.
fn round_time(t: f64) -> f64 {
    (t * 1000.0).round() / 1000.0
}

/// The CSV header row.
pub fn csv_header() -> String {
    let mut cols = vec!["time", "pid", "rss_bytes", "pss_bytes", "uss_bytes"];
    cols.extend(STAT_FIELDS);
    cols.join(",")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    /// `.csv` is CSV; anything else (`.jsonl`, `.json`, `.ndjson`...) is JSON lines.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => Format::Jsonl,
        }
    }
}

/// Writes records to a file, one line each, flushed after each.
pub struct RecordWriter {
    out: BufWriter<File>,
    format: Format,
}

impl RecordWriter {
    /// Creates (replaces) `path`, through [`crate::outfile::create_streaming`];
    /// a CSV file starts with its header.
    pub fn create(path: &Path, format: Format) -> io::Result<RecordWriter> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let head = match format {
            Format::Csv => format!("{}\n", csv_header()),
            Format::Jsonl => String::new(),
        };
        Ok(RecordWriter {
            out: BufWriter::new(crate::outfile::create_streaming(path, head.as_bytes())?),
            format,
        })
    }

    pub fn write(&mut self, r: &Record) -> io::Result<()> {
        match self.format {
            Format::Csv => writeln!(self.out, "{}", r.csv_row())?,
            Format::Jsonl => writeln!(self.out, "{}", r.to_json())?,
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        let mut stats = AgentStats::default();
        stats.values[0] = Some(1000);
        stats.values[8] = Some(5);
        Record {
            time: 1763710200.12345,
            pid: 42,
            mem: ProcMem {
                rss_bytes: 300,
                pss_bytes: Some(200),
                uss_bytes: None,
            },
            stats: Some(stats),
            requests: None,
        }
    }

    #[test]
    fn json_and_csv() {
        let r = rec();
        assert_eq!(
            r.to_json().to_string(),
            "{\"time\":1763710200.123,\"pid\":42,\"rss_bytes\":300,\"pss_bytes\":200,\
             \"heap_live_slots\":1000,\"requests\":5}"
        );
        assert_eq!(r.csv_row(), "1763710200.123,42,300,200,,1000,,,,,,,,5,");
        assert_eq!(
            csv_header().split(',').count(),
            r.csv_row().split(',').count()
        );
        let bench = Record {
            requests: Some(77),
            ..r
        };
        assert_eq!(bench.stat("requests"), Some(77));
        assert_eq!(bench.live_objects(), Some(1000));
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::from_path(Path::new("a/b.CSV")), Format::Csv);
        assert_eq!(Format::from_path(Path::new("a/b.jsonl")), Format::Jsonl);
        assert_eq!(Format::from_path(Path::new("b")), Format::Jsonl);
    }
}
