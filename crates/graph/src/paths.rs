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

/// Up to `max` shortest paths from the roots to `target`, shortest first,
/// each starting at a different root-referenced object. A breadth-first
/// search walks references backwards from the target, so only the part of
/// the heap that leads to it is visited.
pub fn shortest_paths(g: &Graph<'_>, target: ObjId, max: usize) -> Vec<RootPath> {
    let root = g.root();
    let mut next = vec![NONE; g.node_count()];
    let mut queue = VecDeque::new();
    let mut out = Vec::new();
    next[target as usize] = target;
    queue.push_back(target);
    while let Some(v) = queue.pop_front() {
        let mut rooted = false;
        for &p in g.preds(v) {
            if p == root {
                rooted = true;
            } else if next[p as usize] == NONE {
                next[p as usize] = v;
                queue.push_back(p);
            }
        }
        if rooted {
            let mut nodes = vec![v];
            let mut x = v;
            while x != target {
                x = next[x as usize];
                nodes.push(x);
            }
            out.push(RootPath {
                categories: g.root_categories_of(v),
                nodes,
            });
            if out.len() >= max {
                break;
            }
        }
    }
    out
}
