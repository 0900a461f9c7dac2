//! Child processes for end-to-end tests: each in its own process group,
//! killed (group and all) when dropped, so a failing test leaves nothing
//! running; bounded waits everywhere.

use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Proc {
    child: Option<Child>,
    pub pid: u32,
    name: String,
}

impl Proc {
    /// Spawns `cmd` as the leader of a new process group.
    pub fn spawn(mut cmd: Command) -> Proc {
        use std::os::unix::process::CommandExt;
        let name = cmd.get_program().to_string_lossy().into_owned();
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {name}: {e}"));
        Proc {
            pid: child.id(),
            child: Some(child),
            name,
        }
    }

    pub fn child(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the process was already waited for")
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// Waits at most `timeout` for it to exit (panics after that).
    pub fn wait_status(&mut self, timeout: Duration) -> ExitStatus {
        wait_for(timeout, &format!("{} to exit", self.name), || self.exited())
    }

    /// Waits for it to exit and collects its output; kills it and panics
    /// with that output after `timeout`.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        while self.exited().is_none() {
            if Instant::now() > deadline {
                kill_group(self.pid);
                let out = self.child.take().unwrap().wait_with_output().unwrap();
                panic!(
                    "{} ({}) did not exit within {timeout:?}; stdout:\n{}\nstderr:\n{}",
                    self.name,
                    self.pid,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        kill_group(self.pid);
        out
    }

    /// Sends `sig` and waits at most `timeout` for it to exit.
    pub fn stop(mut self, sig: &str, timeout: Duration) -> ExitStatus {
        signal(self.pid, sig);
        let status = self.wait_status(timeout);
        self.child = None;
        kill_group(self.pid);
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(self.pid);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// SIGKILL to the whole process group `pgid`.
pub fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// `kill -SIG PID` (`SIG` a name or number); true when it was delivered.
pub fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls `f` every 20 ms until it returns Some, panicking after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Spawns `cmd` so that the kernel sends it `sig` when this test binary exits,
/// however it exits: servers kept in a `static` are never dropped, and a
/// killed binary runs no `Drop` at all. `PR_SET_PDEATHSIG` fires when the
/// *thread* that forked the child ends, so every such child is forked by one
/// thread that lives as long as the process.
pub fn spawn_tied(mut cmd: Command, sig: i32) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    use std::sync::mpsc::{channel, Sender};
    use std::sync::{Mutex, OnceLock};

    type Request = (Command, Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();

    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls between fork and exec. std runs
    // this after its setuid/setgid, which would clear the setting.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::raise(sig);
            }
            Ok(())
        });
    }
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<Request>();
        std::thread::Builder::new()
            .name("tied-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the spawner thread");
        Mutex::new(tx)
    });
    let (tx, rx) = channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx))
        .expect("the spawner thread is gone");
    rx.recv().expect("the spawner thread is gone")
}
