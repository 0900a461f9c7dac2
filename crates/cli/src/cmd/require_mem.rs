//! `heapscope require-mem [OPTIONS] -- CMD ARGS...`: the memory each
//! `require` adds, as a tree with totals.
//!
//! The Ruby hook (`ruby/lib/heapscope/require_mem.rb`, embedded here) is
//! written to a private temporary directory and loaded with `-r` in RUBYOPT,
//! so neither the native extension nor the gem has to be installed. It
//! appends JSON lines to a file named by HEAPSCOPE_REQUIRE_MEM_OUT as the
//! program runs; once the program has ended they are turned into events
//! here, into trees by `heapscope_analysis::requires`, and rendered by
//! `heapscope_report::requires`.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode, Stdio};

use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;
use heapscope_analysis::requires::{build, EndResult, Event, Via};
use heapscope_report::requires::{require_mem_json, require_mem_text, ExitInfo, RequireMemReport};
use serde_json::Value;

use crate::args::{Format, FormatArg};

/// The hook, loaded by `-r` in RUBYOPT.
const HOOK: &str = include_str!("../../../../ruby/lib/heapscope/require_mem.rb");

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
The memory each `require` adds, as a tree with totals, like `derailed bundle:mem` but for any
command that runs Ruby.

The command runs with a small pure-Ruby hook loaded first (`-r` prepended to RUBYOPT; nothing
needs installing). The hook wraps require, require_relative and load and records, for every call,
the RSS before and after (/proc/self/statm), the call it happened in, and whether it loaded
anything. No GC is forced: a require is charged what it really added to the process, garbage
included, as the program experiences it. A GC that runs in the middle of a require can make its
number smaller, even negative; numbers are shown signed.

