//! Round trip: random heaps (a reference model defined here as plain structs)
//! are written in Ruby's exact `ObjectSpace.dump_all` layout, read back with
//! `read_input`, and the resulting `Heap` is compared with the model field by
//! field. A second property reads the same bytes (with junk lines, blank lines,
//! a truncated last line, or gzip) with many chunk sizes and thread counts and
//! requires identical heaps and diagnostics.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};

use heapscope_heap::{flags as fl, types, Heap, ObjId, NO_OBJ, TRACER_STRUCT};
use heapscope_reader::{read_input, Diagnostics, Dump, Input, ReadOptions};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// The reference model.

const PAGE_SHIFT: u32 = 14;
const PAGE: u64 = 1 << PAGE_SHIFT;
const SLOTS: u64 = PAGE / 8;
const HEAP_BASE: u64 = 0x7f3a_1c00_0000;
const SHAPE_BASE: u64 = 0x55d0_0a00_0000;
const FAR_AWAY: u64 = 0x0000_1000_0000;

/// Ruby's GC flags in the order `rb_obj_gc_flags` writes them, and the bit each sets.
const GC_FLAGS: [(&str, u8); 6] = [
    ("wb_protected", fl::WB_PROTECTED),
    ("old", fl::OLD),
    ("uncollectible", fl::UNCOLLECTIBLE),
    ("marking", 0),
    ("marked", fl::MARKED),
    ("pinned", fl::PINNED),
];

/// The type-specific part of a heap object.
#[derive(Debug, Clone)]
enum Kind {
    Object {
        ivars: u32,
    },
    Class {
        module: bool,
        name: Option<String>,
    },
    Iclass,
    Str {
        value: Option<Vec<u8>>,
        embedded: bool,
        shared: bool,
        fstring: bool,
    },
    Symbol {
        value: Vec<u8>,
    },
    Float {
        value: String,
    },
    Array {
        length: u32,
        embedded: bool,
        shared: bool,
    },
    Hash {
        size: u32,
    },
    Data {
        name: Option<Vec<u8>>,
    },
    Imemo {
        imemo_type: &'static str,
    },
    Node {
        node_type: &'static str,
    },
    /// A known type with no detail (REGEXP, STRUCT, BIGNUM, ...).
    Plain {
        type_name: &'static str,
    },
    /// A type from a future Ruby.
    Unknown {
        type_name: String,
    },
}

impl Kind {
    fn type_name(&self) -> &str {
        match self {
            Kind::Object { .. } => "OBJECT",
            Kind::Class { module: false, .. } => "CLASS",
            Kind::Class { module: true, .. } => "MODULE",
            Kind::Iclass => "ICLASS",
            Kind::Str { .. } => "STRING",
            Kind::Symbol { .. } => "SYMBOL",
            Kind::Float { .. } => "FLOAT",
            Kind::Array { .. } => "ARRAY",
            Kind::Hash { .. } => "HASH",
            Kind::Data { .. } => "DATA",
            Kind::Imemo { .. } => "IMEMO",
            Kind::Node { .. } => "NODE",
            Kind::Plain { type_name } => type_name,
            Kind::Unknown { type_name } => type_name,
        }
    }
}

/// Where a reference (or a class pointer) goes, before addresses are assigned.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Object `i % n` of the heap.
    Obj(usize),
    /// A class object (`i % classes`), or any object if there are none.
    Class(usize),
    /// The object itself.
    Myself,
    /// An address no record has: a free slot on one of the pages, or far away.
    Dangling(u16, bool),
}

#[derive(Debug, Clone)]
struct ObjSpec {
    page: usize,
    slot: u64,
    kind: Kind,
    class: Option<Target>,
    frozen: bool,
    gc_flags: u8,
    memsize: u64,
    file: Option<(Vec<u8>, u32)>,
    method: Option<Vec<u8>>,
    generation: Option<u32>,
    refs: Vec<Target>,
    shape_id: usize,
}

#[derive(Debug, Clone)]
struct ShapeSpec {
    parent: usize,
    shape_type: &'static str,
    edge_name: Option<Vec<u8>>,
    capacity: Option<u32>,
    edges: u32,
    memsize: u64,
}

