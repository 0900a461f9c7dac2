//! The agent never harms the app it runs in, nor lets another local user
//! use it against the app (issue 10, items 3-9): real Ruby processes, a
//! second user created by the test where one is needed.
//!
//! - files 0600 and directories 0700, whatever the umask;
//! - a runtime directory planted by another user (owned by them, writable by
//!   others, a symlink) is refused, and the app runs without the agent;
//! - `heapscope dump` refuses forged announcements (another user's file, a
//!   KILL or SEGV signal, a reused pid, a process without a handler) and the
//!   target survives;
//! - hundreds of forked children ending in `exit!` leave no announcements,
//!   and short-lived children write no files of their own;
//! - dump requests during shutdown never kill the app;
//! - a start that fails half-way turns everything off again;
//! - `Process.daemon` gives the daemon its own agent.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use heapscope_agent::secure;
use heapscope_agent::state::{AgentState, Announcement};

use common::agent::base_env;
use common::process::{signal, wait_for, Proc};

const SIGRTMIN_7: i32 = 41;

/// `ruby -I lib [-rheapscope/autostart] -e PROGRAM` in `dir`, run through
/// `sh` so the umask can be set; stdout and stderr piped.
fn agent_ruby(dir: &Path, umask: &str, program: &str, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.current_dir(dir)
        .arg("-c")
        .arg(format!(
            "umask {umask}; exec ruby -I \"$0\" -rheapscope/autostart -e \"$1\""
        ))
        .arg(common::agent::ruby_lib())
        .arg(program)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("HEAPSCOPE_") || k == "RUBYOPT" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every path under `root` (not `root` itself), depth first.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        out.push(p.clone());
        if meta.is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

fn heapscope_dump(pid: u32, runtime_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args(["dump", &pid.to_string(), "--timeout", "60", "--quiet"])
        .arg("--runtime-dir")
        .arg(runtime_dir)
        .output()
        .unwrap()
}

/// The second user `heapscope-other` (created when missing), as (uid, gid);
/// None when the tests do not run as root.
fn other_user() -> Option<(u32, u32)> {
    if secure::euid() != 0 {
        eprintln!("skipping the other-user scenario: the tests do not run as root");
        return None;
    }
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id")
            .args([flag, "heapscope-other"])
            .output()
            .ok()?;
        text(&out.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        // Tests run in parallel: another may be creating it too.
        let _ = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", "heapscope-other"])
            .stderr(Stdio::null())
            .status();
    }
    Some((id("-u").expect("useradd heapscope-other"), id("-g")?))
}

/// Runs `args` as the other user.
fn as_other(user: (u32, u32), args: &[&str]) {
    let status = Command::new("setpriv")
        .args([
            &format!("--reuid={}", user.0),
            &format!("--regid={}", user.1),
            "--clear-groups",
            "--",
        ])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "as heapscope-other: {args:?}");
}

/// A scratch directory shared like /tmp (tempfile's are 0700): anyone may
/// create entries, only their owner may remove them.
fn shared_scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

fn sig_caught_program_line() -> &'static str {
    r#"caught = File.read("/proc/self/status")[/^SigCgt:\s*(\h+)/, 1].to_i(16)[40] == 1"#
}

