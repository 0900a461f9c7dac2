//! `heapscope dump PID`: asks a process running the agent for a heap dump
//! and prints the dump's path once it is complete.
//!
//! The agent announces itself in `<runtime dir>/agent-<pid>.json` (its dump
//! signal and directory, and the state of its latest dump). This command
//! notes the latest dump's sequence number, sends the signal, and waits for
//! a newer dump to be `done` (renamed to its final name, so complete) or
//! `failed`.
//!
//! Nothing in the announcement is trusted blindly, since a signal to the
//! wrong process can end it. Before signalling, this command checks that the
//! runtime directory and the file belong to the caller (or, for root, to the
//! target's user) and that no one else can write to them, that neither is a
//! symlink, that the signal is one the agent may use (never KILL or TERM),
//! that the process running under the pid started when the announcement says
//! (so a reused pid is never signalled), and that the process has a handler
//! for the signal. A stale announcement of the caller's is removed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;
use heapscope_agent::config::{check_dump_signal, signal_name};
use heapscope_agent::secure;
use heapscope_agent::state::{self, runtime_dir, state_path, AgentState, Announcement, DumpState};
use indicatif::{ProgressBar, ProgressStyle};

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
Ask a process running the heapscope agent for a heap dump, wait until it is complete, and print
its path.

The process must have been started with the agent (`heapscope run -- CMD`, or RUBYOPT with
-rheapscope/autostart, or `Heapscope.start` in the app). The dump is written by a forked child of
the process, so the app pauses only for the fork; it is named heap-<pid>-<unixtime>-<seq>.dump
and appears under that name only when complete.

The announcement (<runtime dir>/agent-PID.json) is checked before the signal is sent: it must be
the caller's own (or, for root, the target's user's) in a directory no one else can write to, name
an allowed signal, and match the process's start time, so a stale file or a reused pid is never
signalled.

Examples:
    heapscope dump 4242
    heapscope summary $(heapscope dump 4242)
    for pid in $(pgrep -f 'puma: cluster worker'); do heapscope dump $pid; done";

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The process id.
    #[arg(value_name = "PID")]
    pub pid: u32,

    /// Give up after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 600.0)]
    pub timeout: f64,

    /// Where agents announce themselves: the agent's HEAPSCOPE_RUNTIME_DIR (default: that
    /// variable here, else $XDG_RUNTIME_DIR/heapscope, else /tmp/heapscope-<uid>).
    #[arg(long, value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,

    /// Print only the path (no progress on stderr).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// A process whose announcement passed every check: safe to signal.
pub struct Target {
    /// Its announcement file.
    pub path: PathBuf,
    pub state: AgentState,
    /// The dump signal, allowed and handled by the process.
    pub signal: i32,
}

/// Finds `pid`'s announcement and checks everything that must hold before
/// it may be sent its dump signal (see the module comment); also used by
/// `heapscope trace`, which sends the same signal with a value.
pub fn checked_target(pid: u32, runtime_dir_flag: Option<&Path>) -> Result<Target> {
    let configured = match runtime_dir_flag {
        Some(d) => d.to_string_lossy().into_owned(),
        None => std::env::var("HEAPSCOPE_RUNTIME_DIR").unwrap_or_default(),
    };
    let dir = runtime_dir(&configured);
    let path = state_path(&dir, pid);
    let alive = process_alive(pid);
    let me = secure::euid();
    // Whose files to trust: the caller's; root also trusts the target's user.
    let mut owners = vec![me];
    if me == 0 {
        if let Some(uid) = secure::proc_euid(pid) {
            owners.push(uid);
        }
    }
    let dir_exists = std::fs::symlink_metadata(&dir).is_ok();
    if dir_exists {
        if let Err(why) = secure::check_private_dir(&dir, &owners) {
            bail!("refusing the runtime directory: {why}; no signal sent");
        }
        // Announcements of the caller's processes that are gone, or whose
        // pid now names another process.
        state::remove_stale(&dir);
    }
    let read = match Announcement::read(&path) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !alive {
                bail!("no process {} is running", pid);
            }
            bail!(
                "process {} has no heapscope agent ({} does not exist). Start it with \
                 `heapscope run -- CMD`, or give --runtime-dir if the agent was started \
                 with another HEAPSCOPE_RUNTIME_DIR. A process that daemonised itself \
                 announces itself under its new pid",
                pid,
                path.display()
            );
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "reading {} (refused: not a regular file of the agent's)",
                    path.display()
                )
            })
        }
    };
    let announcement = read.announcement;
    if !owners.contains(&read.owner) {
        bail!(
            "refusing {}: it belongs to uid {}, not to uid {}{}; no signal sent",
            path.display(),
            read.owner,
            me,
            if me == 0 {
                " or the process's user".to_string()
            } else {
                String::new()
            }
        );
    }
    if let Some(target) = secure::proc_euid(pid).filter(|uid| *uid != read.owner) {
        bail!(
            "refusing {}: it belongs to uid {}, but process {} runs as uid {target}; \
             no signal sent",
            path.display(),
            read.owner,
            pid
        );
    }
    if read.mode & 0o022 != 0 {
        bail!(
            "refusing {}: other users can write to it (mode {:o}); no signal sent",
            path.display(),
            read.mode & 0o7777
        );
    }
    if announcement.state.pid != pid {
        bail!(
            "refusing {}: it announces process {}, not {}; no signal sent",
            path.display(),
            announcement.state.pid,
            pid
        );
    }
    if !alive {
        bail!(
            "process {} is not running ({} is left over from it)",
            pid,
            path.display()
        );
    }
    let Some(signal) = announcement.state.dump_signal else {
        bail!(
            "process {} has its dump signal turned off (HEAPSCOPE_DUMP_SIGNAL=off), which \
             `heapscope dump` and `heapscope trace` need",
            pid
        );
    };
    if let Err(why) = check_dump_signal(signal) {
        bail!("refusing {}: {why}; no signal sent", path.display());
    }
    let Some(start_time) = announcement.start_time else {
        bail!(
            "refusing {}: it does not record the process's start time (written by an older \
             agent?), so pid {} may now be another process; no signal sent",
            path.display(),
            pid
        );
    };
    if secure::proc_start_time(pid) != Some(start_time) {
        // The caller's own stale file goes (another user's stays).
        let removed = read.owner == me && std::fs::remove_file(&path).is_ok();
        bail!(
            "refusing to signal {}: the process running under that pid did not start when \
             {} says (a stale announcement of a process that is gone; {}); no signal sent",
            pid,
            path.display(),
            if removed { "removed it" } else { "left it" }
        );
    }
    if secure::proc_catches(pid, signal) == Some(false) {
        bail!(
            "process {} does not handle {} (its agent is not running, or stopped); \
             no signal sent",
            pid,
            signal_name(signal)
        );
    }
    Ok(Target {
        path,
        state: announcement.state,
        signal,
    })
}

