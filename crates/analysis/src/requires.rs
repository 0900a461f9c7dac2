//! `require-mem`: the memory each `require` adds, as a tree.
//!
//! The Ruby hook (`ruby/lib/heapscope/require_mem.rb`) records one event when
//! a require starts and one when it returns or raises, with the process's RSS
//! each time (no GC is forced). The CLI turns its JSON lines into [`Event`]s;
//! [`build`] turns those into one [`ProcessTree`] per process that loaded the
//! hook:
//!
//! - a node's `total` is its RSS delta (RSS after minus RSS before, children
//!   included), its `own` is `total` minus its children's totals. Both can be
//!   negative when a GC in the middle returned memory; they are kept signed.
//! - a require that returned `false` (already loaded) and loaded nothing is
//!   not a node: its caller is listed in the loading node's
//!   `also_required_by`. Its (tiny) delta stays in its caller's `own`.
//! - a require that never ended (the process died in it) ends at the last RSS
//!   seen in its process and is marked [`Outcome::Unfinished`].
//! - children are sorted by total, largest first.

use std::collections::HashMap;

/// How a file was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Require,
    RequireRelative,
    Load,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Require => "require",
            Via::RequireRelative => "require_relative",
            Via::Load => "load",
        }
    }

    pub fn from_name(s: &str) -> Option<Via> {
        match s {
            "require" => Some(Via::Require),
            "require_relative" => Some(Via::RequireRelative),
            "load" => Some(Via::Load),
            _ => None,
        }
    }
}

/// How a require call ended, as the hook reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndResult {
    /// Returned true: the file was loaded by this call.
    Loaded,
    /// Returned false: already loaded (or being loaded) elsewhere.
    Already,
    /// Raised; the message is `Class: message`.
    Error(String),
}

/// One record of the hook's output. `run` names one process (a pid and a
/// random part, so an `exec` that keeps the pid starts a new run).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Start {
        run: String,
        pid: u32,
        parent_run: Option<String>,
        rss: u64,
        script: String,
        cwd: String,
        ruby: String,
    },
    Begin {
        run: String,
        id: u64,
        parent: Option<u64>,
        feature: String,
        via: Via,
        rss: u64,
        gc: u64,
        time: f64,
    },
    End {
        run: String,
        id: u64,
        result: EndResult,
        path: Option<String>,
        rss: u64,
        gc: u64,
        time: f64,
    },
    Exit {
        run: String,
        rss: u64,
    },
}

/// How a node's require ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Loaded,
    /// Returned false but required other files on the way (kept as a node).
    Already,
    Failed(String),
    /// No end record: the process died inside this require.
    Unfinished,
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Loaded => "loaded",
            Outcome::Already => "already_loaded",
            Outcome::Failed(_) => "failed",
            Outcome::Unfinished => "unfinished",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    /// The argument of require/require_relative/load (require_relative's made absolute).
    pub feature: String,
    /// The feature for people: require_relative and load paths relative to
    /// the process's working directory when they are under it.
    pub name: String,
    pub via: Via,
    /// The file that was loaded (the new entry of $LOADED_FEATURES), when known.
    pub path: Option<String>,
    pub outcome: Outcome,
    pub rss_before: u64,
    pub rss_after: u64,
    /// RSS after minus RSS before, children included.
    pub total: i64,
    /// `total` minus the children's totals.
    pub own: i64,
    /// Garbage collections that ran during the require (children included).
    pub gc_runs: u64,
    pub seconds: f64,
    /// Indices into [`ProcessTree::nodes`], largest total first.
    pub children: Vec<usize>,
    pub parent: Option<usize>,
    /// Names of the other places that required this feature after it was
    /// loaded here (the file that required it, or the script for top-level
    /// requires), in first-seen order, without duplicates.
    pub also_required_by: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ProcessTree {
    pub run: String,
    pub pid: u32,
    /// The run this one was forked from.
    pub parent_run: Option<String>,
    /// `$0` when the hook loaded (`-e` for `ruby -e`).
    pub script: String,
    pub ruby: String,
    /// RSS when the hook loaded.
    pub rss_start: u64,
    /// RSS at exit, or the last RSS recorded when the process did not exit normally.
    pub rss_end: u64,
    /// Whether the hook saw the process exit (at_exit ran).
    pub exited: bool,
    pub nodes: Vec<Node>,
    /// Top-level requires, largest total first.
    pub roots: Vec<usize>,
    /// Every require/require_relative/load call recorded.
    pub calls: usize,
    /// Calls that returned false and were folded into "also required by".
    pub already_loaded_calls: usize,
    /// Of those, calls whose first load was not recorded (loaded before the
    /// hook, or under another spelling): they appear nowhere in the tree.
    pub unmatched_already_loaded: usize,
}

