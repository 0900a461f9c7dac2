//! A real PostgreSQL server for the store tests: Debian's server binaries
//! (/usr/lib/postgresql/*/bin) on a private data directory, listening on
//! 127.0.0.1 on a free port and on a Unix socket in that directory, trusting
//! loopback connections only.
//!
//! initdb and postgres refuse to run as root, so as root they run as the
//! `postgres` system user. The server is tied to the test binary
//! (`process::spawn_tied`, SIGQUIT = immediate shutdown): it stops when the
//! binary exits, even when the `PgServer` sits in a `static` or the binary is
//! killed. A watchdog shell, waiting for end of file on a pipe only this
//! process holds, removes the data directory once the server is gone.
//!
//! Skip rule: without the binaries, `server_or_skip` prints "skipped: ..."
//! and returns None, unless `CI=true` or `HEAPSCOPE_REQUIRE_PG=1`, where a
//! missing server is a failure.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use super::process::spawn_tied;

/// Where the server binaries are (the newest version), and who runs them.
struct Install {
    bin: PathBuf,
    /// uid and gid of `postgres` when we are root; None to run as ourselves.
    user: Option<(u32, u32)>,
}

fn install() -> &'static Result<Install, String> {
    static INSTALL: OnceLock<Result<Install, String>> = OnceLock::new();
    INSTALL.get_or_init(find_install)
}

fn find_install() -> Result<Install, String> {
    let mut dirs: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("no /usr/lib/postgresql ({e}): apt-get install postgresql"))?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| {
            ["initdb", "postgres", "psql"]
                .iter()
                .all(|b| bin.join(b).is_file())
        })
        .collect();
    dirs.sort();
    let (_, bin) = dirs.pop().ok_or_else(|| {
        "no /usr/lib/postgresql/*/bin with initdb, postgres and psql: apt-get install postgresql"
            .to_string()
    })?;
    // SAFETY: getuid has no preconditions.
    let user = if unsafe { libc::getuid() } == 0 {
        let name = CString::new("postgres").unwrap();
        // SAFETY: a valid C string; the result is read before any other call.
        let pw = unsafe { libc::getpwnam(name.as_ptr()) };
        if pw.is_null() {
            return Err(
                "running as root, but there is no `postgres` user to run the server \
                 (initdb and postgres refuse root)"
                    .to_string(),
            );
        }
        // SAFETY: checked non-null above.
        Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
    } else {
        None
    };
    Ok(Install { bin, user })
}

/// True when a server can be started here.
pub fn pg_available() -> bool {
    install().is_ok()
}

/// `CI=true` or `HEAPSCOPE_REQUIRE_PG=1`: a missing server fails the test.
pub fn pg_required() -> bool {
    let on = |k: &str| {
        std::env::var(k)
            .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
            .unwrap_or(false)
    };
    on("CI") || on("HEAPSCOPE_REQUIRE_PG")
}

/// The test binary's shared server, or None after printing why `test` is
/// skipped. Panics instead when the server is required (`pg_required`).
pub fn server_or_skip(test: &str) -> Option<&'static PgServer> {
    match install() {
        Ok(_) => Some(PgServer::shared()),
        Err(why) if pg_required() => {
            panic!("{test}: PostgreSQL is required here (CI=true or HEAPSCOPE_REQUIRE_PG=1): {why}")
        }
        Err(why) => {
            eprintln!("skipped: {test}: no PostgreSQL server: {why}");
            None
        }
    }
}

/// A postgres:// URL on a loopback port nothing listens on (free a moment
/// ago), for the "unreachable server" error paths. Needs no PostgreSQL.
pub fn unreachable_url() -> String {
    format!("postgres://postgres@127.0.0.1:{}/heapscope", free_port())
}

/// A running server; stopped (and its data directory removed) when dropped.
pub struct PgServer {
    port: u16,
    base: PathBuf,
    bin: PathBuf,
    child: Mutex<Option<Child>>,
    /// Closing it (drop, or this process's exit) lets the watchdog clean up.
    watchdog: Mutex<Option<ChildStdin>>,
    /// How long `start` took.
    pub startup: Duration,
    databases: AtomicUsize,
}

