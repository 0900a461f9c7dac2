//! The store when things go wrong, and its file modes: an unreachable
//! PostgreSQL, an SQLite path that cannot be created, a file that is not a
//! database and a store from a newer heapscope each get one clear error
//! (exit 2); an import killed with SIGKILL while its transaction is open
//! leaves the store as it was, in SQLite and in PostgreSQL; the default
//! store is created 0600 in a 0700 directory.

mod common;

use std::collections::hash_map::DefaultHasher;
use std::ffi::OsStr;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::pg;
use common::webprograms::leaky_series;
use common::{heapscope, require_ruby, scratch_dir, Run};
use heapscope_store::Store;
use serde_json::{json, Value};
use tempfile::TempDir;

fn import<S: AsRef<OsStr>>(url: &str, args: &[S]) -> Run {
    let mut all: Vec<&OsStr> = vec!["import".as_ref(), "--store".as_ref(), url.as_ref()];
    all.extend(args.iter().map(AsRef::as_ref));
    heapscope(&all)
}

/// Exit 2, one line on stderr that says `what`, no panic.
fn one_clear_error(run: &Run, what: &[&str]) {
    assert_eq!(run.code, Some(2), "{:?}: {}", run.args, run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one line of error, got:\n{}", run.stderr);
    for w in what {
        assert!(
            lines[0].contains(w),
            "the error does not say {w:?}: {}",
            lines[0]
        );
    }
    eprintln!("{}", lines[0]);
}

fn first_dump() -> &'static Path {
    &leaky_series().dumps[0]
}

#[test]
fn unreachable_postgres_is_one_clear_error() {
    let url = pg::unreachable_url();
    let t = Instant::now();
    let run = import(&url, &[first_dump()]);
    one_clear_error(&run, &["PostgreSQL", "127.0.0.1"]);
    assert!(t.elapsed() < Duration::from_secs(20), "{:.2?}", t.elapsed());
    // With a password in the URL, the message leaves it out.
    let with_password = url.replace("postgres@", "postgres:hunter2@");
    let run = import(&with_password, &[first_dump()]);
    one_clear_error(&run, &["PostgreSQL"]);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
}

#[test]
fn unwritable_or_foreign_sqlite_stores_are_one_clear_error() {
    let dir = scratch_dir("heapscope-store-bad-");
    // A path under a regular file (we may run as root, which every mode
    // lets through).
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let under = file.join("sub").join("store.sqlite");
    let run = import(under.to_str().unwrap(), &[first_dump()]);
    one_clear_error(&run, &["cannot open the store", "plain-file"]);
    // A file that is not a database.
    let text = dir.path().join("notes.sqlite");
    std::fs::write(&text, "these are my notes, not a database\n".repeat(200)).unwrap();
    let run = import(text.to_str().unwrap(), &[first_dump()]);
    one_clear_error(&run, &["notes.sqlite", "not a database"]);
    assert_eq!(
        std::fs::read_to_string(&text).unwrap(),
        "these are my notes, not a database\n".repeat(200),
        "the file was changed"
    );
    // A directory as the store.
    let run = import(dir.path().to_str().unwrap(), &[first_dump()]);
    one_clear_error(&run, &["cannot open the store", "is a directory"]);
}

#[test]
fn a_store_from_a_newer_heapscope_is_refused_in_both_databases() {
    let dir = scratch_dir("heapscope-store-newer-");
    let mut urls = vec![dir.path().join("s.sqlite").display().to_string()];
    if let Some(server) = pg::server_or_skip("a_store_from_a_newer_heapscope_is_refused") {
        urls.push(server.fresh_database("newer"));
    }
    for url in &urls {
        import(url, &[first_dump()]).ok();
        let mut s = Store::open(Some(url)).unwrap();
        s.db()
            .exec(
                "UPDATE hs_meta SET value = '99' WHERE key = 'schema_version'",
                &[],
            )
            .unwrap();
        drop(s);
        let run = import(url, &[&leaky_series().dumps[1]]);
        one_clear_error(&run, &["schema version 99", "newer heapscope"]);
        assert!(Store::open(Some(url)).is_err());
    }
}

#[test]
fn the_default_store_is_private() {
    let dir = scratch_dir("heapscope-store-xdg-");
    let xdg = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args(["import", "-q"])
        .arg(first_dump())
        .env("XDG_DATA_HOME", &xdg)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let store = xdg.join("heapscope").join("store.sqlite");
    assert!(store.is_file(), "no store at {}", store.display());
    assert_eq!(mode(&store), 0o600, "{}", store.display());
    assert_eq!(mode(&xdg.join("heapscope")), 0o700);
    // Any side files SQLite leaves (WAL, shared memory) are private too.
    for e in std::fs::read_dir(xdg.join("heapscope")).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p) & 0o077, 0, "{} is {:o}", p.display(), mode(&p));
    }
    // --store in a new directory: the same.
    let other = dir.path().join("new").join("deeper").join("team.sqlite");
    import(other.to_str().unwrap(), &[first_dump()]).ok();
    assert_eq!(mode(&other), 0o600);
    assert_eq!(mode(other.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.path().join("new")), 0o700);
}