#[derive(Debug, Clone)]
struct HeapSpec {
    /// Page numbers relative to HEAP_BASE (deduplicated).
    pages: Vec<u16>,
    classes: Vec<ObjSpec>,
    objects: Vec<ObjSpec>,
    roots: Vec<(&'static str, Vec<Target>)>,
    /// Present: write Ruby 3.2's SHAPE records and `shape_id`/`slot_size`.
    shapes: Option<Vec<ShapeSpec>>,
    /// 0: Ruby's layout (pages in any order, each page ascending);
    /// 1: sorted; 2: pages grouped but shuffled within; 3: fully shuffled.
    layout: u8,
    seed: u64,
}

/// One object of the model, addresses resolved, in file order.
#[derive(Debug, Clone)]
struct MObj {
    address: u64,
    kind: Kind,
    class: Option<u64>,
    frozen: bool,
    gc_flags: u8,
    memsize: u64,
    file: Option<(Vec<u8>, u32)>,
    method: Option<Vec<u8>>,
    generation: Option<u32>,
    refs: Vec<u64>,
    shape_id: Option<u32>,
}

#[derive(Debug, Clone)]
struct MShape {
    address: u64,
    id: u32,
    parent_id: Option<u32>,
    depth: u32,
    spec: ShapeSpec,
}

#[derive(Debug, Clone)]
struct Model {
    roots: Vec<(&'static str, Vec<u64>)>,
    shapes: Option<Vec<MShape>>,
    objects: Vec<MObj>,
    /// Addresses that no record has.
    absent: Vec<u64>,
    /// Objects are in Ruby's order (each page's objects together, ascending).
    ruby_order: bool,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0 | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

fn build_model(spec: &HeapSpec) -> Model {
    let mut pages: Vec<u64> = Vec::new();
    for &p in &spec.pages {
        let base = HEAP_BASE + p as u64 * PAGE;
        if !pages.contains(&base) {
            pages.push(base);
        }
    }
    let specs: Vec<&ObjSpec> = spec.classes.iter().chain(spec.objects.iter()).collect();
    let n = specs.len();
    let n_classes = spec.classes.len();

    // Unique 8-byte aligned addresses on the pages.
    let mut used: HashSet<u64> = HashSet::new();
    let mut addrs = Vec::with_capacity(n);
    for s in &specs {
        let base = pages[s.page % pages.len()];
        let mut slot = s.slot % SLOTS;
        while used.contains(&(base + slot * 8)) {
            slot = (slot + 1) % SLOTS;
        }
        used.insert(base + slot * 8);
        addrs.push(base + slot * 8);
    }

    let mut absent: Vec<u64> = Vec::new();
    let mut dangling = |sel: u16, far: bool, used: &HashSet<u64>| -> u64 {
        let a = if far {
            FAR_AWAY + sel as u64 * 8
        } else {
            let base = pages[sel as usize % pages.len()];
            let mut slot = (sel as u64 * 7) % SLOTS;
            while used.contains(&(base + slot * 8)) {
                slot = (slot + 1) % SLOTS;
            }
            base + slot * 8
        };
        absent.push(a);
        a
    };
    let mut resolve = |t: Target, me: usize, used: &HashSet<u64>| -> u64 {
        match t {
            Target::Obj(i) => addrs[i % n],
            Target::Class(i) if n_classes > 0 => addrs[i % n_classes],
            Target::Class(i) => addrs[i % n],
            Target::Myself => addrs[me],
            Target::Dangling(sel, far) => dangling(sel, far, used),
        }
    };

    let shapes: Option<Vec<MShape>> = spec.shapes.as_ref().map(|ss| {
        let mut out: Vec<MShape> = Vec::new();
        for (i, s) in ss.iter().enumerate() {
            let (parent_id, depth) = if i == 0 {
                (None, 0)
            } else {
                let p = s.parent % i;
                (Some(p as u32), out[p].depth + 1)
            };
            out.push(MShape {
                address: SHAPE_BASE + i as u64 * 0x20,
                id: i as u32,
                parent_id,
                depth,
                spec: s.clone(),
            });
        }
        // One shape's C pointer has the same value as a heap object's address.
        if out.len() > 1 {
            let victim = (spec.seed as usize) % n;
            out[1].address = addrs[victim];
        }
        out
    });
    let n_shapes = shapes.as_ref().map_or(0, |s| s.len());

    let mut objects: Vec<MObj> = Vec::with_capacity(n);
    for (i, s) in specs.iter().enumerate() {
        let class = match s.kind {
            Kind::Node { .. } => None,
            _ => s.class.map(|t| resolve(t, i, &used)),
        };
        let refs = s.refs.iter().map(|&t| resolve(t, i, &used)).collect();
        objects.push(MObj {
            address: addrs[i],
            kind: s.kind.clone(),
            class,
            frozen: s.frozen,
            gc_flags: s.gc_flags,
            memsize: s.memsize,
            file: s.file.clone(),
            method: s.method.clone(),
            generation: s.generation,
            refs,
            shape_id: (n_shapes > 0).then(|| (s.shape_id % n_shapes) as u32),
        });
    }
    let roots = spec
        .roots
        .iter()
        .map(|(cat, ts)| (*cat, ts.iter().map(|&t| resolve(t, 0, &used)).collect()))
        .collect();

    // File order.
    let mut rng = Rng(spec.seed);
    let page_of = |a: u64| a >> PAGE_SHIFT;
    match spec.layout % 4 {
        0 | 2 => {
            let mut page_order: Vec<u64> = pages.iter().map(|&p| page_of(p)).collect();
            rng.shuffle(&mut page_order);
            let rank: HashMap<u64, usize> = page_order
                .iter()
                .enumerate()
                .map(|(i, &p)| (p, i))
                .collect();
            objects.sort_by_key(|o| (rank[&page_of(o.address)], o.address));
            if spec.layout % 4 == 2 {
                let mut start = 0;
                while start < objects.len() {
                    let p = page_of(objects[start].address);
                    let end = start
                        + objects[start..]
                            .iter()
                            .take_while(|o| page_of(o.address) == p)
                            .count();
                    rng.shuffle(&mut objects[start..end]);
                    start = end;
                }
            }
        }
        1 => objects.sort_by_key(|o| o.address),
        _ => rng.shuffle(&mut objects),
    }

    // More addresses that must not be found.
    for o in &objects {
        absent.push(o.address + 1);
        absent.push(o.address + 4);
    }
    absent.push(HEAP_BASE - PAGE);
    absent.push(0);
    absent.push(u64::MAX);
    absent.retain(|a| !used.contains(a));
    if let Some(ss) = &shapes {
        for s in ss {
            if !used.contains(&s.address) {
                absent.push(s.address);
            }
        }
    }
    let ruby_order = spec.layout % 4 <= 1;
    Model {
        roots,
        shapes,
        objects,
        absent,
        ruby_order,
    }
}

// ---------------------------------------------------------------------------
// Writing the model the way Ruby does (ext/objspace/objspace_dump.c).

fn push_ref(out: &mut Vec<u8>, a: u64) {
    write!(out, "\"{a:#x}\"").unwrap();
}

/// `dump_append_string_value`: escapes `\`, `"`, NUL, \b \t \f \n \r, DEL and
/// other control bytes; bytes >= 0x80 are written raw.
fn push_escaped(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            0 => out.extend_from_slice(b"\\u0000"),
            8 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            12 => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x7f => out.extend_from_slice(b"\\u007f"),
            c if c <= 0x1f => write!(out, "\\u00{c:02x}").unwrap(),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

/// Ruby writes `file` and `struct` with no escaping at all.
fn push_raw(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(s);
    out.push(b'"');
}

fn write_dump(m: &Model) -> Vec<u8> {
    let mut out = Vec::new();
    for (cat, refs) in &m.roots {
        write!(
            out,
            "{{\"type\":\"ROOT\", \"root\":\"{cat}\", \"references\":["
        )
        .unwrap();
        for (i, &r) in refs.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            push_ref(&mut out, r);
        }
        out.extend_from_slice(b"]}\n");
    }
    if let Some(shapes) = &m.shapes {
        for s in shapes {
            write!(
                out,
                "{{\"address\":\"{:#x}\", \"type\":\"SHAPE\", \"id\":{}",
                s.address, s.id
            )
            .unwrap();
            if let Some(p) = s.parent_id {
                write!(out, ", \"parent_id\":{p}").unwrap();
            }
            write!(
                out,
                ", \"depth\":{}, \"shape_type\":\"{}\"",
                s.depth, s.spec.shape_type
            )
            .unwrap();
            if let Some(e) = &s.spec.edge_name {
                out.extend_from_slice(b",\"edge_name\":");
                push_escaped(&mut out, e);
            }
            if let Some(c) = s.spec.capacity {
                write!(out, ", \"capacity\":{c}").unwrap();
            }
            writeln!(
                out,
                ", \"edges\":{}, \"memsize\":{}}}",
                s.spec.edges, s.spec.memsize
            )
            .unwrap();
        }
    }
    let v32 = m.shapes.is_some();
    for o in &m.objects {
        write_object(&mut out, o, v32);
    }
    out
}

fn write_object(out: &mut Vec<u8>, o: &MObj, v32: bool) {
    write!(
        out,
        "{{\"address\":\"{:#x}\", \"type\":\"{}\"",
        o.address,
        o.kind.type_name()
    )
    .unwrap();
    if v32 {
        write!(
            out,
            ", \"shape_id\":{}, \"slot_size\":40",
            o.shape_id.unwrap()
        )
        .unwrap();
    }
    // 3.2+ writes no class for IMEMO; NODE never has one.
    let imemo = matches!(o.kind, Kind::Imemo { .. });
    if let Some(c) = o.class {
        if !(v32 && imemo) {
            write!(out, ", \"class\":\"{c:#x}\"").unwrap();
        }
    }
    if o.frozen {
        out.extend_from_slice(b", \"frozen\":true");
    }
    match &o.kind {
        Kind::Imemo { imemo_type } => write!(out, ", \"imemo_type\":\"{imemo_type}\"").unwrap(),
        Kind::Symbol { value } => {
            write!(out, ", \"bytesize\":{}, \"value\":", value.len()).unwrap();
            push_escaped(out, value);
        }
        Kind::Str {
            value,
            embedded,
            shared,
            fstring,
        } => {
            if *embedded {
                out.extend_from_slice(b", \"embedded\":true");
            }
            if *fstring {
                out.extend_from_slice(b", \"fstring\":true");
            }
            if *shared {
                out.extend_from_slice(b", \"shared\":true");
            } else {
                let len = value.as_ref().map_or(3, |v| v.len());
                write!(out, ", \"bytesize\":{len}").unwrap();
                if let Some(v) = value {
                    out.extend_from_slice(b", \"value\":");
                    push_escaped(out, v);
                }
            }
            out.extend_from_slice(b", \"encoding\":\"UTF-8\"");
        }
        Kind::Hash { size } => write!(out, ", \"size\":{size}").unwrap(),
        Kind::Array {
            length,
            embedded,
            shared,
        } => {
            write!(out, ", \"length\":{length}").unwrap();
            if *shared {
                out.extend_from_slice(b", \"shared\":true");
            }
            if *embedded {
                out.extend_from_slice(b", \"embedded\":true");
            }
        }
        Kind::Class { name, .. } => {
            if let Some(name) = name {
                out.extend_from_slice(b", \"name\":");
                push_escaped(out, name.as_bytes());
            }
        }
        Kind::Data { name } => {
            if let Some(name) = name {
                out.extend_from_slice(b", \"struct\":");
                push_raw(out, name);
            }
        }
        Kind::Float { value } => write!(out, ", \"value\":\"{value}\"").unwrap(),
        Kind::Object { ivars } => write!(out, ", \"ivars\":{ivars}").unwrap(),
        Kind::Node { node_type } => write!(out, ", \"node_type\":\"{node_type}\"").unwrap(),
        Kind::Iclass | Kind::Plain { .. } | Kind::Unknown { .. } => {}
    }
    if !o.refs.is_empty() {
        out.extend_from_slice(b", \"references\":[");
        for (i, &r) in o.refs.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            push_ref(out, r);
        }
        out.push(b']');
    }
    if let Some((file, line)) = &o.file {
        out.extend_from_slice(b", \"file\":");
        push_raw(out, file);
        write!(out, ", \"line\":{line}").unwrap();
    }
    if let Some(m) = &o.method {
        out.extend_from_slice(b", \"method\":");
        push_escaped(out, m);
    }
    if let Some(g) = o.generation {
        write!(out, ", \"generation\":{g}").unwrap();
    }
    if o.memsize > 0 {
        write!(out, ", \"memsize\":{}", o.memsize).unwrap();
    }
    let set: Vec<&str> = GC_FLAGS
        .iter()
        .enumerate()
        .filter(|(i, _)| o.gc_flags & (1 << i) != 0)
        .map(|(_, (name, _))| *name)
        .collect();
    if !set.is_empty() {
        out.extend_from_slice(b", \"flags\":{");
        for (i, name) in set.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            write!(out, "\"{name}\":true").unwrap();
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"}\n");
}

// ---------------------------------------------------------------------------
// What the reader must produce.

fn expected_flags(o: &MObj) -> u8 {
    let mut f = 0;
    if o.frozen {
        f |= fl::FROZEN;
    }
    match &o.kind {
        Kind::Str {
            embedded, shared, ..
        } => {
            if *embedded {
                f |= fl::EMBEDDED;
            }
            if *shared {
                f |= fl::SHARED;
            }
        }
        Kind::Array {
            embedded, shared, ..
        } => {
            if *embedded {
                f |= fl::EMBEDDED;
            }
            if *shared {
                f |= fl::SHARED;
            }
        }
        _ => {}
    }
    for (i, (_, bit)) in GC_FLAGS.iter().enumerate() {
        if o.gc_flags & (1 << i) != 0 {
            f |= bit;
        }
    }
    f
}

fn expected_detail(
    o: &MObj,
    objects: &[MObj],
    pos: &HashMap<u64, ObjId>,
    string_values: bool,
) -> Option<Vec<u8>> {
    match &o.kind {
        Kind::Str { value, shared, .. } if string_values && !shared => value.clone(),
        // A shared string has its root's value: the first string with a
        // value along its first references (not itself when a chain loops).
        Kind::Str { shared: true, .. } if string_values => {
            let mut x = o;
            for _ in 0..heapscope_heap::SHARED_STRING_HOPS {
                let next = x.refs.first().and_then(|a| pos.get(a))?;
                x = &objects[*next as usize];
                match &x.kind {
                    Kind::Str { shared: true, .. } => continue,
                    Kind::Str { value, .. } => return value.clone(),
                    _ => return None,
                }
            }
            None
        }
        Kind::Float { value } if string_values => Some(value.as_bytes().to_vec()),
        Kind::Symbol { value } => Some(value.clone()),
        Kind::Class { name, .. } => name.as_ref().map(|n| n.as_bytes().to_vec()),
        Kind::Data { name } => name.clone(),
        Kind::Imemo { imemo_type } => Some(imemo_type.as_bytes().to_vec()),
        Kind::Node { node_type } => Some(node_type.as_bytes().to_vec()),
        _ => None,
    }
}

/// Lines on which Ruby's unescaped `file`/`struct` holds a quote or backslash.
fn needs_recovery(o: &MObj) -> bool {
    let odd = |s: &[u8]| s.iter().any(|&c| c == b'"' || c == b'\\');
    o.file.as_ref().is_some_and(|(f, _)| odd(f))
        || matches!(&o.kind, Kind::Data { name: Some(n) } if odd(n))
}

fn check(m: &Model, d: &Dump, opts: &ReadOptions) -> Result<(), TestCaseError> {
    let heap = &d.heap;
    let diag = &d.diagnostics;
    let n = m.objects.len();
    prop_assert_eq!(heap.len(), n);

    // Where each address is in file order.
    let pos: HashMap<u64, ObjId> = m
        .objects
        .iter()
        .enumerate()
        .map(|(i, o)| (o.address, i as ObjId))
        .collect();

    let mut dangling = 0u64;
    let mut recovered = 0u64;
    let mut traced = 0u64;
    for (i, o) in m.objects.iter().enumerate() {
        let id = i as ObjId;
        let ctx = format!("object {i} at {:#x} ({})", o.address, o.kind.type_name());
        prop_assert_eq!(heap.address[i], o.address, "{}", ctx);
        prop_assert_eq!(heap.type_name(id), o.kind.type_name(), "{}", ctx);
        if let Some(t) = types::known(o.kind.type_name().as_bytes()) {
            prop_assert_eq!(heap.otype[i], t, "{}", ctx);
        }
        prop_assert_eq!(heap.flags[i], expected_flags(o), "{}", ctx);
        prop_assert_eq!(heap.memsize(id), o.memsize, "{}", ctx);

        // Class: never for IMEMO/NODE; otherwise the address written, resolved.
        let want_class = match o.kind {
            Kind::Imemo { .. } | Kind::Node { .. } => None,
            _ => o.class,
        };
        match (heap.class_of(id), want_class) {
            (None, None) => {}
            (Some(c), Some(addr)) => {
                prop_assert_eq!(c.address, addr, "{}", ctx);
                let cid = heap.class[i];
                match pos.get(&addr) {
                    Some(&cobj) => {
                        prop_assert_eq!(c.object, cobj, "{}", ctx);
                        let want_name = match &m.objects[cobj as usize].kind {
                            Kind::Class { name, .. } => name.clone(),
                            _ => None,
                        };
                        prop_assert_eq!(
                            c.name.get().map(|s| heap.strings.get(s).to_vec()),
                            want_name.clone().map(String::into_bytes),
                            "{}",
                            ctx
                        );
                        let shown = want_name.unwrap_or_else(|| format!("#<Class:{addr:#x}>"));
                        prop_assert_eq!(heap.class_display(cid), shown, "{}", ctx);
                    }
                    None => {
                        prop_assert_eq!(c.object, NO_OBJ, "{}", ctx);
                        prop_assert!(c.name.is_none(), "{}", ctx);
                        // No record of the class: not known to be anonymous.
                        prop_assert_eq!(
                            heap.class_display(cid),
                            format!("(unknown class {addr:#x})"),
                            "{}",
                            ctx
                        );
                    }
                }
            }
            (got, want) => prop_assert!(false, "{}: class {:?}, expected {:?}", ctx, got, want),
        }

        let want_loc = o.file.as_ref().map(|(f, l)| (f.clone(), *l));
        let got_loc = heap
            .location(id)
            .map(|l| (heap.strings.get(l.file).to_vec(), l.line));
        prop_assert_eq!(got_loc, want_loc, "{}", ctx);
        prop_assert_eq!(
            heap.file(id).map(<[u8]>::to_vec),
            o.file.as_ref().map(|f| f.0.clone()),
            "{}",
            ctx
        );
        prop_assert_eq!(
            heap.method_name(id).map(<[u8]>::to_vec),
            o.method.clone(),
            "{}",
            ctx
        );
        prop_assert_eq!(heap.generation(id), o.generation, "{}", ctx);
        traced += (o.file.is_some() || o.generation.is_some()) as u64;

        let want_detail = expected_detail(o, &m.objects, &pos, opts.string_values);
        prop_assert_eq!(
            heap.detail_str(id).map(<[u8]>::to_vec),
            want_detail.clone(),
            "{}",
            ctx
        );
        let want_value = match o.kind {
            Kind::Str { .. } => want_detail,
            _ => None,
        };
        prop_assert_eq!(
            heap.string_value(id).map(<[u8]>::to_vec),
            want_value,
            "{}",
            ctx
        );
        let want_shape = match o.kind {
            Kind::Object { .. } => o.shape_id,
            _ => None,
        };
        prop_assert_eq!(heap.shape_id(id), want_shape, "{}", ctx);

        let want_refs: Vec<ObjId> = o.refs.iter().filter_map(|a| pos.get(a).copied()).collect();
        dangling += (o.refs.len() - want_refs.len()) as u64;
        if opts.references {
            prop_assert_eq!(heap.refs(id), &want_refs[..], "{}", ctx);
        } else {
            prop_assert!(heap.refs(id).is_empty(), "{}", ctx);
        }
        recovered += needs_recovery(o) as u64;

        prop_assert_eq!(heap.find(o.address), Some(id), "{}", ctx);
    }
    for &a in &m.absent {
        prop_assert_eq!(heap.find(a), None, "address {:#x} is in no record", a);
    }
    if m.ruby_order {
        prop_assert!(
            heap.index.by_address.is_empty(),
            "Ruby's page order needs no sorted permutation"
        );
    }

    prop_assert_eq!(heap.references_loaded, opts.references);
    if opts.references {
        prop_assert_eq!(heap.ref_offsets.len(), n + 1);
        prop_assert_eq!(heap.facts.dangling_refs, dangling);
        let total: usize = m.objects.iter().map(|o| o.refs.len()).sum();
        prop_assert_eq!(heap.refs.len() as u64, total as u64 - dangling);
    } else {
        prop_assert!(heap.ref_offsets.is_empty());
        prop_assert!(heap.refs.is_empty());
        prop_assert_eq!(heap.facts.dangling_refs, 0);
    }

    // Roots, in order, with dangling references dropped. (With references
    // off the reader skips ROOT references too, so only categories are checked.)
    prop_assert_eq!(heap.roots.len(), m.roots.len());
    for (r, (cat, refs)) in heap.roots.iter().zip(&m.roots) {
        prop_assert_eq!(heap.strings.get(r.category), cat.as_bytes());
        prop_assert_eq!(r.conservative, *cat == "machine_context");
        if opts.references {
            let want: Vec<ObjId> = refs.iter().filter_map(|a| pos.get(a).copied()).collect();
            prop_assert_eq!(heap.root_refs(r), &want[..], "root {}", cat);
        }
    }

    match &m.shapes {
        None => {
            prop_assert!(heap.shapes.is_empty());
            prop_assert!(!heap.facts.has_shapes);
            prop_assert!(!heap.facts.has_slot_size);
        }
        Some(shapes) => {
            prop_assert!(heap.facts.has_shapes);
            prop_assert!(heap.facts.has_slot_size || n == 0);
            prop_assert_eq!(heap.shapes.len(), shapes.len());
            for (got, want) in heap.shapes.iter().zip(shapes) {
                prop_assert_eq!(got.address, want.address);
                prop_assert_eq!(got.id, want.id);
                prop_assert_eq!(got.parent_id, want.parent_id);
                prop_assert_eq!(got.depth, want.depth);
                prop_assert_eq!(
                    heap.strings.get(got.shape_type),
                    want.spec.shape_type.as_bytes()
                );
                prop_assert_eq!(
                    got.edge_name.get().map(|s| heap.strings.get(s).to_vec()),
                    want.spec.edge_name.clone()
                );
                prop_assert_eq!(got.capacity, want.spec.capacity);
                prop_assert_eq!(got.edges, want.spec.edges);
                prop_assert_eq!(got.memsize, want.spec.memsize);
            }
        }
    }

    let tracer = m
        .objects
        .iter()
        .position(|o| matches!(&o.kind, Kind::Data { name: Some(s) } if s == TRACER_STRUCT))
        .map(|i| i as ObjId);
    prop_assert_eq!(heap.tracer, tracer);
    prop_assert_eq!(heap.facts.traced_objects, traced);
    prop_assert_eq!(
        heap.facts.max_generation,
        m.objects.iter().filter_map(|o| o.generation).max()
    );
    prop_assert!(!heap.facts.integer_flags);
    prop_assert_eq!(heap.facts.duplicate_addresses, 0);
    prop_assert!(heap.object_ids.is_empty());

    let n_shapes = m.shapes.as_ref().map_or(0, |s| s.len());
    let lines = m.roots.len() + n_shapes + n;
    prop_assert_eq!(diag.lines, lines as u64);
    prop_assert_eq!(diag.objects, n as u64);
    prop_assert_eq!(diag.roots, m.roots.len() as u64);
    prop_assert_eq!(diag.shapes, n_shapes as u64);
    prop_assert_eq!(diag.blank_lines, 0);
    prop_assert_eq!(diag.malformed, 0, "{:?}", diag.first_malformed);
    prop_assert!(diag.first_malformed.is_empty());
    prop_assert!(diag.truncated_last_line.is_none());
    prop_assert_eq!(diag.recovered, recovered);
    prop_assert_eq!(
        diag.fallback_lines,
        0,
        "Ruby's layout must not need the general parser"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Strategies.

fn bytes_from(pieces: &'static [&'static [u8]], max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(pieces), 1..=max).prop_map(|v| v.concat())
}

/// `file` paths, written raw by Ruby: quotes and backslashes included, but
/// never a quote followed by `,"` or `}` (which no reader can tell from the
/// end of the value) nor a backslash that forms a valid JSON escape.
fn file_path() -> impl Strategy<Value = Vec<u8>> {
    const PIECES: &[&[u8]] = &[
        b"/app",
        b"/lib",
        b"/",
        b"models",
        b"user",
        b".rb",
        b"-",
        b"_",
        b" ",
        b"(eval)",
        b"<internal:kernel>",
        "caf\u{e9}".as_bytes(),
        b"r\xe9sum\xe9",
        b"\xff\xfe",
        b"we\"ird",
        b"back\\slash",
        b"C:\\x",
        b"x\"",
        b"[]",
        b"0",
    ];
    bytes_from(PIECES, 6)
}

/// Method names (escaped by Ruby 3.x; ASCII only, as Ruby < 3.2 breaks on
/// others), including ones whose escaped quotes look like the end of a value.
fn method_name() -> impl Strategy<Value = Vec<u8>> {
    let names = prop_oneof![
        4 => prop::sample::select(vec![&b"new"[..], b"initialize", b"<main>", b"each", b"[]=", b"call", b"block in foo"]).prop_map(<[u8]>::to_vec),
        1 => prop::collection::vec(prop_oneof![
            b'a'..=b'z', Just(b'_'), Just(b'?'), Just(b'!'), Just(b'='), Just(b'"'), Just(b'\\'),
            Just(b'\n'), Just(b'\t'), Just(1u8), Just(0x7f), Just(b','), Just(b' '), Just(b'/'), Just(b'['),
            Just(b'}')
        ], 1..12),
    ];
    names
}

/// STRING values: any bytes (escapes, control bytes, non-UTF-8), sometimes long.
fn string_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(prop_oneof![
            4 => b'a'..=b'z',
            1 => Just(b'"'), 1 => Just(b'\\'), 1 => Just(b'\n'), 1 => 0u8..0x20, 1 => Just(0x7fu8),
            1 => 0x80u8..=0xff, 1 => Just(b'/'), 1 => Just(b'}'), 1 => Just(b','), 1 => Just(b']')
        ], 0..24),
        1 => (1usize..6000, b'a'..=b'z').prop_map(|(n, c)| vec![c; n]),
    ]
}

