//! `heapscope trend`: does memory keep growing or level off? A verdict per
//! process from memory logs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args as ClapArgs, ValueEnum};
use heapscope_analysis::memseries::{merge_series, parse_log, MemSeries, ParsedLog};
use heapscope_analysis::memtrend::{
    growth_split, memory_trend, memory_trend_by_sample, MemVerdict, Metric,
};
use heapscope_report::memtrend::{render_json, render_table, TrendRow};

use crate::args::{Format, FormatArg};

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
Does memory keep growing, or does it level off? One verdict per process: growing, levelled off,
flat, or not enough data, with the growth per hour (and per 1,000 requests when the log counts
requests) and a confidence.

The verdict is taken on the low boundary of the series (the minimum of each time bucket, or the
minima after GC when the log has GC counts), not on raw values, so a sawtooth heap whose peaks
climb between collections is not a leak. Growing: the boundary rises significantly (Mann-Kendall,
p < 0.01), by at least 5% of its level over the recording, and still rises in the second half.
Levelled off: it rose by at least 5%, then its second half stopped rising.

Logs (the format is recognised line by line): `heapscope watch` output (JSON lines or CSV), the
agent's statistics (tmp/profiles/gc-<pid>.jsonl), Rails log lines `MEMORY[<pid>]: time: <t>
rss: <size>, live_objects: <n>` (a size without a unit is KiB, as `ps -o rss` prints), Heroku's
log-runtime-metrics lines (`<timestamp> heroku[web.1]: source=web.1 dyno=heroku.1234.abcd
sample#memory_total=512.3MB sample#memory_rss=500.1MB ...`: sample#memory_rss is the RSS, one
process per source, i.e. per dyno name), and derailed_benchmarks `perf:mem_over_time` output
(RSS in MiB, one number per line; no clock, so slopes are per sample and the span is a count of
samples). The same pid (or dyno) across several logs is one process.

When a log has both RSS and live objects (the agent's statistics, `heapscope watch` of a process
running the agent, the Rails MEMORY lines), trend also says which one grows: live objects
growing is a leak in the Ruby heap (heap dumps and `heapscope leaks` find it); RSS growing while
live objects stay flat is growth outside the Ruby heap (native extensions, malloc fragmentation,
or a few objects' growing malloc'd buffers), which heap dumps do not show. JSON: `growth_site`.

Examples:
    heapscope trend watch.csv
    heapscope trend tmp/profiles/gc-*.jsonl --metric live-objects
    grep MEMORY log/production.log | heapscope trend -
    heapscope trend mem.txt --format json
    heroku logs -n 1500 | heapscope trend -
    heapscope trend watch.jsonl --fail-if-growing   # exit code 1 when growing, for CI";

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricArg {
    Rss,
    Pss,
    Uss,
    LiveObjects,
}

impl From<MetricArg> for Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::Rss => Metric::Rss,
            MetricArg::Pss => Metric::Pss,
            MetricArg::Uss => Metric::Uss,
            MetricArg::LiveObjects => Metric::LiveObjects,
        }
    }
}

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Memory logs (`-` reads stdin).
    #[arg(value_name = "LOG", required = true)]
    pub logs: Vec<PathBuf>,

    /// The series to judge.
    #[arg(long, short = 'm', value_enum, default_value = "rss")]
    pub metric: MetricArg,

    /// Only this process.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,

    /// Exit with code 1 when any process is growing.
    #[arg(long)]
    pub fail_if_growing: bool,

    #[command(flatten)]
    pub format: FormatArg,
}

/// The logs read, parsed and merged: each series with whether its times are
/// clock seconds.
pub(crate) struct Loaded {
    pub series: Vec<(MemSeries, bool)>,
}

/// Reads `path` (`-` is stdin).
fn read(path: &Path) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).context("cannot read stdin")?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// Reads and parses every log, warns about skipped lines, fails on a log
/// with no usable line, and merges the series (logs without a clock apart).
pub(crate) fn load(paths: &[PathBuf], pid: Option<u32>) -> Result<Loaded> {
    let mut clocked: Vec<ParsedLog> = Vec::new();
    let mut unclocked: Vec<ParsedLog> = Vec::new();
    for path in paths {
        let name = if path.as_os_str() == "-" {
            "stdin".to_string()
        } else {
            path.display().to_string()
        };
        let bytes = read(path)?;
        let log = parse_log(&name, &bytes);
        if log.is_empty() {
            let hint = match log.skipped.first() {
                Some((line, why)) => format!(" (line {line}: {why})"),
                None => String::new(),
            };
            anyhow::bail!(
                "{name}: no memory samples found{hint}; expected heapscope watch output (JSON lines \
                 or CSV), agent statistics (gc-<pid>.jsonl), Rails `MEMORY[<pid>]: time: ... rss: \
                 ...` lines, Heroku `source=... sample#memory_rss=...` lines, or derailed \
                 mem_over_time numbers"
            );
        }
        if !log.skipped.is_empty() {
            let (line, why) = &log.skipped[0];
            eprintln!(
                "warning: {name}: skipped {} line{} that {} not a memory sample (first: line {line}: {why})",
                log.skipped.len(),
                if log.skipped.len() == 1 { "" } else { "s" },
                if log.skipped.len() == 1 { "is" } else { "are" },
            );
        }
        if log.format.has_clock() {
            clocked.push(log);
        } else {
            unclocked.push(log);
        }
    }
    let mut series: Vec<(MemSeries, bool)> = merge_series(clocked)
        .into_iter()
        .map(|s| (s, true))
        .chain(merge_series(unclocked).into_iter().map(|s| (s, false)))
        .collect();
    if let Some(pid) = pid {
        series.retain(|(s, _)| s.pid == Some(pid));
        if series.is_empty() {
            anyhow::bail!("no samples of pid {pid} in these logs");
        }
    }
    Ok(Loaded { series })
}

pub fn run(a: Args) -> Result<ExitCode> {
    let loaded = load(&a.logs, a.pid)?;
    // A broken clock (times of -1e308 and 1e308) has no slope per hour.
    for (s, clock) in &loaded.series {
        if *clock {
            heapscope_export::plot::check_x_span(
                s.samples.iter().map(|x| x.time),
                &format!("the times of {}", s.label),
            )?;
        }
    }
    let metric = Metric::from(a.metric);
    let rows: Vec<TrendRow> = loaded
        .series
        .iter()
        .filter(|(s, _)| s.samples.iter().any(|x| metric.of(x).is_some()))
        .map(|(s, clock)| TrendRow {
            label: s.label.clone(),
            pid: s.pid,
            metric,
            trend: if *clock {
                memory_trend(s, metric)
            } else {
                memory_trend_by_sample(s, metric)
            },
            split: growth_split(s, metric, *clock),
        })
        .collect();
    if rows.is_empty() {
        anyhow::bail!(
            "no sample in these logs has {} (try --metric {})",
            metric.name(),
            if metric == Metric::Rss {
                "live-objects"
            } else {
                "rss"
            }
        );
    }
    let out = match a.format.format {
        Format::Table => render_table(&rows),
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&render_json(&rows))?),
    };
    crate::print(&out)?;
    let growing = rows.iter().any(|r| r.trend.verdict == MemVerdict::Growing);
    Ok(if a.fail_if_growing && growing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
