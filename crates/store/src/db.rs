//! One connection to either database, with the little SQL both share.
//!
//! Statements are written once, with `?` placeholders and portable types;
//! for PostgreSQL the placeholders become `$1, $2, ...`. Values cross as
//! [`Value`], which either driver converts to the column's type.

use std::fmt;
use std::path::{Path, PathBuf};

use postgres::types::{to_sql_checked, IsNull, ToSql, Type};

/// A value of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Real(r) => Some(*r as i64),
            _ => None,
        }
    }
    pub fn real(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Real(r) => Some(*r),
            _ => None,
        }
    }
    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn into_text(self) -> Option<String> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn into_blob(self) -> Option<Vec<u8>> {
        match self {
            Value::Blob(b) => Some(b),
            _ => None,
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v as i64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

pub type Row = Vec<Value>;

/// Which database a store is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    /// `postgres://...` / `postgresql://...` is PostgreSQL; `sqlite:PATH` or any
    /// other text is an SQLite file.
    pub fn parse(url: &str) -> Location {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Location::Postgres(url.to_string())
        } else {
            let path = url.strip_prefix("sqlite:").unwrap_or(url);
            Location::Sqlite(PathBuf::from(path))
        }
    }

    /// For messages: the path, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(url) => redact(url),
        }
    }
}

/// A PostgreSQL URL without the password, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    match auth {
        Some(a) => {
            let user = a.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_string(),
    }
}

/// A database error, with what was being done.
#[derive(Debug)]
pub struct DbError(pub String);

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError(format!("SQLite: {e}"))
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> Self {
        // The server's own message (with its detail) says more than the
        // driver's summary.
        match e.as_db_error() {
            Some(db) => DbError(format!("PostgreSQL: {}", db.message())),
            None => DbError(format!("PostgreSQL: {e}")),
        }
    }
}

pub type Result<T> = std::result::Result<T, DbError>;

enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

/// The PostgreSQL advisory lock key of heapscope's writers ("hscope" in
/// ASCII).
pub const WRITER_LOCK: i64 = 0x68_73_63_6f_70_65;

/// An open connection.
pub struct Db {
    conn: Conn,
    pub location: Location,
}

