//! Heap dump file names and retention.
//!
//! A dump is written as `.heap-<pid>-<unixtime>-<seq>.dump.tmp` in the dump
//! directory and renamed to `heap-<pid>-<unixtime>-<seq>.dump` once complete,
//! so a file under a final name is always whole. Retention keeps the newest
//! `dump_keep` dumps of each process; temporary files of processes that are no
//! longer running are leftovers of a killed dump and are removed. Only regular
//! files owned by this user count, so files another user plants in a shared
//! dump directory never push the app's own dumps out.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A regular file (not a symlink) owned by this process's user.
fn ours(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.file_type().is_file() && m.uid() == crate::secure::euid())
}

/// The parts of a dump's file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DumpName {
    pub pid: u32,
    pub unixtime: u64,
    pub seq: u64,
}

impl DumpName {
    /// `heap-<pid>-<unixtime>-<seq>.dump`.
    pub fn file_name(&self) -> String {
        format!("heap-{}-{}-{}.dump", self.pid, self.unixtime, self.seq)
    }

    /// `.heap-<pid>-<unixtime>-<seq>.dump.tmp`.
    pub fn temp_name(&self) -> String {
        format!(".{}.tmp", self.file_name())
    }

    /// A final dump name, or None for anything else.
    pub fn parse(name: &str) -> Option<DumpName> {
        let rest = name.strip_prefix("heap-")?.strip_suffix(".dump")?;
        let mut parts = rest.split('-');
        let pid = parse_digits(parts.next()?)?;
        let unixtime = parse_digits(parts.next()?)?;
        let seq = parse_digits(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(DumpName {
            pid: u32::try_from(pid).ok()?,
            unixtime,
            seq,
        })
    }

    /// A temporary dump name, or None for anything else.
    pub fn parse_temp(name: &str) -> Option<DumpName> {
        DumpName::parse(name.strip_prefix('.')?.strip_suffix(".tmp")?)
    }
}

fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The final and temporary paths of a dump in `dir`.
pub fn dump_paths(dir: &Path, name: DumpName) -> (PathBuf, PathBuf) {
    (dir.join(name.file_name()), dir.join(name.temp_name()))
}

/// The complete dumps of `pid` in `dir`, oldest first (by time, then seq).
/// A missing directory has no dumps.
pub fn list_dumps(dir: &Path, pid: u32) -> io::Result<Vec<(DumpName, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().and_then(DumpName::parse) else {
            continue;
        };
        if name.pid == pid && ours(&entry.path()) {
            out.push((name, entry.path()));
        }
    }
    out.sort_by_key(|(n, _)| (n.unixtime, n.seq));
    Ok(out)
}

/// Deletes the oldest dumps of `pid` beyond the newest `keep` (0 keeps all).
/// Returns the deleted paths; a file already gone is not an error.
pub fn enforce_keep(dir: &Path, pid: u32, keep: u64) -> io::Result<Vec<PathBuf>> {
    if keep == 0 {
        return Ok(Vec::new());
    }
    let dumps = list_dumps(dir, pid)?;
    let excess = dumps.len().saturating_sub(keep as usize);
    let mut removed = Vec::new();
    for (_, path) in dumps.into_iter().take(excess) {
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Removes temporary dump files whose process `is_alive` says is gone.
/// Returns the removed paths.
pub fn remove_stale_temps(dir: &Path, is_alive: impl Fn(u32) -> bool) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().and_then(DumpName::parse_temp) else {
            continue;
        };
        if is_alive(name.pid) || !ours(&entry.path()) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed.push(entry.path()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Whether a process with this pid exists (Linux: `/proc/<pid>`).
pub fn pid_alive(pid: u32) -> bool {
    pid != 0 && Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) {
        std::fs::write(dir.join(name), b"x").unwrap();
    }

    #[test]
    fn names_round_trip() {
        let n = DumpName {
            pid: 42,
            unixtime: 1_700_000_000,
            seq: 3,
        };
        assert_eq!(n.file_name(), "heap-42-1700000000-3.dump");
        assert_eq!(n.temp_name(), ".heap-42-1700000000-3.dump.tmp");
        assert_eq!(DumpName::parse(&n.file_name()), Some(n));
        assert_eq!(DumpName::parse_temp(&n.temp_name()), Some(n));
        assert_eq!(DumpName::parse(&n.temp_name()), None);
        assert_eq!(DumpName::parse_temp(&n.file_name()), None);
        for bad in [
            "heap-1-2.dump",
            "heap-1-2-3-4.dump",
            "heap-a-2-3.dump",
            "heap--2-3.dump",
            "heap-1-2-3.dump.gz",
            "heap-+1-2-3.dump",
            "heap-99999999999-2-3.dump",
        ] {
            assert_eq!(DumpName::parse(bad), None, "{bad}");
        }
        let (f, t) = dump_paths(Path::new("/d"), n);
        assert_eq!(f, PathBuf::from("/d/heap-42-1700000000-3.dump"));
        assert_eq!(t, PathBuf::from("/d/.heap-42-1700000000-3.dump.tmp"));
    }

    #[test]
    fn keeps_the_newest_per_pid() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // seq 10 sorts after seq 9 (numeric, not textual), and time wins over seq.
        for name in [
            "heap-7-100-9.dump",
            "heap-7-100-10.dump",
            "heap-7-99-11.dump",
            "heap-7-101-1.dump",
            "heap-8-50-1.dump",
            "other.txt",
            ".heap-7-102-12.dump.tmp",
        ] {
            touch(d, name);
        }
        let listed: Vec<u64> = list_dumps(d, 7)
            .unwrap()
            .iter()
            .map(|(n, _)| n.seq)
            .collect();
        assert_eq!(listed, vec![11, 9, 10, 1]);
        let removed = enforce_keep(d, 7, 2).unwrap();
        assert_eq!(
            removed,
            vec![d.join("heap-7-99-11.dump"), d.join("heap-7-100-9.dump")]
        );
        let left: Vec<u64> = list_dumps(d, 7)
            .unwrap()
            .iter()
            .map(|(n, _)| n.seq)
            .collect();
        assert_eq!(left, vec![10, 1]);
        // Other processes and other files are untouched.
        assert!(d.join("heap-8-50-1.dump").exists());
        assert!(d.join("other.txt").exists());
        assert!(d.join(".heap-7-102-12.dump.tmp").exists());
        assert!(enforce_keep(d, 7, 0).unwrap().is_empty());
        assert!(enforce_keep(&d.join("missing"), 7, 1).unwrap().is_empty());
    }

    #[test]
    fn stale_temps_of_dead_pids_go() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(d, ".heap-1-5-1.dump.tmp");
        touch(d, ".heap-2-5-1.dump.tmp");
        touch(d, "heap-1-5-1.dump");
        let removed = remove_stale_temps(d, |pid| pid == 2).unwrap();
        assert_eq!(removed, vec![d.join(".heap-1-5-1.dump.tmp")]);
        assert!(d.join(".heap-2-5-1.dump.tmp").exists());
        assert!(d.join("heap-1-5-1.dump").exists());
        assert!(remove_stale_temps(&d.join("missing"), |_| false)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn this_process_is_alive() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX - 1));
    }
}