In the tree, `total` is a require's RSS growth including the requires it made, `own` is total
minus its children. A feature required from several places is loaded once: it is shown under the
place that loaded it, with the others listed as \"also required by\". Nodes whose total is under
--cutoff are hidden with everything below them (their memory stays in their parents' totals);
JSON has the whole tree, in bytes, each node flagged `below_cutoff`. TOP is the RSS growth from
the hook's load to the program's exit, requires or not.

The program's stdout and stderr pass through; with --format json on stdout, the program's stdout
goes to stderr so that the JSON stays parseable. Every Ruby process the command starts records
its own tree (one per process). When the program fails, its partial tree is still printed, and
heapscope exits with the program's status (128+N for a signal).

Examples:
    heapscope require-mem -- ruby -e 'require \"rails/all\"'
    heapscope require-mem --cutoff 1 -- bundle exec ruby config/environment.rb
    heapscope require-mem --cutoff 0 -- ruby script.rb
    heapscope require-mem --format json -o requires.json -- bundle exec rails runner 1";

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Hide requires that added less than this many MiB (with everything below them).
    #[arg(long, value_name = "MiB", default_value_t = 0.3)]
    pub cutoff: f64,

    #[command(flatten)]
    pub format: FormatArg,

    /// Write the report to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Keep the hook's raw records (JSON lines) in FILE.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,

    /// The program and its arguments (after `--`), e.g. `ruby script.rb` or `bundle exec ...`.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// A private temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let base = std::env::temp_dir();
        for attempt in 0..100u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let dir = base.join(format!(
                "heapscope-require-mem-{}-{nanos:x}{attempt}",
                std::process::id()
            ));
            let mut b = fs::DirBuilder::new();
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            match b.create(&dir) {
                Ok(()) => return Ok(TempDir(dir)),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot create a directory in {}", base.display())
                    })
                }
            }
        }
        bail!("cannot create a temporary directory in {}", base.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

fn shell_words(cmd: &[OsString]) -> String {
    cmd.iter()
        .map(|a| {
            let s = a.to_string_lossy();
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(a: Args) -> Result<ExitCode> {
    if !a.cutoff.is_finite() || a.cutoff < 0.0 {
        bail!(
            "--cutoff must be a number of MiB, 0 or more (got {})",
            a.cutoff
        );
    }
    if !Path::new("/proc/self/statm").exists() {
        bail!("require-mem reads RSS from /proc/self/statm, which this system does not have (Linux only)");
    }
    let json = a.format.format == Format::Json;
    let tmp = TempDir::new()?;
    let hook = tmp.0.join("heapscope_require_mem.rb");
    fs::write(&hook, HOOK).with_context(|| format!("cannot write {}", hook.display()))?;
    if hook.to_string_lossy().chars().any(char::is_whitespace) {
        bail!(
            "the temporary directory {} has a space in its path, which RUBYOPT cannot carry: set TMPDIR to another directory",
            tmp.0.display()
        );
    }
    let events = match &a.events {
        Some(p) => {
            // Created empty here, without following a planted symlink; the
            // hook appends to it.
            heapscope_live::outfile::create_streaming(p, b"")
                .with_context(|| format!("cannot write {}", p.display()))?;
            std::path::absolute(p).unwrap_or_else(|_| p.clone())
        }
        None => tmp.0.join("events.jsonl"),
    };

    let mut rubyopt = OsString::from("-r");
    rubyopt.push(hook.as_os_str());
    if let Some(old) = std::env::var_os("RUBYOPT").filter(|v| !v.is_empty()) {
        rubyopt.push(" ");
        rubyopt.push(old);
    }
    let program = &a.command[0];
    let mut child = Process::new(program);
    child
        .args(&a.command[1..])
        .env("RUBYOPT", rubyopt)
        .env("HEAPSCOPE_REQUIRE_MEM_OUT", &events)
        .env("HEAPSCOPE_REQUIRE_MEM_PAGE", page_size().to_string());
    if json && a.output.is_none() {
        // Keep stdout for the JSON document.
        let err = std::io::stderr().as_fd().try_clone_to_owned()?;
        child.stdout(Stdio::from(err));
    }
    let mut child = child.spawn().map_err(|e| spawn_error(program, e))?;
    // Ctrl-C reaches the whole process group: let the program die of it
    // and still print what it recorded. (Set after spawning, so that the
    // program does not inherit the ignored disposition.)
    // SAFETY: changing a signal disposition to SIG_IGN is async-signal-safe
    // and touches no Rust state.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    let status = child.wait().context("cannot wait for the program")?;
    let exit = ExitInfo {
        code: status.code(),
        signal: status.signal(),
    };

    let text = match fs::read(&events) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", events.display())),
    };
    let (parsed, bad) = parse_events(&text);
    if bad > 0 {
        eprintln!("heapscope: warning: {bad} unreadable records from the hook were skipped");
    }
    let result = build(parsed);
    let failed = !exit.success();
    let status_note = if failed {
        format!(" (the program failed: {})", exit.describe())
    } else {
        String::new()
    };
    if result.processes.is_empty() {
        bail!(
            "no require recorded: `{}` never loaded the hook{status_note}; is it a Ruby program, and does RUBYOPT reach it?",
            shell_words(&a.command)
        );
    }
    if result.calls() == 0 {
        bail!(
            "no require recorded: `{}` loaded the hook but required nothing after it{status_note}",
            shell_words(&a.command)
        );
    }

    let report = RequireMemReport {
        command: &shell_words(&a.command),
        exit,
        result: &result,
        cutoff: (a.cutoff * 1024.0 * 1024.0).round() as i64,
    };
    let out = if json {
        let mut s = serde_json::to_string_pretty(&require_mem_json(&report))?;
        s.push('\n');
        s
    } else {
        require_mem_text(&report)
    };
    match &a.output {
        Some(path) => heapscope_export::write_atomic(path, |w| w.write_all(out.as_bytes()))
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            crate::print(&out)?;
        }
    }
    if failed {
        eprintln!(
            "heapscope: the program failed ({}); the tree {} is partial",
            exit.describe(),
            if a.output.is_some() {
                "written"
            } else {
                "above"
            }
        );
        let code = match (exit.code, exit.signal) {
            (Some(c), _) => c.clamp(1, 255),
            (None, Some(s)) => (128 + s).clamp(1, 255),
            (None, None) => 1,
        };
        return Ok(ExitCode::from(code as u8));
    }
    Ok(ExitCode::SUCCESS)
}

fn spawn_error(program: &OsStr, e: std::io::Error) -> anyhow::Error {
    let name = program.to_string_lossy();
    match e.kind() {
        ErrorKind::NotFound => anyhow::anyhow!("command not found: {name}"),
        ErrorKind::PermissionDenied => anyhow::anyhow!("cannot run {name}: permission denied"),
        _ => anyhow::anyhow!("cannot run {name}: {e}"),
    }
}

/// The hook's JSON lines as events, and how many lines could not be read.
fn parse_events(text: &str) -> (Vec<Event>, usize) {
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| event(&v))
        {
            Some(e) => out.push(e),
            None => bad += 1,
        }
    }
    (out, bad)
}

fn event(v: &Value) -> Option<Event> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let u = |k: &str| v.get(k).and_then(Value::as_u64);
    let f = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let run = s("run")?;
    Some(match v.get("ev")?.as_str()? {
        "start" => Event::Start {
            run,
            pid: u("pid")? as u32,
            parent_run: s("parent_run"),
            rss: u("rss")?,
            script: s("script").unwrap_or_default(),
            cwd: s("cwd").unwrap_or_default(),
            ruby: s("ruby").unwrap_or_default(),
        },
        "begin" => Event::Begin {
            run,
            id: u("id")?,
            parent: u("parent"),
            feature: s("feature")?,
            via: Via::from_name(v.get("via")?.as_str()?)?,
            rss: u("rss")?,
            gc: u("gc").unwrap_or(0),
            time: f("time"),
        },
        "end" => Event::End {
            run,
            id: u("id")?,
            result: match v.get("result")?.as_str()? {
                "loaded" => EndResult::Loaded,
                "already" => EndResult::Already,
                _ => EndResult::Error(s("error").unwrap_or_else(|| "error".into())),
            },
            path: s("path"),
            rss: u("rss")?,
            gc: u("gc").unwrap_or(0),
            time: f("time"),
        },
        "exit" => Event::Exit {
            run,
            rss: u("rss")?,
        },
        _ => return None,
    })
}