fn class_name() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.8,
        prop::sample::select(vec![
            "Foo",
            "Bar::Baz",
            "Caf\u{e9}",
            "A1",
            "\u{dc}n\u{ef}code::\u{d8}",
            "Object",
            "Class",
        ])
        .prop_map(String::from),
    )
}

fn struct_name() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::weighted(
        0.8,
        prop::sample::select(vec![
            &b"proc"[..],
            b"iseq",
            TRACER_STRUCT,
            b"my\"struct",
            b"we\\ird",
            "caf\u{e9}".as_bytes(),
            b"Thread::Mutex",
            b"a b",
        ])
        .prop_map(<[u8]>::to_vec),
    )
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        8 => any::<usize>().prop_map(Target::Obj),
        2 => any::<usize>().prop_map(Target::Class),
        1 => Just(Target::Myself),
        2 => (any::<u16>(), any::<bool>()).prop_map(|(s, far)| Target::Dangling(s, far)),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => (0u32..20).prop_map(|ivars| Kind::Object { ivars }),
        3 => (prop::option::weighted(0.85, string_value()), any::<bool>(), prop::bool::weighted(0.15), any::<bool>())
            .prop_map(|(value, embedded, shared, fstring)| Kind::Str { value, embedded, shared, fstring }),
        1 => string_value().prop_map(|value| Kind::Symbol { value }),
        1 => prop::sample::select(vec!["1.50000", "-0.00000", "3.14159e+100", "inf", "nan"])
            .prop_map(|v| Kind::Float { value: v.into() }),
        2 => (0u32..100, any::<bool>(), any::<bool>()).prop_map(|(length, embedded, shared)| Kind::Array { length, embedded, shared }),
        1 => (0u32..100).prop_map(|size| Kind::Hash { size }),
        1 => struct_name().prop_map(|name| Kind::Data { name }),
        1 => prop::sample::select(vec!["callcache", "ment", "iseq", "cref", "env", "constcache"])
            .prop_map(|imemo_type| Kind::Imemo { imemo_type }),
        1 => prop::sample::select(vec!["NODE_SCOPE", "NODE_BLOCK"]).prop_map(|node_type| Kind::Node { node_type }),
        1 => Just(Kind::Iclass),
        1 => prop::sample::select(vec!["REGEXP", "STRUCT", "BIGNUM", "FILE", "MATCH", "COMPLEX", "RATIONAL", "ZOMBIE"])
            .prop_map(|type_name| Kind::Plain { type_name }),
        1 => prop::sample::select(vec!["FUTURE", "T_WEIRD", "UNKNOWN", "MOVED2"])
            .prop_map(|t| Kind::Unknown { type_name: t.into() }),
    ]
}