/// A dump large enough that storing its objects takes seconds: 100,000
/// Arrays, each holding a String and a Hash with a String in it.
fn big_dump() -> &'static Path {
    static DUMP: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    &DUMP
        .get_or_init(|| {
            require_ruby();
            let dir = scratch_dir("heapscope-store-big-");
            let path = dir.path().join("heap-big.dump");
            let script = dir.path().join("big.rb");
            std::fs::write(
                &script,
                r#"require "objspace"
KEEP = Array.new(100_000) { |i| ["item #{i}", { i => "value #{i}" }] }
GC.start
File.open(ARGV[0], "w") { |f| ObjectSpace.dump_all(output: f) }
"#,
            )
            .unwrap();
            let st = Command::new("ruby")
                .arg(&script)
                .arg(&path)
                .status()
                .unwrap();
            assert!(st.success());
            (dir, path)
        })
        .1
}

/// Row count and a hash of the sorted rows of every table.
fn table_hashes(url: &str) -> Value {
    let mut s = Store::open(Some(url)).unwrap();
    let mut m = serde_json::Map::new();
    for &t in heapscope_store::schema::TABLES {
        let mut rows: Vec<String> = s
            .db()
            .query(&format!("SELECT * FROM {t}"), &[])
            .unwrap()
            .iter()
            .map(|r| format!("{r:?}"))
            .collect();
        rows.sort();
        let mut h = DefaultHasher::new();
        rows.hash(&mut h);
        m.insert(
            t.into(),
            json!([rows.len(), format!("{:016x}", h.finish())]),
        );
    }
    Value::Object(m)
}

/// Starts `import --objects` of the big dump, waits until `open` says its
/// transaction is open, kills it with SIGKILL. Returns how long it ran.
fn kill_mid_transaction(url: &str, mut open: impl FnMut() -> bool) -> Duration {
    let mut child = Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args(["import", "--objects", "--store", url])
        .arg(big_dump())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut err).ok();
            panic!("the import ended ({st}) before its transaction was seen open: {err}");
        }
        if open() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no open transaction seen in 300 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ran = started.elapsed();
    child.kill().unwrap(); // SIGKILL, to this child's pid
    let st = child.wait().unwrap();
    assert!(!st.success(), "the import finished before the kill: {st}");
    ran
}

/// Imports a little first, so "as it was" is not just empty tables.
fn seed(url: &str) {
    let dumps = &leaky_series().dumps;
    import(url, &[&dumps[0], &dumps[1]]).ok();
}

fn reimport_succeeds(url: &str, before: &Value) {
    let run = import(url, &[OsStr::new("--objects"), big_dump().as_os_str()]);
    run.ok();
    assert!(run.stderr.contains("1 imported"), "{}", run.stderr);
    let after = table_hashes(url);
    assert_ne!(&after, before);
    let mut s = Store::open(Some(url)).unwrap();
    let dumps = s.all_dumps().unwrap();
    assert_eq!(dumps.len(), 3);
    assert!(dumps.iter().any(|d| d.has_objects && d.objects > 300_000));
}

#[test]
fn sqlite_import_killed_mid_transaction_leaves_the_store_as_it_was() {
    let dir = scratch_dir("heapscope-store-kill-");
    let store = dir.path().join("s.sqlite");
    let url = store.display().to_string();
    seed(&url);
    let before = table_hashes(&url);
    let wal = dir.path().join("s.sqlite-wal");
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal_before = size(&wal);
    // Pages spill into the WAL while the transaction writes: a WAL more
    // than a MiB past its size before means rows are being written and not
    // committed (a commit would also end the import a moment later).
    let ran = kill_mid_transaction(&url, || size(&wal) > wal_before + (1 << 20));
    eprintln!(
        "sqlite: killed after {ran:.2?}, WAL {} -> {} bytes",
        wal_before,
        size(&wal)
    );
    assert_eq!(table_hashes(&url), before, "the store changed");
    reimport_succeeds(&url, &before);
}

#[test]
fn postgres_import_killed_mid_transaction_leaves_the_store_as_it_was() {
    let test = "postgres_import_killed_mid_transaction_leaves_the_store_as_it_was";
    let Some(server) = pg::server_or_skip(test) else {
        return;
    };
    let url = server.fresh_database("killed");
    seed(&url);
    let before = table_hashes(&url);
    let others =
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
    // The importer's COPY of objects or references is running (or it sits
    // between statements) inside a transaction that has written.
    let busy = format!(
        "SELECT COUNT(*) {others} AND backend_xid IS NOT NULL \
         AND ((state = 'active' AND (query LIKE 'COPY objects%' OR query LIKE 'COPY refs%')) \
              OR state = 'idle in transaction')"
    );
    let ran = kill_mid_transaction(&url, || server.psql(&url, &busy).trim() != "0");
    eprintln!("postgres: killed after {ran:.2?}");
    // The server notices the closed connection and rolls back.
    let t = Instant::now();
    while server
        .psql(&url, &format!("SELECT COUNT(*) {others}"))
        .trim()
        != "0"
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the killed importer's backend lingers"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(table_hashes(&url), before, "the store changed");
    reimport_succeeds(&url, &before);
}
