//! `heapscope retained`: what keeps the most memory alive.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args as ClapArgs;
use heapscope_analysis::retained::{
    reachable_app_objects, top_groups, top_objects, unreachable_groups,
};
use heapscope_report::retained::{retained_json, retained_text, RetainedReport};

use crate::args::{ByKeys, Format, InputArgs};
use crate::load::with_dominators;

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
The objects, or with --by the groups, that keep the most memory alive.

An object's retained size is what would be freed if it were gone: itself and everything only it
keeps reachable (the objects it dominates). A group's retained size counts memory shared by its
members once. Objects that no root reaches are listed apart.

Examples:
    heapscope retained heap.dump
    heapscope retained heap.dump --by class --top 10
    heapscope retained heap.dump --by location --format json";

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub output: crate::args::FormatArg,

    /// Group by these keys, comma-separated: class, location, type, gem, file, method,
    /// generation, string.
    #[arg(long, short = 'b', value_name = "KEYS", value_parser = crate::args::parse_by)]
    pub by: Option<ByKeys>,

    /// Show the N largest (0 for all).
    #[arg(long, short = 'n', value_name = "N", default_value_t = 25)]
    pub top: usize,

    /// Print exact byte counts instead of KiB/MiB/GiB in tables.
    #[arg(long)]
    pub bytes: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let out = with_dominators(
        &a.input,
        "computing dominators and retained sizes",
        |dump, graph, dom, timer| {
            let by = a.by.map(|b| b.0).unwrap_or_default();
            let top = (a.top != 0).then_some(a.top);
            let (objects, (groups, total_groups)) = if by.is_empty() {
                (
                    top_objects(graph, dom, top.unwrap_or(usize::MAX)),
                    (Vec::new(), 0),
                )
            } else {
                (Vec::new(), top_groups(graph, dom, &by, top))
            };
            let unreachable = unreachable_groups(graph, dom);
            timer.lap("retained");
            let report = RetainedReport {
                source: &dump.source,
                reachable_objects: reachable_app_objects(graph, dom),
                reachable_bytes: dom.reachable_bytes(),
                unreachable_objects: unreachable.iter().map(|u| u.1).sum(),
                unreachable_bytes: unreachable.iter().map(|u| u.2).sum(),
                unreachable: &unreachable,
                objects: &objects,
                by: &by,
                groups: &groups,
                total_groups,
                coverage: graph.root_coverage(),
                agent: if a.input.read.include_agent {
                    dump.heap.agent_share()
                } else {
                    graph.agent_share()
                },
                agent_included: a.input.read.include_agent,
            };
            Ok(match a.output.format {
                Format::Json => {
                    serde_json::to_string_pretty(&crate::load::with_json_warnings(
                        retained_json(&report),
                        dump,
                    ))? + "\n"
                }
                Format::Table => retained_text(&report, a.bytes),
            })
        },
    )?;
    crate::print(&out)
}
