//! The agent's announcement file, `<runtime dir>/agent-<pid>.json`: how
//! `heapscope dump PID` learns which signal to send and where the dump will
//! appear, and how `heapscope watch` finds a process's statistics file.
//!
//! The agent rewrites it atomically whenever something a reader needs
//! changes (start, a dump requested, finished or failed) and removes it at
//! exit. A file whose pid is no longer running is stale and ignored.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How a requested dump is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DumpState {
    /// The child is writing it (under a temporary name).
    Writing,
    /// Renamed to its final name: complete.
    Done,
    /// The child failed; `error` says why.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpStatus {
    /// 1 for the process's first dump, then 2, 3...
    pub seq: u64,
    /// The final path (it exists only once `state` is `done`).
    pub path: PathBuf,
    pub state: DumpState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What asked for it: `signal`, `timer`, `requests`, `jobs` or `api`.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    pub pid: u32,
    pub version: String,
    /// Unix seconds when the agent started in this process.
    pub started_at: f64,
    /// Signal number that requests a dump, if dumps on signal are on.
    pub dump_signal: Option<i32>,
    /// Absolute directory of heap dumps.
    pub dump_dir: PathBuf,
    /// Absolute path of the statistics JSON-lines file, if the sampler is on.
    pub stats_path: Option<PathBuf>,
    /// Absolute profile path pattern, if the profiler is on.
    pub profile_path: Option<String>,
    /// The most recent dump, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_dump: Option<DumpStatus>,
}

/// `HEAPSCOPE_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/heapscope`, else
/// `/tmp/heapscope-<uid>`; `configured` is the setting's value ("" = unset).
pub fn runtime_dir(configured: &str) -> PathBuf {
    if !configured.is_empty() {
        return PathBuf::from(configured);
    }
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("heapscope");
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc_getuid() };
    std::env::temp_dir().join(format!("heapscope-{uid}"))
}

extern "C" {
    #[link_name = "getuid"]
    fn libc_getuid() -> u32;
}

pub fn state_path(runtime_dir: &Path, pid: u32) -> PathBuf {
    runtime_dir.join(format!("agent-{pid}.json"))
}

impl AgentState {
    /// Writes the announcement atomically (readers never see half a file).
    pub fn write(&self, runtime_dir: &Path) -> io::Result<PathBuf> {
        std::fs::create_dir_all(runtime_dir)?;
        let path = state_path(runtime_dir, self.pid);
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        heapscope_pprof::write_atomic(&path, |w| w.write_all(&json))?;
        Ok(path)
    }

    pub fn read(path: &Path) -> io::Result<AgentState> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let s = AgentState {
            pid: 42,
            version: "0.1.0".into(),
            started_at: 1.5,
            dump_signal: Some(41),
            dump_dir: "/d".into(),
            stats_path: Some("/s.jsonl".into()),
            profile_path: None,
            last_dump: Some(DumpStatus {
                seq: 1,
                path: "/d/heap-42-1-1.dump".into(),
                state: DumpState::Writing,
                error: None,
                reason: "signal".into(),
            }),
        };
        let p = s.write(dir.path()).unwrap();
        assert_eq!(p, dir.path().join("agent-42.json"));
        assert_eq!(AgentState::read(&p).unwrap(), s);
    }
}
