//! The agent's statistics record: one JSON line per interval in
//! `gc-<pid>.jsonl`, `{"time":…,"pid":…,"rss_bytes":…}` followed by
//! [`STAT_FIELDS`]. The extension writes it; `heapscope watch` merges it into
//! its own records; `heapscope plot` and `trend` read it.

/// The fields after `time`, `pid` and `rss_bytes`, in order: the `GC.stat`
/// keys ([`GC_STAT_KEYS`]), then the counts the middleware keeps (written
/// only when counted).
pub const STAT_FIELDS: [&str; 10] = [
    "heap_live_slots",
    "heap_free_slots",
    "total_allocated_objects",
    "total_freed_objects",
    "minor_gc_count",
    "major_gc_count",
    "malloc_increase_bytes",
    "oldmalloc_increase_bytes",
    "requests",
    "jobs",
];

/// The `GC.stat` keys among [`STAT_FIELDS`].
pub const GC_STAT_KEYS: &[&str] = STAT_FIELDS.split_at(8).0;

/// One record as a JSON line (with its newline). `gc` holds the values of
/// [`GC_STAT_KEYS`] in order. `profiler_off` says why the heap profiler's
/// hook was turned off for good (`"ractors"`, `"gc_library"`), when it was.
pub fn record_line(
    time: f64,
    pid: u32,
    rss_bytes: u64,
    gc: &[i64],
    requests: Option<u64>,
    jobs: Option<u64>,
    profiler_off: Option<&str>,
) -> String {
    let mut line = format!("{{\"time\":{time:.3},\"pid\":{pid},\"rss_bytes\":{rss_bytes}");
    for (key, n) in GC_STAT_KEYS.iter().zip(gc) {
        line.push_str(&format!(",\"{key}\":{n}"));
    }
    for (key, n) in [("requests", requests), ("jobs", jobs)] {
        if let Some(n) = n {
            line.push_str(&format!(",\"{key}\":{n}"));
        }
    }
    if let Some(why) = profiler_off {
        // A fixed word from the agent itself: nothing to escape.
        line.push_str(&format!(",\"profiler_off\":\"{why}\""));
    }
    line.push_str("}\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_json_object() {
        let line = record_line(1.5, 7, 1024, &[1, 2, 3, 4, 5, 6, 7, 8], Some(9), None, None);
        assert!(line.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["pid"], 7);
        assert_eq!(v["oldmalloc_increase_bytes"], 8);
        assert_eq!(v["requests"], 9);
        assert!(v.get("jobs").is_none());
        assert_eq!(GC_STAT_KEYS.len(), 8);
        assert!(v.get("profiler_off").is_none());
        let line = record_line(1.5, 7, 1024, &[0; 8], None, None, Some("ractors"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["profiler_off"], "ractors");
    }
}
