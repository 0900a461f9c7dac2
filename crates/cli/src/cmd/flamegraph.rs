//! `heapscope flamegraph`: the dominator tree as a flame graph.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use heapscope_export::flame::{folded_stacks, Folded, DEFAULT_MAX_DEPTH};

use crate::args::InputArgs;
use crate::load::with_dominators;

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
The dominator tree as a flame graph: a frame's width is the memory it retains.

Each frame is a group of objects named by class (or type) and allocation site, e.g.
`Hash app/models/user.rb:12`; a frame's children are the objects it alone keeps alive. The
bottom frames are what the GC roots hold directly. Open the SVG in a browser to zoom and search;
a label too long for its frame keeps its start (class, site) and is cut at the end.
--folded writes the folded stacks instead (`frame;frame;frame bytes` lines, for inferno,
flamegraph.pl, speedscope or Pyroscope).

Examples:
    heapscope flamegraph heap.dump -o heap.svg
    heapscope flamegraph heap.dump --folded > heap.folded
    heapscope flamegraph heap.dump --max-depth 16 -o shallow.svg";

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    /// Write to FILE (default: stdout). The file is replaced atomically.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Write folded stacks as text instead of an SVG.
    #[arg(long)]
    pub folded: bool,

    /// Cut stacks at this depth: deeper objects count in their ancestor at the cut.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_DEPTH as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_depth: u32,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let (folded, title) = with_dominators(
        &a.input,
        "computing dominators and building stacks",
        |dump, graph, dom, timer| {
            let folded = folded_stacks(graph, dom, a.max_depth as usize);
            timer.lap("stacks");
            // The agent's objects weigh nothing, so they have no frames.
            let agent = graph.agent_share();
            if let Some(line) = heapscope_report::agent_line(&agent, false, false) {
                if !a.input.read.quiet {
                    eprintln!("heapscope: {line}");
                }
            }
            Ok((
                folded,
                format!("heapscope: retained memory of {}", dump.source),
            ))
        },
    )?;
    let folded_only = a.folded;
    let write = |w: &mut dyn Write| -> std::io::Result<()> {
        if folded_only {
            folded.write_text(w)
        } else {
            folded.write_svg(&title, w)
        }
    };
    match &a.output {
        Some(path) => {
            heapscope_export::write_atomic(path, write)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        None => to_stdout(&folded, folded_only, &title),
    }
}

fn to_stdout(folded: &Folded, folded_only: bool, title: &str) -> Result<ExitCode> {
    let mut out = Vec::new();
    if folded_only {
        folded.write_text(&mut out)?;
    } else {
        if std::io::stdout().is_terminal() {
            anyhow::bail!("an SVG is not for a terminal: give -o FILE.svg, or --folded");
        }
        folded.write_svg(title, &mut out)?;
    }
    crate::print(&String::from_utf8(out).context("flame graph output is not UTF-8")?)
}
