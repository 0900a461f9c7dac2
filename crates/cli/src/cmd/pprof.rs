//! `heapscope pprof`: live objects by allocation site as a pprof profile.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use heapscope_export::pprof::{profile, write_gz, PprofOptions};
use heapscope_reader::ReadOptions;

use crate::args::InputArgs;

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
A gzipped pprof profile (profile.proto) of the live objects by allocation site, for
`go tool pprof`, Pyroscope and other pprof viewers.

Sample types, the same as in the agent's profiles: alloc_objects and inuse_objects (count),
alloc_space and inuse_space (bytes, the default); so `go tool pprof -inuse_space` and the like
work. A dump holds only live objects, so alloc_* equal inuse_* here. Each sample is one allocation
site (file, line, method) and carries a `type` label (STRING, OBJECT, as dumps spell types) and a
`class` label (the class name). Objects allocated before allocation tracing started share the
function `(untraced)`. The profile's mapping is named after the dump.

Examples:
    heapscope pprof heap.dump -o heap.pb.gz
    go tool pprof -http=: heap.pb.gz
    go tool pprof -top -tagfocus=class=User heap.pb.gz";

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    /// Write to FILE (default: stdout, unless it is a terminal). The file is replaced atomically.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let timer = crate::load::Timer::start();
    if a.output.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!("a gzipped profile is not for a terminal: give -o FILE.pb.gz");
    }
    // Like load_for_graph, but neither references nor string values are needed.
    let opts = ReadOptions {
        references: false,
        string_values: false,
        threads: a.input.read.threads,
        ..ReadOptions::default()
    };
    let dump = crate::load::load_input(&a.input, &opts)?;
    timer.lap("load");
    let agent = dump.heap.agent_share();
    let agent_line = heapscope_report::agent_line(&agent, a.input.read.include_agent, true);
    let mut comment = format!("heapscope: live objects of {}", dump.source);
    if let Some(line) = &agent_line {
        comment.push_str(&format!("; {line}"));
    }
    let prof = profile(
        &dump.heap,
        &PprofOptions {
            include_tracer: a.input.read.include_tracer,
            include_agent: a.input.read.include_agent,
            time_nanos: modified_nanos(&a.input.dump),
        },
        &comment,
        &dump.source.to_string(),
    );
    if let Some(line) = agent_line.filter(|_| !a.input.read.quiet) {
        eprintln!("heapscope: {line}");
    }
    timer.lap("profile");
    match &a.output {
        Some(path) => heapscope_export::write_atomic(path, |w| write_gz(&prof, w))
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut out = Vec::new();
            write_gz(&prof, &mut out)?;
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&out).and_then(|_| stdout.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r.context("cannot write to stdout")?,
            }
        }
    }
    timer.lap("write");
    Ok(ExitCode::SUCCESS)
}

/// The dump's modification time as the profile's time (0, unset, for stdin).
fn modified_nanos(path: &Path) -> i64 {
    if path.as_os_str() == "-" {
        return 0;
    }
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}
