//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use heapscope_analysis::group::{GroupKey, SortBy, MAX_KEYS};
use heapscope_analysis::summary::GenerationFilter;

const ABOUT: &str = "Find memory leaks and bloat in Ruby applications from their heap dumps.";

const LONG_ABOUT: &str = "\
Find memory leaks and bloat in Ruby applications from their heap dumps.

heapscope reads the JSON-lines heap dumps written by ObjectSpace.dump_all (Ruby 2.1 to 4.0),
plain or compressed with gzip or zstd, at gigabytes per second on all cores. Broken lines are
reported with their line numbers and skipped; the rest of the dump is still analysed.

For file, line and generation in dumps, start allocation tracing early in the process:
    require \"objspace\"; ObjectSpace.trace_object_allocations_start

Exit codes: 0 ok, 1 the analysis found what a flag asked to fail on, 2 usage or input error.";

#[derive(Parser, Debug)]
#[command(name = "heapscope", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Totals of one dump, grouped by generation (default), type, class, location, file, method,
    /// gem or duplicated string value.
    #[command(long_about = "\
Totals of one dump, grouped by generation (the default, like `heapy read FILE`), type, class,
location, file, method, gem or duplicated string value.

Examples:
    heapscope summary heap.dump
    heapscope summary heap.dump --by class --top 10
    heapscope summary heap.dump --by location --generation 40..
    heapscope summary heap.dump --by type,class --type STRING,ARRAY --format json
    heapscope summary heap.dump --by string")]
    Summary(SummaryArgs),
    /// Objects in AFTER that were not in BEFORE; with LATER, only those still alive in LATER
    /// (the three-dump technique).
    #[command(long_about = "\
Objects in AFTER that were not in BEFORE; with LATER, only those still alive in LATER (the
three-dump technique: take a dump, exercise the app, dump again, exercise more, dump a third
time; what was allocated between the first two and is still alive in the third is a leak suspect).

Objects are matched by address and type plus, when the dumps have allocation tracing, file, line
and generation, so that an address reused after GC is not mistaken for a survivor. An object
whose Ruby 4.0+ record carries an object_id in the earlier dump is matched by that id alone
(wherever it moved; another object at its address is new). Without tracing heapscope warns (on
stderr, and in the report) that the match is unreliable.

