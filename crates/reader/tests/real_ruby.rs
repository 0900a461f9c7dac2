//! A real heap dump from the installed Ruby (3.1 on these machines), made at
//! test time with allocation tracing on, read with the fast reader and with a
//! slow, obviously-correct reader written here (serde_json per line), which
//! must agree. Also bounds the memory the model takes per object.
//!
//! Needs `ruby` on PATH (Debian: `apt-get install ruby`); the tests fail with
//! a clear message when it is missing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use heapscope_heap::{types, ObjId, NO_OBJ};
use heapscope_reader::{read_path, Dump, ReadOptions};
use serde_json::Value;

/// About 200,000 objects: instances of a class with a string and an array
/// each, Structs in a Hash, heap Floats, dynamic Symbols, Bignums, instances
/// of an anonymous class, procs, and a string with escapes.
const SCRIPT: &str = r#"
ObjectSpace.trace_object_allocations_start
class Item
  attr_reader :name
  def initialize(i)
    @i = i
    @name = "item-#{i}"
    @tags = [i, i.to_s]
  end
end
module Registry; end
Tagged = Struct.new(:a, :b)
$items = Array.new(40_000) { |i| Item.new(i) }
$hash = {}
4_000.times { |i| $hash["key-#{i}"] = Tagged.new(i, "v#{i}") }
$floats = Array.new(3_000) { |i| 1e300 * (i + 2) }
$syms = Array.new(2_000) { |i| "dyn_sym_#{i}".to_sym }
$big = Array.new(1_000) { |i| 2**100 + i }
$anon = Class.new { def hi; end }
$anons = Array.new(500) { $anon.new }
$quote = "with \"quotes\" and \\ backslash\n\t\u0001"
$procs = Array.new(1_000) { |i| proc { i } }
GC.start
File.open(ARGV[0], "w") { |f| ObjectSpace.dump_all(output: f) }
"#;

/// What the slow reader saw on one heap-object line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SlowObj {
    address: u64,
    type_name: String,
    file: Option<String>,
    line: Option<u64>,
    generation: Option<u64>,
    memsize: u64,
    class: Option<u64>,
    refs: Vec<u64>,
}

struct Slow {
    objects: Vec<SlowObj>,
    roots: Vec<(String, Vec<u64>)>,
    lines: u64,
    bad_lines: u64,
}

struct Fixture {
    dump: Dump,
    slow: Slow,
    ruby_version: String,
    bytes: u64,
}

fn addr(v: &Value) -> u64 {
    let s = v.as_str().expect("address is a string");
    u64::from_str_radix(s.strip_prefix("0x").expect("0x prefix"), 16).expect("hex address")
}

/// One `serde_json::Value` per line, nothing clever.
fn slow_read(path: &Path) -> Slow {
    let text = std::fs::read(path).expect("read the dump");
    let mut objects = Vec::new();
    let mut roots = Vec::new();
    let mut lines = 0;
    let mut bad_lines = 0;
    for line in text.split(|&c| c == b'\n') {
        if line.is_empty() {
            continue;
        }
        lines += 1;
        let v: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(_) => {
                bad_lines += 1;
                continue;
            }
        };
        let refs: Vec<u64> = v
            .get("references")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(addr).collect())
            .unwrap_or_default();
        let type_name = v["type"].as_str().expect("type").to_string();
        if type_name == "ROOT" {
            roots.push((v["root"].as_str().expect("root").to_string(), refs));
            continue;
        }
        objects.push(SlowObj {
            address: addr(&v["address"]),
            type_name,
            file: v.get("file").map(|f| f.as_str().expect("file").to_string()),
            line: v.get("line").map(|l| l.as_u64().expect("line")),
            generation: v.get("generation").map(|g| g.as_u64().expect("generation")),
            memsize: v.get("memsize").map_or(0, |m| m.as_u64().expect("memsize")),
            class: v.get("class").map(addr),
            refs,
        });
    }
    Slow {
        objects,
        roots,
        lines,
        bad_lines,
    }
}

fn ruby_version() -> String {
    let out = Command::new("ruby")
        .arg("-e")
        .arg("print RUBY_VERSION")
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => panic!("`ruby -e 'print RUBY_VERSION'` failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => panic!(
            "these tests need Ruby (3.1 here) to make a real heap dump, but `ruby` could not be run: {e}. \
             Install it (Debian: apt-get install ruby) or put it on PATH."
        ),
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let ruby_version = ruby_version();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("real.jsonl");
        let out = Command::new("ruby")
            .args(["-robjspace", "-e", SCRIPT])
            .arg(&path)
            .output()
            .expect("run ruby");
        assert!(
            out.status.success(),
            "ruby failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::metadata(&path).expect("dump written").len();
        let dump = read_path(&path, &ReadOptions::default()).expect("fast reader");
        let slow = slow_read(&path);
        // The temporary directory (and its ~60 MB dump) goes away here.
        Fixture {
            dump,
            slow,
            ruby_version,
            bytes,
        }
    })
}

