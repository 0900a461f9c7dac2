//! Reads Ruby heap dumps (`ObjectSpace.dump_all` output, Ruby 2.1 to 4.0) into a
//! [`heapscope_heap::Heap`].
//!
//! The input (a plain, gzip or zstd file, or stdin) is cut into chunks of whole
//! lines by one thread; worker threads parse chunks into partial heaps in
//! parallel; a merger appends them in file order. Malformed lines never stop
//! the read: they are counted and the first ones reported with line numbers in
//! [`Diagnostics`].

mod chunk;
mod input;
pub mod parse;

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use heapscope_heap::{Heap, HeapBuilder};

use chunk::{parse_chunk, ChunkResult, KEEP_FIRST};
pub use input::{Compression, Input};

/// Called with the number of input bytes consumed so far.
pub type ProgressFn = Arc<dyn Fn(u64) + Send + Sync>;

#[derive(Clone)]
pub struct ReadOptions {
    /// Load the reference graph (needed by graph analyses, not by summaries).
    pub references: bool,
    /// Keep STRING and FLOAT values (for duplicate-string reports).
    pub string_values: bool,
    /// Parser threads; 0 means one per core.
    pub threads: usize,
    /// Bytes per chunk handed to a parser thread.
    pub chunk_bytes: usize,
    pub progress: Option<ProgressFn>,
    /// An input whose first record does not end within this many bytes is not
    /// a heap dump (see [`FIRST_RECORD_WITHIN`]).
    pub first_record_within: u64,
}

/// The default for [`ReadOptions::first_record_within`]: 64 MiB. A real dump
/// starts with a record on its first line (ROOT, SHAPE or an object); only a
/// first ROOT line with over 4 million references would pass this bound.
/// Without it, an input with no newline (`/dev/zero`, a gzip bomb of zeros)
/// would grow the line buffer without end. Once a record has been read there
/// is no line-length limit (arrays with millions of references, multi-MB
/// strings are legitimate).
pub const FIRST_RECORD_WITHIN: u64 = 64 << 20;

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            references: true,
            string_values: false,
            threads: 0,
            chunk_bytes: 8 << 20,
            progress: None,
            first_record_within: FIRST_RECORD_WITHIN,
        }
    }
}

/// A problem with one line of the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    /// 1-based line number.
    pub line: u64,
    pub message: String,
    pub excerpt: String,
}

/// Everything that was odd about the input, and what it held.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    pub bytes: u64,
    pub lines: u64,
    pub objects: u64,
    pub roots: u64,
    pub shapes: u64,
    pub blank_lines: u64,
    /// Lines that could not be used (including a truncated last line).
    pub malformed: u64,
    /// The first malformed lines (not the truncated last one).
    pub first_malformed: Vec<LineProblem>,
    /// The last line was cut off (the process died, or the file was not closed).
    pub truncated_last_line: Option<LineProblem>,
    /// Lines broken by unescaped quotes or backslashes (a Ruby bug) and recovered.
    pub recovered: u64,
    pub first_recovered: Vec<u64>,
    /// Lines that needed the general JSON parser.
    pub fallback_lines: u64,
    /// The input ended with a read error (a cut-off gzip or zstd stream); what
    /// came before it was analysed.
    pub input_error: Option<String>,
    /// Non-blank lines before the first record (None until one is seen).
    pub junk_prefix: Option<u64>,
    /// The file changed while it was read, but no byte read went missing
    /// (it grew, or was rewritten after the read): why, for a warning.
    pub file_changed: Option<String>,
    /// Heap objects whose address an earlier record already had (copied
    /// from [`heapscope_heap::DumpFacts`]).
    pub duplicate_addresses: u64,
    /// References (object to object) whose target no record has, and all
    /// references; both 0 when references were not loaded.
    pub dangling_refs: u64,
    pub references: u64,
    /// ROOT records that come after heap objects (Ruby writes them first, so
    /// these mean several dumps in one file), and the line of the first one.
    pub late_roots: u64,
    pub first_late_root: Option<u64>,
    /// Free slots (`"type":"NONE"` records of `dump_all(full: true)`),
    /// skipped: they are not objects (copied from
    /// [`heapscope_heap::DumpFacts`]).
    pub free_slots: u64,
    /// CLASS and MODULE records; none in a `dump_all(since: ...)` dump.
    pub class_records: u64,
}

