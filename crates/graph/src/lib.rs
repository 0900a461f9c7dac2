//! The object graph of one heap, and what keeps what alive.
//!
//! Nodes are the heap's objects (`ObjId`) plus one super-root ([`Graph::root`]).
//! Edges are each object's `references` plus the edge object -> its class,
//! which Ruby's GC marks but dumps leave out. The super-root has an edge to
//! every object a ROOT record references, labelled with the root's category.
//!
//! Dumps before Ruby 3.2 (no SHAPE records, no `shape_id`) also hide one
//! reference of some IMEMOs: objspace leaves out of `references` whatever
//! equals the object's klass word and prints it as `class`, and for a
//! constant cache (its value), env (iseq), ment (defined class), cref
//! (refinements), svar (cref_or_me) and iseq (wrapper) that word is a field
//! the GC marks. Those IMEMOs get an edge to their `class`
//! ([`Heap::imemo_klass`]); callcache (whose klass is weak) and callinfo do
//! not. From 3.2 on IMEMOs carry no `class` and `references` are complete.
//!
//! Weak edges are left out of reachability, dominators and paths: the
//! outgoing references of `ObjectSpace::WeakMap` objects (DATA records whose
//! struct is `weakmap`), because its entries do not keep their targets alive
//! (`WeakRef` is built on it). An `ObjectSpace::WeakKeyMap` (`weakkeymap`,
//! Ruby 3.3+) is different: its `references` are its values, which Ruby
//! holds strongly while their key lives (the keys, which it holds weakly,
//! are not listed), so they are ordinary edges.
//!
//! Roots: `machine_context` roots are conservative (values found on a C
//! stack). They do keep objects alive, so they count for reachability and
//! dominators, but [`shortest_paths`] shows paths from precise roots first.
//! [`Graph::root_coverage`] says how far "no root reaches it" can be taken
//! as "the next GC frees it" in a given dump.
//!
//! [`Dominators`] computes the dominator tree with the Semi-NCA algorithm
//! over these CSR arrays, iteratively (no recursion, no per-node maps), and
//! the retained size of every object in one pass over it.

mod dominators;
mod escape;
mod paths;

use heapscope_heap::{types, AgentShare, FastMap, Heap, ObjId, StrId, NO_CLASS, NO_OBJ};

pub use dominators::Dominators;
pub use escape::{escape_control, escape_control_text};
pub use paths::{shortest_paths, RootPath};

/// DATA `struct` names whose references are weak (`ObjectSpace::WeakMap`;
/// not `weakkeymap`, whose listed references are its strongly held values).
pub const WEAK_STRUCTS: &[&[u8]] = &[b"weakmap", b"WeakMap"];

/// What a dump's ROOT records allow one to conclude about an object that no
/// root reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootCoverage {
    /// No ROOT records (`dump_all(since: ...)`, or a dump cut off at its
    /// start): reachability is not in the dump at all.
    Missing,
    /// ROOT records, but no `finalizers` category: dumps from Ruby 3.4 on
    /// never write one (and do not list Object under `vm`), and older ones
    /// only when finalizers exist. "No root reaches it" holds for the dump,
    /// but is not a promise that the next GC frees the object.
    NoFinalizers,
    /// ROOT records including `finalizers`: what no root reaches is garbage
    /// that the next GC frees.
    Complete,
}

