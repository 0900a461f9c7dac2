//! Parsing one line of a heap dump.
//!
//! The fast path is a scanner specialised to what Ruby writes: one flat JSON
//! object per line, values borrowed from the line without copying, hex
//! addresses decoded in place, unknown keys skipped. It still accepts any
//! whitespace, key order and string escapes. It also recovers the keys Ruby
//! writes without escaping (`file`, `method` before 3.0, `struct`,
//! `real_class_name`): a quote or backslash inside them does not end the value.
//! Lines it cannot take are normalised by serde_json (the general fallback) and
//! scanned again.

use std::borrow::Cow;

use memchr::{memchr, memchr2};

/// A string value: borrowed from the line unless it had escapes.
pub type Bytes<'a> = Cow<'a, [u8]>;

/// Every key of a record that heapscope keeps. Keys it does not keep are
/// checked for well-formedness and skipped.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    pub type_name: Option<Bytes<'a>>,
    pub address: Option<u64>,
    pub class: Option<u64>,
    pub flags: u8,
    pub integer_flags: bool,
    pub object_id: Option<u64>,
    pub has_refs: bool,
    pub file: Option<Bytes<'a>>,
    pub line: Option<u64>,
    pub method: Option<Bytes<'a>>,
    pub generation: Option<u64>,
    pub memsize: Option<u64>,
    pub shape_id: Option<u64>,
    pub slot_size: Option<u64>,
    pub value: Option<Bytes<'a>>,
    pub name: Option<Bytes<'a>>,
    pub struct_name: Option<Bytes<'a>>,
    pub real_class_name: Option<Bytes<'a>>,
    pub imemo_type: Option<Bytes<'a>>,
    pub node_type: Option<Bytes<'a>>,
    pub root: Option<Bytes<'a>>,
    // SHAPE records.
    pub id: Option<u64>,
    pub parent_id: Option<u64>,
    pub depth: Option<u64>,
    pub shape_type: Option<Bytes<'a>>,
    pub edge_name: Option<Bytes<'a>>,
    pub capacity: Option<u64>,
    pub edges: Option<u64>,
    /// A value written unescaped by Ruby contained a quote or backslash.
    pub recovered: bool,
}

/// What to keep while parsing.
#[derive(Debug, Clone, Copy)]
pub struct ParseWants {
    pub references: bool,
    /// Keep a STRING's references even without `references`: a shared
    /// string (a `dup` or slice of one over 23 bytes) has no value, only a
    /// reference to the root string that has it.
    pub shared_strings: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    /// Byte offset in the line.
    pub at: usize,
}

type PResult<T> = Result<T, ParseError>;

/// Buffers reused from line to line.
#[derive(Default)]
pub struct Scratch {
    /// The references of the last line parsed.
    pub refs: Vec<u64>,
    /// The last `flags` object seen verbatim, and its bits: flags repeat a lot.
    flags_text: Vec<u8>,
    flags_bits: u8,
}

/// Parses one line into `f`; references go to `scratch.refs`.
pub fn parse_line<'a>(
    line: &'a [u8],
    wants: ParseWants,
    f: &mut Fields<'a>,
    scratch: &mut Scratch,
) -> PResult<()> {
    *f = Fields::default();
    scratch.refs.clear();
    let mut p = Scanner { s: line, i: 0 };
    p.ws();
    p.expect(b'{')?;
    p.ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
        return p.end();
    }
    loop {
        p.ws();
        let key = p.key()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        p.value_for(key, wants, f, scratch)?;
        p.ws();
        match p.next() {
            Some(b',') => continue,
            Some(b'}') => return p.end(),
            Some(c) => {
                return Err(p.err_at(
                    p.i - 1,
                    format!("expected ',' or '}}' but found {}", show(c)),
                ))
            }
            None => return Err(p.err("line ends inside the record (truncated?)")),
        }
    }
}

/// The general fallback: serde_json re-serialises the line in canonical form,
/// which the scanner then reads. Returns `None` if it is not JSON.
pub fn normalise_json(line: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    if !v.is_object() {
        return None;
    }
    serde_json::to_vec(&v).ok()
}

