//! One sample of a process (and, if asked, its descendants): a [`Record`] per process, all with
//! the same time, each with the newest statistics of the agent when that process runs it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::agentstats::StatsTail;
use crate::proc::{self, Liveness};
use crate::record::Record;

pub struct Sampler {
    pid: u32,
    children: bool,
    direct_only: bool,
    runtime_dir: PathBuf,
    tails: HashMap<u32, StatsTail>,
}

/// What one sample found.
#[derive(Debug)]
pub struct Sample {
    pub time: f64,
    /// The root process first, then descendants in the order found. Empty when the root is gone.
    pub records: Vec<Record>,
    /// Whether the root process is still running (not gone, not a zombie).
    pub running: bool,
}

impl Sampler {
    /// `runtime_dir` is where agents announce themselves (see `heapscope_agent::state`).
    pub fn new(pid: u32, children: bool, runtime_dir: &Path) -> Sampler {
        Sampler {
            pid,
            children,
            direct_only: false,
            runtime_dir: runtime_dir.to_path_buf(),
            tails: HashMap::new(),
        }
    }

    /// With children: only the direct ones (a Puma master's workers, not the short-lived
    /// children the agent forks in them to write heap dumps).
    pub fn direct_children_only(mut self) -> Sampler {
        self.direct_only = true;
        self
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn sample(&mut self) -> Sample {
        let time = crate::unix_now();
        let mut pids = vec![self.pid];
        if self.children {
            if self.direct_only {
                pids.extend(proc::children(self.pid));
            } else {
                pids.extend(proc::descendants(self.pid));
            }
        }
        let mut records = Vec::with_capacity(pids.len());
        for pid in pids {
            // A process that exits between the listing and here is simply left out.
            let Ok(mem) = proc::memory(pid) else {
                continue;
            };
            let rd = &self.runtime_dir;
            let stats = self
                .tails
                .entry(pid)
                .or_insert_with(|| StatsTail::new(pid, rd))
                .poll();
            records.push(Record {
                time,
                pid,
                mem,
                stats,
                requests: None,
            });
        }
        // Forget processes that are gone (pids are reused).
        if self.tails.len() > records.len() {
            self.tails
                .retain(|p, _| records.iter().any(|r| r.pid == *p));
        }
        let running = proc::liveness(self.pid) == Liveness::Running;
        if !running {
            records.retain(|r| r.pid != self.pid);
        }
        Sample {
            time,
            records,
            running,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_self_and_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sampler::new(std::process::id(), true, dir.path());
        let sample = s.sample();
        assert!(sample.running);
        assert_eq!(sample.records[0].pid, std::process::id());
        assert!(sample.records.iter().any(|r| r.pid == child.id()));
        assert!(sample.records.iter().all(|r| r.time == sample.time));
        child.kill().unwrap();
        child.wait().unwrap();
        let mut gone = Sampler::new(child.id(), false, dir.path());
        let sample = gone.sample();
        assert!(!sample.running && sample.records.is_empty());
    }
}
