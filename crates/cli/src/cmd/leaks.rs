//! `heapscope leaks`: rank the allocation sites that leak across a series of dumps.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;
use heapscope_analysis::leaks::{order_dumps, LeakOptions, LeakReport, SeriesBuilder};
use heapscope_analysis::trend::Verdict;
use heapscope_reader::ReadOptions;
use heapscope_report::leaks::{leaks_json, leaks_text, site_label, ProcessReport};

use crate::args::{Format, FormatArg};

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
Rank the allocation sites that leak, from a series of heap dumps of one process taken over time
(every N requests, jobs or minutes).

For every site (type, class, location) heapscope follows its object count and bytes from dump to
dump and classifies the series: `leak` (keeps growing, and so does its low boundary), `plateau`
(grew, then levelled off: a bounded cache), `stable` or `noisy`. Leaks are ranked by the bytes
they add per dump and how steadily; each comes with its numbers per dump, its surviving objects
(allocated after the first dump and alive in every later one) and a path from a root to one of
them in the latest dump: the container on that path is usually the bug. Sites held by one
container (the nearest object on their paths that is not itself new: an app's log Array holding
entries of four kinds) are grouped under it, with its path from a root and the sites beneath.
Caches are listed apart.

Dumps are ordered by the unix timestamp in their names (heap-1479820044.dump,
heap-<pid>-<unixtime>-<seq>.dump), else by --time, else by modification time. Dumps of several
processes (pids in the names) are analysed per process. Only one dump is in memory at a time.

It takes at least 3 dumps of a process (5 or more are better) to tell a leak from a cache. With
fewer the report says it cannot judge (verdict `cannot judge` in JSON), however many objects
survived, and --fail-on-leak exits with code 2 rather than 0.

Examples:
    heapscope leaks tmp/dumps/
    heapscope leaks 'tmp/dumps/heap-*.dump' --plot leaks.png
    heapscope leaks a.dump b.dump c.dump d.dump e.dump --time 0,600,1200,1800,2400
    heapscope leaks tmp/dumps --fail-on-leak --format json";

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Dumps: a directory, glob patterns, or files.
    #[arg(value_name = "DUMPS", required = true)]
    pub inputs: Vec<String>,

    /// Unix times (seconds) of the dumps, comma-separated, in the order the dumps are given
    /// (a directory's or a pattern's files in name order), when their names have none.
    #[arg(long, value_name = "SECONDS", value_delimiter = ',')]
    pub time: Vec<i64>,

    #[command(flatten)]
    pub output: FormatArg,

    /// Exit with code 1 when any site is a leak (for a CI job that runs an app under load), and
    /// with code 2 when it cannot judge: a process has fewer than 3 dumps.
    #[arg(long)]
    pub fail_on_leak: bool,

    /// Draw the heap total and the top series over time to FILE.png or FILE.svg.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,

    /// Show the N strongest leak suspects and N largest caches (0 for all).
    #[arg(long, short = 'n', value_name = "N", default_value_t = 10)]
    pub top: usize,

    /// A site must grow by at least this many objects per dump to be a leak.
    #[arg(long, value_name = "OBJECTS", default_value_t = heapscope_analysis::leaks::DEFAULT_MIN_GROWTH)]
    pub min_growth: f64,

    #[command(flatten)]
    pub length: crate::args::PathLengthArg,

    /// Print exact byte counts instead of KiB/MiB/GiB in tables.
    #[arg(long)]
    pub bytes: bool,

    #[command(flatten)]
    pub read: crate::args::ReadArgs,
}

/// Dump files in a directory: the usual names and extensions of heap dumps.
fn is_dump_name(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    [
        ".dump", ".json", ".jsonl", ".ndjson", ".gz", ".zst", ".heap",
    ]
    .iter()
    .any(|ext| name.ends_with(ext))
}

fn expand_inputs(inputs: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        let path = PathBuf::from(input);
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_dump_name(p) && heapscope_reader::starts_like_dump(p))
                .collect();
            if found.is_empty() {
                bail!(
                    "{}: no heap dumps in this directory (*.dump, *.json, *.gz, *.zst)",
                    path.display()
                );
            }
            found.sort();
            out.extend(found);
        } else if input.contains(['*', '?', '[']) {
            let mut found: Vec<PathBuf> = glob::glob(input)
                .with_context(|| format!("bad pattern {input}"))?
                .filter_map(|p| p.ok())
                .filter(|p| p.is_file())
                .collect();
            if found.is_empty() {
                bail!("{input}: no file matches");
            }
            found.sort();
            out.extend(found);
        } else if path.is_file() {
            out.push(path);
        } else {
            bail!("{input}: no such file or directory");
        }
    }
    // Keep the order given (--time values follow it); drop repeats.
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    Ok(out)
}

