//! Random heaps for the graph tests, and a slow, obviously-correct oracle.
//!
//! Shared by `crates/graph/tests/dominators.rs` and (through `#[path]`)
//! `crates/analysis/tests/retained_groups.rs`; each uses part of it.
#![allow(dead_code)]

use std::collections::VecDeque;

use heapscope_heap::{
    Detail, Heap, HeapBuilder, ObjectRecord, PartialHeap, RootRecord, TRACER_STRUCT,
};
use proptest::prelude::*;

pub const PAGE: u64 = 1 << 14;
pub const BASE: u64 = 0x7f00_0000_0000;
/// Objects live on pages 0..OBJ_PAGES; page DANGLING_PAGE holds none.
const OBJ_PAGES: u64 = 4;
const DANGLING_PAGE: u64 = 6;
const SLOTS: u64 = 400;

pub const CATEGORIES: &[&str] = &["vm", "machine_context", "global_list", "finalizers"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Object,
    Class,
    Array,
    Hash,
    Str,
    /// IMEMO `env`: in these dumps (no shapes, so before Ruby 3.2) its
    /// `class` is its iseq, a hidden reference: an edge to the class target.
    Imemo,
    /// IMEMO `callcache`: its `class` is weak, never an edge.
    ImemoCallcache,
    /// A plain DATA object (strong references).
    Data,
    /// DATA `weakmap`: no outgoing edges at all.
    WeakMap,
    /// DATA `weakkeymap`: its references are its values, held strongly.
    WeakKeyMap,
    /// DATA with the allocation tracer's struct.
    Tracer,
}

impl Kind {
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Object => "OBJECT",
            Kind::Class => "CLASS",
            Kind::Array => "ARRAY",
            Kind::Hash => "HASH",
            Kind::Str => "STRING",
            Kind::Imemo | Kind::ImemoCallcache => "IMEMO",
            Kind::Data | Kind::WeakMap | Kind::WeakKeyMap | Kind::Tracer => "DATA",
        }
    }

    pub fn is_weak(self) -> bool {
        matches!(self, Kind::WeakMap)
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        6 => Just(Kind::Object),
        3 => Just(Kind::Class),
        3 => Just(Kind::Array),
        2 => Just(Kind::Hash),
        2 => Just(Kind::Str),
        1 => Just(Kind::Imemo),
        1 => Just(Kind::ImemoCallcache),
        1 => Just(Kind::Data),
        1 => Just(Kind::WeakMap),
        1 => Just(Kind::WeakKeyMap),
        1 => Just(Kind::Tracer),
    ]
}

#[derive(Debug, Clone)]
pub struct ObjSpec {
    pub kind: Kind,
    pub memsize: u64,
    /// Reference targets: `t % (n + 3)`; values `>= n` are dangling addresses.
    pub refs: Vec<u8>,
    /// Class pick (see [`Spec::class_target`]).
    pub class: Option<u8>,
    pub generation: u8,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub objs: Vec<ObjSpec>,
    /// ROOT records: category index and reference picks (as for `refs`).
    pub roots: Vec<(u8, Vec<u8>)>,
    /// Chooses addresses and file layout.
    pub seed: u64,
    pub sorted_layout: bool,
    pub per_partial: usize,
    pub include_tracer: bool,
    /// References mostly go to nearby objects (deep dominator trees, short
    /// cycles) rather than anywhere.
    pub local: bool,
    /// Objects made the heapscope agent's (a `Heapscope::` class name, or an
    /// allocation in the agent's file); empty in most tests.
    pub agent: Vec<bool>,
}

fn obj_spec() -> impl Strategy<Value = ObjSpec> {
    (
        kind(),
        prop_oneof![
            20 => 0u64..2_000,
            1 => Just(0u64),
            1 => Just(u32::MAX as u64 + 7),
        ],
        prop::collection::vec(any::<u8>(), 0..5),
        prop::option::weighted(0.5, any::<u8>()),
        0u8..4,
    )
        .prop_map(|(kind, memsize, refs, class, generation)| ObjSpec {
            kind,
            memsize,
            refs,
            class,
            generation,
        })
}

