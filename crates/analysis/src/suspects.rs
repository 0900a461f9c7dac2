//! Automatic leak suspects, in the manner of Eclipse MAT's leak-suspects report.
//!
//! A suspect is either one object or one group of objects (same class, or same
//! allocation site) whose retained size is more than a share (`threshold`) of
//! the reachable heap.
//!
//! - Object suspects are the objects directly under the super-root in the
//!   dominator tree whose retained size crosses the threshold. Every other
//!   object over the threshold lies inside one of them (its dominators retain
//!   at least as much), so they never count the same memory twice; the object
//!   inside that actually holds the memory is found as the accumulation point.
//! - Group suspects are, as in MAT, the same top-level objects grouped by
//!   class and by location, whose retained sizes together cross the
//!   threshold: many objects each held on their own (by a root, a thread
//!   stack, ...) that add up. Their subtrees are disjoint, so a group's
//!   retained size is the sum of its members' (what
//!   [`crate::retained::top_groups`] gives for those members). Grouping every
//!   reachable object instead would make suspects of the Strings and Arrays
//!   spread all over any heap. Groups without a value (no class, untraced)
//!   and the classes `Class` and `Module` (every app's code and constants)
//!   are left out. A group is left out too when at least 90% of its retained
//!   memory is in members that are object suspects, or when its accumulation
//!   point is, or lies below, the accumulation point of a larger suspect: it
//!   is already explained by them.
//!
//! For each suspect the accumulation point is found by starting at the
//! suspect object (for a group: its largest member outside the object
//! suspects) and descending into the largest dominator-tree child while that
//! child keeps at least `accumulation` of its parent's retained size. The
//! report gives the shortest path from a root to that point and what it holds
//! (its dominator subtree summed by class and by location).

use heapscope_graph::{shortest_paths, Dominators, Graph, RootCoverage};
use heapscope_heap::{FastMap, ObjId};

use crate::group::{GroupKey, Grouper, KeyValue, MAX_KEYS};
use crate::paths::{shown_steps, Elision};
use crate::retained::{describe, RetainedObject};

/// Default share of the reachable heap a suspect must retain.
pub const DEFAULT_THRESHOLD: f64 = 0.10;
/// Default share of its parent's retained size a child must keep for the
/// accumulation point to move down to it.
pub const DEFAULT_ACCUMULATION: f64 = 0.70;
/// A group is already explained when this share of it lies in object suspects.
pub const EXPLAINED_SHARE: f64 = 0.90;
/// How many classes and locations `holds` lists.
pub const HOLDS_TOP: usize = 5;
/// A suspect's container directly references members retaining at least
/// this share of the suspect's retained size.
pub const CONTAINER_SHARE: f64 = 0.5;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuspectOptions {
    /// A suspect retains more than this share of the reachable heap (0..=1).
    pub threshold: f64,
    /// The accumulation point descends while the largest child keeps at least
    /// this share of its parent's retained size (0..=1).
    pub accumulation: f64,
    /// Steps kept at each end of a long path from a root (`None`: all).
    pub path_ends: Option<usize>,
}