fn memsize() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => Just(0u64),
        6 => 1u64..100_000,
        1 => Just(u32::MAX as u64 - 1),
        1 => Just(u32::MAX as u64),
        1 => (u32::MAX as u64 + 1)..(1u64 << 52),
    ]
}

fn obj_spec(kind: BoxedStrategy<Kind>) -> impl Strategy<Value = ObjSpec> {
    let alloc = (
        prop::option::weighted(0.6, (file_path(), 0u32..100_000)),
        prop::option::weighted(0.4, method_name()),
        prop::option::weighted(0.6, prop_oneof![9 => 0u32..1000, 1 => Just(u32::MAX - 1)]),
    );
    let refs = prop_oneof![
        12 => prop::collection::vec(target(), 0..6),
        1 => prop::collection::vec(target(), 200..500),
    ];
    (
        (any::<usize>(), any::<u64>(), kind),
        (
            prop::option::weighted(0.85, target()),
            prop::bool::weighted(0.2),
            0u8..64,
            memsize(),
        ),
        alloc,
        refs,
        any::<usize>(),
    )
        .prop_map(
            |(
                (page, slot, kind),
                (class, frozen, gc_flags, memsize),
                (file, method, generation),
                refs,
                shape_id,
            )| ObjSpec {
                page,
                slot,
                kind,
                class,
                frozen,
                gc_flags,
                memsize,
                file,
                method,
                generation,
                refs,
                shape_id,
            },
        )
}

