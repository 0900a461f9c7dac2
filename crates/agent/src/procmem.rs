//! The process's own memory figures from `/proc/self/status` (Linux). Kept
//! small on purpose: PSS and USS (from `smaps_rollup`) come later.

use std::io;

/// Memory of one process, in bytes. A field the kernel did not report is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size (`VmRSS`).
    pub rss_bytes: u64,
    /// Peak resident set size (`VmHWM`).
    pub rss_peak_bytes: u64,
    /// Virtual size (`VmSize`).
    pub virtual_bytes: u64,
}

/// This process's memory now.
pub fn current() -> io::Result<Memory> {
    let text = std::fs::read_to_string("/proc/self/status")?;
    let m = parse_status(&text);
    if m.rss_bytes == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "/proc/self/status has no VmRSS line",
        ));
    }
    Ok(m)
}

/// This process's resident set size in bytes, or 0 when unknown.
pub fn rss_bytes() -> u64 {
    current().map(|m| m.rss_bytes).unwrap_or(0)
}

/// Reads the `VmRSS`, `VmHWM` and `VmSize` lines (`VmRSS:   1234 kB`).
pub fn parse_status(text: &str) -> Memory {
    let mut m = Memory::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "VmRSS" => &mut m.rss_bytes,
            "VmHWM" => &mut m.rss_peak_bytes,
            "VmSize" => &mut m.virtual_bytes,
            _ => continue,
        };
        *slot = parse_kb(value).unwrap_or(0);
    }
    m
}

fn parse_kb(value: &str) -> Option<u64> {
    let mut parts = value.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => n.checked_mul(1024),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let text = "Name:\truby\nVmPeak:\t  300000 kB\nVmSize:\t  200000 kB\n\
                    VmHWM:\t   60000 kB\nVmRSS:\t   50000 kB\nThreads:\t2\n";
        let m = parse_status(text);
        assert_eq!(m.rss_bytes, 50_000 * 1024);
        assert_eq!(m.rss_peak_bytes, 60_000 * 1024);
        assert_eq!(m.virtual_bytes, 200_000 * 1024);
        assert_eq!(parse_status("VmRSS: lots\n"), Memory::default());
    }

    #[test]
    fn reads_this_process() {
        let m = current().unwrap();
        assert!(m.rss_bytes > 100 * 1024, "{m:?}");
        assert!(m.rss_peak_bytes >= m.rss_bytes);
        assert!(m.virtual_bytes >= m.rss_bytes);
        assert!(rss_bytes() > 0);
    }
}