impl ProcessTree {
    /// RSS growth from the hook's load to the end.
    pub fn total(&self) -> i64 {
        self.rss_end as i64 - self.rss_start as i64
    }

    /// The sum of the top-level requires' totals.
    pub fn in_requires(&self) -> i64 {
        self.roots.iter().map(|&r| self.nodes[r].total).sum()
    }

    pub fn count(&self, outcome: fn(&Outcome) -> bool) -> usize {
        self.nodes.iter().filter(|n| outcome(&n.outcome)).count()
    }

    /// Which nodes a cut-off hides: a node whose total is under `cutoff`
    /// bytes, and everything below it; except unfinished requires (where the
    /// process ended), which are always shown. `visible[i]` for node `i`.
    pub fn visible(&self, cutoff: i64) -> Vec<bool> {
        let mut visible = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = self.roots.clone();
        while let Some(i) = stack.pop() {
            if self.nodes[i].total >= cutoff || self.nodes[i].outcome == Outcome::Unfinished {
                visible[i] = true;
                stack.extend(&self.nodes[i].children);
            }
        }
        visible
    }

    /// Node indices in display order (depth first, children by size), with depths.
    pub fn preorder(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut stack: Vec<(usize, usize)> = self.roots.iter().rev().map(|&r| (r, 0)).collect();
        while let Some((i, d)) = stack.pop() {
            out.push((i, d));
            stack.extend(self.nodes[i].children.iter().rev().map(|&c| (c, d + 1)));
        }
        out
    }
}

/// The result of [`build`]: one tree per process, in the order they started.
#[derive(Debug, Clone, Default)]
pub struct RequireMem {
    pub processes: Vec<ProcessTree>,
    /// Events of a run whose start record is missing, or of an unknown id.
    pub orphan_events: usize,
}

impl RequireMem {
    pub fn calls(&self) -> usize {
        self.processes.iter().map(|p| p.calls).sum()
    }
}

/// A feature without its extension, for matching `require "x"` with `require "x.rb"`.
fn feature_key(f: &str) -> &str {
    for ext in [".rb", ".so", ".bundle", ".o", ".dll"] {
        if let Some(s) = f.strip_suffix(ext) {
            return s;
        }
    }
    f
}

fn display_name(feature: &str, via: Via, cwd: &str) -> String {
    if via == Via::Require {
        return feature.to_string();
    }
    let cwd = cwd.trim_end_matches('/');
    match feature.strip_prefix(cwd) {
        Some(rest) if !cwd.is_empty() && rest.starts_with('/') => format!(".{rest}"),
        _ => feature.to_string(),
    }
}

struct Call {
    feature: String,
    via: Via,
    parent: Option<u64>,
    rss_before: u64,
    gc_before: u64,
    time_before: f64,
    end: Option<(EndResult, Option<String>, u64, u64, f64)>,
    children: Vec<u64>,
}

struct Run {
    start: Event,
    calls: Vec<(u64, Call)>,
    index: HashMap<u64, usize>,
    last_rss: u64,
    last_gc: u64,
    last_time: f64,
    exit_rss: Option<u64>,
}