fn show(c: u8) -> String {
    if c.is_ascii_graphic() {
        format!("'{}'", c as char)
    } else {
        format!("byte 0x{c:02x}")
    }
}

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.s.get(self.i).copied();
        self.i += 1;
        c
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn err(&self, msg: impl Into<String>) -> ParseError {
        self.err_at(self.i.min(self.s.len()), msg)
    }

    #[cold]
    #[inline(never)]
    fn err_at(&self, at: usize, msg: impl Into<String>) -> ParseError {
        ParseError {
            message: msg.into(),
            at,
        }
    }

    #[inline(always)]
    fn expect(&mut self, c: u8) -> PResult<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.expect_failed(c))
        }
    }

    #[cold]
    #[inline(never)]
    fn expect_failed(&self, c: u8) -> ParseError {
        match self.peek() {
            Some(x) => self.err(format!("expected '{}' but found {}", c as char, show(x))),
            None => self.err(format!(
                "expected '{}' but the line ends (truncated?)",
                c as char
            )),
        }
    }

    fn end(&mut self) -> PResult<()> {
        self.ws();
        match self.peek() {
            None => Ok(()),
            Some(c) => Err(self.err(format!("unexpected {} after the record", show(c)))),
        }
    }

    /// A key: keys never have escapes in Ruby's output, and are short, so a
    /// plain loop beats a vectorised search.
    #[inline(always)]
    fn key(&mut self) -> PResult<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.i;
        let s = self.s;
        let mut j = start;
        while j < s.len() {
            match s[j] {
                b'"' => {
                    self.i = j + 1;
                    return Ok(&s[start..j]);
                }
                b'\\' => return Err(self.err("escaped key")),
                _ => j += 1,
            }
        }
        Err(self.err("line ends inside a key (truncated?)"))
    }

    /// A JSON string, escapes decoded. Bytes that are not UTF-8 are kept.
    #[inline]
    fn string(&mut self) -> PResult<Bytes<'a>> {
        self.expect(b'"')?;
        let rest = &self.s[self.i..];
        // Most strings are short (type names, encodings): look at a few bytes
        // by hand before paying for a vectorised search.
        let short = rest.len().min(16);
        let mut found = None;
        for (n, &c) in rest[..short].iter().enumerate() {
            if c == b'"' || c == b'\\' {
                found = Some(n);
                break;
            }
        }
        if found.is_none() && short < rest.len() {
            found = memchr2(b'"', b'\\', &rest[short..]).map(|n| n + short);
        }
        match found {
            Some(n) if rest[n] == b'"' => {
                self.i += n + 1;
                Ok(Cow::Borrowed(&rest[..n]))
            }
            Some(n) => {
                let mut out = rest[..n].to_vec();
                self.i += n;
                self.escaped_tail(&mut out)?;
                Ok(Cow::Owned(out))
            }
            None => Err(self.err("line ends inside a string (truncated?)")),
        }
    }

    fn escaped_tail(&mut self, out: &mut Vec<u8>) -> PResult<()> {
        loop {
            match self.next() {
                None => return Err(self.err("line ends inside a string (truncated?)")),
                Some(b'"') => return Ok(()),
                Some(b'\\') => {
                    let c = self
                        .next()
                        .ok_or_else(|| self.err("line ends inside an escape"))?;
                    match c {
                        b'"' | b'\\' | b'/' => out.push(c),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp)
                                && self.s[self.i..].starts_with(b"\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                } else {
                                    push_char(out, cp);
                                    cp = lo;
                                }
                            }
                            push_char(out, cp);
                        }
                        _ => {
                            return Err(
                                self.err_at(self.i - 2, format!("invalid escape \\{}", c as char))
                            )
                        }
                    }
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> PResult<u32> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .ok_or_else(|| self.err("short \\u escape"))?;
        let mut v = 0u32;
        for &c in h {
            v = v * 16 + hex_digit(c).ok_or_else(|| self.err("bad \\u escape"))? as u32;
        }
        self.i += 4;
        Ok(v)
    }

    /// A string Ruby writes without escaping. It ends at the first quote that
    /// is followed by `,` + `"` or by `}`, so stray quotes inside are kept.
    fn raw_string(&mut self, recovered: &mut bool) -> PResult<Bytes<'a>> {
        // A value that is valid JSON and followed by what may follow a value
        // is taken as it is (newer Rubies escape some of these keys).
        let open = self.i;
        if let Ok(v) = self.string() {
            let mut k = self.i;
            while let Some(b' ' | b'\t' | b'\r') = self.s.get(k) {
                k += 1;
            }
            if matches!(self.s.get(k), Some(b',' | b'}') | None) {
                return Ok(v);
            }
        }
        self.i = open;
        self.expect(b'"')?;
        let start = self.i;
        let mut j = start;
        loop {
            let n = memchr(b'"', &self.s[j..])
                .ok_or_else(|| self.err("line ends inside a string (truncated?)"))?;
            let q = j + n;
            let mut k = q + 1;
            while let Some(b' ' | b'\t' | b'\r') = self.s.get(k) {
                k += 1;
            }
            let closes = match self.s.get(k) {
                Some(b'}') => true,
                None => true,
                Some(b',') => {
                    k += 1;
                    while let Some(b' ' | b'\t') = self.s.get(k) {
                        k += 1;
                    }
                    self.s.get(k) == Some(&b'"')
                }
                _ => false,
            };
            if closes {
                let v = &self.s[start..q];
                self.i = q + 1;
                if memchr(b'\\', v).is_some() {
                    // Escaped by a newer Ruby, or a raw backslash: decode if valid.
                    let mut sub = Scanner {
                        s: self.s,
                        i: start,
                    };
                    let mut out = Vec::new();
                    return match sub.string_from_open(&mut out) {
                        Ok(()) if sub.i == q + 1 => Ok(Cow::Owned(out)),
                        _ => {
                            *recovered = true;
                            Ok(Cow::Borrowed(v))
                        }
                    };
                }
                *recovered |= memchr(b'"', v).is_some();
                return Ok(Cow::Borrowed(v));
            }
            j = q + 1;
        }
    }

    /// Decodes a string whose opening quote was already consumed.
    fn string_from_open(&mut self, out: &mut Vec<u8>) -> PResult<()> {
        self.escaped_tail(out)
    }

    #[inline]
    fn number(&mut self) -> PResult<u64> {
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add((c - b'0') as u64))
                .ok_or_else(|| self.err("number too large"))?;
            self.i += 1;
        }
        if self.i == start {
            return Err(self.err("expected a number"));
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return Err(self.err("expected an integer"));
        }
        Ok(v)
    }

    #[inline]
    fn boolean(&mut self) -> PResult<bool> {
        if self.s[self.i..].starts_with(b"true") {
            self.i += 4;
            Ok(true)
        } else if self.s[self.i..].starts_with(b"false") {
            self.i += 5;
            Ok(false)
        } else {
            Err(self.err("expected true or false"))
        }
    }

    /// `"0x7f..."` as a number.
    #[inline]
    fn hex_address(&mut self) -> PResult<u64> {
        let s = self.s;
        let mut i = self.i;
        if s.get(i..i + 3) != Some(b"\"0x") {
            return Err(self.err("expected an address like \"0x7f...\""));
        }
        i += 3;
        let start = i;
        let mut v: u64 = 0;
        while let Some(&c) = s.get(i) {
            match hex_digit(c) {
                Some(d) => {
                    v = (v << 4) | d as u64;
                    i += 1;
                }
                None => break,
            }
        }
        if s.get(i) != Some(&b'"') || i == start || i - start > 16 {
            return Err(self.err_at(i.min(s.len()), "malformed address"));
        }
        self.i = i + 1;
        Ok(v)
    }

    fn references(&mut self, keep: bool, refs: &mut Vec<u64>) -> PResult<()> {
        self.expect(b'[')?;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        if !keep {
            // Addresses never contain ']', so skip straight to it.
            let n = memchr(b']', &self.s[self.i..])
                .ok_or_else(|| self.err("line ends inside the references (truncated?)"))?;
            self.i += n + 1;
            return Ok(());
        }
        loop {
            self.ws();
            refs.push(self.hex_address()?);
            self.ws();
            match self.next() {
                Some(b',') => continue,
                Some(b']') => return Ok(()),
                Some(c) => {
                    return Err(self.err_at(
                        self.i - 1,
                        format!("expected ',' or ']' in references but found {}", show(c)),
                    ))
                }
                None => return Err(self.err("line ends inside the references (truncated?)")),
            }
        }
    }

    fn flags(&mut self, f: &mut Fields<'a>, scratch: &mut Scratch) -> PResult<()> {
        let start = self.i;
        let rest = &self.s[start..];
        if !scratch.flags_text.is_empty() && rest.starts_with(&scratch.flags_text) {
            f.flags |= scratch.flags_bits;
            self.i += scratch.flags_text.len();
            return Ok(());
        }
        let before = f.flags;
        f.flags = 0;
        self.flags_uncached(f)?;
        if !f.integer_flags {
            scratch.flags_text.clear();
            scratch.flags_text.extend_from_slice(&self.s[start..self.i]);
            scratch.flags_bits = f.flags;
        }
        f.flags |= before;
        Ok(())
    }

    fn flags_uncached(&mut self, f: &mut Fields<'a>) -> PResult<()> {
        self.expect(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let key = self.key()?;
            self.ws();
            self.expect(b':')?;
            self.ws();
            match self.peek() {
                Some(b't' | b'f') => {
                    if self.boolean()? {
                        f.flags |= match key {
                            b"old" => heapscope_heap::flags::OLD,
                            b"uncollectible" => heapscope_heap::flags::UNCOLLECTIBLE,
                            b"marked" => heapscope_heap::flags::MARKED,
                            b"wb_protected" => heapscope_heap::flags::WB_PROTECTED,
                            b"pinned" => heapscope_heap::flags::PINNED,
                            _ => 0,
                        };
                    }
                }
                Some(b'0'..=b'9') => {
                    let n = self.number()?;
                    f.integer_flags = true;
                    if key == b"object_id" {
                        f.object_id = Some(n);
                    }
                }
                _ => self.skip_value(0)?,
            }
            self.ws();
            match self.next() {
                Some(b',') => continue,
                Some(b'}') => return Ok(()),
                _ => return Err(self.err("expected ',' or '}' in flags")),
            }
        }
    }

    /// Skips any JSON value (for keys heapscope does not keep).
    fn skip_value(&mut self, depth: u32) -> PResult<()> {
        if depth > 64 {
            return Err(self.err("nesting too deep"));
        }
        match self.peek() {
            Some(b'"') => {
                self.string()?;
            }
            Some(b't' | b'f') => {
                self.boolean()?;
            }
            Some(b'n') => {
                if self.s[self.i..].starts_with(b"null") {
                    self.i += 4;
                } else {
                    return Err(self.err("expected a value"));
                }
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.peek() {
                    self.i += 1;
                }
                if self.i == start {
                    return Err(self.err("expected a number"));
                }
            }
            Some(open @ (b'[' | b'{')) => {
                let close = if open == b'[' { b']' } else { b'}' };
                self.i += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    if open == b'{' {
                        self.string()?;
                        self.ws();
                        self.expect(b':')?;
                        self.ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next() {
                        Some(b',') => continue,
                        Some(c) if c == close => return Ok(()),
                        _ => return Err(self.err("malformed nested value")),
                    }
                }
            }
            Some(c) => return Err(self.err(format!("expected a value but found {}", show(c)))),
            None => return Err(self.err("line ends before a value (truncated?)")),
        }
        Ok(())
    }

    fn value_for(
        &mut self,
        key: &[u8],
        wants: ParseWants,
        f: &mut Fields<'a>,
        scratch: &mut Scratch,
    ) -> PResult<()> {
        use heapscope_heap::flags as fl;
        match classify_key(key) {
            Key::Address => f.address = Some(self.hex_address()?),
            Key::Type => f.type_name = Some(self.string()?),
            Key::Class => f.class = Some(self.hex_address()?),
            Key::References => {
                f.has_refs = true;
                // Roots are few and always kept.
                let keep = wants.references
                    || match f.type_name.as_deref() {
                        Some(b"ROOT") => true,
                        // A STRING's only reference is its shared root.
                        Some(b"STRING") => wants.shared_strings,
                        _ => false,
                    };
                self.references(keep, &mut scratch.refs)?
            }
            Key::File => f.file = Some(self.raw_string(&mut f.recovered)?),
            Key::Line => f.line = Some(self.number()?),
            Key::Method => f.method = Some(self.raw_string(&mut f.recovered)?),
            Key::Generation => f.generation = Some(self.number()?),
            Key::Memsize => f.memsize = Some(self.number()?),
            Key::Flags => self.flags(f, scratch)?,
            Key::Frozen => f.flags |= if self.boolean()? { fl::FROZEN } else { 0 },
            Key::Embedded => f.flags |= if self.boolean()? { fl::EMBEDDED } else { 0 },
            Key::Shared => f.flags |= if self.boolean()? { fl::SHARED } else { 0 },
            Key::Value => {
                // FLOAT values are strings too; anything else is skipped.
                if self.peek() == Some(b'"') {
                    f.value = Some(self.string()?);
                } else {
                    self.skip_value(0)?;
                }
            }
            // Ruby writes class names unescaped, as it does file names.
            Key::Name => f.name = Some(self.raw_string(&mut f.recovered)?),
            Key::Struct => f.struct_name = Some(self.raw_string(&mut f.recovered)?),
            Key::RealClassName => f.real_class_name = Some(self.raw_string(&mut f.recovered)?),
            Key::ImemoType => f.imemo_type = Some(self.string()?),
            Key::NodeType => f.node_type = Some(self.string()?),
            Key::Root => f.root = Some(self.string()?),
            Key::ShapeId => f.shape_id = Some(self.number()?),
            Key::SlotSize => f.slot_size = Some(self.number()?),
            Key::Id => f.id = Some(self.number()?),
            Key::ParentId => {
                // The root shape's parent may be written as a huge sentinel.
                f.parent_id = Some(self.number()?)
            }
            Key::Depth => f.depth = Some(self.number()?),
            Key::ShapeType => f.shape_type = Some(self.string()?),
            Key::EdgeName => f.edge_name = Some(self.string()?),
            Key::Capacity => f.capacity = Some(self.number()?),
            Key::Edges => f.edges = Some(self.number()?),
            _ => self.skip_value(0)?,
        }
        Ok(())
    }
}