fn class_spec() -> BoxedStrategy<Kind> {
    (prop::bool::weighted(0.2), class_name())
        .prop_map(|(module, name)| Kind::Class { module, name })
        .boxed()
}

fn shape_spec() -> impl Strategy<Value = ShapeSpec> {
    (
        any::<usize>(),
        prop::sample::select(vec![
            "ROOT",
            "IVAR",
            "FROZEN",
            "CAPACITY_CHANGE",
            "INITIAL_CAPACITY",
            "T_OBJECT",
            "OBJ_TOO_COMPLEX",
        ]),
        prop::sample::select(vec![&b"@name"[..], b"@a", b"@caf\xc3\xa9", b"@q\"uote"]),
        prop::option::of(0u32..64),
        0u32..10,
        0u64..10_000,
    )
        .prop_map(
            |(parent, shape_type, edge, capacity, edges, memsize)| ShapeSpec {
                parent,
                shape_type,
                edge_name: (shape_type == "IVAR").then(|| edge.to_vec()),
                capacity,
                edges,
                memsize,
            },
        )
}

fn root_spec() -> impl Strategy<Value = (&'static str, Vec<Target>)> {
    (
        prop::sample::select(vec![
            "vm",
            "machine_context",
            "finalizers",
            "global_list",
            "end_proc",
            "global_tbl",
            "object_id",
            "symbols",
        ]),
        prop::collection::vec(target(), 1..8),
    )
}