impl Db {
    pub fn open(location: &Location) -> Result<Db> {
        let conn = match location {
            Location::Sqlite(path) => Conn::Sqlite(open_sqlite(path)?),
            Location::Postgres(url) => {
                let client = postgres::Client::connect(url, postgres::NoTls).map_err(|e| {
                    DbError(format!(
                        "cannot connect to PostgreSQL at {}: {}",
                        redact(url),
                        pg_reason(&e)
                    ))
                })?;
                Conn::Postgres(Box::new(client))
            }
        };
        Ok(Db {
            conn,
            location: location.clone(),
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.conn, Conn::Postgres(_))
    }

    /// Replaces the portable type names of a schema statement with each
    /// database's own.
    pub fn dialect(&self, sql: &str) -> String {
        match self.conn {
            // SQLite keeps objects in address order inside their key (no
            // second index to maintain: bulk loads stay fast); a repeated
            // address in a dump keeps its first record there. PostgreSQL
            // gets a BRIN index: objects arrive in address order, so block
            // ranges of addresses find them, at a fraction of a B-tree's
            // cost per row.
            Conn::Sqlite(_) => sql
                .replace("{id}", "INTEGER PRIMARY KEY")
                .replace("{blob}", "BLOB")
                .replace(
                    "{objects_end}",
                    ",\n    PRIMARY KEY (dump_id, address)\n) WITHOUT ROWID;",
                )
                .replace("{objects_index}", "")
                .replace(
                    "{refs_view}",
                    "CREATE VIEW refs AS SELECT o.dump_id AS dump_id, o.address AS from_address, \
                     r.value AS to_address FROM objects o, json_each(o.refs) r WHERE o.refs IS NOT NULL;",
                ),
            Conn::Postgres(_) => sql
                .replace("{id}", "BIGSERIAL PRIMARY KEY")
                .replace("{blob}", "BYTEA")
                .replace("{objects_end}", "\n);")
                .replace(
                    "{objects_index}",
                    "CREATE INDEX objects_by_address ON objects USING brin (dump_id, address);",
                )
                .replace(
                    "{refs_view}",
                    "CREATE VIEW refs AS SELECT o.dump_id AS dump_id, o.address AS from_address, \
                     r::BIGINT AS to_address FROM objects o, json_array_elements_text(o.refs::json) r \
                     WHERE o.refs IS NOT NULL;",
                ),
        }
    }

    /// Runs statements without parameters, separated by `;`.
    pub fn batch(&mut self, sql: &str) -> Result<()> {
        let sql = self.dialect(sql);
        match &mut self.conn {
            Conn::Sqlite(c) => c.execute_batch(&sql)?,
            Conn::Postgres(c) => c.batch_execute(&sql)?,
        }
        Ok(())
    }

    /// Runs one statement; returns the rows it changed.
    pub fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        match &mut self.conn {
            Conn::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                Ok(st.execute(rusqlite::params_from_iter(params.iter()))? as u64)
            }
            Conn::Postgres(c) => {
                let sql = numbered(sql);
                let p: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                Ok(c.execute(sql.as_str(), &p)?)
            }
        }
    }

    /// Runs a query and returns all its rows.
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        match &mut self.conn {
            Conn::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let n = st.column_count();
                let rows = st.query_map(rusqlite::params_from_iter(params.iter()), |r| {
                    (0..n).map(|i| r.get_ref(i).map(from_sqlite)).collect()
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<Row>>>()?)
            }
            Conn::Postgres(c) => {
                let sql = numbered(sql);
                let p: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                let rows = c.query(sql.as_str(), &p)?;
                rows.iter().map(from_postgres).collect()
            }
        }
    }

    /// The first row of a query, if any.
    pub fn query_row(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// One integer (a count, an id): 0 when the query gives no row or NULL.
    pub fn query_int(&mut self, sql: &str, params: &[Value]) -> Result<i64> {
        Ok(self
            .query_row(sql, params)?
            .and_then(|r| r.first().and_then(Value::int))
            .unwrap_or(0))
    }

    pub fn begin(&mut self) -> Result<()> {
        match &mut self.conn {
            // IMMEDIATE: take the write lock now, so two importers queue
            // rather than one failing halfway with SQLITE_BUSY.
            Conn::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE")?,
            // The same on PostgreSQL: a transaction-long advisory lock makes
            // writers take turns. Without it two importers of one series
            // both insert its process (a unique violation) or fold their
            // dumps into the same saved leak state, losing one; two
            // opening a new database both create the tables.
            Conn::Postgres(c) => c.batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})"
            ))?,
        }
        Ok(())
    }

    pub fn commit(&mut self) -> Result<()> {
        self.batch("COMMIT")
    }

    /// Rolls back; errors are ignored (the transaction may already be gone
    /// with the connection).
    pub fn rollback(&mut self) {
        let _ = self.batch("ROLLBACK");
    }

    /// Appends many rows to a table: COPY on PostgreSQL, one prepared insert
    /// on SQLite. Must run inside a transaction.
    pub fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[&str],
        rows: &mut dyn Iterator<Item = Row>,
    ) -> Result<u64> {
        let mut n = 0u64;
        match &mut self.conn {
            Conn::Sqlite(c) => {
                let marks = vec!["?"; columns.len()].join(",");
                let sql = format!(
                    "INSERT INTO {table} ({}) VALUES ({marks})",
                    columns.join(",")
                );
                let mut st = c.prepare_cached(&sql)?;
                for row in rows {
                    st.execute(rusqlite::params_from_iter(row.iter()))?;
                    n += 1;
                }
            }
            Conn::Postgres(c) => {
                use std::io::Write;
                let sql = format!("COPY {table} ({}) FROM STDIN", columns.join(","));
                let mut w = c.copy_in(sql.as_str())?;
                let mut buf = Vec::with_capacity(1 << 16);
                for row in rows {
                    copy_line(&mut buf, &row);
                    n += 1;
                    if buf.len() >= 1 << 16 {
                        w.write_all(&buf)
                            .map_err(|e| DbError(format!("PostgreSQL COPY: {e}")))?;
                        buf.clear();
                    }
                }
                w.write_all(&buf)
                    .map_err(|e| DbError(format!("PostgreSQL COPY: {e}")))?;
                w.finish()?;
            }
        }
        Ok(n)
    }
}