/// The keys the scanner acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Address,
    Type,
    Class,
    References,
    File,
    Line,
    Method,
    Generation,
    Memsize,
    Flags,
    Frozen,
    Embedded,
    Shared,
    Value,
    Name,
    Struct,
    RealClassName,
    ImemoType,
    NodeType,
    Root,
    ShapeId,
    SlotSize,
    Id,
    ParentId,
    Depth,
    ShapeType,
    EdgeName,
    Capacity,
    Edges,
    Other,
}

/// Classifies a key by its length first, then by fixed-size comparisons,
/// which compile to a few integer compares instead of calls to memcmp.
#[inline(always)]
fn classify_key(k: &[u8]) -> Key {
    match k.len() {
        2 => {
            if eq(k, b"id") {
                Key::Id
            } else {
                Key::Other
            }
        }
        4 => {
            if eq(k, b"type") {
                Key::Type
            } else if eq(k, b"file") {
                Key::File
            } else if eq(k, b"line") {
                Key::Line
            } else if eq(k, b"name") {
                Key::Name
            } else if eq(k, b"root") {
                Key::Root
            } else {
                Key::Other
            }
        }
        5 => {
            if eq(k, b"class") {
                Key::Class
            } else if eq(k, b"flags") {
                Key::Flags
            } else if eq(k, b"value") {
                Key::Value
            } else if eq(k, b"depth") {
                Key::Depth
            } else if eq(k, b"edges") {
                Key::Edges
            } else {
                Key::Other
            }
        }
        6 => {
            if eq(k, b"method") {
                Key::Method
            } else if eq(k, b"frozen") {
                Key::Frozen
            } else if eq(k, b"shared") {
                Key::Shared
            } else if eq(k, b"struct") {
                Key::Struct
            } else {
                Key::Other
            }
        }
        7 => {
            if eq(k, b"address") {
                Key::Address
            } else if eq(k, b"memsize") {
                Key::Memsize
            } else {
                Key::Other
            }
        }
        8 => {
            if eq(k, b"embedded") {
                Key::Embedded
            } else if eq(k, b"shape_id") {
                Key::ShapeId
            } else if eq(k, b"capacity") {
                Key::Capacity
            } else {
                Key::Other
            }
        }
        9 => {
            if eq(k, b"node_type") {
                Key::NodeType
            } else if eq(k, b"slot_size") {
                Key::SlotSize
            } else if eq(k, b"parent_id") {
                Key::ParentId
            } else if eq(k, b"edge_name") {
                Key::EdgeName
            } else {
                Key::Other
            }
        }
        10 => {
            if eq(k, b"references") {
                Key::References
            } else if eq(k, b"generation") {
                Key::Generation
            } else if eq(k, b"imemo_type") {
                Key::ImemoType
            } else if eq(k, b"shape_type") {
                Key::ShapeType
            } else {
                Key::Other
            }
        }
        15 => {
            if eq(k, b"real_class_name") {
                Key::RealClassName
            } else {
                Key::Other
            }
        }
        _ => Key::Other,
    }
}