#[test]
fn dump_is_big_and_traced() {
    let f = fixture();
    let heap = &f.dump.heap;
    eprintln!(
        "ruby {}: {} bytes, {} objects, {} references, {} roots, {} traced",
        f.ruby_version,
        f.bytes,
        heap.len(),
        heap.refs.len(),
        heap.roots.len(),
        heap.facts.traced_objects
    );
    assert!(heap.len() >= 180_000, "{} objects", heap.len());
    assert!(
        heap.facts.traced_objects >= 150_000,
        "{} traced",
        heap.facts.traced_objects
    );
    assert!(heap.tracer.is_some(), "the allocation tracer's DATA object");
    assert_eq!(
        f.slow.bad_lines, 0,
        "Ruby wrote lines serde_json cannot read"
    );
    let d = &f.dump.diagnostics;
    assert_eq!(d.lines, f.slow.lines);
    assert_eq!(d.malformed, 0, "{:?}", d.first_malformed);
    assert_eq!(d.objects, f.slow.objects.len() as u64);
    assert_eq!(d.roots, f.slow.roots.len() as u64);
    assert_eq!(d.fallback_lines, 0);
    assert_eq!(d.recovered, 0);
    assert_eq!(heap.facts.duplicate_addresses, 0);
    assert!(
        heap.index.by_address.is_empty(),
        "Ruby's page order needs no sorted permutation"
    );
}

#[test]
fn memory_per_object_is_bounded() {
    let f = fixture();
    let heap = &f.dump.heap;
    let n = heap.len();
    let refs = heap.refs.len();
    let interner = heap.strings.heap_bytes();
    let total = heap.memory_bytes();
    let bound = 48 * n + 4 * refs + interner;
    let without = total as f64 - interner as f64 - 4.0 * refs as f64;
    eprintln!(
        "memory: {total} bytes for {n} objects and {refs} references = {:.1} bytes/object overall, \
         {:.1} bytes/object without the interner ({interner} bytes) and 4 bytes/reference; bound {bound}",
        total as f64 / n as f64,
        without / n as f64
    );
    assert!(total <= bound, "{total} > {bound}");
}

#[test]
fn references_and_roots_resolve() {
    let f = fixture();
    let heap = &f.dump.heap;
    let present: HashSet<u64> = f.slow.objects.iter().map(|o| o.address).collect();
    let total: usize = f.slow.objects.iter().map(|o| o.refs.len()).sum();
    let dangling = f
        .slow
        .objects
        .iter()
        .flat_map(|o| &o.refs)
        .filter(|a| !present.contains(a))
        .count();
    let root_total: usize = f.slow.roots.iter().map(|r| r.1.len()).sum();
    let root_dangling = f
        .slow
        .roots
        .iter()
        .flat_map(|r| &r.1)
        .filter(|a| !present.contains(a))
        .count();
    eprintln!(
        "references: {total}, dangling {dangling} ({:.4}%); root references: {root_total}, dangling {root_dangling}",
        100.0 * dangling as f64 / total.max(1) as f64
    );
    assert_eq!(heap.facts.dangling_refs, dangling as u64);
    assert_eq!(heap.refs.len(), total - dangling);
    assert!(
        dangling * 1000 <= total,
        "more than 0.1% of references dangle"
    );
    assert_eq!(heap.root_refs.len(), root_total - root_dangling);
    assert!(
        root_dangling * 100 <= root_total.max(100),
        "root references dangle"
    );

    // The same references, in order, object by object.
    for (i, o) in f.slow.objects.iter().enumerate() {
        let id = i as ObjId;
        assert_eq!(heap.address[i], o.address);
        let want: Vec<u64> = o
            .refs
            .iter()
            .copied()
            .filter(|a| present.contains(a))
            .collect();
        let got: Vec<u64> = heap
            .refs(id)
            .iter()
            .map(|&r| heap.address[r as usize])
            .collect();
        assert_eq!(got, want, "references of {:#x}", o.address);
    }
    for (r, (cat, refs)) in heap.roots.iter().zip(&f.slow.roots) {
        assert_eq!(heap.strings.text(r.category), cat.as_str());
        let want: Vec<u64> = refs
            .iter()
            .copied()
            .filter(|a| present.contains(a))
            .collect();
        let got: Vec<u64> = heap
            .root_refs(r)
            .iter()
            .map(|&r| heap.address[r as usize])
            .collect();
        assert_eq!(got, want, "root {cat}");
    }
}