pub fn run(a: Args) -> Result<ExitCode> {
    let Target {
        path,
        state,
        signal,
    } = checked_target(a.pid, a.runtime_dir.as_deref())?;
    let before = state.last_dump.as_ref().map_or(0, |d| d.seq);
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(a.pid as libc::pid_t, signal) } != 0 {
        let err = std::io::Error::last_os_error();
        bail!("cannot send {} to {}: {err}", signal_name(signal), a.pid);
    }
    let started = Instant::now();
    let bar = progress(a.quiet, a.pid);
    let deadline = started + Duration::from_secs_f64(a.timeout.max(0.0));
    loop {
        std::thread::sleep(Duration::from_millis(50));
        // The file is replaced atomically; a read can still miss it between
        // the agent's exit and here, which the liveness check covers.
        if let Ok(s) = AgentState::read(&path) {
            if let Some(d) = s.last_dump.clone().filter(|d| d.seq > before) {
                match d.state {
                    DumpState::Done => {
                        bar.finish_and_clear();
                        let size = std::fs::metadata(&d.path).map(|m| m.len()).unwrap_or(0);
                        if !a.quiet {
                            // The tracing state says whether new objects in
                            // this dump carry file and line.
                            let trace = s
                                .trace
                                .as_ref()
                                .map(|t| format!("; {}", t.describe()))
                                .unwrap_or_default();
                            eprintln!(
                                "heapscope: dump of {} complete: {} in {:.1} s{trace}",
                                a.pid,
                                heapscope_report::human_bytes(size),
                                started.elapsed().as_secs_f64()
                            );
                        }
                        println!("{}", d.path.display());
                        return Ok(ExitCode::SUCCESS);
                    }
                    DumpState::Failed => {
                        bar.finish_and_clear();
                        bail!(
                            "the dump of {} failed: {}",
                            a.pid,
                            d.error.as_deref().unwrap_or("no reason given")
                        );
                    }
                    DumpState::Writing => {
                        bar.set_message(format!("writing {}", written(&d.path)));
                    }
                }
            }
        }
        if !process_alive(a.pid) {
            bar.finish_and_clear();
            bail!("process {} exited before its dump was complete", a.pid);
        }
        if Instant::now() >= deadline {
            bar.finish_and_clear();
            bail!(
                "no complete dump from {} after {:.0} s (see its stderr; is the agent's \
                 thread able to run?)",
                a.pid,
                a.timeout
            );
        }
    }
}

fn progress(quiet: bool, pid: u32) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} dumping {prefix}: {msg} ({elapsed})")
            .expect("valid template"),
    );
    bar.set_prefix(pid.to_string());
    bar.set_message("waiting for the agent");
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// How much of the dump is written so far: the size of its temporary file.
fn written(final_path: &Path) -> String {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = final_path.with_file_name(format!(".{name}.tmp"));
    match std::fs::metadata(&tmp) {
        Ok(m) => heapscope_report::human_bytes(m.len()),
        Err(_) => "starting".into(),
    }
}

/// Running and not a zombie (an exited child its parent has not reaped).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}