#[test]
fn every_file_and_directory_the_agent_creates_is_private() {
    for umask in ["000", "022", "027"] {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir(&app).unwrap();
        let env = vec![
            (
                "HEAPSCOPE_RUNTIME_DIR",
                app.join("run/a/b").display().to_string(),
            ),
            ("HEAPSCOPE_STATS_INTERVAL", "0.1".to_string()),
            ("HEAPSCOPE_PROFILE_INTERVAL", "0.2".to_string()),
            ("HEAPSCOPE_CHILD_MIN_LIFETIME", "0".to_string()),
        ];
        // Defaults otherwise: tmp/profiles (stats, profiles), tmp/heapscope
        // (dumps), all created by the agent. A forked child writes its own.
        let program = r#"
$keep = Array.new(20_000) { |i| "secret #{i}" }
puts Heapscope.dump(timeout: 60)
pid = fork { sleep 0.5; Heapscope.dump(timeout: 60) }
Process.wait(pid)
raise "child failed" unless $?.success?
sleep 0.5
run = ENV["HEAPSCOPE_RUNTIME_DIR"]
puts format("%o %o", File.stat(run).mode & 0o7777,
            File.stat(File.join(run, "agent-#{Process.pid}.json")).mode & 0o7777)
"#;
        let out = Proc::spawn(agent_ruby(&app, umask, program, &env)).wait(Duration::from_secs(90));
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "umask {umask}: {}", text(&out.stderr));
        // The announcement (removed at exit) and its directory.
        assert!(stdout.ends_with("\n700 600\n"), "umask {umask}: {stdout}");
        let paths = walk(&app);
        let mut kinds = (0, 0);
        for p in &paths {
            let meta = std::fs::symlink_metadata(p).unwrap();
            let mode = meta.mode() & 0o7777;
            if meta.is_dir() {
                kinds.0 += 1;
                assert_eq!(mode, 0o700, "umask {umask}: {} is {mode:o}", p.display());
            } else {
                kinds.1 += 1;
                assert!(meta.is_file(), "{}", p.display());
                assert_eq!(mode, 0o600, "umask {umask}: {} is {mode:o}", p.display());
            }
        }
        let names: Vec<String> = paths
            .iter()
            .map(|p| p.strip_prefix(&app).unwrap().display().to_string())
            .collect();
        // tmp, tmp/profiles, tmp/heapscope, run, run/a, run/a/b.
        assert_eq!(kinds.0, 6, "{names:?}");
        for want in [
            "tmp/heapscope/heap-",
            "tmp/profiles/gc-",
            "tmp/profiles/mem-",
        ] {
            assert!(
                names.iter().any(|n| n.starts_with(want)),
                "no {want}* in {names:?}"
            );
        }
        // Two processes' dumps and statistics.
        assert_eq!(
            names.iter().filter(|n| n.ends_with(".dump")).count(),
            2,
            "{names:?}"
        );
        assert_eq!(
            names.iter().filter(|n| n.ends_with(".jsonl")).count(),
            2,
            "{names:?}"
        );
    }
}

