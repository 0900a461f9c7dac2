//! What the profile page shows of an imported pprof profile: its sample
//! types, totals, top sites and folded stacks (for a flame graph), computed
//! once at import.

use std::collections::HashMap;

use heapscope_pprof::{read_gz, Profile};
use serde_json::{json, Value};

/// Top sites kept per profile.
pub const TOP_SITES: usize = 200;
/// Distinct stacks kept for the flame graph (the heaviest).
pub const MAX_STACKS: usize = 20_000;

/// A pid in an agent profile's name (`heap-<pid>-<unixtime>-<seq>.pb.gz`,
/// `profile-<pid>...`): the second dash-separated field when it is a number.
pub fn pid_in_name(name: &str) -> Option<u32> {
    let stem = name.split('.').next()?;
    stem.split('-').nth(1)?.parse().ok()
}

fn string(p: &Profile, i: i64) -> &str {
    usize::try_from(i)
        .ok()
        .and_then(|i| p.string_table.get(i))
        .map_or("", String::as_str)
}

/// The summary document of a gzipped pprof profile.
pub fn summarize(gz: &[u8]) -> Result<Value, String> {
    let p = read_gz(gz).map_err(|e| format!("not a pprof profile: {e}"))?;
    if p.sample_type.is_empty() {
        return Err("not a pprof profile: it has no sample types".into());
    }
    let types: Vec<(String, String)> = p
        .sample_type
        .iter()
        .map(|t| {
            (
                string(&p, t.r#type).to_string(),
                string(&p, t.unit).to_string(),
            )
        })
        .collect();
    let default = string(&p, p.default_sample_type);
    let shown = types
        .iter()
        .position(|t| t.0 == default)
        .unwrap_or(types.len() - 1);
    let functions: HashMap<u64, (&str, &str)> = p
        .function
        .iter()
        .map(|f| (f.id, (string(&p, f.name), string(&p, f.filename))))
        .collect();
    // A location's frame: function, file:line of its innermost line.
    let frames: HashMap<u64, String> = p
        .location
        .iter()
        .map(|l| {
            let text = l
                .line
                .first()
                .map(|line| {
                    let (name, file) = functions
                        .get(&line.function_id)
                        .copied()
                        .unwrap_or(("?", ""));
                    if file.is_empty() {
                        name.to_string()
                    } else {
                        format!("{name} {file}:{}", line.line)
                    }
                })
                .unwrap_or_else(|| format!("{:#x}", l.address));
            (l.id, text)
        })
        .collect();
    let mut totals = vec![0i64; types.len()];
    let mut sites: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut stacks: HashMap<String, i64> = HashMap::new();
    for s in &p.sample {
        for (t, v) in totals.iter_mut().zip(&s.value) {
            *t = t.saturating_add(*v);
        }
        let leaf = s
            .location_id
            .first()
            .and_then(|l| frames.get(l))
            .map_or("?", String::as_str);
        let e = sites.entry(leaf).or_insert_with(|| vec![0; types.len()]);
        for (t, v) in e.iter_mut().zip(&s.value) {
            *t = t.saturating_add(*v);
        }
        let v = s.value.get(shown).copied().unwrap_or(0);
        if v > 0 {
            // Root first, as folded stacks are written.
            let stack: Vec<&str> = s
                .location_id
                .iter()
                .rev()
                .map(|l| frames.get(l).map_or("?", String::as_str))
                .collect();
            *stacks.entry(stack.join(";")).or_default() += v;
        }
    }
    let mut sites: Vec<(&str, Vec<i64>)> = sites.into_iter().collect();
    sites.sort_by(|a, b| b.1[shown].cmp(&a.1[shown]).then(a.0.cmp(b.0)));
    sites.truncate(TOP_SITES);
    let mut stacks: Vec<(String, i64)> = stacks.into_iter().collect();
    stacks.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    stacks.truncate(MAX_STACKS);
    stacks.sort();
    let comments: Vec<&str> = p.comment.iter().map(|&c| string(&p, c)).collect();
    Ok(json!({
        "samples": p.sample.len(),
        "sample_types": types.iter().map(|(t, u)| json!({"type": t, "unit": u})).collect::<Vec<_>>(),
        "shown": shown,
        "totals": totals,
        "comments": comments,
        "sites": sites.iter().map(|(f, v)| json!({"frame": f, "values": v})).collect::<Vec<_>>(),
        "folded": stacks.iter().map(|(s, v)| json!([s, v])).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_come_from_agent_names() {
        assert_eq!(pid_in_name("heap-4242-1700000000-3.pb.gz"), Some(4242));
        assert_eq!(pid_in_name("profile.pb.gz"), None);
    }

    #[test]
    fn junk_is_not_a_profile() {
        assert!(summarize(b"\x1f\x8bnot really").is_err());
    }
}
