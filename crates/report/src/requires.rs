//! Rendering of `heapscope require-mem`: an indented tree like
//! `derailed bundle:mem` prints (name and MiB), and JSON with bytes.
//!
//! The cut-off hides, in the text, every node whose total is under it and
//! everything below it; their memory stays in their parents' totals. JSON
//! always has the whole tree, each node flagged `below_cutoff` when the text
//! hid it.

use heapscope_analysis::requires::{Node, Outcome, ProcessTree, RequireMem};
use serde_json::{json, Value};

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitInfo {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "unknown exit status".to_string(),
        }
    }
}

pub struct RequireMemReport<'a> {
    /// The command as typed, for the header.
    pub command: &'a str,
    pub exit: ExitInfo,
    pub result: &'a RequireMem,
    /// In bytes.
    pub cutoff: i64,
}

const MIB: f64 = 1024.0 * 1024.0;

/// MiB with two decimals; tiny negatives print as 0.00, not -0.00.
pub fn mib(bytes: i64) -> String {
    let v = bytes as f64 / MIB;
    if v.abs() < 0.005 {
        "0.00".to_string()
    } else {
        format!("{v:.2}")
    }
}

fn outcome_note(n: &Node) -> Option<String> {
    match &n.outcome {
        Outcome::Loaded => None,
        Outcome::Already => Some("returned false".into()),
        Outcome::Failed(e) => Some(format!("raised {}", first_line(e, 80))),
        Outcome::Unfinished => Some("unfinished: the process ended inside it".into()),
    }
}

fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() <= max {
        line.to_string()
    } else {
        let mut t: String = line.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

fn also_text(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
    let mut s = format!("also required by: {}", shown.join(", "));
    if names.len() > 3 {
        let more = names.len() - 3;
        s.push_str(&format!(
            ", and {more} other{}",
            if more == 1 { "" } else { "s" }
        ));
    }
    s
}

fn process_text(p: &ProcessTree, cutoff: i64, several: bool, out: &mut String) {
    if several {
        out.push_str(&format!("process {} ({}):\n", p.pid, p.script));
    }
    let failed = p.count(|o| matches!(o, Outcome::Failed(_)));
    let unfinished = p.count(|o| *o == Outcome::Unfinished);
    let mut counts = format!(
        "{} require calls: {} loaded files, {} already loaded",
        p.calls,
        p.count(|o| *o == Outcome::Loaded),
        p.already_loaded_calls
    );
    if failed > 0 {
        counts.push_str(&format!(", {failed} raised"));
    }
    if unfinished > 0 {
        counts.push_str(&format!(", {unfinished} unfinished"));
    }
    out.push_str(&format!("{counts}\n"));
    out.push_str(&format!(
        "RSS {} MiB when the hook loaded, {} MiB {}: {} MiB in requires, {} MiB outside them\n",
        mib(p.rss_start as i64),
        mib(p.rss_end as i64),
        if p.exited {
            "at exit"
        } else {
            "at the last record (no normal exit)"
        },
        mib(p.in_requires()),
        mib(p.total() - p.in_requires()),
    ));
    out.push_str(&format!("TOP: {} MiB\n", mib(p.total())));
    let visible = p.visible(cutoff);
    for (i, depth) in p.preorder() {
        if !visible[i] {
            continue;
        }
        let n = &p.nodes[i];
        let mut line = format!("{}{}: {} MiB", "  ".repeat(depth + 1), n.name, mib(n.total));
        let mut notes = Vec::new();
        if !n.children.is_empty() {
            notes.push(format!("own {}", mib(n.own)));
        }
        if let Some(o) = outcome_note(n) {
            notes.push(o);
        }
        if !n.also_required_by.is_empty() {
            notes.push(also_text(&n.also_required_by));
        }
        if !notes.is_empty() {
            line.push_str(&format!(" ({})", notes.join("; ")));
        }
        line.push('\n');
        out.push_str(&line);
    }
    let hidden = visible.iter().filter(|v| !**v).count();
    if hidden > 0 {
        out.push_str(&format!(
            "({hidden} of {} requires under {} MiB hidden; their memory is in their parents' totals; --cutoff 0 shows all)\n",
            p.nodes.len(),
            mib(cutoff)
        ));
    }
    if p.unmatched_already_loaded > 0 {
        out.push_str(&format!(
            "({} calls returned false for features loaded before the hook or under another name)\n",
            p.unmatched_already_loaded
        ));
    }
}

pub fn require_mem_text(r: &RequireMemReport<'_>) -> String {
    crate::safe_text(require_mem_text_unescaped(r))
}

fn require_mem_text_unescaped(r: &RequireMemReport<'_>) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "heapscope require-mem: {} ({})\n",
        r.command,
        r.exit.describe()
    ));
    let several = r.result.processes.len() > 1;
    for p in &r.result.processes {
        out.push('\n');
        process_text(p, r.cutoff, several, &mut out);
    }
    out
}

fn node_json(p: &ProcessTree, i: usize, visible: &[bool]) -> Value {
    let n = &p.nodes[i];
    let error = match &n.outcome {
        Outcome::Failed(e) => Some(e.as_str()),
        _ => None,
    };
    json!({
        "name": n.name,
        "feature": n.feature,
        "via": n.via.name(),
        "path": n.path,
        "outcome": n.outcome.name(),
        "error": error,
        "total": n.total,
        "own": n.own,
        "rss_before": n.rss_before,
        "rss_after": n.rss_after,
        "gc_runs": n.gc_runs,
        "seconds": (n.seconds * 1e6).round() / 1e6,
        "below_cutoff": !visible[i],
        "also_required_by": n.also_required_by,
        "children": n.children.iter().map(|&c| node_json(p, c, visible)).collect::<Vec<_>>(),
    })
}

pub fn require_mem_json(r: &RequireMemReport<'_>) -> Value {
    let processes: Vec<Value> = r
        .result
        .processes
        .iter()
        .map(|p| {
            let visible = p.visible(r.cutoff);
            json!({
                "pid": p.pid,
                "run": p.run,
                "parent_run": p.parent_run,
                "script": p.script,
                "ruby": p.ruby,
                "rss_start": p.rss_start,
                "rss_end": p.rss_end,
                "exited": p.exited,
                "total": p.total(),
                "in_requires": p.in_requires(),
                "calls": p.calls,
                "nodes": p.nodes.len(),
                "already_loaded_calls": p.already_loaded_calls,
                "unmatched_already_loaded": p.unmatched_already_loaded,
                "below_cutoff": visible.iter().filter(|v| !**v).count(),
                "requires": p.roots.iter().map(|&i| node_json(p, i, &visible)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "command": r.command,
        "exit_code": r.exit.code,
        "exit_signal": r.exit.signal,
        "success": r.exit.success(),
        "cutoff_bytes": r.cutoff,
        "units": "bytes",
        "processes": processes,
        "orphan_events": r.result.orphan_events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mib_formatting() {
        assert_eq!(mib(0), "0.00");
        assert_eq!(mib(-1000), "0.00");
        assert_eq!(mib(3 << 19), "1.50");
        assert_eq!(mib(-(1 << 20)), "-1.00");
    }

    #[test]
    fn also_required_by_is_shortened() {
        let names: Vec<String> = (1..=5).map(|i| format!("f{i}")).collect();
        assert_eq!(also_text(&names[..2]), "also required by: f1, f2");
        assert_eq!(
            also_text(&names),
            "also required by: f1, f2, f3, and 2 others"
        );
    }
}
