//! The object graph of one heap, and what keeps what alive.
//!
//! Nodes are the heap's objects (`ObjId`) plus one super-root ([`Graph::root`]).
//! Edges are each object's `references` plus the edge object -> its class,
//! which Ruby's GC marks but dumps leave out. The super-root has an edge to
//! every object a ROOT record references, labelled with the root's category.
//!
//! Weak edges are left out of reachability, dominators and paths: the
//! outgoing references of `ObjectSpace::WeakMap` and `ObjectSpace::WeakKeyMap`
//! objects (DATA records whose struct is `weakmap` / `weakkeymap`), because
//! their entries do not keep their targets alive (`WeakRef` is built on them).
//!
//! [`Dominators`] computes the dominator tree with the Semi-NCA algorithm
//! over these CSR arrays, iteratively (no recursion, no per-node maps), and
//! the retained size of every object in one pass over it.

mod dominators;
mod escape;
mod paths;

use heapscope_heap::{types, Heap, ObjId, StrId, NO_CLASS, NO_OBJ};

pub use dominators::Dominators;
pub use escape::{escape_control, escape_control_text};
pub use paths::{shortest_paths, RootPath};

/// DATA `struct` names whose references are weak.
pub const WEAK_STRUCTS: &[&[u8]] = &[b"weakmap", b"weakkeymap", b"WeakMap", b"WeakKeyMap"];

#[derive(Debug, Clone, Copy, Default)]
pub struct GraphOptions {
    /// Count the allocation tracer's table as app memory (its shallow size is
    /// 0 otherwise).
    pub include_tracer: bool,
}

/// The object graph: forward edges are read from the heap as they are;
/// reverse edges are built once, as a CSR array.
pub struct Graph<'h> {
    pub heap: &'h Heap,
    /// Number of objects; the super-root is node `n`.
    n: u32,
    /// Objects whose outgoing edges are weak (see the crate docs).
    weak: Vec<bool>,
    /// The super-root's edges, and the root category of each.
    root_edges: Vec<ObjId>,
    root_edge_category: Vec<StrId>,
    /// Reverse edges: `pred[pred_offsets[v]..pred_offsets[v + 1]]`. The
    /// super-root appears as a predecessor of root-referenced objects.
    pred_offsets: Vec<u32>,
    pred: Vec<u32>,
    include_tracer: bool,
}

impl<'h> Graph<'h> {
    /// Builds the graph. The heap must have been read with references.
    pub fn new(heap: &'h Heap, opts: GraphOptions) -> Graph<'h> {
        let n = heap.len() as u32;
        let weak_ids: Vec<u32> = WEAK_STRUCTS
            .iter()
            .filter_map(|s| heap.strings.find(s))
            .map(|s| s.0)
            .collect();
        let weak: Vec<bool> = (0..n)
            .map(|id| {
                heap.otype[id as usize] == types::DATA
                    && weak_ids.contains(&heap.detail[id as usize])
            })
            .collect();
        let mut root_edges = Vec::new();
        let mut root_edge_category = Vec::new();
        for root in &heap.roots {
            for &r in heap.root_refs(root) {
                root_edges.push(r);
                root_edge_category.push(root.category);
            }
        }
        let mut g = Graph {
            heap,
            n,
            weak,
            root_edges,
            root_edge_category,
            pred_offsets: Vec::new(),
            pred: Vec::new(),
            include_tracer: opts.include_tracer,
        };
        g.build_preds();
        g
    }

    fn build_preds(&mut self) {
        let nodes = self.n as usize + 1;
        let mut counts = vec![0u32; nodes + 1];
        for v in 0..=self.n {
            self.for_each_succ(v, |w| counts[w as usize + 1] += 1);
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let mut pred = vec![0u32; counts[nodes] as usize];
        let mut fill = counts.clone();
        for v in 0..=self.n {
            self.for_each_succ(v, |w| {
                let slot = &mut fill[w as usize];
                pred[*slot as usize] = v;
                *slot += 1;
            });
        }
        self.pred_offsets = counts;
        self.pred = pred;
    }

    /// The super-root's node id.
    pub fn root(&self) -> u32 {
        self.n
    }

    /// Number of nodes, the super-root included.
    pub fn node_count(&self) -> usize {
        self.n as usize + 1
    }

    /// Calls `f` for every strong edge `v -> w`, in the order of `references`,
    /// then the class edge.
    #[inline]
    pub fn for_each_succ(&self, v: u32, mut f: impl FnMut(u32)) {
        if v == self.n {
            self.root_edges.iter().for_each(|&w| f(w));
            return;
        }
        if self.weak[v as usize] {
            return;
        }
        for &w in self.heap.refs(v) {
            f(w);
        }
        if let Some(c) = self.class_edge(v) {
            f(c);
        }
    }

    /// The implicit edge from an object to its class, when the class is in the dump.
    #[inline]
    pub fn class_edge(&self, v: ObjId) -> Option<ObjId> {
        let c = self.heap.class[v as usize];
        if c == NO_CLASS {
            return None;
        }
        let obj = self.heap.classes[c as usize].object;
        (obj != NO_OBJ).then_some(obj)
    }

    /// The successors of `v`, collected (for callers that need a slice).
    pub fn succs(&self, v: u32) -> Vec<u32> {
        let mut out = Vec::new();
        self.for_each_succ(v, |w| out.push(w));
        out
    }

    /// Objects (or the super-root) with a strong edge to `v`.
    pub fn preds(&self, v: u32) -> &[u32] {
        let v = v as usize;
        &self.pred[self.pred_offsets[v] as usize..self.pred_offsets[v + 1] as usize]
    }

    /// Root categories under which the super-root references `v` (empty if none).
    pub fn root_categories_of(&self, v: ObjId) -> Vec<StrId> {
        let mut cats: Vec<StrId> = self
            .root_edges
            .iter()
            .zip(&self.root_edge_category)
            .filter(|(&w, _)| w == v)
            .map(|(_, &c)| c)
            .collect();
        cats.sort();
        cats.dedup();
        cats
    }

    /// Whether `v`'s outgoing references are weak.
    pub fn is_weak_container(&self, v: ObjId) -> bool {
        self.weak[v as usize]
    }

    /// Shallow size used by retained-size analyses: memsize, except 0 for the
    /// allocation tracer's table unless it was asked for.
    pub fn shallow(&self, v: ObjId) -> u64 {
        if !self.include_tracer && self.heap.is_tracer(v) {
            0
        } else {
            self.heap.memsize(v)
        }
    }
}