fn heap_spec() -> impl Strategy<Value = HeapSpec> {
    (
        prop::collection::vec(0u16..64, 1..5),
        prop::collection::vec(obj_spec(class_spec()), 0..6),
        prop::collection::vec(obj_spec(kind().boxed()), 1..64),
        prop::collection::vec(root_spec(), 0..6),
        prop::option::weighted(0.3, prop::collection::vec(shape_spec(), 1..8)),
        0u8..4,
        any::<u64>(),
    )
        .prop_map(
            |(pages, classes, objects, roots, shapes, layout, seed)| HeapSpec {
                pages,
                classes,
                objects,
                roots,
                shapes,
                layout,
                seed,
            },
        )
}

fn read_bytes(bytes: &[u8], opts: &ReadOptions, size_hint: bool) -> Dump {
    let len = bytes.len() as u64;
    let input = Input::from_reader(
        "roundtrip".into(),
        Box::new(std::io::Cursor::new(bytes.to_vec())),
        size_hint.then_some(len),
    )
    .expect("open in-memory input");
    match read_input(input, opts) {
        Ok(d) => d,
        Err(e) => panic!("read failed: {e}"),
    }
}

fn opts(references: bool, string_values: bool, threads: usize, chunk_bytes: usize) -> ReadOptions {
    ReadOptions {
        references,
        string_values,
        threads,
        chunk_bytes,
        progress: None,
        ..ReadOptions::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn heap_round_trips(
        spec in heap_spec(),
        chunk in 64usize..16384,
        threads in 1usize..=2,
        references in prop::bool::weighted(0.85),
        string_values in prop::bool::weighted(0.85),
        size_hint in any::<bool>(),
        crlf in prop::bool::weighted(0.1),
    ) {
        let model = build_model(&spec);
        let mut bytes = write_dump(&model);
        if crlf {
            // No value holds a raw newline: Ruby escapes them, and the raw
            // `file`/`struct` values generated here have none.
            bytes = bytes.split_inclusive(|&c| c == b'\n').flat_map(|l| {
                let mut l = l.to_vec();
                l.insert(l.len() - 1, b'\r');
                l
            }).collect();
        }
        let o = opts(references, string_values, threads, chunk);
        let d = read_bytes(&bytes, &o, size_hint);
        prop_assert_eq!(d.diagnostics.bytes, bytes.len() as u64);
        check(&model, &d, &o)?;
    }
}

// ---------------------------------------------------------------------------
// Same bytes, any chunking: identical heaps.

/// Everything a heap holds, with ids resolved to values, for comparison.
#[derive(Debug, PartialEq)]
struct Snapshot {
    objects: Vec<SnapObj>,
    roots: Vec<(Vec<u8>, bool, Vec<ObjId>)>,
    shapes: Vec<String>,
    object_ids: BTreeMap<ObjId, u64>,
    tracer: Option<ObjId>,
    facts: String,
    type_names: Vec<String>,
    diagnostics: String,
}

#[derive(Debug, PartialEq)]
struct SnapObj {
    address: u64,
    type_name: String,
    flags: u8,
    memsize: u64,
    class: Option<(u64, ObjId, Option<Vec<u8>>)>,
    location: Option<(Vec<u8>, u32)>,
    method: Option<Vec<u8>>,
    generation: Option<u32>,
    detail: Option<Vec<u8>>,
    shape_id: Option<u32>,
    refs: Vec<ObjId>,
    found: Option<ObjId>,
}

fn snapshot(heap: &Heap, diag: &Diagnostics) -> Snapshot {
    let objects = heap
        .ids()
        .map(|id| SnapObj {
            address: heap.address[id as usize],
            type_name: heap.type_name(id).to_string(),
            flags: heap.flags[id as usize],
            memsize: heap.memsize(id),
            class: heap.class_of(id).map(|c| {
                (
                    c.address,
                    c.object,
                    c.name.get().map(|s| heap.strings.get(s).to_vec()),
                )
            }),
            location: heap
                .location(id)
                .map(|l| (heap.strings.get(l.file).to_vec(), l.line)),
            method: heap.method_name(id).map(<[u8]>::to_vec),
            generation: heap.generation(id),
            detail: heap.detail_str(id).map(<[u8]>::to_vec),
            shape_id: heap.shape_id(id),
            refs: heap.refs(id).to_vec(),
            found: heap.find(heap.address[id as usize]),
        })
        .collect();
    let mut diag = diag.clone();
    diag.fallback_lines = 0;
    Snapshot {
        objects,
        roots: heap
            .roots
            .iter()
            .map(|r| {
                (
                    heap.strings.get(r.category).to_vec(),
                    r.conservative,
                    heap.root_refs(r).to_vec(),
                )
            })
            .collect(),
        shapes: heap
            .shapes
            .iter()
            .map(|s| {
                format!(
                    "{:?} {:?} {:?}",
                    s,
                    heap.strings.text(s.shape_type),
                    s.edge_name.get().map(|e| heap.strings.text(e))
                )
            })
            .collect(),
        object_ids: heap.object_ids.iter().map(|(&k, &v)| (k, v)).collect(),
        tracer: heap.tracer,
        facts: format!("{:?}", heap.facts),
        type_names: heap.type_names.iter().map(|t| t.to_string()).collect(),
        diagnostics: format!("{diag:?}"),
    }
}

const JUNK: &[&[u8]] = &[
    b"hello world",
    b"{\"address\":\"0x7f00000001\", \"type\":\"OBJ",
    b"\x00\xfe\xff\x1b[0m junk",
    b"{\"type\":\"STRING\"}",
    b"[1, 2, 3]",
    b"{\"address\":\"0xZZ\", \"type\":\"OBJECT\"}",
];

/// Inserts junk and blank lines after some lines (never before the first:
/// a first chunk with no record at all is taken for a non-dump). Returns the
/// bytes and the 1-based numbers of the junk lines.
fn corrupt(
    bytes: &[u8],
    junk: &[(usize, usize, bool)],
    truncate: Option<usize>,
) -> (Vec<u8>, Vec<u64>, Option<u64>) {
    let lines: Vec<&[u8]> = bytes.split_inclusive(|&c| c == b'\n').collect();
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let mut line_no = 0u64;
    for (i, l) in lines.iter().enumerate() {
        out.extend_from_slice(l);
        line_no += 1;
        for &(after, which, blank) in junk {
            if after % lines.len() == i {
                if blank {
                    out.extend_from_slice(if which % 2 == 0 { b"\n" } else { b"   \r\n" });
                } else {
                    out.extend_from_slice(JUNK[which % JUNK.len()]);
                    out.push(b'\n');
                    bad.push(line_no + 1);
                }
                line_no += 1;
            }
        }
    }
    let mut truncated = None;
    if let Some(t) = truncate {
        // Cut the last line (an object line, never junk here) short, with no newline.
        if junk
            .iter()
            .all(|&(after, _, _)| after % lines.len() != lines.len() - 1)
        {
            let last = lines[lines.len() - 1];
            if last.starts_with(b"{\"address\"") && last.len() > 2 {
                let keep = 1 + t % (last.len() - 2);
                out.truncate(out.len() - last.len() + keep);
                truncated = Some(line_no);
            }
        }
    }
    (out, bad, truncated)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_gives_the_same_heap(
        spec in heap_spec(),
        junk in prop::collection::vec((1usize..1000, any::<usize>(), any::<bool>()), 0..5),
        truncate in prop::option::weighted(0.3, any::<usize>()),
        compression in prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        settings in prop::collection::vec((64usize..20000, 1usize..=4, 0u8..3), 1..4),
        references in prop::bool::weighted(0.8),
    ) {
        let model = build_model(&spec);
        let clean = write_dump(&model);
        let (bytes, bad, truncated) = corrupt(&clean, &junk, truncate);
        let reference = read_bytes(&bytes, &opts(references, true, 1, 1 << 24), false);
        let want = snapshot(&reference.heap, &reference.diagnostics);

        let diag = &reference.diagnostics;
        let first: Vec<u64> = diag.first_malformed.iter().map(|p| p.line).collect();
        prop_assert_eq!(&first[..], &bad[..bad.len().min(10)]);
        prop_assert_eq!(diag.truncated_last_line.as_ref().map(|p| p.line), truncated);
        prop_assert_eq!(diag.malformed, bad.len() as u64 + truncated.is_some() as u64);
        let blanks = junk.iter().filter(|j| j.2).count() as u64;
        prop_assert_eq!(diag.blank_lines, blanks);
        prop_assert_eq!(reference.heap.len(), model.objects.len() - truncated.is_some() as usize);

        let input_bytes = compress(&bytes, compression);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump");
        std::fs::write(&path, &input_bytes).unwrap();
        for (chunk, threads, via) in settings {
            let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let sink = seen.clone();
            let mut o = opts(references, true, threads, chunk);
            o.progress = Some(std::sync::Arc::new(move |n| sink.lock().unwrap().push(n)));
            let d = match via % 3 {
                // A path (the reader may map it).
                0 => heapscope_reader::read_path(&path, &o),
                // A stream that hands out a few bytes at a time.
                1 => {
                    let reader = Box::new(Trickle { data: input_bytes.clone(), pos: 0 });
                    read_input(Input::from_reader("same".into(), reader, None).unwrap(), &o)
                }
                _ => {
                    let reader = Box::new(std::io::Cursor::new(input_bytes.clone()));
                    read_input(Input::from_reader("same".into(), reader, Some(input_bytes.len() as u64)).unwrap(), &o)
                }
            }
            .unwrap_or_else(|e| panic!("{e}"));
            let got = snapshot(&d.heap, &d.diagnostics);
            prop_assert!(got == want, "chunk {} threads {} via {}:\n{:#?}\nvs\n{:#?}", chunk, threads, via, got, want);
            let seen = seen.lock().unwrap();
            prop_assert!(seen.windows(2).all(|w| w[0] <= w[1]), "progress goes forward: {:?}", seen);
            if compression == 0 {
                prop_assert_eq!(seen.last().copied(), Some(d.diagnostics.bytes));
            }
        }
    }
}

/// 0: none, 1: gzip, 2: zstd.
fn compress(bytes: &[u8], how: u8) -> Vec<u8> {
    match how {
        1 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(bytes).unwrap();
            gz.finish().unwrap()
        }
        2 => zstd::stream::encode_all(bytes, 1).unwrap(),
        _ => bytes.to_vec(),
    }
}

