//! The newest statistics record of a process running the heapscope agent.
//!
//! The agent announces itself in `<runtime dir>/agent-<pid>.json`, whose `stats_path` names a
//! JSON-lines file it appends one record to every `stats_interval`. [`StatsTail`] finds that file
//! (looking again now and then, since an agent can start after the watcher), reads only what was
//! appended since the last call, and keeps the newest complete record.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use heapscope_agent::state::{state_path, AgentState};
use serde_json::Value;

/// The statistics fields copied into watch records, in their CSV column order.
pub use heapscope_agent::stats::STAT_FIELDS;

/// One agent statistics record: the values of [`STAT_FIELDS`] (in that order) it had.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentStats {
    pub values: [Option<u64>; STAT_FIELDS.len()],
}

impl AgentStats {
    pub fn get(&self, field: &str) -> Option<u64> {
        STAT_FIELDS
            .iter()
            .position(|f| *f == field)
            .and_then(|i| self.values[i])
    }

    /// Parses one JSON line; `None` unless it is an object with at least one known field.
    pub fn parse(line: &str) -> Option<AgentStats> {
        let v: Value = serde_json::from_str(line).ok()?;
        let obj = v.as_object()?;
        let mut s = AgentStats::default();
        let mut any = false;
        for (i, f) in STAT_FIELDS.iter().enumerate() {
            if let Some(n) = obj.get(*f).and_then(as_u64) {
                s.values[i] = Some(n);
                any = true;
            }
        }
        any.then_some(s)
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// How often to look again for an agent that has not announced itself.
const LOOK_AGAIN: Duration = Duration::from_secs(1);
/// On first opening a long statistics file, only its end is read.
const FIRST_READ_MAX: u64 = 256 * 1024;

/// Follows one process's statistics file.
#[derive(Debug)]
pub struct StatsTail {
    pid: u32,
    runtime_dir: PathBuf,
    path: Option<PathBuf>,
    last_look: Option<Instant>,
    offset: u64,
    partial: Vec<u8>,
    latest: Option<AgentStats>,
}

impl StatsTail {
    pub fn new(pid: u32, runtime_dir: &Path) -> StatsTail {
        StatsTail {
            pid,
            runtime_dir: runtime_dir.to_path_buf(),
            path: None,
            last_look: None,
            offset: 0,
            partial: Vec::new(),
            latest: None,
        }
    }

    /// Follows `path` directly (no announcement needed).
    pub fn with_path(pid: u32, path: PathBuf) -> StatsTail {
        let mut t = StatsTail::new(pid, Path::new(""));
        t.path = Some(path);
        t
    }

    /// The statistics file, once found.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reads what was appended and returns the newest record seen so far, if any.
    pub fn poll(&mut self) -> Option<AgentStats> {
        if self.path.is_none() {
            let due = self.last_look.is_none_or(|t| t.elapsed() >= LOOK_AGAIN);
            if due {
                self.last_look = Some(Instant::now());
                self.path = AgentState::read(&state_path(&self.runtime_dir, self.pid))
                    .ok()
                    .filter(|s| s.pid == self.pid)
                    .and_then(|s| s.stats_path);
            }
        }
        if let Some(path) = self.path.clone() {
            self.read_new(&path);
        }
        self.latest
    }

    fn read_new(&mut self, path: &Path) {
        let Ok(mut f) = File::open(path) else {
            return;
        };
        let Ok(len) = f.metadata().map(|m| m.len()) else {
            return;
        };
        if len < self.offset {
            // Replaced or truncated: start again.
            self.offset = 0;
            self.partial.clear();
        }
        if self.offset == 0 && len > FIRST_READ_MAX {
            self.offset = len - FIRST_READ_MAX;
            // The first line read is probably cut: skip it.
            self.partial.clear();
            self.partial.push(b'\x00');
        }
        if len == self.offset || f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::with_capacity((len - self.offset) as usize);
        let Ok(n) = f.take(len - self.offset).read_to_end(&mut buf) else {
            return;
        };
        self.offset += n as u64;
        self.partial.extend_from_slice(&buf);
        // Only complete lines count; the rest waits for the next poll.
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        for line in complete.split(|&b| b == b'\n').rev() {
            if let Some(s) = std::str::from_utf8(line).ok().and_then(AgentStats::parse) {
                self.latest = Some(s);
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn follows_appended_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gc.jsonl");
        let mut t = StatsTail::with_path(7, path.clone());
        assert_eq!(t.poll(), None);
        let mut f = File::create(&path).unwrap();
        f.write_all(
            b"{\"time\":1.5,\"pid\":7,\"heap_live_slots\":10,\"requests\":3}\n{\"heap_live",
        )
        .unwrap();
        f.flush().unwrap();
        let s = t.poll().unwrap();
        assert_eq!(s.get("heap_live_slots"), Some(10));
        assert_eq!(s.get("requests"), Some(3));
        assert_eq!(s.get("jobs"), None);
        f.write_all(b"_slots\":20,\"major_gc_count\":2}\n").unwrap();
        f.flush().unwrap();
        let s = t.poll().unwrap();
        assert_eq!(s.get("heap_live_slots"), Some(20));
        assert_eq!(s.get("major_gc_count"), Some(2));
        assert_eq!(s.get("requests"), None);
    }

    #[test]
    fn finds_the_file_through_the_announcement() {
        let dir = tempfile::tempdir().unwrap();
        let stats = dir.path().join("gc-99.jsonl");
        std::fs::write(&stats, "{\"heap_live_slots\":5}\n").unwrap();
        let state = AgentState {
            pid: 99,
            version: "0".into(),
            started_at: 0.0,
            dump_signal: None,
            dump_dir: dir.path().into(),
            stats_path: Some(stats),
            profile_path: None,
            last_dump: None,
            trace: None,
        };
        state.write(dir.path()).unwrap();
        let mut t = StatsTail::new(99, dir.path());
        assert_eq!(t.poll().unwrap().get("heap_live_slots"), Some(5));
        let mut none = StatsTail::new(98, dir.path());
        assert_eq!(none.poll(), None);
    }
}
