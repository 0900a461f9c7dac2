//! `heapscope run [OPTIONS] -- CMD ARGS...`: starts a Ruby program with the
//! agent loaded and configured, without changing the program.
//!
//! The agent's options come from one table (`heapscope_agent::config`), so
//! every flag here is also a `HEAPSCOPE_*` variable and a `Heapscope.start`
//! keyword. The flags are turned into those variables, the agent's Ruby
//! library is put on `RUBYLIB` and `-rheapscope/autostart` on `RUBYOPT`, and
//! the command replaces this process (`exec`), so its exit status, signals
//! and terminal are the program's own.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode};

use anyhow::{bail, Result};
use clap::{Arg, ArgAction, ArgMatches, Args as ClapArgs, FromArgMatches};
use heapscope_agent::config::{self, Kind, Settings, OPTIONS};

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
Start a Ruby program with the heapscope agent loaded, without changing its code.

With no options the agent:
  * samples 1% of allocations and writes pprof heap profiles to tmp/profiles/ every 60 s and at
    exit (mem-<pid>-<time>.pprof.gz; open them with `go tool pprof`);
  * appends memory and GC statistics every second to tmp/profiles/gc-<pid>.jsonl;
  * writes a heap dump when it receives SIGRTMIN+7: `heapscope dump PID` sends it and prints the
    dump's path. The dump is written by a forked child into tmp/heapscope/, so the app pauses only
    for the fork.
Forked workers (Puma cluster mode, Unicorn, Sidekiq swarm) each get their own files.

Every option is also an environment variable (shown with each option), for apps started by a
process manager: set RUBYOPT=-rheapscope/autostart and HEAPSCOPE_* there instead. A bad setting is
reported before the program starts.

Examples:
    heapscope run -- bundle exec puma -w 2 config.ru
    heapscope run --dump-every-requests 5000 --dump-keep 10 -- bundle exec puma
    heapscope run --sample-rate 1 --profile-interval 0 -- ruby script.rb
    heapscope run --no-profile --no-stats --trace-allocations -- bundle exec sidekiq
    heapscope dump $(pgrep -f puma | head -1)";

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub agent: AgentFlags,

    /// The program and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// The agent's options as flags: `--KEY VALUE`, and for yes/no options
/// `--KEY` and `--no-KEY`. Built from the option table at run time.
#[derive(Debug, Default)]
pub struct AgentFlags {
    /// (option key, value) in the order given.
    pub values: Vec<(&'static str, String)>,
}

fn negated_id(key: &str) -> &'static str {
    // Arg ids must be 'static; there are a fixed, small number of options.
    Box::leak(format!("no_{key}").into_boxed_str())
}

impl ClapArgs for AgentFlags {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        for o in OPTIONS {
            let env = o.env_name();
            let default = if o.default.is_empty() {
                String::new()
            } else {
                format!(", default {}", o.default)
            };
            let help = if o.kind == Kind::Bool {
                format!("{} Off: --no-{}. [{env}{default}]", o.help, o.flag())
            } else {
                format!("{} [{env}{default}]", o.help)
            };
            let flag: &'static str = Box::leak(o.flag().into_boxed_str());
            cmd = match o.kind {
                Kind::Bool => cmd
                    .arg(
                        Arg::new(o.key)
                            .long(flag)
                            .action(ArgAction::SetTrue)
                            .help(help)
                            .help_heading("Agent options"),
                    )
                    .arg(
                        Arg::new(negated_id(o.key))
                            .long(Box::leak(format!("no-{flag}").into_boxed_str()) as &str)
                            .action(ArgAction::SetTrue)
                            .overrides_with(o.key)
                            .hide(true),
                    ),
                _ => cmd.arg(
                    Arg::new(o.key)
                        .long(flag)
                        .value_name(value_name(o.kind))
                        // So `-1` reaches the range check and gets its message.
                        .allow_negative_numbers(true)
                        .action(ArgAction::Set)
                        .help(help)
                        .help_heading("Agent options"),
                ),
            };
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

fn value_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "BOOL",
        Kind::Rate => "RATE",
        Kind::Count => "N",
        Kind::Seconds => "SECONDS",
        Kind::Path => "PATH",
        Kind::Signal => "SIGNAL",
        Kind::Text => "TEXT",
    }
}

