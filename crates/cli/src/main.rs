//! The `heapscope` command: a thin shell over the library crates. It parses
//! arguments, loads dumps with a progress bar, and prints reports.
//!
//! Exit codes: 0 ok, 1 an analysis found a problem a flag asked about,
//! 2 usage or input error.

mod args;
mod cmd;
mod load;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use args::{Cli, Command, CommonArgs, DiffArgs, Format, SummaryArgs};
use heapscope_analysis::diff::{diff, DiffOptions, IdentitySet};
use heapscope_analysis::group::GroupKey;
use heapscope_analysis::summary::{summarize, ObjectFilter, SummaryOptions};
use heapscope_reader::ReadOptions;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // Errors quote the input (excerpts, file names): never let them
            // drive the terminal.
            let text = format!("{e:#}");
            eprintln!(
                "heapscope: error: {}",
                heapscope_report::escape_control_text(&text)
            );
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Summary(a) => summary_cmd(a),
        Command::Diff(a) => diff_cmd(a),
        Command::Retained(a) => cmd::retained::run(a),
        Command::Path(a) => cmd::path::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Suspects(a) => cmd::suspects::run(a),
        Command::Leaks(a) => cmd::leaks::run(a),
        Command::Flamegraph(a) => cmd::flamegraph::run(a),
        Command::Pprof(a) => cmd::pprof::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Profile(a) => cmd::profile::run(a),
        Command::Dump(a) => cmd::dump::run(a),
        Command::Trace(a) => cmd::trace::run(a),
        Command::Import(a) => cmd::import::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Watch(a) => cmd::watch::run(a),
        Command::Plot(a) => cmd::plot::run(a),
        Command::Trend(a) => cmd::trend::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::RequireMem(a) => cmd::require_mem::run(a),
    }
}

fn read_options(common: &CommonArgs, by: &[GroupKey]) -> ReadOptions {
    ReadOptions {
        references: false,
        string_values: by.contains(&GroupKey::String),
        threads: common.read.threads,
        ..ReadOptions::default()
    }
}

fn filter_for(heap: &heapscope_heap::Heap, common: &CommonArgs) -> Result<ObjectFilter> {
    Ok(ObjectFilter {
        generations: common.generation,
        types: ObjectFilter::types_from_names(heap, &common.types).map_err(anyhow::Error::msg)?,
        include_tracer: common.read.include_tracer,
        include_agent: common.read.include_agent,
    })
}

pub(crate) fn print(out: &str) -> Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    match stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(ExitCode::SUCCESS),
    }
}

/// An analysis's own warnings (about the result, not one dump) on stderr,
/// like the loading warnings, unless `--quiet`; reports carry them too.
pub(crate) fn print_warnings(warnings: &[String], quiet: bool) {
    if quiet {
        return;
    }
    for w in warnings {
        eprintln!(
            "heapscope: warning: {}",
            heapscope_report::escape_control(w)
        );
    }
}

fn summary_cmd(a: SummaryArgs) -> Result<ExitCode> {
    let by =
        a.by.clone()
            .map(|b| b.0)
            .unwrap_or_else(|| vec![GroupKey::Generation]);
    let dump = load::load(&a.dump, &read_options(&a.common, &by), &a.common)?;
    let filter = filter_for(&dump.heap, &a.common)?;
    // Generations are few and ordered: show them all unless asked otherwise.
    let top = match (a.common.top, by.as_slice()) {
        (Some(0), _) => None,
        (Some(n), _) => Some(n),
        (None, [GroupKey::Generation]) => None,
        (None, _) => Some(25),
    };
    let summary = summarize(
        &dump.heap,
        &SummaryOptions {
            by,
            filter,
            sort: a.common.sort(),
            top,
        },
    );
    let out = match a.common.format {
        Format::Json => {
            let mut v = heapscope_report::summary_json(&dump.source, &summary, &dump.diagnostics);
            add_diagnostics(&mut v["diagnostics"], &dump);
            serde_json::to_string_pretty(&v)? + "\n"
        }
        Format::Table => heapscope_report::summary_text(
            &dump.source,
            &summary,
            &dump.diagnostics,
            a.common.bytes,
        ),
    };
    print(&out)
}

/// The summary's JSON `diagnostics` gain what the reader found about the
/// dump as a whole, and the warnings printed on stderr.
fn add_diagnostics(v: &mut serde_json::Value, dump: &heapscope_reader::Dump) {
    let d = &dump.diagnostics;
    if let Some(o) = v.as_object_mut() {
        o.insert("duplicate_addresses".into(), d.duplicate_addresses.into());
        o.insert("late_roots".into(), d.late_roots.into());
        o.insert("file_changed".into(), d.file_changed.clone().into());
        o.insert("warnings".into(), load::json_warnings(dump, false).into());
    }
}

fn diff_cmd(a: DiffArgs) -> Result<ExitCode> {
    let by = a.by.0.clone();
    let opts = read_options(&a.common, &by);
    let before = load::load(&a.before, &opts, &a.common)?;
    let before_set = IdentitySet::of(
        &before.heap,
        a.common.read.include_tracer,
        a.common.read.include_agent,
    );
    let mut load_warnings = load::json_warnings(&before, false);
    let before_diag = before.diagnostics;
    drop(before.heap);
    let later = match &a.later {
        Some(p) => {
            let d = load::load(p, &opts, &a.common)?;
            load_warnings.extend(load::json_warnings(&d, false));
            Some((
                IdentitySet::of(
                    &d.heap,
                    a.common.read.include_tracer,
                    a.common.read.include_agent,
                ),
                d.diagnostics,
                d.source,
            ))
        }
        None => None,
    };
    let after = load::load(&a.after, &opts, &a.common)?;
    load_warnings.extend(load::json_warnings(&after, false));
    let filter = filter_for(&after.heap, &a.common)?;
    let top = match a.common.top {
        Some(0) => None,
        Some(n) => Some(n),
        None => Some(25),
    };
    let result = diff(
        &before_set,
        &after.heap,
        later.as_ref().map(|l| &l.0),
        &DiffOptions {
            by,
            filter,
            sort: a.common.sort(),
            top,
        },
    );
    print_warnings(&result.warnings, a.common.read.quiet);
    let sources = heapscope_report::DiffSources {
        before: &before.source,
        after: &after.source,
        later: later.as_ref().map(|l| l.2.as_str()),
    };
    let out = match a.common.format {
        Format::Json => {
            let mut diags = vec![
                (before.source.as_str(), &before_diag),
                (after.source.as_str(), &after.diagnostics),
            ];
            if let Some(l) = &later {
                diags.push((l.2.as_str(), &l.1));
            }
            let mut v = heapscope_report::diff_json(&sources, &result, &diags);
            if let Some(w) = v["warnings"].as_array_mut() {
                w.extend(load_warnings.into_iter().map(serde_json::Value::from));
            }
            serde_json::to_string_pretty(&v)? + "\n"
        }
        Format::Table => heapscope_report::diff_text(&sources, &result, a.common.bytes),
    };
    print(&out)
}
