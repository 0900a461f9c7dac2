//! The agent's announcement file, `<runtime dir>/agent-<pid>.json`: how
//! `heapscope dump PID` learns which signal to send and where the dump will
//! appear, and how `heapscope watch` finds a process's statistics file.
//!
//! The agent rewrites it atomically whenever something a reader needs
//! changes (start, a dump requested, finished or failed) and removes it at
//! exit. It records the process's start time, so an announcement left by a
//! dead process is recognised even once its pid is reused: such stale files
//! are removed by [`remove_stale`] (at each agent start and exit, and by
//! `heapscope dump`).
//!
//! The runtime directory is created 0700 and refused when another user owns
//! it, others can write to it, or it is a symlink
//! ([`crate::secure::prepare_runtime_dir`]); announcements are 0600 and
//! written through a temporary file created with `O_EXCL | O_NOFOLLOW`.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::secure;

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
    /// Allocation tracing (absent in announcements of agents that cannot
    /// switch it, which `heapscope trace` then refuses to signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceState>,
}

/// Whether allocations are traced (`ObjectSpace.trace_object_allocations`),
/// and who turned it on. Rewritten after each `heapscope trace` request, so
/// the CLI can wait for `seq` to grow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceState {
    /// Trace requests handled so far (on, off and status alike).
    pub seq: u64,
    /// Whether new objects get file, line and generation now, whoever
    /// turned it on (the agent probes with an allocation of its own).
    pub active: bool,
    /// Whether the agent turned it on (`trace on`, or `trace_allocations`
    /// at start); `off` stops only what the agent started.
    pub by_agent: bool,
    /// Unix seconds when the agent turned it on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<f64>,
    /// What the latest request did, in a sentence for the CLI to print.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl TraceState {
    /// One line for `heapscope dump` and `heapscope trace`.
    pub fn describe(&self) -> String {
        match (self.active, self.by_agent) {
            (true, true) => "allocation tracing on (started by heapscope)".into(),
            (true, false) => "allocation tracing on (started by the app, not by heapscope)".into(),
            (false, _) => "allocation tracing off".into(),
        }
    }
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

/// An announcement as written by the agent: the state plus the process's
/// start time, in clock ticks since boot (field 22 of `/proc/PID/stat`),
/// which with the pid identifies the process. `heapscope dump` signals only a
/// process whose start time matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    #[serde(flatten)]
    pub state: AgentState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
}

/// An announcement file as read: the announcement, and the file's owner
/// uid and mode.
#[derive(Debug, Clone)]
pub struct ReadAnnouncement {
    pub announcement: Announcement,
    pub owner: u32,
    pub mode: u32,
}

impl Announcement {
    /// This process's announcement: `state` with this process's start time.
    pub fn for_this_process(state: AgentState) -> Announcement {
        let start_time = secure::proc_start_time(std::process::id());
        Announcement { state, start_time }
    }

    /// Writes the announcement atomically (readers never see half a file),
    /// 0600, after checking the runtime directory (created 0700 when
    /// missing; refused when unsafe, see [`secure::prepare_runtime_dir`]).
    pub fn write(&self, runtime_dir: &Path) -> io::Result<PathBuf> {
        secure::prepare_runtime_dir(runtime_dir)
            .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
        let path = state_path(runtime_dir, self.state.pid);
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        heapscope_pprof::write_atomic(&path, |w| w.write_all(&json))?;
        Ok(path)
    }

    /// Reads an announcement, never through a symlink, with the file's
    /// owner and mode.
    pub fn read(path: &Path) -> io::Result<ReadAnnouncement> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(secure::o_nofollow())
            .open(path)?;
        let meta = f.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a regular file", path.display()),
            ));
        }
        let mut bytes = Vec::new();
        // An announcement is a few hundred bytes; a huge file is not one.
        f.by_ref().take(1 << 20).read_to_end(&mut bytes)?;
        let announcement = serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(ReadAnnouncement {
            announcement,
            owner: meta.uid(),
            mode: meta.mode(),
        })
    }

    /// Whether the process this announces is the one running under its pid
    /// now: alive, and started when the announcement says.
    pub fn is_current(&self) -> bool {
        secure::proc_running(self.state.pid)
            && self.start_time.is_some()
            && secure::proc_start_time(self.state.pid) == self.start_time
    }
}

