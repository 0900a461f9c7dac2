//! `heapscope run` and `heapscope dump` where no agent is involved: settings
//! refused before the program starts, clear errors for processes without an
//! agent, and the help texts.

mod common;

use common::heapscope;

#[test]
fn run_refuses_bad_settings_before_starting_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let script = format!("File.write({:?}, 'x')", marker.to_str().unwrap());
    let r = heapscope(&[
        "run",
        "--sample-rate",
        "1.5",
        "--dump-signal",
        "KILL",
        "--stats-interval",
        "-1",
        "--",
        "ruby",
        "-e",
        &script,
    ]);
    r.usage_error();
    for expected in [
        "--sample-rate: \"1.5\" is not a sample rate",
        "--dump-signal: \"KILL\"",
        "--stats-interval: \"-1\" is not a number of seconds",
    ] {
        assert!(
            r.stderr.contains(expected),
            "{expected:?} in:\n{}",
            r.stderr
        );
    }
    assert!(!marker.exists(), "the program must not start");
}

#[test]
fn run_warns_about_unknown_heapscope_variables_and_runs() {
    let runtime = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args([
            "run",
            "--no-profile",
            "--no-stats",
            "--",
            "ruby",
            "-e",
            "print :ran",
        ])
        .env("HEAPSCOPE_SAMPEL_RATE", "0.1")
        .env("HEAPSCOPE_RUBY_LIB", common::agent::ruby_lib())
        .env("HEAPSCOPE_RUNTIME_DIR", runtime.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran");
    // Once, by `heapscope run`: the agent in the exec'd Ruby (same process)
    // does not repeat it.
    let warning = "heapscope: warning: HEAPSCOPE_SAMPEL_RATE: not a heapscope setting, ignored; \
                   did you mean HEAPSCOPE_SAMPLE_RATE?";
    assert_eq!(err.matches(warning).count(), 1, "{err}");
    assert_eq!(err.matches("HEAPSCOPE_SAMPEL_RATE").count(), 1, "{err}");
}

#[test]
fn autostart_warns_once_per_process_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = common::agent::base_env(dir.path());
    env.push(("HEAPSCOPE_DUMP_EVRY_SECONDS", "5".into()));
    env.push(("HEAPSCOPE_NOTHING_LIKE_IT", "1".into()));
    let lib = common::agent::ruby_lib();
    // RUBYOPT makes the exec'd Ruby (same process) load the agent again, as
    // `bundle exec` does; a spawned Ruby is another process and warns again.
    env.push((
        "RUBYOPT",
        format!("-I{} -rheapscope/autostart", lib.display()),
    ));
    let program = "Heapscope.start rescue nil; \
                   system('ruby', '-e', 'print :spawned'); \
                   exec('ruby', '-e', 'print :execed')";
    let out = common::agent::autostart_ruby(dir.path(), program, &env)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "spawnedexeced",
        "{err}"
    );
    let typo = "heapscope: warning: HEAPSCOPE_DUMP_EVRY_SECONDS: not a heapscope setting, \
                ignored; did you mean HEAPSCOPE_DUMP_EVERY_SECONDS?";
    // The first process (autostart, Heapscope.start, the exec'd Ruby) once;
    // the spawned Ruby once.
    assert_eq!(err.matches(typo).count(), 2, "{err}");
    assert_eq!(
        err.matches("HEAPSCOPE_NOTHING_LIKE_IT: not a heapscope setting, ignored (known: ")
            .count(),
        2,
        "{err}"
    );
}

#[test]
fn run_says_where_it_looked_for_the_agent() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args(["run", "--", "ruby", "-e", "1"])
        .env("HEAPSCOPE_RUBY_LIB", "/nonexistent/heapscope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HEAPSCOPE_RUBY_LIB=/nonexistent/heapscope"),
        "{err}"
    );
}

/// heapscope's own failures exit 2 (the docs promise 0/1/2 from heapscope
/// itself; any other status is the program's).
#[test]
fn run_reports_a_missing_program() {
    let lib = common::agent::ruby_lib();
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("script.rb");
    std::fs::write(&not_executable, "puts 1\n").unwrap();
    for (program, why) in [
        ("/nonexistent/program", "no such program"),
        ("/nonexistent", "no such program"),
        (not_executable.to_str().unwrap(), "not executable"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_heapscope"))
            .args(["run", "--", program])
            .env("HEAPSCOPE_RUBY_LIB", &lib)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{program}: {err}");
        assert!(err.contains(&format!("cannot run {program}")), "{err}");
        assert!(err.contains(why), "{err}");
    }
}

#[test]
fn dump_explains_a_process_without_an_agent() {
    let dir = tempfile::tempdir().unwrap();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = sleeper.id().to_string();
    let rt = dir.path().to_str().unwrap();
    let r = heapscope(&["dump", &pid, "--runtime-dir", rt]);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    r.usage_error();
    assert!(r.stderr.contains("has no heapscope agent"), "{}", r.stderr);
    assert!(r.stderr.contains("heapscope run"), "{}", r.stderr);

    // A dead process: its pid has been reaped above.
    let r = heapscope(&["dump", &pid, "--runtime-dir", rt]);
    r.usage_error();
    assert!(r.stderr.contains("no process"), "{}", r.stderr);
}

#[test]
fn dump_refuses_a_stale_announcement() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let state = heapscope_agent::state::AgentState {
        pid,
        version: "0".into(),
        started_at: 0.0,
        dump_signal: Some(41),
        dump_dir: dir.path().to_path_buf(),
        stats_path: None,
        profile_path: None,
        last_dump: None,
        trace: None,
    };
    let path = state.write(dir.path()).unwrap();
    let r = heapscope(&[
        "dump",
        &pid.to_string(),
        "--runtime-dir",
        dir.path().to_str().unwrap(),
    ]);
    r.usage_error();
    assert!(r.stderr.contains("no process"), "{}", r.stderr);
    // The stale announcement (the caller's own) is removed.
    assert!(!path.exists());
}