#[test]
fn every_class_resolves() {
    let f = fixture();
    let heap = &f.dump.heap;
    let mut without_class: BTreeMap<String, usize> = BTreeMap::new();
    let mut unresolved = Vec::new();
    for (i, o) in f.slow.objects.iter().enumerate() {
        let id = i as ObjId;
        let t = heap.otype[i];
        if t == types::IMEMO || t == types::NODE {
            assert!(heap.class_of(id).is_none(), "IMEMO/NODE have no class");
            continue;
        }
        match (o.class, heap.class_of(id)) {
            (None, None) => *without_class.entry(o.type_name.clone()).or_default() += 1,
            (Some(a), Some(c)) => {
                assert_eq!(c.address, a);
                if c.object == NO_OBJ {
                    unresolved.push((o.address, o.type_name.clone(), a));
                    continue;
                }
                let ct = heap.otype[c.object as usize];
                assert!(
                    ct == types::CLASS || ct == types::MODULE || ct == types::ICLASS,
                    "class of {:#x} is a {}",
                    o.address,
                    heap.type_name(c.object)
                );
            }
            (want, got) => panic!("{:#x}: class {want:?} vs {got:?}", o.address),
        }
    }
    eprintln!("objects with no class key (hidden objects): {without_class:?}");
    assert!(
        unresolved.is_empty(),
        "classes not in the dump: {unresolved:x?}"
    );

    // The classes the script made are named.
    let names: HashSet<String> = heap
        .ids()
        .filter_map(|id| heap.class_of(id).and_then(|c| c.name.get()))
        .map(|n| heap.strings.text(n).into_owned())
        .collect();
    for want in [
        "Item", "String", "Array", "Tagged", "Float", "Hash", "Proc", "Integer", "Symbol",
    ] {
        assert!(names.contains(want), "no instances of {want}");
    }
    let items = heap
        .ids()
        .filter(|&id| {
            heap.class_of(id)
                .and_then(|c| c.name.get())
                .map(|n| heap.strings.get(n))
                == Some(b"Item")
        })
        .count();
    assert_eq!(items, 40_000);
    let anon = heap
        .ids()
        .filter(|&id| {
            heap.type_name(id) == "OBJECT"
                && heap
                    .class_of(id)
                    .is_some_and(|c| c.object != NO_OBJ && c.name.is_none())
        })
        .count();
    assert!(anon >= 500, "{anon} instances of anonymous classes");
}

#[test]
fn slow_and_fast_readers_agree() {
    let f = fixture();
    let heap = &f.dump.heap;
    assert_eq!(heap.len(), f.slow.objects.len());

    let mut slow_types: BTreeMap<&str, u64> = BTreeMap::new();
    let mut slow_gens: BTreeMap<Option<u64>, u64> = BTreeMap::new();
    let mut slow_memsize = 0u64;
    for o in &f.slow.objects {
        *slow_types.entry(&o.type_name).or_default() += 1;
        *slow_gens.entry(o.generation).or_default() += 1;
        slow_memsize += o.memsize;
    }
    let mut fast_types: BTreeMap<&str, u64> = BTreeMap::new();
    let mut fast_gens: BTreeMap<Option<u64>, u64> = BTreeMap::new();
    let mut fast_memsize = 0u64;
    for id in heap.ids() {
        *fast_types.entry(heap.type_name(id)).or_default() += 1;
        *fast_gens
            .entry(heap.generation(id).map(u64::from))
            .or_default() += 1;
        fast_memsize += heap.memsize(id);
    }
    eprintln!("types: {fast_types:?}");
    assert_eq!(fast_types, slow_types);
    assert_eq!(fast_gens, slow_gens);
    assert_eq!(fast_memsize, slow_memsize);

    type Key = (u64, String, Option<String>, Option<u64>, Option<u64>);
    let mut slow: Vec<Key> = f
        .slow
        .objects
        .iter()
        .map(|o| {
            (
                o.address,
                o.type_name.clone(),
                o.file.clone(),
                o.line,
                o.generation,
            )
        })
        .collect();
    let mut fast: Vec<Key> = heap
        .ids()
        .map(|id| {
            let loc = heap.location(id);
            (
                heap.address[id as usize],
                heap.type_name(id).to_string(),
                loc.map(|l| heap.strings.text(l.file).into_owned()),
                loc.map(|l| l.line as u64),
                heap.generation(id).map(u64::from),
            )
        })
        .collect();
    slow.sort();
    fast.sort();
    assert!(
        slow == fast,
        "the multisets of (address, type, file, line, generation) differ"
    );

    // Per-object memsize too (the order is the file's in both).
    let memsizes: HashMap<u64, u64> = f
        .slow
        .objects
        .iter()
        .map(|o| (o.address, o.memsize))
        .collect();
    for id in heap.ids() {
        assert_eq!(heap.memsize(id), memsizes[&heap.address[id as usize]]);
    }
}