impl FromArgMatches for AgentFlags {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = AgentFlags::default();
        flags.update_from_arg_matches(m)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        for o in OPTIONS {
            match o.kind {
                Kind::Bool => {
                    if m.get_flag(o.key) {
                        self.values.push((o.key, "1".into()));
                    } else if m.get_flag(negated_id(o.key)) {
                        self.values.push((o.key, "0".into()));
                    }
                }
                _ => {
                    if let Some(v) = m.get_one::<String>(o.key) {
                        self.values.push((o.key, v.clone()));
                    }
                }
            }
        }
        Ok(())
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    // Check everything the agent will see, so a typo fails here, not in the app.
    let env: Vec<(String, String)> = std::env::vars().collect();
    let warned = match Settings::resolve_from(
        env,
        a.agent.values.iter().map(|(k, v)| (*k, v.clone())),
        |key| format!("--{}", key.replace('_', "-")),
    ) {
        Ok(settings) => {
            for w in &settings.warnings {
                eprintln!("heapscope: warning: {w}");
            }
            !settings.warnings.is_empty()
        }
        Err(errors) => {
            let list: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
            bail!("bad agent settings:\n{}", list.join("\n"));
        }
    };
    let lib = find_ruby_lib()?;
    let mut child = Process::new(&a.command[0]);
    child.args(&a.command[1..]);
    for (key, value) in &a.agent.values {
        let o = config::option(key).expect("flags come from the option table");
        child.env(o.env_name(), value);
    }
    super::run::require_agent(&mut child, lib.as_deref(), "heapscope/autostart");
    // exec keeps this pid: the agent in the program then knows the warnings
    // above were given in its process and does not repeat them.
    if warned {
        child.env(config::WARNED_PID_VARIABLE, std::process::id().to_string());
    }
    exec(child, &a.command[0])
}

/// Replaces this process with the program. When that fails (no such
/// program, not executable), heapscope's own exit status 2 and a message:
/// any other status is the program's own.
#[cfg(unix)]
pub(crate) fn exec(mut child: Process, program: &std::ffi::OsStr) -> Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    // exec only returns on failure.
    let err = child.exec();
    let hint = match err.kind() {
        std::io::ErrorKind::NotFound => " (no such program on PATH or at that path)",
        std::io::ErrorKind::PermissionDenied => " (not executable)",
        _ => "",
    };
    eprintln!(
        "heapscope: error: cannot run {}: {err}{hint}",
        Path::new(program).display()
    );
    Ok(ExitCode::from(2))
}

/// The directory holding `heapscope.rb` and `heapscope/heapscope_native.so`,
/// or None when the agent is installed as a gem (Ruby finds it itself).
pub fn find_ruby_lib() -> Result<Option<PathBuf>> {
    let mut tried = Vec::new();
    if let Some(dir) = std::env::var_os("HEAPSCOPE_RUBY_LIB").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if is_agent_lib(&dir) {
            return Ok(Some(dir));
        }
        bail!(
            "HEAPSCOPE_RUBY_LIB={} has no heapscope.rb and heapscope/heapscope_native.so",
            dir.display()
        );
    }
    for dir in candidate_dirs() {
        if is_agent_lib(&dir) {
            return Ok(Some(dir));
        }
        tried.push(dir);
    }
    if gem_installed() {
        return Ok(None);
    }
    let tried: Vec<String> = tried.iter().map(|d| format!("  {}", d.display())).collect();
    bail!(
        "cannot find the heapscope Ruby agent. Looked in:\n{}\nand for an installed \
         `heapscope` gem. Install it with `scripts/install` (see the README), or set \
         HEAPSCOPE_RUBY_LIB to a directory holding heapscope.rb and \
         heapscope/heapscope_native.so",
        tried.join("\n")
    )
}

fn is_agent_lib(dir: &Path) -> bool {
    dir.join("heapscope.rb").is_file() && dir.join("heapscope/heapscope_native.so").is_file()
}

/// Where installs put the agent, nearest to the running binary first:
/// `PREFIX/share/heapscope/ruby/lib` beside `PREFIX/bin/heapscope`, the
/// user's data directory, and in a source checkout the staged copy beside
/// `target/<profile>/heapscope` (scripts/build-agent).
fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(bin) = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        if let Some(prefix) = bin.parent() {
            dirs.push(prefix.join("share/heapscope/ruby/lib"));
        }
        dirs.push(bin.join("heapscope-ruby/lib"));
    }
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")));
    if let Some(d) = data_home {
        dirs.push(d.join("heapscope/ruby/lib"));
    }
    dirs
}

fn gem_installed() -> bool {
    Process::new("ruby")
        .args([
            "-e",
            "exit(Gem::Specification.find_all_by_name('heapscope').empty? ? 1 : 0)",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Makes `child`'s Ruby load `feature` first (`-r` at the front of RUBYOPT),
/// from the staged agent library `lib` when there is one (at the front of
/// RUBYLIB); what the user had set is kept after it.
pub(crate) fn require_agent(child: &mut Process, lib: Option<&Path>, feature: &str) {
    if let Some(dir) = lib {
        let mut rubylib = dir.as_os_str().to_owned();
        if let Some(old) = std::env::var_os("RUBYLIB").filter(|v| !v.is_empty()) {
            rubylib.push(":");
            rubylib.push(old);
        }
        child.env("RUBYLIB", rubylib);
    }
    let mut rubyopt = OsString::from(format!("-r{feature}"));
    if let Some(old) = std::env::var_os("RUBYOPT").filter(|v| !v.is_empty()) {
        rubyopt.push(" ");
        rubyopt.push(old);
    }
    child.env("RUBYOPT", rubyopt);
}