/// Where [`Db::bulk_write`] puts rows: values in column order, then
/// [`RowSink::end_row`]. Nothing is allocated per row.
pub trait RowSink {
    fn int(&mut self, v: i64);
    fn text(&mut self, v: &str);
    fn null(&mut self);
    fn end_row(&mut self);
    fn opt_int(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }
    fn opt_text(&mut self, v: Option<&str>) {
        match v {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }
}

/// SQLite: binds each value to the prepared insert, runs it at the row's
/// end. The first error stops the rest.
struct SqliteSink<'s, 'c> {
    st: &'s mut rusqlite::CachedStatement<'c>,
    col: usize,
    rows: u64,
    error: Option<rusqlite::Error>,
}

impl SqliteSink<'_, '_> {
    fn bind<T: rusqlite::ToSql>(&mut self, v: T) {
        if self.error.is_none() {
            self.col += 1;
            if let Err(e) = self.st.raw_bind_parameter(self.col, v) {
                self.error = Some(e);
            }
        }
    }
}

impl RowSink for SqliteSink<'_, '_> {
    fn int(&mut self, v: i64) {
        self.bind(v);
    }
    fn text(&mut self, v: &str) {
        // NUL as PostgreSQL stores it, as `Value`'s binding does.
        if v.contains('\0') {
            self.bind(v.replace('\0', "\\0"));
        } else {
            self.bind(v);
        }
    }
    fn null(&mut self) {
        self.bind(rusqlite::types::Null);
    }
    fn end_row(&mut self) {
        self.col = 0;
        if self.error.is_none() {
            match self.st.raw_execute() {
                Ok(_) => self.rows += 1,
                Err(e) => self.error = Some(e),
            }
        }
    }
}

/// PostgreSQL: COPY's binary format into a buffer, sent in 256 KiB
/// pieces. Binary spares the server parsing every number: it is the
/// server's CPU, not the client's, that limits a COPY of millions of rows.
struct CopySink<'w, 'c> {
    w: &'w mut postgres::CopyInWriter<'c>,
    buf: Vec<u8>,
    /// Where the current row's field count goes, once the row is complete.
    row_start: Option<usize>,
    fields: u16,
    rows: u64,
    error: Option<std::io::Error>,
}

/// The binary format's header: signature, flags, no extension.
const COPY_BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

impl CopySink<'_, '_> {
    fn field(&mut self) {
        if self.row_start.is_none() {
            self.row_start = Some(self.buf.len());
            self.buf.extend_from_slice(&[0, 0]);
            self.fields = 0;
        }
        self.fields += 1;
    }
}

impl RowSink for CopySink<'_, '_> {
    fn int(&mut self, v: i64) {
        self.field();
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn text(&mut self, v: &str) {
        self.field();
        // PostgreSQL text cannot hold NUL: stored as `\0`, as elsewhere.
        let owned;
        let v = if v.contains('\0') {
            owned = v.replace('\0', "\\0");
            owned.as_str()
        } else {
            v
        };
        self.buf.extend_from_slice(&(v.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(v.as_bytes());
    }
    fn null(&mut self) {
        self.field();
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }
    fn end_row(&mut self) {
        use std::io::Write;
        if let Some(at) = self.row_start.take() {
            self.buf[at..at + 2].copy_from_slice(&self.fields.to_be_bytes());
        }
        self.rows += 1;
        if self.buf.len() >= 256 << 10 && self.error.is_none() {
            if let Err(e) = self.w.write_all(&self.buf) {
                self.error = Some(e);
            }
            self.buf.clear();
        }
    }
}

/// Decimal digits of `v` without allocating.
pub(crate) fn itoa(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        // i64::MIN has 19 digits: there is always room for the sign.
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

impl Db {
    /// Appends rows that `fill` writes into a [`RowSink`]: COPY on
    /// PostgreSQL, one prepared insert on SQLite (`OR IGNORE` when
    /// `ignore_duplicates`, for tables keyed by address). Must run inside a
    /// transaction.
    pub fn bulk_write(
        &mut self,
        table: &str,
        columns: &[&str],
        ignore_duplicates: bool,
        fill: &mut dyn FnMut(&mut dyn RowSink),
    ) -> Result<u64> {
        match &mut self.conn {
            Conn::Sqlite(c) => {
                let marks = vec!["?"; columns.len()].join(",");
                let or_ignore = if ignore_duplicates { " OR IGNORE" } else { "" };
                let sql = format!(
                    "INSERT{or_ignore} INTO {table} ({}) VALUES ({marks})",
                    columns.join(",")
                );
                let mut st = c.prepare_cached(&sql)?;
                let mut sink = SqliteSink {
                    st: &mut st,
                    col: 0,
                    rows: 0,
                    error: None,
                };
                fill(&mut sink);
                match sink.error {
                    Some(e) => Err(e.into()),
                    None => Ok(sink.rows),
                }
            }
            Conn::Postgres(c) => {
                use std::io::Write;
                let sql = format!(
                    "COPY {table} ({}) FROM STDIN (FORMAT binary)",
                    columns.join(",")
                );
                let mut w = c.copy_in(sql.as_str())?;
                let mut buf = Vec::with_capacity(300 << 10);
                buf.extend_from_slice(COPY_BINARY_HEADER);
                let mut sink = CopySink {
                    w: &mut w,
                    buf,
                    row_start: None,
                    fields: 0,
                    rows: 0,
                    error: None,
                };
                fill(&mut sink);
                let (rows, mut buf, error) = (sink.rows, std::mem::take(&mut sink.buf), sink.error);
                if let Some(e) = error {
                    return Err(DbError(format!("PostgreSQL COPY: {e}")));
                }
                // The trailer: a field count of -1.
                buf.extend_from_slice(&(-1i16).to_be_bytes());
                w.write_all(&buf)
                    .map_err(|e| DbError(format!("PostgreSQL COPY: {e}")))?;
                w.finish()?;
                Ok(rows)
            }
        }
    }
}

/// Why a connection failed, in a sentence.
fn pg_reason(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

fn open_sqlite(path: &Path) -> Result<rusqlite::Connection> {
    let fail = |what: String| DbError(format!("cannot open the store {}: {what}", path.display()));
    if path.is_dir() {
        return Err(fail(
            "it is a directory: give a file in it, as DIR/store.sqlite".into(),
        ));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            create_private_dir(dir)
                .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        }
    }
    // The file holds the app's data (string values, paths): private from
    // the start, as every file heapscope writes.
    if !path.exists() {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    let c = rusqlite::Connection::open(path).map_err(|e| fail(e.to_string()))?;
    c.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|e| fail(e.to_string()))?;
    // WAL: pages read while an import writes. A file that is not a database
    // fails here, with SQLite's "file is not a database".
    c.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| fail(e.to_string()))?;
    c.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| fail(e.to_string()))?;
    c.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| fail(e.to_string()))?;
    // 256 MiB of page cache: `--objects` loads touch index pages all over.
    c.pragma_update(None, "cache_size", -262_144)
        .map_err(|e| fail(e.to_string()))?;
    Ok(c)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// `?` placeholders as PostgreSQL's `$n`. Our statements have no `?` in
/// string literals.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

/// One row of COPY's text format: tab-separated, `\N` for NULL, backslash
/// escapes for the separators, bytea as `\\x` hex.
fn copy_line(buf: &mut Vec<u8>, row: &[Value]) {
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            buf.push(b'\t');
        }
        match v {
            Value::Null => buf.extend_from_slice(b"\\N"),
            Value::Int(n) => buf.extend_from_slice(n.to_string().as_bytes()),
            Value::Real(r) => buf.extend_from_slice(r.to_string().as_bytes()),
            Value::Text(s) => copy_text(buf, s),
            Value::Blob(bytes) => {
                buf.extend_from_slice(b"\\\\x");
                for b in bytes {
                    buf.extend_from_slice(format!("{b:02x}").as_bytes());
                }
            }
        }
    }
    buf.push(b'\n');
}

/// A text value in COPY's text format.
fn copy_text(buf: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            // NUL cannot be in a PostgreSQL text value at all.
            0 => buf.extend_from_slice(b"\\\\0"),
            _ => buf.push(b),
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        // NUL as PostgreSQL stores it (`\0`, two characters): the same text
        // in both databases.
        if let Value::Text(s) = self {
            if s.contains('\0') {
                return Ok(ToSqlOutput::Owned(rusqlite::types::Value::Text(
                    s.replace('\0', "\\0"),
                )));
            }
        }
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(r) => ValueRef::Real(*r),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn from_sqlite(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn from_postgres(row: &postgres::Row) -> Result<Row> {
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let t = col.type_();
        let v = if *t == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
        } else if *t == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into()))
        } else if *t == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into()))
        } else if *t == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i)?.map(Value::Real)
        } else if *t == Type::FLOAT4 {
            row.try_get::<_, Option<f32>>(i)?
                .map(|v| Value::Real(v.into()))
        } else if *t == Type::NUMERIC {
            // SUM() of BIGINT is NUMERIC: read as text.
            return Err(DbError(
                "internal: cast NUMERIC results (SUM) to BIGINT in the query".into(),
            ));
        } else if *t == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(v.into()))
        } else if *t == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob)
        } else {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(out)
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => {
                if *ty == Type::INT4 {
                    i32::try_from(*i)?.to_sql(ty, out)
                } else if *ty == Type::INT2 {
                    i16::try_from(*i)?.to_sql(ty, out)
                } else if *ty == Type::FLOAT8 {
                    (*i as f64).to_sql(ty, out)
                } else if *ty == Type::BOOL {
                    (*i != 0).to_sql(ty, out)
                } else if *ty == Type::TEXT || *ty == Type::VARCHAR {
                    i.to_string().to_sql(ty, out)
                } else {
                    i.to_sql(ty, out)
                }
            }
            Value::Real(r) => {
                if *ty == Type::INT8 {
                    (*r as i64).to_sql(ty, out)
                } else {
                    r.to_sql(ty, out)
                }
            }
            Value::Text(s) => {
                if *ty == Type::BYTEA {
                    s.as_bytes().to_sql(ty, out)
                } else {
                    // PostgreSQL text cannot hold NUL; dump strings can.
                    if s.contains('\0') {
                        s.replace('\0', "\\0").to_sql(ty, out)
                    } else {
                        s.to_sql(ty, out)
                    }
                }
            }
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE b = ? AND c = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = $2"
        );
    }

    #[test]
    fn copy_escapes_separators_and_nul() {
        let mut buf = Vec::new();
        copy_line(
            &mut buf,
            &[
                Value::Int(-3),
                Value::Null,
                Value::Text("a\tb\\c\nd\0".into()),
                Value::Blob(vec![0, 255]),
            ],
        );
        assert_eq!(buf, b"-3\t\\N\ta\\tb\\\\c\\nd\\\\0\t\\\\x00ff\n");
    }

    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(
            redact("postgres://me:secret@db.example:5432/hs"),
            "postgres://me@db.example:5432/hs"
        );
        assert_eq!(
            Location::parse("sqlite:/tmp/x.sqlite"),
            Location::Sqlite("/tmp/x.sqlite".into())
        );
        assert!(matches!(
            Location::parse("postgresql://localhost/hs"),
            Location::Postgres(_)
        ));
    }
}