#[test]
fn a_runtime_directory_planted_by_another_user_is_refused() {
    let Some(other) = other_user() else { return };
    let scratch = shared_scratch();
    let s = scratch.path();
    let program = format!(
        r#"{}
$keep = Array.new(1000) {{ |i| "x#{{i}}" }}
puts "app ran, agent #{{Heapscope.running?}}, threads #{{Thread.list.size}}, handler #{{caught}}""#,
        sig_caught_program_line()
    );
    // A victim file the agent must never write through.
    let victim = s.join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();

    // 1. Another user's directory, open to all, with links planted in it.
    let theirs = s.join("theirs");
    as_other(other, &["mkdir", "-m", "0777", theirs.to_str().unwrap()]);
    for name in ["agent-1.json", ".agent-1.json.1.tmp", "x"] {
        as_other(
            other,
            &[
                "ln",
                "-s",
                victim.to_str().unwrap(),
                theirs.join(name).to_str().unwrap(),
            ],
        );
    }
    // 2. A symlink at the default path (TMPDIR/heapscope-<uid>), planted by
    //    the other user, pointing at a directory of the victim's.
    let tmpdir = s.join("tmpdir");
    as_other(other, &["mkdir", "-m", "0777", tmpdir.to_str().unwrap()]);
    let victim_dir = s.join("victim-dir");
    std::fs::create_dir(&victim_dir).unwrap();
    std::fs::set_permissions(&victim_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    as_other(
        other,
        &[
            "ln",
            "-s",
            victim_dir.to_str().unwrap(),
            tmpdir
                .join(format!("heapscope-{}", secure::euid()))
                .to_str()
                .unwrap(),
        ],
    );
    // 3. The user's own directory, but writable by everyone.
    let open = s.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();

    for (case, runtime, why) in [
        ("another user's", Some(&theirs), "belongs to uid"),
        ("a planted symlink", None, "is a symlink"),
        ("a world-writable", Some(&open), "writable by other users"),
    ] {
        let app = tempfile::tempdir().unwrap();
        let mut env = base_env(app.path());
        env.retain(|(k, _)| *k != "HEAPSCOPE_RUNTIME_DIR");
        let mut cmd = agent_ruby(app.path(), "022", &program, &env);
        match runtime {
            Some(d) => {
                cmd.env("HEAPSCOPE_RUNTIME_DIR", d);
            }
            None => {
                cmd.env("TMPDIR", &tmpdir).env_remove("XDG_RUNTIME_DIR");
            }
        }
        let out = Proc::spawn(cmd).wait(Duration::from_secs(60));
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{case}: {stderr}");
        assert_eq!(
            text(&out.stdout),
            "app ran, agent false, threads 1, handler false\n",
            "{case}: {stderr}"
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{case}: {stderr}");
        assert!(lines[0].starts_with("heapscope: "), "{case}: {stderr}");
        assert!(lines[0].contains(why), "{case}: {stderr}");
        assert!(lines[0].ends_with("the agent is off"), "{case}: {stderr}");
        // Nothing was written anywhere: not in the app, not through links.
        assert!(
            common::file_names(app.path()).is_empty(),
            "{case}: {:?}",
            common::file_names(app.path())
        );
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(common::file_names(&victim_dir).is_empty());
    assert_eq!(
        common::file_names(&theirs),
        vec![".agent-1.json.1.tmp", "agent-1.json", "x"]
    );
    assert_eq!(common::file_names(&open), Vec::<String>::new());
}

/// An announcement for `pid` as the agent writes it, with these fields.
fn announcement(pid: u32, signal: i32, start_time: Option<u64>) -> Announcement {
    Announcement {
        state: AgentState {
            pid,
            version: "0".into(),
            started_at: 0.0,
            dump_signal: Some(signal),
            dump_dir: "/nonexistent".into(),
            stats_path: None,
            profile_path: None,
            last_dump: None,
            trace: None,
        },
        start_time,
    }
}

fn sleeper() -> Proc {
    let mut cmd = Command::new("sleep");
    cmd.arg("120");
    Proc::spawn(cmd)
}

fn assert_refused(out: &Output, why: &str, case: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
    assert!(out.stdout.is_empty(), "{case}");
    assert!(stderr.contains(why), "{case}: {why:?} not in {stderr}");
}

#[test]
fn dump_refuses_forged_announcements_and_the_target_survives() {
    let mut target = sleeper();
    let pid = target.pid;
    let start = secure::proc_start_time(pid).unwrap();
    let forged = serde_json::to_vec(&announcement(pid, 9, Some(start))).unwrap();

    if let Some(other) = other_user() {
        // 1. The other user's own directory and file, naming SIGKILL.
        let scratch = shared_scratch();
        let theirs = scratch.path().join("theirs");
        as_other(other, &["mkdir", "-m", "0700", theirs.to_str().unwrap()]);
        let file = scratch.path().join("forged.json");
        std::fs::write(&file, &forged).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        as_other(
            other,
            &[
                "cp",
                file.to_str().unwrap(),
                theirs.join(format!("agent-{pid}.json")).to_str().unwrap(),
            ],
        );
        assert_refused(
            &heapscope_dump(pid, &theirs),
            "refusing the runtime directory",
            "another user's directory",
        );
        // 2. The user's directory, but the other user's file in it.
        let mine = tempfile::tempdir().unwrap();
        let path = mine.path().join(format!("agent-{pid}.json"));
        std::fs::write(&path, &forged).unwrap();
        std::os::unix::fs::chown(&path, Some(other.0), Some(other.1)).unwrap();
        assert_refused(
            &heapscope_dump(pid, mine.path()),
            &format!("belongs to uid {}", other.0),
            "another user's file",
        );
        assert!(path.exists(), "another user's file is left alone");
    }

    // 3. The user's own files naming signals that are never allowed.
    for (sig, why) in [
        (9, "KILL cannot be caught"),
        (15, "TERM stops the app"),
        (11, "cannot be the dump signal"),
        (6, "cannot be the dump signal"),
    ] {
        let mine = tempfile::tempdir().unwrap();
        announcement(pid, sig, Some(start))
            .write(mine.path())
            .unwrap();
        assert_refused(
            &heapscope_dump(pid, mine.path()),
            why,
            &format!("signal {sig}"),
        );
    }
    // 4. An allowed signal the process has no handler for.
    let mine = tempfile::tempdir().unwrap();
    announcement(pid, SIGRTMIN_7, Some(start))
        .write(mine.path())
        .unwrap();
    assert_refused(
        &heapscope_dump(pid, mine.path()),
        "does not handle SIGRTMIN+7",
        "no handler",
    );
    // 5. A symlinked announcement.
    let mine = tempfile::tempdir().unwrap();
    let real = announcement(pid, SIGRTMIN_7, Some(start))
        .write(mine.path())
        .unwrap();
    let moved = mine.path().join("elsewhere.json");
    std::fs::rename(&real, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &real).unwrap();
    assert_refused(&heapscope_dump(pid, mine.path()), "refused", "a symlink");

    std::thread::sleep(Duration::from_millis(200));
    assert!(target.exited().is_none(), "the target was killed");
    assert_eq!(secure::proc_start_time(pid), Some(start));
}

#[test]
fn dump_refuses_a_reused_pid_and_removes_the_stale_announcement() {
    let mut target = sleeper();
    let pid = target.pid;
    let start = secure::proc_start_time(pid).unwrap();
    // The announcement of an app that had this pid before: another start.
    let dir = tempfile::tempdir().unwrap();
    let path = announcement(pid, SIGRTMIN_7, Some(start.saturating_sub(100)))
        .write(dir.path())
        .unwrap();
    let out = heapscope_dump(pid, dir.path());
    // `heapscope dump` sweeps stale announcements first, so the file is gone
    // and the process is, rightly, one without an agent.
    assert_refused(&out, "has no heapscope agent", "reused pid");
    assert!(!path.exists(), "the stale announcement is removed");
    // The same check without the sweep: an announcement without a start
    // time (an older agent's) is refused too.
    announcement(pid, SIGRTMIN_7, None)
        .write(dir.path())
        .unwrap();
    assert_refused(
        &heapscope_dump(pid, dir.path()),
        "does not record the process's start time",
        "no start time",
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(target.exited().is_none(), "the sleep was killed");
}

#[test]
fn hundreds_of_short_forks_leave_no_announcements_and_few_files() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut env = base_env(dir.path());
    env.retain(|(k, _)| *k != "HEAPSCOPE_PROFILE" && *k != "HEAPSCOPE_STATS");
    env.push(("HEAPSCOPE_STATS_PATH", "stats/gc-%{pid}.jsonl".into()));
    env.push((
        "HEAPSCOPE_PROFILE_PATH",
        "prof/mem-%{pid}-%{time}.pprof.gz".into(),
    ));
    env.push(("HEAPSCOPE_PROFILE_INTERVAL", "0.2".into()));
    env.push(("HEAPSCOPE_CHILD_MIN_LIFETIME", "0.5".into()));
    // A stale announcement of ours (an app killed with SIGKILL) and one
    // from a reused pid: the agent removes both when it starts.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    announcement(dead_pid, SIGRTMIN_7, Some(1))
        .write(&run)
        .unwrap();
    let me = std::process::id();
    announcement(me, SIGRTMIN_7, Some(1)).write(&run).unwrap();
    // 420 jobs that end with exit! (no at_exit handlers), 60 with exit, 2
    // that live past child_min_lifetime and then exit!.
    let program = r#"
run = ENV["HEAPSCOPE_RUNTIME_DIR"]
puts "stale at start: #{Dir.children(run).size}"
420.times { |i| Process.wait(fork { "job #{i}" * 10; exit!(0) }) }
60.times { |i| Process.wait(fork { "job #{i}" * 10; exit(0) }) }
long = 2.times.map { fork { sleep 1.0; exit!(0) } }
long.each { |pid| Process.wait(pid) }
puts "children #{long.join(' ')}"
puts "announcements before exit: #{Dir.children(run).sort.join(' ')}"
"#;
    let started = Instant::now();
    let out =
        Proc::spawn(agent_ruby(dir.path(), "022", program, &env)).wait(Duration::from_secs(180));
    let secs = started.elapsed().as_secs_f64();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    // Only its own announcement was left at start.
    assert_eq!(lines[0], "stale at start: 1", "{stdout}");
    let long: Vec<u32> = lines[1]
        .strip_prefix("children ")
        .unwrap()
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    // The long-lived children announced themselves and ended with exit!.
    assert!(
        lines[2].contains(&format!("agent-{}.json", long[0])),
        "{stdout}"
    );
    // After the parent exits: no announcement at all.
    assert!(
        common::file_names(&run).is_empty(),
        "{:?}",
        common::file_names(&run)
    );
    // Statistics: the parent's and the two long-lived children's only.
    let stats = common::file_names(&dir.path().join("stats"));
    assert_eq!(stats.len(), 3, "{stats:?}");
    for pid in &long {
        assert!(stats.contains(&format!("gc-{pid}.jsonl")), "{stats:?}");
    }
    // Profiles: none from the 480 short children.
    let parent = parent_pid(&stats, &long);
    let profiles = common::file_names(&dir.path().join("prof"));
    for name in &profiles {
        let pid: u32 = name.split('-').nth(1).unwrap().parse().unwrap();
        assert!(pid == parent || long.contains(&pid), "{profiles:?}");
    }
    eprintln!(
        "482 forks in {secs:.1} s; files: {} stats, {} profiles",
        stats.len(),
        profiles.len()
    );
}

/// The parent's pid: the statistics file that is not a child's.
fn parent_pid(stats: &[String], children: &[u32]) -> u32 {
    stats
        .iter()
        .map(|s| {
            s.trim_start_matches("gc-")
                .trim_end_matches(".jsonl")
                .parse::<u32>()
                .unwrap()
        })
        .find(|p| !children.contains(p))
        .unwrap()
}

#[test]
fn dump_requests_during_shutdown_do_not_kill_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.retain(|(k, _)| *k != "HEAPSCOPE_PROFILE");
    env.push(("HEAPSCOPE_ENABLED", "0".into()));
    env.push((
        "HEAPSCOPE_PROFILE_PATH",
        "prof/mem-%{pid}-%{time}.pprof.gz".into(),
    ));
    env.push(("HEAPSCOPE_PROFILE_INTERVAL", "0".into()));
    env.push(("HEAPSCOPE_DUMP_GC", "0".into()));
    // The app's own at_exit runs after the agent's (registered first, run
    // last): requests there meet an agent whose announcement is gone. The
    // final flush is made slow, so requests also land in the middle of it.
    let program = r#"
at_exit { puts "app at_exit"; $stdout.flush; sleep 0.6 }
Heapscope.start(enabled: true, profile: true)
Heapscope::Agent.prepend(Module.new do
  private def flush_profile
    sleep 0.6
    super
  end
end)
$keep = Array.new(10_000) { |i| "x#{i}" }
puts "exiting"; $stdout.flush
exit 7
"#;
    let mut p = Proc::spawn(agent_ruby(dir.path(), "022", program, &env));
    let mut out = BufReader::new(p.child().stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "exiting");
    let mut sent = 0;
    let started = Instant::now();
    let status = loop {
        if let Some(s) = p.exited() {
            break s;
        }
        if signal(p.pid, &SIGRTMIN_7.to_string()) {
            sent += 1;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no exit");
        std::thread::sleep(Duration::from_millis(3));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.code(),
        Some(7),
        "killed by signal {:?} after {sent} requests",
        status.signal()
    );
    assert!(rest.contains("app at_exit"), "{rest}");
    // Requests throughout 1.2 s of shutdown.
    assert!(sent >= 50, "only {sent} requests were sent");
    // The final profile was written, and the announcement removed.
    assert_eq!(common::file_names(&dir.path().join("prof")).len(), 1);
    assert!(common::file_names(&dir.path().join("run")).is_empty());
    eprintln!(
        "{sent} dump requests during a {:.2} s shutdown",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_failed_start_turns_everything_off_again() {
    let dir = tempfile::tempdir().unwrap();
    // The profile directory cannot be created: its parent is a file.
    std::fs::write(dir.path().join("afile"), "").unwrap();
    let mut env = base_env(dir.path());
    env.retain(|(k, _)| *k != "HEAPSCOPE_PROFILE");
    env.push(("HEAPSCOPE_TRACE_ALLOCATIONS", "1".into()));
    env.push(("HEAPSCOPE_PROFILE", "1".into()));
    env.push((
        "HEAPSCOPE_PROFILE_PATH",
        "afile/prof/mem-%{pid}.pprof.gz".into(),
    ));
    env.push(("HEAPSCOPE_SAMPLE_RATE", "1".into()));
    let program = format!(
        r#"{}
o = Object.new
traced = !ObjectSpace.allocation_sourcefile(o).nil?
puts [Heapscope.running?, Thread.list.size, traced, caught,
      Heapscope::Native.profiler_running?].inspect"#,
        sig_caught_program_line()
    );
    let out =
        Proc::spawn(agent_ruby(dir.path(), "022", &program, &env)).wait(Duration::from_secs(60));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Not running, one thread, no allocation tracing, no handler, no profiler.
    assert_eq!(
        text(&out.stdout),
        "[false, 1, false, false, false]\n",
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("heapscope: could not start the agent"),
        "{stderr}"
    );
    assert!(stderr.trim_end().ends_with("the agent is off"), "{stderr}");
    // No announcement left behind.
    assert!(common::file_names(&dir.path().join("run")).is_empty());

    // And through the API: the error reaches the caller, and the app can
    // start the agent again once the problem is fixed.
    let program = r#"
begin
  Heapscope.start(enabled: true)
rescue StandardError => e
  puts "refused: #{e.class}"
end
puts Heapscope.running?
Heapscope.start(enabled: true, profile_path: "prof/mem-%{pid}.pprof.gz")
puts Heapscope.running?
"#;
    env.push(("HEAPSCOPE_ENABLED", "0".into()));
    let out =
        Proc::spawn(agent_ruby(dir.path(), "022", program, &env)).wait(Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("refused: "), "{stdout}");
    assert_eq!(&lines[1..], ["false", "true"], "{stdout}");
}

/// Kills a pid (not a process group) when dropped: the daemon has left the
/// test's process group.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        signal(self.0, "KILL");
    }
}

#[test]
fn a_daemonised_app_gets_its_own_agent() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut env = base_env(dir.path());
    env.push(("HEAPSCOPE_STATS", "1".into()));
    env.push(("HEAPSCOPE_STATS_PATH", "stats/gc-%{pid}.jsonl".into()));
    let program = r#"
puts "parent #{Process.pid}"; $stdout.flush
Process.daemon(true, true)
$keep = Array.new(10_000) { |i| "daemon #{i}" }
puts "daemon #{Process.pid}"; $stdout.flush
deadline = Time.now + 60
sleep 0.02 until File.exist?("stop") || Time.now > deadline
"#;
    let mut p = Proc::spawn(agent_ruby(dir.path(), "022", program, &env));
    let mut out = BufReader::new(p.child().stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let parent: u32 = line
        .trim()
        .strip_prefix("parent ")
        .unwrap()
        .parse()
        .unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    let daemon: u32 = line
        .trim()
        .strip_prefix("daemon ")
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    let _guard = KillOnDrop(daemon);
    assert_ne!(parent, daemon);
    // The process that called Process.daemon has exited.
    assert!(p.wait_status(Duration::from_secs(10)).success());
    wait_for(Duration::from_secs(10), "the daemon's announcement", || {
        run.join(format!("agent-{daemon}.json"))
            .exists()
            .then_some(())
    });
    assert!(
        !run.join(format!("agent-{parent}.json")).exists(),
        "{:?}",
        common::file_names(&run)
    );
    let out = heapscope_dump(daemon, &run);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dump = PathBuf::from(text(&out.stdout).trim());
    assert!(
        dump.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("heap-{daemon}-")),
        "{}",
        dump.display()
    );
    common::agent::summary_ok(&dump);
    wait_for(Duration::from_secs(10), "the daemon's statistics", || {
        dir.path()
            .join(format!("stats/gc-{daemon}.jsonl"))
            .exists()
            .then_some(())
    });
    std::fs::write(dir.path().join("stop"), "").unwrap();
    wait_for(Duration::from_secs(20), "the daemon to exit", || {
        (!secure::proc_running(daemon)).then_some(())
    });
    assert!(
        common::file_names(&run).is_empty(),
        "{:?}",
        common::file_names(&run)
    );
}
