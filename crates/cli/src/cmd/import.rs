//! `heapscope import PATH...`: dumps, memory logs and pprof profiles into a
//! store (heapscope-store) for `heapscope serve`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args as ClapArgs;
use heapscope_report::escape_control_text;
use heapscope_store::import::{ImportProgress, Progress};
use heapscope_store::{ImportOptions, Outcome, Store};
use indicatif::{ProgressBar, ProgressStyle};

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
Import heap dumps, memory logs and pprof profiles into a store that `heapscope serve` shows in a
browser.

Each dump is read once and analysed: its totals and diagnostics, its objects grouped by
generation, type, class, location, file, gem and string, the top retainers and leak suspects with
their paths from roots, and its dominator flame graph. Dumps of one process (the pid in the agent's
`heap-<pid>-<unixtime>-<seq>.dump` names, else the directory; --process to choose) are a series:
each new one is folded into the process's leak analysis, in time order (the name's unix time, else
the file's modification time). Memory logs (heapscope watch output, the agent's gc-<pid>.jsonl
statistics, Rails, Heroku and derailed logs) and pprof profiles (.pb.gz) are recognised by their
contents.

Importing a file that is already in the store (same size, same first and last MiB) does nothing.
Each file is imported in one transaction: a failed or interrupted import leaves the store as it
was. Files that cannot be imported are listed with the reason, and the exit code is then 1 (2 when
nothing at all could be imported).

The store is an SQLite file, by default $XDG_DATA_HOME/heapscope/store.sqlite (created 0600 in a
0700 directory), or a PostgreSQL database shared by a team: --store postgres://user@host/db. With
--objects, every object, reference and root is stored too, in tables documented in docs/store.md
with example SQL.

Examples:
    heapscope import tmp/heapscope/
    heapscope import heap-*.dump gc-4242.jsonl --store team.sqlite
    heapscope import dumps/ --store postgres://heapscope@db/heapscope --objects";

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Dumps, memory logs and profiles: files, directories (their files), or quoted globs.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub store: StoreArg,

    /// Also store every object, reference and root (for SQL; much larger).
    #[arg(long)]
    pub objects: bool,

    /// Put every dump, log and profile under this process name instead of the one their names give.
    #[arg(long, value_name = "NAME")]
    pub process: Option<String>,

    /// Parser threads (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    pub threads: usize,

    /// Print only failures.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Never show a progress bar (it shows on a terminal for dumps over 100 MB).
    #[arg(long)]
    pub no_progress: bool,
}

/// `--store`, shared by import and serve.
#[derive(ClapArgs, Debug, Clone)]
pub struct StoreArg {
    /// The store: an SQLite file (default: $XDG_DATA_HOME/heapscope/store.sqlite) or
    /// postgres://user@host/db.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

impl StoreArg {
    pub fn open(&self) -> Result<Store> {
        Store::open(self.store.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// Dumps smaller than this import too fast for a progress bar to help.
const PROGRESS_MIN_BYTES: u64 = 100 << 20;

/// A progress bar on stderr while a big dump is read, then a spinner while
/// it is analysed and stored.
struct Bar(std::sync::Mutex<Option<ProgressBar>>);

impl ImportProgress for Bar {
    fn reading(&self, name: &str, size: u64) -> Option<heapscope_reader::ProgressFn> {
        if size < PROGRESS_MIN_BYTES {
            return None;
        }
        let bar = crate::load::reading_bar(size, name);
        let b = bar.clone();
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar);
        Some(std::sync::Arc::new(move |done| b.set_position(done)))
    }

    fn analysing(&self, name: &str) {
        if let Some(bar) = self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
            bar.set_message(format!(
                "analysing and storing {}",
                escape_control_text(name)
            ));
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
        }
    }

    fn done(&self) {
        if let Some(bar) = self.0.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

/// The progress reporter for `import` and `serve`: on a terminal only.
pub fn progress(quiet: bool) -> Option<Progress> {
    (!quiet && std::io::stderr().is_terminal())
        .then(|| Progress(std::sync::Arc::new(Bar(std::sync::Mutex::new(None)))))
}

/// Prints one file's outcome (names escaped: they come from the file system).
fn show(o: &Outcome, quiet: bool) {
    let name = |p: &PathBuf| escape_control_text(&p.display().to_string()).into_owned();
    match o {
        Outcome::Imported {
            path,
            kind,
            detail,
            warnings,
            ..
        } => {
            if !quiet {
                eprintln!("imported {} ({}: {detail})", name(path), kind.name());
            }
            for w in warnings {
                eprintln!("  warning: {}", escape_control_text(w));
            }
        }
        Outcome::AlreadyThere { path, kind, .. } => {
            if !quiet {
                eprintln!("already in the store: {} ({})", name(path), kind.name());
            }
        }
        Outcome::Failed { path, reason } => {
            eprintln!("failed: {}: {}", name(path), escape_control_text(reason));
        }
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let mut store = a.store.open()?;
    let opts = ImportOptions {
        objects: a.objects,
        process: a.process.clone(),
        threads: a.threads,
        progress: progress(a.no_progress || a.quiet),
    };
    let interactive = std::io::stderr().is_terminal() && !a.quiet;
    if interactive {
        eprintln!("importing into {}", escape_control_text(&store.describe()));
    }
    let started = std::time::Instant::now();
    let outcomes = store.import(&a.paths, &opts, &mut |o| show(o, a.quiet));
    let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let imported = count(|o| matches!(o, Outcome::Imported { .. }));
    let already = count(|o| matches!(o, Outcome::AlreadyThere { .. }));
    let failed = count(|o| matches!(o, Outcome::Failed { .. }));
    if !a.quiet || failed > 0 {
        eprintln!(
            "{imported} imported, {already} already in the store, {failed} failed ({:.1} s) into {}",
            started.elapsed().as_secs_f64(),
            escape_control_text(&store.describe())
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else if imported + already == 0 {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    })
}