#[inline(always)]
fn eq<const N: usize>(k: &[u8], lit: &[u8; N]) -> bool {
    <&[u8; N]>::try_from(k).is_ok_and(|a| a == lit)
}

fn push_char(out: &mut Vec<u8>, cp: u32) {
    match char::from_u32(cp) {
        Some(c) => {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
        }
        // A lone surrogate: keep it visible rather than dropping it.
        None => out.extend_from_slice(format!("\\u{cp:04x}").as_bytes()),
    }
}

#[inline]
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_REFERENCES: ParseWants = ParseWants {
        references: true,
        shared_strings: false,
    };

    fn parse(line: &str) -> (PResult<()>, Vec<u64>) {
        let mut f = Fields::default();
        let mut scratch = Scratch::default();
        let r = parse_line(line.as_bytes(), ALL_REFERENCES, &mut f, &mut scratch);
        (r, scratch.refs)
    }

    #[test]
    fn parses_ruby_layout() {
        let line = br#"{"address":"0x7f4bb31a2268", "type":"STRING", "class":"0x7f4bb667e428", "embedded":true, "bytesize":1, "value":"x", "encoding":"UTF-8", "file":"-e", "line":1, "method":"initialize", "generation":9, "memsize":40, "flags":{"wb_protected":true}}"#;
        let mut f = Fields::default();
        let mut refs = Scratch::default();
        parse_line(line, ALL_REFERENCES, &mut f, &mut refs).unwrap();
        assert_eq!(f.address, Some(0x7f4bb31a2268));
        assert_eq!(f.type_name.as_deref(), Some(&b"STRING"[..]));
        assert_eq!(f.class, Some(0x7f4bb667e428));
        assert_eq!(f.value.as_deref(), Some(&b"x"[..]));
        assert_eq!(f.file.as_deref(), Some(&b"-e"[..]));
        assert_eq!(
            (f.line, f.generation, f.memsize),
            (Some(1), Some(9), Some(40))
        );
        assert_eq!(f.method.as_deref(), Some(&b"initialize"[..]));
        use heapscope_heap::flags as fl;
        assert_eq!(f.flags, fl::EMBEDDED | fl::WB_PROTECTED);
        assert!(!f.recovered);
    }

    #[test]
    fn parses_references_and_roots() {
        let (r, refs) = parse(r#"{"type":"ROOT", "root":"vm", "references":["0x1", "0xAbC"]}"#);
        r.unwrap();
        assert_eq!(refs, vec![1, 0xabc]);
        let (r, refs) = parse(r#"{"type":"ROOT","root":"vm","references":[]}"#);
        r.unwrap();
        assert!(refs.is_empty());
    }

    #[test]
    fn recovers_unescaped_quote_and_backslash_in_file() {
        let mut f = Fields::default();
        let mut refs = Scratch::default();
        let line = br#"{"address":"0x10", "type":"OBJECT", "file":"/app/we"ird.rb", "line":3}"#;
        parse_line(line, ALL_REFERENCES, &mut f, &mut refs).unwrap();
        assert_eq!(f.file.as_deref(), Some(&br#"/app/we"ird.rb"#[..]));
        assert!(f.recovered);
        assert_eq!(f.line, Some(3));
        let line = br#"{"address":"0x10", "type":"OBJECT", "file":"C:\app\x.rb", "line":3}"#;
        parse_line(line, ALL_REFERENCES, &mut f, &mut refs).unwrap();
        assert_eq!(f.file.as_deref(), Some(&br#"C:\app\x.rb"#[..]));
        let line = br#"{"address":"0x10", "type":"OBJECT", "file":"/a\"b.rb", "line":3}"#;
        parse_line(line, ALL_REFERENCES, &mut f, &mut refs).unwrap();
        assert_eq!(f.file.as_deref(), Some(&br#"/a"b.rb"#[..]));
    }

    #[test]
    fn recovers_unescaped_quote_in_class_name() {
        let mut f = Fields::default();
        let mut refs = Scratch::default();
        let line = br#"{"address":"0x10", "type":"CLASS", "name":"Evil"><img src=x onerror=alert(1)>", "memsize":40}"#;
        parse_line(line, ALL_REFERENCES, &mut f, &mut refs).unwrap();
        assert_eq!(
            f.name.as_deref(),
            Some(&br#"Evil"><img src=x onerror=alert(1)>"#[..])
        );
        assert!(f.recovered);
        assert_eq!(f.memsize, Some(40));
    }

    #[test]
    fn decodes_escapes() {
        let mut f = Fields::default();
        let mut refs = Scratch::default();
        let line = r#"{"type":"STRING","address":"0x1","value":"a\"b\\c\u00e9\ud83d\ude00\n"}"#;
        parse_line(line.as_bytes(), ALL_REFERENCES, &mut f, &mut refs).unwrap();
        assert_eq!(f.value.as_deref(), Some("a\"b\\cé😀\n".as_bytes()));
    }

    #[test]
    fn integer_flags_of_ruby_4() {
        let mut f = Fields::default();
        let mut refs = Scratch::default();
        let line = br#"{"address":"0x1", "type":"OBJECT", "flags":{"age":3, "object_id":123, "old":true, "shareable":true}}"#;
        parse_line(line, ALL_REFERENCES, &mut f, &mut refs).unwrap();
        assert!(f.integer_flags);
        assert_eq!(f.object_id, Some(123));
        assert_eq!(f.flags, heapscope_heap::flags::OLD);
    }

    #[test]
    fn rejects_broken_lines_with_position() {
        for bad in [
            r#"{"address":"0x1", "type":"OBJ"#,
            r#"hello world"#,
            r#"{"address":"0xZZ", "type":"OBJECT"}"#,
            r#"{"address":"0x1", "type":"OBJECT"} trailing"#,
            r#"{"address":"0x1", "type":"OBJECT", "line":1.5}"#,
            r#"[1,2]"#,
        ] {
            let (r, _) = parse(bad);
            assert!(r.is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn skips_unknown_nested_values() {
        let (r, _) = parse(
            r#"{"address":"0x1", "type":"OBJECT", "x":{"a":[1,{"b":null}],"c":"}"}, "memsize":5}"#,
        );
        r.unwrap();
    }

    #[test]
    fn fallback_normalises() {
        let n = normalise_json(br#"{ "address" : "0x1" , "type" : "OBJECT" }"#).unwrap();
        let (r, _) = parse(std::str::from_utf8(&n).unwrap());
        r.unwrap();
        assert!(normalise_json(b"[1]").is_none());
        assert!(normalise_json(b"nope").is_none());
    }
}