/// A reader that hands out a few bytes at a time, like a slow pipe.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.pos % 13 + 1)
            .min(buf.len())
            .min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------
// Specific cases.

/// A heap exactly like the model's, through the public path with files.
#[test]
fn round_trip_through_a_file_and_read_path() {
    let spec = HeapSpec {
        pages: vec![3, 1, 2],
        classes: vec![],
        objects: vec![],
        roots: vec![],
        shapes: None,
        layout: 0,
        seed: 42,
    };
    let model = build_model(&HeapSpec {
        objects: (0..300)
            .map(|i| ObjSpec {
                page: i % 3,
                slot: i as u64 * 5,
                kind: if i % 2 == 0 {
                    Kind::Object { ivars: 1 }
                } else {
                    Kind::Str {
                        value: Some(format!("s{i}").into_bytes()),
                        embedded: true,
                        shared: false,
                        fstring: false,
                    }
                },
                class: None,
                frozen: false,
                gc_flags: 1,
                memsize: 40,
                file: Some((b"/app/x.rb".to_vec(), i as u32)),
                method: None,
                generation: Some(7),
                refs: vec![Target::Obj(i + 1), Target::Dangling(i as u16, true)],
                shape_id: 0,
            })
            .collect(),
        ..spec
    });
    let bytes = write_dump(&model);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("heap.jsonl");
    std::fs::write(&path, &bytes).unwrap();
    let o = opts(true, true, 2, 4096);
    let d = heapscope_reader::read_path(&path, &o).unwrap();
    check(&model, &d, &o).unwrap();
    assert_eq!(d.heap.facts.dangling_refs, 300);
    assert!(
        d.heap.index.by_address.is_empty(),
        "Ruby's layout needs no sorted permutation"
    );
}

