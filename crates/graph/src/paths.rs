//! Shortest chains of references from a GC root to an object.

use std::collections::VecDeque;

use heapscope_heap::{ObjId, StrId};

use crate::Graph;

const NONE: u32 = u32::MAX;

/// A chain of references from a root to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootPath {
    /// Root categories under which the first object is referenced.
    pub categories: Vec<StrId>,
    /// The root-referenced object first, the target last.
    pub nodes: Vec<ObjId>,
}

/// Up to `max` shortest paths from the roots to `target`, each starting at a
/// different root-referenced object: paths from precise roots first
/// (shortest first), then, to make up `max`, paths from objects that only a
/// conservative `machine_context` root references (a value found on a C
/// stack, possibly stale), shortest first. So a precise path is shown
/// whenever one exists, even when a conservative one is shorter. A
/// breadth-first search walks references backwards from the target, so only
/// the part of the heap that leads to it is visited (all of that part when
/// fewer than `max` precise paths exist).
///
/// Paths to an app object never pass through the heapscope agent's objects
/// ([`Graph::is_agent`]; none pass when they are included), since the app
/// reaches it without them; paths to the agent's objects may.
///
/// Alternatives must differ in the holders that matter, so a path is not
/// returned when it adds nothing to one already found: when it passes through
/// another root-referenced object (as trusted as its own root), whose own
/// path is its tail, or when it only reaches the same holder through more
/// class-to-class hops from the root (`Class TracePoint`, its superclass
/// `Object`, then a constant of `Object`: every class leads to `Object`).
pub fn shortest_paths(g: &Graph<'_>, target: ObjId, max: usize) -> Vec<RootPath> {
    let root = g.root();
    let avoid_agent = !g.is_agent(target);
    let mut next = vec![NONE; g.node_count()];
    let mut queue = VecDeque::new();
    let mut precise = Vec::new();
    let mut conservative = Vec::new();
    // Where each kept path's meaningful part starts (see `distinct_anchor`),
    // by trust: a conservative path found first must not hide a precise one.
    let mut precise_anchors: Vec<ObjId> = Vec::new();
    let mut anchors: Vec<ObjId> = Vec::new();
    next[target as usize] = target;
    queue.push_back(target);
    while let Some(v) = queue.pop_front() {
        if precise.len() >= max {
            break;
        }
        let mut rooted = false;
        for &p in g.preds(v) {
            if p == root {
                rooted = true;
            } else if next[p as usize] == NONE && !(avoid_agent && g.is_agent(p)) {
                next[p as usize] = v;
                queue.push_back(p);
            }
        }
        if rooted {
            let is_precise = g.has_precise_root(v);
            if is_precise || conservative.len() < max {
                let kept = if is_precise {
                    &precise_anchors
                } else {
                    &anchors
                };
                if let Some(anchor) = distinct_anchor(g, &next, target, v, is_precise, kept) {
                    anchors.push(anchor);
                    if is_precise {
                        precise_anchors.push(anchor);
                        precise.push(v);
                    } else {
                        conservative.push(v);
                    }
                }
            }
        }
    }
    precise
        .into_iter()
        .chain(conservative)
        .take(max)
        .map(|v| {
            let mut nodes = vec![v];
            let mut x = v;
            while x != target {
                x = next[x as usize];
                nodes.push(x);
            }
            RootPath {
                categories: g.root_categories_of(v),
                nodes,
            }
        })
        .collect()
}

/// The first object of the path from `v` that matters (the last class of the
/// leading run of classes and modules, else `v`), or `None` when the path
/// repeats one already kept: its anchor was kept before, or a later object on
/// it is itself referenced by a root at least as trusted as `v`'s.
fn distinct_anchor(
    g: &Graph<'_>,
    next: &[u32],
    target: ObjId,
    v: ObjId,
    precise: bool,
    kept: &[ObjId],
) -> Option<ObjId> {
    let root = g.root();
    let mut anchor = v;
    let mut leading = g.heap.is_class_like(v);
    let mut x = v;
    while x != target {
        x = next[x as usize];
        if leading && g.heap.is_class_like(x) {
            anchor = x;
        } else {
            leading = false;
        }
        if g.preds(x).contains(&root) && (g.has_precise_root(x) || !precise) {
            return None;
        }
    }
    (!kept.contains(&anchor)).then_some(anchor)
}