impl RootCoverage {
    /// Name used in JSON reports.
    pub fn name(self) -> &'static str {
        match self {
            RootCoverage::Missing => "missing",
            RootCoverage::NoFinalizers => "no_finalizers",
            RootCoverage::Complete => "complete",
        }
    }

    /// What "no root reaches it" means for one object (`plural`: for
    /// several), for people; `None` when the dump cannot tell.
    pub fn unreachable_meaning(self, plural: bool) -> Option<String> {
        let it = if plural { "them" } else { "it" };
        match self {
            RootCoverage::Missing => None,
            RootCoverage::NoFinalizers => Some(format!(
                "no root this dump lists reaches {it}; the dump lists no finalizers roots, as \
                 dumps from Ruby 3.4 on never do, so this does not prove that the next GC frees {it}"
            )),
            RootCoverage::Complete => Some(format!("no root reaches {it}: the next GC frees {it}")),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct GraphOptions {
    /// Count the allocation tracer's table as app memory (its shallow size is
    /// 0 otherwise).
    pub include_tracer: bool,
    /// Count the heapscope agent's objects, and what only they keep alive, as
    /// app memory (they are left out otherwise: see [`Graph::is_agent`]).
    pub include_agent: bool,
}

/// The object graph: forward edges are read from the heap as they are;
/// reverse edges are built once, as a CSR array.
pub struct Graph<'h> {
    pub heap: &'h Heap,
    /// Number of objects; the super-root is node `n`.
    n: u32,
    /// Objects whose outgoing edges are weak (see the crate docs).
    weak: Vec<bool>,
    /// Hidden IMEMO -> klass-word edges of dumps before Ruby 3.2.
    imemo_klass: &'h FastMap<ObjId, ObjId>,
    /// Objects a precise (not `machine_context`) root references.
    precise_roots: FastMap<ObjId, ()>,
    /// The super-root's edges, and the root category of each.
    root_edges: Vec<ObjId>,
    root_edge_category: Vec<StrId>,
    /// Reverse edges: `pred[pred_offsets[v]..pred_offsets[v + 1]]`. The
    /// super-root appears as a predecessor of root-referenced objects.
    pred_offsets: Vec<u32>,
    pred: Vec<u32>,
    include_tracer: bool,
    /// Objects left out as the agent's (empty when there are none, or when
    /// they are included): [`Heap::is_agent`] plus what only they keep alive.
    agent: Vec<bool>,
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
        let mut precise_roots = FastMap::default();
        for root in &heap.roots {
            for &r in heap.root_refs(root) {
                root_edges.push(r);
                root_edge_category.push(root.category);
                if !root.conservative {
                    precise_roots.insert(r, ());
                }
            }
        }
        let mut g = Graph {
            heap,
            n,
            weak,
            imemo_klass: &heap.imemo_klass,
            precise_roots,
            root_edges,
            root_edge_category,
            pred_offsets: Vec::new(),
            pred: Vec::new(),
            include_tracer: opts.include_tracer,
            agent: Vec::new(),
        };
        g.build_preds();
        if !opts.include_agent && heap.agent.any {
            g.agent = agent_marks(&g);
        }
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
    /// then the class edge (for an IMEMO of a dump before Ruby 3.2: the
    /// hidden klass-word edge, see the crate docs).
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

    /// The implicit edge from an object to its class, when the class is in
    /// the dump; for an IMEMO of a dump before Ruby 3.2, the object its
    /// klass word holds (see [`Graph::implicit_edge_label`]).
    #[inline]
    pub fn class_edge(&self, v: ObjId) -> Option<ObjId> {
        let c = self.heap.class[v as usize];
        if c == NO_CLASS {
            if self.imemo_klass.is_empty() || self.heap.otype[v as usize] != types::IMEMO {
                return None;
            }
            return self.imemo_klass.get(&v).copied();
        }
        let obj = self.heap.classes[c as usize].object;
        (obj != NO_OBJ).then_some(obj)
    }

    /// How `v` holds the target of its [`Graph::class_edge`], for paths:
    /// "its class", or for an IMEMO's hidden klass-word edge (dumps before
    /// Ruby 3.2) what that field is.
    pub fn implicit_edge_label(&self, v: ObjId) -> String {
        if self.heap.otype[v as usize] != types::IMEMO {
            return "its class".into();
        }
        let what = match self.heap.detail_str(v) {
            Some(b"constcache") => "the constant value it caches",
            Some(b"env") => "its iseq",
            Some(b"ment") => "its defined class",
            Some(b"cref") => "its refinements",
            Some(b"svar") => "its cref or method entry",
            Some(b"iseq") => "its wrapper",
            _ => "a field",
        };
        format!("{what} (dumped as its class before Ruby 3.2)")
    }

    /// What the dump's ROOT records allow one to conclude about objects no
    /// root reaches (see [`RootCoverage`]).
    pub fn root_coverage(&self) -> RootCoverage {
        let heap = self.heap;
        if heap.roots.is_empty() {
            return RootCoverage::Missing;
        }
        let finalizers = heap
            .roots
            .iter()
            .any(|r| heap.strings.get(r.category) == b"finalizers");
        if finalizers {
            RootCoverage::Complete
        } else {
            RootCoverage::NoFinalizers
        }
    }

    /// Whether `v` is referenced by a precise (not `machine_context`) root.
    pub fn has_precise_root(&self, v: ObjId) -> bool {
        self.precise_roots.contains_key(&v)
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

    /// Whether `v` is left out as the heapscope agent's: one of its objects
    /// ([`Heap::is_agent`]), or reachable from roots only through them. Their
    /// shallow size is 0, so they add nothing to any retained size, and they
    /// stay reachable (they are not reported as unreachable). Always false
    /// with `include_agent`.
    #[inline]
    pub fn is_agent(&self, v: ObjId) -> bool {
        !self.agent.is_empty() && (v as usize) < self.agent.len() && self.agent[v as usize]
    }

    /// The objects [`Graph::is_agent`] leaves out, and their memsize.
    pub fn agent_share(&self) -> AgentShare {
        let mut share = AgentShare::default();
        if !self.agent.is_empty() {
            for v in self.heap.ids().filter(|&v| self.agent[v as usize]) {
                share.add(self.heap.memsize(v));
            }
        }
        share
    }

    /// Shallow size used by retained-size analyses: memsize, except 0 for the
    /// allocation tracer's table unless it was asked for, and for the agent's
    /// objects ([`Graph::is_agent`]).
    pub fn shallow(&self, v: ObjId) -> u64 {
        if (!self.include_tracer && self.heap.is_tracer(v)) || self.is_agent(v) {
            0
        } else {
            self.heap.memsize(v)
        }
    }
}

/// The agent's objects plus everything reachable only through them, in one
/// traversal: a search from the super-root that does not enter agent objects
/// finds what the app keeps alive on its own (state 1), and notes the agent
/// objects at its frontier; a second search from those, over what the first
/// did not reach, finds what only the agent keeps alive (state 2). Every
/// path to such an object has a first agent object, whose predecessor the
/// first search reached, so the frontier covers them all; every edge is
/// followed at most once in all.
fn agent_marks(g: &Graph<'_>) -> Vec<bool> {
    let heap = g.heap;
    let n = g.n as usize;
    let is_seed = |v: u32| (v as usize) < n && heap.is_agent(v);
    let mut state = vec![0u8; n + 1];
    let mut frontier = Vec::new();
    let mut stack = vec![g.root()];
    state[n] = 1;
    while let Some(v) = stack.pop() {
        g.for_each_succ(v, |w| {
            if state[w as usize] != 0 {
                return;
            }
            if is_seed(w) {
                state[w as usize] = 2;
                frontier.push(w);
            } else {
                state[w as usize] = 1;
                stack.push(w);
            }
        });
    }
    let mut stack = frontier;
    while let Some(v) = stack.pop() {
        g.for_each_succ(v, |w| {
            if state[w as usize] == 0 {
                state[w as usize] = 2;
                stack.push(w);
            }
        });
    }
    (0..n as u32)
        .map(|v| state[v as usize] == 2 || is_seed(v))
        .collect()
}