impl PgServer {
    /// One server for every test of this binary, started on first use.
    pub fn shared() -> &'static PgServer {
        static SHARED: OnceLock<PgServer> = OnceLock::new();
        SHARED.get_or_init(PgServer::start)
    }

    /// Starts a new server of its own (for a test that stops or breaks it).
    /// Panics when PostgreSQL is missing: check `pg_available` or use
    /// `server_or_skip` first.
    pub fn start() -> PgServer {
        let started = Instant::now();
        let inst = match install() {
            Ok(i) => i,
            Err(why) => panic!("cannot start PostgreSQL: {why}"),
        };
        remove_stale_dirs();
        let base = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(std::env::temp_dir())
            .expect("create a directory for PostgreSQL")
            .keep();
        let watchdog = start_watchdog(&base);
        if let Some((uid, gid)) = inst.user {
            let c = CString::new(base.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid path; the directory was just made by us.
            let rc = unsafe { libc::chown(c.as_ptr(), uid, gid) };
            assert_eq!(
                rc,
                0,
                "chown {}: {}",
                base.display(),
                std::io::Error::last_os_error()
            );
        }
        let data = base.join("data");
        let out = as_server_user(inst, Command::new(inst.bin.join("initdb")))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb -D {} failed ({}):\n{}{}",
            data.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // initdb's pg_hba.conf trusts every local user on the socket and on
        // 127.0.0.1/::1; nothing else is listed, and the server listens on
        // loopback only.
        let mut last_failure = String::new();
        for _ in 0..5 {
            let port = free_port();
            let log = base.join("server.log");
            let log_file = fs::File::create(&log).expect("create the server log");
            let mut cmd = as_server_user(inst, Command::new(inst.bin.join("postgres")));
            cmd.arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
                .arg("-c")
                .arg(format!("unix_socket_directories={}", base.display()))
                // A throwaway server: durability only costs time.
                .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off", "-c", "max_connections=50"])
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                // Its own group: a Ctrl-C meant for cargo does not reach it.
                .process_group(0);
            let mut child = spawn_tied(cmd, libc::SIGQUIT).expect("start postgres");
            match wait_ready(&mut child, &data) {
                Ok(()) => {
                    let server = PgServer {
                        port,
                        base: base.clone(),
                        bin: inst.bin.clone(),
                        child: Mutex::new(Some(child)),
                        watchdog: Mutex::new(Some(watchdog)),
                        startup: started.elapsed(),
                        databases: AtomicUsize::new(0),
                    };
                    eprintln!(
                        "PostgreSQL ({}) on 127.0.0.1:{port}, data in {}, started in {:.2?}",
                        inst.bin.display(),
                        base.display(),
                        server.startup
                    );
                    return server;
                }
                Err(()) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_failure = fs::read_to_string(&log).unwrap_or_default();
                    // Another process took the port between our probe and
                    // the server's bind: try another one.
                    if !last_failure.contains("could not bind") {
                        break;
                    }
                }
            }
        }
        drop(watchdog);
        panic!("PostgreSQL did not start; its log:\n{last_failure}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the Unix socket (`host=` for libpq).
    pub fn socket_dir(&self) -> &Path {
        &self.base
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates an empty database named after `name` (made safe, plus a
    /// number so that tests sharing the server never collide) and returns
    /// its URL.
    pub fn fresh_database(&self, name: &str) -> String {
        let mut clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        if !clean.starts_with(|c: char| c.is_ascii_lowercase()) {
            clean.insert(0, 'd');
        }
        let db = format!("{clean}_{}", self.databases.fetch_add(1, Ordering::Relaxed));
        // FILE_COPY: a copy of template1's files, faster than 15's default
        // of writing it all to the WAL.
        self.psql(
            &self.url("postgres"),
            &format!("CREATE DATABASE \"{db}\" STRATEGY FILE_COPY"),
        );
        self.url(&db)
    }

    /// Runs `sql` with psql against `url`; returns its unaligned, tuples-only
    /// output. Panics when psql fails.
    pub fn psql(&self, url: &str, sql: &str) -> String {
        let out = self
            .psql_command(url)
            .args(["-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {url} -c {sql:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `psql` (this server's version) with quiet, script-friendly options,
    /// connected to `url`.
    pub fn psql_command(&self, url: &str) -> Command {
        let mut cmd = Command::new(self.bin.join("psql"));
        remove_pg_env(&mut cmd);
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url])
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null());
        cmd
    }

    /// The server's main process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap().as_ref().map(|c| c.id())
    }

    /// Immediate shutdown (SIGQUIT, as `pg_ctl stop -m immediate`), then the
    /// data directory goes. Idempotent; `Drop` calls it.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            // SAFETY: signalling our own child, which has not been reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGQUIT) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.watchdog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let _ = fs::remove_dir_all(&self.base);
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

const DIR_PREFIX: &str = "heapscope-pg-";

/// Runs `cmd` as the `postgres` user when we are root.
fn as_server_user(inst: &Install, mut cmd: Command) -> Command {
    if let Some((uid, gid)) = inst.user {
        cmd.uid(uid).gid(gid).env("HOME", "/var/lib/postgresql");
    }
    remove_pg_env(&mut cmd);
    cmd.env("LC_ALL", "C");
    cmd
}

/// A user's PG* variables (PGHOST, PGSSLMODE, ...) would change what psql
/// and the server do.
fn remove_pg_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(k);
        }
    }
}

/// A shell that waits for end of file on its stdin (this process keeps the
/// only writing end; the kernel closes it whatever way we exit), then for
/// the server to be gone, then removes `base`. In its own process group, so
/// a Ctrl-C for the tests does not stop it before it is done.
fn start_watchdog(base: &Path) -> ChildStdin {
    let script = r#"cat >/dev/null
pid=$(head -n1 "$1/data/postmaster.pid" 2>/dev/null)
i=0
while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
rm -rf "$1""#;
    let mut child = Command::new("sh")
        .args(["-c", script, "pg-watchdog"])
        .arg(base)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the PostgreSQL watchdog shell");
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.flush();
    // Not waited for: it outlives us by design; init reaps it.
    std::mem::forget(child);
    stdin
}

/// A port that was free a moment ago (postgres binds it next; `start`
/// retries when another process got there first).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// Waits until postmaster.pid says "ready" (line 8), or the server exits.
fn wait_ready(child: &mut Child, data: &Path) -> Result<(), ()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = fs::read_to_string(data.join("postmaster.pid")) {
            if text.lines().nth(7).is_some_and(|l| l.trim() == "ready") {
                return Ok(());
            }
        }
        if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Data directories of earlier runs whose server is gone and whose watchdog
/// did not finish (the machine went down, say), once they are 10 minutes old.
fn remove_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .map(|t| {
                SystemTime::now().duration_since(t).unwrap_or_default() > Duration::from_secs(600)
            })
            .unwrap_or(false);
        let live = fs::read_to_string(e.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok())
            // SAFETY: signal 0 only checks that the process exists.
            .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
        if old && !live {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}
