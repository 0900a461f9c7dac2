//! `heapscope plot`: RSS and live heap objects over time from memory logs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use heapscope_analysis::memseries::MemSeries;
use heapscope_export::memplot::{plot_memory_with, MemPlot, MemPlotLine, MemPlotX};

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
A chart of memory over time: RSS (left axis) and live heap objects (right axis, lighter lines)
against time since the first sample, one colour per process. PNG or SVG by the file's extension.

Logs (recognised line by line; see `heapscope trend --help`): `heapscope watch` output (JSON
lines or CSV), the agent's statistics (tmp/profiles/gc-<pid>.jsonl), Rails log lines
`MEMORY[<pid>]: time: <t> rss: <size>, live_objects: <n>`, Heroku's log-runtime-metrics lines
(`<timestamp> heroku[web.1]: source=web.1 dyno=... sample#memory_rss=500.1MB ...`: one line per
source, i.e. per dyno name), and derailed_benchmarks `perf:mem_over_time` output (no clock: its x
axis is the sample number). The same pid (or dyno) across several logs is one process.

Examples:
    heapscope plot watch.csv -o memory.png
    heapscope plot tmp/profiles/gc-*.jsonl -o memory.svg --title 'Puma workers'
    grep MEMORY log/production.log | heapscope plot - -o memory.png
    heroku logs -n 1500 | heapscope plot - -o dynos.png";

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Memory logs (`-` reads stdin).
    #[arg(value_name = "LOG", required = true)]
    pub logs: Vec<PathBuf>,

    /// The image to write: FILE.png or FILE.svg (replaced atomically).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,

    /// The chart's title (default: names the logs).
    #[arg(long, value_name = "TITLE")]
    pub title: Option<String>,

    /// Only this process.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
}

/// One process's series as a plot line (missing values are gaps).
pub fn plot_line(s: &MemSeries) -> MemPlotLine {
    let value = |v: Option<u64>| v.map_or(f64::NAN, |v| v as f64);
    MemPlotLine {
        label: s.label.clone(),
        times: s.samples.iter().map(|x| x.time).collect(),
        rss_bytes: s.samples.iter().map(|x| value(x.rss_bytes)).collect(),
        live_objects: s.samples.iter().map(|x| value(x.live_objects)).collect(),
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let loaded = crate::cmd::trend::load(&a.logs, a.pid)?;
    let clocked = loaded.series.iter().filter(|(_, c)| *c).count();
    let x = if clocked == 0 {
        MemPlotX::SampleNumber
    } else {
        MemPlotX::Seconds
    };
    if clocked > 0 && clocked < loaded.series.len() {
        eprintln!(
            "warning: derailed mem_over_time output has no clock and cannot share a time axis; \
             left out of the plot"
        );
    }
    let lines: Vec<MemPlotLine> = loaded
        .series
        .iter()
        .filter(|(_, c)| *c == (x == MemPlotX::Seconds))
        .map(|(s, _)| plot_line(s))
        .collect();
    let title = a.title.unwrap_or_else(|| {
        let names: Vec<String> = a
            .logs
            .iter()
            .map(|p| {
                p.file_name().map_or_else(
                    || p.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                )
            })
            .collect();
        let procs = if lines.len() == 1 {
            "1 process".to_string()
        } else {
            format!("{} processes", lines.len())
        };
        format!("memory over time: {} ({procs})", names.join(", "))
    });
    plot_memory_with(&a.output, &MemPlot { title, lines, x })
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    eprintln!("wrote {}", a.output.display());
    Ok(ExitCode::SUCCESS)
}