pub fn run(a: Args) -> Result<ExitCode> {
    let paths = expand_inputs(&a.inputs)?;
    let times = (!a.time.is_empty()).then_some(a.time.as_slice());
    let (processes, order) = order_dumps(&paths, times).map_err(anyhow::Error::msg)?;
    // 0 means all, as in every other command.
    let top = if a.top == 0 { usize::MAX } else { a.top };
    let opts = LeakOptions {
        min_growth: a.min_growth,
        paths: top,
        path_ends: a.length.ends(),
    };
    let mut reports: Vec<(Option<u32>, Vec<String>, LeakReport)> = Vec::new();
    for files in &processes {
        let mut builder = SeriesBuilder::new(a.read.include_tracer, a.read.include_agent);
        let n = files.len();
        let mut last = None;
        for (i, f) in files.iter().enumerate() {
            let is_last = i + 1 == n;
            let read = ReadOptions {
                // Only the last dump needs its references (for paths).
                references: is_last,
                string_values: false,
                threads: a.read.threads,
                ..ReadOptions::default()
            };
            let dump = crate::load::load_path(&f.path, &read, a.read.no_progress, a.read.quiet)?;
            builder.add_dump(&dump.heap);
            if is_last {
                last = Some(dump);
            }
        }
        let last = last.expect("a process has at least one dump");
        let times: Vec<Option<i64>> = files.iter().map(|f| f.time).collect();
        let report = builder.finish(&last.heap, &times, &opts);
        crate::print_warnings(&report.warnings, a.read.quiet);
        let names = files.iter().map(|f| f.path.display().to_string()).collect();
        reports.push((files[0].pid, names, report));
    }
    let views: Vec<ProcessReport<'_>> = reports
        .iter()
        .map(|(pid, names, report)| ProcessReport {
            pid: *pid,
            dumps: names,
            report,
            top,
        })
        .collect();
    if let Some(path) = &a.plot {
        draw(path, &views[0]).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let out = match a.output.format {
        Format::Json => serde_json::to_string_pretty(&leaks_json(order.describe(), &views))? + "\n",
        Format::Table => leaks_text(order.describe(), &views, a.bytes),
    };
    crate::print(&out)?;
    let leaking = reports
        .iter()
        .any(|(_, _, r)| r.leaks.iter().any(|s| s.trend.verdict == Verdict::Leak));
    let cannot_judge = reports.iter().any(|(_, _, r)| !r.can_judge());
    Ok(if a.fail_on_leak && leaking {
        ExitCode::from(1)
    } else if a.fail_on_leak && cannot_judge {
        // Too few dumps is no evidence of health: a CI gate must not pass.
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The heap total and the top leak and cache series of the first process.
fn draw(path: &Path, p: &ProcessReport<'_>) -> std::io::Result<()> {
    use heapscope_export::plot::{plot, PlotInput, PlotSeries, SeriesKind};
    let r = p.report;
    let t0 = r.times.first().copied().flatten();
    let x_is_time = t0.is_some() && r.times.iter().all(|t| t.is_some());
    let x: Vec<f64> = if x_is_time {
        r.times
            .iter()
            .map(|t| (t.unwrap_or(0) - t0.unwrap_or(0)) as f64)
            .collect()
    } else {
        (0..r.times.len()).map(|i| i as f64).collect()
    };
    let as_f64 = |v: &[u64]| v.iter().map(|&b| b as f64).collect::<Vec<_>>();
    let mut series: Vec<PlotSeries> = r
        .leaks
        .iter()
        .take(p.top.min(8))
        .map(|s| PlotSeries {
            label: format!("LEAK: {}", site_label(s)),
            values: as_f64(&s.bytes),
            kind: SeriesKind::Leak,
        })
        .collect();
    series.extend(r.caches.iter().take(4).map(|s| PlotSeries {
        label: format!("cache: {}", site_label(s)),
        values: as_f64(&s.bytes),
        kind: SeriesKind::Cache,
    }));
    let title = match p.pid {
        Some(pid) => format!("heapscope leaks: process {pid}"),
        None => "heapscope leaks".to_string(),
    };
    plot(
        path,
        &PlotInput {
            title,
            x,
            x_is_time,
            total_bytes: r.totals.iter().map(|t| t.bytes as f64).collect(),
            series,
        },
    )
}
