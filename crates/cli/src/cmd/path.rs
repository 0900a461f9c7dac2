//! `heapscope path`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args as ClapArgs;
use heapscope_analysis::paths::{dominator_chain, label_path, objects_needing_records, Labeler};
use heapscope_graph::{shortest_paths, Dominators, Graph, GraphOptions, RootCoverage};
use heapscope_heap::FastMap;
use heapscope_report::path::{path_json, path_text, PathReport};

use super::inspect::{facts_of, find_object, parse_address, raw_records};
use crate::args::{Format, InputArgs};
use crate::load::{load_for_graph, stage};

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
The shortest chain of references from a GC root to an object: why it is still alive.

One line per object, from the object a root references down to ADDRESS, with its type, class,
allocation site and how it holds the next one where the dump tells: array element [i], hash key or
value, instance variable name (Ruby 3.2+, from shapes: an object's, a String's or Array's generic
ivars, a class's own; on 4.0+ through the IMEMO fields object that keeps them), a constant, class
variable or method of a class, or its class. Where a dump has no names the label says why (a too
complex shape, a dump written with shapes: false, a Ruby before 3.2). The root category is printed first; machine_context roots are conservative
(a value found on a C stack) and may be stale values. Array indexes and hash sizes come from
the records, re-read from uncompressed files only.

--all shows up to N shortest paths that start at different root-referenced objects and differ in
the holders that matter: a path that runs through another root-referenced object, or that only
adds class-to-class hops before the same holder (a class, its superclass Object, then a constant
of Object), repeats one already shown and is left out. --dominators
shows instead the dominator chain: the objects every path passes through, from the top down, with
the memory each retains.

A long path or chain (more than 21 objects: a linked list) shows its first and last 10 steps and
how many were left out between; --full-path shows every step.

An address the dump does not have, or an object that no root reaches, is an error: a message on
stderr and exit code 2. The message says the next GC frees it only when the dump lists
finalizers roots (never from Ruby 3.4 on); a dump without ROOT records (dump_all(since: ...))
has no reachability in it. Paths from precise roots come before paths from conservative
machine_context roots (values found on a C stack), even shorter ones.

Examples:
    heapscope path heap.dump 0x7f3e9b0a1140
    heapscope path heap.dump 0x7f3e9b0a1140 --all 10
    heapscope path heap.dump 0x7f3e9b0a1140 --dominators --format json";

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub output: crate::args::FormatArg,

    /// The object's address, as in the dump (0x7f...).
    #[arg(value_name = "ADDRESS", value_parser = parse_address)]
    pub address: u64,

    /// Show up to N shortest paths from different roots or first objects (5 when N is not given).
    #[arg(
        long,
        value_name = "N",
        num_args = 0..=1,
        default_missing_value = "5",
        require_equals = false
    )]
    pub all: Option<usize>,

    /// Show the dominator chain, with retained sizes, instead of a path.
    #[arg(long, conflicts_with = "all")]
    pub dominators: bool,

    #[command(flatten)]
    pub length: crate::args::PathLengthArg,

    /// Print exact byte counts instead of KiB/MiB/GiB.
    #[arg(long)]
    pub bytes: bool,
}

fn unreachable(source: &str, address: u64, coverage: RootCoverage) -> anyhow::Error {
    match coverage {
        RootCoverage::Missing => anyhow::anyhow!(
            "{source}: reachability is not in this dump (it has no ROOT records, as \
             dump_all(since: ...) writes): no path to {address:#x} can be found"
        ),
        RootCoverage::NoFinalizers => anyhow::anyhow!(
            "{source}: {address:#x} is unreachable from any root in this dump: {}",
            coverage.unreachable_meaning(false).unwrap_or_default()
        ),
        RootCoverage::Complete => anyhow::anyhow!(
            "{source}: {address:#x} is unreachable from any root: nothing keeps it alive, and \
             the next GC frees it"
        ),
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let dump = load_for_graph(&a.input)?;
    let heap = &dump.heap;
    let id = find_object(heap, &dump.source, a.address)?;
    let spin = stage(&a.input, "searching paths from the roots");
    let graph = Graph::new(
        heap,
        GraphOptions {
            include_tracer: a.input.read.include_tracer,
            include_agent: a.input.read.include_agent,
        },
    );
    let mut records_unavailable = false;
    let ends = a.length.ends();
    let mut dominators_elided = None;
    let (paths, chain) = if a.dominators {
        let dom = Dominators::compute(&graph);
        if !dom.is_reachable(id) {
            return Err(unreachable(&dump.source, a.address, graph.root_coverage()));
        }
        let (chain, elided) = dominator_chain(&graph, &dom, id, ends);
        dominators_elided = elided;
        (Vec::new(), Some(chain))
    } else {
        let max = a.all.unwrap_or(1).max(1);
        let found = shortest_paths(&graph, id, max);
        if found.is_empty() {
            return Err(unreachable(&dump.source, a.address, graph.root_coverage()));
        }
        let need: Vec<u64> = objects_needing_records(heap, &found, ends)
            .into_iter()
            .map(|o| heap.address[o as usize])
            .collect();
        let facts = if need.is_empty() {
            FastMap::default()
        } else {
            if let Some(s) = &spin {
                s.set_message("re-reading records");
            }
            match raw_records(&a.input.dump, &need) {
                Ok(r) => facts_of(heap, &r),
                Err(_) => {
                    records_unavailable = true;
                    FastMap::default()
                }
            }
        };
        let labeler = Labeler::new(&graph);
        let paths: Vec<_> = found
            .iter()
            .map(|p| label_path(&labeler, p, &facts, ends))
            .collect();
        (paths, None)
    };
    if let Some(s) = spin {
        s.finish_and_clear();
    }
    let report = PathReport {
        source: &dump.source,
        address: a.address,
        paths: &paths,
        dominators: chain.as_deref(),
        dominators_elided,
        records_unavailable,
    };
    let out = match a.output.format {
        Format::Json => {
            serde_json::to_string_pretty(&crate::load::with_json_warnings(
                path_json(&report),
                &dump,
            ))? + "\n"
        }
        Format::Table => path_text(&report, a.bytes),
    };
    crate::print(&out)
}
