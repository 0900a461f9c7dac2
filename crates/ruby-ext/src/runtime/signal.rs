//! The dump signal and the self-pipe.
//!
//! The handler installed with `sigaction` does one async-signal-safe thing:
//! it writes one byte to the non-blocking write end of a pipe (and restores
//! `errno`): `s` (a dump) for a plain `kill`, or the byte of a
//! [`TraceRequest`] when the signal was queued with its value
//! (`heapscope trace`). The agent's Ruby thread waits on the read end with
//! `IO.select`; Rack and Sidekiq middleware wake it the same way through
//! [`wake`]. A forked child gets a pipe of its own ([`pipe_open`] again), so
//! a signal to one process never wakes another.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use heapscope_agent::config::TraceRequest;
use magnus::{Error, Ruby};

/// Write end of the current self-pipe (-1: none).
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

/// The installed signal and the action it replaced.
struct Installed {
    signum: i32,
    previous: libc::sigaction,
}

// SAFETY: a sigaction is plain data (a handler address, a mask and flags).
unsafe impl Send for Installed {}

static INSTALLED: Mutex<Option<Installed>> = Mutex::new(None);

extern "C" fn on_signal(
    _signum: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    // Only async-signal-safe calls here: errno access and write(2). No
    // allocation, no locks, no panics.
    unsafe {
        let errno = libc::__errno_location();
        let saved = *errno;
        let fd = WRITE_FD.load(Ordering::Relaxed);
        if fd >= 0 {
            let mut byte = b's';
            if !info.is_null() && (*info).si_code == libc::SI_QUEUE {
                // The value's int member (the low half of the pointer).
                let value = (*info).si_value().sival_ptr as usize as u32;
                if let Some(request) = TraceRequest::from_value(value) {
                    byte = request.byte();
                }
            }
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
        *errno = saved;
    }
}

fn os_error(ruby: &Ruby, what: &str) -> Error {
    Error::new(
        ruby.exception_runtime_error(),
        format!("{what}: {}", std::io::Error::last_os_error()),
    )
}

/// Creates a fresh non-blocking, close-on-exec pipe, makes it the one the
/// handler and [`wake`] write to, closes the previous write end (inherited
/// from the parent after a fork) and returns the read end's descriptor for
/// Ruby to wrap in an IO (which then owns it).
pub fn pipe_open(ruby: &Ruby) -> Result<i32, Error> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(os_error(ruby, "creating the agent's pipe"));
    }
    let old = WRITE_FD.swap(fds[1], Ordering::SeqCst);
    if old >= 0 {
        // SAFETY: this write end was created here and is not used elsewhere.
        unsafe { libc::close(old) };
    }
    Ok(fds[0])
}

/// Writes one byte (a reason code) to the pipe; false when there is no pipe
/// or it is full (the agent thread is already due to wake up).
pub fn wake(byte: u8) -> bool {
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd < 0 {
        return false;
    }
    // SAFETY: writing one byte from a live stack variable.
    unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) == 1 }
}

/// Installs the handler for `signum` (replacing any earlier install by the
/// agent, whose previous action is kept for [`uninstall`]).
pub fn install(ruby: &Ruby, signum: i32) -> Result<(), Error> {
    heapscope_agent::config::check_dump_signal(signum)
        .map_err(|e| Error::new(ruby.exception_arg_error(), e))?;
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(old) = installed.take() {
        restore(&old);
    }
    // SAFETY: a zeroed sigaction is a valid starting point; the fields are
    // then filled as sigaction(2) documents.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal
            as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
            as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART | libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        let mut previous: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(signum, &action, &mut previous) != 0 {
            return Err(os_error(
                ruby,
                &format!(
                    "installing the handler for {}",
                    heapscope_agent::config::signal_name(signum)
                ),
            ));
        }
        *installed = Some(Installed { signum, previous });
    }
    Ok(())
}

fn restore(old: &Installed) {
    // SAFETY: putting back the action sigaction returned earlier.
    unsafe {
        libc::sigaction(old.signum, &old.previous, std::ptr::null_mut());
    }
}

/// Puts back the action the agent replaced; true when one was installed.
pub fn uninstall() -> bool {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    match installed.take() {
        Some(old) => {
            restore(&old);
            true
        }
        None => false,
    }
}

/// Whether the agent's handler is installed (for tests and `Heapscope.stop`).
pub fn installed() -> bool {
    INSTALLED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some()
}

/// In a dump child: asks the kernel to send `signum` when the parent (the
/// forking thread) goes away, so a killed app takes its unfinished dump with
/// it. Returns false when the parent `expected_parent` is already gone.
pub fn set_pdeathsig(expected_parent: i32) -> bool {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number; getppid
    // cannot fail.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
        libc::getppid() == expected_parent
    }
}