impl Diagnostics {
    pub fn records(&self) -> u64 {
        self.objects + self.roots + self.shapes + self.free_slots
    }

    /// Human-readable warnings, one per line, for stderr.
    pub fn warnings(&self, source: &str) -> Vec<String> {
        let mut w = Vec::new();
        for p in &self.first_malformed {
            w.push(format!(
                "{source}:{}: skipped malformed line: {} [{}]",
                p.line, p.message, p.excerpt
            ));
        }
        let others = self.malformed
            - self.first_malformed.len() as u64
            - self.truncated_last_line.is_some() as u64;
        if others > 0 {
            w.push(format!("{source}: ... and {others} more malformed lines"));
        }
        if let Some(p) = &self.truncated_last_line {
            w.push(format!(
                "{source}:{}: the last line is truncated (was the dump cut off?); it was skipped",
                p.line
            ));
        }
        if let Some(e) = &self.input_error {
            w.push(format!(
                "{source}: the input ends early ({e}): was it cut off? The {} bytes before that were analysed",
                self.bytes
            ));
        }
        if self.recovered > 0 {
            let lines: Vec<String> = self.first_recovered.iter().map(|l| l.to_string()).collect();
            w.push(format!(
                "{source}: recovered {} lines broken by unescaped quotes or backslashes (a Ruby bug), e.g. line {}",
                self.recovered,
                lines.join(", ")
            ));
        }
        if self.malformed > 0 {
            w.push(format!(
                "{source}: {} of {} lines were malformed and skipped; the rest was analysed",
                self.malformed, self.lines
            ));
        }
        if let Some(why) = &self.file_changed {
            w.push(format!("{source}: {why}"));
        }
        w.extend(self.structure_warnings(source));
        w
    }

    /// Warnings about the dump as a whole rather than single lines: several
    /// dumps in one file, repeated addresses, many dangling references. For
    /// stderr and for the `warnings` of JSON reports.
    pub fn structure_warnings(&self, source: &str) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(line) = self.first_late_root {
            w.push(format!(
                "{source}:{line}: a ROOT record after heap objects ({} such records): the file looks like several dumps concatenated; analyse them one at a time",
                self.late_roots
            ));
        }
        if self.duplicate_addresses > 0 {
            w.push(format!(
                "{source}: {} heap objects repeat the address of an earlier record (concatenated dumps, or a dump appended to an old one?): each copy is counted, so totals are inflated, and references reach only one copy",
                self.duplicate_addresses
            ));
        }
        if self.since_dump() {
            w.push(format!(
                "{source}: the dump has no CLASS records, as dump_all(since: ...) writes: it holds only the objects allocated since a GC generation, so class names (classes show as \"(unknown class 0x...)\") and references to older objects are not in it"
            ));
        }
        // A few dangling references are normal (objects freed while Ruby
        // wrote the dump); many mean a partial dump (expected of a
        // dump_all(since: ...) dump, said above).
        if self.dangling_refs > 0
            && self.dangling_refs * 100 > self.references
            && !self.since_dump()
        {
            w.push(format!(
                "{source}: {} of {} references ({:.1}%) point at addresses no record has (a partial or cut-off dump?); they were dropped",
                self.dangling_refs,
                self.references,
                100.0 * self.dangling_refs as f64 / self.references.max(1) as f64
            ));
        }
        w
    }

    /// The dump has objects but no ROOT and no CLASS records: written by
    /// `dump_all(since: gen)`, which leaves out everything older than `gen`.
    pub fn since_dump(&self) -> bool {
        self.objects > 0 && self.roots == 0 && self.class_records == 0
    }

    /// Why what is reachable cannot be judged from this dump, if it cannot:
    /// for the commands that walk the object graph (retained sizes,
    /// unreachable objects, paths, suspects). Empty for a sound dump.
    pub fn reachability_warnings(&self, source: &str) -> Vec<String> {
        let mut w = Vec::new();
        if self.since_dump() {
            w.push(format!(
                "{source}: reachability cannot be judged: the dump has no ROOT records (dump_all(since: ...) leaves them out), so nothing can be said about what is reachable, retained or garbage"
            ));
        } else if self.roots == 0 && self.objects > 0 {
            w.push(format!(
                "{source}: the dump has no ROOT records (written with dump_all(since: ...)?, or cut off at the start): reachability cannot be judged, so every object looks unreachable and retained sizes and paths are meaningless"
            ));
        }
        if self.duplicate_addresses > 0 || self.late_roots > 0 {
            w.push(format!(
                "{source}: with repeated addresses or several dumps in one file, reachability cannot be judged reliably: references reach only one copy of each address, so the other copies look unreachable"
            ));
        }
        w
    }
}

