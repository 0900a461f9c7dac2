//! `heapscope trace PID on|off` against real Ruby apps under `heapscope run`:
//! objects allocated while tracing is on carry file, line and generation in
//! later dumps, and no others do; the app's own tracing is reported and left
//! alone; `--trace-allocations` tracing is switched off the same way; errors
//! for processes without an agent, another user, and bad arguments.
//!
//! The app reads commands on stdin (a class name: allocate 300 of it and
//! keep them), so every phase is in a known order. Dumps are read line by
//! line here (only `type`, `name`, `class`, `file`, `line`, `generation`),
//! which every Ruby from 3.1 on writes alike.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::process::{wait_for, Proc};

/// Allocates 300 objects of the class named on each stdin line;
/// `app_start`/`app_stop` switch the app's own tracing.
const APP: &str = r#"
class TraceBefore; end
class TraceDuring; end
class TraceAfter; end
class TraceApp; end
$keep = []
$stdout.sync = true
puts "ready"
while (line = $stdin.gets)
  cmd = line.strip
  case cmd
  when "exit" then break
  when "app_start" then ObjectSpace.trace_object_allocations_start
  when "app_stop" then ObjectSpace.trace_object_allocations_stop
  when "agent_stop" then Heapscope.stop
  when "probe"
    puts "tracing #{!ObjectSpace.allocation_sourcefile(Object.new).nil?}"
  else
    klass = Object.const_get(cmd)
    300.times { $keep << klass.new }
  end
  puts "ok #{cmd}"
end
"#;

struct App {
    proc: Proc,
    out: BufReader<std::process::ChildStdout>,
    dir: tempfile::TempDir,
}

