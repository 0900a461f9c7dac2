//! The PostgreSQL harness itself (`tests/common/pg.rs`): a server starts as
//! the `postgres` user on loopback, fresh databases are separate, Debian's
//! psql reaches them, and a server of its own is gone once dropped.

mod common;

use std::time::{Duration, Instant};

use common::pg::{self, PgServer};

#[test]
fn shared_server_gives_fresh_databases_that_psql_reaches() {
    let Some(server) = pg::server_or_skip("shared_server_gives_fresh_databases_that_psql_reaches")
    else {
        return;
    };
    // Meant to be under 3 s (about 0.8 s here); the bound leaves room for
    // a machine busy with other test binaries.
    eprintln!("PostgreSQL startup: {:.2?}", server.startup);
    assert!(
        server.startup < Duration::from_secs(10),
        "the server took {:.2?} to start",
        server.startup
    );
    let t = Instant::now();
    let a = server.fresh_database("infra A");
    let b = server.fresh_database("infra A");
    eprintln!("two databases in {:.2?}: {a} {b}", t.elapsed());
    assert_ne!(a, b, "the same name twice gives two databases");
    for url in [&a, &b] {
        assert!(url.starts_with("postgres://postgres@127.0.0.1:"), "{url}");
        assert_eq!(server.psql(url, "select 1").trim(), "1");
    }
    // What one database holds, the other does not.
    server.psql(&a, "create table t (x int); insert into t values (7)");
    assert_eq!(server.psql(&a, "select x from t").trim(), "7");
    let out = server
        .psql_command(&b)
        .args(["-c", "select x from t"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "table t leaked into the other database"
    );
    // The server runs as `postgres` when we are root, and listens on loopback.
    let listen = server.psql(&a, "show listen_addresses");
    assert_eq!(listen.trim(), "127.0.0.1");
    if unsafe { libc::getuid() } == 0 {
        let user = server.psql(&a, "select current_setting('data_directory')");
        let meta = std::fs::metadata(user.trim()).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_ne!(meta.uid(), 0, "the data directory must not belong to root");
    }
    // The Unix socket works too.
    let socket = format!(
        "postgresql:///{}?host={}&port={}&user=postgres",
        a.rsplit('/').next().unwrap(),
        server.socket_dir().display(),
        server.port()
    );
    assert_eq!(server.psql(&socket, "select 2").trim(), "2");

    // unreachable_url refuses connections.
    let out = server
        .psql_command(&pg::unreachable_url())
        .args(["-c", "select 1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Connection refused"), "{err}");
}

#[test]
fn own_server_stops_and_cleans_up_when_dropped() {
    if pg::server_or_skip("own_server_stops_and_cleans_up_when_dropped").is_none() {
        return;
    }
    let server = PgServer::start();
    let pid = server.pid().expect("a running server");
    let dir = server.socket_dir().to_path_buf();
    let url = server.fresh_database("own");
    assert_eq!(server.psql(&url, "select 1").trim(), "1");
    drop(server);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "postgres {pid} still runs after the PgServer was dropped"
    );
    // The watchdog removes it too; either way it is gone at once.
    assert!(!dir.exists(), "{} is left behind", dir.display());
}