/// A heap read from a dump, with what the reader noticed.
pub struct Dump {
    pub heap: Heap,
    pub diagnostics: Diagnostics,
    pub source: String,
}

#[derive(Debug)]
pub enum ReadError {
    Io {
        source_name: String,
        error: std::io::Error,
    },
    NotADump {
        source_name: String,
        why: String,
    },
    /// The file shrank while it was being read (rewritten in place, or
    /// truncated by log rotation): what was read cannot be trusted.
    Truncated {
        source_name: String,
        why: String,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io { source_name, error } => write!(f, "{source_name}: {error}"),
            ReadError::NotADump { source_name, why } => {
                write!(f, "{source_name}: not a Ruby heap dump: {why}")
            }
            ReadError::Truncated { source_name, why } => write!(f, "{source_name}: {why}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Reads a dump from a path (`-` for stdin).
pub fn read_path(path: &Path, opts: &ReadOptions) -> Result<Dump, ReadError> {
    let input = Input::open(path).map_err(|error| ReadError::Io {
        source_name: path.display().to_string(),
        error,
    })?;
    read_input(input, opts)
}

/// Reads a dump from an opened input.
pub fn read_input(input: Input, opts: &ReadOptions) -> Result<Dump, ReadError> {
    let source = input.name.clone();
    let expected = input.size_hint.map(|s| (s / 100) as usize).unwrap_or(0);
    let io_err = |error| ReadError::Io {
        source_name: source.clone(),
        error,
    };
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        opts.threads
    };
    // An uncompressed regular file is read with read(2) into recycled
    // buffers, not memory-mapped. A mapped file that another process
    // truncates (a new dump written to the same path, copytruncate log
    // rotation) raises SIGBUS on the next access past its new end, which
    // kills the process; catching that would take a process-wide signal
    // handler that remaps pages under the parser's feet. read(2) instead
    // just returns fewer bytes than the size seen at open, which
    // `GuardedFile` reports as an error (exit 2, not a signal death). The
    // copy out of the page cache costs little next to parsing, and memory
    // for input stays a few chunks whatever the file size.
    let mut guarded = match input.mapped {
        Some(file) => Some(GuardedFile::new(file, input.file_size).map_err(io_err)?),
        None => None,
    };
    let mut stream = input.reader;

    let (work_tx, work_rx) = crossbeam_channel::bounded::<(u64, Vec<u8>, bool)>(threads);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<(u64, ChunkResult, Vec<u8>)>(threads * 2);
    let (free_tx, free_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    let max_buffers = threads * 2 + 2;
    let gate = Gate::default();
    let gate = &gate;

    std::thread::scope(|scope| {
        for _ in 0..threads {
            let work_rx = work_rx.clone();
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                for (idx, chunk, eof) in work_rx {
                    let mut result = parse_chunk(&chunk, eof, opts);
                    if idx == 0 {
                        result.head = chunk[..chunk.len().min(4096)].to_vec();
                    }
                    if done_tx.send((idx, result, chunk)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(work_rx);
        drop(done_tx);

        // The merger runs on its own thread so that reading never waits on it.
        let merger = scope.spawn(move || merge(done_rx, free_tx, expected, opts, gate));

        let mut split = Split::default();
        let reader: &mut dyn Read = match guarded.as_mut() {
            Some(g) => g,
            None => &mut *stream,
        };
        let read_result = split_into_chunks(
            reader,
            opts,
            max_buffers,
            &free_rx,
            &work_tx,
            gate,
            &mut split,
        );
        drop(work_tx);
        let merged = merger.join().expect("merger thread panicked");
        let bytes = match read_result {
            Ok(b) => b,
            Err(e) => return Err(read_failure(&source, e)),
        };
        let Merged {
            builder,
            mut diag,
            first_bytes: first_line,
            no_record_within,
        } = merged;
        diag.bytes = bytes;
        if let Some(e) = split.stream_error {
            if shrank(&e).is_some() {
                return Err(read_failure(&source, e));
            }
            diag.input_error = Some(e.to_string());
        }
        if let Some(long) = &split.long_line {
            return Err(ReadError::NotADump {
                source_name: source.clone(),
                why: long_line_reason(long, opts.first_record_within),
            });
        }
        if let Some(g) = &guarded {
            diag.file_changed = g.changes();
        }
        let junk_prefix = diag.junk_prefix.unwrap_or(u64::MAX);
        if diag.records() == 0
            || junk_prefix >= MAX_JUNK_PREFIX
            || no_record_within
            || starts_like_json_array(&first_line)
        {
            let mut why = not_a_dump_reason(&diag, &first_line);
            let limit = mib(opts.first_record_within);
            if no_record_within && diag.lines == diag.blank_lines {
                why = format!("its first {limit} hold only blank lines");
            } else if no_record_within && diag.records() > 0 {
                why = format!(
                    "no record ends within its first {limit} (a real dump starts with one)"
                );
            } else if no_record_within {
                why = format!("no record ends within its first {limit}: {why}");
            }
            return Err(ReadError::NotADump {
                source_name: source.clone(),
                why,
            });
        }
        let heap = builder.finish();
        diag.duplicate_addresses = heap.facts.duplicate_addresses;
        diag.class_records = heap.facts.class_records;
        diag.dangling_refs = heap.facts.dangling_refs;
        diag.references = heap.refs.len() as u64 + heap.facts.dangling_refs;
        Ok(Dump {
            heap,
            diagnostics: diag,
            source: source.clone(),
        })
    })
}

fn mib(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// A read error as the caller sees it: a file that shrank while it was read
/// is [`ReadError::Truncated`], anything else an I/O error.
fn read_failure(source: &str, error: std::io::Error) -> ReadError {
    match shrank(&error) {
        Some(s) => ReadError::Truncated {
            source_name: source.to_string(),
            why: s.to_string(),
        },
        None => ReadError::Io {
            source_name: source.to_string(),
            error,
        },
    }
}

fn shrank(e: &std::io::Error) -> Option<&FileShrank> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<FileShrank>())
}

/// A regular file read up to the size it had when it was opened (data
/// appended later is left for the next read of it). Reaching its end sooner
/// means it was truncated under us: that is an error carrying [`FileShrank`].
struct GuardedFile {
    file: File,
    size: u64,
    modified: Option<std::time::SystemTime>,
    pos: u64,
}

impl GuardedFile {
    /// `size`: the size when the file was opened, if known.
    fn new(file: File, size: Option<u64>) -> std::io::Result<GuardedFile> {
        let meta = file.metadata()?;
        Ok(GuardedFile {
            size: size.unwrap_or(meta.len()),
            modified: meta.modified().ok(),
            pos: 0,
            file,
        })
    }

    /// After a complete read: whether the file changed meanwhile (every byte
    /// read was there, but they may not all belong to one dump).
    fn changes(&self) -> Option<String> {
        let meta = self.file.metadata().ok()?;
        let (was, now) = (self.size, meta.len());
        if now < was {
            Some(format!(
                "the file was truncated from {was} to {now} bytes just after it was read (a new dump written to the same path?); the {was} bytes read were analysed"
            ))
        } else if now > was {
            Some(format!(
                "the file grew from {was} to {now} bytes while it was read (still being written?); its first {was} bytes were analysed"
            ))
        } else if meta.modified().ok() != self.modified {
            Some(
                "the file was modified while it was read: the analysis may mix old and new contents; read it again once it is complete".into(),
            )
        } else {
            None
        }
    }
}

impl Read for GuardedFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.size.saturating_sub(self.pos);
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            let now = self.file.metadata().map(|m| m.len()).ok();
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                FileShrank {
                    read: self.pos,
                    size: self.size,
                    now,
                },
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// The file ended before the size it had at open.
#[derive(Debug)]
struct FileShrank {
    read: u64,
    size: u64,
    now: Option<u64>,
}

impl std::fmt::Display for FileShrank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the file was truncated while it was being read (it ended after {} of its {} bytes",
            self.read, self.size
        )?;
        if let Some(now) = self.now {
            write!(f, "; it now has {now}")?;
        }
        write!(
            f,
            "): was a new dump written to the same path, or the file rotated? Read it again once it is complete"
        )
    }
}

impl std::error::Error for FileShrank {}

/// What the merger has learnt about the start of the input, for the reading
/// thread: how many chunks it has merged (and their lines), whether a record
/// ended within the first [`ReadOptions::first_record_within`] bytes, and
/// whether it has stopped.
#[derive(Default)]
struct Gate {
    state: std::sync::Mutex<GateState>,
    cv: std::sync::Condvar,
}

#[derive(Default, Clone, Copy)]
struct GateState {
    merged: u64,
    lines: u64,
    record_within: bool,
    stopped: bool,
}

impl Gate {
    fn update(&self, f: impl FnOnce(&mut GateState)) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
        self.cv.notify_all();
    }

    /// Waits until the first `chunks` chunks are merged (or the merger stopped).
    fn wait_merged(&self, chunks: u64) -> GateState {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while s.merged < chunks && !s.stopped {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        *s
    }
}

/// Marks the gate stopped however the merger ends.
struct StopOnDrop<'a>(&'a Gate);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.update(|s| s.stopped = true);
    }
}

