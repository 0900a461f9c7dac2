//! A process's memory from `/proc`, and its descendants.
//!
//! RSS, PSS and USS come from `/proc/PID/smaps_rollup` (Linux 4.14+): RSS = `Rss`, PSS = `Pss`,
//! USS = `Private_Clean + Private_Dirty`. When that file cannot be read (an older kernel, or a
//! process of another user without the right to read it), RSS falls back to `VmRSS` in
//! `/proc/PID/status` and PSS and USS are unknown.

use std::io;

use heapscope_agent::procmem::{parse_kb, parse_status_rss};

/// Memory of one process in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcMem {
    pub rss_bytes: u64,
    pub pss_bytes: Option<u64>,
    pub uss_bytes: Option<u64>,
}

/// Whether a process is running, an exited child its parent has not reaped yet, or gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Running,
    Zombie,
    Gone,
}

/// Reads `/proc/PID/stat`'s state letter (it follows the parenthesised command name, which may
/// itself contain parentheses, so the last `)` counts).
pub fn liveness(pid: u32) -> Liveness {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next())
        {
            Some('Z') | Some('X') | Some('x') => Liveness::Zombie,
            Some(_) => Liveness::Running,
            None => Liveness::Gone,
        },
        Err(_) => Liveness::Gone,
    }
}

pub fn is_running(pid: u32) -> bool {
    liveness(pid) == Liveness::Running
}

/// The memory of `pid` now. Fails when the process is gone (or has no memory left: a zombie).
pub fn memory(pid: u32) -> io::Result<ProcMem> {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
        if let Some(m) = parse_smaps_rollup(&text) {
            return Ok(m);
        }
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    match parse_status_rss(&text) {
        Some(rss) => Ok(ProcMem {
            rss_bytes: rss,
            pss_bytes: None,
            uss_bytes: None,
        }),
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("process {pid} has no resident memory (it has exited)"),
        )),
    }
}

/// `Rss`, `Pss`, `Private_Clean` and `Private_Dirty` lines of `smaps_rollup`; `None` when it has
/// no `Rss` line (a zombie's file is empty).
pub fn parse_smaps_rollup(text: &str) -> Option<ProcMem> {
    let (mut rss, mut pss, mut clean, mut dirty) = (None, None, None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "Rss" => &mut rss,
            "Pss" => &mut pss,
            "Private_Clean" => &mut clean,
            "Private_Dirty" => &mut dirty,
            _ => continue,
        };
        *slot = parse_kb(value);
    }
    let uss = match (clean, dirty) {
        (Some(c), Some(d)) => Some(c + d),
        _ => None,
    };
    Some(ProcMem {
        rss_bytes: rss?,
        pss_bytes: pss,
        uss_bytes: uss,
    })
}

/// The children of `pid`: the union of `/proc/PID/task/*/children` (Linux 3.5+, with
/// CONFIG_PROC_CHILDREN), falling back to scanning every process's parent in `/proc/*/stat`.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut read_any = false;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
                read_any = true;
                out.extend(
                    text.split_whitespace()
                        .filter_map(|w| w.parse::<u32>().ok()),
                );
            }
        }
    }
    if !read_any {
        out = children_by_scan(pid);
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn children_by_scan(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) {
            // After ") ": state, then ppid.
            let ppid = stat.rfind(')').and_then(|i| {
                let mut f = stat[i + 1..].split_whitespace();
                f.next();
                f.next()?.parse::<u32>().ok()
            });
            if ppid == Some(pid) {
                out.push(child);
            }
        }
    }
    out
}

/// Every descendant of `pid` (children, their children...), parents before children, without
/// `pid` itself. Bounded: a pid is visited once.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    seen.insert(pid);
    let mut queue = std::collections::VecDeque::from([pid]);
    while let Some(p) = queue.pop_front() {
        for c in children(p) {
            if seen.insert(c) {
                out.push(c);
                queue.push_back(c);
            }
        }
    }
    out
}

/// The command line of `pid`, arguments joined by spaces ("" when unknown).
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The processes with a socket listening on TCP `port` (IPv4 or IPv6), found through
/// `/proc/net/tcp{,6}` and the processes' open files (only processes this user may inspect).
pub fn listening_pids(port: u16) -> Vec<u32> {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let local_port = f[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                inodes.insert(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|l| inodes.contains(l.to_string_lossy().as_ref()))
        });
        if holds {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// The parent process id of `pid`.
pub fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = stat[stat.rfind(')')? + 1..].split_whitespace();
    f.next();
    f.next()?.parse().ok()
}

/// Of processes sharing a listening socket (a Puma master and its forked workers), the ones
/// whose parent is not among them: the roots to sample with their descendants.
pub fn topmost(pids: &[u32]) -> Vec<u32> {
    pids.iter()
        .copied()
        .filter(|p| parent(*p).is_none_or(|pp| !pids.contains(&pp)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_smaps_rollup() {
        let text = "55d0-7ffc ---p 00000000 00:00 0                          [rollup]\n\
                    Rss:               10240 kB\nPss:                8000 kB\n\
                    Pss_Anon:           6000 kB\nShared_Clean:       3000 kB\n\
                    Private_Clean:      1000 kB\nPrivate_Dirty:      5000 kB\n";
        let m = parse_smaps_rollup(text).unwrap();
        assert_eq!(m.rss_bytes, 10240 * 1024);
        assert_eq!(m.pss_bytes, Some(8000 * 1024));
        assert_eq!(m.uss_bytes, Some(6000 * 1024));
        assert_eq!(parse_smaps_rollup(""), None);
        assert_eq!(
            parse_status_rss("Name: x\nVmRSS:\t  42 kB\n"),
            Some(42 * 1024)
        );
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let m = memory(me).unwrap();
        assert!(m.rss_bytes > 100 * 1024);
        let (pss, uss) = (m.pss_bytes.unwrap(), m.uss_bytes.unwrap());
        assert!(m.rss_bytes >= pss && pss >= uss && uss > 0, "{m:?}");
        assert_eq!(liveness(me), Liveness::Running);
        assert!(!cmdline(me).is_empty());
    }

    #[test]
    fn finds_a_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = std::process::id();
        assert_eq!(listening_pids(port), vec![me]);
        assert_eq!(topmost(&[me]), vec![me]);
        assert_eq!(parent(me), Some(std::os::unix::process::parent_id()));
    }

    #[test]
    fn finds_a_child_and_its_exit() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(children(std::process::id()).contains(&pid));
        assert!(descendants(std::process::id()).contains(&pid));
        assert!(children_by_scan(std::process::id()).contains(&pid));
        child.kill().unwrap();
        // Killed but not reaped: a zombie.
        for _ in 0..100 {
            if liveness(pid) == Liveness::Zombie {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(liveness(pid), Liveness::Zombie);
        assert!(memory(pid).is_err());
        child.wait().unwrap();
        assert_eq!(liveness(pid), Liveness::Gone);
    }
}