pub fn spec(max_objects: usize) -> impl Strategy<Value = Spec> {
    (
        any::<bool>(),
        prop::collection::vec(obj_spec(), 0..=max_objects),
        prop::collection::vec(
            (
                0u8..CATEGORIES.len() as u8,
                prop::collection::vec(any::<u8>(), 0..4),
            ),
            0..4,
        ),
        any::<u64>(),
        any::<bool>(),
        1usize..50,
        any::<bool>(),
    )
        .prop_map(
            |(local, objs, roots, seed, sorted_layout, per_partial, include_tracer)| Spec {
                objs,
                roots,
                seed,
                sorted_layout,
                per_partial,
                include_tracer,
                local,
                agent: Vec::new(),
            },
        )
}

/// A heap built from a [`Spec`], with the edges the oracle derives from the
/// spec itself (not from the graph crate).
pub struct Built {
    pub heap: Heap,
    pub n: usize,
    pub addresses: Vec<u64>,
    /// Strong successors of each object (duplicates kept).
    pub succ: Vec<Vec<usize>>,
    /// Root-referenced objects with their category names (duplicates kept).
    pub root_refs: Vec<(usize, &'static str)>,
    /// Shallow size of each object as retained sizes count it.
    pub shallow: Vec<u64>,
    pub kinds: Vec<Kind>,
    pub generations: Vec<u8>,
}

impl Spec {
    /// The object a reference pick of object `from` (None: of a root) names.
    fn target(&self, from: Option<usize>, t: u8) -> Option<usize> {
        let n = self.objs.len();
        match from {
            Some(i) if self.local => {
                // -2..=4 objects away; 250.. dangle.
                let to = i as isize + (t % 7) as isize - 2;
                (t < 250 && to >= 0 && (to as usize) < n).then_some(to as usize)
            }
            _ => {
                let t = t as usize % (n + 3);
                (t < n).then_some(t)
            }
        }
    }

    fn class_target(&self, c: u8) -> Option<usize> {
        let n = self.objs.len();
        let classes: Vec<usize> = (0..n)
            .filter(|&i| self.objs[i].kind == Kind::Class)
            .collect();
        if c.is_multiple_of(4) || classes.is_empty() {
            let t = (c / 4) as usize % (n + 1);
            (t < n).then_some(t)
        } else {
            Some(classes[(c / 4) as usize % classes.len()])
        }
    }