/// Builds the trees from the hook's events, in file order.
pub fn build(events: impl IntoIterator<Item = Event>) -> RequireMem {
    let mut runs: Vec<Run> = Vec::new();
    let mut by_run: HashMap<String, usize> = HashMap::new();
    let mut orphans = 0;
    for ev in events {
        let run_name = match &ev {
            Event::Start { run, .. }
            | Event::Begin { run, .. }
            | Event::End { run, .. }
            | Event::Exit { run, .. } => run.clone(),
        };
        if let Event::Start { rss, .. } = &ev {
            if let std::collections::hash_map::Entry::Vacant(e) = by_run.entry(run_name) {
                e.insert(runs.len());
                runs.push(Run {
                    last_rss: *rss,
                    start: ev,
                    calls: Vec::new(),
                    index: HashMap::new(),
                    last_gc: 0,
                    last_time: 0.0,
                    exit_rss: None,
                });
            }
            continue;
        }
        let Some(&ri) = by_run.get(&run_name) else {
            orphans += 1;
            continue;
        };
        let r = &mut runs[ri];
        match ev {
            Event::Start { .. } => unreachable!(),
            Event::Begin {
                id,
                parent,
                feature,
                via,
                rss,
                gc,
                time,
                ..
            } => {
                if r.index.contains_key(&id) {
                    orphans += 1;
                    continue;
                }
                let parent = parent.filter(|p| r.index.contains_key(p));
                if let Some(p) = parent {
                    let pi = r.index[&p];
                    r.calls[pi].1.children.push(id);
                }
                r.index.insert(id, r.calls.len());
                r.calls.push((
                    id,
                    Call {
                        feature,
                        via,
                        parent,
                        rss_before: rss,
                        gc_before: gc,
                        time_before: time,
                        end: None,
                        children: Vec::new(),
                    },
                ));
                (r.last_rss, r.last_gc, r.last_time) = (rss, gc, time);
            }
            Event::End {
                id,
                result,
                path,
                rss,
                gc,
                time,
                ..
            } => {
                let Some(&ci) = r.index.get(&id) else {
                    orphans += 1;
                    continue;
                };
                r.calls[ci].1.end = Some((result, path, rss, gc, time));
                (r.last_rss, r.last_gc, r.last_time) = (rss, gc, time);
            }
            Event::Exit { rss, .. } => {
                r.exit_rss = Some(rss);
                r.last_rss = rss;
            }
        }
    }
    RequireMem {
        processes: runs.into_iter().map(tree_of_run).collect(),
        orphan_events: orphans,
    }
}

