//! Turning one chunk of whole lines into a [`PartialHeap`] plus what went wrong.

use heapscope_heap::{Detail, ObjectRecord, PartialHeap, RootRecord, ShapeRecord};

use crate::parse::{normalise_json, parse_line, Fields, ParseWants, Scratch};
use crate::ReadOptions;

/// How many problems of each kind a chunk keeps in full (the rest are counted).
pub(crate) const KEEP_FIRST: usize = 10;

#[derive(Debug, Clone)]
pub(crate) struct ChunkProblem {
    /// 0-based line index within the chunk.
    pub line: u64,
    pub message: String,
    pub excerpt: String,
}

#[derive(Default)]
pub(crate) struct ChunkResult {
    pub partial: PartialHeap,
    pub lines: u64,
    pub blank: u64,
    pub objects: u64,
    pub roots: u64,
    pub shapes: u64,
    /// `"type":"NONE"` records (free slots, not objects).
    pub free_slots: u64,
    pub malformed: u64,
    pub problems: Vec<ChunkProblem>,
    /// The chunk's last line had no newline and did not parse.
    pub truncated_last: Option<ChunkProblem>,
    pub recovered: u64,
    pub recovered_lines: Vec<u64>,
    pub fallback: u64,
    /// The first bytes of the input (first chunk only), to explain a non-dump.
    pub head: Vec<u8>,
    /// Non-blank lines in the chunk, and how many of them came before its first record.
    pub nonblank: u64,
    pub nonblank_before_record: Option<u64>,
    /// Byte offset just past the chunk's first record line.
    pub first_record_end: Option<usize>,
    /// 0-based index of the chunk's first ROOT record line.
    pub first_root: Option<u64>,
    /// ROOT records after a heap object in this chunk (several dumps in one
    /// file), and the index of the first one.
    pub late_roots: u64,
    pub first_late_root: Option<u64>,
}

/// Parses `data`, which holds whole lines (the last one may lack its newline
/// only at the end of the input: `at_eof`).
pub(crate) fn parse_chunk(data: &[u8], at_eof: bool, opts: &ReadOptions) -> ChunkResult {
    let mut r = ChunkResult {
        partial: PartialHeap::new(opts.references),
        ..Default::default()
    };
    let wants = ParseWants {
        references: opts.references,
        shared_strings: opts.string_values,
    };
    let mut fields = Fields::default();
    let mut scratch = Scratch::default();
    let mut start = 0;
    let mut index = 0u64;
    while start < data.len() {
        // Runs of empty lines (padding, a stream of newlines) in one step.
        let empty = data[start..].iter().take_while(|&&c| c == b'\n').count();
        if empty > 0 {
            r.blank += empty as u64;
            index += empty as u64;
            start += empty;
            continue;
        }
        let (end, next, terminated) = match memchr::memchr(b'\n', &data[start..]) {
            Some(n) => (start + n, start + n + 1, true),
            None => (data.len(), data.len(), false),
        };
        let mut line = &data[start..end];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        let (roots, objects) = (r.roots, r.objects);
        handle_line(
            line,
            index,
            !terminated && at_eof,
            wants,
            opts,
            &mut fields,
            &mut scratch,
            &mut r,
        );
        if r.first_record_end.is_none() && r.nonblank_before_record.is_some() {
            r.first_record_end = Some(next);
        }
        if r.roots > roots {
            r.first_root.get_or_insert(index);
            if objects > 0 {
                r.late_roots += 1;
                r.first_late_root.get_or_insert(index);
            }
        }
        index += 1;
        start = next;
    }
    r.lines = index;
    r
}

#[allow(clippy::too_many_arguments)]
fn handle_line<'a>(
    line: &'a [u8],
    index: u64,
    unterminated_last: bool,
    wants: ParseWants,
    opts: &ReadOptions,
    fields: &mut Fields<'a>,
    scratch: &mut Scratch,
    r: &mut ChunkResult,
) {
    if line.iter().all(|c| c.is_ascii_whitespace()) {
        r.blank += 1;
        return;
    }
    let outcome = match parse_line(line, wants, fields, scratch) {
        Ok(()) => accept(fields, &scratch.refs, opts, r),
        Err(e) => {
            // The general fallback owns its normalised line, so it is handled
            // entirely here rather than borrowed into `fields`.
            match normalise_json(line) {
                Some(norm) => {
                    let mut f2 = Fields::default();
                    match parse_line(&norm, wants, &mut f2, scratch) {
                        Ok(()) => {
                            r.fallback += 1;
                            accept(&f2, &scratch.refs, opts, r)
                        }
                        Err(e2) => Err(e2.message),
                    }
                }
                None => Err(format!("{} (at byte {})", e.message, e.at + 1)),
            }
        }
    };
    match outcome {
        Ok(recovered) => {
            if r.nonblank_before_record.is_none() {
                r.nonblank_before_record = Some(r.nonblank);
            }
            r.nonblank += 1;
            if recovered {
                r.recovered += 1;
                if r.recovered_lines.len() < KEEP_FIRST {
                    r.recovered_lines.push(index);
                }
            }
        }
        Err(message) => {
            r.nonblank += 1;
            r.malformed += 1;
            let problem = ChunkProblem {
                line: index,
                message,
                excerpt: excerpt(line),
            };
            if unterminated_last {
                r.truncated_last = Some(problem);
            } else if r.problems.len() < KEEP_FIRST {
                r.problems.push(problem);
            }
        }
    }
}

