//! `heapscope suspects`: an automatic leak-suspect report.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args as ClapArgs;
use heapscope_analysis::suspects::{
    find_suspects, SuspectOptions, DEFAULT_ACCUMULATION, DEFAULT_THRESHOLD,
};
use heapscope_report::suspects::{suspects_json, suspects_text};

use crate::args::{Format, InputArgs};
use crate::load::with_dominators;

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
An automatic leak-suspect report, in the manner of Eclipse MAT's: the objects and groups of
objects that keep a large share of the heap alive, and for each where the memory accumulates,
how a root reaches it, and what it is made of.

Suspects are single objects retaining more than --threshold of the reachable heap, and groups of
objects of one class or one allocation site retaining more than that together (memory shared by
members counted once). Groups without a class or location, and the classes Class and Module (the
app's code and constants), are left out, and so are groups whose memory is already in a larger
suspect.

For each suspect, the accumulation point is found by descending from the object (for a group, its
largest member) into the largest object it dominates while that keeps at least --accumulation of
its parent's retained size. The report shows the shortest path from a root to it (the first and
last 10 steps of a long one, unless --full-path) and the classes and allocation sites of what it
holds.

Suspects that share a container are one finding: when one object (an app's log Array, say)
directly references members holding at least half of each suspect's memory, although it does not
dominate them because they are held from elsewhere too, the report names that container with its
path from a root and lists those suspects beneath it. JSON lists the `containers` and gives each
suspect's `container` address.

Finding no suspect is not an error (exit code 0); the report then names the largest retainer.

Examples:
    heapscope suspects heap.dump
    heapscope suspects heap.dump --threshold 0.05
    heapscope suspects heap.dump --format json";

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub output: crate::args::FormatArg,

    /// A suspect retains more than this share of the reachable heap (0 < SHARE <= 1).
    #[arg(long, value_name = "SHARE", default_value_t = DEFAULT_THRESHOLD, value_parser = parse_share)]
    pub threshold: f64,

    /// The accumulation point moves down to the largest dominated object while it keeps at least
    /// this share of its parent's retained size (0 < SHARE <= 1).
    #[arg(long, value_name = "SHARE", default_value_t = DEFAULT_ACCUMULATION, value_parser = parse_share)]
    pub accumulation: f64,

    #[command(flatten)]
    pub length: crate::args::PathLengthArg,

    /// Print exact byte counts instead of KiB/MiB/GiB.
    #[arg(long)]
    pub bytes: bool,
}

fn parse_share(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!(
            "'{s}' is not a share of the heap: give a number above 0 and at most 1 (0.1 = 10%)"
        ))
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let out = with_dominators(
        &a.input,
        "computing dominators and leak suspects",
        |dump, graph, dom, timer| {
            let report = find_suspects(
                graph,
                dom,
                SuspectOptions {
                    threshold: a.threshold,
                    accumulation: a.accumulation,
                    path_ends: a.length.ends(),
                },
            );
            timer.lap("suspects");
            Ok(match a.output.format {
                Format::Json => {
                    serde_json::to_string_pretty(&crate::load::with_json_warnings(
                        suspects_json(&dump.source, &report),
                        dump,
                    ))? + "\n"
                }
                Format::Table => suspects_text(&dump.source, &report, a.bytes),
            })
        },
    )?;
    crate::print(&out)
}