/// Ruby (3.0+) escapes method names, so a method named `a"}b` or `say",`
/// (possible with define_method) is written `"method":"a\"}b"` or
/// `"method":"say\","`: valid JSON. The scanner reads `method` with
/// `raw_string` (for pre-3.0 dumps, which did not escape), which ends the value
/// at the first `"` followed by `}` or by `,` + `"`, here the escaped one.
/// The line then fails, and the general fallback re-serialises it with
/// serde_json, which escapes it the same way, and scans it again with the
/// same heuristic: a valid record is dropped as malformed.
#[test]
fn escaped_method_names_that_look_like_the_end_of_the_value() {
    let mut dropped = Vec::new();
    for method in [&b"a\"}b"[..], b"x\" } y", b"say\",", b"q\", ", b"end\"}"] {
        let mut line = b"{\"address\":\"0x7f0000000028\", \"type\":\"OBJECT\", \"ivars\":0, \"file\":\"/app/a.rb\", \"line\":1, \"method\":".to_vec();
        push_escaped(&mut line, method);
        line.extend_from_slice(b", \"generation\":3, \"memsize\":40}\n");
        let v: serde_json::Value = serde_json::from_slice(&line).expect("the line is valid JSON");
        assert_eq!(v["method"].as_str().unwrap().as_bytes(), method);
        let mut dump =
            b"{\"type\":\"ROOT\", \"root\":\"vm\", \"references\":[\"0x7f0000000028\"]}\n".to_vec();
        dump.extend_from_slice(&line);
        let d = read_bytes(&dump, &opts(true, true, 1, 4096), false);
        if d.diagnostics.malformed != 0 || d.heap.method_name(0) != Some(method) {
            dropped.push(format!(
                "{} ({:?})",
                String::from_utf8_lossy(method),
                d.diagnostics.first_malformed
            ));
        }
    }
    assert!(dropped.is_empty(), "valid records dropped: {dropped:#?}");
}

/// A line longer than many chunks (a ROOT with 20,000 references) is read whole.
#[test]
fn huge_lines_span_many_chunks() {
    let mut objects = Vec::new();
    for i in 0..2000u64 {
        objects.push(MObj {
            address: HEAP_BASE + (i / 400) * PAGE + (i % 400) * 40,
            kind: Kind::Array {
                length: 0,
                embedded: false,
                shared: false,
            },
            class: None,
            frozen: false,
            gc_flags: 0,
            memsize: 40,
            file: None,
            method: None,
            generation: None,
            refs: vec![],
            shape_id: None,
        });
    }
    let all: Vec<u64> = objects.iter().map(|o| o.address).collect();
    let mut refs = Vec::new();
    for _ in 0..10 {
        refs.extend_from_slice(&all);
    }
    objects[5].refs = refs.clone();
    let model = Model {
        roots: vec![("vm", refs)],
        shapes: None,
        objects,
        absent: vec![HEAP_BASE + 1],
        ruby_order: true,
    };
    let bytes = write_dump(&model);
    assert!(bytes.len() > 700_000);
    for (threads, chunk) in [(1, 4096), (2, 65536), (3, 1 << 20)] {
        let o = opts(true, true, threads, chunk);
        let d = read_bytes(&bytes, &o, false);
        check(&model, &d, &o).unwrap();
        assert_eq!(d.heap.refs(5).len(), 20_000);
        assert_eq!(d.heap.root_refs.len(), 20_000);
    }
}

/// A final line with no newline is a whole record when it parses.
#[test]
fn last_line_without_newline_is_read() {
    let model = build_model(&HeapSpec {
        pages: vec![1],
        classes: vec![],
        objects: (0..40)
            .map(|i| ObjSpec {
                page: 0,
                slot: i as u64 * 5,
                kind: Kind::Hash { size: 1 },
                class: None,
                frozen: true,
                gc_flags: 3,
                memsize: 160,
                file: Some((b"/app/we\"ird.rb".to_vec(), 1)),
                method: Some(b"call".to_vec()),
                generation: Some(i as u32),
                refs: vec![Target::Obj(i + 3)],
                shape_id: 0,
            })
            .collect(),
        roots: vec![("vm", vec![Target::Obj(0)])],
        shapes: None,
        layout: 0,
        seed: 1,
    });
    let mut bytes = write_dump(&model);
    assert_eq!(bytes.pop(), Some(b'\n'));
    for chunk in [4096, 1 << 20] {
        let o = opts(true, true, 2, chunk);
        let d = read_bytes(&bytes, &o, false);
        check(&model, &d, &o).unwrap();
        assert!(d.diagnostics.truncated_last_line.is_none());
    }
}

/// The reader's early "not a dump" exit looks at the first chunk only
/// (lib.rs, merge(): `next == 1 && ... diag.records() == 0 && diag.lines > 0`),
/// so the same bytes are read or rejected depending on `chunk_bytes`: a dump
/// preceded by more than one chunk of non-record lines (a log preamble
/// captured with the dump, or blank lines) is rejected as NotADump with 4 KiB
/// chunks but read with 1 MiB chunks (and with the default 8 MiB chunks, any
/// preamble over 8 MiB is rejected). The reason given is also wrong for the
/// whole input ("the input holds only blank lines", "none of its 85 lines").
#[test]
fn leading_non_record_lines_do_not_depend_on_chunk_size() {
    let dump = b"{\"type\":\"ROOT\", \"root\":\"vm\", \"references\":[\"0x10\"]}\n{\"address\":\"0x10\", \"type\":\"OBJECT\", \"memsize\":40}\n";
    let mut blanks = vec![b'\n'; 5000];
    blanks.extend_from_slice(dump);
    let mut log = Vec::new();
    for i in 0..200 {
        log.extend_from_slice(
            format!("I, [2024-01-01T00:00:00] INFO -- : boot line {i}\n").as_bytes(),
        );
    }
    log.extend_from_slice(dump);
    for (name, bytes) in [("blank lines", &blanks), ("log lines", &log)] {
        let mut outcomes = Vec::new();
        for chunk in [4096, 1 << 20] {
            let input = Input::from_reader(
                name.into(),
                Box::new(std::io::Cursor::new(bytes.clone())),
                None,
            )
            .unwrap();
            outcomes.push(match read_input(input, &opts(true, true, 1, chunk)) {
                Ok(d) => format!("{} objects", d.heap.len()),
                Err(e) => e.to_string(),
            });
        }
        assert_eq!(
            outcomes[0], outcomes[1],
            "{name}: 4 KiB chunks vs 1 MiB chunks"
        );
    }
}

/// `Input::from_reader` recognises gzip and zstd by their first bytes, but
/// looks only at what one `fill_buf()` returns (input.rs, `from_reader`:
/// `let head = buffered.fill_buf()?;`). A stream whose first read returns
/// fewer than 2 (gzip) or 4 (zstd) bytes, such as a slow pipe or socket on
/// stdin, is taken for plain text, and the read fails as "binary data".
#[test]
fn compressed_input_is_detected_from_a_slow_stream() {
    let dump = b"{\"type\":\"ROOT\", \"root\":\"vm\", \"references\":[\"0x10\"]}\n{\"address\":\"0x10\", \"type\":\"OBJECT\", \"memsize\":40}\n";
    let mut failures = Vec::new();
    for (how, want) in [
        (1, heapscope_reader::Compression::Gzip),
        (2, heapscope_reader::Compression::Zstd),
    ] {
        let data = compress(dump, how);
        let input =
            Input::from_reader("slow".into(), Box::new(Trickle { data, pos: 0 }), None).unwrap();
        if input.compression != want {
            failures.push(format!("{want:?} detected as {:?}", input.compression));
        }
        if let Err(e) = read_input(input, &opts(true, true, 1, 4096)) {
            failures.push(format!("{want:?}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
