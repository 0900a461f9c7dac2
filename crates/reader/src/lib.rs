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
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            references: true,
            string_values: false,
            threads: 0,
            chunk_bytes: 8 << 20,
            progress: None,
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
}

impl Diagnostics {
    pub fn records(&self) -> u64 {
        self.objects + self.roots + self.shapes
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
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io { source_name, error } => write!(f, "{source_name}: {error}"),
            ReadError::NotADump { source_name, why } => {
                write!(f, "{source_name}: not a Ruby heap dump: {why}")
            }
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
    let mut reader = input.reader;
    // SAFETY (of the map): the file is only read. If another process truncated
    // it while we read, accessing the lost pages would fault; dumps are not
    // rewritten in place, and a file still growing is read up to its size at open.
    let map = match &input.mapped {
        Some(file) => Some(unsafe { memmap2::Mmap::map(file) }.map_err(io_err)?),
        None => None,
    };
    if let Some(m) = &map {
        let _ = m.advise(memmap2::Advice::Sequential);
    }
    let map = map.as_ref();

    let (work_tx, work_rx) = crossbeam_channel::bounded::<(u64, Chunk, bool)>(threads);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<(u64, ChunkResult, Chunk)>(threads * 2);
    let (free_tx, free_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    let max_buffers = threads * 2 + 2;

    std::thread::scope(|scope| {
        for _ in 0..threads {
            let work_rx = work_rx.clone();
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                for (idx, chunk, eof) in work_rx {
                    let data = chunk.bytes(map);
                    let mut result = parse_chunk(data, eof, opts);
                    if idx == 0 {
                        result.head = data[..data.len().min(4096)].to_vec();
                    }
                    if let (Chunk::Mapped(start, end), Some(m)) = (&chunk, map) {
                        release_mapped(m, *start, *end);
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
        let merger = scope.spawn(move || merge(done_rx, free_tx, expected, opts));

        let mut stream_error = None;
        let read_result = match map {
            Some(m) => Ok(split_mapped(m, opts, &work_tx)),
            None => split_into_chunks(
                &mut reader,
                opts,
                max_buffers,
                &free_rx,
                &work_tx,
                &mut stream_error,
            ),
        };
        drop(work_tx);
        let merged = merger.join().expect("merger thread panicked");
        let bytes = read_result.map_err(io_err)?;
        let (builder, mut diag, first_line) = merged;
        diag.bytes = bytes;
        diag.input_error = stream_error;
        let junk_prefix = diag.junk_prefix.unwrap_or(u64::MAX);
        if diag.records() == 0
            || junk_prefix >= MAX_JUNK_PREFIX
            || starts_like_json_array(&first_line)
        {
            return Err(ReadError::NotADump {
                source_name: source.clone(),
                why: not_a_dump_reason(&diag, &first_line),
            });
        }
        Ok(Dump {
            heap: builder.finish(),
            diagnostics: diag,
            source: source.clone(),
        })
    })
}

/// A chunk of whole lines: a buffer read from a stream, or a range of a mapped file.
enum Chunk {
    Owned(Vec<u8>),
    Mapped(usize, usize),
}

impl Chunk {
    fn bytes<'a>(&'a self, map: Option<&'a memmap2::Mmap>) -> &'a [u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Mapped(s, e) => &map.expect("mapped chunk without a map")[*s..*e],
        }
    }
}

/// Drops a parsed range of the map from our resident set (the pages stay in
/// the page cache), so peak memory does not grow with the file. A page shared
/// with a neighbouring chunk that is still being parsed is simply faulted in again.
fn release_mapped(map: &memmap2::Mmap, start: usize, end: usize) {
    const PAGE: usize = 4096;
    let s = start.div_ceil(PAGE) * PAGE;
    let e = end / PAGE * PAGE;
    if e > s {
        // SAFETY: the map is read-only and file-backed: dropped pages read back
        // the same bytes from the file, so no reference sees its data change.
        let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, s, e - s) };
    }
}

/// Cuts a mapped file into chunks that end at line boundaries. No copying.
fn split_mapped(
    map: &memmap2::Mmap,
    opts: &ReadOptions,
    work_tx: &crossbeam_channel::Sender<(u64, Chunk, bool)>,
) -> u64 {
    let chunk = opts.chunk_bytes.max(4096);
    let len = map.len();
    let mut start = 0;
    let mut idx = 0;
    while start < len {
        let mut end = (start + chunk).min(len);
        if end < len {
            end = match memchr::memchr(b'\n', &map[end..]) {
                Some(n) => end + n + 1,
                None => len,
            };
        }
        if let Some(p) = &opts.progress {
            p(end as u64);
        }
        if work_tx
            .send((idx, Chunk::Mapped(start, end), end == len))
            .is_err()
        {
            break;
        }
        idx += 1;
        start = end;
    }
    len as u64
}

/// Reads the input into chunks that end at line boundaries. Returns the
/// number of bytes read. Stops early when the merger hangs up.
fn split_into_chunks(
    reader: &mut dyn Read,
    opts: &ReadOptions,
    max_buffers: usize,
    free_rx: &crossbeam_channel::Receiver<Vec<u8>>,
    work_tx: &crossbeam_channel::Sender<(u64, Chunk, bool)>,
    stream_error: &mut Option<String>,
) -> std::io::Result<u64> {
    let chunk = opts.chunk_bytes.max(4096);
    let mut carry: Vec<u8> = Vec::new();
    let mut total = 0u64;
    let mut idx = 0u64;
    let mut allocated = 0usize;
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
            }
            // Below the chunk size, read up to it (no reallocation); past it
            // (a line longer than a chunk), grow geometrically.
            let want = if buf.len() < chunk {
                chunk - buf.len()
            } else {
                chunk.max(buf.len() / 2)
            };
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
                *stream_error = Some(e.to_string());
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
        if work_tx.send((idx, Chunk::Owned(buf), eof)).is_err() {
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

/// Appends chunk results in order. Returns the builder, the diagnostics and
/// the first bytes of the input (to explain a non-dump).
fn merge(
    done_rx: crossbeam_channel::Receiver<(u64, ChunkResult, Chunk)>,
    free_tx: crossbeam_channel::Sender<Vec<u8>>,
    expected: usize,
    opts: &ReadOptions,
) -> (HeapBuilder, Diagnostics, Vec<u8>) {
    let mut builder = HeapBuilder::new(opts.references, expected);
    let mut diag = Diagnostics::default();
    let mut pending: std::collections::BTreeMap<u64, ChunkResult> = Default::default();
    let mut next = 0u64;
    let mut first_bytes = Vec::new();
    let mut junk = 0u64;
    for (idx, mut result, chunk) in done_rx.iter() {
        if idx == 0 {
            first_bytes = std::mem::take(&mut result.head);
        }
        if let Chunk::Owned(mut buf) = chunk {
            buf.clear();
            let _ = free_tx.send(buf);
        }
        pending.insert(idx, result);
        while let Some(r) = pending.remove(&next) {
            let (r_prefix, r_nonblank) = (r.nonblank_before_record, r.nonblank);
            let base = diag.lines;
            add_chunk(&mut diag, &r, base);
            builder.append(r.partial);
            next += 1;
            if diag.junk_prefix.is_none() {
                match r_prefix {
                    Some(before) => diag.junk_prefix = Some(junk + before),
                    None => junk += r_nonblank,
                }
            }
            // Give up early on something that is clearly not a dump.
            if starts_like_json_array(&first_bytes)
                || diag.junk_prefix.is_none() && junk >= MAX_JUNK_PREFIX
            {
                diag.junk_prefix = Some(junk);
                return (builder, diag, first_bytes);
            }
        }
    }
    (builder, diag, first_bytes)
}

fn add_chunk(d: &mut Diagnostics, r: &ChunkResult, base: u64) {
    d.lines += r.lines;
    d.objects += r.objects;
    d.roots += r.roots;
    d.shapes += r.shapes;
    d.blank_lines += r.blank;
    d.malformed += r.malformed;
    d.recovered += r.recovered;
    d.fallback_lines += r.fallback;
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
    let binary = first.iter().filter(|&&c| c == 0).count() > 0
        || first
            .iter()
            .filter(|&&c| c < 0x20 && !b"\n\r\t".contains(&c))
            .count()
            * 20
            > first.len();
    if binary {
        return "it is binary data (a compressed format other than gzip or zstd?)".into();
    }
    if trimmed[0] == b'[' {
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
    let wants = parse::ParseWants { references: false };
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
