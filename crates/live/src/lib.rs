//! Observing live processes, for `heapscope watch` and `heapscope bench`:
//!
//! - [`proc`]: memory of a process and its descendants from `/proc` (RSS, PSS, USS), and whether
//!   it is still running;
//! - [`agentstats`]: the newest statistics record of a process that runs the heapscope agent;
//! - [`record`]: one sample of one process, written as CSV or JSON lines;
//! - [`sampler`]: the two above put together, one record per process per sample;
//! - [`load`]: a bounded HTTP load generator that only ever connects to loopback;
//! - [`puma`]: starting a Rack app with Puma on a free loopback port and stopping it;
//! - [`signals`]: Ctrl-C and SIGTERM as a flag the loops check;
//! - [`outfile`]: files written as they go, created without following planted symlinks.
//!
//! Linux only (everything reads `/proc`).

pub mod agentstats;
pub mod load;
pub mod outfile;
pub mod proc;
pub mod puma;
pub mod record;
pub mod sampler;
pub mod signals;

/// Unix time in seconds, with a fraction.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A duration in seconds from `0.05`, `50ms`, `1s`, `2m` or `1h` (for clap's `value_parser`).
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let scale = match unit.trim() {
        "ms" => 0.001,
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{s:?}: use seconds like 0.5, 500ms, 2s, 1m or 1h")),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (like 0.5, 500ms, 2s, 1m)"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("{s:?}: a duration must be zero or more"));
    }
    Ok(n * scale)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_durations() {
        use super::parse_seconds as p;
        assert_eq!(p("1s"), Ok(1.0));
        assert_eq!(p("0.05"), Ok(0.05));
        assert_eq!(p("250ms"), Ok(0.25));
        assert_eq!(p("2m"), Ok(120.0));
        assert!(p("x").is_err() && p("-1").is_err() && p("3 weeks").is_err());
    }
}
