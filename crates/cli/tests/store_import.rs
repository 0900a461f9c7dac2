//! `heapscope import` into both stores: the leaky service's series, a memory
//! log and a pprof profile give the same store in SQLite and PostgreSQL
//! (read back through the Store API), agree with `summary` and `leaks`;
//! re-imports are no-ops; dumps arriving out of order give the same leak
//! report; `--objects` holds every object, reference and root and the SQL of
//! docs/store.md runs; broken and foreign files are listed with reasons.
//!
//! Each test runs once per backend: SQLite always, PostgreSQL when the
//! harness finds a server (tests/common/pg.rs: required under CI).

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::pg;
use common::webprograms::leaky_series;
use common::{heapscope, scratch_dir, Run};
use heapscope_store::{RowOrder, Store};
use serde_json::{json, Value};
use tempfile::TempDir;

/// One store to run a test against.
struct Backend {
    name: &'static str,
    url: String,
    _dir: Option<TempDir>,
}

/// A fresh SQLite file, and a fresh PostgreSQL database when a server is
/// there.
fn backends(test: &str) -> Vec<Backend> {
    let dir = scratch_dir("heapscope-store-");
    let mut v = vec![Backend {
        name: "sqlite",
        url: dir.path().join("store.sqlite").display().to_string(),
        _dir: Some(dir),
    }];
    if let Some(server) = pg::server_or_skip(test) {
        v.push(Backend {
            name: "postgres",
            url: icu_database(server, test),
            _dir: None,
        });
    }
    v
}

/// A database whose text sorts as en-US does (ICU), as a team's server
/// usually would, rather than the harness's C locale: results must still
/// be SQLite's.
fn icu_database(server: &pg::PgServer, test: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name: String = test
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(30)
        .collect();
    let db = format!(
        "icu_{}_{}",
        name.to_lowercase(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let out = server
        .psql_command(&server.url("postgres"))
        .args([
            "-c",
            &format!(
                "CREATE DATABASE \"{db}\" TEMPLATE template0 ENCODING 'UTF8' \
                 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
            ),
        ])
        .output()
        .expect("run psql");
    if out.status.success() {
        return server.url(&db);
    }
    // A server built without ICU (or before 15): its C locale it is.
    eprintln!(
        "{test}: no ICU collation here ({}); using the C locale",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    server.fresh_database(test)
}

/// `heapscope import --store URL ARGS...`.
fn import<S: AsRef<OsStr>>(url: &str, args: &[S]) -> Run {
    let mut all: Vec<&OsStr> = vec!["import".as_ref(), "--store".as_ref(), url.as_ref()];
    all.extend(args.iter().map(AsRef::as_ref));
    heapscope(&all)
}

const TABLES: &[&str] = heapscope_store::schema::TABLES;

fn open(url: &str) -> Store {
    Store::open(Some(url)).unwrap_or_else(|e| panic!("open {url}: {e}"))
}

/// Rows per table.
fn row_counts(url: &str) -> Value {
    let mut s = open(url);
    let mut m = serde_json::Map::new();
    for t in TABLES {
        let n = s
            .db()
            .query_int(&format!("SELECT COUNT(*) FROM {t}"), &[])
            .unwrap();
        m.insert(t.to_string(), json!(n));
    }
    Value::Object(m)
}

const DIMS: &[&str] = &[
    "generation",
    "type",
    "class",
    "location",
    "file",
    "gem",
    "string",
];
const DOCS: &[&str] = &[
    "retained",
    "retained_class",
    "retained_location",
    "suspects",
    "folded",
];

/// Everything the pages read, through the Store API, as JSON; import times
/// (the clock) left out.
fn store_json(url: &str) -> Value {
    let mut s = open(url);
    let mut procs = Vec::new();
    for p in s.processes().unwrap() {
        let mut dumps = Vec::new();
        for d in s.dumps_of(p.id).unwrap() {
            let mut rows = serde_json::Map::new();
            for dim in DIMS {
                for (order, name) in [
                    (RowOrder::Bytes, "bytes"),
                    (RowOrder::Count, "count"),
                    (RowOrder::Key, "key"),
                ] {
                    let (r, total) = s.rows(d.id, dim, "", order, 0, 1_000_000).unwrap();
                    rows.insert(
                        format!("{dim} by {name}"),
                        json!({
                            "total": total,
                            "rows": r.iter().map(|g| json!([g.key, g.count, g.bytes, g.extra])).collect::<Vec<_>>(),
                        }),
                    );
                }
                // A filtered page, as the dump page's search box asks.
                let (r, total) = s.rows(d.id, dim, "ing", RowOrder::Bytes, 5, 10).unwrap();
                rows.insert(
                    format!("{dim} filtered"),
                    json!({"total": total, "keys": r.iter().map(|g| g.key.clone()).collect::<Vec<_>>()}),
                );
            }
            let docs: serde_json::Map<String, Value> = DOCS
                .iter()
                .map(|k| (k.to_string(), json!(s.doc(d.id, k).unwrap())))
                .collect();
            dumps.push(json!({
                "id": d.id, "process_id": d.process_id, "path": d.path, "file_name": d.file_name,
                "fingerprint": d.fingerprint, "file_size": d.file_size, "file_mtime": d.file_mtime,
                "taken_at": d.taken_at, "time_source": d.time_source, "seq": d.seq,
                "objects": d.objects, "bytes": d.bytes, "traced_objects": d.traced_objects,
                "ruby": d.ruby, "has_objects": d.has_objects, "meta": d.meta,
                "rows": rows, "docs": docs,
            }));
        }
        let series: Vec<Value> = s
            .series_of(p.id)
            .unwrap()
            .into_iter()
            .map(|x| json!({"id": x.id, "label": x.label, "format": x.format, "path": x.path, "points": x.points}))
            .collect();
        let mut profiles = Vec::new();
        for info in s.profiles(Some(p.id)).unwrap() {
            let (again, summary) = s.profile(info.id).unwrap().expect("a listed profile");
            assert_eq!(again, info);
            profiles.push(json!({"id": info.id, "process_id": info.process_id, "file_name": info.file_name, "path": info.path, "summary": summary}));
        }
        procs.push(json!({
            "id": p.id, "label": p.label, "pid": p.pid, "dumps": p.dumps,
            "first_time": p.first_time, "last_time": p.last_time, "verdict": p.verdict,
            "leak_report": s.leak_report(p.id).unwrap(),
            "dump_list": dumps, "series": series, "profiles": profiles,
        }));
    }
    json!({"processes": procs, "row_counts": row_counts(url)})
}

/// The first difference between two JSON values, as a path.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => {
                        if let Some(d) = first_difference(v, w, &format!("{at}.{k}")) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{at}.{k} only on the left")),
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{at}.{k} only on the right"))
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                if let Some(d) = first_difference(v, w, &format!("{at}[{i}]")) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| format!("{at}: {} against {} items", x.len(), y.len()))
        }
        _ => (a != b).then(|| {
            let short = |v: &Value| v.to_string().chars().take(300).collect::<String>();
            format!("{at}: {} against {}", short(a), short(b))
        }),
    }
}