#[test]
fn every_command_has_examples_in_its_help() {
    for cmd in [
        "summary",
        "diff",
        "retained",
        "path",
        "inspect",
        "suspects",
        "leaks",
        "flamegraph",
        "pprof",
        "run",
        "dump",
        "watch",
        "plot",
        "trend",
        "bench",
        "require-mem",
    ] {
        let r = heapscope(&[cmd, "--help"]);
        r.ok();
        assert!(
            r.stdout_text().contains("Examples:"),
            "`heapscope {cmd} --help` has no examples:\n{}",
            r.stdout_text()
        );
    }
}

#[test]
fn the_agent_guide_documents_every_option() {
    let guide = std::fs::read_to_string(common::repo_root().join("docs/agent.md")).unwrap();
    for o in heapscope_agent::config::OPTIONS {
        let row = format!("| `{}` | `--{}` / `{}` | ", o.env_name(), o.flag(), o.key);
        assert!(guide.contains(&row), "docs/agent.md has no row {row:?}");
    }
}

/// After an install (`scripts/install PREFIX`: PREFIX/bin/heapscope and
/// PREFIX/share/heapscope/ruby/lib), `heapscope run` finds the agent from any
/// directory, with no variable pointing at it.
#[test]
fn run_finds_an_installed_agent_beside_its_binary() {
    let prefix = tempfile::tempdir().unwrap();
    let bin = prefix.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_heapscope"), bin.join("heapscope")).unwrap();
    let share = prefix.path().join("share/heapscope/ruby");
    std::fs::create_dir_all(&share).unwrap();
    copy_dir(&common::agent::ruby_lib(), &share.join("lib"));
    let elsewhere = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(bin.join("heapscope"));
    cmd.current_dir(elsewhere.path())
        .args(["run", "--no-profile", "--no-stats", "--"])
        .args(["ruby", "-e", "print Heapscope.running?"])
        .env("HEAPSCOPE_RUNTIME_DIR", elsewhere.path().join("run"))
        .env("HOME", elsewhere.path())
        .env_remove("HEAPSCOPE_RUBY_LIB")
        .env_remove("RUBYLIB")
        .env_remove("XDG_DATA_HOME");
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "true", "{err}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// `gem build heapscope.gemspec` and `gem install` (which compiles the
/// extension with cargo) give a gem that `require "heapscope"` loads and that
/// `heapscope run` finds with no library directory at all.
#[test]
fn the_gem_builds_installs_and_runs() {
    let root = common::repo_root();
    let work = tempfile::tempdir().unwrap();
    let build = std::process::Command::new("gem")
        .current_dir(&root)
        .args(["build", "heapscope.gemspec", "--output"])
        .arg(work.path().join("heapscope.gem"))
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "gem build: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let gems = work.path().join("gems");
    // Its own target directory: release builds of the extension, kept
    // between runs, and no wait on the test build's lock.
    let target = common::agent::target_dir()
        .parent()
        .unwrap()
        .join("gem-test");
    let install = std::process::Command::new("gem")
        .args(["install", "--local", "--no-document", "--install-dir"])
        .arg(&gems)
        .arg(work.path().join("heapscope.gem"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        install.status.success(),
        "gem install: {}\n{}",
        String::from_utf8_lossy(&install.stdout),
        String::from_utf8_lossy(&install.stderr)
    );
    // A copy of the binary away from the checkout, so that nothing but the
    // gem can provide the agent.
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_heapscope"), bin.join("heapscope")).unwrap();
    let out = std::process::Command::new(bin.join("heapscope"))
        .current_dir(work.path())
        .args(["run", "--no-profile", "--no-stats", "--"])
        .args([
            "ruby",
            "-e",
            "print Heapscope::VERSION, ' ', Heapscope.running?",
        ])
        .env("GEM_PATH", &gems)
        .env("HOME", work.path())
        .env("HEAPSCOPE_RUNTIME_DIR", work.path().join("run"))
        .env_remove("HEAPSCOPE_RUBY_LIB")
        .env_remove("RUBYLIB")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{} true", env!("CARGO_PKG_VERSION")),
        "{err}"
    );
}