/// What the reading thread noticed besides the chunks it sent.
#[derive(Default)]
struct Split {
    /// A read error after some data (a cut-off gzip/zstd stream, a file that shrank).
    stream_error: Option<std::io::Error>,
    /// Reading stopped on a line past the first-record bound with no record before it.
    long_line: Option<LongLine>,
}

struct LongLine {
    /// 1-based line number.
    line: u64,
    /// Its first bytes.
    head: Vec<u8>,
}

fn long_line_reason(l: &LongLine, limit: u64) -> String {
    let limit = mib(limit);
    if looks_binary(&l.head) {
        return format!(
            "it is binary data (a compressed format other than gzip or zstd?): no record ends within its first {limit}, and line {} runs on past it without a newline",
            l.line
        );
    }
    format!(
        "no record ends within its first {limit}, and line {} runs on past it without a newline: {}",
        l.line,
        chunk::excerpt(&l.head)
    )
}

/// Reads the input into chunks that end at line boundaries. Returns the
/// number of bytes read. Stops early when the merger hangs up, or when a line
/// runs past the first-record bound before any record (see [`Split`]).
fn split_into_chunks(
    reader: &mut dyn Read,
    opts: &ReadOptions,
    max_buffers: usize,
    free_rx: &crossbeam_channel::Receiver<Vec<u8>>,
    work_tx: &crossbeam_channel::Sender<(u64, Vec<u8>, bool)>,
    gate: &Gate,
    split: &mut Split,
) -> std::io::Result<u64> {
    let chunk = opts.chunk_bytes.max(4096);
    let mut carry: Vec<u8> = Vec::new();
    let mut total = 0u64;
    let mut idx = 0u64;
    let mut allocated = 0usize;
    // Set once a record is known to end within the bound: lines may then be
    // as long as they like.
    let mut record_within = false;
    loop {
        let mut buf = match free_rx.try_recv() {
            Ok(b) => b,
            Err(_) if allocated < max_buffers => {
                allocated += 1;
                Vec::with_capacity(chunk + chunk / 4)
            }
            Err(_) => match free_rx.recv() {
                Ok(b) => b,
                Err(_) => return Ok(total),
            },
        };
        buf.clear();
        buf.extend_from_slice(&carry);
        carry.clear();
        let mut eof = false;
        // Fill at least `chunk` bytes, then keep going until a newline so the
        // chunk ends on a line boundary (a huge line just grows the buffer).
        let mut search_from = 0;
        loop {
            if buf.len() >= chunk {
                if let Some(nl) = memchr::memrchr(b'\n', &buf[search_from..]) {
                    let cut = search_from + nl + 1;
                    carry.extend_from_slice(&buf[cut..]);
                    buf.truncate(cut);
                    break;
                }
                search_from = buf.len();
                // `buf` is one unfinished line. If it already ends past the
                // bound, no record can end within it unless an earlier chunk
                // held one: ask the merger, once the chunks sent are merged.
                if !record_within && total > opts.first_record_within {
                    let state = gate.wait_merged(idx);
                    if state.stopped && state.merged < idx {
                        return Ok(total); // it gave up on the input already
                    }
                    if !state.record_within {
                        split.long_line = Some(LongLine {
                            line: state.lines + 1,
                            head: buf[..buf.len().min(4096)].to_vec(),
                        });
                        return Ok(total);
                    }
                    record_within = true;
                }
            }
            // Below the chunk size, read up to it (no reallocation); past it
            // (a line longer than a chunk), grow geometrically.
            let mut want = if buf.len() < chunk {
                chunk - buf.len()
            } else {
                chunk.max(buf.len() / 2)
            };
            // Growing a line while the bound is undecided: stop just past
            // the bound, so that the check above runs before reading on.
            let bound = opts.first_record_within;
            if buf.len() >= chunk && !record_within && total <= bound {
                want = want.min(usize::try_from(bound + 1 - total).unwrap_or(usize::MAX));
            }
            let old = buf.len();
            buf.resize(old + want, 0);
            let (n, err) = read_full(reader, &mut buf[old..]);
            buf.truncate(old + n);
            total += n as u64;
            if let Some(e) = err {
                // A cut-off gzip/zstd stream or a failing device: keep what
                // was read, unless nothing was.
                if total == 0 {
                    return Err(e);
                }
                split.stream_error = Some(e);
                eof = true;
                break;
            }
            if n == 0 {
                eof = true;
                break;
            }
        }
        if let Some(p) = &opts.progress {
            p(total);
        }
        if work_tx.send((idx, buf, eof)).is_err() {
            return Ok(total);
        }
        idx += 1;
        if eof {
            return Ok(total);
        }
    }
}

