//! Dominators and retained sizes on a real heap dump from the installed Ruby
//! (3.1 on these machines), made at test time: about 100,000 objects with
//! rings of objects (cycles), a self-referencing Array, a diamond, a large
//! Hash of Arrays of Strings, and two `ObjectSpace::WeakMap`s. Retained sizes
//! are checked against a slow oracle: search from the roots with the object
//! removed; what is no longer found is what the object retains.
//!
//! Needs `ruby` on PATH (Debian: `apt-get install ruby`); the test fails with
//! a clear message when it is missing.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use heapscope_graph::{shortest_paths, Dominators, Graph, GraphOptions};
use heapscope_heap::{types, Heap, ObjId, NO_CLASS, NO_OBJ};
use heapscope_reader::{read_path, ReadOptions};

const SCRIPT: &str = r##"
require "objspace"
ObjectSpace.trace_object_allocations_start
class Node
  attr_accessor :nxt, :payload
  def initialize(payload)
    @payload = payload
  end
end
# 300 rings of 40 Nodes (a cycle each), only each ring's head held.
$rings = Array.new(300) do |r|
  nodes = Array.new(40) { |i| Node.new("ring-#{r}-#{i}") }
  nodes.each_with_index { |n, i| n.nxt = nodes[(i + 1) % nodes.size] }
  nodes[0]
end
# A large Hash of Arrays of Strings.
$big = {}
6_000.times { |i| $big["key-#{i}"] = Array.new(4) { |j| "value-#{i}-#{j}" } }
$self_loop = []
$self_loop << $self_loop
# A diamond: the outer Array holds two Arrays that share one String.
def make_diamond
  s = "shared" * 20
  [[s], [s]]
end
$diamond = make_diamond
$items = Array.new(10_000) { |i| [i.to_s] }
# WeakMaps: one over strings also held strongly, one empty.
$strong = Array.new(3_000) { |i| "strong-#{i}" }
$wm = ObjectSpace::WeakMap.new
$strong.each_slice(2) { |a, b| $wm[a] = b }
$wm_empty = ObjectSpace::WeakMap.new
GC.start
File.open(ARGV[0], "w") { |f| ObjectSpace.dump_all(output: f) }
addr = ->(o) { ObjectSpace.dump(o)[/"address":\s*"(0x\h+)"/, 1] }
File.open(ARGV[1], "w") do |f|
  { "rings" => $rings, "ring0" => $rings[0], "big" => $big, "self_loop" => $self_loop,
    "shared" => $diamond[0][0], "diamond" => $diamond, "wm" => $wm, "wm_empty" => $wm_empty,
    "strong" => $strong }.each { |k, v| f.puts "#{k} #{addr.(v)}" }
end
"##;

fn make_dump() -> (PathBuf, HashMap<String, u64>) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("graph_real_dump");
    std::fs::create_dir_all(&dir).expect("create the temp dir");
    let dump = dir.join("heap.json");
    let names = dir.join("names.txt");
    let out = Command::new("ruby")
        .arg("-e")
        .arg(SCRIPT)
        .arg(&dump)
        .arg(&names)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "this test needs Ruby (3.1 here) to make a real heap dump, but `ruby` could not \
                 be run: {e}. Install it (Debian: apt-get install ruby) or put it on PATH."
            )
        });
    assert!(
        out.status.success(),
        "ruby failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = std::fs::read_to_string(&names)
        .expect("read the names file")
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').expect("name address");
            let a = u64::from_str_radix(v.trim_start_matches("0x"), 16).expect("hex address");
            (k.to_string(), a)
        })
        .collect();
    (dump, names)
}

/// Successors as the crate documents them, derived from the heap columns
/// here: references, then the class edge (for an IMEMO of a dump before
/// Ruby 3.2, its hidden klass-word reference); none for WeakMaps unless
/// `with_weak`. CSR.
fn adjacency(h: &Heap, with_weak: bool) -> (Vec<usize>, Vec<u32>) {
    let weakmap = |v: ObjId| {
        h.otype[v as usize] == types::DATA
            && matches!(h.detail_str(v), Some(b"weakmap" | b"WeakMap"))
    };
    let mut off = vec![0usize];
    let mut adj = Vec::new();
    for v in h.ids() {
        if with_weak || !weakmap(v) {
            adj.extend_from_slice(h.refs(v));
            let c = h.class[v as usize];
            if c != NO_CLASS && h.classes[c as usize].object != NO_OBJ {
                adj.push(h.classes[c as usize].object);
            }
            if let Some(&k) = h.imemo_klass.get(&v) {
                adj.push(k);
            }
        }
        off.push(adj.len());
    }
    (off, adj)
}

