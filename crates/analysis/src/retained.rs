//! Retained sizes of objects and of groups of objects.
//!
//! An object's retained size is what would be freed if it were gone: the sum
//! of the shallow sizes of the objects it dominates. A group's retained size
//! counts each byte once even when members dominate each other: it sums the
//! retained sizes of the members that no other member dominates.

use heapscope_graph::{Dominators, Graph};
use heapscope_heap::{FastMap, ObjId};

use crate::group::{GroupKey, Grouper, KeyValue, MAX_KEYS};
use crate::paths::{object_ref, ObjectRef};

/// One object and what it keeps alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedObject {
    pub object: ObjectRef,
    pub shallow_bytes: u64,
    pub retained_bytes: u64,
}

/// One group and what its members keep alive together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedGroup {
    pub key: Vec<KeyValue>,
    pub count: u64,
    pub shallow_bytes: u64,
    pub retained_bytes: u64,
}

pub fn describe(g: &Graph<'_>, dom: &Dominators, id: ObjId) -> RetainedObject {
    RetainedObject {
        object: object_ref(g.heap, id),
        shallow_bytes: g.shallow(id),
        retained_bytes: dom.retained(id),
    }
}

/// The `top` objects that retain the most, largest first (ties by address).
pub fn top_objects(g: &Graph<'_>, dom: &Dominators, top: usize) -> Vec<RetainedObject> {
    let mut ids: Vec<ObjId> = dom.preorder()[1..]
        .iter()
        .copied()
        .filter(|&id| !g.is_agent(id))
        .collect();
    let by = |id: &ObjId| {
        (
            std::cmp::Reverse(dom.retained(*id)),
            g.heap.address[*id as usize],
        )
    };
    if top < ids.len() {
        ids.select_nth_unstable_by_key(top, by);
        ids.truncate(top);
    }
    ids.sort_unstable_by_key(by);
    ids.into_iter().map(|id| describe(g, dom, id)).collect()
}

/// Groups of reachable objects by `by`, largest retained size first; the
/// second value is the number of groups before `top` cut them.
pub fn top_groups(
    g: &Graph<'_>,
    dom: &Dominators,
    by: &[GroupKey],
    top: Option<usize>,
) -> (Vec<RetainedGroup>, usize) {
    let mut grouper = Grouper::new(g.heap);
    let mut index: FastMap<[u32; MAX_KEYS], u32> = FastMap::default();
    let mut keys: Vec<[u32; MAX_KEYS]> = Vec::new();
    let mut sums: Vec<(u64, u64, u64)> = Vec::new(); // count, shallow, retained
                                                     // `active[g]` counts members of group g on the current dominator-tree path:
                                                     // a member adds its retained size only when no member is above it.
    let mut active: Vec<u32> = Vec::new();
    let root = dom.root();
    // Iterative DFS over the dominator tree: (node, ENTER) enters a node,
    // (NONE, group) leaves a node of that group.
    const ENTER: u32 = u32::MAX;
    let mut stack: Vec<(u32, u32)> = dom
        .children(root)
        .iter()
        .rev()
        .map(|&c| (c, ENTER))
        .collect();
    while let Some((v, tag)) = stack.pop() {
        if tag != ENTER {
            active[tag as usize] -= 1;
            continue;
        }
        // What an agent object dominates is the agent's too: skip it all.
        if g.is_agent(v) {
            continue;
        }
        let raw = grouper.raw_key(v, by);
        let gi = *index.entry(raw).or_insert_with(|| {
            keys.push(raw);
            sums.push((0, 0, 0));
            active.push(0);
            (keys.len() - 1) as u32
        });
        let s = &mut sums[gi as usize];
        s.0 += 1;
        s.1 = s.1.saturating_add(g.shallow(v));
        if active[gi as usize] == 0 {
            s.2 = s.2.saturating_add(dom.retained(v));
        }
        let children = dom.children(v);
        if !children.is_empty() {
            active[gi as usize] += 1;
            stack.push((u32::MAX, gi));
            stack.extend(children.iter().rev().map(|&c| (c, ENTER)));
        }
    }
    let total = keys.len();
    let mut order: Vec<usize> = (0..total).collect();
    order.sort_unstable_by_key(|&i| {
        (
            std::cmp::Reverse(sums[i].2),
            std::cmp::Reverse(sums[i].0),
            i,
        )
    });
    if let Some(n) = top {
        order.truncate(n);
    }
    let groups = order
        .into_iter()
        .map(|i| RetainedGroup {
            key: grouper.values(by, &keys[i]),
            count: sums[i].0,
            shallow_bytes: sums[i].1,
            retained_bytes: sums[i].2,
        })
        .collect();
    (groups, total)
}

/// Objects no root reaches, grouped by type and location (count, bytes).
/// Whether the next GC frees them depends on the dump's roots
/// ([`Graph::root_coverage`]): with no ROOT records at all this is every
/// object, and means nothing.
pub fn unreachable_groups(g: &Graph<'_>, dom: &Dominators) -> Vec<(Vec<KeyValue>, u64, u64)> {
    let by = [GroupKey::Type, GroupKey::Location];
    let (groups, _) = crate::group::group_objects(
        g.heap,
        dom.unreachable().filter(|&id| !g.is_agent(id)),
        &by,
        crate::group::SortBy::Memsize,
        None,
    );
    groups
        .into_iter()
        .map(|gr| (gr.key, gr.count, gr.memsize))
        .collect()
}

/// Reachable objects that are not left out as the agent's
/// ([`Graph::is_agent`]).
pub fn reachable_app_objects(g: &Graph<'_>, dom: &Dominators) -> u64 {
    let all = dom.preorder().len() as u64 - 1;
    all - dom.preorder()[1..]
        .iter()
        .filter(|&&v| g.is_agent(v))
        .count() as u64
}
