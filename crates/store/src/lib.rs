//! The store behind `heapscope import` and `heapscope serve`: analysed dumps,
//! memory logs and pprof profiles in SQLite (built in) or PostgreSQL.
//!
//! `db.rs` is the one place that knows the two databases apart; `schema.rs`
//! holds the tables and their migrations; `import.rs` decides what each file
//! becomes; `objects.rs` writes `--objects`' tables; `profile.rs` reads pprof
//! profiles; the query methods below are what the web pages read.

pub mod db;
pub mod import;
pub mod objects;
pub mod profile;
pub mod schema;

use std::path::PathBuf;

use serde_json::Value as Json;

pub use db::{DbError, Location, Value};
pub use import::{ImportOptions, Kind, Outcome};

use db::Db;

/// An open store, migrated to the current schema.
pub struct Store {
    db: Db,
}

/// Where the store is when `--store` is not given: the user's data
/// directory (`$XDG_DATA_HOME/heapscope/store.sqlite`).
pub fn default_location() -> Result<PathBuf, DbError> {
    let base = dirs::data_dir().ok_or_else(|| {
        DbError("cannot find a data directory (HOME is not set): give --store".into())
    })?;
    Ok(base.join("heapscope").join("store.sqlite"))
}

impl Store {
    /// Opens (creating and migrating) the store at `url`: `postgres://...`,
    /// `sqlite:PATH` or a path; `None` is [`default_location`].
    pub fn open(url: Option<&str>) -> Result<Store, DbError> {
        let location = match url {
            Some(u) => Location::parse(u),
            None => Location::Sqlite(default_location()?),
        };
        let mut db = Db::open(&location)?;
        schema::migrate(&mut db)?;
        Ok(Store { db })
    }

    /// The path or URL (without its password), for messages.
    pub fn describe(&self) -> String {
        self.db.location.describe()
    }

    pub fn is_postgres(&self) -> bool {
        self.db.is_postgres()
    }

    /// Direct access for the web crate's less common queries and the tests.
    pub fn db(&mut self) -> &mut Db {
        &mut self.db
    }
}

/// One process: its dumps and leak verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessInfo {
    pub id: i64,
    pub label: String,
    pub pid: Option<i64>,
    pub dumps: i64,
    pub first_time: Option<i64>,
    pub last_time: Option<i64>,
    pub verdict: Option<String>,
}

/// One imported dump.
#[derive(Debug, Clone, PartialEq)]
pub struct DumpInfo {
    pub id: i64,
    pub process_id: i64,
    pub path: String,
    pub file_name: String,
    pub fingerprint: String,
    pub file_size: i64,
    pub file_mtime: Option<i64>,
    pub taken_at: Option<i64>,
    pub time_source: String,
    pub seq: Option<i64>,
    pub imported_at: i64,
    pub objects: i64,
    pub bytes: i64,
    pub traced_objects: i64,
    pub ruby: Option<String>,
    pub has_objects: bool,
    pub meta: Json,
}

/// One row of a grouping (a dump page's tab).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub key: String,
    pub count: i64,
    pub bytes: i64,
    /// For strings: where the copies were allocated, `[[location, count]]`.
    pub extra: Option<Json>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOrder {
    Bytes,
    Count,
    Key,
}

/// One memory log's series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInfo {
    pub id: i64,
    pub label: String,
    pub format: String,
    pub path: String,
    /// (time, rss, live objects)
    pub points: Vec<(f64, Option<i64>, Option<i64>)>,
}

/// One imported pprof profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileInfo {
    pub id: i64,
    pub process_id: Option<i64>,
    pub file_name: String,
    pub path: String,
    pub imported_at: i64,
}

const DUMP_COLUMNS: &str = "id, process_id, path, file_name, fingerprint, file_size, file_mtime, taken_at, time_source, seq, imported_at, objects, bytes, traced_objects, ruby, has_objects, meta";

fn dump_info(r: Vec<Value>) -> DumpInfo {
    let mut it = r.into_iter();
    let mut next = || it.next().unwrap_or(Value::Null);
    DumpInfo {
        id: next().int().unwrap_or(0),
        process_id: next().int().unwrap_or(0),
        path: next().into_text().unwrap_or_default(),
        file_name: next().into_text().unwrap_or_default(),
        fingerprint: next().into_text().unwrap_or_default(),
        file_size: next().int().unwrap_or(0),
        file_mtime: next().int(),
        taken_at: next().int(),
        time_source: next().into_text().unwrap_or_default(),
        seq: next().int(),
        imported_at: next().int().unwrap_or(0),
        objects: next().int().unwrap_or(0),
        bytes: next().int().unwrap_or(0),
        traced_objects: next().int().unwrap_or(0),
        ruby: next().into_text(),
        has_objects: next().int().unwrap_or(0) != 0,
        meta: next()
            .into_text()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Json::Null),
    }
}

