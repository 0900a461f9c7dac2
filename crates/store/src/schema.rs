//! The store's tables, and moving an older store forward.
//!
//! Each entry of [`MIGRATIONS`] takes a store from version `i` to `i + 1`;
//! `hs_meta.schema_version` says where a store is. A store written by a
//! newer heapscope is refused rather than misread. The tables are
//! documented, with example SQL, in docs/store.md.

use crate::db::{Db, DbError, Result, Value};

/// Portable DDL: `{id}` and `{blob}` become each database's own types.
/// `objects` and `roots` name their dump without a foreign key: a key is
/// checked for every row, and they take millions of rows per dump, written
/// in the same transaction as the dump itself.
pub const MIGRATIONS: &[&str] = &[
    // Version 1.
    "
CREATE TABLE processes (
    id {id},
    key TEXT NOT NULL UNIQUE,
    pid BIGINT,
    label TEXT NOT NULL,
    dumps BIGINT NOT NULL DEFAULT 0,
    first_time BIGINT,
    last_time BIGINT,
    verdict TEXT,
    leak_report TEXT,
    leak_state {blob},
    leak_last_time BIGINT
);
CREATE TABLE dumps (
    id {id},
    process_id BIGINT NOT NULL REFERENCES processes(id),
    path TEXT NOT NULL,
    file_name TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    file_size BIGINT NOT NULL,
    file_mtime BIGINT,
    taken_at BIGINT,
    time_source TEXT NOT NULL,
    seq BIGINT,
    imported_at BIGINT NOT NULL,
    objects BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    traced_objects BIGINT NOT NULL,
    ruby TEXT,
    has_objects BIGINT NOT NULL DEFAULT 0,
    meta TEXT NOT NULL
);
CREATE INDEX dumps_by_process ON dumps (process_id, taken_at);
CREATE TABLE dump_rows (
    dump_id BIGINT NOT NULL REFERENCES dumps(id),
    dim TEXT NOT NULL,
    key TEXT NOT NULL,
    count BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    extra TEXT
);
CREATE INDEX dump_rows_by_dim ON dump_rows (dump_id, dim, bytes);
CREATE TABLE dump_docs (
    dump_id BIGINT NOT NULL REFERENCES dumps(id),
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (dump_id, kind)
);
CREATE TABLE series (
    id {id},
    process_id BIGINT REFERENCES processes(id),
    fingerprint TEXT NOT NULL,
    path TEXT NOT NULL,
    format TEXT NOT NULL,
    label TEXT NOT NULL,
    pid BIGINT,
    imported_at BIGINT NOT NULL,
    UNIQUE (fingerprint, label)
);
CREATE TABLE series_points (
    series_id BIGINT NOT NULL REFERENCES series(id),
    t DOUBLE PRECISION NOT NULL,
    rss BIGINT,
    live_objects BIGINT,
    requests BIGINT,
    major_gc BIGINT,
    minor_gc BIGINT
);
CREATE INDEX series_points_by_series ON series_points (series_id, t);
CREATE TABLE profiles (
    id {id},
    process_id BIGINT REFERENCES processes(id),
    fingerprint TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    file_name TEXT NOT NULL,
    imported_at BIGINT NOT NULL,
    summary TEXT NOT NULL,
    body {blob} NOT NULL
);
CREATE TABLE objects (
    dump_id BIGINT NOT NULL,
    address BIGINT NOT NULL,
    type TEXT NOT NULL,
    class_address BIGINT,
    class_name TEXT,
    memsize BIGINT NOT NULL,
    generation BIGINT,
    file TEXT,
    line BIGINT,
    method TEXT,
    value TEXT,
    refs TEXT{objects_end}
{objects_index}
{refs_view}
CREATE TABLE roots (
    dump_id BIGINT NOT NULL,
    root TEXT NOT NULL,
    address BIGINT NOT NULL
);
",
];

/// Every table and view of the current version (for tests and tools that
/// compare whole stores).
pub const TABLES: &[&str] = &[
    "hs_meta",
    "processes",
    "dumps",
    "dump_rows",
    "dump_docs",
    "series",
    "series_points",
    "profiles",
    "objects",
    "refs",
    "roots",
];

/// The version this heapscope writes.
pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the store to the current version, each step in a transaction.
pub fn migrate(db: &mut Db) -> Result<()> {
    migrate_with(db, MIGRATIONS)
}

/// [`migrate`] with another list of steps (the tests add one).
fn migrate_with(db: &mut Db, migrations: &[&str]) -> Result<()> {
    let known = migrations.len() as i64;
    const META: &str =
        "CREATE TABLE IF NOT EXISTS hs_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)";
    if !db.is_postgres() {
        // SQLite serialises schema changes itself.
        db.batch(META)?;
    } else if db.query_int(
        "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'hs_meta'",
        &[],
    )? == 0
    {
        // Two importers creating a new database at once: IF NOT EXISTS alone
        // still races in PostgreSQL (a unique violation in its catalog), so
        // under the writers' lock. Only then: opening an existing store
        // must not wait for an import to commit.
        db.begin()?;
        match db.batch(META) {
            Ok(()) => db.commit()?,
            Err(e) => {
                db.rollback();
                return Err(e);
            }
        }
    }
    loop {
        let version = version(db)?;
        if version > known {
            return Err(DbError(format!(
                "the store {} has schema version {version}, written by a newer heapscope \
                 (this one knows up to {known}): upgrade heapscope, or use another --store",
                db.location.describe(),
            )));
        }
        if version == known {
            return Ok(());
        }
        db.begin()?;
        // Another importer may have migrated meanwhile: look again inside
        // the transaction.
        let step = match self::version(db) {
            Ok(v) if v == version => {
                let sql = migrations[version as usize];
                db.batch(sql).and_then(|_| {
                    let next = (version + 1).to_string();
                    db.exec("DELETE FROM hs_meta WHERE key = 'schema_version'", &[])?;
                    db.exec(
                        "INSERT INTO hs_meta (key, value) VALUES ('schema_version', ?)",
                        &[Value::Text(next)],
                    )
                    .map(|_| ())
                })
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        match step {
            Ok(()) => db.commit()?,
            Err(e) => {
                db.rollback();
                return Err(e);
            }
        }
    }
}

fn version(db: &mut Db) -> Result<i64> {
    Ok(db
        .query_row(
            "SELECT value FROM hs_meta WHERE key = 'schema_version'",
            &[],
        )?
        .and_then(|r| r.into_iter().next())
        .and_then(|v| v.text().and_then(|t| t.parse().ok()))
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Location;

    #[test]
    fn a_store_moves_forward_one_step_at_a_time_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::Sqlite(dir.path().join("s.sqlite"));
        let mut db = Db::open(&location).unwrap();
        migrate(&mut db).unwrap();
        assert_eq!(version(&mut db).unwrap(), current_version());
        db.exec(
            "INSERT INTO processes (key, label) VALUES ('name:a', 'a')",
            &[],
        )
        .unwrap();
        drop(db);
        // A later heapscope's step: a new column, filled from the old ones.
        let step = "ALTER TABLE processes ADD COLUMN note TEXT; UPDATE processes SET note = 'was ' || label";
        let mut later: Vec<&str> = MIGRATIONS.to_vec();
        later.push(step);
        let mut db = Db::open(&location).unwrap();
        migrate_with(&mut db, &later).unwrap();
        assert_eq!(version(&mut db).unwrap(), current_version() + 1);
        let row = db
            .query_row("SELECT key, note FROM processes", &[])
            .unwrap();
        assert_eq!(
            row,
            Some(vec![
                Value::Text("name:a".into()),
                Value::Text("was a".into())
            ])
        );
        // Again: nothing to do, the step does not run twice.
        migrate_with(&mut db, &later).unwrap();
        // This heapscope now refuses the store it cannot read.
        let err = migrate(&mut db).unwrap_err().0;
        assert!(err.contains("newer heapscope"), "{err}");
        // A failing step leaves the store at its version.
        let mut broken = later.clone();
        broken.push("ALTER TABLE processes ADD COLUMN x TEXT; SELECT * FROM no_such_table");
        assert!(migrate_with(&mut db, &broken).is_err());
        assert_eq!(version(&mut db).unwrap(), current_version() + 1);
        assert!(db.query("SELECT x FROM processes", &[]).is_err());
    }
}