impl App {
    fn start(flags: &[&str]) -> App {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_heapscope"));
        cmd.current_dir(dir.path())
            .args(["run", "--no-profile", "--no-stats"])
            .args(flags)
            .arg("--dump-dir")
            .arg(dir.path().join("dumps"))
            .arg("--runtime-dir")
            .arg(dir.path().join("run"))
            .args(["--", "ruby", "-e", APP])
            .env("HEAPSCOPE_RUBY_LIB", common::agent::ruby_lib())
            .env_remove("RUBYOPT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn(cmd);
        let out = BufReader::new(proc.child().stdout.take().unwrap());
        let mut app = App { proc, out, dir };
        assert_eq!(app.line(), "ready");
        let run = app.run_dir();
        let pid = app.proc.pid;
        wait_for(Duration::from_secs(20), "the announcement", || {
            run.join(format!("agent-{pid}.json")).exists().then_some(())
        });
        app
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    /// Sends a command and waits for its acknowledgement.
    fn send(&mut self, cmd: &str) {
        let stdin = self.proc.child().stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        assert_eq!(self.line(), format!("ok {cmd}"));
    }

    /// Sends a command that prints one line before its acknowledgement;
    /// returns that line.
    fn ask(&mut self, cmd: &str) -> String {
        let stdin = self.proc.child().stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        let answer = self.line();
        assert_eq!(self.line(), format!("ok {cmd}"));
        answer
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn pid(&self) -> String {
        self.proc.pid.to_string()
    }

    /// `heapscope trace PID ARGS...` with this app's runtime directory.
    fn trace(&self, args: &[&str]) -> Output {
        heapscope_in(&self.run_dir(), &[&["trace", &self.pid()], args].concat())
    }

    fn announcement(&self) -> Value {
        let text =
            std::fs::read_to_string(self.run_dir().join(format!("agent-{}.json", self.proc.pid)))
                .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// `heapscope dump PID`: the dump's path and the command's stderr.
    fn dump(&self) -> (PathBuf, String) {
        let out = heapscope_in(&self.run_dir(), &["dump", &self.pid(), "--timeout", "60"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        (PathBuf::from(text(&out.stdout).trim()), err)
    }

    fn finish(mut self) {
        let stdin = self.proc.child().stdin.as_mut().unwrap();
        writeln!(stdin, "exit").unwrap();
        drop(self.proc.child().stdin.take());
        let status = self.proc.wait_status(Duration::from_secs(30));
        assert!(status.success(), "the app exited with {status}");
    }
}

fn heapscope_in(runtime_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args(args)
        .env("HEAPSCOPE_RUNTIME_DIR", runtime_dir)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Per marker class: (objects, objects with file + line + generation).
fn traced_by_class(dump: &Path) -> HashMap<String, (u64, u64)> {
    let body = std::fs::read_to_string(dump).unwrap();
    let markers = ["TraceBefore", "TraceDuring", "TraceAfter", "TraceApp"];
    let mut class_of: HashMap<String, String> = HashMap::new();
    let mut objects = Vec::new();
    for line in body.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        match v["type"].as_str() {
            Some("CLASS") => {
                if let Some(name) = v["name"].as_str().filter(|n| markers.contains(n)) {
                    class_of.insert(v["address"].as_str().unwrap().into(), name.into());
                }
            }
            Some("OBJECT") => objects.push(v),
            _ => {}
        }
    }
    let mut out: HashMap<String, (u64, u64)> = HashMap::new();
    for o in objects {
        let Some(name) = o["class"].as_str().and_then(|c| class_of.get(c)) else {
            continue;
        };
        let e = out.entry(name.clone()).or_default();
        e.0 += 1;
        if o["file"].is_string() && o["line"].is_u64() && o["generation"].is_u64() {
            e.1 += 1;
        }
    }
    out
}

#[test]
fn agent_trace_on_then_off_marks_only_what_was_allocated_meanwhile() {
    let mut app = App::start(&[]);

    // The state, before anything: off.
    let out = app.trace(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("{}: allocation tracing off", app.pid())
    );
    assert_eq!(app.announcement()["trace"]["active"], false);

    app.send("TraceBefore");
    let (first, err) = app.dump();
    assert!(err.contains("; allocation tracing off"), "{err}");
    assert_eq!(traced_by_class(&first)["TraceBefore"], (300, 0));

    let out = app.trace(&["on"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("allocation tracing started"), "{err}");
    assert_eq!(
        text(&out.stdout).trim(),
        format!(
            "{}: allocation tracing on (started by heapscope)",
            app.pid()
        )
    );
    let state = app.announcement();
    assert_eq!(state["trace"]["active"], true, "{state}");
    assert_eq!(state["trace"]["by_agent"], true, "{state}");
    assert!(state["trace"]["since"].as_f64().unwrap() > 1.6e9, "{state}");
    // A second `on` changes nothing and says so.
    let out = app.trace(&["on"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("already on (started by heapscope)"));

    app.send("TraceDuring");
    let (second, err) = app.dump();
    assert!(
        err.contains("; allocation tracing on (started by heapscope)"),
        "{err}"
    );
    let counts = traced_by_class(&second);
    assert_eq!(counts["TraceBefore"], (300, 0), "{counts:?}");
    assert_eq!(counts["TraceDuring"], (300, 300), "{counts:?}");

    let out = app.trace(&["off"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("allocation tracing stopped"), "{err}");
    assert_eq!(
        text(&out.stdout).trim(),
        format!("{}: allocation tracing off", app.pid())
    );
    app.send("TraceAfter");
    let (third, err) = app.dump();
    assert!(err.contains("; allocation tracing off"), "{err}");
    let counts = traced_by_class(&third);
    // What was traced keeps its file and line; nothing new is traced.
    assert_eq!(counts["TraceDuring"], (300, 300), "{counts:?}");
    assert_eq!(counts["TraceAfter"], (300, 0), "{counts:?}");

    // JSON for scripts.
    let out = app.trace(&["--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["active"], false);
    assert_eq!(v["by_agent"], false);
    app.finish();
}

#[test]
fn agent_trace_started_by_the_agent_ends_with_heapscope_stop() {
    let mut app = App::start(&[]);
    assert_eq!(app.trace(&["on"]).status.code(), Some(0));
    assert_eq!(app.ask("probe"), "tracing true");
    app.send("agent_stop");
    assert_eq!(app.ask("probe"), "tracing false");
    app.finish();
}

#[test]
fn agent_trace_leaves_the_apps_own_tracing_alone() {
    let mut app = App::start(&[]);
    app.send("app_start");
    let out = app.trace(&[]);
    assert_eq!(
        text(&out.stdout).trim(),
        format!(
            "{}: allocation tracing on (started by the app, not by heapscope)",
            app.pid()
        )
    );
    let out = app.trace(&["on"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("already on, started by the app"),
        "{}",
        text(&out.stderr)
    );
    // `off` cannot stop the app's tracing: it says so, exit 1.
    let out = app.trace(&["off"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("started by the app, not by heapscope; heapscope leaves it on"),
        "{}",
        text(&out.stderr)
    );
    app.send("TraceApp");
    let (dump, _) = app.dump();
    assert_eq!(traced_by_class(&dump)["TraceApp"], (300, 300));

    // Both on, heapscope stops its own: the app's tracing goes on.
    app.send("app_stop");
    assert_eq!(app.trace(&["on"]).status.code(), Some(0));
    app.send("app_start");
    let out = app.trace(&["off"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("the app traces allocations too: still on"),
        "{}",
        text(&out.stderr)
    );
    app.send("app_stop");
    let out = app.trace(&[]);
    assert!(text(&out.stdout).ends_with("allocation tracing off\n"));
    app.finish();
}

#[test]
fn agent_trace_off_stops_trace_allocations_from_heapscope_run() {
    let mut app = App::start(&["--trace-allocations"]);
    let state = app.announcement();
    assert_eq!(state["trace"]["active"], true, "{state}");
    assert_eq!(state["trace"]["by_agent"], true, "{state}");
    let out = app.trace(&["off"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    app.send("TraceAfter");
    let (dump, _) = app.dump();
    assert_eq!(traced_by_class(&dump)["TraceAfter"], (300, 0));
    app.finish();
}

#[test]
fn agent_trace_uses_whichever_dump_signal_the_agent_announces() {
    // A classic signal: sigqueue carries the value just the same.
    let mut app = App::start(&["--dump-signal", "USR2"]);
    let out = app.trace(&["on"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    app.send("TraceDuring");
    // A plain kill of that signal is still a dump.
    let (dump, _) = app.dump();
    assert_eq!(traced_by_class(&dump)["TraceDuring"], (300, 300));
    app.finish();

    let app = App::start(&["--dump-signal", "off"]);
    let out = app.trace(&["on"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("dump signal turned off (HEAPSCOPE_DUMP_SIGNAL=off)"),
        "{err}"
    );
    assert_eq!(app.announcement()["trace"]["seq"], 0);
    app.finish();
}

#[test]
fn agent_trace_refuses_processes_without_an_agent_and_bad_arguments() {
    let runtime = tempfile::tempdir().unwrap();
    let mut sleeper = Command::new("sleep");
    sleeper.arg("60");
    let sleeper = Proc::spawn(sleeper);
    let pid = sleeper.pid.to_string();
    let run = runtime.path().join("run");
    for args in [vec!["trace", &pid, "on"], vec!["trace", &pid]] {
        let out = heapscope_in(&run, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains("has no heapscope agent"), "{err}");
    }

    // A forged announcement for the sleeper (the right start time, a private
    // file): the sleeper does not handle the signal, so none is sent.
    std::fs::create_dir(&run).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    let start = heapscope_agent::secure::proc_start_time(sleeper.pid);
    let forged = heapscope_agent::state::Announcement {
        state: heapscope_agent::state::AgentState {
            pid: sleeper.pid,
            version: "0".into(),
            started_at: 0.0,
            dump_signal: Some(41),
            dump_dir: "/nonexistent".into(),
            stats_path: None,
            profile_path: None,
            last_dump: None,
            trace: Some(heapscope_agent::state::TraceState {
                seq: 0,
                active: false,
                by_agent: false,
                since: None,
                message: None,
            }),
        },
        start_time: start,
    };
    forged.write(&run).unwrap();
    let out = heapscope_in(&run, &["trace", &pid, "on"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("does not handle SIGRTMIN+7")
            || text(&out.stderr).contains("does not handle RTMIN+7"),
        "{}",
        text(&out.stderr)
    );

    let mut sleeper = sleeper;
    assert!(sleeper.exited().is_none(), "the sleeper was signalled");

    for (args, why) in [
        (vec!["trace", &pid, "maybe"], "invalid value 'maybe'"),
        (vec!["trace", "abc", "on"], "invalid value 'abc'"),
        (vec!["trace"], "<PID>"),
        (vec!["trace", &pid, "on", "off"], "unexpected argument"),
    ] {
        let out = heapscope_in(&run, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(why),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// Another user cannot switch tracing in our app: their `heapscope trace`
/// refuses our runtime directory and sends nothing.
#[test]
fn agent_trace_by_another_user_is_refused() {
    if heapscope_agent::secure::euid() != 0 {
        eprintln!("skipping: the tests do not run as root");
        return;
    }
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id")
            .args([flag, "heapscope-other"])
            .output()
            .ok()?;
        text(&out.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        let _ = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", "heapscope-other"])
            .stderr(Stdio::null())
            .status();
    }
    let (Some(uid), Some(gid)) = (id("-u"), id("-g")) else {
        eprintln!("skipping: no second user");
        return;
    };
    let app = App::start(&[]);
    // The binary must be reachable by that user; skip when it is not.
    let probe = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "--",
        ])
        .arg(env!("CARGO_BIN_EXE_heapscope"))
        .arg("--version")
        .output()
        .unwrap();
    if !probe.status.success() {
        eprintln!("skipping: heapscope-other cannot run the binary");
        app.finish();
        return;
    }
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "--",
        ])
        .arg(env!("CARGO_BIN_EXE_heapscope"))
        .args(["trace", &app.pid(), "on", "--runtime-dir"])
        .arg(app.run_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("refusing the runtime directory"), "{err}");
    assert!(err.contains("no signal sent"), "{err}");
    // Nothing changed: no request reached the agent.
    let state = app.announcement();
    assert_eq!(state["trace"]["seq"], 0, "{state}");
    assert_eq!(state["trace"]["active"], false, "{state}");
    app.finish();
}
