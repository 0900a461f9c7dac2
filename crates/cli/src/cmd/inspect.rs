//! `heapscope inspect`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args as ClapArgs;
use heapscope_analysis::inspect::{inspect, page_range, referrers};
use heapscope_analysis::paths::{Labeler, RecordFacts};
use heapscope_graph::{Dominators, Graph, GraphOptions};
use heapscope_heap::{FastMap, Heap, ObjId};
use heapscope_report::inspect::{inspect_json, inspect_text, InspectReport, RawRecord};

use crate::args::{Format, InputArgs};
use crate::load::{load_for_graph, stage};

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
Everything known about one object: type, class, value or name, flags, allocation site, shallow
and retained size, its immediate dominator (the object whose release would free it), the roots
that reference it, the objects that reference it (referrers) and that it references (referents),
each with how the reference holds it, and its raw record from the dump. Ruby 4.0's flags are all
shown (remembered, shareable), with its age and object_id; a 4.0 IMEMO fields object shows the
owner whose instance variables it keeps. References the record lists that are not graph edges (a
WeakMap's, which keep nothing alive) are listed among the referents, marked weak.

The raw record is re-read from the file, so it is shown for uncompressed files only.
An address the dump does not have is an error (exit code 2).

Examples:
    heapscope inspect heap.dump 0x7f3e9b0a1140
    heapscope inspect heap.dump 0x7f3e9b0a1140 --limit 100 --offset 100
    heapscope inspect heap.dump 0x7f3e9b0a1140 --format json";

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub output: crate::args::FormatArg,

    /// The object's address, as in the dump (0x7f...).
    #[arg(value_name = "ADDRESS", value_parser = parse_address)]
    pub address: u64,

    /// Show at most N referrers and N referents.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,

    /// Skip the first N referrers and referents.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub offset: usize,

    /// Print exact byte counts instead of KiB/MiB/GiB.
    #[arg(long)]
    pub bytes: bool,
}

/// Parses `0x7f...` (or bare hex) into an address.
pub(crate) fn parse_address(s: &str) -> Result<u64, String> {
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(hex, 16)
        .map_err(|_| format!("`{s}` is not an address (hexadecimal, like 0x7f3e9b0a1140)"))
}

/// The object at `address`, or a clear error.
pub(crate) fn find_object(heap: &Heap, source: &str, address: u64) -> Result<ObjId> {
    heap.find(address).ok_or_else(|| {
        anyhow::anyhow!(
            "{source}: no object at {address:#x} (addresses are per dump: an object freed or \
             moved by GC.compact has another address, or none, in a later dump)"
        )
    })
}

/// Raw lines of the records at `addresses`, re-read from `path` when it is
/// an uncompressed file; `Err` says why they are not available.
pub(crate) fn raw_records(
    path: &Path,
    addresses: &[u64],
) -> std::result::Result<FastMap<u64, Vec<u8>>, String> {
    let unavailable = || {
        "not available: the input is compressed or stdin (records are re-read only from plain files)".to_string()
    };
    if path == Path::new("-") {
        return Err(unavailable());
    }
    // Only a regular file can be read twice. A named pipe was emptied by the
    // first read, and opening it again would wait for a writer forever: open
    // without blocking, and look at what was opened.
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| format!("not available: {e}"))?
    };
    let kind = file
        .metadata()
        .map_err(|e| format!("not available: {e}"))?
        .file_type();
    if !kind.is_file() {
        return Err(
            "not available: the input is not a regular file (a pipe or device is read once; \
             records are re-read only from plain files)"
                .to_string(),
        );
    }
    let input = heapscope_reader::Input::open(path).map_err(|e| format!("not available: {e}"))?;
    if input.mapped.is_none() {
        return Err(unavailable());
    }
    drop(input);
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let found = heapscope_analysis::inspect::find_raw_records(reader, addresses, |hay, needle| {
        memchr::memmem::find(hay, needle)
    })
    .map_err(|e| format!("not available: {e}"))?;
    Ok(found.into_iter().collect())
}

/// Record facts of the objects whose records were found.
pub(crate) fn facts_of(
    heap: &Heap,
    records: &FastMap<u64, Vec<u8>>,
) -> FastMap<ObjId, RecordFacts> {
    records
        .iter()
        .filter_map(|(&a, line)| heap.find(a).map(|id| (id, RecordFacts::from_raw(line))))
        .collect()
}

pub fn run(a: Args) -> Result<ExitCode> {
    let dump = load_for_graph(&a.input)?;
    let heap = &dump.heap;
    let id = find_object(heap, &dump.source, a.address)?;
    let spin = stage(&a.input, "computing dominators and retained sizes");
    let graph = Graph::new(
        heap,
        GraphOptions {
            include_tracer: a.input.read.include_tracer,
            include_agent: a.input.read.include_agent,
        },
    );
    let dom = Dominators::compute(&graph);
    let labeler = Labeler::new(&graph);
    // Re-read the object's record and those of the referrers shown.
    let preds = referrers(&graph, id);
    let mut wanted = vec![a.address];
    wanted.extend(
        preds[page_range(preds.len(), a.offset, a.limit)]
            .iter()
            .map(|&p| heap.address[p as usize]),
    );
    if let Some(s) = &spin {
        s.set_message("re-reading records");
    }
    let (record, facts) = match raw_records(&a.input.dump, &wanted) {
        Ok(mut found) => {
            let facts = facts_of(heap, &found);
            let record = match found.remove(&a.address) {
                Some(line) => RawRecord::Found(line),
                None => RawRecord::Unavailable(
                    "not found: no line has this address in Ruby's layout".into(),
                ),
            };
            (record, facts)
        }
        Err(why) => (RawRecord::Unavailable(why), FastMap::default()),
    };
    let inspection = inspect(&labeler, &dom, id, a.offset, a.limit, &facts);
    if let Some(s) = spin {
        s.finish_and_clear();
    }
    let report = InspectReport {
        source: &dump.source,
        inspection: &inspection,
        record: &record,
    };
    let out = match a.output.format {
        Format::Json => {
            serde_json::to_string_pretty(&crate::load::with_json_warnings(
                inspect_json(&report),
                &dump,
            ))? + "\n"
        }
        Format::Table => inspect_text(&report, a.bytes),
    };
    crate::print(&out)
}