impl Default for SuspectOptions {
    fn default() -> Self {
        SuspectOptions {
            threshold: DEFAULT_THRESHOLD,
            accumulation: DEFAULT_ACCUMULATION,
            path_ends: Some(crate::paths::PATH_ENDS),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SuspectKind {
    Object,
    Class,
    Location,
}

impl SuspectKind {
    pub fn name(self) -> &'static str {
        match self {
            SuspectKind::Object => "object",
            SuspectKind::Class => "class",
            SuspectKind::Location => "location",
        }
    }
}

/// The shortest chain of references from a root to the accumulation point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspectPath {
    /// Root categories under which the first step is referenced.
    pub root: Vec<String>,
    /// The root-referenced object first, the accumulation point last: all
    /// of them, or the ends of a long path.
    pub steps: Vec<RetainedObject>,
    /// The steps left out between the ends, if any.
    pub elided: Option<Elision>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Suspect {
    pub kind: SuspectKind,
    /// The object's address (`0x...`), the class name or the location.
    pub key: String,
    pub retained_bytes: u64,
    /// `retained_bytes` over the reachable heap.
    pub share: f64,
    /// 1 for an object, the number of reachable members for a group.
    pub count: u64,
    /// Where the accumulation search started: the object, or the group's
    /// largest member (outside the object suspects when there is one).
    pub start: RetainedObject,
    /// The accumulation point and how many dominator-tree levels below
    /// `start` it is.
    pub accumulation: RetainedObject,
    pub depth: u32,
    pub path: Option<SuspectPath>,
    /// Shallow bytes of the accumulation point's dominator subtree (itself
    /// included) by class and by location, largest first.
    pub holds_classes: Vec<(String, u64)>,
    pub holds_locations: Vec<(String, u64)>,
    /// The container that directly holds most of this suspect's memory (an
    /// index into [`Suspects::containers`]), if one does.
    pub container: Option<usize>,
}

/// An object that directly references members of suspects holding at least
/// [`CONTAINER_SHARE`] of each one's retained memory, although it does not
/// dominate them (they are held from elsewhere too, so they are top-level in
/// the dominator tree): an app's log Array whose entries of four kinds are
/// four group suspects. Suspects that share one are one finding.
#[derive(Debug, Clone, PartialEq)]
pub struct SuspectContainer {
    pub object: RetainedObject,
    /// Retained bytes of the top-level objects it references directly.
    pub holds_bytes: u64,
    pub path: Option<SuspectPath>,
    /// Indexes into [`Suspects::suspects`], largest first.
    pub suspects: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Suspects {
    pub reachable_objects: u64,
    /// The heapscope agent's objects left out (none with `include_agent`).
    pub agent: heapscope_heap::AgentShare,
    pub reachable_bytes: u64,
    pub options: SuspectOptions,
    /// Largest retained size first.
    pub suspects: Vec<Suspect>,
    /// The object that retains the most (with its share), for the report
    /// when nothing crosses the threshold.
    pub largest: Option<(RetainedObject, f64)>,
    /// Groups over the threshold left out because larger suspects explain them.
    pub explained_groups: usize,
    /// The containers of suspects, in the order of their largest suspect.
    pub containers: Vec<SuspectContainer>,
    /// What the dump's ROOT records allow: with none (a
    /// `dump_all(since: ...)` dump) nothing is reachable and no suspect can
    /// be found, which is not the same as a heap without suspects.
    pub coverage: RootCoverage,
}

/// Per-group sums of the grouping pass.
#[derive(Debug, Clone, Default)]
struct GroupSums {
    count: u64,
    retained: u64,
    /// Retained bytes of members that are object suspects.
    covered: u64,
    /// Largest member, and largest that is not an object suspect:
    /// (retained, id).
    best: Option<(u64, ObjId)>,
    best_uncovered: Option<(u64, ObjId)>,
}

fn better(a: Option<(u64, ObjId)>, retained: u64, id: ObjId, g: &Graph<'_>) -> bool {
    match a {
        None => true,
        Some((r, other)) => {
            retained > r
                || (retained == r && g.heap.address[id as usize] < g.heap.address[other as usize])
        }
    }
}

/// One grouping: raw key -> group index, and the sums.
struct Grouping {
    key: GroupKey,
    index: FastMap<u32, u32>,
    raw: Vec<u32>,
    sums: Vec<GroupSums>,
}

impl Grouping {
    fn new(key: GroupKey) -> Self {
        Grouping {
            key,
            index: FastMap::default(),
            raw: Vec::new(),
            sums: Vec::new(),
        }
    }

    fn group_of(&mut self, raw: u32) -> usize {
        let next = self.raw.len() as u32;
        let gi = *self.index.entry(raw).or_insert(next);
        if gi == next {
            self.raw.push(raw);
            self.sums.push(GroupSums::default());
        }
        gi as usize
    }
}

fn over(bytes: u64, limit: f64) -> bool {
    bytes as f64 > limit
}

/// Finds the leak suspects of a heap.
pub fn find_suspects(g: &Graph<'_>, dom: &Dominators, opts: SuspectOptions) -> Suspects {
    let reachable = dom.reachable_bytes();
    let limit = opts.threshold * reachable as f64;
    let root = dom.root();
    let address = |id: ObjId| g.heap.address[id as usize];

    // Object suspects: the super-root's dominator-tree children over the limit.
    // The agent's objects weigh nothing (`Graph::shallow`); they are not
    // counted as members of any group either.
    let top_level: Vec<ObjId> = dom
        .children(root)
        .iter()
        .copied()
        .filter(|&v| !g.is_agent(v))
        .collect();
    let top_level = top_level.as_slice();
    let largest = top_level
        .iter()
        .copied()
        .min_by_key(|&v| (std::cmp::Reverse(dom.retained(v)), address(v)));
    let mut object_ids: Vec<ObjId> = if reachable == 0 {
        Vec::new()
    } else {
        top_level
            .iter()
            .copied()
            .filter(|&v| over(dom.retained(v), limit))
            .collect()
    };
    object_ids.sort_unstable_by_key(|&v| (std::cmp::Reverse(dom.retained(v)), address(v)));

    // Group suspects: the top-level objects grouped by class and by location.
    let mut grouper = Grouper::new(g.heap);
    let mut groupings = [
        Grouping::new(GroupKey::Class),
        Grouping::new(GroupKey::Location),
    ];
    if reachable > 0 {
        for &v in top_level {
            let covered = object_ids.contains(&v);
            let r = dom.retained(v);
            for gr in groupings.iter_mut() {
                let raw = grouper.raw_key(v, &[gr.key])[0];
                let gi = gr.group_of(raw);
                let s = &mut gr.sums[gi];
                s.count += 1;
                s.retained = s.retained.saturating_add(r);
                if covered {
                    s.covered = s.covered.saturating_add(r);
                } else if better(s.best_uncovered, r, v, g) {
                    s.best_uncovered = Some((r, v));
                }
                if better(s.best, r, v, g) {
                    s.best = Some((r, v));
                }
            }
        }
    }

    // (kind, key, retained, count, start, raw group key or the object)
    let mut found: Vec<(SuspectKind, String, u64, u64, ObjId, u32)> = object_ids
        .iter()
        .map(|&v| {
            (
                SuspectKind::Object,
                format!("{:#x}", address(v)),
                dom.retained(v),
                1,
                v,
                v,
            )
        })
        .collect();
    let mut explained_groups = 0;
    for gr in &groupings {
        let kind = match gr.key {
            GroupKey::Class => SuspectKind::Class,
            _ => SuspectKind::Location,
        };
        for (raw, s) in gr.raw.iter().zip(&gr.sums) {
            if !over(s.retained, limit) {
                continue;
            }
            let mut key = [0u32; MAX_KEYS];
            key[0] = *raw;
            let text = match grouper.values(&[gr.key], &key).pop() {
                Some(KeyValue::Text(Some(t))) => t,
                _ => continue,
            };
            if kind == SuspectKind::Class && (text == "Class" || text == "Module") {
                continue;
            }
            if s.covered as f64 >= EXPLAINED_SHARE * s.retained as f64 {
                explained_groups += 1;
                continue;
            }
            let Some((_, start)) = s.best_uncovered.or(s.best) else {
                continue;
            };
            found.push((kind, text, s.retained, s.count, start, *raw));
        }
    }
    found.sort_by(|a, b| {
        b.2.cmp(&a.2)
            .then_with(|| a.0.cmp(&b.0))
            .then_with(|| a.1.cmp(&b.1))
    });

    let mut suspects: Vec<Suspect> = Vec::new();
    let mut members: Vec<(SuspectKind, u32)> = Vec::new();
    for (kind, key, retained, count, start, raw) in found {
        let (acc, depth) = accumulation_point(g, dom, start, opts.accumulation);
        // A group whose memory accumulates where a larger suspect's does (or
        // below it) shows the same memory again.
        if kind != SuspectKind::Object {
            let chain = dom.chain(acc);
            if suspects
                .iter()
                .any(|s| chain.contains(&s.accumulation.object.id))
            {
                explained_groups += 1;
                continue;
            }
        }
        let (holds_classes, holds_locations) = holds(g, dom, &mut grouper, acc);
        suspects.push(Suspect {
            kind,
            key,
            retained_bytes: retained,
            share: share(retained, reachable),
            count,
            start: describe(g, dom, start),
            accumulation: describe(g, dom, acc),
            depth,
            path: root_path(g, dom, acc, opts.path_ends),
            holds_classes,
            holds_locations,
            container: None,
        });
        members.push((kind, raw));
    }
    let containers = find_containers(g, dom, &mut grouper, &mut suspects, &members, opts);

    Suspects {
        reachable_objects: crate::retained::reachable_app_objects(g, dom),
        reachable_bytes: reachable,
        agent: g.agent_share(),
        options: opts,
        suspects,
        largest: largest.map(|v| (describe(g, dom, v), share(dom.retained(v), reachable))),
        explained_groups,
        containers,
        coverage: g.root_coverage(),
    }
}

/// For each suspect, the object that directly references the most of its
/// top-level members' retained memory, if that is at least
/// [`CONTAINER_SHARE`] of it; classes and modules (namespaces: constants,
/// class variables) and roots do not count.
fn find_containers(
    g: &Graph<'_>,
    dom: &Dominators,
    grouper: &mut Grouper<'_>,
    suspects: &mut [Suspect],
    members: &[(SuspectKind, u32)],
    opts: SuspectOptions,
) -> Vec<SuspectContainer> {
    if suspects.is_empty() {
        return Vec::new();
    }
    let root = dom.root();
    let mut tally: Vec<FastMap<ObjId, u64>> = vec![FastMap::default(); suspects.len()];
    let mut which: Vec<usize> = Vec::new();
    for &v in dom.children(root) {
        which.clear();
        let (class, location) = (
            grouper.raw_key(v, &[GroupKey::Class])[0],
            grouper.raw_key(v, &[GroupKey::Location])[0],
        );
        for (i, &(kind, raw)) in members.iter().enumerate() {
            let hit = match kind {
                SuspectKind::Object => raw == v,
                SuspectKind::Class => raw == class,
                SuspectKind::Location => raw == location,
            };
            if hit {
                which.push(i);
            }
        }
        if which.is_empty() {
            continue;
        }
        let r = dom.retained(v);
        let mut preds: Vec<ObjId> = g
            .preds(v)
            .iter()
            .copied()
            .filter(|&p| p != root && !g.heap.is_class_like(p))
            .collect();
        preds.sort_unstable();
        preds.dedup();
        for &i in &which {
            for &p in &preds {
                *tally[i].entry(p).or_default() += r;
            }
        }
    }
    let mut containers: Vec<SuspectContainer> = Vec::new();
    let mut index: FastMap<ObjId, usize> = FastMap::default();
    for (i, t) in tally.into_iter().enumerate() {
        let best = t
            .into_iter()
            .min_by_key(|&(p, b)| (std::cmp::Reverse(b), g.heap.address[p as usize]));
        let Some((c, bytes)) = best else { continue };
        if (bytes as f64) < CONTAINER_SHARE * suspects[i].retained_bytes as f64 {
            continue;
        }
        let ci = *index.entry(c).or_insert_with(|| {
            let mut held = Vec::new();
            g.for_each_succ(c, |x| {
                if dom.idom(x) == Some(root) && !g.heap.is_class_like(x) {
                    held.push(x);
                }
            });
            // An object the container references twice counts once.
            held.sort_unstable();
            held.dedup();
            let holds = held.iter().map(|&x| dom.retained(x)).sum();
            containers.push(SuspectContainer {
                object: describe(g, dom, c),
                holds_bytes: holds,
                path: root_path(g, dom, c, opts.path_ends),
                suspects: Vec::new(),
            });
            containers.len() - 1
        });
        containers[ci].suspects.push(i);
        suspects[i].container = Some(ci);
    }
    containers
}

fn share(bytes: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        bytes as f64 / total as f64
    }
}

/// Descends from `start` into the largest dominator-tree child while it keeps
/// at least `ratio` of its parent's retained size; returns the point reached
/// and how many levels down it is.
pub fn accumulation_point(
    g: &Graph<'_>,
    dom: &Dominators,
    start: ObjId,
    ratio: f64,
) -> (ObjId, u32) {
    let mut v = start;
    let mut depth = 0;
    loop {
        let parent = dom.retained(v);
        if parent == 0 {
            break;
        }
        let best = dom.children(v).iter().copied().min_by_key(|&c| {
            (
                std::cmp::Reverse(dom.retained(c)),
                g.heap.address[c as usize],
            )
        });
        match best {
            Some(c) if dom.retained(c) > 0 && dom.retained(c) as f64 >= ratio * parent as f64 => {
                v = c;
                depth += 1;
            }
            _ => break,
        }
    }
    (v, depth)
}

fn root_path(
    g: &Graph<'_>,
    dom: &Dominators,
    target: ObjId,
    ends: Option<usize>,
) -> Option<SuspectPath> {
    let p = shortest_paths(g, target, 1).into_iter().next()?;
    let (shown, elided) = shown_steps(p.nodes.len(), ends);
    Some(SuspectPath {
        root: p
            .categories
            .iter()
            .map(|&c| g.heap.strings.text(c).into_owned())
            .collect(),
        steps: shown
            .into_iter()
            .map(|i| describe(g, dom, p.nodes[i]))
            .collect(),
        elided,
    })
}

type Rows = Vec<(String, u64)>;

/// Shallow bytes of `v`'s dominator subtree (`v` included) by class and by
/// location, the `HOLDS_TOP` largest of each.
fn holds(g: &Graph<'_>, dom: &Dominators, grouper: &mut Grouper<'_>, v: ObjId) -> (Rows, Rows) {
    let mut by_class: FastMap<u32, u64> = FastMap::default();
    let mut by_location: FastMap<u32, u64> = FastMap::default();
    let mut stack = vec![v];
    while let Some(x) = stack.pop() {
        if g.is_agent(x) {
            // It and all it dominates are the agent's.
            continue;
        }
        let bytes = g.shallow(x);
        let c = by_class
            .entry(grouper.raw_key(x, &[GroupKey::Class])[0])
            .or_default();
        *c = c.saturating_add(bytes);
        let l = by_location
            .entry(grouper.raw_key(x, &[GroupKey::Location])[0])
            .or_default();
        *l = l.saturating_add(bytes);
        stack.extend_from_slice(dom.children(x));
    }
    let rows = |m: FastMap<u32, u64>, key: GroupKey| -> Rows {
        let mut rows: Rows = m
            .into_iter()
            .map(|(raw, bytes)| (grouper.value(key, raw).display(key), bytes))
            .collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rows.truncate(HOLDS_TOP);
        rows
    };
    (
        rows(by_class, GroupKey::Class),
        rows(by_location, GroupKey::Location),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use heapscope_graph::GraphOptions;
    use heapscope_heap::{Detail, Heap, HeapBuilder, ObjectRecord, PartialHeap, RootRecord};

    const BASE: u64 = 0x7f00_0000_0000;

    /// One object of a test heap: type, class address, memsize, line in
    /// `app.rb` (0 = untraced), references.
    struct Obj {
        addr: u64,
        otype: &'static [u8],
        class: Option<u64>,
        name: Option<&'static [u8]>,
        memsize: u64,
        line: u32,
        refs: Vec<u64>,
    }

    /// A heap builder that keeps the records until `finish`.
    #[derive(Default)]
    struct TestHeap {
        objs: Vec<Obj>,
        roots: Vec<(&'static [u8], Vec<u64>)>,
        classes: Vec<(&'static [u8], u64)>,
    }

    impl TestHeap {
        fn next_addr(&self) -> u64 {
            BASE + 40 * self.objs.len() as u64
        }

        /// A named class, referenced from the `vm` root so it dominates nothing.
        fn class(&mut self, name: &'static [u8]) -> u64 {
            let addr = self.next_addr();
            self.objs.push(Obj {
                addr,
                otype: b"CLASS",
                class: None,
                name: Some(name),
                memsize: 0,
                line: 0,
                refs: Vec::new(),
            });
            self.classes.push((name, addr));
            self.roots.push((b"vm", vec![addr]));
            addr
        }

        fn obj(&mut self, otype: &'static [u8], class: u64, memsize: u64, line: u32) -> u64 {
            let addr = self.next_addr();
            self.objs.push(Obj {
                addr,
                otype,
                class: Some(class),
                name: None,
                memsize,
                line,
                refs: Vec::new(),
            });
            addr
        }

        fn link(&mut self, from: u64, to: u64) {
            let o = self.objs.iter_mut().find(|o| o.addr == from).unwrap();
            o.refs.push(to);
        }

        fn root(&mut self, category: &'static [u8], to: u64) {
            self.roots.push((category, vec![to]));
        }

        fn finish(&self) -> Heap {
            let mut b = HeapBuilder::new(true, self.objs.len());
            let mut p = PartialHeap::new(true);
            for (cat, refs) in &self.roots {
                p.push_root(&RootRecord {
                    category: cat,
                    refs,
                });
            }
            for o in &self.objs {
                p.push_object(&ObjectRecord {
                    address: o.addr,
                    type_name: o.otype,
                    class: o.class,
                    flags: 0,
                    memsize: o.memsize,
                    file: (o.line > 0).then_some(b"app.rb".as_slice()),
                    line: (o.line > 0).then_some(o.line),
                    method: None,
                    generation: None,
                    detail: o.name.map_or(Detail::None, Detail::Str),
                    refs: &o.refs,
                    object_id: None,
                    real_class_name: None,
                });
            }
            b.append(p);
            b.finish()
        }
    }

    fn run(h: &Heap, threshold: f64) -> Suspects {
        let g = Graph::new(h, GraphOptions::default());
        let dom = Dominators::compute(&g);
        find_suspects(
            &g,
            &dom,
            SuspectOptions {
                threshold,
                ..SuspectOptions::default()
            },
        )
    }

    /// A global Hash (app.rb:12) holding 100 Strings of 100 bytes (app.rb:13),
    /// next to a few small objects.
    fn global_hash() -> (Heap, u64) {
        let mut t = TestHeap::default();
        let hash_c = t.class(b"Hash");
        let string_c = t.class(b"String");
        let object_c = t.class(b"Object");
        let hash = t.obj(b"HASH", hash_c, 200, 12);
        for _ in 0..100 {
            let s = t.obj(b"STRING", string_c, 100, 13);
            t.link(hash, s);
        }
        t.root(b"global_tbl", hash);
        for i in 0..5 {
            let o = t.obj(b"OBJECT", object_c, 40, 20 + i);
            t.root(b"vm", o);
        }
        (t.finish(), hash)
    }

    #[test]
    fn a_global_hash_is_an_object_suspect_and_its_own_accumulation_point() {
        let (h, hash) = global_hash();
        let r = run(&h, 0.10);
        assert_eq!(r.reachable_bytes, 200 + 100 * 100 + 5 * 40);
        assert_eq!(r.suspects.len(), 1, "{:#?}", r.suspects);
        let s = &r.suspects[0];
        assert_eq!(s.kind, SuspectKind::Object);
        assert_eq!(s.key, format!("{hash:#x}"));
        assert_eq!(s.retained_bytes, 200 + 100 * 100);
        assert_eq!(s.count, 1);
        assert!((s.share - 10_200.0 / 10_400.0).abs() < 1e-9);
        assert_eq!(s.depth, 0);
        assert_eq!(s.accumulation.object.address, hash);
        assert_eq!(s.accumulation.object.location.as_deref(), Some("app.rb:12"));
        let path = s.path.as_ref().unwrap();
        assert_eq!(path.root, vec!["global_tbl".to_string()]);
        assert_eq!(path.steps.len(), 1);
        assert_eq!(path.steps[0].object.address, hash);
        assert_eq!(s.holds_classes[0], ("String".to_string(), 10_000));
        assert_eq!(s.holds_classes[1], ("Hash".to_string(), 200));
        assert_eq!(s.holds_locations[0], ("app.rb:13".to_string(), 10_000));
        // The String and app.rb:13 groups are inside the Hash: not suspects.
        assert!(r.largest.is_some());
    }

    #[test]
    fn nothing_over_a_high_threshold() {
        let (h, hash) = global_hash();
        let r = run(&h, 0.99);
        assert!(r.suspects.is_empty());
        let (largest, share) = r.largest.unwrap();
        assert_eq!(largest.object.address, hash);
        assert!(share > 0.9 && share < 0.99);
    }

    #[test]
    fn the_accumulation_point_descends_into_the_big_child() {
        // root -> Service (app.rb:1) -> Registry (app.rb:2) -> Array (app.rb:3)
        // -> 50 Strings (app.rb:4); Service also holds a small Hash.
        let mut t = TestHeap::default();
        let object_c = t.class(b"Object");
        let array_c = t.class(b"Array");
        let string_c = t.class(b"String");
        let hash_c = t.class(b"Hash");
        let service = t.obj(b"OBJECT", object_c, 40, 1);
        let registry = t.obj(b"OBJECT", object_c, 40, 2);
        let array = t.obj(b"ARRAY", array_c, 400, 3);
        let small = t.obj(b"HASH", hash_c, 160, 5);
        t.link(service, registry);
        t.link(service, small);
        t.link(registry, array);
        for _ in 0..50 {
            let s = t.obj(b"STRING", string_c, 100, 4);
            t.link(array, s);
        }
        let other = t.obj(b"OBJECT", object_c, 400, 9);
        t.root(b"vm", service);
        t.root(b"machine_context", other);
        let h = t.finish();

        let r = run(&h, 0.10);
        assert_eq!(r.suspects.len(), 1, "{:#?}", r.suspects);
        let s = &r.suspects[0];
        assert_eq!(s.start.object.address, service);
        assert_eq!(s.retained_bytes, 40 + 40 + 400 + 160 + 5_000);
        assert_eq!(s.depth, 2);
        assert_eq!(s.accumulation.object.address, array);
        assert_eq!(s.accumulation.retained_bytes, 5_400);
        let path = s.path.as_ref().unwrap();
        assert_eq!(path.root, vec!["vm".to_string()]);
        let steps: Vec<u64> = path.steps.iter().map(|x| x.object.address).collect();
        assert_eq!(steps, vec![service, registry, array]);
        assert_eq!(
            s.holds_classes,
            vec![("String".into(), 5_000), ("Array".into(), 400)]
        );
        assert_eq!(
            s.holds_locations,
            vec![("app.rb:4".into(), 5_000), ("app.rb:3".into(), 400)]
        );

        // A strict ratio keeps the accumulation point higher up.
        let g = Graph::new(&h, GraphOptions::default());
        let dom = Dominators::compute(&g);
        let id = |a: u64| h.find(a).unwrap();
        assert_eq!(
            accumulation_point(&g, &dom, id(service), 0.99),
            (id(service), 0)
        );
        assert_eq!(
            accumulation_point(&g, &dom, id(registry), 0.995),
            (id(registry), 0)
        );
        // Each String keeps under 2% of the Array.
        assert_eq!(
            accumulation_point(&g, &dom, id(array), 0.05),
            (id(array), 0)
        );
    }

    #[test]
    fn many_small_top_level_objects_make_a_group_suspect() {
        // 20 Sessions (app.rb:7), each referenced from a thread stack and
        // holding a 500-byte String (app.rb:8): none is a suspect alone, the
        // class and the location together are, and both point at the same
        // memory, so only one of them is listed.
        let mut t = TestHeap::default();
        let session_c = t.class(b"Session");
        let string_c = t.class(b"String");
        let object_c = t.class(b"Object");
        let mut sessions = Vec::new();
        let mut strings = Vec::new();
        for i in 0..20 {
            let s = t.obj(b"OBJECT", session_c, 40 + i, 7);
            let v = t.obj(b"STRING", string_c, 500, 8);
            t.link(s, v);
            t.root(b"machine_context", s);
            sessions.push(s);
            strings.push(v);
        }
        let other = t.obj(b"OBJECT", object_c, 1_000, 30);
        t.root(b"vm", other);
        let h = t.finish();
        let total: u64 = (0..20).map(|i| 540 + i).sum::<u64>() + 1_000;

        let r = run(&h, 0.10);
        assert_eq!(r.reachable_bytes, total);
        assert_eq!(r.suspects.len(), 1, "{:#?}", r.suspects);
        let s = &r.suspects[0];
        assert_eq!(s.kind, SuspectKind::Class);
        assert_eq!(s.key, "Session");
        assert_eq!(s.count, 20);
        assert_eq!(s.retained_bytes, total - 1_000);
        // The largest member starts the search.
        assert_eq!(s.start.object.address, sessions[19]);
        // Its String keeps 500 of its 559 bytes (over 70%).
        assert_eq!(s.accumulation.object.address, strings[19]);
        assert_eq!(s.depth, 1);
        assert_eq!(
            r.explained_groups, 1,
            "the app.rb:7 group is the same memory"
        );

        // The group's retained size is what `top_groups` says for the class.
        let g = Graph::new(&h, GraphOptions::default());
        let dom = Dominators::compute(&g);
        let (groups, _) = crate::retained::top_groups(&g, &dom, &[GroupKey::Class], None);
        let session = groups
            .iter()
            .find(|gr| gr.key == vec![KeyValue::Text(Some("Session".into()))])
            .unwrap();
        assert_eq!(session.retained_bytes, s.retained_bytes);
    }

    #[test]
    fn a_group_mostly_made_of_an_object_suspect_is_not_listed_again() {
        // Two Caches at app.rb:3: one holds 90% of the heap, the other little.
        let mut t = TestHeap::default();
        let cache_c = t.class(b"Cache");
        let string_c = t.class(b"String");
        let object_c = t.class(b"Object");
        let big = t.obj(b"OBJECT", cache_c, 40, 3);
        let small = t.obj(b"OBJECT", cache_c, 40, 3);
        for _ in 0..90 {
            let s = t.obj(b"STRING", string_c, 100, 4);
            t.link(big, s);
        }
        let s = t.obj(b"STRING", string_c, 100, 4);
        t.link(small, s);
        let other = t.obj(b"OBJECT", object_c, 800, 9);
        t.root(b"vm", big);
        t.root(b"vm", small);
        t.root(b"vm", other);
        let h = t.finish();

        let r = run(&h, 0.10);
        let kinds: Vec<SuspectKind> = r.suspects.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, vec![SuspectKind::Object], "{:#?}", r.suspects);
        assert_eq!(r.suspects[0].start.object.address, big);
        assert_eq!(r.explained_groups, 2, "class Cache and app.rb:3");
    }

    #[test]
    fn an_empty_heap_has_no_suspects() {
        let h = TestHeap::default().finish();
        let r = run(&h, 0.10);
        assert!(r.suspects.is_empty());
        assert!(r.largest.is_none());
        assert_eq!(r.reachable_bytes, 0);
    }
}