fn tree_of_run(r: Run) -> ProcessTree {
    let Event::Start {
        run,
        pid,
        parent_run,
        rss,
        script,
        cwd,
        ruby,
    } = r.start
    else {
        unreachable!()
    };
    let calls = r.calls;
    // Which calls become nodes: everything but a false-returning require
    // that loaded nothing below it.
    let folded: Vec<bool> = calls
        .iter()
        .map(|(_, c)| {
            matches!(c.end, Some((EndResult::Already, ..)))
                && c.children.is_empty()
                && c.via != Via::Load
        })
        .collect();
    let mut node_of: Vec<Option<usize>> = vec![None; calls.len()];
    let mut nodes: Vec<Node> = Vec::new();
    for (ci, (_, c)) in calls.iter().enumerate() {
        if folded[ci] {
            continue;
        }
        let (outcome, path, rss_after, gc_after, time_after) = match &c.end {
            Some((res, path, rss, gc, time)) => (
                match res {
                    EndResult::Loaded => Outcome::Loaded,
                    EndResult::Already => Outcome::Already,
                    EndResult::Error(e) => Outcome::Failed(e.clone()),
                },
                path.clone(),
                *rss,
                *gc,
                *time,
            ),
            None => (
                Outcome::Unfinished,
                None,
                r.last_rss,
                r.last_gc,
                r.last_time,
            ),
        };
        node_of[ci] = Some(nodes.len());
        nodes.push(Node {
            name: display_name(&c.feature, c.via, &cwd),
            feature: c.feature.clone(),
            via: c.via,
            path,
            outcome,
            rss_before: c.rss_before,
            rss_after,
            total: rss_after as i64 - c.rss_before as i64,
            own: 0,
            gc_runs: gc_after.saturating_sub(c.gc_before),
            seconds: (time_after - c.time_before).max(0.0),
            children: Vec::new(),
            parent: None,
            also_required_by: Vec::new(),
        });
    }
    let call_index: HashMap<u64, usize> = calls
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    let mut roots = Vec::new();
    for (ci, (_, c)) in calls.iter().enumerate() {
        let Some(ni) = node_of[ci] else { continue };
        // A node's parent is the nearest enclosing call that is a node (a
        // folded call has no children, so it is never anyone's parent).
        let parent = c.parent.and_then(|p| node_of[call_index[&p]]);
        nodes[ni].parent = parent;
        match parent {
            Some(p) => nodes[p].children.push(ni),
            None => roots.push(ni),
        }
    }
    // Where each feature was first loaded, by its spelling and by its file.
    let mut loaded_at: HashMap<String, usize> = HashMap::new();
    for n in nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.outcome == Outcome::Loaded)
    {
        let (i, n) = n;
        loaded_at
            .entry(feature_key(&n.feature).to_string())
            .or_insert(i);
        if let Some(p) = &n.path {
            loaded_at.entry(feature_key(p).to_string()).or_insert(i);
        }
    }
    let mut already = 0;
    let mut unmatched = 0;
    for (ci, (_, c)) in calls.iter().enumerate() {
        if !folded[ci] {
            continue;
        }
        already += 1;
        let Some(&target) = loaded_at.get(feature_key(&c.feature)) else {
            unmatched += 1;
            continue;
        };
        let caller = c.parent.and_then(|p| node_of[call_index[&p]]);
        if caller == nodes[target].parent || caller == Some(target) {
            continue;
        }
        let who = match caller {
            Some(p) => nodes[p].name.clone(),
            None => script.clone(),
        };
        if !nodes[target].also_required_by.contains(&who) {
            nodes[target].also_required_by.push(who);
        }
    }
    for i in 0..nodes.len() {
        let children_total: i64 = nodes[i].children.iter().map(|&c| nodes[c].total).sum();
        nodes[i].own = nodes[i].total - children_total;
    }
    let by_total = |v: &mut Vec<usize>, nodes: &[Node]| {
        // Stable: equal totals keep the order they were required in.
        v.sort_by(|&a, &b| nodes[b].total.cmp(&nodes[a].total));
    };
    for i in 0..nodes.len() {
        let mut ch = std::mem::take(&mut nodes[i].children);
        by_total(&mut ch, &nodes);
        nodes[i].children = ch;
    }
    by_total(&mut roots, &nodes);
    ProcessTree {
        run,
        pid,
        parent_run,
        script,
        ruby,
        rss_start: rss,
        rss_end: r.exit_rss.unwrap_or(r.last_rss),
        exited: r.exit_rss.is_some(),
        nodes,
        roots,
        calls: calls.len(),
        already_loaded_calls: already,
        unmatched_already_loaded: unmatched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn start() -> Event {
        Event::Start {
            run: "r".into(),
            pid: 1,
            parent_run: None,
            rss: 10 * MIB,
            script: "main.rb".into(),
            cwd: "/app".into(),
            ruby: "3.1.2".into(),
        }
    }

    fn begin(id: u64, parent: Option<u64>, feature: &str, rss: u64) -> Event {
        Event::Begin {
            run: "r".into(),
            id,
            parent,
            feature: feature.into(),
            via: if feature.starts_with('/') {
                Via::RequireRelative
            } else {
                Via::Require
            },
            rss,
            gc: 0,
            time: 0.0,
        }
    }

    fn end(id: u64, result: EndResult, rss: u64) -> Event {
        Event::End {
            run: "r".into(),
            id,
            result,
            path: None,
            rss,
            gc: 0,
            time: 0.0,
        }
    }

    #[test]
    fn tree_totals_own_sorting_and_also_required_by() {
        let evs = vec![
            start(),
            begin(1, None, "small", 10 * MIB),
            begin(2, Some(1), "shared", 10 * MIB),
            end(2, EndResult::Loaded, 11 * MIB),
            end(1, EndResult::Loaded, 12 * MIB),
            begin(3, None, "/app/lib/big.rb", 12 * MIB),
            begin(4, Some(3), "shared", 13 * MIB),
            end(4, EndResult::Already, 13 * MIB),
            begin(5, Some(3), "shared.rb", 13 * MIB),
            end(5, EndResult::Already, 13 * MIB),
            end(3, EndResult::Loaded, 22 * MIB),
            begin(6, None, "shared", 22 * MIB),
            end(6, EndResult::Already, 22 * MIB),
            Event::Exit {
                run: "r".into(),
                rss: 25 * MIB,
            },
        ];
        let t = build(evs);
        assert_eq!(t.processes.len(), 1);
        let p = &t.processes[0];
        assert_eq!(p.nodes.len(), 3);
        assert_eq!(p.calls, 6);
        assert_eq!(p.already_loaded_calls, 3);
        assert_eq!(p.total(), 15 * MIB as i64);
        assert_eq!(p.in_requires(), 12 * MIB as i64);
        let names: Vec<&str> = p.roots.iter().map(|&r| p.nodes[r].name.as_str()).collect();
        assert_eq!(names, ["./lib/big.rb", "small"]);
        let small = &p.nodes[p.roots[1]];
        assert_eq!(small.total, 2 * MIB as i64);
        assert_eq!(small.own, MIB as i64);
        let shared = &p.nodes[small.children[0]];
        assert_eq!(shared.also_required_by, ["./lib/big.rb", "main.rb"]);
        // The cut-off hides a subtree, not just a node.
        let vis = p.visible((3 * MIB) as i64);
        assert_eq!(vis.iter().filter(|v| **v).count(), 1);
        assert_eq!(p.preorder().len(), 3);
    }

    #[test]
    fn unfinished_and_failed_requires() {
        let evs = vec![
            start(),
            begin(1, None, "a", 10 * MIB),
            begin(2, Some(1), "missing", 11 * MIB),
            end(2, EndResult::Error("LoadError: no".into()), 11 * MIB),
            begin(3, Some(1), "boom", 11 * MIB),
            begin(4, Some(3), "deep", 12 * MIB),
            end(4, EndResult::Loaded, 14 * MIB),
        ];
        let p = &build(evs).processes[0];
        assert!(!p.exited);
        assert_eq!(p.rss_end, 14 * MIB);
        let a = &p.nodes[p.roots[0]];
        assert_eq!(a.outcome, Outcome::Unfinished);
        assert_eq!(a.total, 4 * MIB as i64);
        let boom = &p.nodes[a.children[0]];
        assert_eq!(boom.feature, "boom");
        assert_eq!(boom.outcome, Outcome::Unfinished);
        let missing = &p.nodes[a.children[1]];
        assert_eq!(missing.outcome, Outcome::Failed("LoadError: no".into()));
    }

    #[test]
    fn negative_deltas_stay_signed_and_orphans_are_counted() {
        let evs = vec![
            Event::Exit {
                run: "x".into(),
                rss: 0,
            },
            start(),
            begin(1, None, "a", 20 * MIB),
            begin(2, Some(1), "b", 20 * MIB),
            end(2, EndResult::Loaded, 25 * MIB),
            end(1, EndResult::Loaded, 24 * MIB),
        ];
        let t = build(evs);
        assert_eq!(t.orphan_events, 1);
        let p = &t.processes[0];
        let a = &p.nodes[p.roots[0]];
        assert_eq!(a.total, 4 * MIB as i64);
        assert_eq!(a.own, -(MIB as i64));
    }
}