fn assert_same(what: &str, a: &Value, b: &Value) {
    if let Some(d) = first_difference(a, b, "") {
        panic!("{what} differ at {d}");
    }
}

/// The leaky series copied into a directory of the test's own, with an agent
/// statistics log and a pprof profile of the last dump named after its pid
/// (so all three land in one process).
struct Inputs {
    _dir: TempDir,
    dir: PathBuf,
    dumps: Vec<PathBuf>,
}

fn inputs(with_extras: bool) -> Inputs {
    let series = leaky_series();
    let dir = scratch_dir("heapscope-store-in-");
    let d = dir.path().join("app");
    std::fs::create_dir(&d).unwrap();
    let dumps: Vec<PathBuf> = series
        .dumps
        .iter()
        .map(|p| {
            let to = d.join(p.file_name().unwrap());
            std::fs::copy(p, &to).unwrap();
            to
        })
        .collect();
    let pid = series.pid();
    let log = d.join(format!("gc-{pid}.jsonl"));
    let profile = d.join(format!("profile-{pid}-1700000240.pb.gz"));
    if with_extras {
        // The agent's statistics format (crates/agent/src/stats.rs), one
        // line per sample, for this pid: RSS and live slots over 5 minutes.
        let mut text = String::new();
        for i in 0..11u64 {
            text.push_str(&format!(
                "{{\"time\": {}.0, \"pid\": {pid}, \"rss_bytes\": {}, \"heap_live_slots\": {}, \"heap_free_slots\": 1000, \"total_allocated_objects\": {}, \"total_freed_objects\": {}, \"minor_gc_count\": {}, \"major_gc_count\": {}, \"malloc_increase_bytes\": 0, \"oldmalloc_increase_bytes\": 0, \"requests\": {}, \"jobs\": 0}}\n",
                1_700_000_000 + 30 * i,
                80_000_000 + 1_000_000 * i,
                150_000 + 2_000 * i,
                1_000_000 + 50_000 * i,
                900_000 + 48_000 * i,
                1 + i,
                i / 4,
                50 * i,
            ));
        }
        std::fs::write(&log, text).unwrap();
        heapscope(&[
            OsStr::new("pprof"),
            dumps.last().unwrap().as_os_str(),
            OsStr::new("-o"),
            profile.as_os_str(),
        ])
        .ok();
    }
    Inputs {
        _dir: dir,
        dir: d,
        dumps,
    }
}