fn process_info(r: Vec<Value>) -> ProcessInfo {
    let mut it = r.into_iter();
    let mut next = || it.next().unwrap_or(Value::Null);
    ProcessInfo {
        id: next().int().unwrap_or(0),
        label: next().into_text().unwrap_or_default(),
        pid: next().int(),
        dumps: next().int().unwrap_or(0),
        first_time: next().int(),
        last_time: next().int(),
        verdict: next().into_text(),
    }
}

/// `%` and `_` taken literally in a LIKE pattern (with `ESCAPE '\'`).
/// Only ASCII letters are folded, as SQLite's LOWER folds them: folding
/// more here made "Ärger" miss its own row in SQLite.
fn like_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.to_ascii_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Store {
    /// Every process with a dump, a log or a profile, most recent first.
    pub fn processes(&mut self) -> Result<Vec<ProcessInfo>, DbError> {
        Ok(self
            .db
            .query(
                "SELECT id, label, pid, dumps, first_time, last_time, verdict FROM processes \
                 ORDER BY last_time DESC NULLS LAST, id",
                &[],
            )?
            .into_iter()
            .map(process_info)
            .collect())
    }

    /// Each process's heap bytes per dump, in time order (one query for
    /// the processes page's sparklines).
    pub fn heap_bytes_by_process(
        &mut self,
    ) -> Result<std::collections::HashMap<i64, Vec<f64>>, DbError> {
        let mut out: std::collections::HashMap<i64, Vec<f64>> = Default::default();
        for r in self.db.query(
            "SELECT process_id, bytes FROM dumps ORDER BY process_id, taken_at NULLS LAST, id",
            &[],
        )? {
            if let (Some(p), Some(b)) = (r[0].int(), r[1].real()) {
                out.entry(p).or_default().push(b);
            }
        }
        Ok(out)
    }

    pub fn process(&mut self, id: i64) -> Result<Option<ProcessInfo>, DbError> {
        Ok(self
            .db
            .query_row(
                "SELECT id, label, pid, dumps, first_time, last_time, verdict FROM processes WHERE id = ?",
                &[id.into()],
            )?
            .map(process_info))
    }

    /// The process's leak report (the JSON of `heapscope leaks` for it).
    pub fn leak_report(&mut self, process_id: i64) -> Result<Option<Json>, DbError> {
        Ok(self
            .db
            .query_row(
                "SELECT leak_report FROM processes WHERE id = ?",
                &[process_id.into()],
            )?
            .and_then(|r| r.into_iter().next())
            .and_then(Value::into_text)
            .and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// A process's dumps in time order.
    pub fn dumps_of(&mut self, process_id: i64) -> Result<Vec<DumpInfo>, DbError> {
        Ok(self
            .db
            .query(
                &format!(
                    "SELECT {DUMP_COLUMNS} FROM dumps WHERE process_id = ? ORDER BY taken_at NULLS LAST, id"
                ),
                &[process_id.into()],
            )?
            .into_iter()
            .map(dump_info)
            .collect())
    }

    pub fn dump(&mut self, id: i64) -> Result<Option<DumpInfo>, DbError> {
        Ok(self
            .db
            .query_row(
                &format!("SELECT {DUMP_COLUMNS} FROM dumps WHERE id = ?"),
                &[id.into()],
            )?
            .map(dump_info))
    }

    /// All dumps, in time order.
    pub fn all_dumps(&mut self) -> Result<Vec<DumpInfo>, DbError> {
        Ok(self
            .db
            .query(
                &format!("SELECT {DUMP_COLUMNS} FROM dumps ORDER BY taken_at NULLS LAST, id"),
                &[],
            )?
            .into_iter()
            .map(dump_info)
            .collect())
    }

    /// A page of one grouping of a dump: rows whose key contains `filter`
    /// (any case), in `order`, and how many rows match in all.
    pub fn rows(
        &mut self,
        dump_id: i64,
        dim: &str,
        filter: &str,
        order: RowOrder,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<GroupRow>, i64), DbError> {
        // ASCII-only case folding in both: PostgreSQL's LOWER folds every
        // letter (by its locale), SQLite's only A-Z.
        let folded = if self.db.is_postgres() {
            " AND TRANSLATE(key, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') LIKE ? ESCAPE '\\'"
        } else {
            " AND LOWER(key) LIKE ? ESCAPE '\\'"
        };
        let (cond, mut params): (&str, Vec<Value>) = if filter.is_empty() {
            ("", vec![dump_id.into(), dim.into()])
        } else {
            (
                folded,
                vec![dump_id.into(), dim.into(), like_pattern(filter).into()],
            )
        };
        let total = self.db.query_int(
            &format!("SELECT COUNT(*) FROM dump_rows WHERE dump_id = ? AND dim = ?{cond}"),
            &params,
        )?;
        // Keys compare by code point in both databases: PostgreSQL would
        // otherwise use the database's locale (en_US sorts "a" < "B", SQLite
        // "B" < "a"), and pages would differ between the two.
        let key = if self.db.is_postgres() {
            "key COLLATE \"C\""
        } else {
            "key"
        };
        let order = match (dim, order) {
            // Generations read best in numeric order, "untraced" last. No
            // CAST: PostgreSQL's fails on "untraced" where SQLite's gives 0;
            // for non-negative integers, shorter is smaller.
            ("generation", RowOrder::Key) => {
                format!("CASE WHEN key = 'untraced' THEN 1 ELSE 0 END, LENGTH(key), {key}")
            }
            (_, RowOrder::Key) => key.to_string(),
            (_, RowOrder::Count) => format!("count DESC, bytes DESC, {key}"),
            (_, RowOrder::Bytes) => format!("bytes DESC, count DESC, {key}"),
        };
        params.push(limit.into());
        params.push(offset.into());
        let rows = self.db.query(
            &format!(
                "SELECT key, count, bytes, extra FROM dump_rows WHERE dump_id = ? AND dim = ?{cond} \
                 ORDER BY {order} LIMIT ? OFFSET ?"
            ),
            &params,
        )?;
        Ok((
            rows.into_iter()
                .map(|r| {
                    let mut it = r.into_iter();
                    GroupRow {
                        key: it.next().and_then(Value::into_text).unwrap_or_default(),
                        count: it.next().and_then(|v| v.int()).unwrap_or(0),
                        bytes: it.next().and_then(|v| v.int()).unwrap_or(0),
                        extra: it
                            .next()
                            .and_then(Value::into_text)
                            .and_then(|t| serde_json::from_str(&t).ok()),
                    }
                })
                .collect(),
            total,
        ))
    }

    /// A document stored with a dump (`retained`, `retained_class`,
    /// `retained_location`, `suspects`, `folded`).
    pub fn doc(&mut self, dump_id: i64, kind: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .db
            .query_row(
                "SELECT body FROM dump_docs WHERE dump_id = ? AND kind = ?",
                &[dump_id.into(), kind.into()],
            )?
            .and_then(|r| r.into_iter().next())
            .and_then(Value::into_text))
    }

    /// The memory logs of a process, with their points.
    pub fn series_of(&mut self, process_id: i64) -> Result<Vec<SeriesInfo>, DbError> {
        let heads = self.db.query(
            "SELECT id, label, format, path FROM series WHERE process_id = ? ORDER BY id",
            &[process_id.into()],
        )?;
        let mut out = Vec::new();
        for h in heads {
            let id = h[0].int().unwrap_or(0);
            let points = self
                .db
                .query(
                    "SELECT t, rss, live_objects FROM series_points WHERE series_id = ? ORDER BY t",
                    &[id.into()],
                )?
                .into_iter()
                .map(|p| (p[0].real().unwrap_or(0.0), p[1].int(), p[2].int()))
                .collect();
            let mut it = h.into_iter().skip(1);
            out.push(SeriesInfo {
                id,
                label: it.next().and_then(Value::into_text).unwrap_or_default(),
                format: it.next().and_then(Value::into_text).unwrap_or_default(),
                path: it.next().and_then(Value::into_text).unwrap_or_default(),
                points,
            });
        }
        Ok(out)
    }

    /// Profiles, newest first (`process_id` None: all).
    pub fn profiles(&mut self, process_id: Option<i64>) -> Result<Vec<ProfileInfo>, DbError> {
        let (cond, params) = match process_id {
            Some(p) => (" WHERE process_id = ?", vec![p.into()]),
            None => ("", vec![]),
        };
        Ok(self
            .db
            .query(
                &format!(
                    "SELECT id, process_id, file_name, path, imported_at FROM profiles{cond} ORDER BY id DESC"
                ),
                &params,
            )?
            .into_iter()
            .map(|r| {
                let mut it = r.into_iter();
                ProfileInfo {
                    id: it.next().and_then(|v| v.int()).unwrap_or(0),
                    process_id: it.next().and_then(|v| v.int()),
                    file_name: it.next().and_then(Value::into_text).unwrap_or_default(),
                    path: it.next().and_then(Value::into_text).unwrap_or_default(),
                    imported_at: it.next().and_then(|v| v.int()).unwrap_or(0),
                }
            })
            .collect())
    }

    /// A profile and its summary document.
    pub fn profile(&mut self, id: i64) -> Result<Option<(ProfileInfo, Json)>, DbError> {
        let Some(r) = self.db.query_row(
            "SELECT id, process_id, file_name, path, imported_at, summary FROM profiles WHERE id = ?",
            &[id.into()],
        )?
        else {
            return Ok(None);
        };
        let mut it = r.into_iter();
        let info = ProfileInfo {
            id: it.next().and_then(|v| v.int()).unwrap_or(0),
            process_id: it.next().and_then(|v| v.int()),
            file_name: it.next().and_then(Value::into_text).unwrap_or_default(),
            path: it.next().and_then(Value::into_text).unwrap_or_default(),
            imported_at: it.next().and_then(|v| v.int()).unwrap_or(0),
        };
        let summary = it
            .next()
            .and_then(Value::into_text)
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Json::Null);
        Ok(Some((info, summary)))
    }

    /// One object from the `--objects` tables: its columns by name.
    pub fn stored_object(
        &mut self,
        dump_id: i64,
        address: u64,
    ) -> Result<Option<serde_json::Map<String, Json>>, DbError> {
        let cols = objects::RECORD_COLUMNS;
        let row = self.db.query_row(
            &format!(
                "SELECT {} FROM objects WHERE dump_id = ? AND address = ?",
                cols.join(", ")
            ),
            &[dump_id.into(), objects::address_value(address)],
        )?;
        Ok(row.map(|r| {
            cols.iter()
                .zip(r)
                .map(|(c, v)| {
                    let j = match v {
                        Value::Null => Json::Null,
                        Value::Int(i) if c.ends_with("address") => {
                            Json::String(format!("{:#x}", i as u64))
                        }
                        Value::Int(i) => Json::from(i),
                        Value::Real(r) => Json::from(r),
                        Value::Text(t) => Json::String(t),
                        Value::Blob(_) => Json::Null,
                    };
                    (c.to_string(), j)
                })
                .collect()
        }))
    }

    /// Addresses an object references (`outgoing`) or is referenced from,
    /// from the `--objects` tables.
    pub fn stored_refs(
        &mut self,
        dump_id: i64,
        address: u64,
        outgoing: bool,
        limit: i64,
    ) -> Result<Vec<u64>, DbError> {
        let parse = |text: &str| -> Vec<u64> {
            serde_json::from_str::<Vec<i64>>(text)
                .unwrap_or_default()
                .into_iter()
                .map(|a| a as u64)
                .collect()
        };
        if outgoing {
            let row = self.db.query_row(
                "SELECT refs FROM objects WHERE dump_id = ? AND address = ?",
                &[dump_id.into(), objects::address_value(address)],
            )?;
            let mut out = row
                .and_then(|r| r.into_iter().next())
                .and_then(Value::into_text)
                .map(|t| parse(&t))
                .unwrap_or_default();
            out.truncate(limit.max(0) as usize);
            return Ok(out);
        }
        // Referrers: the address's digits narrow the scan, the parse checks.
        let digits = (address as i64).to_string();
        let rows = self.db.query(
            "SELECT address, refs FROM objects WHERE dump_id = ? AND refs LIKE ?",
            &[dump_id.into(), format!("%{digits}%").into()],
        )?;
        Ok(rows
            .into_iter()
            .filter(|r| r[1].text().is_some_and(|t| parse(t).contains(&address)))
            .filter_map(|r| r[0].int().map(|a| a as u64))
            .take(limit.max(0) as usize)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_pattern("a_b%C\\"), "%a\\_b\\%c\\\\%");
    }
}
