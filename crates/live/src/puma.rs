//! Starting a Rack app with Puma on a free loopback port, waiting until it accepts connections,
//! and stopping it (SIGTERM, then SIGKILL after a timeout).
//!
//! Puma runs in a process group of its own, so a Ctrl-C in the terminal reaches only heapscope,
//! which then stops Puma itself once its last samples are taken. Its stdout and stderr go to a
//! log file, whose end is shown when it fails to start.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How to start Puma.
#[derive(Debug, Clone)]
pub struct PumaOptions {
    /// The rackup file (`config.ru`); Puma runs in its directory.
    pub rackup: PathBuf,
    /// Threads per process (`-t T:T`).
    pub threads: usize,
    /// Cluster workers (`-w N`); 0 runs Puma in single mode.
    pub workers: usize,
    /// The port; `None` picks a free one.
    pub port: Option<u16>,
    /// Where Puma's stdout and stderr go.
    pub log: PathBuf,
    /// A command put in front of `puma` (e.g. `heapscope run --`).
    pub wrapper: Vec<OsString>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// How long Puma may take to accept connections.
    pub boot_timeout: Duration,
}

/// A running Puma, stopped when dropped.
pub struct Puma {
    child: Option<Child>,
    pub pid: u32,
    pub port: u16,
    pub log: PathBuf,
}

/// A port nothing listens on now (bound and released: another process could take it before
/// Puma does, which Puma then reports and the caller can retry).
pub fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

impl Puma {
    /// Starts Puma and waits until its port accepts connections.
    pub fn start(o: &PumaOptions) -> Result<Puma, String> {
        let rackup = std::fs::canonicalize(&o.rackup)
            .map_err(|e| format!("cannot read {}: {e}", o.rackup.display()))?;
        let dir = rackup.parent().unwrap_or(Path::new("/")).to_path_buf();
        let port = match o.port {
            Some(p) => p,
            None => free_port().map_err(|e| format!("cannot find a free port: {e}"))?,
        };
        let mut args: Vec<OsString> = o.wrapper.clone();
        args.push("puma".into());
        args.extend(
            [
                "-b".to_string(),
                format!("tcp://127.0.0.1:{port}"),
                "-t".into(),
                format!("{0}:{0}", o.threads.max(1)),
            ]
            .map(OsString::from),
        );
        if o.workers > 0 {
            args.extend(["-w".into(), o.workers.to_string().into()]);
        }
        args.push(rackup.clone().into_os_string());
        if let Some(d) = o.log.parent() {
            std::fs::create_dir_all(d)
                .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        }
        let log = crate::outfile::create_streaming(&o.log, b"")
            .map_err(|e| format!("cannot create {}: {e}", o.log.display()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("cannot write {}: {e}", o.log.display()))?;
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        for (k, v) in &o.env {
            cmd.env(k, v);
        }
        let shown = args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start `{shown}`: {e} (is Puma installed?)"))?;
        let mut puma = Puma {
            pid: child.id(),
            child: Some(child),
            port,
            log: o.log.clone(),
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + o.boot_timeout;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(puma);
            }
            if let Some(status) = puma.try_wait() {
                return Err(format!(
                    "Puma exited ({status}) before accepting connections on port {port}. \
                     `{shown}` in {} said:\n{}",
                    dir.display(),
                    puma.log_tail()
                ));
            }
            if Instant::now() >= deadline {
                puma.stop(Duration::from_secs(5));
                return Err(format!(
                    "Puma did not accept connections on port {port} within {:.0} s. \
                     `{shown}` in {} said:\n{}",
                    o.boot_timeout.as_secs_f64(),
                    dir.display(),
                    puma.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The last lines of Puma's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(30);
        let tail = lines[from..].join("\n");
        if tail.trim().is_empty() {
            "(nothing)".into()
        } else {
            tail
        }
    }

    /// SIGTERM, then SIGKILL to its whole process group after `timeout`; also ends any process of
    /// the group left behind (orphaned workers). Returns Puma's exit status, if it was reaped.
    pub fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pgid = self.pid as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pgid, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        let mut status = None;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of the group (Puma itself after the timeout, or orphans) gets a
        // moment, then SIGKILL.
        let group_alive = || unsafe { libc::kill(-pgid, 0) } == 0;
        let grace = Instant::now() + Duration::from_secs(2);
        while status.is_some() && group_alive() && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(20));
        }
        if group_alive() {
            // SAFETY: as above.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        if status.is_none() {
            status = child.wait().ok();
        }
        status
    }
}

impl Drop for Puma {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}
