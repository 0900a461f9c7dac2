//! `heapscope trace PID [on|off]`: starts or stops allocation tracing
//! (`ObjectSpace.trace_object_allocations_start`/`_stop`) in a process
//! running the agent, or prints whether it is on.
//!
//! It uses the dump's channel: the same announcement checks as
//! `heapscope dump` ([`super::dump::checked_target`]), then the dump signal
//! queued with `sigqueue(3)` and a value naming the request
//! ([`TraceRequest`]), which the agent's handler turns into its own byte on
//! the agent's pipe. The agent answers in its announcement (`trace.seq`
//! grows, with the new state and a message), which this command waits for.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Args as ClapArgs, ValueEnum};
use heapscope_agent::config::{signal_name, TraceRequest};
use heapscope_agent::state::{AgentState, TraceState};

use super::dump::{checked_target, Target};

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
Start or stop allocation tracing in a process running the heapscope agent, or print whether it is
on. While tracing is on, Ruby records the file, line and GC generation of every new object, so
dumps taken later (`heapscope dump PID`) show where objects allocated from then on came from:
`summary --by location`, `diff`, `leaks` and `retained` need it. It costs time and memory on every
allocation; turn it off when done (objects allocated meanwhile keep their file and line).

    heapscope trace PID on     start tracing (ObjectSpace.trace_object_allocations_start)
    heapscope trace PID off    stop the tracing heapscope started
    heapscope trace PID        print the current state

The request travels like a dump request: the announcement (<runtime dir>/agent-PID.json) is checked
exactly as `heapscope dump` checks it (the caller's own, private, the process's start time, the
signal handled), then the agent's dump signal is sent with a value (sigqueue) that asks for the
change instead of a dump. The command waits until the agent confirms in its announcement.

`off` stops only tracing heapscope started (`trace on`, or `heapscope run --trace-allocations`).
When the app itself traces allocations, `on` says so and leaves it to the app, and `off` says
tracing stays on (exit 1). Ruby counts starts and stops, so heapscope never undoes the app's own.

Exit status: 0 when tracing is in the requested state, 1 when it is not (the app's tracing), 2 on
errors (no agent, refused announcement, timeout, bad arguments).

Examples:
    heapscope trace 4242 on
    heapscope dump 4242        # later: new objects carry file and line
    heapscope trace 4242 off";

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
}

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The process id.
    #[arg(value_name = "PID")]
    pub pid: u32,

    /// `on` or `off`; without it, print the current state.
    #[arg(value_name = "on|off")]
    pub switch: Option<Switch>,

    /// Give up after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub timeout: f64,

    /// Where agents announce themselves: the agent's HEAPSCOPE_RUNTIME_DIR (default: that
    /// variable here, else $XDG_RUNTIME_DIR/heapscope, else /tmp/heapscope-<uid>).
    #[arg(long, value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,

    /// Print the announcement's trace state as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

extern "C" {
    // glibc's sigqueue(3); the libc crate does not bind it.
    fn sigqueue(pid: libc::pid_t, sig: libc::c_int, value: libc::sigval) -> libc::c_int;
}

pub fn run(a: Args) -> Result<ExitCode> {
    let Target {
        path,
        state,
        signal,
    } = checked_target(a.pid, a.runtime_dir.as_deref())?;
    let Some(before) = state.trace.as_ref().map(|t| t.seq) else {
        bail!(
            "process {} runs an agent ({}) that cannot switch allocation tracing; \
             no signal sent",
            a.pid,
            state.version
        );
    };
    let request = match a.switch {
        Some(Switch::On) => TraceRequest::On,
        Some(Switch::Off) => TraceRequest::Off,
        None => TraceRequest::Status,
    };
    let value = libc::sigval {
        sival_ptr: request.value() as usize as *mut libc::c_void,
    };
    // SAFETY: sigqueue has no memory-safety preconditions.
    if unsafe { sigqueue(a.pid as libc::pid_t, signal, value) } != 0 {
        let err = std::io::Error::last_os_error();
        bail!("cannot send {} to {}: {err}", signal_name(signal), a.pid);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout.max(0.0));
    let answer: TraceState = loop {
        std::thread::sleep(Duration::from_millis(20));
        if let Some(t) = AgentState::read(&path)
            .ok()
            .and_then(|s| s.trace)
            .filter(|t| t.seq > before)
        {
            break t;
        }
        if !super::dump::process_alive(a.pid) {
            bail!("process {} exited before answering", a.pid);
        }
        if Instant::now() >= deadline {
            bail!(
                "no answer from {} after {:.0} s (see its stderr; is the agent's thread able \
                 to run?)",
                a.pid,
                a.timeout
            );
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        if let Some(m) = answer.message.as_deref().filter(|_| a.switch.is_some()) {
            eprintln!(
                "heapscope: {}: {}",
                a.pid,
                heapscope_report::escape_control_text(m)
            );
        }
        println!("{}: {}", a.pid, answer.describe());
    }
    if answer
        .message
        .as_deref()
        .is_some_and(|m| m.starts_with("the trace request failed"))
    {
        bail!(
            "{}",
            answer
                .message
                .as_deref()
                .unwrap_or("the trace request failed")
        );
    }
    let wanted = match a.switch {
        Some(Switch::On) => Some(true),
        Some(Switch::Off) => Some(false),
        None => None,
    };
    Ok(match wanted {
        Some(w) if answer.active != w => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}