/// Fills `buf` as far as the input goes. An error is returned with the bytes
/// read before it, so that what was read can still be analysed.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> (usize, Option<std::io::Error>) {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

/// What the merger hands back: the builder, the diagnostics, the first bytes
/// of the input (to explain a non-dump), and whether it gave up because no
/// record ended within the first-record bound.
struct Merged {
    builder: HeapBuilder,
    diag: Diagnostics,
    first_bytes: Vec<u8>,
    no_record_within: bool,
}

/// Appends chunk results in order.
fn merge(
    done_rx: crossbeam_channel::Receiver<(u64, ChunkResult, Vec<u8>)>,
    free_tx: crossbeam_channel::Sender<Vec<u8>>,
    expected: usize,
    opts: &ReadOptions,
    gate: &Gate,
) -> Merged {
    let _stop = StopOnDrop(gate);
    let mut m = Merged {
        builder: HeapBuilder::new(opts.references, expected),
        diag: Diagnostics::default(),
        first_bytes: Vec::new(),
        no_record_within: false,
    };
    let limit = opts.first_record_within;
    let mut pending: std::collections::BTreeMap<u64, (ChunkResult, u64)> = Default::default();
    let mut next = 0u64;
    let mut junk = 0u64;
    let mut bytes = 0u64;
    let mut record_within = false;
    for (idx, mut result, mut buf) in done_rx.iter() {
        if idx == 0 {
            m.first_bytes = std::mem::take(&mut result.head);
        }
        let len = buf.len() as u64;
        buf.clear();
        let _ = free_tx.send(buf);
        pending.insert(idx, (result, len));
        while let Some((r, len)) = pending.remove(&next) {
            let diag = &mut m.diag;
            let (r_prefix, r_nonblank) = (r.nonblank_before_record, r.nonblank);
            let base = diag.lines;
            let objects_before = diag.objects;
            add_chunk(diag, &r, base, objects_before > 0);
            if !record_within {
                match r.first_record_end {
                    Some(end) if bytes + end as u64 <= limit => record_within = true,
                    Some(_) => m.no_record_within = true,
                    None if bytes + len > limit => m.no_record_within = true,
                    None => {}
                }
            }
            bytes += len;
            m.builder.append(r.partial);
            next += 1;
            if diag.junk_prefix.is_none() {
                match r_prefix {
                    Some(before) => diag.junk_prefix = Some(junk + before),
                    None => junk += r_nonblank,
                }
            }
            let lines = diag.lines;
            gate.update(|s| {
                s.merged = next;
                s.lines = lines;
                s.record_within = record_within;
            });
            // Give up early on something that is clearly not a dump.
            if starts_like_json_array(&m.first_bytes)
                || m.no_record_within
                || diag.junk_prefix.is_none() && junk >= MAX_JUNK_PREFIX
            {
                if diag.junk_prefix.is_none() {
                    diag.junk_prefix = Some(junk);
                }
                return m;
            }
        }
    }
    m
}

