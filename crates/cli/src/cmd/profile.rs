//! `heapscope profile [OPTIONS] -- CMD ARGS...`: the exact allocation report
//! (`Heapscope.report`) of a whole Ruby program run.
//!
//! Like `heapscope run`, the program replaces this process (`exec`, so its
//! exit status and signals are its own), with the agent's library on
//! `RUBYLIB` and `-rheapscope/profile_run` on `RUBYOPT`. That file starts a
//! report at boot and writes it in an `at_exit` hook registered before the
//! program's own (so it runs last). The options travel as
//! `HEAPSCOPE_REPORT_*` variables: they belong to this command, not to the
//! agent's option table (like `HEAPSCOPE_REQUIRE_MEM_OUT`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command as Process, ExitCode};

use anyhow::{bail, Result};
use clap::{Args as ClapArgs, ValueEnum};

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
The exact memory report of a whole Ruby program run, as `ruby-memory-profiler run -- CMD` gives:
every allocation from the moment Ruby loads the agent (before the program's first line) to its
exit, by gem, file, location and class, allocated and retained (alive after a full GC at exit),
the String report, allocations by type, GC runs and time, and the peak of live objects. GC stays
on while the program runs.

The report is printed to stderr in memory_profiler's layout (so the program's stdout stays its
own), or written to FILE with -o, in the format its extension names: .txt, .json, .html (a
self-contained page with sortable tables) or .pb.gz (pprof). The program's exit status is passed
through unchanged; the report is written when Ruby runs its at_exit hooks, after the program's
own (a program that ends with exit! or a fatal signal gets none).

Only the process heapscope starts is profiled (CMD itself, or a Ruby it execs, as `bundle exec`
does); Ruby processes it spawns inherit RUBYOPT but do not report.

Examples:
    heapscope profile -- ruby script.rb
    heapscope profile --top 20 --ignore-files /gems/ -- bundle exec rake db:seed
    heapscope profile --threads main -o report.html -- ruby job.rb";

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// Allocations of every thread.
    All,
    /// The main thread's only.
    Main,
}

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Rows per table and strings per String report.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub top: u32,

    /// Keep only allocations in files whose path matches this Ruby regular expression.
    #[arg(long, value_name = "RE")]
    pub allow_files: Option<String>,

    /// Leave out allocations in files whose path matches this Ruby regular expression.
    #[arg(long, value_name = "RE")]
    pub ignore_files: Option<String>,

    /// Whose allocations count: every thread's, or the main thread's only.
    #[arg(long, value_enum, default_value_t = Threads::All)]
    pub threads: Threads,

    /// Write the report to FILE (.txt, .json, .html or .pb.gz) instead of printing it to stderr.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// The program and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

const EXTENSIONS: &[&str] = &[".txt", ".json", ".html", ".htm", ".pb.gz"];

pub fn run(a: Args) -> Result<ExitCode> {
    let output = match &a.output {
        None => None,
        Some(p) => {
            let name = p.to_string_lossy();
            if !EXTENSIONS.iter().any(|e| name.ends_with(e)) {
                bail!(
                    "-o {name}: the extension names the format; use one of {}",
                    EXTENSIONS.join(", ")
                );
            }
            // Absolute: the program may change directory before it exits.
            Some(std::path::absolute(p)?)
        }
    };
    let lib = super::run::find_ruby_lib()?;
    let mut child = Process::new(&a.command[0]);
    child.args(&a.command[1..]);
    let set = |child: &mut Process, key: &str, value: Option<OsString>| {
        let name = format!("HEAPSCOPE_REPORT_{key}");
        match value {
            Some(v) => child.env(name, v),
            // Never a value left in the environment by an outer run.
            None => child.env_remove(name),
        };
    };
    set(
        &mut child,
        "PID",
        Some(std::process::id().to_string().into()),
    );
    set(&mut child, "TOP", Some(a.top.to_string().into()));
    set(&mut child, "ALLOW_FILES", a.allow_files.map(Into::into));
    set(&mut child, "IGNORE_FILES", a.ignore_files.map(Into::into));
    let threads = match a.threads {
        Threads::All => "all",
        Threads::Main => "main",
    };
    set(&mut child, "THREADS", Some(threads.into()));
    set(&mut child, "OUT", output.map(Into::into));
    super::run::require_agent(&mut child, lib.as_deref(), "heapscope/profile_run");
    super::run::exec(child, &a.command[0])
}
