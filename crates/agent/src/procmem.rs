//! Memory figures from `/proc` (Linux): the lines of `status` and
//! `smaps_rollup` (`Key:   1234 kB`). Shared by the agent (its own RSS in
//! statistics records) and `heapscope watch`/`bench` (other processes).

/// A `/proc` size value (`   1234 kB`, or a bare number of kB) in bytes.
pub fn parse_kb(value: &str) -> Option<u64> {
    let mut parts = value.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => n.checked_mul(1024),
        Some(_) => None,
    }
}

/// `VmRSS` of a `/proc/PID/status` text, in bytes.
pub fn parse_status_rss(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(parse_kb)
}

/// This process's resident set size in bytes, or 0 when unknown.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| parse_status_rss(&t))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let text = "Name:\truby\nVmPeak:\t  300000 kB\nVmSize:\t  200000 kB\n\
                    VmHWM:\t   60000 kB\nVmRSS:\t   50000 kB\nThreads:\t2\n";
        assert_eq!(parse_status_rss(text), Some(50_000 * 1024));
        assert_eq!(parse_status_rss("VmRSS: lots\n"), None);
        assert_eq!(parse_status_rss("Name: x\n"), None);
        assert_eq!(parse_kb(" 7 MB"), None);
        assert_eq!(parse_kb(" 7"), Some(7 * 1024));
    }

    #[test]
    fn reads_this_process() {
        assert!(rss_bytes() > 100 * 1024);
    }
}