fn add_chunk(d: &mut Diagnostics, r: &ChunkResult, base: u64, after_objects: bool) {
    d.lines += r.lines;
    d.objects += r.objects;
    d.roots += r.roots;
    d.shapes += r.shapes;
    d.free_slots += r.free_slots;
    d.blank_lines += r.blank;
    d.malformed += r.malformed;
    d.recovered += r.recovered;
    d.fallback_lines += r.fallback;
    // Roots after heap objects: within the chunk, or all of the chunk's when
    // objects came before it.
    let (late, first_late) = if after_objects {
        (r.roots, r.first_root)
    } else {
        (r.late_roots, r.first_late_root)
    };
    d.late_roots += late;
    if d.first_late_root.is_none() {
        d.first_late_root = first_late.map(|l| base + l + 1);
    }
    let to_problem = |p: &chunk::ChunkProblem| LineProblem {
        line: base + p.line + 1,
        message: p.message.clone(),
        excerpt: p.excerpt.clone(),
    };
    for p in &r.problems {
        if d.first_malformed.len() < KEEP_FIRST {
            d.first_malformed.push(to_problem(p));
        }
    }
    if let Some(p) = &r.truncated_last {
        d.truncated_last_line = Some(to_problem(p));
    }
    for &l in &r.recovered_lines {
        if d.first_recovered.len() < KEEP_FIRST {
            d.first_recovered.push(base + l + 1);
        }
    }
}