/// The pid in an announcement's file name (`agent-<pid>.json`).
pub fn parse_state_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("agent-")?.strip_suffix(".json")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl AgentState {
    /// Writes the announcement without a start time (see
    /// [`Announcement::write`], which the agent uses).
    pub fn write(&self, runtime_dir: &Path) -> io::Result<PathBuf> {
        Announcement {
            state: self.clone(),
            start_time: None,
        }
        .write(runtime_dir)
    }

    /// Reads an announcement's state; a symlink is never followed.
    pub fn read(path: &Path) -> io::Result<AgentState> {
        Ok(Announcement::read(path)?.announcement.state)
    }
}

/// Removes this user's stale announcements in `runtime_dir`: those whose
/// process is gone, or whose pid now belongs to a process that started at
/// another time. Other users' files and unreadable ones are left alone (an
/// unreadable file of ours whose pid is gone is removed). Returns the
/// removed paths.
pub fn remove_stale(runtime_dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(runtime_dir) else {
        return removed;
    };
    let me = secure::euid();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(parse_state_name) else {
            continue;
        };
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.uid() != me || !meta.is_file() {
            continue;
        }
        let stale = if !secure::proc_running(pid) {
            true
        } else {
            match Announcement::read(&path) {
                Ok(r) => {
                    let a = r.announcement;
                    a.state.pid != pid || (a.start_time.is_some() && !a.is_current())
                }
                Err(_) => false,
            }
        };
        if stale && std::fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
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
            trace: Some(TraceState {
                seq: 2,
                active: true,
                by_agent: true,
                since: Some(3.0),
                message: Some("on".into()),
            }),
        };
        let p = s.write(dir.path()).unwrap();
        assert_eq!(p, dir.path().join("agent-42.json"));
        assert_eq!(AgentState::read(&p).unwrap(), s);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    fn announce(dir: &Path, pid: u32, start_time: Option<u64>) -> PathBuf {
        let state = AgentState {
            pid,
            version: "0".into(),
            started_at: 0.0,
            dump_signal: Some(41),
            dump_dir: "/d".into(),
            stats_path: None,
            profile_path: None,
            last_dump: None,
            trace: None,
        };
        Announcement { state, start_time }.write(dir).unwrap()
    }

    #[test]
    fn stale_announcements_go() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let me = std::process::id();
        let mine = announce(d, me, secure::proc_start_time(me));
        // This pid, but another start time: a reused pid.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let reused = announce(d, child.id(), Some(1));
        // A dead pid.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let gone_pid = gone.id();
        gone.wait().unwrap();
        let dead = announce(d, gone_pid, Some(5));
        std::fs::write(d.join("other.json"), "{}").unwrap();
        let mut removed = remove_stale(d);
        removed.sort();
        let mut expected = vec![reused, dead];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(mine.exists());
        assert!(d.join("other.json").exists());
        let read = Announcement::read(&mine).unwrap();
        assert!(read.announcement.is_current());
        assert_eq!(read.owner, secure::euid());
        assert_eq!(read.mode & 0o777, 0o600);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(parse_state_name("agent-12.json"), Some(12));
        assert_eq!(parse_state_name("agent-.json"), None);
        assert_eq!(parse_state_name("agent-1x.json"), None);
    }

    #[test]
    fn a_symlinked_announcement_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let real = announce(dir.path(), 7, None);
        let link = dir.path().join("agent-8.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(AgentState::read(&real).is_ok());
        assert!(AgentState::read(&link).is_err());
    }
}