fn roots(h: &Heap) -> Vec<ObjId> {
    h.roots
        .iter()
        .flat_map(|r| h.root_refs(r).iter().copied())
        .collect()
}

/// Reachable from `starts` without entering `skip`; `dist[v]` = nodes on a
/// shortest path from the roots (a root-referenced object is at 1), 0 if unreached.
fn bfs(csr: &(Vec<usize>, Vec<u32>), starts: &[ObjId], skip: Option<ObjId>) -> Vec<u32> {
    let (off, adj) = csr;
    let n = off.len() - 1;
    let mut dist = vec![0u32; n];
    let mut queue = VecDeque::new();
    for &s in starts {
        if Some(s) != skip && dist[s as usize] == 0 {
            dist[s as usize] = 1;
            queue.push_back(s);
        }
    }
    while let Some(v) = queue.pop_front() {
        let d = dist[v as usize];
        for &w in &adj[off[v as usize]..off[v as usize + 1]] {
            if Some(w) != skip && dist[w as usize] == 0 {
                dist[w as usize] = d + 1;
                queue.push_back(w);
            }
        }
    }
    dist
}

#[test]
fn real_ruby_dump() {
    let t0 = Instant::now();
    let (path, names) = make_dump();
    let dump = read_path(
        &path,
        &ReadOptions {
            references: true,
            ..Default::default()
        },
    )
    .expect("read the dump");
    let h = &dump.heap;
    let n = h.len();
    assert!(n > 90_000, "expected about 100,000 objects, got {n}");
    let id = |name: &str| {
        let a = names[name];
        h.find(a)
            .unwrap_or_else(|| panic!("${name} ({a:#x}) is not in the dump"))
    };
    let t_read = t0.elapsed();

    let g = Graph::new(h, GraphOptions::default());
    let d = Dominators::compute(&g);
    let root = g.root();
    let t_dom = t0.elapsed();

    // Reachability: exactly what a search over strong edges finds.
    let strong = adjacency(h, false);
    let starts = roots(h);
    let dist = bfs(&strong, &starts, None);
    let reachable: Vec<ObjId> = h.ids().filter(|&v| dist[v as usize] != 0).collect();
    for v in h.ids() {
        assert_eq!(
            d.is_reachable(v),
            dist[v as usize] != 0,
            "reachability of {v}"
        );
    }
    let unreachable = d.unreachable().count();
    assert_eq!(reachable.len() + unreachable, n);
    assert_eq!(d.preorder().len(), reachable.len() + 1);

    // Totals.
    let reachable_bytes: u64 = reachable.iter().map(|&v| g.shallow(v)).sum();
    assert_eq!(d.reachable_bytes(), reachable_bytes);
    let top: u64 = d.children(root).iter().map(|&c| d.retained(c)).sum();
    assert_eq!(top, d.reachable_bytes());
    for &v in &reachable {
        assert!(d.retained(v) >= g.shallow(v), "retained < shallow for {v}");
        let kids: u64 = d.children(v).iter().map(|&c| d.retained(c)).sum();
        assert_eq!(d.retained(v), g.shallow(v) + kids, "retained of {v}");
    }
    for v in d.unreachable() {
        assert_eq!(d.retained(v), 0);
        assert!(d.children(v).is_empty());
    }
    let tracer = h.tracer.expect("allocation tracing was on");
    assert_eq!(g.shallow(tracer), 0, "the tracer's table is not app memory");
    assert!(h.memsize(tracer) > 0);

    // Retained sizes against the removal oracle, for 200 objects: the named
    // ones, the 20 that retain most, and random others.
    let mut picks: Vec<ObjId> = ["rings", "ring0", "big", "self_loop", "shared", "diamond"]
        .iter()
        .map(|&k| id(k))
        .collect();
    let mut by_retained = reachable.clone();
    by_retained.sort_by_key(|&v| std::cmp::Reverse(d.retained(v)));
    picks.extend(by_retained.iter().take(20));
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    while picks.len() < 200 {
        picks.push(reachable[(next() % reachable.len() as u64) as usize]);
    }
    for &x in &picks {
        let without = bfs(&strong, &starts, Some(x));
        let lost: u64 = reachable
            .iter()
            .filter(|&&v| without[v as usize] == 0)
            .map(|&v| g.shallow(v))
            .sum();
        assert_eq!(d.retained(x), lost, "retained of {x} ({})", h.type_name(x));
    }
    let t_oracle = t0.elapsed();

    // The Hash's Arrays are held by it alone: it dominates them.
    let big = id("big");
    let arrays: Vec<ObjId> = h
        .refs(big)
        .iter()
        .copied()
        .filter(|&v| h.otype[v as usize] == types::ARRAY)
        .collect();
    assert_eq!(arrays.len(), 6_000);
    for &a in &arrays {
        assert_eq!(d.idom(a), Some(big));
        assert_eq!(h.refs(a).len(), 4);
    }
    let arrays_retained: u64 = arrays.iter().map(|&a| d.retained(a)).sum();
    assert!(d.retained(big) >= g.shallow(big) + arrays_retained);
    // A ring: each Node dominates the next, so the head retains the ring.
    let head = id("ring0");
    assert_eq!(d.idom(head), Some(id("rings")));
    let mut x = head;
    for _ in 0..39 {
        let next = *h
            .refs(x)
            .iter()
            .find(|&&w| h.type_name(w) == "OBJECT")
            .expect("next node");
        assert_eq!(d.idom(next), Some(x));
        x = next;
    }
    assert_eq!(d.chain(x).len(), d.chain(head).len() + 39);
    // The diamond's shared String is dominated by the outer Array only.
    assert_eq!(d.idom(id("shared")), Some(id("diamond")));
    assert!(d.retained(id("diamond")) >= d.retained(id("shared")) + g.shallow(id("diamond")));

    // WeakMaps: their references are weak. What only they reference (the
    // empty map's finalizer lambda) is unreachable; what they reference and
    // something else also holds is reachable, and they do not dominate it.
    let maps: Vec<ObjId> = h.ids().filter(|&v| g.is_weak_container(v)).collect();
    assert!(maps.contains(&id("wm")) && maps.contains(&id("wm_empty")));
    for &m in &maps {
        assert!(g.succs(m).is_empty());
        assert!(
            !h.refs(m).is_empty(),
            "a 3.1 WeakMap references its finalizer"
        );
    }
    let all = adjacency(h, true);
    let dist_all = bfs(&all, &starts, None);
    let weak_only: Vec<ObjId> = h
        .ids()
        .filter(|&v| dist_all[v as usize] != 0 && dist[v as usize] == 0)
        .collect();
    assert!(!weak_only.is_empty(), "something is held only by a WeakMap");
    for &v in &weak_only {
        assert!(!d.is_reachable(v), "{v} is held only weakly");
    }
    for &r in h.refs(id("wm_empty")) {
        assert!(!d.is_reachable(r), "the empty WeakMap's finalizer");
    }
    for &m in &maps {
        for &r in h.refs(m) {
            if d.is_reachable(r) {
                assert!(!d.chain(r).contains(&m));
            }
        }
    }
    let strong_arr = id("strong");
    for &s in h.refs(strong_arr) {
        assert!(d.is_reachable(s));
        assert!(!d.chain(s).iter().any(|c| maps.contains(c)));
    }

    // Shortest paths: as long as the search from the roots says.
    let root_referenced: std::collections::HashSet<ObjId> = starts.iter().copied().collect();
    for _ in 0..50 {
        let t = reachable[(next() % reachable.len() as u64) as usize];
        let paths = shortest_paths(&g, t, 5);
        assert!(!paths.is_empty());
        assert_eq!(
            paths[0].nodes.len(),
            dist[t as usize] as usize,
            "path to {t}"
        );
        let mut firsts = std::collections::HashSet::new();
        for p in &paths {
            assert!(root_referenced.contains(&p.nodes[0]));
            assert!(firsts.insert(p.nodes[0]), "distinct starts");
            assert_eq!(p.nodes.last(), Some(&t));
            for w in p.nodes.windows(2) {
                assert!(g.succs(w[0]).contains(&w[1]), "edge {w:?}");
            }
        }
    }
    eprintln!(
        "{n} objects ({} reachable, {unreachable} unreachable), read {:?}, dominators {:?}, \
         oracle {:?}, total {:?}",
        reachable.len(),
        t_read,
        t_dom - t_read,
        t_oracle - t_dom,
        t0.elapsed()
    );
}