/// An input whose first this-many non-blank lines hold no record is not a
/// heap dump, however it goes on. Counted in lines, not chunks, so the verdict
/// does not depend on how the input was cut.
const MAX_JUNK_PREFIX: u64 = 1000;

/// A JSON array (`[{...}, ...]`), which some tools write, is not JSON lines.
fn starts_like_json_array(first: &[u8]) -> bool {
    first.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'[')
}

fn not_a_dump_reason(d: &Diagnostics, first: &[u8]) -> String {
    let trimmed: &[u8] = {
        let start = first
            .iter()
            .position(|c| !c.is_ascii_whitespace())
            .unwrap_or(first.len());
        &first[start..]
    };
    if d.bytes == 0 {
        return "the input is empty".into();
    }
    if d.lines == d.blank_lines || trimmed.is_empty() && d.records() == 0 {
        return "the input holds only blank lines".into();
    }
    if looks_binary(first) {
        return "it is binary data (a compressed format other than gzip or zstd?)".into();
    }
    if trimmed.first() == Some(&b'[') {
        return "it is a JSON array; ObjectSpace.dump_all writes one JSON object per line".into();
    }
    let (index, line) = first
        .split(|&c| c == b'\n')
        .enumerate()
        .find(|(_, l)| !l.iter().all(|c| c.is_ascii_whitespace()))
        .unwrap_or_default();
    format!(
        "none of its first {} non-blank lines is a heap dump record (expected JSON objects like {{\"address\":\"0x...\", \"type\":\"STRING\", ...}}); line {}: {}",
        d.junk_prefix.unwrap_or(d.lines - d.blank_lines).min(d.lines - d.blank_lines),
        index + 1,
        chunk::excerpt(line)
    )
}