Examples:
    heapscope diff before.dump after.dump
    heapscope diff 1.dump 2.dump 3.dump --by location
    heapscope diff 1.dump.gz 2.dump.gz 3.dump.gz --format json")]
    Diff(DiffArgs),
    /// The objects and groups that keep the most memory alive (retained size, via the dominator
    /// tree).
    #[command(long_about = crate::cmd::retained::LONG_ABOUT)]
    Retained(crate::cmd::retained::Args),
    /// The shortest chain of references from a GC root to an object.
    #[command(long_about = crate::cmd::path::LONG_ABOUT)]
    Path(crate::cmd::path::Args),
    /// Everything known about one object: record, sizes, dominator, referrers and referents.
    #[command(long_about = crate::cmd::inspect::LONG_ABOUT)]
    Inspect(crate::cmd::inspect::Args),
    /// Automatic leak-suspect report: objects and groups retaining a large share of the heap.
    #[command(long_about = crate::cmd::suspects::LONG_ABOUT)]
    Suspects(crate::cmd::suspects::Args),
    /// Rank the allocation sites that leak across a series of dumps of one process.
    #[command(long_about = crate::cmd::leaks::LONG_ABOUT)]
    Leaks(crate::cmd::leaks::Args),
    /// The dominator tree as a flame graph (SVG, or folded stacks).
    #[command(long_about = crate::cmd::flamegraph::LONG_ABOUT)]
    Flamegraph(crate::cmd::flamegraph::Args),
    /// A gzipped pprof profile of live objects by allocation site, for `go tool pprof` and
    /// Pyroscope.
    #[command(long_about = crate::cmd::pprof::LONG_ABOUT)]
    Pprof(crate::cmd::pprof::Args),
    /// Start a Ruby program with the heapscope agent: heap profiles, GC statistics and dumps on
    /// demand, without code changes.
    #[command(long_about = crate::cmd::run::LONG_ABOUT)]
    Run(crate::cmd::run::Args),
    /// The exact memory report of a whole Ruby program run (memory_profiler's `run -- CMD`):
    /// allocated and retained by gem, file, location and class, strings, GC.
    #[command(long_about = crate::cmd::profile::LONG_ABOUT)]
    Profile(crate::cmd::profile::Args),
    /// Ask a process running the agent for a heap dump; prints its path when complete.
    #[command(long_about = crate::cmd::dump::LONG_ABOUT)]
    Dump(crate::cmd::dump::Args),
    /// Start or stop allocation tracing (file, line, generation in later dumps) in a process
    /// running the agent, or print whether it is on.
    #[command(long_about = crate::cmd::trace::LONG_ABOUT)]
    Trace(crate::cmd::trace::Args),
    /// Import dumps, memory logs and pprof profiles into a store (SQLite or PostgreSQL) for the
    /// web UI.
    #[command(long_about = crate::cmd::import::LONG_ABOUT)]
    Import(crate::cmd::import::Args),
    /// Serve the web UI over a store: processes, leak reports, dumps, objects, diffs, profiles.
    #[command(long_about = crate::cmd::serve::LONG_ABOUT)]
    Serve(crate::cmd::serve::Args),
    /// Sample a process's memory (RSS, PSS, USS) over time, live in the terminal and to a file.
    #[command(long_about = crate::cmd::watch::LONG_ABOUT)]
    Watch(crate::cmd::watch::Args),
    /// Plot memory over time (RSS and live heap objects) from watch output, agent statistics or
    /// Rails/derailed log lines.
    #[command(long_about = crate::cmd::plot::LONG_ABOUT)]
    Plot(crate::cmd::plot::Args),
    /// Does memory keep growing or level off? A verdict from a memory log's low boundary.
    #[command(long_about = crate::cmd::trend::LONG_ABOUT)]
    Trend(crate::cmd::trend::Args),
    /// Hit a Rack app on loopback N times while recording its memory; ends with a plot and a
    /// trend verdict.
    #[command(long_about = crate::cmd::bench::LONG_ABOUT)]
    Bench(crate::cmd::bench::Args),
    /// The memory each `require` adds, as a tree with totals.
    #[command(long_about = crate::cmd::require_mem::LONG_ABOUT)]
    RequireMem(crate::cmd::require_mem::Args),
}

/// The output format of the report commands.
#[derive(Args, Debug, Clone)]
pub struct FormatArg {
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    pub format: Format,
}

/// How much of a long path from a root to print.
#[derive(Args, Debug, Clone, Copy)]
pub struct PathLengthArg {
    /// Print every step of a long path from a root. By default a path of more than 21 objects
    /// shows its first and last 10, and how many were left out between (JSON: `elided`).
    #[arg(long)]
    pub full_path: bool,
}

impl PathLengthArg {
    /// Steps kept at each end of a long path, `None` for all.
    pub fn ends(self) -> Option<usize> {
        (!self.full_path).then_some(heapscope_analysis::paths::PATH_ENDS)
    }
}

/// The input of the graph commands, and how to read it.
#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// The heap dump (plain, .gz or .zst; `-` reads stdin).
    #[arg(value_name = "DUMP")]
    pub dump: PathBuf,

    #[command(flatten)]
    pub read: ReadArgs,
}

/// How dumps are read, for every command.
#[derive(Args, Debug, Clone)]
pub struct ReadArgs {
    /// Count Ruby's allocation-tracing table (a DATA object, "ObjectTracing/allocation_info_tracer")
    /// as if it were the app's memory. It is left out by default: it is the profiler's bookkeeping.
    #[arg(long)]
    pub include_tracer: bool,

