//! `heapscope import`: what goes into the store for each kind of file.
//!
//! Every file is one transaction: a dump's rows, documents, objects and its
//! process's leak report land together or not at all, so a failed or killed
//! import leaves the store as it was. A file already in the store (same
//! fingerprint: size plus a hash of its first and last MiB) is skipped.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use heapscope_analysis::group::SortBy;
use heapscope_analysis::group::{group_objects, group_objects_by_each, Group, GroupKey};
use heapscope_analysis::leaks::{parse_file_name, LeakOptions, SeriesBuilder};
use heapscope_analysis::memseries::parse_log;
use heapscope_analysis::retained::{
    reachable_app_objects, top_groups, top_objects, unreachable_groups,
};
use heapscope_analysis::summary::{ObjectFilter, Totals};
use heapscope_analysis::suspects::{find_suspects, SuspectOptions};
use heapscope_graph::{Dominators, Graph, GraphOptions};
use heapscope_heap::Heap;
use heapscope_reader::{read_input, Dump, Input, ReadOptions};
use heapscope_report::leaks::{leaks_json, ProcessReport};
use heapscope_report::retained::{retained_json, RetainedReport};
use heapscope_report::suspects::suspects_json;
use serde_json::{json, Value as Json};

use crate::db::{Db, DbError, Value};
use crate::Store;

/// The groupings each dump page shows, in tab order.
pub const DIMENSIONS: &[(&str, GroupKey)] = &[
    ("generation", GroupKey::Generation),
    ("type", GroupKey::Type),
    ("class", GroupKey::Class),
    ("location", GroupKey::Location),
    ("file", GroupKey::File),
    ("gem", GroupKey::Gem),
    ("string", GroupKey::String),
];

/// Rows kept per grouping (the largest by bytes); the page says when a
/// grouping had more.
pub const MAX_ROWS: usize = 20_000;
/// Objects and groups kept in each retained-size list.
pub const TOP_RETAINED: usize = 100;
/// Leak sites listed (and given root paths) per process.
pub const TOP_LEAKS: usize = 20;
/// Depth of the stored dominator flame graph.
pub const FLAME_DEPTH: usize = 40;

/// What `import` tells its caller while it works on a big dump (a progress
/// bar, in the CLI).
pub trait ImportProgress: Send + Sync {
    /// A dump of `size` bytes is being read: the reader calls what this
    /// returns with the bytes read so far.
    fn reading(&self, name: &str, size: u64) -> Option<heapscope_reader::ProgressFn>;
    /// Reading is done; the dump is being analysed and stored.
    fn analysing(&self, name: &str);
    /// The file is done (imported or not).
    fn done(&self);
}

/// A shared [`ImportProgress`].
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<dyn ImportProgress>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Also store every object, reference and root (`--objects`).
    pub objects: bool,
    /// Put every dump under this process instead of the one its name gives.
    pub process: Option<String>,
    /// Parser threads (0: one per core).
    pub threads: usize,
    /// Told of each big dump's reading and analysis.
    pub progress: Option<Progress>,
}

/// What became of one input file.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Imported {
        path: PathBuf,
        kind: Kind,
        id: i64,
        detail: String,
        warnings: Vec<String>,
    },
    AlreadyThere {
        path: PathBuf,
        kind: Kind,
        id: i64,
    },
    Failed {
        path: PathBuf,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dump,
    Series,
    Profile,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Dump => "dump",
            Kind::Series => "memory log",
            Kind::Profile => "pprof profile",
        }
    }
}

/// Lists the files named: files as they are, directories' files (sorted,
/// not recursing), glob patterns expanded. Names that match nothing come
/// back as failures.
pub fn expand(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Outcome>) {
    let mut files = Vec::new();
    let mut failed = Vec::new();
    for p in paths {
        if p.is_dir() {
            match std::fs::read_dir(p) {
                Ok(rd) => {
                    let mut inside: Vec<PathBuf> = rd
                        .filter_map(|e| e.ok())
                        .map(|e| e.path())
                        .filter(|p| p.is_file() && !is_hidden(p))
                        .collect();
                    inside.sort();
                    files.extend(inside);
                }
                Err(e) => failed.push(Outcome::Failed {
                    path: p.clone(),
                    reason: format!("cannot list the directory: {e}"),
                }),
            }
        } else if p.exists() {
            files.push(p.clone());
        } else if let Some(pattern) = p.to_str().filter(|s| s.contains(['*', '?', '['])) {
            match glob_files(pattern) {
                Ok(v) if !v.is_empty() => files.extend(v),
                Ok(_) => failed.push(Outcome::Failed {
                    path: p.clone(),
                    reason: "no file matches this pattern".into(),
                }),
                Err(e) => failed.push(Outcome::Failed {
                    path: p.clone(),
                    reason: e,
                }),
            }
        } else {
            failed.push(Outcome::Failed {
                path: p.clone(),
                reason: "no such file or directory".into(),
            });
        }
    }
    files.dedup();
    (files, failed)
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// The files a quoted glob pattern names (the shell expands unquoted
/// ones), sorted.
fn glob_files(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let paths = glob::glob(pattern).map_err(|e| format!("bad pattern: {e}"))?;
    let mut out: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// Size plus a hash of the first and last MiB: cheap on a 6 GB dump, and a
/// changed dump (another run written to the same name) differs in both.
pub fn fingerprint(path: &Path) -> std::io::Result<(String, u64, Option<i64>)> {
    let mut f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    let size = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64);
    const SPAN: u64 = 1 << 20;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(&size.to_le_bytes());
    let mut buf = Vec::with_capacity(SPAN as usize);
    (&mut f).take(SPAN).read_to_end(&mut buf)?;
    hasher.update(&buf);
    if size > SPAN {
        buf.clear();
        f.seek(SeekFrom::Start(size.saturating_sub(SPAN).max(SPAN)))?;
        f.take(SPAN).read_to_end(&mut buf)?;
        hasher.update(&buf);
    }
    Ok((format!("{size}-{:032x}", hasher.digest128()), size, mtime))
}

/// What a file looks like from its first bytes.
enum Sniffed {
    Dump,
    Profile,
    Log,
}

fn sniff(path: &Path) -> std::io::Result<Sniffed> {
    let mut head = Vec::new();
    std::fs::File::open(path)?
        .take(64 << 10)
        .read_to_end(&mut head)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        // gzip: a compressed dump starts with a JSON record, a pprof
        // profile with protobuf bytes. A few KiB of it tell, without
        // inflating a multi-GB dump; the profile is checked on import.
        let mut inner = Vec::new();
        let _ = flate2::read::GzDecoder::new(&head[..])
            .take(4096)
            .read_to_end(&mut inner);
        return Ok(if inner.trim_ascii_start().starts_with(b"{") {
            Sniffed::Dump
        } else {
            Sniffed::Profile
        });
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) || head.starts_with(&[0x50, 0x2a, 0x4d, 0x18]) {
        return Ok(Sniffed::Dump);
    }
    let first = head
        .split(|&b| b == b'\n')
        .map(|l| l.trim_ascii())
        .find(|l| !l.is_empty())
        .unwrap_or(&[]);
    let looks_like_record = first.starts_with(b"{")
        && [
            &b"\"address\""[..],
            b"\"type\":\"ROOT\"",
            b"\"type\": \"ROOT\"",
        ]
        .iter()
        .any(|needle| memchr::memmem::find(first, needle).is_some());
    if looks_like_record {
        return Ok(Sniffed::Dump);
    }
    Ok(Sniffed::Log)
}

