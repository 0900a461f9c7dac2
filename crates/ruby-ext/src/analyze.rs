//! `Native.analyze_dump(path, top)`: the live-heap summary behind the Rack
//! `?hs=analyze-memory` page, read from a dump the agent's forked child
//! wrote. It runs heapscope's own reader and groupings in the app process
//! rather than the `heapscope` binary, because an app using
//! `use Heapscope::Rack::Profiler` without `heapscope run` has no known path
//! to that binary, and a child process would need one. The reading runs
//! without the GVL (no Ruby object is touched until it is done), so the
//! app's other threads keep running; only the request that asked waits.

use std::ffi::c_void;
use std::path::{Path, PathBuf};

use heapscope_analysis::group::{group_objects, GroupKey, KeyValue, SortBy};
use heapscope_analysis::summary::ObjectFilter;
use heapscope_heap::ObjId;
use heapscope_reader::{read_path, ReadOptions};
use magnus::{prelude::*, Error, RHash, RModule, Ruby};

/// Longest string value handed back (bytes); the page shows a preview.
const VALUE_PREVIEW: usize = 512;

pub fn init(_ruby: &Ruby, native: RModule) -> Result<(), Error> {
    native.define_singleton_method("analyze_dump", magnus::function!(analyze_dump, 2))?;
    Ok(())
}

/// One row: a name (or string value), a count and bytes.
struct Row {
    name: Vec<u8>,
    count: u64,
    memsize: u64,
}

#[derive(Default)]
struct Analysis {
    objects: u64,
    memsize: u64,
    agent_objects: u64,
    strings: u64,
    by_type: Vec<Row>,
    by_class: Vec<Row>,
    largest_strings: Vec<Row>,
    duplicated_strings: Vec<Row>,
}

fn text(v: &KeyValue, key: GroupKey) -> Vec<u8> {
    v.display(key).into_bytes()
}

fn analyze(path: &Path, top: usize) -> Result<Analysis, String> {
    let opts = ReadOptions {
        references: false,
        string_values: true,
        // Two parser threads: enough for a quick answer, while the app's
        // own threads keep the other cores.
        threads: 2,
        ..ReadOptions::default()
    };
    let dump = read_path(path, &opts).map_err(|e| e.to_string())?;
    let heap = &dump.heap;
    let filter = ObjectFilter::default();
    let mut a = Analysis::default();
    let mut kept: Vec<ObjId> = Vec::with_capacity(heap.len());
    for id in heap.ids() {
        if !filter.matches_but_agent(heap, id) {
            continue;
        }
        if filter.leaves_out_agent(heap, id) {
            a.agent_objects += 1;
            continue;
        }
        kept.push(id);
        a.objects += 1;
        a.memsize += heap.memsize(id);
    }
    let rows = |groups: Vec<heapscope_analysis::group::Group>, key: GroupKey| -> Vec<Row> {
        groups
            .into_iter()
            .map(|g| Row {
                name: text(&g.key[0], key),
                count: g.count,
                memsize: g.memsize,
            })
            .collect()
    };
    let (g, _) = group_objects(
        heap,
        kept.iter().copied(),
        &[GroupKey::Type],
        SortBy::Memsize,
        Some(top),
    );
    a.by_type = rows(g, GroupKey::Type);
    let (g, _) = group_objects(
        heap,
        kept.iter().copied(),
        &[GroupKey::Class],
        SortBy::Memsize,
        Some(top),
    );
    a.by_class = rows(g, GroupKey::Class);
    let (g, _) = group_objects(
        heap,
        kept.iter().copied(),
        &[GroupKey::String],
        SortBy::Count,
        Some(top),
    );
    a.duplicated_strings = g
        .into_iter()
        .filter(|g| g.count > 1)
        .map(|g| Row {
            name: match &g.key[0] {
                KeyValue::Text(Some(t)) => preview(t.as_bytes()),
                other => text(other, GroupKey::String),
            },
            count: g.count,
            memsize: g.memsize,
        })
        .collect();
    let mut strings: Vec<(u64, ObjId)> = kept
        .iter()
        .filter(|&&id| heap.string_value(id).is_some())
        .map(|&id| (heap.memsize(id), id))
        .collect();
    a.strings = strings.len() as u64;
    strings.sort_unstable_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
    a.largest_strings = strings
        .into_iter()
        .take(top)
        .map(|(memsize, id)| {
            let value = heap.string_value(id).unwrap_or_default();
            Row {
                name: preview(value),
                // The value's length in bytes (the page's "bytes" column).
                count: value.len() as u64,
                memsize,
            }
        })
        .collect();
    Ok(a)
}

fn preview(value: &[u8]) -> Vec<u8> {
    value[..value.len().min(VALUE_PREVIEW)].to_vec()
}

struct Job {
    path: PathBuf,
    top: usize,
    result: Option<Result<Analysis, String>>,
}

unsafe extern "C" fn run_job(data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the `Job` that `analyze_dump` owns and waits for.
    let job = unsafe { &mut *(data as *mut Job) };
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| analyze(&job.path, job.top)))
            .unwrap_or_else(|_| Err("the analysis failed (a panic in heapscope)".into()));
    job.result = Some(result);
    std::ptr::null_mut()
}

/// `analyze_dump(path, top)` → `{objects:, memsize:, agent_objects:,
/// strings:, by_type:, by_class:, largest_strings:, duplicated_strings:}`;
/// each list holds `[name, count, memsize]` rows (for largest strings,
/// `[value, bytes, memsize]`), names and values as binary strings. Raises
/// IOError when the dump cannot be read.
fn analyze_dump(ruby: &Ruby, path: String, top: usize) -> Result<RHash, Error> {
    let mut job = Job {
        path: PathBuf::from(path),
        top: top.max(1),
        result: None,
    };
    // SAFETY: `run_job` touches no Ruby object, so it may run without the
    // GVL; no unblocking function is given, so the call is not interrupted
    // half-way and `job` outlives it.
    unsafe {
        rb_sys::rb_thread_call_without_gvl(
            Some(run_job),
            &mut job as *mut Job as *mut c_void,
            None,
            std::ptr::null_mut(),
        );
    }
    let a = job
        .result
        .unwrap_or_else(|| Err("the analysis did not run".into()))
        .map_err(|e| Error::new(ruby.exception_io_error(), e))?;
    let out = ruby.hash_new();
    out.aset(ruby.to_symbol("objects"), a.objects)?;
    out.aset(ruby.to_symbol("memsize"), a.memsize)?;
    out.aset(ruby.to_symbol("agent_objects"), a.agent_objects)?;
    out.aset(ruby.to_symbol("strings"), a.strings)?;
    for (key, rows) in [
        ("by_type", a.by_type),
        ("by_class", a.by_class),
        ("largest_strings", a.largest_strings),
        ("duplicated_strings", a.duplicated_strings),
    ] {
        let list = ruby.ary_new_capa(rows.len());
        for r in rows {
            let row = ruby.ary_new_capa(3);
            row.push(ruby.str_from_slice(&r.name))?;
            row.push(r.count)?;
            row.push(r.memsize)?;
            list.push(row)?;
        }
        out.aset(ruby.to_symbol(key), list)?;
    }
    Ok(out)
}