/// Adds a parsed record to the partial heap. Returns whether the line needed
/// recovery, or why the record is unusable.
fn accept(
    f: &Fields<'_>,
    refs: &[u64],
    opts: &ReadOptions,
    r: &mut ChunkResult,
) -> Result<bool, String> {
    let type_name: &[u8] = match &f.type_name {
        Some(t) => t,
        None => return Err("record has no \"type\"".into()),
    };
    match type_name {
        b"ROOT" => {
            let category: &[u8] = f.root.as_deref().unwrap_or(b"unknown");
            r.partial.push_root(&RootRecord { category, refs });
            r.roots += 1;
        }
        b"SHAPE" => {
            let u32_of = |v: Option<u64>| v.and_then(|v| u32::try_from(v).ok());
            r.partial.push_shape(&ShapeRecord {
                address: f.address.unwrap_or(0),
                id: u32_of(f.id).unwrap_or(u32::MAX),
                parent_id: u32_of(f.parent_id),
                depth: u32_of(f.depth).unwrap_or(0),
                shape_type: f.shape_type.as_deref(),
                edge_name: f.edge_name.as_deref(),
                capacity: u32_of(f.capacity),
                edges: u32_of(f.edges).unwrap_or(0),
                memsize: f.memsize.unwrap_or(0),
            });
            r.shapes += 1;
        }
        // A free slot (`dump_all(full: true)`), not an object: its `class`
        // is a free-list pointer.
        b"NONE" => {
            r.partial.count_free_slot();
            r.free_slots += 1;
        }
        _ => {
            let address = match f.address {
                Some(a) => a,
                None => return Err("heap object has no \"address\"".into()),
            };
            use heapscope_heap::types;
            let t = types::known(type_name);
            let detail = match t {
                Some(types::OBJECT) => match f.shape_id {
                    Some(s) if s < u32::MAX as u64 => Detail::Number(s as u32),
                    _ => Detail::None,
                },
                Some(types::STRING | types::FLOAT) if !opts.string_values => Detail::None,
                Some(types::STRING | types::FLOAT | types::SYMBOL) => opt(&f.value),
                Some(types::CLASS | types::MODULE) => opt(&f.name),
                Some(types::DATA) => opt(&f.struct_name),
                Some(types::IMEMO) => opt(&f.imemo_type),
                Some(types::NODE) => opt(&f.node_type),
                _ => Detail::None,
            };
            if f.integer_flags {
                r.partial.facts_mut().integer_flags = true;
            }
            if f.slot_size.is_some() || f.shape_id.is_some() {
                r.partial.facts_mut().has_slot_size = true;
            }
            r.partial.push_object(&ObjectRecord {
                address,
                type_name,
                class: f.class,
                flags: f.flags,
                memsize: f.memsize.unwrap_or(0),
                file: f.file.as_deref(),
                line: f.line.map(|l| l.min(u32::MAX as u64) as u32),
                method: f.method.as_deref(),
                generation: f
                    .generation
                    .and_then(|g| u32::try_from(g).ok())
                    .filter(|&g| g != u32::MAX),
                detail,
                refs: if f.has_refs { refs } else { &[] },
                object_id: f.object_id,
                real_class_name: match t {
                    Some(types::CLASS) if f.name.is_none() => f.real_class_name.as_deref(),
                    _ => None,
                },
            });
            // Shapes of non-OBJECTs name generic and class-level ivars
            // (3.2+); a 4.0 `fields` object's `class` is its owner.
            match (t, f.shape_id) {
                (Some(types::OBJECT), _) | (_, None | Some(0)) => {}
                (_, Some(s)) => {
                    if let Ok(s) = u32::try_from(s) {
                        r.partial.note_shape_id(s);
                    }
                }
            }
            // A shared string's value is its root's (resolved once every
            // address is known).
            if t == Some(types::STRING)
                && opts.string_values
                && f.value.is_none()
                && f.flags & heapscope_heap::flags::SHARED != 0
            {
                if let Some(&root) = refs.first() {
                    r.partial.note_shared_root(root);
                }
            }
            if t == Some(types::IMEMO) && f.imemo_type.as_deref() == Some(b"fields") {
                if let Some(owner) = f.class {
                    r.partial.note_fields_owner(owner);
                }
            }
            r.objects += 1;
        }
    }
    Ok(f.recovered)
}

fn opt<'a>(v: &'a Option<std::borrow::Cow<'_, [u8]>>) -> Detail<'a> {
    match v {
        Some(s) => Detail::Str(s),
        None => Detail::None,
    }
}

/// A short, printable piece of a line for error messages.
pub(crate) fn excerpt(line: &[u8]) -> String {
    const MAX: usize = 72;
    let mut out = String::new();
    for chunk in line[..line.len().min(MAX)].utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.push_str(&format!("\\x{:02x}", c as u32));
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if line.len() > MAX {
        out.push('…');
    }
    out
}