/// Stage timings on stderr when `HEAPSCOPE_TIMINGS` is set (for the
/// benchmarks), as the analysis commands print them.
fn lap(start: std::time::Instant, what: &str) {
    if std::env::var_os("HEAPSCOPE_TIMINGS").is_some() {
        eprintln!(
            "heapscope: timing: {what} done at {:.3} s",
            start.elapsed().as_secs_f64()
        );
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// One dump, analysed: everything its pages need.
pub struct DumpRecord {
    pub objects: u64,
    pub bytes: u64,
    pub traced_objects: u64,
    pub ruby: Option<String>,
    pub meta: Json,
    pub rows: Vec<(&'static str, String, u64, u64, Option<String>)>,
    pub docs: Vec<(&'static str, String)>,
}

/// A hint at the Ruby version from what the dump's records look like.
fn ruby_hint(heap: &Heap) -> Option<String> {
    let f = &heap.facts;
    Some(if f.integer_flags {
        "4.0+".into()
    } else if f.has_shapes || f.has_slot_size {
        "3.2 to 3.4".into()
    } else {
        "before 3.2".into()
    })
}

/// Everything a dump's pages show, computed once at import.
pub fn analyse(
    dump: &Dump,
    start: std::time::Instant,
    plan: Option<LeakPlan>,
) -> (DumpRecord, Option<LeakUpdate>) {
    let heap = &dump.heap;
    // The groupings and the graph are independent: on two cores, half the
    // time.
    let graph = Graph::new(heap, GraphOptions::default());
    lap(start, "graph");
    let graph = &graph;
    let (rows, leaks, (graph_docs, reach)) = std::thread::scope(|s| {
        // Beside the dominator tree: the groupings, then the leak fold
        // (which needs the graph for its paths, not the dominators).
        let rows = s.spawn(move || {
            let r = group_rows(heap);
            lap(start, "groupings");
            let leaks = plan.map(|plan| plan.fold(heap, graph));
            lap(start, "leak fold");
            (r, leaks)
        });
        let docs = graph_docs(dump, graph, start);
        let (rows, leaks) = rows.join().expect("grouping thread");
        (rows, leaks, docs)
    });
    let (rows, row_counts, totals) = rows;
    let meta = json!({
        "source": dump.source,
        "totals": {
            "objects": totals.objects,
            "bytes": totals.memsize,
            "dump_objects": totals.dump_objects,
            "roots": totals.roots,
            "shapes": totals.shapes,
            "traced_objects": totals.traced_objects,
            "tracer_bytes": totals.tracer_memsize,
            "agent_objects": totals.agent.objects,
            "agent_bytes": totals.agent.bytes,
            "free_slots": totals.free_slots,
            "reachable_objects": reach.0,
            "reachable_bytes": reach.1,
        },
        "facts": {
            "has_shapes": heap.facts.has_shapes,
            "integer_flags": heap.facts.integer_flags,
            "max_generation": heap.facts.max_generation,
            "dangling_refs": heap.facts.dangling_refs,
            "duplicate_addresses": heap.facts.duplicate_addresses,
        },
        "diagnostics": heapscope_report::diagnostics_json(&dump.diagnostics),
        "warnings": dump.diagnostics.structure_warnings(&dump.source),
        "row_counts": row_counts,
    });
    let record = DumpRecord {
        objects: totals.objects,
        bytes: totals.memsize,
        traced_objects: totals.traced_objects,
        ruby: ruby_hint(heap),
        meta,
        rows,
        docs: graph_docs,
    };
    (record, leaks)
}

/// A process's leak series as a new dump finds it: the saved state to fold
/// the dump into, read before the dump is analysed so the fold can run
/// beside the other analyses.
pub struct LeakPlan {
    /// The process's dumps before this one (checked again in the
    /// transaction: another importer may have added one meanwhile).
    dumps_before: usize,
    builder: SeriesBuilder,
    pid: Option<u32>,
    paths: Vec<String>,
    times: Vec<Option<i64>>,
}

/// What a fold gives, ready to store.
pub struct LeakUpdate {
    dumps_before: usize,
    dumps: i64,
    first: Option<i64>,
    last: Option<i64>,
    verdict: &'static str,
    body: String,
    state: Option<Vec<u8>>,
}

impl LeakPlan {
    fn fold(mut self, heap: &Heap, graph: &Graph<'_>) -> LeakUpdate {
        self.builder.add_dump(heap);
        let state = self.builder.save();
        let report = self
            .builder
            .finish_with(heap, Some(graph), &self.times, &leak_options());
        let mut u = leak_update(
            self.pid,
            &self.paths,
            report,
            &self.times,
            Vec::new(),
            Some(state),
        );
        u.dumps_before = self.dumps_before;
        u
    }
}

/// The plan for a dump of process `key` taken at `taken_at`, when its
/// state can simply move forward (the process is new, or the dump is later
/// than all its others); `None` when the series must be rebuilt.
fn leak_plan(
    db: &mut Db,
    key: &str,
    pid: Option<u32>,
    path: &str,
    taken_at: Option<i64>,
) -> Result<Option<LeakPlan>, DbError> {
    let row = db.query_row(
        "SELECT id, leak_state, leak_last_time FROM processes WHERE key = ?",
        &[key.into()],
    )?;
    let Some(row) = row else {
        return Ok(Some(LeakPlan {
            dumps_before: 0,
            builder: SeriesBuilder::new(false, false),
            pid,
            paths: vec![path.to_string()],
            times: vec![taken_at],
        }));
    };
    let mut it = row.into_iter();
    let process_id = it.next().and_then(|v| v.int()).unwrap_or(0);
    let state = it.next().and_then(Value::into_blob);
    let last_time = it.next().and_then(|v| v.int());
    let in_order = match (last_time, taken_at) {
        (Some(last), Some(t)) => t >= last,
        _ => true,
    };
    let rows = db.query(
        "SELECT path, taken_at FROM dumps WHERE process_id = ? ORDER BY taken_at NULLS LAST, id",
        &[process_id.into()],
    )?;
    let Some(builder) = state.as_deref().and_then(SeriesBuilder::restore) else {
        return Ok(rows.is_empty().then(|| LeakPlan {
            dumps_before: 0,
            builder: SeriesBuilder::new(false, false),
            pid,
            paths: vec![path.to_string()],
            times: vec![taken_at],
        }));
    };
    if !in_order || builder.dumps() != rows.len() {
        return Ok(None);
    }
    let mut paths: Vec<String> = rows
        .iter()
        .map(|r| r[0].text().unwrap_or("").to_string())
        .collect();
    let mut times: Vec<Option<i64>> = rows.iter().map(|r| r[1].int()).collect();
    paths.push(path.to_string());
    times.push(taken_at);
    Ok(Some(LeakPlan {
        dumps_before: rows.len(),
        builder,
        pid,
        paths,
        times,
    }))
}

type Rows = (
    Vec<(&'static str, String, u64, u64, Option<String>)>,
    Json,
    Totals,
);

/// One grouping's name, key, rows and row count before the cut.
type Grouped = (&'static str, GroupKey, (Vec<Group>, usize));

fn group_rows(heap: &Heap) -> Rows {
    // The objects `summary` counts (the agent's and the tracer's left out),
    // with its totals.
    let filter = ObjectFilter::default();
    let mut totals = Totals::of_dump(heap, &filter);
    let mut ids = Vec::with_capacity(heap.len());
    for id in heap.ids() {
        if !filter.matches_but_agent(heap, id) {
            continue;
        }
        if heap.is_agent(id) {
            totals.agent.add(heap.memsize(id));
            continue;
        }
        totals.objects += 1;
        totals.memsize = totals.memsize.saturating_add(heap.memsize(id));
        ids.push(id);
    }
    let plain: Vec<(&'static str, GroupKey)> = DIMENSIONS
        .iter()
        .copied()
        .filter(|(_, k)| *k != GroupKey::String)
        .collect();
    let keys: Vec<GroupKey> = plain.iter().map(|p| p.1).collect();
    let mut grouped: Vec<Grouped> = plain
        .iter()
        .zip(group_objects_by_each(
            heap,
            ids.iter().copied(),
            &keys,
            SortBy::Memsize,
            Some(MAX_ROWS),
        ))
        .map(|(&(dim, key), g)| (dim, key, g))
        .collect();
    grouped.push((
        "string",
        GroupKey::String,
        group_objects(
            heap,
            ids.iter().copied(),
            &[GroupKey::String],
            SortBy::Memsize,
            Some(MAX_ROWS),
        ),
    ));
    let mut rows = Vec::new();
    let mut counts = serde_json::Map::new();
    for (dim, key, (groups, total)) in grouped {
        counts.insert(dim.into(), json!(total));
        for g in groups {
            let label = g.key[0].display(key);
            let extra = (!g.locations.is_empty()).then(|| {
                json!(g
                    .locations
                    .iter()
                    .map(|(l, c)| json!([l, c]))
                    .collect::<Vec<_>>())
                .to_string()
            });
            rows.push((dim, label, g.count, g.memsize, extra));
        }
    }
    (rows, Json::Object(counts), totals)
}

/// What the dominator stages give: documents, and reachable objects and
/// bytes.
type GraphDocs = (Vec<(&'static str, String)>, (u64, u64));

fn graph_docs(dump: &Dump, graph: &Graph<'_>, start: std::time::Instant) -> GraphDocs {
    let dom = Dominators::compute(graph);
    lap(start, "dominators");
    let dom = &dom;
    // Independent readers of the graph and the dominator tree: the leak
    // fold and the suspects on their own threads, the retained lists and
    // the flame graph here.
    std::thread::scope(|s| {
        // Two workers, split by measured cost: suspects and the retained
        // groups by location there; the retained objects, the groups by
        // class and the flame graph here.
        let other = s.spawn(move || {
            let found = find_suspects(
                graph,
                dom,
                SuspectOptions {
                    path_ends: Some(10),
                    ..SuspectOptions::default()
                },
            );
            let suspects = suspects_json(&dump.source, &found).to_string();
            lap(start, "suspects");
            let by_location = top_groups(graph, dom, &[GroupKey::Location], Some(TOP_RETAINED));
            (suspects, by_location)
        });
        let mut docs = Vec::new();
        let unreachable = unreachable_groups(graph, dom);
        let objects = top_objects(graph, dom, TOP_RETAINED);
        let reach = (reachable_app_objects(graph, dom), dom.reachable_bytes());
        let report =
            |by: &[GroupKey],
             groups: &[heapscope_analysis::retained::RetainedGroup],
             total_groups,
             objects: &[heapscope_analysis::retained::RetainedObject]| {
                retained_json(&RetainedReport {
                    source: &dump.source,
                    reachable_objects: reach.0,
                    reachable_bytes: reach.1,
                    unreachable_objects: unreachable.iter().map(|u| u.1).sum(),
                    unreachable_bytes: unreachable.iter().map(|u| u.2).sum(),
                    unreachable: &unreachable,
                    objects,
                    by,
                    groups,
                    total_groups,
                    coverage: graph.root_coverage(),
                    agent: graph.agent_share(),
                    agent_included: false,
                })
                .to_string()
            };
        docs.push(("retained", report(&[], &[], 0, &objects)));
        let (groups, total) = top_groups(graph, dom, &[GroupKey::Class], Some(TOP_RETAINED));
        docs.push((
            "retained_class",
            report(&[GroupKey::Class], &groups, total, &[]),
        ));
        docs.push(("folded", folded_text(graph, dom)));
        lap(start, "flame graph");
        let (suspects, (groups, total)) = other.join().expect("analysis thread");
        docs.push((
            "retained_location",
            report(&[GroupKey::Location], &groups, total, &[]),
        ));
        lap(start, "retained");
        docs.push(("suspects", suspects));
        (docs, reach)
    })
}

/// The dominator flame graph's stacks, as text. Objects retaining under
/// 1/20,000 of the heap are too narrow to see: they count in their
/// dominator's frame, and those only the roots dominate in one
/// "(smaller objects)" frame.
fn folded_text(graph: &Graph<'_>, dom: &Dominators) -> String {
    let min = (dom.reachable_bytes() / 20_000).max(1);
    let mut folded = heapscope_export::flame::folded_stacks_above(graph, dom, FLAME_DEPTH, min);
    let rest = dom.reachable_bytes().saturating_sub(folded.total());
    if rest > 0 {
        folded.lines.push(("(smaller objects)".to_string(), rest));
    }
    let mut text = Vec::new();
    let _ = folded.write_text(&mut text);
    String::from_utf8_lossy(&text).into_owned()
}

/// The process a dump belongs to: `--process`, else its directory and the
/// pid in its name (`heap-<pid>-<unixtime>-<seq>.dump`), else its directory.
pub fn process_of(path: &Path, forced: Option<&str>) -> (String, Option<u32>, String) {
    if let Some(name) = forced {
        return (format!("name:{name}"), None, name.to_string());
    }
    let dir = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| path.parent().map(Path::to_path_buf).unwrap_or_default());
    let (_, pid) = parse_file_name(path);
    let dir_text = dir.display().to_string();
    match pid {
        Some(pid) => (
            format!("pid:{pid}:{dir_text}"),
            Some(pid),
            format!("pid {pid} ({dir_text})"),
        ),
        None => (format!("dir:{dir_text}"), None, dir_text),
    }
}

fn sql_err(e: DbError) -> String {
    e.0
}

impl Store {
    /// Imports files and directories; `progress` hears of each file as it is
    /// done. Dumps go in time order within each process, so each folds into
    /// its process's leak analysis.
    pub fn import(
        &mut self,
        inputs: &[PathBuf],
        opts: &ImportOptions,
        progress: &mut dyn FnMut(&Outcome),
    ) -> Vec<Outcome> {
        let (mut files, mut outcomes) = expand(inputs);
        // The store's own files, when the directory holding them is imported.
        if let crate::db::Location::Sqlite(db) = &self.db.location {
            let own: Vec<PathBuf> = ["", "-wal", "-shm", "-journal"]
                .iter()
                .filter_map(|suffix| {
                    let mut p = db.clone().into_os_string();
                    p.push(suffix);
                    std::fs::canonicalize(p).ok()
                })
                .collect();
            files.retain(|f| std::fs::canonicalize(f).map_or(true, |c| !own.contains(&c)));
        }
        for o in &outcomes {
            progress(o);
        }
        let mut dumps = Vec::new();
        let mut others = Vec::new();
        for f in files {
            match sniff(&f) {
                Ok(Sniffed::Dump) => dumps.push(f),
                Ok(Sniffed::Profile) => others.push((f, Kind::Profile)),
                Ok(Sniffed::Log) => others.push((f, Kind::Series)),
                Err(e) => {
                    let o = Outcome::Failed {
                        path: f,
                        reason: format!("cannot read: {e}"),
                    };
                    progress(&o);
                    outcomes.push(o);
                }
            }
        }
        // Time order: the name's timestamp, else the modification time.
        let mut keyed: Vec<(i64, PathBuf)> = dumps
            .into_iter()
            .map(|p| {
                let t = parse_file_name(&p).0.or_else(|| mtime(&p)).unwrap_or(0);
                (t, p)
            })
            .collect();
        keyed.sort();
        for (_, path) in keyed {
            let o = self.import_dump(&path, opts);
            progress(&o);
            outcomes.push(o);
        }
        for (path, kind) in others {
            let o = match kind {
                Kind::Profile => self.import_profile(&path, opts),
                _ => self.import_log(&path, opts),
            };
            progress(&o);
            outcomes.push(o);
        }
        outcomes
    }

    /// The file's fingerprint, size and modification time, when no file
    /// with that fingerprint is in `table` yet; else what to report.
    fn unknown_file(
        &mut self,
        path: &Path,
        table: &str,
        kind: Kind,
    ) -> Result<(String, u64, Option<i64>), Outcome> {
        let failed = |reason: String| Outcome::Failed {
            path: path.to_path_buf(),
            reason,
        };
        let (fp, size, mtime) =
            fingerprint(path).map_err(|e| failed(format!("cannot read: {e}")))?;
        match self.db.query_int(
            &format!("SELECT id FROM {table} WHERE fingerprint = ?"),
            &[fp.clone().into()],
        ) {
            Ok(0) => Ok((fp, size, mtime)),
            Ok(id) => Err(Outcome::AlreadyThere {
                path: path.to_path_buf(),
                kind,
                id,
            }),
            Err(e) => Err(failed(sql_err(e))),
        }
    }

    fn import_dump(&mut self, path: &Path, opts: &ImportOptions) -> Outcome {
        let failed = |reason: String| Outcome::Failed {
            path: path.to_path_buf(),
            reason,
        };
        let (fp, size, mtime) = match self.unknown_file(path, "dumps", Kind::Dump) {
            Ok(f) => f,
            Err(o) => return o,
        };
        let start = std::time::Instant::now();
        let input = match Input::open(path) {
            Ok(i) => i,
            Err(e) => return failed(format!("cannot read: {e}")),
        };
        let name = input.name.clone();
        let read = ReadOptions {
            references: true,
            string_values: true,
            threads: opts.threads,
            progress: opts
                .progress
                .as_ref()
                .and_then(|p| p.0.reading(&name, input.size_hint.unwrap_or(0))),
            ..ReadOptions::default()
        };
        let dump = read_input(input, &read);
        if let Some(p) = &opts.progress {
            p.0.analysing(&name);
        }
        let outcome = self.store_dump(path, opts, dump, start, fp, size, mtime);
        if let Some(p) = &opts.progress {
            p.0.done();
        }
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    fn store_dump(
        &mut self,
        path: &Path,
        opts: &ImportOptions,
        dump: Result<Dump, heapscope_reader::ReadError>,
        start: std::time::Instant,
        fp: String,
        size: u64,
        mtime: Option<i64>,
    ) -> Outcome {
        let failed = |reason: String| Outcome::Failed {
            path: path.to_path_buf(),
            reason,
        };
        let dump = match dump {
            Ok(d) => d,
            Err(e) => return failed(e.to_string()),
        };
        // A cut-off dump would join its process's series and wipe out the
        // leak analysis' survivors: refuse it, so a complete copy can be
        // imported later (it has another fingerprint).
        if let Some(p) = &dump.diagnostics.truncated_last_line {
            return failed(format!(
                "cut off: line {} is an incomplete record at the end of the file (still being \
                 written, or truncated); import it again once complete",
                p.line
            ));
        }
        if let Some(e) = &dump.diagnostics.input_error {
            return failed(format!("cut off: {e}"));
        }
        lap(start, "load");
        let (key, pid, label) = process_of(path, opts.process.as_deref());
        let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let abs_text = abs.display().to_string();
        let plan = match leak_plan(&mut self.db, &key, pid, &abs_text, taken_at_of(path, mtime)) {
            Ok(p) => p,
            Err(e) => return failed(sql_err(e)),
        };
        let (record, leak) = analyse(&dump, start, plan);
        let (name_time, seq) = {
            let (t, _) = parse_file_name(path);
            (t, seq_of(path))
        };
        let (taken_at, time_source) = match name_time {
            Some(t) => (Some(t), "file name"),
            None => (mtime, "modification time"),
        };
        let mut warnings: Vec<String> = dump.diagnostics.structure_warnings(&dump.source);
        if dump.diagnostics.malformed > 0 {
            warnings.push(format!(
                "{} malformed line{} skipped{}",
                dump.diagnostics.malformed,
                if dump.diagnostics.malformed == 1 {
                    ""
                } else {
                    "s"
                },
                dump.diagnostics
                    .first_malformed
                    .first()
                    .map(|p| format!(" (first at line {}: {})", p.line, p.message))
                    .unwrap_or_default()
            ));
        }
        let stored = self.in_transaction(|db| {
            let process_id = ensure_process(db, &key, pid, &label)?;
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let dumps_before =
                db.query_int("SELECT COUNT(*) FROM dumps WHERE process_id = ?", &[process_id.into()])?;
            let id = db
                .query(
                    "INSERT INTO dumps (process_id, path, file_name, fingerprint, file_size, file_mtime, taken_at, time_source, seq, imported_at, objects, bytes, traced_objects, ruby, has_objects, meta) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    &[
                        process_id.into(),
                        abs_text.clone().into(),
                        file_name.into(),
                        fp.clone().into(),
                        size.into(),
                        mtime.into(),
                        taken_at.into(),
                        time_source.into(),
                        seq.map(i64::from).into(),
                        now().into(),
                        record.objects.into(),
                        record.bytes.into(),
                        record.traced_objects.into(),
                        record.ruby.clone().into(),
                        i64::from(opts.objects).into(),
                        record.meta.to_string().into(),
                    ],
                )?
                .first()
                .and_then(|r| r.first())
                .and_then(Value::int)
                .ok_or_else(|| DbError("no id for the new dump".into()))?;
            let mut rows = record.rows.iter().map(|(dim, key, count, bytes, extra)| {
                vec![
                    id.into(),
                    (*dim).into(),
                    key.clone().into(),
                    (*count).into(),
                    (*bytes).into(),
                    extra.clone().into(),
                ]
            });
            db.bulk_insert("dump_rows", &["dump_id", "dim", "key", "count", "bytes", "extra"], &mut rows)?;
            for (kind, body) in &record.docs {
                db.exec(
                    "INSERT INTO dump_docs (dump_id, kind, body) VALUES (?, ?, ?)",
                    &[id.into(), (*kind).into(), body.clone().into()],
                )?;
            }
            if opts.objects {
                crate::objects::store_objects(db, id, &dump.heap)?;
                lap(start, "objects written");
            }
            lap(start, "rows written");
            match &leak {
                // Folded beside the analyses, and no other dump came meanwhile.
                Some(u) if u.dumps_before as i64 == dumps_before => {
                    write_leak_update(db, process_id, u)?
                }
                _ => fold_leaks(db, process_id, pid, id, &dump.heap, taken_at)?,
            }
            lap(start, "leak analysis");
            Ok(id)
        });
        // Freeing a big heap's columns takes a while: let it happen beside
        // whatever comes next instead of before it.
        std::thread::spawn(move || drop(dump));
        match stored {
            Ok(id) => Outcome::Imported {
                path: path.to_path_buf(),
                kind: Kind::Dump,
                id,
                detail: format!(
                    "{} objects, {}{}",
                    heapscope_report::thousands(record.objects),
                    heapscope_report::human_bytes(record.bytes),
                    if opts.objects {
                        ", with every object"
                    } else {
                        ""
                    }
                ),
                warnings,
            },
            Err(e) => self
                .stored_meanwhile("dumps", &fp, path, Kind::Dump)
                .unwrap_or_else(|| failed(e)),
        }
    }

    fn import_log(&mut self, path: &Path, opts: &ImportOptions) -> Outcome {
        let failed = |reason: String| Outcome::Failed {
            path: path.to_path_buf(),
            reason,
        };
        let (fp, _, _) = match self.unknown_file(path, "series", Kind::Series) {
            Ok(f) => f,
            Err(o) => return o,
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => return failed(format!("cannot read: {e}")),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log = parse_log(&name, &bytes);
        if log.is_empty() {
            return failed(unrecognised(&bytes, &log.skipped));
        }
        let samples = log.sample_count();
        let format = log.format.name();
        let dir = std::fs::canonicalize(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let stored = self.in_transaction(|db| {
            let mut first = 0;
            for s in &log.series {
                let process_id = match (&opts.process, s.pid) {
                    (Some(name), _) => Some(ensure_process(db, &format!("name:{name}"), None, name)?),
                    (None, Some(pid)) => {
                        let at = s.samples.first().map(|p| p.time);
                        match process_by_pid(db, pid, at)? {
                            Some(id) => Some(id),
                            None => {
                                let key = format!("pid:{pid}:{}", dir.display());
                                let label = format!("pid {pid} ({})", dir.display());
                                Some(ensure_process(db, &key, Some(pid), &label)?)
                            }
                        }
                    }
                    (None, None) => None,
                };
                let id = db
                    .query(
                        "INSERT INTO series (process_id, fingerprint, path, format, label, pid, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                        &[
                            process_id.into(),
                            fp.clone().into(),
                            path.display().to_string().into(),
                            format.into(),
                            s.label.clone().into(),
                            s.pid.map(i64::from).into(),
                            now().into(),
                        ],
                    )?
                    .first()
                    .and_then(|r| r.first())
                    .and_then(Value::int)
                    .unwrap_or(0);
                if first == 0 {
                    first = id;
                }
                let mut rows = s.samples.iter().map(|p| {
                    vec![
                        id.into(),
                        p.time.into(),
                        p.rss_bytes.into(),
                        p.live_objects.into(),
                        p.requests.into(),
                        p.major_gc_count.into(),
                        p.minor_gc_count.into(),
                    ]
                });
                db.bulk_insert(
                    "series_points",
                    &["series_id", "t", "rss", "live_objects", "requests", "major_gc", "minor_gc"],
                    &mut rows,
                )?;
            }
            Ok(first)
        });
        match stored {
            Ok(id) => Outcome::Imported {
                path: path.to_path_buf(),
                kind: Kind::Series,
                id,
                detail: format!("{samples} samples, {format}"),
                warnings: log
                    .skipped
                    .iter()
                    .take(3)
                    .map(|(line, why)| format!("line {line} skipped: {why}"))
                    .collect(),
            },
            Err(e) => self
                .stored_meanwhile("series", &fp, path, Kind::Series)
                .unwrap_or_else(|| failed(e)),
        }
    }

    fn import_profile(&mut self, path: &Path, opts: &ImportOptions) -> Outcome {
        let failed = |reason: String| Outcome::Failed {
            path: path.to_path_buf(),
            reason,
        };
        let (fp, _, _) = match self.unknown_file(path, "profiles", Kind::Profile) {
            Ok(f) => f,
            Err(o) => return o,
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => return failed(format!("cannot read: {e}")),
        };
        let summary = match crate::profile::summarize(&bytes) {
            Ok(s) => s,
            Err(e) => return failed(e),
        };
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let process = match &opts.process {
            Some(name) => Some((format!("name:{name}"), None, name.clone())),
            None => crate::profile::pid_in_name(&file_name).map(|pid| {
                let dir = std::fs::canonicalize(path)
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .unwrap_or_default();
                (
                    format!("pid:{pid}:{}", dir.display()),
                    Some(pid),
                    format!("pid {pid} ({})", dir.display()),
                )
            }),
        };
        let detail = format!(
            "{} samples, {} sites",
            summary["samples"].as_u64().unwrap_or(0),
            summary["sites"].as_array().map_or(0, Vec::len)
        );
        let stored = self.in_transaction(|db| {
            let process_id = match &process {
                Some((key, Some(pid), label)) if opts.process.is_none() => {
                    match process_by_pid(db, *pid, mtime(path).map(|t| t as f64))? {
                        Some(id) => Some(id),
                        None => Some(ensure_process(db, key, Some(*pid), label)?),
                    }
                }
                Some((key, pid, label)) => Some(ensure_process(db, key, *pid, label)?),
                None => None,
            };
            db.query(
                "INSERT INTO profiles (process_id, fingerprint, path, file_name, imported_at, summary, body) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                &[
                    process_id.into(),
                    fp.clone().into(),
                    path.display().to_string().into(),
                    file_name.clone().into(),
                    now().into(),
                    summary.to_string().into(),
                    Value::Blob(bytes.clone()),
                ],
            )?
            .first()
            .and_then(|r| r.first())
            .and_then(Value::int)
            .ok_or_else(|| DbError("no id for the new profile".into()))
        });
        match stored {
            Ok(id) => Outcome::Imported {
                path: path.to_path_buf(),
                kind: Kind::Profile,
                id,
                detail,
                warnings: Vec::new(),
            },
            Err(e) => self
                .stored_meanwhile("profiles", &fp, path, Kind::Profile)
                .unwrap_or_else(|| failed(e)),
        }
    }

    /// The same file imported by another importer while this one read it
    /// (its fingerprint was checked before the transaction): a no-op too.
    fn stored_meanwhile(
        &mut self,
        table: &str,
        fp: &str,
        path: &Path,
        kind: Kind,
    ) -> Option<Outcome> {
        let id = self
            .db
            .query_int(
                &format!("SELECT MIN(id) FROM {table} WHERE fingerprint = ?"),
                &[fp.into()],
            )
            .ok()?;
        (id != 0).then(|| Outcome::AlreadyThere {
            path: path.to_path_buf(),
            kind,
            id,
        })
    }

    /// Runs `f` in a transaction: committed when it returns Ok, rolled back
    /// otherwise.
    fn in_transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Db) -> Result<T, DbError>,
    ) -> Result<T, String> {
        self.db.begin().map_err(sql_err)?;
        match f(&mut self.db) {
            Ok(v) => {
                self.db.commit().map_err(sql_err)?;
                Ok(v)
            }
            Err(e) => {
                self.db.rollback();
                Err(e.0)
            }
        }
    }
}

/// When a dump was taken: the unix time in its name, else its file's
/// modification time.
fn taken_at_of(path: &Path, mtime: Option<i64>) -> Option<i64> {
    parse_file_name(path).0.or(mtime)
}

/// Why a file is neither a dump, a memory log nor a profile, in words
/// (binary bytes are not quoted back).
fn unrecognised(bytes: &[u8], skipped: &[(usize, String)]) -> String {
    const WHAT: &str =
        "a heap dump, a memory log (heapscope watch, agent statistics, Rails, Heroku, derailed) or a pprof profile";
    let head = &bytes[..bytes.len().min(4096)];
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return format!("empty file: not {WHAT}");
    }
    // Invalid UTF-8 or NUL in the first 4 KiB (a character cut at the end
    // of that window does not count).
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    if !text || head.contains(&0) {
        return format!("binary data: not {WHAT}");
    }
    if head.trim_ascii_start().starts_with(b"[") {
        return format!(
            "a JSON array: not {WHAT} (ObjectSpace.dump_all writes one JSON object per line)"
        );
    }
    let why = skipped
        .first()
        .map(|(line, why)| format!(" (line {line}: {why})"))
        .unwrap_or_default();
    format!("not {WHAT}{why}")
}

fn mtime(p: &Path) -> Option<i64> {
    std::fs::metadata(p)
        .ok()?
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

/// The agent's sequence number (`heap-<pid>-<unixtime>-<seq>.dump`).
fn seq_of(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    let stem = name.split('.').next()?;
    let parts: Vec<&str> = stem.split('-').collect();
    (parts.len() == 4 && parts[0] == "heap").then(|| parts[3].parse().ok())?
}

fn ensure_process(db: &mut Db, key: &str, pid: Option<u32>, label: &str) -> Result<i64, DbError> {
    let id = db.query_int("SELECT id FROM processes WHERE key = ?", &[key.into()])?;
    if id != 0 {
        return Ok(id);
    }
    // A process made for the same pid's statistics or profiles, which the
    // agent writes to another directory than its dumps: the dumps join it.
    if let Some(pid) = pid {
        let orphan = db.query_int(
            "SELECT id FROM processes WHERE pid = ? AND dumps = 0 AND key LIKE 'pid:%' ORDER BY id LIMIT 1",
            &[i64::from(pid).into()],
        )?;
        if orphan != 0 {
            db.exec(
                "UPDATE processes SET key = ?, label = ? WHERE id = ?",
                &[key.into(), label.into(), orphan.into()],
            )?;
            return Ok(orphan);
        }
    }
    db.query(
        "INSERT INTO processes (key, pid, label) VALUES (?, ?, ?) RETURNING id",
        &[key.into(), pid.map(i64::from).into(), label.into()],
    )?
    .first()
    .and_then(|r| r.first())
    .and_then(Value::int)
    .ok_or_else(|| DbError("no id for the new process".into()))
}

/// The process a memory log's or profile's pid belongs to, when the store
/// has one with that pid: the one whose dumps span `time` (unix seconds),
/// else the nearest in time. The agent writes statistics and profiles to
/// another directory than its dumps, so the directory cannot decide.
fn process_by_pid(db: &mut Db, pid: u32, time: Option<f64>) -> Result<Option<i64>, DbError> {
    let rows = db.query(
        "SELECT id, first_time, last_time FROM processes WHERE pid = ? AND key LIKE 'pid:%'",
        &[i64::from(pid).into()],
    )?;
    let distance = |r: &Vec<Value>| -> f64 {
        match (time, r[1].real(), r[2].real()) {
            (Some(t), Some(a), Some(b)) if t >= a && t <= b => 0.0,
            (Some(t), Some(a), Some(b)) => (t - a).abs().min((t - b).abs()),
            _ => f64::MAX,
        }
    };
    Ok(rows
        .iter()
        .min_by(|a, b| distance(a).total_cmp(&distance(b)))
        .and_then(|r| r[0].int()))
}

/// Folds a new dump into its process's leak analysis and stores the report.
/// The saved state only moves forward in time: a dump older than the last
/// one folded in (or a state that cannot be read) makes the series start
/// again from the files of the process's other dumps.
fn fold_leaks(
    db: &mut Db,
    process_id: i64,
    pid: Option<u32>,
    new_id: i64,
    heap: &Heap,
    taken_at: Option<i64>,
) -> Result<(), DbError> {
    let rows = db.query(
        "SELECT id, path, taken_at FROM dumps WHERE process_id = ? ORDER BY taken_at NULLS LAST, id",
        &[process_id.into()],
    )?;
    let ids: Vec<i64> = rows.iter().map(|r| r[0].int().unwrap_or(0)).collect();
    let paths: Vec<String> = rows
        .iter()
        .map(|r| r[1].text().unwrap_or("").to_string())
        .collect();
    let times: Vec<Option<i64>> = rows.iter().map(|r| r[2].int()).collect();
    let state = db
        .query_row(
            "SELECT leak_state, leak_last_time FROM processes WHERE id = ?",
            &[process_id.into()],
        )?
        .unwrap_or_default();
    let last_time = state.get(1).and_then(Value::int);
    let saved = state.into_iter().next().and_then(Value::into_blob);
    let in_order = match (last_time, taken_at) {
        (Some(last), Some(t)) => t >= last,
        _ => true,
    };
    let restored = saved.as_deref().and_then(SeriesBuilder::restore);
    let fast = match restored {
        Some(b) if in_order && b.dumps() + 1 == ids.len() => Some(b),
        None if ids.len() == 1 => Some(SeriesBuilder::new(false, false)),
        _ => None,
    };
    if let Some(mut builder) = fast {
        builder.add_dump(heap);
        let saved = builder.save();
        let report = builder.finish(heap, &times, &leak_options());
        return store_leaks(
            db,
            process_id,
            pid,
            &paths,
            report,
            Some(saved),
            &times,
            Vec::new(),
        );
    }
    // Start again from the files, in time order; the new dump from memory.
    let mut warnings = Vec::new();
    let mut builder = SeriesBuilder::new(false, false);
    let mut last: Option<Dump> = None;
    let mut kept_paths = Vec::new();
    let mut kept_times = Vec::new();
    let n = ids.len();
    for i in 0..n {
        let is_last = i + 1 == n;
        if ids[i] == new_id {
            builder.add_dump(heap);
        } else {
            let opts = ReadOptions {
                references: is_last,
                string_values: false,
                ..ReadOptions::default()
            };
            let read = Input::open(Path::new(&paths[i]))
                .map_err(|e| e.to_string())
                .and_then(|inp| read_input(inp, &opts).map_err(|e| e.to_string()));
            match read {
                Ok(d) => {
                    builder.add_dump(&d.heap);
                    if is_last {
                        last = Some(d);
                    }
                }
                Err(e) => {
                    warnings.push(format!("left out of the leak analysis: {}: {e}", paths[i]));
                    continue;
                }
            }
        }
        kept_paths.push(paths[i].clone());
        kept_times.push(times[i]);
    }
    let saved = builder.save();
    let last_heap = last.as_ref().map_or(heap, |d| &d.heap);
    let report = builder.finish(last_heap, &kept_times, &leak_options());
    store_leaks(
        db,
        process_id,
        pid,
        &kept_paths,
        report,
        Some(saved),
        &kept_times,
        warnings,
    )
}

fn leak_options() -> LeakOptions {
    LeakOptions {
        min_growth: heapscope_analysis::leaks::DEFAULT_MIN_GROWTH,
        paths: TOP_LEAKS,
        path_ends: Some(10),
    }
}

#[allow(clippy::too_many_arguments)]
fn store_leaks(
    db: &mut Db,
    process_id: i64,
    pid: Option<u32>,
    paths: &[String],
    report: heapscope_analysis::leaks::LeakReport,
    state: Option<Vec<u8>>,
    times: &[Option<i64>],
    warnings: Vec<String>,
) -> Result<(), DbError> {
    write_leak_update(
        db,
        process_id,
        &leak_update(pid, paths, report, times, warnings, state),
    )
}

fn leak_update(
    pid: Option<u32>,
    paths: &[String],
    mut report: heapscope_analysis::leaks::LeakReport,
    times: &[Option<i64>],
    warnings: Vec<String>,
    state: Option<Vec<u8>>,
) -> LeakUpdate {
    report.warnings.extend(warnings);
    let view = ProcessReport {
        pid,
        dumps: paths,
        report: &report,
        top: TOP_LEAKS,
    };
    let body = leaks_json("the dumps' times", std::slice::from_ref(&view));
    let body = body["processes"].get(0).cloned().unwrap_or(body);
    LeakUpdate {
        dumps_before: 0,
        dumps: paths.len() as i64,
        first: times.iter().flatten().min().copied(),
        last: times.iter().flatten().max().copied(),
        verdict: report.verdict(),
        body: body.to_string(),
        state,
    }
}

fn write_leak_update(db: &mut Db, process_id: i64, u: &LeakUpdate) -> Result<(), DbError> {
    db.exec(
        "UPDATE processes SET dumps = ?, first_time = ?, last_time = ?, verdict = ?, leak_report = ?, leak_state = ?, leak_last_time = ? WHERE id = ?",
        &[
            u.dumps.into(),
            u.first.into(),
            u.last.into(),
            u.verdict.into(),
            u.body.clone().into(),
            u.state.clone().map_or(Value::Null, Value::Blob),
            u.last.into(),
            process_id.into(),
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod sniff_tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_dumps_and_profiles_are_told_apart_from_their_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("heap.dump.gz");
        std::fs::write(
            &dump,
            gz(b"{\"type\":\"ROOT\", \"root\":\"vm\", \"references\":[]}\n"),
        )
        .unwrap();
        assert!(matches!(sniff(&dump).unwrap(), Sniffed::Dump));
        let mut profile = heapscope_pprof::Profile::default();
        let mut strings = heapscope_pprof::StringTable::new();
        heapscope_pprof::set_sample_types(&mut profile, &mut strings, 1);
        profile.string_table = strings.into_table();
        let mut bytes = Vec::new();
        heapscope_pprof::write_gz(&profile, &mut bytes).unwrap();
        let p = dir.path().join("p.pb.gz");
        std::fs::write(&p, bytes).unwrap();
        assert!(matches!(sniff(&p).unwrap(), Sniffed::Profile));
        let log = dir.path().join("gc-1.jsonl");
        std::fs::write(&log, "{\"time\": 1.0, \"pid\": 1, \"rss_bytes\": 10}\n").unwrap();
        assert!(matches!(sniff(&log).unwrap(), Sniffed::Log));
    }
}