    /// Count the heapscope agent's own objects as the app's: its threads, the Heapscope::Agent and
    /// what it holds, objects of Heapscope:: classes, and with allocation tracing whatever the
    /// agent's Ruby files allocated (graph commands: also what only those objects keep alive).
    /// They are left out by default, with one line saying how much.
    #[arg(long)]
    pub include_agent: bool,

    /// Parser threads (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    pub threads: usize,

    /// Never show a progress bar (it shows on a terminal for inputs over 100 MB).
    #[arg(long)]
    pub no_progress: bool,

    /// Do not print warnings about malformed lines.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns with human-readable sizes.
    Table,
    /// One JSON document with exact numbers (see the README for its keys).
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortArg {
    Memsize,
    Count,
}

#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Only objects of these generations: N, N..M, N.., ..M or all. Objects allocated without
    /// tracing have no generation and match only `all`.
    #[arg(long, short = 'g', value_name = "GEN", default_value = "all", value_parser = parse_generation)]
    pub generation: GenerationFilter,

    /// Only objects of these types (STRING, ARRAY, OBJECT, ...; comma-separated or repeated).
    #[arg(long = "type", short = 't', value_name = "TYPE", value_delimiter = ',')]
    pub types: Vec<String>,

    /// Show the N largest groups (0 for all). Default: 25, all generations for --by generation.
    #[arg(long, short = 'n', value_name = "N")]
    pub top: Option<usize>,

    /// Order groups by total memsize or by object count.
    #[arg(
        long = "sort",
        value_enum,
        default_value = "memsize",
        value_name = "KEY"
    )]
    pub sort_by: SortArg,

    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    pub format: Format,

    /// Print exact byte counts instead of KiB/MiB/GiB in tables.
    #[arg(long)]
    pub bytes: bool,

    #[command(flatten)]
    pub read: ReadArgs,
}

impl CommonArgs {
    pub fn sort(&self) -> SortBy {
        match self.sort_by {
            SortArg::Memsize => SortBy::Memsize,
            SortArg::Count => SortBy::Count,
        }
    }
}

/// Grouping keys as given to `--by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByKeys(pub Vec<GroupKey>);

#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// The heap dump (plain, .gz or .zst; `-` reads stdin).
    #[arg(value_name = "DUMP")]
    pub dump: PathBuf,

    /// Group by one key or several, comma-separated (at most 4): generation, type, class,
    /// location, file, method, gem, string. `string` lists duplicated string values with the
    /// places their copies were allocated; a shared string (a `dup`, or a tail slice, of a string
    /// over 23 bytes: the dump gives it no value) counts under its shared root's value.
    #[arg(long, short = 'b', value_name = "KEYS", value_parser = parse_by)]
    pub by: Option<ByKeys>,

    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The earlier dump.
    #[arg(value_name = "BEFORE")]
    pub before: PathBuf,
    /// The later dump: objects in it but not in BEFORE are new.
    #[arg(value_name = "AFTER")]
    pub after: PathBuf,
    /// An even later dump: keep only new objects still alive in it.
    #[arg(value_name = "LATER")]
    pub later: Option<PathBuf>,

    /// Group by these keys, comma-separated (at most 4; see `summary --help`).
    #[arg(long, short = 'b', value_name = "KEYS", default_value = "type,class,location", value_parser = parse_by)]
    pub by: ByKeys,

    #[command(flatten)]
    pub common: CommonArgs,
}

fn parse_generation(s: &str) -> Result<GenerationFilter, String> {
    s.parse()
}

pub fn parse_by(s: &str) -> Result<ByKeys, String> {
    let keys = s
        .split(',')
        .filter(|k| !k.trim().is_empty())
        .map(|k| k.parse::<GroupKey>())
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err("give at least one key".into());
    }
    if keys.len() > MAX_KEYS {
        return Err(format!("at most {MAX_KEYS} keys can be combined"));
    }
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].contains(k) {
            return Err(format!("'{k}' is given twice"));
        }
    }
    Ok(ByKeys(keys))
}