fn imported_count(run: &Run) -> String {
    run.stderr
        .lines()
        .last()
        .unwrap_or_default()
        .split(" (")
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn series_log_and_profile_give_the_same_store_in_sqlite_and_postgres() {
    let test = "series_log_and_profile_give_the_same_store_in_sqlite_and_postgres";
    let input = inputs(true);
    let series = leaky_series();
    let mut stores = Vec::new();
    for b in backends(test) {
        let t = std::time::Instant::now();
        let run = import(&b.url, &[&input.dir]);
        run.ok();
        eprintln!(
            "{}: import of the series, log and profile: {:.2?}",
            b.name,
            t.elapsed()
        );
        assert_eq!(
            imported_count(&run),
            "7 imported, 0 already in the store, 0 failed",
            "{}: {}",
            b.name,
            run.stderr
        );
        let snap = store_json(&b.url);
        let procs = snap["processes"].as_array().unwrap();
        assert_eq!(procs.len(), 1, "{}: one process: {snap:#}", b.name);
        let p = &procs[0];
        assert_eq!(p["pid"], json!(series.pid()));
        assert_eq!(p["dumps"], json!(5));
        assert_eq!(p["verdict"], json!("leak"), "{}", b.name);
        assert_eq!(p["first_time"], json!(1_700_000_000));
        assert_eq!(p["last_time"], json!(1_700_000_240));
        let dumps = p["dump_list"].as_array().unwrap();
        assert_eq!(dumps.len(), 5);
        for (i, d) in dumps.iter().enumerate() {
            assert_eq!(d["seq"], json!(i), "{}: dumps in time order", b.name);
            assert_eq!(d["time_source"], json!("file name"));
            for dim in DIMS {
                assert!(
                    d["rows"][format!("{dim} by bytes")]["total"]
                        .as_i64()
                        .unwrap()
                        > 0,
                    "{}: dump {i} has no {dim} rows",
                    b.name
                );
            }
            for doc in DOCS {
                assert!(d["docs"][doc].is_string(), "{}: no {doc} document", b.name);
            }
        }
        // The leak report: the log's sites ranked first, the cache levelled off.
        let report = &p["leak_report"];
        assert_eq!(report["verdict"], json!("leak"));
        let leaks: Vec<&str> = report["leaks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["location"].as_str().unwrap())
            .collect();
        let leak_sites = series.locations("leak");
        assert!(
            leak_sites
                .iter()
                .any(|l| leaks.first() == Some(&l.as_str())),
            "{}: the first leak is not a RequestLog site ({leak_sites:?}): {leaks:?}",
            b.name
        );
        // Every RequestLog site (the issue's leaky_service.rb:50, wherever
        // the script's marks put it now) is ranked.
        for site in &leak_sites {
            assert!(
                leaks.contains(&site.as_str()),
                "{}: the log site {site} is not ranked: {leaks:?}",
                b.name
            );
        }
        let cache = &series.locations("cache")[0];
        assert!(
            !leaks.contains(&cache.as_str()),
            "{}: the cache is a leak",
            b.name
        );
        let caches: Vec<&str> = report["caches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["location"].as_str().unwrap())
            .collect();
        assert!(
            caches.contains(&cache.as_str()),
            "{}: the cache {cache} did not level off: {caches:?}",
            b.name
        );
        // The memory log: 11 points in time order; the profile's summary.
        let s = p["series"].as_array().unwrap();
        assert_eq!(s.len(), 1, "{}: {:#}", b.name, p["series"]);
        let points = s[0]["points"].as_array().unwrap();
        assert_eq!(points.len(), 11);
        assert_eq!(points[0], json!([1_700_000_000.0, 80_000_000, 150_000]));
        assert_eq!(points[10], json!([1_700_000_300.0, 90_000_000, 170_000]));
        let prof = p["profiles"].as_array().unwrap();
        assert_eq!(prof.len(), 1);
        let summary = &prof[0]["summary"];
        assert!(
            summary["samples"].as_u64().unwrap() > 0,
            "{}: {summary:#}",
            b.name
        );
        assert!(
            summary["sites"]
                .as_array()
                .unwrap()
                .iter()
                .any(|site| site.to_string().contains("leaky_service.rb")),
            "{}: the profile's sites name no leaky_service.rb line",
            b.name
        );
        // Consistent with the CLI: rows by type are `summary --by type`'s,
        // the leak report's leaks are `leaks`'.
        let cli_leaks = heapscope(&[
            OsStr::new("leaks"),
            series.dir.as_os_str(),
            OsStr::new("--top"),
            OsStr::new("20"),
            OsStr::new("--format"),
            OsStr::new("json"),
        ])
        .json();
        assert_same(
            &format!("{}: the stored leaks and `heapscope leaks`'", b.name),
            &report["leaks"],
            &cli_leaks["processes"][0]["leaks"],
        );
        assert_same(
            &format!("{}: the stored caches and `heapscope leaks`'", b.name),
            &report["caches"],
            &cli_leaks["processes"][0]["caches"],
        );
        for (i, dump) in input.dumps.iter().enumerate() {
            let cli = common::summary_json(dump, &["--by", "type", "--top", "0"]);
            let want: Vec<Value> = common::rows(&cli)
                .iter()
                .map(|r| json!([r["type"], r["count"], r["memsize"]]))
                .collect();
            let got: Vec<Value> = dumps[i]["rows"]["type by bytes"]["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| json!([r[0], r[1], r[2]]))
                .collect();
            let sort = |mut v: Vec<Value>| {
                v.sort_by_key(|x| x.to_string());
                v
            };
            assert_same(
                &format!(
                    "{}: dump {i}'s rows by type and `summary --by type`",
                    b.name
                ),
                &Value::Array(sort(got)),
                &Value::Array(sort(want)),
            );
            assert_eq!(
                json!(dumps[i]["objects"]),
                cli["totals"]["objects"],
                "{}: dump {i}'s object count",
                b.name
            );
        }
        stores.push((b.name, snap));
    }
    if let [(_, a), (_, b)] = &stores[..] {
        assert_same("the SQLite and PostgreSQL stores", a, b);
    }
}

#[test]
fn reimporting_is_a_no_op_also_under_another_path() {
    let test = "reimporting_is_a_no_op_also_under_another_path";
    let input = inputs(true);
    let copy = scratch_dir("heapscope-store-copy-");
    let moved = copy.path().join(input.dumps[2].file_name().unwrap());
    std::fs::copy(&input.dumps[2], &moved).unwrap();
    for b in backends(test) {
        import(&b.url, &[&input.dir]).ok();
        let before = store_json(&b.url);
        let again = import(&b.url, &[&input.dir]);
        again.ok();
        assert_eq!(
            imported_count(&again),
            "0 imported, 7 already in the store, 0 failed",
            "{}: {}",
            b.name,
            again.stderr
        );
        assert!(
            again.stderr.contains("already in the store:"),
            "{}",
            again.stderr
        );
        let copied = import(&b.url, &[&moved]);
        copied.ok();
        assert!(
            copied.stderr.contains("already in the store:"),
            "{}: a copy under another path is the same dump: {}",
            b.name,
            copied.stderr
        );
        assert_same(
            &format!("{}: the store before and after re-importing", b.name),
            &before,
            &store_json(&b.url),
        );
    }
}

#[test]
fn dumps_out_of_time_order_give_the_same_leak_report() {
    let test = "dumps_out_of_time_order_give_the_same_leak_report";
    let input = inputs(false);
    for b in backends(test) {
        // All at once, in one store...
        let together = match b.name {
            "sqlite" => {
                let dir = b._dir.as_ref().unwrap().path().join("together.sqlite");
                dir.display().to_string()
            }
            _ => icu_database(pg::server_or_skip(test).unwrap(), test),
        };
        import(&together, &[&input.dir]).ok();
        // ... and one at a time, 3 first, into another.
        for i in [2, 0, 1, 3, 4] {
            import(&b.url, &[&input.dumps[i]]).ok();
        }
        let report = |url: &str| {
            let mut s = open(url);
            let procs = s.processes().unwrap();
            assert_eq!(procs.len(), 1);
            assert_eq!(procs[0].dumps, 5);
            s.leak_report(procs[0].id).unwrap().unwrap()
        };
        let (a, c) = (report(&together), report(&b.url));
        assert_eq!(a["verdict"], json!("leak"));
        assert_same(
            &format!("{}: the leak report of dumps in and out of order", b.name),
            &a,
            &c,
        );
    }
}

/// The ```sql blocks of docs/store.md.
fn doc_sql() -> Vec<String> {
    let text = std::fs::read_to_string(common::repo_root().join("docs/store.md")).unwrap();
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match (&mut cur, line.trim_start()) {
            (None, l) if l.starts_with("```sql") => cur = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.push(cur.take().unwrap()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

/// Runs one statement with `:dump` bound to the dump id.
fn run_sql(s: &mut Store, sql: &str, dump_id: i64) -> Vec<Vec<heapscope_store::Value>> {
    let sql = sql
        .trim()
        .trim_end_matches(';')
        .replace(":dump", &dump_id.to_string());
    s.db()
        .query(&sql, &[])
        .unwrap_or_else(|e| panic!("docs/store.md's SQL failed: {e}\n{sql}"))
}

#[test]
fn objects_tables_hold_every_object_reference_and_root() {
    let test = "objects_tables_hold_every_object_reference_and_root";
    let input = inputs(false);
    let series = leaky_series();
    let last = input.dumps.last().unwrap();
    let text = std::fs::read_to_string(last).unwrap();
    let records: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let objects = records.iter().filter(|r| r["type"] != "ROOT").count() as i64;
    let refs: i64 = records
        .iter()
        .filter(|r| r["type"] != "ROOT")
        .map(|r| r["references"].as_array().map_or(0, Vec::len) as i64)
        .sum();
    let roots: i64 = records
        .iter()
        .filter(|r| r["type"] == "ROOT")
        .map(|r| r["references"].as_array().map_or(0, Vec::len) as i64)
        .sum();
    let blocks = doc_sql();
    assert!(
        blocks.len() >= 4,
        "docs/store.md has {} sql blocks",
        blocks.len()
    );
    let mut answers = Vec::new();
    for b in backends(test) {
        let t = std::time::Instant::now();
        import(&b.url, &[OsStr::new("--objects"), last.as_os_str()]).ok();
        eprintln!(
            "{}: import --objects of one dump ({objects} objects): {:.2?}",
            b.name,
            t.elapsed()
        );
        let mut s = open(&b.url);
        let dump = s.all_dumps().unwrap().remove(0);
        assert!(dump.has_objects);
        let count = |s: &mut Store, t: &str| {
            s.db()
                .query_int(
                    &format!("SELECT COUNT(*) FROM {t} WHERE dump_id = ?"),
                    &[dump.id.into()],
                )
                .unwrap()
        };
        assert_eq!(count(&mut s, "objects"), objects, "{}: objects", b.name);
        assert_eq!(count(&mut s, "refs"), refs, "{}: refs", b.name);
        assert_eq!(count(&mut s, "roots"), roots, "{}: roots", b.name);
        // The RequestLog Array: its referents are the log entries, 2 per
        // request.
        let container = &series.summary["containers"]["leak"];
        let (file, line) = container.as_str().unwrap().rsplit_once(':').unwrap();
        let arr = s
            .db()
            .query(
                "SELECT address FROM objects WHERE dump_id = ? AND type = 'ARRAY' AND file = ? AND line = ?",
                &[dump.id.into(), file.into(), line.parse::<i64>().unwrap().into()],
            )
            .unwrap();
        assert_eq!(arr.len(), 1, "{}: one RequestLog array", b.name);
        let address = arr[0][0].int().unwrap() as u64;
        let entries = 2 * 5 * series.summary["requests_per_dump"].as_u64().unwrap();
        let out = s.stored_refs(dump.id, address, true, 1_000_000).unwrap();
        assert_eq!(
            out.len() as u64,
            entries,
            "{}: the array's referents",
            b.name
        );
        let obj = s.stored_object(dump.id, address).unwrap().unwrap();
        assert_eq!(obj["type"], json!("ARRAY"));
        // Every stored object, reference and root, to compare the backends.
        let mut tables = Vec::new();
        for sql in [
            "SELECT address, type, class_address, class_name, memsize, generation, file, line, method, value FROM objects ORDER BY address",
            "SELECT from_address, to_address FROM refs ORDER BY from_address, to_address",
            "SELECT root, address FROM roots ORDER BY address, root",
        ] {
            let rows = s.db().query(sql, &[]).unwrap();
            tables.push(rows.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>());
        }
        // docs/store.md's examples run and answer sensibly.
        let mut results = Vec::new();
        for sql in &blocks {
            let rows = run_sql(&mut s, sql, dump.id);
            assert!(
                !rows.is_empty(),
                "{}: no rows from docs/store.md's\n{sql}",
                b.name
            );
            results.push(format!("{rows:?}"));
        }
        let all = results.join("\n");
        assert!(
            all.contains(&format!("Int({entries})]")),
            "{}: no example counts the RequestLog array's {entries} referents:\n{all}",
            b.name
        );
        assert!(all.contains("leaky_service.rb"), "{}: {all}", b.name);
        answers.push((b.name, results, tables));
    }
    if let [(_, _, a), (_, _, b)] = &answers[..] {
        for (t, (x, y)) in ["objects", "refs", "roots"].iter().zip(a.iter().zip(b)) {
            assert_eq!(x.len(), y.len(), "{t}");
            if let Some((i, (r, q))) = x.iter().zip(y).enumerate().find(|(_, (r, q))| r != q) {
                panic!("{t} row {i} differs: SQLite {r} against PostgreSQL {q}");
            }
        }
    }
    if let [(_, a, _), (_, b, _)] = &answers[..] {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert_eq!(
                x, y,
                "docs/store.md's sql block {i} answers differently on SQLite and PostgreSQL"
            );
        }
    }
    // With the sqlite3 shell too, as a reader of the docs would.
    if let Ok(out) = std::process::Command::new("sqlite3")
        .arg("-version")
        .output()
    {
        if out.status.success() {
            let b = scratch_dir("heapscope-store-sqlite3-");
            let db = b.path().join("s.sqlite");
            import(
                db.to_str().unwrap(),
                &[OsStr::new("--objects"), last.as_os_str()],
            )
            .ok();
            for sql in &blocks {
                let sql = sql.replace(":dump", "1");
                let out = std::process::Command::new("sqlite3")
                    .arg(&db)
                    .arg(&sql)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success() && !out.stdout.is_empty(),
                    "sqlite3 {sql}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// The good dumps and every kind of bad file.
fn broken_dir(good: &[PathBuf]) -> (TempDir, Vec<PathBuf>) {
    let dir = scratch_dir("heapscope-store-bad-");
    let d = dir.path();
    for g in good {
        std::fs::copy(g, d.join(g.file_name().unwrap())).unwrap();
    }
    let mut bad = Vec::new();
    let mut put = |name: &OsStr, bytes: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        bad.push(p);
    };
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    put(OsStr::new("junk.bin"), &junk);
    let text = std::fs::read(&good[0]).unwrap();
    // The first 20 records and half of the 21st: a dump cut off mid-write
    // and no ROOTs.
    let cut = text
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(19)
        .map(|(i, _)| i + 40)
        .unwrap();
    put(OsStr::new("heap-cut.dump"), &text[..cut]);
    put(OsStr::new("empty.dump"), b"");
    put(
        OsStr::new("array.json"),
        b"[{\"address\":\"0x1\",\"type\":\"STRING\"}]\n",
    );
    put(
        OsStr::new("notes.txt"),
        b"remember to rotate the logs\nand the keys\n",
    );
    put(
        OsStr::from_bytes(b"bad-\xff\xfe-name.dump"),
        b"\x00\x01\x02 not a dump\n",
    );
    (dir, bad)
}

#[test]
fn broken_and_foreign_files_are_listed_with_their_reasons() {
    let test = "broken_and_foreign_files_are_listed_with_their_reasons";
    let input = inputs(false);
    let good = &input.dumps[..2];
    let (dir, bad) = broken_dir(good);
    for b in backends(test) {
        let run = import(&b.url, &[dir.path()]);
        eprintln!("{}: {}", b.name, run.stderr);
        assert_eq!(run.code, Some(1), "{}: {}", b.name, run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        let failed: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("failed: "))
            .collect();
        for p in &bad {
            let name = p.file_name().unwrap().to_string_lossy();
            let shown = name.replace('\u{fffd}', "");
            let line = failed
                .iter()
                .find(|l| {
                    if name.contains('\u{fffd}') {
                        l.contains("bad-") && l.contains("-name.dump")
                    } else {
                        l.contains(&*shown)
                    }
                })
                .unwrap_or_else(|| {
                    panic!(
                        "{}: {name} is not listed as failed:\n{}",
                        b.name, run.stderr
                    )
                });
            let reason = line.rsplit_once(": ").map(|x| x.1).unwrap_or("");
            assert!(
                reason.len() > 10,
                "{}: no reason for {name}: {line}",
                b.name
            );
            if name == "heap-cut.dump" {
                assert!(
                    line.contains("line 21"),
                    "{}: the cut line's number: {line}",
                    b.name
                );
            }
            let expect = match &*name {
                "empty.dump" => "empty file",
                "array.json" => "JSON array",
                "junk.bin" => "binary data",
                "heap-cut.dump" => "cut off",
                "notes.txt" => "line 1",
                _ => "binary data",
            };
            assert!(
                line.contains(expect),
                "{}: {name}: not {expect:?}: {line}",
                b.name
            );
        }
        assert_eq!(failed.len(), bad.len(), "{}: {}", b.name, run.stderr);
        assert_eq!(
            imported_count(&run),
            format!("2 imported, 0 already in the store, {} failed", bad.len()),
            "{}",
            run.stderr
        );
        let mut s = open(&b.url);
        assert_eq!(s.all_dumps().unwrap().len(), 2, "{}", b.name);
        // Only bad files: exit 2, and nothing is stored.
        let only = scratch_dir("heapscope-store-onlybad-");
        for p in &bad {
            std::fs::copy(p, only.path().join(p.file_name().unwrap())).unwrap();
        }
        let fresh = match b.name {
            "sqlite" => only.path().join("store.sqlite").display().to_string(),
            _ => icu_database(pg::server_or_skip(test).unwrap(), test),
        };
        // The SQLite store sits in the directory imported: its own files
        // are not inputs.
        let run = import(&fresh, &[only.path()]);
        assert!(!run.stderr.contains("store.sqlite:"), "{}", run.stderr);
        assert_eq!(run.code, Some(2), "{}: {}", b.name, run.stderr);
        assert!(run.stdout.is_empty());
        assert!(
            run.stderr.ends_with(&format!(
                "0 imported, 0 already in the store, {} failed",
                bad.len()
            )) || imported_count(&run)
                == format!("0 imported, 0 already in the store, {} failed", bad.len()),
            "{}",
            run.stderr
        );
        assert_eq!(open(&fresh).all_dumps().unwrap().len(), 0);
    }
}

#[test]
fn every_import_option_is_in_docs_store_md() {
    let help = heapscope(&["import", "--help"]);
    help.ok();
    let doc = std::fs::read_to_string(common::repo_root().join("docs/store.md")).unwrap();
    let text = help.stdout_text();
    let mut seen = 0;
    for word in text.split(|c: char| c.is_whitespace() || c == ',') {
        let opt = word.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        if opt.starts_with("--") && opt.len() > 3 && opt != "--help" {
            seen += 1;
            assert!(
                doc.contains(&format!("`{opt}")),
                "docs/store.md does not describe {opt}"
            );
        }
    }
    assert!(seen >= 5, "{text}");
}

#[test]
fn concurrent_importers_of_one_series_all_succeed() {
    let test = "concurrent_importers_of_one_series_all_succeed";
    let input = inputs(false);
    for b in backends(test) {
        // Five importers at once, one dump each, into a new store: they
        // race to create the schema, the process and its leak report.
        let children: Vec<_> = input
            .dumps
            .iter()
            .map(|d| spawn_import(&b.url, d))
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}: a concurrent import failed: {}",
                b.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let together = match b.name {
            "sqlite" => b
                ._dir
                .as_ref()
                .unwrap()
                .path()
                .join("together.sqlite")
                .display()
                .to_string(),
            _ => icu_database(pg::server_or_skip(test).unwrap(), test),
        };
        import(&together, &[&input.dir]).ok();
        let mut s = open(&b.url);
        let procs = s.processes().unwrap();
        assert_eq!(procs.len(), 1, "{}: {procs:?}", b.name);
        assert_eq!(procs[0].dumps, 5, "{}", b.name);
        let got = s.leak_report(procs[0].id).unwrap().unwrap();
        let mut t = open(&together);
        let id = t.processes().unwrap()[0].id;
        assert_same(
            &format!(
                "{}: the leak report of concurrent and of one import",
                b.name
            ),
            &t.leak_report(id).unwrap().unwrap(),
            &got,
        );
    }
}

/// `heapscope import --store URL PATH` started in the background, its
/// stderr kept for the caller.
fn spawn_import(url: &str, path: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args(["import", "--store", url])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_importers_of_the_same_files_at_once_store_each_once() {
    let test = "two_importers_of_the_same_files_at_once_store_each_once";
    let input = inputs(false);
    for b in backends(test) {
        import(&b.url, &[&input.dumps[0]]).ok(); // the schema exists
        let children: Vec<_> = (0..2).map(|_| spawn_import(&b.url, &input.dir)).collect();
        let mut imported = 0;
        let mut already = 0;
        for c in children {
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{}: {err}", b.name);
            imported += err.lines().filter(|l| l.starts_with("imported ")).count();
            already += err
                .lines()
                .filter(|l| l.starts_with("already in the store: "))
                .count();
        }
        assert_eq!((imported, already), (4, 6), "{}", b.name);
        let mut s = open(&b.url);
        assert_eq!(s.all_dumps().unwrap().len(), 5, "{}", b.name);
        assert_eq!(s.processes().unwrap()[0].dumps, 5, "{}", b.name);
    }
}

#[test]
fn the_filter_finds_the_same_rows_in_both_databases() {
    let test = "the_filter_finds_the_same_rows_in_both_databases";
    common::require_ruby();
    // Ruby 3.1 leaves non-ASCII string values out of dumps, but not file
    // names: the script sits at a non-ASCII path and allocates there.
    let dir = scratch_dir("heapscope-store-filter-");
    let dump = dir.path().join("heap-filter.dump");
    let src = dir.path().join("Größe Ärger");
    std::fs::create_dir(&src).unwrap();
    let script = src.join("naïve Café.rb");
    std::fs::write(
        &script,
        "require \"objspace\"\nObjectSpace.trace_object_allocations_start\n\
         KEEP = [\"100% off_sale\", \"100x offXsale\"].flat_map { |s| [s * 3, s * 3] } + Array.new(50) { |i| \"kept #{i}\" }\n\
         GC.start\nFile.open(ARGV[0], \"w\") { |f| ObjectSpace.dump_all(output: f) }\n",
    )
    .unwrap();
    let st = std::process::Command::new("ruby")
        .arg(&script)
        .arg(&dump)
        .status()
        .unwrap();
    assert!(st.success());
    let filters = [
        ("file", "Ärger"),
        ("file", "ärger"),
        ("file", "ÄRGER"),
        ("file", "größe ä"),
        ("file", "GRÖSSE"),
        ("file", "CAFÉ"),
        ("file", "café"),
        ("location", "NAÏVE"),
        ("location", "naïve"),
        ("string", "% off_"),
        ("string", "x off"),
        ("string", "X OFF"),
    ];
    let mut answers = Vec::new();
    for b in backends(test) {
        import(&b.url, &[&dump]).ok();
        let mut s = open(&b.url);
        let id = s.all_dumps().unwrap()[0].id;
        let mut got = Vec::new();
        for (dim, f) in filters {
            let (rows, total) = s.rows(id, dim, f, RowOrder::Key, 0, 100).unwrap();
            let keys: Vec<String> = rows.into_iter().map(|r| r.key).collect();
            got.push((f, total, keys));
        }
        let find = |f: &str| got.iter().find(|g| g.0 == f).unwrap().2.clone();
        // The exact text always finds its row; ASCII letters fold.
        for f in ["Ärger", "café", "naïve"] {
            assert!(
                find(f)
                    .iter()
                    .any(|k| k.to_ascii_lowercase().contains(&f.to_ascii_lowercase())),
                "{}: {f}: {got:?}",
                b.name
            );
        }
        // % and _ are literal.
        assert_eq!(find("% off_").len(), 1, "{}: {got:?}", b.name);
        assert_eq!(find("x off"), find("X OFF"), "{}", b.name);
        assert!(find("x off")
            .iter()
            .all(|k| k.to_lowercase().contains("x off")));
        answers.push((b.name, format!("{got:?}")));
    }
    if let [(_, a), (_, b)] = &answers[..] {
        assert_eq!(
            a, b,
            "the filter finds different rows in SQLite and PostgreSQL"
        );
    }
}

#[test]
fn a_real_watch_log_imports_the_same_in_both_databases() {
    let test = "a_real_watch_log_imports_the_same_in_both_databases";
    common::require_ruby();
    let dir = scratch_dir("heapscope-store-watch-");
    // A Ruby process that grows for about 2 s, watched every 100 ms until
    // it exits.
    let mut ruby = std::process::Command::new("ruby")
        .args([
            "-e",
            "a = []; 40.times { a << ('x' * 200_000); sleep 0.05 }",
        ])
        .spawn()
        .unwrap();
    let log = dir.path().join(format!("watch-{}.jsonl", ruby.id()));
    let watch = heapscope(&[
        OsStr::new("watch"),
        OsStr::new(&ruby.id().to_string()),
        OsStr::new("--interval"),
        OsStr::new("100ms"),
        OsStr::new("-o"),
        log.as_os_str(),
    ]);
    ruby.wait().unwrap();
    watch.ok();
    let lines = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    assert!(lines >= 5, "watch wrote {lines} records");
    let mut seen = Vec::new();
    for b in backends(test) {
        let run = import(&b.url, &[&log]);
        run.ok();
        assert!(run.stderr.contains("memory log"), "{}", run.stderr);
        let snap = store_json(&b.url);
        let procs = snap["processes"].as_array().unwrap();
        assert_eq!(procs.len(), 1, "{}: {snap:#}", b.name);
        assert_eq!(procs[0]["pid"], json!(ruby.id()), "{}", b.name);
        let points = procs[0]["series"][0]["points"].as_array().unwrap();
        assert_eq!(points.len(), lines, "{}", b.name);
        let rss: Vec<i64> = points.iter().map(|p| p[1].as_i64().unwrap()).collect();
        assert!(
            rss.last() > rss.first(),
            "{}: the RSS of a growing process: {rss:?}",
            b.name
        );
        seen.push(snap);
    }
    if let [a, b] = &seen[..] {
        assert_same("the SQLite and PostgreSQL stores of a watch log", a, b);
    }
}

/// The agent writes dumps to one directory and its statistics and profiles
/// to another: they still make one process, whichever is imported first.
#[test]
fn a_pids_logs_and_profiles_join_its_dumps_from_another_directory() {
    let test = "a_pids_logs_and_profiles_join_its_dumps_from_another_directory";
    let input = inputs(true);
    let pid = leaky_series().pid();
    let other = scratch_dir("heapscope-store-profiles-");
    for name in [
        format!("gc-{pid}.jsonl"),
        format!("profile-{pid}-1700000240.pb.gz"),
    ] {
        std::fs::rename(input.dir.join(&name), other.path().join(&name)).unwrap();
    }
    let other_dir = other.path().to_path_buf();
    for order in [[&input.dir, &other_dir], [&other_dir, &input.dir]] {
        for b in backends(test) {
            import(&b.url, &[order[0].as_os_str()]).ok();
            import(&b.url, &[order[1].as_os_str()]).ok();
            let mut s = open(&b.url);
            let procs = s.processes().unwrap();
            assert_eq!(procs.len(), 1, "{}: one process: {procs:?}", b.name);
            let id = procs[0].id;
            assert_eq!(procs[0].dumps, input.dumps.len() as i64, "{}", b.name);
            assert_eq!(s.series_of(id).unwrap().len(), 1, "{}: the log", b.name);
            assert_eq!(
                s.profiles(Some(id)).unwrap().len(),
                1,
                "{}: the profile",
                b.name
            );
        }
    }
}