    pub fn build(&self) -> Built {
        let n = self.objs.len();
        // Distinct addresses, 40 bytes apart, on a few pages.
        let mut rng = self.seed | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut slots: Vec<u64> = (0..OBJ_PAGES * SLOTS).collect();
        for i in 0..n.min(slots.len()) {
            let j = i + (next() % (slots.len() - i) as u64) as usize;
            slots.swap(i, j);
        }
        let mut chosen: Vec<u64> = slots[..n].to_vec();
        if self.sorted_layout {
            chosen.sort_unstable();
        }
        let addresses: Vec<u64> = chosen
            .iter()
            .map(|&s| BASE + (s / SLOTS) * PAGE + (s % SLOTS) * 40)
            .collect();
        let dangling = |t: u8| BASE + DANGLING_PAGE * PAGE + (t as u64) * 40;
        let addr_of = |from: Option<usize>, t: u8| match self.target(from, t) {
            Some(i) => addresses[i],
            None => dangling(t),
        };

        let tracer = self.objs.iter().position(|o| o.kind == Kind::Tracer);
        let mut b = HeapBuilder::new(true, n);
        let mut p = PartialHeap::new(true);
        let mut ref_addrs: Vec<Vec<u64>> = Vec::new();
        for (i, o) in self.objs.iter().enumerate() {
            ref_addrs.push(o.refs.iter().map(|&t| addr_of(Some(i), t)).collect());
        }
        let root_addrs: Vec<Vec<u64>> = self
            .roots
            .iter()
            .map(|(_, refs)| refs.iter().map(|&t| addr_of(None, t)).collect())
            .collect();
        // Roots first, as Ruby writes them.
        for ((cat, _), refs) in self.roots.iter().zip(&root_addrs) {
            p.push_root(&RootRecord {
                category: CATEGORIES[*cat as usize].as_bytes(),
                refs,
            });
        }
        let agent = |i: usize| self.agent.get(i).copied().unwrap_or(false);
        let names: Vec<String> = (0..n)
            .map(|i| {
                if agent(i) {
                    format!("Heapscope::C{i}")
                } else {
                    format!("C{i}")
                }
            })
            .collect();
        for (i, o) in self.objs.iter().enumerate() {
            let class_addr = o.class.map(|c| match self.class_target(c) {
                Some(t) => addresses[t],
                None => dangling(200),
            });
            let detail = match o.kind {
                Kind::Class => Detail::Str(names[i].as_bytes()),
                Kind::WeakMap => Detail::Str(b"weakmap"),
                Kind::WeakKeyMap => Detail::Str(b"weakkeymap"),
                Kind::Tracer => Detail::Str(TRACER_STRUCT),
                Kind::Data => Detail::Str(b"strong_thing"),
                Kind::Imemo => Detail::Str(b"env"),
                Kind::ImemoCallcache => Detail::Str(b"callcache"),
                _ => Detail::None,
            };
            p.push_object(&ObjectRecord {
                address: addresses[i],
                type_name: o.kind.type_name().as_bytes(),
                class: class_addr,
                flags: 0,
                memsize: o.memsize,
                file: Some(if agent(i) {
                    b"/gems/heapscope/lib/heapscope/agent.rb".as_slice()
                } else {
                    b"/app/x.rb".as_slice()
                }),
                line: Some(i as u32),
                method: None,
                generation: Some(o.generation as u32),
                detail,
                refs: &ref_addrs[i],
                object_id: None,
                real_class_name: None,
            });
            if (i + 1) % self.per_partial == 0 {
                b.append(std::mem::replace(&mut p, PartialHeap::new(true)));
            }
        }
        b.append(p);
        let heap = b.finish();

        // The oracle's edges, from the spec.
        let mut succ = vec![Vec::new(); n];
        for (i, o) in self.objs.iter().enumerate() {
            if o.kind.is_weak() {
                continue;
            }
            succ[i].extend(o.refs.iter().filter_map(|&t| self.target(Some(i), t)));
            if o.kind != Kind::ImemoCallcache {
                if let Some(c) = o.class.and_then(|c| self.class_target(c)) {
                    succ[i].push(c);
                }
            }
        }
        let root_refs = self
            .roots
            .iter()
            .flat_map(|(cat, refs)| {
                refs.iter()
                    .filter_map(|&t| self.target(None, t))
                    .map(|t| (t, CATEGORIES[*cat as usize]))
                    .collect::<Vec<_>>()
            })
            .collect();
        let shallow = (0..n)
            .map(|i| {
                if Some(i) == tracer && !self.include_tracer {
                    0
                } else {
                    self.objs[i].memsize
                }
            })
            .collect();
        Built {
            heap,
            n,
            addresses,
            succ,
            root_refs,
            shallow,
            kinds: self.objs.iter().map(|o| o.kind).collect(),
            generations: self.objs.iter().map(|o| o.generation).collect(),
        }
    }
}

/// Objects reachable from `starts` along `succ`, never entering `skip`.
pub fn bfs(succ: &[Vec<usize>], starts: &[usize], skip: Option<usize>) -> Vec<bool> {
    let mut seen = vec![false; succ.len()];
    let mut queue = VecDeque::new();
    for &s in starts {
        if Some(s) != skip && !seen[s] {
            seen[s] = true;
            queue.push_back(s);
        }
    }
    while let Some(v) = queue.pop_front() {
        for &w in &succ[v] {
            if Some(w) != skip && !seen[w] {
                seen[w] = true;
                queue.push_back(w);
            }
        }
    }
    seen
}

/// BFS distances (in nodes) from `starts`: a start is at distance 1.
pub fn distances(succ: &[Vec<usize>], starts: &[usize]) -> Vec<Option<usize>> {
    let mut dist = vec![None; succ.len()];
    let mut queue = VecDeque::new();
    for &s in starts {
        if dist[s].is_none() {
            dist[s] = Some(1);
            queue.push_back(s);
        }
    }
    while let Some(v) = queue.pop_front() {
        let d = dist[v].unwrap();
        for &w in &succ[v] {
            if dist[w].is_none() {
                dist[w] = Some(d + 1);
                queue.push_back(w);
            }
        }
    }
    dist
}

/// The slow oracle: reachability and dominance by removal.
pub struct Oracle {
    pub n: usize,
    pub reach: Vec<bool>,
    /// `dominated[x][y]`: y becomes unreachable when x is removed (x included).
    /// Empty for unreachable x.
    pub dominated: Vec<Vec<bool>>,
    /// `Some(d)` with `d == n` for the super-root; `None` when unreachable.
    pub idom: Vec<Option<usize>>,
    pub retained: Vec<u64>,
}

impl Oracle {
    pub fn new(b: &Built) -> Oracle {
        let n = b.n;
        let starts: Vec<usize> = b.root_refs.iter().map(|&(t, _)| t).collect();
        let reach = bfs(&b.succ, &starts, None);
        let dominated: Vec<Vec<bool>> = (0..n)
            .map(|x| {
                if !reach[x] {
                    return Vec::new();
                }
                let without = bfs(&b.succ, &starts, Some(x));
                (0..n).map(|y| reach[y] && !without[y]).collect()
            })
            .collect();
        let retained = (0..n)
            .map(|x| {
                (0..n)
                    .filter(|&y| dominated[x].get(y).copied().unwrap_or(false))
                    .map(|y| b.shallow[y])
                    .sum()
            })
            .collect();
        let dominates = |x: usize, y: usize| dominated[x].get(y).copied().unwrap_or(false);
        let idom = (0..n)
            .map(|y| {
                if !reach[y] {
                    return None;
                }
                let strict: Vec<usize> = (0..n).filter(|&x| x != y && dominates(x, y)).collect();
                let candidates: Vec<usize> = strict
                    .iter()
                    .copied()
                    .filter(|&d| strict.iter().all(|&o| o == d || dominates(o, d)))
                    .collect();
                assert!(
                    candidates.len() <= 1,
                    "oracle: several immediate dominators of {y}: {candidates:?}"
                );
                assert_eq!(
                    candidates.is_empty(),
                    strict.is_empty(),
                    "oracle: no immediate dominator among {strict:?} for {y}"
                );
                Some(candidates.first().copied().unwrap_or(n))
            })
            .collect();
        Oracle {
            n,
            reach,
            dominated,
            idom,
            retained,
        }
    }

    pub fn dominates(&self, x: usize, y: usize) -> bool {
        self.dominated[x].get(y).copied().unwrap_or(false)
    }

    /// Shallow bytes of the union of what `members` dominate.
    pub fn union_retained(&self, b: &Built, members: &[usize]) -> u64 {
        (0..self.n)
            .filter(|&y| members.iter().any(|&x| self.dominates(x, y)))
            .map(|y| b.shallow[y])
            .sum()
    }

    pub fn reachable_bytes(&self, b: &Built) -> u64 {
        (0..self.n)
            .filter(|&y| self.reach[y])
            .map(|y| b.shallow[y])
            .sum()
    }
}
