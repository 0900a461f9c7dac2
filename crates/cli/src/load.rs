//! Loading a dump with a progress bar and warnings on stderr.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use heapscope_graph::{Dominators, Graph, GraphOptions};
use heapscope_reader::{read_input, Dump, Input, ReadError, ReadOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{CommonArgs, InputArgs};

/// Inputs smaller than this load too fast for a progress bar to help.
const PROGRESS_MIN_BYTES: u64 = 100 << 20;

pub fn load(path: &Path, opts: &ReadOptions, common: &CommonArgs) -> Result<Dump> {
    load_with(path, opts, common.read.no_progress, common.read.quiet)
}

/// Loads a dump with its references, for the graph commands.
pub fn load_for_graph(input: &InputArgs) -> Result<Dump> {
    let opts = ReadOptions {
        references: true,
        string_values: true,
        threads: input.read.threads,
        ..ReadOptions::default()
    };
    load_with(&input.dump, &opts, input.read.no_progress, input.read.quiet)
}

/// Loads one dump of several (for `leaks`).
pub fn load_path(path: &Path, opts: &ReadOptions, no_progress: bool, quiet: bool) -> Result<Dump> {
    load_with(path, opts, no_progress, quiet)
}

/// Loads a dump with the given read options, for commands with `InputArgs`.
pub fn load_input(input: &InputArgs, opts: &ReadOptions) -> Result<Dump> {
    load_with(&input.dump, opts, input.read.no_progress, input.read.quiet)
}

/// The bar shown while a big input is read (its name escaped: it comes
/// from the command line or the file system).
pub fn reading_bar(size: u64, name: &str) -> ProgressBar {
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(format!(
        "reading {}",
        heapscope_report::escape_control_text(name)
    ));
    bar
}

/// A spinner with a message on stderr, shown on a terminal only, for the
/// graph stages that follow loading.
pub fn stage(input: &InputArgs, message: &str) -> Option<ProgressBar> {
    if input.read.no_progress || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(message.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

fn load_with(path: &Path, opts: &ReadOptions, no_progress: bool, quiet: bool) -> Result<Dump> {
    let input = Input::open(path).map_err(|error| {
        let name = heapscope_reader::display_name(path);
        anyhow::Error::new(ReadError::Io {
            source_name: name,
            error,
        })
    })?;
    let size = input.size_hint.unwrap_or(0);
    let show = !no_progress && size >= PROGRESS_MIN_BYTES && std::io::stderr().is_terminal();
    let mut opts = opts.clone();
    let bar = if show {
        let bar = reading_bar(size, &input.name);
        let b = bar.clone();
        opts.progress = Some(Arc::new(move |done| b.set_position(done)));
        Some(bar)
    } else {
        None
    };
    let dump = read_input(input, &opts);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let dump = dump?;
    if !quiet {
        for w in warnings(&dump, opts.references) {
            // Warnings quote malformed lines: escape what a terminal acts on.
            eprintln!(
                "heapscope: warning: {}",
                heapscope_report::escape_control(&w)
            );
        }
    }
    Ok(dump)
}

/// Everything odd about a loaded dump, one warning a line, as printed on
/// stderr: malformed lines, a cut-off input, several dumps in one file,
/// repeated addresses, dangling references, and (`graph`: for commands that
/// walk references) why reachability cannot be judged.
pub fn warnings(dump: &Dump, graph: bool) -> Vec<String> {
    let d = &dump.diagnostics;
    let mut w = d.warnings(&dump.source);
    if graph {
        w.extend(d.reachability_warnings(&dump.source));
    }
    w
}

/// The warnings for the `warnings` field of a JSON report: those about the
/// dump as a whole (not single malformed lines, which the report's
/// `diagnostics` already lists), and, for graph commands, why reachability
/// cannot be judged.
pub fn json_warnings(dump: &Dump, graph: bool) -> Vec<String> {
    let d = &dump.diagnostics;
    let mut w = d.structure_warnings(&dump.source);
    if let Some(why) = &d.file_changed {
        w.push(format!("{}: {why}", dump.source));
    }
    if graph {
        w.extend(d.reachability_warnings(&dump.source));
    }
    w
}

/// A graph command's JSON report with `warnings` (see [`json_warnings`])
/// added, so "reachability cannot be judged" reaches JSON readers too.
pub fn with_json_warnings(mut v: serde_json::Value, dump: &Dump) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        let mut w: Vec<serde_json::Value> = match o.remove("warnings") {
            Some(serde_json::Value::Array(a)) => a,
            _ => Vec::new(),
        };
        w.extend(json_warnings(dump, true).into_iter().map(Into::into));
        o.insert("warnings".into(), w.into());
    }
    v
}

/// Stage timings on stderr when `HEAPSCOPE_TIMINGS` is set (for benchmarks).
pub struct Timer {
    start: std::time::Instant,
    on: bool,
}

impl Timer {
    pub fn start() -> Timer {
        Timer {
            start: std::time::Instant::now(),
            on: std::env::var_os("HEAPSCOPE_TIMINGS").is_some(),
        }
    }

    pub fn lap(&self, what: &str) {
        if self.on {
            eprintln!(
                "heapscope: timing: {what} done at {:.3} s",
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}

/// The stages every dominator-based command starts with: read the dump with
/// its references, build the graph and the dominator tree (behind a spinner,
/// with `HEAPSCOPE_TIMINGS` laps), then run `f` on them. The spinner is gone
/// before this returns, so callers print afterwards.
pub fn with_dominators<T>(
    input: &InputArgs,
    doing: &str,
    f: impl FnOnce(&Dump, &Graph<'_>, &Dominators, &Timer) -> Result<T>,
) -> Result<T> {
    let timer = Timer::start();
    let dump = load_for_graph(input)?;
    timer.lap("load");
    let spin = stage(input, doing);
    let graph = Graph::new(
        &dump.heap,
        GraphOptions {
            include_tracer: input.read.include_tracer,
            include_agent: input.read.include_agent,
        },
    );
    timer.lap("graph");
    let dom = Dominators::compute(&graph);
    timer.lap("dominators");
    let result = f(&dump, &graph, &dom, &timer);
    if let Some(s) = spin {
        s.finish_and_clear();
    }
    result
}