/// NUL bytes, or more than 5% control characters.
fn looks_binary(head: &[u8]) -> bool {
    head.contains(&0)
        || head
            .iter()
            .filter(|&&c| c < 0x20 && !b"\n\r\t".contains(&c))
            .count()
            * 20
            > head.len()
}

/// Whether a file's first non-blank line is a heap dump record, for picking
/// dumps out of a directory that holds other files too. Reads a few KB.
pub fn starts_like_dump(path: &Path) -> bool {
    const LIMIT: usize = 64 << 10;
    let Ok(input) = Input::open(path) else {
        return false;
    };
    let mut head = Vec::new();
    let read = match input.mapped {
        Some(file) => file.take(LIMIT as u64).read_to_end(&mut head),
        None => input.reader.take(LIMIT as u64).read_to_end(&mut head),
    };
    if read.is_err() {
        return false;
    }
    let Some(line) = head
        .split(|&c| c == b'\n')
        .find(|l| !l.iter().all(|c| c.is_ascii_whitespace()))
    else {
        return false;
    };
    let cut_off = head.len() == LIMIT && line.as_ptr_range().end == head.as_ptr_range().end;
    if cut_off {
        // A first line longer than what was read (a ROOT with millions of
        // references): judge it by its start.
        let start = &line[..line.len().min(200)];
        return line.starts_with(b"{") && memchr::memmem::find(start, b"\"type\"").is_some();
    }
    let mut fields = parse::Fields::default();
    let mut scratch = parse::Scratch::default();
    let wants = parse::ParseWants {
        references: false,
        shared_strings: false,
    };
    parse::parse_line(line, wants, &mut fields, &mut scratch).is_ok() && fields.type_name.is_some()
}

/// How an input is named in messages.
pub fn display_name(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".into()
    } else {
        path.display().to_string()
    }
}
